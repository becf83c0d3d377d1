//! The store against real databases: a SQLite file in a temp dir, and a throwaway PostgreSQL
//! cluster (`scripts/pg-start`, or `KMORTEM_TEST_PG=postgres://...`). The same test body runs on
//! both back ends.

use kmortem_oops::{Kind, Report};
use kmortem_store::{Filter, NewReport, Origin, Purged, Retention, SplitBy, Store};
use std::process::Command;

/// A real parsed report (from the bundled example), relabelled for the test.
fn report(title: &str, signature: &str, kind: Kind, kernel: Option<&str>) -> Report {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/null-deref.log");
    let log = std::fs::read(path).expect("examples/null-deref.log");
    let mut r: Report = kmortem_oops::parse(&log)
        .into_iter()
        .next()
        .expect("the parser finds the example crash");
    r.title = title.into();
    r.signature = signature.into();
    r.kind = kind;
    r.kernel_release = kernel.map(Into::into);
    r
}

fn new(host: &str, t: i64, r: Report, key: Option<&str>) -> NewReport {
    NewReport {
        host: host.into(),
        source: "test".into(),
        received_at: t,
        raw: format!("[ 1.0] {}\n[ 1.1] line two", r.title),
        report: r,
        key: key.map(Into::into),
        origin: Origin::SharedToken,
    }
}

/// A fresh, empty PostgreSQL database on the local throwaway cluster.
pub async fn pg_database(name: &str) -> String {
    let base = match std::env::var("KMORTEM_TEST_PG") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
            let out = Command::new(format!("{root}/scripts/pg-start"))
                .output()
                .expect("cannot run scripts/pg-start");
            assert!(
                out.status.success(),
                "scripts/pg-start failed (PostgreSQL is needed for this test): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        }
    };
    sqlx::any::install_default_drivers();
    use sqlx::Connection as _;
    use sqlx::Executor as _;
    let mut c = sqlx::AnyConnection::connect(&base)
        .await
        .expect("connect to PostgreSQL");
    let db = format!("kmt_{name}_{}", std::process::id());
    c.execute(format!("DROP DATABASE IF EXISTS {db}").as_str())
        .await
        .unwrap();
    c.execute(format!("CREATE DATABASE {db}").as_str())
        .await
        .unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{db}")
}

async fn exercise(db: &str) {
    let store = Store::open(db).await.expect("open store");
    // Re-opening runs no migration twice.
    let store2 = Store::open(db).await.expect("reopen store");
    store2.close().await;

    let null = report(
        "BUG: unable to handle kernel NULL pointer dereference in kmlab_estats_update",
        "kmlab_estats_update|kmlab_trigger_write",
        Kind::NullPointerDereference,
        Some("6.1.0-46-cloud-amd64"),
    );
    let warn = report(
        "WARNING in foo_bar",
        "foo_bar",
        Kind::Warning,
        Some("6.1.0-43-cloud-amd64"),
    );
    let day = 86_400_000;
    let t0 = 1_763_700_000_000; // 2025-11-21
    let ins = store
        .insert_batch(&[
            new("web-1", t0, null.clone(), Some("k1")),
            new("web-2", t0 + 3_600_000, null.clone(), None),
            new(
                "db-1'; DROP TABLE reports; --",
                t0 + day,
                warn.clone(),
                None,
            ),
        ])
        .await
        .unwrap();
    assert_eq!(ins.len(), 3);
    assert!(ins[0].new_group && !ins[1].new_group && ins[2].new_group);
    assert_eq!(ins[0].group, ins[1].group);
    assert_ne!(ins[0].group, ins[2].group);
    // Same key again: nothing new is stored, the earlier ids come back.
    let again = store
        .insert_batch(&[new("web-1", t0, null.clone(), Some("k1"))])
        .await
        .unwrap();
    assert!(again[0].duplicate);
    assert_eq!(again[0].report, ins[0].report);
    assert_eq!(store.report_count().await.unwrap(), 3);

    let groups = store.groups(&Filter::default(), 100, 0).await.unwrap();
    assert_eq!(groups.len(), 2);
    // Most recently seen first.
    assert_eq!(groups[0].title, "WARNING in foo_bar");
    assert_eq!(
        groups[0].hosts,
        vec!["db-1'; DROP TABLE reports; --".to_string()]
    );
    let g = &groups[1];
    assert_eq!(g.count, 2);
    assert_eq!(g.hosts, vec!["web-1".to_string(), "web-2".to_string()]);
    assert_eq!(g.kernels, vec!["6.1.0-46-cloud-amd64".to_string()]);
    assert_eq!(g.first_seen, "2025-11-21T04:40:00.000Z");
    assert_eq!(g.last_seen, "2025-11-21T05:40:00.000Z");

    // Filters.
    let f = Filter {
        host: Some("web-2".into()),
        ..Default::default()
    };
    let gs = store.groups(&f, 100, 0).await.unwrap();
    assert_eq!((gs.len(), gs[0].count), (1, 1));
    let f = Filter {
        kind: Some("warning".into()),
        ..Default::default()
    };
    assert_eq!(store.groups(&f, 100, 0).await.unwrap()[0].id, ins[2].group);
    let f = Filter {
        since: Some(t0 + 1),
        until: Some(t0 + day),
        ..Default::default()
    };
    let rs = store.reports(&f, None, 100).await.unwrap();
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].host, "web-2");

    // Pagination: newest first, cursor on id.
    let page1 = store.reports(&Filter::default(), None, 2).await.unwrap();
    assert_eq!(page1.len(), 2);
    let page2 = store
        .reports(&Filter::default(), Some(page1[1].id), 2)
        .await
        .unwrap();
    assert_eq!(page2.len(), 1);
    assert!(page2[0].id < page1[1].id);
    assert_eq!(
        store.groups(&Filter::default(), 1, 1).await.unwrap()[0].id,
        ins[0].group
    );

    // One report with its parsed record.
    let full = store.report(ins[0].report).await.unwrap().unwrap();
    assert_eq!(full.parsed, null);
    assert!(full.row.raw.starts_with("[ 1.0] BUG: unable"));
    assert!(store.report(999_999).await.unwrap().is_none());

    // Timeline per day, split by host and by group.
    let tl = store
        .timeline(&Filter::default(), day, SplitBy::Host)
        .await
        .unwrap();
    assert_eq!(tl.len(), 3, "{tl:?}");
    assert_eq!(tl[0].start, "2025-11-21T00:00:00.000Z");
    let tl = store
        .timeline(&Filter::default(), day, SplitBy::Group)
        .await
        .unwrap();
    assert_eq!(tl.iter().map(|b| b.count).sum::<i64>(), 3);
    assert_eq!(tl[0].key, ins[0].group.to_string());
    assert_eq!(tl[0].count, 2);
    let facets = store.facets().await.unwrap();
    assert_eq!(facets.kernels.len(), 2);
    assert_eq!(
        store
            .count_since(ins[0].group, t0 + 1, i64::MAX)
            .await
            .unwrap(),
        1
    );
    // NUL bytes (valid UTF-8, but not storable in PostgreSQL TEXT) do not fail the batch.
    let mut nul = new("web-1", t0, warn.clone(), None);
    nul.raw = "[ 1.0] WARNING: \0 in the log".into();
    let ins_nul = store.insert_batch(&[nul]).await.unwrap();
    let full = store.report(ins_nul[0].report).await.unwrap().unwrap();
    assert_eq!(full.row.raw, "[ 1.0] WARNING: \u{fffd} in the log");
    let f = Filter {
        host: Some("web-1".into()),
        kind: Some("warning".into()),
        ..Default::default()
    };
    assert_eq!(store.reports(&f, None, 10).await.unwrap().len(), 1);
    store.insert_batch(&[]).await.unwrap();
    // A big mixed batch: several groups, a key repeated within the batch, ids in row order.
    let mut batch = Vec::new();
    for i in 0..450i64 {
        let r = if i % 3 == 0 {
            null.clone()
        } else {
            report(
                &format!("WARNING in f{}", i % 7),
                &format!("f{}", i % 7),
                Kind::Warning,
                None,
            )
        };
        let key = if i % 50 == 0 { Some("same-key") } else { None };
        let mut nr = new(&format!("h{i}"), t0 + 2 * day + i, r, key);
        nr.raw = format!("row {i}");
        batch.push(nr);
    }
    let ins = store.insert_batch(&batch).await.unwrap();
    assert_eq!(ins.len(), 450);
    assert_eq!(
        ins.iter().filter(|i| i.duplicate).count(),
        8,
        "the key repeats 9 times"
    );
    assert_eq!(
        ins.iter().filter(|i| i.new_group).count(),
        7,
        "f0..f6 are new groups"
    );
    for (i, ins) in ins.iter().enumerate().filter(|(_, x)| !x.duplicate) {
        let full = store.report(ins.report).await.unwrap().unwrap();
        assert_eq!(full.row.raw, format!("row {i}"));
        assert_eq!(full.row.host, format!("h{i}"));
        assert_eq!(full.row.group, ins.group);
    }
    // The origin is stored and read back.
    let mut nc = new("10.1.2.3", t0, warn.clone(), None);
    nc.origin = Origin::Unauthenticated;
    let id = store.insert_batch(&[nc]).await.unwrap()[0].report;
    let full = store.report(id).await.unwrap().unwrap();
    assert_eq!(full.row.origin, "unauthenticated");
    assert_eq!(rs[0].origin, "shared_token");
    println!("store on {:?}: ok", store.backend());
    store.close().await;
    retention(db).await;
    alert_claims(db).await;
}

/// Retention on a fresh table: age alone, age with each group's first and last N kept, and the
/// per-group cap alone; the bytes freed are those of the rows' text.
async fn retention(db: &str) {
    let store = Store::open(db).await.unwrap();
    // Start from an empty table (the exercise above left reports behind).
    let all = Retention {
        max_age_ms: Some(-1_000_000_000_000_000),
        keep_per_group: None,
    };
    store.purge(&all, 0).await.unwrap();
    assert_eq!(store.report_count().await.unwrap(), 0);
    let day = 86_400_000;
    let now = 1_800_000_000_000;
    let a = report(
        "WARNING in aa",
        "aa",
        Kind::Warning,
        Some("5.15.0-91-generic"),
    );
    let b = report(
        "WARNING in bb",
        "bb",
        Kind::Warning,
        Some("6.11.5+bpo-cloud-amd64"),
    );
    // Group aa: 10 reports, days 0..9 old (the oldest first); group bb: 3 reports, 300 days old.
    let mut batch = Vec::new();
    for i in 0..10 {
        batch.push(new("h", now - (300 - i) * day, a.clone(), None));
    }
    for i in 0..3 {
        batch.push(new("h", now - 300 * day + i, b.clone(), None));
    }
    for i in 0..10 {
        let mut r = new("h", now - (9 - i) * day, a.clone(), None);
        r.raw = "x".repeat(100);
        batch.push(r);
    }
    store.insert_batch(&batch).await.unwrap();
    assert_eq!(store.report_count().await.unwrap(), 23);
    // Nothing to do without a policy.
    assert_eq!(
        store.purge(&Retention::default(), now).await.unwrap(),
        Purged::default()
    );
    // 180 days, keep the first and last 2 of each group: aa loses its 8 old middle reports
    // (its 2 first stay); bb keeps all 3 (its first 2 and last 2 cover it).
    let p = Retention {
        max_age_ms: Some(180 * day),
        keep_per_group: Some(2),
    };
    let got = store.purge(&p, now).await.unwrap();
    assert_eq!(got.reports, 8, "{got:?}");
    assert!(
        got.bytes > 8 * 1000,
        "{got:?}: a report's raw text and JSON"
    );
    assert_eq!(store.report_count().await.unwrap(), 15);
    // Again: nothing more.
    assert_eq!(store.purge(&p, now).await.unwrap().reports, 0);
    // The cap alone: aa keeps 2 + 2 of its 12, bb its 3.
    let cap = Retention {
        max_age_ms: None,
        keep_per_group: Some(2),
    };
    assert_eq!(store.purge(&cap, now).await.unwrap().reports, 8);
    assert_eq!(store.report_count().await.unwrap(), 7);
    // Age alone: everything older than 180 days goes (aa's 2 first, bb's 3).
    let age = Retention {
        max_age_ms: Some(180 * day),
        keep_per_group: None,
    };
    let got = store.purge(&age, now).await.unwrap();
    assert_eq!(got.reports, 5, "{got:?}");
    let left = store.reports(&Filter::default(), None, 100).await.unwrap();
    assert!(left.iter().all(|r| r.title == "WARNING in aa"), "{left:?}");
    println!("retention on {:?}: ok, last purge {got:?}", store.backend());
    store.close().await;
}

async fn alert_claims(db: &str) {
    let store = Store::open(db).await.unwrap();
    let hour = 3_600_000;
    assert!(store.claim_alert("storm", 7, 1000, hour).await.unwrap());
    assert!(!store.claim_alert("storm", 7, 2000, hour).await.unwrap());
    assert!(store.claim_alert("storm", 8, 2000, hour).await.unwrap());
    assert!(store.claim_alert("other", 7, 2000, hour).await.unwrap());
    assert!(store
        .claim_alert("storm", 7, 1000 + hour, hour)
        .await
        .unwrap());
    assert!(!store
        .claim_alert("storm", 7, 1500 + hour, hour)
        .await
        .unwrap());
    store.close().await;
}

#[tokio::test]
async fn sqlite_store() {
    let dir = std::env::temp_dir().join(format!("kmortem-store-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = dir.join("sub dir/kmortem.db");
    exercise(db.to_str().unwrap()).await;
    assert!(db.exists());
    // A new database gets 16 KiB pages (the file header's page size, big-endian at offset 16).
    let head = std::fs::read(&db).unwrap();
    assert_eq!(u16::from_be_bytes([head[16], head[17]]), 16384);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn postgres_store() {
    let url = pg_database("store").await;
    exercise(&url).await;
}

/// Two stores (two connection pools, as two `kmortem serve` replicas have) on one PostgreSQL
/// database, starting together (one migrates, the other waits) and storing 4,000 reports at
/// once: 20 titles, every group created by whichever writer is first, every third report sent
/// by both writers under one key. One group per title, no report lost, none stored twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_store_concurrently() {
    let url = pg_database("replicas").await;
    let (a, b) = tokio::join!(Store::open(&url), Store::open(&url));
    let (a, b) = (a.unwrap(), b.unwrap());
    let tpl = report("x", "x", Kind::Warning, Some("5.15.0-91-generic"));
    fn mk(tpl: &Report, i: usize) -> NewReport {
        let mut r = tpl.clone();
        r.title = format!("WARNING in f{}", i % 20);
        r.signature = format!("f{}", i % 20);
        let mut n = new(&format!("h{i}"), 1_800_000_000_000 + i as i64, r, None);
        n.key = Some(format!("k{i}"));
        n.raw = format!("report {i}");
        n
    }
    let writer = |s: Store, part: usize, tpl: Report| async move {
        let mut ins = Vec::new();
        // Batches of 25, in opposite orders from the two writers; writer 0 sends 0..3000,
        // writer 1 sends 1000..4000 (1000..3000 by both).
        let ids: Vec<usize> = if part == 0 {
            (0..3000).collect()
        } else {
            (1000..4000).rev().collect()
        };
        for chunk in ids.chunks(25) {
            let batch: Vec<NewReport> = chunk.iter().map(|&i| mk(&tpl, i)).collect();
            ins.extend(s.insert_batch(&batch).await.unwrap());
        }
        ins
    };
    let (ia, ib) = tokio::join!(
        tokio::spawn(writer(a.clone(), 0, tpl.clone())),
        tokio::spawn(writer(b.clone(), 1, tpl.clone()))
    );
    let (ia, ib) = (ia.unwrap(), ib.unwrap());
    let new_groups = ia.iter().chain(&ib).filter(|i| i.new_group).count();
    let dups = ia.iter().chain(&ib).filter(|i| i.duplicate).count();
    println!(
        "replicas: {} + {} answers, {new_groups} new groups, {dups} duplicates",
        ia.len(),
        ib.len()
    );
    assert_eq!(new_groups, 20, "one first-seen per title");
    assert_eq!(dups, 2000, "every report sent twice is stored once");
    assert_eq!(a.report_count().await.unwrap(), 4000);
    let groups = a.groups(&Filter::default(), 1000, 0).await.unwrap();
    assert_eq!(groups.len(), 20);
    assert!(groups.iter().all(|g| g.count == 200), "{groups:?}");
    let mut seen = std::collections::HashSet::new();
    let mut before = None;
    loop {
        let page = a.reports(&Filter::default(), before, 1000).await.unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|r| r.id);
        for r in page {
            assert!(seen.insert(r.raw.clone()), "stored twice: {}", r.raw);
        }
    }
    assert_eq!(seen.len(), 4000);
    // Alerts: both claim the same event, one wins.
    let (ca, cb) = tokio::join!(
        a.claim_alert("new", 1, 5, i64::MAX / 4),
        b.claim_alert("new", 1, 5, i64::MAX / 4)
    );
    assert!(ca.unwrap() ^ cb.unwrap(), "exactly one replica fires");
    a.close().await;
    b.close().await;
}
