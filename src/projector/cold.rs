//! Where the projector puts the bytes of cold history shards: each in a file of its own that
//! has no name (`O_TMPFILE`, or created and unlinked at once where that is missing), so that
//! the memory a served ledger takes follows the shards read or changed lately, not the whole
//! history (decisions.md → Projections).
//!
//! A file is written once and read back whenever a record of its shard is wanted, checked
//! against the CRC-32 taken when it was written. Having no name, no other process finds it
//! (no cleaner of temporary directories, no hand), and the kernel frees it when the last
//! holder of its handle lets go (the shard was warmed again, the projector dropped) or the
//! process ends, however it ends.
//!
//! Each file held is an open descriptor. The limit of open files is raised to its hard limit
//! when the first file is made, and files are held for at most a quarter of the limit
//! ([`budget`]); beyond that, and once any file could not be read back, a shard's bytes stay
//! in memory.
//!
//! Not the database's own rows: another process's checkpoint may delete the rows this one
//! loaded from, and a record is read back inside a read lock, where no query may wait.
//!
//! The files are made under `KIROKU_COLD_DIR`, else `/var/tmp` (kept on disk, where `/tmp` may
//! be memory); where that fails, in the system's temporary directory.

use kiroku_projections::pieces::{ColdBytes, Fetch, Unreadable};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// Files held now, in this process.
static HELD: AtomicUsize = AtomicUsize::new(0);
/// Set once a file could not be read back: the place is not to be trusted again.
static FAILED: AtomicBool = AtomicBool::new(false);

/// One shard's bytes in their file.
struct Spilled {
    file: File,
    len: usize,
    crc: u32,
}

impl Spilled {
    /// The bytes, read back and checked.
    fn read_back(&self) -> Result<Vec<u8>, String> {
        let mut bytes = vec![0; self.len];
        self.file
            .read_exact_at(&mut bytes, 0)
            .map_err(|e| format!("reading back a cold shard's file: {e}"))?;
        if crc32fast::hash(&bytes) != self.crc {
            return Err("a cold shard's file reads back altered".to_string());
        }
        Ok(bytes)
    }
}

impl Fetch for Spilled {
    fn fetch(&self) -> Result<Vec<u8>, Unreadable> {
        self.read_back().map_err(|problem| {
            FAILED.store(true, Ordering::Relaxed);
            Unreadable(problem)
        })
    }
}

impl Drop for Spilled {
    fn drop(&mut self) {
        HELD.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where the files are made, in order of preference.
fn places() -> Vec<PathBuf> {
    let first = std::env::var_os("KIROKU_COLD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    vec![first, std::env::temp_dir()]
}

/// How many files may be held at once: a quarter of the limit of open files, raised first to
/// its hard limit (at most 65,536), so that the connections keep the rest.
fn budget() -> usize {
    static BUDGET: OnceLock<usize> = OnceLock::new();
    *BUDGET.get_or_init(|| (raise_open_files_limit() / 4) as usize)
}

/// Writes `bytes` to a file without a name; its handle reads them back. Refused when the
/// files held reach [`budget`] or a file could not be read back before.
pub(super) fn put(bytes: &[u8]) -> std::io::Result<ColdBytes> {
    if FAILED.load(Ordering::Relaxed) {
        return Err(std::io::Error::other(
            "a cold shard's file could not be read back earlier: kept in memory from now on",
        ));
    }
    if HELD.load(Ordering::Relaxed) >= budget() {
        return Err(std::io::Error::other(
            "as many cold shards' files are open as the limit of open files allows",
        ));
    }
    put_in(&places(), bytes)
}

/// [`put`] in the first of `places` where a file can be made and written.
fn put_in(places: &[PathBuf], bytes: &[u8]) -> std::io::Result<ColdBytes> {
    let mut failed = None;
    for place in places {
        match tempfile::tempfile_in(place).and_then(|mut file| {
            file.write_all(bytes)?;
            Ok(file)
        }) {
            Ok(file) => {
                HELD.fetch_add(1, Ordering::Relaxed);
                return Ok(ColdBytes::Away(Arc::new(Spilled {
                    file,
                    len: bytes.len(),
                    crc: crc32fast::hash(bytes),
                })));
            }
            Err(error) => failed = Some(error),
        }
    }
    Err(failed.unwrap_or_else(|| std::io::Error::other("no place for a cold shard's file")))
}

/// Raises this process's limit of open files to its hard limit (at most 65,536) and returns
/// the limit that holds then.
fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit reads into the one struct passed, which lives on this stack frame.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    let wanted = limit.rlim_max.min(65_536);
    if limit.rlim_cur < wanted {
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the one struct passed, which lives on this stack frame.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return wanted;
        }
    }
    limit.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_put_away_read_back_from_a_file_nobody_else_can_reach() {
        let away = put(b"abc").expect("put");
        let ColdBytes::Away(fetch) = &away else {
            panic!("not put away");
        };
        assert_eq!(fetch.fetch().expect("fetch"), b"abc");
        let copy = away.clone();
        drop(away);
        let ColdBytes::Away(fetch) = &copy else {
            panic!("not put away");
        };
        assert_eq!(fetch.fetch().expect("fetch"), b"abc");
    }

    #[test]
    fn a_place_that_cannot_be_written_gives_way_to_the_next() {
        let places = [PathBuf::from("/nonexistent/kiroku"), std::env::temp_dir()];
        let ColdBytes::Away(fetch) = put_in(&places, b"xyz").expect("put") else {
            panic!("not put away");
        };
        assert_eq!(fetch.fetch().expect("fetch"), b"xyz");
    }

    #[test]
    fn a_file_altered_behind_its_handle_reads_as_unreadable() {
        let file = tempfile::tempfile().expect("file");
        file.write_all_at(b"abd", 0).expect("write");
        HELD.fetch_add(1, Ordering::Relaxed);
        let spilled = Spilled {
            file,
            len: 3,
            crc: crc32fast::hash(b"abc"),
        };
        assert!(spilled.read_back().is_err_and(|e| e.contains("altered")));
    }

    #[test]
    fn the_limit_of_open_files_leaves_room_beside_the_files() {
        assert!(budget() >= 1024 / 4);
    }
}
