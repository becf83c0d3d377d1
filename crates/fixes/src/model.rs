//! The ranking model: a linear score over named features of a (crash, fix) pair,
//! `score = sum_i WEIGHTS[i] * x_i`. Each non-zero term is a *score part*, shown with its evidence.
//!
//! The weights are fit on the tuning part of the syzbot development set
//! ([`crate::devset::Part::Tuning`], 119 reports) together with a ninth of the CVE-text
//! evaluation's synthesized console logs (cases 1 mod 9, disjoint from the ones the test
//! measures, at half the total loss weight) by `cargo run -p kmortem-fixes --example fit -- HOME`:
//! listwise softmax regression over each report's candidate pool, each weight kept on its side
//! of zero ([`sign`]), the L2 strength picked by 4-fold cross-validation inside the tuning part
//! (2026-12-03: L2 0; CV recall@1 0.714, recall@5 0.866, 0.805 on no-trace rows). Rounded to two
//! decimals and kept here, so a ranking never depends on the dev set at run time. Re-fit when a
//! feature changes; never fit on the measured-only part.
//!
//! What the fit says: on syzbot reports the kernel version (a fix released soon after the
//! crashing kernel), the guilty function named in the fix's message, a quoted title, the guilty
//! file's directory and a disagreeing crash kind carry the ranking, on top of the full-text
//! score of the term query (which already weighs the frame, file and title terms by their
//! rarity). Features at 0 add nothing the others do not already say on the tuning data; they
//! stay computed (and shown in `--json` as evidence with 0 points) so a re-fit can use them.

/// Feature names, in the order of [`WEIGHTS`]. Documented in `docs/json/fixes.md`.
pub const FEATURES: &[&str] = &[
    "trace",
    "trace_top",
    "top_frame",
    "frame_order",
    "subject",
    "text",
    "touched",
    "guilty_subject",
    "guilty_text",
    "title",
    "title_function",
    "title_words",
    "guilty_file",
    "stack_files",
    "directory",
    "subsystem",
    "alloc_free",
    "name_words",
    "subject_words",
    "kind_agrees",
    "kind_differs",
    "version_near",
    "version_recent",
    "version_has_fix",
    "version_before_bug",
    "fulltext",
];

/// Number of features.
pub const N: usize = 26;

/// Weights, fit on the tuning part (see the module documentation).
pub const WEIGHTS: [f64; N] = [
    0.04,  // trace
    0.04,  // trace_top
    0.00,  // top_frame
    0.00,  // frame_order
    0.00,  // subject
    0.00,  // text
    0.10,  // touched
    0.00,  // guilty_subject
    1.03,  // guilty_text
    1.24,  // title
    0.00,  // title_function
    0.04,  // title_words
    0.00,  // guilty_file
    0.00,  // stack_files
    0.77,  // directory
    0.00,  // subsystem
    0.00,  // alloc_free
    0.10,  // name_words
    0.02,  // subject_words
    0.00,  // kind_agrees
    -2.69, // kind_differs
    2.79,  // version_near
    4.11,  // version_recent
    0.00,  // version_has_fix
    -1.57, // version_before_bug
    2.03,  // fulltext
];

/// The sign a weight must have: evidence for (`1`) or against (`-1`) a candidate. The fit keeps
/// each weight on its side of zero (a feature that the tuning part finds useless gets 0, not a
/// reversed meaning).
pub fn sign(name: &str) -> f64 {
    match name {
        "kind_differs" | "version_has_fix" | "version_before_bug" => -1.0,
        _ => 1.0,
    }
}

/// Index of a feature by name.
pub fn index(name: &str) -> Option<usize> {
    FEATURES.iter().position(|f| *f == name)
}

/// Feature values of one candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Features(pub [f64; N]);

impl Default for Features {
    fn default() -> Self {
        Features([0.0; N])
    }
}

impl Features {
    pub fn set(&mut self, name: &str, v: f64) {
        if let Some(i) = index(name) {
            self.0[i] = v;
        }
    }
    pub fn get(&self, name: &str) -> f64 {
        index(name).map(|i| self.0[i]).unwrap_or(0.0)
    }
    /// The score under `w`.
    pub fn score(&self, w: &[f64; N]) -> f64 {
        self.0.iter().zip(w).map(|(x, w)| x * w).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_weights_line_up() {
        assert_eq!(FEATURES.len(), N);
        let mut seen = std::collections::HashSet::new();
        assert!(FEATURES.iter().all(|f| seen.insert(*f)));
        let mut x = Features::default();
        x.set("title", 1.0);
        x.set("kind_differs", 1.0);
        assert_eq!(
            x.score(&WEIGHTS),
            WEIGHTS[index("title").unwrap()] + WEIGHTS[index("kind_differs").unwrap()]
        );
    }
}
