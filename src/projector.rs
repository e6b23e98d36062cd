//! The projector: reads the log by position and folds every event, exactly once and in
//! order, into the read models of `kiroku-projections`. It runs after each command (so a
//! caller reads its own writes) and on a timer (to pick up writes from other processes).
//!
//! The read models live in memory and are checkpointed to `projection_checkpoints`: the whole
//! state and the position it reflects in one row, written by one statement. After a crash the
//! projector resumes from its last checkpoint; a checkpoint it cannot read (another format, a
//! damaged row) or whose fingerprint does not match is ignored and the read models are
//! rebuilt from the log. The fingerprint covers the state and the chain hash at its
//! position, so a checkpoint only fits the log it was drawn from.
//!
//! An event this version cannot read (written by a newer version, or damaged) stops the
//! projector *visibly*: the read models stay at the event before it and go on serving,
//! `/healthz` says `degraded` and names the event, and commands are refused until a version
//! that reads it is running. Nothing is skipped.

use crate::storage::log::{read_raw_after, LogEvent, RawEvent};
use crate::storage::{now_ms, Backend, StorageError};
use crate::with_pool;
use kiroku_domain::plan::IndicatorSource;
use kiroku_domain::values::{Code, FiscalYear};
use kiroku_projections::audit::{self, Trail};
use kiroku_projections::history::Histories;
use kiroku_projections::indicators::Facts;
use kiroku_projections::plans::PlanBook;
use kiroku_projections::rfc3339_ms;
use kiroku_projections::sheet::{self, Sheet};
use kiroku_projections::{LedgerEvent, Recorded};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::RwLock;
use tokio::sync::Mutex;

const PAGE: i64 = 5000;
const CHECKPOINT: &str = "read_models";
/// The largest part of a checkpoint stored as one value (`KIROKU_CHECKPOINT_PART_BYTES`, which
/// the tests set small to store even a small checkpoint in several parts).
const PART_BYTES: usize = 64 << 20;
/// Bump when the shape of a read model changes: older checkpoints are then rebuilt.
const FORMAT: i32 = 1;
/// During a long catch-up, the first checkpoint after this many events
/// (`KIROKU_CHECKPOINT_EVERY`); see [`Projector::checkpoint_due`].
const DEFAULT_CHECKPOINT_EVERY: i64 = 50_000;
/// While serving, a checkpoint once the events since the last one are this share of the log
/// (1/8): a restart folds at most an eighth of the log after loading the checkpoint.
const SERVING_SHARE: i64 = 8;

#[derive(Clone, Default, Serialize, Deserialize)]
struct State {
    position: i64,
    histories: Histories,
    facts: Facts,
    plans: PlanBook,
    /// (position, recorded_at) of every event, to turn an `as_of` time into a position.
    timeline: Vec<(i64, i64)>,
}

impl State {
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

    /// The last position recorded at or before `as_of` (ms), 0 before the first event.
    fn position_at(&self, as_of: i64) -> i64 {
        let after = self.timeline.partition_point(|&(_, at)| at <= as_of);
        if after == 0 {
            0
        } else {
            self.timeline[after - 1].0
        }
    }
}

/// What the projector is doing when it asks whether a checkpoint is due.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Folding a stretch of the log; `folded` events so far in this catch-up.
    CatchingUp {
        folded: i64,
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
    part_bytes: usize,
    /// When a catch-up last failed because the database was out of reach (ms, 0 = never).
    failed_at: AtomicI64,
}

fn poisoned<T>(_: T) -> StorageError {
    StorageError::Corrupt("projector state poisoned".into())
}

fn fingerprint_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
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
        let checkpoint_every = std::env::var("KIROKU_CHECKPOINT_EVERY")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n: &i64| *n > 0)
            .unwrap_or(DEFAULT_CHECKPOINT_EVERY);
        Projector {
            backend,
            state: RwLock::new(State::default()),
            stopped: RwLock::new(None),
            catching_up: Mutex::new(()),
            checkpointed: AtomicI64::new(0),
            checkpoint_every,
            part_bytes: std::env::var("KIROKU_CHECKPOINT_PART_BYTES")
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|n: &usize| *n > 0)
                .unwrap_or(PART_BYTES),
            failed_at: AtomicI64::new(0),
        }
    }

    /// The same projector storing checkpoints in parts of at most `bytes` (tests).
    pub fn with_part_bytes(mut self, bytes: usize) -> Self {
        self.part_bytes = bytes.max(1);
        self
    }

    /// A projector resuming from its last readable checkpoint (or from the start).
    pub async fn open(backend: Backend) -> Result<Self, StorageError> {
        let projector = Projector::new(backend);
        let row: Option<(i32, i64, String, Vec<u8>)> = with_pool!(&projector.backend, pool => {
            let row = sqlx::query(
                "SELECT format, position, fingerprint, state, parts FROM projection_checkpoints WHERE name = $1",
            )
            .bind(CHECKPOINT)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(row) => {
                    let mut state: Vec<u8> = row.try_get(3)?;
                    let parts: Option<String> = row.try_get(4)?;
                    if let Some(key) = parts {
                        // Read after the row: a checkpoint replaced in between fails its
                        // fingerprint and is rebuilt from the log.
                        let parts: Vec<Vec<u8>> = sqlx::query_scalar(
                            "SELECT bytes FROM projection_checkpoint_parts WHERE checkpoint = $1 ORDER BY part",
                        )
                        .bind(key)
                        .fetch_all(pool)
                        .await?;
                        parts.iter().for_each(|part| state.extend_from_slice(part));
                    }
                    Some((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, state))
                }
                None => None,
            }
        });
        if let Some((format, position, stored, bytes)) = row {
            let fits = stored == seal(&projector.backend, position, &bytes).await?;
            match serde_json::from_slice::<State>(&bytes) {
                Ok(state) if fits && format == FORMAT && state.position == position => {
                    *projector.state.write().map_err(poisoned)? = state;
                    projector.checkpointed.store(position, Ordering::SeqCst);
                }
                Ok(_) | Err(_) => {
                    tracing::warn!(
                        format,
                        position,
                        fits,
                        "ignoring an unreadable or altered projection checkpoint; rebuilding from the log"
                    );
                }
            }
        }
        Ok(projector)
    }

    /// Writes the read models and their position as one row, in one statement.
    ///
    /// The read models are copied under the lock and encoded outside it, on a blocking
    /// thread: appends wait for the copy only (a memory copy), not for the encoding, which
    /// takes seconds on a large ledger.
    pub async fn checkpoint(&self) -> Result<i64, StorageError> {
        let copy = self.state.read().map_err(poisoned)?.clone();
        let position = copy.position;
        let bytes = tokio::task::spawn_blocking(move || serde_json::to_vec(&copy))
            .await
            .map_err(|e| StorageError::Corrupt(format!("encoding the read models: {e}")))?
            .map_err(|e| StorageError::Corrupt(format!("encoding the read models: {e}")))?;
        let fingerprint = seal(&self.backend, position, &bytes).await?;
        // One value holds at most 1 GB (SQLite, PostgreSQL's bytea), and one transaction
        // writing the whole state would hold SQLite's one write lock for seconds: a state
        // larger than one part is written part by part, each in its own short transaction,
        // under a key of its own, and the checkpoint's row is then pointed at them.
        let (inline, key): (&[u8], Option<String>) = if bytes.len() <= self.part_bytes {
            (&bytes, None)
        } else {
            let key = format!("{CHECKPOINT}@{position}-{}", now_ms());
            for (i, part) in bytes.chunks(self.part_bytes).enumerate() {
                with_pool!(&self.backend, pool => {
                    sqlx::query(
                        "INSERT INTO projection_checkpoint_parts (checkpoint, part, bytes) VALUES ($1, $2, $3)",
                    )
                    .bind(&key)
                    .bind(i as i64)
                    .bind(part)
                    .execute(pool)
                    .await?;
                });
            }
            (&[], Some(key))
        };
        let written = with_pool!(&self.backend, pool => {
            sqlx::query(
                "INSERT INTO projection_checkpoints (name, format, position, fingerprint, state, parts, saved_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (name) DO UPDATE SET format = excluded.format, position = excluded.position, \
                 fingerprint = excluded.fingerprint, state = excluded.state, parts = excluded.parts, \
                 saved_at = excluded.saved_at \
                 WHERE excluded.position >= projection_checkpoints.position \
                    OR excluded.format <> projection_checkpoints.format",
            )
            .bind(CHECKPOINT)
            .bind(FORMAT)
            .bind(position)
            .bind(&fingerprint)
            .bind(inline)
            .bind(key.as_deref())
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected()
        });
        // The parts no row points at any more (the checkpoint before, or these when a newer
        // one was there first), one part per transaction.
        let current: Option<String> = with_pool!(&self.backend, pool => {
            sqlx::query_scalar("SELECT parts FROM projection_checkpoints WHERE name = $1")
                .bind(CHECKPOINT)
                .fetch_optional(pool)
                .await?
                .flatten()
        });
        let stale: Vec<(String, i64)> = with_pool!(&self.backend, pool => {
            sqlx::query_as(
                "SELECT checkpoint, part FROM projection_checkpoint_parts WHERE checkpoint <> $1",
            )
            .bind(current.as_deref().unwrap_or(""))
            .fetch_all(pool)
            .await?
        });
        for (checkpoint, part) in stale {
            with_pool!(&self.backend, pool => {
                sqlx::query("DELETE FROM projection_checkpoint_parts WHERE checkpoint = $1 AND part = $2")
                    .bind(&checkpoint)
                    .bind(part)
                    .execute(pool)
                    .await?;
            });
        }
        if written == 0 {
            tracing::debug!(position, "a newer checkpoint was already there");
        }
        self.checkpointed.store(position, Ordering::SeqCst);
        Ok(position)
    }

    /// Checkpoints when the read models moved since the last checkpoint (at shutdown).
    pub async fn checkpoint_if_moved(&self) -> Result<(), StorageError> {
        if self.position() > self.checkpointed.load(Ordering::SeqCst) {
            self.checkpoint().await?;
        }
        Ok(())
    }

    /// Checkpoints while serving when [`checkpoint_due`](Self::checkpoint_due) says so.
    pub async fn checkpoint_if_due(&self) -> Result<(), StorageError> {
        if self.checkpoint_due(Phase::Serving) {
            self.checkpoint().await?;
        }
        Ok(())
    }

    /// The one checkpoint policy. A checkpoint writes the whole read models, so its cost
    /// follows the size of the log; the policy spaces them in proportion to that size, which
    /// keeps the cost per folded event constant:
    /// - during a long catch-up (one that has folded `KIROKU_CHECKPOINT_EVERY` events itself:
    ///   never the few events a serving process folds after a command, which must not wait
    ///   for a checkpoint), once that many events *and* as many as the last checkpoint covered
    ///   were folded since it (doubling): a rebuild of n events writes about
    ///   log₂(n / 50,000) checkpoints whose sizes sum to less than twice the last, and a crash
    ///   loses at most half of the catch-up;
    /// - while serving, once the events since the last checkpoint are an eighth of the log:
    ///   a restart folds at most that after loading the checkpoint.
    fn checkpoint_due(&self, phase: Phase) -> bool {
        let checkpointed = self.checkpointed.load(Ordering::SeqCst);
        let tail = self.position() - checkpointed;
        match phase {
            Phase::CatchingUp { folded } => {
                folded >= self.checkpoint_every && tail >= self.checkpoint_every.max(checkpointed)
            }
            Phase::Serving => tail > 0 && tail >= checkpointed / SERVING_SHARE,
        }
    }

    /// Deletes every checkpoint: the next start rebuilds from the log.
    pub async fn drop_checkpoints(backend: &Backend) -> Result<(), StorageError> {
        with_pool!(backend, pool => {
            sqlx::query("DELETE FROM projection_checkpoint_parts").execute(pool).await?;
            sqlx::query("DELETE FROM projection_checkpoints").execute(pool).await?;
        });
        Ok(())
    }

    /// The position of the read models and the SHA-256 of their serialized form: two
    /// projectors that folded the same log agree byte for byte.
    pub fn fingerprint(&self) -> Result<(i64, String), StorageError> {
        let state = self.state.read().map_err(poisoned)?;
        let bytes = serde_json::to_vec(&*state)
            .map_err(|e| StorageError::Corrupt(format!("encoding the read models: {e}")))?;
        Ok((state.position, fingerprint_of(&bytes)))
    }

    pub fn position(&self) -> i64 {
        self.state.read().map(|s| s.position).unwrap_or(0)
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

    /// Reads the log after the read models' position page by page and folds it in. The next
    /// page is read and parsed on another task while this one is folded, so a rebuild keeps
    /// the database and both cores busy.
    async fn catch_up_locked(&self) -> Result<i64, StorageError> {
        let page_size = PAGE.min(self.checkpoint_every);
        let read = |after: i64| {
            let backend = self.backend.clone();
            tokio::spawn(async move {
                let page = read_raw_after(&backend, after, page_size).await?;
                let last = page.last().map(|e| e.position);
                Ok::<_, StorageError>((last, typed(page, recorded_raw)))
            })
        };
        if self.stopped().is_some() {
            return Ok(self.position());
        }
        let from = self.position();
        let mut next = read(from);
        loop {
            let (last, (events, stop)) = next
                .await
                .map_err(|e| StorageError::Corrupt(format!("reading the log: {e}")))??;
            let Some(last) = last else {
                return Ok(self.position());
            };
            crate::metrics::saw_head(last);
            if stop.is_some() {
                return self.apply(events, stop).map(|(position, _)| position);
            }
            next = read(last);
            self.apply(events, None)?;
            let folded = self.position() - from;
            if self.checkpoint_due(Phase::CatchingUp { folded }) {
                self.checkpoint().await?;
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
        let position = {
            let mut state = self.state.write().map_err(poisoned)?;
            for event in &events {
                state.histories.apply(event);
                state.facts.apply(event);
                state.plans.apply(event);
                state.timeline.push((event.position, event.recorded_at));
                state.position = event.position;
            }
            state.position
        };
        let Some(stop) = stop else {
            return Ok((position, false));
        };
        tracing::error!(
            position = stop.position,
            event_type = %stop.event_type,
            problem = %stop.problem,
            "the projector stopped at an event this version cannot read; reads are served \
             as of the event before it and commands are refused"
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
        Ok(f(&state.histories))
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
