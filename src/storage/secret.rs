//! 32-byte secrets kept in files outside the database (the digest signing key, the master
//! key that wraps the personal keys), created readable by their owner only.

use rand::RngCore;
use std::path::Path;

/// Why a secret file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: 32 バイトの鍵ではありません（{1} バイトでした）")]
    WrongLength(String, usize),
}

/// The secret in `path`, or a new random one written there (mode 0600); `true` when new.
pub fn load_or_create(path: &Path) -> Result<([u8; 32], bool), SecretError> {
    let shown = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => {
            let secret: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| SecretError::WrongLength(shown, bytes.len()))?;
            Ok((secret, false))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut secret);
            write_private(path, &secret).map_err(|e| SecretError::Io(shown, e))?;
            Ok((secret, true))
        }
        Err(error) => Err(SecretError::Io(shown, error)),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}
