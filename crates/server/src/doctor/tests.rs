//! Doctor on fake trees: each test writes the files a host would have under a temporary root
//! and checks the verdicts (and that odd or missing files never panic).

use super::*;

struct Tree(tempfile::TempDir);

impl Tree {
    fn empty() -> Tree {
        Tree(tempfile::tempdir().unwrap())
    }

    /// A host with ordinary settings: a serial console, default sysctls, no kdump, no
    /// pstore backend, no netconsole, no agent.
    fn host() -> Tree {
        let t = Tree::empty();
        t.file("proc/sys/kernel/hostname", "node-1\n")
            .file("proc/sys/kernel/osrelease", "6.1.0-99-test-amd64\n")
            .file("proc/sys/kernel/random/boot_id", "3f2a0000-0000-0000-0000-000000000001\n")
            .file(
                "proc/cmdline",
                "BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro console=tty0 console=ttyS0,115200\n",
            )
            .file("proc/consoles", "ttyS0                -W- (EC  p a)    4:64\ntty0                 -WU (E     )    4:1\n")
            .file("proc/sys/kernel/printk", "7\t4\t1\t7\n")
            .file("proc/sys/kernel/panic", "0\n")
            .file("proc/sys/kernel/panic_on_oops", "0\n")
            .file("proc/sys/kernel/hung_task_panic", "0\n")
            .file("proc/sys/kernel/softlockup_panic", "0\n")
            .file("proc/sys/kernel/hardlockup_panic", "0\n")
            .file("proc/sys/kernel/panic_on_warn", "0\n")
            .file("proc/sys/kernel/unknown_nmi_panic", "0\n")
            .file("proc/sys/kernel/watchdog_thresh", "10\n")
            .file("proc/sys/kernel/watchdog", "1\n")
            .file("proc/sys/kernel/soft_watchdog", "1\n")
            .file("proc/sys/kernel/nmi_watchdog", "1\n")
            .file("proc/sys/kernel/hung_task_timeout_secs", "120\n")
            .file("sys/kernel/kexec_crash_size", "0\n")
            .file("sys/kernel/kexec_crash_loaded", "0\n")
            .file("sys/module/pstore/parameters/backend", "(null)\n")
            .file("proc/mounts", "sysfs /sys sysfs rw 0 0\nproc /proc proc rw 0 0\n")
            .file(
                "proc/meminfo",
                "MemTotal:        4000000 kB\nMemFree:         2000000 kB\nBuffers:           10000 kB\nCached:           900000 kB\nAnonPages:        500000 kB\n",
            )
            .file("sys/devices/system/cpu/online", "0-3\n")
            .file("sys/devices/system/cpu/possible", "0-3\n")
            .file(
                "proc/net/route",
                "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                 eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
            )
            .file("sys/class/net/eth0/operstate", "up\n")
            .file("boot/config-6.1.0-99-test-amd64", "CONFIG_LOG_BUF_SHIFT=17\nCONFIG_LOG_CPU_MAX_BUF_SHIFT=12\n");
        t
    }

    fn file(&self, p: &str, content: &str) -> &Tree {
        let path = self.0.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        self
    }

    fn bytes(&self, p: &str, content: &[u8]) -> &Tree {
        let path = self.0.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        self
    }

    fn dir(&self, p: &str) -> &Tree {
        std::fs::create_dir_all(self.0.path().join(p)).unwrap();
        self
    }

    fn link(&self, p: &str, target: &str) -> &Tree {
        let path = self.0.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, path).unwrap();
        self
    }

    fn opts(&self) -> Options {
        Options {
            root: self.0.path().to_path_buf(),
            network: false,
            ..Options::default()
        }
    }

    fn run(&self) -> Report {
        run(&self.opts())
    }

    /// kdump the way kdump-tools leaves it: reserved, loaded, enabled, configured.
    fn with_kdump(&self) -> &Tree {
        self.file("sys/kernel/kexec_crash_size", "167772160\n")
            .file("sys/kernel/kexec_crash_loaded", "1\n")
            .file(
                "proc/cmdline",
                "BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro console=ttyS0,115200 crashkernel=160M\n",
            )
            .file("lib/systemd/system/kdump-tools.service", "[Unit]\n")
            .link(
                "etc/systemd/system/multi-user.target.wants/kdump-tools.service",
                "/lib/systemd/system/kdump-tools.service",
            )
            .file(
                "etc/default/kdump-tools",
                "USE_KDUMP=1\n# KDUMP_COREDIR=\"/var/crash\"\n#MAKEDUMP_ARGS=\"-c -d 31\"\n",
            )
            .dir("var/crash")
    }
}

fn status(r: &Report, name: &str) -> Status {
    r.check(name)
        .unwrap_or_else(|| panic!("no check {name}: {r:#?}"))
        .status
}

fn detail<'r>(r: &'r Report, name: &str) -> &'r str {
    &r.check(name).unwrap().detail
}

/// The fleet story's masters: lockups turned into panics, panics into reboots, nothing that
/// records them.
#[test]
fn panic_reboot_without_capture_fails() {
    let t = Tree::host();
    t.file("proc/sys/kernel/panic", "70\n")
        .file("proc/sys/kernel/hung_task_panic", "1\n")
        .file("proc/sys/kernel/softlockup_panic", "1\n");
    let r = t.run();
    assert_eq!(
        status(&r, "panic.sysctls"),
        Status::Fail,
        "{}",
        r.to_text(true)
    );
    let d = detail(&r, "panic.sysctls");
    assert!(
        d.contains("hung_task_panic=1 and softlockup_panic=1"),
        "{d}"
    );
    assert!(d.contains("panic=70 reboots 70 s after a panic"), "{d}");
    assert!(
        d.contains("no crash kernel loaded, no pstore backend, no netconsole"),
        "{d}"
    );
    let fix = r.check("panic.sysctls").unwrap().fix.clone().unwrap();
    assert!(
        fix.contains("kernel.hung_task_panic=0 kernel.softlockup_panic=0"),
        "{fix}"
    );
    let read: Vec<&str> = r
        .check("panic.sysctls")
        .unwrap()
        .read
        .iter()
        .map(|r| r.path.as_str())
        .collect();
    assert!(read.contains(&"/proc/sys/kernel/panic"), "{read:?}");
    assert!(read.contains(&"/sys/kernel/kexec_crash_loaded"), "{read:?}");
    assert_eq!(r.worst(), Status::Fail);
    assert!(r.summary.fail >= 1);
    assert!(r.to_text(false).contains("FAIL  panic.sysctls"));
}

/// The same sysctls with a crash kernel loaded: every lockup leaves a dump. The same with only
/// pstore: the log survives.
#[test]
fn panic_sysctls_with_a_capture_pass() {
    let t = Tree::host();
    t.file("proc/sys/kernel/panic", "70\n")
        .file("proc/sys/kernel/softlockup_panic", "1\n")
        .with_kdump();
    let r = t.run();
    assert_eq!(
        status(&r, "panic.sysctls"),
        Status::Ok,
        "{}",
        r.to_text(true)
    );
    assert!(detail(&r, "panic.sysctls").contains("the crash kernel saves a dump"));
    assert_eq!(status(&r, "kdump.reserved"), Status::Ok);
    assert_eq!(status(&r, "kdump.loaded"), Status::Ok);
    assert_eq!(
        status(&r, "kdump.service"),
        Status::Ok,
        "{}",
        r.to_text(true)
    );
    assert_eq!(
        status(&r, "kdump.config"),
        Status::Ok,
        "{}",
        r.to_text(true)
    );
    assert!(
        detail(&r, "kdump.config").contains("dump level 31"),
        "{}",
        detail(&r, "kdump.config")
    );

    let p = Tree::host();
    p.file("proc/sys/kernel/panic", "-1\n")
        .file("proc/sys/kernel/hung_task_panic", "1\n")
        .file("sys/module/pstore/parameters/backend", "ramoops\n")
        .file("sys/module/ramoops/parameters/record_size", "65536\n")
        .file("proc/mounts", "pstore /sys/fs/pstore pstore rw 0 0\n")
        .dir("sys/fs/pstore");
    let r = p.run();
    assert_eq!(
        status(&r, "panic.sysctls"),
        Status::Ok,
        "{}",
        r.to_text(true)
    );
    let d = detail(&r, "panic.sysctls");
    assert!(
        d.contains("reboots at once") && d.contains("pstore (ramoops)"),
        "{d}"
    );
    assert!(d.contains("no memory dump"), "{d}");
    assert_eq!(status(&r, "pstore"), Status::Ok, "{}", r.to_text(true));
    assert!(detail(&r, "pstore").contains("64 KiB per record"));
}

/// panic=0 hangs instead of rebooting: bad, but the screen keeps the message.
#[test]
fn panic_sysctls_hang_without_capture_warns() {
    let t = Tree::host();
    t.file("proc/sys/kernel/panic_on_oops", "1\n");
    let r = t.run();
    assert_eq!(status(&r, "panic.sysctls"), Status::Warn);
    assert!(detail(&r, "panic.sysctls").contains("hung after a panic"));
}

#[test]
fn crashkernel_auto_on_upstream_fails() {
    let t = Tree::host();
    t.file(
        "proc/cmdline",
        "root=/dev/sda1 crashkernel=auto console=ttyS0\n",
    );
    let r = t.run();
    assert_eq!(status(&r, "kdump.reserved"), Status::Fail);
    assert!(detail(&r, "kdump.reserved").contains("RHEL kernel patch"));
    // A failed reservation of a size: the other reason.
    t.file("proc/cmdline", "root=/dev/sda1 crashkernel=64G\n");
    let r = t.run();
    assert_eq!(status(&r, "kdump.reserved"), Status::Fail);
    assert!(detail(&r, "kdump.reserved").contains("reservation failed"));
    // Nothing asked, nothing reserved: not set up, a warning.
    t.file("proc/cmdline", "root=/dev/sda1\n");
    assert_eq!(status(&t.run(), "kdump.reserved"), Status::Warn);
}

#[test]
fn reserved_but_not_loaded_fails() {
    let t = Tree::host();
    t.with_kdump().file("sys/kernel/kexec_crash_loaded", "0\n");
    let r = t.run();
    assert_eq!(status(&r, "kdump.loaded"), Status::Fail);
    assert!(detail(&r, "kdump.loaded").contains("160 MiB is reserved"));
    // Installed but not enabled, with memory reserved: the next boot loads nothing.
    std::fs::remove_file(
        t.0.path()
            .join("etc/systemd/system/multi-user.target.wants/kdump-tools.service"),
    )
    .unwrap();
    let r = t.run();
    assert_eq!(
        status(&r, "kdump.service"),
        Status::Fail,
        "{}",
        r.to_text(true)
    );
    // USE_KDUMP=0 switches the service off.
    t.link(
        "etc/systemd/system/multi-user.target.wants/kdump-tools.service",
        "/lib/systemd/system/kdump-tools.service",
    )
    .file("etc/default/kdump-tools", "USE_KDUMP=0\n");
    let r = t.run();
    assert_eq!(status(&r, "kdump.service"), Status::Fail);
    assert!(detail(&r, "kdump.service").contains("USE_KDUMP=0"));
}

#[test]
fn kdump_dump_level_and_space() {
    assert_eq!(kdump::dump_level("-c -d 31"), Some(31));
    assert_eq!(kdump::dump_level("-c -d31"), Some(31));
    assert_eq!(kdump::dump_level("--dump-level=17 -l"), Some(17));
    assert_eq!(kdump::dump_level("-l --message-level 7 -d 1"), Some(1));
    assert_eq!(kdump::dump_level("-c"), None);
    assert_eq!(kdump::dump_level("-d x"), None);
    assert_eq!(
        kdump::level_words(31),
        "zero, cache, user, free pages dropped"
    );
    assert_eq!(kdump::level_words(0), "every page kept");
    assert_eq!(
        kdump::shell_var("A=1\n#A=2\nexport A=\"3\" # c\n", "A").as_deref(),
        Some("3")
    );

    let t = Tree::host();
    t.with_kdump().file(
        "etc/default/kdump-tools",
        "USE_KDUMP=1\nMAKEDUMP_ARGS=\"-c -d 1\"\n",
    );
    let r = t.run();
    assert_eq!(status(&r, "kdump.config"), Status::Warn);
    assert!(detail(&r, "kdump.config").contains("free pages are kept"));
    assert!(r
        .check("kdump.config")
        .unwrap()
        .fix
        .as_deref()
        .unwrap()
        .contains("-c -d 31"));

    // A machine far larger than the disk: the dump cannot fit.
    t.file("etc/default/kdump-tools", "USE_KDUMP=1\n").file(
        "proc/meminfo",
        "MemTotal:  99999999999999 kB\nMemFree: 0 kB\nCached: 0 kB\nBuffers: 0 kB\nAnonPages: 0 kB\n",
    );
    let r = t.run();
    assert_eq!(
        status(&r, "kdump.config"),
        Status::Fail,
        "{}",
        r.to_text(true)
    );
    assert!(detail(&r, "kdump.config").contains("would stop short"));

    // RHEL's /etc/kdump.conf.
    let h = Tree::host();
    h.file("sys/kernel/kexec_crash_size", "268435456\n").file(
        "etc/kdump.conf",
        "path /var/crash\ncore_collector makedumpfile -l --message-level 7 -d 31\n",
    );
    let r = h.run();
    assert!(
        detail(&r, "kdump.config").contains("/etc/kdump.conf"),
        "{}",
        detail(&r, "kdump.config")
    );
}

#[test]
fn watchdog_thresh_implies_twice_for_soft_lockups() {
    let t = Tree::host();
    let r = t.run();
    assert_eq!(status(&r, "watchdog"), Status::Ok);
    let d = detail(&r, "watchdog");
    assert!(d.contains("after 20 s (2 x watchdog_thresh=10)"), "{d}");
    assert!(d.contains("D state after 120 s"), "{d}");
    t.file("proc/sys/kernel/watchdog_thresh", "30\n");
    assert!(detail(&t.run(), "watchdog").contains("after 60 s"));
    t.file("proc/sys/kernel/soft_watchdog", "0\n");
    assert_eq!(status(&t.run(), "watchdog"), Status::Warn);
}

#[test]
fn proc_net_route_addresses() {
    let routes = parse_routes_of(&Tree::host());
    assert_eq!(routes.len(), 2);
    if cfg!(target_endian = "little") {
        assert_eq!(
            routes[0].gateway,
            "10.0.0.1".parse::<std::net::Ipv4Addr>().unwrap()
        );
        assert_eq!(
            routes[1].dest,
            "10.0.0.0".parse::<std::net::Ipv4Addr>().unwrap()
        );
        assert_eq!(
            routes[1].mask,
            "255.255.255.0".parse::<std::net::Ipv4Addr>().unwrap()
        );
        let r = netconsole::route_to(&routes, "10.0.0.9".parse().unwrap()).unwrap();
        assert_eq!(
            r.gateway,
            std::net::Ipv4Addr::UNSPECIFIED,
            "the /24 beats the default"
        );
        let r = netconsole::route_to(&routes, "192.168.1.1".parse().unwrap()).unwrap();
        assert_eq!(r.gateway.to_string(), "10.0.0.1");
    }
    assert!(netconsole::parse_routes("garbage\nx y z\n").is_empty());
}

fn parse_routes_of(t: &Tree) -> Vec<netconsole::Route> {
    netconsole::parse_routes(&std::fs::read_to_string(t.0.path().join("proc/net/route")).unwrap())
}

#[test]
fn netconsole_param_parses() {
    let t = netconsole::parse_param(
        "+6665@10.0.0.5/eth1,6666@10.0.0.9/52:54:00:12:34:56",
        "cmdline",
    );
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].dev, "eth1");
    assert_eq!(t[0].remote_ip, "10.0.0.9");
    assert_eq!(t[0].remote_port, 6666);
    assert_eq!(t[0].remote_mac.as_deref(), Some("52:54:00:12:34:56"));
    assert!(t[0].extended);
    let t = netconsole::parse_param("@/,@10.0.0.9/;r@/eth2,7000@10.1.0.1/", "cmdline");
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].dev, "eth0");
    assert!(t[0].remote_mac.is_none());
    assert_eq!(t[1].remote_port, 7000);
    assert!(netconsole::parse_param("garbage", "x").is_empty());
    assert!(netconsole::parse_param(",", "x").is_empty());
}

fn configfs_target(t: &Tree, ip: &str, mac: &str) {
    let d = "sys/kernel/config/netconsole/kmortem";
    t.file(&format!("{d}/enabled"), "1\n")
        .file(&format!("{d}/dev_name"), "eth0\n")
        .file(&format!("{d}/remote_ip"), &format!("{ip}\n"))
        .file(&format!("{d}/remote_port"), "6666\n")
        .file(&format!("{d}/remote_mac"), &format!("{mac}\n"))
        .file(&format!("{d}/extended"), "1\n")
        .file(&format!("{d}/local_ip"), "10.0.0.5\n")
        .dir("sys/module/netconsole")
        .file(
            "proc/consoles",
            "netcon_ext0          -W- (E     )\nttyS0                -W- (EC  p a)    4:64\n",
        );
}

#[test]
fn netconsole_behind_router_needs_mac() {
    if cfg!(target_endian = "big") {
        return; // the fake /proc/net/route is an x86 one
    }
    let t = Tree::host();
    assert_eq!(
        status(&t.run(), "netconsole"),
        Status::Warn,
        "none configured"
    );
    configfs_target(&t, "192.168.7.9", "ff:ff:ff:ff:ff:ff");
    let r = t.run();
    assert_eq!(
        status(&r, "netconsole"),
        Status::Fail,
        "{}",
        r.to_text(true)
    );
    assert!(detail(&r, "netconsole").contains("behind the router 10.0.0.1"));
    configfs_target(&t, "192.168.7.9", "52:54:00:aa:bb:cc");
    let r = t.run();
    assert_eq!(status(&r, "netconsole"), Status::Ok, "{}", r.to_text(true));
    // On the local segment the broadcast default reaches it.
    configfs_target(&t, "10.0.0.9", "ff:ff:ff:ff:ff:ff");
    let r = t.run();
    assert_eq!(status(&r, "netconsole"), Status::Ok, "{}", r.to_text(true));
    assert!(detail(&r, "netconsole").contains("on the local segment"));
    // Counted as a capture by the panic check.
    t.file("proc/sys/kernel/panic", "10\n")
        .file("proc/sys/kernel/softlockup_panic", "1\n");
    let r = t.run();
    assert_eq!(
        status(&r, "panic.sysctls"),
        Status::Ok,
        "{}",
        r.to_text(true)
    );
    assert!(detail(&r, "panic.sysctls").contains("netconsole sends the log (eth0 -> 10.0.0.9:6666"));
    // Disabled, or its interface down: configured but broken.
    t.file("sys/kernel/config/netconsole/kmortem/enabled", "0\n");
    assert_eq!(status(&t.run(), "netconsole"), Status::Fail);
    t.file("sys/kernel/config/netconsole/kmortem/enabled", "1\n")
        .file("sys/class/net/eth0/operstate", "down\n");
    assert_eq!(status(&t.run(), "netconsole"), Status::Fail);
    // From /etc/modprobe.d, with the module not loaded.
    let m = Tree::host();
    m.file(
        "etc/modprobe.d/netconsole.conf",
        "options netconsole netconsole=+@/eth0,6666@10.0.0.9/\n",
    );
    let r = m.run();
    assert_eq!(
        status(&r, "netconsole"),
        Status::Fail,
        "{}",
        r.to_text(true)
    );
    assert!(detail(&r, "netconsole").contains("module is not loaded"));
}

#[test]
fn pstore_null_backend_is_none() {
    let t = Tree::host();
    let r = t.run();
    assert_eq!(status(&r, "pstore"), Status::Warn);
    assert!(detail(&r, "pstore").contains("no pstore backend"));
    // EFI machines are told about efi_pstore.
    t.dir("sys/firmware/efi");
    assert!(t
        .run()
        .check("pstore")
        .unwrap()
        .fix
        .as_deref()
        .unwrap()
        .contains("efi_pstore"));
    // Registered but not mounted; ramoops without records.
    t.file("sys/module/pstore/parameters/backend", "ramoops\n")
        .file("sys/module/ramoops/parameters/record_size", "0\n");
    let r = t.run();
    assert_eq!(status(&r, "pstore"), Status::Fail);
    assert!(detail(&r, "pstore").contains("not mounted"));
    // EFI records piling up with nothing emptying them.
    t.file("sys/module/pstore/parameters/backend", "efi_pstore\n")
        .file("proc/mounts", "pstore /sys/fs/pstore pstore rw 0 0\n")
        .file("sys/fs/pstore/dmesg-efi_pstore-1", "x");
    let r = t.run();
    assert_eq!(status(&r, "pstore"), Status::Warn);
    assert!(detail(&r, "pstore").contains("EFI variables"));
    t.file("lib/systemd/system/systemd-pstore.service", "[Unit]\n")
        .link(
            "lib/systemd/system/systemd-remount-fs.service.wants/systemd-pstore.service",
            "../systemd-pstore.service",
        );
    let r = t.run();
    assert_eq!(status(&r, "pstore"), Status::Ok, "{}", r.to_text(true));
}

#[test]
fn drm_fbcon_without_nomodeset() {
    let t = Tree::host();
    assert_eq!(status(&t.run(), "console"), Status::Ok);
    t.file("proc/fb", "0 mgag200drmfb\n");
    let r = t.run();
    assert_eq!(status(&r, "console"), Status::Warn);
    assert!(detail(&r, "console").contains("mgag200drmfb without nomodeset"));
    t.file(
        "proc/cmdline",
        "root=/dev/sda1 console=tty0 console=ttyS0,115200 nomodeset\n",
    );
    assert_eq!(status(&t.run(), "console"), Status::Ok);
    // The screen alone.
    t.file(
        "proc/consoles",
        "tty0                 -WU (EC p  )    4:1\n",
    );
    let r = t.run();
    assert_eq!(status(&r, "console"), Status::Warn);
    assert!(detail(&r, "console").contains("no serial console"));
}

#[test]
fn quiet_console_hides_warnings() {
    let t = Tree::host();
    let r = t.run();
    assert_eq!(status(&r, "printk"), Status::Ok, "{}", r.to_text(true));
    assert!(
        detail(&r, "printk").contains("log buffer 128 KiB (CONFIG_LOG_BUF_SHIFT=17)"),
        "{}",
        detail(&r, "printk")
    );
    t.file("proc/sys/kernel/printk", "4 4 1 7\n")
        .file("proc/cmdline", "root=/dev/sda1 console=ttyS0 quiet\n");
    let r = t.run();
    assert_eq!(status(&r, "printk"), Status::Warn);
    assert!(detail(&r, "printk").contains("console_loglevel=4, quiet on the command line"));
    // ignore_loglevel lifts it.
    t.file("sys/module/printk/parameters/ignore_loglevel", "Y\n");
    assert_eq!(status(&t.run(), "printk"), Status::Ok);
    // Many CPUs and a small ring; the kernel's own growth for possible CPUs.
    t.file("sys/devices/system/cpu/online", "0-255\n")
        .file("sys/devices/system/cpu/possible", "0-255\n");
    let r = t.run();
    assert!(
        detail(&r, "printk").contains("grown for 256 possible CPUs"),
        "{}",
        detail(&r, "printk")
    );
    t.file("proc/cmdline", "root=/dev/sda1 log_buf_len=64K\n");
    let r = t.run();
    assert_eq!(status(&r, "printk"), Status::Warn);
    assert!(detail(&r, "printk").contains("less than an all-CPU backtrace of 256 CPUs"));
    assert_eq!(console::cpu_count("0-3,8-11\n"), 8);
    assert_eq!(console::cpu_count("0"), 1);
    assert_eq!(console::cpu_count("9-2,x"), 0);
}

fn notes(id: &[u8]) -> Vec<u8> {
    let mut n = Vec::new();
    // An unrelated note first (Xen's, as x86 kernels carry).
    n.extend_from_slice(&4u32.to_ne_bytes());
    n.extend_from_slice(&4u32.to_ne_bytes());
    n.extend_from_slice(&6u32.to_ne_bytes());
    n.extend_from_slice(b"Xen\0");
    n.extend_from_slice(&[1, 2, 3, 4]);
    n.extend_from_slice(&4u32.to_ne_bytes());
    n.extend_from_slice(&(id.len() as u32).to_ne_bytes());
    n.extend_from_slice(&3u32.to_ne_bytes());
    n.extend_from_slice(b"GNU\0");
    n.extend_from_slice(id);
    while !n.len().is_multiple_of(4) {
        n.push(0);
    }
    n
}

#[test]
fn build_id_from_notes() {
    let id: Vec<u8> = (1..=20).collect();
    assert_eq!(debuginfo::build_id_in_notes(&notes(&id)), Some(id.clone()));
    assert_eq!(debuginfo::build_id_in_notes(&[]), None);
    assert_eq!(
        debuginfo::build_id_in_notes(&[0xff; 64]),
        None,
        "huge sizes"
    );
    let mut cut = notes(&id);
    cut.truncate(cut.len() - 5);
    assert_eq!(debuginfo::build_id_in_notes(&cut), None, "truncated");
    assert_eq!(debuginfo::hex(&[0xab, 0x01]), "ab01");
}

/// The running test binary stands in for a vmlinux (any ELF with a GNU build-id).
#[test]
fn debuginfo_by_build_id() {
    let exe = std::env::current_exe().unwrap();
    let Ok(Some(id)) = debuginfo::build_id_of_file(&exe) else {
        panic!("the test binary has no GNU build-id (linker without --build-id?)");
    };
    let rel = "6.1.0-99-test-amd64";
    let t = Tree::host();
    let r = t.run();
    assert_eq!(status(&r, "debuginfo"), Status::Warn);
    assert!(r
        .check("debuginfo")
        .unwrap()
        .fix
        .as_deref()
        .unwrap()
        .contains(&format!("linux-image-{rel}-dbg")));
    t.bytes("sys/kernel/notes", &notes(&id)).link(
        &format!("usr/lib/debug/boot/vmlinux-{rel}"),
        exe.to_str().unwrap(),
    );
    let r = t.run();
    assert_eq!(status(&r, "debuginfo"), Status::Ok, "{}", r.to_text(true));
    assert!(detail(&r, "debuginfo").contains(&debuginfo::hex(&id)));
    // A vmlinux of another build: wrong lines, a warning.
    let mut other = id.clone();
    other[0] ^= 0xff;
    t.bytes("sys/kernel/notes", &notes(&other));
    let r = t.run();
    assert_eq!(status(&r, "debuginfo"), Status::Warn);
    assert!(detail(&r, "debuginfo").contains("another build"));
    // Found by build-id only: decode needs --vmlinux.
    let h = debuginfo::hex(&other);
    std::fs::remove_file(t.0.path().join(format!("usr/lib/debug/boot/vmlinux-{rel}"))).unwrap();
    let fake = t.0.path().join("notelf");
    std::fs::write(&fake, b"not an elf").unwrap();
    t.link(
        &format!("usr/lib/debug/.build-id/{}/{}.debug", &h[..2], &h[2..]),
        fake.to_str().unwrap(),
    );
    let r = t.run();
    assert_eq!(status(&r, "debuginfo"), Status::Warn, "not an ELF");
    let rd = &r.check("debuginfo").unwrap().read;
    assert!(
        rd.iter()
            .any(|x| x.error.as_deref().is_some_and(|e| e.contains("not an ELF"))),
        "{rd:?}"
    );
}

#[test]
fn agent_unit_spool_and_server() {
    let t = Tree::host();
    let r = t.run();
    assert_eq!(status(&r, "agent.server"), Status::Warn);
    assert_eq!(status(&r, "agent.spool"), Status::Ok);
    t.file(
        "etc/systemd/system/kmortem-agent.service",
        "[Service]\nExecStart=/usr/local/bin/kmortem agent --server http://crash.example:8750 --token-file /etc/kmortem/token --state-dir /var/lib/kmortem-agent\n",
    )
    .file(
        "etc/systemd/system/kmortem-agent.service.d/override.conf",
        "[Service]\nExecStart=\nExecStart=/usr/local/bin/kmortem agent --server=http://10.9.9.9:8750 --token-file /etc/kmortem/token --state-dir /srv/agent\n",
    );
    let r = t.run();
    let d = detail(&r, "agent.server");
    assert!(d.contains("http://10.9.9.9:8750"), "{d}");
    assert!(d.contains("not enabled"), "{d}");
    assert_eq!(
        status(&r, "agent.server"),
        Status::Fail,
        "no token file: {d}"
    );
    assert_eq!(status(&r, "agent.spool"), Status::Warn, "never ran");
    t.file("etc/kmortem/token", "0123456789abcdef0123\n")
        .link(
            "etc/systemd/system/multi-user.target.wants/kmortem-agent.service",
            "/etc/systemd/system/kmortem-agent.service",
        )
        .dir("srv/agent/spool")
        .file("srv/agent/sent", "k1\nk2\n");
    let r = t.run();
    assert_eq!(
        status(&r, "agent.server"),
        Status::Ok,
        "{}",
        r.to_text(true)
    );
    assert!(
        !serde_json::to_string(&r)
            .unwrap()
            .contains("0123456789abcdef0123"),
        "the token leaked"
    );
    assert_eq!(status(&r, "agent.spool"), Status::Ok);
    assert!(detail(&r, "agent.spool").contains("2 item(s) delivered"));
    t.file("srv/agent/spool/000000000001.json", "{}")
        .file("srv/agent/rejected/000000000000.json", "{}")
        .file("srv/agent/rejected/000000000000.reason", "422");
    let r = t.run();
    assert_eq!(status(&r, "agent.spool"), Status::Warn);
    let d = detail(&r, "agent.spool");
    assert!(
        d.contains("1 item(s)") && d.contains("refused for good"),
        "{d}"
    );

    // The server, over the network: one that answers, and a port nobody listens on.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let th = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap();
        let req = String::from_utf8_lossy(&buf[..n]).into_owned();
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n")
            .unwrap();
        req
    });
    let mut o = t.opts();
    o.network = true;
    o.server = Some(format!("http://{addr}"));
    let r = run(&o);
    assert_eq!(
        status(&r, "agent.server"),
        Status::Ok,
        "{}",
        r.to_text(true)
    );
    assert!(detail(&r, "agent.server").contains("it answers (HTTP 200"));
    assert!(th.join().unwrap().starts_with("GET /healthz "));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    o.server = Some(format!("http://{closed}"));
    o.timeout = std::time::Duration::from_secs(2);
    let r = run(&o);
    assert_eq!(status(&r, "agent.server"), Status::Warn);
    assert!(detail(&r, "agent.server").contains("does not answer"));
}

/// Missing, unreadable and odd files never panic: each check says what it could not read.
#[test]
fn odd_and_missing_files_never_panic() {
    let e = Tree::empty();
    let r = e.run();
    let names: Vec<&str> = r.checks.iter().map(|c| c.name).collect();
    assert_eq!(names, ALL_CHECKS, "every check runs, in order");
    for c in &r.checks {
        assert!(!c.detail.is_empty(), "{c:?}");
    }
    assert_eq!(r.host, "unknown");
    let o = Tree::host();
    o.file("proc/sys/kernel/panic", "seventy\n")
        .file("proc/sys/kernel/watchdog_thresh", "\n")
        .file("sys/kernel/kexec_crash_size", "\u{0}\u{1}")
        .file("proc/sys/kernel/printk", "")
        .file("proc/meminfo", "garbage")
        .file("proc/consoles", "")
        .file("proc/net/route", "")
        .bytes("sys/kernel/notes", &[0xff; 7])
        .file(
            "etc/default/kdump-tools",
            "MAKEDUMP_ARGS=\"-d\"\nKDUMP_COREDIR=\"/no/such/dir\"\n",
        );
    // A directory where a file should be.
    std::fs::remove_file(o.0.path().join("proc/cmdline")).unwrap();
    o.dir("proc/cmdline");
    let r = o.run();
    assert_eq!(status(&r, "panic.sysctls"), Status::Warn);
    assert!(
        detail(&r, "panic.sysctls").contains("not a number"),
        "{}",
        detail(&r, "panic.sysctls")
    );
    assert_eq!(status(&r, "watchdog"), Status::Warn);
    assert_eq!(status(&r, "kdump.reserved"), Status::Warn);
    assert_eq!(status(&r, "printk"), Status::Warn);
    assert_eq!(status(&r, "console"), Status::Warn);
    let _ = r.to_text(true);
    let _ = serde_json::to_string(&r).unwrap();
}

/// The stable check names (docs/json/doctor.md).
const ALL_CHECKS: [&str; 13] = [
    "kdump.reserved",
    "kdump.loaded",
    "kdump.service",
    "kdump.config",
    "panic.sysctls",
    "watchdog",
    "netconsole",
    "pstore",
    "console",
    "printk",
    "debuginfo",
    "agent.server",
    "agent.spool",
];

#[test]
fn json_shape() {
    let r = Tree::host().run();
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["host"], "node-1");
    assert_eq!(v["kernel_release"], "6.1.0-99-test-amd64");
    let checks = v["checks"].as_array().unwrap();
    for c in checks {
        for k in ["name", "status", "detail", "fix", "read"] {
            assert!(c.get(k).is_some(), "{k} missing in {c}");
        }
        assert!(
            ["ok", "warn", "fail"].contains(&c["status"].as_str().unwrap()),
            "{c}"
        );
    }
    let sum = &v["summary"];
    assert_eq!(
        sum["ok"].as_u64().unwrap() + sum["warn"].as_u64().unwrap() + sum["fail"].as_u64().unwrap(),
        checks.len() as u64
    );
}

#[test]
fn cmdline_and_sizes() {
    let p = parse_cmdline("a=1 b=\"x y\" nomodeset console=ttyS0 console=tty0 \"c=d e\"");
    assert_eq!(param_values(&p, "console"), ["ttyS0", "tty0"]);
    assert_eq!(param_values(&p, "b"), ["x y"]);
    assert_eq!(param_values(&p, "c"), ["d e"]);
    assert!(has_param(&p, "nomodeset"));
    assert_eq!(parse_size("160M"), Some(160 << 20));
    assert_eq!(parse_size("1G"), Some(1 << 30));
    assert_eq!(parse_size("4096"), Some(4096));
    assert_eq!(parse_size("x"), None);
    assert_eq!(parse_size(""), None);
    assert_eq!(parse_size("99999999999T"), None);
    assert_eq!(human(160 << 20), "160 MiB");
}
