//! A minimal HTTP/1.1 client for loopback checks (GET with a Host header),
//! over plain TCP or any stream a test opened (TLS).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// `GET path` on 127.0.0.1:`port` with `Host: host`.
pub fn get(port: u16, host: &str, path: &str) -> std::io::Result<Response> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    exchange(stream, host, path)
}

/// `GET path` with `Host: host` over an open connection (plain or TLS),
/// read to its end.
pub fn exchange(stream: impl Read + Write, host: &str, path: &str) -> std::io::Result<Response> {
    exchange_with_headers(stream, host, path, "")
}

/// The same, the request carrying `headers` too (`Name: value\r\n` lines).
pub fn exchange_with_headers(
    mut stream: impl Read + Write,
    host: &str,
    path: &str,
    headers: &str,
) -> std::io::Result<Response> {
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\nAccept: */*\r\n\r\n"
    )?;
    stream.flush()?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => {}
        // A TLS peer that closes without close_notify, after its answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
    Ok(Response {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}
