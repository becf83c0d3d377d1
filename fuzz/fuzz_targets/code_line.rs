//! The oops `Code:` line parser and the disassembler/operand evaluator behind it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(c) = kmortem_disasm::code_line::parse(&text) {
        if let Some(t) = c.trap_index {
            assert!(t < c.bytes.len());
        }
        let mut regs = BTreeMap::new();
        regs.insert("rax".to_string(), 0u64);
        regs.insert("rsi".to_string(), 0xdead000000000122u64);
        let d = kmortem_disasm::decode(c.arch, &c.bytes, c.trap_index, Some(0xffffffff81000000), &regs);
        let _ = kmortem_disasm::render(&d);
    }
    // Raw bytes straight into the decoder, trap anywhere.
    if !data.is_empty() {
        let t = data[0] as usize % data.len();
        let d = kmortem_disasm::decode(kmortem_disasm::Arch::X86_64, data, Some(t), None, &BTreeMap::new());
        let _ = kmortem_disasm::render(&d);
        let _ = kmortem_disasm::decode(kmortem_disasm::Arch::Arm64, data, Some(t & !3), None, &BTreeMap::new());
    }
});
