//! Ctrl-C and SIGTERM for `clamp train`: the first one is remembered and the training loop saves
//! a checkpoint after the step in progress, then exits; a second one quits at once.

use std::sync::atomic::{AtomicI32, Ordering};

static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    // Only async-signal-safe calls here: an atomic swap, signal() and raise().
    if RECEIVED.swap(signal, Ordering::SeqCst) != 0 {
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
    }
}

/// Routes SIGINT and SIGTERM to [`received`].
pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// The signal received since [`install`], if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// Sends SIGINT to this process, as Ctrl-C would (`CLAMP_FAULT=interrupt@K`).
pub fn interrupt_self() {
    unsafe {
        libc::raise(libc::SIGINT);
    }
}

pub fn name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "interrupted (SIGINT)",
        libc::SIGTERM => "terminated (SIGTERM)",
        _ => "stopped by a signal",
    }
}
