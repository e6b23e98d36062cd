//! Reports: the plan item list and the progress sheet, as of any moment.

use super::error::{ApiError, ApiResult};
use super::extract::{AppPath, AppQuery, Caller};
use super::openapi::QueryResponses;
use super::AppState;
use crate::application::policy::Action;
use crate::reports::{render, Format};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kiroku_domain::values::FiscalYear;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(sheet))
        .routes(routes!(projections))
}

/// Reads a report's `as_of` (see [`kiroku_projections::time::parse_as_of`]): RFC 3339, or a
/// date alone for the end of that day in JST; a moment in the future is refused.
pub fn parse_as_of(as_of: Option<&str>) -> ApiResult<Option<i64>> {
    use kiroku_projections::time::{parse_as_of, AsOfError};
    match as_of {
        None => Ok(None),
        Some(text) => match parse_as_of(text, crate::storage::now_ms()) {
            Ok(ms) => Ok(Some(ms)),
            Err(error @ AsOfError::InFuture(_)) => Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "as_of_in_future",
                error.to_string(),
            )),
            Err(error) => Err(ApiError::validation(error.to_string())),
        },
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    fiscal_year: Option<FiscalYear>,
}

/// Whether an actual says something about its year: a manual report, or a computed value
/// other than 0 (every year of the period computes to 0 before anything is recorded).
fn has_data(actual: kiroku_projections::sheet::ActualCell) -> bool {
    use kiroku_projections::sheet::ActualSource;
    match actual.source {
        ActualSource::Estimate | ActualSource::Confirmed => true,
        ActualSource::Computed => actual.value.is_some_and(|v| v != 0.0),
    }
}

/// The fiscal year a list of sheets opens on: the one asked for, else the latest year up to
/// this one that has an actual, else this year.
pub fn focus_year<'a>(
    sheets: impl Iterator<Item = &'a kiroku_projections::sheet::Sheet>,
    asked: Option<FiscalYear>,
) -> i32 {
    let this_year = FiscalYear::of(super::staff::today_jst()).year();
    let sheets: Vec<&kiroku_projections::sheet::Sheet> = sheets.collect();
    // With no data yet, the latest year of the plan periods that has begun (a dashboard
    // opened after the plan period shows its last year, not an empty year outside it).
    let plan_years = || {
        sheets
            .iter()
            .flat_map(|sheet| sheet.fiscal_years.iter().copied())
    };
    let latest_begun = plan_years()
        .filter(|year| *year <= this_year)
        .max()
        .or_else(|| plan_years().min());
    let latest_with_data = sheets
        .iter()
        .flat_map(|sheet| sheet.indicators.iter())
        .flat_map(|indicator| indicator.years.iter())
        .filter(|cell| cell.actual.is_some_and(has_data))
        .map(|cell| cell.fiscal_year)
        .filter(|year| *year <= this_year)
        .max();
    match (asked, latest_with_data) {
        (Some(asked), _) => asked.year(),
        (None, Some(latest)) => latest,
        (None, None) => latest_begun.unwrap_or(this_year),
    }
}

/// Every plan item with one fiscal year's target, actual and achievement per indicator: the
/// year asked for, or else the latest year of the plan period that has an actual, so a list
/// read after the plan period does not show an empty year.
#[utoipa::path(
    get,
    path = "/plan-items",
    tag = "進行管理シート",
    params(ListQuery),
    responses(QueryResponses)
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(query): AppQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    caller.require(&state, Action::ReadSheets)?;
    let projector = &state.ledger.projector;
    let mut sheets = Vec::new();
    for (code, title) in projector.plan_items()? {
        if let Some(sheet) = projector.sheet(&code, None)? {
            sheets.push((code, title, sheet));
        }
    }
    let year = focus_year(sheets.iter().map(|(_, _, sheet)| sheet), query.fiscal_year);
    let label = FiscalYear::new(year)
        .map(|fy| fy.full_label())
        .unwrap_or_default();
    let items: Vec<Value> = sheets
        .iter()
        .map(|(code, title, sheet)| {
            let indicators: Vec<Value> = sheet
                .indicators
                .iter()
                .map(|indicator| {
                    let cell = indicator.years.iter().find(|y| y.fiscal_year == year);
                    json!({
                        "code": indicator.code,
                        "name": indicator.name,
                        "target": cell.and_then(|c| c.target),
                        "actual": cell.and_then(|c| c.actual),
                        "achieved": cell.and_then(|c| c.achieved),
                        "achievement": cell.map(|c| c.achievement),
                        "achievement_label": cell.map(|c| c.achievement.label_ja()),
                    })
                })
                .collect();
            json!({
                "code": code,
                "title": title,
                "fiscal_year": year,
                "label": label,
                "indicators": indicators,
            })
        })
        .collect();
    Ok(Json(
        json!({ "fiscal_year": year, "label": label, "items": items }),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SheetQuery {
    as_of: Option<String>,
    format: Option<String>,
}

#[utoipa::path(get, path = "/plan-items/{code}/sheet", tag = "進行管理シート", params(("code" = String, Path, description = "計画項目コード"), SheetQuery), responses(QueryResponses))]
async fn sheet(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(code): AppPath<String>,
    AppQuery(query): AppQuery<SheetQuery>,
) -> ApiResult<Response> {
    caller.require(&state, Action::ReadSheets)?;
    let as_of = parse_as_of(query.as_of.as_deref())?;
    let format = match query.format.as_deref() {
        None => Format::Json,
        Some(text) => Format::parse(text).ok_or_else(|| {
            ApiError::validation(format!(
                "format {text:?} には対応していません（json、csv、xlsx、html のいずれか）"
            ))
        })?,
    };
    let sheet = state.ledger.projector.sheet(&code, as_of)?.ok_or_else(|| {
        ApiError::not_found(
            "plan_item_not_found",
            "その時点にこの項目コードの計画項目はありません",
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
#[utoipa::path(
    get,
    path = "/projections",
    tag = "進行管理シート",
    responses(QueryResponses)
)]
async fn projections(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(&state, Action::ReadAudit)?;
    let (position, fingerprint) = state.ledger.projector.fingerprint()?;
    Ok(Json(
        json!({"position": position, "fingerprint": fingerprint}),
    ))
}
