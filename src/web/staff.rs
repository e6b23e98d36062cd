//! 職員: search by 職員番号 or name, and one person's record — 研修履歴, 異動歴, 昇任歴, 面談 and
//! 人事評価 — with confidential text opened only for those the policy allows.

use super::layout::{page, Page, Section};
use super::{PageError, PageQuery, PageResult, Viewer};
use crate::application::policy::Action;
use crate::application::today_jst;
use crate::http::AppState;
use crate::storage::keys::ERASED;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use kiroku_domain::values::Sealed;
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/staff", get(search))
        .route("/staff/{id}", get(show).post(super::staff_forms::record))
}

#[derive(Deserialize, Default)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// At most this many people are listed for one search.
const LIMIT: usize = 200;

async fn open(state: &AppState, staff_id: Uuid, sealed: &Sealed) -> PageResult<Option<String>> {
    // An erased person's name and texts read as 削除済み on every page.
    Ok(Some(
        state
            .ledger
            .keys
            .open(staff_id, sealed)
            .await?
            .unwrap_or_else(|| ERASED.to_string()),
    ))
}

async fn search(
    State(state): State<AppState>,
    viewer: Viewer,
    PageQuery(query): PageQuery<SearchQuery>,
) -> PageResult<Response> {
    viewer.require(&state, Action::ListStaff)?;
    let q = query.q.trim().to_string();
    let today = today_jst();
    // Names are sealed in the ledger: they are opened here, for the people this viewer may
    // see, and compared in memory.
    let people = state.ledger.projector.read(|h| {
        h.staff
            .values()
            .map(|s| {
                (
                    s.staff_id,
                    s.employee_no.as_str().to_string(),
                    s.name.clone(),
                    s.department_on(today)
                        .map(|d| d.department.as_str().to_string()),
                    s.grade_on(today).map(|g| g.value()),
                    s.in_service_on(today),
                )
            })
            .collect::<Vec<_>>()
    })?;
    let mut found = Vec::new();
    let mut more = false;
    for (id, no, sealed, department, grade, in_service) in people {
        if !viewer.may(&state, Action::ReadStaff(id)) {
            continue;
        }
        let name = open(&state, id, &sealed).await?.unwrap_or_default();
        let hit = q.is_empty() || no.contains(&q) || name.contains(&q);
        if !hit {
            continue;
        }
        if found.len() == LIMIT {
            more = true;
            break;
        }
        found.push((id, no, name, department, grade, in_service));
    }
    found.sort_by(|a, b| a.1.cmp(&b.1));
    let body = html! {
        h1 { "職員" }
        @if viewer.may(&state, Action::Administer) {
            p { a.button href="/staff/new" { "職員を登録する" } }
        }
        form.toolbar method="get" action="/staff" role="search" {
            div.field {
                label for="q" { "職員番号または氏名" }
                input #q type="search" name="q" value=(q) placeholder="例：S0012 または 山田";
            }
            button type="submit" { "検索" }
        }
        @if found.is_empty() {
            p { "該当する職員はいません。" }
        } @else {
            table.wide {
                thead { tr { th { "職員番号" } th { "氏名" } th { "所属（本日）" } th.num { "級" } th { "在職" } } }
                tbody {
                    @for (id, no, name, department, grade, in_service) in &found {
                        tr {
                            td.nowrap { a href={ "/staff/" (id) } { (no) } }
                            td { a href={ "/staff/" (id) } { (name) } }
                            td { (department.clone().unwrap_or_default()) }
                            td.num { (grade.map(|g| format!("{g}級")).unwrap_or_default()) }
                            td { @if *in_service { "在職" } @else { span.muted { "退職" } } }
                        }
                    }
                }
            }
            @if more { p.muted { "先頭の " (LIMIT) " 人を表示しています。条件を絞ってください。" } }
        }
    };
    Ok(page(Page::of("職員", &viewer, &state, Section::Staff), body).into_response())
}

fn redacted() -> Markup {
    html! { span.redacted { "（非開示：閲覧権限がありません）" } }
}

async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    PageQuery(query): PageQuery<super::staff_forms::DoneQuery>,
) -> PageResult<Response> {
    let staff_id =
        Uuid::parse_str(&id).map_err(|_| PageError::not_found("その職員はいません。"))?;
    let notice = super::staff_forms::done_message(&query.done).map(Notice::Done);
    render(
        &state,
        &viewer,
        staff_id,
        notice,
        axum::http::StatusCode::OK,
    )
    .await
}

/// What a staff page says above the record after a form.
pub enum Notice {
    Done(&'static str),
    Refused(String),
}

/// One person's record, with the forms this viewer may use.
pub async fn render(
    state: &AppState,
    viewer: &Viewer,
    staff_id: Uuid,
    notice: Option<Notice>,
    status: axum::http::StatusCode,
) -> PageResult<Response> {
    let state = state.clone();
    viewer.require(&state, Action::ReadStaff(staff_id))?;
    let record = state
        .ledger
        .projector
        .read(|h| h.staff.get(&staff_id).cloned())?
        .ok_or_else(|| PageError::not_found("その職員はいません。"))?;
    let today = today_jst();
    let name = open(&state, staff_id, &record.name).await?;
    let kana = match &record.name_kana {
        Some(kana) => open(&state, staff_id, kana).await?,
        None => None,
    };
    // Who the interviewers and evaluators are, by number and name.
    let mut others = std::collections::BTreeMap::new();
    let ids: Vec<Uuid> = record
        .interviews
        .iter()
        .map(|i| i.interviewer_id)
        .chain(record.evaluations.iter().map(|e| e.evaluator_id))
        .collect();
    for other in ids {
        if others.contains_key(&other) {
            continue;
        }
        let found = state.ledger.projector.read(|h| {
            h.staff
                .get(&other)
                .map(|s| (s.employee_no.clone(), s.name.clone()))
        })?;
        let label = match found {
            Some((no, sealed)) => format!(
                "{} {}",
                no.as_str(),
                open(&state, other, &sealed).await?.unwrap_or_default()
            ),
            None => "（不明）".to_string(),
        };
        others.insert(other, label);
    }
    let who = |id: &Uuid| others.get(id).cloned().unwrap_or_default();
    let trainings = state.ledger.projector.read(|h| {
        record
            .trainings
            .iter()
            .map(|t| {
                let s = h.sessions.get(&t.session_id);
                (
                    t.clone(),
                    s.map(|s| s.schedule.course_code.as_str().to_string()),
                    s.map(|s| s.schedule.title.as_str().to_string()),
                    s.map(|s| s.schedule.starts_on),
                )
            })
            .collect::<Vec<_>>()
    })?;
    let mut trainings = trainings;
    trainings.sort_by_key(|(_, code, _, starts_on)| (*starts_on, code.clone()));
    let mut interviews = Vec::new();
    for i in &record.interviews {
        let may = viewer.may(
            &state,
            Action::ReadInterviewNote {
                interviewer: i.interviewer_id,
            },
        );
        let note = if may {
            open(&state, staff_id, &i.note).await?
        } else {
            None
        };
        interviews.push((i, may, note));
    }
    let mut evaluations = Vec::new();
    for e in &record.evaluations {
        let may = viewer.may(
            &state,
            Action::ReadEvaluationText {
                evaluator: e.evaluator_id,
                subject: staff_id,
            },
        );
        let comment = match (&e.comment, may) {
            (Some(c), true) => open(&state, staff_id, c).await?,
            _ => None,
        };
        let dispute = match (&e.dispute, may) {
            (Some(d), true) => open(&state, staff_id, d).await?,
            _ => None,
        };
        let outcome = match (&e.dispute_outcome, may) {
            (Some(o), true) => open(&state, staff_id, o).await?,
            _ => None,
        };
        evaluations.push((e, may, comment, dispute, outcome));
    }
    let department = record.department_on(today);
    let display_name = name.clone().unwrap_or_else(|| ERASED.to_string());
    let forms = super::staff_forms::forms(&state, viewer, staff_id);
    let body = html! {
        h1 { (record.employee_no.as_str()) " " (display_name) }
        @match &notice {
            Some(Notice::Done(text)) => p.flash role="status" { (text) },
            Some(Notice::Refused(text)) => p.error role="alert" { "記録できませんでした：" (text) " 何も記録していません。" },
            None => {},
        }
        table.head {
            tr { th { "職員番号" } td { (record.employee_no.as_str()) } }
            tr { th { "氏名" } td { (display_name) @if let Some(k) = &kana { " （" (k) "）" } } }
            tr { th { "性別" } td { (record.gender.label_ja()) } }
            tr { th { "職種" } td { (record.job_type.label_ja()) } }
            tr { th { "所属（本日）" } td { @if let Some(d) = department { (d.department.as_str()) "（" (d.department_kind.label_ja()) "）" } } }
            tr { th { "級（本日）" } td { @if let Some(g) = record.grade_on(today) { (g.value()) "級" } } }
            tr { th { "在職" } td { @if record.in_service_on(today) { "在職" } @else { "退職" } } }
        }
        h2 { "研修履歴" }
        @if trainings.is_empty() { p.muted { "研修の記録はありません。" } } @else {
            table.wide {
                thead { tr { th { "開催日" } th { "研修" } th { "状況" } th { "修了日" } th.num { "理解度" } } }
                tbody {
                    @for (t, code, title, starts_on) in &trainings {
                        tr {
                            td.nowrap { (starts_on.map(|d| d.to_string()).unwrap_or_default()) }
                            td {
                                @if viewer.may(&state, Action::ReadSessions) {
                                    a href={ "/sessions/" (t.session_id) } { (code.clone().unwrap_or_default()) " " (title.clone().unwrap_or_default()) }
                                } @else {
                                    (code.clone().unwrap_or_default()) " " (title.clone().unwrap_or_default())
                                }
                            }
                            td {
                                @if t.revoked { span.badge.revoked { "修了取消" } }
                                @else if t.completed_on.is_some() { span.badge.done { "修了" } }
                                @else { span.badge { (t.status.label_ja()) } }
                            }
                            td.nowrap { (t.completed_on.map(|d| d.to_string()).unwrap_or_default()) }
                            td.num { (t.understanding.map(|u| u.value().to_string()).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
        h2 { "在職期間" }
        table {
            thead { tr { th { "開始" } th { "任用" } th { "終了" } th { "事由" } } }
            tbody {
                @for s in &record.service {
                    tr {
                        td { (s.started_on) } td { (s.employment.label_ja()) }
                        td { (s.separated_on.map(|d| d.to_string()).unwrap_or_default()) }
                        td { (s.separation_reason.map(|r| r.label_ja()).unwrap_or("")) }
                    }
                }
            }
        }
        h2 { "異動歴" }
        table {
            thead { tr { th { "発令日" } th { "所属" } th { "部門" } th { "種別" } } }
            tbody {
                @for d in &record.departments {
                    tr {
                        td.nowrap { (d.effective_on) } td { (d.department.as_str()) }
                        td { (d.department_kind.label_ja()) }
                        td { (d.kind.map(|k| k.label_ja()).unwrap_or("採用・再任用")) }
                    }
                }
            }
        }
        h2 { "昇任歴" }
        table {
            thead { tr { th { "発令日" } th.num { "級" } th { "事由" } } }
            tbody {
                @for g in &record.grades {
                    tr {
                        td.nowrap { (g.effective_on) } td.num { (g.grade.value()) "級" }
                        td { (g.reason.map(|r| r.label_ja()).unwrap_or("採用時")) }
                    }
                }
            }
        }
        h2 { "面談" }
        @if interviews.is_empty() { p.muted { "面談の記録はありません。" } } @else {
            table.wide {
                thead { tr { th { "実施日" } th { "種類" } th { "面談者" } th { "記録" } } }
                tbody {
                    @for (i, may, note) in &interviews {
                        tr {
                            td.nowrap { (i.held_on) } td { (i.kind.label_ja()) }
                            td { (who(&i.interviewer_id)) }
                            td.pre {
                                @if i.withdrawn { span.badge.revoked { "取下げ" } " " }
                                @if *may { (note.clone().unwrap_or_else(|| ERASED.into())) } @else { (redacted()) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "人事評価" }
        @if evaluations.is_empty() { p.muted { "人事評価の記録はありません。" } } @else {
            table.wide {
                thead { tr { th { "年度" } th { "期間" } th { "評価者" } th { "総合" } th { "所見" } th { "苦情・申出" } } }
                tbody {
                    @for (e, may, comment, dispute, outcome) in &evaluations {
                        tr {
                            td.nowrap { (e.fiscal_year.full_label()) } td { (e.period.label_ja()) }
                            td { (who(&e.evaluator_id)) }
                            td { (e.overall.label_ja()) }
                            td.pre { @if *may { (comment.clone().unwrap_or_default()) } @else { (redacted()) } }
                            td.pre {
                                @if *may { (dispute.clone().unwrap_or_default()) } @else if e.dispute.is_some() { (redacted()) }
                                @if e.dispute_outcome.is_some() { br; span.small { "結果：" @if *may { (outcome.clone().unwrap_or_default()) } @else { (redacted()) } } }
                            }
                        }
                    }
                }
            }
        }
    };
    let body = html! { (body) (forms) };
    let title = format!("職員 {}", record.employee_no.as_str());
    let mut response = page(Page::of(title, viewer, &state, Section::Staff), body).into_response();
    *response.status_mut() = status;
    Ok(response)
}
