//! The list of commands and their one-line usage (`help`, the prompt's completion).

use crate::output::{usage, CmdError, Output};
use serde_json::json;

/// Every command: (name, usage and what it shows).
pub const COMMANDS: &[(&str, &str)] = &[
    (
        "sys",
        "sys                      release, CPUs, memory, uptime, panic message, crash time",
    ),
    (
        "log",
        "log [-m] [-c]            the kernel log (-m: level, -c: caller id as dmesg shows it)",
    ),
    (
        "ps",
        "ps                       every task: PID, PPID, CPU, TASK, state, comm; '>' = on a CPU",
    ),
    (
        "rd",
        "rd [-8|-16|-32|-64] [-p] [-s] ADDR|SYMBOL [COUNT]   read memory (-p physical, -s symbols)",
    ),
    (
        "sym",
        "sym ADDR|NAME            address <-> symbol (module symbols too)",
    ),
    (
        "struct",
        "struct TYPE[.MEMBER] [-o] [ADDR]   type layout (-o offsets) or the value at ADDR",
    ),
    (
        "mod",
        "mod [-S DIR] [-s NAME FILE]   loaded modules: base, size, debug info found (-S: search DIR for .ko files)",
    ),
    (
        "list",
        "list [-o OFFSET|TYPE.member] [-s TYPE.member] [-H|-h] ADDR   walk a list_head (-H: ADDR is the head; -h: an hlist_head); reports a corrupted link",
    ),
    (
        "dis",
        "dis [-l] ADDR|FUNC [COUNT]   disassemble from the dump's memory (FUNC: whole function), checked against vmlinux; -l: source lines",
    ),
    (
        "runq",
        "runq                     each CPU's runqueue: current task, RT and CFS queued tasks",
    ),
    (
        "kmem",
        "kmem ADDR                the slab object (cache, free or allocated) or vmalloc area (caller, guard page) holding ADDR",
    ),
    (
        "bt",
        "bt [-a] [-f] [-l] [-v] [PID|TASK]   backtrace (panic task; -a every CPU; -f stack words; -l file:line; -v variables)",
    ),
    (
        "foreach",
        "foreach bt [-f] [-l] [-v]   the backtrace of every task",
    ),
    ("help", "help                     this list"),
];

/// `help`: the list.
pub(crate) fn help() -> Output {
    Output {
        text: COMMANDS.iter().map(|(_, h)| format!("{h}\n")).collect(),
        json: json!(COMMANDS.iter().map(|(c, _)| c).collect::<Vec<_>>()),
    }
}

/// The error for a command that is not in the list.
pub(crate) fn unknown(cmd: &str) -> CmdError {
    usage(format!(
        "unknown command {cmd:?}; commands: {}",
        COMMANDS
            .iter()
            .map(|(c, _)| *c)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}
