//! SIGINT, SIGTERM, SIGHUP and SIGQUIT, and the TUI's `q`, as one stop
//! request: mdt always ends by its own stop (probes detached, a target it
//! stopped let go, outputs complete), never killed mid-way by a signal
//! it could handle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};

/// SIGINT / SIGTERM / SIGHUP / SIGQUIT, counted (the session forwards the
/// first to a launched program and stops on the next).
pub struct Signals {
    count: Arc<AtomicUsize>,
    last: Arc<AtomicUsize>,
}

impl Signals {
    pub fn install() -> Result<Self> {
        let count = Arc::new(AtomicUsize::new(0));
        let last = Arc::new(AtomicUsize::new(0));
        use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
        for sig in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
            let (count, last) = (count.clone(), last.clone());
            // SAFETY: the handler only performs atomic stores, which are
            // async-signal-safe.
            unsafe {
                signal_hook::low_level::register(sig, move || {
                    last.store(sig as usize, Ordering::SeqCst);
                    count.fetch_add(1, Ordering::SeqCst);
                })
            }
            .context("installing signal handlers")?;
        }
        Ok(Signals { count, last })
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Asks the session to stop as if SIGINT had arrived (the TUI's `q`).
    pub fn request_stop(&self) {
        let sigint = signal_hook::consts::SIGINT as usize;
        self.last.store(sigint, Ordering::SeqCst);
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn last(&self) -> i32 {
        self.last.load(Ordering::SeqCst) as i32
    }
}
