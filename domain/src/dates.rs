//! The time concepts of HR records, in one place for the domain, the projections and the demo:
//! when a person is in service, and which dated entry (a grade, a department) is in force on a
//! date. Positions and transaction times ("as the log stood at") are the projections' concern
//! and are applied before these: these only read business dates.

use crate::values::Date;

/// A period of service covers `date` when it began on or before it and has not ended by it.
/// `end` is the first day out of service (a person who retires on 3/31 has `end` 4/1), so a
/// period never covers its end.
pub fn covers(start: Date, end: Option<Date>, date: Date) -> bool {
    start <= date && end.is_none_or(|end| date < end)
}

/// Of `entries` (in the order they were recorded), the one in force on `date`: the latest
/// effective date on or before `date`; of two with the same effective date, the one recorded
/// later. `None` before the first effective date.
pub fn in_force<'a, T>(
    entries: impl IntoIterator<Item = &'a T>,
    date: Date,
    effective_on: impl Fn(&T) -> Date,
) -> Option<&'a T> {
    let mut best: Option<&T> = None;
    for entry in entries {
        let on = effective_on(entry);
        if on <= date && best.is_none_or(|b| effective_on(b) <= on) {
            best = Some(entry);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> Date {
        text.parse().expect("date")
    }

    #[test]
    fn a_period_covers_its_first_day_but_not_the_first_day_out() {
        let (start, end) = (date("2014-04-01"), Some(date("2024-04-01")));
        assert!(!covers(start, end, date("2014-03-31")));
        assert!(covers(start, end, date("2014-04-01")));
        assert!(covers(start, end, date("2024-03-31")));
        assert!(!covers(start, end, date("2024-04-01")));
        assert!(covers(start, None, date("2099-01-01")));
    }

    #[test]
    fn the_latest_effective_entry_is_in_force_and_ties_go_to_the_later_one() {
        let entries = [
            (date("2020-04-01"), 'a'),
            (date("2022-04-01"), 'b'),
            (date("2022-04-01"), 'c'),
            (date("2030-04-01"), 'd'),
        ];
        let on = |d: &str| in_force(&entries, date(d), |e| e.0).map(|e| e.1);
        assert_eq!(on("2019-12-31"), None);
        assert_eq!(on("2021-01-01"), Some('a'));
        assert_eq!(on("2022-04-01"), Some('c'));
        assert_eq!(on("2029-12-31"), Some('c'));
    }
}
