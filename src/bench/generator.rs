//! The scaled city of `kiroku bench --staff N --years Y`: a ledger grown to millions of events
//! through the public API, as a city would fill it, before anything is measured on it.
//!
//! Deterministic: the same `N` and `Y` give the same requests in the same order.
//! - `N` staff members (`G0000000`…, hired 2000-04-01, six grades, forty departments) are
//!   registered by 8 clients.
//! - For each of the `Y` fiscal years ending with FY2024, [`COURSES`] courses are held in
//!   sessions of [`GROUP`] people (scheduled by 8 clients), and every staff member attends each
//!   of them once: the year's attendance sheets ([`SHEET_ROWS`] rows each) are imported through
//!   `POST /imports/attendance`, which enrols and records the completion of each row.
//!
//! So a staff-year is 2 × [`COURSES`] events plus a share of the session events: 50,000 staff
//! over 10 years are about 5,000,000 events. The completions/s of the first year's sheets and
//! of the last year's are the import figure at scale: the last is imported into a ledger
//! holding everything before it.

use super::{registration, run_http, value, Http, Request, Series, ATTENDANCE_HEADER};
use chrono::{Datelike, Days, NaiveDate};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

/// People per training session.
pub const GROUP: usize = 100;
/// Courses every staff member completes each fiscal year.
pub const COURSES: usize = 5;
/// Rows per attendance sheet (an import is at most 16 MiB).
pub const SHEET_ROWS: usize = 50_000;
/// The last fiscal year of the generated history.
pub const LAST_FY: i32 = 2024;
const CATEGORIES: [&str; COURSES] = ["tiered", "specialized", "special", "ojt", "tiered"];

/// The size of the city: staff members and fiscal years.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    pub staff: usize,
    pub years: usize,
}

/// What growing the city took.
pub(super) struct Grown {
    pub registered: Series,
    pub scheduled: Series,
    /// Completions/s of the first fiscal year's sheets and of the last one's.
    pub first_year: Series,
    pub last_year: Series,
    pub completions: usize,
}

/// The course code of a session: fiscal year, course and group (`G20241-0007`).
fn course_code(fy: i32, course: usize, group: usize) -> String {
    format!("G{fy}{}-{group:04}", course + 1)
}

/// The day a session is held: from June 1 of its fiscal year, one group a day per course,
/// spread over 200 days (weekends included: the rules do not look at weekdays).
fn held_on(fy: i32, course: usize, group: usize) -> String {
    let first = NaiveDate::from_ymd_opt(fy, 6, 1).unwrap_or_default();
    let day = (course * 37 + group) % 200;
    let date = first
        .checked_add_days(Days::new(day as u64))
        .unwrap_or(first);
    format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day())
}

/// Grows the ledger behind `base` to `scale`.
pub(super) async fn grow(http: &Http, base: &str, scale: Scale) -> Grown {
    let register = registration(base, "G", "拡大 職員", "2000-04-01");
    let (registered, _) = run_http(http, scale.staff, 8, register).await;
    let groups = scale.staff.div_ceil(GROUP);
    let (mut sessions, mut session_errors, mut scheduling) = (0, 0, std::time::Duration::ZERO);
    let mut years = Vec::new();
    let mut completions = 0;
    for year in 0..scale.years {
        let fy = LAST_FY - (scale.years - 1 - year) as i32;
        let sessions_url = format!("{base}/sessions");
        let schedule: Request = Arc::new(move |k| {
            let (course, group) = (k / groups, k % groups);
            let on = held_on(fy, course, group);
            let body = serde_json::json!({
                "course_code": course_code(fy, course, group),
                "title": format!("研修{}（{}年度）", course + 1, fy),
                "category": CATEGORIES[course],
                "provider": "庁内",
                "delivery": "in_person",
                "starts_on": on,
                "ends_on": on,
                "capacity": GROUP,
            });
            (sessions_url.clone(), body.to_string())
        });
        let started = Instant::now();
        let (scheduled, _) = run_http(http, COURSES * groups, 8, schedule).await;
        scheduling += started.elapsed();
        sessions += scheduled.commands;
        session_errors += scheduled.errors;
        let mut rows = Vec::with_capacity(COURSES * scale.staff);
        for course in 0..COURSES {
            for i in 0..scale.staff {
                let group = i / GROUP;
                let on = held_on(fy, course, group);
                rows.push(format!(
                    "G{i:07},{},{on},{on},{}",
                    course_code(fy, course, group),
                    1 + (i + course) % 5
                ));
            }
        }
        let started = Instant::now();
        let mut errors = 0;
        for sheet in rows.chunks(SHEET_ROWS) {
            let mut csv = String::from(ATTENDANCE_HEADER);
            for row in sheet {
                let _ = writeln!(csv, "{row}");
            }
            if !http.import(base, csv).await {
                errors += 1;
            }
        }
        completions += rows.len();
        let took = started.elapsed();
        years.push(Series {
            commands: rows.len(),
            errors,
            per_second: rows.len() as f64 / took.as_secs_f64().max(1e-9),
            ..value(0.0, true)
        });
        tracing::info!(
            fy,
            completions,
            "bench: a fiscal year of the scaled city imported"
        );
    }
    let nothing = || value(0.0, scale.years == 0);
    Grown {
        registered,
        scheduled: Series {
            commands: sessions,
            errors: session_errors,
            per_second: sessions as f64 / scheduling.as_secs_f64().max(1e-9),
            ..value(0.0, true)
        },
        first_year: years.first().cloned().unwrap_or_else(nothing),
        last_year: years.last().cloned().unwrap_or_else(nothing),
        completions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_have_codes_and_days_of_their_fiscal_year() {
        assert_eq!(course_code(2024, 0, 7), "G20241-0007");
        assert_eq!(held_on(2024, 0, 0), "2024-06-01");
        assert_eq!(held_on(2024, 4, 199), "2024-10-26");
        for course in 0..COURSES {
            for group in 0..1000 {
                let on = held_on(2024, course, group);
                assert!(("2024-06-01".."2025-01-01").contains(&on.as_str()), "{on}");
            }
        }
    }
}
