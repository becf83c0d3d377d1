//! ELF vmcores: `PT_LOAD` segments by physical address, `PT_NOTE` notes.

use crate::notes::{parse_notes, Note};
use crate::{malformed, u16_at, u32_at, u64_at, Hole, OpenError};

#[derive(Debug, Clone, Copy)]
struct Load {
    paddr: u64,
    offset: u64,
    filesz: u64,
    memsz: u64,
}

pub(crate) struct Elf {
    loads: Vec<Load>,
    notes: Vec<(u64, u64)>,
}

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;

impl Elf {
    pub(crate) fn parse(b: &[u8]) -> Result<Elf, OpenError> {
        let bad = |r: &str| malformed("ELF", r.to_string());
        if b.len() < 64 {
            return Err(bad("shorter than an ELF header"));
        }
        if b[4] != 2 {
            return Err(bad("not ELFCLASS64 (32-bit vmcores are not supported)"));
        }
        if b[5] != 1 {
            return Err(bad("not little-endian"));
        }
        let phoff = u64_at(b, 32).ok_or_else(|| bad("header"))?;
        let phentsize = u16_at(b, 54).ok_or_else(|| bad("header"))? as u64;
        let mut phnum = u16_at(b, 56).ok_or_else(|| bad("header"))? as u64;
        if phentsize < 56 {
            return Err(bad("program header entries smaller than 56 bytes"));
        }
        // Folklore: with more than 65534 segments (big machines), e_phnum is PN_XNUM (0xffff)
        // and the real count is in section header 0's sh_info (ELF gABI; makedumpfile does it).
        if phnum == 0xffff {
            let shoff = u64_at(b, 40).unwrap_or(0) as usize;
            phnum = shoff
                .checked_add(44)
                .and_then(|o| u32_at(b, o))
                .ok_or_else(|| bad("PN_XNUM without a section header"))? as u64;
        }
        let mut loads = Vec::new();
        let mut notes = Vec::new();
        for i in 0..phnum {
            let Some(o) = i
                .checked_mul(phentsize)
                .and_then(|x| x.checked_add(phoff))
                .and_then(|x| usize::try_from(x).ok())
            else {
                break;
            };
            let (Some(pt), Some(off), Some(paddr), Some(filesz), Some(memsz)) = (
                u32_at(b, o),
                u64_at(b, o + 8),
                u64_at(b, o + 24),
                u64_at(b, o + 32),
                u64_at(b, o + 40),
            ) else {
                // Truncated program header table: keep the segments we have.
                break;
            };
            match pt {
                PT_LOAD => loads.push(Load {
                    paddr,
                    offset: off,
                    filesz: filesz.min(memsz.max(filesz)),
                    memsz: memsz.max(filesz),
                }),
                PT_NOTE => notes.push((off, filesz)),
                _ => {}
            }
        }
        // Folklore: /proc/vmcore also has a PT_LOAD for the kernel text mapping (paddr of the
        // image, overlapping a RAM segment); QEMU writes one per RAM block. Sort by address;
        // lookups take the first segment that holds the address.
        loads.sort_by_key(|l| (l.paddr, std::cmp::Reverse(l.memsz)));
        Ok(Elf { loads, notes })
    }

    pub(crate) fn notes(&self, b: &[u8]) -> Vec<Note> {
        let mut out = Vec::new();
        for &(off, sz) in &self.notes {
            let s = usize::try_from(off).unwrap_or(usize::MAX);
            let e = s.saturating_add(usize::try_from(sz).unwrap_or(usize::MAX));
            if let Some(d) = b.get(s..e.min(b.len())) {
                out.extend(parse_notes(d));
            }
        }
        out
    }

    pub(crate) fn ranges(&self) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = Vec::new();
        for l in &self.loads {
            let e = l.paddr.saturating_add(l.memsz);
            match v.last_mut() {
                Some(last) if l.paddr <= last.1 => last.1 = last.1.max(e),
                _ => v.push((l.paddr, e)),
            }
        }
        v
    }

    fn find(&self, paddr: u64) -> Option<&Load> {
        let i = self.loads.partition_point(|l| l.paddr <= paddr);
        self.loads[..i]
            .iter()
            .rev()
            .take(4)
            .find(|l| paddr - l.paddr < l.memsz)
    }

    pub(crate) fn read(&self, b: &[u8], paddr: u64, buf: &mut [u8]) -> Result<(), Hole> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = paddr.wrapping_add(done as u64);
            let l = self.find(a).ok_or(Hole::NotInDump(a))?;
            let rel = a - l.paddr;
            let n = ((l.memsz - rel).min((buf.len() - done) as u64)) as usize;
            if rel >= l.filesz {
                // p_filesz < p_memsz: the tail of the segment was left out of the file.
                return Err(Hole::Excluded(a & !0xfff));
            }
            let n = n.min((l.filesz - rel) as usize);
            let fo = l.offset.saturating_add(rel);
            let src = usize::try_from(fo)
                .ok()
                .and_then(|s| b.get(s..s.checked_add(n)?))
                .ok_or(Hole::Truncated(a & !0xfff))?;
            buf[done..done + n].copy_from_slice(src);
            done += n;
        }
        Ok(())
    }
}
