//! Where checkpoints are kept: the pieces of the read models in `projection_segments`, each
//! row written once under the position of the checkpoint that wrote it (its version), and one
//! manifest in `projection_checkpoints` naming, for every piece of the read models at the
//! manifest's position, the version that holds it and the SHA-256 of its bytes.
//!
//! A checkpoint writes the pieces that changed since the last one, in short transactions,
//! then moves the manifest from the one it was built on to the new one in one statement
//! (compare and swap on the position): the read models at one position are therefore always
//! whole, whatever crashes in between. Another process may have moved the manifest meanwhile;
//! then the checkpoint is written again whole. Rows no manifest names are deleted afterwards,
//! but only those older than the standing manifest, never the rows a checkpoint in flight has
//! just written.

use crate::storage::{Backend, StorageError};
use crate::with_pool;
use futures::TryStreamExt;
use kiroku_projections::pieces::Piece;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::collections::BTreeMap;

/// A transaction writes pieces up to about this many bytes (SQLite's one write lock is held
/// for a short while only).
pub(super) const BATCH_BYTES: usize = 4 << 20;

/// The pause between two of a checkpoint's transactions while serving. SQLite's lock is not
/// fair: a writer waiting in its busy handler sleeps up to 100 ms between tries and can miss
/// every short gap between back-to-back transactions, so the appender's commits gave up after
/// 3 s behind a checkpoint of a few hundred MB (two 503s in the tenth run, at 5M events).
pub(super) const YIELD: std::time::Duration = std::time::Duration::from_millis(30);

/// The read models of one position: every piece by key, with its version and SHA-256.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Manifest {
    pub position: i64,
    pub pieces: BTreeMap<String, (i64, String)>,
    /// The fingerprint it is stored under (set when written or read back): what the next
    /// checkpoint's compare-and-swap expects to find.
    #[serde(skip)]
    pub sealed: String,
}

pub(super) fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Manifest {
    /// The same pieces, for the checkpoint at `position`.
    pub fn at(self, position: i64) -> Manifest {
        Manifest { position, ..self }
    }

    /// Names `pieces`, written as version `position`.
    pub fn record(&mut self, position: i64, pieces: &[Piece]) {
        for (key, bytes) in pieces {
            self.pieces.insert(key.clone(), (position, digest(bytes)));
        }
    }
}

/// The stored manifest: format, position, fingerprint and its bytes.
pub(super) type Row0 = (i32, i64, String, Vec<u8>);

pub(super) async fn read_manifest(
    backend: &Backend,
    name: &str,
) -> Result<Option<Row0>, StorageError> {
    Ok(with_pool!(backend, pool => {
        sqlx::query_as::<_, Row0>(
            "SELECT format, position, fingerprint, state FROM projection_checkpoints WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(pool)
        .await?
    }))
}

/// Writes `pieces` as version `position`, in transactions of about [`BATCH_BYTES`]. A row
/// already there is replaced: written by another process of the same version at the same
/// position it holds the same bytes, but one left by an older read-model format (a server
/// stopped at the very position the new version rebuilds to) does not, and kept it made the
/// new manifest name bytes whose digest it did not record.
pub(super) async fn write_pieces(
    backend: &Backend,
    position: i64,
    pieces: &[Piece],
    pause: std::time::Duration,
) -> Result<(), StorageError> {
    let mut start = 0;
    while start < pieces.len() {
        if start > 0 && !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        let mut end = start;
        let mut bytes = 0;
        while end < pieces.len() && (end == start || bytes + pieces[end].1.len() <= BATCH_BYTES) {
            bytes += pieces[end].1.len();
            end += 1;
        }
        let batch = &pieces[start..end];
        match backend {
            Backend::Postgres(pool) => {
                // One statement, no transaction block: a checkpoint's future is dropped at
                // shutdown, and one dropped during `BEGIN` left its pooled connection inside
                // the block (sqlx 0.8.6, transact-rs/sqlx issue 4393; see clippy.toml), where
                // the next borrowers' writes never committed.
                let keys: Vec<&str> = batch.iter().map(|(key, _)| key.as_str()).collect();
                let bytes: Vec<&[u8]> = batch.iter().map(|(_, b)| b.as_slice()).collect();
                sqlx::query(
                    "INSERT INTO projection_segments (key, version, bytes) \
                     SELECT p.key, $3, p.bytes \
                     FROM unnest($1::text[], $2::bytea[]) AS p (key, bytes) \
                     ON CONFLICT (key, version) DO UPDATE SET bytes = excluded.bytes",
                )
                .bind(&keys)
                .bind(&bytes)
                .bind(position)
                .execute(pool)
                .await?;
            }
            Backend::Sqlite(pool) => {
                // sqlx rolls back a SQLite transaction dropped during BEGIN (its issue 2054).
                #[allow(clippy::disallowed_methods)]
                let mut tx = pool.begin().await?;
                for (key, bytes) in batch {
                    sqlx::query(
                        "INSERT INTO projection_segments (key, version, bytes) VALUES ($1, $2, $3) \
                         ON CONFLICT (key, version) DO UPDATE SET bytes = excluded.bytes",
                    )
                    .bind(key)
                    .bind(position)
                    .bind(bytes)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            }
        }
        start = end;
    }
    Ok(())
}

/// Moves the manifest named `name` to `manifest` if the one stored is still the one sealed as
/// `expected` (or, with `None`, if there is none or an older one or one of another format).
/// Whether it moved. The fingerprint, not the position, is compared: a manifest written again
/// at the same position by another process (`kiroku rebuild`) names other rows.
pub(super) async fn swap_manifest(
    backend: &Backend,
    name: &str,
    format: i32,
    expected: Option<&str>,
    manifest: &mut Manifest,
) -> Result<bool, StorageError> {
    let bytes = serde_json::to_vec(&*manifest)
        .map_err(|e| StorageError::Corrupt(format!("encoding the manifest: {e}")))?;
    let fingerprint = super::seal(backend, manifest.position, &bytes).await?;
    let saved_at = crate::storage::now_ms();
    let moved = match expected {
        Some(expected) => with_pool!(backend, pool => {
            sqlx::query(
                "UPDATE projection_checkpoints SET position = $1, fingerprint = $2, state = $3, \
                 parts = NULL, saved_at = $4 \
                 WHERE name = $5 AND format = $6 AND fingerprint = $7 AND $1 > position",
            )
            .bind(manifest.position)
            .bind(&fingerprint)
            .bind(&bytes)
            .bind(saved_at)
            .bind(name)
            .bind(format)
            .bind(expected)
            .execute(pool)
            .await?
            .rows_affected()
        }),
        None => with_pool!(backend, pool => {
            sqlx::query(
                "INSERT INTO projection_checkpoints (name, format, position, fingerprint, state, parts, saved_at) \
                 VALUES ($1, $2, $3, $4, $5, NULL, $6) \
                 ON CONFLICT (name) DO UPDATE SET format = excluded.format, position = excluded.position, \
                 fingerprint = excluded.fingerprint, state = excluded.state, parts = NULL, \
                 saved_at = excluded.saved_at \
                 WHERE excluded.position > projection_checkpoints.position \
                    OR excluded.format <> projection_checkpoints.format",
            )
            .bind(name)
            .bind(format)
            .bind(manifest.position)
            .bind(&fingerprint)
            .bind(&bytes)
            .bind(saved_at)
            .execute(pool)
            .await?
            .rows_affected()
        }),
    };
    manifest.sealed = fingerprint;
    Ok(moved == 1)
}

/// Deletes the rows of pieces that the standing manifest does not name and that are older
/// than it, one per transaction (a row of a history shard holds megabytes), with `pause`
/// between them.
pub(super) async fn collect_garbage(
    backend: &Backend,
    name: &str,
    format: i32,
    pause: std::time::Duration,
) -> Result<usize, StorageError> {
    let Some((stored_format, position, _, bytes)) = read_manifest(backend, name).await? else {
        return Ok(0);
    };
    if stored_format != format {
        return Ok(0);
    }
    let Ok(manifest) = serde_json::from_slice::<Manifest>(&bytes) else {
        return Ok(0);
    };
    let rows: Vec<(String, i64)> = with_pool!(backend, pool => {
        sqlx::query_as("SELECT key, version FROM projection_segments WHERE version < $1")
            .bind(position)
            .fetch_all(pool)
            .await?
    });
    let stale: Vec<(String, i64)> = rows
        .into_iter()
        .filter(|(key, version)| manifest.pieces.get(key).map(|p| p.0) != Some(*version))
        .collect();
    for (n, (key, version)) in stale.iter().enumerate() {
        if n > 0 && !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        with_pool!(backend, pool => {
            sqlx::query("DELETE FROM projection_segments WHERE key = $1 AND version = $2")
                .bind(key)
                .bind(version)
                .execute(pool)
                .await?;
        });
    }
    Ok(stale.len())
}

/// Reads back the pieces `manifest` names, checks each against its SHA-256 and hands it to
/// `keep` as it arrives (so that a start need not hold every piece's bytes at once). Whether
/// every piece was found unaltered; `keep`'s error ends the reading.
pub(super) async fn read_pieces(
    backend: &Backend,
    manifest: &Manifest,
    mut keep: impl FnMut(String, Vec<u8>) -> Result<(), StorageError>,
) -> Result<bool, StorageError> {
    let mut kept = 0;
    let mut altered = false;
    with_pool!(backend, pool => {
        let mut rows = sqlx::query(
            "SELECT key, version, bytes FROM projection_segments WHERE version <= $1",
        )
        .bind(manifest.position)
        .fetch(pool);
        while let Some(row) = rows.try_next().await? {
            let key: String = row.try_get(0)?;
            let version: i64 = row.try_get(1)?;
            let Some((wanted, sha)) = manifest.pieces.get(&key) else {
                continue;
            };
            if *wanted != version {
                continue;
            }
            let bytes: Vec<u8> = row.try_get(2)?;
            if digest(&bytes) != *sha {
                // The checkpoint will be ignored: nothing more is read of it.
                altered = true;
                break;
            }
            kept += 1;
            keep(key, bytes)?;
        }
    });
    Ok(!altered && kept == manifest.pieces.len())
}

/// Deletes every checkpoint and piece.
pub(super) async fn drop_all(backend: &Backend) -> Result<(), StorageError> {
    with_pool!(backend, pool => {
        sqlx::query("DELETE FROM projection_segments").execute(pool).await?;
        sqlx::query("DELETE FROM projection_checkpoints").execute(pool).await?;
    });
    Ok(())
}
