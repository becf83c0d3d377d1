//! Stack unwinding for x86_64 kernels: ORC (from the dump's memory), frame pointers as the
//! fallback, exception/interrupt frames (`struct pt_regs`), and the start points of every
//! task (CPU register notes for running tasks, `thread.sp` for sleeping ones).
//!
//! The unwinder only uses [`Program`]'s symbol lookup and memory reads (never the vmlinux
//! file), so it works the same when symbols come from the dump's kallsyms.
//!
//! The algorithm follows the kernel's own `unwind_next_frame()` (arch/x86/kernel/unwind_orc.c),
//! which is what produced the console's `Call Trace:`:
//! - the ORC entry of a caller frame is looked up at `ip - 1` (the call instruction), except
//!   after a signal/exception frame, where `ip` is where the CPU stopped;
//! - `CALL` frames pop a return address at `CFA - 8`; `REGS` frames are a full `pt_regs` at
//!   the CFA, `REGS_PARTIAL` an iret frame (`pt_regs` starting 128 bytes below);
//! - a `pt_regs` with a user-mode CS (`cs & 3`) ends the walk: the user-space boundary.
//!
//! Stacks switch (IRQ stack -> task stack, exception stacks in the cpu_entry_area at
//! 0xfffffe..., NMI) through the ORC data itself: `call_on_irqstack` saves the previous rsp at
//! the top of the IRQ stack (an `SP_INDIRECT` entry), and the entry code's `REGS` hints point
//! at the pt_regs pushed on the exception stack, whose `sp` is the interrupted stack.

pub mod cfi;
pub mod orc;
pub mod stacks;

use crate::mem::{Memory, KERNEL_IMAGE_END};
use crate::program::Program;
use orc::{OrcEntry, OrcTable, OrcType};
use std::sync::OnceLock;

/// Registers in `struct pt_regs` order (the order of `NT_PRSTATUS`'s first 21 words too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Regs(pub [u64; 21]);

pub const R15: usize = 0;
pub const R14: usize = 1;
pub const R13: usize = 2;
pub const R12: usize = 3;
pub const BP: usize = 4;
pub const BX: usize = 5;
pub const R11: usize = 6;
pub const R10: usize = 7;
pub const R9: usize = 8;
pub const R8: usize = 9;
pub const AX: usize = 10;
pub const CX: usize = 11;
pub const DX: usize = 12;
pub const SI: usize = 13;
pub const DI: usize = 14;
pub const ORIG_AX: usize = 15;
pub const IP: usize = 16;
pub const CS: usize = 17;
pub const FLAGS: usize = 18;
pub const SP: usize = 19;
pub const SS: usize = 20;

/// Size of `struct pt_regs` on x86_64, and the offset of its iret frame (`ip`).
pub const PT_REGS_SIZE: u64 = 21 * 8;
pub const IRET_FRAME_OFFSET: u64 = 16 * 8;

pub const REG_NAMES: [&str; 21] = [
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi",
    "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss",
];

impl Regs {
    pub fn from_bytes(b: &[u8]) -> Option<Regs> {
        let mut r = [0u64; 21];
        for (i, v) in r.iter_mut().enumerate() {
            *v = u64::from_le_bytes(b.get(i * 8..i * 8 + 8)?.try_into().ok()?);
        }
        Some(Regs(r))
    }
    pub fn user_mode(&self) -> bool {
        self.0[CS] & 3 != 0
    }
    /// A register by its DWARF number (x86_64 psABI: rax rdx rcx rbx rsi rdi rbp rsp r8..r15,
    /// 16 = return address).
    pub fn dwarf(&self, n: u16) -> Option<u64> {
        const MAP: [usize; 17] = [
            AX, DX, CX, BX, SI, DI, BP, SP, R8, R9, R10, R11, R12, R13, R14, R15, IP,
        ];
        MAP.get(n as usize).map(|&i| self.0[i])
    }
}

/// Which registers of a frame are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// All of them (the CPU's saved registers, or a full `pt_regs`).
    All,
    /// The iret frame only (ip, cs, flags, sp, ss).
    Iret,
    /// ip, sp, and bp (when the unwind data recovered it).
    IpSpBp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub pc: u64,
    /// The stack pointer in this frame.
    pub sp: u64,
    /// crash's `[...]` column: the stack slot the pc was read from (a return address), or the
    /// stack pointer for frames that start from registers.
    pub stack_address: u64,
    /// The frame's canonical frame address (sp before the call that made this frame), when
    /// the caller was found.
    pub cfa: Option<u64>,
    /// Registers (see `known`).
    pub regs: Regs,
    pub known: Known,
    /// The frame was interrupted by an exception or interrupt: `regs` is its `pt_regs`.
    pub exception: bool,
    /// Where that `pt_regs` lies in memory.
    pub regs_addr: Option<u64>,
    /// `pc` is a return address: look its function and line up at `pc - 1`.
    pub return_address: bool,
    /// No ORC entry: this frame's caller came from frame pointers.
    pub frame_pointer: bool,
}

impl Frame {
    pub fn lookup_pc(&self) -> u64 {
        if self.return_address {
            self.pc.wrapping_sub(1)
        } else {
            self.pc
        }
    }
    pub fn reg(&self, i: usize) -> Option<u64> {
        match self.known {
            Known::All => Some(self.regs.0[i]),
            Known::Iret => matches!(i, IP | CS | FLAGS | SP | SS).then_some(self.regs.0[i]),
            Known::IpSpBp => matches!(i, IP | SP | BP).then_some(self.regs.0[i]),
        }
    }
}

/// How a walk ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    /// The entry `pt_regs` of a user-space task (`cs & 3`).
    UserSpace,
    /// The ORC end-of-stack mark (kernel thread entry, `ret_from_fork`, idle).
    EndOfStack,
    /// The unwind data or memory failed; the reason.
    Error(String),
    /// The frame limit.
    TooDeep,
}

#[derive(Debug, Clone)]
pub struct Trace {
    pub frames: Vec<Frame>,
    /// The user-space registers at the kernel entry, when the walk reached them.
    pub user_regs: Option<Regs>,
    pub end: End,
}

/// Where a walk starts.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    /// All registers known (a CPU note, or a pt_regs).
    Regs(Regs),
    /// A sleeping task: `thread.sp` points at `struct inactive_task_frame`.
    Inactive {
        ip: u64,
        sp: u64,
        bp: u64,
        slot: u64,
        signal: bool,
    },
}

const MAX_FRAMES: usize = 256;

/// The ORC tables of the kernel and its modules, read from the dump on first use.
#[derive(Default)]
pub struct Unwinder {
    kernel: OnceLock<Option<OrcTable>>,
    modules: OnceLock<Vec<OrcTable>>,
}

impl Unwinder {
    pub fn new() -> Unwinder {
        Unwinder::default()
    }

    fn kernel_table(&self, prog: &Program) -> Option<&OrcTable> {
        self.kernel
            .get_or_init(|| {
                let ip = prog.symbol("__start_orc_unwind_ip")?;
                let ip_end = prog.symbol("__stop_orc_unwind_ip")?;
                let orc = prog.symbol("__start_orc_unwind")?;
                let n = (ip_end.checked_sub(ip)? / 4) as usize;
                let enc = orc::probe_encoding(prog);
                let lo = prog
                    .symbol("_stext")
                    .or_else(|| prog.symbol("_text"))
                    .unwrap_or(0);
                OrcTable::read(prog, ip, orc, n, enc, (lo, KERNEL_IMAGE_END))
            })
            .as_ref()
    }

    fn module_tables(&self, prog: &Program) -> &[OrcTable] {
        self.modules.get_or_init(|| {
            let enc =
                orc::probe_encoding(prog).or_else(|| self.kernel_table(prog).map(|t| t.encoding));
            let mut out = Vec::new();
            for m in prog.modules() {
                // struct mod_arch_specific (x86): orc_unwind_ip, orc_unwind, num_orcs
                // (CONFIG_UNWINDER_ORC, since 4.14 commit ee9f8fce9964). Probed per member.
                let (Ok(ip), Ok(orc), Ok(n)) = (
                    prog.read_member(m.addr, "module", "arch.orc_unwind_ip"),
                    prog.read_member(m.addr, "module", "arch.orc_unwind"),
                    prog.read_member(m.addr, "module", "arch.num_orcs"),
                ) else {
                    continue;
                };
                if ip == 0 || orc == 0 {
                    continue;
                }
                if let Some(mut t) = OrcTable::read(prog, ip, orc, n as usize, enc, (0, 0)) {
                    let first = t.ips.first().copied().unwrap_or(0);
                    let last = t.ips.last().copied().unwrap_or(0);
                    let (b, e) = if m.size > 0 {
                        (m.base, m.base + m.size)
                    } else {
                        (first, last + 1)
                    };
                    t.range = (b.min(first), e.max(last + 1));
                    out.push(t);
                }
            }
            out
        })
    }

    /// Is there ORC data at all (vmlinux tables readable from the dump)?
    pub fn has_orc(&self, prog: &Program) -> bool {
        self.kernel_table(prog).is_some()
    }

    /// The ORC entry for an ip: None when no table covers it.
    pub fn find(&self, prog: &Program, ip: u64) -> Option<OrcEntry> {
        if ip == 0 {
            return Some(orc::NULL_ENTRY);
        }
        if let Some(k) = self.kernel_table(prog) {
            if k.contains(ip) {
                return k.find(ip);
            }
        }
        self.module_tables(prog)
            .iter()
            .find(|t| t.contains(ip))
            .and_then(|t| t.find(ip))
    }

    /// Is `ip` the first byte of a function that was just called (the return address at `sp`
    /// is a kernel address with unwind data, right after a call)?
    fn called_just_now(&self, prog: &Program, ip: u64, sp: u64) -> bool {
        if !matches!(prog.lookup(ip), Some((_, 0))) {
            return false;
        }
        let Ok(ra) = prog.read_u64(sp) else {
            return false;
        };
        ra >> 63 == 1
            && prog.lookup(ra).is_some()
            && matches!(self.find(prog, ra.wrapping_sub(1)), Some(e)
                if matches!(e.kind, OrcType::Call | OrcType::Regs | OrcType::RegsPartial))
    }

    /// Walk a stack.
    pub fn unwind(&self, prog: &Program, start: Start) -> Trace {
        let mut frames: Vec<Frame> = Vec::new();
        let (mut regs, mut known, mut signal, mut slot) = match start {
            Start::Regs(r) => (r, Known::All, true, r.0[SP]),
            Start::Inactive {
                ip,
                sp,
                bp,
                slot,
                signal,
            } => {
                let mut r = Regs::default();
                r.0[IP] = ip;
                r.0[SP] = sp;
                r.0[BP] = bp;
                (r, Known::IpSpBp, signal, slot)
            }
        };
        let mut exception = false;
        let mut regs_addr = None;
        let end = loop {
            if frames.len() >= MAX_FRAMES {
                break End::TooDeep;
            }
            let ip = regs.0[IP];
            let sp = regs.0[SP];
            if known == Known::All && regs.user_mode() {
                return Trace {
                    frames,
                    user_regs: Some(regs),
                    end: End::UserSpace,
                };
            }
            frames.push(Frame {
                pc: ip,
                sp,
                stack_address: slot,
                cfa: None,
                regs,
                known,
                exception,
                regs_addr,
                return_address: !signal,
                frame_pointer: false,
            });
            let lookup = if signal { ip } else { ip.wrapping_sub(1) };
            let (mut orc, fp) = match self.find(prog, lookup) {
                Some(o) => (o, false),
                None => (orc::FP_ENTRY, true),
            };
            // Folklore: the retpoline thunks (`__x86_indirect_thunk_<reg>`, arch/x86/lib/
            // retpoline.S) carry UNWIND_HINT_EMPTY (6.1: sp_reg undefined + end, read as the
            // end of the stack) or UNWIND_HINT_UNDEFINED (6.4+), because objtool cannot
            // describe their speculation trap. A CPU saved while its ip sits at such a symbol's
            // first byte (QEMU's dump-guest-memory of a CPU looping in panic()'s delay loop,
            // seen on the 6.1 `paging` lab scenario) has just been called: the return address is
            // at `sp`. crash finds the frames above by scanning the stack; ORC alone (and drgn)
            // stop. Only for the innermost frame, at a symbol start, and only when `[sp]` is an
            // address the tables describe. Pinned by `lab_bt_matches_oracles` (paging, 6.1).
            if matches!(orc.kind, OrcType::EndOfStack | OrcType::Undefined)
                && frames.len() == 1
                && known == Known::All
                && self.called_just_now(prog, ip, sp)
            {
                orc = orc::NULL_ENTRY;
            }
            if let Some(f) = frames.last_mut() {
                f.frame_pointer = fp;
            }
            match orc.kind {
                OrcType::EndOfStack => break End::EndOfStack,
                OrcType::Undefined => break End::Error(format!("no unwind data at {lookup:#x}")),
                _ => {}
            }
            let full = known == Known::All;
            let get = |i: usize| -> Option<u64> { full.then_some(regs.0[i]) };
            let (base, indirect) = match orc.sp_reg {
                orc::REG_SP => (Some(sp.wrapping_add(orc.sp_offset as i64 as u64)), false),
                orc::REG_BP => (
                    Some(regs.0[BP].wrapping_add(orc.sp_offset as i64 as u64)),
                    false,
                ),
                orc::REG_SP_INDIRECT => (Some(sp), true),
                orc::REG_BP_INDIRECT => (
                    Some(regs.0[BP].wrapping_add(orc.sp_offset as i64 as u64)),
                    true,
                ),
                orc::REG_R10 => (
                    get(R10).map(|v| v.wrapping_add(orc.sp_offset as i64 as u64)),
                    false,
                ),
                orc::REG_R13 => (
                    get(R13).map(|v| v.wrapping_add(orc.sp_offset as i64 as u64)),
                    false,
                ),
                orc::REG_DI => (
                    get(DI).map(|v| v.wrapping_add(orc.sp_offset as i64 as u64)),
                    false,
                ),
                orc::REG_DX => (
                    get(DX).map(|v| v.wrapping_add(orc.sp_offset as i64 as u64)),
                    false,
                ),
                r => break End::Error(format!("unknown ORC sp_reg {r} at {lookup:#x}")),
            };
            let Some(mut new_sp) = base else {
                break End::Error(format!(
                    "ORC needs a register this frame lost at {lookup:#x}"
                ));
            };
            if indirect {
                match prog.read_u64(new_sp) {
                    Ok(v) => new_sp = v,
                    Err(e) => {
                        break End::Error(format!("read of stack at {new_sp:#x} failed: {e}"))
                    }
                }
                if orc.sp_reg == orc::REG_SP_INDIRECT {
                    new_sp = new_sp.wrapping_add(orc.sp_offset as i64 as u64);
                }
            }
            let prev_bp = regs.0[BP];
            let mut next = Regs::default();
            let next_known;
            let next_slot;
            match orc.kind {
                OrcType::Call => {
                    let ra_slot = new_sp.wrapping_sub(8);
                    let ra = match prog.read_u64(ra_slot) {
                        Ok(v) => v,
                        Err(e) => {
                            break End::Error(format!("read of stack at {ra_slot:#x} failed: {e}"))
                        }
                    };
                    next.0[IP] = ra;
                    next.0[SP] = new_sp;
                    next_known = Known::IpSpBp;
                    next_slot = ra_slot;
                    signal = orc.signal;
                    exception = false;
                    regs_addr = None;
                }
                OrcType::Regs | OrcType::RegsPartial => {
                    let at = if orc.kind == OrcType::Regs {
                        new_sp
                    } else {
                        new_sp.wrapping_sub(IRET_FRAME_OFFSET)
                    };
                    let r = match prog.read_vec(at, PT_REGS_SIZE as usize) {
                        Ok(b) => Regs::from_bytes(&b).unwrap_or_default(),
                        Err(e) => {
                            break End::Error(format!("read of pt_regs at {at:#x} failed: {e}"))
                        }
                    };
                    if let Some(f) = frames.last_mut() {
                        f.cfa = Some(new_sp);
                    }
                    if r.user_mode() {
                        return Trace {
                            frames,
                            user_regs: Some(r),
                            end: End::UserSpace,
                        };
                    }
                    next = r;
                    next_known = if orc.kind == OrcType::Regs {
                        Known::All
                    } else {
                        Known::Iret
                    };
                    next_slot = r.0[SP];
                    signal = true;
                    exception = true;
                    regs_addr = Some(at);
                }
                _ => unreachable!("handled above"),
            }
            // The caller's bp.
            match orc.bp_reg {
                orc::REG_UNDEFINED => {
                    // Unchanged, unless a full pt_regs gave the caller's bp.
                    if next_known != Known::All {
                        next.0[BP] = prev_bp;
                    }
                }
                orc::REG_PREV_SP => {
                    let a = new_sp.wrapping_add(orc.bp_offset as i64 as u64);
                    match prog.read_u64(a) {
                        Ok(v) => next.0[BP] = v,
                        Err(e) => break End::Error(format!("read of stack at {a:#x} failed: {e}")),
                    }
                }
                orc::REG_BP => {
                    let a = prev_bp.wrapping_add(orc.bp_offset as i64 as u64);
                    match prog.read_u64(a) {
                        Ok(v) => next.0[BP] = v,
                        Err(e) => break End::Error(format!("read of stack at {a:#x} failed: {e}")),
                    }
                }
                r => break End::Error(format!("unknown ORC bp_reg {r} at {lookup:#x}")),
            }
            if let Some(f) = frames.last_mut() {
                f.cfa = Some(new_sp);
            }
            // No progress: the same frame again (a corrupted stack or bad unwind data).
            if next.0[IP] == ip && next.0[SP] == sp {
                break End::Error(format!("unwind loops at {ip:#x}"));
            }
            // A return address outside the kernel half (a smashed stack, e.g. the lab's
            // stack_protector scenario): stop rather than print garbage frames.
            if next_known == Known::IpSpBp && next.0[IP] < 0xffff_8000_0000_0000 {
                break End::Error(format!(
                    "return address {:#x} at {:#x} is not kernel text",
                    next.0[IP], next_slot
                ));
            }
            regs = next;
            known = next_known;
            slot = next_slot;
        };
        Trace {
            frames,
            user_regs: None,
            end,
        }
    }
}
