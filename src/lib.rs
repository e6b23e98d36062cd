//! Kiroku (記録): an event-sourced ledger of staff training and HR records.
//!
//! Data flows one way: HTTP/CLI → command → aggregate (`kiroku-domain`) → events → log
//! (`storage`) → projector → read models (`kiroku-projections`) → responses and reports.

pub mod app;
pub mod application;
pub mod bench;
pub mod cli;
pub mod demo;
pub mod http;
pub mod import;
pub mod ledger;
pub mod metrics;
pub mod projector;
pub mod reports;
pub mod server;
pub mod storage;
pub mod web;
