//! `kmortem oops`: find every crash report in logs.

use anyhow::{Context as _, Result};
use std::io::{BufRead, Read, Write};
use std::process::ExitCode;

/// Find every kernel crash report in logs (console, dmesg, syslog, journal, /dev/kmsg, netconsole)
/// and print each with its syzkaller-style title, trace and registers.
#[derive(clap::Args)]
pub struct Args {
    /// Log files to read; `-` or nothing reads standard input.
    pub files: Vec<std::path::PathBuf>,
    /// Print one JSON array of reports (schema: docs/json/oops.md).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let mut reports = Vec::new();
    let files = if args.files.is_empty() {
        vec!["-".into()]
    } else {
        args.files
    };
    for f in &files {
        let mut scanner = kmortem_oops::Scanner::new();
        let reader: Box<dyn Read> = if f.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(
                std::fs::File::open(f).with_context(|| format!("cannot read {}", f.display()))?,
            )
        };
        let mut reader = std::io::BufReader::with_capacity(1 << 20, reader);
        let mut line = Vec::with_capacity(256);
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .with_context(|| format!("cannot read {}", f.display()))?;
            if n == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            reports.extend(scanner.push_line(&line));
        }
        reports.extend(scanner.finish());
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &reports)?;
        writeln!(out)?;
    } else {
        for r in &reports {
            writeln!(out, "{}", r.title)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
