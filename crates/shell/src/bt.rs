//! `bt` and `foreach bt`: crash's backtrace layout over kmortem-kernel's backtraces
//! ([`kmortem_kernel::backtrace`]: frames with inlined calls, `-v` variables), with `-f` frame
//! contents, `-l` file:line, and `--json` (docs/json/core.md).

use crate::output::{CmdError, Output};
use kmortem_kernel::backtrace::{
    active_tasks, panic_cpu, regs_json, stack_words, task_ident, BtState, TaskTrace,
};
use kmortem_kernel::program::Program;
use kmortem_kernel::unwind::{stacks, End, Frame, Regs};
use kmortem_kernel::unwind::{
    AX, BP, BX, CS, CX, DI, DX, FLAGS, IP, ORIG_AX, R10, R11, R12, R13, R14, R15, R8, R9, SI, SP,
    SS,
};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    pub all_cpus: bool,
    pub frame_contents: bool,
    pub lines: bool,
    pub vars: bool,
}

/// crash's register block (8 columns of `NAME: value`).
pub fn format_regs(r: &Regs, out: &mut String) {
    let g = |i: usize| r.0[i];
    out.push_str(&format!(
        "    RIP: {:016x}  RSP: {:016x}  RFLAGS: {:08x}\n",
        g(IP),
        g(SP),
        g(FLAGS)
    ));
    let rows: [[(&str, usize); 3]; 5] = [
        [("RAX", AX), ("RBX", BX), ("RCX", CX)],
        [("RDX", DX), ("RSI", SI), ("RDI", DI)],
        [("RBP", BP), ("R8", R8), ("R9", R9)],
        [("R10", R10), ("R11", R11), ("R12", R12)],
        [("R13", R13), ("R14", R14), ("R15", R15)],
    ];
    for row in rows {
        let cols: Vec<String> = row
            .iter()
            .map(|(n, i)| format!("{n:>3}: {:016x}", g(*i)))
            .collect();
        out.push_str(&format!("    {}\n", cols.join("  ")));
    }
    out.push_str(&format!(
        "    ORIG_RAX: {:016x}  CS: {:04x}  SS: {:04x}\n",
        g(ORIG_AX),
        g(CS),
        g(SS)
    ));
}

/// The text of one task's backtrace in crash's layout.
pub fn format_task(prog: &Program, t: &TaskTrace, flags: Flags) -> String {
    let mut s = format!(
        "PID: {:<7}  TASK: {:x}  CPU: {:<3}  COMMAND: \"{}\"\n",
        t.pid,
        t.task,
        t.cpu.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
        t.comm
    );
    let mut n = 0usize;
    let phys = &t.trace.frames;
    for (k, f) in t.frames.iter().enumerate() {
        let pf = &phys[f.phys];
        let name = f
            .function
            .clone()
            .unwrap_or_else(|| format!("{:#x}", f.address));
        let first_of_phys = k == 0 || t.frames[k - 1].phys != f.phys;
        if pf.exception && first_of_phys {
            // crash's layout: the interrupted function and its registers, unnumbered; the
            // calls inlined there follow as numbered frames.
            let concrete = t.frames[k..]
                .iter()
                .take_while(|x| x.phys == f.phys)
                .last()
                .unwrap_or(f);
            s.push_str(&format!(
                "    [exception RIP: {}]\n",
                match &concrete.function {
                    Some(n) => format!("{n}+{}", concrete.offset),
                    None => "unknown or invalid address".into(),
                }
            ));
            format_regs(&pf.regs, &mut s);
        }
        if !pf.exception || f.inline {
            s.push_str(&format!(
                "{:>3} [{:016x}] {} at {:016x}{}{}\n",
                format!("#{n}"),
                f.stack_address,
                name,
                f.address,
                f.module
                    .as_ref()
                    .map(|m| format!(" [{m}]"))
                    .unwrap_or_default(),
                if f.inline { " (inlined)" } else { "" }
            ));
            n += 1;
        }
        if flags.lines {
            if let (Some(file), Some(line)) = (&f.file, f.line) {
                s.push_str(&format!("    {file}: {line}\n"));
            }
        }
        let last_of_phys = t.frames.get(k + 1).is_none_or(|x| x.phys != f.phys);
        if let Some(vs) = &f.variables {
            for v in vs {
                s.push_str(&format!("      {} = {}\n", v.name, v.value));
            }
        }
        if flags.frame_contents && last_of_phys {
            frame_words(prog, phys, f.phys, &mut s);
        }
        // Leaving an IRQ or exception stack: crash's marker, naming the stack left.
        if let (true, Some(cpu), Some(next)) = (last_of_phys, t.cpu, phys.get(f.phys + 1)) {
            let here = stacks::stack_kind(prog, cpu, pf.sp);
            if here.is_some() && here != stacks::stack_kind(prog, cpu, next.sp) {
                s.push_str(&format!("--- <{}> ---\n", here.unwrap_or_default()));
            }
        }
    }
    if let Some(u) = &t.trace.user_regs {
        format_regs(u, &mut s);
    }
    match &t.trace.end {
        End::Error(e) => s.push_str(&format!("bt: {e}\n")),
        End::TooDeep => s.push_str("bt: more than 256 frames; stopped\n"),
        _ => {}
    }
    s
}

fn frame_words(prog: &Program, phys: &[Frame], i: usize, s: &mut String) {
    match stack_words(prog, phys, i) {
        Err(from) => s.push_str(&format!("    {from:x}: (unreadable)\n")),
        Ok((from, words)) => {
            for (li, pair) in words.chunks(2).enumerate() {
                let w: Vec<String> = pair.iter().map(|x| format!("{x:016x}")).collect();
                s.push_str(&format!(
                    "    {:x}: {} \n",
                    from + li as u64 * 16,
                    w.join(" ")
                ));
            }
        }
    }
}

pub fn task_json(t: &TaskTrace, flags: Flags, prog: &Program) -> Value {
    let mut frames: Vec<Value> = t
        .frames
        .iter()
        .map(|f| serde_json::to_value(f).unwrap_or(Value::Null))
        .collect();
    if flags.frame_contents {
        for (v, f) in frames.iter_mut().zip(&t.frames) {
            let words: Vec<String> = stack_words(prog, &t.trace.frames, f.phys)
                .map(|(_, w)| w.iter().map(|x| format!("{x:#x}")).collect())
                .unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("stack_words".into(), json!(words));
            }
        }
    }
    json!({
        "pid": t.pid,
        "cpu": t.cpu,
        "task": format!("{:#x}", t.task),
        "comm": t.comm,
        "frames": frames,
        "end": t.trace.end,
        "user_registers": t.trace.user_regs.as_ref().map(regs_json),
    })
}

/// Parse `bt` arguments.
pub fn parse_flags(args: &[&str]) -> Result<(Flags, Vec<String>), CmdError> {
    let mut f = Flags::default();
    let mut pos = Vec::new();
    for a in args {
        if let Some(opts) = a.strip_prefix('-') {
            for c in opts.chars() {
                match c {
                    'a' => f.all_cpus = true,
                    'f' => f.frame_contents = true,
                    'l' => f.lines = true,
                    'v' => f.vars = true,
                    _ => {
                        return Err(CmdError::Usage(format!(
                            "bt: unknown option -{c}; usage: bt [-a] [-f] [-l] [-v] [PID|TASK]"
                        )))
                    }
                }
            }
        } else {
            pos.push(a.to_string());
        }
    }
    Ok((f, pos))
}

/// Run `bt ARGS`.
pub fn bt(st: &mut BtState, prog: &Program, args: &[&str]) -> Result<Output, CmdError> {
    let (flags, pos) = parse_flags(args)?;
    let active = active_tasks(prog);
    let mut targets: Vec<(u64, Option<u32>, bool)> = Vec::new();
    if flags.all_cpus {
        for &(c, t) in &active {
            targets.push((t, Some(c), true));
        }
    } else if pos.is_empty() {
        let cpu = panic_cpu(prog).unwrap_or(0);
        let t = active
            .iter()
            .find(|(c, _)| *c == cpu)
            .map(|&(_, t)| t)
            .ok_or_else(|| CmdError::Usage(format!("bt: no task found running on CPU {cpu}")))?;
        targets.push((t, Some(cpu), true));
    } else {
        for p in &pos {
            let n = parse_target(p)
                .ok_or_else(|| CmdError::Usage(format!("bt: {p}: not a PID or task address")))?;
            let (task, cpu) = if n > 0xffff_0000_0000_0000 {
                (n, None)
            } else {
                let tasks = prog.tasks()?;
                let t = tasks
                    .iter()
                    .find(|t| t.pid as u64 == n)
                    .ok_or_else(|| CmdError::Usage(format!("bt: no task with PID {n}")))?;
                (t.task, Some(t.cpu))
            };
            let running = active.iter().find(|(_, t)| *t == task).map(|&(c, _)| c);
            targets.push((task, running.or(cpu), running.is_some()));
        }
    }
    run_targets(st, prog, &targets, flags)
}

fn parse_target(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x") {
        return u64::from_str_radix(h, 16).ok();
    }
    if s.len() >= 12 && s.chars().all(|c| c.is_ascii_hexdigit()) {
        return u64::from_str_radix(s, 16).ok();
    }
    s.parse().ok()
}

fn run_targets(
    st: &mut BtState,
    prog: &Program,
    targets: &[(u64, Option<u32>, bool)],
    flags: Flags,
) -> Result<Output, CmdError> {
    let mut text = String::new();
    let mut js = Vec::new();
    st.want_vars = flags.vars;
    for (i, &(task, cpu, running)) in targets.iter().enumerate() {
        let (pid, comm) = task_ident(prog, task);
        let t = match st.task_trace(prog, task, pid, comm, cpu, running) {
            Ok(t) => t,
            // One task's failure is the others' business only as a warning (bt -a, foreach).
            Err(e) if targets.len() > 1 => {
                prog.warnings.push(
                    kmortem_kernel::warnings::Warning::new(
                        kmortem_kernel::warnings::Kind::Unreadable,
                        format!("bt: PID {pid} (task {task:#x}): no backtrace: {e}"),
                    )
                    .what("task_struct")
                    .range(task, task + 1),
                );
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if i > 0 {
            text.push('\n');
        }
        text.push_str(&format_task(prog, &t, flags));
        js.push(task_json(&t, flags, prog));
    }
    let json = if targets.len() == 1 && !flags.all_cpus {
        js.pop().unwrap_or(Value::Null)
    } else {
        Value::Array(js)
    };
    Ok(Output { text, json })
}

/// `foreach bt [FLAGS]`: every task, in `ps` order.
pub fn foreach(st: &mut BtState, prog: &Program, args: &[&str]) -> Result<Output, CmdError> {
    let Some((&"bt", rest)) = args.split_first() else {
        return Err(CmdError::Usage("usage: foreach bt [-f] [-l] [-v]".into()));
    };
    let (flags, _) = parse_flags(rest)?;
    let active = active_tasks(prog);
    let tasks = prog.tasks()?;
    let targets: Vec<(u64, Option<u32>, bool)> = tasks
        .iter()
        .map(|t| {
            let running = active.iter().any(|&(c, a)| a == t.task && c == t.cpu);
            (t.task, Some(t.cpu), running)
        })
        .collect();
    let mut out = run_targets(
        st,
        prog,
        &targets,
        Flags {
            all_cpus: true,
            ..flags
        },
    )?;
    if !out.json.is_array() {
        out.json = Value::Array(vec![out.json]);
    }
    Ok(out)
}
