//! Which lines of a pasted text belong to a quoted crash report (a frame, a header, registers,
//! KASAN's shadow dump, lockdep's held locks) rather than to the prose around it.

use super::{strip_console_prefix, text_frame};

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
    if had_ts || text_frame(s).is_some() {
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

#[cfg(test)]
mod tests {
    use super::is_report_line;

    #[test]
    fn report_lines_and_prose() {
        for l in [
            "[  1.0] anything",
            " kasan_report+0x1/0x2",
            "Call Trace:",
            ">ffff888012345678: fb fb fb",
            "2 locks held by syz-executor/1:",
        ] {
            assert!(is_report_line(l), "{l}");
        }
        for l in ["", "This fixes a use-after-free.", "Fixes: 1234 (\"foo\")"] {
            assert!(!is_report_line(l), "{l}");
        }
    }
}
