//! The HTTP API (SPEC §7), base path `/api/v1`: one router per resource, problem+json errors,
//! bearer tokens, idempotency keys and a body size limit.

pub mod audit;
pub mod error;
pub mod events;
pub mod extract;
pub mod idempotency;
pub mod imports;
pub mod openapi;
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
    crate::metrics::handle();
    let state = AppState {
        ledger,
        sessions: Arc::default(),
        uploads: Arc::default(),
    };
    let pages = crate::web::routes().layer(SetResponseHeaderLayer::overriding(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(crate::web::PAGE_POLICY),
    ));
    let (api, document) = utoipa_axum::router::OpenApiRouter::new()
        .merge(staff::routes())
        .merge(sessions::routes())
        .merge(plans::routes())
        .merge(events::routes())
        .merge(reports::routes())
        .merge(audit::routes())
        .merge(imports::routes())
        .routes(utoipa_axum::routes!(healthz))
        .routes(utoipa_axum::routes!(metrics))
        .split_for_parts();
    let document = openapi::Document::new(&openapi::complete(document));
    let api = api
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::replay_repeated_commands,
        ))
        .layer(middleware::map_response(problem_for_too_large))
        .route("/openapi.json", get(move || async move { document }))
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
        .route_layer(middleware::from_fn(count_requests))
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

/// A body over a limit is refused by axum before any handler runs, as text; the API answers
/// it as problem+json like every other refusal.
async fn problem_for_too_large(response: Response) -> Response {
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_problem {
        error::ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "リクエストの本文が上限を超えています。何も記録していません",
        )
        .into_response()
    } else {
        response
    }
}

/// An unknown API path is a problem+json 404; any other path the 404 page.
async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        error::ApiError::not_found("not_found", "そのエンドポイントはありません").into_response()
    } else {
        crate::web::not_found().await.into_response()
    }
}

#[utoipa::path(get, path = "/healthz", tag = "運用",
    responses((status = 200, description = "ok、または読み取りのみ続けている degraded", body = serde_json::Value),
        (status = 503, description = "データベースに接続できません", body = serde_json::Value)))]
/// `ok`; `degraded` (200: reads are served) when the projector stopped at an event this
/// version cannot read, naming it; `unavailable` (503) when the database is out of reach.
async fn healthz(State(state): State<AppState>) -> Response {
    match log::head(&state.ledger.backend).await {
        Ok(head) => {
            let projected = state.ledger.projector.position();
            let body = match state.ledger.projector.stopped() {
                None => json!({
                    "status": "ok",
                    "backend": state.ledger.backend.name(),
                    "position": head,
                    "projected": projected,
                }),
                Some(stopped) => json!({
                    "status": "degraded",
                    "backend": state.ledger.backend.name(),
                    "position": head,
                    "projected": projected,
                    "projector": {
                        "stopped_at": stopped.position,
                        "event_type": stopped.event_type,
                        "problem": stopped.problem,
                        "detail": error::ApiError::stopped(&stopped).detail,
                    },
                }),
            };
            Json(body).into_response()
        }
        Err(error) => {
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "detail": error.to_string()})),
            )
                .into_response();
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(error::RETRY_AFTER_UNAVAILABLE),
            );
            response
        }
    }
}

#[utoipa::path(get, path = "/metrics", tag = "運用",
    responses((status = 200, description = "Prometheus 形式の計測値", body = String, content_type = "text/plain")))]
/// Prometheus text; reads no database (see `crate::metrics`).
async fn metrics(State(state): State<AppState>) -> Response {
    let projector = &state.ledger.projector;
    let body = crate::metrics::render(projector.position(), projector.stopped().is_some());
    ([("content-type", "text/plain; version=0.0.4")], body).into_response()
}

/// Counts every request by its matched route (not its path: ids would make every request
/// its own series).
async fn count_requests(request: axum::extract::Request, next: middleware::Next) -> Response {
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    crate::metrics::request(&method, &route, response.status().as_u16());
    response
}

pub use kiroku_projections::rfc3339_ms;

/// Runs `command` through the application layer for `caller` and answers as [`accepted`].
pub async fn run(
    state: &AppState,
    caller: &extract::Commander,
    request_id: &str,
    command: crate::application::Command,
    status: StatusCode,
    extra: Value,
) -> error::ApiResult<Response> {
    let id = command.aggregate_id();
    let appended = caller.execute(state, request_id, command).await?;
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
