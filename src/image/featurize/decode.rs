//! Decoding: the cheap pre-check that rejects files that can never be images, and the
//! worker threads that read, decode and preprocess images ([`crate::image::prep`]).

use crate::image::prep::{self, Preprocess};
use anyhow::anyhow;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Instant;

/// Why a file can never be an image, from its size and first bytes; None when it may be one.
pub(super) fn precheck(path: &Path) -> Option<String> {
    if let Some(why) = prep::reject_file(path) {
        return Some(why);
    }
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return Some(format!("cannot open: {e}")),
    };
    let len = match f.metadata() {
        Ok(m) if m.is_dir() => return Some("is a folder".into()),
        Ok(m) => m.len(),
        Err(e) => return Some(format!("cannot stat: {e}")),
    };
    let mut head = [0u8; 16];
    let mut got = 0;
    while got < head.len() {
        match f.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) => return Some(format!("cannot read: {e}")),
        }
    }
    prep::reject_header(&head[..got], len)
}

/// One decoding thread: takes positions in `work` from `jobs`, reads, decodes and
/// preprocesses `images[work[pos]]`, and sends `(pos, pixels or the reason)` to `done`,
/// until `jobs` closes, `done` hangs up or `stop` is set. A panic in a decoder becomes a
/// bad image, not a dead thread.
#[allow(clippy::too_many_arguments)]
pub(super) fn decode_worker(
    images: &[(String, PathBuf)],
    work: &[usize],
    prep: &Preprocess,
    jobs: &Mutex<mpsc::Receiver<usize>>,
    done: mpsc::Sender<(usize, std::result::Result<Vec<f32>, String>)>,
    stop: &AtomicBool,
    decode_ns: &AtomicU64,
) {
    loop {
        let next = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => break,
        };
        let Ok(pos) = next else { break };
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let t = Instant::now();
        let path = &images[work[pos]].1;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| prep.file(path)))
            .unwrap_or_else(|_| Err(anyhow!("preprocessing panicked")))
            .map_err(|e| format!("{e:#}"));
        decode_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        if done.send((pos, r)).is_err() {
            break;
        }
    }
}
