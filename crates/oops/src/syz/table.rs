//! The report table: which header opens a report, and for each header the title formats tried
//! in order, as data. This is syzkaller's `linuxOopses` + `commonOopses` + the Go runtime group
//! (`pkg/report/linux.go`, `report.go`, reference copy at commit 1e72964b0111 in
//! `../shared/reference/syzkaller-pkg-report/`), in table order, so that titles stay the search
//! keys syzbot, LKML and CVE records use.
//!
//! Regexps are written as syzkaller's `compile()` takes them: `{{PC}}`, `{{FUNC}}`, `{{SRC}}`,
//! `{{ADDR}}`, `{{TASK}}` are expanded by [`super::expand`]. A format's `fmt` and `alt` use Go's
//! `%[N]v`: the title's (or report's) capture groups first, then the frames the stack parts
//! extracted. Pinned, format by format, by `tests/syzkaller_corpus.rs`.

/// One step of a stack format: a regexp (its capture groups are frames), or "parse the stack
/// trace from here" (syzkaller's `parseStackTrace` sentinel).
#[derive(Clone, Copy)]
pub(crate) enum Part {
    Re(&'static str),
    Trace,
}

/// Custom choice of the guilty frame among those extracted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extractor {
    /// The first frame that is not skipped.
    First,
    /// `linuxStallFrameExtractor`: the frame before a dispatch anchor (rcu stalls, lockups).
    Stall,
    /// `linuxHangTaskFrameExtractor`: rtnl_lock / synchronize_rcu buckets, then skip waits.
    Hang,
}

#[derive(Clone, Copy)]
pub(crate) struct Stack {
    pub parts: &'static [Part],
    /// Tried when `parts` yields no frame.
    pub parts2: &'static [Part],
    /// kmortem's own last try, when syzkaller's parts (and parts2) yield no frame: the title
    /// then names the frame found here, and syzkaller's `... in corrupted` title is kept as
    /// the first alternative title (see `describe`).
    pub kmortem_parts: &'static [Part],
    /// Skipped frames of this format, on top of the global list (`stack::SKIP`).
    pub skip: &'static [&'static str],
    pub extractor: Extractor,
}

#[derive(Clone, Copy)]
pub(crate) struct Format {
    pub title: &'static str,
    /// When set, the title's captures come from this regexp instead; a title match without a
    /// report match makes the report corrupted.
    pub report: Option<&'static str>,
    pub fmt: &'static str,
    pub alt: &'static [&'static str],
    pub stack: Option<Stack>,
    /// The corrupted check does not ask for a stack trace.
    pub no_stack_trace: bool,
    pub corrupted: bool,
}

pub(crate) struct Oops {
    pub header: &'static str,
    pub formats: &'static [Format],
    pub suppressions: &'static [&'static str],
}

const fn f(title: &'static str, fmt: &'static str) -> Format {
    Format {
        title,
        report: None,
        fmt,
        alt: &[],
        stack: None,
        no_stack_trace: false,
        corrupted: false,
    }
}

impl Format {
    const fn report(mut self, r: &'static str) -> Self {
        self.report = Some(r);
        self
    }
    const fn alt(mut self, a: &'static [&'static str]) -> Self {
        self.alt = a;
        self
    }
    const fn stack(mut self, s: Stack) -> Self {
        self.stack = Some(s);
        self
    }
    const fn no_stack(mut self) -> Self {
        self.no_stack_trace = true;
        self
    }
    const fn corrupted(mut self) -> Self {
        self.corrupted = true;
        self
    }
}

const fn st(parts: &'static [Part]) -> Stack {
    Stack {
        parts,
        parts2: &[],
        kmortem_parts: &[],
        skip: &[],
        extractor: Extractor::First,
    }
}

impl Stack {
    const fn skip(mut self, s: &'static [&'static str]) -> Self {
        self.skip = s;
        self
    }
    const fn parts2(mut self, p: &'static [Part]) -> Self {
        self.parts2 = p;
        self
    }
    const fn kmortem_parts(mut self, p: &'static [Part]) -> Self {
        self.kmortem_parts = p;
        self
    }
    const fn ex(mut self, e: Extractor) -> Self {
        self.extractor = e;
        self
    }
}

/// syzkaller's `linuxRipFrame`: the faulting instruction line of x86 (`RIP:`), powerpc (`NIP`),
/// arm64 (`pc :`) and arm (`PC is at`).
macro_rules! rip_frame {
    () => {
        r"(?:IP|NIP|pc |PC is at):? (?:(?:[0-9]+:)?(?:{{PC}} +){0,2}{{FUNC}}|(?:[0-9]+:)?0x[0-9a-f]+|(?:[0-9]+:)?{{PC}} +\[< *\(null\)>\] +\(null\)|[0-9]+: +\(null\))"
    };
}
const RIP: Part = Part::Re(rip_frame!());
/// `linuxCallTrace`.
const CALL: Part = Part::Re(r"(?:Call (?:T|t)race:)|(?:Backtrace:)");
const TRACE: Part = Part::Trace;
const FAULT: &[Part] = &[RIP, CALL, TRACE];
const CALL_TRACE: &[Part] = &[CALL, TRACE];

/// syzkaller's `warningStackFmt`: newer kernels trap on WARN and the stack starts at the RIP
/// line (x86) or `--- interrupt:` (powerpc64); older ones print only the call trace.
const fn warning(skip: &'static [&'static str]) -> Stack {
    Stack {
        parts: &[
            Part::Re(concat!(
                "(?:",
                rip_frame!(),
                "|--- interrupt: [0-9]+ at {{FUNC}})"
            )),
            TRACE,
        ],
        parts2: CALL_TRACE,
        kmortem_parts: &[],
        skip,
        extractor: Extractor::First,
    }
}

use Extractor::{Hang, Stall};

const BUG: &[Format] = &[
    f("BUG: KASAN:", "KASAN: %[1]v %[3]v in %[4]v")
        .report(r"BUG: KASAN: ([a-z\-]+) in {{FUNC}}(?:.*\n)+?.*(Read|Write) (?:of size|at addr) (?:[0-9a-f]+)")
        .alt(&["bad-access in %[4]v"])
        .stack(
            st(&[Part::Re(r"BUG: KASAN: (?:[a-z\-]+) in {{FUNC}}"), CALL, TRACE])
                // KASAN_HW_TAGS reports carry the arm64 fault path.
                .skip(&["kernel_fault", "tag_check", "mem_abort", "^el1_", "^el1h_"]),
        ),
    f("BUG: KASAN:", "KASAN: invalid-free in %[2]v")
        .report(r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in {{FUNC}}")
        .alt(&["invalid-free in %[2]v"])
        .stack(
            st(&[
                Part::Re(r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in {{FUNC}}"),
                CALL,
                TRACE,
            ])
            .skip(&["slab_", "kfree", "vunmap", "vfree"]),
        ),
    f(r"BUG: KASAN: ([a-z\-]+) on address(?:.*\n)+?.*(Read|Write) of size ([0-9]+)", "KASAN: %[1]v %[2]v"),
    f(r"BUG: KASAN: (.*)", "KASAN: %[1]v").corrupted(),
    f("BUG: KMSAN: kernel-usb-infoleak", "KMSAN: kernel-usb-infoleak in %[2]v")
        .report(r"BUG: KMSAN: kernel-usb-infoleak in {{FUNC}}")
        .alt(&["KMSAN origin in %[3]v"])
        .stack(
            st(&[TRACE, Part::Re(r"(Local variable .* created at:|Uninit was created at:)"), TRACE])
                .skip(&["alloc_skb", "usb_submit_urb", "usb_start_wait_urb", "usb_bulk_msg", "usb_interrupt_msg", "usb_control_msg"]),
        )
        .no_stack(),
    f("BUG: KMSAN:", "KMSAN: %[1]v in %[3]v")
        .report(r"BUG: KMSAN: ([a-z\-]+) in {{FUNC}}")
        .alt(&["bad-access in %[3]v"])
        .stack(
            st(&[TRACE, Part::Re(r"(Local variable .* created at:|Uninit was created at:)"), TRACE])
                // Encryption routines hit the bug but make bad titles.
                .skip(&["alloc_skb", "netlink_ack", "netlink_rcv_skb", "_encrypt$", "^(?:crypto|cipher|drbg|rng)_"]),
        )
        .no_stack(),
    f("BUG: KCSAN: data-race", "KCSAN: %[1]v").report(r"BUG: KCSAN: (.*)").no_stack(),
    f("BUG: KCSAN:", "KCSAN: %[1]v").report(r"BUG: KCSAN: (.*)").no_stack(),
    f(r"BUG: KFENCE: (use-after-free|out-of-bounds) (read|write) in {{FUNC}}", "KFENCE: %[1]v %[2]v in %[4]v")
        .alt(&["bad-access in %[4]v"])
        .stack(st(&[Part::Re(r"BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}"), TRACE])),
    f(r"BUG: KFENCE: invalid free in {{FUNC}}", "KFENCE: invalid free in %[2]v")
        .alt(&["invalid-free in %[2]v"])
        .no_stack()
        .stack(st(&[Part::Re(r"BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}"), TRACE])),
    f(r"BUG: KFENCE: invalid (read|write) in {{FUNC}}", "KFENCE: invalid %[1]v in %[3]v")
        .alt(&["bad-access in %[3]v"])
        .stack(st(&[Part::Re(r"BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}"), TRACE])),
    f(r"BUG: KFENCE: memory corruption in {{FUNC}}", "KFENCE: memory corruption in %[2]v")
        .no_stack()
        .stack(st(&[Part::Re(r"BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}"), TRACE])),
    f(
        r"BUG: (?:unable to handle kernel paging request|unable to handle page fault for address|Unable to handle kernel data access)",
        "BUG: unable to handle kernel paging request in %[1]v",
    )
    .alt(&["bad-access in %[1]v"])
    .stack(st(FAULT)),
    f(
        r"BUG: (?:unable to handle kernel NULL pointer dereference|kernel NULL pointer dereference|Kernel NULL pointer dereference)",
        "BUG: unable to handle kernel NULL pointer dereference in %[1]v",
    )
    .alt(&["bad-access in %[1]v"])
    .stack(st(FAULT)),
    // The second half of the header is a separate printk and may be lost or garbled.
    f(r"BUG: (?:unable to handle kernel|Unable to handle kernel)", "BUG: unable to handle kernel").corrupted(),
    f(
        r"BUG: (spinlock|rwlock) (lockup suspected|already unlocked|recursion|cpu recursion|bad magic|wrong owner|wrong CPU|trylock failure on UP)",
        "BUG: %[1]v %[2]v in %[3]v",
    )
    .stack(st(CALL_TRACE).skip(&["spin_", "_lock", "_unlock"])),
    f("BUG: soft lockup", "BUG: soft lockup in %[1]v")
        .alt(&["stall in %[1]v"])
        .stack(st(FAULT).ex(Stall)),
    f(r"BUG: .*still has locks held!", "BUG: still has locks held in %[1]v")
        .report(r"BUG: .*still has locks held!(?:.*\n)+?.*{{PC}} +{{FUNC}}"),
    f("BUG: scheduling while atomic", "BUG: scheduling while atomic in %[1]v")
        .stack(st(CALL_TRACE).skip(&["schedule"])),
    f("BUG: lock held when returning to user space", "BUG: lock held when returning to user space in %[1]v")
        .report(r"BUG: lock held when returning to user space(?:.*\n)+?.*leaving the kernel with locks still held(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}")
        .no_stack(),
    f("BUG: bad unlock balance detected!", "BUG: bad unlock balance in %[1]v")
        .stack(st(&[Part::Re(r"{{PC}} +{{FUNC}}"), CALL, TRACE])),
    f("BUG: held lock freed!", "BUG: held lock freed in %[1]v")
        .report(r"BUG: held lock freed!(?:.*\n)+?.*{{PC}} +{{FUNC}}"),
    f("BUG: Bad rss-counter state", "BUG: Bad rss-counter state").no_stack(),
    f("BUG: non-zero nr_ptes on freeing mm", "BUG: non-zero nr_ptes on freeing mm").no_stack(),
    f("BUG: non-zero nr_pmds on freeing mm", "BUG: non-zero nr_pmds on freeing mm").no_stack(),
    // The file system type and block device (loop0/1/2) are left out of the title: duplicates.
    f("BUG: Dentry .* still in use", "BUG: Dentry still in use in %[1]v")
        .report(r"BUG: Dentry .* still in use \([0-9]+\) \[(unmount) of ([^\]]+)\]")
        .alt(&["BUG: Dentry still in use [%[1]v of %[2]v]"]),
    f("BUG: Bad page (state|cache)", "BUG: Bad page %[1]v in %[2]v").stack(
        st(&[Part::Re("page last allocated"), TRACE]).skip(&[
            "(free|put|get|update|release)_page",
            "free_unref",
            "^_*folio",
            "truncate_inode_pages",
            "page_frag_free",
            "alloc",
            "vmap",
            "page_owner",
        ]),
    ),
    f("BUG: Bad page map", "BUG: Bad page map"),
    f("BUG: workqueue lockup", "BUG: workqueue lockup").no_stack(),
    f("BUG: sleeping function called from invalid context at (.*)", "BUG: sleeping function called from invalid context in %[2]v")
        .stack(st(CALL_TRACE)),
    f(r"BUG: using ([a-z_]+)\(\) in preemptible", "BUG: using %[1]v() in preemptible code in %[2]v")
        .stack(st(CALL_TRACE).skip(&["dump_stack", "preemption", "preempt", "debug_", "processor_id", "this_cpu"])),
    f("BUG: workqueue leaked lock or atomic", "BUG: workqueue leaked lock or atomic in %[1]v")
        .report(r"BUG: workqueue leaked lock or atomic(?:.*\n)+?.*last function: ([a-zA-Z0-9_]+)\n")
        .no_stack(),
    f("BUG: memory leak", "memory leak in %[1]v").stack(
        st(&[Part::Re(r"backtrace(?: \(crc [[:xdigit:]]*\))?:"), TRACE]).skip(&[
            "kmemleak",
            "mmap",
            "kmem",
            "slab",
            "alloc",
            "create_object",
            "idr_get",
            "list_lru_init",
            "kasprintf",
            "kvasprintf",
            "pcpu_create",
            "strdup",
            "strndup",
            "memdup",
        ]),
    ),
    f("BUG: .*stack guard page was hit at", "BUG: stack guard page was hit in %[1]v")
        .alt(&["stack-overflow in %[1]v"])
        .stack(st(FAULT).ex(Stall)),
    // arm/arm64 print this one differently from amd64; the amd64 title keeps them one bug.
    f("BUG: Invalid wait context", "WARNING: locking bug in %[1]v")
        .stack(st(CALL_TRACE).skip(&["lock_sock", "release_sock"])),
    f(r"BUG:[[:space:]]*(?:\n|$)", "BUG: corrupted").corrupted(),
];

const WARNING: &[Format] = &[
    f(r"WARNING: .*lib/debugobjects\.c.* (?:debug_print|debug_check|at)", "WARNING: ODEBUG bug in %[1]v")
        // The users of ODEBUG are skipped too.
        .stack(warning(&[
            "debug_",
            "rcu",
            "hrtimer_",
            "timer_",
            "work_",
            "percpu_",
            "vunmap",
            "vfree",
            "__free_",
            "debug_check",
            "kobject_",
        ])),
    f(r"WARNING: .*mm/usercopy\.c.* (?:usercopy_warn|at)", "WARNING: bad usercopy in %[1]v")
        .stack(warning(&["usercopy", "__check"])),
    f(r"WARNING: .*lib/kobject\.c.* (?:kobject_|at)", "WARNING: kobject bug in %[1]v").stack(warning(&["kobject_"])),
    f(r"WARNING: .*fs/proc/generic\.c.* (?:proc_register|at)", "WARNING: proc registration bug in %[1]v")
        .stack(warning(&["proc_"])),
    f(r"WARNING: .*lib/refcount\.c.* (?:refcount_|at)", "WARNING: refcount bug in %[1]v")
        .stack(warning(&["refcount", "kobject_"])),
    f(r"WARNING: .*kernel/locking/lockdep\.c.*lock_", "WARNING: locking bug in %[1]v")
        .stack(warning(&["lock_sock", "release_sock"])),
    f(r"WARNING: .*still has locks held!", "WARNING: still has locks held in %[1]v")
        .report(r"WARNING: .*still has locks held!(?:.*\n)+?.*at: {{FUNC}}"),
    f("WARNING: Nested lock was not taken", "WARNING: nested lock was not taken in %[1]v").stack(warning(&[])),
    f("WARNING: lock held when returning to user space", "WARNING: lock held when returning to user space in %[1]v")
        .report(r"WARNING: lock held when returning to user space(?:.*\n)+?.*leaving the kernel with locks still held(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}")
        .no_stack(),
    f(r"WARNING: .*mm/.*\.c.* k?.?malloc", "WARNING: kmalloc bug in %[1]v")
        .stack(warning(&["kmalloc", "krealloc", "slab", "kmem"])),
    f(r"WARNING: .*mm/vmalloc.c.*__vmalloc_node", "WARNING: zero-size vmalloc in %[1]v").stack(warning(&[])),
    f(r"WARNING: .* usb_submit_urb", "WARNING in %[1]v/usb_submit_urb").stack(warning(&[
        "usb_submit_urb",
        "usb_start_wait_urb",
        "usb_bulk_msg",
        "usb_interrupt_msg",
        "usb_control_msg",
    ])),
    // Format of 6.19+ (lore: 20251110114633.202485143@infradead.org).
    f(r"WARNING: {{SRC}} at 0x\d+, CPU#\d+", "WARNING in %[2]v").stack(warning(&[])),
    f(r"WARNING: .* at {{SRC}} {{FUNC}}", "WARNING in %[3]v").stack(warning(&[])),
    f(r"WARNING: {{SRC}} at {{FUNC}}", "WARNING in %[3]v").stack(warning(&[])),
    f(r"WARNING: \[.*\] {{SRC}} at {{FUNC}}.*", "WARNING in %[3]v").stack(warning(&[])),
    f("WARNING: possible circular locking dependency detected", "possible deadlock in %[1]v")
        .report(r"WARNING: possible circular locking dependency detected(?:.*\n)+?.*is trying to acquire lock")
        .stack(
            st(&[Part::Re(r"at: (?:{{PC}} +)?{{FUNC}}"), Part::Re(r"at: (?:{{PC}} +)?{{FUNC}}"), TRACE])
                // Workqueue functions take the locks of work items: those deadlocks belong to
                // the work-item subsystem.
                .skip(&["process_one_work", "flush_workqueue", "drain_workqueue", "destroy_workqueue"]),
        ),
    f("WARNING: possible irq lock inversion dependency detected", "possible deadlock in %[1]v")
        .report(r"WARNING: possible irq lock inversion dependency detected(?:.*\n)+?.*just changed the state of lock(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}"),
    f(r"WARNING: .*-safe -> .*-unsafe lock order detected", "possible deadlock in %[1]v")
        .stack(st(&[Part::Re(r"which became (?:.*) at:"), TRACE])),
    f("WARNING: possible recursive locking detected", "possible deadlock in %[1]v")
        .report(r"WARNING: possible recursive locking detected(?:.*\n)+?.*is trying to acquire lock(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}"),
    f("WARNING: inconsistent lock state", "inconsistent lock state in %[2]v")
        .report(r"WARNING: inconsistent lock state(?:.*\n)+?.*takes(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}")
        .stack(st(CALL_TRACE)),
    f("WARNING: suspicious RCU usage", "WARNING: suspicious RCU usage in %[2]v")
        .report(r"WARNING: suspicious RCU usage(?:.*\n)+?.*?{{SRC}}")
        .stack(st(CALL_TRACE).skip(&["rcu", "kmem", "slab"])),
    f(r"WARNING: kernel stack regs at [0-9a-f]+ in [^ ]* has bad '([^']+)' value", "WARNING: kernel stack regs has bad '%[1]v' value")
        .no_stack(),
    f(r"WARNING: kernel stack frame pointer at [0-9a-f]+ in [^ ]* has bad value", "WARNING: kernel stack frame pointer has bad value")
        .no_stack(),
    f("WARNING: bad unlock balance detected!", "WARNING: bad unlock balance in %[1]v")
        .stack(st(&[Part::Re(r"{{PC}} +{{FUNC}}"), CALL, TRACE])),
    f("WARNING: held lock freed!", "WARNING: held lock freed in %[1]v")
        .report(r"WARNING: held lock freed!(?:.*\n)+?.*at:(?: {{PC}})? +{{FUNC}}"),
    f(r"WARNING: kernel stack regs .* has bad 'bp' value", "WARNING: kernel stack regs has bad value").no_stack(),
    f(r"WARNING: kernel stack frame pointer .* has bad value", "WARNING: kernel stack regs has bad value").no_stack(),
    f(r"WARNING:[[:space:]]*(?:\n|$)", "WARNING: corrupted").corrupted(),
];

const INFO: &[Format] = &[
    f("INFO: possible circular locking dependency detected", "possible deadlock in %[1]v")
        .report(r"INFO: possible circular locking dependency detected \](?:.*\n)+?.*is trying to acquire lock(?:.*\n)+?.*at: {{PC}} +{{FUNC}}"),
    f("INFO: possible irq lock inversion dependency detected", "possible deadlock in %[1]v")
        .report(r"INFO: possible irq lock inversion dependency detected \](?:.*\n)+?.*just changed the state of lock(?:.*\n)+?.*at: {{PC}} +{{FUNC}}"),
    f("INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected", "possible deadlock in %[1]v")
        .report(r"INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected \](?:.*\n)+?.*is trying to acquire(?:.*\n)+?.*at: {{PC}} +{{FUNC}}"),
    f("INFO: possible recursive locking detected", "possible deadlock in %[1]v")
        .report(r"INFO: possible recursive locking detected \](?:.*\n)+?.*is trying to acquire lock(?:.*\n)+?.*at: {{PC}} +{{FUNC}}"),
    f("INFO: inconsistent lock state", "inconsistent lock state in %[1]v")
        .report(r"INFO: inconsistent lock state \](?:.*\n)+?.*takes(?:.*\n)+?.*at: {{PC}} +{{FUNC}}"),
    f(r"INFO: rcu_(?:preempt|sched|bh|tasks) (?:self-)?detected(?: expedited)? stall", "INFO: rcu detected stall in %[1]v")
        .alt(&["stall in %[1]v"])
        .stack(
            st(&[Part::Re("apic_timer_interrupt"), RIP, TRACE])
                .parts2(&[Part::Re("(?:apic_timer_interrupt|Exception stack|el1h_64_irq)"), TRACE])
                // Folklore: since 5.19 ("sched/debug: Show the registers of 'current' in
                // dump_cpu_task()"), x86 prints the stalled CPU as `show_regs()` of the
                // interrupted context: a RIP line and the task's Call Trace, with no
                // `apic_timer_interrupt` frame (self-detected stalls and the NMI backtrace of
                // another CPU alike). With panic_on_rcu_stall the IRQ stack comes only after
                // `Kernel panic`, which the report leaves out, so syzkaller's parts find
                // nothing and it says `in corrupted`. We name the stalled task's frame as
                // the stall extractor would. Pinned by the lab's rcu_stall and
                // irqs_off_stall scenarios (crates/lab/tests/titles.rs) on 6.1 and 6.12.
                .kmortem_parts(FAULT)
                .skip(&["apic_timer_interrupt", "rcu"])
                .ex(Stall),
        ),
    f("INFO: trying to register non-static key", "INFO: trying to register non-static key in %[1]v")
        .stack(st(CALL_TRACE).skip(&["stack", "lock", "IRQ"])),
    f("INFO: suspicious RCU usage", "INFO: suspicious RCU usage in %[2]v")
        .report(r"INFO: suspicious RCU usage(?:.*\n)+?.*?{{SRC}}")
        .stack(st(CALL_TRACE).skip(&["rcu", "kmem", "slab"])),
    f(r"INFO: task {{TASK}} blocked (?:in I/O wait )?for more than [0-9]+ seconds", "INFO: task hung in %[1]v")
        .alt(&["hang in %[1]v"])
        .stack(st(CALL_TRACE).ex(Hang)),
    f(r"INFO: task {{TASK}} can't die for more than .* seconds", "INFO: task can't die in %[1]v")
        .alt(&["hang in %[1]v"])
        .stack(st(CALL_TRACE).skip(&["schedule"])),
    // What is left of a corrupted old-style KASAN report.
    f(r"INFO: (Freed|Allocated) in (.*)", "INFO: %[1]v in %[2]v").corrupted(),
    f(r"INFO:[[:space:]]*(?:\n|$)", "INFO: corrupted").corrupted(),
];

const KERNEL_PANIC: &[Format] = &[
    // For stack corruption the kernel may fail to print the function or to unwind.
    f(
        "Kernel panic - not syncing: stack-protector:",
        "kernel panic: stack is corrupted in %[1]v",
    )
    .report(r"Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: {{FUNC}}")
    .no_stack(),
    f(
        "Kernel panic - not syncing: stack-protector:",
        "kernel panic: stack is corrupted in %[1]v",
    )
    .report(r"Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: [a-f0-9]+")
    .stack(st(CALL_TRACE).skip(&["stack_chk"])),
    f(
        "Kernel panic - not syncing: corrupted stack end",
        "kernel panic: corrupted stack end in %[1]v",
    )
    .report(r"Kernel panic - not syncing: corrupted stack end detected inside scheduler")
    .alt(&["stack-overflow in %[1]v"])
    .stack(
        st(CALL_TRACE)
            .skip(&["schedule", "retint_kernel"])
            .ex(Stall),
    ),
    f(
        "Kernel panic - not syncing: kernel stack overflow",
        "kernel stack overflow in %[1]v",
    )
    .alt(&["stack-overflow in %[1]v"])
    .stack(st(CALL_TRACE).skip(&["bad_stack"]).ex(Stall)),
    f(
        "Kernel panic - not syncing: Attempted to kill init!",
        "kernel panic: Attempted to kill init!",
    ),
    f(
        r"Kernel panic - not syncing: Couldn't open N_TTY ldisc for [^ ]+ --- error -[0-9]+",
        "kernel panic: Couldn't open N_TTY ldisc",
    ),
    // Printed after a BUG: titled by this line, the report lost its real header.
    f(
        "Kernel panic - not syncing: Fatal exception",
        "kernel panic: Fatal exception",
    )
    .corrupted(),
    // The same after WARNINGs and KASAN reports,
    f(
        "Kernel panic - not syncing: panic_on_warn set",
        "kernel panic: panic_on_warn set",
    )
    .corrupted(),
    // and after hung tasks.
    f(
        "Kernel panic - not syncing: hung_task: blocked tasks",
        "kernel panic: hung_task: blocked tasks",
    )
    .corrupted(),
    f("Kernel panic - not syncing: (.*)", "kernel panic: %[1]v"),
];

const TRUSTY: &[Format] = &[
    f(
        r"trusty: panic.* ASSERT FAILED",
        "trusty: ASSERT FAILED: %[1]v",
    )
    .report(r"trusty: panic \(.*?\):(?: DEBUG)? ASSERT FAILED at \(.*?\): (.+)")
    .no_stack(),
    f(
        r"trusty: panic.* ASSERT FAILED.*: *(.*)",
        "trusty: ASSERT FAILED: %[1]v",
    )
    .corrupted(),
    f("trusty: panic", "trusty: panic: %[1]v")
        .report(r"trusty: panic \(.*?\): (.+)")
        .no_stack(),
];

pub(crate) static OOPSES: &[Oops] = &[
    Oops {
        header: "BUG:",
        formats: BUG,
        suppressions: &[
            // CONFIG_DEBUG_OBJECTS output.
            "ODEBUG:",
            // Android boot and ART debug output.
            "Boot_DEBUG:",
            "xlog_status:",
            "DEBUG:",
            // syzkaller's own host-check output.
            "BUG: no syscalls can create resource",
        ],
    },
    Oops {
        header: "WARNING:",
        formats: WARNING,
        suppressions: &[
            "WARNING: /etc/ssh/moduli does not exist, using fixed modulus",
            "WARNING: workqueue cpumask: online intersect > possible intersect",
            "WARNING: [Tt]he mand mount option",
            r"WARNING: Unsupported flag value\(s\) of 0x%x in DT_FLAGS_1",
            "WARNING: Unprivileged eBPF is enabled with eIBRS",
            r"WARNING: fbcon: Driver '(.*)' missed to adjust virtual screen size (\((?:\d+)x(?:\d+) vs\. (?:\d+)x(?:\d+)\))",
            "WARNING: See https.* for mitigation options.",
            "WARNING: kernel not compiled with CPU_SRSO",
            r"EXT4-[Ff][Ss](?: \(.*\))?:",
            "(?i)warning: .* uses (deprecated v2 capabilities|wireless extensions)",
            r"XFS \(\w+\): WARNING",
        ],
    },
    Oops {
        header: "INFO:",
        formats: INFO,
        suppressions: &[
            "INFO: lockdep is turned off",
            "INFO: Stall ended before state dump start",
            "INFO: NMI handler",
            "INFO: recovery required on readonly filesystem",
            "(handler|interrupt).*took too long",
            "INFO: sys_.* is not present in /proc/kallsyms",
            "INFO: no syscalls can create resource",
            "rmt_storage:INFO:",
            // `INVALID BTF_INFO:NUM`.
            "_INFO:",
        ],
    },
    Oops {
        header: "Unable to handle kernel",
        formats: &[f(
            "Unable to handle kernel (paging request|NULL pointer dereference|access to user memory)",
            "BUG: unable to handle kernel %[1]v in %[2]v",
        )
        .alt(&["bad-access in %[2]v"])
        .stack(st(FAULT))],
        suppressions: &[],
    },
    Oops {
        header: "general protection fault",
        formats: &[f("general protection fault.*:", "general protection fault in %[1]v")
            .alt(&["bad-access in %[1]v"])
            .stack(st(FAULT))],
        // User-space segfault reports (`... error:0 in libc.so`).
        suppressions: &[r"general protection fault .* error:\d+ in "],
    },
    Oops {
        header: "stack segment: ",
        formats: &[f("stack segment: ", "stack segment fault in %[1]v").stack(st(FAULT))],
        suppressions: &[],
    },
    Oops {
        header: "Kernel panic",
        formats: KERNEL_PANIC,
        suppressions: &[],
    },
    Oops {
        header: "PANIC: double fault",
        formats: &[f("PANIC: double fault", "PANIC: double fault in %[1]v").stack(st(&[RIP]))],
        suppressions: &[],
    },
    Oops {
        header: "rust_kernel: panicked",
        formats: &[f("rust_kernel: panicked", "%[1]v in %[2]v")
            .report(r"rust_kernel: panicked at [^\n]*?\n(.+?)\n")
            .stack(st(CALL_TRACE).skip(&[r"__rustc::rust_begin_unwind"]))],
        suppressions: &[],
    },
    Oops {
        header: "kernel BUG",
        formats: &[
            f("kernel BUG at mm/usercopy.c", "BUG: bad usercopy in %[1]v")
                .stack(st(CALL_TRACE).skip(&["usercopy", "__check"])),
            // Also memory corruption or races, hence the bad-access alternative.
            f("kernel BUG at lib/list_debug.c", "BUG: corrupted list in %[1]v")
                .alt(&["bad-access in %[1]v"])
                .stack(st(CALL_TRACE)),
            // skb wrappers BUG_ON, but the bug is in their caller.
            f("kernel BUG at (.*)", "kernel BUG in %[2]v").stack(st(FAULT).skip(&["^skb_"])),
        ],
        suppressions: &[],
    },
    Oops {
        header: "Kernel BUG",
        formats: &[f("Kernel BUG (.*)", "kernel BUG %[1]v")],
        suppressions: &[],
    },
    Oops {
        header: "BUG kmalloc-",
        formats: &[f("BUG kmalloc-.*: Object already free", "BUG: Object already free")],
        suppressions: &[],
    },
    Oops {
        header: "divide error:",
        formats: &[f("divide error: ", "divide error in %[1]v").stack(st(&[RIP]))],
        suppressions: &[],
    },
    Oops {
        // The misspelling of 9d06c4027f21 ("x86/entry: Convert Divide Error to IDTENTRY").
        header: "divide_error:",
        formats: &[f("divide_error: ", "divide error in %[1]v").stack(st(&[RIP]))],
        suppressions: &[],
    },
    Oops {
        header: "invalid opcode:",
        formats: &[f("invalid opcode: ", "invalid opcode in %[1]v").stack(st(&[RIP]))],
        suppressions: &[],
    },
    Oops {
        header: "int3:",
        formats: &[f("int3: ", "int3 in %[1]v").stack(st(FAULT))],
        suppressions: &[],
    },
    Oops {
        header: "UBSAN:",
        formats: &[
            f("UBSAN:", "UBSAN: undefined-behaviour in %[1]v")
                .report("UBSAN: Undefined behaviour in")
                .stack(st(CALL_TRACE).skip(&["ubsan", "overflow"])),
            f("UBSAN: array-index-out-of-bounds in", "UBSAN: array-index-out-of-bounds in %[1]v")
                .alt(&["bad-access in %[1]v"])
                .stack(st(CALL_TRACE).skip(&["ubsan", "overflow"])),
            f("UBSAN:", "UBSAN: %[1]v in %[2]v")
                .report("UBSAN: (.*?) in")
                .stack(st(CALL_TRACE).skip(&["ubsan", "overflow"])),
        ],
        suppressions: &[],
    },
    Oops {
        header: "Booting the kernel.",
        formats: &[f("^Booting the kernel", "unexpected kernel reboot").no_stack()],
        // A boot message read back from the console and echoed as a bad mount option.
        suppressions: &["Parsing ELF|Decompressing Linux|Unknown parameter '"],
    },
    Oops {
        header: "unregister_netdevice: waiting for",
        formats: &[f(
            "unregister_netdevice: waiting for (?:.*) to become free",
            "unregister_netdevice: waiting for DEV to become free",
        )
        .no_stack()],
        suppressions: &[],
    },
    Oops {
        // Older kernels' own VFS checks (syzkaller #3621).
        header: "VFS: Close: file count is 0",
        formats: &[f("VFS: Close: file count is 0", "VFS: Close: file count is zero (use-after-free)").no_stack()],
        suppressions: &[],
    },
    Oops {
        header: "VFS: Busy inodes after unmount",
        formats: &[f("VFS: Busy inodes after unmount", "VFS: Busy inodes after unmount (use-after-free)").no_stack()],
        suppressions: &[],
    },
    Oops {
        header: "Internal error:",
        // arm64's `synchronous external abort` is arm's paging request: one bad-access bucket.
        formats: &[f("Internal error:", "Internal error in %[1]v")
            .alt(&["bad-access in %[1]v"])
            .stack(st(FAULT))],
        suppressions: &[],
    },
    Oops {
        header: "Unhandled fault:",
        // arm's `page domain fault` is x86's general protection fault.
        formats: &[f("Unhandled fault:", "Unhandled fault in %[1]v")
            .alt(&["bad-access in %[1]v"])
            .stack(st(FAULT))],
        suppressions: &[],
    },
    Oops {
        header: "Alignment trap:",
        formats: &[f("Alignment trap:", "Alignment trap in %[1]v").stack(st(FAULT))],
        suppressions: &[],
    },
    Oops {
        header: "trusty: panic",
        formats: TRUSTY,
        suppressions: &[],
    },
    Oops {
        header: "fatal error:",
        formats: &[f("fatal error:", "go runtime error").no_stack()],
        suppressions: &["ALSA", "fatal error: cannot create timer"],
    },
    // syzkaller's own errors (commonOopses); they also catch Go programs' crashes.
    Oops {
        header: "SYZFAIL:",
        formats: &[f("SYZFAIL:(.*)", "SYZFAIL:%[1]v").no_stack()],
        suppressions: &[],
    },
    Oops {
        header: "SYZFATAL:",
        formats: &[f("SYZFATAL:(.*)()", "SYZFATAL:%[1]v").alt(&["SYZFATAL%[2]s"]).no_stack()],
        suppressions: &[],
    },
    Oops {
        header: "panic:",
        formats: &[
            f("panic: Sentry detected .* stuck task", "panic: Sentry detected stuck tasks").no_stack(),
            f("panic:(.*)", "panic:%[1]v").no_stack(),
        ],
        suppressions: &[
            // Kernel functions (skb_panic, skb_over_panic).
            "_panic:",
            "xlog_status:",
            r"ddb\.onpanic:",
            "evtlog_status:",
        ],
    },
];

/// Headers kmortem adds beyond syzkaller's table, for what production fleets print and
/// syzkaller's VMs do not. They open a report only where no syzkaller header does, and they
/// never end another report's text (syzkaller reads them as plain lines).
///
/// Folklore: the NMI watchdog (kernel/watchdog_hld.c, `NMI watchdog: Watchdog detected hard
/// LOCKUP on cpu 3`) prints the interrupted context's registers and trace; titled like a soft
/// lockup. With `hardlockup_panic` the `Kernel panic - not syncing: Hard LOCKUP` that follows
/// is what syzkaller titles, and that title is kept as the first alternative. Pinned by
/// lib::tests::hard_lockup.
pub(crate) static KMORTEM: &[Oops] = &[Oops {
    header: "Watchdog detected hard LOCKUP",
    formats: &[
        f("Watchdog detected hard LOCKUP", "BUG: hard lockup in %[1]v")
            .alt(&["stall in %[1]v"])
            .stack(st(FAULT).parts2(CALL_TRACE).ex(Stall)),
    ],
    suppressions: &[],
}];
