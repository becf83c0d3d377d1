//! `kmortem explain` as users see it: `--help`, and the text output on two lab scenarios
//! (KASLR-independent: `null_deref_nokaslr`, and `estats_null` whose output holds no runtime
//! kernel address), plus `--json` with a vmcore.

mod common;

use common::{kmortem, run};

fn lab() -> &'static kmortem_lab::Lab {
    kmortem_lab::Lab::get().unwrap_or_else(|e| panic!("crash lab unavailable: {e}"))
}

/// Paths of the lab differ between machines: keep only the file names.
fn redact(s: &str, sc: &kmortem_lab::Scenario) -> String {
    let dir = sc
        .meta
        .kmlab_ko
        .parent()
        .expect("module dir")
        .display()
        .to_string();
    s.replace(&dir, "<module-dir>")
}

fn explain(name: &str, extra: &[&str]) -> (String, kmortem_lab::Scenario) {
    let sc = lab().scenario(name).expect("scenario");
    let log = sc.console_log().display().to_string();
    let v = sc.meta.vmlinux.display().to_string();
    let m = sc
        .meta
        .kmlab_ko
        .parent()
        .expect("dir")
        .display()
        .to_string();
    let mut args = vec![
        "explain",
        log.as_str(),
        "--vmlinux",
        &v,
        "--modules",
        &m,
        "--no-system",
    ];
    args.extend_from_slice(extra);
    // No fixes index: the known-bug link must not change the snapshots.
    let home = std::ffi::OsStr::new("/nonexistent/kmortem-home");
    let (out, err, code) = run(&args, &[("KMORTEM_HOME", home)], None);
    assert_eq!(code, 0, "{err}");
    (out, sc)
}

#[test]
fn explain_help() {
    let (out, _, code) = kmortem(&["explain", "--help"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!(out);
}

#[test]
fn explain_null_deref_nokaslr() {
    let (out, sc) = explain("null_deref_nokaslr", &[]);
    assert!(out.contains("`dev` is NULL"), "{out}");
    insta::assert_snapshot!(redact(&out, &sc));
}

#[test]
fn explain_estats_null() {
    let (out, sc) = explain("estats_null", &[]);
    assert!(out.contains("`stats` (= `sk->estats`) is NULL"), "{out}");
    insta::assert_snapshot!(redact(&out, &sc));
}

#[test]
fn explain_json_with_vmcore() {
    let sc = lab().scenario("wrong_cpu_index").expect("scenario");
    let core = sc.dump("kdump-zlib").expect("vmcore").display().to_string();
    let (out, _) = explain("wrong_cpu_index", &["--core", &core, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let f = &v["reports"][0]["findings"];
    assert_eq!(f[0]["kind"], "array_index", "{out}");
    assert_eq!(f[0]["confidence"], "high");
    assert_eq!(f[0]["facts"]["index"], "64");
    assert!(f[0]["evidence"].as_array().is_some_and(|e| !e.is_empty()));
    assert!(f
        .as_array()
        .expect("findings")
        .iter()
        .any(|x| x["kind"] == "bad_pointer" && x["facts"]["derived_from"] == "kcq"));
}

#[test]
fn explain_links_known_fixes_when_an_index_exists() {
    let vulns = common::kyber_vulns_tree();
    let home = tempfile::tempdir().unwrap();
    let env = [("KMORTEM_HOME", home.path().as_os_str())];
    let (_, err, code) = run(
        &["fixes", "import", vulns.path().to_str().unwrap()],
        &env,
        None,
    );
    assert_eq!(code, 0, "{err}");
    let (out, err, code) = run(
        &[
            "explain",
            "crates/cli/tests/explain/kyber_lockup.log",
            "--no-system",
            "--json",
        ],
        &env,
        None,
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let fixes: Vec<&serde_json::Value> = v["reports"]
        .as_array()
        .expect("reports")
        .iter()
        .flat_map(|r| r["findings"].as_array().into_iter().flatten())
        .filter(|f| f["kind"] == "known_fix")
        .collect();
    println!("known_fix findings on seed 002: {}", fixes.len());
    assert!(
        fixes.iter().any(|f| f["facts"]["cve"] == "CVE-2021-46984"),
        "{out}"
    );
    assert!(fixes.iter().all(|f| f["confidence"] == "low"));
}
