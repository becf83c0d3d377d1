//! pstore: a backend registered (`ramoops`, `efi_pstore`, ...) that keeps the log's tail
//! across the reboot, `/sys/fs/pstore` mounted so that it can be read after it, and something
//! that empties it (`systemd-pstore`, the kmortem agent).

use super::{cmdline, has_param, kdump, unit, Check, Ctx, Status};

/// The registered backend. Folklore: `/sys/module/pstore/parameters/backend` is both the
/// requested backend and, once one registers, its name (fs/pstore/platform.c sets the
/// parameter in pstore_register() "so it is visible through /sys/module/pstore/parameters/
/// backend"); with none it reads `(null)`. Seen `(null)` on a host without a backend and
/// `ramoops` in the lab VM (crates/cli/tests/doctor_vm.rs); pinned by
/// doctor::tests::pstore_null_backend_is_none.
pub fn backend(ctx: &mut Ctx) -> Result<Option<String>, String> {
    match ctx.read_opt("/sys/module/pstore/parameters/backend")? {
        None => Ok(None),
        Some(s) => {
            let s = s.trim();
            Ok((!s.is_empty() && s != "(null)").then(|| s.to_string()))
        }
    }
}

/// Whether `/sys/fs/pstore` is mounted (a `pstore` line in `/proc/mounts`).
pub fn mounted(ctx: &mut Ctx) -> Result<bool, String> {
    let t = ctx.read("/proc/mounts")?;
    Ok(t.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 3 && f[2] == "pstore"
    }))
}

pub fn check(ctx: &mut Ctx) -> Check {
    const NAME: &str = "pstore";
    let b = match backend(ctx) {
        Ok(b) => b,
        Err(e) => {
            return ctx.check(
                NAME,
                Status::Warn,
                format!("cannot tell whether a pstore backend is registered: {e}"),
                Some("run kmortem doctor as root".into()),
            )
        }
    };
    let efi = ctx.exists("/sys/firmware/efi");
    let Some(b) = b else {
        let fix = if efi {
            "this machine boots with EFI: modprobe efi_pstore, and add efi_pstore to \
             /etc/modules-load.d/pstore.conf (check efi_pstore.pstore_disable=0)"
        } else {
            "ramoops in RAM that survives a warm reset: reserve it with memmap=1M$0x6000000 (an \
             address the firmware does not clear; a device-tree or ACPI ramoops region where \
             the platform has one), then modprobe ramoops mem_address=0x6000000 \
             mem_size=0x100000 record_size=0x10000 (or ramoops.* on the command line); a cold \
             power cycle loses it"
        };
        return ctx.check(
            NAME,
            Status::Warn,
            "no pstore backend is registered: the last log lines before a panic are not kept \
             across the reboot",
            Some(fix.into()),
        );
    };
    let mut status = Status::Ok;
    let mut parts = vec![format!("{b} is the pstore backend")];
    let mut fixes: Vec<String> = Vec::new();
    if b == "ramoops" {
        let rs = ctx.read_i64_opt("/sys/module/ramoops/parameters/record_size");
        match rs {
            Ok(Some(0)) => {
                status = Status::Fail;
                parts.push("ramoops has record_size=0: it keeps no oops or panic log".into());
                fixes.push("reload ramoops with record_size=0x10000 (64 KiB per record)".into());
            }
            Ok(Some(n)) => parts.push(format!("{} KiB per record", n / 1024)),
            _ => {}
        }
    }
    match mounted(ctx) {
        Ok(true) => {
            let n = ctx.list("/sys/fs/pstore").map(|v| v.len()).unwrap_or(0);
            parts.push(format!("/sys/fs/pstore is mounted ({n} record(s) in it)"));
            let sp = unit(ctx, "systemd-pstore.service");
            if sp.enabled_by.is_some() && !sp.masked {
                parts.push("systemd-pstore moves them to /var/lib/systemd/pstore".into());
            } else if n > 0 && b.starts_with("efi") {
                // EFI variable storage is small; a full one takes no new record.
                status = status.max(Status::Warn);
                parts.push(
                    "the records stay in EFI variables, whose storage is small: once it is \
                     full, no new crash is recorded"
                        .into(),
                );
                fixes.push(
                    "systemctl enable systemd-pstore (it archives and removes them), or remove \
                     them once shipped"
                        .into(),
                );
            }
        }
        Ok(false) => {
            status = status.max(Status::Warn);
            parts.push(
                "/sys/fs/pstore is not mounted: the records are kept, but nothing reads them \
                 after the reboot"
                    .into(),
            );
            fixes.push("mount -t pstore pstore /sys/fs/pstore (systemd mounts it at boot)".into());
        }
        Err(e) => {
            status = status.max(Status::Warn);
            parts.push(format!(
                "cannot tell whether /sys/fs/pstore is mounted: {e}"
            ));
        }
    }
    // Folklore: with a crash kernel loaded, panic() kexecs into it before kmsg_dump(PANIC)
    // (kernel/panic.c) unless crash_kexec_post_notifiers is set: pstore keeps the oops that led
    // to the panic, not the panic itself. Harmless (the dump holds it), but it surprises.
    let loaded = kdump::loaded(ctx).unwrap_or(false);
    if loaded
        && !cmdline(ctx)
            .map(|p| has_param(&p, "crash_kexec_post_notifiers"))
            .unwrap_or(false)
    {
        parts.push(
            "a crash kernel is loaded, so pstore records an oops but not the panic itself \
             (crash_kexec_post_notifiers is not set); the dump has it"
                .into(),
        );
    }
    ctx.check(
        NAME,
        status,
        parts.join("; "),
        (!fixes.is_empty()).then(|| fixes.join("\n")),
    )
}
