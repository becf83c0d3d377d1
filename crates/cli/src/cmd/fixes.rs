//! `kmortem fixes`: from a crash to its known fix, CVE, and "is my kernel affected".

use anyhow::{bail, Result};
#[cfg(feature = "fixes-git")]
use kmortem_fixes::git::{import_git, GitOptions};
use kmortem_fixes::{default_home, identify_kernel, CrashQuery, FixIndex, ImportOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Find the known fix for a crash: ranked CVE records and kernel commits, with the evidence for
/// each, and whether your kernel version is affected.
///
/// First build the index once (it lives under $KMORTEM_HOME, default ~/.local/share/kmortem):
///
///   git clone https://git.kernel.org/pub/scm/linux/security/vulns.git
///   kmortem fixes import vulns/              # the kernel CNA's CVE records
///   kmortem fixes import --git ~/linux --since v5.4   # optional: commit history
///
/// Then feed it a crash (a console log, dmesg, `kmortem oops --json` output, a drgn or crash `bt`):
///
///   kmortem fixes console.log
///   dmesg | kmortem fixes - --kernel 6.1.187 --top 3
///   kmortem oops --json crash.log | kmortem fixes --json
///
/// The kernel version comes from --kernel, else from the report's CPU line
/// (`... 6.1.0-43-cloud-amd64 #1 Debian 6.1.187-1`). Vendor kernels whose release string hides the
/// upstream version (RHEL `3.10.0-514.26.2.el7`, Ubuntu `5.15.0-91-generic`) get `unknown`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Sub>,
    /// The crash: a log file, or `-` (or nothing) for standard input. Name a file called
    /// `import` as `./import`.
    pub file: Option<PathBuf>,
    /// Your kernel: an upstream version (`5.12.0`, `6.1.187`) or a release string
    /// (`6.1.0-43-cloud-amd64`). Overrides the version found in the report.
    #[arg(long, value_name = "VERSION")]
    pub kernel: Option<String>,
    /// Print a JSON array of candidates, best first (schema: docs/json/fixes.md).
    #[arg(long)]
    pub json: bool,
    /// How many candidates to print.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub top: usize,
    /// Index directory (default: $KMORTEM_HOME, else ~/.local/share/kmortem).
    #[arg(long, value_name = "DIR", global = true)]
    pub home: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
pub enum Sub {
    /// Build or update the index from a clone of the kernel's `vulns` repository, or from a kernel
    /// git history (--git). Re-running only reads what changed.
    Import(ImportArgs),
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// Path of a clone of the kernel's vulns repository (with cve/published/).
    #[arg(required_unless_present = "git")]
    pub path: Option<PathBuf>,
    /// Index the commit history of this kernel git repository instead.
    #[arg(long, value_name = "REPO", conflicts_with = "path")]
    pub git: Option<PathBuf>,
    /// With --git: only commits after this revision (a tag like v5.4, a branch, or a full SHA).
    #[arg(long, value_name = "REV", requires = "git")]
    pub since: Option<String>,
    /// With --git: read commit messages only, not the diffs (faster; no touched functions/files).
    #[arg(long, requires = "git")]
    pub no_diffs: bool,
    /// Print the import statistics as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let home = args.home.clone().unwrap_or_else(default_home);
    match args.command {
        Some(Sub::Import(a)) => import(&home, a),
        None => query(&home, &args),
    }
}

fn import(home: &std::path::Path, a: ImportArgs) -> Result<ExitCode> {
    #[cfg(not(feature = "fixes-git"))]
    if a.git.is_some() {
        return Err(super::missing::error("fixes import --git", "fixes-git"));
    }
    let mut ix = FixIndex::open_or_create(home).map_err(|e| index_error(home, e))?;
    let out = std::io::stdout();
    let mut out = out.lock();
    #[cfg(feature = "fixes-git")]
    if let Some(repo) = &a.git {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos} commits ({per_sec}) {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        let opts = GitOptions {
            since: a.since.clone(),
            max_commits: None,
            no_diffs: a.no_diffs,
        };
        let stats = import_git(&mut ix, repo, &opts, &mut |n| bar.set_position(n as u64))?;
        bar.finish_and_clear();
        if a.json {
            serde_json::to_writer_pretty(&mut out, &stats)?;
            writeln!(out)?;
        } else {
            writeln!(
                out,
                "{}: {} commits walked, {} indexed ({} merges skipped), {} files diffed, {:.1}s ({:.0} commits/s){}",
                repo.display(),
                stats.walked,
                stats.indexed,
                stats.merges,
                stats.files_diffed,
                stats.seconds,
                stats.commits_per_second,
                if stats.incremental { ", incremental" } else { "" }
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(path) = &a.path else {
        bail!("give a vulns repository path or --git REPO")
    };
    let stats = ix
        .import_cves(path, ImportOptions::default())
        .map_err(|e| index_error(home, e))?;
    if a.json {
        serde_json::to_writer_pretty(&mut out, &stats)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{}: {} records, {} added, {} updated, {} removed, {} unchanged, {} skipped, {:.1}s; index {} docs, {:.1} MiB at {}",
            path.display(),
            stats.scanned,
            stats.added,
            stats.updated,
            stats.removed,
            stats.unchanged,
            stats.skipped.len(),
            stats.seconds,
            ix.len(),
            ix.disk_size() as f64 / (1024.0 * 1024.0),
            home.display()
        )?;
        for (id, why) in &stats.skipped {
            writeln!(out, "  skipped {id}: {why}")?;
        }
        for (id, why) in &stats.warnings {
            writeln!(out, "  imported {id} in part: {why}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Most bytes of input kept for the fallbacks that need the text itself (a `kmortem oops
/// --json` document, a drgn or crash `bt`); a console log is answered from its first report
/// with frames as soon as that report is complete, and the rest of the input is not read.
const MAX_TEXT: usize = 64 << 20;

fn query(home: &std::path::Path, args: &Args) -> Result<ExitCode> {
    let (reader, name) = super::stream::open_log(&args.file)?;
    let mut text = String::new();
    let mut cut = false;
    let mut found: Option<CrashQuery> = None;
    super::stream::for_each_chunk(reader, &name, "fixes", |chunk| {
        for l in &chunk.lines {
            if text.len() + l.len() < MAX_TEXT {
                text.push_str(l);
                text.push('\n');
            } else {
                cut = true;
            }
        }
        if chunk.reports.iter().any(|r| !r.frames.is_empty()) {
            let t = if cut { chunk.text() } else { text.clone() };
            found = CrashQuery::from_reports(&chunk.reports, &t);
        }
        Ok(found.is_none())
    })?;
    let mut q = match found {
        Some(q) => q,
        None => {
            if cut {
                eprintln!(
                    "kmortem fixes: no report with frames in the input; only its first {} MiB were kept for the other formats",
                    MAX_TEXT >> 20
                );
            }
            CrashQuery::from_text(&text)
        }
    };
    if let Some(k) = &args.kernel {
        q.kernel = Some(identify_kernel(k, None));
    }
    if q.frames.is_empty() && q.files.is_empty() && q.guilty_frame.is_none() {
        bail!(
            "no kernel crash in the input (no stack frames, source files or crash title): nothing to match"
        );
    }
    // A damaged index can make the search engine panic on its own files (a truncated segment
    // is read through mmap): report that as one line, not a backtrace.
    let msg = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let hook_msg = msg.clone();
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(mut m) = hook_msg.lock() {
            *m = info.to_string().lines().last().unwrap_or("").to_string();
        }
    }));
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ix = FixIndex::open(home)?;
        if ix.is_empty() {
            return Ok(None);
        }
        ix.search(&q, args.top).map(Some)
    }));
    std::panic::set_hook(prev);
    let cands = match found {
        Ok(Ok(Some(c))) => c,
        Ok(Ok(None)) => bail!(
            "the fix index under {} is empty: run `kmortem fixes import PATH` with a clone of the kernel's vulns repository",
            home.display()
        ),
        Ok(Err(e)) => return Err(index_error(home, e)),
        Err(_) => bail!(
            "the fix index under {} is damaged ({}): remove {} and re-run `kmortem fixes import PATH`",
            home.display(),
            msg.lock().map(|m| m.clone()).unwrap_or_default(),
            home.join("fixes").display()
        ),
    };
    let out = std::io::stdout();
    let mut out = super::SafeWriter::new(out.lock(), !args.json);
    if args.json {
        serde_json::to_writer_pretty(&mut out, &cands)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let key: Vec<&str> = q.key_frames().into_iter().take(6).collect();
    writeln!(
        out,
        "crash: {}{}",
        q.title.as_deref().unwrap_or("(no title)"),
        q.kind
            .map(|k| format!(" [{}]", k.as_str()))
            .unwrap_or_default()
    )?;
    writeln!(out, "frames: {}", key.join(" < "))?;
    if let Some(g) = &q.guilty_file {
        writeln!(out, "guilty file: {g}")?;
    }
    if let Some(k) = &q.kernel {
        writeln!(
            out,
            "kernel: {}{}",
            k.release,
            k.upstream
                .as_deref()
                .map(|u| format!(" (upstream {u})"))
                .unwrap_or_else(|| " (upstream version unknown)".into())
        )?;
    }
    if cands.is_empty() {
        writeln!(out, "no known fix matches")?;
        return Ok(ExitCode::from(1));
    }
    for (i, c) in cands.iter().enumerate() {
        writeln!(out)?;
        let id = c.cve.clone().unwrap_or_else(|| "(no CVE)".into());
        let sha = c
            .commits
            .first()
            .map(|s| &s[..s.len().min(12)])
            .unwrap_or("");
        writeln!(out, "#{} {id} {sha} score {:.2}", i + 1, c.score)?;
        writeln!(out, "   {}", c.subject)?;
        for e in &c.evidence {
            let matched = if e.matched.len() > 8 {
                format!(
                    "{}, ... ({} in all)",
                    e.matched[..8].join(", "),
                    e.matched.len()
                )
            } else {
                e.matched.join(", ")
            };
            writeln!(
                out,
                "   {:+6.2} {}: {}{}({})",
                e.weight,
                e.kind,
                matched,
                if matched.is_empty() { "" } else { " " },
                e.note
            )?;
        }
        if let Some(v) = &c.verdict {
            let fixed = v
                .fixed_in
                .as_deref()
                .map(|f| format!(", fixed in {f}"))
                .unwrap_or_default();
            writeln!(
                out,
                "   kernel {}: {}{fixed} ({})",
                v.kernel, v.status, v.reason
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An index error as one sentence: the search engine's own errors (tantivy's) are not shown raw
/// but said as what they mean for the user, with what to do.
fn index_error(home: &std::path::Path, e: kmortem_fixes::IndexError) -> anyhow::Error {
    match e {
        kmortem_fixes::IndexError::Tantivy(t) => {
            let detail = t.to_string();
            let detail = detail.lines().next().unwrap_or("").trim();
            let detail: String = detail.chars().take(120).collect();
            anyhow::anyhow!(
                "the fix index under {} cannot be read by the search engine ({detail}): remove {} and re-run `kmortem fixes import PATH`",
                home.display(),
                home.join("fixes").display()
            )
        }
        e => anyhow::anyhow!("{e}"),
    }
}
