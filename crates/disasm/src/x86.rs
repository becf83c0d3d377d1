//! x86_64 through iced-x86, formatted like objdump's AT&T output.

use crate::{classify_address, describe, Arch, Decoded, Insn, MemAccess};
use iced_x86::{
    Decoder, DecoderOptions, Formatter, GasFormatter, Instruction, InstructionInfoFactory,
    OpAccess, Register,
};
use std::collections::BTreeMap;

fn formatter() -> GasFormatter {
    let mut f = GasFormatter::new();
    let o = f.options_mut();
    o.set_uppercase_hex(false);
    o.set_small_hex_numbers_in_decimal(false);
    o.set_hex_prefix("0x");
    o.set_hex_suffix("");
    o.set_first_operand_char_index(7);
    o.set_gas_show_mnemonic_size_suffix(false);
    o.set_branch_leading_zeros(false);
    o.set_displacement_leading_zeros(false);
    o.set_leading_zeros(false);
    o.set_space_after_operand_separator(false);
    // objdump prints `0x1b3edee(%rip)        # ffffffff82c39f50`; we append the same comment.
    o.set_rip_relative_addresses(true);
    o.set_always_show_scale(true);
    o.set_show_zero_displacements(true);
    o.set_show_useless_prefixes(true);
    f
}

fn run(bytes: &[u8], start: usize, base: u64, trap: Option<usize>) -> Vec<Insn> {
    let mut out = Vec::new();
    let Some(slice) = bytes.get(start..) else {
        return out;
    };
    let mut dec = Decoder::with_ip(
        64,
        slice,
        base.wrapping_add(start as u64),
        DecoderOptions::NONE,
    );
    let mut fmt = formatter();
    let mut ins = Instruction::default();
    while dec.can_decode() {
        let pos = start + dec.position();
        dec.decode_out(&mut ins);
        let len = ins.len().max(1);
        let end = (pos + len).min(bytes.len());
        let mut text = String::new();
        let invalid = ins.is_invalid();
        if invalid {
            text.push_str("(bad)");
        } else {
            fmt.format(&ins, &mut text);
            text = objdump_style(&ins, &bytes[pos..end], text);
            if ins.is_ip_rel_memory_operand() {
                text = format!(
                    "{}        # {:x}",
                    text.trim_end(),
                    ins.ip_rel_memory_address()
                );
            }
        }
        out.push(Insn {
            address: base.wrapping_add(pos as u64),
            offset: pos,
            bytes: bytes[pos..end].to_vec(),
            text: text.trim_end().to_string(),
            trapping: Some(pos) == trap,
            invalid,
        });
    }
    out
}

/// The first offset from which `bytes` decodes as whole valid instructions ending exactly at
/// its end (`bytes.len()` itself when none does: an empty listing).
///
/// Linear in the length: one instruction is decoded at each offset, from the end backwards,
/// and an offset is clean when its instruction is valid and the next one is clean. (Decoding
/// the whole tail from every candidate start was quadratic: a 100,000-byte `Code:` line took
/// minutes; BENCHMARKS.md, "Code: decoding".)
fn first_clean_start(bytes: &[u8]) -> Option<usize> {
    let t = bytes.len();
    let mut clean = vec![false; t + 1];
    clean[t] = true;
    let mut ins = Instruction::default();
    for i in (0..t).rev() {
        let mut dec = Decoder::with_ip(64, &bytes[i..], 0, DecoderOptions::NONE);
        dec.decode_out(&mut ins);
        let len = ins.len();
        clean[i] = !ins.is_invalid() && len > 0 && i + len <= t && clean[i + len];
    }
    clean.iter().position(|&c| c)
}

/// Where iced's GAS output still differs from objdump's, rewrite it the objdump way.
fn objdump_style(ins: &Instruction, bytes: &[u8], text: String) -> String {
    // `always_show_scale` gives `(%rax,%rbx,1)` like objdump, but also `(%rbx,)` without index.
    let mut t = text.replace(",)", ")");
    let m = ins.mnemonic();
    use iced_x86::Mnemonic as M;
    match m {
        // objdump names the implicit segments of string instructions.
        M::Stosb
        | M::Stosw
        | M::Stosd
        | M::Stosq
        | M::Scasb
        | M::Scasw
        | M::Scasd
        | M::Scasq
        | M::Insb
        | M::Insw
        | M::Insd => {
            t = t
                .replace("(%rdi)", "%es:(%rdi)")
                .replace("(%edi)", "%es:(%edi)");
        }
        M::Movsb | M::Movsw | M::Movsd | M::Movsq | M::Cmpsb | M::Cmpsw | M::Cmpsd | M::Cmpsq
            if !t.contains("%xmm") =>
        {
            t = t
                .replace("(%rsi)", "%ds:(%rsi)")
                .replace("(%rdi)", "%es:(%rdi)");
        }
        M::Lodsb | M::Lodsw | M::Lodsd | M::Lodsq | M::Outsb | M::Outsw | M::Outsd => {
            t = t.replace("(%rsi)", "%ds:(%rsi)");
        }
        // Long NOPs padded with prefixes: objdump prints `data16 cs nopw 0x0(%rax,%rax,1)`.
        M::Nop
            if t.contains("%cs:")
                || bytes
                    .iter()
                    .take_while(|&&b| b == 0x66 || b == 0x2e)
                    .count()
                    > 1 =>
        {
            let pre: Vec<u8> = bytes
                .iter()
                .copied()
                .take_while(|&b| b == 0x66 || b == 0x2e)
                .collect();
            let n66 = pre.iter().filter(|&&b| b == 0x66).count();
            let mut p = String::new();
            for _ in 1..n66 {
                p.push_str("data16 ");
            }
            if pre.contains(&0x2e) {
                p.push_str("cs ");
            }
            t = format!("{p}{}", t.replace("%cs:", ""));
        }
        // binutils prints the shift-by-one encodings (D0/D1 /n) without their implicit count:
        // `sar %rax`, `shrl 0x48(%rax)`; iced writes `$0x1,`. The C1 /n ib form with an
        // immediate 1 keeps it in both. Seen in the 6.12 vmlinux; pinned by
        // objdump_forms_of_shifts_by_one_and_indirect_calls and tests/objdump.rs.
        M::Rol | M::Ror | M::Rcl | M::Rcr | M::Shl | M::Sal | M::Shr | M::Sar
            if format!("{:?}", ins.code()).ends_with("_1") =>
        {
            t = t.replacen("$0x1,", "", 1);
        }
        // binutils 2.40 prints `push 0x10(%rsp)` and `call *0x10(%rip)` (no suffix) for memory
        // pushes, pops, indirect calls and jumps (the paravirt `call *pv_ops+N(%rip)` of 6.12).
        M::Push | M::Pop | M::Call | M::Jmp => {
            for (q, plain) in [
                ("pushq  ", "push   "),
                ("popq   ", "pop    "),
                ("callq  ", "call   "),
                ("jmpq   ", "jmp    "),
            ] {
                if let Some(rest) = t.strip_prefix(q) {
                    t = format!("{plain}{rest}");
                }
            }
        }
        _ => {}
    }
    t
}

pub(crate) fn decode(
    bytes: &[u8],
    trap: Option<usize>,
    base: u64,
    regs: &BTreeMap<String, u64>,
) -> Decoded {
    // The bytes before the trapping one may start in the middle of an instruction. decodecode
    // shows that as garbage; we pick the first start offset that decodes without invalid
    // instructions and lands exactly on the trapping byte.
    let (all, skipped) = match trap {
        Some(t) => {
            let s = first_clean_start(&bytes[..t]).unwrap_or(0);
            let mut v = run(&bytes[..t], s, base, None);
            v.extend(run(bytes, t, base, Some(t)));
            (v, s)
        }
        None => (run(bytes, 0, base, None), 0),
    };
    let from_trap = match trap {
        Some(t) => run(bytes, t, base, Some(t)),
        None => Vec::new(),
    };
    let trap_insn = from_trap.first().cloned();
    let accesses = match (trap, &trap_insn) {
        (Some(t), Some(ti)) if !ti.invalid => {
            evaluate(&bytes[t..], base.wrapping_add(t as u64), regs)
        }
        _ => Vec::new(),
    };
    Decoded {
        arch: Arch::X86_64,
        all,
        from_trap,
        trap: trap_insn,
        accesses,
        skipped,
    }
}

fn reg_value(r: Register, regs: &BTreeMap<String, u64>) -> Option<u64> {
    if r == Register::None {
        return Some(0);
    }
    let full = r.full_register();
    let name = format!("{full:?}").to_ascii_lowercase();
    let v = *regs.get(&name)?;
    let size = r.size();
    Some(if size >= 8 {
        v
    } else {
        v & ((1u64 << (size * 8)) - 1)
    })
}

fn reg_name(r: Register) -> String {
    format!("{r:?}").to_ascii_uppercase()
}

/// Evaluates the memory operands of the instruction at the start of `bytes`.
pub fn evaluate(bytes: &[u8], ip: u64, regs: &BTreeMap<String, u64>) -> Vec<MemAccess> {
    let mut dec = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE);
    let ins = dec.decode();
    if ins.is_invalid() {
        return Vec::new();
    }
    let mut factory = InstructionInfoFactory::new();
    let info = factory.info(&ins);
    let mut out = Vec::new();
    for m in info.used_memory() {
        let access = match m.access() {
            OpAccess::Read | OpAccess::CondRead => "read",
            OpAccess::Write | OpAccess::CondWrite => "write",
            OpAccess::ReadWrite | OpAccess::ReadCondWrite => "read_write",
            _ => continue,
        };
        // Stack pushes/pops and string ops use implicit operands; keep them, they fault too.
        let mut expr = Vec::new();
        let mut ok = true;
        let mut addr: u64 = 0;
        if m.segment() == Register::GS || m.segment() == Register::FS {
            expr.push(format!("{}:", reg_name(m.segment())));
            let key = if m.segment() == Register::GS {
                "gs"
            } else {
                "fs"
            };
            match regs.get(key) {
                Some(v) => addr = addr.wrapping_add(*v),
                None => ok = false,
            }
        }
        let mut parts = Vec::new();
        if m.base() == Register::RIP {
            parts.push("RIP".to_string());
            addr = addr.wrapping_add(m.displacement());
        } else {
            if m.base() != Register::None {
                parts.push(reg_name(m.base()));
                match reg_value(m.base(), regs) {
                    Some(v) => addr = addr.wrapping_add(v),
                    None => ok = false,
                }
            }
            if m.index() != Register::None {
                parts.push(if m.scale() > 1 {
                    format!("{}*{}", reg_name(m.index()), m.scale())
                } else {
                    reg_name(m.index())
                });
                match reg_value(m.index(), regs) {
                    Some(v) => addr = addr.wrapping_add(v.wrapping_mul(u64::from(m.scale()))),
                    None => ok = false,
                }
            }
            addr = addr.wrapping_add(m.displacement());
        }
        let disp = m.displacement() as i64;
        let mut e = parts.join("+");
        if m.base() != Register::RIP && disp != 0 {
            if e.is_empty() {
                e = format!("{:#x}", m.displacement());
            } else if disp < 0 && disp > -0x1_0000_0000 {
                e.push_str(&format!("-{:#x}", -disp));
            } else {
                e.push_str(&format!("+{:#x}", m.displacement()));
            }
        } else if m.base() == Register::RIP {
            e = format!("{:#x}", m.displacement());
        }
        if e.is_empty() {
            e = "0x0".into();
        }
        let expression = format!("{}{}", expr.concat(), e);
        let size = m.memory_size().size() as u32;
        let size = (size > 0).then_some(size);
        let address = ok.then_some(addr);
        let class = address.and_then(classify_address);
        out.push(MemAccess {
            access: access.to_string(),
            size,
            description: describe(access, size, &expression, address, class.as_deref()),
            expression,
            address,
            classification: class,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn mov_to_null_plus_8() {
        // 48 89 56 08 = mov %rdx,0x8(%rsi)
        let mut regs = BTreeMap::new();
        regs.insert("rsi".to_string(), 0u64);
        regs.insert("rdx".to_string(), 5u64);
        let d = decode(
            &[0x90, 0x48, 0x89, 0x56, 0x08, 0xc3],
            Some(1),
            0xffffffff81000000,
            &regs,
        );
        let t = d.trap.as_ref().unwrap();
        assert_eq!(t.text, "mov    %rdx,0x8(%rsi)");
        assert_eq!(t.address, 0xffffffff81000001);
        assert_eq!(d.accesses.len(), 1);
        assert_eq!(
            d.accesses[0].description,
            "writes 8 bytes at RSI+0x8 = 0x8: NULL + 8"
        );
        assert!(crate::render(&d).contains("<-- trapping instruction"));
    }
    #[test]
    fn read_with_index_and_missing_register() {
        // 8b 04 88 = mov (%rax,%rcx,4),%eax
        let mut regs = BTreeMap::new();
        regs.insert("rax".to_string(), 0x1000u64);
        let a = evaluate(&[0x8b, 0x04, 0x88], 0, &regs);
        assert_eq!(a[0].expression, "RAX+RCX*4");
        assert_eq!(a[0].address, None);
        regs.insert("rcx".to_string(), 2u64);
        let a = evaluate(&[0x8b, 0x04, 0x88], 0, &regs);
        assert_eq!(a[0].address, Some(0x1008));
        assert_eq!(a[0].access, "read");
        assert_eq!(a[0].size, Some(4));
    }
    /// binutils 2.40 forms that iced's GAS formatter writes otherwise (objdump on the 6.12 vmlinux).
    #[test]
    fn objdump_forms_of_shifts_by_one_and_indirect_calls() {
        let one = |b: &[u8], at: u64| {
            let d = decode(b, Some(0), at, &BTreeMap::new());
            d.trap.map(|t| t.text).unwrap_or_default()
        };
        assert_eq!(one(&[0x48, 0xd1, 0xf8], 0), "sar    %rax");
        assert_eq!(one(&[0x48, 0xd1, 0xea], 0), "shr    %rdx");
        assert_eq!(one(&[0xd1, 0x68, 0x48], 0), "shrl   0x48(%rax)");
        assert_eq!(one(&[0xd0, 0xe0], 0), "shl    %al");
        assert_eq!(one(&[0x48, 0xc1, 0xf8, 0x01], 0), "sar    $0x1,%rax");
        assert_eq!(one(&[0x48, 0xd3, 0xf8], 0), "sar    %cl,%rax");
        assert_eq!(
            one(&[0xff, 0x15, 0x65, 0x22, 0xb1, 0x01], 0xffffffff81123255),
            "call   *0x1b12265(%rip)        # ffffffff82c354c0"
        );
        assert_eq!(one(&[0xff, 0xd0], 0), "call   *%rax");
        assert_eq!(one(&[0xff, 0x10], 0), "call   *(%rax)");
        assert_eq!(one(&[0xff, 0x20], 0), "jmp    *(%rax)");
    }
    #[test]
    fn misaligned_prefix_is_skipped() {
        // A trailing fragment (0x08 = the disp8 of an earlier insn) then nop; <c3>.
        let d = decode(&[0x56, 0x08, 0x90, 0xc3], Some(3), 0, &BTreeMap::new());
        assert!(d.all.iter().any(|i| i.trapping && i.text == "ret"));
    }
}
