//! `/staff`: registration, grades, transfers, separation and rehire, interviews, evaluations
//! and disputes; and the staff history with confidential text shown only to those allowed.

use super::error::{ApiError, ApiResult};
use super::extract::{AppJson, AppPath, Caller, RequestId};
use super::{accepted, rfc3339_ms, AppState};
use crate::ledger::{Ledger, Meta};
use crate::storage::tokens::{Principal, Role};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use kiroku_domain::staff::*;
use kiroku_domain::values::*;
use kiroku_projections::history::StaffRecord;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/staff", post(register))
        .route("/staff/{id}", get(show))
        .route("/staff/{id}/grade-changes", post(change_grade))
        .route("/staff/{id}/transfers", post(transfer))
        .route("/staff/{id}/separations", post(separate))
        .route("/staff/{id}/rehires", post(rehire))
        .route("/staff/{id}/interviews", post(record_interview))
        .route(
            "/staff/{id}/interviews/{iid}/corrections",
            post(correct_interview),
        )
        .route(
            "/staff/{id}/interviews/{iid}/withdrawals",
            post(withdraw_interview),
        )
        .route("/staff/{id}/evaluations", post(record_evaluation))
        .route(
            "/staff/{id}/evaluations/{eid}/corrections",
            post(correct_evaluation),
        )
        .route(
            "/staff/{id}/evaluations/{eid}/disputes",
            post(dispute_evaluation),
        )
        .route(
            "/staff/{id}/evaluations/{eid}/dispute-resolutions",
            post(resolve_dispute),
        )
}

/// Today in Japan (JST, UTC+9), the date "current" department and grade refer to.
pub fn today_jst() -> Date {
    (chrono::Utc::now() + chrono::Duration::hours(9)).date_naive()
}

/// Whether `principal` is a manager of the department `staff_id` currently belongs to.
fn manages(ledger: &Ledger, principal: &Principal, staff_id: Uuid) -> ApiResult<bool> {
    if principal.role != Role::Manager {
        return Ok(false);
    }
    let Some(manager_id) = principal.staff_id else {
        return Ok(false);
    };
    let today = today_jst();
    Ok(ledger.projector.read(|h| {
        let department = |id: &Uuid| {
            h.staff
                .get(id)
                .and_then(|s| s.department_on(today))
                .map(|d| d.department.clone())
        };
        match (department(&manager_id), department(&staff_id)) {
            (Some(mine), Some(theirs)) => mine == theirs,
            _ => false,
        }
    })?)
}

/// hr_admin, or a manager of the staff member's department; 404 for unknown staff.
fn require_hr_or_manager(ledger: &Ledger, caller: &Caller, staff_id: Uuid) -> ApiResult<()> {
    require_known(ledger, staff_id)?;
    match caller.0.role {
        Role::HrAdmin => Ok(()),
        Role::Manager if manages(ledger, &caller.0, staff_id)? => Ok(()),
        _ => Err(ApiError::forbidden()),
    }
}

fn require_known(ledger: &Ledger, staff_id: Uuid) -> ApiResult<()> {
    if is_registered(ledger, staff_id)? {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "staff_not_found",
            "この ID の職員はいません",
        ))
    }
}

pub fn is_registered(ledger: &Ledger, staff_id: Uuid) -> ApiResult<bool> {
    Ok(ledger.projector.read(|h| h.staff.contains_key(&staff_id))?)
}

async fn run(
    state: &AppState,
    staff_id: Uuid,
    command: StaffCommand,
    meta: Meta,
    status: StatusCode,
    extra: Value,
) -> ApiResult<Response> {
    let ledger = &state.ledger;
    let appended = ledger
        .execute(&ledger.staff, &staff_id.to_string(), command, &meta)
        .await?;
    Ok(accepted(status, staff_id.to_string(), &appended, extra))
}

fn text(value: &str, field: &str) -> ApiResult<Text> {
    Text::parse(value).map_err(|e| ApiError::validation(format!("{field}: {e}")))
}

/// Checks a piece of personal text and seals it under the staff member's key.
async fn seal(ledger: &Ledger, staff_id: Uuid, value: &str, field: &str) -> ApiResult<Sealed> {
    let checked = text(value, field)?;
    Ok(ledger.keys.seal(staff_id, checked.as_str()).await?)
}

/// [`seal`] for optional fields.
async fn seal_optional(
    ledger: &Ledger,
    staff_id: Uuid,
    value: Option<&String>,
    field: &str,
) -> ApiResult<Option<Sealed>> {
    match value {
        Some(value) => Ok(Some(seal(ledger, staff_id, value, field).await?)),
        None => Ok(None),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    employee_no: EmployeeNo,
    name: Text,
    name_kana: Option<Text>,
    gender: Gender,
    hired_on: Date,
    grade: Grade,
    job_type: JobType,
    employment: Employment,
    department: Text,
    department_kind: DepartmentKind,
}

#[tracing::instrument(skip_all)]
async fn register(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    AppJson(body): AppJson<RegisterBody>,
) -> ApiResult<Response> {
    let principal = caller.require(&[Role::HrAdmin])?;
    let staff_id = staff_id_of(&body.employee_no);
    let keys = &state.ledger.keys;
    let name = keys.seal(staff_id, body.name.as_str()).await?;
    let name_kana = match &body.name_kana {
        Some(kana) => Some(keys.seal(staff_id, kana.as_str()).await?),
        None => None,
    };
    let command = StaffCommand::Register(Registration {
        employee_no: body.employee_no,
        name,
        name_kana,
        gender: body.gender,
        hired_on: body.hired_on,
        grade: body.grade,
        job_type: body.job_type,
        employment: body.employment,
        department: body.department,
        department_kind: body.department_kind,
    });
    let meta = Meta::new(principal, &request_id);
    run(
        &state,
        staff_id,
        command,
        meta,
        StatusCode::CREATED,
        json!({}),
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GradeBody {
    grade: Grade,
    effective_on: Date,
    reason: GradeChangeReason,
}

async fn change_grade(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    AppPath(staff_id): AppPath<Uuid>,
    AppJson(body): AppJson<GradeBody>,
) -> ApiResult<Response> {
    let principal = caller.require(&[Role::HrAdmin])?;
    let command = StaffCommand::ChangeGrade {
        grade: body.grade,
        effective_on: body.effective_on,
        reason: body.reason,
    };
    let meta = Meta::new(principal, &request_id).with_reason(body.reason.as_str());
    run(&state, staff_id, command, meta, StatusCode::OK, json!({})).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    to_department: Text,
    department_kind: DepartmentKind,
    effective_on: Date,
    kind: TransferKind,
}

async fn transfer(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    AppPath(staff_id): AppPath<Uuid>,
    AppJson(body): AppJson<TransferBody>,
) -> ApiResult<Response> {
    let principal = caller.require(&[Role::HrAdmin])?;
    let command = StaffCommand::Transfer {
        to_department: body.to_department,
        department_kind: body.department_kind,
        effective_on: body.effective_on,
        kind: body.kind,
    };
    let meta = Meta::new(principal, &request_id);
    run(&state, staff_id, command, meta, StatusCode::OK, json!({})).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeparationBody {
    effective_on: Date,
    reason: SeparationReason,
}

async fn separate(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    AppPath(staff_id): AppPath<Uuid>,
    AppJson(body): AppJson<SeparationBody>,
) -> ApiResult<Response> {
    let principal = caller.require(&[Role::HrAdmin])?;
    let command = StaffCommand::Separate {
        effective_on: body.effective_on,
        reason: body.reason,
    };
    let meta = Meta::new(principal, &request_id).with_reason(body.reason.as_str());
    run(&state, staff_id, command, meta, StatusCode::OK, json!({})).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RehireBody {
    effective_on: Date,
    grade: Grade,
    department: Text,
    department_kind: DepartmentKind,
    employment: Employment,
}

async fn rehire(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    AppPath(staff_id): AppPath<Uuid>,
    AppJson(body): AppJson<RehireBody>,
) -> ApiResult<Response> {
    let principal = caller.require(&[Role::HrAdmin])?;
    let command = StaffCommand::Rehire(Rehire {
        effective_on: body.effective_on,
        grade: body.grade,
        department: body.department,
        department_kind: body.department_kind,
        employment: body.employment,
    });
    let meta = Meta::new(principal, &request_id);
    run(&state, staff_id, command, meta, StatusCode::OK, json!({})).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InterviewBody {
    kind: InterviewKind,
    held_on: Date,
    interviewer_id: Uuid,
    note: String,
}

async fn record_interview(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    AppPath(staff_id): AppPath<Uuid>,
    AppJson(body): AppJson<InterviewBody>,
) -> ApiResult<Response> {
    require_hr_or_manager(&state.ledger, &caller, staff_id)?;
    let note = seal(&state.ledger, staff_id, &body.note, "note").await?;
    let interview_id = Uuid::new_v4();
    let command = StaffCommand::RecordInterview {
        interview: Interview {
            interview_id,
            kind: body.kind,
            held_on: body.held_on,
            interviewer_id: body.interviewer_id,
            note,
        },
        interviewer_registered: is_registered(&state.ledger, body.interviewer_id)?,
    };
    let meta = Meta::new(&caller.0, &request_id);
    let extra = json!({"interview_id": interview_id});
    run(&state, staff_id, command, meta, StatusCode::CREATED, extra).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InterviewCorrectionBody {
    kind: Option<InterviewKind>,
    held_on: Option<Date>,
    note: Option<String>,
    reason: Text,
}

async fn correct_interview(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    AppPath((staff_id, interview_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<InterviewCorrectionBody>,
) -> ApiResult<Response> {
    require_hr_or_manager(&state.ledger, &caller, staff_id)?;
    let note = seal_optional(&state.ledger, staff_id, body.note.as_ref(), "note").await?;
    let meta = Meta::new(&caller.0, &request_id).with_reason(body.reason.as_str());
    let command = StaffCommand::CorrectInterview {
        interview_id,
        kind: body.kind,
        held_on: body.held_on,
        note,
        reason: body.reason,
    };
    run(&state, staff_id, command, meta, StatusCode::OK, json!({})).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: Text,
}

async fn withdraw_interview(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    AppPath((staff_id, interview_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<ReasonBody>,
) -> ApiResult<Response> {
    require_hr_or_manager(&state.ledger, &caller, staff_id)?;
    let meta = Meta::new(&caller.0, &request_id).with_reason(body.reason.as_str());
    let command = StaffCommand::WithdrawInterview {
        interview_id,
        reason: body.reason,
    };
    run(&state, staff_id, command, meta, StatusCode::OK, json!({})).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvaluationBody {
    fiscal_year: FiscalYear,
    period: EvaluationPeriod,
    evaluator_id: Uuid,
    overall: OverallRating,
    #[serde(default)]
    competencies: BTreeMap<String, u8>,
    comment: Option<String>,
}

async fn record_evaluation(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    AppPath(staff_id): AppPath<Uuid>,
    AppJson(body): AppJson<EvaluationBody>,
) -> ApiResult<Response> {
    require_hr_or_manager(&state.ledger, &caller, staff_id)?;
    let comment = seal_optional(&state.ledger, staff_id, body.comment.as_ref(), "comment").await?;
    let evaluation_id = Uuid::new_v4();
    let command = StaffCommand::RecordEvaluation {
        evaluation: Evaluation {
            evaluation_id,
            fiscal_year: body.fiscal_year,
            period: body.period,
            evaluator_id: body.evaluator_id,
            overall: body.overall,
            competencies: body.competencies,
            comment,
        },
        evaluator_registered: is_registered(&state.ledger, body.evaluator_id)?,
    };
    let meta = Meta::new(&caller.0, &request_id);
    let extra = json!({"evaluation_id": evaluation_id});
    run(&state, staff_id, command, meta, StatusCode::CREATED, extra).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvaluationCorrectionBody {
    overall: Option<OverallRating>,
    competencies: Option<BTreeMap<String, u8>>,
    comment: Option<String>,
    reason: Text,
}

async fn correct_evaluation(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    AppPath((staff_id, evaluation_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<EvaluationCorrectionBody>,
) -> ApiResult<Response> {
    require_hr_or_manager(&state.ledger, &caller, staff_id)?;
    let comment = seal_optional(&state.ledger, staff_id, body.comment.as_ref(), "comment").await?;
    let meta = Meta::new(&caller.0, &request_id).with_reason(body.reason.as_str());
    let command = StaffCommand::CorrectEvaluation {
        evaluation_id,
        overall: body.overall,
        competencies: body.competencies,
        comment,
        reason: body.reason,
    };
    run(&state, staff_id, command, meta, StatusCode::OK, json!({})).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisputeBody {
    text: String,
}

/// 苦情・申出: the staff member about their own evaluation, or HR on their behalf.
async fn dispute_evaluation(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    AppPath((staff_id, evaluation_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<DisputeBody>,
) -> ApiResult<Response> {
    let allowed = caller.0.role == Role::HrAdmin
        || (caller.0.role == Role::Staff && caller.0.staff_id == Some(staff_id));
    if !allowed {
        return Err(ApiError::forbidden());
    }
    require_known(&state.ledger, staff_id)?;
    let command = StaffCommand::DisputeEvaluation {
        evaluation_id,
        text: seal(&state.ledger, staff_id, &body.text, "text").await?,
    };
    let meta = Meta::new(&caller.0, &request_id);
    run(
        &state,
        staff_id,
        command,
        meta,
        StatusCode::CREATED,
        json!({}),
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolutionBody {
    outcome: Text,
    reason: Text,
}

async fn resolve_dispute(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    AppPath((staff_id, evaluation_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<ResolutionBody>,
) -> ApiResult<Response> {
    let principal = caller.require(&[Role::HrAdmin])?;
    let meta = Meta::new(principal, &request_id).with_reason(body.reason.as_str());
    let command = StaffCommand::ResolveDispute {
        evaluation_id,
        outcome: body.outcome,
        reason: body.reason,
    };
    run(&state, staff_id, command, meta, StatusCode::OK, json!({})).await
}

/// Opens a sealed text for a reader who may see it; `null` when the key was destroyed.
async fn open(ledger: &Ledger, staff_id: Uuid, sealed: &Sealed) -> ApiResult<Value> {
    Ok(match ledger.keys.open(staff_id, sealed).await? {
        Some(clear) => Value::String(clear),
        None => Value::Null,
    })
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(staff_id): AppPath<Uuid>,
) -> ApiResult<Json<Value>> {
    let ledger = &state.ledger;
    let principal = &caller.0;
    let record: Option<StaffRecord> = ledger.projector.read(|h| h.staff.get(&staff_id).cloned())?;
    let allowed = match principal.role {
        Role::HrAdmin | Role::Auditor => true,
        Role::Manager => manages(ledger, principal, staff_id)?,
        Role::Staff => principal.staff_id == Some(staff_id),
    };
    if !allowed {
        return Err(ApiError::forbidden());
    }
    let record =
        record.ok_or_else(|| ApiError::not_found("staff_not_found", "この ID の職員はいません"))?;
    let is_hr = principal.role == Role::HrAdmin;
    let me = principal.staff_id;
    let today = today_jst();

    let name = open(ledger, staff_id, &record.name).await?;
    let name_kana = match &record.name_kana {
        Some(kana) => open(ledger, staff_id, kana).await?,
        None => Value::Null,
    };
    let mut interviews = Vec::new();
    for i in &record.interviews {
        // Interview notes: HR and the interviewer only.
        let may_read = is_hr || me == Some(i.interviewer_id);
        let note = if may_read {
            open(ledger, staff_id, &i.note).await?
        } else {
            Value::Null
        };
        interviews.push(json!({
            "interview_id": i.interview_id,
            "kind": i.kind,
            "kind_label": i.kind.label_ja(),
            "held_on": i.held_on,
            "interviewer_id": i.interviewer_id,
            "note": note,
            "note_redacted": !may_read,
            "withdrawn": i.withdrawn,
            "corrections": i.corrections,
        }));
    }
    let mut evaluations = Vec::new();
    for e in &record.evaluations {
        // Evaluation comments and disputes: HR, the evaluator and the person evaluated.
        let may_read = is_hr || me == Some(e.evaluator_id) || me == Some(staff_id);
        let comment = match (&e.comment, may_read) {
            (Some(comment), true) => open(ledger, staff_id, comment).await?,
            _ => Value::Null,
        };
        let dispute = match (&e.dispute, may_read) {
            (Some(dispute), true) => open(ledger, staff_id, dispute).await?,
            _ => Value::Null,
        };
        evaluations.push(json!({
            "evaluation_id": e.evaluation_id,
            "fiscal_year": e.fiscal_year,
            "period": e.period,
            "evaluator_id": e.evaluator_id,
            "overall": e.overall,
            "competencies": e.competencies,
            "comment": comment,
            "dispute": dispute,
            "confidential_redacted": !may_read,
            "dispute_outcome": e.dispute_outcome,
            "corrections": e.corrections,
        }));
    }
    let trainings: Vec<Value> = ledger.projector.read(|h| {
        record
            .trainings
            .iter()
            .map(|t| {
                let session = h.sessions.get(&t.session_id);
                json!({
                    "session_id": t.session_id,
                    "course_code": session.map(|s| s.schedule.course_code.clone()),
                    "title": session.map(|s| s.schedule.title.clone()),
                    "category": session.map(|s| s.schedule.category),
                    "starts_on": session.map(|s| s.schedule.starts_on),
                    "status": t.status,
                    "completed_on": t.completed_on,
                    "understanding": t.understanding,
                    "revoked": t.revoked,
                })
            })
            .collect()
    })?;
    let department = record.department_on(today);
    Ok(Json(json!({
        "id": staff_id,
        "employee_no": record.employee_no,
        "name": name,
        "name_kana": name_kana,
        "personal_data_erased": name.is_null(),
        "gender": record.gender,
        "job_type": record.job_type,
        "in_service": record.in_service_on(today),
        "grade": record.grade_on(today),
        "department": department.map(|d| d.department.clone()),
        "department_kind": department.map(|d| d.department_kind),
        "service": record.service,
        "grades": record.grades,
        "departments": record.departments,
        "trainings": trainings,
        "interviews": interviews,
        "evaluations": evaluations,
        "as_of": rfc3339_ms(crate::storage::now_ms()),
    })))
}
