//! x86_64 instruction facts for explaining: the memory operand of an instruction in DWARF
//! register numbers, the registers an instruction writes, branch targets, and a function's
//! instructions decoded linearly from its symbol start.

use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Formatter, GasFormatter, Instruction,
    InstructionInfoFactory, OpAccess, OpKind, Register,
};
use kmortem_symbols::vars::x86_64_register_number;

/// DWARF number of a (64-bit, or sub-register of a 64-bit) general register.
pub fn dwarf_reg(r: Register) -> Option<u16> {
    if r == Register::None {
        return None;
    }
    let full = r.full_register();
    x86_64_register_number(&format!("{full:?}"))
}

/// The memory operand of an instruction, in register terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemOperand {
    pub base: Option<u16>,
    pub index: Option<u16>,
    pub scale: u32,
    pub disp: i64,
    pub write: bool,
    pub read: bool,
    pub size: u32,
    pub rip_relative: bool,
}

/// One decoded instruction with its AT&T text.
#[derive(Debug, Clone)]
pub struct Insn {
    pub ins: Instruction,
    pub text: String,
}

impl Insn {
    pub fn ip(&self) -> u64 {
        self.ins.ip()
    }
    pub fn end(&self) -> u64 {
        self.ins.next_ip()
    }
}

pub fn decode_all(bytes: &[u8], ip: u64) -> Vec<Insn> {
    let mut dec = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE);
    let mut fmt = GasFormatter::new();
    fmt.options_mut().set_uppercase_hex(false);
    fmt.options_mut().set_space_after_operand_separator(false);
    let mut out = Vec::new();
    while dec.can_decode() {
        let ins = dec.decode();
        if ins.is_invalid() {
            break;
        }
        let mut text = String::new();
        fmt.format(&ins, &mut text);
        out.push(Insn { ins, text });
        if out.len() > 20_000 {
            break;
        }
    }
    out
}

/// The explicit memory operand (not stack pushes/pops), with its access.
pub fn mem_operand(ins: &Instruction) -> Option<MemOperand> {
    let has_mem = (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Memory);
    if !has_mem {
        return None;
    }
    let mut factory = InstructionInfoFactory::new();
    let info = factory.info(ins);
    let m = info
        .used_memory()
        .iter()
        .find(|m| m.base() != Register::RSP || ins.memory_base() == Register::RSP)?;
    let (read, write) = match m.access() {
        OpAccess::Read | OpAccess::CondRead => (true, false),
        OpAccess::Write | OpAccess::CondWrite => (false, true),
        OpAccess::ReadWrite | OpAccess::ReadCondWrite => (true, true),
        // lea: no access, only an address computation.
        _ => (false, false),
    };
    let rip_relative = ins.memory_base() == Register::RIP;
    Some(MemOperand {
        base: if rip_relative {
            None
        } else {
            dwarf_reg(ins.memory_base())
        },
        index: dwarf_reg(ins.memory_index()),
        scale: ins.memory_index_scale(),
        disp: if rip_relative {
            0
        } else {
            ins.memory_displacement64() as i64
        },
        write,
        read,
        size: ins.memory_size().size() as u32,
        rip_relative,
    })
}

/// Caller-saved registers under the x86_64 SysV ABI (a call clobbers them).
pub const CALLER_SAVED: [u16; 9] = [0, 1, 2, 4, 5, 8, 9, 10, 11];
/// Argument registers in order: rdi, rsi, rdx, rcx, r8, r9.
pub const ARG_REGS: [u16; 6] = [5, 4, 1, 2, 8, 9];
/// Callee-saved: rbx, rbp, r12..r15.
pub const CALLEE_SAVED: [u16; 6] = [3, 6, 12, 13, 14, 15];

/// Registers (DWARF numbers) an instruction writes; a call writes every caller-saved register.
pub fn written(ins: &Instruction) -> Vec<u16> {
    let mut out = Vec::new();
    if ins.flow_control() == FlowControl::Call || ins.flow_control() == FlowControl::IndirectCall {
        out.extend_from_slice(&CALLER_SAVED);
        return out;
    }
    let mut factory = InstructionInfoFactory::new();
    let info = factory.info(ins);
    for r in info.used_registers() {
        if matches!(
            r.access(),
            OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
        ) {
            if let Some(n) = dwarf_reg(r.register()) {
                if n != 7 && !out.contains(&n) {
                    out.push(n);
                }
            }
        }
    }
    out
}

/// Direct branch targets of a function's instructions (jumps and conditional jumps).
pub fn branch_targets(insns: &[Insn]) -> Vec<(u64, u64)> {
    insns
        .iter()
        .filter(|i| {
            matches!(
                i.ins.flow_control(),
                FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch
            ) && i.ins.op0_kind() != OpKind::Register
                && i.ins.op0_kind() != OpKind::Memory
        })
        .map(|i| (i.ip(), i.ins.near_branch_target()))
        .collect()
}

pub fn is_call(ins: &Instruction) -> bool {
    matches!(
        ins.flow_control(),
        FlowControl::Call | FlowControl::IndirectCall
    )
}

/// A plain register-to-register copy (`mov %src,%dst`, 64-bit) → src.
pub fn reg_copy(ins: &Instruction) -> Option<(u16, u16)> {
    use iced_x86::Mnemonic;
    if ins.mnemonic() != Mnemonic::Mov
        || ins.op_count() != 2
        || ins.op0_kind() != OpKind::Register
        || ins.op1_kind() != OpKind::Register
    {
        return None;
    }
    let (d, s) = (ins.op0_register(), ins.op1_register());
    if d.size() != 8 || s.size() != 8 {
        return None;
    }
    Some((dwarf_reg(d)?, dwarf_reg(s)?))
}

/// A 64-bit load `mov disp(base[,index,scale]),%dst` → (dst, operand).
pub fn load(ins: &Instruction) -> Option<(u16, MemOperand)> {
    use iced_x86::Mnemonic;
    if ins.mnemonic() != Mnemonic::Mov
        || ins.op_count() != 2
        || ins.op0_kind() != OpKind::Register
        || ins.op1_kind() != OpKind::Memory
        || ins.op0_register().size() != 8
    {
        return None;
    }
    Some((dwarf_reg(ins.op0_register())?, mem_operand(ins)?))
}

/// `mov $imm,%dst` (64-bit destination) → dst.
pub fn mov_imm(ins: &Instruction) -> Option<u16> {
    use iced_x86::Mnemonic;
    if ins.mnemonic() != Mnemonic::Mov
        || ins.op_count() != 2
        || ins.op0_kind() != OpKind::Register
        || !matches!(
            ins.op1_kind(),
            OpKind::Immediate32to64 | OpKind::Immediate64 | OpKind::Immediate32
        )
    {
        return None;
    }
    dwarf_reg(ins.op0_register())
}

/// `lea disp(base[,index,scale]),%dst` → (dst, operand).
pub fn lea(ins: &Instruction) -> Option<(u16, MemOperand)> {
    use iced_x86::Mnemonic;
    if ins.mnemonic() != Mnemonic::Lea || ins.op0_register().size() != 8 {
        return None;
    }
    let m = MemOperand {
        base: dwarf_reg(ins.memory_base()).filter(|_| ins.memory_base() != Register::RIP),
        index: dwarf_reg(ins.memory_index()),
        scale: ins.memory_index_scale(),
        disp: ins.memory_displacement64() as i64,
        write: false,
        read: false,
        size: 0,
        rip_relative: ins.memory_base() == Register::RIP,
    };
    Some((dwarf_reg(ins.op0_register())?, m))
}

/// A backward jump whose range [target, jump] contains `pc`: the loop a lockup spins in.
pub fn enclosing_loop(insns: &[Insn], pc: u64) -> Option<(u64, u64)> {
    branch_targets(insns)
        .into_iter()
        .filter(|&(at, target)| target <= pc && pc <= at && target < at)
        .min_by_key(|&(at, target)| at - target)
        .map(|(at, target)| (target, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operand_and_writes() {
        // mov 0x18(%rsi),%rax
        let v = decode_all(&[0x48, 0x8b, 0x46, 0x18], 0x1000);
        assert_eq!(v[0].text, "mov 0x18(%rsi),%rax");
        let m = mem_operand(&v[0].ins).unwrap();
        assert_eq!(
            (m.base, m.index, m.disp, m.read, m.write),
            (Some(4), None, 0x18, true, false)
        );
        assert_eq!(written(&v[0].ins), vec![0]);
        assert_eq!(load(&v[0].ins).map(|x| x.0), Some(0));
        // lock cmpxchg %edx,(%rdi): writes memory at rdi, writes eax (rax)
        let v = decode_all(&[0xf0, 0x0f, 0xb1, 0x17], 0);
        let m = mem_operand(&v[0].ins).unwrap();
        assert_eq!((m.base, m.write), (Some(5), true));
        // mov %rbx,%rdi
        let v = decode_all(&[0x48, 0x89, 0xdf], 0);
        assert_eq!(reg_copy(&v[0].ins), Some((5, 3)));
        // a loop: 0: nop; 1: jmp 0
        let v = decode_all(&[0x90, 0xeb, 0xfd], 0);
        assert_eq!(enclosing_loop(&v, 0), Some((0, 1)));
    }
}
