//! `kmortem agent` on real kernels: each of the crash lab's kernels (Debian's 6.1 and 6.12,
//! lab/kernels.toml) boots in QEMU (TCG) with
//! the lab's initramfs plus an overlay (this test's `kmortem` binary and its libraries,
//! virtio_net and ramoops, and lab/initramfs/agent/init), and ships to a real `kmortem serve`
//! on the host (10.0.2.2 from the guest, QEMU user networking):
//!
//! 1. the server is DOWN at first: the agent is overrun (stopped while 4,000 records flood
//!    /dev/kmsg: EPIPE, the lost records counted); the guest WARNs (kmlab's `warning`
//!    scenario), the agent reads it from the real /dev/kmsg and spools it; the server starts;
//!    the report arrives with the guest's host name and kernel release (the spool on a real
//!    host);
//! 2. the guest BUG()s with panic_on_oops=1; ramoops (memmap-reserved RAM) records it; panic=1
//!    resets the machine (QEMU keeps RAM across the reset); at the next boot the agent ships
//!    /sys/fs/pstore/dmesg-ramoops-*: the BUG arrives exactly once, with source agent:pstore,
//!    and the WARNING (in the pstore record too) is not stored again.
//!
//! Skips (printing why) when the lab is not built and `CI` is unset; under CI the lab is built
//! (by scripts/test, or here through kmortem_lab) and the test runs. Every wait is bounded; on
//! failure the guest's console is printed, and QEMU is killed on drop.

mod common;
use kmortem_lab::Lab;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kmortem");
const TOKEN: &str = "agent-vm-token-0123456789";
const GUEST: &str = "kmvm-guest";
/// ramoops region: physical 96 MiB, 1 MiB long (below the initrd QEMU puts at the top of RAM).
const RAMOOPS: (u64, u64) = (0x600_0000, 0x10_0000);

struct Tmp(PathBuf);
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether to run: under CI the lab is built (by scripts/test, or here through kmortem_lab);
/// elsewhere the test runs when every selected kernel's lab is in the cache (or
/// `KMORTEM_LAB_DIR` names one) and skips, saying why, when not.
fn should_run() -> bool {
    std::env::var_os("CI").is_some()
        || std::env::var_os("KMORTEM_LAB_DIR").is_some()
        || kmortem_lab::Lab::cached().is_ok_and(|labs| {
            labs.iter()
                .all(|l| l.dir.join("initramfs.cpio.gz").exists())
        })
}

/// A module of the kernel's image package as a plain `.ko`: Debian's 6.1 ships `.ko`, its 6.12
/// `.ko.xz` (CONFIG_MODULE_COMPRESS_XZ), which busybox's insmod cannot load, so it is
/// decompressed here with xz(1).
fn image_module(kmods: &Path, base: &str) -> Vec<u8> {
    let ko = kmods.join(format!("{base}.ko"));
    if let Ok(data) = std::fs::read(&ko) {
        return data;
    }
    let xz = kmods.join(format!("{base}.ko.xz"));
    let out = Command::new("xz")
        .arg("-dc")
        .arg(&xz)
        .output()
        .unwrap_or_else(|e| panic!("xz -dc {}: {e}", xz.display()));
    assert!(
        out.status.success(),
        "neither {} nor a readable {}",
        ko.display(),
        xz.display()
    );
    out.stdout
}

/// One `newc` cpio archive (what the kernel's initramfs unpacker reads).
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }
    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }
    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040_755, b"");
    }
    fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.entry(name, 0o100_000 | mode, data);
    }
    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, b"");
        self.out
    }
}

/// The lab's initramfs with the overlay appended (uncompressed; it must start 4-byte aligned).
fn initrd(lab: &Lab, work: &Path) -> PathBuf {
    let repo = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let mut c = Cpio::default();
    for d in [
        "usr",
        "usr/bin",
        "lib",
        "lib/modules",
        "lib64",
        "lib/x86_64-linux-gnu",
        "etc",
        "etc/kmortem",
        "var",
        "var/lib",
    ] {
        c.dir(d);
    }
    // The debug binary is ~350 MB; its symbols are not needed in the guest.
    let stripped = work.join("kmortem");
    let strip = Command::new("objcopy")
        .args(["--strip-all", BIN])
        .arg(&stripped)
        .status();
    let exe = if strip.is_ok_and(|s| s.success()) {
        stripped
    } else {
        eprintln!("agent_vm: objcopy --strip-all failed; the guest gets the unstripped binary");
        PathBuf::from(BIN)
    };
    c.file("usr/bin/kmortem", 0o755, &std::fs::read(&exe).unwrap());
    let ldd = Command::new("ldd").arg(BIN).output().expect("run ldd");
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let Some(path) = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(str::to_string)
        else {
            continue;
        };
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        c.file(path.trim_start_matches('/'), 0o755, &data);
    }
    let kmods = lab.modules_dir().join("kernel");
    for m in [
        "drivers/net/virtio_net",
        "drivers/net/net_failover",
        "net/core/failover",
        "fs/pstore/ramoops",
        "lib/reed_solomon/reed_solomon",
    ] {
        let data = image_module(&kmods, m);
        let name = Path::new(m).file_name().unwrap().to_str().unwrap();
        c.file(&format!("lib/modules/{name}.ko"), 0o644, &data);
    }
    c.file("etc/kmortem/token", 0o600, format!("{TOKEN}\n").as_bytes());
    let init =
        std::fs::read(repo.join("lab/initramfs/agent/init")).expect("lab/initramfs/agent/init");
    c.file("init", 0o755, &init);

    let mut out = std::fs::read(lab.dir.join("initramfs.cpio.gz")).expect("the lab's initramfs");
    // Folklore: after a compressed archive the kernel's unpacker (init/initramfs.c,
    // unpack_to_rootfs) takes an uncompressed cpio only at a 4-byte aligned offset and skips
    // zero bytes up to it.
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out.extend_from_slice(&c.finish());
    let p = work.join("initrd");
    std::fs::write(&p, out).unwrap();
    p
}

struct Vm {
    qemu: Killed,
    console: PathBuf,
}

impl Vm {
    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.console).unwrap_or_default()).into_owned()
    }
    /// Wait (bounded) for `cond`; on timeout, fail with the console printed.
    fn wait(&mut self, what: &str, secs: u64, mut cond: impl FnMut(&str) -> bool) {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let log = self.log();
            if cond(&log) {
                return;
            }
            if let Ok(Some(st)) = self.qemu.0.try_wait() {
                panic!("QEMU exited ({st}) while waiting for {what}; console:\n{log}");
            }
            if Instant::now() > end {
                panic!("timed out after {secs} s waiting for {what}; console:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn reports(url: &str) -> Vec<serde_json::Value> {
    match ureq::get(&format!("{url}/api/v1/reports?limit=1000")).call() {
        Ok(r) => {
            let v: serde_json::Value = r.into_json().unwrap();
            v["reports"].as_array().cloned().unwrap_or_default()
        }
        Err(_) => Vec::new(),
    }
}

#[test]
fn agent_on_a_real_kernel_kmsg_spool_and_pstore() {
    if !should_run() {
        println!(
            "SKIPPED agent_on_a_real_kernel_kmsg_spool_and_pstore: the crash lab is not built \
             (run lab/build, or set KMORTEM_LAB_DIR; under CI=true it is built and this runs)"
        );
        return;
    }
    kmortem_lab::each(agent_vm);
}

fn agent_vm(lab: &Lab) {
    let rel = lab.release().to_string();
    let t0 = Instant::now();
    let work = std::env::temp_dir().join(format!(
        "kmortem-agent-vm-{}-{}",
        std::process::id(),
        lab.name()
    ));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let _tmp = Tmp(work.clone());
    let initrd = initrd(lab, &work);

    // A port for the server, which starts only after the guest has crashed once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let console = work.join("console.log");
    let cmdline = format!(
        "console=ttyS0,115200 panic=1 no_timer_check printk.devkmsg=on \
         memmap={size:#x}${addr:#x} \
         kmagent.ramoops={addr:#x},{size:#x} kmagent.server=http://10.0.2.2:{port} \
         kmagent.host={GUEST}",
        addr = RAMOOPS.0,
        size = RAMOOPS.1
    );
    // No -no-reboot: panic=1 resets the machine and QEMU keeps its RAM (and ramoops in it).
    let qemu = Command::new("qemu-system-x86_64")
        .args([
            "-machine",
            "q35,accel=tcg",
            "-smp",
            "1",
            "-m",
            "256",
            "-cpu",
            "qemu64",
        ])
        .arg("-kernel")
        .arg(lab.vmlinuz())
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", &cmdline, "-display", "none", "-monitor", "none"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .args(["-netdev", "user,id=n", "-device", "virtio-net-pci,netdev=n"])
        .stdin(Stdio::null())
        .spawn()
        .expect("start qemu-system-x86_64 (Debian: qemu-system-x86)");
    let mut vm = Vm {
        qemu: Killed(qemu),
        console,
    };

    // Boot 1: the WARNING, read from the real /dev/kmsg, spooled while the server is down.
    vm.wait("boot 1's WARNING", 120, |l| {
        l.contains("WARNING: CPU:") && l.contains("---[ end trace")
    });
    let log = vm.log();
    assert!(
        log.contains("were overwritten before they were read"),
        "the agent did not notice the /dev/kmsg overrun:\n{log}"
    );
    vm.wait("the agent finding the server down", 60, |l| {
        l.contains("server unreachable")
    });
    let boot1 = Instant::now();

    // Now the server.
    let serve = common::serve(&work, &format!("127.0.0.1:{port}"), TOKEN, &[], |_| {});
    let url = format!("http://127.0.0.1:{port}");
    assert_eq!(serve.url, url, "serve printed {}", serve.info);

    let mut got = Vec::new();
    vm.wait("the spooled WARNING on the server", 60, |_| {
        got = reports(&url);
        !got.is_empty()
    });
    println!(
        "agent_vm: WARNING delivered {:.1} s after the server started",
        boot1.elapsed().as_secs_f64()
    );
    let w = &got[0];
    assert_eq!(w["title"], "WARNING in kmlab_put_ref", "{w}");
    assert_eq!(w["source"], "agent:kmsg", "{w}");
    assert_eq!(w["host"], GUEST, "{w}");
    assert_eq!(w["kernel_release"], rel.as_str(), "{w}");

    // Boot 2: the BUG's panic, from pstore.
    vm.wait("boot 2 shipping pstore", 180, |l| {
        l.contains("boot 2: pstore shipped") || l.contains("boot 2: pstore NOT shipped")
    });
    let log = vm.log();
    assert!(log.contains("boot 2: pstore shipped"), "console:\n{log}");
    assert_eq!(log.matches("Linux version").count(), 2, "two boots:\n{log}");
    let pstore_line = log
        .lines()
        .filter(|l| l.contains("kmagent-init: pstore: ["))
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert!(pstore_line.contains("dmesg-ramoops-"), "{pstore_line}");
    println!("agent_vm: boot 2 {pstore_line}");

    let all = reports(&url);
    let titles: Vec<String> = all
        .iter()
        .map(|r| format!("{} [{}]", r["title"], r["source"]))
        .collect();
    println!("agent_vm: reports on the server: {titles:?}");
    let bugs: Vec<&serde_json::Value> = all
        .iter()
        .filter(|r| r["title"] == "kernel BUG in kmlab_check_invariant")
        .collect();
    assert_eq!(bugs.len(), 1, "the panic's report exactly once: {titles:?}");
    assert_eq!(bugs[0]["source"], "agent:pstore", "{}", bugs[0]);
    assert_eq!(bugs[0]["host"], GUEST);
    assert_eq!(bugs[0]["kernel_release"], rel.as_str());
    let raw = bugs[0]["raw"].as_str().unwrap_or_default();
    assert!(raw.contains("kmlab_check_invariant"), "{}", bugs[0]);
    let warnings = all
        .iter()
        .filter(|r| r["title"] == "WARNING in kmlab_put_ref")
        .count();
    assert_eq!(
        warnings, 1,
        "pstore's copy of the WARNING is not stored again: {titles:?}"
    );
    assert_eq!(all.len(), 2, "{titles:?}");
    // ...because the server refused the copies by key: pstore's two records (Oops and Panic)
    // both hold the BUG, and the WARNING too (the log tail as it was at the crash).
    let metrics = ureq::get(&format!("{url}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let dups: f64 = metrics
        .lines()
        .find(|l| l.starts_with("kmortem_duplicate_reports"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no kmortem_duplicate_reports in /metrics:\n{metrics}"));
    println!("agent_vm: copies refused by key (kmortem_duplicate_reports): {dups}");
    assert!(dups >= 2.0, "{dups}");

    // The guest powers off once its spool is empty.
    let end = Instant::now() + Duration::from_secs(30);
    while vm.qemu.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < end,
            "the guest did not power off:\n{}",
            vm.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for l in vm.log().lines() {
        if l.contains("kmagent-init:") || l.contains("kmortem") {
            println!("agent_vm: guest: {l}");
        }
    }
    println!(
        "agent_vm [{}]: two boots, {} reports, {:.1} s in all",
        lab.name(),
        all.len(),
        t0.elapsed().as_secs_f64()
    );
    let _ = std::io::stdout().flush();
}
