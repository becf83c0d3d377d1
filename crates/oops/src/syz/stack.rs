//! syzkaller's `linuxStackParams` and frame extractors, as data: where stacks start, what a
//! frame line looks like, which frames are never guilty, which lines mean another report is
//! interleaved, the syscall-wrapper prefixes stripped from frames, and the anchors of the
//! stall and hang extractors (`pkg/report/linux.go`, reference commit 1e72964b0111).

/// `stackStartRes`. `[^k] backtrace` keeps lockdep's `stack backtrace:` out; the last one is
/// riscv's `show_regs()` status line, after which the stack is dumped without a header.
pub(crate) const STACK_STARTS: &[&str] = &[
    "Call (?:T|t)race",
    "Allocated:",
    "Allocated by task [0-9]+:",
    "Freed:",
    "Freed by task [0-9]+:",
    r"[^k] backtrace(?: \(crc [[:xdigit:]]*\))?:",
    "Backtrace:",
    "Uninit was stored to memory at",
    RISCV_STACK_START,
];

/// Its missing frames do not make a report corrupted.
pub(crate) const RISCV_STACK_START: &str =
    "status: [0-9a-f]{16} badaddr: [0-9a-f]{16} cause: [0-9a-f]{16}";

/// `frameRes`: x86/arm64 frames, and ARM's `[<pc>] (func) from [<lr>] (caller+off/size)`,
/// which names both frames (the top one is otherwise only in LR).
pub(crate) const FRAMES: &[&str] = &[
    "^ *(?:{{PC}} ){0,2}{{FUNC}}",
    r"^ *{{PC}} \(([a-zA-Z0-9_.]+)\) from {{PC}} \({{FUNC}}",
];

/// `corruptedLines`: a fault-injection stack in the middle of a report (the symbol may carry
/// suffixes like `.isra.7` or `.isra.56.cold.74`).
pub(crate) const CORRUPTED_LINES: &[&str] =
    &[r"^( \[\<?(?:0x)?[0-9a-f]+\>?\])? should_fail(slab)?(\.[a-z0-9.]+)?\+0x"];

/// `stripFramePrefixes`: syscall entry wrappers differ between arches and versions.
pub(crate) const STRIP_PREFIXES: &[&str] = &[
    "SYSC_",
    "SyS_",
    "sys_",
    "__x64_",
    "__ia32_",
    "__arm64_",
    "____sys_",
    "___sys_",
    "__sys_",
    "__se_",
    "__se_sys_",
    "__do_sys_",
    "compat_SYSC_",
    "compat_SyS_",
    "ksys_",
];

/// `skipPatterns`: frames that are never the guilty one (matched anywhere in the name).
pub(crate) const SKIP: &[&str] = &[
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
    "print_report",
    "print_usage_bug",
    "do_error",
    "invalid_op",
    "_trap$|do_trap",
    "show_stack",
    "dump_stack",
    "walk_stack",
    "dump_backtrace",
    "warn_slowpath",
    "warn_alloc",
    "warn_bogus",
    "__warn",
    "alloc_page",
    "k?v?(?:m|z|c)alloc",
    "krealloc",
    "kmem_cache",
    "allocate_slab",
    "__alloc_frozen_pages_noprof",
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
    "strcpy",
    "strlcpy",
    "strncpy",
    "strscpy",
    "strlen",
    "strstr",
    "strnstr",
    "strnlen",
    "strchr",
    "strdup",
    "strndup",
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
    // Retpolines.
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
    "flush_work",
    "__cancel_work_timer",
    "cancel_work_sync",
    "try_to_grab_pending",
    "flush_workqueue",
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
    "device_remove_file",
    "tty_unregister_device",
    "dummy_urb_enqueue",
    "usb_kill_urb",
    "usb_kill_anchored_urbs",
    "usb_control_msg",
    "usb_hcd_submit_urb",
    "usb_submit_urb",
    "^complete$",
    "wait_for_completion",
    "^kv?free$",
    "kfree_skb",
    "readb$",
    "readw$",
    "readl$",
    "readq$",
    "writeb$",
    "writew$",
    "writel$",
    "writeq$",
    "logic_in",
    "logic_out",
    r"^crc\d+",
    "crc_itu_t",
    "__might_resched",
    "assertfail",
    "^iput$",
    "^iput_final$",
    "^ihold$",
    "hex_dump_to_buffer",
    "print_hex_dump",
    "^klist_",
    "(trace|lockdep)_(hard|soft)irq",
    "^(un)?lock_page",
    "stack_trace_consume_entry",
    "arch_stack_walk",
    "stack_trace_save",
    "insert_work",
    "__queue_delayed_work",
    "queue_delayed_work_on",
    "ida_free",
    // arm64 translation fault path.
    "do_(kernel|translation)_fault",
    "do_mem_abort",
    "el1_abort",
    "el1h_64_sync(?:_handler)?",
    "print_tainted",
    "xas_(?:start|load|find)",
    "find_lock_entries",
    "truncate_inode_pages_range",
    "__phys_addr",
    "__fortify_report",
    "cleanup_srcu_struct",
    "rhashtable_lookup",
    "extract_(user|iter)_to_sg",
    "drop_nlink",
    "^get_taint$",
    "^put_device$",
    "lock_timer_base",
    "__timer_delete_sync",
    "sk_stop_timer_sync",
    "__mod_timer",
    "fast_dput",
    "dput",
    "mark_buffer_dirty",
];

/// `linuxStallAnchorFrames`: generic dispatchers (and a few of their callers, so that a rename
/// does not skip whole stacks). A stall is named after the frame just above the first anchor:
/// the syscall, the work function, the timer callback.
pub(crate) const STALL_ANCHORS: &[&str] = &[
    "process_one_work",
    "do_syscall_",
    "do_fast_syscall_",
    "sysenter_dispatch",
    "tracesys_phase2",
    "el0_svc_handler",
    "invoke_syscall",
    "ret_fast_syscall",
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
    // Discriminating syscalls (file_operations callbacks and the like).
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
    // vfs_ioctl may be inlined.
    "ksys_ioctl",
    "compat_ioctl",
    "compat_sys_ioctl",
    "blkdev_driver_ioctl",
    "blkdev_ioctl",
    "^call_read_iter",
    "^call_write_iter",
    "do_iter_readv_writev",
    "^call_mmap",
    "mmap_region",
    "do_mmap",
    "do_dentry_open",
    "vfs_open",
    // Sockets.
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
    // Page faults.
    "__do_fault",
    "do_page_fault",
    "^page_fault$",
    // exit_to_usermode_loop callbacks.
    "__fput",
    "task_work_run",
    "exit_to_usermode",
    "smp_call_function",
    "tasklet_action",
    "tasklet_hi_action",
];

/// `linuxHangTaskFrameExtractor`'s buckets: hangs on rtnl_lock, and on every synchronize_*
/// (an RCU problem shows up as hangs all over the kernel), group together.
pub(crate) const HANG_ANCHORS: &[(&str, &str)] = &[
    ("rtnl_lock", ""),
    ("synchronize_rcu", "synchronize_rcu"),
    ("synchronize_srcu", "synchronize_rcu"),
    ("synchronize_net", "synchronize_rcu"),
    ("synchronize_sched", "synchronize_rcu"),
];

/// Then the first frame that is not a wait (substring match).
pub(crate) const HANG_SKIP: &[&str] = &[
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

/// Stall extractor over stripped frames: (frame, index) or `None`.
pub(crate) fn stall(frames: &[String], anchors: &regex::bytes::Regex) -> Option<(String, usize)> {
    let mut prev = (frames.first()?.clone(), 0);
    for (i, f) in frames.iter().enumerate() {
        if anchors.is_match(f.as_bytes()) {
            if f.contains("smp_call_function") {
                // All the smp_call_function* flavours are one bucket.
                prev = ("smp_call_function".to_string(), i);
            }
            return Some(prev);
        }
        prev = (f.clone(), i);
    }
    None
}

/// Hang extractor over stripped frames.
pub(crate) fn hang(frames: &[String]) -> Option<(String, usize)> {
    for (i, f) in frames.iter().enumerate() {
        for (anchor, repl) in HANG_ANCHORS {
            if f.contains(anchor) {
                let name = if repl.is_empty() {
                    f.clone()
                } else {
                    repl.to_string()
                };
                return Some((name, i));
            }
        }
    }
    frames
        .iter()
        .enumerate()
        .find(|(_, f)| !HANG_SKIP.iter().any(|s| f.contains(s)))
        .map(|(i, f)| (f.clone(), i))
}

/// `stripFrames`: the shortest of the frame with each prefix trimmed.
pub(crate) fn strip_frame(f: &str) -> &str {
    let mut best = f;
    for p in STRIP_PREFIXES {
        if let Some(r) = f.strip_prefix(p) {
            if r.len() < best.len() {
                best = r;
            }
        }
    }
    best
}
