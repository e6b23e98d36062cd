//! Idempotency keys: a command sent again with the same `Idempotency-Key` by the same caller
//! gets the first response back and appends nothing.

use super::{now_ms, Backend, StorageError};
use crate::with_pool;
use sqlx::Row;

/// What the store knows about a (caller, key) pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use: the caller runs the command and then calls [`complete`] or [`release`].
    Fresh,
    /// The first request finished with this response.
    Replay { status: u16, body: String },
    /// The first request is still running.
    InProgress,
    /// The key was used before for a different request.
    Mismatch,
}

pub async fn claim(
    backend: &Backend,
    actor: &str,
    key: &str,
    request_hash: &str,
) -> Result<Claim, StorageError> {
    let inserted = with_pool!(backend, pool => {
        sqlx::query(
            "INSERT INTO idempotency_keys (actor, key, request_hash, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (actor, key) DO NOTHING",
        )
        .bind(actor)
        .bind(key)
        .bind(request_hash)
        .bind(now_ms())
        .execute(pool)
        .await?
        .rows_affected()
    });
    if inserted == 1 {
        return Ok(Claim::Fresh);
    }
    let (stored_hash, status, body): (String, Option<i32>, Option<String>) = with_pool!(backend, pool => {
        let row = sqlx::query(
            "SELECT request_hash, status, body FROM idempotency_keys \
             WHERE actor = $1 AND key = $2",
        )
        .bind(actor)
        .bind(key)
        .fetch_one(pool)
        .await?;
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)
    });
    if stored_hash != request_hash {
        return Ok(Claim::Mismatch);
    }
    Ok(match (status, body) {
        (Some(status), Some(body)) => Claim::Replay {
            status: u16::try_from(status).unwrap_or(500),
            body,
        },
        _ => Claim::InProgress,
    })
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
