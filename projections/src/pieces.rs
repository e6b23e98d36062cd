//! The read models kept in pieces, so that a checkpoint writes only what changed.
//!
//! A read model that grows with the log is held in containers that remember which of their
//! pieces an event touched since the last checkpoint:
//! - [`Segmented`]: a vector cut into segments of [`SEGMENT`] items (facts, the timeline);
//!   appending marks the last segment, changing an item (closing a fact) marks its segment;
//! - [`Sharded`]: a map by UUID cut into 256 shards by the UUID's first byte (staff and
//!   session histories); changing or inserting a record marks its shard.
//!
//! [`Pieces::keys`] names every piece or only the marked ones and clears the marks;
//! [`Pieces::encode`] encodes one piece by its key, so that a checkpoint can encode a large
//! state a few pieces at a time; [`Pieces::take`] reads them back, freeing each piece's bytes
//! once decoded. Marking costs nothing while folding (the marks are reached through `&mut`);
//! taking them needs only a shared borrow, so a checkpoint works under the read lock. What is
//! stored where (the projector's manifest, the database, the files of cold shards) is not
//! this module's business: no IO lives here.
//!
//! The pieces that grow with the log are MessagePack ([`pack`]): structs as arrays, UUIDs as
//! 16 bytes. JSON spelt every field name and every UUID in hex again in every item, which made
//! a checkpoint of a 1M-event ledger 250 MB and a start spend most of its time parsing them.
//! The few pieces that grow with the plans (the plan book, the indicators' plan facts) stay
//! JSON ([`read_whole`]): their types skip absent fields, which an array cannot.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use uuid::Uuid;

/// Items in one segment of a [`Segmented`] vector.
pub const SEGMENT: usize = 4096;

/// A piece of the read models: its key and its bytes.
pub type Piece = (String, Vec<u8>);

/// Stored pieces by key, as a checkpoint is read back.
pub type Stored = BTreeMap<String, Vec<u8>>;

/// Reads back the bytes of a cold shard that the projector put away (a file of its own). The
/// IO is the projector's; this module only asks for the bytes when a record is wanted.
pub trait Fetch: Send + Sync {
    fn fetch(&self) -> Result<Vec<u8>, Unreadable>;
}

/// Where the bytes of a cold shard are.
#[derive(Clone)]
pub enum ColdBytes {
    /// In memory.
    Held(Arc<[u8]>),
    /// Put away by the projector, read back when asked for.
    Away(Arc<dyn Fetch>),
}

impl ColdBytes {
    /// The bytes, read back if they were put away.
    fn read(&self) -> Result<Cow<'_, [u8]>, Unreadable> {
        match self {
            ColdBytes::Held(bytes) => Ok(Cow::Borrowed(bytes)),
            ColdBytes::Away(away) => away.fetch().map(Cow::Owned),
        }
    }
}

impl From<Vec<u8>> for ColdBytes {
    fn from(bytes: Vec<u8>) -> Self {
        ColdBytes::Held(bytes.into())
    }
}

/// A stored history shard as a start keeps it: where its bytes are and how many records they
/// hold (see [`records_in`]).
pub struct ColdPiece {
    pub bytes: ColdBytes,
    pub len: usize,
}

/// Stored history shards by key, kept encoded.
pub type ColdStored = BTreeMap<String, ColdPiece>;

/// How many records the piece `key` of a [`Sharded`] map holds: its array's header alone.
pub fn records_in(key: &str, bytes: &[u8]) -> Result<usize, Unreadable> {
    let len = rmp::decode::read_array_len(&mut &bytes[..])
        .map_err(|e| Unreadable(format!("shard {key}: {e}")))?;
    Ok(len as usize)
}

/// Why stored pieces could not be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable(pub String);

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreadable {}

impl From<serde_json::Error> for Unreadable {
    fn from(e: serde_json::Error) -> Self {
        Unreadable(e.to_string())
    }
}

impl From<rmp_serde::decode::Error> for Unreadable {
    fn from(e: rmp_serde::decode::Error) -> Self {
        Unreadable(e.to_string())
    }
}

/// Why a piece could not be encoded (a bug: every read model can be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unencodable(pub String);

impl std::fmt::Display for Unencodable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unencodable {}

impl From<serde_json::Error> for Unencodable {
    fn from(e: serde_json::Error) -> Self {
        Unencodable(e.to_string())
    }
}

impl From<rmp_serde::encode::Error> for Unencodable {
    fn from(e: rmp_serde::encode::Error) -> Self {
        Unencodable(e.to_string())
    }
}

/// What [`Pieces::encode`] gives: the bytes of a piece, `None` for a key it does not have.
pub type Encoded = Result<Option<Vec<u8>>, Unencodable>;

/// The bytes of a piece that grows with the log: MessagePack, structs as arrays.
pub fn pack<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Unencodable> {
    Ok(rmp_serde::to_vec(value)?)
}

/// Reads back a piece written by [`pack`].
pub fn unpack<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Unreadable> {
    Ok(rmp_serde::from_slice(bytes)?)
}

/// A read model kept in pieces.
pub trait Pieces: Sized {
    /// Appends the keys of its pieces under `prefix` to `out`: every piece when `all`,
    /// otherwise those changed since the last call. Clears the marks either way.
    fn keys(&self, prefix: &str, all: bool, out: &mut Vec<String>);

    /// The bytes of the piece named `key` (a key under `prefix`); `None` for a key it does not
    /// have.
    fn encode(&self, prefix: &str, key: &str) -> Encoded;

    /// Reads it back from the pieces stored under `prefix`, taking each out of `stored` as it
    /// is decoded (so a start holds the bytes of what is left to decode, not of everything).
    fn take(prefix: &str, stored: &mut Stored) -> Result<Self, Unreadable>;

    /// As [`take`](Self::take), from a copy of `stored`.
    fn restore(prefix: &str, stored: &Stored) -> Result<Self, Unreadable> {
        Self::take(prefix, &mut stored.clone())
    }

    /// Its pieces, named and encoded: every one when `all`, otherwise those changed since the
    /// last call.
    fn pieces(&self, prefix: &str, all: bool) -> Result<Vec<Piece>, Unencodable> {
        let mut keys = Vec::new();
        self.keys(prefix, all, &mut keys);
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(bytes) = self.encode(prefix, &key)? {
                out.push((key, bytes));
            }
        }
        Ok(out)
    }
}

/// [`Pieces`] without `take` and `restore`, so that the parts of a composite read model can be listed
/// together as `&dyn PiecesOf`.
pub trait PiecesOf {
    fn keys_of(&self, prefix: &str, all: bool, out: &mut Vec<String>);
    fn encode_of(&self, prefix: &str, key: &str) -> Encoded;
}

impl<P: Pieces> PiecesOf for P {
    fn keys_of(&self, prefix: &str, all: bool, out: &mut Vec<String>) {
        self.keys(prefix, all, out)
    }

    fn encode_of(&self, prefix: &str, key: &str) -> Encoded {
        self.encode(prefix, key)
    }
}

/// The rest of `key` after `prefix` and a `/`.
pub fn below<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    key.strip_prefix(prefix)?.strip_prefix('/')
}

/// The name of the part of a composite read model that `key` (under `prefix`) belongs to:
/// `prefix.name` or `prefix.name/…` gives `name`.
pub fn part<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    let rest = key.strip_prefix(prefix)?.strip_prefix('.')?;
    Some(rest.split('/').next().unwrap_or(rest))
}

/// The keys of the stored pieces under `prefix` (`prefix/…`), in key order.
fn keys_under(prefix: &str, stored: &Stored) -> Vec<String> {
    let start = format!("{prefix}/");
    let end = format!("{prefix}0"); // '0' follows '/'
    stored.range(start..end).map(|(k, _)| k.clone()).collect()
}

/// Reads back a piece kept whole as JSON (one that grows with the plans, not with the log).
pub fn read_whole<T: DeserializeOwned>(key: &str, stored: &Stored) -> Result<T, Unreadable> {
    let bytes = stored
        .get(key)
        .ok_or_else(|| Unreadable(format!("piece {key} is missing")))?;
    Ok(serde_json::from_slice(bytes)?)
}

/// Marks taken under a shared borrow. Marking goes through `&mut` (no locking while folding).
#[derive(Debug, Default)]
struct Marks<K: Ord>(Mutex<BTreeSet<K>>);

impl<K: Ord + Copy> Marks<K> {
    fn mark(&mut self, key: K) {
        if let Ok(set) = self.0.get_mut() {
            set.insert(key);
        }
    }

    fn take(&self) -> BTreeSet<K> {
        match self.0.lock() {
            Ok(mut set) => std::mem::take(&mut *set),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

impl<K: Ord> Clone for Marks<K> {
    /// A copy starts clean: its marks belong to the original's next checkpoint.
    fn clone(&self) -> Self {
        Marks(Mutex::new(BTreeSet::new()))
    }
}

/// A vector kept in segments of [`SEGMENT`] items. Reads see a slice.
#[derive(Debug, Clone)]
pub struct Segmented<T> {
    items: Vec<T>,
    marks: Marks<usize>,
}

impl<T> Default for Segmented<T> {
    fn default() -> Self {
        Segmented {
            items: Vec::new(),
            marks: Marks::default(),
        }
    }
}

impl<T: PartialEq> PartialEq for Segmented<T> {
    fn eq(&self, other: &Self) -> bool {
        self.items == other.items
    }
}

impl<T> Deref for Segmented<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.items
    }
}

impl<T> Segmented<T> {
    pub fn push(&mut self, item: T) {
        self.marks.mark(self.items.len() / SEGMENT);
        self.items.push(item);
    }

    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        if index < self.items.len() {
            self.marks.mark(index / SEGMENT);
        }
        self.items.get_mut(index)
    }

    pub fn last_mut(&mut self) -> Option<&mut T> {
        let last = self.items.len().checked_sub(1)?;
        self.get_mut(last)
    }

    pub fn as_slice(&self) -> &[T] {
        &self.items
    }
}

impl<T: Serialize> Serialize for Segmented<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.items.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Segmented<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Segmented {
            items: Vec::deserialize(deserializer)?,
            marks: Marks::default(),
        })
    }
}

impl<T: Serialize + DeserializeOwned> Pieces for Segmented<T> {
    fn keys(&self, prefix: &str, all: bool, out: &mut Vec<String>) {
        let marked = self.marks.take();
        let segments = self.items.len().div_ceil(SEGMENT);
        let key = |segment: usize| format!("{prefix}/{segment:06}");
        if all {
            out.extend((0..segments).map(key));
        } else {
            out.extend(marked.into_iter().filter(|s| *s < segments).map(key));
        }
    }

    fn encode(&self, prefix: &str, key: &str) -> Encoded {
        let Some(segment) = below(prefix, key).and_then(|s| s.parse::<usize>().ok()) else {
            return Ok(None);
        };
        let start = segment.saturating_mul(SEGMENT);
        let end = start.saturating_add(SEGMENT).min(self.items.len());
        if start >= end {
            return Ok(None);
        }
        pack(&self.items[start..end]).map(Some)
    }

    fn take(prefix: &str, stored: &mut Stored) -> Result<Self, Unreadable> {
        let mut items = Vec::new();
        for (n, key) in keys_under(prefix, stored).into_iter().enumerate() {
            let name = &key[prefix.len() + 1..];
            if name != format!("{n:06}") || items.len() != n * SEGMENT {
                return Err(Unreadable(format!(
                    "segment {key} out of place: found as segment {n}, after {} items \
                     (expected {})",
                    items.len(),
                    n * SEGMENT
                )));
            }
            if let Some(bytes) = stored.remove(&key) {
                items.extend(unpack::<Vec<T>>(&bytes)?);
            }
        }
        Ok(Segmented {
            items,
            marks: Marks::default(),
        })
    }
}

/// Vectors by fiscal year (or any small ordered key written as a number), each segmented.
impl<K, T> Pieces for BTreeMap<K, Segmented<T>>
where
    K: Ord + Copy + Into<i32> + TryFrom<i32>,
    T: Serialize + DeserializeOwned,
{
    fn keys(&self, prefix: &str, all: bool, out: &mut Vec<String>) {
        for (key, items) in self {
            let year: i32 = (*key).into();
            items.keys(&format!("{prefix}/{year}"), all, out);
        }
    }

    fn encode(&self, prefix: &str, key: &str) -> Encoded {
        let Some((year, _)) = below(prefix, key).and_then(|rest| rest.split_once('/')) else {
            return Ok(None);
        };
        let Some(k) = year.parse::<i32>().ok().and_then(|y| K::try_from(y).ok()) else {
            return Ok(None);
        };
        match self.get(&k) {
            Some(items) => items.encode(&format!("{prefix}/{year}"), key),
            None => Ok(None),
        }
    }

    fn take(prefix: &str, stored: &mut Stored) -> Result<Self, Unreadable> {
        let keys: BTreeSet<String> = keys_under(prefix, stored)
            .iter()
            .filter_map(|key| {
                key[prefix.len() + 1..]
                    .split('/')
                    .next()
                    .map(str::to_string)
            })
            .collect();
        let mut map = BTreeMap::new();
        for key in keys {
            let year: i32 = key
                .parse()
                .map_err(|_| Unreadable(format!("piece {prefix}/{key}: not a year")))?;
            let k = K::try_from(year)
                .map_err(|_| Unreadable(format!("piece {prefix}/{key}: not a year")))?;
            map.insert(k, Segmented::take(&format!("{prefix}/{key}"), stored)?);
        }
        Ok(map)
    }
}

/// Shards in a [`Sharded`] map (by the UUID's first byte).
const SHARDS: usize = 256;

/// A map by UUID kept in 256 shards (by the UUID's first byte).
///
/// A shard is either *warm* (its records decoded, as folding needs them) or *cold*: kept as
/// its encoded bytes (MessagePack, as a checkpoint writes it), and decoded only when someone
/// asks for one of its records. A start keeps every shard cold (it reads the bytes and decodes
/// nothing); folding into a cold shard warms it; a shard nobody changed or read for a while
/// goes cold again ([`Sharded::idle`], [`Sharded::freeze`]). A cold shard's bytes are held
/// in memory or put away by the projector ([`ColdBytes`]: a file of its own), so the memory
/// the histories take while serving follows what was changed or asked lately
/// (docs/decisions.md → Projections).
pub struct Sharded<V> {
    shards: Vec<Shard<V>>,
    marks: Marks<u8>,
    /// Per shard: read or changed since the last [`Sharded::idle`].
    touched: Vec<AtomicBool>,
    /// Per shard: how many [`Sharded::idle`] calls in a row found it untouched.
    idle: Vec<AtomicU8>,
    /// What a cold shard's bytes could not be decoded into (a bug or a damaged checkpoint
    /// that still matched its SHA-256): the shard reads as empty and this says why.
    damage: OnceLock<String>,
    /// What could not be read back of a cold shard's bytes put away (the projector's file):
    /// the shard reads as empty and this says why. The checkpoint it came from is sound.
    lost: OnceLock<String>,
}

enum Shard<V> {
    /// Shared with a checkpoint encoding it after the lock (see [`Sharded::defer`]); folding
    /// copies it first if so.
    Warm(Arc<BTreeMap<Uuid, V>>),
    Cold(Cold<V>),
}

/// A shard kept encoded: its bytes (in memory or put away), how many records they hold, and
/// the records once asked for (until [`Sharded::forget`] forgets them).
struct Cold<V> {
    bytes: ColdBytes,
    len: usize,
    decoded: OnceLock<BTreeMap<Uuid, V>>,
}

impl<V> Default for Sharded<V> {
    fn default() -> Self {
        Sharded {
            shards: (0..SHARDS)
                .map(|_| Shard::Warm(Arc::new(BTreeMap::new())))
                .collect(),
            marks: Marks::default(),
            touched: (0..SHARDS).map(|_| AtomicBool::new(false)).collect(),
            idle: (0..SHARDS).map(|_| AtomicU8::new(0)).collect(),
            damage: OnceLock::new(),
            lost: OnceLock::new(),
        }
    }
}

impl<V: Clone> Clone for Sharded<V> {
    fn clone(&self) -> Self {
        Sharded {
            shards: self
                .shards
                .iter()
                .map(|shard| match shard {
                    Shard::Warm(records) => Shard::Warm(Arc::new(records.as_ref().clone())),
                    Shard::Cold(cold) => Shard::Cold(Cold {
                        bytes: cold.bytes.clone(),
                        len: cold.len,
                        decoded: OnceLock::new(),
                    }),
                })
                .collect(),
            ..Sharded::default()
        }
    }
}

impl<V: std::fmt::Debug + DeserializeOwned> std::fmt::Debug for Sharded<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V: PartialEq + DeserializeOwned> PartialEq for Sharded<V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

fn shard_of(id: &Uuid) -> u8 {
    id.as_bytes()[0]
}

/// The records of a shard's bytes, each in its place.
fn decode_shard<V: DeserializeOwned>(
    shard: u8,
    bytes: &[u8],
) -> Result<BTreeMap<Uuid, V>, Unreadable> {
    let records: Vec<(Uuid, V)> = unpack(bytes)?;
    if records.iter().any(|(id, _)| shard_of(id) != shard) {
        return Err(Unreadable(format!(
            "shard {shard:03} holds a record of another shard"
        )));
    }
    Ok(records.into_iter().collect())
}

/// Where a cold shard's problems are told: bytes that cannot be decoded (`damage`), bytes
/// that cannot be read back (`lost`).
struct Problems<'a> {
    damage: &'a OnceLock<String>,
    lost: &'a OnceLock<String>,
}

/// The records of a cold shard's bytes; a shard that cannot be read back or decoded reads as
/// empty and names the problem in `problems`.
fn decode_or_damage<V: DeserializeOwned>(
    shard: u8,
    bytes: &ColdBytes,
    problems: Problems<'_>,
) -> BTreeMap<Uuid, V> {
    let read = match bytes.read() {
        Ok(read) => read,
        Err(e) => {
            let _ = problems.lost.set(format!("history shard {shard:03}: {e}"));
            return BTreeMap::new();
        }
    };
    decode_shard(shard, &read).unwrap_or_else(|e| {
        let _ = problems
            .damage
            .set(format!("history shard {shard:03}: {e}"));
        BTreeMap::new()
    })
}

impl<V: DeserializeOwned> Cold<V> {
    /// Its records, decoded on first ask (see [`decode_or_damage`]).
    fn records(&self, shard: u8, problems: Problems<'_>) -> &BTreeMap<Uuid, V> {
        self.decoded
            .get_or_init(|| decode_or_damage(shard, &self.bytes, problems))
    }
}

impl<V: DeserializeOwned> Sharded<V> {
    /// The records of one shard, decoding a cold one.
    fn records(&self, shard: u8) -> &BTreeMap<Uuid, V> {
        self.touched[usize::from(shard)].store(true, Ordering::Relaxed);
        match &self.shards[usize::from(shard)] {
            Shard::Warm(records) => records,
            Shard::Cold(cold) => cold.records(shard, self.problems()),
        }
    }
}

impl<V: DeserializeOwned + Clone> Sharded<V> {
    /// The shard of `id`, warmed for a change, and marked.
    fn warm(&mut self, shard: u8) -> &mut BTreeMap<Uuid, V> {
        self.marks.mark(shard);
        *self.touched[usize::from(shard)].get_mut() = true;
        let slot = &mut self.shards[usize::from(shard)];
        if let Shard::Cold(cold) = slot {
            let records = match cold.decoded.take() {
                Some(records) => records,
                None => decode_or_damage(
                    shard,
                    &cold.bytes,
                    Problems {
                        damage: &self.damage,
                        lost: &self.lost,
                    },
                ),
            };
            *slot = Shard::Warm(Arc::new(records));
        }
        match slot {
            Shard::Warm(records) => Arc::make_mut(records),
            // Made warm just above.
            Shard::Cold(_) => unreachable!("a shard warmed above"),
        }
    }

    pub fn insert(&mut self, id: Uuid, value: V) -> Option<V> {
        self.warm(shard_of(&id)).insert(id, value)
    }

    pub fn get_mut(&mut self, id: &Uuid) -> Option<&mut V> {
        let shard = shard_of(id);
        // A lookup of a record that is not there changes nothing: no mark, no warming.
        if !self.contains_key(id) {
            return None;
        }
        self.warm(shard).get_mut(id)
    }
}

impl<V: DeserializeOwned> Sharded<V> {
    pub fn get(&self, id: &Uuid) -> Option<&V> {
        self.records(shard_of(id)).get(id)
    }

    pub fn contains_key(&self, id: &Uuid) -> bool {
        self.get(id).is_some()
    }

    /// Every record in UUID order (cold shards are decoded, and stay so until the next
    /// [`freeze`](Self::freeze)).
    pub fn iter(&self) -> impl Iterator<Item = (&Uuid, &V)> {
        (0..=u8::MAX).flat_map(move |shard| self.records(shard).iter())
    }

    pub fn keys(&self) -> impl Iterator<Item = &Uuid> {
        self.iter().map(|(id, _)| id)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| match shard {
                Shard::Warm(records) => records.len(),
                Shard::Cold(cold) => cold.len,
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Why a cold shard could not be read, if one could not.
    pub fn damage(&self) -> Option<&str> {
        self.damage.get().or(self.lost.get()).map(String::as_str)
    }

    /// Whether that problem is in the checkpoint's bytes themselves (they cannot be decoded),
    /// not in reading back a copy put away.
    pub fn checkpoint_damaged(&self) -> bool {
        self.damage.get().is_some()
    }

    fn problems(&self) -> Problems<'_> {
        Problems {
            damage: &self.damage,
            lost: &self.lost,
        }
    }

    /// Counts the shards read or changed since the last call, and names those untouched for
    /// `after` calls in a row: the warm ones, to encode and [`freeze`](Self::freeze), and the
    /// cold ones that readers had decoded, to [`forget`](Self::forget).
    ///
    /// It clears the marks of touch that `freeze` and `forget` rely on to refuse stale bytes:
    /// one caller at a time, and `freeze` only with bytes encoded after the call
    /// (`Projector::cool` holds a lock of its own for the three steps).
    pub fn idle(&self, after: u8) -> (Vec<u8>, Vec<u8>) {
        let (mut warm, mut decoded) = (Vec::new(), Vec::new());
        for shard in 0..=u8::MAX {
            let n = usize::from(shard);
            let idle = if self.touched[n].swap(false, Ordering::Relaxed) {
                0
            } else {
                self.idle[n].load(Ordering::Relaxed).saturating_add(1)
            };
            self.idle[n].store(idle, Ordering::Relaxed);
            if idle < after {
                continue;
            }
            match &self.shards[n] {
                Shard::Warm(records) if !records.is_empty() => warm.push(shard),
                Shard::Cold(cold) if cold.decoded.get().is_some() => decoded.push(shard),
                _ => {}
            }
        }
        (warm, decoded)
    }

    /// Lets a warm shard go cold, kept as `bytes` (encoded by
    /// [`encode_shard`](Self::encode_shard) since the last [`idle`](Self::idle), and held or
    /// put away). Nothing happens when it was read or changed since then: `bytes` may be stale
    /// and it is not idle. Returns whether it went cold.
    pub fn freeze(&mut self, shard: u8, bytes: ColdBytes) -> bool {
        let n = usize::from(shard);
        if *self.touched[n].get_mut() {
            return false;
        }
        let slot = &mut self.shards[n];
        match slot {
            Shard::Warm(records) if !records.is_empty() => {
                *slot = Shard::Cold(Cold {
                    len: records.len(),
                    bytes,
                    decoded: OnceLock::new(),
                });
                true
            }
            _ => false,
        }
    }

    /// Takes out what readers had decoded of a cold shard, unless it was read since the last
    /// [`idle`](Self::idle) (dropping it frees it).
    pub fn forget(&mut self, shard: u8) -> Option<BTreeMap<Uuid, V>> {
        let n = usize::from(shard);
        if *self.touched[n].get_mut() {
            return None;
        }
        match &mut self.shards[n] {
            Shard::Cold(cold) => cold.decoded.take(),
            Shard::Warm(_) => None,
        }
    }

    /// How many shards are warm (for the logs).
    pub fn warm_shards(&self) -> usize {
        self.shards
            .iter()
            .filter(|s| matches!(s, Shard::Warm(r) if !r.is_empty()))
            .count()
    }

    /// How many shards are cold with their bytes put away, not held in memory.
    pub fn shards_away(&self) -> usize {
        self.shards
            .iter()
            .filter(|s| {
                matches!(
                    s,
                    Shard::Cold(Cold {
                        bytes: ColdBytes::Away(_),
                        ..
                    })
                )
            })
            .count()
    }
}

/// The encoding of a piece, to be run after the lock its read model is under is let go.
pub type Deferred = Box<dyn FnOnce() -> Result<Vec<u8>, Unencodable> + Send>;

impl<V: Serialize + DeserializeOwned + Send + Sync + 'static> Sharded<V> {
    /// The encoding of the piece `key` (under `prefix`) of a warm shard, to run after the
    /// caller's lock is let go: it holds the shard as it is now, and a fold meanwhile copies
    /// the shard before it changes it. `None` for a cold shard or a key it does not have
    /// (encode those at once: a cold shard's piece is its bytes).
    pub fn defer(&self, prefix: &str, key: &str) -> Option<Deferred> {
        let shard = below(prefix, key).and_then(|s| s.parse::<u8>().ok())?;
        match &self.shards[usize::from(shard)] {
            Shard::Warm(records) => {
                let records = Arc::clone(records);
                Some(Box::new(move || pack(&records.iter().collect::<Vec<_>>())))
            }
            Shard::Cold(_) => None,
        }
    }
}

impl<V: Serialize + DeserializeOwned> Sharded<V> {
    /// The bytes of a warm shard, as a checkpoint would write them (`None` when cold).
    pub fn encode_shard(&self, shard: u8) -> Option<Result<Vec<u8>, Unencodable>> {
        match &self.shards[usize::from(shard)] {
            Shard::Warm(records) => Some(pack(&records.iter().collect::<Vec<_>>())),
            Shard::Cold(_) => None,
        }
    }
}

impl<V: Serialize + DeserializeOwned> Serialize for Sharded<V> {
    /// As the map of every record in UUID order. A cold shard not yet decoded is decoded for
    /// the moment it is written and dropped after, so that a fingerprint does not warm the
    /// whole history.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (n, shard) in self.shards.iter().enumerate() {
            let decoded;
            let records = match shard {
                Shard::Warm(records) => records.as_ref(),
                Shard::Cold(cold) => match cold.decoded.get() {
                    Some(records) => records,
                    None => {
                        let n = u8::try_from(n).map_err(S::Error::custom)?;
                        let bytes = cold.bytes.read().map_err(|e| {
                            let _ = self.lost.set(format!("history shard {n:03}: {e}"));
                            S::Error::custom(e)
                        })?;
                        decoded = decode_shard::<V>(n, &bytes).map_err(S::Error::custom)?;
                        &decoded
                    }
                },
            };
            for (id, record) in records {
                map.serialize_entry(id, record)?;
            }
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Sharded<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let all = BTreeMap::<Uuid, V>::deserialize(deserializer)?;
        let mut shards: Vec<BTreeMap<Uuid, V>> = (0..SHARDS).map(|_| BTreeMap::new()).collect();
        for (id, record) in all {
            shards[usize::from(shard_of(&id))].insert(id, record);
        }
        Ok(Sharded {
            shards: shards
                .into_iter()
                .map(|records| Shard::Warm(Arc::new(records)))
                .collect(),
            ..Sharded::default()
        })
    }
}

impl<V: Serialize + DeserializeOwned> Pieces for Sharded<V> {
    fn keys(&self, prefix: &str, all: bool, out: &mut Vec<String>) {
        let marked = self.marks.take();
        let shards: BTreeSet<u8> = if all {
            (0..=u8::MAX)
                .filter(|s| match &self.shards[usize::from(*s)] {
                    Shard::Warm(records) => !records.is_empty(),
                    Shard::Cold(_) => true,
                })
                .collect()
        } else {
            marked
        };
        out.extend(
            shards
                .into_iter()
                .map(|shard| format!("{prefix}/{shard:03}")),
        );
    }

    fn encode(&self, prefix: &str, key: &str) -> Encoded {
        let Some(shard) = below(prefix, key).and_then(|s| s.parse::<u8>().ok()) else {
            return Ok(None);
        };
        match &self.shards[usize::from(shard)] {
            // Its bytes are what a checkpoint wrote for it, and nothing changed it since.
            Shard::Cold(cold) => match cold.bytes.read() {
                Ok(bytes) => Ok(Some(bytes.into_owned())),
                Err(e) => {
                    let _ = self.lost.set(format!("history shard {shard:03}: {e}"));
                    Err(Unencodable(format!("shard {key}: {e}")))
                }
            },
            Shard::Warm(_) => self.encode_shard(shard).transpose(),
        }
    }

    fn take(prefix: &str, stored: &mut Stored) -> Result<Self, Unreadable> {
        Sharded::take_with(prefix, stored, &mut ColdStored::new())
    }
}

impl<V> Sharded<V> {
    /// Reads it back from the pieces under `prefix`, taking them out of `stored` (held in
    /// memory, no copy of their bytes) and out of `cold` (as the projector kept them). Every
    /// shard stays cold: only the number of its records is read (the array's header); the
    /// records are decoded when asked for or changed.
    pub fn take_with(
        prefix: &str,
        stored: &mut Stored,
        cold: &mut ColdStored,
    ) -> Result<Self, Unreadable> {
        let start = format!("{prefix}/");
        let end = format!("{prefix}0"); // '0' follows '/'
        for key in keys_under(prefix, stored) {
            if let Some(bytes) = stored.remove(&key) {
                let len = records_in(&key, &bytes)?;
                let bytes = ColdBytes::from(bytes);
                cold.insert(key, ColdPiece { bytes, len });
            }
        }
        let keys: Vec<String> = cold
            .range(start.clone()..end)
            .map(|(k, _)| k.clone())
            .collect();
        let mut sharded = Sharded::default();
        for key in keys {
            let Some(piece) = cold.remove(&key) else {
                continue;
            };
            let name = &key[start.len()..];
            let shard = name
                .parse::<u8>()
                .ok()
                .filter(|s| format!("{s:03}") == name)
                .ok_or_else(|| Unreadable(format!("shard {key} out of place")))?;
            sharded.shards[usize::from(shard)] = Shard::Cold(Cold {
                bytes: piece.bytes,
                len: piece.len,
                decoded: OnceLock::new(),
            });
        }
        Ok(sharded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pieces: &[Piece]) -> Vec<&str> {
        pieces.iter().map(|(k, _)| k.as_str()).collect()
    }

    fn stored(pieces: Vec<Piece>) -> Stored {
        pieces.into_iter().collect()
    }

    #[test]
    fn a_segmented_vector_writes_only_the_segments_it_changed_and_reads_back_whole() {
        let mut v: Segmented<u64> = Segmented::default();
        for i in 0..(2 * SEGMENT as u64 + 10) {
            v.push(i);
        }
        let all = v.pieces("v", true).expect("pieces");
        assert_eq!(keys(&all), ["v/000000", "v/000001", "v/000002"]);

        // Nothing changed: nothing to write.
        let none = v.pieces("v", false).expect("pieces");
        assert!(none.is_empty());

        // A change in the first segment and an append: two segments.
        *v.get_mut(3).expect("item") = 1_000;
        v.push(7);
        let changed = v.pieces("v", false).expect("pieces");
        assert_eq!(keys(&changed), ["v/000000", "v/000002"]);

        let mut store = stored(all);
        store.extend(changed);
        let back = Segmented::<u64>::restore("v", &store).expect("restore");
        assert_eq!(back, v);
        assert_eq!(back[3], 1_000);
        assert_eq!(back.len(), 2 * SEGMENT + 11);
    }

    #[test]
    fn a_missing_segment_is_refused() {
        let mut v: Segmented<u64> = Segmented::default();
        for i in 0..(2 * SEGMENT as u64 + 1) {
            v.push(i);
        }
        let all = v.pieces("v", true).expect("pieces");
        let mut store = stored(all);
        store.remove("v/000001");
        assert!(Segmented::<u64>::restore("v", &store).is_err());
    }

    #[test]
    fn a_sharded_map_writes_only_the_shards_it_changed() {
        let mut m: Sharded<String> = Sharded::default();
        let ids = ids_in_every_shard(1);
        for id in &ids {
            m.insert(*id, id.to_string());
        }
        let all = m.pieces("m", true).expect("pieces");
        assert_eq!(all.len(), 256);
        if let Some(v) = m.get_mut(&ids[42]) {
            v.push('!');
        }
        let changed = m.pieces("m", false).expect("pieces");
        assert_eq!(keys(&changed), ["m/042"]);
        let mut store = stored(all);
        store.extend(changed);
        let back = Sharded::<String>::restore("m", &store).expect("restore");
        assert_eq!(back, m);
        assert!(back.get(&ids[42]).expect("record").ends_with('!'));
    }

    /// `per_shard` UUIDs in each of the 256 shards, in shard order.
    fn ids_in_every_shard(per_shard: u8) -> Vec<Uuid> {
        (0..=255u8)
            .flat_map(|b| {
                (0..per_shard).map(move |n| {
                    let mut bytes = [n; 16];
                    bytes[0] = b;
                    Uuid::from_bytes(bytes)
                })
            })
            .collect()
    }

    /// Calls `idle` as the projector does and freezes what it names; returns how many went cold.
    fn cool(m: &mut Sharded<String>, after: u8) -> usize {
        let (warm, decoded) = m.idle(after);
        let encoded: Vec<(u8, Vec<u8>)> = warm
            .iter()
            .filter_map(|s| Some((*s, m.encode_shard(*s)?.expect("encode"))))
            .collect();
        for shard in decoded {
            m.forget(shard);
        }
        encoded
            .into_iter()
            .filter(|(s, bytes)| m.freeze(*s, bytes.clone().into()))
            .count()
    }

    #[test]
    fn a_restored_shard_stays_cold_until_asked_and_goes_cold_again_once_idle() {
        let mut m: Sharded<String> = Sharded::default();
        let ids = ids_in_every_shard(3);
        for id in &ids {
            m.insert(*id, id.to_string());
        }
        let all = m.pieces("m", true).expect("pieces");
        let mut back = Sharded::<String>::restore("m", &stored(all.clone())).expect("restore");

        // Nothing decoded: every shard cold, counted from the bytes' header alone.
        assert_eq!(back.warm_shards(), 0);
        assert_eq!(back.len(), ids.len());
        // A cold shard is written as the bytes it was read from.
        assert_eq!(back.pieces("m", true).expect("pieces"), all);

        // Reading decodes without warming; changing warms one shard and marks it.
        assert_eq!(back.get(&ids[7]), Some(&ids[7].to_string()));
        assert_eq!(back.warm_shards(), 0);
        back.get_mut(&ids[7]).expect("record").push('!');
        assert_eq!(back.warm_shards(), 1);
        assert!(back.get_mut(&Uuid::from_bytes([9; 16])).is_none());
        assert_eq!(
            back.warm_shards(),
            1,
            "a lookup that finds nothing warms nothing"
        );
        let changed = back.pieces("m", false).expect("pieces");
        assert_eq!(keys(&changed), ["m/002"]);

        // It goes cold only after `after` calls in a row found it untouched.
        assert_eq!(cool(&mut back, 2), 0, "touched since the last call");
        assert_eq!(cool(&mut back, 2), 0, "idle once");
        back.get(&ids[8]);
        assert_eq!(cool(&mut back, 2), 0, "read in between");
        assert_eq!(cool(&mut back, 2), 0, "idle once");
        assert_eq!(cool(&mut back, 2), 1, "idle twice");
        assert_eq!(back.warm_shards(), 0);

        // Encoded, then changed before the swap: the bytes are stale, it stays warm.
        back.get_mut(&ids[8]).expect("record").push('?');
        for _ in 0..3 {
            back.idle(2);
        }
        let bytes = back.encode_shard(2).expect("warm").expect("encode");
        back.get_mut(&ids[8]).expect("record").push('?');
        assert!(!back.freeze(2, bytes.into()));
        assert_eq!(back.warm_shards(), 1);

        // Whatever is cold or warm, the map and its JSON are the same.
        for (id, tail) in [(7, "!"), (8, "??")] {
            if let Some(v) = m.get_mut(&ids[id]) {
                v.push_str(tail);
            }
        }
        assert_eq!(back, m);
        assert_eq!(
            serde_json::to_string(&back).expect("json"),
            serde_json::to_string(&m).expect("json")
        );
        assert_eq!(back.keys().count(), ids.len());
        assert!(back.damage().is_none());
    }

    #[test]
    fn a_cold_shard_that_cannot_be_decoded_says_so() {
        let mut store = Stored::new();
        // An array of one item that is not a (UUID, record) pair.
        store.insert("m/004".into(), vec![0x91, 0x01]);
        let back = Sharded::<String>::restore("m", &store).expect("restore");
        assert_eq!(back.len(), 1);
        assert!(back.get(&Uuid::from_bytes([4; 16])).is_none());
        assert!(back.damage().is_some_and(|d| d.contains("004")));
    }

    /// Bytes put away that can no longer be read back.
    struct Gone;

    impl Fetch for Gone {
        fn fetch(&self) -> Result<Vec<u8>, Unreadable> {
            Err(Unreadable("the file is gone".into()))
        }
    }

    #[test]
    fn a_cold_shard_that_cannot_be_read_back_says_so_apart_from_damaged_bytes() {
        let mut cold = ColdStored::new();
        let bytes = ColdBytes::Away(Arc::new(Gone));
        cold.insert("m/004".into(), ColdPiece { bytes, len: 1 });
        let back = Sharded::<String>::take_with("m", &mut Stored::new(), &mut cold).expect("take");
        assert!(back.get(&Uuid::from_bytes([4; 16])).is_none());
        assert!(back.damage().is_some_and(|d| d.contains("gone")));
        assert!(
            !back.checkpoint_damaged(),
            "the checkpoint's bytes are not in question"
        );

        let mut store = Stored::new();
        store.insert("m/004".into(), vec![0x91, 0x01]);
        let damaged = Sharded::<String>::restore("m", &store).expect("restore");
        assert!(damaged.get(&Uuid::from_bytes([4; 16])).is_none());
        assert!(damaged.checkpoint_damaged());
    }

    #[test]
    fn a_deferred_shard_is_encoded_as_it_stood_and_a_fold_meanwhile_copies_it() {
        let mut m: Sharded<String> = Sharded::default();
        let ids = ids_in_every_shard(2);
        for id in &ids {
            m.insert(*id, id.to_string());
        }
        let before = m.encode("m", "m/005").expect("encode").expect("a piece");
        let later = m.defer("m", "m/005").expect("warm");
        m.get_mut(&ids[10]).expect("record").push('!');
        assert_eq!(
            later().expect("encode"),
            before,
            "as it stood when deferred"
        );
        assert!(m.get(&ids[10]).expect("record").ends_with('!'));
        let after = m.encode("m", "m/005").expect("encode").expect("a piece");
        assert_ne!(after, before);
        assert!(m.defer("m", "m/x").is_none());
    }

    #[test]
    fn vectors_by_year_keep_their_years() {
        let mut years: BTreeMap<i32, Segmented<i64>> = BTreeMap::new();
        years.entry(2023).or_default().push(1);
        years.entry(2024).or_default().push(2);
        let all = years.pieces("y", true).expect("pieces");
        assert_eq!(keys(&all), ["y/2023/000000", "y/2024/000000"]);
        let back = BTreeMap::<i32, Segmented<i64>>::restore("y", &stored(all)).expect("restore");
        assert_eq!(back, years);
    }
}
