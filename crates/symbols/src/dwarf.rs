//! Lazy DWARF lookups: address -> compilation unit through `.debug_aranges`, then only that unit's
//! line program and DIE tree are parsed. Nothing else of the (hundreds of MB of) DWARF is read.
//!
//! The results follow binutils' `addr2line -fi` (the oracle of tests/lab.rs): the innermost
//! frame's location comes from the line table, each outer frame's from the inlined subroutine's
//! `DW_AT_call_file`/`DW_AT_call_line`.

use crate::elf::Binary;
use crate::Error;
use gimli::{AttributeValue, EndianSlice, RunTimeEndian};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub(crate) type R = EndianSlice<'static, RunTimeEndian>;

/// One source-level frame at an address, innermost first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourceFrame {
    /// The function (inlined or not); `None` when DWARF has no subprogram for the address.
    pub function: Option<String>,
    /// Full path as binutils prints it (comp_dir/dir/file).
    pub file: Option<String>,
    /// Path relative to the compilation directory (the kernel tree), for display.
    pub short_file: Option<String>,
    pub line: u32,
    pub column: u32,
    pub discriminator: u32,
}

pub(crate) struct DwarfIndex {
    pub(crate) dwarf: gimli::Dwarf<R>,
    /// (begin, end, unit offset in .debug_info), sorted by begin.
    aranges: Vec<(u64, u64, usize)>,
    units: Mutex<HashMap<usize, Arc<UnitData>>>,
    /// Start offsets of every unit, read once on the first cross-unit reference.
    unit_starts: std::sync::OnceLock<Vec<usize>>,
    /// Fixed-address variables (see `vars.rs`), built on first use.
    pub(crate) statics: std::sync::OnceLock<Vec<(u64, String, Option<u64>)>>,
}

struct Row {
    address: u64,
    file: u64,
    line: u32,
    column: u32,
    discriminator: u32,
}

pub(crate) struct UnitData {
    pub(crate) unit: gimli::Unit<R>,
    comp_dir: Option<String>,
    /// Sequences: (start, end, rows sorted by address).
    sequences: Vec<(u64, u64, Vec<Row>)>,
    /// Resolved file names by file index: (full, relative to comp_dir).
    files: Vec<Option<(String, String)>>,
}

pub(crate) fn gerr(e: gimli::Error) -> Error {
    Error::Dwarf(e.to_string())
}

impl DwarfIndex {
    pub(crate) fn load(bin: &Binary) -> Result<DwarfIndex, Error> {
        let endian = if bin.little_endian {
            RunTimeEndian::Little
        } else {
            RunTimeEndian::Big
        };
        let dwarf = gimli::Dwarf::load(|id| -> Result<R, gimli::Error> {
            Ok(EndianSlice::new(bin.debug_section(id.name()), endian))
        })
        .map_err(gerr)?;
        let mut aranges = Vec::new();
        let mut headers = dwarf.debug_aranges.headers();
        loop {
            let header = match headers.next() {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(e) => return Err(gerr(e)),
            };
            let cu = header.debug_info_offset().0;
            let mut entries = header.entries();
            while let Ok(Some(e)) = entries.next() {
                if e.length() > 0 {
                    let r = e.range();
                    aranges.push((r.begin, r.end, cu));
                }
            }
        }
        // Folklore: without `.debug_aranges` (some toolchains drop it) we fall back to reading the
        // root DIE of every unit, once. The Debian 6.1 vmlinux has aranges for every CU.
        if aranges.is_empty() {
            let mut units = dwarf.units();
            while let Ok(Some(h)) = units.next() {
                let Some(off) = h.offset().as_debug_info_offset() else {
                    continue;
                };
                let Ok(unit) = dwarf.unit(h) else { continue };
                if let Ok(mut ranges) = dwarf.unit_ranges(&unit) {
                    while let Ok(Some(r)) = ranges.next() {
                        if r.end > r.begin {
                            aranges.push((r.begin, r.end, off.0));
                        }
                    }
                }
            }
        }
        aranges.sort_unstable();
        Ok(DwarfIndex {
            dwarf,
            aranges,
            units: Mutex::new(HashMap::new()),
            unit_starts: std::sync::OnceLock::new(),
            statics: std::sync::OnceLock::new(),
        })
    }

    pub(crate) fn units_for(&self, addr: u64) -> Vec<usize> {
        let n = self.aranges.partition_point(|a| a.0 <= addr);
        let mut out: Vec<usize> = self.aranges[..n]
            .iter()
            .rev()
            .take(64)
            .filter(|a| addr < a.1)
            .map(|a| a.2)
            .collect();
        out.dedup();
        out
    }

    pub(crate) fn unit(&self, offset: usize) -> Result<Arc<UnitData>, Error> {
        if let Some(u) = self.units.lock().ok().and_then(|m| m.get(&offset).cloned()) {
            return Ok(u);
        }
        let header = self
            .dwarf
            .debug_info
            .header_from_offset(gimli::DebugInfoOffset(offset))
            .map_err(gerr)?;
        let unit = self.dwarf.unit(header).map_err(gerr)?;
        let comp_dir = unit
            .comp_dir
            .map(|d| String::from_utf8_lossy(d.slice()).into_owned());
        let mut sequences = Vec::new();
        let mut files = Vec::new();
        if let Some(program) = unit.line_program.clone() {
            let header = program.header().clone();
            let mut rows = program.rows();
            let mut cur: Vec<Row> = Vec::new();
            while let Some((_, row)) = rows.next_row().map_err(gerr)? {
                let address = row.address();
                if row.end_sequence() {
                    if let Some(first) = cur.first() {
                        let start = first.address;
                        // Folklore: a sequence starting at 0 in vmlinux belongs to code the linker
                        // discarded (.exit.text, dead functions); it would shadow real code at low
                        // addresses in modules, so drop it.
                        if start != 0 {
                            sequences.push((start, address, std::mem::take(&mut cur)));
                        }
                    }
                    cur.clear();
                    continue;
                }
                let r = Row {
                    address,
                    file: row.file_index(),
                    line: row.line().map(|l| l.get() as u32).unwrap_or(0),
                    column: match row.column() {
                        gimli::ColumnType::LeftEdge => 0,
                        gimli::ColumnType::Column(c) => c.get() as u32,
                    },
                    discriminator: row.discriminator() as u32,
                };
                // Like binutils (PR ld/4986): of several rows at one address keep the last.
                if let Some(last) = cur.last_mut() {
                    if last.address == address {
                        *last = r;
                        continue;
                    }
                }
                cur.push(r);
            }
            sequences.sort_by_key(|s| s.0);
            // File names.
            let ver5 = header.version() >= 5;
            let n = header.file_names().len();
            files = vec![None; n + 1];
            for i in 0..=n as u64 {
                let Some(f) = header.file(i) else { continue };
                if !ver5 && i == 0 {
                    continue;
                }
                let name = match self.dwarf.attr_string(&unit, f.path_name()) {
                    Ok(s) => String::from_utf8_lossy(s.slice()).into_owned(),
                    Err(_) => continue,
                };
                let dir = f.directory(&header).and_then(|d| {
                    self.dwarf
                        .attr_string(&unit, d)
                        .ok()
                        .map(|s| String::from_utf8_lossy(s.slice()).into_owned())
                });
                files[i as usize] = Some(join_path(comp_dir.as_deref(), dir.as_deref(), &name));
            }
        }
        let data = Arc::new(UnitData {
            unit,
            comp_dir,
            sequences,
            files,
        });
        if let Ok(mut m) = self.units.lock() {
            m.insert(offset, data.clone());
        }
        Ok(data)
    }

    /// Source frames for `addr`, innermost first. Empty when no unit covers the address.
    pub(crate) fn frames(&self, addr: u64) -> Result<Vec<SourceFrame>, Error> {
        for cu in self.units_for(addr) {
            let u = self.unit(cu)?;
            let loc = u.location(addr);
            let chain = self.function_chain(&u, addr)?;
            if loc.is_none() && chain.is_empty() {
                continue;
            }
            let (file, line, column, disc) = loc.unwrap_or((None, 0, 0, 0));
            let mut frames = Vec::new();
            // chain: outermost (subprogram) first; each entry: (name, call_file, call_line, call_column)
            let mut location = (file, line, column, disc);
            for (i, entry) in chain.iter().enumerate().rev() {
                frames.push(SourceFrame {
                    function: entry.name.clone(),
                    file: location.0.as_ref().map(|f| f.0.clone()),
                    short_file: location.0.as_ref().map(|f| f.1.clone()),
                    line: location.1,
                    column: location.2,
                    discriminator: location.3,
                });
                if i > 0 {
                    let f = u.file(entry.call_file);
                    location = (f, entry.call_line, entry.call_column, 0);
                }
            }
            if frames.is_empty() {
                frames.push(SourceFrame {
                    function: None,
                    file: location.0.as_ref().map(|f| f.0.clone()),
                    short_file: location.0.as_ref().map(|f| f.1.clone()),
                    line: location.1,
                    column: location.2,
                    discriminator: location.3,
                });
            }
            return Ok(frames);
        }
        Ok(Vec::new())
    }

    fn function_chain(&self, u: &UnitData, addr: u64) -> Result<Vec<ChainEntry>, Error> {
        let unit = &u.unit;
        let mut tree = unit.entries_tree(None).map_err(gerr)?;
        let root = tree.root().map_err(gerr)?;
        let mut chain = Vec::new();
        self.walk(u, root, addr, &mut chain, 0)?;
        Ok(chain)
    }

    fn walk(
        &self,
        u: &UnitData,
        node: gimli::EntriesTreeNode<'_, '_, '_, R>,
        addr: u64,
        chain: &mut Vec<ChainEntry>,
        depth: usize,
    ) -> Result<bool, Error> {
        if depth > 64 {
            return Ok(false);
        }
        let mut children = node.children();
        while let Some(child) = children.next().map_err(gerr)? {
            let entry = child.entry();
            let tag = entry.tag();
            match tag {
                gimli::DW_TAG_subprogram | gimli::DW_TAG_inlined_subroutine => {
                    if !self.contains(u, entry, addr)? {
                        continue;
                    }
                    let name = self.name_of(u, entry, 0);
                    let call_file = match entry.attr_value(gimli::DW_AT_call_file).map_err(gerr)? {
                        Some(AttributeValue::FileIndex(f)) => f,
                        Some(v) => v.udata_value().unwrap_or(0),
                        None => 0,
                    };
                    let call_line = entry
                        .attr_value(gimli::DW_AT_call_line)
                        .map_err(gerr)?
                        .and_then(|v| v.udata_value())
                        .unwrap_or(0) as u32;
                    let call_column = entry
                        .attr_value(gimli::DW_AT_call_column)
                        .map_err(gerr)?
                        .and_then(|v| v.udata_value())
                        .unwrap_or(0) as u32;
                    chain.push(ChainEntry {
                        name,
                        call_file,
                        call_line,
                        call_column,
                    });
                    self.walk(u, child, addr, chain, depth + 1)?;
                    return Ok(true);
                }
                gimli::DW_TAG_lexical_block | gimli::DW_TAG_namespace | gimli::DW_TAG_module => {
                    let has_pc = entry
                        .attr_value(gimli::DW_AT_low_pc)
                        .map_err(gerr)?
                        .is_some()
                        || entry
                            .attr_value(gimli::DW_AT_ranges)
                            .map_err(gerr)?
                            .is_some();
                    if has_pc && !self.contains(u, entry, addr)? {
                        continue;
                    }
                    if self.walk(u, child, addr, chain, depth + 1)? {
                        return Ok(true);
                    }
                }
                _ => {}
            }
        }
        Ok(false)
    }

    pub(crate) fn contains(
        &self,
        u: &UnitData,
        entry: &gimli::DebuggingInformationEntry<'_, '_, R>,
        addr: u64,
    ) -> Result<bool, Error> {
        let mut ranges = match self.dwarf.die_ranges(&u.unit, entry) {
            Ok(r) => r,
            Err(_) => return Ok(false),
        };
        while let Some(r) = ranges.next().map_err(gerr)? {
            if r.begin != 0 && addr >= r.begin && addr < r.end {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub(crate) fn name_of(
        &self,
        u: &UnitData,
        entry: &gimli::DebuggingInformationEntry<'_, '_, R>,
        depth: usize,
    ) -> Option<String> {
        if depth > 8 {
            return None;
        }
        for at in [gimli::DW_AT_name, gimli::DW_AT_linkage_name] {
            if let Ok(Some(v)) = entry.attr_value(at) {
                if let Ok(s) = self.dwarf.attr_string(&u.unit, v) {
                    return Some(String::from_utf8_lossy(s.slice()).into_owned());
                }
            }
        }
        for at in [gimli::DW_AT_abstract_origin, gimli::DW_AT_specification] {
            match entry.attr_value(at) {
                Ok(Some(AttributeValue::UnitRef(off))) => {
                    if let Ok(e) = u.unit.entry(off) {
                        return self.name_of(u, &e, depth + 1);
                    }
                }
                Ok(Some(AttributeValue::DebugInfoRef(off))) => {
                    // A reference into another unit (LTO): find and parse that unit.
                    let target = self.unit_containing(off.0)?;
                    let tu = self.unit(target).ok()?;
                    let uoff = off.to_unit_offset(&tu.unit.header)?;
                    let e = tu.unit.entry(uoff).ok()?;
                    return self.name_of(&tu, &e, depth + 1);
                }
                _ => {}
            }
        }
        None
    }

    /// A unit already parsed that contains `off`.
    pub(crate) fn parsed_unit_containing(&self, off: usize) -> Option<Arc<UnitData>> {
        let m = self.units.lock().ok()?;
        m.iter()
            .find(|(start, u)| {
                off >= **start && off < **start + u.unit.header.length_including_self()
            })
            .map(|(_, u)| u.clone())
    }

    pub(crate) fn unit_containing(&self, off: usize) -> Option<usize> {
        let starts = self.unit_starts.get_or_init(|| {
            let mut v = Vec::new();
            let mut units = self.dwarf.units();
            while let Ok(Some(h)) = units.next() {
                if let Some(o) = h.offset().as_debug_info_offset() {
                    v.push(o.0);
                }
            }
            v
        });
        let i = starts.partition_point(|&s| s <= off);
        starts.get(i.checked_sub(1)?).copied()
    }
}

struct ChainEntry {
    name: Option<String>,
    call_file: u64,
    call_line: u32,
    call_column: u32,
}

type FileName = (String, String);

impl UnitData {
    fn file(&self, index: u64) -> Option<FileName> {
        self.files.get(index as usize).cloned().flatten()
    }

    fn location(&self, addr: u64) -> Option<(Option<FileName>, u32, u32, u32)> {
        let n = self.sequences.partition_point(|s| s.0 <= addr);
        for seq in self.sequences[..n].iter().rev() {
            if addr >= seq.1 {
                continue;
            }
            let rows = &seq.2;
            let i = rows.partition_point(|r| r.address <= addr);
            if i == 0 {
                continue;
            }
            let r = &rows[i - 1];
            return Some((self.file(r.file), r.line, r.column, r.discriminator));
        }
        None
    }
}

/// binutils' `concat_filename`: an absolute file stays; else dir/file, and a relative dir is
/// under the compilation directory. Returns (full, relative-to-comp_dir).
fn join_path(comp_dir: Option<&str>, dir: Option<&str>, file: &str) -> (String, String) {
    if file.starts_with('/') {
        let short = comp_dir
            .and_then(|c| file.strip_prefix(c))
            .map(|s| s.trim_start_matches('/').to_string())
            .unwrap_or_else(|| file.to_string());
        return (file.to_string(), short);
    }
    let rel_dir = match dir {
        Some(d) if !d.is_empty() => {
            if d.starts_with('/') {
                let full = format!("{d}/{file}");
                let short = comp_dir
                    .and_then(|c| full.strip_prefix(c))
                    .map(|s| s.trim_start_matches('/').to_string())
                    .unwrap_or_else(|| full.clone());
                return (full, short);
            }
            Some(d)
        }
        _ => None,
    };
    let short = match rel_dir {
        Some(d) => format!("{d}/{file}"),
        None => file.to_string(),
    };
    let full = match comp_dir {
        Some(c) if !c.is_empty() => format!("{c}/{short}"),
        _ => short.clone(),
    };
    let short = short.strip_prefix("./").unwrap_or(&short).to_string();
    (full, short)
}

impl Binary {
    pub(crate) fn dwarf_index(&self) -> Result<&DwarfIndex, Error> {
        match self.dwarf.get_or_init(|| DwarfIndex::load(self)) {
            Ok(d) => Ok(d),
            Err(e) => Err(e.clone()),
        }
    }

    /// Source frames (inlined chain, innermost first) for a link-time address.
    pub fn source_frames(&self, addr: u64) -> Result<Vec<SourceFrame>, Error> {
        if !self.has_dwarf() {
            return Ok(Vec::new());
        }
        let mut frames = self.dwarf_index()?.frames(addr)?;
        // binutils names code without a DW_TAG_subprogram (assembly) from the symbol table.
        if let Some(last) = frames.last_mut() {
            if last.function.is_none() {
                last.function = self.symtab_function(addr).map(str::to_string);
            }
        }
        Ok(frames)
    }

    /// The compilation directory of the unit covering `addr` (the kernel build tree).
    pub fn comp_dir(&self, addr: u64) -> Option<String> {
        let d = self.dwarf_index().ok()?;
        let cu = *d.units_for(addr).first()?;
        d.unit(cu).ok()?.comp_dir.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::join_path;
    #[test]
    fn paths_like_binutils() {
        assert_eq!(
            join_path(Some("/build/linux"), Some("./include/linux"), "list.h"),
            (
                "/build/linux/./include/linux/list.h".into(),
                "include/linux/list.h".into()
            )
        );
        assert_eq!(
            join_path(Some("/b"), None, "kernel/fork.c"),
            ("/b/kernel/fork.c".into(), "kernel/fork.c".into())
        );
        assert_eq!(
            join_path(Some("/b"), Some("/usr/include"), "x.h").0,
            "/usr/include/x.h"
        );
    }
}
