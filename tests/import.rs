//! Attendance sheets from Excel: UTF-8 or Shift_JIS, all rows or none, errors by line.

mod support;

use serde_json::{json, Value};
use support::TestApp;

/// A course code only Windows-31J (CP932) can carry: an IBM extension kanji and NEC symbols.
const COURSE: &str = "髙度化研修Ⅲ①㎝";

async fn setup(app: &TestApp) -> Vec<String> {
    let mut body = support::session_body(2);
    body["course_code"] = json!(COURSE);
    body["starts_on"] = json!("2023-06-01");
    body["ends_on"] = json!("2023-06-02");
    let session = app.post(&app.hr, "/sessions", &body).await;
    assert_eq!(session.status.as_u16(), 201, "{:?}", session.body);
    let mut staff = Vec::new();
    for no in ["S001", "S002", "S003"] {
        app.register(no, "総務課", 2).await;
        staff.push(no.to_string());
    }
    staff
}

async fn post_csv(app: &TestApp, charset: &str, bytes: Vec<u8>) -> support::Reply {
    app.post_raw(
        &app.hr,
        "/imports/attendance",
        &format!("text/csv; charset={charset}"),
        bytes,
    )
    .await
}

both_backends!(
    a_shift_jis_sheet_is_imported_whole,
    |app: TestApp| async move {
        setup(&app).await;
        let csv = format!(
            "employee_no,course_code,session_starts_on,completed_on,understanding\r\n\
         S001,{COURSE},2023-06-01,2023-06-02,5\r\n\
         S002,{COURSE},2023-06-01,2023-06-02,\r\n\
         S003,{COURSE},2023-06-01,2023-06-02,3\r\n"
        );
        let (bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&csv);
        assert!(!unmappable, "the test file is valid CP932");
        let before = app.event_count().await;
        let reply = post_csv(&app, "shift_jis", bytes.into_owned()).await;
        assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
        assert_eq!(reply.body["rows"], json!(3));
        // Capacity 2 does not stop people who attended: each row enrols and completes.
        assert_eq!(app.event_count().await, before + 6);

        let staff = app
            .get(
                &app.hr,
                &format!(
                    "/staff/{}",
                    kiroku_domain::staff::staff_id_of(
                        &kiroku_domain::values::EmployeeNo::parse("S001").expect("no"),
                    )
                ),
            )
            .await;
        let training = &staff.body["trainings"][0];
        assert_eq!(
            training["course_code"],
            json!(COURSE),
            "髙, Ⅲ, ① and ㎝ survived"
        );
        assert_eq!(training["completed_on"], "2023-06-02");
        assert_eq!(training["understanding"], json!(5));

        // Importing the same sheet again is refused as a whole: all three already completed.
        let again = post_csv(
            &app,
            "shift_jis",
            encoding_rs::SHIFT_JIS.encode(&csv).0.into_owned(),
        )
        .await;
        again.assert_problem(400, "import_rejected");
        assert_eq!(again.body["errors"].as_array().map(Vec::len), Some(3));
        assert_eq!(app.event_count().await, before + 6);
    }
);

both_backends!(
    one_bad_row_rejects_the_whole_sheet_with_line_numbers,
    |app: TestApp| async move {
        setup(&app).await;
        let csv = format!(
            "employee_no,course_code,session_starts_on,completed_on,understanding\n\
         S001,{COURSE},2023-06-01,2023-06-02,5\n\
         X999,{COURSE},2023-06-01,2023-06-02,4\n\
         S002,{COURSE},2023-06-01,2023-02-30,4\n\
         S003,{COURSE},2023-06-01,2023-06-02,7\n\
         S003,存在しない研修,2023-06-01,2023-06-02,4\n"
        );
        let before = app.event_count().await;
        let reply = post_csv(&app, "utf-8", csv.into_bytes()).await;
        reply.assert_problem(400, "import_rejected");
        let lines: Vec<i64> = reply.body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["line"].as_i64())
            .collect();
        assert_eq!(lines, vec![3, 4, 5, 6]);
        assert_eq!(app.event_count().await, before, "nothing was recorded");

        // The session's own rules, by line and in the session's words: a person not
        // registered, a completion before the session began, the same person twice.
        let csv = format!(
            "職員番号,研修コード,開催日,修了日,理解度\n\
         S001,{COURSE},2023/6/1,2023/6/2,5\n\
         S001,{COURSE},2023/6/1,2023/6/2,4\n\
         S002,{COURSE},2023/6/1,2023/5/30,4\n\
         X999,{COURSE},2023/6/1,2023/6/2,4\n"
        );
        let reply = post_csv(&app, "utf-8", csv.into_bytes()).await;
        reply.assert_problem(400, "import_rejected");
        let found: Vec<(i64, String)> = reply.body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| {
                (
                    e["line"].as_i64().unwrap_or(0),
                    e["message"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].0, 3);
        assert!(
            found[0].1.contains("S001") && found[0].1.contains("すでに修了しています"),
            "{found:?}"
        );
        assert_eq!(found[1].0, 4);
        assert!(
            found[1].1.contains("修了日が研修の開始日より前です"),
            "{found:?}"
        );
        assert_eq!(found[2].0, 5);
        assert!(
            found[2].1.contains("X999") && found[2].1.contains("登録されていません"),
            "{found:?}"
        );
        assert_eq!(app.event_count().await, before, "nothing was recorded");

        // A file of bad rows lists its first thousand problems and counts the rest.
        let mut many =
            String::from("employee_no,course_code,session_starts_on,completed_on,understanding\n");
        for i in 0..1500 {
            many.push_str(&format!(
                "S001,{COURSE},2023-06-01,2023-06-02,{}\n",
                6 + i % 3
            ));
        }
        let reply = post_csv(&app, "utf-8", many.into_bytes()).await;
        reply.assert_problem(400, "import_rejected");
        let errors = reply.body["errors"].as_array().expect("errors");
        assert_eq!(errors.len(), 1001);
        assert!(errors[1000]["message"]
            .as_str()
            .is_some_and(|m| m.contains("500 件の問題があります")));

        // Over the size limit, with or without a key: problem+json, nothing recorded.
        let huge = vec![b'a'; 16 * 1024 * 1024 + 1];
        let too_large = post_csv(&app, "utf-8", huge).await;
        too_large.assert_problem(413, "body_too_large");

        let wrong_header = post_csv(&app, "utf-8", b"a,b\n1,2\n".to_vec()).await;
        wrong_header.assert_problem(400, "import_rejected");
        let not_sjis = post_csv(&app, "utf-8", vec![0x82, 0xA0, b'\n']).await;
        not_sjis.assert_problem(400, "import_rejected");
        let staff_token = app
            .token(kiroku::storage::tokens::Role::Auditor, "監査", None)
            .await;
        let forbidden = app
            .post_raw(
                &staff_token,
                "/imports/attendance",
                "text/csv",
                b"x".to_vec(),
            )
            .await;
        forbidden.assert_problem(403, "forbidden");
        assert_eq!(app.event_count().await, before);
    }
);

both_backends!(
    the_cli_imports_a_file_with_a_progress_bar,
    |app: TestApp| async move {
        setup(&app).await;
        let csv = format!(
            "employee_no,course_code,session_starts_on,completed_on,understanding\r\n\
         S001,{COURSE},2023-06-01,2023-06-02,4\r\n"
        );
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("受講実績.csv");
        std::fs::write(&path, encoding_rs::SHIFT_JIS.encode(&csv).0).expect("write");
        let before = app.event_count().await;
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_kiroku"))
            .args(["import", "attendance"])
            .arg(&path)
            .args(["--encoding", "shift_jis"])
            .env("DATABASE_URL", &app.database_url)
            .output()
            .expect("kiroku import");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(app.event_count().await, before + 2);
        let events: Value = app.get(&app.hr, "/events?after=0&limit=1000").await.body;
        let last = events["events"]
            .as_array()
            .and_then(|e| e.last())
            .cloned()
            .unwrap_or(Value::Null);
        assert_eq!(last["event_type"], "TrainingCompleted");
        assert_eq!(last["metadata"]["actor"], "人事課（CLI）");
    }
);

both_backends!(
    excel_line_endings_dates_and_japanese_headers_name_the_line_excel_shows,
    |app: TestApp| async move {
        setup(&app).await;
        // The third line is wrong (an unknown employee); so is the fifth (a bad date).
        let lines = [
            "職員番号,研修コード,開催日,修了日,理解度".to_string(),
            format!("S001,{COURSE},2023/6/1,2023/6/2,5"),
            format!("X999,{COURSE},2023/6/1,2023/6/2,4"),
            format!("S002,{COURSE},2023/06/01,2023/06/02,4"),
            format!("S003,{COURSE},2023/6/1,2023/2/30,3"),
        ];
        let before = app.event_count().await;
        for (name, ending) in [("CRLF", "\r\n"), ("LF", "\n"), ("CR", "\r")] {
            let csv = lines.join(ending) + ending;
            let (bytes, _, _) = encoding_rs::SHIFT_JIS.encode(&csv);
            let reply = post_csv(&app, "shift_jis", bytes.into_owned()).await;
            reply.assert_problem(400, "import_rejected");
            let errors = reply.body["errors"].as_array().cloned().unwrap_or_default();
            let found: Vec<(i64, String)> = errors
                .iter()
                .map(|e| {
                    (
                        e["line"].as_i64().unwrap_or(0),
                        e["message"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            assert_eq!(found.len(), 2, "{name}: {found:?}");
            assert_eq!(found[0].0, 3, "{name}: {found:?}");
            assert!(found[0].1.contains("X999"), "{name}: {found:?}");
            assert_eq!(found[1].0, 5, "{name}: {found:?}");
            assert!(found[1].1.contains("修了日"), "{name}: {found:?}");
            assert_eq!(app.event_count().await, before, "{name}: nothing recorded");
        }
        // The same sheet without its bad lines, with Excel's dates and a Japanese header.
        let good = [&lines[0], &lines[1], &lines[3]]
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\r\n");
        let (bytes, _, _) = encoding_rs::SHIFT_JIS.encode(&good);
        let reply = post_csv(&app, "shift_jis", bytes.into_owned()).await;
        assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
        assert_eq!(reply.body["rows"], json!(2));
        assert_eq!(app.event_count().await, before + 4);
    }
);

/// The sessions of one sheet are written in one transaction: when another change reaches one
/// of them between the check and the commit, none of the sheet's rows is recorded, in any
/// session, and the same rows commit whole once nothing is in the way.
mod one_transaction {
    use super::*;
    use cqrs_es::Aggregate;
    use kiroku::application::{Actor, Command, Service};
    use kiroku::ledger::CommandError;
    use kiroku::storage::repository::{holding_back, streaming};
    use kiroku::storage::tokens::{Principal, Role};
    use kiroku_domain::session::{Attendance, SessionCommand, SessionEvent, TrainingSession};
    use kiroku_domain::values::{Date, Understanding};
    use uuid::Uuid;

    async fn session(app: &TestApp, starts_on: &str) -> Uuid {
        let mut body = support::session_body(5);
        body["starts_on"] = json!(starts_on);
        body["ends_on"] = json!(starts_on);
        let reply = app.post(&app.hr, "/sessions", &body).await;
        assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
        reply.body["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("session id")
    }

    /// `count` staff registered by 8 clients at once, numbered `{prefix}0000`…, in that order
    /// as `(number, id)`.
    async fn register_many(app: &TestApp, prefix: &str, count: usize) -> Vec<(usize, Uuid)> {
        let mut tasks = Vec::new();
        for first in 0..8 {
            let (client, url, token) = (app.client.clone(), app.url("/staff"), app.hr.clone());
            let prefix = prefix.to_string();
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in (first..count).step_by(8) {
                    let body =
                        support::staff_body(&format!("{prefix}{i:04}"), "総務課", 2, "2015-04-01");
                    let reply: Value = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                        .expect("register")
                        .json()
                        .await
                        .expect("json");
                    let id: Uuid = reply["id"]
                        .as_str()
                        .and_then(|id| id.parse().ok())
                        .expect("id");
                    ids.push((i, id));
                }
                ids
            }));
        }
        let mut staff = Vec::new();
        for task in tasks {
            staff.extend(task.await.expect("registered"));
        }
        staff.sort();
        staff
    }

    /// The commits of `commands`, decided as an import decides them and held back.
    async fn hold(app: &TestApp, commands: Vec<Command>) -> Vec<kiroku::storage::append::Part> {
        let principal = Principal {
            name: "取込".into(),
            role: Role::HrAdmin,
            staff_id: None,
        };
        let actor = Actor {
            principal: &principal,
            request_id: "one-transaction",
            as_of: None,
            unconfirmed: None,
        };
        let service = Service::new(&app.ledger);
        let (decided, held) = holding_back(async {
            for command in commands {
                service.execute(&actor, command).await?;
            }
            Ok::<(), kiroku::application::AppError>(())
        })
        .await;
        decided.expect("every command is decided");
        held
    }

    /// How many trainings `staff`'s history lists.
    async fn trainings(app: &TestApp, staff: Uuid) -> Option<usize> {
        let history = app.get(&app.hr, &format!("/staff/{staff}")).await;
        history.body["trainings"].as_array().map(Vec::len)
    }

    /// Someone enrols `staff` in `session` through the API.
    async fn enrol(app: &TestApp, session: Uuid, staff: Uuid) {
        let enrolled = app
            .post(
                &app.hr,
                &format!("/sessions/{session}/enrolments"),
                &json!({ "staff_id": staff }),
            )
            .await;
        assert_eq!(enrolled.status.as_u16(), 201, "{:?}", enrolled.body);
    }

    /// The commands of a sheet completing `staff` in both sessions, held back.
    async fn sheet(
        app: &TestApp,
        sessions: [(Uuid, &str); 2],
        staff: Uuid,
    ) -> Vec<kiroku::storage::append::Part> {
        let commands = sessions
            .into_iter()
            .map(|(session_id, on)| Command::Session {
                session_id,
                command: SessionCommand::RecordAttendances(vec![Attendance {
                    staff_id: staff,
                    staff_registered: true,
                    completed_on: on.parse::<Date>().expect("date"),
                    understanding: None,
                }]),
            })
            .collect();
        hold(app, commands).await
    }

    both_backends!(
        a_change_in_between_refuses_every_session_of_the_sheet,
        |app: TestApp| async move {
            let first = session(&app, "2023-06-01").await;
            let second = session(&app, "2023-07-03").await;
            let staff = app.register("T001", "総務課", 2).await;
            let other = app.register("T002", "総務課", 2).await;
            let sessions = [(first, "2023-06-01"), (second, "2023-07-03")];
            let before = app.event_count().await;

            let held = sheet(&app, sessions, staff).await;
            assert_eq!(held.len(), 2, "one commit per session, held back");
            assert_eq!(
                app.event_count().await,
                before,
                "nothing written while held"
            );
            // Someone enrols another person in the second session in the meantime.
            enrol(&app, second, other).await;
            let refused = app.ledger.commit_held(held).await;
            assert!(
                matches!(refused, Err(CommandError::Contended)),
                "{refused:?}"
            );
            assert_eq!(
                app.event_count().await,
                before + 1,
                "neither session got the sheet's rows, only the enrolment"
            );
            assert_eq!(trainings(&app, staff).await, Some(0));

            // Nothing in the way: both sessions' rows commit, in one transaction.
            let held = sheet(&app, sessions, staff).await;
            let events = app.ledger.commit_held(held).await.expect("committed");
            assert_eq!(events.len(), 4, "an enrolment and a completion per session");
            assert_eq!(app.event_count().await, before + 1 + 4);
            assert_eq!(trainings(&app, staff).await, Some(2));
        }
    );

    both_backends!(
        a_sheet_of_thousands_of_events_commits_whole_and_sealed,
        |app: TestApp| async move {
            // 1,001 rows in one session: 2,002 events, enough for PostgreSQL's bulk path
            // (COPY), the positions and times of which the database assigns.
            let rows = 1_001;
            let mut body = support::session_body(rows as u32 + 1);
            body["starts_on"] = json!("2023-06-01");
            body["ends_on"] = json!("2023-06-01");
            let reply = app.post(&app.hr, "/sessions", &body).await;
            assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
            let session_id = reply.id();
            let staff = register_many(&app, "B", rows + 1).await;
            let (sheet_staff, other) = (&staff[..rows], staff[rows].1);

            // Held back, then someone else enrols in the session: the bulk commit is
            // refused whole.
            let attendances = sheet_staff
                .iter()
                .map(|(_, staff_id)| Attendance {
                    staff_id: *staff_id,
                    staff_registered: true,
                    completed_on: "2023-06-01".parse::<Date>().expect("date"),
                    understanding: Understanding::try_from(4).ok(),
                })
                .collect();
            let command = Command::Session {
                session_id,
                command: SessionCommand::RecordAttendances(attendances),
            };
            let held = hold(&app, vec![command]).await;
            let before = app.event_count().await;
            enrol(&app, session_id, other).await;
            let refused = app.ledger.commit_held(held).await;
            assert!(
                matches!(refused, Err(CommandError::Contended)),
                "{refused:?}"
            );
            assert_eq!(app.event_count().await, before + 1, "only the enrolment");

            // The same rows as a sheet through the API: all of them, numbered one after
            // another, sealed, and folded as a rebuild folds them.
            let head = kiroku::storage::log::head(&app.ledger.backend)
                .await
                .expect("head");
            let mut csv = String::from(
                "employee_no,course_code,session_starts_on,completed_on,understanding\n",
            );
            for (i, _) in sheet_staff {
                csv.push_str(&format!("B{i:04},K-101,2023-06-01,2023-06-01,4\n"));
            }
            let reply = post_csv(&app, "utf-8", csv.into_bytes()).await;
            assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
            let events = kiroku::storage::log::read_after(&app.ledger.backend, head, 5_000)
                .await
                .expect("read");
            assert_eq!(events.len(), 2 * rows);
            // PostgreSQL may leave a gap before them: the refused commit drew a position.
            let first = events[0].position;
            assert!(first > head);
            assert!(
                events.iter().zip(first..).all(|(e, p)| e.position == p),
                "consecutive positions"
            );
            assert_eq!(reply.body["position"], json!(first + 2 * rows as i64 - 1));
            assert!(events
                .windows(2)
                .all(|w| w[0].recorded_at <= w[1].recorded_at));
            assert!(
                events.iter().all(|e| e.hash.is_some()),
                "every event sealed"
            );
            let last = events.last().expect("events");
            assert_eq!(last.event_type, "TrainingCompleted");
            assert_eq!(last.payload["TrainingCompleted"]["understanding"], json!(4));
            assert_eq!(
                last.payload["TrainingCompleted"]["staff_id"],
                json!(sheet_staff[rows - 1].1),
                "the last row is the last event"
            );

            let run = |args: &[&str]| {
                let output = std::process::Command::new(env!("CARGO_BIN_EXE_kiroku"))
                    .args(args)
                    .env("DATABASE_URL", &app.database_url)
                    .output()
                    .expect("kiroku");
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
                (output.status.success(), text)
            };
            let (intact, out) = run(&["verify"]);
            assert!(intact, "{out}");
            let live = app.get(&app.auditor, "/projections").await.body;
            assert_eq!(live["position"], json!(first + 2 * rows as i64 - 1));
            let fingerprint = live["fingerprint"].as_str().expect("fingerprint");
            let (rebuilt, out) = run(&["rebuild"]);
            assert!(
                rebuilt && out.contains(fingerprint),
                "live {fingerprint} vs {out}"
            );

            // Read together as an import reads its sessions (its snapshot and the events
            // after it), the session is what its every event folds to.
            // Asked with a session that has no snapshot yet, and twice for the same one.
            let id = session_id.to_string();
            let fresh = session(&app, "2023-09-01").await.to_string();
            let read = app
                .ledger
                .load_many::<TrainingSession>(&[id.clone(), fresh.clone(), id.clone()])
                .await
                .expect("read");
            assert_eq!(read.len(), 2, "one state per session");
            assert!(read[&fresh].current_sequence > 0);
            assert_eq!(read[&fresh].current_snapshot, None);
            let everything = kiroku::storage::log::read_after(&app.ledger.backend, 0, 10_000)
                .await
                .expect("log");
            let mut folded = TrainingSession::default();
            let mut sequence = 0;
            for event in everything.iter().filter(|e| e.aggregate_id == id) {
                let event: SessionEvent =
                    serde_json::from_value(event.payload.clone()).expect("session event");
                folded.apply(event);
                sequence += 1;
            }
            let loaded = &read[&id];
            assert_eq!(loaded.current_sequence, sequence);
            assert!(sequence > 2 * rows, "{sequence}");
            assert!(loaded.current_snapshot.is_some(), "read from a snapshot");
            assert_eq!(
                serde_json::to_value(&loaded.aggregate).expect("json"),
                serde_json::to_value(&folded).expect("json")
            );
        }
    );

    both_backends!(
        a_sheet_decides_on_its_sessions_as_read_for_its_checks,
        |app: TestApp| async move {
            let first = session(&app, "2023-06-01").await;
            let second = session(&app, "2023-07-03").await;
            let staff = app.register("T001", "総務課", 2).await;
            let other = app.register("T002", "総務課", 2).await;
            let unknown = Uuid::new_v4().to_string();
            let ids = vec![first.to_string(), second.to_string(), unknown.clone()];
            let read = app
                .ledger
                .load_many::<TrainingSession>(&ids)
                .await
                .expect("read");
            assert_eq!(read.len(), 3, "every session asked for");
            assert_eq!(
                read[&unknown].current_sequence, 0,
                "one that does not exist"
            );
            assert!(read[&ids[0]].current_sequence > 0);
            let before = app.event_count().await;

            // Someone enrols another person in the second session after the sheet's
            // sessions were read: the sheet's commands are decided on what was read, so the
            // commit finds the session moved and records none of the sheet.
            enrol(&app, second, other).await;
            // Streamed as an import streams it: on PostgreSQL the `COPY` meets the taken
            // sequence and the server refuses it.
            let commands = vec![
                attendance(first, staff, "2023-06-01"),
                attendance(second, staff, "2023-07-03"),
            ];
            let (decided, refused) =
                kiroku::storage::aggregates::with_preloaded(read, stream(&app, commands, false))
                    .await;
            decided.expect("decided on the sessions as read");
            assert!(
                matches!(refused, Err(CommandError::Contended)),
                "{refused:?}"
            );
            assert_eq!(app.event_count().await, before + 1, "only the enrolment");

            assert_eq!(trainings(&app, staff).await, Some(0));
        }
    );
    /// The actor an import's commands run as.
    fn importer() -> Principal {
        Principal {
            name: "取込".into(),
            role: Role::HrAdmin,
            staff_id: None,
        }
    }

    /// A sheet's attendance in `session` for `staff`, as an import decides it.
    fn attendance(session_id: Uuid, staff: Uuid, on: &str) -> Command {
        Command::Session {
            session_id,
            command: SessionCommand::RecordAttendances(vec![Attendance {
                staff_id: staff,
                staff_registered: true,
                completed_on: on.parse::<Date>().expect("date"),
                understanding: None,
            }]),
        }
    }

    /// `commands` decided in a streaming scope, as an import decides its sheet, while the
    /// ledger writes their commits; `fail` abandons the unit after the first command, once
    /// the writer has had time to begin (PostgreSQL's `COPY` is then open).
    async fn stream(
        app: &TestApp,
        commands: Vec<Command>,
        fail: bool,
    ) -> (
        Result<(), kiroku::application::AppError>,
        Result<Vec<kiroku::storage::log::LogEvent>, CommandError>,
    ) {
        let principal = importer();
        let actor = Actor {
            principal: &principal,
            request_id: "streamed",
            as_of: None,
            unconfirmed: None,
        };
        let service = Service::new(&app.ledger);
        let (parts, receiver) = tokio::sync::mpsc::unbounded_channel();
        let deciding = streaming(parts, async {
            for command in commands {
                service.execute(&actor, command).await?;
                if fail {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    return Err(kiroku::application::AppError::Forbidden);
                }
            }
            Ok(())
        });
        tokio::join!(deciding, app.ledger.commit_streamed(receiver))
    }

    /// What [`stream`] gave for a unit abandoned midway: refused as abandoned.
    fn abandoned(
        (decided, committed): (
            Result<(), kiroku::application::AppError>,
            Result<Vec<kiroku::storage::log::LogEvent>, CommandError>,
        ),
    ) {
        assert!(decided.is_err());
        assert!(
            matches!(&committed, Err(CommandError::Storage(detail)) if detail.contains("abandoned")),
            "{committed:?}"
        );
    }

    /// What [`stream`] gave for a unit ended well: its events, sealed at consecutive positions.
    fn written_whole(
        (decided, committed): (
            Result<(), kiroku::application::AppError>,
            Result<Vec<kiroku::storage::log::LogEvent>, CommandError>,
        ),
    ) -> Vec<kiroku::storage::log::LogEvent> {
        decided.expect("decided");
        let events = committed.expect("committed");
        assert!(events
            .windows(2)
            .all(|w| w[1].position == w[0].position + 1));
        assert!(
            events.iter().all(|e| e.hash.is_some()),
            "every event sealed"
        );
        events
    }

    both_backends!(
        a_streamed_sheet_abandoned_midway_records_nothing,
        |app: TestApp| async move {
            let first = session(&app, "2023-06-01").await;
            let second = session(&app, "2023-07-03").await;
            let staff = app.register("T001", "総務課", 2).await;
            let before = app.event_count().await;
            let commands = || {
                vec![
                    attendance(first, staff, "2023-06-01"),
                    attendance(second, staff, "2023-07-03"),
                ]
            };

            abandoned(stream(&app, commands(), true).await);
            assert_eq!(app.event_count().await, before, "nothing of the unit");
            assert_eq!(trainings(&app, staff).await, Some(0));

            // The same unit, ended well: written whole, sealed, at consecutive positions.
            let events = written_whole(stream(&app, commands(), false).await);
            assert_eq!(events.len(), 4, "an enrolment and a completion per session");
            assert_eq!(app.event_count().await, before + 4);
            assert_eq!(trainings(&app, staff).await, Some(2));
        }
    );

    both_backends!(
        a_streamed_sheet_abandoned_after_thousands_of_events_records_nothing,
        |app: TestApp| async move {
            // 1,001 rows in one session: 2,002 events, so on PostgreSQL the first piece of
            // the `COPY` has gone to the server when the unit is abandoned.
            let rows = 1_001;
            let mut body = support::session_body(rows as u32);
            body["starts_on"] = json!("2023-06-01");
            body["ends_on"] = json!("2023-06-01");
            let reply = app.post(&app.hr, "/sessions", &body).await;
            assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
            let session_id = reply.id();
            let later = session(&app, "2023-07-03").await;
            let staff = register_many(&app, "A", rows).await;
            let before = app.event_count().await;
            let commands = || {
                vec![
                    Command::Session {
                        session_id,
                        command: SessionCommand::RecordAttendances(
                            staff
                                .iter()
                                .map(|(_, staff_id)| Attendance {
                                    staff_id: *staff_id,
                                    staff_registered: true,
                                    completed_on: "2023-06-01".parse::<Date>().expect("date"),
                                    understanding: None,
                                })
                                .collect(),
                        ),
                    },
                    attendance(later, staff[0].1, "2023-07-03"),
                ]
            };

            abandoned(stream(&app, commands(), true).await);
            assert_eq!(app.event_count().await, before, "nothing of the unit");
            assert_eq!(trainings(&app, staff[0].1).await, Some(0));

            // The appender and the log go on: a command, then the same unit ended well.
            let other = app.register("A9999", "総務課", 2).await;
            enrol(&app, later, other).await;
            let events = written_whole(stream(&app, commands(), false).await);
            assert_eq!(events.len(), 2 * rows + 2);
            assert_eq!(app.event_count().await, before + 2 + 2 * rows as i64 + 2);
            assert_eq!(trainings(&app, staff[0].1).await, Some(2));
        }
    );

    both_backends!(
        a_command_on_a_later_session_of_a_streamed_sheet_does_not_stall_it,
        |app: TestApp| async move {
            let first = session(&app, "2023-06-01").await;
            let second = session(&app, "2023-07-03").await;
            let staff = app.register("T001", "総務課", 2).await;
            let other = app.register("T002", "総務課", 2).await;
            let before = app.event_count().await;
            let principal = importer();
            let actor = Actor {
                principal: &principal,
                request_id: "streamed",
                as_of: None,
                unconfirmed: None,
            };
            let service = Service::new(&app.ledger);
            let (client, url, token) = (
                app.client.clone(),
                app.url(&format!("/sessions/{second}/enrolments")),
                app.hr.clone(),
            );
            let enrolling = async move {
                let reply = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({ "staff_id": other }))
                    .send()
                    .await
                    .expect("enrol");
                reply.status().as_u16()
            };

            // While the sheet's first session is being written, someone enrols another
            // person in its second session: that command is decided and waits for the
            // appender, which waits for the sheet; the sheet then decides its second session.
            let (parts, receiver) = tokio::sync::mpsc::unbounded_channel();
            let deciding = streaming(parts, async {
                service
                    .execute(&actor, attendance(first, staff, "2023-06-01"))
                    .await?;
                let enrolment = tokio::spawn(enrolling);
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                service
                    .execute(&actor, attendance(second, staff, "2023-07-03"))
                    .await?;
                Ok::<_, kiroku::application::AppError>(enrolment)
            });
            let (decided, committed) =
                tokio::time::timeout(std::time::Duration::from_secs(20), async {
                    tokio::join!(deciding, app.ledger.commit_streamed(receiver))
                })
                .await
                .expect("the sheet and the command do not wait for each other");
            let enrolment = decided.expect("decided");
            let events = committed.expect("committed");
            assert_eq!(events.len(), 4, "an enrolment and a completion per session");
            let enrolled = tokio::time::timeout(std::time::Duration::from_secs(20), enrolment)
                .await
                .expect("the enrolment is answered")
                .expect("task");
            assert_eq!(enrolled, 201, "decided again on the sheet's commit");
            assert_eq!(app.event_count().await, before + 5);
        }
    );

    both_backends!(
        a_streamed_unit_with_a_float_is_written_whole_and_reads_back_the_same,
        |app: TestApp| async move {
            use kiroku_domain::plan::PlanCommand;
            use kiroku_domain::values::{ActualStatus, Code, FiscalYear};
            let defined = app
                .post(&app.hr, "/plan-items", &support::plan_item_body())
                .await;
            assert_eq!(defined.status.as_u16(), 201, "{:?}", defined.body);
            let first = session(&app, "2023-06-01").await;
            let staff = app.register("T001", "総務課", 2).await;
            let before = app.event_count().await;

            // The attendance goes first (on PostgreSQL its `COPY` begins), then a value that
            // is not an integer, which `COPY` does not take: the unit is inserted instead.
            let report = Command::Plan {
                code: Code::parse("2-1-2").expect("code"),
                command: PlanCommand::ReportActual {
                    indicator_code: Code::parse("want_management").expect("code"),
                    fiscal_year: FiscalYear::try_from(2023).expect("year"),
                    value: 17.3,
                    status: ActualStatus::Confirmed,
                    note: None,
                },
                reason: None,
            };
            let commands = vec![attendance(first, staff, "2023-06-01"), report];
            let (decided, committed) = stream(&app, commands, false).await;
            decided.expect("decided");
            let events = committed.expect("committed");
            assert_eq!(events.len(), 3, "an enrolment, a completion and the actual");
            assert_eq!(app.event_count().await, before + 3);
            assert_eq!(
                events[2].payload["ActualReported"]["value"],
                json!(17.3),
                "{:?}",
                events[2].payload
            );
            let sheet = app.get(&app.auditor, "/plan-items/2-1-2/sheet").await;
            let cell = support::sheet_cell(&sheet.body, "want_management", 2023);
            assert_eq!(cell["actual"]["value"], json!(17.3), "{cell:?}");
            let verified = std::process::Command::new(env!("CARGO_BIN_EXE_kiroku"))
                .arg("verify")
                .env("DATABASE_URL", &app.database_url)
                .output()
                .expect("kiroku");
            assert!(
                verified.status.success(),
                "{}{}",
                String::from_utf8_lossy(&verified.stdout),
                String::from_utf8_lossy(&verified.stderr)
            );
        }
    );
}

both_backends!(
    a_snapshot_crossed_by_a_two_event_command_holds_both_events,
    |app: TestApp| async move {
        // Scheduled (sequence 1) and 98 enrolments: the session stands at 99. One imported
        // row then enrols and completes someone new: sequences 100 and 101, and a snapshot.
        // cqrs-es' rule put only the 100th event in it, stored under 101, so a server that
        // loads the session from it did not know the completion and took it again.
        let session = app.schedule(200).await;
        for i in 0..98 {
            let staff = app.register(&format!("P{i:03}"), "総務課", 2).await;
            let reply = app
                .post(
                    &app.hr,
                    &format!("/sessions/{session}/enrolments"),
                    &json!({ "staff_id": staff }),
                )
                .await;
            assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
        }
        app.register("Q001", "総務課", 2).await;
        let csv = "employee_no,course_code,session_starts_on,completed_on,understanding\n\
                   Q001,K-101,2023-05-10,2023-05-11,4\n";
        let reply = post_csv(&app, "utf-8", csv.as_bytes().to_vec()).await;
        assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
        let before = app.event_count().await;

        let (second, _stop) = support::second_server(&app.database_url).await;
        let again = app
            .client
            .post(format!("{second}/imports/attendance"))
            .bearer_auth(&app.hr)
            .header("content-type", "text/csv; charset=utf-8")
            .body(csv)
            .send()
            .await
            .expect("import");
        let status = again.status().as_u16();
        let body: Value = again.json().await.expect("json");
        assert_eq!(
            status, 400,
            "already completed, as the first server knows: {body:?}"
        );
        assert_eq!(body["code"], "import_rejected");
        assert_eq!(app.event_count().await, before, "no second completion");
    }
);
