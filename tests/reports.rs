//! Progress sheets from the log, as of any moment.

mod support;

use serde_json::{json, Value};
use support::TestApp;

async fn sheet_text(app: &TestApp, query: &str) -> (u16, String) {
    let response = app
        .client
        .get(app.url(&format!("/plan-items/2-1-2/sheet{query}")))
        .bearer_auth(&app.auditor)
        .send()
        .await
        .expect("sheet");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

async fn audit_text(app: &TestApp, query: &str) -> (u16, String) {
    let response = app
        .client
        .get(app.url(&format!(
            "/plan-items/2-1-2/audit?indicator=attendees&fiscal_year=2023{query}"
        )))
        .bearer_auth(&app.auditor)
        .send()
        .await
        .expect("audit");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

both_backends!(
    a_sheet_as_of_a_past_moment_stays_byte_identical,
    |app: TestApp| async move {
        let defined = app
            .post(&app.hr, "/plan-items", &support::plan_item_body())
            .await;
        assert_eq!(defined.status.as_u16(), 201, "{:?}", defined.body);
        // Nothing recorded yet: the list shows the latest year of the plan period that has
        // begun (FY2025, R7), not today's fiscal year outside the period.
        let empty = app.get(&app.auditor, "/plan-items").await;
        assert_eq!(empty.body["fiscal_year"], 2025, "{:?}", empty.body);
        let session = app.schedule(10).await;
        let mut staff = Vec::new();
        for i in 0..3 {
            let id = app.register(&format!("R{i}"), "職員課", 2).await;
            let completed = app
                .post(
                    &app.hr,
                    &format!("/sessions/{session}/completions"),
                    &json!({"staff_id": id, "completed_on": "2023-05-11", "understanding": 4}),
                )
                .await;
            // Not enrolled yet: the completion is refused, enrol first.
            completed.assert_problem(409, "not_enrolled");
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
        app.post(
        &app.hr,
        "/plan-items/2-1-2/actuals",
        &json!({"indicator_code": "want_management", "fiscal_year": 2023, "value": 18.5, "status": "estimate"}),
    )
    .await;

        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let t1 = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let (status, before) = sheet_text(&app, &format!("?as_of={t1}")).await;
        let (audit_status, audit_before) = audit_text(&app, &format!("&as_of={t1}")).await;
        assert_eq!(audit_status, 200, "{audit_before}");
        assert_eq!(status, 200, "{before}");
        let sheet: Value = serde_json::from_str(&before).expect("json");
        assert_eq!(sheet["fiscal_years"], json!([2021, 2022, 2023, 2024, 2025]));
        let attendees = support::sheet_cell(&sheet, "attendees", 2023);
        assert_eq!(attendees["label"], "令和5年度（2023年度）");
        assert_eq!(attendees["target"], json!({"op": ">=", "value": 2300.0}));
        assert_eq!(
            attendees["actual"],
            json!({"value": 3.0, "source": "computed"})
        );
        assert_eq!(attendees["achieved"], json!(false));
        let manual = support::sheet_cell(&sheet, "want_management", 2023);
        assert_eq!(
            manual["actual"],
            json!({"value": 18.5, "source": "estimate"})
        );

        // Later changes: a revocation, a revised target, a correction.
        let revoked = app
            .post(
                &app.hr,
                &format!("/sessions/{session}/completions/{}/revocation", staff[0]),
                &json!({"reason": "欠席者の誤登録"}),
            )
            .await;
        assert_eq!(revoked.status.as_u16(), 200, "{:?}", revoked.body);
        let target = app
        .post(
            &app.hr,
            "/plan-items/2-1-2/targets",
            &json!({"indicator_code": "attendees", "fiscal_year": 2023, "op": ">=", "value": 2}),
        )
        .await;
        assert_eq!(target.status.as_u16(), 200, "{:?}", target.body);
        app.post(
        &app.hr,
        "/plan-items/2-1-2/actual-corrections",
        &json!({"indicator_code": "want_management", "fiscal_year": 2023, "value": 19.0, "reason": "集計誤り"}),
    )
    .await;

        let (_, again) = sheet_text(&app, &format!("?as_of={t1}")).await;
        assert_eq!(again, before, "the same as_of gives byte-identical output");

        let (_, now) = sheet_text(&app, "").await;
        let now: Value = serde_json::from_str(&now).expect("json");
        let attendees = support::sheet_cell(&now, "attendees", 2023);
        assert_eq!(attendees["actual"]["value"], json!(2.0));
        assert_eq!(attendees["target"]["value"], json!(2.0));
        assert_eq!(attendees["achieved"], json!(true));
        assert_eq!(
            support::sheet_cell(&now, "want_management", 2023)["actual"]["value"],
            json!(19.0)
        );

        // A year without a self-evaluation is not published; nothing is appended.
        let count = app.event_count().await;
        app.post(
            &app.hr,
            "/plan-items/2-1-2/publications",
            &json!({"fiscal_year": 2023}),
        )
        .await
        .assert_problem(409, "self_evaluation_missing");
        assert_eq!(app.event_count().await, count);
        let evaluated = app
            .post(
                &app.hr,
                "/plan-items/2-1-2/self-evaluations",
                &json!({"fiscal_year": 2023, "grade": "A", "reason": "計画どおり", "next_step": "continue"}),
            )
            .await;
        assert_eq!(evaluated.status.as_u16(), 200, "{:?}", evaluated.body);

        // Publish FY2023, then revoke one more completion: the sheet shows both and the drift.
        let published = app
            .post(
                &app.hr,
                "/plan-items/2-1-2/publications",
                &json!({"fiscal_year": 2023}),
            )
            .await;
        assert_eq!(published.status.as_u16(), 201, "{:?}", published.body);
        let revoked = app
            .post(
                &app.hr,
                &format!("/sessions/{session}/completions/{}/revocation", staff[1]),
                &json!({"reason": "受講記録の重複"}),
            )
            .await;
        assert_eq!(revoked.status.as_u16(), 200, "{:?}", revoked.body);
        let (_, now) = sheet_text(&app, "").await;
        let now: Value = serde_json::from_str(&now).expect("json");
        let attendees = support::sheet_cell(&now, "attendees", 2023);
        assert_eq!(attendees["published"]["value"], json!(2.0));
        assert_eq!(attendees["actual"]["value"], json!(1.0));
        assert_eq!(attendees["drift"], json!(-1.0));
        assert_eq!(attendees["published"]["version"], json!(1));
        assert_eq!(
            attendees["published"]["published_by"],
            json!("人事課 テスト")
        );
        let today = chrono::Utc::now()
            .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).expect("JST"))
            .format("%Y-%m-%d")
            .to_string();
        assert_eq!(attendees["published"]["published_on"], json!(today));

        // Publishing the year again needs a reason, and keeps the first version.
        let count = app.event_count().await;
        app.post(
            &app.hr,
            "/plan-items/2-1-2/publications",
            &json!({"fiscal_year": 2023}),
        )
        .await
        .assert_problem(400, "publication_reason_required");
        assert_eq!(app.event_count().await, count);
        let (_, first_version) = sheet_text(&app, "").await;
        let republished = app
            .post(
                &app.hr,
                "/plan-items/2-1-2/publications",
                &json!({"fiscal_year": 2023, "reason": "受講記録の重複を訂正したため"}),
            )
            .await;
        assert_eq!(republished.status.as_u16(), 201, "{:?}", republished.body);
        let (_, now) = sheet_text(&app, "").await;
        let now: Value = serde_json::from_str(&now).expect("json");
        let attendees = support::sheet_cell(&now, "attendees", 2023);
        assert_eq!(attendees["published"]["value"], json!(1.0));
        assert_eq!(attendees["published"]["version"], json!(2));
        assert_eq!(
            attendees["published"]["reason"],
            json!("受講記録の重複を訂正したため")
        );
        assert_eq!(attendees["drift"], json!(0.0));
        let first_version: Value = serde_json::from_str(&first_version).expect("json");
        assert_eq!(
            support::sheet_cell(&first_version, "attendees", 2023)["published"]["value"],
            json!(2.0),
            "the first version is still what the sheet showed before"
        );
        let (_, csv) = sheet_text(&app, "?format=csv").await;
        assert!(
            csv.contains(&format!("{today} 第2版（人事課 テスト）")),
            "{csv}"
        );

        let (_, after_publication) = sheet_text(&app, &format!("?as_of={t1}")).await;
        assert_eq!(
            after_publication, before,
            "a publication and a later revocation leave the sheet as of T1 unchanged"
        );

        // The audit trail of the cell, for people: newest first, publications with their
        // version and reason, the staff member, course and completion date behind a change.
        let (status, trail) = audit_text(&app, "").await;
        assert_eq!(status, 200, "{trail}");
        let trail: Value = serde_json::from_str(&trail).expect("json");
        let changes = trail["changes"].as_array().cloned().unwrap_or_default();
        let positions: Vec<i64> = changes
            .iter()
            .filter_map(|c| c["position"].as_i64())
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] > w[1]),
            "newest first: {positions:?}"
        );
        let second = &changes[0];
        assert_eq!(second["field"], "publication");
        assert_eq!(second["event_label"], "公表");
        assert_eq!(second["after_text"], "第2版 1人");
        assert_eq!(second["before_text"], "第1版 2人");
        assert_eq!(second["reason"], "受講記録の重複を訂正したため");
        // To the second: two changes in one minute still read in their order.
        let jst = second["recorded_at_jst"].as_str().unwrap_or("");
        assert!(
            jst.len() == 23 && jst.ends_with(" JST") && jst.as_bytes()[16] == b':',
            "{jst}"
        );
        let revocation = changes
            .iter()
            .find(|c| c["event_type"] == "CompletionRevoked")
            .expect("a revocation row");
        assert_eq!(revocation["reason"], "受講記録の重複");
        assert_eq!(revocation["staff"]["employee_no"], "R1");
        assert_eq!(revocation["staff"]["name"], "髙橋 花子R1");
        assert_eq!(revocation["course"]["course_code"], "K-101");
        assert_eq!(revocation["course"]["title"], "新任主査研修");
        assert_eq!(revocation["before_text"], "2人");
        assert_eq!(revocation["after_text"], "1人");
        let completion = changes
            .iter()
            .find(|c| c["event_type"] == "TrainingCompleted")
            .expect("a completion row");
        assert_eq!(completion["completed_on"], "2023-05-11");
        assert_eq!(completion["event_label"], "研修の修了");
        // The revocation came after the first publication; nothing came after the second.
        assert_eq!(trail["after_last_publication"], 0);
        assert_eq!(revocation["after_publication"], false);
        let total = trail["total"].as_u64().expect("total");
        assert_eq!(total as usize, changes.len());
        // Paged.
        let (_, page) = audit_text(&app, "&per_page=2&page=2").await;
        let page: Value = serde_json::from_str(&page).expect("json");
        assert_eq!(page["changes"].as_array().map(Vec::len), Some(2));
        assert_eq!(page["changes"][0]["position"], changes[2]["position"]);
        assert_eq!(page["pages"].as_u64(), Some(total.div_ceil(2)));
        let (status, _) = audit_text(&app, "&per_page=100000").await;
        assert_eq!(status, 400);
        // As CSV, the whole trail in JST with Japanese headings.
        let (status, csv) = audit_text(&app, "&format=csv").await;
        assert_eq!(status, 200);
        assert!(csv.starts_with('\u{feff}'), "a BOM for Excel");
        assert!(csv.contains(
            "記録日時（JST）,記録者,種別,項目,変更前,変更後,職員番号,氏名,研修,修了日,理由"
        ));
        assert!(csv.contains("公表,公表値,第1版 2人,第2版 1人"), "{csv}");
        assert!(csv.contains("受講記録の重複を訂正したため"));
        assert!(csv.contains("R1,髙橋 花子R1,K-101 新任主査研修"), "{csv}");
        assert_eq!(csv.lines().count() as u64, total + 2);

        // The same sheet in the other formats, over HTTP.
        for (format, content_type, magic) in [
            ("csv", "text/csv; charset=utf-8", &b"\xEF\xBB\xBF"[..]),
            (
                "xlsx",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                &b"PK"[..],
            ),
            ("html", "text/html; charset=utf-8", &b"<!DOCTYPE html>"[..]),
        ] {
            let response = app
                .client
                .get(app.url(&format!("/plan-items/2-1-2/sheet?format={format}")))
                .bearer_auth(&app.auditor)
                .send()
                .await
                .expect("sheet");
            assert_eq!(response.status().as_u16(), 200, "{format}");
            assert_eq!(response.headers()["content-type"], content_type);
            let bytes = response.bytes().await.expect("bytes");
            assert!(
                bytes.starts_with(magic),
                "{format} starts with its signature"
            );
        }
        let (status, _) = sheet_text(&app, "?format=pdf").await;
        assert_eq!(status, 400);

        let list = app.get(&app.auditor, "/plan-items").await;
        assert_eq!(list.status.as_u16(), 200);
        assert_eq!(list.body["items"][0]["code"], "2-1-2");
        // The latest year with data (FY2023), not the empty current year after the period.
        assert_eq!(list.body["fiscal_year"], 2023);
        assert_eq!(list.body["items"][0]["fiscal_year"], 2023);
        assert_eq!(list.body["label"], "令和5年度（2023年度）");
        assert_eq!(
            list.body["items"][0]["indicators"][0]["actual"]["value"],
            json!(1.0)
        );
        let asked = app.get(&app.auditor, "/plan-items?fiscal_year=2022").await;
        assert_eq!(asked.body["fiscal_year"], 2022);
        assert_eq!(
            asked.body["items"][0]["indicators"][0]["actual"]["value"],
            json!(0.0)
        );
        assert_eq!(list.body["items"][0]["indicators"][0]["code"], "attendees");
        let staff_token = app
            .token(kiroku::storage::tokens::Role::Staff, "職員", Some(staff[2]))
            .await;
        app.get(&staff_token, "/plan-items")
            .await
            .assert_problem(403, "forbidden");

        let (status, _) = sheet_text(&app, "?as_of=yesterday").await;
        assert_eq!(status, 400);
        // The future cannot be shown; a date alone is the end of that day in Japan.
        let (status, body) = sheet_text(&app, "?as_of=2999-01-01").await;
        assert_eq!(status, 400);
        assert!(body.contains("as_of_in_future"), "{body}");
        assert!(body.contains("未来"), "{body}");
        let (status, body) = sheet_text(&app, "?as_of=2024-05-31").await;
        assert_eq!(status, 404, "the item was defined later: {body}");
        let (status, body) = sheet_text(&app, &format!("?as_of={today}")).await;
        assert_eq!(status, 200);
        let body: Value = serde_json::from_str(&body).expect("json");
        assert!(
            body["as_of_jst"].as_str().unwrap_or("").starts_with(&today),
            "{}",
            body["as_of_jst"]
        );
    }
);
