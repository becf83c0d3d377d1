//! Git history import speed for BENCHMARKS.md. Builds a repository (git fast-import) of N commits
//! whose messages are the real fix messages of the CVE records and whose diffs change functions
//! in a tree of C files, then times `import_git` against `git log -p` over the same history.
//!
//!   cargo run --release -p kmortem-fixes --example bench_git -- ../shared/data/kernel-vulns 5000

use kmortem_fixes::git::{import_git, GitOptions};
use kmortem_fixes::FixIndex;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

fn main() {
    let vulns = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "../shared/data/kernel-vulns".into()),
    );
    let n: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000);
    let mut messages = Vec::new();
    'outer: for y in std::fs::read_dir(vulns.join("cve/published"))
        .expect("vulns")
        .flatten()
    {
        for f in std::fs::read_dir(y.path()).into_iter().flatten().flatten() {
            if f.path().extension().is_some_and(|e| e == "json") {
                let b = std::fs::read(f.path()).unwrap_or_default();
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) {
                    if let Some(d) = v
                        .pointer("/containers/cna/descriptions/0/value")
                        .and_then(|s| s.as_str())
                    {
                        let d = d.trim_start().strip_prefix("In the Linux kernel, the following vulnerability has been resolved:").unwrap_or(d);
                        messages.push(d.trim().to_string());
                        if messages.len() >= n {
                            break 'outer;
                        }
                    }
                }
            }
        }
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("linux");
    std::fs::create_dir_all(&repo).expect("mkdir");
    let ok = Command::new("git")
        .args(["init", "-q", "-b", "master"])
        .current_dir(&repo)
        .status()
        .expect("git")
        .success();
    assert!(ok);
    // 40 directories x 25 files x 20 functions of 15 lines.
    let files: Vec<String> = (0..1000)
        .map(|i| format!("drivers/sub{}/file{}.c", i / 25, i % 25))
        .collect();
    let mut content: Vec<Vec<String>> = files
        .iter()
        .enumerate()
        .map(|(fi, _)| {
            let mut lines = vec![
                "// SPDX-License-Identifier: GPL-2.0".to_string(),
                "#include <linux/kernel.h>".into(),
                String::new(),
            ];
            for f in 0..20 {
                lines.push(format!(
                    "static int fn_{fi}_{f}(struct device *dev, int flags)"
                ));
                lines.push("{".into());
                for k in 0..12 {
                    lines.push(format!("\tflags += {k};"));
                }
                lines.push("\treturn flags;".into());
                lines.push("}".into());
                lines.push(String::new());
            }
            lines
        })
        .collect();
    let mut fi = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(&repo)
        .stdin(Stdio::piped())
        .spawn()
        .expect("fast-import");
    {
        let mut w = std::io::BufWriter::new(fi.stdin.take().expect("stdin"));
        let mut state = 0x9E3779B97F4A7C15u64;
        let mut rnd = |m: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % m as u64) as usize
        };
        for (i, msg) in messages.iter().enumerate() {
            writeln!(
                w,
                "commit refs/heads/master\nmark :{}\ncommitter Dev <dev@example.org> {} +0000",
                i + 1,
                1_600_000_000 + i
            )
            .ok();
            writeln!(w, "data {}\n{}", msg.len(), msg).ok();
            if i > 0 {
                writeln!(w, "from :{i}").ok();
            }
            let touched = if i == 0 {
                (0..files.len()).collect::<Vec<_>>()
            } else {
                (0..1 + rnd(3)).map(|_| rnd(files.len())).collect()
            };
            for f in touched {
                let func = rnd(20);
                let line = 3 + func * 17 + 2 + rnd(12);
                content[f][line] = format!("\tflags ^= {};", i);
                let body = content[f].join("\n") + "\n";
                writeln!(
                    w,
                    "M 100644 inline {}\ndata {}\n{}",
                    files[f],
                    body.len(),
                    body
                )
                .ok();
            }
            writeln!(w).ok();
        }
    }
    assert!(fi.wait().expect("fast-import").success());
    let t = Instant::now();
    let out = Command::new("git")
        .args(["log", "-p", "--format=%H%n%B", "master"])
        .current_dir(&repo)
        .stdout(Stdio::piped())
        .output()
        .expect("git log");
    let anchor = t.elapsed().as_secs_f64();
    let home = tempfile::tempdir().expect("tmp");
    let mut ix = FixIndex::open_or_create(home.path()).expect("index");
    let s = import_git(&mut ix, &repo, &GitOptions::default(), &mut |_| {}).expect("import");
    let home2 = tempfile::tempdir().expect("tmp");
    let mut ix2 = FixIndex::open_or_create(home2.path()).expect("index");
    let s2 = import_git(
        &mut ix2,
        &repo,
        &GitOptions {
            no_diffs: true,
            ..Default::default()
        },
        &mut |_| {},
    )
    .expect("import");
    println!(
        "commits: {}; git log -p (anchor): {:.2}s ({} MB of output, {:.0} commits/s)",
        messages.len(),
        anchor,
        out.stdout.len() / 1_000_000,
        messages.len() as f64 / anchor
    );
    println!(
        "import --git: {:.2}s = {:.0} commits/s = {:.2}x the anchor's time; {} files diffed",
        s.seconds,
        s.commits_per_second,
        s.seconds / anchor,
        s.files_diffed
    );
    println!(
        "import --git --no-diffs: {:.2}s = {:.0} commits/s",
        s2.seconds, s2.commits_per_second
    );
}
