//! `kmortem sys`: a vmcore's system summary with no vmlinux (VMCOREINFO only).

use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// Print a vmcore's summary like crash's `sys`: release, version, CPUs, memory, uptime, the
/// panic message and the crash time. Needs no vmlinux; with -s it also counts tasks.
#[derive(clap::Args)]
pub struct Args {
    /// The dump (ELF, kdump-compressed or flattened).
    pub vmcore: PathBuf,
    /// Optional vmlinux.
    #[arg(short = 's', long = "vmlinux", value_name = "VMLINUX")]
    pub vmlinux: Option<PathBuf>,
    /// Print one JSON object (docs/json/core.md, `sys`).
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let mut s = super::core::open(&a.vmcore, a.vmlinux.as_deref())?;
    super::core::run_commands(&mut s, &["sys".to_string()], a.json)
}
