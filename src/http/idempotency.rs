//! `Idempotency-Key`: the first response to a (token, key) pair is stored; a repeat of the
//! same request gets that response back and appends nothing. A key reused for a different
//! request is refused (422); a repeat that arrives while the first is still running is told
//! to wait (409).
//!
//! - The key belongs to the token itself (its digest), not to the token's name.
//! - A key is visible ASCII of 1–200 characters; anything else is a 400, never ignored.
//! - Keys expire after a day.
//! - The command runs in its own task, so a client that disconnects does not cut it off
//!   between the commit and storing the response.
//! - A key a crash left in progress is resolved by a retry after the lease: the log tells
//!   whether its command committed (then that outcome is answered) or not (then the retry
//!   runs it, once).

use super::error::ApiError;
use super::extract::bearer;
use super::imports::IMPORT_LIMIT;
use super::AppState;
use crate::storage::idempotency::{claim, complete, lease_ms, release, take_over, Claim};
use crate::storage::log::read_request_anywhere;
use crate::storage::now_ms;
use crate::storage::tokens::{authenticate, digest};
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
    let Some(raw) = request.headers().get(HEADER) else {
        return next.run(request).await;
    };
    let key = match raw.to_str() {
        Ok(key) if (1..=200).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) => {
            key.to_string()
        }
        _ => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                "Idempotency-Key は空白を含まない半角英数字・記号の 1〜200 文字にしてください",
            )
            .into_response()
        }
    };
    let (parts, body) = request.into_parts();
    let backend = &state.ledger.backend;
    let token = match bearer(&parts) {
        Some(token) => match authenticate(backend, token).await {
            Ok(Some(_)) => token.to_string(),
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
    // Bound to the token itself: a second token with the same name has keys of its own.
    let actor = digest(&token);
    let request_id = uuid::Uuid::new_v4().to_string();

    let claimed = match claim(backend, &actor, &key, &request_hash, &request_id).await {
        Ok(Claim::InProgress {
            request_id: previous,
            since,
        }) if now_ms() - since > lease_ms() => {
            resolve_abandoned(&state, &actor, &key, previous.as_deref(), &request_id).await
        }
        other => other.map(Ok),
    };
    match claimed {
        Err(error) => ApiError::from(error).into_response(),
        Ok(Err(response)) => response,
        Ok(Ok(Claim::Replay { status, body })) => stored_response(status, body),
        Ok(Ok(Claim::InProgress { .. })) => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_in_progress",
            "この Idempotency-Key の要求はまだ処理中です",
        )
        .into_response(),
        Ok(Ok(Claim::Mismatch)) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "この Idempotency-Key は別の内容の要求ですでに使われています",
        )
        .into_response(),
        Ok(Ok(Claim::Fresh)) => {
            let mut request = Request::from_parts(parts, Body::from(bytes));
            request
                .extensions_mut()
                .insert(super::extract::AssignedRequestId(request_id));
            // Its own task: a client that hangs up does not cut the command off before its
            // response is stored.
            let response = match tokio::spawn(next.run(request)).await {
                Ok(response) => response,
                Err(error) => {
                    let _ = release(backend, &actor, &key).await;
                    return ApiError::internal(error).into_response();
                }
            };
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

/// A key left in progress longer than the lease: its command committed (answer what it
/// recorded, and keep that as the key's response) or never did (take the key over and run the
/// command now, under `request_id`).
async fn resolve_abandoned(
    state: &AppState,
    actor: &str,
    key: &str,
    previous: Option<&str>,
    request_id: &str,
) -> Result<Result<Claim, Response>, crate::storage::StorageError> {
    let backend = &state.ledger.backend;
    let committed = match previous {
        Some(previous) => read_request_anywhere(backend, previous).await?,
        None => Vec::new(),
    };
    if let Some(last) = committed.last() {
        let body = serde_json::json!({
            "id": last.aggregate_id,
            "recorded_at": super::rfc3339_ms(last.recorded_at),
            "position": last.position,
            "recovered": true,
        })
        .to_string();
        complete(backend, actor, key, 200, &body).await?;
        return Ok(Ok(Claim::Replay { status: 200, body }));
    }
    if take_over(backend, actor, key, previous, request_id).await? {
        Ok(Ok(Claim::Fresh))
    } else {
        Ok(Ok(Claim::InProgress {
            request_id: None,
            since: now_ms(),
        }))
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
