//! The OpenAPI document of the API, derived from the handlers (`#[utoipa::path]` next to each
//! one, collected by the routers themselves) and from the value types of the domain, so it
//! cannot drift from what the server accepts. Served at `/api/v1/openapi.json`.

use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::Arc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, SecurityRequirement, Server};
use utoipa::{IntoResponses, ToSchema};

/// What every recorded command answers.
#[derive(Serialize, ToSchema)]
pub struct Accepted {
    /// The aggregate the command was about (staff, session or plan item).
    pub id: serde_json::Value,
    /// When the ledger recorded it (RFC 3339, server clock).
    pub recorded_at: String,
    /// The log position of its last event.
    pub position: Option<i64>,
}

/// RFC 9457 problem details, as every refusal is answered (`application/problem+json`).
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// `urn:kiroku:problem:{code}`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong, in Japanese.
    pub detail: String,
    /// The stable machine code, e.g. `validation_failed`.
    pub code: String,
    /// Itemised problems, such as an import's errors by line.
    pub errors: Option<serde_json::Value>,
}

/// The answers of a command: recorded, or refused with a problem; 503 when the database is
/// out of reach (with `Retry-After`).
#[derive(IntoResponses)]
pub enum CommandResponses {
    #[response(status = 200, description = "記録しました")]
    Ok(Accepted),
    #[response(status = 201, description = "記録しました（新しく登録）")]
    Created(Accepted),
    #[response(
        status = "4XX",
        description = "受け付けませんでした。何も記録していません",
        content_type = "application/problem+json"
    )]
    Refused(Problem),
    #[response(
        status = 503,
        description = "データベースに接続できません。Retry-After 秒後に再試行してください",
        content_type = "application/problem+json"
    )]
    Unavailable(Problem),
}

/// The answers of a query: the document, or a problem.
#[derive(IntoResponses)]
pub enum QueryResponses {
    #[response(status = 200, description = "取得しました")]
    Ok(serde_json::Value),
    #[response(
        status = "4XX",
        description = "取得できませんでした",
        content_type = "application/problem+json"
    )]
    Refused(Problem),
    #[response(
        status = 503,
        description = "データベースに接続できません",
        content_type = "application/problem+json"
    )]
    Unavailable(Problem),
}

/// Fills in what the handlers do not say: title, the server's base path, the bearer token
/// every endpoint but `/healthz`, `/metrics` and this document asks for, and the shared
/// schemas.
pub fn complete(mut document: OpenApi) -> OpenApi {
    document.info = InfoBuilder::new()
        .title("Kiroku API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "人材育成・研修記録の台帳 Kiroku（記録）の API。すべての記録は追記のみのログに残り、\
             拒否された要求は何も記録しません。エラーは application/problem+json で、\
             code は安定した機械向けの名前です。",
        ))
        .build();
    document.servers = Some(vec![Server::new("/api/v1")]);
    let components = document.components.take().unwrap_or_default();
    let builder = ComponentsBuilder::from(components)
        .security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        )
        .schema_from::<Accepted>()
        .schema_from::<Problem>();
    document.components = Some(builder.build());
    unique_operation_ids(&mut document);
    let open = ["/healthz", "/metrics"];
    for (path, item) in document.paths.paths.iter_mut() {
        if open.contains(&path.as_str()) {
            continue;
        }
        for operation in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            operation.security = Some(vec![SecurityRequirement::new(
                "bearer",
                Vec::<String>::new(),
            )]);
        }
    }
    document
}

/// Handlers of different resources share names (`show`, `list`); an operation id must be
/// unique, so a shared one becomes its method and path.
fn unique_operation_ids(document: &mut OpenApi) {
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for item in document.paths.paths.values() {
        for operation in [&item.get, &item.post].into_iter().flatten() {
            if let Some(id) = &operation.operation_id {
                *seen.entry(id.clone()).or_default() += 1;
            }
        }
    }
    for (path, item) in document.paths.paths.iter_mut() {
        for (method, operation) in [("get", &mut item.get), ("post", &mut item.post)] {
            let Some(operation) = operation else { continue };
            if operation
                .operation_id
                .as_ref()
                .is_some_and(|id| seen.get(id).copied().unwrap_or(0) > 1)
            {
                let words: Vec<&str> = path
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .collect();
                operation.operation_id = Some(format!("{method}_{}", words.join("_")));
            }
        }
    }
}

/// The document, rendered once when the router is built.
#[derive(Clone)]
pub struct Document(pub Arc<String>);

impl Document {
    pub fn new(document: &OpenApi) -> Self {
        let json = document
            .to_pretty_json()
            .unwrap_or_else(|_| String::from("{}"));
        Document(Arc::new(json))
    }
}

impl IntoResponse for Document {
    fn into_response(self) -> Response {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.0.as_str().to_owned(),
        )
            .into_response()
    }
}
