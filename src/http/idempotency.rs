//! `Idempotency-Key`: the first response to a (caller, key) pair is stored; a repeat of the
//! same request gets that response back and appends nothing. A key reused for a different
//! request is refused (422); a repeat that arrives while the first is still running is told
//! to wait (409).

use super::error::ApiError;
use super::extract::bearer;
use super::imports::IMPORT_LIMIT;
use super::AppState;
use crate::storage::idempotency::{claim, complete, release, Claim};
use crate::storage::tokens::authenticate;
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const HEADER: &str = "idempotency-key";

pub async fn replay_repeated_commands(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(key) = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return next.run(request).await;
    };
    if key.is_empty() || key.len() > 200 {
        return ApiError::validation("Idempotency-Key must be 1–200 characters").into_response();
    }
    let (parts, body) = request.into_parts();
    let backend = &state.ledger.backend;
    let principal = match bearer(&parts) {
        Some(token) => match authenticate(backend, token).await {
            Ok(Some(principal)) => principal,
            Ok(None) => return ApiError::unauthorized().into_response(),
            Err(error) => return ApiError::from(error).into_response(),
        },
        None => return ApiError::unauthorized().into_response(),
    };
    let bytes = match to_bytes(body, IMPORT_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "リクエストの本文が上限を超えています",
            )
            .into_response()
        }
    };
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(parts.uri.path().as_bytes());
    hasher.update(b"\n");
    hasher.update(&bytes);
    let request_hash = hex::encode(hasher.finalize());
    let actor = format!("{}:{}", principal.role, principal.name);

    match claim(backend, &actor, &key, &request_hash).await {
        Err(error) => ApiError::from(error).into_response(),
        Ok(Claim::Replay { status, body }) => stored_response(status, body),
        Ok(Claim::InProgress) => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_in_progress",
            "この Idempotency-Key の要求はまだ処理中です",
        )
        .into_response(),
        Ok(Claim::Mismatch) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "この Idempotency-Key は別の内容の要求ですでに使われています",
        )
        .into_response(),
        Ok(Claim::Fresh) => {
            let response = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            let status = response.status();
            let (response_parts, response_body) = response.into_parts();
            let body = match to_bytes(response_body, usize::MAX).await {
                Ok(body) => body,
                Err(error) => {
                    let _ = release(backend, &actor, &key).await;
                    return ApiError::internal(error).into_response();
                }
            };
            let stored = if status.is_server_error() {
                release(backend, &actor, &key).await
            } else {
                complete(
                    backend,
                    &actor,
                    &key,
                    status.as_u16(),
                    &String::from_utf8_lossy(&body),
                )
                .await
            };
            if let Err(error) = stored {
                tracing::error!(%error, "could not store the idempotent response");
            }
            Response::from_parts(response_parts, Body::from(body))
        }
    }
}

fn stored_response(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let content_type = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    (
        status,
        [
            (header::CONTENT_TYPE, content_type),
            (header::HeaderName::from_static("idempotent-replay"), "true"),
        ],
        body,
    )
        .into_response()
}
