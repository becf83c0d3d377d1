//! Turning one raw input line into the kernel's own text plus the "context" it was printed in.
//!
//! The context is what syzkaller calls it: a line with a `[ 12.345678]` stamp is "console", a
//! stamp followed by a caller id (`[T123]`, `[C1]`) belongs to that task or CPU, and a line with
//! no stamp at all has the empty context. A report is built only from lines of its own context,
//! which is how interleaved CPUs are pulled apart.

use crate::input::{parse_kmsg, unescape_kmsg};
use std::borrow::Cow;

/// Lines longer than this are cut (a 10 MB line without `\n` must not blow memory up).
/// Folklore: printk itself caps a record at 1024 bytes (`LOG_LINE_MAX`), so nothing useful is lost.
pub const MAX_LINE: usize = 4096;

/// Where a line came from, for de-interleaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Ctx {
    /// No timestamp at all (raw `dmesg -t`, pasted traces).
    #[default]
    None,
    /// Timestamped, without a caller id.
    Console,
    /// `[T123]` (task id) or `[C1]` (CPU, no task context).
    Task(u32),
    Cpu(u32),
}

/// One decoded line.
#[derive(Debug, Clone)]
pub struct Clean<'a> {
    /// Text after the prefixes. Keeps the leading space of frame lines (`" foo+0x1/0x2"`),
    /// like the kernel printed it after `"] "`.
    pub text: Cow<'a, str>,
    pub ctx: Ctx,
    /// `true` for /dev/kmsg dictionary lines (` SUBSYSTEM=...`): not kernel text.
    pub skip: bool,
    /// The line was a `/dev/kmsg` / extended netconsole record.
    pub kmsg: bool,
}

fn is_digit(b: u8) -> bool {
    b.is_ascii_digit()
}

/// `[  12.345678]` at the start of `s`: returns the length including `]`.
fn console_stamp(s: &[u8]) -> Option<usize> {
    if s.first() != Some(&b'[') {
        return None;
    }
    let mut i = 1;
    while i < s.len() && s[i] == b' ' {
        i += 1;
    }
    let d0 = i;
    while i < s.len() && is_digit(s[i]) {
        i += 1;
    }
    if i == d0 || i >= s.len() || s[i] != b'.' {
        return None;
    }
    i += 1;
    let f0 = i;
    while i < s.len() && is_digit(s[i]) {
        i += 1;
    }
    if i == f0 || i >= s.len() || s[i] != b']' {
        return None;
    }
    Some(i + 1)
}

/// `dmesg -T` stamp: `[Sat Nov 21 18:26:41 2026]`.
fn human_stamp(s: &[u8]) -> Option<usize> {
    if s.len() < 26 || s[0] != b'[' {
        return None;
    }
    let end = memchr::memchr(b']', &s[..s.len().min(40)])?;
    let inner = &s[1..end];
    // Day name, month, day, time, year: at least the time's two colons and a letter start.
    if !inner.first().is_some_and(|b| b.is_ascii_alphabetic())
        || inner.iter().filter(|&&b| b == b':').count() != 2
    {
        return None;
    }
    Some(end + 1)
}

/// Caller id `[T123]`, `[ T123]`, `[C1]` right after the stamp.
fn caller_id(s: &[u8]) -> Option<(usize, Ctx)> {
    if s.first() != Some(&b'[') {
        return None;
    }
    let end = memchr::memchr(b']', &s[..s.len().min(12)])?;
    let inner = std::str::from_utf8(&s[1..end]).ok()?.trim_start();
    // The id is ASCII (`T`/`C` and digits); anything else, a multi-byte character first
    // included, is no caller id (found by the fixes_crash_text fuzz target).
    if !inner.is_char_boundary(1.min(inner.len())) {
        return None;
    }
    let (kind, num) = inner.split_at(1.min(inner.len()));
    let n: u32 = num.parse().ok()?;
    let ctx = match kind {
        "T" => Ctx::Task(n),
        "C" => Ctx::Cpu(n),
        _ => return None,
    };
    Some((end + 1, ctx))
}

type Finder = std::sync::OnceLock<memchr::memmem::Finder<'static>>;
static KERNEL: Finder = Finder::new();
static LOGIN: Finder = Finder::new();

/// A searcher built once (`memmem::find` builds one per call: measurable on every line).
fn finder(f: &'static Finder, needle: &'static str) -> &'static memchr::memmem::Finder<'static> {
    f.get_or_init(|| memchr::memmem::Finder::new(needle))
}

/// Strip a syslog/journal prefix (`Nov 21 18:26:41 host kernel: `, an RFC 5424/3339 stamp, a
/// leading `<4>`). Returns the rest of the line.
fn strip_syslog(s: &[u8]) -> &[u8] {
    let mut s = s;
    // `<pri>` as syslog forwarding and `/proc/kmsg` print it.
    if s.first() == Some(&b'<') {
        if let Some(end) = memchr::memchr(b'>', &s[..s.len().min(6)]) {
            if end > 1 && s[1..end].iter().all(|&b| is_digit(b)) {
                s = &s[end + 1..];
            }
        }
    }
    // `... kernel: ` within the first 100 bytes, preceded by a hostname and a date.
    let head = &s[..s.len().min(100)];
    if let Some(p) = finder(&KERNEL, " kernel: ").find(head) {
        // Must look like a date first (a digit among the first 20 bytes) so that a kernel message
        // that merely contains "kernel: " is left alone.
        if p > 8 && head[..p].iter().take(20).any(|&b| is_digit(b)) && !head.starts_with(b"[") {
            return &s[p + 9..];
        }
    }
    s
}

/// Decode one line. `in_kmsg` tells whether the previous record was a /dev/kmsg record
/// (dictionary lines follow them).
pub fn clean(line: &[u8], in_kmsg: bool) -> Clean<'_> {
    let mut s = line;
    if s.len() > MAX_LINE {
        s = &s[..MAX_LINE];
    }
    while let Some((&last, rest)) = s.split_last() {
        if last == b'\r' || last == 0 {
            s = rest;
        } else {
            break;
        }
    }
    // /dev/kmsg dictionary: ` KEY=value`.
    if in_kmsg && s.first() == Some(&b' ') {
        let t = &s[1..];
        if let Some(eq) = memchr::memchr(b'=', t) {
            if eq > 0 && t[..eq].iter().all(|&b| b.is_ascii_uppercase() || b == b'_') {
                return Clean {
                    text: Cow::Borrowed(""),
                    ctx: Ctx::None,
                    skip: true,
                    kmsg: false,
                };
            }
        }
    }
    if let Some(rec) = parse_kmsg(s) {
        let ctx = match rec
            .caller
            .and_then(|c| caller_id(format!("[{c}]").as_bytes()))
        {
            Some((_, c)) => c,
            None => Ctx::Console,
        };
        // Most records carry no `\xNN` escape: borrow them as they are.
        let text = if memchr::memchr(b'\\', rec.text).is_none() {
            lossy(rec.text)
        } else {
            Cow::Owned(lossy(&unescape_kmsg(rec.text)).into_owned())
        };
        return Clean {
            text,
            ctx,
            skip: false,
            kmsg: true,
        };
    }
    s = strip_syslog(s);
    // syzkaller's consoleOutputRe also accepts `** N printk messages dropped ** ` and a
    // login prompt glued in front of the stamp.
    if s.starts_with(b"** ") {
        if let Some(p) = memchr::memmem::find(s, b" ** ") {
            if memchr::memmem::find(&s[..p], b"printk messages dropped").is_some() {
                s = &s[p + 4..];
            }
        }
    }
    if let Some(p) = finder(&LOGIN, " login: ").find(&s[..s.len().min(120)]) {
        if console_stamp(&s[p + 8..]).is_some() {
            s = &s[p + 8..];
        }
    }
    let mut ctx = Ctx::None;
    let stamp = console_stamp(s).or_else(|| human_stamp(s));
    if let Some(n) = stamp {
        ctx = Ctx::Console;
        s = &s[n..];
        if let Some((m, c)) = caller_id(s) {
            ctx = c;
            s = &s[m..];
        }
        // The kernel prints exactly one space after the prefix.
        if s.first() == Some(&b' ') {
            s = &s[1..];
        }
    }
    Clean {
        text: lossy(s),
        ctx,
        skip: false,
        kmsg: false,
    }
}

/// Length of the console prefix of a raw line: a `<pri>`, the stamp (`[  12.345678]` or
/// `dmesg -T`'s `[Sat Nov 21 18:26:41 2026]`) and a caller id (`[T123]`, `[ C1]`), without the
/// space the kernel prints after it. 0 when the line has none. For tools that print the line
/// back with their own annotations after the prefix (`kmortem decode`).
pub fn console_prefix_len(line: &str) -> usize {
    let b = line.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'<') {
        if let Some(end) = memchr::memchr(b'>', &b[..b.len().min(6)]) {
            if end > 1 && b[1..end].iter().all(|&c| is_digit(c)) {
                i = end + 1;
            }
        }
    }
    match console_stamp(&b[i..]).or_else(|| human_stamp(&b[i..])) {
        Some(n) => i += n,
        None => return if i > 0 { i } else { 0 },
    }
    if let Some((m, _)) = caller_id(&b[i..]) {
        i += m;
    }
    i
}

/// The kernel text of a line in any log format a person pastes (a commit message, a bug
/// report): leading blanks, `<4>`, `[  12.345678]` stamps, `[T1234]`/`[C1]` caller ids and a
/// `host kernel: ` syslog prefix stripped, repeatedly. Lighter than [`clean`]: no `/dev/kmsg`
/// records, no context.
pub fn strip_console_prefix(line: &str) -> &str {
    let mut s = line.trim_start();
    loop {
        let before = s.len();
        if let Some(rest) = s.strip_prefix('<') {
            if let Some(end) = rest.find('>') {
                if end <= 3 && rest[..end].bytes().all(|b| b.is_ascii_digit()) {
                    s = rest[end + 1..].trim_start();
                }
            }
        }
        if let Some(rest) = s.strip_prefix('[') {
            if let Some(end) = rest.find(']') {
                let inner = rest[..end].trim();
                let is_ts = !inner.is_empty()
                    && inner.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                    && inner.contains('.');
                let is_caller = inner.len() >= 2
                    && (inner.starts_with('T') || inner.starts_with('C'))
                    && inner[1..].bytes().all(|b| b.is_ascii_digit());
                if is_ts || is_caller {
                    s = rest[end + 1..].trim_start();
                }
            }
        }
        if let Some(pos) = s.find(" kernel: ") {
            if pos < 64 && !s[..pos].contains('(') {
                s = s[pos + " kernel: ".len()..].trim_start();
            }
        }
        if s.len() == before {
            return s;
        }
    }
}

/// UTF-8 decoding that never fails; NULs become spaces so that they cannot hide text.
fn lossy(s: &[u8]) -> Cow<'_, str> {
    let has_nul = memchr::memchr(0, s).is_some();
    if !has_nul {
        // The common case, validated by the (faster) strict decoder.
        if let Ok(t) = std::str::from_utf8(s) {
            return Cow::Borrowed(t);
        }
    }
    match String::from_utf8_lossy(s) {
        Cow::Borrowed(b) if !has_nul => Cow::Borrowed(b),
        c => Cow::Owned(c.replace('\0', " ")),
    }
}

#[cfg(test)]
mod tests {
    /// A multi-byte character where the caller id's letter stands is no caller id, never a
    /// panic (found by the fixes_crash_text fuzz target; crates/fixes/tests/fuzz_regressions.rs).
    #[test]
    fn caller_id_multibyte() {
        assert_eq!(super::caller_id("[\u{fffd}C0] x".as_bytes()), None);
        assert!(super::caller_id(b"[T12] x").is_some());
    }

    use super::*;

    #[test]
    fn console_with_caller() {
        let c = clean(
            b"[  383.247320][ T5643] ------------[ cut here ]------------",
            false,
        );
        assert_eq!(c.ctx, Ctx::Task(5643));
        assert_eq!(c.text, "------------[ cut here ]------------");
        let c = clean(b"[   12.000001][    C1]  foo+0x1/0x2", false);
        assert_eq!(c.ctx, Ctx::Cpu(1));
        assert_eq!(c.text, " foo+0x1/0x2");
    }

    #[test]
    fn syslog_and_journal() {
        let c = clean(b"Nov 21 18:26:41 web1 kernel: [  1.5] BUG: x", false);
        assert_eq!((c.ctx, &*c.text), (Ctx::Console, "BUG: x"));
        let c = clean(
            b"2024-05-01T10:00:00.123+00:00 host kernel: Call Trace:",
            false,
        );
        assert_eq!((c.ctx, &*c.text), (Ctx::None, "Call Trace:"));
        let c = clean(b"<4>[  1.5] WARNING: y\r", false);
        assert_eq!((c.ctx, &*c.text), (Ctx::Console, "WARNING: y"));
    }

    #[test]
    fn dmesg_t() {
        let c = clean(b"[Sat Nov 21 18:26:41 2026] Call Trace:", false);
        assert_eq!((c.ctx, &*c.text), (Ctx::Console, "Call Trace:"));
    }

    #[test]
    fn kmsg_record_and_dict() {
        let c = clean(b"4,77,100,-,caller=T42;BUG: z\\x0a", false);
        assert_eq!((c.ctx, &*c.text), (Ctx::Task(42), "BUG: z\n"));
        assert!(clean(b" SUBSYSTEM=pci", true).skip);
        assert!(!clean(b" foo+0x1/0x2", true).skip);
    }

    #[test]
    fn prefixes_for_other_tools() {
        assert_eq!(console_prefix_len("[  1.0][T101]  foo+0x1/0x2"), 13);
        assert_eq!(console_prefix_len("<4>[ 1.5] x"), 9);
        assert_eq!(
            console_prefix_len("[Sat Nov 21 18:26:41 2026] Call Trace:"),
            26
        );
        assert_eq!(console_prefix_len(" [<ffffffff81000000>] f+0x1/0x2"), 0);
        assert_eq!(
            strip_console_prefix("[  147.467058][T10579]  kyber+0x1/0x2"),
            "kyber+0x1/0x2"
        );
        assert_eq!(
            strip_console_prefix("Nov 1 host kernel: <4>[ 1.0] BUG: x"),
            "BUG: x"
        );
        assert_eq!(strip_console_prefix("  Call Trace:"), "Call Trace:");
    }

    #[test]
    fn nul_and_bad_utf8() {
        let c = clean(b"[ 1.0] a\0b\xff", false);
        assert_eq!(c.text, "a b\u{fffd}");
    }
}
