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
//! state a few pieces at a time; [`Pieces::restore`] reads them back. Marking costs nothing
//! while folding (the marks are reached through `&mut`); taking them needs only a shared
//! borrow, so a checkpoint works under the read lock. What is stored where (the projector's
//! manifest, the database) is not this module's business: no IO lives here.
//!
//! The pieces that grow with the log are MessagePack ([`pack`]): structs as arrays, UUIDs as
//! 16 bytes. JSON spelt every field name and every UUID in hex again in every item, which made
//! a checkpoint of a 1M-event ledger 250 MB and a start spend most of its time parsing them.
//! The few pieces that grow with the plans (the plan book, the indicators' plan facts) stay
//! JSON ([`read_whole`]): their types skip absent fields, which an array cannot.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;
use std::sync::Mutex;
use uuid::Uuid;

/// Items in one segment of a [`Segmented`] vector.
pub const SEGMENT: usize = 4096;

/// A piece of the read models: its key and its bytes.
pub type Piece = (String, Vec<u8>);

/// Stored pieces by key, as a checkpoint is read back.
pub type Stored = BTreeMap<String, Vec<u8>>;

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

    /// Reads it back from the pieces stored under `prefix`.
    fn restore(prefix: &str, stored: &Stored) -> Result<Self, Unreadable>;

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

/// [`Pieces`] without `restore`, so that the parts of a composite read model can be listed
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

/// The stored pieces whose key starts with `prefix/`, in key order, with the rest of the key.
pub fn under<'a>(prefix: &str, stored: &'a Stored) -> impl Iterator<Item = (&'a str, &'a [u8])> {
    let start = format!("{prefix}/");
    let end = format!("{prefix}0"); // '0' follows '/'
    stored
        .range(start.clone()..end)
        .map(move |(k, v)| (&k[start.len()..], v.as_slice()))
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

    fn restore(prefix: &str, stored: &Stored) -> Result<Self, Unreadable> {
        let mut items = Vec::new();
        for (n, (key, bytes)) in under(prefix, stored).enumerate() {
            if key != format!("{n:06}") || items.len() != n * SEGMENT {
                return Err(Unreadable(format!(
                    "segment {prefix}/{key} out of place: found as segment {n}, after {} items \
                     (expected {})",
                    items.len(),
                    n * SEGMENT
                )));
            }
            items.extend(unpack::<Vec<T>>(bytes)?);
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

    fn restore(prefix: &str, stored: &Stored) -> Result<Self, Unreadable> {
        let keys: BTreeSet<&str> = under(prefix, stored)
            .filter_map(|(key, _)| key.split('/').next())
            .collect();
        let mut map = BTreeMap::new();
        for key in keys {
            let year: i32 = key
                .parse()
                .map_err(|_| Unreadable(format!("piece {prefix}/{key}: not a year")))?;
            let k = K::try_from(year)
                .map_err(|_| Unreadable(format!("piece {prefix}/{key}: not a year")))?;
            map.insert(k, Segmented::restore(&format!("{prefix}/{key}"), stored)?);
        }
        Ok(map)
    }
}

/// A map by UUID kept in 256 shards (by the UUID's first byte). Reads see the map.
#[derive(Debug, Clone)]
pub struct Sharded<V> {
    map: BTreeMap<Uuid, V>,
    marks: Marks<u8>,
}

impl<V> Default for Sharded<V> {
    fn default() -> Self {
        Sharded {
            map: BTreeMap::new(),
            marks: Marks::default(),
        }
    }
}

impl<V: PartialEq> PartialEq for Sharded<V> {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<V> Deref for Sharded<V> {
    type Target = BTreeMap<Uuid, V>;
    fn deref(&self) -> &BTreeMap<Uuid, V> {
        &self.map
    }
}

fn shard_of(id: &Uuid) -> u8 {
    id.as_bytes()[0]
}

impl<V> Sharded<V> {
    pub fn insert(&mut self, id: Uuid, value: V) -> Option<V> {
        self.marks.mark(shard_of(&id));
        self.map.insert(id, value)
    }

    pub fn get_mut(&mut self, id: &Uuid) -> Option<&mut V> {
        let value = self.map.get_mut(id)?;
        self.marks.mark(shard_of(id));
        Some(value)
    }

    /// The records of one shard, in UUID order.
    fn shard(&self, shard: u8) -> impl Iterator<Item = (&Uuid, &V)> {
        let mut low = [0u8; 16];
        low[0] = shard;
        let mut high = [0xffu8; 16];
        high[0] = shard;
        self.map
            .range(Uuid::from_bytes(low)..=Uuid::from_bytes(high))
    }
}

impl<V: Serialize> Serialize for Sharded<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.map.serialize(serializer)
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Sharded<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Sharded {
            map: BTreeMap::deserialize(deserializer)?,
            marks: Marks::default(),
        })
    }
}

impl<V: Serialize + DeserializeOwned> Pieces for Sharded<V> {
    fn keys(&self, prefix: &str, all: bool, out: &mut Vec<String>) {
        let marked = self.marks.take();
        let shards: BTreeSet<u8> = if all {
            self.map.keys().map(shard_of).collect()
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
        let records: Vec<(&Uuid, &V)> = self.shard(shard).collect();
        pack(&records).map(Some)
    }

    fn restore(prefix: &str, stored: &Stored) -> Result<Self, Unreadable> {
        let mut map = BTreeMap::new();
        for (key, bytes) in under(prefix, stored) {
            let records: Vec<(Uuid, V)> = unpack(bytes)?;
            if records
                .iter()
                .any(|(id, _)| format!("{:03}", shard_of(id)) != key)
            {
                return Err(Unreadable(format!("shard {prefix}/{key} out of place")));
            }
            map.extend(records);
        }
        Ok(Sharded {
            map,
            marks: Marks::default(),
        })
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
        let ids: Vec<Uuid> = (0..=255u8)
            .map(|b| {
                let mut bytes = [7u8; 16];
                bytes[0] = b;
                Uuid::from_bytes(bytes)
            })
            .collect();
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
        assert!(back[&ids[42]].ends_with('!'));
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
