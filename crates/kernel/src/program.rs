//! A `Program`: a dump, the kernel's own description of itself (VMCOREINFO), its address
//! space, and, when given, its vmlinux (symbols, BTF and DWARF types).

use crate::btf::Btf;
use crate::dwarf::Dwarf;
use crate::mem::{Memory, PhysMem, ReadError, START_KERNEL_MAP, X86_64};
use crate::symbols::{Symbol, Symbols};
use crate::types::{Field, TypeId, TypeSource, Types};
use crate::vmcoreinfo::VmcoreInfo;
use kmortem_dump::Dump;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Open(#[from] kmortem_dump::OpenError),
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} is not an ELF file with a symbol table: {1}")]
    BadVmlinux(String, String),
    #[error("vmlinux and vmcore do not match: {0} (--force goes on anyway)")]
    Mismatch(String),
    #[error("{0} (--force goes on anyway)")]
    NotVmlinux(String),
    #[error("{0}")]
    Bootstrap(String),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{0}")]
    Missing(String),
}

/// Where VMCOREINFO came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VmcoreinfoSource {
    /// The dump's VMCOREINFO note (or kdump sub-header).
    Note,
    /// Found in memory: the page `vmcoreinfo_data` points at.
    MemoryScan,
    /// None at all: bootstrapped from QEMU's CPU notes and the vmlinux.
    None,
}

pub struct Vmlinux {
    pub path: PathBuf,
    map: Arc<memmap2::Mmap>,
    pub symbols: Symbols,
    pub btf: Option<Btf>,
    dwarf: OnceLock<Option<Dwarf>>,
    pub build_id: Option<String>,
    kaslr: u64,
    /// Why this ELF file does not look like a vmlinux (a module, an executable...), when so.
    pub not_vmlinux: Option<String>,
}

pub struct Program {
    pub dump: Dump,
    pub path: PathBuf,
    pub vmcoreinfo: VmcoreInfo,
    pub vmcoreinfo_source: VmcoreinfoSource,
    pub vm: X86_64,
    /// The KASLR offset of the kernel image.
    pub kaslr: u64,
    pub vmlinux: Option<Vmlinux>,
    /// Module symbols, loaded on first use.
    modules: OnceLock<Vec<Module>>,
    /// With no vmlinux: the kernel's kallsyms and BTF, read from the dump on first use.
    kallsyms: OnceLock<Result<crate::kallsyms::Kallsyms, String>>,
    mem_btf: OnceLock<Result<Btf, String>>,
    /// Damage and mismatches found at open and by the walks (crate::warnings).
    pub warnings: crate::warnings::Warnings,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Module {
    pub name: String,
    /// The `struct module`.
    #[serde(serialize_with = "crate::hex_addr")]
    pub addr: u64,
    /// Where the module's code is, and how big: `core_layout` (text and data in one block)
    /// before 6.4, `mem[MOD_TEXT]` since (crash's and drgn's `mod` BASE and SIZE).
    #[serde(serialize_with = "crate::hex_addr")]
    pub base: u64,
    pub size: u64,
    /// The module's memory by kind (text, rodata, ro_after_init, data), init memory aside.
    pub regions: Vec<ModRegion>,
    #[serde(skip)]
    pub symbols: Vec<Symbol>,
}

/// One block of a module's memory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModRegion {
    /// `text`, `rodata`, `ro_after_init`, `data`.
    pub kind: &'static str,
    #[serde(serialize_with = "crate::hex_addr")]
    pub base: u64,
    pub size: u64,
}

impl Module {
    /// The region holding `addr`.
    pub fn region(&self, addr: u64) -> Option<&ModRegion> {
        self.regions
            .iter()
            .find(|r| addr >= r.base && addr - r.base < r.size)
    }
}

impl Memory for Program {
    fn read(&self, vaddr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        self.vm.read(&self.dump, vaddr, buf)
    }

    fn symbolize(&self, addr: u64) -> Option<String> {
        if addr < START_KERNEL_MAP {
            return None;
        }
        let (s, off) = self.lookup(addr)?;
        // Like gdb's minimal symbols: only inside the symbol's extent.
        if off >= s.size.max(1) {
            return None;
        }
        Some(if off == 0 {
            s.name
        } else {
            format!("{}+{off}", s.name)
        })
    }
}

/// Look for VMCOREINFO in memory: `vmcoreinfo_data` is a page from get_zeroed_page() that
/// starts with "OSRELEASE=" (crash_save_vmcoreinfo_init(), kernel/crash_core.c).
///
/// Folklore: QEMU's `dump-guest-memory` writes the VMCOREINFO note only when the guest loaded
/// `qemu_fw_cfg` and QEMU had `-device vmcoreinfo`; otherwise the note is missing but the page
/// the kernel built at boot is still in RAM. A page-aligned scan of the first bytes of every
/// page finds it in milliseconds on an ELF dump. Its KERNELOFFSET is the KASLR offset, and
/// SYMBOL(init_top_pgt) + NUMBER(phys_base) give the page tables. Pinned by the lab's
/// no-VMCOREINFO dump test (`lab_no_vmcoreinfo`).
fn scan_vmcoreinfo(dump: &Dump) -> Option<VmcoreInfo> {
    let mut head = [0u8; 10];
    for (s, e) in dump.ranges() {
        let mut p = s;
        while p < e {
            if dump.read_phys(p, &mut head).is_ok() && &head == b"OSRELEASE=" {
                let mut page = vec![0u8; 4096];
                if dump.read_phys(p, &mut page).is_ok() {
                    let end = page.iter().position(|&c| c == 0).unwrap_or(page.len());
                    let vi = VmcoreInfo::parse(&page[..end]);
                    if vi.symbol("init_top_pgt").is_some() && vi.kernel_offset.is_some() {
                        return Some(vi);
                    }
                }
            }
            p += 4096;
        }
    }
    None
}

impl Program {
    /// Open a dump and, optionally, its vmlinux; a vmlinux that is not the dumped kernel is
    /// refused.
    pub fn open(dump_path: &Path, vmlinux: Option<&Path>) -> Result<Program, Error> {
        Self::open_with(dump_path, vmlinux, false)
    }

    /// [`Program::open`]; with `force`, a vmlinux that does not match the dump (or is not a
    /// vmlinux) is used anyway and the mismatch becomes a warning.
    pub fn open_with(
        dump_path: &Path,
        vmlinux: Option<&Path>,
        force: bool,
    ) -> Result<Program, Error> {
        let dump = Dump::open(dump_path)?;
        let (mut vmcoreinfo, mut source) = match dump.vmcoreinfo() {
            Some(t) => (VmcoreInfo::parse(t), VmcoreinfoSource::Note),
            None => (VmcoreInfo::default(), VmcoreinfoSource::None),
        };
        if source == VmcoreinfoSource::None {
            if let Some(vi) = scan_vmcoreinfo(&dump) {
                vmcoreinfo = vi;
                source = VmcoreinfoSource::MemoryScan;
            }
        }
        let vml = match vmlinux {
            Some(p) => Some(load_vmlinux(p)?),
            None => None,
        };
        if let Some(why) = vml.as_ref().and_then(|v| v.not_vmlinux.clone()) {
            if !force {
                return Err(Error::NotVmlinux(why));
            }
        }
        let (vm, kaslr) = if source != VmcoreinfoSource::None {
            let vi = &vmcoreinfo;
            let phys_base = vi.number("phys_base").unwrap_or(0) as u64;
            let pgt = vi.symbol("init_top_pgt").ok_or_else(|| {
                Error::Bootstrap(
                    "VMCOREINFO has no SYMBOL(init_top_pgt) (is this an x86_64 dump?)".into(),
                )
            })?;
            let la57 = vi.number("pgtable_l5_enabled") == Some(1);
            let sme = vi.number("sme_mask").unwrap_or(0) as u64;
            let vm = X86_64::new(
                pgt.wrapping_sub(START_KERNEL_MAP).wrapping_add(phys_base),
                la57,
                phys_base,
                sme,
            );
            let kaslr = match (vi.kernel_offset, &vml) {
                (Some(k), _) => k,
                (None, Some(v)) => v
                    .symbols
                    .addr("init_uts_ns")
                    .zip(vi.symbol("init_uts_ns"))
                    .map(|(a, b)| b.wrapping_sub(a))
                    .unwrap_or(0),
                _ => 0,
            };
            (vm, kaslr)
        } else {
            let Some(v) = &vml else {
                return Err(Error::Bootstrap(
                    "this dump has no VMCOREINFO (not as a note, not in memory): pass the vmlinux with -s to find the kernel by its IDT".into(),
                ));
            };
            bootstrap_from_idt(&dump, v)?
        };
        let mut vml = vml;
        if let Some(v) = &mut vml {
            v.symbols.relocate(kaslr);
            v.kaslr = kaslr;
        }
        let prog = Program {
            dump,
            path: dump_path.to_path_buf(),
            vmcoreinfo,
            vmcoreinfo_source: source,
            vm,
            kaslr,
            vmlinux: vml,
            modules: OnceLock::new(),
            kallsyms: OnceLock::new(),
            mem_btf: OnceLock::new(),
            warnings: Default::default(),
        };
        for d in prog.dump.damage() {
            use crate::warnings::{Kind, Warning};
            let kind = match d.kind {
                kmortem_dump::DamageKind::Truncated => Kind::Truncated,
                kmortem_dump::DamageKind::Overlap => Kind::OverlappingSegments,
                kmortem_dump::DamageKind::Bitmap => Kind::Bitmap,
                kmortem_dump::DamageKind::Notes => Kind::Notes,
            };
            let mut w = Warning::new(kind, d.message.clone()).what(d.what.clone());
            w.range = d.range;
            prog.warnings.push(w);
        }
        let problems = prog.check_vmlinux();
        if let Some(first) = problems.first() {
            if !force {
                return Err(Error::Mismatch(first.clone()));
            }
            for p in problems {
                prog.warnings.push(
                    crate::warnings::Warning::new(
                        crate::warnings::Kind::VmlinuxMismatch,
                        format!("vmlinux and vmcore do not match: {p} (going on: --force)"),
                    )
                    .what("vmlinux"),
                );
            }
        }
        Ok(prog)
    }

    /// Refuse a vmlinux that is not the dumped kernel. The banner (`linux_banner`, which holds
    /// the release, the build number, the compiler and the build date) is compared between
    /// the file and the dump's memory; OSRELEASE and BUILD-ID are checked when present.
    ///
    /// Folklore: some 6.x stable kernels wrote a garbage BUILD-ID into VMCOREINFO (a
    /// build-id note read before it was set), so a BUILD-ID mismatch alone is not trusted
    /// when the banner matches. Pinned by the lab test `lab_wrong_vmlinux_is_refused`.
    fn check_vmlinux(&self) -> Vec<String> {
        let Some(v) = &self.vmlinux else {
            return Vec::new();
        };
        let mut problems = Vec::new();
        if let Some(why) = &v.not_vmlinux {
            problems.push(why.clone());
            return problems;
        }
        let file_banner = vmlinux_banner(v);
        if file_banner.is_none() {
            problems.push(format!(
                "{} has no linux_banner: it is not a vmlinux",
                v.path.display()
            ));
            return problems;
        }
        if let (Some(fb), Some(rel)) = (&file_banner, &self.vmcoreinfo.osrelease) {
            let frel = fb.split_whitespace().nth(2).unwrap_or("");
            if frel != rel {
                problems.push(format!(
                    "{} is Linux {frel}, the dump is Linux {rel}",
                    v.path.display()
                ));
            }
        }
        let mut banner_checked = false;
        if let (Some(fb), Some(addr)) = (&file_banner, v.symbols.addr("linux_banner")) {
            if let Ok(mb) = self.read_cstr(addr, 512) {
                banner_checked = true;
                let mb = String::from_utf8_lossy(&mb);
                if mb.trim_end() != fb.trim_end() {
                    problems.push(format!(
                        "linux_banner differs:\n  vmlinux: {}\n  vmcore:  {}",
                        fb.trim_end(),
                        mb.trim_end()
                    ));
                }
            }
        }
        // The kernel's own build-id, from its .notes in the dump's memory (the bytes the
        // running kernel had), against the file's .note.gnu.build-id.
        let mem_id = self.memory_build_id();
        match (&v.build_id, &mem_id) {
            (Some(a), Some(b)) if a != b => problems.push(format!(
                "build-id {a} of {} differs from the running kernel's {b} (its .notes in the dump)",
                v.path.display()
            )),
            _ => {}
        }
        if !banner_checked && mem_id.is_none() {
            if let (Some(a), Some(b)) = (&v.build_id, &self.vmcoreinfo.build_id) {
                if a != b && b.len() == a.len() {
                    problems.push(format!(
                        "build-id {a} of {} differs from the dump's {b} (VMCOREINFO BUILD-ID)",
                        v.path.display()
                    ));
                }
            }
        }
        problems
    }

    /// The GNU build-id note of the running kernel, read from `__start_notes..__stop_notes`
    /// in the dump (the vmlinux's addresses, relocated).
    pub fn memory_build_id(&self) -> Option<String> {
        let v = self.vmlinux.as_ref()?;
        let s = v.symbols.addr("__start_notes")?;
        let e = v.symbols.addr("__stop_notes")?;
        let len = e.checked_sub(s).filter(|&n| n > 0 && n <= 1 << 16)?;
        let b = self.read_vec(s, len as usize).ok()?;
        kmortem_dump::parse_notes(&b)
            .into_iter()
            .find(|n| n.name == b"GNU" && n.ntype == 3)
            .map(|n| n.desc.iter().map(|x| format!("{x:02x}")).collect())
    }

    pub fn symbols(&self) -> Option<&Symbols> {
        self.vmlinux.as_ref().map(|v| &v.symbols)
    }

    /// The address of a kernel symbol: vmlinux first (or, with none, the dump's kallsyms),
    /// then VMCOREINFO's SYMBOL() entries.
    pub fn symbol(&self, name: &str) -> Option<u64> {
        match self.symbols() {
            Some(s) => s.addr(name),
            None => self.kallsyms().and_then(|k| k.addr(name)),
        }
        .or_else(|| self.vmcoreinfo.symbol(name))
    }

    /// A kernel (not module) symbol by name, from vmlinux or, with none, kallsyms.
    pub fn kernel_symbol(&self, name: &str) -> Option<Symbol> {
        match self.symbols() {
            Some(s) => s.get(name),
            None => self.kallsyms().and_then(|k| k.get(name)),
        }
    }

    /// The dump's own symbol table (kallsyms through VMCOREINFO), read on first use. Used
    /// when no vmlinux was given; available either way.
    pub fn kallsyms(&self) -> Option<&crate::kallsyms::Kallsyms> {
        self.kallsyms
            .get_or_init(|| {
                crate::kallsyms::Kallsyms::read(self, &|n| self.vmcoreinfo.symbol(n))
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .ok()
    }

    /// Why kallsyms could not be read, if it could not.
    pub fn kallsyms_error(&self) -> Option<String> {
        self.kallsyms();
        self.kallsyms.get().and_then(|r| r.as_ref().err().cloned())
    }

    /// The kernel's BTF from the dump's memory (`__start_BTF`..`__stop_BTF`, found through
    /// kallsyms), for a dump opened without vmlinux.
    ///
    /// Folklore: with CONFIG_DEBUG_INFO_BTF (5.2+, on in every major distro since ~5.8) the
    /// linker script places vmlinux's `.BTF` section between `__start_BTF` and `__stop_BTF`
    /// (include/asm-generic/vmlinux.lds.h), and /sys/kernel/btf/vmlinux serves those bytes.
    /// It is read-only data, so it is in every dump that kept kernel pages. Pinned by
    /// `lab_no_debug_info`.
    pub fn memory_btf(&self) -> Result<&Btf, String> {
        self.mem_btf
            .get_or_init(|| {
                let k = self
                    .kallsyms()
                    .ok_or_else(|| self.kallsyms_error().unwrap_or_default())?;
                let (Some(s), Some(e)) = (k.addr("__start_BTF"), k.addr("__stop_BTF")) else {
                    return Err(
                        "kallsyms has no __start_BTF/__stop_BTF (CONFIG_DEBUG_INFO_BTF off)".into(),
                    );
                };
                if e <= s || e - s > 256 << 20 {
                    return Err(format!("__start_BTF..__stop_BTF is {s:#x}..{e:#x}"));
                }
                let data = self
                    .read_vec(s, (e - s) as usize)
                    .map_err(|e| format!("BTF: {e}"))?;
                Btf::parse(data).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| e.clone())
    }

    pub fn need_symbol(&self, name: &str) -> Result<u64, Error> {
        self.symbol(name).ok_or_else(|| {
            Error::Missing(format!(
                "symbol {name} not found{}",
                if self.vmlinux.is_none() {
                    " (pass the vmlinux with -s)"
                } else {
                    ""
                }
            ))
        })
    }

    /// BTF types when vmlinux has `.BTF`, else DWARF; with no vmlinux, the BTF in the dump.
    pub fn type_source(&self) -> Option<&dyn TypeSource> {
        let Some(v) = self.vmlinux.as_ref() else {
            return self.memory_btf().ok().map(|b| b as &dyn TypeSource);
        };
        if let Some(b) = &v.btf {
            return Some(b);
        }
        self.dwarf().map(|d| d as &dyn TypeSource)
    }

    /// The DWARF of vmlinux, opened on first use.
    pub fn dwarf(&self) -> Option<&Dwarf> {
        let v = self.vmlinux.as_ref()?;
        v.dwarf
            .get_or_init(|| Dwarf::load(v.map.clone()).ok())
            .as_ref()
    }

    pub fn types(&self) -> Result<Types<'_>, Error> {
        self.type_source()
            .map(Types)
            .ok_or_else(|| match &self.vmlinux {
                Some(_) => Error::Missing(
                    "no types: pass a vmlinux with .BTF or DWARF (-s VMLINUX)".into(),
                ),
                None => Error::Missing(format!(
                    "no types: the dump's BTF is unusable ({}); pass a vmlinux with -s",
                    self.memory_btf().err().unwrap_or_default()
                )),
            })
    }

    /// Byte offset of `member` (a dotted path) in `struct sname`. VMCOREINFO's OFFSET() first
    /// (it needs no vmlinux), then the types.
    pub fn offset_of(&self, sname: &str, member: &str) -> Result<u64, Error> {
        if let Some(o) = self.vmcoreinfo.offset(&format!("{sname}.{member}")) {
            return Ok(o);
        }
        Ok(self.field(sname, member)?.offset)
    }

    pub fn field(&self, sname: &str, member: &str) -> Result<Field, Error> {
        let t = self.types()?;
        let sid = t
            .find_struct(sname)
            .ok_or_else(|| Error::Missing(format!("no type struct {sname}")))?;
        t.path(sid, member)
            .ok_or_else(|| Error::Missing(format!("struct {sname} has no member {member}")))
    }

    /// Does `struct sname` have `member`? (probe instead of comparing versions)
    pub fn has_member(&self, sname: &str, member: &str) -> bool {
        self.field(sname, member).is_ok()
    }

    pub fn struct_id(&self, sname: &str) -> Result<TypeId, Error> {
        self.types()?
            .find_struct(sname)
            .ok_or_else(|| Error::Missing(format!("no type struct {sname}")))
    }

    /// Read an unsigned integer member of the size its type says.
    pub fn read_member(&self, addr: u64, sname: &str, member: &str) -> Result<u64, Error> {
        let f = self.field(sname, member)?;
        let t = self.types()?;
        let size = t.size_of(f.ty).clamp(1, 8);
        let mut b = [0u8; 8];
        self.read(addr + f.offset, &mut b[..size as usize])?;
        let mut v = u64::from_le_bytes(b);
        if let Some(bits) = f.bit_size {
            v = (v >> f.bit_offset) & ((1u64 << bits.min(63)) - 1);
        }
        Ok(v)
    }

    /// Number of possible CPU slots with per-CPU areas (`__per_cpu_offset`).
    pub fn per_cpu_offset(&self, cpu: u32) -> Result<u64, Error> {
        let base = self.need_symbol("__per_cpu_offset")?;
        Ok(self.read_u64(base + 8 * cpu as u64)?)
    }

    /// Address of per-CPU variable `name` on `cpu`.
    pub fn per_cpu(&self, name: &str, cpu: u32) -> Result<u64, Error> {
        let a = self.need_symbol(name)?;
        Ok(a.wrapping_add(self.per_cpu_offset(cpu)?))
    }

    fn cpu_mask(&self, sym: &str) -> Option<Vec<u32>> {
        let a = self.symbol(sym)?;
        let nr = self
            .symbol("nr_cpu_ids")
            .and_then(|s| self.read_u32(s).ok())
            .unwrap_or(64)
            .clamp(1, 8192);
        let bits = self.read_vec(a, nr.div_ceil(64) as usize * 8).ok()?;
        let v: Vec<u32> = (0..nr)
            .filter(|&c| bits[(c / 8) as usize] & (1 << (c % 8)) != 0)
            .collect();
        (!v.is_empty()).then_some(v)
    }

    /// The online CPUs (`__cpu_online_mask`). After a panic, the other CPUs have taken
    /// themselves offline (smp_send_stop()), so this is often just the panicking one.
    pub fn online_cpus(&self) -> Vec<u32> {
        self.cpu_mask("__cpu_online_mask")
            .unwrap_or_else(|| self.present_cpus())
    }

    /// The CPUs present in the machine: `__cpu_present_mask` with a vmlinux, else one per
    /// NT_PRSTATUS (or QEMU CPU) note, or the kdump header's nr_cpus.
    pub fn present_cpus(&self) -> Vec<u32> {
        if let Some(v) = self.cpu_mask("__cpu_present_mask") {
            return v;
        }
        let n = self.dump.prstatus().len() as u32;
        let n = if n > 0 {
            n
        } else if let Some(h) = self.dump.kdump_header() {
            h.nr_cpus.max(1) as u32
        } else {
            self.dump.qemu_cpus().len().max(1) as u32
        };
        (0..n).collect()
    }

    /// Modules from the `modules` list, with their symbols (from `struct module`'s
    /// kallsyms: the module's own symtab/strtab, in module memory).
    pub fn modules(&self) -> &[Module] {
        self.modules
            .get_or_init(|| self.read_modules().unwrap_or_default())
    }

    fn read_modules(&self) -> Result<Vec<Module>, Error> {
        let head = self.need_symbol("modules")?;
        let list_off = self.offset_of("module", "list")?;
        let name_off = self.offset_of("module", "name")?;
        let mut out = Vec::new();
        let mut node = self.read_u64(head)?;
        let mut guard = 0;
        while node != head && node != 0 && guard < 4096 {
            guard += 1;
            let m = node - list_off;
            let name = String::from_utf8_lossy(&self.read_cstr(m + name_off, 56)?).into_owned();
            let regions = self.module_regions(m).unwrap_or_default();
            let (base, size) = self.module_layout(m).unwrap_or((0, 0));
            let symbols = self.module_symbols(m, &name).unwrap_or_default();
            out.push(Module {
                name,
                addr: m,
                base,
                size,
                regions,
                symbols,
            });
            node = self.read_u64(node)?;
        }
        Ok(out)
    }

    fn module_layout(&self, m: u64) -> Result<(u64, u64), Error> {
        // Folklore: module_layout core_layout (3.10-6.3) became mem[MOD_TEXT] in 6.4 (commit
        // ac3b43283923, "module: replace module_layout with module_memory"). Probe for both.
        // (crash 8.0.3+ prints the sum of the core regions as SIZE on 6.4+; drgn's and our
        // `mod` print the text's, which is what unwinding and symbolizing use.)
        if self.has_member("module", "core_layout") {
            let b = self.read_member(m, "module", "core_layout.base")?;
            let s = self.read_member(m, "module", "core_layout.size")?;
            return Ok((b, s));
        }
        let b = self.read_member(m, "module", "mem[0].base")?;
        let s = self.read_member(m, "module", "mem[0].size")?;
        Ok((b, s))
    }

    /// The module's core memory by kind.
    ///
    /// Folklore: before 6.4 one `core_layout` block holds text, then rodata, ro_after_init and
    /// data, split at `text_size`, `ro_size` and `ro_after_init_size` (page aligned, since 4.8
    /// for ro_after_init); since 6.4 each kind is its own allocation, `mem[type]` indexed by
    /// `enum mod_mem_type` (MOD_TEXT, MOD_DATA, MOD_RODATA, MOD_RO_AFTER_INIT, then the init
    /// kinds, freed after load). Pinned by `lab_modules_and_module_symbols` (module data
    /// symbols found by address on both layouts).
    fn module_regions(&self, m: u64) -> Result<Vec<ModRegion>, Error> {
        let mut out = Vec::new();
        if self.has_member("module", "core_layout") {
            let r = |f: &str| self.read_member(m, "module", &format!("core_layout.{f}"));
            let base = r("base")?;
            let size = r("size")?;
            let text = r("text_size")?.min(size);
            let ro = r("ro_size").unwrap_or(text).clamp(text, size);
            let roa = r("ro_after_init_size").unwrap_or(ro).clamp(ro, size);
            for (kind, from, to) in [
                ("text", 0, text),
                ("rodata", text, ro),
                ("ro_after_init", ro, roa),
                ("data", roa, size),
            ] {
                if to > from {
                    out.push(ModRegion {
                        kind,
                        base: base.wrapping_add(from),
                        size: to - from,
                    });
                }
            }
            return Ok(out);
        }
        let kinds: Vec<(&'static str, i64)> = {
            let names = [
                ("MOD_TEXT", "text"),
                ("MOD_DATA", "data"),
                ("MOD_RODATA", "rodata"),
                ("MOD_RO_AFTER_INIT", "ro_after_init"),
            ];
            let types = self.types()?;
            let values = types
                .0
                .find(crate::types::Kind::Enum, "mod_mem_type")
                .and_then(|id| match types.get(id) {
                    crate::types::Type::Enum { values, .. } => Some(values),
                    _ => None,
                })
                .unwrap_or_default();
            names
                .iter()
                .enumerate()
                .map(|(i, (e, k))| {
                    let v = values.iter().find(|(n, _)| n == e).map(|(_, v)| *v);
                    (*k, v.unwrap_or(i as i64))
                })
                .collect()
        };
        for (kind, i) in kinds {
            let base = self.read_member(m, "module", &format!("mem[{i}].base"))?;
            let size = self.read_member(m, "module", &format!("mem[{i}].size"))?;
            if base != 0 && size != 0 {
                out.push(ModRegion { kind, base, size });
            }
        }
        Ok(out)
    }

    fn module_symbols(&self, m: u64, name: &str) -> Result<Vec<Symbol>, Error> {
        let ks = self.read_member(m, "module", "kallsyms")?;
        if ks == 0 {
            return Ok(Vec::new());
        }
        let symtab = self.read_member(ks, "mod_kallsyms", "symtab")?;
        let num = self
            .read_member(ks, "mod_kallsyms", "num_symtab")?
            .min(1 << 20);
        let strtab = self.read_member(ks, "mod_kallsyms", "strtab")?;
        let typetab = self.read_member(ks, "mod_kallsyms", "typetab").unwrap_or(0);
        let raw = self.read_vec(symtab, (num * 24) as usize)?;
        let types = if typetab != 0 {
            self.read_vec(typetab, num as usize).unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut out = Vec::new();
        for i in 0..num as usize {
            let e = &raw[i * 24..i * 24 + 24];
            let st_name = u32::from_le_bytes([e[0], e[1], e[2], e[3]]) as u64;
            let value = u64::from_le_bytes(e[8..16].try_into().unwrap_or_default());
            let size = u64::from_le_bytes(e[16..24].try_into().unwrap_or_default());
            if st_name == 0 || value == 0 {
                continue;
            }
            let n = self.read_cstr(strtab + st_name, 256)?;
            out.push(Symbol {
                name: String::from_utf8_lossy(&n).into_owned(),
                addr: value,
                size,
                kind: types.get(i).map(|&c| c as char).unwrap_or('t'),
                module: Some(name.to_string()),
            });
        }
        Ok(out)
    }

    /// Symbolize an address: vmlinux, then module symbols.
    pub fn lookup(&self, addr: u64) -> Option<(Symbol, u64)> {
        let hit = match self.symbols() {
            Some(s) => s.lookup(addr),
            None => self.kallsyms().and_then(|k| k.lookup(addr)),
        };
        if let Some((s, off)) = hit {
            if !(crate::mem::KERNEL_IMAGE_END..).contains(&addr) || off < s.size.max(1) {
                return Some((s, off));
            }
        }
        // A module address: the nearest symbol below it in the same region (functions in text,
        // variables in data), so a data address is not named after the last function.
        for m in self.modules() {
            let Some(r) = m.region(addr) else {
                if m.regions.is_empty()
                    && (m.size == 0 || (m.base..m.base.saturating_add(m.size)).contains(&addr))
                {
                    // no layout known: the text symbols, as kallsyms would
                    let best = m
                        .symbols
                        .iter()
                        .filter(|s| s.addr <= addr && s.kind.eq_ignore_ascii_case(&'t'))
                        .max_by_key(|s| s.addr);
                    if let Some(s) = best {
                        return Some((s.clone(), addr - s.addr));
                    }
                }
                continue;
            };
            let text = r.kind == "text";
            let best = m
                .symbols
                .iter()
                .filter(|s| {
                    s.addr <= addr
                        && s.addr >= r.base
                        && s.kind.eq_ignore_ascii_case(&'t') == text
                        && !s.kind.eq_ignore_ascii_case(&'a')
                })
                .max_by_key(|s| s.addr);
            if let Some(s) = best {
                return Some((s.clone(), addr - s.addr));
            }
            return None;
        }
        None
    }

    /// The per-CPU variable at per-CPU offset `addr` (gdb's `<pcpu_hot>` after a
    /// `%gs:...(%rip)` operand), from the vmlinux or kallsyms.
    pub fn lookup_percpu(&self, addr: u64) -> Option<(Symbol, u64)> {
        match self.symbols() {
            Some(s) => s.lookup_percpu(addr),
            None => self.kallsyms()?.lookup_percpu(addr),
        }
    }

    /// A module symbol by name (`name` or `module:name`).
    pub fn module_symbol(&self, name: &str) -> Option<Symbol> {
        let (m, n) = name
            .split_once(':')
            .map(|(a, b)| (Some(a), b))
            .unwrap_or((None, name));
        self.modules()
            .iter()
            .filter(|x| m.is_none_or(|m| m == x.name))
            .flat_map(|x| x.symbols.iter())
            .find(|s| s.name == n)
            .cloned()
    }
}

impl Program {
    /// `len` bytes at the (relocated) kernel address `addr` as the vmlinux file holds them
    /// (for `dis`: text as built, before alternatives/ftrace/static keys patched it).
    pub fn vmlinux_bytes(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        use object::{Object, ObjectSection};
        let v = self.vmlinux.as_ref()?;
        let f = object::File::parse(&v.map[..]).ok()?;
        let a = addr.checked_sub(v.kaslr)?;
        for s in f.sections() {
            let (sa, sz) = (s.address(), s.size());
            if sa <= a && a < sa + sz && s.kind() != object::SectionKind::UninitializedData {
                let d = s.data().ok()?;
                let o = (a - sa) as usize;
                let e = (o + len).min(d.len());
                return Some(d.get(o..e)?.to_vec());
            }
        }
        None
    }
}

/// The release in a vmlinux file's `linux_banner` ("Linux version RELEASE (...)"), read from
/// the file alone (no symbol index): for checking a vmlinux against an oops's release.
pub fn vmlinux_file_release(path: &Path) -> Option<String> {
    use object::{Object, ObjectSection, ObjectSymbol};
    let file = std::fs::File::open(path).ok()?;
    // SAFETY: read-only map of a file we do not modify.
    let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    let f = object::File::parse(&map[..]).ok()?;
    let sym = f.symbol_by_name("linux_banner")?;
    let sec = f.section_by_index(sym.section_index()?).ok()?;
    let d = sec.data().ok()?;
    let o = usize::try_from(sym.address().checked_sub(sec.address())?).ok()?;
    let rest = d.get(o..)?;
    let end = rest
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(rest.len())
        .min(512);
    let banner = String::from_utf8_lossy(&rest[..end]).into_owned();
    banner.split_whitespace().nth(2).map(str::to_string)
}

impl Program {
    /// Why the module file `path` is not the build of module `name` the dumped kernel
    /// loaded, or None when it fits: its `.modinfo` `vermagic=` must start with the dump's
    /// release (the string the kernel itself checks at load time, kernel/module/version.c and
    /// include/linux/vermagic.h). The one message every command uses for a module file
    /// (`mod`, `mod -s`); pinned by `lab_module_of_another_build_is_named`.
    pub fn module_file_mismatch(&self, name: &str, path: &Path) -> Option<String> {
        use object::{Object, ObjectSection};
        let rel = self.vmcoreinfo.osrelease.as_deref()?;
        let data = std::fs::read(path).ok()?;
        let f = object::File::parse(&data[..]).ok()?;
        let Some(mi) = f.section_by_name(".modinfo").and_then(|s| s.data().ok()) else {
            return Some(format!(
                "module {name}: {} has no .modinfo: not a kernel module",
                path.display()
            ));
        };
        let vermagic = mi
            .split(|&c| c == 0)
            .find_map(|kv| kv.strip_prefix(b"vermagic="))
            .map(|v| String::from_utf8_lossy(v).into_owned())?;
        let mrel = vermagic.split_whitespace().next().unwrap_or("");
        (mrel != rel).then(|| {
            format!(
                "module {name}: {} was built for Linux {mrel} (vermagic), the dump runs Linux {rel}: not used",
                path.display()
            )
        })
    }
}

/// The vmlinux's own `linux_banner` string, read from the file.
fn vmlinux_banner(v: &Vmlinux) -> Option<String> {
    use object::{Object, ObjectSection};
    let f = object::File::parse(&v.map[..]).ok()?;
    let sym = v.symbols.get("linux_banner")?;
    let unrelocated = sym.addr.checked_sub(v.kaslr)?;
    for s in f.sections() {
        let a = s.address();
        if a <= unrelocated && unrelocated < a + s.size() {
            let d = s.data().ok()?;
            let o = (unrelocated - a) as usize;
            let rest = d.get(o..)?;
            let end = rest.iter().position(|&c| c == 0)?.min(512);
            return Some(String::from_utf8_lossy(&rest[..end]).into_owned());
        }
    }
    None
}

pub fn load_vmlinux(path: &Path) -> Result<Vmlinux, Error> {
    use object::{Object, ObjectSection};
    let file = std::fs::File::open(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    // SAFETY: read-only map of a file we do not modify.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    let map = Arc::new(map);
    let bad = |e: String| Error::BadVmlinux(path.display().to_string(), e);
    let f = object::File::parse(&map[..]).map_err(|e| bad(e.to_string()))?;
    let btf = f
        .section_by_name(".BTF")
        .and_then(|s| s.data().ok())
        .and_then(|d| Btf::parse(d.to_vec()).ok());
    let build_id = f
        .build_id()
        .ok()
        .flatten()
        .map(|b| b.iter().map(|x| format!("{x:02x}")).collect());
    let not_vmlinux = what_elf_is(
        &f,
        path,
        f.symbol_by_name("linux_banner").is_some(),
        btf.is_some(),
    );
    let symbols = match (Symbols::from_elf(map.clone(), 0), &not_vmlinux) {
        (Ok(s), _) if !s.is_empty() => s,
        (_, Some(why)) => return Err(Error::NotVmlinux(why.clone())),
        (Ok(_), None) => return Err(bad("no symbols".into())),
        (Err(e), None) => return Err(bad(e.to_string())),
    };
    Ok(Vmlinux {
        path: path.to_path_buf(),
        map,
        symbols,
        btf,
        dwarf: OnceLock::new(),
        build_id,
        kaslr: 0,
        not_vmlinux,
    })
}

/// When an ELF file is not a vmlinux, what it is: `ls: an executable, not a vmlinux (no
/// .BTF, no linux_banner)`. A vmlinux is an `ET_EXEC` x86_64 image with a `linux_banner`
/// symbol; a module is `ET_REL` with `.modinfo`; a program has `PT_INTERP`.
fn what_elf_is(
    f: &object::File<'_>,
    path: &Path,
    has_banner: bool,
    has_btf: bool,
) -> Option<String> {
    use object::{Object, ObjectKind};
    if has_banner {
        return None;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let what = match f.kind() {
        ObjectKind::Relocatable if f.section_by_name(".modinfo").is_some() => {
            "a kernel module (.ko)"
        }
        ObjectKind::Relocatable => "an object file (.o)",
        ObjectKind::Core => "a core dump",
        ObjectKind::Dynamic if f.section_by_name(".interp").is_none() => "a shared library",
        ObjectKind::Dynamic | ObjectKind::Executable if f.section_by_name(".interp").is_some() => {
            "an executable"
        }
        _ => "an ELF file",
    };
    let mut lacks = Vec::new();
    if !has_btf {
        lacks.push("no .BTF");
    }
    lacks.push("no linux_banner");
    Some(format!(
        "{name}: {what}, not a vmlinux ({})",
        lacks.join(", ")
    ))
}

/// Find the KASLR offset without VMCOREINFO, from QEMU's CPU state and the vmlinux.
///
/// Folklore (crash's kaslr_helper.c does the same for QEMU/Hyper-V dumps): every CPU's IDTR
/// points at `idt_table`, whose vector 0 is the divide-error gate. Translate the IDT address
/// through the CPU's CR3, decode the gate's handler address, and subtract the vmlinux address
/// of the handler (`asm_exc_divide_error` since 5.8, `divide_error` before): that is the
/// virtual KASLR offset. The physical offset (phys_base) follows from translating the kernel
/// text through the same page tables. CR3 bit 12 is the PTI user half: clear it to get the
/// kernel PGD. CR4.LA57 (bit 12) says 5-level paging. Pinned by `lab_no_vmcoreinfo`.
/// The KASLR offset found from the IDT (see below), for dumps without VMCOREINFO.
pub fn kaslr_from_idt(dump: &Dump, v: &Vmlinux) -> Result<u64, Error> {
    bootstrap_from_idt(dump, v).map(|(_, k)| k)
}

fn bootstrap_from_idt(dump: &Dump, v: &Vmlinux) -> Result<(X86_64, u64), Error> {
    let cpus = dump.qemu_cpus();
    let cpu = cpus.first().ok_or_else(|| {
        Error::Bootstrap(
            "this dump has no VMCOREINFO and no QEMU CPU notes: cannot find the kernel".into(),
        )
    })?;
    let la57 = cpu.cr4 & (1 << 12) != 0;
    let pgd = cpu.cr3 & 0x000f_ffff_ffff_e000;
    let walker = X86_64::new(pgd, la57, 0, 0);
    let pm: &dyn PhysMem = dump;
    let ia = walker.walk(pm, cpu.idt_base)?;
    let mut gate = [0u8; 16];
    pm.read_phys(ia, &mut gate).map_err(ReadError::from)?;
    let handler = u16::from_le_bytes([gate[0], gate[1]]) as u64
        | (u16::from_le_bytes([gate[6], gate[7]]) as u64) << 16
        | (u32::from_le_bytes([gate[8], gate[9], gate[10], gate[11]]) as u64) << 32;
    let sym = ["asm_exc_divide_error", "divide_error"]
        .iter()
        .find_map(|n| v.symbols.addr(n))
        .ok_or_else(|| Error::Bootstrap("vmlinux has no asm_exc_divide_error".into()))?;
    let kaslr = handler.wrapping_sub(sym);
    if kaslr & 0xfffff != 0 || kaslr > 0x4000_0000 {
        return Err(Error::Bootstrap(format!(
            "IDT vector 0 points at {handler:#x}, not at the vmlinux's divide-error handler {sym:#x} moved by a KASLR offset: wrong vmlinux?"
        )));
    }
    let text = v
        .symbols
        .addr("_text")
        .unwrap_or(START_KERNEL_MAP + 0x1000000)
        + kaslr;
    let tp = walker.walk(pm, text)?;
    let phys_base = tp.wrapping_sub(text - START_KERNEL_MAP);
    Ok((X86_64::new(pgd, la57, phys_base, 0), kaslr))
}
