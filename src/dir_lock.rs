//! One process per data directory: a `scatter up` data directory or a leaf's shard directory
//! is locked (an advisory lock on a file beside it, held for the process's life), so a second
//! process on it is refused at start with a message, instead of starting and failing at its
//! first write with tantivy's `LockBusy`. The lock file sits beside a shard directory, not in
//! it: a repair swaps the directory, never its sibling.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A held lock (released when dropped, or when the process exits however it does).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// The lock file of `dir`: `DIR.lock` beside it.
fn lock_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    dir.with_file_name(name)
}

/// Locks `dir` for this process, or says which process holds it.
pub fn lock(dir: &Path) -> anyhow::Result<DirLock> {
    let path = lock_path(dir);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("opening the lock file {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            anyhow::bail!(
                "{} is in use by another scatter process{} (lock {}); stop it first, or use \
                 another directory",
                dir.display(),
                match holder.trim() {
                    "" => String::new(),
                    pid => format!(" (pid {pid})"),
                },
                path.display()
            );
        }
        Err(TryLockError::Error(e)) => {
            anyhow::bail!("locking {}: {e}", path.display())
        }
    }
    file.set_len(0)?;
    write!(file, "{}", std::process::id())?;
    Ok(DirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_directory_is_refused_until_the_first_goes() {
        let dir = tempfile::tempdir().unwrap();
        let shard = dir.path().join("shard-0");
        let held = lock(&shard).unwrap();
        let e = lock(&shard).unwrap_err().to_string();
        assert!(e.contains("in use by another scatter process"), "{e}");
        assert!(e.contains(&std::process::id().to_string()), "{e}");
        drop(held);
        lock(&shard).unwrap();
    }
}
