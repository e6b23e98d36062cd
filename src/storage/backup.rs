//! The whole log as NDJSON (SPEC §8 `kiroku log export` / `kiroku log import`): backup, and the
//! move from the embedded SQLite ledger to PostgreSQL.
//!
//! A file is one JSON object per line: a header (`"type": "header"`), every event in position
//! order with its `recorded_at` and chain hash (`"type": "event"`), then the personal keys
//! (`"type": "personal_key"`), without which the names and free texts in the events could not
//! be read on the other side. The export is therefore as confidential as the database.
//!
//! [`restore`] and [`import_file`] are the only places in Kiroku where a stored time is taken
//! from outside, and they write only into an empty ledger: in one transaction they check every
//! line (strictly increasing positions, `recorded_at` never decreasing and never in the future,
//! every event readable by this version, every hash equal to the chain recomputed from the
//! events, the file holding what its header announces) and insert events, chain and keys, or
//! nothing at all. A file is read and written a batch at a time inside that transaction, so a
//! ledger of millions of events moves in the memory of one batch; a line found wrong rolls
//! back what was written before it.

use super::chain::{link, GENESIS};
use super::log::{head, read_after, LogEvent};
use super::{now_ms, Backend, StorageError};
use crate::with_pool;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use kiroku_projections::LedgerEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;
use std::io::{BufRead, Write};

/// The `format` of the header line.
pub const FORMAT: &str = "kiroku-log";
/// Version 2 adds the header's `keys`; a file of version 1 (without it) is still read.
pub const VERSION: u32 = 2;
const PAGE: i64 = 2000;
/// Rows per multi-row INSERT (9 parameters each, well below both databases' limits).
const BATCH: usize = 500;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    Header(Header),
    Event(EventLine),
    PersonalKey(KeyLine),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub events: u64,
    pub head_position: i64,
    pub head_hash: String,
    pub exported_at: i64,
    /// How many personal keys follow the events (version 2 on): a file cut among its keys is
    /// refused like one cut among its events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventLine {
    pub position: i64,
    pub recorded_at: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
    pub hash: String,
}

/// A person's key; `key` is `None` once it was destroyed (the person erased).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyLine {
    pub staff_id: String,
    pub key: Option<String>,
    pub created_at: i64,
    pub erased_at: Option<i64>,
}

impl EventLine {
    fn from_log(event: LogEvent, hash: String) -> EventLine {
        EventLine {
            position: event.position,
            recorded_at: event.recorded_at,
            aggregate_type: event.aggregate_type,
            aggregate_id: event.aggregate_id,
            sequence: event.sequence,
            event_type: event.event_type,
            event_version: event.event_version,
            payload: event.payload,
            metadata: event.metadata,
            hash,
        }
    }

    pub fn log_event(&self) -> LogEvent {
        LogEvent {
            position: self.position,
            recorded_at: self.recorded_at,
            aggregate_type: self.aggregate_type.clone(),
            aggregate_id: self.aggregate_id.clone(),
            sequence: self.sequence,
            event_type: self.event_type.clone(),
            event_version: self.event_version.clone(),
            payload: self.payload.clone(),
            metadata: self.metadata.clone(),
            hash: Some(self.hash.clone()),
        }
    }
}

/// A log ready to be restored: what a file holds, or what the demo city built.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogImage {
    pub events: Vec<EventLine>,
    pub keys: Vec<KeyLine>,
}

/// Why a log could not be exported or restored. `Invalid` names the line (1-based) of the file.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("台帳が空ではありません（イベント {events} 件、鍵 {keys} 件）。ログの取込みは空の台帳にだけ行えます")]
    NotEmpty { events: i64, keys: i64 },
    #[error("{line}行目: {message}")]
    Invalid { line: usize, message: String },
    #[error("ファイルを読み書きできません: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sqlx::Error> for BackupError {
    fn from(error: sqlx::Error) -> Self {
        BackupError::Storage(StorageError::Database(error))
    }
}

fn invalid(line: usize, message: impl Into<String>) -> BackupError {
    BackupError::Invalid {
        line,
        message: message.into(),
    }
}

/// Writes the log up to its head as it stands now, then the personal keys.
/// Returns the header it wrote.
pub async fn export(backend: &Backend, out: &mut impl Write) -> Result<Header, BackupError> {
    let last = head(backend).await?;
    let count = with_pool!(backend, pool => {
        let row = sqlx::query("SELECT COUNT(*) FROM events WHERE position <= $1")
            .bind(last)
            .fetch_one(pool)
            .await?;
        row.try_get::<i64, _>(0)?
    });
    let head_hash = with_pool!(backend, pool => {
        let row = sqlx::query("SELECT hash FROM event_chain WHERE position = $1")
            .bind(last)
            .fetch_optional(pool)
            .await?;
        match row {
            Some(row) => row.try_get::<String, _>(0)?,
            None if last == 0 => GENESIS.to_string(),
            None => {
                return Err(BackupError::Storage(StorageError::Corrupt(format!(
                    "position {last} is not sealed"
                ))))
            }
        }
    });
    // Read after the head: a person's key is stored before their first event, so every event
    // up to the head has its key here.
    let keys = read_keys(backend).await?;
    let header = Header {
        format: FORMAT.to_string(),
        version: VERSION,
        keys: Some(keys.len() as u64),
        events: count.max(0) as u64,
        head_position: last,
        head_hash,
        exported_at: now_ms(),
    };
    write_line(out, &Line::Header(header.clone()))?;
    let mut after = 0;
    'pages: loop {
        let page = read_after(backend, after, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for event in page {
            if event.position > last {
                break 'pages;
            }
            after = event.position;
            let hash = event.hash.clone().ok_or_else(|| {
                StorageError::Corrupt(format!("position {} is not sealed", event.position))
            })?;
            write_line(out, &Line::Event(EventLine::from_log(event, hash)))?;
        }
    }
    for key in keys {
        write_line(out, &Line::PersonalKey(key))?;
    }
    out.flush()?;
    Ok(header)
}

/// The whole log and the keys in memory, for a generator that rewrites times before a
/// restore (the demo city). Everything must be sealed.
pub async fn image(backend: &Backend) -> Result<LogImage, BackupError> {
    let mut image = LogImage::default();
    let mut after = 0;
    loop {
        let page = read_after(backend, after, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for event in page {
            after = event.position;
            let hash = event.hash.clone().ok_or_else(|| {
                StorageError::Corrupt(format!("position {} is not sealed", event.position))
            })?;
            image.events.push(EventLine::from_log(event, hash));
        }
    }
    image.keys = read_keys(backend).await?;
    Ok(image)
}

fn write_line(out: &mut impl Write, line: &Line) -> Result<(), BackupError> {
    serde_json::to_writer(&mut *out, line).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}

async fn read_keys(backend: &Backend) -> Result<Vec<KeyLine>, BackupError> {
    with_pool!(backend, pool => {
        let rows = sqlx::query(
            "SELECT staff_id, key, created_at, erased_at FROM personal_keys ORDER BY staff_id",
        )
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|row| {
                let key: Option<Vec<u8>> = row.try_get(1)?;
                Ok(KeyLine {
                    staff_id: row.try_get(0)?,
                    key: key.map(|k| BASE64.encode(k)),
                    created_at: row.try_get(2)?,
                    erased_at: row.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>, BackupError>>()
    })
}

/// One entry of a log being restored, with the line of the file it stands on.
enum Entry {
    Event(usize, EventLine),
    Key(usize, KeyLine),
}

/// Where a restore takes its entries from, one at a time: `None` at the end.
trait Entries {
    fn next_entry(&mut self) -> Result<Option<Entry>, BackupError>;
}

/// The entries of an export file, read line by line: the header first, then events, then
/// keys. Checks the form of each line and, at the end, that the file held exactly what its
/// header announces: a file cut short is refused (among its keys too, from version 2 on).
struct FileEntries<R> {
    lines: std::iter::Enumerate<std::io::Lines<R>>,
    header: Option<Header>,
    events: u64,
    keys: u64,
    /// Position and hash of the last event read.
    last: Option<(i64, String)>,
    in_keys: bool,
    last_line: usize,
}

impl<R: BufRead> FileEntries<R> {
    fn new(input: R) -> Self {
        FileEntries {
            lines: input.lines().enumerate(),
            header: None,
            events: 0,
            keys: 0,
            last: None,
            in_keys: false,
            last_line: 0,
        }
    }

    /// Refuses a file that does not hold what its header announces.
    fn complete(&self) -> Result<(), BackupError> {
        let header = self
            .header
            .as_ref()
            .ok_or_else(|| invalid(1, "空のファイルです"))?;
        let (position, hash) = self
            .last
            .as_ref()
            .map_or((0, GENESIS), |(p, h)| (*p, h.as_str()));
        if self.events == header.events
            && position == header.head_position
            && hash == header.head_hash
            && header.keys.is_none_or(|keys| keys == self.keys)
        {
            return Ok(());
        }
        Err(invalid(
            self.last_line.max(1),
            format!(
                "ヘッダーの内容（イベント {} 件、末尾の位置 {}、鍵 {} 件）とファイルの中身（イベント {} 件、鍵 {} 件）が一致しません。ファイルが途中で切れている可能性があります",
                header.events,
                header.head_position,
                header.keys.map_or("不明".to_string(), |k| k.to_string()),
                self.events,
                self.keys
            ),
        ))
    }
}

impl<R: BufRead> Entries for FileEntries<R> {
    fn next_entry(&mut self) -> Result<Option<Entry>, BackupError> {
        for (index, text) in self.lines.by_ref() {
            let number = index + 1;
            let text = text?;
            self.last_line = number;
            if text.trim().is_empty() {
                continue;
            }
            let line: Line = serde_json::from_str(&text)
                .map_err(|e| invalid(number, format!("ログの行として読めません（{e}）")))?;
            match (line, &self.header) {
                (Line::Header(h), None) if number == 1 => {
                    if h.format != FORMAT || !(1..=VERSION).contains(&h.version) {
                        return Err(invalid(
                            number,
                            format!(
                                "形式 {} 版 {} には対応していません（{FORMAT} 版 1〜{VERSION} のみ）",
                                h.format, h.version
                            ),
                        ));
                    }
                    if h.version >= 2 && h.keys.is_none() {
                        return Err(invalid(number, "ヘッダーに鍵の数（keys）がありません"));
                    }
                    self.header = Some(h);
                }
                (_, None) => return Err(invalid(number, "1行目はヘッダーでなければなりません")),
                (Line::Header(_), Some(_)) => {
                    return Err(invalid(number, "ヘッダーが2つあります"));
                }
                (Line::Event(event), Some(header)) => {
                    if self.in_keys {
                        return Err(invalid(number, "鍵の行の後にイベントがあります"));
                    }
                    // Refused at once rather than written and rolled back at the end.
                    if self.events >= header.events || event.position > header.head_position {
                        return Err(invalid(
                            number,
                            format!(
                                "ヘッダーの内容（イベント {} 件、末尾の位置 {}）より先のイベントがあります",
                                header.events, header.head_position
                            ),
                        ));
                    }
                    self.events += 1;
                    self.last = Some((event.position, event.hash.clone()));
                    return Ok(Some(Entry::Event(number, event)));
                }
                (Line::PersonalKey(key), Some(_)) => {
                    self.in_keys = true;
                    self.keys += 1;
                    return Ok(Some(Entry::Key(number, key)));
                }
            }
        }
        self.complete()?;
        Ok(None)
    }
}

/// The entries of an image in memory, numbered as they would stand in an export file (the
/// first event on line 2).
struct ImageEntries {
    events: std::vec::IntoIter<EventLine>,
    keys: std::vec::IntoIter<KeyLine>,
    line: usize,
}

impl ImageEntries {
    fn new(image: LogImage) -> Self {
        ImageEntries {
            events: image.events.into_iter(),
            keys: image.keys.into_iter(),
            line: 1,
        }
    }
}

impl Entries for ImageEntries {
    fn next_entry(&mut self) -> Result<Option<Entry>, BackupError> {
        self.line += 1;
        Ok(match self.events.next() {
            Some(event) => Some(Entry::Event(self.line, event)),
            None => self.keys.next().map(|key| Entry::Key(self.line, key)),
        })
    }
}

/// What a restore refuses, checked one line at a time: strictly increasing positions from 1,
/// `recorded_at` never decreasing and never in the future, every event readable by this
/// version, every hash the chain recomputed from the events, every key well formed.
struct Checker {
    now: i64,
    /// Position and `recorded_at` of the event before.
    previous: Option<(i64, i64)>,
    hash: String,
}

impl Checker {
    fn new() -> Checker {
        Checker {
            now: now_ms(),
            previous: None,
            hash: GENESIS.to_string(),
        }
    }

    fn event(&mut self, line: usize, event: &EventLine) -> Result<(), BackupError> {
        match self.previous {
            Some((position, recorded_at)) => {
                if event.position <= position {
                    return Err(invalid(line, "位置が前の行より大きくありません"));
                }
                if event.recorded_at < recorded_at {
                    return Err(invalid(line, "記録日時が前の行より前になっています"));
                }
            }
            None if event.position < 1 => {
                return Err(invalid(line, "位置は1以上でなければなりません"));
            }
            None => {}
        }
        if event.recorded_at > self.now {
            return Err(invalid(line, "記録日時が未来になっています"));
        }
        LedgerEvent::parse(&event.aggregate_type, &event.payload).map_err(|e| {
            invalid(
                line,
                format!(
                    "このバージョンでは読めないイベントです（{} {}: {e}）",
                    event.aggregate_type, event.event_type
                ),
            )
        })?;
        let expected = link(&self.hash, &event.log_event());
        if expected != event.hash {
            return Err(invalid(
                line,
                format!(
                    "位置 {} のハッシュがイベントの内容と一致しません（改ざんまたは破損）",
                    event.position
                ),
            ));
        }
        self.hash = expected;
        self.previous = Some((event.position, event.recorded_at));
        Ok(())
    }

    fn key(line: usize, key: &KeyLine) -> Result<(), BackupError> {
        if let Some(encoded) = &key.key {
            let bytes = BASE64
                .decode(encoded)
                .map_err(|_| invalid(line, "鍵が base64 ではありません"))?;
            // Wrapped under the master key (72 bytes), or from an export made before keys
            // were wrapped (32 bytes; wrapped when the ledger next opens).
            if bytes.len() != 72 && bytes.len() != 32 {
                return Err(invalid(
                    line,
                    "鍵の長さが正しくありません（72 バイト、旧形式は 32 バイト）",
                ));
            }
        }
        Ok(())
    }
}

/// Checks a log image line by line without touching the database: what [`restore`] refuses.
/// `first_line` is the file line of the first event (2 in an export file).
#[cfg(test)]
fn check(image: &LogImage, first_line: usize) -> Result<(), BackupError> {
    let mut checker = Checker::new();
    for (i, event) in image.events.iter().enumerate() {
        checker.event(first_line + i, event)?;
    }
    let key_line = first_line + image.events.len();
    for (i, key) in image.keys.iter().enumerate() {
        Checker::key(key_line + i, key)?;
    }
    Ok(())
}

/// What [`restore`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub events: usize,
    pub keys: usize,
    pub head_position: i64,
    pub head_hash: String,
}

/// Restores `image` into an empty ledger, all or nothing (see the module docs).
pub async fn restore(backend: &Backend, image: LogImage) -> Result<Restored, BackupError> {
    restore_from(backend, &mut ImageEntries::new(image)).await
}

/// Reads an export file and restores it into an empty ledger, all or nothing, a batch at a
/// time (see the module docs).
pub async fn import_file(
    backend: &Backend,
    path: &std::path::Path,
) -> Result<Restored, BackupError> {
    let file = std::fs::File::open(path)?;
    restore_from(
        backend,
        &mut FileEntries::new(std::io::BufReader::new(file)),
    )
    .await
}

async fn restore_from(
    backend: &Backend,
    entries: &mut (impl Entries + Send),
) -> Result<Restored, BackupError> {
    match backend {
        Backend::Sqlite(pool) => {
            // A restore runs before serving (the CLI, the demo's start): no caller drops it.
            #[allow(clippy::disallowed_methods)]
            let mut tx = pool.begin().await?;
            // The count opens the read snapshot; the first insert then fails (busy) rather
            // than write over anything another process committed after it.
            let (events, keys) = counts_in::<sqlx::Sqlite>(&mut tx).await?;
            if events > 0 || keys > 0 {
                return Err(BackupError::NotEmpty { events, keys });
            }
            match write_entries::<sqlx::Sqlite>(&mut tx, entries, "").await {
                Ok(restored) => {
                    tx.commit().await?;
                    Ok(restored)
                }
                Err(error) => Err(rolled_back(tx, error).await),
            }
        }
        Backend::Postgres(pool) => {
            #[allow(clippy::disallowed_methods)]
            let mut tx = pool.begin().await?;
            // No appender may draw a position while the log is restored; the position
            // triggers are switched off for this transaction only (DDL is transactional here).
            sqlx::query("LOCK TABLE events, event_chain, personal_keys IN ACCESS EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
            let (events, keys) = counts_in::<sqlx::Postgres>(&mut tx).await?;
            if events > 0 || keys > 0 {
                return Err(BackupError::NotEmpty { events, keys });
            }
            sqlx::query(
                "ALTER TABLE events DISABLE TRIGGER events_begin_append, \
                 DISABLE TRIGGER events_assigned_only",
            )
            .execute(&mut *tx)
            .await?;
            let restored = match write_entries::<sqlx::Postgres>(&mut tx, entries, "::json").await {
                Ok(restored) => restored,
                Err(error) => return Err(rolled_back(tx, error).await),
            };
            sqlx::query(
                "ALTER TABLE events ENABLE TRIGGER events_begin_append, \
                 ENABLE TRIGGER events_assigned_only",
            )
            .execute(&mut *tx)
            .await?;
            if restored.events > 0 {
                sqlx::query("SELECT setval('events_position_seq', $1)")
                    .bind(restored.head_position)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(restored)
        }
    }
}

/// Rolls `tx` back at once (not when the pool takes the connection back), keeping `error`:
/// what a refused restore wrote before the line it was refused at goes.
async fn rolled_back<DB: sqlx::Database>(
    tx: sqlx::Transaction<'_, DB>,
    error: BackupError,
) -> BackupError {
    if let Err(rollback) = tx.rollback().await {
        tracing::warn!(%rollback, "rolling back a refused log import");
    }
    error
}

/// Checks and inserts the entries, [`BATCH`] events at a time, then the keys.
async fn write_entries<DB>(
    conn: &mut DB::Connection,
    entries: &mut (impl Entries + Send),
    json: &str,
) -> Result<Restored, BackupError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<Vec<u8>>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut checker = Checker::new();
    let mut batch = Vec::with_capacity(BATCH);
    let mut keys = Vec::new();
    let mut restored = Restored {
        events: 0,
        keys: 0,
        head_position: 0,
        head_hash: GENESIS.to_string(),
    };
    while let Some(entry) = entries.next_entry()? {
        match entry {
            Entry::Event(line, event) => {
                checker.event(line, &event)?;
                restored.events += 1;
                restored.head_position = event.position;
                restored.head_hash.clone_from(&event.hash);
                batch.push(event);
                if batch.len() == BATCH {
                    insert_events::<DB>(conn, &batch, json).await?;
                    batch.clear();
                }
            }
            Entry::Key(line, key) => {
                Checker::key(line, &key)?;
                keys.push(key);
            }
        }
    }
    if !batch.is_empty() {
        insert_events::<DB>(conn, &batch, json).await?;
    }
    insert_keys::<DB>(conn, &keys).await?;
    restored.keys = keys.len();
    Ok(restored)
}

async fn counts_in<DB>(conn: &mut DB::Connection) -> Result<(i64, i64), BackupError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'r> i64: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    // Events or chain entries (a chain without its events is not empty either), and keys.
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM event_chain), \
         (SELECT COUNT(*) FROM personal_keys)",
    )
    .fetch_one(&mut *conn)
    .await?;
    let events: i64 = row.try_get(0)?;
    let chain: i64 = row.try_get(1)?;
    Ok((events.max(chain), row.try_get(2)?))
}

/// Inserts the events of `chunk` and their links; `json` is the cast a JSON parameter needs
/// (`::json`).
async fn insert_events<DB>(
    conn: &mut DB::Connection,
    chunk: &[EventLine],
    json: &str,
) -> Result<(), BackupError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<Vec<u8>>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let rows: Vec<String> = (0..chunk.len())
        .map(|i| {
            let p = |n: usize| format!("${}", i * 9 + n);
            format!(
                "({}, {}, {}, {}, {}, {}, {}, {}{json}, {}{json})",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6),
                p(7),
                p(8),
                p(9)
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO events (position, recorded_at, aggregate_type, aggregate_id, sequence, \
         event_type, event_version, payload, metadata) VALUES {}",
        rows.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for e in chunk {
        query = query
            .bind(e.position)
            .bind(e.recorded_at)
            .bind(e.aggregate_type.clone())
            .bind(e.aggregate_id.clone())
            .bind(e.sequence)
            .bind(e.event_type.clone())
            .bind(e.event_version.clone())
            .bind(e.payload.to_string())
            .bind(e.metadata.to_string());
    }
    query.execute(&mut *conn).await?;
    let links: Vec<String> = (0..chunk.len())
        .map(|i| format!("(${}, ${})", i * 2 + 1, i * 2 + 2))
        .collect();
    let sql = format!(
        "INSERT INTO event_chain (position, hash) VALUES {}",
        links.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for e in chunk {
        query = query.bind(e.position).bind(e.hash.clone());
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// Inserts the personal keys.
async fn insert_keys<DB>(conn: &mut DB::Connection, keys: &[KeyLine]) -> Result<(), BackupError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<Vec<u8>>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for key in keys {
        let bytes = match &key.key {
            Some(encoded) => Some(BASE64.decode(encoded).map_err(|_| {
                BackupError::Storage(StorageError::Corrupt(format!("key of {}", key.staff_id)))
            })?),
            None => None,
        };
        sqlx::query(
            "INSERT INTO personal_keys (staff_id, key, created_at, erased_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(key.staff_id.clone())
        .bind(bytes)
        .bind(key.created_at)
        .bind(key.erased_at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Recomputes the chain of `events` from genesis after their `recorded_at` were set by a
/// generator (the demo city): the hashes cover the times, so they must follow them.
pub fn rechain(events: &mut [EventLine]) {
    let mut previous = GENESIS.to_string();
    for event in events.iter_mut() {
        previous = link(&previous, &event.log_event());
        event.hash = previous.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    fn chained(times: &[i64]) -> LogImage {
        let mut events: Vec<EventLine> = times
            .iter()
            .enumerate()
            .map(|(i, t)| EventLine {
                position: i as i64 + 1,
                recorded_at: *t,
                aggregate_type: "ComplianceIncident".into(),
                aggregate_id: format!("i{i}"),
                sequence: 1,
                event_type: "ComplianceIncidentWithdrawn".into(),
                event_version: "1".into(),
                payload: json!({"ComplianceIncidentWithdrawn": {
                    "incident_id": "00000000-0000-0000-0000-000000000001", "reason": "重複"}}),
                metadata: json!({"actor": "人事課"}),
                hash: String::new(),
            })
            .collect();
        rechain(&mut events);
        LogImage {
            events,
            keys: Vec::new(),
        }
    }

    fn refusal(image: &LogImage) -> String {
        match check(image, 2) {
            Err(BackupError::Invalid { line, message }) => format!("{line}: {message}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn file(dir: &std::path::Path, name: &str, image: &LogImage, head_hash: &str) -> PathBuf {
        let header = Header {
            format: FORMAT.into(),
            version: VERSION,
            events: image.events.len() as u64,
            head_position: image.events.len() as i64,
            head_hash: head_hash.into(),
            exported_at: now_ms(),
            keys: Some(0),
        };
        let mut bytes = Vec::new();
        write_line(&mut bytes, &Line::Header(header)).expect("header");
        for event in &image.events {
            write_line(&mut bytes, &Line::Event(event.clone())).expect("event");
        }
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write");
        path
    }

    /// A file is written a batch at a time inside one transaction: an event refused after two
    /// batches went in (line 1,100 of 1,201) leaves the ledger empty, and the file as it was
    /// restores whole.
    #[tokio::test]
    async fn a_refusal_after_batches_were_written_leaves_the_ledger_empty() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
        let backend = Backend::connect(&url).await.expect("ledger");
        let image = chained(&[1_000; 1_200]);
        let head = image.events[1_199].hash.clone();
        let good = file(dir.path(), "good.ndjson", &image, &head);
        let mut altered = image.clone();
        altered.events[1_098].metadata = json!({"actor": "誰か"});
        let bad = file(dir.path(), "bad.ndjson", &altered, &head);

        match import_file(&backend, &bad).await {
            Err(BackupError::Invalid { line, message }) => {
                assert_eq!(line, 1_100);
                assert!(message.contains("ハッシュ"), "{message}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(super::super::log::count(&backend).await.expect("count"), 0);

        let restored = import_file(&backend, &good).await.expect("restored");
        assert_eq!(restored.events, 1_200);
        assert_eq!(restored.head_hash, head);
        assert_eq!(
            super::super::log::count(&backend).await.expect("count"),
            1_200
        );
    }

    /// An export of version 1 (no count of keys in its header) is still read; one of version 2
    /// without the count is refused.
    #[tokio::test]
    async fn a_version_1_export_is_still_read() {
        let dir = tempfile::tempdir().expect("dir");
        let image = chained(&[1_000, 2_000]);
        let head = image.events[1].hash.clone();
        let path = file(dir.path(), "v2.ndjson", &image, &head);
        let text = std::fs::read_to_string(&path).expect("read");
        let (first, rest) = text.split_once('\n').expect("a header line");
        let mut header: Value = serde_json::from_str(first).expect("header");
        header["version"] = json!(1);
        header.as_object_mut().expect("object").remove("keys");
        let v1 = dir.path().join("v1.ndjson");
        std::fs::write(&v1, format!("{header}\n{rest}")).expect("write");
        header["version"] = json!(2);
        let v2 = dir.path().join("v2-without-keys.ndjson");
        std::fs::write(&v2, format!("{header}\n{rest}")).expect("write");

        let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
        let backend = Backend::connect(&url).await.expect("ledger");
        match import_file(&backend, &v2).await {
            Err(BackupError::Invalid { line: 1, message }) => {
                assert!(message.contains("鍵の数"), "{message}");
            }
            other => panic!("expected a refusal of line 1, got {other:?}"),
        }
        let restored = import_file(&backend, &v1).await.expect("a version 1 file");
        assert_eq!(restored.events, 2);
    }

    #[test]
    fn a_time_in_the_future_is_refused_even_when_rechained() {
        let future = now_ms() + 3_600_000;
        assert!(refusal(&chained(&[1_000, future])).starts_with("3: 記録日時が未来"));
    }

    #[test]
    fn times_that_go_backwards_are_refused() {
        assert!(refusal(&chained(&[2_000, 1_000])).starts_with("3: 記録日時が前の行より前"));
    }

    #[test]
    fn an_event_this_version_cannot_read_is_refused() {
        let mut image = chained(&[1_000]);
        image.events[0].aggregate_type = "Unknown".into();
        rechain(&mut image.events);
        assert!(refusal(&image).contains("このバージョンでは読めない"));
    }

    #[test]
    fn a_rechained_log_passes_and_an_altered_one_names_its_line() {
        let mut image = chained(&[1_000, 2_000, 3_000]);
        assert!(check(&image, 2).is_ok());
        image.events[1].metadata = json!({"actor": "誰か"});
        assert!(refusal(&image).starts_with("3: 位置 2 のハッシュ"));
    }
}
