//! The progress sheet (進行管理シート, SPEC §5) of one plan item as the log stood at a position:
//! every fiscal year of the item's period side by side, per indicator the target, the actual
//! with its source, achievement, and the published value (with its version, date and
//! publisher) with its drift.
//!
//! [`Sheet`] is the one typed value every format renders — JSON is its serialization, CSV,
//! XLSX and HTML are drawn from it in `src/reports/`.

use crate::indicators::Facts;
use crate::plans::{PlanBook, PlanRecord};
use crate::time::{fiscal_year_over, fiscal_year_started, jst_date, jst_minute, rfc3339_ms};
use kiroku_domain::plan::{Baseline, ChainHead, IndicatorDefinition, IndicatorSource};
use kiroku_domain::values::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sheet {
    pub item: SheetItem,
    /// The moment the sheet shows, RFC 3339 (UTC).
    pub as_of: String,
    /// The same moment for people: `2026-11-22 17:54 JST`.
    #[serde(default)]
    pub as_of_jst: String,
    /// The last log position the sheet reflects.
    pub position: i64,
    pub fiscal_years: Vec<i32>,
    pub indicators: Vec<SheetIndicator>,
    pub years: Vec<SheetYear>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SheetItem {
    pub code: String,
    pub title: String,
    pub pillar: Option<String>,
    pub parent_code: Option<String>,
    pub lead_department: Option<String>,
    pub status: Option<ItemStatus>,
    pub status_label: Option<String>,
    pub aim: Option<String>,
    pub related_plans: Option<String>,
    pub from_fiscal_year: i32,
    pub to_fiscal_year: i32,
    /// The plan the item belongs to (the sheet's title), when recorded.
    #[serde(default)]
    pub plan: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SheetIndicator {
    pub code: String,
    pub name: String,
    pub description: Option<String>,
    pub unit: Unit,
    pub unit_label: String,
    pub kind: IndicatorKind,
    pub kind_label: String,
    pub source: IndicatorSource,
    pub baseline: Option<Baseline>,
    pub years: Vec<IndicatorCell>,
}

/// One indicator in one fiscal year.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndicatorCell {
    pub fiscal_year: i32,
    /// `令和5年度（2023年度）`
    pub label: String,
    /// `R5`
    pub short_label: String,
    pub target: Option<TargetCell>,
    pub actual: Option<ActualCell>,
    /// Whether the target was met; `None` without a target or an actual, or while the year
    /// is not over at the sheet's moment.
    pub achieved: Option<bool>,
    #[serde(default)]
    pub achievement: Achievement,
    pub published: Option<PublishedCell>,
    /// Today's actual minus the published one, one decimal.
    pub drift: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TargetCell {
    pub op: TargetOp,
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActualSource {
    /// Computed by a rule from the log.
    Computed,
    /// Reported by hand as an estimate (見込み).
    Estimate,
    /// Reported by hand as confirmed.
    Confirmed,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ActualCell {
    /// `None` for a rate whose denominator is empty.
    pub value: Option<f64>,
    pub source: ActualSource,
}

/// 達成 / 未達成 / 集計中 / －.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Achievement {
    Achieved,
    NotAchieved,
    /// The year has begun but is not over at the sheet's moment: not judged yet.
    InProgress,
    /// No target or no actual, or the year had not begun.
    #[default]
    None,
}

impl Achievement {
    pub fn label_ja(self) -> &'static str {
        match self {
            Achievement::Achieved => "達成",
            Achievement::NotAchieved => "未達成",
            Achievement::InProgress => "集計中",
            Achievement::None => "－",
        }
    }
}

/// The value as last published for the year, with who published which version when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedCell {
    pub value: Option<f64>,
    pub recorded_at: String,
    /// The publication date in Japan, `2024-05-30`.
    #[serde(default)]
    pub published_on: String,
    #[serde(default)]
    pub published_by: String,
    /// 第n版.
    #[serde(default = "first_version")]
    pub version: u32,
    /// Why this version was published (from the second on).
    #[serde(default)]
    pub reason: Option<String>,
}

fn first_version() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SheetYear {
    pub fiscal_year: i32,
    pub label: String,
    pub activities: Vec<ActivityCell>,
    pub self_evaluation: Option<SelfEvaluationCell>,
    pub external_evaluation: Option<ExternalEvaluationCell>,
    /// 公表時の台帳ダイジェスト: the chain head the year's last publication (as of the sheet)
    /// froze its values at. Anyone holding the sheet can check the log still extends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger_head: Option<ChainHead>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityCell {
    pub planned: Option<String>,
    pub result: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfEvaluationCell {
    pub grade: SelfGrade,
    pub grade_label: String,
    pub reason: Option<String>,
    pub next_step: NextStep,
    pub next_step_label: String,
    pub direction: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalEvaluationCell {
    pub text: String,
}

/// Rounds to one decimal, half away from zero (drifts, so float noise never shows).
fn one_decimal(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn years_of(item: &PlanRecord) -> Vec<FiscalYear> {
    let from = item.definition.value.from_fiscal_year.year();
    let to = item.definition.value.to_fiscal_year.year();
    (from..=to)
        .filter_map(|y| FiscalYear::new(y).ok())
        .collect()
}

/// The actual of an indicator in a year at position `at`.
fn actual(
    facts: &Facts,
    item: &str,
    indicator: &IndicatorDefinition,
    fy: FiscalYear,
    at: i64,
) -> Option<ActualCell> {
    match &indicator.source {
        IndicatorSource::Rule { rule, params } => Some(ActualCell {
            value: facts.compute(*rule, params, fy, at),
            source: ActualSource::Computed,
        }),
        IndicatorSource::Manual(_) => facts
            .manual_actual(item, indicator.indicator_code.as_str(), fy, at)
            .map(|m| ActualCell {
                value: Some(m.value),
                source: match m.status {
                    ActualStatus::Estimate => ActualSource::Estimate,
                    ActualStatus::Confirmed => ActualSource::Confirmed,
                },
            }),
    }
}

fn text(t: &Option<Text>) -> Option<String> {
    t.as_ref().map(|t| t.as_str().to_string())
}

/// The sheet of plan item `code` from exactly the events at positions ≤ `at`, drawn at the
/// moment `moment` (ms since the epoch). `None` when the item was not defined by then.
pub fn sheet(book: &PlanBook, facts: &Facts, code: &str, at: i64, moment: i64) -> Option<Sheet> {
    let item = book.items.get(code)?;
    if item.definition.position > at {
        return None;
    }
    let d = &item.definition.value;
    let years = years_of(item);
    let mut indicators = Vec::new();
    for indicator in item.indicators.iter().filter(|i| i.position <= at) {
        let ind = &indicator.value;
        let mut cells = Vec::new();
        for &fy in &years {
            let target = facts
                .target(code, ind.indicator_code.as_str(), fy, at)
                .map(|(op, value, _)| TargetCell { op, value });
            let actual = actual(facts, code, ind, fy, at);
            let value = actual.and_then(|a| a.value);
            let over = fiscal_year_over(fy, moment);
            let achieved = match (target, value) {
                (Some(t), Some(value)) if over => Some(t.op.holds(value, t.value)),
                _ => None,
            };
            let achievement = match achieved {
                Some(true) => Achievement::Achieved,
                Some(false) => Achievement::NotAchieved,
                // A year under way is 集計中; one not begun yet at the moment shows －.
                None if !over && target.is_some() && fiscal_year_started(fy, moment) => {
                    Achievement::InProgress
                }
                None => Achievement::None,
            };
            let published = item
                .publications
                .iter()
                .rev()
                .find(|p| p.position <= at && p.value.fiscal_year == fy)
                .and_then(|p| {
                    p.value
                        .values
                        .get(&ind.indicator_code)
                        .map(|v| PublishedCell {
                            value: *v,
                            recorded_at: rfc3339_ms(p.recorded_at),
                            published_on: jst_date(p.recorded_at),
                            published_by: p.value.published_by.clone(),
                            version: p.value.version,
                            reason: text(&p.value.reason),
                        })
                });
            let drift = match (published.as_ref().and_then(|p| p.value), value) {
                (Some(then), Some(now)) => Some(one_decimal(now - then)),
                _ => None,
            };
            cells.push(IndicatorCell {
                fiscal_year: fy.year(),
                label: fy.full_label(),
                short_label: fy.short_label(),
                target,
                actual,
                achieved,
                achievement,
                published,
                drift,
            });
        }
        indicators.push(SheetIndicator {
            code: ind.indicator_code.as_str().to_string(),
            name: ind.name.as_str().to_string(),
            description: text(&ind.description),
            unit: ind.unit,
            unit_label: ind.unit.label_ja().to_string(),
            kind: ind.kind,
            kind_label: ind.kind.label_ja().to_string(),
            source: ind.source.clone(),
            baseline: ind.baseline,
            years: cells,
        });
    }
    let mut year_rows = Vec::new();
    for &fy in &years {
        let activities = item
            .activities
            .iter()
            .filter(|a| a.position <= at && a.value.fiscal_year == fy)
            .map(|a| ActivityCell {
                planned: text(&a.value.planned),
                result: text(&a.value.result),
            })
            .collect();
        let self_evaluation = item
            .self_evaluations
            .iter()
            .rev()
            .find(|e| e.position <= at && e.value.fiscal_year == fy)
            .map(|e| SelfEvaluationCell {
                grade: e.value.grade,
                grade_label: e.value.grade.label_ja().to_string(),
                reason: Some(e.value.reason.as_str().to_string()),
                next_step: e.value.next_step,
                next_step_label: e.value.next_step.label_ja().to_string(),
                direction: text(&e.value.direction),
            });
        let external_evaluation = item
            .external_evaluations
            .iter()
            .rev()
            .find(|e| e.position <= at && e.value.0 == fy)
            .map(|e| ExternalEvaluationCell {
                text: e.value.1.as_str().to_string(),
            });
        let ledger_head = item
            .publications
            .iter()
            .rev()
            .find(|p| p.position <= at && p.value.fiscal_year == fy)
            .and_then(|p| p.value.ledger_head.clone());
        year_rows.push(SheetYear {
            fiscal_year: fy.year(),
            label: fy.full_label(),
            activities,
            self_evaluation,
            external_evaluation,
            ledger_head,
        });
    }
    Some(Sheet {
        item: SheetItem {
            code: d.code.as_str().to_string(),
            title: d.title.as_str().to_string(),
            pillar: Some(d.pillar.as_str().to_string()),
            parent_code: d.parent_code.as_ref().map(|c| c.as_str().to_string()),
            lead_department: Some(d.lead_department.as_str().to_string()),
            status: Some(d.status),
            status_label: Some(d.status.label_ja().to_string()),
            aim: text(&d.aim),
            related_plans: text(&d.related_plans),
            from_fiscal_year: d.from_fiscal_year.year(),
            to_fiscal_year: d.to_fiscal_year.year(),
            plan: text(&d.plan),
        },
        as_of: rfc3339_ms(moment),
        as_of_jst: jst_minute(moment),
        position: at,
        fiscal_years: years.iter().map(|y| y.year()).collect(),
        indicators,
        years: year_rows,
    })
}
