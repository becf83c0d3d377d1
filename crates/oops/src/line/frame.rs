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
    let plus = t.find("+0x")?;
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
    let l = t.to_ascii_lowercase();
    if !l.ends_with(':') {
        return None;
    }
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
    f.split('.').next().unwrap_or(f)
}

/// Generic frames never make a signature: report machinery, allocators, locking, the fault path.
pub fn generic_frame(f: &str) -> bool {
    static R: OnceLock<regex::Regex> = OnceLock::new();
    let re = R.get_or_init(|| {
        regex::Regex::new(
            r"^(?:dump_stack|show_stack|dump_backtrace|panic|__warn|warn_slowpath|report_bug|handle_bug|exc_|asm_exc_|do_trap|do_error_trap|do_invalid_op|invalid_op|fixup_|kasan|__kasan|kmsan|__msan|kcsan|ubsan|__ubsan|print_|check_memory_region|__asan|__sanitizer|kmem_cache|kmalloc|__kmalloc|kfree|__kmem|slab_|___slab|__slab|krealloc|vmalloc|__vmalloc|kvmalloc|alloc_pages|__alloc_pages|lock_acquire|lock_release|__lock_acquire|_raw_spin|_raw_read|_raw_write|do_raw_spin|spin_|mutex_|__mutex|down_|up_|rwsem|lockdep|mark_lock|refcount_|__refcount|kref_|page_fault|do_page_fault|do_user_addr_fault|__do_page_fault|__bad_area|bad_area|no_context|do_kern_addr_fault|page_fault_oops|kernelmode_fixup_or_oops|__die|die|oops_|nmi_|watchdog|rcu_dump|print_cpu_stall|rcu_sched_clock_irq|update_process_times|tick_|hrtimer|__hrtimer|sysvec_|asm_sysvec|apic_timer|smp_apic_timer|__sysvec|__list_add_valid|__list_del_entry_valid|list_|__schedule|schedule|sched_show_task|show_regs|__show_regs|should_fail|memcpy|memset|memmove|__memcpy|__memset|strlen|strcpy|copy_user|_copy_to_user|_copy_from_user|__might_sleep|__might_resched|___might_sleep|__might_fault|debug_object|hung_task|watchdog_timer|arch_trigger|trigger_|nmi_cpu_backtrace|rcu_|lock_sock|release_sock|__lock_sock|__stack_chk_fail)"
        )
        .expect("static regex")
    });
    re.is_match(f)
}

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
