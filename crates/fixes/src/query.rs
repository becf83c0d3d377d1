//! The crash side of a match: what a console log, a `kmortem oops --json` report, a drgn or crash
//! `bt`, or a bug story quoting one of those tells about the crash.

use crate::extract::{self, KindTag};
use crate::version::{identify_kernel, KernelId};
use kmortem_oops::{line, Kind, Report};
use std::collections::HashSet;

/// Which stack of the report a frame was printed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StackRole {
    /// The crash's own stack: `Call Trace:`, kmemleak's `backtrace:`.
    #[default]
    Access,
    /// Where the object was allocated (KASAN `Allocated by task`, KMSAN `Uninit was created`).
    Alloc,
    /// Where it was freed (KASAN `Freed by task`).
    Free,
    /// Other stacks: KASAN's `Last potentially related work creation`, lockdep chains, KMSAN's
    /// `Uninit was stored`.
    Other,
}

impl StackRole {
    /// From the oops parser's stack name ([`kmortem_oops::Frame::stack`]).
    pub fn of(stack: &str) -> StackRole {
        match stack {
            "" | "call_trace" | "backtrace" => StackRole::Access,
            "allocated" | "uninit_created" => StackRole::Alloc,
            "freed" => StackRole::Free,
            _ => StackRole::Other,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            StackRole::Access => "access",
            StackRole::Alloc => "alloc",
            StackRole::Free => "free",
            StackRole::Other => "other",
        }
    }
}

/// One frame of the crash.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryFrame {
    pub function: String,
    pub reliable: bool,
    pub generic: bool,
    /// The stack it was printed in.
    pub stack: StackRole,
    /// Its source file when the log was symbolized (`net/sched/cls_tcindex.c`).
    pub file: Option<String>,
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
    /// The function the title names (syzkaller's guilty frame: the first non-generic frame).
    pub guilty_frame: Option<String>,
    /// The source file to blame (syzkaller's guilty-file rule), when the log was symbolized.
    pub guilty_file: Option<String>,
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
        let mut names: Vec<RawFrame> = Vec::new();
        if let Some(f) = r.ip.as_ref().and_then(|ip| ip.function.clone()) {
            // The RIP line's source, when symbolized, is the first call-trace frame's.
            names.push((f, true, StackRole::Access, None));
        }
        for fr in &r.frames {
            let file = fr
                .source
                .as_deref()
                .and_then(|src| line::source_path(src.split(':').next().unwrap_or("")));
            if let Some(p) = &file {
                q.files.push(p.clone());
            }
            names.push((
                fr.function.clone(),
                fr.reliable,
                StackRole::of(&fr.stack),
                file,
            ));
        }
        q.frames = dedup_frames(names);
        q.guilty_frame = r
            .guilty_frame
            .as_deref()
            .map(|f| line::base_function(f).to_string())
            .filter(|f| !f.is_empty())
            .or_else(|| q.key_frames().first().map(|f| f.to_string()));
        q.guilty_file = r.guilty_file.clone();
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
        for raw in text.lines() {
            let l = line::strip_console_prefix(raw);
            if kmortem_oops::oops_header(l).is_some() {
                files.extend(extract::files_in_text(l));
            }
        }
        files.sort();
        files.dedup();
        // The title line: the first that carries an oops header of the parser's table.
        let title = text
            .lines()
            .map(line::strip_console_prefix)
            .find(|l| kmortem_oops::oops_header(l).is_some())
            .map(|l| l.trim().to_string());
        let mut q = CrashQuery {
            frames: dedup_frames(
                frames
                    .into_iter()
                    .map(|f| (f.function, f.reliable, StackRole::Access, f.file))
                    .collect(),
            ),
            kind: extract::report_kind(text),
            title,
            files,
            kernel: kernel_in_text(text),
            ..Default::default()
        };
        q.guilty_frame = q.key_frames().first().map(|f| f.to_string()).or_else(|| {
            // A title without frames (`BUG: KASAN: use-after-free in foo`): its function.
            q.title
                .as_deref()
                .and_then(|t| crate::title::function_of(&crate::title::normalize(t)))
        });
        q
    }

    /// Non-generic reliable frames of the crash's own stack, top first.
    pub fn key_frames(&self) -> Vec<&str> {
        self.frames
            .iter()
            .filter(|f| !f.generic && f.reliable && f.stack == StackRole::Access)
            .map(|f| f.function.as_str())
            .collect()
    }
}

/// (function, reliable, stack, file)
type RawFrame = (String, bool, StackRole, Option<String>);

/// Frames deduplicated by function (the first occurrence wins: the access stack comes first in
/// KASAN reports, so a function in both the access and the free stack counts as access).
fn dedup_frames(names: Vec<RawFrame>) -> Vec<QueryFrame> {
    let mut seen = HashSet::new();
    let mut out: Vec<QueryFrame> = Vec::new();
    for (n, reliable, stack, file) in names {
        let n = line::base_function(&n).to_string();
        if n.is_empty() {
            continue;
        }
        if !seen.insert(n.clone()) {
            // Inlined frames share a line with their caller; keep the first file seen.
            if let (Some(f), Some(prev)) = (file, out.iter_mut().find(|x| x.function == n)) {
                prev.file.get_or_insert(f);
            }
            continue;
        }
        let generic = line::generic_frame(&n);
        out.push(QueryFrame {
            function: n,
            reliable,
            generic,
            stack,
            file,
        });
        if out.len() >= 96 {
            break;
        }
    }
    out
}

/// Finds the kernel release in an oops `CPU:` line (`... Not tainted 6.1.0-43-cloud-amd64 #1 Debian
/// 6.1.187-1`) or a `Linux version X` banner, whichever comes first (the grammar's
/// [`line::parse_cpu_line`] and [`line::parse_banner`]).
pub fn kernel_in_text(text: &str) -> Option<KernelId> {
    for raw in text.lines().take(100_000) {
        let l = line::strip_console_prefix(raw);
        if let Some((rel, build)) = line::parse_banner(l) {
            return Some(identify_kernel(rel, build));
        }
        let Some(cpu) = line::parse_cpu_line(l) else {
            continue;
        };
        if let Some(rel) = cpu
            .release
            .as_deref()
            .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        {
            return Some(identify_kernel(rel, cpu.build.as_deref()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_from_cpu_line() {
        let k = kernel_in_text("[ 1.0] CPU: 1 PID: 102 Comm: sh Tainted: G OE 6.1.0-43-cloud-amd64 #1 Debian 6.1.187-1\n").unwrap();
        assert_eq!(k.upstream.as_deref(), Some("6.1.187"));
        let k = kernel_in_text("[ 1076.638557] CPU: 0 PID: 0 Comm: swapper/0 Tainted: G        W  OE  ------------ T 3.10.0-514.26.2.el7.x86_64 #1\n").unwrap();
        assert_eq!(k.upstream, None);
        assert_eq!(k.base.as_deref(), Some("3.10.0"));
        let k = kernel_in_text("[    0.000000] Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)\n").unwrap();
        assert_eq!(k.upstream.as_deref(), Some("6.1.76"));
        assert!(kernel_in_text("CPU: 0 PID: 1 Comm: sh Not tainted #1\n").is_none());
    }

    #[test]
    fn light_query_of_a_console_log() {
        let log = "[ 2.0] BUG: KASAN: use-after-free in foo_bar+0x10/0x20\n[ 2.0] Call Trace:\n[ 2.0]  dump_stack+0x1/0x2\n[ 2.0]  foo_bar+0x10/0x20\n[ 2.0]  ? baz_qux+0x1/0x2\n[ 2.0]  caller_fn+0x3/0x4\n";
        let q = CrashQuery::light(log);
        assert_eq!(q.kind, Some(KindTag::UseAfterFree));
        assert_eq!(q.key_frames(), vec!["foo_bar", "caller_fn"]);
    }
}
