//! `kmortem explain`: what exactly went wrong at the faulting instruction.

use anyhow::{Context as _, Result};
use kmortem_explain::Finding;
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

#[derive(Serialize, Clone)]
struct ReportOut {
    title: String,
    kind: String,
    findings: Vec<Finding>,
}

/// A report kept until the end of the input can say whether it is the one to explain: its
/// line numbers counted from the start of `window`, the log text around it.
struct Held {
    index: usize,
    report: kmortem_oops::Report,
    window: String,
    text: String,
}

/// Stop listing earlier reports by title after this many (the count goes on).
const MAX_CONTEXT: usize = 100_000;

pub fn run(args: Args) -> Result<ExitCode> {
    let mut program = None;
    if let Some(c) = &args.core {
        program = Some(super::core::open_program(c, args.debug.vmlinux.as_deref())?);
    }
    let (reader, name): (Box<dyn std::io::Read + Send>, String) = match (&args.log, &program) {
        (None, Some(p)) => {
            // The reader `kmortem log` uses: the lockless ring of 5.10+ or the legacy log_buf.
            let recs = kmortem_kernel::printk::read_log(p, &p.vmcoreinfo)
                .context("cannot read the log from the vmcore")?;
            let mut t = String::new();
            for r in recs {
                t.push_str(&r.format(false));
                t.push('\n');
            }
            (
                Box::new(std::io::Cursor::new(t.into_bytes())),
                "the vmcore's log".to_string(),
            )
        }
        _ => super::stream::open_log(&args.log)?,
    };
    let mut lazy = super::decode::LazySym::new(args.debug.options());
    // With both a log and a dump: are they the same crash? Asked of the first reports seen.
    let mut same_crash_notes: Option<Vec<String>> = None;
    // Known-bug link: only when a fixes index was built under $KMORTEM_HOME (`kmortem fixes import`).
    let fixes = open_fixes();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(super::SafeWriter::new(stdout.lock(), !args.json));
    // Reports are explained and written as their chunk of the log completes; --json writes
    // `{"reports": [...], "notes": [...]}` the same way.
    // The report explained is the one that ended the machine (kmortem_oops::pick_fatal): the
    // one `Kernel panic` follows is known as soon as the panic is read, and is explained then,
    // while the input is still open; without a panic, the last oops/BUG (else the last report)
    // is explained at the end of the input. Two reports are held for that, each with its log
    // window; the others are kept as titles (context) only.
    let mut titles: Vec<(String, String)> = Vec::new();
    let mut count = 0usize;
    let mut picked: Option<kmortem_oops::Pick> = None;
    let mut explained: Option<ReportOut> = None;
    let mut last: Option<Held> = None;
    let mut last_oops: Option<Held> = None;
    let explain_one = |h: &Held, lazy: &mut super::decode::LazySym| -> ReportOut {
        let mut findings = match lazy.sym.as_mut() {
            Some(sym) => {
                let mut ctx = kmortem_explain::Context {
                    sym,
                    source: args.source.as_deref(),
                    log: Some(&h.window),
                    program: program.as_ref(),
                };
                kmortem_explain::explain(&h.report, &mut ctx)
            }
            None => Vec::new(),
        };
        if let Some(ix) = &fixes {
            findings.extend(known_fixes(ix, &h.report, &h.text));
        }
        ReportOut {
            title: h.report.title.clone(),
            kind: h.report.kind.as_str().to_string(),
            findings,
        }
    };
    super::stream::for_each_chunk(reader, &name, "explain", |chunk| {
        let text = chunk.text();
        if chunk.reports.is_empty() {
            lazy.for_chunk(&chunk, &text, false);
            return Ok(true);
        }
        if let (Some(_), Some(p), None) = (&args.log, &program, &same_crash_notes) {
            same_crash_notes = Some(same_crash(p, &chunk.reports));
        }
        let (window, base) = chunk.window();
        lazy.for_chunk(&chunk, &text, true).expect("forced");
        for r in &chunk.reports {
            let index = count;
            count += 1;
            if titles.len() < MAX_CONTEXT {
                titles.push((r.title.clone(), r.kind.as_str().to_string()));
            }
            if r.kind.is_event() || picked.is_some() {
                continue;
            }
            // The report's lines counted from the start of the window the explainer is given.
            let mut local = r.clone();
            local.start_line = r.start_line.saturating_sub(base - 1).max(1);
            local.end_line = r.end_line.saturating_sub(base - 1).max(1);
            let held = Held {
                index,
                report: local,
                window: window.clone(),
                text: text.clone(),
            };
            // Which report this one decides for: `Some(true)` the previous one, `Some(false)`
            // this one, `None` no decision yet.
            let prev_is_it = match args.report {
                Some(n) if n == index + 1 => Some((false, kmortem_oops::PickReason::Requested)),
                Some(_) => None,
                None if r.panic_message.is_some() => {
                    // A bare `Fatal exception` panic names the report before it.
                    let pair: Vec<kmortem_oops::Report> = last
                        .iter()
                        .map(|h| h.report.clone())
                        .chain(std::iter::once(held.report.clone()))
                        .collect();
                    let prev = last.is_some()
                        && kmortem_oops::pick_fatal(&pair).is_some_and(|p| p.index == 0);
                    Some((prev, kmortem_oops::PickReason::Panic))
                }
                None => None,
            };
            let choice = match prev_is_it {
                Some((true, reason)) => last.take().map(|h| (h, reason)),
                Some((false, reason)) => Some((held, reason)),
                None => {
                    if kmortem_oops::pick::is_oops(&held.report) {
                        last_oops = Some(Held {
                            index: held.index,
                            report: held.report.clone(),
                            window: held.window.clone(),
                            text: held.text.clone(),
                        });
                    }
                    last = Some(held);
                    None
                }
            };
            if let Some((h, reason)) = choice {
                let ro = explain_one(&h, &mut lazy);
                if !args.json {
                    print_report(&mut out, &ro)?;
                    out.flush()?;
                }
                picked = Some(kmortem_oops::Pick {
                    index: h.index,
                    reason,
                });
                explained = Some(ro);
                last = None;
                last_oops = None;
            }
        }
        Ok(true)
    })?;
    if let Some(n) = args.report {
        if n == 0 || n > count {
            anyhow::bail!(
                "--report {n}: the log holds {count} report{} (numbered from 1)",
                if count == 1 { "" } else { "s" }
            );
        }
    }
    if picked.is_none() {
        let (h, reason) = match (last_oops.take(), last.take()) {
            (Some(h), _) => (Some(h), kmortem_oops::PickReason::LastOops),
            (None, Some(h)) => (Some(h), kmortem_oops::PickReason::LastReport),
            (None, None) => (None, kmortem_oops::PickReason::LastReport),
        };
        if let Some(h) = h {
            let ro = explain_one(&h, &mut lazy);
            if !args.json {
                print_report(&mut out, &ro)?;
            }
            picked = Some(kmortem_oops::Pick {
                index: h.index,
                reason,
            });
            explained = Some(ro);
        }
    }
    if !args.json {
        if let Some(p) = picked.filter(|_| count > 1) {
            write_pick(&mut out, p, count, &titles)?;
        }
    }
    let mut notes = std::mem::take(&mut lazy.notes);
    notes.extend(same_crash_notes.unwrap_or_default());
    if lazy.sym.is_none() {
        // No report: say what debug info there is, as with reports.
        let empty = super::stream::Chunk {
            lines: Vec::new(),
            first_line: 1,
            before: Vec::new(),
            reports: Vec::new(),
        };
        lazy.for_chunk(&empty, "", true);
        notes.append(&mut lazy.notes);
    }
    if let Some(sym) = lazy.sym.as_mut() {
        notes.append(&mut sym.notes);
    }
    if args.json {
        // `{"reports": [...], "picked": {...}, "notes": [...]}`: the picked report with its
        // findings, the others by title and kind (no findings).
        let reports: Vec<ReportOut> = titles
            .iter()
            .enumerate()
            .map(|(i, (title, kind))| match (&picked, &explained) {
                (Some(p), Some(ro)) if p.index == i => ro.clone(),
                _ => ReportOut {
                    title: title.clone(),
                    kind: kind.clone(),
                    findings: Vec::new(),
                },
            })
            .collect();
        out.write_all(b"{\n  \"reports\": ")?;
        super::decode::write_indented(&mut out, &reports, 2, false)?;
        if let Some(p) = &picked {
            out.write_all(b",\n  \"picked\": ")?;
            super::decode::write_indented(&mut out, p, 2, false)?;
        }
        out.write_all(b",\n  \"notes\": ")?;
        super::decode::write_indented(&mut out, &notes, 2, false)?;
        out.write_all(b"\n}\n")?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    if count == 0 {
        writeln!(out, "no kernel crash report found in the input")?;
    }
    out.flush()?;
    for n in notes {
        eprintln!(
            "kmortem explain: {}",
            kmortem_oops::input::escape_controls(&n)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Which report of several is explained, and the others as context.
fn write_pick(
    out: &mut impl Write,
    p: kmortem_oops::Pick,
    count: usize,
    titles: &[(String, String)],
) -> Result<()> {
    writeln!(
        out,
        "  (report {} of {}: {})",
        p.index + 1,
        count,
        p.reason.describe()
    )?;
    for (j, (title, _)) in titles.iter().enumerate() {
        if j != p.index {
            writeln!(
                out,
                "  {} report {}: {} (`--report {}` explains it)",
                if j < p.index { "earlier" } else { "later" },
                j + 1,
                title,
                j + 1
            )?;
        }
    }
    if titles.len() < count {
        writeln!(out, "  ({} more reports not listed)", count - titles.len())?;
    }
    Ok(())
}

fn print_report(out: &mut impl Write, r: &ReportOut) -> std::io::Result<()> {
    writeln!(out, "{}", r.title)?;
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
    Ok(())
}

/// The fix index under $KMORTEM_HOME, if one was built and has entries.
#[cfg(feature = "fixes")]
fn open_fixes() -> Option<kmortem_fixes::FixIndex> {
    kmortem_fixes::FixIndex::open(&kmortem_fixes::default_home())
        .ok()
        .filter(|ix| !ix.is_empty())
}

/// Built without the `fixes` feature: no index, no known-fix links.
#[cfg(not(feature = "fixes"))]
fn open_fixes() -> Option<std::convert::Infallible> {
    None
}

#[cfg(not(feature = "fixes"))]
fn known_fixes(ix: &std::convert::Infallible, _: &kmortem_oops::Report, _: &str) -> Vec<Finding> {
    match *ix {}
}

/// The top candidates of the fixes index for one report, as `known_fix` findings (low
/// confidence: a ranked suggestion, not a proof).
#[cfg(feature = "fixes")]
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

/// With a log and a dump: are they the same crash? The release of the log's reports against
/// the dump's OSRELEASE, and the log's report titles against the dump's own log. Each
/// disagreement is a warning (the findings mix two crashes otherwise).
fn same_crash(p: &kmortem_kernel::Program, reports: &[kmortem_oops::Report]) -> Vec<String> {
    let mut out = Vec::new();
    let log_rel = reports.iter().find_map(|r| r.kernel_release.clone());
    if let (Some(a), Some(b)) = (&log_rel, &p.vmcoreinfo.osrelease) {
        if a != b {
            out.push(format!(
                "warning: the log is Linux {a}, the dump is Linux {b}: not the same crash"
            ));
            return out;
        }
    }
    let Ok(recs) = kmortem_kernel::printk::read_log(p, &p.vmcoreinfo) else {
        return out;
    };
    let mut t = String::new();
    for r in recs {
        t.push_str(&r.format(false));
        t.push('\n');
    }
    let dump_titles: Vec<String> = kmortem_oops::parse(t.as_bytes())
        .into_iter()
        .map(|r| r.title)
        .collect();
    if let Some(r) = reports.first() {
        if !dump_titles.is_empty() && !dump_titles.contains(&r.title) {
            out.push(format!(
                "warning: the log's crash ({:?}) is not in the dump's log (which has {:?}): not the same crash",
                r.title,
                dump_titles.first().cloned().unwrap_or_default()
            ));
        }
    }
    out
}
