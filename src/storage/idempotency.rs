//! Idempotency keys: a command sent again with the same `Idempotency-Key` with the same token
//! gets the first response back and appends nothing. Keys expire after [`LIFETIME_MS`]; a key
//! a crash left in progress is resolved from the log after [`LEASE_MS`].

use super::{now_ms, Backend, StorageError};
use crate::with_pool;
use sqlx::Row;

/// How long a key is remembered.
pub const LIFETIME_MS: i64 = 24 * 60 * 60 * 1000;
/// How long a key may stay in progress before a retry may look into the log and take it over
/// (no request runs this long: database calls time out well before).
pub const LEASE_MS: i64 = 60 * 1000;

/// [`LEASE_MS`], or `KIROKU_IDEMPOTENCY_LEASE_MS` (at least 1 s) for an operator who wants
/// keys cut off by a crash resolved sooner after a restart (and for the crash test).
pub fn lease_ms() -> i64 {
    static LEASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *LEASE.get_or_init(|| {
        std::env::var("KIROKU_IDEMPOTENCY_LEASE_MS")
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .map_or(LEASE_MS, |ms| ms.max(1000))
    })
}

/// What the store knows about a (token, key) pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use: the caller runs the command and then calls [`complete`] or [`release`].
    Fresh,
    /// The first request finished with this response.
    Replay { status: u16, body: String },
    /// The first request is still running (or was cut off): it runs under `request_id`,
    /// claimed at `since` (ms).
    InProgress {
        request_id: Option<String>,
        since: i64,
    },
    /// The key was used before for a different request.
    Mismatch,
}

pub async fn claim(
    backend: &Backend,
    actor: &str,
    key: &str,
    request_hash: &str,
    request_id: &str,
) -> Result<Claim, StorageError> {
    let now = now_ms();
    let inserted = with_pool!(backend, pool => {
        // An expired key is forgotten: the same key starts afresh.
        sqlx::query("DELETE FROM idempotency_keys WHERE actor = $1 AND key = $2 AND created_at < $3")
            .bind(actor)
            .bind(key)
            .bind(now - LIFETIME_MS)
            .execute(pool)
            .await?;
        sqlx::query(
            "INSERT INTO idempotency_keys (actor, key, request_hash, request_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (actor, key) DO NOTHING",
        )
        .bind(actor)
        .bind(key)
        .bind(request_hash)
        .bind(request_id)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected()
    });
    if inserted == 1 {
        return Ok(Claim::Fresh);
    }
    type Stored = (String, Option<i32>, Option<String>, Option<String>, i64);
    let (stored_hash, status, body, stored_request, since): Stored = with_pool!(backend, pool => {
        let row = sqlx::query(
            "SELECT request_hash, status, body, request_id, created_at FROM idempotency_keys \
             WHERE actor = $1 AND key = $2",
        )
        .bind(actor)
        .bind(key)
        .fetch_one(pool)
        .await?;
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?, row.try_get(4)?)
    });
    if stored_hash != request_hash {
        return Ok(Claim::Mismatch);
    }
    Ok(match (status, body) {
        (Some(status), Some(body)) => Claim::Replay {
            status: u16::try_from(status).unwrap_or(500),
            body,
        },
        _ => Claim::InProgress {
            request_id: stored_request,
            since,
        },
    })
}

/// Takes over a key left in progress under `previous` (whose command never committed): it
/// now runs under `request_id`. False when another retry took it over first.
pub async fn take_over(
    backend: &Backend,
    actor: &str,
    key: &str,
    previous: Option<&str>,
    request_id: &str,
) -> Result<bool, StorageError> {
    let updated = with_pool!(backend, pool => {
        sqlx::query(
            "UPDATE idempotency_keys SET request_id = $1, created_at = $2 \
             WHERE actor = $3 AND key = $4 AND status IS NULL \
             AND (request_id = $5 OR (request_id IS NULL AND $5 IS NULL))",
        )
        .bind(request_id)
        .bind(now_ms())
        .bind(actor)
        .bind(key)
        .bind(previous)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(updated == 1)
}

/// Stores the response of a claimed key.
pub async fn complete(
    backend: &Backend,
    actor: &str,
    key: &str,
    status: u16,
    body: &str,
) -> Result<(), StorageError> {
    with_pool!(backend, pool => {
        sqlx::query("UPDATE idempotency_keys SET status = $1, body = $2 WHERE actor = $3 AND key = $4")
            .bind(i32::from(status))
            .bind(body)
            .bind(actor)
            .bind(key)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Forgets a claimed key whose request failed for a reason worth retrying (a 5xx).
pub async fn release(backend: &Backend, actor: &str, key: &str) -> Result<(), StorageError> {
    with_pool!(backend, pool => {
        sqlx::query("DELETE FROM idempotency_keys WHERE actor = $1 AND key = $2")
            .bind(actor)
            .bind(key)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Forgets every expired key; returns how many.
pub async fn purge_expired(backend: &Backend) -> Result<u64, StorageError> {
    Ok(with_pool!(backend, pool => {
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(now_ms() - LIFETIME_MS)
            .execute(pool)
            .await?
            .rows_affected()
    }))
}
