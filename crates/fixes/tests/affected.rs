//! "Am I affected?" on five real records, each verdict checked by hand against the record's
//! `.dyad` lines (quoted above each table), across stable branches: introductions by backport,
//! fixes on some branches only, a branch that never got the fix, an unknown introduction, and
//! -rc kernels. Reads `../shared/data/kernel-vulns` (no index needed).

use kmortem_fixes::record::cve_record;
use kmortem_fixes::{identify_kernel, verdict, Entry};
use std::path::PathBuf;

fn vulns() -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/kernel-vulns/cve/published"
    ));
    assert!(
        p.is_dir(),
        "../shared/data/kernel-vulns is missing (expected at {}): the verdict tests read real records from there",
        p.display()
    );
    p
}

fn record(id: &str, with_dyad: bool) -> Entry {
    let year = id.split('-').nth(1).unwrap();
    let dir = vulns().join(year);
    let json = std::fs::read(dir.join(format!("{id}.json"))).unwrap();
    let dyad = with_dyad.then(|| std::fs::read_to_string(dir.join(format!("{id}.dyad"))).unwrap());
    cve_record(&json, None, dyad.as_deref(), false)
        .unwrap()
        .entry
}

/// (kernel, status, fixed_in for `affected` / the covering fix for `fixed`)
fn check(id: &str, e: &Entry, table: &[(&str, &str, Option<&str>)]) {
    for (k, status, fixed_in) in table {
        let v = verdict(&identify_kernel(k, None), &e.ranges);
        println!("{id} {k}: {} {:?} ({})", v.status, v.fixed_in, v.reason);
        assert_eq!(v.status, *status, "{id} on {k}: {}", v.reason);
        if status == &"affected" || fixed_in.is_some() {
            assert_eq!(
                v.fixed_in.as_deref(),
                *fixed_in,
                "{id} on {k}: {}",
                v.reason
            );
        }
    }
}

#[test]
fn kyber_mainline_intro_stable_fixes() {
    // CVE-2021-46984: 4.18:a608..:5.4.120 / 5.10.38 / 5.11.22 / 5.12.5, 4.18:a608..:5.13:efed..
    let id = "CVE-2021-46984";
    check(
        id,
        &record(id, true),
        &[
            ("4.17.5", "not affected", None),
            ("4.18-rc4", "affected", Some("5.13")),
            ("4.19.100", "affected", Some("5.13")),
            ("5.4.119", "affected", Some("5.4.120")),
            ("5.4.120", "fixed", Some("5.4.120")),
            ("5.10.37", "affected", Some("5.10.38")),
            ("5.12.4", "affected", Some("5.12.5")),
            ("5.13-rc3", "affected", Some("5.13")),
            ("5.13", "fixed", Some("5.13")),
            ("6.1.10", "fixed", Some("5.13")),
        ],
    );
}

#[test]
fn tcindex_introduced_by_backports_fixed_in_the_same_mainline_release() {
    // CVE-2020-36791: 4.4.214->4.4.218, 4.9.214->4.9.218, 4.14.171->4.14.175,
    // 4.19.103->4.19.114, 5.4.19->5.4.29, 5.5.3->5.5.14, 5.6->5.6 (syzbot crashed 5.6.0-rc6).
    let id = "CVE-2020-36791";
    check(
        id,
        &record(id, true),
        &[
            ("4.4.213", "not affected", None),
            ("4.4.215", "affected", Some("4.4.218")),
            ("4.4.218", "fixed", Some("4.4.218")),
            ("4.19.113", "affected", Some("4.19.114")),
            ("4.20", "not affected", None),
            ("5.4.18", "not affected", None),
            ("5.5.2", "not affected", None),
            ("5.5.13", "affected", Some("5.5.14")),
            ("5.6.0-rc6-syzkaller", "affected", Some("5.6")),
            ("5.6", "fixed", Some("5.6")),
            ("5.6.1", "fixed", Some("5.6")),
        ],
    );
}

#[test]
fn branch_that_never_got_the_fix() {
    // CVE-2024-26581: 4.19.316->4.19.316 (introduced and fixed in one release), 5.4.262->5.4.269,
    // 5.10.190->5.10.210, 5.15.124->5.15.149, 6.1.43->6.1.78, 6.5->6.6.17 / 6.7.5 / 6.8,
    // 6.4.8:..:0:0 (the 6.4 branch never got the fix).
    let id = "CVE-2024-26581";
    check(
        id,
        &record(id, true),
        &[
            ("4.19.315", "not affected", None),
            ("4.19.316", "fixed", Some("4.19.316")),
            ("5.10.189", "not affected", None),
            ("5.10.190", "affected", Some("5.10.210")),
            ("5.10.210", "fixed", Some("5.10.210")),
            ("6.2.10", "not affected", None),
            ("6.4.7", "not affected", None),
            ("6.4.8", "affected", Some("6.8")),
            ("6.5.2", "affected", Some("6.8")),
            ("6.6.16", "affected", Some("6.6.17")),
            ("6.7.5", "fixed", Some("6.7.5")),
            ("6.8", "fixed", Some("6.8")),
        ],
    );
}

#[test]
fn unknown_introduction() {
    // CVE-2022-49420: 0:0:5.18.3, 0:0:5.19 (introduction unknown: every older kernel may have it).
    let id = "CVE-2022-49420";
    check(
        id,
        &record(id, true),
        &[
            ("5.18.1", "affected", Some("5.18.3")),
            ("5.18.3", "fixed", Some("5.18.3")),
            ("5.15.30", "affected", Some("5.19")),
            ("5.19", "fixed", Some("5.19")),
        ],
    );
}

#[test]
fn stable_intro_never_fixed_and_mainline_intro() {
    // CVE-2023-4515: 5.15.121->5.15.127, 6.1.36->6.1.46, 6.4->6.4.11, 6.4->6.5, 6.3.10:..:0:0.
    let id = "CVE-2023-4515";
    check(
        id,
        &record(id, true),
        &[
            ("5.15.120", "not affected", None),
            ("5.15.126", "affected", Some("5.15.127")),
            ("6.1.45", "affected", Some("6.1.46")),
            ("6.2.5", "not affected", None),
            ("6.3.9", "not affected", None),
            ("6.3.12", "affected", Some("6.5")),
            ("6.4-rc1", "affected", Some("6.4.11")),
            ("6.4.10", "affected", Some("6.4.11")),
            ("6.4.11", "fixed", Some("6.4.11")),
            ("6.5-rc2", "affected", Some("6.5")),
            ("6.5", "fixed", Some("6.5")),
        ],
    );
}

#[test]
fn json_versions_agree_with_the_dyad() {
    // CVE-2020-36777 without its .dyad: the JSON's semver entries (affected from 4.5, unaffected
    // from 4.9.269 / 4.14.233 / 4.19.191 / 5.4.118 / 5.10.36 / 5.11.20 / 5.12.3, 5.13) give the
    // same verdicts as the dyad.
    let id = "CVE-2020-36777";
    let (j, d) = (record(id, false), record(id, true));
    for k in [
        "4.4.100", "4.9.268", "4.9.269", "4.19.190", "5.10.35", "5.12.2", "5.12.3", "5.13-rc1",
        "5.13", "6.1.1",
    ] {
        let kid = identify_kernel(k, None);
        let (a, b) = (verdict(&kid, &j.ranges), verdict(&kid, &d.ranges));
        assert_eq!(
            (&a.status, &a.fixed_in),
            (&b.status, &b.fixed_in),
            "{k}: JSON {} / dyad {}",
            a.reason,
            b.reason
        );
    }
    let v = verdict(&identify_kernel("5.10.35", None), &d.ranges);
    assert_eq!(
        (v.status.as_str(), v.fixed_in.as_deref()),
        ("affected", Some("5.10.36"))
    );
    let v = verdict(&identify_kernel("4.14.100", None), &d.ranges);
    assert_eq!(
        (v.status.as_str(), v.fixed_in.as_deref()),
        ("affected", Some("4.14.233"))
    );
    assert_eq!(
        verdict(&identify_kernel("4.4.100", None), &d.ranges).status,
        "not affected"
    );
}
