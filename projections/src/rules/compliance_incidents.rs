//! 不祥事件数 (`compliance_incidents`): the compliance incidents dated in the fiscal year and not
//! withdrawn.

use super::*;

/// The actual for fiscal year `fy` as the log stood at position `at`.
pub fn compute(facts: &Facts, _params: &RuleParams, fy: FiscalYear, at: i64) -> Option<f64> {
    let incidents = facts.incidents.get(&fy).map_or(&[][..], Vec::as_slice);
    let n = incidents
        .iter()
        .filter(|i| visible(i.from, i.to, at))
        .count();
    Some(n as f64)
}

/// What can move that value: the positions that recorded or withdrew an incident dated in `fy`.
pub fn candidates(
    facts: &Facts,
    _params: &RuleParams,
    fy: FiscalYear,
    at: i64,
    out: &mut Vec<i64>,
) {
    let incidents = facts.incidents.get(&fy).map_or(&[][..], Vec::as_slice);
    for i in incidents.iter().take_while(|i| i.from <= at) {
        span_positions(i.from, i.to, at, out);
    }
}
