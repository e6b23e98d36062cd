//! Black-box test support: spawn the real application on a random port against a fresh
//! database (a temporary SQLite file, or a new database on the throwaway PostgreSQL server
//! that `scripts/test.sh` starts), with typed request helpers.
//!
//! `both_backends!` turns one async test body into a SQLite test and a PostgreSQL test.
#![allow(dead_code)]

pub mod browser;
pub mod pages;
pub mod pg_server;

use kiroku::app::Application;
use kiroku::ledger::Ledger;
use kiroku::storage::log;
use kiroku::storage::tokens::{self, Role};
use kiroku::with_pool;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub ledger: Arc<Ledger>,
    pub database_url: String,
    pub db: Db,
    /// An `hr_admin` token.
    pub hr: String,
    /// An `auditor` token.
    pub auditor: String,
    /// Kept until the test ends (see [`TestApp::keep_alive`]).
    _dir: Arc<tempfile::TempDir>,
    _shutdown: Arc<tokio::sync::oneshot::Sender<()>>,
}

impl TestApp {
    /// What must outlive the test body: an `async move` body that uses only some fields of
    /// the app captures only those (Rust 2021), and would drop the temporary directory and
    /// stop the server while the test runs.
    pub fn keep_alive(&self) -> impl Drop {
        struct Guard(
            #[allow(dead_code)] Arc<tempfile::TempDir>,
            #[allow(dead_code)] Arc<tokio::sync::oneshot::Sender<()>>,
        );
        impl Drop for Guard {
            fn drop(&mut self) {}
        }
        Guard(self._dir.clone(), self._shutdown.clone())
    }
}

/// Runs a test body against both backends.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                if let Some(app) = $crate::support::spawn_app($crate::support::Db::Sqlite).await {
                    let _alive = app.keep_alive();
                    ($body)(app).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(app) = $crate::support::spawn_app($crate::support::Db::Postgres).await {
                    let _alive = app.keep_alive();
                    ($body)(app).await;
                }
            }
        }
    };
}

/// A fresh PostgreSQL database on the test server, or `None` when there is no server
/// (only allowed outside CI: `scripts/test.sh` always starts one).
pub async fn postgres_database() -> Option<String> {
    let Ok(admin) = std::env::var("KIROKU_TEST_POSTGRES_URL") else {
        if std::env::var("CI").is_ok() {
            panic!("KIROKU_TEST_POSTGRES_URL is not set: run the tests with scripts/test.sh");
        }
        eprintln!("skipping the PostgreSQL run: KIROKU_TEST_POSTGRES_URL is not set (use scripts/test.sh)");
        return None;
    };
    let name = format!("kiroku_test_{}", Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&admin)
        .await
        .expect("connect to the test server");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .expect("create a test database");
    pool.close().await;
    let (base, _) = admin.rsplit_once('/').expect("admin URL has a database");
    Some(format!("{base}/{name}"))
}

pub async fn spawn_app(db: Db) -> Option<TestApp> {
    if std::env::var("TEST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_test_writer()
            .try_init();
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = match db {
        Db::Sqlite => format!("sqlite://{}", dir.path().join("kiroku.db").display()),
        Db::Postgres => postgres_database().await?,
    };
    Some(spawn_app_at(db, database_url, dir).await)
}

/// The application on a database of the test's own choosing (e.g. its own PostgreSQL server).
pub async fn spawn_app_at(db: Db, database_url: String, dir: tempfile::TempDir) -> TestApp {
    spawn_app_limited(db, database_url, dir, kiroku::server::Limits::default()).await
}

/// The application with other connection and timeout limits.
pub async fn spawn_app_limited(
    db: Db,
    database_url: String,
    dir: tempfile::TempDir,
    limits: kiroku::server::Limits,
) -> TestApp {
    let app = Application::build(&database_url, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("build the application")
        .with_limits(limits);
    let port = app.port();
    let ledger = app.ledger();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let hr = tokens::create(&ledger.backend, Role::HrAdmin, "人事課 テスト", None)
        .await
        .expect("hr token");
    let auditor = tokens::create(&ledger.backend, Role::Auditor, "監査委員", None)
        .await
        .expect("auditor token");
    TestApp {
        base: format!("http://127.0.0.1:{port}/api/v1"),
        client: reqwest::Client::new(),
        ledger,
        database_url,
        db,
        hr,
        auditor,
        _dir: Arc::new(dir),
        _shutdown: Arc::new(tx),
    }
}

/// A second server on the same database, as a second process would be: its base URL.
/// It stops when the returned sender is dropped.
pub async fn second_server(database_url: &str) -> (String, tokio::sync::oneshot::Sender<()>) {
    let app = Application::build(database_url, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("build the second application");
    let port = app.port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    (format!("http://127.0.0.1:{port}/api/v1"), tx)
}

/// A response: status and JSON body (Null when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body.get("code").and_then(Value::as_str).unwrap_or("")
    }

    pub fn id(&self) -> Uuid {
        self.body
            .get("id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
            .unwrap_or_else(|| panic!("no id in {:?}", self.body))
    }

    /// Asserts a problem+json refusal with this status and code.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status.as_u16(), self.code()),
            (status, code),
            "unexpected reply {:?}",
            self.body
        );
        assert_eq!(self.content_type, "application/problem+json");
        for field in ["type", "title", "status", "detail", "code"] {
            assert!(self.body.get(field).is_some(), "problem lacks {field}");
        }
        // Every refusal explains itself in Japanese, title and detail.
        for field in ["title", "detail"] {
            let text = self.body[field].as_str().unwrap_or("");
            assert!(
                is_japanese(text),
                "the {field} of {code} is not Japanese: {text:?}"
            );
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn reply(response: reqwest::Response) -> Reply {
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = response.text().await.expect("body");
        Reply {
            status,
            content_type,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            retry_after,
        }
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value) -> Reply {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request");
        Self::reply(response).await
    }

    /// POST with a raw body and content type.
    pub async fn post_raw(
        &self,
        token: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        Self::reply(response).await
    }

    pub async fn post_with_key(&self, token: &str, path: &str, key: &str, body: &Value) -> Reply {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .expect("request");
        Self::reply(response).await
    }

    pub async fn post_anonymous(&self, path: &str, body: &Value) -> Reply {
        let response = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request");
        Self::reply(response).await
    }

    pub async fn get(&self, token: &str, path: &str) -> Reply {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        Self::reply(response).await
    }

    pub async fn get_anonymous(&self, path: &str) -> Reply {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        Self::reply(response).await
    }

    /// The number of events in the log.
    pub async fn event_count(&self) -> i64 {
        log::count(&self.ledger.backend).await.expect("count")
    }

    /// Runs a statement directly against the ledger's database.
    pub async fn sql(&self, statement: &str) -> Result<u64, sqlx::Error> {
        with_pool!(&self.ledger.backend, pool => {
            sqlx::raw_sql(statement).execute(pool).await.map(|r| r.rows_affected())
        })
    }

    /// The raw payloads of the event table, as text.
    pub async fn raw_payloads(&self) -> Vec<String> {
        let sql = match self.db {
            Db::Sqlite => "SELECT payload || ' ' || metadata FROM events ORDER BY position",
            Db::Postgres => {
                "SELECT payload::text || ' ' || metadata::text FROM events ORDER BY position"
            }
        };
        with_pool!(&self.ledger.backend, pool => {
            sqlx::query_scalar::<_, String>(sql).fetch_all(pool).await.expect("raw payloads")
        })
    }

    /// A token of `role` for the staff member with `employee_no`.
    pub async fn token(&self, role: Role, name: &str, staff_id: Option<Uuid>) -> String {
        tokens::create(&self.ledger.backend, role, name, staff_id)
            .await
            .expect("token")
    }

    /// Registers a staff member and returns their id.
    pub async fn register(&self, employee_no: &str, department: &str, grade: u8) -> Uuid {
        let reply = self
            .post(
                &self.hr,
                "/staff",
                &staff_body(employee_no, department, grade, "2015-04-01"),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "register: {:?}",
            reply.body
        );
        reply.id()
    }

    /// Schedules a session and returns its id.
    pub async fn schedule(&self, capacity: u32) -> Uuid {
        let reply = self
            .post(&self.hr, "/sessions", &session_body(capacity))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "schedule: {:?}",
            reply.body
        );
        reply.id()
    }
}

pub fn staff_body(employee_no: &str, department: &str, grade: u8, hired_on: &str) -> Value {
    json!({
        "employee_no": employee_no,
        "name": format!("髙橋 花子{employee_no}"),
        "name_kana": "タカハシ ハナコ",
        "gender": "female",
        "hired_on": hired_on,
        "grade": grade,
        "job_type": "administrative",
        "employment": "regular",
        "department": department,
        "department_kind": "administration",
    })
}

pub fn session_body(capacity: u32) -> Value {
    json!({
        "course_code": "K-101",
        "title": "新任主査研修",
        "category": "tiered",
        "provider": "庁内",
        "delivery": "in_person",
        "starts_on": "2023-05-10",
        "ends_on": "2023-05-11",
        "capacity": capacity,
    })
}

pub fn plan_item_body() -> Value {
    json!({
        "code": "2-1-2",
        "title": "研修内容の充実",
        "pillar": "組織を高める職員（ひと）づくりの推進",
        "parent_code": "2-1",
        "lead_department": "職員課",
        "status": "continued",
        "aim": "職員の能力向上を図るため研修内容を充実させる",
        "from_fiscal_year": 2021,
        "to_fiscal_year": 2025,
        "indicators": [
            {
                "indicator_code": "attendees",
                "name": "職員研修の年間延べ受講者数",
                "kind": "activity",
                "unit": "people",
                "source": {"rule": "training_completions"},
                "targets": {"2023": {"op": ">=", "value": 2300}}
            },
            {
                "indicator_code": "want_management",
                "name": "「管理職になりたいと思う」と回答する比率",
                "kind": "outcome",
                "unit": "percent",
                "source": "manual",
                "baseline": {"fiscal_year": 2021, "value": 15.6},
                "targets": {"2025": {"op": ">=", "value": 30}}
            }
        ]
    })
}

/// Whether `text` is written in Japanese (holds kana or kanji).
pub fn is_japanese(text: &str) -> bool {
    text.chars().any(|c| {
        matches!(c, '\u{3040}'..='\u{30ff}' | '\u{4e00}'..='\u{9fff}' | '\u{3000}'..='\u{303f}')
    })
}

/// One indicator × year cell of a sheet JSON (`Null` when absent).
pub fn sheet_cell<'a>(sheet: &'a Value, indicator: &str, year: i64) -> &'a Value {
    sheet["indicators"]
        .as_array()
        .and_then(|list| list.iter().find(|i| i["code"] == indicator))
        .and_then(|i| i["years"].as_array())
        .and_then(|years| years.iter().find(|y| y["fiscal_year"] == year))
        .unwrap_or(&Value::Null)
}
