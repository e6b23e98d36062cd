//! Every endpoint × every role × own or other department, as one table written from the roles
//! as the contract describes them (not from the policy's code): HR does everything; the
//! auditor reads everything and writes nothing; a manager reads the sheets and the staff of
//! their own department and records interviews and evaluations there in their own name; a
//! staff member reads their own record and disputes their own evaluation; a retired
//! manager's token works nowhere. A refused request appends nothing.
//!
//! The bodies are valid, so that what is tested is who may, not what is well-formed (a body
//! the API cannot read is refused as 400 before anyone's rights are looked at).

mod support;

use kiroku::storage::tokens::Role;
use serde_json::{json, Value};
use support::{staff_body, TestApp};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Hr,
    Auditor,
    /// 所属長 of 総務課 (the department of S).
    Manager,
    /// 所属長 of 企画課 (the department of O).
    OtherManager,
    /// S, in 総務課.
    Staff,
    /// O, in 企画課.
    OtherStaff,
    /// A 所属長 of 総務課 who retired.
    Retired,
}

use Who::*;

/// Refusals run first, HR last, so that no allowed command changes what a later row expects.
const ORDER: [Who; 7] = [
    Retired,
    OtherStaff,
    Staff,
    OtherManager,
    Auditor,
    Manager,
    Hr,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Not 401 or 403 (2xx, or a refusal of the content such as 409).
    Allowed,
    Forbidden,
    Unauthorized,
}

struct People {
    m: Uuid,
    s: Uuid,
    o: Uuid,
    n: Uuid,
    t: Uuid,
    session: Uuid,
    iid: Uuid,
    eid: Uuid,
    incident: Uuid,
}

fn expect(who: Who, allowed: &[Who]) -> Expect {
    if who == Retired {
        Expect::Unauthorized
    } else if allowed.contains(&who) {
        Expect::Allowed
    } else {
        Expect::Forbidden
    }
}

const HR_ONLY: &[Who] = &[Hr];
const READERS_OF_ALL: &[Who] = &[Hr, Auditor];
const SHEET_READERS: &[Who] = &[Hr, Auditor, Manager, OtherManager];

/// The caller's own staff id (the name a manager records in).
fn me(who: Who, p: &People) -> Uuid {
    match who {
        Manager => p.m,
        OtherManager => p.n,
        Staff => p.s,
        OtherStaff => p.o,
        _ => p.m,
    }
}

/// (method, path, body, who may) for every endpoint of the API.
fn table(p: &People, who: Who) -> Vec<(&'static str, String, Value, &'static [Who])> {
    let (s, o, t, session, iid, eid) = (p.s, p.o, p.t, p.session, p.iid, p.eid);
    let me = me(who, p);
    let new_no = format!("Z{}", ORDER.iter().position(|w| *w == who).unwrap_or(0));
    vec![
        // Staff: records.
        (
            "POST",
            "/staff".into(),
            staff_body(&new_no, "総務課", 3, "2020-04-01"),
            HR_ONLY,
        ),
        (
            "GET",
            format!("/staff/{s}"),
            Value::Null,
            &[Hr, Auditor, Manager, Staff],
        ),
        (
            "GET",
            format!("/staff/{o}"),
            Value::Null,
            &[Hr, Auditor, OtherManager, OtherStaff],
        ),
        (
            "POST",
            format!("/staff/{t}/grade-changes"),
            json!({"grade": 4, "effective_on": "2024-04-01", "reason": "promotion"}),
            HR_ONLY,
        ),
        (
            "POST",
            format!("/staff/{t}/transfers"),
            json!({"to_department": "総務課", "department_kind": "administration", "effective_on": "2024-04-01", "kind": "regular"}),
            HR_ONLY,
        ),
        (
            "POST",
            format!("/staff/{t}/rehires"),
            json!({"effective_on": "2025-04-01", "grade": 3, "department": "総務課", "department_kind": "administration", "employment": "regular"}),
            HR_ONLY,
        ),
        // Interviews and evaluations: HR, and the manager of S's department in their own name.
        (
            "POST",
            format!("/staff/{s}/interviews"),
            json!({"kind": "one_on_one", "held_on": "2024-06-11", "interviewer_id": me, "note": "面談"}),
            &[Hr, Manager],
        ),
        (
            "POST",
            format!("/staff/{o}/interviews"),
            json!({"kind": "one_on_one", "held_on": "2024-06-11", "interviewer_id": me, "note": "面談"}),
            &[Hr, OtherManager],
        ),
        (
            "POST",
            format!("/staff/{s}/interviews/{iid}/corrections"),
            json!({"note": "訂正後の記録", "reason": "誤記"}),
            &[Hr, Manager],
        ),
        (
            "POST",
            format!("/staff/{s}/evaluations"),
            json!({"fiscal_year": 2024, "period": "second_half", "evaluator_id": me, "overall": "B", "competencies": {"企画力": 3}, "comment": "所見"}),
            &[Hr, Manager],
        ),
        (
            "POST",
            format!("/staff/{s}/evaluations/{eid}/corrections"),
            json!({"overall": "A", "reason": "再評価"}),
            &[Hr, Manager],
        ),
        // Disputes: the person evaluated (and HR on their behalf).
        (
            "POST",
            format!("/staff/{s}/evaluations/{eid}/disputes"),
            json!({"text": "異議があります"}),
            &[Hr, Staff],
        ),
        (
            "POST",
            format!("/staff/{s}/evaluations/{eid}/dispute-resolutions"),
            json!({"outcome": "評価を維持", "reason": "審査の結果"}),
            HR_ONLY,
        ),
        (
            "POST",
            format!("/staff/{s}/interviews/{iid}/withdrawals"),
            json!({"reason": "重複"}),
            &[Hr, Manager],
        ),
        // Sessions.
        (
            "POST",
            "/sessions".into(),
            support::session_body(10),
            HR_ONLY,
        ),
        (
            "GET",
            format!("/sessions/{session}"),
            Value::Null,
            READERS_OF_ALL,
        ),
        (
            "POST",
            format!("/sessions/{session}/enrolments"),
            json!({"staff_id": o}),
            HR_ONLY,
        ),
        (
            "POST",
            format!("/sessions/{session}/completions"),
            json!({"staff_id": o, "completed_on": "2023-05-11", "understanding": 4}),
            HR_ONLY,
        ),
        (
            "POST",
            format!("/sessions/{session}/completions/{s}/corrections"),
            json!({"completed_on": "2023-05-12", "reason": "日付の誤り"}),
            HR_ONLY,
        ),
        (
            "POST",
            format!("/sessions/{session}/completions/{s}/revocation"),
            json!({"reason": "重複"}),
            HR_ONLY,
        ),
        (
            "POST",
            format!("/sessions/{session}/enrolments/{o}/cancellation"),
            json!({"reason": "業務都合"}),
            HR_ONLY,
        ),
        (
            "POST",
            "/imports/attendance".into(),
            Value::String(
                "employee_no,course_code,session_starts_on,completed_on,understanding\n".into(),
            ),
            HR_ONLY,
        ),
        // Plan items and sheets.
        ("GET", "/plan-items".into(), Value::Null, SHEET_READERS),
        (
            "GET",
            "/plan-items/2-1-2/sheet".into(),
            Value::Null,
            SHEET_READERS,
        ),
        (
            "GET",
            "/plan-items/2-1-2/audit?indicator=attendees&fiscal_year=2023".into(),
            Value::Null,
            READERS_OF_ALL,
        ),
        (
            "POST",
            "/plan-items".into(),
            {
                let mut body = support::plan_item_body();
                body["code"] = json!(format!(
                    "9-{}",
                    ORDER.iter().position(|w| *w == who).unwrap_or(0)
                ));
                body
            },
            HR_ONLY,
        ),
        (
            "POST",
            "/plan-items/2-1-2/indicators".into(),
            json!({"indicator_code": format!("x{}", new_no.to_lowercase()), "name": "指標", "kind": "activity", "unit": "count", "source": "manual"}),
            HR_ONLY,
        ),
        (
            "POST",
            "/plan-items/2-1-2/targets".into(),
            json!({"indicator_code": "attendees", "fiscal_year": 2024, "op": ">=", "value": 2400}),
            HR_ONLY,
        ),
        (
            "POST",
            "/plan-items/2-1-2/actuals".into(),
            json!({"indicator_code": "want_management", "fiscal_year": 2023, "value": 18.5, "status": "estimate"}),
            HR_ONLY,
        ),
        (
            "POST",
            "/plan-items/2-1-2/actual-corrections".into(),
            json!({"indicator_code": "want_management", "fiscal_year": 2023, "value": 18.6, "reason": "集計誤り"}),
            HR_ONLY,
        ),
        (
            "POST",
            "/plan-items/2-1-2/activities".into(),
            json!({"fiscal_year": 2023, "planned": "研修の充実", "result": "実施した"}),
            HR_ONLY,
        ),
        (
            "POST",
            "/plan-items/2-1-2/self-evaluations".into(),
            json!({"fiscal_year": 2023, "grade": "A", "reason": "計画どおり", "next_step": "continue"}),
            HR_ONLY,
        ),
        (
            "POST",
            "/plan-items/2-1-2/external-evaluations".into(),
            json!({"fiscal_year": 2023, "text": "おおむね妥当"}),
            HR_ONLY,
        ),
        (
            "POST",
            "/plan-items/2-1-2/publications".into(),
            json!({"fiscal_year": 2023, "reason": "再公表"}),
            HR_ONLY,
        ),
        // Incidents.
        (
            "POST",
            "/compliance-incidents".into(),
            json!({"occurred_on": "2023-07-03", "department": "税務課", "summary": "課税通知の誤送付"}),
            HR_ONLY,
        ),
        (
            "POST",
            format!("/compliance-incidents/{}/withdrawal", p.incident),
            json!({"reason": "重複登録"}),
            HR_ONLY,
        ),
        // The log and the read models.
        ("GET", "/events".into(), Value::Null, READERS_OF_ALL),
        ("GET", "/projections".into(), Value::Null, READERS_OF_ALL),
        // Destructive ones last: a separation and an erasure of T.
        (
            "POST",
            format!("/staff/{t}/separations"),
            json!({"effective_on": "2025-03-31", "reason": "resignation"}),
            HR_ONLY,
        ),
        (
            "POST",
            format!("/staff/{t}/erasure"),
            json!({"reason": "削除請求"}),
            HR_ONLY,
        ),
    ]
}

async fn send(app: &TestApp, token: &str, method: &str, path: &str, body: &Value) -> (u16, String) {
    let reply = match (method, body) {
        ("GET", _) => app.get(token, path).await,
        (_, Value::String(csv)) => {
            app.post_raw(
                token,
                path,
                "text/csv; charset=utf-8",
                csv.clone().into_bytes(),
            )
            .await
        }
        _ => app.post(token, path, body).await,
    };
    (reply.status.as_u16(), reply.code().to_string())
}

both_backends!(
    every_endpoint_answers_every_role_and_department_as_the_roles_say,
    |app: TestApp| async move {
        // Who works where.
        let m = app.register("M001", "総務課", 6).await;
        let s = app.register("S001", "総務課", 3).await;
        let t = app.register("T001", "総務課", 3).await;
        let r = app.register("R001", "総務課", 6).await;
        let o = app.register("O001", "企画課", 3).await;
        let n = app.register("N001", "企画課", 6).await;
        let separated = app
            .post(
                &app.hr,
                &format!("/staff/{r}/separations"),
                &json!({"effective_on": "2024-03-31", "reason": "retirement"}),
            )
            .await;
        assert_eq!(separated.status, 200, "{:?}", separated.body);
        let defined = app
            .post(&app.hr, "/plan-items", &support::plan_item_body())
            .await;
        assert_eq!(defined.status, 201, "{:?}", defined.body);
        let session = app.schedule(10).await;
        for id in [s, o] {
            app.post(
                &app.hr,
                &format!("/sessions/{session}/enrolments"),
                &json!({"staff_id": id}),
            )
            .await;
        }
        let done = app
            .post(
                &app.hr,
                &format!("/sessions/{session}/completions"),
                &json!({"staff_id": s, "completed_on": "2023-05-11", "understanding": 4}),
            )
            .await;
        assert_eq!(done.status, 201, "{:?}", done.body);
        let interview = app
            .post(
                &app.hr,
                &format!("/staff/{s}/interviews"),
                &json!({"kind": "one_on_one", "held_on": "2024-06-10", "interviewer_id": m, "note": "面談の記録"}),
            )
            .await;
        assert_eq!(interview.status, 201, "{:?}", interview.body);
        let evaluation = app
            .post(
                &app.hr,
                &format!("/staff/{s}/evaluations"),
                &json!({"fiscal_year": 2024, "period": "first_half", "evaluator_id": m, "overall": "B", "competencies": {"企画力": 3}, "comment": "所見"}),
            )
            .await;
        assert_eq!(evaluation.status, 201, "{:?}", evaluation.body);
        let incident = app
            .post(
                &app.hr,
                "/compliance-incidents",
                &json!({"occurred_on": "2023-07-03", "department": "税務課", "summary": "誤送付"}),
            )
            .await;
        assert_eq!(incident.status, 201, "{:?}", incident.body);
        let people = People {
            m,
            s,
            o,
            n,
            t,
            session,
            iid: Uuid::parse_str(interview.body["interview_id"].as_str().unwrap_or_default())
                .expect("interview id"),
            eid: Uuid::parse_str(
                evaluation.body["evaluation_id"]
                    .as_str()
                    .unwrap_or_default(),
            )
            .expect("evaluation id"),
            incident: incident.id(),
        };
        let tokens = [
            (Hr, app.hr.clone()),
            (Auditor, app.auditor.clone()),
            (Manager, app.token(Role::Manager, "総務課長", Some(m)).await),
            (
                OtherManager,
                app.token(Role::Manager, "企画課長", Some(n)).await,
            ),
            (Staff, app.token(Role::Staff, "職員S", Some(s)).await),
            (OtherStaff, app.token(Role::Staff, "職員O", Some(o)).await),
            (
                Retired,
                app.token(Role::Manager, "元総務課長", Some(r)).await,
            ),
        ];
        let token = |who: Who| {
            tokens
                .iter()
                .find(|(w, _)| *w == who)
                .map(|(_, t)| t.clone())
                .expect("token")
        };

        let endpoints = table(&people, Hr).len();
        let mut wrong = Vec::new();
        let mut cells = 0;
        let mut allowed_2xx = 0;
        for index in 0..endpoints {
            for who in ORDER {
                let (method, path, body, allowed) = table(&people, who).swap_remove(index);
                let expected = expect(who, allowed);
                let before = app.event_count().await;
                let (status, code) = send(&app, &token(who), method, &path, &body).await;
                cells += 1;
                let ok = match expected {
                    Expect::Allowed => status != 401 && status != 403 && status < 500,
                    Expect::Forbidden => status == 403,
                    Expect::Unauthorized => status == 401,
                };
                if expected == Expect::Allowed && (200..300).contains(&status) {
                    allowed_2xx += 1;
                }
                if !ok {
                    wrong.push(format!(
                        "{who:?} {method} {path}: {status} {code}, expected {expected:?}"
                    ));
                }
                if expected != Expect::Allowed {
                    assert_eq!(
                        app.event_count().await,
                        before,
                        "{who:?} {method} {path} appended"
                    );
                }
            }
        }
        eprintln!(
            "{:?}: {endpoints} endpoints × {} callers = {cells} cells, {allowed_2xx} allowed answered 2xx, {} wrong",
            app.db,
            ORDER.len(),
            wrong.len()
        );
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
);
