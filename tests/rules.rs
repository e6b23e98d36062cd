//! Every indicator rule of SPEC §4 through the API, on both backends, against values computed
//! by hand from a small city whose edge cases sit on the fiscal-year boundaries.

mod support;

use serde_json::{json, Value};
use support::{sheet_cell, TestApp};
use uuid::Uuid;

fn indicator(code: &str, unit: &str, source: Value) -> Value {
    json!({"indicator_code": code, "name": code, "kind": "outcome", "unit": unit, "source": source})
}

fn plan() -> Value {
    json!({
        "code": "R-1", "title": "指標の検算", "pillar": "検算", "lead_department": "職員課",
        "status": "new", "from_fiscal_year": 2023, "to_fiscal_year": 2024,
        "indicators": [
            indicator("completions", "people", json!({"rule": "training_completions"})),
            indicator("tiered", "people", json!({"rule": "training_completions", "params": {"categories": ["tiered"]}})),
            indicator("academy", "people", json!({"rule": "training_completions", "params": {"provider": "市町村アカデミー"}})),
            indicator("participation", "percent", json!({"rule": "training_participation_rate"})),
            indicator("understanding", "percent", json!({"rule": "training_understanding_rate"})),
            indicator("interviews", "percent", json!({"rule": "interview_coverage"})),
            indicator("women", "percent", json!({"rule": "women_in_management_rate"})),
            indicator("top_women", "percent", json!({"rule": "women_in_management_rate", "params": {"min_grade": 8}})),
            indicator("rotation", "percent", json!({"rule": "rotation_coverage"})),
            indicator("dispatch", "people", json!({"rule": "dispatch_count"})),
            indicator("incidents", "count", json!({"rule": "compliance_incidents"})),
        ]
    })
}

async fn staff(app: &TestApp, no: &str, hired_on: &str, grade: u8, gender: &str) -> Uuid {
    let mut body = support::staff_body(no, "総務課", grade, hired_on);
    body["gender"] = json!(gender);
    let reply = app.post(&app.hr, "/staff", &body).await;
    assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
    reply.id()
}

async fn ok(app: &TestApp, path: &str, body: Value) -> Value {
    let reply = app.post(&app.hr, path, &body).await;
    assert!(reply.status.is_success(), "{path}: {:?}", reply.body);
    reply.body
}

async fn session(app: &TestApp, category: &str, provider: &str, starts_on: &str) -> Uuid {
    let mut body = support::session_body(20);
    body["category"] = json!(category);
    body["provider"] = json!(provider);
    body["starts_on"] = json!(starts_on);
    body["ends_on"] = json!(starts_on);
    let reply = app.post(&app.hr, "/sessions", &body).await;
    assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
    reply.id()
}

async fn complete(app: &TestApp, session: Uuid, staff: Uuid, on: &str, understanding: u8) {
    ok(
        app,
        &format!("/sessions/{session}/enrolments"),
        json!({"staff_id": staff}),
    )
    .await;
    let body = json!({"staff_id": staff, "completed_on": on, "understanding": understanding});
    ok(app, &format!("/sessions/{session}/completions"), body).await;
}

both_backends!(
    every_rule_matches_the_hand_computed_value,
    |app: TestApp| async move {
        ok(&app, "/plan-items", plan()).await;

        // A: hired on April 1 2023 → in FY2023's population. Woman, grade 6.
        let a = staff(&app, "A", "2023-04-01", 6, "female").await;
        // B: separated effective April 1 2023 → not in FY2023's population.
        let b = staff(&app, "B", "2010-04-01", 6, "male").await;
        ok(
            &app,
            &format!("/staff/{b}/separations"),
            json!({"effective_on": "2023-04-01", "reason": "retirement"}),
        )
        .await;
        // C: woman, grade 5 → 6 effective April 2 2023: not yet management on FY2023's 基準日.
        let c = staff(&app, "C", "2010-04-01", 5, "female").await;
        ok(
            &app,
            &format!("/staff/{c}/grade-changes"),
            json!({"grade": 6, "effective_on": "2023-04-02", "reason": "promotion"}),
        )
        .await;
        // D: man, grade 7, rotated through all three kinds of department, dispatched in FY2023.
        let d = staff(&app, "D", "2010-04-01", 7, "male").await;
        for (department, kind, on, transfer) in [
            ("市民課", "front_office", "2015-04-01", "regular"),
            ("観光振興課", "program", "2018-04-01", "regular"),
            ("県庁", "administration", "2023-10-01", "dispatch"),
        ] {
            let body = json!({"to_department": department, "department_kind": kind, "effective_on": on, "kind": transfer});
            ok(&app, &format!("/staff/{d}/transfers"), body).await;
        }

        let tiered = session(&app, "tiered", "庁内", "2024-03-01").await;
        let academy = session(&app, "specialized", "市町村アカデミー", "2023-06-01").await;
        complete(&app, tiered, a, "2024-03-31", 5).await; // FY2023, the last day
        complete(&app, tiered, c, "2024-04-01", 3).await; // FY2024, the first day
        complete(&app, tiered, d, "2024-03-15", 4).await;
        ok(
            &app,
            &format!("/sessions/{tiered}/completions/{d}/revocation"),
            json!({"reason": "欠席者の誤登録"}),
        )
        .await;
        complete(&app, academy, d, "2023-06-02", 2).await;
        ok(
            &app,
            &format!("/sessions/{academy}/completions/{d}/corrections"),
            json!({"understanding": 4, "reason": "アンケートの転記誤り"}),
        )
        .await;

        for (who, on) in [
            (a, "2023-05-01"),
            (a, "2023-10-01"),
            (c, "2023-05-01"),
            (c, "2023-10-01"),
        ] {
            let body =
                json!({"kind": "evaluation", "held_on": on, "interviewer_id": d, "note": "面談"});
            ok(&app, &format!("/staff/{who}/interviews"), body).await;
        }
        let c_profile = app.get(&app.hr, &format!("/staff/{c}")).await.body;
        let withdrawn = c_profile["interviews"][1]["interview_id"]
            .as_str()
            .expect("interview")
            .to_string();
        ok(
            &app,
            &format!("/staff/{c}/interviews/{withdrawn}/withdrawals"),
            json!({"reason": "重複登録"}),
        )
        .await;

        for on in ["2023-07-01", "2024-03-31", "2024-04-01"] {
            ok(
                &app,
                "/compliance-incidents",
                json!({"occurred_on": on, "department": "税務課", "summary": "通知書の誤送付"}),
            )
            .await;
        }
        let withdrawn = ok(
            &app,
            "/compliance-incidents",
            json!({"occurred_on": "2023-08-01", "department": "税務課", "summary": "誤登録"}),
        )
        .await;
        let withdrawn = withdrawn["id"].as_str().expect("id").to_string();
        ok(
            &app,
            &format!("/compliance-incidents/{withdrawn}/withdrawal"),
            json!({"reason": "事務処理誤りではなかった"}),
        )
        .await;

        let sheet = app.get(&app.auditor, "/plan-items/R-1/sheet").await.body;
        let actual =
            |code: &str, year: i64| sheet_cell(&sheet, code, year)["actual"]["value"].clone();
        let expected = [
            // A (03-31) and D's academy course; D's tiered completion was revoked; C's is FY2024.
            ("completions", 2023, json!(2.0)),
            ("completions", 2024, json!(1.0)),
            ("tiered", 2023, json!(1.0)),
            ("academy", 2023, json!(1.0)),
            // Population on 2023-04-01: A (hired that day), C, D — not B (separated that day).
            ("participation", 2023, json!(66.7)),
            ("participation", 2024, json!(33.3)),
            // A answered 5, D's 2 was corrected to 4; FY2024: C answered 3.
            ("understanding", 2023, json!(100.0)),
            ("understanding", 2024, json!(0.0)),
            // Two interviews each: A yes; C had one withdrawn; D none.
            ("interviews", 2023, json!(33.3)),
            // Grade ≥ 6 on 2023-04-01: A (woman), D; C only from 04-02. FY2024: A, C, D.
            ("women", 2023, json!(50.0)),
            ("women", 2024, json!(66.7)),
            ("top_women", 2023, Value::Null),
            // ≥ 10 years on 2023-04-01: C and D; only D served in all three kinds.
            ("rotation", 2023, json!(50.0)),
            ("dispatch", 2023, json!(1.0)),
            ("dispatch", 2024, json!(0.0)),
            // 07-01 and 03-31 in FY2023 (08-01 withdrawn), 04-01 in FY2024.
            ("incidents", 2023, json!(2.0)),
            ("incidents", 2024, json!(1.0)),
        ];
        let mut wrong = Vec::new();
        for (code, year, value) in expected {
            if actual(code, year) != value {
                wrong.push(format!(
                    "{code} FY{year}: expected {value}, got {}",
                    actual(code, year)
                ));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
        assert_eq!(
            sheet_cell(&sheet, "top_women", 2023)["achieved"],
            Value::Null
        );
    }
);
