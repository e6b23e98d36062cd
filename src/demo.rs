//! The demo city (SPEC §8): a deterministic ledger of about 1,000 staff over FY2021–FY2025.
