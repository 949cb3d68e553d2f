//! Writing files so that a crash never leaves a half-written one in place: write a
//! temporary file beside it, sync it, rename it over, sync the directory. The files
//! written here (the peer cache, `cc` output) hold every user's passkey, so they are
//! readable by their owner only (0600), whatever the umask.

use std::ffi::OsString;
use std::fs::{File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of files holding secrets (passkeys, user ids with addresses).
pub const PRIVATE_MODE: u32 = 0o600;

/// Opens `path` for writing as a private file: created 0600, and brought to 0600 if it
/// already existed with another mode (the mode of `open` applies only to new files).
pub fn open_private(path: &Path, options: &mut OpenOptions) -> std::io::Result<File> {
    let file = options.mode(PRIVATE_MODE).open(path)?;
    if file.metadata()?.permissions().mode() & 0o777 != PRIVATE_MODE {
        file.set_permissions(Permissions::from_mode(PRIVATE_MODE))?;
    }
    Ok(file)
}

/// `<path>.tmp`.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".tmp");
    PathBuf::from(name)
}

/// Replaces `path` with `bytes` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temp = temp_path(path);
    let mut file = open_private(
        &temp,
        OpenOptions::new().write(true).create(true).truncate(true),
    )?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, path)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // Makes the rename itself durable.
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("chihaya-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.bin");
        write_atomic(&path, b"first").unwrap();
        // A temporary left by a crash, readable by all: the new file is private anyway.
        std::fs::write(temp_path(&path), b"stale").unwrap();
        std::fs::set_permissions(temp_path(&path), Permissions::from_mode(0o644)).unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert!(!temp_path(&path).exists());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, PRIVATE_MODE);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
