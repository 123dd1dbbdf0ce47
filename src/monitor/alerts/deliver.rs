//! Alert delivery off the event path: a worker thread takes notices from a
//! bounded queue (the session never waits for it: a full queue drops the
//! notice and counts a failure) and POSTs them to the webhook (with a
//! timeout and retries) and/or runs `--alert-exec` with the alert JSON on
//! its standard input (no shell, with a timeout). Failures are counted on
//! the [`AlertBoard`] and written to stderr (unless the TUI owns the
//! terminal).

use std::io::Write;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{AlertBoard, Notice};

/// Webhook body: the alert JSON, or Slack's `{"text": ...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WebhookFormat {
    Json,
    Slack,
}

#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: String,
    pub format: WebhookFormat,
    /// Per attempt (connect, send, answer).
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
}

#[derive(Debug, Clone)]
pub struct Exec {
    /// Program and arguments (no shell).
    pub argv: Vec<String>,
    pub timeout: Duration,
}

/// Checks a `--webhook` URL: http or https, with a host.
pub fn parse_webhook_url(s: &str) -> Result<String, String> {
    let uri: ureq::http::Uri = s.parse().map_err(|e| format!("not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(format!(
                "unsupported scheme '{other}': use http:// or https://"
            ))
        }
        None => return Err("missing http:// or https://".into()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    Ok(s.to_string())
}

/// Splits `--alert-exec CMD` on whitespace (no shell, no quoting).
pub fn parse_exec(s: &str) -> Result<Vec<String>, String> {
    let argv: Vec<String> = s.split_whitespace().map(str::to_string).collect();
    if argv.is_empty() {
        return Err("empty command".into());
    }
    Ok(argv)
}

/// Notices queued for delivery before new ones are dropped.
const QUEUE: usize = 256;

pub struct Delivery {
    tx: Option<SyncSender<Arc<Notice>>>,
    thread: Option<JoinHandle<()>>,
    /// Asks the worker to stop retrying (exit).
    hurry: Arc<AtomicBool>,
    board: Arc<AlertBoard>,
    print: bool,
}

struct Worker {
    webhook: Option<(Webhook, ureq::Agent)>,
    exec: Option<Exec>,
    board: Arc<AlertBoard>,
    hurry: Arc<AtomicBool>,
    print: bool,
}

impl Delivery {
    /// Starts the worker. `print`: failures also go to stderr.
    pub fn start(
        webhook: Option<Webhook>,
        exec: Option<Exec>,
        board: Arc<AlertBoard>,
        print: bool,
    ) -> Result<Self> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let hurry = Arc::new(AtomicBool::new(false));
        let webhook = webhook.map(|w| {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(w.timeout))
                .http_status_as_error(false)
                .max_redirects(0)
                .user_agent(concat!("mdt/", env!("CARGO_PKG_VERSION")))
                .build()
                .into();
            (w, agent)
        });
        let worker = Worker {
            webhook,
            exec,
            board: board.clone(),
            hurry: hurry.clone(),
            print,
        };
        let thread = std::thread::Builder::new()
            .name("mdt-alerts".into())
            .spawn(move || worker.run(rx))
            .context("cannot start the alert delivery thread")?;
        Ok(Delivery {
            tx: Some(tx),
            thread: Some(thread),
            hurry,
            board,
            print,
        })
    }

    /// Queues a notice; never blocks.
    pub fn send(&self, n: Arc<Notice>) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(n) {
            Ok(()) => {}
            Err(TrySendError::Full(n) | TrySendError::Disconnected(n)) => {
                let line = format!("alert delivery queue full: dropped {}", n.line());
                if self.print {
                    eprintln!("mdt: {line}");
                }
                self.board.note_failure(line);
            }
        }
    }

    /// Delivers what is queued, waiting at most `limit` (no retries once
    /// the limit is near); what is left is counted as failed.
    pub fn finish(&mut self, limit: Duration) {
        self.tx.take();
        let deadline = Instant::now() + limit;
        let Some(thread) = self.thread.take() else {
            return;
        };
        while !thread.is_finished() {
            if Instant::now() >= deadline {
                self.hurry.store(true, Ordering::SeqCst);
                let line = "alert delivery still running at exit: given up".to_string();
                if self.print {
                    eprintln!("mdt: {line}");
                }
                self.board.note_failure(line);
                return; // the thread ends with the process
            }
            if deadline.saturating_duration_since(Instant::now()) < limit / 2 {
                self.hurry.store(true, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = thread.join();
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        self.tx.take();
        self.hurry.store(true, Ordering::SeqCst);
    }
}

impl Worker {
    fn run(self, rx: Receiver<Arc<Notice>>) {
        for n in rx {
            if let Some((w, agent)) = &self.webhook {
                let result = self.post(w, agent, &n);
                self.outcome("webhook", &w.url, &n, result);
            }
            if let Some(e) = &self.exec {
                let result = run_exec(e, &n);
                self.outcome("alert-exec", &e.argv[0], &n, result);
            }
        }
    }

    fn outcome(&self, what: &str, target: &str, n: &Notice, result: Result<()>) {
        match result {
            Ok(()) => {
                self.board.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let line = format!("{what} {target}: {} not delivered: {e:#}", n.record_type());
                if self.print {
                    eprintln!("mdt: {line}");
                }
                self.board.note_failure(line);
            }
        }
    }

    fn post(&self, w: &Webhook, agent: &ureq::Agent, n: &Notice) -> Result<()> {
        let body = match w.format {
            WebhookFormat::Json => n.to_json(),
            WebhookFormat::Slack => n.slack(),
        };
        let body = serde_json::to_vec(&body)?;
        let mut attempt = 0;
        loop {
            let result = agent
                .post(&w.url)
                .header("Content-Type", "application/json")
                .send(&body[..]);
            let err = match result {
                Ok(resp) if resp.status().is_success() => return Ok(()),
                Ok(resp) => anyhow::anyhow!("HTTP {}", resp.status()),
                Err(e) => anyhow::Error::new(e),
            };
            attempt += 1;
            if attempt > w.retries || self.hurry.load(Ordering::SeqCst) {
                return Err(err.context(format!(
                    "after {attempt} attempt{}",
                    if attempt == 1 { "" } else { "s" }
                )));
            }
            // 0.5 s, 1 s, 2 s, ... between attempts.
            std::thread::sleep(Duration::from_millis(500 << (attempt - 1).min(4)));
        }
    }
}

/// Runs the command with the alert JSON on stdin; its stdout goes to mdt's
/// stderr (stdout may be the JSON stream).
fn run_exec(e: &Exec, n: &Notice) -> Result<()> {
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .context("dup stderr")?;
    let mut child = Command::new(&e.argv[0])
        .args(&e.argv[1..])
        .env("MDT_ALERT_STATE", n.record_type())
        .env("MDT_ALERT_RULE", &n.rule.text)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(stderr))
        .spawn()
        .context("cannot start it")?;
    let mut body = serde_json::to_vec(&n.to_json())?;
    body.push(b'\n');
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is not an error.
        let _ = stdin.write_all(&body);
    }
    let deadline = Instant::now() + e.timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(());
            }
            bail!("{status}");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("still running after {:?}: killed", e.timeout);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_commands() {
        assert!(parse_webhook_url("http://127.0.0.1:9/hook").is_ok());
        assert!(parse_webhook_url("https://hooks.slack.com/services/T/B/X").is_ok());
        assert!(parse_webhook_url("ftp://x/y")
            .unwrap_err()
            .contains("scheme"));
        assert!(parse_webhook_url("localhost:80").is_err());
        assert!(parse_webhook_url("http://").is_err());
        assert!(parse_webhook_url("not a url").is_err());
        assert_eq!(
            parse_exec(" logger -t mdt ").unwrap(),
            vec!["logger", "-t", "mdt"]
        );
        assert!(parse_exec("  ").is_err());
    }
}
