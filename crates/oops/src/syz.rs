//! syzkaller-compatible titles: a port of the rules of syzkaller's `pkg/report/linux.go`
//! (oops header table, per-format title regexps, guilty-frame skip lists, stack starts,
//! stall/hang frame extractors, title normalisation, corrupted heuristics).
//!
//! All regexps are compiled with the `regex` crate, which runs in linear time; they only ever
//! run on the text of one report (bounded), never on the whole log.

use regex::bytes::{Regex, RegexBuilder};
use std::sync::OnceLock;

const PC: &str = r"\[\<?(?:0x)?[0-9a-f]+\>?\]";
const FUNC: &str = r"([a-zA-Z0-9_]+)(?:\.|\+)";
const SRC: &str = r"([a-zA-Z0-9-_/.]+\.[a-z]+:[0-9]+)";
const ADDR: &str = r"0x[0-9a-f]+";

fn expand(re: &str) -> String {
    // Go's RE2 reads `\<` as a literal `<`; Rust's regex reads it as a word boundary.
    re.replace("{{PC}}", PC)
        .replace("{{FUNC}}", FUNC)
        .replace("{{SRC}}", SRC)
        .replace("{{ADDR}}", ADDR)
        .replace("\\<", "<")
        .replace("\\>", ">")
}

pub(crate) fn compile(re: &str) -> Regex {
    RegexBuilder::new(&expand(re))
        .unicode(false)
        .size_limit(50 << 20)
        .build()
        .unwrap_or_else(|e| panic!("bad built-in regexp {re}: {e}"))
}

/// A step of a stack format: a regexp whose first group (if any) is a frame, or "parse the
/// stack trace from here".
pub(crate) enum Part {
    Re(Regex),
    Trace,
    /// The RIP frame, but only if it comes before any stack start (the report's own
    /// registers, not those of a later trace).
    RipFirst(Regex),
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extractor {
    First,
    Stall,
    Hang,
}

pub(crate) struct StackFmt {
    parts: Vec<Part>,
    parts2: Vec<Part>,
    /// A last resort tried when `parts` and `parts2` give nothing.
    parts3: Vec<Part>,
    /// The format's own skips; the global [`SKIP`] list applies too.
    skip: Option<Regex>,
    extractor: Extractor,
}

pub(crate) struct Format {
    title: Regex,
    report: Option<Regex>,
    fmt: &'static str,
    alt: Vec<&'static str>,
    stack: Option<StackFmt>,
    pub(crate) no_stack_trace: bool,
    corrupted: bool,
}

pub(crate) struct Oops {
    pub(crate) header: &'static str,
    formats: Vec<Format>,
    suppressions: Vec<Regex>,
}

// ---- builders, to keep the table close to syzkaller's ----

const RIP: &str = "\u{1}rip";
const CALL: &str = "\u{1}call";
const TRACE: &str = "\u{1}trace";
const RIP_FIRST: &str = "\u{1}ripfirst";

fn rip_re() -> &'static str {
    r"(?:IP|NIP|pc |PC is at):? (?:(?:[0-9]+:)?(?:{{PC}} +){0,2}{{FUNC}}|(?:[0-9]+:)?0x[0-9a-f]+|(?:[0-9]+:)?{{PC}} +\[< *\(null\)>\] +\(null\)|[0-9]+: +\(null\))"
}

fn part(p: &str) -> Part {
    match p {
        RIP => Part::Re(compile(rip_re())),
        CALL => Part::Re(compile(r"Call (?:T|t)race:|Backtrace:")),
        TRACE => Part::Trace,
        RIP_FIRST => Part::RipFirst(compile(rip_re())),
        re => Part::Re(compile(re)),
    }
}

struct S {
    parts: &'static [&'static str],
    parts2: &'static [&'static str],
    parts3: &'static [&'static str],
    skip: &'static [&'static str],
    extractor: Extractor,
}

const fn st(parts: &'static [&'static str]) -> S {
    S {
        parts,
        parts2: &[],
        parts3: &[],
        skip: &[],
        extractor: Extractor::First,
    }
}

impl S {
    const fn skip(mut self, skip: &'static [&'static str]) -> Self {
        self.skip = skip;
        self
    }
    const fn parts2(mut self, p: &'static [&'static str]) -> Self {
        self.parts2 = p;
        self
    }
    const fn parts3(mut self, p: &'static [&'static str]) -> Self {
        self.parts3 = p;
        self
    }
    const fn ex(mut self, e: Extractor) -> Self {
        self.extractor = e;
        self
    }
    fn build(self) -> StackFmt {
        StackFmt {
            parts: self.parts.iter().map(|p| part(p)).collect(),
            parts2: self.parts2.iter().map(|p| part(p)).collect(),
            parts3: self.parts3.iter().map(|p| part(p)).collect(),
            skip: (!self.skip.is_empty()).then(|| compile(&self.skip.join("|"))),
            extractor: self.extractor,
        }
    }
}

struct F {
    title: &'static str,
    report: Option<&'static str>,
    fmt: &'static str,
    alt: &'static [&'static str],
    stack: Option<S>,
    no_stack_trace: bool,
    corrupted: bool,
}

const fn f(title: &'static str, fmt: &'static str) -> F {
    F {
        title,
        report: None,
        fmt,
        alt: &[],
        stack: None,
        no_stack_trace: false,
        corrupted: false,
    }
}

impl F {
    const fn alt(mut self, a: &'static [&'static str]) -> Self {
        self.alt = a;
        self
    }
    const fn report(mut self, r: &'static str) -> Self {
        self.report = Some(r);
        self
    }
    const fn stack(mut self, s: S) -> Self {
        self.stack = Some(s);
        self
    }
    const fn nostack(mut self) -> Self {
        self.no_stack_trace = true;
        self
    }
    const fn corrupted(mut self) -> Self {
        self.corrupted = true;
        self
    }
    fn build(self) -> Format {
        Format {
            title: compile(self.title),
            report: self.report.map(compile),
            fmt: self.fmt,
            alt: self.alt.to_vec(),
            stack: self.stack.map(S::build),
            no_stack_trace: self.no_stack_trace,
            corrupted: self.corrupted,
        }
    }
}

/// Frames that are never "guilty": sanitizer and report internals, allocators, locking,
/// atomics, string and copy helpers, list helpers, the page-fault path, printk.
const SKIP: &[&str] = &[
    "__sanitizer",
    "__asan",
    "kasan",
    "hwasan",
    "__msan",
    "kmsan",
    "kcsan_setup_watchpoint",
    "check_memory_region",
    "check_heap_object",
    "check_object",
    "read_word_at_a_time",
    "(read|write)_once_.*nocheck",
    "print_address_description",
    "panic",
    "invalid_op",
    "report_bug",
    "fixup_bug",
    "fixup_exception",
    "do_error",
    "_trap",
    "dump_stack",
    "warn_slowpath",
    "warn_alloc",
    "warn_bogus",
    "__warn",
    "alloc_page",
    "k?v?(?:m|z|c)alloc",
    "krealloc",
    "kmem_cache",
    "allocate_slab",
    "folio_(?:alloc|unlock)",
    "filemap_alloc_folio",
    "__filemap_get_folio",
    "find_or_create_page",
    "do_read_cache_folio",
    "read_cache_page",
    "pagecache_get_page",
    "grab_cache_page_write_begin",
    "slab_",
    "debug_object",
    "timer_is_static_object",
    "work_is_static_object",
    "__might_fault",
    "print_unlock",
    "imbalance_bug",
    "lockdep",
    "bh_enable",
    "bh_disable",
    "perf_trace",
    "lock_acquire",
    "lock_release",
    "lock_class",
    "mark_lock",
    "(reacquire|mark)_held_locks",
    "raw_spin_rq",
    "spin_lock",
    "spin_trylock",
    "spin_unlock",
    "read_lock",
    "read_trylock",
    "write_lock",
    "write_trylock",
    "read_unlock",
    "write_unlock",
    "^down$",
    "down_read",
    "down_write",
    "down_read_trylock",
    "down_write_trylock",
    "down_trylock",
    "up_read",
    "up_write",
    "^mutex_",
    "^__mutex_",
    "^rt_mutex_",
    "owner_on_cpu",
    "osq_lock",
    "osq_unlock",
    "atomic(64)?_(dec|inc|read|set|or|xor|and|add|sub|fetch|xchg|cmpxchg|try)",
    "(set|clear|change|test)_bit",
    "__wake_up",
    "^refcount_",
    "^kref_",
    "ref_tracker",
    "seqprop_assert",
    "memcpy",
    "memcmp",
    "memset",
    "memchr",
    "memmove",
    "memdup",
    "strcmp",
    "strncmp",
    "strchr",
    "strlen",
    "strscpy",
    "strncpy",
    "strlcpy",
    "copy_to_user",
    "copy_from_user",
    "copy_to_iter",
    "copy_from_iter",
    "copy_page_to_iter",
    "copy_page_from_iter",
    "copy_folio_to_iter",
    "^copyin$",
    "^copyout$",
    "put_user",
    "get_user",
    "might_fault",
    "might_sleep",
    "list_add",
    "list_del",
    "list_replace",
    "list_move",
    "list_splice",
    "^rb_",
    "^__rb_",
    "_indirect_thunk_",
    "string",
    "pointer",
    "snprintf",
    "scnprintf",
    "kasprintf",
    "kvasprintf",
    "printk",
    "va_format",
    "dev_info",
    "dev_notice",
    "dev_warn",
    "dev_err",
    "dev_alert",
    "dev_crit",
    "dev_emerg",
    "program_check_exception",
    "program_check_common",
    "del_timer",
    "__cancel_work_timer",
    "cancel_work_sync",
    "try_to_grab_pending",
    "drain_workqueue",
    "destroy_workqueue",
    "queue_work",
    "finish_wait",
    "kthread_stop",
    "kobject_",
    "add_uevent_var",
    "get_device_parent",
    "device_add",
    "device_del",
    "device_unregister",
    "device_destroy",
    "device_release",
    "devres_release_all",
    "hwrng_unregister",
    "i2c_del_adapter",
    "__unregister_client",
    "device_for_each_child",
    "rollback_registered",
    "unregister_netdev",
    "sysfs_remove",
    "__sysfs_remove",
    "^abort$",
    "mem_cgroup",
    "rcu_lock",
    "rcu_read_lock",
    "rcu_read_unlock",
    "do_user_addr_fault",
    "exc_page_fault",
    "asm_exc_",
    "do_page_fault",
    "page_fault$",
    "do_kern_addr_fault",
    "spurious_kernel_fault",
    "show_stack",
    "dump_backtrace",
    "stack_trace",
    "arch_stack_walk",
    "__pfx_",
    "trace_hardirqs",
    "print_usage_bug",
    "^kfree",
    "kvfree",
    "print_report",
    "hex_dump",
    "crc16",
    "crc_itu_t",
    "crc32",
    "^xas_",
    "^klist_",
    "walk_stackframe",
    "__do_kernel_fault",
    "do_kernel_fault",
    "debug_print_object",
    "debug_check_no_locks",
    "wait_for_completion",
    "usb_kill_urb",
    "usb_kill_anchored_urbs",
    "usb_control_msg",
    "usb_bulk_msg",
    "device_remove_file",
    "assertfail",
    "__stack_chk_fail",
    "^iput$",
    "^crypto_",
    "^drbg_",
    "cipher_crypt",
    "^xts_(?:en|de)crypt",
    "el1_sync_handler",
    "el1h_64_sync_handler",
    "^el1_sync$",
    "^__mod_timer$",
    "^mod_timer$",
    "^add_timer",
    "truncate_inode_pages",
    "^aesti_(?:en|de)crypt",
    "^__flush_work",
    "^flush_work$",
    "dput$",
    "^mark_buffer_dirty",
    "^ida_free",
    "^ida_alloc",
    "^drop_nlink",
    "^cleanup_srcu_struct",
    "^lock_timer_base",
    "^skb_(?:put|push|pull|panic|over_panic|under_panic)$",
    "^rhashtable_lookup",
    "^rht_",
    "^find_lock_entries",
    "folios_put",
    "^__folio_put",
    "^aes_(?:en|de)crypt",
    "^str(?:n?cmp|n?cpy|n?len|str|nstr|chr|rchr|casecmp|lcpy|sep|spn|cspn|pbrk)$",
    "_noprof$",
    "do_tag_check_fault",
    "do_translation_fault",
    "do_mem_abort",
    "el1_abort",
    "el1h_64_sync",
];

/// Stack starts: after one of these, frames follow.
pub(crate) fn stack_start_res() -> &'static [Regex] {
    static R: OnceLock<Vec<Regex>> = OnceLock::new();
    R.get_or_init(|| {
        [
            r"Call (?:T|t)race",
            r"Allocated:",
            r"Allocated by task [0-9]+:",
            r"Freed:",
            r"Freed by task [0-9]+:",
            r"[^k] backtrace:",
            r"Backtrace:",
            r"Uninit was stored to memory at",
        ]
        .iter()
        .map(|r| compile(r))
        .collect()
    })
}

/// Several expressions as one alternation: one search per line instead of one per expression
/// (the same answer for `is_match`).
fn alternation(res: &[Regex]) -> Regex {
    RegexBuilder::new(
        &res.iter()
            .map(|r| format!("(?:{})", r.as_str()))
            .collect::<Vec<_>>()
            .join("|"),
    )
    .unicode(false)
    .size_limit(50 << 20)
    .build()
    .expect("built-in expressions combine")
}

/// [`stack_start_res`] as one alternation.
fn stack_start_any() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| alternation(stack_start_res()))
}

/// [`frame_res`] as one alternation.
fn frame_any() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| alternation(frame_res()))
}

pub(crate) fn frame_res() -> &'static [Regex] {
    static R: OnceLock<Vec<Regex>> = OnceLock::new();
    R.get_or_init(|| {
        vec![
            compile(r"^ *(?:{{PC}} ){0,2}{{FUNC}}"),
            // ARM: both the current and the next frame (the top one is only in LR).
            compile(r"^ *{{PC}} \(([a-zA-Z0-9_.]+)\) from {{PC}} \({{FUNC}}"),
        ]
    })
}

fn corrupted_line_res() -> &'static [Regex] {
    static R: OnceLock<Vec<Regex>> = OnceLock::new();
    R.get_or_init(|| {
        // Fault injection stacks are frequently intermixed with crash reports.
        vec![compile(
            r"^( \[\<?(?:0x)?[0-9a-f]+\>?\])? should_fail(slab)?(\.[a-z0-9.]+)?\+0x",
        )]
    })
}

/// Lines that match an oops header but never start a report of their own: they are part of
/// the report in progress (`invalid opcode` after `kernel BUG at`, the panic after an oops).
pub(crate) const REPORT_START_IGNORES: &[&str] = &[
    "invalid opcode: 0000",
    "Kernel panic - not syncing",
    "unregister_netdevice: waiting for",
    "PANIC: double fault",
    "Internal error:",
];

use Extractor::{Hang, Stall};

const FAULT_STACK: S = st(&[RIP, CALL, TRACE]);

fn table_defs() -> Vec<(&'static str, Vec<F>, Vec<&'static str>)> {
    vec![
        (
            "BUG:",
            vec![
                f(r"BUG: KASAN: double-free or invalid-free in {{FUNC}}", "KASAN: invalid-free in %[2]v")
                    .alt(&["invalid-free in %[2]v"])
                    .stack(st(&[r"BUG: KASAN: double-free or invalid-free in {{FUNC}}", CALL, TRACE]).parts2(&[CALL, TRACE]).skip(&["slab_", "kfree", "kvfree", "vunmap", "vfree"])),
                f(r"BUG: KASAN: (?:double|invalid)-free in {{FUNC}}", "KASAN: invalid-free in %[2]v")
                    .alt(&["invalid-free in %[2]v"])
                    .stack(st(&[r"BUG: KASAN: (?:double|invalid)-free in {{FUNC}}", CALL, TRACE]).parts2(&[CALL, TRACE]).skip(&["slab_", "kfree", "kvfree", "vunmap", "vfree"])),
                f(r"BUG: KASAN: ([a-z\-]+) in {{FUNC}}(?:.*\n)+?.*(Read|Write) (?:of size|at addr) (?:[0-9a-f]+)", "KASAN: %[1]v %[3]v in %[4]v")
                    .alt(&["bad-access in %[4]v"])
                    .stack(st(&[r"BUG: KASAN: (?:[a-z\-]+) in {{FUNC}}", CALL, TRACE]).parts2(&[CALL, TRACE]).skip(&["slab_", "kfree", "vunmap", "vfree", "__free", "__memcpy_", "ioread", "iowrite"])),
                f(r"BUG: KASAN: ([a-z\-]+) on address(?:.*\n)+?.*(Read|Write) of size ([0-9]+)", "KASAN: %[1]v %[2]v").corrupted(),
                f(r"BUG: KASAN: null-ptr-deref on address", "KASAN: null-ptr-deref").corrupted(),
                f(r"BUG: KASAN: (.*)", "KASAN: %[1]v").corrupted(),
                f(r"BUG: KMSAN: kernel-usb-infoleak", "KMSAN: kernel-usb-infoleak in %[1]v")
                    .stack(st(&[r"BUG: KMSAN: kernel-usb-infoleak in {{FUNC}}", TRACE]).parts2(&[CALL, TRACE]).skip(&["usb_submit_urb", "usb_start_wait_urb", "usb_bulk_msg", "usb_interrupt_msg", "usb_control_msg"])),
                f(r"BUG: KMSAN: kernel-infoleak-after-free", "KMSAN: kernel-infoleak-after-free in %[1]v")
                    .alt(&["bad-access in %[1]v"])
                    .stack(st(&[CALL, TRACE]).skip(&["copy_to_user", "copyout", "_copy_to_iter", "copy_to_iter"])),
                f(r"BUG: KMSAN: kernel-infoleak", "KMSAN: kernel-infoleak in %[1]v")
                    .alt(&["bad-access in %[1]v"])
                    .stack(st(&[r"BUG: KMSAN: kernel-infoleak in {{FUNC}}", TRACE]).parts2(&[CALL, TRACE]).skip(&["copy_to_user", "copyout", "_copy_to_iter", "copy_to_iter", "copy_page_to_iter", "copy_user", "instrument_copy", "copy_mc_to_user", "_copy_to_user"])),
                f(r"BUG: KMSAN: ([a-z\-]+) in {{FUNC}}", "KMSAN: %[1]v in %[3]v")
                    .alt(&["bad-access in %[3]v"])
                    .stack(st(&[r"BUG: KMSAN: (?:[a-z\-]+) in {{FUNC}}", TRACE]).parts2(&[CALL, TRACE])),
                f(r"BUG: KCSAN: data-race in ([a-zA-Z0-9_]+) / ([a-zA-Z0-9_]+)", "KCSAN: data-race in %[1]v / %[2]v").nostack(),
                f(r"BUG: KCSAN: data-race in {{FUNC}}", "KCSAN: data-race in %[2]v")
                    .stack(st(&[r"(?:read|write|modified).*to 0x[0-9a-f]+ of [0-9]+ bytes by (?:task|interrupt|irq)", TRACE])),
                f(r"BUG: KCSAN: assert: race in {{FUNC}}", "KCSAN: assert: race in %[2]v")
                    .stack(st(&[r"assert no (?:accesses|writes) to 0x[0-9a-f]+ of [0-9]+ bytes by (?:task|interrupt|irq)", TRACE])),
                f(r"BUG: KCSAN: (.*)", "KCSAN: %[1]v").corrupted(),
                f(r"BUG: KFENCE: (use-after-free|out-of-bounds) ([a-z]+) in {{FUNC}}", "KFENCE: %[1]v %[2]v in %[4]v")
                    .alt(&["bad-access in %[4]v"])
                    .stack(st(&[r"BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}", TRACE])),
                f(r"BUG: KFENCE: invalid free in {{FUNC}}", "KFENCE: invalid free in %[2]v")
                    .alt(&["invalid-free in %[2]v"])
                    .stack(st(&[r"BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}", TRACE])),
                f(r"BUG: KFENCE: invalid (read|write) in {{FUNC}}", "KFENCE: invalid %[1]v in %[3]v")
                    .alt(&["bad-access in %[3]v"])
                    .stack(st(&[r"BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}", TRACE])),
                f(r"BUG: KFENCE: memory corruption in {{FUNC}}", "KFENCE: memory corruption in %[2]v")
                    .stack(st(&[r"BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}", TRACE])),
                f(r"BUG: (?:unable to handle kernel paging request|unable to handle page fault for address|Unable to handle kernel data access on read)", "BUG: unable to handle kernel paging request in %[1]v")
                    .alt(&["bad-access in %[1]v"])
                    .stack(FAULT_STACK),
                f(r"BUG: (?:pagefault on kernel address {{ADDR}} in non-whitelisted uaccess|failed to read from kernel address {{ADDR}})", "BUG: unable to handle kernel paging request in %[1]v")
                    .alt(&["bad-access in %[1]v"])
                    .stack(FAULT_STACK),
                f(r"BUG: (?:unable to handle kernel NULL pointer dereference|kernel NULL pointer dereference, address)", "BUG: unable to handle kernel NULL pointer dereference in %[1]v")
                    .alt(&["bad-access in %[1]v"])
                    .stack(FAULT_STACK),
                f(r"BUG: (?:unable to handle kernel access to user memory|kernel access to user memory|unable to handle kernel data access on write)", "BUG: unable to handle kernel access to user memory in %[1]v")
                    .alt(&["bad-access in %[1]v"])
                    .stack(FAULT_STACK),
                f(r"BUG: (spinlock|rwlock) (lockup suspected|already unlocked|recursion|bad magic|wrong owner|wrong CPU|trylock failure on UP)", "BUG: %[1]v %[2]v in %[3]v")
                    .stack(st(&[CALL, TRACE]).skip(&["spin_", "_lock", "_unlock"])),
                f(r"BUG: soft lockup", "BUG: soft lockup in %[1]v")
                    .alt(&["stall in %[1]v"])
                    .stack(st(&[RIP, CALL, TRACE]).parts2(&[CALL, TRACE]).ex(Stall)),
                f(r"BUG: .*still has locks held!", "BUG: still has locks held in %[1]v")
                    .stack(st(&[r"did not release|still has locks held", r"at: (?:{{PC}} +)?{{FUNC}}", CALL, TRACE])),
                f(r"BUG: lock held when returning to user space", "BUG: lock held when returning to user space in %[1]v")
                    .nostack()
                    .stack(st(&[r"lock held when returning to user space", r"at: (?:{{PC}} +)?{{FUNC}}"])),
                f(r"BUG: bad unlock balance detected!", "BUG: bad unlock balance in %[1]v")
                    .stack(st(&[r"is trying to release lock", TRACE])),
                f(r"BUG: held lock freed!", "BUG: held lock freed in %[1]v")
                    .stack(st(&[r"is freeing memory", r"at: (?:{{PC}} +)?{{FUNC}}", CALL, TRACE])),
                f(r"BUG: Bad rss-counter state", "BUG: Bad rss-counter state").nostack(),
                f(r"BUG: non-zero nr_ptes on freeing mm", "BUG: non-zero nr_ptes on freeing mm").nostack(),
                f(r"BUG: non-zero pgtables_bytes on freeing mm", "BUG: non-zero pgtables_bytes on freeing mm").nostack(),
                f(r"BUG: Dentry .* still in use \([0-9]+\) \[(unmount) of ([^\]]+)\]", "BUG: Dentry still in use in %[1]v")
                    .alt(&["BUG: Dentry still in use [%[1]v of %[2]v]"]),
                f(r"BUG: Bad page (state|cache)", "BUG: Bad page %[1]v in %[2]v")
                    .stack(st(&[r"(?:PAGE_FLAGS_CHECK_AT_FREE|page dumped because|bad because of flags)", CALL, TRACE]).parts2(&[CALL, TRACE]).skip(&["free_", "put_page", "release_pages", "bad_page", "check_new_page", "prep_new_page", "get_page_from_freelist", "check_free_page", "free_pages"])),
                f(r"BUG: Bad page map", "BUG: Bad page map").corrupted(),
                f(r"BUG: workqueue lockup", "BUG: workqueue lockup").nostack(),
                f(r"BUG: sleeping function called from invalid context at (.*)", "BUG: sleeping function called from invalid context in %[2]v")
                    .stack(st(&[CALL, TRACE]).skip(&["__might_sleep", "__might_resched", "might_sleep", "___might_sleep"])),
                f(r"BUG: using __this_cpu_([a-z_]+)\(\) in preemptible", "BUG: using __this_cpu_%[1]v() in preemptible code in %[2]v")
                    .stack(st(&[CALL, TRACE]).skip(&["dump_stack", "preemption", "preempt", "debug_", "processor_id", "this_cpu"])),
                f(r"BUG: using smp_processor_id\(\) in preemptible", "BUG: using smp_processor_id() in preemptible code in %[1]v")
                    .stack(st(&[CALL, TRACE]).skip(&["dump_stack", "preemption", "preempt", "debug_", "processor_id", "this_cpu"])),
                f(r"BUG: workqueue leaked lock or atomic", "BUG: workqueue leaked lock or atomic in %[1]v")
                    .stack(st(&[r"last function: ([a-zA-Z0-9_]+)"])),
                f(r"BUG: scheduling while atomic", "BUG: scheduling while atomic in %[1]v")
                    .stack(st(&[CALL, TRACE]).skip(&["schedule"])),
                f(r"BUG: memory leak", "memory leak in %[1]v")
                    .stack(st(&[r"backtrace(?: \(crc [[:xdigit:]]+\))?:", TRACE]).skip(&["kmemleak", "mmap", "kmem", "slab", "alloc", "create_object", "idr_get", "list_lru_init", "kasprintf", "kvasprintf", "pcpu_create_chunk", "strdup", "strndup", "memdup"])),
                f(r"BUG: .*stack guard page was hit at", "BUG: stack guard page was hit in %[1]v")
                    .alt(&["stack-overflow in %[1]v"])
                    .stack(FAULT_STACK),
                f(r"BUG: Invalid wait context", "WARNING: locking bug in %[1]v")
                    .stack(st(&[r"is trying to lock:", r"at: (?:{{PC}} +)?{{FUNC}}"])),
                f(r"BUG: MAX_STACK_TRACE_ENTRIES too low!", "BUG: MAX_STACK_TRACE_ENTRIES too low!").nostack(),
                f(r"BUG: unable to handle kernel", "BUG: unable to handle kernel").corrupted(),
            ],
            vec![
                // CONFIG_DEBUG_OBJECTS output and Android's noise also contain "BUG:".
                "ODEBUG:",
                "Boot_DEBUG:",
                "xlog_status:",
                "DEBUG:",
                "BUG: no syscalls can create resource",
            ],
        ),
        (
            "WARNING:",
            vec![
                f(r"WARNING: (?:.*lib/debugobjects\.c.* (?:debug_print|debug_check)|(?:\[.*\] )?lib/debugobjects\.c:[0-9]+ at )", "WARNING: ODEBUG bug in %[1]v")
                    .stack(st(&[r"ODEBUG:.*(?:object|free)", CALL, TRACE]).parts2(&[CALL, TRACE]).skip(&["debug_object", "debug_check", "free_obj", "destroy_", "kfree", "delete", "timer", "__do_softirq"])),
                f(r"WARNING: (?:.*mm/usercopy\.c.* usercopy_warn|(?:\[.*\] )?mm/usercopy\.c:[0-9]+ at )", "WARNING: bad usercopy in %[1]v")
                    .stack(st(&[RIP, CALL, TRACE]).skip(&["usercopy", "__check"])),
                f(r"WARNING: (?:.*lib/kobject\.c.* kobject_|(?:\[.*\] )?lib/kobject\.c:[0-9]+ at )", "WARNING: kobject bug in %[1]v")
                    .stack(st(&[RIP, CALL, TRACE]).parts2(&[CALL, TRACE]).skip(&["kobject_"])),
                f(r"WARNING: .*fs/proc/generic\.c.* proc_register", "WARNING: proc registration bug in %[1]v")
                    .stack(st(&[RIP, CALL, TRACE]).skip(&["proc_"])),
                f(r"WARNING: (?:.*lib/refcount\.c.* refcount_|(?:\[.*\] )?lib/refcount\.c:[0-9]+ at )", "WARNING: refcount bug in %[1]v")
                    .stack(st(&[RIP, CALL, TRACE]).parts2(&[CALL, TRACE]).skip(&["refcount", "kobject_"])),
                f(r"WARNING: (?:.*kernel/locking/lockdep\.c.*lock_|(?:\[.*\] )?kernel/locking/lockdep\.c:[0-9]+ at )", "WARNING: locking bug in %[1]v")
                    .stack(st(&[RIP, CALL, TRACE]).parts2(&[CALL, TRACE]).skip(&["lock_sock", "release_sock", "lock_"])),
                f(r"WARNING: .*still has locks held!", "WARNING: still has locks held in %[1]v")
                    .stack(st(&[r"did not release|still has locks held", r"at: (?:{{PC}} +)?{{FUNC}}", CALL, TRACE])),
                f(r"WARNING: Nested lock was not taken", "WARNING: nested lock was not taken in %[1]v")
                    .stack(st(&[r"at: (?:{{PC}} +)?{{FUNC}}", CALL, TRACE])),
                f(r"WARNING: lock held when returning to user space", "WARNING: lock held when returning to user space in %[1]v")
                    .nostack()
                    .stack(st(&[r"lock held when returning to user space", r"at: (?:{{PC}} +)?{{FUNC}}"])),
                f(r"WARNING: (?:.*mm/.*\.c.* k?.?malloc|(?:\[.*\] )?mm/(?:slab|slub|slab_common|page_alloc)\.c:[0-9]+ at k?.?malloc)", "WARNING: kmalloc bug in %[1]v")
                    .stack(st(&[RIP, CALL, TRACE]).parts2(&[CALL, TRACE]).skip(&["kmalloc", "krealloc", "slab", "kmem"])),
                f(r"WARNING: .*mm/vmalloc\.c.*__vmalloc_node", "WARNING: zero-size vmalloc in %[1]v")
                    .stack(st(&[RIP, CALL, TRACE]).parts2(&[CALL, TRACE]).skip(&["vmalloc"])),
                f(r"WARNING: (?:.* at {{SRC}} usb_submit_urb|(?:\[.*\] )?{{SRC}} at usb_submit_urb)", "WARNING in %[3]v/usb_submit_urb")
                    .stack(st(&[RIP, CALL, TRACE]).parts2(&[CALL, TRACE]).skip(&["usb_submit_urb", "usb_start_wait_urb", "usb_bulk_msg", "usb_interrupt_msg", "usb_control_msg"])),
                f(r"WARNING: .* at {{SRC}} {{FUNC}}", "WARNING in %[3]v")
                    .stack(st(&[RIP, CALL, TRACE]).parts2(&[CALL, TRACE])),
                // 6.17+ prints `WARNING: [cond] file.c:123 at func+0x1/0x2, CPU: comm/pid`.
                f(r"WARNING: (?:\[.*\] )?{{SRC}} at ", "WARNING in %[2]v")
                    .stack(st(&[RIP, CALL, TRACE]).parts2(&[CALL, TRACE])),
                f(r"WARNING: possible circular locking dependency detected", "possible deadlock in %[1]v")
                    .report(r"WARNING: possible circular locking dependency detected(?:.*\n)+?.*is trying to acquire lock")
                    .stack(st(&[r"at: (?:{{PC}} +)?{{FUNC}}", r"at: (?:{{PC}} +)?{{FUNC}}", TRACE]).skip(&["lock_sock"])),
                f(r"WARNING: possible irq lock inversion dependency detected", "possible deadlock in %[1]v")
                    .stack(st(&[r"at: (?:{{PC}} +)?{{FUNC}}", CALL, TRACE])),
                f(r"WARNING: .*-safe -> .*-unsafe lock order detected", "possible deadlock in %[1]v")
                    .stack(st(&[r"which became (?:.*) at:", TRACE])),
                f(r"WARNING: possible recursive locking detected", "possible deadlock in %[1]v")
                    .stack(st(&[r"at: (?:{{PC}} +)?{{FUNC}}", r"at: (?:{{PC}} +)?{{FUNC}}", TRACE]).skip(&["lock_sock"])),
                f(r"WARNING: inconsistent lock state", "inconsistent lock state in %[2]v")
                    .report(r"WARNING: inconsistent lock state(?:.*\n)+?.*takes(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}")
                    .stack(st(&[CALL, TRACE])),
                f(r"WARNING: suspicious RCU usage", "WARNING: suspicious RCU usage in %[2]v")
                    .report(r"WARNING: suspicious RCU usage.*\n.*\n-+\n.*?{{SRC}}")
                    .stack(st(&[CALL, TRACE]).skip(&["rcu", "kmem", "slab"])),
                f(r"WARNING: kernel stack regs at [0-9a-f]+ in [^ ]* has bad '([^']+)' value", "WARNING: kernel stack regs has bad '%[1]v' value").nostack(),
                f(r"WARNING: kernel stack frame pointer at [0-9a-f]+ in [^ ]* has bad value", "WARNING: kernel stack frame pointer has bad value").nostack(),
                f(r"WARNING: bad unlock balance detected!", "WARNING: bad unlock balance in %[1]v")
                    .stack(st(&[r"is trying to release lock", TRACE])),
                f(r"WARNING: held lock freed!", "WARNING: held lock freed in %[1]v")
                    .stack(st(&[r"is freeing memory", r"at: (?:{{PC}} +)?{{FUNC}}", CALL, TRACE])),
                f(r"WARNING: kernel stack regs", "WARNING: kernel stack regs has bad value").nostack(),
            ],
            vec![
                r"WARNING: /etc/ssh/moduli does not exist, using fixed modulus",
                r"WARNING: workqueue cpumask: online intersect > possible intersect",
                r"WARNING: [Tt]he mand mount option",
                r"WARNING: Unsupported flag value\(s\) of 0x%x in DT_FLAGS_1",
                r"WARNING: Unprivileged eBPF is enabled",
                r"WARNING: fbcon: Driver '(.*)' missed to adjust virtual screen size",
                r"WARNING: See https.* for mitigation options\.",
                // arch/x86/kernel/cpu/bugs.c mitigation notes, not bugs.
                r"WARNING: kernel not compiled with",
                r"[A-Za-z0-9_-]+ \([^)]*\): WARNING:",
            ],
        ),
        (
            "INFO:",
            vec![
                f(r"INFO: possible circular locking dependency detected", "possible deadlock in %[1]v")
                    .report(r"INFO: possible circular locking dependency detected \](?:.*\n)+?.*is trying to acquire lock")
                    .stack(st(&[r"at: (?:{{PC}} +)?{{FUNC}}", r"at: (?:{{PC}} +)?{{FUNC}}", TRACE]).skip(&["lock_sock"])),
                f(r"INFO: possible irq lock inversion dependency detected", "possible deadlock in %[1]v")
                    .stack(st(&[r"at: (?:{{PC}} +)?{{FUNC}}", CALL, TRACE])),
                f(r"INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected", "possible deadlock in %[1]v")
                    .stack(st(&[r"which became SOFTIRQ-irq-unsafe at:", TRACE])),
                f(r"INFO: possible recursive locking detected", "possible deadlock in %[1]v")
                    .stack(st(&[r"at: (?:{{PC}} +)?{{FUNC}}", r"at: (?:{{PC}} +)?{{FUNC}}", TRACE]).skip(&["lock_sock"])),
                f(r"INFO: inconsistent lock state", "inconsistent lock state in %[2]v")
                    .report(r"INFO: inconsistent lock state(?:.*\n)+?.*takes(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}")
                    .stack(st(&[CALL, TRACE])),
                f(r"INFO: rcu_(?:preempt|sched|bh) (?:self-)?detected(?: expedited)? stall", "INFO: rcu detected stall in %[1]v")
                    .alt(&["stall in %[1]v"])
                    .stack(st(&[r"apic_timer_interrupt", RIP, TRACE]).parts2(&[r"(?:apic_timer_interrupt|Exception stack|el1h_64_irq)", TRACE])
                        // Folklore: since 5.x a self-detected stall prints the stalled task's own
                        // registers and trace first (no interrupt frame in it), and a remote stall
                        // is followed by `NMI backtrace for cpu N` with the stalled CPU's RIP and
                        // trace. Pinned by lib::tests::rcu_stall_modern.
                        .parts3(&[RIP_FIRST, CALL, TRACE]).skip(&["apic_timer_interrupt", "rcu"]).ex(Stall)),
                f(r"INFO: rcu_(?:preempt|sched|bh) (?:self-)?detected(?: expedited)? stall", "INFO: rcu detected stall").nostack(),
                f(r"INFO: trying to register non-static key", "INFO: trying to register non-static key in %[1]v")
                    .stack(st(&[CALL, TRACE]).skip(&["stack", "lock", "IRQ"])),
                f(r"INFO: suspicious RCU usage", "INFO: suspicious RCU usage in %[2]v")
                    .report(r"INFO: suspicious RCU usage.*\n.*\n-+\n.*?{{SRC}}")
                    .stack(st(&[CALL, TRACE]).skip(&["rcu", "kmem", "slab"])),
                f(r"INFO: task .* blocked for more than [0-9]+ seconds", "INFO: task hung in %[1]v")
                    .alt(&["hang in %[1]v"])
                    .stack(st(&[CALL, TRACE]).ex(Hang)),
                f(r"INFO: task .*:[0-9]+ can't die for more than .* seconds", "INFO: task can't die in %[1]v")
                    .alt(&["hang in %[1]v"])
                    .stack(st(&[CALL, TRACE]).skip(&["schedule"])),
                f(r"INFO: task .* can't die for more than .* seconds", "INFO: task can't die in %[1]v")
                    .alt(&["hang in %[1]v"])
                    .stack(st(&[CALL, TRACE]).skip(&["schedule"])),
                f(r"INFO: task .* blocked for more than", "INFO: task hung")
                    .nostack(),
            ],
            vec![
                r"INFO: lockdep is turned off",
                r"INFO: Stall ended before state dump start",
                r"INFO: NMI handler",
                r"CAM_INFO:",
                // Kernel INFO headers always have a space after the colon.
                r"INFO:[^ ]",
                r"INFO: recovery required on readonly",
                // Filesystem and driver messages that merely contain the word
                // (`EXT4-fs (sda1): INFO: ...`, `XFS (loop4): WARNING: ...`).
                r"[A-Za-z0-9_-]+ \([^)]*\): INFO:",
                r"_INFO::",
                r"INFO: sys_.* is not present in /proc/kallsyms",
                r"INFO: no syscalls can create resource",
            ],
        ),
        (
            "Unable to handle kernel",
            vec![
                f(r"Unable to handle kernel (paging request|NULL pointer dereference|access to user memory|execute from non-executable memory|write to read-only memory)", "BUG: unable to handle kernel %[1]v in %[2]v")
                    .alt(&["bad-access in %[2]v"])
                    .stack(st(&[RIP, CALL, TRACE])),
            ],
            vec![],
        ),
        (
            "general protection fault",
            vec![
                f(r"general protection fault.*:", "general protection fault in %[1]v")
                    .alt(&["bad-access in %[1]v"])
                    .stack(FAULT_STACK),
            ],
            vec![r"general protection fault .* error:[\d]+ in "],
        ),
        (
            "stack segment: ",
            vec![
                f(r"stack segment: ", "stack segment fault in %[1]v")
                    .stack(FAULT_STACK),
            ],
            vec![],
        ),
        (
            "Kernel panic",
            vec![
                f(r"Kernel panic - not syncing: Attempted to kill init!", "kernel panic: Attempted to kill init!"),
                f(r"Kernel panic - not syncing: Couldn't open N_TTY ldisc for ([^ ]+ --- )?([^ ].*)", "kernel panic: Couldn't open N_TTY ldisc"),
                f(r"Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: {{FUNC}}", "kernel panic: stack is corrupted in %[1]v"),
                f(r"Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: ([a-zA-Z0-9_]+)", "kernel panic: stack is corrupted in %[1]v"),
                f(r"Kernel panic - not syncing: corrupted stack end detected inside scheduler", "kernel panic: corrupted stack end in %[1]v")
                    .alt(&["stack-overflow in %[1]v"])
                    .stack(st(&[CALL, TRACE]).skip(&["schedule", "retint_kernel"]).ex(Stall)),
                f(r"Kernel panic - not syncing: kernel stack overflow", "kernel stack overflow in %[1]v")
                    .alt(&["stack-overflow in %[1]v"])
                    .stack(st(&[CALL, TRACE]).skip(&["bad_stack"])),
                f(r"Kernel panic - not syncing: Out of memory and no killable processes", "kernel panic: Out of memory and no killable processes").nostack(),
                f(r"Kernel panic - not syncing: Fatal exception", "kernel panic: Fatal exception").corrupted(),
                f(r"Kernel panic - not syncing: panic_on_warn set", "kernel panic: panic_on_warn set"),
                f(r"Kernel panic - not syncing: (.*)", "kernel panic: %[1]v"),
            ],
            vec![
                // The sysrq-triggered panic is a test, not a bug.
                r"Kernel panic - not syncing: sysrq triggered crash",
            ],
        ),
        (
            "PANIC: double fault",
            vec![f(r"PANIC: double fault", "PANIC: double fault in %[1]v").stack(st(&[RIP]))],
            vec![],
        ),
        (
            "kernel BUG",
            vec![
                f(r"kernel BUG at mm/usercopy\.c", "BUG: bad usercopy in %[1]v")
                    .stack(st(&[CALL, TRACE]).skip(&["usercopy", "__check"])),
                f(r"kernel BUG at lib/list_debug\.c", "BUG: corrupted list in %[1]v")
                    .alt(&["bad-access in %[1]v"])
                    .stack(st(&[CALL, TRACE])),
                f(r"kernel BUG at (.*)", "kernel BUG in %[2]v")
                    .stack(st(&[RIP, CALL, TRACE]).parts2(&[CALL, TRACE]).skip(&["^(?:__)?BUG", "^bug$", "panic"])),
            ],
            vec![],
        ),
        (
            "Kernel BUG",
            vec![f(r"Kernel BUG (.*)", "kernel BUG %[1]v")],
            vec![],
        ),
        (
            "BUG kmalloc-",
            vec![f(r"BUG kmalloc-.*: Object already free", "KASAN: invalid-free").corrupted()],
            vec![],
        ),
        (
            "divide error:",
            vec![f(r"divide error: ", "divide error in %[1]v").stack(FAULT_STACK)],
            vec![],
        ),
        (
            // 5.x+ x86 prints `divide_error: 0000 [#1]`.
            "divide_error:",
            vec![f(r"divide_error: ", "divide error in %[1]v").stack(FAULT_STACK)],
            vec![],
        ),
        (
            "invalid opcode:",
            vec![f(r"invalid opcode: ", "invalid opcode in %[1]v").stack(FAULT_STACK)],
            vec![],
        ),
        (
            "UBSAN:",
            vec![
                f(r"UBSAN: array-index-out-of-bounds in", "UBSAN: array-index-out-of-bounds in %[1]v")
                    .alt(&["bad-access in %[1]v"])
                    .stack(st(&[CALL, TRACE]).skip(&["ubsan", "overflow"])),
                f(r"UBSAN: Undefined behaviour in", "UBSAN: undefined-behaviour in %[1]v")
                    .stack(st(&[CALL, TRACE]).skip(&["ubsan", "overflow"])),
                f(r"UBSAN: ([a-z\-]+) in", "UBSAN: %[1]v in %[2]v")
                    .stack(st(&[CALL, TRACE]).skip(&["ubsan", "overflow"])),
            ],
            vec![],
        ),
        (
            "Booting the kernel.",
            vec![f(r"Booting the kernel\.", "unexpected kernel reboot").nostack()],
            vec![r"(?m)^.+Booting the kernel"],
        ),
        (
            "unregister_netdevice: waiting for",
            vec![f(r"unregister_netdevice: waiting for (?:.*) to become free", "unregister_netdevice: waiting for DEV to become free").nostack()],
            vec![],
        ),
        (
            "trusty: panic",
            vec![f(r"trusty: panic (?:.*?):(?: DEBUG)? (.*)", "trusty: panic: %[1]v").nostack()],
            vec![],
        ),
        (
            "trusty: ASSERT",
            vec![f(r"trusty: ASSERT FAILED", "trusty: ASSERT FAILED:").corrupted()],
            vec![],
        ),
        (
            "Unhandled fault:",
            vec![f(r"Unhandled fault:", "Unhandled fault in %[1]v")
                .alt(&["bad-access in %[1]v"])
                .stack(st(&[RIP, CALL, TRACE]).parts2(&[CALL, TRACE]))],
            vec![],
        ),
        (
            "Alignment trap:",
            vec![f(r"Alignment trap:", "Alignment trap in %[1]v").stack(st(&[RIP, CALL, TRACE]))],
            vec![],
        ),
        (
            "Internal error:",
            vec![f(r"Internal error:", "Internal error in %[1]v").stack(st(&[RIP, CALL, TRACE]))],
            vec![],
        ),
        (
            // Not in syzkaller's table (its VMs do not run the NMI watchdog); titled like a soft
            // lockup. `NMI watchdog: Watchdog detected hard LOCKUP on cpu 3` (kernel/watchdog_hld.c).
            "Watchdog detected hard LOCKUP",
            vec![f(r"Watchdog detected hard LOCKUP", "BUG: hard lockup in %[1]v")
                .alt(&["stall in %[1]v"])
                .stack(st(&[RIP, CALL, TRACE]).parts2(&[CALL, TRACE]).ex(Stall))],
            vec![],
        ),
        (
            "int3:",
            vec![f(r"int3: ", "int3 in %[1]v").stack(FAULT_STACK)],
            vec![],
        ),
        (
            "VFS: Busy inodes after unmount",
            vec![f(r"VFS: Busy inodes after unmount", "VFS: Busy inodes after unmount (use-after-free)").nostack()],
            vec![],
        ),
        (
            "VFS: Close: file count is",
            vec![f(r"VFS: Close: file count is (?:zero|0)", "VFS: Close: file count is zero (use-after-free)").nostack()],
            vec![],
        ),
        (
            "SYZFAIL:",
            vec![f(r"SYZFAIL:(.*)", "SYZFAIL:%[1]v").nostack()],
            vec![],
        ),
        (
            "SYZFATAL:",
            vec![f(r"SYZFATAL:(.*)", "SYZFATAL:%[1]v").alt(&["SYZFATAL"]).nostack()],
            vec![],
        ),
        (
            "panic: ",
            vec![f(r"panic: .*\n(?:.*\n)*?goroutine [0-9]+", "go runtime error").nostack()],
            vec![r"^.+panic: "],
        ),
        (
            "panicked at",
            vec![f(r"panicked at .*:\n(.*) in {{FUNC}}", "%[1]v in %[2]v").nostack()],
            vec![],
        ),
    ]
}

/// The header literals, in table order, without compiling any regexp.
pub(crate) fn headers() -> Vec<&'static str> {
    table_defs().into_iter().map(|(h, _, _)| h).collect()
}

pub(crate) fn table() -> &'static [Oops] {
    static T: OnceLock<Vec<Oops>> = OnceLock::new();
    T.get_or_init(|| {
        table_defs()
            .into_iter()
            .map(|(header, formats, supp)| Oops {
                header,
                formats: formats.into_iter().map(F::build).collect(),
                suppressions: supp.iter().map(|s| compile(s)).collect(),
            })
            .collect()
    })
}

/// The oops header that `line` carries, if any (first in table order whose suppressions do not
/// match), as an index into [`table`].
pub(crate) fn match_oops(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    for (i, o) in table().iter().enumerate() {
        if memchr::memmem::find(b, o.header.as_bytes()).is_none() {
            continue;
        }
        if o.suppressions.iter().any(|s| s.is_match(b)) {
            continue;
        }
        return Some(i);
    }
    None
}

/// Result of title extraction.
#[derive(Debug, Default, Clone)]
pub(crate) struct Desc {
    pub title: String,
    pub alt: Vec<String>,
    pub corrupted: Option<String>,
    /// The raw guilty frame (before prefix stripping).
    pub frame: Option<String>,
    /// Index of the matched format (for `no_stack_trace`), `None` for the header-line fallback.
    pub format: Option<usize>,
}

fn go_fmt(fmt: &str, args: &[String]) -> String {
    let mut out = String::with_capacity(fmt.len() + 32);
    let mut rest = fmt;
    while let Some(p) = rest.find("%[") {
        out.push_str(&rest[..p]);
        let after = &rest[p + 2..];
        if let Some(close) = after.find("]v") {
            if let Ok(n) = after[..close].parse::<usize>() {
                if let Some(a) = n.checked_sub(1).and_then(|i| args.get(i)) {
                    out.push_str(a);
                }
                rest = &after[close + 2..];
                continue;
            }
        }
        out.push_str("%[");
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Syscall entry wrappers differ between arches and versions; the title uses the stripped name
/// and the alternative titles carry the others (syzkaller's `stripFramePrefixes`).
const STRIP_PREFIXES: &[&str] = &[
    "SYSC_",
    "SyS_",
    "sys_",
    "__x64_",
    "__ia32_",
    "__arm64_",
    "__riscv_",
    "__s390x_",
    "__s390_",
    "____sys_",
    "___sys_",
    "__sys_",
    "__se_sys_",
    "__do_sys_",
    "compat_SYSC_",
    "compat_SyS_",
    "__se_compat_sys_",
    "__do_compat_sys_",
    "ksys_",
];

/// (title frame, other variants).
fn frame_variants(frame: &str) -> (String, Vec<String>) {
    let mut best: Option<&str> = None;
    let mut variants = vec![frame.to_string()];
    for p in STRIP_PREFIXES {
        if let Some(rest) = frame.strip_prefix(p) {
            if rest.is_empty() {
                continue;
            }
            variants.push(rest.to_string());
            if best.is_none_or(|b| rest.len() < b.len()) {
                best = Some(rest);
            }
        }
    }
    let title = best.unwrap_or(frame).to_string();
    variants.retain(|v| *v != title);
    (title, variants)
}

fn stall_anchors() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        compile(
            &[
                "process_one_work",
                "do_syscall_",
                "do_fast_syscall_",
                "sysenter_dispatch",
                "tracesys_phase2",
                "netif_receive_skb",
                "do_softirq",
                "call_timer_fn",
                "_run_timers",
                "run_timer_softirq",
                "hrtimer_run",
                "run_ksoftirqd",
                "smpboot_thread_fn",
                "^kthread$",
                "start_secondary",
                "cpu_startup_entry",
                "ret_from_fork",
                "ret_fast_syscall",
                "el0_svc",
                "invoke_syscall",
                "vfs_write",
                "vfs_read",
                "vfs_iter_read",
                "vfs_iter_write",
                "do_iter_read",
                "do_iter_write",
                "call_read_iter",
                "call_write_iter",
                "new_sync_read",
                "new_sync_write",
                "vfs_ioctl",
                "ksys_ioctl",
                "compat_ioctl",
                "compat_sys_ioctl",
                "blkdev_driver_ioctl",
                "blkdev_ioctl",
                "do_iter_readv_writev",
                "^call_mmap",
                "mmap_region",
                "do_mmap",
                "do_dentry_open",
                "vfs_open",
                "^sock_sendmsg",
                "^sock_recvmsg",
                "^sock_release",
                "^__sock_release",
                "^setsockopt$",
                "kernel_setsockopt",
                "sock_common_setsockopt",
                "^listen$",
                "kernel_listen",
                "sk_common_release",
                "^sock_mmap",
                "^accept$",
                "kernel_accept",
                "^sock_do_ioctl",
                "^sock_ioctl",
                "^compat_sock_ioctl",
                "^nfnetlink_rcv_msg",
                "^rtnetlink_rcv_msg",
                "^netlink_dump",
                "^(sys_)?(socketpair|connect|ioctl)",
                "__do_fault",
                "do_page_fault",
                "^page_fault$",
                "__fput",
                "task_work_run",
                "exit_to_usermode",
                "smp_call_function",
                "tasklet_action",
                "tasklet_hi_action",
            ]
            .join("|"),
        )
    })
}

fn extract_first(frames: &[String]) -> (Vec<String>, Option<&'static str>) {
    match frames.first() {
        Some(f) => (vec![f.clone()], None),
        None => (vec![], None),
    }
}

fn extract_stall(frames: &[String]) -> (Vec<String>, Option<&'static str>) {
    let anchors = stall_anchors();
    let mut prev: Option<&String> = frames.first();
    for frame in frames {
        let stripped = frame_variants(frame).0;
        if anchors.is_match(frame.as_bytes()) || anchors.is_match(stripped.as_bytes()) {
            if frame.contains("smp_call_function") {
                // All the smp_call_function* flavours are one bucket.
                let mut v = vec!["smp_call_function".to_string()];
                if frame != "smp_call_function" {
                    v.push(frame.clone());
                }
                return (v, None);
            }
            return (prev.into_iter().cloned().collect(), None);
        }
        prev = Some(frame);
    }
    (vec![], Some("did not find any anchor frame"))
}

fn extract_hang(frames: &[String]) -> (Vec<String>, Option<&'static str>) {
    const ANCHORS: &[(&str, &str)] = &[
        ("rtnl_lock", ""),
        ("synchronize_rcu", "synchronize_rcu"),
        ("synchronize_srcu", "synchronize_rcu"),
        ("synchronize_net", "synchronize_rcu"),
        ("synchronize_sched", "synchronize_rcu"),
    ];
    for frame in frames {
        for (anchor, repl) in ANCHORS {
            if frame.contains(anchor) {
                if !repl.is_empty() && frame != repl {
                    return (vec![repl.to_string(), frame.clone()], None);
                }
                return (vec![frame.clone()], None);
            }
        }
    }
    const SKIP: &[&str] = &[
        "sched",
        "_lock",
        "_slowlock",
        "down",
        "rwsem",
        "completion",
        "kthread",
        "wait",
        "synchronize",
        "context_switch",
        "__switch_to",
        "cancel_delayed_work",
        "rcu_barrier",
    ];
    for frame in frames {
        if !SKIP.iter().any(|s| frame.contains(s)) {
            return (vec![frame.clone()], None);
        }
    }
    (vec![], Some("all frames are skipped"))
}

/// Itanium C++ names (`_Z8fakeNameiii`) as the bare function name, like syzkaller's demangle.
fn demangle(f: &[u8]) -> &[u8] {
    let Some(rest) = f.strip_prefix(b"_Z") else {
        return f;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let Ok(n) = std::str::from_utf8(&rest[..digits])
        .unwrap_or("")
        .parse::<usize>()
    else {
        return f;
    };
    rest.get(digits..digits + n).unwrap_or(f)
}

fn global_skip() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| compile(&SKIP.join("|")))
}

fn append_frames(
    frames: &mut Vec<String>,
    caps: &regex::bytes::Captures<'_>,
    skip: &Option<Regex>,
) {
    for g in caps.iter().skip(1).flatten() {
        let fr = demangle(g.as_bytes());
        if fr.is_empty()
            || global_skip().is_match(fr)
            || skip.as_ref().is_some_and(|s| s.is_match(fr))
        {
            continue;
        }
        frames.push(String::from_utf8_lossy(fr).into_owned());
    }
}

/// A fault-injection frame (`should_fail`, `should_failslab`) in the middle of a report: the
/// one expression of [`corrupted_line_res`] needs the literal, so a line without it is skipped
/// without running the expression (this runs on every line of every report).
fn corrupted_line(line: &[u8]) -> bool {
    static LIT: OnceLock<memchr::memmem::Finder<'static>> = OnceLock::new();
    LIT.get_or_init(|| memchr::memmem::Finder::new("should_fail"))
        .find(line)
        .is_some()
        && corrupted_line_res().iter().any(|r| r.is_match(line))
}

/// Port of syzkaller's `extractStackFrameImpl`.
fn extract_stack_impl(
    text: &[u8],
    parts: &[Part],
    stack: &StackFmt,
) -> (Vec<String>, Option<&'static str>) {
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    let mut li = 0;
    let mut frames: Vec<String> = Vec::new();
    let mut pi = 0;
    'parts: while pi < parts.len() {
        match &parts[pi] {
            Part::Trace => {
                while li < lines.len() {
                    let ln = lines[li];
                    li += 1;
                    if corrupted_line(ln) {
                        return (vec![], Some("corrupted line in report"));
                    }
                    if stack_start_any().is_match(ln) {
                        if frames.is_empty() {
                            // Nothing usable yet (all skipped): the next trace may have it.
                            continue;
                        }
                        // The trace ends here; the rest of the report is still checked for
                        // interleaved fault-injection stacks.
                        if lines[li..].iter().any(|l| corrupted_line(l)) {
                            return (vec![], Some("corrupted line in report"));
                        }
                        pi += 1;
                        continue 'parts;
                    }
                    if let Some(Part::Re(next)) = parts.get(pi + 1) {
                        if let Some(c) = next.captures(ln) {
                            append_frames(&mut frames, &c, &stack.skip);
                            pi += 2;
                            continue 'parts;
                        }
                    }
                    for re in frame_res() {
                        if let Some(c) = re.captures(ln) {
                            append_frames(&mut frames, &c, &stack.skip);
                            break;
                        }
                    }
                }
                pi += 1;
            }
            Part::RipFirst(re) => {
                while li < lines.len() {
                    let ln = lines[li];
                    li += 1;
                    if stack_start_any().is_match(ln) {
                        return (vec![], None);
                    }
                    if let Some(c) = re.captures(ln) {
                        append_frames(&mut frames, &c, &stack.skip);
                        break;
                    }
                }
                pi += 1;
            }
            Part::Re(re) => {
                while li < lines.len() {
                    let ln = lines[li];
                    li += 1;
                    if corrupted_line(ln) {
                        return (vec![], Some("corrupted line in report"));
                    }
                    if let Some(c) = re.captures(ln) {
                        append_frames(&mut frames, &c, &stack.skip);
                        break;
                    }
                }
                pi += 1;
            }
        }
    }
    match stack.extractor {
        Extractor::First => extract_first(&frames),
        Extractor::Stall => extract_stall(&frames),
        Extractor::Hang => extract_hang(&frames),
    }
}

fn extract_stack(text: &[u8], stack: &StackFmt) -> (Vec<String>, Option<&'static str>) {
    let (frames, c) = extract_stack_impl(text, &stack.parts, stack);
    if !frames.is_empty() || stack.parts2.is_empty() {
        return (frames, c);
    }
    let (frames, c) = extract_stack_impl(text, &stack.parts2, stack);
    if !frames.is_empty() || stack.parts3.is_empty() {
        return (frames, c);
    }
    extract_stack_impl(text, &stack.parts3, stack)
}

/// Port of syzkaller's `extractDescription`: the first (earliest-matching) format wins.
pub(crate) fn describe(text: &str, oops_idx: usize) -> Desc {
    let oops = &table()[oops_idx];
    let out = text.as_bytes();
    let mut start = usize::MAX;
    let mut d = Desc::default();
    let mut matched_title = false;
    for (fi, f) in oops.formats.iter().enumerate() {
        let re = f.report.as_ref().unwrap_or(&f.title);
        let Some(m) = re.captures(out) else {
            continue;
        };
        let m0 = m.get(0).map_or(0, |g| g.start());
        if m0 > start || (m0 == start && !d.title.is_empty()) {
            continue;
        }
        if m0 < start {
            d = Desc::default();
            start = m0;
        }
        matched_title = true;
        let mut args: Vec<String> = m
            .iter()
            .skip(1)
            .map(|g| {
                g.map_or(String::new(), |g| {
                    String::from_utf8_lossy(g.as_bytes()).into_owned()
                })
            })
            .collect();
        // A raw address in the title (`Kernel stack is corrupted in: ffffffff8343632e`) is
        // named through the trace: the frame printed at the same address.
        for a in args.iter_mut() {
            if a.len() >= 8 && a.len() <= 16 && a.bytes().all(|b| b.is_ascii_hexdigit()) {
                if let Some(f) = function_at(out, a) {
                    *a = f;
                }
            }
        }
        let mut corrupted = None;
        let mut variants = Vec::new();
        if let Some(stack) = &f.stack {
            let (frames, c) = extract_stack(&out[m0..], stack);
            corrupted = c.map(str::to_string);
            let raw = frames.first().cloned();
            let frame = match &raw {
                Some(fr) => {
                    let (t, mut v) = frame_variants(fr);
                    for extra in frames.iter().skip(1) {
                        if !v.contains(extra) && *extra != t {
                            v.push(extra.clone());
                        }
                    }
                    variants = v;
                    t
                }
                None => {
                    if corrupted.is_none() {
                        corrupted = Some("extracted no stack frame".to_string());
                    }
                    "corrupted".to_string()
                }
            };
            d.frame = raw;
            args.push(frame);
        }
        d.title = go_fmt(f.fmt, &args);
        d.alt.clear();
        for a in &f.alt {
            d.alt.push(go_fmt(a, &args));
        }
        for v in &variants {
            let mut a2 = args.clone();
            if let Some(last) = a2.last_mut() {
                *last = v.clone();
            }
            d.alt.push(go_fmt(f.fmt, &a2));
            for a in &f.alt {
                d.alt.push(go_fmt(a, &a2));
            }
        }
        if corrupted.is_none() && f.corrupted {
            corrupted = Some("report format is marked as corrupted".to_string());
        }
        d.corrupted = corrupted;
        d.format = Some(fi);
    }
    if d.title.is_empty() {
        if matched_title {
            d.corrupted = Some("matched title but not report regexp".to_string());
        }
        if let Some(pos) = memchr::memmem::find(out, oops.header.as_bytes()) {
            let end = memchr::memchr(b'\n', &out[pos..]).map_or(out.len(), |e| pos + e);
            d.title = String::from_utf8_lossy(&out[pos..end]).into_owned();
        }
    }
    d
}

fn function_at(text: &[u8], addr: &str) -> Option<String> {
    let needle = format!("[<{addr}>]");
    let p = memchr::memmem::find(text, needle.as_bytes())?;
    let rest = &text[p + needle.len()..];
    let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
    let line = std::str::from_utf8(&rest[..end]).ok()?.trim_start();
    let line = line.strip_prefix("? ").unwrap_or(line);
    let name = line.split(['+', ' ', '.']).next()?;
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then(|| name.to_string())
}

/// Port of syzkaller's `isCorrupted` for Linux.
pub(crate) fn is_corrupted(
    raw_title: &str,
    report: &str,
    oops_idx: usize,
    fi: Option<usize>,
) -> Option<&'static str> {
    static TS: OnceLock<Regex> = OnceLock::new();
    let ts = TS.get_or_init(|| compile(r"\[ *[0-9]+\.[0-9]+\]"));
    if ts.is_match(raw_title.as_bytes()) {
        return Some("title matches corrupted regexp");
    }
    let fi = fi?;
    if table()[oops_idx].formats[fi].no_stack_trace {
        return None;
    }
    let r = report.as_bytes();
    let has = |s: &str| memchr::memmem::find(r, s.as_bytes()).is_some();
    // Computed only when the cheaper tests leave the question open.
    let any_frame = || r.split(|&b| b == b'\n').any(|l| frame_any().is_match(l));
    if !has("Call Trace")
        && !has("backtrace")
        && !has("Call trace")
        && !has("Backtrace")
        && !has("Allocated")
        && !has("Freed")
        && !any_frame()
    {
        return Some("no stack trace in report");
    }
    let mut has_trace = false;
    for key in stack_start_res() {
        let Some(m) = key.find(r) else { continue };
        let lines: Vec<&[u8]> = r[m.start()..].split(|&b| b == b'\n').collect();
        if lines.len() < 2 {
            return Some("call trace is missing");
        }
        let mut corrupted = true;
        'outer: for ln in lines.iter().skip(1).take(15) {
            if stack_start_any().is_match(ln) {
                break 'outer;
            }
            if memchr::memmem::find(ln, b"(stack is not available)").is_some()
                || frame_any().is_match(ln)
            {
                has_trace = true;
                corrupted = false;
                break;
            }
        }
        if corrupted {
            return Some("no frames in a stack trace");
        }
    }
    if !has_trace && !any_frame() {
        return Some("no stack trace in report");
    }
    None
}

/// syzkaller's `dynamicTitleReplacement` + `sanitizeTitle`.
pub(crate) fn normalize_title(t: &str) -> String {
    static R: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    let reps = R.get_or_init(|| {
        vec![
            (
                compile(r"syz-executor\.?[0-9]+((/|:)[0-9]+)?"),
                "syz-executor",
            ),
            (compile(r"([^a-zA-Z0-9])(?:0x)?[0-9a-f]{6,}"), "${1}ADDR"),
            (
                compile(r"([^a-zA-Z0-9])(?:[0-9]{1,3}\.){3}[0-9]{1,3}"),
                "${1}IP",
            ),
            (compile(r"(\.\w+)(:[0-9]+)+"), "${1}:LINE"),
            (
                compile(r"([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+"),
                "${1}",
            ),
            (compile(r"CPU#[0-9]+"), "CPU"),
            (compile(r"(\W)(\d+)(\W|$)"), "${1}NUM${3}"),
            (compile(r"(\d+){7,}"), "NUM"),
        ]
    });
    let mut s = t.as_bytes().to_vec();
    for (re, rep) in reps {
        // Repeat: matches may overlap ("0,1,2").
        for _ in 0..16 {
            let n = re.replace_all(&s, rep.as_bytes()).into_owned();
            if n == s {
                break;
            }
            s = n;
        }
    }
    // sanitizeTitle: drop control bytes, tabs to spaces, squeeze spaces, cap at 120.
    let mut out = Vec::with_capacity(120);
    let mut prev = b' ';
    for &c in &s {
        if out.len() >= 120 {
            break;
        }
        let c = if c == b'\t' { b' ' } else { c };
        if !(0x20..0x7f).contains(&c) {
            continue;
        }
        if c == b' ' && prev == b' ' {
            continue;
        }
        out.push(c);
        prev = c;
    }
    String::from_utf8_lossy(&out).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_compiles() {
        assert!(table().len() > 10);
    }

    #[test]
    fn normalisation() {
        assert_eq!(
            normalize_title("kernel panic: VFS: Unable to mount root fs on unknown-block(0,0)"),
            "kernel panic: VFS: Unable to mount root fs on unknown-block(NUM,NUM)"
        );
        assert_eq!(
            normalize_title("INFO: task syz-executor3:1234 x"),
            "INFO: task syz-executor x"
        );
        assert_eq!(
            normalize_title("a\tb  c at fs/x.c:12 ffffffff81234567"),
            "a b c at fs/x.c:LINE ADDR"
        );
    }

    #[test]
    fn syscall_prefixes() {
        assert_eq!(frame_variants("__x64_sys_rmdir").0, "sys_rmdir");
        assert_eq!(frame_variants("__se_sys_mremap").0, "mremap");
        assert_eq!(frame_variants("sys_openat2").0, "openat2");
        assert_eq!(frame_variants("compat_SyS_mount").0, "mount");
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn frame_regex_matches() {
        let l = b" [<ffffffff810ec8b2>] drop_spte+0x162/0x260";
        assert!(frame_res()[0].is_match(l));
        assert!(frame_res()[0].is_match(b" ipcomp_init_state+0x1/0x2"));
        let s = st(&[RIP, CALL, TRACE]).build();
        assert!(
            !global_skip().is_match(b"drop_spte"),
            "skip matches drop_spte"
        );
        let text = "kernel BUG at x.c:1!\nRIP: 0010:[<ffffffff810d9c93>]  [<ffffffff810d9c93>] pte_list_remove+0x3b3/0x3d0\nCall Trace:\n [<ffffffff810ec8b2>] drop_spte+0x162/0x260\n";
        let (f, c) = extract_stack(text.as_bytes(), &s);
        assert_eq!(f, vec!["pte_list_remove".to_string()], "{c:?}");
    }
}
