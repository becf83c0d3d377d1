//! ELF note parsing (PT_NOTE contents: NT_PRSTATUS, VMCOREINFO, QEMU notes).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for n in kmortem_dump::parse_notes(data) {
        let _ = kmortem_dump::PrStatus::parse(&n.desc);
        let _ = kmortem_dump::QemuCpuState::parse(&n.desc);
    }
});
