//! Hostile input to the real binary (issue 25), one test per kind: the lab's real consoles and
//! vmcores made hostile here (coloured, NUL-injected, CR-only, escape sequences planted), and the
//! paths a user passes by mistake (/dev/null, a directory, a FIFO, a missing file). Each asserts
//! the exact stderr line and the exit status.

mod common;

use common::{kmortem, run};
use std::io::Write;
use std::process::{Command, Stdio};

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("kmortem-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn titles(oops_out: &str) -> Vec<String> {
    oops_out
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| l.split_once(' ').map_or("", |x| x.1).to_string())
        .collect()
}

/// `kmortem oops` on the lab's null_deref console: plain, coloured like `dmesg --color=always`,
/// NUL-injected and CR-only all give the same titles.
#[test]
fn oops_on_coloured_nul_and_cr_only_consoles() {
    kmortem_lab::each(|lab| {
        let sc = lab.need("null_deref");
        let log = std::fs::read(sc.console_log()).unwrap();
        let dir = tmpdir("variants");
        let plain: Vec<u8> = log.iter().copied().filter(|&b| b != b'\r').collect();
        let mut coloured = Vec::new();
        let mut nul = Vec::new();
        for l in plain.split_inclusive(|&b| b == b'\n') {
            coloured.extend_from_slice(b"\x1b[32m");
            coloured.extend_from_slice(l.strip_suffix(b"\n").unwrap_or(l));
            coloured.extend_from_slice(b"\x1b[0m\n");
            nul.extend_from_slice(b"\0\0\0");
            for (i, &b) in l.iter().enumerate() {
                nul.push(b);
                if i == 20 {
                    nul.push(0);
                }
            }
        }
        let cr: Vec<u8> = plain
            .iter()
            .map(|&b| if b == b'\n' { b'\r' } else { b })
            .collect();
        let path = |n: &str, b: &[u8]| {
            let p = dir.join(n);
            std::fs::write(&p, b).unwrap();
            p.display().to_string()
        };
        let (want, err, code) = kmortem(&["oops", "-q", &path("plain.log", &plain)]);
        assert_eq!((code, err.as_str()), (0, ""));
        let want = titles(&want);
        assert!(!want.is_empty());
        for (name, bytes) in [("coloured", &coloured), ("nul", &nul), ("cr", &cr)] {
            let (out, err, code) = kmortem(&["oops", "-q", &path(&format!("{name}.log"), bytes)]);
            assert_eq!((code, err.as_str()), (0, ""), "{name}");
            assert_eq!(titles(&out), want, "{name}");
            assert!(!out.contains('\x1b'), "{name}: {out}");
        }
        println!(
            "{}: {} titles agree on 3 variants",
            lab.release(),
            want.len()
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// `kmortem oops` on a vmcore: one line that says what it is and how to get its log.
#[test]
fn oops_on_a_vmcore() {
    kmortem_lab::each(|lab| {
        let sc = lab.need("null_deref");
        let core = sc.dump("elf").expect("an ELF vmcore");
        let core = core.display().to_string();
        let (out, err, code) = kmortem(&["oops", &core]);
        assert_eq!(code, 2);
        assert_eq!(
            err,
            format!(
                "kmortem: {core}: an ELF file (a vmcore, a vmlinux or a module), not a log; for the log inside a vmcore run `kmortem log {core} | kmortem oops`\n"
            )
        );
        assert_eq!(out, "");
        let kd = sc
            .dump("kdump-zlib")
            .expect("a kdump vmcore")
            .display()
            .to_string();
        let (_, err, code) = kmortem(&["decode", &kd]);
        assert_eq!(code, 2);
        assert_eq!(
            err,
            format!("kmortem: {kd}: a kdump-compressed vmcore, not a log; for the log inside a vmcore run `kmortem log VMCORE | kmortem decode`\n")
        );
    });
}

/// Escape sequences planted in a real console's task name reach the terminal escaped, in the
/// human output of oops, decode and explain; `--json` keeps the exact bytes.
#[test]
fn escape_sequences_are_escaped_in_human_output() {
    kmortem_lab::each(|lab| {
        let sc = lab.need("null_deref");
        let log = String::from_utf8_lossy(&std::fs::read(sc.console_log()).unwrap()).into_owned();
        // A comm that sets the terminal title, backs up and clears the screen (a task can name
        // itself so). The ESC sequence is removed with the colours before parsing; the
        // backspaces and the C1 CSI (U+009B) stay in the text and must be escaped.
        let evil = "\u{1b}]0;pwned\u{7}\u{8}\u{8}\u{9b}2J";
        let kept = "\u{8}\u{8}\u{9b}2J";
        let log = log.replacen("Comm: ", &format!("Comm: {evil}"), 1);
        for cmd in ["oops", "decode", "explain"] {
            let (out, _, code) = run(
                &[cmd, "--no-system"][..if cmd == "oops" { 1 } else { 2 }],
                &[],
                Some(&log),
            );
            assert_eq!(code, 0, "{cmd}");
            assert!(
                !out.contains('\u{1b}') && !out.contains('\u{9b}'),
                "{cmd}: raw escape in {out}"
            );
            if cmd != "explain" {
                assert!(out.contains("\\x08\\x08\\u{9b}2J"), "{cmd}: {out}");
            }
        }
        let (out, _, code) = run(&["oops", "--json"], &[], Some(&log));
        assert_eq!(code, 0);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(v[0]["text"].as_str().unwrap().contains(kept));
    });
}

/// Paths that cannot be a vmcore: one line naming the path, what it is and what to give.
#[test]
fn dump_paths_that_are_not_dumps() {
    let dir = tmpdir("paths");
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let empty = dir.join("empty");
    std::fs::write(&empty, b"").unwrap();
    let d = dir.display().to_string();
    let f = fifo.display().to_string();
    let e = empty.display().to_string();
    let cases = [
        (
            "/dev/null".to_string(),
            "/dev/null: empty file, not a vmcore (give the file kdump saved, e.g. /var/crash/*/vmcore)".to_string(),
        ),
        (
            e.clone(),
            format!("{e}: empty file, not a vmcore (give the file kdump saved, e.g. /var/crash/*/vmcore)"),
        ),
        (
            d.clone(),
            format!("{d}: a directory, not a vmcore (give the vmcore file in it, e.g. DIR/vmcore)"),
        ),
        (
            f.clone(),
            format!("{f}: a pipe, not a vmcore (a vmcore is read at random offsets: save it to a file first)"),
        ),
        ("no/such/vmcore".to_string(), "no/such/vmcore: no such file".to_string()),
    ];
    for (p, want) in &cases {
        for args in [
            vec!["core", p.as_str(), "-c", "sys"],
            vec!["log", p.as_str()],
            vec!["sys", p.as_str()],
            vec!["explain", "--core", p.as_str()],
        ] {
            let (out, err, code) = kmortem(&args);
            assert_eq!(
                (code, err.as_str(), out.as_str()),
                (2, format!("kmortem: {want}\n").as_str(), ""),
                "{args:?}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Log paths: a directory or a missing file is one line, no `(os error N)`.
#[test]
fn log_paths_that_are_not_logs() {
    let dir = tmpdir("logdir");
    let d = dir.display().to_string();
    let fixes = cfg!(feature = "fixes").then_some("fixes");
    for cmd in ["oops", "decode", "explain"].into_iter().chain(fixes) {
        let (_, err, code) = kmortem(&[cmd, &d]);
        assert_eq!(
            (code, err.as_str()),
            (2, format!("kmortem: {d}: a directory, not a log (give a log file, or `-` for standard input)\n").as_str()),
            "{cmd}"
        );
        let (_, err, code) = kmortem(&[cmd, "no/such.log"]);
        assert_eq!(
            (code, err.as_str()),
            (2, "kmortem: no/such.log: no such file\n"),
            "{cmd}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `explain` and `decode` answer the first report before the input ends (a pipe held open, as
/// `dmesg -w` holds it): the output is read while the writer still sleeps.
#[test]
fn first_report_before_end_of_input() {
    kmortem_lab::each(|lab| {
        let log = std::fs::read(lab.need("null_deref").console_log()).unwrap();
        for cmd in ["explain", "decode"] {
            let mut ch = Command::new(env!("CARGO_BIN_EXE_kmortem"))
                .args([cmd, "--no-system"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut stdin = ch.stdin.take().unwrap();
            stdin.write_all(&log).unwrap();
            stdin.flush().unwrap();
            // Read the first lines while stdin stays open.
            let mut stdout = std::io::BufReader::new(ch.stdout.take().unwrap());
            let mut first = String::new();
            let mut got = String::new();
            while !got.contains("kmlab_device_get") {
                first.clear();
                let n = std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
                assert!(n > 0, "{cmd}: output ended before the report");
                got.push_str(&first);
            }
            // The input is still open: the answer came from the stream, not from its end.
            assert!(ch.try_wait().unwrap().is_none(), "{cmd}");
            drop(stdin);
            let st = ch.wait().unwrap();
            assert!(st.success(), "{cmd}");
        }
    });
}

/// `decode < /dev/zero`-like input (NULs only, then a report) ends with the report decoded.
#[test]
fn nul_flood_then_a_report() {
    kmortem_lab::each(|lab| {
        let log =
            String::from_utf8_lossy(&std::fs::read(lab.need("null_deref").console_log()).unwrap())
                .into_owned();
        let mut input = "\0".repeat(3 << 20);
        input.push_str(&log);
        let (out, _, code) = run(&["decode", "--no-system"], &[], Some(&input));
        assert_eq!(code, 0);
        assert!(
            out.contains("Code starting with the faulting instruction"),
            "{out}"
        );
        assert!(!out.contains('\0'));
    });
}

/// `explain --core DUMP` without a log reads the dump's log with the reader `kmortem log` uses
/// (the lockless ring buffer of 5.10+), and explains its crash.
#[test]
fn explain_core_alone_reads_the_dump_log() {
    kmortem_lab::each(|lab| {
        let sc = lab.need("null_deref");
        let core = sc.dump("elf").expect("an ELF vmcore").display().to_string();
        let (out, err, code) = kmortem(&["explain", "--no-system", "--core", &core]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("kmlab_device_get"), "{out}");
        assert!(!err.contains("SIZE(log)"), "{err}");
    });
}
