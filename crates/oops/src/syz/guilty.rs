//! The source file to blame, for maintainer routing: syzkaller's `extractGuiltyFile`
//! (`pkg/report/linux.go`, reference commit 1e72964b0111). The first `path/file.c:123` of the
//! report that is not generic code (headers, lib/, KASAN, allocators, locking, scheduler, the
//! fault path...), then the deepest file below that one's directory further down the trace.
//! Pinned by `tests/syzkaller_guilty.rs`.

use super::compile;
use crate::line::clean_path;
use regex::bytes::Regex;
use std::sync::OnceLock;

/// `guiltyFileIgnores`.
const IGNORES: &[&str] = &[
    r".*\.h",
    "^lib/.*",
    "^virt/lib/.*",
    "^mm/kasan/.*",
    "^mm/kmsan/.*",
    "^kernel/kcov.c",
    "^mm/sl.b.c",
    "^mm/filemap.c",
    "^mm/folio-compat.c",
    "^mm/truncate.c",
    "^mm/memory.c",
    "^mm/percpu.*",
    "^mm/vmalloc.c",
    "^mm/page_alloc.c",
    "^mm/mempool.c",
    "^mm/util.c",
    "^kernel/rcu/.*",
    "^arch/.*/kernel/traps.c",
    "^arch/.*/kernel/unwind.*.c",
    "^arch/.*/mm/fault.c",
    "^arch/.*/mm/physaddr.c",
    "^arch/.*/kernel/stacktrace.c",
    "^arch/.*/kernel/apic/apic.c",
    "^arch/arm64/kernel/entry.*.c",
    r"^arch/arm64/kernel/process\.c",
    "^kernel/locking/.*",
    "^kernel/panic.c",
    "^kernel/printk/printk.*.c",
    "^kernel/softirq.c",
    "^kernel/kthread.c",
    "^kernel/sched/.*.c",
    "^kernel/stacktrace.c",
    "^kernel/time/timer.c",
    "^kernel/workqueue.c",
    "^net/core/dev.c",
    "^net/core/sock.c",
    "^net/core/skbuff.c",
    "^fs/proc/generic.c",
    // Not in the kernel tree.
    "^trusty/",
    // A WARNING in urb.c is usually a driver's bug.
    "^drivers/usb/core/urb.c",
    // Crashes in these are almost always the caller's.
    "^arch/.*/lib/crc.*",
];

struct Res {
    ignores: Regex,
    line_ignore: Regex,
    file: Regex,
    deeper: Regex,
}

fn res() -> &'static Res {
    static R: OnceLock<Res> = OnceLock::new();
    R.get_or_init(|| Res {
        ignores: super::alternation(IGNORES.iter().copied()),
        // Lockdep's `hardirqs last enabled at`, `, at: `, held-lock lines, ARM register info.
        line_ignore: compile(
            r"(hardirqs|softirqs)\s+last\s+(enabled|disabled)|,\s+at:\s+|^\s*#\d+:|^Register r\d+ information",
        ),
        file: compile(r"([a-zA-Z0-9_\-\./]*[a-zA-Z0-9_\-]+\.(c|h)):[0-9]+"),
        deeper: compile(r"^/[a-zA-Z0-9_\-\./]+/[a-zA-Z0-9_\-]+\.(c|h)$"),
    })
}

/// The guilty file of a report with this (raw) title, `None` when no line names a file.
pub(crate) fn guilty_file(title: &str, report: &[u8]) -> Option<String> {
    if title.starts_with("INFO: rcu detected stall") {
        // Too many frames precede the guilty one in a stall: start at the interrupt entry.
        for entry in [
            "apic_timer_interrupt+0x",
            "el1h_64_irq+0x",
            "Exception stack",
        ] {
            if let Some(p) = memchr::memmem::find(report, entry.as_bytes()) {
                if let Some(f) = guilty_in(&report[p..]) {
                    return Some(f);
                }
            }
        }
    }
    guilty_in(report)
}

fn guilty_in(report: &[u8]) -> Option<String> {
    let r = res();
    let mut guilty: Option<String> = None;
    let mut lines = report.split(|&b| b == b'\n');
    let file_of = |line: &[u8]| -> Option<String> {
        // The expression needs `.c:` or `.h:`: most lines are passed on that.
        static C: OnceLock<(
            memchr::memmem::Finder<'static>,
            memchr::memmem::Finder<'static>,
        )> = OnceLock::new();
        let (c, h) = C.get_or_init(|| {
            (
                memchr::memmem::Finder::new(".c:"),
                memchr::memmem::Finder::new(".h:"),
            )
        });
        if c.find(line).is_none() && h.find(line).is_none() {
            return None;
        }
        let c = r.file.captures(line)?;
        Some(String::from_utf8_lossy(c.get(1)?.as_bytes()).into_owned())
    };
    for line in lines.by_ref() {
        let Some(file) = file_of(line) else { continue };
        // Some file rather than none: the report must reach somebody.
        let first = guilty.is_none();
        if first {
            guilty = Some(file.clone());
        }
        if r.ignores.is_match(file.as_bytes()) || r.line_ignore.is_match(line) {
            continue;
        }
        guilty = Some(clean_path(&file));
        break;
    }
    let mut g = guilty?;
    let mut deepest = dir(&g);
    for line in lines {
        let Some(file) = file_of(line) else { continue };
        if r.ignores.is_match(file.as_bytes()) || r.line_ignore.is_match(line) {
            continue;
        }
        let clean = clean_path(&file);
        if let Some(suffix) = clean.strip_prefix(deepest.as_str()) {
            if r.deeper.is_match(suffix.as_bytes()) {
                g = clean.clone();
                deepest = dir(&g);
            }
        }
    }
    Some(g)
}

/// Go's `filepath.Dir`.
fn dir(p: &str) -> String {
    match p.rfind('/') {
        Some(i) => clean_path(&p[..i.max(1)]),
        None => ".".to_string(),
    }
}
