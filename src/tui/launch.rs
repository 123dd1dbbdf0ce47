//! `mdt trace -- CMD` under the UI: the program must neither write over the
//! screen nor read the keys. While mdt forks it, its standard input is
//! /dev/null and its output a pipe; mdt keeps the last [`KEEP`] bytes of
//! that output and prints them once the UI is gone.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Bytes of the program's output kept for the end.
pub const KEEP: usize = 64 * 1024;

#[derive(Default)]
struct Kept {
    bytes: VecDeque<u8>,
    dropped: u64,
    eof: bool,
}

/// The program's output, read by a thread of its own (the program never
/// blocks on a full pipe).
pub struct ChildOutput {
    kept: Arc<(Mutex<Kept>, Condvar)>,
}

/// Standard input, output and error redirected for the fork; put back by
/// [`Redirected::restore`] (or on drop).
pub struct Redirected {
    saved: Option<[OwnedFd; 3]>,
    output: ChildOutput,
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn dup(fd: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on an fd returns a new fd (or -1) that we own.
    let new = check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) })?;
    // SAFETY: `new` was just returned to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

impl ChildOutput {
    /// Points fds 0, 1, 2 at /dev/null and a pipe until `restore`.
    pub fn redirect() -> io::Result<Redirected> {
        let null = File::open("/dev/null")?;
        let mut fds = [0; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
        // SAFETY: both fds were just returned to us and nothing else owns them.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let saved = [dup(0)?, dup(1)?, dup(2)?];
        let mut redirected = Redirected {
            saved: Some(saved),
            output: ChildOutput {
                kept: Arc::default(),
            },
        };
        for (fd, from) in [
            (0, null.as_raw_fd()),
            (1, write.as_raw_fd()),
            (2, write.as_raw_fd()),
        ] {
            // SAFETY: dup2 between open fds; `fd` is replaced atomically.
            if let Err(e) = check(unsafe { libc::dup2(from, fd) }) {
                redirected.put_back();
                return Err(e);
            }
        }
        let kept = redirected.output.kept.clone();
        std::thread::spawn(move || keep(File::from(read), &kept));
        Ok(redirected)
    }

    /// Waits a little for the end of the output (the program exited),
    /// then returns what was kept and how many bytes before it were dropped.
    pub fn take(self) -> (Vec<u8>, u64) {
        let (lock, cv) = &*self.kept;
        let kept = lock.lock().unwrap_or_else(|e| e.into_inner());
        let (mut kept, _) = cv
            .wait_timeout_while(kept, Duration::from_millis(500), |k| !k.eof)
            .unwrap_or_else(|e| e.into_inner());
        let bytes = kept.bytes.drain(..).collect();
        (bytes, kept.dropped)
    }
}

fn keep(mut pipe: File, kept: &(Mutex<Kept>, Condvar)) {
    let mut buf = [0u8; 8192];
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut k = kept.0.lock().unwrap_or_else(|e| e.into_inner());
        k.bytes.extend(&buf[..n]);
        let over = k.bytes.len().saturating_sub(KEEP);
        k.bytes.drain(..over);
        k.dropped += over as u64;
    }
    kept.0.lock().unwrap_or_else(|e| e.into_inner()).eof = true;
    kept.1.notify_all();
}

impl Redirected {
    fn put_back(&mut self) {
        if let Some(saved) = self.saved.take() {
            for (fd, s) in saved.iter().enumerate() {
                // SAFETY: dup2 between open fds (our saved copies onto 0, 1, 2).
                unsafe { libc::dup2(s.as_raw_fd(), fd as libc::c_int) };
            }
        }
    }

    /// Puts fds 0, 1, 2 back (the program keeps its copies).
    pub fn restore(mut self) -> ChildOutput {
        self.put_back();
        ChildOutput {
            kept: self.output.kept.clone(),
        }
    }
}

impl Drop for Redirected {
    fn drop(&mut self) {
        self.put_back();
    }
}

/// Prints the program's kept output on stderr, after the UI.
pub fn print(output: ChildOutput) {
    use std::io::Write;
    let (bytes, dropped) = output.take();
    if bytes.is_empty() {
        return;
    }
    let mut err = io::stderr().lock();
    let _ = if dropped > 0 {
        writeln!(
            err,
            "mdt: the program's output (its last {} bytes):",
            bytes.len()
        )
    } else {
        writeln!(err, "mdt: the program's output:")
    };
    let _ = err.write_all(&bytes);
    if !bytes.ends_with(b"\n") {
        let _ = writeln!(err);
    }
}
