//! Light text extraction shared by the CVE importer, the git importer and the crash query:
//! stack frames (`func+0x1f/0x30`, drgn's `#4  func (file.c:1:2)`, crash's `#3 [addr] func at
//! addr`), identifiers that look like kernel functions, source files, crash kinds, and the split of
//! a commit message into prose and quoted-report lines.
//!
//! Everything here is a hand-written scanner over bytes (no regex), linear in the input, and never
//! panics: these functions run over untrusted text (fuzz target `fixes_extract`).

use std::collections::BTreeSet;

/// One frame found in text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextFrame {
    pub function: String,
    /// `false` for frames printed with a leading `? `.
    pub reliable: bool,
    /// `file.c` or `dir/file.c` when the line carried one (drgn, decode_stacktrace.sh).
    pub file: Option<String>,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}
fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Strips a console prefix: `<4>`, `[  12.345678]`, `[T1234]`/`[C1]` caller ids, `host kernel: `.
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

/// Parses `func+0x1f/0x30` (optionally `.cold.13`, `[mod]`) starting at the beginning of `s`.
/// Returns the function name.
fn parse_func_off(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.is_empty() || !is_ident_start(b[0]) {
        return None;
    }
    let mut i = 0;
    while i < b.len() && (is_ident(b[i]) || b[i] == b'.') {
        i += 1;
    }
    let name = &s[..i];
    let rest = &s[i..];
    let rest = rest.strip_prefix('+')?;
    let rest = rest.strip_prefix("0x").unwrap_or(rest);
    let hex = rest.bytes().take_while(|c| c.is_ascii_hexdigit()).count();
    if hex == 0 {
        return None;
    }
    Some(clean_func(name))
}

/// Drops compiler suffixes: `foo.cold.13`, `foo.isra.0`, `foo.constprop.0` -> `foo`.
pub fn clean_func(name: &str) -> String {
    match name.find('.') {
        Some(p) if p > 0 => name[..p].to_string(),
        _ => name.to_string(),
    }
}

/// Finds a frame in one line of text. Handles:
/// - `func+0x1f/0x30 [mod]`, `? func+0x..`, `[<ffffffff81098c25>] func+0x2b5/0x340`
/// - `RIP: 0010:func+0x5/0x10`, `pc : func+0x..`, `lr : func+0x..`
/// - drgn: `#4  kyber_bio_merge (../block/kyber-iosched.c:573:2)`
/// - crash: `#10 [ffff8d5300143ed0] enqueue_task_fair at ffffffff900c647c`, `[exception RIP: enqueue_entity+532]`
/// - decode_stacktrace: `func (dir/file.c:123)` after a `func+0x..` form.
pub fn frame_in_line(line: &str) -> Option<TextFrame> {
    let s = strip_console_prefix(line);
    let s = s.trim();
    if s.is_empty() || s.len() > 400 {
        return None;
    }
    // crash's exception RIP.
    if let Some(p) = s.find("[exception RIP: ") {
        let rest = &s[p + "[exception RIP: ".len()..];
        let name: String = rest
            .bytes()
            .take_while(|&b| is_ident(b))
            .map(char::from)
            .collect();
        if !name.is_empty() {
            return Some(TextFrame {
                function: name,
                reliable: true,
                file: None,
            });
        }
    }
    // drgn / crash numbered frames.
    if let Some(rest) = s.strip_prefix('#') {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0 && digits < 5 {
            let mut rest = rest[digits..].trim_start();
            if let Some(r) = rest.strip_prefix('[') {
                // crash: `[ffff...] func at ffff...`
                let end = r.find(']')?;
                rest = r[end + 1..].trim_start();
                let name: String = rest
                    .bytes()
                    .take_while(|&b| is_ident(b))
                    .map(char::from)
                    .collect();
                if !name.is_empty() && rest[name.len()..].trim_start().starts_with("at ") {
                    return Some(TextFrame {
                        function: name,
                        reliable: true,
                        file: None,
                    });
                }
                return None;
            }
            if let Some(f) = parse_func_off(rest) {
                return Some(TextFrame {
                    function: f,
                    reliable: true,
                    file: paren_file(rest),
                });
            }
            let name: String = rest
                .bytes()
                .take_while(|&b| is_ident(b))
                .map(char::from)
                .collect();
            if !name.is_empty() && is_ident_start(name.as_bytes()[0]) {
                let after = rest[name.len()..].trim_start();
                if after.starts_with('(') || after.is_empty() {
                    return Some(TextFrame {
                        function: name,
                        reliable: true,
                        file: paren_file(after),
                    });
                }
            }
            return None;
        }
    }
    // Register-style lines.
    for key in ["RIP: ", "pc : ", "lr : ", "PC is at ", "LR is at ", "EIP: "] {
        if let Some(p) = s.find(key) {
            if p < 24 {
                let rest = &s[p + key.len()..];
                // `RIP: 0010:func+0x..` or old `RIP: 0010:[<ffff>]  [<ffff>] func+0x..`
                let mut cand = rest;
                if let Some(c) = cand.find(':') {
                    if c <= 4 && cand[..c].bytes().all(|b| b.is_ascii_hexdigit()) {
                        cand = &cand[c + 1..];
                    }
                }
                let cand = skip_addr_brackets(cand);
                if let Some(f) = parse_func_off(cand) {
                    return Some(TextFrame {
                        function: f,
                        reliable: true,
                        file: None,
                    });
                }
                return None;
            }
        }
    }
    // Plain frames.
    let mut rest = skip_addr_brackets(s);
    let mut reliable = true;
    if let Some(r) = rest.strip_prefix("? ") {
        reliable = false;
        rest = skip_addr_brackets(r.trim_start());
    }
    // arm32: `[<c0123456>] (func) from [<...>] (caller)`
    if let Some(r) = rest.strip_prefix('(') {
        if let Some(f) = parse_func_off(r) {
            return Some(TextFrame {
                function: f,
                reliable,
                file: None,
            });
        }
        let name: String = r
            .bytes()
            .take_while(|&b| is_ident(b))
            .map(char::from)
            .collect();
        if !name.is_empty()
            && r[name.len()..].starts_with(") from ")
            && is_ident_start(name.as_bytes()[0])
        {
            return Some(TextFrame {
                function: name,
                reliable,
                file: None,
            });
        }
    }
    let f = parse_func_off(rest)?;
    // The frame must end the line (or be followed by a module, a symbolized source, or a frame
    // marker), so that prose like "in foo+0x10 we" does not become a frame... but prose rarely has
    // that form, so accept the common trailers only.
    let tail_start = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let tail = rest[tail_start..].trim();
    let ok_tail = tail.is_empty()
        || tail.starts_with('[')
        || tail.starts_with('(')
        || tail.starts_with("from ")
        || tail.starts_with("arch/")
        || tail.len() < 3;
    if !ok_tail {
        return None;
    }
    Some(TextFrame {
        function: f,
        reliable,
        file: paren_file(tail),
    })
}

fn skip_addr_brackets(mut s: &str) -> &str {
    loop {
        let t = s.trim_start();
        if let Some(r) = t.strip_prefix("[<") {
            if let Some(end) = r.find(">]") {
                s = &r[end + 2..];
                continue;
            }
        }
        return t;
    }
}

/// `(../block/kyber-iosched.c:573:2)` -> `block/kyber-iosched.c`
fn paren_file(s: &str) -> Option<String> {
    let open = s.find('(')?;
    let close = s[open..].find(')')? + open;
    let inner = &s[open + 1..close];
    let path = inner.split(':').next()?.trim();
    normalize_path(path)
}

/// Normalizes a source path: drops `../`, `./` and absolute build prefixes (`/build/linux/`), keeps
/// only paths that end in a source suffix.
pub fn normalize_path(p: &str) -> Option<String> {
    let mut p = p
        .trim()
        .trim_matches(|c: char| c == '"' || c == '\'' || c == '`' || c == ',');
    while let Some(r) = p.strip_prefix("../").or_else(|| p.strip_prefix("./")) {
        p = r;
    }
    let ok_ext = [".c", ".h", ".S", ".rs"].iter().any(|e| p.ends_with(e));
    if !ok_ext || p.len() < 3 || p.len() > 200 {
        return None;
    }
    if !p
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/_-.+,".contains(&b))
    {
        return None;
    }
    // Absolute paths: keep from the first well-known top-level kernel directory.
    if p.starts_with('/') {
        for top in TOP_DIRS {
            if let Some(pos) = p.find(&format!("/{top}/")) {
                return Some(p[pos + 1..].to_string());
            }
        }
        return None;
    }
    Some(p.to_string())
}

const TOP_DIRS: &[&str] = &[
    "arch", "block", "crypto", "drivers", "fs", "include", "init", "io_uring", "ipc", "kernel",
    "lib", "mm", "net", "rust", "security", "sound", "virt", "samples", "scripts", "tools",
    "certs",
];

/// All frames in a text, in order of appearance.
pub fn frames_in_text(text: &str) -> Vec<TextFrame> {
    text.lines().filter_map(frame_in_line).collect()
}

/// Source files named anywhere in a text (`net/core/dev.c`, `kernel BUG at kernel/timer.c:1105`).
pub fn files_in_text(text: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    for word in
        text.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == '[' || c == ']')
    {
        let w = word.trim_end_matches(['!', '.', ',', ';']);
        let path = w.split(':').next().unwrap_or("");
        if path.contains('.')
            && (path.contains('/') || path.ends_with(".c") || path.ends_with(".h"))
        {
            if let Some(p) = normalize_path(path) {
                out.insert(p);
            }
        }
    }
    out.into_iter().collect()
}

/// Identifiers in prose that look like kernel functions or symbols: they contain an underscore or
/// are followed by `()`. Plain English words are left to the full-text engine.
pub fn idents_in_text(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        if is_ident_start(b[i])
            && (i == 0 || !(is_ident(b[i - 1]) || b[i - 1] == b'.' || b[i - 1] == b'/'))
        {
            let start = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            let word = &text[start..i];
            let followed_by_call = text[i..].starts_with("()") || text[i..].starts_with('(');
            let has_us = word.contains('_') && word.trim_matches('_').len() > 1;
            let upper = word.bytes().all(|c| !c.is_ascii_lowercase());
            // Skip file names (`foo_bar.c`) and all-caps macros/config names.
            let is_file = text[i..].starts_with(".c") || text[i..].starts_with(".h");
            if (has_us || (followed_by_call && word.len() > 2))
                && !upper
                && !is_file
                && word.len() <= 80
            {
                out.insert(word.to_string());
            }
        } else {
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// Crash kinds, as coarse tags shared by reports and fix texts. A report has one; a fix text may
/// name several ("fix a use-after-free ... NULL pointer dereference").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KindTag {
    UseAfterFree,
    OutOfBounds,
    NullDeref,
    PagingFault,
    Gpf,
    DoubleFree,
    Uninit,
    Leak,
    Deadlock,
    Hang,
    Warning,
    BugOn,
    ListCorruption,
    Refcount,
    Race,
    Overflow,
    DivideError,
}

impl KindTag {
    pub fn as_str(self) -> &'static str {
        match self {
            KindTag::UseAfterFree => "use-after-free",
            KindTag::OutOfBounds => "out-of-bounds",
            KindTag::NullDeref => "null-deref",
            KindTag::PagingFault => "paging-fault",
            KindTag::Gpf => "general-protection-fault",
            KindTag::DoubleFree => "double-free",
            KindTag::Uninit => "uninit-value",
            KindTag::Leak => "memory-leak",
            KindTag::Deadlock => "deadlock",
            KindTag::Hang => "hang",
            KindTag::Warning => "warning",
            KindTag::BugOn => "bug-on",
            KindTag::ListCorruption => "list-corruption",
            KindTag::Refcount => "refcount",
            KindTag::Race => "data-race",
            KindTag::Overflow => "overflow",
            KindTag::DivideError => "divide-error",
        }
    }
    pub fn parse(s: &str) -> Option<KindTag> {
        ALL_KINDS.iter().copied().find(|k| k.as_str() == s)
    }
    /// Kinds that are different symptoms of the same kind of bug: a use-after-free often shows
    /// as a GPF or paging fault without KASAN, a NULL deref as a paging fault at a small address.
    pub fn compatible(self, other: KindTag) -> bool {
        use KindTag::*;
        if self == other {
            return true;
        }
        let pair = |a, b| (self == a && other == b) || (self == b && other == a);
        pair(UseAfterFree, Gpf)
            || pair(UseAfterFree, PagingFault)
            || pair(UseAfterFree, DoubleFree)
            || pair(UseAfterFree, Refcount)
            || pair(UseAfterFree, ListCorruption)
            || pair(UseAfterFree, Race)
            || pair(NullDeref, PagingFault)
            || pair(NullDeref, Gpf)
            || pair(OutOfBounds, PagingFault)
            || pair(OutOfBounds, Gpf)
            || pair(OutOfBounds, Overflow)
            || pair(Gpf, PagingFault)
            || pair(Deadlock, Hang)
            || pair(BugOn, ListCorruption)
            || pair(Warning, Refcount)
            || pair(Warning, Deadlock)
    }
}

pub const ALL_KINDS: &[KindTag] = &[
    KindTag::UseAfterFree,
    KindTag::OutOfBounds,
    KindTag::NullDeref,
    KindTag::PagingFault,
    KindTag::Gpf,
    KindTag::DoubleFree,
    KindTag::Uninit,
    KindTag::Leak,
    KindTag::Deadlock,
    KindTag::Hang,
    KindTag::Warning,
    KindTag::BugOn,
    KindTag::ListCorruption,
    KindTag::Refcount,
    KindTag::Race,
    KindTag::Overflow,
    KindTag::DivideError,
];

/// Keyword table for kinds; matched against lowercased text. Order matters only for
/// [`report_kind`], which takes the first hit.
const KIND_WORDS: &[(&str, KindTag)] = &[
    ("use-after-free", KindTag::UseAfterFree),
    ("use after free", KindTag::UseAfterFree),
    ("uaf", KindTag::UseAfterFree),
    ("double-free", KindTag::DoubleFree),
    ("double free", KindTag::DoubleFree),
    ("invalid-free", KindTag::DoubleFree),
    ("slab-out-of-bounds", KindTag::OutOfBounds),
    ("global-out-of-bounds", KindTag::OutOfBounds),
    ("stack-out-of-bounds", KindTag::OutOfBounds),
    ("vmalloc-out-of-bounds", KindTag::OutOfBounds),
    ("array-index-out-of-bounds", KindTag::OutOfBounds),
    ("out-of-bounds", KindTag::OutOfBounds),
    ("out of bounds", KindTag::OutOfBounds),
    ("out-of-bound", KindTag::OutOfBounds),
    ("buffer overflow", KindTag::OutOfBounds),
    ("overrun", KindTag::OutOfBounds),
    ("null-ptr-deref", KindTag::NullDeref),
    ("null pointer dereference", KindTag::NullDeref),
    ("null pointer deref", KindTag::NullDeref),
    ("null-pointer-dereference", KindTag::NullDeref),
    ("null deref", KindTag::NullDeref),
    ("null ptr deref", KindTag::NullDeref),
    ("uninit-value", KindTag::Uninit),
    ("uninitialized", KindTag::Uninit),
    ("uninitialised", KindTag::Uninit),
    ("memory leak", KindTag::Leak),
    ("memleak", KindTag::Leak),
    ("leaks memory", KindTag::Leak),
    ("refcount leak", KindTag::Leak),
    ("possible deadlock", KindTag::Deadlock),
    ("circular locking", KindTag::Deadlock),
    ("deadlock", KindTag::Deadlock),
    ("lock inversion", KindTag::Deadlock),
    ("inconsistent lock state", KindTag::Deadlock),
    ("task hung", KindTag::Hang),
    ("blocked for more than", KindTag::Hang),
    ("soft lockup", KindTag::Hang),
    ("hard lockup", KindTag::Hang),
    ("rcu detected stall", KindTag::Hang),
    ("rcu_sched self-detected stall", KindTag::Hang),
    ("infinite loop", KindTag::Hang),
    ("hung task", KindTag::Hang),
    ("general protection fault", KindTag::Gpf),
    (
        "unable to handle kernel paging request",
        KindTag::PagingFault,
    ),
    ("unable to handle page fault", KindTag::PagingFault),
    ("paging request", KindTag::PagingFault),
    ("wild-memory-access", KindTag::PagingFault),
    ("list_add corruption", KindTag::ListCorruption),
    ("list_del corruption", KindTag::ListCorruption),
    ("list corruption", KindTag::ListCorruption),
    ("corrupted list", KindTag::ListCorruption),
    ("refcount_t:", KindTag::Refcount),
    ("refcount bug", KindTag::Refcount),
    ("data-race", KindTag::Race),
    ("data race", KindTag::Race),
    ("kcsan", KindTag::Race),
    ("integer overflow", KindTag::Overflow),
    ("shift-out-of-bounds", KindTag::Overflow),
    ("signed-integer-overflow", KindTag::Overflow),
    ("divide error", KindTag::DivideError),
    ("division by zero", KindTag::DivideError),
    ("divide-by-zero", KindTag::DivideError),
    ("kernel bug at", KindTag::BugOn),
    ("bug_on", KindTag::BugOn),
    ("warning:", KindTag::Warning),
    ("warn_on", KindTag::Warning),
];

fn contains_word(hay: &str, needle: &str) -> bool {
    let mut from = 0;
    while let Some(p) = hay[from..].find(needle) {
        let start = from + p;
        let end = start + needle.len();
        let before_ok = start == 0 || !hay.as_bytes()[start - 1].is_ascii_alphanumeric();
        let after_ok = end >= hay.len()
            || !hay.as_bytes()[end].is_ascii_alphanumeric()
            || needle.ends_with(':');
        if before_ok && after_ok {
            return true;
        }
        from = start + needle.len().max(1);
        if from >= hay.len() {
            break;
        }
    }
    false
}

/// Every kind a text mentions.
pub fn kinds_in_text(text: &str) -> Vec<KindTag> {
    let lower = text.to_ascii_lowercase();
    let mut out = BTreeSet::new();
    for (w, k) in KIND_WORDS {
        if contains_word(&lower, w) {
            out.insert(*k);
        }
    }
    out.into_iter().collect()
}

/// The kind of a crash report: the first kind named by the report's header lines (the lines up
/// to `Call Trace:`).
pub fn report_kind(text: &str) -> Option<KindTag> {
    let mut best: Option<(usize, KindTag)> = None;
    for line in text.lines().take(400) {
        let l = strip_console_prefix(line).to_ascii_lowercase();
        if l.starts_with("call trace") {
            break;
        }
        for (i, (w, k)) in KIND_WORDS.iter().enumerate() {
            if contains_word(&l, w) && best.is_none_or(|(bi, _)| i < bi) {
                best = Some((i, *k));
            }
        }
        if best.is_some() {
            // First header line that names a kind wins (KASAN's header comes before its
            // "Call Trace:", and `BUG: kernel NULL pointer dereference` before the RIP).
            break;
        }
    }
    best.map(|(_, k)| k)
}

/// Is this line part of a quoted crash report (a frame, a header, registers, KASAN's shadow dump)
/// rather than prose? Used to withhold quoted traces from the index, and to tell traces from prose.
pub fn is_report_line(line: &str) -> bool {
    let raw = line.trim();
    if raw.is_empty() {
        return false;
    }
    let had_ts = raw.starts_with('[') && raw.len() > 3 && raw.as_bytes()[1].is_ascii_whitespace()
        || raw.starts_with("[ ")
        || (raw.starts_with('[')
            && raw.as_bytes().get(1).is_some_and(|b| b.is_ascii_digit())
            && raw.contains("] "));
    let s = strip_console_prefix(raw);
    if had_ts || frame_in_line(s).is_some() {
        return true;
    }
    const HEADS: &[&str] = &[
        "Call Trace:",
        "Call trace:",
        "<TASK>",
        "</TASK>",
        "<IRQ>",
        "</IRQ>",
        "<NMI>",
        "</NMI>",
        "RIP:",
        "RSP:",
        "RAX:",
        "RBX:",
        "RCX:",
        "RDX:",
        "RSI:",
        "RDI:",
        "RBP:",
        "R08:",
        "R09:",
        "R10:",
        "R11:",
        "R12:",
        "R13:",
        "R14:",
        "R15:",
        "FS:",
        "CS:",
        "CR2:",
        "DR0:",
        "DR3:",
        "Code:",
        "Hardware name:",
        "Modules linked in:",
        "CPU:",
        "Workqueue:",
        "BUG:",
        "KASAN:",
        "WARNING:",
        "UBSAN:",
        "KMSAN:",
        "Kernel panic",
        "kernel BUG at",
        "Oops:",
        "Internal error:",
        "general protection fault",
        "Read of size",
        "Write of size",
        "Allocated by task",
        "Freed by task",
        "The buggy address",
        "Memory state around",
        "Last potentially related",
        "page:",
        "flags:",
        "raw:",
        "page dumped",
        "index ",
        "---[ end trace",
        "------------[ cut here",
        "pc :",
        "lr :",
        "sp :",
        "x29:",
        "x27:",
        "x25:",
        "x23:",
        "x21:",
        "x19:",
        "x17:",
        "x15:",
        "x13:",
        "x11:",
        "x9 :",
        "x7 :",
        "x5 :",
        "x3 :",
        "x1 :",
        "PGD ",
        "P4D ",
        "PUD ",
        "PMD ",
        "#PF:",
        "ORIG_RAX:",
        "EFLAGS:",
        "Stack:",
        "backtrace:",
        "unreferenced object",
        "hex dump",
        "possible deadlock",
        "other info that",
        "stack backtrace:",
        "Chain exists of:",
        "lock(",
        "*** DEADLOCK",
        "INFO:",
        "kasan_report",
        "dump_stack",
        "print_report",
        "Disabling lock debugging",
        "Possible unsafe locking",
        "CPU0",
        "CPU1",
        "----",
        "memcpy: detected",
        "shift exponent",
        "index ",
        "kobject:",
        "refcount_t:",
        "list_add corruption",
        "list_del corruption",
    ];
    if HEADS.iter().any(|h| s.starts_with(h)) {
        return true;
    }
    // KASAN shadow bytes: `>ffff888... : fb fb` / ` ffff888...: 00 00`.
    let t = s.trim_start_matches(['>', ' ']);
    let hexrun = t.bytes().take_while(|b| b.is_ascii_hexdigit()).count();
    if hexrun >= 8 && t[hexrun..].trim_start().starts_with(':') {
        return true;
    }
    // Lockdep held-lock lines: ` #0: ffff888...`, ` 1 lock held by`.
    if s.contains(" lock held by ") || s.contains(" locks held by ") {
        return true;
    }
    false
}

/// Splits a message into prose and quoted-report text. A line counts as report when it is a report
/// line itself, or when it is an indented line inside a run of report lines.
pub fn split_report(text: &str) -> (String, String) {
    let mut prose = String::new();
    let mut report = String::new();
    let mut in_report = false;
    for line in text.lines() {
        let rep = is_report_line(line);
        let indented_cont = in_report
            && (line.starts_with(' ') || line.starts_with('\t'))
            && !line.trim().is_empty();
        if rep || indented_cont {
            report.push_str(line);
            report.push('\n');
            in_report = true;
        } else {
            if line.trim().is_empty() {
                in_report = false;
            }
            prose.push_str(line);
            prose.push('\n');
        }
    }
    (prose, report)
}

/// Generic frames: sanitizer and report internals, allocators, locking primitives, entry code,
/// workqueue/kthread plumbing, syscall dispatch. They carry almost no signal about which bug it is
/// (syzkaller skips the same ones when it picks the guilty frame).
pub fn is_generic_frame(f: &str) -> bool {
    const EXACT: &[&str] = &[
        "dump_stack",
        "dump_stack_lvl",
        "show_stack",
        "panic",
        "__warn",
        "warn_slowpath_fmt",
        "report_bug",
        "handle_bug",
        "exc_invalid_op",
        "asm_exc_invalid_op",
        "do_error_trap",
        "do_trap",
        "do_invalid_op",
        "invalid_op",
        "kthread",
        "ret_from_fork",
        "ret_from_fork_asm",
        "worker_thread",
        "process_one_work",
        "process_scheduled_works",
        "do_syscall_64",
        "entry_SYSCALL_64_after_hwframe",
        "entry_SYSCALL_64",
        "do_syscall_x64",
        "x64_sys_call",
        "__do_softirq",
        "handle_softirqs",
        "irq_exit_rcu",
        "__irq_exit_rcu",
        "irq_exit",
        "do_softirq",
        "call_softirq",
        "run_ksoftirqd",
        "smpboot_thread_fn",
        "schedule",
        "__schedule",
        "preempt_schedule_common",
        "kfree",
        "kmalloc",
        "__kmalloc",
        "kzalloc",
        "kmem_cache_alloc",
        "kmem_cache_free",
        "kvfree",
        "vfree",
        "slab_free",
        "memcpy",
        "memset",
        "memmove",
        "strcpy",
        "strlen",
        "print_address_description",
        "print_report",
        "kasan_report",
        "__asan_load8",
        "__asan_store8",
        "check_memory_region",
        "page_fault",
        "asm_exc_page_fault",
        "exc_page_fault",
        "do_page_fault",
        "__do_page_fault",
        "do_user_addr_fault",
        "page_fault_oops",
        "no_context",
        "__bad_area_nosemaphore",
        "bad_area_nosemaphore",
        "kernelmode_fixup_or_oops",
        "do_kern_addr_fault",
        "spurious_kernel_fault",
        "asm_exc_general_protection",
        "exc_general_protection",
        "general_protection",
        "oops_end",
        "die",
        "__die",
        "crash_kexec",
        "__crash_kexec",
        "machine_kexec",
        "queued_spin_lock_slowpath",
        "native_queued_spin_lock_slowpath",
        "do_raw_spin_lock",
        "queued_spin_lock",
        "spin_lock",
        "spin_unlock",
        "mutex_lock",
        "mutex_unlock",
        "down_read",
        "down_write",
        "up_read",
        "up_write",
        "lock_acquire",
        "lock_release",
        "rcu_do_batch",
        "rcu_core",
        "rcu_core_si",
        "call_timer_fn",
        "expire_timers",
        "__run_timers",
        "run_timer_softirq",
        "asm_sysvec_apic_timer_interrupt",
        "sysvec_apic_timer_interrupt",
        "apic_timer_interrupt",
        "smp_apic_timer_interrupt",
        "el0_svc",
        "el0_svc_common",
        "el0t_64_sync",
        "el0t_64_sync_handler",
        "do_el0_svc",
        "invoke_syscall",
        "el1_abort",
        "el1h_64_sync",
        "el1h_64_sync_handler",
        "__die_body",
        "check_preemption_disabled",
        "debug_smp_processor_id",
        "rcu_read_lock",
        "rcu_read_unlock",
        "refcount_warn_saturate",
        "__list_add_valid",
        "__list_del_entry_valid",
        "__list_add_valid_or_report",
        "__list_del_entry_valid_or_report",
        "fput",
        "__fput",
        "task_work_run",
        "exit_to_user_mode_prepare",
        "syscall_exit_to_user_mode",
        "exit_to_user_mode_loop",
        "__x64_sys_ioctl",
        "__se_sys_ioctl",
        "__do_sys_ioctl",
        "ksys_ioctl",
        "vfs_ioctl",
        "ubsan_epilogue",
        "__ubsan_handle_out_of_bounds",
        "__ubsan_handle_shift_out_of_bounds",
        "__ubsan_handle_load_invalid_value",
        "kmem_cache_alloc_trace",
        "kmalloc_trace",
        "__kmalloc_node",
        "kvmalloc_node",
        "__kasan_kmalloc",
        "__kasan_slab_free",
        "kasan_save_stack",
        "kasan_set_track",
        "kasan_save_track",
        "kasan_save_free_info",
        "____kasan_kmalloc",
        "____kasan_slab_free",
        "slab_free_freelist_hook",
        "kfree_skb",
        "consume_skb",
        "__kfree_skb",
        "skb_release_data",
        "start_kernel",
        "secondary_startup_64",
        "cpu_startup_entry",
        "do_idle",
        "default_idle",
        "native_safe_halt",
        "arch_cpu_idle",
        "default_idle_call",
        "cpuidle_enter",
    ];
    const PREFIXES: &[&str] = &[
        "kasan_",
        "__kasan",
        "kmsan_",
        "__kmsan",
        "__msan",
        "__asan_",
        "ubsan_",
        "__ubsan",
        "_raw_spin",
        "_raw_read",
        "_raw_write",
        "__raw_spin",
        "lockdep_",
        "__lock_",
        "lock_",
        "__mutex_",
        "mutex_",
        "rwsem_",
        "__rwsem",
        "slab_",
        "___slab",
        "__slab",
        "kmem_cache_",
        "__kmem_cache",
        "kmalloc_",
        "__kmalloc",
        "dump_stack",
        "stack_trace_",
        "arch_stack_walk",
        "save_stack",
        "__warn",
        "warn_",
        "__x64_sys_",
        "__ia32_sys_",
        "__se_sys_",
        "__do_sys_",
        "__arm64_sys_",
        "entry_SYSCALL",
        "rcu_",
        "__rcu",
        "do_raw_",
        "queued_",
        "native_queued",
        "asm_sysvec",
        "sysvec_",
        "asm_common_interrupt",
        "common_interrupt",
        "print_",
        "__print",
        "check_noncircular",
        "check_prev_add",
        "validate_chain",
        "__bfs",
        "refcount_",
        "atomic_",
        "__might_",
        "___might_",
        "__schedule_bug",
        "report_",
        "kfence_",
        "__kfence",
        "irq_exit",
        "__irq_exit",
        "handle_irq",
        "__handle_irq",
        "handle_edge_irq",
        "el0_",
        "el1_",
        "__el0",
        "__el1",
        "entry_",
        "ret_from_",
    ];
    EXACT.contains(&f) || PREFIXES.iter().any(|p| f.starts_with(p))
}

/// The subject of a commit message: its first non-empty line, after the CVE preamble.
pub fn subject_of(description: &str) -> String {
    let body = strip_cve_preamble(description);
    body.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

/// CVE descriptions start with "In the Linux kernel, the following vulnerability has been
/// resolved:" followed by the fix commit's message.
pub fn strip_cve_preamble(description: &str) -> &str {
    const PRE: &str = "In the Linux kernel, the following vulnerability has been resolved:";
    description
        .trim_start()
        .strip_prefix(PRE)
        .unwrap_or(description)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_of_each_format() {
        let cases = [
            (
                "[  147.467058][T10579]  kyber_bio_merge+0x112/0x180",
                "kyber_bio_merge",
                true,
            ),
            (" ? timerqueue_add+0x60/0xb0", "timerqueue_add", false),
            (
                "[ 1077.065016]  [<ffffffff81098c25>] run_timer_softirq+0x2b5/0x340",
                "run_timer_softirq",
                true,
            ),
            (
                "[ 1077.078849]  [<ffffffff81321c30>] ? timerqueue_add+0x60/0xb0",
                "timerqueue_add",
                false,
            ),
            (
                "RIP: 0010:[<ffffffff81096fd2>]  [<ffffffff81096fd2>] cascade+0xb2/0xc0",
                "cascade",
                true,
            ),
            (
                "RIP: 0010:enqueue_entity+0x214/0x540",
                "enqueue_entity",
                true,
            ),
            (
                "    #4  kyber_bio_merge (../block/kyber-iosched.c:573:2)",
                "kyber_bio_merge",
                true,
            ),
            (
                " #10 [ffff8d5300143ed0] enqueue_task_fair at ffffffff900c647c",
                "enqueue_task_fair",
                true,
            ),
            (
                "    [exception RIP: enqueue_entity+532]",
                "enqueue_entity",
                true,
            ),
            (
                " __ubsan_handle_out_of_bounds.cold.13+0x2a/0x34",
                "__ubsan_handle_out_of_bounds",
                true,
            ),
            (
                "pc : nfc_llcp_sock_unlink+0x10/0x40 [nfc]",
                "nfc_llcp_sock_unlink",
                true,
            ),
            (
                "[<c0123456>] (unwind_backtrace) from [<c0101234>] (show_stack+0x10/0x14)",
                "unwind_backtrace",
                true,
            ),
        ];
        for (line, f, rel) in cases {
            let fr = frame_in_line(line).unwrap_or_else(|| panic!("no frame in {line:?}"));
            assert_eq!(fr.function, f, "{line}");
            assert_eq!(fr.reliable, rel, "{line}");
        }
        assert_eq!(
            frame_in_line("    #4  kyber_bio_merge (../block/kyber-iosched.c:573:2)")
                .and_then(|f| f.file),
            Some("block/kyber-iosched.c".to_string())
        );
        for prose in [
            "the fix is in foo+0x10 which is",
            "Fixes: 1234 (\"foo\")",
            "",
            "#include <linux/foo.h>",
        ] {
            assert!(frame_in_line(prose).is_none(), "{prose}");
        }
    }

    #[test]
    fn kinds_and_idents() {
        assert_eq!(
            report_kind("BUG: KASAN: use-after-free in foo+0x1/0x2\nRead of size 8\nCall Trace:\n bar+0x1/0x2\n"),
            Some(KindTag::UseAfterFree)
        );
        assert_eq!(
            report_kind("[ 1.0] BUG: kernel NULL pointer dereference, address: 0000000000000008\n"),
            Some(KindTag::NullDeref)
        );
        let ids = idents_in_text(
            "kyber_bio_merge() then gets the ctx via blk_mq_get_ctx(). The Kyber code",
        );
        assert!(ids.contains(&"kyber_bio_merge".to_string()));
        assert!(ids.contains(&"blk_mq_get_ctx".to_string()));
        assert!(!ids.contains(&"Kyber".to_string()));
        assert_eq!(
            files_in_text("kernel BUG at kernel/timer.c:1105!"),
            vec!["kernel/timer.c".to_string()]
        );
        assert!(is_generic_frame("kasan_report"));
        assert!(!is_generic_frame("kyber_bio_merge"));
    }

    #[test]
    fn split_keeps_prose() {
        let d = "fix foo\n\nSome prose here.\n\nBUG: KASAN: use-after-free in foo+0x1/0x2\nCall Trace:\n dump_stack+0x1/0x2\n foo+0x3/0x4\n\nMore prose.\n";
        let (prose, rep) = split_report(d);
        assert!(prose.contains("Some prose here.") && prose.contains("More prose."));
        assert!(rep.contains("foo+0x3/0x4") && !prose.contains("Call Trace"));
    }
}
