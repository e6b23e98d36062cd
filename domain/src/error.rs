//! What every rejected command tells the caller: a stable machine `code` and the kind of
//! refusal, which the HTTP layer turns into 400 / 404 / 409.

/// How a refusal maps onto the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The command itself is invalid (400).
    Invalid,
    /// Something the command names does not exist (404).
    NotFound,
    /// The command conflicts with the current state (409).
    Conflict,
}

/// Implemented by every aggregate's error enum.
pub trait DomainError: std::error::Error {
    /// Stable, documented machine code such as `not_enrolled` or `employee_no_taken`.
    fn code(&self) -> &'static str;
    fn refusal(&self) -> Refusal;
}
