//! Which report of a log is "the crash": the one that ended the machine.
//!
//! A console holds more than the fatal report. Boot prints benign WARNINGs (6.12 under some
//! QEMU CPU models warns at `arch/x86/kernel/cpu/bugs.c:3524` long before anything fails), a
//! machine with `panic_on_oops=0` survives oopses that kill only a task, and a WARNING or a
//! KASAN report may precede the BUG it leads to. Explaining the first report explains the wrong
//! thing. The rule, in order:
//!
//! 1. the report that `Kernel panic - not syncing` follows (the parser attaches the panic to
//!    the report it ends: [`Report::panic_message`]); when the panic stands as a report of its
//!    own but only says why an earlier report was fatal (`Fatal exception`, `panic_on_warn
//!    set`, ...), that earlier report;
//! 2. else the last oops or BUG (a report the kernel's `die()` or `BUG()` printed);
//! 3. else the last report.
//!
//! Events (OOM kills) are never the crash. The CLI (`explain`, `decode`) and the server call
//! [`pick_fatal`], so a log has one crash everywhere.

use crate::{Kind, Report};
use serde::{Deserialize, Serialize};

/// Why a report was picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PickReason {
    /// `Kernel panic - not syncing` follows it (or it is the panic).
    Panic,
    /// No panic in the log: the last oops or BUG.
    LastOops,
    /// No panic and no oops: the last report.
    LastReport,
    /// The caller asked for it (`--report N`).
    Requested,
}

impl PickReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PickReason::Panic => "panic",
            PickReason::LastOops => "last_oops",
            PickReason::LastReport => "last_report",
            PickReason::Requested => "requested",
        }
    }

    /// A phrase for people: "the one `Kernel panic - not syncing` follows".
    pub fn describe(self) -> &'static str {
        match self {
            PickReason::Panic => "the one `Kernel panic - not syncing` follows",
            PickReason::LastOops => "no panic in the log: the last oops/BUG",
            PickReason::LastReport => "no panic and no oops in the log: the last report",
            PickReason::Requested => "as requested",
        }
    }
}

/// The picked report: its index in the slice given to [`pick_fatal`] and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pick {
    pub index: usize,
    pub reason: PickReason,
}

/// Panic messages that only say why an earlier report was fatal (kernel/panic.c callers:
/// `oops_end()`'s "Fatal exception", `check_panic_on_warn()`, the watchdogs' and hung-task
/// detector's panics after their own report).
const CONSEQUENCES: &[&str] = &[
    "Fatal exception",
    "panic_on_warn set",
    "hung_task: blocked tasks",
    "softlockup: hung tasks",
    "Hard LOCKUP",
    "hardlockup: hung tasks",
    "RCU Stall",
    "Fatal machine check",
];

/// Whether a report is an oops or a BUG: what `die()` prints (`Oops:`, a trap with its
/// `[#N]` die counter), `kernel BUG at`, or the kinds that only come from those.
pub fn is_oops(r: &Report) -> bool {
    match r.kind {
        Kind::NullPointerDereference
        | Kind::PagingRequest
        | Kind::GeneralProtectionFault
        | Kind::KernelBug
        | Kind::InvalidOpcode
        | Kind::DivideError
        | Kind::DoubleFault
        | Kind::StackProtector
        | Kind::StackCorruption => true,
        _ => r.text.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("Oops:") || l.starts_with("kernel BUG at ") || has_die_counter(l)
        }),
    }
}

/// `... : 0000 [#1] PREEMPT SMP NOPTI`: the header line of `__die_header()`.
fn has_die_counter(l: &str) -> bool {
    let Some(i) = l.find(" [#") else {
        return false;
    };
    let rest = &l[i + 3..];
    let n = rest.bytes().take_while(u8::is_ascii_digit).count();
    // `: %04lx` (the error code) before it
    let head = &l.as_bytes()[..i];
    n > 0
        && rest.as_bytes().get(n) == Some(&b']')
        && head.len() >= 6
        && head[head.len() - 6..head.len() - 4] == *b": "
        && head[head.len() - 4..].iter().all(u8::is_ascii_hexdigit)
}

fn is_consequence(r: &Report) -> bool {
    r.kind == Kind::Panic
        && r.panic_message
            .as_deref()
            .is_some_and(|m| CONSEQUENCES.iter().any(|c| m.starts_with(c)))
}

/// The report that ended the machine (see the module doc), or `None` when the slice holds no
/// crash (empty, or events only).
pub fn pick_fatal(reports: &[Report]) -> Option<Pick> {
    let crash = |i: &usize| !reports[*i].kind.is_event();
    let idx: Vec<usize> = (0..reports.len()).filter(crash).collect();
    if let Some(&i) = idx.iter().find(|&&i| reports[i].panic_message.is_some()) {
        // A bare "Fatal exception" panic says that the report before it was fatal.
        let index = match idx.iter().rev().find(|&&j| j < i) {
            Some(&j) if is_consequence(&reports[i]) => j,
            _ => i,
        };
        return Some(Pick {
            index,
            reason: PickReason::Panic,
        });
    }
    if let Some(&i) = idx.iter().rev().find(|&&i| is_oops(&reports[i])) {
        return Some(Pick {
            index: i,
            reason: PickReason::LastOops,
        });
    }
    idx.last().map(|&index| Pick {
        index,
        reason: PickReason::LastReport,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WARN: &str = "[  0.05] WARNING: CPU: 0 PID: 0 at arch/x86/kernel/cpu/bugs.c:3524 __warn_thunk+0x20/0x30\n\
[  0.05] Modules linked in:\n\
[  0.05] CPU: 0 PID: 0 Comm: swapper/0 Not tainted 6.99.0-test #1\n\
[  0.05] RIP: 0010:__warn_thunk+0x20/0x30\n\
[  0.05] Call Trace:\n\
[  0.05]  <TASK>\n\
[  0.05]  start_kernel+0x1/0x2\n\
[  0.05]  </TASK>\n\
[  0.05] ---[ end trace 0000000000000000 ]---\n";

    fn oops(ts: &str, func: &str, panic: bool) -> String {
        let mut s = format!(
            "[{ts}] BUG: kernel NULL pointer dereference, address: 0000000000000008\n\
[{ts}] #PF: supervisor read access in kernel mode\n\
[{ts}] Oops: 0000 [#1] PREEMPT SMP NOPTI\n\
[{ts}] CPU: 1 PID: 99 Comm: sh Not tainted 6.99.0-test #1\n\
[{ts}] RIP: 0010:{func}+0x5/0x10\n\
[{ts}] Call Trace:\n\
[{ts}]  <TASK>\n\
[{ts}]  vfs_write+0xc0/0x3e0\n\
[{ts}]  </TASK>\n\
[{ts}] ---[ end trace 0000000000000000 ]---\n"
        );
        if panic {
            s.push_str(&format!(
                "[{ts}] Kernel panic - not syncing: Fatal exception\n[{ts}] ---[ end Kernel panic - not syncing: Fatal exception ]---\n"
            ));
        }
        s
    }

    fn pick(log: &str) -> (Vec<Report>, Pick) {
        let r = crate::parse(log.as_bytes());
        let p = pick_fatal(&r).expect("a pick");
        (r, p)
    }

    #[test]
    fn a_benign_warning_before_the_fatal_oops_is_context() {
        let log = format!("{WARN}{}", oops("20.0", "foo_get", true));
        let (r, p) = pick(&log);
        assert_eq!(
            r.len(),
            2,
            "{:#?}",
            r.iter().map(|r| &r.title).collect::<Vec<_>>()
        );
        assert_eq!(p.index, 1);
        assert_eq!(p.reason, PickReason::Panic);
        assert!(r[1].title.contains("foo_get"), "{}", r[1].title);
    }

    #[test]
    fn without_a_panic_the_last_oops_wins_over_a_later_warning() {
        // panic_on_oops=0: two oopses kill tasks, then a WARNING; the machine was dumped later.
        let log = format!(
            "{}{}{}",
            oops("10.0", "first_get", false),
            oops("20.0", "second_get", false),
            WARN.replace("0.05", "30.0")
        );
        let (r, p) = pick(&log);
        assert_eq!(r.len(), 3);
        assert_eq!((p.index, p.reason), (1, PickReason::LastOops));
        assert!(r[1].title.contains("second_get"));
    }

    #[test]
    fn an_earlier_oops_without_panic_is_context_of_the_one_that_panicked() {
        let log = format!(
            "{}{}",
            oops("10.0", "first_get", false),
            oops("20.0", "second_get", true)
        );
        let (r, p) = pick(&log);
        assert_eq!((p.index, p.reason), (1, PickReason::Panic));
        assert!(r[1].title.contains("second_get"));
    }

    #[test]
    fn warnings_only_give_the_last_one() {
        let log = format!(
            "{WARN}{}",
            WARN.replace("0.05", "9.0")
                .replace("bugs.c:3524", "bugs.c:3600")
        );
        let (r, p) = pick(&log);
        assert_eq!(r.len(), 2);
        assert_eq!((p.index, p.reason), (1, PickReason::LastReport));
    }

    #[test]
    fn a_panic_on_warn_warning_is_the_crash() {
        let log = format!(
            "{WARN}[  0.05] Kernel panic - not syncing: kernel: panic_on_warn set ...\n{}",
            oops("20.0", "never_reached", false)
        );
        let (r, p) = pick(&log);
        assert_eq!(
            p.index,
            0,
            "{:#?}",
            r.iter()
                .map(|r| (&r.title, &r.panic_message))
                .collect::<Vec<_>>()
        );
        assert_eq!(p.reason, PickReason::Panic);
    }

    #[test]
    fn events_are_never_the_crash() {
        let r = crate::parse(b"[1.0] a invoked oom-killer: gfp_mask=0x0\n[1.1] Out of memory: Killed process 12 (a) total-vm:1kB\n");
        assert!(pick_fatal(&r).is_none());
        assert!(pick_fatal(&[]).is_none());
    }

    #[test]
    fn die_counter() {
        assert!(has_die_counter("Oops: general protection fault, probably for non-canonical address 0x6b6b6b6b6b6b6b6b: 0000 [#1] PREEMPT SMP NOPTI"));
        assert!(has_die_counter("invalid opcode: 0000 [#3] SMP"));
        assert!(!has_die_counter(
            "RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable [#1]"
        ));
    }
}
