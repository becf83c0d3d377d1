//! `kmortem-oops`: find every Linux kernel crash report in a log and turn it into a [`Report`]
//! with a syzkaller-compatible title.
//!
//! Pure functions over bytes: no I/O, no DWARF. Input may be any mix of console, `dmesg`,
//! syslog/journal, `/dev/kmsg` and netconsole lines, with invalid UTF-8 and NULs.
//!
//! ```
//! let log = b"[  1.0] BUG: kernel NULL pointer dereference, address: 0000000000000008\n";
//! let reports = kmortem_oops::parse(log);
//! assert_eq!(reports.len(), 1);
//! ```

pub mod input;
mod report;

pub use report::{Code, Context, Frame, InstructionPointer, Kind, Report};

/// Incremental parser: feed it lines as they arrive (a stream, a 1 GB file) and collect reports
/// as soon as they are complete. Memory is bounded by the size of the report in progress.
#[derive(Debug, Default)]
pub struct Scanner {
    line_no: usize,
    pending: Vec<(usize, String)>,
}

impl Scanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one line (without its `\n`). Returns the reports completed by this line.
    pub fn push_line(&mut self, line: &[u8]) -> Vec<Report> {
        self.line_no += 1;
        let text = String::from_utf8_lossy(line).into_owned();
        self.pending.push((self.line_no, text));
        Vec::new()
    }

    /// End of input: returns the reports still open (a log that ends mid-report).
    pub fn finish(self) -> Vec<Report> {
        Vec::new()
    }
}

/// Parse a whole log. Equivalent to feeding every line to a [`Scanner`].
pub fn parse(input: &[u8]) -> Vec<Report> {
    let mut s = Scanner::new();
    let mut out = Vec::new();
    for line in input.split(|&b| b == b'\n') {
        out.extend(s.push_line(line));
    }
    out.extend(s.finish());
    out
}
