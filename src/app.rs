//! Start-up that tests can drive: build the application on any address (port 0 for tests),
//! read its port, run it until stopped. Background tasks keep the projector and the hash
//! chain up to date with writes made by other processes (the CLI, a second server).

use crate::http::router;
use crate::ledger::Ledger;
use crate::server::{serve, Limits};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Most ticks (of 500 ms) a serving checkpoint waits for attendance sheets being written.
const CHECKPOINT_WAIT: u64 = 120;

pub struct Application {
    listener: TcpListener,
    ledger: Arc<Ledger>,
    limits: Limits,
}

impl Application {
    /// Opens the ledger at `database_url` and binds `addr`.
    pub async fn build(database_url: &str, addr: SocketAddr) -> Result<Self, StartError> {
        let ledger = Ledger::open(database_url).await?;
        let listener = TcpListener::bind(addr).await?;
        Ok(Application {
            listener,
            ledger,
            limits: Limits::default(),
        })
    }

    /// Other connection and timeout limits than the defaults.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn ledger(&self) -> Arc<Ledger> {
        self.ledger.clone()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let ledger = self.ledger.clone();
        let follower = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            let mut ticks = 0u64;
            // The tick a checkpoint was asked for and has not been begun yet.
            let mut checkpoint_asked: Option<u64> = None;
            loop {
                tick.tick().await;
                ticks += 1;
                // Idempotency keys older than a day are forgotten (at start, then hourly).
                if ticks % 7200 == 1 {
                    if let Err(error) =
                        crate::storage::idempotency::purge_expired(&ledger.backend).await
                    {
                        tracing::warn!(%error, "purging expired idempotency keys failed");
                    }
                }
                if ticks.is_multiple_of(60) {
                    checkpoint_asked.get_or_insert(ticks);
                }
                if let Some(asked) = checkpoint_asked {
                    // Attendance sheets being written have the machine: the checkpoint
                    // waits for the series to end, a minute at most (decisions.md →
                    // Projections).
                    if !crate::import::writing_sheets() || ticks - asked >= CHECKPOINT_WAIT {
                        checkpoint_asked = None;
                        if let Err(error) = ledger.projector.checkpoint_if_due().await {
                            tracing::warn!(%error, "checkpointing the read models failed");
                        }
                    }
                }
                if ticks.is_multiple_of(60) {
                    if let Err(error) = ledger.complete_erasures().await {
                        tracing::warn!(%error, "completing erasures failed");
                    }
                    // Histories nobody read or changed lately are kept encoded again (CPU
                    // work under the state's locks, off the async workers).
                    let cooling = ledger.clone();
                    let started = std::time::Instant::now();
                    match tokio::task::spawn_blocking(move || cooling.projector.cool()).await {
                        Ok(Ok(0)) => {}
                        Ok(Ok(shards)) => tracing::debug!(
                            shards,
                            took_s = started.elapsed().as_secs_f64(),
                            "history shards kept encoded"
                        ),
                        Ok(Err(error)) => tracing::warn!(%error, "encoding idle histories failed"),
                        Err(error) => tracing::warn!(%error, "encoding idle histories failed"),
                    }
                }
                if let Err(error) = ledger.projector.catch_up().await {
                    tracing::error!(%error, "projector stopped on an unreadable event");
                }
            }
        });
        let ledger = self.ledger.clone();
        let result = serve(self.listener, router(self.ledger), self.limits, shutdown).await;
        follower.abort();
        if let Err(error) = ledger.projector.checkpoint_if_moved().await {
            tracing::warn!(%error, "checkpointing the read models at shutdown failed");
        }
        result
    }
}

/// Anything that prevents serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}
