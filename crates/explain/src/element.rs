//! Array elements: when a bad pointer is `&base[i]` (+ a member offset), which element it is.
//!
//! The derivation ([`Origin`]) of the faulting register names the array (`khd->kcqs`) and the
//! element type; this evaluates the derivation's values — registers of the oops (the faulting
//! frame's, and callee-saved ones of callers that nothing below them wrote), static variables and,
//! with a vmcore, memory — to get the array's base, hence the index `(address - base) / size`,
//! and a bound: a DWARF array length, or an integer member beside the array pointer named after
//! it (`nr_kcqs` for `kcqs`, `..._count`, `num_...`), read from the vmcore. The element itself
//! need not be mapped: only its address is used.

use crate::insn::CALLEE_SAVED;
use crate::origin::{FnCode, Origin};
use kmortem_kernel::Memory;
use kmortem_oops::Report;
use kmortem_symbols::vars::{x86_64_register_name, TypeKind};

/// Where values come from.
pub struct Env<'a> {
    pub report: &'a Report,
    /// Per frame level: the function's code and the PC in it (the fault, then each call).
    pub levels: Vec<(&'a FnCode, u64)>,
    pub program: Option<&'a kmortem_kernel::Program>,
}

impl Env<'_> {
    /// The value `reg` had at `pc` of frame `level`, if the oops's registers still hold it.
    pub fn reg(&self, level: usize, pc: u64, reg: u16) -> Option<u64> {
        let &(code, at) = self.levels.get(level)?;
        if level > 0 && !CALLEE_SAVED.contains(&reg) {
            return None;
        }
        if pc > at || code.writes_between(pc, at, reg) {
            return None;
        }
        for &(c, p) in &self.levels[..level] {
            if c.writes_before(p, reg) {
                return None;
            }
        }
        self.report
            .registers
            .get(x86_64_register_name(reg)?)
            .copied()
    }

    fn read(&self, addr: u64, size: u64) -> Option<u64> {
        let p = self.program?;
        let mut b = [0u8; 8];
        let n = size.clamp(1, 8) as usize;
        p.read(addr, &mut b[..n]).ok()?;
        Some(u64::from_le_bytes(b))
    }

    /// The run-time address of a static (needs the vmcore's symbol tables).
    fn static_addr(&self, module: Option<&str>, name: &str) -> Option<u64> {
        let p = self.program?;
        match module {
            Some(m) => p.module_symbol(&format!("{m}:{name}")).map(|s| s.addr),
            None => p.symbol(name),
        }
    }

    /// The value of a derivation, when the registers and memory at hand give it.
    pub fn value(&self, o: &Origin) -> Option<u64> {
        match o {
            Origin::Var {
                reg,
                plus,
                level,
                pc,
                from,
                ..
            } => self
                .reg(*level, *pc, *reg)
                .map(|v| v.wrapping_add(*plus as u64))
                .or_else(|| self.value(from.as_deref()?)),
            Origin::Static { addr_of, elf, .. } => {
                let (m, name, off) = elf.as_ref()?;
                let a = self.static_addr(m.as_deref(), name)?.wrapping_add(*off);
                if *addr_of {
                    Some(a)
                } else {
                    self.read(a, 8)
                }
            }
            Origin::Load { base, offset, .. } => {
                let b = self.value(base)?;
                self.read(b.wrapping_add(*offset), 8)
            }
            Origin::AddrOf { base, offset, .. } => Some(self.value(base)?.wrapping_add(*offset)),
            Origin::Piece { reg, level, pc, .. } => self.reg(*level, *pc, *reg),
            Origin::Element { .. } => None,
        }
    }
}

/// The element a pointer is (or points into).
#[derive(Debug, Clone)]
pub struct Element {
    /// The array's C expression: `khd->kcqs`.
    pub array: String,
    pub element_size: u64,
    /// The element's address.
    pub address: u64,
    /// The array's first element, when known.
    pub base: Option<u64>,
    pub index: Option<u64>,
    /// Bytes past the element's start (a member of it).
    pub remainder: u64,
    /// The index's C expression, when a variable holds it (`slot`).
    pub index_expr: Option<String>,
    /// The number of elements and where it comes from (`khd->nr_kcqs`, `DWARF: kmlab_hits[4]`).
    pub bound: Option<(u64, String)>,
    /// How the base and the bound were read.
    pub evidence: Vec<String>,
}

impl Element {
    /// `&khd->kcqs[64]` (or `&khd->kcqs[…]`).
    pub fn expr(&self) -> String {
        match self.index {
            Some(i) => format!("&{}[{i}]", self.array),
            None => format!("&{}[…]", self.array),
        }
    }

    pub fn out_of_bounds(&self) -> Option<bool> {
        Some(self.index? >= self.bound.as_ref()?.0)
    }
}

/// The element the value `v` of derivation `o` is in, following renames (`lock` = `kcq`) and
/// member addresses (`&kcq->lock`) down to an indexed array.
pub fn find(env: &Env<'_>, o: &Origin, v: u64) -> Option<Element> {
    match o {
        Origin::Var { from, .. } => find(env, from.as_deref()?, v),
        Origin::AddrOf { base, offset, .. } => find(env, base, v.wrapping_sub(*offset)),
        Origin::Element {
            base,
            pointee,
            index_reg,
            index_name,
            ..
        } => {
            let (bin, t) = pointee.as_ref()?;
            let mut ti = bin.strip_type(*t)?;
            let mut bound = None;
            // `&arr[i]` of a static array: the element is the array's target type, and its
            // length is in the DWARF.
            if ti.kind == TypeKind::Array {
                if let Some(c) = ti.count.filter(|&c| c > 0) {
                    bound = Some((
                        c,
                        format!("DWARF: {}[{c}]", base.expr().trim_start_matches('&')),
                    ));
                }
                ti = bin.strip_type(ti.target?)?;
            }
            let es = bin.sizeof(&ti).filter(|&s| s > 0)?;
            let mut evidence = Vec::new();
            let b = env.value(base);
            if let Some(b) = b {
                evidence.push(format!("`{}` = {b:#x}", base.expr()));
            }
            if bound.is_none() {
                bound = bound_member(env, base, &mut evidence);
            }
            // A register holding a multiple of the index says it directly (and is the only way
            // for a per-CPU array, whose element address has the CPU's offset added).
            let from_reg = index_reg.and_then(|(r, level, pc, mult)| {
                let x = env.reg(level, pc, r)?.wrapping_mul(mult);
                (x % es == 0).then(|| {
                    let i = x / es;
                    evidence.push(format!(
                        "%{} = {:#x} (oops registers): index {i} ({}-byte elements)",
                        x86_64_register_name(r).unwrap_or("?"),
                        env.reg(level, pc, r).unwrap_or(0),
                        es
                    ));
                    i
                })
            });
            let (index, remainder) = match (from_reg, b) {
                (Some(i), _) => (Some(i), 0),
                (None, Some(b)) if v >= b => (Some((v - b) / es), (v - b) % es),
                _ => (None, 0),
            };
            if let (Some(i), Some(b), None) = (index, b, from_reg) {
                evidence.push(format!(
                    "element address {v:#x} - array start {b:#x} = {:#x} = {i} × {es}{}",
                    v - b,
                    if remainder > 0 {
                        format!(" + {remainder}")
                    } else {
                        String::new()
                    }
                ));
            }
            Some(Element {
                array: base.expr().trim_start_matches('&').to_string(),
                element_size: es,
                address: v,
                base: b,
                index,
                remainder,
                index_expr: index_name.clone(),
                bound,
                evidence,
            })
        }
        _ => None,
    }
}

/// An integer member beside an array pointer that counts its elements: for `khd->kcqs`,
/// `khd->nr_kcqs` (or `n_kcqs`, `num_kcqs`, `kcqs_count`, `nr_kcq`, ...), read from the vmcore.
fn bound_member(env: &Env<'_>, base: &Origin, evidence: &mut Vec<String>) -> Option<(u64, String)> {
    let Origin::Load {
        base: obj, path, ..
    } = base
    else {
        return None;
    };
    let (bin, st) = obj.pointee()?;
    let leaf = path.rsplit('.').next()?;
    let stem = leaf.strip_suffix('s').unwrap_or(leaf);
    if stem.len() < 2 {
        return None;
    }
    let m = bin.type_members(*st).into_iter().find(|m| {
        let Some(n) = m.name.as_deref() else {
            return false;
        };
        let counted = n.contains(stem)
            && n != leaf
            && (n.starts_with("nr")
                || n.starts_with("num")
                || n.starts_with("n_")
                || n.ends_with("count")
                || n.ends_with("cnt")
                || n.ends_with("len")
                || n.ends_with("num"));
        counted
            && m.type_die
                .and_then(|t| bin.strip_type(t))
                .is_some_and(|t| matches!(t.kind, TypeKind::Base | TypeKind::Enum))
    })?;
    let size = m
        .type_die
        .and_then(|t| bin.strip_type(t))
        .and_then(|t| bin.sizeof(&t))
        .unwrap_or(4);
    let o = env.value(obj)?;
    let v = env.read(o.wrapping_add(m.offset), size)?;
    let v = if size < 8 {
        v & ((1u64 << (size * 8)) - 1)
    } else {
        v
    };
    let name = format!("{}->{}", obj.expr(), m.name.as_deref().unwrap_or("?"));
    evidence.push(format!(
        "vmcore: `{name}` = {v} (read at {:#x})",
        o.wrapping_add(m.offset)
    ));
    Some((v, name))
}
