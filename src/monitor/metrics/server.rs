//! A minimal HTTP/1.1 server for `GET /metrics`, on its own thread: one
//! connection at a time, `Connection: close`, bounded reads with a timeout.
//! Prometheus scrapes are small and rare; nothing here touches tracing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use prometheus::{Encoder, Registry, TextEncoder};

/// Parses `--prometheus ADDR`: `HOST:PORT`, `[V6]:PORT`, `:PORT` or `PORT`
/// (those two bind 127.0.0.1). A port is required.
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let port_only = s.strip_prefix(':').unwrap_or(s);
    if !port_only.is_empty() && port_only.bytes().all(|b| b.is_ascii_digit()) {
        let port: u16 = port_only
            .parse()
            .map_err(|_| format!("port {port_only} is out of range (1-65535)"))?;
        return nonzero(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return nonzero(addr);
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err("expected HOST:PORT, :PORT or PORT (e.g. 127.0.0.1:9464)".into());
    };
    if port.parse::<u16>().is_err() {
        return Err(format!(
            "'{port}' is not a port number (e.g. 127.0.0.1:9464)"
        ));
    }
    if host.is_empty() {
        return Err("expected HOST:PORT, :PORT or PORT (e.g. 127.0.0.1:9464)".into());
    }
    let addr = (host, port.parse::<u16>().unwrap_or(0))
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{host}': {e}"))?
        .next()
        .ok_or_else(|| format!("'{host}' has no address"))?;
    nonzero(addr)
}

fn nonzero(addr: SocketAddr) -> Result<SocketAddr, String> {
    if addr.port() == 0 {
        return Err("a port is required (e.g. 127.0.0.1:9464)".into());
    }
    Ok(addr)
}

/// The running server; stops (and joins its thread) on drop.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (so that a port in use fails before tracing starts).
    pub fn bind(addr: SocketAddr) -> Result<TcpListener> {
        let listener = TcpListener::bind(addr)
            .with_context(|| format!("--prometheus {addr}: cannot listen"))?;
        Ok(listener)
    }

    /// Serves `registry` on `listener` until dropped.
    pub fn start(listener: TcpListener, registry: Registry) -> Result<Self> {
        let addr = listener
            .local_addr()
            .context("--prometheus: no local address")?;
        listener
            .set_nonblocking(true)
            .context("--prometheus: cannot configure the listener")?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("mdt-metrics".into())
            .spawn(move || serve(&listener, &registry, &flag))
            .context("--prometheus: cannot start the server thread")?;
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: &TcpListener, registry: &Registry, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = handle(stream, registry);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Reads one request (headers only, at most 16 KiB) and answers it.
fn handle(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        if buf.len() > 16 * 1024 {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"headers too large\n",
                false,
            );
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let mut parts = text.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let head = method == "HEAD";
    if method != "GET" && !head {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"only GET\n",
            head,
        );
    }
    match path {
        "/metrics" => {
            let mut body = Vec::new();
            let encoder = TextEncoder::new();
            if let Err(e) = encoder.encode(&registry.gather(), &mut body) {
                let msg = format!("encoding metrics: {e}\n");
                return respond(&mut stream, "500 Internal Server Error", "text/plain", msg.as_bytes(), head);
            }
            respond(&mut stream, "200 OK", encoder.format_type(), &body, head)
        }
        "/" => respond(
            &mut stream,
            "200 OK",
            "text/html; charset=utf-8",
            b"<html><head><title>mdt</title></head><body><h1>mdt</h1><p><a href=\"/metrics\">Metrics</a></p></body></html>\n",
            head,
        ),
        _ => respond(&mut stream, "404 Not Found", "text/plain", b"not found: try /metrics\n", head),
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    ctype: &str,
    body: &[u8],
    head: bool,
) -> std::io::Result<()> {
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes())?;
    if !head {
        stream.write_all(body)?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_listen_addr(":9464").unwrap(),
            "127.0.0.1:9464".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr("9464").unwrap(),
            "127.0.0.1:9464".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr("0.0.0.0:80").unwrap(),
            "0.0.0.0:80".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr("[::1]:9464").unwrap(),
            "[::1]:9464".parse().unwrap()
        );
        assert_eq!(parse_listen_addr("localhost:9464").unwrap().port(), 9464);
        assert!(parse_listen_addr("99999").is_err());
        assert!(parse_listen_addr("localhost").is_err());
        assert!(parse_listen_addr("host:port").is_err());
        assert!(parse_listen_addr("").is_err());
        assert!(parse_listen_addr("0").is_err());
    }

    #[test]
    fn serves_metrics_and_404() {
        let registry = Registry::new();
        let c = prometheus::IntCounter::new("x_total", "X.").unwrap();
        registry.register(Box::new(c.clone())).unwrap();
        c.inc_by(3);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = MetricsServer::start(listener, registry).unwrap();
        let get = |path: &str| {
            let mut s = TcpStream::connect(server.addr()).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let r = get("/metrics");
        assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
        assert!(r.contains("text/plain; version=0.0.4"), "{r}");
        assert!(r.contains("x_total 3"), "{r}");
        assert!(get("/nope").starts_with("HTTP/1.1 404"));
    }
}
