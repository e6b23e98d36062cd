//! `/sessions`: scheduling, enrolment with a waitlist, completions, corrections and
//! revocations; and the roster of a session.

use super::error::{ApiError, ApiResult};
use super::extract::{AppJson, AppPath, Caller, Commander, RequestId};
use super::openapi::{CommandResponses, QueryResponses};
use super::{accepted, AppState};
use crate::application::policy::Action;
use crate::application::{Command, Service};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use kiroku_domain::session::*;
use kiroku_domain::values::*;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(schedule))
        .routes(routes!(show))
        .routes(routes!(enrol))
        .routes(routes!(cancel))
        .routes(routes!(complete))
        .routes(routes!(correct))
        .routes(routes!(revoke))
}

/// Runs a session command; an enrolment answers with its status (enrolled or waitlisted).
async fn run(
    state: &AppState,
    caller: &Commander,
    request_id: &str,
    session_id: Uuid,
    command: SessionCommand,
    status: StatusCode,
) -> ApiResult<Response> {
    let command = Command::Session {
        session_id,
        command,
    };
    let appended = caller.execute(state, request_id, command).await?;
    let enrolment = appended
        .find("StaffEnrolled")
        .and_then(|e| e.payload.get("StaffEnrolled"))
        .and_then(|p| p.get("status"))
        .cloned();
    let extra = match enrolment {
        Some(status) => json!({ "status": status }),
        None => json!({}),
    };
    Ok(accepted(status, session_id.to_string(), &appended, extra))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ScheduleBody {
    course_code: Text,
    title: Text,
    category: TrainingCategory,
    provider: Text,
    delivery: Delivery,
    starts_on: Date,
    ends_on: Date,
    capacity: u32,
}

#[utoipa::path(post, path = "/sessions", tag = "研修", request_body = ScheduleBody, responses(CommandResponses))]
async fn schedule(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppJson(body): AppJson<ScheduleBody>,
) -> ApiResult<Response> {
    let command = SessionCommand::Schedule(Schedule {
        course_code: body.course_code,
        title: body.title,
        category: body.category,
        provider: body.provider,
        delivery: body.delivery,
        starts_on: body.starts_on,
        ends_on: body.ends_on,
        capacity: body.capacity,
    });
    run(
        &state,
        &caller,
        &request_id,
        Uuid::new_v4(),
        command,
        StatusCode::CREATED,
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EnrolBody {
    staff_id: Uuid,
}

#[utoipa::path(post, path = "/sessions/{id}/enrolments", tag = "研修", params(("id" = Uuid, Path, description = "研修回ID")), request_body = EnrolBody, responses(CommandResponses))]
async fn enrol(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath(session_id): AppPath<Uuid>,
    AppJson(body): AppJson<EnrolBody>,
) -> ApiResult<Response> {
    let command = SessionCommand::Enrol {
        staff_id: body.staff_id,
        staff_registered: false,
    };
    run(
        &state,
        &caller,
        &request_id,
        session_id,
        command,
        StatusCode::CREATED,
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: Text,
}

#[utoipa::path(post, path = "/sessions/{id}/enrolments/{staff_id}/cancellation", tag = "研修", params(("id" = Uuid, Path, description = "研修回ID"), ("staff_id" = Uuid, Path, description = "職員ID")), request_body = ReasonBody, responses(CommandResponses))]
async fn cancel(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath((session_id, staff_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<ReasonBody>,
) -> ApiResult<Response> {
    let command = SessionCommand::CancelEnrolment {
        staff_id,
        reason: body.reason,
    };
    run(
        &state,
        &caller,
        &request_id,
        session_id,
        command,
        StatusCode::OK,
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CompletionBody {
    staff_id: Uuid,
    completed_on: Date,
    understanding: Option<Understanding>,
}

#[utoipa::path(post, path = "/sessions/{id}/completions", tag = "研修", params(("id" = Uuid, Path, description = "研修回ID")), request_body = CompletionBody, responses(CommandResponses))]
async fn complete(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath(session_id): AppPath<Uuid>,
    AppJson(body): AppJson<CompletionBody>,
) -> ApiResult<Response> {
    let command = SessionCommand::Complete {
        staff_id: body.staff_id,
        completed_on: body.completed_on,
        understanding: body.understanding,
    };
    run(
        &state,
        &caller,
        &request_id,
        session_id,
        command,
        StatusCode::CREATED,
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CorrectionBody {
    completed_on: Option<Date>,
    understanding: Option<Understanding>,
    reason: Text,
}

#[utoipa::path(post, path = "/sessions/{id}/completions/{staff_id}/corrections", tag = "研修", params(("id" = Uuid, Path, description = "研修回ID"), ("staff_id" = Uuid, Path, description = "職員ID")), request_body = CorrectionBody, responses(CommandResponses))]
async fn correct(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath((session_id, staff_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<CorrectionBody>,
) -> ApiResult<Response> {
    let command = SessionCommand::CorrectCompletion {
        staff_id,
        completed_on: body.completed_on,
        understanding: body.understanding,
        reason: body.reason,
    };
    run(
        &state,
        &caller,
        &request_id,
        session_id,
        command,
        StatusCode::OK,
    )
    .await
}

#[utoipa::path(post, path = "/sessions/{id}/completions/{staff_id}/revocation", tag = "研修", params(("id" = Uuid, Path, description = "研修回ID"), ("staff_id" = Uuid, Path, description = "職員ID")), request_body = ReasonBody, responses(CommandResponses))]
async fn revoke(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath((session_id, staff_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<ReasonBody>,
) -> ApiResult<Response> {
    let command = SessionCommand::RevokeCompletion {
        staff_id,
        reason: body.reason,
    };
    run(
        &state,
        &caller,
        &request_id,
        session_id,
        command,
        StatusCode::OK,
    )
    .await
}

#[utoipa::path(get, path = "/sessions/{id}", tag = "研修", params(("id" = Uuid, Path, description = "研修回ID")), responses(QueryResponses))]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(session_id): AppPath<Uuid>,
) -> ApiResult<Json<Value>> {
    Service::new(&state.ledger).require(&caller.0, Action::ReadSessions)?;
    let session = state
        .ledger
        .projector
        .read(|h| h.sessions.get(&session_id).cloned())?
        .ok_or_else(|| {
            ApiError::not_found("session_not_found", "この ID の研修開催回はありません")
        })?;
    let mut body = serde_json::to_value(&session).map_err(ApiError::internal)?;
    if let Some(object) = body.as_object_mut() {
        object.insert("id".into(), json!(session_id));
        object.insert(
            "category_label".into(),
            json!(session.schedule.category.label_ja()),
        );
    }
    Ok(Json(body))
}
