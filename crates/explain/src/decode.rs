//! Decoding an oops: symbolize every frame like the kernel's `scripts/decode_stacktrace.sh`,
//! disassemble the `Code:` line like `scripts/decodecode` (operands evaluated with the oops's
//! registers), and show the faulting source line. `kmortem decode` is a thin shell over this; it
//! lives here (not in kmortem-symbols) because it joins three crates (oops, symbols, disasm) and
//! `explain` starts from the same resolutions.

use kmortem_disasm::{Arch, Decoded};
use kmortem_oops::line::{self as grammar, FrameToken};
use kmortem_symbols::{locate, Query, Resolution, Source, Symbolizer};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where debug information comes from (the `decode`/`explain` flags).
#[derive(Debug, Clone, Default)]
pub struct DebugOptions {
    pub vmlinux: Option<PathBuf>,
    pub modules: Vec<PathBuf>,
    pub debug_dir: Vec<PathBuf>,
    pub system_map: Option<PathBuf>,
    pub kaslr_offset: Option<u64>,
    pub release: Option<String>,
    pub no_system: bool,
}

/// Parses a hex number with or without `0x`.
pub fn parse_hex(s: &str) -> Result<u64, String> {
    let t = s.trim().trim_start_matches("0x").trim_start_matches("0X");
    u64::from_str_radix(t, 16).map_err(|e| format!("not a hex number: {s}: {e}"))
}

/// Serial consoles log CRLF line ends; the report parser wants plain lines.
pub fn normalize_input(input: &mut Vec<u8>) {
    if input.contains(&b'\r') {
        input.retain(|&b| b != b'\r');
    }
}

/// A Symbolizer for a log: the release (flag, parsed reports, or scanned), debug files found, KASLR
/// offset (flag or `Kernel Offset:` line).
pub fn symbolizer_for(
    opts: &DebugOptions,
    text: &str,
    reports: &[kmortem_oops::Report],
    notes: &mut Vec<String>,
) -> (Symbolizer, Option<String>) {
    let release = opts
        .release
        .clone()
        .or_else(|| reports.iter().find_map(|r| r.kernel_release.clone()))
        .or_else(|| grammar::scan_release(text));
    let mut sym = setup(opts, release.as_deref(), notes);
    sym.kaslr_offset = opts.kaslr_offset.or_else(|| grammar::scan_kaslr(text));
    (sym, release)
}

/// The JSON document of `kmortem decode --json`.
pub fn decode_json<'a>(
    sym: &mut Symbolizer,
    release: Option<String>,
    reports: &'a [kmortem_oops::Report],
    source: Option<&Path>,
    mut notes: Vec<String>,
) -> JsonOut<'a> {
    let mut decoded = Vec::new();
    for r in reports {
        decoded.push(DecodedReport {
            report: r,
            decode: decode_report(sym, r, source),
        });
    }
    notes.append(&mut module_notes(sym, reports));
    notes.append(&mut sym.notes);
    let di = debug_info(sym, release, reports);
    JsonOut {
        debug_info: di,
        notes,
        picked: kmortem_oops::pick_fatal(reports),
        reports: decoded,
    }
}

/// The text output of `kmortem decode`: the log with `(file:line)` annotations, `(inlined by)`
/// lines, source context and decoded `Code:` lines. Returns the notes (what was missing).
pub fn write_text(
    out: &mut impl Write,
    text: &str,
    sym: &mut Symbolizer,
    source: Option<&Path>,
    mut notes: Vec<String>,
) -> std::io::Result<Vec<String>> {
    let mut d = TextDecoder::default();
    for line in text.lines() {
        d.line(out, line, sym, source)?;
    }
    d.finish(out, sym, &mut notes)?;
    Ok(notes)
}

/// [`write_text`] one line at a time, for a log read as a stream: the state between lines
/// (registers, a `Code:` line waiting for them, the last IP, modules seen) is all it keeps.
#[derive(Default)]
pub struct TextDecoder {
    regs: BTreeMap<String, u64>,
    pending: Option<PendingCode>,
    last_ip: Option<Resolution>,
    modules_seen: BTreeMap<String, ()>,
}

impl TextDecoder {
    /// A line without the symbolizer (none could be set up yet): printed as it is, the register
    /// and `Code:` state reset.
    pub fn raw_line(&mut self, out: &mut impl Write, line: &str) -> std::io::Result<()> {
        if let Some(p) = self.pending.take() {
            flush_code(out, p, &self.regs)?;
        }
        writeln!(out, "{line}")
    }

    /// Decode and print one line.
    pub fn line(
        &mut self,
        out: &mut impl Write,
        line: &str,
        sym: &mut Symbolizer,
        source: Option<&Path>,
    ) -> std::io::Result<()> {
        let stamp_end = grammar::console_prefix_len(line);
        let trimmed = line[stamp_end..].trim_start();
        let is_code = trimmed.starts_with("Code:");
        let reg_toks = if is_code {
            Vec::new()
        } else {
            grammar::register_tokens(trimmed)
        };
        // The register dump follows the Code: line on x86 (precedes it on arm64): decode once the
        // dump is over, so the operands can be evaluated.
        // (x86 prints the registers after Code:, arm64 before it: flush at the first line that is
        // not a register line.)
        if reg_toks.is_empty() {
            if let Some(p) = self.pending.take() {
                flush_code(out, p, &self.regs)?;
            }
        }
        if !reg_toks.is_empty() {
            writeln!(out, "{line}")?;
            self.regs.extend(reg_toks);
            return Ok(());
        }
        if is_code {
            writeln!(out, "{line}")?;
            if let Some(c) = kmortem_disasm::code_line::parse(trimmed) {
                let address = self.last_ip.as_ref().and_then(|r| code_address(sym, r));
                self.pending = Some(PendingCode {
                    code: c,
                    address,
                    indent: line[..stamp_end].to_string() + " ",
                });
            }
            return Ok(());
        }
        if trimmed.starts_with("RIP:") || trimmed.starts_with("pc :") {
            self.regs.clear();
            self.last_ip = None;
            // User-mode RIP: `RIP: 0033:0x47b7a0`.
            if let Some(v) = trimmed
                .split_whitespace()
                .nth(1)
                .and_then(|t| t.rsplit(':').next())
            {
                if v.starts_with("0x") {
                    if let Ok(a) = parse_hex(v) {
                        self.last_ip = Some(user_ip(a));
                    }
                }
            }
        }
        let Some(tok) = grammar::find_frame(line) else {
            return writeln!(out, "{line}");
        };
        if let Some(m) = &tok.module {
            self.modules_seen
                .insert(kmortem_symbols::split_module(m).0.to_string(), ());
        }
        // Old-style `[<ffffffff9a2b3c4d>] func+0x1d/0x50` frames give the KASLR offset.
        if let (Some(a), None) = (tok.address, tok.module.as_ref()) {
            sym.learn_kaslr(&tok.function, tok.offset, tok.size, a);
        }
        let r = sym.resolve(&query(&tok));
        if r.source == Source::None {
            return writeln!(out, "{line}");
        }
        writeln!(out, "{line}{}", annotate(&r))?;
        let pad = " ".repeat(line[stamp_end..tok.start].chars().count());
        for (i, f) in r.frames.iter().enumerate().skip(1) {
            writeln!(
                out,
                "{}{pad}(inlined by) {} ({})",
                &line[..stamp_end],
                f.function.as_deref().unwrap_or("??"),
                location(&r, i).unwrap_or_else(|| "??:0".into())
            )?;
        }
        if tok.is_ip {
            if let Some(dir) = source {
                if let Some(sc) = source_context(dir, &r) {
                    writeln!(out, "{}{pad}Source {}:", &line[..stamp_end], sc.file)?;
                    for l in sc.lines {
                        let mark = if l.faulting { ">" } else { " " };
                        writeln!(
                            out,
                            "{}{pad}{mark}{:>6}  {}",
                            &line[..stamp_end],
                            l.line,
                            l.text
                        )?;
                    }
                }
            }
            self.last_ip = Some(r);
        }
        Ok(())
    }

    /// End of input: the last `Code:` listing, and the notes on modules never found.
    pub fn finish(
        mut self,
        out: &mut impl Write,
        sym: &mut Symbolizer,
        notes: &mut Vec<String>,
    ) -> std::io::Result<()> {
        if let Some(p) = self.pending.take() {
            flush_code(out, p, &self.regs)?;
        }
        out.flush()?;
        for m in self.modules_seen.keys() {
            if sym.module(m).is_none() {
                notes.push(format!(
                    "module {m}: no {m}.ko found; pass --modules DIR (the build directory of the module, or /usr/lib/debug/lib/modules/REL)"
                ));
            }
        }
        notes.append(&mut sym.notes);
        Ok(())
    }
}

#[derive(Serialize)]
pub struct DebugInfo {
    pub release: Option<String>,
    pub vmlinux: Option<PathBuf>,
    pub vmlinux_has_dwarf: bool,
    pub vmlinux_build_id: Option<String>,
    pub system_map: Option<PathBuf>,
    pub kaslr_offset: Option<u64>,
    pub modules: BTreeMap<String, Option<PathBuf>>,
}

#[derive(Serialize)]
pub struct SourceLine {
    pub line: u32,
    pub text: String,
    pub faulting: bool,
}

#[derive(Serialize)]
pub struct ReportDecode {
    pub ip: Option<Resolution>,
    pub frames: Vec<Resolution>,
    pub code: Option<Decoded>,
    /// Address the `Code:` listing uses for the trapping byte.
    pub code_address: Option<u64>,
    pub source: Option<SourceContext>,
}

#[derive(Serialize)]
pub struct SourceContext {
    pub file: String,
    pub lines: Vec<SourceLine>,
}

#[derive(Serialize)]
pub struct DecodedReport<'a> {
    #[serde(flatten)]
    pub report: &'a kmortem_oops::Report,
    pub decode: ReportDecode,
}

#[derive(Serialize)]
pub struct JsonOut<'a> {
    pub debug_info: DebugInfo,
    pub notes: Vec<String>,
    /// The report that ended the machine (an index into `reports`) and why
    /// (`kmortem_oops::pick_fatal`); absent when the log holds no crash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picked: Option<kmortem_oops::Pick>,
    pub reports: Vec<DecodedReport<'a>>,
}

pub fn setup(args: &DebugOptions, release: Option<&str>, notes: &mut Vec<String>) -> Symbolizer {
    let mut sym = Symbolizer::new();
    let system = !args.no_system;
    match &args.vmlinux {
        Some(p) => {
            if let Err(e) = sym.set_vmlinux(p) {
                notes.push(format!("cannot use --vmlinux: {e}"));
            }
        }
        None => {
            let cands = locate::vmlinux_candidates(release, &args.debug_dir, system);
            for c in &cands {
                if c.is_file() && sym.set_vmlinux(c).is_ok() {
                    break;
                }
            }
        }
    }
    match &sym.vmlinux {
        None => {
            let how = match release {
                Some(r) => format!(
                    "install the debug package (Debian: apt install {}; other distributions: the kernel {r} debuginfo package) or pass --vmlinux / --debug-dir",
                    locate::debian_dbg_package(r)
                ),
                None => "the log names no kernel release; pass --vmlinux PATH or --release REL".to_string(),
            };
            notes.push(format!(
                "no vmlinux found for {}: frames get no file:line; {how}",
                release.unwrap_or("this kernel")
            ));
        }
        Some(v) if !v.has_dwarf() => {
            notes.push(format!(
                "{} has no DWARF (stripped): symbols only, no file:line; {}",
                v.path.display(),
                release
                    .map(|r| format!("apt install {}", locate::debian_dbg_package(r)))
                    .unwrap_or_else(|| "use the -dbg/debuginfo vmlinux".into())
            ));
        }
        _ => {}
    }
    if let Some(m) = &args.system_map {
        if let Err(e) = sym.set_map(m) {
            notes.push(format!("{}: {e}", m.display()));
        }
    } else if sym.vmlinux.is_none() {
        // The first candidate that parses: Debian's /boot/System.map is a stub.
        for m in locate::map_candidates(release, &args.debug_dir, system) {
            if m.is_file() && sym.set_map(&m).is_ok() {
                break;
            }
        }
    }
    for d in &args.modules {
        sym.add_module_dir(d);
    }
    for d in locate::module_dirs(release, &args.debug_dir, system) {
        sym.add_module_dir(&d);
    }
    sym
}

pub fn location(r: &Resolution, i: usize) -> Option<String> {
    let f = r.frames.get(i)?;
    let file = grammar::kernel_relative(f.short_file.as_deref().or(f.file.as_deref())?);
    Some(if f.discriminator > 0 && i == 0 {
        format!("{file}:{} (discriminator {})", f.line, f.discriminator)
    } else {
        format!("{file}:{}", f.line)
    })
}

pub fn annotate(r: &Resolution) -> String {
    let mut s = String::new();
    if let Some(l) = location(r, 0) {
        s.push_str(&format!(" ({l})"));
    }
    if let Some(m) = &r.size_mismatch {
        s.push_str(&format!(
            " [size mismatch: trace /{:#x}, binary /{:#x}: wrong vmlinux or module?]",
            m.printed, m.binary
        ));
    }
    if let Some((want, have)) = &r.build_id_mismatch {
        s.push_str(&format!(
            " [build-id mismatch: trace {want}, binary {have}]"
        ));
    }
    s
}

/// The address the `Code:` listing uses for the trapping byte: the runtime address for vmlinux
/// (link address + KASLR offset when known), the section offset for a module (`objdump -d -j
/// .text kmlab.ko` shows the same numbers), the RIP value itself for user space.
pub fn code_address(sym: &Symbolizer, r: &Resolution) -> Option<u64> {
    if let Some((_, off)) = &r.section {
        return Some(*off + (r.address? - r.lookup_address?));
    }
    if r.source == Source::None {
        return r.address;
    }
    r.address
        .map(|a| a.wrapping_add(sym.kaslr_offset.unwrap_or(0)))
}

pub fn source_context(dir: &Path, r: &Resolution) -> Option<SourceContext> {
    let f = r.frames.first()?;
    let rel = f.short_file.as_deref()?;
    let path = dir.join(rel);
    let text = std::fs::read_to_string(&path).ok()?;
    let n = f.line as usize;
    let lines = text
        .lines()
        .enumerate()
        .filter(|(i, _)| i + 6 >= n && *i < n + 5)
        .map(|(i, t)| SourceLine {
            line: (i + 1) as u32,
            text: t.to_string(),
            faulting: i + 1 == n,
        })
        .collect::<Vec<_>>();
    if lines.is_empty() {
        return None;
    }
    Some(SourceContext {
        file: rel.to_string(),
        lines,
    })
}

/// The symbolizer query for a report's faulting instruction (not a return address).
pub fn ip_query(ip: &kmortem_oops::InstructionPointer) -> Query<'_> {
    Query {
        function: ip.function.as_deref(),
        offset: ip.offset,
        size: ip.size,
        module: ip.module.as_deref(),
        address: ip.address,
        return_address: false,
    }
}

/// The symbolizer query for a call-trace frame (a return address).
pub fn frame_query(f: &kmortem_oops::Frame) -> Query<'_> {
    Query {
        function: Some(&f.function),
        offset: f.offset,
        size: f.size,
        module: f.module.as_deref(),
        address: f.address,
        return_address: true,
    }
}

pub fn query<'a>(t: &'a FrameToken) -> Query<'a> {
    Query {
        function: Some(&t.function),
        offset: Some(t.offset),
        size: t.size,
        module: t.module.as_deref(),
        address: t.address,
        return_address: !t.is_ip,
    }
}

pub struct PendingCode {
    pub code: kmortem_disasm::code_line::CodeLine,
    pub address: Option<u64>,
    pub indent: String,
}

pub fn flush_code(
    out: &mut impl Write,
    p: PendingCode,
    regs: &BTreeMap<String, u64>,
) -> std::io::Result<()> {
    let d = kmortem_disasm::decode(
        p.code.arch,
        &p.code.bytes,
        p.code.trap_index,
        p.address,
        regs,
    );
    for l in kmortem_disasm::render(&d).lines() {
        writeln!(out, "{}{l}", p.indent)?;
    }
    Ok(())
}

pub fn user_ip(a: u64) -> Resolution {
    Resolution {
        address: Some(a),
        lookup_address: Some(a),
        ..Resolution::empty()
    }
}

pub fn module_notes(sym: &mut Symbolizer, reports: &[kmortem_oops::Report]) -> Vec<String> {
    let mut notes = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for r in reports {
        for f in &r.frames {
            if let Some(m) = &f.module {
                let n = kmortem_symbols::split_module(m).0.to_string();
                if seen.insert(n.clone()) && sym.module(&n).is_none() {
                    notes.push(format!("module {n}: no {n}.ko found; pass --modules DIR"));
                }
            }
        }
    }
    notes
}

pub fn debug_info(
    sym: &mut Symbolizer,
    release: Option<String>,
    reports: &[kmortem_oops::Report],
) -> DebugInfo {
    let mut modules = BTreeMap::new();
    for r in reports {
        for f in &r.frames {
            if let Some(m) = &f.module {
                let n = kmortem_symbols::split_module(m).0.to_string();
                let p = sym.module(&n).map(|b| b.path.clone());
                modules.insert(n, p);
            }
        }
    }
    DebugInfo {
        release,
        vmlinux: sym.vmlinux.as_ref().map(|v| v.path.clone()),
        vmlinux_has_dwarf: sym.vmlinux.as_ref().is_some_and(|v| v.has_dwarf()),
        vmlinux_build_id: sym.vmlinux.as_ref().and_then(|v| v.build_id_hex()),
        system_map: sym.map_path.clone(),
        kaslr_offset: sym.kaslr_offset,
        modules,
    }
}

pub fn decode_report(
    sym: &mut Symbolizer,
    r: &kmortem_oops::Report,
    source: Option<&Path>,
) -> ReportDecode {
    let ip = r.ip.as_ref().and_then(|ip| {
        if ip.function.is_none() && ip.address.is_none() {
            return None;
        }
        Some(sym.resolve(&ip_query(ip)))
    });
    let frames = r
        .frames
        .iter()
        .map(|f| sym.resolve(&frame_query(f)))
        .collect();
    let code_address = ip.as_ref().and_then(|i| code_address(sym, i));
    let code = r.code.as_ref().and_then(|c| {
        let arch = Some(c.arch).filter(|a| *a != Arch::Unknown)?;
        if c.bytes.is_empty() {
            return None;
        }
        Some(kmortem_disasm::decode(
            arch,
            &c.bytes,
            c.trap_index,
            code_address,
            &r.registers,
        ))
    });
    let source = source.and_then(|d| ip.as_ref().and_then(|i| source_context(d, i)));
    ReportDecode {
        ip,
        frames,
        code,
        code_address,
        source,
    }
}
