//! Ranking: a crash against the index. Tantivy picks candidates by exact function, file,
//! directory, title and word terms; each candidate is then scored by the linear model of
//! [`crate::model`] over the features of [`crate::signals`], with the evidence for every point.

use crate::index::{FixIndex, IndexError};
use crate::model::Features;
use crate::query::CrashQuery;
use crate::record::Entry;
use crate::signals::{features, round2, score, DfField, IdfKind, Prepared};
use crate::version::{verdict, Verdict};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{TantivyDocument, Term};

/// One piece of evidence for a candidate: one feature of the ranking model ([`crate::model`]).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Evidence {
    /// The feature: `trace`, `top_frame`, `frame_order`, `subject`, `text`, `touched`,
    /// `guilty_subject`, `guilty_text`, `title`, `title_function`, `guilty_file`, `stack_files`,
    /// `directory`, `subsystem`, `alloc_free`, `name_words`, `subject_words`, `kind_agrees`,
    /// `kind_differs`, `version_near`, `version_has_fix`, `version_before_bug`, `fulltext`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What matched (frame names, file paths, titles, kind names, versions).
    pub matched: Vec<String>,
    /// The feature's value (a count, an IDF-weighted sum, or 1 for a yes).
    pub value: f64,
    /// Points this evidence adds to the score: the model weight times the value (negative for
    /// evidence against).
    pub weight: f64,
    pub note: String,
}

/// A ranked candidate fix.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub cve: Option<String>,
    pub commits: Vec<String>,
    pub subject: String,
    /// The sum of `score_parts`.
    pub score: f64,
    /// Points per feature (non-zero ones), as in `evidence`.
    pub score_parts: BTreeMap<String, f64>,
    pub evidence: Vec<Evidence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// `cve` or `git` (or `cve+git` when a history commit is the CVE's fix).
    pub source: String,
    /// The feature values (for fitting the model).
    #[serde(skip)]
    pub features: Features,
    #[serde(skip)]
    pub entry: Entry,
}

/// How many candidates the term query fetches for the re-rank.
const POOL: usize = 200;

impl FixIndex {
    /// Ranks known fixes for a crash, best first. A search-engine error here means damaged
    /// files ([`IndexError::Corrupt`]).
    pub fn search(&self, q: &CrashQuery, top: usize) -> Result<Vec<Candidate>, IndexError> {
        self.search_inner(q, top)
            .map_err(|e| e.damaged(&self.dir().join("tantivy")))
    }

    fn search_inner(&self, q: &CrashQuery, top: usize) -> Result<Vec<Candidate>, IndexError> {
        let searcher = self.reader.searcher();
        let f = self.f;
        let n_docs = searcher.num_docs().max(1) as f64;
        let idf = |df: u64| (1.0 + n_docs / (1.0 + df as f64)).ln();
        let mut p = Prepared::new(q);
        for (field, term, kind, key) in p.keys() {
            if p.idf[kind as usize].contains_key(&key) {
                continue;
            }
            let df = match field {
                DfField::Functions => {
                    let mut m = 0u64;
                    for fl in [f.trace, f.idents, f.subj, f.touched] {
                        m = m.max(searcher.doc_freq(&Term::from_field_text(fl, &term))?);
                    }
                    m
                }
                DfField::Files => searcher.doc_freq(&Term::from_field_text(f.files, &term))?,
                DfField::Subject => searcher.doc_freq(&Term::from_field_text(f.subject, &term))?,
                DfField::Body => searcher.doc_freq(&Term::from_field_text(f.body, &term))?,
            };
            p.idf[kind as usize].insert(key, idf(df));
        }
        // Candidate generation: exact function, file, directory, title and word terms.
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
        for fr in p.frames.iter().chain(&p.aux) {
            let aux = if p.aux.iter().any(|a| std::ptr::eq(a, fr)) {
                0.5
            } else {
                1.0
            };
            let b = aux * fr.w * p.idf(IdfKind::Func, &fr.name);
            clauses.push(term(f.trace, &fr.name, 2.0 * b));
            clauses.push(term(f.subj, &fr.name, 3.0 * b));
            clauses.push(term(f.idents, &fr.name, 1.0 * b));
            clauses.push(term(f.touched, &fr.name, 1.5 * b));
        }
        if let Some(g) = p
            .guilty_func
            .as_ref()
            .filter(|g| !p.frames.iter().any(|x| &x.name == *g))
        {
            // A title without frames (`BUG: memory leak in foo` cut before its backtrace).
            let b = p.idf(IdfKind::Func, g);
            clauses.push(term(f.trace, g, 2.0 * b));
            clauses.push(term(f.subj, g, 3.0 * b));
            clauses.push(term(f.idents, g, b));
        }
        for g in [&p.guilty_file, &p.guilty_frame_file].into_iter().flatten() {
            clauses.push(term(f.files, g, 1.5 * p.idf(IdfKind::File, g)));
        }
        for (file, w) in &p.stack_files {
            clauses.push(term(f.files, file, 0.8 * w * p.idf(IdfKind::File, file)));
        }
        for file in &p.aux_files {
            clauses.push(term(f.files, file, 0.3 * p.idf(IdfKind::File, file)));
        }
        for file in &q.files {
            // Files named by the crash text (`kernel BUG at kernel/timer.c:1105`).
            if p.guilty_file.as_ref() != Some(file) && !p.stack_files.iter().any(|x| &x.0 == file) {
                clauses.push(term(f.files, file, 1.0));
            }
        }
        for d in &p.guilty_dirs {
            clauses.push(term(f.dirs, d, 0.5));
        }
        if let Some(t) = &p.title {
            clauses.push(term(f.titles, t, 10.0));
        }
        for (wd, pw) in &p.words {
            clauses.push(term(f.subject, wd, 0.3 * pw * p.idf(IdfKind::SubjWord, wd)));
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
        let hits = searcher.search(&bq, &TopDocs::with_limit(POOL))?;
        // Score every hit on the shared entry; build candidates (clone entries) for the best
        // only.
        let mut scored: Vec<(f64, Features, Vec<Evidence>, Arc<Entry>)> = Vec::new();
        for (bm25, addr) in hits {
            let Some(e) = self.entry_at(&searcher, addr)? else {
                continue;
            };
            let (x, mut evidence) = features(&p, &e, bm25 as f64);
            // Evidence the model gives no points is not shown (it stays in `features`).
            evidence.retain(|ev| ev.weight != 0.0);
            scored.push((round2(score(&x)), x, evidence, e));
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.3.cve.cmp(&b.3.cve)));
        // Git commits may fold into a CVE further down: keep some slack for that.
        scored.truncate(top.saturating_add(32));
        let mut cands: Vec<Candidate> = Vec::new();
        for (sc, x, evidence, e) in scored {
            let mut parts = BTreeMap::new();
            for ev in &evidence {
                *parts.entry(ev.kind.clone()).or_insert(0.0) += ev.weight;
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
                score: sc,
                score_parts: parts,
                evidence,
                verdict,
                source: e.source.clone(),
                features: x,
                entry: (*e).clone(),
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
