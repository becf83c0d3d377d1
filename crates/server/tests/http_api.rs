//! The HTTP API of the real server (in-process, 127.0.0.1 ephemeral port): ingest, read-back,
//! pagination, filters, bad input, tokens, /metrics, and alert webhooks against a local receiver.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

fn start(dir: &TempDir) -> Running {
    Running::start(kmortem_server::Options::new(
        dir.0.join("k.db").display().to_string(),
    ))
}

#[test]
fn ingest_and_read_back() {
    let dir = TempDir::new("http");
    let run = start(&dir);
    let u = &run.url;
    // text/plain
    let (s, b) = post_log(u, "web-1", &example("null-deref.log"));
    assert_eq!(s, 200, "{b}");
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    let reps = v["reports"].as_array().unwrap();
    assert_eq!(reps.len(), 1, "{b}");
    assert!(reps[0]["new_group"].as_bool().unwrap());
    let gid = reps[0]["group"].as_i64().unwrap();
    assert!(
        reps[0]["title"]
            .as_str()
            .unwrap()
            .contains("NULL pointer dereference"),
        "{b}"
    );
    // JSON body, same crash from another host: same group.
    let body = serde_json::json!({"host": "web-2", "log": example("null-deref.log")});
    let (s, b) = http(
        "POST",
        &format!("{u}/api/v1/reports"),
        Some(TOKEN),
        Some("application/json"),
        body.to_string().as_bytes(),
    );
    assert_eq!(s, 200, "{b}");
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["reports"][0]["group"].as_i64(), Some(gid));
    assert_eq!(v["reports"][0]["new_group"].as_bool(), Some(false));
    // Other examples.
    for (host, f) in [
        ("db-1", "warning.log"),
        ("k8s-master-2", "soft-lockup.log"),
        ("node-7", "list-corruption.log"),
        ("nfs-3", "hung-task.log"),
    ] {
        let (s, b) = post_log(u, host, &example(f));
        assert_eq!(s, 200, "{f}: {b}");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["reports"].as_array().unwrap().len(), 1, "{f}: {b}");
    }
    // A log with no crash in it is refused with a reason: nothing was stored.
    let (s, b) = post_log(u, "web-1", "[ 1.0] systemd[1]: Started foo.\n");
    assert_eq!(s, 422, "{b}");
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("no crash report"),
        "{b}"
    );

    let groups = get_json(&format!("{u}/api/v1/groups"));
    let gs = groups["groups"].as_array().unwrap();
    assert_eq!(gs.len(), 5, "{groups}");
    let g = gs.iter().find(|g| g["id"].as_i64() == Some(gid)).unwrap();
    assert_eq!(g["count"], 2);
    assert_eq!(g["hosts"], serde_json::json!(["web-1", "web-2"]));
    assert_eq!(g["kernels"], serde_json::json!(["6.1.0-46-cloud-amd64"]));
    for k in [
        "id",
        "title",
        "signature",
        "count",
        "first_seen",
        "last_seen",
        "hosts",
        "kernels",
    ] {
        assert!(g.get(k).is_some(), "group lacks {k}");
    }
    // Pagination of groups.
    let p1 = get_json(&format!("{u}/api/v1/groups?limit=3"));
    assert_eq!(p1["groups"].as_array().unwrap().len(), 3);
    assert_eq!(p1["next_offset"], 3);
    let p2 = get_json(&format!("{u}/api/v1/groups?limit=3&offset=3"));
    assert_eq!(p2["groups"].as_array().unwrap().len(), 2);
    assert!(p2["next_offset"].is_null());
    // Reports of the group, filtered by host.
    let rs = get_json(&format!(
        "{u}/api/v1/reports?group={gid}&host=web-2&since=1h"
    ));
    let r = &rs["reports"].as_array().unwrap()[0];
    assert_eq!(rs["reports"].as_array().unwrap().len(), 1);
    for k in [
        "id",
        "group",
        "host",
        "kernel_release",
        "title",
        "received_at",
        "raw",
    ] {
        assert!(r.get(k).is_some(), "report lacks {k}");
    }
    assert!(r["raw"]
        .as_str()
        .unwrap()
        .contains("[   41.930304] Call Trace:"));
    let rs = get_json(&format!(
        "{u}/api/v1/reports?since=2000-01-01&until=2000-01-02"
    ));
    assert!(rs["reports"].as_array().unwrap().is_empty());
    // One report with its parsed record.
    let full = get_json(&format!("{u}/api/v1/reports/{}", r["id"]));
    assert_eq!(full["parsed"]["kind"], "null_pointer_dereference");
    // Timeline and facets.
    let tl = get_json(&format!("{u}/api/v1/timeline?bucket=hour&by=host"));
    let n: i64 = tl["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_i64().unwrap())
        .sum();
    assert_eq!(n, 6);
    let tl = get_json(&format!("{u}/api/v1/timeline"));
    assert_eq!(tl["titles"][gid.to_string()], g["title"]);
    let f = get_json(&format!("{u}/api/v1/facets"));
    assert_eq!(f["hosts"].as_array().unwrap().len(), 6);
    // Metrics.
    let (s, m) = http("GET", &format!("{u}/metrics"), None, None, b"");
    assert_eq!(s, 200);
    let line = format!("kmortem_crashes_total{{group=\"{gid}\",kind=\"null_pointer_dereference\",kernel=\"6.1.0-46-cloud-amd64\",host=\"web-1\"}} 1");
    assert!(m.contains(&line), "{m}");
    assert!(
        m.contains("kmortem_ingest_reports_total{source=\"http\"} 6"),
        "{m}"
    );
    // The dashboard pages are served.
    for p in ["/", "/groups", &format!("/groups/{gid}")] {
        let (s, b) = http("GET", &format!("{u}{p}"), None, None, b"");
        assert_eq!(s, 200);
        assert!(b.contains("<svg") || b.contains("drawChart"));
    }
}

#[test]
fn bad_input_gets_a_clear_4xx() {
    let dir = TempDir::new("bad");
    let mut opts = kmortem_server::Options::new(dir.0.join("k.db").display().to_string());
    opts.max_body = 64 * 1024;
    let run = Running::start(opts);
    let u = &run.url;
    let post = |q: &str, tok: Option<&str>, ct: Option<&str>, body: &[u8]| {
        http("POST", &format!("{u}/api/v1/reports{q}"), tok, ct, body)
    };
    let log = example("null-deref.log");
    let cases: Vec<(&str, (u16, String), u16, &str)> = vec![
        (
            "no token",
            post("?host=a", None, None, log.as_bytes()),
            401,
            "missing token",
        ),
        (
            "wrong token",
            post(
                "?host=a",
                Some("wrong-token-0123456789"),
                None,
                log.as_bytes(),
            ),
            401,
            "invalid token",
        ),
        (
            "oversize",
            post("?host=a", Some(TOKEN), None, &vec![b'x'; 200 * 1024]),
            413,
            "larger than",
        ),
        (
            "invalid utf-8",
            post("?host=a", Some(TOKEN), None, b"[ 1.0] BUG: \xff\xfe oops"),
            400,
            "not valid UTF-8",
        ),
        (
            "sql host",
            post(
                "?host=x%27%3B%20DROP%20TABLE%20reports%3B--",
                Some(TOKEN),
                None,
                log.as_bytes(),
            ),
            400,
            "invalid host name",
        ),
        (
            "sql host json",
            post(
                "",
                Some(TOKEN),
                Some("application/json"),
                br#"{"host":"a' OR 1=1 --","log":"x"}"#,
            ),
            400,
            "invalid host name",
        ),
        (
            "no host",
            post("", Some(TOKEN), None, log.as_bytes()),
            400,
            "missing host",
        ),
        (
            "bad json",
            post("", Some(TOKEN), Some("application/json"), b"{\"host\": 1}"),
            400,
            "invalid JSON",
        ),
        (
            "unknown param",
            post("?host=a&hots=b", Some(TOKEN), None, log.as_bytes()),
            400,
            "unknown query parameter",
        ),
    ];
    for (name, (s, b), want, msg) in cases {
        assert_eq!(s, want, "{name}: {b}");
        let v: serde_json::Value =
            serde_json::from_str(&b).unwrap_or_else(|_| panic!("{name}: not JSON: {b}"));
        assert!(v["error"].as_str().unwrap().contains(msg), "{name}: {b}");
    }
    let gets = [
        ("/api/v1/reports?since=yesterday-ish", "is not a time"),
        ("/api/v1/reports?group=1%20OR%201=1", "must be an integer"),
        ("/api/v1/reports?limit=100000", "limit"),
        ("/api/v1/groups?host=%27%20OR%20%271%27=%271", ""),
        ("/api/v1/timeline?bucket=week", "bucket"),
        ("/api/v1/reports/abc", "integer"),
        ("/api/v1/nope", "no such"),
    ];
    for (p, msg) in gets {
        let (s, b) = http("GET", &format!("{u}{p}"), None, None, b"");
        if msg.is_empty() {
            // A SQL-looking filter value is just a value: no match, no error.
            assert_eq!(
                (s, b.as_str()),
                (200, "{\"groups\":[],\"next_offset\":null}"),
                "{p}"
            );
        } else {
            assert!((400..500).contains(&s), "{p}: {s} {b}");
            assert!(b.contains(msg), "{p}: {b}");
        }
    }
    // Nothing was stored, the tables are intact, and rejections are counted.
    assert_eq!(all_reports(u, "").len(), 0);
    let (s, _) = post_log(u, "a", &log);
    assert_eq!(s, 200);
    assert_eq!(all_reports(u, "").len(), 1);
    let (_, m) = http("GET", &format!("{u}/metrics"), None, None, b"");
    assert!(
        m.contains("kmortem_rejected_requests_total{reason=\"unauthorized\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("kmortem_rejected_requests_total{reason=\"invalid_utf8\"} 1"),
        "{m}"
    );
}

#[test]
fn reads_can_be_token_gated_and_keys_dedup() {
    let dir = TempDir::new("auth");
    let mut opts = kmortem_server::Options::new(dir.0.join("k.db").display().to_string());
    opts.auth_reads = true;
    let run = Running::start(opts);
    let u = &run.url;
    let (s, b) = http("GET", &format!("{u}/api/v1/groups"), None, None, b"");
    assert_eq!(s, 401, "{b}");
    let (s, _) = http("GET", &format!("{u}/api/v1/groups"), Some(TOKEN), None, b"");
    assert_eq!(s, 200);
    let url = format!("{u}/api/v1/reports?host=h1&key=boot-abc:17");
    let log = example("warning.log");
    let (s1, b1) = http("POST", &url, Some(TOKEN), None, log.as_bytes());
    let (s2, b2) = http("POST", &url, Some(TOKEN), None, log.as_bytes());
    assert_eq!((s1, s2), (200, 200));
    let v1: serde_json::Value = serde_json::from_str(&b1).unwrap();
    let v2: serde_json::Value = serde_json::from_str(&b2).unwrap();
    assert_eq!(v1["reports"][0]["id"], v2["reports"][0]["id"]);
    assert_eq!(v2["reports"][0]["duplicate"], true);
}

/// A local webhook receiver: answers 200 and hands each JSON body to the test.
fn receiver() -> (String, mpsc::Receiver<serde_json::Value>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut len = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.to_ascii_lowercase();
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let _ =
                c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if let Ok(v) = serde_json::from_slice(&body) {
                let _ = tx.send(v);
            }
        }
    });
    (url, rx)
}

#[test]
fn alert_rules_post_to_a_webhook() {
    let dir = TempDir::new("alerts");
    let (hook, rx) = receiver();
    let cfg = format!(
        "[[alert]]\nname = \"new\"\nwhen = \"new_group\"\nwebhook = \"{hook}\"\n\n\
         [[alert]]\nname = \"storm\"\nwhen = \"rate\"\nper_hour = 3\nkind = \"warning\"\nwebhook = \"{hook}\"\n"
    );
    let mut opts = kmortem_server::Options::new(dir.0.join("k.db").display().to_string());
    opts.config = kmortem_server::Config::parse(&cfg, "test").unwrap();
    let run = Running::start(opts);
    let u = &run.url;
    let (s, _) = post_log(u, "web-1", &example("null-deref.log"));
    assert_eq!(s, 200);
    let ev = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("new_group alert");
    assert_eq!(ev["rule"], "new");
    assert_eq!(ev["event"], "new_group");
    assert_eq!(ev["report"]["host"], "web-1");
    assert!(ev["group"]["title"]
        .as_str()
        .unwrap()
        .contains("NULL pointer"));
    assert!(ev["url"].as_str().unwrap().starts_with(u.as_str()));
    // The same group again: no new alert.
    let (s, _) = post_log(u, "web-2", &example("null-deref.log"));
    assert_eq!(s, 200);
    // Warnings: the first is a new group; the 4th within the hour goes over per_hour = 3.
    for i in 0..5 {
        let (s, _) = post_log(u, &format!("db-{i}"), &example("warning.log"));
        assert_eq!(s, 200);
    }
    let mut got = Vec::new();
    while let Ok(ev) = rx.recv_timeout(Duration::from_secs(5)) {
        got.push(ev);
    }
    let names: Vec<&str> = got.iter().map(|e| e["rule"].as_str().unwrap()).collect();
    assert_eq!(names, ["new", "storm"], "{got:?}");
    assert_eq!(got[1]["rate"]["last_hour"], 4);
    assert_eq!(got[1]["report"]["host"], "db-3");
    let (_, m) = http("GET", &format!("{u}/metrics"), None, None, b"");
    assert!(
        m.contains("kmortem_alerts_total{rule=\"storm\",outcome=\"sent\"} 1"),
        "{m}"
    );
}

/// Folklore (http.rs `valid_release`): real releases carry `+`, `~`, `_`; each is stored as it
/// is, and a release that is not one (spaces, control characters, 65 characters) gets a 400.
#[test]
fn every_real_kernel_release_is_accepted() {
    let dir = TempDir::new("release");
    let run = start(&dir);
    let u = &run.url;
    // A crash that names no release, so that the one sent is used.
    let log: String = example("warning.log")
        .lines()
        .map(|l| match l.find(" Not tainted ") {
            Some(i) => format!("{} Not tainted", &l[..i]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    for (i, rel) in [
        "6.11.5+bpo-cloud-amd64",
        "5.15.0-91-generic",
        "6.8.0~rc3-1",
        "5.10.0_custom+",
        "4.19.0-26-amd64",
    ]
    .iter()
    .enumerate()
    {
        let body = serde_json::json!({
            "host": format!("h{i}"), "log": log, "kernel_release": rel, "key": format!("rel-{i}")
        });
        let (s, b) = http(
            "POST",
            &format!("{u}/api/v1/reports"),
            Some(TOKEN),
            Some("application/json"),
            body.to_string().as_bytes(),
        );
        assert_eq!(s, 200, "{rel}: {b}");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        let id = v["reports"][0]["id"].as_i64().expect("an id");
        assert!(v["reports"][0]["group"].as_i64().is_some(), "{b}");
        let full = get_json(&format!("{u}/api/v1/reports/{id}"));
        let stored = full["kernel_release"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        println!("{rel:?} -> stored {stored:?}");
        assert_eq!(stored, *rel);
        assert_eq!(full["origin"], "shared_token");
    }
    for bad in ["6.1 with space", "x\u{7}", &"9".repeat(65)] {
        let body = serde_json::json!({"host": "h", "log": log, "kernel_release": bad});
        let (s, b) = http(
            "POST",
            &format!("{u}/api/v1/reports"),
            Some(TOKEN),
            Some("application/json"),
            body.to_string().as_bytes(),
        );
        assert_eq!(s, 400, "{bad:?}: {b}");
        assert!(b.contains("kernel_release"), "{b}");
    }
}

/// Per-host tokens: a host reports as itself (with or without `host=`), never as another; the
/// shared token still names any host; a flood from one host gets 429 with Retry-After while
/// another host is served.
#[test]
fn per_host_tokens_and_rate_limit() {
    let dir = TempDir::new("hosttok");
    let mut opts = kmortem_server::Options::new(dir.0.join("k.db").display().to_string());
    opts.tokens = kmortem_server::Tokens::shared(vec![TOKEN.into()])
        .with_host("web-1", "web1-token-0123456789")
        .with_host("web-2", "web2-token-0123456789");
    opts.rate_limit = 0.1;
    opts.rate_burst = 3.0;
    let run = Running::start(opts);
    let u = &run.url;
    let log = example("null-deref.log");
    let post = |q: &str, tok: &str, body: &str| {
        http(
            "POST",
            &format!("{u}/api/v1/reports{q}"),
            Some(tok),
            Some("text/plain"),
            body.as_bytes(),
        )
    };
    let (s, b) = post("", "web1-token-0123456789", &log);
    assert_eq!(s, 200, "{b}");
    let (s, b) = post("?host=web-1", "web1-token-0123456789", &log);
    assert_eq!(s, 200, "{b}");
    let (s, b) = post("?host=web-2", "web1-token-0123456789", &log);
    assert_eq!(s, 403, "{b}");
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("belongs to host \"web-1\""),
        "{b}"
    );
    let json = serde_json::json!({"host": "web-2", "log": log}).to_string();
    let (s, b) = http(
        "POST",
        &format!("{u}/api/v1/reports"),
        Some("web1-token-0123456789"),
        Some("application/json"),
        json.as_bytes(),
    );
    assert_eq!(s, 403, "a JSON host is checked too: {b}");
    // web-1 has used its burst of 3 (the 403s count): the next is refused with Retry-After.
    let r = ureq::post(&format!("{u}/api/v1/reports"))
        .set("Authorization", "Bearer web1-token-0123456789")
        .send_string(&log);
    match r {
        Err(ureq::Error::Status(429, resp)) => {
            let after: u64 = resp.header("Retry-After").unwrap().parse().unwrap();
            assert!((1..=10).contains(&after), "Retry-After {after}");
        }
        other => panic!("expected a 429, got {other:?}"),
    }
    // Another host has its own bucket.
    let (s, b) = post("", "web2-token-0123456789", &log);
    assert_eq!(s, 200, "{b}");
    let hosts: Vec<String> = all_reports(u, "")
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["host"].as_str().unwrap(),
                r["origin"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        hosts,
        ["web-2/host_token", "web-1/host_token", "web-1/host_token"],
        "newest first"
    );
    let (_, m) = http("GET", &format!("{u}/metrics"), None, None, b"");
    assert!(m.contains("reason=\"rate_limited\"} 1"), "{m}");
    assert!(m.contains("reason=\"wrong_host\"} 2"), "{m}");
}
