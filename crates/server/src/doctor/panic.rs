//! The panic sysctls as one combination, and the lockup watchdogs.
//!
//! The combination is what the k8s masters of the fleet stories had: `hung_task_panic=1` and
//! `softlockup_panic=1` turn every hung task and soft lockup into a panic, `panic=70` turns
//! every panic into a reboot 70 s later, and with no crash kernel loaded, no pstore backend and
//! no netconsole, nothing records any of it: the machines rebooted every day and nobody knew
//! why. Each setting is reasonable alone; together, without a capture, they are a `fail`.

use super::{kdump, netconsole, pstore, Check, Ctx, Status};

/// The sysctls that turn an event into a panic: (file under /proc/sys/kernel, what it turns).
pub const PANIC_ON: [(&str, &str); 7] = [
    ("panic_on_oops", "every oops"),
    ("hung_task_panic", "hung tasks"),
    ("softlockup_panic", "soft lockups"),
    ("hardlockup_panic", "hard lockups"),
    ("panic_on_warn", "every WARNING"),
    ("unknown_nmi_panic", "unknown NMIs"),
    ("panic_on_rcu_stall", "RCU stalls"),
];

/// What would record a panic on this host now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capture {
    /// A crash kernel is loaded: the dump (memory and log).
    pub kdump: bool,
    /// The registered pstore backend (`ramoops`, `efi_pstore`): the log's tail.
    pub pstore: Option<String>,
    /// Active netconsole targets (`eth0 -> 10.0.0.9:6666`): the log, as it is printed.
    pub netconsole: Vec<String>,
}

impl Capture {
    pub fn read(ctx: &mut Ctx) -> Capture {
        Capture {
            kdump: kdump::loaded(ctx).unwrap_or(false),
            pstore: pstore::backend(ctx).ok().flatten(),
            netconsole: netconsole::active(ctx),
        }
    }

    pub fn any(&self) -> bool {
        self.kdump || self.pstore.is_some() || !self.netconsole.is_empty()
    }

    /// "the crash kernel saves a dump, pstore (ramoops) keeps the log"
    pub fn words(&self) -> String {
        let mut w = Vec::new();
        if self.kdump {
            w.push("the crash kernel saves a dump".to_string());
        }
        if let Some(b) = &self.pstore {
            w.push(format!("pstore ({b}) keeps the log"));
        }
        if !self.netconsole.is_empty() {
            w.push(format!(
                "netconsole sends the log ({})",
                self.netconsole.join(", ")
            ));
        }
        if w.is_empty() {
            "nothing records it: no crash kernel loaded, no pstore backend, no netconsole".into()
        } else {
            w.join(", ")
        }
    }
}

fn list(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [a] => a.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

pub fn sysctls(ctx: &mut Ctx) -> Check {
    const NAME: &str = "panic.sysctls";
    let panic = match ctx.read_i64("/proc/sys/kernel/panic") {
        Ok(v) => v,
        Err(e) => {
            return ctx.check(
                NAME,
                Status::Warn,
                format!("cannot read kernel.panic: {e}"),
                Some("run kmortem doctor where /proc is mounted".into()),
            )
        }
    };
    let mut set = Vec::new();
    let mut turned = Vec::new();
    let mut unreadable = Vec::new();
    for (name, what) in PANIC_ON {
        match ctx.read_i64_opt(&format!("/proc/sys/kernel/{name}")) {
            Ok(Some(v)) if v != 0 => {
                set.push(format!("{name}={v}"));
                turned.push(what.to_string());
            }
            Ok(_) => {}
            Err(e) => unreadable.push(format!("{name} ({e})")),
        }
    }
    let cap = Capture::read(ctx);
    let after = match panic {
        0 => "panic=0 leaves the machine hung after a panic until someone resets it".to_string(),
        n if n < 0 => format!("panic={n} reboots at once after a panic"),
        n => format!("panic={n} reboots {n} s after a panic"),
    };
    let mut note = String::new();
    if !unreadable.is_empty() {
        note = format!(" (unreadable: {})", unreadable.join(", "));
    }
    let sysctl_off = if set.is_empty() {
        String::new()
    } else {
        let zeros: Vec<String> = set
            .iter()
            .map(|s| format!("kernel.{}=0", s.split('=').next().unwrap_or("")))
            .collect();
        format!(
            "\nuntil then, so that lockups are reported instead of rebooting silently: sysctl \
             -w {} (and remove them from /etc/sysctl.conf, /etc/sysctl.d/*.conf and the kernel \
             command line)",
            zeros.join(" ")
        )
    };
    if turned.is_empty() {
        if cap.any() {
            return ctx.check(
                NAME,
                Status::Ok,
                format!(
                    "no sysctl turns oopses or lockups into panics; {after}; at a panic {}{note}",
                    cap.words()
                ),
                None,
            );
        }
        return ctx.check(
            NAME,
            Status::Warn,
            format!(
                "no sysctl turns oopses or lockups into panics, but a real panic (an oops in an \
                 interrupt or in the idle task, a BUG in the scheduler) would leave nothing: \
                 {after}, and {}{note}",
                cap.words()
            ),
            Some(
                "load a crash kernel (see kdump.loaded), or at least record the log: pstore \
                 (see pstore) or netconsole (see netconsole)"
                    .into(),
            ),
        );
    }
    let head = if set.len() == 1 {
        format!("{} turns {} into a panic", set[0], turned[0])
    } else {
        format!("{} turn {} into panics", list(&set), list(&turned))
    };
    if !cap.any() && panic != 0 {
        return ctx.check(
            NAME,
            Status::Fail,
            format!(
                "{head}, {after}, and {}: the machine reboots and no message or dump \
                 survives{note}",
                cap.words()
            ),
            Some(format!(
                "load a crash kernel (see kdump.reserved, kdump.loaded) so that each panic \
                 leaves a dump, or at least record the log: pstore (ramoops, efi_pstore) or \
                 netconsole to `kmortem serve --netconsole`{sysctl_off}"
            )),
        );
    }
    if !cap.any() {
        return ctx.check(
            NAME,
            Status::Warn,
            format!(
                "{head}, {after}, and {}: only the console screen shows what happened{note}",
                cap.words()
            ),
            Some(format!(
                "load a crash kernel (see kdump.loaded), or record the log: pstore or \
                 netconsole{sysctl_off}"
            )),
        );
    }
    let dump = if cap.kdump {
        ""
    } else {
        " (the log only: no crash kernel, so no memory dump)"
    };
    ctx.check(
        NAME,
        Status::Ok,
        format!("{head}; {after}; at a panic {}{dump}{note}", cap.words()),
        None,
    )
}

pub fn watchdog(ctx: &mut Ctx) -> Check {
    const NAME: &str = "watchdog";
    let thresh =
        match ctx.read_i64_opt("/proc/sys/kernel/watchdog_thresh") {
            Ok(Some(v)) => v,
            Ok(None) => return ctx.check(
                NAME,
                Status::Warn,
                "this kernel has no lockup detector (no kernel.watchdog_thresh): a CPU stuck in \
                 the kernel is never reported",
                Some("use a kernel built with CONFIG_SOFTLOCKUP_DETECTOR".into()),
            ),
            Err(e) => {
                return ctx.check(
                    NAME,
                    Status::Warn,
                    format!("cannot read kernel.watchdog_thresh: {e}"),
                    None,
                )
            }
        };
    let on = |ctx: &mut Ctx, f: &str| ctx.read_i64_opt(f).ok().flatten();
    let watchdog = on(ctx, "/proc/sys/kernel/watchdog");
    let soft = on(ctx, "/proc/sys/kernel/soft_watchdog");
    let nmi = on(ctx, "/proc/sys/kernel/nmi_watchdog");
    let hung = on(ctx, "/proc/sys/kernel/hung_task_timeout_secs");
    let mut status = Status::Ok;
    let mut parts: Vec<String> = Vec::new();
    let mut fixes: Vec<String> = Vec::new();
    if thresh <= 0 || watchdog == Some(0) || soft == Some(0) {
        status = Status::Warn;
        parts.push(format!(
            "the soft-lockup detector is off (watchdog_thresh={thresh}{}{}): a CPU stuck in \
             the kernel is never reported",
            watchdog.map_or(String::new(), |w| format!(", watchdog={w}")),
            soft.map_or(String::new(), |w| format!(", soft_watchdog={w}")),
        ));
        fixes.push(
            "sysctl -w kernel.watchdog=1 kernel.soft_watchdog=1 kernel.watchdog_thresh=10".into(),
        );
    } else {
        // Folklore: a soft lockup is reported after 2 x watchdog_thresh (kernel/watchdog.c,
        // get_softlockup_thresh(), since 3.x), checked by an hrtimer every 2/5 of that: with
        // the default 10 the report lands between 20 and 24 s ("stuck for 22s!" in the fleet
        // story). A hard lockup (NMI watchdog) after watchdog_thresh itself. Pinned by
        // doctor::tests::watchdog_thresh_implies_twice_for_soft_lockups.
        parts.push(format!(
            "soft lockups are reported after {} s (2 x watchdog_thresh={thresh}) of a CPU not \
             scheduling",
            2 * thresh
        ));
        match nmi {
            Some(0) => parts.push(
                "hard lockups (a CPU stuck with interrupts off) are not detected: \
                 nmi_watchdog=0 (usual in VMs without a virtual PMU)"
                    .into(),
            ),
            Some(_) => parts.push(format!("hard lockups after about {thresh} s")),
            None => {}
        }
    }
    match hung {
        Some(0) => {
            status = Status::Warn;
            parts.push("hung tasks are never reported (hung_task_timeout_secs=0)".into());
            fixes.push("sysctl -w kernel.hung_task_timeout_secs=120".into());
        }
        Some(t) => parts.push(format!("tasks stuck in D state after {t} s")),
        None => {}
    }
    ctx.check(
        NAME,
        status,
        parts.join("; "),
        (!fixes.is_empty()).then(|| fixes.join("\n")),
    )
}
