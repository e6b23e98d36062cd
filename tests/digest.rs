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

/// What an attacker with database access and this source code can do: link every event
/// after the chain head as if Kiroku had.
async fn rechain_as_an_attacker(app: &TestApp) {
    use kiroku::storage::{chain, log};
    let (after, mut hash) = chain::chain_head(&app.ledger.backend).await.expect("head");
    let events = log::read_after(&app.ledger.backend, after, 10_000)
        .await
        .expect("read");
    let mut statements = String::new();
    for event in &events {
        hash = chain::link(&hash, event);
        statements.push_str(&format!(
            "INSERT INTO event_chain (position, hash) VALUES ({}, '{hash}');",
            event.position
        ));
    }
    app.sql(&statements).await.expect("re-chain");
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
                "UPDATE events SET payload = jsonb_set(payload::jsonb, '{{StaffRegistered,grade}}', '8') WHERE position = {second}; \
                 DELETE FROM event_chain WHERE position >= {second};"
            ),
        };
        app.sql(&unguarded(app.db, &rewrite))
            .await
            .expect("rewrite");
        // Neither a server start nor `verify` covers this up: each commit wrote its own links,
        // so events without them are reported, at the first one.
        let restarted = kiroku::ledger::Ledger::open(&app.database_url)
            .await
            .expect("a server start");
        restarted.backend.close().await;
        let (code, out) = kiroku(&app, &["verify"]);
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains(&format!("TAMPERED at position {second}"))
                && out.contains("no chain entry"),
            "{out}"
        );

        // Only someone who recomputes the chain from there on can make the log look whole.
        rechain_as_an_attacker(&app).await;
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

async fn sheet_text(app: &TestApp, format: &str) -> String {
    let response = app
        .client
        .get(app.url(&format!("/plan-items/2-1-2/sheet?format={format}")))
        .bearer_auth(&app.auditor)
        .send()
        .await
        .expect("sheet");
    assert_eq!(response.status(), 200);
    response.text().await.expect("body")
}

both_backends!(
    a_published_sheet_carries_the_ledger_head_and_anyone_holding_it_can_check_the_log,
    |app: TestApp| async move {
        let created = app
            .post(&app.hr, "/plan-items", &support::plan_item_body())
            .await;
        assert_eq!(created.status, 201, "{:?}", created.body);
        for i in 0..3 {
            app.register(&format!("H00{i}"), "総務課", 3).await;
        }
        let evaluated = app
            .post(
                &app.hr,
                "/plan-items/2-1-2/self-evaluations",
                &serde_json::json!({"fiscal_year": 2023, "grade": "A", "reason": "計画どおり", "next_step": "continue"}),
            )
            .await;
        assert_eq!(evaluated.status, 200, "{:?}", evaluated.body);
        let head_before = app.event_count().await;
        let published = app
            .post(
                &app.hr,
                "/plan-items/2-1-2/publications",
                &serde_json::json!({"fiscal_year": 2023}),
            )
            .await;
        assert_eq!(published.status, 201, "{:?}", published.body);

        // Every format shows the head the published values were drawn from.
        let sheet: serde_json::Value =
            serde_json::from_str(&sheet_text(&app, "json").await).expect("json");
        let year = sheet["years"]
            .as_array()
            .expect("years")
            .iter()
            .find(|y| y["fiscal_year"] == 2023)
            .expect("FY2023");
        let position = year["ledger_head"]["position"].as_i64().expect("position");
        let hash = year["ledger_head"]["hash"]
            .as_str()
            .expect("hash")
            .to_string();
        let events: Vec<i64> = app.get(&app.hr, "/events").await.body["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|e| e["position"].as_i64())
            .collect();
        assert_eq!(events.len() as i64, head_before + 1);
        assert_eq!(
            position,
            events[events.len() - 2],
            "the head is the last event before the publication"
        );
        for format in ["csv", "html"] {
            let text = sheet_text(&app, format).await;
            assert!(text.contains("公表時の台帳ダイジェスト"), "{format}");
            assert!(text.contains(&hash), "{format}: no {hash}");
        }
        assert!(sheet.to_string().contains(&hash));

        // Whoever holds the sheet checks the log still extends it; the log grows, still ok.
        let head = format!("{position}:{hash}");
        let (code, out) = kiroku(&app, &["verify", "--head", &head]);
        assert_eq!(code, 0, "{out}");
        app.register("H009", "総務課", 3).await;
        assert_eq!(kiroku(&app, &["verify", "--head", &head]).0, 0);

        // A past rewritten and re-chained by an attacker no longer holds the published head.
        let first = events[0];
        let rewrite = match app.db {
            Db::Sqlite => format!(
                "UPDATE events SET metadata = replace(metadata, '人事課 テスト', '監査委員') WHERE position = {first}; \
                 DELETE FROM event_chain WHERE position >= {first};"
            ),
            Db::Postgres => format!(
                "UPDATE events SET metadata = jsonb_set(metadata::jsonb, '{{actor}}', '\"監査委員\"') WHERE position = {first}; \
                 DELETE FROM event_chain WHERE position >= {first};"
            ),
        };
        app.sql(&unguarded(app.db, &rewrite))
            .await
            .expect("rewrite");
        rechain_as_an_attacker(&app).await;
        assert_eq!(
            kiroku(&app, &["verify"]).0,
            0,
            "re-chained: whole on its own"
        );
        let (code, out) = kiroku(&app, &["verify", "--head", &head]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("ハッシュがダイジェストと異なります"), "{out}");
    }
);
