//! kallsyms decoding (compressed names, token tables, relative offsets) from a dump.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kmortem_kernel::kallsyms::fuzz_kallsyms(data));
