//! 研修: sessions by fiscal year; a session's 受講者 and キャンセル待ち; enrolment by 職員番号;
//! completions marked with checkboxes and an understanding score; corrections, revocations and
//! cancellations with their reason. Every form goes through the application layer.

use super::layout::{page, Page, Section};
use super::{PageError, PageForm, PageQuery, PageResult, Viewer};
use crate::application::policy::Action;
use crate::application::{Actor, Command, Service};
use crate::http::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use kiroku_domain::session::{Attendance, Schedule, SessionCommand};
use kiroku_domain::staff::staff_id_of;
use kiroku_domain::values::{
    Date, Delivery, EmployeeNo, FiscalYear, Text, TrainingCategory, Understanding,
};
use kiroku_projections::history::SessionRecord;
use maud::html;
use serde::Deserialize;
use std::collections::HashMap;
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sessions", get(list).post(schedule))
        .route("/sessions/{id}", get(show))
        .route("/sessions/{id}/enrol", post(enrol))
        .route("/sessions/{id}/complete", post(complete))
        .route("/sessions/{id}/correct", post(correct))
        .route("/sessions/{id}/revoke", post(revoke))
        .route("/sessions/{id}/cancel", post(cancel))
}

#[derive(Deserialize, Default)]
struct ListQuery {
    fiscal_year: Option<i32>,
}

async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    PageQuery(query): PageQuery<ListQuery>,
) -> PageResult<Response> {
    viewer.require(&state, Action::ReadSessions)?;
    let sessions: Vec<SessionRecord> = state
        .ledger
        .projector
        .read(|h| h.sessions.values().cloned().collect())?;
    let mut years: Vec<i32> = sessions
        .iter()
        .map(|s| FiscalYear::of(s.schedule.starts_on).year())
        .collect();
    years.sort_unstable();
    years.dedup();
    let this_year = FiscalYear::of(crate::application::today_jst()).year();
    let year = query
        .fiscal_year
        .or_else(|| years.iter().copied().filter(|y| *y <= this_year).max())
        .or_else(|| years.last().copied())
        .unwrap_or(this_year);
    let mut shown: Vec<&SessionRecord> = sessions
        .iter()
        .filter(|s| FiscalYear::of(s.schedule.starts_on).year() == year)
        .collect();
    shown.sort_by(|a, b| {
        (a.schedule.starts_on, a.schedule.course_code.as_str())
            .cmp(&(b.schedule.starts_on, b.schedule.course_code.as_str()))
    });
    let label = |y: i32| {
        FiscalYear::new(y)
            .map(|fy| fy.full_label())
            .unwrap_or_else(|_| y.to_string())
    };
    let body = html! {
        h1 { "研修　" (label(year)) }
        nav.toolbar aria-label="年度" {
            @for y in &years {
                @if *y == year { span.button { (label(*y)) } }
                @else { a.button.secondary href={ "/sessions?fiscal_year=" (y) } { (FiscalYear::new(*y).map(|f| f.short_label()).unwrap_or_default()) } }
            }
        }
        @if viewer.may(&state, Action::Administer) {
            details.noprint {
                summary { "研修を登録する" }
                (schedule_form(&viewer.csrf))
            }
        }
        @if shown.is_empty() { p { "この年度の研修はありません。" } } @else {
            table.wide {
                thead { tr { th { "開催日" } th { "コード" } th { "研修名" } th { "区分" } th.num { "定員" } th.num { "受講決定" } th.num { "キャンセル待ち" } th.num { "修了" } } }
                tbody {
                    @for s in &shown {
                        tr {
                            td.nowrap { (s.schedule.starts_on) @if s.schedule.ends_on != s.schedule.starts_on { "〜" (s.schedule.ends_on) } }
                            td.nowrap { (s.schedule.course_code.as_str()) }
                            td { a href={ "/sessions/" (s.session_id) } { (s.schedule.title.as_str()) } }
                            td { (s.schedule.category.label_ja()) }
                            td.num { (s.schedule.capacity) }
                            td.num { (s.enrolled.len()) }
                            td.num { (s.waitlisted.len()) }
                            td.num { (s.completions.iter().filter(|c| !c.revoked).count()) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(Page::of("研修", &viewer, &state, Section::Sessions), body).into_response())
}

fn schedule_form(csrf: &str) -> maud::Markup {
    html! {
        form.panel method="post" action="/sessions" {
            input type="hidden" name="csrf" value=(csrf);
            div.row {
                div.field { label { "研修コード" } input type="text" name="course_code" required size="10"; }
                div.field { label { "研修名" } input type="text" name="title" required size="30"; }
                div.field { label { "区分" } select name="category" { @for c in TrainingCategory::ALL { option value=(c.as_str()) { (c.label_ja()) } } } }
                div.field { label { "形式" } select name="delivery" { @for d in Delivery::ALL { option value=(d.as_str()) { (d.label_ja()) } } } }
            }
            div.row {
                div.field { label { "実施機関" } input type="text" name="provider" required size="20" value="庁内"; }
                div.field { label { "開始日" } input type="date" name="starts_on" required; }
                div.field { label { "終了日" } input type="date" name="ends_on" required; }
                div.field { label { "定員" } input type="number" name="capacity" min="1" required value="30"; }
                button type="submit" { "研修を登録" }
            }
        }
    }
}

#[derive(Deserialize)]
struct ScheduleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    course_code: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    delivery: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    starts_on: String,
    #[serde(default)]
    ends_on: String,
    #[serde(default)]
    capacity: String,
}

fn vocabulary<T: serde::de::DeserializeOwned>(value: &str, label: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(value.to_string()))
        .map_err(|_| format!("{label}を選んでください。"))
}

async fn schedule(
    State(state): State<AppState>,
    viewer: Viewer,
    PageForm(form): PageForm<ScheduleForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    viewer.require(&state, Action::Administer)?;
    let text =
        |v: &str, label: &str| Text::parse(v).map_err(|_| format!("{label}を入力してください。"));
    let parsed = (|| -> Result<Schedule, String> {
        Ok(Schedule {
            course_code: text(&form.course_code, "研修コード")?,
            title: text(&form.title, "研修名")?,
            category: vocabulary(&form.category, "区分")?,
            provider: text(&form.provider, "実施機関")?,
            delivery: vocabulary(&form.delivery, "形式")?,
            starts_on: date(&form.starts_on)?,
            ends_on: date(&form.ends_on)?,
            capacity: form
                .capacity
                .trim()
                .parse()
                .map_err(|_| "定員は 1 以上の数で入力してください。".to_string())?,
        })
    })();
    let problem = match parsed {
        Ok(schedule) => {
            let session_id = Uuid::new_v4();
            let request_id = Uuid::new_v4().to_string();
            let actor = Actor {
                principal: &viewer.principal,
                request_id: &request_id,
                as_of: Some(viewer.head),
                unconfirmed: None,
            };
            let command = Command::Session {
                session_id,
                command: SessionCommand::Schedule(schedule),
            };
            match Service::new(&state.ledger).execute(&actor, command).await {
                Ok(_) => {
                    return Ok(
                        Redirect::to(&format!("/sessions/{session_id}?done=scheduled"))
                            .into_response(),
                    )
                }
                Err(error) => match PageError::from(error) {
                    PageError::Refused(_, detail) | PageError::NotFound(detail) => detail,
                    other => return Err(other),
                },
            }
        }
        Err(problem) => problem,
    };
    let body = html! {
        h1 { "研修を登録する" }
        p.error role="alert" { "登録できませんでした：" (problem) " 何も記録していません。" }
        (schedule_form(&viewer.csrf))
    };
    let mut response = page(
        Page::of("研修を登録する", &viewer, &state, Section::Sessions),
        body,
    )
    .into_response();
    *response.status_mut() = StatusCode::BAD_REQUEST;
    Ok(response)
}

/// What a session page says above its roster after a form.
enum Notice {
    Done(&'static str),
    Refused(String),
}

#[derive(Deserialize, Default)]
struct ShowQuery {
    #[serde(default)]
    done: String,
}

fn done_message(code: &str) -> Option<&'static str> {
    match code {
        "scheduled" => Some("研修を登録しました。受講者を追加できます。"),
        "enrolled" => Some("受講者を登録しました。"),
        "completed" => Some("修了を記録しました。"),
        "corrected" => Some("修了記録を訂正しました。"),
        "revoked" => Some("修了を取り消しました。"),
        "cancelled" => Some("受講を取り消しました。"),
        _ => None,
    }
}

async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    PageQuery(query): PageQuery<ShowQuery>,
) -> PageResult<Response> {
    let notice = done_message(&query.done).map(Notice::Done);
    render(&state, &viewer, &id, notice, StatusCode::OK).await
}

fn session_id(id: &str) -> PageResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| PageError::not_found("その研修開催回はありません。"))
}

async fn render(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    notice: Option<Notice>,
    status: StatusCode,
) -> PageResult<Response> {
    viewer.require(state, Action::ReadSessions)?;
    let session_id = session_id(id)?;
    let session = state
        .ledger
        .projector
        .read(|h| h.sessions.get(&session_id).cloned())?
        .ok_or_else(|| PageError::not_found("その研修開催回はありません。"))?;
    let may_record = viewer.may(state, Action::Administer);
    // 職員番号 and name of everyone on the roster.
    let mut people: HashMap<Uuid, (String, String)> = HashMap::new();
    let ids: Vec<Uuid> = session
        .enrolled
        .iter()
        .chain(&session.waitlisted)
        .chain(session.completions.iter().map(|c| &c.staff_id))
        .copied()
        .collect();
    for staff_id in ids {
        if people.contains_key(&staff_id) {
            continue;
        }
        let found = state.ledger.projector.read(|h| {
            h.staff
                .get(&staff_id)
                .map(|s| (s.employee_no.as_str().to_string(), s.name.clone()))
        })?;
        if let Some((no, sealed)) = found {
            let name = state
                .ledger
                .keys
                .open(staff_id, &sealed)
                .await?
                .unwrap_or_default();
            people.insert(staff_id, (no, name));
        }
    }
    let person = |id: &Uuid| people.get(id).cloned().unwrap_or_default();
    let completion = |id: &Uuid| session.completions.iter().find(|c| c.staff_id == *id);
    let s = &session.schedule;
    let csrf = &viewer.csrf;
    let body = html! {
        h1 { (s.course_code.as_str()) " " (s.title.as_str()) }
        @match &notice {
            Some(Notice::Done(text)) => p.flash role="status" { (text) },
            Some(Notice::Refused(text)) => p.error role="alert" { "記録できませんでした：" (text) " 何も記録していません。" },
            None => {},
        }
        table.head {
            tr { th { "開催日" } td { (s.starts_on) @if s.ends_on != s.starts_on { "〜" (s.ends_on) } } }
            tr { th { "区分" } td { (s.category.label_ja()) } }
            tr { th { "実施機関" } td { (s.provider.as_str()) } }
            tr { th { "形式" } td { (s.delivery.label_ja()) } }
            tr { th { "定員" } td { (s.capacity) "人（受講決定 " (session.enrolled.len()) "人、キャンセル待ち " (session.waitlisted.len()) "人）" } }
        }
        @if may_record {
            form.panel method="post" action={ "/sessions/" (session.session_id) "/enrol" } {
                input type="hidden" name="csrf" value=(csrf);
                div.row {
                    div.field {
                        label for="employee_no" { "受講者を追加（職員番号）" }
                        input #employee_no type="text" name="employee_no" required autocomplete="off";
                    }
                    button type="submit" { "受講を登録" }
                }
                p.small.muted { "定員を超えるとキャンセル待ちになります。" }
            }
        }
        h2 { "受講者" }
        @let checkable = may_record && session.enrolled.iter().any(|id| completion(id).is_none_or(|c| c.revoked));
        @if session.enrolled.is_empty() { p.muted { "受講者はいません。" } } @else {
            table.wide {
                thead {
                    tr {
                        @if checkable { th { "修了" } }
                        th { "職員番号" } th { "氏名" } th { "状況" } th { "修了日" } th { "理解度" }
                        @if may_record { th { "訂正・取消" } }
                    }
                }
                tbody {
                    @for staff_id in &session.enrolled {
                        @let (no, name) = person(staff_id);
                        @let done = completion(staff_id);
                        @let open = done.is_none_or(|c| c.revoked);
                        tr {
                            @if checkable {
                                td {
                                    @if open {
                                        input type="checkbox" form="complete" name="staff" value=(staff_id) aria-label={ (no) " を修了にする" };
                                    }
                                }
                            }
                            td.nowrap { a href={ "/staff/" (staff_id) } { (no) } }
                            td { (name) }
                            td {
                                @match done {
                                    Some(c) if c.revoked => span.badge.revoked { "修了取消" },
                                    Some(_) => span.badge.done { "修了" },
                                    None => span.badge { "受講決定" },
                                }
                            }
                            td.nowrap { (done.map(|c| c.completed_on.to_string()).unwrap_or_default()) }
                            td {
                                @if let Some(c) = done.filter(|c| !c.revoked) {
                                    (c.understanding.map(|u| u.value().to_string()).unwrap_or_else(|| "－".into()))
                                } @else if checkable {
                                    select form="complete" name={ "u-" (staff_id) } aria-label={ (no) " の理解度" } {
                                        option value="" { "－" }
                                        @for u in 1..=5u8 { option value=(u) selected[u == 4] { (u) } }
                                    }
                                }
                            }
                            @if may_record {
                                td {
                                    @if let Some(c) = done.filter(|c| !c.revoked) {
                                        details {
                                            summary { "訂正・取消" }
                                            form.panel method="post" action={ "/sessions/" (session.session_id) "/correct" } {
                                                input type="hidden" name="csrf" value=(csrf);
                                                input type="hidden" name="staff_id" value=(c.staff_id);
                                                div.field { label { "修了日" } input type="date" name="completed_on" value=(c.completed_on); }
                                                div.field { label { "理解度" }
                                                    select name="understanding" {
                                                        option value="" { "変更しない" }
                                                        @for u in 1..=5u8 { option value=(u) { (u) } }
                                                    }
                                                }
                                                div.field { label { "訂正の理由" } input type="text" name="reason" required; }
                                                button type="submit" { "訂正する" }
                                            }
                                            form.panel method="post" action={ "/sessions/" (session.session_id) "/revoke" } {
                                                input type="hidden" name="csrf" value=(csrf);
                                                input type="hidden" name="staff_id" value=(c.staff_id);
                                                div.field { label { "取消の理由" } input type="text" name="reason" required; }
                                                button.danger type="submit" { "修了を取り消す" }
                                            }
                                        }
                                    } @else if done.is_none() {
                                        details {
                                            summary { "受講の取消" }
                                            form.panel method="post" action={ "/sessions/" (session.session_id) "/cancel" } {
                                                input type="hidden" name="csrf" value=(csrf);
                                                input type="hidden" name="staff_id" value=(staff_id);
                                                div.field { label { "取消の理由" } input type="text" name="reason" required; }
                                                button.danger type="submit" { "受講を取り消す" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if may_record { p.small.muted { "訂正と取消には理由が必要です。理由は監査証跡に残ります。" } }
            @if checkable {
                form #complete .row.panel method="post" action={ "/sessions/" (session.session_id) "/complete" } {
                    input type="hidden" name="csrf" value=(csrf);
                    div.field {
                        label for="completed_on" { "修了日" }
                        input #completed_on type="date" name="completed_on" value=(s.ends_on) required;
                    }
                    button type="submit" { "チェックした受講者の修了を記録" }
                }
            }
        }
        h2 { "キャンセル待ち" }
        @if session.waitlisted.is_empty() { p.muted { "キャンセル待ちはいません。" } } @else {
            table {
                thead { tr { th.num { "順位" } th { "職員番号" } th { "氏名" } } }
                tbody {
                    @for (i, staff_id) in session.waitlisted.iter().enumerate() {
                        @let (no, name) = person(staff_id);
                        tr { td.num { (i + 1) } td { (no) } td { (name) } }
                    }
                }
            }
        }
    };
    let title = format!("研修 {} {}", s.course_code.as_str(), s.title.as_str());
    let mut response =
        page(Page::of(title, viewer, state, Section::Sessions), body).into_response();
    *response.status_mut() = status;
    Ok(response)
}

/// Runs a session command from a form: back to the page with a notice, or the page again
/// with the refusal and nothing recorded.
async fn run(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    command: Result<SessionCommand, String>,
    done: &'static str,
) -> PageResult<Response> {
    let session_id = session_id(id)?;
    let command = match command {
        Ok(command) => command,
        Err(problem) => {
            return render(
                state,
                viewer,
                id,
                Some(Notice::Refused(problem)),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    };
    let request_id = Uuid::new_v4().to_string();
    let actor = Actor {
        principal: &viewer.principal,
        request_id: &request_id,
        as_of: Some(viewer.head),
        unconfirmed: None,
    };
    let command = Command::Session {
        session_id,
        command,
    };
    match Service::new(&state.ledger).execute(&actor, command).await {
        Ok(_) => Ok(Redirect::to(&format!("/sessions/{session_id}?done={done}")).into_response()),
        Err(error) => match PageError::from(error) {
            PageError::Refused(status, detail) => {
                render(state, viewer, id, Some(Notice::Refused(detail)), status).await
            }
            PageError::NotFound(detail) => {
                render(
                    state,
                    viewer,
                    id,
                    Some(Notice::Refused(detail)),
                    StatusCode::NOT_FOUND,
                )
                .await
            }
            other => Err(other),
        },
    }
}

fn employee(no: &str) -> Result<Uuid, String> {
    EmployeeNo::parse(no.trim())
        .map(|no| staff_id_of(&no))
        .map_err(|e| e.to_string())
}

fn reason(text: &str) -> Result<Text, String> {
    Text::parse(text).map_err(|_| "理由を入力してください（4000 文字以内）。".to_string())
}

fn date(text: &str) -> Result<Date, String> {
    text.trim()
        .parse::<Date>()
        .map_err(|_| format!("日付 {text:?} を読めません。"))
}

fn understanding(text: &str) -> Result<Option<Understanding>, String> {
    match text.trim() {
        "" => Ok(None),
        t => t
            .parse::<u8>()
            .ok()
            .and_then(|n| Understanding::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| "理解度は 1〜5 で選んでください。".to_string()),
    }
}

#[derive(Deserialize)]
struct EnrolForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    employee_no: String,
}

async fn enrol(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    PageForm(form): PageForm<EnrolForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let command = employee(&form.employee_no).map(|staff_id| SessionCommand::Enrol {
        staff_id,
        staff_registered: false,
    });
    run(&state, &viewer, &id, command, "enrolled").await
}

/// The completion form: `csrf`, `completed_on`, one `staff` per checked row and `u-{id}` for
/// each row's understanding.
async fn complete(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> PageResult<Response> {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    viewer.check_csrf(get("csrf"))?;
    let checked: Vec<&str> = fields
        .iter()
        .filter(|(k, _)| k == "staff")
        .map(|(_, v)| v.as_str())
        .collect();
    if checked.is_empty() {
        let problem = Err("修了にする受講者をチェックしてください。".to_string());
        return run(&state, &viewer, &id, problem, "completed").await;
    }
    let completed_on = match date(get("completed_on")) {
        Ok(d) => d,
        Err(problem) => return run(&state, &viewer, &id, Err(problem), "completed").await,
    };
    // Every checked row is validated before anything is recorded.
    let mut rows = Vec::new();
    for staff in checked {
        let parsed = Uuid::parse_str(staff)
            .map_err(|_| "受講者の指定を読めません。".to_string())
            .and_then(|staff_id| understanding(get(&format!("u-{staff}"))).map(|u| (staff_id, u)));
        match parsed {
            Ok(row) => rows.push(row),
            Err(problem) => return run(&state, &viewer, &id, Err(problem), "completed").await,
        }
    }
    // One command for every checked row: all are recorded or none.
    let command = Ok(SessionCommand::RecordAttendances(
        rows.into_iter()
            .map(|(staff_id, understanding)| Attendance {
                staff_id,
                staff_registered: false,
                completed_on,
                understanding,
            })
            .collect(),
    ));
    run(&state, &viewer, &id, command, "completed").await
}

#[derive(Deserialize)]
struct CorrectionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    staff_id: String,
    #[serde(default)]
    completed_on: String,
    #[serde(default)]
    understanding: String,
    #[serde(default)]
    reason: String,
}

async fn correct(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    PageForm(form): PageForm<CorrectionForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let command = (|| {
        Ok(SessionCommand::CorrectCompletion {
            staff_id: Uuid::parse_str(&form.staff_id).map_err(|_| "受講者の指定を読めません。")?,
            completed_on: match form.completed_on.trim() {
                "" => None,
                d => Some(date(d)?),
            },
            understanding: understanding(&form.understanding)?,
            reason: reason(&form.reason)?,
        })
    })();
    run(&state, &viewer, &id, command, "corrected").await
}

#[derive(Deserialize)]
struct ReasonForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    staff_id: String,
    #[serde(default)]
    reason: String,
}

/// A staff member and a reason, for a command that needs both.
fn with_reason(
    form: &ReasonForm,
    make: impl FnOnce(Uuid, Text) -> SessionCommand,
) -> Result<SessionCommand, String> {
    let staff_id =
        Uuid::parse_str(&form.staff_id).map_err(|_| "受講者の指定を読めません。".to_string())?;
    Ok(make(staff_id, reason(&form.reason)?))
}

async fn revoke(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    PageForm(form): PageForm<ReasonForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let command = with_reason(&form, |staff_id, reason| SessionCommand::RevokeCompletion {
        staff_id,
        reason,
    });
    run(&state, &viewer, &id, command, "revoked").await
}

async fn cancel(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    PageForm(form): PageForm<ReasonForm>,
) -> PageResult<Response> {
    viewer.check_csrf(&form.csrf)?;
    let command = with_reason(&form, |staff_id, reason| SessionCommand::CancelEnrolment {
        staff_id,
        reason,
    });
    run(&state, &viewer, &id, command, "cancelled").await
}
