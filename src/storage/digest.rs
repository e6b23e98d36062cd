//! Signed digests of the hash chain: what someone who does not trust the server keeps, to
//! prove later that the log still extends what they saw.
//!
//! A digest names the chain head (position, hash, and the time its event was recorded) and is
//! signed with an Ed25519 key kept in a file outside the database; its public half is in the
//! digest and printed, so the holder can compare it with the one they trust. `kiroku verify
//! --digest FILE` checks the signature, checks the whole chain from genesis, and checks that
//! the chain still holds the signed hash at the signed position: a rewritten past (even one
//! re-chained from the point of the change), a truncated tail or an emptied table all fail.

use super::chain::{chain_head, hash_at, verify, Verdict};
use super::log::read_positions;
use super::{Backend, StorageError};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const FORMAT: &str = "kiroku-chain-digest";
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub format: String,
    pub version: u32,
    /// The last sealed position.
    pub position: i64,
    /// Its chain hash.
    pub hash: String,
    /// When that event was recorded (RFC 3339, UTC, ms).
    pub recorded_at: String,
    /// Ed25519 public key, hex.
    pub public_key: String,
    /// Signature over [`Digest::message`], hex.
    pub signature: String,
}

impl Digest {
    /// The bytes that are signed.
    fn message(position: i64, hash: &str, recorded_at: &str) -> Vec<u8> {
        format!("{FORMAT}/{VERSION}\n{position}\n{hash}\n{recorded_at}\n").into_bytes()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("鍵ファイル {0} を読めません（32 バイトの秘密鍵が必要です）: {1}")]
    Key(String, String),
    #[error("台帳のハッシュチェーンが壊れています（位置 {position}: {problem}）。ダイジェストは作りません")]
    Broken { position: i64, problem: String },
    #[error("台帳にまだ封印された記録がありません")]
    Empty,
    #[error("ダイジェストを読めません: {0}")]
    Unreadable(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The signing key in `path`, created (with permissions 0600) when the file does not exist.
/// Returns the key and whether it was created.
pub fn load_or_create_key(path: &Path) -> Result<(SigningKey, bool), DigestError> {
    let (secret, created) = super::secret::load_or_create(path).map_err(|e| match e {
        super::secret::SecretError::Io(shown, error) => DigestError::Key(shown, error.to_string()),
        super::secret::SecretError::WrongLength(shown, n) => {
            DigestError::Key(shown, format!("{n} バイトでした"))
        }
    })?;
    Ok((SigningKey::from_bytes(&secret), created))
}

/// A signed digest of the chain head, after checking the whole chain.
pub async fn make(backend: &Backend, key: &SigningKey) -> Result<Digest, DigestError> {
    if let Verdict::Broken { position, problem } = verify(backend).await? {
        return Err(DigestError::Broken { position, problem });
    }
    let (position, hash) = chain_head(backend).await?;
    if position == 0 {
        return Err(DigestError::Empty);
    }
    let event = read_positions(backend, &[position])
        .await?
        .into_iter()
        .next()
        .ok_or(DigestError::Empty)?;
    let recorded_at = kiroku_projections::rfc3339_ms(event.recorded_at);
    let signature = key.sign(&Digest::message(position, &hash, &recorded_at));
    Ok(Digest {
        format: FORMAT.to_string(),
        version: VERSION,
        position,
        hash,
        recorded_at,
        public_key: hex::encode(key.verifying_key().to_bytes()),
        signature: hex::encode(signature.to_bytes()),
    })
}

/// What a digest says about the ledger now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// The log still extends the digest's head.
    Extends { head: i64 },
    /// It does not: why.
    Fails(String),
}

/// Checks the digest's signature, the whole chain, and that the chain still holds the signed
/// hash at the signed position. Reads only.
pub async fn prove(backend: &Backend, digest: &Digest) -> Result<Proof, DigestError> {
    if digest.format != FORMAT || digest.version != VERSION {
        return Err(DigestError::Unreadable(format!(
            "形式 {} 版 {} には対応していません",
            digest.format, digest.version
        )));
    }
    let key_bytes: [u8; 32] = hex::decode(&digest.public_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| DigestError::Unreadable("公開鍵が正しくありません".into()))?;
    let signature_bytes: [u8; 64] = hex::decode(&digest.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| DigestError::Unreadable("署名が正しくありません".into()))?;
    let key = VerifyingKey::from_bytes(&key_bytes)
        .map_err(|_| DigestError::Unreadable("公開鍵が正しくありません".into()))?;
    let message = Digest::message(digest.position, &digest.hash, &digest.recorded_at);
    if key
        .verify(&message, &Signature::from_bytes(&signature_bytes))
        .is_err()
    {
        return Ok(Proof::Fails(
            "ダイジェストの署名が合いません（ダイジェストが書き換えられています）".into(),
        ));
    }
    extends(backend, digest.position, &digest.hash).await
}

/// Checks the whole chain and that it still holds `hash` at `position`: what a signed digest
/// or a published sheet's 公表時の台帳ダイジェスト (no signature: its holder vouches for it)
/// proves. Reads only.
pub async fn extends(backend: &Backend, position: i64, hash: &str) -> Result<Proof, DigestError> {
    match verify(backend).await? {
        Verdict::Broken { position, problem } => {
            return Ok(Proof::Fails(format!(
                "ハッシュチェーンが位置 {position} で壊れています: {problem}"
            )))
        }
        Verdict::Intact { .. } => {}
    }
    let stored = hash_at(backend, position).await?;
    let (head, _) = chain_head(backend).await?;
    Ok(match stored {
        None => Proof::Fails(format!(
            "ダイジェストの位置 {position} が台帳にありません（末尾が削除されたか、台帳が空にされています。現在の先頭は {head}）"
        )),
        Some(stored) if stored != hash => Proof::Fails(format!(
            "位置 {position} のハッシュがダイジェストと異なります（それ以前の記録が書き換えられています）"
        )),
        Some(_) => Proof::Extends { head },
    })
}
