//! `kmortem log`: the kernel log of a vmcore, with no vmlinux (VMCOREINFO only), like
//! `crash --log`.

use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// Print the kernel log (printk ring buffer) of a vmcore. Needs no vmlinux: the layout comes
/// from the dump's VMCOREINFO. The output can be piped to `kmortem oops`.
///
/// Example: kmortem log vmcore | kmortem oops
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The dump (ELF, kdump-compressed or flattened).
    pub vmcore: PathBuf,
    /// Optional vmlinux (only needed when the dump has no VMCOREINFO at all).
    #[arg(short = 's', long = "vmlinux", value_name = "VMLINUX")]
    pub vmlinux: Option<PathBuf>,
    /// Show each record's log level as <N>.
    #[arg(short = 'm')]
    pub level: bool,
    /// Show caller ids ([    T1], [    C0]) like dmesg on a CONFIG_PRINTK_CALLER kernel.
    #[arg(short = 'c', long = "caller")]
    pub caller: bool,
    /// Print a JSON array of records (docs/json/core.md, `log`).
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let mut s = super::core::open(&a.vmcore, a.vmlinux.as_deref())?;
    let mut cmd = String::from("log");
    if a.level {
        cmd.push_str(" -m");
    }
    if a.caller {
        cmd.push_str(" -c");
    }
    super::core::run_commands(&mut s, &[cmd], a.json)
}
