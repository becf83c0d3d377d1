//! arm64 through yaxpeax-arm.

use crate::{classify_address, describe, Arch, Decoded, Insn, MemAccess};
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
    regs: &BTreeMap<String, u64>,
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
    let accesses = from_trap
        .first()
        .filter(|t| !t.invalid)
        .map(|t| evaluate(&t.text, regs))
        .unwrap_or_default();
    Decoded {
        arch: Arch::Arm64,
        accesses,
        trap: from_trap.first().cloned(),
        all,
        from_trap,
        skipped: 0,
    }
}

fn parse_imm(s: &str) -> Option<i64> {
    let s = s.trim().trim_start_matches('#');
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let v = match s.strip_prefix("0x") {
        Some(h) => i64::from_str_radix(h, 16).ok()?,
        None => s.parse::<i64>().ok()?,
    };
    Some(if neg { -v } else { v })
}

fn reg_value(name: &str, regs: &BTreeMap<String, u64>) -> Option<u64> {
    let n = name.trim();
    let key = match n {
        "sp" | "wsp" => "sp".to_string(),
        "xzr" | "wzr" => return Some(0),
        _ if n.starts_with('w') => format!("x{}", &n[1..]),
        _ => n.to_string(),
    };
    let v = regs.get(&key).copied().or_else(|| {
        if key == "x30" {
            regs.get("lr").copied()
        } else {
            None
        }
    })?;
    Some(if n.starts_with('w') {
        v & 0xffff_ffff
    } else {
        v
    })
}

/// Evaluates a load/store's `[base, #imm]` / `[base, xM{, lsl #n}]` address with the oops's
/// registers (`x0`..`x29`, `sp`, `lr` as the kernel prints them).
pub fn evaluate(text: &str, regs: &BTreeMap<String, u64>) -> Vec<MemAccess> {
    let mnemonic = text.split_whitespace().next().unwrap_or("");
    let access = if mnemonic.starts_with("ld") {
        "read"
    } else if mnemonic.starts_with("st") {
        "write"
    } else if mnemonic.starts_with("cas") || mnemonic.starts_with("swp") {
        "read_write"
    } else {
        return Vec::new();
    };
    let (Some(open), Some(close)) = (text.find('['), text.find(']')) else {
        return Vec::new();
    };
    if close < open {
        return Vec::new();
    }
    let first_reg = text[mnemonic.len()..]
        .trim_start()
        .split(',')
        .next()
        .unwrap_or("")
        .trim();
    let unit: u32 = if mnemonic.ends_with('b') && !mnemonic.starts_with("ldp") {
        1
    } else if mnemonic.ends_with('h') {
        2
    } else if mnemonic.ends_with("sw") || first_reg.starts_with('w') || first_reg.starts_with('s') {
        4
    } else if first_reg.starts_with('q') {
        16
    } else {
        8
    };
    let size = if mnemonic.starts_with("ldp") || mnemonic.starts_with("stp") {
        unit * 2
    } else {
        unit
    };
    let inner: Vec<&str> = text[open + 1..close].split(',').map(str::trim).collect();
    let base = inner.first().copied().unwrap_or("");
    let mut expr = base.to_ascii_uppercase();
    let mut addr = reg_value(base, regs);
    // Post-index `[x0], #8` accesses the base itself.
    if let Some(second) = inner.get(1) {
        if second.starts_with('#') {
            let imm = parse_imm(second).unwrap_or(0);
            if imm != 0 {
                expr.push_str(&if imm < 0 {
                    format!("-{:#x}", -imm)
                } else {
                    format!("+{imm:#x}")
                });
            }
            addr = addr.map(|a| a.wrapping_add(imm as u64));
        } else {
            let shift = inner
                .get(2)
                .and_then(|x| x.split_whitespace().last())
                .and_then(parse_imm)
                .unwrap_or(0)
                .clamp(0, 63);
            expr.push_str(&format!("+{}", second.to_ascii_uppercase()));
            if shift > 0 {
                expr.push_str(&format!("<<{shift}"));
            }
            addr = match (addr, reg_value(second, regs)) {
                (Some(a), Some(b)) => Some(a.wrapping_add(b << shift)),
                _ => None,
            };
        }
    }
    let class = addr.and_then(classify_address);
    vec![MemAccess {
        access: access.to_string(),
        size: Some(size),
        description: describe(access, Some(size), &expr, addr, class.as_deref()),
        expression: expr,
        address: addr,
        classification: class,
    }]
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
    #[test]
    fn ldr_from_null_plus_16() {
        let mut regs = BTreeMap::new();
        regs.insert("x0".to_string(), 0u64);
        let d = decode(&0xb9401000u32.to_le_bytes(), Some(0), 0, &regs);
        assert_eq!(d.accesses.len(), 1, "{:?}", d.trap);
        assert_eq!(
            d.accesses[0].description,
            "reads 4 bytes at X0+0x10 = 0x10: NULL + 16"
        );
        // str x1, [x2, x3, lsl #3]
        regs.insert("x2".to_string(), 0x1000);
        regs.insert("x3".to_string(), 2);
        let a = evaluate("str x1, [x2, x3, lsl #3]", &regs);
        assert_eq!(
            (a[0].access.as_str(), a[0].address, a[0].size),
            ("write", Some(0x1010), Some(8))
        );
        assert!(evaluate("add x0, x1, x2", &regs).is_empty());
    }
}
