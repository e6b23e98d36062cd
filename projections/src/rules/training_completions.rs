//! 延べ受講者数 (`training_completions`): the completions dated in the fiscal year, of sessions that pass
//! the `categories` and `provider` filters.

use super::*;

/// The actual for fiscal year `fy` as the log stood at position `at`.
pub fn compute(facts: &Facts, params: &RuleParams, fy: FiscalYear, at: i64) -> Option<f64> {
    let n = facts
        .completions_in(fy, at)
        .filter(|c| facts.session_matches(c.session, params))
        .count();
    Some(n as f64)
}

/// What can move that value: the positions that opened or closed a completion fact dated in
/// `fy` whose session passes the filters: a correction moving a completion out of `fy` closes
/// the fact in `fy`, a revocation closes it, a re-completion opens a new one.
pub fn candidates(facts: &Facts, params: &RuleParams, fy: FiscalYear, at: i64, out: &mut Vec<i64>) {
    facts.completion_positions(fy, at, out, |c| facts.session_matches(c.session, params));
}
