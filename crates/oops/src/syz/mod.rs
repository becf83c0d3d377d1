//! syzkaller-compatible titles. The rules are syzkaller's `pkg/report` for Linux (reference copy
//! of `linux.go` and `report.go` at commit 1e72964b0111 in `../shared/reference/`), rewritten in
//! Rust: the report table is data ([`table`]), the stack parameters are data ([`stack`]), the
//! crash types are data ([`types`]), and this module is the engine that reads them:
//! `extractDescription` ([`describe`]), `extractStackFrame`, `isCorrupted` ([`is_corrupted`]),
//! `dynamicTitleReplacement` + `sanitizeTitle` ([`normalize_title`]) and `extractGuiltyFile`
//! ([`guilty_file`]).
//!
//! Every regexp is compiled with the `regex` crate (linear time) on first use of its header,
//! and only ever runs on the text of one report (bounded), never on a whole log.

mod demangle;
mod guilty;
mod stack;
mod table;
mod types;

pub(crate) use guilty::guilty_file;
use regex::bytes::{Regex, RegexBuilder};
use std::sync::OnceLock;
use table::{Extractor, Part};

/// Expands syzkaller's placeholders. Go's RE2 reads `\<` and `\>` as literal angle brackets;
/// the `regex` crate reads them as word boundaries, so they are unescaped.
///
/// Folklore: an out-of-tree module's WARN names the absolute path it was built from, and
/// Debian's backports releases carry a `+` (`.../6.12.x+deb12-cloud-amd64/.../kmlab.c:287`,
/// as do DKMS trees under `/var/lib/dkms/<mod>/<ver>/<release>/`); syzkaller's `{{SRC}}`
/// has no `+` and leaves such a WARNING titled by its raw first line. kmortem's `{{SRC}}` also
/// takes `+` and `~`. Pinned by the lab's `warning` scenario on 6.12
/// (crates/lab/tests/titles.rs) and `tests::warning_backports_path`.
fn expand(re: &str) -> String {
    re.replace("{{ADDR}}", "0x[0-9a-f]+")
        .replace("{{PC}}", r"\[<?(?:0x)?[0-9a-f]+>?\]")
        .replace("{{FUNC}}", r"([a-zA-Z0-9_]+)(?:\.|\+)")
        .replace("{{SRC}}", r"([a-zA-Z0-9-_/.+~]+\.[a-z]+:[0-9]+)")
        .replace("{{TASK}}", r"[\s\S]{0,100}?")
        .replace(r"\<", "<")
        .replace(r"\>", ">")
}

pub(crate) fn compile(re: &str) -> Regex {
    RegexBuilder::new(&expand(re))
        .unicode(false)
        .size_limit(50 << 20)
        .build()
        .unwrap_or_else(|e| panic!("bad built-in regexp {re}: {e}"))
}

/// Several expressions as one alternation: one search per line instead of one per expression
/// (the same answer for `is_match`).
fn alternation<'a>(res: impl IntoIterator<Item = &'a str>) -> Regex {
    let joined: Vec<String> = res
        .into_iter()
        .map(|r| format!("(?:{})", expand(r)))
        .collect();
    RegexBuilder::new(&joined.join("|"))
        .unicode(false)
        .size_limit(50 << 20)
        .build()
        .expect("built-in expressions combine")
}

enum CPart {
    Re(Regex),
    Trace,
}

struct CStack {
    parts: Vec<CPart>,
    parts2: Vec<CPart>,
    kmortem_parts: Vec<CPart>,
    /// The format's own skips (the global list is matched separately: a frame is skipped when
    /// either matches, which is what one joined alternation would say).
    skip: Option<Regex>,
    extractor: Extractor,
}

struct CFormat {
    def: &'static table::Format,
    title: Pattern,
    report: Option<Pattern>,
    stack: Option<CStack>,
}

/// A title or report expression. Nearly all of them start with their header's literal
/// (`BUG: KASAN: ...` under `BUG:`), so a match can only start where the report text holds the
/// header: those are compiled anchored (`\A`) and tried at each such place in turn, which finds
/// the same first match as a search of the whole text without scanning it once per format.
enum Pattern {
    AtHeader(Regex),
    Anywhere(Regex),
}

impl Pattern {
    fn new(re: &str, header: &str) -> Pattern {
        const META: &[char] = &[
            '.', '[', ']', '(', ')', '{', '}', '*', '+', '?', '|', '^', '$', '\\',
        ];
        if re.starts_with(header) && !header.contains(META) {
            Pattern::AtHeader(compile(&format!(r"\A(?:{re})")))
        } else {
            Pattern::Anywhere(compile(re))
        }
    }

    /// The first match (its start and captures), trying only starts up to `limit`; `at` holds
    /// the places of the header in `text`, in order.
    fn first<'t>(
        &self,
        text: &'t [u8],
        at: &[usize],
        limit: usize,
    ) -> Option<(usize, regex::bytes::Captures<'t>)> {
        match self {
            Pattern::Anywhere(re) => {
                let c = re.captures(text)?;
                let s = c.get(0).map_or(0, |g| g.start());
                (s <= limit).then_some((s, c))
            }
            Pattern::AtHeader(re) => at
                .iter()
                .take_while(|&&q| q <= limit)
                .find_map(|&q| re.captures(&text[q..]).map(|c| (q, c))),
        }
    }
}

struct COops {
    def: &'static table::Oops,
    suppressions: Vec<Regex>,
    formats: OnceLock<Vec<CFormat>>,
}

impl COops {
    fn formats(&self) -> &[CFormat] {
        self.formats.get_or_init(|| {
            self.def
                .formats
                .iter()
                .map(|f| CFormat {
                    def: f,
                    title: Pattern::new(f.title, self.def.header),
                    report: f.report.map(|r| Pattern::new(r, self.def.header)),
                    stack: f.stack.map(|s| CStack {
                        parts: parts(s.parts),
                        parts2: parts(s.parts2),
                        kmortem_parts: parts(s.kmortem_parts),
                        skip: (!s.skip.is_empty()).then(|| compile(&s.skip.join("|"))),
                        extractor: s.extractor,
                    }),
                })
                .collect()
        })
    }
}

fn parts(p: &[Part]) -> Vec<CPart> {
    p.iter()
        .map(|p| match p {
            Part::Re(r) => CPart::Re(compile(r)),
            Part::Trace => CPart::Trace,
        })
        .collect()
}

fn table() -> &'static [COops] {
    static T: OnceLock<Vec<COops>> = OnceLock::new();
    T.get_or_init(|| {
        table::OOPSES
            .iter()
            .chain(table::KMORTEM)
            .map(|o| COops {
                def: o,
                suppressions: o.suppressions.iter().map(|s| compile(s)).collect(),
                formats: OnceLock::new(),
            })
            .collect()
    })
}

/// The header literals, in table order, without compiling any regexp.
pub(crate) fn headers() -> Vec<&'static str> {
    table::OOPSES.iter().map(|o| o.header).collect()
}

pub(crate) fn header(oops: usize) -> &'static str {
    table()[oops].def.header
}

/// Is this table index one of kmortem's own headers?
pub(crate) fn is_extension(oops: usize) -> bool {
    oops >= table::OOPSES.len()
}

/// One of kmortem's own headers, for a line that carries no syzkaller header.
pub(crate) fn match_extension(line: &str) -> Option<usize> {
    // One header today: `LOCKUP` is the start filter's piece of it.
    memchr::memmem::find(line.as_bytes(), b"LOCKUP")?;
    table::KMORTEM
        .iter()
        .position(|o| line.contains(o.header))
        .map(|i| table::OOPSES.len() + i)
}

/// syzkaller's `matchOops` over the table: the first header that `line` carries and whose
/// suppressions do not match, as an index for [`describe`].
pub(crate) fn match_oops(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    // Most lines carry no header: one automaton pass rules them out.
    static ANY: OnceLock<aho_corasick::AhoCorasick> = OnceLock::new();
    let any = ANY.get_or_init(|| {
        aho_corasick::AhoCorasick::builder()
            .build(headers())
            .expect("static patterns")
    });
    if !any.is_match(b) {
        return None;
    }
    match_oops_candidate(line)
}

/// [`match_oops`] for a line known to hold one of the header literals (the scanner's one pass
/// over the line found it).
pub(crate) fn match_oops_candidate(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    table()[..table::OOPSES.len()].iter().position(|o| {
        memchr::memmem::find(b, o.def.header.as_bytes()).is_some()
            && !o.suppressions.iter().any(|s| s.is_match(b))
    })
}

/// `reportStartIgnores`: headers that do not start a report of their own inside another one
/// (`invalid opcode` after `kernel BUG at`, the panic after an oops, a double fault while a
/// page fault is handled).
pub(crate) const REPORT_START_IGNORES: &[&str] = &[
    "invalid opcode: 0000",
    "Kernel panic - not syncing",
    "unregister_netdevice: waiting for",
    "PANIC: double fault",
    "Internal error:",
];

/// `infoMessagesWithStack`: not bugs, but they print a stack, so inside another report they
/// end its text like a second report would.
pub(crate) const INFO_WITH_STACK: &[&str] = &[
    "vmalloc: allocation failure:",
    "FAULT_INJECTION: forcing a failure",
    "FAULT_FLAG_ALLOW_RETRY missing",
];

/// `reportMinLines`: how long a report must already be before a `Kernel panic` (panic_on_warn's
/// second stack) or an induced lockdep report ends its text. KMSAN reports have no `Call
/// Trace:` and fewer header lines.
pub(crate) fn report_min_lines(oops_line: &str) -> usize {
    if oops_line.contains("BUG: KMSAN:") {
        16
    } else {
        22
    }
}

struct Params {
    stack_starts: Vec<Regex>,
    stack_start_any: Regex,
    riscv: usize,
    frames: Vec<Regex>,
    frame_any: Regex,
    corrupted_lines: Regex,
    skip: Regex,
    stall_anchors: Regex,
}

fn params() -> &'static Params {
    static P: OnceLock<Params> = OnceLock::new();
    P.get_or_init(|| Params {
        stack_starts: stack::STACK_STARTS.iter().map(|s| compile(s)).collect(),
        stack_start_any: alternation(stack::STACK_STARTS.iter().copied()),
        riscv: stack::STACK_STARTS
            .iter()
            .position(|s| *s == stack::RISCV_STACK_START)
            .expect("riscv start in the list"),
        frames: stack::FRAMES.iter().map(|s| compile(s)).collect(),
        frame_any: alternation(stack::FRAMES.iter().copied()),
        corrupted_lines: alternation(stack::CORRUPTED_LINES.iter().copied()),
        skip: alternation(stack::SKIP.iter().copied()),
        stall_anchors: alternation(stack::STALL_ANCHORS.iter().copied()),
    })
}

/// A fault-injection frame in the middle of a report. The expression needs the literal, so a
/// line without it is passed without running the expression (this runs on every report line).
fn corrupted_line(line: &[u8]) -> bool {
    static LIT: OnceLock<memchr::memmem::Finder<'static>> = OnceLock::new();
    LIT.get_or_init(|| memchr::memmem::Finder::new("should_fail"))
        .find(line)
        .is_some()
        && params().corrupted_lines.is_match(line)
}

/// Can [`stack::FRAMES`] match this line? After leading spaces, either a `[` (an address) or
/// a name followed by `.` or `+`: most report lines are passed without running the expressions.
fn maybe_frame(ln: &[u8]) -> bool {
    let t = &ln[ln.iter().take_while(|&&b| b == b' ').count()..];
    if t.first() == Some(&b'[') {
        return true;
    }
    let n = t
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'_')
        .count();
    n > 0 && matches!(t.get(n), Some(b'.' | b'+'))
}

/// A frame as extracted: the name the title uses and the name as printed.
#[derive(Clone)]
struct Extracted {
    canonical: String,
    raw: String,
}

fn append_frames(
    frames: &mut Vec<String>,
    caps: &regex::bytes::Captures<'_>,
    skip: Option<&Regex>,
) {
    for g in caps.iter().skip(1).flatten() {
        let name = demangle::filter(&String::from_utf8_lossy(g.as_bytes()));
        let b = name.as_bytes();
        if params().skip.is_match(b) || skip.is_some_and(|s| s.is_match(b)) {
            continue;
        }
        frames.push(name);
    }
}

fn extract_key(raw: &[String], stack: &CStack) -> Option<Extracted> {
    let stripped: Vec<String> = raw
        .iter()
        .map(|f| stack::strip_frame(f).to_string())
        .collect();
    let (canonical, idx) = match stack.extractor {
        Extractor::First => (stripped.first()?.clone(), 0),
        Extractor::Stall => stack::stall(&stripped, &params().stall_anchors)?,
        Extractor::Hang => stack::hang(&stripped)?,
    };
    (!canonical.is_empty()).then(|| Extracted {
        canonical,
        raw: raw[idx].clone(),
    })
}

/// `extractStackFrameImpl`: walks the parts over the lines; returns one key frame per stack
/// trace part (or at the end), and `false` when one of them came out empty or a corrupted line
/// was seen.
fn extract_stack_impl(text: &[u8], parts: &[CPart], stack: &CStack) -> (Vec<Extracted>, bool) {
    let p = params();
    let mut lines = text.split(|&b| b == b'\n');
    let mut raw: Vec<String> = Vec::new();
    let mut results = Vec::new();
    let mut ok = true;
    let mut traces = 0;
    let mut i = 0;
    loop {
        if i == parts.len() || (matches!(parts[i], CPart::Trace) && traces > 0) {
            match extract_key(&raw, stack) {
                Some(k) => results.push(k),
                None => {
                    ok = false;
                    results.push(Extracted {
                        canonical: "corrupted".into(),
                        raw: "corrupted".into(),
                    });
                }
            }
            raw.clear();
        }
        if i == parts.len() {
            break;
        }
        match &parts[i] {
            CPart::Trace => {
                traces += 1;
                for ln in lines.by_ref() {
                    if corrupted_line(ln) {
                        ok = false;
                        break;
                    }
                    if p.stack_start_any.is_match(ln) {
                        break;
                    }
                    if let Some(CPart::Re(next)) = parts.get(i + 1) {
                        if let Some(c) = next.is_match(ln).then(|| next.captures(ln)).flatten() {
                            append_frames(&mut raw, &c, stack.skip.as_ref());
                            i += 1;
                            break;
                        }
                    }
                    if let Some(c) = (maybe_frame(ln) && p.frame_any.is_match(ln))
                        .then(|| p.frames.iter().find_map(|re| re.captures(ln)))
                        .flatten()
                    {
                        append_frames(&mut raw, &c, stack.skip.as_ref());
                    }
                }
            }
            CPart::Re(re) => {
                for ln in lines.by_ref() {
                    if corrupted_line(ln) {
                        ok = false;
                        break;
                    }
                    if let Some(c) = re.is_match(ln).then(|| re.captures(ln)).flatten() {
                        append_frames(&mut raw, &c, stack.skip.as_ref());
                        break;
                    }
                }
            }
        }
        i += 1;
    }
    (results, ok)
}

fn extract_stack(text: &[u8], stack: &CStack) -> (Vec<Extracted>, bool) {
    let (frames, ok) = extract_stack_impl(text, &stack.parts, stack);
    if ok || stack.parts2.is_empty() {
        return (frames, ok);
    }
    extract_stack_impl(text, &stack.parts2, stack)
}

/// Go's `fmt.Sprintf` for the `%[N]v` / `%[N]s` verbs the table uses.
fn go_fmt(fmt: &str, args: &[String]) -> String {
    let mut out = String::with_capacity(fmt.len() + 32);
    let mut rest = fmt;
    while let Some(p) = rest.find("%[") {
        out.push_str(&rest[..p]);
        let after = &rest[p + 2..];
        let verb = after.find(']').and_then(|close| {
            let n: usize = after[..close].parse().ok()?;
            let v = after[close + 1..].chars().next()?;
            matches!(v, 'v' | 's').then_some((n, close + 2, v))
        });
        match verb {
            Some((n, len, v)) => {
                match n.checked_sub(1).and_then(|i| args.get(i)) {
                    Some(a) => out.push_str(a),
                    None => out.push_str(&format!("%!{v}(BADINDEX)")),
                }
                rest = &after[len..];
            }
            None => {
                out.push_str("%[");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `partiallyStrippedArgs`: the raw frames, then each strip prefix that changes one of them.
fn partially_stripped(prefix: &[String], frames: &[Extracted]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for i in 0..=stack::STRIP_PREFIXES.len() {
        let strip = if i == 0 {
            ""
        } else {
            stack::STRIP_PREFIXES[i - 1]
        };
        let mut add = i == 0;
        let mut list = prefix.to_vec();
        for f in frames {
            let t = f.raw.strip_prefix(strip).unwrap_or(&f.raw);
            if t.len() != f.raw.len() {
                add = true;
            }
            list.push(t.to_string());
        }
        if add {
            out.push(list);
        }
    }
    out
}

/// What `extractDescription` found.
#[derive(Debug, Default, Clone)]
pub(crate) struct Desc {
    /// Raw title (before [`normalize_title`]).
    pub title: String,
    pub alt: Vec<String>,
    pub corrupted: Option<&'static str>,
    /// Index of the format that made the title; `None` for the header-line fallback.
    pub format: Option<usize>,
}

/// `extractDescription`: the format whose title matches earliest in the text wins (table order
/// breaks ties); its captures and extracted frames fill its `fmt` and `alt`.
pub(crate) fn describe(text: &[u8], oops: usize) -> Desc {
    let o = &table()[oops];
    let mut start = text.len();
    let mut d = Desc::default();
    let mut matched_title = false;
    let at: Vec<usize> = memchr::memmem::find_iter(text, o.def.header.as_bytes()).collect();
    for (fi, f) in o.formats().iter().enumerate() {
        let Some((m0, m)) = f.title.first(text, &at, start) else {
            continue;
        };
        if m0 == start && !d.title.is_empty() {
            continue;
        }
        if m0 < start {
            d.title.clear();
            d.format = None;
            start = m0;
        }
        matched_title = true;
        let (from, m) = match &f.report {
            Some(r) => match r.first(text, &at, text.len()) {
                Some(c) => c,
                None => continue,
            },
            None => (m0, m),
        };
        let prefix: Vec<String> = m
            .iter()
            .skip(1)
            .map(|g| {
                g.map_or(String::new(), |g| {
                    String::from_utf8_lossy(g.as_bytes()).into()
                })
            })
            .collect();
        let mut frames = Vec::new();
        d.corrupted = None;
        // syzkaller's own title, when kmortem's fallback parts named a frame it could not.
        let mut syzkaller_title = None;
        if let Some(stack) = &f.stack {
            let (fr, ok) = extract_stack(&text[from..], stack);
            frames = fr;
            if !ok {
                let (fr2, ok2) = if stack.kmortem_parts.is_empty() {
                    (Vec::new(), false)
                } else {
                    extract_stack_impl(&text[from..], &stack.kmortem_parts, stack)
                };
                if ok2 {
                    let mut args = prefix.clone();
                    args.extend(frames.iter().map(|f| f.canonical.clone()));
                    syzkaller_title = Some(go_fmt(f.def.fmt, &args));
                    frames = fr2;
                } else {
                    d.corrupted = Some(CORRUPTED_NO_FRAMES);
                }
            }
        }
        let mut args = prefix.clone();
        args.extend(frames.iter().map(|f| f.canonical.clone()));
        d.title = go_fmt(f.def.fmt, &args);
        if let Some(t) = syzkaller_title {
            d.alt.insert(0, t);
        }
        for a in f.def.alt {
            d.alt.push(go_fmt(a, &args));
        }
        for args in partially_stripped(&prefix, &frames) {
            let t = go_fmt(f.def.fmt, &args);
            if t != d.title {
                d.alt.push(t);
            }
            for a in f.def.alt {
                d.alt.push(go_fmt(a, &args));
            }
        }
        let mut seen = std::collections::HashSet::new();
        d.alt.retain(|a| seen.insert(a.clone()));
        d.format = Some(fi);
    }
    if d.title.is_empty() {
        if matched_title {
            d.corrupted = Some("matched title but not report regexp");
        }
        if let Some(p) = memchr::memmem::find(text, o.def.header.as_bytes()) {
            let end = memchr::memchr(b'\n', &text[p..]).map_or(text.len(), |e| p + e);
            d.title = String::from_utf8_lossy(&text[p..end]).into_owned();
        }
    }
    if d.corrupted.is_none() && d.format.is_some_and(|fi| o.def.formats[fi].corrupted) {
        d.corrupted = Some("report format is marked as corrupted");
    }
    d
}

const CORRUPTED_NO_FRAMES: &str = "extracted no frames";

/// `isCorrupted` for Linux: a stamp inside the title; else, unless the format needs no stack,
/// every stack start must be followed within 15 lines by a frame, and there must be one.
pub(crate) fn is_corrupted(
    raw_title: &str,
    report: &[u8],
    oops: usize,
    format: Option<usize>,
) -> Option<&'static str> {
    static TS: OnceLock<Regex> = OnceLock::new();
    if TS
        .get_or_init(|| compile(r"\[ *[0-9]+\.[0-9]+\]"))
        .is_match(raw_title.as_bytes())
    {
        return Some("title matches corrupted regexp");
    }
    let f = &table()[oops].def.formats[format?];
    if f.no_stack_trace {
        return None;
    }
    let p = params();
    let mut has_trace = false;
    for (ki, key) in p.stack_starts.iter().enumerate() {
        let Some(m) = key.find(report) else { continue };
        let rest = &report[m.start()..];
        if memchr::memchr_iter(b'\n', rest).take(3).count() < 3 {
            return Some("call trace is missed");
        }
        let mut corrupted = true;
        for ln in rest.split(|&b| b == b'\n').skip(1).take(15) {
            if p.stack_start_any.is_match(ln) {
                break;
            }
            if memchr::memmem::find(ln, b"(stack is not available)").is_some()
                || p.frame_any.is_match(ln)
            {
                has_trace = true;
                corrupted = false;
                break;
            }
        }
        if ki != p.riscv && corrupted {
            return Some("no frames in a stack trace");
        }
    }
    if !has_trace {
        return Some("no stack trace in report");
    }
    None
}

/// The crash type of a (raw) title.
pub(crate) fn crash_type(title: &str) -> &'static str {
    types::of_title(title)
}

/// syzkaller's `reportFrameRe`: the frame a title names.
pub(crate) fn title_frame(title: &str) -> Option<String> {
    static R: OnceLock<Regex> = OnceLock::new();
    let re = R.get_or_init(|| compile(r".* in ((?:<[a-zA-Z0-9_: ]+>)?[a-zA-Z0-9_:]+)"));
    let c = re.captures(title.as_bytes())?;
    Some(String::from_utf8_lossy(c.get(1)?.as_bytes()).into_owned())
}

/// `dynamicTitleReplacement` (each rule repeated until nothing changes: matches may overlap, as
/// in `0,1,2`), then `sanitizeTitle` (printable ASCII, tabs to spaces, runs of spaces squeezed,
/// at most 120 bytes).
pub(crate) fn normalize_title(t: &str) -> String {
    static R: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    let reps = R.get_or_init(|| {
        [
            (r"syz-executor\.?[0-9]+((/|:)[0-9]+)?", "syz-executor"),
            (r"syzkaller[0-9]+((/|:)[0-9]+)?", "syzkaller"),
            (r"([^a-zA-Z0-9])(?:0x)?[0-9a-f]{6,}", "${1}ADDR"),
            (r"([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})", "IP"),
            (r"(\.\w+)(:[0-9]+)+", "${1}:LINE"),
            (r"([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+", "${1}"),
            (r"CPU#[0-9]+", "CPU"),
            (r"(\W)(\d+)(\W|$)", "${1}NUM${3}"),
            (r"(\d+){7,}", "NUM"),
        ]
        .iter()
        .map(|(r, s)| (compile(r), *s))
        .collect()
    });
    let mut s = t.as_bytes().to_vec();
    for (re, rep) in reps {
        // Each pass shortens or keeps the text, and a title is short: a handful of passes.
        for _ in 0..64 {
            let n = re.replace_all(&s, rep.as_bytes());
            if *n == *s {
                break;
            }
            s = n.into_owned();
        }
    }
    let mut out = Vec::with_capacity(120);
    let mut prev = b' ';
    for &c in s.iter().take(120) {
        let c = if c == b'\t' { b' ' } else { c };
        if !(0x20..0x7f).contains(&c) || (c == b' ' && prev == b' ') {
            continue;
        }
        out.push(c);
        prev = c;
    }
    String::from_utf8_lossy(&out).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_regexp_compiles() {
        for o in table() {
            assert!(!o.formats().is_empty(), "{}", o.def.header);
        }
        let _ = params();
    }

    #[test]
    fn normalisation() {
        assert_eq!(
            normalize_title("kernel panic: VFS: Unable to mount root fs on unknown-block(0,0)"),
            "kernel panic: VFS: Unable to mount root fs on unknown-block(NUM,NUM)"
        );
        assert_eq!(
            normalize_title("INFO: task syz-executor3:1234 x"),
            "INFO: task syz-executor x"
        );
        assert_eq!(
            normalize_title("a\tb  c at fs/x.c:12 ffffffff81234567"),
            "a b c at fs/x.c:LINE ADDR"
        );
    }

    #[test]
    fn go_format() {
        let a = vec!["x".to_string(), "y".to_string()];
        assert_eq!(go_fmt("a %[2]v b %[1]v", &a), "a y b x");
        assert_eq!(go_fmt("%[3]v", &a), "%!v(BADINDEX)");
        assert_eq!(go_fmt("SYZFATAL%[2]s", &a), "SYZFATALy");
    }

    #[test]
    fn syscall_prefixes() {
        assert_eq!(stack::strip_frame("__x64_sys_rmdir"), "sys_rmdir");
        assert_eq!(stack::strip_frame("__se_sys_mremap"), "mremap");
        assert_eq!(stack::strip_frame("SyS_mount"), "mount");
    }
}
