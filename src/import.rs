//! Bulk import of attendance sheets (研修受講実績), as HR departments keep them in Excel:
//! CSV in UTF-8 or Shift_JIS (read as Windows-31J / CP932, so 髙, ①, Ⅲ and ㎝ survive), columns
//! `employee_no,course_code,session_starts_on,completed_on,understanding`.
//!
//! All or nothing: every row is read here (columns, dates, the session it names), then decided
//! by the session itself (`TrainingSession::decide`, in file order, nothing stored), so the
//! errors by line number are the session's own rules in its own words; any problem rejects the
//! whole file. Then each session's rows are recorded by one command
//! (one atomic commit per session), while the importer holds the import lock.

use crate::application::policy::Action;
use crate::application::{Actor, AppError, Command, Service};
use crate::ledger::{CommandError, Ledger};
use crate::storage::aggregates::with_preloaded;
use crate::storage::repository::streaming;
use crate::storage::StorageError;
use cqrs_es::persist::EventStoreAggregateContext;
use cqrs_es::Aggregate;
use kiroku_domain::session::{Attendance, SessionCommand, TrainingSession};
use kiroku_domain::staff::staff_id_of;
use kiroku_domain::values::{Date, EmployeeNo, Understanding};
use serde::Serialize;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tokio::sync::{mpsc, Mutex};
use uuid::Uuid;

pub const COLUMNS: [&str; 5] = [
    "employee_no",
    "course_code",
    "session_starts_on",
    "completed_on",
    "understanding",
];

/// The same columns as a Japanese sheet heads them.
pub const COLUMNS_JA: [&str; 5] = ["職員番号", "研修コード", "開催日", "修了日", "理解度"];

/// A date as Excel in Japan writes it (`2024/3/31`, `2024/03/31`) or ISO 8601 (`2024-03-31`).
pub fn parse_date(text: &str) -> Option<Date> {
    ["%Y-%m-%d", "%Y/%m/%d"]
        .iter()
        .find_map(|format| Date::parse_from_str(text.trim(), format).ok())
}

/// The text with every line ending as `\n`: Excel saves CSV with CRLF, old Mac tools with a
/// bare CR; the line numbers in errors must be the ones Excel shows either way.
fn unify_line_endings(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// At most this many problems are listed for one file (then one line says how many more).
pub const MAX_REPORTED_ERRORS: usize = 1000;

/// One import at a time, so that no two imports validate against the same state.
static IMPORTING: Mutex<()> = Mutex::const_new(());

/// When the last import ended, for [`writing_sheets`].
static LAST_ENDED: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);

/// How long after an import the next one counts as part of the same series.
const SERIES_GAP: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether an attendance sheet is being imported, or one ended so lately that the next of a
/// series may be on its way: the serving checkpoint waits meanwhile (see `app.rs`), rather
/// than taking a core and the database from the sheets.
pub fn writing_sheets() -> bool {
    let ended_lately = LAST_ENDED
        .lock()
        .ok()
        .and_then(|ended| *ended)
        .is_some_and(|ended| ended.elapsed() < SERIES_GAP);
    IMPORTING.try_lock().is_err() || ended_lately
}

/// Notes, when dropped, that an import ended (whichever way).
struct Ending;

impl Drop for Ending {
    fn drop(&mut self) {
        if let Ok(mut ended) = LAST_ENDED.lock() {
            *ended = Some(std::time::Instant::now());
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    /// Windows-31J (CP932), what Excel writes as "CSV (コンマ区切り)" on Japanese Windows.
    ShiftJis,
}

impl Encoding {
    /// Reads a charset name (`utf-8`, `shift_jis`, `sjis`, `windows-31j`, `cp932`).
    pub fn parse(name: &str) -> Option<Encoding> {
        match name.trim().trim_matches('"').to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Some(Encoding::Utf8),
            "shift_jis" | "shift-jis" | "sjis" | "windows-31j" | "cp932" | "ms932" => {
                Some(Encoding::ShiftJis)
            }
            _ => None,
        }
    }
}

/// A problem with one line of the file (line 1 is the header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub line: u64,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the file was rejected: {} problem(s), nothing was recorded", .0.len())]
    Rejected(Vec<RowError>),
    #[error("recording failed: {0}")]
    Command(#[from] AppError),
    #[error("storage failed: {0}")]
    Storage(#[from] StorageError),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportSummary {
    pub rows: usize,
    pub sessions: usize,
    pub events: usize,
    pub recorded_at: Option<i64>,
    pub position: Option<i64>,
}

fn rejected(line: u64, message: impl Into<String>) -> ImportError {
    ImportError::Rejected(vec![RowError {
        line,
        message: message.into(),
    }])
}

impl Encoding {
    /// The encoding of a file whose sender did not say: UTF-8 when it reads as UTF-8 (with or
    /// without BOM), else Shift_JIS (CP932), as Excel on Japanese Windows saves CSV.
    pub fn guess(bytes: &[u8]) -> Encoding {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        if std::str::from_utf8(bytes).is_ok() {
            Encoding::Utf8
        } else {
            Encoding::ShiftJis
        }
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::ShiftJis => "Shift_JIS（CP932）",
        }
    }
}

/// One valid row as the preview shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewRow {
    pub line: u64,
    pub session_id: Uuid,
    pub staff_id: Uuid,
    pub completed_on: Date,
    pub understanding: Option<Understanding>,
}

/// Checks a file as the import will, without recording anything: the rows it would record,
/// or every problem by line.
pub async fn preview(ledger: &Ledger, text: &str) -> Result<Vec<PreviewRow>, ImportError> {
    ledger.projector.catch_up().await?;
    let (rows, _) = validate(ledger, text).await?;
    Ok(rows
        .into_iter()
        .map(|row| PreviewRow {
            line: row.line,
            session_id: row.session_id,
            staff_id: row.attendance.staff_id,
            completed_on: row.attendance.completed_on,
            understanding: row.attendance.understanding,
        })
        .collect())
}

/// Turns the file's bytes into text; undecodable bytes reject the file.
pub fn decode(bytes: &[u8], encoding: Encoding) -> Result<String, ImportError> {
    match encoding {
        Encoding::Utf8 => {
            let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            String::from_utf8(bytes.to_vec()).map_err(|_| {
                rejected(
                    1,
                    "UTF-8 として読めません（Shift_JIS の場合は encoding を指定してください）",
                )
            })
        }
        Encoding::ShiftJis => {
            let (text, _, had_errors) = encoding_rs::SHIFT_JIS.decode(bytes);
            if had_errors {
                Err(rejected(
                    1,
                    "Shift_JIS（CP932）として読めない文字があります",
                ))
            } else {
                Ok(text.into_owned())
            }
        }
    }
}

struct Row {
    line: u64,
    employee_no: String,
    session_id: Uuid,
    attendance: Attendance,
}

/// The sessions of a sheet as its rows were checked against them, by id.
type Sessions = HashMap<String, EventStoreAggregateContext<TrainingSession>>;

/// Checks every row of `text`: its fields here, then against the session's own rules (the
/// aggregate decides each row in file order, as the import would record them). Returns the
/// rows, and the sessions they name as they were read for the checks (the import's commands
/// decide on the same states), or every problem found, by line.
async fn validate(ledger: &Ledger, text: &str) -> Result<(Vec<Row>, Sessions), ImportError> {
    let text = unify_line_endings(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| rejected(1, format!("見出し行を読めません: {e}")))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
        .collect();
    if headers != COLUMNS && headers != COLUMNS_JA {
        return Err(rejected(
            1,
            format!(
                "見出し行は {} または {} としてください",
                COLUMNS_JA.join(","),
                COLUMNS.join(",")
            ),
        ));
    }
    // The sessions by (course code, first day), looked up once for the whole file.
    let mut sessions_by_day: HashMap<(String, Date), Vec<Uuid>> = HashMap::new();
    ledger.projector.read(|h| {
        for s in h.sessions.values() {
            sessions_by_day
                .entry((
                    s.schedule.course_code.as_str().to_string(),
                    s.schedule.starts_on,
                ))
                .or_default()
                .push(s.session_id);
        }
    })?;
    let mut errors = Vec::new();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                errors.push(RowError {
                    line,
                    message: format!("行を読めません: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let mut problem = |message: String| errors.push(RowError { line, message });
        if record.len() != COLUMNS.len() {
            problem(format!("列の数が {} ではありません", COLUMNS.len()));
            continue;
        }
        let field = |i: usize| record.get(i).unwrap_or("");
        let employee_no = match EmployeeNo::parse(field(0)) {
            Ok(no) => no,
            Err(_) => {
                problem(format!("職員番号 {:?} が不正です", field(0)));
                continue;
            }
        };
        let date = |i: usize, name: &str| -> Result<Date, String> {
            parse_date(field(i)).ok_or_else(|| {
                format!(
                    "{name} {:?} は日付ではありません（2024/3/31 または 2024-03-31 の形で入力してください）",
                    field(i)
                )
            })
        };
        let (starts_on, completed_on) = match (date(2, "開催日"), date(3, "修了日")) {
            (Ok(s), Ok(c)) => (s, c),
            (Err(m), _) | (_, Err(m)) => {
                problem(m);
                continue;
            }
        };
        let understanding = match field(4) {
            "" => None,
            text => match text
                .parse::<u8>()
                .ok()
                .and_then(|n| Understanding::try_from(n).ok())
            {
                Some(u) => Some(u),
                None => {
                    problem(format!("理解度 {text:?} は 1〜5 で入力してください"));
                    continue;
                }
            },
        };
        let staff_id = staff_id_of(&employee_no);
        let course_code = field(1).to_string();
        let sessions = sessions_by_day
            .get(&(course_code.clone(), starts_on))
            .map_or(&[][..], Vec::as_slice);
        let session_id = match sessions {
            [one] => *one,
            [] => {
                problem(format!(
                    "研修 {course_code} の {starts_on} 開催回が見つかりません"
                ));
                continue;
            }
            _ => {
                problem(format!(
                    "研修 {course_code} の {starts_on} 開催回が複数あります"
                ));
                continue;
            }
        };
        rows.push(Row {
            line,
            employee_no: employee_no.as_str().to_string(),
            session_id,
            attendance: Attendance {
                staff_id,
                // Filled in below, for every row under one read of the read models.
                staff_registered: false,
                completed_on,
                understanding,
            },
        });
    }
    ledger.projector.read(|h| {
        for row in &mut rows {
            row.attendance.staff_registered = h.staff.contains_key(&row.attendance.staff_id);
        }
    })?;
    // The session's own rules, row by row in file order (a second row for the same person
    // meets a session where the first one is already recorded), on the sessions read together.
    let ids: Vec<String> = rows
        .iter()
        .map(|row| row.session_id)
        .collect::<BTreeSet<Uuid>>()
        .iter()
        .map(Uuid::to_string)
        .collect();
    let sessions = ledger.load_many::<TrainingSession>(&ids).await?;
    let mut decided: HashMap<Uuid, TrainingSession> = HashMap::with_capacity(sessions.len());
    for row in &rows {
        let session = match decided.entry(row.session_id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let Some(loaded) = sessions.get(&row.session_id.to_string()) else {
                    return Err(ImportError::Storage(StorageError::Corrupt(format!(
                        "session {} was not read",
                        row.session_id
                    ))));
                };
                e.insert(loaded.aggregate.clone())
            }
        };
        let a = &row.attendance;
        let command = SessionCommand::RecordAttendance {
            staff_id: a.staff_id,
            staff_registered: a.staff_registered,
            completed_on: a.completed_on,
            understanding: a.understanding,
        };
        match session.decide(command) {
            Ok(events) => events.into_iter().for_each(|e| session.apply(e)),
            Err(refusal) => errors.push(RowError {
                line: row.line,
                message: format!("職員番号 {}：{refusal}", row.employee_no),
            }),
        }
    }
    errors.sort_by_key(|e| e.line);
    if errors.len() > MAX_REPORTED_ERRORS {
        // A file of bad rows gets its first problems and a count, not a list as long as itself.
        let more = errors.len() - MAX_REPORTED_ERRORS;
        errors.truncate(MAX_REPORTED_ERRORS);
        let line = errors.last().map(|e| e.line).unwrap_or(0);
        errors.push(RowError {
            line,
            message: format!("{line} 行目より後にも {more} 件の問題があります（最初の {MAX_REPORTED_ERRORS} 件を示しました）"),
        });
    }
    if !errors.is_empty() {
        return Err(ImportError::Rejected(errors));
    }
    if rows.is_empty() {
        return Err(rejected(2, "取り込む行がありません"));
    }
    Ok((rows, sessions))
}

/// Imports an attendance sheet. `progress` is told how many rows are recorded so far.
pub async fn import_attendance(
    ledger: &Ledger,
    text: &str,
    actor: &Actor<'_>,
    progress: impl Fn(usize, usize),
) -> Result<ImportSummary, ImportError> {
    let service = Service::new(ledger);
    service.require(actor.principal, Action::Administer)?;
    let _one_at_a_time = IMPORTING.lock().await;
    // Dropped before the lock (declared after it): no moment looks like no import at all.
    let _ending = Ending;
    let started = std::time::Instant::now();
    ledger.projector.catch_up().await?;
    let (rows, sessions) = validate(ledger, text).await?;
    let validated = started.elapsed();
    let total = rows.len();
    let mut by_session: BTreeMap<Uuid, Vec<Row>> = BTreeMap::new();
    for row in rows {
        by_session.entry(row.session_id).or_default().push(row);
    }
    let mut summary = ImportSummary {
        rows: total,
        sessions: by_session.len(),
        events: 0,
        recorded_at: None,
        position: None,
    };
    // Every session's rows are one command; the commands are held back and written in one
    // transaction, so the whole file is recorded or nothing is (another change to one of its
    // sessions in between refuses the whole import, which can then be retried). Each
    // command's events go to the log's writer as soon as it is decided: on PostgreSQL the
    // server inserts them while the next sessions are decided, and nothing is committed
    // before the last one is.
    let mut done = 0;
    let (parts, stream) = mpsc::unbounded_channel();
    let deciding = streaming(
        parts,
        with_preloaded(sessions, async {
            for (session_id, rows) in by_session {
                let count = rows.len();
                let first_line = rows.first().map(|r| r.line).unwrap_or(0);
                let command = SessionCommand::RecordAttendances(
                    rows.into_iter().map(|r| r.attendance).collect(),
                );
                let command = Command::Session {
                    session_id,
                    command,
                };
                service
                    .execute(actor, command)
                    .await
                    .map_err(|error| match error {
                        AppError::Command(CommandError::Refused { message, .. }) => {
                            ImportError::Rejected(vec![RowError {
                                line: first_line,
                                message,
                            }])
                        }
                        other => ImportError::Command(other),
                    })?;
                done += count;
                progress(done, total);
            }
            Ok::<(), ImportError>(())
        }),
    );
    let (decided, committed) = tokio::join!(
        async {
            let decided = deciding.await;
            (decided, started.elapsed())
        },
        ledger.commit_streamed(stream)
    );
    let (decided, executed) = decided;
    let appended = match (decided, committed) {
        // A command refused, or one that could not be decided: the commit was abandoned.
        (Err(error), _) => return Err(error),
        (Ok(()), Err(error)) => return Err(ImportError::Command(AppError::Command(error))),
        (Ok(()), Ok(appended)) => appended,
    };
    summary.events = appended.len();
    tracing::debug!(
        rows = total,
        validating = validated.as_secs_f64(),
        deciding = (executed - validated).as_secs_f64(),
        committing = (started.elapsed() - executed).as_secs_f64(),
        "imported"
    );
    if let Some(last) = appended.last() {
        summary.recorded_at = Some(last.recorded_at);
        summary.position = Some(last.position);
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_of_sheets_keeps_the_checkpoint_waiting_for_a_moment_after_each() {
        drop(Ending);
        assert!(
            writing_sheets(),
            "the next sheet of a series may be on its way"
        );
        let long_ago = std::time::Instant::now()
            .checked_sub(SERIES_GAP + std::time::Duration::from_secs(1))
            .expect("an instant in the past");
        *LAST_ENDED.lock().expect("lock") = Some(long_ago);
        assert!(!writing_sheets(), "the series has ended");
    }
}
