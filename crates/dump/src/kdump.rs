//! kdump-compressed dumps (makedumpfile's "KDUMP   " format, header versions 1 to 6, and the
//! older "DISKDUMP"). Layout: crash's diskdump.h and makedumpfile's diskdump_mod.h.

use crate::notes::{parse_notes_checked, Note};
use crate::source::Source;
use crate::{malformed, u32_at, u64_at, Damage, DamageKind, Hole, OpenError};

/// The fields of `struct disk_dump_header` and `struct kdump_sub_header` that matter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KdumpHeader {
    pub signature: [u8; 8],
    pub version: i32,
    /// utsname: sysname, nodename, release, version, machine, domainname.
    pub utsname: [String; 6],
    /// Seconds and microseconds of the dump.
    pub timestamp: (i64, i64),
    pub status: u32,
    pub block_size: u32,
    pub sub_hdr_size: u32,
    pub bitmap_blocks: u32,
    pub max_mapnr: u64,
    pub nr_cpus: i32,
    pub current_cpu: u32,
    pub phys_base: u64,
    pub dump_level: i32,
    pub split: bool,
    pub start_pfn: u64,
    pub end_pfn: u64,
    pub offset_vmcoreinfo: u64,
    pub size_vmcoreinfo: u64,
    pub offset_note: u64,
    pub size_note: u64,
}

/// Page compression, from a page descriptor's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zlib,
    Lzo,
    Snappy,
    Zstd,
}

const DUMP_DH_COMPRESSED_ZLIB: u32 = 0x1;
const DUMP_DH_COMPRESSED_LZO: u32 = 0x2;
const DUMP_DH_COMPRESSED_SNAPPY: u32 = 0x4;
const DUMP_DH_COMPRESSED_ZSTD: u32 = 0x20;

/// Dumpable-bitmap bits counted per chunk, to find a descriptor index in O(chunk).
const CHUNK_BITS: u64 = 4096;

pub(crate) struct Kdump {
    pub(crate) header: KdumpHeader,
    ram_bitmap: Vec<u8>,
    dump_bitmap: Vec<u8>,
    /// Set bits of the dumpable bitmap before each chunk.
    prefix: Vec<u64>,
    desc_off: u64,
    pub(crate) damage: Vec<Damage>,
    /// Set when the bitmap and the descriptors disagree: no page can be trusted to be the
    /// page asked for, so every read is refused with this reason.
    pub(crate) untrusted: Option<String>,
}

/// Header status bit of a dump makedumpfile did not finish (diskdump_mod.h).
const DUMP_DH_COMPRESSED_INCOMPLETE: u32 = 0x8;

/// Parse `disk_dump_header` + `kdump_sub_header` from their raw blocks (exposed for fuzzing).
pub fn parse_header(h: &[u8], sub: &[u8]) -> Result<KdumpHeader, OpenError> {
    let bad = |r: &str| malformed("kdump-compressed", r.to_string());
    if h.len() < 464 {
        return Err(bad("header shorter than 464 bytes"));
    }
    let i32_at = |o| u32_at(h, o).map(|v| v as i32).ok_or_else(|| bad("header"));
    let mut sig = [0u8; 8];
    sig.copy_from_slice(&h[..8]);
    let version = i32_at(8)?;
    let uts = |i: usize| {
        let f = &h[12 + i * 65..12 + (i + 1) * 65];
        let end = f.iter().position(|&c| c == 0).unwrap_or(f.len());
        String::from_utf8_lossy(&f[..end]).into_owned()
    };
    let mut hd = KdumpHeader {
        signature: sig,
        version,
        utsname: [uts(0), uts(1), uts(2), uts(3), uts(4), uts(5)],
        timestamp: (
            u64_at(h, 408).unwrap_or(0) as i64,
            u64_at(h, 416).unwrap_or(0) as i64,
        ),
        status: i32_at(424)? as u32,
        block_size: i32_at(428)? as u32,
        sub_hdr_size: i32_at(432)? as u32,
        bitmap_blocks: i32_at(436)? as u32,
        max_mapnr: i32_at(440)? as u32 as u64,
        current_cpu: i32_at(456)? as u32,
        nr_cpus: i32_at(460)?,
        ..Default::default()
    };
    if !hd.block_size.is_power_of_two() || !(512..=(1 << 20)).contains(&hd.block_size) {
        return Err(bad(&format!(
            "block size {} is not a page size",
            hd.block_size
        )));
    }
    if sig == *b"KDUMP   " {
        // kdump_sub_header: fields appear with header versions (split/start/end: v2,
        // vmcoreinfo: v3, notes: v4, eraseinfo: v5, 64-bit pfns: v6).
        let g = |o| u64_at(sub, o);
        hd.phys_base = g(0).unwrap_or(0);
        hd.dump_level = u32_at(sub, 8).unwrap_or(0) as i32;
        if version >= 2 {
            hd.split = u32_at(sub, 12).unwrap_or(0) != 0;
            hd.start_pfn = g(16).unwrap_or(0);
            hd.end_pfn = g(24).unwrap_or(0);
        }
        if version >= 3 {
            hd.offset_vmcoreinfo = g(32).unwrap_or(0);
            hd.size_vmcoreinfo = g(40).unwrap_or(0);
        }
        if version >= 4 {
            hd.offset_note = g(48).unwrap_or(0);
            hd.size_note = g(56).unwrap_or(0);
        }
        // Folklore: from version 6 (makedumpfile 1.5.x, for >16 TiB machines) the 32-bit
        // max_mapnr in the main header is obsolete and can be truncated: use max_mapnr_64.
        if version >= 6 {
            if let Some(m) = g(96) {
                hd.max_mapnr = m;
            }
            if hd.split {
                hd.start_pfn = g(80).unwrap_or(hd.start_pfn);
                hd.end_pfn = g(88).unwrap_or(hd.end_pfn);
            }
        }
    }
    Ok(hd)
}

impl Kdump {
    pub(crate) fn parse(src: &Source) -> Result<Kdump, OpenError> {
        let bad = |r: String| malformed("kdump-compressed", r);
        let h = src
            .slice(0, 464)
            .ok_or_else(|| bad("file shorter than its header".into()))?;
        let bs = u32_at(&h, 428).unwrap_or(0) as u64;
        let sub = if (512..=(1 << 20)).contains(&bs) {
            src.slice(bs, 104)
                .or_else(|| src.slice(bs, 16))
                .map(|c| c.into_owned())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let header = parse_header(&h, &sub)?;
        let bs = header.block_size as u64;
        let bm_off = (1 + header.sub_hdr_size as u64) * bs;
        let bm_len = header.bitmap_blocks as u64 * bs;
        let bitmap = src
            .slice(bm_off, usize::try_from(bm_len).unwrap_or(usize::MAX))
            .ok_or_else(|| {
                bad(format!(
                    "bitmaps ({bm_len} bytes at {bm_off}) beyond end of file"
                ))
            })?;
        let half = (bm_len / 2) as usize;
        let ram_bitmap = bitmap[..half].to_vec();
        // Folklore: a bitmap_blocks of 1 or an odd count would leave no second bitmap; old
        // diskdump files had a single bitmap. Use the RAM bitmap for both then.
        let dump_bitmap = if half > 0 {
            bitmap[half..half * 2].to_vec()
        } else {
            ram_bitmap.clone()
        };
        let mut prefix = Vec::with_capacity(dump_bitmap.len() / 512 + 1);
        let mut acc = 0u64;
        for chunk in dump_bitmap.chunks((CHUNK_BITS / 8) as usize) {
            prefix.push(acc);
            acc += chunk.iter().map(|b| b.count_ones() as u64).sum::<u64>();
        }
        let mut k = Kdump {
            desc_off: bm_off + bm_len,
            header,
            ram_bitmap,
            dump_bitmap,
            prefix,
            damage: Vec::new(),
            untrusted: None,
        };
        k.check(src, acc);
        Ok(k)
    }

    /// Check the descriptors against the bitmap and the file: a bitmap that claims more or
    /// fewer pages than the descriptor table holds (every page index after the lie would name
    /// another page's descriptor), and descriptors or page data past the end of the file.
    ///
    /// Folklore: makedumpfile writes the descriptors right after the bitmaps, one per set bit
    /// of the dumpable bitmap, then the page data: first, when zero pages are excluded (dump
    /// level bit 1), one shared zero page, then the pages in pfn order (write_kdump_pages*()
    /// in makedumpfile.c). So the first descriptor's data offset is the end of the table, or
    /// one block after it (or after the table rounded up to a block, for writers that align). Split dumps (`--split`) hold a pfn range each and are not checked.
    /// Pinned by `lab_kdump_bitmap_that_lies` and `lab_truncated_dumps_are_flagged`.
    fn check(&mut self, src: &Source, dumpable: u64) {
        let h = &self.header;
        if h.status & DUMP_DH_COMPRESSED_INCOMPLETE != 0 {
            self.damage.push(Damage {
                kind: DamageKind::Truncated,
                range: None,
                what: "header".into(),
                message: "makedumpfile did not finish this dump (status DUMP_DH_COMPRESSED_INCOMPLETE): pages it never wrote are missing".into(),
            });
        }
        if h.split {
            return;
        }
        let bs = h.block_size as u64;
        let flen = src.len();
        if dumpable == 0 {
            if flen > self.desc_off.saturating_add(bs) {
                let why = format!(
                    "the dump bitmap marks no page dumpable, but {} bytes of page descriptors and data follow it",
                    flen - self.desc_off
                );
                self.damage.push(Damage {
                    kind: DamageKind::Bitmap,
                    range: None,
                    what: "dump bitmap".into(),
                    message: format!("{why}: the bitmap is damaged, no page can be located"),
                });
            }
            return;
        }
        let table_end = self.desc_off.saturating_add(dumpable.saturating_mul(24));
        let desc = |i: u64| -> Option<(u64, u32)> {
            let d = src.slice(self.desc_off.checked_add(i.checked_mul(24)?)?, 24)?;
            Some((u64_at(&d, 0)?, u32_at(&d, 8)?))
        };
        match desc(0) {
            Some((off, _)) if off != 0 => {
                let room = off.saturating_sub(self.desc_off) / 24;
                // (other writers align the page data up to a block: one block of slack
                // beyond the zero page)
                let slack = table_end.div_ceil(bs).saturating_mul(bs).saturating_add(bs);
                if off < table_end || off > slack {
                    let why = format!(
                        "the dump bitmap marks {dumpable} pages dumpable, but the page descriptors have room for {room} (page data starts at file offset {off:#x})"
                    );
                    self.damage.push(Damage {
                        kind: DamageKind::Bitmap,
                        range: None,
                        what: "dump bitmap".into(),
                        message: format!(
                            "{why}: the bitmap is damaged, no page can be located, reads are refused"
                        ),
                    });
                    self.untrusted = Some(format!(
                        "kdump bitmap disagrees with the descriptors ({why})"
                    ));
                    return;
                }
            }
            _ => {}
        }
        // Truncation: walk the dumpable pfns in order with their descriptors (work bounded by
        // the bitmap, which is in the file).
        let mut idx = 0u64;
        let mut missing = 0u64;
        let mut first: Option<(u64, u64)> = None;
        let mut last_end = 0u64;
        let n = self.dump_bitmap.len() as u64 * 8;
        let mut pfn = 0u64;
        while pfn < n.min(h.max_mapnr) {
            let byte = self.dump_bitmap[(pfn / 8) as usize];
            if byte == 0 && pfn.is_multiple_of(8) {
                pfn += 8;
                continue;
            }
            if byte & (1 << (pfn % 8)) != 0 {
                let ok = match desc(idx) {
                    Some((off, size)) if off != 0 && size != 0 => src.covers(off, size as u64),
                    _ => false,
                };
                if !ok {
                    missing += 1;
                    let p = pfn * bs;
                    if first.is_none() {
                        first = Some((p, p + bs));
                    }
                    last_end = p + bs;
                }
                idx += 1;
            }
            pfn += 1;
        }
        if let Some((s, _)) = first {
            self.damage.push(Damage {
                kind: DamageKind::Truncated,
                range: Some((s, last_end)),
                what: "page data".into(),
                message: format!(
                    "file truncated at {flen} bytes: {missing} of {dumpable} dumped pages are missing (physical {s:#x}-{last_end:#x})"
                ),
            });
        }
    }

    pub(crate) fn notes(&self, src: &Source, damage: &mut Vec<Damage>) -> Vec<Note> {
        let h = &self.header;
        if h.size_note == 0 || h.size_note > (64 << 20) {
            return Vec::new();
        }
        let Some(d) = src.slice(h.offset_note, h.size_note as usize) else {
            damage.push(Damage {
                kind: DamageKind::Truncated,
                range: None,
                what: "notes".into(),
                message: format!(
                    "the note area ({} bytes at offset {:#x}) is past the end of the file: the CPUs' registers are lost",
                    h.size_note, h.offset_note
                ),
            });
            return Vec::new();
        };
        let (notes, stop) = parse_notes_checked(&d);
        if let Some((at, why)) = stop {
            damage.push(Damage {
                kind: DamageKind::Notes,
                range: None,
                what: "notes".into(),
                message: format!(
                    "notes end early at file offset {:#x}: {why} ({} notes read)",
                    h.offset_note + at as u64,
                    notes.len()
                ),
            });
        }
        notes
    }

    pub(crate) fn vmcoreinfo(&self, src: &Source, damage: &mut Vec<Damage>) -> Option<Vec<u8>> {
        let h = &self.header;
        if h.size_vmcoreinfo == 0 || h.size_vmcoreinfo > (1 << 20) {
            return None;
        }
        let v = src
            .slice(h.offset_vmcoreinfo, h.size_vmcoreinfo as usize)
            .map(|c| c.into_owned());
        if v.is_none() {
            damage.push(Damage {
                kind: DamageKind::Truncated,
                range: None,
                what: "VMCOREINFO".into(),
                message: format!(
                    "VMCOREINFO ({} bytes at offset {:#x}) is past the end of the file",
                    h.size_vmcoreinfo, h.offset_vmcoreinfo
                ),
            });
        }
        v
    }

    fn bit(map: &[u8], pfn: u64) -> bool {
        usize::try_from(pfn / 8)
            .ok()
            .and_then(|i| map.get(i))
            .is_some_and(|b| b & (1 << (pfn % 8)) != 0)
    }

    pub(crate) fn ranges(&self) -> Vec<(u64, u64)> {
        let bs = self.header.block_size as u64;
        let n = (self.ram_bitmap.len() as u64 * 8).min(self.header.max_mapnr);
        let mut v: Vec<(u64, u64)> = Vec::new();
        let mut pfn = 0;
        while pfn < n {
            let byte = self.ram_bitmap[(pfn / 8) as usize];
            if byte == 0 && pfn % 8 == 0 {
                pfn += 8;
                continue;
            }
            if Self::bit(&self.ram_bitmap, pfn) {
                match v.last_mut() {
                    Some(l) if l.1 == pfn * bs => l.1 += bs,
                    _ => v.push((pfn * bs, (pfn + 1) * bs)),
                }
            }
            pfn += 1;
        }
        v
    }

    /// Index of pfn's descriptor: the number of dumpable pfns below it.
    fn desc_index(&self, pfn: u64) -> u64 {
        let chunk = pfn / CHUNK_BITS;
        let mut n = self.prefix.get(chunk as usize).copied().unwrap_or(0);
        let start = (chunk * CHUNK_BITS / 8) as usize;
        let end = (pfn / 8) as usize;
        n += self.dump_bitmap[start..end]
            .iter()
            .map(|b| b.count_ones() as u64)
            .sum::<u64>();
        let rem = pfn % 8;
        n + (self.dump_bitmap[end] & ((1u8 << rem) - 1)).count_ones() as u64
    }

    pub(crate) fn read_page(&self, src: &Source, pfn: u64) -> Result<Vec<u8>, Hole> {
        let bs = self.header.block_size as u64;
        let paddr = pfn.wrapping_mul(bs);
        if pfn >= self.header.max_mapnr || pfn / 8 >= self.dump_bitmap.len() as u64 {
            return Err(Hole::NotInDump(paddr));
        }
        if !Self::bit(&self.dump_bitmap, pfn) {
            return Err(if Self::bit(&self.ram_bitmap, pfn) {
                Hole::Excluded(paddr)
            } else {
                Hole::NotInDump(paddr)
            });
        }
        let idx = self.desc_index(pfn);
        let d = src
            .slice(self.desc_off + idx * 24, 24)
            .ok_or(Hole::Truncated(paddr))?;
        let (Some(off), Some(size), Some(flags)) = (u64_at(&d, 0), u32_at(&d, 8), u32_at(&d, 12))
        else {
            return Err(Hole::Truncated(paddr));
        };
        // Folklore: an interrupted makedumpfile (status DUMP_DH_COMPRESSED_INCOMPLETE, 0x8)
        // leaves zeroed descriptors for the pages it never wrote.
        if size == 0 || off == 0 {
            return Err(Hole::Truncated(paddr));
        }
        let data = src
            .slice(off, size as usize)
            .ok_or(Hole::Truncated(paddr))?;
        let corrupt = |r: String| Hole::Corrupt { paddr, reason: r };
        let bsz = bs as usize;
        let comp = compression(flags);
        let out = match comp {
            Compression::None => {
                if data.len() != bsz {
                    return Err(corrupt(format!(
                        "uncompressed page of {} bytes, block size {bsz}",
                        data.len()
                    )));
                }
                data.into_owned()
            }
            Compression::Zlib => {
                use std::io::Read;
                let mut out = Vec::with_capacity(bsz);
                flate2::read::ZlibDecoder::new(&data[..])
                    .take(bsz as u64 + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| corrupt(format!("zlib: {e}")))?;
                out
            }
            Compression::Lzo => {
                let mut out = Vec::with_capacity(bsz);
                crate::lzo::decompress(&data, &mut out, bsz)
                    .map_err(|_| corrupt("lzo: bad stream".into()))?;
                out
            }
            Compression::Snappy => {
                let n = snap::raw::decompress_len(&data)
                    .map_err(|e| corrupt(format!("snappy: {e}")))?;
                if n != bsz {
                    return Err(corrupt(format!("snappy page of {n} bytes")));
                }
                snap::raw::Decoder::new()
                    .decompress_vec(&data)
                    .map_err(|e| corrupt(format!("snappy: {e}")))?
            }
            Compression::Zstd => {
                let mut out = vec![0u8; bsz];
                let n = ruzstd::decoding::FrameDecoder::new()
                    .decode_all(&data, &mut out)
                    .map_err(|e| corrupt(format!("zstd: {e}")))?;
                out.truncate(n);
                out
            }
        };
        if out.len() != bsz {
            return Err(corrupt(format!(
                "{comp:?} page decompressed to {} bytes, expected {bsz}",
                out.len()
            )));
        }
        Ok(out)
    }
}

fn compression(flags: u32) -> Compression {
    if flags & DUMP_DH_COMPRESSED_ZLIB != 0 {
        Compression::Zlib
    } else if flags & DUMP_DH_COMPRESSED_LZO != 0 {
        Compression::Lzo
    } else if flags & DUMP_DH_COMPRESSED_SNAPPY != 0 {
        Compression::Snappy
    } else if flags & DUMP_DH_COMPRESSED_ZSTD != 0 {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Fuzzing entry for the header and descriptor parsers.
pub fn fuzz_header(data: &[u8]) {
    let (h, sub) = data.split_at(data.len().min(464));
    let _ = parse_header(h, sub);
}
