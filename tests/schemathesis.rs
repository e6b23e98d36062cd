//! The whole API, as its own OpenAPI document describes it, fuzzed by schemathesis (from PyPI;
//! `scripts/test.sh` installs it into a virtual environment and names it in
//! `KIROKU_SCHEMATHESIS`), on both backends: valid and invalid bodies, path ids and query
//! strings for every operation. Every answer must be 2xx or a 4xx problem+json with a code; no
//! 5xx; a refused request must not move the head of the log (`tests/fuzz/kiroku_hooks.py`).

mod support;

use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use support::TestApp;

/// Examples per operation and generation method; ~40 operations × 2 methods.
const EXAMPLES: &str = "25";

fn schemathesis() -> Option<PathBuf> {
    match std::env::var_os("KIROKU_SCHEMATHESIS") {
        Some(path) => Some(PathBuf::from(path)),
        None if std::env::var("CI").is_ok() => {
            panic!("KIROKU_SCHEMATHESIS is not set: run the tests with scripts/test.sh")
        }
        None => {
            eprintln!("skipping: KIROKU_SCHEMATHESIS is not set (scripts/test.sh installs it)");
            None
        }
    }
}

/// Answers by status, read from schemathesis' network log.
fn statuses(cassette: &str) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for line in cassette.lines() {
        let line = line.trim();
        if let Some(code) = line
            .strip_prefix("code: '")
            .and_then(|rest| rest.strip_suffix('\''))
            .and_then(|code| code.parse::<u16>().ok())
        {
            *counts.entry(code).or_insert(0) += 1;
        }
    }
    counts
}

both_backends!(
    the_whole_api_answers_schemathesis_with_2xx_or_problems,
    |app: TestApp| async move {
        let Some(binary) = schemathesis() else { return };
        // Something to point the path ids at.
        let staff = app.register("FZ-1", "税務課", 3).await;
        let session = app.schedule(5).await;
        let plan = app
            .post(&app.hr, "/plan-items", &support::plan_item_body())
            .await;
        assert_eq!(plan.status, 201, "{:?}", plan.body);
        let incident = app
            .post(
                &app.hr,
                "/compliance-incidents",
                &json!({"occurred_on": "2023-07-03", "department": "税務課", "summary": "誤送付"}),
            )
            .await;
        assert_eq!(incident.status, 201, "{:?}", incident.body);
        let ids = json!({
            "staff": staff,
            "session": session,
            "code": "2-1-2",
            "incident": incident.id(),
        });

        let document = app.get_anonymous("/openapi.json").await;
        assert_eq!(document.status, 200);
        let operations: usize = document.body["paths"]
            .as_object()
            .expect("paths")
            .values()
            .map(|item| item.as_object().map_or(0, |methods| methods.len()))
            .sum();
        assert!(operations >= 40, "{operations} operations in the document");

        let work = tempfile::tempdir().expect("dir");
        let cassette = work.path().join("cassette.yaml");
        let hooks = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
        let base = app.url("");
        let base = base.trim_end_matches('/').to_string();
        let token = app.hr.clone();
        let cassette_path = cassette.clone();
        let dir = work.path().to_path_buf();
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new(binary)
                .arg("run")
                .arg(format!("{base}/openapi.json"))
                .args(["--experimental", "openapi-3.1"])
                .args(["--base-url", &base])
                .args(["-H", &format!("Authorization: Bearer {token}")])
                .args(["--checks", "not_a_server_error"])
                .args(["--checks", "refusals_are_problems_that_record_nothing"])
                .args(["--data-generation-method", "all"])
                .args(["--hypothesis-max-examples", EXAMPLES])
                .args(["--hypothesis-seed", "20261122"])
                .args(["--hypothesis-database", "none"])
                .args(["--workers", "1"])
                .arg("--cassette-path")
                .arg(&cassette_path)
                .env("SCHEMATHESIS_HOOKS", "kiroku_hooks")
                .env("PYTHONPATH", &hooks)
                .env("KIROKU_FUZZ_BASE", &base)
                .env("KIROKU_FUZZ_IDS", ids.to_string())
                .env("NO_COLOR", "1")
                .current_dir(&dir)
                .output()
                .expect("run schemathesis")
        })
        .await
        .expect("schemathesis task");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let log = std::fs::read_to_string(&cassette).unwrap_or_default();
        let counts = statuses(&log);
        let calls: usize = counts.values().sum();
        let server_errors: usize = counts
            .iter()
            .filter(|(status, _)| **status >= 500)
            .map(|(_, n)| n)
            .sum();
        println!(
            "schemathesis on {:?}: {operations} operations, {calls} requests, by status {counts:?}, 5xx {server_errors}",
            app.db
        );
        assert!(
            output.status.success(),
            "schemathesis failed:\n{stdout}\n{stderr}"
        );
        assert_eq!(server_errors, 0, "{counts:?}");
        assert!(calls >= operations * 10, "only {calls} requests");
        assert!(
            counts.keys().any(|status| (200..300).contains(status)),
            "nothing was accepted: {counts:?}"
        );
        // The ledger the fuzzer wrote into still verifies.
        let verify = kiroku::storage::chain::verify(&app.ledger.backend)
            .await
            .expect("verify");
        assert!(
            matches!(verify, kiroku::storage::chain::Verdict::Intact { .. }),
            "{verify:?}"
        );
    }
);
