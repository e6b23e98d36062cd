//! What `/api/v1/metrics` shows, in the Prometheus text format, through the `metrics` crate
//! and its Prometheus exporter (a recorder installed once per process; `/metrics` renders
//! it). Nothing here reads the database: the figures are kept as they happen, so a scrape
//! costs no query, and answers even while the database is down.
//!
//! - `kiroku_http_requests_total{method, route, status}`: requests by matched route;
//! - `kiroku_command_duration_seconds{aggregate}`: commands from the application layer to
//!   their commit;
//! - `kiroku_events_appended_total`, `kiroku_chain_head_position`: what this process wrote,
//!   and the head it last saw (its own appends, or the projector's reads of others');
//! - `kiroku_projected_position`, `kiroku_projector_lag_events`, `kiroku_projector_stopped`;
//! - `kiroku_commands_unconfirmed_total{outcome}`: commands of the API decided before their
//!   token was read again, `confirmed` by their commit or `decided_again` the long way.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
static HEAD: AtomicI64 = AtomicI64::new(0);

/// Installs the recorder (once per process) and returns its handle; `None` if another
/// recorder was installed first (then `/metrics` says so).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new().install_recorder().ok()?;
            metrics::describe_counter!(
                "kiroku_http_requests_total",
                "HTTP requests by method, matched route and status."
            );
            metrics::describe_histogram!(
                "kiroku_command_duration_seconds",
                metrics::Unit::Seconds,
                "Commands from the application layer to their commit."
            );
            metrics::describe_counter!(
                "kiroku_events_appended_total",
                "Events this process appended to the log."
            );
            metrics::describe_gauge!(
                "kiroku_chain_head_position",
                "The last position of the hash chain this process saw."
            );
            metrics::describe_gauge!(
                "kiroku_projected_position",
                "The last position folded into the read models."
            );
            metrics::describe_gauge!(
                "kiroku_projector_lag_events",
                "Positions between the chain head and the read models."
            );
            metrics::describe_counter!(
                "kiroku_commands_unconfirmed_total",
                "Commands decided before their token was read again: confirmed by their commit, or decided again."
            );
            metrics::describe_gauge!(
                "kiroku_projector_stopped",
                "1 when the projector stopped at an event this version cannot read."
            );
            Some(handle)
        })
        .as_ref()
}

/// One HTTP request answered.
pub fn request(method: &str, route: &str, status: u16) {
    metrics::counter!(
        "kiroku_http_requests_total",
        "method" => method.to_string(),
        "route" => route.to_string(),
        "status" => status.to_string()
    )
    .increment(1);
}

/// One command executed (or refused) on an aggregate type.
pub fn command(aggregate: &'static str, took: Duration) {
    metrics::histogram!("kiroku_command_duration_seconds", "aggregate" => aggregate)
        .record(took.as_secs_f64());
}

/// A command decided unconfirmed: `confirmed` or `decided_again`.
pub fn unconfirmed(outcome: &'static str) {
    metrics::counter!("kiroku_commands_unconfirmed_total", "outcome" => outcome).increment(1);
}

/// Events appended by this process, the last at `head`.
pub fn appended(events: usize, head: i64) {
    metrics::counter!("kiroku_events_appended_total").increment(events as u64);
    saw_head(head);
}

/// A position known to be in the log.
pub fn saw_head(position: i64) {
    HEAD.fetch_max(position, Ordering::Relaxed);
}

/// The text of a scrape, with the projector's figures as of now.
pub fn render(projected: i64, stopped: bool) -> String {
    let Some(handle) = handle() else {
        return "# another metrics recorder is installed in this process\n".to_string();
    };
    let head = HEAD.load(Ordering::Relaxed).max(projected);
    metrics::gauge!("kiroku_chain_head_position").set(head as f64);
    metrics::gauge!("kiroku_projected_position").set(projected as f64);
    metrics::gauge!("kiroku_projector_lag_events").set((head - projected) as f64);
    metrics::gauge!("kiroku_projector_stopped").set(if stopped { 1.0 } else { 0.0 });
    handle.render()
}

/// The most memory this process has held at once (its peak resident set, `VmHWM` in
/// `/proc/self/status`), in bytes; `None` where the kernel does not say.
pub fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}
