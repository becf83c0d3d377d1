//! The structured record for one crash report. This is the type the whole pipeline passes around:
//! the CLI prints it, the store persists it (as JSON), `fixes` and `explain` consume it.
//! Field names are part of the documented JSON schema (`docs/json/oops.md`): rename nothing.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What kind of crash a report is. Serialized in snake_case (`null_pointer_dereference`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    NullPointerDereference,
    PagingRequest,
    GeneralProtectionFault,
    KernelBug,
    InvalidOpcode,
    DivideError,
    DoubleFault,
    StackProtector,
    StackCorruption,
    SoftLockup,
    HardLockup,
    HungTask,
    RcuStall,
    WorkqueueLockup,
    Kasan,
    Kmsan,
    Kcsan,
    Kfence,
    Ubsan,
    Warning,
    RefcountWarning,
    OdebugWarning,
    ListCorruption,
    BadPageState,
    Lockdep,
    SchedulingWhileAtomic,
    SleepingInAtomic,
    MemoryLeak,
    Panic,
    Oom,
    MachineCheck,
    Other,
}

impl Kind {
    /// `true` for events that are worth recording but are not crashes (OOM kills).
    pub fn is_event(self) -> bool {
        matches!(self, Kind::Oom)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NullPointerDereference => "null_pointer_dereference",
            Kind::PagingRequest => "paging_request",
            Kind::GeneralProtectionFault => "general_protection_fault",
            Kind::KernelBug => "kernel_bug",
            Kind::InvalidOpcode => "invalid_opcode",
            Kind::DivideError => "divide_error",
            Kind::DoubleFault => "double_fault",
            Kind::StackProtector => "stack_protector",
            Kind::StackCorruption => "stack_corruption",
            Kind::SoftLockup => "soft_lockup",
            Kind::HardLockup => "hard_lockup",
            Kind::HungTask => "hung_task",
            Kind::RcuStall => "rcu_stall",
            Kind::WorkqueueLockup => "workqueue_lockup",
            Kind::Kasan => "kasan",
            Kind::Kmsan => "kmsan",
            Kind::Kcsan => "kcsan",
            Kind::Kfence => "kfence",
            Kind::Ubsan => "ubsan",
            Kind::Warning => "warning",
            Kind::RefcountWarning => "refcount_warning",
            Kind::OdebugWarning => "odebug_warning",
            Kind::ListCorruption => "list_corruption",
            Kind::BadPageState => "bad_page_state",
            Kind::Lockdep => "lockdep",
            Kind::SchedulingWhileAtomic => "scheduling_while_atomic",
            Kind::SleepingInAtomic => "sleeping_in_atomic",
            Kind::MemoryLeak => "memory_leak",
            Kind::Panic => "panic",
            Kind::Oom => "oom",
            Kind::MachineCheck => "machine_check",
            Kind::Other => "other",
        }
    }
}

/// Which stack section a frame was printed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Context {
    #[default]
    Task,
    Irq,
    Softirq,
    Nmi,
    /// An exception stack (`<#DF>`, `<#MC>`, `<#DB>`, ...).
    Exception,
}

/// One frame of a call trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Frame {
    /// Function name as printed (`enqueue_entity`, `__list_add_valid_or_report`).
    pub function: String,
    /// Offset into the function (`+0x214`).
    pub offset: Option<u64>,
    /// Function size as printed by the kernel (`/0x540`), which runs to the next kallsyms symbol.
    pub size: Option<u64>,
    /// Module name from `[mod]`, `None` for vmlinux.
    pub module: Option<String>,
    /// Absolute address when the log printed one (`[<ffffffff81234567>]`).
    pub address: Option<u64>,
    /// `false` when the frame was printed with a leading `? `.
    pub reliable: bool,
    /// The stack section (`<IRQ>`, `<NMI>`, `<TASK>`, exception stacks).
    pub context: Context,
    /// Which trace of the report the frame belongs to: `call_trace`, `allocated`, `freed`,
    /// `backtrace` (kmemleak), `last_potentially_related`, ...
    pub stack: String,
    /// `file:line` when the log was already symbolized (`decode_stacktrace.sh` output, KASAN inline).
    pub source: Option<String>,
    /// 1-based line of the input this frame was read from.
    pub line: usize,
}

/// The `Code:` line: bytes with the trapping byte marked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Code {
    /// Raw bytes in memory order (arm64 words are expanded to little-endian bytes).
    pub bytes: Vec<u8>,
    /// Index in `bytes` of the first byte of the trapping instruction (`<..>` or `(..)`).
    pub trap_index: Option<usize>,
    /// `true` when x86 printed `(..)`: the IP is only a guess (arm64 always marks with `(..)`).
    pub trap_guessed: bool,
    /// `x86_64`, `arm64`, or `unknown`, from the width of the tokens.
    pub arch: crate::line::Arch,
    /// The line as printed (after the `Code:` prefix).
    pub raw: String,
}

/// Where execution was when the report was made: `RIP: 0010:func+0x5/0x10 [mod]` or arm64 `pc :`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct InstructionPointer {
    pub function: Option<String>,
    pub offset: Option<u64>,
    pub size: Option<u64>,
    pub module: Option<String>,
    pub address: Option<u64>,
}

/// One crash report found in a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// syzkaller-compatible title: `BUG: unable to handle kernel NULL pointer dereference in foo`.
    pub title: String,
    /// Alternative titles for deduplication (`bad-access in foo`).
    pub alt_titles: Vec<String>,
    pub kind: Kind,
    /// syzkaller's crash type for the title (`NULL-POINTER-DEREFERENCE`, `KASAN-USE-AFTER-FREE-READ`).
    pub crash_type: String,
    pub corrupted: bool,
    pub corrupted_reason: Option<String>,
    /// The function named in the title (the first non-generic frame), if any.
    pub guilty_frame: Option<String>,
    /// Grouping key from the top reliable non-generic frames; no offsets or addresses.
    pub signature: String,
    pub kernel_release: Option<String>,
    /// The build string after the release (`#1 SMP PREEMPT_DYNAMIC Debian 6.1.187-1 (2024-...)`).
    pub kernel_build: Option<String>,
    pub cpu: Option<u32>,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// Taint flags (`G        W  OE`) or `Not tainted`.
    pub taint: Option<String>,
    pub hardware: Option<String>,
    pub ip: Option<InstructionPointer>,
    /// CR2 for page faults, the KASAN/KFENCE access address, the `address:` of a NULL deref.
    pub fault_address: Option<u64>,
    /// Register name (lower case: `rax`, `rip`, `cr2`, `x0`, `pc`) to value.
    pub registers: BTreeMap<String, u64>,
    pub frames: Vec<Frame>,
    pub code: Option<Code>,
    /// `Modules linked in:` list, in order; a trailing `[last unloaded: x]` is dropped.
    pub modules: Vec<String>,
    /// `Kernel panic - not syncing: ...` message when the report ended in a panic.
    pub panic_message: Option<String>,
    /// 1-based input lines of the report's first and last line.
    pub start_line: usize,
    pub end_line: usize,
    /// The report's own lines, with timestamps and syslog prefixes stripped.
    pub text: String,
    /// `true` when the report is incomplete: the input ended inside it (no end marker was
    /// seen), or it reached the parser's cap of 2,000 lines and was cut there.
    #[serde(default)]
    pub truncated: bool,
    /// Why `truncated` is set: `end_of_input` or `line_cap`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_reason: Option<String>,
    /// The source file to blame (maintainer routing), when the log was symbolised
    /// (`func+0x1/0x2 net/ipv6/ip6_output.c:1748`): the first file of the trace that is not
    /// generic code (headers, `lib/`, KASAN, allocators, locking, scheduler, fault path...).
    #[serde(default)]
    pub guilty_file: Option<String>,
    /// Where the report was read from (a file name), set by the caller; `None` from the parser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}
