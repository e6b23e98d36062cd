//! Where the projector puts the bytes of cold history shards: each in a file of its own that
//! has no name (`O_TMPFILE`, or created and unlinked at once where that is missing), so that
//! the memory a served ledger takes follows the shards read or changed lately, not the whole
//! history (decisions.md → Projections).
//!
//! A file is written once and read back whenever a record of its shard is wanted. Having no
//! name, nothing else can delete or alter it (no cleaner of temporary directories, no hand),
//! and the kernel frees it when the last holder of its handle lets go (the shard was warmed
//! again, the projector dropped) or the process ends, however it ends: nothing is left behind.
//! Each file held is an open descriptor (at most one per history shard: 512); the limit is
//! raised at start ([`raise_open_files_limit`]).
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
use std::sync::Arc;

/// One shard's bytes in their file.
struct Spilled {
    file: File,
    len: usize,
}

impl Fetch for Spilled {
    fn fetch(&self) -> Result<Vec<u8>, Unreadable> {
        let mut bytes = vec![0; self.len];
        self.file
            .read_exact_at(&mut bytes, 0)
            .map_err(|e| Unreadable(format!("reading back a cold shard's file: {e}")))?;
        Ok(bytes)
    }
}

/// Where the files are made, in order of preference.
fn places() -> Vec<PathBuf> {
    let first = std::env::var_os("KIROKU_COLD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    vec![first, std::env::temp_dir()]
}

/// Writes `bytes` to a file without a name; its handle reads them back.
pub(super) fn put(bytes: &[u8]) -> std::io::Result<ColdBytes> {
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
                return Ok(ColdBytes::Away(Arc::new(Spilled {
                    file,
                    len: bytes.len(),
                })))
            }
            Err(error) => failed = Some(error),
        }
    }
    Err(failed.unwrap_or_else(|| std::io::Error::other("no place for a cold shard's file")))
}

/// Raises this process's limit of open files to its hard limit (at most 65,536): the cold
/// shards hold up to 512 descriptors, beside the connections. Where it cannot be raised, a
/// shard whose file cannot be opened stays in memory.
pub fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the one struct passed, which lives on
    // this stack frame for the whole call.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        let wanted = limit.rlim_max.min(65_536);
        if limit.rlim_cur < wanted {
            limit.rlim_cur = wanted;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
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
}
