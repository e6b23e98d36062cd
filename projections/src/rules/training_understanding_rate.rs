//! 研修理解度 (`training_understanding_rate`): the share of completions dated in the fiscal year whose
//! survey answer is at least `threshold`, among those that carry an answer.

use super::*;

/// The default of `threshold`.
pub const DEFAULT_THRESHOLD: u8 = 4;

/// The actual for fiscal year `fy` as the log stood at position `at`.
pub fn compute(facts: &Facts, params: &RuleParams, fy: FiscalYear, at: i64) -> Option<f64> {
    let threshold = params
        .threshold
        .map_or(DEFAULT_THRESHOLD, Understanding::value);
    let (mut num, mut den) = (0, 0);
    for c in facts.completions_in(fy, at) {
        if let Some(u) = c.understanding {
            den += 1;
            if u.value() >= threshold {
                num += 1;
            }
        }
    }
    round_rate(num, den)
}

/// What can move that value: the positions that opened or closed a completion fact dated in
/// `fy` that carries an understanding answer.
pub fn candidates(
    facts: &Facts,
    _params: &RuleParams,
    fy: FiscalYear,
    at: i64,
    out: &mut Vec<i64>,
) {
    facts.completion_positions(fy, at, out, |c| c.understanding.is_some());
}
