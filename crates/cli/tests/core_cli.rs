//! `kmortem core`, `kmortem log` and `kmortem sys` as users run them: `--help` snapshots, and
//! on a crash-lab dump: the log handed to `kmortem oops`, `--json` lines, and the prompt fed
//! from standard input.

mod common;

use std::path::PathBuf;

fn kmortem(args: &[&str], stdin: Option<&str>) -> (String, String, i32) {
    common::run(args, &[], stdin)
}

#[test]
fn core_log_sys_help() {
    for cmd in ["core", "log", "sys"] {
        let (out, _, code) = kmortem(&[cmd, "--help"], None);
        assert_eq!(code, 0);
        insta::assert_snapshot!(format!("{cmd}_help"), out);
    }
}

#[test]
fn core_missing_file_is_a_clear_error() {
    let (_, err, code) = kmortem(&["log", "/nonexistent/vmcore"], None);
    assert_eq!(code, 2);
    assert_eq!(err, "kmortem: /nonexistent/vmcore: no such file\n");
}

/// The `bug` scenario of a lab kernel (dump + vmlinux).
fn lab(lab: &kmortem_lab::Lab) -> (PathBuf, PathBuf) {
    let sc = lab.need("bug");
    let dump = sc.dump("kdump-zlib").expect("bug keeps a kdump-zlib dump");
    let v = lab.vmlinux();
    assert!(
        v.is_file(),
        "kernel {}: no vmlinux at {}",
        lab.name(),
        v.display()
    );
    (dump, v)
}

#[test]
fn lab_log_feeds_oops() {
    kmortem_lab::each(|l| {
        let (dump, _) = lab(l);
        let (log, err, code) = kmortem(&["log", dump.to_str().unwrap()], None);
        assert_eq!((code, err.as_str()), (0, ""));
        let reports = kmortem_oops::parse(log.as_bytes());
        let titles: Vec<&str> = reports.iter().map(|r| r.title.as_str()).collect();
        println!("[{}] kmortem log | kmortem oops: {titles:?}", l.name());
        let want = l.need("bug").meta.expected_title.unwrap_or_default();
        assert!(
            titles.iter().any(|t| *t == want),
            "no {want:?} report in {titles:?}"
        );
    });
}

#[test]
fn lab_json_lines_and_prompt() {
    kmortem_lab::each(json_lines_and_prompt);
}

fn json_lines_and_prompt(l: &kmortem_lab::Lab) {
    let (dump, v) = lab(l);
    let (d, v) = (dump.to_str().unwrap(), v.to_str().unwrap());
    let (out, err, code) = kmortem(
        &[
            "core",
            d,
            "-s",
            v,
            "--json",
            "-c",
            "sys",
            "-c",
            "ps",
            "-c",
            "sym init_task",
            "-c",
            "nosuch",
        ],
        None,
    );
    assert_eq!(code, 1, "a failed command gives exit code 1");
    assert!(err.contains("nosuch"), "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON document per line"))
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["release"], l.release());
    let ps = lines[1].as_array().unwrap();
    assert!(ps.len() > 50);
    assert!(ps
        .iter()
        .any(|t| t["active"] == true && t["pid"].as_i64() > Some(0)));
    for k in ["pid", "ppid", "cpu", "state", "comm", "task", "active"] {
        assert!(ps[0].get(k).is_some(), "ps entry lacks {k}");
    }
    assert_eq!(lines[2]["name"], "init_task");
    assert!(lines[3]["error"]
        .as_str()
        .unwrap()
        .contains("unknown command"));
    // The prompt reads commands from standard input too.
    let (out, _, code) = kmortem(
        &["core", d, "-s", v],
        Some("sym init_task\nstruct list_head -o\nq\n"),
    );
    assert_eq!(code, 0);
    assert!(out.contains("(D) init_task"), "{out}");
    assert!(out.contains("  [8] struct list_head *prev;"), "{out}");
    // No vmlinux at all (kallsyms, BTF and ORC from the dump): the same panic task and frames.
    let (with, _, code) = kmortem(&["core", d, "-s", v, "--json", "-c", "bt"], None);
    assert_eq!(code, 0);
    let (bare, err, code) = kmortem(&["core", d, "--json", "-c", "bt"], None);
    assert_eq!((code, err.as_str()), (0, ""));
    let names = |t: &str| -> Vec<String> {
        let j: serde_json::Value = serde_json::from_str(t.trim()).expect("bt JSON");
        j["frames"]
            .as_array()
            .expect("frames")
            .iter()
            .filter(|f| f["inline"] != true)
            .map(|f| f["function"].as_str().unwrap_or("?").to_string())
            .collect()
    };
    let (a, b) = (names(&with), names(&bare));
    println!(
        "[{}] core without -s: bt of {} frames, as with the vmlinux",
        l.name(),
        b.len()
    );
    assert!(b.len() >= 10 && a == b, "{a:?}\nvs {b:?}");
}
