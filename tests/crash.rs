//! A server killed with SIGKILL under load from 8 clients that send every command with an
//! Idempotency-Key: after a restart, every acknowledged command is in the log, every key that
//! was in flight ends, retried, in exactly one outcome, the chain is whole and the live
//! projections equal a rebuild. On both backends.

mod support;

use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{staff_body, TestApp};

const CLIENTS: usize = 8;
/// Acknowledged commands before the kill (or the time limit below, whichever comes first).
const ACKS_BEFORE_KILL: usize = 2000;
const LOAD_LIMIT: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn serve(database_url: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kiroku"))
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", database_url)
        .env("KIROKU_IDEMPOTENCY_LEASE_MS", "2000")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(format!("/tmp/crash-serve-{port}.log"))
                .map(Stdio::from)
                .unwrap_or(Stdio::null()),
        )
        .spawn()
        .expect("spawn kiroku serve")
}

async fn ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the server at {base} did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn kiroku(database_url: &str, args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kiroku"))
        .args(args)
        .env("DATABASE_URL", database_url)
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

enum Outcome {
    Acknowledged,
    /// Sent, and no answer came (the server died), or the connection was refused.
    InFlight,
    Other(String),
}

struct Sent {
    key: String,
    employee_no: String,
    outcome: Outcome,
}

both_backends!(
    a_server_killed_under_load_loses_nothing_acknowledged_and_every_key_ends_once,
    |app: TestApp| async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .expect("client");
        let port = free_port();
        let mut server = serve(&app.database_url, port);
        let base = format!("http://127.0.0.1:{port}/api/v1");
        ready(&client, &base).await;

        let acked = Arc::new(AtomicUsize::new(0));
        let killed = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let (client, base, token) = (client.clone(), base.clone(), app.hr.clone());
            let (acked, killed) = (acked.clone(), killed.clone());
            tasks.push(tokio::spawn(async move {
                let mut sent = Vec::new();
                for i in 0.. {
                    let employee_no = format!("K{c}{i:05}");
                    let key = format!("crash-{c}-{i}");
                    let response = client
                        .post(format!("{base}/staff"))
                        .bearer_auth(&token)
                        .header("Idempotency-Key", &key)
                        .json(&staff_body(&employee_no, "総務課", 3, "2020-04-01"))
                        .send()
                        .await;
                    let outcome = match response {
                        Ok(r) if r.status() == 201 => {
                            acked.fetch_add(1, Ordering::SeqCst);
                            Outcome::Acknowledged
                        }
                        Ok(r) => Outcome::Other(format!(
                            "{} {}",
                            r.status(),
                            r.text().await.unwrap_or_default()
                        )),
                        Err(_) => Outcome::InFlight,
                    };
                    let stop =
                        matches!(outcome, Outcome::InFlight) || killed.load(Ordering::SeqCst);
                    sent.push(Sent {
                        key,
                        employee_no,
                        outcome,
                    });
                    if stop {
                        break;
                    }
                }
                sent
            }));
        }
        let started = Instant::now();
        while acked.load(Ordering::SeqCst) < ACKS_BEFORE_KILL && started.elapsed() < LOAD_LIMIT {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill().expect("SIGKILL");
        let _ = server.wait();
        killed.store(true, Ordering::SeqCst);
        let mut sent = Vec::new();
        for task in tasks {
            sent.extend(task.await.expect("client"));
        }
        let others: Vec<&String> = sent
            .iter()
            .filter_map(|s| match &s.outcome {
                Outcome::Other(what) => Some(what),
                _ => None,
            })
            .collect();
        assert!(
            others.is_empty(),
            "answers other than 201 before the kill: {others:?}"
        );

        // Restart; once the lease of the keys the kill cut off has passed, retry each of them
        // with the same key and body.
        let port = free_port();
        let mut server = serve(&app.database_url, port);
        let base = format!("http://127.0.0.1:{port}/api/v1");
        ready(&client, &base).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let (mut replayed, mut recovered, mut ran_once) = (0, 0, 0);
        for s in sent
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::InFlight))
        {
            let retry = client
                .post(format!("{base}/staff"))
                .bearer_auth(&app.hr)
                .header("Idempotency-Key", &s.key)
                .json(&staff_body(&s.employee_no, "総務課", 3, "2020-04-01"))
                .send()
                .await
                .expect("retry");
            let status = retry.status().as_u16();
            let was_replayed = retry.headers().contains_key("idempotent-replay");
            let body: Value = retry.json().await.unwrap_or(Value::Null);
            match (status, was_replayed, body["recovered"] == true) {
                (200, true, true) => recovered += 1,
                (201, true, _) => replayed += 1,
                (201, false, _) => ran_once += 1,
                other => panic!("key {} ended as {other:?}: {body}", s.key),
            }
        }
        let in_flight = replayed + recovered + ran_once;

        // Every acknowledged and every retried registration is in the log, once.
        let stored: Vec<String> = kiroku::with_pool!(&app.ledger.backend, pool => {
            let sql = match app.db {
                support::Db::Sqlite => "SELECT json_extract(payload, '$.StaffRegistered.employee_no') FROM events WHERE event_type = 'StaffRegistered'",
                support::Db::Postgres => "SELECT payload->'StaffRegistered'->>'employee_no' FROM events WHERE event_type = 'StaffRegistered'",
            };
            sqlx::query_scalar(sql).fetch_all(pool).await.expect("stored")
        });
        let stored_set: std::collections::HashSet<&String> = stored.iter().collect();
        assert_eq!(stored_set.len(), stored.len(), "no registration twice");
        let acknowledged: Vec<&Sent> = sent
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::Acknowledged))
            .collect();
        for s in acknowledged.iter().copied().chain(
            sent.iter()
                .filter(|s| matches!(s.outcome, Outcome::InFlight)),
        ) {
            assert!(stored_set.contains(&s.employee_no), "{} is lost", s.key);
        }
        eprintln!(
            "{:?}: {} commands sent by {CLIENTS} clients, {} acknowledged before SIGKILL, all {} found; \
             {in_flight} in flight, retried: {replayed} replayed, {recovered} recovered from the log, {ran_once} run once",
            app.db,
            sent.len(),
            acknowledged.len(),
            acknowledged.len()
        );

        // The chain is whole; the restarted server's projections equal a rebuild.
        let (code, out) = kiroku(&app.database_url, &["verify"]);
        assert_eq!(code, 0, "{out}");
        let head = kiroku::storage::log::head(&app.ledger.backend)
            .await
            .expect("head");
        let live = loop {
            let body: Value = client
                .get(format!("{base}/projections"))
                .bearer_auth(&app.auditor)
                .send()
                .await
                .expect("projections")
                .json()
                .await
                .expect("json");
            if body["position"].as_i64() == Some(head) {
                break body["fingerprint"]
                    .as_str()
                    .expect("fingerprint")
                    .to_string();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        server.kill().expect("stop");
        let _ = server.wait();
        let (code, out) = kiroku(&app.database_url, &["rebuild"]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(&live), "live {live} vs rebuild {out}");
    }
);
