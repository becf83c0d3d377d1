//! `kmortem decode`: symbolize a raw oops like the kernel's `scripts/decode_stacktrace.sh`, decode
//! its `Code:` like `scripts/decodecode`, and evaluate the trapping instruction's operands.

use anyhow::{Context as _, Result};
use kmortem_explain::decode;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Symbolize a kernel oops: every call-trace frame and the RIP line get `(file:line)` and
/// `(inlined by)` lines, as `scripts/decode_stacktrace.sh` prints them; the `Code:` line is
/// disassembled like `scripts/decodecode` with the trapping instruction marked and its memory
/// operands evaluated with the oops's registers.
///
/// Debug info is found from the release in the oops (`CPU: ... 6.1.0-56-cloud-amd64 #1`):
/// /usr/lib/debug/boot/vmlinux-REL, /usr/lib/debug/lib/modules/REL/, /lib/modules/REL/build/vmlinux,
/// each also under every --debug-dir. Without DWARF it falls back to the ELF symbol table, then to
/// System.map or a copy of /proc/kallsyms, and says what is missing.
///
/// Examples:
///   kmortem decode console.log
///   dmesg | kmortem decode --vmlinux ./vmlinux --modules ./drivers/
///   kmortem decode oops.txt --debug-dir /srv/debug --source ~/linux --json
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Log to read; `-` or nothing reads standard input.
    pub log: Option<PathBuf>,
    #[command(flatten)]
    pub debug: DebugArgs,
    /// System.map or a saved /proc/kallsyms, used when there is no DWARF.
    #[arg(long = "system-map", alias = "kallsyms", value_name = "PATH")]
    pub system_map: Option<PathBuf>,
    /// KASLR offset (hex), as `Kernel Offset: 0x... from 0xffffffff81000000` prints it.
    #[arg(long = "kaslr-offset", value_name = "HEX", value_parser = parse_hex)]
    pub kaslr_offset: Option<u64>,
    /// Kernel source tree: print the source lines around the faulting line.
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,
    /// Print JSON: the parser's reports with a `decode` member each (docs/json/decode.md).
    #[arg(long)]
    pub json: bool,
}

/// Where the debug information comes from: the flags `kmortem decode` and `kmortem explain`
/// share.
#[derive(clap::Args)]
pub struct DebugArgs {
    /// vmlinux with DWARF (default: found from the oops's release).
    #[arg(long, value_name = "PATH")]
    pub vmlinux: Option<PathBuf>,
    /// Directory searched recursively for module `.ko` files (repeatable).
    #[arg(long, value_name = "DIR")]
    pub modules: Vec<PathBuf>,
    /// Root (or directory) holding debug files in the usual layouts (repeatable).
    #[arg(long = "debug-dir", value_name = "DIR")]
    pub debug_dir: Vec<PathBuf>,
    /// Kernel release to look debug files up for (default: from the oops).
    #[arg(long, value_name = "REL")]
    pub release: Option<String>,
    /// Do not look in / for debug files (only --vmlinux, --modules, --debug-dir).
    #[arg(long = "no-system")]
    pub no_system: bool,
}

impl DebugArgs {
    /// The options for `decode::symbolizer_for` (no System.map, no KASLR offset).
    pub fn options(&self) -> decode::DebugOptions {
        decode::DebugOptions {
            vmlinux: self.vmlinux.clone(),
            modules: self.modules.clone(),
            debug_dir: self.debug_dir.clone(),
            release: self.release.clone(),
            no_system: self.no_system,
            ..Default::default()
        }
    }
}

fn parse_hex(s: &str) -> Result<u64, String> {
    decode::parse_hex(s)
}

/// The log named on the command line, or standard input for none or `-`, normalized for the
/// parser (decode and explain read their input the same way).
pub(crate) fn read_input(log: &Option<PathBuf>) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    match log {
        Some(p) if p.as_os_str() != "-" => {
            buf = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
        }
        _ => {
            std::io::stdin()
                .lock()
                .read_to_end(&mut buf)
                .context("cannot read standard input")?;
        }
    }
    decode::normalize_input(&mut buf);
    Ok(buf)
}

impl Args {
    pub fn debug_options(&self) -> decode::DebugOptions {
        decode::DebugOptions {
            system_map: self.system_map.clone(),
            kaslr_offset: self.kaslr_offset,
            ..self.debug.options()
        }
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let input = read_input(&args.log)?;
    let text = String::from_utf8_lossy(&input);
    let reports = kmortem_oops::parse(&input);
    let mut notes = Vec::new();
    let (mut sym, release) =
        decode::symbolizer_for(&args.debug_options(), &text, &reports, &mut notes);
    // A --vmlinux of another release than the oops's gives wrong file:line: say so.
    let oops_release = reports
        .iter()
        .find_map(|r| r.kernel_release.clone())
        .or_else(|| release.clone());
    if let (Some(v), Some(want)) = (&args.debug.vmlinux, &oops_release) {
        if let Some(have) = kmortem_kernel::program::vmlinux_file_release(v) {
            if &have != want {
                notes.push(format!(
                    "warning: {} is Linux {have}, the oops is Linux {want}: file:line and symbols may be wrong",
                    v.display()
                ));
            }
        }
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        let doc = decode::decode_json(&mut sym, release, &reports, args.source.as_deref(), notes);
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let notes = decode::write_text(&mut out, &text, &mut sym, args.source.as_deref(), notes)?;
    out.flush()?;
    for n in notes {
        eprintln!("kmortem decode: {n}");
    }
    Ok(ExitCode::SUCCESS)
}
