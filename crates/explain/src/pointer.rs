//! Bad pointer dereference: the trapping instruction's memory operand → its base register →
//! the register's value in the oops → the DWARF variable living there → the displacement as a
//! member of the variable's pointee type, and where the variable's value came from.

use crate::insn;
use crate::origin::Origin;
use crate::{Confidence, Finding, Frames};
use kmortem_oops::{Kind, Report};
use kmortem_symbols::vars::x86_64_register_name;

/// What a pointer value says about itself.
pub struct Class {
    pub id: &'static str,
    /// Reads after the variable name: "is NULL".
    pub phrase: String,
    /// Whether the value alone proves the pointer bad (NULL, poison, non-canonical).
    pub certain: bool,
}

/// Classifies a pointer value.
///
/// Folklore: include/linux/poison.h. LIST_POISON1/2 are 0x100/0x122 + POISON_POINTER_DELTA
/// (0xdead000000000000 on x86_64, CONFIG_ILLEGAL_POINTER_VALUE, since 2.6.29): list_del() writes
/// them into the removed entry. Slab debug fills (mm/slub.c with slub_debug=P/Z): POISON_FREE 0x6b
/// (freed object), POISON_INUSE 0x5a (allocated, never written), POISON_END 0xa5 (last byte),
/// SLUB_RED_ACTIVE 0xcc / SLUB_RED_INACTIVE 0xbb (red zones around objects). Pinned by
/// tests/lab.rs (`uaf`, `list_del_corruption`, `gpf`).
pub fn classify(v: u64) -> Option<Class> {
    let c = |id, phrase: String, certain| {
        Some(Class {
            id,
            phrase,
            certain,
        })
    };
    match v {
        0 => return c("null", "is NULL".into(), true),
        0xdead000000000100 => {
            return c(
                "list_poison1",
                "is LIST_POISON1 (0xdead000000000100): the entry was already removed from its list (list_del poison: use after delete)".into(),
                true,
            )
        }
        0xdead000000000122 => {
            return c(
                "list_poison2",
                "is LIST_POISON2 (0xdead000000000122): the entry was already removed from its list (list_del/hlist_del poison: use after delete)".into(),
                true,
            )
        }
        _ => {}
    }
    if v < 0x10000 {
        return c(
            "small",
            format!("is {v:#x}, not a pointer (NULL + {v:#x})"),
            true,
        );
    }
    let b = v.to_le_bytes();
    if b.iter().all(|&x| x == b[0]) {
        let what = match b[0] {
            0x6b => Some(("slab_free_poison", "holds the slab free poison 0x6b6b6b6b6b6b6b6b: it was read from a freed object (use after free)")),
            0x5a => Some(("slab_inuse_poison", "holds the slab poison 0x5a5a5a5a5a5a5a5a (POISON_INUSE): it was read from allocated memory never initialised")),
            0xa5 => Some(("slab_end_poison", "holds 0xa5a5a5a5a5a5a5a5 (POISON_END debug fill): it was read from slab poison, past an object's end or from freed memory")),
            0xcc => Some(("slab_redzone", "holds 0xcccccccccccccccc (SLUB_RED_ACTIVE red zone): it was read past the end of a slab object")),
            0xbb => Some(("slab_redzone_inactive", "holds 0xbbbbbbbbbbbbbbbb (SLUB_RED_INACTIVE red zone): it was read from around a freed slab object")),
            _ => None,
        };
        if let Some((id, p)) = what {
            return c(id, p.into(), true);
        }
    }
    if v.wrapping_neg() <= 4095 {
        return c(
            "err_ptr",
            format!(
                "is ERR_PTR(-{}): an error code used as a pointer",
                v.wrapping_neg()
            ),
            true,
        );
    }
    if (v >> 47) != 0 && (v >> 47) != 0x1ffff {
        if v >> 16 == 0xdead_0000_0000 {
            return c(
                "poison_pointer",
                format!("is {v:#x}, a POISON_POINTER_DELTA poison value (non-canonical)"),
                true,
            );
        }
        return c(
            "non_canonical",
            format!("is {v:#x}, a non-canonical address (garbage or a corrupted pointer)"),
            true,
        );
    }
    None
}

fn reg(r: u16) -> &'static str {
    x86_64_register_name(r).unwrap_or("?")
}

/// Without the binary: decode the trapping instruction from the oops's `Code:` bytes, and say
/// which register held what — the variable is unknown (no DWARF), and the finding says so.
fn from_code_bytes(report: &Report) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(c) = &report.code else { return out };
    if c.arch != kmortem_oops::Arch::X86_64 {
        return out;
    }
    let Some(t) = c.trap_index.filter(|_| !c.trap_guessed) else {
        return out;
    };
    let Some(bytes) = c.bytes.get(t..) else {
        return out;
    };
    let insns = insn::decode_all(bytes, 0);
    let Some(trap) = insns.first() else {
        return out;
    };
    let Some(m) = insn::mem_operand(&trap.ins) else {
        return out;
    };
    let Some(base) = m.base else { return out };
    let Some(&bv) = report.registers.get(reg(base)) else {
        return out;
    };
    let Some(class) = classify(bv) else {
        return out;
    };
    let func = report
        .ip
        .as_ref()
        .and_then(|i| i.function.clone())
        .unwrap_or_else(|| "the RIP".into());
    let mut f = Finding::new(
        "bad_pointer",
        format!(
            "%{} {} (`{}` at offset {:#x}, in {func}); without debug info the variable is unknown — pass --vmlinux/--modules",
            reg(base),
            class.phrase,
            trap.text,
            m.disp
        ),
        Confidence::Medium,
    );
    f.evidence.push(format!(
        "trapping instruction from the oops's Code: bytes: `{}`",
        trap.text
    ));
    f.evidence
        .push(format!("%{} = {bv:#x} (oops registers)", reg(base)));
    f.evidence
        .push("no vmlinux/module with DWARF: location of variables unknown".into());
    f.fact("register", reg(base));
    f.fact("value", format!("{bv:#x}"));
    f.fact("offset", format!("{:#x}", m.disp));
    f.fact("class", class.id);
    out.push(f);
    out
}

/// `divide error`: the divisor operand of the trapping `div`/`idiv`, and the variable in it.
pub fn divide(report: &Report, frames: &Frames) -> Vec<Finding> {
    let mut out = Vec::new();
    if report.kind != Kind::DivideError {
        return out;
    }
    let Some(ipf) = &frames.ip else { return out };
    let (Some(code), Some(pc)) = (&ipf.code, ipf.res.address) else {
        return out;
    };
    let Some(trap) = code.insn_at(pc) else {
        return out;
    };
    use iced_x86::{Mnemonic, OpKind};
    if !matches!(trap.ins.mnemonic(), Mnemonic::Div | Mnemonic::Idiv)
        || trap.ins.op0_kind() != OpKind::Register
    {
        return out;
    }
    let Some(r) = insn::dwarf_reg(trap.ins.op0_register()) else {
        return out;
    };
    let v = report.registers.get(reg(r)).copied();
    let tracer = frames.tracer();
    let o = tracer.origin(code, 0, pc, r, 8);
    let mut f = Finding::new(
        "divide_by_zero",
        match &o {
            Some(o) => format!(
                "the divisor {} is {}: `{}` at {}+{:#x}",
                o.explained(),
                v.map(|x| format!("{x:#x}")).unwrap_or_else(|| "0 (or the quotient overflows)".into()),
                trap.text,
                code.name,
                pc - code.start
            ),
            None => format!(
                "the divisor %{} is {}; no variable is known to live in it at this PC (location unknown)",
                reg(r),
                v.map(|x| format!("{x:#x}")).unwrap_or_else(|| "?".into())
            ),
        },
        if o.is_some() && v.is_some_and(|x| x & 0xffff_ffff == 0) {
            Confidence::High
        } else {
            Confidence::Medium
        },
    );
    f.evidence
        .push(format!("trapping instruction: `{}`", trap.text));
    if let Some(x) = v {
        f.evidence
            .push(format!("%{} = {x:#x} (oops registers)", reg(r)));
    }
    if let Some(o) = &o {
        o.evidence(&mut f.evidence);
        f.fact("variable", o.expr());
    }
    f.fact("register", reg(r));
    out.push(f);
    out
}

/// The object a derivation's value was loaded from: (its expression, the derivation whose value
/// is its address, its type's name). For an IPA-SRA piece (`t->owner`) the caller's load at the
/// same offset (`f->cookie`, `mov 0x8(%rbp),%rdi`) read it from the object `t` points to, so
/// its base has `t`'s value.
fn source_object(o: &Origin) -> Option<(String, &Origin, String)> {
    match o {
        Origin::Var { from, .. } => source_object(from.as_deref()?),
        Origin::Load { base, .. } => {
            let (b, t) = base.pointee()?;
            Some((base.expr(), base, b.type_name(*t)))
        }
        Origin::Piece {
            param,
            offset,
            type_name,
            from: Some(from),
            ..
        } => match from.as_ref() {
            Origin::Load {
                base, offset: o2, ..
            } if o2 == offset => Some((
                param.clone(),
                base,
                type_name.trim_end_matches('*').trim().to_string(),
            )),
            _ => None,
        },
        _ => None,
    }
}

/// What a bad pointer's value means, as one word for machines (`verdict`).
fn verdict(class: Option<&Class>, kind: Kind) -> &'static str {
    match class.map(|c| c.id) {
        Some("null") | Some("small") => "null",
        Some("list_poison1") | Some("list_poison2") => "use_after_delete",
        Some("slab_free_poison") | Some("slab_redzone_inactive") => "use_after_free",
        Some("slab_inuse_poison") => "uninitialized",
        Some("slab_redzone") | Some("slab_end_poison") => "out_of_bounds",
        Some("err_ptr") => "err_ptr",
        Some("poison_pointer") | Some("non_canonical") => "non_canonical",
        _ if kind == Kind::PagingRequest => "unmapped",
        _ => "bad",
    }
}

/// Explains the bad pointer of a fault; `program` (the vmcore) lets array bases and bounds be
/// read from memory.
pub fn explain(
    report: &Report,
    frames: &Frames,
    program: Option<&kmortem_kernel::Program>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if !matches!(
        report.kind,
        Kind::NullPointerDereference | Kind::PagingRequest | Kind::GeneralProtectionFault
    ) {
        return out;
    }
    let code = frames.ip.as_ref().and_then(|i| i.code.as_ref());
    let pc = frames.ip.as_ref().and_then(|i| i.res.address);
    let (Some(ipf), Some(code), Some(pc)) = (frames.ip.as_ref(), code, pc) else {
        // No debug info (or no binary): the Code: bytes alone still tell which register was bad.
        return from_code_bytes(report);
    };
    let Some(trap) = code.insn_at(pc) else {
        let mut f = Finding::new(
            "location_unknown",
            format!(
                "{}: no instruction starts at the RIP in the binary (wrong vmlinux/module?)",
                ipf.function()
            ),
            Confidence::Low,
        );
        f.evidence
            .push(format!("{}: {}", code.bin.path.display(), ipf.function()));
        out.push(f);
        return out;
    };
    let mut evidence = Vec::new();
    let mut confidence = Confidence::High;
    // The Code: bytes must show the same instruction, or the binary is not the one that ran.
    if let Some(c) = &report.code {
        if let Some(t) = c.trap_index {
            let n = trap.ins.len();
            let printed = c.bytes.get(t..t + n);
            let ours = code.bin.bytes_at(pc, n);
            match (printed, ours) {
                (Some(p), Some(o)) if p == o => evidence.push(format!(
                    "trapping instruction {}+{:#x}: `{}` (the oops's Code: bytes match the binary)",
                    code.name,
                    pc - code.start,
                    trap.text
                )),
                (Some(_), Some(_)) => {
                    evidence.push(format!(
                        "trapping instruction {}+{:#x}: `{}` — but the oops's Code: bytes differ (wrong vmlinux/module?)",
                        code.name,
                        pc - code.start,
                        trap.text
                    ));
                    confidence = Confidence::Low;
                }
                _ => evidence.push(format!("trapping instruction: `{}`", trap.text)),
            }
        }
    } else {
        evidence.push(format!("trapping instruction: `{}`", trap.text));
    }
    let Some(m) = insn::mem_operand(&trap.ins) else {
        return out;
    };
    let Some(base) = m.base else { return out };
    let Some(&bv) = report.registers.get(reg(base)) else {
        return out;
    };
    let idx_v = match m.index {
        Some(i) => match report.registers.get(reg(i)) {
            Some(v) => Some(*v),
            None => return out,
        },
        None => Some(0),
    };
    let addr = idx_v.map(|iv| {
        bv.wrapping_add(iv.wrapping_mul(m.scale as u64))
            .wrapping_add(m.disp as u64)
    });
    evidence.push(format!(
        "%{} = {bv:#x} (oops registers){}",
        reg(base),
        addr.map(|a| format!("; the access address is {a:#x}"))
            .unwrap_or_default()
    ));
    if let (Some(fa), Some(a)) = (report.fault_address, addr) {
        if report.kind != Kind::GeneralProtectionFault && fa != a {
            evidence.push(format!(
                "the fault address {fa:#x} is not the operand's address {a:#x}: the registers may not belong to this instruction"
            ));
            confidence = Confidence::Low;
        }
    }
    let class = classify(bv);
    let tracer = frames.tracer();
    let origin = match m.index {
        None => tracer.base_origin(code, 0, pc, base, m.disp, 8),
        Some(_) => tracer.origin(code, 0, pc, base, 8),
    };
    let access = match (m.read, m.write) {
        (true, true) => "update",
        (false, true) => "write",
        _ => "read",
    };
    let Some(origin) = origin else {
        // Honesty: say what is known, and that the variable is not.
        let mut f = Finding::new(
            "bad_pointer",
            format!(
                "%{} {} at {}+{:#x} (`{}`); no variable is known to live in %{} at this PC (location unknown)",
                reg(base),
                class
                    .as_ref()
                    .map(|c| c.phrase.clone())
                    .unwrap_or_else(|| format!("= {bv:#x}")),
                code.name,
                pc - code.start,
                trap.text,
                reg(base)
            ),
            if class.is_some() {
                Confidence::Medium.min(confidence)
            } else {
                Confidence::Low
            },
        );
        f.evidence = evidence;
        f.evidence.push(format!(
            "DWARF: no variable's location at this PC is %{}",
            reg(base)
        ));
        f.fact("register", reg(base));
        f.fact("value", format!("{bv:#x}"));
        if let Some(c) = &class {
            f.fact("class", c.id);
        }
        f.fact("verdict", verdict(class.as_ref(), report.kind));
        out.push(f);
        return out;
    };
    origin.evidence(&mut evidence);
    // An element of an indexed array: which one, and against which bound.
    let env = crate::element::Env {
        report,
        levels: std::iter::once((code, pc))
            .chain(tracer.callers.iter().map(|c| (c.code, c.call_ip)))
            .collect(),
        program,
    };
    let element = crate::element::find(&env, &origin, bv);
    if let Some(e) = &element {
        evidence.extend(e.evidence.iter().cloned());
    }
    // The member touched: the displacement in the pointee type.
    let member = if m.index.is_none() && m.disp >= 0 {
        origin.pointee().and_then(|(b, t)| {
            let mp = b.member_path(*t, m.disp as u64)?;
            let tn = b.type_name(*t);
            evidence.push(format!(
                "type: offset {:#x} of {tn} is `{}`{}",
                m.disp,
                mp.path,
                if mp.remainder > 0 {
                    format!(" + {}", mp.remainder)
                } else {
                    String::new()
                }
            ));
            Some(mp)
        })
    } else {
        None
    };
    let name = origin.explained();
    let what = match &member {
        Some(mp) => format!(
            "the {access} of `{}->{}` (offset {:#x}) faults",
            origin.expr(),
            mp.path,
            m.disp
        ),
        None if m.disp != 0 => format!("the {access} at offset {:#x} from it faults", m.disp),
        None => format!("the {access} through it faults"),
    };
    let state = match &class {
        Some(c) => c.phrase.clone(),
        None => match report.kind {
            Kind::PagingRequest => format!("= {bv:#x} points to unmapped memory"),
            _ => format!("= {bv:#x}"),
        },
    };
    if class.as_ref().is_none_or(|c| !c.certain) {
        confidence = confidence.min(Confidence::Medium);
    }
    if !matches!(origin, Origin::Var { .. }) {
        confidence = confidence.min(Confidence::Medium);
    }
    let mut chain = Vec::new();
    origin.chain(&mut chain);
    if let Some(e) = element.as_ref().filter(|e| e.index.is_some()) {
        let generic = format!("&{}[…]", e.array);
        for c in chain.iter_mut() {
            *c = c.replace(&generic, &e.expr());
        }
    }
    let chain_fact = chain.join(", ");
    let chain = if chain.len() > 1 {
        format!(" (derivation: {})", chain.join(", "))
    } else {
        String::new()
    };
    let mut verdict = verdict(class.as_ref(), report.kind);
    let elem_say = element.as_ref().map(|e| {
        let mut s = format!(
            "; it is `{}` ({}-byte elements{})",
            e.expr(),
            e.element_size,
            if e.remainder > 0 {
                format!(", {} bytes into it", e.remainder)
            } else {
                String::new()
            }
        );
        if let Some(x) = &e.index_expr {
            s.push_str(&format!(", index `{x}`"));
        }
        if let Some((n, src)) = &e.bound {
            if src.starts_with("DWARF: ") {
                s.push_str(&format!(", and the array has {n} elements"));
            } else {
                s.push_str(&format!(", and `{src}` = {n}"));
            }
            match e.out_of_bounds() {
                Some(true) => {
                    s.push_str(": index out of bounds");
                    verdict = "index_out_of_bounds";
                    // The index and the bound are both read, not inferred.
                    if confidence == Confidence::Medium {
                        confidence = Confidence::High;
                    }
                }
                Some(false) => s.push_str(": the index is within bounds"),
                None => {}
            }
        }
        s
    });
    let mut f = Finding::new(
        "bad_pointer",
        format!(
            "{name} {state}; {what}{}{chain}",
            elem_say.unwrap_or_default()
        ),
        confidence,
    );
    f.evidence = evidence;
    f.fact("variable", origin.expr());
    if let Origin::Var { from: Some(fr), .. } | Origin::Piece { from: Some(fr), .. } = &origin {
        f.fact("derived_from", fr.expr());
    }
    if let Some(mp) = &member {
        f.fact("member", mp.path.clone());
    }
    f.fact("register", reg(base));
    f.fact("value", format!("{bv:#x}"));
    if let Some(a) = addr {
        f.fact("address", format!("{a:#x}"));
    }
    if let Some((arr, size)) = origin.element() {
        f.fact("array", arr);
        f.fact("element_size", size.to_string());
    }
    if let Some(e) = &element {
        f.fact("array", e.array.clone());
        f.fact("element_size", e.element_size.to_string());
        f.fact("element", e.expr());
        if let Some(b) = e.base {
            f.fact("array_base", format!("{b:#x}"));
        }
        if let Some(i) = e.index {
            f.fact("index", i.to_string());
        }
        if let Some(x) = &e.index_expr {
            f.fact("index_expr", x.clone());
        }
        if let Some((n, src)) = &e.bound {
            f.fact("bound", n.to_string());
            f.fact("bound_source", src.clone());
        }
    }
    if !chain_fact.is_empty() {
        f.fact("chain", chain_fact);
    }
    f.fact("verdict", verdict);
    // The object the bad pointer was read from (`t` of `t->owner`) and its address, for the
    // vmcore's slab check (core.rs: a stale pointer into memory another cache reuses).
    if let Some((expr, base, ty)) = source_object(&origin) {
        if let Some(a) = env.value(base) {
            f.fact("source", expr);
            f.fact("source_address", format!("{a:#x}"));
            f.fact("source_type", ty);
        }
    }
    if let Some((b, t)) = origin.pointee() {
        f.fact("pointee", b.type_name(*t));
    }
    f.fact("offset", format!("{:#x}", m.disp));
    f.fact("access", access);
    if let Some(c) = &class {
        f.fact("class", c.id);
    }
    out.push(f);
    out
}
