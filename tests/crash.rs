//! The crash fixture (fixtures/crash), groundwork for crash forensics: on every toolchain of
//! the matrix, each mode really dies of its map error, with the runtime's own exit status (2)
//! and crash text, within seconds. No BPF: this checks the fixture, which the forensics tests
//! will trace.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::for_jobs;

const MODES: &[(&str, &str)] = &[
    ("writes", "fatal error: concurrent map writes"),
    ("read", "fatal error: concurrent map read and map write"),
    (
        "iterate",
        "fatal error: concurrent map iteration and map write",
    ),
];

use common::plain_and_noswiss_jobs as jobs;

#[test]
fn each_mode_dies_of_its_map_error() {
    for_jobs("each_mode_dies_of_its_map_error", jobs(), |tc, v| {
        let bin = common::build_fixture("crash", tc, v);
        for (mode, message) in MODES {
            let t0 = Instant::now();
            let out = common::output_retrying(
                Command::new(&bin).args(["-mode", mode, "-timeout", "20s"]),
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{tc} {v} {mode}: exit {:?}\n{stderr}",
                out.status
            );
            let first = stderr.lines().find(|l| l.starts_with("fatal error:"));
            assert_eq!(first, Some(*message), "{tc} {v} {mode}:\n{stderr}");
            // The goroutine that noticed is in the crash text: one of the fixture's two.
            assert!(
                stderr.contains("main.assigner")
                    || stderr.contains("main.deleter")
                    || stderr.contains("main.reader")
                    || stderr.contains("main.iterator"),
                "{tc} {v} {mode}: no fixture goroutine in the crash text\n{stderr}"
            );
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "{tc} {v} {mode}: {:?}",
                t0.elapsed()
            );
        }
    });
}
