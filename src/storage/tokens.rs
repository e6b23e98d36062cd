//! API tokens. A token is shown once, when `kiroku token create` makes it; the ledger keeps
//! only its SHA-256, the role and whom it belongs to.

use super::{now_ms, Backend, StorageError};
use crate::with_pool;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// The four roles of SPEC §1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Role {
    HrAdmin,
    Manager,
    Staff,
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::HrAdmin => "hr_admin",
            Role::Manager => "manager",
            Role::Staff => "staff",
            Role::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hr_admin" => Ok(Role::HrAdmin),
            "manager" => Ok(Role::Manager),
            "staff" => Ok(Role::Staff),
            "auditor" => Ok(Role::Auditor),
            other => Err(StorageError::Corrupt(format!("unknown role {other:?}"))),
        }
    }
}

/// Who is calling: resolved from a bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// The staff member the token belongs to (required for `manager` and `staff`).
    pub staff_id: Option<Uuid>,
}

/// What the ledger keeps of a token: its SHA-256, hex.
pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a token and returns it; only its hash is stored.
pub async fn create(
    backend: &Backend,
    role: Role,
    name: &str,
    staff_id: Option<Uuid>,
) -> Result<String, StorageError> {
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let token = format!("kiroku_{}", URL_SAFE_NO_PAD.encode(secret));
    with_pool!(backend, pool => {
        sqlx::query(
            "INSERT INTO api_tokens (token_hash, name, role, staff_id, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(digest(&token))
        .bind(name)
        .bind(role.as_str())
        .bind(staff_id.map(|id| id.to_string()))
        .bind(now_ms())
        .execute(pool)
        .await?;
    });
    Ok(token)
}

/// The principal a token stands for, if it is known and not revoked.
pub async fn authenticate(
    backend: &Backend,
    token: &str,
) -> Result<Option<Principal>, StorageError> {
    Ok(authenticate_at_head(backend, &digest(token))
        .await?
        .map(|(principal, _)| principal))
}

/// [`authenticate`] by the token's digest (a signed-in page session keeps only that), with
/// the log's last position read in the same query: what a request folds in first to read
/// every write committed before it, at no extra round trip.
pub async fn authenticate_at_head(
    backend: &Backend,
    token_digest: &str,
) -> Result<Option<(Principal, i64)>, StorageError> {
    const SQL: &str = "SELECT name, role, staff_id, \
                       (SELECT COALESCE(MAX(position), 0) FROM events) FROM api_tokens \
                       WHERE token_hash = $1 AND revoked_at IS NULL";
    type Found = (String, String, Option<String>, i64);
    let row: Option<Found> = match backend.sqlite_file() {
        Some(path) => {
            let token_digest = token_digest.to_string();
            super::direct::read_now(&path, move |connection| {
                let mut statement = connection.prepare_cached(SQL)?;
                let mut rows = statement.query([&token_digest])?;
                Ok(match rows.next()? {
                    Some(row) => Some((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
                    None => None,
                })
            })
            .await?
        }
        None => with_pool!(backend, pool => {
            let row = sqlx::query(SQL)
                .bind(token_digest)
                .fetch_optional(pool)
                .await?;
            match row {
                Some(row) => Some((
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                )),
                None => None,
            }
        }),
    };
    let Some((name, role, staff_id, head)) = row else {
        return Ok(None);
    };
    let staff_id = match staff_id {
        Some(id) => Some(
            Uuid::parse_str(&id)
                .map_err(|e| StorageError::Corrupt(format!("token staff id: {e}")))?,
        ),
        None => None,
    };
    let principal = Principal {
        name,
        role: role.parse()?,
        staff_id,
    };
    Ok(Some((principal, head)))
}

/// Most tokens [`Remembered`] keeps; past it, it starts again empty.
const MOST_REMEMBERED: usize = 1024;
/// How long [`Remembered`] recalls nothing after a command it let through was not confirmed:
/// another process is appending (or a token was revoked), and deciding the next commands
/// unconfirmed would only decide them twice.
const PAUSE_AFTER_UNCONFIRMED: std::time::Duration = std::time::Duration::from_secs(5);

/// The principals of the tokens this process has read from the database, by digest: what a
/// command of the API may be decided with before its token is read again. Such a command is
/// unconfirmed: its commit asks the database that the token still stands and that no other
/// process appended since the state it was decided on (`append::Confirm`); if not, nothing is
/// written and it is decided again the long way. Only a commit confirms: anything else is read
/// with the token, as before.
#[derive(Debug, Default)]
pub struct Remembered {
    known: std::sync::Mutex<std::collections::HashMap<String, Principal>>,
    paused_until: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Remembered {
    /// The principal of the token with `digest`, if it was read before and recalling is not
    /// paused.
    pub fn recall(&self, digest: &str) -> Option<Principal> {
        let paused = self.paused_until.lock().map_or(true, |until| {
            until.is_some_and(|t| std::time::Instant::now() < t)
        });
        if paused {
            return None;
        }
        self.known.lock().ok()?.get(digest).cloned()
    }

    /// Keeps what the token with `digest` was just read to stand for.
    pub fn remember(&self, digest: &str, principal: &Principal) {
        if let Ok(mut known) = self.known.lock() {
            if known.len() >= MOST_REMEMBERED && !known.contains_key(digest) {
                known.clear();
            }
            known.insert(digest.to_string(), principal.clone());
        }
    }

    /// A command of the token with `digest` was not confirmed: forgets the token, and recalls
    /// nothing for a while.
    pub fn forget_and_pause(&self, digest: &str) {
        if let Ok(mut known) = self.known.lock() {
            known.remove(digest);
        }
        if let Ok(mut until) = self.paused_until.lock() {
            *until = Some(std::time::Instant::now() + PAUSE_AFTER_UNCONFIRMED);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_token_is_recalled_until_a_command_of_it_is_not_confirmed() {
        let remembered = Remembered::default();
        let principal = Principal {
            name: "人事課".into(),
            role: Role::HrAdmin,
            staff_id: None,
        };
        assert_eq!(remembered.recall("a"), None);
        remembered.remember("a", &principal);
        remembered.remember("b", &principal);
        assert_eq!(remembered.recall("a"), Some(principal.clone()));
        remembered.forget_and_pause("a");
        assert_eq!(remembered.recall("a"), None, "forgotten");
        assert_eq!(remembered.recall("b"), None, "paused for every token");
    }
}
