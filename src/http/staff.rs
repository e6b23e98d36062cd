//! `/staff`: registration, grades, transfers, separation and rehire, interviews, evaluations
//! and disputes; and the staff history with confidential text shown only to those allowed.

use super::error::{ApiError, ApiResult};
use super::extract::{AppJson, AppPath, Caller, Commander, RequestId};
use super::openapi::{CommandResponses, QueryResponses};
use super::{rfc3339_ms, run, AppState};
use crate::application::policy::Action;
use crate::application::{Command, NewStaff, Service, StaffRequest};
use crate::ledger::Ledger;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use kiroku_domain::staff::*;
use kiroku_domain::values::*;
use kiroku_projections::history::StaffRecord;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(show))
        .routes(routes!(change_grade))
        .routes(routes!(transfer))
        .routes(routes!(separate))
        .routes(routes!(rehire))
        .routes(routes!(erase))
        .routes(routes!(record_interview))
        .routes(routes!(correct_interview))
        .routes(routes!(withdraw_interview))
        .routes(routes!(record_evaluation))
        .routes(routes!(correct_evaluation))
        .routes(routes!(dispute_evaluation))
        .routes(routes!(resolve_dispute))
}

pub use crate::application::today_jst;

fn command(staff_id: Uuid, command: StaffRequest) -> Command {
    Command::Staff { staff_id, command }
}

#[derive(Deserialize, utoipa::ToSchema)]
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

#[utoipa::path(post, path = "/staff", tag = "職員", request_body = RegisterBody, responses(CommandResponses))]
#[tracing::instrument(skip_all)]
async fn register(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppJson(body): AppJson<RegisterBody>,
) -> ApiResult<Response> {
    let staff_id = staff_id_of(&body.employee_no);
    let request = StaffRequest::Register(NewStaff {
        employee_no: body.employee_no,
        name: body.name,
        name_kana: body.name_kana,
        gender: body.gender,
        hired_on: body.hired_on,
        grade: body.grade,
        job_type: body.job_type,
        employment: body.employment,
        department: body.department,
        department_kind: body.department_kind,
    });
    let command = command(staff_id, request);
    run(
        &state,
        &caller,
        &request_id,
        command,
        StatusCode::CREATED,
        json!({}),
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct GradeBody {
    grade: Grade,
    effective_on: Date,
    reason: GradeChangeReason,
}

#[utoipa::path(post, path = "/staff/{id}/grade-changes", tag = "職員", params(("id" = Uuid, Path, description = "職員ID")), request_body = GradeBody, responses(CommandResponses))]
async fn change_grade(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath(staff_id): AppPath<Uuid>,
    AppJson(body): AppJson<GradeBody>,
) -> ApiResult<Response> {
    let request = StaffRequest::Other(StaffCommand::ChangeGrade {
        grade: body.grade,
        effective_on: body.effective_on,
        reason: body.reason,
    });
    let command = command(staff_id, request);
    run(
        &state,
        &caller,
        &request_id,
        command,
        StatusCode::OK,
        json!({}),
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    to_department: Text,
    department_kind: DepartmentKind,
    effective_on: Date,
    kind: TransferKind,
}

#[utoipa::path(post, path = "/staff/{id}/transfers", tag = "職員", params(("id" = Uuid, Path, description = "職員ID")), request_body = TransferBody, responses(CommandResponses))]
async fn transfer(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath(staff_id): AppPath<Uuid>,
    AppJson(body): AppJson<TransferBody>,
) -> ApiResult<Response> {
    let request = StaffRequest::Other(StaffCommand::Transfer {
        to_department: body.to_department,
        department_kind: body.department_kind,
        effective_on: body.effective_on,
        kind: body.kind,
    });
    let command = command(staff_id, request);
    run(
        &state,
        &caller,
        &request_id,
        command,
        StatusCode::OK,
        json!({}),
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SeparationBody {
    effective_on: Date,
    reason: SeparationReason,
}

#[utoipa::path(post, path = "/staff/{id}/separations", tag = "職員", params(("id" = Uuid, Path, description = "職員ID")), request_body = SeparationBody, responses(CommandResponses))]
async fn separate(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath(staff_id): AppPath<Uuid>,
    AppJson(body): AppJson<SeparationBody>,
) -> ApiResult<Response> {
    let request = StaffRequest::Other(StaffCommand::Separate {
        effective_on: body.effective_on,
        reason: body.reason,
    });
    let command = command(staff_id, request);
    run(
        &state,
        &caller,
        &request_id,
        command,
        StatusCode::OK,
        json!({}),
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ErasureBody {
    reason: Text,
}

/// Erases the person's personal data (crypto-shredding): the erasure is recorded, then their
/// key is destroyed. hr_admin only (the policy's `Administer`).
#[utoipa::path(post, path = "/staff/{id}/erasure", tag = "職員", params(("id" = Uuid, Path, description = "職員ID")), request_body = ErasureBody, responses(CommandResponses))]
async fn erase(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath(staff_id): AppPath<Uuid>,
    AppJson(body): AppJson<ErasureBody>,
) -> ApiResult<Response> {
    let request = StaffRequest::Other(StaffCommand::ErasePersonalData {
        reason: body.reason,
    });
    let command = command(staff_id, request);
    run(
        &state,
        &caller,
        &request_id,
        command,
        StatusCode::OK,
        json!({}),
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RehireBody {
    effective_on: Date,
    grade: Grade,
    department: Text,
    department_kind: DepartmentKind,
    employment: Employment,
}

#[utoipa::path(post, path = "/staff/{id}/rehires", tag = "職員", params(("id" = Uuid, Path, description = "職員ID")), request_body = RehireBody, responses(CommandResponses))]
async fn rehire(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath(staff_id): AppPath<Uuid>,
    AppJson(body): AppJson<RehireBody>,
) -> ApiResult<Response> {
    let request = StaffRequest::Other(StaffCommand::Rehire(Rehire {
        effective_on: body.effective_on,
        grade: body.grade,
        department: body.department,
        department_kind: body.department_kind,
        employment: body.employment,
    }));
    let command = command(staff_id, request);
    run(
        &state,
        &caller,
        &request_id,
        command,
        StatusCode::OK,
        json!({}),
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct InterviewBody {
    kind: InterviewKind,
    held_on: Date,
    interviewer_id: Uuid,
    note: Text,
}

#[utoipa::path(post, path = "/staff/{id}/interviews", tag = "職員", params(("id" = Uuid, Path, description = "職員ID")), request_body = InterviewBody, responses(CommandResponses))]
async fn record_interview(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath(staff_id): AppPath<Uuid>,
    AppJson(body): AppJson<InterviewBody>,
) -> ApiResult<Response> {
    let interview_id = Uuid::new_v4();
    let request = StaffRequest::RecordInterview {
        interview_id,
        kind: body.kind,
        held_on: body.held_on,
        interviewer_id: body.interviewer_id,
        note: body.note,
    };
    let extra = json!({"interview_id": interview_id});
    let command = command(staff_id, request);
    run(
        &state,
        &caller,
        &request_id,
        command,
        StatusCode::CREATED,
        extra,
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct InterviewCorrectionBody {
    kind: Option<InterviewKind>,
    held_on: Option<Date>,
    note: Option<Text>,
    reason: Text,
}

#[utoipa::path(post, path = "/staff/{id}/interviews/{iid}/corrections", tag = "職員", params(("id" = Uuid, Path, description = "職員ID"), ("iid" = Uuid, Path, description = "面談ID")), request_body = InterviewCorrectionBody, responses(CommandResponses))]
async fn correct_interview(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath((staff_id, interview_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<InterviewCorrectionBody>,
) -> ApiResult<Response> {
    let request = StaffRequest::CorrectInterview {
        interview_id,
        kind: body.kind,
        held_on: body.held_on,
        note: body.note,
        reason: body.reason,
    };
    let command = command(staff_id, request);
    run(
        &state,
        &caller,
        &request_id,
        command,
        StatusCode::OK,
        json!({}),
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: Text,
}

#[utoipa::path(post, path = "/staff/{id}/interviews/{iid}/withdrawals", tag = "職員", params(("id" = Uuid, Path, description = "職員ID"), ("iid" = Uuid, Path, description = "面談ID")), request_body = ReasonBody, responses(CommandResponses))]
async fn withdraw_interview(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath((staff_id, interview_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<ReasonBody>,
) -> ApiResult<Response> {
    let request = StaffRequest::Other(StaffCommand::WithdrawInterview {
        interview_id,
        reason: body.reason,
    });
    let command = command(staff_id, request);
    run(
        &state,
        &caller,
        &request_id,
        command,
        StatusCode::OK,
        json!({}),
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EvaluationBody {
    fiscal_year: FiscalYear,
    period: EvaluationPeriod,
    evaluator_id: Uuid,
    overall: OverallRating,
    #[serde(default)]
    competencies: BTreeMap<String, u8>,
    comment: Option<Text>,
}

#[utoipa::path(post, path = "/staff/{id}/evaluations", tag = "職員", params(("id" = Uuid, Path, description = "職員ID")), request_body = EvaluationBody, responses(CommandResponses))]
async fn record_evaluation(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath(staff_id): AppPath<Uuid>,
    AppJson(body): AppJson<EvaluationBody>,
) -> ApiResult<Response> {
    let evaluation_id = Uuid::new_v4();
    let request = StaffRequest::RecordEvaluation {
        evaluation_id,
        fiscal_year: body.fiscal_year,
        period: body.period,
        evaluator_id: body.evaluator_id,
        overall: body.overall,
        competencies: body.competencies,
        comment: body.comment,
    };
    let extra = json!({"evaluation_id": evaluation_id});
    let command = command(staff_id, request);
    run(
        &state,
        &caller,
        &request_id,
        command,
        StatusCode::CREATED,
        extra,
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EvaluationCorrectionBody {
    overall: Option<OverallRating>,
    competencies: Option<BTreeMap<String, u8>>,
    comment: Option<Text>,
    reason: Text,
}

#[utoipa::path(post, path = "/staff/{id}/evaluations/{eid}/corrections", tag = "職員", params(("id" = Uuid, Path, description = "職員ID"), ("eid" = Uuid, Path, description = "人事評価ID")), request_body = EvaluationCorrectionBody, responses(CommandResponses))]
async fn correct_evaluation(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath((staff_id, evaluation_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<EvaluationCorrectionBody>,
) -> ApiResult<Response> {
    let request = StaffRequest::CorrectEvaluation {
        evaluation_id,
        overall: body.overall,
        competencies: body.competencies,
        comment: body.comment,
        reason: body.reason,
    };
    let command = command(staff_id, request);
    run(
        &state,
        &caller,
        &request_id,
        command,
        StatusCode::OK,
        json!({}),
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DisputeBody {
    text: Text,
}

/// 苦情・申出: the staff member about their own evaluation, or HR on their behalf.
#[utoipa::path(post, path = "/staff/{id}/evaluations/{eid}/disputes", tag = "職員", params(("id" = Uuid, Path, description = "職員ID"), ("eid" = Uuid, Path, description = "人事評価ID")), request_body = DisputeBody, responses(CommandResponses))]
async fn dispute_evaluation(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath((staff_id, evaluation_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<DisputeBody>,
) -> ApiResult<Response> {
    let request = StaffRequest::Dispute {
        evaluation_id,
        text: body.text,
    };
    let command = command(staff_id, request);
    run(
        &state,
        &caller,
        &request_id,
        command,
        StatusCode::CREATED,
        json!({}),
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ResolutionBody {
    outcome: Text,
    reason: Text,
}

#[utoipa::path(post, path = "/staff/{id}/evaluations/{eid}/dispute-resolutions", tag = "職員", params(("id" = Uuid, Path, description = "職員ID"), ("eid" = Uuid, Path, description = "人事評価ID")), request_body = ResolutionBody, responses(CommandResponses))]
async fn resolve_dispute(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath((staff_id, evaluation_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<ResolutionBody>,
) -> ApiResult<Response> {
    let request = StaffRequest::ResolveDispute {
        evaluation_id,
        outcome: body.outcome,
        reason: body.reason,
    };
    let command = command(staff_id, request);
    run(
        &state,
        &caller,
        &request_id,
        command,
        StatusCode::OK,
        json!({}),
    )
    .await
}

/// Opens a sealed text for a reader who may see it; `null` when the key was destroyed.
async fn open(ledger: &Ledger, staff_id: Uuid, sealed: &Sealed) -> ApiResult<Value> {
    Ok(match ledger.keys.open(staff_id, sealed).await? {
        Some(clear) => Value::String(clear),
        None => Value::Null,
    })
}

#[utoipa::path(get, path = "/staff/{id}", tag = "職員", params(("id" = Uuid, Path, description = "職員ID")), responses(QueryResponses))]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(staff_id): AppPath<Uuid>,
) -> ApiResult<Json<Value>> {
    let ledger = &state.ledger;
    let principal = &caller.0;
    let record: Option<StaffRecord> = ledger.projector.read(|h| h.staff.get(&staff_id).cloned())?;
    let service = Service::new(ledger);
    service.require(principal, Action::ReadStaff(staff_id))?;
    let record =
        record.ok_or_else(|| ApiError::not_found("staff_not_found", "この ID の職員はいません"))?;
    let today = today_jst();

    let name = open(ledger, staff_id, &record.name).await?;
    let name_kana = match &record.name_kana {
        Some(kana) => open(ledger, staff_id, kana).await?,
        None => Value::Null,
    };
    let mut interviews = Vec::new();
    for i in &record.interviews {
        let may_read = service.allows(
            principal,
            Action::ReadInterviewNote {
                interviewer: i.interviewer_id,
            },
        )?;
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
        let may_read = service.allows(
            principal,
            Action::ReadEvaluationText {
                evaluator: e.evaluator_id,
                subject: staff_id,
            },
        )?;
        let comment = match (&e.comment, may_read) {
            (Some(comment), true) => open(ledger, staff_id, comment).await?,
            _ => Value::Null,
        };
        let dispute = match (&e.dispute, may_read) {
            (Some(dispute), true) => open(ledger, staff_id, dispute).await?,
            _ => Value::Null,
        };
        let dispute_outcome = match (&e.dispute_outcome, may_read) {
            (Some(outcome), true) => open(ledger, staff_id, outcome).await?,
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
            "dispute_outcome": dispute_outcome,
            "dispute_resolved": e.dispute_outcome.is_some(),
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
