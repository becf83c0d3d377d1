//! `kmortem decode`: symbolize a raw oops like the kernel's `scripts/decode_stacktrace.sh`, decode
//! its `Code:` like `scripts/decodecode`, and evaluate the trapping instruction's operands.

use anyhow::Result;
use kmortem_explain::decode;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Symbolize a kernel oops: every call-trace frame and the RIP line get `(file:line)` and
/// `(inlined by)` lines, as `scripts/decode_stacktrace.sh` prints them; the `Code:` line is
/// disassembled like `scripts/decodecode` with the trapping instruction marked and its memory
/// operands evaluated with the oops's registers.
///
/// Debug info is found from the release in the oops (`CPU: ... 6.1.0-46-cloud-amd64 #1`):
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

impl Args {
    pub fn debug_options(&self) -> decode::DebugOptions {
        decode::DebugOptions {
            system_map: self.system_map.clone(),
            kaslr_offset: self.kaslr_offset,
            ..self.debug.options()
        }
    }
}

/// The symbolizer, set up at the first chunk that needs one (a report, a frame line, or a
/// release seen), with the release found by then: a stream gives no second look.
pub(crate) struct LazySym {
    pub opts: decode::DebugOptions,
    pub sym: Option<kmortem_symbols::Symbolizer>,
    pub release: Option<String>,
    /// The release of a `Linux version` or `CPU:` line seen before any report.
    pub seen_release: Option<String>,
    pub notes: Vec<String>,
}

impl LazySym {
    pub fn new(opts: decode::DebugOptions) -> Self {
        LazySym {
            opts,
            sym: None,
            release: None,
            seen_release: None,
            notes: Vec::new(),
        }
    }

    /// The symbolizer for a chunk, once the chunk needs one; its KASLR offset updated from the
    /// chunk's `Kernel Offset:` line.
    pub fn for_chunk(
        &mut self,
        chunk: &super::stream::Chunk,
        text: &str,
        force: bool,
    ) -> Option<&mut kmortem_symbols::Symbolizer> {
        use kmortem_oops::line as grammar;
        if self.sym.is_none() {
            if self.seen_release.is_none() {
                self.seen_release = grammar::scan_release(text);
            }
            let needed = force
                || self.opts.release.is_some()
                || !chunk.reports.is_empty()
                || self.seen_release.is_some()
                || chunk.lines.iter().any(|l| grammar::find_frame(l).is_some());
            if !needed {
                return None;
            }
            let release = self
                .opts
                .release
                .clone()
                .or_else(|| chunk.reports.iter().find_map(|r| r.kernel_release.clone()))
                .or_else(|| self.seen_release.clone());
            let mut sym = decode::setup(&self.opts, release.as_deref(), &mut self.notes);
            sym.kaslr_offset = self.opts.kaslr_offset;
            // A --vmlinux of another release than the oops's gives wrong file:line: say so.
            let oops_release = chunk
                .reports
                .iter()
                .find_map(|r| r.kernel_release.clone())
                .or_else(|| self.seen_release.clone());
            if let (Some(v), Some(want)) = (&self.opts.vmlinux, &oops_release) {
                if let Some(have) = kmortem_kernel::program::vmlinux_file_release(v) {
                    if &have != want {
                        self.notes.push(format!(
                            "warning: {} is Linux {have}, the oops is Linux {want}: file:line and symbols may be wrong",
                            v.display()
                        ));
                    }
                }
            }
            self.release = release;
            self.sym = Some(sym);
        }
        let sym = self.sym.as_mut()?;
        if self.opts.kaslr_offset.is_none() {
            if let Some(k) = grammar::scan_kaslr(text) {
                sym.kaslr_offset = Some(k);
            }
        }
        Some(sym)
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let (reader, name) = super::stream::open_log(&args.log)?;
    let mut lazy = LazySym::new(args.debug_options());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(super::SafeWriter::new(stdout.lock(), !args.json));
    let source = args.source.as_deref();
    let mut dec = decode::TextDecoder::default();
    // --json: `{"reports": [...], "debug_info": {...}, "notes": [...]}`, each report written as
    // soon as it is decoded.
    let mut count = 0usize;
    let mut modules: std::collections::BTreeSet<String> = Default::default();
    if args.json {
        out.write_all(b"{\n  \"reports\": [")?;
    }
    super::stream::for_each_chunk(reader, &name, "decode", |chunk| {
        let text = chunk.text();
        if args.json {
            if chunk.reports.is_empty() {
                // Still look for a release line.
                lazy.for_chunk(&chunk, &text, false);
                return Ok(true);
            }
            let sym = lazy.for_chunk(&chunk, &text, true).expect("forced");
            for r in &chunk.reports {
                for f in &r.frames {
                    if let Some(m) = &f.module {
                        if modules.len() < 4096 {
                            modules.insert(kmortem_symbols::split_module(m).0.to_string());
                        }
                    }
                }
                let d = decode::DecodedReport {
                    report: r,
                    decode: decode::decode_report(sym, r, source),
                };
                out.write_all(if count == 0 { b"\n" } else { b",\n" })?;
                write_indented(&mut out, &d, 4, true)?;
                count += 1;
            }
            out.flush()?;
            return Ok(true);
        }
        match lazy.for_chunk(&chunk, &text, false) {
            Some(sym) => {
                for l in &chunk.lines {
                    dec.line(&mut out, l, sym, source)?;
                }
            }
            None => {
                for l in &chunk.lines {
                    dec.raw_line(&mut out, l)?;
                }
            }
        }
        out.flush()?;
        Ok(true)
    })?;
    // No report at all: the notes still say what debug info there is for the release seen.
    if lazy.sym.is_none() {
        let empty = super::stream::Chunk {
            lines: Vec::new(),
            first_line: 1,
            before: Vec::new(),
            reports: Vec::new(),
        };
        lazy.for_chunk(&empty, "", true);
    }
    let mut notes = std::mem::take(&mut lazy.notes);
    let release = lazy.release.clone();
    let sym = lazy.sym.as_mut().expect("set up");
    if args.json {
        if count > 0 {
            out.write_all(b"\n  ")?;
        }
        out.write_all(b"],\n  \"debug_info\": ")?;
        for m in &modules {
            if sym.module(m).is_none() {
                notes.push(format!("module {m}: no {m}.ko found; pass --modules DIR"));
            }
        }
        notes.append(&mut sym.notes);
        let di = decode::DebugInfo {
            modules: modules
                .iter()
                .map(|m| (m.clone(), sym.module(m).map(|b| b.path.clone())))
                .collect(),
            ..decode::debug_info(sym, release, &[])
        };
        write_indented(&mut out, &di, 2, false)?;
        out.write_all(b",\n  \"notes\": ")?;
        write_indented(&mut out, &notes, 2, false)?;
        out.write_all(b"\n}\n")?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    dec.finish(&mut out, sym, &mut notes)?;
    out.flush()?;
    for n in notes {
        eprintln!(
            "kmortem decode: {}",
            kmortem_oops::input::escape_controls(&n)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Pretty JSON of `v` as a member `depth` spaces deep in a pretty document: JSON strings hold no
/// raw newline, so indenting every line after the first is exact.
/// With `pad_first`, the first line is indented too (an array element).
pub(crate) fn write_indented(
    out: &mut impl Write,
    v: &impl serde::Serialize,
    depth: usize,
    pad_first: bool,
) -> Result<()> {
    let s = serde_json::to_string_pretty(v)?;
    let pad = " ".repeat(depth);
    for (i, l) in s.lines().enumerate() {
        if i > 0 {
            out.write_all(b"\n")?;
            out.write_all(pad.as_bytes())?;
        } else if pad_first {
            out.write_all(pad.as_bytes())?;
        }
        out.write_all(l.as_bytes())?;
    }
    Ok(())
}
