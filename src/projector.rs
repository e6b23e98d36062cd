//! The projector: reads the log by position and folds every event, exactly once and in
//! order, into the read models of `kiroku-projections`. It runs after each command (so a
//! caller reads its own writes) and on a timer (to pick up writes from other processes).
//!
//! The read models live in memory and are checkpointed to `projection_checkpoints`: the whole
//! state and the position it reflects in one row, written by one statement. After a crash the
//! projector resumes from its last checkpoint; a checkpoint it cannot read (another format, a
//! damaged row) is ignored and the read models are rebuilt from the log.

use crate::storage::log::{read_after, LogEvent};
use crate::storage::{now_ms, Backend, StorageError};
use crate::with_pool;
use kiroku_domain::plan::IndicatorSource;
use kiroku_domain::values::{Code, FiscalYear};
use kiroku_projections::audit::{self, Change};
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
/// Bump when the shape of a read model changes: older checkpoints are then rebuilt.
const FORMAT: i32 = 1;
/// During a long catch-up, checkpoint every this many events (`KIROKU_CHECKPOINT_EVERY`).
const DEFAULT_CHECKPOINT_EVERY: i64 = 50_000;

#[derive(Default, Serialize, Deserialize)]
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

pub struct Projector {
    backend: Backend,
    state: RwLock<State>,
    catching_up: Mutex<()>,
    checkpointed: AtomicI64,
    checkpoint_every: i64,
}

fn poisoned<T>(_: T) -> StorageError {
    StorageError::Corrupt("projector state poisoned".into())
}

fn fingerprint_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Turns a stored event into the typed form projections read.
pub fn recorded(event: &LogEvent) -> Result<Recorded, StorageError> {
    let parsed = LedgerEvent::parse(&event.aggregate_type, &event.payload)
        .map_err(|e| StorageError::Corrupt(format!("event at position {}: {e}", event.position)))?;
    Ok(Recorded {
        position: event.position,
        recorded_at: event.recorded_at,
        aggregate_id: event.aggregate_id.clone(),
        actor: event.metadata_str("actor").map(str::to_string),
        reason: event.metadata_str("reason").map(str::to_string),
        event: parsed,
    })
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
            catching_up: Mutex::new(()),
            checkpointed: AtomicI64::new(0),
            checkpoint_every,
        }
    }

    /// A projector resuming from its last readable checkpoint (or from the start).
    pub async fn open(backend: Backend) -> Result<Self, StorageError> {
        let projector = Projector::new(backend);
        let row: Option<(i32, i64, Vec<u8>)> = with_pool!(&projector.backend, pool => {
            let row = sqlx::query(
                "SELECT format, position, state FROM projection_checkpoints WHERE name = $1",
            )
            .bind(CHECKPOINT)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(row) => Some((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)),
                None => None,
            }
        });
        if let Some((format, position, bytes)) = row {
            match serde_json::from_slice::<State>(&bytes) {
                Ok(state) if format == FORMAT && state.position == position => {
                    *projector.state.write().map_err(poisoned)? = state;
                    projector.checkpointed.store(position, Ordering::SeqCst);
                }
                Ok(_) | Err(_) => {
                    tracing::warn!(
                        format,
                        position,
                        "ignoring an unreadable projection checkpoint; rebuilding from the log"
                    );
                }
            }
        }
        Ok(projector)
    }

    /// Writes the read models and their position as one row, in one statement.
    pub async fn checkpoint(&self) -> Result<i64, StorageError> {
        let (position, bytes) = {
            let state = self.state.read().map_err(poisoned)?;
            let bytes = serde_json::to_vec(&*state)
                .map_err(|e| StorageError::Corrupt(format!("encoding the read models: {e}")))?;
            (state.position, bytes)
        };
        let fingerprint = fingerprint_of(&bytes);
        with_pool!(&self.backend, pool => {
            sqlx::query(
                "INSERT INTO projection_checkpoints (name, format, position, fingerprint, state, saved_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (name) DO UPDATE SET format = excluded.format, position = excluded.position, \
                 fingerprint = excluded.fingerprint, state = excluded.state, saved_at = excluded.saved_at \
                 WHERE excluded.position >= projection_checkpoints.position \
                    OR excluded.format <> projection_checkpoints.format",
            )
            .bind(CHECKPOINT)
            .bind(FORMAT)
            .bind(position)
            .bind(&fingerprint)
            .bind(bytes)
            .bind(now_ms())
            .execute(pool)
            .await?;
        });
        self.checkpointed.store(position, Ordering::SeqCst);
        Ok(position)
    }

    /// Checkpoints when the read models moved since the last checkpoint.
    pub async fn checkpoint_if_moved(&self) -> Result<(), StorageError> {
        if self.position() > self.checkpointed.load(Ordering::SeqCst) {
            self.checkpoint().await?;
        }
        Ok(())
    }

    /// Deletes every checkpoint: the next start rebuilds from the log.
    pub async fn drop_checkpoints(backend: &Backend) -> Result<(), StorageError> {
        with_pool!(backend, pool => {
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

    /// Applies every event committed since the last call. An event that cannot be read stops
    /// the projector with an error instead of being skipped.
    pub async fn catch_up(&self) -> Result<i64, StorageError> {
        let _only_one = self.catching_up.lock().await;
        loop {
            let after = self.position();
            let page = read_after(&self.backend, after, PAGE.min(self.checkpoint_every)).await?;
            if page.is_empty() {
                return Ok(after);
            }
            let typed: Vec<Recorded> = page.iter().map(recorded).collect::<Result<_, _>>()?;
            let position = {
                let mut state = self.state.write().map_err(poisoned)?;
                for event in &typed {
                    state.histories.apply(event);
                    state.facts.apply(event);
                    state.plans.apply(event);
                    state.timeline.push((event.position, event.recorded_at));
                    state.position = event.position;
                }
                state.position
            };
            if position - self.checkpointed.load(Ordering::SeqCst) >= self.checkpoint_every {
                self.checkpoint().await?;
            }
        }
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

    /// Every indicator's actual of plan item `code` for `fiscal_year` as the log stands now:
    /// what a publication freezes. `None` when the item is unknown.
    pub fn actuals(
        &self,
        code: &str,
        fiscal_year: FiscalYear,
    ) -> Result<Option<BTreeMap<Code, Option<f64>>>, StorageError> {
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
        Ok(Some(values))
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
    ) -> Result<Option<(i64, String, Vec<Change>)>, StorageError> {
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
