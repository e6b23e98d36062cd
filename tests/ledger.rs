//! The log itself: append-only in the database, tamper-evident, ordered by commit, safe under
//! concurrent writers and repeated requests.

// The tests begin transactions of their own, which nothing drops midway (see clippy.toml).
#![allow(clippy::disallowed_methods)]

mod support;

use kiroku::storage::tokens::Role;
use kiroku::storage::Backend;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::process::Command;
use support::{Db, TestApp};

fn verify(app: &TestApp) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kiroku"))
        .arg("verify")
        .env("DATABASE_URL", &app.database_url)
        .output()
        .expect("run kiroku verify");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).to_string(),
    )
}

both_backends!(
    updates_and_deletes_on_the_log_are_refused,
    |app: TestApp| async move {
        app.register("A001", "総務課", 3).await;
        app.register("A002", "総務課", 3).await;
        let before = app.event_count().await;

        let update = app.sql("UPDATE events SET event_type = 'Forged'").await;
        assert!(update.is_err(), "UPDATE must fail: {update:?}");
        let delete = app.sql("DELETE FROM events").await;
        assert!(delete.is_err(), "DELETE must fail: {delete:?}");
        let chain = app.sql("DELETE FROM event_chain").await;
        assert!(chain.is_err(), "DELETE on the chain must fail: {chain:?}");

        if let Backend::Postgres(pool) = &app.ledger.backend {
            // The database assigns position and recorded_at (migration 0008): a row that
            // brings its own is refused, and a setting pushed forward by hand is overwritten.
            let forged = |column: &str| {
                format!(
                    "INSERT INTO events ({column}aggregate_type, aggregate_id, sequence, \
                     event_type, event_version, payload, metadata) VALUES ({}'Staff', \
                     'forged', 1, 'Forged', '1', '{{}}', '{{}}') RETURNING recorded_at",
                    if column.is_empty() {
                        ""
                    } else {
                        "99999999999999, "
                    }
                )
            };
            for column in ["position, ", "recorded_at, "] {
                let mut tx = pool.begin().await.expect("begin");
                let _ = sqlx::query("SELECT nextval('events_position_seq')")
                    .execute(&mut *tx)
                    .await;
                let insert = sqlx::query(&forged(column)).execute(&mut *tx).await;
                assert!(insert.is_err(), "{column}must be refused: {insert:?}");
            }
            let mut tx = pool.begin().await.expect("begin");
            sqlx::query("SET LOCAL kiroku.recorded_at = '99999999999999'")
                .execute(&mut *tx)
                .await
                .expect("set");
            let recorded: i64 = sqlx::query_scalar(&forged(""))
                .fetch_one(&mut *tx)
                .await
                .expect("insert with the defaults");
            let now = chrono::Utc::now().timestamp_millis();
            assert!(
                recorded <= now + 1_000,
                "recorded_at {recorded} is the clock's, not the setting's ({now})"
            );
            tx.rollback().await.expect("rollback");
        }

        assert_eq!(app.event_count().await, before);
    }
);

both_backends!(
    verify_names_the_first_tampered_position,
    |app: TestApp| async move {
        app.register("A001", "総務課", 3).await;
        app.register("A002", "総務課", 3).await;
        app.register("A003", "総務課", 3).await;
        let (code, out) = verify(&app);
        assert_eq!(code, 0, "intact log: {out}");
        assert!(out.contains("3 events"), "{out}");

        // Only an attacker with the power to disable the guard can get this far.
        let events: Vec<Value> = app.get(&app.hr, "/events").await.body["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let second = events[1]["position"].as_i64().expect("position");
        let tamper = match app.db {
        Db::Sqlite => format!(
            "DROP TRIGGER events_refuse_update; \
             UPDATE events SET payload = replace(payload, '\"grade\":3', '\"grade\":8') WHERE position = {second};"
        ),
        Db::Postgres => format!(
            "ALTER TABLE events DISABLE TRIGGER events_refuse_change; \
             UPDATE events SET payload = jsonb_set(payload::jsonb, '{{StaffRegistered,grade}}', '8') WHERE position = {second}; \
             ALTER TABLE events ENABLE TRIGGER events_refuse_change;"
        ),
    };
        app.sql(&tamper).await.expect("tamper");

        let (code, out) = verify(&app);
        assert_eq!(code, 1, "tampered log: {out}");
        assert!(out.contains(&format!("position {second}")), "{out}");
    }
);

both_backends!(
    readers_tailing_the_log_see_every_event_once_in_order,
    |app: TestApp| async move {
        // 16 writers, half of them through a second server on the same database: each
        // server groups its commands into shared transactions, and the database orders the
        // two servers' transactions.
        let writers = 16;
        let per_writer = 12;
        let (second, _stop_second) = support::second_server(&app.database_url).await;
        let mut tasks = Vec::new();
        for w in 0..writers {
            let client = app.client.clone();
            let url = if w % 2 == 0 {
                app.url("/staff")
            } else {
                format!("{second}/staff")
            };
            let token = app.hr.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per_writer {
                    let body = support::staff_body(&format!("W{w}-{i}"), "総務課", 2, "2020-04-01");
                    let response = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                        .expect("post");
                    assert_eq!(response.status().as_u16(), 201);
                }
            }));
        }
        // Tail the log while the writers run.
        let expected = (writers * per_writer) as usize;
        let mut seen = Vec::<(i64, String, String)>::new();
        let mut after = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while seen.len() < expected && std::time::Instant::now() < deadline {
            let page = app
                .get(&app.auditor, &format!("/events?after={after}&limit=7"))
                .await;
            assert_eq!(page.status.as_u16(), 200);
            for event in page.body["events"].as_array().cloned().unwrap_or_default() {
                seen.push((
                    event["position"].as_i64().expect("position"),
                    event["recorded_at"]
                        .as_str()
                        .expect("recorded_at")
                        .to_string(),
                    event["aggregate_id"].as_str().expect("id").to_string(),
                ));
            }
            after = page.body["next"].as_i64().expect("next");
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        for task in tasks {
            task.await.expect("writer");
        }
        assert_eq!(seen.len(), expected, "the reader saw every committed event");
        let ids: HashSet<&String> = seen.iter().map(|(_, _, id)| id).collect();
        assert_eq!(ids.len(), expected, "no event twice");
        for pair in seen.windows(2) {
            assert!(
                pair[0].0 < pair[1].0,
                "positions strictly increase: {pair:?}"
            );
            assert!(
                pair[0].1 <= pair[1].1,
                "recorded_at never decreases: {pair:?}"
            );
        }
        assert_eq!(app.event_count().await, expected as i64);
    }
);

both_backends!(
    concurrent_enrolments_fill_the_session_then_the_waitlist,
    |app: TestApp| async move {
        let session = app.schedule(10).await;
        let mut staff = Vec::new();
        for i in 0..20 {
            staff.push(app.register(&format!("E{i:03}"), "総務課", 2).await);
        }
        // Half the requests go through a second server on the same database, so that the two
        // really race in the database and the optimistic-lock retries are exercised.
        let (second, _stop) = support::second_server(&app.database_url).await;
        let mut tasks = Vec::new();
        for (n, id) in staff.iter().enumerate() {
            let client = app.client.clone();
            let base = if n % 2 == 0 {
                app.base.clone()
            } else {
                second.clone()
            };
            let url = format!("{base}/sessions/{session}/enrolments");
            let token = app.hr.clone();
            let id = *id;
            tasks.push(tokio::spawn(async move {
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"staff_id": id}))
                    .send()
                    .await
                    .expect("enrol");
                assert_eq!(response.status().as_u16(), 201);
                let body: Value = response.json().await.expect("json");
                (id, body["status"].as_str().expect("status").to_string())
            }));
        }
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("task"));
        }
        let enrolled = results.iter().filter(|(_, s)| s == "enrolled").count();
        let waitlisted = results.iter().filter(|(_, s)| s == "waitlisted").count();
        assert_eq!((enrolled, waitlisted), (10, 10));

        let roster = app.get(&app.hr, &format!("/sessions/{session}")).await.body;
        assert_eq!(roster["enrolled"].as_array().map(Vec::len), Some(10));
        let first_waiting = roster["waitlisted"][0]
            .as_str()
            .expect("waitlisted")
            .to_string();
        let leaving = roster["enrolled"][0]
            .as_str()
            .expect("enrolled")
            .to_string();

        let before = app.event_count().await;
        let cancel = app
            .post(
                &app.hr,
                &format!("/sessions/{session}/enrolments/{leaving}/cancellation"),
                &json!({"reason": "業務都合"}),
            )
            .await;
        assert_eq!(cancel.status.as_u16(), 200, "{:?}", cancel.body);
        assert_eq!(
            app.event_count().await,
            before + 2,
            "cancellation and promotion"
        );

        let roster = app.get(&app.hr, &format!("/sessions/{session}")).await.body;
        let enrolled: Vec<&str> = roster["enrolled"]
            .as_array()
            .expect("enrolled")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(enrolled.len(), 10);
        assert!(
            enrolled.contains(&first_waiting.as_str()),
            "the first waitlisted was promoted"
        );
        assert!(!enrolled.contains(&leaving.as_str()));
        assert_eq!(roster["waitlisted"].as_array().map(Vec::len), Some(9));
    }
);

both_backends!(
    a_repeated_idempotency_key_returns_the_first_response,
    |app: TestApp| async move {
        let body = support::staff_body("I001", "総務課", 2, "2020-04-01");
        let first = app.post_with_key(&app.hr, "/staff", "key-1", &body).await;
        assert_eq!(first.status.as_u16(), 201);
        let count = app.event_count().await;

        let again = app.post_with_key(&app.hr, "/staff", "key-1", &body).await;
        assert_eq!(again.status.as_u16(), 201);
        assert_eq!(again.body, first.body, "the first response, byte for byte");
        assert_eq!(app.event_count().await, count, "nothing appended");

        let other = support::staff_body("I002", "総務課", 2, "2020-04-01");
        let reused = app.post_with_key(&app.hr, "/staff", "key-1", &other).await;
        reused.assert_problem(422, "idempotency_key_reused");
        assert_eq!(app.event_count().await, count);

        // A key is bound to the token itself: another token of the same name runs its own.
        let incident =
            json!({"occurred_on": "2024-05-01", "department": "総務課", "summary": "誤送付"});
        let twin = app.token(Role::HrAdmin, "人事課 テスト", None).await;
        let mine = app
            .post_with_key(&app.hr, "/compliance-incidents", "key-2", &incident)
            .await;
        let theirs = app
            .post_with_key(&twin, "/compliance-incidents", "key-2", &incident)
            .await;
        assert_eq!(mine.status.as_u16(), 201);
        assert_eq!(theirs.status.as_u16(), 201);
        assert_ne!(
            mine.body["id"], theirs.body["id"],
            "the twin got the first token's response"
        );

        // A key that is not visible ASCII is refused, not ignored.
        let count = app.event_count().await;
        let response = app
            .client
            .post(app.url("/compliance-incidents"))
            .bearer_auth(&app.hr)
            .header("Idempotency-Key", "鍵".as_bytes())
            .json(&incident)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status().as_u16(), 400);
        let spaced = app
            .post_with_key(&app.hr, "/compliance-incidents", "a key", &incident)
            .await;
        spaced.assert_problem(400, "invalid_idempotency_key");
        assert_eq!(app.event_count().await, count);
    }
);

/// Sets an idempotency key back to "in progress" since `age_ms` ago, as a crash leaves it.
async fn abandon(app: &TestApp, key: &str, request_id: Option<&str>, age_ms: i64) {
    let actor = kiroku::storage::tokens::digest(&app.hr);
    let since = chrono::Utc::now().timestamp_millis() - age_ms;
    kiroku::with_pool!(&app.ledger.backend, pool => {
        let sql = match request_id {
            Some(_) => "UPDATE idempotency_keys SET status = NULL, body = NULL, created_at = $1, request_id = $4 WHERE actor = $2 AND key = $3",
            None => "UPDATE idempotency_keys SET status = NULL, body = NULL, created_at = $1 WHERE actor = $2 AND key = $3 AND $4 IS NULL",
        };
        let updated = sqlx::query(sql)
            .bind(since)
            .bind(&actor)
            .bind(key)
            .bind(request_id)
            .execute(pool)
            .await
            .expect("update the key")
            .rows_affected();
        assert_eq!(updated, 1);
    });
}

both_backends!(
    a_key_left_in_progress_by_a_crash_ends_in_exactly_one_outcome,
    |app: TestApp| async move {
        let incident =
            json!({"occurred_on": "2024-05-01", "department": "総務課", "summary": "誤送付"});
        // The command committed, then the server died before storing the response.
        let first = app
            .post_with_key(&app.hr, "/compliance-incidents", "crash-1", &incident)
            .await;
        assert_eq!(first.status.as_u16(), 201);
        let count = app.event_count().await;
        abandon(&app, "crash-1", None, 10_000).await;
        app.post_with_key(&app.hr, "/compliance-incidents", "crash-1", &incident)
            .await
            .assert_problem(409, "idempotency_in_progress");
        abandon(&app, "crash-1", None, 120_000).await;
        let recovered = app
            .post_with_key(&app.hr, "/compliance-incidents", "crash-1", &incident)
            .await;
        assert_eq!(recovered.status.as_u16(), 200, "{:?}", recovered.body);
        assert_eq!(recovered.body["id"], first.body["id"]);
        assert_eq!(recovered.body["recovered"], json!(true));
        assert_eq!(
            app.event_count().await,
            count,
            "the command did not run twice"
        );
        let again = app
            .post_with_key(&app.hr, "/compliance-incidents", "crash-1", &incident)
            .await;
        assert_eq!(
            again.body, recovered.body,
            "the recovered outcome is now the key's response"
        );

        // The server died before the command committed: the retry runs it, once.
        let second = app
            .post_with_key(&app.hr, "/compliance-incidents", "crash-2", &incident)
            .await;
        assert_eq!(second.status.as_u16(), 201);
        let count = app.event_count().await;
        // As if the first attempt ran under a request id that never reached the log.
        abandon(&app, "crash-2", Some("never-committed"), 120_000).await;
        let rerun = app
            .post_with_key(&app.hr, "/compliance-incidents", "crash-2", &incident)
            .await;
        assert_eq!(rerun.status.as_u16(), 201, "{:?}", rerun.body);
        assert_eq!(app.event_count().await, count + 1);
        let replayed = app
            .post_with_key(&app.hr, "/compliance-incidents", "crash-2", &incident)
            .await;
        assert_eq!(replayed.body, rerun.body);
        assert_eq!(app.event_count().await, count + 1);

        // A key older than a day is forgotten: the same key starts afresh.
        abandon(&app, "crash-2", None, 25 * 60 * 60 * 1000).await;
        let fresh = app
            .post_with_key(&app.hr, "/compliance-incidents", "crash-2", &incident)
            .await;
        assert_eq!(fresh.status.as_u16(), 201);
        assert_eq!(app.event_count().await, count + 2);
    }
);

both_backends!(
    a_session_past_its_snapshot_decides_on_the_roster_it_really_has,
    |app: TestApp| async move {
        // 130 places, 130 people: the session's 100th event writes its first snapshot. Every
        // one of the 130 is enrolled, the 131st waits. (cqrs-es 0.5's snapshot store applied
        // the 100th event twice, so the session filled one person early.)
        let session = app.schedule(130).await;
        for i in 0..131 {
            let staff = app.register(&format!("S{i:03}"), "総務課", 2).await;
            let reply = app
                .post(
                    &app.hr,
                    &format!("/sessions/{session}/enrolments"),
                    &json!({"staff_id": staff}),
                )
                .await;
            assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
            let expected = if i < 130 { "enrolled" } else { "waitlisted" };
            assert_eq!(reply.body["status"], expected, "enrolment {i}");
        }
        let roster = app.get(&app.hr, &format!("/sessions/{session}")).await.body;
        assert_eq!(roster["enrolled"].as_array().map(Vec::len), Some(130));
        assert_eq!(roster["waitlisted"].as_array().map(Vec::len), Some(1));
        // A server that loads the session from the database (its snapshot and the events
        // after it) decides the same way.
        let (second, _stop) = support::second_server(&app.database_url).await;
        let late = app.register("S999", "総務課", 2).await;
        let response = app
            .client
            .post(format!("{second}/sessions/{session}/enrolments"))
            .bearer_auth(&app.hr)
            .json(&json!({"staff_id": late}))
            .send()
            .await
            .expect("enrol");
        assert_eq!(response.status().as_u16(), 201);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["status"], "waitlisted");
    }
);

both_backends!(
    a_remembered_token_revoked_in_the_database_records_nothing,
    |app: TestApp| async move {
        // On PostgreSQL a command of a token this server has read before is decided before
        // the token is read again, and its commit confirms the token: a revocation written
        // straight into the database in between still stops it, with nothing recorded.
        let token = app.token(Role::HrAdmin, "人事課 臨時", None).await;
        for no in ["R001", "R002"] {
            let body = support::staff_body(no, "総務課", 2, "2020-04-01");
            let reply = app.post(&token, "/staff", &body).await;
            assert_eq!(reply.status, 201, "{:?}", reply.body);
        }
        let before = app.event_count().await;
        let digest = kiroku::storage::tokens::digest(&token);
        let revoked = app
            .sql(&format!(
                "UPDATE api_tokens SET revoked_at = 1 WHERE token_hash = '{digest}'"
            ))
            .await
            .expect("revoke");
        assert_eq!(revoked, 1);
        for no in ["R003", "R004"] {
            let body = support::staff_body(no, "総務課", 2, "2020-04-01");
            app.post(&token, "/staff", &body)
                .await
                .assert_problem(401, "unauthorized");
        }
        assert_eq!(app.event_count().await, before, "nothing recorded");
        // Every other token goes on as before.
        let body = support::staff_body("R005", "総務課", 2, "2020-04-01");
        assert_eq!(app.post(&app.hr, "/staff", &body).await.status, 201);
    }
);

both_backends!(
    a_command_finds_what_another_server_recorded_just_before,
    |app: TestApp| async move {
        // This server has read the token and appended, so on PostgreSQL its next command is
        // decided at once on what it keeps. What another server recorded just before is still
        // seen: a staff member registered there is found (the refusal decided on the state
        // kept here is decided again, the long way), and a manager who retired there can no
        // longer act here.
        app.register("P001", "総務課", 2).await;
        let (second, _stop) = support::second_server(&app.database_url).await;
        let post_there = |path: &str, body: Value| {
            let request = app
                .client
                .post(format!("{second}{path}"))
                .bearer_auth(&app.hr)
                .json(&body);
            async move {
                let response = request.send().await.expect("post there");
                let status = response.status().as_u16();
                (
                    status,
                    response.json::<Value>().await.unwrap_or(Value::Null),
                )
            }
        };
        for round in 0..3 {
            let no = format!("P1{round:02}");
            let (status, body) = post_there(
                "/staff",
                support::staff_body(&no, "総務課", 2, "2020-04-01"),
            )
            .await;
            assert_eq!(status, 201, "{body}");
            let id = body["id"].as_str().expect("id").to_string();
            let promoted = app
                .post(
                    &app.hr,
                    &format!("/staff/{id}/grade-changes"),
                    &json!({"grade": 3, "effective_on": "2024-04-01", "reason": "promotion"}),
                )
                .await;
            assert_eq!(promoted.status, 200, "round {round}: {:?}", promoted.body);
        }

        let manager_id = app.register("P200", "総務課", 4).await;
        let manager = app.token(Role::Manager, "総務課長", Some(manager_id)).await;
        let staff = app.register("P201", "総務課", 2).await;
        let interview = json!({
            "held_on": "2024-06-01",
            "kind": "one_on_one",
            "interviewer_id": manager_id,
            "note": "面談"
        });
        let path = format!("/staff/{staff}/interviews");
        let first = app.post(&manager, &path, &interview).await;
        assert_eq!(first.status, 201, "{:?}", first.body);
        let (status, body) = post_there(
            &format!("/staff/{manager_id}/separations"),
            json!({"effective_on": "2024-03-31", "reason": "retirement"}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let before = app.event_count().await;
        app.post(&manager, &path, &interview)
            .await
            .assert_problem(401, "unauthorized");
        assert_eq!(app.event_count().await, before, "nothing recorded");
    }
);

both_backends!(
    a_command_sees_what_another_server_wrote_to_its_aggregate,
    |app: TestApp| async move {
        // This server keeps the session as its last command left it, and trusts it without
        // asking the database only while no one else has appended. A refusal decided on a
        // state another server has moved on from would be wrong and would never conflict.
        let session = app.schedule(5).await;
        let staff = app.register("C001", "総務課", 2).await;
        let (second, _stop) = support::second_server(&app.database_url).await;
        let enrol = |base: String| {
            let client = app.client.clone();
            let token = app.hr.clone();
            async move {
                client
                    .post(format!("{base}/sessions/{session}/enrolments"))
                    .bearer_auth(&token)
                    .json(&json!({"staff_id": staff}))
                    .send()
                    .await
                    .expect("enrol")
                    .status()
                    .as_u16()
            }
        };
        let cancel = |base: String| {
            let client = app.client.clone();
            let token = app.hr.clone();
            async move {
                client
                    .post(format!(
                        "{base}/sessions/{session}/enrolments/{staff}/cancellation"
                    ))
                    .bearer_auth(&token)
                    .json(&json!({"reason": "都合により"}))
                    .send()
                    .await
                    .expect("cancel")
                    .status()
                    .as_u16()
            }
        };
        assert_eq!(enrol(app.base.clone()).await, 201, "enrolled here");
        assert_eq!(cancel(second.clone()).await, 200, "cancelled there");
        // The last write to the session is the other server's: enrolling again is allowed.
        assert_eq!(enrol(app.base.clone()).await, 201, "enrolled here again");
        assert_eq!(cancel(second.clone()).await, 200, "cancelled there again");
        // This server appends elsewhere after the other server's write: its own span of the
        // log starts again after it, and the session is still read from the database.
        app.register("C003", "総務課", 2).await;
        assert_eq!(enrol(app.base.clone()).await, 201, "enrolled a third time");
        let roster = app.get(&app.hr, &format!("/sessions/{session}")).await.body;
        assert_eq!(roster["enrolled"], json!([staff.to_string()]));

        // A creation is decided on the empty state without reading it; the other server's
        // plan item is found when the first event's key is taken, and refused on the retry.
        let define = |base: String, body: Value| {
            let client = app.client.clone();
            let token = app.hr.clone();
            async move {
                let response = client
                    .post(format!("{base}/plan-items"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .expect("define");
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                (status, body["code"].as_str().unwrap_or("").to_string())
            }
        };
        let item = support::plan_item_body();
        assert_eq!(
            define(second.clone(), item.clone()).await.0,
            201,
            "defined there"
        );
        // Its own input is wrong too: the empty state would refuse the period, but the item
        // exists, and that is what a read says first.
        let mut backwards = item.clone();
        backwards["from_fiscal_year"] = json!(2025);
        backwards["to_fiscal_year"] = json!(2021);
        assert_eq!(
            define(app.base.clone(), backwards).await,
            (409, "plan_item_exists".to_string()),
            "refused here, as a read decides"
        );
        assert_eq!(
            define(app.base.clone(), item).await,
            (409, "plan_item_exists".to_string()),
            "refused here"
        );
    }
);

both_backends!(
    a_command_dropped_while_it_commits_leaves_no_state_to_trust,
    |app: TestApp| async move {
        use kiroku::application::{Actor, Command, Service};
        use kiroku::storage::tokens::Principal;
        use kiroku_domain::session::SessionCommand;
        use kiroku_domain::values::Text;
        use sqlx::Connection;
        // A client that hangs up drops its command while the batch commits: the event is
        // written, but the state the command left is never kept. The next command must not
        // trust the state kept from before it, or it would refuse on a roster that is gone.
        let session = app.schedule(5).await;
        let staff = app.register("D001", "総務課", 2).await;
        let path = format!("/sessions/{session}/enrolments");
        let body = json!({"staff_id": staff});
        let enrol = || app.post(&app.hr, &path, &body);
        assert_eq!(enrol().await.status.as_u16(), 201, "enrolled");
        let before = app.event_count().await;

        // Hold the appender off: SQLite's write lock, PostgreSQL's position lock.
        let sqlite = app.database_url.starts_with("sqlite");
        let mut sqlite_hold = None;
        let mut postgres_hold = None;
        if sqlite {
            let mut connection = sqlx::SqliteConnection::connect(&app.database_url)
                .await
                .expect("connect");
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut connection)
                .await
                .expect("write lock");
            sqlite_hold = Some(connection);
        } else {
            let mut connection = sqlx::PgConnection::connect(&app.database_url)
                .await
                .expect("connect");
            sqlx::query("SELECT pg_advisory_lock(1802072687)")
                .execute(&mut connection)
                .await
                .expect("position lock");
            postgres_hold = Some(connection);
        }
        let ledger = app.ledger.clone();
        let cancelling = tokio::spawn(async move {
            let principal = Principal {
                name: "人事課".into(),
                role: Role::HrAdmin,
                staff_id: None,
            };
            let actor = Actor {
                principal: &principal,
                request_id: "hung-up",
                as_of: None,
                unconfirmed: None,
            };
            let command = Command::Session {
                session_id: session,
                command: SessionCommand::CancelEnrolment {
                    staff_id: staff,
                    reason: Text::parse("都合により").expect("reason"),
                },
            };
            Service::new(&ledger).execute(&actor, command).await.is_ok()
        });
        // The cancellation is decided and waits for the appender; its caller goes away.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        cancelling.abort();
        assert!(cancelling.await.is_err(), "the command was cut off");
        if let Some(mut connection) = sqlite_hold {
            sqlx::query("COMMIT")
                .execute(&mut connection)
                .await
                .expect("release");
        }
        if let Some(mut connection) = postgres_hold {
            sqlx::query("SELECT pg_advisory_unlock(1802072687)")
                .execute(&mut connection)
                .await
                .expect("release");
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while app.event_count().await == before && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(
            app.event_count().await,
            before + 1,
            "the cancellation was written"
        );

        // Nothing but this process has appended: without the entry distrusted, the enrolment
        // would be decided on the roster from before the cancellation (409 already_enrolled).
        let again = enrol().await;
        assert_eq!(again.status.as_u16(), 201, "{:?}", again.body);
    }
);

both_backends!(
    computed_floats_are_sealed_as_the_log_stores_them,
    |app: TestApp| async move {
        // serde_json (without `float_roundtrip`) reads about one double in ten that it writes
        // back one unit off. A value parsed from a request reads back to itself, but one the
        // server computes need not: the link must cover the JSON as stored, as `verify`
        // reads it, not the value in memory.
        let appender = kiroku::storage::append::Appender::spawn(
            app.ledger.backend.clone(),
            std::sync::Arc::new(|_, _| {}),
        );
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let events: Vec<cqrs_es::persist::SerializedEvent> = (1..=50)
            .map(|sequence| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let value = (seed >> 11) as f64 / (1u64 << 53) as f64 * 100.0;
                cqrs_es::persist::SerializedEvent {
                    aggregate_id: "float-probe".into(),
                    sequence,
                    aggregate_type: "FloatProbe".into(),
                    event_type: "Computed".into(),
                    event_version: "1".into(),
                    payload: json!({"Computed": {"value": value}}),
                    metadata: json!({"actor": "test"}),
                }
            })
            .collect();
        let appended = appender
            .append("FloatProbe", events, None)
            .await
            .expect("append");
        assert_eq!(appended.len(), 50);
        let verdict = kiroku::storage::chain::verify(&app.ledger.backend)
            .await
            .expect("verify");
        assert!(
            matches!(verdict, kiroku::storage::chain::Verdict::Intact { .. }),
            "{verdict:?}"
        );
    }
);

both_backends!(
    a_first_snapshot_replaces_one_this_version_could_not_read,
    |app: TestApp| async move {
        // cqrs-es loads an aggregate whose snapshot it cannot read as if it had none, and
        // then writes snapshot number 1. The table's key includes `last_sequence`, so the
        // unreadable row stayed beside the new one; readers that picked it fell back again
        // and again. The first snapshot now replaces it.
        kiroku::with_pool!(&app.ledger.backend, pool => {
            sqlx::query(
                "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, \
                 current_snapshot, payload) VALUES ('Probe', 'probe-1', 3, 7, '{\"old\": 1}')",
            )
            .execute(pool)
            .await
            .expect("an old snapshot");
        });
        let appender = kiroku::storage::append::Appender::spawn(
            app.ledger.backend.clone(),
            std::sync::Arc::new(|_, _| {}),
        );
        let events: Vec<cqrs_es::persist::SerializedEvent> = (1..=5)
            .map(|sequence| cqrs_es::persist::SerializedEvent {
                aggregate_id: "probe-1".into(),
                sequence,
                aggregate_type: "Probe".into(),
                event_type: "Happened".into(),
                event_version: "1".into(),
                payload: json!({"Happened": {"n": sequence}}),
                metadata: json!({"actor": "test"}),
            })
            .collect();
        appender
            .append(
                "Probe",
                events,
                Some(("probe-1".into(), json!({"count": 5}), 1)),
            )
            .await
            .expect("append");
        let rows: Vec<(i64, i64)> = kiroku::with_pool!(&app.ledger.backend, pool => {
            sqlx::query_as(
                "SELECT last_sequence, current_snapshot FROM snapshots \
                 WHERE aggregate_type = 'Probe' AND aggregate_id = 'probe-1'",
            )
            .fetch_all(pool)
            .await
            .expect("snapshots")
        });
        assert_eq!(rows, vec![(5, 1)]);
    }
);

both_backends!(
    a_batch_writes_every_snapshot_it_carries_or_none,
    |app: TestApp| async move {
        // An import commits one part per session, each with its snapshot due; PostgreSQL
        // writes them together (src/storage/copy.rs). First and later snapshots mix in one
        // batch, an unreadable old row is replaced, and a later snapshot whose predecessor
        // is not the one stored fails the whole batch: no event, no snapshot.
        let appender = kiroku::storage::append::Appender::spawn(
            app.ledger.backend.clone(),
            std::sync::Arc::new(|_, _| {}),
        );
        let events = |id: &str, from: usize, to: usize| -> Vec<cqrs_es::persist::SerializedEvent> {
            (from..=to)
                .map(|sequence| cqrs_es::persist::SerializedEvent {
                    aggregate_id: id.into(),
                    sequence,
                    aggregate_type: "Probe".into(),
                    event_type: "Happened".into(),
                    event_version: "1".into(),
                    payload: json!({"Happened": {"n": sequence}}),
                    metadata: json!({"actor": "test"}),
                })
                .collect()
        };
        let part =
            |id: &str, from: usize, to: usize, current: usize| kiroku::storage::append::Part {
                aggregate_type: "Probe".into(),
                events: events(id, from, to),
                snapshot: Some((
                    id.into(),
                    json!({"id": id, "upto": to, "名": "記録"}),
                    current,
                )),
            };
        let snapshots = || async {
            let rows: Vec<(String, i64, i64, String)> = kiroku::with_pool!(&app.ledger.backend, pool => {
                sqlx::query_as(
                    "SELECT aggregate_id, last_sequence, current_snapshot, CAST(payload AS TEXT) \
                     FROM snapshots WHERE aggregate_type = 'Probe' ORDER BY aggregate_id",
                )
                .fetch_all(pool)
                .await
                .expect("snapshots")
            });
            rows.into_iter()
                .map(|(id, last, current, payload)| {
                    let payload: serde_json::Value =
                        serde_json::from_str(&payload).expect("a snapshot's JSON");
                    (id, last, current, payload["upto"].as_i64().unwrap_or(-1))
                })
                .collect::<Vec<_>>()
        };
        kiroku::with_pool!(&app.ledger.backend, pool => {
            sqlx::query(
                "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, \
                 current_snapshot, payload) VALUES ('Probe', 'p-b', 2, 9, '{\"old\": 1}')",
            )
            .execute(pool)
            .await
            .expect("an old snapshot");
        });
        let first = appender
            .append_all(vec![
                part("p-a", 1, 3, 1),
                part("p-b", 1, 4, 1),
                part("p-c", 1, 2, 1),
            ])
            .await
            .expect("three first snapshots");
        assert_eq!(first.len(), 9);
        assert_eq!(
            snapshots().await,
            vec![
                ("p-a".to_string(), 3, 1, 3),
                ("p-b".to_string(), 4, 1, 4),
                ("p-c".to_string(), 2, 1, 2),
            ]
        );
        let later = appender
            .append_all(vec![
                part("p-a", 4, 6, 2),
                part("p-c", 3, 3, 2),
                part("p-d", 1, 1, 1),
            ])
            .await
            .expect("later snapshots beside a first one");
        assert_eq!(later.len(), 5);
        assert_eq!(
            snapshots().await,
            vec![
                ("p-a".to_string(), 6, 2, 6),
                ("p-b".to_string(), 4, 1, 4),
                ("p-c".to_string(), 3, 2, 3),
                ("p-d".to_string(), 1, 1, 1),
            ]
        );
        let before = app.event_count().await;
        let stale = appender
            .append_all(vec![part("p-b", 5, 5, 2), part("p-d", 2, 2, 5)])
            .await;
        assert!(
            matches!(stale, Err(kiroku::storage::append::Failure::Conflict)),
            "{stale:?}"
        );
        assert_eq!(
            app.event_count().await,
            before,
            "no event of the batch is written"
        );
        assert_eq!(snapshots().await[1], ("p-b".to_string(), 4, 1, 4));
        // One aggregate twice in a batch (two commands on it, or a unit of work): its
        // snapshots are written in order, the second replacing the first.
        appender
            .append_all(vec![
                part("p-e", 1, 1, 1),
                part("p-e", 2, 3, 2),
                part("p-a", 7, 7, 3),
            ])
            .await
            .expect("two snapshots of one aggregate");
        let now = snapshots().await;
        assert_eq!(now[0], ("p-a".to_string(), 7, 3, 7));
        assert_eq!(now[4], ("p-e".to_string(), 3, 2, 3));
        assert_eq!(now.len(), 5);
    }
);
