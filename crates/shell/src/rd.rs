//! `rd` and `sym`: memory as words (crash's layout), and addresses as symbols and back.

use crate::args::{parse_dec, parse_num, resolve_addr};
use crate::output::{usage, CmdError, Output};
use kmortem_kernel::mem::Memory;
use kmortem_kernel::Program;
use serde_json::json;

pub(crate) fn rd(prog: &Program, args: &[&str]) -> Result<Output, CmdError> {
    let mut width = 8usize;
    let mut phys = false;
    let mut syms = false;
    let mut pos = Vec::new();
    for a in args {
        match *a {
            "-8" => width = 1,
            "-16" => width = 2,
            "-32" => width = 4,
            "-64" => width = 8,
            "-p" => phys = true,
            "-s" => syms = true,
            _ => pos.push(*a),
        }
    }
    let Some(addr) = pos.first() else {
        return Err(usage(
            "usage: rd [-8|-16|-32|-64] [-p] [-s] ADDR|SYMBOL [COUNT]",
        ));
    };
    let addr = resolve_addr(prog, addr)?;
    let count = match pos.get(1) {
        Some(c) => parse_dec(c).ok_or_else(|| usage(format!("bad count {c}")))?,
        None => 1,
    }
    .min(1 << 16);
    let mut buf = vec![0u8; count as usize * width];
    if phys {
        prog.dump
            .read_phys(addr, &mut buf)
            .map_err(kmortem_kernel::mem::ReadError::from)?;
    } else {
        prog.read(addr, &mut buf)?;
    }
    let per_line = 16 / width;
    let mut t = String::new();
    let mut values = Vec::new();
    for (li, chunk) in buf.chunks(16).enumerate() {
        t.push_str(&format!("{:016x}:  ", addr + li as u64 * 16));
        let mut cols = Vec::new();
        for w in chunk.chunks(width) {
            let mut b = [0u8; 8];
            b[..w.len()].copy_from_slice(w);
            let v = u64::from_le_bytes(b);
            values.push(v);
            if syms && width == 8 {
                if let Some((s, off)) = prog.lookup(v) {
                    cols.push(if off == 0 {
                        format!("{:<16}", s.name)
                    } else {
                        format!("{}+{off}", s.name)
                    });
                    continue;
                }
            }
            cols.push(format!("{:0w$x}", v, w = width * 2));
        }
        let _ = per_line;
        t.push_str(&cols.join(" "));
        if width == 1 || !syms {
            let pad = (16 / width - chunk.len() / width) * (width * 2 + 1);
            t.push_str(&" ".repeat(pad + 2));
            t.extend(chunk.iter().map(|&c| {
                if (0x20..0x7f).contains(&c) {
                    c as char
                } else {
                    '.'
                }
            }));
        }
        t.push('\n');
    }
    Ok(Output {
        text: t,
        json: json!({
            "addr": format!("{addr:#x}"),
            "width": width,
            "physical": phys,
            "values": values.iter().map(|v| format!("{v:#x}")).collect::<Vec<_>>(),
        }),
    })
}

pub(crate) fn sym(prog: &Program, args: &[&str]) -> Result<Output, CmdError> {
    let Some(q) = args.first() else {
        return Err(usage("usage: sym ADDR|NAME"));
    };
    if let Some(a) = parse_num(q) {
        let Some((s, off)) = prog.lookup(a) else {
            return Err(usage(format!("sym: {a:#x}: no symbol found")));
        };
        let name = if off == 0 {
            s.name.clone()
        } else {
            format!("{}+{off}", s.name)
        };
        let m = s
            .module
            .as_ref()
            .map(|m| format!(" [{m}]"))
            .unwrap_or_default();
        return Ok(Output {
            text: format!("{a:016x} ({}) {name}{m}\n", s.kind),
            json: json!({"addr": format!("{a:#x}"), "name": s.name, "offset": off, "type": s.kind.to_string(), "size": s.size, "module": s.module}),
        });
    }
    let s = prog
        .kernel_symbol(q)
        .or_else(|| prog.module_symbol(q))
        .or_else(|| {
            prog.vmcoreinfo
                .symbol(q)
                .map(|a| kmortem_kernel::symbols::Symbol {
                    name: q.to_string(),
                    addr: a,
                    size: 0,
                    kind: '?',
                    module: None,
                })
        })
        .ok_or_else(|| usage(format!("sym: {q}: symbol not found")))?;
    let m = s
        .module
        .as_ref()
        .map(|m| format!(" [{m}]"))
        .unwrap_or_default();
    Ok(Output {
        text: format!("{:016x} ({}) {}{m}\n", s.addr, s.kind, s.name),
        json: json!({"addr": format!("{:#x}", s.addr), "name": s.name, "offset": 0, "type": s.kind.to_string(), "size": s.size, "module": s.module}),
    })
}
