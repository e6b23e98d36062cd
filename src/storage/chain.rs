//! The hash chain that makes the log tamper-evident.
//!
//! `hash(n) = SHA-256(hash(n-1) ‖ canonical(event n))`, hex-encoded, with 64 zeros before the
//! first event. The canonical form is a JSON array of every stored field with object keys
//! sorted and no whitespace, computed from the parsed values: PostgreSQL rewrote JSON
//! payloads (key order, spacing) while the log was `jsonb` (before migration 0010), so the
//! stored text is never hashed as it is.
//!
//! Each commit writes the links of its events in the same transaction as the events
//! (`repository.rs`), so every event in the log has its link: one without is an insertion
//! from outside Kiroku. `verify` recomputes the chain, only reading, and names the first
//! position where it breaks.

use super::log::{read_after, LogEvent};
use super::{Backend, StorageError};
use crate::with_pool;
use cqrs_es::persist::SerializedEvent;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::sync::LazyLock;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const PAGE: i64 = 2000;

/// Writes `value` as JSON with object keys sorted by their bytes and no whitespace.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(key, out);
                out.push(b':');
                write_canonical(value, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_json(scalar, out),
    }
}

/// A string, number, boolean or null as compact JSON (writing to memory cannot fail).
fn write_json<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(out, value);
}

/// The bytes of an event that its hash covers: the JSON array `[position, recorded_at,
/// aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata]`,
/// written straight from the event.
pub fn canonical(event: &LogEvent) -> String {
    let mut out = Vec::with_capacity(256);
    write_fields(event, &mut out);
    for value in [&event.payload, &event.metadata] {
        out.push(b',');
        write_canonical(value, &mut out);
    }
    out.push(b']');
    // Only JSON written by serde_json went in: valid UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// The canonical form up to the payload: `[position,…,event_version`.
fn write_fields(event: &LogEvent, out: &mut Vec<u8>) {
    out.push(b'[');
    write_json(&event.position, out);
    out.push(b',');
    write_json(&event.recorded_at, out);
    write_stored_fields(
        [&event.aggregate_type, &event.aggregate_id],
        event.sequence,
        [&event.event_type, &event.event_version],
        out,
    );
}

/// The fields of the canonical form after the two the database assigns:
/// `,aggregate_type,aggregate_id,sequence,event_type,event_version`.
fn write_stored_fields(aggregate: [&str; 2], sequence: i64, kind: [&str; 2], out: &mut Vec<u8>) {
    for text in aggregate {
        out.push(b',');
        write_json(text, out);
    }
    out.push(b',');
    write_json(&sequence, out);
    for text in kind {
        out.push(b',');
        write_json(text, out);
    }
}

/// The canonical form of an event after its position and its time, the two numbers the
/// database assigns: `,aggregate_type,…,payload,metadata]`, with `payload` and `metadata` as
/// the caller has just written them with `serde_json::to_string` (the conditions of
/// [`link_written`] apply). PostgreSQL's `append_sealed` (migration 0012) links the event as
/// `SHA-256(previous ‖ '[' ‖ position ‖ ',' ‖ recorded_at ‖ tail)`, which is [`link`]; `None`
/// when this build's serde_json does not write the canonical form.
pub fn tail_written(
    aggregate_type: &str,
    event: &SerializedEvent,
    payload: &str,
    metadata: &str,
) -> Option<String> {
    if !serde_json_sorts_keys() {
        return None;
    }
    let mut out = Vec::with_capacity(payload.len() + metadata.len() + 128);
    write_stored_fields(
        [aggregate_type, &event.aggregate_id],
        event.sequence as i64,
        [&event.event_type, &event.event_version],
        &mut out,
    );
    out.push(b',');
    out.extend_from_slice(payload.as_bytes());
    out.push(b',');
    out.extend_from_slice(metadata.as_bytes());
    out.push(b']');
    // Only JSON written by serde_json and the caller's UTF-8 went in.
    String::from_utf8(out).ok()
}

pub fn link(previous: &str, event: &LogEvent) -> String {
    let mut hasher = Sha256::new();
    hasher.update(previous.as_bytes());
    hasher.update(canonical(event).as_bytes());
    hex::encode(hasher.finalize())
}

/// Whether serde_json writes an object's keys in the canonical order. It does while its
/// maps are `BTreeMap`s, ordered by the keys' bytes; the `preserve_order` feature, switched on
/// by any crate of the build, would make them keep their insertion order instead.
fn serde_json_sorts_keys() -> bool {
    static SORTS: LazyLock<bool> = LazyLock::new(|| {
        let probe = serde_json::json!({"b": 0, "a": {"d": 0, "c": 0}});
        serde_json::to_string(&probe).is_ok_and(|text| text == r#"{"a":{"c":0,"d":0},"b":0}"#)
    });
    *SORTS
}

/// [`link`] for an event whose payload and metadata the caller has just written with
/// `serde_json::to_string` (`payload`, `metadata`): that text is their canonical form, so it
/// is hashed as it is instead of being written again. The values must be the event's own,
/// as the log gives them back: not a float read back from text (see `copy::has_float`).
pub fn link_written(previous: &str, event: &LogEvent, payload: &[u8], metadata: &[u8]) -> String {
    if !serde_json_sorts_keys() {
        return link(previous, event);
    }
    let mut fields = Vec::with_capacity(160);
    write_fields(event, &mut fields);
    fields.push(b',');
    let mut hasher = Sha256::new();
    hasher.update(previous.as_bytes());
    hasher.update(&fields);
    hasher.update(payload);
    hasher.update(b",");
    hasher.update(metadata);
    hasher.update(b"]");
    hex::encode(hasher.finalize())
}

/// The chain hash at `position`, if an event there is sealed.
pub async fn hash_at(backend: &Backend, position: i64) -> Result<Option<String>, StorageError> {
    with_pool!(backend, pool => {
        Ok(sqlx::query("SELECT hash FROM event_chain WHERE position = $1")
            .bind(position)
            .fetch_optional(pool)
            .await?
            .map(|row| row.try_get(0))
            .transpose()?)
    })
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

/// What `kiroku verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Intact { events: u64, head: String },
    Broken { position: i64, problem: String },
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
    loop {
        let page = read_after(backend, after, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for event in page {
            after = event.position;
            events += 1;
            let expected = link(&previous, &event);
            match &event.hash {
                None => {
                    return Ok(Verdict::Broken {
                        position: event.position,
                        problem: "the event has no chain entry (each commit writes its own, so \
                                  it was inserted from outside Kiroku)"
                            .into(),
                    })
                }
                Some(stored) if *stored != expected => {
                    return Ok(Verdict::Broken {
                        position: event.position,
                        problem: "the event does not match its hash".into(),
                    })
                }
                Some(_) => {}
            }
            previous = expected;
        }
    }
    Ok(Verdict::Intact {
        events,
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
    fn the_two_assigned_numbers_and_the_tail_are_the_canonical_form() {
        // What PostgreSQL's append_sealed (migration 0012) hashes, put together as it does.
        let mut event = event(json!({"b": "東京\n\"x\"", "a": [1, -2, {"z": null, "y": true}]}));
        event.position = 1_234_567;
        event.recorded_at = 1_764_000_000_123;
        let serialized = SerializedEvent {
            aggregate_id: event.aggregate_id.clone(),
            sequence: event.sequence as usize,
            aggregate_type: event.aggregate_type.clone(),
            event_type: event.event_type.clone(),
            event_version: event.event_version.clone(),
            payload: event.payload.clone(),
            metadata: event.metadata.clone(),
        };
        let tail = tail_written(
            &event.aggregate_type,
            &serialized,
            &event.payload.to_string(),
            &event.metadata.to_string(),
        )
        .expect("serde_json sorts keys");
        let assembled = format!("[{},{}{tail}", event.position, event.recorded_at);
        assert_eq!(assembled, canonical(&event));
        let mut hasher = Sha256::new();
        hasher.update(GENESIS.as_bytes());
        hasher.update(assembled.as_bytes());
        assert_eq!(hex::encode(hasher.finalize()), link(GENESIS, &event));
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

    /// The form every stored link was computed with, as it was first written (through a
    /// `Value` and its `Display`): the direct writer must give the same bytes.
    fn canonical_as_first_written(event: &LogEvent) -> String {
        fn write(value: &Value, out: &mut String) {
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
                        write(value, out);
                    }
                    out.push('}');
                }
                Value::Array(items) => {
                    out.push('[');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        write(item, out);
                    }
                    out.push(']');
                }
                scalar => out.push_str(&scalar.to_string()),
            }
        }
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
        write(&fields, &mut out);
        out
    }

    #[test]
    fn the_canonical_form_is_the_one_every_link_was_computed_with() {
        let mut e = event(json!({
            "b": [1, -2, 3.5, 1e300, null, true],
            "a": {"y": "改行\n\"引用\"\u{1}\t😀", "x": "東京", "": 0},
            "ß": "\\",
        }));
        e.aggregate_type = "Staff\"x".into();
        e.event_type = "タブ\t".into();
        e.position = i64::MAX;
        e.recorded_at = -1;
        e.metadata = json!({"actor": "人事課", "reason": "訂正\r\n", "n": u64::MAX});
        assert_eq!(canonical(&e), canonical_as_first_written(&e));
        let plain = event(json!({"TrainingCompleted": {"staff_id": "s", "understanding": 2}}));
        assert_eq!(canonical(&plain), canonical_as_first_written(&plain));
    }

    #[test]
    fn an_event_written_by_serde_json_links_as_its_canonical_form() {
        assert!(serde_json_sorts_keys());
        let mut e = event(json!({
            "b": [1, -2, null, true, {"z": 1, "y": [{"k": "\u{7f}"}]}],
            "a": {"y": "改行\n\"引用\"\u{1}\t😀", "x": "東京", "": 0},
            "ß": "\\",
        }));
        e.aggregate_id = "人\"事".into();
        e.metadata = json!({"actor": "人事課", "reason": "訂正\r\n", "n": u64::MAX, "m": i64::MIN});
        let (payload, metadata) = (e.payload.to_string(), e.metadata.to_string());
        let (payload, metadata) = (payload.as_bytes(), metadata.as_bytes());
        let written = link_written(GENESIS, &e, payload, metadata);
        assert_eq!(written, link(GENESIS, &e));
        assert_eq!(
            link_written(&written, &e, payload, metadata),
            link(&written, &e)
        );
    }

    #[test]
    fn canonical_form_sorts_keys_without_spaces() {
        let e = event(json!({"b": 1, "a": null}));
        assert!(canonical(&e).contains(r#"{"a":null,"b":1}"#));
    }
}
