//! Leaf helpers every stage may use: atomic writes, JSON files, SHA-256 digests and the
//! serde skip helpers of the configs. Nothing here imports from the crate, so any stage can
//! depend on it without a circle.

use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A temporary name beside `path`, unique to this process and call
/// (`<name>.<pid>-<n>.tmp`), so that two processes writing the same file never share one.
pub fn temp_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().map(|f| f.to_os_string()).unwrap_or_default();
    name.push(format!(".{}-{n}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Writes `bytes` to `path` through a temporary file of its own ([`temp_path`]) and a
/// rename; a failed write removes the temporary file and leaves `path` as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    if let Err(e) = std::fs::write(&tmp, bytes) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}{}", path.display(), disk_full_hint(path)));
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

/// Checks that a file can be created beside `path` by writing and removing a probe under a
/// temporary name ([`temp_path`]); `what` names the destination in the error (a read-only or
/// full file system is found before the work whose result would go there).
pub fn ensure_writable(path: &Path, what: &str) -> Result<()> {
    let probe = temp_path(path);
    if let Err(e) = std::fs::write(&probe, b"probe") {
        let _ = std::fs::remove_file(&probe);
        return Err(e).with_context(|| format!("{what} cannot be written{}", disk_full_hint(path)));
    }
    std::fs::remove_file(&probe).with_context(|| format!("cannot remove {}", probe.display()))
}

/// Free bytes for an unprivileged writer on the file system holding `path` (or its
/// nearest existing ancestor); None where it cannot be asked.
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let mut p = path;
    while !p.exists() {
        p = p.parent().filter(|q| !q.as_os_str().is_empty())?;
    }
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Fails, naming `what` and the folder, when the file system holding `path` has fewer than
/// `need` bytes free; passes where free space cannot be asked. A check before a write that
/// is known to need `need` bytes, so that a full disk is found before anything is replaced.
pub fn ensure_free(path: &Path, need: u64, what: &str) -> Result<()> {
    match free_bytes(path) {
        Some(free) if free < need => anyhow::bail!(
            "not enough disk space to write {what}: it needs about {}, and {} is free on the file system of {}",
            human_bytes(need),
            human_bytes(free),
            path.display()
        ),
        _ => Ok(()),
    }
}

/// " (the disk is full: N free)" when the file system holding `path` has (almost) no space
/// left, else "": appended to write errors so that a full disk is named as the cause.
pub fn disk_full_hint(path: &Path) -> String {
    match free_bytes(path) {
        Some(free) if free < 1 << 20 => format!(" (the disk is full: {} free)", human_bytes(free)),
        _ => String::new(),
    }
}

/// `1.2 GiB`, `340 KiB`, `12 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// An exclusive lock on a lock file, held until dropped (`flock`: the kernel releases it
/// when the process dies, so a killed run never leaves a stale lock).
pub struct FileLock {
    _file: std::fs::File,
}

/// Takes the exclusive lock on `path` (created if absent), waiting for another process
/// that holds it; says once on stderr what it waits for (`what`).
pub fn lock(path: &Path, what: &str) -> Result<FileLock> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!("waiting for another process that is writing {what} (lock {})", path.display());
            file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    Ok(FileLock { _file: file })
}

/// Pretty JSON with a trailing newline, written atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write_atomic(path, (serde_json::to_string_pretty(value)? + "\n").as_bytes())
}

/// The JSON value in `path`, or None when there is no such file.
pub fn read_json_if_exists<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some(serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?))
}

/// Lowercase hex SHA-256 of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

/// serde `skip_serializing_if` helpers: a setting at its default is left out of saved YAML,
/// so configs written before the setting existed keep their hash.
pub fn is_false(v: &bool) -> bool {
    !*v
}

pub fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

pub fn is_zero_usize(v: &usize) -> bool {
    *v == 0
}

/// serde default `true`, for keys that are on unless a config turns them off.
pub fn yes() -> bool {
    true
}

pub fn is_true(v: &bool) -> bool {
    *v
}
