//! Per-person keys and the sealing of personal text.
//!
//! Names and free text about a person (interview notes, evaluation comments, dispute texts)
//! enter the log only as ciphertext under that person's own key (XChaCha20-Poly1305, a fresh
//! random nonce per value, the staff id as associated data). Keys live in `personal_keys`,
//! outside the event table; destroying a key erases the person's personal data from every
//! event at once, while counts, indicators and the hash chain (which covers the ciphertext)
//! stay as they were.
//!
//! The personal keys are stored *wrapped* under a master key kept outside the database
//! ([`MasterKey`]): a dump or backup of the database alone opens nothing. A key stored
//! unwrapped by an earlier version (32 bytes) is wrapped when the ledger opens.

use super::{now_ms, Backend, StorageError};
use crate::with_pool;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use kiroku_domain::values::Sealed;
use rand::RngCore;
use sqlx::Row;
use std::collections::HashMap;
use std::sync::RwLock;
use uuid::Uuid;

pub const ENVELOPE: &str = "xchacha20poly1305-v1";

/// What people read where an erased person's name or text was.
pub const ERASED: &str = "削除済み";

type Key = [u8; 32];

/// A wrapped personal key: nonce (24) ‖ ciphertext of the key (32) ‖ tag (16).
const WRAPPED_LEN: usize = 24 + 32 + 16;

/// The key-encryption key that wraps every personal key. It lives outside the database:
/// `KIROKU_MASTER_KEY` (64 hex digits), else the file `KIROKU_MASTER_KEY_FILE`, else
/// `./kiroku-master.key`, created (mode 0600) when missing.
#[derive(Clone)]
pub struct MasterKey {
    key: Key,
    /// Where it came from, for messages (never the key itself).
    pub source: String,
    /// Whether it was just created.
    pub created: bool,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.source)
    }
}

impl MasterKey {
    pub const DEFAULT_FILE: &'static str = "kiroku-master.key";

    /// The master key from the environment or its file (see the type).
    pub fn load() -> Result<MasterKey, StorageError> {
        if let Ok(hex_key) = std::env::var("KIROKU_MASTER_KEY") {
            let key: Key = hex::decode(hex_key.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    StorageError::Crypto(
                        "KIROKU_MASTER_KEY は 64 桁の16進数（32 バイト）で指定してください".into(),
                    )
                })?;
            return Ok(MasterKey {
                key,
                source: "KIROKU_MASTER_KEY".into(),
                created: false,
            });
        }
        let path = std::env::var("KIROKU_MASTER_KEY_FILE")
            .unwrap_or_else(|_| Self::DEFAULT_FILE.to_string());
        let (key, created) = super::secret::load_or_create(std::path::Path::new(&path))
            .map_err(|e| StorageError::Crypto(format!("master key: {e}")))?;
        Ok(MasterKey {
            key,
            source: path,
            created,
        })
    }

    fn wrap(&self, staff_id: Uuid, key: &Key) -> Result<Vec<u8>, StorageError> {
        let cipher = XChaCha20Poly1305::new(&self.key.into());
        let mut nonce = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = format!("personal-key:{staff_id}");
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: key,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|e| StorageError::Crypto(e.to_string()))?;
        let mut wrapped = nonce.to_vec();
        wrapped.extend_from_slice(&sealed);
        Ok(wrapped)
    }

    fn unwrap(&self, staff_id: Uuid, wrapped: &[u8]) -> Result<Key, StorageError> {
        let mismatch = || {
            StorageError::Crypto(format!(
                "the master key ({}) does not open the personal key of {staff_id}: \
                 start Kiroku with the master key this ledger was written with",
                self.source
            ))
        };
        if wrapped.len() != WRAPPED_LEN {
            return Err(StorageError::Corrupt(format!("key of {staff_id}")));
        }
        let (nonce, sealed) = wrapped.split_at(24);
        let aad = format!("personal-key:{staff_id}");
        let cipher = XChaCha20Poly1305::new(&self.key.into());
        let key = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| mismatch())?;
        Key::try_from(key.as_slice()).map_err(|_| mismatch())
    }
}

pub struct KeyStore {
    backend: Backend,
    master: MasterKey,
    /// staff id → key, or `None` once erased.
    cache: RwLock<HashMap<Uuid, Option<Key>>>,
}

impl KeyStore {
    pub fn new(backend: Backend, master: MasterKey) -> Self {
        KeyStore {
            backend,
            master,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Wraps every key an earlier version stored unwrapped, then checks that the master key
    /// opens the stored keys: a ledger never runs under the wrong master key.
    pub async fn prepare(&self) -> Result<(), StorageError> {
        let rows: Vec<(String, Vec<u8>)> = with_pool!(&self.backend, pool => {
            sqlx::query("SELECT staff_id, key FROM personal_keys WHERE key IS NOT NULL")
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<Result<_, sqlx::Error>>()?
        });
        let mut checked = false;
        for (id, stored) in rows {
            let staff_id = Uuid::parse_str(&id)
                .map_err(|_| StorageError::Corrupt(format!("personal key id {id}")))?;
            if stored.len() == 32 {
                let key = Key::try_from(stored.as_slice())
                    .map_err(|_| StorageError::Corrupt(format!("key of {staff_id}")))?;
                let wrapped = self.master.wrap(staff_id, &key)?;
                with_pool!(&self.backend, pool => {
                    sqlx::query("UPDATE personal_keys SET key = $1 WHERE staff_id = $2")
                        .bind(wrapped)
                        .bind(&id)
                        .execute(pool)
                        .await?;
                });
            } else if !checked {
                self.master.unwrap(staff_id, &stored)?;
                checked = true;
            }
        }
        Ok(())
    }

    /// Destroys the person's key: every sealed text about them becomes unreadable for good.
    /// Returns whether there was a key to destroy.
    pub async fn destroy(&self, staff_id: Uuid) -> Result<bool, StorageError> {
        let destroyed = with_pool!(&self.backend, pool => {
            sqlx::query(
                "UPDATE personal_keys SET key = NULL, erased_at = $1 \
                 WHERE staff_id = $2 AND key IS NOT NULL",
            )
            .bind(now_ms())
            .bind(staff_id.to_string())
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.remember(staff_id, None);
        Ok(destroyed > 0)
    }

    /// Forgets what this process cached about `staff_id` (another process erased them).
    pub fn forget(&self, staff_id: Uuid) {
        self.remember(staff_id, None);
    }

    fn cached(&self, staff_id: Uuid) -> Option<Option<Key>> {
        self.cache
            .read()
            .ok()
            .and_then(|cache| cache.get(&staff_id).copied())
    }

    fn remember(&self, staff_id: Uuid, key: Option<Key>) {
        if let Ok(mut cache) = self.cache.write() {
            cache.insert(staff_id, key);
        }
    }

    /// The person's key, created on first use. `None` when it was destroyed.
    pub async fn key_for_writing(&self, staff_id: Uuid) -> Result<Option<Key>, StorageError> {
        if let Some(known) = self.cached(staff_id) {
            return Ok(known);
        }
        let mut fresh = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut fresh);
        let wrapped = self.master.wrap(staff_id, &fresh)?;
        with_pool!(&self.backend, pool => {
            sqlx::query(
                "INSERT INTO personal_keys (staff_id, key, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (staff_id) DO NOTHING",
            )
            .bind(staff_id.to_string())
            .bind(wrapped)
            .bind(now_ms())
            .execute(pool)
            .await?;
        });
        self.load(staff_id).await
    }

    /// The person's key if it exists and was not destroyed.
    pub async fn key_for_reading(&self, staff_id: Uuid) -> Result<Option<Key>, StorageError> {
        if let Some(known) = self.cached(staff_id) {
            return Ok(known);
        }
        self.load(staff_id).await
    }

    async fn load(&self, staff_id: Uuid) -> Result<Option<Key>, StorageError> {
        let stored: Option<Vec<u8>> = with_pool!(&self.backend, pool => {
            let row = sqlx::query("SELECT key FROM personal_keys WHERE staff_id = $1")
                .bind(staff_id.to_string())
                .fetch_optional(pool)
                .await?;
            match row {
                Some(row) => row.try_get::<Option<Vec<u8>>, _>(0)?,
                None => None,
            }
        });
        let key = match stored {
            Some(bytes) if bytes.len() == 32 => Some(
                Key::try_from(bytes.as_slice())
                    .map_err(|_| StorageError::Corrupt(format!("key of {staff_id}")))?,
            ),
            Some(bytes) => Some(self.master.unwrap(staff_id, &bytes)?),
            None => None,
        };
        self.remember(staff_id, key);
        Ok(key)
    }

    /// Seals `text` about `staff_id` under their key.
    pub async fn seal(&self, staff_id: Uuid, text: &str) -> Result<Sealed, StorageError> {
        let key = self
            .key_for_writing(staff_id)
            .await?
            .ok_or_else(|| StorageError::Crypto(format!("the key of {staff_id} was destroyed")))?;
        let cipher = XChaCha20Poly1305::new(&key.into());
        let mut nonce = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = staff_id.to_string();
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: text.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|e| StorageError::Crypto(e.to_string()))?;
        let mut envelope = nonce.to_vec();
        envelope.extend_from_slice(&ciphertext);
        Ok(Sealed {
            enc: ENVELOPE.to_string(),
            ct: BASE64.encode(envelope),
        })
    }

    /// Opens a sealed text about `staff_id`; `None` when the key was destroyed.
    pub async fn open(
        &self,
        staff_id: Uuid,
        sealed: &Sealed,
    ) -> Result<Option<String>, StorageError> {
        let Some(key) = self.key_for_reading(staff_id).await? else {
            return Ok(None);
        };
        if sealed.enc != ENVELOPE {
            return Err(StorageError::Crypto(format!(
                "unknown envelope {}",
                sealed.enc
            )));
        }
        let bytes = BASE64
            .decode(&sealed.ct)
            .map_err(|e| StorageError::Crypto(e.to_string()))?;
        if bytes.len() < 24 {
            return Err(StorageError::Crypto("envelope too short".into()));
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let aad = staff_id.to_string();
        let cipher = XChaCha20Poly1305::new(&key.into());
        let clear = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|e| StorageError::Crypto(e.to_string()))?;
        String::from_utf8(clear)
            .map(Some)
            .map_err(|e| StorageError::Crypto(e.to_string()))
    }
}
