//! Running one test body for many jobs (toolchains, toolchain × variant) at once: most of a
//! job is waiting for processes, so a few threads finish the matrix sooner. Every failure is
//! collected, and the test fails once with all of them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Name of the worker threads, whose panics are reported by [`run_all`], not as they happen.
const WORKER: &str = "matrix-worker";

/// Threads to use: the variable `var` if set to a number, else `default` (at least 1).
pub fn workers_from_env(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .max(1)
}

/// Runs `f` for every job on at most `workers` threads, collects each job's panic under its
/// `label`, and fails with all of them (`test`: the test's name, for the messages).
pub fn run_all<J: Sync>(
    test: &str,
    jobs: &[J],
    workers: usize,
    label: impl Fn(&J) -> String + Sync,
    f: impl Fn(&J) + Sync,
) {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let started = Instant::now();
    quiet_worker_panics();
    std::thread::scope(|s| {
        for _ in 0..workers.max(1).min(jobs.len()) {
            let worker = std::thread::Builder::new().name(WORKER.into());
            let spawned = worker.spawn_scoped(s, || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(job) = jobs.get(i) else { break };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(job)));
                if let Err(e) = r {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "panic".into());
                    failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(format!("--- {}:\n{msg}", label(job)));
                }
            });
            spawned.expect("spawn a worker thread");
        }
    });
    super::note(&format!(
        "{test}: {} jobs in {:.1}s",
        jobs.len(),
        started.elapsed().as_secs_f64()
    ));
    let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    if !failures.is_empty() {
        panic!(
            "{test}: {} of {} failed:\n{}",
            failures.len(),
            jobs.len(),
            failures.join("\n")
        );
    }
}

/// The workers' panics are collected and reported together by [`run_all`]: don't also print
/// each one (with a backtrace when RUST_BACKTRACE is set) as it happens.
fn quiet_worker_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() != Some(WORKER) {
                default(info);
            }
        }));
    });
}
