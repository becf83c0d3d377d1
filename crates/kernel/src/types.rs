//! One type model for both sources (BTF and DWARF), and what is computed on it: sizes,
//! member paths, and crash-style struct printing.

use crate::mem::Memory;

/// A type id of its source: a BTF type id, or a `.debug_info` offset for DWARF.
pub type TypeId = u64;
/// The id every source uses for `void`.
pub const VOID: TypeId = u64::MAX;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    Void,
    Int {
        name: String,
        size: u64,
        signed: bool,
        boolean: bool,
    },
    Float {
        name: String,
        size: u64,
    },
    Pointer {
        target: TypeId,
    },
    Array {
        elem: TypeId,
        len: u64,
    },
    Struct {
        union: bool,
        name: Option<String>,
        size: u64,
        members: Vec<Member>,
    },
    Enum {
        name: Option<String>,
        size: u64,
        values: Vec<(String, i64)>,
    },
    Typedef {
        name: String,
        target: TypeId,
    },
    Qualified {
        qual: &'static str,
        target: TypeId,
    },
    Func,
    /// A declaration without a body (`struct foo;`).
    Fwd {
        union: bool,
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: Option<String>,
    pub ty: TypeId,
    pub bit_offset: u64,
    /// Bitfield width, or None for a whole member.
    pub bit_size: Option<u32>,
}

/// What kind of named type to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Struct,
    Union,
    Enum,
    Typedef,
}

thread_local! {
    static HEX: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Print integers in hex (crash's `struct -x`) for the duration of `f`.
pub fn with_hex<T>(hex: bool, f: impl FnOnce() -> T) -> T {
    let old = HEX.with(|h| h.replace(hex));
    let r = f();
    HEX.with(|h| h.set(old));
    r
}

fn hex_mode() -> bool {
    HEX.with(|h| h.get())
}

/// The `print elements` limit crash sets for gdb (512, measured on crash 8.0.2: a 4096-byte
/// char array prints 512 elements then `...`); longer arrays end with `...`.
const PRINT_ELEMENTS: u64 = 512;

/// A source of types.
pub trait TypeSource {
    fn find(&self, kind: Kind, name: &str) -> Option<TypeId>;
    fn get(&self, id: TypeId) -> Option<Type>;
    fn source_name(&self) -> &'static str;
}

/// A member found by path: byte offset from the start of the outer struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub offset: u64,
    pub ty: TypeId,
    pub bit_offset: u8,
    pub bit_size: Option<u32>,
}

/// Helpers over any type source.
pub struct Types<'a>(pub &'a dyn TypeSource);

impl<'a> Types<'a> {
    pub fn get(&self, id: TypeId) -> Type {
        if id == VOID {
            return Type::Void;
        }
        self.0.get(id).unwrap_or(Type::Void)
    }

    /// Strip typedefs and qualifiers.
    pub fn resolve(&self, mut id: TypeId) -> (TypeId, Type) {
        for _ in 0..64 {
            match self.get(id) {
                Type::Typedef { target, .. } | Type::Qualified { target, .. } => id = target,
                t => return (id, t),
            }
        }
        (VOID, Type::Void)
    }

    pub fn size_of(&self, id: TypeId) -> u64 {
        self.size_at_depth(id, 0)
    }

    /// Folklore: arrays of arrays nest a few levels in real kernels (`u8 [4][16]`), but a
    /// damaged BTF or DWARF can make an array its own element: the depth is capped (issue 25).
    fn size_at_depth(&self, id: TypeId, depth: u32) -> u64 {
        match self.resolve(id).1 {
            Type::Int { size, .. } | Type::Float { size, .. } => size,
            Type::Enum { size, .. } | Type::Struct { size, .. } => size,
            Type::Pointer { .. } => 8,
            Type::Array { elem, len } if depth < 16 => {
                len.saturating_mul(self.size_at_depth(elem, depth + 1))
            }
            _ => 0,
        }
    }

    /// Find `struct name` (or a typedef to a struct, or a union).
    pub fn find_struct(&self, name: &str) -> Option<TypeId> {
        let name = name.trim();
        if let Some(n) = name.strip_prefix("struct ") {
            return self.0.find(Kind::Struct, n.trim());
        }
        if let Some(n) = name.strip_prefix("union ") {
            return self.0.find(Kind::Union, n.trim());
        }
        self.0
            .find(Kind::Struct, name)
            .or_else(|| self.0.find(Kind::Union, name))
            .or_else(|| self.0.find(Kind::Typedef, name))
    }

    /// Look up one member name, descending into anonymous structs and unions.
    pub fn member(&self, sid: TypeId, name: &str) -> Option<Field> {
        let (_, t) = self.resolve(sid);
        let Type::Struct { members, .. } = t else {
            return None;
        };
        for m in &members {
            if m.name.as_deref() == Some(name) {
                return Some(Field {
                    offset: m.bit_offset / 8,
                    ty: m.ty,
                    bit_offset: (m.bit_offset % 8) as u8,
                    bit_size: m.bit_size,
                });
            }
        }
        for m in &members {
            if m.name.is_none() {
                if let Some(mut f) = self.member(m.ty, name) {
                    f.offset += m.bit_offset / 8;
                    return Some(f);
                }
            }
        }
        None
    }

    /// Resolve a dotted path like `thread.sp` or `se.avg.load_avg`, and `arr[3]`.
    pub fn path(&self, sid: TypeId, path: &str) -> Option<Field> {
        let mut f = Field {
            offset: 0,
            ty: sid,
            bit_offset: 0,
            bit_size: None,
        };
        for part in path.split('.') {
            let (name, index) = match part.split_once('[') {
                Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<u64>().ok()),
                None => (part, None),
            };
            let m = self.member(f.ty, name)?;
            f = Field {
                offset: f.offset + m.offset,
                ..m
            };
            if let Some(i) = index {
                let Type::Array { elem, .. } = self.resolve(f.ty).1 else {
                    return None;
                };
                f.offset += i * self.size_of(elem);
                f.ty = elem;
            }
        }
        Some(f)
    }

    /// The C spelling of a type (`struct list_head *`, `char [16]`, `unsigned int`).
    pub fn name(&self, id: TypeId) -> String {
        let (base, suffix) = self.name_parts(id, 0);
        format!("{base}{suffix}")
    }

    fn name_parts(&self, id: TypeId, depth: u32) -> (String, String) {
        if depth > 32 {
            return ("?".into(), String::new());
        }
        match self.get(id) {
            Type::Void => ("void".into(), String::new()),
            Type::Int { name, .. } => (c_int_name(&name).to_string(), String::new()),
            Type::Float { name, .. } => (name, String::new()),
            Type::Typedef { name, .. } => (name, String::new()),
            Type::Struct { union, name, .. } => (
                format!(
                    "{} {}",
                    if union { "union" } else { "struct" },
                    name.unwrap_or_else(|| "{...}".into())
                ),
                String::new(),
            ),
            Type::Fwd { union, name } => (
                format!("{} {name}", if union { "union" } else { "struct" }),
                String::new(),
            ),
            Type::Enum { name, .. } => (
                format!("enum {}", name.unwrap_or_else(|| "{...}".into())),
                String::new(),
            ),
            Type::Pointer { target } => {
                let (b, s) = self.name_parts(target, depth + 1);
                if s.starts_with('[') || s.starts_with('(') {
                    (b, format!(" (*){}", s.trim_start()))
                } else if s.is_empty() {
                    (format!("{b} *"), String::new())
                } else {
                    (b, format!("{s}*"))
                }
            }
            Type::Array { elem, len } => {
                let (b, s) = self.name_parts(elem, depth + 1);
                (b, format!(" [{len}]{}", s.trim_start()))
            }
            Type::Qualified { qual, target } => {
                let (b, s) = self.name_parts(target, depth + 1);
                (format!("{qual} {b}"), s)
            }
            Type::Func => ("void".into(), " (*)()".into()),
        }
    }

    /// `struct -o`: the layout with offsets, like crash's `struct -o` (decimal; `hex` for
    /// `-x`).
    pub fn layout(&self, id: TypeId, hex: bool) -> String {
        let (rid, t) = self.resolve(id);
        let Type::Struct { size, .. } = &t else {
            return format!("{}: not a struct or union\n", self.name(id));
        };
        let mut rows = Vec::new();
        self.layout_rows(&t, 0, 0, &mut rows);
        let fmt_off = |o: u64| {
            if hex {
                format!("[{o:#x}]")
            } else {
                format!("[{o}]")
            }
        };
        let w = rows
            .iter()
            .filter_map(|(o, _, _)| o.map(|o| fmt_off(o).len()))
            .max()
            .unwrap_or(3)
            + 2;
        let mut out = format!("{} {{\n", self.name(rid));
        for (off, depth, text) in rows {
            let o = off.map(fmt_off).unwrap_or_default();
            out.push_str(&format!("{o:>w$} {}{text}\n", "    ".repeat(depth)));
        }
        if hex {
            out.push_str(&format!("}}\nSIZE: {size:#x}\n"));
        } else {
            out.push_str(&format!("}}\nSIZE: {size}\n"));
        }
        out
    }

    fn layout_rows(
        &self,
        t: &Type,
        base: u64,
        depth: usize,
        rows: &mut Vec<(Option<u64>, usize, String)>,
    ) {
        let Type::Struct { members, .. } = t else {
            return;
        };
        // Damaged BTF can make an anonymous struct its own member: cap the nesting (issue 25).
        if depth > 32 {
            return;
        }
        for m in members {
            let off = base + m.bit_offset / 8;
            let (_, mt) = self.resolve(m.ty);
            match (&mt, &m.name) {
                (Type::Struct { union, .. }, None) => {
                    let kw = if *union { "union" } else { "struct" };
                    rows.push((Some(off), depth, format!("{kw} {{")));
                    self.layout_rows(&mt, off, depth + 1, rows);
                    rows.push((None, depth, "};".into()));
                }
                _ => {
                    let name = m.name.clone().unwrap_or_default();
                    let (b, s) = self.name_parts(m.ty, 0);
                    let bits = m.bit_size.map(|w| format!(" : {w}")).unwrap_or_default();
                    let sep = if b.ends_with('*') { "" } else { " " };
                    rows.push((
                        Some(off),
                        depth,
                        format!("{b}{sep}{name}{}{bits};", s.trim_start()),
                    ));
                }
            }
        }
    }

    /// Print a value of type `id` read from memory at `addr`, gdb/crash style.
    pub fn format_value(&self, mem: &dyn Memory, id: TypeId, addr: u64) -> String {
        let mut out = String::new();
        let (_, t) = self.resolve(id);
        match t {
            Type::Struct { .. } => {
                out.push_str(&format!("{} {{\n", self.name(self.resolve(id).0)));
                self.members_value(mem, &t, addr, 1, &mut out);
                out.push_str("}\n");
            }
            _ => {
                out.push_str(&self.scalar(mem, id, addr, None, 0, 0));
                out.push('\n');
            }
        }
        out
    }

    fn members_value(&self, mem: &dyn Memory, t: &Type, addr: u64, depth: usize, out: &mut String) {
        let Type::Struct { members, .. } = t else {
            return;
        };
        if depth > 32 {
            return;
        }
        let pad = "  ".repeat(depth);
        let n = members.len();
        for (i, m) in members.iter().enumerate() {
            let comma = if i + 1 < n { "," } else { "" };
            let a = addr + m.bit_offset / 8;
            let (_, mt) = self.resolve(m.ty);
            let name = m.name.as_deref().unwrap_or("");
            let lhs = if name.is_empty() {
                String::new()
            } else {
                format!("{name} = ")
            };
            match &mt {
                Type::Struct { members, .. } if members.is_empty() => {
                    out.push_str(&format!("{pad}{lhs}{{<No data fields>}}{comma}\n"));
                }
                Type::Struct { .. } => {
                    out.push_str(&format!("{pad}{lhs}{{\n"));
                    self.members_value(mem, &mt, a, depth + 1, out);
                    out.push_str(&format!("{pad}}}{comma}\n"));
                }
                _ => {
                    let v = self.scalar(mem, m.ty, a, m.bit_size, (m.bit_offset % 8) as u8, depth);
                    out.push_str(&format!("{pad}{lhs}{v}{comma}\n"));
                }
            }
        }
    }

    fn read_uint(&self, mem: &dyn Memory, addr: u64, size: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        let n = size.min(8) as usize;
        mem.read(addr, &mut b[..n]).ok()?;
        Some(u64::from_le_bytes(b))
    }

    /// A leaf (or an array) as gdb prints it.
    pub fn scalar(
        &self,
        mem: &dyn Memory,
        id: TypeId,
        addr: u64,
        bits: Option<u32>,
        bit_off: u8,
        depth: usize,
    ) -> String {
        if depth > 48 {
            return "<nested too deep>".into();
        }
        let (_, t) = self.resolve(id);
        let unread = || "<unreadable>".to_string();
        match t {
            Type::Int {
                size,
                signed,
                boolean,
                ref name,
            } => {
                let Some(mut v) = self.read_uint(mem, addr, size) else {
                    return unread();
                };
                let width = bits.map(|b| b as u64).unwrap_or(size * 8).min(64);
                if bits.is_some() {
                    v >>= bit_off;
                }
                if width < 64 {
                    v &= (1u64 << width) - 1;
                }
                if hex_mode() {
                    return format!("{v:#x}");
                }
                if boolean {
                    return if v != 0 { "true" } else { "false" }.into();
                }
                let sv = if signed && width < 64 && v >> (width - 1) & 1 == 1 {
                    (v | !((1u64 << width) - 1)) as i64
                } else {
                    v as i64
                };
                if size == 1 && bits.is_none() && name.contains("char") {
                    return format!(
                        "{} {}",
                        if signed { sv } else { v as i64 },
                        char_lit(v as u8)
                    );
                }
                if signed {
                    sv.to_string()
                } else {
                    v.to_string()
                }
            }
            Type::Enum { size, values, .. } => {
                let Some(mut v) = self.read_uint(mem, addr, size) else {
                    return unread();
                };
                if let Some(b) = bits {
                    v = (v >> bit_off) & ((1u64 << b.min(63)) - 1);
                }
                values
                    .iter()
                    .find(|(_, x)| *x as u64 == v || (*x == v as i32 as i64 && size == 4))
                    .map(|(n, _)| n.clone())
                    .unwrap_or_else(|| v.to_string())
            }
            Type::Pointer { .. } | Type::Func => match self.read_uint(mem, addr, 8) {
                Some(0) => "0x0".into(),
                Some(v) => match mem.symbolize(v) {
                    Some(sym) => format!("{v:#x} <{sym}>"),
                    None => format!("{v:#x}"),
                },
                None => unread(),
            },
            Type::Float { size, .. } => match self.read_uint(mem, addr, size) {
                Some(v) if size == 8 => format!("{}", f64::from_bits(v)),
                Some(v) => format!("{}", f32::from_bits(v as u32)),
                None => unread(),
            },
            Type::Array { elem, len } => {
                let (_, et) = self.resolve(elem);
                let es = self.size_of(elem);
                if let Type::Int {
                    size: 1, ref name, ..
                } = et
                {
                    if name.contains("char") {
                        if len == 0 {
                            // A flexible array: gdb shows its address and the string there.
                            let b = mem
                                .read_cstr(addr, PRINT_ELEMENTS as usize)
                                .unwrap_or_default();
                            return format!("{addr:#x} {}", c_string_lit(&b));
                        }
                        let Ok(mut b) = mem.read_vec(addr, len.min(PRINT_ELEMENTS) as usize) else {
                            return unread();
                        };
                        // gdb takes one trailing NUL as the terminator and does not print it.
                        if len <= PRINT_ELEMENTS && b.last() == Some(&0) {
                            b.pop();
                        }
                        let mut s = c_string_lit(&b);
                        if len > PRINT_ELEMENTS {
                            s.push_str("...");
                        }
                        return s;
                    }
                }
                let mut parts = Vec::new();
                for i in 0..len.min(PRINT_ELEMENTS) {
                    let a = addr + i * es;
                    match &et {
                        Type::Struct { .. } => {
                            let mut s = String::from("{\n");
                            self.members_value(mem, &et, a, depth + 2, &mut s);
                            s.push_str(&format!("{}}}", "  ".repeat(depth + 1)));
                            parts.push(s);
                        }
                        _ => parts.push(self.scalar(mem, elem, a, None, 0, depth + 1)),
                    }
                }
                let more = if len > PRINT_ELEMENTS { "..." } else { "" };
                format!("{{{}{more}}}", parts.join(", "))
            }
            Type::Struct { .. } => {
                let mut s = String::from("{\n");
                self.members_value(mem, &t, addr, depth + 1, &mut s);
                s.push_str(&format!("{}}}", "  ".repeat(depth)));
                s
            }
            _ => "<void>".into(),
        }
    }
}

/// gdb's spelling of GCC's DWARF base type names (`long unsigned int` -> `unsigned long`), as
/// crash prints them.
pub fn c_int_name(n: &str) -> &str {
    match n {
        "long unsigned int" => "unsigned long",
        "long int" => "long",
        "long long unsigned int" => "unsigned long long",
        "long long int" => "long long",
        "short unsigned int" => "unsigned short",
        "short int" => "short",
        _ => n,
    }
}

fn char_lit(c: u8) -> String {
    match c {
        0 => "'\\000'".into(),
        b'\'' => "'\\''".into(),
        b'\\' => "'\\\\'".into(),
        b'\n' => "'\\n'".into(),
        b'\t' => "'\\t'".into(),
        0x20..=0x7e => format!("'{}'", c as char),
        _ => format!("'\\{c:03o}'"),
    }
}

/// A char array as crash prints it: the whole buffer in quotes, NULs as `\000` (crash turns
/// gdb's `<repeats N times>` folding off).
pub fn c_string_lit(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for &c in b {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\{c:03o}")),
        }
    }
    s.push('"');
    s
}
