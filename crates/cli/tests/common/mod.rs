//! The one way the CLI tests run the real `kmortem` binary: from the repo root, with optional
//! extra environment and standard input, returning (stdout, stderr, exit code).

#![allow(dead_code)] // each test binary uses a different subset

use std::io::Write;
use std::process::{Command, Stdio};

pub fn run(
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
    stdin: Option<&str>,
) -> (String, String, i32) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kmortem"));
    c.args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut ch = c.spawn().expect("run kmortem");
    if let Some(s) = stdin {
        ch.stdin
            .take()
            .expect("stdin")
            .write_all(s.as_bytes())
            .expect("write stdin");
    }
    let out = ch.wait_with_output().expect("wait for kmortem");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// `kmortem ARGS` with no stdin and the inherited environment.
pub fn kmortem(args: &[&str]) -> (String, String, i32) {
    run(args, &[], None)
}

/// A running `kmortem serve --json`, killed at drop.
pub struct Serve {
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    /// The startup JSON line.
    pub info: serde_json::Value,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `kmortem serve --json` on `listen` with its database and token (`token`, written to
/// `dir/token`) in `dir`, plus `extra` arguments; `configure` adjusts the command (environment,
/// stderr) before it starts. Returns once the server printed its startup line.
pub fn serve(
    dir: &std::path::Path,
    listen: &str,
    token: &str,
    extra: &[&str],
    configure: impl FnOnce(&mut Command),
) -> Serve {
    use std::io::{BufRead, BufReader};
    std::fs::write(dir.join("token"), format!("{token}\n")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmortem"));
    cmd.args(["serve", "--listen", listen, "--json", "--token-file"])
        .arg(dir.join("token"));
    // `extra` may name another database (PostgreSQL).
    if !extra.contains(&"--db") {
        cmd.arg("--db").arg(dir.join("k.db"));
    }
    cmd.args(extra)
        .env("KMORTEM_HOME", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    configure(&mut cmd);
    let mut child = cmd.spawn().expect("start kmortem serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("serve --json printed {line:?}: {e}"));
    let url = info["url"]
        .as_str()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string();
    Serve { child, url, info }
}

/// `../shared` beside the repo root (the users' seeds and data); a clear failure if missing.
pub fn shared() -> std::path::PathBuf {
    let p = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared"));
    assert!(
        p.join("data/kernel-vulns").is_dir(),
        "../shared (the users' seeds and data/kernel-vulns) is missing at {}",
        p.display()
    );
    p
}

/// A small vulns tree for `kmortem fixes import`: the CVE records CVE-2021-46975..46994 (the
/// Kyber fix of seed 002 and its neighbours) copied from ../shared into a temporary
/// `cve/published/2021`.
pub fn kyber_vulns_tree() -> tempfile::TempDir {
    let src = shared().join("data/kernel-vulns/cve/published/2021");
    let vulns = tempfile::tempdir().unwrap();
    let dst = vulns.path().join("cve/published/2021");
    std::fs::create_dir_all(&dst).unwrap();
    for n in 46975..46995 {
        for ext in ["json", "sha1", "dyad"] {
            let f = src.join(format!("CVE-2021-{n}.{ext}"));
            if f.exists() {
                std::fs::copy(&f, dst.join(f.file_name().unwrap())).unwrap();
            }
        }
    }
    vulns
}
