//! The progress sheet (進行管理シート, SPEC §5) of one plan item as the log stood at a position:
//! every fiscal year of the item's period side by side, per indicator the target, the actual
//! with its source, achievement, and the published value with its drift.

use crate::indicators::Facts;
use crate::plans::{PlanBook, PlanRecord};
use kiroku_domain::plan::{IndicatorDefinition, IndicatorSource};
use kiroku_domain::values::FiscalYear;
use serde_json::{json, Value};

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

/// The actual of an indicator in a year at position `at`: `(value, source)`.
fn actual(
    facts: &Facts,
    item: &str,
    indicator: &IndicatorDefinition,
    fy: FiscalYear,
    at: i64,
) -> Option<(Option<f64>, &'static str)> {
    match &indicator.source {
        IndicatorSource::Rule { rule, params } => {
            Some((facts.compute(*rule, params, fy, at), "computed"))
        }
        IndicatorSource::Manual(_) => facts
            .manual_actual(item, indicator.indicator_code.as_str(), fy, at)
            .map(|m| (Some(m.value), m.status.as_str())),
    }
}

/// The sheet of plan item `code` from exactly the events at positions ≤ `at`; `None` when the
/// item was not defined by then. `as_of` is echoed as given.
pub fn sheet(book: &PlanBook, facts: &Facts, code: &str, at: i64, as_of: &str) -> Option<Value> {
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
            let target = facts.target(code, ind.indicator_code.as_str(), fy, at);
            let actual = actual(facts, code, ind, fy, at);
            let value = actual.and_then(|(v, _)| v);
            let achieved = match (target, value) {
                (Some((op, target, _)), Some(value)) => Some(op.holds(value, target)),
                _ => None,
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
                        .map(|v| (*v, p.recorded_at))
                });
            let drift = match (published, value) {
                (Some((Some(then), _)), Some(now)) => Some(one_decimal(now - then)),
                _ => None,
            };
            cells.push(json!({
                "fiscal_year": fy.year(),
                "label": fy.label(),
                "short_label": fy.short_label(),
                "target": target.map(|(op, value, _)| json!({"op": op, "value": value})),
                "actual": actual.map(|(value, source)| json!({"value": value, "source": source})),
                "achieved": achieved,
                "published": published.map(|(value, recorded_at)| json!({
                    "value": value,
                    "recorded_at": crate::rfc3339_ms(recorded_at),
                })),
                "drift": drift,
            }));
        }
        indicators.push(json!({
            "code": ind.indicator_code,
            "name": ind.name,
            "description": ind.description,
            "unit": ind.unit,
            "unit_label": ind.unit.label_ja(),
            "kind": ind.kind,
            "kind_label": ind.kind.label_ja(),
            "source": ind.source,
            "baseline": ind.baseline,
            "years": cells,
        }));
    }
    let mut year_rows = Vec::new();
    for &fy in &years {
        let activities: Vec<Value> = item
            .activities
            .iter()
            .filter(|a| a.position <= at && a.value.fiscal_year == fy)
            .map(|a| json!({"planned": a.value.planned, "result": a.value.result}))
            .collect();
        let self_evaluation = item
            .self_evaluations
            .iter()
            .rev()
            .find(|e| e.position <= at && e.value.fiscal_year == fy)
            .map(|e| {
                json!({
                    "grade": e.value.grade,
                    "grade_label": e.value.grade.label_ja(),
                    "reason": e.value.reason,
                    "next_step": e.value.next_step,
                    "next_step_label": e.value.next_step.label_ja(),
                    "direction": e.value.direction,
                })
            });
        let external_evaluation = item
            .external_evaluations
            .iter()
            .rev()
            .find(|e| e.position <= at && e.value.0 == fy)
            .map(|e| json!({"text": e.value.1}));
        year_rows.push(json!({
            "fiscal_year": fy.year(),
            "label": fy.label(),
            "activities": activities,
            "self_evaluation": self_evaluation,
            "external_evaluation": external_evaluation,
        }));
    }
    Some(json!({
        "item": {
            "code": d.code,
            "title": d.title,
            "pillar": d.pillar,
            "parent_code": d.parent_code,
            "lead_department": d.lead_department,
            "status": d.status,
            "status_label": d.status.label_ja(),
            "aim": d.aim,
            "related_plans": d.related_plans,
            "from_fiscal_year": d.from_fiscal_year,
            "to_fiscal_year": d.to_fiscal_year,
        },
        "as_of": as_of,
        "position": at,
        "fiscal_years": years.iter().map(|y| y.year()).collect::<Vec<_>>(),
        "indicators": indicators,
        "years": year_rows,
    }))
}
