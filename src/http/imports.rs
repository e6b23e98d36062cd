//! `POST /imports/attendance`: an attendance sheet as CSV, all rows or none.

use super::error::{ApiError, ApiResult};
use super::extract::{Caller, RequestId};
use super::openapi::CommandResponses;
use super::{rfc3339_ms, AppState};
use crate::application::policy::Action;
use crate::application::{Actor, Service};
use crate::import::{decode, import_attendance, Encoding, ImportError};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

/// Attendance sheets of a whole year fit comfortably.
pub const IMPORT_LIMIT: usize = 16 * 1024 * 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    let (schemas, paths, method) = routes!(attendance);
    OpenApiRouter::new().routes((
        schemas,
        paths,
        method.layer(DefaultBodyLimit::max(IMPORT_LIMIT)),
    ))
}

/// The encoding named by `Content-Type: text/csv; charset=…` (UTF-8 when absent).
fn encoding(headers: &HeaderMap) -> ApiResult<Encoding> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/csv");
    let mut parts = content_type.split(';');
    let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    if media != "text/csv" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "受講実績は text/csv で送ってください",
        ));
    }
    for part in parts {
        if let Some((name, value)) = part.split_once('=') {
            if name.trim().eq_ignore_ascii_case("charset") {
                return Encoding::parse(value).ok_or_else(|| {
                    ApiError::validation("charset は utf-8 または shift_jis を指定してください")
                });
            }
        }
    }
    Ok(Encoding::Utf8)
}

#[utoipa::path(post, path = "/imports/attendance", tag = "取込", request_body(content = String, content_type = "text/csv", description = "受講実績の CSV（UTF-8 または Shift_JIS）"), responses(CommandResponses))]
async fn attendance(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let actor = Actor {
        principal: &caller.0,
        request_id: &request_id,
        as_of: None,
        unconfirmed: None,
    };
    Service::new(&state.ledger).require(actor.principal, Action::Administer)?;
    let encoding = encoding(&headers)?;
    let result = match decode(&body, encoding) {
        Ok(text) => import_attendance(&state.ledger, &text, &actor, |_, _| {}).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(summary) => Ok((
            StatusCode::CREATED,
            Json(json!({
                "rows": summary.rows,
                "sessions": summary.sessions,
                "events": summary.events,
                "recorded_at": summary.recorded_at.map(rfc3339_ms),
                "position": summary.position,
            })),
        )
            .into_response()),
        Err(ImportError::Rejected(errors)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "import_rejected",
            format!(
                "{} 件の問題があるため、何も取り込みませんでした",
                errors.len()
            ),
        )
        .with_errors(json!(errors))),
        Err(ImportError::Command(error)) => Err(error.into()),
        Err(ImportError::Storage(error)) => Err(error.into()),
    }
}
