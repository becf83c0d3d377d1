//! The dashboard in a real headless Chromium (Debian's `chromium`): load the pages after their
//! JavaScript ran, check that the chart and the tables show the ingested data, and keep
//! screenshots under target/dashboard-screenshots/.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn chromium() -> PathBuf {
    for c in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(c).exists() {
            return c.into();
        }
    }
    panic!("chromium is needed for the dashboard test: run `scripts/deps chromium` (scripts/test does)");
}

/// Run headless chromium on `url` with `extra` flags; returns stdout.
fn run_chromium(url: &str, extra: &[String]) -> String {
    let profile = TempDir::new("chromium-profile");
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=1400,1100",
        "--virtual-time-budget=15000",
    ])
    .arg(format!("--user-data-dir={}", profile.0.display()))
    .args(extra)
    .arg(url)
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("start chromium");
    let start = Instant::now();
    loop {
        if let Some(_st) = child.try_wait().unwrap() {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish on {url} within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dom(url: &str) -> String {
    let d = run_chromium(url, &["--dump-dom".into()]);
    assert!(
        d.contains("data-ready=\"1\""),
        "page did not finish rendering: {url}\n{d}"
    );
    assert!(
        !d.contains("id=\"error\""),
        "page shows an error: {url}\n{d}"
    );
    d
}

/// Values of `attr="N"` rendered in the DOM (the page's own script, which the DOM dump also
/// holds, has `attr="${...}"` there, never a digit).
fn rendered(d: &str, attr: &str) -> Vec<u64> {
    let pat = format!("{attr}=\"");
    d.match_indices(&pat)
        .filter_map(|(i, _)| {
            let rest = &d[i + pat.len()..];
            let end = rest.find('"')?;
            rest[..end].parse().ok()
        })
        .collect()
}

fn screenshot(url: &str, name: &str) -> PathBuf {
    let dir = repo().join("target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    run_chromium(url, &[format!("--screenshot={}", path.display())]);
    let meta = std::fs::metadata(&path).unwrap_or_else(|_| panic!("no screenshot of {url}"));
    assert!(
        meta.len() > 10_000,
        "screenshot of {url} is suspiciously small"
    );
    println!("screenshot: {}", path.display());
    path
}

#[test]
fn dashboard_shows_ingested_crashes_in_chromium() {
    let dir = TempDir::new("dash");
    let run = Running::start(kmortem_server::Options::new(
        dir.0.join("k.db").display().to_string(),
    ));
    let u = &run.url;
    let posts = [
        ("web-1", "null-deref.log"),
        ("web-2", "null-deref.log"),
        ("web-3", "null-deref.log"),
        ("k8s-master-2", "soft-lockup.log"),
        ("k8s-master-2", "soft-lockup.log"),
        ("node-7", "list-corruption.log"),
        ("db-1", "warning.log"),
        ("nfs-3", "hung-task.log"),
    ];
    let mut titles = std::collections::BTreeSet::new();
    for (host, f) in posts {
        let (s, b) = post_log(u, host, &example(f));
        assert_eq!(s, 200, "{b}");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        let t = v["reports"][0]["title"]
            .as_str()
            .unwrap_or_else(|| panic!("no report in {f}: {b}"));
        titles.insert(t.to_string());
    }
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };

    // Overview: the chart has one bar segment per group present today, and the table lists them.
    let d = dom(&format!("{u}/"));
    assert!(d.contains("<svg id=\"chart\""), "no chart:\n{d}");
    let bars = rendered(&d, "data-count").len();
    assert_eq!(
        bars,
        titles.len(),
        "one bar segment per group in today's bucket:\n{d}"
    );
    let counts: u64 = rendered(&d, "data-count").iter().sum();
    assert_eq!(counts, posts.len() as u64, "the bars add up to the reports");
    for t in &titles {
        assert!(d.contains(&esc(t)), "overview lacks {t}");
    }
    // Split by host, per hour.
    let d = dom(&format!("{u}/?bucket=hour&by=host"));
    assert!(
        d.contains("data-key=\"k8s-master-2\" data-count=\"2\""),
        "{d}"
    );
    // Groups page.
    let d = dom(&format!("{u}/groups"));
    assert_eq!(rendered(&d, "data-group").len(), titles.len());
    assert!(d.contains("web-1") && d.contains("6.1.0-43-cloud-amd64"));
    // Filters are links: host=web-2 shows only the NULL-deref group.
    let d = dom(&format!("{u}/groups?host=web-2"));
    assert_eq!(rendered(&d, "data-group").len(), 1, "{d}");
    assert!(d.contains("NULL pointer dereference"));
    // Group page: reports, parsed trace, raw log.
    let groups = get_json(&format!("{u}/api/v1/groups?host=web-2"));
    let gid = groups["groups"][0]["id"].as_i64().unwrap();
    let d = dom(&format!("{u}/groups/{gid}"));
    assert_eq!(
        rendered(&d, "data-report").len(),
        3,
        "three reports in the group:\n{d}"
    );
    assert!(
        d.contains("id=\"frames\"") && d.contains("kmlab_trigger_write"),
        "{d}"
    );
    assert!(d.contains("id=\"raw\"") && d.contains("Call Trace:"), "{d}");

    let shot = screenshot(&format!("{u}/"), "overview.png");
    screenshot(&format!("{u}/groups"), "groups.png");
    screenshot(&format!("{u}/groups/{gid}"), "group.png");
    println!(
        "dashboard: {} groups, {} reports, {bars} bar segments; {}",
        titles.len(),
        posts.len(),
        shot.display()
    );
}
