//! 派遣者数 (`dispatch_count`): the dispatch transfers effective in the fiscal year.

use super::*;

/// The actual for fiscal year `fy` as the log stood at position `at`.
pub fn compute(facts: &Facts, _params: &RuleParams, fy: FiscalYear, at: i64) -> Option<f64> {
    let positions = facts.dispatches.get(&fy).map_or(&[][..], |v| v.as_slice());
    Some(positions.partition_point(|p| *p <= at) as f64)
}

/// What can move that value: the dispatch transfers effective in `fy`.
pub fn candidates(
    facts: &Facts,
    _params: &RuleParams,
    fy: FiscalYear,
    at: i64,
    out: &mut Vec<i64>,
) {
    let positions = facts.dispatches.get(&fy).map_or(&[][..], |v| v.as_slice());
    out.extend(positions.iter().copied().take_while(|p| *p <= at));
}
