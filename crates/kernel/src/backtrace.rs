//! Backtraces as data: a task's stack walked by [`crate::unwind`] (from its CPU's registers when
//! it is running there, else from `thread.sp`), each pc resolved to its function, module and
//! file:line with inlined calls as frames of their own (from the vmlinux/.ko DWARF, through
//! kmortem-symbols), and `bt -v`'s variables evaluated against the frame's registers and the
//! dump. Laying them out as crash's `bt` text or JSON is kmortem-shell's `bt`.

use crate::mem::Memory;
use crate::program::{Error, Program};
use crate::unwind::{stacks, Frame, Regs, Start, Trace, Unwinder};
use crate::unwind::{AX, BP, BX, CX, DI, DX, IP, R10, R11, R12, R13, R14, R15, R8, R9, SI, SP};
use kmortem_symbols::{Query, Symbolizer};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

/// State kept across `bt` commands: ORC tables, the DWARF symbolizer, and a cache of
/// resolved pcs (thousands of sleeping tasks share the same few stacks).
#[derive(Default)]
pub struct BtState {
    pub unwinder: Unwinder,
    symbolizer: Option<Option<Symbolizer>>,
    /// Extra directories searched for module `.ko` files with debug info.
    pub module_dirs: Vec<PathBuf>,
    cache: HashMap<(u64, bool), Resolved>,
    /// Whether `task_trace` evaluates each frame's variables (`bt -v`).
    pub want_vars: bool,
    cfi: Option<Option<crate::unwind::cfi::Cfi>>,
    /// Modules whose `.ko` was checked against the dump (vermagic), so that a file of another
    /// build is named once and never used.
    checked_modules: std::collections::HashSet<String>,
}

#[derive(Debug, Clone, Default)]
struct Resolved {
    symbol: Option<String>,
    offset: u64,
    module: Option<String>,
    /// Inlined frames, innermost first: (function, file, line).
    inlined: Vec<(String, Option<String>, u32)>,
    file: Option<String>,
    line: u32,
    /// Link-time address of the lookup pc in its binary (for `variables_at`).
    link: Option<u64>,
}

/// One printed frame.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BtFrame {
    pub function: Option<String>,
    #[serde(serialize_with = "crate::hex_addr")]
    pub address: u64,
    pub module: Option<String>,
    pub inline: bool,
    pub exception: bool,
    #[serde(serialize_with = "crate::hex_addr")]
    pub stack_address: u64,
    pub offset: u64,
    pub file: Option<String>,
    pub line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registers: Option<serde_json::Map<String, Value>>,
    /// `bt -v`: parameters and locals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variables: Option<Vec<FrameVar>>,
    /// Index into the unwound (physical) frames.
    #[serde(skip)]
    pub phys: usize,
}

/// One task's backtrace.
#[derive(Debug, Clone)]
pub struct TaskTrace {
    pub pid: i64,
    pub cpu: Option<u32>,
    pub task: u64,
    pub comm: String,
    pub frames: Vec<BtFrame>,
    pub trace: Trace,
}

/// Registers as JSON: name -> `0x` hex string.
pub fn regs_json(r: &Regs) -> serde_json::Map<String, Value> {
    crate::unwind::REG_NAMES
        .iter()
        .zip(r.0.iter())
        .map(|(n, v)| (n.to_string(), Value::String(format!("{v:#x}"))))
        .collect()
}

impl BtState {
    fn symbolizer(&mut self, prog: &Program) -> Option<&mut Symbolizer> {
        if self.symbolizer.is_none() {
            let s = prog.vmlinux.as_ref().and_then(|v| {
                let mut s = Symbolizer::new();
                s.set_vmlinux(&v.path).ok()?;
                s.kaslr_offset = Some(prog.kaslr);
                // The debug package's module tree next to the vmlinux:
                // usr/lib/debug/boot/vmlinux-R -> usr/lib/debug/lib/modules/R.
                if let (Some(root), Some(rel)) = (
                    v.path.parent().and_then(|p| p.parent()),
                    prog.vmcoreinfo.osrelease.as_deref(),
                ) {
                    let d = root.join("lib/modules").join(rel);
                    if d.is_dir() {
                        s.add_module_dir(&d);
                    }
                }
                for d in &self.module_dirs {
                    s.add_module_dir(d);
                }
                Some(s)
            });
            self.symbolizer = Some(s);
        }
        self.symbolizer.as_mut().and_then(|s| s.as_mut())
    }

    /// The first time a frame of module `m` is resolved: the `.ko` found for it must be the
    /// build the dump loaded (vermagic, `Program::module_file_mismatch`, the check `mod` makes);
    /// one of another build is named as a warning and left out, so `bt` never prints file:line
    /// from it. Pinned by `lab_bt_names_a_module_of_another_build`.
    fn check_module_file(&mut self, prog: &Program, m: &str) {
        if !self.checked_modules.insert(m.to_string()) {
            return;
        }
        let Some(sym) = self.symbolizer(prog) else {
            return;
        };
        let key = m.replace('-', "_");
        let Some(path) = sym.module_paths().get(&key).cloned() else {
            return;
        };
        if let Some(why) = prog.module_file_mismatch(m, &path) {
            sym.reject_module(m);
            prog.warnings.push(
                crate::warnings::Warning::new(crate::warnings::Kind::ModuleMismatch, why)
                    .what(format!("module {m}")),
            );
        }
    }

    fn resolve(&mut self, prog: &Program, pc: u64, ret: bool) -> Resolved {
        if let Some(r) = self.cache.get(&(pc, ret)) {
            return r.clone();
        }
        let lookup = if ret { pc.wrapping_sub(1) } else { pc };
        let mut r = Resolved::default();
        if let Some((s, _)) = prog.lookup(lookup) {
            r.symbol = Some(s.name.clone());
            r.offset = pc.wrapping_sub(s.addr);
            r.module = s.module.clone();
            let (name, module) = (s.name.clone(), s.module.clone());
            if let Some(m) = &module {
                self.check_module_file(prog, m);
            }
            if let Some(sym) = self.symbolizer(prog) {
                // Look up the call instruction (pc - 1) ourselves: a call to a noreturn
                // function can be a function's last instruction, and then the return address
                // is the first byte of the next function.
                let q = Query {
                    function: module.as_ref().map(|_| name.as_str()),
                    offset: module.as_ref().map(|_| lookup.wrapping_sub(s.addr)),
                    size: None,
                    module: module.as_deref(),
                    address: Some(lookup),
                    return_address: false,
                };
                let res = sym.resolve(&q);
                r.link = res.address;
                let n = res.frames.len();
                for (i, f) in res.frames.iter().enumerate() {
                    if i + 1 < n {
                        r.inlined.push((
                            f.function.clone().unwrap_or_else(|| "??".into()),
                            f.file.clone(),
                            f.line,
                        ));
                    } else {
                        r.file = f.file.clone();
                        r.line = f.line;
                    }
                }
            }
        }
        self.cache.insert((pc, ret), r.clone());
        r
    }

    /// The printed frames of one walk: inlined frames first at each pc.
    fn frames(&mut self, prog: &Program, t: &Trace) -> Vec<BtFrame> {
        let mut out = Vec::new();
        for (i, f) in t.frames.iter().enumerate() {
            let r = self.resolve(prog, f.pc, f.return_address);
            for (func, file, line) in &r.inlined {
                out.push(BtFrame {
                    function: Some(func.clone()),
                    address: f.pc,
                    module: r.module.clone(),
                    inline: true,
                    exception: f.exception,
                    stack_address: f.stack_address,
                    offset: r.offset,
                    file: file.clone(),
                    line: (*line > 0).then_some(*line),
                    registers: None,
                    variables: None,
                    phys: i,
                });
            }
            out.push(BtFrame {
                function: r.symbol.clone(),
                address: f.pc,
                module: r.module.clone(),
                inline: false,
                exception: f.exception,
                stack_address: f.stack_address,
                offset: r.offset,
                file: r.file.clone(),
                line: (r.line > 0).then_some(r.line),
                registers: f.exception.then(|| regs_json(&f.regs)),
                variables: None,
                phys: i,
            });
        }
        out
    }

    /// Walk one task: from its CPU's registers if it is running there, else from thread.sp.
    pub fn trace_task(
        &mut self,
        prog: &Program,
        task: u64,
        cpu_running: Option<u32>,
    ) -> Result<Trace, Error> {
        let regs = match cpu_running {
            Some(c) => stacks::cpu_regs_checked(prog, c).map_err(|why| {
                prog.warnings.push(
                    crate::warnings::Warning::new(
                        crate::warnings::Kind::MissingRegisters,
                        format!("bt: {why}: the stack of the task running there cannot be walked"),
                    )
                    .what("NT_PRSTATUS"),
                );
                Error::Missing(format!(
                    "bt: {why}: cannot walk the stack of task {task:#x} (a running task's thread.sp is stale)"
                ))
            })?,
            None => None,
        };
        let start = match regs {
            Some(r) => Start::Regs(r),
            None => stacks::inactive_start(prog, task)?,
        };
        Ok(self.unwinder.unwind(prog, start))
    }

    pub fn task_trace(
        &mut self,
        prog: &Program,
        task: u64,
        pid: i64,
        comm: String,
        cpu: Option<u32>,
        running: bool,
    ) -> Result<TaskTrace, Error> {
        let trace = self.trace_task(prog, task, if running { cpu } else { None })?;
        let mut frames = self.frames(prog, &trace);
        if self.want_vars {
            self.add_vars(prog, &trace, &mut frames);
        }
        Ok(TaskTrace {
            pid,
            cpu,
            task,
            comm,
            frames,
            trace,
        })
    }
}

/// A task's PID and comm (-1 and "" where unreadable).
pub fn task_ident(prog: &Program, task: u64) -> (i64, String) {
    let pid = prog
        .read_member(task, "task_struct", "pid")
        .map(|p| p as u32 as i32 as i64)
        .unwrap_or(-1);
    let comm = prog
        .offset_of("task_struct", "comm")
        .ok()
        .and_then(|o| prog.read_cstr(task + o, 16).ok())
        .map(|c| String::from_utf8_lossy(&c).into_owned())
        .unwrap_or_default();
    (pid, comm)
}

/// `bt -f`: the stack words between a frame's return-address slot and the next frame's
/// (start address, words); `Err(start)` when unreadable.
pub fn stack_words(prog: &Program, phys: &[Frame], i: usize) -> Result<(u64, Vec<u64>), u64> {
    let f = &phys[i];
    let from = f.stack_address.wrapping_add(8);
    let to = match phys.get(i + 1) {
        Some(n) if !n.exception => n.stack_address,
        Some(n) => n.regs_addr.unwrap_or(from),
        None => f.cfa.unwrap_or(from),
    };
    if to <= from || to - from > 8192 {
        return Ok((from, Vec::new()));
    }
    let b = prog
        .read_vec(from, (to - from) as usize)
        .map_err(|_| from)?;
    let words = b
        .chunks(8)
        .map(|w| {
            let mut a = [0u8; 8];
            a[..w.len()].copy_from_slice(w);
            u64::from_le_bytes(a)
        })
        .collect();
    Ok((from, words))
}

/// The CPU the kernel panicked on (`panic_cpu`, else `crashing_cpu`), if any.
pub fn panic_cpu(prog: &Program) -> Option<u32> {
    ["panic_cpu", "crashing_cpu"].iter().find_map(|s| {
        prog.symbol(s)
            .and_then(|a| prog.read_u32(a).ok())
            .filter(|&c| c != u32::MAX)
    })
}

/// The task running on each CPU: (cpu, task).
pub fn active_tasks(prog: &Program) -> Vec<(u32, u64)> {
    prog.present_cpus()
        .into_iter()
        .filter_map(|c| {
            let t = stacks::current_task(prog, c);
            if t.is_none() {
                prog.warnings.push(
                    crate::warnings::Warning::new(
                        crate::warnings::Kind::Unreadable,
                        format!("bt: CPU {c}: its current task is unreadable in this dump"),
                    )
                    .what("current_task"),
                );
            }
            t.map(|t| (c, t))
        })
        .collect()
}

/// One variable of a frame, as `bt -v` prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FrameVar {
    pub name: String,
    pub is_param: bool,
    #[serde(rename = "type")]
    pub type_name: String,
    /// drgn's notation: `(type)value`, a plain integer, a string, or `<optimized out>`.
    pub value: String,
    /// Where the value was found: `%rsi`, `[CFA-0x10]`, ... (the DWARF location).
    pub location: String,
}

impl BtState {
    /// `bt -v`: each frame's variables (kmortem-symbols' `variables_at`), evaluated against
    /// the registers this frame has (all of them in frame 0 and exception frames; ip, sp and
    /// bp in caller frames) and the dump's memory.
    /// Registers of every walked frame by DWARF number: what the unwinder knows, plus the
    /// callee-saved registers that vmlinux's CFI recovers from the frame below.
    fn frame_registers(&mut self, prog: &Program, trace: &Trace) -> Vec<[Option<u64>; 17]> {
        const MAP: [usize; 17] = [
            AX, DX, CX, BX, SI, DI, BP, SP, R8, R9, R10, R11, R12, R13, R14, R15, IP,
        ];
        if self.cfi.is_none() {
            self.cfi = Some(
                prog.vmlinux
                    .as_ref()
                    .and_then(|v| crate::unwind::cfi::Cfi::load(&v.path)),
            );
        }
        let cfi = self.cfi.as_ref().and_then(|c| c.as_ref());
        let mut out: Vec<[Option<u64>; 17]> = Vec::with_capacity(trace.frames.len());
        for (i, f) in trace.frames.iter().enumerate() {
            let mut r = [None; 17];
            for (n, &idx) in MAP.iter().enumerate() {
                r[n] = f.reg(idx);
            }
            if let (Some(prev), Some(cfi), false) = (i.checked_sub(1), cfi, f.exception) {
                let pf = &trace.frames[prev];
                let in_vmlinux = prog
                    .lookup(pf.lookup_pc())
                    .is_some_and(|(s, _)| s.module.is_none());
                if in_vmlinux {
                    let below = out[prev];
                    let regs = |n: u16| below.get(n as usize).copied().flatten();
                    let mem = |a: u64| prog.read_u64(a).ok();
                    let link = pf.lookup_pc().wrapping_sub(prog.kaslr);
                    if let Some((cfa, saved)) = cfi.caller_saved(link, &regs, &mem) {
                        // Trust CFI only where it agrees with ORC on the frame's CFA.
                        if pf.cfa.is_none_or(|c| c == cfa) {
                            for (reg, v) in saved {
                                if r[reg as usize].is_none() {
                                    r[reg as usize] = Some(v);
                                }
                            }
                        }
                    }
                }
            }
            out.push(r);
        }
        out
    }

    fn add_vars(&mut self, prog: &Program, trace: &Trace, frames: &mut [BtFrame]) {
        let regsets = self.frame_registers(prog, trace);
        let mut k = 0;
        while k < frames.len() {
            let p = frames[k].phys;
            let group: Vec<usize> = (k..frames.len())
                .take_while(|&j| frames[j].phys == p)
                .collect();
            k += group.len();
            let pf = &trace.frames[p];
            let r = self.resolve(prog, pf.pc, pf.return_address);
            let (Some(link), Some(sym)) = (r.link, self.symbolizer(prog)) else {
                continue;
            };
            let module = r.module.clone();
            let Ok(scopes) = sym.variables_at(module.as_deref(), link) else {
                continue;
            };
            let bin = match &module {
                Some(m) => sym.module(m),
                None => sym.vmlinux.clone(),
            };
            let Some(bin) = bin else { continue };
            for (gi, scope) in group.iter().zip(scopes.iter()) {
                let vars = scope
                    .vars
                    .iter()
                    .map(|v| eval_var(prog, pf, &regsets[p], &bin, module.as_deref(), v))
                    .collect();
                frames[*gi].variables = Some(vars);
            }
        }
    }
}

fn eval_var(
    prog: &Program,
    f: &Frame,
    dwregs: &[Option<u64>; 17],
    bin: &kmortem_symbols::Binary,
    module: Option<&str>,
    v: &kmortem_symbols::Variable,
) -> FrameVar {
    use kmortem_symbols::vars::{evaluate, TypeKind};
    use kmortem_symbols::{Location, Value as V};
    let mut out = FrameVar {
        name: v.name.clone(),
        is_param: v.is_param,
        type_name: v.type_name.clone(),
        value: "<optimized out>".into(),
        location: v.location.describe(),
    };
    out.type_name = c_type_name(&v.type_name);
    let Location::Expr(e) = &v.location else {
        return out;
    };
    // DW_OP_addr operands are link-time addresses (static variables): move them to where the
    // kernel (KASLR) or the module (its sections' load addresses) put them.
    let mut e = e.clone();
    for at in addr_operands(&e) {
        let a = u64::from_le_bytes(e[at..at + 8].try_into().unwrap_or_default());
        match relocate_link(prog, bin, module, a) {
            Some(r) => e[at..at + 8].copy_from_slice(&r.to_le_bytes()),
            None => {
                out.value = format!("<unavailable: cannot place link address {a:#x}>");
                return out;
            }
        }
    }
    let e = &e;
    let regs = |n: u16| -> Option<u64> { dwregs.get(n as usize).copied().flatten() };
    let mem = |a: u64, n: usize| prog.read_vec(a, n).ok();
    let Ok(val) = evaluate(e, &regs, &mem, f.cfa) else {
        return out;
    };
    let ty = v.type_die.and_then(|d| bin.strip_type(d));
    let size = ty
        .as_ref()
        .and_then(|t| bin.sizeof(t))
        .unwrap_or(8)
        .clamp(1, 8) as usize;
    let raw: Option<u64> = match &val {
        V::Register(r) => regs(*r),
        V::Constant(c) => Some(*c),
        V::Memory(a) => {
            // Strings: char arrays read as text, like drgn.
            if let Some(t) = &ty {
                if t.kind == TypeKind::Array {
                    let elem = t.target.and_then(|d| bin.strip_type(d));
                    if elem
                        .as_ref()
                        .and_then(|e| e.name.as_deref())
                        .is_some_and(|n| n.ends_with("char"))
                    {
                        let n = t.count.unwrap_or(0).min(4096) as usize;
                        if let Ok(b) = prog.read_vec(*a, n) {
                            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                            out.value = format!("{:?}", String::from_utf8_lossy(&b[..end]));
                        }
                        return out;
                    }
                }
                if matches!(t.kind, TypeKind::Struct | TypeKind::Union | TypeKind::Array) {
                    out.value = format!("({}){{...}} at {a:#x}", v.type_name);
                    return out;
                }
            }
            prog.read_vec(*a, size).ok().map(|b| {
                let mut x = [0u8; 8];
                x[..b.len().min(8)].copy_from_slice(&b[..b.len().min(8)]);
                u64::from_le_bytes(x)
            })
        }
        V::Pieces(_) | V::Unknown(_) => None,
    };
    let Some(mut x) = raw else {
        // Not "optimized out": DWARF says where the value is, but this frame lacks it (ORC
        // recovers only ip, sp and bp in caller frames).
        out.value = match &val {
            V::Unknown(why) => format!("<unavailable: {why}>"),
            V::Register(r) => format!(
                "<unavailable: {} not recovered in this frame>",
                kmortem_symbols::vars::x86_64_register_name(*r).unwrap_or("register")
            ),
            V::Memory(a) => format!("<unavailable: memory at {a:#x} not readable>"),
            _ => "<unavailable>".into(),
        };
        return out;
    };
    if size < 8 {
        x &= (1u64 << (size * 8)) - 1;
    }
    out.value = match ty.as_ref().map(|t| t.kind) {
        Some(TypeKind::Pointer) | Some(TypeKind::Function) => format!("({}){x:#x}", out.type_name),
        Some(TypeKind::Struct | TypeKind::Union | TypeKind::Array) => {
            format!("({}){{...}}", v.type_name)
        }
        Some(TypeKind::Enum) => enum_name(prog, &out.type_name, x, size)
            .unwrap_or_else(|| format!("({}){x}", out.type_name)),
        _ => {
            let name = ty.as_ref().and_then(|t| t.name.clone()).unwrap_or_default();
            let signed = !name.contains("unsigned") && name != "_Bool" && !name.is_empty();
            if signed {
                let sh = 64 - size as u32 * 8;
                (((x << sh) as i64) >> sh).to_string()
            } else {
                x.to_string()
            }
        }
    };
    out
}

/// A link-time address of vmlinux or of a module `.ko` (kmortem-symbols' layout of its
/// sections) as a runtime address: vmlinux moves by the KASLR offset; a module section moves
/// as a whole, so any symbol of the same section, found in the module's kallsyms, places it.
fn relocate_link(
    prog: &Program,
    bin: &kmortem_symbols::Binary,
    module: Option<&str>,
    a: u64,
) -> Option<u64> {
    let Some(m) = module else {
        return Some(a.wrapping_add(prog.kaslr));
    };
    let sec = bin
        .sections
        .iter()
        .find(|s| s.size > 0 && a >= s.address && a < s.address + s.size)?;
    bin.symbols
        .iter()
        .filter(|s| s.section == sec.index && !s.name.is_empty())
        .find_map(|s| {
            let rt = prog.module_symbol(&format!("{m}:{}", s.name))?;
            Some(rt.addr.wrapping_add(a.wrapping_sub(s.address)))
        })
}

/// DWARF's base type spellings as C programmers (and drgn) write them.
fn c_type_name(t: &str) -> String {
    const MAP: [(&str, &str); 6] = [
        ("long long unsigned int", "unsigned long long"),
        ("long long int", "long long"),
        ("long unsigned int", "unsigned long"),
        ("short unsigned int", "unsigned short"),
        ("long int", "long"),
        ("short int", "short"),
    ];
    let mut s = t.to_string();
    for (a, b) in MAP {
        s = s.replace(a, b);
    }
    s
}

/// Byte offsets of the 8-byte operands of every `DW_OP_addr` in a location expression.
fn addr_operands(e: &[u8]) -> Vec<usize> {
    let enc = gimli::Encoding {
        format: gimli::Format::Dwarf32,
        version: 4,
        address_size: 8,
    };
    let mut r = gimli::EndianSlice::new(e, gimli::LittleEndian);
    let mut out = Vec::new();
    for _ in 0..64 {
        if r.is_empty() {
            break;
        }
        let start = e.len() - r.len();
        match gimli::Operation::parse(&mut r, enc) {
            Ok(gimli::Operation::Address { .. }) if start + 9 <= e.len() => out.push(start + 1),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    out
}

/// drgn prints an enum value as its enumerator: look the enum up by name in the kernel's types.
fn enum_name(prog: &Program, type_name: &str, x: u64, size: usize) -> Option<String> {
    let n = type_name.strip_prefix("enum ")?.trim();
    let types = prog.types().ok()?;
    let id = types.0.find(crate::types::Kind::Enum, n)?;
    let crate::types::Type::Enum { values, .. } = types.get(id) else {
        return None;
    };
    let sh = 64 - size as u32 * 8;
    let sx = ((x << sh) as i64) >> sh;
    values
        .iter()
        .find(|(_, v)| *v == sx || *v as u64 == x)
        .map(|(k, _)| k.clone())
}
