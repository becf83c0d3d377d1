//! Frame variables from DWARF: which parameters and locals are in scope at a PC, where each one
//! lives there (the location-list entry valid at that PC), and their types, plus a small
//! evaluator for the location expressions and type helpers (pointee, member at an offset).
//!
//! The shared contract with `bt -v` and `explain`:
//! - [`Symbolizer::variables_at`] / [`Binary::variables_at`] return [`Scope`]s innermost first, in
//!   the same order as `source_frames` (inlined frames first, then the concrete function).
//! - [`Variable::type_die`] is the global `.debug_info` offset of the type DIE in that binary. For
//!   vmlinux this is the same numbering as kmortem-kernel's DWARF `TypeId` (which is also the
//!   global `.debug_info` offset). For a `.ko` the offsets are the same too, but kmortem-kernel does
//!   not apply the `.rela.debug_*` relocations of `ET_REL` files, so use [`Binary::type_info`] and
//!   [`Binary::member_path`] here for module types.
//! - [`evaluate`] runs a location expression against a frame's registers, memory and CFA.
//!
//! Folklore: GCC describes parameters of `.isra`/`.constprop` clones in the concrete DIE only when
//! they survived; the abstract origin still lists the removed ones. Like drgn, we report those as
//! optimized out (pinned by `estats_null_variables` in tests/vars.rs: `sk` of
//! `kmlab_estats_update_mss.constprop.0.isra.0`).

use crate::dwarf::{gerr, DwarfIndex, UnitData, R};
use crate::elf::Binary;
use crate::{Error, Symbolizer};
use gimli::{AttributeValue, UnitOffset};
use serde::Serialize;
use std::sync::Arc;

/// The variables of one source-level function at a PC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scope {
    /// Function name (`None` becomes `"??"`).
    pub function: String,
    /// True for an inlined instance (`DW_TAG_inlined_subroutine`).
    pub inlined: bool,
    /// Parameters first (declaration order), then locals of every lexical block containing the PC.
    pub vars: Vec<Variable>,
}

/// One parameter or local.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Variable {
    pub name: String,
    pub is_param: bool,
    /// C spelling, e.g. `struct blk_mq_hw_ctx *`.
    pub type_name: String,
    /// Global `.debug_info` offset of the type DIE (see the module doc).
    pub type_die: Option<u64>,
    pub location: Location,
}

/// Where a variable lives at the PC asked about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum Location {
    /// No location at all, or none covering this PC.
    OptimizedOut,
    /// The DWARF expression valid at this PC (the location-list entry already chosen). A
    /// `DW_AT_const_value` is turned into `DW_OP_constu N; DW_OP_stack_value`.
    Expr(Vec<u8>),
    /// The location could not be read (malformed DWARF, unsupported form).
    Unavailable(String),
}

impl Location {
    /// The DWARF register the variable's value is in, when the expression is exactly
    /// `DW_OP_regN` / `DW_OP_regx N`, or `DW_OP_bregN 0; DW_OP_stack_value`.
    pub fn register(&self) -> Option<u16> {
        match self.register_plus()? {
            (r, 0) => Some(r),
            _ => None,
        }
    }

    /// `(reg, k)` when the variable's value is `reg + k` (`DW_OP_regN`, or
    /// `DW_OP_bregN k; DW_OP_stack_value`). Entry values are not current registers and give `None`.
    pub fn register_plus(&self) -> Option<(u16, i64)> {
        let Location::Expr(e) = self else { return None };
        let ops = decode_ops(e)?;
        match ops.as_slice() {
            [gimli::Operation::Register { register }] => Some((register.0, 0)),
            [gimli::Operation::RegisterOffset {
                register,
                offset,
                base_type,
            }, gimli::Operation::StackValue]
                if base_type.0 == 0 =>
            {
                Some((register.0, *offset))
            }
            _ => None,
        }
    }

    /// Whether the value is `DW_OP_GNU_parameter_ref` (no register or memory holds it).
    ///
    /// Folklore: when GCC's IPA-SRA (`-fipa-sra`, on at -O2/-Os, `.isra` clones since GCC 4.x,
    /// this form since GCC 5) drops a parameter from a clone and passes pieces of what it points
    /// to instead, the clone's DIE describes the dropped parameter as "the value the caller
    /// passed for it" (`DW_OP_GNU_parameter_ref <abstract formal parameter>`), to be found in the
    /// caller's `DW_TAG_call_site_parameter`. Pinned by `null_member_deep` and `uaf_realloc` in
    /// crates/explain/tests/shapes.rs (`req` of `kmlab_request_mtu.constprop.0.isra.0`).
    pub fn is_parameter_ref(&self) -> bool {
        let Location::Expr(e) = self else {
            return false;
        };
        matches!(
            decode_ops(e).as_deref(),
            Some([gimli::Operation::ParameterRef { .. }, ..])
        )
    }

    /// A short human description: `%rsi`, `[%rsp+0x10]`, `<optimized out>`, `DW_OP_...`.
    pub fn describe(&self) -> String {
        match self {
            Location::OptimizedOut => "<optimized out>".into(),
            Location::Unavailable(why) => format!("<unavailable: {why}>"),
            Location::Expr(e) => describe_expr(e),
        }
    }
}

fn encoding() -> gimli::Encoding {
    gimli::Encoding {
        format: gimli::Format::Dwarf32,
        version: 4,
        address_size: 8,
    }
}

/// gimli computes `8 * size` for `DW_OP_piece size` and overflows (a panic with debug
/// assertions) on a huge uleb; found by the `explain_messages` fuzz target. Reject any byte
/// 0x93 followed by a uleb >= 2^60 (a false positive only makes an expression unreadable).
fn huge_piece(e: &[u8]) -> bool {
    e.iter().enumerate().any(|(i, &b)| {
        if b != gimli::constants::DW_OP_piece.0 {
            return false;
        }
        let mut v: u128 = 0;
        for (k, &x) in e[i + 1..].iter().take(18).enumerate() {
            v |= u128::from(x & 0x7f) << (7 * k);
            if x & 0x80 == 0 {
                break;
            }
        }
        v >= 1 << 60
    })
}

fn decode_ops(
    e: &[u8],
) -> Option<Vec<gimli::Operation<gimli::EndianSlice<'_, gimli::LittleEndian>>>> {
    if huge_piece(e) {
        return None;
    }
    let expr = gimli::Expression(gimli::EndianSlice::new(e, gimli::LittleEndian));
    let mut it = expr.operations(encoding());
    let mut out = Vec::new();
    while let Ok(Some(op)) = it.next() {
        out.push(op);
        if out.len() > 64 {
            return None;
        }
    }
    Some(out)
}

/// x86_64 DWARF register names (System V psABI numbering).
pub fn x86_64_register_name(r: u16) -> Option<&'static str> {
    const N: [&str; 17] = [
        "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15", "rip",
    ];
    N.get(r as usize).copied()
}

/// The DWARF number of an x86_64 register name (`rax`, `%rsi`, `esi`, `r8d`, ...).
pub fn x86_64_register_number(name: &str) -> Option<u16> {
    let n = name.trim_start_matches('%').to_ascii_lowercase();
    let base = match n.as_str() {
        "rax" | "eax" | "ax" | "al" => "rax",
        "rdx" | "edx" | "dx" | "dl" => "rdx",
        "rcx" | "ecx" | "cx" | "cl" => "rcx",
        "rbx" | "ebx" | "bx" | "bl" => "rbx",
        "rsi" | "esi" | "si" | "sil" => "rsi",
        "rdi" | "edi" | "di" | "dil" => "rdi",
        "rbp" | "ebp" | "bp" | "bpl" => "rbp",
        "rsp" | "esp" | "sp" | "spl" => "rsp",
        "rip" => "rip",
        s => {
            let t = s.trim_end_matches(['d', 'w', 'b']);
            return t
                .strip_prefix('r')
                .and_then(|x| x.parse::<u16>().ok())
                .filter(|x| (8..=15).contains(x));
        }
    };
    (0..17u16).find(|&i| x86_64_register_name(i) == Some(base))
}

fn reg_name(r: u16) -> String {
    x86_64_register_name(r)
        .map(|s| format!("%{s}"))
        .unwrap_or_else(|| format!("reg{r}"))
}

fn describe_expr(e: &[u8]) -> String {
    let Some(ops) = decode_ops(e) else {
        return "<bad expression>".into();
    };
    use gimli::Operation as O;
    match ops.as_slice() {
        [O::Register { register }] => reg_name(register.0),
        [O::RegisterOffset {
            register, offset, ..
        }, O::StackValue] => format!("{}{:+#x}", reg_name(register.0), offset),
        [O::RegisterOffset {
            register, offset, ..
        }] => format!("[{}{:+#x}]", reg_name(register.0), offset),
        [O::FrameOffset { offset }] => format!("[frame_base{offset:+#x}]"),
        [O::CallFrameCFA, O::PlusConstant { value }] => format!("[CFA+{value:#x}]"),
        [O::UnsignedConstant { value }, O::StackValue] => format!("constant {value:#x}"),
        [O::SignedConstant { value }, O::StackValue] => format!("constant {value}"),
        [O::Address { address }] => format!("[{address:#x}]"),
        [O::EntryValue { .. }, O::StackValue] => "entry value (not recoverable here)".into(),
        _ => {
            let v: Vec<String> = ops.iter().map(|o| format!("{o:?}")).collect();
            let s = v.join("; ");
            if s.len() > 120 {
                format!("{}…", &s[..s.floor_char_boundary(120)])
            } else {
                s
            }
        }
    }
}

/// The result of evaluating a location expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Value {
    /// The variable is in this DWARF register.
    Register(u16),
    /// The variable is in memory at this address.
    Memory(u64),
    /// The variable's value itself (`DW_OP_stack_value`, constants).
    Constant(u64),
    /// Composite (`DW_OP_piece`): (size in bits if given, piece).
    Pieces(Vec<(Option<u64>, Value)>),
    /// Not computable with what the frame offers (a register we lack, an entry value, ...).
    Unknown(String),
}

const MAX_EXPR_OPS: u32 = 4096;

/// Evaluates a location expression against a frame: registers by DWARF number, memory reads, and
/// the frame's CFA (kernel frame bases are usually `DW_OP_call_frame_cfa`). The frame base
/// (`DW_OP_fbreg`) is taken to be the CFA, which is what GCC emits for the kernel.
pub fn evaluate(
    expr: &[u8],
    regs: &dyn Fn(u16) -> Option<u64>,
    mem: &dyn Fn(u64, usize) -> Option<Vec<u8>>,
    cfa: Option<u64>,
) -> Result<Value, Error> {
    if huge_piece(expr) {
        return Ok(Value::Unknown("DW_OP_piece size out of range".into()));
    }
    let bytes = gimli::EndianSlice::new(expr, gimli::LittleEndian);
    let mut ev = gimli::Expression(bytes).evaluation(encoding());
    // A DWARF expression can branch backwards (`DW_OP_skip`/`DW_OP_bra`): without a bound, a
    // loop that pushes (`DW_OP_dup`) grows gimli's stack until the allocator gives up (the
    // `explain_messages` fuzz target's out-of-memory), and one that doesn't never returns.
    // Compilers emit straight-line location expressions; 4,096 operations is plenty.
    ev.set_max_iterations(MAX_EXPR_OPS);
    let mut res = ev.evaluate().map_err(gerr)?;
    let mut steps = 0;
    loop {
        steps += 1;
        if steps > 256 {
            return Ok(Value::Unknown("expression too long".into()));
        }
        use gimli::EvaluationResult as E;
        res = match res {
            E::Complete => break,
            E::RequiresRegister { register, .. } => match regs(register.0) {
                Some(v) => ev
                    .resume_with_register(gimli::Value::Generic(v))
                    .map_err(gerr)?,
                None => {
                    return Ok(Value::Unknown(format!(
                        "needs {} (not saved in this frame)",
                        reg_name(register.0)
                    )))
                }
            },
            E::RequiresMemory { address, size, .. } => {
                let n = size as usize;
                match mem(address, n) {
                    Some(b) if b.len() >= n && n <= 8 => {
                        let mut a = [0u8; 8];
                        a[..n].copy_from_slice(&b[..n]);
                        ev.resume_with_memory(gimli::Value::Generic(u64::from_le_bytes(a)))
                            .map_err(gerr)?
                    }
                    _ => {
                        return Ok(Value::Unknown(format!(
                            "needs memory at {address:#x} (not readable)"
                        )))
                    }
                }
            }
            E::RequiresCallFrameCfa | E::RequiresFrameBase => match cfa {
                Some(c) => {
                    if matches!(res, E::RequiresFrameBase) {
                        ev.resume_with_frame_base(c).map_err(gerr)?
                    } else {
                        ev.resume_with_call_frame_cfa(c).map_err(gerr)?
                    }
                }
                None => return Ok(Value::Unknown("needs the frame's CFA".into())),
            },
            E::RequiresEntryValue(_) => {
                return Ok(Value::Unknown(
                    "entry value (the register at function entry)".into(),
                ))
            }
            E::RequiresParameterRef(_) => {
                return Ok(Value::Unknown("parameter of the caller".into()))
            }
            E::RequiresRelocatedAddress(a) => ev.resume_with_relocated_address(a).map_err(gerr)?,
            other => return Ok(Value::Unknown(format!("unsupported: {other:?}"))),
        };
    }
    let pieces = ev.result();
    let conv = |p: &gimli::Piece<gimli::EndianSlice<'_, gimli::LittleEndian>>| -> Value {
        match &p.location {
            gimli::Location::Register { register } => Value::Register(register.0),
            gimli::Location::Address { address } => Value::Memory(*address),
            gimli::Location::Value { value } => match value.to_u64(u64::MAX) {
                Ok(v) => Value::Constant(v),
                Err(_) => Value::Unknown("non-integer value".into()),
            },
            gimli::Location::Bytes { value } => {
                let b = value.slice();
                let mut a = [0u8; 8];
                let n = b.len().min(8);
                a[..n].copy_from_slice(&b[..n]);
                Value::Constant(u64::from_le_bytes(a))
            }
            gimli::Location::Empty => Value::Unknown("optimized out".into()),
            gimli::Location::ImplicitPointer { .. } => Value::Unknown("implicit pointer".into()),
        }
    };
    Ok(match pieces.as_slice() {
        [] => Value::Unknown("empty expression".into()),
        [p] if p.size_in_bits.is_none() => conv(p),
        many => Value::Pieces(many.iter().map(|p| (p.size_in_bits, conv(p))).collect()),
    })
}

/// What a type DIE is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeKind {
    Base,
    Pointer,
    Struct,
    Union,
    Enum,
    Typedef,
    Const,
    Volatile,
    Array,
    Function,
    Void,
    Other,
}

/// One type DIE, shallowly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TypeInfo {
    pub die: u64,
    pub kind: TypeKind,
    pub name: Option<String>,
    pub size: Option<u64>,
    /// Pointee, typedef target, qualified type, array element.
    pub target: Option<u64>,
    /// Array element count (first dimension), when known.
    pub count: Option<u64>,
}

/// A struct/union member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberInfo {
    /// `None` for an anonymous struct/union member.
    pub name: Option<String>,
    pub offset: u64,
    pub type_die: Option<u64>,
}

/// A member path resolved from an offset into a struct.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberPath {
    /// `tables.stack_table`, `rq_list[2].next`; empty for offset 0 of a non-struct.
    pub path: String,
    /// Type of the innermost member.
    pub type_die: Option<u64>,
    /// Bytes past the start of that member (0 = exactly at it).
    pub remainder: u64,
}

struct Frame {
    function: String,
    inlined: bool,
    /// The DIE of this scope (for abstract-origin fill-in).
    die: (Arc<UnitData>, UnitOffset),
    vars: Vec<(Variable, Option<u64>)>,
}

impl DwarfIndex {
    fn global(u: &UnitData, off: UnitOffset) -> u64 {
        u.unit
            .header
            .offset()
            .as_debug_info_offset()
            .map(|o| (o.0 + off.0) as u64)
            .unwrap_or(off.0 as u64)
    }

    /// The unit and unit offset of a global `.debug_info` offset.
    fn die_at(&self, global: u64) -> Option<(Arc<UnitData>, UnitOffset)> {
        // Most references stay in a unit already parsed: look there before enumerating every
        // unit header (which touches pages all over vmlinux's 160 MB of .debug_info).
        if let Some(u) = self.parsed_unit_containing(global as usize) {
            let off = gimli::DebugInfoOffset(global as usize).to_unit_offset(&u.unit.header)?;
            return Some((u, off));
        }
        let start = self.unit_containing(global as usize)?;
        let u = self.unit(start).ok()?;
        let off = gimli::DebugInfoOffset(global as usize).to_unit_offset(&u.unit.header)?;
        Some((u, off))
    }

    fn attr_ref(
        &self,
        u: &Arc<UnitData>,
        v: AttributeValue<R>,
    ) -> Option<(Arc<UnitData>, UnitOffset)> {
        match v {
            AttributeValue::UnitRef(o) => Some((u.clone(), o)),
            AttributeValue::DebugInfoRef(o) => self.die_at(o.0 as u64),
            _ => None,
        }
    }

    /// An attribute, following `DW_AT_abstract_origin` / `DW_AT_specification`.
    fn attr_follow(
        &self,
        u: &Arc<UnitData>,
        off: UnitOffset,
        at: gimli::DwAt,
        depth: usize,
    ) -> Option<(Arc<UnitData>, AttributeValue<R>)> {
        if depth > 8 {
            return None;
        }
        let e = u.unit.entry(off).ok()?;
        if let Ok(Some(v)) = e.attr_value(at) {
            return Some((u.clone(), v));
        }
        for o in [gimli::DW_AT_abstract_origin, gimli::DW_AT_specification] {
            if let Ok(Some(v)) = e.attr_value(o) {
                if let Some((u2, off2)) = self.attr_ref(u, v) {
                    return self.attr_follow(&u2, off2, at, depth + 1);
                }
            }
        }
        None
    }

    fn string_attr(&self, u: &Arc<UnitData>, off: UnitOffset, at: gimli::DwAt) -> Option<String> {
        let (u2, v) = self.attr_follow(u, off, at, 0)?;
        let s = self.dwarf.attr_string(&u2.unit, v).ok()?;
        Some(String::from_utf8_lossy(s.slice()).into_owned())
    }

    fn type_of(&self, u: &Arc<UnitData>, off: UnitOffset) -> Option<u64> {
        let (u2, v) = self.attr_follow(u, off, gimli::DW_AT_type, 0)?;
        match v {
            AttributeValue::UnitRef(o) => Some(Self::global(&u2, o)),
            AttributeValue::DebugInfoRef(o) => Some(o.0 as u64),
            _ => None,
        }
    }

    fn variables(&self, addr: u64) -> Result<Vec<Scope>, Error> {
        for cu in self.units_for(addr) {
            let u = self.unit(cu)?;
            let mut frames: Vec<Frame> = Vec::new();
            {
                let mut tree = u.unit.entries_tree(None).map_err(gerr)?;
                let root = tree.root().map_err(gerr)?;
                self.collect(&u, root, addr, &mut frames, None, 0)?;
            }
            if frames.is_empty() {
                continue;
            }
            for f in &mut frames {
                self.fill_abstract(f);
            }
            return Ok(frames
                .into_iter()
                .rev()
                .map(|f| Scope {
                    function: f.function,
                    inlined: f.inlined,
                    vars: f.vars.into_iter().map(|v| v.0).collect(),
                })
                .collect());
        }
        Ok(Vec::new())
    }

    fn collect(
        &self,
        u: &Arc<UnitData>,
        node: gimli::EntriesTreeNode<'_, '_, '_, R>,
        addr: u64,
        frames: &mut Vec<Frame>,
        cur: Option<usize>,
        depth: usize,
    ) -> Result<(), Error> {
        if depth > 64 {
            return Ok(());
        }
        let mut children = node.children();
        while let Some(child) = children.next().map_err(gerr)? {
            let entry = child.entry();
            let off = entry.offset();
            match entry.tag() {
                gimli::DW_TAG_subprogram | gimli::DW_TAG_inlined_subroutine => {
                    if !self.contains(u, entry, addr)? {
                        continue;
                    }
                    let function = self
                        .name_of(u, entry, 0)
                        .unwrap_or_else(|| "??".to_string());
                    frames.push(Frame {
                        function,
                        inlined: entry.tag() == gimli::DW_TAG_inlined_subroutine,
                        die: (u.clone(), off),
                        vars: Vec::new(),
                    });
                    let idx = frames.len() - 1;
                    self.collect(u, child, addr, frames, Some(idx), depth + 1)?;
                }
                gimli::DW_TAG_lexical_block => {
                    let has_pc = entry
                        .attr_value(gimli::DW_AT_low_pc)
                        .ok()
                        .flatten()
                        .is_some()
                        || entry
                            .attr_value(gimli::DW_AT_ranges)
                            .ok()
                            .flatten()
                            .is_some();
                    // Folklore: GCC keeps lexical blocks whose code was optimized away, without
                    // any PC range (the `__flags`/`__ret_warn_on` of an inlined WARN_ON in
                    // `__list_add_valid`); like drgn, their variables are not in scope anywhere.
                    if !has_pc || !self.contains(u, entry, addr)? {
                        continue;
                    }
                    self.collect(u, child, addr, frames, cur, depth + 1)?;
                }
                gimli::DW_TAG_formal_parameter | gimli::DW_TAG_variable => {
                    let Some(i) = cur else { continue };
                    let v = self.variable(u, entry, addr);
                    let origin = match entry.attr_value(gimli::DW_AT_abstract_origin) {
                        Ok(Some(AttributeValue::UnitRef(o))) => Some(Self::global(u, o)),
                        Ok(Some(AttributeValue::DebugInfoRef(o))) => Some(o.0 as u64),
                        _ => None,
                    };
                    if let Some(v) = v {
                        frames[i].vars.push((v, origin));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn variable(
        &self,
        u: &Arc<UnitData>,
        entry: &gimli::DebuggingInformationEntry<'_, '_, R>,
        addr: u64,
    ) -> Option<Variable> {
        let off = entry.offset();
        let name = self.string_attr(u, off, gimli::DW_AT_name)?;
        // Folklore: file-scope statics declared inside a function (`static LIST_HEAD(x)`) have a
        // DW_OP_addr location and are not frame variables; we keep them (their location is a
        // fixed address, which `evaluate` handles), as drgn does.
        let type_die = self.type_of(u, off);
        let type_name = match type_die {
            Some(t) => self.type_name(t, 0),
            None => "void".to_string(),
        };
        let location = self.location(u, entry, addr);
        Some(Variable {
            name,
            is_param: entry.tag() == gimli::DW_TAG_formal_parameter,
            type_name,
            type_die,
            location,
        })
    }

    fn location(
        &self,
        u: &Arc<UnitData>,
        entry: &gimli::DebuggingInformationEntry<'_, '_, R>,
        addr: u64,
    ) -> Location {
        if let Ok(Some(v)) = entry.attr_value(gimli::DW_AT_const_value) {
            let c = match v {
                AttributeValue::Sdata(s) => Some(s as u64),
                AttributeValue::Udata(x) => Some(x),
                AttributeValue::Data1(x) => Some(x as u64),
                AttributeValue::Data2(x) => Some(x as u64),
                AttributeValue::Data4(x) => Some(x as u64),
                AttributeValue::Data8(x) => Some(x),
                _ => None,
            };
            return match c {
                Some(c) => {
                    let mut e = vec![gimli::constants::DW_OP_constu.0];
                    let mut c = c;
                    loop {
                        let b = (c & 0x7f) as u8;
                        c >>= 7;
                        if c == 0 {
                            e.push(b);
                            break;
                        }
                        e.push(b | 0x80);
                    }
                    e.push(gimli::constants::DW_OP_stack_value.0);
                    Location::Expr(e)
                }
                None => Location::Unavailable("constant of a non-integer form".into()),
            };
        }
        let v = match entry.attr_value(gimli::DW_AT_location) {
            Ok(Some(v)) => v,
            Ok(None) => return Location::OptimizedOut,
            Err(e) => return Location::Unavailable(e.to_string()),
        };
        if let AttributeValue::Exprloc(e) = v {
            return Location::Expr(e.0.slice().to_vec());
        }
        match self.dwarf.attr_locations(&u.unit, v) {
            Ok(Some(mut it)) => loop {
                match it.next() {
                    Ok(Some(le)) => {
                        if le.range.begin <= addr && addr < le.range.end {
                            return Location::Expr(le.data.0.slice().to_vec());
                        }
                    }
                    Ok(None) => return Location::OptimizedOut,
                    Err(e) => return Location::Unavailable(e.to_string()),
                }
            },
            Ok(None) => Location::Unavailable("unsupported location form".into()),
            Err(e) => Location::Unavailable(e.to_string()),
        }
    }

    /// Adds the abstract origin's direct parameters/variables that the concrete DIE lacks, as
    /// optimized out (see the module doc's folklore).
    fn fill_abstract(&self, f: &mut Frame) {
        let (u, off) = (&f.die.0, f.die.1);
        let Ok(e) = u.unit.entry(off) else { return };
        let Ok(Some(v)) = e.attr_value(gimli::DW_AT_abstract_origin) else {
            return;
        };
        let Some((au, aoff)) = self.attr_ref(u, v) else {
            return;
        };
        let Ok(mut tree) = au.unit.entries_tree(Some(aoff)) else {
            return;
        };
        let Ok(root) = tree.root() else { return };
        let mut children = root.children();
        let mut params = Vec::new();
        let mut locals = Vec::new();
        while let Ok(Some(c)) = children.next() {
            let ce = c.entry();
            let tag = ce.tag();
            if tag != gimli::DW_TAG_formal_parameter && tag != gimli::DW_TAG_variable {
                continue;
            }
            let g = Self::global(&au, ce.offset());
            if f.vars.iter().any(|(_, o)| *o == Some(g)) {
                continue;
            }
            let Some(name) = self.string_attr(&au, ce.offset(), gimli::DW_AT_name) else {
                continue;
            };
            // A static local (DW_OP_addr) in the abstract origin is still a real location.
            let location = match ce.attr_value(gimli::DW_AT_location) {
                Ok(Some(AttributeValue::Exprloc(e))) => Location::Expr(e.0.slice().to_vec()),
                _ => Location::OptimizedOut,
            };
            let type_die = self.type_of(&au, ce.offset());
            let var = Variable {
                name,
                is_param: tag == gimli::DW_TAG_formal_parameter,
                type_name: type_die
                    .map(|t| self.type_name(t, 0))
                    .unwrap_or_else(|| "void".into()),
                type_die,
                location,
            };
            if var.is_param {
                params.push((var, Some(g)));
            } else {
                locals.push((var, Some(g)));
            }
        }
        // Parameters keep declaration order in front of the locals.
        if !params.is_empty() {
            let n = f.vars.iter().take_while(|v| v.0.is_param).count();
            for (i, p) in params.into_iter().enumerate() {
                f.vars.insert((n + i).min(f.vars.len()), p);
            }
        }
        f.vars.extend(locals);
    }

    pub(crate) fn type_info(&self, die: u64) -> Option<TypeInfo> {
        let (u, off) = self.die_at(die)?;
        let e = u.unit.entry(off).ok()?;
        let kind = match e.tag() {
            gimli::DW_TAG_base_type => TypeKind::Base,
            gimli::DW_TAG_pointer_type | gimli::DW_TAG_reference_type => TypeKind::Pointer,
            gimli::DW_TAG_structure_type | gimli::DW_TAG_class_type => TypeKind::Struct,
            gimli::DW_TAG_union_type => TypeKind::Union,
            gimli::DW_TAG_enumeration_type => TypeKind::Enum,
            gimli::DW_TAG_typedef => TypeKind::Typedef,
            gimli::DW_TAG_const_type => TypeKind::Const,
            gimli::DW_TAG_volatile_type
            | gimli::DW_TAG_restrict_type
            | gimli::DW_TAG_atomic_type => TypeKind::Volatile,
            gimli::DW_TAG_array_type => TypeKind::Array,
            gimli::DW_TAG_subroutine_type => TypeKind::Function,
            gimli::DW_TAG_unspecified_type => TypeKind::Void,
            _ => TypeKind::Other,
        };
        let name = self.string_attr(&u, off, gimli::DW_AT_name);
        let target = match e.attr_value(gimli::DW_AT_type) {
            Ok(Some(AttributeValue::UnitRef(o))) => Some(Self::global(&u, o)),
            Ok(Some(AttributeValue::DebugInfoRef(o))) => Some(o.0 as u64),
            _ => None,
        };
        let mut size = e
            .attr_value(gimli::DW_AT_byte_size)
            .ok()
            .flatten()
            .and_then(|v| v.udata_value());
        if kind == TypeKind::Pointer && size.is_none() {
            size = Some(8);
        }
        let mut count = None;
        if kind == TypeKind::Array {
            if let Ok(mut tree) = u.unit.entries_tree(Some(off)) {
                if let Ok(root) = tree.root() {
                    let mut ch = root.children();
                    if let Ok(Some(c)) = ch.next() {
                        let ce = c.entry();
                        count = ce
                            .attr_value(gimli::DW_AT_count)
                            .ok()
                            .flatten()
                            .and_then(|v| v.udata_value())
                            .or_else(|| {
                                ce.attr_value(gimli::DW_AT_upper_bound)
                                    .ok()
                                    .flatten()
                                    .and_then(|v| v.udata_value())
                                    .map(|x| x + 1)
                            });
                    }
                }
            }
        }
        // Folklore: a struct declared but not defined in this unit (`struct foo;`) has
        // DW_AT_declaration and no members; callers look the definition up by name elsewhere.
        Some(TypeInfo {
            die,
            kind,
            name,
            size,
            target,
            count,
        })
    }

    pub(crate) fn members(&self, die: u64) -> Vec<MemberInfo> {
        let mut out = Vec::new();
        let Some((u, off)) = self.die_at(die) else {
            return out;
        };
        let Ok(mut tree) = u.unit.entries_tree(Some(off)) else {
            return out;
        };
        let Ok(root) = tree.root() else { return out };
        let mut ch = root.children();
        while let Ok(Some(c)) = ch.next() {
            let ce = c.entry();
            if ce.tag() != gimli::DW_TAG_member {
                continue;
            }
            let name = self.string_attr(&u, ce.offset(), gimli::DW_AT_name);
            let offset = match ce.attr_value(gimli::DW_AT_data_member_location) {
                Ok(Some(v)) => v.udata_value().unwrap_or(0),
                _ => ce
                    .attr_value(gimli::DW_AT_data_bit_offset)
                    .ok()
                    .flatten()
                    .and_then(|v| v.udata_value())
                    .map(|b| b / 8)
                    .unwrap_or(0),
            };
            let type_die = self.type_of(&u, ce.offset());
            out.push(MemberInfo {
                name,
                offset,
                type_die,
            });
        }
        out
    }

    pub(crate) fn type_name(&self, die: u64, depth: usize) -> String {
        if depth > 16 {
            return "...".into();
        }
        let Some(t) = self.type_info(die) else {
            return "?".into();
        };
        let sub = |d: Option<u64>| match d {
            Some(d) => self.type_name(d, depth + 1),
            None => "void".to_string(),
        };
        let named = |kw: &str| match &t.name {
            Some(n) => format!("{kw}{n}"),
            None => format!("{kw}<anonymous>"),
        };
        match t.kind {
            TypeKind::Base | TypeKind::Typedef | TypeKind::Void => {
                t.name.clone().unwrap_or_else(|| "?".into())
            }
            TypeKind::Struct => named("struct "),
            TypeKind::Union => named("union "),
            TypeKind::Enum => named("enum "),
            TypeKind::Pointer => {
                let inner = sub(t.target);
                if inner.ends_with('*') {
                    format!("{inner}*")
                } else {
                    format!("{inner} *")
                }
            }
            TypeKind::Const => format!("const {}", sub(t.target)),
            TypeKind::Volatile => format!("volatile {}", sub(t.target)),
            TypeKind::Array => match t.count {
                Some(n) => format!("{} [{n}]", sub(t.target)),
                None => format!("{} []", sub(t.target)),
            },
            TypeKind::Function => format!("{} (...)", sub(t.target)),
            TypeKind::Other => "?".into(),
        }
    }
}

impl DwarfIndex {
    /// Static/global variables with a fixed address (`DW_OP_addr`), found by scanning every unit:
    /// (address, name, type DIE). Only used for small binaries (modules).
    fn static_variables(&self) -> Vec<(u64, String, Option<u64>)> {
        let mut out = Vec::new();
        let mut units = self.dwarf.units();
        while let Ok(Some(h)) = units.next() {
            let Some(start) = h.offset().as_debug_info_offset() else {
                continue;
            };
            let Ok(u) = self.unit(start.0) else { continue };
            let mut entries = u.unit.entries();
            while let Ok(Some((_, e))) = entries.next_dfs() {
                if e.tag() != gimli::DW_TAG_variable {
                    continue;
                }
                let Ok(Some(AttributeValue::Exprloc(ex))) = e.attr_value(gimli::DW_AT_location)
                else {
                    continue;
                };
                let b = ex.0.slice();
                // DW_OP_addr <8 bytes>
                if b.len() != 9 || b[0] != gimli::constants::DW_OP_addr.0 {
                    continue;
                }
                let mut a = [0u8; 8];
                a.copy_from_slice(&b[1..9]);
                let addr = u64::from_le_bytes(a);
                let off = e.offset();
                let Some(name) = self.string_attr(&u, off, gimli::DW_AT_name) else {
                    continue;
                };
                out.push((addr, name, self.type_of(&u, off)));
            }
        }
        out.sort_by_key(|x| x.0);
        out
    }
}

impl Binary {
    /// Scopes and their variables at a link-time address (see [`Scope`]). Empty when the binary
    /// has no DWARF or no function covers the address.
    pub fn variables_at(&self, addr: u64) -> Result<Vec<Scope>, Error> {
        if !self.has_dwarf() {
            return Ok(Vec::new());
        }
        self.dwarf_index()?.variables(addr)
    }

    /// The static or global variable containing `addr` (from `DW_OP_addr` locations): (name,
    /// type DIE, offset into it). Scans every unit once, so only for binaries with less than
    /// 64 MiB of `.debug_info` (modules); `None` for vmlinux.
    pub fn static_variable_at(&self, addr: u64) -> Option<(String, Option<u64>, u64)> {
        if self.debug_section(".debug_info").len() > 64 << 20 {
            return None;
        }
        let d = self.dwarf_index().ok()?;
        let vars = d.statics.get_or_init(|| d.static_variables());
        let n = vars.partition_point(|v| v.0 <= addr);
        for v in vars[..n].iter().rev().take(16) {
            let size =
                v.2.and_then(|t| self.strip_type(t))
                    .and_then(|t| self.sizeof(&t))
                    .unwrap_or(1);
            if addr < v.0 + size.max(1) {
                return Some((v.1.clone(), v.2, addr - v.0));
            }
        }
        None
    }

    /// A type DIE by global `.debug_info` offset.
    pub fn type_info(&self, die: u64) -> Option<TypeInfo> {
        self.dwarf_index().ok()?.type_info(die)
    }

    /// Members of a struct/union DIE, in declaration order.
    pub fn type_members(&self, die: u64) -> Vec<MemberInfo> {
        match self.dwarf_index() {
            Ok(d) => d.members(die),
            Err(_) => Vec::new(),
        }
    }

    /// The C spelling of a type DIE.
    pub fn type_name(&self, die: u64) -> String {
        match self.dwarf_index() {
            Ok(d) => d.type_name(die, 0),
            Err(_) => "?".into(),
        }
    }

    /// Skips typedefs and qualifiers.
    pub fn strip_type(&self, mut die: u64) -> Option<TypeInfo> {
        for _ in 0..16 {
            let t = self.type_info(die)?;
            match t.kind {
                TypeKind::Typedef | TypeKind::Const | TypeKind::Volatile => die = t.target?,
                _ => return Some(t),
            }
        }
        None
    }

    /// For a pointer type (typedefs skipped), the pointee, typedefs skipped.
    pub fn pointee(&self, die: u64) -> Option<TypeInfo> {
        let t = self.strip_type(die)?;
        if t.kind != TypeKind::Pointer {
            return None;
        }
        self.strip_type(t.target?)
    }

    /// The member path at `offset` bytes into the struct/union/array `die`, descending through
    /// nested structs and arrays: `tables.stack_table`, `kcqs[64].lock`. `None` when the offset is
    /// beyond the type or the type has no members.
    pub fn member_path(&self, die: u64, offset: u64) -> Option<MemberPath> {
        let mut path = String::new();
        let mut cur = die;
        let mut off = offset;
        let mut last_type = None;
        for _ in 0..16 {
            let t = self.strip_type(cur)?;
            match t.kind {
                TypeKind::Struct | TypeKind::Union => {
                    if let Some(sz) = t.size {
                        if off >= sz {
                            break;
                        }
                    }
                    let ms = self.type_members(t.die);
                    // The last member starting at or before `off` that covers it (unions: first).
                    let mut pick = None;
                    for m in &ms {
                        if m.offset > off {
                            continue;
                        }
                        let msize = m
                            .type_die
                            .and_then(|d| self.strip_type(d))
                            .and_then(|t| self.sizeof(&t));
                        let covers = match msize {
                            Some(s) => off < m.offset + s.max(1),
                            None => true,
                        };
                        if covers {
                            pick = Some(m.clone());
                            if t.kind == TypeKind::Union {
                                break;
                            }
                        }
                    }
                    let Some(m) = pick else { break };
                    if let Some(n) = &m.name {
                        if !path.is_empty() {
                            path.push('.');
                        }
                        path.push_str(n);
                    }
                    off -= m.offset;
                    last_type = m.type_die;
                    match m.type_die {
                        Some(d) => cur = d,
                        None => break,
                    }
                    if off == 0 {
                        // Stop at a scalar or pointer member; go on into a struct at offset 0
                        // only if it is the first member of something (`lock.rlock` for a
                        // spinlock), to name the exact field touched.
                        let inner = self.strip_type(cur)?;
                        if !matches!(
                            inner.kind,
                            TypeKind::Struct | TypeKind::Union | TypeKind::Array
                        ) {
                            break;
                        }
                    }
                }
                TypeKind::Array => {
                    let el = self.strip_type(t.target?)?;
                    let es = self.sizeof(&el)?.max(1);
                    let i = off / es;
                    path.push_str(&format!("[{i}]"));
                    off -= i * es;
                    cur = el.die;
                    last_type = Some(el.die);
                    if off == 0 && !matches!(el.kind, TypeKind::Struct | TypeKind::Union) {
                        break;
                    }
                }
                _ => break,
            }
        }
        if path.is_empty() {
            return None;
        }
        Some(MemberPath {
            path,
            type_die: last_type,
            remainder: off,
        })
    }

    /// Byte size of a (stripped) type: its `DW_AT_byte_size`, or element size × count.
    pub fn sizeof(&self, t: &TypeInfo) -> Option<u64> {
        if let Some(s) = t.size {
            return Some(s);
        }
        match t.kind {
            TypeKind::Array => {
                let el = self.strip_type(t.target?)?;
                Some(self.sizeof(&el)? * t.count?)
            }
            TypeKind::Typedef | TypeKind::Const | TypeKind::Volatile => {
                let s = self.strip_type(t.die)?;
                self.sizeof(&s)
            }
            _ => None,
        }
    }
}

impl Symbolizer {
    /// Scopes and variables at a link-time address of vmlinux (`module` = `None`) or of a module
    /// (our layout of its sections, as in [`crate::Resolution::address`]).
    pub fn variables_at(
        &mut self,
        module: Option<&str>,
        link_addr: u64,
    ) -> Result<Vec<Scope>, Error> {
        let bin = match module {
            Some(m) => self.module(crate::split_module(m).0),
            None => self.vmlinux.clone(),
        };
        match bin {
            Some(b) => b.variables_at(link_addr),
            None => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backward_branches_end_with_an_error() {
        use gimli::constants::*;
        let regs = |_: u16| Some(0u64);
        let mem = |_: u64, n: usize| Some(vec![0u8; n]);
        // DW_OP_lit1; DW_OP_dup; DW_OP_skip -3: pushes forever without the iteration bound.
        let grows = [DW_OP_lit1.0, DW_OP_dup.0, DW_OP_skip.0, 0xfd, 0xff];
        assert!(evaluate(&grows, &regs, &mem, None).is_err());
        // DW_OP_skip -3 onto itself: spins forever without it.
        let spins = [DW_OP_skip.0, 0xfd, 0xff];
        assert!(evaluate(&spins, &regs, &mem, None).is_err());
        // An ordinary expression still evaluates.
        let reg = [DW_OP_reg5.0];
        assert_eq!(
            evaluate(&reg, &regs, &mem, None).unwrap(),
            Value::Register(5)
        );
    }

    use super::*;

    #[test]
    fn register_forms() {
        // DW_OP_reg4 (rsi)
        assert_eq!(Location::Expr(vec![0x54]).register(), Some(4));
        // DW_OP_breg5 -8; DW_OP_stack_value
        let l = Location::Expr(vec![0x75, 0x78, 0x9f]);
        assert_eq!(l.register_plus(), Some((5, -8)));
        assert_eq!(l.register(), None);
        // DW_OP_fbreg -16 is memory, not a register.
        assert_eq!(Location::Expr(vec![0x91, 0x70]).register(), None);
        assert_eq!(Location::Expr(vec![0x54]).describe(), "%rsi");
        assert_eq!(x86_64_register_number("%esi"), Some(4));
        assert_eq!(x86_64_register_number("r10d"), Some(10));
        assert_eq!(x86_64_register_number("rip"), Some(16));
    }

    #[test]
    fn evaluate_basic() {
        let regs = |r: u16| if r == 4 { Some(0x1000) } else { None };
        let mem = |a: u64, n: usize| {
            if a == 0x2000 - 16 {
                Some(vec![0x42; n])
            } else {
                None
            }
        };
        assert_eq!(
            evaluate(&[0x54], &regs, &mem, None).unwrap(),
            Value::Register(4)
        );
        // breg4 +8; stack_value
        assert_eq!(
            evaluate(&[0x74, 0x08, 0x9f], &regs, &mem, None).unwrap(),
            Value::Constant(0x1008)
        );
        // DW_OP_call_frame_cfa; DW_OP_consts -16 ... simplest: fbreg -16 with cfa 0x2000
        assert_eq!(
            evaluate(&[0x91, 0x70], &regs, &mem, Some(0x2000)).unwrap(),
            Value::Memory(0x2000 - 16)
        );
        // deref of memory: fbreg -16; deref; stack_value
        assert_eq!(
            evaluate(&[0x91, 0x70, 0x06, 0x9f], &regs, &mem, Some(0x2000)).unwrap(),
            Value::Constant(0x4242424242424242)
        );
        // A missing register is Unknown, not an error.
        assert!(matches!(
            evaluate(&[0x70, 0x00], &regs, &mem, None).unwrap(),
            Value::Unknown(_)
        ));
        // Garbage never panics.
        let _ = evaluate(&[0xff, 0x03], &regs, &mem, None);
    }
}
