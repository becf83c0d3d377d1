//! kdump-compressed header and sub-header parsing, then the whole-file path (bitmaps and
//! page descriptors) with the bytes behind a valid signature.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kmortem_dump::fuzz_kdump_header(data);
    let mut f = b"KDUMP   ".to_vec();
    f.extend_from_slice(data);
    kmortem_dump::fuzz_open(&f);
});
