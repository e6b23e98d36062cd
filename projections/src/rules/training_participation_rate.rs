//! 研修受講率 (`training_participation_rate`): the share of the staff in service on April 1 who
//! completed at least one session (of the `categories`, if given) dated in the fiscal year.

use super::*;

/// The actual for fiscal year `fy` as the log stood at position `at`.
pub fn compute(facts: &Facts, params: &RuleParams, fy: FiscalYear, at: i64) -> Option<f64> {
    let r = fy.first_day();
    let mut trained = vec![false; facts.staff.len()];
    let only_categories = RuleParams {
        categories: params.categories.clone(),
        ..RuleParams::default()
    };
    for c in facts.completions_in(fy, at) {
        if facts.session_matches(c.session, &only_categories) {
            trained[c.staff as usize] = true;
        }
    }
    let (mut num, mut den) = (0, 0);
    for (i, _) in facts.population(r, at) {
        den += 1;
        if trained[i] {
            num += 1;
        }
    }
    round_rate(num, den)
}

/// What can move that value: the completions in `fy` (of the `categories`), and the
/// registrations, separations and rehires effective on or before April 1 (who was in service).
pub fn candidates(facts: &Facts, params: &RuleParams, fy: FiscalYear, at: i64, out: &mut Vec<i64>) {
    let r = fy.first_day();
    let only_categories = RuleParams {
        categories: params.categories.clone(),
        ..RuleParams::default()
    };
    facts.completion_positions(fy, at, out, |c| {
        facts.session_matches(c.session, &only_categories)
    });
    dated_positions(&facts.service_events, r, at, out);
}
