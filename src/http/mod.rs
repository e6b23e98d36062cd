//! The HTTP API (SPEC §7), base path `/api/v1`: one router per resource, problem+json errors,
//! bearer tokens, idempotency keys and a body size limit.

pub mod audit;
pub mod error;
pub mod events;
pub mod extract;
pub mod idempotency;
pub mod imports;
pub mod plans;
pub mod reports;
pub mod sessions;
pub mod staff;

use crate::ledger::{Appended, Ledger};
use crate::storage::log;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

/// Commands and queries are small; attendance imports get their own, larger limit.
pub const BODY_LIMIT: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub ledger: Arc<Ledger>,
    /// The signed-in sessions of the pages.
    pub sessions: Arc<crate::web::session::Sessions>,
    /// Attendance files uploaded through the pages, between their check and their result.
    pub uploads: Arc<crate::web::imports::Uploads>,
}

pub fn router(ledger: Arc<Ledger>) -> Router {
    let state = AppState {
        ledger,
        sessions: Arc::default(),
        uploads: Arc::default(),
    };
    let pages = crate::web::routes().layer(SetResponseHeaderLayer::overriding(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(crate::web::PAGE_POLICY),
    ));
    let api = Router::new()
        .merge(staff::routes())
        .merge(sessions::routes())
        .merge(plans::routes())
        .merge(events::routes())
        .merge(reports::routes())
        .merge(audit::routes())
        .merge(imports::routes())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::replay_repeated_commands,
        ))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .method_not_allowed_fallback(method_not_allowed);
    Router::new()
        .nest("/api/v1", api)
        .merge(pages)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(header_layer(
            header::CONTENT_SECURITY_POLICY,
            CONTENT_SECURITY_POLICY,
        ))
        .layer(header_layer(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header_layer(header::X_FRAME_OPTIONS, "DENY"))
        .layer(header_layer(header::REFERRER_POLICY, "no-referrer"))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

fn header_layer(
    name: header::HeaderName,
    value: &'static str,
) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

/// What every response tells the browser: run no script and load nothing from anywhere
/// (the sheet's HTML needs only its own inline style), never be framed, never guess a
/// content type, send no referrer.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

async fn method_not_allowed() -> error::ApiError {
    error::ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "このエンドポイントはそのメソッドを受け付けません",
    )
}

/// An unknown API path is a problem+json 404; any other path the 404 page.
async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        error::ApiError::not_found("not_found", "そのエンドポイントはありません").into_response()
    } else {
        crate::web::not_found().await.into_response()
    }
}

async fn healthz(State(state): State<AppState>) -> Response {
    match log::head(&state.ledger.backend).await {
        Ok(head) => Json(json!({
            "status": "ok",
            "backend": state.ledger.backend.name(),
            "position": head,
            "projected": state.ledger.projector.position(),
        }))
        .into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "detail": error.to_string()})),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let head = log::head(&state.ledger.backend).await.unwrap_or(-1);
    let events = log::count(&state.ledger.backend).await.unwrap_or(-1);
    let body = format!(
        "# HELP kiroku_log_position Last position in the event log.\n\
         # TYPE kiroku_log_position gauge\nkiroku_log_position {head}\n\
         # HELP kiroku_log_events Events in the log.\n\
         # TYPE kiroku_log_events gauge\nkiroku_log_events {events}\n\
         # HELP kiroku_projected_position Last position folded into the read models.\n\
         # TYPE kiroku_projected_position gauge\nkiroku_projected_position {}\n",
        state.ledger.projector.position()
    );
    ([("content-type", "text/plain; version=0.0.4")], body).into_response()
}

pub use kiroku_projections::rfc3339_ms;

/// Runs `command` through the application layer for `caller` and answers as [`accepted`].
pub async fn run(
    state: &AppState,
    caller: &extract::Caller,
    request_id: &str,
    command: crate::application::Command,
    status: StatusCode,
    extra: Value,
) -> error::ApiResult<Response> {
    let id = command.aggregate_id();
    let actor = crate::application::Actor {
        principal: &caller.0,
        request_id,
    };
    let appended = crate::application::Service::new(&state.ledger)
        .execute(&actor, command)
        .await?;
    Ok(accepted(status, id, &appended, extra))
}

/// A command's response: `{"id", "recorded_at", …extra}` with the given status.
pub fn accepted(
    status: StatusCode,
    id: impl Into<Value>,
    appended: &Appended,
    extra: Value,
) -> Response {
    let mut body = json!({
        "id": id.into(),
        "recorded_at": rfc3339_ms(appended.recorded_at()),
        "position": appended.events.last().map(|e| e.position),
    });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    (status, Json(body)).into_response()
}
