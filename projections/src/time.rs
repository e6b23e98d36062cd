//! Time as people read it: the log keeps milliseconds since the epoch (UTC); people in a
//! Japanese city hall read JST. This module is the one place that turns one into the other,
//! that reads a report's `as_of`, and that says whether a fiscal year is over at a moment.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone};
use kiroku_domain::values::FiscalYear;

const JST_SECONDS: i32 = 9 * 3600;

fn jst() -> FixedOffset {
    // 9 hours is always a valid offset.
    FixedOffset::east_opt(JST_SECONDS).unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC"))
}

fn in_jst(ms: i64) -> Option<DateTime<FixedOffset>> {
    DateTime::from_timestamp_millis(ms).map(|t| t.with_timezone(&jst()))
}

/// RFC 3339 in UTC with milliseconds, the form every timestamp takes in JSON.
pub fn rfc3339_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// `2026-11-22 17:54 JST`: a moment as it is shown to a person.
pub fn jst_minute(ms: i64) -> String {
    in_jst(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M JST").to_string())
        .unwrap_or_default()
}

/// `2026-11-22 17:54:03 JST`: a recorded moment as an audit trail shows it, where two changes
/// in the same minute must still read in their order.
pub fn jst_second(ms: i64) -> String {
    in_jst(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S JST").to_string())
        .unwrap_or_default()
}

/// `2024-05-30`: the date of a moment in Japan.
pub fn jst_date(ms: i64) -> String {
    in_jst(ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// The first millisecond of `date` in Japan.
fn start_of_day_jst(date: NaiveDate) -> Option<i64> {
    jst()
        .from_local_datetime(&date.and_time(NaiveTime::MIN))
        .single()
        .map(|t| t.timestamp_millis())
}

/// Whether fiscal year `fy` is over at `ms`: from April 1 of the next year, 00:00 JST.
pub fn fiscal_year_over(fy: FiscalYear, ms: i64) -> bool {
    let next_april = fy.last_day().succ_opt().unwrap_or(fy.last_day());
    start_of_day_jst(next_april).is_some_and(|start| ms >= start)
}

/// Whether fiscal year `fy` has begun at `ms`: from its April 1, 00:00 JST.
pub fn fiscal_year_started(fy: FiscalYear, ms: i64) -> bool {
    start_of_day_jst(fy.first_day()).is_some_and(|start| ms >= start)
}

/// Why an `as_of` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AsOfError {
    #[error("as_of は RFC 3339 の日時（例 2024-05-31T17:00:00+09:00）か日付（例 2024-05-31）で指定してください")]
    Unreadable,
    #[error("as_of に未来の時点（{0}）は指定できません")]
    InFuture(String),
}

/// Reads a report's `as_of` at the moment `now` (ms): an RFC 3339 timestamp, or a date alone,
/// which means the end of that day in Japan (23:59:59.999 JST; today: now). A moment after
/// `now` is refused: the ledger cannot show what has not been recorded yet.
pub fn parse_as_of(text: &str, now: i64) -> Result<i64, AsOfError> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        let ms = t.timestamp_millis();
        if ms > now {
            return Err(AsOfError::InFuture(jst_minute(ms)));
        }
        return Ok(ms);
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(text, "%Y/%m/%d"))
        .map_err(|_| AsOfError::Unreadable)?;
    let start = start_of_day_jst(date).ok_or(AsOfError::Unreadable)?;
    if start > now {
        return Err(AsOfError::InFuture(date.format("%Y-%m-%d").to_string()));
    }
    let next = date.succ_opt().ok_or(AsOfError::Unreadable)?;
    let end = start_of_day_jst(next).ok_or(AsOfError::Unreadable)? - 1;
    Ok(end.min(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .timestamp_millis()
    }

    #[test]
    fn moments_are_shown_in_jst() {
        assert_eq!(
            jst_minute(ms("2026-11-22T08:54:10Z")),
            "2026-11-22 17:54 JST"
        );
        assert_eq!(jst_date(ms("2024-05-30T20:00:00Z")), "2024-05-31");
    }

    #[test]
    fn a_date_alone_means_the_end_of_that_day_in_japan() {
        let now = ms("2026-11-22T00:00:00Z");
        assert_eq!(
            parse_as_of("2024-05-31", now),
            Ok(ms("2024-05-31T23:59:59.999+09:00"))
        );
        assert_eq!(
            parse_as_of("2024/5/31", now),
            Ok(ms("2024-05-31T23:59:59.999+09:00"))
        );
        assert_eq!(
            parse_as_of("2024-05-31T00:00:00Z", now),
            Ok(ms("2024-05-31T00:00:00Z"))
        );
    }

    #[test]
    fn a_future_or_unreadable_as_of_is_refused() {
        let now = ms("2026-11-22T00:00:00Z");
        assert!(matches!(
            parse_as_of("2026-11-23", now),
            Err(AsOfError::InFuture(_))
        ));
        assert!(matches!(
            parse_as_of("2026-11-22T12:00:00+09:00", now),
            Err(AsOfError::InFuture(_))
        ));
        // Today (in Japan) as a date is the sheet as it stands now.
        assert_eq!(parse_as_of("2026-11-22", now), Ok(now));
        assert_eq!(parse_as_of("R6", now), Err(AsOfError::Unreadable));
    }

    #[test]
    fn a_fiscal_year_is_over_from_april_1_in_japan() {
        let fy = FiscalYear::new(2023).expect("fy");
        assert!(!fiscal_year_over(fy, ms("2024-03-31T23:59:59+09:00")));
        assert!(fiscal_year_over(fy, ms("2024-04-01T00:00:00+09:00")));
        assert!(!fiscal_year_started(fy, ms("2023-03-31T23:59:59+09:00")));
        assert!(fiscal_year_started(fy, ms("2023-04-01T00:00:00+09:00")));
    }
}
