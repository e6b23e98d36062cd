//! 不祥事件数 (`compliance_incidents`): the compliance incidents dated in the fiscal year and not
//! withdrawn.

use super::*;

/// The actual for fiscal year `fy` as the log stood at position `at`.
pub fn compute(facts: &Facts, _params: &RuleParams, fy: FiscalYear, at: i64) -> Option<f64> {
    let incidents = facts.incidents.get(&fy).map_or(&[][..], |v| v.as_slice());
    let n = incidents
        .iter()
        .filter(|i| visible(i.from, i.to, at))
        .count();
    Some(n as f64)
}

/// The actual at each of `positions` (ascending), in one sweep: what the audit trail asks
/// for every change of a cell with thousands of incidents.
pub fn series(
    facts: &Facts,
    _params: &RuleParams,
    fy: FiscalYear,
    positions: &[i64],
) -> Vec<Option<f64>> {
    let incidents = facts.incidents.get(&fy).map_or(&[][..], |v| v.as_slice());
    counts_at(incidents.iter().map(|i| (i.from, i.to)), positions)
}

/// What can move that value: the positions that recorded or withdrew an incident dated in `fy`.
pub fn candidates(
    facts: &Facts,
    _params: &RuleParams,
    fy: FiscalYear,
    at: i64,
    out: &mut Vec<i64>,
) {
    let incidents = facts.incidents.get(&fy).map_or(&[][..], |v| v.as_slice());
    for i in incidents.iter().take_while(|i| i.from <= at) {
        span_positions(i.from, i.to, at, out);
    }
}
