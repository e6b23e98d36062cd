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
//! unwrapped by an earlier version (32 bytes) is wrapped when the ledger opens, and so is a
//! key still wrapped under the master key before a rotation (`KIROKU_MASTER_KEY_PREVIOUS`).

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
///
/// To rotate it, start Kiroku with the new key as the master key and the old one as
/// `KIROKU_MASTER_KEY_PREVIOUS`: keys still wrapped under the old one open under it and are
/// wrapped again under the new one when the ledger opens (or by `kiroku keys rewrap`).
#[derive(Clone)]
pub struct MasterKey {
    key: Key,
    /// The master key before a rotation, while keys may still be wrapped under it.
    previous: Option<Key>,
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

    /// The master key from the environment or its file, and the previous one if given (see
    /// the type).
    pub fn load() -> Result<MasterKey, StorageError> {
        let previous = match std::env::var("KIROKU_MASTER_KEY_PREVIOUS") {
            Ok(text) => Some(hex_key(&text, "KIROKU_MASTER_KEY_PREVIOUS")?),
            Err(_) => None,
        };
        if let Ok(text) = std::env::var("KIROKU_MASTER_KEY") {
            return Ok(MasterKey {
                key: hex_key(&text, "KIROKU_MASTER_KEY")?,
                previous,
                source: "KIROKU_MASTER_KEY".into(),
                created: false,
            });
        }
        let path = std::env::var("KIROKU_MASTER_KEY_FILE")
            .unwrap_or_else(|_| Self::DEFAULT_FILE.to_string());
        // A rotation names its new key: a key file missing there (a wrong directory, a lost
        // volume) is refused rather than created, or a random key would become the new one.
        if previous.is_some() && !std::path::Path::new(&path).exists() {
            return Err(StorageError::Crypto(format!(
                "KIROKU_MASTER_KEY_PREVIOUS が指定されていますが、新しいマスター鍵のファイル {path} がありません。新しい鍵を KIROKU_MASTER_KEY か KIROKU_MASTER_KEY_FILE で指定してください"
            )));
        }
        let (key, created) = super::secret::load_or_create(std::path::Path::new(&path))
            .map_err(|e| StorageError::Crypto(format!("master key: {e}")))?;
        Ok(MasterKey {
            key,
            previous,
            source: path,
            created,
        })
    }

    fn wrap(&self, staff_id: Uuid, key: &Key) -> Result<Vec<u8>, StorageError> {
        encrypt(
            &self.key,
            key,
            format!("personal-key:{staff_id}").as_bytes(),
        )
    }

    /// The personal key `wrapped` holds, and whether it was wrapped under the previous
    /// master key (so that it should be wrapped again).
    fn unwrap(&self, staff_id: Uuid, wrapped: &[u8]) -> Result<(Key, Wrapped), StorageError> {
        if wrapped.len() != WRAPPED_LEN {
            return Err(StorageError::Corrupt(format!("key of {staff_id}")));
        }
        if let Some(key) = unwrap_under(&self.key, staff_id, wrapped) {
            return Ok((key, Wrapped::Current));
        }
        if let Some(key) = self
            .previous
            .and_then(|previous| unwrap_under(&previous, staff_id, wrapped))
        {
            return Ok((key, Wrapped::Previous));
        }
        Err(StorageError::Crypto(format!(
            "the master key ({}) does not open the personal key of {staff_id}: \
             start Kiroku with the master key this ledger was written with{}",
            self.source,
            if self.previous.is_some() {
                " (nor does KIROKU_MASTER_KEY_PREVIOUS)"
            } else {
                ""
            }
        )))
    }
}

/// Under which master key a stored personal key was wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wrapped {
    Current,
    Previous,
}

/// A 32-byte key written as 64 hex digits, from the variable `name`.
fn hex_key(text: &str, name: &str) -> Result<Key, StorageError> {
    hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            StorageError::Crypto(format!(
                "{name} は 64 桁の16進数（32 バイト）で指定してください"
            ))
        })
}

/// The personal key `wrapped` holds under `master`, or `None` if it does not open under it.
fn unwrap_under(master: &Key, staff_id: Uuid, wrapped: &[u8]) -> Option<Key> {
    let key = decrypt(
        master,
        wrapped,
        format!("personal-key:{staff_id}").as_bytes(),
    )?;
    Key::try_from(key.as_slice()).ok()
}

/// `msg` sealed under `key` (XChaCha20-Poly1305): a fresh random nonce (24 bytes) followed by
/// the ciphertext and its tag. Personal keys under the master key and texts under a person's
/// key alike.
fn encrypt(key: &Key, msg: &[u8], aad: &[u8]) -> Result<Vec<u8>, StorageError> {
    let mut nonce = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut nonce);
    let sealed = XChaCha20Poly1305::new(&(*key).into())
        .encrypt(XNonce::from_slice(&nonce), Payload { msg, aad })
        .map_err(|e| StorageError::Crypto(e.to_string()))?;
    let mut envelope = nonce.to_vec();
    envelope.extend_from_slice(&sealed);
    Ok(envelope)
}

/// What [`encrypt`] sealed, or `None` if it does not open under `key` with `aad` (or is too
/// short to hold a nonce).
fn decrypt(key: &Key, envelope: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if envelope.len() < 24 {
        return None;
    }
    let (nonce, sealed) = envelope.split_at(24);
    XChaCha20Poly1305::new(&(*key).into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad })
        .ok()
}

/// What [`KeyStore::prepare`] found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prepared {
    /// Wrapped keys checked to open under the master key (or the previous one): all of them.
    pub checked: usize,
    /// Keys wrapped again, from the previous master key to the current one.
    pub rewrapped: usize,
    /// Keys an earlier version stored unwrapped, now wrapped.
    pub wrapped: usize,
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

    /// Wraps every key an earlier version stored unwrapped, wraps again under the master key
    /// every key still wrapped under the previous one, and checks that the master key opens
    /// every stored key: a ledger never runs under the wrong master key, nor under a new one
    /// that opens only part of them (a rotation left half done). One decryption of 32 bytes
    /// per person.
    ///
    /// Each key is swapped on its own, and only if it is still the bytes that were read (an
    /// erasure or another process in between wins): a ledger left half rotated by a crash
    /// opens with both keys given, and the next start finishes it.
    pub async fn prepare(&self) -> Result<Prepared, StorageError> {
        let rows: Vec<(String, Vec<u8>)> = with_pool!(&self.backend, pool => {
            sqlx::query("SELECT staff_id, key FROM personal_keys WHERE key IS NOT NULL")
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<Result<_, sqlx::Error>>()?
        });
        let mut prepared = Prepared::default();
        for (id, stored) in rows {
            let staff_id = Uuid::parse_str(&id)
                .map_err(|_| StorageError::Corrupt(format!("personal key id {id}")))?;
            let (key, unwrapped) = if stored.len() == 32 {
                let key = Key::try_from(stored.as_slice())
                    .map_err(|_| StorageError::Corrupt(format!("key of {staff_id}")))?;
                (key, true)
            } else {
                prepared.checked += 1;
                match self.master.unwrap(staff_id, &stored)? {
                    (_, Wrapped::Current) => continue,
                    (key, Wrapped::Previous) => (key, false),
                }
            };
            let wrapped = self.master.wrap(staff_id, &key)?;
            let swapped = with_pool!(&self.backend, pool => {
                sqlx::query("UPDATE personal_keys SET key = $1 WHERE staff_id = $2 AND key = $3")
                    .bind(wrapped)
                    .bind(&id)
                    .bind(&stored)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
            // Another process that swapped it first, or an erasure, leaves nothing to count.
            if swapped == 1 {
                if unwrapped {
                    prepared.wrapped += 1;
                } else {
                    prepared.rewrapped += 1;
                }
            }
        }
        if prepared.rewrapped > 0 || prepared.wrapped > 0 {
            tracing::info!(
                rewrapped = prepared.rewrapped,
                wrapped = prepared.wrapped,
                "personal keys wrapped under the master key ({})",
                self.master.source
            );
        }
        Ok(prepared)
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
            Some(bytes) => Some(self.master.unwrap(staff_id, &bytes)?.0),
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
        let envelope = encrypt(&key, text.as_bytes(), staff_id.to_string().as_bytes())?;
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
        let clear = decrypt(&key, &bytes, staff_id.to_string().as_bytes()).ok_or_else(|| {
            StorageError::Crypto(format!(
                "a sealed text about {staff_id} does not open under their key"
            ))
        })?;
        String::from_utf8(clear)
            .map(Some)
            .map_err(|e| StorageError::Crypto(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(key: u8, previous: Option<u8>) -> MasterKey {
        MasterKey {
            key: [key; 32],
            previous: previous.map(|p| [p; 32]),
            source: format!("test key {key}"),
            created: false,
        }
    }

    /// A rotation: the new master key with the old one as the previous reads every name and
    /// wraps every key again; then the new key alone reads them, and the old one alone is
    /// refused. An erased person stays erased.
    #[tokio::test]
    async fn the_master_key_is_rotated_with_the_previous_one_given() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
        let backend = Backend::connect(&url).await.expect("ledger");
        let (ann, bob, erased) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());

        let old = KeyStore::new(backend.clone(), master(1, None));
        let sealed_ann = old.seal(ann, "山田 花子").await.expect("seal");
        let sealed_bob = old.seal(bob, "佐藤 一郎").await.expect("seal");
        old.seal(erased, "消される人").await.expect("seal");
        assert!(old.destroy(erased).await.expect("destroy"));

        let rotating = KeyStore::new(backend.clone(), master(2, Some(1)));
        let prepared = rotating.prepare().await.expect("rotated");
        assert_eq!(
            prepared,
            Prepared {
                checked: 2,
                rewrapped: 2,
                wrapped: 0
            }
        );
        let again = KeyStore::new(backend.clone(), master(2, Some(1)));
        assert_eq!(again.prepare().await.expect("again").rewrapped, 0);

        let new = KeyStore::new(backend.clone(), master(2, None));
        assert_eq!(new.prepare().await.expect("new").checked, 2);
        let opened = new.open(ann, &sealed_ann).await.expect("open");
        assert_eq!(opened.as_deref(), Some("山田 花子"));
        let opened = new.open(bob, &sealed_bob).await.expect("open");
        assert_eq!(opened.as_deref(), Some("佐藤 一郎"));
        assert_eq!(new.key_for_reading(erased).await.expect("erased"), None);

        let stale = KeyStore::new(backend.clone(), master(1, None));
        assert!(matches!(
            stale.prepare().await,
            Err(StorageError::Crypto(_))
        ));
        // Keys under two master keys (a rotation left half done, or a server still running
        // with the old key): neither key alone opens the ledger; both given finish it.
        let carol = Uuid::new_v4();
        let old_server = KeyStore::new(backend.clone(), master(1, None));
        old_server.seal(carol, "鈴木 三郎").await.expect("seal");
        let half = KeyStore::new(backend.clone(), master(2, None));
        assert!(matches!(half.prepare().await, Err(StorageError::Crypto(_))));
        let finished = KeyStore::new(backend.clone(), master(2, Some(1)));
        assert_eq!(finished.prepare().await.expect("finished").rewrapped, 1);
        let whole = KeyStore::new(backend.clone(), master(2, None));
        assert_eq!(whole.prepare().await.expect("whole").checked, 3);

        let wrong = KeyStore::new(backend, master(3, Some(4)));
        assert!(matches!(
            wrong.prepare().await,
            Err(StorageError::Crypto(_))
        ));
    }
}
