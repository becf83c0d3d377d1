//! Snapshots of `kmortem oops` as users see it: `--help`, the human output, `--json`, and the
//! error for an unreadable file.

mod common;

use common::kmortem;

#[test]
fn oops_help() {
    let (out, _, code) = kmortem(&["oops", "--help"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!(out);
}

#[test]
fn oops_human_panic_after_oops() {
    let (out, err, code) = kmortem(&["oops", "crates/oops/tests/golden/panic_after_oops.log"]);
    assert_eq!((code, err.as_str()), (0, ""));
    insta::assert_snapshot!(out);
}

#[test]
fn oops_human_interleaved_and_arm64() {
    let (out, _, code) = kmortem(&[
        "oops",
        "crates/oops/tests/golden/interleaved_callers.log",
        "crates/oops/tests/golden/arm64_paging.log",
    ]);
    assert_eq!(code, 0);
    insta::assert_snapshot!(out);
}

#[test]
fn oops_json_is_one_array() {
    let (out, _, code) = kmortem(&[
        "oops",
        "--json",
        "examples/null-deref.log",
        "crates/oops/tests/golden/oom_kill.log",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[0]["kind"], "null_pointer_dereference");
    assert_eq!(arr[0]["source"], "examples/null-deref.log");
    assert_eq!(arr[1]["kind"], "oom");
    let (out, _, _) = kmortem(&["oops", "--json", "README.md"]);
    assert_eq!(out.trim(), "[]");
}

#[test]
fn oops_unreadable_file_is_one_line_error() {
    let (out, err, code) = kmortem(&["oops", "no/such/file.log", "examples/null-deref.log"]);
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no/such/file.log"), "{err}");
    // The readable file is still processed.
    assert!(out.contains("kmlab_estats_update"), "{out}");
}
