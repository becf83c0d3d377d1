//! ELF vmcores: `PT_LOAD` segments by physical address, `PT_NOTE` notes.

use crate::notes::{parse_notes_checked, Note};
use crate::{malformed, u16_at, u32_at, u64_at, Damage, DamageKind, Hole, OpenError};

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
    /// Physical ranges where two segments disagree: reads there are refused.
    conflicts: Vec<(u64, u64)>,
    pub(crate) damage: Vec<Damage>,
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
        let mut damage = Vec::new();
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
                damage.push(Damage {
                    kind: DamageKind::Truncated,
                    range: None,
                    what: "program headers".into(),
                    message: format!(
                        "the file ends inside the program header table: {i} of {phnum} headers read"
                    ),
                });
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
        damage.extend(truncation(&loads, b.len() as u64));
        let (conflicts, d) = overlaps(&loads, b);
        damage.extend(d);
        Ok(Elf {
            loads,
            notes,
            conflicts,
            damage,
        })
    }

    pub(crate) fn notes(&self, b: &[u8], damage: &mut Vec<Damage>) -> Vec<Note> {
        let mut out = Vec::new();
        for &(off, sz) in &self.notes {
            let s = usize::try_from(off).unwrap_or(usize::MAX);
            let e = s.saturating_add(usize::try_from(sz).unwrap_or(usize::MAX));
            if e > b.len() {
                damage.push(Damage {
                    kind: DamageKind::Truncated,
                    range: None,
                    what: "PT_NOTE".into(),
                    message: format!(
                        "the note segment ({sz} bytes at offset {off}) runs past the end of the file ({} bytes): notes after it are lost",
                        b.len()
                    ),
                });
            }
            if let Some(d) = b.get(s.min(b.len())..e.min(b.len())) {
                let (notes, stop) = parse_notes_checked(d);
                if let Some((at, why)) = stop {
                    damage.push(Damage {
                        kind: DamageKind::Notes,
                        range: None,
                        what: "PT_NOTE".into(),
                        message: format!(
                            "notes end early at file offset {}: {why} ({} notes read)",
                            off + at as u64,
                            notes.len()
                        ),
                    });
                }
                out.extend(notes);
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
        if !self.conflicts.is_empty() {
            let end = paddr.saturating_add(buf.len() as u64);
            if let Some(&(s, _)) = self.conflicts.iter().find(|(s, e)| *s < end && paddr < *e) {
                return Err(Hole::Corrupt {
                    paddr: s.max(paddr) & !0xfff,
                    reason: "overlapping PT_LOAD segments hold different bytes here".into(),
                });
            }
        }
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

/// Segments whose file data runs past the end of the file: one damage line with the first
/// missing range and the total.
fn truncation(loads: &[Load], flen: u64) -> Option<Damage> {
    let mut missing = 0u64;
    let mut first: Option<(u64, u64)> = None;
    let mut segs = 0;
    for l in loads {
        let end = l.offset.saturating_add(l.filesz);
        if end <= flen {
            continue;
        }
        let have = flen.saturating_sub(l.offset).min(l.filesz);
        let lost = l.filesz - have;
        missing += lost;
        segs += 1;
        let r = (
            l.paddr.saturating_add(have),
            l.paddr.saturating_add(l.filesz),
        );
        if first.is_none_or(|f| r.0 < f.0) {
            first = Some(r);
        }
    }
    let r = first?;
    Some(Damage {
        kind: DamageKind::Truncated,
        range: Some(r),
        what: "PT_LOAD".into(),
        message: format!(
            "file truncated at {flen} bytes: {} MiB of memory in {segs} PT_LOAD segment(s) missing (from physical {:#x})",
            missing.div_ceil(1 << 20),
            r.0
        ),
    })
}

/// Pairs of `PT_LOAD` segments that describe the same physical bytes. The same bytes twice is
/// normal: /proc/vmcore's kernel-text segment repeats part of a RAM segment (kexec-tools);
/// different bytes make the dump self-contradictory there, and reads in it are refused.
/// Compared page by page over what both have in the file, so the work is bounded by the file.
fn overlaps(loads: &[Load], b: &[u8]) -> (Vec<(u64, u64)>, Vec<Damage>) {
    // A real vmcore has a few hundred PT_LOADs at most, overlapping in a handful of pairs;
    // 65,535 segments all at one address would be 2 billion pairs.
    const MAX_PAIRS: u64 = 1 << 20;
    let mut conflicts: Vec<(u64, u64)> = Vec::new();
    let mut damage = Vec::new();
    let mut pairs = 0u64;
    for (i, a) in loads.iter().enumerate() {
        let a_end = a.paddr.saturating_add(a.memsz);
        for c in loads[i + 1..].iter().take_while(|c| c.paddr < a_end) {
            pairs += 1;
            if pairs > MAX_PAIRS {
                damage.push(Damage {
                    kind: DamageKind::Overlap,
                    range: None,
                    what: "PT_LOAD".into(),
                    message: format!(
                        "more than {MAX_PAIRS} overlapping PT_LOAD pairs: not all were checked for contradicting bytes"
                    ),
                });
                return (conflicts, damage);
            }
            let s = c.paddr;
            // Only what both have in the file can contradict: past either's `p_filesz`, or past
            // the end of a truncated file, the pages are not there twice. Clamping here keeps the page loop bounded by the file
            // (a segment claiming a huge `p_memsz` made it loop for minutes: found by the
            // dump_open fuzz target, fuzz/regressions/dump_open).
            let infile = |l: &Load| l.filesz.min((b.len() as u64).saturating_sub(l.offset));
            let e = a_end
                .min(c.paddr.saturating_add(c.memsz))
                .min(a.paddr.saturating_add(infile(a)))
                .min(c.paddr.saturating_add(infile(c)));
            if s >= e {
                continue;
            }
            let before = conflicts.len();
            let mut bad: Option<(u64, u64)> = None;
            let mut p = s;
            while p < e {
                let n = (e - p).min(4096);
                let at = |l: &Load| -> Option<&[u8]> {
                    let rel = p - l.paddr;
                    if rel.checked_add(n)? > l.filesz {
                        return None;
                    }
                    let o = usize::try_from(l.offset.checked_add(rel)?).ok()?;
                    b.get(o..o.checked_add(n as usize)?)
                };
                let same = match (at(a), at(c)) {
                    (Some(x), Some(y)) => x == y,
                    _ => true, // not in the file twice: nothing to contradict
                };
                if !same {
                    match &mut bad {
                        Some(r) if r.1 == p => r.1 = p + n,
                        _ => {
                            if let Some(r) = bad.take() {
                                conflicts.push(r);
                            }
                            bad = Some((p, p + n));
                        }
                    }
                }
                p += n;
            }
            if let Some(r) = bad {
                conflicts.push(r);
            }
            if conflicts.len() > before {
                damage.push(Damage {
                    kind: DamageKind::Overlap,
                    range: Some((s, e)),
                    what: "PT_LOAD".into(),
                    message: format!(
                        "PT_LOAD segments at file offsets {:#x} and {:#x} overlap at physical {s:#x}-{e:#x} with different bytes: reads there are refused",
                        a.offset, c.offset
                    ),
                });
            }
        }
    }
    (conflicts, damage)
}
