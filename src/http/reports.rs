//! Reports: the plan item list and the progress sheet, as of any moment.

use super::error::{ApiError, ApiResult};
use super::extract::{AppPath, AppQuery, Caller};
use super::AppState;
use crate::storage::tokens::Role;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

/// Everyone but `staff` reads reports.
const READERS: &[Role] = &[Role::HrAdmin, Role::Manager, Role::Auditor];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/plan-items", get(list))
        .route("/plan-items/{code}/sheet", get(sheet))
}

/// Parses an RFC 3339 `as_of` into ms since the epoch.
pub fn parse_as_of(as_of: Option<&str>) -> ApiResult<Option<i64>> {
    match as_of {
        None => Ok(None),
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| Some(t.timestamp_millis()))
            .map_err(|e| ApiError::validation(format!("as_of must be an RFC 3339 timestamp: {e}"))),
    }
}

async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(READERS)?;
    let items = state.ledger.projector.plan_items()?;
    let items: Vec<Value> = items
        .into_iter()
        .map(|(code, title)| json!({"code": code, "title": title}))
        .collect();
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SheetQuery {
    as_of: Option<String>,
    format: Option<String>,
}

async fn sheet(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(code): AppPath<String>,
    AppQuery(query): AppQuery<SheetQuery>,
) -> ApiResult<Json<Value>> {
    caller.require(READERS)?;
    let as_of = parse_as_of(query.as_of.as_deref())?;
    match query.format.as_deref() {
        None | Some("json") => {}
        Some(other) => {
            return Err(ApiError::validation(format!(
                "format {other:?} is not available yet; use json"
            )))
        }
    }
    state
        .ledger
        .projector
        .sheet(&code, as_of)?
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(
                "plan_item_not_found",
                "no plan item with this code at that time",
            )
        })
}
