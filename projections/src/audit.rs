//! The audit trail of SPEC §6: for one (plan item, indicator, fiscal year), every event that
//! changed the target or the actual, and every publication of the year, in log order, with the
//! value before and after.
//!
//! Only the positions the fact store names as candidates ([`Facts::candidates`],
//! [`Facts::target_positions`], [`Facts::manual_positions`]) are examined: for each such
//! position `p` the value as the log stood at `p - 1` is compared with the value at `p`, and a
//! difference is a change. Who recorded the event, when, its type and its reason are read by
//! the application from the log rows at those positions.

use crate::indicators::Facts;
use crate::plans::PlanBook;
use kiroku_domain::plan::IndicatorSource;
use kiroku_domain::values::FiscalYear;
use serde_json::{json, Value};

/// One change of an indicator's target or actual, caused by the event at `position`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Change {
    pub position: i64,
    /// `"actual"` or `"target"`.
    pub field: &'static str,
    /// The value as the log stood just before `position`. A computed actual is a number or
    /// `null`; a manual actual is `{"value", "status"}` or `null`; a target is
    /// `{"op", "value"}` or `null`.
    pub before: Value,
    /// The value as the log stood at `position`, in the same form as `before`.
    pub after: Value,
}

pub const TARGET: &str = "target";
pub const ACTUAL: &str = "actual";
/// A publication of the year's sheet: `after` is `{"value", "version"}` of this indicator as
/// published, `before` the same of the previous version (or `null`). Every publication is a
/// row, changed value or not: an auditor follows what was made public.
pub const PUBLICATION: &str = "publication";

/// The rows of one trail in log order, kept compact: a computed actual is two numbers until a
/// page asks for it, so a page of a trail of a million changes costs what the page shows plus
/// one integer sweep, not a million JSON values.
#[derive(Debug, Clone, Default)]
pub struct Trail {
    /// Every row in log order, 24 bytes each.
    rows: Vec<Row>,
    /// The target, manual actual and publication rows (few per cell), which rows point into.
    others: Vec<Change>,
}

#[derive(Debug, Clone, Copy)]
struct Row {
    position: i64,
    what: What,
}

#[derive(Debug, Clone, Copy)]
enum What {
    /// A change of a rule-computed actual: the value before and after (NaN = none).
    Computed(f64, f64),
    /// `others[i]`.
    Other(u32, &'static str),
}

impl Row {
    fn field(&self) -> &'static str {
        match self.what {
            What::Computed(..) => ACTUAL,
            What::Other(_, field) => field,
        }
    }
}

/// A computed value as a row keeps it: NaN stands for "no value" (no rule yields NaN).
fn packed(value: Option<f64>) -> f64 {
    value.unwrap_or(f64::NAN)
}

fn unpacked(value: f64) -> Value {
    if value.is_nan() {
        Value::Null
    } else {
        json!(value)
    }
}

impl Trail {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The position and field of row `i` (log order), without building its values.
    pub fn key(&self, i: usize) -> (i64, &'static str) {
        let row = &self.rows[i];
        (row.position, row.field())
    }

    /// Row `i` (log order) with its values.
    pub fn change(&self, i: usize) -> Change {
        let row = self.rows[i];
        match row.what {
            What::Computed(before, after) => Change {
                position: row.position,
                field: ACTUAL,
                before: unpacked(before),
                after: unpacked(after),
            },
            What::Other(index, _) => self.others[index as usize].clone(),
        }
    }

    /// Every row with its values, in log order.
    pub fn changes(&self) -> Vec<Change> {
        (0..self.len()).map(|i| self.change(i)).collect()
    }

    fn push(&mut self, change: Change) {
        let index = u32::try_from(self.others.len()).unwrap_or(u32::MAX);
        self.rows.push(Row {
            position: change.position,
            what: What::Other(index, change.field),
        });
        self.others.push(change);
    }
}

/// Every change of the target or the actual of (item, indicator, fy) from exactly the events at
/// positions ≤ `at`, in log order (target changes and actual changes at the same position:
/// target first). `None` when the item or the indicator is not defined at `at`.
pub fn trail(
    facts: &Facts,
    book: &PlanBook,
    item: &str,
    indicator: &str,
    fy: FiscalYear,
    at: i64,
) -> Option<Trail> {
    let record = book
        .items
        .get(item)
        .filter(|record| record.definition.position <= at)?;
    let definition = record
        .indicators
        .iter()
        .find(|i| i.position <= at && i.value.indicator_code.as_str() == indicator)?;
    let mut trail = Trail::default();
    let target = |p| {
        facts.target(item, indicator, fy, p).map_or(
            Value::Null,
            |(op, value, _)| json!({"op": op, "value": value}),
        )
    };
    let positions = facts.target_positions(item, indicator, fy, at);
    changes_at(&positions, TARGET, target, &mut trail);
    match &definition.value.source {
        IndicatorSource::Rule { rule, params } => {
            let positions = facts.candidates(*rule, params, fy, at);
            // The value just before and at every candidate, computed in one sweep.
            let mut asked: Vec<i64> = positions
                .iter()
                .flat_map(|&p| [p.saturating_sub(1), p])
                .collect();
            asked.dedup();
            let values = facts.series(*rule, params, fy, &asked);
            // `positions` ascend, so the asked positions are found by walking forward.
            let mut next = 0;
            let mut value_at = |p: i64| {
                while next < asked.len() && asked[next] < p {
                    next += 1;
                }
                match asked.get(next) {
                    Some(&q) if q == p => values.get(next).copied().flatten(),
                    _ => None,
                }
            };
            trail.rows.reserve(positions.len());
            for &position in &positions {
                let before = value_at(position.saturating_sub(1));
                let after = value_at(position);
                if before != after {
                    trail.rows.push(Row {
                        position,
                        what: What::Computed(packed(before), packed(after)),
                    });
                }
            }
        }
        IndicatorSource::Manual(_) => {
            let actual = |p| {
                facts.manual_actual(item, indicator, fy, p).map_or(
                    Value::Null,
                    |m| json!({"value": m.value, "status": m.status.as_str()}),
                )
            };
            let positions = facts.manual_positions(item, indicator, fy, at);
            changes_at(&positions, ACTUAL, actual, &mut trail);
        }
    }
    let mut previous = Value::Null;
    for publication in record
        .publications
        .iter()
        .filter(|p| p.position <= at && p.value.fiscal_year == fy)
    {
        let after = json!({
            "value": publication.value.values.get(&definition.value.indicator_code).copied().flatten(),
            "version": publication.value.version,
        });
        trail.push(Change {
            position: publication.position,
            field: PUBLICATION,
            before: std::mem::replace(&mut previous, after.clone()),
            after,
        });
    }
    // Stable: within one field the rows are already in position order (runs the sort finds).
    trail
        .rows
        .sort_by_key(|row| (row.position, row.field() != TARGET));
    Some(trail)
}

/// Appends a row for every position (ascending) at which `value` differs from its value
/// one position earlier.
fn changes_at(
    positions: &[i64],
    field: &'static str,
    value: impl Fn(i64) -> Value,
    out: &mut Trail,
) {
    // The value at the previous candidate is reused when it is exactly one position earlier.
    let mut last: Option<(i64, Value)> = None;
    for &position in positions {
        let previous = position.saturating_sub(1);
        let before = match last.take() {
            Some((p, v)) if p == previous => v,
            _ => value(previous),
        };
        let after = value(position);
        if before != after {
            out.push(Change {
                position,
                field,
                before,
                after: after.clone(),
            });
        }
        last = Some((position, after));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use crate::LedgerEvent;
    use kiroku_domain::incident::IncidentEvent;
    use kiroku_domain::plan::{Manual, PlanEvent, RuleName, RuleParams};
    use kiroku_domain::staff::StaffEvent;
    use kiroku_domain::values::*;

    fn actual(position: i64, before: Value, after: Value) -> Change {
        Change {
            position,
            field: ACTUAL,
            before,
            after,
        }
    }

    fn target(position: i64, before: Value, after: Value) -> Change {
        Change {
            position,
            field: TARGET,
            before,
            after,
        }
    }

    impl Log {
        fn trail(&self, indicator: &str, year: i32) -> Option<Vec<Change>> {
            self.trail_at(indicator, year, self.position)
        }

        fn trail_at(&self, indicator: &str, year: i32, at: i64) -> Option<Vec<Change>> {
            trail(&self.facts, &self.book, ITEM, indicator, fy(year), at).map(|t| t.changes())
        }
    }

    fn at_least(value: f64) -> Value {
        json!({"op": ">=", "value": value})
    }

    fn manual(value: f64, status: &str) -> Value {
        json!({"value": value, "status": status})
    }

    #[test]
    fn a_completion_then_a_revocation_then_a_re_completion_give_plus_one_minus_one_plus_one() {
        let mut log = Log::default();
        log.define_item();
        log.define_rule("attendees", RuleName::TrainingCompletions);
        log.register(id(1), Gender::Male, "2020-04-01", 2);
        log.schedule(id(100), TrainingCategory::Tiered, "庁内");
        let completed = log.complete(id(100), id(1), "2023-06-01", None);
        let revoked = log.revoke(id(100), id(1));
        let again = log.complete(id(100), id(1), "2023-07-01", None);
        assert_eq!(
            log.trail("attendees", 2023),
            Some(vec![
                actual(completed, json!(0.0), json!(1.0)),
                actual(revoked, json!(1.0), json!(0.0)),
                actual(again, json!(0.0), json!(1.0)),
            ])
        );
        // Nothing happened in FY2024.
        assert_eq!(log.trail("attendees", 2024), Some(vec![]));
    }

    #[test]
    fn a_completion_correction_moving_the_date_out_of_the_fiscal_year_appears_as_a_change() {
        let mut log = Log::default();
        log.define_item();
        log.define_rule("attendees", RuleName::TrainingCompletions);
        log.register(id(1), Gender::Male, "2020-04-01", 2);
        log.schedule(id(100), TrainingCategory::Tiered, "庁内");
        let completed = log.complete(id(100), id(1), "2024-03-31", None);
        let corrected = log.correct(id(100), id(1), Some("2024-04-01"), None);
        assert_eq!(
            log.trail("attendees", 2023),
            Some(vec![
                actual(completed, json!(0.0), json!(1.0)),
                actual(corrected, json!(1.0), json!(0.0)),
            ])
        );
        assert_eq!(
            log.trail("attendees", 2024),
            Some(vec![actual(corrected, json!(0.0), json!(1.0))])
        );
    }

    #[test]
    fn an_understanding_only_correction_is_not_a_change_of_the_completion_count_but_is_one_of_the_understanding_rate(
    ) {
        let mut log = Log::default();
        log.define_item();
        log.define_rule("attendees", RuleName::TrainingCompletions);
        log.define_rule("understood", RuleName::TrainingUnderstandingRate);
        log.register(id(1), Gender::Male, "2020-04-01", 2);
        log.register(id(2), Gender::Male, "2020-04-01", 2);
        log.schedule(id(100), TrainingCategory::Tiered, "庁内");
        let first = log.complete(id(100), id(1), "2023-06-01", Some(5));
        let second = log.complete(id(100), id(2), "2023-06-01", Some(3));
        let corrected = log.correct(id(100), id(2), None, Some(4));
        assert_eq!(
            log.trail("attendees", 2023),
            Some(vec![
                actual(first, json!(0.0), json!(1.0)),
                actual(second, json!(1.0), json!(2.0)),
            ])
        );
        // 1 of 1 answers ≥ 4 → 100 %; 1 of 2 → 50 %; after the correction 2 of 2 → 100 %.
        assert_eq!(
            log.trail("understood", 2023),
            Some(vec![
                actual(first, Value::Null, json!(100.0)),
                actual(second, json!(100.0), json!(50.0)),
                actual(corrected, json!(50.0), json!(100.0)),
            ])
        );
    }

    #[test]
    fn a_target_revision_appears_with_before_and_after_and_interleaves_with_actual_changes() {
        let mut log = Log::default();
        log.define_item();
        log.define_rule("attendees", RuleName::TrainingCompletions);
        let set = log.set_target("attendees", 2023, 2300.0);
        log.register(id(1), Gender::Male, "2020-04-01", 2);
        log.schedule(id(100), TrainingCategory::Tiered, "庁内");
        let completed = log.complete(id(100), id(1), "2023-06-01", None);
        let revised = log.set_target("attendees", 2023, 2500.0);
        // Setting the same target again changes nothing.
        log.set_target("attendees", 2023, 2500.0);
        // Another year's target is not part of this trail.
        log.set_target("attendees", 2024, 2600.0);
        assert_eq!(
            log.trail("attendees", 2023),
            Some(vec![
                target(set, Value::Null, at_least(2300.0)),
                actual(completed, json!(0.0), json!(1.0)),
                target(revised, at_least(2300.0), at_least(2500.0)),
            ])
        );
    }

    #[test]
    fn a_manual_report_going_estimate_then_confirmed_then_corrected_appears_three_times() {
        let mut log = Log::default();
        log.define_item();
        log.define("want_manager", IndicatorSource::Manual(Manual::Manual));
        let report = |value, status| PlanEvent::ActualReported {
            indicator_code: code("want_manager"),
            fiscal_year: fy(2023),
            value,
            status,
            note: None,
        };
        let estimate = log.plan(report(25.0, ActualStatus::Estimate));
        // Only the status changes: still a change.
        let confirmed = log.plan(report(25.0, ActualStatus::Confirmed));
        let corrected = log.plan(PlanEvent::ActualCorrected {
            indicator_code: code("want_manager"),
            fiscal_year: fy(2023),
            value: 28.1,
            reason: text("集計誤り"),
        });
        assert_eq!(
            log.trail("want_manager", 2023),
            Some(vec![
                actual(estimate, Value::Null, manual(25.0, "estimate")),
                actual(
                    confirmed,
                    manual(25.0, "estimate"),
                    manual(25.0, "confirmed")
                ),
                actual(
                    corrected,
                    manual(25.0, "confirmed"),
                    manual(28.1, "confirmed")
                ),
            ])
        );
        assert_eq!(log.trail("want_manager", 2024), Some(vec![]));
    }

    #[test]
    fn the_at_cutoff_excludes_later_changes() {
        let mut log = Log::default();
        log.define_item();
        log.define_rule("attendees", RuleName::TrainingCompletions);
        log.register(id(1), Gender::Male, "2020-04-01", 2);
        log.schedule(id(100), TrainingCategory::Tiered, "庁内");
        let completed = log.complete(id(100), id(1), "2023-06-01", None);
        let revoked = log.revoke(id(100), id(1));
        log.set_target("attendees", 2023, 10.0);
        assert_eq!(
            log.trail_at("attendees", 2023, revoked - 1),
            Some(vec![actual(completed, json!(0.0), json!(1.0))])
        );
        assert_eq!(
            log.trail_at("attendees", 2023, revoked),
            Some(vec![
                actual(completed, json!(0.0), json!(1.0)),
                actual(revoked, json!(1.0), json!(0.0)),
            ])
        );
        assert_eq!(log.trail("attendees", 2023).map(|t| t.len()), Some(3));
    }

    #[test]
    fn a_separation_effective_april_1_appears_in_that_years_participation_rate_trail() {
        let mut log = Log::default();
        log.define_item();
        log.define_rule("participation", RuleName::TrainingParticipationRate);
        let first = log.register(id(1), Gender::Male, "2020-04-01", 2);
        log.register(id(2), Gender::Male, "2020-04-01", 2);
        log.schedule(id(100), TrainingCategory::Tiered, "庁内");
        let completed = log.complete(id(100), id(1), "2023-06-01", None);
        // Staff 2 left on the reference date itself: out of FY2023's population.
        let separated = log.separate(id(2), "2023-04-01");
        // Staff 3 joins and leaves after April 1: not part of FY2023's population at all.
        log.register(id(3), Gender::Male, "2023-05-01", 1);
        log.separate(id(3), "2023-06-01");
        // 0 of 1 → 0 of 2 (no change) → 1 of 2 → 1 of 1.
        assert_eq!(
            log.trail("participation", 2023),
            Some(vec![
                actual(first, Value::Null, json!(0.0)),
                actual(completed, json!(0.0), json!(50.0)),
                actual(separated, json!(50.0), json!(100.0)),
            ])
        );
    }

    #[test]
    fn an_unknown_item_or_indicator_or_one_defined_after_at_has_no_trail() {
        let mut log = Log::default();
        let item = log.define_item();
        let defined = log.define_rule("attendees", RuleName::TrainingCompletions);
        assert_eq!(log.trail("unknown", 2023), None);
        assert!(trail(
            &log.facts,
            &log.book,
            "9-9-9",
            "attendees",
            fy(2023),
            defined
        )
        .is_none());
        assert_eq!(log.trail_at("attendees", 2023, item), None);
        assert_eq!(log.trail_at("attendees", 2023, item - 1), None);
        assert_eq!(log.trail_at("attendees", 2023, defined), Some(vec![]));
    }

    /// Every change found by scanning every position of the log one by one.
    fn brute_force(log: &Log, rule: RuleName, year: i32) -> Vec<Change> {
        let params = RuleParams::default();
        let value = |p| {
            log.facts
                .compute(rule, &params, fy(year), p)
                .map_or(Value::Null, |v| json!(v))
        };
        (1..=log.position)
            .filter_map(|p| {
                let (before, after) = (value(p - 1), value(p));
                (before != after).then(|| actual(p, before, after))
            })
            .collect()
    }

    #[test]
    fn the_candidates_explain_every_change_a_scan_of_the_whole_log_finds() {
        use DepartmentKind::*;
        let mut log = Log::default();
        log.define_item();
        let rules = [
            ("attendees", RuleName::TrainingCompletions),
            ("participation", RuleName::TrainingParticipationRate),
            ("understood", RuleName::TrainingUnderstandingRate),
            ("interviews", RuleName::InterviewCoverage),
            ("women", RuleName::WomenInManagementRate),
            ("rotation", RuleName::RotationCoverage),
            ("dispatches", RuleName::DispatchCount),
            ("incidents", RuleName::ComplianceIncidents),
        ];
        for (indicator, rule) in rules {
            log.define_rule(indicator, rule);
        }
        log.register_in(id(1), Gender::Female, "2010-04-01", 5, FrontOffice);
        log.register_in(id(2), Gender::Male, "2013-04-01", 6, Program);
        log.register_in(id(3), Gender::Female, "2022-10-01", 1, Administration);
        log.transfer(id(1), Program, "2015-04-01", TransferKind::Regular);
        log.transfer(id(1), Administration, "2023-04-01", TransferKind::Dispatch);
        log.grade_change(id(1), 6, "2023-04-01");
        log.transfer(id(2), FrontOffice, "2019-04-01", TransferKind::Regular);
        log.transfer(id(2), Administration, "2024-04-01", TransferKind::Dispatch);
        log.grade_change(id(3), 2, "2024-04-01");
        log.schedule(id(100), TrainingCategory::Tiered, "庁内");
        log.schedule(id(101), TrainingCategory::Tiered, "庁内");
        log.complete(id(100), id(1), "2023-06-01", Some(5));
        log.complete(id(100), id(2), "2024-03-31", Some(2));
        log.complete(id(101), id(3), "2023-09-01", None);
        log.correct(id(100), id(2), Some("2024-04-02"), None);
        log.correct(id(101), id(3), None, Some(4));
        log.revoke(id(100), id(1));
        log.complete(id(100), id(1), "2024-01-15", Some(3));
        log.interview(id(1), id(500), InterviewKind::Evaluation, "2023-05-01");
        log.interview(id(1), id(501), InterviewKind::Evaluation, "2023-11-01");
        log.interview(id(2), id(502), InterviewKind::Evaluation, "2023-05-01");
        log.interview(id(2), id(503), InterviewKind::Evaluation, "2024-03-01");
        log.staff(
            id(2),
            StaffEvent::InterviewCorrected {
                interview_id: id(503),
                kind: None,
                held_on: Some(date("2024-04-10")),
                note: None,
                reason: text("日付の誤り"),
            },
        );
        log.staff(
            id(1),
            StaffEvent::InterviewWithdrawn {
                interview_id: id(500),
                reason: text("重複登録"),
            },
        );
        log.separate(id(2), "2024-04-01");
        log.rehire(id(2), "2025-04-01", 6, Administration);
        log.separate(id(3), "2023-04-01");
        log.incident(id(700), "2023-05-01");
        log.incident(id(701), "2024-05-01");
        log.push(
            id(700).to_string(),
            LedgerEvent::Incident(IncidentEvent::ComplianceIncidentWithdrawn {
                incident_id: id(700),
                reason: text("該当しない"),
            }),
        );
        let mut changed = 0;
        for (indicator, rule) in rules {
            for year in 2022..=2026 {
                let expected = brute_force(&log, rule, year);
                changed += expected.len();
                assert_eq!(
                    log.trail(indicator, year),
                    Some(expected),
                    "{indicator} FY{year}"
                );
            }
        }
        // The scan is not vacuous.
        assert!(changed > 30, "{changed} changes");
    }

    fn published(log: &mut Log, value: f64, version: u32, reason: Option<&str>) -> i64 {
        log.plan(PlanEvent::SheetPublished {
            fiscal_year: fy(2023),
            values: std::collections::BTreeMap::from([(code("attendees"), Some(value))]),
            published_by: "人事課".into(),
            version,
            reason: reason.map(text),
            ledger_head: None,
        })
    }

    #[test]
    fn every_publication_of_the_year_is_a_row_with_its_version() {
        let mut log = Log::default();
        log.define_item();
        log.define_rule("attendees", RuleName::TrainingCompletions);
        log.register(id(1), Gender::Male, "2020-04-01", 2);
        log.schedule(id(100), TrainingCategory::Tiered, "庁内");
        let completed = log.complete(id(100), id(1), "2023-06-01", None);
        let first = published(&mut log, 1.0, 1, None);
        let revoked = log.revoke(id(100), id(1));
        let second = published(&mut log, 0.0, 2, Some("取消の反映"));
        let publication = |position, before: Value, after: Value| Change {
            position,
            field: PUBLICATION,
            before,
            after,
        };
        assert_eq!(
            log.trail("attendees", 2023),
            Some(vec![
                actual(completed, json!(0.0), json!(1.0)),
                publication(first, Value::Null, json!({"value": 1.0, "version": 1})),
                actual(revoked, json!(1.0), json!(0.0)),
                publication(
                    second,
                    json!({"value": 1.0, "version": 1}),
                    json!({"value": 0.0, "version": 2})
                ),
            ])
        );
        // As of before the second publication, only the first shows.
        assert_eq!(
            log.trail_at("attendees", 2023, revoked)
                .map(|c| c.iter().filter(|c| c.field == PUBLICATION).count()),
            Some(1)
        );
    }

    /// Not a test of time (nothing is asserted on it): prints what the trail of one cell of
    /// 1,000,000 incidents costs, to find where the benchmark's audit figure goes.
    /// `cargo test --release -p kiroku-projections -- --ignored --nocapture trail_of_a_million`
    #[test]
    #[ignore]
    fn trail_of_a_million_changes_costs_one_sweep() {
        let mut log = Log::default();
        log.define_item();
        log.define_rule("incidents", RuleName::ComplianceIncidents);
        for n in 0..1_000_000u128 {
            log.incident(id(10_000_000 + n), "2024-06-03");
        }
        let started = std::time::Instant::now();
        let trail = trail(
            &log.facts,
            &log.book,
            ITEM,
            "incidents",
            fy(2024),
            log.position,
        )
        .expect("trail");
        let took = started.elapsed();
        assert_eq!(trail.len(), 1_000_000);
        assert_eq!(trail.change(999_999).after, json!(1_000_000.0));
        eprintln!("trail of {} changes in {took:?}", trail.len());
    }
}
