//! Where a register's value came from, in source terms: the DWARF variable living in it at a PC,
//! or, walking back a few instructions in the same basic block, the member load, address
//! computation or register copy that produced it — across one call, when the register is an
//! argument the function never overwrote.
//!
//! Conservative by construction: a definition is only followed when no branch lands between it
//! and the PC (so it is the only definition reaching the PC), and a call clobbers every
//! caller-saved register.

use crate::insn::{self, Insn, ARG_REGS};
use kmortem_symbols::vars::{x86_64_register_name, TypeKind};
use kmortem_symbols::Binary;
use std::sync::Arc;

/// The code of one function in one binary, decoded from its symbol start.
pub struct FnCode {
    pub bin: Arc<Binary>,
    pub module: Option<String>,
    pub name: String,
    pub start: u64,
    pub insns: Vec<Insn>,
    branches: Vec<(u64, u64)>,
    /// `variables_at` results by PC (the DIE walk of a vmlinux unit is not free).
    scopes: std::cell::RefCell<std::collections::HashMap<u64, Vec<kmortem_symbols::Scope>>>,
}

impl FnCode {
    /// Decodes the function containing `addr` (a link-time address of `bin`).
    pub fn at(bin: &Arc<Binary>, module: Option<&str>, addr: u64) -> Option<FnCode> {
        let (i, sym) = bin.symbol_at(addr)?;
        let size = bin.kallsyms_size(i).max(sym.size);
        if size == 0 || size > 1 << 20 {
            return None;
        }
        let bytes = bin.bytes_at(sym.address, size as usize)?;
        let insns = insn::decode_all(bytes, sym.address);
        let branches = insn::branch_targets(&insns);
        Some(FnCode {
            bin: bin.clone(),
            module: module.map(str::to_string),
            name: sym.name.to_string(),
            start: sym.address,
            insns,
            branches,
            scopes: Default::default(),
        })
    }

    /// Scopes and variables at `pc` (cached).
    pub fn variables_at(&self, pc: u64) -> Vec<kmortem_symbols::Scope> {
        if let Some(v) = self.scopes.borrow().get(&pc) {
            return v.clone();
        }
        let v = self.bin.variables_at(pc).unwrap_or_default();
        self.scopes.borrow_mut().insert(pc, v.clone());
        v
    }

    pub fn insn_at(&self, ip: u64) -> Option<&Insn> {
        let i = self.insns.partition_point(|x| x.ip() < ip);
        self.insns.get(i).filter(|x| x.ip() == ip)
    }

    /// The instruction ending at `ret` (the call before a return address).
    pub fn insn_ending_at(&self, ret: u64) -> Option<&Insn> {
        self.insns.iter().find(|x| x.end() == ret)
    }

    /// Registers an instruction of this function writes. Folklore: with ftrace
    /// (CONFIG_FUNCTION_TRACER, `-mfentry` since v4.2 on x86_64) every traceable function starts
    /// with `call __fentry__` (a 5-byte nop when tracing is off), which preserves all registers;
    /// it is not a call that clobbers the arguments. With IBT (CONFIG_X86_KERNEL_IBT, since 5.18,
    /// on in Debian's 6.12) an `endbr64` comes first and the call is at +4. Pinned by the
    /// `estats_null` lab test (the argument %rsi is followed into the caller across it) and, for
    /// the `endbr64` form, by `wrong_cpu_index` on 6.12 (`lock` of `_raw_spin_lock` followed to
    /// `kcq` in the caller).
    pub fn written(&self, x: &Insn) -> Vec<u16> {
        if x.ip() == self.entry_call_site() && insn::is_call(&x.ins) && x.ins.len() == 5 {
            return Vec::new();
        }
        insn::written(&x.ins)
    }

    /// Where ftrace's entry call sits: the function's start, or after its `endbr64`.
    fn entry_call_site(&self) -> u64 {
        match self.insns.first() {
            Some(x) if x.ip() == self.start && x.ins.mnemonic() == iced_x86::Mnemonic::Endbr64 => {
                x.end()
            }
            _ => self.start,
        }
    }

    /// Whether any instruction in [start, pc) writes `reg`.
    pub fn writes_before(&self, pc: u64, reg: u16) -> bool {
        self.insns
            .iter()
            .take_while(|x| x.ip() < pc)
            .any(|x| self.written(x).contains(&reg))
    }

    /// The last instruction before `pc` writing `reg`, if it is the only definition reaching `pc`
    /// (no branch target in (def, pc]).
    fn reaching_def(&self, pc: u64, reg: u16) -> Option<&Insn> {
        let def = self
            .insns
            .iter()
            .take_while(|x| x.ip() < pc)
            .filter(|x| self.written(x).contains(&reg))
            .last()?;
        let joins = self.branches.iter().any(|&(_, t)| t > def.ip() && t <= pc);
        if joins {
            return None;
        }
        // No unconditional transfer between def and pc either (pc would then be reached by a jump).
        let jumps = self.insns.iter().any(|x| {
            x.ip() > def.ip()
                && x.ip() < pc
                && matches!(
                    x.ins.flow_control(),
                    iced_x86::FlowControl::UnconditionalBranch
                        | iced_x86::FlowControl::Return
                        | iced_x86::FlowControl::IndirectBranch
                )
        });
        if jumps {
            return None;
        }
        Some(def)
    }

    /// Whether an instruction in [from, to) writes `reg`, or a branch lands in (from, to) (a
    /// value that lived in `reg` at `from` may not be the one it holds at `to`).
    pub fn writes_between(&self, from: u64, to: u64, reg: u16) -> bool {
        self.insns
            .iter()
            .filter(|x| x.ip() >= from && x.ip() < to)
            .any(|x| self.written(x).contains(&reg))
            || self.branches.iter().any(|&(_, t)| t > from && t < to)
    }

    /// Whether `reg` at `pc` still holds the value it had at function entry.
    pub fn unchanged_since_entry(&self, pc: u64, reg: u16) -> bool {
        !self.writes_before(pc, reg) && !self.branches.iter().any(|&(_, t)| t < self.start)
    }

    /// The symbol (static/global) a RIP-relative operand of `x` names, in a `.ko` through its
    /// code relocation, in vmlinux through the operand's address.
    fn rip_target(&self, x: &Insn) -> Option<u64> {
        if self.bin.kind == kmortem_symbols::ElfKind::Relocatable {
            let site = x.ip() + x.ins.len() as u64;
            // The displacement's field precedes any immediate: try each possible site.
            for back in 4..=8u64 {
                let s = site.checked_sub(back)?;
                if let Some(sa) = self.bin.code_relocation(s) {
                    return Some(x.end().wrapping_add(sa).wrapping_sub(s));
                }
            }
            None
        } else {
            Some(x.ins.ip_rel_memory_address())
        }
    }
}

/// The source-level origin of a value.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A DWARF variable living in the register.
    Var {
        name: String,
        function: String,
        inlined: bool,
        type_name: String,
        /// The variable's pointee type (typedefs stripped), for member resolution.
        pointee: Option<(Arc<Binary>, u64)>,
        reg: u16,
        /// The variable is `reg + plus` (`DW_OP_breg5 8; DW_OP_stack_value`: `n` = `&p->hnode`
        /// while `p` is in %rdi); 0 when it is the register's value itself.
        plus: i64,
        /// The frame it was found in: 0 for the faulting function, 1 for its caller, ...
        level: usize,
        /// The PC (in that frame's function) where it lives in `reg`.
        pc: u64,
        /// How the variable got its value, when the instructions before show it.
        from: Option<Box<Origin>>,
    },
    /// A static or global variable (`&name` is the value when `addr_of`).
    Static {
        name: String,
        member: Option<String>,
        pointee: Option<(Arc<Binary>, u64)>,
        /// The address is the value (`&name`), not the memory there.
        addr_of: bool,
        /// The ELF symbol (`khd.2`: GCC's name of a function-local static) and the offset in it,
        /// with the module that holds it, for finding its run-time address in a vmcore.
        elf: Option<(Option<String>, String, u64)>,
    },
    /// `base->path`, loaded from memory.
    Load {
        base: Box<Origin>,
        path: String,
        /// Byte offset of `path` in the base's pointee.
        offset: u64,
        pointee: Option<(Arc<Binary>, u64)>,
        /// `func+0xoff` of the load.
        at: String,
        text: String,
    },
    /// `&base->path`.
    AddrOf {
        base: Box<Origin>,
        path: String,
        offset: u64,
        pointee: Option<(Arc<Binary>, u64)>,
    },
    /// `&base[i]`.
    Element {
        base: Box<Origin>,
        pointee: Option<(Arc<Binary>, u64)>,
        text: String,
        /// Where the index is, when a register holds a multiple of it: (register, frame level,
        /// PC, byte multiplier: index = value × multiplier / element size).
        index_reg: Option<(u16, usize, u64, u64)>,
        /// The DWARF variable in that register (`slot`).
        index_name: Option<String>,
    },
    /// `param->path`: a member of a parameter that GCC's IPA-SRA dropped from an `.isra` clone,
    /// passed by value in `reg` instead. Inferred from the types: the only pointer member of
    /// `*param` whose pointee has members at every offset the clone uses `reg` at.
    Piece {
        param: String,
        function: String,
        /// The dropped parameter's type.
        type_name: String,
        path: String,
        offset: u64,
        /// The member's pointee type.
        pointee: Option<(Arc<Binary>, u64)>,
        /// The member's type (`struct kmlab_conn *`).
        member_type: String,
        reg: u16,
        /// The offsets `reg` is used at, up to the PC.
        uses: Vec<i64>,
        /// The frame it was found in (0: the faulting function) and the PC there.
        level: usize,
        pc: u64,
        /// What the caller passed, when its instructions show it (`f->cookie`).
        from: Option<Box<Origin>>,
    },
}

impl Origin {
    /// The short C expression: `stats`, `sk->estats`, `&khd->kcqs[…]`.
    pub fn expr(&self) -> String {
        match self {
            Origin::Var { name, .. } => name.clone(),
            Origin::Static { name, member, .. } => match member {
                Some(m) => format!("{name}.{m}"),
                None => name.clone(),
            },
            Origin::Load { base, path, .. } => format!("{}->{path}", base.expr_as_base()),
            Origin::AddrOf { base, path, .. } => format!("&{}->{path}", base.expr_as_base()),
            Origin::Element { base, .. } => {
                format!("&{}[…]", base.expr().trim_start_matches('&'))
            }
            Origin::Piece { param, path, .. } => format!("{param}->{path}"),
        }
    }

    fn expr_as_base(&self) -> String {
        match self {
            Origin::AddrOf { .. } | Origin::Element { .. } => format!("({})", self.expr()),
            _ => self.expr(),
        }
    }

    /// `stats` → `stats (= sk->estats)` when the derivation is known.
    pub fn explained(&self) -> String {
        match self {
            Origin::Var { from: Some(f), .. } | Origin::Piece { from: Some(f), .. } => {
                format!("`{}` (= `{}`)", self.expr(), f.expr())
            }
            _ => format!("`{}`", self.expr()),
        }
    }

    /// Every known derivation along the way: `next = prev->next`, `prev = rq.tmp_alone_branch`.
    pub fn chain(&self, out: &mut Vec<String>) {
        match self {
            Origin::Var {
                name,
                from,
                pointee,
                ..
            } => {
                if let Some(f) = from {
                    // `lock` = `kcq` where `lock` is a `raw_spinlock_t *` and `kcq` a struct
                    // pointer: the member at offset 0 of that type is what was passed.
                    let member = match (pointee, f.pointee()) {
                        (Some((b, want)), Some((fb, have))) => {
                            zero_member_path(fb, *have, &b.type_name(*want))
                        }
                        _ => None,
                    };
                    match member {
                        Some(p) => out.push(format!("`{name}` = `&{}->{p}`", f.expr_as_base())),
                        None => out.push(format!("`{name}` = `{}`", f.expr())),
                    }
                    f.chain(out);
                }
            }
            Origin::Load { base, .. }
            | Origin::AddrOf { base, .. }
            | Origin::Element { base, .. } => base.chain(out),
            Origin::Piece { from: Some(f), .. } => {
                out.push(format!("`{}` = `{}`", self.expr(), f.expr()));
                f.chain(out);
            }
            Origin::Static { .. } | Origin::Piece { .. } => {}
        }
    }

    /// The first array element along the derivation: (array expression, element size).
    pub fn element(&self) -> Option<(String, u64)> {
        match self {
            Origin::Element { base, pointee, .. } => {
                let (b, t) = pointee.as_ref()?;
                let ti = b.type_info(*t)?;
                Some((base.expr(), b.sizeof(&ti)?))
            }
            Origin::Var { from, .. } => from.as_ref()?.element(),
            Origin::Load { base, .. } | Origin::AddrOf { base, .. } => base.element(),
            Origin::Static { .. } | Origin::Piece { .. } => None,
        }
    }

    /// The innermost variable (its register), for reading its value.
    pub fn register(&self) -> Option<u16> {
        match self {
            Origin::Var { reg, plus: 0, .. } => Some(*reg),
            _ => None,
        }
    }

    pub fn pointee(&self) -> Option<&(Arc<Binary>, u64)> {
        match self {
            Origin::Var { pointee, .. }
            | Origin::Static { pointee, .. }
            | Origin::Load { pointee, .. }
            | Origin::AddrOf { pointee, .. }
            | Origin::Element { pointee, .. }
            | Origin::Piece { pointee, .. } => pointee.as_ref(),
        }
    }

    /// Evidence lines, outermost derivation last.
    pub fn evidence(&self, out: &mut Vec<String>) {
        match self {
            Origin::Var {
                name,
                function,
                inlined,
                type_name,
                reg,
                plus,
                from,
                ..
            } => {
                out.push(format!(
                    "DWARF: `{name}` ({type_name}) {} here, in {function}{}",
                    match *plus {
                        0 => format!("lives in %{}", x86_64_register_name(*reg).unwrap_or("?")),
                        k => format!("is %{} + {k:#x}", x86_64_register_name(*reg).unwrap_or("?")),
                    },
                    if *inlined { " (inlined)" } else { "" }
                ));
                if let Some(f) = from {
                    f.evidence(out);
                }
            }
            Origin::Load { base, at, text, .. } => {
                base.evidence(out);
                out.push(format!("{at}: `{text}` loads `{}`", self.expr()));
            }
            Origin::Element { base, text, .. } => {
                base.evidence(out);
                out.push(format!("`{text}` indexes `{}`", base.expr()));
            }
            Origin::AddrOf { base, .. } => base.evidence(out),
            Origin::Static { .. } => out.push(format!(
                "`{}` is a static variable (relocation of the instruction, symbol table and DWARF)",
                self.expr()
            )),
            Origin::Piece {
                param,
                function,
                type_name,
                path,
                member_type,
                reg,
                uses,
                from,
                ..
            } => {
                out.push(format!(
                    "DWARF: `{param}` ({type_name}) of {function} is DW_OP_GNU_parameter_ref: GCC's IPA-SRA dropped it from the clone, which gets members of `*{param}` by value instead"
                ));
                let offs: Vec<String> = uses.iter().map(|u| format!("{u:#x}")).collect();
                out.push(format!(
                    "%{r} is an argument register never written before here, used as a pointer at offset {}: of the pointer members of `*{param}`, only `{path}` ({member_type}) points to a type with members there, so %{r} = `{param}->{path}` (inferred from the types)",
                    offs.join(", "),
                    r = x86_64_register_name(*reg).unwrap_or("?"),
                ));
                if let Some(f) = from {
                    f.evidence(out);
                }
            }
        }
    }
}

/// Context for following values back through the caller.
pub struct Caller<'a> {
    pub code: &'a FnCode,
    /// The call instruction's address in the caller.
    pub call_ip: u64,
}

pub struct Tracer<'a> {
    pub callers: Vec<Caller<'a>>,
}

fn pointee_of(bin: &Arc<Binary>, type_die: Option<u64>) -> Option<(Arc<Binary>, u64)> {
    let t = bin.pointee(type_die?)?;
    Some((bin.clone(), t.die))
}

impl<'a> Tracer<'a> {
    /// The variable living in `reg` at `pc`, innermost scope first (`prefer_struct`: the first
    /// whose pointee is a struct or union, if any).
    pub fn var_in(
        &self,
        code: &FnCode,
        level: usize,
        pc: u64,
        reg: u16,
        prefer_struct: bool,
    ) -> Option<Origin> {
        let scopes = code.variables_at(pc);
        let mut cands = Vec::new();
        for s in &scopes {
            for v in &s.vars {
                if v.location.register() == Some(reg) {
                    cands.push(Origin::Var {
                        name: v.name.clone(),
                        function: s.function.clone(),
                        inlined: s.inlined,
                        type_name: v.type_name.clone(),
                        pointee: pointee_of(&code.bin, v.type_die),
                        reg,
                        plus: 0,
                        level,
                        pc,
                        from: None,
                    });
                }
            }
        }
        // The outermost scope's variable (the concrete function's, not an inlined helper's) is
        // the name at the level of the code that was written for this object.
        cands.reverse();
        if prefer_struct {
            let structured = cands.iter().position(|c| {
                c.pointee()
                    .and_then(|(b, d)| b.type_info(*d))
                    .is_some_and(|t| matches!(t.kind, TypeKind::Struct | TypeKind::Union))
            });
            if let Some(i) = structured {
                return Some(cands.swap_remove(i));
            }
        }
        cands.into_iter().next()
    }

    /// The origin of `reg` at `pc` in `code` (`level` = index into `callers` for the next hop).
    pub fn origin(
        &self,
        code: &FnCode,
        level: usize,
        pc: u64,
        reg: u16,
        depth: usize,
    ) -> Option<Origin> {
        let var = self.var_in(code, level, pc, reg, true);
        let derived = if depth > 0 {
            self.derive(code, level, pc, reg, depth - 1)
        } else {
            None
        };
        match var {
            Some(mut v @ Origin::Var { .. }) => {
                if let Origin::Var { name, from, .. } = &mut v {
                    // A derivation that only renames the same value adds nothing.
                    *from = derived.filter(|d| d.expr() != *name).map(Box::new);
                }
                Some(v)
            }
            _ => derived,
        }
    }

    /// The origin of `reg` used as a pointer at `disp` (`disp(%reg)`): [`Self::origin`], or the
    /// IPA-SRA piece `reg` must be ([`Self::sra_piece`]) when no DWARF variable lives in `reg`
    /// (the callee's own name first, what the caller passed as its derivation: `t->owner` =
    /// `f->cookie`).
    pub fn base_origin(
        &self,
        code: &FnCode,
        level: usize,
        pc: u64,
        reg: u16,
        disp: i64,
        depth: usize,
    ) -> Option<Origin> {
        if self.var_in(code, level, pc, reg, true).is_none() {
            if let Some(mut p) = self.sra_piece(code, level, pc, reg, disp) {
                let name = p.expr();
                let derived = self.origin(code, level, pc, reg, depth);
                if let Origin::Piece { from, .. } = &mut p {
                    *from = derived.filter(|d| d.expr() != name).map(Box::new);
                }
                return Some(p);
            }
        }
        self.origin(code, level, pc, reg, depth)
    }

    /// A variable living at `reg + k` (0 < k <= disp) whose pointee has a member starting at
    /// `disp - k`, innermost scope first, with the displacement from it: `n->pprev` for
    /// `0x10(%rdi)` where `n` = %rdi + 8 (hlist_del(&p->hnode) inlined, `p` in %rdi) rather than
    /// `p->hnode.pprev`: the inlined helper's own variable names the struct the member is in,
    /// and `n` = `&p->hnode` is its derivation. Pinned by `hlist_double_del` in tests/shapes.rs.
    fn offset_var(
        &self,
        code: &FnCode,
        level: usize,
        pc: u64,
        reg: u16,
        disp: i64,
        depth: usize,
    ) -> Option<(Origin, i64)> {
        let bin = &code.bin;
        for s in &code.variables_at(pc) {
            for v in &s.vars {
                let Some((r, k)) = v.location.register_plus() else {
                    continue;
                };
                if r != reg || k <= 0 || k > disp {
                    continue;
                }
                let Some(pointee) = pointee_of(bin, v.type_die) else {
                    continue;
                };
                let structured = bin
                    .type_info(pointee.1)
                    .is_some_and(|t| matches!(t.kind, TypeKind::Struct | TypeKind::Union));
                let fits = bin
                    .member_path(pointee.1, (disp - k) as u64)
                    .is_some_and(|mp| mp.remainder == 0);
                if !structured || !fits {
                    continue;
                }
                // `n` = `&p->hnode`: the member at +k of what the register holds.
                let from = self.origin(code, level, pc, reg, depth).and_then(|b| {
                    let (bb, bt) = b.pointee()?.clone();
                    let (path, _) = shallow_member(&bb, bt, k as u64)?;
                    Some(Box::new(Origin::AddrOf {
                        base: Box::new(b),
                        path,
                        offset: k as u64,
                        pointee: Some(pointee.clone()),
                    }))
                });
                let var = Origin::Var {
                    name: v.name.clone(),
                    function: s.function.clone(),
                    inlined: s.inlined,
                    type_name: v.type_name.clone(),
                    pointee: Some(pointee),
                    reg,
                    plus: k,
                    level,
                    pc,
                    from,
                };
                return Some((var, disp - k));
            }
        }
        None
    }

    /// In an `.isra` clone, an argument register that no DWARF variable describes and that the
    /// function never wrote before `pc` holds a piece of a dropped parameter (see
    /// `Location::is_parameter_ref`): GCC passes `p->m` instead of `p` when `p` is only read
    /// through. Which member is told by the types alone: the pointer members of `*p` (nested
    /// structs included) whose pointee has a member starting at every offset the clone uses the
    /// register at (`disp` and each `off(%reg)` before `pc`). Named only when exactly one member
    /// of one dropped parameter fits. Pinned by `null_member_deep` (`req->conn`) and
    /// `uaf_realloc` (`t->owner`) in tests/shapes.rs.
    pub fn sra_piece(
        &self,
        code: &FnCode,
        level: usize,
        pc: u64,
        reg: u16,
        disp: i64,
    ) -> Option<Origin> {
        if !code.name.contains(".isra") || !ARG_REGS.contains(&reg) || code.writes_before(pc, reg) {
            return None;
        }
        let mut uses = vec![disp];
        for x in code.insns.iter().take_while(|x| x.ip() < pc) {
            if let Some(m) = insn::mem_operand(&x.ins) {
                if m.base == Some(reg) && m.index.is_none() && !uses.contains(&m.disp) {
                    uses.push(m.disp);
                }
            }
        }
        if uses.iter().any(|&u| u < 0) {
            return None;
        }
        uses.sort_unstable();
        let scopes = code.variables_at(pc);
        let concrete = scopes.iter().rfind(|s| !s.inlined)?;
        let bin = &code.bin;
        let mut found = Vec::new();
        for v in &concrete.vars {
            let dropped = matches!(v.location, kmortem_symbols::vars::Location::OptimizedOut)
                || v.location.is_parameter_ref();
            if !v.is_param || !dropped {
                continue;
            }
            let Some(pt) = bin.pointee(v.type_die?) else {
                continue;
            };
            let mut members = Vec::new();
            pointer_members(bin, pt.die, String::new(), 0, 0, &mut members);
            for (path, off, mt) in members {
                let Some(target) = bin.pointee(mt) else {
                    continue;
                };
                let fits = uses.iter().all(|&u| {
                    bin.member_path(target.die, u as u64)
                        .is_some_and(|mp| mp.remainder == 0)
                });
                if fits {
                    found.push((v, path, off, mt, target.die));
                }
            }
        }
        let [(v, path, off, mt, target)] = <[_; 1]>::try_from(found).ok()?;
        Some(Origin::Piece {
            param: v.name.clone(),
            function: concrete.function.clone(),
            type_name: v.type_name.clone(),
            path,
            offset: off,
            pointee: Some((bin.clone(), target)),
            member_type: bin.type_name(mt),
            reg,
            uses,
            level,
            pc,
            from: None,
        })
    }

    fn derive(
        &self,
        code: &FnCode,
        level: usize,
        pc: u64,
        reg: u16,
        depth: usize,
    ) -> Option<Origin> {
        let Some(def) = code.reaching_def(pc, reg) else {
            // Never written in this function: an argument comes from the caller.
            if ARG_REGS.contains(&reg) && !code.writes_before(pc, reg) {
                let c = self.callers.get(level)?;
                return self.origin(c.code, level + 1, c.call_ip, reg, depth);
            }
            return None;
        };
        if insn::is_call(&def.ins) {
            return None;
        }
        if let Some((d, src)) = insn::reg_copy(&def.ins) {
            if d == reg {
                return self.origin(code, level, def.ip(), src, depth);
            }
        }
        if let Some(e) = self.scaled_add(code, level, def, reg, depth) {
            return Some(e);
        }
        if let Some(e) = self.static_scaled_add(code, level, def, reg) {
            return Some(e);
        }
        // `add reg, %gs:this_cpu_off`: this_cpu_ptr(p) (get_cpu_ptr, per_cpu_ptr on this CPU)
        // is p's own derivation in the CPU's per-CPU area.
        if def.ins.mnemonic() == iced_x86::Mnemonic::Add
            && def.ins.segment_prefix() == iced_x86::Register::GS
            && def.ins.op0_kind() == iced_x86::OpKind::Register
            && insn::dwarf_reg(def.ins.op0_register()) == Some(reg)
        {
            return self.origin(code, level, def.ip(), reg, depth);
        }
        if let Some((d, m)) = insn::load(&def.ins) {
            if d != reg || m.index.is_some() {
                return None;
            }
            if m.rip_relative {
                return self.static_at(code, def, true);
            }
            let (base, disp) = match self.offset_var(code, level, def.ip(), m.base?, m.disp, depth)
            {
                Some(v) => v,
                None => (
                    self.base_origin(code, level, def.ip(), m.base?, m.disp, depth)?,
                    m.disp,
                ),
            };
            let (bin, pt) = base.pointee()?.clone();
            let mp = bin.member_path(pt, disp as u64)?;
            if mp.remainder != 0 {
                return None;
            }
            let pointee = pointee_of(&bin, mp.type_die);
            return Some(Origin::Load {
                base: Box::new(base),
                path: mp.path,
                offset: disp as u64,
                pointee,
                at: format!("{}+{:#x}", code.name, def.ip() - code.start),
                text: def.text.clone(),
            });
        }
        if let Some(d) = insn::mov_imm(&def.ins) {
            if d == reg && code.bin.kind == kmortem_symbols::ElfKind::Relocatable {
                let site = def.end().checked_sub(4)?;
                let target = code.bin.code_relocation(site)?;
                return self.static_addr(code, target);
            }
            return None;
        }
        if let Some((d, m)) = insn::lea(&def.ins) {
            if d != reg {
                return None;
            }
            if m.rip_relative {
                let target = code.rip_target(def)?;
                return self.static_addr(code, target);
            }
            if m.base.is_none() {
                return self.static_element(code, level, def, m.index?, m.scale as u64);
            }
            let base = match m.index {
                None => self.base_origin(code, level, def.ip(), m.base?, m.disp, depth)?,
                Some(_) => self.origin(code, level, def.ip(), m.base?, depth)?,
            };
            let (bin, pt) = base.pointee()?.clone();
            if m.index.is_some() {
                if m.disp != 0 {
                    return None;
                }
                return Some(Origin::Element {
                    base: Box::new(base),
                    pointee: Some((bin, pt)),
                    text: def.text.clone(),
                    index_reg: None,
                    index_name: None,
                });
            }
            let (path, mt) = shallow_member(&bin, pt, m.disp as u64)?;
            let pointee = mt
                .and_then(|t| bin.strip_type(t))
                .map(|t| (bin.clone(), t.die));
            return Some(Origin::AddrOf {
                base: Box::new(base),
                path,
                offset: m.disp as u64,
                pointee,
            });
        }
        None
    }

    /// `imul reg, i, SIZE` then `add reg, [base+disp]`, where the memory is an array pointer
    /// whose elements are SIZE bytes: `&base->arr[i]` (GCC at -Os computes `&p->a[i]` this way
    /// instead of `lea (a,i,8)` on a `lea (i,i,8)`; pinned by `wrong_cpu_index_Os` in
    /// tests/shapes.rs).
    fn scaled_add(
        &self,
        code: &FnCode,
        level: usize,
        def: &Insn,
        reg: u16,
        depth: usize,
    ) -> Option<Origin> {
        use iced_x86::{Mnemonic, OpKind};
        let x = &def.ins;
        if x.mnemonic() != Mnemonic::Add
            || x.op0_kind() != OpKind::Register
            || x.op1_kind() != OpKind::Memory
            || insn::dwarf_reg(x.op0_register()) != Some(reg)
        {
            return None;
        }
        let m = insn::mem_operand(x)?;
        if m.index.is_some() || m.rip_relative || m.disp < 0 {
            return None;
        }
        let base = self.base_origin(code, level, def.ip(), m.base?, m.disp, depth)?;
        let (bin, pt) = base.pointee()?.clone();
        let mp = bin.member_path(pt, m.disp as u64)?;
        if mp.remainder != 0 {
            return None;
        }
        let elem = pointee_of(&bin, mp.type_die)?;
        let es = bin.type_info(elem.1).and_then(|t| bin.sizeof(&t))?;
        let scale = code.reaching_def(def.ip(), reg)?;
        let imm = matches!(
            scale.ins.op2_kind(),
            OpKind::Immediate8to64 | OpKind::Immediate32to64 | OpKind::Immediate8to32
        );
        if scale.ins.mnemonic() != Mnemonic::Imul
            || scale.ins.op_count() != 3
            || !imm
            || scale.ins.immediate(2) != es
        {
            return None;
        }
        let at = format!("{}+{:#x}", code.name, def.ip() - code.start);
        Some(Origin::Element {
            base: Box::new(Origin::Load {
                base: Box::new(base),
                path: mp.path,
                offset: m.disp as u64,
                pointee: Some(elem.clone()),
                at,
                text: def.text.clone(),
            }),
            pointee: Some(elem),
            text: format!("{}; {}", scale.text, def.text),
            index_reg: None,
            index_name: None,
        })
    }

    /// `lea (,%idx,SCALE) + &array` in a module (the displacement is relocated to a static
    /// array): `&array[i]`, the index in `%idx` (or in `%r` when `%idx` = `r + r*k`, GCC's
    /// multiply by 3, 5, 9). Pinned by `percpu_index` in tests/shapes.rs.
    fn static_element(
        &self,
        code: &FnCode,
        level: usize,
        def: &Insn,
        idx: u16,
        scale: u64,
    ) -> Option<Origin> {
        if code.bin.kind != kmortem_symbols::ElfKind::Relocatable {
            return None;
        }
        let site = def.end().checked_sub(4)?;
        let target = code.bin.code_relocation(site)?;
        let base = self.static_addr(code, target)?;
        let pointee = base.pointee().cloned();
        let (mut r, mut mult, mut at) = (idx, scale, def.ip());
        if let Some(d) = code.reaching_def(def.ip(), idx) {
            if let Some((dd, m)) = insn::lea(&d.ins) {
                if dd == idx && m.base.is_some() && m.base == m.index && m.disp == 0 {
                    r = m.base?;
                    mult *= m.scale as u64 + 1;
                    at = d.ip();
                }
            }
        }
        let index_name = match self.var_in(code, level, at, r, false) {
            Some(Origin::Var { name, .. }) => Some(name),
            _ => None,
        };
        Some(Origin::Element {
            base: Box::new(base),
            pointee,
            text: def.text.clone(),
            index_reg: Some((r, level, at, mult)),
            index_name,
        })
    }

    /// `imul reg, i, SIZE` then `add reg, $array` (a relocated immediate) in a module: GCC -Os's
    /// `&array[i]` of a static (or per-CPU) array; the index is `i`'s register, through one
    /// register copy (`mov %edi,%eax`). Pinned by `percpu_index_Os` in tests/shapes.rs.
    fn static_scaled_add(
        &self,
        code: &FnCode,
        level: usize,
        def: &Insn,
        reg: u16,
    ) -> Option<Origin> {
        use iced_x86::{Mnemonic, OpKind};
        let x = &def.ins;
        if x.mnemonic() != Mnemonic::Add
            || x.op0_kind() != OpKind::Register
            || x.op1_kind() != OpKind::Immediate32to64
            || insn::dwarf_reg(x.op0_register()) != Some(reg)
            || code.bin.kind != kmortem_symbols::ElfKind::Relocatable
        {
            return None;
        }
        let target = code.bin.code_relocation(def.end().checked_sub(4)?)?;
        let base = self.static_addr(code, target)?;
        let scale = code.reaching_def(def.ip(), reg)?;
        let imm = matches!(
            scale.ins.op2_kind(),
            OpKind::Immediate8to64 | OpKind::Immediate32to64 | OpKind::Immediate8to32
        );
        if scale.ins.mnemonic() != Mnemonic::Imul
            || scale.ins.op_count() != 3
            || scale.ins.op1_kind() != OpKind::Register
            || !imm
        {
            return None;
        }
        let mult = scale.ins.immediate(2);
        let mut r = insn::dwarf_reg(scale.ins.op1_register())?;
        let mut at = scale.ip();
        if let Some(d) = code.reaching_def(at, r) {
            if d.ins.mnemonic() == Mnemonic::Mov
                && d.ins.op0_kind() == OpKind::Register
                && d.ins.op1_kind() == OpKind::Register
                && insn::dwarf_reg(d.ins.op0_register()) == Some(r)
            {
                r = insn::dwarf_reg(d.ins.op1_register())?;
                at = d.ip();
            }
        }
        let index_name = match self.var_in(code, level, at, r, false) {
            Some(Origin::Var { name, .. }) => Some(name),
            _ => None,
        };
        Some(Origin::Element {
            pointee: base.pointee().cloned(),
            base: Box::new(base),
            text: format!("{}; {}", scale.text, def.text),
            index_reg: Some((r, level, at, mult)),
            index_name,
        })
    }

    /// A RIP-relative load of a static variable (or of one of its members).
    fn static_at(&self, code: &FnCode, def: &Insn, _load: bool) -> Option<Origin> {
        let addr = code.rip_target(def)?;
        let (name, type_die, off) = static_named(code, addr)?;
        let (member, member_type) = match type_die {
            Some(t) => match code.bin.member_path(t, off) {
                Some(mp) if mp.remainder == 0 => (Some(mp.path), mp.type_die),
                _ if off == 0 => (None, Some(t)),
                _ => return None,
            },
            None if off == 0 => (None, None),
            None => return None,
        };
        Some(Origin::Static {
            name,
            member,
            pointee: pointee_of(&code.bin, member_type),
            addr_of: false,
            elf: elf_symbol(code, addr),
        })
    }

    /// The address of a static variable or of one of its members (`&a.link`).
    fn static_addr(&self, code: &FnCode, addr: u64) -> Option<Origin> {
        let (name, type_die, off) = static_named(code, addr)?;
        let (member, mt) = match type_die {
            Some(t) if off > 0 || !code.bin.type_members(t).is_empty() => {
                match shallow_member(&code.bin, t, off) {
                    Some((p, mt)) if off > 0 || !p.is_empty() => (Some(p), mt),
                    _ => (None, Some(t)),
                }
            }
            Some(t) => (None, Some(t)),
            None if off == 0 => (None, None),
            None => return None,
        };
        // `&a` for the object itself, `&a.link` for a member at offset 0 or more: a pointer to a
        // member at offset 0 is most often passed for the member (list heads, locks).
        Some(Origin::Static {
            name: format!("&{name}"),
            member,
            pointee: mt
                .and_then(|t| code.bin.strip_type(t))
                .map(|t| (code.bin.clone(), t.die)),
            addr_of: true,
            elf: elf_symbol(code, addr),
        })
    }
}

/// The pointer-typed members of struct/union `die`, through nested structs and unions (not
/// through pointers or arrays): (path, offset, member type DIE).
fn pointer_members(
    bin: &Binary,
    die: u64,
    prefix: String,
    base: u64,
    depth: usize,
    out: &mut Vec<(String, u64, u64)>,
) {
    let Some(t) = bin.strip_type(die) else { return };
    if depth > 4 || !matches!(t.kind, TypeKind::Struct | TypeKind::Union) {
        return;
    }
    for m in bin.type_members(t.die) {
        let Some(md) = m.type_die else { continue };
        let Some(mt) = bin.strip_type(md) else {
            continue;
        };
        let path = match &m.name {
            Some(n) if prefix.is_empty() => n.clone(),
            Some(n) => format!("{prefix}.{n}"),
            None => prefix.clone(),
        };
        match mt.kind {
            TypeKind::Pointer if !path.is_empty() => out.push((path, base + m.offset, md)),
            TypeKind::Struct | TypeKind::Union => {
                pointer_members(bin, mt.die, path, base + m.offset, depth + 1, out)
            }
            _ => {}
        }
    }
}

/// The ELF symbol holding a (link-time) data address, with the module it is in.
fn elf_symbol(code: &FnCode, addr: u64) -> Option<(Option<String>, String, u64)> {
    let (s, off) = code.bin.data_symbol_at(addr)?;
    Some((code.module.clone(), s.name.to_string(), off))
}

fn static_named(code: &FnCode, addr: u64) -> Option<(String, Option<u64>, u64)> {
    code.bin.static_variable_at(addr).or_else(|| {
        let (s, off) = code.bin.data_symbol_at(addr)?;
        // `rq.18`: GCC's name for a function-local static.
        Some((
            s.name.split('.').next().unwrap_or(s.name).to_string(),
            None,
            off,
        ))
    })
}

/// The path of members at offset 0 of struct `die` down to one of type `want` (a type name):
/// `lock.rlock` for `struct kmlab_ctx_queue` and `struct raw_spinlock`. `None` when `die` is
/// itself of that type or no such member exists.
fn zero_member_path(bin: &Binary, die: u64, want: &str) -> Option<String> {
    let mut cur = bin.strip_type(die)?;
    if bin.type_name(cur.die) == want {
        return None;
    }
    let mut path = Vec::new();
    for _ in 0..6 {
        if !matches!(cur.kind, TypeKind::Struct | TypeKind::Union) {
            return None;
        }
        let m = bin
            .type_members(cur.die)
            .into_iter()
            .find(|m| m.offset == 0)?;
        if let Some(n) = &m.name {
            path.push(n.clone());
        }
        cur = bin.strip_type(m.type_die?)?;
        if bin.type_name(cur.die) == want {
            return (!path.is_empty()).then(|| path.join("."));
        }
    }
    None
}

/// The shallowest member starting exactly at `off` (`link`, not `link.next`), descending only
/// through members that start before it.
pub fn shallow_member(
    bin: &kmortem_symbols::Binary,
    die: u64,
    off: u64,
) -> Option<(String, Option<u64>)> {
    let mut path = String::new();
    let mut cur = die;
    let mut off = off;
    for _ in 0..8 {
        let t = bin.strip_type(cur)?;
        if !matches!(t.kind, TypeKind::Struct | TypeKind::Union) {
            return None;
        }
        let ms = bin.type_members(t.die);
        if let Some(m) = ms.iter().find(|m| m.offset == off && m.name.is_some()) {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(m.name.as_deref().unwrap_or(""));
            return Some((path, m.type_die));
        }
        let m = ms.iter().rfind(|m| m.offset < off)?;
        if let Some(n) = &m.name {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(n);
        }
        off -= m.offset;
        cur = m.type_die?;
    }
    None
}
