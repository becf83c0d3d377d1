//! Kernel symbols: vmlinux's `.symtab` with the KASLR offset applied, plus module symbols
//! read from the dump.

use crate::mem::{KERNEL_IMAGE_END, START_KERNEL_MAP};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Symbol {
    pub name: String,
    pub addr: u64,
    pub size: u64,
    /// `nm`-style type letter (T, t, D, d, B, b, R, r, A, ...).
    pub kind: char,
    /// The module that holds it, or None for vmlinux.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
}

#[derive(Default)]
pub struct Symbols {
    syms: Vec<Symbol>,
    by_name: HashMap<String, usize>,
}

impl Symbols {
    /// Read vmlinux's symbol table, relocating kernel-image symbols by `kaslr`.
    ///
    /// Folklore: per-cpu variables are linked at small addresses (section `.data..percpu` at
    /// 0) and are *not* relocated by KASLR; only addresses inside the image mapping
    /// (`__START_KERNEL_map` .. +1 GiB) move.
    pub fn from_elf(data: &[u8], kaslr: u64) -> Result<Symbols, object::Error> {
        use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind, SymbolSection};
        let f = object::File::parse(data)?;
        let mut syms = Vec::new();
        for s in f.symbols() {
            let Ok(name) = s.name() else { continue };
            if name.is_empty() || s.kind() == SymbolKind::File || s.kind() == SymbolKind::Section {
                continue;
            }
            if matches!(s.section(), SymbolSection::Undefined) {
                continue;
            }
            let mut addr = s.address();
            if (START_KERNEL_MAP..KERNEL_IMAGE_END).contains(&addr) {
                addr = addr.wrapping_add(kaslr);
            }
            let mut kind = match s.section() {
                SymbolSection::Absolute => 'a',
                SymbolSection::Section(i) => match f.section_by_index(i).map(|x| x.kind()) {
                    Ok(SectionKind::Text) => 't',
                    Ok(SectionKind::ReadOnlyData | SectionKind::ReadOnlyString) => 'r',
                    Ok(SectionKind::UninitializedData) => 'b',
                    _ => 'd',
                },
                _ => '?',
            };
            if s.is_global() {
                kind = kind.to_ascii_uppercase();
            }
            syms.push(Symbol {
                name: name.to_string(),
                addr,
                size: s.size(),
                kind,
                module: None,
            });
        }
        Ok(Self::from_vec(syms))
    }

    pub fn from_vec(mut syms: Vec<Symbol>) -> Symbols {
        syms.sort_by(|a, b| a.addr.cmp(&b.addr).then(a.name.cmp(&b.name)));
        let mut by_name = HashMap::with_capacity(syms.len());
        for (i, s) in syms.iter().enumerate() {
            // Prefer global definitions for duplicated static names.
            let e = by_name.entry(s.name.clone()).or_insert(i);
            if syms[*e].kind.is_ascii_lowercase() && s.kind.is_ascii_uppercase() {
                *e = i;
            }
        }
        Symbols { syms, by_name }
    }

    /// Move kernel-image symbols by the KASLR offset `delta` (order is preserved).
    pub fn relocate(&mut self, delta: u64) {
        for s in &mut self.syms {
            if s.module.is_none() && (START_KERNEL_MAP..KERNEL_IMAGE_END).contains(&s.addr) {
                s.addr = s.addr.wrapping_add(delta);
            }
        }
    }

    pub fn add(&mut self, more: Vec<Symbol>) {
        let mut all = std::mem::take(&mut self.syms);
        all.extend(more);
        *self = Self::from_vec(all);
    }

    pub fn len(&self) -> usize {
        self.syms.len()
    }
    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    pub fn addr(&self, name: &str) -> Option<u64> {
        self.by_name.get(name).map(|&i| self.syms[i].addr)
    }
    pub fn get(&self, name: &str) -> Option<&Symbol> {
        self.by_name.get(name).map(|&i| &self.syms[i])
    }

    /// The symbol holding `addr` and the offset into it. Sizes run to the next symbol when
    /// the ELF size is 0 (kallsyms-style).
    pub fn lookup(&self, addr: u64) -> Option<(&Symbol, u64)> {
        let i = self.syms.partition_point(|s| s.addr <= addr);
        let s = &self.syms[i.checked_sub(1)?];
        if s.addr < START_KERNEL_MAP && s.module.is_none() {
            return None; // per-cpu offsets and absolute values are not code/data addresses
        }
        let off = addr - s.addr;
        let next = self.syms.get(i).map(|n| n.addr).unwrap_or(u64::MAX);
        if off >= s.size.max(1) && addr >= next {
            return None;
        }
        if off > (1 << 24) {
            return None;
        }
        Some((s, off))
    }

    /// Names that start with `prefix` (for tab completion).
    pub fn complete(&self, prefix: &str, max: usize) -> Vec<String> {
        let mut v: Vec<String> = self
            .by_name
            .keys()
            .filter(|k| k.starts_with(prefix))
            .take(max)
            .cloned()
            .collect();
        v.sort();
        v
    }
}
