//! VMCOREINFO: the `KEY=VALUE` note the kernel writes for dump tools
//! (`crash_save_vmcoreinfo_init()` in kernel/crash_core.c, kernel/vmcore_info.c since 6.9).

use std::collections::HashMap;

/// Parsed VMCOREINFO.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmcoreInfo {
    pub osrelease: Option<String>,
    pub build_id: Option<String>,
    pub page_size: Option<u64>,
    /// `KERNELOFFSET=` (hex): the KASLR offset of the kernel image.
    pub kernel_offset: Option<u64>,
    /// `CRASHTIME=` (seconds since the epoch), added at panic.
    pub crash_time: Option<i64>,
    pub symbols: HashMap<String, u64>,
    pub sizes: HashMap<String, u64>,
    pub offsets: HashMap<String, u64>,
    pub lengths: HashMap<String, u64>,
    pub numbers: HashMap<String, i64>,
    pub configs: HashMap<String, String>,
    /// Every key in order, for keys not modelled above.
    pub raw: Vec<(String, String)>,
}

fn hex(v: &str) -> Option<u64> {
    let v = v.trim();
    let v = v
        .strip_prefix("0x")
        .or_else(|| v.strip_prefix("0X"))
        .unwrap_or(v);
    u64::from_str_radix(v, 16).ok()
}

/// A `NUMBER()` value. Folklore: NUMBER is printed with "%ld" (decimal, maybe negative), except
/// arm64's `NUMBER(kimage_voffset)` and `NUMBER(PHYS_OFFSET)` ("0x%llx", since 4.13, commit
/// 1f85b97a2c) and x86's `NUMBER(sme_mask)`; a `0x` prefix therefore means hex. Pinned by
/// `tests::arm64_hex_numbers`.
fn number(v: &str) -> Option<i64> {
    let v = v.trim();
    if v.starts_with("0x") || v.starts_with("0X") {
        hex(v).map(|u| u as i64)
    } else {
        v.parse::<i64>()
            .ok()
            .or_else(|| v.parse::<u64>().ok().map(|u| u as i64))
    }
}

impl VmcoreInfo {
    /// Parse the note text. Unknown and malformed lines are kept in `raw` and otherwise
    /// ignored; this never fails.
    pub fn parse(text: &[u8]) -> VmcoreInfo {
        let mut vi = VmcoreInfo::default();
        let text = String::from_utf8_lossy(text);
        for line in text.split('\n') {
            let line = line.trim_end_matches(['\r', '\0']);
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            vi.raw.push((k.to_string(), v.to_string()));
            let paren = |p: &str| {
                k.strip_prefix(p)
                    .and_then(|r| r.strip_prefix('('))
                    .and_then(|r| r.strip_suffix(')'))
                    .map(str::to_string)
            };
            if let Some(n) = paren("SYMBOL") {
                if let Some(a) = hex(v) {
                    vi.symbols.insert(n, a);
                }
            } else if let Some(n) = paren("SIZE") {
                if let Ok(a) = v.trim().parse() {
                    vi.sizes.insert(n, a);
                }
            } else if let Some(n) = paren("OFFSET") {
                if let Ok(a) = v.trim().parse() {
                    vi.offsets.insert(n, a);
                }
            } else if let Some(n) = paren("LENGTH") {
                if let Ok(a) = v.trim().parse() {
                    vi.lengths.insert(n, a);
                }
            } else if let Some(n) = paren("NUMBER") {
                if let Some(a) = number(v) {
                    vi.numbers.insert(n, a);
                }
            } else if let Some(n) = k.strip_prefix("CONFIG_") {
                vi.configs.insert(n.to_string(), v.to_string());
            } else {
                match k {
                    "OSRELEASE" => vi.osrelease = Some(v.to_string()),
                    "BUILD-ID" => vi.build_id = Some(v.to_string()),
                    "PAGESIZE" => vi.page_size = v.trim().parse().ok(),
                    "KERNELOFFSET" => vi.kernel_offset = hex(v),
                    "CRASHTIME" => vi.crash_time = v.trim().parse().ok(),
                    _ => {}
                }
            }
        }
        vi
    }

    pub fn symbol(&self, name: &str) -> Option<u64> {
        self.symbols.get(name).copied()
    }
    pub fn size(&self, name: &str) -> Option<u64> {
        self.sizes.get(name).copied()
    }
    pub fn offset(&self, name: &str) -> Option<u64> {
        self.offsets.get(name).copied()
    }
    pub fn number(&self, name: &str) -> Option<i64> {
        self.numbers.get(name).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_keys() {
        let t = b"OSRELEASE=6.1.0-0-test-amd64\nBUILD-ID=abcd\nPAGESIZE=4096\n\
SYMBOL(init_uts_ns)=ffffffff83212340\nSYMBOL(prb)=ffffffff82e9f1a8\nSIZE(printk_info)=88\n\
OFFSET(printk_info.seq)=0\nLENGTH(mem_section)=2048\nNUMBER(phys_base)=-1090519040\n\
NUMBER(pgtable_l5_enabled)=0\nKERNELOFFSET=1000000\nCRASHTIME=1763750000\nCONFIG_KALLSYMS=y\n\
garbage line\nSYMBOL(bad)=zz\n";
        let v = VmcoreInfo::parse(t);
        assert_eq!(v.osrelease.as_deref(), Some("6.1.0-0-test-amd64"));
        assert_eq!(v.page_size, Some(4096));
        assert_eq!(v.symbol("init_uts_ns"), Some(0xffffffff83212340));
        assert_eq!(v.symbol("bad"), None);
        assert_eq!(v.size("printk_info"), Some(88));
        assert_eq!(v.offset("printk_info.seq"), Some(0));
        assert_eq!(v.lengths.get("mem_section"), Some(&2048));
        assert_eq!(v.number("phys_base"), Some(-1090519040));
        assert_eq!(v.kernel_offset, Some(0x1000000));
        assert_eq!(v.crash_time, Some(1763750000));
        assert_eq!(v.configs.get("KALLSYMS").map(String::as_str), Some("y"));
    }

    #[test]
    fn arm64_hex_numbers() {
        let v = VmcoreInfo::parse(
            b"NUMBER(VA_BITS)=48\nNUMBER(kimage_voffset)=0xffff800008000000\nNUMBER(PHYS_OFFSET)=0x40000000\nNUMBER(sme_mask)=0x0\n",
        );
        assert_eq!(v.number("VA_BITS"), Some(48));
        assert_eq!(
            v.number("kimage_voffset"),
            Some(0xffff800008000000u64 as i64)
        );
        assert_eq!(v.number("PHYS_OFFSET"), Some(0x40000000));
        assert_eq!(v.number("sme_mask"), Some(0));
    }
}
