//! Any bytes as a vmcore (ELF, kdump-compressed, flattened): open, read notes and pages.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kmortem_dump::fuzz_open(data));
