//! The hash chain that makes the log tamper-evident.
//!
//! `hash(n) = SHA-256(hash(n-1) ‖ canonical(event n))`, hex-encoded, with 64 zeros before the
//! first event. The canonical form is a JSON array of every stored field with object keys
//! sorted and no whitespace, computed from the parsed values: PostgreSQL rewrites JSON
//! payloads (key order, spacing), so the stored text is never hashed as it is.
//!
//! The sealer appends chain entries in position order right after each commit; `verify`
//! recomputes the chain and names the first position where it breaks.

use super::log::{read_after, LogEvent};
use super::{Backend, StorageError};
use crate::with_pool;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio::sync::Mutex;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const PAGE: i64 = 2000;

/// Writes `value` as JSON with object keys sorted by their bytes and no whitespace.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The bytes of an event that its hash covers.
pub fn canonical(event: &LogEvent) -> String {
    let fields = Value::Array(vec![
        event.position.into(),
        event.recorded_at.into(),
        event.aggregate_type.clone().into(),
        event.aggregate_id.clone().into(),
        event.sequence.into(),
        event.event_type.clone().into(),
        event.event_version.clone().into(),
        event.payload.clone(),
        event.metadata.clone(),
    ]);
    let mut out = String::new();
    write_canonical(&fields, &mut out);
    out
}

pub fn link(previous: &str, event: &LogEvent) -> String {
    let mut hasher = Sha256::new();
    hasher.update(previous.as_bytes());
    hasher.update(canonical(event).as_bytes());
    hex::encode(hasher.finalize())
}

/// Appends chain entries for every committed event not yet sealed.
pub struct Sealer {
    backend: Backend,
    /// One sealer at a time in this process; other processes are kept out by the chain's
    /// primary key (a concurrent sealer's insert fails and it simply tries again later).
    running: Mutex<()>,
    /// A scratch ledger whose log is re-chained before it is restored anywhere (the demo
    /// city) seals nothing after each commit; [`seal_all`](Self::seal_all) still does.
    deferred: bool,
}

impl Sealer {
    pub fn new(backend: Backend) -> Self {
        Sealer {
            backend,
            running: Mutex::new(()),
            deferred: false,
        }
    }

    /// A sealer for a scratch ledger: see `deferred`.
    pub fn deferred(backend: Backend) -> Self {
        Sealer {
            deferred: true,
            ..Sealer::new(backend)
        }
    }

    /// Seals everything committed so far; returns how many events it sealed.
    pub async fn seal(&self) -> Result<usize, StorageError> {
        if self.deferred {
            return Ok(0);
        }
        self.seal_all().await
    }

    /// Seals everything committed so far, even on a scratch ledger.
    pub async fn seal_all(&self) -> Result<usize, StorageError> {
        let _guard = self.running.lock().await;
        let mut sealed = 0;
        loop {
            let (mut last_position, mut last_hash) = chain_head(&self.backend).await?;
            let events = read_after(&self.backend, last_position, PAGE).await?;
            if events.is_empty() {
                return Ok(sealed);
            }
            let mut links = Vec::with_capacity(events.len());
            for event in &events {
                last_hash = link(&last_hash, event);
                last_position = event.position;
                links.push((last_position, last_hash.clone()));
            }
            insert_links(&self.backend, &links).await?;
            sealed += links.len();
        }
    }
}

/// The last sealed position and its hash (position 0 and the genesis hash when nothing is sealed).
pub async fn chain_head(backend: &Backend) -> Result<(i64, String), StorageError> {
    with_pool!(backend, pool => {
        let row = sqlx::query("SELECT position, hash FROM event_chain ORDER BY position DESC LIMIT 1")
            .fetch_optional(pool)
            .await?;
        match row {
            Some(row) => Ok((row.try_get(0)?, row.try_get(1)?)),
            None => Ok((0, GENESIS.to_string())),
        }
    })
}

async fn insert_links(backend: &Backend, links: &[(i64, String)]) -> Result<(), StorageError> {
    with_pool!(backend, pool => {
        let mut tx = pool.begin().await?;
        for (position, hash) in links {
            sqlx::query("INSERT INTO event_chain (position, hash) VALUES ($1, $2)")
                .bind(position)
                .bind(hash)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    })
}

/// What `kiroku verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Intact {
        events: u64,
        /// Committed events the sealer has not reached yet (normally 0).
        unsealed: u64,
        head: String,
    },
    Broken {
        position: i64,
        problem: String,
    },
}

/// Recomputes the chain over the whole log, page by page.
pub async fn verify(backend: &Backend) -> Result<Verdict, StorageError> {
    if let Some(position) = orphan_link(backend).await? {
        return Ok(Verdict::Broken {
            position,
            problem: "the chain seals an event that is no longer in the log".into(),
        });
    }
    let mut previous = GENESIS.to_string();
    let mut after = 0;
    let mut events = 0u64;
    let mut unsealed: Option<i64> = None;
    loop {
        let page = read_after(backend, after, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for event in page {
            after = event.position;
            events += 1;
            let expected = link(&previous, &event);
            match (&event.hash, unsealed) {
                (None, None) => unsealed = Some(event.position),
                (None, Some(_)) => {}
                (Some(_), Some(first)) => {
                    return Ok(Verdict::Broken {
                        position: first,
                        problem: "an event inside the sealed log has no chain entry".into(),
                    })
                }
                (Some(stored), None) if *stored != expected => {
                    return Ok(Verdict::Broken {
                        position: event.position,
                        problem: "the event does not match its hash".into(),
                    })
                }
                (Some(_), None) => {}
            }
            previous = expected;
        }
    }
    let unsealed = match unsealed {
        Some(first) => events_from(backend, first).await?,
        None => 0,
    };
    Ok(Verdict::Intact {
        events,
        unsealed,
        head: previous,
    })
}

async fn orphan_link(backend: &Backend) -> Result<Option<i64>, StorageError> {
    with_pool!(backend, pool => {
        let row = sqlx::query(
            "SELECT MIN(c.position) FROM event_chain c \
             LEFT JOIN events e ON e.position = c.position WHERE e.position IS NULL",
        )
        .fetch_one(pool)
        .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?)
    })
}

async fn events_from(backend: &Backend, position: i64) -> Result<u64, StorageError> {
    with_pool!(backend, pool => {
        let row = sqlx::query("SELECT COUNT(*) FROM events WHERE position >= $1")
            .bind(position)
            .fetch_one(pool)
            .await?;
        Ok(row.try_get::<i64, _>(0)?.max(0) as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(payload: Value) -> LogEvent {
        LogEvent {
            position: 1,
            recorded_at: 1_700_000_000_000,
            aggregate_type: "Staff".into(),
            aggregate_id: "a".into(),
            sequence: 1,
            event_type: "StaffRegistered".into(),
            event_version: "1".into(),
            payload,
            metadata: json!({"actor": "hr", "request_id": "r"}),
            hash: None,
        }
    }

    #[test]
    fn the_hash_ignores_key_order_and_spacing() {
        let a: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"y": [1, 2], "x": "東京"}}"#).expect("json");
        let b: Value = serde_json::from_str(r#"{"a":{"x":"東京","y":[1,2]},"b":1}"#).expect("json");
        assert_eq!(link(GENESIS, &event(a)), link(GENESIS, &event(b)));
    }

    #[test]
    fn the_hash_changes_with_the_payload() {
        assert_ne!(
            link(GENESIS, &event(json!({"a": 1}))),
            link(GENESIS, &event(json!({"a": 2})))
        );
    }

    #[test]
    fn canonical_form_sorts_keys_without_spaces() {
        let e = event(json!({"b": 1, "a": null}));
        assert!(canonical(&e).contains(r#"{"a":null,"b":1}"#));
    }
}
