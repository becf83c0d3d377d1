//! The syzbot development set: real syzbot crash reports, each with the CVE(s) whose fix commit
//! syzbot recorded (`../shared/data/syzbot-fixes-dev/`, `dev.tsv`), and the recall figures of a
//! ranking over it.
//!
//! The set is split by a stable hash of the bug id (FNV-1a 64 of the report's file stem): about
//! 60% to [`Part::Tuning`] (weights are fit and errors looked at there only) and 40% to
//! [`Part::Measured`] (only its final figures are looked at). The split does not depend on the
//! reports' contents, so it stays the same when rows are added.

use std::fmt;
use std::path::{Path, PathBuf};

/// Which part of the dev set a report belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// Weights are fit here and failures inspected.
    Tuning,
    /// Only measured: never inspected case by case while tuning.
    Measured,
}

impl Part {
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Tuning => "tuning",
            Part::Measured => "measured-only",
        }
    }
}

/// FNV-1a, 64 bits.
pub fn fnv1a64(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The part of a bug id: hash mod 5 in {0, 1} is measured-only.
pub fn part_of(bug_id: &str) -> Part {
    if fnv1a64(bug_id) % 5 < 2 {
        Part::Measured
    } else {
        Part::Tuning
    }
}

/// One row of `dev.tsv`.
#[derive(Debug, Clone)]
pub struct DevCase {
    /// The report's file stem (syzbot's bug id).
    pub bug_id: String,
    pub report: PathBuf,
    /// syzbot's title (informational: the query is the report text, which carries its own).
    pub syzbot_title: String,
    /// CVE ids (one fix may close several).
    pub expected: Vec<String>,
    /// `cve_quotes_a_trace = yes`.
    pub quotes_trace: bool,
    pub part: Part,
}

/// Errors reading the dev set.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{path}:{line}: {why}")]
    Row {
        path: PathBuf,
        line: usize,
        why: String,
    },
}

/// Reads `dir/dev.tsv` (columns `report syzbot_title expected_cve fix_sha cve_quotes_a_trace`).
pub fn load(dir: &Path) -> Result<Vec<DevCase>, DevError> {
    let tsv = dir.join("dev.tsv");
    let text = std::fs::read_to_string(&tsv).map_err(|e| DevError::Io(tsv.clone(), e))?;
    let mut out = Vec::new();
    let mut cols: Option<Vec<String>> = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let Some(c) = &cols else {
            cols = Some(f.iter().map(|s| s.trim().to_string()).collect());
            continue;
        };
        let get = |name: &str| -> Result<&str, DevError> {
            c.iter()
                .position(|x| x == name)
                .and_then(|p| f.get(p).copied())
                .ok_or_else(|| DevError::Row {
                    path: tsv.clone(),
                    line: i + 1,
                    why: format!("no {name} column"),
                })
        };
        let report = get("report")?;
        let bug_id = Path::new(report)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let expected: Vec<String> = get("expected_cve")?
            .split([' ', ','])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if expected.is_empty() {
            return Err(DevError::Row {
                path: tsv.clone(),
                line: i + 1,
                why: "empty expected_cve".into(),
            });
        }
        out.push(DevCase {
            part: part_of(&bug_id),
            bug_id,
            report: dir.join(report),
            syzbot_title: get("syzbot_title")?.to_string(),
            expected,
            quotes_trace: get("cve_quotes_a_trace")?.trim() == "yes",
        });
    }
    Ok(out)
}

/// The 1-based rank of the first expected id in a ranked list of ids.
pub fn rank_of<S: AsRef<str>>(ranked: &[Option<S>], expected: &[String]) -> Option<usize> {
    ranked
        .iter()
        .position(|id| {
            id.as_ref()
                .is_some_and(|id| expected.iter().any(|e| e == id.as_ref()))
        })
        .map(|p| p + 1)
}

/// Recall counts over a set of cases, overall and on the rows whose CVE quotes no trace.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Recall {
    pub n: usize,
    pub at1: usize,
    pub at5: usize,
    pub n_no: usize,
    pub at1_no: usize,
    pub at5_no: usize,
}

impl Recall {
    pub fn add(&mut self, rank: Option<usize>, quotes_trace: bool) {
        let r1 = rank == Some(1);
        let r5 = rank.is_some_and(|r| r <= 5);
        self.n += 1;
        self.at1 += r1 as usize;
        self.at5 += r5 as usize;
        if !quotes_trace {
            self.n_no += 1;
            self.at1_no += r1 as usize;
            self.at5_no += r5 as usize;
        }
    }
    fn frac(a: usize, n: usize) -> f64 {
        if n == 0 {
            0.0
        } else {
            a as f64 / n as f64
        }
    }
    pub fn r1(&self) -> f64 {
        Self::frac(self.at1, self.n)
    }
    pub fn r5(&self) -> f64 {
        Self::frac(self.at5, self.n)
    }
    pub fn r1_no(&self) -> f64 {
        Self::frac(self.at1_no, self.n_no)
    }
    pub fn r5_no(&self) -> f64 {
        Self::frac(self.at5_no, self.n_no)
    }
}

impl fmt::Display for Recall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n={:>3} recall@1={:.3} recall@5={:.3} | no-trace rows n={:>3} recall@1={:.3} recall@5={:.3}",
            self.n,
            self.r1(),
            self.r5(),
            self.n_no,
            self.r1_no(),
            self.r5_no()
        )
    }
}

/// The crash query of a case's report (the report text only: nothing of `dev.tsv` is used).
pub fn query_of(case: &DevCase) -> Result<crate::CrashQuery, DevError> {
    let b = std::fs::read(&case.report).map_err(|e| DevError::Io(case.report.clone(), e))?;
    Ok(crate::CrashQuery::from_text(&String::from_utf8_lossy(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_stable_and_mixed() {
        // FNV-1a 64 reference values (the split must not move between versions).
        assert_eq!(fnv1a64(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64("a"), 0xaf63_dc4c_8601_ec8c);
        let parts: Vec<Part> = (0..100).map(|i| part_of(&format!("{i:040x}"))).collect();
        let m = parts.iter().filter(|p| **p == Part::Measured).count();
        assert!((25..=55).contains(&m), "{m} of 100 measured");
    }

    #[test]
    fn ranks_and_recall() {
        let ranked = vec![Some("CVE-1"), None, Some("CVE-3")];
        assert_eq!(rank_of(&ranked, &["CVE-3".to_string()]), Some(3));
        assert_eq!(rank_of(&ranked, &["CVE-9".to_string()]), None);
        let mut r = Recall::default();
        r.add(Some(1), true);
        r.add(Some(4), false);
        r.add(None, false);
        assert_eq!((r.at1, r.at5, r.at1_no, r.at5_no, r.n_no), (1, 2, 0, 1, 2));
        assert!((r.r5_no() - 0.5).abs() < 1e-9);
    }
}
