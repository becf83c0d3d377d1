//! The text parsers of `kmortem explain`: list-debug messages, `kernel BUG at`/`WARNING at`
//! locations, and the DWARF location-expression evaluator fed arbitrary bytecode.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        let _ = kmortem_explain::list::parse_message(line);
    }
    let _ = kmortem_explain::text::bug_location(&text);
    let regs = |r: u16| Some(u64::from(r) * 8);
    let mem = |a: u64, n: usize| if a % 2 == 0 { Some(vec![0x5a; n]) } else { None };
    let _ = kmortem_symbols::vars::evaluate(data, &regs, &mem, Some(0x1000));
    let loc = kmortem_symbols::Location::Expr(data.to_vec());
    let _ = loc.describe();
    let _ = loc.register_plus();
});
