//! One ELF file (vmlinux or a module `.ko`): its symbol table, its sections (decompressed, and
//! relocated for relocatable objects) and its build-id.
//!
//! The file is memory-mapped and the mapping lives for the rest of the process (see [`Binary::open`]),
//! so DWARF readers can borrow section data without copying hundreds of megabytes.

use crate::Error;
use object::{Object, ObjectSection, ObjectSymbol, RelocationKind, RelocationTarget, SectionKind};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// `ET_EXEC`/`ET_DYN` (vmlinux) or `ET_REL` (module `.ko`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ElfKind {
    Executable,
    Relocatable,
}

/// A symbol of the ELF symtab, at its link address (for `ET_REL`, at the address of our own
/// section layout, see [`Binary::section_base`]).
#[derive(Debug, Clone, Copy)]
pub struct Sym {
    pub name: &'static str,
    pub address: u64,
    /// `st_size` (0 for assembly labels).
    pub size: u64,
    /// Section index, used to bound the last symbol of a section.
    pub section: usize,
    pub is_function: bool,
    /// `STT_OBJECT`: never a function-name fallback.
    pub is_object: bool,
}

/// A section we laid out (`ET_REL`) or found (`ET_EXEC`).
#[derive(Debug, Clone)]
pub struct SectionInfo {
    pub index: usize,
    pub name: String,
    pub address: u64,
    pub size: u64,
    pub executable: bool,
    /// The section's bytes in the file (not relocated; empty for NOBITS).
    pub data: &'static [u8],
}

pub struct Binary {
    pub path: PathBuf,
    pub kind: ElfKind,
    pub arch: object::Architecture,
    pub little_endian: bool,
    pub build_id: Option<Vec<u8>>,
    /// Text-ish symbols sorted by address.
    pub symbols: Vec<Sym>,
    by_name: HashMap<&'static str, Vec<u32>>,
    pub sections: Vec<SectionInfo>,
    /// Debug sections by name (`.debug_info`, ...), decompressed and relocated.
    debug: HashMap<String, &'static [u8]>,
    pub(crate) dwarf: std::sync::OnceLock<Result<crate::dwarf::DwarfIndex, Error>>,
    /// `ET_REL` code relocations: (site, S + A), sorted by site.
    code_relocs: Vec<(u64, u64)>,
    /// `ET_REL`: where the kernel's module loader puts each executable section (see
    /// [`ModuleText`]), by section index.
    module_text: HashMap<usize, ModuleText>,
    /// `ET_REL`: the size of each of the loader's text regions (core, init).
    module_text_end: [u64; 2],
}

/// Folklore: the module loader (`layout_sections`, kernel/module/main.c) packs the executable
/// sections of a `.ko` into one text region in section-header order, each at its `sh_addralign`
/// (`.init*` sections into a second region, freed after init), and kallsyms sizes a module
/// symbol by the next symbol *of that region*, else the region's end
/// (`find_kallsyms_symbol`). So the last function of `.text` is sized up to the first symbol of
/// the next text section (on 6.12 the `__pfx_` padding of `.exit.text`): `kmlab_do_leaf_cfs_rq`
/// has st_size 0xa8, ends `.text` at 0x1108, and prints /0xb0. Until 6.4 the region's end was
/// page-aligned (`core_layout.text_size`), since 6.4 (`mod_mem`) it is not. Pinned by
/// tests/lab.rs::every_lab_frame_matches_binutils_addr2line (no kmlab frame of the lab's
/// consoles may report a size mismatch).
#[derive(Debug, Clone, Copy)]
struct ModuleText {
    /// 0: core text, 1: init text.
    region: usize,
    /// Offset of the section in its region.
    offset: u64,
    /// The section's address in our layout.
    address: u64,
}

const MODULE_PAGE: u64 = 4096;

impl std::fmt::Debug for Binary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binary")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .field("symbols", &self.symbols.len())
            .finish()
    }
}

/// Base address of our layout of `ET_REL` allocatable sections. Nonzero so that a real code address
/// is never confused with DWARF's "0 = discarded" tombstone.
const REL_LAYOUT_BASE: u64 = 0x1000_0000;

fn leak_bytes(v: Vec<u8>) -> &'static [u8] {
    Box::leak(v.into_boxed_slice())
}

impl Binary {
    /// Opens and indexes an ELF file, xz-compressed or not (see [`crate::compressed`]). The
    /// mapping (and any decompressed file or section, or relocated section) is
    /// deliberately kept for the life of the process: callers open each file once (the
    /// [`crate::Symbolizer`] caches them).
    pub fn open(path: &Path) -> Result<Binary, Error> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the file is opened read-only; like every debugger we accept that another
        // process truncating it while we run is outside our guarantees.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        // `.ko.xz` (6.12's image modules): parsed from its decompressed bytes.
        let data: &'static [u8] = match crate::compressed::decompress(&map) {
            Ok(Some(v)) => leak_bytes(v),
            Ok(None) => Box::leak(Box::new(map)),
            Err(e) => return Err(Error::BadElf(path.to_owned(), e)),
        };
        Self::parse(path, data)
    }

    /// Parses an ELF image that lives for the rest of the process.
    pub fn parse(path: &Path, data: &'static [u8]) -> Result<Binary, Error> {
        let bad = |m: String| Error::BadElf(path.to_owned(), m);
        let obj = object::File::parse(data).map_err(|e| bad(e.to_string()))?;
        if obj.format() != object::BinaryFormat::Elf {
            return Err(bad("not an ELF file".into()));
        }
        let kind = match obj.kind() {
            object::ObjectKind::Relocatable => ElfKind::Relocatable,
            _ => ElfKind::Executable,
        };
        let build_id = obj.build_id().ok().flatten().map(|b| b.to_vec());

        // Sections: for ET_REL, lay out allocatable sections one after the other so that every
        // code address is unique (binutils' addr2line instead takes section-relative offsets, `-j`).
        let mut sections = Vec::new();
        let mut base_of: HashMap<usize, u64> = HashMap::new();
        let mut next = REL_LAYOUT_BASE;
        for s in obj.sections() {
            let idx = s.index().0;
            let name = s.name().unwrap_or("").to_string();
            let alloc = matches!(
                s.kind(),
                SectionKind::Text
                    | SectionKind::Data
                    | SectionKind::ReadOnlyData
                    | SectionKind::ReadOnlyString
                    | SectionKind::UninitializedData
                    | SectionKind::Tls
                    | SectionKind::UninitializedTls
            );
            let address = if kind == ElfKind::Relocatable {
                if !alloc {
                    continue;
                }
                let align = s.align().clamp(1, 1 << 16);
                next = next
                    .checked_add(align - 1)
                    .ok_or_else(|| bad("layout overflow".into()))?
                    & !(align - 1);
                let a = next;
                next = next.saturating_add(s.size().max(1));
                a
            } else {
                s.address()
            };
            base_of.insert(idx, address);
            sections.push(SectionInfo {
                index: idx,
                name,
                address,
                size: s.size(),
                executable: s.kind() == SectionKind::Text,
                data: s.data().unwrap_or(&[]),
            });
        }

        // Symbols.
        let mut symbols = Vec::new();
        for sym in obj.symbols() {
            let Some(sec) = sym.section_index() else {
                continue;
            };
            let name = match sym.name() {
                Ok(n) if !n.is_empty() => n,
                _ => continue,
            };
            if name.starts_with(".L") || name.starts_with("$") {
                continue;
            }
            if !matches!(
                sym.kind(),
                object::SymbolKind::Text | object::SymbolKind::Data | object::SymbolKind::Unknown
            ) {
                continue;
            }
            let Some(base) = base_of.get(&sec.0) else {
                continue;
            };
            let address = if kind == ElfKind::Relocatable {
                base.wrapping_add(sym.address())
            } else {
                sym.address()
            };
            symbols.push(Sym {
                name,
                address,
                size: sym.size(),
                section: sec.0,
                is_function: sym.kind() == object::SymbolKind::Text,
                is_object: sym.kind() == object::SymbolKind::Data,
            });
        }
        symbols.sort_by(|a, b| {
            a.address
                .cmp(&b.address)
                .then(b.is_function.cmp(&a.is_function))
        });
        let mut by_name: HashMap<&'static str, Vec<u32>> = HashMap::with_capacity(symbols.len());
        for (i, s) in symbols.iter().enumerate() {
            by_name.entry(s.name).or_default().push(i as u32);
        }

        // Debug sections.
        let mut debug = HashMap::new();
        for s in obj.sections() {
            let Ok(name) = s.name() else { continue };
            let dname = if let Some(rest) = name.strip_prefix(".zdebug_") {
                format!(".debug_{rest}")
            } else if name.starts_with(".debug_") {
                name.to_string()
            } else {
                continue;
            };
            let raw = s
                .uncompressed_data()
                .map_err(|e| bad(format!("section {name}: {e}")))?;
            // Folklore: vmlinux keeps `.rela.debug_*` from `--emit-relocs` (for KASLR tools), but they
            // are already applied; applying them again costs ~1 GB RSS and seconds (REFERENCE §9).
            // Only ET_REL files (modules) get their relocations applied. Pinned by
            // tests/lab.rs::vmlinux_matches_addr2line (speed) and module_matches_addr2line.
            let bytes: &'static [u8] =
                if kind == ElfKind::Relocatable && s.relocations().next().is_some() {
                    let mut buf = raw.into_owned();
                    apply_relocations(&obj, &s, &mut buf, &base_of)
                        .map_err(|m| bad(format!("{name}: {m}")))?;
                    leak_bytes(buf)
                } else {
                    match raw {
                        std::borrow::Cow::Borrowed(b) => b,
                        std::borrow::Cow::Owned(v) => leak_bytes(v),
                    }
                };
            debug.insert(dname, bytes);
        }

        // The module loader's text regions (ET_REL only).
        let mut module_text = HashMap::new();
        let mut module_text_end = [0u64; 2];
        if kind == ElfKind::Relocatable {
            for s in obj.sections() {
                let object::SectionFlags::Elf { sh_flags } = s.flags() else {
                    continue;
                };
                let want = u64::from(object::elf::SHF_ALLOC | object::elf::SHF_EXECINSTR);
                if sh_flags & want != want || !base_of.contains_key(&s.index().0) {
                    continue;
                }
                let region = usize::from(s.name().unwrap_or("").starts_with(".init"));
                let align = s.align().clamp(1, 1 << 16);
                let end = &mut module_text_end[region];
                let offset = end.saturating_add(align - 1) & !(align - 1);
                *end = offset.saturating_add(s.size());
                module_text.insert(
                    s.index().0,
                    ModuleText {
                        region,
                        offset,
                        address: base_of[&s.index().0],
                    },
                );
            }
        }

        // Code relocations of a relocatable object: the site (our layout) -> S + A, so that a
        // RIP-relative operand or a call in a `.ko` can be resolved to the symbol it names.
        let mut code_relocs = Vec::new();
        if kind == ElfKind::Relocatable {
            for s in obj.sections() {
                if s.kind() != SectionKind::Text {
                    continue;
                }
                let Some(&base) = base_of.get(&s.index().0) else {
                    continue;
                };
                for (off, rel) in s.relocations() {
                    let target = match rel.target() {
                        RelocationTarget::Symbol(si) => match obj.symbol_by_index(si) {
                            Ok(sym) => match sym.section_index().and_then(|x| base_of.get(&x.0)) {
                                Some(b) => b.wrapping_add(sym.address()),
                                None => continue,
                            },
                            Err(_) => continue,
                        },
                        RelocationTarget::Section(si) => match base_of.get(&si.0) {
                            Some(b) => *b,
                            None => continue,
                        },
                        _ => continue,
                    };
                    code_relocs.push((
                        base.wrapping_add(off),
                        target.wrapping_add(rel.addend() as u64),
                    ));
                }
            }
            code_relocs.sort_unstable();
        }

        Ok(Binary {
            code_relocs,
            module_text,
            module_text_end,
            path: path.to_owned(),
            kind,
            arch: obj.architecture(),
            little_endian: obj.is_little_endian(),
            build_id,
            symbols,
            by_name,
            sections,
            debug,
            dwarf: std::sync::OnceLock::new(),
        })
    }

    /// Up to `len` bytes of a section at a link-time address (our layout for `ET_REL`), as stored
    /// in the file: code of a `.ko` still has its relocation sites zeroed (calls, globals), which
    /// does not change the instructions' register operands.
    pub fn bytes_at(&self, addr: u64, len: usize) -> Option<&'static [u8]> {
        let s = self
            .sections
            .iter()
            .filter(|s| s.size > 0 && !s.data.is_empty())
            .find(|s| addr >= s.address && addr < s.address + s.size)?;
        let off = usize::try_from(addr - s.address).ok()?;
        let end = off.saturating_add(len).min(s.data.len());
        s.data.get(off..end)
    }

    /// For a relocation site in the code of a `.ko` (our layout): `S + A`. A PC-relative operand
    /// ending at `next` then addresses `next + (S + A) - site`.
    pub fn code_relocation(&self, site: u64) -> Option<u64> {
        let i = self.code_relocs.partition_point(|r| r.0 < site);
        self.code_relocs.get(i).filter(|r| r.0 == site).map(|r| r.1)
    }

    /// The data object (`STT_OBJECT`) containing an address: (symbol, offset into it).
    pub fn data_symbol_at(&self, addr: u64) -> Option<(&Sym, u64)> {
        let n = self.symbols.partition_point(|s| s.address <= addr);
        self.symbols[..n]
            .iter()
            .rev()
            .take(64)
            .find(|s| s.is_object && addr < s.address + s.size.max(1))
            .map(|s| (s, addr - s.address))
    }

    pub fn has_dwarf(&self) -> bool {
        self.debug.contains_key(".debug_info")
    }

    pub(crate) fn debug_section(&self, name: &str) -> &'static [u8] {
        self.debug.get(name).copied().unwrap_or(&[])
    }

    /// Build-id as lower-case hex.
    pub fn build_id_hex(&self) -> Option<String> {
        self.build_id
            .as_ref()
            .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
    }

    /// All symbols with this name (static functions can share a name).
    pub fn symbols_named(&self, name: &str) -> impl Iterator<Item = (usize, &Sym)> {
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .map(move |&i| (i as usize, &self.symbols[i as usize]))
    }

    /// The symbol containing `addr`: the last symbol at or below it (preferring functions at the
    /// same address), with its kallsyms-style size.
    pub fn symbol_at(&self, addr: u64) -> Option<(usize, &Sym)> {
        let n = self.symbols.partition_point(|s| s.address <= addr);
        if n == 0 {
            return None;
        }
        let top = self.symbols[n - 1].address;
        let first = self.symbols[..n].partition_point(|s| s.address < top);
        let i = (first..n)
            .find(|&i| self.symbols[i].is_function)
            .unwrap_or(n - 1);
        let s = &self.symbols[i];
        // Beyond the end of its section: not in this symbol.
        if let Some(sec) = self.sections.iter().find(|x| x.index == s.section) {
            if addr >= sec.address.saturating_add(sec.size) && sec.size > 0 {
                return None;
            }
        }
        Some((i, s))
    }

    /// Where the module loader puts a symbol of a `.ko`'s text: (region, offset in it).
    fn module_text_address(&self, s: &Sym) -> Option<(usize, u64)> {
        let t = self.module_text.get(&s.section)?;
        Some((
            t.region,
            t.offset.checked_add(s.address.checked_sub(t.address)?)?,
        ))
    }

    /// The size kallsyms gives a module's text symbol, as laid out by the module loader (see
    /// [`ModuleText`]); with, for the last symbol of its region, the pre-6.4 page-aligned one.
    fn module_kallsyms_size(&self, s: &Sym) -> Option<(u64, Option<u64>)> {
        let (region, at) = self.module_text_address(s)?;
        let next = self
            .symbols
            .iter()
            .filter_map(|x| self.module_text_address(x))
            .filter(|&(r, a)| r == region && a > at)
            .map(|(_, a)| a)
            .min();
        Some(match next {
            Some(n) => (n - at, None),
            None => {
                let end = self.module_text_end[region];
                let paged = end.saturating_add(MODULE_PAGE - 1) & !(MODULE_PAGE - 1);
                (end.saturating_sub(at), Some(paged.saturating_sub(at)))
            }
        })
    }

    /// Whether a printed `/0xsize` is one kallsyms can give this symbol ([`Binary::kallsyms_size`],
    /// or for a module's last text symbol, the page-aligned size of kernels before 6.4).
    pub fn kallsyms_size_matches(&self, index: usize, printed: u64) -> bool {
        if self.kallsyms_size(index) == printed {
            return true;
        }
        let Some(s) = self.symbols.get(index) else {
            return false;
        };
        self.module_kallsyms_size(s)
            .is_some_and(|(_, paged)| paged == Some(printed))
    }

    /// kallsyms' idea of a symbol's size: the distance to the next symbol with a higher address
    /// (REFERENCE §6: why `/0x3f0` can exceed `st_size` 0x3e3), bounded by the section's end;
    /// for a module's text, in the module loader's layout.
    pub fn kallsyms_size(&self, index: usize) -> u64 {
        let s = &self.symbols[index];
        if let Some((size, _)) = self.module_kallsyms_size(s) {
            return size;
        }
        let next = self.symbols[index..].iter().find(|x| x.address > s.address);
        let sec_end = self
            .sections
            .iter()
            .find(|x| x.index == s.section)
            .map(|x| x.address.saturating_add(x.size));
        match (next, sec_end) {
            (Some(n), Some(e)) if n.section == s.section || n.address < e => {
                n.address.min(e).saturating_sub(s.address)
            }
            (_, Some(e)) if e > s.address => e - s.address,
            (Some(n), None) => n.address.saturating_sub(s.address),
            _ => s.size,
        }
    }

    /// The function name binutils falls back to when DWARF has no subprogram for an address
    /// (assembly): `_bfd_elf_find_function`'s "better fit" among `STT_FUNC`/`STT_NOTYPE` symbols
    /// of the same section: the closest start at or below; at the same start, one that covers the
    /// address (the smallest, a function first), else the larger.
    pub fn symtab_function(&self, addr: u64) -> Option<&'static str> {
        let sec = self
            .sections
            .iter()
            .find(|s| s.size > 0 && addr >= s.address && addr < s.address + s.size)?
            .index;
        let n = self.symbols.partition_point(|s| s.address <= addr);
        let mut best: Option<&Sym> = None;
        for s in self.symbols[..n].iter().rev() {
            if s.section != sec || s.is_object {
                continue;
            }
            if let Some(b) = best {
                if s.address < b.address {
                    break;
                }
                let b_covers = b.address + b.size > addr;
                let s_covers = s.address + s.size > addr;
                let better = if !b_covers {
                    s.size > b.size
                } else if s_covers {
                    s.size < b.size || (s.size == b.size && s.is_function && !b.is_function)
                } else {
                    false
                };
                if better {
                    best = Some(s);
                }
            } else {
                best = Some(s);
            }
        }
        best.map(|s| s.name)
    }

    /// Section name and offset in it, for an address of our layout (what binutils' `addr2line -j`
    /// takes for a relocatable object).
    pub fn section_relative(&self, addr: u64) -> Option<(&str, u64)> {
        self.sections
            .iter()
            .filter(|s| s.size > 0)
            .find(|s| addr >= s.address && addr < s.address + s.size)
            .map(|s| (s.name.as_str(), addr - s.address))
    }
}

/// Applies a relocatable object's relocations to one of its debug sections.
fn apply_relocations(
    obj: &object::File<'static>,
    section: &object::Section<'static, '_>,
    buf: &mut [u8],
    base_of: &HashMap<usize, u64>,
) -> Result<(), String> {
    let le = obj.is_little_endian();
    for (offset, rel) in section.relocations() {
        let size = rel.size();
        if rel.kind() != RelocationKind::Absolute || !(size == 32 || size == 64) {
            // Debug sections only use absolute 32/64-bit relocations; anything else is skipped
            // rather than guessed.
            continue;
        }
        let sym_value = match rel.target() {
            RelocationTarget::Symbol(si) => {
                let Ok(sym) = obj.symbol_by_index(si) else {
                    continue;
                };
                let base = sym
                    .section_index()
                    .and_then(|i| base_of.get(&i.0).copied())
                    .unwrap_or(0);
                base.wrapping_add(sym.address())
            }
            RelocationTarget::Section(si) => base_of.get(&si.0).copied().unwrap_or(0),
            _ => continue,
        };
        let off = usize::try_from(offset).map_err(|_| "relocation offset overflow".to_string())?;
        let n = (size / 8) as usize;
        let end = off.checked_add(n).ok_or("relocation offset overflow")?;
        if end > buf.len() {
            return Err(format!("relocation at {offset:#x} beyond the section"));
        }
        let field = &mut buf[off..end];
        let implicit = if rel.has_implicit_addend() {
            read_uint(field, le) as i64
        } else {
            0
        };
        let value = sym_value
            .wrapping_add(rel.addend() as u64)
            .wrapping_add(implicit as u64);
        write_uint(field, value, le);
    }
    Ok(())
}

fn read_uint(b: &[u8], le: bool) -> u64 {
    let mut v = 0u64;
    if le {
        for (i, x) in b.iter().enumerate() {
            v |= u64::from(*x) << (8 * i);
        }
    } else {
        for x in b {
            v = (v << 8) | u64::from(*x);
        }
    }
    v
}

fn write_uint(b: &mut [u8], v: u64, le: bool) {
    let n = b.len();
    for i in 0..n {
        let byte = (v >> (8 * i)) as u8;
        if le {
            b[i] = byte;
        } else {
            b[n - 1 - i] = byte;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn truncated_or_garbage_elf_is_an_error() {
        let p = Path::new("x");
        assert!(Binary::parse(p, b"").is_err());
        assert!(Binary::parse(p, b"\x7fELF\x02\x01\x01\0garbage").is_err());
        let junk: &'static [u8] = leak_bytes(vec![0xffu8; 4096]);
        assert!(Binary::parse(p, junk).is_err());
    }
    #[test]
    fn uint_roundtrip() {
        let mut b = [0u8; 4];
        write_uint(&mut b, 0x11223344, true);
        assert_eq!(b, [0x44, 0x33, 0x22, 0x11]);
        assert_eq!(read_uint(&b, true), 0x11223344);
        write_uint(&mut b, 0x11223344, false);
        assert_eq!(read_uint(&b, false), 0x11223344);
    }
}
