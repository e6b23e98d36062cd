//! The audit trail of one sheet cell (SPEC §6) for people: who changed the target, the actual
//! or the publication of (plan item, indicator, fiscal year), when, by which event and why,
//! with the staff member (職員番号 and name), the course and the completion date behind a
//! change. Newest first, so the changes since the last publication lead; paged; and the whole
//! trail as CSV (`?format=csv`) in JST, as an auditor files it.

use super::error::{ApiError, ApiResult};
use super::extract::{AppPath, AppQuery, Caller};
use super::openapi::QueryResponses;
use super::reports::parse_as_of;
use super::AppState;
use crate::application::policy::Action;
use crate::ledger::Ledger;
use crate::reports::view::with_unit;
use crate::storage::keys::ERASED;
use crate::storage::log::{read_positions, LogEvent};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kiroku_domain::values::{FiscalYear, Unit};
use kiroku_projections::audit::{Change, Trail as Rows, ACTUAL, PUBLICATION, TARGET};
use kiroku_projections::time::{jst_minute, jst_second, rfc3339_ms};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

/// Rows per page of a trail, by default and at most.
const PER_PAGE: usize = 100;
const MAX_PER_PAGE: usize = 1000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(audit))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    indicator: String,
    fiscal_year: FiscalYear,
    as_of: Option<String>,
    page: Option<usize>,
    per_page: Option<usize>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// What a person reads for an event type.
pub fn event_label(event_type: &str) -> &'static str {
    match event_type {
        "TrainingCompleted" => "研修の修了",
        "CompletionCorrected" => "修了記録の訂正",
        "CompletionRevoked" => "修了記録の取消",
        "StaffEnrolled" => "受講の申込",
        "WaitlistPromoted" => "キャンセル待ちからの繰上げ",
        "EnrolmentCancelled" => "受講の取消",
        "StaffRegistered" => "職員の登録",
        "GradeChanged" => "級の変更",
        "StaffTransferred" => "異動",
        "StaffSeparated" => "退職",
        "StaffRehired" => "再任用・再採用",
        "InterviewRecorded" => "面談の記録",
        "InterviewCorrected" => "面談の訂正",
        "InterviewWithdrawn" => "面談の取下げ",
        "ComplianceIncidentRecorded" => "不適切な事務処理の記録",
        "ComplianceIncidentWithdrawn" => "不適切な事務処理の取下げ",
        "PlanItemDefined" => "計画項目の定義",
        "IndicatorDefined" => "指標の定義",
        "TargetSet" => "目標の設定",
        "ActualReported" => "実績の報告",
        "ActualCorrected" => "実績の訂正",
        "SheetPublished" => "公表",
        _ => "その他",
    }
}

fn field_label(field: &str) -> &'static str {
    match field {
        TARGET => "目標",
        ACTUAL => "実績",
        PUBLICATION => "公表値",
        _ => "その他",
    }
}

/// A before/after value as a person reads it: `2,341人`, `90%以上`, `46.8%（確定）`,
/// `第2版 47.3%`, `－` for nothing.
fn value_text(value: &Value, unit: Unit) -> String {
    let number = |v: &Value| v.as_f64().map(|v| with_unit(v, unit));
    match value {
        Value::Null => "－".to_string(),
        Value::Number(_) => number(value).unwrap_or_default(),
        Value::Object(map) => {
            let shown = map.get("value").and_then(number).unwrap_or("－".into());
            if let Some(version) = map.get("version").and_then(Value::as_u64) {
                format!("第{version}版 {shown}")
            } else if let Some(op) = map.get("op").and_then(Value::as_str) {
                let suffix = match op {
                    ">=" => "以上",
                    "<=" => "以下",
                    _ => "",
                };
                format!("{shown}{suffix}")
            } else if let Some(status) = map.get("status").and_then(Value::as_str) {
                let status = if status == "estimate" {
                    "見込み"
                } else {
                    "確定"
                };
                format!("{shown}（{status}）")
            } else {
                shown
            }
        }
        other => other.to_string(),
    }
}

/// The inner object of an externally tagged event payload (`{"TrainingCompleted": {...}}`).
fn inner(payload: &Value) -> &Value {
    payload
        .as_object()
        .and_then(|map| map.values().next())
        .unwrap_or(&Value::Null)
}

/// The staff member an event is about, when it is about one.
fn staff_of(event: &LogEvent) -> Option<Uuid> {
    if event.aggregate_type == "Staff" {
        return Uuid::parse_str(&event.aggregate_id).ok();
    }
    inner(&event.payload)
        .get("staff_id")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
}

/// One row of the trail with what a person needs to recognise the change.
async fn row(
    ledger: &Ledger,
    change: &Change,
    event: Option<&LogEvent>,
    unit: Unit,
    last_publication: Option<i64>,
) -> ApiResult<Value> {
    let staff = match event.and_then(staff_of) {
        Some(staff_id) => {
            let record = ledger.projector.read(|h| {
                h.staff
                    .get(&staff_id)
                    .map(|r| (r.employee_no.clone(), r.name.clone()))
            })?;
            match record {
                Some((employee_no, sealed)) => {
                    let name = ledger.keys.open(staff_id, &sealed).await?;
                    json!({
                        "id": staff_id,
                        "employee_no": employee_no.as_str(),
                        "personal_data_erased": name.is_none(),
                        "name": name,
                    })
                }
                None => json!({"id": staff_id, "employee_no": null, "name": null}),
            }
        }
        None => Value::Null,
    };
    let course = match event.filter(|e| e.aggregate_type == "TrainingSession") {
        Some(e) => {
            let session = Uuid::parse_str(&e.aggregate_id).ok();
            let schedule = ledger.projector.read(|h| {
                session
                    .and_then(|id| h.sessions.get(&id))
                    .map(|s| (s.schedule.course_code.clone(), s.schedule.title.clone()))
            })?;
            match schedule {
                Some((code, title)) => json!({
                    "session_id": e.aggregate_id,
                    "course_code": code.as_str(),
                    "title": title.as_str(),
                }),
                None => json!({"session_id": e.aggregate_id}),
            }
        }
        None => Value::Null,
    };
    let payload = event.map(|e| inner(&e.payload)).unwrap_or(&Value::Null);
    let incident = match event.filter(|e| e.event_type == "ComplianceIncidentRecorded") {
        Some(_) => json!({
            "occurred_on": payload.get("occurred_on"),
            "department": payload.get("department"),
            "summary": payload.get("summary"),
        }),
        None => Value::Null,
    };
    let event_type = event.map(|e| e.event_type.as_str()).unwrap_or("");
    Ok(json!({
        "position": change.position,
        "recorded_at": event.map(|e| rfc3339_ms(e.recorded_at)),
        "recorded_at_jst": event.map(|e| jst_second(e.recorded_at)),
        "actor": event.and_then(|e| e.metadata_str("actor")),
        "event_type": event_type,
        "event_label": event_label(event_type),
        "aggregate_type": event.map(|e| e.aggregate_type.clone()),
        "aggregate_id": event.map(|e| e.aggregate_id.clone()),
        "field": change.field,
        "field_label": field_label(change.field),
        "before": change.before,
        "after": change.after,
        "before_text": value_text(&change.before, unit),
        "after_text": value_text(&change.after, unit),
        "reason": event.and_then(|e| e.metadata_str("reason")),
        "staff": staff,
        "course": course,
        "completed_on": payload.get("completed_on").cloned().unwrap_or(Value::Null),
        "incident": incident,
        "after_publication": last_publication.is_none_or(|p| change.position > p),
    }))
}

/// What a trail is asked for.
pub struct TrailQuery<'a> {
    pub code: &'a str,
    pub indicator: &'a str,
    pub fiscal_year: FiscalYear,
    pub as_of: Option<i64>,
    /// Only changes made by this event type (`TrainingCompleted` …).
    pub event_type: Option<&'a str>,
    /// `(page, per_page)`, or every row.
    pub page: Option<(usize, usize)>,
}

/// One page of a trail, as the API answers it.
pub struct Trail {
    pub body: Value,
    pub rows: Vec<Value>,
    pub indicator_name: String,
}

/// The event types that occur in a trail, for its filter.
pub fn event_types() -> &'static [&'static str] {
    &[
        "TrainingCompleted",
        "CompletionCorrected",
        "CompletionRevoked",
        "StaffEnrolled",
        "WaitlistPromoted",
        "EnrolmentCancelled",
        "StaffRegistered",
        "GradeChanged",
        "StaffTransferred",
        "StaffSeparated",
        "StaffRehired",
        "InterviewRecorded",
        "ComplianceIncidentRecorded",
        "ComplianceIncidentWithdrawn",
        "TargetSet",
        "ActualReported",
        "ActualCorrected",
        "SheetPublished",
    ]
}

/// Who changed a result, when and why: every event that moved the target or the actual of
/// one sheet cell, and every publication of the year, newest first.
pub async fn trail(ledger: &Ledger, query: &TrailQuery<'_>) -> ApiResult<Trail> {
    let not_found = || {
        ApiError::not_found(
            "indicator_not_found",
            "その時点にこの計画項目または指標はありません",
        )
    };
    let (position, label, changes) = ledger
        .projector
        .audit(query.code, query.indicator, query.fiscal_year, query.as_of)?
        .ok_or_else(not_found)?;
    let sheet = ledger
        .projector
        .sheet(query.code, query.as_of)?
        .ok_or_else(not_found)?;
    let indicator = sheet
        .indicators
        .iter()
        .find(|i| i.code == query.indicator)
        .ok_or_else(not_found)?;
    let unit = indicator.unit;
    // Rows are in log order: only the few publication rows and a binary search are needed
    // for what a page header says, whatever the length of the trail.
    let last_publication = (0..changes.len())
        .rev()
        .map(|i| changes.key(i))
        .find(|(_, field)| *field == PUBLICATION)
        .map(|(position, _)| position);
    let after_last_publication = match last_publication {
        Some(p) => changes.len() - partition(&changes, |position| position <= p),
        None => changes.len(),
    };
    // The rows shown, newest first: what changed since the last publication leads.
    let mut kept: Vec<usize> = (0..changes.len()).rev().collect();
    if let Some(event_type) = query.event_type {
        let positions: Vec<i64> = kept.iter().map(|&i| changes.key(i).0).collect();
        let types: BTreeMap<i64, String> = read_positions(&ledger.backend, &positions)
            .await?
            .into_iter()
            .map(|e| (e.position, e.event_type))
            .collect();
        kept.retain(|&i| types.get(&changes.key(i).0).map(String::as_str) == Some(event_type));
    }
    let total = kept.len();
    let (page, per_page) = query.page.unwrap_or((1, total.max(1)));
    let shown: Vec<Change> = kept
        .iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(|&i| changes.change(i))
        .collect();
    let positions: Vec<i64> = shown.iter().map(|c| c.position).collect();
    let events: BTreeMap<i64, LogEvent> = read_positions(&ledger.backend, &positions)
        .await?
        .into_iter()
        .map(|e| (e.position, e))
        .collect();
    let mut rows = Vec::with_capacity(shown.len());
    for change in &shown {
        rows.push(
            row(
                ledger,
                change,
                events.get(&change.position),
                unit,
                last_publication,
            )
            .await?,
        );
    }
    let as_of_ms = query.as_of.unwrap_or_else(crate::storage::now_ms);
    let body = json!({
        "item": query.code,
        "indicator": query.indicator,
        "indicator_name": indicator.name,
        "fiscal_year": query.fiscal_year,
        "as_of": label,
        "as_of_jst": jst_minute(as_of_ms),
        "position": position,
        "total": total,
        "page": page,
        "per_page": per_page,
        "pages": total.div_ceil(per_page),
        "after_last_publication": after_last_publication,
        "last_publication_position": last_publication,
    });
    Ok(Trail {
        body,
        rows,
        indicator_name: indicator.name.clone(),
    })
}

/// How many rows of `trail` (log order) have a position for which `before` holds.
fn partition(trail: &Rows, before: impl Fn(i64) -> bool) -> usize {
    let (mut low, mut high) = (0, trail.len());
    while low < high {
        let middle = low + (high - low) / 2;
        if before(trail.key(middle).0) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    low
}

/// A trail as a CSV download.
pub fn csv_response(query: &TrailQuery<'_>, trail: &Trail) -> ApiResult<Response> {
    let bytes = csv_of(
        query.code,
        &trail.indicator_name,
        query.fiscal_year,
        &trail.rows,
    )
    .map_err(ApiError::internal)?;
    let filename = format!(
        "audit-{}-{}-{}.csv",
        query.code,
        query.indicator,
        query.fiscal_year.year()
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

#[utoipa::path(get, path = "/plan-items/{code}/audit", tag = "監査証跡", params(("code" = String, Path, description = "計画項目コード"), AuditQuery), responses(QueryResponses))]
async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(code): AppPath<String>,
    AppQuery(query): AppQuery<AuditQuery>,
) -> ApiResult<Response> {
    caller.require(&state, Action::ReadAudit)?;
    let as_of = parse_as_of(query.as_of.as_deref())?;
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::validation(format!(
                "format {other:?} には対応していません（json または csv）"
            )))
        }
    };
    let per_page = query.per_page.unwrap_or(PER_PAGE);
    if per_page == 0 || per_page > MAX_PER_PAGE {
        return Err(ApiError::validation(format!(
            "per_page は 1〜{MAX_PER_PAGE} で指定してください"
        )));
    }
    let page = query.page.unwrap_or(1).max(1);
    let trail_query = TrailQuery {
        code: &code,
        indicator: &query.indicator,
        fiscal_year: query.fiscal_year,
        as_of,
        event_type: None,
        page: (!csv).then_some((page, per_page)),
    };
    let trail = trail(&state.ledger, &trail_query).await?;
    if csv {
        return csv_response(&trail_query, &trail);
    }
    let mut body = trail.body;
    if let Some(object) = body.as_object_mut() {
        object.insert("changes".into(), Value::Array(trail.rows));
    }
    Ok(Json(body).into_response())
}

/// The trail as CSV: UTF-8 with BOM (Excel), Japanese headings, JST times, and text cells
/// that Excel would take for a formula made inert.
fn csv_of(
    code: &str,
    indicator: &str,
    fiscal_year: FiscalYear,
    rows: &[Value],
) -> Result<Vec<u8>, crate::reports::ReportError> {
    use crate::reports::csv::inert;
    let mut out = csv::WriterBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::CRLF)
        .from_writer(b"\xEF\xBB\xBF".to_vec());
    out.write_record([format!(
        "監査証跡　{code} {} {}",
        inert(indicator),
        fiscal_year.full_label()
    )])?;
    out.write_record([
        "記録日時（JST）",
        "記録者",
        "種別",
        "項目",
        "変更前",
        "変更後",
        "職員番号",
        "氏名",
        "研修",
        "修了日",
        "理由",
        "最終公表後",
        "イベント位置",
    ])?;
    let text = |v: &Value| v.as_str().map(inert).unwrap_or_default();
    for r in rows {
        let course = match (&r["course"]["course_code"], &r["course"]["title"]) {
            (Value::String(code), Value::String(title)) => inert(&format!("{code} {title}")),
            _ => String::new(),
        };
        out.write_record([
            text(&r["recorded_at_jst"]),
            text(&r["actor"]),
            text(&r["event_label"]),
            text(&r["field_label"]),
            text(&r["before_text"]),
            text(&r["after_text"]),
            text(&r["staff"]["employee_no"]),
            if r["staff"]["personal_data_erased"] == true {
                ERASED.to_string()
            } else {
                text(&r["staff"]["name"])
            },
            course,
            text(&r["completed_on"]),
            text(&r["reason"]),
            if r["after_publication"] == json!(true) {
                "○".to_string()
            } else {
                String::new()
            },
            r["position"].to_string(),
        ])?;
    }
    out.into_inner()
        .map_err(|e| crate::reports::ReportError::Io(e.into_error()))
}
