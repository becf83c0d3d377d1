//! Text symbol lists: `System.map` (`ffffffff81000000 T _text`) and `/proc/kallsyms`
//! (`ffffffffc0a01000 t kmlab_init\t[kmlab]`). Used when there is no DWARF (or no ELF at all).

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MapSymbol {
    pub address: u64,
    /// `nm` type letter (`T`, `t`, `W`, `D`, ...).
    pub kind: char,
    pub name: String,
    /// `[module]` from kallsyms, `None` for vmlinux.
    pub module: Option<String>,
}

/// Which text format a symbol list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MapFormat {
    SystemMap,
    Kallsyms,
}

#[derive(Debug, Clone)]
pub struct SymbolMap {
    pub format: MapFormat,
    /// Sorted by (module, address).
    pub symbols: Vec<MapSymbol>,
    /// `true` when every address is zero (kallsyms read without privileges: `kptr_restrict`).
    pub addresses_hidden: bool,
}

/// Parses one line. Returns `None` for lines that are not symbols (blank, garbage).
pub fn parse_line(line: &str) -> Option<MapSymbol> {
    let line = line.trim_end_matches(['\r', '\n']);
    let mut it = line.split_ascii_whitespace();
    let addr = it.next()?;
    if addr.is_empty() || addr.len() > 16 {
        return None;
    }
    let address = u64::from_str_radix(addr, 16).ok()?;
    let kind_s = it.next()?;
    let mut kc = kind_s.chars();
    let kind = kc.next()?;
    if kc.next().is_some() || !kind.is_ascii_alphabetic() && kind != '?' {
        return None;
    }
    let name = it.next()?;
    let module = match it.next() {
        Some(m) => {
            let m = m.strip_prefix('[')?.strip_suffix(']')?;
            if m.is_empty() {
                return None;
            }
            Some(m.to_string())
        }
        None => None,
    };
    Some(MapSymbol {
        address,
        kind,
        name: name.to_string(),
        module,
    })
}

impl SymbolMap {
    /// Parses a System.map or a kallsyms dump. Lines that do not parse are skipped; an input
    /// without a single symbol is an error.
    pub fn parse(text: &str) -> Result<SymbolMap, crate::Error> {
        let mut symbols: Vec<MapSymbol> = text.lines().filter_map(parse_line).collect();
        // Folklore: Debian's linux-image package ships /boot/System.map-REL as an 83-byte stub,
        // `ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package`.
        // A map without a single text symbol is unusable; say why. Pinned by
        // tests::debian_stub_is_rejected.
        if !symbols.iter().any(Self::is_text) {
            let hint = match text.find("The real System.map") {
                Some(i) => format!(": {}", text[i..].lines().next().unwrap_or("").trim()),
                None => String::new(),
            };
            return Err(crate::Error::BadMap(format!("no text symbol lines{hint}")));
        }
        let format = if symbols.iter().any(|s| s.module.is_some()) {
            MapFormat::Kallsyms
        } else {
            MapFormat::SystemMap
        };
        let addresses_hidden = symbols.iter().all(|s| s.address == 0);
        symbols.sort_by(|a, b| a.module.cmp(&b.module).then(a.address.cmp(&b.address)));
        Ok(SymbolMap {
            format,
            symbols,
            addresses_hidden,
        })
    }

    fn is_text(s: &MapSymbol) -> bool {
        matches!(s.kind, 'T' | 't' | 'W' | 'w')
    }

    /// Size as kallsyms computes it: the distance to the next symbol (of the same module).
    pub fn size_of(&self, index: usize) -> Option<u64> {
        let s = self.symbols.get(index)?;
        self.symbols[index + 1..]
            .iter()
            .take_while(|n| n.module == s.module)
            .find(|n| n.address > s.address)
            .map(|n| n.address - s.address)
    }

    /// Candidates named `name` in `module` (text symbols first).
    pub fn find(&self, name: &str, module: Option<&str>) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .symbols
            .iter()
            .enumerate()
            .filter(|(_, s)| s.name == name && s.module.as_deref() == module)
            .map(|(i, _)| i)
            .collect();
        v.sort_by_key(|&i| !Self::is_text(&self.symbols[i]));
        v
    }

    /// The symbol at or below `addr` (any module), with the offset into it.
    pub fn lookup(&self, addr: u64) -> Option<(usize, u64)> {
        if self.addresses_hidden {
            return None;
        }
        let mut best: Option<usize> = None;
        for (i, s) in self.symbols.iter().enumerate() {
            if s.address <= addr && Self::is_text(s) {
                match best {
                    Some(b) if self.symbols[b].address >= s.address => {}
                    _ => best = Some(i),
                }
            }
        }
        let b = best?;
        let off = addr - self.symbols[b].address;
        if let Some(size) = self.size_of(b) {
            if off >= size {
                return None;
            }
        }
        Some((b, off))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn system_map_and_kallsyms_lines() {
        assert_eq!(
            parse_line("ffffffff81000000 T _text"),
            Some(MapSymbol {
                address: 0xffffffff81000000,
                kind: 'T',
                name: "_text".into(),
                module: None
            })
        );
        let k = parse_line("ffffffffc0a01000 t kmlab_init\t[kmlab]").unwrap();
        assert_eq!(k.module.as_deref(), Some("kmlab"));
        assert_eq!(parse_line("zzzz T x"), None);
        assert_eq!(parse_line("ffffffff81000000 TT x"), None);
        assert_eq!(parse_line("ffffffff81000000 T x [mod"), None);
        assert_eq!(parse_line("11112222333344445 T x"), None);
        assert_eq!(parse_line(""), None);
    }
    #[test]
    fn size_runs_to_next_symbol() {
        let m = SymbolMap::parse(
            "ffffffff81000010 T b\nffffffff81000000 T a\nffffffff81000040 t c\nffffffffc0000000 t m1\t[mod]\nffffffffc0000030 t m2\t[mod]\n",
        )
        .unwrap();
        assert_eq!(m.format, MapFormat::Kallsyms);
        let a = m.find("a", None)[0];
        assert_eq!(m.size_of(a), Some(0x10));
        let m1 = m.find("m1", Some("mod"))[0];
        assert_eq!(m.size_of(m1), Some(0x30));
        assert_eq!(
            m.lookup(0xffffffff81000015)
                .map(|(i, o)| (m.symbols[i].name.as_str(), o)),
            Some(("b", 5))
        );
        assert!(SymbolMap::parse("garbage\n").is_err());
    }
    #[test]
    fn debian_stub_is_rejected() {
        let e = SymbolMap::parse(
            "ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("linux-image-<version>-dbg"), "{e}");
    }
}
