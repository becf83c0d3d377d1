//! `since=`/`until=` values as users type them: never panic, and formatting what parsed must
//! parse back to the same instant.
#![no_main]

use kmortem_store::time::{format_rfc3339, parse_time};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Some(t) = parse_time(s, 1_763_700_000_000) {
        if (-30_000_000_000_000..=250_000_000_000_000).contains(&t) {
            assert_eq!(parse_time(&format_rfc3339(t), 0), Some(t), "{s:?}");
        }
    }
});
