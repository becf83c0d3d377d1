//! With a vmcore: memory facts behind the console findings — the slab object a pointer points
//! into (cache, object start, free or not), the vmalloc area of a bad address with the real
//! length of an array indexed out of range, and the damaged list walked to where it breaks.

use crate::{Confidence, Finding};
use kmortem_kernel::list::walk_list;
use kmortem_kernel::{Memory, Program};
use kmortem_oops::{Kind, Report};
use kmortem_symbols::Symbolizer;

const GP: [&str; 15] = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
    "r15",
];

fn hexfact(f: &Finding, k: &str) -> Option<u64> {
    let v = f.facts.get(k)?;
    u64::from_str_radix(v.trim_start_matches("0x"), 16).ok()
}

/// A module's static variable (or a vmlinux symbol) containing a runtime address:
/// `stale.leaf_cfs_rq_list`, `a.link`.
fn name_address(prog: &Program, sym: &mut Symbolizer, addr: u64) -> Option<String> {
    name_address_as(prog, sym, addr, true)
}

/// `member`: name the member at the address (`a.link`) rather than the object (`a`) when it is
/// at offset 0.
fn name_address_as(
    prog: &Program,
    sym: &mut Symbolizer,
    addr: u64,
    member: bool,
) -> Option<String> {
    for m in prog.modules() {
        // Folklore: until 6.3 a module's code and data were one allocation (`core_layout`);
        // since 6.4 (`mod_mem`) text, rodata, ro_after_init and data are allocated apart, and
        // the module's base/size is its text only. A static of the module (the `stale` node of
        // the 6.12 lab's leaf_cfs_rq) is then found by its symbol's own range. Pinned by
        // tests/lab.rs::with_vmcore_the_five_seed_patterns on both kernels.
        let in_region = m.size == 0 || (m.base..m.base + m.size).contains(&addr);
        let s = m
            .symbols
            .iter()
            .filter(|s| {
                s.addr <= addr && addr < s.addr + s.size.max(1) && (in_region || s.size > 0)
            })
            .max_by_key(|s| s.addr);
        let s = match (s, in_region) {
            (Some(s), _) => s,
            (None, true) => return None,
            (None, false) => continue,
        };
        let off = addr - s.addr;
        let short = s.name.split('.').next().unwrap_or(&s.name).to_string();
        // Member path through the module's DWARF.
        if let Some(bin) = sym.module(&m.name) {
            if let Some((i, _)) = bin.symbols_named(&s.name).next() {
                let la = bin.symbols[i].address + off;
                if let Some((vn, Some(t), voff)) = bin.static_variable_at(la) {
                    if voff == 0 && !member {
                        return Some(vn);
                    }
                    if let Some((p, _)) = crate::origin::shallow_member(&bin, t, voff) {
                        return Some(format!("{vn}.{p}"));
                    }
                    if voff == 0 {
                        return Some(vn);
                    }
                }
            }
        }
        return Some(if off == 0 {
            short
        } else {
            format!("{short}+{off:#x}")
        });
    }
    // Heap: the slab object holding it (container_of by cache: the member is at that offset).
    if let Ok(Some(o)) = prog.slab_object(addr) {
        return Some(format!(
            "{:#x}+{:#x} in a{} kmem_cache {} object",
            o.object,
            o.offset,
            if o.free == Some(true) {
                " FREED"
            } else {
                "n allocated"
            },
            o.cache_name
        ));
    }
    let (s, off) = prog.lookup(addr)?;
    Some(if off == 0 {
        s.name
    } else {
        format!("{}+{off:#x}", s.name)
    })
}

pub fn explain(report: &Report, prog: &Program, sym: &mut Symbolizer, found: &mut Vec<Finding>) {
    let mut extra = Vec::new();
    // 1. Registers pointing into freed slab objects (and the bad pointer's own object).
    let poisoned = found
        .iter()
        .any(|f| f.facts.get("class").is_some_and(|c| c.starts_with("slab_")));
    let mut seen = std::collections::HashSet::new();
    // Registers of a stuck CPU or a BUG hold whatever the code last used: only a fault (or a
    // BUG, the allocator's double-free check) makes a freed object in a register relevant, and
    // only a slab-poisoned bad pointer makes it the cause (high).
    let relevant = matches!(
        report.kind,
        Kind::NullPointerDereference
            | Kind::PagingRequest
            | Kind::GeneralProtectionFault
            | Kind::KernelBug
            | Kind::Kasan
    );
    for r in GP {
        if !relevant {
            break;
        }
        let Some(&v) = report.registers.get(r) else {
            continue;
        };
        if v < 0xffff_8000_0000_0000 || kmortem_symbols_class_bad(v) {
            continue;
        }
        let Ok(Some(o)) = prog.slab_object(v) else {
            continue;
        };
        if o.free != Some(true) || o.offset >= o.object_size || !seen.insert(o.object) {
            continue;
        }
        let mut f = Finding::new(
            "freed_object",
            format!(
                "%{r} = {v:#x} points into a FREED object of kmem_cache `{}` (object {:#x} + {:#x}, {} bytes){}",
                o.cache_name,
                o.object,
                o.offset,
                o.object_size,
                if poisoned {
                    ": the poisoned pointer was read from freed memory like this (use after free)"
                } else {
                    " (a freed object still in use, or a stale register)"
                }
            ),
            if poisoned {
                Confidence::High
            } else {
                Confidence::Medium
            },
        );
        f.evidence.push(format!(
            "vmcore: slab {:#x} of cache {} ({:#x}), object index {} of {}, on the freelist",
            o.slab, o.cache_name, o.cache, o.index, o.objects
        ));
        if let Some(e) = &o.freelist_error {
            f.evidence.push(format!("freelist walk: {e}"));
        }
        f.fact("register", r);
        f.fact("cache", o.cache_name.clone());
        f.fact("object", format!("{:#x}", o.object));
        f.fact("free", "true");
        extra.push(f);
    }
    // 2. A bad address in a vmalloc area: its allocation and, for an array element, the index
    //    against the allocation's real length.
    for f in found.iter() {
        if f.kind != "bad_pointer" {
            continue;
        }
        let Some(addr) = hexfact(f, "address") else {
            continue;
        };
        let Ok(Some(a)) = prog.vmalloc_area(addr) else {
            continue;
        };
        let mut g = Finding::new(
            "vmalloc_bounds",
            format!(
                "{addr:#x} is {:#x} bytes into the vmalloc area {:#x}-{:#x} ({} usable bytes{}), {}",
                a.offset,
                a.va_start,
                a.va_end,
                a.usable_size,
                a.caller_symbol
                    .as_ref()
                    .map(|c| format!(", allocated by {c}"))
                    .unwrap_or_default(),
                if a.guard_page || a.offset >= a.usable_size {
                    "past its end (guard page): out of bounds"
                } else {
                    "inside it"
                }
            ),
            if a.guard_page || a.offset >= a.usable_size {
                Confidence::High
            } else {
                Confidence::Medium
            },
        );
        g.evidence.push(format!(
            "vmcore: vmap_area {:#x}-{:#x}, vm_struct {:#x}, {} pages",
            a.va_start, a.va_end, a.vm, a.nr_pages
        ));
        if let (Some(arr), Some(es)) = (
            f.facts.get("array"),
            f.facts
                .get("element_size")
                .and_then(|s| s.parse::<u64>().ok()),
        ) {
            if es > 0 && (a.offset >= a.usable_size || a.guard_page) {
                let base = addr - a.offset;
                let value = hexfact(f, "value").unwrap_or(addr);
                let idx = value.wrapping_sub(base) / es;
                let len = a.usable_size / es;
                g.summary = format!(
                    "index {idx} of `{arr}[]` ({es}-byte elements) is out of range: the array's vmalloc allocation ({} usable bytes{}) holds at most {len} elements",
                    a.usable_size,
                    a.caller_symbol
                        .as_ref()
                        .map(|c| format!(", by {c}"))
                        .unwrap_or_default()
                );
                g.kind = "array_index".into();
                g.fact("index", idx.to_string());
                g.fact("max_length", len.to_string());
                g.fact("array", arr.clone());
                g.evidence.push(format!(
                    "element address {value:#x} - array start {base:#x} = {:#x} = {idx} × {es}",
                    value - base
                ));
            }
        }
        extra.push(g);
    }
    // 3. Damaged lists: walk from the entry (list_del) or the node before the bad link.
    for f in found.iter() {
        if f.kind != "list_corruption" {
            continue;
        }
        let start = hexfact(f, "entry").or_else(|| hexfact(f, "arg.prev.value"));
        let Some(start) = start else { continue };
        let w = walk_list(prog, start, 100_000);
        let where_ = name_address(prog, sym, start);
        let mut g = Finding::new(
            "list_walk",
            match w.corruption() {
                Some(b) => format!(
                    "walking the list from {start:#x}{}: {b}{}{}",
                    where_
                        .as_ref()
                        .map(|n| format!(" (`{n}`)"))
                        .unwrap_or_default(),
                    if w.nodes.is_empty() {
                        " (at the first node)".to_string()
                    } else {
                        format!(" (after {} good nodes)", w.nodes.len())
                    },
                    name_address(prog, sym, b.node)
                        .map(|n| format!("; the bad node is `{n}`"))
                        .unwrap_or_default()
                ),
                None => format!(
                    "walking the list from {start:#x}{}: {} nodes, it ends {:?}",
                    where_
                        .as_ref()
                        .map(|n| format!(" (`{n}`)"))
                        .unwrap_or_default(),
                    w.nodes.len(),
                    w.end
                ),
            },
            if w.corruption().is_some() {
                Confidence::High
            } else {
                Confidence::Medium
            },
        );
        g.evidence.push(format!(
            "vmcore: list walk {start:#x}{}",
            w.nodes
                .iter()
                .take(6)
                .map(|n| format!(" → {n:#x}"))
                .collect::<String>()
        ));
        if let Some(n) = where_ {
            g.fact("start", n);
        }
        if let Some(b) = w.corruption() {
            g.fact("bad_node", format!("{:#x}", b.node));
            if let Some(n) = name_address(prog, sym, b.node) {
                g.fact("bad_node_name", n);
            }
        }
        extra.push(g);
    }
    // 4. A garbage pointer read from an object that is now a live object of another cache: the
    //    stale pointer's memory was freed and reallocated (use after free).
    for f in found.iter_mut() {
        reallocated(prog, f);
    }
    extra.extend(hung_waits(report, prog, sym));
    found.extend(extra);
    found.sort_by_key(|f| std::cmp::Reverse(f.confidence));
}

/// Whether a kmem_cache's name is the one of a type's objects: `kmlab_token` for `struct
/// kmlab_token`, `TCP` for `struct tcp_sock`, `inode_cache` for `struct inode` (one contains the
/// other once lowercased, without `struct ` and a `_cache`/`_cachep` suffix).
fn cache_of_type(cache: &str, type_name: &str) -> bool {
    let norm = |s: &str| {
        let s = s.trim();
        let s = s
            .strip_prefix("struct ")
            .or_else(|| s.strip_prefix("union "))
            .unwrap_or(s);
        let s = s.to_ascii_lowercase();
        let s = s
            .strip_suffix("_cachep")
            .or_else(|| s.strip_suffix("_cache"))
            .unwrap_or(&s)
            .to_string();
        s
    };
    let (c, t) = (norm(cache), norm(type_name));
    !c.is_empty() && !t.is_empty() && (c.contains(&t) || t.contains(&c))
}

/// A bad pointer with a garbage (non-canonical) value read from `source` (`t` of `t->owner`),
/// where `source` points into an allocated object of a dedicated cache named after another type
/// (`kmlab_frame` for a `struct kmlab_token`): `source` is stale, its object was freed and the
/// memory given to another cache (slab page freed and reused); the garbage is the new object's
/// data. Generic `kmalloc-*` caches say nothing about the type and are left alone. Pinned by
/// `uaf_realloc` (vmcore rows) in tests/shapes.rs.
fn reallocated(prog: &Program, f: &mut Finding) {
    if f.kind != "bad_pointer" || f.facts.get("class").map(String::as_str) != Some("non_canonical")
    {
        return;
    }
    let (Some(src), Some(addr), Some(ty)) = (
        f.facts.get("source").cloned(),
        hexfact(f, "source_address"),
        f.facts.get("source_type").cloned(),
    ) else {
        return;
    };
    let Ok(Some(o)) = prog.slab_object(addr) else {
        return;
    };
    let generic = o.cache_name.starts_with("kmalloc-")
        || o.cache_name.starts_with("kmalloc_")
        || o.cache_name.starts_with("dma-kmalloc");
    if o.free != Some(false) || generic || cache_of_type(&o.cache_name, &ty) {
        return;
    }
    f.summary.push_str(&format!(
        "; `{src}` ({ty} *) = {addr:#x} points into a live object of kmem_cache `{}`, not a {ty}: its object was freed and the memory reallocated to another cache (use after free)",
        o.cache_name
    ));
    f.evidence.push(format!(
        "vmcore: `{src}` = {addr:#x} is {:#x} bytes into the allocated object {:#x} ({} bytes) of kmem_cache `{}` (slab {:#x}); the cache is not named after {ty}",
        o.offset, o.object, o.object_size, o.cache_name, o.slab
    ));
    f.fact("stale", src);
    f.fact("stale_cache", o.cache_name.clone());
    f.fact("stale_object", format!("{:#x}", o.object));
    f.fact("verdict", "reallocated");
}

/// Values that are never slab addresses (poison, non-canonical).
fn kmortem_symbols_class_bad(v: u64) -> bool {
    crate::pointer::classify(v).is_some()
}

/// A hung task's wait: find the waiter record on its stack (`struct mutex_waiter`,
/// `struct rwsem_waiter`, or the `struct swait_queue` of a completion: each holds `task` = the
/// hung task and is linked into the lock's wait list), follow the list to the lock, and name the
/// lock and its owner.
///
/// Folklore: mutex_lock() queues a `struct mutex_waiter` on the sleeper's stack
/// (kernel/locking/mutex.c, `waiter.task = current` since v4.10; before, `waiter->task` too);
/// down_read/down_write a `struct rwsem_waiter`; wait_for_completion() a `struct swait_queue`
/// (DECLARE_SWAITQUEUE, since v4.19 when completions moved to simple waitqueues). The list
/// head lives in the lock: `mutex.wait_list`, `rw_semaphore.wait_list`,
/// `completion.wait.task_list`. Members are probed by name, never by version. Pinned by the
/// `hung_task` lab test (a completion nobody completes).
pub fn hung_waits(report: &Report, prog: &Program, sym: &mut Symbolizer) -> Vec<Finding> {
    let mut out = Vec::new();
    if report.kind != Kind::HungTask {
        return out;
    }
    // `INFO: task sh:103 blocked for more than ...` names the hung task; the report's `PID:`
    // may be the khungtaskd CPU's own line.
    let pid = (|| -> Option<u32> {
        let t = report.text.split("INFO: task ").nth(1)?;
        let t = t.split_whitespace().next()?;
        t.rsplit(':').next()?.parse().ok()
    })()
    .or(report.pid);
    let Some(pid) = pid else { return out };
    let Ok(tasks) = prog.tasks() else { return out };
    let Some(task) = tasks.iter().find(|t| t.pid == pid as i32) else {
        return out;
    };
    let Ok(stack) = prog.read_member(task.task, "task_struct", "stack") else {
        return out;
    };
    // THREAD_SIZE: 16 KiB on x86_64 (32 KiB with KASAN); the words past the stack's end are
    // simply not waiter records, so scanning 32 KiB is safe.
    let mut words = vec![0u8; 32 * 1024];
    let n = if prog.read(stack, &mut words).is_ok() {
        words.len()
    } else if prog.read(stack, &mut words[..16 * 1024]).is_ok() {
        16 * 1024
    } else {
        return out;
    };
    let on_stack = |a: u64| a >= stack && a < stack + n as u64;
    let word = |a: u64| -> Option<u64> {
        if on_stack(a) && a + 8 <= stack + n as u64 {
            let i = (a - stack) as usize;
            Some(u64::from_le_bytes(words[i..i + 8].try_into().ok()?))
        } else {
            prog.read_u64(a).ok()
        }
    };
    // (waiter struct, list member, lock struct, path of the list head in the lock, what)
    let kinds: [(&str, &str, &str, &[&str], &str); 3] = [
        ("mutex_waiter", "list", "mutex", &["wait_list"], "mutex"),
        (
            "rwsem_waiter",
            "list",
            "rw_semaphore",
            &["wait_list"],
            "rw_semaphore",
        ),
        (
            "swait_queue",
            "task_list",
            "completion",
            &["wait", "task_list"],
            "completion",
        ),
    ];
    for (wname, lname, lock, path, what) in kinds {
        let (Ok(task_off), Ok(list_off)) =
            (prog.offset_of(wname, "task"), prog.offset_of(wname, lname))
        else {
            continue;
        };
        // Offset of the list head inside the lock.
        let mut head_off = 0;
        let mut ok = true;
        let mut sname = lock.to_string();
        for (i, m) in path.iter().enumerate() {
            match prog.offset_of(&sname, m) {
                Ok(o) => head_off += o,
                Err(_) => {
                    ok = false;
                    break;
                }
            }
            if i + 1 < path.len() {
                // completion.wait is a struct swait_queue_head.
                sname = "swait_queue_head".into();
            }
        }
        if !ok {
            continue;
        }
        let mut a = stack;
        while a + 8 <= stack + n as u64 {
            let w = a;
            a += 8;
            if word(w + task_off) != Some(task.task) {
                continue;
            }
            // Follow the waiter's list until it leaves the stack: that node is the lock's head.
            let mut node = w + list_off;
            let mut head = None;
            for _ in 0..64 {
                let Some(next) = word(node) else { break };
                if next == 0 || next == w + list_off {
                    break;
                }
                if !on_stack(next) {
                    head = Some(next);
                    break;
                }
                node = next;
            }
            let Some(head) = head else { continue };
            // The waiter's own list node must be on the head's list (walking from the head),
            // or a stray stack word that happens to point at a list head would match.
            let mut on_list = false;
            let mut x = head;
            for _ in 0..256 {
                let Some(nx) = word(x) else { break };
                if nx == w + list_off {
                    on_list = true;
                    break;
                }
                if nx == head || nx == 0 {
                    break;
                }
                x = nx;
            }
            if !on_list {
                continue;
            }
            let lock_addr = head - head_off;
            let name = name_address_as(prog, sym, lock_addr, false);
            let mut f = Finding::new("hung_lock", String::new(), Confidence::High);
            f.evidence.push(format!(
                "vmcore: a struct {wname} at {w:#x} on the stack of pid {pid} ({}) has task = {:#x} and is linked into {head:#x}",
                task.comm, task.task
            ));
            let label = name
                .as_ref()
                .map(|n| format!("`{n}` ({lock_addr:#x})"))
                .unwrap_or_else(|| format!("{lock_addr:#x}"));
            match what {
                "mutex" | "rw_semaphore" => {
                    let st = if what == "mutex" {
                        prog.mutex_owner(lock_addr)
                    } else {
                        prog.rwsem_owner(lock_addr)
                    };
                    match st {
                        Ok(s) => {
                            let owner = s
                                .owner
                                .as_ref()
                                .map(|o| {
                                    format!(
                                        "held by pid {} ({}) at task {:#x}",
                                        o.pid, o.comm, o.task
                                    )
                                })
                                .unwrap_or_else(|| {
                                    if s.reader_owned {
                                        format!("held by {} reader(s)", s.readers)
                                    } else {
                                        "with no owner recorded".into()
                                    }
                                });
                            f.summary = format!(
                                "pid {pid} ({}) waits for the {what} {label}, {owner}; {} waiter(s) queued",
                                task.comm,
                                s.waiters.len(),
                            );
                            if let Some(o) = &s.owner {
                                f.fact("owner_pid", o.pid.to_string());
                                f.fact("owner_comm", o.comm.clone());
                                match owner_stack(prog, o.task, o.pid, &o.comm) {
                                    Some(bt) => {
                                        f.evidence.push(format!("the owner's stack (bt {}):", o.pid));
                                        f.evidence.extend(bt.lines().map(str::to_string));
                                    }
                                    None => f.evidence.push(format!(
                                        "the owner's stack could not be walked (`kmortem core DUMP -c 'bt {}'`)",
                                        o.pid
                                    )),
                                }
                            }
                        }
                        Err(e) => {
                            f.summary =
                                format!("pid {pid} ({}) waits for the {what} {label}", task.comm);
                            f.evidence.push(format!("owner unreadable: {e}"));
                            f.confidence = Confidence::Medium;
                        }
                    }
                }
                _ => {
                    let done = prog.read_u32(lock_addr).ok();
                    f.summary = format!(
                        "pid {pid} ({}) waits for the completion {label}{}",
                        task.comm,
                        match done {
                            Some(0) => ": `done` is 0, nothing has completed it (a completion has no owner: find who should call complete())".to_string(),
                            Some(d) => format!(": `done` = {d}"),
                            None => String::new(),
                        }
                    );
                    if let Some(d) = done {
                        f.evidence.push(format!("vmcore: completion.done = {d}"));
                    }
                }
            }
            f.fact("wait", what);
            f.fact("lock", format!("{lock_addr:#x}"));
            if let Some(n) = name {
                f.fact("lock_name", n);
            }
            out.push(f);
            return out;
        }
    }
    out
}

/// The backtrace of a lock's owner, in `bt`'s text layout: from its CPU's registers when it is
/// running, else from its saved `thread.sp`.
pub fn owner_stack(prog: &Program, task: u64, pid: i32, comm: &str) -> Option<String> {
    use kmortem_kernel::backtrace;
    use kmortem_shell::bt;
    let cpu = backtrace::active_tasks(prog)
        .into_iter()
        .find(|&(_, t)| t == task)
        .map(|(c, _)| c);
    let mut st = backtrace::BtState::default();
    let t = st
        .task_trace(
            prog,
            task,
            i64::from(pid),
            comm.to_string(),
            cpu,
            cpu.is_some(),
        )
        .ok()?;
    if t.frames.is_empty() {
        return None;
    }
    Some(bt::format_task(prog, &t, bt::Flags::default()))
}

#[cfg(test)]
mod tests {
    use super::cache_of_type;

    #[test]
    fn cache_names_against_types() {
        let cases = [
            ("kmlab_token", "struct kmlab_token", true),
            ("TCP", "struct tcp_sock", true),
            ("inode_cache", "struct inode", true),
            ("kmlab_frame", "struct kmlab_token", false),
            ("dentry", "struct kmlab_session", false),
            ("", "struct x", false),
        ];
        for (c, t, want) in cases {
            println!("{c} / {t}: {}", cache_of_type(c, t));
            assert_eq!(cache_of_type(c, t), want, "{c} vs {t}");
        }
    }
}
