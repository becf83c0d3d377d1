//! `kmortem serve` and `kmortem agent` as real processes on 127.0.0.1 ephemeral ports:
//! the kill -9 durability bar, `--ingest` (the README's demo), and the agent's boot files,
//! /dev/kmsg-format input, spool and no-duplicates promise.

mod common;
use common::Serve;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kmortem");
const TOKEN: &str = "cli-test-token-0123456789";

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn example(name: &str) -> String {
    std::fs::read_to_string(repo().join("examples").join(name)).unwrap()
}

struct Tmp(PathBuf);
impl Tmp {
    fn new(tag: &str) -> Tmp {
        let p = std::env::temp_dir().join(format!("kmortem-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }
}
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn serve(dir: &Path, extra: &[&str]) -> Serve {
    common::serve(dir, "127.0.0.1:0", TOKEN, extra, |_| {})
}

fn serve_with(dir: &Path, configure: impl FnOnce(&mut Command)) -> Serve {
    common::serve(dir, "127.0.0.1:0", TOKEN, &[], configure)
}

fn get(url: &str) -> serde_json::Value {
    ureq::get(url).call().unwrap().into_json().unwrap()
}

fn all_reports(base: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut before = String::new();
    loop {
        let page = get(&format!("{base}/api/v1/reports?limit=1000{before}"));
        out.extend(page["reports"].as_array().unwrap().iter().cloned());
        match page["next_before"].as_i64() {
            Some(b) => before = format!("&before={b}"),
            None => return out,
        }
    }
}

fn with_pid(log: &str, pid: u32) -> String {
    log.replace("PID: 97 Comm", &format!("PID: {pid} Comm"))
}

fn pid_of(raw: &str) -> Option<u32> {
    let i = raw.find(" PID: ")?;
    let rest = &raw[i + 6..];
    rest[..rest.find(' ')?].parse().ok()
}

#[test]
fn kill_9_mid_burst_loses_no_accepted_report() {
    let dir = Tmp::new("kill9");
    // A burst from one address: no rate limit.
    let s = serve(&dir.0, &["--rate-limit", "0"]);
    let log = example("null-deref.log");
    let accepted: Arc<Mutex<Vec<(i64, u32)>>> = Default::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for t in 0..8u32 {
        let (url, log, accepted, stop) =
            (s.url.clone(), log.clone(), accepted.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 100_000 {
                let pid = 100_000 + t * 100_000 + i;
                i += 1;
                let r = ureq::post(&format!("{url}/api/v1/reports?host=burst-{t}"))
                    .timeout(Duration::from_secs(10))
                    .set("Authorization", &format!("Bearer {TOKEN}"))
                    .send_string(&with_pid(&log, pid));
                match r {
                    Ok(resp) => {
                        let v: serde_json::Value = resp.into_json().unwrap();
                        let id = v["reports"][0]["id"].as_i64().expect("a report id");
                        accepted.lock().unwrap().push((id, pid));
                    }
                    Err(ureq::Error::Status(code, _)) => panic!("HTTP {code} before the kill"),
                    // The server is gone: connection refused or reset.
                    Err(_) => break,
                }
            }
        }));
    }
    // Let the burst run, then kill -9 in the middle of it.
    let start = Instant::now();
    while accepted.lock().unwrap().len() < 300 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut s = s;
    s.child.kill().unwrap(); // SIGKILL
    s.child.wait().unwrap();
    let killed_at = accepted.lock().unwrap().len();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(
        accepted.len() >= 300,
        "only {} reports accepted before the kill",
        accepted.len()
    );

    // Restart on the same database: every 2xx'd report is there, with its own text.
    let s2 = serve(&dir.0, &["--rate-limit", "0"]);
    let stored = all_reports(&s2.url);
    let by_id: std::collections::HashMap<i64, u32> = stored
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap(),
                pid_of(r["raw"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    let mut lost = 0;
    for (id, pid) in &accepted {
        match by_id.get(id) {
            Some(p) if p == pid => {}
            _ => lost += 1,
        }
    }
    println!(
        "kill -9: {} reports got a 2xx ({} when the kill was sent), {} stored after restart, {lost} lost",
        accepted.len(),
        killed_at,
        stored.len()
    );
    assert_eq!(lost, 0);
    assert!(stored.len() >= accepted.len());
}

#[test]
fn serve_ingest_examples_like_the_demo() {
    let dir = Tmp::new("demo");
    let mut files: Vec<String> = std::fs::read_dir(repo().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".log"))
        .collect();
    files.sort();
    let mut args = vec!["--ingest"];
    args.extend(files.iter().map(String::as_str));
    let s = serve(&dir.0, &args);
    assert!(
        s.info["ingested"].as_u64().unwrap() >= files.len() as u64,
        "{}",
        s.info
    );
    let groups = get(&format!("{}/api/v1/groups", s.url));
    assert_eq!(
        groups["groups"].as_array().unwrap().len(),
        files.len(),
        "{groups}"
    );
    drop(s);
    // Ingesting the same files again stores nothing new.
    let s = serve(&dir.0, &args);
    assert_eq!(
        all_reports(&s.url).len(),
        s.info["ingested"].as_u64().unwrap() as usize
    );
}

fn agent(dir: &Path, url: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let out = Command::new(BIN)
        .args([
            "agent", "--once", "--json", "--host", "edge-9", "--retry", "1", "--server", url,
        ])
        .arg("--token-file")
        .arg(dir.join("token"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--pstore-dir")
        .arg(dir.join("pstore"))
        .arg("--crash-dir")
        .arg(dir.join("crash"))
        .arg("--kmsg")
        .arg(dir.join("kmsg"))
        .args(extra)
        .output()
        .unwrap();
    let summary = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "agent printed {:?} ({e}); stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), summary)
}

#[test]
fn agent_ships_boot_files_and_kmsg_once_and_spools_while_down() {
    let dir = Tmp::new("agent");
    let d = &dir.0;
    std::fs::create_dir_all(d.join("pstore")).unwrap();
    std::fs::create_dir_all(d.join("crash/127.0.0.1-2026-11-20-10:31:07")).unwrap();
    std::fs::write(d.join("token"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(
        d.join("pstore/dmesg-efi-176370000001001"),
        example("null-deref.log"),
    )
    .unwrap();
    std::fs::write(
        d.join("crash/127.0.0.1-2026-11-20-10:31:07/dmesg.txt"),
        example("warning.log"),
    )
    .unwrap();
    // A /dev/kmsg capture: records `pri,seq,ts,-;text`.
    let mut kmsg = String::new();
    for (i, l) in example("hung-task.log").lines().enumerate() {
        let text = &l[l.find("] ").unwrap() + 2..];
        kmsg.push_str(&format!(
            "3,{},{},-;{}\n",
            500 + i,
            4_931_207_321u64 + i as u64,
            text
        ));
    }
    std::fs::write(d.join("kmsg"), kmsg).unwrap();

    // Server down: everything is spooled, exit code 1.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let (code, sum) = agent(d, &dead, &[]);
    assert_eq!(code, 1, "{sum}");
    assert_eq!(sum["sent"], 0);
    assert_eq!(sum["left"], 3, "{sum}");

    // Server up: the spool drains; the reports are there once.
    let s = serve(d, &[]);
    let (code, sum) = agent(d, &s.url, &[]);
    assert_eq!(code, 0, "{sum}");
    assert_eq!(sum["left"], 0, "{sum}");
    let reports = all_reports(&s.url);
    let mut sources: Vec<&str> = reports
        .iter()
        .map(|r| r["source"].as_str().unwrap())
        .collect();
    sources.sort();
    assert_eq!(
        sources,
        ["agent:kdump", "agent:kmsg", "agent:pstore"],
        "{reports:?}"
    );
    assert!(reports.iter().all(|r| r["host"] == "edge-9"));

    // Run again (a reboot): nothing goes twice.
    let (code, sum) = agent(d, &s.url, &[]);
    assert_eq!(code, 0);
    assert_eq!(sum["sent"], 0, "{sum}");
    assert_eq!(sum["already_sent"], 3, "{sum}");
    assert_eq!(all_reports(&s.url).len(), 3);
}

#[test]
fn serve_and_agent_help() {
    for cmd in ["serve", "agent"] {
        let out = Command::new(BIN).args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success());
        insta::assert_snapshot!(format!("{cmd}_help"), String::from_utf8_lossy(&out.stdout));
    }
}

/// The tracing subscriber: a rejected request is logged on stderr (default filter), and a
/// filter that does not parse is refused with its variable named.
#[test]
fn serve_logs_rejected_requests_and_checks_kmortem_log() {
    let dir = Tmp::new("log");
    let err = std::fs::File::create(dir.0.join("stderr")).unwrap();
    let s = serve_with(&dir.0, |c| {
        c.env_remove("RUST_LOG")
            .env_remove("KMORTEM_LOG")
            .stderr(err);
    });
    let url = s.url.as_str();
    let r = ureq::post(&format!("{url}/api/v1/reports?host=x"))
        .set("Authorization", "Bearer wrong-token")
        .send_string("hello");
    assert!(matches!(r, Err(ureq::Error::Status(401, _))));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut log = String::new();
    while std::time::Instant::now() < deadline {
        log = std::fs::read_to_string(dir.0.join("stderr")).unwrap();
        if log.contains("request rejected") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(s);
    assert!(
        log.contains("request rejected") && log.contains("401"),
        "stderr: {log}"
    );

    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.0.join("k2.db"))
        .env("KMORTEM_HOME", &dir.0)
        .env("KMORTEM_LOG", "kmortem_server=loud")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("KMORTEM_LOG") && e.contains("not a log filter"),
        "{e}"
    );
}

/// The systemd unit in dist/ passes `systemd-analyze verify` (with ExecStart pointed at the
/// binary under test, since the unit names the installed path), and every flag its ExecStart
/// gives `kmortem agent` is one the agent accepts.
#[test]
fn agent_unit_file_verifies() {
    let unit = std::fs::read_to_string(repo().join("dist/kmortem-agent.service")).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart in the unit");
    let args: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(args[0], "/usr/local/bin/kmortem");
    assert_eq!(args[1], "agent");
    let help = Command::new(env!("CARGO_BIN_EXE_kmortem"))
        .args(["agent", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        assert!(
            help.contains(flag),
            "the unit passes {flag}, unknown to `kmortem agent`"
        );
    }
    let dir = std::env::temp_dir().join(format!("kmortem-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kmortem-agent.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/kmortem", env!("CARGO_BIN_EXE_kmortem")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (package systemd; scripts/test installs it)");
    let err = String::from_utf8_lossy(&out.stderr);
    println!("systemd-analyze verify: exit {:?} {err}", out.status.code());
    // It exits 0 on unknown keys and bad values too ("..., ignoring"): any output is a finding.
    assert!(out.status.success() && err.trim().is_empty(), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
