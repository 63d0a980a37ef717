//! Feeding a customer's `dump.sql` to psql as the restore's guest. psql gets
//! an empty environment but the guest's connection (`env_clear`), no psqlrc
//! (`-X`), stops at the first error (`ON_ERROR_STOP`), names SQLSTATEs on
//! stderr (`VERBOSITY=verbose`), and reads `\restrict <random key>` first:
//! from there on it refuses every meta-command (`\!`, `\c`, `\o`, `\copy`,
//! `\gexec`, `\set`...) wherever it stands in a line. The dump streams from
//! the zip through [`DumpFilter`] in a blocking thread, counted against the
//! budget before each chunk is sent.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{ChildStderr, ChildStdin};
use tokio::sync::mpsc;

use crate::budget::Budget;
use crate::dump_filter::DumpFilter;
use crate::error::{OdooError, Result};
use crate::psql_log::PsqlLog;

/// Lines psql reads before the dump's first (the `\restrict` line): psql's
/// line numbers minus this are the dump's.
pub(crate) const PREAMBLE_LINES: u64 = 1;
const CHUNK: usize = 64 << 10;

/// One run of psql over the dump of a checked archive.
pub(crate) struct DumpRun {
    pub psql: PathBuf,
    /// The guest's libpq environment, all psql gets.
    pub env: Vec<(&'static str, String)>,
    pub archive: PathBuf,
    pub dump_index: usize,
    pub budget: Arc<Budget>,
}

enum Chunk {
    Data(Bytes),
    End,
}

enum Fed {
    /// All of the dump went in and stdin was closed.
    Done,
    /// psql stopped reading (it exited).
    PsqlGone,
    /// The feeder stopped early: stdin is still open, so psql can be killed
    /// before it sees an end of input (and runs the half statement it holds).
    Aborted(ChildStdin),
}

/// Runs psql over the dump; dropping the future kills psql.
pub(crate) async fn run_dump(run: DumpRun) -> Result<()> {
    let key = random_key();
    let mut child = tokio::process::Command::new(&run.psql)
        .env_clear()
        .envs(run.env)
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            "VERBOSITY=verbose",
            "-f",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| OdooError::io(&run.psql, e))?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| OdooError::io(&run.psql, std::io::Error::other("psql has no stdin")))?;
    let log = tokio::spawn(read_log(child.stderr.take()));
    let (tx, rx) = mpsc::channel::<Chunk>(4);
    let (archive, index, budget) = (run.archive, run.dump_index, Arc::clone(&run.budget));
    let feeder = tokio::task::spawn_blocking(move || feed(&archive, index, &key, &budget, &tx));
    let budget = run.budget;

    let mut writer = Box::pin(write_stdin(rx, stdin));
    let mut fed = None;
    let status = loop {
        tokio::select! {
            outcome = &mut writer, if fed.is_none() => match outcome {
                Fed::Aborted(stdin) => {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    drop(stdin);
                    return Err(match feeder.await? {
                        Err(refusal) => refusal,
                        Ok(()) => OdooError::InvalidArchive("dump.sql stopped midway".into()),
                    });
                }
                outcome => fed = Some(outcome),
            },
            status = child.wait() => break status.map_err(|e| OdooError::io(&run.psql, e))?,
        }
    };
    // psql is gone: the feeder's sends fail from here and it ends.
    drop(writer);
    let feeding = feeder.await?;
    let (reported, stderr) = log.await?.finish();
    feeding?;
    if status.success() {
        return match fed {
            Some(Fed::Done) => Ok(()),
            _ => Err(OdooError::ToolFailed {
                tool: "psql",
                status: status.to_string(),
                stderr: "psql ended before reading all of dump.sql".into(),
            }),
        };
    }
    Err(match reported {
        // The guest's temp_file_limit is the restore's byte limit.
        Some(error) if error.sqlstate.as_deref() == Some("53400") => budget.too_large(),
        Some(error) if !(error.client && error.client_text.contains("connection")) => {
            OdooError::DumpFailed {
                line: error
                    .line
                    .checked_sub(PREAMBLE_LINES)
                    .filter(|line| *line > 0),
                sqlstate: error.sqlstate,
                client_error: error.client,
                stderr,
            }
        }
        // No error at a line of the input: psql could not connect, or lost
        // the connection; not the dump's doing.
        _ => OdooError::ToolFailed {
            tool: "psql",
            status: status.to_string(),
            stderr,
        },
    })
}

/// Blocking: `\restrict <key>`, then the filtered dump, then `End`. An error
/// (refused line, limit, corrupt entry) returns without `End`.
fn feed(
    archive: &std::path::Path,
    index: usize,
    key: &str,
    budget: &Budget,
    tx: &mpsc::Sender<Chunk>,
) -> Result<()> {
    let send = |bytes: Vec<u8>| tx.blocking_send(Chunk::Data(Bytes::from(bytes))).is_ok();
    if !send(format!("\\restrict {key}\n").into_bytes()) {
        return Ok(());
    }
    let file = std::fs::File::open(archive).map_err(|e| OdooError::io(archive, e))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| OdooError::InvalidArchive(format!("not a readable zip archive: {e}")))?;
    let mut dump = zip
        .by_index(index)
        .map_err(|e| OdooError::InvalidArchive(format!("dump.sql is unreadable: {e}")))?;
    let mut filter = DumpFilter::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = dump
            .read(&mut buf)
            .map_err(|e| OdooError::InvalidArchive(format!("dump.sql is corrupt: {e}")))?;
        if n == 0 {
            break;
        }
        let mut out = Vec::with_capacity(n + 1);
        filter.push(&buf[..n], &mut out)?;
        budget.add_dump(out.len())?;
        if !send(out) {
            return Ok(());
        }
    }
    filter.finish()?;
    let _ = tx.blocking_send(Chunk::End);
    Ok(())
}

async fn write_stdin(mut rx: mpsc::Receiver<Chunk>, mut stdin: ChildStdin) -> Fed {
    while let Some(chunk) = rx.recv().await {
        match chunk {
            Chunk::Data(bytes) => {
                if stdin.write_all(&bytes).await.is_err() {
                    return Fed::PsqlGone;
                }
            }
            Chunk::End => {
                let _ = stdin.flush().await;
                drop(stdin);
                return Fed::Done;
            }
        }
    }
    Fed::Aborted(stdin)
}

async fn read_log(stderr: Option<ChildStderr>) -> PsqlLog {
    let mut log = PsqlLog::default();
    if let Some(mut stderr) = stderr {
        let mut buf = vec![0u8; 8192];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            log.push(&buf[..n]);
        }
    }
    log
}

/// The `\restrict` key: random, never written anywhere but psql's stdin, so
/// a dump cannot `\unrestrict` it.
fn random_key() -> String {
    use rand::Rng as _;
    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..48)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}
