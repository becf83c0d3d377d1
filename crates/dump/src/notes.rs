//! ELF notes: `CORE`/`NT_PRSTATUS` per CPU, `VMCOREINFO`, and QEMU's per-CPU state.

use crate::{u32_at, u64_at};

pub const NT_PRSTATUS: u32 = 1;

/// One ELF note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The name without its trailing NUL.
    pub name: Vec<u8>,
    pub ntype: u32,
    pub desc: Vec<u8>,
}

/// Parse a run of ELF notes (4-byte aligned, as in vmcores). Stops at the first malformed note
/// and keeps the ones before it.
pub fn parse_notes(b: &[u8]) -> Vec<Note> {
    parse_notes_checked(b).0
}

/// Like [`parse_notes`], and says where and why parsing stopped early: `Some((offset,
/// reason))` when bytes that are not zero padding remain after the last good note.
pub fn parse_notes_checked(all: &[u8]) -> (Vec<Note>, Option<(usize, String)>) {
    let mut b = all;
    let mut out = Vec::new();
    let stop = |b: &[u8], why: &str| {
        if b.iter().all(|&c| c == 0) {
            None
        } else {
            Some((all.len() - b.len(), why.to_string()))
        }
    };
    let align = |n: usize| n.checked_add(3).map(|v| v & !3);
    while !b.is_empty() {
        let (Some(namesz), Some(descsz), Some(ntype)) = (u32_at(b, 0), u32_at(b, 4), u32_at(b, 8))
        else {
            let why = stop(b, "a note header cut short");
            return (out, why);
        };
        if namesz == 0 && descsz == 0 && ntype == 0 {
            // zero padding at the end of a PT_NOTE
            let why = stop(b, "zero note header followed by data");
            return (out, why);
        }
        let (namesz, descsz) = (namesz as usize, descsz as usize);
        let cut = || {
            Some((
                all.len() - b.len(),
                format!("note of name size {namesz}, descriptor size {descsz} runs past the end of the note area"),
            ))
        };
        let Some(name_end) = align(namesz).and_then(|n| n.checked_add(12)) else {
            return (out, cut());
        };
        let Some(desc_end) = align(descsz).and_then(|d| d.checked_add(name_end)) else {
            return (out, cut());
        };
        let Some(name) = b.get(12..12 + namesz) else {
            return (out, cut());
        };
        // Folklore: some writers (old kexec-tools) do not pad the last note's descriptor.
        let Some(desc) = name_end
            .checked_add(descsz)
            .and_then(|e| b.get(name_end..e))
        else {
            return (out, cut());
        };
        let name = name.strip_suffix(b"\0").unwrap_or(name).to_vec();
        out.push(Note {
            name,
            ntype,
            desc: desc.to_vec(),
        });
        b = b.get(desc_end..).unwrap_or(&[]);
    }
    (out, None)
}

/// x86_64 registers from an `NT_PRSTATUS` note (struct elf_prstatus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrStatus {
    pub pid: u32,
    /// user_regs_struct order: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi
    /// orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs.
    pub regs: [u64; 27],
}

pub const PRSTATUS_REG_NAMES: [&str; 27] = [
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi",
    "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs",
    "gs",
];

/// The bytes of an x86_64 `elf_prstatus` up to the end of `pr_reg` (the note is 336).
pub const PRSTATUS_SIZE: usize = 112 + 27 * 8;

impl PrStatus {
    /// Parse the x86_64 layout (336 bytes: pr_pid at 32, pr_reg at 112).
    pub fn parse(d: &[u8]) -> Option<PrStatus> {
        if d.len() < PRSTATUS_SIZE {
            return None;
        }
        let mut regs = [0u64; 27];
        for (i, r) in regs.iter_mut().enumerate() {
            *r = u64_at(d, 112 + i * 8)?;
        }
        Some(PrStatus {
            pid: u32_at(d, 32)?,
            regs,
        })
    }
    pub fn rip(&self) -> u64 {
        self.regs[16]
    }
    pub fn rsp(&self) -> u64 {
        self.regs[19]
    }
    pub fn reg(&self, name: &str) -> Option<u64> {
        PRSTATUS_REG_NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| self.regs[i])
    }
}

/// The x86_64 `QEMUCPUState` note that `dump-guest-memory` writes per vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QemuCpuState {
    pub rip: u64,
    pub rsp: u64,
    pub gs_base: u64,
    pub idt_base: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub kernel_gs_base: u64,
}

impl QemuCpuState {
    /// Layout (QEMU target/i386/arch_dump.c): u32 version, u32 size, 18 u64 registers
    /// (rax..r15, rip, rflags), ten 24-byte segments (cs ds es fs gs ss ldt tr gdt idt; base at
    /// +16), cr[5], kernel_gs_base (version 1+).
    pub fn parse(d: &[u8]) -> Option<QemuCpuState> {
        let seg_base = |i: usize| u64_at(d, 152 + i * 24 + 16);
        Some(QemuCpuState {
            rsp: u64_at(d, 8 + 6 * 8)?,
            rip: u64_at(d, 8 + 16 * 8)?,
            gs_base: seg_base(4)?,
            idt_base: seg_base(9)?,
            cr3: u64_at(d, 392 + 3 * 8)?,
            cr4: u64_at(d, 392 + 4 * 8)?,
            kernel_gs_base: u64_at(d, 432).unwrap_or(0),
        })
    }
}
