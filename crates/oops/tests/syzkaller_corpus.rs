//! Conformance with syzkaller's report parser on its own test corpus
//! (`../shared/corpus/syzkaller/report/`, format in `../shared/corpus/README.md`).
//!
//! The corpus is split by a hash of the file name (FNV-1a, stable across runs and machines): a
//! third is held out, the rest is for development. Both halves are measured and printed
//! (`cargo test -p kmortem-oops --test syzkaller_corpus -- --show-output`), and both must meet
//! the bars: exact title >= 97%, no crash on every negative file, `corrupted` >= 95%, alternative
//! titles (as a set) >= 98%, crash type >= 98% (a positive file without `TYPE:` expects
//! syzkaller's empty type, `UNKNOWN`). The held-out figures must be within 2 points of the
//! development ones: rules tuned to the files they were developed on would show the gap.

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

/// FNV-1a (64 bit) of the file name: a stable split nobody can tune to.
fn held_out(name: &str) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    matches!(h % 3, 0)
}

#[derive(Default)]
struct Score {
    files: usize,
    pos: usize,
    title: usize,
    neg: usize,
    neg_ok: usize,
    corrupted: usize,
    alts: usize,
    typ: usize,
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        100.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

impl Score {
    fn figures(&self) -> [(&'static str, f64, f64); 5] {
        [
            ("title exact", pct(self.title, self.pos), 97.0),
            ("negative no-crash", pct(self.neg_ok, self.neg), 100.0),
            ("corrupted agree", pct(self.corrupted, self.pos), 95.0),
            ("alt titles agree", pct(self.alts, self.pos), 98.0),
            ("crash type agree", pct(self.typ, self.pos), 98.0),
        ]
    }

    fn print(&self, name: &str) {
        println!(
            "{name}: {} files ({} positive, {} negative)",
            self.files, self.pos, self.neg
        );
        let counts = [
            (self.title, self.pos),
            (self.neg_ok, self.neg),
            (self.corrupted, self.pos),
            (self.alts, self.pos),
            (self.typ, self.pos),
        ];
        for ((what, v, bar), (a, b)) in self.figures().iter().zip(counts) {
            println!("  {what:<18} {a:>3}/{b:<3} = {v:5.1}% (bar {bar}%)");
        }
    }
}

#[test]
fn syzkaller_corpus_conformance() {
    let dir = shared().join("corpus/syzkaller/report");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let (mut dev, mut held) = (Score::default(), Score::default());
    let mut mismatches = Vec::new();
    for p in &paths {
        let c = load(p);
        let s = if held_out(&c.name) {
            &mut held
        } else {
            &mut dev
        };
        s.files += 1;
        let reports: Vec<_> = kmortem_oops::parse(&c.log)
            .into_iter()
            .filter(|r| !r.kind.is_event())
            .collect();
        let first = reports.first();
        let Some(t) = &c.title else {
            s.neg += 1;
            match first {
                None => s.neg_ok += 1,
                Some(r) => {
                    mismatches.push(format!("{}: expected no crash, got {:?}", c.name, r.title))
                }
            }
            continue;
        };
        s.pos += 1;
        let Some(r) = first else {
            mismatches.push(format!("{}: expected {t:?}, got no report", c.name));
            continue;
        };
        if r.title == *t {
            s.title += 1;
        } else {
            mismatches.push(format!(
                "{}: title expected {t:?}, got {:?}",
                c.name, r.title
            ));
        }
        if r.corrupted == c.corrupted {
            s.corrupted += 1;
        } else {
            mismatches.push(format!(
                "{}: corrupted expected {}, got {} ({:?})",
                c.name, c.corrupted, r.corrupted, r.corrupted_reason
            ));
        }
        let got_alts: BTreeSet<String> = r.alt_titles.iter().cloned().collect();
        if got_alts == c.alts {
            s.alts += 1;
        } else {
            mismatches.push(format!(
                "{}: alts expected {:?}, got {got_alts:?}",
                c.name, c.alts
            ));
        }
        let want_type = c.typ.as_deref().unwrap_or("UNKNOWN");
        if r.crash_type == want_type {
            s.typ += 1;
        } else {
            mismatches.push(format!(
                "{}: type expected {want_type}, got {} ({})",
                c.name, r.crash_type, r.title
            ));
        }
    }
    for m in &mismatches {
        println!("MISMATCH {m}");
    }
    dev.print("syzkaller corpus, development (2/3)");
    held.print("syzkaller corpus, held out (1/3 by FNV-1a of the file name)");
    for ((what, d, bar), (_, h, _)) in dev.figures().iter().zip(held.figures()) {
        assert!(*d >= *bar, "development {what} {d:.1}% below {bar}%");
        assert!(h >= *bar, "held-out {what} {h:.1}% below {bar}%");
        assert!(
            (d - h).abs() <= 2.0,
            "{what}: held out {h:.1}% vs development {d:.1}%: more than 2 points apart"
        );
    }
    assert!(held.pos > 100 && dev.pos > 200, "the split lost files");
}

/// `Report::write_json_pretty` (the CLI's `oops --json`) writes serde_json's bytes for every
/// report of the corpus: its odd titles, escapes and field mixes (issue 15).
#[test]
fn hand_written_json_is_serde_json_on_the_corpus() {
    let dir = shared().join("corpus/syzkaller/report");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let (mut n, mut bytes) = (0, 0);
    let mut out = Vec::new();
    for p in &paths {
        for mut r in kmortem_oops::parse(&std::fs::read(p).unwrap()) {
            r.source = Some(p.display().to_string());
            out.clear();
            r.write_json_pretty(&mut out);
            let want = serde_json::to_string_pretty(&r).unwrap();
            assert!(
                out == want.as_bytes(),
                "{}: {}\nhand-written:\n{}\nserde_json:\n{want}",
                p.display(),
                r.title,
                String::from_utf8_lossy(&out)
            );
            n += 1;
            bytes += out.len();
        }
    }
    println!("{n} corpus reports, {bytes} bytes of JSON, byte-identical to serde_json");
    assert!(n > 300, "only {n} reports in the corpus");
}
