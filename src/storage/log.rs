//! Reading the log in position order: the one way projections, the chain, `verify`,
//! `GET /events` and command responses see events. Reads go in bounded pages by keyset
//! (`position > after`), never one long transaction.

use super::{Backend, StorageError};
use crate::with_pool;
use serde_json::Value;
use sqlx::Row;

/// One event as the log holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEvent {
    pub position: i64,
    /// Transaction time, milliseconds since the Unix epoch (UTC).
    pub recorded_at: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
    /// The hash chain's entry for this event, once sealed.
    pub hash: Option<String>,
}

impl LogEvent {
    pub fn metadata_str(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }
}

const COLUMNS_SQLITE: &str = "e.position, e.recorded_at, e.aggregate_type, e.aggregate_id, \
     e.sequence, e.event_type, e.event_version, e.payload, e.metadata, c.hash";
const COLUMNS_POSTGRES: &str = "e.position, e.recorded_at, e.aggregate_type, e.aggregate_id, \
     e.sequence, e.event_type, e.event_version, e.payload::text, e.metadata::text, c.hash";

fn columns(backend: &Backend) -> &'static str {
    match backend {
        Backend::Sqlite(_) => COLUMNS_SQLITE,
        Backend::Postgres(_) => COLUMNS_POSTGRES,
    }
}

fn parse_json(text: &str, position: i64) -> Result<Value, StorageError> {
    serde_json::from_str(text)
        .map_err(|e| StorageError::Corrupt(format!("event at position {position}: {e}")))
}

pub(crate) fn decode<R: Row>(row: &R) -> Result<LogEvent, StorageError>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let position: i64 = row.try_get(0)?;
    let payload: String = row.try_get(7)?;
    let metadata: String = row.try_get(8)?;
    Ok(LogEvent {
        position,
        recorded_at: row.try_get(1)?,
        aggregate_type: row.try_get(2)?,
        aggregate_id: row.try_get(3)?,
        sequence: row.try_get(4)?,
        event_type: row.try_get(5)?,
        event_version: row.try_get(6)?,
        payload: parse_json(&payload, position)?,
        metadata: parse_json(&metadata, position)?,
        hash: row.try_get(9)?,
    })
}

/// Up to `limit` events with `position > after`, in position order.
pub async fn read_after(
    backend: &Backend,
    after: i64,
    limit: i64,
) -> Result<Vec<LogEvent>, StorageError> {
    let sql = format!(
        "SELECT {} FROM events e LEFT JOIN event_chain c ON c.position = e.position \
         WHERE e.position > $1 ORDER BY e.position LIMIT $2",
        columns(backend)
    );
    with_pool!(backend, pool => {
        let rows = sqlx::query(&sql).bind(after).bind(limit).fetch_all(pool).await?;
        rows.iter().map(decode).collect()
    })
}

/// An event as the rebuild reads it: the JSON left as the database returns it, to be parsed
/// once straight into its typed form, and no chain link.
#[derive(Debug, Clone)]
pub struct RawEvent {
    pub position: i64,
    pub recorded_at: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event_type: String,
    pub payload: String,
    pub metadata: String,
}

/// The events with `after < position <= until`, in position order, for folding. Positions
/// follow commit order, so every position up to a head once seen is there to read: ranges
/// below it can be read side by side.
pub async fn read_raw_between(
    backend: &Backend,
    after: i64,
    until: i64,
) -> Result<Vec<RawEvent>, StorageError> {
    if let Some(path) = backend.sqlite_file() {
        return super::direct::read_raw_between(path, after, until).await;
    }
    let sql = match backend {
        Backend::Sqlite(_) => {
            "SELECT position, recorded_at, aggregate_type, aggregate_id, event_type, payload, \
             metadata FROM events WHERE position > $1 AND position <= $2 ORDER BY position"
        }
        Backend::Postgres(_) => {
            "SELECT position, recorded_at, aggregate_type, aggregate_id, event_type, \
             payload::text, metadata::text FROM events WHERE position > $1 AND position <= $2 \
             ORDER BY position"
        }
    };
    with_pool!(backend, pool => {
        let rows = sqlx::query(sql).bind(after).bind(until).fetch_all(pool).await?;
        rows.iter()
            .map(|row| {
                Ok(RawEvent {
                    position: row.try_get(0)?,
                    recorded_at: row.try_get(1)?,
                    aggregate_type: row.try_get(2)?,
                    aggregate_id: row.try_get(3)?,
                    event_type: row.try_get(4)?,
                    payload: row.try_get(5)?,
                    metadata: row.try_get(6)?,
                })
            })
            .collect()
    })
}

/// The number of events in the log.
pub async fn count(backend: &Backend) -> Result<i64, StorageError> {
    with_pool!(backend, pool => {
        let row = sqlx::query("SELECT COUNT(*) FROM events").fetch_one(pool).await?;
        Ok(row.try_get::<i64, _>(0)?)
    })
}

/// The last position in the log (0 when empty).
pub async fn head(backend: &Backend) -> Result<i64, StorageError> {
    const SQL: &str = "SELECT COALESCE(MAX(position), 0) FROM events";
    if let Some(path) = backend.sqlite_file() {
        return super::direct::read_now(&path, |connection| {
            Ok(connection
                .prepare_cached(SQL)?
                .query_row([], |row| row.get(0))?)
        })
        .await;
    }
    with_pool!(backend, pool => {
        let row = sqlx::query(SQL)
            .fetch_one(pool)
            .await?;
        Ok(row.try_get::<i64, _>(0)?)
    })
}

/// The events at `positions` (any order, duplicates allowed), in position order.
/// Every event one request appended, whatever aggregate it went to (a scan of the metadata:
/// used only to resolve an idempotency key a crash left in progress).
pub async fn read_request_anywhere(
    backend: &Backend,
    request_id: &str,
) -> Result<Vec<LogEvent>, StorageError> {
    let filter = match backend {
        Backend::Sqlite(_) => "json_extract(e.metadata, '$.request_id') = $1",
        Backend::Postgres(_) => "e.metadata->>'request_id' = $1",
    };
    let sql = format!(
        "SELECT {} FROM events e LEFT JOIN event_chain c ON c.position = e.position \
         WHERE {filter} ORDER BY e.position",
        columns(backend)
    );
    with_pool!(backend, pool => {
        let rows = sqlx::query(&sql).bind(request_id).fetch_all(pool).await?;
        rows.iter().map(decode).collect()
    })
}

pub async fn read_positions(
    backend: &Backend,
    positions: &[i64],
) -> Result<Vec<LogEvent>, StorageError> {
    let mut events = Vec::with_capacity(positions.len());
    for chunk in positions.chunks(500) {
        let list = chunk
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!(
            "SELECT {} FROM events e LEFT JOIN event_chain c ON c.position = e.position \
             WHERE e.position IN ({list}) ORDER BY e.position",
            columns(backend)
        );
        let page: Vec<LogEvent> = with_pool!(backend, pool => {
            let rows = sqlx::query(&sql).fetch_all(pool).await?;
            rows.iter().map(decode).collect::<Result<_, _>>()?
        });
        events.extend(page);
    }
    events.sort_by_key(|e| e.position);
    events.dedup_by_key(|e| e.position);
    Ok(events)
}

/// How many events of each type the log holds.
pub async fn count_by_type(
    backend: &Backend,
) -> Result<std::collections::BTreeMap<String, usize>, StorageError> {
    with_pool!(backend, pool => {
        let rows = sqlx::query("SELECT event_type, COUNT(*) FROM events GROUP BY event_type")
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(|row| {
                let count: i64 = row.try_get(1)?;
                Ok((row.try_get::<String, _>(0)?, count.max(0) as usize))
            })
            .collect()
    })
}
