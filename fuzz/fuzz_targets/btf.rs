//! BTF parsing (vmlinux .BTF, module BTF).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kmortem_kernel::btf::fuzz_btf(data));
