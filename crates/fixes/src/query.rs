//! The crash side of a match: what a console log, a `kmortem oops --json` report, a drgn or crash
//! `bt`, or a bug story quoting one of those tells about the crash.

use crate::extract::{self, KindTag};
use crate::version::{identify_kernel, KernelId};
use kmortem_oops::{Kind, Report};
use std::collections::HashSet;

/// One frame of the crash.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryFrame {
    pub function: String,
    pub reliable: bool,
    pub generic: bool,
}

/// What the ranking needs from a crash.
#[derive(Debug, Clone, Default)]
pub struct CrashQuery {
    /// Frames top first, deduplicated (first occurrence kept).
    pub frames: Vec<QueryFrame>,
    pub kind: Option<KindTag>,
    pub title: Option<String>,
    /// Source files named by the crash (`kernel BUG at kernel/timer.c:1105`, symbolized frames).
    pub files: Vec<String>,
    pub kernel: Option<KernelId>,
}

fn kind_of(k: Kind, title: &str) -> Option<KindTag> {
    let from_title = extract::report_kind(title);
    let from_kind = match k {
        Kind::NullPointerDereference => Some(KindTag::NullDeref),
        Kind::PagingRequest => Some(KindTag::PagingFault),
        Kind::GeneralProtectionFault => Some(KindTag::Gpf),
        Kind::KernelBug | Kind::InvalidOpcode => Some(KindTag::BugOn),
        Kind::DivideError => Some(KindTag::DivideError),
        Kind::SoftLockup
        | Kind::HardLockup
        | Kind::HungTask
        | Kind::RcuStall
        | Kind::WorkqueueLockup => Some(KindTag::Hang),
        Kind::Kmsan => Some(KindTag::Uninit),
        Kind::Kcsan => Some(KindTag::Race),
        Kind::Warning | Kind::OdebugWarning => Some(KindTag::Warning),
        Kind::RefcountWarning => Some(KindTag::Refcount),
        Kind::ListCorruption => Some(KindTag::ListCorruption),
        Kind::Lockdep => Some(KindTag::Deadlock),
        Kind::MemoryLeak => Some(KindTag::Leak),
        _ => None,
    };
    // KASAN/UBSAN/KFENCE kinds are in the title (`KASAN: use-after-free Read in f`).
    from_title.or(from_kind)
}

impl CrashQuery {
    /// From text: a `kmortem oops --json` document (one report or an array), or any text with a
    /// crash in it. Uses the oops parser's reports when it finds some, the light scanner otherwise
    /// (and for formats the parser does not read: drgn and crash `bt` output).
    pub fn from_text(text: &str) -> CrashQuery {
        let trimmed = text.trim_start();
        if trimmed.starts_with('[') || trimmed.starts_with('{') {
            if let Ok(reports) = serde_json::from_str::<Vec<Report>>(trimmed) {
                if let Some(q) = Self::from_reports(&reports, text) {
                    return q;
                }
            }
            if let Ok(report) = serde_json::from_str::<Report>(trimmed) {
                if let Some(q) = Self::from_reports(std::slice::from_ref(&report), text) {
                    return q;
                }
            }
        }
        let reports = kmortem_oops::parse(text.as_bytes());
        if let Some(q) = Self::from_reports(&reports, text) {
            return q;
        }
        Self::light(text)
    }

    /// From parsed reports: the first one with frames (the first crash is the one that matters;
    /// what follows is often fallout).
    pub fn from_reports(reports: &[Report], text: &str) -> Option<CrashQuery> {
        let r = reports.iter().find(|r| !r.frames.is_empty())?;
        let mut q = CrashQuery {
            title: Some(r.title.clone()).filter(|t| !t.is_empty()),
            ..Default::default()
        };
        let mut names: Vec<(String, bool)> = Vec::new();
        if let Some(f) = r.ip.as_ref().and_then(|ip| ip.function.clone()) {
            names.push((f, true));
        }
        for fr in &r.frames {
            names.push((fr.function.clone(), fr.reliable));
            if let Some(src) = &fr.source {
                if let Some(p) = extract::normalize_path(src.split(':').next().unwrap_or("")) {
                    q.files.push(p);
                }
            }
        }
        q.frames = dedup_frames(names);
        q.kind = kind_of(r.kind, &r.title).or_else(|| extract::report_kind(&r.text));
        q.files.extend(extract::files_in_text(&r.text));
        q.files.sort();
        q.files.dedup();
        q.kernel = r
            .kernel_release
            .as_deref()
            .map(|rel| identify_kernel(rel, r.kernel_build.as_deref()));
        if q.kernel.is_none() {
            q.kernel = kernel_in_text(text);
        }
        Some(q)
    }

    /// The light scanner (for text the oops parser finds no report with frames in): frames in
    /// text order, kind from the header lines, kernel from the `CPU:` line; header lines are
    /// the parser's ([`kmortem_oops::oops_header`]).
    pub fn light(text: &str) -> CrashQuery {
        let frames = extract::frames_in_text(text);
        let mut files: Vec<String> = frames.iter().filter_map(|f| f.file.clone()).collect();
        // Files from crash headers only (`kernel BUG at f.c:1`, `WARNING: ... at f.c:1`, UBSAN's
        // `in f.c:1:2`): prose in a story names many files that did not crash.
        for line in text.lines() {
            let l = extract::strip_console_prefix(line);
            if kmortem_oops::oops_header(l).is_some() {
                files.extend(extract::files_in_text(l));
            }
        }
        files.sort();
        files.dedup();
        // The title line: the first that carries an oops header of the parser's table.
        let title = text
            .lines()
            .map(extract::strip_console_prefix)
            .find(|l| kmortem_oops::oops_header(l).is_some())
            .map(|l| l.trim().to_string());
        CrashQuery {
            frames: dedup_frames(
                frames
                    .into_iter()
                    .map(|f| (f.function, f.reliable))
                    .collect(),
            ),
            kind: extract::report_kind(text),
            title,
            files,
            kernel: kernel_in_text(text),
        }
    }

    /// Non-generic reliable frames, top first.
    pub fn key_frames(&self) -> Vec<&str> {
        self.frames
            .iter()
            .filter(|f| !f.generic && f.reliable)
            .map(|f| f.function.as_str())
            .collect()
    }
}

fn dedup_frames(names: Vec<(String, bool)>) -> Vec<QueryFrame> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (n, reliable) in names {
        let n = extract::clean_func(&n);
        if n.is_empty() || !seen.insert(n.clone()) {
            continue;
        }
        let generic = extract::is_generic_frame(&n);
        out.push(QueryFrame {
            function: n,
            reliable,
            generic,
        });
        if out.len() >= 64 {
            break;
        }
    }
    out
}

/// Finds the kernel release in an oops `CPU:` line (`... Not tainted 6.1.0-53-cloud-amd64 #1 Debian
/// 6.1.187-1`) or a `Linux version X` banner.
pub fn kernel_in_text(text: &str) -> Option<KernelId> {
    for line in text.lines().take(100_000) {
        let l = extract::strip_console_prefix(line);
        if let Some(rest) = l.strip_prefix("Linux version ") {
            let rel = rest.split_whitespace().next()?;
            let build = rest.find(" #").map(|p| &rest[p + 2..]);
            return Some(identify_kernel(rel, build));
        }
        if !(l.starts_with("CPU:") || l.contains(" PID: ") && l.contains(" Comm: ")) {
            continue;
        }
        // The release follows `Not tainted` or the taint flags, and precedes ` #`.
        let Some(hash) = l.find(" #") else { continue };
        let before = l[..hash].trim_end();
        let rel = before.rsplit(' ').next().unwrap_or("");
        if rel.is_empty() || !rel.starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        let build = &l[hash + 2..];
        return Some(identify_kernel(rel, Some(build)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_from_cpu_line() {
        let k = kernel_in_text("[ 1.0] CPU: 1 PID: 102 Comm: sh Tainted: G OE 6.1.0-53-cloud-amd64 #1 Debian 6.1.187-1\n").unwrap();
        assert_eq!(k.upstream.as_deref(), Some("6.1.187"));
        let k = kernel_in_text("[ 1076.638557] CPU: 0 PID: 0 Comm: swapper/0 Tainted: G        W  OE  ------------ T 3.10.0-514.26.2.el7.x86_64 #1\n").unwrap();
        assert_eq!(k.upstream, None);
        assert_eq!(k.base.as_deref(), Some("3.10.0"));
    }

    #[test]
    fn light_query_of_a_console_log() {
        let log = "[ 2.0] BUG: KASAN: use-after-free in foo_bar+0x10/0x20\n[ 2.0] Call Trace:\n[ 2.0]  dump_stack+0x1/0x2\n[ 2.0]  foo_bar+0x10/0x20\n[ 2.0]  ? baz_qux+0x1/0x2\n[ 2.0]  caller_fn+0x3/0x4\n";
        let q = CrashQuery::light(log);
        assert_eq!(q.kind, Some(KindTag::UseAfterFree));
        assert_eq!(q.key_frames(), vec!["foo_bar", "caller_fn"]);
    }
}
