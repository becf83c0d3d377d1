//! What the lab tests of the kernel and shell crates share (the shell's tests include this file
//! by `#[path]`). The labs, their kernels and paths come from
//! `kmortem-lab` (the one source of truth: no test names a release); here are the dumps of a
//! scenario with the oracle outputs made from each, and readers for those outputs that only
//! return what the tool really printed (an oracle that failed or that the kernel has not got
//! says why, so a test can print it instead of comparing with nothing).
#![allow(dead_code)]

use kmortem_kernel::Program;
pub use kmortem_lab::{each, Lab, Scenario};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The kernel's vmlinux with DWARF; a missing file is a failure that names the kernel.
pub fn vmlinux(lab: &Lab) -> PathBuf {
    let v = lab.vmlinux();
    assert!(
        v.is_file(),
        "kernel {}: vmlinux missing at {} (build the lab with `lab/build --kernel {}`)",
        lab.name(),
        v.display(),
        lab.name()
    );
    v
}

/// Every complete scenario of the lab (`meta.json` is written last).
pub fn scenarios(lab: &Lab) -> Vec<Scenario> {
    lab.scenarios()
        .unwrap_or_else(|e| panic!("kernel {}: {e}", lab.name()))
}

/// One dump file of a scenario.
#[derive(Debug, Clone)]
pub struct Dump {
    pub path: PathBuf,
    /// `elf`, `kdump-zlib`, ...
    pub format: String,
    /// The suffix of the oracle files made from this dump: `""` for the primary dump,
    /// `".kdump-lzo"` for another format with oracles of its own, `None` when no oracle ran on
    /// this file (its memory is the primary dump's: the same log, tasks and stacks).
    pub tag: Option<String>,
    /// makedumpfile's `-d` (0: every page kept).
    pub dump_level: u32,
}

impl Dump {
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// `scenario` or `scenario.format` for messages.
    pub fn label(&self, sc: &Scenario) -> String {
        match self.tag.as_deref() {
            Some("") => sc.meta.name.clone(),
            _ => format!("{}.{}", sc.meta.name, self.format),
        }
    }

    /// The tag to read oracles with: this dump's own, else the primary dump's when this one
    /// kept every page (the same memory); `None` for a filtered dump without oracles (it may
    /// lack pages the primary has).
    pub fn oracle_tag(&self) -> Option<&str> {
        match self.tag.as_deref() {
            Some(t) => Some(t),
            None if self.dump_level == 0 => Some(""),
            None => None,
        }
    }

    /// The tag for the log's oracles: the log's pages are kept at every dump level.
    pub fn log_tag(&self) -> &str {
        self.tag.as_deref().unwrap_or("")
    }
}

/// Every dump of a scenario (as `meta.json` lists them), the primary one first.
pub fn dumps(sc: &Scenario) -> Vec<Dump> {
    let primary = sc.primary_dump();
    let mut out: Vec<Dump> = sc
        .meta
        .dumps
        .iter()
        .map(|d| {
            let path = sc.dir.join(&d.file);
            let own = format!(".{}", d.format);
            let tag = if Some(&path) == primary.as_ref() {
                Some(String::new())
            } else if has_oracle_file(sc, &own) {
                Some(own)
            } else {
                None
            };
            Dump {
                path,
                format: d.format.clone(),
                tag,
                dump_level: d.dump_level,
            }
        })
        .filter(|d| d.path.is_file())
        .collect();
    out.sort_by_key(|d| {
        (
            d.tag.as_deref() != Some(""),
            d.tag.is_none(),
            d.format.clone(),
        )
    });
    out
}

fn has_oracle_file(sc: &Scenario, tag: &str) -> bool {
    ["drgn-bt", "crash-bt"]
        .iter()
        .any(|b| sc.oracle(&format!("{b}{tag}.txt")).is_file())
}

/// The dump the unsuffixed oracles describe (the ELF when kept, else the kdump).
pub fn primary(sc: &Scenario) -> Dump {
    dumps(sc)
        .into_iter()
        .find(|d| d.tag.as_deref() == Some(""))
        .unwrap_or_else(|| panic!("{}: no primary dump in meta.json", sc.meta.name))
}

/// What the oracle run `name` (`drgn-bt`, `crash-log`, with the dump's tag) printed, when the
/// kernel has that tool and the run exited 0; otherwise why not (to print). crash's commands
/// share one session (`crash-session`), whose exit status is theirs.
pub fn oracle(lab: &Lab, sc: &Scenario, name: &str, tag: &str) -> Result<String, String> {
    let tool = name.split('-').next().unwrap_or(name);
    if !lab.has_oracle(tool) {
        return Err(format!(
            "no {tool} oracle on kernel {} (lab/kernels.toml)",
            lab.name()
        ));
    }
    let file = format!("{name}{tag}.txt");
    let path = sc.oracle(&file);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Err(format!("{file} not in the lab"));
    };
    let key = if tool == "crash" {
        format!("crash-session{tag}")
    } else {
        format!("{name}{tag}")
    };
    let timings: serde_json::Value = std::fs::read(sc.oracle("timings.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    match timings[&key]["exit_status"].as_i64() {
        Some(0) | None => Ok(text),
        Some(n) => Err(format!(
            "{file}: {tool} failed (exit {n}): {}",
            text.lines().last().unwrap_or("").trim()
        )),
    }
}

/// drgn's task list (`drgn-ps`): (pid, comm, state letter). `Err` when drgn did not list the
/// tasks; `Ok((tasks, false))` when it stopped early (a filtered dump) with a partial list.
pub fn drgn_ps(lab: &Lab, sc: &Scenario, tag: &str) -> Result<(Tasks, bool), String> {
    let (text, complete) = match oracle(lab, sc, "drgn-ps", tag) {
        Ok(t) => (t, true),
        Err(why) => {
            // A run that failed half-way still printed the tasks it read before the fault.
            let t = std::fs::read_to_string(sc.oracle(&format!("drgn-ps{tag}.txt")))
                .map_err(|_| why.clone())?;
            if !lab.has_oracle("drgn") || !t.contains("PID     PPID") {
                return Err(why);
            }
            (t, false)
        }
    };
    let tasks = text
        .lines()
        .skip_while(|l| !l.starts_with("PID "))
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.first()?.parse().ok()?,
                f.get(4..)?.join(" "),
                f.get(3)?.to_string(),
            ))
        })
        .collect();
    Ok((tasks, complete))
}

pub type Tasks = BTreeSet<(i64, String, String)>;

/// drgn's `crashed thread: tid 158 comm sh cpu 1` header of `drgn-bt`.
pub fn drgn_crashed_thread(lab: &Lab, sc: &Scenario, tag: &str) -> Option<(i64, String, u32)> {
    let t = oracle(lab, sc, "drgn-bt", tag).ok()?;
    let l = t.lines().find(|l| l.starts_with("crashed thread:"))?;
    let f: Vec<&str> = l.split_whitespace().collect();
    let tid = f.get(3)?.parse().ok()?;
    let comm = f.get(5)?.to_string();
    let cpu = f.get(7)?.parse().ok()?;
    Some((tid, comm, cpu))
}

/// drgn's modules (`drgn-mod`): (struct module, name, base, size).
pub fn drgn_mod(
    lab: &Lab,
    sc: &Scenario,
    tag: &str,
) -> Result<Vec<(u64, String, u64, u64)>, String> {
    let t = oracle(lab, sc, "drgn-mod", tag)?;
    Ok(t.lines()
        .skip_while(|l| !l.starts_with("MODULE "))
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                u64::from_str_radix(f.first()?, 16).ok()?,
                f.get(1)?.to_string(),
                u64::from_str_radix(f.get(2)?, 16).ok()?,
                f.get(3)?.parse().ok()?,
            ))
        })
        .collect())
}

/// drgn's log (`drgn-dmesg`): get_dmesg()'s lines, drgn's own warnings before it dropped.
pub fn drgn_dmesg(lab: &Lab, sc: &Scenario, tag: &str) -> Result<Vec<String>, String> {
    let t = oracle(lab, sc, "drgn-dmesg", tag)?;
    Ok(t.lines()
        .skip_while(|l| !l.starts_with('['))
        .map(String::from)
        .collect())
}

/// The log records as drgn's `get_dmesg()` prints them: `[%5lu.%06lu] ` then the text, its
/// continuation lines as they are (crash indents them, drgn does not).
pub fn dmesg_lines(log: &[kmortem_kernel::printk::LogRecord]) -> Vec<String> {
    let mut out = Vec::new();
    for r in log {
        let s = r.ts_nsec / 1_000_000_000;
        let us = r.ts_nsec % 1_000_000_000 / 1000;
        let text = format!("[{s:5}.{us:06}] {}", r.text.trim_end_matches('\n'));
        out.extend(text.split('\n').map(String::from));
    }
    out
}

/// The log records as the serial console printed them: every line of a record's text with the
/// record's `[    1.234567] ` prefix.
pub fn console_form(log: &[kmortem_kernel::printk::LogRecord]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for r in log {
        let s = r.ts_nsec / 1_000_000_000;
        let us = r.ts_nsec % 1_000_000_000 / 1000;
        for l in r.text.trim_end_matches('\n').split('\n') {
            out.insert(format!("[{s:5}.{us:06}] {l}").trim_end().to_string());
        }
    }
    out
}

/// The console's kernel log lines (`[    1.234567] text`) of the dumped boot, which the printk
/// ring buffer must hold too: the console prints a record only after storing it. A kdump
/// console goes on with the capture kernel's boot (a second `Linux version` line): it stops
/// there.
pub fn console_lines(sc: &Scenario) -> Vec<String> {
    let t = std::fs::read(sc.console_log()).unwrap_or_default();
    let mut boots = 0;
    String::from_utf8_lossy(&t)
        .lines()
        .map(|l| l.trim_end_matches('\r').trim_end())
        .filter(|l| l.len() > 15 && l.starts_with('[') && l.as_bytes()[13] == b']')
        .take_while(|l| {
            if l[14..].starts_with(" Linux version ") {
                boots += 1;
            }
            boots <= 1
        })
        .map(String::from)
        .collect()
}

/// The drgn the lab installed (`lab/build` puts it in `$KMORTEM_CACHE/venv`, like lab.py).
pub fn drgn_python() -> PathBuf {
    let cache = std::env::var_os("KMORTEM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/kmortem")
        });
    cache.join("venv/bin/python")
}

/// Run Python code with drgn on dumps, one job per (dump, code): the code sees `prog` (the dump
/// with the vmlinux's debug info) and prints what it wants; returns each job's output, or the
/// Python error. One process for all jobs (drgn takes ~0.5 s to load a vmlinux).
pub fn drgn_jobs(vmlinux: &Path, jobs: &[(PathBuf, String)]) -> Vec<Result<String, String>> {
    const SCRIPT: &str = r#"
import drgn, json, sys, traceback
jobs = json.load(sys.stdin)
for dump, code in jobs:
    print("==KMORTEM-JOB==", flush=True)
    try:
        # libkdumpfile cannot tell the architecture of QEMU's kdump files: name the platform
        prog = drgn.Program(drgn.host_platform)
        prog.set_core_dump(dump)
        try:
            prog.load_debug_info([sys.argv[1]], default=False)
        except drgn.MissingDebugInfoError:
            pass
        exec(code, {"prog": prog, "drgn": drgn})
    except Exception as e:
        print("==KMORTEM-ERROR==", repr(e))
    sys.stdout.flush()
"#;
    let py = drgn_python();
    let input: Vec<(String, &str)> = jobs
        .iter()
        .map(|(d, c)| (d.display().to_string(), c.as_str()))
        .collect();
    let mut child = std::process::Command::new(&py)
        .arg("-c")
        .arg(SCRIPT)
        .arg(vmlinux)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("drgn at {} (lab/build installs it): {e}", py.display()));
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(serde_json::to_string(&input).unwrap_or_default().as_bytes())
            .expect("write drgn jobs");
    }
    let out = child.wait_with_output().expect("drgn");
    assert!(
        out.status.success(),
        "drgn failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split("==KMORTEM-JOB==\n")
        .skip(1)
        .map(|j| match j.split_once("==KMORTEM-ERROR==") {
            Some((_, e)) => Err(e.trim().to_string()),
            None => Ok(j.to_string()),
        })
        .collect()
}

// ------------------------------------------------------------------ shared by the helper tests
// (crates/kernel/tests/helpers.rs, crates/shell/tests/commands.rs)

/// The primary dump of a scenario; a missing scenario fails naming it and the kernel.
pub fn dump(lab: &Lab, name: &str) -> PathBuf {
    primary(&lab.need(name)).path
}

pub fn open(lab: &Lab, name: &str) -> Program {
    Program::open(&dump(lab, name), Some(&vmlinux(lab))).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A register value from the oops in the scenario's console log (`RBX: ffff...`).
pub fn console_reg(lab: &Lab, name: &str, reg: &str) -> u64 {
    let log = std::fs::read(lab.need(name).console_log()).expect("console.log");
    let log = String::from_utf8_lossy(&log);
    let key = format!("{reg}: ");
    for line in log.lines() {
        if let Some(i) = line.find(&key) {
            let v = &line[i + key.len()..];
            let v = v.split_whitespace().next().unwrap_or("");
            if let Ok(x) = u64::from_str_radix(v, 16) {
                return x;
            }
        }
    }
    panic!("no {reg} in the console log of {name}");
}

/// The module's static symbols named `prefix.N` (GCC's names for function-local statics).
pub fn statics(p: &Program, prefix: &str) -> Vec<u64> {
    let m = p
        .modules()
        .iter()
        .find(|m| m.name == "kmlab")
        .expect("kmlab loaded");
    let mut v: Vec<u64> = m
        .symbols
        .iter()
        .filter(|s| {
            s.name
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('.'))
                .is_some_and(|r| r.chars().all(|c| c.is_ascii_digit()))
        })
        .map(|s| s.addr)
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no static {prefix}.N in kmlab");
    v
}

/// drgn's `slab_object_info()` of each address: `cache object allocated slab` or `-` when
/// drgn finds no slab object there.
pub fn drgn_slab(lab: &Lab, dump: &Path, addrs: &[u64]) -> Vec<String> {
    let code = format!(
        r#"
from drgn.helpers.linux.slab import slab_object_info
for a in {addrs:?}:
    i = slab_object_info(prog, a)
    if i is None:
        print("-")
    else:
        print(i.slab_cache.name.string_().decode(), hex(i.address), i.allocated, hex(i.slab.value_()))
"#
    );
    let out = drgn_jobs(&vmlinux(lab), &[(dump.to_path_buf(), code)]);
    let text = out
        .into_iter()
        .next()
        .expect("one job")
        .unwrap_or_else(|e| panic!("drgn slab_object_info: {e}"));
    text.lines().map(String::from).collect()
}
