//! The naive baseline the ranking must beat: a bag of function names with IDF weights. A fix's
//! bag is every function its record names (quoted trace, subject, text, touched); a crash's bag is
//! every frame of its report; the score is the sum of the IDF of the shared names.

use crate::index::{FixIndex, IndexError};
use crate::query::CrashQuery;
use std::collections::{HashMap, HashSet};

/// The baseline's in-memory index.
pub struct Baseline {
    ids: Vec<Option<String>>,
    /// Function name -> documents that name it.
    postings: HashMap<String, Vec<u32>>,
    n: f64,
}

impl Baseline {
    /// Builds the bags from every entry of the index.
    pub fn build(ix: &FixIndex) -> Result<Baseline, IndexError> {
        let mut b = Baseline {
            ids: Vec::new(),
            postings: HashMap::new(),
            n: 0.0,
        };
        for (_, e) in ix.entries()? {
            let doc = b.ids.len() as u32;
            let bag: HashSet<&String> = e
                .trace
                .iter()
                .chain(&e.subject_funcs)
                .chain(&e.funcs)
                .chain(&e.touched)
                .collect();
            for name in bag {
                b.postings.entry(name.clone()).or_default().push(doc);
            }
            b.ids.push(e.cve.clone());
        }
        b.n = b.ids.len() as f64;
        Ok(b)
    }

    /// CVE ids (or `None` for commits without one), best first.
    pub fn search(&self, q: &CrashQuery, top: usize) -> Vec<Option<String>> {
        let mut scores: HashMap<u32, f64> = HashMap::new();
        let names: HashSet<&str> = q.frames.iter().map(|f| f.function.as_str()).collect();
        for name in names {
            let Some(docs) = self.postings.get(name) else {
                continue;
            };
            let idf = (self.n / docs.len() as f64).ln();
            for d in docs {
                *scores.entry(*d).or_insert(0.0) += idf;
            }
        }
        let mut v: Vec<(u32, f64)> = scores.into_iter().collect();
        v.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then_with(|| self.ids[a.0 as usize].cmp(&self.ids[b.0 as usize]))
        });
        v.into_iter()
            .take(top)
            .map(|(d, _)| self.ids[d as usize].clone())
            .collect()
    }
}
