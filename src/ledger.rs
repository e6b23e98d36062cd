//! The ledger as the application uses it: one cqrs-es framework per aggregate over the chosen
//! event repository, the personal key store, the sealer and the projector — and the one way
//! commands are executed (bounded retries on optimistic-lock conflicts, metadata on every
//! event, the appended events read back for the response).

use crate::projector::{Projector, Stopped};
use crate::storage::aggregates::{as_of, load_many, took_the_empty_state, CachedStore};
use crate::storage::append::{Appender, Confirm, Failure, Part, Streamed};
use crate::storage::keys::{KeyStore, MasterKey};
use crate::storage::log::LogEvent;
use crate::storage::repository::{confirming, is_holding_back, with_receipt, LedgerRepository};
use crate::storage::tokens::{Principal, Remembered};
use crate::storage::{Backend, StorageError};
use cqrs_es::persist::EventStoreAggregateContext;
use cqrs_es::{Aggregate, AggregateError, CqrsFramework};
use kiroku_domain::incident::ComplianceIncident;
use kiroku_domain::plan::PlanItem;
use kiroku_domain::session::TrainingSession;
use kiroku_domain::staff::Staff;
use kiroku_domain::{DomainError, Refusal};
use rand::Rng;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Mutex};

pub type Cqrs<A> = CqrsFramework<A, CachedStore<A>>;

/// Aggregates keep a snapshot every this many events, so a career-long staff record or a
/// session with hundreds of attendees loads in constant time.
const SNAPSHOT_EVERY: usize = 100;
/// How often a command is retried when another writer committed to the same aggregate first.
const MAX_ATTEMPTS: u32 = 30;
const LOCK_STRIPES: usize = 256;
/// How long a reader that saw the log's head move waits for the batch this process is
/// committing to reach the read models ([`Ledger::reach_head`]). A batch of commands is
/// written in a few milliseconds; past this, the reader reads the log itself.
const SETTLING: Duration = Duration::from_millis(50);

/// Who asked for a command, and why: written into every event's metadata.
#[derive(Debug, Clone)]
pub struct Meta {
    pub actor: String,
    pub role: String,
    pub request_id: String,
    pub reason: Option<String>,
    /// The log's head the caller read before the command (with its token), if it did: see
    /// [`crate::storage::aggregates::as_of`].
    pub as_of: Option<i64>,
    /// Whether the command creates its aggregate (read with `as_of`).
    pub creates: bool,
    /// Set when the command is decided unconfirmed: what its commit must confirm.
    pub confirm: Option<Confirm>,
}

impl Meta {
    pub fn new(principal: &Principal, request_id: &str) -> Self {
        Meta {
            actor: principal.name.clone(),
            role: principal.role.to_string(),
            request_id: request_id.to_string(),
            reason: None,
            as_of: None,
            creates: false,
            confirm: None,
        }
    }

    pub fn with_reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_string());
        self
    }

    fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::from([
            ("actor".to_string(), self.actor.clone()),
            ("role".to_string(), self.role.clone()),
            ("request_id".to_string(), self.request_id.clone()),
        ]);
        if let Some(reason) = &self.reason {
            map.insert("reason".to_string(), reason.clone());
        }
        map
    }
}

/// What a command appended.
#[derive(Debug, Clone)]
pub struct Appended {
    pub events: Vec<LogEvent>,
}

impl Appended {
    /// Transaction time of the command (its last event), ms since the epoch.
    pub fn recorded_at(&self) -> i64 {
        self.events
            .last()
            .map(|e| e.recorded_at)
            .unwrap_or_else(crate::storage::now_ms)
    }

    pub fn find(&self, event_type: &str) -> Option<&LogEvent> {
        self.events.iter().find(|e| e.event_type == event_type)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{message}")]
    Refused {
        code: &'static str,
        refusal: Refusal,
        message: String,
    },
    #[error("the aggregate stayed contended after {MAX_ATTEMPTS} attempts")]
    Contended,
    /// The database is out of reach for now: nothing was recorded, retry later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The projector stopped at an event this version cannot read: no command is taken.
    #[error("the projector stopped at position {}", .0.position)]
    Stopped(Stopped),
    #[error("storage failed: {0}")]
    Storage(String),
    /// Decided unconfirmed, and the commit did not confirm it: nothing was recorded. The
    /// caller decides it again with its token and the log's head read first.
    #[error("the command was not confirmed at its commit")]
    Unconfirmed,
}

impl From<StorageError> for CommandError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Unavailable(detail) => CommandError::Unavailable(detail),
            StorageError::Unconfirmed => CommandError::Unconfirmed,
            other => CommandError::Storage(other.to_string()),
        }
    }
}

pub struct Ledger {
    pub backend: Backend,
    pub staff: Cqrs<Staff>,
    pub sessions: Cqrs<TrainingSession>,
    pub incidents: Cqrs<ComplianceIncident>,
    pub plans: Cqrs<PlanItem>,
    pub keys: KeyStore,
    pub projector: Arc<Projector>,
    /// The tokens this process has read, for commands decided unconfirmed.
    pub tokens: Remembered,
    /// The one task that writes this ledger's events (group commit).
    appender: Appender,
    /// Commands on the same aggregate queue here instead of racing in the database.
    locks: Vec<Mutex<()>>,
}

fn framework<A: Aggregate + Clone + 'static>(backend: &Backend, appender: &Appender) -> Cqrs<A>
where
    A::Services: Default,
{
    let store = CachedStore::new(
        LedgerRepository::new(backend, appender.clone()),
        LedgerRepository::new(backend, appender.clone()),
        SNAPSHOT_EVERY,
    );
    CqrsFramework::new(store, vec![], A::Services::default())
}

impl Ledger {
    /// Opens the ledger at `url`, migrating the schema and catching the projector up.
    pub async fn open(url: &str) -> Result<Arc<Ledger>, StorageError> {
        Ledger::on(Backend::connect(url).await?).await
    }

    /// The ledger on a backend already connected and migrated.
    pub async fn on(backend: Backend) -> Result<Arc<Ledger>, StorageError> {
        // Opening seals nothing: each commit wrote its own chain links, and an event without
        // one is for `verify` to report, not for a start to cover up.
        let projector = Arc::new(Projector::open(backend.clone()).await?);
        let fed = projector.clone();
        let appender = Appender::spawn(
            backend.clone(),
            Arc::new(move |previous, events| fed.offer(previous, events)),
        );
        let ledger = Ledger {
            staff: framework(&backend, &appender),
            sessions: framework(&backend, &appender),
            incidents: framework(&backend, &appender),
            plans: framework(&backend, &appender),
            keys: KeyStore::new(backend.clone(), MasterKey::load()?),
            projector,
            tokens: Remembered::default(),
            appender,
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            backend,
        };
        ledger.keys.prepare().await?;
        ledger.projector.catch_up().await?;
        if let Err(error) = ledger.projector.checkpoint_if_far().await {
            // Optional: the first tick writes it instead.
            tracing::warn!(%error, "checkpointing the read models after catching up failed");
        }
        ledger.complete_erasures().await?;
        Ok(Arc::new(ledger))
    }

    /// Destroys the key of everyone whose erasure is in the log and still has one (an
    /// erasure recorded just before a crash, or by another process whose cached keys this
    /// process must forget). Returns how many keys it destroyed.
    pub async fn complete_erasures(&self) -> Result<usize, StorageError> {
        let erased = self.projector.erased()?;
        let mut destroyed = 0;
        for staff_id in erased {
            if self.keys.destroy(staff_id).await? {
                destroyed += 1;
            }
        }
        Ok(destroyed)
    }

    /// Aggregates `ids` as the next commands would find them, read together: what an import
    /// checks every row against before recording any, and then decides on
    /// ([`crate::storage::aggregates::with_preloaded`]).
    pub async fn load_many<A>(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, EventStoreAggregateContext<A>>, StorageError>
    where
        A: Aggregate + Clone + 'static,
    {
        let repo = LedgerRepository::new(&self.backend, self.appender.clone());
        load_many::<A>(repo, SNAPSHOT_EVERY, ids)
            .await
            .map_err(|error| match out_of_reach(&error) {
                Some(detail) => StorageError::Unavailable(detail),
                None => StorageError::Corrupt(error.to_string()),
            })
    }

    fn stripe(&self, aggregate_type: &str, id: &str) -> &Mutex<()> {
        let mut hasher = DefaultHasher::new();
        (aggregate_type, id).hash(&mut hasher);
        &self.locks[(hasher.finish() as usize) % LOCK_STRIPES]
    }

    /// Executes `command` on aggregate `id`, retrying optimistic-lock conflicts a bounded
    /// number of times, and returns the events it appended (possibly none).
    pub async fn execute<A>(
        &self,
        cqrs: &Cqrs<A>,
        id: &str,
        command: A::Command,
        meta: &Meta,
    ) -> Result<Appended, CommandError>
    where
        A: Aggregate + Clone + 'static,
        A::Command: Clone,
        A::Error: DomainError,
    {
        let events = self.record(cqrs, id, command, meta).await?;
        if let Some(last) = events.last() {
            self.read_models_reach(last.position).await;
        }
        Ok(Appended { events })
    }

    /// Writes the commits of commands run in a [`holding_back`](crate::storage::repository::holding_back)
    /// scope in one transaction (all or none of them: another writer reaching one of their
    /// aggregates first refuses them all as contended), and waits for the read models.
    pub async fn commit_held(&self, held: Vec<Part>) -> Result<Vec<LogEvent>, CommandError> {
        let appended = self.appender.append_all(held).await;
        self.committed(appended).await
    }

    /// [`commit_held`](Self::commit_held) for commands run in a
    /// [`streaming`](crate::storage::repository::streaming) scope at the same time: their
    /// commits arrive on `parts` as they are made, and are written as they arrive (see
    /// [`Appender::append_streamed`]). Nothing is written unless the scope ends well.
    pub async fn commit_streamed(
        &self,
        parts: mpsc::UnboundedReceiver<Streamed>,
    ) -> Result<Vec<LogEvent>, CommandError> {
        let appended = self.appender.append_streamed(parts).await;
        self.committed(appended).await
    }

    /// A unit's commit as its caller hears it, once the read models have its events.
    async fn committed(
        &self,
        appended: Result<Vec<LogEvent>, Failure>,
    ) -> Result<Vec<LogEvent>, CommandError> {
        let events = appended.map_err(|failure| match failure {
            Failure::Conflict => CommandError::Contended,
            Failure::Unavailable(detail) => CommandError::Unavailable(detail),
            Failure::Storage(detail) => CommandError::Storage(detail),
            Failure::Unconfirmed => CommandError::Unconfirmed,
        })?;
        if let Some(last) = events.last() {
            self.read_models_reach(last.position).await;
        }
        Ok(events)
    }

    /// The principal of a token this process has read before ([`Remembered`]) and the head to
    /// decide a command at without reading either: the last event this process appended.
    /// Only on PostgreSQL, where that read is a round trip of its own (SQLite's takes
    /// microseconds on the calling thread), and once this process has appended.
    ///
    /// A batch this process is writing may be committed already, and seen by others through
    /// another process: it is waited for first ([`SETTLING`] at most, as a reader of the head
    /// waits), so that the head is past every commit of this process made before the call.
    pub async fn remembered_caller(&self, digest: &str) -> Option<(Principal, i64)> {
        if !matches!(self.backend, Backend::Postgres(_)) {
            return None;
        }
        let principal = self.tokens.recall(digest)?;
        if !self.appender.settled(SETTLING).await {
            return None;
        }
        let head = self.appender.own_span().through;
        if head == 0 {
            return None;
        }
        Some((principal, head))
    }

    /// Brings the read models up to `head`, the log's head a reader has just seen, so that it
    /// reads every write made before it asked, this process's and another's. When this
    /// process is writing a batch, its commit may be what moved the head: the appender hands
    /// it to the projector in a moment, which is waited for ([`SETTLING`] at most) rather than
    /// reading the same events from the log.
    pub async fn reach_head(&self, head: i64) -> Result<i64, StorageError> {
        // A stopped projector folds nothing more: nothing to wait for.
        if self.projector.position() < head && self.projector.stopped().is_none() {
            self.appender.settled(SETTLING).await;
        }
        self.projector.catch_up_to(head).await
    }

    /// Waits for the read models to reach a position this process has just committed, so
    /// that the caller reads its own writes. Usually they are there already (the appender
    /// hands each commit to the projector). The events are committed whatever happens here:
    /// if the read models cannot catch up in time (another catch-up holds them longer than
    /// the wait, the database went away), the command is still answered as recorded, never
    /// as a 503 that would tell the caller nothing was; they catch up on the next tick.
    async fn read_models_reach(&self, position: i64) {
        if let Err(error) = self.projector.catch_up_to(position).await {
            tracing::warn!(
                %error,
                position,
                "recorded; the read models could not catch up before the answer"
            );
        }
    }

    /// [`execute`](Self::execute) without waiting for the read models: for bulk loads that
    /// catch the projector up once at the end. Returns the events appended.
    pub async fn record<A>(
        &self,
        cqrs: &Cqrs<A>,
        id: &str,
        command: A::Command,
        meta: &Meta,
    ) -> Result<Vec<LogEvent>, CommandError>
    where
        A: Aggregate + Clone + 'static,
        A::Command: Clone,
        A::Error: DomainError,
    {
        if let Some(stopped) = self.projector.stopped() {
            // What the read models show is behind the log: deciding on it could break a rule.
            return Err(CommandError::Stopped(stopped));
        }
        let metadata = meta.to_map();
        let started = std::time::Instant::now();
        // A command of a unit held back or streamed ([`is_holding_back`]) takes no turn: the
        // turn is for commands that commit as they are decided, and the unit commits later
        // anyway, its sequences checked then. Taking it would deadlock a streamed unit
        // against a command on one of its aggregates that holds the turn while it waits for
        // the appender, which waits for the unit's next part.
        let _turn = match is_holding_back() {
            true => None,
            false => Some(self.stripe(A::TYPE, id).lock().await),
        };
        // Boxed: the scopes around it would each hold the whole command's future on the
        // stack (an import's, in a debug build, overflowed it).
        let work = Box::pin(as_of(
            meta.as_of,
            meta.creates,
            self.decide_and_append(cqrs, id, command, metadata),
        ));
        let (result, events) = with_receipt(confirming(meta.confirm.clone(), work)).await;
        crate::metrics::command(A::TYPE, started.elapsed());
        result.map(|()| events)
    }

    async fn decide_and_append<A>(
        &self,
        cqrs: &Cqrs<A>,
        id: &str,
        command: A::Command,
        metadata: HashMap<String, String>,
    ) -> Result<(), CommandError>
    where
        A: Aggregate + Clone + 'static,
        A::Command: Clone,
        A::Error: DomainError,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match cqrs
                .execute_with_metadata(id, command.clone(), metadata.clone())
                .await
            {
                Ok(()) => return Ok(()),
                Err(AggregateError::UserError(_)) if took_the_empty_state() => {
                    // Refused on the empty state taken for a creation: decided again on the
                    // state read, which may be "it exists" rather than the input's fault.
                }
                Err(AggregateError::UserError(error)) => {
                    return Err(CommandError::Refused {
                        code: error.code(),
                        refusal: error.refusal(),
                        message: error.to_string(),
                    })
                }
                Err(AggregateError::AggregateConflict) if attempt < MAX_ATTEMPTS => {
                    // Another process wrote to this aggregate first: reload and decide again.
                    let pause = rand::thread_rng().gen_range(1..=(2 * attempt as u64));
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                Err(AggregateError::AggregateConflict) => return Err(CommandError::Contended),
                Err(other) => {
                    return Err(match out_of_reach(&other) {
                        Some(detail) => CommandError::Unavailable(detail),
                        None if is_unconfirmed(&other) => CommandError::Unconfirmed,
                        None => CommandError::Storage(other.to_string()),
                    })
                }
            }
        }
    }
}

/// Whether a commit failed because it did not confirm an unconfirmed command.
fn is_unconfirmed<E: std::error::Error>(error: &AggregateError<E>) -> bool {
    matches!(
        error,
        AggregateError::UnexpectedError(error)
            if matches!(error.downcast_ref::<StorageError>(), Some(StorageError::Unconfirmed))
    )
}

/// What an aggregate's load or commit says when it failed because the database is out of
/// reach (a 503), `None` for any other failure.
fn out_of_reach<E: std::error::Error>(error: &AggregateError<E>) -> Option<String> {
    match error {
        AggregateError::DatabaseConnectionError(error) | AggregateError::UnexpectedError(error)
            if crate::storage::is_unavailable_boxed(error.as_ref()) =>
        {
            Some(error.to_string())
        }
        _ => None,
    }
}
