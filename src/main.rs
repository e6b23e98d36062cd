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
/// mimalloc's `mi_option_allow_thp` (`mimalloc.h`, v3): whether it asks the kernel for
/// transparent huge pages.
const ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// Small pages only. mimalloc asks for transparent huge pages by default, and the kernel then
/// zeroes 2 MiB for every first touch of a region: an import's first sheet spent 61 % of its
/// deciding in `clear_page_rep` under `do_huge_pmd_anonymous_page` (0.69 s per 50,000 rows,
/// against 0.34 s with small pages; the later sheets reuse memory and take 0.25–0.31 s either
/// way). mimalloc read its options when the process started, before `main`, and may already
/// have asked for huge pages on its first region: the process-wide switch covers the part of
/// it not yet touched. Setting `MIMALLOC_ALLOW_THP` in the environment leaves the choice to
/// mimalloc (`MIMALLOC_ALLOW_THP=1`: huge pages as before).
fn small_pages_only() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return;
    }
    // SAFETY: in `main` no other thread runs yet (the runtime is built after this); in the
    // unit test other threads may read the option while it is written, a plain integer whose
    // either value is valid.
    unsafe { libmimalloc_sys::mi_option_set(ALLOW_THP, 0) };
    // SAFETY: PR_SET_THP_DISABLE takes an integer flag and no pointer. It only fails on a
    // kernel without it, where there is nothing to switch off.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0)
    };
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    small_pages_only();
    if matches!(cli.command, Command::Rebuild) {
        // A rebuild runs once and is measured by its peak memory: what it frees goes back at
        // once (1.09M events: 605 → 477 MB, no slower).
        // SAFETY: mimalloc keeps its options in plain integers, read by every thread that
        // frees memory; no other thread runs yet (the runtime is built below), and 0 is a
        // valid delay.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
    }
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => {
            let code = runtime.block_on(kiroku::cli::run(cli));
            // What a command took at most (the benchmark reads it from `kiroku report sheet`).
            if let Some(bytes) = kiroku::metrics::peak_memory_bytes() {
                tracing::debug!(target: "kiroku::memory", peak_mb = bytes >> 20, "peak memory");
            }
            code
        }
        Err(error) => {
            eprintln!("kiroku: 非同期ランタイムを起動できません: {error}");
            ExitCode::FAILURE
        }
    }
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

    #[test]
    fn huge_pages_are_switched_off_for_the_process() {
        // SAFETY (each read below): reads one of mimalloc's options.
        let before = unsafe { libmimalloc_sys::mi_option_get(ALLOW_THP) };
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
            // The environment chose: left as it is.
            small_pages_only();
            assert_eq!(unsafe { libmimalloc_sys::mi_option_get(ALLOW_THP) }, before);
            return;
        }
        // v3's default for `mi_option_allow_thp` is 1.
        assert_eq!(before, 1);
        small_pages_only();
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(ALLOW_THP) }, 0);
        // SAFETY: PR_GET_THP_DISABLE takes no pointer.
        #[cfg(target_os = "linux")]
        assert_eq!(
            unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) },
            1
        );
    }
}
