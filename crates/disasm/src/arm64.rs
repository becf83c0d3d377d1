//! arm64 through yaxpeax-arm.

use crate::{Arch, Decoded, Insn};
use std::collections::BTreeMap;
use yaxpeax_arch::{Decoder, U8Reader};

fn one(word: [u8; 4], addr: u64, offset: usize, trap: bool) -> Insn {
    let dec = yaxpeax_arm::armv8::a64::InstDecoder::default();
    let mut reader = U8Reader::new(&word);
    let (text, invalid) = match dec.decode(&mut reader) {
        Ok(i) => (i.to_string(), false),
        Err(_) => (
            ".inst".to_string() + &format!(" {:#010x}", u32::from_le_bytes(word)),
            true,
        ),
    };
    Insn {
        address: addr,
        offset,
        bytes: word.to_vec(),
        text,
        trapping: trap,
        invalid,
    }
}

pub(crate) fn decode(
    bytes: &[u8],
    trap: Option<usize>,
    base: u64,
    _regs: &BTreeMap<String, u64>,
) -> Decoded {
    let mut all = Vec::new();
    for (i, c) in bytes.chunks_exact(4).enumerate() {
        let off = i * 4;
        let w = [c[0], c[1], c[2], c[3]];
        all.push(one(
            w,
            base.wrapping_add(off as u64),
            off,
            Some(off) == trap,
        ));
    }
    let from_trap: Vec<Insn> = match trap {
        Some(t) => all.iter().filter(|i| i.offset >= t).cloned().collect(),
        None => Vec::new(),
    };
    Decoded {
        arch: Arch::Arm64,
        trap: from_trap.first().cloned(),
        all,
        from_trap,
        accesses: Vec::new(),
        skipped: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn ldr_word() {
        // b9401000 = ldr w0, [x0, #16]
        let d = decode(&0xb9401000u32.to_le_bytes(), Some(0), 0, &BTreeMap::new());
        let t = d.trap.unwrap();
        assert!(t.text.starts_with("ldr"), "{}", t.text);
        assert!(t.text.contains("x0"), "{}", t.text);
    }
}
