//! The terminal while the UI runs: raw mode, the alternate screen, a
//! hidden cursor — and putting all of it back exactly as it was on every
//! way out: a normal return, an error (the guard's `Drop`), a panic on any
//! thread (a panic hook that restores before the message is printed).
//!
//! While the UI is up, whatever would be written to stderr (a library
//! warning) would scribble over the screen; it is kept in a memory file and
//! written out once the terminal is restored.

use std::fs::File;
use std::io::{self, Read, Seek, Stdout, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

use crossterm::cursor::{Hide, Show};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

static ACTIVE: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();
static STDERR: Mutex<Option<Captured>> = Mutex::new(None);

/// Owns the terminal in UI mode; dropping it restores the terminal.
pub struct TerminalGuard {
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    pub fn enter() -> io::Result<Self> {
        install_panic_hook();
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let terminal = (|| {
            execute!(
                io::stdout(),
                EnterAlternateScreen,
                Hide,
                Clear(ClearType::All)
            )?;
            Terminal::new(CrosstermBackend::new(io::stdout()))
        })();
        match terminal {
            Ok(terminal) => {
                capture_stderr();
                Ok(TerminalGuard { terminal })
            }
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Whether the UI owns the terminal (false once anything restored it).
pub fn is_active() -> bool {
    ACTIVE.load(Ordering::SeqCst)
}

/// Leaves the alternate screen, shows the cursor, restores the terminal
/// modes saved by raw mode, and gives stderr back. Idempotent.
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = execute!(io::stdout(), LeaveAlternateScreen, Show);
        let _ = disable_raw_mode();
        let _ = io::stdout().flush();
        release_stderr();
    }
}

fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

struct Captured {
    /// The real stderr.
    saved: OwnedFd,
    file: File,
}

fn capture_stderr() {
    // SAFETY: memfd_create takes a NUL-terminated name and flags; it returns
    // a new fd or -1.
    let fd = unsafe { libc::memfd_create(c"mdt-stderr".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return;
    }
    // SAFETY: `fd` was just returned to us and nothing else owns it.
    let file = unsafe { File::from_raw_fd(fd) };
    // SAFETY: dup of fd 2 returns a new fd (or -1) that we then own.
    let saved = unsafe { libc::dup(libc::STDERR_FILENO) };
    if saved < 0 {
        return;
    }
    // SAFETY: `saved` is a new fd that nothing else owns.
    let saved = unsafe { OwnedFd::from_raw_fd(saved) };
    let _ = io::stderr().flush();
    // SAFETY: dup2 between two open fds; fd 2 is replaced atomically.
    if unsafe { libc::dup2(file.as_raw_fd(), libc::STDERR_FILENO) } < 0 {
        return;
    }
    *STDERR.lock().unwrap_or_else(|e| e.into_inner()) = Some(Captured { saved, file });
}

fn release_stderr() {
    let Some(mut c) = STDERR.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    // SAFETY: dup2 between two open fds we own (the saved stderr, fd 2).
    unsafe { libc::dup2(c.saved.as_raw_fd(), libc::STDERR_FILENO) };
    let mut text = Vec::new();
    if c.file.rewind().is_ok() && c.file.read_to_end(&mut text).is_ok() && !text.is_empty() {
        let _ = io::stderr().write_all(&text);
    }
}
