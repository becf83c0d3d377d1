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
//!
//! Entry points: [`parse`] for a whole log in memory; [`Scanner::push_line`] for a stream of
//! lines (netconsole, `/dev/kmsg`); [`Scanner::feed`] for big files read in chunks (the fast
//! path: it skips non-report lines with one vectorised search). All three give the same reports.
//! OOM kills come out as reports of kind [`Kind::Oom`] ([`Kind::is_event`]), not crashes.
//!
//! Extended-netconsole fragments (`ncfrag=`) are joined by sequence number before parsing.
//!
//! How it works: every line is decoded ([`clean_line`]: stamps, caller ids, syslog/kmsg prefixes),
//! then checked against the oops header table (one Aho-Corasick pass, so the scan is linear and
//! cheap). A header opens a report in the line's context; the report's own lines are collected
//! until it ends (end-of-trace marker, the next report in the same context, or too many unrelated
//! lines), and then the title and the fields are extracted from that bounded buffer only.

pub mod input;
mod json;
pub mod line;
pub mod pick;
mod report;
mod syz;

pub use line::Arch;
pub use line::{clean as clean_line, Clean, Ctx, MAX_LINE};
pub use pick::{pick_fatal, Pick, PickReason};
pub use report::{Code, Context, Frame, InstructionPointer, Kind, Report};

use aho_corasick::AhoCorasick;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// A report never holds more lines than this (a runaway lockdep dump, a 1 GB log of frames).
pub const MAX_REPORT_LINES: usize = 2000;
/// After the trace started, this many own-context lines that look unrelated end the report.
const MAX_IDLE_LINES: usize = 40;
/// Reports open at the same time (different caller ids). The oldest is closed beyond it.
const MAX_OPEN: usize = 8;
/// After an end marker, at most this many lines (register reprint) before the panic.
const MAX_CLOSING_LINES: usize = 40;
/// After `---[ end trace`, wait this many own lines for a `Kernel panic` that belongs to it.
const PANIC_GRACE: usize = 6;

/// What can open a report: the oops headers and kmortem's own events. Used to skip quickly over
/// the (vast) parts of a log where no report is open, so it only has to be a superset: each
/// literal is a rare piece of one or more headers (`BUG` for `BUG:`, `kernel BUG`, `BUG
/// kmalloc-`), as few as possible (the vectorised search slows down with each one: 23 instead
/// of the 33 headers halved its time on the dense fleet log), and chosen so that its first-bytes
/// fingerprint seldom fires on ordinary messages (`int3:` by `nt3:`, not by the `int` of every
/// `interrupt`).
/// Pinned by tests::start_filter_covers_every_header.
const START_LITERALS: &[&str] = &[
    "BUG",
    "WARNING:",
    "INFO:",
    "Unable to handle",
    // general protection fault, Unhandled fault:, PANIC: double fault.
    "fault",
    "segment: ",
    // Kernel panic, rust_kernel: panicked, trusty: panic, panic:.
    "panic",
    "PANIC",
    "divide",
    "opcode",
    "nt3:",
    "UBSAN:",
    "Booting",
    "unregister_netdevice",
    "VFS: ",
    // Internal error:, fatal error:.
    "l error",
    "Alignment",
    "SYZ",
    "LOCKUP",
    "oom-killer",
    "Killed process",
    "Hardware Error",
    // A header may be split across extended-netconsole fragments.
    "ncfrag=",
];

fn start_filter() -> &'static AhoCorasick {
    static P: OnceLock<AhoCorasick> = OnceLock::new();
    P.get_or_init(|| {
        AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostFirst)
            .build(START_LITERALS)
            .expect("static patterns")
    })
}

/// The oops header that a console line carries (`BUG:`, `KASAN:`, `kernel BUG at`, `WARNING:`,
/// `Unable to handle kernel`, ... from the same table the parser opens reports with, including
/// its suppressions), as the table's literal; `None` for any other line. Strip console
/// prefixes first ([`clean_line`]), as the parser does.
pub fn oops_header(line: &str) -> Option<&'static str> {
    syz::match_oops(line).map(syz::header)
}

/// Newlines in `b`: memchr's counter (vectorised, chosen at run time: 0.015 s for 256 MB where
/// a plain filter-count, built for baseline x86_64, takes 0.12 s). This runs over every byte the
/// scanner skips, which is nearly all of a log.
fn count_newlines(b: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', b).count()
}

/// A fixed substring whose searcher is built once. `str::contains` builds a Two-Way searcher
/// on every call, which showed up at the top of the ingest profile for the tests made on
/// every line of an open report (`cargo bench -p kmortem-server --bench ingest`).
struct Needle {
    s: &'static str,
    f: OnceLock<memchr::memmem::Finder<'static>>,
}

impl Needle {
    const fn new(s: &'static str) -> Self {
        Needle {
            s,
            f: OnceLock::new(),
        }
    }
    fn find_bytes(&self, hay: &[u8]) -> Option<usize> {
        self.f
            .get_or_init(|| memchr::memmem::Finder::new(self.s))
            .find(hay)
    }
    fn find(&self, hay: &str) -> Option<usize> {
        self.find_bytes(hay.as_bytes())
    }
    fn is_in(&self, hay: &str) -> bool {
        self.find(hay).is_some()
    }
    fn is_in_bytes(&self, hay: &[u8]) -> bool {
        self.find_bytes(hay).is_some()
    }
}

static PANIC_MSG: Needle = Needle::new("Kernel panic - not syncing: ");
static PID_FIELD: Needle = Needle::new("PID: ");

/// What one pass over a decoded line finds: the substrings the scanner tests on every line of
/// an open report, whether it can open a report at all (a start literal, a syzkaller header
/// literal) and the pieces of kmortem's own events. One overlapping DFA pass instead of the
/// start filter, this, `match_oops`'s header check and the event needles one after the other
/// (issue 15: a report line of the dense fleet log went through up to four automata).
#[derive(Debug, Clone, Copy, Default)]
struct Marks(u32);

const M_QUESTION: u32 = 1;
const M_EOI: u32 = 1 << 1;
const M_DISABLING_LOCKDEP: u32 = 1 << 2;
const M_SENDING_NMI: u32 = 1 << 3;
const M_PANIC: u32 = 1 << 4;
const M_CIRCULAR: u32 = 1 << 5;
const M_HANGUP: u32 = 1 << 6;
const M_KILLED: u32 = 1 << 7;
const M_END: u32 = 1 << 8;
const M_END_PANIC: u32 = 1 << 9;
const M_START_IGNORED: u32 = 1 << 10;
const M_INFO_STACK: u32 = 1 << 11;
/// One of [`START_LITERALS`]: `start_filter().is_match(line)`.
const M_START: u32 = 1 << 12;
/// One of the syzkaller headers: `match_oops` has a candidate.
const M_HEADER: u32 = 1 << 13;
/// The needles of [`extra_event`].
const M_OOM_INVOKED: u32 = 1 << 14;
const M_OUT_OF_MEMORY: u32 = 1 << 15;
const M_MCE: u32 = 1 << 16;

impl Marks {
    fn of(t: &str) -> Marks {
        static AC: OnceLock<(aho_corasick::dfa::DFA, Vec<u32>)> = OnceLock::new();
        let (dfa, bits) = AC.get_or_init(|| {
            let mut pats: Vec<(&str, u32)> = vec![
                (" ? ", M_QUESTION),
                ("<EOI>", M_EOI),
                (
                    "Disabling lock debugging due to kernel taint",
                    M_DISABLING_LOCKDEP,
                ),
                ("Sending NMI from CPU", M_SENDING_NMI),
                ("Kernel panic - not syncing", M_PANIC),
                (
                    "WARNING: possible circular locking dependency detected",
                    M_CIRCULAR,
                ),
                ("serialport: VM disconnected.", M_HANGUP),
                ("Killed process", M_KILLED),
                ("---[ end", M_END),
                ("end Kernel panic", M_END_PANIC),
                (EXTRA_OOM_INVOKED, M_OOM_INVOKED),
                (EXTRA_OUT_OF_MEMORY, M_OUT_OF_MEMORY),
                (EXTRA_MCE, M_MCE),
            ];
            pats.extend(
                syz::REPORT_START_IGNORES
                    .iter()
                    .map(|p| (*p, M_START_IGNORED)),
            );
            pats.extend(syz::INFO_WITH_STACK.iter().map(|p| (*p, M_INFO_STACK)));
            pats.extend(START_LITERALS.iter().map(|p| (*p, M_START)));
            pats.extend(syz::headers().into_iter().map(|p| (p, M_HEADER)));
            // A literal in several lists is one pattern with all their bits.
            let mut merged: BTreeMap<&str, u32> = BTreeMap::new();
            for (p, b) in pats {
                *merged.entry(p).or_default() |= b;
            }
            // The DFA walked by hand, a few instructions a byte: report lines are short (a frame
            // is 30-60 bytes), where the packed prefilter falls back to Rabin-Karp, and the
            // library's overlapping search costs about 20 instructions a byte.
            let dfa = aho_corasick::dfa::DFA::builder()
                .match_kind(aho_corasick::MatchKind::Standard)
                .prefilter(false)
                .build(merged.keys())
                .expect("static patterns");
            (dfa, merged.into_values().collect())
        });
        use aho_corasick::automaton::Automaton;
        let any = aho_corasick::Anchored::No;
        let mut sid = dfa.start_state(any).expect("unanchored start");
        let mut m = 0;
        for &b in t.as_bytes() {
            sid = dfa.next_state(any, sid, b);
            // Standard semantics: a match state lists every pattern that ends here.
            if dfa.is_special(sid) && dfa.is_match(sid) {
                for i in 0..dfa.match_len(sid) {
                    m |= bits[dfa.match_pattern(sid, i).as_usize()];
                }
            }
        }
        Marks(m)
    }

    fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

#[derive(Debug, Clone)]
struct Line {
    no: usize,
    text: String,
}

/// syzkaller's report text (`findReport`): the lines of the report's context from its oops
/// line on, which is what titles, `corrupted` and the guilty file are read from. It outlives
/// kmortem's own report boundaries (syzkaller reads to the next report, or to the end of the
/// log with caller ids), within bounds kmortem sets: [`MAX_SYZ_LINES`], [`MAX_TAIL`].
#[derive(Debug)]
struct SyzText {
    text: String,
    /// What titles are read from: the text before the next report starts (syzkaller's
    /// `reportEnd`), except with caller ids, where the task's lines run on.
    end: usize,
    /// Lines of the context seen (syzkaller's `textLines`).
    seen: usize,
    /// `reportMinLines` for this report.
    min_lines: usize,
    /// A `Kernel panic` or an induced lockdep report after enough lines ends the text.
    skip_rest: bool,
    /// `Sending NMI from CPU`: the other CPUs' backtraces belong to the report.
    cpu_traceback: bool,
    /// A second report started (any context).
    second: bool,
    /// Lines appended.
    lines: usize,
    /// Own lines appended since kmortem's report ended, and lines of any context seen.
    tail: usize,
    tail_seen: usize,
    /// [`MAX_TAIL`] or [`MAX_TAIL_AFTER_END`], set when kmortem's report ends.
    tail_max: usize,
    done: bool,
    /// Byte offset of the first syzkaller header line a kmortem-only report absorbed.
    syz_start: Option<(usize, usize)>,
    /// `serialport: VM disconnected.` was seen: the console was cut.
    hangup: bool,
}

/// Own lines of syzkaller's report text at the most.
const MAX_SYZ_LINES: usize = 1500;
/// Own lines the text keeps reading after kmortem's report ended, and lines of any context. A
/// report that ended at its end marker (`---[ end trace`, the panic) reads a short tail; one that
/// ended because kmortem stopped recognising its lines (a stack hex dump, a format it does not
/// know) reads a long one, where syzkaller's rules may still find their frame.
const MAX_TAIL: usize = 100;
const MAX_TAIL_AFTER_END: usize = 30;

static DISABLING_LOCKDEP: Needle = Needle::new("Disabling lock debugging due to kernel taint");
static SENDING_NMI: Needle = Needle::new("Sending NMI from CPU");
static REPLAY: Needle = Needle::new("** replaying previous printk message **");

impl SyzText {
    fn new(first: &str) -> Self {
        let mut s = SyzText {
            text: String::with_capacity(4096),
            end: 0,
            seen: 0,
            min_lines: syz::report_min_lines(first),
            skip_rest: false,
            cpu_traceback: false,
            second: false,
            lines: 0,
            tail: 0,
            tail_seen: 0,
            tail_max: MAX_TAIL,
            done: false,
            syz_start: None,
            hangup: false,
        };
        s.seen = 1;
        if !DISABLING_LOCKDEP.is_in(first) && SENDING_NMI.is_in(first) {
            s.cpu_traceback = true;
        }
        s.append(first, false);
        s
    }

    fn append(&mut self, t: &str, per_ctx: bool) {
        self.text.push_str(t);
        self.text.push('\n');
        self.lines += 1;
        if !self.second || per_ctx {
            self.end = self.text.len();
        }
    }

    /// One line after the oops line. `starts_report`: a header that is not a follow-on of
    /// another report, or an info message with a stack.
    fn push(
        &mut self,
        own: Ctx,
        t: &str,
        ctx: Ctx,
        m: Marks,
        questionable: bool,
        starts_report: bool,
    ) {
        if self.done {
            return;
        }
        if starts_report {
            self.second = true;
        }
        if m.has(M_HANGUP) {
            self.hangup = true;
        }
        if questionable || (ctx != own && !(self.cpu_traceback && matches!(ctx, Ctx::Cpu(_)))) {
            return;
        }
        self.seen += 1;
        let mut skip = self.skip_rest;
        if m.has(M_DISABLING_LOCKDEP) {
            skip = true;
        } else if m.has(M_SENDING_NMI) {
            self.cpu_traceback = true;
        } else if self.seen > self.min_lines && (m.has(M_PANIC) || m.has(M_CIRCULAR)) {
            // Folklore: with panic_on_warn the report is followed by the panic's own stack,
            // and an oops often induces a lockdep report; both are cut once the report has
            // its `reportMinLines` (syzkaller's findReport). Pinned by
            // tests/golden/journal_warning_panic_on_warn.log.
            self.skip_rest = true;
            skip = true;
        }
        if skip {
            return;
        }
        self.append(t, matches!(own, Ctx::Task(_) | Ctx::Cpu(_)));
        if self.lines >= MAX_SYZ_LINES {
            self.done = true;
        }
    }
}

/// syzkaller's questionable frame: with a console prefix, a line holding ` ? ` (x86's
/// unreliable frame; `<EOI>` lines excepted) or ending ` (unreliable)` (powerpc) is left out.
fn syz_questionable(t: &str, ctx: Ctx, m: Marks) -> bool {
    ctx != Ctx::None && ((m.has(M_QUESTION) && !m.has(M_EOI)) || t.ends_with(" (unreliable)"))
}

#[derive(Debug)]
struct Open {
    /// Index into the report table ([`syz`]), or `None` for the events kmortem adds (OOM, MCE).
    oops: Option<usize>,
    extra: Option<Kind>,
    ctx: Ctx,
    lines: Vec<Line>,
    idle: usize,
    last_relevant: usize,
    seen_trace: bool,
    /// Own lines seen since an end marker, if one was seen.
    closing: Option<usize>,
    /// Line count when the end marker was seen.
    closing_at: usize,
    panicked: bool,
    /// kmortem's report ended (its `text`, frames and fields are final); syzkaller's text may
    /// still be read on for the title.
    body_done: bool,
    syz: Option<SyzText>,
    /// The input ended inside the report ([`Report::truncated`]).
    truncated: bool,
    /// The report reached [`MAX_REPORT_LINES`] and was closed there.
    capped: bool,
}

impl Open {
    fn new(oops: Option<usize>, extra: Option<Kind>, ctx: Ctx, line: Line) -> Self {
        let syz = oops.map(|_| SyzText::new(&line.text));
        Open {
            oops,
            extra,
            ctx,
            lines: vec![line],
            idle: 0,
            last_relevant: 0,
            seen_trace: false,
            closing: None,
            closing_at: 0,
            panicked: false,
            body_done: false,
            syz,
            truncated: false,
            capped: false,
        }
    }

    fn syz_done(&self) -> bool {
        self.syz.as_ref().is_none_or(|s| s.done)
    }
}

/// A header line held back one line: syzkaller ignores an oops line that the next line says
/// was cut by a console replay.
#[derive(Debug)]
struct Held {
    no: usize,
    text: String,
    ctx: Ctx,
    marks: Marks,
    header: Option<usize>,
    extra: Option<Kind>,
}

/// Incremental parser: feed it lines as they arrive (a stream, a 1 GB file) and collect reports
/// as soon as they are complete. Memory is bounded by the size of the reports in progress
/// (at most `MAX_OPEN` × `MAX_REPORT_LINES` × [`MAX_LINE`]).
#[derive(Debug, Default)]
pub struct Scanner {
    line_no: usize,
    /// The start of a line not yet ended by `\n` ([`Scanner::feed`]), capped at [`MAX_LINE`].
    partial: Vec<u8>,
    in_kmsg: bool,
    /// Context of the last kernel line, to tell a log cut inside a report.
    last_ctx: Option<Ctx>,
    /// Extended-netconsole fragments being reassembled (header line prefix kept per message).
    frags: input::Reassembler<String>,
    open: Vec<Open>,
    held: Option<Held>,
    /// Bytes given to [`Scanner::feed`], and the worker that builds reports past
    /// [`POOL_AFTER`] of them.
    fed: u64,
    pool: Option<Pool>,
    /// CR/NUL/escape-sequence cleanup of what [`Scanner::feed`] is given.
    norm: input::Normalizer,
}

fn is_end_marker(t: &str) -> bool {
    let t = t.trim();
    t.starts_with("---[ end ") || (t.len() >= 20 && t.bytes().all(|b| b == b'='))
}

/// Does a line look like part of a crash report (frames, registers, dump lines)?
fn relevant(t: &str) -> bool {
    let b = t.as_bytes();
    if b.is_empty() {
        return false;
    }
    if b[0] == b' ' || b[0] == b'\t' || b[0] == b'<' || b[0] == b'[' || b[0] == b'#' || b[0] == b'-'
    {
        return true;
    }
    // A searcher built once: `memmem::find` builds one per call, which cost more than the
    // rest of this test on the register lines of a report.
    static OFFSET: Needle = Needle::new("+0x");
    if OFFSET.is_in_bytes(b) {
        return true;
    }
    const PREFIXES: &[&str] = &[
        "RIP:",
        "RSP:",
        "RAX:",
        "RDX:",
        "RBP:",
        "R10:",
        "R13:",
        "FS:",
        "CS:",
        "CR2:",
        "DR",
        "Code:",
        "CPU:",
        "Hardware name:",
        "Call Trace",
        "Call trace",
        "Modules linked in",
        "Workqueue:",
        "Kernel panic",
        "Kernel Offset",
        "pc :",
        "lr :",
        "sp :",
        "x",
        "pstate",
        "Allocated",
        "Freed",
        "The buggy address",
        "Memory state",
        "page:",
        "flags:",
        "raw:",
        "page dumped",
        "Oops",
        "Internal error",
        "Mem abort",
        "ESR",
        "Data abort",
        "EC ",
        "SET ",
        "FSC",
        "CM ",
        "WnR",
        "PGD",
        "PUD",
        "PMD",
        "PTE",
        "#PF",
        "PKRU",
        "Stack:",
        "task:",
        "other info",
        "stack backtrace",
        "Disabling lock",
        "Rebooting",
        "Shutting down",
        "Showing",
        "NMI backtrace",
        "Sending NMI",
        "rcu:",
        "INFO:",
        "BUG",
        "WARNING",
        "Possible unsafe",
        "CPU0",
        "----",
        "lock(",
        "*** DEADLOCK",
        "Chain exists",
        "the existing",
        "which lock",
        "Unable to handle",
        "Last potentially",
        "Second to last",
        "The buggy",
        "Uninit",
        "Local variable",
        "Bytes ",
        "Byte ",
        "unreferenced object",
        "comm ",
        "hex dump",
        "backtrace",
        "kfence",
        "Use-after-free",
        "Out-of-bounds",
        "Invalid",
        "Corrupted memory",
        "Freed by",
        "allocated by",
        "freed by",
        "index ",
        "shift exponent",
        "signed integer",
        "load of value",
        "addr ",
        "ODEBUG",
        "refcount_t",
        "list_add",
        "list_del",
        "irq event stamp",
        "hardirqs",
        "softirqs",
        "IRQ",
        "EIP",
        "EAX",
        "ESI",
        "DS:",
        "ES:",
        "GS:",
        "PC is at",
        "LR is at",
        "psr:",
        "r10",
        "r9",
        "r6",
        "r3",
        "Flags:",
        "Control:",
        "Process ",
        "Exception stack",
        "Backtrace",
        "Stack: ",
        "Instruction dump",
        "NIP",
        "MSR",
        "GPR",
        "CFAR",
        "DAR",
        "DSISR",
        "TRAP",
        "SOFTE",
        "random:",
        "Dumping ftrace",
        "---[",
        "NMI watchdog",
        "Watchdog",
        "watchdog:",
        "Mem-Info",
        "Node ",
        "DMA",
        "Normal",
        "active_anon",
        "pages",
        "Tasks state",
        "[  pid  ]",
        "oom",
        "Out of memory",
        "Memory cgroup",
    ];
    // One anchored automaton instead of ~150 `starts_with` calls: this runs for every line of
    // an open report (`cargo bench -p kmortem-server --bench ingest`, the parser-alone anchor).
    static P: OnceLock<AhoCorasick> = OnceLock::new();
    let ac = P.get_or_init(|| {
        AhoCorasick::builder()
            .start_kind(aho_corasick::StartKind::Anchored)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(PREFIXES)
            .expect("static patterns")
    });
    ac.is_match(aho_corasick::Input::new(b).anchored(aho_corasick::Anchored::Yes))
}

impl Scanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// No report is open: no line seen so far can be part of a report still to come, so a
    /// caller keeping raw lines for excerpts may drop them.
    pub fn is_idle(&self) -> bool {
        self.open.is_empty() && self.held.is_none()
    }

    /// Feed one line (without its `\n`). Returns the reports completed by this line.
    ///
    /// The line is normalized first ([`input::Normalizer`]): escape sequences and NULs go, and
    /// a CR inside it ends a line (so one call may count as several lines).
    pub fn push_line(&mut self, line: &[u8]) -> Vec<Report> {
        // A CRLF line end is one line end.
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match input::Normalizer::line(line) {
            None => self.push_clean(line, false),
            Some(n) => {
                let mut done = Vec::new();
                for l in n.split(|&b| b == b'\n') {
                    done.extend(self.push_clean(l, false));
                }
                done
            }
        }
    }

    /// [`Scanner::push_line`] for a line already normalized. `vetted`: the line is known to
    /// hold one of [`START_LITERALS`] (the skip search of [`Scanner::feed`] stopped on it).
    fn push_clean(&mut self, line: &[u8], vetted: bool) -> Vec<Report> {
        self.line_no += 1;
        let mut done = Vec::new();
        if let Some(h) = self.held.take() {
            // Folklore: `** replaying previous printk message **` on the next line means the
            // oops line was cut by a console replay; syzkaller's isTruncatedByReplay does not
            // take it as a report start. Pinned by lib::tests::replayed_header_is_not_a_report.
            let replayed = REPLAY.is_in_bytes(line);
            let header = h.header.filter(|_| !replayed);
            done.extend(self.process(h.no, &h.text, h.ctx, h.marks, header, h.extra));
        }
        // Fast path: nothing open and nothing that could open a report.
        if self.open.is_empty() && !vetted && !start_filter().is_match(line) {
            self.in_kmsg = false;
            self.last_ctx = None;
            return done;
        }
        // Folklore: netconsole splits a message longer than ~1000 bytes into fragments
        // (`,ncfrag=<offset>/<total>` before the `;`, Documentation/networking/netconsole.rst);
        // a long `Modules linked in:` line is the usual victim. Fragments are joined by seq, in
        // any order, and the whole message is parsed as one line. Pinned by
        // lib::tests::netconsole_fragments.
        static NCFRAG: Needle = Needle::new(",ncfrag=");
        if let Some(rec) = NCFRAG
            .is_in_bytes(line)
            .then(|| input::parse_kmsg(line))
            .flatten()
        {
            if let Some((off, total)) = rec.ncfrag {
                self.line_no -= 1;
                return match self.reassemble(&rec, off as usize, total as usize) {
                    Some(whole) => {
                        done.extend(self.push_line(&whole));
                        done
                    }
                    None => done,
                };
            }
        }
        let c = line::clean(line, self.in_kmsg);
        if c.skip {
            return done;
        }
        self.in_kmsg = c.kmsg;
        let ctx = c.ctx;
        self.last_ctx = Some(ctx);
        // Folklore: syzkaller's symbolizer (and decode_stacktrace.sh) expands a frame into its
        // inline chain, one `func file.c:123 [inline]` line per inlined function, before the
        // line of the real frame; a header line gets the same treatment in mailed syzbot
        // reports (`BUG: KASAN: use-after-free in dst_check include/net/dst.h:470 [inline]`
        // above `... in tcp_v4_early_demux+0x95b/0x960`). The kernel printed only the last
        // one: the expansions are never a report start. Pinned by tests/syzbot_mailed.rs.
        let m = Marks::of(&c.text);
        let hit = m.has(M_START) && !c.text.ends_with(" [inline]");
        let header = if hit {
            m.has(M_HEADER)
                .then(|| syz::match_oops_candidate(&c.text))
                .flatten()
                .or_else(|| syz::match_extension(&c.text))
        } else {
            None
        };
        let extra = if hit && header.is_none() {
            extra_event(m)
        } else {
            None
        };
        if header.is_some_and(|h| !syz::is_extension(h)) {
            self.held = Some(Held {
                no: self.line_no,
                text: c.text.into_owned(),
                ctx,
                marks: m,
                header,
                extra,
            });
            return done;
        }
        done.extend(self.process(self.line_no, &c.text, ctx, m, header, extra));
        done
    }

    /// One decoded line: syzkaller's text of every open report, then kmortem's report of the
    /// line's context, then maybe a new report.
    fn process(
        &mut self,
        no: usize,
        text: &str,
        ctx: Ctx,
        m: Marks,
        header: Option<usize>,
        extra: Option<Kind>,
    ) -> Vec<Report> {
        let mut done = Vec::new();
        let syz_header = header.filter(|&h| !syz::is_extension(h));
        let starts_report = (syz_header.is_some() && !m.has(M_START_IGNORED))
            || (!self.open.is_empty() && m.has(M_INFO_STACK));
        let questionable = !self.open.is_empty() && syz_questionable(text, ctx, m);
        let mut k = 0;
        while k < self.open.len() {
            let o = &mut self.open[k];
            if let Some(s) = o.syz.as_mut() {
                s.push(o.ctx, text, ctx, m, questionable, starts_report);
                if o.body_done {
                    s.tail_seen += 1;
                    if ctx == o.ctx {
                        s.tail += 1;
                    }
                    if s.tail >= s.tail_max || s.tail_seen >= s.tail_max * 4 {
                        s.done = true;
                    }
                }
            }
            if o.body_done && o.syz_done() {
                let o = self.open.remove(k);
                self.complete(o, &mut done);
                continue;
            }
            k += 1;
        }
        // Route the line to the open report of its context, if any.
        let mut consumed = false;
        if let Some(i) = self.open.iter().position(|o| o.ctx == ctx && !o.body_done) {
            let o = &mut self.open[i];
            let mut close_now = false;
            let mut reprocess = false;
            let mut ended = false;
            if let Some(h) = header {
                let ignorable = m.has(M_START_IGNORED);
                if ignorable && o.oops.is_some() && !syz::is_extension(h) {
                    // Folklore: `invalid opcode: 0000` right after `kernel BUG at`, the
                    // `Kernel panic - not syncing` after an oops: same report (syzkaller's
                    // reportStartIgnores). Pinned by tests/golden/panic_after_oops.log.
                    if m.has(M_PANIC) {
                        o.panicked = true;
                    }
                    if let (Some(s), Some(oi)) = (o.syz.as_mut(), o.oops) {
                        if syz::is_extension(oi) && s.syz_start.is_none() {
                            // The syzkaller title of a kmortem-only report starts here.
                            let at = s.text.len().saturating_sub(text.len() + 1);
                            s.syz_start = Some((at, h));
                        }
                    }
                    o.closing = None;
                    o.lines.push(Line {
                        no,
                        text: text.to_string(),
                    });
                    o.last_relevant = o.lines.len() - 1;
                    o.idle = 0;
                    consumed = true;
                } else {
                    close_now = true;
                    reprocess = true;
                }
            } else if o.extra == Some(Kind::Oom) {
                o.lines.push(Line {
                    no,
                    text: text.to_string(),
                });
                o.last_relevant = o.lines.len() - 1;
                consumed = true;
                if m.has(M_KILLED) {
                    close_now = true;
                }
            } else if let Some(n) = o.closing {
                if m.has(M_PANIC) {
                    o.closing = None;
                    o.panicked = true;
                    o.lines.push(Line {
                        no,
                        text: text.to_string(),
                    });
                    o.last_relevant = o.lines.len() - 1;
                    consumed = true;
                } else if extra.is_some()
                    || (!relevant(text) && n + 1 >= PANIC_GRACE)
                    || o.lines.len() >= o.closing_at + MAX_CLOSING_LINES
                {
                    close_now = true;
                    reprocess = true;
                    ended = true;
                } else {
                    // Folklore: after `---[ end trace` x86 reprints RIP, Code and the registers
                    // (oops_end -> __show_regs) before `Kernel panic - not syncing`; those lines
                    // do not use up the grace. Pinned by the lab's console logs and
                    // lib::tests::panic_after_register_reprint.
                    o.closing = Some(n + usize::from(!relevant(text)));
                    o.lines.push(Line {
                        no,
                        text: text.to_string(),
                    });
                    consumed = true;
                }
            } else {
                o.lines.push(Line {
                    no,
                    text: text.to_string(),
                });
                consumed = true;
                let n = o.lines.len() - 1;
                if line::stack_start(text).is_some() {
                    o.seen_trace = true;
                }
                if is_end_marker(text) && n >= 3 {
                    o.last_relevant = n;
                    if m.has(M_END_PANIC) || (o.panicked && m.has(M_END)) {
                        close_now = true;
                        ended = true;
                    } else {
                        o.closing = Some(0);
                        o.closing_at = o.lines.len();
                    }
                } else if relevant(text) {
                    o.last_relevant = n;
                    o.idle = 0;
                } else {
                    o.idle += 1;
                    if o.idle >= MAX_IDLE_LINES {
                        close_now = true;
                    }
                }
                if o.lines.len() >= MAX_REPORT_LINES && !close_now {
                    // Announced as `truncated_reason: line_cap` (issue 25): a report this long
                    // is a flood (a lockdep chain loop, a console replay), and the cap bounds
                    // memory (`MAX_OPEN` reports of this many lines).
                    close_now = true;
                    o.capped = true;
                }
            }
            if close_now {
                // Folklore: with CONFIG_PRINTK_CALLER the task's own lines after a second
                // report still belong to the first one's title text (syzkaller's reportEnd
                // rule for caller contexts); without, the text ends at the next report. Pinned
                // by tests/golden/second_report_same_task.log.
                o.body_done = true;
                if let (true, Some(s)) = (ended, o.syz.as_mut()) {
                    s.tail_max = MAX_TAIL_AFTER_END;
                }
                if reprocess {
                    consumed = false;
                }
                if o.syz_done() {
                    let o = self.open.remove(i);
                    self.complete(o, &mut done);
                }
            }
        }
        if !consumed && (header.is_some() || extra.is_some()) {
            if self.open.len() >= MAX_OPEN {
                let o = self.open.remove(0);
                self.complete(o, &mut done);
            }
            let l = Line {
                no,
                text: text.to_string(),
            };
            let o = Open::new(header, if header.is_some() { None } else { extra }, ctx, l);
            if o.extra == Some(Kind::Oom) && m.has(M_KILLED) {
                // Folklore: a memory cgroup's OOM kill is often logged as its one summary line
                // (`Memory cgroup out of memory: Killed process 4133 (java) ...`, the dump
                // rate-limited away): the event is complete. Pinned by
                // lib::tests::oom_kill_line_alone.
                self.complete(o, &mut done);
            } else {
                self.open.push(o);
            }
        }
        done
    }

    /// Feed a chunk of raw input of any size (not necessarily ending at a line boundary); the
    /// fast path for big logs. While no report is open, lines that cannot start one are skipped
    /// with one vectorised multi-pattern search instead of being decoded one by one.
    pub fn feed(&mut self, data: &[u8]) -> Vec<Report> {
        let before = self.fed;
        self.fed += data.len() as u64;
        if self.pool.is_none() && before < POOL_AFTER && self.fed >= POOL_AFTER {
            self.pool = Pool::start();
        }
        let mut buf = Vec::new();
        let data = self.norm.push(data, &mut buf);
        let mut out = self.feed_lines(data);
        if let Some(p) = self.pool.as_mut() {
            p.flush(&mut out);
        }
        out
    }

    fn feed_lines(&mut self, mut data: &[u8]) -> Vec<Report> {
        let mut out = Vec::new();
        if !self.partial.is_empty() {
            match memchr::memchr(b'\n', data) {
                None => {
                    self.push_partial(data);
                    return out;
                }
                Some(i) => {
                    self.push_partial(&data[..i]);
                    let line = std::mem::take(&mut self.partial);
                    out.extend(self.push_clean(&line, false));
                    data = &data[i + 1..];
                }
            }
        }
        loop {
            let mut vetted = false;
            if self.open.is_empty() && self.held.is_none() {
                match start_filter().find(data) {
                    None => {
                        let rest = match memchr::memrchr(b'\n', data) {
                            Some(j) => {
                                self.line_no += count_newlines(&data[..=j]);
                                &data[j + 1..]
                            }
                            None => data,
                        };
                        self.in_kmsg = false;
                        self.last_ctx = None;
                        self.push_partial(rest);
                        return out;
                    }
                    Some(m) => {
                        let ls = memchr::memrchr(b'\n', &data[..m.start()]).map_or(0, |p| p + 1);
                        if ls > 0 {
                            self.line_no += count_newlines(&data[..ls]);
                            self.in_kmsg = false;
                            self.last_ctx = None;
                        }
                        data = &data[ls..];
                        vetted = true;
                    }
                }
            }
            match memchr::memchr(b'\n', data) {
                None => {
                    self.push_partial(data);
                    return out;
                }
                Some(i) => {
                    // The skip search stopped on this line: it holds a start literal.
                    out.extend(self.push_clean(&data[..i], vetted));
                    data = &data[i + 1..];
                }
            }
        }
    }

    /// Add one fragment; returns the whole record (as a plain kmsg line) once complete.
    fn reassemble(
        &mut self,
        rec: &input::KmsgRecord<'_>,
        off: usize,
        total: usize,
    ) -> Option<Vec<u8>> {
        let mut head = format!("{},{},{},-", rec.pri, rec.seq, rec.ts_usec);
        if let Some(c) = rec.caller {
            head.push_str(",caller=");
            head.push_str(c);
        }
        let (off, total) = (u32::try_from(off).ok()?, u32::try_from(total).ok()?);
        let stamp = self.line_no as u64;
        match self.frags.add(rec.seq, off, total, rec.text, head, stamp) {
            input::Frag::Complete(head, text) => {
                let mut line = head.into_bytes();
                line.push(b';');
                line.extend_from_slice(&text);
                Some(line)
            }
            input::Frag::Pending | input::Frag::Rejected(_) => None,
        }
    }

    fn push_partial(&mut self, b: &[u8]) {
        let room = (MAX_LINE + 1).saturating_sub(self.partial.len());
        self.partial.extend_from_slice(&b[..b.len().min(room)]);
    }

    /// The input stalled (a pipe from `dmesg -w` or a console with nothing new for a while):
    /// complete the reports still open as [`Scanner::finish`] would, and go on reading. The
    /// line numbers and the line being received are kept; a line that arrives later for a
    /// flushed report starts from scratch. Used by the CLI's streaming readers so that
    /// `(cat oops.txt; sleep 60) | kmortem explain` answers at once.
    pub fn flush(&mut self) -> Vec<Report> {
        if self.is_idle() {
            return Vec::new();
        }
        let partial = std::mem::take(&mut self.partial);
        let (line_no, fed) = (self.line_no, self.fed);
        let done = std::mem::take(self).finish();
        self.line_no = line_no;
        self.fed = fed;
        self.partial = partial;
        done
    }

    /// End of input: returns the reports still open (a log that ends mid-report).
    pub fn finish(mut self) -> Vec<Report> {
        let mut done = Vec::new();
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            done.extend(self.push_clean(&line, false));
        }
        if let Some(h) = self.held.take() {
            done.extend(self.process(h.no, &h.text, h.ctx, h.marks, h.header, h.extra));
        }
        let last_ctx = self.last_ctx;
        for mut o in std::mem::take(&mut self.open) {
            o.truncated = !o.body_done
                && last_ctx == Some(o.ctx)
                && o.idle == 0
                && o.closing.is_none()
                && !o.lines.iter().any(|l| is_end_marker(&l.text));
            // At the end of input the report keeps all its lines (syzkaller reads to the end
            // too); only a report in its grace period drops the trailing ones.
            if o.closing.is_none() && !o.body_done {
                o.last_relevant = o.lines.len() - 1;
            }
            self.complete(o, &mut done);
        }
        if let Some(pool) = self.pool.take() {
            done.extend(pool.close());
        }
        done.sort_by_key(|r| r.start_line);
        done
    }

    /// A report is complete: build it here, or hand it to the worker (big inputs, [`feed`]).
    ///
    /// [`feed`]: Scanner::feed
    fn complete(&mut self, o: Open, done: &mut Vec<Report>) {
        match self.pool.as_mut() {
            Some(p) => p.send(o),
            None => done.extend(finish_open(o)),
        }
    }
}

/// Inputs fed past this size get a worker thread that builds the reports (titles, fields) while
/// the scanner reads on: a crash-dense log spends about half its time there. Reports come back
/// in the order they were completed. 1 MiB (the CLI's first read) rather than more: the first
/// report built also compiles syzkaller's title expressions (about 150 M instructions), which
/// the worker then does while the scanner reads on (issue 15).
const POOL_AFTER: u64 = 1 << 20;

/// One worker building reports, FIFO, behind a bounded queue of batches (one batch per
/// [`Scanner::feed`] call: a hand-over per report cost more in thread wake-ups than the
/// building saved). Memory stays bounded: at most `QUEUE` batches of one read buffer's reports
/// wait.
struct Pool {
    tx: Option<std::sync::mpsc::SyncSender<Vec<Open>>>,
    rx: std::sync::mpsc::Receiver<Vec<Report>>,
    batch: Vec<Open>,
    worker: Option<std::thread::JoinHandle<()>>,
    /// Batches handed over and batches come back: `flush` returns exactly the batches sent
    /// before the current one, so which reports a `feed` call returns never depends on the
    /// worker's timing (the CLI sorts each call's reports by first line; with timing-dependent
    /// grouping, two runs on one file printed reports in different orders).
    sent: u64,
    received: u64,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}

impl Pool {
    fn start() -> Option<Pool> {
        const QUEUE: usize = 4;
        let (tx, work) = std::sync::mpsc::sync_channel::<Vec<Open>>(QUEUE);
        let (back, rx) = std::sync::mpsc::channel::<Vec<Report>>();
        let worker = std::thread::Builder::new()
            .name("kmortem-oops-reports".into())
            .spawn(move || {
                for batch in work {
                    let built: Vec<Report> = batch.into_iter().filter_map(finish_open).collect();
                    if back.send(built).is_err() {
                        return;
                    }
                }
            })
            .ok()?;
        Some(Pool {
            tx: Some(tx),
            rx,
            batch: Vec::new(),
            worker: Some(worker),
            sent: 0,
            received: 0,
        })
    }

    /// Queue a report for the next hand-over.
    fn send(&mut self, o: Open) {
        self.batch.push(o);
    }

    /// Hand the batch over; the batches handed over before it come back (waiting for them if
    /// the worker is behind: it lags by one batch at most, so reading and building overlap).
    /// A batch the worker cannot take (it is gone) is built here, after the ones before it.
    fn flush(&mut self, out: &mut Vec<Report>) {
        let mut refused = None;
        if !self.batch.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            match self.tx.as_ref() {
                Some(tx) => match tx.send(batch) {
                    Ok(()) => self.sent += 1,
                    Err(e) => refused = Some(e.0),
                },
                None => refused = Some(batch),
            }
        }
        let keep = if refused.is_some() { 0 } else { 1 };
        while self.received + keep < self.sent {
            match self.rx.recv() {
                Ok(built) => {
                    out.extend(built);
                    self.received += 1;
                }
                Err(_) => {
                    self.received = self.sent;
                    break;
                }
            }
        }
        if let Some(b) = refused {
            out.extend(b.into_iter().filter_map(finish_open));
        }
    }

    /// Every report still queued, once the worker is done.
    fn close(mut self) -> Vec<Report> {
        let mut out = Vec::new();
        self.flush(&mut out);
        drop(self.tx.take());
        for built in self.rx.iter() {
            out.extend(built);
        }
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        out
    }
}

const EXTRA_OOM_INVOKED: &str = "invoked oom-killer";
const EXTRA_OUT_OF_MEMORY: &str = "ut of memory";
const EXTRA_MCE: &str = "mce: [Hardware Error]";

/// Events that are not in syzkaller's table: OOM kills and machine checks, from the line's
/// [`Marks`].
fn extra_event(m: Marks) -> Option<Kind> {
    if m.has(M_OOM_INVOKED) {
        return Some(Kind::Oom);
    }
    // `Out of memory: Killed process`, `Memory cgroup out of memory: Killed process`.
    if m.has(M_KILLED) && m.has(M_OUT_OF_MEMORY) {
        return Some(Kind::Oom);
    }
    if m.has(M_MCE) {
        return Some(Kind::MachineCheck);
    }
    None
}

fn finish_open(mut o: Open) -> Option<Report> {
    let keep = (o.last_relevant + 1).min(o.lines.len());
    o.lines.truncate(keep.max(1));
    let mut r = build_report(&o);
    r.truncated = o.truncated || o.capped;
    r.truncated_reason = if o.truncated {
        Some("end_of_input".to_string())
    } else if o.capped {
        Some("line_cap".to_string())
    } else {
        None
    };
    Some(r)
}

/// syzkaller's title, alternative titles, `corrupted`, type and guilty file of a report text.
struct Titled {
    title: String,
    alts: Vec<String>,
    corrupted: Option<String>,
    crash_type: &'static str,
    guilty_file: Option<String>,
}

fn title_of(s: &SyzText, oops: usize) -> Titled {
    let text = s.text.as_bytes();
    let d = syz::describe(&text[..s.end], oops);
    let mut corrupted = d.corrupted.map(str::to_string);
    if corrupted.is_none() {
        corrupted = syz::is_corrupted(&d.title, text, oops, d.format).map(str::to_string);
    }
    if s.hangup {
        // GCE's console drops after a panic: the report is usually cut (syzkaller marks it).
        corrupted.get_or_insert_with(|| "console disconnected".to_string());
    }
    let title = syz::normalize_title(&d.title);
    let mut alts: Vec<String> = Vec::new();
    for a in &d.alt {
        let a = syz::normalize_title(a);
        if !a.is_empty() && !alts.contains(&a) {
            alts.push(a);
        }
    }
    Titled {
        title,
        alts,
        corrupted,
        crash_type: syz::crash_type(&d.title),
        guilty_file: syz::guilty_file(&d.title, text),
    }
}

fn build_report(o: &Open) -> Report {
    let lines = &o.lines;
    let start_line = lines.first().map_or(0, |l| l.no);
    let end_line = lines.last().map_or(0, |l| l.no);
    let full_text: String = lines
        .iter()
        .map(|l| l.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");

    let mut r = Report {
        title: String::new(),
        alt_titles: vec![],
        kind: Kind::Other,
        crash_type: String::new(),
        corrupted: false,
        corrupted_reason: None,
        guilty_frame: None,
        signature: String::new(),
        kernel_release: None,
        kernel_build: None,
        cpu: None,
        pid: None,
        comm: None,
        taint: None,
        hardware: None,
        ip: None,
        fault_address: None,
        registers: BTreeMap::new(),
        frames: vec![],
        code: None,
        modules: vec![],
        panic_message: None,
        start_line,
        end_line,
        text: full_text,
        truncated: false,
        truncated_reason: None,
        guilty_file: None,
        source: None,
    };

    if let (Some(oi), Some(s)) = (o.oops, o.syz.as_ref()) {
        let mut t = title_of(s, oi);
        if let Some((at, h)) = s.syz_start {
            // A kmortem-only header: syzkaller would title the report from its own header
            // further down; that title is the first alternative (the shared search key).
            let sub = SyzText {
                text: s.text[at..].to_string(),
                end: s.end.saturating_sub(at),
                ..SyzText::new("")
            };
            let st = title_of(&sub, h);
            t.alts.retain(|a| *a != st.title);
            t.alts.insert(0, st.title);
        }
        t.alts.retain(|a| *a != t.title);
        r.kind = kind_of(&t.title);
        // Folklore: without CONFIG_BUG_ON_DATA_CORRUPTION, list debugging only WARNs
        // (`list_add corruption. next->prev should be prev ...` then `WARNING: ... at
        // lib/list_debug.c`); the title stays syzkaller's, the kind says what it is.
        // Pinned by lib::tests::list_corruption_warning.
        if matches!(r.kind, Kind::Warning | Kind::KernelBug)
            && (r.text.contains("list_add corruption")
                || r.text.contains("list_del corruption")
                || r.text.contains("lib/list_debug.c"))
        {
            r.kind = Kind::ListCorruption;
        }
        r.crash_type = if syz::is_extension(oi) && t.crash_type == "UNKNOWN" {
            kmortem_type(r.kind).to_string()
        } else {
            t.crash_type.to_string()
        };
        r.guilty_frame = syz::title_frame(&t.title).filter(|f| f != "corrupted");
        r.title = t.title;
        r.alt_titles = t.alts;
        r.corrupted = t.corrupted.is_some();
        r.corrupted_reason = t.corrupted;
        r.guilty_file = t.guilty_file;
    } else {
        r.kind = o.extra.unwrap_or(Kind::Other);
    }

    fill_fields(&mut r, lines);
    if o.oops.is_none() {
        r.title = extra_title(&r, lines);
        r.crash_type = kmortem_type(r.kind).to_string();
    }
    r.signature = signature(&r);
    r
}

/// The type of what only kmortem reports (events, its own headers).
fn kmortem_type(k: Kind) -> &'static str {
    match k {
        Kind::Oom => "OOM",
        Kind::MachineCheck => "MACHINE-CHECK",
        Kind::HardLockup => "HANG",
        _ => "UNKNOWN",
    }
}

fn extra_title(r: &Report, lines: &[Line]) -> String {
    let mut t = extra_title_raw(r, lines);
    if t.len() > 120 {
        let mut cut = 120;
        while !t.is_char_boundary(cut) {
            cut -= 1;
        }
        t.truncate(cut);
    }
    t
}

fn extra_title_raw(r: &Report, lines: &[Line]) -> String {
    match r.kind {
        Kind::Oom => {
            // `Out of memory: Killed process 1234 (java) total-vm:...`
            static KILLED: Needle = Needle::new("Killed process");
            for l in lines {
                if let Some(p) = KILLED.find(&l.text) {
                    let rest = &l.text[p..];
                    if let (Some(a), Some(b)) = (rest.find('('), rest.find(')')) {
                        if a < b {
                            let mut t = String::with_capacity(24 + b - a);
                            t.push_str("OOM: killed process ");
                            t.push_str(&rest[a + 1..b]);
                            return t;
                        }
                    }
                }
            }
            match &r.comm {
                Some(c) => format!("OOM: {c} invoked oom-killer"),
                None => "OOM: oom-killer invoked".into(),
            }
        }
        Kind::MachineCheck => {
            // `mce: [Hardware Error]: CPU 12: Machine Check: 0 Bank 7: cc003f000008009f`: the
            // bank names the failing unit (memory controller, cache, bus), so it is the title.
            for l in lines {
                if let Some(p) = l.text.find(" Bank ") {
                    let bank: String = l.text[p + 6..]
                        .chars()
                        .take_while(|c| c.is_ascii_digit())
                        .collect();
                    if !bank.is_empty() {
                        return format!("machine check: bank {bank}");
                    }
                }
            }
            let first = lines.first().map_or("", |l| l.text.as_str());
            let rest = first
                .split("mce: [Hardware Error]:")
                .nth(1)
                .unwrap_or("")
                .trim();
            syz::normalize_title(&format!("machine check: {rest}"))
        }
        _ => lines
            .first()
            .map_or(String::new(), |l| syz::normalize_title(&l.text)),
    }
}

fn fill_fields(r: &mut Report, lines: &[Line]) {
    let mut stack = "call_trace";
    let mut context = Context::Task;
    let mut header_seen = false;
    for l in lines {
        let t = l.text.as_str();
        let ts = t.trim_start();
        if !header_seen {
            header_seen = true;
        }
        if r.fault_address.is_none() {
            r.fault_address = line::header_fault_address(t);
        }
        if let Some(p) = PANIC_MSG.find(t) {
            if r.panic_message.is_none() {
                r.panic_message = Some(t[p + 28..].trim().to_string());
            }
            continue;
        }
        if r.cpu.is_none() && ts.starts_with("CPU: ") && PID_FIELD.is_in(t) {
            if let Some(c) = line::parse_cpu_line(ts) {
                r.cpu = c.cpu;
                r.pid = c.pid;
                r.comm = c.comm;
                r.taint = c.taint;
                r.kernel_release = c.release;
                r.kernel_build = c.build;
            }
            continue;
        }
        // `      Not tainted 6.1.0-46-cloud-amd64 #1 Debian 6.1.192-2` (hung task, lockdep).
        if r.kernel_release.is_none()
            && (ts.starts_with("Not tainted ") || ts.starts_with("Tainted: "))
        {
            if let Some(c) = line::parse_cpu_line(&format!("CPU: 0 PID: 0 Comm: ? {ts}")) {
                r.taint = c.taint;
                r.kernel_release = c.release;
                r.kernel_build = c.build;
            }
            continue;
        }
        // Hung tasks: `task:postgres        state:D stack:0     pid:4182  ppid:4100 ...`.
        if r.pid.is_none() && ts.starts_with("task:") && ts.contains(" pid:") {
            let comm = ts["task:".len()..]
                .split(" state:")
                .next()
                .unwrap_or("")
                .trim();
            if !comm.is_empty() {
                r.comm = Some(comm.to_string());
            }
            r.pid = ts
                .split(" pid:")
                .nth(1)
                .and_then(|p| p.split_whitespace().next())
                .and_then(|p| p.parse().ok());
            continue;
        }
        if let Some(h) = ts.strip_prefix("Hardware name: ") {
            if r.hardware.is_none() {
                r.hardware = Some(h.trim().to_string());
            }
            continue;
        }
        if let Some(m) = ts.strip_prefix("Modules linked in:") {
            if r.modules.is_empty() {
                r.modules = line::parse_modules(m);
            }
            continue;
        }
        if ts.starts_with("Code: ") {
            if r.code.is_none() {
                r.code = line::parse_code(ts);
            }
            continue;
        }
        if let Some(ip) = line::parse_ip(ts) {
            if r.ip.is_none() {
                r.ip = Some(ip);
            }
            // RIP lines also carry registers (arm64 `pc : ...` does not).
        }
        if line::parse_registers(ts, &mut r.registers) {
            continue;
        }
        if let Some(s) = line::stack_start(ts) {
            stack = s;
            context = Context::Task;
            continue;
        }
        if let Some(c) = line::parse_context_marker(ts) {
            context = c.unwrap_or(Context::Task);
            continue;
        }
        if ts.starts_with("Exception stack") {
            continue;
        }
        if let Some(mut f) = line::parse_frame(t) {
            f.context = context;
            f.stack = stack.to_string();
            f.line = l.no;
            r.frames.push(f);
        }
    }
    if r.fault_address.is_none()
        && matches!(r.kind, Kind::NullPointerDereference | Kind::PagingRequest)
    {
        r.fault_address = r
            .registers
            .get("cr2")
            .copied()
            .or_else(|| r.registers.get("far").copied());
    }
    if r.ip.is_none() {
        // arm64 prints `pc : func+off/size` which parse_ip handles; arm32 has `PC is at`.
        for l in lines {
            if let Some(ip) = line::parse_ip(l.text.trim_start()) {
                r.ip = Some(ip);
                break;
            }
        }
    }
}

fn signature(r: &Report) -> String {
    let mut picked: Vec<&str> = Vec::new();
    // The faulting function heads the key: x86 traces start at its caller.
    if let Some(f) = r.ip.as_ref().and_then(|ip| ip.function.as_deref()) {
        let base = line::base_function(f);
        if !base.is_empty() && !line::generic_frame(base) {
            picked.push(base);
        }
    }
    // The report's own call trace (not lockdep's dependency chains or KASAN's alloc/free
    // stacks) when there is one.
    let first_stack = if r.frames.iter().any(|f| f.stack == "call_trace") {
        Some("call_trace".to_string())
    } else {
        r.frames.first().map(|f| f.stack.clone())
    };
    let mut started = false;
    for f in &r.frames {
        if Some(&f.stack) != first_stack.as_ref() {
            if started {
                break;
            }
            continue;
        }
        started = true;
        if !f.reliable {
            continue;
        }
        let base = line::base_function(&f.function);
        if base.is_empty() || line::generic_frame(base) || picked.contains(&base) {
            continue;
        }
        picked.push(base);
        if picked.len() == 3 {
            break;
        }
    }
    let kind = r.kind.as_str();
    if picked.is_empty() {
        let mut s = String::with_capacity(kind.len() + 1 + r.title.len());
        s.push_str(kind);
        s.push(':');
        s.push_str(&r.title);
        return s;
    }
    format!("{kind}:{}", picked.join("|"))
}

/// The kind of a report, from its (normalised) title.
fn kind_of(title: &str) -> Kind {
    let t = title;
    let has = |s: &str| t.contains(s);
    if t.starts_with("KASAN") {
        Kind::Kasan
    } else if t.starts_with("KMSAN") {
        Kind::Kmsan
    } else if t.starts_with("KCSAN") {
        Kind::Kcsan
    } else if t.starts_with("KFENCE") {
        Kind::Kfence
    } else if t.starts_with("UBSAN") {
        Kind::Ubsan
    } else if has("NULL pointer dereference") {
        Kind::NullPointerDereference
    } else if has("unable to handle kernel") || has("Unhandled fault") {
        Kind::PagingRequest
    } else if t.starts_with("general protection fault") || t.starts_with("stack segment") {
        Kind::GeneralProtectionFault
    } else if has("corrupted list") {
        Kind::ListCorruption
    } else if t.starts_with("kernel BUG") || t.starts_with("BUG: bad usercopy") {
        Kind::KernelBug
    } else if t.starts_with("invalid opcode") || t.starts_with("int3") {
        Kind::InvalidOpcode
    } else if t.starts_with("divide error") {
        Kind::DivideError
    } else if t.starts_with("PANIC: double fault") {
        Kind::DoubleFault
    } else if has("stack is corrupted") {
        Kind::StackProtector
    } else if has("corrupted stack end") || has("stack guard page") || has("stack overflow") {
        Kind::StackCorruption
    } else if has("soft lockup") {
        Kind::SoftLockup
    } else if has("hard LOCKUP") || has("hard lockup") {
        Kind::HardLockup
    } else if t.starts_with("INFO: task hung")
        || t.starts_with("INFO: task can't die")
        || has("hung_task")
    {
        Kind::HungTask
    } else if has("rcu detected stall") {
        Kind::RcuStall
    } else if has("workqueue lockup") {
        Kind::WorkqueueLockup
    } else if t.starts_with("WARNING: refcount bug") {
        Kind::RefcountWarning
    } else if t.starts_with("WARNING: ODEBUG") {
        Kind::OdebugWarning
    } else if has("Bad page") {
        Kind::BadPageState
    } else if has("possible deadlock")
        || has("inconsistent lock state")
        || has("locking bug")
        || has("lock held")
        || has("unlock balance")
        || has("suspicious RCU usage")
        || has("non-static key")
        || has("still has locks held")
        || has("nested lock")
        || has("held lock freed")
        || has("spinlock")
        || has("rwlock")
        || has("Invalid wait context")
    {
        Kind::Lockdep
    } else if has("scheduling while atomic") {
        Kind::SchedulingWhileAtomic
    } else if has("sleeping function called from invalid context") || has("in preemptible code") {
        Kind::SleepingInAtomic
    } else if t.starts_with("memory leak") {
        Kind::MemoryLeak
    } else if t.starts_with("WARNING") {
        Kind::Warning
    } else if t.starts_with("kernel panic") {
        Kind::Panic
    } else {
        Kind::Other
    }
}

/// Parse a whole log. Equivalent to feeding every line to a [`Scanner`]; reports are sorted by
/// their first line.
pub fn parse(input: &[u8]) -> Vec<Report> {
    let mut s = Scanner::new();
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let input = input::Normalizer::new().push(input, &mut buf);
    let input = input.strip_suffix(b"\n").unwrap_or(input);
    if !input.is_empty() {
        for line in input.split(|&b| b == b'\n') {
            out.extend(s.push_clean(line, false));
        }
    }
    out.extend(s.finish());
    out.sort_by_key(|r| r.start_line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(log: &str) -> Report {
        let mut r = parse(log.as_bytes());
        assert_eq!(r.len(), 1, "{r:#?}");
        r.remove(0)
    }

    /// Folklore: x86 hard lockups come from the NMI watchdog (kernel/watchdog_hld.c) and
    /// print the interrupted context's registers and trace.
    #[test]
    fn hard_lockup() {
        let r = one("[ 9.0] NMI watchdog: Watchdog detected hard LOCKUP on cpu 3\n[ 9.0] CPU: 3 PID: 1 Comm: x Not tainted 5.4.0 #1\n[ 9.0] RIP: 0010:spin_loop_fn+0x5/0x10 [bad]\n[ 9.0] Call Trace:\n[ 9.0]  <NMI>\n[ 9.0]  bad_ioctl+0x20/0x40 [bad]\n[ 9.0]  do_syscall_64+0x33/0x80\n");
        assert_eq!(r.kind, Kind::HardLockup);
        assert_eq!(r.title, "BUG: hard lockup in bad_ioctl");
        assert_eq!(r.frames[0].context, Context::Nmi);
    }

    /// OOM kills are events, and the report ends at the `Killed process` line.
    #[test]
    fn oom_is_an_event() {
        let r = parse(b"[1.0] a invoked oom-killer: gfp_mask=0x0\n[1.1] Out of memory: Killed process 12 (a) total-vm:1kB\n[1.2] BUG: soft lockup - CPU#0 stuck for 22s! [b:1]\n");
        assert_eq!(r.len(), 2);
        assert!(r[0].kind.is_event());
        assert_eq!(r[0].title, "OOM: killed process a");
        assert_eq!(r[0].end_line, 2);
        assert_eq!(r[1].kind, Kind::SoftLockup);
    }

    #[test]
    fn newline_count() {
        for n in [0, 1, 31, 32, 33, 8160, 8161, 100_000] {
            let b: Vec<u8> = (0..n)
                .map(|i| if i % 7 == 3 { b'\n' } else { b'x' })
                .collect();
            assert_eq!(
                count_newlines(&b),
                b.iter().filter(|&&x| x == b'\n').count(),
                "{n}"
            );
        }
        assert_eq!(count_newlines(&[b'\n'; 20_000]), 20_000);
    }

    #[test]
    fn start_filter_covers_every_header() {
        let mut all = syz::headers();
        all.push("Watchdog detected hard LOCKUP");
        all.extend([
            "invoked oom-killer",
            "Killed process",
            "mce: [Hardware Error]",
        ]);
        for h in all {
            assert!(start_filter().is_match(h), "{h} escapes the start filter");
        }
    }

    /// The one pass of [`Marks::of`] (a DFA walked by hand) finds what the separate searches
    /// it replaced found: the start filter, the header literals, the event needles and each
    /// mark, on every line of the golden logs and on lines made of the literals themselves.
    #[test]
    fn marks_agree_with_separate_searches() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut lines: Vec<String> = Vec::new();
        for d in [root.join("tests/golden"), root.join("../../examples")] {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "log") {
                    let raw = std::fs::read(&p).unwrap();
                    for l in raw.split(|&b| b == b'\n') {
                        lines.push(line::clean(l, false).text.into_owned());
                    }
                }
            }
        }
        let mut lits: Vec<&str> = START_LITERALS.to_vec();
        lits.extend(syz::headers());
        lits.extend(syz::REPORT_START_IGNORES);
        lits.extend(syz::INFO_WITH_STACK);
        lits.extend([
            EXTRA_OOM_INVOKED,
            EXTRA_OUT_OF_MEMORY,
            EXTRA_MCE,
            " ? ",
            "<EOI>",
        ]);
        for (i, a) in lits.iter().enumerate() {
            lines.push(format!("x{a}"));
            lines.push(format!("{a} {}", lits[(i * 7 + 3) % lits.len()]));
            lines.push(a[..a.len() - 1].to_string());
        }
        let has = |t: &str, n: &str| t.contains(n);
        let mut hits = 0;
        for t in &lines {
            let m = Marks::of(t);
            assert_eq!(m.has(M_START), start_filter().is_match(t), "start: {t:?}");
            let header = syz::headers().iter().any(|h| has(t, h));
            assert_eq!(m.has(M_HEADER), header, "header: {t:?}");
            assert_eq!(
                m.has(M_HEADER)
                    .then(|| syz::match_oops_candidate(t))
                    .flatten(),
                syz::match_oops(t),
                "match_oops: {t:?}"
            );
            let old_extra = if has(t, EXTRA_OOM_INVOKED)
                || (has(t, "Killed process") && has(t, EXTRA_OUT_OF_MEMORY))
            {
                Some(Kind::Oom)
            } else if has(t, EXTRA_MCE) {
                Some(Kind::MachineCheck)
            } else {
                None
            };
            assert_eq!(extra_event(m), old_extra, "extra: {t:?}");
            for (bit, needles) in [
                (M_QUESTION, &[" ? "][..]),
                (M_EOI, &["<EOI>"]),
                (M_PANIC, &["Kernel panic - not syncing"]),
                (M_KILLED, &["Killed process"]),
                (M_END, &["---[ end"]),
                (M_END_PANIC, &["end Kernel panic"]),
                (M_START_IGNORED, syz::REPORT_START_IGNORES),
                (M_INFO_STACK, syz::INFO_WITH_STACK),
            ] {
                assert_eq!(
                    m.has(bit),
                    needles.iter().any(|n| has(t, n)),
                    "bit {bit:#x}: {t:?}"
                );
            }
            hits += usize::from(m.0 != 0);
        }
        println!("{} lines, {hits} with marks", lines.len());
        assert!(hits > 150 && lines.len() > 500, "too few lines to compare");
    }

    #[test]
    fn oom_kill_line_alone() {
        let r = parse(b"[1.0] Memory cgroup out of memory: Killed process 4133 (java) total-vm:1kB\n[1.1] eth0: link up\n[1.2] Out of memory: Killed process 12 (a) total-vm:1kB\n");
        assert_eq!(r.len(), 2, "{r:#?}");
        assert_eq!(
            (r[0].title.as_str(), r[0].end_line),
            ("OOM: killed process java", 1)
        );
        assert_eq!(
            (r[1].title.as_str(), r[1].start_line),
            ("OOM: killed process a", 3)
        );
    }

    /// syzkaller's isTruncatedByReplay: an oops line cut by a console replay starts nothing.
    #[test]
    fn replayed_header_is_not_a_report() {
        let r = parse(b"[1.0] BUG: unable to handle\n[1.1] ** replaying previous printk message **\n[1.2] eth0: up\n");
        assert!(r.is_empty(), "{r:#?}");
        let r = parse(b"[1.0] BUG: unable to handle\n[1.2] eth0: up\n");
        assert_eq!(r.len(), 1);
    }

    /// syzkaller's `reportStartIgnores`: `invalid opcode` after `kernel BUG at` and the panic
    /// after an oops do not start reports of their own.
    #[test]
    fn follow_on_headers_join_the_report() {
        let r = parse(b"[1.0] kernel BUG at mm/x.c:1!\n[1.0] invalid opcode: 0000 [#1] SMP\n[1.0] RIP: 0010:foo+0x1/0x2\n[1.0] Call Trace:\n[1.0]  bar+0x1/0x2\n[1.0] ---[ end trace 0 ]---\n[1.1] Kernel panic - not syncing: Fatal exception\n");
        assert_eq!(r.len(), 1, "{r:#?}");
        assert_eq!(r[0].title, "kernel BUG in foo");
        assert_eq!(r[0].panic_message.as_deref(), Some("Fatal exception"));
        assert_eq!(r[0].end_line, 7);
    }

    #[test]
    fn panic_after_register_reprint() {
        let mut log = String::from("[1.0] BUG: kernel NULL pointer dereference, address: 0000000000000000\n[1.0] RIP: 0010:f+0x1/0x2\n[1.0] Call Trace:\n[1.0]  g+0x1/0x2\n[1.0] ---[ end trace 0000000000000000 ]---\n[1.0] RIP: 0010:f+0x1/0x2\n");
        for r in [
            "RSP: 0018:0 EFLAGS: 0",
            "RAX: 0 RBX: 0 RCX: 0",
            "RDX: 0 RSI: 0 RDI: 0",
            "RBP: 0 R08: 0 R09: 0",
            "R10: 0 R11: 0 R12: 0",
            "R13: 0 R14: 0 R15: 0",
            "FS:  0(0000) GS:0(0000) knlGS:0",
            "CS:  0010 DS: 0000 ES: 0000 CR0: 0",
            "CR2: 0 CR3: 0 CR4: 0",
        ] {
            log.push_str(&format!("[1.0] {r}\n"));
        }
        log.push_str("[1.1] Kernel panic - not syncing: Fatal exception\n[1.1] Kernel Offset: disabled\n[1.1] ---[ end Kernel panic - not syncing: Fatal exception ]---\n");
        let r = one(&log);
        assert_eq!(r.panic_message.as_deref(), Some("Fatal exception"));
        assert_eq!(r.end_line, 18);
    }

    #[test]
    fn rcu_stall_modern() {
        let log = "[12.8] rcu: INFO: rcu_preempt self-detected stall on CPU\n\
[12.8] rcu: \t0-....: (711 ticks this GP) idle=8f4c/1/0x4000000000000000 softirq=311/311 fqs=358\n\
[12.8] CPU: 0 PID: 105 Comm: kmlab-spin Tainted: G           OE      6.1.0-46-cloud-amd64 #1  Debian 6.1.192-2\n\
[12.8] RIP: 0010:kmlab_spin_reader.constprop.0+0x1b/0x20 [kmlab]\n\
[12.8] Call Trace:\n\
[12.8]  <TASK>\n\
[12.8]  kmlab_spin_reader_thread+0xa/0x10 [kmlab]\n\
[12.8]  kthread+0xda/0x100\n\
[12.8]  ? kthread_complete_and_exit+0x20/0x20\n\
[12.8]  ret_from_fork+0x22/0x30\n\
[12.8]  </TASK>\n";
        // Folklore: 5.19+ prints the interrupted task's registers and trace right after the
        // stall line, with no `apic_timer_interrupt` frame before the RIP; syzkaller's rcu
        // stack parts need one, so its title names no frame. kmortem's fallback parts name
        // the looping task's frame, and keep syzkaller's title (a search key shared with
        // syzbot) as the first alternative.
        let r = one(log);
        assert_eq!(
            r.title,
            "INFO: rcu detected stall in kmlab_spin_reader_thread"
        );
        assert_eq!(
            r.alt_titles.first().map(String::as_str),
            Some("INFO: rcu detected stall in corrupted")
        );
        assert!(!r.corrupted);
        assert_eq!(r.kind, Kind::RcuStall);
        assert!(
            r.signature.contains("kmlab_spin_reader_thread"),
            "{}",
            r.signature
        );
    }

    #[test]
    fn warning_backports_path() {
        let r = one("[18.5] WARNING: CPU: 0 PID: 155 at /var/lib/dkms/kmlab/1.0/6.13.2+deb12-amd64/kmlab.c:287 kmlab_put_ref+0x17/0x20 [kmlab]\n[18.5] RIP: 0010:kmlab_put_ref+0x17/0x20 [kmlab]\n[18.5] Call Trace:\n[18.5]  <TASK>\n[18.5]  kmlab_trigger_write+0x5a/0x90 [kmlab]\n[18.5]  vfs_write+0xc6/0x3c0\n[18.5] ---[ end trace 0000000000000000 ]---\n");
        assert_eq!(r.title, "WARNING in kmlab_put_ref");
        assert_eq!(r.kind, Kind::Warning);
    }

    #[test]
    fn list_corruption_warning() {
        let r = one("[5.0] list_add corruption. next->prev should be prev (ffff888003c0b2f8), but was 0000000000000000. (next=ffff888003c0b2f0).\n[5.0] WARNING: CPU: 1 PID: 9 at lib/list_debug.c:29 __list_add_valid+0x7e/0xa0\n[5.0] RIP: 0010:__list_add_valid+0x7e/0xa0\n[5.0] Call Trace:\n[5.0]  enqueue_entity+0x214/0x540\n[5.0]  enqueue_task_fair+0x9c/0x4b0\n[5.0] ---[ end trace 0000000000000000 ]---\n");
        assert_eq!(r.title, "WARNING in enqueue_entity");
        assert_eq!(r.kind, Kind::ListCorruption);
    }

    /// A panic on its own is a report.
    #[test]
    fn lone_panic() {
        let r = one("[1.0] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n");
        assert_eq!(
            r.title,
            "kernel panic: VFS: Unable to mount root fs on unknown-block(NUM,NUM)"
        );
        assert_eq!(r.kind, Kind::Panic);
    }

    /// Very long lines are cut at MAX_LINE, NULs do not hide text, and nothing panics on
    /// garbage.
    #[test]
    fn hostile_input() {
        let mut log = vec![b'A'; 10 * MAX_LINE];
        log.extend_from_slice(b"\n\0\0BUG: soft lockup - CPU#0 stuck\xff\xfe\n");
        let r = parse(&log);
        assert_eq!(r.len(), 1);
        assert!(r[0].title.starts_with("BUG: soft lockup"));
        assert_eq!(r[0].start_line, 2);
        for junk in [
            &b"\n\n\n"[..],
            b"[",
            b"[ 1.0]",
            b"Code: <",
            b"RIP: 0010:",
            b"CPU: 1 PID:",
            b"\xff",
        ] {
            let _ = parse(junk);
        }
    }

    /// Extended netconsole with the `r` option: the release is the first comma field.
    #[test]
    fn netconsole_extended_with_release() {
        let log = b"6.1.0-43-cloud-amd64,4,900,1000,-;BUG: kernel NULL pointer dereference, address: 0000000000000008\n\
6.1.0-43-cloud-amd64,4,901,1001,-;CPU: 0 PID: 7 Comm: kworker/0:1 Not tainted 6.1.0-43-cloud-amd64 #1 Debian 6.1.187-1\n\
6.1.0-43-cloud-amd64,4,902,1002,-;RIP: 0010:nvme_poll+0x1c/0x40 [nvme]\n\
6.1.0-43-cloud-amd64,4,903,1003,-;Call Trace:\n\
6.1.0-43-cloud-amd64,4,904,1004,-; blk_mq_poll+0x3e/0x80\n";
        let r = one(std::str::from_utf8(log).unwrap());
        assert_eq!(
            r.title,
            "BUG: unable to handle kernel NULL pointer dereference in nvme_poll"
        );
        assert_eq!(r.fault_address, Some(8));
        assert_eq!(r.frames[0].function, "blk_mq_poll");
        assert_eq!(r.kernel_release.as_deref(), Some("6.1.0-43-cloud-amd64"));
    }

    /// A 10 MB line without `\n` fed in chunks keeps at most MAX_LINE bytes in memory and the
    /// line numbers stay right.
    #[test]
    fn feed_endless_line() {
        let mut s = Scanner::new();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..10 {
            assert!(s.feed(&chunk).is_empty());
            assert!(s.partial.len() <= MAX_LINE + 1);
        }
        let mut out = s.feed(
            b"\n[1.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000009\n",
        );
        out.extend(s.finish());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].start_line, 2);
        assert_eq!(out[0].title, "kernel panic: Attempted to kill init!");
    }

    #[test]
    fn netconsole_fragments() {
        let hdr = "BUG: kernel NULL pointer dereference, address: 0000000000000008";
        let (a, b) = hdr.split_at(20);
        let log = format!(
            "4,900,1000,-,ncfrag=20/{t};{b}\n4,900,1000,-,ncfrag=0/{t};{a}\n4,901,1001,-;RIP: 0010:nvme_poll+0x1c/0x40 [nvme]\n4,902,1002,-;Call Trace:\n4,903,1003,-; blk_mq_poll+0x3e/0x80\n",
            t = hdr.len()
        );
        let r = parse(log.as_bytes());
        assert_eq!(r.len(), 1, "{r:#?}");
        assert_eq!(
            r[0].title,
            "BUG: unable to handle kernel NULL pointer dereference in nvme_poll"
        );
    }

    /// Past `POOL_AFTER` bytes `feed` builds reports on a worker thread: the same reports.
    #[test]
    fn feed_with_worker_agrees() {
        let log = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/interleaved_callers.log"
        ))
        .unwrap();
        let mut big = Vec::new();
        while big.len() < (POOL_AFTER as usize) * 2 {
            big.extend_from_slice(&b"[1.0] eth0: link up\n".repeat(2000));
            big.extend_from_slice(&log);
            big.extend_from_slice(b"[2.0] Memory cgroup out of memory: Killed process 7 (java)\n");
        }
        // Line by line, without a worker: reports in the order they complete.
        let mut s = Scanner::new();
        let mut want = Vec::new();
        for l in big.strip_suffix(b"\n").unwrap().split(|&b| b == b'\n') {
            want.extend(s.push_line(l));
        }
        want.extend(s.finish());
        let mut s = Scanner::new();
        let mut got = Vec::new();
        for c in big.chunks(1 << 20) {
            got.extend(s.feed(c));
        }
        assert!(s.pool.is_some());
        got.extend(s.finish());
        assert!(want.len() > 100);
        // Batches come back sorted by their first line, as without the worker.
        want.sort_by_key(|r| r.start_line);
        got.sort_by_key(|r| r.start_line);
        assert_eq!(got, want);
    }

    /// Which reports each `feed` call returns does not depend on the worker's timing: the
    /// batches handed over before the current one come back, no more, no fewer. A worker slowed
    /// down (a pause in the test's feed loop gives it time to finish everything) must give the
    /// same grouping as one racing the scanner.
    #[test]
    fn feed_grouping_does_not_depend_on_the_worker() {
        let log = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/interleaved_callers.log"
        ))
        .unwrap();
        let mut big = Vec::new();
        while big.len() < (POOL_AFTER as usize) * 3 {
            big.extend_from_slice(&b"[1.0] eth0: link up\n".repeat(200));
            big.extend_from_slice(&log);
        }
        let run = |pause: bool| {
            let mut s = Scanner::new();
            let mut calls = Vec::new();
            for c in big.chunks(1 << 18) {
                let got = s.feed(c);
                calls.push(got.iter().map(|r| r.start_line).collect::<Vec<_>>());
                if pause {
                    std::thread::sleep(std::time::Duration::from_millis(30));
                }
            }
            calls.push(s.finish().iter().map(|r| r.start_line).collect());
            calls
        };
        let (racing, paused) = (run(false), run(true));
        assert!(racing.iter().map(Vec::len).sum::<usize>() > 100);
        assert_eq!(racing, paused);
    }

    /// `feed` with arbitrary chunk boundaries finds the same reports as `parse`.
    #[test]
    fn feed_chunking_agrees() {
        let log = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/interleaved_callers.log"
        ))
        .unwrap();
        let mut padded = b"noise line\n".repeat(50);
        padded.extend_from_slice(&log);
        padded.extend_from_slice(&b"more noise\n".repeat(80));
        let want = parse(&padded);
        for chunk in [1, 7, 64, 4096] {
            let mut s = Scanner::new();
            let mut got = Vec::new();
            for c in padded.chunks(chunk) {
                got.extend(s.feed(c));
            }
            got.extend(s.finish());
            got.sort_by_key(|r| r.start_line);
            assert_eq!(got, want, "chunk size {chunk}");
        }
    }

    #[test]
    fn oops_header_uses_the_table() {
        assert_eq!(
            oops_header("BUG: KASAN: use-after-free in foo+0x1/0x2"),
            Some("BUG:")
        );
        assert_eq!(
            oops_header("kernel BUG at fs/ext4/inode.c:1234!"),
            Some("kernel BUG")
        );
        assert_eq!(oops_header(" foo+0x1/0x2"), None);
        assert_eq!(oops_header("Call Trace:"), None);
    }

    /// A report that reaches the 2,000-line cap says so (issue 25): `truncated` with reason
    /// `line_cap`; a log that ends inside a report gives `end_of_input`.
    #[test]
    fn line_cap_is_announced() {
        let mut log = String::from(
            "[1.0] BUG: kernel NULL pointer dereference, address: 0000000000000008\n[1.0] Call Trace:\n",
        );
        for i in 0..2500 {
            log.push_str(&format!("[1.0]  func{i}+0x1/0x20\n"));
        }
        let rs = parse(log.as_bytes());
        let r = &rs[0];
        assert!(r.truncated);
        assert_eq!(r.truncated_reason.as_deref(), Some("line_cap"));
        assert_eq!(r.end_line - r.start_line + 1, MAX_REPORT_LINES);
        let r = one("[1.0] BUG: kernel NULL pointer dereference, address: 0000000000000008\n[1.0] Call Trace:\n[1.0]  f+0x1/0x2\n");
        assert_eq!(r.truncated_reason.as_deref(), Some("end_of_input"));
        let r = one("[1.0] BUG: kernel NULL pointer dereference, address: 0000000000000008\n[1.0] Call Trace:\n[1.0]  f+0x1/0x2\n[1.0] ---[ end trace 0000000000000000 ]---\n");
        assert_eq!((r.truncated, r.truncated_reason), (false, None));
    }

    /// ANSI colours, NULs and CR-only line ends do not hide a report (the lab's real consoles
    /// are checked the same way in tests/hostile_logs.rs).
    #[test]
    fn ansi_nul_cr_lines() {
        let plain = "[ 1.0] BUG: kernel NULL pointer dereference, address: 0000000000000008\n[ 1.0] CPU: 0 PID: 1 Comm: sh Not tainted 6.1.0-1-amd64 #1 Debian 6.1.1-1\n[ 1.0] Call Trace:\n[ 1.0]  f+0x1/0x2\n";
        let want = one(plain);
        let hostile = plain
            .replace("[ 1.0]", "\x1b[32m[ 1.0]\x1b[0m\0")
            .replace("BUG:", "\x1b[1;31mBUG:\x1b[0m")
            .replace("6.1.0-1", "6.1\0.0-1")
            .replace('\n', "\r");
        let got = one(&hostile);
        assert_eq!(
            (
                &got.title,
                &got.kernel_release,
                got.start_line,
                got.end_line,
                &got.frames
            ),
            (
                &want.title,
                &want.kernel_release,
                want.start_line,
                want.end_line,
                &want.frames
            )
        );
        assert_eq!(got.kernel_release.as_deref(), Some("6.1.0-1-amd64"));
    }

    /// A stalled stream: `flush` completes the open report now, numbering goes on after it.
    #[test]
    fn flush_completes_open_reports_and_goes_on() {
        let mut s = Scanner::new();
        let log = "[1.0] BUG: kernel NULL pointer dereference, address: 0000000000000008\n[1.0] Call Trace:\n[1.0]  f+0x1/0x2\n";
        assert!(s.feed(log.as_bytes()).is_empty());
        let r = s.flush();
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].start_line, r[0].end_line), (1, 3));
        assert!(s.is_idle() && s.flush().is_empty());
        let mut r = s.feed(log.as_bytes());
        r.extend(s.finish());
        assert_eq!((r[0].start_line, r[0].end_line), (4, 6));
    }
}
