//! `kmortem core`: open a vmcore and run crash-style commands on it.

use anyhow::Result;
use kmortem_kernel::Program;
use kmortem_shell::{Session, COMMANDS};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Open a vmcore (ELF, kdump-compressed or flattened) and run commands on it, like crash:
/// sys, log, ps, rd, sym, struct, mod, list, dis, runq, bt, foreach bt (`help` lists them
/// with their flags).
///
/// Without -s, kmortem works from what the dump holds: symbols from the kernel's kallsyms
/// (found through VMCOREINFO, Linux 6.0+) and types from its BTF (__start_BTF..__stop_BTF),
/// so ps, struct, sym, list, dis, runq and bt work with no debug package at all.
///
/// With -c, runs each command and exits; without, opens an interactive prompt (history in
/// ~/.kmortem_history, Tab completes commands, symbols and type names).
///
/// Examples:
///   kmortem core vmcore -s vmlinux -c sys -c 'log' -c ps
///   kmortem core vmcore -s vmlinux -c 'struct task_struct.comm ffff8b41427cb000'
///   kmortem core vmcore -s vmlinux --json -c ps | jq '.[] | select(.active)'
///   kmortem core vmcore -s vmlinux -c 'dis -l schedule' -c 'list -o module.list -H modules'
///   kmortem core vmcore -c ps -c runq          (no vmlinux: kallsyms + BTF from the dump)
///   kmortem core vmcore -s vmlinux --mod-dir ./build -c 'bt -l' -c 'bt -a' -c 'foreach bt'
///
/// Damage is said, not papered over: a truncated file, excluded or missing pages, a kdump
/// bitmap that disagrees with its descriptors, overlapping PT_LOAD segments, lost or short
/// NT_PRSTATUS notes, a broken task list, unusable printk metadata, a vmlinux kept with
/// --force. Each is a warning on stderr (`ps: task list ends at 0x... (bad next pointer);
/// 31 of 56 tasks (nr_threads) shown`) and, with --json, a `{"command": ..., "warnings":
/// [...]}` line after the command's document (docs/json/core.md).
///
/// Exit status: 0 every command answered in full; 1 a command failed; 2 the dump (or the
/// vmlinux) could not be opened, or the vmlinux is not the dumped kernel (without --force);
/// 3 every command answered, but an answer is partial or the input is damaged or mismatched
/// (the warnings say what).
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The dump: /proc/vmcore copy, makedumpfile output (-c/-l/-p/-z, -F), or QEMU
    /// dump-guest-memory output.
    pub vmcore: PathBuf,
    /// The matching vmlinux with symbols (debug package). Optional on Linux 6.0+: without
    /// it, symbols come from the dump's kallsyms and types from its BTF.
    #[arg(short = 's', long = "vmlinux", value_name = "VMLINUX")]
    pub vmlinux: Option<PathBuf>,
    /// A command to run (repeatable); with none, an interactive prompt opens.
    #[arg(short = 'c', long = "command", value_name = "CMD")]
    pub commands: Vec<String>,
    /// Print each command's result as one JSON document per line (docs/json/core.md).
    #[arg(long)]
    pub json: bool,
    /// A directory searched (recursively) for module .ko files with debug info, for bt's
    /// inlined frames and file:line in modules (repeatable; the debug package's
    /// lib/modules/RELEASE next to the vmlinux is searched anyway).
    #[arg(long = "mod-dir", value_name = "DIR")]
    pub mod_dirs: Vec<PathBuf>,
    /// Use the vmlinux even when it is not the dumped kernel (or not a vmlinux); the mismatch
    /// stays a warning and the exit status is 3.
    #[arg(long)]
    pub force: bool,
}

pub fn open(vmcore: &std::path::Path, vmlinux: Option<&std::path::Path>) -> Result<Session> {
    open_with(vmcore, vmlinux, false)
}

/// [`open`], with `--force`: a vmlinux that is not the dumped kernel's is used anyway (the
/// mismatch stays a warning).
pub fn open_with(
    vmcore: &std::path::Path,
    vmlinux: Option<&std::path::Path>,
    force: bool,
) -> Result<Session> {
    Ok(Session::new(open_program_with(vmcore, vmlinux, force)?))
}

/// Open a vmcore, with one clear line when the path cannot be one ([`check_dump_path`]) and
/// the library's error said once (not `cannot open X: cannot open X: ...`).
pub fn open_program(
    vmcore: &std::path::Path,
    vmlinux: Option<&std::path::Path>,
) -> Result<Program> {
    open_program_with(vmcore, vmlinux, false)
}

/// [`open_program`] with `--force`.
pub fn open_program_with(
    vmcore: &std::path::Path,
    vmlinux: Option<&std::path::Path>,
    force: bool,
) -> Result<Program> {
    if let Some(why) = check_dump_path(vmcore) {
        anyhow::bail!("{why}");
    }
    Program::open_with(vmcore, vmlinux, force).map_err(|e| {
        let inner = format!("{:#}", anyhow::Error::from(e));
        let shown = vmcore.display().to_string();
        if inner.contains(&shown) {
            anyhow::anyhow!("{inner}")
        } else {
            anyhow::anyhow!("cannot open {shown}: {inner}")
        }
    })
}

/// What a path given as a vmcore is, when it cannot be one: one sentence saying what it is and
/// what to give instead; `None` for a file worth trying.
pub fn check_dump_path(p: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    let shown = p.display();
    let m = match std::fs::metadata(p) {
        Ok(m) => m,
        Err(e) => {
            return Some(match e.kind() {
                std::io::ErrorKind::NotFound => format!("{shown}: no such file"),
                std::io::ErrorKind::PermissionDenied => format!(
                "{shown}: permission denied (vmcores are usually root's: run as root, or copy it)"
            ),
                _ => format!("{shown}: {}", super::io_reason(&e)),
            })
        }
    };
    let ft = m.file_type();
    let what = if ft.is_dir() {
        "a directory, not a vmcore (give the vmcore file in it, e.g. DIR/vmcore)"
    } else if ft.is_fifo() || ft.is_socket() {
        "a pipe, not a vmcore (a vmcore is read at random offsets: save it to a file first)"
    } else if ft.is_char_device() || ft.is_block_device() {
        // /dev/null reads as an empty file; /dev/zero and disks as endless bytes.
        let mut b = [0u8; 1];
        let empty = std::fs::File::open(p)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut b))
            .is_ok_and(|n| n == 0);
        if empty {
            "empty file, not a vmcore (give the file kdump saved, e.g. /var/crash/*/vmcore)"
        } else {
            "a device, not a vmcore (give the file kdump saved, e.g. /var/crash/*/vmcore)"
        }
    } else if m.len() == 0 {
        "empty file, not a vmcore (give the file kdump saved, e.g. /var/crash/*/vmcore)"
    } else {
        return None;
    };
    Some(format!("{shown}: {what}"))
}

/// Exit status of a run whose every command answered but some answer is partial, or whose
/// input is damaged or mismatched.
pub const EXIT_PARTIAL: u8 = 3;

/// Print warnings on stderr, prefixed with the command (`ps: ...`), or `kmortem` for what
/// opening the dump found.
fn say(prefix: &str, ws: &[kmortem_kernel::Warning]) {
    for w in ws {
        let m = &w.message;
        // Messages that already name their command keep their own prefix.
        if m.starts_with(&format!("{prefix}: ")) {
            eprintln!("warning: {m}");
        } else {
            eprintln!("warning: {prefix}: {m}");
        }
    }
}

/// Run commands; returns the exit code (1 if any command failed, 3 if any warning was said).
pub fn run_commands(session: &mut Session, cmds: &[String], json: bool) -> Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = false;
    // What opening found, once, before the first command.
    let mut warned = !session.prog.warnings.is_empty();
    if !session.opened_said {
        session.opened_said = true;
        let open = session.prog.warnings.all();
        if !open.is_empty() {
            say("kmortem", &open);
            if json {
                serde_json::to_writer(
                    &mut out,
                    &serde_json::json!({"command": null, "warnings": open}),
                )?;
                writeln!(out)?;
            }
        }
    }
    for c in cmds {
        let mark = session.prog.warnings.mark();
        let name = c.split_whitespace().next().unwrap_or("");
        let r = session.run(c);
        let ws = session.prog.warnings.since(mark);
        match r {
            Ok(o) => {
                if json {
                    serde_json::to_writer(&mut out, &o.json)?;
                    writeln!(out)?;
                } else {
                    // Task names, module names and log lines come from the dump: escaped.
                    out.write_all(kmortem_oops::input::escape_controls(&o.text).as_bytes())?;
                }
            }
            Err(e) => {
                failed = true;
                out.flush()?;
                if json {
                    serde_json::to_writer(
                        &mut out,
                        &serde_json::json!({"error": e.to_string(), "command": c}),
                    )?;
                    writeln!(out)?;
                }
                eprintln!(
                    "{}: {}",
                    kmortem_oops::input::escape_controls(c),
                    kmortem_oops::input::escape_controls(&e.to_string())
                );
            }
        }
        if !ws.is_empty() {
            warned = true;
            out.flush()?;
            say(name, &ws);
            if json {
                serde_json::to_writer(
                    &mut out,
                    &serde_json::json!({"command": c, "warnings": ws}),
                )?;
                writeln!(out)?;
            }
        }
    }
    out.flush()?;
    Ok(if failed {
        ExitCode::from(1)
    } else if warned {
        ExitCode::from(EXIT_PARTIAL)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn run(args: Args) -> Result<ExitCode> {
    let mut s = open_with(&args.vmcore, args.vmlinux.as_deref(), args.force)?;
    for d in &args.mod_dirs {
        s.add_module_dir(d);
    }
    s.bt.module_dirs.extend(args.mod_dirs.iter().cloned());
    if !args.commands.is_empty() {
        return run_commands(&mut s, &args.commands, args.json);
    }
    repl(s, args.json)
}

struct Helper {
    symbols: Vec<String>,
}

impl rustyline::completion::Completer for Helper {
    type Candidate = String;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let head = &line[..pos];
        let start = head.rfind(' ').map(|i| i + 1).unwrap_or(0);
        let word = &head[start..];
        if start == 0 {
            let v = COMMANDS
                .iter()
                .map(|(c, _)| c.to_string())
                .filter(|c| c.starts_with(word))
                .collect();
            return Ok((0, v));
        }
        if word.len() < 2 {
            return Ok((start, Vec::new()));
        }
        let i = self.symbols.partition_point(|s| s.as_str() < word);
        let v = self.symbols[i..]
            .iter()
            .take_while(|s| s.starts_with(word))
            .take(200)
            .cloned()
            .collect();
        Ok((start, v))
    }
}
impl rustyline::hint::Hinter for Helper {
    type Hint = String;
}
impl rustyline::highlight::Highlighter for Helper {}
impl rustyline::validate::Validator for Helper {}
impl rustyline::Helper for Helper {}

fn repl(mut s: Session, json: bool) -> Result<ExitCode> {
    let mut symbols: Vec<String> = match s.prog.symbols() {
        Some(x) => x.names(),
        None => s
            .prog
            .kallsyms()
            .map(|k| k.iter().map(|(_, _, n)| n.to_string()).collect())
            .unwrap_or_default(),
    };
    symbols.extend(s.prog.vmcoreinfo.symbols.keys().cloned());
    if let Some(b) = s.prog.vmlinux.as_ref().and_then(|v| v.btf.as_ref()) {
        symbols.extend(b.type_names());
    } else if s.prog.vmlinux.is_none() {
        if let Ok(b) = s.prog.memory_btf() {
            symbols.extend(b.type_names());
        }
    }
    symbols.sort();
    symbols.dedup();
    let mut rl: rustyline::Editor<Helper, rustyline::history::DefaultHistory> =
        rustyline::Editor::new()?;
    rl.set_helper(Some(Helper { symbols }));
    let hist = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kmortem_history"));
    if let Some(h) = &hist {
        let _ = rl.load_history(h);
    }
    eprintln!(
        "kmortem core: {} ({}). Type help, or q to quit.",
        s.prog.path.display(),
        s.prog.dump.format().name()
    );
    loop {
        match rl.readline("kmortem> ") {
            Ok(line) => {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let _ = rl.add_history_entry(line);
                if matches!(line, "q" | "quit" | "exit") {
                    break;
                }
                let _ = run_commands(&mut s, &[line.to_string()], json);
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => break,
        }
    }
    if let Some(h) = &hist {
        let _ = rl.save_history(h);
    }
    Ok(ExitCode::SUCCESS)
}
