//! ORC unwind tables (`.orc_unwind_ip` / `.orc_unwind`), read from the dump's memory.
//!
//! Layout (arch/x86/include/asm/orc_types.h): `.orc_unwind_ip` is an array of `s32`, each
//! relative to its own address (`ip = &table[i] + table[i]`), sorted by ip; `.orc_unwind` is a
//! parallel array of 6-byte `struct orc_entry { s16 sp_offset; s16 bp_offset; u8 sp_reg:4,
//! bp_reg:4; u8 type.. }`. The entry at index i describes every ip from ip[i] up to ip[i+1].

use crate::mem::Memory;
use crate::program::Program;

pub const REG_UNDEFINED: u8 = 0;
pub const REG_PREV_SP: u8 = 1;
pub const REG_DX: u8 = 2;
pub const REG_DI: u8 = 3;
pub const REG_BP: u8 = 4;
pub const REG_SP: u8 = 5;
pub const REG_R10: u8 = 6;
pub const REG_R13: u8 = 7;
pub const REG_BP_INDIRECT: u8 = 8;
pub const REG_SP_INDIRECT: u8 = 9;

/// What an entry says about the frame, independent of the kernel's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrcType {
    /// No unwind data for this ip (an error if reached).
    Undefined,
    /// The bottom of the stack (kernel thread entry, user-space entry before regs).
    EndOfStack,
    /// A normal call frame: the return address is at `sp - 8`.
    Call,
    /// `sp` points at a full `struct pt_regs`.
    Regs,
    /// `sp` points at the iret frame (`ip`, `cs`, `flags`, `sp`, `ss`) at the end of pt_regs.
    RegsPartial,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrcEntry {
    pub sp_offset: i16,
    pub bp_offset: i16,
    pub sp_reg: u8,
    pub bp_reg: u8,
    pub kind: OrcType,
    /// The frame is a signal frame: the next ip is not a return address (6.3+ `signal` bit;
    /// REGS and REGS_PARTIAL imply it on every version).
    pub signal: bool,
}

/// The encoding of byte 5 (the bitfields after `sp_reg`/`bp_reg`).
///
/// Folklore: until 6.3 it was `type:2, end:1` with CALL=0, REGS=1, REGS_PARTIAL=2, and the
/// bottom of a stack was `sp_reg == UNDEFINED && end`. Commit ffb1b4a41016 (6.3) added
/// `signal:1` after `type:2` (so `end` moved to bit 3), and commit fb799447ae29 (6.4) made
/// `type:3` with UNDEFINED=0, END_OF_STACK=1, CALL=2, REGS=3, REGS_PARTIAL=4 and dropped `end`.
/// We probe `struct orc_entry`'s members (`end`, `signal`, the width of `type`) in the
/// kernel's types, never the version; without types the entries themselves decide (a type
/// value of 3 or 4 exists only in the 6.4 encoding). 6.4 also added an `.orc_header` section
/// (`__start_orc_header`: a hash of the `orc_entry` layout, which the module loader compares
/// with each module's): it identifies a layout but does not describe one, so it is not read.
/// Pinned by `orc::tests::encodings`, the lab oracle test `lab_bt_matches_oracles` (6.1:
/// type:2 + end; 6.12: type:3 + signal, equal to drgn on every dump) and
/// `lab_orc_encoding_and_current_task` (the types' encoding is the entries').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// type:2 end:1 (≤ 6.2).
    TypeEnd,
    /// type:2 signal:1 end:1 (6.3).
    TypeSignalEnd,
    /// type:3 signal:1 (6.4+).
    Type3Signal,
}

impl Encoding {
    pub fn decode(self, e: &[u8]) -> Option<OrcEntry> {
        let e: &[u8; 6] = e.get(..6)?.try_into().ok()?;
        let sp_offset = i16::from_le_bytes([e[0], e[1]]);
        let bp_offset = i16::from_le_bytes([e[2], e[3]]);
        let sp_reg = e[4] & 0xf;
        let bp_reg = e[4] >> 4;
        let b = e[5];
        let (kind, signal) = match self {
            Encoding::TypeEnd | Encoding::TypeSignalEnd => {
                let end_bit = if self == Encoding::TypeEnd { 2 } else { 3 };
                let end = b & (1 << end_bit) != 0;
                let sig = self == Encoding::TypeSignalEnd && b & 4 != 0;
                let kind = if sp_reg == REG_UNDEFINED {
                    if end {
                        OrcType::EndOfStack
                    } else {
                        OrcType::Undefined
                    }
                } else {
                    match b & 3 {
                        0 => OrcType::Call,
                        1 => OrcType::Regs,
                        2 => OrcType::RegsPartial,
                        _ => OrcType::Undefined,
                    }
                };
                (kind, sig)
            }
            Encoding::Type3Signal => {
                let kind = match b & 7 {
                    1 => OrcType::EndOfStack,
                    2 => OrcType::Call,
                    3 => OrcType::Regs,
                    4 => OrcType::RegsPartial,
                    _ => OrcType::Undefined,
                };
                (kind, b & 8 != 0)
            }
        };
        let signal = signal || matches!(kind, OrcType::Regs | OrcType::RegsPartial);
        Some(OrcEntry {
            sp_offset,
            bp_offset,
            sp_reg,
            bp_reg,
            kind,
            signal,
        })
    }
}

/// The frame-pointer entry the kernel falls back to when an ip has no ORC (`orc_fp_entry`):
/// the CFA is `bp + 16`, and the caller's bp was saved at `CFA - 16`.
pub const FP_ENTRY: OrcEntry = OrcEntry {
    sp_offset: 16,
    bp_offset: -16,
    sp_reg: REG_BP,
    bp_reg: REG_PREV_SP,
    kind: OrcType::Call,
    signal: false,
};

/// A call through a NULL function pointer: the kernel's `null_orc_entry` (ip 0): the return
/// address is right at sp.
pub const NULL_ENTRY: OrcEntry = OrcEntry {
    sp_offset: 8,
    bp_offset: 0,
    sp_reg: REG_SP,
    bp_reg: REG_UNDEFINED,
    kind: OrcType::Call,
    signal: false,
};

/// One ORC table (vmlinux or one module), decoded into sorted absolute ips.
pub struct OrcTable {
    pub ips: Vec<u64>,
    entries: Vec<u8>,
    pub encoding: Encoding,
    /// [start, end) of the text this table covers (module text, or the kernel image).
    pub range: (u64, u64),
}

impl OrcTable {
    /// Read `num` entries from `ip_addr` / `orc_addr` in the dump.
    pub fn read(
        mem: &dyn Memory,
        ip_addr: u64,
        orc_addr: u64,
        num: usize,
        encoding: Option<Encoding>,
        range: (u64, u64),
    ) -> Option<OrcTable> {
        if num == 0 || num > 8 << 20 {
            return None;
        }
        let raw = mem.read_vec(ip_addr, num * 4).ok()?;
        let entries = mem.read_vec(orc_addr, num * 6).ok()?;
        let mut ips: Vec<u64> = raw
            .chunks_exact(4)
            .enumerate()
            .map(|(i, c)| {
                let rel = i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64;
                (ip_addr + 4 * i as u64).wrapping_add(rel as u64)
            })
            .collect();
        // The kernel sorts both tables at build time (objtool/sorttable) and modules at load
        // (module_sort_orc), so they are sorted; refuse garbage rather than mis-unwind.
        if ips.windows(2).any(|w| w[0] > w[1]) {
            return None;
        }
        ips.shrink_to_fit();
        let encoding = encoding.unwrap_or_else(|| guess_encoding(&entries));
        Some(OrcTable {
            ips,
            entries,
            encoding,
            range,
        })
    }

    /// The entry covering `ip`.
    pub fn find(&self, ip: u64) -> Option<OrcEntry> {
        let i = self.ips.partition_point(|&x| x <= ip);
        if i == 0 {
            return None;
        }
        let e = self.entries.get((i - 1) * 6..i * 6)?;
        self.encoding.decode(e)
    }

    pub fn contains(&self, ip: u64) -> bool {
        (self.range.0..self.range.1).contains(&ip) && self.ips.first().is_some_and(|&f| f <= ip)
    }
}

fn guess_encoding(entries: &[u8]) -> Encoding {
    // Only the 6.4 encoding has type values 3 and 4 (REGS, REGS_PARTIAL).
    if entries
        .chunks_exact(6)
        .any(|e| matches!(e[5] & 7, 3 | 4) && e[4] & 0xf != 0)
    {
        Encoding::Type3Signal
    } else {
        Encoding::TypeEnd
    }
}

/// Probe `struct orc_entry` in the kernel's types (BTF or DWARF).
pub fn probe_encoding(prog: &Program) -> Option<Encoding> {
    let types = prog.types().ok()?;
    types.find_struct("orc_entry")?;
    let ty_bits = prog.field("orc_entry", "type").ok()?.bit_size;
    let has_end = prog.has_member("orc_entry", "end");
    let has_signal = prog.has_member("orc_entry", "signal");
    Some(match (ty_bits, has_end, has_signal) {
        (Some(3), _, _) => Encoding::Type3Signal,
        (_, true, true) => Encoding::TypeSignalEnd,
        _ => Encoding::TypeEnd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        // sp_offset 16, bp_offset -16, sp_reg SP(5), bp_reg PREV_SP(1)
        let mut e = [16u8, 0, 0xf0, 0xff, 0x15, 0];
        assert_eq!(
            Encoding::TypeEnd.decode(&e).map(|x| x.kind),
            Some(OrcType::Call)
        );
        assert_eq!(
            Encoding::Type3Signal.decode(&e).map(|x| x.kind),
            Some(OrcType::Undefined)
        );
        e[5] = 2;
        assert_eq!(
            Encoding::Type3Signal.decode(&e).map(|x| x.kind),
            Some(OrcType::Call)
        );
        assert_eq!(
            Encoding::TypeEnd.decode(&e).map(|x| (x.kind, x.signal)),
            Some((OrcType::RegsPartial, true))
        );
        // 6.1 end of stack: sp_reg undefined + end bit
        let eos = [0u8, 0, 0, 0, 0, 4];
        assert_eq!(
            Encoding::TypeEnd.decode(&eos).map(|x| x.kind),
            Some(OrcType::EndOfStack)
        );
        let eos64 = [0u8, 0, 0, 0, 0, 1];
        assert_eq!(
            Encoding::Type3Signal.decode(&eos64).map(|x| x.kind),
            Some(OrcType::EndOfStack)
        );
        // 6.3 signal bit on a CALL entry
        let sig = [8u8, 0, 0, 0, 5, 4];
        assert_eq!(
            Encoding::TypeSignalEnd
                .decode(&sig)
                .map(|x| (x.kind, x.signal)),
            Some((OrcType::Call, true))
        );
        assert!(Encoding::TypeEnd.decode(&[1, 2, 3]).is_none());
    }
}
