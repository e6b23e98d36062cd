//! The projector: reads the log by position and folds every event, exactly once and in
//! order, into the read models of `kiroku-projections`. It runs after each command (so a
//! caller reads its own writes) and on a timer (to pick up writes from other processes).
//!
//! The read models live in memory, kept in pieces (`kiroku_projections::pieces`), and are
//! checkpointed piece by piece (see [`store`]): a checkpoint writes the pieces that changed
//! since the one before and then one manifest naming every piece at its position, so its cost
//! follows what changed, not the whole history. After a crash the projector resumes from its
//! last checkpoint; a checkpoint it cannot read (another format, a damaged or missing piece)
//! or whose fingerprint does not match is ignored and the read models are rebuilt from the
//! log. The fingerprint covers the manifest (and so the SHA-256 of every piece) and the chain
//! hash at its position, so a checkpoint only fits the log it was drawn from.
//!
//! An event this version cannot read (written by a newer version, or damaged) stops the
//! projector *visibly*: the read models stay at the event before it and go on serving,
//! `/healthz` says `degraded` and names the event, and commands are refused until a version
//! that reads it is running. Nothing is skipped.

mod cold;
mod store;

use crate::storage::log::{read_raw_between, LogEvent, RawEvent};
use crate::storage::{now_ms, Backend, StorageError};
use kiroku_domain::plan::IndicatorSource;
use kiroku_domain::values::{Code, FiscalYear};
use kiroku_projections::audit::{self, Trail};
use kiroku_projections::history::Histories;
use kiroku_projections::indicators::Facts;
use kiroku_projections::pieces::{
    self, ColdBytes, ColdPiece, ColdStored, Piece, Pieces, Segmented, Stored, Unreadable,
};
use kiroku_projections::plans::PlanBook;
use kiroku_projections::rfc3339_ms;
use kiroku_projections::sheet::{self, Sheet};
use kiroku_projections::{LedgerEvent, Recorded};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::RwLock;
use tokio::sync::Mutex;

const PAGE: i64 = 5000;
const CHECKPOINT: &str = "read_models";
/// Bump when the shape or the encoding of a read model changes: older checkpoints are then
/// rebuilt.
const FORMAT: i32 = 5;
/// During a long catch-up, the first checkpoint after this many events
/// (`KIROKU_CHECKPOINT_EVERY`); see [`Projector::checkpoint_due`].
const DEFAULT_CHECKPOINT_EVERY: i64 = 50_000;
/// During a long catch-up, no checkpoint before this long (reading and folding) since it began
/// or last checkpointed: doing that again after a crash costs less than writing (unless
/// `KIROKU_CHECKPOINT_EVERY` is set, which counts events alone).
const CHECKPOINT_PAUSE: std::time::Duration = std::time::Duration::from_secs(10);
/// How many calls of [`Projector::cool`] in a row (one per 30 s tick while serving) must find
/// a history shard unread and unchanged before it is kept encoded again: two minutes.
pub const IDLE_SWEEPS: u8 = 4;
/// History shards encoded under one read lock by [`Projector::cool`]: one, so that a fold
/// waits at most one shard's encoding (about 2 ms at 5M events) while a whole idle history is
/// encoded shard by shard.
const COOL_BATCH: usize = 1;
/// Pages of the log read and parsed ahead of the fold during a catch-up.
const READ_AHEAD: usize = 3;

/// The names the read models' pieces are stored under (a piece's key starts with one).
const PLANS: &str = "plans";
const TIMELINE: &str = "timeline";
const HISTORIES: &str = "histories";
const FACTS: &str = "facts";

#[derive(Clone, Default, Serialize, Deserialize)]
struct State {
    position: i64,
    histories: Histories,
    facts: Facts,
    plans: PlanBook,
    /// (last position, recorded_at) of every run of events recorded in the same millisecond,
    /// to turn an `as_of` time into a position. One entry per run, not per event: an import's
    /// thousands of events share a few milliseconds (one on PostgreSQL, whose time is the
    /// statement's), and an entry per event was 16 bytes of every event (80 MB at 5M).
    timeline: Segmented<(i64, i64)>,
}

impl State {
    /// The keys of its pieces: every one when `all`, otherwise those changed since the last
    /// call. The plan book grows with the plans, not with the log, and is written every time.
    fn keys(&self, all: bool) -> Vec<String> {
        let mut out = vec![PLANS.to_string()];
        self.timeline.keys(TIMELINE, all, &mut out);
        self.histories.keys(HISTORIES, all, &mut out);
        self.facts.keys(FACTS, all, &mut out);
        out
    }

    /// The pieces named by `keys`, from the first, until about `max_bytes` are encoded (at
    /// least one): how many keys were taken, and the pieces.
    fn encode(
        &self,
        keys: &[String],
        max_bytes: usize,
    ) -> Result<(usize, Vec<Piece>), StorageError> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut taken = 0;
        for key in keys {
            if taken > 0 && bytes >= max_bytes {
                break;
            }
            taken += 1;
            let encoded = if key == PLANS {
                serde_json::to_vec(&self.plans)
                    .map(Some)
                    .map_err(pieces::Unencodable::from)
            } else if pieces::below(TIMELINE, key).is_some() {
                self.timeline.encode(TIMELINE, key)
            } else if pieces::part(HISTORIES, key).is_some() {
                self.histories.encode(HISTORIES, key)
            } else {
                self.facts.encode(FACTS, key)
            };
            let encoded = encoded
                .map_err(|e| StorageError::Corrupt(format!("encoding the read models: {e}")))?;
            if let Some(encoded) = encoded {
                bytes += encoded.len();
                out.push((key.clone(), encoded));
            }
        }
        Ok((taken, out))
    }

    /// The pieces named by `keys`, ready to be encoded after the read lock is let go: a warm
    /// history shard is held as it stands (a fold meanwhile copies it first), every other
    /// piece is encoded now. So a serving checkpoint's pieces are all of one position while
    /// folds wait only for the small pieces, not for every changed shard's encoding.
    fn prepare(&self, keys: &[String]) -> Result<Vec<(String, Prepared)>, StorageError> {
        let mut out = Vec::with_capacity(keys.len());
        for (n, key) in keys.iter().enumerate() {
            if let Some(later) = self.histories.defer(HISTORIES, key) {
                out.push((key.clone(), Prepared::Later(later)));
                continue;
            }
            let (_, mut now) = self.encode(&keys[n..=n], usize::MAX)?;
            if let Some((key, bytes)) = now.pop() {
                out.push((key, Prepared::Now(bytes)));
            }
        }
        Ok(out)
    }

    /// Folds `events` (in position order) into every read model.
    fn fold(&mut self, events: &[Recorded]) {
        for event in events {
            self.histories.apply(event);
            self.facts.apply(event);
            self.plans.apply(event);
            // Never back in time (SQLite's clock may step back; PostgreSQL's trigger keeps
            // `recorded_at` from decreasing): the timeline stays sorted, and an `as_of` gives
            // the longest stretch of the log recorded at or before it.
            let last = self.timeline.last().map(|&(_, at)| at);
            let at = last.map_or(event.recorded_at, |last| event.recorded_at.max(last));
            if last != Some(at) {
                self.timeline.push((event.position, at));
            } else if let Some(run) = self.timeline.last_mut() {
                run.0 = event.position;
            }
            self.position = event.position;
        }
    }

    /// The read models at `position` from their pieces. The histories stay encoded (cold) and
    /// are decoded shard by shard when asked for or changed ([`Sharded`]); the rest is decoded
    /// here.
    ///
    /// [`Sharded`]: kiroku_projections::pieces::Sharded
    fn restore(
        position: i64,
        mut stored: Stored,
        mut cold: ColdStored,
    ) -> Result<State, Unreadable> {
        let histories = Histories::take_with(HISTORIES, &mut stored, &mut cold)?;
        Ok(State {
            position,
            plans: pieces::read_whole(PLANS, &stored)?,
            timeline: Pieces::take(TIMELINE, &mut stored)?,
            histories,
            facts: Pieces::take(FACTS, &mut stored)?,
        })
    }

    /// The position a report `as_of` (ms; `None` = now) is drawn at, and its `as_of` label.
    fn resolve(&self, as_of: Option<i64>) -> (i64, String) {
        let (at, moment) = self.moment(as_of);
        (at, rfc3339_ms(moment))
    }

    /// The position a report `as_of` (ms; `None` = now) is drawn at, and that moment.
    fn moment(&self, as_of: Option<i64>) -> (i64, i64) {
        match as_of {
            Some(ms) => (self.position_at(ms), ms),
            None => (self.position, now_ms()),
        }
    }

    /// The last position recorded at or before `as_of` (ms), 0 before the first event: the
    /// last position of the last run recorded at or before it.
    fn position_at(&self, as_of: i64) -> i64 {
        let after = self.timeline.partition_point(|&(_, at)| at <= as_of);
        if after == 0 {
            0
        } else {
            self.timeline[after - 1].0
        }
    }
}

/// A piece of a checkpoint: encoded, or to be encoded after the read lock ([`State::prepare`]).
enum Prepared {
    Now(Vec<u8>),
    Later(pieces::Deferred),
}

/// Encodes what [`State::prepare`] deferred, off the async workers where it may.
fn finish(prepared: Vec<(String, Prepared)>) -> Result<Vec<Piece>, StorageError> {
    let run = || {
        prepared
            .into_iter()
            .map(|(key, piece)| match piece {
                Prepared::Now(bytes) => Ok((key, bytes)),
                Prepared::Later(encode) => encode()
                    .map(|bytes| (key, bytes))
                    .map_err(|e| StorageError::Corrupt(format!("encoding the read models: {e}"))),
            })
            .collect()
    };
    off_the_workers(run)
}

/// Runs `work`, long and CPU-bound, giving the async worker up first where the runtime allows
/// it (a multi-threaded one), so that the tasks queued on it run meanwhile.
fn off_the_workers<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// The keys whose marks a checkpoint has taken. Unless the checkpoint records them in a
/// manifest, they go back to the projector's pending keys for the next one, whichever way it
/// ends: an error, or its future dropped at a wait (the serving task is aborted at shutdown,
/// a request whose client went away drops its catch-up). Put back only on errors, a dropped
/// checkpoint lost them, and the next manifest named the earlier versions of those pieces:
/// read models that a start took for whole (seen once as a short timeline segment at 5M).
struct Taken<'a> {
    keys: Vec<String>,
    pending: &'a std::sync::Mutex<BTreeSet<String>>,
    recorded: bool,
}

impl Taken<'_> {
    fn recorded(mut self) {
        self.recorded = true;
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if self.recorded {
            return;
        }
        // A poisoned lock means a panic elsewhere: the process is going down anyway.
        if let Ok(mut pending) = self.pending.lock() {
            pending.extend(self.keys.drain(..));
        }
    }
}

/// What the projector is doing when it asks whether a checkpoint is due.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Folding a stretch of the log; `folded` events so far in this catch-up, `since` the
    /// catch-up began or last checkpointed.
    CatchingUp {
        folded: i64,
        since: std::time::Duration,
    },
    Serving,
}

/// Where and why the projector stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    pub position: i64,
    pub event_type: String,
    pub problem: String,
}

pub struct Projector {
    backend: Backend,
    state: RwLock<State>,
    stopped: RwLock<Option<Stopped>>,
    catching_up: Mutex<()>,
    checkpointed: AtomicI64,
    checkpoint_every: i64,
    /// See [`CHECKPOINT_PAUSE`].
    checkpoint_pause: std::time::Duration,
    /// One checkpoint at a time in this process.
    checkpointing: Mutex<()>,
    /// The manifest this process last wrote or loaded, which the next checkpoint builds on;
    /// `None`: the next checkpoint writes every piece.
    manifest: std::sync::Mutex<Option<store::Manifest>>,
    /// Pieces a checkpoint that did not end in a manifest (an error, or its future dropped)
    /// had taken the marks of: the next one writes them.
    pending: std::sync::Mutex<BTreeSet<String>>,
    /// The keys of the pieces the last checkpoint wrote, and their bytes.
    written: std::sync::Mutex<(Vec<String>, usize)>,
    /// When a catch-up last failed because the database was out of reach (ms, 0 = never).
    failed_at: AtomicI64,
    /// One [`Projector::cool`] at a time.
    cooling: std::sync::Mutex<()>,
}

fn poisoned<T>(_: T) -> StorageError {
    StorageError::Corrupt("projector state poisoned".into())
}

/// A checkpoint's fingerprint: SHA-256 of the chain hash at its position and its bytes.
async fn seal(backend: &Backend, position: i64, bytes: &[u8]) -> Result<String, StorageError> {
    let hash = crate::storage::chain::hash_at(backend, position)
        .await?
        .unwrap_or_else(|| crate::storage::chain::GENESIS.to_string());
    let mut hasher = Sha256::new();
    hasher.update(hash.as_bytes());
    hasher.update(bytes);
    Ok(hex::encode(hasher.finalize()))
}

/// Turns a stored event into the typed form projections read; an event this version cannot
/// read is where the projector stops.
fn recorded(event: &LogEvent) -> Result<Recorded, Stopped> {
    let parsed = LedgerEvent::parse(&event.aggregate_type, &event.payload)
        .map_err(|e| Stopped::at(event.position, &event.aggregate_type, &event.event_type, e))?;
    Ok(Recorded {
        position: event.position,
        recorded_at: event.recorded_at,
        aggregate_id: event.aggregate_id.clone(),
        actor: event.metadata_str("actor").map(str::to_string),
        reason: event.metadata_str("reason").map(str::to_string),
        event: parsed,
    })
}

/// What the projections read of an event's metadata.
#[derive(Deserialize)]
struct Signed {
    actor: Option<String>,
    reason: Option<String>,
}

/// [`recorded`] straight from the stored JSON text (the catch-up's and the rebuild's path).
fn recorded_raw(event: RawEvent) -> Result<Recorded, Stopped> {
    let stop = |problem: String| Stopped {
        position: event.position,
        event_type: format!("{}.{}", event.aggregate_type, event.event_type),
        problem: format!("event at position {}: {problem}", event.position),
    };
    let parsed = LedgerEvent::parse_str(&event.aggregate_type, &event.payload)
        .map_err(|e| stop(e.to_string()))?;
    let signed: Signed =
        serde_json::from_str(&event.metadata).map_err(|e| stop(format!("metadata: {e}")))?;
    Ok(Recorded {
        position: event.position,
        recorded_at: event.recorded_at,
        aggregate_id: event.aggregate_id,
        actor: signed.actor,
        reason: signed.reason,
        event: parsed,
    })
}

/// The events of `page` in typed form, up to the first one this version cannot read.
fn typed<E>(
    page: Vec<E>,
    read: impl Fn(E) -> Result<Recorded, Stopped>,
) -> (Vec<Recorded>, Option<Stopped>) {
    let mut events = Vec::with_capacity(page.len());
    for event in page {
        match read(event) {
            Ok(event) => events.push(event),
            Err(stop) => return (events, Some(stop)),
        }
    }
    (events, None)
}

impl Stopped {
    fn at(position: i64, aggregate_type: &str, event_type: &str, error: impl ToString) -> Self {
        Stopped {
            position,
            event_type: format!("{aggregate_type}.{event_type}"),
            problem: format!("event at position {position}: {}", error.to_string()),
        }
    }
}

impl Projector {
    /// A projector with empty read models, to be filled from the start of the log.
    pub fn new(backend: Backend) -> Self {
        let configured = std::env::var("KIROKU_CHECKPOINT_EVERY")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n: &i64| *n > 0);
        let (checkpoint_every, checkpoint_pause) = match configured {
            Some(every) => (every, std::time::Duration::ZERO),
            None => (DEFAULT_CHECKPOINT_EVERY, CHECKPOINT_PAUSE),
        };
        Projector {
            backend,
            state: RwLock::new(State::default()),
            stopped: RwLock::new(None),
            catching_up: Mutex::new(()),
            checkpointed: AtomicI64::new(0),
            checkpoint_every,
            checkpoint_pause,
            checkpointing: Mutex::new(()),
            manifest: std::sync::Mutex::new(None),
            pending: std::sync::Mutex::new(BTreeSet::new()),
            written: std::sync::Mutex::new((Vec::new(), 0)),
            failed_at: AtomicI64::new(0),
            cooling: std::sync::Mutex::new(()),
        }
    }

    /// A cold history shard's bytes, put away in a file of their own ([`cold`]); held in
    /// memory when that cannot be done (no place to write, the disk full, no descriptor left).
    fn keep_cold(&self, bytes: Vec<u8>) -> ColdBytes {
        match cold::put(&bytes) {
            Ok(away) => away,
            Err(error) => {
                tracing::warn!(%error, "a cold history shard is held in memory: it could not be put away");
                ColdBytes::from(bytes)
            }
        }
    }

    /// A projector resuming from its last readable checkpoint (or from the start).
    pub async fn open(backend: Backend) -> Result<Self, StorageError> {
        let started = std::time::Instant::now();
        let projector = Projector::new(backend);
        let Some((format, position, stored, bytes)) =
            store::read_manifest(&projector.backend, CHECKPOINT).await?
        else {
            return Ok(projector);
        };
        let fits = stored == seal(&projector.backend, position, &bytes).await?;
        let manifest = serde_json::from_slice::<store::Manifest>(&bytes)
            .ok()
            .filter(|m| fits && format == FORMAT && m.position == position)
            .map(|m| store::Manifest {
                sealed: stored.clone(),
                ..m
            });
        // The history shards are put away as they arrive; the rest is held to be decoded.
        let (mut stored, mut cold) = (Stored::new(), ColdStored::new());
        let whole = match &manifest {
            Some(manifest) => {
                store::read_pieces(&projector.backend, manifest, |key, bytes| {
                    match Histories::is_shard(HISTORIES, &key)
                        .then(|| pieces::records_in(&key, &bytes).ok())
                        .flatten()
                    {
                        Some(len) => {
                            let bytes = projector.keep_cold(bytes);
                            cold.insert(key, ColdPiece { bytes, len });
                        }
                        // One that does not even say its length is left to `restore` to refuse.
                        None => {
                            stored.insert(key, bytes);
                        }
                    }
                    Ok(())
                })
                .await?
            }
            None => false,
        };
        let read = started.elapsed();
        let state = whole.then(|| State::restore(position, stored, cold));
        match (manifest, state) {
            (Some(manifest), Some(Ok(state))) => {
                tracing::debug!(
                    reading_s = read.as_secs_f64(),
                    decoding_s = (started.elapsed() - read).as_secs_f64(),
                    "checkpoint loaded"
                );
                *projector.state.write().map_err(poisoned)? = state;
                *projector.manifest.lock().map_err(poisoned)? = Some(manifest);
                projector.checkpointed.store(position, Ordering::SeqCst);
            }
            (_, state) => {
                let problem = match state {
                    Some(Err(e)) => e.to_string(),
                    Some(Ok(_)) | None => "a piece is missing or altered".into(),
                };
                tracing::warn!(
                    format,
                    position,
                    fits,
                    problem,
                    "ignoring an unreadable or altered projection checkpoint; rebuilding from the log"
                );
            }
        }
        Ok(projector)
    }

    /// Writes the pieces of the read models that changed since the last checkpoint, then the
    /// manifest of their position (see [`store`]). The pieces are encoded under the read lock
    /// (folding waits, reads do not), so that they are all of one position.
    pub async fn checkpoint(&self) -> Result<i64, StorageError> {
        let _one = self.checkpointing.lock().await;
        self.checkpoint_locked(false).await
    }

    /// A checkpoint taken while nothing else folds (a rebuild, a shutdown): the pieces are
    /// encoded and written a few at a time, so that the memory it takes does not follow the
    /// size of the read models.
    pub async fn checkpoint_quiet(&self) -> Result<i64, StorageError> {
        let _no_folding = self.catching_up.lock().await;
        let _one = self.checkpointing.lock().await;
        self.checkpoint_locked(true).await
    }

    /// A checkpoint; `quiet` when the caller holds the catch-up lock (nothing folds, so the
    /// read models stay at one position between the read locks of its batches).
    async fn checkpoint_locked(&self, quiet: bool) -> Result<i64, StorageError> {
        let mut base = self.manifest.lock().map_err(poisoned)?.clone();
        loop {
            // The keys and their pieces must be of one position. While serving, events are
            // folded between two read locks, so the pieces are encoded under the same lock
            // as the keys are taken; a quiet checkpoint (nothing folds) encodes them a few
            // at a time later, under read locks of their own.
            let (position, taken, encoded) = {
                let state = self.state.read().map_err(poisoned)?;
                // Never write a shard that read as empty because it could not be decoded.
                if let Some(damage) = state.histories.damage() {
                    return Err(StorageError::Corrupt(format!(
                        "not checkpointing: {damage}"
                    )));
                }
                if base.as_ref().is_some_and(|m| m.position >= state.position) {
                    return Ok(state.position);
                }
                let mut keys: BTreeSet<String> = state.keys(base.is_none()).into_iter().collect();
                // What a checkpoint that did not finish had taken the marks of is written again.
                keys.append(&mut *self.pending.lock().map_err(poisoned)?);
                let taken = Taken {
                    keys: keys.into_iter().collect(),
                    pending: &self.pending,
                    recorded: false,
                };
                let prepared = match quiet {
                    true => None,
                    false => Some(state.prepare(&taken.keys)?),
                };
                (state.position, taken, prepared)
            };
            // The changed history shards are encoded here, after the read lock.
            let encoded = encoded.map(finish).transpose()?;
            let expected = base.as_ref().map(|m| m.sealed.clone());
            let first = expected.is_none();
            let manifest = base.unwrap_or_default().at(position);
            let written = self.write(manifest, expected, &taken.keys, encoded, quiet);
            let (moved, manifest, size) = written.await?;
            tracing::debug!(
                position,
                pieces = taken.keys.len(),
                bytes = size,
                moved,
                "checkpoint"
            );
            *self.written.lock().map_err(poisoned)? = (taken.keys.clone(), size);
            if moved || first {
                *self.manifest.lock().map_err(poisoned)? = moved.then_some(manifest);
                self.checkpointed.store(position, Ordering::SeqCst);
                // The manifest names them now (or, not moved, the next checkpoint is whole).
                taken.recorded();
                store::collect_garbage(&self.backend, CHECKPOINT, FORMAT, self.pause(quiet))
                    .await?;
                return Ok(position);
            }
            // Another process moved the manifest since this one was written: every piece.
            tracing::debug!(
                position,
                "the checkpoint moved under this one; writing it whole"
            );
            *self.manifest.lock().map_err(poisoned)? = None;
            base = None;
        }
    }

    /// Encodes and writes the pieces named by `keys` (all at once, or 4 MiB at a time when
    /// `quiet`), records them in `manifest` and swaps it for the manifest at `expected`:
    /// whether it moved, the manifest, and the bytes written.
    async fn write(
        &self,
        mut manifest: store::Manifest,
        expected: Option<String>,
        keys: &[String],
        encoded: Option<Vec<Piece>>,
        quiet: bool,
    ) -> Result<(bool, store::Manifest, usize), StorageError> {
        let position = manifest.position;
        let mut size = 0;
        let mut record = async |pieces: &[Piece]| {
            store::write_pieces(&self.backend, position, pieces, self.pause(quiet)).await?;
            manifest.record(position, pieces);
            size += pieces.iter().map(|(_, b)| b.len()).sum::<usize>();
            Ok::<(), StorageError>(())
        };
        match encoded {
            Some(pieces) => record(&pieces).await?,
            None => {
                let mut done = 0;
                while done < keys.len() {
                    let (taken, pieces) = {
                        let state = self.state.read().map_err(poisoned)?;
                        state.encode(&keys[done..], store::BATCH_BYTES)?
                    };
                    done += taken;
                    record(&pieces).await?;
                }
            }
        }
        let moved = store::swap_manifest(
            &self.backend,
            CHECKPOINT,
            FORMAT,
            expected.as_deref(),
            &mut manifest,
        )
        .await?;
        Ok((moved, manifest, size))
    }

    /// The pause between a checkpoint's transactions: only while serving on SQLite, where
    /// commands wait on the same single write lock ([`store::YIELD`]).
    fn pause(&self, quiet: bool) -> std::time::Duration {
        match (&self.backend, quiet) {
            (Backend::Sqlite(_), false) => store::YIELD,
            _ => std::time::Duration::ZERO,
        }
    }

    /// The keys of the pieces the last checkpoint wrote, and their bytes.
    pub fn last_checkpoint(&self) -> (Vec<String>, usize) {
        self.written.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// Checkpoints when the read models moved since the last checkpoint (at shutdown).
    pub async fn checkpoint_if_moved(&self) -> Result<(), StorageError> {
        if self.position() > self.checkpointed.load(Ordering::SeqCst) {
            self.checkpoint_quiet().await?;
        }
        Ok(())
    }

    /// Checkpoints while serving when [`checkpoint_due`](Self::checkpoint_due) says so.
    /// Checkpoints quietly when the read models stand `KIROKU_CHECKPOINT_EVERY` events or
    /// more past the last checkpoint: after a long catch-up at start, before serving, rather
    /// than on the first tick while commands wait for the fold.
    pub async fn checkpoint_if_far(&self) -> Result<(), StorageError> {
        if self.position() - self.checkpointed.load(Ordering::SeqCst) >= self.checkpoint_every {
            self.checkpoint_quiet().await?;
        }
        Ok(())
    }

    pub async fn checkpoint_if_due(&self) -> Result<(), StorageError> {
        let (damage, in_checkpoint) = {
            let state = self.state.read().map_err(poisoned)?;
            (
                state.histories.damage(),
                state.histories.checkpoint_damaged(),
            )
        };
        if let Some(lost) = damage.as_ref().filter(|_| !in_checkpoint) {
            // A shard's copy put away could not be read back; the checkpoint is sound.
            return self.reload(lost).await;
        }
        if let Some(damage) = damage {
            // The checkpoint holds a shard that cannot be read back: deleted, so that the next
            // start rebuilds the read models from the log instead of loading it again.
            if self.checkpointed.swap(0, Ordering::SeqCst) > 0 {
                store::drop_all(&self.backend).await?;
                *self.manifest.lock().map_err(poisoned)? = None;
                tracing::error!(
                    %damage,
                    "a history shard of the checkpoint cannot be read: checkpoints deleted, \
                     the next start rebuilds the read models from the log"
                );
            }
            return Ok(());
        }
        if self.checkpoint_due(Phase::Serving) {
            self.checkpoint().await?;
        }
        Ok(())
    }

    /// Loads the read models again from the standing checkpoint (or, without one, from the
    /// log) for a history shard whose copy put away could not be read back ([`cold`]), which
    /// stopped the projector: what a restart would do. The new read models are caught up to
    /// the head before they replace the stopped ones, so nothing served steps back in time.
    async fn reload(&self, problem: &str) -> Result<(), StorageError> {
        let fresh = Projector::open(self.backend.clone()).await?;
        fresh.catch_up().await?;
        let old = {
            let _no_folding = self.catching_up.lock().await;
            let _one = self.checkpointing.lock().await;
            let state = std::mem::take(&mut *fresh.state.write().map_err(poisoned)?);
            let manifest = fresh.manifest.lock().map_err(poisoned)?.take();
            let stopped = fresh.stopped.write().map_err(poisoned)?.take();
            let old = std::mem::replace(&mut *self.state.write().map_err(poisoned)?, state);
            *self.manifest.lock().map_err(poisoned)? = manifest;
            self.pending.lock().map_err(poisoned)?.clear();
            self.checkpointed
                .store(fresh.checkpointed.load(Ordering::SeqCst), Ordering::SeqCst);
            *self.stopped.write().map_err(poisoned)? = stopped;
            old
        };
        // Freed outside the locks.
        drop(old);
        tracing::error!(
            problem,
            position = self.position(),
            "a history shard's copy could not be read back: the read models were loaded again \
             from the checkpoint and caught up"
        );
        self.catch_up().await.map(|_| ())
    }

    /// The one checkpoint policy. A checkpoint writes the pieces changed since the one
    /// before, so its cost follows what changed:
    /// - while serving, on every tick of the timer (30 s) when anything moved: a restart folds
    ///   at most what was recorded in the last tick;
    /// - during a long catch-up (one that has folded `KIROKU_CHECKPOINT_EVERY` events itself:
    ///   never the few events a serving process folds after a command, which must not wait
    ///   for a checkpoint), once that many events *and* as many as the last checkpoint covered
    ///   were folded since it (doubling), and not before [`CHECKPOINT_PAUSE`] of folding since
    ///   the catch-up began or last checkpointed. A catch-up touches nearly every history
    ///   shard between two checkpoints, so each one writes most of the histories again;
    ///   doubling keeps the sum of their sizes under twice the last, and a crash loses at most
    ///   half of the catch-up or the pause, whichever is longer. (At 1M events the whole
    ///   catch-up takes less than the pause: one checkpoint at the end, by the caller.)
    fn checkpoint_due(&self, phase: Phase) -> bool {
        let checkpointed = self.checkpointed.load(Ordering::SeqCst);
        let tail = self.position() - checkpointed;
        match phase {
            Phase::CatchingUp { folded, since } => {
                folded >= self.checkpoint_every
                    && tail >= self.checkpoint_every.max(checkpointed)
                    && since >= self.checkpoint_pause
            }
            Phase::Serving => tail > 0,
        }
    }

    /// Deletes every checkpoint: the next start rebuilds from the log.
    pub async fn drop_checkpoints(backend: &Backend) -> Result<(), StorageError> {
        store::drop_all(backend).await
    }

    /// The position of the read models and the SHA-256 of their serialized form: two
    /// projectors that folded the same log agree byte for byte.
    pub fn fingerprint(&self) -> Result<(i64, String), StorageError> {
        let state = self.state.read().map_err(poisoned)?;
        if let Some(damage) = state.histories.damage() {
            return Err(StorageError::Corrupt(format!(
                "reading the histories: {damage}"
            )));
        }
        // Hashed as serde writes it, never from a copy of the JSON (a copy doubled a
        // rebuild's peak memory: 250 MB at 1M events, more than 1 GB at 5M).
        let mut digesting = std::io::BufWriter::with_capacity(1 << 16, Sha256::new());
        serde_json::to_writer(&mut digesting, &*state)
            .map_err(|e| StorageError::Corrupt(format!("encoding the read models: {e}")))?;
        let digest = digesting
            .into_inner()
            .map_err(|e| StorageError::Corrupt(format!("encoding the read models: {e}")))?;
        Ok((state.position, hex::encode(digest.finalize())))
    }

    pub fn position(&self) -> i64 {
        self.state.read().map(|s| s.position).unwrap_or(0)
    }

    /// Lets the history shards nobody read or changed in the last [`IDLE_SWEEPS`] calls go
    /// cold: each is encoded under a read lock of its own (folding waits, reads do not)
    /// and swapped for its bytes under the write lock, unless it was touched in between. What
    /// readers had decoded of idle cold shards is forgotten too. Returns how many shards went
    /// cold. Called on the server's 30 s tick.
    pub fn cool(&self) -> Result<usize, StorageError> {
        let _one = self.cooling.lock().map_err(poisoned)?;
        let idle = self
            .state
            .read()
            .map_err(poisoned)?
            .histories
            .idle(IDLE_SWEEPS);
        let mut cooled = 0;
        for batch in idle.warm.chunks(COOL_BATCH) {
            let encoded = {
                let state = self.state.read().map_err(poisoned)?;
                batch
                    .iter()
                    .filter_map(|&shard| {
                        let bytes = state.histories.encode_shard(shard)?;
                        Some(bytes.map(|bytes| (shard, bytes)))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| StorageError::Corrupt(format!("encoding the histories: {e}")))?
            };
            // Put away before the write lock is taken.
            let kept: Vec<_> = encoded
                .into_iter()
                .map(|(shard, bytes)| (shard, self.keep_cold(bytes)))
                .collect();
            let mut state = self.state.write().map_err(poisoned)?;
            for (shard, bytes) in kept {
                cooled += usize::from(state.histories.freeze(shard, bytes));
            }
        }
        // Dropped after the write lock is let go.
        let forgotten = self
            .state
            .write()
            .map_err(poisoned)?
            .histories
            .forget(&idle.decoded);
        drop(forgotten);
        Ok(cooled)
    }

    /// The people whose personal data was erased (read without decoding any history shard).
    pub fn erased(&self) -> Result<Vec<uuid::Uuid>, StorageError> {
        let state = self.state.read().map_err(poisoned)?;
        Ok(state.histories.erased.iter().copied().collect())
    }

    /// How many history shards are held decoded (warm): (staff, sessions). The others are
    /// kept as their checkpoint's bytes until asked for or changed.
    pub fn warm_shards(&self) -> (usize, usize) {
        self.state
            .read()
            .map(|s| s.histories.warm_shards())
            .unwrap_or_default()
    }

    /// How many history shards are cold with their bytes put away in a file ([`cold`]), not
    /// held in memory: (staff, sessions).
    pub fn shards_away(&self) -> (usize, usize) {
        self.state
            .read()
            .map(|s| s.histories.shards_away())
            .unwrap_or_default()
    }

    /// The event the projector stopped at, if it did.
    pub fn stopped(&self) -> Option<Stopped> {
        self.stopped.read().ok().and_then(|s| s.clone())
    }

    /// Applies every event committed since the last call. An event that cannot be read stops
    /// the projector at the event before it (see [`stopped`](Self::stopped)); it is never
    /// skipped, and the projector stays there until a version that reads it is started.
    pub async fn catch_up(&self) -> Result<i64, StorageError> {
        // While the database is out of reach, callers queued here would each wait out their
        // own timeout in turn: they wait at most that long in all, and learn at once from a
        // catch-up that has just failed.
        let unavailable = || StorageError::Unavailable("the projector cannot read the log".into());
        // Usually the read models stand at the head already (this process folds its own
        // commits as it makes them): asking for the head needs no lock, so requests checking
        // for other processes' writes do not queue behind one another.
        if now_ms() - self.failed_at.load(Ordering::SeqCst)
            >= crate::storage::database_wait().as_millis() as i64
        {
            let position = self.position();
            match crate::storage::log::head(&self.backend).await {
                Ok(head) if head <= position => return Ok(position),
                Ok(_) => {}
                Err(error) => {
                    if let StorageError::Unavailable(_) = &error {
                        self.failed_at.store(now_ms(), Ordering::SeqCst);
                    }
                    return Err(error);
                }
            }
        }
        let Ok(_only_one) =
            tokio::time::timeout(crate::storage::database_wait(), self.catching_up.lock()).await
        else {
            return Err(unavailable());
        };
        if now_ms() - self.failed_at.load(Ordering::SeqCst)
            < crate::storage::database_wait().as_millis() as i64
        {
            return Err(unavailable());
        }
        let result = self.catch_up_locked().await;
        if let Err(StorageError::Unavailable(_)) = &result {
            self.failed_at.store(now_ms(), Ordering::SeqCst);
        }
        result
    }

    /// Reads the log after the read models' position up to its head, in ranges of positions
    /// read and parsed side by side on other tasks ([`READ_AHEAD`] at a time) while this one
    /// folds them in order; then again up to the new head, until the head stays put.
    async fn catch_up_locked(&self) -> Result<i64, StorageError> {
        if self.stopped().is_some() {
            return Ok(self.position());
        }
        let page_size = PAGE.min(self.checkpoint_every);
        let read = |after: i64, until: i64| {
            let backend = self.backend.clone();
            tokio::spawn(async move {
                let page = read_raw_between(&backend, after, until).await?;
                Ok::<_, StorageError>(typed(page, recorded_raw))
            })
        };
        let from = self.position();
        // Where a long catch-up spends its time (logged at debug level when it ends).
        let (mut waited, mut folding, mut checkpointing) = (0.0, 0.0, 0.0);
        let mut since = std::time::Instant::now();
        loop {
            let head = crate::storage::log::head(&self.backend).await?;
            if head <= self.position() {
                if self.position() > from {
                    tracing::debug!(
                        events = self.position() - from,
                        waiting_for_pages_s = waited,
                        folding_s = folding,
                        checkpointing_s = checkpointing,
                        "caught up"
                    );
                }
                return Ok(self.position());
            }
            crate::metrics::saw_head(head);
            let mut queued = self.position();
            let mut pages = std::collections::VecDeque::new();
            loop {
                while pages.len() < READ_AHEAD && queued < head {
                    let until = (queued + page_size).min(head);
                    pages.push_back(read(queued, until));
                    queued = until;
                }
                let Some(page) = pages.pop_front() else {
                    break;
                };
                let wait_started = std::time::Instant::now();
                let (events, stop) = page
                    .await
                    .map_err(|e| StorageError::Corrupt(format!("reading the log: {e}")))??;
                waited += wait_started.elapsed().as_secs_f64();
                if stop.is_some() {
                    return self.apply(events, stop).map(|(position, _)| position);
                }
                let fold_started = std::time::Instant::now();
                // A page spawned from this task waits in this worker's LIFO slot, which other
                // workers do not steal from, until the task yields: the fold gives the worker
                // up instead, so the pages ahead are read and parsed meanwhile.
                off_the_workers(|| self.apply(events, None))?;
                folding += fold_started.elapsed().as_secs_f64();
                let folded = self.position() - from;
                let since_last = since.elapsed();
                if self.checkpoint_due(Phase::CatchingUp {
                    folded,
                    since: since_last,
                }) {
                    let checkpoint_started = std::time::Instant::now();
                    // This catch-up holds the catch-up lock: nothing else folds meanwhile.
                    let _one = self.checkpointing.lock().await;
                    self.checkpoint_locked(true).await?;
                    checkpointing += checkpoint_started.elapsed().as_secs_f64();
                    since = std::time::Instant::now();
                }
            }
        }
    }

    /// Folds `events` (typed, in position order, following the read models' position) into
    /// the read models; then, if `stop` names an event this version cannot read, stops the
    /// projector there. Returns the new position and whether the projector stopped.
    fn apply(
        &self,
        events: Vec<Recorded>,
        stop: Option<Stopped>,
    ) -> Result<(i64, bool), StorageError> {
        let (position, damage) = {
            let mut state = self.state.write().map_err(poisoned)?;
            state.fold(&events);
            (state.position, state.histories.damage())
        };
        // A history shard that could not be decoded was folded into as empty: the read models
        // are wrong from here, so the projector stops (and no checkpoint is written).
        let stop = stop.or_else(|| {
            damage.map(|problem| Stopped {
                position,
                event_type: "histories".into(),
                problem,
            })
        });
        let Some(stop) = stop else {
            return Ok((position, false));
        };
        tracing::error!(
            position = stop.position,
            event_type = %stop.event_type,
            problem = %stop.problem,
            "the projector stopped (at an event this version cannot read, or at a history \
             shard that cannot be read back); commands are refused until it is resolved"
        );
        *self.stopped.write().map_err(poisoned)? = Some(stop);
        Ok((position, true))
    }

    /// A batch this process has just committed: the position before it and its events. When
    /// the read models stand exactly at `previous` and no catch-up is running, the batch is
    /// folded in at once, without reading the log; otherwise the next catch-up reads it.
    pub fn offer(&self, previous: i64, events: &[LogEvent]) {
        let Some(last) = events.last() else {
            return;
        };
        crate::metrics::saw_head(last.position);
        let Ok(_only_one) = self.catching_up.try_lock() else {
            return;
        };
        if self.stopped().is_some() || self.position() != previous {
            return;
        }
        let (typed_events, stop) = typed(events.iter().collect(), recorded);
        if let Err(error) = self.apply(typed_events, stop) {
            tracing::warn!(%error, "folding a committed batch into the read models failed");
        }
    }

    /// Catches up unless the read models already reflect `position`.
    pub async fn catch_up_to(&self, position: i64) -> Result<i64, StorageError> {
        let now = self.position();
        if now >= position {
            return Ok(now);
        }
        self.catch_up().await
    }

    /// Reads the histories under a shared lock.
    pub fn read<R>(&self, f: impl FnOnce(&Histories) -> R) -> Result<R, StorageError> {
        let state = self.state.read().map_err(poisoned)?;
        let read = f(&state.histories);
        // A cold shard that could not be decoded read as empty: not an answer to give.
        if let Some(damage) = state.histories.damage() {
            return Err(StorageError::Corrupt(format!(
                "reading the histories: {damage}"
            )));
        }
        Ok(read)
    }
}

impl Projector {
    /// The progress sheet of plan item `code` as the log stood at `as_of` (ms since the
    /// epoch; `None` = now). `None` when the item was not defined by then.
    pub fn sheet(&self, code: &str, as_of: Option<i64>) -> Result<Option<Sheet>, StorageError> {
        let state = self.state.read().map_err(poisoned)?;
        let (at, moment) = state.moment(as_of);
        Ok(sheet::sheet(&state.plans, &state.facts, code, at, moment))
    }

    /// Every indicator's actual of plan item `code` for `fiscal_year` as the log stands now,
    /// and the position that is: what a publication freezes. `None` when the item is unknown.
    #[allow(clippy::type_complexity)]
    pub fn actuals(
        &self,
        code: &str,
        fiscal_year: FiscalYear,
    ) -> Result<Option<(i64, BTreeMap<Code, Option<f64>>)>, StorageError> {
        let state = self.state.read().map_err(poisoned)?;
        let Some(item) = state.plans.items.get(code) else {
            return Ok(None);
        };
        let at = state.position;
        let values = item
            .indicators
            .iter()
            .map(|indicator| {
                let ind = &indicator.value;
                let value = match &ind.source {
                    IndicatorSource::Rule { rule, params } => {
                        state.facts.compute(*rule, params, fiscal_year, at)
                    }
                    IndicatorSource::Manual(_) => state
                        .facts
                        .manual_actual(code, ind.indicator_code.as_str(), fiscal_year, at)
                        .map(|m| m.value),
                };
                (ind.indicator_code.clone(), value)
            })
            .collect();
        Ok(Some((at, values)))
    }

    /// Every change of the target or the actual of (item, indicator, fiscal year) from the
    /// events recorded at or before `as_of` (`None` = now): `(position, as_of label, changes)`.
    /// `None` when the item or indicator was not defined by then.
    pub fn audit(
        &self,
        code: &str,
        indicator: &str,
        fiscal_year: FiscalYear,
        as_of: Option<i64>,
    ) -> Result<Option<(i64, String, Trail)>, StorageError> {
        let state = self.state.read().map_err(poisoned)?;
        let (at, label) = state.resolve(as_of);
        Ok(
            audit::trail(&state.facts, &state.plans, code, indicator, fiscal_year, at)
                .map(|changes| (at, label, changes)),
        )
    }

    /// The codes and titles of every plan item, in code order.
    pub fn plan_items(&self) -> Result<Vec<(String, String)>, StorageError> {
        let state = self.state.read().map_err(poisoned)?;
        Ok(state
            .plans
            .items
            .iter()
            .map(|(code, item)| (code.clone(), item.definition.value.title.to_string()))
            .collect())
    }
}
