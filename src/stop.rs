//! Ctrl-C and SIGTERM as a request to stop at the next safe point. [`install`] sets the
//! handlers; long loops (training batches, featurizer batches, sweep trials) call
//! [`check`] between units of work, which returns an [`Interrupted`] error once a signal
//! came, so that everything written so far stays as a completed unit (a checkpoint, a
//! shard) and the command's error handler can say how to continue. A second signal ends
//! the process at once (exit 128 + signal), as a user pressing Ctrl-C twice expects.

use std::sync::atomic::{AtomicI32, Ordering};

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: i32) {
    if SIGNAL.swap(sig, Ordering::SeqCst) != 0 {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + sig) };
    }
    let msg = b"\nstopping at the next safe point (press Ctrl-C again to exit at once)\n";
    // SAFETY: write(2) on stderr is async-signal-safe; a short write only shortens the note.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
    }
}

/// Installs the SIGINT and SIGTERM handlers (for the `tgcn` binary; a library user keeps
/// its own).
pub fn install() {
    let handler = on_signal as extern "C" fn(i32) as libc::sighandler_t;
    // SAFETY: the handler only touches an atomic and calls async-signal-safe functions.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// The signal that asked to stop, if one came.
pub fn requested() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// A stop asked for by a signal; `next` says how to continue (the command to resume).
#[derive(Debug)]
pub struct Interrupted {
    pub signal: i32,
    pub next: String,
}

impl Interrupted {
    /// The conventional exit status of a process ended by `signal`: 130 for SIGINT, 143
    /// for SIGTERM.
    pub fn exit_code(&self) -> i32 {
        128 + self.signal
    }

    fn name(&self) -> &'static str {
        match self.signal {
            libc::SIGINT => "Ctrl-C (SIGINT)",
            libc::SIGTERM => "SIGTERM",
            _ => "a signal",
        }
    }
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stopped by {}; {}", self.name(), self.next)
    }
}

impl std::error::Error for Interrupted {}

/// Err([`Interrupted`]) once a signal asked to stop, with `next()` saying how to continue;
/// Ok otherwise. Cheap: one atomic load.
pub fn check(next: impl FnOnce() -> String) -> anyhow::Result<()> {
    match requested() {
        None => Ok(()),
        Some(signal) => Err(Interrupted { signal, next: next() }.into()),
    }
}

/// The [`Interrupted`] in an error's chain, if the error is one.
pub fn interrupted(e: &anyhow::Error) -> Option<&Interrupted> {
    e.chain().find_map(|c| c.downcast_ref::<Interrupted>())
}
