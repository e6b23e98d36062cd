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

/// A rule's two functions.
struct Rule {
    compute: fn(&Facts, &RuleParams, FiscalYear, i64) -> Option<f64>,
    candidates: fn(&Facts, &RuleParams, FiscalYear, i64, &mut Vec<i64>),
}

/// The one place a rule name is resolved to its file.
fn rule(name: RuleName) -> Rule {
    match name {
        RuleName::TrainingParticipationRate => Rule {
            compute: training_participation_rate::compute,
            candidates: training_participation_rate::candidates,
        },
        RuleName::TrainingUnderstandingRate => Rule {
            compute: training_understanding_rate::compute,
            candidates: training_understanding_rate::candidates,
        },
        RuleName::TrainingCompletions => Rule {
            compute: training_completions::compute,
            candidates: training_completions::candidates,
        },
        RuleName::InterviewCoverage => Rule {
            compute: interview_coverage::compute,
            candidates: interview_coverage::candidates,
        },
        RuleName::WomenInManagementRate => Rule {
            compute: women_in_management_rate::compute,
            candidates: women_in_management_rate::candidates,
        },
        RuleName::RotationCoverage => Rule {
            compute: rotation_coverage::compute,
            candidates: rotation_coverage::candidates,
        },
        RuleName::DispatchCount => Rule {
            compute: dispatch_count::compute,
            candidates: dispatch_count::candidates,
        },
        RuleName::ComplianceIncidents => Rule {
            compute: compliance_incidents::compute,
            candidates: compliance_incidents::candidates,
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
