//! Virtual memory: x86_64 4- and 5-level page tables, huge pages, the kernel image mapping.

use kmortem_dump::Hole;
use std::collections::HashMap;
use std::sync::Mutex;

/// Why a virtual read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Hole(#[from] Hole),
    #[error(
        "virtual address {vaddr:#x} is not mapped (no present entry at page-table level {level})"
    )]
    NotMapped { vaddr: u64, level: u8 },
    #[error("virtual address {0:#x} is not canonical")]
    NonCanonical(u64),
}

/// Something that holds physical memory (a dump; a synthetic buffer in tests).
pub trait PhysMem {
    fn read_phys(&self, paddr: u64, buf: &mut [u8]) -> Result<(), Hole>;
}

impl PhysMem for kmortem_dump::Dump {
    fn read_phys(&self, paddr: u64, buf: &mut [u8]) -> Result<(), Hole> {
        kmortem_dump::Dump::read_phys(self, paddr, buf)
    }
}

/// Anything that reads kernel virtual memory.
pub trait Memory {
    fn read(&self, vaddr: u64, buf: &mut [u8]) -> Result<(), ReadError>;

    /// `sym` or `sym+off` for an address inside a kernel or module symbol (gdb's `<...>`
    /// annotation of pointer values); None when the memory has no symbols.
    fn symbolize(&self, _addr: u64) -> Option<String> {
        None
    }

    fn read_u64(&self, a: u64) -> Result<u64, ReadError> {
        let mut b = [0u8; 8];
        self.read(a, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn read_u32(&self, a: u64) -> Result<u32, ReadError> {
        let mut b = [0u8; 4];
        self.read(a, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn read_u16(&self, a: u64) -> Result<u16, ReadError> {
        let mut b = [0u8; 2];
        self.read(a, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }
    fn read_u8(&self, a: u64) -> Result<u8, ReadError> {
        let mut b = [0u8; 1];
        self.read(a, &mut b)?;
        Ok(b[0])
    }
    fn read_vec(&self, a: u64, n: usize) -> Result<Vec<u8>, ReadError> {
        let mut v = vec![0u8; n];
        self.read(a, &mut v)?;
        Ok(v)
    }
    /// A NUL-terminated string of at most `max` bytes.
    fn read_cstr(&self, a: u64, max: usize) -> Result<Vec<u8>, ReadError> {
        let mut out = Vec::new();
        let mut a = a;
        while out.len() < max {
            let n = (4096 - (a % 4096) as usize).min(max - out.len()).min(256);
            let chunk = self.read_vec(a, n)?;
            if let Some(z) = chunk.iter().position(|&c| c == 0) {
                out.extend_from_slice(&chunk[..z]);
                return Ok(out);
            }
            out.extend_from_slice(&chunk);
            a += n as u64;
        }
        Ok(out)
    }
}

/// `__START_KERNEL_map`: where x86_64 maps the kernel image (before KASLR).
pub const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// The image mapping spans KERNEL_IMAGE_SIZE (1 GiB with KASLR); modules follow it.
pub const KERNEL_IMAGE_END: u64 = 0xffff_ffff_c000_0000;
const PFN_MASK: u64 = 0x000f_ffff_ffff_f000;

/// x86_64 address translation for one address space.
pub struct X86_64 {
    /// Physical address of the top-level page table (PGD, or P4D-level PML5 with la57).
    pub pgd: u64,
    pub la57: bool,
    pub phys_base: u64,
    /// AMD SME's encryption bit, to strip from table entries.
    pub sme_mask: u64,
    tlb: Mutex<HashMap<u64, u64>>,
}

impl X86_64 {
    pub fn new(pgd: u64, la57: bool, phys_base: u64, sme_mask: u64) -> X86_64 {
        X86_64 {
            pgd,
            la57,
            phys_base,
            sme_mask,
            tlb: Mutex::new(HashMap::new()),
        }
    }

    /// Translate through the page tables (no shortcuts). Returns the physical address.
    pub fn walk(&self, mem: &dyn PhysMem, vaddr: u64) -> Result<u64, ReadError> {
        let bits = if self.la57 { 57 } else { 48 };
        let top = (vaddr as i64) >> (bits - 1);
        if top != 0 && top != -1 {
            return Err(ReadError::NonCanonical(vaddr));
        }
        let mask = PFN_MASK & !self.sme_mask;
        let shifts: &[u32] = if self.la57 {
            &[48, 39, 30, 21, 12]
        } else {
            &[39, 30, 21, 12]
        };
        let mut table = self.pgd & mask;
        for (i, &shift) in shifts.iter().enumerate() {
            let idx = (vaddr >> shift) & 511;
            let mut e = [0u8; 8];
            mem.read_phys(table + idx * 8, &mut e)?;
            let e = u64::from_le_bytes(e);
            let level = (shifts.len() - i) as u8;
            if e & 1 == 0 {
                return Err(ReadError::NotMapped { vaddr, level });
            }
            // PS bit: a 1 GiB page at the PUD level, 2 MiB at the PMD level.
            if (shift == 30 || shift == 21) && e & 0x80 != 0 {
                let span = 1u64 << shift;
                return Ok((e & mask & !(span - 1)) | (vaddr & (span - 1)));
            }
            table = e & mask;
        }
        Ok(table | (vaddr & 0xfff))
    }

    /// Translate, using the kernel image mapping directly and a small TLB.
    pub fn translate(&self, mem: &dyn PhysMem, vaddr: u64) -> Result<u64, ReadError> {
        if (START_KERNEL_MAP..KERNEL_IMAGE_END).contains(&vaddr) {
            // __pa_symbol(): the image is mapped linearly at phys_base.
            return Ok((vaddr - START_KERNEL_MAP).wrapping_add(self.phys_base));
        }
        let page = vaddr >> 12;
        if let Ok(t) = self.tlb.lock() {
            if let Some(p) = t.get(&page) {
                return Ok(p | (vaddr & 0xfff));
            }
        }
        let p = self.walk(mem, vaddr)?;
        if let Ok(mut t) = self.tlb.lock() {
            if t.len() > 1 << 16 {
                t.clear();
            }
            t.insert(page, p & !0xfff);
        }
        Ok(p)
    }

    pub fn read(&self, mem: &dyn PhysMem, vaddr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = vaddr.wrapping_add(done as u64);
            let n = ((4096 - (a & 0xfff)) as usize).min(buf.len() - done);
            let p = self.translate(mem, a)?;
            mem.read_phys(p, &mut buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sparse physical memory built in code.
    #[derive(Default)]
    pub(crate) struct Phys(pub HashMap<u64, Vec<u8>>);
    impl Phys {
        pub fn set_u64(&mut self, pa: u64, v: u64) {
            let page = self.0.entry(pa & !0xfff).or_insert_with(|| vec![0; 4096]);
            let o = (pa & 0xfff) as usize;
            page[o..o + 8].copy_from_slice(&v.to_le_bytes());
        }
    }
    impl PhysMem for Phys {
        fn read_phys(&self, pa: u64, buf: &mut [u8]) -> Result<(), Hole> {
            let page = self.0.get(&(pa & !0xfff)).ok_or(Hole::NotInDump(pa))?;
            let o = (pa & 0xfff) as usize;
            buf.copy_from_slice(page.get(o..o + buf.len()).ok_or(Hole::NotInDump(pa))?);
            Ok(())
        }
    }

    fn idx(v: u64, s: u32) -> u64 {
        ((v >> s) & 511) * 8
    }

    #[test]
    fn four_level_with_huge_pages() {
        let mut m = Phys::default();
        let pgd = 0x1000;
        // Direct map 1 GiB page at 0xffff888000000000 -> 0.
        let dm = 0xffff_8880_0000_0000u64;
        m.set_u64(pgd + idx(dm, 39), 0x2000 | 0x63);
        m.set_u64(0x2000 + idx(dm, 30), 0x80 | 0x63); // PS, phys 0
                                                      // vmalloc 4 KiB page at 0xffffc90000005000 -> 0x7654000.
        let vm = 0xffff_c900_0000_5000u64;
        m.set_u64(pgd + idx(vm, 39), 0x3000 | 0x63);
        m.set_u64(0x3000 + idx(vm, 30), 0x4000 | 0x63);
        m.set_u64(0x4000 + idx(vm, 21), 0x5000 | 0x63);
        m.set_u64(0x5000 + idx(vm, 12), 0x7654000 | 0x8000_0000_0000_0063);
        // vmemmap 2 MiB page at 0xffffea0000200000 -> 0x40000000.
        let vmm = 0xffff_ea00_0020_0000u64;
        m.set_u64(pgd + idx(vmm, 39), 0x6000 | 0x63);
        m.set_u64(0x6000 + idx(vmm, 30), 0x7000 | 0x63);
        m.set_u64(0x7000 + idx(vmm, 21), 0x4000_0000 | 0xe3);
        let x = X86_64::new(pgd, false, 0x1_0000_0000, 0);
        assert_eq!(x.walk(&m, dm + 0x1234_5678).unwrap(), 0x1234_5678);
        assert_eq!(x.walk(&m, vm + 0x10).unwrap(), 0x7654010);
        assert_eq!(x.walk(&m, vmm + 0x1_2345).unwrap(), 0x4001_2345);
        assert_eq!(
            x.walk(&m, 0xffff_c900_0000_6000),
            Err(ReadError::NotMapped {
                vaddr: 0xffff_c900_0000_6000,
                level: 1
            })
        );
        assert!(matches!(
            x.walk(&m, 0x0000_7000_0000_0000),
            Err(ReadError::NotMapped { level: 4, .. })
        ));
        assert_eq!(
            x.walk(&m, 0x8000_0000_0000_0000),
            Err(ReadError::NonCanonical(0x8000_0000_0000_0000))
        );
        // The image mapping uses phys_base without a walk.
        assert_eq!(
            x.translate(&m, 0xffff_ffff_8100_0000).unwrap(),
            0x1_0100_0000
        );
    }

    #[test]
    fn five_level() {
        let mut m = Phys::default();
        let pml5 = 0x1000;
        let dm = 0xff11_0000_0000_0000u64; // la57 direct map base
        m.set_u64(pml5 + idx(dm, 48), 0x2000 | 0x63);
        m.set_u64(0x2000 + idx(dm, 39), 0x3000 | 0x63);
        m.set_u64(0x3000 + idx(dm, 30), 0x4000 | 0x63);
        m.set_u64(0x4000 + idx(dm, 21), 0x20_0000 | 0xe3);
        let x = X86_64::new(pml5, true, 0, 0);
        assert_eq!(x.walk(&m, dm + 0x1_0005).unwrap(), 0x21_0005);
        // Canonical for 57 bits but not for 48: only valid with la57.
        let x4 = X86_64::new(pml5, false, 0, 0);
        assert!(matches!(x4.walk(&m, dm), Err(ReadError::NonCanonical(_))));
    }
}
