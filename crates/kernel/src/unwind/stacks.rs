//! Start points: which registers each task's walk starts from.
//!
//! - A task running on a CPU at the time of the dump starts from that CPU's saved registers:
//!   the `NT_PRSTATUS` notes (kdump's `crash_save_cpu()`, one per CPU in CPU order; QEMU's
//!   `dump-guest-memory` writes one per vCPU in vCPU order too, with its `QEMU` notes).
//! - A sleeping task starts from `task->thread.sp`, which points at the
//!   `struct inactive_task_frame` that `__switch_to_asm` pushed: the saved callee-saved
//!   registers, `bp`, and `ret_addr` (the return into `__schedule`, or `ret_from_fork` for a
//!   task that never ran).

use super::{Regs, Start, IP, SP};
use crate::mem::Memory;
use crate::program::{Error, Program};

/// The registers the dump saved for `cpu`.
///
/// Folklore: QEMU dumps carry both `CORE`/`NT_PRSTATUS` (general registers) and `QEMU`
/// notes (with CR3 and the segment bases) per vCPU; kdump's `/proc/vmcore` has one
/// `NT_PRSTATUS` per possible CPU from `crash_notes`, in CPU order, with `pr_pid` the pid of
/// the task that was running. When a CPU's note is all zero (a CPU that never reached
/// `crash_save_cpu()`), there is nothing to start from. Pinned by `lab_bt_matches_oracles`.
pub fn cpu_regs(prog: &Program, cpu: u32) -> Option<Regs> {
    cpu_regs_checked(prog, cpu).ok().flatten()
}

/// [`cpu_regs`], telling a note that is lost or short (`Err`, the reason) from one that is
/// there but all zero (`Ok(None)`: the CPU saved nothing).
///
/// Folklore: a short or missing note must not shift the others: the n-th `NT_PRSTATUS` is the
/// n-th CPU's only while every note is there (kmortem_dump::Dump::prstatus_notes keeps the
/// places). Pinned by `lab_lost_prstatus_notes_are_named`.
pub fn cpu_regs_checked(prog: &Program, cpu: u32) -> Result<Option<Regs>, String> {
    let notes = prog.dump.prstatus_notes();
    let cpus = prog.present_cpus();
    // One note per CPU: the n-th note is the n-th CPU. Otherwise (kexec-tools drops the notes
    // of CPUs that saved nothing) match `pr_pid` with the pid of the CPU's current task.
    let index = if notes.len() == cpus.len() {
        cpus.iter().position(|&c| c == cpu)
    } else {
        current_task(prog, cpu)
            .and_then(|t| prog.read_member(t, "task_struct", "pid").ok())
            .filter(|&pid| pid != 0)
            .and_then(|pid| {
                notes
                    .iter()
                    .position(|n| n.is_some_and(|n| n.pid as u64 == pid))
            })
            .or_else(|| {
                (notes.len() > cpus.len())
                    .then(|| cpus.iter().position(|&c| c == cpu))
                    .flatten()
            })
    };
    match index.and_then(|i| notes.get(i).map(|n| (i, n))) {
        Some((_, Some(p))) => {
            let mut r = Regs::default();
            r.0.copy_from_slice(&p.regs[..21]);
            if r.0[IP] != 0 || r.0[SP] != 0 {
                return Ok(Some(r));
            }
            return Ok(None);
        }
        Some((i, None)) => {
            return Err(format!(
                "CPU {cpu}'s registers are missing: its NT_PRSTATUS note (note {i}) is too short"
            ))
        }
        None => {}
    }
    let q = prog.dump.qemu_cpus();
    let Some(c) = q.get(cpu as usize) else {
        return Err(format!(
            "CPU {cpu}'s registers are missing: no NT_PRSTATUS note for it ({} notes for {} CPUs)",
            notes.len(),
            cpus.len()
        ));
    };
    prog.warnings.push(
        crate::warnings::Warning::new(
            crate::warnings::Kind::MissingRegisters,
            format!(
                "CPU {cpu} has no NT_PRSTATUS note ({} notes for {} CPUs): its walk starts from QEMU's CPU state (rip and rsp only)",
                notes.len(),
                cpus.len()
            ),
        )
        .what("NT_PRSTATUS"),
    );
    let mut r = Regs::default();
    r.0[IP] = c.rip;
    r.0[SP] = c.rsp;
    r.0[super::CS] = 0x10;
    Ok(Some(r))
}

/// The task running on `cpu`: per-CPU `current_task` (before 6.2) or `pcpu_hot.current_task`
/// (6.2+, commit e57ef2ed97c1 moved it into `struct pcpu_hot`), probed by symbol. Pinned by
/// `lab_orc_encoding_and_current_task` (= the runqueue's `curr` on every CPU of 6.1 and 6.12).
pub fn current_task(prog: &Program, cpu: u32) -> Option<u64> {
    if prog.symbol("current_task").is_some() {
        let a = prog.per_cpu("current_task", cpu).ok()?;
        return prog.read_u64(a).ok().filter(|&t| t != 0);
    }
    if prog.symbol("pcpu_hot").is_some() {
        let off = prog.offset_of("pcpu_hot", "current_task").ok()?;
        let a = prog.per_cpu("pcpu_hot", cpu).ok()?;
        return prog.read_u64(a + off).ok().filter(|&t| t != 0);
    }
    let rq = prog.per_cpu("runqueues", cpu).ok()?;
    prog.read_member(rq, "rq", "curr").ok()
}

/// Start of a sleeping task: `thread.sp` -> `struct inactive_task_frame`.
pub fn inactive_start(prog: &Program, task: u64) -> Result<Start, Error> {
    let sp = prog.read_member(task, "task_struct", "thread.sp")?;
    // struct inactive_task_frame (arch/x86/include/asm/switch_to.h, since 4.9 commit
    // 0100301bfdf5): on 6.1 x86_64 it is r15 r14 r13 r12 bx bp ret_addr. Its layout has
    // changed before (a `flags` word came and went), so the members are probed; the 6.1
    // layout is only the fallback when the kernel's types lack the struct.
    let (bp_off, ra_off, size) = match (
        prog.offset_of("inactive_task_frame", "bp"),
        prog.offset_of("inactive_task_frame", "ret_addr"),
        prog.struct_id("inactive_task_frame"),
    ) {
        (Ok(b), Ok(r), Ok(id)) => (b, r, prog.types()?.size_of(id)),
        _ => (5 * 8, 6 * 8, 7 * 8),
    };
    let bp = prog.read_u64(sp + bp_off)?;
    let ip = prog.read_u64(sp + ra_off)?;
    let rff = prog.symbol("ret_from_fork");
    Ok(Start::Inactive {
        ip,
        sp: sp + size,
        bp,
        slot: sp + ra_off,
        // A task that never ran "returns" into ret_from_fork: not after a call.
        signal: rff == Some(ip),
    })
}

/// Which stack `addr` is on, for CPU `cpu`: `Some("IRQ stack")`, `Some("NMI exception
/// stack")`, ... or `None` for a task stack (crash's `--- <IRQ stack> ---` markers).
///
/// Folklore: the per-CPU IRQ stack pointer is `hardirq_stack_ptr` (5.x-6.1, a per-CPU
/// variable) or `pcpu_hot.hardirq_stack_ptr` (6.2+, commit 7b3dd7d8c9e3), pointing 8 bytes
/// below the top of the 16 KiB IRQ stack (irq_init_percpu_irqstack()); softirqs run on it too
/// (do_softirq_own_stack). The IST exception stacks are in the cpu_entry_area
/// (0xfffffe0000000000..), laid out by `struct cea_exception_stacks` (DF, NMI, DB, MCE, VC,
/// VC2 with guard pages, since 5.2), found through the per-CPU `cea_exception_stacks` pointer.
/// Probed by symbol and member. Pinned by `lab_bt_a_covers_every_cpu` (crash cannot read
/// those stacks on QEMU dumps).
pub fn stack_kind(prog: &Program, cpu: u32, addr: u64) -> Option<String> {
    let irq_ptr = if prog.symbol("hardirq_stack_ptr").is_some() {
        prog.per_cpu("hardirq_stack_ptr", cpu)
            .ok()
            .and_then(|a| prog.read_u64(a).ok())
    } else {
        prog.offset_of("pcpu_hot", "hardirq_stack_ptr")
            .ok()
            .and_then(|o| Some(prog.per_cpu("pcpu_hot", cpu).ok()? + o))
            .and_then(|a| prog.read_u64(a).ok())
    };
    if let Some(top) = irq_ptr.map(|p| p.wrapping_add(8)) {
        if addr < top && addr >= top.wrapping_sub(16 << 10) {
            return Some("IRQ stack".into());
        }
    }
    if (0xfffffe00_00000000..0xfffffe80_00000000).contains(&addr) {
        let base = prog
            .per_cpu("cea_exception_stacks", cpu)
            .ok()
            .and_then(|a| prog.read_u64(a).ok());
        if let (Some(base), Ok(types)) = (base, prog.types()) {
            for (m, name) in [
                ("DF_stack", "double-fault"),
                ("NMI_stack", "NMI"),
                ("DB_stack", "debug"),
                ("MCE_stack", "machine-check"),
                ("VC_stack", "VC"),
                ("VC2_stack", "VC2"),
            ] {
                if let Ok(f) = prog.field("cea_exception_stacks", m) {
                    let lo = base + f.offset;
                    if (lo..lo + types.size_of(f.ty)).contains(&addr) {
                        return Some(format!("{name} exception stack"));
                    }
                }
            }
        }
        return Some("exception stack".into());
    }
    None
}
