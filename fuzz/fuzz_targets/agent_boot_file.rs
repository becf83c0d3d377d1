//! The agent on what the last crash left (pstore records, kdump dmesg): any bytes, plain or as
//! a `.enc.z` record. It must never panic, and every key it makes must be one the server takes
//! (1-200 printable ASCII characters).
#![no_main]

use kmortem_server::agent::{boot_items, line_usec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    for line in rest.split(|&b| b == b'\n') {
        let _ = line_usec(line);
    }
    for item in boot_items("fuzz-host", "agent:pstore", rest.to_vec(), flags & 1 == 1) {
        assert!(!item.key.is_empty() && item.key.len() <= 200, "{}", item.key);
        assert!(item.key.bytes().all(|b| b.is_ascii_graphic()), "{}", item.key);
    }
});
