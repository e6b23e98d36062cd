//! A plan item (計画項目) of an HR development plan, e.g. `2-1-2 研修内容の充実`: its indicators,
//! targets, manually reported actuals, activities, evaluations and the publication of its sheet.

use crate::error::{DomainError, Refusal};
use crate::values::*;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanItemDefinition {
    pub code: Code,
    pub title: Text,
    pub pillar: Text,
    pub parent_code: Option<Code>,
    pub lead_department: Text,
    pub status: ItemStatus,
    pub aim: Option<Text>,
    pub related_plans: Option<Text>,
    pub from_fiscal_year: FiscalYear,
    pub to_fiscal_year: FiscalYear,
    /// The plan the item belongs to, e.g. はだの行政サービス改革基本方針実行計画: the title
    /// of its progress sheet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Text>,
}

/// The rules of SPEC §4 that compute an indicator's actual from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleName {
    TrainingCompletions,
    TrainingParticipationRate,
    TrainingUnderstandingRate,
    InterviewCoverage,
    WomenInManagementRate,
    RotationCoverage,
    DispatchCount,
    ComplianceIncidents,
}

impl RuleName {
    /// The parameter names this rule understands.
    fn accepts(self) -> &'static [&'static str] {
        match self {
            RuleName::TrainingCompletions => &["categories", "provider"],
            RuleName::TrainingParticipationRate => &["categories"],
            RuleName::TrainingUnderstandingRate => &["threshold"],
            RuleName::InterviewCoverage => &["min_per_year", "kinds"],
            RuleName::WomenInManagementRate => &["min_grade"],
            RuleName::RotationCoverage => &["years"],
            RuleName::DispatchCount | RuleName::ComplianceIncidents => &[],
        }
    }
}

/// Every parameter any rule takes; [`RuleName`] says which ones a rule accepts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<TrainingCategory>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Understanding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_per_year: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinds: Option<Vec<InterviewKind>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_grade: Option<Grade>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub years: Option<u32>,
}

impl RuleParams {
    fn given(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        let flags = [
            ("categories", self.categories.is_some()),
            ("provider", self.provider.is_some()),
            ("threshold", self.threshold.is_some()),
            ("min_per_year", self.min_per_year.is_some()),
            ("kinds", self.kinds.is_some()),
            ("min_grade", self.min_grade.is_some()),
            ("years", self.years.is_some()),
        ];
        for (name, present) in flags {
            if present {
                names.push(name);
            }
        }
        names
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Manual {
    #[serde(rename = "manual")]
    Manual,
}

/// Where an indicator's actual comes from: a rule over the log, or manual reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum IndicatorSource {
    Manual(Manual),
    Rule {
        rule: RuleName,
        #[serde(default)]
        params: RuleParams,
    },
}

impl IndicatorSource {
    pub fn is_manual(&self) -> bool {
        matches!(self, IndicatorSource::Manual(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Baseline {
    pub fiscal_year: FiscalYear,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndicatorDefinition {
    pub indicator_code: Code,
    pub name: Text,
    pub description: Option<Text>,
    pub kind: IndicatorKind,
    pub unit: Unit,
    pub source: IndicatorSource,
    pub baseline: Option<Baseline>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Target {
    pub op: TargetOp,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PlanEvent {
    PlanItemDefined(PlanItemDefinition),
    IndicatorDefined(IndicatorDefinition),
    TargetSet {
        indicator_code: Code,
        fiscal_year: FiscalYear,
        op: TargetOp,
        value: f64,
    },
    ActualReported {
        indicator_code: Code,
        fiscal_year: FiscalYear,
        value: f64,
        status: ActualStatus,
        note: Option<Text>,
    },
    ActualCorrected {
        indicator_code: Code,
        fiscal_year: FiscalYear,
        value: f64,
        reason: Text,
    },
    ActivityRecorded {
        fiscal_year: FiscalYear,
        planned: Option<Text>,
        result: Option<Text>,
    },
    SelfEvaluated {
        fiscal_year: FiscalYear,
        grade: SelfGrade,
        reason: Text,
        next_step: NextStep,
        direction: Option<Text>,
    },
    ExternalEvaluated {
        fiscal_year: FiscalYear,
        text: Text,
    },
    /// A fiscal year's sheet published with each indicator's actual frozen. Publishing a
    /// year again is a new version (第2版 …) with a reason; earlier versions stay in the log.
    SheetPublished {
        fiscal_year: FiscalYear,
        values: BTreeMap<Code, Option<f64>>,
        published_by: String,
        /// 1 for the first publication of the year (absent in events written before versions
        /// were recorded: read as 0, and counted by the readers).
        #[serde(default)]
        version: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<Text>,
        /// The hash chain's head the frozen values were drawn from: a published sheet in
        /// anyone's hands is a digest of the log up to there (公表時の台帳ダイジェスト).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ledger_head: Option<ChainHead>,
    },
}

/// A position in the log and the chain hash there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub position: i64,
    pub hash: String,
}

impl DomainEvent for PlanEvent {
    fn event_type(&self) -> String {
        match self {
            PlanEvent::PlanItemDefined(_) => "PlanItemDefined",
            PlanEvent::IndicatorDefined(_) => "IndicatorDefined",
            PlanEvent::TargetSet { .. } => "TargetSet",
            PlanEvent::ActualReported { .. } => "ActualReported",
            PlanEvent::ActualCorrected { .. } => "ActualCorrected",
            PlanEvent::ActivityRecorded { .. } => "ActivityRecorded",
            PlanEvent::SelfEvaluated { .. } => "SelfEvaluated",
            PlanEvent::ExternalEvaluated { .. } => "ExternalEvaluated",
            PlanEvent::SheetPublished { .. } => "SheetPublished",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

/// An indicator to define together with its targets per fiscal year.
#[derive(Debug, Clone, PartialEq)]
pub struct IndicatorPlan {
    pub definition: IndicatorDefinition,
    pub targets: BTreeMap<FiscalYear, Target>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PlanCommand {
    Define {
        item: PlanItemDefinition,
        indicators: Vec<IndicatorPlan>,
    },
    DefineIndicator(IndicatorPlan),
    SetTarget {
        indicator_code: Code,
        fiscal_year: FiscalYear,
        target: Target,
    },
    ReportActual {
        indicator_code: Code,
        fiscal_year: FiscalYear,
        value: f64,
        status: ActualStatus,
        note: Option<Text>,
    },
    CorrectActual {
        indicator_code: Code,
        fiscal_year: FiscalYear,
        value: f64,
        reason: Text,
    },
    RecordActivity {
        fiscal_year: FiscalYear,
        planned: Option<Text>,
        result: Option<Text>,
    },
    SelfEvaluate {
        fiscal_year: FiscalYear,
        grade: SelfGrade,
        reason: Text,
        next_step: NextStep,
        direction: Option<Text>,
    },
    EvaluateExternally {
        fiscal_year: FiscalYear,
        text: Text,
    },
    /// `values` are the indicators' actuals as the application computed them at publication.
    Publish {
        fiscal_year: FiscalYear,
        values: BTreeMap<Code, Option<f64>>,
        published_by: String,
        /// Required when the year was published before.
        reason: Option<Text>,
        /// Where in the log `values` were drawn from (filled by the application).
        ledger_head: Option<ChainHead>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("この項目コードの計画項目はすでに定義されています")]
    PlanItemExists,
    #[error("この項目コードの計画項目はありません")]
    PlanItemNotFound,
    #[error("計画期間は開始年度を終了年度以前にしてください")]
    InvalidPeriod,
    #[error("その年度は計画項目の期間外です")]
    FiscalYearOutsidePeriod,
    #[error("この指標コードの指標はすでに定義されています")]
    IndicatorExists,
    #[error("この計画項目にその指標コードの指標はありません")]
    IndicatorNotFound,
    #[error("実績を手入力で報告できるのは手入力の指標だけです（この指標は台帳から算出されます）")]
    IndicatorNotManual,
    #[error("その年度の実績はまだ報告されていません（訂正の前に報告してください）")]
    ActualNotReported,
    #[error("値は 0 以上の有限の数で、割合（%）は 100 以下にしてください")]
    InvalidValue,
    #[error("この算出ルールはパラメータ {0} を受け付けません")]
    InvalidRuleParams(&'static str),
    #[error("取組には取組内容か実績のどちらかが必要です")]
    NothingToRecord,
    #[error("この年度は公表済みです。再公表（新しい版）には理由が必要です")]
    PublicationReasonRequired,
    #[error(
        "この年度の自己評価が記録されていないため公表できません。先に自己評価を記録してください"
    )]
    SelfEvaluationMissing,
}

impl DomainError for PlanError {
    fn code(&self) -> &'static str {
        match self {
            PlanError::PlanItemExists => "plan_item_exists",
            PlanError::PlanItemNotFound => "plan_item_not_found",
            PlanError::InvalidPeriod => "invalid_period",
            PlanError::FiscalYearOutsidePeriod => "fiscal_year_outside_period",
            PlanError::IndicatorExists => "indicator_exists",
            PlanError::IndicatorNotFound => "indicator_not_found",
            PlanError::IndicatorNotManual => "indicator_not_manual",
            PlanError::ActualNotReported => "actual_not_reported",
            PlanError::InvalidValue => "invalid_value",
            PlanError::InvalidRuleParams(_) => "invalid_rule_params",
            PlanError::NothingToRecord => "nothing_to_record",
            PlanError::PublicationReasonRequired => "publication_reason_required",
            PlanError::SelfEvaluationMissing => "self_evaluation_missing",
        }
    }

    fn refusal(&self) -> Refusal {
        match self {
            PlanError::PlanItemNotFound | PlanError::IndicatorNotFound => Refusal::NotFound,
            PlanError::PlanItemExists
            | PlanError::IndicatorExists
            | PlanError::IndicatorNotManual
            | PlanError::ActualNotReported
            | PlanError::SelfEvaluationMissing => Refusal::Conflict,
            PlanError::InvalidPeriod
            | PlanError::FiscalYearOutsidePeriod
            | PlanError::InvalidValue
            | PlanError::InvalidRuleParams(_)
            | PlanError::NothingToRecord
            | PlanError::PublicationReasonRequired => Refusal::Invalid,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct IndicatorState {
    unit: Unit,
    manual: bool,
    /// Fiscal years with a reported actual.
    reported: BTreeSet<FiscalYear>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanItem {
    period: Option<(FiscalYear, FiscalYear)>,
    indicators: BTreeMap<Code, IndicatorState>,
    /// Fiscal years with a self-evaluation.
    evaluated: BTreeSet<FiscalYear>,
    /// How many times each fiscal year was published.
    publications: BTreeMap<FiscalYear, u32>,
}

impl PlanItem {
    fn check_year(&self, fiscal_year: FiscalYear) -> Result<(), PlanError> {
        match self.period {
            Some((from, to)) if from <= fiscal_year && fiscal_year <= to => Ok(()),
            Some(_) => Err(PlanError::FiscalYearOutsidePeriod),
            None => Err(PlanError::PlanItemNotFound),
        }
    }

    fn indicator(&self, code: &Code) -> Result<&IndicatorState, PlanError> {
        self.indicators
            .get(code)
            .ok_or(PlanError::IndicatorNotFound)
    }

    fn manual_indicator(
        &self,
        code: &Code,
        fiscal_year: FiscalYear,
        value: f64,
    ) -> Result<&IndicatorState, PlanError> {
        let indicator = self.indicator(code)?;
        if !indicator.manual {
            return Err(PlanError::IndicatorNotManual);
        }
        self.check_year(fiscal_year)?;
        check_value(indicator.unit, value)?;
        Ok(indicator)
    }

    /// The events that define one indicator and its targets, checked against `self`'s period
    /// and the indicators defined so far (`known`).
    fn define_indicator(
        &self,
        plan: IndicatorPlan,
        known: &mut BTreeSet<Code>,
    ) -> Result<Vec<PlanEvent>, PlanError> {
        let definition = plan.definition;
        if self.indicators.contains_key(&definition.indicator_code)
            || !known.insert(definition.indicator_code.clone())
        {
            return Err(PlanError::IndicatorExists);
        }
        if let IndicatorSource::Rule { rule, params } = &definition.source {
            if let Some(name) = params
                .given()
                .into_iter()
                .find(|n| !rule.accepts().contains(n))
            {
                return Err(PlanError::InvalidRuleParams(name));
            }
        }
        if let Some(baseline) = definition.baseline {
            check_value(definition.unit, baseline.value)?;
        }
        let mut events = Vec::new();
        let code = definition.indicator_code.clone();
        let unit = definition.unit;
        events.push(PlanEvent::IndicatorDefined(definition));
        for (fiscal_year, target) in plan.targets {
            self.check_year(fiscal_year)?;
            check_value(unit, target.value)?;
            events.push(PlanEvent::TargetSet {
                indicator_code: code.clone(),
                fiscal_year,
                op: target.op,
                value: target.value,
            });
        }
        Ok(events)
    }

    fn decide(&self, command: PlanCommand) -> Result<Vec<PlanEvent>, PlanError> {
        if let PlanCommand::Define { item, indicators } = command {
            if self.period.is_some() {
                return Err(PlanError::PlanItemExists);
            }
            if item.from_fiscal_year > item.to_fiscal_year {
                return Err(PlanError::InvalidPeriod);
            }
            let defined = PlanItem {
                period: Some((item.from_fiscal_year, item.to_fiscal_year)),
                ..PlanItem::default()
            };
            let mut known = BTreeSet::new();
            let mut events = vec![PlanEvent::PlanItemDefined(item)];
            for plan in indicators {
                events.extend(defined.define_indicator(plan, &mut known)?);
            }
            return Ok(events);
        }
        if self.period.is_none() {
            return Err(PlanError::PlanItemNotFound);
        }
        let event = match command {
            PlanCommand::Define { .. } => return Err(PlanError::PlanItemExists),
            PlanCommand::DefineIndicator(plan) => {
                return self.define_indicator(plan, &mut BTreeSet::new())
            }
            PlanCommand::SetTarget {
                indicator_code,
                fiscal_year,
                target,
            } => {
                let indicator = self.indicator(&indicator_code)?;
                self.check_year(fiscal_year)?;
                check_value(indicator.unit, target.value)?;
                PlanEvent::TargetSet {
                    indicator_code,
                    fiscal_year,
                    op: target.op,
                    value: target.value,
                }
            }
            PlanCommand::ReportActual {
                indicator_code,
                fiscal_year,
                value,
                status,
                note,
            } => {
                self.manual_indicator(&indicator_code, fiscal_year, value)?;
                PlanEvent::ActualReported {
                    indicator_code,
                    fiscal_year,
                    value,
                    status,
                    note,
                }
            }
            PlanCommand::CorrectActual {
                indicator_code,
                fiscal_year,
                value,
                reason,
            } => {
                let indicator = self.manual_indicator(&indicator_code, fiscal_year, value)?;
                if !indicator.reported.contains(&fiscal_year) {
                    return Err(PlanError::ActualNotReported);
                }
                PlanEvent::ActualCorrected {
                    indicator_code,
                    fiscal_year,
                    value,
                    reason,
                }
            }
            PlanCommand::RecordActivity {
                fiscal_year,
                planned,
                result,
            } => {
                self.check_year(fiscal_year)?;
                if planned.is_none() && result.is_none() {
                    return Err(PlanError::NothingToRecord);
                }
                PlanEvent::ActivityRecorded {
                    fiscal_year,
                    planned,
                    result,
                }
            }
            PlanCommand::SelfEvaluate {
                fiscal_year,
                grade,
                reason,
                next_step,
                direction,
            } => {
                self.check_year(fiscal_year)?;
                PlanEvent::SelfEvaluated {
                    fiscal_year,
                    grade,
                    reason,
                    next_step,
                    direction,
                }
            }
            PlanCommand::EvaluateExternally { fiscal_year, text } => {
                self.check_year(fiscal_year)?;
                PlanEvent::ExternalEvaluated { fiscal_year, text }
            }
            PlanCommand::Publish {
                fiscal_year,
                values,
                published_by,
                reason,
                ledger_head,
            } => {
                self.check_year(fiscal_year)?;
                if !self.evaluated.contains(&fiscal_year) {
                    return Err(PlanError::SelfEvaluationMissing);
                }
                let earlier = self.publications.get(&fiscal_year).copied().unwrap_or(0);
                if earlier > 0 && reason.is_none() {
                    return Err(PlanError::PublicationReasonRequired);
                }
                for (code, value) in &values {
                    let indicator = self.indicator(code)?;
                    if let Some(value) = value {
                        check_value(indicator.unit, *value)?;
                    }
                }
                PlanEvent::SheetPublished {
                    fiscal_year,
                    values,
                    published_by,
                    version: earlier + 1,
                    reason,
                    ledger_head,
                }
            }
        };
        Ok(vec![event])
    }
}

/// Values are finite and ≥ 0; percentages are at most 100.
fn check_value(unit: Unit, value: f64) -> Result<(), PlanError> {
    let valid = value.is_finite() && value >= 0.0 && (unit != Unit::Percent || value <= 100.0);
    if valid {
        Ok(())
    } else {
        Err(PlanError::InvalidValue)
    }
}

impl Aggregate for PlanItem {
    const TYPE: &'static str = "PlanItem";
    type Command = PlanCommand;
    type Event = PlanEvent;
    type Error = PlanError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            PlanEvent::PlanItemDefined(item) => {
                self.period = Some((item.from_fiscal_year, item.to_fiscal_year))
            }
            PlanEvent::IndicatorDefined(definition) => {
                self.indicators.insert(
                    definition.indicator_code,
                    IndicatorState {
                        unit: definition.unit,
                        manual: definition.source.is_manual(),
                        reported: BTreeSet::new(),
                    },
                );
            }
            PlanEvent::ActualReported {
                indicator_code,
                fiscal_year,
                ..
            } => {
                if let Some(indicator) = self.indicators.get_mut(&indicator_code) {
                    indicator.reported.insert(fiscal_year);
                }
            }
            PlanEvent::SelfEvaluated { fiscal_year, .. } => {
                self.evaluated.insert(fiscal_year);
            }
            PlanEvent::SheetPublished { fiscal_year, .. } => {
                *self.publications.entry(fiscal_year).or_default() += 1;
            }
            PlanEvent::TargetSet { .. }
            | PlanEvent::ActualCorrected { .. }
            | PlanEvent::ActivityRecorded { .. }
            | PlanEvent::ExternalEvaluated { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::staff::tests::text;
    use cqrs_es::test::TestFramework;

    type Given = TestFramework<PlanItem>;

    fn fy(y: i32) -> FiscalYear {
        FiscalYear::new(y).expect("fy")
    }

    fn code(s: &str) -> Code {
        Code::parse(s).expect("code")
    }

    fn item(from: i32, to: i32) -> PlanItemDefinition {
        PlanItemDefinition {
            code: code("2-1-2"),
            title: text("研修内容の充実"),
            pillar: text("組織を高める職員（ひと）づくりの推進"),
            parent_code: Some(code("2-1")),
            lead_department: text("職員課"),
            status: ItemStatus::Continued,
            aim: None,
            related_plans: None,
            from_fiscal_year: fy(from),
            to_fiscal_year: fy(to),
            plan: None,
        }
    }

    fn indicator(c: &str, unit: Unit, source: IndicatorSource) -> IndicatorDefinition {
        IndicatorDefinition {
            indicator_code: code(c),
            name: text("指標"),
            description: None,
            kind: IndicatorKind::Activity,
            unit,
            source,
            baseline: None,
        }
    }

    fn rule(rule: RuleName) -> IndicatorSource {
        IndicatorSource::Rule {
            rule,
            params: RuleParams::default(),
        }
    }

    fn defined() -> Vec<PlanEvent> {
        vec![
            PlanEvent::PlanItemDefined(item(2021, 2025)),
            PlanEvent::IndicatorDefined(indicator(
                "attendees",
                Unit::People,
                rule(RuleName::TrainingCompletions),
            )),
            PlanEvent::IndicatorDefined(indicator(
                "want_management",
                Unit::Percent,
                IndicatorSource::Manual(Manual::Manual),
            )),
        ]
    }

    fn report(c: &str, year: i32, value: f64) -> PlanCommand {
        PlanCommand::ReportActual {
            indicator_code: code(c),
            fiscal_year: fy(year),
            value,
            status: ActualStatus::Confirmed,
            note: None,
        }
    }

    fn target(c: &str, year: i32, value: f64) -> PlanCommand {
        PlanCommand::SetTarget {
            indicator_code: code(c),
            fiscal_year: fy(year),
            target: Target {
                op: TargetOp::AtLeast,
                value,
            },
        }
    }

    #[test]
    fn defining_an_item_twice_is_rejected() {
        Given::with(())
            .given(defined())
            .when(PlanCommand::Define {
                item: item(2021, 2025),
                indicators: vec![],
            })
            .then_expect_error(PlanError::PlanItemExists);
    }

    #[test]
    fn a_period_running_backwards_is_rejected() {
        Given::with(())
            .given_no_previous_events()
            .when(PlanCommand::Define {
                item: item(2025, 2021),
                indicators: vec![],
            })
            .then_expect_error(PlanError::InvalidPeriod);
    }

    #[test]
    fn a_target_outside_the_period_is_rejected_at_definition() {
        Given::with(())
            .given_no_previous_events()
            .when(PlanCommand::Define {
                item: item(2021, 2025),
                indicators: vec![IndicatorPlan {
                    definition: indicator("a", Unit::People, rule(RuleName::DispatchCount)),
                    targets: BTreeMap::from([(
                        fy(2026),
                        Target {
                            op: TargetOp::AtLeast,
                            value: 1.0,
                        },
                    )]),
                }],
            })
            .then_expect_error(PlanError::FiscalYearOutsidePeriod);
    }

    #[test]
    fn duplicate_indicator_codes_are_rejected() {
        let plan = IndicatorPlan {
            definition: indicator("a", Unit::People, rule(RuleName::DispatchCount)),
            targets: BTreeMap::new(),
        };
        Given::with(())
            .given_no_previous_events()
            .when(PlanCommand::Define {
                item: item(2021, 2025),
                indicators: vec![plan.clone(), plan],
            })
            .then_expect_error(PlanError::IndicatorExists);
    }

    #[test]
    fn a_parameter_the_rule_does_not_take_is_rejected() {
        Given::with(())
            .given(defined())
            .when(PlanCommand::DefineIndicator(IndicatorPlan {
                definition: indicator(
                    "b",
                    Unit::Count,
                    IndicatorSource::Rule {
                        rule: RuleName::DispatchCount,
                        params: RuleParams {
                            min_grade: Grade::try_from(6).ok(),
                            ..RuleParams::default()
                        },
                    },
                ),
                targets: BTreeMap::new(),
            }))
            .then_expect_error(PlanError::InvalidRuleParams("min_grade"));
    }

    #[test]
    fn commands_on_an_unknown_item_are_rejected() {
        Given::with(())
            .given_no_previous_events()
            .when(target("attendees", 2023, 2300.0))
            .then_expect_error(PlanError::PlanItemNotFound);
    }

    #[test]
    fn a_target_for_an_unknown_indicator_is_rejected() {
        Given::with(())
            .given(defined())
            .when(target("nope", 2023, 2300.0))
            .then_expect_error(PlanError::IndicatorNotFound);
    }

    #[test]
    fn a_target_outside_the_period_is_rejected() {
        Given::with(())
            .given(defined())
            .when(target("attendees", 2020, 2300.0))
            .then_expect_error(PlanError::FiscalYearOutsidePeriod);
    }

    #[test]
    fn a_negative_target_is_rejected() {
        Given::with(())
            .given(defined())
            .when(target("attendees", 2023, -1.0))
            .then_expect_error(PlanError::InvalidValue);
    }

    #[test]
    fn a_percentage_above_100_is_rejected() {
        Given::with(())
            .given(defined())
            .when(report("want_management", 2023, 100.5))
            .then_expect_error(PlanError::InvalidValue);
    }

    #[test]
    fn a_non_finite_value_is_rejected() {
        Given::with(())
            .given(defined())
            .when(report("want_management", 2023, f64::NAN))
            .then_expect_error(PlanError::InvalidValue);
    }

    #[test]
    fn reporting_an_actual_for_a_computed_indicator_is_rejected() {
        Given::with(())
            .given(defined())
            .when(report("attendees", 2023, 2300.0))
            .then_expect_error(PlanError::IndicatorNotManual);
    }

    #[test]
    fn correcting_an_actual_never_reported_is_rejected() {
        Given::with(())
            .given(defined())
            .when(PlanCommand::CorrectActual {
                indicator_code: code("want_management"),
                fiscal_year: fy(2023),
                value: 30.0,
                reason: text("集計誤り"),
            })
            .then_expect_error(PlanError::ActualNotReported);
    }

    #[test]
    fn an_activity_without_content_is_rejected() {
        Given::with(())
            .given(defined())
            .when(PlanCommand::RecordActivity {
                fiscal_year: fy(2023),
                planned: None,
                result: None,
            })
            .then_expect_error(PlanError::NothingToRecord);
    }

    #[test]
    fn a_self_evaluation_outside_the_period_is_rejected() {
        Given::with(())
            .given(defined())
            .when(PlanCommand::SelfEvaluate {
                fiscal_year: fy(2026),
                grade: SelfGrade::A,
                reason: text("計画どおり実施"),
                next_step: NextStep::Continue,
                direction: None,
            })
            .then_expect_error(PlanError::FiscalYearOutsidePeriod);
    }

    #[test]
    fn publishing_a_value_for_an_unknown_indicator_is_rejected() {
        Given::with(())
            .given([defined(), vec![evaluated(2023)]].concat())
            .when(PlanCommand::Publish {
                fiscal_year: fy(2023),
                values: BTreeMap::from([(code("nope"), Some(1.0))]),
                published_by: "hr".into(),
                reason: None,
                ledger_head: None,
            })
            .then_expect_error(PlanError::IndicatorNotFound);
    }

    fn evaluated(year: i32) -> PlanEvent {
        PlanEvent::SelfEvaluated {
            fiscal_year: fy(year),
            grade: SelfGrade::A,
            reason: text("計画どおり実施"),
            next_step: NextStep::Continue,
            direction: None,
        }
    }

    fn publish(reason: Option<&str>) -> PlanCommand {
        PlanCommand::Publish {
            fiscal_year: fy(2023),
            values: BTreeMap::new(),
            published_by: "人事課".into(),
            reason: reason.map(text),
            ledger_head: None,
        }
    }

    fn published(version: u32, reason: Option<&str>) -> PlanEvent {
        PlanEvent::SheetPublished {
            fiscal_year: fy(2023),
            values: BTreeMap::new(),
            published_by: "人事課".into(),
            version,
            reason: reason.map(text),
            ledger_head: None,
        }
    }

    #[test]
    fn a_year_without_a_self_evaluation_cannot_be_published() {
        Given::with(())
            .given(defined())
            .when(publish(None))
            .then_expect_error(PlanError::SelfEvaluationMissing);
    }

    #[test]
    fn the_first_publication_of_a_year_is_version_1() {
        Given::with(())
            .given([defined(), vec![evaluated(2023)]].concat())
            .when(publish(None))
            .then_expect_events(vec![published(1, None)]);
    }

    #[test]
    fn publishing_a_year_again_needs_a_reason_and_makes_version_2() {
        Given::with(())
            .given([defined(), vec![evaluated(2023), published(1, None)]].concat())
            .when(publish(None))
            .then_expect_error(PlanError::PublicationReasonRequired);
        Given::with(())
            .given([defined(), vec![evaluated(2023), published(1, None)]].concat())
            .when(publish(Some("集計誤りの訂正")))
            .then_expect_events(vec![published(2, Some("集計誤りの訂正"))]);
    }

    #[test]
    fn defining_an_item_records_indicators_and_targets() {
        Given::with(())
            .given_no_previous_events()
            .when(PlanCommand::Define {
                item: item(2021, 2025),
                indicators: vec![IndicatorPlan {
                    definition: indicator(
                        "attendees",
                        Unit::People,
                        rule(RuleName::TrainingCompletions),
                    ),
                    targets: BTreeMap::from([(
                        fy(2023),
                        Target {
                            op: TargetOp::AtLeast,
                            value: 2300.0,
                        },
                    )]),
                }],
            })
            .then_expect_events(vec![
                PlanEvent::PlanItemDefined(item(2021, 2025)),
                PlanEvent::IndicatorDefined(indicator(
                    "attendees",
                    Unit::People,
                    rule(RuleName::TrainingCompletions),
                )),
                PlanEvent::TargetSet {
                    indicator_code: code("attendees"),
                    fiscal_year: fy(2023),
                    op: TargetOp::AtLeast,
                    value: 2300.0,
                },
            ]);
    }

    #[test]
    fn indicator_sources_read_as_the_spec_writes_them() {
        let manual: IndicatorSource = serde_json::from_str("\"manual\"").expect("manual");
        assert!(manual.is_manual());
        let computed: IndicatorSource = serde_json::from_str(
            r#"{"rule": "training_understanding_rate", "params": {"threshold": 4}}"#,
        )
        .expect("rule");
        assert!(!computed.is_manual());
        assert!(serde_json::from_str::<IndicatorSource>(r#"{"rule": "nope"}"#).is_err());
    }
}
