//! The crash-text grammar (`kmortem_oops::line`) on any bytes, line by line: nothing panics,
//! positions stay inside the line, a stripped prefix leaves a suffix of the line, and what the
//! parsers return is consistent with what they read.
#![no_main]
use kmortem_oops::line;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let mut in_kmsg = false;
    for raw in data.split(|&b| b == b'\n') {
        let c = line::clean(raw, in_kmsg);
        in_kmsg = c.kmsg;
        assert!(c.text.len() <= line::MAX_LINE * 4);
        let text = String::from_utf8_lossy(raw);
        let l: &str = &text;
        let n = line::console_prefix_len(l);
        assert!(n <= l.len() && l.is_char_boundary(n));
        let s = line::strip_console_prefix(l);
        assert!(l.ends_with(s));
        if let Some(t) = line::find_frame(l) {
            assert!(t.start <= t.end && t.end <= l.len());
            assert!(!t.function.is_empty());
        }
        if let Some(f) = line::text_frame(l) {
            assert!(!f.function.is_empty());
        }
        if let Some(f) = line::parse_frame(&c.text) {
            assert!(!f.function.is_empty());
            let _ = line::generic_frame(line::base_function(&f.function));
        }
        if let Some(code) = line::parse_code(&c.text) {
            if let Some(t) = code.trap_index {
                assert!(t < code.bytes.len());
            }
            assert!(!code.bytes.is_empty());
        }
        let mut regs = BTreeMap::new();
        let found = line::parse_registers(&c.text, &mut regs);
        assert_eq!(found, !line::register_tokens(&c.text).is_empty());
        let _ = line::parse_ip(&c.text);
        let _ = line::parse_cpu_line(&c.text);
        let _ = line::header_fault_address(&c.text);
        let _ = line::parse_modules(&c.text);
        let _ = line::stack_start(&c.text);
        let _ = line::parse_context_marker(&c.text);
        let _ = line::is_report_line(l);
        let _ = line::clean_path(l);
        let _ = line::kernel_relative(l);
        let _ = line::source_path(l);
    }
    let text = String::from_utf8_lossy(data);
    let _ = line::scan_release(&text);
    let _ = line::scan_kaslr(&text);
});
