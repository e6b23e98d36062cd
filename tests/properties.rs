//! Generated hostile input against both backends at once: command JSON near and far from what
//! the API expects, and attendance sheets with every kind of bad row. Every answer is 2xx or a
//! 4xx problem+json, never 5xx; a refused request appends nothing; and the two backends accept
//! and refuse exactly the same inputs.

mod support;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Map, Value};
use support::{Db, TestApp};

/// Cases per endpoint (bounded so the whole file runs in well under a minute).
const CASES: usize = 150;
const SHEETS: usize = 120;

fn runner() -> TestRunner {
    // A fixed seed: the same cases on every run and on both backends.
    TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    )
}

fn sample<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
    let mut runner = runner();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).expect("a case").current())
        .collect()
}

/// Strings that have broken parsers before, and ordinary ones.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("総務課".to_string()),
        Just("2024-04-01".to_string()),
        Just("2023-02-30".to_string()),
        Just("<script>alert(1)</script>".to_string()),
        Just("=HYPERLINK(\"http://x\")".to_string()),
        Just("a\u{0}b".to_string()),
        Just("\u{202e}逆".to_string()),
        Just("..".to_string()),
        Just("9".repeat(400)),
        Just("企".repeat(5000)),
        "[ -~]{0,20}",
        "\\PC{0,12}",
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|n| json!(n)),
        (-10i64..10).prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        Just(json!(u64::MAX)),
    ]
}

/// Field names the API knows, so objects come near to valid commands.
const FIELDS: &[&str] = &[
    "employee_no",
    "name",
    "name_kana",
    "gender",
    "hired_on",
    "grade",
    "job_type",
    "employment",
    "department",
    "department_kind",
    "to_department",
    "effective_on",
    "reason",
    "kind",
    "course_code",
    "title",
    "category",
    "provider",
    "delivery",
    "starts_on",
    "ends_on",
    "capacity",
    "staff_id",
    "code",
    "indicators",
    "fiscal_year",
    "overall",
    "competencies",
    "comment",
    "evaluator_id",
    "period",
    "held_on",
    "interviewer_id",
    "note",
    "value",
    "status",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
        prop::sample::select(
            &[
                "female",
                "male",
                "regular",
                "administrative",
                "tiered",
                "in_person",
                "administration",
                "A",
                "first_half",
                "one_on_one",
                "continued"
            ][..]
        )
        .prop_map(|s| json!(s)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(FIELDS).prop_map(str::to_string),
                        text()
                    ],
                    inner
                ),
                0..10
            )
            .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A valid registration with some fields replaced or removed.
fn near_registration() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec((prop::sample::select(FIELDS), leaf()), 0..3),
        prop::collection::vec(prop::sample::select(FIELDS), 0..2),
        "P[0-9]{3}",
    )
        .prop_map(|(replaced, removed, no)| {
            let mut body = support::staff_body(&no, "総務課", 3, "2020-04-01");
            for (field, value) in replaced {
                body[field] = value;
            }
            if let Some(object) = body.as_object_mut() {
                for field in removed {
                    object.remove(field);
                }
            }
            body
        })
}

struct Backends {
    sqlite: TestApp,
    postgres: TestApp,
}

impl Backends {
    async fn start() -> Option<Backends> {
        Some(Backends {
            sqlite: support::spawn_app(Db::Sqlite).await?,
            postgres: support::spawn_app(Db::Postgres).await?,
        })
    }

    /// Sends the same request to both; checks the properties; returns the status.
    async fn post(&self, path: &str, content_type: &str, body: Vec<u8>) -> u16 {
        let mut statuses = Vec::new();
        for app in [&self.sqlite, &self.postgres] {
            let before = app.event_count().await;
            let reply = app
                .post_raw(&app.hr, path, content_type, body.clone())
                .await;
            let status = reply.status.as_u16();
            let shown = String::from_utf8_lossy(&body)
                .chars()
                .take(300)
                .collect::<String>();
            assert!(status < 500, "{path} {shown}: {status} {:?}", reply.body);
            if status >= 400 {
                assert!(
                    reply.content_type.starts_with("application/problem+json"),
                    "{path} {shown}: {status} as {}",
                    reply.content_type
                );
                assert!(!reply.code().is_empty(), "{path}: a stable code");
                assert_eq!(
                    app.event_count().await,
                    before,
                    "{path} {shown}: refused, yet appended"
                );
            }
            statuses.push((status, reply.code().to_string()));
        }
        assert_eq!(
            statuses[0],
            statuses[1],
            "{path} {}: SQLite and PostgreSQL disagree",
            String::from_utf8_lossy(&body)
                .chars()
                .take(300)
                .collect::<String>()
        );
        statuses[0].0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn command_json_is_2xx_or_a_4xx_problem_and_the_backends_agree() {
    let Some(apps) = Backends::start().await else {
        return;
    };
    let staff = apps.sqlite.register("Q001", "総務課", 3).await;
    assert_eq!(apps.postgres.register("Q001", "総務課", 3).await, staff);
    let paths = [
        "/staff".to_string(),
        "/sessions".to_string(),
        "/plan-items".to_string(),
        format!("/staff/{staff}/transfers"),
        format!("/staff/{staff}/grade-changes"),
        format!("/staff/{staff}/interviews"),
        format!("/staff/{staff}/evaluations"),
        format!("/staff/{staff}/separations"),
    ];
    let mut tried = Vec::new();
    for path in &paths {
        let mut accepted = 0;
        let bodies = sample(json_value(), CASES);
        for body in &bodies {
            let bytes = serde_json::to_vec(body).expect("json");
            if apps.post(path, "application/json", bytes).await < 300 {
                accepted += 1;
            }
        }
        tried.push(format!(
            "{path}: {} cases, {accepted} accepted",
            bodies.len()
        ));
    }
    // Registrations one or two fields away from valid, and bytes that are not JSON at all.
    let mut accepted = 0;
    for body in sample(near_registration(), CASES) {
        if apps
            .post(
                "/staff",
                "application/json",
                serde_json::to_vec(&body).expect("json"),
            )
            .await
            < 300
        {
            accepted += 1;
        }
    }
    tried.push(format!(
        "/staff near-valid: {CASES} cases, {accepted} accepted"
    ));
    for bytes in sample(prop::collection::vec(any::<u8>(), 0..64), CASES / 3) {
        apps.post("/staff", "application/json", bytes).await;
    }
    tried.push(format!("/staff raw bytes: {} cases", CASES / 3));
    eprintln!("{}", tried.join("\n"));
}

/// One row of an attendance sheet, good or bad in one of the ways people make them bad.
fn row() -> impl Strategy<Value = String> {
    let employee = prop_oneof![
        16 => prop::sample::select(&["S001", "S002", "S003"][..]).prop_map(str::to_string),
        1 => Just("S999".to_string()),
        1 => Just(String::new()),
        1 => "[ -~]{0,8}",
    ];
    let course = prop_oneof![
        20 => Just("K-1".to_string()),
        1 => Just("K-9".to_string()),
        1 => text(),
    ];
    let date = prop_oneof![
        16 => Just("2023-06-01".to_string()),
        1 => Just("2023/6/1".to_string()),
        1 => Just("2023-02-30".to_string()),
        1 => text(),
    ];
    let completed = prop_oneof![
        16 => Just("2023-06-02".to_string()),
        1 => Just("2023-05-01".to_string()),
        1 => Just("2024-06-02".to_string()),
        1 => text(),
    ];
    let understanding = prop_oneof![
        16 => (1u8..=5).prop_map(|n| n.to_string()),
        1 => Just(String::new()),
        1 => prop::sample::select(&["0", "6", "abc", "3.5", "-1"][..]).prop_map(str::to_string),
    ];
    (employee, course, date, completed, understanding)
        .prop_map(|(e, c, d, done, u)| format!("{e},{c},{d},{done},{u}"))
}

fn sheet() -> impl Strategy<Value = (Vec<String>, &'static str)> {
    (
        prop::collection::vec(row(), 0..4),
        prop::sample::select(&["\r\n", "\n", "\r"][..]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attendance_sheets_are_imported_whole_or_refused_by_line_and_the_backends_agree() {
    let Some(apps) = Backends::start().await else {
        return;
    };
    for app in [&apps.sqlite, &apps.postgres] {
        let mut body = support::session_body(100);
        body["course_code"] = json!("K-1");
        body["starts_on"] = json!("2023-06-01");
        body["ends_on"] = json!("2023-06-02");
        let created = app.post(&app.hr, "/sessions", &body).await;
        assert_eq!(created.status, 201, "{:?}", created.body);
        for no in ["S001", "S002", "S003"] {
            app.register(no, "総務課", 2).await;
        }
    }
    let (mut imported, mut refused) = (0, 0);
    for (rows, ending) in sample(sheet(), SHEETS) {
        let mut csv =
            String::from("employee_no,course_code,session_starts_on,completed_on,understanding");
        for row in &rows {
            csv.push_str(ending);
            csv.push_str(row);
        }
        csv.push_str(ending);
        let status = apps
            .post(
                "/imports/attendance",
                "text/csv; charset=utf-8",
                csv.clone().into_bytes(),
            )
            .await;
        if status < 300 {
            imported += 1;
        } else {
            refused += 1;
        }
        // A refusal names lines that exist in the file.
        if status == 400 {
            let reply = apps
                .sqlite
                .post_raw(
                    &apps.sqlite.hr,
                    "/imports/attendance",
                    "text/csv; charset=utf-8",
                    csv.clone().into_bytes(),
                )
                .await;
            // The header and the rows; a sheet without rows is refused at the line after it.
            let lines = rows.len() as i64 + 2;
            if let Some(errors) = reply.body["errors"].as_array() {
                for error in errors {
                    let line = error["line"].as_i64().unwrap_or(0);
                    assert!(
                        (1..=lines).contains(&line),
                        "line {line} of {lines}: {csv:?}"
                    );
                }
            }
        }
    }
    eprintln!("{SHEETS} generated sheets: {imported} imported whole, {refused} refused");
    assert!(
        imported > 0 && refused > 0,
        "the generator reaches both outcomes"
    );
}
