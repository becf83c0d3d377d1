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
    insta::assert_json_snapshot!(v);
    // No index: a clear error.
    let empty = tempfile::tempdir().unwrap();
    let (_, err, code) = kmortem(empty.path(), &["fixes", seed]);
    assert_eq!(code, 2);
    assert!(err.contains("kmortem fixes import"), "{err}");
}
