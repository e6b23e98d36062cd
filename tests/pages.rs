//! The pages as HTTP: hostile text shows as text on every page, forms without their CSRF
//! token are refused and record nothing, every HTML response forbids script, framing and
//! sniffing, and each role reaches only what the one policy allows.

mod support;

use kiroku::storage::log;
use kiroku::storage::tokens::{self, Role};
use serde_json::json;
use support::pages::{PageClient, PageReply};
use support::{plan_item_body, staff_body, TestApp};

const HOSTILE: &str = "<script>alert(1)</script>\" onmouseover=\"x";
const ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;&quot; onmouseover=&quot;x";

/// What every page response must carry.
fn assert_page_headers(path: &str, reply: &PageReply) {
    let header = |name: &str| {
        reply
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    assert!(
        header("content-type").starts_with("text/html"),
        "{path}: {}",
        header("content-type")
    );
    let csp = header("content-security-policy");
    assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
    assert!(!csp.contains("script-src"), "{path}: {csp}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
    assert!(!reply.body.contains("<script"), "{path} has a script");
    assert!(!reply.body.contains("onmouseover=\"x"), "{path}");
}

async fn events(app: &TestApp) -> i64 {
    log::count(&app.ledger.backend).await.expect("count")
}

both_backends!(
    hostile_text_shows_as_text_and_forms_need_their_csrf_token,
    |app: TestApp| async move {
        assert_eq!(
            app.post(&app.hr, "/plan-items", &plan_item_body())
                .await
                .status
                .as_u16(),
            201
        );
        let activity = app
            .post(
                &app.hr,
                "/plan-items/2-1-2/activities",
                &json!({"fiscal_year": 2023, "planned": format!("研修{HOSTILE}")}),
            )
            .await;
        assert_eq!(activity.status.as_u16(), 200, "{:?}", activity.body);
        let session = app.schedule(10).await;
        let mut body = staff_body("B-001", "職員課", 2, "2015-04-01");
        body["name"] = json!(format!("山田{HOSTILE}"));
        let staff = app.post(&app.hr, "/staff", &body).await.id();
        app.post(
            &app.hr,
            &format!("/sessions/{session}/enrolments"),
            &json!({"staff_id": staff}),
        )
        .await;
        app.post(
            &app.hr,
            &format!("/sessions/{session}/completions"),
            &json!({"staff_id": staff, "completed_on": "2023-05-11", "understanding": 4}),
        )
        .await;
        let corrected = app
            .post(
                &app.hr,
                &format!("/sessions/{session}/completions/{staff}/corrections"),
                &json!({"understanding": 5, "reason": format!("入力誤り{HOSTILE}")}),
            )
            .await;
        assert_eq!(corrected.status.as_u16(), 200, "{:?}", corrected.body);

        let mut pages = PageClient::sign_in(&app, &app.hr).await;
        let trail = "/plan-items/2-1-2/trail?indicator=attendees&fiscal_year=2023";
        let listed = [
            ("/dashboard".to_string(), false),
            ("/plan-items/2-1-2".to_string(), true),
            (trail.to_string(), true),
            ("/staff".to_string(), true),
            ("/staff?q=B-001".to_string(), true),
            (format!("/staff/{staff}"), true),
            ("/sessions?fiscal_year=2023".to_string(), false),
            (format!("/sessions/{session}"), true),
            ("/imports".to_string(), false),
        ];
        for (path, shows_hostile) in &listed {
            let path = path.as_str();
            let reply = pages.get(path).await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.body);
            assert_page_headers(path, &reply);
            if *shows_hostile {
                assert!(
                    reply.body.contains(ESCAPED),
                    "{path} does not show the text"
                );
            }
        }
        let missing = pages.get("/no-such-page").await;
        assert_eq!(missing.status, 404);
        assert_page_headers("/no-such-page", &missing);
        assert!(missing.body.contains("ページが見つかりません"));
        let api_missing = pages.get("/api/v1/no-such-endpoint").await;
        assert_eq!(api_missing.status, 404);
        assert!(api_missing
            .headers
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap_or("").contains("problem+json")));

        // Forms without their token, or with another, are refused and record nothing.
        let before = events(&app).await;
        let enrol = format!("/sessions/{session}/enrol");
        for fields in [
            vec![("employee_no", "B-001")],
            vec![("employee_no", "B-001"), ("csrf", "forged")],
        ] {
            let refused = pages.post(&enrol, &fields).await;
            assert_eq!(refused.status, 403, "{}", refused.body);
            assert!(refused.body.contains("送信を受け付けられませんでした"));
            assert_page_headers(&enrol, &refused);
        }
        let revoke = format!("/sessions/{session}/revoke");
        let refused = pages
            .post(
                &revoke,
                &[("staff_id", &staff.to_string()), ("reason", "取消")],
            )
            .await;
        assert_eq!(refused.status, 403);
        assert_eq!(pages.post("/logout", &[]).await.status, 403);
        assert_eq!(
            events(&app).await,
            before,
            "a refused form recorded something"
        );

        // With the token the same form works; a refusal names the reason in Japanese.
        let csrf = pages.csrf.clone();
        let unknown = pages
            .post(&enrol, &[("csrf", &csrf), ("employee_no", "NO-SUCH")])
            .await;
        assert_eq!(unknown.status, 404, "{}", unknown.body);
        assert!(unknown.body.contains("記録できませんでした"));
        assert_eq!(events(&app).await, before);
        let revoked = pages
            .post(
                &revoke,
                &[
                    ("csrf", &csrf),
                    ("staff_id", &staff.to_string()),
                    ("reason", &format!("誤登録{HOSTILE}")),
                ],
            )
            .await;
        assert_eq!(revoked.status, 303, "{}", revoked.body);
        let after = pages.get(trail).await;
        assert!(
            after.body.contains(&format!("誤登録{ESCAPED}")),
            "the reason is not shown as text"
        );
        assert_page_headers(trail, &after);

        // The sign-in form needs its own token; a wrong token is slowed and refused.
        let mut stranger = PageClient::new(&app);
        let no_token = stranger.post("/login", &[("token", &app.hr)]).await;
        assert_eq!(no_token.status, 403);
        let form = stranger.get("/login").await;
        assert_page_headers("/login", &form);
        let login_csrf = support::pages::csrf_of(&form.body).expect("csrf");
        let wrong = stranger
            .post(
                "/login",
                &[("csrf", &login_csrf), ("token", "kiroku_wrong")],
            )
            .await;
        assert_eq!(wrong.status, 401);
        assert!(wrong.body.contains("トークンが正しくない"));
        assert_eq!(stranger.get("/dashboard").await.status, 303);

        // Sign-out ends the session.
        let out = pages.post("/logout", &[("csrf", &csrf)]).await;
        assert_eq!(out.status, 303);
        assert_eq!(pages.get("/dashboard").await.location(), Some("/login"));
    }
);

both_backends!(
    each_role_reaches_only_what_the_policy_allows,
    |app: TestApp| async move {
        let a1 = app.register("A-1", "職員課", 2).await;
        let a2 = app.register("A-2", "財政課", 2).await;
        let m1 = app.register("M-1", "職員課", 5).await;
        let interview = app
            .post(
                &app.hr,
                &format!("/staff/{a1}/interviews"),
                &json!({"kind": "one_on_one", "held_on": "2024-06-01", "interviewer_id": m1, "note": "面談メモ秘密"}),
            )
            .await;
        assert_eq!(interview.status.as_u16(), 201, "{:?}", interview.body);
        let evaluation = app
            .post(
                &app.hr,
                &format!("/staff/{a1}/evaluations"),
                &json!({"fiscal_year": 2024, "period": "first_half", "evaluator_id": m1, "overall": "A", "comment": "評価所見秘密"}),
            )
            .await;
        assert_eq!(evaluation.status.as_u16(), 201, "{:?}", evaluation.body);
        let backend = &app.ledger.backend;
        let manager = tokens::create(backend, Role::Manager, "職員課長", Some(m1))
            .await
            .expect("token");
        let staff = tokens::create(backend, Role::Staff, "職員A-1", Some(a1))
            .await
            .expect("token");

        // HR sees the confidential text.
        let mut hr = PageClient::sign_in(&app, &app.hr).await;
        let page = hr.get(&format!("/staff/{a1}")).await;
        assert!(page.body.contains("面談メモ秘密") && page.body.contains("評価所見秘密"));

        // The auditor reads everything but confidential text, and changes nothing.
        let mut auditor = PageClient::sign_in(&app, &app.auditor).await;
        for path in ["/dashboard", "/staff", "/sessions"] {
            assert_eq!(auditor.get(path).await.status, 200, "{path}");
        }
        let page = auditor.get(&format!("/staff/{a1}")).await;
        assert_eq!(page.status, 200);
        assert!(
            !page.body.contains("面談メモ秘密"),
            "the auditor reads a note"
        );
        assert!(
            !page.body.contains("評価所見秘密"),
            "the auditor reads a comment"
        );
        assert!(page.body.contains("非開示"));
        assert_eq!(auditor.get("/imports").await.status, 403);
        let forbidden = auditor.get("/imports").await;
        assert!(forbidden.body.contains("このページは表示できません"));

        // A manager reaches only their own department.
        let mut boss = PageClient::sign_in(&app, &manager).await;
        assert_eq!(boss.get(&format!("/staff/{a1}")).await.status, 200);
        assert_eq!(boss.get(&format!("/staff/{a2}")).await.status, 403);
        let list = boss.get("/staff").await;
        assert!(list.body.contains("A-1") && !list.body.contains("A-2"));
        assert_eq!(boss.get("/imports").await.status, 403);
        assert_eq!(boss.get("/sessions").await.status, 403);
        assert_eq!(boss.get("/dashboard").await.status, 200);
        // … and records interviews there, never elsewhere; HR-only forms are not offered.
        let own_page = boss.get(&format!("/staff/{a1}")).await;
        assert!(own_page.body.contains("面談の記録") && !own_page.body.contains("級の変更"));
        let csrf = boss.csrf.clone();
        let interview = [
            ("csrf", csrf.as_str()),
            ("form", "interview"),
            ("kind", "one_on_one"),
            ("held_on", "2024-07-01"),
            ("interviewer", "M-1"),
            ("note", "課長面談の記録"),
        ];
        let recorded = boss.post(&format!("/staff/{a1}"), &interview).await;
        assert_eq!(recorded.status, 303, "{}", recorded.body);
        let before = events(&app).await;
        let elsewhere = boss.post(&format!("/staff/{a2}"), &interview).await;
        assert_eq!(elsewhere.status, 403);
        let grade = [
            ("csrf", csrf.as_str()),
            ("form", "grade"),
            ("grade", "3"),
            ("effective_on", "2024-04-01"),
            ("reason", "promotion"),
        ];
        assert_eq!(boss.post(&format!("/staff/{a1}"), &grade).await.status, 403);
        assert_eq!(events(&app).await, before);

        // HR registers a person and records a transfer through the pages.
        let csrf = hr.csrf.clone();
        let registered = hr
            .post(
                "/staff/new",
                &[
                    ("csrf", csrf.as_str()),
                    ("employee_no", "N-1"),
                    ("name", "新井 さくら"),
                    ("gender", "female"),
                    ("hired_on", "2024-04-01"),
                    ("grade", "1"),
                    ("job_type", "administrative"),
                    ("employment", "regular"),
                    ("department", "財政課"),
                    ("department_kind", "administration"),
                ],
            )
            .await;
        assert_eq!(registered.status, 303, "{}", registered.body);
        let location = registered.location().expect("location").to_string();
        let moved = hr
            .post(
                location.split('?').next().unwrap_or(""),
                &[
                    ("csrf", csrf.as_str()),
                    ("form", "transfer"),
                    ("to_department", "職員課"),
                    ("department_kind", "administration"),
                    ("effective_on", "2025-04-01"),
                    ("kind", "regular"),
                ],
            )
            .await;
        assert_eq!(moved.status, 303, "{}", moved.body);
        let person = hr.get(moved.location().expect("back to the person")).await;
        assert!(person.body.contains("異動を記録しました") && person.body.contains("新井 さくら"));
        let again = hr
            .post(
                "/staff/new",
                &[
                    ("csrf", csrf.as_str()),
                    ("employee_no", "N-1"),
                    ("name", "重複"),
                    ("gender", "female"),
                    ("hired_on", "2024-04-01"),
                    ("grade", "1"),
                    ("job_type", "administrative"),
                    ("employment", "regular"),
                    ("department", "財政課"),
                    ("department_kind", "administration"),
                ],
            )
            .await;
        assert_eq!(again.status, 409, "{}", again.body);
        assert!(again.body.contains("すでに登録されています"));

        // A staff member reaches only their own pages.
        let mut own = PageClient::sign_in(&app, &staff).await;
        assert_eq!(
            own.get("/").await.location(),
            Some(format!("/staff/{a1}").as_str())
        );
        let mine = own.get(&format!("/staff/{a1}")).await;
        assert_eq!(mine.status, 200);
        assert!(
            mine.body.contains("評価所見秘密"),
            "one reads one's own evaluation"
        );
        assert!(
            !mine.body.contains("面談メモ秘密"),
            "an interview note is the interviewer's"
        );
        for path in [
            format!("/staff/{a2}"),
            format!("/staff/{m1}"),
            "/staff".to_string(),
            "/dashboard".to_string(),
            "/sessions".to_string(),
            "/imports".to_string(),
            "/plan-items/2-1-2".to_string(),
        ] {
            assert_eq!(own.get(&path).await.status, 403, "{path}");
        }
    }
);

both_backends!(
    hr_records_a_plan_item_through_its_forms,
    |app: TestApp| async move {
        let mut hr = PageClient::sign_in(&app, &app.hr).await;
        let csrf = hr.csrf.clone();
        let defined = hr
            .post(
                "/plan-items/new",
                &[
                    ("csrf", &csrf),
                    ("code", "9-1"),
                    ("title", "窓口サービスの向上"),
                    ("pillar", "市民サービスの改革"),
                    ("lead_department", "人事課"),
                    ("status", "new"),
                    ("from_fiscal_year", "2021"),
                    ("to_fiscal_year", "2025"),
                ],
            )
            .await;
        assert_eq!(
            defined.location(),
            Some("/plan-items/9-1/edit"),
            "{}",
            defined.body
        );
        let edit = "/plan-items/9-1/edit";
        let post = |fields: Vec<(&'static str, &'static str)>| fields;
        let forms = [
            post(vec![
                ("form", "indicator"),
                ("indicator_code", "satisfaction"),
                ("name", "窓口満足度"),
                ("kind", "outcome"),
                ("unit", "percent"),
            ]),
            post(vec![
                ("form", "target"),
                ("indicator_code", "satisfaction"),
                ("fiscal_year", "2023"),
                ("op", ">="),
                ("value", "80"),
            ]),
            post(vec![
                ("form", "actual"),
                ("indicator_code", "satisfaction"),
                ("fiscal_year", "2023"),
                ("value", "82.5"),
                ("status", "confirmed"),
            ]),
            post(vec![
                ("form", "activity"),
                ("fiscal_year", "2023"),
                ("planned", "窓口アンケートの実施"),
                ("result", "年2回実施"),
            ]),
        ];
        for fields in forms {
            let mut with_csrf = vec![("csrf", csrf.as_str())];
            with_csrf.extend(fields.iter().copied());
            let reply = hr.post(edit, &with_csrf).await;
            assert_eq!(reply.status, 200, "{fields:?}: {}", reply.body);
            assert!(reply.body.contains("しました"), "{fields:?}");
        }
        // Publishing a year without its self-evaluation is refused, in Japanese.
        let refused = hr
            .post(
                edit,
                &[
                    ("csrf", &csrf),
                    ("form", "publish"),
                    ("fiscal_year", "2023"),
                ],
            )
            .await;
        assert_eq!(refused.status, 409, "{}", refused.body);
        assert!(refused.body.contains("記録できませんでした"));
        let evaluated = hr
            .post(
                edit,
                &[
                    ("csrf", &csrf),
                    ("form", "self_evaluation"),
                    ("fiscal_year", "2023"),
                    ("grade", "A"),
                    ("next_step", "continue"),
                    ("reason", "目標を上回った"),
                ],
            )
            .await;
        assert_eq!(evaluated.status, 200, "{}", evaluated.body);
        let published = hr
            .post(
                edit,
                &[
                    ("csrf", &csrf),
                    ("form", "publish"),
                    ("fiscal_year", "2023"),
                ],
            )
            .await;
        assert_eq!(published.status, 200, "{}", published.body);
        assert!(published.body.contains("公表しました"));
        let before = events(&app).await;
        let again = hr
            .post(
                edit,
                &[
                    ("csrf", &csrf),
                    ("form", "publish"),
                    ("fiscal_year", "2023"),
                ],
            )
            .await;
        assert_eq!(
            again.status, 400,
            "a second version needs its reason: {}",
            again.body
        );
        let unreadable = hr
            .post(
                edit,
                &[
                    ("csrf", &csrf),
                    ("form", "target"),
                    ("indicator_code", "satisfaction"),
                    ("fiscal_year", "2023"),
                    ("op", ">="),
                    ("value", "たくさん"),
                ],
            )
            .await;
        assert_eq!(unreadable.status, 400);
        assert!(unreadable.body.contains("目標値は数値で入力してください"));
        let forged = hr
            .post(
                edit,
                &[
                    ("form", "external"),
                    ("fiscal_year", "2023"),
                    ("text", "良好"),
                ],
            )
            .await;
        assert_eq!(forged.status, 403);
        assert_eq!(events(&app).await, before);

        let sheet = hr.get("/plan-items/9-1").await;
        assert!(sheet.body.contains("82.5%"));
        assert!(sheet.body.contains("窓口アンケートの実施"));
        assert!(sheet.body.contains("A：計画どおり"));
        assert!(sheet.body.contains("第1版"));
        // A session scheduled from the sessions page.
        let scheduled = hr
            .post(
                "/sessions",
                &[
                    ("csrf", &csrf),
                    ("course_code", "K-900"),
                    ("title", "窓口応対研修"),
                    ("category", "specialized"),
                    ("delivery", "in_person"),
                    ("provider", "庁内"),
                    ("starts_on", "2024-06-03"),
                    ("ends_on", "2024-06-03"),
                    ("capacity", "20"),
                ],
            )
            .await;
        assert_eq!(scheduled.status, 303, "{}", scheduled.body);
        let location = scheduled.location().expect("to the session").to_string();
        let session = hr.get(&location).await;
        assert!(
            session.body.contains("研修を登録しました") && session.body.contains("窓口応対研修")
        );
        let bad = hr
            .post(
                "/sessions",
                &[
                    ("csrf", &csrf),
                    ("course_code", "K-901"),
                    ("title", "x"),
                    ("category", "specialized"),
                    ("delivery", "in_person"),
                    ("provider", "庁内"),
                    ("starts_on", "2024-06-03"),
                    ("ends_on", "2024-06-03"),
                    ("capacity", "たくさん"),
                ],
            )
            .await;
        assert_eq!(bad.status, 400);
        assert!(bad.body.contains("定員は 1 以上の数で入力してください"));
        let unreadable = hr.get("/dashboard?fiscal_year=abc").await;
        assert_eq!(unreadable.status, 400);
        assert!(unreadable.body.contains("アドレスの指定"));

        // The auditor may read the sheet but not the forms.
        let mut auditor = PageClient::sign_in(&app, &app.auditor).await;
        assert_eq!(auditor.get(edit).await.status, 403);
        assert!(!auditor.get("/plan-items/9-1").await.body.contains("/edit"));
    }
);
