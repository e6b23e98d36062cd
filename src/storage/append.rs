//! Group commit: the one way events enter the log.
//!
//! Every command's events go to one appender task per ledger, which writes the commands that
//! arrived together in one transaction: their events in one multi-row insert, the snapshots
//! that are due, and the chain links that seal them. The database still orders positions by
//! commit (the PostgreSQL insert trigger's lock, SQLite's single writer), so a second process
//! appending to the same ledger stays correct; but each lock is now held once per batch, not
//! once per command, and one fsync covers the batch.
//!
//! Nothing is read back: the insert returns each event as the database stored it (PostgreSQL
//! rewrites JSON), the links are computed from that, and the committed batch is handed to the
//! projector before any of its commands is answered, so a caller reads its own writes without
//! another query.
//!
//! Several commands can also be one job ([`Appender::append_all`]) and commit together or
//! not at all; an import's sessions are such a job whose parts arrive while it is written
//! ([`Appender::append_streamed`]).
//!
//! When a batch fails for a reason that may belong to one command (another writer changed an
//! aggregate first, a constraint), its commands are retried one transaction each, so one
//! command's refusal never refuses its neighbours. When the database is out of reach, every
//! command of the batch gets that answer, and so do the commands queued while the batch
//! waited for it.
//!
//! A command may also come unconfirmed ([`Confirm`]): decided on what this process keeps,
//! with a token it did not read for this request. Its batch then asks the database, in the
//! statement that appends it (PostgreSQL's `append_sealed`, migration 0013), that no other
//! process has appended since and that the token still stands; if not, nothing of the batch
//! is written and those commands hear [`Failure::Unconfirmed`], the others are written
//! without them.

use super::chain::{self, link};
use super::copy::{self, has_float};
use super::direct;
use super::log::{decode, LogEvent};
use super::{Backend, StorageError};
use crate::with_pool;
use cqrs_es::persist::SerializedEvent;
use serde_json::Value;
use sqlx::{QueryBuilder, Row};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// A first snapshot (`current_snapshot` 1) is written only when the aggregate was loaded
/// without one: it had none, or one this version cannot read (cqrs-es then replays every
/// event). That older row is deleted first, so that an aggregate never keeps two snapshots
/// (the table's key includes `last_sequence`) and every reader finds the one it can read.
const FORGET_SNAPSHOTS: &str =
    "DELETE FROM snapshots WHERE aggregate_type = $1 AND aggregate_id = $2";

/// SQLite's extended codes for a unique or primary-key violation: another writer took the
/// aggregate's next sequence first (PostgreSQL's is 23505).
const SQLITE_UNIQUE: [i32; 2] = [2067, 1555];

/// Most commands written in one transaction.
const MAX_BATCH: usize = 128;
/// Most events in one insert statement (PostgreSQL allows 65,535 parameters, SQLite 32,766;
/// an event takes 7).
const ROWS_PER_INSERT: usize = 1000;
/// How many times the appender yields, at most, for commands to join a batch smaller than
/// the last one (see [`run`]).
const LINGER_TURNS: usize = 4;
/// Commands waiting for the appender before senders wait too.
const QUEUE: usize = 4096;

/// A snapshot due with a command: (aggregate id, state, the snapshot's number).
pub type SnapshotUpdate = (String, Value, usize);

/// Called with every committed batch before its commands are answered: the position before
/// the batch and the batch's events, sealed, in position order.
pub type OnCommit = Arc<dyn Fn(i64, &[LogEvent]) + Send + Sync>;

/// Why a command's events were not appended.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    #[error("another command changed the aggregate first")]
    Conflict,
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Storage(String),
    /// The command's [`Confirm`] did not hold: another process appended since what it was
    /// decided on, or its token was revoked. Nothing was written; decide it again the long way.
    #[error("the command was decided on a state or a token the database did not confirm")]
    Unconfirmed,
}

/// What an unconfirmed command asks of the commit that appends it: that no other process has
/// appended since `after` (the log's head it was decided at, the last event this appender had
/// written then), and that the token whose SHA-256 is `token` is still known and not revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub token: String,
    pub after: i64,
}

/// SQLSTATEs of `append_sealed` (migration 0013) when a batch's [`Confirm`]s do not hold.
const UNCONFIRMED: [&str; 2] = ["KR001", "KR002"];

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        let code = error.as_database_error().and_then(|e| e.code());
        if code
            .as_deref()
            .is_some_and(|code| UNCONFIRMED.contains(&code))
        {
            return Failure::Unconfirmed;
        }
        let unique = code.is_some_and(|code| {
            code == "23505"
                || code
                    .parse::<i32>()
                    .is_ok_and(|code| SQLITE_UNIQUE.contains(&code))
        });
        if unique {
            Failure::Conflict
        } else {
            StorageError::from(error).into()
        }
    }
}

impl From<StorageError> for Failure {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Unavailable(detail) => Failure::Unavailable(detail),
            other => Failure::Storage(other.to_string()),
        }
    }
}

/// One aggregate's share of a commit: its events and its snapshot, when due.
pub struct Part {
    pub aggregate_type: String,
    pub events: Vec<SerializedEvent>,
    pub snapshot: Option<SnapshotUpdate>,
}

/// What a streamed unit sends its appender ([`Appender::append_streamed`]): each command's
/// part as soon as it is decided, then `End` once every command of the unit is. A stream that
/// closes without `End` was abandoned (a command of the unit refused or failed, or the unit's
/// caller went away): nothing of it is written.
pub enum Streamed {
    Part(Part),
    End,
}

/// What commits together or not at all: one command's events, or every command of a unit
/// ([`Appender::append_all`]), or a unit whose parts are still arriving (`stream`).
struct Job {
    parts: Vec<Part>,
    confirm: Option<Confirm>,
    stream: Option<mpsc::UnboundedReceiver<Streamed>>,
    reply: oneshot::Sender<Result<Vec<LogEvent>, Failure>>,
}

/// The sending side of a ledger's appender. Cloning it shares the one task.
#[derive(Clone)]
pub struct Appender {
    jobs: mpsc::Sender<Job>,
    own: Arc<Mutex<OwnSpan>>,
    batches: Arc<Batches>,
    /// Whether a streamed unit's parts are written as they arrive (PostgreSQL's `COPY`);
    /// otherwise they are gathered first and written as one unit.
    streams: bool,
}

/// Whether the appender is writing a batch, and how many it has finished (committed and
/// handed to the projector, or failed): what a reader that saw the log's head move waits on
/// before it reads the log itself (see [`Appender::settled`]).
#[derive(Debug)]
struct Batches {
    writing: std::sync::atomic::AtomicBool,
    finished: tokio::sync::watch::Sender<u64>,
}

impl Batches {
    fn new() -> Self {
        Batches {
            writing: std::sync::atomic::AtomicBool::new(false),
            finished: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Marks a batch begun; it is finished when the guard is dropped, whichever way the
    /// batch ends (answered, refused, or a panic in the task).
    fn start(&self) -> Writing<'_> {
        self.writing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Writing(self)
    }
}

/// A batch being written (see [`Batches::start`]).
struct Writing<'a>(&'a Batches);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0
            .writing
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.0.finished.send_modify(|n| *n += 1);
    }
}

/// Positions `(since, through]` of the log: every event there was written by this appender,
/// and no one else has appended in between. Each commit that follows the last one at once
/// extends it; one after a gap (another process appended, or a commit whose outcome this
/// appender never learnt) starts it again after the gap. It begins empty, at 0.
///
/// An aggregate this process last wrote at a position inside the span is still as it left
/// it at any head up to `through` ([`super::aggregates`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnSpan {
    pub since: i64,
    pub through: i64,
}

impl OwnSpan {
    /// The span after a commit of positions `(previous, last]`.
    fn after(self, previous: i64, last: i64) -> OwnSpan {
        OwnSpan {
            since: if previous == self.through {
                self.since
            } else {
                previous
            },
            through: last,
        }
    }

    /// Whether every event in `(from, to]` is this appender's.
    pub fn covers(&self, from: i64, to: i64) -> bool {
        self.since <= from && to <= self.through
    }
}

impl Appender {
    /// Starts the appender task of `backend`; it ends when the last `Appender` is dropped.
    pub fn spawn(backend: Backend, on_commit: OnCommit) -> Appender {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let own = Arc::new(Mutex::new(OwnSpan::default()));
        let batches = Arc::new(Batches::new());
        let streams = matches!(backend, Backend::Postgres(_));
        tokio::spawn(run(backend, queue, on_commit, own.clone(), batches.clone()));
        Appender {
            jobs,
            own,
            batches,
            streams,
        }
    }

    /// Waits, at most `wait`, for the batch this appender is writing, if any, to be finished:
    /// committed and handed to the projector (or failed). A command that read the log's head
    /// just after another one's commit reached the database, and before that commit was handed
    /// to the projector, would otherwise read the same events from the log itself: on
    /// PostgreSQL with 8 clients, about one command in three did.
    ///
    /// Returns whether every batch begun before the call is finished: `false` only when the
    /// wait ran out first.
    pub async fn settled(&self, wait: std::time::Duration) -> bool {
        let mut finished = self.batches.finished.subscribe();
        if self
            .batches
            .writing
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return matches!(
                tokio::time::timeout(wait, finished.changed()).await,
                Ok(Ok(()))
            );
        }
        true
    }

    /// The span of the log this appender alone has written, as of its last commit.
    pub fn own_span(&self) -> OwnSpan {
        span(&self.own)
    }

    /// Appends one command's events (and its snapshot, when due) and returns them as the log
    /// now holds them.
    pub async fn append(
        &self,
        aggregate_type: &str,
        events: Vec<SerializedEvent>,
        snapshot: Option<SnapshotUpdate>,
    ) -> Result<Vec<LogEvent>, Failure> {
        self.append_all(vec![Part {
            aggregate_type: aggregate_type.to_string(),
            events,
            snapshot,
        }])
        .await
    }

    /// Appends the events of several commands, on any aggregates, in one transaction: all of
    /// them or, on any failure (another writer reached one of the aggregates first), none.
    pub async fn append_all(&self, parts: Vec<Part>) -> Result<Vec<LogEvent>, Failure> {
        self.append_confirmed(parts, None).await
    }

    /// [`append_all`](Self::append_all) for a command decided unconfirmed: written only if
    /// `confirm` holds at the commit, otherwise [`Failure::Unconfirmed`] and nothing written.
    pub async fn append_confirmed(
        &self,
        parts: Vec<Part>,
        confirm: Option<Confirm>,
    ) -> Result<Vec<LogEvent>, Failure> {
        let parts: Vec<Part> = parts.into_iter().filter(|p| !p.events.is_empty()).collect();
        if parts.is_empty() {
            return Ok(Vec::new());
        }
        self.send(parts, confirm, None).await
    }

    /// [`append_all`](Self::append_all) for a unit whose commands are still being decided:
    /// their parts arrive on `stream`, the unit's end with [`Streamed::End`]. On PostgreSQL
    /// the appender writes each part as it arrives, into one `COPY` in the unit's transaction,
    /// so that the server inserts the first commands' events while the next are decided (an
    /// import's sheet); the rest of the commit (snapshots, links) follows the end. A stream
    /// that closes without its end writes nothing. On SQLite the parts are gathered first.
    pub async fn append_streamed(
        &self,
        mut stream: mpsc::UnboundedReceiver<Streamed>,
    ) -> Result<Vec<LogEvent>, Failure> {
        if self.streams {
            return self.send(Vec::new(), None, Some(stream)).await;
        }
        let mut parts = Vec::new();
        gather(&mut stream, &mut parts).await?;
        self.append_all(parts).await
    }

    async fn send(
        &self,
        parts: Vec<Part>,
        confirm: Option<Confirm>,
        stream: Option<mpsc::UnboundedReceiver<Streamed>>,
    ) -> Result<Vec<LogEvent>, Failure> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            parts,
            confirm,
            stream,
            reply,
        };
        let stopped = || Failure::Storage("the appender has stopped".into());
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Longest wait for a streamed unit's next part, the appender (and, once a `COPY` is open,
/// the appenders' lock) held meanwhile: a command is decided in milliseconds, so a unit
/// silent this long is stuck (something it waits for waits for the appender) and is refused
/// as contended rather than holding every writer.
const NEXT_PART: std::time::Duration = std::time::Duration::from_secs(30);

/// Receives the rest of a streamed unit into `parts`, up to its end; a failure when the
/// stream closed without it (the unit was abandoned) or went silent ([`NEXT_PART`]).
pub(super) async fn gather(
    stream: &mut mpsc::UnboundedReceiver<Streamed>,
    parts: &mut Vec<Part>,
) -> Result<(), Failure> {
    while let Some(streamed) = next_part(stream).await? {
        match streamed {
            Streamed::Part(part) if part.events.is_empty() => {}
            Streamed::Part(part) => parts.push(part),
            Streamed::End => return Ok(()),
        }
    }
    Err(abandoned())
}

/// What a streamed unit sends next (`None`: it closed), or a conflict when it has been
/// silent for [`NEXT_PART`].
pub(super) async fn next_part(
    stream: &mut mpsc::UnboundedReceiver<Streamed>,
) -> Result<Option<Streamed>, Failure> {
    tokio::time::timeout(NEXT_PART, stream.recv())
        .await
        .map_err(|_| {
            tracing::warn!("a streamed unit sent nothing for 30 s: refused as contended");
            Failure::Conflict
        })
}

/// A streamed unit that closed without its end: nothing of it is written.
pub(super) fn abandoned() -> Failure {
    Failure::Storage("the unit was abandoned before its end".into())
}

/// Where the appender writes: through the pool, or on SQLite with a file, on a connection
/// of its own ([`direct::Writer`]) so that a batch's rows are not each handed across threads.
enum Store {
    /// `head`: the last link this appender wrote, while no failure has come since.
    Pool {
        backend: Backend,
        head: Option<(i64, String)>,
    },
    Direct(direct::Writer),
}

impl Store {
    fn of(backend: Backend) -> Store {
        match &backend {
            Backend::Sqlite(pool) => match direct::file_of(pool) {
                Some(path) => Store::Direct(direct::Writer::new(path)),
                None => Store::Pool {
                    backend,
                    head: None,
                },
            },
            Backend::Postgres(_) => Store::Pool {
                backend,
                head: None,
            },
        }
    }

    /// Writes `batch` in one transaction (see [`write`]) and hands it back with the outcome.
    /// `asks`: what the commit must confirm ([`confirmable`]); only PostgreSQL is asked.
    async fn write(
        &mut self,
        mut batch: Vec<Job>,
        asks: Option<&Asks>,
    ) -> (Vec<Job>, Result<(i64, Vec<LogEvent>), Failure>) {
        match self {
            Store::Pool { backend, head } => {
                let result = write(backend, &mut batch, head.take(), asks).await;
                if let Ok((_, events)) = &result {
                    *head = events
                        .last()
                        .and_then(|e| Some((e.position, e.hash.clone()?)));
                }
                (batch, result)
            }
            Store::Direct(_) if asks.is_some() => (batch, Err(Failure::Unconfirmed)),
            Store::Direct(writer) => {
                // Never streamed to (see `Appender::streams`); gathered should one come.
                for job in batch.iter_mut() {
                    if let Some(mut stream) = job.stream.take() {
                        if let Err(failure) = gather(&mut stream, &mut job.parts).await {
                            return (batch, Err(failure));
                        }
                    }
                }
                writer
                    .transaction(batch, |tx, batch: &mut Vec<Job>| write_direct(tx, batch))
                    .await
            }
        }
    }
}

async fn run(
    backend: Backend,
    mut queue: mpsc::Receiver<Job>,
    on_commit: OnCommit,
    own: Arc<Mutex<OwnSpan>>,
    batches: Arc<Batches>,
) {
    let settle = |batch, previous, events: Vec<LogEvent>| {
        if let (Some(last), Ok(mut own)) = (events.last(), own.lock()) {
            // Before the commands hear of their commit: what they then keep of their
            // aggregates is inside the span.
            *own = own.after(previous, last.position);
        }
        answer(batch, previous, events, &on_commit)
    };
    let mut store = Store::of(backend);
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    let mut last_batch = 0;
    loop {
        if jobs.is_empty() && queue.recv_many(&mut jobs, MAX_BATCH).await == 0 {
            break;
        }
        // Several commands came together last time: give the ones being decided right now
        // a turn to join this batch (no timer: the task goes to the back of the queue).
        let mut turns = 0;
        while last_batch > 1 && jobs.len() < last_batch && turns < LINGER_TURNS {
            tokio::task::yield_now().await;
            while jobs.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            turns += 1;
        }
        // A streamed unit is written alone: its parts are still arriving. The commands that
        // came before it go first.
        let taken = match jobs.iter().position(|job| job.stream.is_some()) {
            Some(at) => {
                let rest = jobs.split_off(at.max(1));
                std::mem::replace(&mut jobs, rest)
            }
            None => std::mem::take(&mut jobs),
        };
        last_batch = taken.len();
        // A streamed unit's time includes its deciding: not a wait for the database.
        let streamed = taken.iter().any(|job| job.stream.is_some());
        let started = std::time::Instant::now();
        let _writing = batches.start();
        let (batch, asks) = confirmable(taken, &store, span(&own));
        if batch.is_empty() {
            continue;
        }
        let (batch, written) = store.write(batch, asks.as_ref()).await;
        match written {
            Ok((previous, events)) => {
                let written = started.elapsed();
                let count = events.len();
                settle(batch, previous, events);
                if count >= 1000 {
                    tracing::debug!(
                        events = count,
                        writing = written.as_secs_f64(),
                        folding = (started.elapsed() - written).as_secs_f64(),
                        "appended"
                    );
                }
            }
            // A batch of one is never written again: its events' JSON may have been handed
            // over to the events returned (see `copied` and `write_direct`).
            Err(failure) if batch.len() == 1 || matches!(failure, Failure::Unavailable(_)) => {
                refuse(batch, &failure);
                if !streamed && waited_out(&failure, started.elapsed()) {
                    refuse_queued(&mut queue, &failure);
                }
            }
            // What did not hold is the unconfirmed commands' asks: they are answered, and the
            // others are written together at once, as the next batch.
            Err(Failure::Unconfirmed) => {
                let (unconfirmed, others): (Vec<Job>, Vec<Job>) =
                    batch.into_iter().partition(|job| job.confirm.is_some());
                if unconfirmed.is_empty() {
                    // Never so (only their asks are checked); answered rather than retried.
                    refuse(others, &Failure::Unconfirmed);
                } else {
                    refuse(unconfirmed, &Failure::Unconfirmed);
                    // Before whatever is still queued here (a streamed unit split off).
                    let mut next = others;
                    next.append(&mut jobs);
                    jobs = next;
                }
            }
            Err(_) => {
                let mut out_of_reach: Option<Failure> = None;
                for job in batch {
                    if let Some(failure) = &out_of_reach {
                        refuse([job], failure);
                        continue;
                    }
                    let (single, asks) = confirmable(vec![job], &store, span(&own));
                    if single.is_empty() {
                        continue;
                    }
                    let started = std::time::Instant::now();
                    let (single, written) = store.write(single, asks.as_ref()).await;
                    match written {
                        Ok((previous, events)) => settle(single, previous, events),
                        Err(failure) => {
                            if waited_out(&failure, started.elapsed()) {
                                out_of_reach = Some(failure.clone());
                            }
                            refuse(single, &failure);
                        }
                    }
                }
                if let Some(failure) = &out_of_reach {
                    refuse_queued(&mut queue, failure);
                }
            }
        }
    }
}

/// What a batch's commit must confirm for its unconfirmed commands (migration 0013): the
/// chain's head before the batch is `before`, the last event this appender wrote, and the
/// tokens (each once) still stand.
#[derive(Debug)]
struct Asks {
    before: i64,
    tokens: Vec<String>,
}

/// This appender's span as of its last commit.
fn span(own: &Mutex<OwnSpan>) -> OwnSpan {
    own.lock().map_or(OwnSpan::default(), |own| *own)
}

/// Answers at once the unconfirmed commands of `batch` that no commit could confirm, and
/// returns the others with what their commit must confirm (`None` when none is unconfirmed).
/// A command's state was this process's at `after`; it can be confirmed only while every
/// event since is this appender's (`own` reaches back to `after`) and on PostgreSQL, whose
/// appending statement confirms (SQLite's commands read their token on the calling thread
/// and never come unconfirmed).
fn confirmable(batch: Vec<Job>, store: &Store, own: OwnSpan) -> (Vec<Job>, Option<Asks>) {
    let postgres = matches!(
        store,
        Store::Pool {
            backend: Backend::Postgres(_),
            ..
        }
    );
    let mut tokens = Vec::new();
    let mut kept = Vec::with_capacity(batch.len());
    for job in batch {
        match &job.confirm {
            None => kept.push(job),
            Some(confirm) if postgres && own.covers(confirm.after, own.through) => {
                tokens.push(confirm.token.clone());
                kept.push(job);
            }
            Some(_) => refuse([job], &Failure::Unconfirmed),
        }
    }
    if tokens.is_empty() {
        return (kept, None);
    }
    tokens.sort_unstable();
    tokens.dedup();
    let asks = Asks {
        before: own.through,
        tokens,
    };
    (kept, Some(asks))
}

/// Answers each of `jobs` with `failure`.
fn refuse(jobs: impl IntoIterator<Item = Job>, failure: &Failure) {
    for job in jobs {
        let _ = job.reply.send(Err(failure.clone()));
    }
}

/// Whether a write that failed with `failure` after `took` waited for a database out of
/// reach (rather than losing one connection at once, which leaves the next write its chance).
fn waited_out(failure: &Failure, took: std::time::Duration) -> bool {
    matches!(failure, Failure::Unavailable(_)) && took >= super::database_wait() / 4
}

/// Answers every command queued while a write [`waited_out`] the database: they have waited
/// with it, and hear the same at once rather than each batch behind waiting out a wait of its
/// own in turn (a 503 within about one wait, not one per batch queued).
fn refuse_queued(queue: &mut mpsc::Receiver<Job>, failure: &Failure) {
    while let Ok(job) = queue.try_recv() {
        refuse([job], failure);
    }
}

/// Hands a committed batch to the projector, then answers each command with its events.
fn answer(batch: Vec<Job>, previous: i64, events: Vec<LogEvent>, on_commit: &OnCommit) {
    if let Some(last) = events.last() {
        crate::metrics::appended(events.len(), last.position);
        on_commit(previous, &events);
    }
    if batch.len() == 1 {
        // Every event is this one job's (an import's 100,000 need no owner looked up).
        if let Some(job) = batch.into_iter().next() {
            let _ = job.reply.send(Ok(events));
        }
        return;
    }
    let owners: HashMap<(&str, &str, i64), usize> = batch
        .iter()
        .enumerate()
        .flat_map(|(i, job)| {
            job.parts.iter().flat_map(move |part| {
                part.events.iter().map(move |e| {
                    let key = (
                        part.aggregate_type.as_str(),
                        e.aggregate_id.as_str(),
                        e.sequence as i64,
                    );
                    (key, i)
                })
            })
        })
        .collect();
    let mut mine: Vec<Vec<LogEvent>> = batch.iter().map(|_| Vec::new()).collect();
    for event in events {
        let key = (
            event.aggregate_type.as_str(),
            event.aggregate_id.as_str(),
            event.sequence,
        );
        if let Some(&owner) = owners.get(&key) {
            mine[owner].push(event);
        }
    }
    for (job, events) in batch.into_iter().zip(mine) {
        let _ = job.reply.send(Ok(events));
    }
}

/// Writes `batch` in one transaction: the events, the snapshots due, and the chain links.
/// Returns the position before the batch and the batch's events, sealed, in position order.
///
/// `known` is the last link this appender committed. The batch's positions are taken under
/// the appenders' lock (PostgreSQL's trigger, SQLite's write lock), so when the first of
/// them follows `known` at once, no one else has appended since and `known` is the chain's
/// head: the query for it is saved. Any gap (another process's events, a position a rolled
/// back insert took) reads the head from the database.
async fn write(
    backend: &Backend,
    batch: &mut [Job],
    known: Option<(i64, String)>,
    asks: Option<&Asks>,
) -> Result<(i64, Vec<LogEvent>), Failure> {
    let returning = match backend {
        Backend::Sqlite(_) => {
            " RETURNING position, recorded_at, aggregate_type, aggregate_id, sequence, \
             event_type, event_version, payload, metadata, NULL"
        }
        Backend::Postgres(_) => {
            " RETURNING position, recorded_at, aggregate_type, aggregate_id, sequence, \
             event_type, event_version, payload::text, metadata::text, NULL::text"
        }
    };
    // A streamed unit is a batch of its own (see `run`).
    let mut stream = match batch {
        [job] => job.stream.take(),
        _ => None,
    };
    if let (Backend::Postgres(pool), None) = (backend, &stream) {
        if let Some(sealed) = write_sealed(pool, batch, asks).await? {
            return Ok(sealed);
        }
    }
    with_pool!(backend, pool => {
        // The appender's own task: nothing drops this future midway (see clippy.toml).
        #[allow(clippy::disallowed_methods)]
        let mut tx = pool.begin().await?;
        let started = std::time::Instant::now();
        let streamed = match (&mut stream, batch.first_mut()) {
            (Some(stream), Some(job)) => tx.copy_streamed(&mut job.parts, stream).await?,
            _ => None,
        };
        let rows = rows_of(batch);
        let count = rows.len();
        // The JSON goes as text: PostgreSQL's json columns keep it as sent (migrations 0010
        // and 0011), where a jsonb parameter would be parsed and written out again.
        let cast = match backend {
            Backend::Sqlite(_) => "",
            Backend::Postgres(_) => "::json",
        };
        let copied_events = match streamed {
            Some(streamed) => Some(streamed),
            None => tx.copy_events(&rows).await?,
        };
        let (bulk, mut appended) = match copied_events {
            Some(copy::Copied {
                first,
                recorded_at,
                written,
            }) => (
                Some(written),
                copied(batch, (first..).map(|position| (position, recorded_at))),
            ),
            None => {
                let mut appended = Vec::with_capacity(count);
                for chunk in rows.chunks(ROWS_PER_INSERT) {
                    let mut insert = QueryBuilder::new(
                        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                         event_version, payload, metadata) ",
                    );
                    insert.push_values(chunk, |mut row, (aggregate_type, event)| {
                        row.push_bind(*aggregate_type)
                            .push_bind(event.aggregate_id.as_str())
                            .push_bind(event.sequence as i64)
                            .push_bind(event.event_type.as_str())
                            .push_bind(event.event_version.as_str())
                            .push_bind(event.payload.to_string())
                            .push_unseparated(cast)
                            .push_bind(event.metadata.to_string())
                            .push_unseparated(cast);
                    });
                    insert.push(returning);
                    for row in insert.build().fetch_all(&mut *tx).await? {
                        appended.push(decode(&row)?);
                    }
                }
                (None, appended)
            }
        };
        let inserted = started.elapsed();
        if appended.len() != count {
            return Err(Failure::Storage(format!(
                "{count} events were inserted, {} returned",
                appended.len()
            )));
        }
        appended.sort_by_key(|e| e.position);
        let due: Vec<Due> = batch
            .iter()
            .flat_map(|job| job.parts.iter())
            .filter_map(|job| {
                let (aggregate_id, payload, current) = job.snapshot.as_ref()?;
                Some(Due {
                    aggregate_type: job.aggregate_type.as_str(),
                    aggregate_id: aggregate_id.as_str(),
                    last_sequence: job.events.last().map_or(0, |e| e.sequence) as i64,
                    current: *current as i64,
                    payload,
                })
            })
            .collect();
        let together = tx.write_snapshots(&due).await?;
        for snapshot in due.iter().filter(|_| !together) {
            let written = if snapshot.current == 1 {
                sqlx::query(FORGET_SNAPSHOTS)
                    .bind(snapshot.aggregate_type)
                    .bind(snapshot.aggregate_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(&format!(
                    "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, \
                     current_snapshot, payload) VALUES ($1, $2, $3, $4, $5{cast})"
                ))
                .bind(snapshot.aggregate_type)
                .bind(snapshot.aggregate_id)
                .bind(snapshot.last_sequence)
                .bind(snapshot.current)
                .bind(snapshot.payload.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected()
            } else {
                sqlx::query(&format!(
                    "UPDATE snapshots SET last_sequence = $3, payload = $6{cast}, \
                     current_snapshot = $4 \
                     WHERE aggregate_type = $1 AND aggregate_id = $2 AND current_snapshot = $5"
                ))
                .bind(snapshot.aggregate_type)
                .bind(snapshot.aggregate_id)
                .bind(snapshot.last_sequence)
                .bind(snapshot.current)
                .bind(snapshot.current - 1)
                .bind(snapshot.payload.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected()
            };
            if written != 1 {
                // Rolled back when `tx` is dropped: nothing of this batch is written.
                return Err(Failure::Conflict);
            }
        }
        let snapshots = started.elapsed();
        // The head is read after the inserts, under the appenders' lock (PostgreSQL) or the
        // write lock (SQLite), so it is the last link any earlier commit wrote.
        let first = appended.first().map_or(0, |e| e.position);
        let known = known.filter(|(position, _)| {
            matches!(backend, Backend::Postgres(_)) && position + 1 == first && bulk.is_none()
        });
        let (previous_position, mut previous) = match known.clone() {
            Some(head) => head,
            None => {
                let head = sqlx::query(
                    "SELECT position, hash FROM event_chain ORDER BY position DESC LIMIT 1",
                )
                .fetch_optional(&mut *tx)
                .await?;
                match head {
                    Some(row) => (row.try_get::<i64, _>(0)?, row.try_get::<String, _>(1)?),
                    None => (0, chain::GENESIS.to_string()),
                }
            }
        };
        if let Some(asks) = asks {
            // Under the same lock as the head: see migration 0013, which asks the same.
            if previous_position != asks.before {
                return Err(Failure::Unconfirmed);
            }
            if !tx.tokens_stand(&asks.tokens).await? {
                return Err(Failure::Unconfirmed);
            }
        }
        if let Some(written) = &bulk {
            tx.copy_links(&mut appended, written, &previous).await?;
        } else {
            for event in &mut appended {
                previous = link(&previous, event);
                event.hash = Some(previous.clone());
            }
        }
        let sealed = started.elapsed();
        for (i, chunk) in appended
            .chunks(ROWS_PER_INSERT)
            .enumerate()
            .filter(|_| bulk.is_none())
        {
            let mut seal = QueryBuilder::new("INSERT INTO event_chain (position, hash) ");
            // Linked to the head this appender remembers: the first links are written only
            // if the database still holds it (it could have lost commits in a failover),
            // otherwise the batch is retried and reads the head.
            let guard = known.as_ref().filter(|_| i == 0);
            if guard.is_some() {
                seal.push("SELECT v.position, v.hash FROM (");
            }
            seal.push_values(chunk, |mut row, event| {
                row.push_bind(event.position).push_bind(event.hash.as_deref());
            });
            if let Some((position, hash)) = guard {
                seal.push(") AS v (position, hash) WHERE EXISTS (SELECT 1 FROM event_chain WHERE position = ")
                    .push_bind(*position)
                    .push(" AND hash = ")
                    .push_bind(hash.as_str())
                    .push(")");
            }
            let sealed = seal.build().execute(&mut *tx).await?.rows_affected();
            if guard.is_some() && sealed != chunk.len() as u64 {
                return Err(Failure::Conflict);
            }
        }
        tx.commit().await?;
        if bulk.is_some() {
            // Where a large batch's time goes (PERFORMANCE.md, the bulk import).
            tracing::debug!(
                events = inserted.as_secs_f64(),
                snapshots = (snapshots - inserted).as_secs_f64(),
                chain = (sealed - snapshots).as_secs_f64(),
                commit = (started.elapsed() - sealed).as_secs_f64(),
                "bulk batch written"
            );
        }
        Ok((previous_position, appended))
    })
}

/// On PostgreSQL, writes `batch` (its events as `rows`) in one statement, which is its own
/// transaction: `append_sealed` (migration 0012) inserts the events, links them under the
/// appenders' lock and inserts the links, one round trip where [`write`]'s transaction takes
/// four. `None` (nothing written) for a batch it does not take: one with a snapshot due, one
/// large enough for `COPY`, or one with a float, whose JSON the log gives back as parsed
/// from text, not as held here (see [`copy`]).
async fn write_sealed(
    pool: &sqlx::PgPool,
    batch: &mut [Job],
    asks: Option<&Asks>,
) -> Result<Option<(i64, Vec<LogEvent>)>, Failure> {
    let snapshot_due = batch
        .iter()
        .flat_map(|job| job.parts.iter())
        .any(|part| part.snapshot.is_some());
    let rows = rows_of(batch);
    if snapshot_due || copy::many(&rows) || copy::any_float(&rows) {
        return Ok(None);
    }
    let count = rows.len();
    let mut columns = SealedColumns::with_capacity(count);
    for &(aggregate_type, event) in &rows {
        let payload = event.payload.to_string();
        let metadata = event.metadata.to_string();
        let Some(tail) = chain::tail_written(aggregate_type, event, &payload, &metadata) else {
            return Ok(None);
        };
        columns.types.push(aggregate_type);
        columns.ids.push(&event.aggregate_id);
        columns.sequences.push(event.sequence as i64);
        columns.event_types.push(&event.event_type);
        columns.versions.push(&event.event_version);
        columns.payloads.push(payload);
        columns.metadata.push(metadata);
        columns.tails.push(tail);
    }
    let mut sealed = sqlx::query(
        "SELECT ordinal, event_position, event_recorded_at, event_hash, chain_before \
         FROM append_sealed($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&columns.types)
    .bind(&columns.ids)
    .bind(&columns.sequences)
    .bind(&columns.event_types)
    .bind(&columns.versions)
    .bind(&columns.payloads)
    .bind(&columns.metadata)
    .bind(&columns.tails)
    .bind(asks.map(|asks| asks.before))
    .bind(asks.map_or(&[][..], |asks| asks.tokens.as_slice()))
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| {
        Ok::<_, sqlx::Error>((
            row.try_get::<i64, _>(0)?,
            row.try_get::<i64, _>(1)?,
            row.try_get::<i64, _>(2)?,
            row.try_get::<String, _>(3)?,
            row.try_get::<i64, _>(4)?,
        ))
    })
    .collect::<Result<Vec<_>, _>>()?;
    drop((columns, rows));
    // Committed: what follows only hands back what the function returned, in the order sent.
    sealed.sort_by_key(|row| row.0);
    let in_order = sealed.len() == count && sealed.iter().zip(1..).all(|(row, n)| row.0 == n);
    if !in_order {
        return Err(Failure::Storage(format!(
            "{count} events sent to append_sealed, {} sealed",
            sealed.len()
        )));
    }
    let previous = sealed.first().map_or(0, |row| row.4);
    let mut appended = copied(batch, sealed.iter().map(|row| (row.1, row.2)));
    for (event, row) in appended.iter_mut().zip(&mut sealed) {
        event.hash = Some(std::mem::take(&mut row.3));
    }
    appended.sort_by_key(|e| e.position);
    Ok(Some((previous, appended)))
}

/// The events of `batch`, each with its aggregate's type, in the order they are written.
fn rows_of(batch: &[Job]) -> Vec<(&str, &SerializedEvent)> {
    batch
        .iter()
        .flat_map(|job| job.parts.iter())
        .flat_map(|part| {
            part.events
                .iter()
                .map(|e| (part.aggregate_type.as_str(), e))
        })
        .collect()
}

/// The columns of a batch as `append_sealed` takes them, one array each.
struct SealedColumns<'a> {
    types: Vec<&'a str>,
    ids: Vec<&'a str>,
    sequences: Vec<i64>,
    event_types: Vec<&'a str>,
    versions: Vec<&'a str>,
    payloads: Vec<String>,
    metadata: Vec<String>,
    tails: Vec<String>,
}

impl SealedColumns<'_> {
    fn with_capacity(count: usize) -> Self {
        SealedColumns {
            types: Vec::with_capacity(count),
            ids: Vec::with_capacity(count),
            sequences: Vec::with_capacity(count),
            event_types: Vec::with_capacity(count),
            versions: Vec::with_capacity(count),
            payloads: Vec::with_capacity(count),
            metadata: Vec::with_capacity(count),
            tails: Vec::with_capacity(count),
        }
    }
}

/// The events of `batch`, in the order sent, at the positions and times the log gave them, as
/// the log holds them (unsealed): the JSON is the values in memory, as the log gives them back
/// (see [`copy`]). A batch of one job hands its events' JSON over instead of copying it:
/// should the batch fail, that job is answered with the failure and never written again (a
/// batch of several is retried job by job, see [`run`], and keeps its own).
fn copied(batch: &mut [Job], placed: impl Iterator<Item = (i64, i64)>) -> Vec<LogEvent> {
    let alone = batch.len() == 1;
    batch
        .iter_mut()
        .flat_map(|job| job.parts.iter_mut())
        .flat_map(|part| {
            let aggregate_type = part.aggregate_type.as_str();
            part.events
                .iter_mut()
                .map(move |event| (aggregate_type, event))
        })
        .zip(placed)
        .map(|((aggregate_type, event), (position, recorded_at))| {
            let (payload, metadata) = if alone {
                (
                    std::mem::take(&mut event.payload),
                    std::mem::take(&mut event.metadata),
                )
            } else {
                (event.payload.clone(), event.metadata.clone())
            };
            LogEvent {
                position,
                recorded_at,
                aggregate_type: aggregate_type.to_string(),
                aggregate_id: event.aggregate_id.clone(),
                sequence: event.sequence as i64,
                event_type: event.event_type.clone(),
                event_version: event.event_version.clone(),
                payload,
                metadata,
                hash: None,
            }
        })
        .collect()
}

/// A snapshot due with a batch: the aggregate's state after its last event in the batch.
pub(super) struct Due<'a> {
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub last_sequence: i64,
    /// Its number: 1 for the first (see [`FORGET_SNAPSHOTS`]), else the one after the
    /// stored one.
    pub current: i64,
    pub payload: &'a Value,
}

/// What a backend's transaction can do faster than [`write`]'s multi-row inserts.
trait Bulk {
    /// The batch's events inserted another way, when the backend has one for them.
    /// Returns where they went and their JSON as sent (see [`copy::copy_events`]).
    async fn copy_events(
        &mut self,
        rows: &[(&str, &SerializedEvent)],
    ) -> Result<Option<copy::Copied>, Failure>;
    /// A streamed unit's events copied as its parts arrive into `parts`
    /// ([`copy::copy_streamed`]); `None` when the parts were gathered instead, to be inserted.
    async fn copy_streamed(
        &mut self,
        parts: &mut Vec<Part>,
        stream: &mut mpsc::UnboundedReceiver<Streamed>,
    ) -> Result<Option<copy::Copied>, Failure>;
    /// Seals the events [`Bulk::copy_events`] inserted as `written`, the first linked to
    /// `previous`, and writes their links.
    async fn copy_links(
        &mut self,
        events: &mut [LogEvent],
        written: &copy::Written,
        previous: &str,
    ) -> Result<(), Failure>;
    /// The snapshots due, written together; `false` when left to [`write`]'s statement per
    /// snapshot.
    async fn write_snapshots(&mut self, due: &[Due<'_>]) -> Result<bool, Failure>;
    /// Whether every token of `tokens` (SHA-256 digests, each once) is known and not revoked.
    async fn tokens_stand(&mut self, tokens: &[String]) -> Result<bool, Failure>;
}

impl Bulk for sqlx::SqliteConnection {
    async fn copy_events(
        &mut self,
        _: &[(&str, &SerializedEvent)],
    ) -> Result<Option<copy::Copied>, Failure> {
        Ok(None)
    }

    async fn copy_streamed(
        &mut self,
        parts: &mut Vec<Part>,
        stream: &mut mpsc::UnboundedReceiver<Streamed>,
    ) -> Result<Option<copy::Copied>, Failure> {
        gather(stream, parts).await.map(|()| None)
    }

    async fn copy_links(
        &mut self,
        _: &mut [LogEvent],
        _: &copy::Written,
        _: &str,
    ) -> Result<(), Failure> {
        Err(Failure::Storage("SQLite has no bulk path here".into()))
    }

    async fn write_snapshots(&mut self, _: &[Due<'_>]) -> Result<bool, Failure> {
        Ok(false)
    }

    /// Never asked: SQLite's commands are never unconfirmed ([`confirmable`]).
    async fn tokens_stand(&mut self, _: &[String]) -> Result<bool, Failure> {
        Ok(false)
    }
}

impl Bulk for sqlx::PgConnection {
    async fn copy_events(
        &mut self,
        rows: &[(&str, &SerializedEvent)],
    ) -> Result<Option<copy::Copied>, Failure> {
        if !copy::worth_copying(rows) {
            return Ok(None);
        }
        copy::copy_events(self, rows).await.map(Some)
    }

    async fn copy_streamed(
        &mut self,
        parts: &mut Vec<Part>,
        stream: &mut mpsc::UnboundedReceiver<Streamed>,
    ) -> Result<Option<copy::Copied>, Failure> {
        copy::copy_streamed(self, parts, stream).await
    }

    async fn copy_links(
        &mut self,
        events: &mut [LogEvent],
        written: &copy::Written,
        previous: &str,
    ) -> Result<(), Failure> {
        copy::copy_links(self, events, written, previous).await
    }

    async fn write_snapshots(&mut self, due: &[Due<'_>]) -> Result<bool, Failure> {
        copy::write_snapshots(self, due).await
    }

    async fn tokens_stand(&mut self, tokens: &[String]) -> Result<bool, Failure> {
        let standing: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM api_tokens WHERE token_hash = ANY ($1) AND revoked_at IS NULL",
        )
        .bind(tokens)
        .fetch_one(self)
        .await?;
        Ok(standing == tokens.len() as i64)
    }
}

/// [`write`] on a direct SQLite connection, inside the transaction `tx`: one prepared
/// statement per row; each event's position is the rowid its insert was given.
///
/// A batch of one job hands its events' JSON over to the events returned instead of copying
/// it: should the batch fail, that job is answered with the failure and never written again
/// (a batch of several is retried job by job, see [`run`], and keeps its own).
fn write_direct(
    tx: &rusqlite::Transaction<'_>,
    batch: &mut [Job],
) -> Result<(i64, Vec<LogEvent>), Failure> {
    let lone = batch.len() == 1;
    let refused = |error: rusqlite::Error| -> Failure {
        let unique = matches!(
            &error,
            rusqlite::Error::SqliteFailure(e, _) if SQLITE_UNIQUE.contains(&e.extended_code)
        );
        if unique {
            Failure::Conflict
        } else {
            StorageError::from(error).into()
        }
    };
    let text = |value: &Value| {
        serde_json::to_string(value)
            .map_err(|e| Failure::Storage(format!("encoding an event: {e}")))
    };
    let mut parts: Vec<&mut Part> = batch
        .iter_mut()
        .flat_map(|job| job.parts.iter_mut())
        .collect();
    // Transaction time, read once under the write lock from the database's clock (what the
    // column's default computes), never before the last event's: every event of the batch
    // carries it, and like on PostgreSQL it never decreases along position.
    let recorded_at: i64 = tx
        .query_row(
            "SELECT MAX(CAST(unixepoch('subsec') * 1000 AS INTEGER), \
             COALESCE((SELECT recorded_at FROM events ORDER BY position DESC LIMIT 1), 0))",
            [],
            |row| row.get(0),
        )
        .map_err(refused)?;
    // The head is read under the write lock (the transaction is `IMMEDIATE`), so it is the
    // last link any earlier commit wrote: each event is sealed as soon as it is inserted.
    let head = tx
        .query_row(
            "SELECT position, hash FROM event_chain ORDER BY position DESC LIMIT 1",
            [],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            other => Err(other),
        })
        .map_err(refused)?;
    let (previous_position, mut previous) = head.unwrap_or_else(|| (0, chain::GENESIS.to_string()));
    let mut appended = Vec::new();
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                 event_version, payload, metadata, recorded_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(refused)?;
        let mut seal = tx
            .prepare_cached("INSERT INTO event_chain (position, hash) VALUES (?1, ?2)")
            .map_err(refused)?;
        // A command's events carry its metadata, equal for all of them: written once for
        // each run of equal values.
        let mut metadata_written: Option<(Value, String)> = None;
        for part in &mut parts {
            for event in &mut part.events {
                let payload = text(&event.payload)?;
                let metadata_floats = has_float(&event.metadata);
                // Values with a float are written anew: serde_json holds 0.0 and -0.0 equal.
                let known = !metadata_floats
                    && metadata_written
                        .as_ref()
                        .is_some_and(|(value, _)| *value == event.metadata);
                if !known {
                    metadata_written = Some((event.metadata.clone(), text(&event.metadata)?));
                }
                let metadata = metadata_written
                    .as_ref()
                    .map_or("", |(_, written)| written.as_str());
                insert
                    .execute(rusqlite::params![
                        part.aggregate_type,
                        event.aggregate_id,
                        event.sequence as i64,
                        event.event_type,
                        event.event_version,
                        payload,
                        metadata,
                        recorded_at,
                    ])
                    .map_err(refused)?;
                // The event as the log holds it, as `verify` and a rebuild will read it. Its
                // JSON is read back from the text stored when it holds a float: serde_json
                // does not always read a float back to the value it wrote, and the link must
                // cover what is stored. Integers, strings and the rest read back exactly, and
                // the text just written is then their canonical form.
                let floats = metadata_floats || has_float(&event.payload);
                let stored = |value: &mut Value, text: &str| {
                    if floats {
                        return serde_json::from_str::<Value>(text)
                            .map_err(|e| Failure::Storage(format!("reading an event back: {e}")));
                    }
                    Ok(if lone {
                        std::mem::take(value)
                    } else {
                        value.clone()
                    })
                };
                let mut stored_event = LogEvent {
                    // The rowid SQLite gave the row: its AUTOINCREMENT position, greater than
                    // any before it.
                    position: tx.last_insert_rowid(),
                    recorded_at,
                    aggregate_type: part.aggregate_type.clone(),
                    aggregate_id: event.aggregate_id.clone(),
                    sequence: event.sequence as i64,
                    event_type: event.event_type.clone(),
                    event_version: event.event_version.clone(),
                    payload: stored(&mut event.payload, &payload)?,
                    metadata: stored(&mut event.metadata, metadata)?,
                    hash: None,
                };
                previous = if floats {
                    link(&previous, &stored_event)
                } else {
                    chain::link_written(
                        &previous,
                        &stored_event,
                        payload.as_bytes(),
                        metadata.as_bytes(),
                    )
                };
                seal.execute(rusqlite::params![stored_event.position, previous])
                    .map_err(refused)?;
                stored_event.hash = Some(previous.clone());
                appended.push(stored_event);
            }
        }
    }
    for part in &parts {
        let Some((aggregate_id, payload, current_snapshot)) = &part.snapshot else {
            continue;
        };
        let last_sequence = part.events.last().map_or(0, |e| e.sequence) as i64;
        let payload = text(payload)?;
        // The first snapshot is inserted, a later one replaces the one before it (?5); the
        // same six parameters either way.
        let sql = if *current_snapshot == 1 {
            "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, \
             current_snapshot, payload) VALUES (?1, ?2, ?3, ?4, ?6)"
        } else {
            "UPDATE snapshots SET last_sequence = ?3, payload = ?6, current_snapshot = ?4 \
             WHERE aggregate_type = ?1 AND aggregate_id = ?2 AND current_snapshot = ?5"
        };
        if *current_snapshot == 1 {
            tx.prepare_cached(FORGET_SNAPSHOTS)
                .and_then(|mut statement| {
                    statement.execute(rusqlite::params![part.aggregate_type, aggregate_id])
                })
                .map_err(refused)?;
        }
        let written = tx
            .prepare_cached(sql)
            .and_then(|mut statement| {
                statement.execute(rusqlite::params![
                    part.aggregate_type,
                    aggregate_id,
                    last_sequence,
                    *current_snapshot as i64,
                    *current_snapshot as i64 - 1,
                    payload
                ])
            })
            .map_err(refused)?;
        if written != 1 {
            // Rolled back by the caller: nothing of this batch is written.
            return Err(Failure::Conflict);
        }
    }
    Ok((previous_position, appended))
}
