//! VMCOREINFO text parsing.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let v = kmortem_kernel::VmcoreInfo::parse(data);
    let _ = v.symbol("prb");
    let _ = v.number("phys_base");
});
