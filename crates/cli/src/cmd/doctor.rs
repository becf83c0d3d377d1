//! `kmortem doctor`: can this host's crashes be seen? (a thin shell over
//! kmortem_server::doctor).

use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// Check every reason a kernel crash on this host would go unseen, and say how to fix each.
///
/// Each check gets a verdict: FAIL when something configured is broken or the settings
/// together guarantee that a crash leaves nothing (e.g. hung_task_panic=1 softlockup_panic=1
/// panic=70 with no crash kernel, no pstore and no netconsole: lockups become silent reboots),
/// WARN when a way of capturing a crash is missing or weak, ok otherwise. What each check read
/// is shown for WARN and FAIL (every check with --verbose, and always in --json).
///
/// The checks:
///   kdump.reserved   crash kernel memory (crashkernel=, /sys/kernel/kexec_crash_size)
///   kdump.loaded     a crash kernel loaded (/sys/kernel/kexec_crash_loaded)
///   kdump.service    kdump-tools.service / kdump.service installed and enabled
///   kdump.config     dump level (makedumpfile -d) and free space in the dump directory
///   panic.sysctls    kernel.panic, panic_on_oops, hung_task_panic, softlockup_panic,
///                    hardlockup_panic, panic_on_warn, unknown_nmi_panic, together
///   watchdog         watchdog_thresh and the soft-lockup time it implies (2x)
///   netconsole       a target configured (configfs, netconsole=), running, reachable
///   pstore           a backend (ramoops, efi_pstore), /sys/fs/pstore mounted, systemd-pstore
///   console          console=, /proc/consoles, a KMS framebuffer without nomodeset
///   printk           console_loglevel (quiet), log buffer size
///   debuginfo        a vmlinux with the running kernel's build-id, for kmortem decode
///   agent.server     the kmortem agent's server (from kmortem-agent.service) answers
///   agent.spool      items waiting in, or refused from, the agent's spool
///
/// Exit code: 1 if any check is FAIL, else 0 (2 for a usage error).
///
/// Examples:
///   sudo kmortem doctor
///   sudo kmortem doctor --json | jq '.checks[] | select(.status != "ok")'
///   kmortem doctor --root /srv/images/node-1 --offline   # a mounted image of a host
///
/// The JSON is documented in docs/json/doctor.md.
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Print the report as JSON ({"host", "kernel_release", "boot_id", "checked_at_ms",
    /// "checks": [{"name", "status", "detail", "fix", "read"}], "summary"}).
    #[arg(long)]
    pub json: bool,
    /// Show what every check read, not only the WARN and FAIL ones.
    #[arg(long, short)]
    pub verbose: bool,
    /// Read /proc, /sys, /etc, ... under this directory instead of / (a host image, tests).
    #[arg(long, default_value = "/", value_name = "DIR")]
    pub root: PathBuf,
    /// The agent's server [default: --server of kmortem-agent.service's ExecStart].
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The agent's token file [default: the unit's --token-file, else /etc/kmortem/token].
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The agent's state directory [default: the unit's --state-dir, else
    /// /var/lib/kmortem-agent].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Do not contact the agent's server (no network at all).
    #[arg(long)]
    pub offline: bool,
    /// Seconds to wait for the agent's server.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub timeout: u64,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let opts = kmortem_server::doctor::Options {
        root: args.root,
        server: args.server,
        token_file: args.token_file,
        state_dir: args.state_dir,
        network: !args.offline,
        timeout: std::time::Duration::from_secs(args.timeout.clamp(1, 300)),
    };
    let report = kmortem_server::doctor::run(&opts);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text(args.verbose));
    }
    Ok(if report.worst() == kmortem_server::doctor::Status::Fail {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
