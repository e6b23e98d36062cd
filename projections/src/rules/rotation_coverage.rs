//! ジョブローテーション実施率 (`rotation_coverage`): the share of the staff in service on April 1 with at least
//! `years` years of service who have served in every kind of department (窓口・事業・管理).

use super::*;

/// The default of `years`.
pub const DEFAULT_YEARS: u32 = 10;

/// The actual for fiscal year `fy` as the log stood at position `at`.
///
/// Years of service are the completed calendar years of the summed lengths of every service
/// period up to April 1: the days served are added up and laid back from April 1 as one
/// continuous span, so a person hired on 2014-04-01 has 10 years on 2024-04-01, and someone who
/// served 2010-04-01 – 2015-04-01 and again from 2019-04-01 also has 10. The department kinds
/// served are those of the registration, rehires and transfers (dispatches included)
/// effective on or before April 1, over all periods of service.
pub fn compute(facts: &Facts, params: &RuleParams, fy: FiscalYear, at: i64) -> Option<f64> {
    let r = fy.first_day();
    let years = params.years.unwrap_or(DEFAULT_YEARS);
    let (mut num, mut den) = (0, 0);
    for (_, s) in facts.population(r, at) {
        if s.years_of_service(r, at) >= years {
            den += 1;
            if s.served_all_kinds(r, at) {
                num += 1;
            }
        }
    }
    round_rate(num, den)
}

/// What can move that value: the registrations, separations and rehires (years of service), and
/// the transfers (department kinds), effective on or before April 1.
pub fn candidates(
    facts: &Facts,
    _params: &RuleParams,
    fy: FiscalYear,
    at: i64,
    out: &mut Vec<i64>,
) {
    let r = fy.first_day();
    dated_positions(&facts.service_events, r, at, out);
    dated_positions(&facts.department_events, r, at, out);
}
