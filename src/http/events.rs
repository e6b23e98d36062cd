//! `GET /events`: the log itself, by position, with each event's hash. Personal text is
//! opened for HR; for auditors names are opened and confidential text (interview notes,
//! evaluation comments, dispute texts) is replaced by `null` and listed in `redacted`.

use super::error::{ApiError, ApiResult};
use super::extract::{AppQuery, Caller};
use super::openapi::QueryResponses;
use super::{rfc3339_ms, AppState};
use crate::application::policy::Action;
use crate::ledger::Ledger;
use crate::storage::log::{read_after, LogEvent};
use axum::extract::State;
use axum::Json;
use kiroku_domain::values::Sealed;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

/// Fields holding confidential free text about a person.
const CONFIDENTIAL: &[&str] = &["note", "comment", "text"];

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct Page {
    #[serde(default)]
    after: i64,
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/events",
    tag = "イベント",
    params(Page),
    responses(QueryResponses)
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(page): AppQuery<Page>,
) -> ApiResult<Json<Value>> {
    caller.require(&state, Action::ReadAudit)?;
    let limit = page.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) || page.after < 0 {
        return Err(ApiError::validation(
            "limit は 1〜1000、after は 0 以上の位置で指定してください",
        ));
    }
    let events = read_after(&state.ledger.backend, page.after, limit).await?;
    let next = events.last().map(|e| e.position).unwrap_or(page.after);
    let may_read_confidential = caller.may(&state, Action::ReadConfidentialEvents)?;
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        out.push(present(&state.ledger, event, may_read_confidential).await?);
    }
    Ok(Json(json!({ "events": out, "next": next })))
}

async fn present(
    ledger: &Ledger,
    event: LogEvent,
    may_read_confidential: bool,
) -> ApiResult<Value> {
    // Stored payloads are `{"EventName": {fields}}`; the API shows the fields.
    let mut payload = match event.payload {
        Value::Object(map) if map.len() == 1 => map
            .into_iter()
            .next()
            .map(|(_, v)| v)
            .unwrap_or(Value::Null),
        other => other,
    };
    let mut redacted = Vec::new();
    if let Ok(subject) = Uuid::parse_str(&event.aggregate_id) {
        open_fields(
            ledger,
            subject,
            &mut payload,
            may_read_confidential,
            &mut redacted,
        )
        .await?;
    }
    Ok(json!({
        "position": event.position,
        "recorded_at": rfc3339_ms(event.recorded_at),
        "aggregate_type": event.aggregate_type,
        "aggregate_id": event.aggregate_id,
        "sequence": event.sequence,
        "event_type": event.event_type,
        "event_version": event.event_version,
        "payload": payload,
        "redacted": redacted,
        "metadata": event.metadata,
        "hash": event.hash,
    }))
}

/// Opens every sealed field of `payload` (top level or one object deep) that the reader may
/// see; confidential ones become `null` for readers who may not.
async fn open_fields(
    ledger: &Ledger,
    subject: Uuid,
    payload: &mut Value,
    may_read_confidential: bool,
    redacted: &mut Vec<String>,
) -> ApiResult<()> {
    let Value::Object(fields) = payload else {
        return Ok(());
    };
    for (name, value) in fields.iter_mut() {
        let Ok(sealed) = serde_json::from_value::<Sealed>(value.clone()) else {
            continue;
        };
        if CONFIDENTIAL.contains(&name.as_str()) && !may_read_confidential {
            *value = Value::Null;
            redacted.push(name.clone());
            continue;
        }
        *value = match ledger.keys.open(subject, &sealed).await? {
            Some(clear) => Value::String(clear),
            None => Value::Null,
        };
    }
    Ok(())
}
