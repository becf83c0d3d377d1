//! Light text extraction shared by the CVE importer, the git importer and the crash query:
//! identifiers that look like kernel functions, source files, crash kinds, and the split of a
//! commit message into prose and quoted-report lines.
//!
//! The log syntax itself (console prefixes, frame lines in every pasted format, source paths,
//! which lines belong to a quoted report, the generic frames) is the report parser's grammar,
//! [`kmortem_oops::line`]; this module only applies it to whole texts.
//!
//! Everything here is a hand-written scanner over bytes (no regex), linear in the input, and never
//! panics: these functions run over untrusted text (fuzz targets `fixes_crash_text`, `line`).

use kmortem_oops::line::{self, TextFrame};
use std::collections::BTreeSet;

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}
fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// All frames in a text, in order of appearance.
pub fn frames_in_text(text: &str) -> Vec<TextFrame> {
    text.lines().filter_map(line::text_frame).collect()
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
            if let Some(p) = line::source_path(path) {
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
    for raw in text.lines().take(400) {
        let l = line::strip_console_prefix(raw).to_ascii_lowercase();
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

/// Splits a message into prose and quoted-report text. A line counts as report when it is a report
/// line itself, or when it is an indented line inside a run of report lines.
pub fn split_report(text: &str) -> (String, String) {
    let mut prose = String::new();
    let mut report = String::new();
    let mut in_report = false;
    for l in text.lines() {
        let rep = line::is_report_line(l);
        let indented_cont =
            in_report && (l.starts_with(' ') || l.starts_with('\t')) && !l.trim().is_empty();
        if rep || indented_cont {
            report.push_str(l);
            report.push('\n');
            in_report = true;
        } else {
            if l.trim().is_empty() {
                in_report = false;
            }
            prose.push_str(l);
            prose.push('\n');
        }
    }
    (prose, report)
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
    }

    #[test]
    fn split_keeps_prose() {
        let d = "fix foo\n\nSome prose here.\n\nBUG: KASAN: use-after-free in foo+0x1/0x2\nCall Trace:\n dump_stack+0x1/0x2\n foo+0x3/0x4\n\nMore prose.\n";
        let (prose, rep) = split_report(d);
        assert!(prose.contains("Some prose here.") && prose.contains("More prose."));
        assert!(rep.contains("foo+0x3/0x4") && !prose.contains("Call Trace"));
    }
}
