//! The command language of `kmortem core`: crash's names and layouts (sys, log, ps, rd, sym,
//! struct), each giving text for people and a JSON value for machines (docs/json/core.md).

use kmortem_kernel::mem::Memory;
use kmortem_kernel::printk::LogRecord;
use kmortem_kernel::program::Program;
use kmortem_kernel::sys::{format_uptime, format_utc};
use kmortem_kernel::types::{Type, Types};
use serde_json::{json, Value};

pub struct Session {
    pub prog: Program,
    log: Option<Result<Vec<LogRecord>, String>>,
    log_holes: Vec<String>,
    /// State of the commands in cmds.rs (module search, the vmlinux's line tables).
    pub(crate) cmds: crate::cmds::State,
    /// `bt` state: ORC tables, DWARF symbolizer, pc cache (crate::bt).
    pub bt: crate::bt::BtState,
    /// Whether the warnings found at open were said already (the front end's business).
    pub opened_said: bool,
}

/// One command's result.
pub struct Output {
    pub text: String,
    pub json: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Program(#[from] kmortem_kernel::program::Error),
    #[error(transparent)]
    Read(#[from] kmortem_kernel::mem::ReadError),
}

pub(crate) fn usage(s: impl Into<String>) -> CmdError {
    CmdError::Usage(s.into())
}

pub const COMMANDS: &[(&str, &str)] = &[
    (
        "sys",
        "sys                      release, CPUs, memory, uptime, panic message, crash time",
    ),
    (
        "log",
        "log [-m] [-c]            the kernel log (-m: level, -c: caller id as dmesg shows it)",
    ),
    (
        "ps",
        "ps                       every task: PID, PPID, CPU, TASK, state, comm; '>' = on a CPU",
    ),
    (
        "rd",
        "rd [-8|-16|-32|-64] [-p] [-s] ADDR|SYMBOL [COUNT]   read memory (-p physical, -s symbols)",
    ),
    (
        "sym",
        "sym ADDR|NAME            address <-> symbol (module symbols too)",
    ),
    (
        "struct",
        "struct TYPE[.MEMBER] [-o] [ADDR]   type layout (-o offsets) or the value at ADDR",
    ),
    (
        "mod",
        "mod [-S DIR] [-s NAME FILE]   loaded modules: base, size, debug info found (-S: search DIR for .ko files)",
    ),
    (
        "list",
        "list [-o OFFSET|TYPE.member] [-s TYPE.member] [-H|-h] ADDR   walk a list_head (-H: ADDR is the head; -h: an hlist_head); reports a corrupted link",
    ),
    (
        "dis",
        "dis [-l] ADDR|FUNC [COUNT]   disassemble from the dump's memory (FUNC: whole function), checked against vmlinux; -l: source lines",
    ),
    (
        "runq",
        "runq                     each CPU's runqueue: current task, RT and CFS queued tasks",
    ),
    (
        "kmem",
        "kmem ADDR                the slab object (cache, free or allocated) or vmalloc area (caller, guard page) holding ADDR",
    ),
    (
        "bt",
        "bt [-a] [-f] [-l] [-v] [PID|TASK]   backtrace (panic task; -a every CPU; -f stack words; -l file:line; -v variables)",
    ),
    (
        "foreach",
        "foreach bt [-f] [-l] [-v]   the backtrace of every task",
    ),
    ("help", "help                     this list"),
];

pub(crate) fn parse_num(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u64::from_str_radix(h, 16).ok();
    }
    // crash treats bare words that look like hex addresses as hex.
    if s.len() >= 8 && s.chars().all(|c| c.is_ascii_hexdigit()) {
        return u64::from_str_radix(s, 16).ok();
    }
    s.parse().ok()
}

impl Session {
    pub fn new(prog: Program) -> Session {
        Session {
            prog,
            log: None,
            log_holes: Vec::new(),
            cmds: crate::cmds::State::default(),
            bt: Default::default(),
            opened_said: false,
        }
    }

    pub fn log(&mut self) -> Result<&[LogRecord], CmdError> {
        if self.log.is_none() {
            let r = kmortem_kernel::printk::read_log_partial(&self.prog, &self.prog.vmcoreinfo);
            self.log = Some(match r {
                Ok((l, holes)) => {
                    self.log_holes = holes;
                    Ok(l)
                }
                Err(e) => Err(e.to_string()),
            });
        }
        // Said on every command that uses the log (the log itself is read once).
        if !self.log_holes.is_empty() {
            self.prog.warnings.push(
                kmortem_kernel::warnings::Warning::new(
                    kmortem_kernel::warnings::Kind::Unreadable,
                    format!(
                        "log: {} records unreadable (first: {})",
                        self.log_holes.len(),
                        self.log_holes[0]
                    ),
                )
                .what("printk ring"),
            );
        }
        if let Some(Err(e)) = &self.log {
            self.prog.warnings.push(
                kmortem_kernel::warnings::Warning::new(
                    kmortem_kernel::warnings::Kind::Printk,
                    format!("log: {e}"),
                )
                .what("printk ring"),
            );
        }
        match self.log.as_ref() {
            Some(Ok(l)) => Ok(l),
            Some(Err(e)) => Err(usage(format!("log: {e}"))),
            None => Err(usage("log: unavailable")),
        }
    }

    /// Run one command line.
    pub fn run(&mut self, line: &str) -> Result<Output, CmdError> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&cmd, args)) = words.split_first() else {
            return Err(usage("empty command"));
        };
        match cmd {
            "sys" => self.sys(),
            "log" | "dmesg" => self.cmd_log(args),
            "ps" => self.ps(),
            "rd" => self.rd(args),
            "sym" => self.sym(args),
            "struct" | "union" => self.cmd_struct(args),
            "mod" => self.cmd_mod(args),
            "list" => self.cmd_list(args),
            "dis" => self.cmd_dis(args),
            "runq" => self.cmd_runq(args),
            "kmem" => self.cmd_kmem(args),
            "bt" => crate::bt::bt(&mut self.bt, &self.prog, args),
            "foreach" => crate::bt::foreach(&mut self.bt, &self.prog, args),
            "help" | "?" => Ok(Output {
                text: COMMANDS.iter().map(|(_, h)| format!("{h}\n")).collect(),
                json: json!(COMMANDS.iter().map(|(c, _)| c).collect::<Vec<_>>()),
            }),
            _ => Err(usage(format!(
                "unknown command {cmd:?}; commands: {}",
                COMMANDS
                    .iter()
                    .map(|(c, _)| *c)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    fn sys(&mut self) -> Result<Output, CmdError> {
        let log = self.log().ok().map(|l| l.to_vec());
        let mut s = self.prog.sys(log.as_deref());
        if self.prog.types().is_ok() {
            s.tasks = self.prog.tasks().ok().map(|t| t.len());
        }
        let mut t = String::new();
        let mut line = |k: &str, v: String| t.push_str(&format!("{k:>12}: {v}\n"));
        if let Some(k) = &s.kernel {
            line("KERNEL", k.clone());
        }
        line("DUMPFILE", format!("{}  [{}]", s.dumpfile, s.format));
        if s.offline_cpus.is_empty() {
            line("CPUS", s.cpus.to_string());
        } else {
            line(
                "CPUS",
                format!("{} [OFFLINE: {}]", s.cpus, s.offline_cpus.len()),
            );
        }
        if let Some(c) = s.crash_time {
            line("DATE", format_utc(c));
        }
        if let Some(u) = s.uptime_secs {
            line("UPTIME", format_uptime(u));
        }
        if let Some(n) = s.tasks {
            line("TASKS", n.to_string());
        }
        if let Some(v) = &s.nodename {
            line("NODENAME", v.clone());
        }
        if let Some(v) = &s.release {
            line("RELEASE", v.clone());
        }
        if let Some(v) = &s.version {
            line("VERSION", v.clone());
        }
        if let Some(v) = &s.machine {
            line("MACHINE", v.clone());
        }
        line("MEMORY", human_size(s.memory));
        if let Some(p) = &s.panic {
            line("PANIC", format!("\"{p}\""));
        }
        line("KASLR", s.kaslr_offset.clone());
        Ok(Output {
            text: t,
            json: serde_json::to_value(&s).unwrap_or(Value::Null),
        })
    }

    fn cmd_log(&mut self, args: &[&str]) -> Result<Output, CmdError> {
        let level = args.contains(&"-m");
        let caller = args.contains(&"-c");
        if let Some(bad) = args.iter().find(|a| !["-m", "-c"].contains(a)) {
            return Err(usage(format!(
                "log: unknown option {bad}; usage: log [-m] [-c]"
            )));
        }
        let l = self.log()?.to_vec();
        let l = &l;
        let mut t = String::with_capacity(l.len() * 80);
        for r in l {
            let mut s = r.format(caller);
            if level {
                let i = s.find("] ").map(|i| i + 2).unwrap_or(0);
                s.insert_str(i, &format!("<{}>", r.level));
            }
            t.push_str(&s);
            t.push('\n');
        }
        Ok(Output {
            text: t,
            json: serde_json::to_value(l).unwrap_or(Value::Null),
        })
    }

    fn ps(&mut self) -> Result<Output, CmdError> {
        let tasks = self.prog.tasks()?;
        let mut t = String::from("      PID    PPID  CPU       TASK        ST  COMM\n");
        for k in &tasks {
            let comm = if k.pid == 0 || k.ppid == 2 || k.pid == 2 {
                format!("[{}]", k.comm)
            } else {
                k.comm.clone()
            };
            t.push_str(&format!(
                "{} {:>7} {:>7} {:>3}  {:016x}  {:<2}  {}\n",
                if k.active { '>' } else { ' ' },
                k.pid,
                k.ppid,
                k.cpu,
                k.task,
                ps_state(&k.state),
                comm
            ));
        }
        Ok(Output {
            text: t,
            json: serde_json::to_value(&tasks).unwrap_or(Value::Null),
        })
    }

    pub(crate) fn resolve_addr(&self, s: &str) -> Result<u64, CmdError> {
        if let Some(a) = parse_num(s) {
            return Ok(a);
        }
        let (name, off) = match s.split_once('+') {
            Some((n, o)) => (
                n,
                parse_num(o).ok_or_else(|| usage(format!("bad offset in {s}")))?,
            ),
            None => (s, 0),
        };
        if let Some(a) = self.prog.symbol(name) {
            return Ok(a + off);
        }
        if let Some(m) = self.prog.module_symbol(name) {
            return Ok(m.addr + off);
        }
        Err(usage(format!("{s}: not a number or a known symbol")))
    }

    fn rd(&mut self, args: &[&str]) -> Result<Output, CmdError> {
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
        let addr = self.resolve_addr(addr)?;
        let count = match pos.get(1) {
            Some(c) => parse_dec(c).ok_or_else(|| usage(format!("bad count {c}")))?,
            None => 1,
        }
        .min(1 << 16);
        let mut buf = vec![0u8; count as usize * width];
        if phys {
            self.prog
                .dump
                .read_phys(addr, &mut buf)
                .map_err(kmortem_kernel::mem::ReadError::from)?;
        } else {
            self.prog.read(addr, &mut buf)?;
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
                    if let Some((s, off)) = self.prog.lookup(v) {
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

    fn sym(&mut self, args: &[&str]) -> Result<Output, CmdError> {
        let Some(q) = args.first() else {
            return Err(usage("usage: sym ADDR|NAME"));
        };
        if let Some(a) = parse_num(q) {
            let Some((s, off)) = self.prog.lookup(a) else {
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
        let s = self
            .prog
            .kernel_symbol(q)
            .or_else(|| self.prog.module_symbol(q))
            .or_else(|| {
                self.prog
                    .vmcoreinfo
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

    fn cmd_struct(&mut self, args: &[&str]) -> Result<Output, CmdError> {
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
            Some(a) => Some(self.resolve_addr(a)?),
            None => None,
        };
        let types = self.prog.types()?;
        let sid = types
            .find_struct(tname)
            .ok_or_else(|| usage(format!("struct: type {tname} not found")))?;
        kmortem_kernel::types::with_hex(hex, || {
            describe(&types, &self.prog, sid, member, addr, offsets, hex)
        })
    }
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

fn parse_dec(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x") {
        return u64::from_str_radix(h, 16).ok();
    }
    s.parse().ok()
}

fn ps_state(s: &str) -> &'static str {
    match s {
        "R" => "RU",
        "S" => "IN",
        "D" => "UN",
        "T" => "ST",
        "t" => "TR",
        "X" => "DE",
        "Z" => "ZO",
        "P" => "PA",
        "I" => "ID",
        _ => "??",
    }
}

fn human_size(b: u64) -> String {
    let g = b as f64 / (1u64 << 30) as f64;
    if g >= 1.0 {
        return format!("{:.1} GB", g);
    }
    format!("{:.1} MB", b as f64 / (1u64 << 20) as f64)
}
