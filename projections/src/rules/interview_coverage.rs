//! 面談実施率 (`interview_coverage`): the share of the staff in service on April 1 who had at least
//! `min_per_year` interviews (of the `kinds`, if given) in the fiscal year.

use super::*;

/// The default of `min_per_year`.
pub const DEFAULT_MIN_PER_YEAR: u32 = 2;

/// The actual for fiscal year `fy` as the log stood at position `at`.
pub fn compute(facts: &Facts, params: &RuleParams, fy: FiscalYear, at: i64) -> Option<f64> {
    let r = fy.first_day();
    let min = params.min_per_year.unwrap_or(DEFAULT_MIN_PER_YEAR);
    let mut held = vec![0u32; facts.staff.len()];
    let interviews = facts.interviews.get(&fy).map_or(&[][..], |v| v.as_slice());
    for i in interviews {
        let kind_ok = params.kinds.as_ref().is_none_or(|k| k.contains(&i.kind));
        if visible(i.from, i.to, at) && kind_ok {
            held[i.staff] += 1;
        }
    }
    let (mut num, mut den) = (0, 0);
    for (i, _) in facts.population(r, at) {
        den += 1;
        if held[i] >= min {
            num += 1;
        }
    }
    round_rate(num, den)
}

/// What can move that value: the interviews in `fy` of the counted kinds (recorded, corrected,
/// withdrawn), and the registrations, separations and rehires effective on or before April 1.
pub fn candidates(facts: &Facts, params: &RuleParams, fy: FiscalYear, at: i64, out: &mut Vec<i64>) {
    let r = fy.first_day();
    let interviews = facts.interviews.get(&fy).map_or(&[][..], |v| v.as_slice());
    for i in interviews.iter().take_while(|i| i.from <= at) {
        if params.kinds.as_ref().is_none_or(|k| k.contains(&i.kind)) {
            span_positions(i.from, i.to, at, out);
        }
    }
    dated_positions(&facts.service_events, r, at, out);
}
