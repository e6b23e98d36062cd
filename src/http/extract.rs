//! Extractors that answer bad input with the same problem+json as every other error: JSON
//! bodies, path ids, query strings, the caller's token and the request id.

use super::error::ApiError;
use super::AppState;
use crate::application::policy::Action;
use crate::application::{Actor, AppError, Command, Service};
use crate::ledger::{Appended, CommandError};
use crate::storage::tokens::{authenticate_at_head, digest, Principal};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::Json;
use serde::de::DeserializeOwned;

/// A JSON body; malformed JSON, wrong types and invalid values (grade 9, 2023-02-30) are 400s.
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(AppJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// serde's own words without axum's English preamble, for the parentheses of a Japanese detail.
fn cause(text: &str) -> &str {
    text.split_once("target type: ")
        .or_else(|| text.split_once("body: "))
        .map_or(text, |(_, rest)| rest)
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => ApiError::validation(format!(
            "リクエストの項目または値が正しくありません（{}）",
            cause(&e.body_text())
        )),
        JsonRejection::JsonSyntaxError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!(
                "リクエストが JSON として読めません（{}）",
                cause(&e.body_text())
            ),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type: application/json で送ってください",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "リクエストの本文が上限を超えています",
        ),
        other if other.body_text().contains(crate::server::BODY_TIMEOUT_MARK) => body_timeout(),
        other => ApiError::validation(format!("リクエストを読めません（{}）", other.body_text())),
    }
}

/// A request body that did not arrive whole in time (see `server::Deadline`).
pub fn body_timeout() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "body_timeout",
        "リクエストの本文が時間内に届きませんでした。何も記録していません",
    )
}

/// Path parameters; an id that cannot even be parsed names no resource (404).
pub struct AppPath<T>(pub T);

impl<T, S> FromRequestParts<S> for AppPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(AppPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(ApiError::not_found(
                "not_found",
                format!("そのパスの資源はありません（{}）", e.body_text()),
            )),
            Err(other) => Err(ApiError::internal(other.body_text())),
        }
    }
}

/// Query strings; anything unparseable is a 400.
pub struct AppQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for AppQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(AppQuery(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::validation(format!(
                    "クエリ文字列の項目または値が正しくありません（{}）",
                    cause(&e.body_text())
                )))
            }
            Err(other) => Err(ApiError::validation(format!(
                "クエリ文字列を読めません（{}）",
                other.body_text()
            ))),
        }
    }
}

/// The bearer token from `Authorization`, or `None`.
pub fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// The authenticated caller, and the log's head read with the token. Missing or unknown
/// tokens are 401.
pub struct Caller(pub Principal, pub i64);

impl Caller {
    /// 403 unless the policy lets the caller do `action`.
    pub fn require(&self, state: &AppState, action: Action) -> Result<&Principal, ApiError> {
        Service::new(&state.ledger).require(&self.0, action)?;
        Ok(&self.0)
    }

    /// Whether the policy lets the caller do `action`.
    pub fn may(&self, state: &AppState, action: Action) -> Result<bool, ApiError> {
        Ok(Service::new(&state.ledger).allows(&self.0, action)?)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        Caller::read(state, &digest(token)).await
    }
}

impl Caller {
    /// The caller of the token with `digest`, read from the database with the log's head.
    async fn read(state: &AppState, digest: &str) -> Result<Caller, ApiError> {
        let (principal, head) = authenticate_at_head(&state.ledger.backend, digest)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        state.ledger.tokens.remember(digest, &principal);
        // Read your writes, also those made through another process: fold in whatever the
        // log gained up to its head, read with the token (usually nothing).
        state.ledger.reach_head(head).await?;
        // A token of a person no longer in service (a retired manager) stops working.
        if !Service::new(&state.ledger).in_service(&principal)? {
            return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "unauthorized",
                "このトークンの職員は在職していないため、トークンは使えません",
            ));
        }
        Ok(Caller(principal, head))
    }
}

/// The caller of one command of the API ([`Commander::execute`]). On PostgreSQL a token this
/// process has read before is not read again: the command is decided at once, unconfirmed,
/// on what this process keeps (`Ledger::remembered_caller`), and its commit confirms that the
/// token still stands and that no other process appended since. An answer decided on that
/// state instead (not confirmed, refused, not found, forbidden, contended, nothing appended)
/// is decided again the long way, with the token and the log's head read first, and that is
/// the answer: so a caller hears only what a command decided after those reads would have
/// told it.
pub struct Commander {
    caller: Caller,
    digest: String,
    unconfirmed: bool,
}

impl FromRequestParts<AppState> for Commander {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        let digest = digest(token);
        if let Some((principal, head)) = state.ledger.remembered_caller(&digest).await {
            state.ledger.reach_head(head).await?;
            // Not in service here is read again: the token may say otherwise now.
            if Service::new(&state.ledger).in_service(&principal)? {
                return Ok(Commander {
                    caller: Caller(principal, head),
                    digest,
                    unconfirmed: true,
                });
            }
        }
        Ok(Commander {
            caller: Caller::read(state, &digest).await?,
            digest,
            unconfirmed: false,
        })
    }
}

impl Commander {
    /// Runs `command` through the application layer for this caller and returns what it
    /// appended (see [`Commander`]).
    pub async fn execute(
        &self,
        state: &AppState,
        request_id: &str,
        command: Command,
    ) -> Result<Appended, ApiError> {
        let service = Service::new(&state.ledger);
        if self.unconfirmed {
            let actor = Actor {
                principal: &self.caller.0,
                request_id,
                as_of: Some(self.caller.1),
                unconfirmed: Some(&self.digest),
            };
            match service.execute(&actor, command.clone()).await {
                // A command that appended nothing had no commit to confirm it.
                Ok(appended) if !appended.events.is_empty() => {
                    crate::metrics::unconfirmed("confirmed");
                    return Ok(appended);
                }
                Ok(_) => {}
                Err(AppError::Command(CommandError::Unconfirmed)) => {
                    tracing::debug!("a command was not confirmed; decided again");
                    state.ledger.tokens.forget_and_pause(&self.digest);
                }
                Err(error) if decided_on_the_state(&error) => {}
                // Anything else (the database out of reach, a failure that may come after
                // the commit) is answered as it is: deciding again could record it twice.
                Err(error) => return Err(error.into()),
            }
            crate::metrics::unconfirmed("decided_again");
        }
        let read;
        let caller = if self.unconfirmed {
            read = Caller::read(state, &self.digest).await?;
            &read
        } else {
            &self.caller
        };
        let actor = Actor {
            principal: &caller.0,
            request_id,
            as_of: Some(caller.1),
            unconfirmed: None,
        };
        Ok(service.execute(&actor, command).await?)
    }
}

/// Whether `error` is an answer decided on the state, before anything was written: what an
/// unconfirmed command decides again the long way, on the state a fresh read gives.
fn decided_on_the_state(error: &AppError) -> bool {
    matches!(
        error,
        AppError::Forbidden
            | AppError::NotFound { .. }
            | AppError::Command(CommandError::Refused { .. } | CommandError::Contended)
    )
}

/// The id of this request, written into the metadata of every event it appends. Generated
/// for each request (by the idempotency layer when a key is sent, which records it with the
/// key), so that it names exactly one request's events.
pub struct RequestId(pub String);

/// A request id the idempotency layer assigned before the handler ran.
#[derive(Clone)]
pub struct AssignedRequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestId(
            match parts.extensions.get::<AssignedRequestId>() {
                Some(assigned) => assigned.0.clone(),
                None => uuid::Uuid::new_v4().to_string(),
            },
        ))
    }
}
