//! `kiroku bench`: Kiroku measured beside the raw framework in one run, on the same machine,
//! backend and command.
//!
//! The command is the one the scale issue measured: recording a compliance incident (one
//! event on a new aggregate). The raw figure is cqrs-es' `CqrsFramework::execute` over
//! sqlite-es / postgres-es on the framework's own tables, in process; Kiroku's is the same
//! domain command sent over HTTP to a running server (authentication, policy, hash chain,
//! idempotency table, projection), on a fresh ledger of its own. Both run with 1 and with 8
//! concurrent clients (tasks for the raw framework). Nothing here asserts a time: the smoke
//! test only checks that every figure is produced.
//!
//! Then the rebuild: a fresh projector folds Kiroku's whole log (both append runs) into every
//! read model, beside `QueryReplay::replay_all` of the raw store into a counting query.
//! Its peak memory is measured apart, by `kiroku rebuild` alone in a process of its own.
//!
//! Then, with no raw counterpart, the reads of a plan item whose indicator counts those
//! incidents (sheet, as-of sheet, a page of the audit trail of the cell they all move: p50 and
//! p95 over one client), and start-up to serving on the ledger left behind; and the disk each
//! side takes per event.
//!
//! Then 8 clients enrolling different staff members in one training session (every command
//! on the same aggregate), after registering them with 8 clients; then attendance sheets of
//! those staff members imported one after another (completions/s of the first and the last).
//!
//! With `--staff N --years Y`, Kiroku's ledger is first grown to a city of that size
//! ([`generator`]) through the same API, and everything above is measured on it.

pub mod generator;

use crate::app::Application;
use crate::storage::tokens::{self, Role};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kiroku_domain::incident::{ComplianceIncident, IncidentCommand};
use kiroku_domain::values::Text;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// Commands per measurement.
    pub commands: usize,
    /// A PostgreSQL server URL whose user may create databases; SQLite only without one.
    pub postgres: Option<String>,
    /// The city Kiroku's ledger is grown to before the measurements, if any.
    pub scale: Option<generator::Scale>,
    /// The `kiroku` binary that rebuilds the ledger alone, for the rebuild's peak memory.
    pub program: std::path::PathBuf,
}

/// One measured series: throughput and latency percentiles.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub commands: usize,
    pub errors: usize,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

/// Kiroku's figure beside the raw framework's from the same run, when the raw framework has
/// one (it has no sheets, audit trails or start-up of its own).
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub backend: &'static str,
    pub name: String,
    /// What `per_second` counts: `cmds/s`, `events/s`, `reads/s`, `ms`, `MB` or `bytes/event`.
    pub unit: &'static str,
    pub kiroku: Series,
    pub raw: Option<Series>,
}

impl Figure {
    /// Kiroku's figure as a share of the raw framework's (for disk use: how many times the
    /// raw framework's bytes Kiroku needs per event).
    pub fn ratio(&self) -> Option<f64> {
        let raw = self.raw.as_ref()?;
        (raw.per_second > 0.0).then(|| self.kiroku.per_second / raw.per_second)
    }

    fn errors(&self) -> usize {
        self.kiroku.errors + self.raw.as_ref().map_or(0, |r| r.errors)
    }
}

/// A single value (a start-up time, a size) as a series without latencies.
fn value(value: f64, ok: bool) -> Series {
    Series {
        commands: 1,
        errors: usize::from(!ok),
        per_second: value,
        p50_ms: 0.0,
        p95_ms: 0.0,
        p99_ms: 0.0,
        p999_ms: 0.0,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("データベース: {0}")]
    Database(#[from] sqlx::Error),
    #[error("台帳: {0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error("サーバーを起動できません: {0}")]
    Start(String),
    #[error("一時ディレクトリ: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs every measurement on SQLite, then on PostgreSQL when a server is given.
pub async fn run(options: &Options) -> Result<Vec<Figure>, BenchError> {
    let mut figures = Vec::new();
    let dir = tempfile::tempdir()?;
    // `KIROKU_BENCH_KEEP=<dir>`: the SQLite ledgers are left there, to profile a rebuild or
    // an import on them afterwards (`perf record kiroku rebuild`).
    let kept = std::env::var_os("KIROKU_BENCH_KEEP").map(std::path::PathBuf::from);
    let dir_path = kept.clone().unwrap_or_else(|| dir.path().to_path_buf());
    std::fs::create_dir_all(&dir_path)?;
    let dir_path = dir_path.as_path();
    let raw_sqlite = sqlite_framework(&dir_path.join("raw.db")).await?;
    let kiroku_sqlite = format!("sqlite://{}", dir_path.join("kiroku.db").display());
    figures.extend(measure("SQLite", options, &raw_sqlite, &kiroku_sqlite).await?);
    if let Some(admin) = &options.postgres {
        let raw_url = fresh_database(admin).await?;
        let kiroku_url = fresh_database(admin).await?;
        let raw = postgres_framework(&raw_url).await?;
        let measured = measure("PostgreSQL", options, &raw, &kiroku_url).await;
        for url in [&raw_url, &kiroku_url] {
            drop_database(admin, url).await;
        }
        figures.extend(measured?);
    }
    Ok(figures)
}

/// The figures as a table, with the ratio to the raw framework.
pub fn render(figures: &[Figure]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<11} {:<24} {:>11} {:>11} {:<12} {:>6}  {:>28}  {:>28}  {:>6}",
        "backend",
        "figure",
        "kiroku",
        "raw",
        "unit",
        "ratio",
        "kiroku p50/p95/p99/p99.9 ms",
        "raw p50/p95/p99/p99.9 ms",
        "errors"
    );
    for f in figures {
        let raw = f
            .raw
            .as_ref()
            .map_or("-".to_string(), |r| format!("{:.0}", r.per_second));
        let ratio = f.ratio().map_or("-".to_string(), |r| format!("{r:.2}"));
        let _ = writeln!(
            out,
            "{:<11} {:<24} {:>11.0} {:>11} {:<12} {:>6}  {:>28}  {:>28}  {:>6}",
            f.backend,
            f.name,
            f.kiroku.per_second,
            raw,
            f.unit,
            ratio,
            latencies(Some(&f.kiroku)),
            latencies(f.raw.as_ref()),
            f.errors(),
        );
    }
    out
}

fn latencies(series: Option<&Series>) -> String {
    match series {
        Some(s) if s.p999_ms > 0.0 => format!(
            "{:.2}/{:.2}/{:.2}/{:.2}",
            s.p50_ms, s.p95_ms, s.p99_ms, s.p999_ms
        ),
        _ => "-".into(),
    }
}

enum RawFramework {
    Sqlite(
        sqlite_es::SqliteCqrs<ComplianceIncident>,
        sqlx::Pool<sqlx::Sqlite>,
    ),
    Postgres(
        postgres_es::PostgresCqrs<ComplianceIncident>,
        sqlx::Pool<sqlx::Postgres>,
    ),
}

/// The raw replay's query: counts what it is given, as BASELINE.md's in-memory counter.
struct Counter(Arc<AtomicUsize>);

#[async_trait::async_trait]
impl cqrs_es::Query<ComplianceIncident> for Counter {
    async fn dispatch(
        &self,
        _aggregate_id: &str,
        events: &[cqrs_es::EventEnvelope<ComplianceIncident>],
    ) {
        self.0.fetch_add(events.len(), Ordering::Relaxed);
    }
}

impl RawFramework {
    /// `QueryReplay::replay_all` of the whole store into [`Counter`]: events and seconds.
    async fn replay(&self) -> (usize, Duration, bool) {
        use cqrs_es::persist::QueryReplay;
        let seen = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let ok = match self {
            RawFramework::Sqlite(_, pool) => QueryReplay::new(
                sqlite_es::SqliteEventRepository::new(pool.clone()),
                Counter(seen.clone()),
            )
            .replay_all()
            .await
            .is_ok(),
            RawFramework::Postgres(_, pool) => QueryReplay::new(
                postgres_es::PostgresEventRepository::new(pool.clone()),
                Counter(seen.clone()),
            )
            .replay_all()
            .await
            .is_ok(),
        };
        (seen.load(Ordering::Relaxed), started.elapsed(), ok)
    }

    async fn record(&self, id: &str, command: IncidentCommand) -> bool {
        let metadata = HashMap::new();
        match self {
            RawFramework::Sqlite(cqrs, _) => cqrs
                .execute_with_metadata(id, command, metadata)
                .await
                .is_ok(),
            RawFramework::Postgres(cqrs, _) => cqrs
                .execute_with_metadata(id, command, metadata)
                .await
                .is_ok(),
        }
    }
}

/// The framework's own tables, as its crates ship them.
const SQLITE_TABLES: &str = "
CREATE TABLE events (aggregate_type text NOT NULL, aggregate_id text NOT NULL,
  sequence integer CHECK (sequence >= 0) NOT NULL, event_type text NOT NULL,
  event_version text NOT NULL, payload text NOT NULL, metadata text NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id, sequence)) STRICT;
CREATE TABLE snapshots (aggregate_type text NOT NULL, aggregate_id text NOT NULL,
  last_sequence integer CHECK (last_sequence >= 0) NOT NULL,
  current_snapshot integer CHECK (current_snapshot >= 0) NOT NULL, payload text NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)) STRICT;";

const POSTGRES_TABLES: &str = "
CREATE TABLE events (aggregate_type text NOT NULL, aggregate_id text NOT NULL,
  sequence bigint CHECK (sequence >= 0) NOT NULL, event_type text NOT NULL,
  event_version text NOT NULL, payload json NOT NULL, metadata json NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id, sequence));
CREATE TABLE snapshots (aggregate_type text NOT NULL, aggregate_id text NOT NULL,
  last_sequence bigint CHECK (last_sequence >= 0) NOT NULL,
  current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL, payload json NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id, last_sequence));";

/// The raw framework on SQLite with `default_sqlite_pool`'s settings (WAL, synchronous
/// NORMAL, 10 connections), as BASELINE.md measured it.
async fn sqlite_framework(path: &std::path::Path) -> Result<RawFramework, BenchError> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(10)
        .connect_with(options)
        .await?;
    sqlx::raw_sql(SQLITE_TABLES).execute(&pool).await?;
    let cqrs = sqlite_es::sqlite_cqrs(pool.clone(), vec![], ());
    Ok(RawFramework::Sqlite(cqrs, pool))
}

/// The raw framework on PostgreSQL with `default_postgress_pool`'s settings.
async fn postgres_framework(url: &str) -> Result<RawFramework, BenchError> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .connect(url)
        .await?;
    sqlx::raw_sql(POSTGRES_TABLES).execute(&pool).await?;
    let cqrs = postgres_es::postgres_cqrs(pool.clone(), vec![], ());
    Ok(RawFramework::Postgres(cqrs, pool))
}

async fn fresh_database(admin: &str) -> Result<String, BenchError> {
    let name = format!("kiroku_bench_{}", Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(admin).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await?;
    pool.close().await;
    let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
    Ok(format!("{base}/{name}"))
}

async fn drop_database(admin: &str, url: &str) {
    let Some((_, name)) = url.rsplit_once('/') else {
        return;
    };
    if let Ok(pool) = sqlx::PgPool::connect(admin).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&pool)
            .await;
        pool.close().await;
    }
}

fn incident(n: usize) -> Option<(Uuid, IncidentCommand)> {
    let id = Uuid::new_v4();
    let command = IncidentCommand::Record {
        incident_id: id,
        occurred_on: chrono::NaiveDate::from_ymd_opt(2024, 7, 1)?,
        department: Text::parse(&format!("部署{}", n % 40)).ok()?,
        summary: Text::parse(&format!("ベンチマークの記録 {n}")).ok()?,
    };
    Some((id, command))
}

/// Bytes the database takes (SQLite: its pages, WAL included; PostgreSQL: every table of the
/// schema with its indexes and TOAST, without the empty database's catalogue).
async fn database_bytes(backend: &crate::storage::Backend) -> Option<f64> {
    use crate::storage::Backend;
    let bytes: Result<i64, sqlx::Error> = match backend {
        Backend::Sqlite(pool) => {
            sqlx::query_scalar(
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            )
            .fetch_one(pool)
            .await
        }
        Backend::Postgres(pool) => {
            sqlx::query_scalar(
                "SELECT COALESCE(SUM(pg_total_relation_size(oid)), 0)::bigint FROM pg_class \
                 WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace",
            )
            .fetch_one(pool)
            .await
        }
    };
    bytes.ok().map(|b| b as f64)
}

impl RawFramework {
    fn backend(&self) -> crate::storage::Backend {
        match self {
            RawFramework::Sqlite(_, pool) => crate::storage::Backend::Sqlite(pool.clone()),
            RawFramework::Postgres(_, pool) => crate::storage::Backend::Postgres(pool.clone()),
        }
    }
}

fn any_address() -> Result<std::net::SocketAddr, BenchError> {
    "127.0.0.1:0"
        .parse()
        .map_err(|_| BenchError::Start("127.0.0.1:0".into()))
}

/// Appends (raw and Kiroku, 1 and 8 clients), reads, rebuild, start-up and disk, on one
/// backend.
async fn measure(
    backend: &'static str,
    options: &Options,
    raw: &RawFramework,
    kiroku_url: &str,
) -> Result<Vec<Figure>, BenchError> {
    let commands = options.commands;
    let app = Application::build(kiroku_url, any_address()?)
        .await
        .map_err(|e| BenchError::Start(e.to_string()))?;
    let port = app.port();
    let ledger = app.ledger();
    let token = tokens::create(&app.ledger().backend, Role::HrAdmin, "ベンチマーク", None).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let http = Http::new(&token);
    let mut figures = Vec::new();
    // The plan item the reads draw, defined first so that the as-of sheet finds it.
    let defined = http
        .send(
            hyper::Method::POST,
            &format!("{base}/plan-items"),
            Some(read_plan_item()),
        )
        .await;
    if let Some(scale) = options.scale {
        figures.extend(grow(backend, &http, &base, scale, &ledger).await);
    }
    let mut midway = crate::storage::now_ms();
    for clients in [1usize, 8] {
        let raw_series = run_raw(raw, commands, clients).await;
        let (kiroku_series, _) = run_http(&http, commands, clients, incident_request(&base)).await;
        if clients == 1 {
            midway = crate::storage::now_ms();
        }
        figures.push(Figure {
            backend,
            name: format!(
                "append, {clients} client{}",
                if clients > 1 { "s" } else { "" }
            ),
            unit: "cmds/s",
            kiroku: kiroku_series,
            raw: Some(raw_series),
        });
    }
    // How many of the appends were decided before their token was read again (PostgreSQL),
    // as this process's metrics count them since it started.
    if let Some(metrics) = crate::metrics::handle() {
        for line in metrics
            .render()
            .lines()
            .filter(|line| line.starts_with("kiroku_commands_unconfirmed_total"))
        {
            tracing::info!(backend, line, "bench: commands decided unconfirmed so far");
        }
    }
    figures.extend(measure_reads(backend, &http, &base, defined, midway, commands).await);
    // A session holds hundreds of people, an e-learning course a few thousand: the one-session
    // figure enrols at most 2,000.
    figures.extend(measure_one_session(backend, &http, &base, commands.min(2000)).await);
    let _ = stop.send(());
    let _ = server.await;

    // Rebuild: every projection folded from the whole log by a fresh projector, beside the
    // raw framework replaying its whole store into a counter.
    let (raw_events, raw_time, raw_ok) = raw.replay().await;
    let projector = crate::projector::Projector::new(ledger.backend.clone());
    let started = Instant::now();
    let rebuilt = projector.catch_up().await;
    let kiroku_time = started.elapsed();
    let kiroku_events = match rebuilt {
        Ok(position) => usize::try_from(position).unwrap_or(0),
        Err(_) => 0,
    };
    let throughput = |events: usize, took: Duration, ok: bool| Series {
        commands: events,
        ..value(events as f64 / took.as_secs_f64().max(1e-9), ok)
    };
    figures.push(Figure {
        backend,
        name: "rebuild, events".into(),
        unit: "events/s",
        kiroku: throughput(kiroku_events, kiroku_time, kiroku_events > 0),
        raw: Some(throughput(raw_events, raw_time, raw_ok && raw_events > 0)),
    });
    drop(projector);

    // Start-up: a new server on the ledger the first one left (its checkpoint written at
    // shutdown), until it can serve.
    let started = Instant::now();
    let restarted = Application::build(kiroku_url, any_address()?).await;
    let start_ms = started.elapsed().as_secs_f64() * 1000.0;
    figures.push(Figure {
        backend,
        name: "start-up to serving".into(),
        unit: "ms",
        kiroku: value(start_ms, restarted.is_ok()),
        raw: None,
    });
    drop(restarted);

    // Disk: the whole database over the events it holds.
    let per_event = |bytes: Option<f64>, events: usize| {
        value(
            bytes.unwrap_or(0.0) / events.max(1) as f64,
            bytes.is_some() && events > 0,
        )
    };
    figures.push(Figure {
        backend,
        name: "disk per event".into(),
        unit: "bytes/event",
        kiroku: per_event(database_bytes(&ledger.backend).await, kiroku_events),
        raw: Some(per_event(database_bytes(&raw.backend()).await, raw_events)),
    });

    // One sheet printed by the CLI, which starts from the checkpoint the restarted server
    // wrote: its peak memory is what a start holds (the histories stay encoded until asked).
    let sheet_mb = sheet_alone(&options.program, kiroku_url).await;
    figures.push(Figure {
        backend,
        name: "CLI sheet, peak memory".into(),
        unit: "MB",
        kiroku: value(sheet_mb.unwrap_or(0.0), sheet_mb.is_some()),
        raw: None,
    });

    // The rebuild's memory: `kiroku rebuild` on the same ledger, alone in a process of its
    // own, which reports its peak resident set (after the disk is measured: it rewrites
    // every checkpoint).
    let peak_mb = rebuild_alone(&options.program, kiroku_url).await;
    figures.push(Figure {
        backend,
        name: "rebuild alone, peak memory".into(),
        unit: "MB",
        kiroku: value(peak_mb.unwrap_or(0.0), peak_mb.is_some()),
        raw: None,
    });
    Ok(figures)
}

/// Runs `kiroku rebuild` on `database_url` in a process of its own and returns the peak
/// memory it reports, in MB; `None` if it failed or did not say.
async fn rebuild_alone(program: &std::path::Path, database_url: &str) -> Option<f64> {
    let mut command = tokio::process::Command::new(program);
    command.args(["--database", database_url, "rebuild"]);
    let said = run_alone(command, "kiroku rebuild").await?;
    figure_after(&String::from_utf8_lossy(&said.stdout), "peak memory ")
}

/// Runs `kiroku report sheet` for the benchmark's plan item on `database_url` in a process of
/// its own and returns the peak memory it logs, in MB; `None` if it failed or did not say.
async fn sheet_alone(program: &std::path::Path, database_url: &str) -> Option<f64> {
    let mut command = tokio::process::Command::new(program);
    command
        .args([
            "--database",
            database_url,
            "report",
            "sheet",
            "--item",
            "B-1",
        ])
        .args(["--format", "json", "-o", "/dev/null"])
        .env("RUST_LOG", "warn,kiroku::memory=debug")
        .env("NO_COLOR", "1");
    let said = run_alone(command, "kiroku report sheet").await?;
    figure_after(&String::from_utf8_lossy(&said.stderr), "peak_mb=")
}

/// Runs `command` to its end; `None` (and a warning naming `what`) if it failed.
async fn run_alone(
    mut command: tokio::process::Command,
    what: &str,
) -> Option<std::process::Output> {
    let output = command.output().await.ok()?;
    if !output.status.success() {
        tracing::warn!(
            stderr = %String::from_utf8_lossy(&output.stderr),
            "{what} failed"
        );
        return None;
    }
    Some(output)
}

/// The number that follows `marker` in `said`.
fn figure_after(said: &str, marker: &str) -> Option<f64> {
    let after = said.split(marker).nth(1)?;
    after.split_whitespace().next()?.parse().ok()
}

/// The plan item the read figures draw: one indicator counting the incidents appended.
/// Grows Kiroku's ledger to `scale` ([`generator::grow`]): its figures and the events it
/// then holds.
async fn grow(
    backend: &'static str,
    http: &Http,
    base: &str,
    scale: generator::Scale,
    ledger: &crate::ledger::Ledger,
) -> Vec<Figure> {
    let started = Instant::now();
    let grown = generator::grow(http, base, scale).await;
    let took = started.elapsed();
    let events = crate::storage::log::count(&ledger.backend).await;
    let size = events
        .as_ref()
        .map_or(0, |&n| usize::try_from(n).unwrap_or(0));
    let named = |name: String, unit: &'static str, kiroku: Series| Figure {
        backend,
        name,
        unit,
        kiroku,
        raw: None,
    };
    vec![
        named(
            format!("city: register {} staff", scale.staff),
            "cmds/s",
            grown.registered,
        ),
        named("city: schedule sessions".into(), "cmds/s", grown.scheduled),
        named(
            format!("city: import, year 1 of {}", scale.years),
            "completions/s",
            grown.first_year,
        ),
        named(
            format!("city: import, year {}", scale.years),
            "completions/s",
            grown.last_year,
        ),
        named(
            "city: events/s while grown".into(),
            "events/s",
            Series {
                commands: size,
                per_second: size as f64 / took.as_secs_f64().max(1e-9),
                ..value(0.0, events.is_ok())
            },
        ),
        named(
            format!("city: ledger, {} completions", grown.completions),
            "events",
            Series {
                commands: size,
                ..value(size as f64, events.is_ok())
            },
        ),
    ]
}

fn read_plan_item() -> String {
    serde_json::json!({
        "code": "B-1",
        "title": "ベンチマークの計画項目",
        "pillar": "ベンチマーク",
        "lead_department": "人事課",
        "status": "new",
        "from_fiscal_year": 2023,
        "to_fiscal_year": 2025,
        "indicators": [{
            "indicator_code": "incidents",
            "name": "不適切な事務処理の件数",
            "kind": "outcome",
            "unit": "count",
            "source": {"rule": "compliance_incidents"},
            "targets": {"2024": {"op": "<=", "value": 0}}
        }, {
            "indicator_code": "attendances",
            "name": "延べ受講者数",
            "kind": "activity",
            "unit": "people",
            "source": {"rule": "training_completions"},
            "targets": {"2024": {"op": ">=", "value": 2300}}
        }]
    })
    .to_string()
}

/// Sheet, as-of sheet (at `midway`, between the two append runs) and the first page of the
/// audit trail of the cell all the incidents move, of the plan item [`read_plan_item`]
/// (`defined`: whether it was): one client, one request at a time.
async fn measure_reads(
    backend: &'static str,
    http: &Http,
    base: &str,
    defined: bool,
    midway: i64,
    commands: usize,
) -> Vec<Figure> {
    let as_of = kiroku_projections::rfc3339_ms(midway).replace('+', "%2B");
    let reads = [
        ("sheet", format!("{base}/plan-items/B-1/sheet")),
        (
            "as-of sheet",
            format!("{base}/plan-items/B-1/sheet?as_of={as_of}"),
        ),
        (
            "audit trail page",
            format!("{base}/plan-items/B-1/audit?indicator=incidents&fiscal_year=2024"),
        ),
        (
            "audit page, completions",
            format!("{base}/plan-items/B-1/audit?indicator=attendances&fiscal_year=2024"),
        ),
    ];
    let rounds = commands.clamp(20, 500);
    let mut figures = Vec::new();
    for (name, url) in reads {
        let started = Instant::now();
        let mut latencies = Vec::with_capacity(rounds);
        let mut errors = usize::from(!defined);
        for _ in 0..rounds {
            let t = Instant::now();
            if !http.send(hyper::Method::GET, &url, None).await {
                errors += 1;
            }
            latencies.push(t.elapsed());
        }
        figures.push(Figure {
            backend,
            name: name.into(),
            unit: "reads/s",
            kiroku: series(vec![(latencies, errors)], started.elapsed()),
            raw: None,
        });
    }
    figures
}

/// A keep-alive HTTP/1.1 client with the benchmark's token.
#[derive(Clone)]
struct Http {
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    auth: String,
}

impl Http {
    fn new(token: &str) -> Self {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            auth: format!("Bearer {token}"),
        }
    }

    /// Sends one request and reads the whole answer: whether it was a success.
    async fn send(&self, method: hyper::Method, url: &str, body: Option<String>) -> bool {
        self.send_json(method, url, body).await.is_some()
    }

    /// Sends one request: the JSON answer of a success (`Null` when it is not JSON).
    async fn send_json(
        &self,
        method: hyper::Method,
        url: &str,
        body: Option<String>,
    ) -> Option<serde_json::Value> {
        self.send_typed(method, url, "application/json", body).await
    }

    /// Sends an attendance sheet (UTF-8 CSV) to `POST /imports/attendance`: whether it was
    /// imported.
    async fn import(&self, base: &str, csv: String) -> bool {
        self.send_typed(
            hyper::Method::POST,
            &format!("{base}/imports/attendance"),
            "text/csv; charset=utf-8",
            Some(csv),
        )
        .await
        .is_some()
    }

    /// [`send_json`](Self::send_json) with a body of another content type.
    async fn send_typed(
        &self,
        method: hyper::Method,
        url: &str,
        content_type: &str,
        body: Option<String>,
    ) -> Option<serde_json::Value> {
        let request = hyper::Request::builder()
            .method(method)
            .uri(url)
            .header("authorization", &self.auth)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body.unwrap_or_default())));
        let response = self.client.request(request.ok()?).await.ok()?;
        let status = response.status();
        let bytes = response.into_body().collect().await.ok()?.to_bytes();
        status
            .is_success()
            .then(|| serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }
}

async fn run_raw(raw: &RawFramework, commands: usize, clients: usize) -> Series {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let lanes = (0..clients).map(|_| async {
        let mut latencies = Vec::new();
        let mut errors = 0;
        while next.fetch_add(1, Ordering::Relaxed) < commands {
            let t = Instant::now();
            let recorded = match incident(latencies.len()) {
                Some((id, command)) => raw.record(&id.to_string(), command).await,
                None => false,
            };
            latencies.push(t.elapsed());
            if !recorded {
                errors += 1;
            }
        }
        (latencies, errors)
    });
    let results = futures::future::join_all(lanes).await;
    series(results, started.elapsed())
}

/// What a client sends for the `i`-th command: the URL and the JSON body.
type Request = Arc<dyn Fn(usize) -> (String, String) + Send + Sync>;

/// `commands` requests over `clients` concurrent keep-alive connections; with them, the answer
/// to each (`None` where it failed), by index.
async fn run_http(
    http: &Http,
    commands: usize,
    clients: usize,
    request: Request,
) -> (Series, Vec<Option<serde_json::Value>>) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut lanes = Vec::new();
    for _ in 0..clients {
        let (http, next, request) = (http.clone(), next.clone(), request.clone());
        lanes.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut answers = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= commands {
                    break;
                }
                let (url, body) = request(i);
                let t = Instant::now();
                let answer = http.send_json(hyper::Method::POST, &url, Some(body)).await;
                latencies.push(t.elapsed());
                if answer.is_none() {
                    errors += 1;
                }
                answers.push((i, answer));
            }
            (latencies, errors, answers)
        }));
    }
    let mut results = Vec::new();
    let mut answers = vec![None; commands];
    for lane in lanes {
        if let Ok((latencies, errors, lane_answers)) = lane.await {
            results.push((latencies, errors));
            for (i, answer) in lane_answers {
                answers[i] = answer;
            }
        }
    }
    (series(results, started.elapsed()), answers)
}

/// The incident the `i`-th append records.
fn incident_request(base: &str) -> Request {
    let url = format!("{base}/compliance-incidents");
    Arc::new(move |i| {
        let body = serde_json::json!({
            "occurred_on": "2024-07-01",
            "department": format!("部署{}", i % 40),
            "summary": format!("ベンチマークの記録 {i}"),
        });
        (url.clone(), body.to_string())
    })
}

/// The header row of an attendance sheet.
const ATTENDANCE_HEADER: &str =
    "employee_no,course_code,session_starts_on,completed_on,understanding\n";

/// The registration of staff member `i` (`{prefix}0000007`, named `{name}7`), hired on
/// `hired_on`, in one of six grades and forty departments.
fn registration(
    base: &str,
    prefix: &'static str,
    name: &'static str,
    hired_on: &'static str,
) -> Request {
    let url = format!("{base}/staff");
    Arc::new(move |i| {
        let body = serde_json::json!({
            "employee_no": format!("{prefix}{i:07}"),
            "name": format!("{name}{i}"),
            "gender": if i % 2 == 0 { "female" } else { "male" },
            "hired_on": hired_on,
            "grade": 1 + i % 6,
            "job_type": "administrative",
            "employment": "regular",
            "department": format!("部署{}", i % 40),
            "department_kind": "administration",
        });
        (url.clone(), body.to_string())
    })
}

/// 8 clients enrolling different staff members in one training session: every command goes
/// to the same aggregate. First `commands` staff members are registered (8 clients), then
/// a session with room for all of them is scheduled.
async fn measure_one_session(
    backend: &'static str,
    http: &Http,
    base: &str,
    commands: usize,
) -> Vec<Figure> {
    let register = registration(base, "B", "記録 太郎", "2015-04-01");
    let (registered, answers) = run_http(http, commands, 8, register).await;
    let staff: Vec<String> = answers
        .iter()
        .map(|a| {
            a.as_ref()
                .and_then(|a| a.get("id"))
                .and_then(|id| id.as_str())
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let session = serde_json::json!({
        "course_code": "B-100",
        "title": "ベンチマーク研修",
        "category": "tiered",
        "provider": "庁内",
        "delivery": "in_person",
        "starts_on": "2024-10-01",
        "ends_on": "2024-10-02",
        "capacity": commands,
    });
    let scheduled = http
        .send_json(
            hyper::Method::POST,
            &format!("{base}/sessions"),
            Some(session.to_string()),
        )
        .await;
    let session_id = scheduled
        .as_ref()
        .and_then(|a| a.get("id"))
        .and_then(|id| id.as_str())
        .unwrap_or_default()
        .to_string();
    let enrol_url = format!("{base}/sessions/{session_id}/enrolments");
    let enrol: Request = Arc::new(move |i| {
        let body = serde_json::json!({ "staff_id": staff[i] });
        (enrol_url.clone(), body.to_string())
    });
    let (mut enrolled, _) = run_http(http, commands, 8, enrol).await;
    enrolled.errors += usize::from(scheduled.is_none());
    let (first, last) = measure_import(http, base, commands).await;
    vec![
        Figure {
            backend,
            name: "register staff, 8 clients".into(),
            unit: "cmds/s",
            kiroku: registered,
            raw: None,
        },
        Figure {
            backend,
            name: "enrol, 8 on one session".into(),
            unit: "cmds/s",
            kiroku: enrolled,
            raw: None,
        },
        Figure {
            backend,
            name: "import, first sheet".into(),
            unit: "completions/s",
            kiroku: first,
            raw: None,
        },
        Figure {
            backend,
            name: "import, last sheet".into(),
            unit: "completions/s",
            kiroku: last,
            raw: None,
        },
    ]
}

/// How many attendance sheets the import figure sends, one training session each.
const SHEETS: usize = 5;

/// Attendance sheets of the `staff` registered staff members (`B0000000`…), one per session,
/// imported one after another through `POST /imports/attendance`: completions/s of the first
/// sheet and of the last.
async fn measure_import(http: &Http, base: &str, staff: usize) -> (Series, Series) {
    let mut per_sheet = Vec::new();
    for sheet in 0..SHEETS {
        let starts_on = format!("2024-06-{:02}", sheet + 1);
        let session = serde_json::json!({
            "course_code": "B-300",
            "title": "ベンチマーク取込研修",
            "category": "tiered",
            "provider": "庁内",
            "delivery": "in_person",
            "starts_on": starts_on,
            "ends_on": starts_on,
            "capacity": staff.max(1),
        });
        let scheduled = http
            .send_json(
                hyper::Method::POST,
                &format!("{base}/sessions"),
                Some(session.to_string()),
            )
            .await
            .is_some();
        let mut csv = String::from(ATTENDANCE_HEADER);
        for i in 0..staff {
            let _ = writeln!(csv, "B{i:07},B-300,{starts_on},{starts_on},{}", 1 + i % 5);
        }
        let started = Instant::now();
        let imported = http.import(base, csv).await;
        let took = started.elapsed();
        per_sheet.push(Series {
            commands: staff,
            errors: usize::from(!(scheduled && imported)),
            per_second: staff as f64 / took.as_secs_f64().max(1e-9),
            p50_ms: 0.0,
            p95_ms: 0.0,
            p99_ms: 0.0,
            p999_ms: 0.0,
        });
    }
    let first = per_sheet
        .first()
        .cloned()
        .unwrap_or_else(|| value(0.0, false));
    let last = per_sheet
        .last()
        .cloned()
        .unwrap_or_else(|| value(0.0, false));
    (first, last)
}

fn series(results: Vec<(Vec<Duration>, usize)>, elapsed: Duration) -> Series {
    let mut latencies: Vec<Duration> = Vec::new();
    let mut errors = 0;
    for (l, e) in results {
        latencies.extend(l);
        errors += e;
    }
    latencies.sort_unstable();
    let at = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    let commands = latencies.len();
    Series {
        commands,
        errors,
        per_second: commands as f64 / elapsed.as_secs_f64().max(1e-9),
        p50_ms: at(0.50),
        p95_ms: at(0.95),
        p99_ms: at(0.99),
        p999_ms: at(0.999),
    }
}
