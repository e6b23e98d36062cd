//! The indicator rules of SPEC §4, one file each: what the rule counts, its parameters and
//! their defaults, its `compute` (the value as the log stood at a position) and its
//! `candidates` (the positions of the events that can move that value, for the audit trail),
//! side by side. [`Facts`] holds the bitemporal facts they read; this module only dispatches.

pub mod compliance_incidents;
pub mod dispatch_count;
pub mod interview_coverage;
pub mod rotation_coverage;
pub mod training_completions;
pub mod training_participation_rate;
pub mod training_understanding_rate;
pub mod women_in_management_rate;

pub(crate) use crate::indicators::{dated_positions, round_rate, span_positions, visible, Facts};
pub(crate) use kiroku_domain::plan::{RuleName, RuleParams};
pub(crate) use kiroku_domain::values::*;

/// A rule's functions. `series` is the value at many positions in one pass, for the rules
/// whose cells gather thousands of facts; the others compute position by position.
struct Rule {
    compute: fn(&Facts, &RuleParams, FiscalYear, i64) -> Option<f64>,
    candidates: fn(&Facts, &RuleParams, FiscalYear, i64, &mut Vec<i64>),
    series: Option<Series>,
}

type Series = fn(&Facts, &RuleParams, FiscalYear, &[i64]) -> Vec<Option<f64>>;

/// The one place a rule name is resolved to its file.
fn rule(name: RuleName) -> Rule {
    match name {
        RuleName::TrainingParticipationRate => Rule {
            compute: training_participation_rate::compute,
            candidates: training_participation_rate::candidates,
            series: None,
        },
        RuleName::TrainingUnderstandingRate => Rule {
            compute: training_understanding_rate::compute,
            candidates: training_understanding_rate::candidates,
            series: None,
        },
        RuleName::TrainingCompletions => Rule {
            compute: training_completions::compute,
            candidates: training_completions::candidates,
            series: Some(training_completions::series),
        },
        RuleName::InterviewCoverage => Rule {
            compute: interview_coverage::compute,
            candidates: interview_coverage::candidates,
            series: None,
        },
        RuleName::WomenInManagementRate => Rule {
            compute: women_in_management_rate::compute,
            candidates: women_in_management_rate::candidates,
            series: None,
        },
        RuleName::RotationCoverage => Rule {
            compute: rotation_coverage::compute,
            candidates: rotation_coverage::candidates,
            series: None,
        },
        RuleName::DispatchCount => Rule {
            compute: dispatch_count::compute,
            candidates: dispatch_count::candidates,
            series: None,
        },
        RuleName::ComplianceIncidents => Rule {
            compute: compliance_incidents::compute,
            candidates: compliance_incidents::candidates,
            series: Some(compliance_incidents::series),
        },
    }
}

/// The actual of `name` for fiscal year `fy` as the log stood at position `at`.
pub fn compute(
    facts: &Facts,
    name: RuleName,
    params: &RuleParams,
    fy: FiscalYear,
    at: i64,
) -> Option<f64> {
    (rule(name).compute)(facts, params, fy, at)
}

/// The actual of `name` for fiscal year `fy` at each of `positions` (ascending).
pub fn series(
    facts: &Facts,
    name: RuleName,
    params: &RuleParams,
    fy: FiscalYear,
    positions: &[i64],
) -> Vec<Option<f64>> {
    let rule = rule(name);
    match rule.series {
        Some(series) => series(facts, params, fy, positions),
        None => positions
            .iter()
            .map(|&at| (rule.compute)(facts, params, fy, at))
            .collect(),
    }
}

/// How many of the spans `[from, to)` are visible at each of `positions` (ascending), as a
/// value: one sweep over the spans' openings and closings instead of a count per position.
pub(crate) fn counts_at(
    spans: impl Iterator<Item = (i64, Option<i64>)>,
    positions: &[i64],
) -> Vec<Option<f64>> {
    let mut opened = Vec::new();
    let mut closed = Vec::new();
    for (from, to) in spans {
        opened.push(from);
        if let Some(to) = to {
            closed.push(to);
        }
    }
    opened.sort_unstable();
    closed.sort_unstable();
    let (mut o, mut c) = (0, 0);
    positions
        .iter()
        .map(|&at| {
            // Visible at `at`: opened at or before it, not closed at or before it.
            while o < opened.len() && opened[o] <= at {
                o += 1;
            }
            while c < closed.len() && closed[c] <= at {
                c += 1;
            }
            Some(o.saturating_sub(c) as f64)
        })
        .collect()
}

/// Appends to `out` the positions `<= at` of every event that can move the actual of `name`.
pub fn candidates(
    facts: &Facts,
    name: RuleName,
    params: &RuleParams,
    fy: FiscalYear,
    at: i64,
    out: &mut Vec<i64>,
) {
    (rule(name).candidates)(facts, params, fy, at, out)
}
