//! Per-person keys and the sealing of personal text.
//!
//! Names and free text about a person (interview notes, evaluation comments, dispute texts)
//! enter the log only as ciphertext under that person's own key (XChaCha20-Poly1305, a fresh
//! random nonce per value, the staff id as associated data). Keys live in `personal_keys`,
//! outside the event table; destroying a key erases the person's personal data from every
//! event at once, while counts, indicators and the hash chain (which covers the ciphertext)
//! stay as they were.

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

type Key = [u8; 32];

pub struct KeyStore {
    backend: Backend,
    /// staff id → key, or `None` once erased.
    cache: RwLock<HashMap<Uuid, Option<Key>>>,
}

impl KeyStore {
    pub fn new(backend: Backend) -> Self {
        KeyStore {
            backend,
            cache: RwLock::new(HashMap::new()),
        }
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
        with_pool!(&self.backend, pool => {
            sqlx::query(
                "INSERT INTO personal_keys (staff_id, key, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (staff_id) DO NOTHING",
            )
            .bind(staff_id.to_string())
            .bind(fresh.to_vec())
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
            Some(bytes) => Some(
                Key::try_from(bytes.as_slice())
                    .map_err(|_| StorageError::Corrupt(format!("key of {staff_id}")))?,
            ),
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
