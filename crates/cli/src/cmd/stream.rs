//! Logs read as streams by `kmortem decode`, `explain` and `fixes` (`kmortem oops` has its own
//! loop over `Scanner::feed`): the input is cut into chunks at the points where no report is
//! open, each chunk handed over with the reports completed in it, so that the first report is
//! answered before the input ends and memory does not grow with the input.
//!
//! Bounds (BENCHMARKS.md, "Streaming input"): one line is at most [`MAX_LINE_BYTES`] (the rest
//! of a longer one is dropped), a chunk at most [`MAX_CHUNK_BYTES`] (a log that never leaves a
//! report is cut there), plus the parser's own bound on the reports in progress
//! (`kmortem_oops::Scanner`). When the input stalls for [`STALL`] with a report open (a pipe from
//! `dmesg -w`), the report is completed and answered at once.

use anyhow::{bail, Result};
use kmortem_oops::input::{binary_kind, Normalizer};
use kmortem_oops::{Report, Scanner};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// Longest line kept (a 1 MB `Code:` line is decoded whole); the rest of a longer line is dropped.
pub const MAX_LINE_BYTES: usize = 4 << 20;
/// Most bytes of lines held for one chunk.
pub const MAX_CHUNK_BYTES: usize = 16 << 20;
/// Lines kept from before a chunk, for messages printed just before a report.
pub const HISTORY: usize = 8;
/// Silence on the input after which open reports are completed.
pub const STALL: Duration = Duration::from_secs(2);
const READ_SIZE: usize = 256 << 10;

/// A run of input lines with the reports that completed in it.
pub struct Chunk {
    /// The lines, normalized (CR/LF/CRLF ends, no NULs or escape sequences), lossy UTF-8.
    pub lines: Vec<String>,
    /// 1-based input line number of `lines[0]`.
    pub first_line: usize,
    /// Up to [`HISTORY`] lines from before `lines[0]`.
    pub before: Vec<String>,
    pub reports: Vec<Report>,
}

impl Chunk {
    /// `before` and `lines` as one text, and the input line number of its first line.
    pub fn window(&self) -> (String, usize) {
        let mut t = String::new();
        for l in self.before.iter().chain(&self.lines) {
            t.push_str(l);
            t.push('\n');
        }
        (t, self.first_line - self.before.len())
    }

    /// `lines` as one text.
    pub fn text(&self) -> String {
        let mut t = String::new();
        for l in &self.lines {
            t.push_str(l);
            t.push('\n');
        }
        t
    }
}

/// What a log path is, when it cannot be read as a log: one sentence (`X: a directory, not a
/// log`), `None` when it can be opened.
pub fn check_log_path(p: &Path) -> Option<String> {
    let shown = p.display();
    match std::fs::metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Some(format!("{shown}: no such file"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Some(format!(
            "{shown}: permission denied (read it as root, or copy it somewhere readable)"
        )),
        Err(e) => Some(format!("{shown}: {}", super::io_reason(&e))),
        Ok(m) if m.is_dir() => Some(format!(
            "{shown}: a directory, not a log (give a log file, or `-` for standard input)"
        )),
        Ok(_) => None,
    }
}

/// The log named on the command line (standard input for none or `-`), and its name for
/// messages.
pub fn open_log(log: &Option<PathBuf>) -> Result<(Box<dyn Read + Send>, String)> {
    match log {
        Some(p) if p.as_os_str() != "-" => {
            if let Some(why) = check_log_path(p) {
                bail!("{why}");
            }
            match std::fs::File::open(p) {
                Ok(f) => Ok((Box::new(f), p.display().to_string())),
                Err(e) => bail!("{}: {}", p.display(), super::io_reason(&e)),
            }
        }
        _ => Ok((Box::new(std::io::stdin()), "standard input".to_string())),
    }
}

/// Read `reader` to its end in chunks, calling `f` for each; `f` returns `false` to stop
/// reading. `cmd` names the command in the message for a binary input.
pub fn for_each_chunk(
    reader: Box<dyn Read + Send>,
    name: &str,
    cmd: &str,
    mut f: impl FnMut(Chunk) -> Result<bool>,
) -> Result<()> {
    // A reader thread, so that a stalled pipe can be noticed (recv_timeout) without polling;
    // the channel holds at most two buffers.
    let (tx, rx) = mpsc::sync_channel::<std::io::Result<Vec<u8>>>(2);
    std::thread::spawn(move || {
        let mut reader = reader;
        loop {
            let mut buf = vec![0u8; READ_SIZE];
            match reader.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.send(Ok(buf)).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    let mut st = State {
        scanner: Scanner::new(),
        lines: Vec::new(),
        bytes: 0,
        first_line: 1,
        next_line: 1,
        history: std::collections::VecDeque::new(),
        reports: Vec::new(),
    };
    let mut norm = Normalizer::new();
    let mut nbuf = Vec::new();
    let mut partial: Vec<u8> = Vec::new();
    let mut first = true;
    loop {
        let data = match rx.recv_timeout(STALL) {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => bail!("cannot read {name}: {}", super::io_reason(&e)),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let r = st.scanner.flush();
                st.reports.extend(r);
                if (!st.reports.is_empty() || !st.lines.is_empty()) && !st.emit(&mut f)? {
                    return Ok(());
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if first {
            first = false;
            if let Some(kind) = binary_kind(&data[..data.len().min(4096)]) {
                bail!(
                    "{name}: {kind}, not a log; for the log inside a vmcore run `kmortem log VMCORE | kmortem {cmd}`"
                );
            }
        }
        let mut d = norm.push(&data, &mut nbuf);
        while let Some(i) = memchr::memchr(b'\n', d) {
            let piece = &d[..i];
            d = &d[i + 1..];
            let keep = if partial.is_empty() {
                piece
            } else {
                push_capped(&mut partial, piece);
                &partial[..]
            };
            let line =
                String::from_utf8_lossy(&keep[..keep.len().min(MAX_LINE_BYTES)]).into_owned();
            partial.clear();
            if !st.line(line, &mut f)? {
                return Ok(());
            }
        }
        push_capped(&mut partial, d);
    }
    if !partial.is_empty() {
        let line = String::from_utf8_lossy(&partial).into_owned();
        if !st.line(line, &mut f)? {
            return Ok(());
        }
    }
    let scanner = std::mem::take(&mut st.scanner);
    st.reports.extend(scanner.finish());
    if !st.lines.is_empty() || !st.reports.is_empty() {
        st.emit(&mut f)?;
    }
    Ok(())
}

fn push_capped(buf: &mut Vec<u8>, b: &[u8]) {
    let room = MAX_LINE_BYTES.saturating_sub(buf.len());
    buf.extend_from_slice(&b[..b.len().min(room)]);
}

struct State {
    scanner: Scanner,
    lines: Vec<String>,
    bytes: usize,
    first_line: usize,
    next_line: usize,
    history: std::collections::VecDeque<String>,
    reports: Vec<Report>,
}

impl State {
    fn line(&mut self, line: String, f: &mut impl FnMut(Chunk) -> Result<bool>) -> Result<bool> {
        let r = self.scanner.push_line(line.as_bytes());
        self.reports.extend(r);
        self.bytes += line.len();
        self.lines.push(line);
        self.next_line += 1;
        // Lines outside reports are handed over in batches (or when the input stalls).
        let idle = self.scanner.is_idle()
            && (!self.reports.is_empty() || self.lines.len() >= 4096 || self.bytes >= 1 << 20);
        if idle || self.bytes >= MAX_CHUNK_BYTES {
            return self.emit(f);
        }
        Ok(true)
    }

    fn emit(&mut self, f: &mut impl FnMut(Chunk) -> Result<bool>) -> Result<bool> {
        let lines = std::mem::take(&mut self.lines);
        let mut reports = std::mem::take(&mut self.reports);
        reports.sort_by_key(|r| r.start_line);
        let chunk = Chunk {
            first_line: self.first_line,
            before: self.history.iter().cloned().collect(),
            lines,
            reports,
        };
        self.first_line = self.next_line;
        self.bytes = 0;
        for l in chunk.lines.iter().rev().take(HISTORY).rev() {
            if self.history.len() == HISTORY {
                self.history.pop_front();
            }
            self.history.push_back(l.clone());
        }
        f(chunk)
    }
}
