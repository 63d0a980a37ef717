//! A stub HTTP upstream on 127.0.0.1: answers every request with 200 and a
//! body naming itself and echoing the request head, so a test can see where
//! nginx sent a request and with which headers.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

/// Starts the stub on a free port (a thread per test process) and returns the port.
pub fn start(name: &'static str) -> u16 {
    start_with_headers(name, "")
}

/// The same, its answers carrying `headers` too (`Name: value\r\n` lines),
/// as admin's and portal's carry their own security headers.
pub fn start_with_headers(name: &'static str, headers: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind stub upstream");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&stream);
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let body = format!("stub={name}\n{head}");
                let _ = write!(
                    &stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}
