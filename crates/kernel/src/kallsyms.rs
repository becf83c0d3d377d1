//! The kernel's own symbol table (kallsyms), read from the dump: symbols with no vmlinux.
//!
//! VMCOREINFO names the tables since Linux 6.0 (commit 5fd8fea935a1, "vmcoreinfo: include
//! kallsyms symbols"): `kallsyms_names`, `kallsyms_num_syms`, `kallsyms_token_table`,
//! `kallsyms_token_index`, and `kallsyms_offsets` + `kallsyms_relative_base` (or
//! `kallsyms_addresses` without CONFIG_KALLSYMS_BASE_RELATIVE). The format
//! (scripts/kallsyms.c):
//! - names: per symbol a length byte, then that many token indices; the expansion of the
//!   tokens is the symbol's type letter followed by its name;
//! - token_table: 256 NUL-terminated strings; token_index: 256 u16 offsets into it;
//! - offsets: per symbol an i32 (see [`addresses`]); symbols are sorted by address.

use crate::mem::Memory;
use crate::symbols::Symbol;
use std::collections::HashMap;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KallsymsError {
    #[error("kallsyms: {0}")]
    Malformed(String),
    #[error("kallsyms: VMCOREINFO has no SYMBOL({0}) (Linux 6.0+ exports it)")]
    Missing(&'static str),
    #[error("kallsyms: {0}")]
    Read(String),
}

fn bad(s: impl Into<String>) -> KallsymsError {
    KallsymsError::Malformed(s.into())
}

/// Most symbols a kernel plausibly has (allmodconfig has ~250k).
const MAX_SYMS: usize = 4_000_000;

/// Decode `num` compressed names. Returns (type letter, name) per symbol, in table order.
///
/// Folklore: the length prefix became a "big" two-byte varint in 6.1 (commit 73bbb94466fd,
/// "kallsyms: support "big" kernel symbols"): when bit 7 of the first byte is set, the length
/// is `(b0 & 0x7f) | (b1 << 7)`. Earlier kernels never emit lengths >= 0x80, so decoding the
/// varint is right for all of them. Pinned by `tests::big_length` and `lab_no_debug_info`.
pub fn decode_names(
    names: &[u8],
    num: usize,
    token_table: &[u8],
    token_index: &[u8],
) -> Result<Vec<(char, String)>, KallsymsError> {
    if num > MAX_SYMS {
        return Err(bad(format!("{num} symbols is not plausible")));
    }
    if token_index.len() < 512 {
        return Err(bad("token index shorter than 256 entries"));
    }
    let tokens: Vec<&[u8]> = (0..256)
        .map(|i| {
            let o = u16::from_le_bytes([token_index[2 * i], token_index[2 * i + 1]]) as usize;
            let t = token_table.get(o..).unwrap_or(&[]);
            let e = t.iter().position(|&c| c == 0).unwrap_or(t.len());
            &t[..e]
        })
        .collect();
    // Each symbol takes at least one byte of names: a count the names cannot hold allocates
    // no more than the names justify (issue 25), and fails below at the end of the names.
    let mut out = Vec::with_capacity(num.min(names.len()));
    let mut p = 0usize;
    let mut buf = Vec::with_capacity(128);
    for i in 0..num {
        let b0 = *names
            .get(p)
            .ok_or_else(|| bad(format!("names end at symbol {i} of {num}")))?;
        let len = if b0 & 0x80 != 0 {
            let b1 = *names
                .get(p + 1)
                .ok_or_else(|| bad("names end inside a length"))?;
            p += 2;
            (b0 & 0x7f) as usize | (b1 as usize) << 7
        } else {
            p += 1;
            b0 as usize
        };
        let toks = names
            .get(p..p + len)
            .ok_or_else(|| bad(format!("names end inside symbol {i}")))?;
        p += len;
        buf.clear();
        for &t in toks {
            buf.extend_from_slice(tokens[t as usize]);
        }
        let Some((&kind, name)) = buf.split_first() else {
            return Err(bad(format!("symbol {i} has an empty name")));
        };
        out.push((kind as char, String::from_utf8_lossy(name).into_owned()));
    }
    Ok(out)
}

/// Addresses from `kallsyms_offsets` (i32 each) and `kallsyms_relative_base`.
///
/// Folklore: CONFIG_KALLSYMS_BASE_RELATIVE (4.6, commit 2213e9a66bb8) stores 32-bit offsets
/// from `kallsyms_relative_base`. With CONFIG_KALLSYMS_ABSOLUTE_PERCPU (x86_64 SMP), a
/// non-negative value is an absolute address (the per-CPU symbols, which are offsets from 0)
/// and a negative one means `relative_base - 1 - value`; without it every value is an
/// unsigned offset from the base. The option is not visible in the dump, so it is inferred:
/// any negative value means the absolute-percpu encoding (kernel text is never below the
/// base, so plain unsigned offsets of a normal kernel are < 2^31). 6.11 dropped the
/// absolute-percpu variant and 7.0 made offsets place-relative (not handled: the result is
/// then checked against `_stext`, see [`Kallsyms::read`]). Pinned by `tests::percpu_rule`
/// and `lab_no_debug_info` (every text symbol equals System.map + KASLR).
pub fn addresses(offsets: &[u8], num: usize, relative_base: u64) -> Vec<u64> {
    let vals: Vec<i32> = offsets
        .chunks_exact(4)
        .take(num)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let absolute_percpu = vals.iter().any(|&v| v < 0);
    vals.iter()
        .map(|&v| {
            if !absolute_percpu {
                relative_base.wrapping_add(v as u32 as u64)
            } else if v >= 0 {
                v as u64
            } else {
                relative_base.wrapping_sub(1).wrapping_sub(v as i64 as u64)
            }
        })
        .collect()
}

/// The decoded table.
pub struct Kallsyms {
    /// (address, type, name), sorted by address.
    syms: Vec<(u64, char, String)>,
    by_name: HashMap<String, usize>,
}

impl Kallsyms {
    /// Build from decoded parts (names and addresses in table order).
    pub fn from_parts(names: Vec<(char, String)>, addrs: Vec<u64>) -> Kallsyms {
        let mut syms: Vec<(u64, char, String)> = names
            .into_iter()
            .zip(addrs)
            .map(|((k, n), a)| (a, k, n))
            .collect();
        syms.sort_by_key(|s| s.0);
        let mut by_name = HashMap::with_capacity(syms.len());
        for (i, s) in syms.iter().enumerate() {
            // prefer a global (upper-case type) over a local of the same name
            let replace = match by_name.get(&s.2) {
                None => true,
                Some(&j) => {
                    let old: &(u64, char, String) = &syms[j];
                    old.1.is_ascii_lowercase() && !s.1.is_ascii_lowercase()
                }
            };
            if replace {
                by_name.insert(s.2.clone(), i);
            }
        }
        Kallsyms { syms, by_name }
    }

    /// Read and decode the tables through the addresses VMCOREINFO gives.
    pub fn read(
        mem: &dyn Memory,
        sym: &dyn Fn(&str) -> Option<u64>,
    ) -> Result<Kallsyms, KallsymsError> {
        let need = |n: &'static str| sym(n).ok_or(KallsymsError::Missing(n));
        let rerr = |e: crate::mem::ReadError| KallsymsError::Read(e.to_string());
        let names_a = need("kallsyms_names")?;
        let num_a = need("kallsyms_num_syms")?;
        let tt_a = need("kallsyms_token_table")?;
        let ti_a = need("kallsyms_token_index")?;
        let num = mem.read_u32(num_a).map_err(rerr)? as usize;
        if num == 0 || num > MAX_SYMS {
            return Err(bad(format!("kallsyms_num_syms is {num}")));
        }
        // The tables are laid out names, markers, token_table, token_index (scripts/
        // kallsyms.c's output order since 2.6.10): the next table bounds each one.
        let span = |from: u64, to: u64, fallback: usize| -> usize {
            match to.checked_sub(from) {
                Some(d) if d > 0 && d < 64 << 20 => d as usize,
                _ => fallback,
            }
        };
        let names_len = span(names_a, tt_a, num * 40);
        let names = read_upto(mem, names_a, names_len);
        let token_table = read_upto(mem, tt_a, span(tt_a, ti_a, 64 << 10));
        let token_index = mem.read_vec(ti_a, 512).map_err(rerr)?;
        let decoded = decode_names(&names, num, &token_table, &token_index)?;
        let addrs = if let Some(off_a) = sym("kallsyms_offsets") {
            let base_a = need("kallsyms_relative_base")?;
            let base = mem.read_u64(base_a).map_err(rerr)?;
            let raw = mem.read_vec(off_a, num * 4).map_err(rerr)?;
            addresses(&raw, num, base)
        } else {
            let a = need("kallsyms_addresses")?;
            let raw = mem.read_vec(a, num * 8).map_err(rerr)?;
            raw.chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect()
        };
        let k = Kallsyms::from_parts(decoded, addrs);
        // Sanity: _stext decodes to VMCOREINFO's SYMBOL(_stext) when both are known.
        if let (Some(want), Some(got)) = (sym("_stext"), k.addr("_stext")) {
            if want != got {
                return Err(bad(format!(
                    "_stext decodes to {got:#x}, VMCOREINFO says {want:#x} (unknown address encoding)"
                )));
            }
        }
        Ok(k)
    }

    pub fn len(&self) -> usize {
        self.syms.len()
    }
    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    fn symbol(&self, i: usize) -> Symbol {
        let (a, k, n) = &self.syms[i];
        // kallsyms has no sizes: a symbol runs to the next one at a higher address.
        let next = self.syms[i + 1..]
            .iter()
            .find(|s| s.0 > *a)
            .map(|s| s.0)
            .unwrap_or(*a);
        Symbol {
            name: n.clone(),
            addr: *a,
            size: next - a,
            kind: *k,
            module: None,
        }
    }

    pub fn get(&self, name: &str) -> Option<Symbol> {
        self.by_name.get(name).map(|&i| self.symbol(i))
    }

    pub fn addr(&self, name: &str) -> Option<u64> {
        self.by_name.get(name).map(|&i| self.syms[i].0)
    }

    /// The symbol holding `addr` and the offset into it (kernel addresses only; the
    /// per-CPU offsets near 0 are not looked up).
    pub fn lookup(&self, addr: u64) -> Option<(Symbol, u64)> {
        if addr < crate::mem::START_KERNEL_MAP {
            return None;
        }
        let i = self.syms.partition_point(|s| s.0 <= addr).checked_sub(1)?;
        let a = self.syms[i].0;
        if a < crate::mem::START_KERNEL_MAP {
            return None;
        }
        // among aliases at one address, prefer a global function
        let mut best = i;
        let mut j = i;
        while j > 0 && self.syms[j - 1].0 == a {
            j -= 1;
            if self.syms[j].1 == 'T' && self.syms[best].1 != 'T' {
                best = j;
            }
        }
        let s = self.symbol(best);
        // past the last symbol of the image (_end): nothing
        if addr - a > (1 << 24) {
            return None;
        }
        Some((s, addr - a))
    }

    /// The per-CPU variable holding the per-CPU offset `addr` (the symbols kallsyms keeps at
    /// their link addresses from 0 with CONFIG_KALLSYMS_ABSOLUTE_PERCPU), inside
    /// `__per_cpu_start..__per_cpu_end`; see `Symbols::lookup_percpu`.
    pub fn lookup_percpu(&self, addr: u64) -> Option<(Symbol, u64)> {
        let (start, end) = (self.addr("__per_cpu_start")?, self.addr("__per_cpu_end")?);
        if !(start..end).contains(&addr) || end > crate::mem::START_KERNEL_MAP {
            return None;
        }
        let mut i = self.syms.partition_point(|s| s.0 <= addr);
        while i > 0 {
            i -= 1;
            let (a, _, n) = &self.syms[i];
            if *a < start {
                break;
            }
            // (kallsyms types per-CPU symbols `A`, absolute: only the markers are skipped)
            if n.starts_with("__per_cpu_") {
                continue;
            }
            return Some((self.symbol(i), addr - a));
        }
        None
    }

    /// Every symbol (address, type, name), by address.
    pub fn iter(&self) -> impl Iterator<Item = (u64, char, &str)> {
        self.syms.iter().map(|(a, k, n)| (*a, *k, n.as_str()))
    }
}

fn read_upto(mem: &dyn Memory, addr: u64, len: usize) -> Vec<u8> {
    // Grows with what is read, not with what a (possibly damaged) length claims.
    let mut out = Vec::with_capacity(len.min(1 << 20));
    let mut a = addr;
    while out.len() < len {
        let n = (4096 - (a % 4096) as usize).min(len - out.len());
        let mut b = vec![0u8; n];
        if mem.read(a, &mut b).is_err() {
            break;
        }
        out.extend_from_slice(&b);
        a += n as u64;
    }
    out
}

/// For `cargo fuzz`: decode arbitrary tables (split from one input) without panicking.
pub fn fuzz_kallsyms(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let num = u16::from_le_bytes([data[0], data[1]]) as usize;
    let split = (data[2] as usize * data.len()) / 256;
    let rest = &data[3..];
    let (a, b) = rest.split_at(split.min(rest.len()));
    let (ti, tt) = b.split_at(b.len().min(512));
    let _ = decode_names(a, num, tt, ti);
    let _ = addresses(a, num, 0xffff_ffff_8100_0000);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Token table where token i is the single byte i (except 0 = "T" and 1 = "t").
    fn identity_tokens() -> (Vec<u8>, Vec<u8>) {
        let mut table = Vec::new();
        let mut index = Vec::new();
        for i in 0..256u32 {
            index.extend_from_slice(&(table.len() as u16).to_le_bytes());
            match i {
                0 => table.extend_from_slice(b"T\0"),
                1 => table.extend_from_slice(b"t\0"),
                _ => table.extend_from_slice(&[i as u8, 0]),
            }
        }
        (table, index)
    }

    #[test]
    fn a_count_the_names_cannot_hold_is_refused() {
        // 4M symbols claimed by 5 bytes of names: an error at the end of the names, after
        // allocating for at most 5 symbols.
        let names = [4u8, 0, b'a', b'b', b'c'];
        let mut ti = vec![0u8; 512];
        ti[2 * 0x61] = 0;
        let r = decode_names(&names, MAX_SYMS, b"a\0", &ti);
        assert!(
            matches!(&r, Err(e) if e.to_string().contains("names end at symbol")),
            "{r:?}"
        );
    }

    #[test]
    fn names_and_tokens() {
        let (tt, ti) = identity_tokens();
        let mut names = vec![4, 0, b'a', b'b', b'c'];
        names.extend_from_slice(&[2, 1, b'x']);
        let d = decode_names(&names, 2, &tt, &ti).unwrap();
        assert_eq!(d, vec![('T', "abc".into()), ('t', "x".into())]);
        // truncated tables are errors, not panics
        assert!(decode_names(&names[..6], 2, &tt, &ti).is_err());
        assert!(decode_names(&names, 2, &tt, &ti[..100]).is_err());
    }

    #[test]
    fn big_length() {
        let (tt, ti) = identity_tokens();
        let long = "y".repeat(200);
        let len = 201usize; // type token + 200
        let mut names = vec![(len as u8 & 0x7f) | 0x80, (len >> 7) as u8, 0];
        names.extend_from_slice(long.as_bytes());
        let d = decode_names(&names, 1, &tt, &ti).unwrap();
        assert_eq!(d[0].1, long);
    }

    #[test]
    fn percpu_rule() {
        let base = 0xffff_ffff_8100_0000u64;
        // per-cpu symbol at 0x1f000 (absolute), text at base + 0x10 (stored as -1 - 0x10)
        let mut raw = Vec::new();
        raw.extend_from_slice(&0x1f000i32.to_le_bytes());
        raw.extend_from_slice(&(-1i32 - 0x10).to_le_bytes());
        assert_eq!(addresses(&raw, 2, base), vec![0x1f000, base + 0x10]);
        // without negative values: plain offsets from the base
        let raw = [0x10u32.to_le_bytes(), 0x20u32.to_le_bytes()].concat();
        assert_eq!(addresses(&raw, 2, base), vec![base + 0x10, base + 0x20]);
    }

    #[test]
    fn lookup_and_sizes() {
        let k = Kallsyms::from_parts(
            vec![
                ('T', "f".into()),
                ('t', "g".into()),
                ('T', "h".into()),
                ('D', "per_cpu_x".into()),
            ],
            vec![
                0xffffffff81000000,
                0xffffffff81000040,
                0xffffffff81000100,
                0x1000,
            ],
        );
        assert_eq!(k.get("g").unwrap().size, 0xc0);
        let (s, off) = k.lookup(0xffffffff81000050).unwrap();
        assert_eq!((s.name.as_str(), off), ("g", 0x10));
        assert!(k.lookup(0x1000).is_none());
        assert_eq!(k.addr("per_cpu_x"), Some(0x1000));
    }
}
