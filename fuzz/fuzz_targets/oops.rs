//! Any bytes: `parse` must not panic, and streaming must agree with whole-input parsing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let reports = kmortem_oops::parse(data);
    let mut s = kmortem_oops::Scanner::new();
    let mut streamed = Vec::new();
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    if !body.is_empty() {
        for line in body.split(|&b| b == b'\n') {
            streamed.extend(s.push_line(line));
        }
    }
    streamed.extend(s.finish());
    streamed.sort_by_key(|r| r.start_line);
    assert_eq!(reports.len(), streamed.len());
    for r in &reports {
        assert!(r.start_line <= r.end_line);
        assert!(r.title.len() <= 120 || r.kind.is_event());
        let _ = serde_json_free_check(r);
    }
});

/// Touch every field so that nothing lazily computed can panic.
fn serde_json_free_check(r: &kmortem_oops::Report) -> usize {
    r.frames.len() + r.alt_titles.len() + r.registers.len() + r.text.len() + r.signature.len()
}
