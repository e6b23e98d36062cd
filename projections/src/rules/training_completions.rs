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

/// The actual at each of `positions` (ascending), in one sweep: what the audit trail asks
/// for every change of a cell with thousands of completions.
pub fn series(
    facts: &Facts,
    params: &RuleParams,
    fy: FiscalYear,
    positions: &[i64],
) -> Vec<Option<f64>> {
    let completions = facts.completions.get(&fy).map_or(&[][..], |v| v.as_slice());
    let relevant = completions
        .iter()
        .filter(|c| facts.session_matches(c.session, params))
        .map(|c| (c.from, c.to));
    counts_at(relevant, positions)
}

/// What can move that value: the positions that opened or closed a completion fact dated in
/// `fy` whose session passes the filters: a correction moving a completion out of `fy` closes
/// the fact in `fy`, a revocation closes it, a re-completion opens a new one.
pub fn candidates(facts: &Facts, params: &RuleParams, fy: FiscalYear, at: i64, out: &mut Vec<i64>) {
    facts.completion_positions(fy, at, out, |c| facts.session_matches(c.session, params));
}
