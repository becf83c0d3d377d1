#![no_main]
//! `.dyad` lines and kernel version strings: parse, then judge a verdict with what came out.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(ranges) = kmortem_fixes::version::parse_dyad(&text) {
        let first = text.lines().next().unwrap_or("");
        let k = kmortem_fixes::identify_kernel(first, text.lines().nth(1));
        let _ = kmortem_fixes::verdict(&k, &ranges);
        let _ = kmortem_fixes::verdict(&kmortem_fixes::identify_kernel("5.12.0", None), &ranges);
    }
    let _ = kmortem_fixes::KVersion::parse_prefix(&text);
});
