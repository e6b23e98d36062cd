//! SPEC §3 invariants and hostile input, black-box over HTTP.
//!
//! (A) Every invariant of SPEC §3: the violating command is refused with its problem+json
//!     `code` and the log is unchanged (event count before = after); next to it, a positive
//!     control shows the valid command is accepted.
//! (B) Malformed JSON, wrong types, impossible dates, out-of-range values, unknown ids and
//!     oversized bodies: each a 4xx problem+json, never a 500, never a panic; the server keeps
//!     answering afterwards.

mod support;

use kiroku::storage::tokens::Role;
use serde_json::{json, Value};
use support::{plan_item_body, session_body, staff_body, Reply, TestApp};
use uuid::Uuid;

/// Posts a command that must be refused with `status` and `code`, and checks that nothing
/// was appended to the log.
async fn refused(
    app: &TestApp,
    token: &str,
    path: &str,
    body: &Value,
    status: u16,
    code: &str,
) -> Reply {
    let before = app.event_count().await;
    let reply = app.post(token, path, body).await;
    assert_eq!(
        (reply.status.as_u16(), reply.code()),
        (status, code),
        "POST {path} {body} answered {:?}",
        reply.body
    );
    reply.assert_problem(status, code);
    assert_eq!(
        app.event_count().await,
        before,
        "the refused POST {path} {body} appended events"
    );
    reply
}

/// Posts a command that must be accepted with `status`, and checks that it appended events.
async fn accepted(app: &TestApp, path: &str, body: &Value, status: u16) -> Reply {
    let before = app.event_count().await;
    let reply = app.post(&app.hr, path, body).await;
    assert_eq!(
        reply.status.as_u16(),
        status,
        "POST {path} {body} answered {:?}",
        reply.body
    );
    assert!(
        app.event_count().await > before,
        "the accepted POST {path} {body} appended nothing"
    );
    reply
}

/// The id a command response names under `field` (`interview_id`, `evaluation_id`).
fn uuid_field(reply: &Reply, field: &str) -> Uuid {
    reply.body[field]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or_else(|| panic!("no {field} in {:?}", reply.body))
}

fn grade_change(grade: u8, effective_on: &str) -> Value {
    json!({"grade": grade, "effective_on": effective_on, "reason": "promotion"})
}

fn transfer(effective_on: &str) -> Value {
    json!({
        "to_department": "税務課",
        "department_kind": "front_office",
        "effective_on": effective_on,
        "kind": "regular",
    })
}

fn separation(effective_on: &str) -> Value {
    json!({"effective_on": effective_on, "reason": "resignation"})
}

fn rehire(effective_on: &str) -> Value {
    json!({
        "effective_on": effective_on,
        "grade": 3,
        "department": "税務課",
        "department_kind": "front_office",
        "employment": "reappointed",
    })
}

fn interview(interviewer: Uuid, held_on: &str) -> Value {
    json!({
        "kind": "one_on_one",
        "held_on": held_on,
        "interviewer_id": interviewer,
        "note": "今年度の目標について話した",
    })
}

fn evaluation(evaluator: Uuid, competency: u8) -> Value {
    json!({
        "fiscal_year": 2023,
        "period": "annual",
        "evaluator_id": evaluator,
        "overall": "B",
        "competencies": {"企画力": competency, "協調性": 3},
        "comment": "着実に業務を遂行した",
    })
}

// ---------------------------------------------------------------------------------------
// (A) Staff: registration, grades, transfers, separation and rehire.
// ---------------------------------------------------------------------------------------

both_backends!(
    staff_service_invariants_are_enforced,
    |app: TestApp| async move {
        let hr = app.hr.clone();
        // Hired 2015-04-01 (the support default).
        let a = app.register("S001", "総務課", 3).await;
        let b = app.register("S002", "総務課", 3).await;

        // employee_no is unique in the ledger.
        refused(
            &app,
            &hr,
            "/staff",
            &staff_body("S001", "人事課", 2, "2020-04-01"),
            409,
            "employee_no_taken",
        )
        .await;

        // Commands about nobody.
        let nobody = Uuid::new_v4();
        refused(
            &app,
            &hr,
            &format!("/staff/{nobody}/grade-changes"),
            &grade_change(4, "2023-04-01"),
            404,
            "staff_not_found",
        )
        .await;

        // Grade change / transfer before hiring: not in service.
        refused(
            &app,
            &hr,
            &format!("/staff/{a}/grade-changes"),
            &grade_change(4, "2010-04-01"),
            409,
            "not_in_service",
        )
        .await;
        refused(
            &app,
            &hr,
            &format!("/staff/{a}/transfers"),
            &transfer("2015-03-31"),
            409,
            "not_in_service",
        )
        .await;

        // Positive controls while in service.
        accepted(
            &app,
            &format!("/staff/{a}/grade-changes"),
            &grade_change(4, "2020-04-01"),
            200,
        )
        .await;
        accepted(
            &app,
            &format!("/staff/{a}/transfers"),
            &transfer("2021-04-01"),
            200,
        )
        .await;

        // Rehire while still in service.
        refused(
            &app,
            &hr,
            &format!("/staff/{b}/rehires"),
            &rehire("2024-04-01"),
            409,
            "still_in_service",
        )
        .await;
        // A separation on (or before) the first day of service is out of order.
        refused(
            &app,
            &hr,
            &format!("/staff/{b}/separations"),
            &separation("2015-04-01"),
            409,
            "date_out_of_order",
        )
        .await;

        // Separate a; afterwards grade changes, transfers and a second separation are refused.
        accepted(
            &app,
            &format!("/staff/{a}/separations"),
            &separation("2023-04-01"),
            200,
        )
        .await;
        refused(
            &app,
            &hr,
            &format!("/staff/{a}/grade-changes"),
            &grade_change(5, "2023-04-01"),
            409,
            "not_in_service",
        )
        .await;
        refused(
            &app,
            &hr,
            &format!("/staff/{a}/grade-changes"),
            &grade_change(5, "2023-10-01"),
            409,
            "not_in_service",
        )
        .await;
        refused(
            &app,
            &hr,
            &format!("/staff/{a}/transfers"),
            &transfer("2024-04-01"),
            409,
            "not_in_service",
        )
        .await;
        refused(
            &app,
            &hr,
            &format!("/staff/{a}/separations"),
            &separation("2024-04-01"),
            409,
            "not_in_service",
        )
        .await;
        // A rehire before the separation took effect.
        refused(
            &app,
            &hr,
            &format!("/staff/{a}/rehires"),
            &rehire("2022-04-01"),
            409,
            "date_out_of_order",
        )
        .await;

        // Grades stay in 1–8 on a rehire too.
        let mut grade_nine = rehire("2024-04-01");
        grade_nine["grade"] = json!(9);
        refused(
            &app,
            &hr,
            &format!("/staff/{a}/rehires"),
            &grade_nine,
            400,
            "validation_failed",
        )
        .await;
        // A rehire starts a new period of service: the same commands are accepted again.
        accepted(
            &app,
            &format!("/staff/{a}/rehires"),
            &rehire("2024-04-01"),
            200,
        )
        .await;
        refused(
            &app,
            &hr,
            &format!("/staff/{a}/rehires"),
            &rehire("2025-04-01"),
            409,
            "still_in_service",
        )
        .await;
        accepted(
            &app,
            &format!("/staff/{a}/grade-changes"),
            &grade_change(5, "2024-10-01"),
            200,
        )
        .await;
        accepted(
            &app,
            &format!("/staff/{a}/transfers"),
            &transfer("2025-04-01"),
            200,
        )
        .await;
        // The gap between the periods is still outside service.
        refused(
            &app,
            &hr,
            &format!("/staff/{a}/grade-changes"),
            &grade_change(6, "2023-10-01"),
            409,
            "not_in_service",
        )
        .await;

        let profile = app.get(&hr, &format!("/staff/{a}")).await;
        assert_eq!(profile.status.as_u16(), 200, "{:?}", profile.body);
        assert_eq!(
            profile.body["service"].as_array().map(Vec::len),
            Some(2),
            "two periods of service: {:?}",
            profile.body["service"]
        );
    }
);

// ---------------------------------------------------------------------------------------
// (A) Staff: interviews and evaluations.
// ---------------------------------------------------------------------------------------

both_backends!(
    interview_and_evaluation_invariants_are_enforced,
    |app: TestApp| async move {
        let hr = app.hr.clone();
        let s = app.register("S001", "総務課", 3).await;
        let m = app.register("M001", "総務課", 6).await;
        let interviews = format!("/staff/{s}/interviews");

        // The interviewer must exist.
        refused(
            &app,
            &hr,
            &interviews,
            &interview(Uuid::new_v4(), "2023-06-01"),
            404,
            "interviewer_not_found",
        )
        .await;
        // The interviewed staff member must exist.
        refused(
            &app,
            &hr,
            &format!("/staff/{}/interviews", Uuid::new_v4()),
            &interview(m, "2023-06-01"),
            404,
            "staff_not_found",
        )
        .await;
        // held_on while in service (hired 2015-04-01).
        refused(
            &app,
            &hr,
            &interviews,
            &interview(m, "2010-06-01"),
            409,
            "not_in_service",
        )
        .await;

        // Positive control.
        let recorded = accepted(&app, &interviews, &interview(m, "2023-06-01"), 201).await;
        let iid = uuid_field(&recorded, "interview_id");
        let corrections = format!("/staff/{s}/interviews/{iid}/corrections");
        let withdrawals = format!("/staff/{s}/interviews/{iid}/withdrawals");

        // A correction needs its reason.
        refused(
            &app,
            &hr,
            &corrections,
            &json!({"kind": "career"}),
            400,
            "validation_failed",
        )
        .await;
        refused(
            &app,
            &hr,
            &corrections,
            &json!({"kind": "career", "reason": "   "}),
            400,
            "validation_failed",
        )
        .await;
        // A correction of an unknown interview.
        refused(
            &app,
            &hr,
            &format!("/staff/{s}/interviews/{}/corrections", Uuid::new_v4()),
            &json!({"kind": "career", "reason": "種別の誤り"}),
            404,
            "interview_not_found",
        )
        .await;
        // A correction that changes nothing.
        refused(
            &app,
            &hr,
            &corrections,
            &json!({"reason": "確認"}),
            400,
            "nothing_to_correct",
        )
        .await;
        // A corrected date must still lie in service.
        refused(
            &app,
            &hr,
            &corrections,
            &json!({"held_on": "2010-06-01", "reason": "日付の誤り"}),
            409,
            "not_in_service",
        )
        .await;
        accepted(
            &app,
            &corrections,
            &json!({"kind": "career", "reason": "種別の誤り"}),
            200,
        )
        .await;

        // A withdrawal needs its reason; a withdrawn interview can be neither corrected nor
        // withdrawn again.
        refused(
            &app,
            &hr,
            &withdrawals,
            &json!({}),
            400,
            "validation_failed",
        )
        .await;
        refused(
            &app,
            &hr,
            &format!("/staff/{s}/interviews/{}/withdrawals", Uuid::new_v4()),
            &json!({"reason": "重複登録"}),
            404,
            "interview_not_found",
        )
        .await;
        accepted(&app, &withdrawals, &json!({"reason": "重複登録"}), 200).await;
        refused(
            &app,
            &hr,
            &corrections,
            &json!({"kind": "hr", "reason": "種別の誤り"}),
            409,
            "interview_withdrawn",
        )
        .await;
        refused(
            &app,
            &hr,
            &withdrawals,
            &json!({"reason": "重複登録"}),
            409,
            "interview_withdrawn",
        )
        .await;

        // Evaluations: the evaluator must exist; competency scores are 1–5.
        let evaluations = format!("/staff/{s}/evaluations");
        refused(
            &app,
            &hr,
            &evaluations,
            &evaluation(Uuid::new_v4(), 3),
            404,
            "evaluator_not_found",
        )
        .await;
        refused(
            &app,
            &hr,
            &evaluations,
            &evaluation(m, 6),
            400,
            "competency_out_of_range",
        )
        .await;
        refused(
            &app,
            &hr,
            &evaluations,
            &evaluation(m, 0),
            400,
            "competency_out_of_range",
        )
        .await;
        let recorded = accepted(&app, &evaluations, &evaluation(m, 5), 201).await;
        let eid = uuid_field(&recorded, "evaluation_id");

        // Corrections: the evaluation must exist, the reason is required, scores stay 1–5.
        let eval_corrections = format!("/staff/{s}/evaluations/{eid}/corrections");
        refused(
            &app,
            &hr,
            &format!("/staff/{s}/evaluations/{}/corrections", Uuid::new_v4()),
            &json!({"overall": "A", "reason": "集計誤り"}),
            404,
            "evaluation_not_found",
        )
        .await;
        refused(
            &app,
            &hr,
            &eval_corrections,
            &json!({"overall": "A"}),
            400,
            "validation_failed",
        )
        .await;
        refused(
            &app,
            &hr,
            &eval_corrections,
            &json!({"competencies": {"企画力": 6}, "reason": "集計誤り"}),
            400,
            "competency_out_of_range",
        )
        .await;
        accepted(
            &app,
            &eval_corrections,
            &json!({"overall": "A", "reason": "集計誤り"}),
            200,
        )
        .await;

        // Disputes: about an existing evaluation, one open at a time.
        let disputes = format!("/staff/{s}/evaluations/{eid}/disputes");
        let resolutions = format!("/staff/{s}/evaluations/{eid}/dispute-resolutions");
        refused(
            &app,
            &hr,
            &format!("/staff/{s}/evaluations/{}/disputes", Uuid::new_v4()),
            &json!({"text": "評価に納得できない"}),
            404,
            "evaluation_not_found",
        )
        .await;
        refused(
            &app,
            &hr,
            &resolutions,
            &json!({"outcome": "評価を維持", "reason": "確認済み"}),
            409,
            "no_open_dispute",
        )
        .await;
        accepted(&app, &disputes, &json!({"text": "評価に納得できない"}), 201).await;
        refused(
            &app,
            &hr,
            &disputes,
            &json!({"text": "再申出"}),
            409,
            "dispute_already_open",
        )
        .await;
        accepted(
            &app,
            &resolutions,
            &json!({"outcome": "評価を維持", "reason": "確認済み"}),
            200,
        )
        .await;
        refused(
            &app,
            &hr,
            &resolutions,
            &json!({"outcome": "評価を維持", "reason": "確認済み"}),
            409,
            "no_open_dispute",
        )
        .await;

        // The staff member may dispute their own evaluation; someone else may not.
        let other = app.token(Role::Staff, "他の職員", Some(m)).await;
        refused(
            &app,
            &other,
            &disputes,
            &json!({"text": "代理の申出"}),
            403,
            "forbidden",
        )
        .await;
        let own = app.token(Role::Staff, "本人", Some(s)).await;
        let before = app.event_count().await;
        let reply = app
            .post(&own, &disputes, &json!({"text": "再度の申出"}))
            .await;
        assert_eq!(reply.status.as_u16(), 201, "own dispute: {:?}", reply.body);
        assert_eq!(app.event_count().await, before + 1);
        refused(
            &app,
            &own,
            &disputes,
            &json!({"text": "再々申出"}),
            409,
            "dispute_already_open",
        )
        .await;
    }
);

// ---------------------------------------------------------------------------------------
// (A) Training sessions: scheduling, enrolment, completion, correction, revocation.
// ---------------------------------------------------------------------------------------

both_backends!(session_invariants_are_enforced, |app: TestApp| async move {
    let hr = app.hr.clone();

    // Scheduling: starts_on ≤ ends_on, capacity ≥ 1.
    let mut backwards = session_body(10);
    backwards["ends_on"] = json!("2023-05-09");
    refused(
        &app,
        &hr,
        "/sessions",
        &backwards,
        400,
        "ends_before_starts",
    )
    .await;
    refused(
        &app,
        &hr,
        "/sessions",
        &session_body(0),
        400,
        "invalid_capacity",
    )
    .await;
    let mut one_day = session_body(1);
    one_day["ends_on"] = json!("2023-05-10");
    accepted(&app, "/sessions", &one_day, 201).await;

    // A session of one place (starts 2023-05-10) and three staff members.
    let session = app.schedule(1).await;
    let a = app.register("A001", "総務課", 2).await;
    let b = app.register("B001", "総務課", 2).await;
    let c = app.register("C001", "総務課", 2).await;
    let enrolments = format!("/sessions/{session}/enrolments");
    let completions = format!("/sessions/{session}/completions");
    let complete =
        |staff: Uuid, on: &str| json!({"staff_id": staff, "completed_on": on, "understanding": 4});

    // Enrolment: the staff member must exist, and may hold only one place.
    refused(
        &app,
        &hr,
        &enrolments,
        &json!({"staff_id": Uuid::new_v4()}),
        404,
        "staff_not_found",
    )
    .await;
    let first = accepted(&app, &enrolments, &json!({"staff_id": a}), 201).await;
    assert_eq!(first.body["status"], "enrolled");
    refused(
        &app,
        &hr,
        &enrolments,
        &json!({"staff_id": a}),
        409,
        "already_enrolled",
    )
    .await;
    let second = accepted(&app, &enrolments, &json!({"staff_id": b}), 201).await;
    assert_eq!(
        second.body["status"], "waitlisted",
        "over capacity → waitlisted"
    );
    refused(
        &app,
        &hr,
        &enrolments,
        &json!({"staff_id": b}),
        409,
        "already_enrolled",
    )
    .await;

    // Cancelling without a place.
    refused(
        &app,
        &hr,
        &format!("/sessions/{session}/enrolments/{c}/cancellation"),
        &json!({"reason": "業務都合"}),
        409,
        "not_enrolled",
    )
    .await;

    // Completion: enrolled (not waitlisted, not absent), not before the session starts.
    refused(
        &app,
        &hr,
        &completions,
        &complete(c, "2023-05-11"),
        409,
        "not_enrolled",
    )
    .await;
    refused(
        &app,
        &hr,
        &completions,
        &complete(b, "2023-05-11"),
        409,
        "waitlisted",
    )
    .await;
    refused(
        &app,
        &hr,
        &completions,
        &complete(a, "2023-05-09"),
        400,
        "completed_before_start",
    )
    .await;

    // Corrections and revocations need a standing completion.
    let a_corrections = format!("/sessions/{session}/completions/{a}/corrections");
    let a_revocation = format!("/sessions/{session}/completions/{a}/revocation");
    refused(
        &app,
        &hr,
        &a_corrections,
        &json!({"understanding": 5, "reason": "転記誤り"}),
        409,
        "not_completed",
    )
    .await;
    refused(
        &app,
        &hr,
        &a_revocation,
        &json!({"reason": "欠席が判明"}),
        409,
        "not_completed",
    )
    .await;

    // Positive control, then no second completion.
    accepted(&app, &completions, &complete(a, "2023-05-11"), 201).await;
    refused(
        &app,
        &hr,
        &completions,
        &complete(a, "2023-05-11"),
        409,
        "already_completed",
    )
    .await;

    // Corrections need a reason and a change, and keep completed_on ≥ starts_on.
    refused(
        &app,
        &hr,
        &a_corrections,
        &json!({"understanding": 5}),
        400,
        "validation_failed",
    )
    .await;
    refused(
        &app,
        &hr,
        &a_corrections,
        &json!({"reason": "確認"}),
        400,
        "nothing_to_correct",
    )
    .await;
    refused(
        &app,
        &hr,
        &a_corrections,
        &json!({"completed_on": "2023-05-01", "reason": "転記誤り"}),
        400,
        "completed_before_start",
    )
    .await;
    refused(
        &app,
        &hr,
        &a_corrections,
        &json!({"understanding": 6, "reason": "転記誤り"}),
        400,
        "validation_failed",
    )
    .await;
    accepted(
        &app,
        &a_corrections,
        &json!({"understanding": 5, "reason": "転記誤り"}),
        200,
    )
    .await;
    // Correcting a completion of someone who never completed.
    refused(
        &app,
        &hr,
        &format!("/sessions/{session}/completions/{c}/corrections"),
        &json!({"understanding": 5, "reason": "転記誤り"}),
        409,
        "not_completed",
    )
    .await;

    // Revocation needs its reason; revoking twice is refused; a revoked completion can be
    // neither corrected nor revoked, but may be completed again.
    refused(
        &app,
        &hr,
        &a_revocation,
        &json!({}),
        400,
        "validation_failed",
    )
    .await;
    accepted(&app, &a_revocation, &json!({"reason": "欠席が判明"}), 200).await;
    refused(
        &app,
        &hr,
        &a_revocation,
        &json!({"reason": "欠席が判明"}),
        409,
        "not_completed",
    )
    .await;
    refused(
        &app,
        &hr,
        &a_corrections,
        &json!({"understanding": 3, "reason": "転記誤り"}),
        409,
        "not_completed",
    )
    .await;
    accepted(&app, &completions, &complete(a, "2023-05-12"), 201).await;
    refused(
        &app,
        &hr,
        &completions,
        &complete(a, "2023-05-12"),
        409,
        "already_completed",
    )
    .await;

    // Cancelling a waitlisted place is allowed; cancelling it twice is not.
    let b_cancel = format!("/sessions/{session}/enrolments/{b}/cancellation");
    accepted(&app, &b_cancel, &json!({"reason": "業務都合"}), 200).await;
    refused(
        &app,
        &hr,
        &b_cancel,
        &json!({"reason": "業務都合"}),
        409,
        "not_enrolled",
    )
    .await;
});

// ---------------------------------------------------------------------------------------
// (A) Compliance incidents.
// ---------------------------------------------------------------------------------------

both_backends!(
    incident_invariants_are_enforced,
    |app: TestApp| async move {
        let hr = app.hr.clone();
        let recorded = accepted(
        &app,
        "/compliance-incidents",
        &json!({"occurred_on": "2023-07-03", "department": "税務課", "summary": "課税通知の誤送付"}),
        201,
    )
    .await;
        let id = recorded.id();
        let withdrawal = format!("/compliance-incidents/{id}/withdrawal");

        refused(&app, &hr, &withdrawal, &json!({}), 400, "validation_failed").await;
        refused(
            &app,
            &hr,
            &format!("/compliance-incidents/{}/withdrawal", Uuid::new_v4()),
            &json!({"reason": "誤登録"}),
            404,
            "incident_not_found",
        )
        .await;
        accepted(&app, &withdrawal, &json!({"reason": "誤登録"}), 200).await;
        refused(
            &app,
            &hr,
            &withdrawal,
            &json!({"reason": "誤登録"}),
            409,
            "incident_already_withdrawn",
        )
        .await;
    }
);

// ---------------------------------------------------------------------------------------
// (A) Plan items, indicators, targets, actuals and activities.
// ---------------------------------------------------------------------------------------

both_backends!(
    plan_item_invariants_are_enforced,
    |app: TestApp| async move {
        let hr = app.hr.clone();
        // 2-1-2 runs FY2021–FY2025: `attendees` is computed (people), `want_management` manual (percent).
        accepted(&app, "/plan-items", &plan_item_body(), 201).await;
        refused(
            &app,
            &hr,
            "/plan-items",
            &plan_item_body(),
            409,
            "plan_item_exists",
        )
        .await;

        // A period running backwards.
        let mut backwards = plan_item_body();
        backwards["code"] = json!("3-1-1");
        backwards["from_fiscal_year"] = json!(2025);
        backwards["to_fiscal_year"] = json!(2021);
        refused(&app, &hr, "/plan-items", &backwards, 400, "invalid_period").await;

        // A definition whose indicator has a target outside the period appends nothing at all:
        // not even the plan item itself.
        let mut outside = plan_item_body();
        outside["code"] = json!("3-1-1");
        outside["indicators"][1]["targets"] = json!({"2030": {"op": ">=", "value": 30}});
        refused(
            &app,
            &hr,
            "/plan-items",
            &outside,
            400,
            "fiscal_year_outside_period",
        )
        .await;
        // The same indicator code twice in one definition.
        let mut twice = plan_item_body();
        twice["code"] = json!("3-1-1");
        twice["indicators"][1]["indicator_code"] = json!("attendees");
        refused(&app, &hr, "/plan-items", &twice, 409, "indicator_exists").await;
        // A negative baseline.
        let mut negative_baseline = plan_item_body();
        negative_baseline["code"] = json!("3-1-1");
        negative_baseline["indicators"][1]["baseline"] = json!({"fiscal_year": 2021, "value": -1});
        refused(
            &app,
            &hr,
            "/plan-items",
            &negative_baseline,
            400,
            "invalid_value",
        )
        .await;
        let mut fine = plan_item_body();
        fine["code"] = json!("3-1-1");
        accepted(&app, "/plan-items", &fine, 201).await;

        // Indicators: defining the same code again.
        let indicator = json!({
            "indicator_code": "attendees",
            "name": "重複",
            "kind": "activity",
            "unit": "people",
            "source": "manual",
        });
        refused(
            &app,
            &hr,
            "/plan-items/2-1-2/indicators",
            &indicator,
            409,
            "indicator_exists",
        )
        .await;

        // Targets: a defined indicator, a fiscal year in the period, a valid value.
        let targets = "/plan-items/2-1-2/targets";
        let target = |code: &str, fy: i32, value: f64| json!({"indicator_code": code, "fiscal_year": fy, "op": ">=", "value": value});
        refused(
            &app,
            &hr,
            targets,
            &target("attendees", 2030, 2400.0),
            400,
            "fiscal_year_outside_period",
        )
        .await;
        refused(
            &app,
            &hr,
            targets,
            &target("attendees", 2020, 2400.0),
            400,
            "fiscal_year_outside_period",
        )
        .await;
        refused(
            &app,
            &hr,
            targets,
            &target("nobody_knows", 2023, 10.0),
            404,
            "indicator_not_found",
        )
        .await;
        refused(
            &app,
            &hr,
            targets,
            &target("want_management", 2024, 100.5),
            400,
            "invalid_value",
        )
        .await;
        refused(
            &app,
            &hr,
            targets,
            &target("attendees", 2024, -1.0),
            400,
            "invalid_value",
        )
        .await;
        refused(
            &app,
            &hr,
            "/plan-items/9-9-9/targets",
            &target("attendees", 2024, 2400.0),
            404,
            "plan_item_not_found",
        )
        .await;
        accepted(&app, targets, &target("attendees", 2024, 2400.0), 200).await;

        // Actuals: manual indicators only, defined, in the period, 0 ≤ value (≤ 100 for %).
        let actuals = "/plan-items/2-1-2/actuals";
        let actual = |code: &str, fy: i32, value: f64| json!({"indicator_code": code, "fiscal_year": fy, "value": value, "status": "confirmed"});
        refused(
            &app,
            &hr,
            actuals,
            &actual("attendees", 2023, 2300.0),
            409,
            "indicator_not_manual",
        )
        .await;
        refused(
            &app,
            &hr,
            actuals,
            &actual("nobody_knows", 2023, 1.0),
            404,
            "indicator_not_found",
        )
        .await;
        refused(
            &app,
            &hr,
            actuals,
            &actual("want_management", 2023, 100.5),
            400,
            "invalid_value",
        )
        .await;
        refused(
            &app,
            &hr,
            actuals,
            &actual("want_management", 2023, -0.1),
            400,
            "invalid_value",
        )
        .await;
        refused(
            &app,
            &hr,
            actuals,
            &actual("want_management", 2030, 20.0),
            400,
            "fiscal_year_outside_period",
        )
        .await;

        // Corrections: only of an actual that was reported; the reason is required.
        let corrections = "/plan-items/2-1-2/actual-corrections";
        let correction = |code: &str, fy: i32, value: f64| json!({"indicator_code": code, "fiscal_year": fy, "value": value, "reason": "集計誤り"});
        refused(
            &app,
            &hr,
            corrections,
            &correction("want_management", 2023, 21.0),
            409,
            "actual_not_reported",
        )
        .await;
        refused(
            &app,
            &hr,
            corrections,
            &correction("attendees", 2023, 2100.0),
            409,
            "indicator_not_manual",
        )
        .await;
        accepted(&app, actuals, &actual("want_management", 2023, 100.0), 200).await;
        refused(
            &app,
            &hr,
            corrections,
            &json!({"indicator_code": "want_management", "fiscal_year": 2023, "value": 21.0}),
            400,
            "validation_failed",
        )
        .await;
        refused(
            &app,
            &hr,
            corrections,
            &correction("want_management", 2023, 101.0),
            400,
            "invalid_value",
        )
        .await;
        refused(
            &app,
            &hr,
            corrections,
            &correction("want_management", 2024, 21.0),
            409,
            "actual_not_reported",
        )
        .await;
        accepted(
            &app,
            corrections,
            &correction("want_management", 2023, 21.0),
            200,
        )
        .await;

        // Activities: the plan or the result, in the period.
        let activities = "/plan-items/2-1-2/activities";
        refused(
            &app,
            &hr,
            activities,
            &json!({"fiscal_year": 2023}),
            400,
            "nothing_to_record",
        )
        .await;
        refused(
            &app,
            &hr,
            activities,
            &json!({"fiscal_year": 2030, "planned": "階層別研修の見直し"}),
            400,
            "fiscal_year_outside_period",
        )
        .await;
        accepted(
            &app,
            activities,
            &json!({"fiscal_year": 2023, "planned": "階層別研修の見直し"}),
            200,
        )
        .await;

        // Evaluations of the year lie in the period too.
        refused(
        &app,
        &hr,
        "/plan-items/2-1-2/self-evaluations",
        &json!({"fiscal_year": 2026, "grade": "A", "reason": "計画どおり", "next_step": "continue"}),
        400,
        "fiscal_year_outside_period",
    )
    .await;
        refused(
            &app,
            &hr,
            "/plan-items/2-1-2/external-evaluations",
            &json!({"fiscal_year": 2020, "text": "評価"}),
            400,
            "fiscal_year_outside_period",
        )
        .await;
    }
);

// ---------------------------------------------------------------------------------------
// (B) Hostile input.
// ---------------------------------------------------------------------------------------

/// A reply from a raw reqwest response (the support helpers cover JSON bodies only).
async fn reply_of(response: reqwest::Response) -> Reply {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = response.text().await.expect("body");
    Reply {
        status,
        content_type,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        retry_after: None,
    }
}

/// The status and code a hostile request must get, or `None` for "any 4xx problem".
type Expect = Option<(u16, &'static str)>;

/// Whether `reply` is a 4xx problem+json with a `code` (and exactly `expected` when given);
/// the mismatch, described, when it is not.
fn check_4xx(what: &str, reply: &Reply, expected: Expect) -> Result<(), String> {
    let status = reply.status.as_u16();
    let problem = reply.content_type == "application/problem+json"
        && !reply.code().is_empty()
        && reply.body["status"].as_u64() == Some(u64::from(status))
        && ["type", "title", "detail"]
            .iter()
            .all(|field| reply.body.get(field).is_some());
    let matches = match expected {
        Some((want_status, want_code)) => status == want_status && reply.code() == want_code,
        None => (400..500).contains(&status),
    };
    if problem && matches {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected {}, got {status} ({}) {}",
            match expected {
                Some((s, c)) => format!("{s} {c}"),
                None => "a 4xx problem".to_string(),
            },
            reply.content_type,
            reply.body
        ))
    }
}

both_backends!(
    hostile_input_is_a_4xx_problem_never_a_500,
    |app: TestApp| async move {
        let hr = app.hr.clone();
        let staff = app.register("H001", "総務課", 3).await;
        let session = app.schedule(5).await;
        let before = app.event_count().await;

        let json_cases: Vec<(&str, String, Value, Expect)> = vec![
            (
                "grade as a word",
                "/staff".into(),
                {
                    let mut b = staff_body("H002", "総務課", 3, "2020-04-01");
                    b["grade"] = json!("three");
                    b
                },
                Some((400, "validation_failed")),
            ),
            (
                "grade 9",
                "/staff".into(),
                staff_body("H002", "総務課", 9, "2020-04-01"),
                Some((400, "validation_failed")),
            ),
            (
                "grade 0",
                "/staff".into(),
                staff_body("H002", "総務課", 0, "2020-04-01"),
                Some((400, "validation_failed")),
            ),
            (
                "grade 300",
                "/staff".into(),
                {
                    let mut b = staff_body("H002", "総務課", 3, "2020-04-01");
                    b["grade"] = json!(300);
                    b
                },
                Some((400, "validation_failed")),
            ),
            (
                "grade 3.5",
                "/staff".into(),
                {
                    let mut b = staff_body("H002", "総務課", 3, "2020-04-01");
                    b["grade"] = json!(3.5);
                    b
                },
                Some((400, "validation_failed")),
            ),
            (
                "hired_on 2023-02-30",
                "/staff".into(),
                staff_body("H002", "総務課", 3, "2023-02-30"),
                Some((400, "validation_failed")),
            ),
            (
                "hired_on 2023/04/01",
                "/staff".into(),
                staff_body("H002", "総務課", 3, "2023/04/01"),
                Some((400, "validation_failed")),
            ),
            (
                "hired_on null",
                "/staff".into(),
                {
                    let mut b = staff_body("H002", "総務課", 3, "2020-04-01");
                    b["hired_on"] = Value::Null;
                    b
                },
                Some((400, "validation_failed")),
            ),
            (
                "unknown gender",
                "/staff".into(),
                {
                    let mut b = staff_body("H002", "総務課", 3, "2020-04-01");
                    b["gender"] = json!("unknown");
                    b
                },
                Some((400, "validation_failed")),
            ),
            (
                "employee_no with a slash",
                "/staff".into(),
                staff_body("H/002", "総務課", 3, "2020-04-01"),
                Some((400, "validation_failed")),
            ),
            (
                "empty department",
                "/staff".into(),
                staff_body("H002", "  ", 3, "2020-04-01"),
                Some((400, "validation_failed")),
            ),
            (
                "unknown field",
                "/staff".into(),
                {
                    let mut b = staff_body("H002", "総務課", 3, "2020-04-01");
                    b["salary"] = json!(300000);
                    b
                },
                Some((400, "validation_failed")),
            ),
            (
                "a JSON array",
                "/staff".into(),
                json!([1, 2, 3]),
                Some((400, "validation_failed")),
            ),
            (
                "JSON null",
                "/staff".into(),
                Value::Null,
                Some((400, "validation_failed")),
            ),
            (
                "grade change to 9",
                format!("/staff/{staff}/grade-changes"),
                grade_change(9, "2023-04-01"),
                Some((400, "validation_failed")),
            ),
            (
                "capacity -1",
                "/sessions".into(),
                {
                    let mut b = session_body(1);
                    b["capacity"] = json!(-1);
                    b
                },
                Some((400, "validation_failed")),
            ),
            (
                "capacity 2^40",
                "/sessions".into(),
                {
                    let mut b = session_body(1);
                    b["capacity"] = json!(1_u64 << 40);
                    b
                },
                Some((400, "validation_failed")),
            ),
            (
                "starts_on 2023-02-30",
                "/sessions".into(),
                {
                    let mut b = session_body(1);
                    b["starts_on"] = json!("2023-02-30");
                    b
                },
                Some((400, "validation_failed")),
            ),
            (
                "unknown category",
                "/sessions".into(),
                {
                    let mut b = session_body(1);
                    b["category"] = json!("fun");
                    b
                },
                Some((400, "validation_failed")),
            ),
            (
                "staff_id not a UUID",
                format!("/sessions/{session}/enrolments"),
                json!({"staff_id": "H001"}),
                Some((400, "validation_failed")),
            ),
            (
                "enrol into an unknown session",
                format!("/sessions/{}/enrolments", Uuid::new_v4()),
                json!({"staff_id": staff}),
                Some((404, "session_not_found")),
            ),
            (
                "complete in an unknown session",
                format!("/sessions/{}/completions", Uuid::new_v4()),
                json!({"staff_id": staff, "completed_on": "2023-05-11"}),
                Some((404, "session_not_found")),
            ),
            (
                "cancel in an unknown session",
                format!(
                    "/sessions/{}/enrolments/{staff}/cancellation",
                    Uuid::new_v4()
                ),
                json!({"reason": "業務都合"}),
                Some((404, "session_not_found")),
            ),
            (
                "revoke in an unknown session",
                format!(
                    "/sessions/{}/completions/{staff}/revocation",
                    Uuid::new_v4()
                ),
                json!({"reason": "欠席"}),
                Some((404, "session_not_found")),
            ),
            (
                "understanding 6",
                format!("/sessions/{session}/completions"),
                json!({"staff_id": staff, "completed_on": "2023-05-11", "understanding": 6}),
                Some((400, "validation_failed")),
            ),
            (
                "separation of an unknown staff member",
                format!("/staff/{}/separations", Uuid::new_v4()),
                separation("2023-04-01"),
                Some((404, "staff_not_found")),
            ),
            (
                "interview about an unknown staff member",
                format!("/staff/{}/interviews", Uuid::new_v4()),
                interview(staff, "2023-06-01"),
                Some((404, "staff_not_found")),
            ),
            (
                "a path id that is not a UUID",
                "/staff/not-a-uuid/grade-changes".into(),
                grade_change(4, "2023-04-01"),
                None,
            ),
            (
                "a session id that is not a UUID",
                "/sessions/12345/enrolments".into(),
                json!({"staff_id": staff}),
                None,
            ),
            (
                "fiscal year 1988",
                "/plan-items".into(),
                {
                    let mut b = plan_item_body();
                    b["from_fiscal_year"] = json!(1988);
                    b
                },
                Some((400, "validation_failed")),
            ),
            (
                "fiscal year beyond i32",
                "/plan-items".into(),
                {
                    let mut b = plan_item_body();
                    b["to_fiscal_year"] = json!(99_999_999_999_i64);
                    b
                },
                Some((400, "validation_failed")),
            ),
            (
                "unknown rule",
                "/plan-items".into(),
                {
                    let mut b = plan_item_body();
                    b["indicators"][0]["source"] = json!({"rule": "astrology"});
                    b
                },
                Some((400, "validation_failed")),
            ),
            (
                "target year not a number",
                "/plan-items".into(),
                {
                    let mut b = plan_item_body();
                    b["indicators"][0]["targets"] = json!({"R5": {"op": ">=", "value": 1}});
                    b
                },
                Some((400, "validation_failed")),
            ),
            (
                "actual for an unknown plan item",
                "/plan-items/9-9-9/actuals".into(),
                json!({"indicator_code": "x", "fiscal_year": 2023, "value": 1, "status": "confirmed"}),
                Some((404, "plan_item_not_found")),
            ),
            (
                "withdraw an unknown incident",
                format!("/compliance-incidents/{}/withdrawal", Uuid::new_v4()),
                json!({"reason": "誤登録"}),
                Some((404, "incident_not_found")),
            ),
            (
                "no such endpoint",
                "/nowhere".into(),
                json!({}),
                Some((404, "not_found")),
            ),
        ];
        // Every mismatch is collected, so that one run reports them all.
        let mut failures: Vec<String> = Vec::new();
        for (what, path, body, expected) in &json_cases {
            let reply = app.post(&hr, path, body).await;
            failures.extend(check_4xx(&format!("POST {path} ({what})"), &reply, *expected).err());
            if app.event_count().await != before {
                failures.push(format!("POST {path} ({what}) appended events"));
            }
        }
        // A target year that is no year names the key and says how to write it.
        let mut era = plan_item_body();
        era["indicators"][0]["targets"] = json!({"R5": {"op": ">=", "value": 1}});
        let reply = app.post(&hr, "/plan-items", &era).await;
        let detail = reply.body["detail"].as_str().unwrap_or_default();
        if !(detail.contains("\"R5\"") && detail.contains("2023")) {
            failures.push(format!("target year R5: detail {detail:?}"));
        }

        // Raw bodies: (what, content type or None, body, expected).
        let mut huge = br#"{"employee_no": "H003", "name": ""#.to_vec();
        huge.extend(vec![b'a'; 1024 * 1024 + 16]);
        huge.extend_from_slice(
        r#"", "gender": "female", "hired_on": "2020-04-01", "grade": 3, "job_type": "administrative", "employment": "regular", "department": "総務課", "department_kind": "administration"}"#
            .as_bytes(),
    );
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes();
        let staff_json =
            serde_json::to_vec(&staff_body("H004", "総務課", 3, "2020-04-01")).expect("json");
        let json_type = Some("application/json");
        let raw_cases: Vec<(&str, Option<&str>, Vec<u8>, Expect)> = vec![
            (
                "malformed JSON",
                json_type,
                br#"{"employee_no": "#.to_vec(),
                Some((400, "malformed_json")),
            ),
            ("trailing garbage", json_type, br#"{"staff_id": "x"} }"#.to_vec(), None),
            ("an empty body", json_type, Vec::new(), None),
            ("invalid UTF-8", json_type, b"{\"employee_no\": \"\xff\xfe\"}".to_vec(), None),
            (
                "a number out of range",
                json_type,
                br#"{"indicator_code": "x", "fiscal_year": 2023, "value": 1e999, "status": "confirmed"}"#
                    .to_vec(),
                None,
            ),
            ("100000 nested arrays", json_type, deep, None),
            ("a body over 1 MiB", json_type, huge, Some((413, "body_too_large"))),
            ("no content type", None, staff_json.clone(), None),
            ("text/plain", Some("text/plain"), staff_json, None),
        ];
        for (what, content_type, body, expected) in raw_cases {
            let path = if what == "a number out of range" {
                "/plan-items/2-1-2/actuals"
            } else {
                "/staff"
            };
            let mut request = app.client.post(app.url(path)).bearer_auth(&hr).body(body);
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            match request.send().await {
                Ok(response) => {
                    let reply = reply_of(response).await;
                    failures.extend(
                        check_4xx(&format!("POST {path} ({what})"), &reply, expected).err(),
                    );
                }
                Err(error) => failures.push(format!("POST {path} ({what}): no response: {error}")),
            }
            if app.event_count().await != before {
                failures.push(format!("POST {path} ({what}) appended events"));
            }
        }
        // The same oversized body through the Idempotency-Key path.
        let mut huge = br#"{"employee_no": "H005", "name": ""#.to_vec();
        huge.extend(vec![b'a'; 1024 * 1024 + 16]);
        huge.extend_from_slice(br#""}"#);
        let what = "POST /staff (a body over 1 MiB with an Idempotency-Key)";
        let sent = app
            .client
            .post(app.url("/staff"))
            .bearer_auth(&hr)
            .header("content-type", "application/json")
            .header("Idempotency-Key", "huge-1")
            .body(huge)
            .send()
            .await;
        match sent {
            Ok(response) => {
                let reply = reply_of(response).await;
                failures.extend(check_4xx(what, &reply, Some((413, "body_too_large"))).err());
            }
            Err(error) => failures.push(format!("{what}: no response: {error}")),
        }
        if app.event_count().await != before {
            failures.push(format!("{what} appended events"));
        }

        // Reads: unknown and unparseable ids, bad query strings, no token.
        let get_cases: Vec<(&str, String, Expect)> = vec![
            (
                "unknown staff id",
                format!("/staff/{}", Uuid::new_v4()),
                Some((404, "staff_not_found")),
            ),
            (
                "a staff id that is not a UUID",
                "/staff/not-a-uuid".into(),
                None,
            ),
            (
                "an unknown sub-resource",
                format!("/staff/{staff}/nothing-here"),
                None,
            ),
            (
                "unknown session id",
                format!("/sessions/{}", Uuid::new_v4()),
                Some((404, "session_not_found")),
            ),
            (
                "a session id that is not a UUID",
                "/sessions/%E2%80%A0".into(),
                None,
            ),
            (
                "events limit abc",
                "/events?limit=abc".into(),
                Some((400, "validation_failed")),
            ),
            (
                "events limit 0",
                "/events?limit=0".into(),
                Some((400, "validation_failed")),
            ),
            (
                "events after -1",
                "/events?after=-1".into(),
                Some((400, "validation_failed")),
            ),
        ];
        for (what, path, expected) in &get_cases {
            let reply = app.get(&hr, path).await;
            failures.extend(check_4xx(&format!("GET {path} ({what})"), &reply, *expected).err());
        }
        let anonymous = app
            .post_anonymous("/staff", &staff_body("H006", "総務課", 3, "2020-04-01"))
            .await;
        failures.extend(
            check_4xx(
                "POST /staff (no token)",
                &anonymous,
                Some((401, "unauthorized")),
            )
            .err(),
        );
        let bad_token = app
            .post(
                "not-a-token",
                "/staff",
                &staff_body("H006", "総務課", 3, "2020-04-01"),
            )
            .await;
        failures.extend(
            check_4xx(
                "POST /staff (an unknown token)",
                &bad_token,
                Some((401, "unauthorized")),
            )
            .err(),
        );
        if app.event_count().await != before {
            failures.push("the token checks appended events".to_string());
        }
        // The server is still alive and still accepts valid commands.
        let health = app.get_anonymous("/healthz").await;
        assert_eq!(health.status.as_u16(), 200, "{:?}", health.body);
        assert_eq!(health.body["status"], "ok");
        let fine = app
            .post(
                &hr,
                "/staff",
                &staff_body("H002", "総務課", 3, "2020-04-01"),
            )
            .await;
        assert_eq!(fine.status.as_u16(), 201, "{:?}", fine.body);
        assert_eq!(app.event_count().await, before + 1);
        assert!(
            failures.is_empty(),
            "hostile input answered wrongly:\n{}",
            failures.join("\n")
        );
    }
);

// SPEC §7: "Errors are application/problem+json" — a method the route does not serve is a
// refusal like any other.
both_backends!(a_wrong_method_is_a_problem_too, |app: TestApp| async move {
    let staff = app.register("W001", "総務課", 3).await;
    let before = app.event_count().await;
    let mut failures: Vec<String> = Vec::new();
    let cases = [
        (reqwest::Method::GET, "/sessions".to_string()),
        (
            reqwest::Method::GET,
            format!("/staff/{staff}/grade-changes"),
        ),
        (reqwest::Method::PUT, "/staff".to_string()),
        (reqwest::Method::DELETE, format!("/staff/{staff}")),
    ];
    for (method, path) in cases {
        let what = format!("{method} {path}");
        let response = app
            .client
            .request(method, app.url(&path))
            .bearer_auth(&app.hr)
            .send()
            .await
            .expect("request");
        let reply = reply_of(response).await;
        failures.extend(check_4xx(&what, &reply, None).err());
        if reply.status.as_u16() != 405 {
            failures.push(format!("{what}: expected 405, got {}", reply.status));
        }
    }
    assert_eq!(app.event_count().await, before);
    let health = app.get_anonymous("/healthz").await;
    assert_eq!(health.status.as_u16(), 200, "{:?}", health.body);
    assert!(
        failures.is_empty(),
        "wrong methods answered wrongly:\n{}",
        failures.join("\n")
    );
});

both_backends!(
    control_characters_and_path_like_codes_are_refused_before_they_reach_the_database,
    |app: TestApp| async move {
        let before = app.event_count().await;
        let mut body = staff_body("N001", "総務\u{0}課", 2, "2020-04-01");
        let reply = app.post(&app.hr, "/staff", &body).await;
        reply.assert_problem(400, "validation_failed");
        assert!(
            reply.body["detail"]
                .as_str()
                .unwrap_or("")
                .contains("制御文字"),
            "{:?}",
            reply.body
        );
        body["department"] = json!("総務課");
        body["name"] = json!("髙橋\u{0}花子");
        app.post(&app.hr, "/staff", &body)
            .await
            .assert_problem(400, "validation_failed");
        for code in [".", ".."] {
            let mut item = plan_item_body();
            item["code"] = json!(code);
            app.post(&app.hr, "/plan-items", &item)
                .await
                .assert_problem(400, "validation_failed");
        }
        assert_eq!(app.event_count().await, before, "nothing was recorded");
    }
);
