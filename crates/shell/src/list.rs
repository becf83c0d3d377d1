//! `list [-o OFFSET|TYPE.member] [-s TYPE.member] [-H|-h] ADDR`: a list_head or hlist walk
//! in crash's layout, with the corrupted link named.

use crate::args::{parse_num, resolve_addr};
use crate::output::{usage, CmdError, Output};
use kmortem_kernel::list::{walk_hlist, walk_list, End, DEFAULT_LIMIT};
use kmortem_kernel::mem::Memory;
use kmortem_kernel::Program;
use serde_json::{json, Value};

fn member_offset(prog: &Program, spec: &str) -> Result<u64, CmdError> {
    if let Some(n) = parse_num(spec) {
        return Ok(n);
    }
    let (t, m) = spec
        .split_once('.')
        .ok_or_else(|| usage(format!("{spec}: expected OFFSET or TYPE.member")))?;
    Ok(prog.offset_of(t.trim_start_matches("struct "), m)?)
}

/// `list [-o OFFSET|TYPE.member] [-s TYPE.member] [-H|-h] ADDR`
pub(crate) fn list(prog: &Program, args: &[&str]) -> Result<Output, CmdError> {
    const USAGE: &str = "usage: list [-o OFFSET|TYPE.member] [-s TYPE.member] [-H|-h] ADDR|SYMBOL";
    let mut offset = 0u64;
    let mut head_mode = false;
    let mut hlist = false;
    let mut pos = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match *a {
            "-o" | "-s" => {
                let v = it.next().ok_or_else(|| usage(USAGE))?;
                offset = member_offset(prog, v)?;
            }
            "-H" => head_mode = true,
            "-h" => {
                hlist = true;
                head_mode = true;
            }
            s if s.starts_with('-') && parse_num(s).is_none() => {
                return Err(usage(format!("list: unknown option {s}; {USAGE}")))
            }
            s => pos.push(s),
        }
    }
    let [start] = pos[..] else {
        return Err(usage(USAGE));
    };
    let start = resolve_addr(prog, start)?;
    // crash: without -H, ADDR is the first structure (its list_head at ADDR+offset) and is
    // printed; with -H, ADDR is a bare list head and is not.
    let (walk, first) = if hlist {
        (walk_hlist(prog, start, DEFAULT_LIMIT), None)
    } else if head_mode {
        (walk_list(prog, start, DEFAULT_LIMIT), None)
    } else {
        (
            walk_list(prog, start.wrapping_add(offset), DEFAULT_LIMIT),
            Some(start),
        )
    };
    // An unreadable start is a bad address, not a corrupted list.
    if let End::Corrupted(b) = &walk.end {
        if b.index == 0 {
            if let kmortem_kernel::list::Corruption::Unreadable { .. } = b.corruption {
                prog.read_u64(b.node)?;
            }
        }
    }
    let mut entries: Vec<u64> = first.into_iter().collect();
    entries.extend(walk.containers(offset));
    let mut t = String::new();
    for e in &entries {
        t.push_str(&format!("{e:016x}\n"));
    }
    match &walk.end {
        End::Complete => {}
        End::Cycle { at } => t.push_str(&format!(
            "list: loop detected: {at:x} comes back without reaching the head\n"
        )),
        End::Corrupted(b) => t.push_str(&format!("{b}\n")),
        End::Limit { limit } => t.push_str(&format!("list: stopped after {limit} entries\n")),
    }
    let mut j = serde_json::to_value(&walk).unwrap_or(Value::Null);
    j["offset"] = json!(offset);
    j["entries"] = json!(entries
        .iter()
        .map(|e| format!("{e:#x}"))
        .collect::<Vec<_>>());
    Ok(Output { text: t, json: j })
}
