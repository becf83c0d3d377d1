//! The console and printk: where a panic is printed (`console=`, `/proc/consoles`), whether a
//! framebuffer console can show it (`nomodeset`), and what printk lets through
//! (`console_loglevel`, `quiet`) and keeps (`log_buf_len`).

use super::{cmdline, has_param, human, param_values, parse_size, Check, Ctx, Status};

fn serial(name: &str) -> bool {
    [
        "ttyS", "ttyAMA", "hvc", "ttysclp", "ttyPS", "ttymxc", "ttyMSM", "ttyUSB", "xvc",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

pub fn console(ctx: &mut Ctx) -> Check {
    const NAME: &str = "console";
    let params = cmdline(ctx).unwrap_or_default();
    let wanted = param_values(&params, "console");
    let consoles: Vec<String> = match ctx.read("/proc/consoles") {
        Ok(t) => t
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(String::from)
            .collect(),
        Err(e) => {
            return ctx.check(
                NAME,
                Status::Warn,
                format!("cannot read /proc/consoles: {e}"),
                None,
            )
        }
    };
    let fbs: Vec<String> = ctx
        .read_opt("/proc/fb")
        .ok()
        .flatten()
        .map(|t| {
            t.lines()
                .filter_map(|l| l.split_once(' ').map(|(_, n)| n.trim().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let nomodeset = has_param(&params, "nomodeset");
    let mut status = Status::Ok;
    let mut parts: Vec<String> = Vec::new();
    let mut fixes: Vec<String> = Vec::new();
    let on = if wanted.is_empty() {
        "no console= on the command line".to_string()
    } else {
        format!("console={}", wanted.join(" console="))
    };
    let real: Vec<&String> = consoles
        .iter()
        .filter(|c| !c.starts_with("ttynull"))
        .collect();
    if real.is_empty() {
        status = Status::Warn;
        parts.push(format!(
            "no console is registered ({on}): a panic is printed nowhere"
        ));
        fixes.push("console=ttyS0,115200 on the kernel command line (and the BMC's or the cloud's serial log)".into());
    } else {
        parts.push(format!(
            "consoles: {} ({on})",
            real.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let has_serial = real.iter().any(|c| serial(c));
        let has_net = real.iter().any(|c| c.starts_with("netcon"));
        if !has_serial && !has_net {
            status = Status::Warn;
            parts.push(
                "no serial console and no netconsole: a panic is shown only on the screen, and \
                 only until the reboot"
                    .into(),
            );
            fixes.push(
                "console=tty0 console=ttyS0,115200 on the kernel command line (the last one is \
                 /dev/console), read through the BMC's serial-over-LAN or the cloud's serial log"
                    .into(),
            );
        }
    }
    // Folklore: a framebuffer console on a KMS (DRM) driver (mgag200, ast, bochs, virtio-gpu,
    // simpledrm: /proc/fb names them `<driver>drmfb`) updates the screen from a worker that no
    // longer runs once the kernel panics, so the end of the trace never reaches the screen or
    // the BMC's remote console; `nomodeset` keeps the firmware framebuffer, written directly.
    // The fleet story's "incomplete crash dump in the console"; drm_panic (6.10+) fixes it only
    // for the drivers that implement it. Pinned by doctor::tests::drm_fbcon_without_nomodeset.
    let vt = real.iter().any(|c| c.starts_with("tty") && !serial(c));
    if let Some(drm) = fbs.iter().find(|f| f.ends_with("drmfb")) {
        if vt && !nomodeset {
            status = status.max(Status::Warn);
            parts.push(format!(
                "the framebuffer console runs on the KMS driver {drm} without nomodeset: the \
                 last lines of a panic may never reach the screen or the BMC console"
            ));
            fixes.push(
                "add nomodeset to GRUB_CMDLINE_LINUX (/etc/default/grub), update-grub, reboot \
                 (or rely on a serial console or netconsole)"
                    .into(),
            );
        }
    }
    if nomodeset {
        parts.push("nomodeset is set".into());
    }
    ctx.check(
        NAME,
        status,
        parts.join("; "),
        (!fixes.is_empty()).then(|| fixes.join("\n")),
    )
}

/// `/sys/devices/system/cpu/{online,possible}`: `0-3,8-11` -> 8.
pub fn cpu_count(list: &str) -> usize {
    list.trim()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|r| match r.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 0,
            },
            None => usize::from(r.parse::<usize>().is_ok()),
        })
        .sum()
}

/// The printk ring's size: `log_buf_len=` on the command line, else the kernel config's
/// `CONFIG_LOG_BUF_SHIFT`, grown for many CPUs as kernel/printk/printk.c's log_buf_add_cpu()
/// does (`CONFIG_LOG_CPU_MAX_BUF_SHIFT` per possible CPU beyond the first, when that is more than
/// half the static buffer; rounded up to a power of two). `(bytes, how it was found)`.
pub fn log_buf(ctx: &mut Ctx, release: Option<&str>) -> Option<(u64, String)> {
    let params = cmdline(ctx).unwrap_or_default();
    if let Some(v) = param_values(&params, "log_buf_len").last() {
        if let Some(n) = parse_size(v) {
            return Some((n.next_power_of_two(), format!("log_buf_len={v}")));
        }
    }
    let rel = release?;
    let cfg = ctx
        .read_opt(&format!("/boot/config-{rel}"))
        .ok()
        .flatten()?;
    let get = |k: &str| {
        cfg.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .and_then(|v| v.trim().parse::<u32>().ok())
    };
    let shift = get("CONFIG_LOG_BUF_SHIFT")?.min(40);
    let mut len = 1u64 << shift;
    let mut how = format!("CONFIG_LOG_BUF_SHIFT={shift}");
    if let Some(cpu_shift) = get("CONFIG_LOG_CPU_MAX_BUF_SHIFT").map(|s| s.min(30)) {
        let possible = ctx
            .read("/sys/devices/system/cpu/possible")
            .map(|s| cpu_count(&s))
            .unwrap_or(1)
            .max(1) as u64;
        let extra = (possible - 1) * (1u64 << cpu_shift);
        if extra > len / 2 {
            len = (extra + len).next_power_of_two();
            how.push_str(&format!(
                " grown for {possible} possible CPUs (CONFIG_LOG_CPU_MAX_BUF_SHIFT={cpu_shift})"
            ));
        }
    }
    Some((len, how))
}

pub fn printk(ctx: &mut Ctx) -> Check {
    const NAME: &str = "printk";
    let release = ctx
        .read("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string());
    let levels = match ctx.read("/proc/sys/kernel/printk") {
        Ok(t) => t
            .split_whitespace()
            .filter_map(|w| w.parse::<i64>().ok())
            .collect::<Vec<_>>(),
        Err(e) => {
            return ctx.check(
                NAME,
                Status::Warn,
                format!("cannot read kernel.printk: {e}"),
                None,
            )
        }
    };
    let Some(&level) = levels.first() else {
        return ctx.check(
            NAME,
            Status::Warn,
            "kernel.printk holds no console log level",
            None,
        );
    };
    let params = cmdline(ctx).unwrap_or_default();
    let flag = |ctx: &mut Ctx, p: &str| {
        ctx.read_opt(&format!("/sys/module/printk/parameters/{p}"))
            .ok()
            .flatten()
            .is_some_and(|v| v.trim() == "Y")
    };
    let ignore = has_param(&params, "ignore_loglevel") || flag(ctx, "ignore_loglevel");
    let no_verbose = flag(ctx, "console_no_auto_verbose");
    let mut status = Status::Ok;
    let mut parts: Vec<String> = Vec::new();
    let mut fixes: Vec<String> = Vec::new();
    let quiet = if has_param(&params, "quiet") {
        ", quiet on the command line"
    } else {
        ""
    };
    // Folklore: a console prints a message only when its level is below console_loglevel
    // (ignore_loglevel aside). WARN() prints at KERN_WARNING (4), and a soft lockup's registers
    // and trace at the default level (4): with `quiet` (console_loglevel 4) neither reaches
    // the serial console or netconsole; an oops does, because oops_begin() raises the level
    // (console_verbose()) unless console_no_auto_verbose. /dev/kmsg (the agent) gets every
    // level. Pinned by doctor::tests::quiet_console_hides_warnings.
    if ignore {
        parts.push("ignore_loglevel: consoles print every message".into());
    } else if level <= 4 {
        status = Status::Warn;
        parts.push(format!(
            "console_loglevel={level}{quiet}: WARNING and soft-lockup traces (levels 4 and \
             the default 4) do not reach the console or netconsole; oopses and panics do"
        ));
        fixes.push(
            "sysctl -w kernel.printk=\"5 4 1 7\" (at boot: kernel.printk = 5 4 1 7 in \
             /etc/sysctl.d/, or loglevel=5 instead of quiet on the command line)"
                .into(),
        );
    } else {
        parts.push(format!(
            "console_loglevel={level}: warnings reach the consoles"
        ));
    }
    if no_verbose {
        status = status.max(Status::Warn);
        parts.push(
            "console_no_auto_verbose=Y: an oops does not raise the console level, so its trace \
             is filtered like any message"
                .into(),
        );
        fixes.push("echo N > /sys/module/printk/parameters/console_no_auto_verbose".into());
    }
    let online = ctx
        .read("/sys/devices/system/cpu/online")
        .map(|s| cpu_count(&s))
        .unwrap_or(1)
        .max(1) as u64;
    match log_buf(ctx, release.as_deref()) {
        Some((len, how)) => {
            // An all-CPU backtrace (a soft lockup with softlockup_all_cpu_backtrace, an RCU
            // stall, sysrq-l) is a few KiB per CPU; a smaller ring loses the start of the report.
            let need = online * 4096;
            if len < need {
                status = status.max(Status::Warn);
                parts.push(format!(
                    "the log buffer is {} ({how}), less than an all-CPU backtrace of {online} \
                     CPUs (~{}): the start of such a report is overwritten before a dump or \
                     pstore keeps it",
                    human(len),
                    human(need)
                ));
                fixes.push(format!(
                    "log_buf_len={} on the kernel command line",
                    human(need.next_power_of_two())
                        .replace(" MiB", "M")
                        .replace(" KiB", "K")
                ));
            } else {
                parts.push(format!("log buffer {} ({how})", human(len)));
            }
        }
        None => parts.push("log buffer size unknown (no log_buf_len=, no /boot/config-*)".into()),
    }
    ctx.check(
        NAME,
        status,
        parts.join("; "),
        (!fixes.is_empty()).then(|| fixes.join("\n")),
    )
}
