//! Signed digests of the hash chain: someone holding an old digest detects a rewritten past
//! (even one re-chained from the change on), a truncated tail and an emptied table, and
//! `kiroku verify` itself only reads.

mod support;

use std::path::Path;
use std::process::Command;
use support::{Db, TestApp};

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

fn digest(app: &TestApp, dir: &Path, name: &str) -> String {
    let file = dir.join(name);
    let key = dir.join("digest.key");
    let (code, out) = kiroku(
        app,
        &[
            "log",
            "digest",
            "-o",
            &file.display().to_string(),
            "--key",
            &key.display().to_string(),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("公開鍵"), "{out}");
    file.display().to_string()
}

/// Statements that only someone able to switch the log's guards off can run.
fn unguarded(db: Db, statements: &str) -> String {
    match db {
        Db::Sqlite => format!(
            "DROP TRIGGER IF EXISTS events_refuse_update; DROP TRIGGER IF EXISTS events_refuse_delete; \
             DROP TRIGGER IF EXISTS event_chain_refuse_update; DROP TRIGGER IF EXISTS event_chain_refuse_delete; \
             {statements}"
        ),
        Db::Postgres => format!(
            "ALTER TABLE events DISABLE TRIGGER events_refuse_change; \
             ALTER TABLE event_chain DISABLE TRIGGER event_chain_refuse_change; \
             {statements} \
             ALTER TABLE events ENABLE TRIGGER events_refuse_change; \
             ALTER TABLE event_chain ENABLE TRIGGER event_chain_refuse_change;"
        ),
    }
}

both_backends!(
    a_signed_digest_detects_a_rewritten_past_a_truncated_tail_and_an_emptied_log,
    |app: TestApp| async move {
        let dir = tempfile::tempdir().expect("dir");
        for i in 0..4 {
            app.register(&format!("D00{i}"), "総務課", 3).await;
        }
        let early = digest(&app, dir.path(), "early.json");
        let (code, out) = kiroku(&app, &["verify", "--digest", &early]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("the log extends the digest"), "{out}");

        // The log grows: it still extends the early digest.
        app.register("D004", "総務課", 3).await;
        app.register("D005", "総務課", 3).await;
        let late = digest(&app, dir.path(), "late.json");
        assert_eq!(kiroku(&app, &["verify", "--digest", &early]).0, 0);

        // A digest edited by hand fails its signature.
        let edited = dir.path().join("edited.json");
        let text = std::fs::read_to_string(&early).expect("read");
        let position: i64 = serde_json::from_str::<serde_json::Value>(&text).expect("json")
            ["position"]
            .as_i64()
            .expect("position");
        std::fs::write(
            &edited,
            text.replace(
                &format!("\"position\": {position}"),
                &format!("\"position\": {}", position - 1),
            ),
        )
        .expect("write");
        let (code, out) = kiroku(&app, &["verify", "--digest", &edited.display().to_string()]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("署名が合いません"), "{out}");

        // Rewrite the second event, drop the chain from there and let a server start re-chain
        // it: the plain check passes, the digest does not.
        let events: Vec<i64> = app.get(&app.hr, "/events").await.body["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|e| e["position"].as_i64())
            .collect();
        let second = events[1];
        let rewrite = match app.db {
            Db::Sqlite => format!(
                "UPDATE events SET payload = replace(payload, '\"grade\":3', '\"grade\":8') WHERE position = {second}; \
                 DELETE FROM event_chain WHERE position >= {second};"
            ),
            Db::Postgres => format!(
                "UPDATE events SET payload = jsonb_set(payload, '{{StaffRegistered,grade}}', '8') WHERE position = {second}; \
                 DELETE FROM event_chain WHERE position >= {second};"
            ),
        };
        app.sql(&unguarded(app.db, &rewrite))
            .await
            .expect("rewrite");
        app.ledger
            .sealer
            .seal_all()
            .await
            .expect("re-chain, as a server start would");
        let (code, out) = kiroku(&app, &["verify"]);
        assert_eq!(code, 0, "the re-chained log looks intact on its own: {out}");
        for held in [&early, &late] {
            let (code, out) = kiroku(&app, &["verify", "--digest", held]);
            assert_eq!(code, 1, "{out}");
            assert!(out.contains("ハッシュがダイジェストと異なります"), "{out}");
        }

        // A truncated tail and an emptied log: the digest's position is gone.
        let last = *events.last().expect("events");
        let truncate = format!(
            "DELETE FROM event_chain WHERE position >= {last}; DELETE FROM events WHERE position >= {last};"
        );
        app.sql(&unguarded(app.db, &truncate))
            .await
            .expect("truncate");
        let (code, out) = kiroku(&app, &["verify", "--digest", &late]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("台帳にありません"), "{out}");
        let empty = "DELETE FROM event_chain; DELETE FROM events;";
        app.sql(&unguarded(app.db, empty)).await.expect("empty");
        let (code, out) = kiroku(&app, &["verify"]);
        assert_eq!(code, 0, "an empty log is consistent on its own: {out}");
        let (code, out) = kiroku(&app, &["verify", "--digest", &early]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("台帳にありません"), "{out}");
    }
);
