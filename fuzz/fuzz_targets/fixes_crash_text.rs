#![no_main]
//! Crash text as `kmortem fixes` reads it: the light frame/kind/file/kernel scanners and the
//! report/prose splitter.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let q = kmortem_fixes::CrashQuery::light(&text);
    let _ = q.key_frames();
    let _ = kmortem_fixes::CrashQuery::from_text(&text);
    let _ = kmortem_fixes::extract::split_report(&text);
    let _ = kmortem_fixes::extract::idents_in_text(&text);
    let _ = kmortem_fixes::extract::kinds_in_text(&text);
    let _ = kmortem_fixes::git::function_header(data);
});
