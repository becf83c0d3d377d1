//! Kernel symbols from vmlinux's `.symtab`, with the KASLR offset applied.
//!
//! vmlinux has ~120k symbols; building a full table costs a few hundred milliseconds of
//! allocations, which is most of what `ps` needs in total. So nothing is built at open: a name
//! lookup scans the raw symbol table (about a millisecond) and caches the answer, and the
//! address-sorted index is built on the first address lookup.

use crate::mem::{KERNEL_IMAGE_END, START_KERNEL_MAP};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Symbol {
    pub name: String,
    #[serde(serialize_with = "crate::hex_addr")]
    pub addr: u64,
    pub size: u64,
    /// `nm`-style type letter (T, t, D, d, B, b, R, r, A, ...).
    pub kind: char,
    /// The module that holds it, or None for vmlinux.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
}

pub type Bytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

pub struct Symbols {
    data: Bytes,
    symtab: (usize, usize),
    strtab: (usize, usize),
    /// nm letter (lower case) of each section index.
    sec_kind: Vec<u8>,
    kaslr: u64,
    names: Mutex<HashMap<String, Option<u32>>>,
    by_addr: OnceLock<Vec<(u64, u32)>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SymError(String);

fn rd<const N: usize>(b: &[u8], o: usize) -> Option<[u8; N]> {
    b.get(o..o.checked_add(N)?)?.try_into().ok()
}
fn u16_(b: &[u8], o: usize) -> Option<u64> {
    rd::<2>(b, o).map(|x| u16::from_le_bytes(x) as u64)
}
fn u32_(b: &[u8], o: usize) -> Option<u64> {
    rd::<4>(b, o).map(|x| u32::from_le_bytes(x) as u64)
}
fn u64_(b: &[u8], o: usize) -> Option<u64> {
    rd::<8>(b, o).map(u64::from_le_bytes)
}

struct Raw {
    name_off: u32,
    info: u8,
    shndx: u16,
    value: u64,
    size: u64,
}

impl Symbols {
    /// Index vmlinux's symbol table (section headers only). Kernel-image symbols are moved by
    /// `kaslr`.
    ///
    /// Folklore: per-cpu variables are linked at small addresses (section `.data..percpu` at
    /// 0) and are *not* relocated by KASLR; only addresses inside the image mapping
    /// (`__START_KERNEL_map` .. +1 GiB) move.
    pub fn from_elf(data: Bytes, kaslr: u64) -> Result<Symbols, SymError> {
        let b: &[u8] = (*data).as_ref();
        let bad = |s: &str| SymError(s.to_string());
        if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 {
            return Err(bad("not a 64-bit ELF file"));
        }
        let shoff = u64_(b, 0x28).ok_or_else(|| bad("header"))? as usize;
        let shentsize = u16_(b, 0x3a).ok_or_else(|| bad("header"))? as usize;
        let shnum = u16_(b, 0x3c).ok_or_else(|| bad("header"))? as usize;
        if shentsize < 64 {
            return Err(bad("bad section header size"));
        }
        let sh = |i: usize| shoff.checked_add(i.checked_mul(shentsize)?);
        let mut sec_kind = Vec::with_capacity(shnum);
        let mut symtab = None;
        for i in 0..shnum {
            let o = sh(i).ok_or_else(|| bad("section headers"))?;
            let ty = u32_(b, o + 4).ok_or_else(|| bad("section headers beyond end of file"))?;
            let flags = u64_(b, o + 8).unwrap_or(0);
            sec_kind.push(if flags & 4 != 0 {
                b't'
            } else if ty == 8 {
                b'b'
            } else if flags & 1 == 0 {
                b'r'
            } else {
                b'd'
            });
            if ty == 2 {
                let off = u64_(b, o + 24).unwrap_or(0) as usize;
                let size = u64_(b, o + 32).unwrap_or(0) as usize;
                let link = u32_(b, o + 40).unwrap_or(0) as usize;
                symtab = Some((off, size, link));
            }
        }
        let (off, size, link) = symtab.ok_or_else(|| bad("no .symtab"))?;
        let lo = sh(link).ok_or_else(|| bad("bad .strtab link"))?;
        let stroff = u64_(b, lo + 24).unwrap_or(0) as usize;
        let strsize = u64_(b, lo + 32).unwrap_or(0) as usize;
        if off.saturating_add(size) > b.len() || stroff.saturating_add(strsize) > b.len() {
            return Err(bad("symbol table beyond end of file"));
        }
        Ok(Symbols {
            data,
            symtab: (off, size / 24),
            strtab: (stroff, strsize),
            sec_kind,
            kaslr,
            names: Mutex::new(HashMap::new()),
            by_addr: OnceLock::new(),
        })
    }

    fn bytes(&self) -> &[u8] {
        (*self.data).as_ref()
    }

    fn raw(&self, i: u32) -> Option<Raw> {
        let b = self.bytes();
        let o = self.symtab.0 + i as usize * 24;
        Some(Raw {
            name_off: u32_(b, o)? as u32,
            info: *b.get(o + 4)?,
            shndx: u16_(b, o + 6)? as u16,
            value: u64_(b, o + 8)?,
            size: u64_(b, o + 16)?,
        })
    }

    fn name_bytes(&self, off: u32) -> &[u8] {
        let b = self.bytes();
        let s = self.strtab.0 + off as usize;
        let e = self.strtab.0 + self.strtab.1;
        let t = b.get(s..e).unwrap_or(&[]);
        let z = memchr0(t);
        &t[..z]
    }

    fn wanted(r: &Raw) -> bool {
        let ty = r.info & 0xf;
        r.shndx != 0 && ty <= 2 && r.name_off != 0
    }

    fn reloc(&self, a: u64) -> u64 {
        if (START_KERNEL_MAP..KERNEL_IMAGE_END).contains(&a) {
            a.wrapping_add(self.kaslr)
        } else {
            a
        }
    }

    fn symbol(&self, i: u32) -> Option<Symbol> {
        let r = self.raw(i)?;
        let mut kind = if r.shndx == 0xfff1 {
            'a'
        } else {
            self.sec_kind.get(r.shndx as usize).copied().unwrap_or(b'?') as char
        };
        if matches!(r.info >> 4, 1 | 2) {
            kind = kind.to_ascii_uppercase();
        }
        Some(Symbol {
            name: String::from_utf8_lossy(self.name_bytes(r.name_off)).into_owned(),
            addr: self.reloc(r.value),
            size: r.size,
            kind,
            module: None,
        })
    }

    /// Move kernel-image symbols by the KASLR offset.
    pub fn relocate(&mut self, kaslr: u64) {
        self.kaslr = kaslr;
        self.by_addr = OnceLock::new();
    }

    pub fn len(&self) -> usize {
        self.symtab.1
    }
    pub fn is_empty(&self) -> bool {
        self.symtab.1 == 0
    }

    fn find_index(&self, name: &str) -> Option<u32> {
        if let Ok(c) = self.names.lock() {
            if let Some(r) = c.get(name) {
                return *r;
            }
        }
        let want = name.as_bytes();
        let mut local = None;
        let mut found = None;
        for i in 0..self.symtab.1 as u32 {
            let Some(r) = self.raw(i) else { break };
            if !Self::wanted(&r) {
                continue;
            }
            let s = self.bytes();
            let so = self.strtab.0 + r.name_off as usize;
            // Quick reject on the first bytes before finding the terminator.
            if s.get(so..so + want.len()) != Some(want) || s.get(so + want.len()) != Some(&0) {
                continue;
            }
            // Prefer a global definition over a file-local one of the same name.
            if matches!(r.info >> 4, 1 | 2) {
                found = Some(i);
                break;
            }
            local.get_or_insert(i);
        }
        let r = found.or(local);
        if let Ok(mut c) = self.names.lock() {
            c.insert(name.to_string(), r);
        }
        r
    }

    pub fn addr(&self, name: &str) -> Option<u64> {
        self.get(name).map(|s| s.addr)
    }

    pub fn get(&self, name: &str) -> Option<Symbol> {
        self.symbol(self.find_index(name)?)
    }

    fn index(&self) -> &[(u64, u32)] {
        self.by_addr.get_or_init(|| {
            let mut v = Vec::with_capacity(self.symtab.1);
            for i in 0..self.symtab.1 as u32 {
                if let Some(r) = self.raw(i) {
                    if Self::wanted(&r) {
                        v.push((self.reloc(r.value), i));
                    }
                }
            }
            v.sort_unstable();
            v
        })
    }

    /// The symbol holding `addr` and the offset into it. A symbol's extent runs to the next
    /// symbol (kallsyms-style), so the offset can exceed the ELF size.
    pub fn lookup(&self, addr: u64) -> Option<(Symbol, u64)> {
        let idx = self.index();
        let i = idx.partition_point(|&(a, _)| a <= addr);
        let (a, si) = idx[i.checked_sub(1)?];
        if a < START_KERNEL_MAP {
            return None; // per-cpu offsets and absolute values are not code/data addresses
        }
        let off = addr - a;
        if off > (1 << 24) {
            return None;
        }
        // Among symbols at the same address, prefer a function or a global.
        let mut best = si;
        let mut j = i - 1;
        while j > 0 && idx[j - 1].0 == a {
            j -= 1;
            if let (Some(r), Some(rb)) = (self.raw(idx[j].1), self.raw(best)) {
                if (r.info >> 4 == 1 && rb.info >> 4 != 1)
                    || (r.info & 0xf == 2 && rb.info & 0xf != 2)
                {
                    best = idx[j].1;
                }
            }
        }
        Some((self.symbol(best)?, off))
    }

    /// The per-CPU variable holding the per-CPU offset `addr` (`.data..percpu` is linked at 0
    /// and not moved by KASLR): the nearest symbol at or below it inside
    /// `__per_cpu_start..__per_cpu_end`, absolute symbols aside.
    pub fn lookup_percpu(&self, addr: u64) -> Option<(Symbol, u64)> {
        let (start, end) = (self.addr("__per_cpu_start")?, self.addr("__per_cpu_end")?);
        if !(start..end).contains(&addr) {
            return None;
        }
        let idx = self.index();
        let mut i = idx.partition_point(|&(a, _)| a <= addr);
        while i > 0 {
            i -= 1;
            let (a, si) = idx[i];
            if a < start {
                break;
            }
            let r = self.raw(si)?;
            // absolute symbols (SHN_ABS) and the section markers are not variables
            let name = self.name_bytes(r.name_off);
            if r.shndx == 0xfff1 || name.starts_with(b"__per_cpu_") {
                continue;
            }
            return Some((self.symbol(si)?, addr - a));
        }
        None
    }

    /// Every symbol name (for tab completion).
    pub fn names(&self) -> Vec<String> {
        let mut v = Vec::with_capacity(self.symtab.1);
        for i in 0..self.symtab.1 as u32 {
            if let Some(r) = self.raw(i) {
                if Self::wanted(&r) {
                    v.push(String::from_utf8_lossy(self.name_bytes(r.name_off)).into_owned());
                }
            }
        }
        v
    }
}

fn memchr0(t: &[u8]) -> usize {
    t.iter().position(|&c| c == 0).unwrap_or(t.len())
}
