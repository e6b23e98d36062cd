//! PostgreSQL's bulk path: a large batch, or a streamed unit (an import's sheet) of any size,
//! goes into the log by `COPY`, its events and then its chain links, inside the appender's
//! transaction. A streamed unit's `COPY` opens with its first part and takes the rest as they
//! are decided ([`copy_streamed`]), so the appenders' lock is held from then to the commit.
//!
//! A multi-row `INSERT … RETURNING` of 100,000 events makes the server parse every row's
//! parameters, plan 100 statements and send every event's JSON back as text, to be parsed
//! again here. `COPY` streams the rows in one message flow. It returns nothing, so what the
//! insert returned is known another way:
//! - the positions: the statement trigger takes the appenders' lock before the first row
//!   draws one (migration 0008), so this transaction's rows draw consecutive values of the
//!   sequence in the order sent, ending at the session's `currval`. Checked: the first
//!   position of that range holds the first event sent;
//! - `recorded_at`: one per statement, the transaction-local setting the trigger left;
//! - the JSON: the values held in memory, as the log will give them back: the column keeps
//!   the text sent (json, migration 0010), and integers and strings read back exactly; a
//!   batch with a float is not copied (the insert's `RETURNING` gives such a value as
//!   stored).

use super::append::{abandoned, next_part, Due, Failure, Part, Streamed};
use super::chain::link_written;
use super::log::LogEvent;
use cqrs_es::persist::SerializedEvent;
use serde_json::Value;
use sqlx::{PgConnection, Row};
use tokio::sync::mpsc;

/// Batches of at least this many events are copied, smaller ones inserted (a streamed unit is
/// copied whatever its size: it is not known before its end).
const COPY_FROM: usize = 2_000;
/// The statement that copies events into the log; the database gives each its position and
/// time (migration 0008).
const COPY_EVENTS: &str = "COPY events (aggregate_type, aggregate_id, sequence, event_type, \
     event_version, payload, metadata) FROM STDIN";
/// Events encoded and sent at a time within one `COPY` (about 700 KB).
const COPY_PIECE: usize = 2_000;

/// Whether `rows` go in by `COPY`: many of them, and none with a float.
pub fn worth_copying(rows: &[(&str, &SerializedEvent)]) -> bool {
    many(rows) && !any_float(rows)
}

/// Whether `rows` are enough for `COPY` to pay.
pub fn many(rows: &[(&str, &SerializedEvent)]) -> bool {
    rows.len() >= COPY_FROM
}

/// Whether any of `rows` holds a float in its payload or metadata.
pub fn any_float(rows: &[(&str, &SerializedEvent)]) -> bool {
    rows.iter()
        .any(|(_, e)| has_float(&e.payload) || has_float(&e.metadata))
}

/// Whether `value` holds a number that is not an integer.
pub fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

/// Appends `field` to a line of `COPY`'s text format: backslash, tab, newline and carriage
/// return escaped.
fn push_field(line: &mut Vec<u8>, field: &[u8]) {
    for &byte in field {
        match byte {
            b'\\' => line.extend_from_slice(b"\\\\"),
            b'\t' => line.extend_from_slice(b"\\t"),
            b'\n' => line.extend_from_slice(b"\\n"),
            b'\r' => line.extend_from_slice(b"\\r"),
            other => line.push(other),
        }
    }
}

/// The JSON of the events copied as it was sent, each event's payload and then its metadata,
/// in the order of the rows: what the chain hashes ([`link_written`]) instead of writing the
/// values out again. It is their canonical form: the bulk path copies no float.
pub struct Written {
    json: Vec<u8>,
    /// Per event, where its payload ends and where its metadata ends.
    ends: Vec<(usize, usize)>,
}

impl Written {
    /// The payload and the metadata of each event copied, in order.
    fn each(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let starts = std::iter::once(0).chain(self.ends.iter().map(|&(_, metadata)| metadata));
        starts.zip(&self.ends).map(|(start, &(payload, metadata))| {
            (&self.json[start..payload], &self.json[payload..metadata])
        })
    }
}

/// The rows in `COPY`'s text format; their JSON is kept in `written`.
fn encode(rows: &[(&str, &SerializedEvent)], written: &mut Written) -> Result<Vec<u8>, Failure> {
    let mut data = Vec::with_capacity(rows.len() * 320);
    for (aggregate_type, event) in rows {
        push_field(&mut data, aggregate_type.as_bytes());
        data.push(b'\t');
        push_field(&mut data, event.aggregate_id.as_bytes());
        data.push(b'\t');
        data.extend_from_slice(event.sequence.to_string().as_bytes());
        data.push(b'\t');
        push_field(&mut data, event.event_type.as_bytes());
        data.push(b'\t');
        push_field(&mut data, event.event_version.as_bytes());
        let mut ends = [0; 2];
        for (value, end) in [&event.payload, &event.metadata].into_iter().zip(&mut ends) {
            let start = written.json.len();
            serde_json::to_writer(&mut written.json, value)
                .map_err(|e| Failure::Storage(format!("encoding an event: {e}")))?;
            *end = written.json.len();
            data.push(b'\t');
            push_field(&mut data, &written.json[start..]);
        }
        written.ends.push((ends[0], ends[1]));
        data.push(b'\n');
    }
    Ok(data)
}

/// What [`copy_events`] wrote: the position of the first event, the time recorded for them
/// all, and their JSON as sent.
pub struct Copied {
    pub first: i64,
    pub recorded_at: i64,
    pub written: Written,
}

/// Copies `rows` into the log, in this order.
pub async fn copy_events(
    conn: &mut PgConnection,
    rows: &[(&str, &SerializedEvent)],
) -> Result<Copied, Failure> {
    let mut copy = conn.copy_in_raw(COPY_EVENTS).await?;
    // Sent in pieces: the server inserts one while the next is encoded here.
    let started = std::time::Instant::now();
    let mut encoding = std::time::Duration::ZERO;
    let mut written = Written {
        json: Vec::with_capacity(rows.len() * 256),
        ends: Vec::with_capacity(rows.len()),
    };
    for piece in rows.chunks(COPY_PIECE) {
        let began = std::time::Instant::now();
        let encoded = encode(piece, &mut written);
        encoding += began.elapsed();
        match encoded {
            Ok(data) => copy.send(data).await?,
            Err(failure) => {
                give_up(copy).await;
                return Err(failure);
            }
        };
    }
    let sending = started.elapsed();
    let copied = copy.finish().await?;
    // Encoding here against waiting for the server (PERFORMANCE.md, the bulk import).
    tracing::debug!(
        encoding = encoding.as_secs_f64(),
        sending = (sending - encoding).as_secs_f64(),
        finishing = (started.elapsed() - sending).as_secs_f64(),
        "bulk events sent"
    );
    let Some((aggregate_type, event)) = rows.first() else {
        return Err(Failure::Storage("no event to copy".into()));
    };
    let first = (*aggregate_type, event.aggregate_id.as_str(), event.sequence);
    placed(conn, rows.len(), copied, first, written).await
}

/// What a `COPY` of `sent` events that the server took as `copied` rows placed: their first
/// position and their time, checked against the log (see the module's note). `first` is the
/// key of the first event sent (aggregate type, id and sequence).
///
/// The rows drew strictly increasing positions, the last of them this session's `currval`;
/// so when the first sent is found at `currval - sent + 1`, all of them fill that range
/// without a gap. One row looked up by its position, where counting the range read an index
/// entry per event (0.08–0.19 s per 100,000 at 1M events).
async fn placed(
    conn: &mut PgConnection,
    sent: usize,
    copied: u64,
    first: (&str, &str, usize),
    written: Written,
) -> Result<Copied, Failure> {
    let sent = sent as i64;
    let (aggregate_type, aggregate_id, sequence) = first;
    let assigned = sqlx::query(
        "SELECT s.last, current_setting('kiroku.recorded_at')::BIGINT, \
         EXISTS (SELECT 1 FROM events WHERE position = s.last - $1 + 1 \
         AND aggregate_type = $2 AND aggregate_id = $3 AND sequence = $4) \
         FROM (SELECT currval('events_position_seq') AS last) AS s",
    )
    .bind(sent)
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(sequence as i64)
    .fetch_one(&mut *conn)
    .await?;
    let (last, recorded_at, first_found): (i64, i64, bool) = (
        assigned.try_get(0)?,
        assigned.try_get(1)?,
        assigned.try_get(2)?,
    );
    if copied != sent as u64 || !first_found {
        // Rolled back with the transaction: nothing of the batch is written.
        return Err(Failure::Storage(format!(
            "{sent} events were copied, {copied} taken, the first not found at position {}",
            last - sent + 1
        )));
    }
    Ok(Copied {
        first: last - sent + 1,
        recorded_at,
        written,
    })
}

/// Copies a streamed unit's events into the log as its parts arrive on `stream`
/// ([`Streamed`]), keeping the parts in `parts` in the order copied: the server inserts a
/// piece while the unit's next commands are decided. `None` when nothing was copied and the
/// parts were gathered, to be inserted instead: a unit without events, or one with a float
/// (see the module's note), whose `COPY` is rolled back to the savepoint taken before it.
pub async fn copy_streamed(
    conn: &mut PgConnection,
    parts: &mut Vec<Part>,
    stream: &mut mpsc::UnboundedReceiver<Streamed>,
) -> Result<Option<Copied>, Failure> {
    let floats = |part: &Part| {
        part.events
            .iter()
            .any(|e| has_float(&e.payload) || has_float(&e.metadata))
    };
    // Nothing is begun before the first part with events.
    loop {
        match next_part(stream).await? {
            Some(Streamed::Part(part)) if part.events.is_empty() => {}
            Some(Streamed::Part(part)) => {
                let float = floats(&part);
                parts.push(part);
                if float {
                    return gather_rest(stream, parts).await;
                }
                break;
            }
            Some(Streamed::End) => return Ok(None),
            None => return Err(abandoned()),
        }
    }
    sqlx::query("SAVEPOINT streamed")
        .execute(&mut *conn)
        .await?;
    let mut copy = conn.copy_in_raw(COPY_EVENTS).await?;
    let started = std::time::Instant::now();
    let mut encoding = std::time::Duration::ZERO;
    let mut written = Written {
        json: Vec::new(),
        ends: Vec::new(),
    };
    // Parts before `unsent` are encoded and sent; `waiting` events are not yet.
    let mut unsent = 0;
    let mut waiting = parts[0].events.len();
    let mut ended = false;
    while !ended {
        if waiting < COPY_PIECE {
            let next = match next_part(stream).await {
                Ok(next) => next,
                Err(failure) => {
                    give_up(copy).await;
                    return Err(failure);
                }
            };
            match next {
                Some(Streamed::Part(part)) if part.events.is_empty() => continue,
                Some(Streamed::Part(part)) if floats(&part) => {
                    parts.push(part);
                    give_up(copy).await;
                    sqlx::query("ROLLBACK TO SAVEPOINT streamed")
                        .execute(&mut *conn)
                        .await?;
                    return gather_rest(stream, parts).await;
                }
                Some(Streamed::Part(part)) => {
                    waiting += part.events.len();
                    parts.push(part);
                    continue;
                }
                Some(Streamed::End) => ended = true,
                None => {
                    give_up(copy).await;
                    return Err(abandoned());
                }
            }
        }
        let began = std::time::Instant::now();
        let rows: Vec<(&str, &SerializedEvent)> = parts[unsent..]
            .iter()
            .flat_map(|part| {
                part.events
                    .iter()
                    .map(|e| (part.aggregate_type.as_str(), e))
            })
            .collect();
        let encoded = encode(&rows, &mut written);
        encoding += began.elapsed();
        match encoded {
            Ok(data) if data.is_empty() => {}
            Ok(data) => {
                copy.send(data).await?;
            }
            Err(failure) => {
                give_up(copy).await;
                return Err(failure);
            }
        }
        unsent = parts.len();
        waiting = 0;
    }
    let streaming = started.elapsed();
    let copied = copy.finish().await?;
    tracing::debug!(
        encoding = encoding.as_secs_f64(),
        streaming = (streaming - encoding).as_secs_f64(),
        finishing = (started.elapsed() - streaming).as_secs_f64(),
        "bulk events streamed"
    );
    let sent = written.ends.len();
    let first = parts
        .first()
        .and_then(|part| Some((part.aggregate_type.as_str(), part.events.first()?)))
        .map(|(aggregate_type, event)| {
            (aggregate_type, event.aggregate_id.as_str(), event.sequence)
        });
    let Some(first) = first else {
        return Err(Failure::Storage("no event was copied".into()));
    };
    placed(conn, sent, copied, first, written).await.map(Some)
}

/// Ends a `COPY` whose rows are not kept: they go with the savepoint or the transaction rolled
/// back next. `finish`, not `abort`: when the server has already refused a row (a sequence
/// taken meanwhile), sqlx's `abort` returns that error without reading the reply that follows
/// it, and the connection would answer the next statement with the wrong reply.
async fn give_up(copy: sqlx::postgres::PgCopyIn<&mut PgConnection>) {
    let _ = copy.finish().await;
}

/// The rest of a streamed unit gathered into `parts`, nothing copied.
async fn gather_rest(
    stream: &mut mpsc::UnboundedReceiver<Streamed>,
    parts: &mut Vec<Part>,
) -> Result<Option<Copied>, Failure> {
    super::append::gather(stream, parts).await.map(|()| None)
}

/// Seals `events`, the ones [`copy_events`] copied as `written` (the first linked to
/// `previous`), and copies their links into the chain, a piece at a time: the server inserts
/// one piece while the next is linked here.
pub async fn copy_links(
    conn: &mut PgConnection,
    events: &mut [LogEvent],
    written: &Written,
    previous: &str,
) -> Result<(), Failure> {
    // `written` holds the events in the order copied, which is the order of their positions.
    let consecutive = match (events.first(), events.last()) {
        (Some(first), Some(last)) => last.position - first.position + 1 == events.len() as i64,
        _ => true,
    };
    if written.ends.len() != events.len() || !consecutive {
        return Err(Failure::Storage(format!(
            "{} events to seal, {} copied",
            events.len(),
            written.ends.len()
        )));
    }
    let mut copy = conn
        .copy_in_raw("COPY event_chain (position, hash) FROM STDIN")
        .await?;
    let mut previous = previous.to_string();
    let mut texts = written.each();
    for piece in events.chunks_mut(COPY_PIECE) {
        let mut data = Vec::with_capacity(piece.len() * 80);
        for event in piece {
            let Some((payload, metadata)) = texts.next() else {
                return Err(Failure::Storage("an event to seal was not copied".into()));
            };
            previous = link_written(&previous, event, payload, metadata);
            data.extend_from_slice(event.position.to_string().as_bytes());
            data.push(b'\t');
            push_field(&mut data, previous.as_bytes());
            data.push(b'\n');
            event.hash = Some(previous.clone());
        }
        copy.send(data).await?;
    }
    let copied = copy.finish().await?;
    if copied != events.len() as u64 {
        return Err(Failure::Storage(format!(
            "{} links were copied, {copied} taken",
            events.len()
        )));
    }
    Ok(())
}

/// Writes the snapshots due with a batch in at most three statements, where a statement per
/// snapshot cost a round trip each (an import of 50,000 rows over 500 sessions: 0.4 s), and
/// sends their JSON as text for the json column (migration 0011) to keep as it is.
/// `false` (nothing written) when one aggregate has two of them: the batch's snapshots are
/// then all written one by one, in order.
pub(super) async fn write_snapshots(
    conn: &mut PgConnection,
    due: &[Due<'_>],
) -> Result<bool, Failure> {
    if due.is_empty() {
        return Ok(true);
    }
    let mut seen = std::collections::HashSet::with_capacity(due.len());
    if !due
        .iter()
        .all(|d| seen.insert((d.aggregate_type, d.aggregate_id)))
    {
        return Ok(false);
    }
    let (first, later): (Vec<&Due>, Vec<&Due>) = due.iter().partition(|d| d.current == 1);
    if !first.is_empty() {
        // As `append::FORGET_SNAPSHOTS`, for every first snapshot at once.
        sqlx::query(
            "DELETE FROM snapshots s USING UNNEST($1::text[], $2::text[]) AS v (t, id) \
             WHERE s.aggregate_type = v.t AND s.aggregate_id = v.id",
        )
        .bind(first.iter().map(|d| d.aggregate_type).collect::<Vec<_>>())
        .bind(first.iter().map(|d| d.aggregate_id).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    for (snapshots, statement) in [
        (
            first,
            "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, \
             current_snapshot, payload) \
             SELECT v.t, v.id, v.seq, v.cur, v.payload::json \
             FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[]) \
             AS v (t, id, seq, cur, payload)",
        ),
        (
            later,
            "UPDATE snapshots s SET last_sequence = v.seq, payload = v.payload::json, \
             current_snapshot = v.cur \
             FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[]) \
             AS v (t, id, seq, cur, payload) \
             WHERE s.aggregate_type = v.t AND s.aggregate_id = v.id \
             AND s.current_snapshot = v.cur - 1",
        ),
    ] {
        if snapshots.is_empty() {
            continue;
        }
        let written = sqlx::query(statement)
            .bind(
                snapshots
                    .iter()
                    .map(|d| d.aggregate_type)
                    .collect::<Vec<_>>(),
            )
            .bind(snapshots.iter().map(|d| d.aggregate_id).collect::<Vec<_>>())
            .bind(
                snapshots
                    .iter()
                    .map(|d| d.last_sequence)
                    .collect::<Vec<_>>(),
            )
            .bind(snapshots.iter().map(|d| d.current).collect::<Vec<_>>())
            .bind(
                snapshots
                    .iter()
                    .map(|d| d.payload.to_string())
                    .collect::<Vec<_>>(),
            )
            .execute(&mut *conn)
            .await?
            .rows_affected();
        if written != snapshots.len() as u64 {
            // A later snapshot whose predecessor is not the one stored (another process
            // wrote one meanwhile). Rolled back with the transaction.
            return Err(Failure::Conflict);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_escape_what_copy_reads_as_syntax() {
        let mut line = Vec::new();
        push_field(&mut line, "a\\b\tc\nd\re「記録」".as_bytes());
        assert_eq!(
            String::from_utf8(line).expect("utf-8"),
            "a\\\\b\\tc\\nd\\re「記録」"
        );
    }

    #[test]
    fn a_batch_with_a_float_is_not_copied() {
        let event = |payload: Value| SerializedEvent {
            aggregate_id: "a".into(),
            sequence: 1,
            aggregate_type: "Session".into(),
            event_type: "E".into(),
            event_version: "1".into(),
            payload,
            metadata: serde_json::json!({"actor": "x"}),
        };
        let whole: Vec<SerializedEvent> = (0..COPY_FROM)
            .map(|i| event(serde_json::json!({"n": i, "s": "x"})))
            .collect();
        let rows: Vec<(&str, &SerializedEvent)> = whole.iter().map(|e| ("Session", e)).collect();
        assert!(worth_copying(&rows));
        assert!(!worth_copying(&rows[1..]), "too few to copy");
        let float = event(serde_json::json!({"hours": [1.5]}));
        let mut with_float = rows.clone();
        with_float.push(("Session", &float));
        assert!(!worth_copying(&with_float));
    }
}
