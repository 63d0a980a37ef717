//! What psql wrote on stderr, read as it streams (a dump can print without
//! end): the first error it reported, as `psql:<stdin>:<line>: ERROR:
//! <SQLSTATE>: ...` (with `VERBOSITY=verbose`) or `psql:<stdin>:<line>: error:
//! ...` (psql's own refusal), and the end of the text for operators.
//!
//! The dump can make PostgreSQL print any text, lines like these included
//! (a multi-line `RAISE WARNING` before the real error), so what is parsed
//! here is only ever a line number and a five-character code: at worst a
//! customer misleads their own error message.

/// Bytes of each line kept for parsing; bytes of the text kept for operators.
const LINE_KEEP: usize = 512;
const TAIL_KEEP: usize = 4000;

/// The first error psql reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReportedError {
    /// psql's input line (it counts the lines of its stdin).
    pub line: u64,
    pub sqlstate: Option<String>,
    /// psql's own error (`error:`), not the server's (`ERROR:`).
    pub client: bool,
    /// The start of psql's own message, for client errors.
    pub client_text: String,
}

#[derive(Debug, Default)]
pub(crate) struct PsqlLog {
    line: Vec<u8>,
    first_error: Option<ReportedError>,
    tail: Vec<u8>,
}

impl PsqlLog {
    pub(crate) fn push(&mut self, mut bytes: &[u8]) {
        self.keep_tail(bytes);
        while !bytes.is_empty() {
            let end = bytes.iter().position(|&b| b == b'\n');
            let part = &bytes[..end.unwrap_or(bytes.len())];
            let room = LINE_KEEP.saturating_sub(self.line.len());
            self.line.extend_from_slice(&part[..room.min(part.len())]);
            match end {
                Some(end) => {
                    self.end_line();
                    bytes = &bytes[end + 1..];
                }
                None => bytes = &[],
            }
        }
    }

    /// The first error and the end of the text.
    pub(crate) fn finish(mut self) -> (Option<ReportedError>, String) {
        self.end_line();
        let text = String::from_utf8_lossy(&self.tail).trim().to_owned();
        (self.first_error, text)
    }

    fn end_line(&mut self) {
        if self.first_error.is_none() {
            self.first_error = parse_line(&String::from_utf8_lossy(&self.line));
        }
        self.line.clear();
    }

    fn keep_tail(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > TAIL_KEEP {
            self.tail.drain(..self.tail.len() - TAIL_KEEP);
        }
    }
}

fn parse_line(line: &str) -> Option<ReportedError> {
    let rest = line.strip_prefix("psql:<stdin>:")?;
    let (number, rest) = rest.split_once(": ")?;
    let line: u64 = number.parse().ok()?;
    if let Some(message) = ["ERROR:  ", "FATAL:  ", "PANIC:  "]
        .iter()
        .find_map(|level| rest.strip_prefix(level))
    {
        let sqlstate = message
            .get(..6)
            .filter(|code| {
                code.ends_with(':')
                    && code[..5]
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
            })
            .map(|code| code[..5].to_owned());
        return Some(ReportedError {
            line,
            sqlstate,
            client: false,
            client_text: String::new(),
        });
    }
    let message = rest.strip_prefix("error: ")?;
    Some(ReportedError {
        line,
        sqlstate: None,
        client: true,
        client_text: message.chars().take(120).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &str, chunk: usize) -> (Option<ReportedError>, String) {
        let mut log = PsqlLog::default();
        for part in text.as_bytes().chunks(chunk) {
            log.push(part);
        }
        log.finish()
    }

    #[test]
    fn finds_the_first_error_and_its_code() {
        let text = "psql:<stdin>:4: WARNING:  01000: w\n\
                    psql:<stdin>:12: ERROR:  42501: permission denied to set role \"postgres\"\n\
                    LOCATION:  x\n\
                    psql:<stdin>:13: ERROR:  42601: later\n";
        for chunk in [1, 5, 4096] {
            let (error, tail) = scan(text, chunk);
            assert_eq!(
                error,
                Some(ReportedError {
                    line: 12,
                    sqlstate: Some("42501".into()),
                    client: false,
                    client_text: String::new()
                })
            );
            assert!(tail.ends_with("later"));
        }
    }

    #[test]
    fn psql_refusals_are_client_errors() {
        let (error, _) = scan(
            "psql:<stdin>:3: error: backslash commands are restricted; only \\unrestrict is allowed\n",
            7,
        );
        let error = error.map(|e| (e.line, e.client, e.sqlstate));
        assert_eq!(error, Some((3, true, None)));
        let (none, tail) = scan(
            "psql: error: connection to server at \"h\" failed: FATAL:  password authentication failed\n",
            4096,
        );
        assert_eq!(none, None);
        assert!(tail.contains("password authentication failed"));
    }

    #[test]
    fn memory_stays_bounded() {
        let mut log = PsqlLog::default();
        for _ in 0..1000 {
            log.push(&[b'x'; 10_000]);
        }
        log.push(b"\npsql:<stdin>:9: ERROR:  P0001: boom\n");
        assert!(log.line.len() <= LINE_KEEP && log.tail.len() <= TAIL_KEEP);
        assert_eq!(
            log.finish().0.and_then(|e| e.sqlstate),
            Some("P0001".into())
        );
    }

    #[test]
    fn odd_codes_are_not_codes() {
        assert_eq!(
            parse_line("psql:<stdin>:2: ERROR:  syntax error at end").and_then(|e| e.sqlstate),
            None
        );
        assert_eq!(parse_line("psql:<stdin>:x: ERROR:  42601: y"), None);
    }
}
