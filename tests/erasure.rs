//! Erasure by crypto-shredding: the erasure is an event, the person's key is destroyed, their
//! name and free texts read as 削除済み everywhere, every count and sheet stays, the chain
//! stays whole, and a copy of the key table without the master key opens nothing.

mod support;

use serde_json::{json, Value};
use std::process::Command;
use support::{Db, TestApp};

const NAME: &str = "髙橋 花子E001";
const NOTE: &str = "家族の介護のため時短勤務を希望";
const COMMENT: &str = "調整力が高く後輩の指導にも熱心";

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

async fn sheet(app: &TestApp) -> Value {
    let mut sheet = app.get(&app.auditor, "/plan-items/2-1-2/sheet").await.body;
    sheet["as_of"] = Value::Null;
    sheet["as_of_jst"] = Value::Null;
    // The erasure is one more event in the log: the sheet is drawn at a later position.
    sheet["position"] = Value::Null;
    sheet
}

async fn trail(app: &TestApp, format: &str) -> String {
    app.client
        .get(app.url(&format!(
            "/plan-items/2-1-2/audit?indicator=attendees&fiscal_year=2023{format}"
        )))
        .bearer_auth(&app.hr)
        .send()
        .await
        .expect("trail")
        .text()
        .await
        .expect("body")
}

async fn stored_keys(app: &TestApp) -> Vec<(String, Option<Vec<u8>>)> {
    kiroku::with_pool!(&app.ledger.backend, pool => {
        sqlx::query_as::<_, (String, Option<Vec<u8>>)>("SELECT staff_id, key FROM personal_keys ORDER BY staff_id")
            .fetch_all(pool)
            .await
            .expect("keys")
    })
}

both_backends!(
    an_erased_person_reads_as_erased_everywhere_while_every_count_stays,
    |app: TestApp| async move {
        let defined = app
            .post(&app.hr, "/plan-items", &support::plan_item_body())
            .await;
        assert_eq!(defined.status, 201, "{:?}", defined.body);
        let person = app.register("E001", "総務課", 3).await;
        let manager = app.register("E900", "総務課", 6).await;
        let other = app.register("E002", "総務課", 3).await;
        let session = app.schedule(10).await;
        for id in [person, other] {
            app.post(
                &app.hr,
                &format!("/sessions/{session}/enrolments"),
                &json!({"staff_id": id}),
            )
            .await;
            let done = app
                .post(
                    &app.hr,
                    &format!("/sessions/{session}/completions"),
                    &json!({"staff_id": id, "completed_on": "2023-05-11", "understanding": 4}),
                )
                .await;
            assert_eq!(done.status, 201, "{:?}", done.body);
        }
        let interview = app
            .post(
                &app.hr,
                &format!("/staff/{person}/interviews"),
                &json!({"kind": "one_on_one", "held_on": "2024-06-10", "interviewer_id": manager, "note": NOTE}),
            )
            .await;
        assert_eq!(interview.status, 201, "{:?}", interview.body);
        let evaluation = app
            .post(
                &app.hr,
                &format!("/staff/{person}/evaluations"),
                &json!({"fiscal_year": 2024, "period": "first_half", "evaluator_id": manager,
                        "overall": "A", "competencies": {"企画力": 4}, "comment": COMMENT}),
            )
            .await;
        assert_eq!(evaluation.status, 201, "{:?}", evaluation.body);
        let before_sheet = sheet(&app).await;
        let before_trail = trail(&app, "&format=csv").await;
        assert!(before_trail.contains(NAME), "{before_trail}");
        let keys_before = stored_keys(&app).await;
        let backup_of_the_key_table = keys_before.clone();

        // Only HR may erase; the auditor is refused and nothing changes.
        let count = app.event_count().await;
        app.post(
            &app.auditor,
            &format!("/staff/{person}/erasure"),
            &json!({"reason": "本人からの削除請求"}),
        )
        .await
        .assert_problem(403, "forbidden");
        assert_eq!(app.event_count().await, count);

        let erased = app
            .post(
                &app.hr,
                &format!("/staff/{person}/erasure"),
                &json!({"reason": "本人からの削除請求（個人情報保護条例）"}),
            )
            .await;
        assert_eq!(erased.status, 200, "{:?}", erased.body);
        assert_eq!(
            app.event_count().await,
            count + 1,
            "the erasure is an event"
        );
        let events = app.get(&app.hr, "/events").await.body;
        let last = events["events"]
            .as_array()
            .and_then(|e| e.last())
            .cloned()
            .expect("events");
        assert_eq!(last["event_type"], "PersonalDataErased");

        // The key is gone; nobody's other key is touched.
        let keys_after = stored_keys(&app).await;
        for ((id, before), (_, after)) in keys_before.iter().zip(&keys_after) {
            if *id == person.to_string() {
                assert!(before.is_some() && after.is_none(), "the key is destroyed");
            } else {
                assert_eq!(before, after);
            }
        }

        // Name and texts read as erased, for HR too; everything else stays.
        let profile = app.get(&app.hr, &format!("/staff/{person}")).await.body;
        assert!(profile["name"].is_null(), "{profile}");
        assert_eq!(profile["personal_data_erased"], true);
        assert_eq!(profile["employee_no"], "E001");
        assert!(profile["interviews"][0]["note"].is_null(), "{profile}");
        assert!(profile["evaluations"][0]["comment"].is_null(), "{profile}");
        assert_eq!(profile["evaluations"][0]["overall"], "A");
        assert_eq!(
            sheet(&app).await,
            before_sheet,
            "every count and sheet unchanged"
        );
        let after_trail = trail(&app, "&format=csv").await;
        assert!(!after_trail.contains(NAME), "{after_trail}");
        assert!(after_trail.contains("削除済み"), "{after_trail}");
        assert_eq!(
            after_trail.lines().count(),
            before_trail.lines().count(),
            "the same changes"
        );
        let json_trail: Value = serde_json::from_str(&trail(&app, "").await).expect("json");
        assert!(json_trail
            .to_string()
            .contains("\"personal_data_erased\":true"));

        // Nothing personal is written about them again; a second erasure is refused.
        app.post(
            &app.hr,
            &format!("/staff/{person}/interviews"),
            &json!({"kind": "one_on_one", "held_on": "2024-07-10", "interviewer_id": manager, "note": "追記"}),
        )
        .await
        .assert_problem(409, "personal_data_erased");
        app.post(
            &app.hr,
            &format!("/staff/{person}/erasure"),
            &json!({"reason": "再度"}),
        )
        .await
        .assert_problem(409, "personal_data_erased");

        // The chain covers the ciphertext, which did not change.
        let (code, out) = kiroku(&app, &["verify"]);
        assert_eq!(code, 0, "{out}");

        // The checkpoint holds nothing readable either: a rebuild equals the live models.
        app.ledger.projector.checkpoint().await.expect("checkpoint");
        let (code, out) = kiroku(&app, &["rebuild"]);
        assert_eq!(code, 0, "{out}");
        let live = app.ledger.projector.fingerprint().expect("fingerprint").1;
        assert!(out.contains(&live), "{out} vs {live}");

        // A copy of the key table taken before the erasure opens nothing without the master
        // key: the stored keys are wrapped (72 bytes), and no 32 bytes of one open a name.
        let (_, wrapped) = backup_of_the_key_table
            .iter()
            .find(|(id, _)| *id == person.to_string())
            .expect("the person's row");
        let wrapped = wrapped.clone().expect("a key then");
        assert_eq!(wrapped.len(), 72, "wrapped, not the key itself");
        let sql = match app.db {
            Db::Sqlite => "SELECT payload FROM events WHERE event_type = 'StaffRegistered' AND aggregate_id = $1",
            Db::Postgres => "SELECT payload::text FROM events WHERE event_type = 'StaffRegistered' AND aggregate_id = $1",
        };
        let payload: String = kiroku::with_pool!(&app.ledger.backend, pool => {
            sqlx::query_scalar(sql)
                .bind(person.to_string())
                .fetch_one(pool)
                .await
                .expect("registration")
        });
        let payload: Value = serde_json::from_str(&payload).expect("json");
        let sealed: kiroku_domain::values::Sealed =
            serde_json::from_value(payload["StaffRegistered"]["name"].clone()).expect("sealed");
        for start in 0..=(wrapped.len() - 32) {
            let candidate: [u8; 32] = wrapped[start..start + 32].try_into().expect("32");
            assert!(
                open_with(&candidate, person, &sealed).is_none(),
                "a slice of the wrapped key opened the name"
            );
        }

        // The CLI erases too, by 職員番号, and refuses a second time.
        let (code, out) = kiroku(
            &app,
            &[
                "staff",
                "erase",
                "E002",
                "--reason",
                "退職後5年の保存期間満了",
            ],
        );
        assert_eq!(code, 0, "{out}");
        let (code, out) = kiroku(&app, &["staff", "erase", "E002", "--reason", "再度"]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("削除済み"), "{out}");
        // This server learns of the other process's erasure on its own.
        app.ledger.projector.catch_up().await.expect("catch up");
        app.ledger.complete_erasures().await.expect("complete");
        let profile = app.get(&app.hr, &format!("/staff/{other}")).await.body;
        assert!(profile["name"].is_null(), "{profile}");
        assert_eq!(sheet(&app).await, before_sheet);
    }
);

/// Tries `key` as a personal key on a sealed text (what someone holding only the key table
/// could attempt).
fn open_with(
    key: &[u8; 32],
    staff_id: uuid::Uuid,
    sealed: &kiroku_domain::values::Sealed,
) -> Option<String> {
    use base64::Engine;
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&sealed.ct)
        .ok()?;
    let (nonce, ciphertext) = bytes.split_at(24);
    let aad = staff_id.to_string();
    XChaCha20Poly1305::new(key.into())
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: aad.as_bytes(),
            },
        )
        .ok()
        .and_then(|clear| String::from_utf8(clear).ok())
}
