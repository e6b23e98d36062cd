//! What the ledger does when its own storage surprises it: an event it cannot read, a
//! checkpoint that was altered, a database file locked by someone else.

mod support;

use kiroku::ledger::Ledger;
use kiroku::projector::Projector;
use kiroku::storage::{chain, log};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{staff_body, Db, TestApp};

fn kiroku(app: &TestApp, args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kiroku"))
        .args(args)
        .env("DATABASE_URL", &app.database_url)
        .output()
        .expect("run kiroku");
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// Appends an event of a type this version does not know, with its chain link, as a newer
/// version of Kiroku writing to the same database would. Returns its position.
async fn append_from_a_newer_version(app: &TestApp) -> i64 {
    app.sql(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Payroll', 'p-1', 1, 'PayrollRun', '1', '{\"PayrollRun\":{\"month\":\"2026-10\"}}', \
         '{\"actor\":\"kiroku 2.0\",\"request_id\":\"r-future\"}')",
    )
    .await
    .expect("insert");
    let (after, previous) = chain::chain_head(&app.ledger.backend).await.expect("head");
    let events = log::read_after(&app.ledger.backend, after, 10)
        .await
        .expect("read");
    assert_eq!(events.len(), 1);
    let hash = chain::link(&previous, &events[0]);
    app.sql(&format!(
        "INSERT INTO event_chain (position, hash) VALUES ({}, '{hash}')",
        events[0].position
    ))
    .await
    .expect("link");
    events[0].position
}

both_backends!(
    an_event_this_version_cannot_read_stops_the_projector_visibly_and_reads_go_on,
    |app: TestApp| async move {
        let staff = app.register("U001", "総務課", 3).await;
        let before = app.get(&app.hr, &format!("/staff/{staff}")).await;
        assert_eq!(before.status, 200);
        let position = append_from_a_newer_version(&app).await;
        let count = app.event_count().await;

        // Reads are served from what is projected; health says degraded and names the event.
        let read = app.get(&app.hr, &format!("/staff/{staff}")).await;
        assert_eq!(read.status, 200, "{:?}", read.body);
        assert_eq!(read.body["departments"], before.body["departments"]);
        assert_eq!(read.body["employee_no"], "U001");
        let health = app.get_anonymous("/healthz").await;
        assert_eq!(health.status, 200);
        assert_eq!(health.body["status"], "degraded", "{}", health.body);
        assert_eq!(health.body["projector"]["stopped_at"], position);
        assert_eq!(health.body["projector"]["event_type"], "Payroll.PayrollRun");
        assert_eq!(health.body["projected"], position - 1);

        // Commands are refused in Japanese, with Retry-After, and write nothing.
        let refused = app
            .post(
                &app.hr,
                "/staff",
                &staff_body("U002", "総務課", 3, "2020-04-01"),
            )
            .await;
        refused.assert_problem(503, "projector_stopped");
        assert!(refused.retry_after.is_some());
        assert!(
            refused.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains(&format!("位置 {position}"))),
            "{}",
            refused.body
        );
        assert_eq!(app.event_count().await, count);

        // verify still runs; a server still starts, stopped at the same event; a rebuild
        // refuses to pretend it is complete.
        let (code, out) = kiroku(&app, &["verify"]);
        assert_eq!(code, 0, "{out}");
        let restarted = Ledger::open(&app.database_url)
            .await
            .expect("a server start");
        let stopped = restarted.projector.stopped().expect("stopped");
        assert_eq!(stopped.position, position);
        assert_eq!(restarted.projector.position(), position - 1);
        restarted.backend.close().await;
        let (code, out) = kiroku(&app, &["rebuild"]);
        assert_ne!(code, 0, "{out}");
        assert!(out.contains(&format!("position {position}")), "{out}");
    }
);

/// Rewrites the stored read models in place, as someone with database access could: the
/// pieces that name the department (総務課 → 秘書課, byte for byte: the pieces are binary).
fn tamper_checkpoint(db: Db) -> &'static str {
    match db {
        Db::Sqlite => {
            "UPDATE projection_segments SET bytes = CAST(substr(bytes, 1, instr(bytes, X'e7b78fe58b99e8aab2') - 1) \
             || X'e7a798e69bb8e8aab2' || substr(bytes, instr(bytes, X'e7b78fe58b99e8aab2') + 9) AS BLOB) \
             WHERE instr(bytes, X'e7b78fe58b99e8aab2') > 0"
        }
        Db::Postgres => {
            "UPDATE projection_segments SET bytes = overlay(bytes PLACING '\\xe7a798e69bb8e8aab2'::bytea \
             FROM position('\\xe7b78fe58b99e8aab2'::bytea IN bytes) FOR 9) \
             WHERE position('\\xe7b78fe58b99e8aab2'::bytea IN bytes) > 0"
        }
    }
}

both_backends!(
    an_altered_checkpoint_is_not_loaded_and_the_read_models_are_rebuilt_from_the_log,
    |app: TestApp| async move {
        for i in 0..3 {
            app.register(&format!("C00{i}"), "総務課", 3).await;
        }
        app.ledger.projector.checkpoint().await.expect("checkpoint");
        let honest = app.ledger.projector.fingerprint().expect("fingerprint");

        // An untouched checkpoint is taken as it is.
        let resumed = Projector::open(app.ledger.backend.clone())
            .await
            .expect("open");
        assert_eq!(resumed.fingerprint().expect("fingerprint"), honest);

        // An altered one is refused: the projector starts empty and rebuilds from the log.
        assert!(app.sql(tamper_checkpoint(app.db)).await.expect("tamper") >= 1);
        let opened = Projector::open(app.ledger.backend.clone())
            .await
            .expect("open");
        assert_eq!(opened.position(), 0, "the altered checkpoint was loaded");
        opened.catch_up().await.expect("rebuild");
        assert_eq!(opened.fingerprint().expect("fingerprint"), honest);
        let restarted = Ledger::open(&app.database_url)
            .await
            .expect("a server start");
        assert_eq!(
            restarted.projector.fingerprint().expect("fingerprint"),
            honest
        );
        restarted.backend.close().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sqlite_file_locked_by_another_process_is_a_503_with_retry_after_then_recovers() {
    use sqlx::Connection;
    kiroku::storage::set_database_wait(Duration::from_secs(3));
    let Some(app) = support::spawn_app(Db::Sqlite).await else {
        return;
    };
    let staff = app.register("K001", "総務課", 3).await;
    let count = app.event_count().await;

    // Another program opens the file and holds its write lock.
    let mut other = sqlx::SqliteConnection::connect(&app.database_url)
        .await
        .expect("connect");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .expect("lock");

    let started = Instant::now();
    let refused = app
        .post(
            &app.hr,
            "/staff",
            &staff_body("K002", "総務課", 3, "2020-04-01"),
        )
        .await;
    let waited = started.elapsed();
    refused.assert_problem(503, "database_unavailable");
    assert_eq!(refused.retry_after.as_deref(), Some("5"));
    assert!(
        waited < Duration::from_secs(10),
        "answered after {waited:?}"
    );
    eprintln!("locked SQLite file: 503 after {waited:?}");

    // Reads go on meanwhile.
    let read = app.get(&app.hr, &format!("/staff/{staff}")).await;
    assert_eq!(read.status, 200);

    // The lock goes away: the same command is taken, once.
    sqlx::query("ROLLBACK")
        .execute(&mut other)
        .await
        .expect("unlock");
    let taken = app
        .post(
            &app.hr,
            "/staff",
            &staff_body("K002", "総務課", 3, "2020-04-01"),
        )
        .await;
    assert_eq!(taken.status, 201, "{:?}", taken.body);
    assert_eq!(app.event_count().await, count + 1);
    let (code, out) = kiroku(&app, &["verify"]);
    assert_eq!(code, 0, "{out}");
}

/// What one client saw: the employee numbers acknowledged (201), and every other answer.
#[derive(Default)]
struct Seen {
    acknowledged: Vec<String>,
    unavailable: usize,
    slowest_503: Duration,
    other: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_under_load_is_503_with_retry_after_and_nothing_acknowledged_is_lost() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    kiroku::storage::set_database_wait(Duration::from_secs(3));
    let Some(mut server) = support::pg_server::PgServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let app = Arc::new(support::spawn_app_at(Db::Postgres, server.url(), dir).await);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let running = Arc::new(AtomicBool::new(true));
    let mut clients = Vec::new();
    for c in 0..4 {
        let (app, client, running) = (app.clone(), client.clone(), running.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = Seen::default();
            let mut i = 0;
            while running.load(Ordering::SeqCst) {
                i += 1;
                let no = format!("P{c}{i:05}");
                let started = Instant::now();
                let response = client
                    .post(app.url("/staff"))
                    .bearer_auth(&app.hr)
                    .json(&staff_body(&no, "総務課", 3, "2020-04-01"))
                    .send()
                    .await;
                let took = started.elapsed();
                match response {
                    Ok(r) if r.status() == 201 => seen.acknowledged.push(no),
                    Ok(r) if r.status() == 503 && r.headers().contains_key("retry-after") => {
                        seen.unavailable += 1;
                        seen.slowest_503 = seen.slowest_503.max(took);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Ok(r) => {
                        let status = r.status();
                        seen.other
                            .push(format!("{status} {}", r.text().await.unwrap_or_default()));
                    }
                    Err(error) => seen.other.push(format!("no answer: {error}")),
                }
            }
            seen
        }));
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopped_at = Instant::now();
    // `immediate` is a crash of the database server: whatever it acknowledged must survive it.
    tokio::task::block_in_place(|| server.stop("immediate"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let health = app.get_anonymous("/healthz").await;
    assert_eq!(health.status, 503, "{}", health.body);
    assert!(health.retry_after.is_some());
    // The metrics read no database: they answer while it is down.
    let metrics = client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.expect("body");
    assert!(text.contains("kiroku_events_appended_total"), "{text}");
    tokio::task::block_in_place(|| server.resume());
    let down_for = stopped_at.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.store(false, Ordering::SeqCst);

    let mut acknowledged = Vec::new();
    let (mut unavailable, mut slowest, mut other) = (0, Duration::ZERO, Vec::new());
    for client in clients {
        let seen = client.await.expect("client");
        acknowledged.extend(seen.acknowledged);
        unavailable += seen.unavailable;
        slowest = slowest.max(seen.slowest_503);
        other.extend(seen.other);
    }
    eprintln!(
        "PostgreSQL down for {down_for:?}: {} acknowledged, {unavailable} answered 503 (slowest {slowest:?}), {} other",
        acknowledged.len(),
        other.len()
    );
    assert!(
        other.is_empty(),
        "answers other than 201 and 503: {other:?}"
    );
    assert!(unavailable > 0, "the outage was never seen");
    assert!(slowest < Duration::from_secs(5), "a 503 took {slowest:?}");

    // The server reconnected on its own: a command is taken again.
    let after = app
        .post(
            &app.hr,
            "/staff",
            &staff_body("P900000", "総務課", 3, "2020-04-01"),
        )
        .await;
    assert_eq!(after.status, 201, "{:?}", after.body);

    // Every acknowledged registration is in the log, and the chain is whole.
    let pool = sqlx::PgPool::connect(&server.url()).await.expect("connect");
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT payload->'StaffRegistered'->>'employee_no' FROM events WHERE event_type = 'StaffRegistered'",
    )
    .fetch_all(&pool)
    .await
    .expect("read");
    pool.close().await;
    let stored: std::collections::HashSet<String> = stored.into_iter().collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|no| !stored.contains(*no))
        .collect();
    assert!(lost.is_empty(), "acknowledged but not in the log: {lost:?}");
    let (code, out) = kiroku(&app, &["verify"]);
    assert_eq!(code, 0, "{out}");
}

/// The value of the first sample of `name` whose labels contain every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.starts_with(&format!("{name} ")) || line.starts_with(&format!("{name}{{"))
        })
        .find(|line| labels.iter().all(|l| line.contains(l)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

both_backends!(
    metrics_count_requests_commands_events_and_lag_without_reading_the_database,
    |app: TestApp| async move {
        for i in 0..3 {
            app.register(&format!("M00{i}"), "総務課", 3).await;
        }
        app.post(&app.hr, "/staff", &serde_json::json!({"employee_no": "M9"}))
            .await
            .assert_problem(400, "validation_failed");
        let text = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("body");
        let staff_201 = [
            "route=\"/api/v1/staff\"",
            "status=\"201\"",
            "method=\"POST\"",
        ];
        assert_eq!(
            sample(&text, "kiroku_http_requests_total", &staff_201),
            Some(3.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "kiroku_http_requests_total",
                &["route=\"/api/v1/staff\"", "status=\"400\""]
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "kiroku_events_appended_total", &[]),
            Some(3.0),
            "{text}"
        );
        let head = app.event_count().await as f64;
        assert_eq!(
            sample(&text, "kiroku_chain_head_position", &[]),
            Some(head),
            "{text}"
        );
        assert_eq!(
            sample(&text, "kiroku_projected_position", &[]),
            Some(head),
            "{text}"
        );
        assert_eq!(
            sample(&text, "kiroku_projector_lag_events", &[]),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "kiroku_projector_stopped", &[]),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "kiroku_command_duration_seconds_count",
                &["aggregate=\"Staff\""]
            ),
            Some(3.0),
            "{text}"
        );
    }
);
