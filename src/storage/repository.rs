//! The event repository behind every cqrs-es aggregate: postgres-es or sqlite-es for
//! reading (events, snapshots, streams), and the ledger's [`Appender`] for writing, so that
//! every commit carries its own hash-chain links and commands arriving together share one
//! transaction (`append.rs`).
//!
//! cqrs-es does not return what it persisted; the events of a command, as the log holds them,
//! are handed to its caller through [`with_receipt`].

use super::append::{Appender, Confirm, Failure, Part, Streamed};
use super::log::LogEvent;
use super::{direct, Backend, StorageError};
use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlite_es::SqliteEventRepository;
use sqlx::Row;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

pub enum Inner {
    Sqlite(SqliteEventRepository),
    Postgres(PostgresEventRepository),
}

pub struct LedgerRepository {
    inner: Inner,
    backend: Backend,
    /// A SQLite ledger's file: its aggregates are read on this thread ([`direct::read_now`]).
    file: Option<PathBuf>,
    appender: Appender,
}

tokio::task_local! {
    /// The events appended by the commands of the current [`with_receipt`] scope.
    static RECEIPT: RefCell<Vec<LogEvent>>;
}

tokio::task_local! {
    /// The commits held back by the current [`holding_back`] or [`streaming`] scope.
    static HELD: RefCell<Held>;
}

/// Where a scope's held-back commits go: kept for its caller ([`holding_back`]), or sent to
/// the appender as they are made ([`streaming`]).
enum Held {
    Kept(Vec<Part>),
    Sent(mpsc::UnboundedSender<Streamed>),
}

tokio::task_local! {
    /// What the commits of the current [`confirming`] scope ask of the database.
    static CONFIRMING: Confirm;
}

/// Runs `work`, a command decided unconfirmed, so that its commit is written only if
/// `confirm` holds ([`Appender::append_confirmed`]); otherwise it fails with
/// [`StorageError::Unconfirmed`]. Without `confirm`, `work` runs as it is.
pub async fn confirming<F: Future>(confirm: Option<Confirm>, work: F) -> F::Output {
    match confirm {
        Some(confirm) => CONFIRMING.scope(confirm, work).await,
        None => work.await,
    }
}

/// Runs `work` with every commit its commands make held back instead of written, and returns
/// them with its output: the caller writes them in one transaction
/// ([`Appender::append_all`]) or drops them, so that several commands commit together or
/// not at all. The aggregate store keeps nothing of a held command in memory
/// ([`is_holding_back`]).
pub async fn holding_back<F: Future>(work: F) -> (F::Output, Vec<Part>) {
    HELD.scope(RefCell::new(Held::Kept(Vec::new())), async move {
        let output = work.await;
        let held = HELD.with(|held| match &mut *held.borrow_mut() {
            Held::Kept(parts) => std::mem::take(parts),
            Held::Sent(_) => Vec::new(),
        });
        (output, held)
    })
    .await
}

/// [`holding_back`] for a unit whose commits are written while it runs: each is sent to
/// `parts` as it is made, for [`Ledger::commit_streamed`](crate::ledger::Ledger::commit_streamed)
/// to write in one transaction, and the unit's end is sent only if `work` succeeds. When it
/// fails, the stream closes without its end and nothing of the unit is written.
pub async fn streaming<T, E, F>(parts: mpsc::UnboundedSender<Streamed>, work: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
{
    let end = parts.clone();
    let output = HELD.scope(RefCell::new(Held::Sent(parts)), work).await;
    if output.is_ok() {
        // A closed stream means the commit has already failed: its caller hears why.
        let _ = end.send(Streamed::End);
    }
    output
}

/// Whether the current task's commits are being held back or streamed (a unit's, committed
/// together later).
pub fn is_holding_back() -> bool {
    HELD.try_with(|_| ()).is_ok()
}

/// Runs `work` and returns, with its output, every event its commands appended, as the log
/// holds them (positions, times and chain links included).
pub async fn with_receipt<F: Future>(work: F) -> (F::Output, Vec<LogEvent>) {
    RECEIPT
        .scope(RefCell::new(Vec::new()), async move {
            let output = work.await;
            let events = RECEIPT.with(|receipt| receipt.take());
            (output, events)
        })
        .await
}

/// The position of the last event appended in the current [`with_receipt`] scope.
pub fn last_received() -> Option<i64> {
    RECEIPT
        .try_with(|receipt| receipt.borrow().last().map(|e| e.position))
        .ok()
        .flatten()
}

impl LedgerRepository {
    pub fn new(backend: &Backend, appender: Appender) -> Self {
        let inner = match backend {
            Backend::Sqlite(pool) => Inner::Sqlite(SqliteEventRepository::new(pool.clone())),
            Backend::Postgres(pool) => Inner::Postgres(PostgresEventRepository::new(pool.clone())),
        };
        LedgerRepository {
            inner,
            backend: backend.clone(),
            file: backend.sqlite_file(),
            appender,
        }
    }

    /// Writes one command's serialized events and its snapshot, when due, or holds them
    /// back ([`holding_back`]); what cqrs-es' `persist` does, without copying the events.
    pub async fn persist_owned<A: Aggregate>(
        &self,
        events: Vec<SerializedEvent>,
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        let part = Part {
            aggregate_type: A::TYPE.to_string(),
            events,
            snapshot: snapshot_update,
        };
        let confirm = CONFIRMING.try_with(Confirm::clone).ok();
        if is_holding_back() {
            if confirm.is_some() {
                // A unit's commits are written by its caller, who confirms nothing.
                return Err(PersistenceError::UnknownError(Box::new(
                    StorageError::Unconfirmed,
                )));
            }
            HELD.with(|held| match &mut *held.borrow_mut() {
                Held::Kept(parts) => parts.push(part),
                // A closed stream: the unit's commit has already failed, and its caller hears
                // why from there; the rest of the unit is decided for nothing.
                Held::Sent(stream) => {
                    let _ = stream.send(Streamed::Part(part));
                }
            });
            return Ok(());
        }
        let appended = self.appender.append_confirmed(vec![part], confirm).await;
        match appended {
            Ok(appended) => {
                let _ = RECEIPT.try_with(|receipt| receipt.borrow_mut().extend(appended));
                Ok(())
            }
            Err(Failure::Conflict) => Err(PersistenceError::OptimisticLockError),
            Err(Failure::Unavailable(detail)) => Err(PersistenceError::ConnectionError(Box::new(
                StorageError::Unavailable(detail),
            ))),
            Err(Failure::Storage(detail)) => Err(PersistenceError::UnknownError(Box::new(
                StorageError::Append(detail),
            ))),
            Err(Failure::Unconfirmed) => Err(PersistenceError::UnknownError(Box::new(
                StorageError::Unconfirmed,
            ))),
        }
    }

    /// The span of the log this process's appender alone has written.
    pub fn own_span(&self) -> super::append::OwnSpan {
        self.appender.own_span()
    }
}

/// An aggregate's snapshot and every event after it, in one statement: the snapshot as row
/// 0, then the events (PostgreSQL).
const SELECT_LATEST_POSTGRES: &str = "WITH s AS (SELECT last_sequence, current_snapshot, payload \
     FROM snapshots WHERE aggregate_type = $1 AND aggregate_id = $2 \
     ORDER BY last_sequence LIMIT 1) \
     SELECT 0 AS part, last_sequence AS sequence, current_snapshot, '' AS event_type, \
     '' AS event_version, payload::text AS payload, '' AS metadata FROM s \
     UNION ALL \
     SELECT 1, e.sequence, 0, e.event_type, e.event_version, e.payload::text, e.metadata::text \
     FROM events e WHERE e.aggregate_type = $1 AND e.aggregate_id = $2 \
     AND e.sequence > COALESCE((SELECT last_sequence FROM s), 0) \
     ORDER BY part, sequence";

/// An aggregate's snapshot, if it has one, and the events after it.
pub type Latest = (Option<SerializedSnapshot>, Vec<SerializedEvent>);

impl LedgerRepository {
    /// Aggregate `aggregate_id`'s snapshot and the events after it: what loading it reads,
    /// in one round trip on PostgreSQL (cqrs-es asks for the two one after the other).
    pub async fn latest<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Latest, PersistenceError> {
        if let Some(path) = &self.file {
            let aggregate_type = A::TYPE;
            let aggregate_id = aggregate_id.to_string();
            return direct::read_now(path, move |connection| {
                sqlite_latest(connection, aggregate_type, &aggregate_id)
            })
            .await
            .map_err(persistence);
        }
        let Backend::Postgres(pool) = &self.backend else {
            // A SQLite database held only in memory: through sqlite-es, one read after the other.
            let snapshot = self.get_snapshot::<A>(aggregate_id).await?;
            let after = snapshot.as_ref().map_or(0, |s| s.current_sequence);
            let events = self.get_last_events::<A>(aggregate_id, after).await?;
            return Ok((snapshot, events));
        };
        let rows = sqlx::query(SELECT_LATEST_POSTGRES)
            .bind(A::TYPE)
            .bind(aggregate_id)
            .fetch_all(pool)
            .await
            .map_err(|e| persistence(StorageError::from(e)))?;
        let mut latest: Latest = (None, Vec::with_capacity(rows.len()));
        for row in &rows {
            read_latest_row::<A>(row, aggregate_id.to_string(), &mut latest)
                .map_err(persistence)?;
        }
        Ok(latest)
    }
}

/// One row of [`SELECT_LATEST_POSTGRES`] or [`SELECT_LATEST_MANY_POSTGRES`] (their first
/// seven columns) added to `latest`, aggregate `aggregate_id`'s: part 0 is its snapshot,
/// part 1 one of the events after it.
fn read_latest_row<A: Aggregate>(
    row: &sqlx::postgres::PgRow,
    aggregate_id: String,
    latest: &mut Latest,
) -> Result<(), StorageError> {
    let part: i32 = row.try_get(0)?;
    let sequence = count(row.try_get(1)?)?;
    let payload = json(&row.try_get::<String, _>(5)?)?;
    if part == 0 {
        latest.0 = Some(SerializedSnapshot {
            aggregate_id,
            aggregate: payload,
            current_sequence: sequence,
            current_snapshot: count(row.try_get(2)?)?,
        });
    } else {
        latest.1.push(SerializedEvent::new(
            aggregate_id,
            sequence,
            A::TYPE.to_string(),
            row.try_get(3)?,
            row.try_get(4)?,
            payload,
            json(&row.try_get::<String, _>(6)?)?,
        ));
    }
    Ok(())
}

/// [`SELECT_LATEST_POSTGRES`] for many aggregates of one type at once (`$2`, an array of
/// ids), each row naming its aggregate. Each id is looked up on its own through the
/// tables' keys (a `LATERAL` subquery with an `ORDER BY` is never flattened into a join):
/// as one join with `= ANY($2)`, the planner read every event of the type and filtered them
/// when its statistics lagged behind an import (0.1 s for a sheet of a 100,000-event log,
/// 0.5 s at 1M).
const SELECT_LATEST_MANY_POSTGRES: &str = "SELECT 0 AS part, s.last_sequence AS sequence, \
     s.current_snapshot, '' AS event_type, '' AS event_version, s.payload::text AS payload, \
     '' AS metadata, ids.id AS aggregate_id \
     FROM UNNEST($2::text[]) AS ids (id) \
     JOIN LATERAL (SELECT last_sequence, current_snapshot, payload FROM snapshots \
     WHERE aggregate_type = $1 AND aggregate_id = ids.id ORDER BY last_sequence LIMIT 1) s \
     ON true \
     UNION ALL \
     SELECT 1, e.sequence, 0, e.event_type, e.event_version, e.payload::text, \
     e.metadata::text, ids.id \
     FROM UNNEST($2::text[]) AS ids (id) \
     JOIN LATERAL (SELECT sequence, event_type, event_version, payload, metadata FROM events \
     WHERE aggregate_type = $1 AND aggregate_id = ids.id \
     AND sequence > COALESCE((SELECT last_sequence FROM snapshots \
     WHERE aggregate_type = $1 AND aggregate_id = ids.id ORDER BY last_sequence LIMIT 1), 0) \
     ORDER BY sequence) e ON true \
     ORDER BY 1, 8, 2";

impl LedgerRepository {
    /// [`latest`](Self::latest) of every aggregate in `aggregate_ids`, read together: one
    /// statement on PostgreSQL, one trip to a reading thread on SQLite. Every id asked for
    /// has an entry (no snapshot and no events for an aggregate that does not exist).
    pub async fn latest_many<A: Aggregate>(
        &self,
        aggregate_ids: &[String],
    ) -> Result<HashMap<String, Latest>, PersistenceError> {
        let mut found: HashMap<String, Latest> = HashMap::with_capacity(aggregate_ids.len());
        let mut ids = Vec::with_capacity(aggregate_ids.len());
        for id in aggregate_ids {
            if found.insert(id.clone(), (None, Vec::new())).is_none() {
                ids.push(id.clone());
            }
        }
        if let Some(path) = &self.file {
            let aggregate_type = A::TYPE;
            let read = direct::read_elsewhere(path.clone(), move |connection| {
                ids.into_iter()
                    .map(|id| {
                        let latest = sqlite_latest(connection, aggregate_type, &id)?;
                        Ok((id, latest))
                    })
                    .collect::<Result<Vec<_>, StorageError>>()
            })
            .await
            .map_err(persistence)?;
            found.extend(read);
            return Ok(found);
        }
        let Backend::Postgres(pool) = &self.backend else {
            for id in ids {
                let latest = self.latest::<A>(&id).await?;
                found.insert(id, latest);
            }
            return Ok(found);
        };
        let rows = sqlx::query(SELECT_LATEST_MANY_POSTGRES)
            .bind(A::TYPE)
            .bind(&ids)
            .fetch_all(pool)
            .await
            .map_err(|e| persistence(StorageError::from(e)))?;
        for row in &rows {
            let mut read = || -> Result<(), StorageError> {
                let aggregate_id: String = row.try_get(7)?;
                let latest = found.entry(aggregate_id.clone()).or_default();
                read_latest_row::<A>(row, aggregate_id, latest)
            };
            read().map_err(persistence)?;
        }
        Ok(found)
    }
}

/// Aggregate `(aggregate_type, aggregate_id)`'s snapshot and the events after it, read
/// directly from a SQLite file.
fn sqlite_latest(
    connection: &rusqlite::Connection,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Latest, StorageError> {
    let snapshot = sqlite_snapshot(connection, aggregate_type, aggregate_id)?;
    let after = snapshot.as_ref().map(|s| s.current_sequence);
    let events = sqlite_events(connection, aggregate_type, aggregate_id, after)?;
    Ok((snapshot, events))
}

/// What sqlite-es reads of an aggregate's events, in sequence order.
const SELECT_EVENTS: &str = "SELECT aggregate_type, aggregate_id, sequence, event_type, \
     event_version, payload, metadata FROM events \
     WHERE aggregate_type = ?1 AND aggregate_id = ?2 AND sequence > ?3 ORDER BY sequence";
/// What sqlite-es reads of an aggregate's snapshot.
const SELECT_SNAPSHOT: &str = "SELECT aggregate_id, last_sequence, current_snapshot, payload \
     FROM snapshots WHERE aggregate_type = ?1 AND aggregate_id = ?2 \
     ORDER BY last_sequence LIMIT 1";

fn json(text: &str) -> Result<Value, StorageError> {
    serde_json::from_str(text).map_err(|e| StorageError::Corrupt(format!("stored JSON: {e}")))
}

fn count(value: i64) -> Result<usize, StorageError> {
    usize::try_from(value).map_err(|_| StorageError::Corrupt(format!("sequence {value}")))
}

/// A read error as cqrs-es expects it: out of reach (a 503) or anything else.
fn persistence(error: StorageError) -> PersistenceError {
    match error {
        StorageError::Unavailable(_) => PersistenceError::ConnectionError(Box::new(error)),
        other => PersistenceError::UnknownError(Box::new(other)),
    }
}

/// The events of aggregate `(aggregate_type, aggregate_id)` after sequence `after` (all of
/// them for `None`), read directly from a SQLite file (the same rows and values as sqlite-es
/// reads).
fn sqlite_events(
    connection: &rusqlite::Connection,
    aggregate_type: &str,
    aggregate_id: &str,
    after: Option<usize>,
) -> Result<Vec<SerializedEvent>, StorageError> {
    let after = match after {
        Some(after) => {
            i64::try_from(after).map_err(|_| StorageError::Corrupt(format!("sequence {after}")))?
        }
        None => -1,
    };
    let mut statement = connection.prepare_cached(SELECT_EVENTS)?;
    let mut rows = statement.query(rusqlite::params![aggregate_type, aggregate_id, after])?;
    let mut events = Vec::new();
    while let Some(row) = rows.next()? {
        let payload: String = row.get(5)?;
        let metadata: String = row.get(6)?;
        events.push(SerializedEvent::new(
            row.get(1)?,
            count(row.get(2)?)?,
            row.get(0)?,
            row.get(3)?,
            row.get(4)?,
            json(&payload)?,
            json(&metadata)?,
        ));
    }
    Ok(events)
}

/// The snapshot of aggregate `(aggregate_type, aggregate_id)`, read directly from a SQLite
/// file.
fn sqlite_snapshot(
    connection: &rusqlite::Connection,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Option<SerializedSnapshot>, StorageError> {
    let mut statement = connection.prepare_cached(SELECT_SNAPSHOT)?;
    let mut rows = statement.query(rusqlite::params![aggregate_type, aggregate_id])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let payload: String = row.get(3)?;
    Ok(Some(SerializedSnapshot {
        aggregate_id: row.get(0)?,
        current_sequence: count(row.get(1)?)?,
        current_snapshot: count(row.get(2)?)?,
        aggregate: json(&payload)?,
    }))
}

/// [`sqlite_events`]: on this thread ([`direct::read_now`]) when they follow a sequence (at
/// most a snapshot's worth), on a blocking thread when they are every event of the aggregate
/// (cqrs-es replaying past a snapshot it cannot read).
async fn read_sqlite_events(
    path: &Path,
    aggregate_type: &'static str,
    aggregate_id: &str,
    after: Option<usize>,
) -> Result<Vec<SerializedEvent>, PersistenceError> {
    let aggregate_id = aggregate_id.to_string();
    let read = move |connection: &rusqlite::Connection| {
        sqlite_events(connection, aggregate_type, &aggregate_id, after)
    };
    match after {
        Some(after) if after > 0 => direct::read_now(path, read).await,
        _ => direct::read_elsewhere(path.to_path_buf(), read).await,
    }
    .map_err(persistence)
}

macro_rules! delegate {
    ($self:ident, $repo:ident => $body:expr) => {
        match &$self.inner {
            Inner::Sqlite($repo) => $body,
            Inner::Postgres($repo) => $body,
        }
    };
}

impl PersistedEventRepository for LedgerRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        if let Some(path) = &self.file {
            return read_sqlite_events(path, A::TYPE, aggregate_id, None).await;
        }
        delegate!(self, repo => repo.get_events::<A>(aggregate_id).await)
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        if let Some(path) = &self.file {
            return read_sqlite_events(path, A::TYPE, aggregate_id, Some(last_sequence)).await;
        }
        delegate!(self, repo => repo.get_last_events::<A>(aggregate_id, last_sequence).await)
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        if let Some(path) = &self.file {
            let aggregate_type = A::TYPE;
            let aggregate_id = aggregate_id.to_string();
            return direct::read_now(path, move |connection| {
                sqlite_snapshot(connection, aggregate_type, &aggregate_id)
            })
            .await
            .map_err(persistence);
        }
        delegate!(self, repo => repo.get_snapshot::<A>(aggregate_id).await)
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        self.persist_owned::<A>(events.to_vec(), snapshot_update)
            .await
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        delegate!(self, repo => repo.stream_events::<A>(aggregate_id).await)
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        delegate!(self, repo => repo.stream_all_events::<A>().await)
    }
}
