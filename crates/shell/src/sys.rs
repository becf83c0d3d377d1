//! `sys`, `log` and `ps`: the dump's facts, the printk log and the task list in crash's layouts.

use crate::output::{usage, CmdError, Output};
use kmortem_kernel::printk::LogRecord;
use kmortem_kernel::sys::{format_uptime, format_utc};
use kmortem_kernel::Program;
use serde_json::Value;

/// The printk log, read once per session.
#[derive(Default)]
pub(crate) struct LogState {
    log: Option<Result<Vec<LogRecord>, String>>,
    holes: Vec<String>,
}

impl LogState {
    pub(crate) fn get(&mut self, prog: &Program) -> Result<&[LogRecord], CmdError> {
        if self.log.is_none() {
            let r = kmortem_kernel::printk::read_log_partial(prog, &prog.vmcoreinfo);
            self.log = Some(match r {
                Ok((l, holes)) => {
                    self.holes = holes;
                    Ok(l)
                }
                Err(e) => Err(e.to_string()),
            });
        }
        // Said on every command that uses the log (the log itself is read once).
        if !self.holes.is_empty() {
            prog.warnings.push(
                kmortem_kernel::warnings::Warning::new(
                    kmortem_kernel::warnings::Kind::Unreadable,
                    format!(
                        "log: {} records unreadable (first: {})",
                        self.holes.len(),
                        self.holes[0]
                    ),
                )
                .what("printk ring"),
            );
        }
        if let Some(Err(e)) = &self.log {
            prog.warnings.push(
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
}

pub(crate) fn sys(prog: &Program, log: &mut LogState) -> Result<Output, CmdError> {
    let log = log.get(prog).ok().map(|l| l.to_vec());
    let mut s = prog.sys(log.as_deref());
    if prog.types().is_ok() {
        s.tasks = prog.tasks().ok().map(|t| t.len());
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

pub(crate) fn log(prog: &Program, log: &mut LogState, args: &[&str]) -> Result<Output, CmdError> {
    let level = args.contains(&"-m");
    let caller = args.contains(&"-c");
    if let Some(bad) = args.iter().find(|a| !["-m", "-c"].contains(a)) {
        return Err(usage(format!(
            "log: unknown option {bad}; usage: log [-m] [-c]"
        )));
    }
    let l = log.get(prog)?.to_vec();
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

pub(crate) fn ps(prog: &Program) -> Result<Output, CmdError> {
    let tasks = prog.tasks()?;
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
