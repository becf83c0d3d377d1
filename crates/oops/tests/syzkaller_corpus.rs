//! Conformance with syzkaller's report parser on its own test corpus
//! (`../shared/corpus/syzkaller/report/`, format in `../shared/corpus/README.md`).
//!
//! Bars: >= 95% exact title agreement on positive files, no crash on 100% of negative files,
//! >= 90% agreement on `corrupted`. Crash-type agreement is printed for information.

use std::collections::BTreeSet;
use std::path::PathBuf;

fn shared() -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared"));
    assert!(
        p.join("corpus/syzkaller/report").is_dir(),
        "the shared corpus is missing: expected {}/corpus/syzkaller/report (a checkout of the \
         project's shared/ directory next to the repository)",
        p.display()
    );
    p
}

struct Case {
    name: String,
    title: Option<String>,
    alts: BTreeSet<String>,
    typ: Option<String>,
    corrupted: bool,
    log: Vec<u8>,
}

fn load(path: &std::path::Path) -> Case {
    let raw = std::fs::read(path).unwrap();
    let raw: Vec<u8> = raw.into_iter().filter(|&b| b != b'\r').collect();
    let mut title = None;
    let mut alts = BTreeSet::new();
    let mut typ = None;
    let mut corrupted = false;
    let mut pos = 0;
    // Headers up to the first empty line.
    while pos < raw.len() {
        let end = raw[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |e| pos + e);
        let line = String::from_utf8_lossy(&raw[pos..end]).into_owned();
        pos = end + 1;
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            let v = v.trim().to_string();
            match k {
                "TITLE" => title = Some(v).filter(|v| !v.is_empty()),
                "ALT" => {
                    alts.insert(v);
                }
                "TYPE" => typ = Some(v),
                "CORRUPTED" => corrupted = v == "Y",
                _ => {}
            }
        }
    }
    let mut log = raw[pos.min(raw.len())..].to_vec();
    // An optional `REPORT:` section after an empty line is not part of the log.
    if let Some(p) = find(&log, b"\n\nREPORT:\n") {
        log.truncate(p + 1);
    } else if log.starts_with(b"REPORT:\n") {
        log.clear();
    }
    Case {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        title,
        alts,
        typ,
        corrupted,
        log,
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

#[test]
fn syzkaller_corpus_conformance() {
    let dir = shared().join("corpus/syzkaller/report");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let (mut pos, mut pos_ok, mut neg, mut neg_ok, mut corr_ok, mut corr_n) = (0, 0, 0, 0, 0, 0);
    let (mut alt_ok, mut type_n, mut type_ok) = (0, 0, 0);
    let mut mismatches = Vec::new();
    for p in &paths {
        let c = load(p);
        let reports: Vec<_> = kmortem_oops::parse(&c.log)
            .into_iter()
            .filter(|r| !r.kind.is_event())
            .collect();
        let first = reports.first();
        match &c.title {
            None => {
                neg += 1;
                match first {
                    None => neg_ok += 1,
                    Some(r) => {
                        mismatches.push(format!("{}: expected no crash, got {:?}", c.name, r.title))
                    }
                }
            }
            Some(t) => {
                pos += 1;
                corr_n += 1;
                let got = first.map(|r| r.title.as_str()).unwrap_or("<none>");
                if got == t {
                    pos_ok += 1;
                } else {
                    mismatches.push(format!("{}: title expected {:?}, got {:?}", c.name, t, got));
                }
                if let Some(r) = first {
                    if r.corrupted == c.corrupted {
                        corr_ok += 1;
                    } else {
                        mismatches.push(format!(
                            "{}: corrupted expected {}, got {} ({:?})",
                            c.name, c.corrupted, r.corrupted, r.corrupted_reason
                        ));
                    }
                    let got_alts: BTreeSet<String> = r.alt_titles.iter().cloned().collect();
                    if got_alts == c.alts {
                        alt_ok += 1;
                    } else {
                        mismatches.push(format!(
                            "{}: alts expected {:?}, got {:?}",
                            c.name, c.alts, got_alts
                        ));
                    }
                    if let Some(ty) = &c.typ {
                        type_n += 1;
                        if *ty == r.crash_type {
                            type_ok += 1;
                        } else {
                            println!(
                                "TYPE {}: expected {ty}, got {} ({})",
                                c.name, r.crash_type, r.title
                            );
                        }
                    }
                }
            }
        }
    }
    for m in &mismatches {
        println!("MISMATCH {m}");
    }
    let pct = |a: usize, b: usize| {
        if b == 0 {
            100.0
        } else {
            100.0 * a as f64 / b as f64
        }
    };
    println!(
        "syzkaller corpus: {} files ({} positive, {} negative)",
        paths.len(),
        pos,
        neg
    );
    println!(
        "  title exact:      {pos_ok}/{pos} = {:.1}% (bar 95%)",
        pct(pos_ok, pos)
    );
    println!(
        "  negative no-crash: {neg_ok}/{neg} = {:.1}% (bar 100%)",
        pct(neg_ok, neg)
    );
    println!(
        "  corrupted agree:  {corr_ok}/{corr_n} = {:.1}% (bar 90%)",
        pct(corr_ok, corr_n)
    );
    println!(
        "  alt titles agree: {alt_ok}/{pos} = {:.1}% (informational)",
        pct(alt_ok, pos)
    );
    println!(
        "  crash type agree: {type_ok}/{type_n} = {:.1}% (informational)",
        pct(type_ok, type_n)
    );
    assert!(pct(pos_ok, pos) >= 95.0, "title agreement below 95%");
    assert_eq!(neg_ok, neg, "a negative file produced a crash");
    assert!(
        pct(corr_ok, corr_n) >= 90.0,
        "corrupted agreement below 90%"
    );
}
