//! kdump: a crash kernel reserved (`crashkernel=`, `/sys/kernel/kexec_crash_size`) and loaded
//! (`/sys/kernel/kexec_crash_loaded`), the service that loads it at every boot (`kdump-tools` on
//! Debian and Ubuntu, `kdump` on RHEL and SUSE), and its configuration: the dump level, and
//! whether the dump directory has room for a dump of this machine.

use super::{cmdline, human, meminfo, param_values, unit, Check, Ctx, Status};
use std::path::Path;

const DEBIAN_SETUP: &str = "Debian/Ubuntu: apt install kdump-tools (it adds crashkernel= to GRUB \
     in /etc/default/grub.d/kdump-tools.cfg), update-grub, reboot; then `kdump-config show` says \
     \"ready to kdump\".\nRHEL/Fedora: dnf install kexec-tools; kdumpctl reset-crashkernel; \
     systemctl enable --now kdump; reboot.";

/// Whether a crash kernel is loaded now (`/sys/kernel/kexec_crash_loaded` is `1`).
pub fn loaded(ctx: &mut Ctx) -> Result<bool, String> {
    ctx.read_i64("/sys/kernel/kexec_crash_loaded")
        .map(|v| v == 1)
}

/// Bytes reserved for the crash kernel (`/sys/kernel/kexec_crash_size`); `Ok(None)` when the
/// kernel has no kexec support at all.
pub fn reserved(ctx: &mut Ctx) -> Result<Option<u64>, String> {
    match ctx.read_i64("/sys/kernel/kexec_crash_size") {
        Ok(v) => Ok(Some(v.max(0) as u64)),
        Err(e) if e == "absent" => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn checks(ctx: &mut Ctx) -> Vec<Check> {
    let reserved_now = {
        let mut probe = Ctx::new(ctx.opts);
        reserved(&mut probe).ok().flatten().unwrap_or(0)
    };
    vec![
        check_reserved(ctx),
        check_loaded(ctx),
        check_service(ctx, reserved_now),
        check_config(ctx, reserved_now),
    ]
}

fn check_reserved(ctx: &mut Ctx) -> Check {
    const NAME: &str = "kdump.reserved";
    let params = cmdline(ctx).unwrap_or_default();
    let ck: Vec<&str> = param_values(&params, "crashkernel");
    let on_cmdline = if ck.is_empty() {
        "no crashkernel= on the command line".to_string()
    } else {
        format!("crashkernel={}", ck.join(" crashkernel="))
    };
    match reserved(ctx) {
        Err(e) => ctx.check(
            NAME,
            Status::Warn,
            format!("cannot tell whether memory is reserved for a crash kernel: {e}"),
            Some("run kmortem doctor as root".into()),
        ),
        Ok(None) => ctx.check(
            NAME,
            Status::Warn,
            "this kernel has no kexec support (no /sys/kernel/kexec_crash_size): it cannot boot a \
             crash kernel, so a panic leaves no dump",
            Some(
                "use a kernel built with CONFIG_KEXEC_CORE and CONFIG_CRASH_DUMP (every \
                  distribution kernel is)"
                    .into(),
            ),
        ),
        Ok(Some(n)) if n > 0 => ctx.check(
            NAME,
            Status::Ok,
            format!("{} reserved for the crash kernel ({on_cmdline})", human(n)),
            None,
        ),
        Ok(Some(_)) if !ck.is_empty() => {
            // Folklore: `crashkernel=auto` is a RHEL/CentOS patch; upstream kernels (and RHEL 9
            // since 5.14) do not parse it and reserve nothing, silently. Hosts moved from a
            // RHEL kernel to an upstream or Debian one keep it on their command line.
            // Pinned by doctor::tests::crashkernel_auto_on_upstream_fails.
            let auto = ck.iter().any(|v| v.trim() == "auto");
            let why = if auto {
                "crashkernel=auto is a RHEL kernel patch; this kernel does not parse it and \
                 reserves nothing"
            } else {
                "the reservation failed at boot (too large for the memory, or no room below \
                 4 GiB: `dmesg | grep -i crashkernel` says why)"
            };
            ctx.check(
                NAME,
                Status::Fail,
                format!("{on_cmdline} is on the command line but nothing is reserved: {why}"),
                Some(
                    "set a size this kernel can place, e.g. crashkernel=256M (or by memory size: \
                     crashkernel=1G-64G:256M,64G-:512M; above 4 GiB: crashkernel=256M,high \
                     crashkernel=72M,low) in GRUB_CMDLINE_LINUX (/etc/default/grub), update-grub, \
                     reboot"
                        .into(),
                ),
            )
        }
        Ok(Some(_)) => ctx.check(
            NAME,
            Status::Warn,
            format!(
                "no memory is reserved for a crash kernel ({on_cmdline}): a panic cannot be \
                 dumped"
            ),
            Some(DEBIAN_SETUP.into()),
        ),
    }
}

fn check_loaded(ctx: &mut Ctx) -> Check {
    const NAME: &str = "kdump.loaded";
    let size = reserved(ctx).ok().flatten().unwrap_or(0);
    match loaded(ctx) {
        Err(e) if e == "absent" => ctx.check(
            NAME,
            Status::Warn,
            "this kernel has no kexec support (no /sys/kernel/kexec_crash_loaded)",
            None,
        ),
        Err(e) => ctx.check(
            NAME,
            Status::Warn,
            format!("cannot tell whether a crash kernel is loaded: {e}"),
            Some("run kmortem doctor as root".into()),
        ),
        Ok(true) => ctx.check(
            NAME,
            Status::Ok,
            "a crash kernel is loaded: a panic boots it, and it saves the dump",
            None,
        ),
        Ok(false) if size > 0 => ctx.check(
            NAME,
            Status::Fail,
            format!(
                "{} is reserved but no crash kernel is loaded: a panic has nothing to boot \
                 into, and no dump is written",
                human(size)
            ),
            Some(
                "Debian/Ubuntu: systemctl restart kdump-tools, then `kdump-config show` (it says \
                 why it could not load); RHEL: kdumpctl restart. By hand: kexec -p \
                 /boot/vmlinuz-$(uname -r) --initrd=/boot/initrd.img-$(uname -r) \
                 --append=\"$(cat /proc/cmdline | sed 's/crashkernel=[^ ]*//') irqpoll \
                 nr_cpus=1 reset_devices\""
                    .into(),
            ),
        ),
        Ok(false) => ctx.check(
            NAME,
            Status::Warn,
            "no crash kernel is loaded (and no memory is reserved for one): a panic leaves no \
             dump",
            Some(DEBIAN_SETUP.into()),
        ),
    }
}

fn check_service(ctx: &mut Ctx, reserved_now: u64) -> Check {
    const NAME: &str = "kdump.service";
    let loaded_now = loaded(ctx).unwrap_or(false);
    let debian = unit(ctx, "kdump-tools.service");
    let rhel = unit(ctx, "kdump.service");
    let (name, u) = if debian.file.is_some() || debian.masked || rhel.file.is_none() {
        ("kdump-tools", debian)
    } else {
        ("kdump", rhel)
    };
    // Debian's /etc/default/kdump-tools can switch the installed service off.
    let use_kdump = ctx
        .read_opt("/etc/default/kdump-tools")
        .ok()
        .flatten()
        .and_then(|t| shell_var(&t, "USE_KDUMP"));
    let off_by_default = use_kdump.as_deref() == Some("0");
    let intended = reserved_now > 0 || loaded_now;
    if u.masked {
        return ctx.check(
            NAME,
            if intended { Status::Fail } else { Status::Warn },
            format!("{name}.service is masked: nothing loads a crash kernel at boot"),
            Some(format!(
                "systemctl unmask {name} && systemctl enable --now {name}"
            )),
        );
    }
    match (&u.file, &u.enabled_by) {
        (Some(f), Some(_)) if !off_by_default => ctx.check(
            NAME,
            Status::Ok,
            format!("{name}.service is installed ({f}) and enabled: it loads the crash kernel at every boot"),
            None,
        ),
        (Some(_), Some(_)) => ctx.check(
            NAME,
            if intended { Status::Fail } else { Status::Warn },
            format!("{name}.service is enabled but USE_KDUMP=0 in /etc/default/kdump-tools: it loads nothing"),
            Some("set USE_KDUMP=1 in /etc/default/kdump-tools; systemctl restart kdump-tools".into()),
        ),
        (Some(f), None) => ctx.check(
            NAME,
            if intended { Status::Fail } else { Status::Warn },
            format!(
                "{name}.service is installed ({f}) but not enabled: after the next reboot no crash \
                 kernel is loaded{}",
                if loaded_now { " (one is loaded now)" } else { "" }
            ),
            Some(format!("systemctl enable --now {name}")),
        ),
        (None, _) if loaded_now => ctx.check(
            NAME,
            Status::Warn,
            "a crash kernel is loaded, but by no service kmortem doctor knows (no kdump-tools or \
             kdump unit): make sure something loads it again after every reboot and kernel update",
            Some("Debian/Ubuntu: apt install kdump-tools; RHEL: dnf install kexec-tools && systemctl enable kdump".into()),
        ),
        (None, _) => ctx.check(
            NAME,
            Status::Warn,
            "no kdump service is installed (kdump-tools.service, kdump.service)",
            Some(DEBIAN_SETUP.into()),
        ),
    }
}

/// The value of `NAME=value` / `NAME="value"` in a shell-style defaults file (the last one
/// wins, as when the shell sources it); comments and `export` are skipped.
pub fn shell_var(text: &str, name: &str) -> Option<String> {
    let mut out = None;
    for l in text.lines() {
        let l = l.trim();
        let l = l.strip_prefix("export ").unwrap_or(l);
        if l.starts_with('#') {
            continue;
        }
        if let Some(v) = l.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            let v = v.split(" #").next().unwrap_or(v).trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            out = Some(v.to_string());
        }
    }
    out
}

/// makedumpfile's dump level from its arguments (`-d 31`, `-d31`, `--dump-level 31`,
/// `--dump-level=31`); `None` when not given (makedumpfile then keeps every page: level 0).
pub fn dump_level(args: &str) -> Option<u32> {
    let words: Vec<&str> = args.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        let v = if *w == "-d" || *w == "--dump-level" {
            words.get(i + 1).copied()
        } else if let Some(v) = w.strip_prefix("--dump-level=") {
            Some(v)
        } else {
            w.strip_prefix("-d").filter(|v| !v.is_empty())
        };
        if let Some(n) = v.and_then(|v| v.parse().ok()) {
            return Some(n);
        }
    }
    None
}

/// What a dump level drops (makedumpfile(8): 1 zero pages, 2 cache, 4 private cache, 8 user
/// pages, 16 free pages).
pub fn level_words(level: u32) -> String {
    let names = [(1, "zero"), (2 | 4, "cache"), (8, "user"), (16, "free")];
    let dropped: Vec<&str> = names
        .iter()
        .filter(|(b, _)| level & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if dropped.is_empty() {
        "every page kept".into()
    } else {
        format!("{} pages dropped", dropped.join(", "))
    }
}

/// Free bytes on the file system holding `p`, as root sees them: the capture kernel writes the
/// dump as root, so `f_bfree` (`f_bavail` leaves out the blocks reserved for root).
pub fn free_bytes(p: &Path) -> Result<u64, String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| "the path holds a NUL byte".to_string())?;
    // SAFETY: statvfs is plain old data; all-zero is a valid value.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `s` a valid, writable statvfs.
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    if r != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    Ok((s.f_bfree as u64).saturating_mul(s.f_frsize as u64))
}

fn check_config(ctx: &mut Ctx, reserved_now: u64) -> Check {
    const NAME: &str = "kdump.config";
    // Debian/Ubuntu first, then RHEL's /etc/kdump.conf.
    let (source, dir, args) = match ctx.read_opt("/etc/default/kdump-tools") {
        Ok(Some(t)) => (
            "/etc/default/kdump-tools",
            shell_var(&t, "KDUMP_COREDIR").unwrap_or_else(|| "/var/crash".into()),
            // Folklore: Debian ships MAKEDUMP_ARGS commented out; kdump-config then uses
            // "-c -d 31" (kdump-tools' kdump-config, MAKEDUMP_ARGS default).
            shell_var(&t, "MAKEDUMP_ARGS").unwrap_or_else(|| "-c -d 31".into()),
        ),
        Err(e) => {
            return ctx.check(
                NAME,
                Status::Warn,
                format!("cannot read /etc/default/kdump-tools: {e}"),
                Some("run kmortem doctor as root".into()),
            )
        }
        Ok(None) => match ctx.read_opt("/etc/kdump.conf") {
            Ok(Some(t)) => {
                let mut dir = "/var/crash".to_string();
                let mut coll = "makedumpfile -l --message-level 7 -d 31".to_string();
                for l in t.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
                    if let Some(v) = l.strip_prefix("path ") {
                        dir = v.trim().to_string();
                    } else if let Some(v) = l.strip_prefix("core_collector ") {
                        coll = v.trim().to_string();
                    }
                }
                ("/etc/kdump.conf", dir, coll)
            }
            Ok(None) => {
                let set_up = reserved_now > 0;
                return ctx.check(
                    NAME,
                    Status::Warn,
                    if set_up {
                        "memory is reserved, but there is no kdump configuration \
                         (/etc/default/kdump-tools, /etc/kdump.conf): the dump level and the \
                         dump directory cannot be checked"
                    } else {
                        "kdump is not set up: no configuration (/etc/default/kdump-tools, \
                         /etc/kdump.conf)"
                    },
                    Some(DEBIAN_SETUP.into()),
                );
            }
            Err(e) => {
                return ctx.check(
                    NAME,
                    Status::Warn,
                    format!("cannot read /etc/kdump.conf: {e}"),
                    Some("run kmortem doctor as root".into()),
                )
            }
        },
    };
    let mut status = Status::Ok;
    let mut parts: Vec<String> = Vec::new();
    let mut fixes: Vec<String> = Vec::new();
    let copies = args.split_whitespace().next() == Some("cp");
    let level = if copies {
        0
    } else {
        dump_level(&args).unwrap_or(0)
    };
    if copies {
        status = Status::Warn;
        parts.push("the dump is a plain copy of /proc/vmcore (every page, uncompressed)".into());
    } else {
        let compressed = args
            .split_whitespace()
            .any(|w| matches!(w, "-c" | "-l" | "-p" | "-z") || w.starts_with("--compress"));
        parts.push(format!(
            "dump level {level} ({}), {} ({source}: {args:?})",
            level_words(level),
            if compressed {
                "compressed"
            } else {
                "uncompressed"
            }
        ));
        if level & 16 == 0 {
            status = Status::Warn;
            parts.push("free pages are kept: every dump is about as large as RAM".into());
        }
    }
    if status == Status::Warn {
        fixes.push(format!(
            "in {source}: {}",
            if source == "/etc/kdump.conf" {
                "core_collector makedumpfile -l --message-level 7 -d 31"
            } else {
                "MAKEDUMP_ARGS=\"-c -d 31\""
            }
        ));
    }
    // Room for one dump: what the dump level keeps of this machine's memory now.
    let mem = ctx
        .read("/proc/meminfo")
        .map(|t| meminfo(&t))
        .unwrap_or_default();
    let kb = |k: &str| mem.iter().find(|(n, _)| n == k).map_or(0, |(_, v)| *v) * 1024;
    let total = kb("MemTotal");
    let mut need = total;
    if level & 16 != 0 {
        need = need.saturating_sub(kb("MemFree"));
    }
    if level & (2 | 4) != 0 {
        need = need.saturating_sub(kb("Cached") + kb("Buffers"));
    }
    if level & 8 != 0 {
        need = need.saturating_sub(kb("AnonPages"));
    }
    let on_fs = ctx.path(&dir);
    let probe = if on_fs.is_dir() {
        on_fs.clone()
    } else {
        on_fs
            .ancestors()
            .find(|a| a.is_dir())
            .map(Path::to_path_buf)
            .unwrap_or(on_fs.clone())
    };
    match free_bytes(&probe) {
        Err(e) => {
            status = status.max(Status::Warn);
            parts.push(format!("cannot tell the free space of {dir}: {e}"));
            ctx.note(&dir, Err(e));
        }
        Ok(free) => {
            ctx.note(&dir, Ok(format!("{} free", human(free))));
            if total == 0 {
                status = status.max(Status::Warn);
                parts.push(format!(
                    "{dir} has {} free; /proc/meminfo gave no MemTotal, so the size of a dump \
                     is unknown",
                    human(free)
                ));
            } else if free < need {
                status = Status::Fail;
                parts.push(format!(
                    "{dir} has {} free, and a dump of this machine needs about {} \
                     (uncompressed): makedumpfile would stop short and leave no usable dump",
                    human(free),
                    human(need)
                ));
                fixes.push(format!(
                    "free space in {dir} (old dumps: ls {dir}), or point KDUMP_COREDIR / path at a larger file system"
                ));
            } else if free < need.saturating_mul(2) {
                status = status.max(Status::Warn);
                parts.push(format!(
                    "{dir} has {} free: room for one dump of about {} (uncompressed), not two",
                    human(free),
                    human(need)
                ));
                fixes.push(format!(
                    "free space in {dir}, or delete dumps once analysed"
                ));
            } else {
                parts.push(format!(
                    "{dir} has {} free for dumps of about {}",
                    human(free),
                    human(need)
                ));
            }
            if !on_fs.is_dir() {
                status = status.max(Status::Warn);
                parts.push(format!("{dir} does not exist"));
                fixes.push(format!("mkdir -p {dir}"));
            }
        }
    }
    ctx.check(
        NAME,
        status,
        parts.join("; "),
        (!fixes.is_empty()).then(|| fixes.join("\n")),
    )
}
