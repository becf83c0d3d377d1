//! `kmortem doctor` as users run it: `--help`, and the binary on fake hosts (`--root`): the
//! fleet story's settings exit 1 with the FAIL line, the JSON of docs/json/doctor.md, exit 0
//! once a crash kernel is loaded. The checks themselves are tested in
//! crates/server/src/doctor/tests.rs; the lab kernels in QEMU in doctor_vm.rs.

mod common;

use common::kmortem;
use std::path::Path;

#[test]
fn doctor_help() {
    let (out, _, code) = kmortem(&["doctor", "--help"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!(out);
}

fn write(root: &Path, p: &str, s: &str) {
    let p = root.join(p);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, s).unwrap();
}

/// A host with the fleet story's sysctls and nothing that records a panic.
fn story_host(root: &Path) {
    for (p, s) in [
        ("proc/sys/kernel/hostname", "k8s-master-2"),
        ("proc/sys/kernel/osrelease", "6.1.0-99-test-amd64"),
        ("proc/cmdline", "root=/dev/sda1 console=ttyS0,115200"),
        (
            "proc/consoles",
            "ttyS0                -W- (EC  p a)    4:64",
        ),
        ("proc/sys/kernel/printk", "7 4 1 7"),
        ("proc/sys/kernel/panic", "70"),
        ("proc/sys/kernel/hung_task_panic", "1"),
        ("proc/sys/kernel/softlockup_panic", "1"),
        ("proc/sys/kernel/watchdog_thresh", "10"),
        ("sys/kernel/kexec_crash_size", "0"),
        ("sys/kernel/kexec_crash_loaded", "0"),
        ("sys/module/pstore/parameters/backend", "(null)"),
        ("proc/mounts", "proc /proc proc rw 0 0"),
    ] {
        write(root, p, &format!("{s}\n"));
    }
}

#[test]
fn doctor_fails_on_the_fleet_story_and_passes_with_kdump() {
    let t = tempfile::tempdir().unwrap();
    story_host(t.path());
    let root = t.path().to_str().unwrap();
    let (out, err, code) = kmortem(&["doctor", "--root", root, "--offline"]);
    assert_eq!(code, 1, "{out}{err}");
    let fail = out
        .lines()
        .find(|l| l.starts_with("FAIL  panic.sysctls"))
        .unwrap_or_else(|| panic!("{out}"));
    println!("doctor_cli: {fail}");
    assert!(
        fail.contains("panic=70 reboots 70 s after a panic"),
        "{fail}"
    );
    assert!(
        out.contains("kmortem doctor: host k8s-master-2, kernel 6.1.0-99-test-amd64"),
        "{out}"
    );
    assert!(
        out.contains("read:") && out.contains("/proc/sys/kernel/panic = 70"),
        "{out}"
    );
    assert!(out.contains("a crash on this host can go unseen"), "{out}");

    let (json, _, code) = kmortem(&["doctor", "--root", root, "--offline", "--json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 13, "{json}");
    let p = checks
        .iter()
        .find(|c| c["name"] == "panic.sysctls")
        .unwrap();
    assert_eq!(p["status"], "fail");
    assert!(p["fix"]
        .as_str()
        .unwrap()
        .contains("kernel.hung_task_panic=0"));
    assert!(v["summary"]["fail"].as_u64().unwrap() >= 1);

    // A crash kernel loaded: every lockup now leaves a dump; nothing fails.
    write(
        t.path(),
        "proc/cmdline",
        "root=/dev/sda1 console=ttyS0,115200 crashkernel=256M\n",
    );
    write(t.path(), "sys/kernel/kexec_crash_size", "268435456\n");
    write(t.path(), "sys/kernel/kexec_crash_loaded", "1\n");
    let (out, err, code) = kmortem(&["doctor", "--root", root, "--offline"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 fail,"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("ok    panic.sysctls")),
        "{out}"
    );
}
