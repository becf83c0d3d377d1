//! The git history source, on a repository this test builds with the git CLI from real fix
//! commit messages (CVE descriptions are fix commit messages) and C files whose functions the
//! commits really change.

use kmortem_fixes::git::{import_git, GitOptions};
use kmortem_fixes::record::cve_record;
use kmortem_fixes::{CrashQuery, FixIndex};
use std::path::{Path, PathBuf};
use std::process::Command;

fn vulns() -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/kernel-vulns/cve/published"
    ));
    assert!(
        p.is_dir(),
        "../shared/data/kernel-vulns is missing at {}",
        p.display()
    );
    p
}

fn git(dir: &Path, args: &[&str]) {
    let st = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.org")
        .env("GIT_COMMITTER_NAME", "Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.org")
        .env("GIT_AUTHOR_DATE", "2021-05-20T10:00:00Z")
        .env("GIT_COMMITTER_DATE", "2021-05-20T10:00:00Z")
        .status()
        .expect("git CLI is needed to build the test repository");
    assert!(st.success(), "git {args:?} failed");
}

/// A fix: the commit message of a CVE and the function it changes.
struct Fix {
    message: String,
    file: String,
    function: String,
}

fn load_fixes(ids: &[&str]) -> Vec<Fix> {
    let root = vulns();
    ids.iter()
        .map(|id| {
            let year = &id[4..8];
            let json = std::fs::read(root.join(year).join(format!("{id}.json"))).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
            let desc = v
                .pointer("/containers/cna/descriptions/0/value")
                .and_then(|s| s.as_str())
                .unwrap();
            let msg = desc
                .trim_start()
                .strip_prefix("In the Linux kernel, the following vulnerability has been resolved:")
                .unwrap_or(desc)
                .trim()
                .to_string();
            let e = cve_record(&json, None, None, false).unwrap().entry;
            // The function the fix changes: the first non-generic frame of its quoted trace, else a
            // function its subject names.
            let function = e
                .trace
                .iter()
                .find(|f| !kmortem_oops::line::generic_frame(f))
                .cloned()
                .or_else(|| e.subject_funcs.first().cloned())
                .unwrap_or_else(|| "fix_me".into());
            let file = e
                .files
                .iter()
                .find(|f| f.ends_with(".c"))
                .cloned()
                .unwrap_or_else(|| "kernel/misc.c".into());
            Fix {
                message: msg,
                file,
                function,
            }
        })
        .collect()
}

fn c_file(funcs: &[(&str, usize)]) -> String {
    let mut s = String::from("// SPDX-License-Identifier: GPL-2.0\n#include <linux/kernel.h>\n\n");
    for (f, version) in funcs {
        s.push_str(&format!(
            "static int helper_of_{f}(int x)\n{{\n\treturn x + 1;\n}}\n\n"
        ));
        s.push_str(&format!(
            "int {f}(struct device *dev, int flags)\n{{\n\tint ret = 0;\n\n"
        ));
        for i in 0..12 {
            s.push_str(&format!("\tret += helper_of_{f}({i});\n"));
        }
        for v in 0..*version {
            s.push_str(&format!("\tif (!dev)\n\t\treturn -EINVAL; /* fix {v} */\n"));
        }
        s.push_str("\treturn ret;\n}\n\n");
    }
    s
}

#[test]
fn git_history_import_and_match() {
    // Records with quoted traces of different kinds and subsystems.
    let ids = [
        "CVE-2021-46984",
        "CVE-2022-48869",
        "CVE-2022-48751",
        "CVE-2022-49557",
        "CVE-2022-48752",
    ];
    let fixes = load_fixes(&ids);
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("linux");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "master"]);
    // Base commit: every file with every function, unfixed.
    let write_all = |versions: &[usize]| {
        let mut by_file: std::collections::BTreeMap<&str, Vec<(&str, usize)>> = Default::default();
        for (i, f) in fixes.iter().enumerate() {
            by_file
                .entry(f.file.as_str())
                .or_default()
                .push((f.function.as_str(), versions[i]));
        }
        for (file, funcs) in by_file {
            let p = repo.join(file);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, c_file(&funcs)).unwrap();
        }
    };
    let mut versions = vec![0usize; fixes.len()];
    write_all(&versions);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "Linux 5.12"]);
    git(&repo, &["tag", "v5.12"]);
    // First batch of fixes (the first three), each its own commit with the real message.
    for i in 0..3 {
        versions[i] += 1;
        write_all(&versions);
        git(&repo, &["add", "-A"]);
        let msg = format!("{}\n\nReported-by: syzbot+0123456789abcdef@syzkaller.appspotmail.com\nSigned-off-by: Dev <dev@example.org>\n", fixes[i].message);
        git(&repo, &["commit", "-q", "-m", &msg]);
    }
    let home = tempfile::tempdir().unwrap();
    let mut ix = FixIndex::open_or_create(home.path()).unwrap();
    let mut calls = 0;
    let s1 = import_git(&mut ix, &repo, &GitOptions::default(), &mut |_| calls += 1).unwrap();
    println!("git import 1: {s1:?}");
    assert!(calls >= 1);
    assert_eq!(s1.walked, 4);
    assert_eq!(s1.indexed, 4);
    assert!(!s1.incremental);
    // The touched function of each fix commit comes from the diff.
    for f in &fixes[..3] {
        let q = CrashQuery {
            frames: vec![kmortem_fixes::query::QueryFrame {
                function: f.function.clone(),
                reliable: true,
                generic: false,
                ..Default::default()
            }],
            ..Default::default()
        };
        let got = ix.search(&q, 3).unwrap();
        let top = got.first().expect("a candidate");
        assert!(
            top.entry.touched.contains(&f.function),
            "{} not in touched {:?}",
            f.function,
            top.entry.touched
        );
        assert!(top.entry.files.contains(&f.file));
        assert!(top.entry.syzbot);
    }
    // Incremental: two more fixes; only they are walked.
    for i in 3..5 {
        versions[i] += 1;
        write_all(&versions);
        git(&repo, &["add", "-A"]);
        let msg = format!(
            "{}\n\nSigned-off-by: Dev <dev@example.org>\n",
            fixes[i].message
        );
        git(&repo, &["commit", "-q", "-m", &msg]);
    }
    let mut ix = FixIndex::open_or_create(home.path()).unwrap();
    let s2 = import_git(&mut ix, &repo, &GitOptions::default(), &mut |_| {}).unwrap();
    println!("git import 2: {s2:?}");
    assert!(s2.incremental);
    assert_eq!(s2.walked, 2);
    assert_eq!(ix.len(), 6);
    // --since: nothing before the tag.
    let home2 = tempfile::tempdir().unwrap();
    let mut ix2 = FixIndex::open_or_create(home2.path()).unwrap();
    let s3 = import_git(
        &mut ix2,
        &repo,
        &GitOptions {
            since: Some("v5.12".into()),
            ..Default::default()
        },
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(s3.walked, 5);
    // A console log of the Kyber crash finds the Kyber fix commit first.
    let log = "[ 10.1] UBSAN: array-index-out-of-bounds in kernel/locking/qspinlock.c:130:9\n[ 10.1] Call Trace:\n[ 10.1]  dump_stack+0xa4/0xe5\n[ 10.1]  queued_spin_lock_slowpath+0x476/0x480\n[ 10.1]  do_raw_spin_lock+0x1c2/0x1d0\n[ 10.1]  kyber_bio_merge+0x99/0x180\n[ 10.1]  blk_mq_submit_bio+0x1f5/0x1100\n[ 10.1]  submit_bio_noacct+0x7b0/0x870\n";
    let got = ix.search(&CrashQuery::from_text(log), 3).unwrap();
    assert!(
        got[0].subject.starts_with("kyber:"),
        "{:?}",
        got.iter().map(|c| &c.subject).collect::<Vec<_>>()
    );
    assert_eq!(got[0].commits[0].len(), 40);
    assert!(got[0].evidence.iter().any(|e| e.kind == "touched"));
}
