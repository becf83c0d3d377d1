//! Call-trace lines: `func+0x1a/0x2b [mod]` tokens, old `[<addr>]` and ARM32 `(func) from`
//! forms, stack-section markers (`<IRQ>`, `<#DF>`) and stack starts (`Call Trace:`,
//! `Allocated by task N:`), compiler suffixes, and the generic frames no grouping key names.

use super::parse_hex;
use crate::report::{Context, Frame};
use std::sync::OnceLock;

/// `func+0x1a/0x2b [mod]` (optionally `func+0x1a/0x2b mod`): function, offset, size, module.
/// (function, offset, size, module).
pub type Sym = (String, Option<u64>, Option<u64>, Option<String>);

pub fn parse_sym(s: &str) -> Option<Sym> {
    let s = s.trim();
    let plus = s.find("+0x")?;
    let name = &s[..plus];
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'$')
    {
        return None;
    }
    let rest = &s[plus + 1..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    let (offsz, tail) = rest.split_at(end);
    let (off, size) = match offsz.split_once('/') {
        Some((o, z)) => (parse_hex(o), parse_hex(z)),
        None => (parse_hex(offsz), None),
    };
    off?;
    let tail = tail.trim();
    let module = tail
        .strip_prefix('[')
        .and_then(|t| t.split(']').next())
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty() && !m.contains(' '));
    Some((name.to_string(), off, size, module))
}

/// One call-trace line, if it is one.
///
/// Folklore: x86 prints `? ` for frames the unwinder found on the stack but could not prove
/// (`printk_stack_address()` with `reliable == 0`); pre-4.x kernels print `[<addr>] func+off/size`;
/// ARM32 prints `[<pc>] (func) from [<lr>] (caller+off/size)`; `decode_stacktrace.sh` appends
/// ` file.c:123` or ` (file.c:123)`. Pinned by `line::frame::tests::frame_*`.
pub fn parse_frame(line: &str) -> Option<Frame> {
    let mut t = line.trim_start();
    let mut fr = Frame {
        reliable: true,
        ..Frame::default()
    };
    // ARM32 `[<80616f94>] (check_zeroed_user) from [<80321578>] (sys_openat2+0x124/0x170)`:
    // the first function is the frame, at the first address.
    if t.starts_with("[<") {
        let end = t.find(">]")?;
        fr.address = parse_hex(&t[2..end]);
        t = t[end + 2..].trim_start();
        if let Some(x) = t.strip_prefix('(') {
            let close = x.find(')')?;
            let inner = &x[..close];
            if x[close + 1..].trim_start().starts_with("from ") {
                if let Some((f, off, size, m)) = parse_sym(inner) {
                    fr.function = f;
                    fr.offset = off;
                    fr.size = size;
                    fr.module = m;
                } else if !inner.is_empty()
                    && inner
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
                {
                    fr.function = inner.to_string();
                } else {
                    return None;
                }
                return Some(fr);
            }
            return None;
        }
        // Old x86 prints the address twice sometimes.
        if t.starts_with("[<") {
            let end = t.find(">]")?;
            t = t[end + 2..].trim_start();
        }
    }
    if let Some(x) = t.strip_prefix("? ") {
        fr.reliable = false;
        t = x.trim_start();
    }
    // A searcher built once: `str::find` builds a Two-Way searcher on every call, the larger
    // part of this function's cost on the lines that are no frame (issue 15).
    static PLUS: std::sync::OnceLock<memchr::memmem::Finder<'static>> = std::sync::OnceLock::new();
    let plus = PLUS
        .get_or_init(|| memchr::memmem::Finder::new("+0x"))
        .find(t.as_bytes())?;
    // Symbol names have no spaces.
    if t[..plus].contains(' ') {
        return None;
    }
    let end = t[plus..].find(' ').map_or(t.len(), |e| plus + e);
    let (f, off, size, _) = parse_sym(&t[..end])?;
    size?;
    fr.function = f;
    fr.offset = off;
    fr.size = size;
    let tail = t[end..].trim();
    if let Some(m) = tail.strip_prefix('[') {
        if let Some(close) = m.find(']') {
            let name = m[..close].trim();
            if !name.is_empty() && !name.contains(' ') {
                fr.module = Some(name.to_string());
            }
        }
    } else if !tail.is_empty() {
        let src = tail.trim_start_matches('(').trim_end_matches(')');
        if src.contains(':') && src.contains('.') && !src.contains(' ') {
            fr.source = Some(src.to_string());
        }
    }
    Some(fr)
}

/// Stack-section markers: `<IRQ>`, `</IRQ>`, `<NMI>`, `<TASK>`, `<EOI>`, `<#DF>`, `<SOFTIRQ>`.
pub fn parse_context_marker(line: &str) -> Option<Option<Context>> {
    let t = line.trim();
    if !(t.starts_with('<') && t.ends_with('>')) || t.len() > 12 {
        return None;
    }
    Some(match t {
        "<IRQ>" => Some(Context::Irq),
        "<SOFTIRQ>" => Some(Context::Softirq),
        "<NMI>" => Some(Context::Nmi),
        "<TASK>" => Some(Context::Task),
        "</IRQ>" | "</NMI>" | "</SOFTIRQ>" | "<EOI>" | "</TASK>" => None,
        x if x.starts_with("<#") => Some(Context::Exception),
        x if x.starts_with("</#") => None,
        _ => return None,
    })
}

/// The name of the stack a stack-start line opens, if it is one.
pub fn stack_start(line: &str) -> Option<&'static str> {
    let t = line.trim();
    if t.starts_with("Call Trace") || t.starts_with("Call trace") || t.starts_with("Backtrace:") {
        return Some("call_trace");
    }
    if t == "stack backtrace:" {
        return Some("call_trace");
    }
    if !t.ends_with(':') {
        return None;
    }
    let l = t.to_ascii_lowercase();
    if l.starts_with("allocated by task")
        || l.starts_with("allocated:")
        || l.contains(" allocated by task ")
    {
        return Some("allocated");
    }
    if l.starts_with("freed by task") || l.starts_with("freed:") || l.contains(" freed by task ") {
        return Some("freed");
    }
    if l.starts_with("last potentially related work creation") {
        return Some("last_potentially_related");
    }
    if l.starts_with("second to last potentially related work creation") {
        return Some("second_to_last_potentially_related");
    }
    if l.starts_with("backtrace") {
        return Some("backtrace");
    }
    if l.starts_with("uninit was stored to memory at") {
        return Some("uninit_stored");
    }
    if l.starts_with("uninit was created at") {
        return Some("uninit_created");
    }
    if l.starts_with("-> #") {
        return Some("lockdep_chain");
    }
    if l.contains("accesses by task")
        || l.contains("bytes by task")
        || l.contains("bytes by interrupt")
    {
        return Some("call_trace");
    }
    None
}

/// Strip compiler suffixes (`.isra.0`, `.cold`, `.constprop.3`, `.part.1`, `.llvm.123`) for
/// grouping keys.
pub fn base_function(f: &str) -> &str {
    match f.find('.') {
        Some(p) if p > 0 => &f[..p],
        _ => f,
    }
}

/// Generic frames: report and sanitizer machinery, allocators, locking, the fault path, entry
/// code, workqueue/kthread/softirq plumbing, syscall dispatch, idle. They carry almost no signal
/// about which bug it is (syzkaller skips the same kinds when it picks the guilty frame), so no
/// grouping key or fix search uses them. One list for every crate (the prefixes below, and the
/// names of [`GENERIC_EXACT`] and [`GENERIC_PREFIXES`]).
pub fn generic_frame(f: &str) -> bool {
    if GENERIC_EXACT.contains(&f) || GENERIC_PREFIXES.iter().any(|p| f.starts_with(p)) {
        return true;
    }
    static R: OnceLock<regex::Regex> = OnceLock::new();
    let re = R.get_or_init(|| {
        regex::Regex::new(
            r"^(?:dump_stack|show_stack|dump_backtrace|panic|__warn|warn_slowpath|report_bug|handle_bug|exc_|asm_exc_|do_trap|do_error_trap|do_invalid_op|invalid_op|fixup_|kasan|__kasan|kmsan|__msan|kcsan|ubsan|__ubsan|print_|check_memory_region|__asan|__sanitizer|kmem_cache|kmalloc|__kmalloc|kfree|__kmem|slab_|___slab|__slab|krealloc|vmalloc|__vmalloc|kvmalloc|alloc_pages|__alloc_pages|lock_acquire|lock_release|__lock_acquire|_raw_spin|_raw_read|_raw_write|do_raw_spin|spin_|mutex_|__mutex|down_|up_|rwsem|lockdep|mark_lock|refcount_|__refcount|kref_|page_fault|do_page_fault|do_user_addr_fault|__do_page_fault|__bad_area|bad_area|no_context|do_kern_addr_fault|page_fault_oops|kernelmode_fixup_or_oops|__die|die|oops_|nmi_|watchdog|rcu_dump|print_cpu_stall|rcu_sched_clock_irq|update_process_times|tick_|hrtimer|__hrtimer|sysvec_|asm_sysvec|apic_timer|smp_apic_timer|__sysvec|__list_add_valid|__list_del_entry_valid|list_|__schedule|schedule|sched_show_task|show_regs|__show_regs|should_fail|memcpy|memset|memmove|__memcpy|__memset|strlen|strcpy|copy_user|_copy_to_user|_copy_from_user|__might_sleep|__might_resched|___might_sleep|__might_fault|debug_object|hung_task|watchdog_timer|arch_trigger|trigger_|nmi_cpu_backtrace|rcu_|lock_sock|release_sock|__lock_sock|__stack_chk_fail)"
        )
        .expect("static regex")
    });
    re.is_match(f)
}

/// Whole names of generic frames.
pub const GENERIC_EXACT: &[&str] = &[
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
/// Name prefixes of generic frames.
pub const GENERIC_PREFIXES: &[&str] = &[
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_forms() {
        let f = parse_frame(" ? __warn_printk+0xf3/0xf3 [nvme]").unwrap();
        assert!(!f.reliable);
        assert_eq!(f.function, "__warn_printk");
        assert_eq!((f.offset, f.size), (Some(0xf3), Some(0xf3)));
        assert_eq!(f.module.as_deref(), Some("nvme"));
        let f = parse_frame(" [<ffffffff810ec8b2>] drop_spte+0x162/0x260").unwrap();
        assert_eq!(f.address, Some(0xffffffff810ec8b2));
        assert!(f.reliable);
        let f = parse_frame(
            "[<80616f94>] (check_zeroed_user) from [<80321578>] (sys_openat2+0x124/0x170)",
        )
        .unwrap();
        assert_eq!(f.function, "check_zeroed_user");
        let f = parse_frame(" kasan_report+0x1/0x2 mm/kasan/report.c:123").unwrap();
        assert_eq!(f.source.as_deref(), Some("mm/kasan/report.c:123"));
        assert!(parse_frame("RIP: 0010:foo+0x1/0x2").is_none());
        assert!(parse_frame("some text with a+0x1/0x2 in it").is_none());
    }
}
