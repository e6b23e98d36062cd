//! Reports: the plan item list and the progress sheet, as of any moment.

use super::error::{ApiError, ApiResult};
use super::extract::{AppPath, AppQuery, Caller};
use super::AppState;
use crate::reports::{render, Format};
use crate::storage::log::read_positions;
use crate::storage::tokens::Role;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kiroku_domain::values::FiscalYear;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Everyone but `staff` reads reports.
const READERS: &[Role] = &[Role::HrAdmin, Role::Manager, Role::Auditor];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/plan-items", get(list))
        .route("/plan-items/{code}/sheet", get(sheet))
        .route("/plan-items/{code}/audit", get(audit))
        .route("/projections", get(projections))
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

/// Every plan item with this fiscal year's target, actual and achievement per indicator.
async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(READERS)?;
    let this_year = FiscalYear::of(super::staff::today_jst());
    let projector = &state.ledger.projector;
    let mut items = Vec::new();
    for (code, title) in projector.plan_items()? {
        let sheet = projector.sheet(&code, None)?.unwrap_or(Value::Null);
        let indicators: Vec<Value> = sheet["indicators"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|indicator| {
                let cell = indicator["years"]
                    .as_array()
                    .and_then(|years| {
                        years
                            .iter()
                            .find(|y| y["fiscal_year"] == json!(this_year.year()))
                    })
                    .cloned()
                    .unwrap_or(Value::Null);
                json!({
                    "code": indicator["code"],
                    "name": indicator["name"],
                    "target": cell["target"],
                    "actual": cell["actual"],
                    "achieved": cell["achieved"],
                })
            })
            .collect();
        items.push(json!({
            "code": code,
            "title": title,
            "fiscal_year": this_year.year(),
            "label": this_year.label(),
            "indicators": indicators,
        }));
    }
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
) -> ApiResult<Response> {
    caller.require(READERS)?;
    let as_of = parse_as_of(query.as_of.as_deref())?;
    let format = match query.format.as_deref() {
        None => Format::Json,
        Some(text) => Format::parse(text).ok_or_else(|| {
            ApiError::validation(format!("format {text:?}: use json, csv, xlsx or html"))
        })?,
    };
    let sheet = state.ledger.projector.sheet(&code, as_of)?.ok_or_else(|| {
        ApiError::not_found(
            "plan_item_not_found",
            "no plan item with this code at that time",
        )
    })?;
    let body = render(&sheet, format).map_err(ApiError::internal)?;
    let filename = format!("sheet-{code}.{}", format.extension());
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// Where the read models stand and their fingerprint (equal to `kiroku rebuild`'s when the
/// live projections match a rebuild from the log).
async fn projections(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(&[Role::HrAdmin, Role::Auditor])?;
    let (position, fingerprint) = state.ledger.projector.fingerprint()?;
    Ok(Json(
        json!({"position": position, "fingerprint": fingerprint}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    indicator: String,
    fiscal_year: FiscalYear,
    as_of: Option<String>,
}

/// Who changed a result, when and why: every event that moved the target or the actual of
/// one sheet cell, in log order, with the value before and after.
async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(code): AppPath<String>,
    AppQuery(query): AppQuery<AuditQuery>,
) -> ApiResult<Json<Value>> {
    caller.require(&[Role::HrAdmin, Role::Auditor])?;
    let as_of = parse_as_of(query.as_of.as_deref())?;
    let ledger = &state.ledger;
    let (position, label, changes) = ledger
        .projector
        .audit(&code, &query.indicator, query.fiscal_year, as_of)?
        .ok_or_else(|| {
            ApiError::not_found(
                "indicator_not_found",
                "no such plan item or indicator at that time",
            )
        })?;
    let positions: Vec<i64> = changes.iter().map(|c| c.position).collect();
    let events: BTreeMap<i64, _> = read_positions(&ledger.backend, &positions)
        .await?
        .into_iter()
        .map(|e| (e.position, e))
        .collect();
    let changes: Vec<Value> = changes
        .into_iter()
        .map(|change| {
            let event = events.get(&change.position);
            json!({
                "position": change.position,
                "recorded_at": event.map(|e| super::rfc3339_ms(e.recorded_at)),
                "actor": event.and_then(|e| e.metadata_str("actor")),
                "event_type": event.map(|e| e.event_type.clone()),
                "aggregate_type": event.map(|e| e.aggregate_type.clone()),
                "aggregate_id": event.map(|e| e.aggregate_id.clone()),
                "field": change.field,
                "before": change.before,
                "after": change.after,
                "reason": event.and_then(|e| e.metadata_str("reason")),
            })
        })
        .collect();
    Ok(Json(json!({
        "item": code,
        "indicator": query.indicator,
        "fiscal_year": query.fiscal_year,
        "as_of": label,
        "position": position,
        "changes": changes,
    })))
}
