//! Damaged real dumps (seeded by fuzz/seed.py with lab vmcores cut short, bitmaps flipped,
//! notes renamed, PT_LOADs moved): open, read what opening found damaged, the notes, the
//! registers, VMCOREINFO, and pages across every range, then walk the kernel's page tables
//! from VMCOREINFO as `kmortem core` does first. Must never panic, hang or exhaust memory.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(d) = kmortem_dump::Dump::from_bytes(data.to_vec()) else {
        return;
    };
    kmortem_dump::fuzz_read_paths(&d);
    let Some(text) = d.vmcoreinfo() else {
        return;
    };
    let vi = kmortem_kernel::VmcoreInfo::parse(text);
    let (Some(pgt), phys_base) = (vi.symbol("init_top_pgt"), vi.number("phys_base")) else {
        return;
    };
    let phys_base = phys_base.unwrap_or(0) as u64;
    let vm = kmortem_kernel::mem::X86_64::new(
        pgt.wrapping_sub(0xffff_ffff_8000_0000).wrapping_add(phys_base),
        vi.number("pgtable_l5_enabled") == Some(1),
        phys_base,
        0,
    );
    for name in ["init_task", "prb", "init_uts_ns", "_stext"] {
        if let Some(a) = vi.symbol(name) {
            let _ = vm.translate(&d, a);
        }
    }
});
