//! kmortem-disasm: disassembly of an oops's `Code:` bytes (x86_64 in AT&T syntax, as objdump and
//! the kernel's `scripts/decodecode` print it; arm64 through yaxpeax-arm), with the trapping
//! instruction marked and its memory operands evaluated against the oops's registers.

pub mod arm64;
pub mod code_line;
pub mod x86;

use serde::Serialize;
use std::collections::BTreeMap;

/// The instruction set, shared with the report parser (`Report.code.arch`).
pub use kmortem_oops::Arch;

/// One decoded instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Insn {
    pub address: u64,
    /// Offset in the `Code:` bytes.
    pub offset: usize,
    pub bytes: Vec<u8>,
    /// AT&T text as objdump prints it (`mov    %rdx,0x8(%rsi)`).
    pub text: String,
    pub trapping: bool,
    /// The decoder gave up on these bytes (`(bad)`).
    pub invalid: bool,
}

/// One memory access of the trapping instruction, evaluated with the oops registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemAccess {
    /// `read`, `write` or `read_write`.
    pub access: String,
    /// Access size in bytes, when known.
    pub size: Option<u32>,
    /// The address expression in register terms (`RSI+0x8`).
    pub expression: String,
    /// Its value, when every register in it was printed.
    pub address: Option<u64>,
    /// What the address looks like: `NULL + 8`, `non-canonical`, `LIST_POISON1`, ...
    pub classification: Option<String>,
    /// The whole sentence: `writes 8 bytes at RSI+0x8 = 0x8: NULL + 8`.
    pub description: String,
}

/// The decoded `Code:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decoded {
    pub arch: Arch,
    /// Every instruction from the first byte that decodes cleanly up to the trapping one.
    pub all: Vec<Insn>,
    /// Decoded from the trapping byte on (decodecode's "Code starting with the faulting instruction").
    pub from_trap: Vec<Insn>,
    pub trap: Option<Insn>,
    pub accesses: Vec<MemAccess>,
    /// First byte offset the `all` listing starts at (bytes before it would split an instruction).
    pub skipped: usize,
}

/// Decodes `bytes` (the `Code:` line) whose trapping byte is at `trap_index`; `trap_address` is the
/// address of that byte (RIP/PC) when known, otherwise addresses are offsets from byte 0.
pub fn decode(
    arch: Arch,
    bytes: &[u8],
    trap_index: Option<usize>,
    trap_address: Option<u64>,
    registers: &BTreeMap<String, u64>,
) -> Decoded {
    let trap_index = trap_index.filter(|&t| t < bytes.len());
    let base = match (trap_address, trap_index) {
        (Some(a), Some(t)) => a.wrapping_sub(t as u64),
        _ => 0,
    };
    match arch {
        Arch::X86_64 => x86::decode(bytes, trap_index, base, registers),
        Arch::Arm64 => arm64::decode(bytes, trap_index, base, registers),
        // Nothing this crate decodes (arm32 Thumb halfwords): no instructions.
        Arch::Unknown => Decoded {
            arch,
            all: vec![],
            from_trap: vec![],
            trap: None,
            accesses: vec![],
            skipped: 0,
        },
    }
}

/// Describes an address the way a kernel engineer reads it.
pub fn classify_address(addr: u64) -> Option<String> {
    // Folklore: include/linux/poison.h; LIST_POISON1/2 are 0x100/0x122 + POISON_POINTER_DELTA
    // (0xdead000000000000 on x86_64 since 2.6.29); slab poison bytes are 0x6b (free), 0x5a
    // (uninitialised), 0xa5 (end); KASAN/KFENCE aside, these are what a use-after-free shows.
    match addr {
        0 => return Some("NULL".into()),
        0xdead000000000100 => return Some("LIST_POISON1 (list_del'd entry's next)".into()),
        0xdead000000000122 => return Some("LIST_POISON2 (list_del'd entry's prev)".into()),
        0x6b6b6b6b6b6b6b6b => return Some("slab free poison 0x6b (use after free)".into()),
        0x5a5a5a5a5a5a5a5a => return Some("slab uninitialised poison 0x5a".into()),
        _ => {}
    }
    if addr < 0x1000 {
        return Some(format!("NULL + {addr}"));
    }
    if (addr >> 47) != 0 && (addr >> 47) != 0x1ffff {
        if addr & 0xffff_0000_0000_0000 == 0xdead_0000_0000_0000 {
            return Some("poison pointer (POISON_POINTER_DELTA), non-canonical".into());
        }
        if addr.wrapping_add(4096) < 4096 {
            return Some(format!("NULL - {}", addr.wrapping_neg()));
        }
        let b = addr.to_le_bytes();
        if b.iter().all(|&x| x == b[0]) {
            return Some(format!(
                "non-canonical, every byte {:#04x} (poison/garbage)",
                b[0]
            ));
        }
        return Some("non-canonical address (general protection fault)".into());
    }
    if addr.wrapping_neg() <= 4095 {
        return Some(format!("ERR_PTR(-{})", addr.wrapping_neg()));
    }
    None
}

pub(crate) fn describe(
    access: &str,
    size: Option<u32>,
    expr: &str,
    addr: Option<u64>,
    class: Option<&str>,
) -> String {
    let verb = match access {
        "write" => "writes",
        "read_write" => "reads and writes",
        _ => "reads",
    };
    let mut s = match size {
        Some(n) => format!("{verb} {n} byte{} at {expr}", if n == 1 { "" } else { "s" }),
        None => format!("{verb} at {expr}"),
    };
    if let Some(a) = addr {
        if expr != format!("{a:#x}") {
            s.push_str(&format!(" = {a:#x}"));
        }
        if let Some(c) = class {
            s.push_str(&format!(": {c}"));
        }
    } else {
        s.push_str(" (a register in it was not printed)");
    }
    s
}

/// decodecode-style listing.
pub fn render(d: &Decoded) -> String {
    let mut out = String::new();
    let line = |out: &mut String, i: &Insn| {
        let hex: Vec<String> = i.bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mark = if i.trapping { "*" } else { "" };
        out.push_str(&format!(
            "{:>16x}:{mark}\t{:<21}\t{}{}\n",
            i.address,
            hex.join(" "),
            i.text,
            if i.trapping {
                "\t\t<-- trapping instruction"
            } else {
                ""
            }
        ));
    };
    out.push_str("All code\n========\n");
    if d.skipped > 0 {
        out.push_str(&format!(
            "  ({} leading byte(s) skipped: they end an earlier instruction)\n",
            d.skipped
        ));
    }
    for i in &d.all {
        line(&mut out, i);
    }
    if !d.from_trap.is_empty() {
        out.push_str("\nCode starting with the faulting instruction\n===========================================\n");
        for i in &d.from_trap {
            line(&mut out, i);
        }
    }
    if !d.accesses.is_empty() {
        out.push_str("\nTrapping instruction\n");
        for a in &d.accesses {
            out.push_str(&format!("  {}\n", a.description));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn classify() {
        assert_eq!(classify_address(8).as_deref(), Some("NULL + 8"));
        assert_eq!(classify_address(0).as_deref(), Some("NULL"));
        assert!(classify_address(0xdead000000000122)
            .unwrap()
            .contains("LIST_POISON2"));
        assert!(classify_address(0x6b6b6b6b6b6b6b6b)
            .unwrap()
            .contains("0x6b"));
        assert!(classify_address(0x1234_5678_9abc_def0)
            .unwrap()
            .contains("non-canonical"));
        assert_eq!(classify_address(0xffff_8880_0000_1000), None);
        assert_eq!(
            classify_address(u64::MAX - 11).as_deref(),
            Some("ERR_PTR(-12)")
        );
    }
}
