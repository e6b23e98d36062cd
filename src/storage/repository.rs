//! The event repository behind every cqrs-es aggregate: postgres-es or sqlite-es for
//! reading (events, snapshots, streams), and the ledger's [`Appender`] for writing, so that
//! every commit carries its own hash-chain links and commands arriving together share one
//! transaction (`append.rs`).
//!
//! cqrs-es does not return what it persisted; the events of a command, as the log holds them,
//! are handed to its caller through [`with_receipt`].

use super::append::{Appender, Failure, Part};
use super::log::LogEvent;
use super::{Backend, StorageError};
use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlite_es::SqliteEventRepository;
use std::cell::RefCell;
use std::future::Future;

pub enum Inner {
    Sqlite(SqliteEventRepository),
    Postgres(PostgresEventRepository),
}

pub struct LedgerRepository {
    inner: Inner,
    appender: Appender,
}

tokio::task_local! {
    /// The events appended by the commands of the current [`with_receipt`] scope.
    static RECEIPT: RefCell<Vec<LogEvent>>;
}

tokio::task_local! {
    /// The commits held back by the current [`holding_back`] scope.
    static HELD: RefCell<Vec<Part>>;
}

/// Runs `work` with every commit its commands make held back instead of written, and returns
/// them with its output: the caller writes them in one transaction
/// ([`Appender::append_all`]) or drops them, so that several commands commit together or
/// not at all. The aggregate store keeps nothing of a held command in memory
/// ([`is_holding_back`]).
pub async fn holding_back<F: Future>(work: F) -> (F::Output, Vec<Part>) {
    HELD.scope(RefCell::new(Vec::new()), async move {
        let output = work.await;
        let held = HELD.with(|held| held.take());
        (output, held)
    })
    .await
}

/// Whether the current task's commits are being held back.
pub fn is_holding_back() -> bool {
    HELD.try_with(|_| ()).is_ok()
}

/// Runs `work` and returns, with its output, every event its commands appended, as the log
/// holds them (positions, times and chain links included).
pub async fn with_receipt<F: Future>(work: F) -> (F::Output, Vec<LogEvent>) {
    RECEIPT
        .scope(RefCell::new(Vec::new()), async move {
            let output = work.await;
            let events = RECEIPT.with(|receipt| receipt.take());
            (output, events)
        })
        .await
}

impl LedgerRepository {
    pub fn new(backend: &Backend, appender: Appender) -> Self {
        let inner = match backend {
            Backend::Sqlite(pool) => Inner::Sqlite(SqliteEventRepository::new(pool.clone())),
            Backend::Postgres(pool) => Inner::Postgres(PostgresEventRepository::new(pool.clone())),
        };
        LedgerRepository { inner, appender }
    }
}

macro_rules! delegate {
    ($self:ident, $repo:ident => $body:expr) => {
        match &$self.inner {
            Inner::Sqlite($repo) => $body,
            Inner::Postgres($repo) => $body,
        }
    };
}

impl PersistedEventRepository for LedgerRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        delegate!(self, repo => repo.get_events::<A>(aggregate_id).await)
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        delegate!(self, repo => repo.get_last_events::<A>(aggregate_id, last_sequence).await)
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        delegate!(self, repo => repo.get_snapshot::<A>(aggregate_id).await)
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        let part = Part {
            aggregate_type: A::TYPE.to_string(),
            events: events.to_vec(),
            snapshot: snapshot_update,
        };
        if is_holding_back() {
            HELD.with(|held| held.borrow_mut().push(part));
            return Ok(());
        }
        let appended = self.appender.append_all(vec![part]).await;
        match appended {
            Ok(appended) => {
                let _ = RECEIPT.try_with(|receipt| receipt.borrow_mut().extend(appended));
                Ok(())
            }
            Err(Failure::Conflict) => Err(PersistenceError::OptimisticLockError),
            Err(Failure::Unavailable(detail)) => Err(PersistenceError::ConnectionError(Box::new(
                StorageError::Unavailable(detail),
            ))),
            Err(Failure::Storage(detail)) => Err(PersistenceError::UnknownError(Box::new(
                StorageError::Append(detail),
            ))),
        }
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        delegate!(self, repo => repo.stream_events::<A>(aggregate_id).await)
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        delegate!(self, repo => repo.stream_all_events::<A>().await)
    }
}
