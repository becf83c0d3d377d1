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
/// since 4.14); TASK_IDLE (UNINTERRUPTIBLE|NOLOAD = 0x402) reports as 'I', and
/// TASK_RTLOCK_WAIT (0x1000, 5.15+) as 'D'. These are #defines, absent from BTF and DWARF.
/// Pinned by `tests::state_letters` and the lab's drgn oracle.
pub fn state_letter(state: u64, exit_state: u64) -> char {
    const REPORT: u64 = 0x7f;
    let idx = if state == 0x402 {
        8
    } else if state == 0x1000 {
        2
    } else {
        let s = (state | exit_state) & REPORT;
        64 - s.leading_zeros() as usize
    };
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
        let mut p = init;
        for _ in 0..1_000_000 {
            if seen.insert(p) {
                addrs.push(p);
            }
            // threads of p
            if let Some((sig_off, head_off, node_off)) = thread_walk {
                if let Ok(sig) = self.read_u64(p + sig_off) {
                    if sig != 0 {
                        let head = sig + head_off;
                        let mut n = self.read_u64(head).unwrap_or(head);
                        let mut g = 0;
                        while n != head && n != 0 && g < 100_000 {
                            let t = n - node_off;
                            if seen.insert(t) {
                                addrs.push(t);
                            }
                            n = self.read_u64(n).unwrap_or(head);
                            g += 1;
                        }
                    }
                }
            } else if let Some(go) = group_off {
                let head = p + go;
                let mut n = self.read_u64(head).unwrap_or(head);
                let mut g = 0;
                while n != head && n != 0 && g < 100_000 {
                    let t = n - go;
                    if seen.insert(t) {
                        addrs.push(t);
                    }
                    n = self.read_u64(n).unwrap_or(head);
                    g += 1;
                }
            }
            let Ok(next) = self.read_u64(p + tasks_off) else {
                // A hole in a truncated dump: keep the tasks found so far.
                break;
            };
            if next == 0 {
                break;
            }
            p = next - tasks_off;
            if p == init {
                break;
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
        Ok(out)
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
    }
}
