//! Types from DWARF, indexed lazily.
//!
//! vmlinux's `.debug_info` is about 160 MB. We never parse all of it: the unit headers are
//! enumerated at open (a skip from header to header), and a name lookup scans only the
//! top-level entries of one compilation unit after another until it finds a complete
//! definition; every named type met on the way is remembered. `task_struct` is defined in the
//! first unit that includes <linux/sched.h>, so finding it parses a handful of units, not
//! thousands (pinned by the `dwarf_lookup_is_lazy` lab test).

use crate::types::{Kind, Member, Type, TypeId, TypeSource, VOID};
use gimli::{AttributeValue, EndianSlice, LittleEndian};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

type R = EndianSlice<'static, LittleEndian>;

#[derive(Debug, thiserror::Error)]
pub enum DwarfError {
    #[error("DWARF: {0}")]
    Gimli(#[from] gimli::Error),
    #[error("no .debug_info section")]
    Missing,
}

pub struct Dwarf {
    _owner: Arc<memmap2::Mmap>,
    dwarf: gimli::Dwarf<R>,
    /// (debug_info offset of the unit, header)
    headers: Vec<(u64, gimli::UnitHeader<R>)>,
    units: Mutex<HashMap<u64, Arc<gimli::Unit<R>>>>,
    index: Mutex<LazyIndex>,
    /// How many units the name index has scanned (for the laziness test).
    pub units_scanned: AtomicUsize,
}

#[derive(Default)]
struct LazyIndex {
    next_unit: usize,
    names: HashMap<(Kind, String), TypeId>,
}

const DIM_SHIFT: u32 = 48;

impl Dwarf {
    /// Load from an ELF file already mapped. Only the section table is read here.
    pub fn load(map: Arc<memmap2::Mmap>) -> Result<Dwarf, DwarfError> {
        use object::{Object, ObjectSection};
        // SAFETY: the slices point into `map`, which this struct keeps alive (`_owner`) for as
        // long as the gimli readers exist; nothing borrowed from them is returned.
        let bytes: &'static [u8] = unsafe { std::slice::from_raw_parts(map.as_ptr(), map.len()) };
        let file = object::File::parse(bytes).map_err(|_| DwarfError::Missing)?;
        if file.section_by_name(".debug_info").is_none() {
            return Err(DwarfError::Missing);
        }
        let dwarf = gimli::Dwarf::load(|id| -> Result<R, gimli::Error> {
            let data = file
                .section_by_name(id.name())
                .and_then(|s| s.data().ok())
                .unwrap_or(&[]);
            Ok(EndianSlice::new(data, LittleEndian))
        })?;
        let mut headers = Vec::new();
        let mut it = dwarf.units();
        while let Ok(Some(h)) = it.next() {
            if let Some(o) = h.offset().as_debug_info_offset() {
                headers.push((o.0 as u64, h));
            }
        }
        Ok(Dwarf {
            _owner: map,
            dwarf,
            headers,
            units: Mutex::new(HashMap::new()),
            index: Mutex::new(LazyIndex::default()),
            units_scanned: AtomicUsize::new(0),
        })
    }

    pub fn unit_count(&self) -> usize {
        self.headers.len()
    }

    fn unit_at(&self, i: usize) -> Option<(u64, Arc<gimli::Unit<R>>)> {
        let (off, h) = self.headers.get(i)?;
        if let Some(u) = self.units.lock().ok()?.get(off) {
            return Some((*off, u.clone()));
        }
        let u = Arc::new(self.dwarf.unit(*h).ok()?);
        self.units.lock().ok()?.insert(*off, u.clone());
        Some((*off, u))
    }

    fn unit_for(&self, off: u64) -> Option<(u64, Arc<gimli::Unit<R>>)> {
        let i = self.headers.partition_point(|(o, _)| *o <= off);
        self.unit_at(i.checked_sub(1)?)
    }

    fn name_of(
        &self,
        unit: &gimli::Unit<R>,
        e: &gimli::DebuggingInformationEntry<R>,
    ) -> Option<String> {
        let v = e.attr_value(gimli::DW_AT_name).ok()??;
        let s = self.dwarf.attr_string(unit, v).ok()?;
        Some(s.to_string_lossy().into_owned())
    }

    fn type_ref(&self, base: u64, e: &gimli::DebuggingInformationEntry<R>) -> TypeId {
        match e.attr_value(gimli::DW_AT_type) {
            Ok(Some(AttributeValue::UnitRef(o))) => base + o.0 as u64,
            Ok(Some(AttributeValue::DebugInfoRef(o))) => o.0 as u64,
            _ => VOID,
        }
    }

    fn udata(e: &gimli::DebuggingInformationEntry<R>, at: gimli::DwAt) -> Option<u64> {
        e.attr_value(at).ok()?.and_then(|v| v.udata_value())
    }

    /// Scan one more unit's top-level entries into the index. False when none are left.
    fn scan_next(&self, idx: &mut LazyIndex) -> bool {
        let Some((base, unit)) = self.unit_at(idx.next_unit) else {
            return false;
        };
        idx.next_unit += 1;
        self.units_scanned.fetch_add(1, Ordering::Relaxed);
        let Ok(mut tree) = unit.entries_tree(None) else {
            return true;
        };
        let Ok(root) = tree.root() else {
            return true;
        };
        let mut children = root.children();
        while let Ok(Some(child)) = children.next() {
            let e = child.entry();
            let kind = match e.tag() {
                gimli::DW_TAG_structure_type => Kind::Struct,
                gimli::DW_TAG_union_type => Kind::Union,
                gimli::DW_TAG_enumeration_type => Kind::Enum,
                gimli::DW_TAG_typedef => Kind::Typedef,
                _ => continue,
            };
            if matches!(e.attr_value(gimli::DW_AT_declaration), Ok(Some(_))) {
                continue;
            }
            if let Some(n) = self.name_of(&unit, e) {
                idx.names
                    .entry((kind, n))
                    .or_insert(base + e.offset().0 as u64);
            }
        }
        // Keep the unit cache small: the index holds offsets, units are re-parsed on demand.
        if let Ok(mut u) = self.units.lock() {
            if u.len() > 64 {
                u.clear();
            }
        }
        true
    }

    fn parse(&self, id: TypeId) -> Option<Type> {
        let dim = (id >> DIM_SHIFT) as usize;
        let off = id & ((1 << DIM_SHIFT) - 1);
        let (base, unit) = self.unit_for(off)?;
        let uoff = gimli::UnitOffset((off - base) as usize);
        let mut tree = unit.entries_tree(Some(uoff)).ok()?;
        let node = tree.root().ok()?;
        let e = node.entry().clone();
        let name = self.name_of(&unit, &e);
        let size = Self::udata(&e, gimli::DW_AT_byte_size);
        let target = self.type_ref(base, &e);
        Some(match e.tag() {
            gimli::DW_TAG_base_type => {
                let enc = match e.attr_value(gimli::DW_AT_encoding).ok()? {
                    Some(AttributeValue::Encoding(x)) => x,
                    _ => gimli::DW_ATE_signed,
                };
                if enc == gimli::DW_ATE_float {
                    Type::Float {
                        name: name.unwrap_or_default(),
                        size: size.unwrap_or(0),
                    }
                } else {
                    Type::Int {
                        name: name.unwrap_or_default(),
                        size: size.unwrap_or(0),
                        signed: enc == gimli::DW_ATE_signed || enc == gimli::DW_ATE_signed_char,
                        boolean: enc == gimli::DW_ATE_boolean,
                    }
                }
            }
            gimli::DW_TAG_pointer_type => Type::Pointer { target },
            gimli::DW_TAG_typedef => Type::Typedef {
                name: name.unwrap_or_default(),
                target,
            },
            gimli::DW_TAG_const_type => Type::Qualified {
                qual: "const",
                target,
            },
            gimli::DW_TAG_volatile_type => Type::Qualified {
                qual: "volatile",
                target,
            },
            gimli::DW_TAG_restrict_type => Type::Qualified {
                qual: "restrict",
                target,
            },
            gimli::DW_TAG_atomic_type => Type::Qualified {
                qual: "_Atomic",
                target,
            },
            gimli::DW_TAG_subroutine_type => Type::Func,
            gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type => {
                let union = e.tag() == gimli::DW_TAG_union_type;
                if matches!(e.attr_value(gimli::DW_AT_declaration), Ok(Some(_))) {
                    // A declaration: find the definition by name.
                    let kind = if union { Kind::Union } else { Kind::Struct };
                    if let Some(n) = &name {
                        if let Some(def) = self.find(kind, n) {
                            if def != id {
                                return self.parse(def);
                            }
                        }
                    }
                    return Some(Type::Fwd {
                        union,
                        name: name.unwrap_or_default(),
                    });
                }
                let mut members = Vec::new();
                let mut ch = node.children();
                while let Ok(Some(c)) = ch.next() {
                    let m = c.entry();
                    if m.tag() != gimli::DW_TAG_member {
                        continue;
                    }
                    let loc = Self::udata(m, gimli::DW_AT_data_member_location).unwrap_or(0);
                    let bit_size = Self::udata(m, gimli::DW_AT_bit_size).map(|b| b as u32);
                    let bit_offset = if let Some(b) = Self::udata(m, gimli::DW_AT_data_bit_offset) {
                        b
                    } else if let (Some(bo), Some(bs)) =
                        (Self::udata(m, gimli::DW_AT_bit_offset), bit_size)
                    {
                        // DWARF 2/3 bitfields count from the storage unit's most significant
                        // bit (little-endian: convert to an LSB offset).
                        let unit_bytes = Self::udata(m, gimli::DW_AT_byte_size).unwrap_or(4);
                        (loc * 8 + unit_bytes * 8).saturating_sub(bo + bs as u64)
                    } else {
                        loc * 8
                    };
                    members.push(Member {
                        name: self.name_of(&unit, m),
                        ty: self.type_ref(base, m),
                        bit_offset,
                        bit_size,
                    });
                }
                Type::Struct {
                    union,
                    name,
                    size: size.unwrap_or(0),
                    members,
                }
            }
            gimli::DW_TAG_array_type => {
                let mut dims = Vec::new();
                let mut ch = node.children();
                while let Ok(Some(c)) = ch.next() {
                    let s = c.entry();
                    if s.tag() != gimli::DW_TAG_subrange_type {
                        continue;
                    }
                    let n = Self::udata(s, gimli::DW_AT_count).or_else(|| {
                        Self::udata(s, gimli::DW_AT_upper_bound).map(|u| u.wrapping_add(1))
                    });
                    dims.push(n.unwrap_or(0));
                }
                if dims.is_empty() {
                    dims.push(0);
                }
                let len = *dims.get(dim)?;
                let elem = if dim + 1 < dims.len() {
                    off | (((dim + 1) as u64) << DIM_SHIFT)
                } else {
                    target
                };
                Type::Array { elem, len }
            }
            gimli::DW_TAG_enumeration_type => {
                let mut values = Vec::new();
                let mut ch = node.children();
                while let Ok(Some(c)) = ch.next() {
                    let en = c.entry();
                    if en.tag() != gimli::DW_TAG_enumerator {
                        continue;
                    }
                    let v = match en.attr_value(gimli::DW_AT_const_value).ok().flatten() {
                        Some(AttributeValue::Sdata(s)) => s,
                        Some(v) => v.udata_value().map(|u| u as i64).unwrap_or(0),
                        None => 0,
                    };
                    values.push((self.name_of(&unit, en).unwrap_or_default(), v));
                }
                Type::Enum {
                    name,
                    size: size.unwrap_or(4),
                    values,
                }
            }
            _ => Type::Void,
        })
    }
}

impl TypeSource for Dwarf {
    fn find(&self, kind: Kind, name: &str) -> Option<TypeId> {
        let mut idx = self.index.lock().ok()?;
        let key = (kind, name.to_string());
        loop {
            if let Some(&id) = idx.names.get(&key) {
                return Some(id);
            }
            if !self.scan_next(&mut idx) {
                return None;
            }
        }
    }
    fn get(&self, id: TypeId) -> Option<Type> {
        if id == VOID {
            return Some(Type::Void);
        }
        self.parse(id)
    }
    fn source_name(&self) -> &'static str {
        "DWARF"
    }
}
