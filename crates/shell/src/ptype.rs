//! `struct TYPE[.MEMBER] [-o] [ADDR]`: a type's definition (gdb's `ptype` layout, as crash
//! prints it), its offsets, or the values of an object at an address.

use crate::args::resolve_addr;
use crate::output::{usage, CmdError, Output};
use kmortem_kernel::mem::Memory;
use kmortem_kernel::types::{Type, Types};
use kmortem_kernel::Program;
use serde_json::{json, Value};

pub(crate) fn cmd_struct(prog: &Program, args: &[&str]) -> Result<Output, CmdError> {
    let offsets = args.contains(&"-o");
    let hex = args.contains(&"-x");
    let pos: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| !a.starts_with('-'))
        .collect();
    let Some(spec) = pos.first() else {
        return Err(usage("usage: struct TYPE[.MEMBER] [-o] [ADDR]"));
    };
    let (tname, member) = match spec.split_once('.') {
        Some((t, m)) => (t, Some(m)),
        None => (*spec, None),
    };
    let addr = match pos.get(1) {
        Some(a) => Some(resolve_addr(prog, a)?),
        None => None,
    };
    let types = prog.types()?;
    let sid = types
        .find_struct(tname)
        .ok_or_else(|| usage(format!("struct: type {tname} not found")))?;
    kmortem_kernel::types::with_hex(hex, || {
        describe(&types, prog, sid, member, addr, offsets, hex)
    })
}

/// `struct` for any type source: definition, `-o` offsets, or values at an address.
pub fn describe(
    types: &Types<'_>,
    mem: &dyn Memory,
    sid: u64,
    member: Option<&str>,
    addr: Option<u64>,
    offsets: bool,
    hex: bool,
) -> Result<Output, CmdError> {
    let tname = types.name(types.resolve(sid).0);
    if let Some(m) = member {
        let f = types
            .path(sid, m)
            .ok_or_else(|| usage(format!("struct: {tname} has no member {m}")))?;
        let tyn = types.name(f.ty);
        let Some(a) = addr else {
            let text = format!("  [{:#x}] {}\n", f.offset, decl(types, f.ty, m, f.bit_size));
            return Ok(Output {
                text,
                json: json!({"type": tname, "member": m, "offset": f.offset, "member_type": tyn, "size": types.size_of(f.ty)}),
            });
        };
        let (_, mt) = types.resolve(f.ty);
        let v = if let Type::Struct { .. } = mt {
            types.scalar(mem, f.ty, a + f.offset, None, 0, 1)
        } else {
            types.scalar(mem, f.ty, a + f.offset, f.bit_size, f.bit_offset, 1)
        };
        let last = m.rsplit('.').next().unwrap_or(m);
        return Ok(Output {
            text: format!("  {last} = {v},\n"),
            json: json!({"type": tname, "member": m, "addr": format!("{a:#x}"), "offset": f.offset, "member_type": tyn, "value": v}),
        });
    }
    let size = types.size_of(sid);
    let members_json = members_json(types, sid, 0);
    match addr {
        Some(a) => {
            let text = format!(
                "{}{}",
                addr_header(a, &tname),
                types.format_value(mem, sid, a)
            );
            Ok(Output {
                text,
                json: json!({"type": tname, "size": size, "addr": format!("{a:#x}"), "value": text_values(types, mem, sid, a)}),
            })
        }
        None => {
            let text = if offsets {
                types.layout(sid, hex)
            } else {
                definition(types, sid, hex)
            };
            Ok(Output {
                text,
                json: json!({"type": tname, "size": size, "members": members_json}),
            })
        }
    }
}

fn addr_header(_a: u64, _t: &str) -> String {
    String::new()
}

fn members_json(types: &Types<'_>, sid: u64, base: u64) -> Value {
    let (_, t) = types.resolve(sid);
    let Type::Struct { members, .. } = t else {
        return Value::Null;
    };
    Value::Array(
        members
            .iter()
            .map(|m| {
                let mut o = json!({
                    "name": m.name,
                    "offset": base + m.bit_offset / 8,
                    "type": types.name(m.ty),
                    "size": types.size_of(m.ty),
                });
                if let Some(b) = m.bit_size {
                    o["bit_offset"] = json!(base * 8 + m.bit_offset);
                    o["bit_size"] = json!(b);
                }
                if m.name.is_none() {
                    o["members"] = members_json(types, m.ty, base + m.bit_offset / 8);
                }
                o
            })
            .collect(),
    )
}

/// Values as a JSON object: member name -> value string (nested objects for structs).
fn text_values(types: &Types<'_>, mem: &dyn Memory, sid: u64, addr: u64) -> Value {
    let (_, t) = types.resolve(sid);
    let Type::Struct { members, .. } = t else {
        return Value::String(types.scalar(mem, sid, addr, None, 0, 0));
    };
    let mut map = serde_json::Map::new();
    for m in &members {
        let a = addr + m.bit_offset / 8;
        let (_, mt) = types.resolve(m.ty);
        let v = match mt {
            Type::Struct { .. } => text_values(types, mem, m.ty, a),
            _ => Value::String(types.scalar(mem, m.ty, a, m.bit_size, (m.bit_offset % 8) as u8, 0)),
        };
        match &m.name {
            Some(n) => {
                map.insert(n.clone(), v);
            }
            None => {
                if let Value::Object(inner) = v {
                    map.extend(inner);
                }
            }
        }
    }
    Value::Object(map)
}

/// A C declaration: `struct list_head *next`, `char comm[16]`, `unsigned int x : 1`.
pub fn decl(types: &Types<'_>, ty: u64, name: &str, bits: Option<u32>) -> String {
    let n = types.name(ty);
    let b = bits.map(|b| format!(" : {b}")).unwrap_or_default();
    if let Some(i) = n.find(" [") {
        // array: put the name before the dimensions
        let (base, dims) = n.split_at(i);
        let sep = if base.ends_with('*') { "" } else { " " };
        return format!("{base}{sep}{name}{}{b}", dims.trim_start());
    }
    if let Some(i) = n.find(" (*)") {
        let (base, rest) = n.split_at(i);
        return format!("{base} (*{name}){}{b}", &rest[4..]);
    }
    let sep = if n.ends_with('*') { "" } else { " " };
    format!("{n}{sep}{name}{b}")
}

/// gdb's `ptype` layout, as crash's `struct NAME` prints it (then `SIZE:`).
pub fn definition(types: &Types<'_>, sid: u64, hex: bool) -> String {
    let (rid, t) = types.resolve(sid);
    let mut out = format!("{} {{\n", types.name(rid));
    def_members(types, &t, 1, &mut out);
    out.push_str("}\n");
    let size = types.size_of(sid);
    if hex {
        out.push_str(&format!("SIZE: {size:#x}\n"));
    } else {
        out.push_str(&format!("SIZE: {size}\n"));
    }
    out
}

fn def_members(types: &Types<'_>, t: &Type, depth: usize, out: &mut String) {
    let Type::Struct { members, .. } = t else {
        return;
    };
    let pad = "    ".repeat(depth);
    for m in members {
        let (_, mt) = types.resolve(m.ty);
        match (&m.name, &mt) {
            (None, Type::Struct { union, .. }) => {
                out.push_str(&format!(
                    "{pad}{} {{\n",
                    if *union { "union" } else { "struct" }
                ));
                def_members(types, &mt, depth + 1, out);
                out.push_str(&format!("{pad}}};\n"));
            }
            _ => {
                let name = m.name.clone().unwrap_or_default();
                out.push_str(&format!("{pad}{};\n", decl(types, m.ty, &name, m.bit_size)));
            }
        }
    }
}
