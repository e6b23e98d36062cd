//! The event store every aggregate is loaded from: cqrs-es' snapshot store, with the last
//! state of recently used aggregates kept in memory.
//!
//! Without it, every command on a training session with 2,000 attendees reads and parses the
//! session's snapshot (every 100 events) and up to 99 events after it. With it, a command
//! on an aggregate this process has just written reads only the events other processes may
//! have appended since (one query that usually returns nothing), and the state is a copy in
//! memory. Commands on one aggregate already queue in this process (the ledger's stripe
//! locks), so the cached state is the one the last command left. The commands of a unit
//! held back or streamed (an import) take no turn; there is one such unit at a time (the
//! import lock), and its commands run one after another.
//!
//! A command whose caller read the log's head first ([`as_of`]) does without that query too
//! when nothing but this process has written since it last wrote the aggregate: the appender
//! knows the span of the log it alone wrote ([`OwnSpan`]), and a state written inside it is
//! current up to any head the span reaches. Another process's append starts the span again,
//! so the query comes back until this process writes the aggregate anew.
//!
//! Anything unexpected empties the entry: a failed commit (another process wrote first, or a
//! snapshot number that no longer matches) reloads the aggregate from the database. So does a
//! commit held back for a unit of several commands (an import), which may yet be dropped.
//!
//! It also keeps snapshots right. In cqrs-es 0.5 an aggregate's `handle` applies each event
//! it emits to itself (`EventSink::write`), and the snapshot store then applies the same
//! events again to that state before writing the snapshot: every snapshot held the last
//! command's events twice (a session's 100th event enrolled someone twice, so the session
//! filled early). This store writes the snapshot from the state as it was loaded, before the
//! command, so each event is applied once; migration 0004 deleted the snapshots written
//! before. It commits itself, as the snapshot store would ([`CachedStore::write`]), so that
//! the serialized events are handed to the appender rather than copied.

use super::append::OwnSpan;
use super::repository::{is_holding_back, last_received, Latest, LedgerRepository};
use cqrs_es::persist::{
    EventStoreAggregateContext, PersistedEventRepository, PersistedEventStore, PersistenceError,
    SerializedEvent,
};
use cqrs_es::{Aggregate, AggregateError, DomainEvent, EventEnvelope, EventStore};
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

/// What the current command's caller told the store: see [`as_of`].
struct Asked {
    head: i64,
    /// Until its first load: the command creates its aggregate.
    creating: Cell<bool>,
    /// The last load took the empty state without reading it.
    assumed: Cell<bool>,
}

tokio::task_local! {
    static ASKED: Asked;
}

/// Runs `work`, a command, for a caller who read the log's head `head` first (with its
/// token). Without a head the database is always asked. With it:
/// - an aggregate is taken as this process keeps it, without asking the database for newer
///   events, when this process wrote it last and nothing but this process has appended
///   since, up to `head` ([`OwnSpan::covers`]);
/// - a command that `creates` its aggregate (a new incident, session, staff member or plan
///   item) is first decided on the empty state without reading it. Should the aggregate
///   exist after all, its first event's key is taken, the commit conflicts, and the retry
///   reads it. A refusal decided on the empty state (the command's own input, which the
///   domain checks after whether the aggregate exists) is decided again on the state read
///   ([`took_the_empty_state`]), so the caller hears what a read would have given.
pub async fn as_of<F: Future>(head: Option<i64>, creates: bool, work: F) -> F::Output {
    match head {
        Some(head) => {
            let asked = Asked {
                head,
                creating: Cell::new(creates),
                assumed: Cell::new(false),
            };
            ASKED.scope(asked, work).await
        }
        None => work.await,
    }
}

/// Whether the current command's last load took the empty state without reading it (and
/// forgets it: the next load reads).
pub fn took_the_empty_state() -> bool {
    ASKED
        .try_with(|asked| asked.assumed.replace(false))
        .unwrap_or(false)
}

/// An aggregate's state from its snapshot and the events after it, applied as cqrs-es would;
/// `None` for a snapshot this version cannot read (cqrs-es then replays every event instead).
fn context_of<A: Aggregate>(
    aggregate_id: &str,
    (snapshot, events): Latest,
) -> Result<Option<EventStoreAggregateContext<A>>, AggregateError<A::Error>> {
    let mut context = match snapshot.map(EventStoreAggregateContext::<A>::try_from) {
        None => EventStoreAggregateContext {
            aggregate_id: aggregate_id.to_string(),
            aggregate: A::default(),
            current_sequence: 0,
            current_snapshot: None,
        },
        Some(Ok(context)) => context,
        Some(Err(PersistenceError::DeserializationError(_))) => return Ok(None),
        Some(Err(error)) => return Err(error.into()),
    };
    for event in events {
        let envelope: EventEnvelope<A> = event.try_into()?;
        context.current_sequence = envelope.sequence;
        context.aggregate.apply(envelope.payload);
    }
    Ok(Some(context))
}

/// The current state of every aggregate in `aggregate_ids`, read together
/// ([`LedgerRepository::latest_many`]): what an import checks its rows against, and then
/// decides on ([`with_preloaded`]).
pub async fn load_many<A: Aggregate>(
    repo: LedgerRepository,
    snapshot_every: usize,
    aggregate_ids: &[String],
) -> Result<HashMap<String, EventStoreAggregateContext<A>>, AggregateError<A::Error>> {
    let found = repo.latest_many::<A>(aggregate_ids).await?;
    let replay =
        PersistedEventStore::<LedgerRepository, A>::new_snapshot_store(repo, snapshot_every);
    let mut loaded = HashMap::with_capacity(found.len());
    for (id, latest) in found {
        let read = context_of::<A>(&id, latest)?;
        let context = match read {
            Some(context) => context,
            None => replay.load_aggregate(&id).await?,
        };
        loaded.insert(id, context);
    }
    Ok(loaded)
}

tokio::task_local! {
    static PRELOADED: RefCell<HashMap<(&'static str, String), Box<dyn Any + Send>>>;
}

/// Runs `work`, the commands of one unit held back and committed together
/// ([`super::repository::holding_back`], [`super::repository::streaming`]), deciding each on the state in `preloaded` of its
/// aggregate ([`load_many`]) instead of reading it again: an import's sheet reads its
/// sessions once, in one query, for its checks and its commands alike. The state may have
/// moved since it was read (another command on one of the sessions): the unit's commit then
/// finds the sequence numbers taken and refuses the whole unit, as it would for a change made
/// between a command's own read and the commit. A scope inside another hides the outer one's
/// states.
pub async fn with_preloaded<A, F>(
    preloaded: HashMap<String, EventStoreAggregateContext<A>>,
    work: F,
) -> F::Output
where
    A: Aggregate + 'static,
    F: Future,
{
    let states = preloaded
        .into_iter()
        .map(|(id, context)| ((A::TYPE, id), Box::new(context) as Box<dyn Any + Send>))
        .collect();
    PRELOADED.scope(RefCell::new(states), work).await
}

/// The state of aggregate `aggregate_id` preloaded for the current unit, taken (a retry
/// reads the database).
fn preloaded<A: Aggregate + 'static>(aggregate_id: &str) -> Option<EventStoreAggregateContext<A>> {
    if !is_holding_back() {
        return None;
    }
    let state = PRELOADED
        .try_with(|states| {
            states
                .borrow_mut()
                .remove(&(A::TYPE, aggregate_id.to_string()))
        })
        .ok()
        .flatten()?;
    state
        .downcast::<EventStoreAggregateContext<A>>()
        .ok()
        .map(|context| *context)
}

/// Aggregates kept in memory per type; beyond this the cache starts afresh.
const CAPACITY: usize = 2048;

struct Cached<A> {
    aggregate: A,
    sequence: usize,
    snapshot: Option<usize>,
    /// The log position of the last event this process wrote to it.
    written_at: Option<i64>,
}

pub struct CachedStore<A: Aggregate> {
    inner: PersistedEventStore<LedgerRepository, A>,
    /// The same repository as `inner`'s: the events appended after a cached state are read,
    /// and commits written, through it.
    repo: LedgerRepository,
    snapshot_every: usize,
    cache: Mutex<HashMap<String, Cached<A>>>,
    /// The state each aggregate was loaded in, until its command commits: one per aggregate
    /// for the commands that take their turn, and one for the unit's command, which takes
    /// none (`bool`: held back) and may be between its load and its commit at the same time.
    loaded: Mutex<HashMap<(String, bool), A>>,
}

impl<A: Aggregate + Clone + 'static> CachedStore<A> {
    pub fn new(repo: LedgerRepository, reader: LedgerRepository, snapshot_every: usize) -> Self {
        CachedStore {
            inner: PersistedEventStore::new_snapshot_store(repo, snapshot_every),
            repo: reader,
            snapshot_every,
            cache: Mutex::new(HashMap::new()),
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// Remembers the state `context` was loaded in, for [`EventStore::commit`].
    fn loaded(&self, context: EventStoreAggregateContext<A>) -> EventStoreAggregateContext<A> {
        if let Ok(mut loaded) = self.loaded.lock() {
            // Entries of refused commands are never taken back; start afresh when many
            // accumulate (a command whose entry goes is retried, see `commit`).
            let key = (context.aggregate_id.clone(), is_holding_back());
            if loaded.len() >= CAPACITY && !loaded.contains_key(&key) {
                loaded.clear();
            }
            loaded.insert(key, context.aggregate.clone());
        }
        context
    }

    fn cached(&self, aggregate_id: &str) -> Option<(A, usize, Option<usize>, Option<i64>)> {
        let cache = self.cache.lock().ok()?;
        let entry = cache.get(aggregate_id)?;
        Some((
            entry.aggregate.clone(),
            entry.sequence,
            entry.snapshot,
            entry.written_at,
        ))
    }

    /// Whether a state this process wrote at `written_at` is current for the command running.
    fn current(&self, written_at: Option<i64>) -> bool {
        let (Some(written_at), Ok(head)) = (written_at, ASKED.try_with(|asked| asked.head)) else {
            return false;
        };
        let own: OwnSpan = self.repo.own_span();
        own.covers(written_at, head)
    }

    /// Takes the trust away from what is kept of the aggregate until [`Self::remember`] puts
    /// it back.
    fn distrust(&self, aggregate_id: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            if let Some(entry) = cache.get_mut(aggregate_id) {
                entry.written_at = None;
            }
        }
    }

    fn forget(&self, aggregate_id: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(aggregate_id);
        }
    }

    fn remember(&self, aggregate_id: String, entry: Cached<A>) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CAPACITY && !cache.contains_key(&aggregate_id) {
                cache.clear();
            }
            cache.insert(aggregate_id, entry);
        }
    }

    /// Loads an aggregate this process holds no state of: its snapshot and the events after
    /// it, read together ([`LedgerRepository::latest`]), applied as cqrs-es would. A snapshot
    /// this version cannot read is left to cqrs-es, which replays every event instead.
    async fn load_latest(
        &self,
        aggregate_id: &str,
    ) -> Result<EventStoreAggregateContext<A>, AggregateError<A::Error>> {
        let latest = self.repo.latest::<A>(aggregate_id).await?;
        let read = context_of::<A>(aggregate_id, latest)?;
        let context = match read {
            Some(context) => context,
            None => self.inner.load_aggregate(aggregate_id).await?,
        };
        Ok(self.loaded(context))
    }

    /// Whether committing `events` after `sequence` writes a snapshot (cqrs-es' rule: when
    /// the events reach the next multiple of the snapshot size).
    fn writes_snapshot(&self, sequence: usize, events: usize) -> bool {
        self.snapshot_every > 0 && events >= self.snapshot_every - (sequence % self.snapshot_every)
    }

    /// What cqrs-es' `PersistedEventStore::commit` does, with the serialized events handed
    /// to the repository rather than copied there (an import's 100,000 events were copied
    /// once more, and each event's metadata serialized anew): the snapshot due, if any,
    /// from the state as loaded and the command's events; the events serialized; both
    /// written, or held back ([`super::repository::holding_back`]).
    ///
    /// Returns no envelopes: cqrs-es only hands them to the framework's queries, and the
    /// ledger's frameworks have none (`ledger.rs`); the read models are fed from the log.
    async fn write(
        &self,
        events: Vec<A::Event>,
        context: EventStoreAggregateContext<A>,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let EventStoreAggregateContext {
            aggregate_id,
            aggregate: mut state,
            current_sequence,
            current_snapshot,
        } = context;
        // The snapshot holds every event of the commit: it is stored under the sequence of
        // the last one, and a load reads only the events after that. (cqrs-es applies only
        // those up to the multiple of the snapshot size they cross, so a command of two
        // events at sequence 99 left the second out of every later load; migrations 0009
        // and 0007 forget the snapshots written so.)
        let snapshot = if self.writes_snapshot(current_sequence, events.len()) {
            for event in events.iter().cloned() {
                state.apply(event);
            }
            let number = current_snapshot.map_or(1, |s| s + 1);
            Some((aggregate_id.clone(), serde_json::to_value(state)?, number))
        } else {
            None
        };
        let metadata = serde_json::to_value(metadata)?;
        let serialized = events
            .iter()
            .zip(current_sequence + 1..)
            .map(|(event, sequence)| {
                Ok(SerializedEvent {
                    aggregate_id: aggregate_id.clone(),
                    sequence,
                    aggregate_type: A::TYPE.to_string(),
                    event_type: event.event_type(),
                    event_version: event.event_version(),
                    payload: serde_json::to_value(event)?,
                    metadata: metadata.clone(),
                })
            })
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        self.repo.persist_owned::<A>(serialized, snapshot).await?;
        Ok(Vec::new())
    }
}

impl<A: Aggregate + Clone + 'static> EventStore<A> for CachedStore<A> {
    type AC = EventStoreAggregateContext<A>;

    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        self.inner.load_events(aggregate_id).await
    }

    async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<EventStoreAggregateContext<A>, AggregateError<A::Error>> {
        let creating = ASKED
            .try_with(|asked| {
                asked.assumed.set(false);
                asked.creating.replace(false)
            })
            .unwrap_or(false);
        if let Some(context) = preloaded::<A>(aggregate_id) {
            return Ok(self.loaded(context));
        }
        let Some((mut aggregate, mut sequence, snapshot, written_at)) = self.cached(aggregate_id)
        else {
            if creating {
                let _ = ASKED.try_with(|asked| asked.assumed.set(true));
                return Ok(self.loaded(EventStoreAggregateContext {
                    aggregate_id: aggregate_id.to_string(),
                    aggregate: A::default(),
                    current_sequence: 0,
                    current_snapshot: None,
                }));
            }
            return self.load_latest(aggregate_id).await;
        };
        // What other processes appended since this process last wrote it, unless no one
        // else can have.
        let newer = if self.current(written_at) {
            Vec::new()
        } else {
            self.repo
                .get_last_events::<A>(aggregate_id, sequence)
                .await?
        };
        for event in newer {
            let envelope: EventEnvelope<A> = event.try_into()?;
            sequence = envelope.sequence;
            aggregate.apply(envelope.payload);
        }
        Ok(self.loaded(EventStoreAggregateContext {
            aggregate_id: aggregate_id.to_string(),
            aggregate,
            current_sequence: sequence,
            current_snapshot: snapshot,
        }))
    }

    async fn commit(
        &self,
        events: Vec<A::Event>,
        context: EventStoreAggregateContext<A>,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let aggregate_id = context.aggregate_id.clone();
        let before = self
            .loaded
            .lock()
            .ok()
            .and_then(|mut loaded| loaded.remove(&(aggregate_id.clone(), is_holding_back())));
        // The state after the command: `handle` has applied its events already.
        let EventStoreAggregateContext {
            aggregate: after,
            current_sequence,
            current_snapshot,
            ..
        } = context;
        let Some(before) = before else {
            // Its loaded state was cleared away: nothing to hand the snapshot store safely.
            // Reported as a conflict, so the ledger loads the aggregate again and retries.
            self.forget(&aggregate_id);
            return Err(AggregateError::AggregateConflict);
        };
        let context = EventStoreAggregateContext {
            aggregate_id: aggregate_id.clone(),
            aggregate: before,
            current_sequence,
            current_snapshot,
        };
        let next = after;
        let sequence = context.current_sequence + events.len();
        let snapshot = if self.writes_snapshot(context.current_sequence, events.len()) {
            Some(context.current_snapshot.map_or(1, |s| s + 1))
        } else {
            context.current_snapshot
        };
        // A command dropped while its batch commits (a client that hung up) never gets to
        // `remember`: the entry it leaves must not be trusted, or the next command would be
        // decided without the event just written. Asking for newer events finds it.
        self.distrust(&aggregate_id);
        match self.write(events, context, metadata).await {
            Ok(committed) if is_holding_back() => {
                // Held back, not written yet: the next load reads the database.
                self.forget(&aggregate_id);
                Ok(committed)
            }
            Ok(committed) => {
                self.remember(
                    aggregate_id,
                    Cached {
                        aggregate: next,
                        sequence,
                        snapshot,
                        written_at: last_received(),
                    },
                );
                Ok(committed)
            }
            Err(error) => {
                self.forget(&aggregate_id);
                Err(error)
            }
        }
    }
}
