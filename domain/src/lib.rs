//! Kiroku's domain: the pure decisions of the ledger. Aggregates (cqrs-es 0.5) decide whether
//! a command may happen and which events it produces; value types refuse invalid input at the
//! edge. No IO lives here: whatever a decision needs to know from elsewhere (does the
//! interviewer exist?) is looked up by the application and put into the command.

pub mod dates;
pub mod error;
pub mod incident;
pub mod plan;
pub mod session;
pub mod staff;
pub mod values;

pub use error::{DomainError, Refusal};
