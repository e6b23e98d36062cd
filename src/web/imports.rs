//! 受講実績の取込: upload an attendance CSV (UTF-8 or Shift_JIS/CP932, told or guessed),
//! see every problem with the line Excel shows, or a preview of what would be recorded; then
//! record it all (or nothing) with its progress shown while it runs.

use super::layout::{page, Page, Section};
use super::{PageError, PageForm, PageResult, Viewer};
use crate::application::policy::Action;
use crate::application::Actor;
use crate::http::imports::IMPORT_LIMIT;
use crate::http::AppState;
use crate::import::{
    decode, import_attendance, preview, Encoding, ImportError, ImportSummary, PreviewRow, RowError,
    COLUMNS_JA,
};
use crate::storage::tokens::Principal;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/imports",
            get(form)
                .post(upload)
                .layer(DefaultBodyLimit::max(IMPORT_LIMIT + 64 * 1024)),
        )
        .route("/imports/{id}", get(status))
        .route("/imports/{id}/commit", post(commit))
}

/// Rows shown in a preview.
const PREVIEW_ROWS: usize = 100;

/// Where an uploaded file stands.
#[derive(Clone)]
enum Stage {
    /// Checked and waiting for the person to confirm.
    Checked,
    Running {
        done: usize,
        total: usize,
    },
    Done(ImportSummary),
    Refused(Vec<RowError>),
    Failed,
}

struct Upload {
    /// The page session that uploaded it: only that session sees and confirms it.
    session_id: String,
    filename: String,
    text: Arc<String>,
    rows: usize,
    stage: Stage,
}

/// Uploads between their check and their result, in memory.
#[derive(Default)]
pub struct Uploads {
    uploads: Mutex<HashMap<String, Upload>>,
}

impl Uploads {
    fn with<R>(&self, id: &str, f: impl FnOnce(&mut Upload) -> R) -> Option<R> {
        self.uploads.lock().ok()?.get_mut(id).map(f)
    }
}

fn upload_form(viewer: &Viewer) -> Markup {
    html! {
        form.panel method="post" action="/imports" enctype="multipart/form-data" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            div.field {
                label for="file" { "CSV ファイル" }
                input #file type="file" name="file" accept=".csv,text/csv" required;
            }
            div.field {
                label for="encoding" { "文字コード" }
                select #encoding name="encoding" {
                    option value="auto" selected { "自動判定（UTF-8 でなければ Shift_JIS）" }
                    option value="utf-8" { "UTF-8" }
                    option value="shift_jis" { "Shift_JIS（Excel の CSV）" }
                }
            }
            p.small.muted {
                "1 行目は見出し行（" (COLUMNS_JA.join(",")) "）です。日付は 2024/3/31 または 2024-03-31、理解度は 1〜5 または空欄。"
                "すべての行に問題がないときだけ取り込みます。"
            }
            button type="submit" { "確認する" }
        }
    }
}

async fn form(State(state): State<AppState>, viewer: Viewer) -> PageResult<Response> {
    viewer.require(&state, Action::Administer)?;
    let body = html! {
        h1 { "受講実績の取込" }
        p.lead { "研修の受講実績（修了者の一覧）を CSV から取り込みます。まず内容を確認し、問題がなければ取り込みます。" }
        (upload_form(&viewer))
    };
    Ok(page(
        Page::of("受講実績の取込", &viewer, &state, Section::Imports),
        body,
    )
    .into_response())
}

fn refused_page(
    state: &AppState,
    viewer: &Viewer,
    filename: &str,
    errors: &[RowError],
) -> Response {
    let body = html! {
        h1 { "受講実績の取込" }
        p.error role="alert" {
            strong { (filename) } " に " (errors.len()) " 件の問題があるため、何も取り込んでいません。"
            "次の行を直してから、もう一度ファイルを選んでください。"
        }
        table.wide.errors {
            thead { tr { th.num { "行" } th { "問題" } } }
            tbody {
                @for e in errors {
                    tr { td.num { (e.line) "行目" } td { (e.message) } }
                }
            }
        }
        (upload_form(viewer))
    };
    let mut response = page(
        Page::of("取込の問題", viewer, state, Section::Imports),
        body,
    )
    .into_response();
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response
}

async fn upload(
    State(state): State<AppState>,
    viewer: Viewer,
    mut multipart: Multipart,
) -> PageResult<Response> {
    viewer.require(&state, Action::Administer)?;
    let unreadable = || {
        PageError::Refused(
            StatusCode::BAD_REQUEST,
            format!(
                "送信されたファイルを読めません（{} MiB まで）。",
                IMPORT_LIMIT / 1024 / 1024
            ),
        )
    };
    let mut csrf = String::new();
    let mut encoding = String::from("auto");
    let mut file: Option<(String, Vec<u8>)> = None;
    while let Some(field) = multipart.next_field().await.map_err(|_| unreadable())? {
        match field.name().unwrap_or("") {
            "csrf" => csrf = field.text().await.map_err(|_| unreadable())?,
            "encoding" => encoding = field.text().await.map_err(|_| unreadable())?,
            "file" => {
                let name = field.file_name().unwrap_or("ファイル").to_string();
                let bytes = field.bytes().await.map_err(|_| unreadable())?;
                file = Some((name, bytes.to_vec()));
            }
            _ => {}
        }
    }
    viewer.check_csrf(&csrf)?;
    let Some((filename, bytes)) = file.filter(|(_, b)| !b.is_empty()) else {
        return Err(PageError::Refused(
            StatusCode::BAD_REQUEST,
            "CSV ファイルを選んでください。".into(),
        ));
    };
    let encoding = match encoding.as_str() {
        "auto" => Encoding::guess(&bytes),
        other => Encoding::parse(other).unwrap_or_else(|| Encoding::guess(&bytes)),
    };
    let checked = match decode(&bytes, encoding) {
        Ok(text) => preview(&state.ledger, &text).await.map(|rows| (text, rows)),
        Err(error) => Err(error),
    };
    let (text, rows) = match checked {
        Ok(ok) => ok,
        Err(ImportError::Rejected(errors)) => {
            return Ok(refused_page(&state, &viewer, &filename, &errors))
        }
        Err(other) => {
            tracing::error!(error = %other, "checking an upload failed");
            return Err(PageError::Internal);
        }
    };
    let id = super::session::random_id();
    let table = preview_table(&state, &rows).await?;
    if let Ok(mut uploads) = state.uploads.uploads.lock() {
        uploads.insert(
            id.clone(),
            Upload {
                session_id: viewer.session_id.clone(),
                filename: filename.clone(),
                text: Arc::new(text),
                rows: rows.len(),
                stage: Stage::Checked,
            },
        );
    }
    let body = html! {
        h1 { "受講実績の取込　確認" }
        p.flash role="status" {
            strong { (filename) } "（" (encoding.label_ja()) "）の " (rows.len()) " 行に問題はありません。まだ何も記録していません。"
        }
        form.panel method="post" action={ "/imports/" (id) "/commit" } {
            input type="hidden" name="csrf" value=(viewer.csrf);
            div.row {
                button type="submit" { (rows.len()) " 行を取り込む" }
                a.button.secondary href="/imports" { "やめる" }
            }
        }
        (table)
        @if rows.len() > PREVIEW_ROWS { p.muted { "先頭の " (PREVIEW_ROWS) " 行を表示しています。" } }
    };
    Ok(page(
        Page::of("取込の確認", &viewer, &state, Section::Imports),
        body,
    )
    .into_response())
}

async fn preview_table(state: &AppState, rows: &[PreviewRow]) -> PageResult<Markup> {
    let mut shown = Vec::new();
    for row in rows.iter().take(PREVIEW_ROWS) {
        let (no, sealed, course) = state.ledger.projector.read(|h| {
            let staff = h.staff.get(&row.staff_id);
            let course = h.sessions.get(&row.session_id).map(|s| {
                format!(
                    "{} {}（{}）",
                    s.schedule.course_code.as_str(),
                    s.schedule.title.as_str(),
                    s.schedule.starts_on
                )
            });
            (
                staff.map(|s| s.employee_no.as_str().to_string()),
                staff.map(|s| s.name.clone()),
                course,
            )
        })?;
        let name = match sealed {
            Some(sealed) => state
                .ledger
                .keys
                .open(row.staff_id, &sealed)
                .await?
                .unwrap_or_default(),
            None => String::new(),
        };
        shown.push((
            row,
            no.unwrap_or_default(),
            name,
            course.unwrap_or_default(),
        ));
    }
    Ok(html! {
        table.wide {
            thead { tr { th.num { "行" } th { "職員番号" } th { "氏名" } th { "研修（開催日）" } th { "修了日" } th.num { "理解度" } } }
            tbody {
                @for (row, no, name, course) in &shown {
                    tr {
                        td.num { (row.line) } td { (no) } td { (name) } td { (course) }
                        td.nowrap { (row.completed_on) }
                        td.num { (row.understanding.map(|u| u.value().to_string()).unwrap_or_else(|| "－".into())) }
                    }
                }
            }
        }
    })
}

async fn commit(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    PageForm(form): PageForm<super::CsrfForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    viewer.require(&state, Action::Administer)?;
    let started = state
        .uploads
        .with(&id, |upload| {
            if upload.session_id != viewer.session_id {
                return None;
            }
            match upload.stage {
                Stage::Checked => {
                    upload.stage = Stage::Running {
                        done: 0,
                        total: upload.rows,
                    };
                    Some(Some(upload.text.clone()))
                }
                // Confirmed twice (a double click): the first one runs.
                _ => Some(None),
            }
        })
        .flatten()
        .ok_or_else(|| {
            PageError::not_found("その取込はありません。もう一度ファイルを選んでください。")
        })?;
    if let Some(text) = started {
        let principal: Principal = viewer.principal.clone();
        let state = state.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let request_id = Uuid::new_v4().to_string();
            let actor = Actor {
                principal: &principal,
                request_id: &request_id,
                // The import runs on after the request; it always asks the database.
                as_of: None,
                unconfirmed: None,
            };
            let uploads = state.uploads.clone();
            let progress = |done: usize, total: usize| {
                uploads.with(&id, |u| u.stage = Stage::Running { done, total });
            };
            let result = import_attendance(&state.ledger, &text, &actor, progress).await;
            let stage = match result {
                Ok(summary) => Stage::Done(summary),
                Err(ImportError::Rejected(errors)) => Stage::Refused(errors),
                Err(error) => {
                    tracing::error!(%error, "an import failed");
                    Stage::Failed
                }
            };
            state.uploads.with(&id, |u| u.stage = stage);
        });
    }
    Ok(Redirect::to(&format!("/imports/{id}")).into_response())
}

async fn status(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult<Response> {
    viewer.require(&state, Action::Administer)?;
    let found = state
        .uploads
        .with(&id, |u| {
            (u.session_id == viewer.session_id)
                .then(|| (u.filename.clone(), u.stage.clone(), u.rows))
        })
        .flatten()
        .ok_or_else(|| PageError::not_found("その取込はありません。"))?;
    let (filename, stage, rows) = found;
    if let Stage::Refused(errors) = &stage {
        return Ok(refused_page(&state, &viewer, &filename, errors));
    }
    let running = matches!(stage, Stage::Running { .. } | Stage::Checked);
    let body = html! {
        h1 { "受講実績の取込" }
        @match &stage {
            Stage::Running { done, total } => {
                p role="status" { (filename) " を取り込んでいます… " (done) " / " (total) " 行" }
                progress max=(total) value=(done) { (done) " / " (total) }
            },
            Stage::Checked => p role="status" { (filename) " の取込を始めています…" },
            Stage::Done(summary) => {
                p.flash role="status" {
                    strong { (filename) } " の " (summary.rows) " 行を取り込みました（研修 " (summary.sessions) " 回、記録 " (summary.events) " 件）。"
                }
                p { a href="/sessions" { "研修の一覧へ" } " ・ " a href="/imports" { "別のファイルを取り込む" } }
            },
            Stage::Failed => p.error role="alert" {
                (filename) " の " (rows) " 行を取り込めませんでした。画面で記録済みと示されたもの以外は何も記録されていません。もう一度お試しください。"
            },
            Stage::Refused(_) => {},
        }
    };
    let mut response = page(
        Page::of("受講実績の取込", &viewer, &state, Section::Imports),
        body,
    )
    .into_response();
    if running {
        response
            .headers_mut()
            .insert("refresh", axum::http::HeaderValue::from_static("1"));
    }
    Ok(response)
}
