//! A BTF parser (vmlinux's `.BTF` section; the format is in the kernel's
//! Documentation/bpf/btf.rst). Every kernel type in about 4 MB, indexed in milliseconds.

use crate::types::{Kind, Member, Type, TypeId, TypeSource, VOID};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("BTF: {0}")]
    Malformed(String),
}

pub struct Btf {
    data: Vec<u8>,
    types_start: usize,
    strs_start: usize,
    strs_len: usize,
    /// Offset of type id i (i >= 1) at index i.
    offsets: Vec<u32>,
    names: HashMap<(Kind, String), u32>,
}

const INT: u32 = 1;
const PTR: u32 = 2;
const ARRAY: u32 = 3;
const STRUCT: u32 = 4;
const UNION: u32 = 5;
const ENUM: u32 = 6;
const FWD: u32 = 7;
const TYPEDEF: u32 = 8;
const VOLATILE: u32 = 9;
const CONST: u32 = 10;
const RESTRICT: u32 = 11;
const FUNC: u32 = 12;
const FUNC_PROTO: u32 = 13;
const VAR: u32 = 14;
const DATASEC: u32 = 15;
const FLOAT: u32 = 16;
const DECL_TAG: u32 = 17;
const TYPE_TAG: u32 = 18;
const ENUM64: u32 = 19;

fn rd(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(o..o.checked_add(4)?)?.try_into().ok()?,
    ))
}

impl Btf {
    pub fn parse(data: Vec<u8>) -> Result<Btf, BtfError> {
        let bad = |s: &str| BtfError::Malformed(s.to_string());
        if data.len() < 24 || data[0..2] != [0x9f, 0xeb] {
            return Err(bad("bad magic (big-endian BTF is not supported)"));
        }
        let hdr_len = rd(&data, 4).ok_or_else(|| bad("header"))? as usize;
        let type_off = rd(&data, 8).ok_or_else(|| bad("header"))? as usize;
        let type_len = rd(&data, 12).ok_or_else(|| bad("header"))? as usize;
        let str_off = rd(&data, 16).ok_or_else(|| bad("header"))? as usize;
        let str_len = rd(&data, 20).ok_or_else(|| bad("header"))? as usize;
        let types_start = hdr_len.saturating_add(type_off);
        let types_end = types_start.saturating_add(type_len);
        let strs_start = hdr_len.saturating_add(str_off);
        if types_end > data.len() || strs_start.saturating_add(str_len) > data.len() {
            return Err(bad("sections beyond the end of the data"));
        }
        let mut offsets = vec![0u32];
        let mut names = HashMap::new();
        let mut o = types_start;
        while o + 12 <= types_end {
            let name_off = rd(&data, o).unwrap_or(0);
            let info = rd(&data, o + 4).unwrap_or(0);
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let extra = match kind {
                INT | VAR | DECL_TAG => 4,
                ARRAY => 12,
                STRUCT | UNION | DATASEC | ENUM64 => 12 * vlen,
                ENUM | FUNC_PROTO => 8 * vlen,
                PTR | FWD | TYPEDEF | VOLATILE | CONST | RESTRICT | FUNC | FLOAT | TYPE_TAG => 0,
                _ => return Err(bad(&format!("unknown kind {kind} at offset {o}"))),
            };
            let id = offsets.len() as u32;
            offsets.push(o as u32);
            let k = match kind {
                STRUCT => Some(Kind::Struct),
                UNION => Some(Kind::Union),
                ENUM | ENUM64 => Some(Kind::Enum),
                TYPEDEF => Some(Kind::Typedef),
                _ => None,
            };
            if let (Some(k), true) = (k, name_off != 0) {
                if let Some(n) = str_at(&data, strs_start, str_len, name_off) {
                    names.entry((k, n.to_string())).or_insert(id);
                }
            }
            o += 12 + extra;
        }
        Ok(Btf {
            data,
            types_start,
            strs_start,
            strs_len: str_len,
            offsets,
            names,
        })
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Names of every struct, union, enum and typedef (for tab completion).
    pub fn type_names(&self) -> Vec<String> {
        self.names.keys().map(|(_, n)| n.clone()).collect()
    }
    pub fn is_empty(&self) -> bool {
        self.offsets.len() <= 1
    }

    fn s(&self, off: u32) -> Option<&str> {
        str_at(&self.data, self.strs_start, self.strs_len, off)
    }

    fn name(&self, off: u32) -> Option<String> {
        self.s(off).filter(|s| !s.is_empty()).map(str::to_string)
    }

    fn tid(&self, t: u32) -> TypeId {
        if t == 0 {
            VOID
        } else {
            t as TypeId
        }
    }

    /// The type of `id`, through any type tags.
    ///
    /// Folklore: a type tag (`BTF_KIND_TYPE_TAG`, `__user`/`__rcu` since 5.17) is transparent
    /// and names the tagged type, which may be another tag. A damaged BTF can make the chain a
    /// cycle; following it recursively overflowed the stack (issue 25's fuzz finding;
    /// fuzz/regressions/btf/type-tag-cycle, a tag naming itself, replayed by
    /// tests/fuzz_regressions.rs), so it is followed in a loop, at most MAX_TAGS links.
    fn parse_type(&self, mut id: u32) -> Option<Type> {
        const MAX_TAGS: usize = 16;
        for _ in 0..MAX_TAGS {
            let o = *self.offsets.get(id as usize)? as usize;
            let info = rd(&self.data, o.checked_add(4)?)?;
            if (info >> 24) & 0x1f != TYPE_TAG {
                return self.parse_untagged(id);
            }
            id = rd(&self.data, o.checked_add(8)?)?;
        }
        None
    }

    fn parse_untagged(&self, id: u32) -> Option<Type> {
        let o = *self.offsets.get(id as usize)? as usize;
        if o < self.types_start {
            return None;
        }
        let d = &self.data;
        let name_off = rd(d, o)?;
        let info = rd(d, o + 4)?;
        let st = rd(d, o + 8)?;
        let kind = (info >> 24) & 0x1f;
        let kflag = info >> 31 == 1;
        let vlen = (info & 0xffff) as usize;
        let x = o + 12;
        Some(match kind {
            INT => {
                let enc = rd(d, x)?;
                let e = (enc >> 24) & 0xf;
                Type::Int {
                    name: self.name(name_off).unwrap_or_default(),
                    size: st as u64,
                    signed: e & 1 != 0,
                    boolean: e & 4 != 0,
                }
            }
            FLOAT => Type::Float {
                name: self.name(name_off).unwrap_or_default(),
                size: st as u64,
            },
            PTR => Type::Pointer {
                target: self.tid(st),
            },
            ARRAY => Type::Array {
                elem: self.tid(rd(d, x)?),
                len: rd(d, x + 8)? as u64,
            },
            STRUCT | UNION => {
                let mut members = Vec::with_capacity(vlen);
                for i in 0..vlen {
                    let m = x + i * 12;
                    let off = rd(d, m + 8)?;
                    // kind_flag: the offset holds bitfield_size << 24 | bit_offset.
                    let (bit_offset, bit_size) = if kflag {
                        (
                            (off & 0xff_ffff) as u64,
                            Some(off >> 24).filter(|&b| b != 0),
                        )
                    } else {
                        (off as u64, None)
                    };
                    members.push(Member {
                        name: self.name(rd(d, m)?),
                        ty: self.tid(rd(d, m + 4)?),
                        bit_offset,
                        bit_size,
                    });
                }
                Type::Struct {
                    union: kind == UNION,
                    name: self.name(name_off),
                    size: st as u64,
                    members,
                }
            }
            ENUM | ENUM64 => {
                let signed = kflag;
                let mut values = Vec::with_capacity(vlen);
                for i in 0..vlen {
                    if kind == ENUM {
                        let m = x + i * 8;
                        let v = rd(d, m + 4)?;
                        let v = if signed { v as i32 as i64 } else { v as i64 };
                        values.push((self.name(rd(d, m)?).unwrap_or_default(), v));
                    } else {
                        let m = x + i * 12;
                        let v = rd(d, m + 4)? as u64 | (rd(d, m + 8)? as u64) << 32;
                        values.push((self.name(rd(d, m)?).unwrap_or_default(), v as i64));
                    }
                }
                Type::Enum {
                    name: self.name(name_off),
                    size: st as u64,
                    values,
                }
            }
            FWD => Type::Fwd {
                union: kflag,
                name: self.name(name_off).unwrap_or_default(),
            },
            TYPEDEF => Type::Typedef {
                name: self.name(name_off).unwrap_or_default(),
                target: self.tid(st),
            },
            VOLATILE | CONST | RESTRICT | TYPE_TAG => {
                let qual = match kind {
                    VOLATILE => "volatile",
                    CONST => "const",
                    RESTRICT => "restrict",
                    // type tags were followed by parse_type
                    _ => return None,
                };
                Type::Qualified {
                    qual,
                    target: self.tid(st),
                }
            }
            FUNC | FUNC_PROTO => Type::Func,
            _ => Type::Void,
        })
    }
}

fn str_at(d: &[u8], start: usize, len: usize, off: u32) -> Option<&str> {
    let s = start.checked_add(off as usize)?;
    let end = start.checked_add(len)?;
    let b = d.get(s..end)?;
    let z = b.iter().position(|&c| c == 0)?;
    std::str::from_utf8(&b[..z]).ok()
}

impl TypeSource for Btf {
    fn find(&self, kind: Kind, name: &str) -> Option<TypeId> {
        self.names
            .get(&(kind, name.to_string()))
            .map(|&i| i as TypeId)
    }
    fn get(&self, id: TypeId) -> Option<Type> {
        if id == VOID || id == 0 {
            return Some(Type::Void);
        }
        self.parse_type(u32::try_from(id).ok()?)
    }
    fn source_name(&self) -> &'static str {
        "BTF"
    }
}

/// Fuzzing entry.
pub fn fuzz_btf(data: &[u8]) {
    if let Ok(b) = Btf::parse(data.to_vec()) {
        for i in 0..b.len().min(512) {
            let _ = b.get(i as TypeId);
        }
    }
}
