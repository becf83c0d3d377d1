//! kmortem-symbols: kernel addresses and `func+0xoff/0xsize [module]` frames to symbols,
//! `file:line:column` and inlined-frame chains.
//!
//! Sources, best first: vmlinux / module `.ko` DWARF (compressed sections included; `.ko` files are
//! `ET_REL` and get their `.rela.debug_*` applied), the ELF symtab, `System.map`, `/proc/kallsyms`.
//! DWARF is read lazily: `.debug_aranges` maps an address to its compilation unit, and only those
//! units are parsed (see `dwarf.rs`).

pub mod compressed;
pub mod dwarf;
pub mod elf;
pub mod locate;
pub mod symmap;
pub mod trace;
pub mod vars;

pub use dwarf::SourceFrame;
pub use elf::{Binary, ElfKind};
pub use symmap::{MapFormat, SymbolMap};
pub use vars::{Location, Scope, Value, Variable};

use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("{0}: {1}")]
    Io(PathBuf, String),
    #[error("{0}: not a usable ELF file: {1}")]
    BadElf(PathBuf, String),
    #[error("DWARF: {0}")]
    Dwarf(String),
    #[error("symbol map: {0}")]
    BadMap(String),
}

impl Error {
    pub(crate) fn io(p: &Path, e: std::io::Error) -> Error {
        Error::Io(p.to_owned(), e.to_string())
    }
}

/// Where a resolution came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Dwarf,
    ElfSymtab,
    SystemMap,
    Kallsyms,
    None,
}

/// A frame to resolve, as the oops printed it.
#[derive(Debug, Clone, Default)]
pub struct Query<'a> {
    pub function: Option<&'a str>,
    pub offset: Option<u64>,
    pub size: Option<u64>,
    /// `[module]`, possibly with a build-id after a space (`CONFIG_STACKTRACE_BUILD_ID`).
    pub module: Option<&'a str>,
    /// Runtime address, when printed.
    pub address: Option<u64>,
    /// `true` for call-trace frames: the printed address is a return address, so file:line is
    /// looked up at address - 1 (the call instruction), as the kernel's own `%pB` does for names.
    pub return_address: bool,
}

/// The printed `/0xsize` does not match the symbol in the binary: probably the wrong vmlinux.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SizeMismatch {
    pub printed: u64,
    pub binary: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Resolution {
    pub source: Source,
    /// The binary (vmlinux or .ko) or map used.
    pub binary: Option<PathBuf>,
    /// Link-time address of the frame (symbol + offset). For a module this is in kmortem's own
    /// layout of the `.ko`'s sections; see `section`.
    pub address: Option<u64>,
    /// Address whose file:line was looked up (address - 1 for return addresses).
    pub lookup_address: Option<u64>,
    /// Section-relative form of `lookup_address` for modules (what `addr2line -j SECTION` takes).
    pub section: Option<(String, u64)>,
    pub symbol: Option<String>,
    pub offset: Option<u64>,
    /// kallsyms-style size of the symbol in the binary (distance to the next symbol).
    pub size: Option<u64>,
    pub size_mismatch: Option<SizeMismatch>,
    /// Innermost first.
    pub frames: Vec<SourceFrame>,
    /// Build-id printed in the trace that does not match the binary's.
    pub build_id_mismatch: Option<(String, String)>,
}

impl Resolution {
    /// A resolution that found nothing (no binary, no symbol): the base for partial results.
    pub fn empty() -> Resolution {
        Resolution {
            source: Source::None,
            binary: None,
            address: None,
            lookup_address: None,
            section: None,
            symbol: None,
            offset: None,
            size: None,
            size_mismatch: None,
            frames: Vec::new(),
            build_id_mismatch: None,
        }
    }
}

/// Splits `kmlab` / `kmlab 0123abcd...` (build-id) / `kmlab(OE)` into name and build-id.
pub fn split_module(m: &str) -> (&str, Option<&str>) {
    let m = m.trim();
    let (name, rest) = match m.find([' ', '\t']) {
        Some(i) => (&m[..i], Some(m[i..].trim())),
        None => (m, None),
    };
    let name = name.split('(').next().unwrap_or(name);
    let bid = rest.filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_hexdigit()));
    (name, bid)
}

/// A kernel source path for display, relative to the tree (the grammar's
/// [`kmortem_oops::line::kernel_relative`]).
pub use kmortem_oops::line::kernel_relative;

fn normalize_module(n: &str) -> String {
    n.replace('-', "_")
}

/// Resolves frames of one kernel: vmlinux, modules, optional symbol map, KASLR offset.
#[derive(Default)]
pub struct Symbolizer {
    pub vmlinux: Option<Arc<Binary>>,
    pub map: Option<SymbolMap>,
    pub map_path: Option<PathBuf>,
    /// runtime = link + kaslr_offset.
    pub kaslr_offset: Option<u64>,
    module_dirs: Vec<PathBuf>,
    module_index: Option<HashMap<String, PathBuf>>,
    modules: HashMap<String, Option<Arc<Binary>>>,
    /// Human notes collected along the way (unreadable module files, ...).
    pub notes: Vec<String>,
}

impl Symbolizer {
    pub fn new() -> Symbolizer {
        Symbolizer::default()
    }

    pub fn set_vmlinux(&mut self, path: &Path) -> Result<(), Error> {
        self.vmlinux = Some(Arc::new(Binary::open(path)?));
        Ok(())
    }

    pub fn set_map(&mut self, path: &Path) -> Result<(), Error> {
        let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        self.map = Some(SymbolMap::parse(&String::from_utf8_lossy(&text))?);
        self.map_path = Some(path.to_owned());
        Ok(())
    }

    /// Directories searched (recursively) for `NAME.ko` (with `-`/`_` treated alike).
    pub fn add_module_dir(&mut self, dir: &Path) {
        self.module_dirs.push(dir.to_owned());
        self.module_index = None;
    }

    /// Uses an explicit `.ko` for a module name.
    pub fn add_module_file(&mut self, name: &str, path: &Path) -> Result<(), Error> {
        let b = Binary::open(path)?;
        self.modules
            .insert(normalize_module(name), Some(Arc::new(b)));
        Ok(())
    }

    pub fn module_paths(&mut self) -> &HashMap<String, PathBuf> {
        if self.module_index.is_none() {
            let mut idx = HashMap::new();
            for d in &self.module_dirs {
                locate::index_modules(d, &mut idx, 0);
            }
            self.module_index = Some(idx);
        }
        self.module_index.get_or_insert_with(HashMap::new)
    }

    /// Leaves module `name` without debug info from now on (its file is of another build):
    /// its frames keep the dump's own symbols and get no file:line.
    pub fn reject_module(&mut self, name: &str) {
        self.modules.insert(normalize_module(name), None);
    }

    /// The `.ko` for a module, opened once.
    pub fn module(&mut self, name: &str) -> Option<Arc<Binary>> {
        let key = normalize_module(name);
        if let Some(m) = self.modules.get(&key) {
            return m.clone();
        }
        let path = self.module_paths().get(&key).cloned();
        let bin = match path {
            Some(p) => match Binary::open(&p) {
                Ok(b) => Some(Arc::new(b)),
                Err(e) => {
                    self.notes.push(format!("module {name}: {e}"));
                    None
                }
            },
            None => None,
        };
        self.modules.insert(key, bin.clone());
        bin
    }

    /// Learns the KASLR offset from a frame that carries both a runtime address and a name
    /// (`[<ffffffff9a2b3c4d>] func+0x1d/0x50`, or a RIP value next to `RIP: func+off`).
    pub fn learn_kaslr(
        &mut self,
        function: &str,
        offset: u64,
        size: Option<u64>,
        runtime: u64,
    ) -> Option<u64> {
        if self.kaslr_offset.is_some() {
            return self.kaslr_offset;
        }
        let link = self.vmlinux_address(function, offset, size).or_else(|| {
            let m = self.map.as_ref()?;
            let i = *m.find(function, None).first()?;
            Some(m.symbols[i].address + offset)
        })?;
        let off = runtime.wrapping_sub(link);
        // KASLR moves the kernel by multiples of 2 MiB (CONFIG_PHYSICAL_ALIGN on x86_64).
        if off % 0x1000 != 0 {
            return None;
        }
        self.kaslr_offset = Some(off);
        self.kaslr_offset
    }

    fn vmlinux_address(&self, function: &str, offset: u64, size: Option<u64>) -> Option<u64> {
        let v = self.vmlinux.as_ref()?;
        let (i, _) = pick_symbol(v, function, size)?;
        Some(v.symbols[i].address + offset)
    }

    /// Resolves one frame.
    pub fn resolve(&mut self, q: &Query<'_>) -> Resolution {
        let (module, bid) = match q.module {
            Some(m) => {
                let (n, b) = split_module(m);
                (Some(n), b)
            }
            None => (None, None),
        };
        let bin = match module {
            Some(m) => self.module(m),
            None => self.vmlinux.clone(),
        };
        if let Some(bin) = bin {
            if let Some(r) = self.resolve_in_binary(&bin, q, bid) {
                return r;
            }
        }
        self.resolve_in_map(q, module)
            .unwrap_or_else(Resolution::empty)
    }

    fn resolve_in_binary(
        &self,
        bin: &Binary,
        q: &Query<'_>,
        bid: Option<&str>,
    ) -> Option<Resolution> {
        let mut r = Resolution::empty();
        r.binary = Some(bin.path.clone());
        if let (Some(want), Some(have)) = (bid, bin.build_id_hex()) {
            if !have.starts_with(&want.to_ascii_lowercase()) {
                r.build_id_mismatch = Some((want.to_string(), have));
            }
        }
        // Name first (it is what modern traces print), then the runtime address.
        let (idx, addr) = match (q.function, q.offset) {
            (Some(f), Some(off)) => {
                let (i, _) = pick_symbol(bin, f, q.size)?;
                (i, bin.symbols[i].address.checked_add(off)?)
            }
            _ => {
                let a = q.address?;
                let link = if bin.kind == ElfKind::Executable {
                    a.wrapping_sub(self.kaslr_offset.unwrap_or(0))
                } else {
                    return None;
                };
                let (i, _) = bin.symbol_at(link)?;
                (i, link)
            }
        };
        let sym = &bin.symbols[idx];
        let size = match q.size {
            Some(p) if bin.kallsyms_size_matches(idx, p) => p,
            _ => bin.kallsyms_size(idx),
        };
        r.source = Source::ElfSymtab;
        r.address = Some(addr);
        r.symbol = Some(sym.name.to_string());
        r.offset = Some(addr - sym.address);
        r.size = Some(size);
        if let Some(printed) = q.size {
            if printed != size {
                r.size_mismatch = Some(SizeMismatch {
                    printed,
                    binary: size,
                });
            }
        }
        let lookup = if q.return_address && addr > sym.address {
            addr - 1
        } else {
            addr
        };
        r.lookup_address = Some(lookup);
        if bin.kind == ElfKind::Relocatable {
            r.section = bin
                .section_relative(lookup)
                .map(|(s, o)| (s.to_string(), o));
        }
        if let Ok(frames) = bin.source_frames(lookup) {
            if !frames.is_empty() {
                r.source = Source::Dwarf;
                r.frames = frames;
            }
        }
        Some(r)
    }

    fn resolve_in_map(&self, q: &Query<'_>, module: Option<&str>) -> Option<Resolution> {
        let m = self.map.as_ref()?;
        let mut r = Resolution::empty();
        r.source = match m.format {
            MapFormat::SystemMap => Source::SystemMap,
            MapFormat::Kallsyms => Source::Kallsyms,
        };
        r.binary = self.map_path.clone();
        let idx = match (q.function, q.offset) {
            (Some(f), Some(off)) => {
                let cands = m.find(f, module);
                let i = cands
                    .iter()
                    .copied()
                    .find(|&i| q.size.is_some() && m.size_of(i) == q.size)
                    .or_else(|| cands.first().copied())?;
                r.address = if m.addresses_hidden {
                    None
                } else {
                    Some(m.symbols[i].address + off)
                };
                r.offset = Some(off);
                i
            }
            _ => {
                let a = q.address?;
                let link = if m.format == MapFormat::SystemMap {
                    a.wrapping_sub(self.kaslr_offset.unwrap_or(0))
                } else {
                    a
                };
                let (i, off) = m.lookup(link)?;
                r.address = Some(link);
                r.offset = Some(off);
                i
            }
        };
        r.symbol = Some(m.symbols[idx].name.clone());
        r.size = m.size_of(idx);
        if let (Some(p), Some(s)) = (q.size, r.size) {
            if p != s {
                r.size_mismatch = Some(SizeMismatch {
                    printed: p,
                    binary: s,
                });
            }
        }
        Some(r)
    }
}

/// Picks the symbol for a printed name. Static functions can share a name; the printed kallsyms
/// size tells them apart.
fn pick_symbol<'a>(
    bin: &'a Binary,
    name: &str,
    size: Option<u64>,
) -> Option<(usize, &'a elf::Sym)> {
    let cands: Vec<(usize, &elf::Sym)> = bin.symbols_named(name).collect();
    if cands.len() > 1 {
        if let Some(sz) = size {
            if let Some(c) = cands
                .iter()
                .find(|(i, _)| bin.kallsyms_size_matches(*i, sz))
            {
                return Some(*c);
            }
        }
    }
    cands
        .iter()
        .find(|(_, s)| s.is_function)
        .or_else(|| cands.first())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn module_names_with_build_ids() {
        assert_eq!(split_module("kmlab"), ("kmlab", None));
        assert_eq!(split_module("kmlab 0a1b2c"), ("kmlab", Some("0a1b2c")));
        assert_eq!(split_module("kmlab(OE)"), ("kmlab", None));
    }
}
