//! `kmortem explain`: what exactly went wrong at the faulting instruction.

use anyhow::{Context as _, Result};
use kmortem_explain::{decode, Finding};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Explain a kernel crash: which pointer was bad, which member was touched, which list link is
/// broken, which condition fired, which loop a stuck CPU spins in.
///
/// Findings come most certain first; each has a kind, a one-line summary, the evidence behind it
/// (trapping instruction, register values, DWARF locations, kernel messages) and a confidence
/// (high, medium, low). When no variable lives in the faulting register at that PC, it says so.
///
/// Works from the console log and the debug info alone: the trapping instruction's memory
/// operand → the register's value in the oops → the DWARF variable in that register → the
/// member at that offset of its type, and the instructions (and the caller's) that loaded it.
///
/// Debug info is found like `kmortem decode` finds it (--vmlinux, --modules, --debug-dir, or from
/// the release in the oops).
///
/// Examples:
///   kmortem explain console.log
///   dmesg | kmortem explain --vmlinux ./vmlinux --modules ./drivers/
///   kmortem explain oops.txt --source ~/linux --json
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Log to read; `-` or nothing reads standard input.
    pub log: Option<PathBuf>,
    #[command(flatten)]
    pub debug: super::decode::DebugArgs,
    /// The vmcore of the same crash: add memory facts (freed slab objects, vmalloc bounds and
    /// real array lengths, the damaged list walked). Without LOG, the log is read from the
    /// vmcore's printk buffer.
    #[arg(long = "core", value_name = "VMCORE")]
    pub core: Option<PathBuf>,
    /// Source tree (or file): show the line and condition of `kernel BUG at`/`WARNING at`.
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,
    /// Print JSON (docs/json/explain.md).
    #[arg(long)]
    pub json: bool,
    /// Explain the Nth report of the log (1 = the first) instead of the one that ended the
    /// machine (the one `Kernel panic - not syncing` follows, else the last oops/BUG, else the
    /// last report).
    #[arg(long = "report", value_name = "N")]
    pub report: Option<usize>,
}

#[derive(Serialize)]
struct ReportOut {
    title: String,
    kind: String,
    findings: Vec<Finding>,
}

#[derive(Serialize)]
struct JsonOut {
    notes: Vec<String>,
    /// The report explained (an index into `reports`) and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    picked: Option<kmortem_oops::Pick>,
    reports: Vec<ReportOut>,
}

/// The report to explain: `--report N` (1-based), else the one that ended the machine.
pub(crate) fn pick_report(
    reports: &[kmortem_oops::Report],
    requested: Option<usize>,
) -> Result<Option<kmortem_oops::Pick>> {
    match requested {
        Some(n) if n == 0 || n > reports.len() => anyhow::bail!(
            "--report {n}: the log holds {} report{} (numbered from 1)",
            reports.len(),
            if reports.len() == 1 { "" } else { "s" }
        ),
        Some(n) => Ok(Some(kmortem_oops::Pick {
            index: n - 1,
            reason: kmortem_oops::PickReason::Requested,
        })),
        None => Ok(kmortem_oops::pick_fatal(reports)),
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let mut program = None;
    if let Some(c) = &args.core {
        program = Some(
            kmortem_kernel::Program::open(c, args.debug.vmlinux.as_deref())
                .with_context(|| format!("cannot open {}", c.display()))?,
        );
    }
    let input = match (&args.log, &program) {
        (None, Some(p)) => {
            let recs = kmortem_kernel::printk::read_printk_log(p, &p.vmcoreinfo)
                .context("cannot read the log from the vmcore")?;
            let mut t = String::new();
            for r in recs {
                t.push_str(&r.format(false));
                t.push('\n');
            }
            t.into_bytes()
        }
        _ => super::decode::read_input(&args.log)?,
    };
    let text = String::from_utf8_lossy(&input);
    let reports = kmortem_oops::parse(&input);
    let picked = pick_report(&reports, args.report)?;
    let mut notes = Vec::new();
    let opts = args.debug.options();
    let (mut sym, _release) = decode::symbolizer_for(&opts, &text, &reports, &mut notes);
    // Known-bug link: only when a fixes index was built under $KMORTEM_HOME (`kmortem fixes import`).
    let fixes = kmortem_fixes::FixIndex::open(&kmortem_fixes::default_home())
        .ok()
        .filter(|ix| !ix.is_empty());
    let mut outs = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        // Only the picked report is explained; the others are context (their titles).
        if picked.is_some_and(|p| p.index != i) {
            outs.push(ReportOut {
                title: r.title.clone(),
                kind: r.kind.as_str().to_string(),
                findings: Vec::new(),
            });
            continue;
        }
        let mut ctx = kmortem_explain::Context {
            sym: &mut sym,
            source: args.source.as_deref(),
            log: Some(&text),
            program: program.as_ref(),
        };
        let mut findings = kmortem_explain::explain(r, &mut ctx);
        if let Some(ix) = &fixes {
            findings.extend(known_fixes(ix, r, &text));
        }
        outs.push(ReportOut {
            title: r.title.clone(),
            kind: r.kind.as_str().to_string(),
            findings,
        });
    }
    notes.append(&mut sym.notes);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        serde_json::to_writer_pretty(
            &mut out,
            &JsonOut {
                notes,
                picked,
                reports: outs,
            },
        )?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if outs.is_empty() {
        writeln!(out, "no kernel crash report found in the input")?;
    }
    for (i, r) in outs.iter().enumerate() {
        if picked.is_some_and(|p| p.index != i) {
            continue;
        }
        if i > 0 && picked.is_none() {
            writeln!(out)?;
        }
        writeln!(out, "{}", r.title)?;
        if let Some(p) = picked.filter(|_| outs.len() > 1) {
            write_pick(&mut out, p, &outs)?;
        }
        if r.findings.is_empty() {
            writeln!(
                out,
                "  no findings (nothing in the report and debug info explains it)"
            )?;
        }
        for f in &r.findings {
            writeln!(
                out,
                "  [{}] {}: {}",
                f.confidence.as_str(),
                f.kind,
                f.summary
            )?;
            for e in &f.evidence {
                writeln!(out, "      - {e}")?;
            }
        }
    }
    out.flush()?;
    for n in notes {
        eprintln!("kmortem explain: {n}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Which report of several is explained, and the others as context.
fn write_pick(out: &mut impl Write, p: kmortem_oops::Pick, outs: &[ReportOut]) -> Result<()> {
    writeln!(
        out,
        "  (report {} of {}: {})",
        p.index + 1,
        outs.len(),
        p.reason.describe()
    )?;
    for (j, o) in outs.iter().enumerate() {
        if j != p.index {
            writeln!(
                out,
                "  {} report {}: {} (`--report {}` explains it)",
                if j < p.index { "earlier" } else { "later" },
                j + 1,
                o.title,
                j + 1
            )?;
        }
    }
    Ok(())
}

/// The top candidates of the fixes index for one report, as `known_fix` findings (low
/// confidence: a ranked suggestion, not a proof).
fn known_fixes(ix: &kmortem_fixes::FixIndex, r: &kmortem_oops::Report, text: &str) -> Vec<Finding> {
    let Some(q) = kmortem_fixes::CrashQuery::from_reports(std::slice::from_ref(r), text) else {
        return Vec::new();
    };
    let Ok(cands) = ix.search(&q, 3) else {
        return Vec::new();
    };
    cands
        .into_iter()
        .map(|c| {
            let mut f = Finding::new(
                "known_fix",
                format!(
                    "possibly known: {}{} (score {:.1})",
                    c.cve
                        .as_deref()
                        .map(|x| format!("{x}: "))
                        .unwrap_or_default(),
                    c.subject,
                    c.score
                ),
                kmortem_explain::Confidence::Low,
            );
            for e in &c.evidence {
                f.evidence
                    .push(format!("{}: {} ({})", e.kind, e.matched.join(", "), e.note));
            }
            if f.evidence.is_empty() {
                f.evidence.push("ranked by kmortem fixes".into());
            }
            if let Some(cve) = &c.cve {
                f.fact("cve", cve.clone());
            }
            if !c.commits.is_empty() {
                f.fact("commits", c.commits.join(" "));
            }
            f
        })
        .collect()
}
