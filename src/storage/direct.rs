//! SQLite without the hand-off: the log's bulk reads on connections of our own.
//!
//! sqlx runs every SQLite connection on a worker thread of its own and hands each row to the
//! async side through a channel, a thread wake-up per row. Reading a million events that way
//! spent more time in the kernel's scheduler than in SQLite (docs/PERFORMANCE.md, the twelfth
//! run's profile): 1.09M events took 3.3 s of waiting for pages during a rebuild, where the
//! same query on a plain `rusqlite` connection reads them in 0.65 s. So the catch-up reads its
//! ranges of positions here, on a blocking thread, with the same SQL.
//!
//! A connection opened here is read-only and sees what is committed, like any other reader of
//! the WAL; it waits for a lock as long as the pool does ([`database_wait`]). Idle connections
//! are kept for the next range of the same file. A database sqlx holds only in memory has no
//! file to open: such a ledger is read through sqlx as before.

use super::log::RawEvent;
use super::{database_wait, StorageError};
use rusqlite::{Connection, OpenFlags};
use sqlx::SqlitePool;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Idle read connections, by database file.
static IDLE: Mutex<Vec<(PathBuf, Connection)>> = Mutex::new(Vec::new());
/// Most idle connections kept: the catch-up reads three ranges ahead, and each command reads
/// its token and aggregate on one ([`read_now`]).
const KEEP: usize = 12;
/// Database files already found on disk (a pool's file stays there while it is open).
static FILES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The file behind `pool`, when it has one this process can open.
pub fn file_of(pool: &SqlitePool) -> Option<PathBuf> {
    let options = pool.connect_options();
    let path = options.get_filename();
    if let Ok(files) = FILES.lock() {
        if files.iter().any(|known| known == path) {
            return Some(path.to_path_buf());
        }
    }
    if !path.is_file() {
        return None;
    }
    if let Ok(mut files) = FILES.lock() {
        files.push(path.to_path_buf());
    }
    Some(path.to_path_buf())
}

impl From<rusqlite::Error> for StorageError {
    fn from(error: rusqlite::Error) -> Self {
        let busy = matches!(
            error.sqlite_error_code(),
            Some(
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::FileLockingProtocolFailed
            )
        );
        let gone = matches!(
            error.sqlite_error_code(),
            Some(
                rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::ReadOnly
                    | rusqlite::ErrorCode::SystemIoFailure
                    | rusqlite::ErrorCode::NotADatabase
            )
        );
        if busy || gone {
            StorageError::Unavailable(error.to_string())
        } else {
            StorageError::Sqlite(error.to_string())
        }
    }
}

fn open(path: &Path) -> Result<Connection, StorageError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Ok(Connection::open_with_flags(path, flags)?)
}

/// An idle read connection to `path`, or a new one, waiting for a lock at most `wait`.
fn take(path: &Path, wait: Duration) -> Result<Connection, StorageError> {
    let idle = IDLE.lock().ok().and_then(|mut idle| {
        let at = idle.iter().position(|(p, _)| p == path)?;
        Some(idle.swap_remove(at).1)
    });
    let connection = match idle {
        Some(connection) => connection,
        None => open(path)?,
    };
    connection.busy_timeout(wait)?;
    Ok(connection)
}

/// Keeps `connection` for the next read. When enough are kept, one to another file makes
/// room (a process that has read other ledgers, the demo's scratch file, keeps reading
/// this one); when they are all to this file, it is closed.
fn keep(path: PathBuf, connection: Connection) {
    if let Ok(mut idle) = IDLE.lock() {
        if idle.len() >= KEEP {
            match idle.iter().position(|(p, _)| *p != path) {
                Some(other) => drop(idle.swap_remove(other)),
                None => return,
            }
        }
        idle.push((path, connection));
    }
}

/// Runs `work` on a read connection to `path` (an idle one when there is one), on a
/// blocking thread; the connection is kept for the next call unless `work` failed.
pub async fn read_elsewhere<T: Send + 'static>(
    path: PathBuf,
    work: impl FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(move || {
        let connection = take(&path, database_wait())?;
        let result = work(&connection);
        if result.is_ok() {
            keep(path, connection);
        }
        result
    })
    .await
    .map_err(|e| StorageError::Corrupt(format!("reading the log: {e}")))?
}

/// Runs a point read (a token, an aggregate's snapshot or events, the head) on a read
/// connection to `path`, on this thread: such a read takes microseconds, less than handing
/// it to another thread and back (sqlx's way, four thread wake-ups a query). A WAL reader
/// waits for no writer; should it find the file locked all the same (a recovery, another
/// process's exclusive lock), it does not wait here but on a blocking thread, as long as the
/// pool would.
pub async fn read_now<T: Send + 'static>(
    path: &Path,
    work: impl Fn(&Connection) -> Result<T, StorageError> + Send + Sync + 'static,
) -> Result<T, StorageError> {
    let at_once = take(path, Duration::ZERO).and_then(|connection| {
        let result = work(&connection);
        if result.is_ok() {
            keep(path.to_path_buf(), connection);
        }
        result
    });
    match at_once {
        Err(StorageError::Unavailable(_)) => read_elsewhere(path.to_path_buf(), work).await,
        other => other,
    }
}

/// The events with `after < position <= until`, in position order (see
/// [`read_raw_between`](super::log::read_raw_between)).
pub async fn read_raw_between(
    path: PathBuf,
    after: i64,
    until: i64,
) -> Result<Vec<RawEvent>, StorageError> {
    read_elsewhere(path, move |connection| {
        let mut statement = connection.prepare_cached(
            "SELECT position, recorded_at, aggregate_type, aggregate_id, event_type, payload, \
             metadata FROM events WHERE position > ?1 AND position <= ?2 ORDER BY position",
        )?;
        let mut rows = statement.query([after, until])?;
        let mut events = Vec::with_capacity(usize::try_from(until - after).unwrap_or(0));
        while let Some(row) = rows.next()? {
            events.push(RawEvent {
                position: row.get(0)?,
                recorded_at: row.get(1)?,
                aggregate_type: row.get(2)?,
                aggregate_id: row.get(3)?,
                event_type: row.get(4)?,
                payload: row.get(5)?,
                metadata: row.get(6)?,
            });
        }
        Ok(events)
    })
    .await
}

/// The appender's own connection to a SQLite ledger: it writes every batch (see
/// [`append`](super::append)) in one `BEGIN IMMEDIATE` transaction, one prepared statement
/// per row, with a server pool's settings (WAL, `synchronous=NORMAL`, the busy timeout of
/// [`database_wait`]), also beside the demo's scratch pool, which syncs nothing.
///
/// It does not checkpoint the WAL itself (`wal_autocheckpoint = 0`): a checkpoint copies the
/// WAL into the database file and syncs it, tens of milliseconds that every command of the
/// batch which crossed the threshold waited for. A thread of its own checkpoints instead
/// ([`CHECKPOINT_EVERY`], `PASSIVE`: it waits for no reader or writer), while the appender
/// goes on.
pub struct Writer {
    path: PathBuf,
    /// `None` until the first batch, and after a failure that left it inside a transaction.
    connection: Option<Connection>,
    /// Tells the checkpointing thread to stop when the writer goes.
    stop: Arc<AtomicBool>,
}

/// How often the checkpointing thread copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Checkpoints the WAL of `path` every [`CHECKPOINT_EVERY`] until `stop`. A failure (the
/// file locked or gone) is tried again on the next round, on a new connection.
fn checkpoint_until(path: PathBuf, stop: Arc<AtomicBool>) {
    let mut connection: Option<Connection> = None;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(CHECKPOINT_EVERY);
        let open = match connection.take() {
            Some(open) => Ok(open),
            None => Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            ),
        };
        let Ok(open) = open else {
            continue;
        };
        let done = open.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        if done.is_ok() {
            connection = Some(open);
        }
    }
}

impl Writer {
    pub fn new(path: PathBuf) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_path, thread_stop) = (path.clone(), stop.clone());
        let spawned = std::thread::Builder::new()
            .name("kiroku-wal-checkpoint".into())
            .spawn(move || checkpoint_until(thread_path, thread_stop));
        if let Err(error) = spawned {
            tracing::warn!(%error, "no thread to checkpoint the WAL; the appender will");
            stop.store(true, Ordering::Relaxed);
        }
        Writer {
            path,
            connection: None,
            stop,
        }
    }

    fn open(path: &Path, checkpointed: bool) -> Result<Connection, StorageError> {
        let connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.busy_timeout(database_wait())?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.pragma_update(None, "cache_size", -65536)?;
        if checkpointed {
            connection.pragma_update(None, "wal_autocheckpoint", 0)?;
        }
        Ok(connection)
    }

    /// Runs `work` in one write transaction on a blocking thread, handing `input` through;
    /// commits when it succeeds, rolls back otherwise.
    pub async fn transaction<I, T, E>(
        &mut self,
        mut input: I,
        work: impl FnOnce(&rusqlite::Transaction<'_>, &mut I) -> Result<T, E> + Send + 'static,
    ) -> (I, Result<T, E>)
    where
        I: Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        let path = self.path.clone();
        let connection = self.connection.take();
        let checkpointed = !self.stop.load(Ordering::Relaxed);
        let joined = tokio::task::spawn_blocking(move || {
            let mut connection = match connection {
                Some(connection) => connection,
                None => match Writer::open(&path, checkpointed) {
                    Ok(connection) => connection,
                    Err(error) => return (None, input, Err(E::from(error))),
                },
            };
            let result = (|| {
                let tx = connection
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(|e| E::from(StorageError::from(e)))?;
                let output = work(&tx, &mut input)?;
                tx.commit().map_err(|e| E::from(StorageError::from(e)))?;
                Ok(output)
            })();
            // A connection left inside a transaction (its rollback failed too) is not used
            // again: the next batch opens a new one.
            let usable = connection.is_autocommit();
            (usable.then_some(connection), input, result)
        })
        .await;
        match joined {
            Ok((connection, input, result)) => {
                self.connection = connection;
                (input, result)
            }
            Err(panicked) => {
                // The input went down with the thread: there is nothing to hand back.
                std::panic::resume_unwind(panicked.into_panic())
            }
        }
    }
}
