//! `kiroku`: the ledger's one binary.

use clap::Parser;
use kiroku::cli::{Cli, Command};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// mimalloc (README says why): it keeps freed memory for a while (a second by default) before
/// giving it back to the kernel, so the next import reuses it instead of faulting fresh pages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (`mimalloc.h`, v3): milliseconds freed memory is kept.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if matches!(cli.command, Command::Rebuild) {
        // A rebuild runs once and is measured by its peak memory: what it frees goes back at
        // once (1.09M events: 605 → 477 MB, no slower).
        // SAFETY: sets one of mimalloc's options, an atomic integer, to a valid value.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
    }
    kiroku::cli::run(cli).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_the_option_named() {
        // v3's default for `mi_option_purge_delay` is 1000 ms; no other option has it.
        // SAFETY: reads one of mimalloc's options.
        let delay = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        assert_eq!(delay, 1000);
    }
}
