//! Forms on a staff member's page: grade changes, transfers and separation (HR); interviews and
//! evaluations (HR, or a manager of the person's department); and registering a new staff
//! member (HR). The policy decides who sees which form and, again, who may post it.

use super::layout::{page, Page, Section};
use super::staff::{render, Notice};
use super::{PageError, PageForm, PageResult, Viewer};
use crate::application::policy::Action;
use crate::application::{Actor, Command, NewStaff, Service, StaffRequest};
use crate::http::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use kiroku_domain::staff::{staff_id_of, StaffCommand};
use kiroku_domain::values::*;
use maud::{html, Markup};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new().route("/staff/new", get(new_form).post(register))
}

#[derive(Deserialize, Default)]
pub struct DoneQuery {
    #[serde(default)]
    pub done: String,
}

pub fn done_message(code: &str) -> Option<&'static str> {
    match code {
        "registered" => Some("職員を登録しました。"),
        "grade" => Some("級の変更を記録しました。"),
        "transfer" => Some("異動を記録しました。"),
        "separation" => Some("退職を記録しました。"),
        "interview" => Some("面談を記録しました。"),
        "evaluation" => Some("人事評価を記録しました。"),
        _ => None,
    }
}

type Fields = HashMap<String, String>;

fn field<'a>(fields: &'a Fields, name: &str) -> &'a str {
    fields.get(name).map(|v| v.trim()).unwrap_or("")
}

fn choice<T: DeserializeOwned>(fields: &Fields, name: &str, label: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(field(fields, name).to_string()))
        .map_err(|_| format!("{label}を選んでください。"))
}

fn text(fields: &Fields, name: &str, label: &str) -> Result<Text, String> {
    Text::parse(field(fields, name))
        .map_err(|_| format!("{label}を入力してください（4000 文字以内）。"))
}

fn date(fields: &Fields, name: &str, label: &str) -> Result<Date, String> {
    field(fields, name)
        .parse::<Date>()
        .map_err(|_| format!("{label}を日付で入力してください。"))
}

fn grade(fields: &Fields) -> Result<Grade, String> {
    field(fields, "grade")
        .parse::<u8>()
        .ok()
        .and_then(|g| Grade::try_from(g).ok())
        .ok_or_else(|| "級は 1〜8 で選んでください。".to_string())
}

fn person(fields: &Fields, name: &str, label: &str) -> Result<Uuid, String> {
    EmployeeNo::parse(field(fields, name))
        .map(|no| staff_id_of(&no))
        .map_err(|_| format!("{label}の職員番号を入力してください。"))
}

fn options<T: Copy>(
    all: &[T],
    name: fn(T) -> &'static str,
    label: fn(T) -> &'static str,
) -> Markup {
    html! { @for v in all { option value=(name(*v)) { (label(*v)) } } }
}

fn grades() -> Markup {
    html! { @for g in 1..=8u8 { option value=(g) { (g) "級" } } }
}

/// The forms of a staff page that this viewer may use.
pub fn forms(state: &AppState, viewer: &Viewer, staff_id: Uuid) -> Markup {
    let administer = viewer.may(state, Action::Administer);
    let record_about = viewer.may(state, Action::RecordAbout(staff_id));
    if !administer && !record_about {
        return html! {};
    }
    let action = format!("/staff/{staff_id}");
    let form = |kind: &'static str, title: &'static str, inner: Markup| {
        html! {
            details.noprint {
                summary { (title) }
                form.panel method="post" action=(action) {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    input type="hidden" name="form" value=(kind);
                    (inner)
                }
            }
        }
    };
    let me = viewer
        .principal
        .staff_id
        .and_then(|id| {
            state
                .ledger
                .projector
                .read(|h| h.staff.get(&id).map(|s| s.employee_no.as_str().to_string()))
                .ok()
                .flatten()
        })
        .unwrap_or_default();
    let this_year = FiscalYear::of(crate::application::today_jst()).year();
    html! {
        h2 { "記録する" }
        p.small.muted { "記録は取り消せません。誤りは訂正として記録され、監査証跡に残ります。面談の記録と評価の所見は暗号化して保存されます。" }
        @if administer {
            (form("grade", "級の変更（昇任など）", html! {
                div.row {
                    div.field { label { "新しい級" } select name="grade" { (grades()) } }
                    div.field { label { "発令日" } input type="date" name="effective_on" required; }
                    div.field { label { "事由" } select name="reason" { (options(GradeChangeReason::ALL, GradeChangeReason::as_str, GradeChangeReason::label_ja)) } }
                    button type="submit" { "級の変更を記録" }
                }
            }))
            (form("transfer", "異動", html! {
                div.row {
                    div.field { label { "異動先" } input type="text" name="to_department" required size="16"; }
                    div.field { label { "部門" } select name="department_kind" { (options(DepartmentKind::ALL, DepartmentKind::as_str, DepartmentKind::label_ja)) } }
                    div.field { label { "発令日" } input type="date" name="effective_on" required; }
                    div.field { label { "種別" } select name="kind" { (options(TransferKind::ALL, TransferKind::as_str, TransferKind::label_ja)) } }
                    button type="submit" { "異動を記録" }
                }
            }))
            (form("separation", "退職", html! {
                div.row {
                    div.field { label { "退職日" } input type="date" name="effective_on" required; }
                    div.field { label { "事由" } select name="reason" { (options(SeparationReason::ALL, SeparationReason::as_str, SeparationReason::label_ja)) } }
                    button.danger type="submit" { "退職を記録" }
                }
            }))
        }
        @if record_about {
            (form("interview", "面談の記録", html! {
                div.row {
                    div.field { label { "種類" } select name="kind" { (options(InterviewKind::ALL, InterviewKind::as_str, InterviewKind::label_ja)) } }
                    div.field { label { "実施日" } input type="date" name="held_on" required; }
                    div.field { label { "面談者（職員番号）" } input type="text" name="interviewer" required size="10" value=(me); }
                }
                div.field { label { "記録" } textarea name="note" required {} }
                button type="submit" { "面談を記録" }
            }))
            (form("evaluation", "人事評価の記録", html! {
                div.row {
                    div.field { label { "年度" } input type="number" name="fiscal_year" required value=(this_year) min="1989" max="2200"; }
                    div.field { label { "期間" } select name="period" { (options(EvaluationPeriod::ALL, EvaluationPeriod::as_str, EvaluationPeriod::label_ja)) } }
                    div.field { label { "評価者（職員番号）" } input type="text" name="evaluator" required size="10" value=(me); }
                    div.field { label { "総合" } select name="overall" { (options(OverallRating::ALL, OverallRating::as_str, OverallRating::label_ja)) } }
                }
                div.field { label { "所見" } textarea name="comment" {} }
                button type="submit" { "人事評価を記録" }
            }))
        }
    }
}

/// The request a staff form stands for, and the notice code when it is recorded.
fn request(fields: &Fields) -> Result<(StaffRequest, &'static str), String> {
    Ok(match field(fields, "form") {
        "grade" => (
            StaffRequest::Other(StaffCommand::ChangeGrade {
                grade: grade(fields)?,
                effective_on: date(fields, "effective_on", "発令日")?,
                reason: choice(fields, "reason", "事由")?,
            }),
            "grade",
        ),
        "transfer" => (
            StaffRequest::Other(StaffCommand::Transfer {
                to_department: text(fields, "to_department", "異動先")?,
                department_kind: choice(fields, "department_kind", "部門")?,
                effective_on: date(fields, "effective_on", "発令日")?,
                kind: choice(fields, "kind", "種別")?,
            }),
            "transfer",
        ),
        "separation" => (
            StaffRequest::Other(StaffCommand::Separate {
                effective_on: date(fields, "effective_on", "退職日")?,
                reason: choice(fields, "reason", "事由")?,
            }),
            "separation",
        ),
        "interview" => (
            StaffRequest::RecordInterview {
                interview_id: Uuid::new_v4(),
                kind: choice(fields, "kind", "種類")?,
                held_on: date(fields, "held_on", "実施日")?,
                interviewer_id: person(fields, "interviewer", "面談者")?,
                note: text(fields, "note", "記録")?,
            },
            "interview",
        ),
        "evaluation" => (
            StaffRequest::RecordEvaluation {
                evaluation_id: Uuid::new_v4(),
                fiscal_year: field(fields, "fiscal_year")
                    .parse::<i32>()
                    .ok()
                    .and_then(|y| FiscalYear::new(y).ok())
                    .ok_or_else(|| "年度を入力してください。".to_string())?,
                period: choice(fields, "period", "期間")?,
                evaluator_id: person(fields, "evaluator", "評価者")?,
                overall: choice(fields, "overall", "総合")?,
                competencies: BTreeMap::new(),
                comment: match field(fields, "comment") {
                    "" => None,
                    _ => Some(text(fields, "comment", "所見")?),
                },
            },
            "evaluation",
        ),
        _ => return Err("フォームの種類を読めません。".into()),
    })
}

async fn execute(state: &AppState, viewer: &Viewer, command: Command) -> Result<(), PageError> {
    let request_id = Uuid::new_v4().to_string();
    let actor = Actor {
        principal: &viewer.principal,
        request_id: &request_id,
        as_of: Some(viewer.head),
        unconfirmed: None,
    };
    Service::new(&state.ledger).execute(&actor, command).await?;
    Ok(())
}

pub async fn record(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    PageForm(fields): PageForm<Fields>,
) -> PageResult<Response> {
    viewer.check_csrf(field(&fields, "csrf"))?;
    let staff_id =
        Uuid::parse_str(&id).map_err(|_| PageError::not_found("その職員はいません。"))?;
    let (request, done) = match request(&fields) {
        Ok(parts) => parts,
        Err(problem) => {
            return render(
                &state,
                &viewer,
                staff_id,
                Some(Notice::Refused(problem)),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    };
    let command = Command::Staff {
        staff_id,
        command: request,
    };
    match execute(&state, &viewer, command).await {
        Ok(()) => Ok(Redirect::to(&format!("/staff/{staff_id}?done={done}")).into_response()),
        Err(PageError::Refused(status, detail)) => {
            render(
                &state,
                &viewer,
                staff_id,
                Some(Notice::Refused(detail)),
                status,
            )
            .await
        }
        Err(other) => Err(other),
    }
}

fn register_form(viewer: &Viewer, problem: Option<&str>) -> Markup {
    html! {
        h1 { "職員の登録" }
        @if let Some(problem) = problem {
            p.error role="alert" { "登録できませんでした：" (problem) " 何も記録していません。" }
        }
        form.panel method="post" action="/staff/new" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            div.row {
                div.field { label { "職員番号" } input type="text" name="employee_no" required size="10"; }
                div.field { label { "氏名" } input type="text" name="name" required size="20"; }
                div.field { label { "氏名（カナ）" } input type="text" name="name_kana" size="20"; }
                div.field { label { "性別" } select name="gender" { (options(Gender::ALL, Gender::as_str, Gender::label_ja)) } }
            }
            div.row {
                div.field { label { "採用日" } input type="date" name="hired_on" required; }
                div.field { label { "級" } select name="grade" { (grades()) } }
                div.field { label { "職種" } select name="job_type" { (options(JobType::ALL, JobType::as_str, JobType::label_ja)) } }
                div.field { label { "任用" } select name="employment" { (options(Employment::ALL, Employment::as_str, Employment::label_ja)) } }
            }
            div.row {
                div.field { label { "所属" } input type="text" name="department" required size="16"; }
                div.field { label { "部門" } select name="department_kind" { (options(DepartmentKind::ALL, DepartmentKind::as_str, DepartmentKind::label_ja)) } }
                button type="submit" { "登録する" }
            }
            p.small.muted { "氏名は本人ごとの鍵で暗号化して保存されます。" }
        }
    }
}

async fn new_form(State(state): State<AppState>, viewer: Viewer) -> PageResult<Response> {
    viewer.require(&state, Action::Administer)?;
    Ok(page(
        Page::of("職員の登録", &viewer, &state, Section::Staff),
        register_form(&viewer, None),
    )
    .into_response())
}

async fn register(
    State(state): State<AppState>,
    viewer: Viewer,
    PageForm(fields): PageForm<Fields>,
) -> PageResult<Response> {
    viewer.check_csrf(field(&fields, "csrf"))?;
    viewer.require(&state, Action::Administer)?;
    let parsed = (|| -> Result<(Uuid, NewStaff), String> {
        let employee_no =
            EmployeeNo::parse(field(&fields, "employee_no")).map_err(|e| e.to_string())?;
        Ok((
            staff_id_of(&employee_no),
            NewStaff {
                employee_no,
                name: text(&fields, "name", "氏名")?,
                name_kana: match field(&fields, "name_kana") {
                    "" => None,
                    _ => Some(text(&fields, "name_kana", "氏名（カナ）")?),
                },
                gender: choice(&fields, "gender", "性別")?,
                hired_on: date(&fields, "hired_on", "採用日")?,
                grade: grade(&fields)?,
                job_type: choice(&fields, "job_type", "職種")?,
                employment: choice(&fields, "employment", "任用")?,
                department: text(&fields, "department", "所属")?,
                department_kind: choice(&fields, "department_kind", "部門")?,
            },
        ))
    })();
    let refused = |problem: &str, status: StatusCode| {
        let mut response = page(
            Page::of("職員の登録", &viewer, &state, Section::Staff),
            register_form(&viewer, Some(problem)),
        )
        .into_response();
        *response.status_mut() = status;
        response
    };
    let (staff_id, new) = match parsed {
        Ok(parts) => parts,
        Err(problem) => return Ok(refused(&problem, StatusCode::BAD_REQUEST)),
    };
    let command = Command::Staff {
        staff_id,
        command: StaffRequest::Register(new),
    };
    match execute(&state, &viewer, command).await {
        Ok(()) => Ok(Redirect::to(&format!("/staff/{staff_id}?done=registered")).into_response()),
        Err(PageError::Refused(status, detail)) => Ok(refused(&detail, status)),
        Err(other) => Err(other),
    }
}
