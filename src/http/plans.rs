//! `/plan-items` (definitions, targets, manual actuals, activities, evaluations) and
//! `/compliance-incidents`.

use super::error::{ApiError, ApiResult};
use super::extract::{AppJson, AppPath, Commander, RequestId};
use super::openapi::CommandResponses;
use super::AppState;
use crate::application::Command;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use kiroku_domain::incident::IncidentCommand;
use kiroku_domain::plan::*;
use kiroku_domain::values::*;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(define))
        .routes(routes!(define_indicator))
        .routes(routes!(set_target))
        .routes(routes!(report_actual))
        .routes(routes!(correct_actual))
        .routes(routes!(record_activity))
        .routes(routes!(self_evaluate))
        .routes(routes!(evaluate_externally))
        .routes(routes!(publish))
        .routes(routes!(record_incident))
        .routes(routes!(withdraw_incident))
}

/// Runs a command on plan item `code`; a code that cannot be one names no plan item.
async fn run(
    state: &AppState,
    caller: &Commander,
    request_id: &str,
    code: &str,
    command: PlanCommand,
    status: StatusCode,
) -> ApiResult<Response> {
    let code =
        Code::parse(code).map_err(|e| ApiError::not_found("plan_item_not_found", e.to_string()))?;
    let command = Command::Plan {
        code,
        command,
        reason: None,
    };
    super::run(state, caller, request_id, command, status, json!({})).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct IndicatorBody {
    indicator_code: Code,
    name: Text,
    description: Option<Text>,
    kind: IndicatorKind,
    unit: Unit,
    source: IndicatorSource,
    baseline: Option<Baseline>,
    #[serde(default)]
    #[schema(value_type = BTreeMap<i32, Target>)]
    targets: BTreeMap<YearKey, Target>,
}

/// A fiscal year as a key of `targets` (`"2023"`). A key that is no year (`"R5"`) is refused
/// as a wrong value naming it (`validation_failed`); a plain `FiscalYear` key made serde_json
/// report it as a syntax error (`malformed_json`).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct YearKey(FiscalYear);

impl<'de> Deserialize<'de> for YearKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let text = String::deserialize(deserializer)?;
        let year: i32 = text.trim().parse().map_err(|_| {
            D::Error::custom(format!(
                "目標の年度 {text:?} は西暦の年で書いてください（令和5年度なら \"2023\"）"
            ))
        })?;
        FiscalYear::new(year).map(YearKey).map_err(D::Error::custom)
    }
}

impl From<IndicatorBody> for IndicatorPlan {
    fn from(body: IndicatorBody) -> Self {
        IndicatorPlan {
            definition: IndicatorDefinition {
                indicator_code: body.indicator_code,
                name: body.name,
                description: body.description,
                kind: body.kind,
                unit: body.unit,
                source: body.source,
                baseline: body.baseline,
            },
            targets: body
                .targets
                .into_iter()
                .map(|(year, target)| (year.0, target))
                .collect(),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DefineBody {
    code: Code,
    title: Text,
    pillar: Text,
    parent_code: Option<Code>,
    lead_department: Text,
    status: ItemStatus,
    aim: Option<Text>,
    related_plans: Option<Text>,
    from_fiscal_year: FiscalYear,
    to_fiscal_year: FiscalYear,
    plan: Option<Text>,
    #[serde(default)]
    indicators: Vec<IndicatorBody>,
}

#[utoipa::path(post, path = "/plan-items", tag = "計画項目", request_body = DefineBody, responses(CommandResponses))]
async fn define(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppJson(body): AppJson<DefineBody>,
) -> ApiResult<Response> {
    let code = body.code.clone();
    let command = PlanCommand::Define {
        item: PlanItemDefinition {
            code: body.code,
            title: body.title,
            pillar: body.pillar,
            parent_code: body.parent_code,
            lead_department: body.lead_department,
            status: body.status,
            aim: body.aim,
            related_plans: body.related_plans,
            from_fiscal_year: body.from_fiscal_year,
            to_fiscal_year: body.to_fiscal_year,
            plan: body.plan,
        },
        indicators: body
            .indicators
            .into_iter()
            .map(IndicatorPlan::from)
            .collect(),
    };
    let status = StatusCode::CREATED;
    run(&state, &caller, &request_id, code.as_str(), command, status).await
}

#[utoipa::path(post, path = "/plan-items/{code}/indicators", tag = "計画項目", params(("code" = String, Path, description = "計画項目コード")), request_body = IndicatorBody, responses(CommandResponses))]
async fn define_indicator(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath(code): AppPath<String>,
    AppJson(body): AppJson<IndicatorBody>,
) -> ApiResult<Response> {
    let command = PlanCommand::DefineIndicator(body.into());
    run(
        &state,
        &caller,
        &request_id,
        &code,
        command,
        StatusCode::CREATED,
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TargetBody {
    indicator_code: Code,
    fiscal_year: FiscalYear,
    op: TargetOp,
    value: f64,
    reason: Option<Text>,
}

#[utoipa::path(post, path = "/plan-items/{code}/targets", tag = "計画項目", params(("code" = String, Path, description = "計画項目コード")), request_body = TargetBody, responses(CommandResponses))]
async fn set_target(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath(code): AppPath<String>,
    AppJson(body): AppJson<TargetBody>,
) -> ApiResult<Response> {
    let command = PlanCommand::SetTarget {
        indicator_code: body.indicator_code,
        fiscal_year: body.fiscal_year,
        target: Target {
            op: body.op,
            value: body.value,
        },
    };
    let code = Code::parse(&code)
        .map_err(|e| ApiError::not_found("plan_item_not_found", e.to_string()))?;
    let command = Command::Plan {
        code,
        command,
        reason: body.reason,
    };
    super::run(
        &state,
        &caller,
        &request_id,
        command,
        StatusCode::OK,
        json!({}),
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ActualBody {
    indicator_code: Code,
    fiscal_year: FiscalYear,
    value: f64,
    status: ActualStatus,
    note: Option<Text>,
}

#[utoipa::path(post, path = "/plan-items/{code}/actuals", tag = "計画項目", params(("code" = String, Path, description = "計画項目コード")), request_body = ActualBody, responses(CommandResponses))]
async fn report_actual(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath(code): AppPath<String>,
    AppJson(body): AppJson<ActualBody>,
) -> ApiResult<Response> {
    let command = PlanCommand::ReportActual {
        indicator_code: body.indicator_code,
        fiscal_year: body.fiscal_year,
        value: body.value,
        status: body.status,
        note: body.note,
    };
    run(&state, &caller, &request_id, &code, command, StatusCode::OK).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ActualCorrectionBody {
    indicator_code: Code,
    fiscal_year: FiscalYear,
    value: f64,
    reason: Text,
}

#[utoipa::path(post, path = "/plan-items/{code}/actual-corrections", tag = "計画項目", params(("code" = String, Path, description = "計画項目コード")), request_body = ActualCorrectionBody, responses(CommandResponses))]
async fn correct_actual(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath(code): AppPath<String>,
    AppJson(body): AppJson<ActualCorrectionBody>,
) -> ApiResult<Response> {
    let command = PlanCommand::CorrectActual {
        indicator_code: body.indicator_code,
        fiscal_year: body.fiscal_year,
        value: body.value,
        reason: body.reason,
    };
    run(&state, &caller, &request_id, &code, command, StatusCode::OK).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ActivityBody {
    fiscal_year: FiscalYear,
    planned: Option<Text>,
    result: Option<Text>,
}

#[utoipa::path(post, path = "/plan-items/{code}/activities", tag = "計画項目", params(("code" = String, Path, description = "計画項目コード")), request_body = ActivityBody, responses(CommandResponses))]
async fn record_activity(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath(code): AppPath<String>,
    AppJson(body): AppJson<ActivityBody>,
) -> ApiResult<Response> {
    let command = PlanCommand::RecordActivity {
        fiscal_year: body.fiscal_year,
        planned: body.planned,
        result: body.result,
    };
    run(&state, &caller, &request_id, &code, command, StatusCode::OK).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SelfEvaluationBody {
    fiscal_year: FiscalYear,
    grade: SelfGrade,
    reason: Text,
    next_step: NextStep,
    direction: Option<Text>,
}

#[utoipa::path(post, path = "/plan-items/{code}/self-evaluations", tag = "計画項目", params(("code" = String, Path, description = "計画項目コード")), request_body = SelfEvaluationBody, responses(CommandResponses))]
async fn self_evaluate(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath(code): AppPath<String>,
    AppJson(body): AppJson<SelfEvaluationBody>,
) -> ApiResult<Response> {
    let command = PlanCommand::SelfEvaluate {
        fiscal_year: body.fiscal_year,
        grade: body.grade,
        reason: body.reason,
        next_step: body.next_step,
        direction: body.direction,
    };
    run(&state, &caller, &request_id, &code, command, StatusCode::OK).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ExternalEvaluationBody {
    fiscal_year: FiscalYear,
    text: Text,
}

#[utoipa::path(post, path = "/plan-items/{code}/external-evaluations", tag = "計画項目", params(("code" = String, Path, description = "計画項目コード")), request_body = ExternalEvaluationBody, responses(CommandResponses))]
async fn evaluate_externally(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath(code): AppPath<String>,
    AppJson(body): AppJson<ExternalEvaluationBody>,
) -> ApiResult<Response> {
    let command = PlanCommand::EvaluateExternally {
        fiscal_year: body.fiscal_year,
        text: body.text,
    };
    run(&state, &caller, &request_id, &code, command, StatusCode::OK).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PublicationBody {
    fiscal_year: FiscalYear,
    /// Why the year is published again (required from the second version on).
    reason: Option<Text>,
}

/// Publishes a year's sheet: freezes every indicator's actual as computed now.
#[utoipa::path(post, path = "/plan-items/{code}/publications", tag = "計画項目", params(("code" = String, Path, description = "計画項目コード")), request_body = PublicationBody, responses(CommandResponses))]
async fn publish(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath(code): AppPath<String>,
    AppJson(body): AppJson<PublicationBody>,
) -> ApiResult<Response> {
    // The values frozen and the publisher are filled in by the application layer.
    let command = PlanCommand::Publish {
        fiscal_year: body.fiscal_year,
        values: BTreeMap::new(),
        published_by: String::new(),
        reason: body.reason,
        ledger_head: None,
    };
    run(
        &state,
        &caller,
        &request_id,
        &code,
        command,
        StatusCode::CREATED,
    )
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct IncidentBody {
    occurred_on: Date,
    department: Text,
    summary: Text,
}

#[utoipa::path(post, path = "/compliance-incidents", tag = "計画項目", request_body = IncidentBody, responses(CommandResponses))]
async fn record_incident(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppJson(body): AppJson<IncidentBody>,
) -> ApiResult<Response> {
    let incident_id = Uuid::new_v4();
    let command = Command::Incident {
        incident_id,
        command: IncidentCommand::Record {
            incident_id,
            occurred_on: body.occurred_on,
            department: body.department,
            summary: body.summary,
        },
    };
    let status = StatusCode::CREATED;
    super::run(&state, &caller, &request_id, command, status, json!({})).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct WithdrawalBody {
    reason: Text,
}

#[utoipa::path(post, path = "/compliance-incidents/{id}/withdrawal", tag = "計画項目", params(("id" = Uuid, Path, description = "事案ID")), request_body = WithdrawalBody, responses(CommandResponses))]
async fn withdraw_incident(
    State(state): State<AppState>,
    caller: Commander,
    RequestId(request_id): RequestId,
    AppPath(incident_id): AppPath<Uuid>,
    AppJson(body): AppJson<WithdrawalBody>,
) -> ApiResult<Response> {
    let command = Command::Incident {
        incident_id,
        command: IncidentCommand::Withdraw {
            reason: body.reason,
        },
    };
    super::run(
        &state,
        &caller,
        &request_id,
        command,
        StatusCode::OK,
        json!({}),
    )
    .await
}
