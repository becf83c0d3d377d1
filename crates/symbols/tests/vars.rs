//! Frame variables (`vars.rs`) against drgn: the lab's `oracle/drgn-bt.txt` lists each frame's
//! variables with values. For the crashing frame (the RIP of the oops, inlined frames included)
//! we check the scope names, the variable names, the optimized-out status, and, for every
//! variable we place in a register, that the oops' register value is the value drgn printed.
//! For the caller frame (return address) we check the variable names. On every pinned kernel.

use kmortem_symbols::{Location, Query, Symbolizer};
use std::collections::BTreeSet;

struct DrgnFrame {
    function: String,
    pc: u64,
    vars: Vec<(String, String)>,
}

fn parse_drgn(text: &str) -> Vec<DrgnFrame> {
    let mut out: Vec<DrgnFrame> = Vec::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix('#') {
            let mut it = rest.split_whitespace();
            let _n = it.next();
            let function = it.next().unwrap_or("").to_string();
            let pc = it
                .next()
                .and_then(|p| p.strip_prefix("pc=0x"))
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .unwrap_or(0);
            out.push(DrgnFrame {
                function,
                pc,
                vars: Vec::new(),
            });
        } else if let Some(v) = l.strip_prefix("      ") {
            if let (Some(f), Some((n, val))) = (out.last_mut(), v.split_once(" = ")) {
                f.vars.push((n.trim().to_string(), val.trim().to_string()));
            }
        }
    }
    out
}

/// drgn's printed number: `(struct x *)0x0`, `(struct x *)sym+0x0 = 0xffff..`, `1448`, `-5`.
fn drgn_number(v: &str) -> Option<u64> {
    let last = v.rsplit(" = ").next()?;
    let last = match last.rfind(')') {
        Some(i) if last.starts_with('(') => &last[i + 1..],
        _ => last,
    };
    if let Some(h) = last.strip_prefix("0x") {
        return u64::from_str_radix(h, 16).ok();
    }
    last.parse::<i64>().ok().map(|x| x as u64)
}

#[test]
fn variables_match_drgn() {
    kmortem_lab::each(variables_match_drgn_on);
}

fn variables_match_drgn_on(lab: &kmortem_lab::Lab) {
    let names = [
        "estats_null",
        "uaf",
        "leaf_cfs_rq",
        "list_del_corruption",
        "wrong_cpu_index",
        "null_deref",
        "gpf",
        "timer_null",
        "workqueue_null",
    ];
    let (mut scopes_checked, mut vars_checked, mut regs_checked) = (0, 0, 0);
    for name in names {
        let sc = lab.need(name);
        let log = std::fs::read(sc.console_log()).expect("console.log");
        let report = kmortem_oops::parse(&log)
            .into_iter()
            .next()
            .expect("an oops in console.log");
        let drgn = parse_drgn(
            &std::fs::read_to_string(sc.oracle("drgn-bt.txt")).expect("drgn-bt.txt oracle"),
        );
        let mut sym = Symbolizer::new();
        sym.set_vmlinux(&sc.meta.vmlinux).expect("vmlinux");
        sym.add_module_file("kmlab", &sc.meta.kmlab_ko)
            .expect("kmlab.ko");
        let ip = report.ip.clone().expect("RIP");
        let q = Query {
            function: ip.function.as_deref(),
            offset: ip.offset,
            size: ip.size,
            module: ip.module.as_deref(),
            ..Default::default()
        };
        let r = sym.resolve(&q);
        let link = r.address.expect("RIP resolves");
        let scopes = sym
            .variables_at(ip.module.as_deref(), link)
            .expect("variables_at");
        // drgn's crashing group: the frames after the exception entry sharing one pc.
        let start = drgn
            .iter()
            .position(|f| f.function.starts_with("asm_exc_"))
            .expect("exception frame in drgn-bt")
            + 1;
        let pc = drgn[start].pc;
        let group: Vec<&DrgnFrame> = drgn[start..].iter().take_while(|f| f.pc == pc).collect();
        let ours: Vec<&str> = scopes.iter().map(|s| s.function.as_str()).collect();
        let theirs: Vec<&str> = group.iter().map(|f| f.function.as_str()).collect();
        println!("{name}: ours {ours:?} drgn {theirs:?}");
        assert_eq!(ours, theirs, "{name}: scopes at the RIP");
        for (s, d) in scopes.iter().zip(&group) {
            scopes_checked += 1;
            let a: BTreeSet<&str> = s.vars.iter().map(|v| v.name.as_str()).collect();
            let b: BTreeSet<&str> = d.vars.iter().map(|v| v.0.as_str()).collect();
            assert_eq!(a, b, "{name}/{}: variable names", s.function);
            for v in &s.vars {
                vars_checked += 1;
                let dv = &d.vars.iter().find(|x| x.0 == v.name).expect("same names").1;
                if v.location == Location::OptimizedOut {
                    assert_eq!(dv, "<optimized out>", "{name}/{}/{}", s.function, v.name);
                }
                if let Some(reg) = v.location.register() {
                    let rn = kmortem_symbols::vars::x86_64_register_name(reg).expect("x86 reg");
                    let Some(rv) = report.registers.get(rn).copied() else {
                        continue;
                    };
                    let Some(want) = drgn_number(dv) else {
                        continue;
                    };
                    let ok = rv == want
                        || (rv & 0xffff_ffff) == (want & 0xffff_ffff)
                        || (rv & 0xffff) == (want & 0xffff) && want < 0x10000;
                    println!("  {}: {} in %{rn} = {rv:#x}; drgn {dv}", s.function, v.name);
                    assert!(
                        ok,
                        "{name}/{}/{}: %{rn}={rv:#x} vs drgn {dv}",
                        s.function, v.name
                    );
                    regs_checked += 1;
                }
            }
        }
        // The caller, at its return address: names only.
        let caller = &drgn[start + group.len()];
        let frame = report
            .frames
            .iter()
            .find(|f| f.reliable && !f.function.is_empty())
            .expect("a caller frame");
        let q = Query {
            function: Some(frame.function.as_str()),
            offset: frame.offset,
            size: frame.size,
            module: frame.module.as_deref(),
            return_address: true,
            ..Default::default()
        };
        let r = sym.resolve(&q);
        if let Some(la) = r.lookup_address {
            let cs = sym
                .variables_at(frame.module.as_deref(), la)
                .expect("caller vars");
            let outer = cs.iter().find(|s| s.function == caller.function);
            if let Some(outer) = outer {
                let a: BTreeSet<&str> = outer.vars.iter().map(|v| v.name.as_str()).collect();
                let b: BTreeSet<&str> = caller.vars.iter().map(|v| v.0.as_str()).collect();
                assert_eq!(a, b, "{name}/{}: caller variable names", caller.function);
                scopes_checked += 1;
            }
        }
    }
    println!("checked {scopes_checked} scopes, {vars_checked} variables, {regs_checked} register values against drgn");
    assert!(regs_checked >= 5, "too few register locations checked");
}
