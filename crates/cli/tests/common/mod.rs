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
