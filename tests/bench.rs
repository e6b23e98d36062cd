//! The benchmark at a smoke size, so that it cannot rot: every figure is produced on both
//! backends, beside the raw framework's where it has one, with no errors. No time is asserted.

use kiroku::bench::generator::{Scale, COURSES};
use kiroku::bench::{render, run, Options};

/// The smoke city: 2 sessions of each course per year, the second not full.
const SCALE: Scale = Scale {
    staff: 150,
    years: 2,
};

/// The figures of one backend, in the order they are printed.
const FIGURES: [&str; 21] = [
    "city: register 150 staff",
    "city: schedule sessions",
    "city: import, year 1 of 2",
    "city: import, year 2",
    "city: events/s while grown",
    "city: ledger, 1500 completions",
    "append, 1 client",
    "append, 8 clients",
    "sheet",
    "as-of sheet",
    "audit trail page",
    "audit page, completions",
    "register staff, 8 clients",
    "enrol, 8 on one session",
    "import, first sheet",
    "import, last sheet",
    "rebuild, events",
    "start-up to serving",
    "disk per event",
    "CLI sheet, peak memory",
    "rebuild alone, peak memory",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_benchmark_prints_every_figure_beside_the_raw_framework() {
    let postgres = std::env::var("KIROKU_TEST_POSTGRES_URL").ok();
    if postgres.is_none() && std::env::var("CI").is_ok() {
        panic!("KIROKU_TEST_POSTGRES_URL is not set: run the tests with scripts/test.sh");
    }
    let figures = run(&Options {
        commands: 40,
        postgres: postgres.clone(),
        scale: Some(SCALE),
        program: env!("CARGO_BIN_EXE_kiroku").into(),
    })
    .await
    .expect("the benchmark runs");
    let table = render(&figures);
    println!("{table}");
    let backends: &[&str] = if postgres.is_some() {
        &["SQLite", "PostgreSQL"]
    } else {
        &["SQLite"]
    };
    let names: Vec<(&str, &str)> = figures
        .iter()
        .map(|f| (f.backend, f.name.as_str()))
        .collect();
    let expected: Vec<(&str, &str)> = backends
        .iter()
        .flat_map(|b| FIGURES.iter().map(move |n| (*b, *n)))
        .collect();
    assert_eq!(names, expected, "{table}");
    for figure in &figures {
        assert_eq!(figure.kiroku.errors, 0, "{table}");
        assert!(figure.kiroku.per_second > 0.0, "{table}");
        if let Some(raw) = &figure.raw {
            assert_eq!(raw.errors, 0, "{table}");
            assert!(figure.ratio().is_some_and(|r| r > 0.0), "{table}");
        }
    }
    for figure in figures.iter().filter(|f| f.name.starts_with("append")) {
        assert_eq!(figure.kiroku.commands, 40, "{table}");
        assert_eq!(figure.raw.as_ref().map(|r| r.commands), Some(40), "{table}");
    }
    // 40 registrations, then 40 enrolments in one session, every one answered.
    for figure in figures
        .iter()
        .filter(|f| f.name.contains("8 clients") || f.name.contains("one session"))
    {
        assert_eq!(figure.kiroku.commands, 40, "{table}");
    }
    // Five sheets of the 40 staff members, each imported whole.
    for figure in figures.iter().filter(|f| f.name.starts_with("import")) {
        assert_eq!(figure.kiroku.commands, 40, "{table}");
    }
    // The rebuild folds both append runs (80 incidents), the plan item, 40 registrations, the
    // session and 40 enrolments, and the five imported sessions (5 × 40 completions); the raw
    // replay reads the 80 incidents.
    for figure in figures.iter().filter(|f| f.name == "rebuild, events") {
        assert!(
            figure.kiroku.commands >= 80 + 1 + 40 + 1 + 40 + 5 * 40,
            "{table}"
        );
        assert_eq!(figure.raw.as_ref().map(|r| r.commands), Some(80), "{table}");
    }
    // The city: every staff member registered, 2 sessions per course and year, every
    // completion imported, each an enrolment and a completion in the log.
    let city = |name: &str| {
        figures
            .iter()
            .filter(|f| f.name.starts_with(name))
            .map(|f| f.kiroku.commands)
            .collect::<Vec<_>>()
    };
    let backends_run = backends.len();
    assert_eq!(city("city: register"), vec![150; backends_run], "{table}");
    assert_eq!(
        city("city: schedule"),
        vec![2 * COURSES * 2; backends_run],
        "{table}"
    );
    assert_eq!(
        city("city: import, year"),
        vec![150 * COURSES; 2 * backends_run],
        "{table}"
    );
    for events in city("city: ledger") {
        assert!(events >= 150 + 20 + 2 * 1500, "{table}");
    }
    // The reads: 40 requests each, all answered.
    for figure in figures.iter().filter(|f| f.unit == "reads/s") {
        assert_eq!(figure.kiroku.commands, 40, "{table}");
        assert!(figure.kiroku.p95_ms >= figure.kiroku.p50_ms, "{table}");
    }
}
