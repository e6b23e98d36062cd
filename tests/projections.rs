//! Projections are a pure function of the log: maintained live they equal a rebuild from
//! scratch byte for byte, on both backends, the two backends agree, and a projector killed
//! mid-way resumes to the same state.

mod support;

use kiroku::ledger::Meta;
use kiroku::storage::tokens::{Principal, Role};
use kiroku_domain::session::{Schedule, SessionCommand};
use kiroku_domain::staff::{staff_id_of, Registration, StaffCommand};
use kiroku_domain::values::*;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{Db, TestApp};
use uuid::Uuid;

/// One step of a random history. Indices pick among the staff and sessions created so far.
#[derive(Debug, Clone)]
enum Op {
    Register {
        hired: u8,
        grade: u8,
        female: bool,
    },
    Schedule {
        capacity: u8,
        month: u8,
    },
    Enrol {
        session: usize,
        staff: usize,
    },
    Complete {
        session: usize,
        staff: usize,
        day: u8,
        understanding: u8,
    },
    Revoke {
        session: usize,
        staff: usize,
    },
    Correct {
        session: usize,
        staff: usize,
        day: u8,
    },
    Cancel {
        session: usize,
        staff: usize,
    },
    Transfer {
        staff: usize,
        kind: u8,
    },
    Promote {
        staff: usize,
        grade: u8,
    },
    Separate {
        staff: usize,
    },
    Interview {
        staff: usize,
        month: u8,
    },
    Incident {
        month: u8,
    },
    Report {
        value: u8,
    },
    Target {
        value: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..12, 1u8..=8, any::<bool>()).prop_map(|(hired, grade, female)| Op::Register { hired, grade, female }),
        1 => (1u8..4, 0u8..24).prop_map(|(capacity, month)| Op::Schedule { capacity, month }),
        3 => (0usize..8, 0usize..16).prop_map(|(session, staff)| Op::Enrol { session, staff }),
        4 => (0usize..8, 0usize..16, 0u8..200, 1u8..=5).prop_map(|(session, staff, day, understanding)| Op::Complete { session, staff, day, understanding }),
        1 => (0usize..8, 0usize..16).prop_map(|(session, staff)| Op::Revoke { session, staff }),
        1 => (0usize..8, 0usize..16, 0u8..200).prop_map(|(session, staff, day)| Op::Correct { session, staff, day }),
        1 => (0usize..8, 0usize..16).prop_map(|(session, staff)| Op::Cancel { session, staff }),
        1 => (0usize..16, 0u8..3).prop_map(|(staff, kind)| Op::Transfer { staff, kind }),
        1 => (0usize..16, 1u8..=8).prop_map(|(staff, grade)| Op::Promote { staff, grade }),
        1 => (0usize..16).prop_map(|staff| Op::Separate { staff }),
        2 => (0usize..16, 0u8..24).prop_map(|(staff, month)| Op::Interview { staff, month }),
        1 => (0u8..24).prop_map(|month| Op::Incident { month }),
        1 => (0u8..=100).prop_map(|value| Op::Report { value }),
        1 => (0u16..3000).prop_map(|value| Op::Target { value }),
    ]
}

fn date(base: &str, days: i64) -> String {
    let start: Date = base.parse().expect("date");
    (start + chrono::Duration::days(days)).to_string()
}

fn month(m: u8) -> String {
    date("2023-04-01", i64::from(m) * 30)
}

/// Applies `ops` through the API; refused commands are part of the history too (they append
/// nothing). Returns the sheet JSON with the time-dependent fields removed.
async fn play(app: &TestApp, ops: &[Op]) {
    let hr = &app.hr;
    let defined = app.post(hr, "/plan-items", &plan_item()).await;
    assert_eq!(defined.status.as_u16(), 201, "{:?}", defined.body);
    let mut staff: Vec<Uuid> = Vec::new();
    let mut sessions: Vec<Uuid> = Vec::new();
    let pick = |list: &Vec<Uuid>, i: usize| list.get(i % list.len().max(1)).copied();
    for (n, op) in ops.iter().enumerate() {
        match op {
            Op::Register {
                hired,
                grade,
                female,
            } => {
                let mut body = support::staff_body(
                    &format!("P{n}"),
                    "職員課",
                    *grade,
                    &format!("{}-04-01", 2013 + i32::from(*hired)),
                );
                body["gender"] = json!(if *female { "female" } else { "male" });
                let reply = app.post(hr, "/staff", &body).await;
                staff.push(reply.id());
            }
            Op::Schedule { capacity, month: m } => {
                let mut body = support::session_body(u32::from(*capacity));
                body["starts_on"] = json!(month(*m));
                body["ends_on"] = json!(month(*m));
                body["category"] = json!(if m % 2 == 0 { "tiered" } else { "specialized" });
                sessions.push(app.post(hr, "/sessions", &body).await.id());
            }
            Op::Enrol { session, staff: s } => {
                if let (Some(session), Some(s)) = (pick(&sessions, *session), pick(&staff, *s)) {
                    app.post(
                        hr,
                        &format!("/sessions/{session}/enrolments"),
                        &json!({"staff_id": s}),
                    )
                    .await;
                }
            }
            Op::Complete {
                session,
                staff: s,
                day,
                understanding,
            } => {
                if let (Some(session), Some(s)) = (pick(&sessions, *session), pick(&staff, *s)) {
                    let body = json!({"staff_id": s, "completed_on": date("2023-04-01", i64::from(*day) * 4), "understanding": understanding});
                    app.post(hr, &format!("/sessions/{session}/completions"), &body)
                        .await;
                }
            }
            Op::Revoke { session, staff: s } => {
                if let (Some(session), Some(s)) = (pick(&sessions, *session), pick(&staff, *s)) {
                    app.post(
                        hr,
                        &format!("/sessions/{session}/completions/{s}/revocation"),
                        &json!({"reason": "誤登録"}),
                    )
                    .await;
                }
            }
            Op::Correct {
                session,
                staff: s,
                day,
            } => {
                if let (Some(session), Some(s)) = (pick(&sessions, *session), pick(&staff, *s)) {
                    let body = json!({"completed_on": date("2023-04-01", i64::from(*day) * 4), "reason": "日付の誤り"});
                    app.post(
                        hr,
                        &format!("/sessions/{session}/completions/{s}/corrections"),
                        &body,
                    )
                    .await;
                }
            }
            Op::Cancel { session, staff: s } => {
                if let (Some(session), Some(s)) = (pick(&sessions, *session), pick(&staff, *s)) {
                    app.post(
                        hr,
                        &format!("/sessions/{session}/enrolments/{s}/cancellation"),
                        &json!({"reason": "業務都合"}),
                    )
                    .await;
                }
            }
            Op::Transfer { staff: s, kind } => {
                if let Some(s) = pick(&staff, *s) {
                    let (department, department_kind, transfer) = match kind {
                        0 => ("市民課", "front_office", "regular"),
                        1 => ("観光振興課", "program", "regular"),
                        _ => ("県派遣", "administration", "dispatch"),
                    };
                    let body = json!({"to_department": department, "department_kind": department_kind, "effective_on": "2024-04-01", "kind": transfer});
                    app.post(hr, &format!("/staff/{s}/transfers"), &body).await;
                }
            }
            Op::Promote { staff: s, grade } => {
                if let Some(s) = pick(&staff, *s) {
                    let body = json!({"grade": grade, "effective_on": "2024-04-01", "reason": "promotion"});
                    app.post(hr, &format!("/staff/{s}/grade-changes"), &body)
                        .await;
                }
            }
            Op::Separate { staff: s } => {
                if let Some(s) = pick(&staff, *s) {
                    let body = json!({"effective_on": "2024-04-01", "reason": "resignation"});
                    app.post(hr, &format!("/staff/{s}/separations"), &body)
                        .await;
                }
            }
            Op::Interview { staff: s, month: m } => {
                if let Some(s) = pick(&staff, *s) {
                    let body = json!({"kind": "one_on_one", "held_on": month(*m), "interviewer_id": s, "note": "面談記録"});
                    app.post(hr, &format!("/staff/{s}/interviews"), &body).await;
                }
            }
            Op::Incident { month: m } => {
                let body = json!({"occurred_on": month(*m), "department": "税務課", "summary": "通知書の誤送付"});
                app.post(hr, "/compliance-incidents", &body).await;
            }
            Op::Report { value } => {
                let body = json!({"indicator_code": "want_management", "fiscal_year": 2023, "value": value, "status": "estimate"});
                app.post(hr, "/plan-items/P-1/actuals", &body).await;
            }
            Op::Target { value } => {
                let body = json!({"indicator_code": "attendees", "fiscal_year": 2024, "op": ">=", "value": value});
                app.post(hr, "/plan-items/P-1/targets", &body).await;
            }
        }
    }
}

fn plan_item() -> Value {
    let rule = |code: &str, name: &str, unit: &str, source: Value| json!({"indicator_code": code, "name": name, "kind": "activity", "unit": unit, "source": source});
    json!({
        "code": "P-1", "title": "性質検査用の項目", "pillar": "検査", "lead_department": "職員課",
        "status": "new", "from_fiscal_year": 2022, "to_fiscal_year": 2025,
        "indicators": [
            rule("attendees", "延べ受講者数", "people", json!({"rule": "training_completions"})),
            rule("tiered", "階層別研修の受講者数", "people", json!({"rule": "training_completions", "params": {"categories": ["tiered"]}})),
            rule("participation", "受講率", "percent", json!({"rule": "training_participation_rate"})),
            rule("understanding", "理解度", "percent", json!({"rule": "training_understanding_rate"})),
            rule("interviews", "面談実施率", "percent", json!({"rule": "interview_coverage", "params": {"min_per_year": 1}})),
            rule("women", "女性管理職比率", "percent", json!({"rule": "women_in_management_rate"})),
            rule("rotation", "ジョブローテーション", "percent", json!({"rule": "rotation_coverage", "params": {"years": 5}})),
            rule("dispatch", "派遣者数", "people", json!({"rule": "dispatch_count"})),
            rule("incidents", "不適切な事務処理", "count", json!({"rule": "compliance_incidents"})),
            rule("want_management", "管理職志向", "percent", json!("manual")),
        ]
    })
}

/// Removes fields that name the moment of recording rather than the facts.
fn without_times(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("as_of");
            map.remove("as_of_jst");
            map.remove("recorded_at");
            for v in map.values_mut() {
                without_times(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(without_times),
        _ => {}
    }
}

fn kiroku(database_url: &str, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_kiroku"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .output()
        .expect("run kiroku");
    assert!(
        output.status.success(),
        "kiroku {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn rebuilt_fingerprint(database_url: &str) -> String {
    let out = kiroku(database_url, &["rebuild"]);
    out.rsplit("fingerprint ")
        .next()
        .expect("fingerprint")
        .trim()
        .to_string()
}

async fn live_fingerprint(app: &TestApp) -> String {
    let reply = app.get(&app.auditor, "/projections").await;
    assert_eq!(reply.status.as_u16(), 200);
    reply.body["fingerprint"]
        .as_str()
        .expect("fingerprint")
        .to_string()
}

async fn sheet(app: &TestApp) -> Value {
    let mut sheet = app.get(&app.auditor, "/plan-items/P-1/sheet").await.body;
    without_times(&mut sheet);
    sheet
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, .. ProptestConfig::default() })]

    #[test]
    fn live_projections_equal_a_rebuild_and_the_backends_agree(ops in prop::collection::vec(op(), 20..70)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        runtime.block_on(async {
            let mut sheets = Vec::new();
            for db in [Db::Sqlite, Db::Postgres] {
                let Some(app) = support::spawn_app(db).await else { continue };
                play(&app, &ops).await;
                let live = live_fingerprint(&app).await;
                let rebuilt = rebuilt_fingerprint(&app.database_url);
                assert_eq!(live, rebuilt, "{db:?}: live projections equal a rebuild from the log");
                sheets.push(sheet(&app).await);
            }
            if let [sqlite, postgres] = sheets.as_slice() {
                assert_eq!(sqlite, postgres, "the two backends agree");
            }
        });
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn serve(database_url: &str, port: u16, checkpoint_every: Option<&str>) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiroku"));
    command
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", database_url)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(every) = checkpoint_every {
        command.env("KIROKU_CHECKPOINT_EVERY", every);
    }
    command.spawn().expect("spawn kiroku serve")
}

async fn checkpoint_position(app: &TestApp) -> i64 {
    use kiroku::with_pool;
    with_pool!(&app.ledger.backend, pool => {
        sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(position), 0) FROM projection_checkpoints")
            .fetch_one(pool)
            .await
            .expect("checkpoint")
    })
}

/// A large log written straight through the ledger (faster than HTTP).
async fn large_log(app: &TestApp, staff: usize) {
    let principal = Principal {
        name: "生成".into(),
        role: Role::HrAdmin,
        staff_id: None,
    };
    let meta = |n: usize| Meta::new(&principal, &format!("bulk-{n}"));
    let ledger = &app.ledger;
    let session = Uuid::new_v4();
    let schedule = SessionCommand::Schedule(Schedule {
        course_code: Text::parse("K-1").expect("text"),
        title: Text::parse("新任研修").expect("text"),
        category: TrainingCategory::Tiered,
        provider: Text::parse("庁内").expect("text"),
        delivery: Delivery::InPerson,
        starts_on: "2023-05-01".parse().expect("date"),
        ends_on: "2023-05-01".parse().expect("date"),
        capacity: 10_000,
    });
    ledger
        .execute(&ledger.sessions, &session.to_string(), schedule, &meta(0))
        .await
        .expect("schedule");
    for n in 0..staff {
        let employee_no = EmployeeNo::parse(&format!("L{n:05}")).expect("no");
        let id = staff_id_of(&employee_no);
        let register = StaffCommand::Register(Registration {
            employee_no,
            name: ledger.keys.seal(id, "山田 太郎").await.expect("seal"),
            name_kana: None,
            gender: if n % 3 == 0 {
                Gender::Female
            } else {
                Gender::Male
            },
            hired_on: "2010-04-01".parse().expect("date"),
            grade: Grade::try_from((n % 8 + 1) as u8).expect("grade"),
            job_type: JobType::Administrative,
            employment: Employment::Regular,
            department: Text::parse("総務課").expect("text"),
            department_kind: DepartmentKind::Administration,
        });
        ledger
            .execute(&ledger.staff, &id.to_string(), register, &meta(2 * n + 1))
            .await
            .expect("register");
        let attend = SessionCommand::RecordAttendance {
            staff_id: id,
            staff_registered: true,
            completed_on: "2023-05-01".parse().expect("date"),
            understanding: Understanding::try_from((n % 5 + 1) as u8).ok(),
        };
        ledger
            .execute(
                &ledger.sessions,
                &session.to_string(),
                attend,
                &meta(2 * n + 2),
            )
            .await
            .expect("attend");
    }
}

both_backends!(
    a_projector_killed_while_catching_up_resumes_to_a_full_rebuild,
    |app: TestApp| async move {
        large_log(&app, 800).await;
        let head = kiroku::storage::log::head(&app.ledger.backend)
            .await
            .expect("head");
        kiroku::projector::Projector::drop_checkpoints(&app.ledger.backend)
            .await
            .expect("drop");

        // Start a server that must fold the whole log, checkpointing as it goes, and kill -9 it
        // once a checkpoint is down but before it has finished.
        let port = free_port();
        let mut server = serve(&app.database_url, port, Some("300"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let at = checkpoint_position(&app).await;
            if at > 0 || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        server.kill().expect("SIGKILL");
        let _ = server.wait();
        let resumed_from = checkpoint_position(&app).await;
        assert!(resumed_from > 0, "a checkpoint was written before the kill");
        // Written in pieces, and read back whole: a projector opened on it stands at its
        // position (one that could not read it would start from 0).
        let pieces = pieces(&app).await;
        assert!(pieces > 1, "the checkpoint was written in pieces");
        let opened = kiroku::projector::Projector::open(app.ledger.backend.clone())
            .await
            .expect("open");
        assert_eq!(
            opened.position(),
            resumed_from,
            "a checkpoint in {pieces} pieces is read back whole",
        );

        // Restart: it resumes from the checkpoint and catches up to the head.
        let port = free_port();
        let mut server = serve(&app.database_url, port, None);
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}/api/v1");
        let deadline = Instant::now() + Duration::from_secs(60);
        let live = loop {
            assert!(Instant::now() < deadline, "the restarted server caught up");
            let response = client
                .get(format!("{base}/projections"))
                .bearer_auth(&app.auditor)
                .send()
                .await;
            if let Ok(response) = response {
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if body["position"].as_i64() == Some(head) {
                    break body["fingerprint"]
                        .as_str()
                        .expect("fingerprint")
                        .to_string();
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        server.kill().expect("stop");
        let _ = server.wait();
        eprintln!("killed after checkpoint at {resumed_from} of {head}");
        assert_eq!(
            live,
            rebuilt_fingerprint(&app.database_url),
            "resumed projections equal a full rebuild"
        );
    }
);

async fn pieces(app: &TestApp) -> i64 {
    kiroku::with_pool!(&app.ledger.backend, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM projection_segments")
            .fetch_one(pool)
            .await
            .expect("pieces")
    })
}

both_backends!(
    an_older_formats_pieces_at_the_same_position_are_replaced,
    |app: TestApp| async move {
        large_log(&app, 20).await;
        let older = kiroku::projector::Projector::new(app.ledger.backend.clone());
        older.catch_up().await.expect("catch up");
        let position = older.checkpoint().await.expect("checkpoint");

        // What an older version of Kiroku leaves when it stops at the head: its pieces, in
        // its own encoding, under the same keys and position, named by a manifest of its
        // format.
        let other_bytes = match app.db {
            Db::Sqlite => "UPDATE projection_segments SET bytes = X'c0'",
            Db::Postgres => "UPDATE projection_segments SET bytes = '\\xc0'::bytea",
        };
        assert!(app.sql(other_bytes).await.expect("older pieces") > 1);
        app.sql("UPDATE projection_checkpoints SET format = format - 1")
            .await
            .expect("older format");

        // This version rebuilds to the same position and writes itself whole over them; the
        // next start reads that checkpoint back instead of refusing it.
        let rebuilt = kiroku::projector::Projector::open(app.ledger.backend.clone())
            .await
            .expect("open");
        assert_eq!(rebuilt.position(), 0, "the older format is not read");
        rebuilt.catch_up().await.expect("rebuild");
        assert_eq!(rebuilt.checkpoint().await.expect("checkpoint"), position);
        let reopened = kiroku::projector::Projector::open(app.ledger.backend.clone())
            .await
            .expect("open");
        assert_eq!(
            reopened.position(),
            position,
            "read back from the checkpoint"
        );
        assert_eq!(
            reopened.fingerprint().expect("fingerprint"),
            older.fingerprint().expect("fingerprint")
        );
    }
);

both_backends!(
    a_checkpoint_dropped_midway_leaves_what_it_took_to_the_next,
    |app: TestApp| async move {
        large_log(&app, 20).await;
        let projector = kiroku::projector::Projector::new(app.ledger.backend.clone());
        projector.catch_up().await.expect("catch up");
        projector.checkpoint().await.expect("first checkpoint");

        // A registration, then a checkpoint whose future is dropped at its first wait on the
        // database, as the server's ticking task is aborted at shutdown: it has taken the marks
        // of the pieces that changed and written no manifest.
        app.register("Y0001", "総務課", 3).await;
        projector.catch_up().await.expect("catch up");
        {
            let mut checkpoint = std::pin::pin!(projector.checkpoint());
            let polled = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(
                    std::future::Future::poll(checkpoint.as_mut(), cx).is_pending(),
                )
            })
            .await;
            assert!(polled, "the checkpoint waits on the database");
        }

        // The next checkpoint writes those pieces too (unless the dropped one had got as far
        // as its manifest before its first wait): read back, the read models are whole.
        app.register("Y0002", "総務課", 3).await;
        projector.catch_up().await.expect("catch up");
        let position = projector.checkpoint().await.expect("checkpoint");
        let opened = kiroku::projector::Projector::open(app.ledger.backend.clone())
            .await
            .expect("open");
        assert_eq!(opened.position(), position, "read back from the checkpoint");
        assert_eq!(
            opened.fingerprint().expect("fingerprint"),
            projector.fingerprint().expect("fingerprint")
        );
    }
);

both_backends!(
    histories_stay_encoded_until_changed_and_go_cold_once_idle,
    |app: TestApp| async move {
        use kiroku::projector::IDLE_SWEEPS;
        large_log(&app, 100).await;
        let projector = kiroku::projector::Projector::new(app.ledger.backend.clone());
        projector.catch_up().await.expect("catch up");
        let (staff, sessions) = projector.warm_shards();
        assert!(
            staff > 50 && sessions > 0,
            "folded: {staff} and {sessions} shards warm"
        );
        let fingerprint = projector.fingerprint().expect("fingerprint");

        // Unread and unchanged for IDLE_SWEEPS ticks, every shard goes cold: the same read
        // models.
        for _ in 0..IDLE_SWEEPS {
            assert_eq!(projector.cool().expect("cool"), 0);
        }
        assert_eq!(projector.cool().expect("cool"), staff + sessions);
        assert_eq!(projector.warm_shards(), (0, 0));
        assert_eq!(
            projector.shards_away(),
            (staff, sessions),
            "cold shards are put away in files, not held in memory"
        );
        assert_eq!(projector.fingerprint().expect("fingerprint"), fingerprint);
        projector.checkpoint().await.expect("checkpoint");

        // A start decodes no history; reading everyone decodes for the reader without
        // warming; one registration warms one shard.
        let opened = kiroku::projector::Projector::open(app.ledger.backend.clone())
            .await
            .expect("open");
        assert_eq!(opened.warm_shards(), (0, 0));
        assert_eq!(
            opened.shards_away(),
            (staff, sessions),
            "a start puts them away"
        );
        assert_eq!(opened.fingerprint().expect("fingerprint"), fingerprint);
        let people = opened
            .read(|h| h.staff.values().map(|s| s.staff_id).collect::<Vec<_>>())
            .expect("read");
        let warm = projector.read(|h| h.staff.len()).expect("read");
        assert!(
            people.len() >= 100 && people.len() == warm,
            "{} people",
            people.len()
        );
        assert_eq!(opened.warm_shards(), (0, 0), "read, not warmed");
        let id = app.register("C0001", "総務課", 3).await;
        opened.catch_up().await.expect("catch up");
        assert_eq!(opened.warm_shards(), (1, 0));
        assert_eq!(opened.shards_away(), (staff - 1, sessions));
        let found = opened
            .read(|h| h.staff.get(&id).map(|s| s.employee_no.as_str().to_string()))
            .expect("read");
        assert_eq!(found.as_deref(), Some("C0001"));

        // Checkpointed and idle again: cold, and read back the same as a projector that
        // folded everything warm.
        opened.checkpoint().await.expect("checkpoint");
        for _ in 0..=IDLE_SWEEPS {
            opened.cool().expect("cool");
        }
        assert_eq!(opened.warm_shards(), (0, 0));
        assert_eq!(opened.shards_away(), (staff, sessions));
        let reopened = kiroku::projector::Projector::open(app.ledger.backend.clone())
            .await
            .expect("open");
        assert_eq!(
            reopened.fingerprint().expect("fingerprint"),
            opened.fingerprint().expect("fingerprint")
        );
        projector.catch_up().await.expect("catch up");
        assert_eq!(
            projector.fingerprint().expect("fingerprint"),
            opened.fingerprint().expect("fingerprint"),
            "the same as a projector that folded it warm"
        );
    }
);

/// Raw SQL literal of `bytes` for the test's backend.
fn bytes_literal(db: &Db, bytes: &[u8]) -> String {
    match db {
        Db::Sqlite => format!("X'{}'", hex::encode(bytes)),
        Db::Postgres => format!("'\\x{}'::bytea", hex::encode(bytes)),
    }
}

both_backends!(
    a_history_shard_that_cannot_be_read_back_stops_and_the_next_start_rebuilds,
    |app: TestApp| async move {
        use sha2::{Digest, Sha256};
        large_log(&app, 20).await;
        let projector = kiroku::projector::Projector::new(app.ledger.backend.clone());
        projector.catch_up().await.expect("catch up");
        let position = projector.checkpoint().await.expect("checkpoint");
        let (_, fingerprint) = projector.fingerprint().expect("fingerprint");

        // One staff shard's bytes replaced by bytes that are not a shard, and the manifest
        // and its seal made to match them: only decoding the shard can tell.
        let (key, manifest): (String, Vec<u8>) = kiroku::with_pool!(&app.ledger.backend, pool => {
            let key: String = sqlx::query_scalar(
                "SELECT key FROM projection_segments WHERE key LIKE 'histories.staff/%' \
                 ORDER BY key LIMIT 1",
            )
            .fetch_one(pool)
            .await
            .expect("a staff shard");
            let manifest: Vec<u8> =
                sqlx::query_scalar("SELECT state FROM projection_checkpoints")
                    .fetch_one(pool)
                    .await
                    .expect("the manifest");
            (key, manifest)
        });
        let damaged = [0x91u8, 0x01];
        let mut manifest: Value = serde_json::from_slice(&manifest).expect("manifest");
        manifest["pieces"][&key][1] = json!(hex::encode(Sha256::digest(damaged)));
        let manifest = serde_json::to_vec(&manifest).expect("manifest");
        let head = kiroku::storage::chain::hash_at(&app.ledger.backend, position)
            .await
            .expect("chain")
            .expect("a hash at the position");
        let mut seal = Sha256::new();
        seal.update(head.as_bytes());
        seal.update(&manifest);
        let seal = hex::encode(seal.finalize());
        let db = &app.db;
        app.sql(&format!(
            "UPDATE projection_segments SET bytes = {} WHERE key = '{key}'",
            bytes_literal(db, &damaged)
        ))
        .await
        .expect("damage the shard");
        app.sql(&format!(
            "UPDATE projection_checkpoints SET state = {}, fingerprint = '{seal}'",
            bytes_literal(db, &manifest)
        ))
        .await
        .expect("seal the manifest");

        // The start takes the checkpoint (it decodes no shard); reading everyone meets the
        // damaged shard and answers an error, not a list without those people.
        let opened = kiroku::projector::Projector::open(app.ledger.backend.clone())
            .await
            .expect("open");
        assert_eq!(opened.position(), position, "the checkpoint was taken");
        let everyone = opened.read(|h| h.staff.values().count());
        assert!(everyone.is_err(), "{everyone:?}");
        assert!(opened.fingerprint().is_err());

        // The serving tick deletes the checkpoint; the next start rebuilds from the log.
        opened.checkpoint_if_due().await.expect("tick");
        let next = kiroku::projector::Projector::open(app.ledger.backend.clone())
            .await
            .expect("open");
        assert_eq!(next.position(), 0, "nothing to load: rebuilt from the log");
        next.catch_up().await.expect("rebuild");
        assert_eq!(next.fingerprint().expect("fingerprint").1, fingerprint);
    }
);

/// Empties every file without a name this process holds under a cold shards' place: what a
/// failing disk would do to them.
fn spoil_the_cold_files() -> usize {
    let places = [
        "/var/tmp/".to_string(),
        format!("{}/", std::env::temp_dir().display()),
    ];
    let mut spoiled = 0;
    for entry in std::fs::read_dir("/proc/self/fd").expect("fds").flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let target = target.to_string_lossy().to_string();
        if target.ends_with("(deleted)") && places.iter().any(|p| target.starts_with(p.as_str())) {
            let file = std::fs::OpenOptions::new().write(true).open(entry.path());
            if file.and_then(|f| f.set_len(0)).is_ok() {
                spoiled += 1;
            }
        }
    }
    spoiled
}

both_backends!(
    a_history_shard_whose_file_is_lost_is_loaded_again_from_the_checkpoint,
    |app: TestApp| async move {
        use kiroku::projector::IDLE_SWEEPS;
        large_log(&app, 50).await;
        let projector = kiroku::projector::Projector::new(app.ledger.backend.clone());
        projector.catch_up().await.expect("catch up");
        let position = projector.checkpoint().await.expect("checkpoint");
        let (_, fingerprint) = projector.fingerprint().expect("fingerprint");
        for _ in 0..=IDLE_SWEEPS {
            projector.cool().expect("cool");
        }
        assert_eq!(projector.warm_shards(), (0, 0));
        assert!(spoil_the_cold_files() > 0, "no cold file to spoil");

        // Reading meets a shard that cannot be read back: an error, not a partial answer.
        let everyone = projector.read(|h| h.staff.values().count());
        assert!(everyone.is_err(), "{everyone:?}");

        // The next tick loads the read models from the checkpoint, which is sound and kept.
        projector.checkpoint_if_due().await.expect("tick");
        assert_eq!(projector.position(), position);
        assert!(projector.stopped().is_none());
        assert_eq!(projector.fingerprint().expect("fingerprint").1, fingerprint);
        let people = projector.read(|h| h.staff.values().count()).expect("read");
        assert!(people >= 50, "{people} people");
        assert!(pieces(&app).await > 0, "the checkpoint is kept");
        let next = kiroku::projector::Projector::open(app.ledger.backend.clone())
            .await
            .expect("open");
        assert_eq!(next.position(), position, "the checkpoint is loaded");
    }
);

both_backends!(
    a_checkpoint_writes_only_what_changed_and_reads_back_whole,
    |app: TestApp| async move {
        large_log(&app, 100).await;
        let projector = kiroku::projector::Projector::new(app.ledger.backend.clone());
        projector.catch_up().await.expect("catch up");
        projector.checkpoint().await.expect("first checkpoint");
        let (first, first_bytes) = projector.last_checkpoint();
        let first = first.len();
        assert_eq!(
            first as i64,
            pieces(&app).await,
            "the first checkpoint is whole"
        );
        assert!(first > 20, "{first} pieces");

        // One more registration: the second checkpoint writes the pieces it touched (the plan
        // book, the facts' plan piece and the erased people, which are always written; the last segment of the
        // timeline and of three staff fact vectors; the person's history shard) and no more;
        // the first one's rows of those pieces are deleted.
        let staff = app.register("Z0001", "総務課", 3).await;
        projector.catch_up().await.expect("catch up");
        let position = projector.checkpoint().await.expect("second checkpoint");
        let (second, second_bytes) = projector.last_checkpoint();
        let shard = format!("histories.staff/{:03}", staff.as_bytes()[0]);
        assert_eq!(
            second,
            [
                "facts",
                "facts.service_events/000000",
                "facts.staff/000000",
                "facts.staff_uuids/000000",
                "histories.erased",
                shard.as_str(),
                "plans",
                "timeline/000000",
            ],
            "the pieces written for one registration"
        );
        assert!(
            second_bytes * 3 < first_bytes,
            "{second_bytes} bytes written for one event, {first_bytes} for the whole"
        );
        assert_eq!(
            pieces(&app).await,
            first as i64,
            "one row per piece remains"
        );

        // Nothing moved: nothing written.
        projector.checkpoint().await.expect("third checkpoint");
        let opened = kiroku::projector::Projector::open(app.ledger.backend.clone())
            .await
            .expect("open");
        assert_eq!(opened.position(), position, "read back whole");
        assert_eq!(
            opened.fingerprint().expect("fingerprint"),
            projector.fingerprint().expect("fingerprint")
        );

        // A second process checkpointing in between: the first one's next checkpoint finds the
        // manifest moved and writes itself whole; every process still reads back the same.
        app.register("Z0002", "総務課", 3).await;
        opened.catch_up().await.expect("catch up");
        opened.checkpoint().await.expect("another process");
        app.register("Z0003", "総務課", 3).await;
        projector.catch_up().await.expect("catch up");
        let last = projector.checkpoint().await.expect("after another process");
        let reopened = kiroku::projector::Projector::open(app.ledger.backend.clone())
            .await
            .expect("open");
        assert_eq!(reopened.position(), last);
        assert_eq!(
            reopened.fingerprint().expect("fingerprint"),
            projector.fingerprint().expect("fingerprint")
        );

        // `kiroku rebuild` in between, at the very same position: every row deleted and
        // written again. The manifest stands at the position this projector last wrote, but it
        // is another manifest: the swap compares fingerprints, so this projector writes itself
        // whole instead of naming rows that are gone.
        kiroku::projector::Projector::drop_checkpoints(&app.ledger.backend)
            .await
            .expect("drop");
        let rebuilt = kiroku::projector::Projector::new(app.ledger.backend.clone());
        rebuilt.catch_up().await.expect("rebuild");
        assert_eq!(rebuilt.checkpoint_quiet().await.expect("rebuilt"), last);
        app.register("Z0004", "総務課", 3).await;
        projector.catch_up().await.expect("catch up");
        let after = projector.checkpoint().await.expect("after a rebuild");
        let reopened = kiroku::projector::Projector::open(app.ledger.backend.clone())
            .await
            .expect("open");
        assert_eq!(
            reopened.position(),
            after,
            "read back whole after a rebuild"
        );
        assert_eq!(
            reopened.fingerprint().expect("fingerprint"),
            projector.fingerprint().expect("fingerprint")
        );
    }
);
