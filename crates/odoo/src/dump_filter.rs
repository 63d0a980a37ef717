//! The line filter between `dump.sql` and psql. psql itself runs in
//! `\restrict` mode (every meta-command refused), so this is the earlier,
//! clearer layer: a line starting with a backslash outside COPY data stops
//! the restore with its line number before psql sees it, except the dump's
//! own `\restrict`/`\unrestrict` lines (current pg_dump writes them), which
//! become empty lines so psql's line numbers stay the dump's.
//!
//! It streams: a line is never held whole, only its first few bytes (to
//! classify it) and its last few (to see a `COPY ... FROM stdin;`), so a
//! multi-megabyte line costs nothing. A meta-command in the middle of a line
//! (`SELECT 1; \! ls`) passes here and is refused by psql's restricted mode.

use crate::error::{OdooError, Result};

/// Bytes of a command name kept for the refusal's message.
const COMMAND_LEN: usize = 16;
/// Bytes kept from the end of a line to recognise `FROM stdin;`.
const TAIL_LEN: usize = 24;

/// State carried from one chunk of `dump.sql` to the next.
#[derive(Debug, Default)]
pub(crate) struct DumpFilter {
    /// Number of the line being read (1-based), counted in the dump.
    line: u64,
    /// Inside the data of a `COPY ... FROM stdin;` (ends at a line `\.`).
    in_copy: bool,
    state: LineState,
    /// First bytes of a SQL line after leading white space (up to 5, for
    /// `COPY `), or of a COPY data line (up to 3, for `\.`).
    head: Vec<u8>,
    /// Last bytes of the line.
    tail: Vec<u8>,
    /// Whether the current line has any byte at all (`tail` may be emptied).
    line_len: u64,
    /// `\` and the command name of a line that starts with a backslash.
    command: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum LineState {
    /// Only white space so far (emitted as it comes).
    #[default]
    Blank,
    /// A backslash started the line: collecting the command name.
    Command,
    /// An ordinary line: bytes go through.
    Pass,
    /// The dump's own `\restrict`/`\unrestrict` line: bytes are dropped.
    Drop,
}

impl DumpFilter {
    pub(crate) fn new() -> Self {
        Self {
            line: 1,
            ..Self::default()
        }
    }

    /// Filters one chunk into `out` (appended).
    pub(crate) fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        while !input.is_empty() {
            match input.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.take(&input[..end], out)?;
                    self.end_line()?;
                    out.push(b'\n');
                    input = &input[end + 1..];
                }
                None => {
                    self.take(input, out)?;
                    input = &[];
                }
            }
        }
        Ok(())
    }

    /// The end of the dump (a last line without a newline).
    pub(crate) fn finish(&mut self) -> Result<()> {
        if self.line_len > 0 {
            self.end_line()?;
        }
        Ok(())
    }

    /// Part of a line, without its newline.
    fn take(&mut self, mut segment: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if segment.is_empty() {
            return Ok(());
        }
        self.line_len += segment.len() as u64;
        keep_tail(&mut self.tail, segment);
        if self.in_copy {
            let room = 3usize.saturating_sub(self.head.len());
            self.head
                .extend_from_slice(&segment[..room.min(segment.len())]);
            out.extend_from_slice(segment);
            return Ok(());
        }
        while !segment.is_empty() {
            match self.state {
                LineState::Blank => {
                    let blank = segment
                        .iter()
                        .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\x0c'))
                        .count();
                    out.extend_from_slice(&segment[..blank]);
                    segment = &segment[blank..];
                    match segment.first() {
                        Some(b'\\') => self.state = LineState::Command,
                        Some(_) => self.state = LineState::Pass,
                        None => {}
                    }
                }
                LineState::Command => {
                    let room = (COMMAND_LEN + 1).saturating_sub(self.command.len());
                    let name_len = segment
                        .iter()
                        .take(room)
                        .position(|b| b.is_ascii_whitespace())
                        .unwrap_or(room.min(segment.len()));
                    self.command.extend_from_slice(&segment[..name_len]);
                    segment = &segment[name_len..];
                    if !segment.is_empty() || self.command.len() > COMMAND_LEN {
                        // The name is complete: decide now, before anything of
                        // the line reaches psql.
                        self.decide_command()?;
                    }
                }
                LineState::Pass => {
                    let room = 5usize.saturating_sub(self.head.len());
                    self.head
                        .extend_from_slice(&segment[..room.min(segment.len())]);
                    out.extend_from_slice(segment);
                    segment = &[];
                }
                LineState::Drop => segment = &[],
            }
        }
        Ok(())
    }

    /// A backslash line may only be the dump's own `\restrict KEY` or
    /// `\unrestrict KEY`: those are dropped (ours stays in force), anything
    /// else stops the restore.
    fn decide_command(&mut self) -> Result<()> {
        if matches!(self.command.as_slice(), b"\\restrict" | b"\\unrestrict") {
            self.state = LineState::Drop;
            Ok(())
        } else {
            Err(OdooError::UnsafeDump {
                line: self.line,
                command: String::from_utf8_lossy(&self.command).into_owned(),
            })
        }
    }

    fn end_line(&mut self) -> Result<()> {
        if self.in_copy {
            if matches!(self.head.as_slice(), b"\\." | b"\\.\r") && self.line_len <= 3 {
                self.in_copy = false;
            }
        } else {
            match self.state {
                LineState::Command => self.decide_command()?,
                LineState::Pass if starts_copy_from_stdin(&self.head, &self.tail) => {
                    self.in_copy = true;
                }
                _ => {}
            }
        }
        self.line += 1;
        self.state = LineState::Blank;
        self.head.clear();
        self.tail.clear();
        self.command.clear();
        self.line_len = 0;
        Ok(())
    }
}

fn keep_tail(tail: &mut Vec<u8>, segment: &[u8]) {
    if segment.len() >= TAIL_LEN {
        tail.clear();
        tail.extend_from_slice(&segment[segment.len() - TAIL_LEN..]);
    } else {
        tail.extend_from_slice(segment);
        if tail.len() > TAIL_LEN {
            tail.drain(..tail.len() - TAIL_LEN);
        }
    }
}

/// `COPY ... FROM stdin;` as pg_dump writes it: one line, `COPY` first.
fn starts_copy_from_stdin(head: &[u8], tail: &[u8]) -> bool {
    let copy =
        head.len() == 5 && head[..4].eq_ignore_ascii_case(b"COPY") && head[4].is_ascii_whitespace();
    let end = tail.trim_ascii_end();
    let from_stdin = b"from stdin;";
    copy && end.len() > from_stdin.len()
        && end[end.len() - from_stdin.len()..].eq_ignore_ascii_case(from_stdin)
        && end[end.len() - from_stdin.len() - 1].is_ascii_whitespace()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8], chunk: usize) -> Result<Vec<u8>> {
        let mut filter = DumpFilter::new();
        let mut out = Vec::new();
        for part in input.chunks(chunk.max(1)) {
            filter.push(part, &mut out)?;
        }
        filter.finish()?;
        Ok(out)
    }

    /// Where the filter refuses `input`, the same in every chunking.
    fn refused_at(input: &[u8]) -> Option<(u64, String)> {
        let outcomes: Vec<Option<(u64, String)>> = [1, 2, 7, 4096]
            .into_iter()
            .map(|chunk| match run(input, chunk) {
                Err(OdooError::UnsafeDump { line, command }) => Some((line, command)),
                _ => None,
            })
            .collect();
        assert!(outcomes.windows(2).all(|w| w[0] == w[1]), "{outcomes:?}");
        outcomes.into_iter().next().flatten()
    }

    #[test]
    fn plain_sql_passes_unchanged_in_any_chunking() -> Result<()> {
        let sql = b"-- header\nSET x = 1;\n\nCREATE TABLE t (a text);\nSELECT 'a\\b';\n  SELECT 1; \\! mid-line passes (psql refuses it)\nlast line";
        for chunk in [1, 3, 64, 4096] {
            assert_eq!(run(sql, chunk)?, sql.to_vec());
        }
        Ok(())
    }

    #[test]
    fn the_dumps_own_restrict_lines_become_empty_lines() -> Result<()> {
        let sql = b"--\n\\restrict abc123\nSELECT 1;\n\\unrestrict abc123\nSELECT 2;\n";
        for chunk in [1, 5, 4096] {
            assert_eq!(run(sql, chunk)?, b"--\n\nSELECT 1;\n\nSELECT 2;\n".to_vec());
        }
        Ok(())
    }

    #[test]
    fn other_backslash_lines_are_refused_with_their_line() {
        for (sql, line, command) in [
            (&b"SELECT 1;\n\\! touch /tmp/x\n"[..], 2, "\\!"),
            (b"\\c postgres\n", 1, "\\c"),
            (b"\\connect other\n", 1, "\\connect"),
            (b"SELECT 1;\n   \\o /tmp/out\n", 2, "\\o"),
            (b"\t\\copy t to '/tmp/x'\n", 1, "\\copy"),
            (b"SELECT 'x'\n\\gexec\n", 2, "\\gexec"),
            (b"\\set x 1\n", 1, "\\set"),
            (b"\\restrictx\n", 1, "\\restrictx"),
            (b"\\!", 1, "\\!"),
            (b"\\", 1, "\\"),
        ] {
            assert_eq!(
                refused_at(sql),
                Some((line, command.to_owned())),
                "{}",
                String::from_utf8_lossy(sql)
            );
        }
    }

    #[test]
    fn copy_data_may_start_with_backslashes() -> Result<()> {
        let sql = b"COPY public.t (a, b) FROM stdin;\n\\N\t1\n\\\\x\t2\n\\.\nSELECT 1;\n";
        for chunk in [1, 2, 4096] {
            assert_eq!(run(sql, chunk)?, sql.to_vec());
        }
        let crlf = b"COPY t FROM stdin;\r\n\\N\r\n\\.\r\nSELECT 1;\r\n";
        assert_eq!(run(crlf, 1)?, crlf.to_vec());
        // After the end of the data, backslash lines are commands again.
        assert_eq!(
            refused_at(b"COPY t (a) FROM stdin;\n\\N\n\\.\n\\! touch /tmp/x\n"),
            Some((4, "\\!".to_owned()))
        );
        // `\.` only ends the data on a line of its own.
        assert_eq!(
            run(b"COPY t FROM stdin;\n\\.x\n\\! data\n\\.\n", 1)?,
            b"COPY t FROM stdin;\n\\.x\n\\! data\n\\.\n".to_vec()
        );
        Ok(())
    }

    #[test]
    fn only_a_one_line_copy_from_stdin_starts_data() {
        for sql in [
            &b"SELECT 'COPY t FROM stdin;';\n\\N\n"[..],
            b"COPYt FROM stdin;\n\\N\n",
            b"COPY t FROM stdin\n\\N\n",
            b"COPY t TO stdout;\n\\N\n",
            b"COPY t FROMstdin;\n\\N\n",
        ] {
            assert!(
                refused_at(sql).is_some(),
                "{}",
                String::from_utf8_lossy(sql)
            );
        }
        assert!(run(b"copy t from STDIN;  \n\\N\n", 3).is_ok());
    }

    #[test]
    fn very_long_lines_stream() -> Result<()> {
        let mut sql = b"SELECT '".to_vec();
        sql.extend(std::iter::repeat_n(b'x', 3 << 20));
        sql.extend_from_slice(b"';\n");
        let mut filter = DumpFilter::new();
        let mut out = Vec::new();
        for part in sql.chunks(64 << 10) {
            out.clear();
            filter.push(part, &mut out)?;
            assert_eq!(out.len(), part.len(), "every chunk goes straight through");
            assert!(filter.tail.len() <= TAIL_LEN && filter.head.len() <= 5);
        }
        let mut long_command = b"\\".to_vec();
        long_command.extend(std::iter::repeat_n(b'x', 1 << 20));
        assert_eq!(
            refused_at(&long_command).map(|(line, c)| (line, c.len())),
            Some((1, COMMAND_LEN + 1))
        );
        let mut blank_then_command = vec![b' '; 1 << 20];
        blank_then_command.extend_from_slice(b"\\! x\n");
        assert_eq!(refused_at(&blank_then_command), Some((1, "\\!".to_owned())));
        Ok(())
    }
}
