//! System.map / /proc/kallsyms parser: never panics; sizes and lookups stay consistent.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(m) = kmortem_symbols::SymbolMap::parse(&text) {
        for i in 0..m.symbols.len().min(64) {
            if let Some(sz) = m.size_of(i) {
                assert!(sz > 0);
            }
            let s = &m.symbols[i];
            let _ = m.find(&s.name, s.module.as_deref());
            if let Some((j, off)) = m.lookup(s.address) {
                assert!(m.symbols[j].address + off == s.address);
            }
        }
    }
});
