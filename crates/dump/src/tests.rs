//! Dumps built in code: an ELF vmcore, kdump-compressed files with every compression we can
//! produce here, the flattened form of one, and truncated copies.

use super::*;
use std::io::Write;

fn page(pfn: u64) -> Vec<u8> {
    (0..4096u64)
        .map(|i| ((pfn * 31 + i * 7) % 251) as u8)
        .collect()
}

fn note(name: &[u8], ntype: u32, desc: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
    v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    v.extend_from_slice(&ntype.to_le_bytes());
    v.extend_from_slice(name);
    v.push(0);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v.extend_from_slice(desc);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

fn prstatus(rip: u64) -> Vec<u8> {
    let mut d = vec![0u8; 336];
    d[32..36].copy_from_slice(&77u32.to_le_bytes());
    d[112 + 16 * 8..112 + 17 * 8].copy_from_slice(&rip.to_le_bytes());
    d
}

const VMCI: &[u8] = b"OSRELEASE=6.1.0-test\nPAGESIZE=4096\n";

/// ELF: two PT_LOADs (pfn 0-3 and pfn 16-19, the second with filesz covering 2 pages).
fn build_elf() -> Vec<u8> {
    let mut notes = note(b"CORE", 1, &prstatus(0xffffffff81000000));
    notes.extend(note(b"CORE", 1, &prstatus(0xffffffff81000010)));
    notes.extend(note(b"VMCOREINFO", 0, VMCI));
    let phnum = 3u16;
    let data_off = 64 + 56 * phnum as u64;
    let load1 = data_off + notes.len() as u64;
    let load2 = load1 + 4 * 4096;
    let mut f = vec![0u8; 64];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[16..18].copy_from_slice(&4u16.to_le_bytes());
    f[18..20].copy_from_slice(&62u16.to_le_bytes());
    f[32..40].copy_from_slice(&64u64.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&phnum.to_le_bytes());
    let ph = |t: u32, off: u64, paddr: u64, filesz: u64, memsz: u64| {
        let mut p = vec![0u8; 56];
        p[0..4].copy_from_slice(&t.to_le_bytes());
        p[8..16].copy_from_slice(&off.to_le_bytes());
        p[24..32].copy_from_slice(&paddr.to_le_bytes());
        p[32..40].copy_from_slice(&filesz.to_le_bytes());
        p[40..48].copy_from_slice(&memsz.to_le_bytes());
        p
    };
    f.extend(ph(4, data_off, 0, notes.len() as u64, notes.len() as u64));
    f.extend(ph(1, load1, 0, 4 * 4096, 4 * 4096));
    f.extend(ph(1, load2, 16 * 4096, 2 * 4096, 4 * 4096));
    f.extend(notes);
    for pfn in 0..4 {
        f.extend(page(pfn));
    }
    for pfn in 16..18 {
        f.extend(page(pfn));
    }
    f
}

#[test]
fn elf_reads_pages_notes_and_holes() {
    let d = Dump::from_bytes(build_elf()).unwrap();
    assert_eq!(d.format(), Format::Elf);
    assert_eq!(d.vmcoreinfo(), Some(VMCI));
    let pr = d.prstatus();
    assert_eq!(pr.len(), 2);
    assert_eq!(pr[1].rip(), 0xffffffff81000010);
    assert_eq!(pr[0].pid, 77);
    let mut b = vec![0u8; 8192];
    d.read_phys(4096, &mut b).unwrap();
    assert_eq!(&b[..4096], &page(1)[..]);
    assert_eq!(&b[4096..], &page(2)[..]);
    let mut b = [0u8; 16];
    d.read_phys(17 * 4096 + 100, &mut b).unwrap();
    assert_eq!(&b[..], &page(17)[100..116]);
    assert_eq!(
        d.read_phys(18 * 4096, &mut b),
        Err(Hole::Excluded(18 * 4096))
    );
    assert_eq!(
        d.read_phys(8 * 4096, &mut b),
        Err(Hole::NotInDump(8 * 4096))
    );
    assert_eq!(d.ranges(), vec![(0, 4 * 4096), (16 * 4096, 20 * 4096)]);

    // Truncate in the middle of pfn 16.
    let mut t = build_elf();
    t.truncate(t.len() - 4096 - 2000);
    let d = Dump::from_bytes(t).unwrap();
    assert_eq!(d.read_phys(16 * 4096, &mut b), Ok(()));
    assert_eq!(
        d.read_phys(17 * 4096, &mut b),
        Err(Hole::Truncated(17 * 4096))
    );
}

#[derive(Clone, Copy)]
enum C {
    Raw,
    Zlib,
    Snappy,
    Zstd,
}

/// kdump v6: 32 pfns; RAM = 0..24; dumpable = RAM minus {3, 10, 11}; pages compressed with
/// `comp` (odd pfns raw to mix both).
fn build_kdump(comp: C) -> Vec<u8> {
    let bs = 4096usize;
    let max = 32u64;
    let mut hdr = vec![0u8; bs];
    hdr[..8].copy_from_slice(b"KDUMP   ");
    hdr[8..12].copy_from_slice(&6i32.to_le_bytes());
    hdr[12 + 2 * 65..12 + 2 * 65 + 8].copy_from_slice(b"6.1.0-kd");
    hdr[428..432].copy_from_slice(&(bs as i32).to_le_bytes());
    hdr[432..436].copy_from_slice(&1i32.to_le_bytes());
    hdr[436..440].copy_from_slice(&2u32.to_le_bytes());
    hdr[440..444].copy_from_slice(&(max as u32).to_le_bytes());
    hdr[460..464].copy_from_slice(&2i32.to_le_bytes());
    let mut sub = vec![0u8; bs];
    let notes = note(b"CORE", 1, &prstatus(0x1234));
    let vmci_off = (5 * bs) as u64; // header, sub, 2 bitmap blocks, then descriptors block
    let notes_off = vmci_off + VMCI.len() as u64;
    sub[0..8].copy_from_slice(&0x1000000u64.to_le_bytes());
    sub[8..12].copy_from_slice(&31i32.to_le_bytes());
    sub[32..40].copy_from_slice(&vmci_off.to_le_bytes());
    sub[40..48].copy_from_slice(&(VMCI.len() as u64).to_le_bytes());
    sub[48..56].copy_from_slice(&notes_off.to_le_bytes());
    sub[56..64].copy_from_slice(&(notes.len() as u64).to_le_bytes());
    sub[96..104].copy_from_slice(&max.to_le_bytes());
    let mut bitmap = vec![0u8; 2 * bs];
    let dumpable: Vec<u64> = (0..24).filter(|p| ![3, 10, 11].contains(p)).collect();
    for p in 0..24u64 {
        bitmap[(p / 8) as usize] |= 1 << (p % 8);
    }
    for &p in &dumpable {
        bitmap[bs + (p / 8) as usize] |= 1 << (p % 8);
    }
    // Layout: descriptors in block 4 (placed after vmcoreinfo/notes would overlap; put the
    // descriptors at block 4 and vmcoreinfo/notes at block 5, pages after).
    let mut descs = vec![0u8; bs];
    let mut data = Vec::new();
    data.extend_from_slice(VMCI);
    data.extend_from_slice(&notes);
    let mut pages_off = (6 * bs) as u64;
    let mut pages = Vec::new();
    for (i, &p) in dumpable.iter().enumerate() {
        let raw = page(p);
        let (bytes, flag) = match (comp, p % 2) {
            (C::Raw, _) | (_, 1) => (raw.clone(), 0u32),
            (C::Zlib, _) => {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(&raw).unwrap();
                (e.finish().unwrap(), 1)
            }
            (C::Snappy, _) => (snap::raw::Encoder::new().compress_vec(&raw).unwrap(), 4),
            (C::Zstd, _) => (
                ruzstd::encoding::compress_to_vec(
                    &raw[..],
                    ruzstd::encoding::CompressionLevel::Fastest,
                ),
                0x20,
            ),
        };
        let d = &mut descs[i * 24..i * 24 + 24];
        d[0..8].copy_from_slice(&pages_off.to_le_bytes());
        d[8..12].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
        d[12..16].copy_from_slice(&flag.to_le_bytes());
        pages_off += bytes.len() as u64;
        pages.extend(bytes);
    }
    let mut f = hdr;
    f.extend(sub);
    f.extend(bitmap);
    f.extend(descs);
    data.resize(bs, 0);
    f.extend(data);
    f.extend(pages);
    f
}

fn check_kdump(d: &Dump) {
    assert_eq!(d.vmcoreinfo(), Some(VMCI));
    assert_eq!(d.prstatus().len(), 1);
    let h = d.kdump_header().unwrap();
    assert_eq!(h.version, 6);
    assert_eq!(h.utsname[2], "6.1.0-kd");
    assert_eq!(h.phys_base, 0x1000000);
    assert_eq!(h.max_mapnr, 32);
    let mut b = vec![0u8; 4096];
    for p in 0..24u64 {
        let r = d.read_phys(p * 4096, &mut b);
        if [3, 10, 11].contains(&p) {
            assert_eq!(r, Err(Hole::Excluded(p * 4096)), "pfn {p}");
        } else {
            assert_eq!(r, Ok(()), "pfn {p}");
            assert_eq!(b, page(p), "pfn {p}");
        }
    }
    assert_eq!(
        d.read_phys(30 * 4096, &mut b),
        Err(Hole::NotInDump(30 * 4096))
    );
    assert_eq!(
        d.read_phys(40 * 4096, &mut b),
        Err(Hole::NotInDump(40 * 4096))
    );
    // A read across two pages.
    let mut two = vec![0u8; 100];
    d.read_phys(5 * 4096 - 50, &mut two).unwrap();
    assert_eq!(&two[..50], &page(4)[4046..]);
    assert_eq!(&two[50..], &page(5)[..50]);
    assert_eq!(d.ranges(), vec![(0, 24 * 4096)]);
}

#[test]
fn kdump_every_compression() {
    for c in [C::Raw, C::Zlib, C::Snappy, C::Zstd] {
        let d = Dump::from_bytes(build_kdump(c)).unwrap();
        assert_eq!(d.format(), Format::Kdump);
        check_kdump(&d);
    }
}

#[test]
fn kdump_truncated_and_corrupt() {
    let full = build_kdump(C::Zlib);
    let mut t = full.clone();
    t.truncate(full.len() - 3 * 4096);
    let d = Dump::from_bytes(t).unwrap();
    let mut b = vec![0u8; 16];
    assert_eq!(d.read_phys(0, &mut b), Ok(()));
    assert_eq!(
        d.read_phys(23 * 4096, &mut b),
        Err(Hole::Truncated(23 * 4096))
    );
    // Flip bytes in every page's data: reads give errors, never panics.
    let mut c = full.clone();
    for i in (6 * 4096..c.len()).step_by(97) {
        c[i] ^= 0x5a;
    }
    let d = Dump::from_bytes(c).unwrap();
    let mut bad = 0;
    for p in 0..24u64 {
        if let Err(Hole::Corrupt { .. }) = d.read_phys(p * 4096, &mut b) {
            bad += 1;
        }
    }
    assert!(bad > 0);
}

/// Flattened: records in shuffled order, split pages, and a header rewritten at the end.
fn flatten(k: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 4096];
    f[..12].copy_from_slice(b"makedumpfile");
    f[16..24].copy_from_slice(&1i64.to_be_bytes());
    f[24..32].copy_from_slice(&1i64.to_be_bytes());
    let rec = |f: &mut Vec<u8>, off: usize, bytes: &[u8]| {
        f.extend_from_slice(&(off as i64).to_be_bytes());
        f.extend_from_slice(&(bytes.len() as i64).to_be_bytes());
        f.extend_from_slice(bytes);
    };
    // A bogus header first, then the real one later (later wins).
    rec(&mut f, 0, &vec![0xee; 4096]);
    let mut off = k.len();
    // Back to front, in 3000-byte records.
    while off > 4096 {
        let s = off.saturating_sub(3000).max(4096);
        rec(&mut f, s, &k[s..off]);
        off = s;
    }
    rec(&mut f, 0, &k[..4096]);
    f.extend_from_slice(&(-1i64).to_be_bytes());
    f.extend_from_slice(&0i64.to_be_bytes());
    f
}

#[test]
fn flattened_matches_kdump() {
    let k = build_kdump(C::Snappy);
    let d = Dump::from_bytes(flatten(&k)).unwrap();
    assert_eq!(d.format(), Format::Flattened);
    check_kdump(&d);
}

#[test]
fn garbage_never_panics() {
    let k = build_kdump(C::Zlib);
    let e = build_elf();
    let fl = flatten(&build_kdump(C::Raw));
    for base in [k, e, fl] {
        for i in 0..400usize {
            let mut m = base.clone();
            let pos = (i * 7919) % m.len().min(20000);
            m[pos] ^= (i as u8).wrapping_mul(37) | 1;
            let cut = m.len() - (i * 131) % m.len();
            m.truncate(cut);
            fuzz_open(&m);
        }
    }
    let n = parse_notes(&[8, 0, 0, 0, 255, 255, 255, 255, 1, 0, 0, 0, b'a']);
    assert!(n.is_empty());
}

/// Crafted headers (issue 25): counts and sizes that claim more than the file holds give a
/// clear error or named damage, never a huge allocation or a panic.
#[test]
fn crafted_counts_are_bounded_by_the_file() {
    // kdump: bitmap_blocks = 2^31 blocks of 1 MiB.
    let mut k = build_kdump(C::Raw);
    k[428..432].copy_from_slice(&(1u32 << 20).to_le_bytes());
    k[436..440].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let e = Dump::from_bytes(k).err().expect("refused");
    assert!(e.to_string().contains("beyond end of file"), "{e}");
    // The same through the flattened format (reads through the record index).
    let mut k = build_kdump(C::Raw);
    k[436..440].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let e = Dump::from_bytes(flatten(&k)).err().expect("refused");
    assert!(e.to_string().contains("beyond end of file"), "{e}");
    // ELF: PN_XNUM with a section header claiming 2^32-1 program headers.
    let mut f = build_elf();
    f[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
    let shoff = f.len() as u64;
    f[40..48].copy_from_slice(&shoff.to_le_bytes());
    f.extend_from_slice(&[0u8; 64]);
    let o = shoff as usize + 44;
    f[o..o + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let d = Dump::from_bytes(f).expect("opens with what it has");
    assert!(
        d.damage()
            .iter()
            .any(|x| x.message.contains("ends inside the program header table")),
        "{:?}",
        d.damage()
    );
    // A note whose descriptor size claims 4 GiB.
    let mut n = note(b"CORE", 1, &prstatus(1));
    n[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    let (notes, stop) = parse_notes_checked(&n);
    assert!(notes.is_empty());
    assert!(stop.is_some_and(|(at, why)| at == 0 && why.contains("runs past")));
}

/// A truncated kdump names the missing pages; a bitmap with extra bits refuses every read
/// instead of returning the next page's bytes.
#[test]
fn kdump_damage_is_named() {
    let k = build_kdump(C::Raw);
    let d = Dump::from_bytes(k[..k.len() - 4096].to_vec()).unwrap();
    let t = d
        .damage()
        .iter()
        .find(|x| x.kind == DamageKind::Truncated)
        .expect("truncation named");
    assert!(
        t.message.contains("dumped pages are missing"),
        "{}",
        t.message
    );
    let mut k = build_kdump(C::Raw);
    // The dump bitmap is the second half of the bitmap blocks: set every bit of it.
    let bs = 4096usize;
    let sub = u32::from_le_bytes(k[432..436].try_into().unwrap()) as usize;
    let blocks = u32::from_le_bytes(k[436..440].try_into().unwrap()) as usize;
    let bm = (1 + sub) * bs;
    let half = blocks * bs / 2;
    k[bm + half..bm + 2 * half].fill(0xff);
    let d = Dump::from_bytes(k).unwrap();
    assert!(d.damage().iter().any(|x| x.kind == DamageKind::Bitmap));
    let mut b = [0u8; 16];
    assert!(matches!(d.read_phys(0, &mut b), Err(Hole::Corrupt { .. })));
}
