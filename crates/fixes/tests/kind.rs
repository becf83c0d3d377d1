//! The crash kind steers the ranking: a KASAN use-after-free in `foo` must not rank a NULL-deref
//! fix in `foo` first, and the other way round. Records are written in the CVE 5.x layout of the
//! kernel's vulns repository.

use kmortem_fixes::{CrashQuery, FixIndex, ImportOptions};
use std::path::Path;

fn record(dir: &Path, id: &str, description: &str, files: &[&str]) {
    let v = serde_json::json!({
        "cveMetadata": {"cveId": id},
        "containers": {"cna": {
            "descriptions": [{"lang": "en", "value": description}],
            "affected": [{"programFiles": files, "versions": [
                {"version": "5.10", "status": "affected"},
                {"version": "5.15.3", "lessThanOrEqual": "5.15.*", "status": "unaffected", "versionType": "semver"},
                {"version": "5.16", "lessThanOrEqual": "*", "status": "unaffected", "versionType": "original_commit_for_fix"}
            ]}]
        }}
    });
    std::fs::write(
        dir.join(format!("{id}.json")),
        serde_json::to_vec(&v).unwrap(),
    )
    .unwrap();
}

#[test]
fn crash_kind_orders_fixes_of_the_same_function() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cve/published/2024");
    std::fs::create_dir_all(&dir).unwrap();
    let pre = "In the Linux kernel, the following vulnerability has been resolved:\n\n";
    record(&dir, "CVE-2024-90001", &format!("{pre}net: foo: fix NULL pointer dereference in foo_rx_handler()\n\nfoo_rx_handler() dereferences priv->dev before checking it, which\ncrashes when the device is gone."), &["drivers/net/foo/foo_main.c"]);
    record(&dir, "CVE-2024-90002", &format!("{pre}net: foo: fix use-after-free in foo_rx_handler()\n\nThe skb is freed by foo_rx_complete() while foo_rx_handler() still\nreads it."), &["drivers/net/foo/foo_main.c"]);
    // Unrelated records so that the function terms are rare, as in the real index.
    for i in 0..20 {
        record(
            &dir,
            &format!("CVE-2024-9100{i:02}"),
            &format!(
                "{pre}mm: bar{i}: fix a leak in bar{i}_alloc()\n\nbar{i}_alloc() leaks memory."
            ),
            &["mm/bar.c"],
        );
    }
    let home = tempfile::tempdir().unwrap();
    let mut ix = FixIndex::open_or_create(home.path()).unwrap();
    let st = ix
        .import_cves(tmp.path(), ImportOptions::default())
        .unwrap();
    assert_eq!(st.added, 22);
    let trace = "[   12.000000] Call Trace:\n[   12.000000]  <IRQ>\n[   12.000000]  foo_rx_handler+0x4c/0x210 [foo]\n[   12.000000]  __netif_receive_skb_core+0x3f1/0xe80\n[   12.000000]  net_rx_action+0x147/0x3b0\n";
    let uaf = format!("[   12.000000] BUG: KASAN: use-after-free in foo_rx_handler+0x4c/0x210 [foo]\n[   12.000000] Read of size 4 at addr ffff888012345678 by task swapper/0/0\n{trace}");
    let null = format!("[   12.000000] BUG: kernel NULL pointer dereference, address: 0000000000000010\n[   12.000000] RIP: 0010:foo_rx_handler+0x4c/0x210 [foo]\n{trace}");
    let top = |log: &str| {
        let q = CrashQuery::from_text(log);
        let c = ix.search(&q, 3).unwrap();
        for x in &c {
            println!(
                "{:?} {} {:.2} {:?}",
                x.cve,
                x.subject,
                x.score,
                x.evidence.iter().map(|e| &e.kind).collect::<Vec<_>>()
            );
        }
        c
    };
    let c = top(&uaf);
    assert_eq!(c[0].cve.as_deref(), Some("CVE-2024-90002"));
    // The NULL-deref fix below it carries the disagreement as negative points.
    let other = c
        .iter()
        .find(|x| x.cve.as_deref() == Some("CVE-2024-90001"))
        .expect("the NULL-deref fix is a candidate");
    assert!(other
        .evidence
        .iter()
        .any(|e| e.kind == "kind_differs" && e.weight < 0.0));
    assert!(c[0].evidence.iter().all(|e| e.kind != "kind_differs"));
    let c = top(&null);
    assert_eq!(c[0].cve.as_deref(), Some("CVE-2024-90001"));
    // Versions from the JSON when there is no .dyad: 5.15.2 affected (fixed in 5.15.3).
    let mut q = CrashQuery::from_text(&null);
    q.kernel = Some(kmortem_fixes::identify_kernel("5.15.2", None));
    let v = ix.search(&q, 1).unwrap()[0].verdict.clone().unwrap();
    assert_eq!(
        (v.status.as_str(), v.fixed_in.as_deref()),
        ("affected", Some("5.15.3"))
    );
}
