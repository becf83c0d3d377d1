//! `kmortem core -c bt` as users run it, snapshotted on the crash lab's `null_deref_nokaslr`
//! dump. Hex numbers of 8+ digits (stack addresses and registers differ between lab builds)
//! and the lab's path are redacted.

mod common;

use std::path::PathBuf;

fn redact(s: &str, lab: &str) -> String {
    let s = s.replace(lab, "$LAB");
    let mut out = String::with_capacity(s.len());
    let mut word = String::new();
    let flush = |w: &mut String, out: &mut String| {
        let hex = w.trim_start_matches("0x");
        if hex.len() >= 8 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            out.push_str(if w.starts_with("0x") {
                "0xADDR"
            } else {
                "ADDR"
            });
        } else {
            out.push_str(w);
        }
        w.clear();
    };
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[test]
fn lab_bt_snapshot() {
    let l = PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
        .join(".cache/kmortem/lab/6.1.0-56-cloud-amd64");
    let sc = l.join("scenarios/null_deref_nokaslr");
    let dump = sc.join("vmcore.kdump-zlib");
    let v = l.join("root/usr/lib/debug/boot/vmlinux-6.1.0-56-cloud-amd64");
    assert!(
        dump.is_file() && v.is_file(),
        "the crash lab is missing at {} (build it with lab/build)",
        l.display()
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sc.join("meta.json")).expect("meta.json"))
            .expect("meta.json");
    let ko = PathBuf::from(meta["kmlab_ko"].as_str().expect("kmlab_ko"));
    let moddir = ko.parent().expect("module dir");
    let (out, err, code) = common::kmortem(&[
        "core",
        dump.to_str().unwrap(),
        "-s",
        v.to_str().unwrap(),
        "--mod-dir",
        moddir.to_str().unwrap(),
        "-c",
        "bt -l",
    ]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(out.contains("[exception RIP: kmlab_device_get+5]"), "{out}");
    insta::assert_snapshot!("bt_null_deref_nokaslr", redact(&out, l.to_str().unwrap()));
}
