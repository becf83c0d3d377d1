//! `func+0xoff/0xsize [module]` token finder used by `kmortem decode` on every log line.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        if let Some(t) = kmortem_symbols::trace::find_frame(line) {
            assert!(t.start <= t.end && t.end <= line.len());
            let _ = kmortem_symbols::split_module(t.module.as_deref().unwrap_or(""));
        }
    }
});
