//! The projector: reads the log by position and folds every event, exactly once and in
//! order, into the read models of `kiroku-projections`. It runs after each command (so a
//! caller reads its own writes) and on a timer (to pick up writes from other processes).

use crate::storage::log::{read_after, LogEvent};
use crate::storage::{Backend, StorageError};
use kiroku_domain::plan::IndicatorSource;
use kiroku_domain::values::{Code, FiscalYear};
use kiroku_projections::history::Histories;
use kiroku_projections::indicators::Facts;
use kiroku_projections::plans::PlanBook;
use kiroku_projections::{rfc3339_ms, sheet};
use kiroku_projections::{LedgerEvent, Recorded};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::RwLock;
use tokio::sync::Mutex;

const PAGE: i64 = 5000;

#[derive(Default)]
struct State {
    position: i64,
    histories: Histories,
    facts: Facts,
    plans: PlanBook,
    /// (position, recorded_at) of every event, to turn an `as_of` time into a position.
    timeline: Vec<(i64, i64)>,
}

impl State {
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
    pub fn new(backend: Backend) -> Self {
        Projector {
            backend,
            state: RwLock::new(State::default()),
            catching_up: Mutex::new(()),
        }
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
            let page = read_after(&self.backend, after, PAGE).await?;
            if page.is_empty() {
                return Ok(after);
            }
            let typed: Vec<Recorded> = page.iter().map(recorded).collect::<Result<_, _>>()?;
            let mut state = self
                .state
                .write()
                .map_err(|_| StorageError::Corrupt("projector state poisoned".into()))?;
            for event in &typed {
                state.histories.apply(event);
                state.facts.apply(event);
                state.plans.apply(event);
                state.timeline.push((event.position, event.recorded_at));
                state.position = event.position;
            }
        }
    }

    /// Reads the histories under a shared lock.
    pub fn read<R>(&self, f: impl FnOnce(&Histories) -> R) -> Result<R, StorageError> {
        let state = self
            .state
            .read()
            .map_err(|_| StorageError::Corrupt("projector state poisoned".into()))?;
        Ok(f(&state.histories))
    }
}

impl Projector {
    /// The progress sheet of plan item `code` as the log stood at `as_of` (ms since the
    /// epoch; `None` = now). `None` when the item was not defined by then.
    pub fn sheet(&self, code: &str, as_of: Option<i64>) -> Result<Option<Value>, StorageError> {
        let state = self
            .state
            .read()
            .map_err(|_| StorageError::Corrupt("projector state poisoned".into()))?;
        let (at, label) = match as_of {
            Some(ms) => (state.position_at(ms), rfc3339_ms(ms)),
            None => (state.position, rfc3339_ms(crate::storage::now_ms())),
        };
        Ok(sheet::sheet(&state.plans, &state.facts, code, at, &label))
    }

    /// Every indicator's actual of plan item `code` for `fiscal_year` as the log stands now:
    /// what a publication freezes. `None` when the item is unknown.
    pub fn actuals(
        &self,
        code: &str,
        fiscal_year: FiscalYear,
    ) -> Result<Option<BTreeMap<Code, Option<f64>>>, StorageError> {
        let state = self
            .state
            .read()
            .map_err(|_| StorageError::Corrupt("projector state poisoned".into()))?;
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

    /// The codes and titles of every plan item, in code order.
    pub fn plan_items(&self) -> Result<Vec<(String, String)>, StorageError> {
        let state = self
            .state
            .read()
            .map_err(|_| StorageError::Corrupt("projector state poisoned".into()))?;
        Ok(state
            .plans
            .items
            .iter()
            .map(|(code, item)| (code.clone(), item.definition.value.title.to_string()))
            .collect())
    }
}
