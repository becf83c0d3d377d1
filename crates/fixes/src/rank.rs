//! Ranking: a crash against the index. Tantivy picks candidates by exact function, file and title
//! terms; each candidate is then scored on the structured fields (the quoted trace's frames and
//! their order, functions the subject and the text name, functions the fix touched, files, and
//! the crash kind), with the evidence for every point of the score.

use crate::extract::KindTag;
use crate::index::{FixIndex, IndexError};
use crate::query::CrashQuery;
use crate::record::Entry;
use crate::version::{verdict, Verdict};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{TantivyDocument, Term};

/// One piece of evidence for a candidate.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Evidence {
    /// `trace`, `top_frame`, `frame_order`, `subject`, `text`, `touched`, `file`, `kind`, `title`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What matched (frame names, file paths, kind names).
    pub matched: Vec<String>,
    /// Points this evidence added (for `kind`: the multiplier).
    pub weight: f64,
    pub note: String,
}

/// A ranked candidate fix.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub cve: Option<String>,
    pub commits: Vec<String>,
    pub subject: String,
    pub score: f64,
    pub evidence: Vec<Evidence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// `cve` or `git` (or `cve+git` when a history commit is the CVE's fix).
    pub source: String,
    #[serde(skip)]
    pub entry: Entry,
}

struct Weights {
    n_docs: f64,
    df: HashMap<String, f64>,
}

impl Weights {
    fn idf(&self, key: &str) -> f64 {
        let df = self.df.get(key).copied().unwrap_or(0.0);
        (1.0 + self.n_docs / (1.0 + df)).ln()
    }
}

/// Position weight of the i-th key frame: the top of the stack is the most telling.
fn pos_weight(i: usize) -> f64 {
    1.0 / (1.0 + 0.35 * i as f64)
}

impl FixIndex {
    /// Ranks known fixes for a crash, best first.
    pub fn search(&self, q: &CrashQuery, top: usize) -> Result<Vec<Candidate>, IndexError> {
        let searcher = self.reader.searcher();
        let f = self.f;
        let n_docs = searcher.num_docs().max(1) as f64;
        // Query frames with weights: key frames by position, generic and unreliable ones low.
        let mut qframes: Vec<(String, f64, bool)> = Vec::new(); // (name, weight, key)
        let mut key_i = 0;
        for fr in q.frames.iter().take(48) {
            let w = if fr.generic {
                0.08
            } else if !fr.reliable {
                0.25 * pos_weight(key_i)
            } else {
                let w = pos_weight(key_i);
                key_i += 1;
                w
            };
            qframes.push((fr.function.clone(), w, !fr.generic && fr.reliable));
        }
        // Document frequencies (max over the function fields).
        let mut df = HashMap::new();
        for (name, _, _) in &qframes {
            let mut m = 0u64;
            for field in [f.trace, f.idents, f.subj, f.touched] {
                m = m.max(searcher.doc_freq(&Term::from_field_text(field, name))?);
            }
            df.insert(name.clone(), m as f64);
        }
        let qfiles: Vec<String> = q.files.clone();
        for p in &qfiles {
            df.insert(
                format!("file:{p}"),
                searcher.doc_freq(&Term::from_field_text(f.files, p))? as f64,
            );
        }
        // Words of the top key frames (`kyber_bio_merge` -> kyber, bio, merge): fix subjects name
        // the subsystem or driver (`kyber: fix ...`) even when they do not name the function.
        let mut words: Vec<(String, f64)> = Vec::new();
        for (i, name) in q.key_frames().iter().take(3).enumerate() {
            for wd in frame_words(name) {
                if !words.iter().any(|(x, _)| *x == wd) {
                    let d = searcher.doc_freq(&Term::from_field_text(f.subject, &wd))?;
                    df.insert(format!("word:{wd}"), d as f64);
                    words.push((wd, pos_weight(i)));
                }
            }
        }
        let weights = Weights { n_docs, df };
        // Candidate generation.
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let term = |field, s: &str, boost: f64| -> (Occur, Box<dyn Query>) {
            let tq = TermQuery::new(
                Term::from_field_text(field, s),
                IndexRecordOption::WithFreqs,
            );
            (
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(tq), boost as f32)),
            )
        };
        for (name, w, _) in &qframes {
            let b = w * weights.idf(name);
            clauses.push(term(f.trace, name, 2.0 * b));
            clauses.push(term(f.subj, name, 3.0 * b));
            clauses.push(term(f.idents, name, 1.0 * b));
            clauses.push(term(f.touched, name, 1.5 * b));
        }
        for p in &qfiles {
            clauses.push(term(f.files, p, 1.0));
        }
        for (wd, pw) in &words {
            clauses.push(term(
                f.subject,
                wd,
                0.3 * pw * weights.idf(&format!("word:{wd}")),
            ));
        }
        if let Some(title) = &q.title {
            // The title's words against subjects (syzbot titles are often quoted in fix subjects).
            let words: String = title
                .split(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-')
                .filter(|w| {
                    w.len() > 2 && !w.starts_with("0x") && !w.chars().all(|c| c.is_ascii_hexdigit())
                })
                .take(16)
                .collect::<Vec<_>>()
                .join(" ");
            if !words.is_empty() {
                let qp = QueryParser::for_index(&self.index, vec![f.subject]);
                if let Ok(tq) = qp.parse_query(&escape_query(&words)) {
                    clauses.push((Occur::Should, Box::new(BoostQuery::new(tq, 0.2))));
                }
            }
        }
        if clauses.is_empty() {
            return Ok(Vec::new());
        }
        let bq = BooleanQuery::new(clauses);
        let hits = searcher.search(&bq, &TopDocs::with_limit(300))?;
        let mut cands: Vec<Candidate> = Vec::new();
        for (bm25, addr) in hits {
            let d: TantivyDocument = searcher.doc(addr)?;
            let Some(e) = self.entry_of(&d) else { continue };
            let (score, evidence) = score_entry(q, &qframes, &words, &weights, &e, bm25 as f64);
            if score <= 0.0 {
                continue;
            }
            let verdict = q
                .kernel
                .as_ref()
                .filter(|_| !e.ranges.is_empty() || e.cve.is_some())
                .map(|k| verdict(k, &e.ranges));
            cands.push(Candidate {
                cve: e.cve.clone(),
                commits: e.commits.clone(),
                subject: e.subject.clone(),
                score: (score * 100.0).round() / 100.0,
                evidence,
                verdict,
                source: e.source.clone(),
                entry: e,
            });
        }
        merge_git_into_cve(self, &mut cands)?;
        cands.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.cve.cmp(&b.cve)));
        cands.truncate(top);
        Ok(cands)
    }
}

fn escape_query(s: &str) -> String {
    s.chars()
        .map(|c| {
            if "+-&|!(){}[]^\"~*?:\\/".contains(c) {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// A history commit that is a CVE's fix: fold it into the CVE's candidate (or attach the CVE id).
fn merge_git_into_cve(ix: &FixIndex, cands: &mut Vec<Candidate>) -> Result<(), IndexError> {
    let mut by_commit: HashMap<String, usize> = HashMap::new();
    for (i, c) in cands.iter().enumerate() {
        if c.source == "cve" {
            for s in &c.commits {
                by_commit.insert(s.clone(), i);
            }
        }
    }
    let mut drop = HashSet::new();
    for i in 0..cands.len() {
        if cands[i].source != "git" {
            continue;
        }
        let sha = cands[i].commits.first().cloned().unwrap_or_default();
        if let Some(&j) = by_commit.get(&sha) {
            // Keep the better score and both evidence lists.
            let (g, c) = (cands[i].clone(), &mut cands[j]);
            if g.score > c.score {
                c.score = g.score;
            }
            for ev in g.evidence {
                if !c.evidence.contains(&ev) {
                    c.evidence.push(ev);
                }
            }
            c.source = "cve+git".into();
            drop.insert(i);
        } else if let Some(e) = lookup_cve_by_commit(ix, &sha)? {
            let c = &mut cands[i];
            c.cve = e.cve.clone();
            c.source = "cve+git".into();
            if c.verdict.is_some() && !e.ranges.is_empty() {
                c.entry.ranges = e.ranges.clone();
            }
        }
    }
    let mut k = 0;
    cands.retain(|_| {
        let keep = !drop.contains(&k);
        k += 1;
        keep
    });
    Ok(())
}

fn lookup_cve_by_commit(ix: &FixIndex, sha: &str) -> Result<Option<Entry>, IndexError> {
    if sha.is_empty() {
        return Ok(None);
    }
    let searcher = ix.reader.searcher();
    let q = BooleanQuery::new(vec![
        (
            Occur::Must,
            Box::new(TermQuery::new(
                Term::from_field_text(ix.f.commit, sha),
                IndexRecordOption::Basic,
            )) as Box<dyn Query>,
        ),
        (
            Occur::Must,
            Box::new(TermQuery::new(
                Term::from_field_text(ix.f.source, "cve"),
                IndexRecordOption::Basic,
            )),
        ),
    ]);
    match searcher.search(&q, &TopDocs::with_limit(1))?.first() {
        Some((_, addr)) => {
            let d: TantivyDocument = searcher.doc(*addr)?;
            Ok(ix.entry_of(&d))
        }
        None => Ok(None),
    }
}

/// Longest common subsequence length of two short sequences.
fn lcs(a: &[&str], b: &[&str]) -> usize {
    let (n, m) = (a.len().min(32), b.len().min(64));
    let mut dp = vec![0usize; (n + 1) * (m + 1)];
    for i in 1..=n {
        for j in 1..=m {
            dp[i * (m + 1) + j] = if a[i - 1] == b[j - 1] {
                dp[(i - 1) * (m + 1) + j - 1] + 1
            } else {
                dp[(i - 1) * (m + 1) + j].max(dp[i * (m + 1) + j - 1])
            };
        }
    }
    dp[n * (m + 1) + m]
}

fn score_entry(
    q: &CrashQuery,
    qframes: &[(String, f64, bool)],
    words: &[(String, f64)],
    w: &Weights,
    e: &Entry,
    bm25: f64,
) -> (f64, Vec<Evidence>) {
    let trace: HashSet<&str> = e.trace.iter().map(String::as_str).collect();
    let subj: HashSet<&str> = e.subject_funcs.iter().map(String::as_str).collect();
    let prose: HashSet<&str> = e.funcs.iter().map(String::as_str).collect();
    let touched: HashSet<&str> = e.touched.iter().map(String::as_str).collect();
    let mut ev: BTreeMap<&str, (Vec<String>, f64)> = BTreeMap::new();
    let mut score = 0.0;
    for (name, wt, _key) in qframes {
        let n = name.as_str();
        let base = wt * w.idf(n);
        let parts = [
            ("trace", if trace.contains(n) { 1.6 * base } else { 0.0 }),
            ("subject", if subj.contains(n) { 2.0 * base } else { 0.0 }),
            ("text", if prose.contains(n) { 1.0 * base } else { 0.0 }),
            (
                "touched",
                if touched.contains(n) { 1.3 * base } else { 0.0 },
            ),
        ];
        let max = parts.iter().map(|p| p.1).fold(0.0, f64::max);
        let sum: f64 = parts.iter().map(|p| p.1).sum();
        if max <= 0.0 {
            continue;
        }
        score += max + 0.3 * (sum - max);
        for (k, v) in parts {
            if v > 0.0 {
                let slot = ev.entry(k).or_default();
                slot.0.push(name.clone());
                slot.1 += v;
            }
        }
    }
    let mut evidence: Vec<Evidence> = Vec::new();
    let notes = [
        (
            "trace",
            "frames of the crash found in the trace the fix quotes",
        ),
        (
            "subject",
            "functions of the crash named in the fix's subject",
        ),
        ("text", "functions of the crash named in the fix's message"),
        ("touched", "functions of the crash changed by the fix"),
    ];
    for (k, note) in notes {
        if let Some((m, v)) = ev.remove(k) {
            evidence.push(Evidence {
                kind: k.into(),
                matched: m,
                weight: round2(v),
                note: note.into(),
            });
        }
    }
    // Same top frame and same order as the quoted trace.
    let qkey: Vec<&str> = q.key_frames();
    if !e.trace.is_empty() && !qkey.is_empty() {
        let tkey: Vec<&str> = e
            .trace
            .iter()
            .map(String::as_str)
            .filter(|f| !crate::extract::is_generic_frame(f))
            .collect();
        if let (Some(qt), Some(tt)) = (qkey.first(), tkey.first()) {
            // The crash may have lost its top frames (inlining, a different config): accept the
            // quoted top frame within the crash's first three key frames.
            if qkey.iter().take(3).any(|f| f == tt) {
                let b = 1.2 * w.idf(tt);
                score += b;
                evidence.push(Evidence {
                    kind: "top_frame".into(),
                    matched: vec![(*tt).to_string()],
                    weight: round2(b),
                    note: if qt == tt {
                        "same top frame as the quoted trace".into()
                    } else {
                        "the quoted trace's top frame is near the crash's top".into()
                    },
                });
            }
        }
        let l = lcs(&qkey[..qkey.len().min(24)], &tkey);
        if l >= 2 {
            let b = 0.6 * (l - 1) as f64;
            score += b;
            evidence.push(Evidence {
                kind: "frame_order".into(),
                matched: vec![format!("{l} frames in the same order")],
                weight: round2(b),
                note: "the crash's frames appear in the quoted trace in the same order".into(),
            });
        }
    }
    // Files.
    let efiles: HashSet<&str> = e.files.iter().map(String::as_str).collect();
    let mut fm = Vec::new();
    let mut fs = 0.0;
    for p in &q.files {
        if efiles.contains(p.as_str()) {
            fs += 0.8 * w.idf(&format!("file:{p}"));
            fm.push(p.clone());
        }
    }
    if !fm.is_empty() {
        score += fs;
        evidence.push(Evidence {
            kind: "file".into(),
            matched: fm,
            weight: round2(fs),
            note: "source files of the crash among the fix's files".into(),
        });
    }
    // Subject words shared with the top frames' names.
    let subj_words: HashSet<String> = e
        .subject
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|x| !x.is_empty())
        .map(|x| x.to_ascii_lowercase())
        .collect();
    let mut wm = Vec::new();
    let mut ws = 0.0;
    for (wd, pw) in words {
        if subj_words.contains(wd) {
            ws += 0.35 * pw * w.idf(&format!("word:{wd}"));
            wm.push(wd.clone());
        }
    }
    if !wm.is_empty() {
        score += ws;
        evidence.push(Evidence {
            kind: "subject_words".into(),
            matched: wm,
            weight: round2(ws),
            note: "words of the crash's top function names in the fix's subject".into(),
        });
    }
    // A little of tantivy's own score breaks ties between otherwise equal candidates.
    score += 0.02 * bm25;
    // Crash kind.
    if let Some(k) = q.kind {
        let ekinds: Vec<KindTag> = e.kinds.iter().filter_map(|s| KindTag::parse(s)).collect();
        let tk = e.trace_kind.as_deref().and_then(KindTag::parse);
        let (factor, note, matched) = if let Some(tk) = tk {
            if k.compatible(tk) {
                (
                    1.3,
                    format!("the quoted report is a {} like the crash", tk.as_str()),
                    vec![tk.as_str().to_string()],
                )
            } else if ekinds.iter().any(|x| k.compatible(*x)) {
                (
                    1.0,
                    format!(
                        "the quoted report is a {}, the text also names {}",
                        tk.as_str(),
                        k.as_str()
                    ),
                    vec![tk.as_str().to_string()],
                )
            } else {
                (
                    0.55,
                    format!(
                        "the quoted report is a {}, the crash a {}",
                        tk.as_str(),
                        k.as_str()
                    ),
                    vec![tk.as_str().to_string()],
                )
            }
        } else if ekinds.is_empty() {
            (1.0, String::new(), vec![])
        } else if let Some(x) = ekinds.iter().find(|x| k.compatible(**x)) {
            (
                1.15,
                format!("the fix is about a {}, like the crash", x.as_str()),
                vec![x.as_str().to_string()],
            )
        } else if matches!(k, KindTag::Warning | KindTag::BugOn) {
            (
                0.9,
                format!(
                    "the fix is about {}, the crash is a {}",
                    names(&ekinds),
                    k.as_str()
                ),
                ekinds.iter().map(|x| x.as_str().to_string()).collect(),
            )
        } else {
            (
                0.65,
                format!(
                    "the fix is about {}, the crash is a {}",
                    names(&ekinds),
                    k.as_str()
                ),
                ekinds.iter().map(|x| x.as_str().to_string()).collect(),
            )
        };
        if !note.is_empty() && score > 0.0 {
            score *= factor;
            evidence.push(Evidence {
                kind: "kind".into(),
                matched,
                weight: factor,
                note,
            });
        }
    }
    (score, evidence)
}

fn names(k: &[KindTag]) -> String {
    k.iter().map(|x| x.as_str()).collect::<Vec<_>>().join("/")
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Distinctive words of a function name: `kyber_bio_merge` -> `kyber`, `bio`, `merge`, minus the
/// verbs and nouns every subsystem uses.
fn frame_words(name: &str) -> Vec<String> {
    const STOP: &[&str] = &[
        "get",
        "set",
        "put",
        "add",
        "del",
        "init",
        "exit",
        "alloc",
        "free",
        "read",
        "write",
        "open",
        "close",
        "handle",
        "handler",
        "process",
        "core",
        "common",
        "func",
        "work",
        "data",
        "start",
        "stop",
        "update",
        "check",
        "create",
        "destroy",
        "release",
        "register",
        "unregister",
        "send",
        "recv",
        "xmit",
        "poll",
        "queue",
        "new",
        "dev",
        "device",
        "irq",
        "lock",
        "unlock",
        "fix",
        "for",
        "the",
        "and",
        "sys",
        "ops",
        "cb",
        "fn",
        "one",
        "all",
        "list",
        "buf",
        "len",
        "info",
        "ctx",
        "msg",
        "cmd",
        "req",
        "resp",
        "map",
        "unmap",
        "submit",
        "complete",
        "do",
        "try",
        "out",
        "fault",
        "bug",
        "use",
        "after",
        "null",
        "pointer",
        "in",
        "of",
        "to",
        "from",
    ];
    name.split('_')
        .map(|x| x.to_ascii_lowercase())
        .filter(|x| {
            x.len() >= 3 && !x.bytes().all(|b| b.is_ascii_digit()) && !STOP.contains(&x.as_str())
        })
        .collect()
}
