//! The benchmark at a smoke size, so that it cannot rot: every figure is produced on both
//! backends, beside the raw framework's, with no errors. No time is asserted.

use kiroku::bench::{render, run, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_benchmark_prints_every_figure_beside_the_raw_framework() {
    let postgres = std::env::var("KIROKU_TEST_POSTGRES_URL").ok();
    if postgres.is_none() && std::env::var("CI").is_ok() {
        panic!("KIROKU_TEST_POSTGRES_URL is not set: run the tests with scripts/test.sh");
    }
    let figures = run(&Options {
        commands: 40,
        postgres: postgres.clone(),
    })
    .await
    .expect("the benchmark runs");
    let table = render(&figures);
    println!("{table}");
    let expected = if postgres.is_some() { 6 } else { 3 };
    assert_eq!(figures.len(), expected, "{table}");
    for figure in figures.iter().filter(|f| f.name.starts_with("append")) {
        assert_eq!(figure.kiroku.commands, 40, "{table}");
        assert_eq!(figure.raw.commands, 40, "{table}");
        assert_eq!(figure.kiroku.errors + figure.raw.errors, 0, "{table}");
        assert!(figure.ratio() > 0.0, "{table}");
    }
    assert!(table.contains("append, 8 clients"), "{table}");
    // The rebuild folds both append runs (80 incidents) and the raw replay reads as many.
    for figure in figures.iter().filter(|f| f.name.starts_with("rebuild")) {
        assert!(figure.kiroku.commands >= 80, "{table}");
        assert_eq!(figure.raw.commands, 80, "{table}");
        assert_eq!(figure.kiroku.errors + figure.raw.errors, 0, "{table}");
    }
}
