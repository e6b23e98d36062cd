//! `kiroku log export` and `kiroku log import`: the whole log moves from the embedded SQLite
//! ledger to PostgreSQL (and back) with the same positions, times and hashes, so every sheet as
//! of a past moment reads the same; a non-empty ledger and a tampered file are refused and
//! nothing is written. And `kiroku keys rewrap`, which moves the personal keys to a new master
//! key (the keys travel with an export as they are wrapped).

mod support;

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::{spawn_app, Db, TestApp};

fn kiroku(database: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiroku"))
        .env("DATABASE_URL", database)
        .args(args)
        .output()
        .expect("run kiroku")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `ok: N events, hash chain intact (head H)` → (N, H).
fn verified(database: &str) -> (String, String) {
    let output = kiroku(database, &["verify"]);
    let out = text(&output.stdout);
    assert!(output.status.success(), "verify {database}: {out}");
    let events = out
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let head = out
        .split("(head ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_default()
        .to_string();
    (events, head)
}

fn sheet(database: &str, as_of: Option<&str>, format: &str) -> Vec<u8> {
    let mut args = vec!["report", "sheet", "--item", "2-1-2", "--format", format];
    if let Some(t) = as_of {
        args.extend(["--as-of", t]);
    }
    let output = kiroku(database, &args);
    assert!(
        output.status.success(),
        "report sheet as of {as_of:?}: {}",
        text(&output.stderr)
    );
    output.stdout
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn pause() {
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
}

/// A small history with moments in between: staff, a session with completions, a plan item,
/// a manual actual and its correction, a revocation.
async fn history(app: &TestApp) -> Vec<String> {
    let mut moments = Vec::new();
    let defined = app
        .post(&app.hr, "/plan-items", &support::plan_item_body())
        .await;
    assert_eq!(defined.status.as_u16(), 201, "{:?}", defined.body);
    let session = app.schedule(10).await;
    let mut staff = Vec::new();
    for i in 0..4 {
        let id = app.register(&format!("B{i}"), "人事課", 2).await;
        app.post(
            &app.hr,
            &format!("/sessions/{session}/enrolments"),
            &json!({"staff_id": id}),
        )
        .await;
        let completed = app
            .post(
                &app.hr,
                &format!("/sessions/{session}/completions"),
                &json!({"staff_id": id, "completed_on": "2023-05-11", "understanding": 4}),
            )
            .await;
        assert_eq!(completed.status.as_u16(), 201, "{:?}", completed.body);
        staff.push(id);
    }
    pause().await;
    moments.push(now());
    pause().await;
    let reported = app
        .post(
            &app.hr,
            "/plan-items/2-1-2/actuals",
            &json!({"indicator_code": "want_management", "fiscal_year": 2023, "value": 18.5, "status": "estimate"}),
        )
        .await;
    assert_eq!(reported.status.as_u16(), 200, "{:?}", reported.body);
    pause().await;
    moments.push(now());
    pause().await;
    let revoked = app
        .post(
            &app.hr,
            &format!("/sessions/{session}/completions/{}/revocation", staff[0]),
            &json!({"reason": "欠席者の誤登録"}),
        )
        .await;
    assert_eq!(revoked.status.as_u16(), 200, "{:?}", revoked.body);
    let corrected = app
        .post(
            &app.hr,
            "/plan-items/2-1-2/actual-corrections",
            &json!({"indicator_code": "want_management", "fiscal_year": 2023, "value": 19.0, "reason": "集計誤り"}),
        )
        .await;
    assert_eq!(corrected.status.as_u16(), 200, "{:?}", corrected.body);
    pause().await;
    moments.push(now());
    moments
}

fn export(database: &str, file: &Path) {
    let output = kiroku(
        database,
        &["log", "export", "-o", file.to_str().expect("path")],
    );
    assert!(output.status.success(), "export: {}", text(&output.stderr));
}

fn import(database: &str, file: &Path) -> Output {
    kiroku(database, &["log", "import", file.to_str().expect("path")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sqlite_log_moves_to_postgres_with_the_same_chain_and_the_same_past_sheets() {
    let Some(pg) = support::postgres_database().await else {
        return;
    };
    let Some(app) = spawn_app(Db::Sqlite).await else {
        return;
    };
    let moments = history(&app).await;
    let sqlite = app.database_url.clone();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("log.ndjson");
    export(&sqlite, &file);

    // The file: a header, one line per event, then the personal keys of the four staff.
    let contents = std::fs::read_to_string(&file).expect("read the export");
    let lines: Vec<serde_json::Value> = contents
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    let events = app.event_count().await;
    assert_eq!(lines[0]["type"], "header");
    assert_eq!(lines[0]["events"], json!(events));
    assert_eq!(
        lines.iter().filter(|l| l["type"] == "event").count() as i64,
        events
    );
    assert_eq!(
        lines.iter().filter(|l| l["type"] == "personal_key").count(),
        4
    );

    let imported = import(&pg, &file);
    assert!(
        imported.status.success(),
        "import: {}",
        text(&imported.stderr)
    );
    let (sqlite_events, sqlite_head) = verified(&sqlite);
    let (pg_events, pg_head) = verified(&pg);
    assert_eq!(sqlite_events, events.to_string());
    assert_eq!(pg_events, sqlite_events);
    assert_eq!(pg_head, sqlite_head, "the same chain head on both backends");
    assert_eq!(lines[0]["head_hash"], json!(sqlite_head));

    // Every sheet as of a past moment, and today's, is byte-identical on both ledgers.
    for moment in &moments {
        for format in ["json", "csv", "html"] {
            assert_eq!(
                text(&sheet(&sqlite, Some(moment), format)),
                text(&sheet(&pg, Some(moment), format)),
                "the {format} sheet as of {moment}"
            );
        }
    }
    let last = moments.last().map(String::as_str);
    assert!(sheet(&sqlite, last, "xlsx").len() > 1000);

    // Names sealed on SQLite open on PostgreSQL: the keys came along.
    let moved = kiroku::ledger::Ledger::open(&pg).await.expect("open pg");
    let staff: Vec<_> = moved
        .projector
        .read(|h| h.staff.keys().copied().collect())
        .expect("read");
    assert_eq!(staff.len(), 4);
    // New commands continue the log after the restored positions.
    let head_before: i64 = kiroku::storage::log::head(&moved.backend)
        .await
        .expect("head");
    let (base, _stop) = support::second_server(&pg).await;
    let token = kiroku::storage::tokens::create(
        &moved.backend,
        kiroku::storage::tokens::Role::HrAdmin,
        "人事課",
        None,
    )
    .await
    .expect("token");
    let reply = app
        .client
        .post(format!("{base}/staff"))
        .bearer_auth(&token)
        .json(&support::staff_body("B9", "人事課", 1, "2024-04-01"))
        .send()
        .await
        .expect("register");
    assert_eq!(reply.status().as_u16(), 201);
    let body: serde_json::Value = reply.json().await.expect("json");
    assert_eq!(body["position"].as_i64(), Some(head_before + 1));
    let (_, head_after) = verified(&pg);
    assert_ne!(head_after, pg_head);

    // A ledger that holds events refuses an import, and nothing is written.
    let count_before = kiroku::storage::log::count(&moved.backend)
        .await
        .expect("count");
    let refused = import(&pg, &file);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains(&format!(
            "台帳が空ではありません（イベント {count_before} 件、鍵 5 件）"
        )),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(
        kiroku::storage::log::count(&moved.backend)
            .await
            .expect("count"),
        count_before
    );

    // Back from PostgreSQL into a fresh SQLite ledger: the same head again.
    let back = dir.path().join("back.db");
    let back_url = format!("sqlite://{}", back.display());
    let from_pg = dir.path().join("from-pg.ndjson");
    export(&pg, &from_pg);
    let restored = import(&back_url, &from_pg);
    assert!(restored.status.success(), "{}", text(&restored.stderr));
    assert_eq!(verified(&back_url).1, head_after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tampered_or_truncated_export_is_refused_and_nothing_is_written() {
    let Some(app) = spawn_app(Db::Sqlite).await else {
        return;
    };
    history(&app).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("log.ndjson");
    export(&app.database_url, &file);
    let contents = std::fs::read_to_string(&file).expect("read");
    let mut lines: Vec<String> = contents.lines().map(str::to_string).collect();

    // One payload altered on line 5 (the 4th event): its hash no longer matches.
    let mut altered = lines.clone();
    let mut event: serde_json::Value = serde_json::from_str(&altered[4]).expect("json");
    event["metadata"]["actor"] = json!("誰か");
    altered[4] = event.to_string();
    let tampered = dir.path().join("tampered.ndjson");
    std::fs::write(&tampered, altered.join("\n")).expect("write");
    let target = format!("sqlite://{}", dir.path().join("t.db").display());
    let refused = import(&target, &tampered);
    assert_eq!(refused.status.code(), Some(1));
    let message = text(&refused.stderr);
    assert!(message.contains("5行目"), "{message}");
    assert!(message.contains("ハッシュ"), "{message}");
    assert_eq!(verified(&target).0, "0", "nothing was written");

    // A file cut among its keys (the last of four lost) is refused by the header's count of
    // keys: those people's names could never be read again.
    assert!(lines.last().is_some_and(|l| l.contains("\"personal_key\"")));
    let cut = dir.path().join("cut-among-keys.ndjson");
    std::fs::write(&cut, lines[..lines.len() - 1].join("\n")).expect("write");
    let refused = import(&target, &cut);
    assert_eq!(refused.status.code(), Some(1));
    let message = text(&refused.stderr);
    assert!(
        message.contains("鍵 4 件") && message.contains("鍵 3 件"),
        "{message}"
    );
    assert_eq!(verified(&target).0, "0", "nothing was written");

    // A truncated file (the last event lost) is refused by the header's count.
    lines.retain(|l| !l.contains("\"personal_key\""));
    lines.pop();
    let truncated = dir.path().join("truncated.ndjson");
    std::fs::write(&truncated, lines.join("\n")).expect("write");
    let refused = import(&target, &truncated);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("一致しません"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(verified(&target).0, "0", "nothing was written");

    // The untouched file restores.
    let restored = import(&target, &file);
    assert!(restored.status.success(), "{}", text(&restored.stderr));
    assert_eq!(verified(&target), verified(&app.database_url));
}

/// A file of `events` withdrawn incidents, chained, as an export writes it; and the same with
/// the event at index `altered` changed after its hash was taken.
fn incident_files(dir: &Path, events: usize, altered: usize) -> (PathBuf, PathBuf) {
    use kiroku::storage::backup::{rechain, EventLine, Header, Line, FORMAT, VERSION};
    let mut lines: Vec<EventLine> = (0..events)
        .map(|i| EventLine {
            position: i as i64 + 1,
            recorded_at: 1_700_000_000_000 + i as i64,
            aggregate_type: "ComplianceIncident".into(),
            aggregate_id: format!("00000000-0000-0000-0000-{i:012}"),
            sequence: 1,
            event_type: "ComplianceIncidentWithdrawn".into(),
            event_version: "1".into(),
            payload: json!({"ComplianceIncidentWithdrawn": {
                "incident_id": format!("00000000-0000-0000-0000-{i:012}"), "reason": "重複"}}),
            metadata: json!({"actor": "人事課"}),
            hash: String::new(),
        })
        .collect();
    rechain(&mut lines);
    let write = |name: &str, lines: &[EventLine]| {
        let header = Header {
            format: FORMAT.into(),
            version: VERSION,
            events: lines.len() as u64,
            head_position: lines.len() as i64,
            head_hash: lines.last().map(|e| e.hash.clone()).unwrap_or_default(),
            exported_at: 1_700_000_000_000,
            keys: Some(0),
        };
        let mut text = serde_json::to_string(&Line::Header(header)).expect("header") + "\n";
        for event in lines {
            text += &(serde_json::to_string(&Line::Event(event.clone())).expect("event") + "\n");
        }
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    };
    let good = write("good.ndjson", &lines);
    let head = lines[events - 1].hash.clone();
    lines[altered].metadata = json!({"actor": "誰か"});
    lines[events - 1].hash = head;
    let bad = write("bad.ndjson", &lines);
    (good, bad)
}

/// On PostgreSQL, where the import switches the position triggers off inside its transaction:
/// a file refused after two batches went in (line 1,100 of 1,201) leaves the ledger empty, and
/// the file as it was then restores whole, and the next command continues the log (the
/// triggers are on again, the sequence follows the last position).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_refusal_leaves_a_postgres_ledger_empty_and_the_log_continues_after_a_good_import() {
    let Some(pg) = support::postgres_database().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let (good, bad) = incident_files(dir.path(), 1_200, 1_098);

    let refused = import(&pg, &bad);
    assert_eq!(refused.status.code(), Some(1));
    let message = text(&refused.stderr);
    assert!(message.contains("1100行目"), "{message}");
    assert!(message.contains("何も取り込みませんでした"), "{message}");
    assert_eq!(verified(&pg).0, "0", "nothing was written");

    let restored = import(&pg, &good);
    assert!(restored.status.success(), "{}", text(&restored.stderr));
    assert_eq!(verified(&pg).0, "1200");
    let app =
        support::spawn_app_at(Db::Postgres, pg.clone(), tempfile::tempdir().expect("dir")).await;
    let reply = app
        .post(
            &app.hr,
            "/staff",
            &support::staff_body("C001", "総務課", 3, "2020-04-01"),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
    assert_eq!(reply.body["position"].as_i64(), Some(1_201));
    assert_eq!(verified(&pg).0, "1201");
}

/// `kiroku keys rewrap` changes the master key: with the new key as the master key and the old
/// one as the previous, every personal key is wrapped again; afterwards the new key alone
/// opens them all, and the old one alone is refused (exit 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_master_key_is_changed_by_keys_rewrap() {
    let Some(app) = spawn_app(Db::Sqlite).await else {
        return;
    };
    let Ok(old) = std::env::var("KIROKU_MASTER_KEY") else {
        return;
    };
    history(&app).await;
    // A fifth person, erased; then, as a crash between the erasure's event and the key's
    // destruction would leave it, their key is back in the table.
    let erased = app.register("E001", "総務課", 2).await;
    app.sql("CREATE TABLE saved_keys AS SELECT * FROM personal_keys")
        .await
        .expect("save");
    let reply = app
        .post(
            &app.hr,
            &format!("/staff/{erased}/erasure"),
            &json!({"reason": "本人の申出"}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
    let restored = app
        .sql(&format!(
            "UPDATE personal_keys SET erased_at = NULL, key = \
             (SELECT key FROM saved_keys WHERE staff_id = '{erased}') WHERE staff_id = '{erased}'"
        ))
        .await
        .expect("restore the key");
    assert_eq!(restored, 1);
    let new = "cd".repeat(32);
    let rewrap = |master: &str, previous: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kiroku"));
        command
            .env("DATABASE_URL", &app.database_url)
            .env("KIROKU_MASTER_KEY", master)
            .env_remove("KIROKU_MASTER_KEY_PREVIOUS")
            .args(["keys", "rewrap"]);
        if let Some(previous) = previous {
            command.env("KIROKU_MASTER_KEY_PREVIOUS", previous);
        }
        command.output().expect("run kiroku")
    };

    let rotated = rewrap(&new, Some(&old));
    assert!(rotated.status.success(), "{}", text(&rotated.stderr));
    let out = text(&rotated.stdout);
    assert!(
        out.starts_with("5 personal keys open")
            && out.contains("5 wrapped again")
            && out.contains("the keys of 1 erased people are destroyed"),
        "{out}"
    );
    let destroyed = app
        .sql(&format!(
            "UPDATE personal_keys SET staff_id = staff_id \
             WHERE staff_id = '{erased}' AND key IS NULL AND erased_at IS NOT NULL"
        ))
        .await
        .expect("look");
    assert_eq!(destroyed, 1, "the erased person's key is destroyed again");
    let again = rewrap(&new, None);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let out = text(&again.stdout);
    assert!(
        out.starts_with("4 personal keys open")
            && out.contains("0 wrapped again")
            && out.contains("the keys of 1 erased people are destroyed"),
        "{out}"
    );
    // A rotation whose new key file is missing is refused, not given a random new key.
    let missing = dir_missing_key(&app, &old);
    assert_eq!(missing.status.code(), Some(2));
    let message = text(&missing.stderr);
    assert!(message.contains("新しいマスター鍵のファイル"), "{message}");

    let stale = rewrap(&old, None);
    assert_eq!(stale.status.code(), Some(1));
    let message = text(&stale.stderr);
    assert!(message.contains("KIROKU_MASTER_KEY_PREVIOUS"), "{message}");
}

/// `kiroku keys rewrap` with the old key as the previous and no new key: neither
/// `KIROKU_MASTER_KEY` nor an existing key file.
fn dir_missing_key(app: &TestApp, old: &str) -> Output {
    let dir = tempfile::tempdir().expect("dir");
    Command::new(env!("CARGO_BIN_EXE_kiroku"))
        .env("DATABASE_URL", &app.database_url)
        .env_remove("KIROKU_MASTER_KEY")
        .env("KIROKU_MASTER_KEY_FILE", dir.path().join("new-master.key"))
        .env("KIROKU_MASTER_KEY_PREVIOUS", old)
        .args(["keys", "rewrap"])
        .output()
        .expect("run kiroku")
}
