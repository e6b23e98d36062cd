//! Where the projector puts the bytes of cold history shards: a directory of its own, one file
//! per shard kept away, so that the memory a served ledger takes follows the shards read or
//! changed lately, not the whole history (decisions.md → Projections).
//!
//! Each file is written once and read back whenever a record of its shard is wanted; it is
//! deleted when the last holder of its handle lets go of it (the shard was warmed again, or
//! the projector dropped), and the directory when the process ends. Not the database's rows:
//! another process's checkpoint may delete the rows this one loaded from, and reading one back
//! happens inside a read lock, where no query can wait.
//!
//! The directory is made under `KIROKU_COLD_DIR`, else `/var/tmp` (kept on disk, where `/tmp`
//! may be memory), else the system's temporary directory; only its owner may enter it. It is
//! named after the process, so that the next start removes what a process that was killed left
//! behind.

use kiroku_projections::pieces::{ColdBytes, Fetch, Unreadable};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The directory of one projector's cold shards.
pub(super) struct Spill {
    dir: Arc<tempfile::TempDir>,
    next: AtomicU64,
}

/// One shard's bytes in their file.
struct Spilled {
    path: PathBuf,
    len: usize,
    /// Keeps the directory while a file in it is held.
    _dir: Arc<tempfile::TempDir>,
}

impl Fetch for Spilled {
    fn fetch(&self) -> Result<Vec<u8>, Unreadable> {
        let bytes = std::fs::read(&self.path)
            .map_err(|e| Unreadable(format!("reading {}: {e}", self.path.display())))?;
        if bytes.len() != self.len {
            return Err(Unreadable(format!(
                "{}: {} bytes read back, {} written",
                self.path.display(),
                bytes.len(),
                self.len
            )));
        }
        Ok(bytes)
    }
}

impl Drop for Spilled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where the directory is made.
fn base() -> PathBuf {
    if let Some(dir) = std::env::var_os("KIROKU_COLD_DIR") {
        return PathBuf::from(dir);
    }
    let var_tmp = Path::new("/var/tmp");
    if var_tmp.is_dir() {
        return var_tmp.to_path_buf();
    }
    std::env::temp_dir()
}

/// The start of a directory's name: the process that made it follows.
const PREFIX: &str = "kiroku-cold-";

/// Removes the directories under `base` left by processes that are gone (killed before they
/// could remove their own). Where there is no `/proc` to ask, nothing is removed.
fn remove_left_behind(base: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Spill {
    pub fn new() -> std::io::Result<Spill> {
        use std::os::unix::fs::PermissionsExt;
        let base = base();
        remove_left_behind(&base);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-", std::process::id()))
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(base)?;
        Ok(Spill {
            dir: Arc::new(dir),
            next: AtomicU64::new(0),
        })
    }

    /// Writes `bytes` to a file of their own; their handle reads them back.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<ColdBytes> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("{n:08}"));
        std::fs::write(&path, bytes)?;
        Ok(ColdBytes::Away(Arc::new(Spilled {
            path,
            len: bytes.len(),
            _dir: self.dir.clone(),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_put_away_read_back_and_their_file_goes_with_the_last_holder() {
        let spill = Spill::new().expect("spill");
        let away = spill.put(b"abc").expect("put");
        let ColdBytes::Away(fetch) = &away else {
            panic!("not put away");
        };
        assert_eq!(fetch.fetch().expect("fetch"), b"abc");
        let dir = spill.dir.path().to_path_buf();
        let copy = away.clone();
        drop(away);
        assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 1);
        drop(copy);
        assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 0);
        drop(spill);
        assert!(!dir.exists());
    }

    #[test]
    fn what_a_killed_process_left_is_removed_and_a_live_ones_kept() {
        let base = tempfile::tempdir().expect("base");
        // No process has an id this high (the kernel's limit is 2^22).
        let gone = base.path().join(format!("{PREFIX}4294967295-abc"));
        let live = base.path().join(format!("{PREFIX}1-abc"));
        let other = base.path().join("something-else");
        for dir in [&gone, &live, &other] {
            std::fs::create_dir(dir).expect("dir");
            std::fs::write(dir.join("00000000"), b"x").expect("file");
        }
        remove_left_behind(base.path());
        assert!(!gone.exists());
        assert!(live.exists(), "process 1 is alive");
        assert!(other.exists());
    }

    #[test]
    fn only_the_owner_may_enter() {
        use std::os::unix::fs::PermissionsExt;
        let spill = Spill::new().expect("spill");
        let mode = std::fs::metadata(spill.dir.path())
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
