//! Who may do what: tokens and roles (401/403), a manager's reach limited to their own current
//! department, confidential text hidden from everyone but those allowed, and personal data
//! that never reaches the event table in clear text.

mod support;

use base64::Engine;
use kiroku::storage::tokens::Role;
use serde_json::{json, Value};
use support::{session_body, staff_body, Reply, TestApp};
use uuid::Uuid;

fn interview_body(interviewer: Uuid, note: &str) -> Value {
    json!({
        "kind": "one_on_one",
        "held_on": "2024-06-10",
        "interviewer_id": interviewer,
        "note": note,
    })
}

fn evaluation_body(evaluator: Uuid, comment: &str) -> Value {
    json!({
        "fiscal_year": 2024,
        "period": "first_half",
        "evaluator_id": evaluator,
        "overall": "A",
        "competencies": {"企画力": 4, "協調性": 5},
        "comment": comment,
    })
}

fn transfer_body(to_department: &str, effective_on: &str) -> Value {
    json!({
        "to_department": to_department,
        "department_kind": "administration",
        "effective_on": effective_on,
        "kind": "regular",
    })
}

/// Asserts that `token` may not POST `body` to `path` (403 `forbidden`) and that the log did
/// not grow.
async fn assert_write_forbidden(app: &TestApp, token: &str, path: &str, body: &Value) {
    let before = app.event_count().await;
    let reply = app.post(token, path, body).await;
    assert_eq!(
        reply.status.as_u16(),
        403,
        "POST {path} should be forbidden: {:?}",
        reply.body
    );
    reply.assert_problem(403, "forbidden");
    assert_eq!(
        app.event_count().await,
        before,
        "a refused POST {path} appended events"
    );
}

/// Asserts that `token` may not GET `path` (403 `forbidden`).
async fn assert_read_forbidden(app: &TestApp, token: &str, path: &str) {
    let reply = app.get(token, path).await;
    assert_eq!(
        reply.status.as_u16(),
        403,
        "GET {path} should be forbidden: {:?}",
        reply.body
    );
    reply.assert_problem(403, "forbidden");
}

/// GET that must succeed; returns the body.
async fn get_ok(app: &TestApp, token: &str, path: &str) -> Value {
    let reply = app.get(token, path).await;
    assert_eq!(reply.status.as_u16(), 200, "GET {path}: {:?}", reply.body);
    reply.body
}

/// POST that must be created (201); returns the reply.
async fn post_created(app: &TestApp, token: &str, path: &str, body: &Value) -> Reply {
    let reply = app.post(token, path, body).await;
    assert_eq!(reply.status.as_u16(), 201, "POST {path}: {:?}", reply.body);
    reply
}

/// POST that must succeed with 200.
async fn post_ok(app: &TestApp, token: &str, path: &str, body: &Value) -> Reply {
    let reply = app.post(token, path, body).await;
    assert_eq!(reply.status.as_u16(), 200, "POST {path}: {:?}", reply.body);
    reply
}

fn uuid_field(reply: &Reply, field: &str) -> Uuid {
    reply.body[field]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or_else(|| panic!("no {field} in {:?}", reply.body))
}

/// The interview with this id in a `GET /staff/{id}` body.
fn interview(profile: &Value, interview_id: Uuid) -> &Value {
    profile["interviews"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|i| i["interview_id"] == json!(interview_id))
        })
        .unwrap_or_else(|| panic!("no interview {interview_id} in {profile}"))
}

/// The evaluation with this id in a `GET /staff/{id}` body.
fn evaluation(profile: &Value, evaluation_id: Uuid) -> &Value {
    profile["evaluations"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|e| e["evaluation_id"] == json!(evaluation_id))
        })
        .unwrap_or_else(|| panic!("no evaluation {evaluation_id} in {profile}"))
}

/// Every event of the log as `token` sees it through `GET /events`.
async fn events(app: &TestApp, token: &str) -> Vec<Value> {
    let body = get_ok(app, token, "/events?limit=1000").await;
    body["events"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no events in {body}"))
}

/// The single event of `event_type` about `aggregate_id`.
fn event_of<'a>(events: &'a [Value], event_type: &str, aggregate_id: Uuid) -> &'a Value {
    let found: Vec<&Value> = events
        .iter()
        .filter(|e| e["event_type"] == event_type && e["aggregate_id"] == json!(aggregate_id))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {event_type} for {aggregate_id}: {found:?}"
    );
    found[0]
}

fn redacted(event: &Value) -> Vec<&str> {
    event["redacted"]
        .as_array()
        .unwrap_or_else(|| panic!("no redacted array in {event}"))
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

/// The forms in which `text` could sit in a JSON column without being encrypted: as is,
/// JSON-escaped (`\u9ad9`, either case), and base64 of its UTF-8 bytes at any alignment.
fn clear_forms(text: &str) -> Vec<String> {
    let mut forms = vec![text.to_string()];
    let mut escaped = String::new();
    for c in text.chars() {
        if c.is_ascii() {
            escaped.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                escaped.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    forms.push(escaped.clone());
    forms.push(escaped.to_uppercase().replace("\\U", "\\u"));
    for engine in [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
    ] {
        for shift in 0..3 {
            let mut bytes = vec![0u8; shift];
            bytes.extend_from_slice(text.as_bytes());
            let whole = bytes.len() / 3 * 3;
            let encoded = engine.encode(&bytes[..whole]);
            // The first group mixes in bytes before the text when it is not aligned.
            let needle = if shift == 0 {
                &encoded[..]
            } else {
                &encoded[4..]
            };
            if needle.len() >= 8 {
                forms.push(needle.to_string());
            }
        }
    }
    forms
}

// (7) No token or an unknown token is 401; a staff token reads only its holder and writes
// nothing but a dispute of its holder's own evaluation.
both_backends!(
    anonymous_callers_and_staff_tokens_are_refused,
    |app: TestApp| async move {
        let a = app.register("S001", "総務課", 3).await;
        let b = app.register("S002", "総務課", 3).await;
        let session = app.schedule(10).await;
        let on_a = post_created(
            &app,
            &app.hr,
            &format!("/staff/{a}/evaluations"),
            &evaluation_body(b, "期限を守った丁寧な事務処理"),
        )
        .await;
        let eval_of_a = uuid_field(&on_a, "evaluation_id");
        let on_b = post_created(
            &app,
            &app.hr,
            &format!("/staff/{b}/evaluations"),
            &evaluation_body(a, "窓口での説明が分かりやすい"),
        )
        .await;
        let eval_of_b = uuid_field(&on_b, "evaluation_id");
        let before = app.event_count().await;

        // Without a token.
        for path in [
            format!("/staff/{a}"),
            "/events".to_string(),
            format!("/sessions/{session}"),
        ] {
            app.get_anonymous(&path)
                .await
                .assert_problem(401, "unauthorized");
        }
        let anonymous_writes = [
            (
                "/staff".to_string(),
                staff_body("S003", "総務課", 3, "2020-04-01"),
            ),
            ("/sessions".to_string(), session_body(10)),
            (
                format!("/staff/{a}/interviews"),
                interview_body(b, "匿名の面談記録"),
            ),
            (
                format!("/staff/{a}/evaluations/{eval_of_a}/disputes"),
                json!({"text": "匿名の申出"}),
            ),
        ];
        for (path, body) in &anonymous_writes {
            app.post_anonymous(path, body)
                .await
                .assert_problem(401, "unauthorized");
        }

        // With a token the ledger never issued, or credentials in the wrong scheme.
        for garbage in ["garbage", "not-a-real-token-0123456789abcdef", "Bearer"] {
            app.get(garbage, &format!("/staff/{a}"))
                .await
                .assert_problem(401, "unauthorized");
            app.get(garbage, "/events")
                .await
                .assert_problem(401, "unauthorized");
            app.post(
                garbage,
                "/staff",
                &staff_body("S004", "総務課", 3, "2020-04-01"),
            )
            .await
            .assert_problem(401, "unauthorized");
        }
        let hr_mangled = format!("{}x", app.hr);
        app.get(&hr_mangled, "/events")
            .await
            .assert_problem(401, "unauthorized");
        let basic = app
            .client
            .get(app.url("/events"))
            .basic_auth("hr", Some(&app.hr))
            .send()
            .await
            .expect("request");
        assert_eq!(
            basic.status().as_u16(),
            401,
            "Basic credentials are no bearer token"
        );
        assert_eq!(app.event_count().await, before, "a 401 appended events");

        // A staff token reads only its holder.
        let staff = app.token(Role::Staff, "職員トークンA", Some(a)).await;
        let own = get_ok(&app, &staff, &format!("/staff/{a}")).await;
        assert_eq!(own["id"], json!(a));
        assert_eq!(own["employee_no"], "S001");
        assert!(own["name"].is_string(), "own name: {own}");
        assert_read_forbidden(&app, &staff, &format!("/staff/{b}")).await;
        assert_read_forbidden(&app, &staff, "/events").await;
        assert_read_forbidden(&app, &staff, &format!("/sessions/{session}")).await;

        // ... and writes nothing.
        let staff_writes = [
            (
                "/staff".to_string(),
                staff_body("S005", "総務課", 3, "2020-04-01"),
            ),
            ("/sessions".to_string(), session_body(10)),
            (
                format!("/staff/{a}/interviews"),
                interview_body(a, "自分で書いた面談記録"),
            ),
            (
                format!("/staff/{b}/interviews"),
                interview_body(a, "同僚についての記録"),
            ),
            (
                format!("/staff/{a}/evaluations"),
                evaluation_body(a, "自己評価はS"),
            ),
            (
                format!("/staff/{a}/evaluations/{eval_of_a}/corrections"),
                json!({"overall": "S", "reason": "自分で上げたい"}),
            ),
            (
                format!("/staff/{a}/transfers"),
                transfer_body("企画課", "2024-04-01"),
            ),
            (
                format!("/staff/{a}/grade-changes"),
                json!({"grade": 8, "effective_on": "2024-04-01", "reason": "promotion"}),
            ),
            (
                format!("/sessions/{session}/enrolments"),
                json!({"staff_id": a}),
            ),
            (
                format!("/sessions/{session}/completions"),
                json!({"staff_id": a, "completed_on": "2023-05-11"}),
            ),
            (
                format!("/staff/{b}/evaluations/{eval_of_b}/disputes"),
                json!({"text": "同僚の評価に異議"}),
            ),
            (
                format!("/staff/{a}/evaluations/{eval_of_a}/dispute-resolutions"),
                json!({"outcome": "認容", "reason": "自分で決着"}),
            ),
        ];
        for (path, body) in &staff_writes {
            assert_write_forbidden(&app, &staff, path, body).await;
        }
        assert_eq!(app.event_count().await, before);

        // The one write a staff member has: disputing their own evaluation.
        post_created(
            &app,
            &staff,
            &format!("/staff/{a}/evaluations/{eval_of_a}/disputes"),
            &json!({"text": "評価期間中の休職が考慮されていません"}),
        )
        .await;
        assert_eq!(app.event_count().await, before + 1);
    }
);

// (7) A manager reaches exactly the staff whose current department is the manager's own
// current department, and follows transfers of either side.
both_backends!(
    a_manager_reaches_only_their_own_department,
    |app: TestApp| async move {
        let m = app.register("M001", "総務課", 6).await;
        let x = app.register("X001", "総務課", 3).await;
        let y = app.register("Y001", "税務課", 3).await;
        let manager = app.token(Role::Manager, "総務課長", Some(m)).await;

        // Own department: read and record.
        let profile = get_ok(&app, &manager, &format!("/staff/{x}")).await;
        assert_eq!(profile["department"], "総務課");
        assert!(
            profile["name"].is_string(),
            "manager sees the name: {profile}"
        );
        post_created(
            &app,
            &manager,
            &format!("/staff/{x}/interviews"),
            &interview_body(m, "業務量について相談"),
        )
        .await;
        post_created(
            &app,
            &manager,
            &format!("/staff/{x}/evaluations"),
            &evaluation_body(m, "庶務を着実にこなした"),
        )
        .await;

        // Another department: neither read nor record.
        assert_read_forbidden(&app, &manager, &format!("/staff/{y}")).await;
        assert_write_forbidden(
            &app,
            &manager,
            &format!("/staff/{y}/interviews"),
            &interview_body(m, "他課職員の面談"),
        )
        .await;
        assert_write_forbidden(
            &app,
            &manager,
            &format!("/staff/{y}/evaluations"),
            &evaluation_body(m, "他課職員の評価"),
        )
        .await;

        // Nor anything reserved for HR, nor the log.
        assert_write_forbidden(
            &app,
            &manager,
            "/staff",
            &staff_body("Z001", "総務課", 3, "2020-04-01"),
        )
        .await;
        assert_write_forbidden(&app, &manager, "/sessions", &session_body(5)).await;
        assert_write_forbidden(
            &app,
            &manager,
            &format!("/staff/{y}/transfers"),
            &transfer_body("総務課", "2024-04-01"),
        )
        .await;
        assert_write_forbidden(
            &app,
            &manager,
            &format!("/staff/{x}/transfers"),
            &transfer_body("企画課", "2024-04-01"),
        )
        .await;
        assert_read_forbidden(&app, &manager, "/events").await;

        // Y moves into 総務課 (effective in the past): the manager now reaches Y.
        post_ok(
            &app,
            &app.hr,
            &format!("/staff/{y}/transfers"),
            &transfer_body("総務課", "2024-04-01"),
        )
        .await;
        let profile = get_ok(&app, &manager, &format!("/staff/{y}")).await;
        assert_eq!(profile["department"], "総務課");
        post_created(
            &app,
            &manager,
            &format!("/staff/{y}/interviews"),
            &interview_body(m, "異動後の状況確認"),
        )
        .await;

        // A transfer that takes effect only in the future changes nothing today.
        post_ok(
            &app,
            &app.hr,
            &format!("/staff/{y}/transfers"),
            &transfer_body("企画課", "2099-04-01"),
        )
        .await;
        get_ok(&app, &manager, &format!("/staff/{y}")).await;

        // X leaves 総務課: the manager loses X.
        post_ok(
            &app,
            &app.hr,
            &format!("/staff/{x}/transfers"),
            &transfer_body("税務課", "2024-04-01"),
        )
        .await;
        assert_read_forbidden(&app, &manager, &format!("/staff/{x}")).await;
        assert_write_forbidden(
            &app,
            &manager,
            &format!("/staff/{x}/interviews"),
            &interview_body(m, "異動後の元部下"),
        )
        .await;

        // The manager moves to 税務課: X again, Y no longer.
        post_ok(
            &app,
            &app.hr,
            &format!("/staff/{m}/transfers"),
            &transfer_body("税務課", "2024-05-01"),
        )
        .await;
        get_ok(&app, &manager, &format!("/staff/{x}")).await;
        assert_read_forbidden(&app, &manager, &format!("/staff/{y}")).await;
        assert_write_forbidden(
            &app,
            &manager,
            &format!("/staff/{y}/evaluations"),
            &evaluation_body(m, "前の所属の職員"),
        )
        .await;
    }
);

// (7) Confidential text — interview notes, evaluation comments, dispute texts — reaches only
// HR, the interviewer (notes) or the evaluator and the person evaluated (comments and
// disputes); the auditor sees names but no confidential text, in profiles and in the log.
both_backends!(
    confidential_text_reaches_only_those_allowed,
    |app: TestApp| async move {
        const NOTE: &str = "家族の介護について相談あり、時差出勤を希望";
        const COMMENT: &str = "窓口対応が丁寧で住民からの信頼が厚い";
        const DISPUTE: &str = "評価面談の日程が一方的に決められた点に異議があります";

        let s = app.register("S001", "総務課", 3).await;
        let i = app.register("I001", "総務課", 6).await;
        let e = app.register("E001", "総務課", 7).await;
        let o = app.register("O001", "総務課", 6).await;
        let interviewer = app.token(Role::Manager, "面談担当の課長", Some(i)).await;
        let evaluator = app.token(Role::Manager, "評価者の部長", Some(e)).await;
        let other = app.token(Role::Manager, "同じ課の別の課長", Some(o)).await;
        let staff = app.token(Role::Staff, "職員トークン", Some(s)).await;

        let recorded = post_created(
            &app,
            &interviewer,
            &format!("/staff/{s}/interviews"),
            &interview_body(i, NOTE),
        )
        .await;
        let iid = uuid_field(&recorded, "interview_id");
        let recorded = post_created(
            &app,
            &evaluator,
            &format!("/staff/{s}/evaluations"),
            &evaluation_body(e, COMMENT),
        )
        .await;
        let eid = uuid_field(&recorded, "evaluation_id");
        post_created(
            &app,
            &staff,
            &format!("/staff/{s}/evaluations/{eid}/disputes"),
            &json!({"text": DISPUTE}),
        )
        .await;

        // The auditor writes nothing.
        let session = app.schedule(10).await;
        let auditor_writes = [
            (
                "/staff".to_string(),
                staff_body("A001", "総務課", 3, "2020-04-01"),
            ),
            ("/sessions".to_string(), session_body(10)),
            (
                format!("/staff/{s}/interviews"),
                interview_body(i, "監査による記録"),
            ),
            (
                format!("/staff/{s}/evaluations"),
                evaluation_body(e, "監査による評価"),
            ),
            (
                format!("/staff/{s}/evaluations/{eid}/corrections"),
                json!({"overall": "B", "reason": "監査指摘"}),
            ),
            (
                format!("/staff/{s}/evaluations/{eid}/disputes"),
                json!({"text": "監査からの申出"}),
            ),
            (
                format!("/staff/{s}/transfers"),
                transfer_body("企画課", "2024-04-01"),
            ),
            (
                format!("/sessions/{session}/enrolments"),
                json!({"staff_id": s}),
            ),
        ];
        for (path, body) in &auditor_writes {
            assert_write_forbidden(&app, &app.auditor, path, body).await;
        }

        let path = format!("/staff/{s}");
        // HR sees everything.
        let hr = get_ok(&app, &app.hr, &path).await;
        let name = hr["name"].as_str().expect("hr sees the name").to_string();
        assert_eq!(name, "髙橋 花子S001");
        assert_eq!(hr["name_kana"], "タカハシ ハナコ");
        assert_eq!(interview(&hr, iid)["note"], NOTE);
        assert_eq!(evaluation(&hr, eid)["comment"], COMMENT);
        assert_eq!(evaluation(&hr, eid)["dispute"], DISPUTE);

        // The auditor: the name, but no confidential text.
        let audit = get_ok(&app, &app.auditor, &path).await;
        assert_eq!(audit["name"], name.as_str());
        assert_eq!(audit["name_kana"], "タカハシ ハナコ");
        assert!(interview(&audit, iid)["note"].is_null(), "{audit}");
        assert_eq!(interview(&audit, iid)["note_redacted"], true);
        assert!(evaluation(&audit, eid)["comment"].is_null(), "{audit}");
        assert!(evaluation(&audit, eid)["dispute"].is_null(), "{audit}");
        assert_eq!(evaluation(&audit, eid)["confidential_redacted"], true);
        assert_eq!(evaluation(&audit, eid)["overall"], "A");
        let text = audit.to_string();
        for secret in [NOTE, COMMENT, DISPUTE] {
            assert!(
                !text.contains(secret),
                "auditor profile shows {secret}: {text}"
            );
        }

        // The interviewer: the note, not the evaluation comment.
        let seen = get_ok(&app, &interviewer, &path).await;
        assert_eq!(seen["name"], name.as_str());
        assert_eq!(interview(&seen, iid)["note"], NOTE);
        assert_eq!(interview(&seen, iid)["note_redacted"], false);
        assert!(evaluation(&seen, eid)["comment"].is_null(), "{seen}");
        assert!(evaluation(&seen, eid)["dispute"].is_null(), "{seen}");

        // The evaluator: comment and dispute, not the note.
        let seen = get_ok(&app, &evaluator, &path).await;
        assert_eq!(seen["name"], name.as_str());
        assert!(interview(&seen, iid)["note"].is_null(), "{seen}");
        assert_eq!(evaluation(&seen, eid)["comment"], COMMENT);
        assert_eq!(evaluation(&seen, eid)["dispute"], DISPUTE);

        // Another manager of the same department: the profile, no confidential text.
        let seen = get_ok(&app, &other, &path).await;
        assert_eq!(seen["name"], name.as_str());
        assert!(interview(&seen, iid)["note"].is_null(), "{seen}");
        assert!(evaluation(&seen, eid)["comment"].is_null(), "{seen}");
        assert!(evaluation(&seen, eid)["dispute"].is_null(), "{seen}");
        let text = seen.to_string();
        for secret in [NOTE, COMMENT, DISPUTE] {
            assert!(
                !text.contains(secret),
                "another manager sees {secret}: {text}"
            );
        }

        // The person evaluated: their evaluation comment and dispute, not the interview note.
        let seen = get_ok(&app, &staff, &path).await;
        assert_eq!(seen["name"], name.as_str());
        assert_eq!(evaluation(&seen, eid)["comment"], COMMENT);
        assert_eq!(evaluation(&seen, eid)["dispute"], DISPUTE);
        assert!(interview(&seen, iid)["note"].is_null(), "{seen}");
        assert_eq!(interview(&seen, iid)["note_redacted"], true);
        assert!(
            !seen.to_string().contains(NOTE),
            "staff sees the note: {seen}"
        );

        // The log through the auditor's eyes: names open, confidential text redacted.
        let logged = events(&app, &app.auditor).await;
        let registered = event_of(&logged, "StaffRegistered", s);
        assert_eq!(registered["payload"]["name"], name.as_str(), "{registered}");
        assert!(redacted(registered).is_empty(), "{registered}");
        let event = event_of(&logged, "InterviewRecorded", s);
        assert!(event["payload"]["note"].is_null(), "{event}");
        assert_eq!(redacted(event), vec!["note"], "{event}");
        let event = event_of(&logged, "EvaluationRecorded", s);
        assert!(event["payload"]["comment"].is_null(), "{event}");
        assert_eq!(redacted(event), vec!["comment"], "{event}");
        assert_eq!(event["payload"]["overall"], "A");
        let event = event_of(&logged, "EvaluationDisputed", s);
        assert!(event["payload"]["text"].is_null(), "{event}");
        assert_eq!(redacted(event), vec!["text"], "{event}");
        let text = serde_json::to_string(&logged).expect("serialize");
        for secret in [NOTE, COMMENT, DISPUTE] {
            assert!(!text.contains(secret), "auditor's /events shows {secret}");
        }

        // ... and through HR's: everything in clear.
        let logged = events(&app, &app.hr).await;
        assert_eq!(
            event_of(&logged, "StaffRegistered", s)["payload"]["name"],
            name.as_str()
        );
        let event = event_of(&logged, "InterviewRecorded", s);
        assert_eq!(event["payload"]["note"], NOTE, "{event}");
        assert!(redacted(event).is_empty(), "{event}");
        let event = event_of(&logged, "EvaluationRecorded", s);
        assert_eq!(event["payload"]["comment"], COMMENT, "{event}");
        assert!(redacted(event).is_empty(), "{event}");
        let event = event_of(&logged, "EvaluationDisputed", s);
        assert_eq!(event["payload"]["text"], DISPUTE, "{event}");
        assert!(redacted(event).is_empty(), "{event}");
    }
);

// (8) Names, interview notes, evaluation comments and dispute texts are sealed in the event
// table (the raw rows never hold them in clear), yet `GET /staff/{id}` shows them to those
// allowed.
both_backends!(
    personal_text_never_reaches_the_event_table_in_clear,
    |app: TestApp| async move {
        const NAME: &str = "髙橋 花子";
        const KANA: &str = "タカハシ ハナコ";
        const NOTE: &str = "「家族の介護について相談あり」";
        const DRAFT_NOTE: &str = "「配偶者の転勤に伴い退職を検討」";
        const CORRECTED_NOTE: &str = "「配偶者の転勤に伴い休業を検討（①育児も）」";
        const COMMENT: &str = "税務証明の窓口で髙橋さんは丁寧に対応した";
        const DRAFT_COMMENT: &str = "繁忙期の残業が多く健康面が心配";
        const CORRECTED_COMMENT: &str = "繁忙期にも正確な事務処理を続けた";
        const DISPUTE: &str = "面談で説明された内容と評価結果が異なります";
        // What was decided about it: personal, sealed like the dispute.
        const OUTCOME: &str = "評価を維持（上司の家族事情を考慮）";

        let mut body = staff_body("T001", "総務課", 3, "2015-04-01");
        body["name"] = json!(NAME);
        body["name_kana"] = json!(KANA);
        let s = post_created(&app, &app.hr, "/staff", &body).await.id();
        let i = app.register("I001", "総務課", 6).await;
        let manager = app.token(Role::Manager, "総務課長", Some(i)).await;
        let staff = app.token(Role::Staff, "職員トークン", Some(s)).await;

        let first = post_created(
            &app,
            &manager,
            &format!("/staff/{s}/interviews"),
            &interview_body(i, NOTE),
        )
        .await;
        let first_interview = uuid_field(&first, "interview_id");
        let second = post_created(
            &app,
            &manager,
            &format!("/staff/{s}/interviews"),
            &interview_body(i, DRAFT_NOTE),
        )
        .await;
        let second_interview = uuid_field(&second, "interview_id");
        post_ok(
            &app,
            &manager,
            &format!("/staff/{s}/interviews/{second_interview}/corrections"),
            &json!({"note": CORRECTED_NOTE, "reason": "記載内容の訂正"}),
        )
        .await;

        let first = post_created(
            &app,
            &manager,
            &format!("/staff/{s}/evaluations"),
            &evaluation_body(i, COMMENT),
        )
        .await;
        let first_evaluation = uuid_field(&first, "evaluation_id");
        post_created(
            &app,
            &staff,
            &format!("/staff/{s}/evaluations/{first_evaluation}/disputes"),
            &json!({"text": DISPUTE}),
        )
        .await;
        let resolved = app
            .post(
                &app.hr,
                &format!("/staff/{s}/evaluations/{first_evaluation}/dispute-resolutions"),
                &json!({"outcome": OUTCOME, "reason": "苦情処理委員会の審査"}),
            )
            .await;
        assert!(resolved.status.is_success(), "{:?}", resolved.body);
        let mut draft = evaluation_body(i, DRAFT_COMMENT);
        draft["period"] = json!("second_half");
        let second = post_created(&app, &manager, &format!("/staff/{s}/evaluations"), &draft).await;
        let second_evaluation = uuid_field(&second, "evaluation_id");
        post_ok(
            &app,
            &app.hr,
            &format!("/staff/{s}/evaluations/{second_evaluation}/corrections"),
            &json!({"comment": CORRECTED_COMMENT, "reason": "所見の差し替え"}),
        )
        .await;

        // The raw rows: one per event, none holding any of it in clear.
        let rows = app.raw_payloads().await;
        assert_eq!(rows.len() as i64, app.event_count().await);
        let registered = rows
            .iter()
            .find(|row| row.contains("StaffRegistered") && row.contains("T001"))
            .expect("the registration row");
        assert!(
            registered.contains("総務課"),
            "not the raw row? {registered}"
        );
        for secret in [
            NAME,
            KANA,
            "髙橋",
            "ハナコ",
            NOTE,
            "家族の介護",
            DRAFT_NOTE,
            CORRECTED_NOTE,
            COMMENT,
            DRAFT_COMMENT,
            CORRECTED_COMMENT,
            DISPUTE,
            OUTCOME,
        ] {
            for form in clear_forms(secret) {
                for row in &rows {
                    assert!(
                        !row.contains(&form),
                        "{secret:?} is in the event table as {form:?}: {row}"
                    );
                }
            }
        }

        // Yet HR reads all of it.
        let hr = get_ok(&app, &app.hr, &format!("/staff/{s}")).await;
        assert_eq!(hr["name"], NAME);
        assert_eq!(hr["name_kana"], KANA);
        assert_eq!(hr["personal_data_erased"], false);
        assert_eq!(interview(&hr, first_interview)["note"], NOTE);
        assert_eq!(interview(&hr, second_interview)["note"], CORRECTED_NOTE);
        assert_eq!(evaluation(&hr, first_evaluation)["comment"], COMMENT);
        assert_eq!(evaluation(&hr, first_evaluation)["dispute"], DISPUTE);
        assert_eq!(
            evaluation(&hr, first_evaluation)["dispute_outcome"],
            OUTCOME
        );
        let audit = get_ok(&app, &app.auditor, &format!("/staff/{s}")).await;
        assert!(evaluation(&audit, first_evaluation)["dispute_outcome"].is_null());
        assert_eq!(
            evaluation(&audit, first_evaluation)["dispute_resolved"],
            true
        );
        assert_eq!(
            evaluation(&hr, second_evaluation)["comment"],
            CORRECTED_COMMENT
        );

        // The interviewer and evaluator (the same manager here) reads notes and comments.
        let seen = get_ok(&app, &manager, &format!("/staff/{s}")).await;
        assert_eq!(seen["name"], NAME);
        assert_eq!(interview(&seen, first_interview)["note"], NOTE);
        assert_eq!(evaluation(&seen, first_evaluation)["comment"], COMMENT);
        assert_eq!(evaluation(&seen, first_evaluation)["dispute"], DISPUTE);

        // The person themself: their name, comments and dispute; the notes stay hidden.
        let seen = get_ok(&app, &staff, &format!("/staff/{s}")).await;
        assert_eq!(seen["name"], NAME);
        assert_eq!(seen["name_kana"], KANA);
        assert_eq!(evaluation(&seen, first_evaluation)["comment"], COMMENT);
        assert_eq!(evaluation(&seen, first_evaluation)["dispute"], DISPUTE);
        assert!(
            interview(&seen, first_interview)["note"].is_null(),
            "{seen}"
        );

        // And the log keeps the history: HR's /events opens the superseded texts as well.
        let logged = serde_json::to_string(&events(&app, &app.hr).await).expect("serialize");
        for text in [
            NAME,
            NOTE,
            DRAFT_NOTE,
            CORRECTED_NOTE,
            COMMENT,
            DRAFT_COMMENT,
            DISPUTE,
        ] {
            assert!(logged.contains(text), "HR's /events lacks {text}");
        }
    }
);

both_backends!(
    a_manager_records_only_in_their_own_name_never_about_themselves_and_not_after_leaving,
    |app: TestApp| async move {
        let a1 = app.register("A-1", "職員課", 2).await;
        let m1 = app.register("M-1", "職員課", 5).await;
        let m2 = app.register("M-2", "職員課", 5).await;
        let manager = app.token(Role::Manager, "職員課長", Some(m1)).await;
        let evaluation = |evaluator: uuid::Uuid| json!({"fiscal_year": 2024, "period": "annual", "evaluator_id": evaluator, "overall": "B", "comment": "所見"});
        let interview = |interviewer: uuid::Uuid| json!({"kind": "one_on_one", "held_on": "2024-06-01", "interviewer_id": interviewer, "note": "面談記録"});
        let before = app.event_count().await;
        // Never about themselves.
        app.post(
            &manager,
            &format!("/staff/{m1}/evaluations"),
            &evaluation(m1),
        )
        .await
        .assert_problem(403, "forbidden");
        app.post(&manager, &format!("/staff/{m1}/interviews"), &interview(m1))
            .await
            .assert_problem(403, "forbidden");
        // Never in another person's name.
        app.post(
            &manager,
            &format!("/staff/{a1}/evaluations"),
            &evaluation(m2),
        )
        .await
        .assert_problem(403, "forbidden");
        app.post(&manager, &format!("/staff/{a1}/interviews"), &interview(m2))
            .await
            .assert_problem(403, "forbidden");
        assert_eq!(
            app.event_count().await,
            before,
            "a refused command recorded something"
        );
        // In their own name, about their staff: recorded.
        let own = app
            .post(
                &manager,
                &format!("/staff/{a1}/evaluations"),
                &evaluation(m1),
            )
            .await;
        assert_eq!(own.status.as_u16(), 201, "{:?}", own.body);
        let own_id = own.body["evaluation_id"].as_str().expect("id").to_string();
        let corrected = app
            .post(
                &manager,
                &format!("/staff/{a1}/evaluations/{own_id}/corrections"),
                &json!({"overall": "A", "reason": "再評価"}),
            )
            .await;
        assert_eq!(corrected.status.as_u16(), 200, "{:?}", corrected.body);

        // What another interviewer or evaluator recorded (and the manager may not read) cannot
        // be corrected or withdrawn by the manager; nor can an evaluation of the manager.
        let theirs = app
            .post(&app.hr, &format!("/staff/{a1}/interviews"), &interview(m2))
            .await;
        let interview_id = theirs.body["interview_id"]
            .as_str()
            .expect("id")
            .to_string();
        let about_me = app
            .post(
                &app.hr,
                &format!("/staff/{m1}/evaluations"),
                &evaluation(m2),
            )
            .await;
        let about_me_id = about_me.body["evaluation_id"]
            .as_str()
            .expect("id")
            .to_string();
        let before = app.event_count().await;
        app.post(
            &manager,
            &format!("/staff/{a1}/interviews/{interview_id}/corrections"),
            &json!({"note": "書き換え", "reason": "訂正"}),
        )
        .await
        .assert_problem(403, "forbidden");
        app.post(
            &manager,
            &format!("/staff/{a1}/interviews/{interview_id}/withdrawals"),
            &json!({"reason": "取下げ"}),
        )
        .await
        .assert_problem(403, "forbidden");
        app.post(
            &manager,
            &format!("/staff/{m1}/evaluations/{about_me_id}/corrections"),
            &json!({"overall": "S", "reason": "自己修正"}),
        )
        .await
        .assert_problem(403, "forbidden");
        assert_eq!(app.event_count().await, before);

        // Once the manager has left, the token stops working.
        assert_eq!(
            app.get(&manager, &format!("/staff/{a1}"))
                .await
                .status
                .as_u16(),
            200
        );
        let today = (chrono::Utc::now() + chrono::Duration::hours(9)).date_naive();
        let separated = app
            .post(
                &app.hr,
                &format!("/staff/{m1}/separations"),
                &json!({"effective_on": today, "reason": "resignation"}),
            )
            .await;
        assert_eq!(separated.status.as_u16(), 200, "{:?}", separated.body);
        app.get(&manager, &format!("/staff/{a1}"))
            .await
            .assert_problem(401, "unauthorized");
        app.post(
            &manager,
            &format!("/staff/{a1}/evaluations"),
            &evaluation(m1),
        )
        .await
        .assert_problem(401, "unauthorized");
    }
);
