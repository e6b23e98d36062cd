//! Kiroku's read models: pure folds from the log to what people look at. No IO lives here;
//! the application feeds events in position order and reads the result.

pub mod audit;
pub mod history;
pub mod indicators;
pub mod pieces;
pub mod plans;
pub mod rules;
pub mod sheet;
#[cfg(test)]
mod testing;
pub mod time;

use kiroku_domain::incident::{ComplianceIncident, IncidentEvent};
use kiroku_domain::plan::{PlanEvent, PlanItem};
use kiroku_domain::session::{SessionEvent, TrainingSession};
use kiroku_domain::staff::{Staff, StaffEvent};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A typed event of any aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum LedgerEvent {
    Staff(StaffEvent),
    Session(SessionEvent),
    Incident(IncidentEvent),
    Plan(PlanEvent),
}

/// Why a stored event could not be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEvent(pub String);

impl std::fmt::Display for UnknownEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UnknownEvent {}

impl LedgerEvent {
    /// Reads a stored payload by the aggregate type it was written for.
    pub fn parse(aggregate_type: &str, payload: &Value) -> Result<LedgerEvent, UnknownEvent> {
        LedgerEvent::deserialize(aggregate_type, payload)
    }

    /// Reads a stored payload straight from its JSON text, as the log returns it (no
    /// intermediate `Value`): the rebuild's path.
    pub fn parse_str(aggregate_type: &str, payload: &str) -> Result<LedgerEvent, UnknownEvent> {
        let mut reader = serde_json::Deserializer::from_str(payload);
        let event = LedgerEvent::deserialize(aggregate_type, &mut reader)?;
        reader.end().map_err(|e| UnknownEvent(e.to_string()))?;
        Ok(event)
    }

    fn deserialize<'de, D: Deserializer<'de>>(
        aggregate_type: &str,
        payload: D,
    ) -> Result<LedgerEvent, UnknownEvent> {
        use cqrs_es_types::*;
        let unknown = |e: D::Error| UnknownEvent(e.to_string());
        match aggregate_type {
            STAFF => StaffEvent::deserialize(payload)
                .map(LedgerEvent::Staff)
                .map_err(unknown),
            SESSION => SessionEvent::deserialize(payload)
                .map(LedgerEvent::Session)
                .map_err(unknown),
            INCIDENT => IncidentEvent::deserialize(payload)
                .map(LedgerEvent::Incident)
                .map_err(unknown),
            PLAN => PlanEvent::deserialize(payload)
                .map(LedgerEvent::Plan)
                .map_err(unknown),
            other => Err(UnknownEvent(format!("unknown aggregate type {other}"))),
        }
    }
}

/// The aggregate type names as the log stores them.
pub mod cqrs_es_types {
    use super::*;
    use cqrs_es::Aggregate;

    pub const STAFF: &str = <Staff as Aggregate>::TYPE;
    pub const SESSION: &str = <TrainingSession as Aggregate>::TYPE;
    pub const INCIDENT: &str = <ComplianceIncident as Aggregate>::TYPE;
    pub const PLAN: &str = <PlanItem as Aggregate>::TYPE;
}

/// An event with what the log knows about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub position: i64,
    /// Milliseconds since the Unix epoch (UTC).
    pub recorded_at: i64,
    pub aggregate_id: String,
    pub actor: Option<String>,
    pub reason: Option<String>,
    pub event: LedgerEvent,
}

pub use time::rfc3339_ms;

/// Serializes a `HashMap` as a list of pairs sorted by key, so that the serialized read
/// models are byte-identical whatever the map's iteration order (and keys need not be strings).
pub mod sorted_pairs {
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::HashMap;
    use std::hash::Hash;

    pub fn serialize<K, V, S>(map: &HashMap<K, V>, serializer: S) -> Result<S::Ok, S::Error>
    where
        K: Serialize + Ord,
        V: Serialize,
        S: Serializer,
    {
        let mut pairs: Vec<(&K, &V)> = map.iter().collect();
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        pairs.serialize(serializer)
    }

    pub fn deserialize<'de, K, V, D>(deserializer: D) -> Result<HashMap<K, V>, D::Error>
    where
        K: DeserializeOwned + Eq + Hash,
        V: DeserializeOwned,
        D: Deserializer<'de>,
    {
        let pairs: Vec<(K, V)> = Vec::deserialize(deserializer)?;
        Ok(pairs.into_iter().collect())
    }
}
