//! Tasks: every thread of every process, the idle task of each CPU, and which are running.

use crate::mem::Memory;
use crate::program::{Error, Program};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Task {
    pub pid: i32,
    pub ppid: i32,
    pub tgid: i32,
    pub cpu: u32,
    /// ps-style state letter: R S D T t X Z P I.
    pub state: String,
    pub comm: String,
    /// Address of the task_struct.
    #[serde(serialize_with = "crate::hex_addr")]
    pub task: u64,
    /// Running on a CPU when the dump was taken (the CPU's runqueue `curr`).
    pub active: bool,
}

/// `task_state_index()` of include/linux/sched.h as a letter.
///
/// Folklore: the report bits are TASK_RUNNING 0, INTERRUPTIBLE 1, UNINTERRUPTIBLE 2,
/// __TASK_STOPPED 4, __TASK_TRACED 8, EXIT_DEAD 16, EXIT_ZOMBIE 32, TASK_PARKED 64 (stable
/// since 4.14), the index is the highest report bit set in `state | exit_state`; a state with
/// every bit of TASK_IDLE (UNINTERRUPTIBLE|NOLOAD = 0x402) reports as 'I', and one with
/// TASK_RTLOCK_WAIT (0x1000, 5.15+) or TASK_FROZEN (0x8000, 6.1's freezer rewrite, commit
/// f5d39b020809) as 'D', whatever else is set: a freezable idle kthread sleeps in
/// TASK_IDLE|TASK_FREEZABLE (0x2402), still 'I'. These are #defines, absent from BTF and
/// DWARF. Pinned by `tests::state_letters` and the lab's drgn oracle (`drgn-ps`, whose
/// task_state_to_char() is the kernel's function).
pub fn state_letter(state: u64, exit_state: u64) -> char {
    const REPORT: u64 = 0x7f;
    const TASK_IDLE: u64 = 0x402;
    let mut s = (state | exit_state) & REPORT;
    if state & TASK_IDLE == TASK_IDLE {
        s = 0x80; // TASK_REPORT_IDLE
    }
    if state & 0x1000 != 0 || state & 0x8000 != 0 {
        s = 2;
    }
    let idx = 64 - s.leading_zeros() as usize;
    b"RSDTtXZPI".get(idx).map(|&c| c as char).unwrap_or('?')
}

impl Program {
    /// Every task: the processes on `init_task.tasks`, their threads, and each CPU's idle
    /// task (which is on no list), sorted by pid like crash's `ps`.
    pub fn tasks(&self) -> Result<Vec<Task>, Error> {
        let init = self.need_symbol("init_task")?;
        let tasks_off = self.offset_of("task_struct", "tasks")?;
        // Threads: signal->thread_head/thread_node (3.14+, the only way since 6.7 removed
        // thread_group); older kernels: thread_group.
        let thread_walk = if self.has_member("task_struct", "thread_node")
            && self.has_member("signal_struct", "thread_head")
        {
            Some((
                self.offset_of("task_struct", "signal")?,
                self.offset_of("signal_struct", "thread_head")?,
                self.offset_of("task_struct", "thread_node")?,
            ))
        } else {
            None
        };
        let group_off = self.offset_of("task_struct", "thread_group").ok();
        // The list head itself must be readable; past it, holes only shorten the list.
        self.read_u64(init + tasks_off)?;
        let mut addrs = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // Forward from init_task along `tasks.next`. A hole (a page the dump left out) ends
        // that direction; then backward from init_task along `tasks.prev`, and from every task
        // the pid namespace knows, both ways: the readable stretches between holes.
        //
        // Folklore: Debian 12's makedumpfile 1.7.2 leaves in-use slab pages of 6.12 out of `-d
        // 31` dumps: it tells slab pages by the PG_slab flag, which 6.10 removed (slab became a
        // page type, see slab.rs), and takes them for pages it may drop. So a real kdump of 6.12
        // misses task_structs (and drgn's task list stops at the first one). Pinned by `lab_log_sys_ps_on_every_dump_and_format` (the kdump-d31
        // dumps of 6.12: every task not listed has no readable neighbour or task_struct).
        let mut todo: Vec<(u64, bool)> = vec![(init, false)];
        let mut seeded = false;
        self.add_task(init, thread_walk, group_off, &mut seen, &mut addrs);
        // Where the list broke, for the warning: (link address, what was wrong).
        let mut breaks: Vec<(u64, String)> = Vec::new();
        while let Some((from, back)) = todo.pop() {
            let mut p = from;
            let mut hole = false;
            for _ in 0..4_000_000 {
                let dir = if back { "prev" } else { "next" };
                let link = p.wrapping_add(tasks_off) + if back { 8 } else { 0 };
                let next = match self.read_u64(link) {
                    Ok(n) if n != 0 => n.wrapping_sub(tasks_off),
                    Ok(_) => {
                        breaks.push((link, format!("NULL {dir} pointer")));
                        hole = true;
                        break;
                    }
                    Err(e) => {
                        breaks.push((link, format!("unreadable: {e}")));
                        hole = true;
                        break;
                    }
                };
                // Folklore: a list_head is sound when next->prev == this node (the check of
                // CONFIG_DEBUG_LIST's __list_del_entry_valid(), and drgn's and crash's list
                // walkers); a pointer that fails it is damage, not a task, and everything past
                // it is another walk's to find. Pinned by `lab_damaged_task_list_is_named`.
                let node = p.wrapping_add(tasks_off);
                let back_link = next.wrapping_add(tasks_off) + if back { 0 } else { 8 };
                match self.read_u64(back_link) {
                    Ok(b) if b == node => {}
                    Ok(b) => {
                        breaks.push((
                            link,
                            format!(
                                "bad {dir} pointer {:#x}: it points back to {b:#x}, not {node:#x}",
                                next.wrapping_add(tasks_off)
                            ),
                        ));
                        hole = true;
                        break;
                    }
                    Err(e) => {
                        breaks.push((
                            link,
                            format!(
                                "{dir} pointer {:#x} leads to unreadable memory: {e}",
                                next.wrapping_add(tasks_off)
                            ),
                        ));
                        hole = true;
                        break;
                    }
                }
                if next == init || seen.contains(&next) {
                    break;
                }
                self.add_task(next, thread_walk, group_off, &mut seen, &mut addrs);
                p = next;
            }
            if hole && !seeded {
                seeded = true;
                todo.push((init, true));
                // Tasks between two holes: the pid namespace's idr has every task's `struct
                // pid` (another slab), and each pid its task; walk on from those.
                for t in self.tasks_by_pid() {
                    if !seen.contains(&t) && self.read_u64(t + tasks_off).is_ok() {
                        self.add_task(t, thread_walk, group_off, &mut seen, &mut addrs);
                        todo.push((t, false));
                        todo.push((t, true));
                    }
                }
            }
        }
        // Per-CPU: runqueue curr (active) and idle.
        let mut active = std::collections::HashMap::new();
        let cpus = self.present_cpus();
        if self.symbol("runqueues").is_some() {
            for &c in &cpus {
                if let Ok(rq) = self.per_cpu("runqueues", c) {
                    if let Ok(curr) = self.read_member(rq, "rq", "curr") {
                        active.insert(curr, c);
                    }
                    if let Ok(idle) = self.read_member(rq, "rq", "idle") {
                        if idle != 0 && seen.insert(idle) {
                            addrs.push(idle);
                        }
                    }
                }
            }
        }
        let state_m = if self.has_member("task_struct", "__state") {
            "__state" // 5.14, commit 2f064a59a11f
        } else {
            "state"
        };
        // thread_info.cpu with THREAD_INFO_IN_TASK since 5.16 (commit bcf9033e5449), else
        // task_struct.cpu.
        let cpu_m = if self.has_member("task_struct", "thread_info.cpu") {
            "thread_info.cpu"
        } else {
            "cpu"
        };
        let comm_off = self.offset_of("task_struct", "comm")?;
        let mut out = Vec::with_capacity(addrs.len());
        for t in addrs {
            let Ok(pid) = self.read_member(t, "task_struct", "pid") else {
                continue;
            };
            let pid = pid as u32 as i32;
            let tgid = self.read_member(t, "task_struct", "tgid").unwrap_or(0) as u32 as i32;
            let parent = self
                .read_member(t, "task_struct", "real_parent")
                .unwrap_or(0);
            let ppid = if pid != 0 && parent != 0 && parent != t {
                self.read_member(parent, "task_struct", "pid").unwrap_or(0) as u32 as i32
            } else {
                0
            };
            let st = self.read_member(t, "task_struct", state_m).unwrap_or(0) as u32 as u64;
            let ex = self
                .read_member(t, "task_struct", "exit_state")
                .unwrap_or(0) as u32 as u64;
            let cpu = self.read_member(t, "task_struct", cpu_m).unwrap_or(0) as u32;
            let comm = self.read_cstr(t + comm_off, 16).unwrap_or_default();
            let act = active.get(&t).copied();
            out.push(Task {
                pid,
                ppid,
                tgid,
                cpu: act.unwrap_or(cpu),
                state: state_letter(st, ex).to_string(),
                comm: String::from_utf8_lossy(&comm).into_owned(),
                task: t,
                active: act.is_some(),
            });
        }
        out.sort_by_key(|t| (t.pid, t.cpu, t.task));
        self.warn_task_list(&breaks, &out);
        Ok(out)
    }

    /// Say where the task list broke and how many tasks the answer may lack: `nr_threads`
    /// (kernel/fork.c, every thread but the idle tasks) is the count the list should have.
    fn warn_task_list(&self, breaks: &[(u64, String)], tasks: &[Task]) {
        use crate::warnings::{Kind, Warning};
        let shown = tasks.iter().filter(|t| t.pid != 0).count();
        let expected = self
            .symbol("nr_threads")
            .and_then(|a| self.read_u32(a).ok())
            .map(|n| n as usize);
        let Some(&(link, ref why)) = breaks.first() else {
            if let Some(n) = expected.filter(|&n| n > shown + shown / 10 + 2) {
                self.warnings.push(
                    Warning::new(
                        Kind::DamagedList,
                        format!("task list: {shown} of {n} tasks (nr_threads) found"),
                    )
                    .what("init_task.tasks"),
                );
            }
            return;
        };
        let count = match expected {
            Some(n) if n > shown => format!("; {shown} of {n} tasks (nr_threads) shown"),
            Some(n) => format!(
                "; {shown} tasks shown (nr_threads {n}), found past the break through the pid table"
            ),
            None => format!("; {shown} tasks shown, the list may hold more"),
        };
        let more = if breaks.len() > 1 {
            format!(" (and {} more breaks)", breaks.len() - 1)
        } else {
            String::new()
        };
        self.warnings.push(
            Warning::new(
                Kind::DamagedList,
                format!("task list ends at {link:#x} ({why}){more}{count}"),
            )
            .what("init_task.tasks")
            .range(link, link + 8),
        );
    }

    /// Record a task and its threads: `signal->thread_head` (3.14+, the only list since 6.7
    /// removed `thread_group`), else `thread_group`.
    fn add_task(
        &self,
        p: u64,
        thread_walk: Option<(u64, u64, u64)>,
        group_off: Option<u64>,
        seen: &mut std::collections::HashSet<u64>,
        addrs: &mut Vec<u64>,
    ) {
        if seen.insert(p) {
            addrs.push(p);
        }
        let (head, node_off) = match (thread_walk, group_off) {
            (Some((sig_off, head_off, node_off)), _) => match self.read_u64(p + sig_off) {
                Ok(sig) if sig != 0 => (sig + head_off, node_off),
                _ => return,
            },
            (None, Some(go)) => (p + go, go),
            _ => return,
        };
        let mut n = self.read_u64(head).unwrap_or(head);
        let mut g = 0;
        while n != head && n != 0 && g < 100_000 {
            let t = n.wrapping_sub(node_off);
            if seen.insert(t) {
                addrs.push(t);
            }
            n = self.read_u64(n).unwrap_or(head);
            g += 1;
        }
    }

    /// Every task reachable from `init_pid_ns.idr`: the idr (an xarray since 4.20, commit
    /// 0a835c4f090a; a radix tree of the same layout before) maps each pid number to its
    /// `struct pid`, whose `tasks[PIDTYPE_PID]` hlist holds the task (`pid_links[0]`), as drgn's
    /// `for_each_task()` walks it. Unreadable nodes are skipped; used when the `tasks` list has
    /// holes.
    ///
    /// Folklore: an xarray entry with bits `10` is an internal entry: a node pointer (`entry -
    /// 2`) when above 4096, else a sibling or retry entry; bit 0 set is a value entry (include/
    /// linux/xarray.h, since 4.20). Pinned by `lab_log_sys_ps_on_every_dump_and_format` on the
    /// filtered dumps of 6.12.
    pub fn tasks_by_pid(&self) -> Vec<u64> {
        let mut out = Vec::new();
        let mut f = || -> Result<(), Error> {
            let ns = self.need_symbol("init_pid_ns")?;
            let idr = ns + self.offset_of("pid_namespace", "idr")?;
            let head_off = self.offset_of("idr", "idr_rt")?
                + self
                    .offset_of("xarray", "xa_head")
                    .or_else(|_| self.offset_of("radix_tree_root", "rnode"))?;
            let node_t = if self.has_member("xa_node", "slots") {
                "xa_node"
            } else {
                "radix_tree_node"
            };
            let slots = self.field(node_t, "slots")?;
            let types = self.types()?;
            let nslots = match types.resolve(slots.ty).1 {
                crate::types::Type::Array { len, .. } => len.min(256),
                _ => 64,
            };
            let tasks_off = self.offset_of("pid", "tasks")?;
            let link_off = self.offset_of("task_struct", "pid_links")?;
            let mut stack = vec![(self.read_u64(idr + head_off)?, 0u32)];
            let mut pids = Vec::new();
            // (a budget of nodes: a corrupted tree may point back at itself)
            let mut nodes = 0;
            while let Some((e, depth)) = stack.pop() {
                if e == 0 || e & 1 == 1 || depth > 16 || pids.len() > 4_000_000 {
                    continue;
                }
                if e & 3 == 2 {
                    if e <= 4096 {
                        continue; // sibling / retry entry
                    }
                    nodes += 1;
                    if nodes > 1 << 18 {
                        break;
                    }
                    let node = e - 2;
                    let Ok(b) = self.read_vec(node.wrapping_add(slots.offset), nslots as usize * 8)
                    else {
                        continue;
                    };
                    for c in b.chunks_exact(8).rev() {
                        let v = u64::from_le_bytes(c.try_into().unwrap_or_default());
                        stack.push((v, depth + 1));
                    }
                    continue;
                }
                pids.push(e);
            }
            for pid in pids {
                if let Ok(first) = self.read_u64(pid + tasks_off) {
                    if first != 0 {
                        out.push(first.wrapping_sub(link_off));
                    }
                }
            }
            Ok(())
        };
        let _ = f();
        out
    }

    /// The task that panicked: the active task of the CPU whose registers the kdump saved
    /// first... or, for QEMU dumps, the active task whose stack holds panic(). Here: the
    /// active task on the crashing CPU from `crashing_cpu`/`panic_cpu`.
    pub fn panic_task(&self) -> Result<Option<Task>, Error> {
        let cpu = self
            .symbol("panic_cpu")
            .and_then(|a| self.read_u32(a).ok())
            .filter(|&c| c != u32::MAX)
            .or_else(|| {
                self.symbol("crashing_cpu")
                    .and_then(|a| self.read_u32(a).ok())
                    .filter(|&c| c != u32::MAX)
            });
        let Some(cpu) = cpu else {
            return Ok(None);
        };
        Ok(self.tasks()?.into_iter().find(|t| t.active && t.cpu == cpu))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn state_letters() {
        assert_eq!(state_letter(0, 0), 'R');
        assert_eq!(state_letter(1, 0), 'S');
        assert_eq!(state_letter(2, 0), 'D');
        assert_eq!(state_letter(0x402, 0), 'I');
        assert_eq!(state_letter(4, 0), 'T');
        assert_eq!(state_letter(8, 0), 't');
        assert_eq!(state_letter(0, 32), 'Z');
        assert_eq!(state_letter(0x40, 0), 'P');
        assert_eq!(state_letter(0x1000, 0), 'D');
        // freezable: TASK_IDLE|TASK_FREEZABLE, INTERRUPTIBLE|TASK_FREEZABLE; frozen
        assert_eq!(state_letter(0x2402, 0), 'I');
        assert_eq!(state_letter(0x2001, 0), 'S');
        assert_eq!(state_letter(0x8000, 0), 'D');
        assert_eq!(state_letter(0x10, 0x10), 'X');
    }
}
