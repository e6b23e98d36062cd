//! 女性管理職比率 (`women_in_management_rate`): the share of women among the staff in service on April 1
//! with a grade of at least `min_grade` on that day.

use super::*;

/// The default of `min_grade`.
pub const DEFAULT_MIN_GRADE: u8 = 6;

/// The actual for fiscal year `fy` as the log stood at position `at`.
pub fn compute(facts: &Facts, params: &RuleParams, fy: FiscalYear, at: i64) -> Option<f64> {
    let r = fy.first_day();
    let min_grade = params.min_grade.map_or(DEFAULT_MIN_GRADE, Grade::value);
    let (mut num, mut den) = (0, 0);
    for (_, s) in facts.population(r, at) {
        if s.grade_on(r, at).is_some_and(|g| g.value() >= min_grade) {
            den += 1;
            if s.gender == Some(Gender::Female) {
                num += 1;
            }
        }
    }
    round_rate(num, den)
}

/// What can move that value: the registrations, separations and rehires, and the grade changes,
/// effective on or before April 1: an event effective later cannot change who was in service,
/// or at what grade, on that day.
pub fn candidates(
    facts: &Facts,
    _params: &RuleParams,
    fy: FiscalYear,
    at: i64,
    out: &mut Vec<i64>,
) {
    let r = fy.first_day();
    dated_positions(&facts.service_events, r, at, out);
    dated_positions(&facts.grade_events, r, at, out);
}
