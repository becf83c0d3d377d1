//! Snapshots of `kmortem fixes` as users see it: `--help`, an import of a few real CVE records
//! into a fresh $KMORTEM_HOME, and seed 002's Kyber story as a query (human and `--json`).

mod common;

use std::path::Path;

use common::shared;

fn kmortem(home: &Path, args: &[&str]) -> (String, String, i32) {
    common::run(args, &[("KMORTEM_HOME", home.as_os_str())], None)
}

#[test]
fn fixes_help() {
    let home = tempfile::tempdir().unwrap();
    let (out, _, code) = kmortem(home.path(), &["fixes", "--help"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!(out);
}

#[test]
fn fixes_import_and_query_seed_002() {
    // A small vulns tree: the twenty records around the Kyber one.
    let vulns = common::kyber_vulns_tree();
    let dst = vulns.path().join("cve/published/2021");
    let home = tempfile::tempdir().unwrap();
    let (out, err, code) = kmortem(
        home.path(),
        &["fixes", "import", vulns.path().to_str().unwrap(), "--json"],
    );
    assert_eq!(code, 0, "{err}");
    let stats: serde_json::Value = serde_json::from_str(&out).unwrap();
    let copied = std::fs::read_dir(&dst)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .count();
    assert!(copied >= 15);
    assert_eq!(stats["added"], copied);
    let seed = std::fs::read_dir(shared().join("seeds"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("002"))
        .unwrap()
        .path();
    let seed = seed.to_str().unwrap();
    let (out, err, code) = kmortem(
        home.path(),
        &["fixes", seed, "--kernel", "5.12.0", "--top", "2"],
    );
    assert_eq!(code, 0, "{err}");
    insta::assert_snapshot!(out);
    let (out, _, code) = kmortem(
        home.path(),
        &["fixes", seed, "--kernel", "5.12.0", "--top", "1", "--json"],
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["cve"], "CVE-2021-46984");
    assert_eq!(v[0]["verdict"]["status"], "affected");
    assert_eq!(v[0]["verdict"]["fixed_in"], "5.12.5");
    // Evidence per candidate, and score parts that add up to the score.
    let parts = v[0]["score_parts"].as_object().unwrap();
    let sum: f64 = parts.values().map(|x| x.as_f64().unwrap()).sum();
    assert!(
        (sum - v[0]["score"].as_f64().unwrap()).abs() < 0.05,
        "{parts:?}"
    );
    let ev = v[0]["evidence"].as_array().unwrap();
    assert!(ev.iter().any(|e| e["type"] == "guilty_text"), "{ev:?}");
    for e in ev {
        let (t, w) = (e["type"].as_str().unwrap(), e["weight"].as_f64().unwrap());
        assert!(e["value"].is_number() && w != 0.0, "{e}");
        assert!((parts[t].as_f64().unwrap() - w).abs() < 0.01, "{t}");
    }
    insta::assert_json_snapshot!(v);
    // No index: a clear error.
    let empty = tempfile::tempdir().unwrap();
    let (_, err, code) = kmortem(empty.path(), &["fixes", seed]);
    assert_eq!(code, 2);
    assert!(err.contains("kmortem fixes import"), "{err}");
}

/// One line on stderr, exit code 2, no panic.
fn one_line_error(err: &str, code: i32, want: &str) {
    assert_eq!(code, 2, "exit code {code}, stderr {err:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(want), "{err:?} lacks {want:?}");
}

#[test]
fn fixes_bad_input_gets_one_line() {
    let vulns = common::kyber_vulns_tree();
    let home = tempfile::tempdir().unwrap();
    let (_, err, code) = kmortem(
        home.path(),
        &["fixes", "import", vulns.path().to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    // A report with no frames, a non-kernel log, an empty file.
    for (name, text) in [
        (
            "noframes.log",
            "[   10.000000] Oops: something odd happened\n[   10.000001] all quiet after that\n",
        ),
        (
            "python.log",
            "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nValueError: bad\n",
        ),
        ("empty.log", ""),
    ] {
        let f = write(name, text);
        let (out, err, code) = kmortem(home.path(), &["fixes", &f]);
        assert!(out.is_empty(), "{name}: {out}");
        one_line_error(&err, code, "no kernel crash in the input");
        let (_, err, code) = kmortem(home.path(), &["fixes", &f, "--json"]);
        one_line_error(&err, code, "no kernel crash in the input");
    }
    // A title without its frames still matches on the title's function.
    let f = write(
        "title.log",
        "[  1.0] BUG: KASAN: use-after-free in kyber_bio_merge\n",
    );
    let (out, err, code) = kmortem(home.path(), &["fixes", &f, "--top", "1", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["cve"], "CVE-2021-46984", "{out}");
    let seed = write(
        "kyber.log",
        "[  1.0] BUG: KASAN: use-after-free in kyber_bio_merge+0x12/0x180\n[  1.0] Call Trace:\n[  1.0]  kyber_bio_merge+0x12/0x180\n[  1.0]  blk_mq_submit_bio+0x1/0x2\n",
    );
    // An empty index: a vulns tree with no records.
    let empty_tree = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(empty_tree.path().join("cve/published/2024")).unwrap();
    let empty_home = tempfile::tempdir().unwrap();
    let (out, err, code) = kmortem(
        empty_home.path(),
        &["fixes", "import", empty_tree.path().to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("0 records"), "{out}");
    let (_, err, code) = kmortem(empty_home.path(), &["fixes", &seed]);
    one_line_error(&err, code, "is empty");
    // Not a vulns tree.
    let (_, err, code) = kmortem(
        empty_home.path(),
        &["fixes", "import", dir.path().to_str().unwrap()],
    );
    one_line_error(&err, code, "not a kernel vulns repository");
    // Corrupt index directories: garbage meta.json, a truncated segment, a bad manifest.
    let copy = |from: &Path, to: &Path| {
        let st = std::process::Command::new("cp")
            .args(["-r", from.to_str().unwrap(), to.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(st.success());
    };
    let bad = tempfile::tempdir().unwrap();
    let h1 = bad.path().join("meta");
    copy(home.path(), &h1);
    std::fs::write(h1.join("fixes/tantivy/meta.json"), b"{ not json").unwrap();
    let (_, err, code) = kmortem(&h1, &["fixes", &seed]);
    one_line_error(&err, code, "damaged");
    let h2 = bad.path().join("segments");
    copy(home.path(), &h2);
    for e in std::fs::read_dir(h2.join("fixes/tantivy"))
        .unwrap()
        .flatten()
    {
        let p = e.path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".store") || name.ends_with(".term") || name.ends_with(".idx") {
            let len = std::fs::metadata(&p).unwrap().len();
            let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            f.set_len(len / 3).unwrap();
        }
    }
    let (_, err, code) = kmortem(&h2, &["fixes", &seed]);
    one_line_error(&err, code, "damaged");
    let h3 = bad.path().join("manifest");
    copy(home.path(), &h3);
    std::fs::write(h3.join("fixes/manifest.json"), b"[1, 2").unwrap();
    let (_, err, code) = kmortem(&h3, &["fixes", &seed]);
    one_line_error(&err, code, "manifest");
}

#[test]
fn fixes_import_of_a_partly_broken_tree_lists_what_it_skipped() {
    let vulns = common::kyber_vulns_tree();
    let dst = vulns.path().join("cve/published/2021");
    let good = std::fs::read_dir(&dst)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .count();
    // Break three records: cut JSON, no description, a bad .dyad (imported without it).
    let cut = dst.join("CVE-2021-46980.json");
    let text = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &text[..text.len() / 2]).unwrap();
    std::fs::write(
        dst.join("CVE-2021-46981.json"),
        br#"{"cveMetadata": {"cveId": "CVE-2021-46981"}, "containers": {"cna": {}}}"#,
    )
    .unwrap();
    std::fs::write(dst.join("CVE-2021-46984.dyad"), "5.12:zz:5.12.5\n").unwrap();
    // And a file that is no record at all.
    std::fs::write(dst.join("README.json"), "{}").unwrap();
    let home = tempfile::tempdir().unwrap();
    let (out, err, code) = kmortem(
        home.path(),
        &["fixes", "import", vulns.path().to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    println!("{out}");
    assert!(
        out.contains(&format!("{good} records, {} added", good - 2)),
        "{out}"
    );
    assert!(out.contains("2 skipped"), "{out}");
    assert!(
        out.contains("skipped CVE-2021-46980: invalid JSON"),
        "{out}"
    );
    assert!(
        out.contains("skipped CVE-2021-46981: record has no description"),
        "{out}"
    );
    assert!(
        out.contains("imported CVE-2021-46984 in part: .dyad ignored"),
        "{out}"
    );
    // The imported records answer queries; the broken dyad's record has its JSON versions.
    let (out, err, code) = kmortem(
        home.path(),
        &["fixes", "import", vulns.path().to_str().unwrap(), "--json"],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["skipped"].as_array().unwrap().len(), 2, "{out}");
    let seed = std::fs::read_dir(shared().join("seeds"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("002"))
        .unwrap()
        .path();
    let (out, err, code) = kmortem(
        home.path(),
        &[
            "fixes",
            seed.to_str().unwrap(),
            "--kernel",
            "5.12.0",
            "--json",
            "--top",
            "1",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["cve"], "CVE-2021-46984");
    assert_eq!(v[0]["verdict"]["status"], "affected");
}
