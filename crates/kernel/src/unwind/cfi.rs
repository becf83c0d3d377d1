//! DWARF CFI (`.debug_frame` of the vmlinux) to recover the callee-saved registers (rbx, rbp,
//! r12-r15) of caller frames, which ORC does not track. Used by `bt -v` only: the walk itself
//! is ORC's (and works without a vmlinux); this refines the registers of frames it found.
//!
//! Folklore: Debian's vmlinux (linked with `--emit-relocs`) has `.debug_frame` with final link
//! addresses and a `.rela.debug_frame` that must not be applied again; kernel FDEs use CIEs
//! with `DW_CFA_def_cfa rsp+8`, and the return address column is 16. Module `.ko` files carry
//! a `.debug_frame` that needs relocating; they are not used here (module frames keep only
//! what ORC gives). Pinned by `lab_bt_v_matches_drgn`.

use gimli::{
    BaseAddresses, CfaRule, DebugFrame, EndianSlice, LittleEndian, RegisterRule, UnwindContext,
    UnwindSection,
};
use std::sync::Arc;

type R = EndianSlice<'static, LittleEndian>;

/// Callee-saved registers by DWARF number: rbx 3, rbp 6, r12-r15 12-15.
pub const CALLEE_SAVED: [u16; 6] = [3, 6, 12, 13, 14, 15];

pub struct Cfi {
    frame: DebugFrame<R>,
    /// (start, end, FDE offset), sorted by start.
    index: Vec<(u64, u64, usize)>,
    _map: Arc<memmap2::Mmap>,
}

impl Cfi {
    /// Load `.debug_frame` from an ELF file; None when it has none.
    pub fn load(path: &std::path::Path) -> Option<Cfi> {
        use object::{Object, ObjectSection};
        let file = std::fs::File::open(path).ok()?;
        // SAFETY: read-only map of a file we do not modify.
        let map = Arc::new(unsafe { memmap2::Mmap::map(&file) }.ok()?);
        // SAFETY: the slice lives as long as `_map`, which this struct owns.
        let data: &'static [u8] = unsafe { std::slice::from_raw_parts(map.as_ptr(), map.len()) };
        let obj = object::File::parse(data).ok()?;
        if obj.kind() != object::ObjectKind::Executable {
            return None;
        }
        let sec = obj.section_by_name(".debug_frame")?;
        let bytes = sec.data().ok()?;
        let mut frame = DebugFrame::new(bytes, LittleEndian);
        frame.set_address_size(8);
        let bases = BaseAddresses::default();
        let mut index = Vec::new();
        let mut entries = frame.entries(&bases);
        while let Ok(Some(e)) = entries.next() {
            if let gimli::CieOrFde::Fde(p) = e {
                if let Ok(fde) = p.parse(DebugFrame::cie_from_offset) {
                    index.push((fde.initial_address(), fde.end_address(), fde.offset()));
                }
            }
        }
        index.sort_unstable();
        Some(Cfi {
            frame,
            index,
            _map: map,
        })
    }

    /// The caller's callee-saved registers, given this frame's link-time pc and its registers
    /// (DWARF numbering; rsp = 7). Returns (register, value) pairs that CFI can recover.
    pub fn caller_saved(
        &self,
        link_pc: u64,
        regs: &dyn Fn(u16) -> Option<u64>,
        mem: &dyn Fn(u64) -> Option<u64>,
    ) -> Option<(u64, Vec<(u16, u64)>)> {
        let i = self.index.partition_point(|e| e.0 <= link_pc);
        let &(start, end, off) = self.index.get(i.checked_sub(1)?)?;
        if !(start..end).contains(&link_pc) {
            return None;
        }
        let bases = BaseAddresses::default();
        let fde = self
            .frame
            .fde_from_offset(
                &bases,
                gimli::DebugFrameOffset(off),
                DebugFrame::cie_from_offset,
            )
            .ok()?;
        let mut ctx = Box::new(UnwindContext::new());
        let row = fde
            .unwind_info_for_address(&self.frame, &bases, &mut ctx, link_pc)
            .ok()?;
        let cfa = match row.cfa() {
            CfaRule::RegisterAndOffset { register, offset } => {
                regs(register.0)?.wrapping_add(*offset as u64)
            }
            CfaRule::Expression(_) => return None,
        };
        let mut out = Vec::new();
        for r in CALLEE_SAVED {
            let v = match row.register(gimli::Register(r)) {
                RegisterRule::Offset(o) => mem(cfa.wrapping_add(o as u64)),
                RegisterRule::ValOffset(o) => Some(cfa.wrapping_add(o as u64)),
                RegisterRule::SameValue | RegisterRule::Undefined => regs(r),
                RegisterRule::Register(o) => regs(o.0),
                _ => None,
            };
            // Undefined in a CIE for a callee-saved register means "not touched here" in
            // GCC's kernel CFI (it only describes saves), so it keeps the callee's value.
            if let Some(v) = v {
                out.push((r, v));
            }
        }
        Some((cfa, out))
    }
}
