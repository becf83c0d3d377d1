//! kmortem-dump: read Linux vmcores natively.
//!
//! Containers: ELF (`/proc/vmcore`, `makedumpfile -E`, QEMU `dump-guest-memory`),
//! kdump-compressed (header versions 1 to 6, zlib/lzo/snappy/zstd pages) and makedumpfile's
//! flattened format (`-F`), which is read through an index of its records.
//!
//! The file is memory-mapped; decompressed pages are kept in a small page cache. Reads of
//! physical memory either succeed or name the hole ([`Hole`]): a page excluded by the dump
//! level, a page beyond the end of a truncated file, a corrupt page, or an address the dump
//! does not contain. Nothing here panics on bad input.

mod elf;
mod flat;
mod kdump;
mod lzo;
pub mod notes;
mod source;

pub use notes::{Note, PrStatus, QemuCpuState};

use std::path::Path;
use std::sync::Mutex;

pub use kdump::{
    fuzz_header as fuzz_kdump_header, parse_header as parse_kdump_header, Compression, KdumpHeader,
};
pub use notes::{parse_notes, parse_notes_checked};
use source::Source;

/// Errors that prevent opening a dump at all.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("not a vmcore: unknown signature {0:02x?} (expected ELF, \"KDUMP   \", \"DISKDUMP\" or \"makedumpfile\")")]
    UnknownFormat(Vec<u8>),
    #[error("malformed {format} dump: {reason}")]
    Malformed {
        format: &'static str,
        reason: String,
    },
}

fn malformed(format: &'static str, reason: impl Into<String>) -> OpenError {
    OpenError::Malformed {
        format,
        reason: reason.into(),
    }
}

/// Why a physical read could not be served. Each names the physical address of the page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Hole {
    /// The dump level filtered this page out (makedumpfile `-d`), or an ELF segment's
    /// `p_filesz` stops short of `p_memsz`.
    #[error("page excluded from the dump at physical {0:#x}")]
    Excluded(u64),
    /// The page should be in the file, but the file ends before it.
    #[error("page beyond end of truncated file at physical {0:#x}")]
    Truncated(u64),
    /// The dump has no memory at this address at all.
    #[error("physical address {0:#x} not in dump")]
    NotInDump(u64),
    /// The page is there but cannot be decoded.
    #[error("corrupt page at physical {paddr:#x}: {reason}")]
    Corrupt { paddr: u64, reason: String },
}

/// What kind of damage [`Dump::damage`] found when the dump was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DamageKind {
    /// The file ends before data its headers describe (segments, descriptors, pages).
    Truncated,
    /// Two `PT_LOAD` segments describe the same physical memory with different bytes.
    Overlap,
    /// The kdump dumpable bitmap disagrees with the page descriptors.
    Bitmap,
    /// The note area is cut short or malformed, or a note is shorter than its layout.
    Notes,
}

impl DamageKind {
    pub fn name(self) -> &'static str {
        match self {
            DamageKind::Truncated => "truncated",
            DamageKind::Overlap => "overlapping_segments",
            DamageKind::Bitmap => "bitmap",
            DamageKind::Notes => "notes",
        }
    }
}

/// One fact about a damaged dump, found at open: what is wrong, the physical range (or
/// nothing) it concerns, the structure it names (`PT_LOAD`, `NT_PRSTATUS`, `dump bitmap`),
/// and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub kind: DamageKind,
    /// Physical addresses [start, end) the damage covers, when it is about memory.
    pub range: Option<(u64, u64)>,
    /// The structure named: `PT_LOAD`, `PT_NOTE`, `NT_PRSTATUS`, `page descriptors`, ...
    pub what: String,
    pub message: String,
}

/// The container format of a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Elf,
    Kdump,
    /// makedumpfile's flattened format, holding a kdump-compressed file.
    Flattened,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Elf => "ELF",
            Format::Kdump => "kdump-compressed",
            Format::Flattened => "flattened kdump-compressed",
        }
    }
}

enum Body {
    Elf(elf::Elf),
    Kdump(Box<kdump::Kdump>),
}

/// An open vmcore.
pub struct Dump {
    src: Source,
    body: Body,
    format: Format,
    notes: Vec<Note>,
    vmcoreinfo: Option<Vec<u8>>,
    damage: Vec<Damage>,
    cache: Mutex<PageCache>,
}

const CACHE_PAGES: usize = 4096;

/// A bounded cache of decompressed pages (cleared wholesale when full: reads in a post-mortem
/// session are very local, so a simple policy wins).
struct PageCache {
    map: std::collections::HashMap<u64, std::sync::Arc<[u8]>>,
}

impl Dump {
    /// Open a vmcore of any supported format.
    pub fn open(path: impl AsRef<Path>) -> Result<Dump, OpenError> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| OpenError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        // SAFETY: the file is opened read-only; a vmcore is not modified while we read it. If
        // it were truncated underneath us, reads could fault: that is the documented memmap2
        // caveat, and the same one every mmap-based dump reader accepts.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| OpenError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Self::from_source(Source::Mapped(map))
    }

    /// Open a vmcore held in memory (tests, fuzzing).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Dump, OpenError> {
        Self::from_source(Source::Owned(bytes))
    }

    fn from_source(src: Source) -> Result<Dump, OpenError> {
        let raw = src.bytes();
        let head = &raw[..raw.len().min(16)];
        let (src, format) = if head.starts_with(b"\x7fELF") {
            (src, Format::Elf)
        } else if head.starts_with(b"makedumpfile") {
            let idx = flat::Flattened::index(raw)?;
            (Source::Flat(Box::new(src), idx), Format::Flattened)
        } else if head.starts_with(b"KDUMP   ") || head.starts_with(b"DISKDUMP") {
            (src, Format::Kdump)
        } else {
            return Err(OpenError::UnknownFormat(head.to_vec()));
        };
        let mut damage = Vec::new();
        let (body, notes, vmcoreinfo) = match format {
            Format::Elf => {
                let e = elf::Elf::parse(src.bytes())?;
                damage.extend(e.damage.iter().cloned());
                let notes = e.notes(src.bytes(), &mut damage);
                let vmci = notes
                    .iter()
                    .find(|n| n.name == b"VMCOREINFO")
                    .map(|n| n.desc.clone());
                (Body::Elf(e), notes, vmci)
            }
            _ => {
                let k = kdump::Kdump::parse(&src)?;
                damage.extend(k.damage.iter().cloned());
                let notes = k.notes(&src, &mut damage);
                let vmci = k.vmcoreinfo(&src, &mut damage).or_else(|| {
                    notes
                        .iter()
                        .find(|n| n.name == b"VMCOREINFO")
                        .map(|n| n.desc.clone())
                });
                (Body::Kdump(Box::new(k)), notes, vmci)
            }
        };
        for (i, n) in notes
            .iter()
            .filter(|n| n.name == b"CORE" && n.ntype == notes::NT_PRSTATUS)
            .enumerate()
        {
            if PrStatus::parse(&n.desc).is_none() {
                damage.push(Damage {
                    kind: DamageKind::Notes,
                    range: None,
                    what: "NT_PRSTATUS".into(),
                    message: format!(
                        "NT_PRSTATUS note {i} is {} bytes, shorter than the {} of an x86_64 elf_prstatus: that CPU's registers are lost",
                        n.desc.len(),
                        notes::PRSTATUS_SIZE
                    ),
                });
            }
        }
        Ok(Dump {
            src,
            body,
            format,
            notes,
            vmcoreinfo,
            damage,
            cache: Mutex::new(PageCache {
                map: Default::default(),
            }),
        })
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The kdump-compressed header, for kdump and flattened dumps.
    pub fn kdump_header(&self) -> Option<&KdumpHeader> {
        match &self.body {
            Body::Kdump(k) => Some(&k.header),
            Body::Elf(_) => None,
        }
    }

    /// Every ELF note of the dump (from `PT_NOTE`, or the kdump sub-header's note area).
    pub fn notes(&self) -> &[Note] {
        &self.notes
    }

    /// What was found damaged when the dump was opened: truncation, overlapping segments, a
    /// bitmap that disagrees with the descriptors, cut or short notes. Empty for a sound dump.
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    /// The raw VMCOREINFO text, when the dump carries one.
    pub fn vmcoreinfo(&self) -> Option<&[u8]> {
        self.vmcoreinfo.as_deref()
    }

    /// The per-CPU `NT_PRSTATUS` register sets, in note order (= CPU order). A note too short
    /// to hold the registers is left out (see [`Dump::prstatus_notes`] to keep the order).
    pub fn prstatus(&self) -> Vec<PrStatus> {
        self.prstatus_notes().into_iter().flatten().collect()
    }

    /// Every `NT_PRSTATUS` note in note order, `None` for one too short to parse: the n-th
    /// entry stays the n-th CPU's even when a note before it is damaged.
    pub fn prstatus_notes(&self) -> Vec<Option<PrStatus>> {
        self.notes
            .iter()
            .filter(|n| n.name == b"CORE" && n.ntype == notes::NT_PRSTATUS)
            .map(|n| PrStatus::parse(&n.desc))
            .collect()
    }

    /// QEMU's per-CPU state notes (`dump-guest-memory`), with CR3 and the descriptor tables.
    pub fn qemu_cpus(&self) -> Vec<QemuCpuState> {
        self.notes
            .iter()
            .filter(|n| n.name == b"QEMU")
            .filter_map(|n| QemuCpuState::parse(&n.desc))
            .collect()
    }

    /// The page size of the dumped machine, when the container says (kdump block size).
    pub fn page_size(&self) -> u64 {
        match &self.body {
            Body::Kdump(k) => k.header.block_size as u64,
            Body::Elf(_) => 4096,
        }
    }

    /// Physical memory ranges the dump describes, as (start, end) pairs.
    pub fn ranges(&self) -> Vec<(u64, u64)> {
        match &self.body {
            Body::Elf(e) => e.ranges(),
            Body::Kdump(k) => k.ranges(),
        }
    }

    /// Bytes of RAM the dump describes.
    pub fn memory_size(&self) -> u64 {
        self.ranges().iter().map(|(s, e)| e - s).sum()
    }

    /// Read physical memory. Either fills all of `buf` or names the first hole met.
    pub fn read_phys(&self, paddr: u64, buf: &mut [u8]) -> Result<(), Hole> {
        match &self.body {
            Body::Elf(e) => e.read(self.src.bytes(), paddr, buf),
            Body::Kdump(k) => {
                if let Some(why) = &k.untrusted {
                    return Err(Hole::Corrupt {
                        paddr,
                        reason: why.clone(),
                    });
                }
                let bs = k.header.block_size as u64;
                let mut done = 0usize;
                while done < buf.len() {
                    let addr = paddr.wrapping_add(done as u64);
                    let pfn = addr / bs;
                    let off = (addr % bs) as usize;
                    let page = self.page(k, pfn)?;
                    let n = (page.len().saturating_sub(off)).min(buf.len() - done);
                    if n == 0 {
                        return Err(Hole::Corrupt {
                            paddr: addr,
                            reason: "short page".into(),
                        });
                    }
                    buf[done..done + n].copy_from_slice(&page[off..off + n]);
                    done += n;
                }
                Ok(())
            }
        }
    }

    fn page(&self, k: &kdump::Kdump, pfn: u64) -> Result<std::sync::Arc<[u8]>, Hole> {
        if let Ok(c) = self.cache.lock() {
            if let Some(p) = c.map.get(&pfn) {
                return Ok(p.clone());
            }
        }
        let page: std::sync::Arc<[u8]> = k.read_page(&self.src, pfn)?.into();
        if let Ok(mut c) = self.cache.lock() {
            if c.map.len() >= CACHE_PAGES {
                c.map.clear();
            }
            c.map.insert(pfn, page.clone());
        }
        Ok(page)
    }

    /// Whether the page holding `paddr` is present (not excluded, not truncated).
    pub fn is_present(&self, paddr: u64) -> bool {
        let mut b = [0u8; 1];
        self.read_phys(paddr, &mut b).is_ok()
    }
}

pub(crate) fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}
pub(crate) fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}
pub(crate) fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Fuzzing entry: open arbitrary bytes as a dump and read a few pages. Must never panic.
pub fn fuzz_open(data: &[u8]) {
    if let Ok(d) = Dump::from_bytes(data.to_vec()) {
        let _ = d.prstatus();
        let _ = d.qemu_cpus();
        let _ = d.damage();
        let _ = d.vmcoreinfo();
        let _ = d.memory_size();
        let mut buf = [0u8; 64];
        for (s, e) in d.ranges().into_iter().take(8) {
            let _ = d.read_phys(s, &mut buf);
            let _ = d.read_phys(e.saturating_sub(1), &mut buf);
        }
        let _ = d.read_phys(0, &mut buf);
    }
}

/// Fuzzing entry for damaged dumps: everything `kmortem core` reads before and while it
/// answers (the damage found at open, notes, registers, VMCOREINFO, pages at the start, middle
/// and end of every range, and a stride through them). Must never panic.
pub fn fuzz_read_paths(d: &Dump) {
    let _ = d.damage().len();
    let _ = d.prstatus_notes();
    let _ = d.qemu_cpus();
    let _ = d.vmcoreinfo().map(|v| v.len());
    let _ = d.kdump_header();
    let _ = d.memory_size();
    let mut page = vec![0u8; 4096];
    let mut reads = 0;
    for (s, e) in d.ranges().into_iter().take(64) {
        let len = e.saturating_sub(s);
        for p in [s, s + len / 2, e.saturating_sub(4096)] {
            let _ = d.read_phys(p, &mut page);
        }
        let stride = (len / 16).max(4096);
        let mut p = s;
        while p < e && reads < 512 {
            let _ = d.read_phys(p.wrapping_sub(8), &mut page[..16]);
            let _ = d.read_phys(p, &mut page);
            p = p.saturating_add(stride);
            reads += 1;
        }
    }
    let _ = d.is_present(u64::MAX - 1);
}

#[cfg(test)]
mod tests;
