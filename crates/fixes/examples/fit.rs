//! Fits the ranking model's weights ([`kmortem_fixes::model::WEIGHTS`]) on the tuning part of the
//! syzbot dev set, and prints them as Rust for `src/model.rs`.
//!
//!   cargo run --release -p kmortem-fixes --example fit -- HOME [DEV_DIR]
//!
//! `HOME` holds a full index of `../shared/data/kernel-vulns` (the `syzbot` example builds one).
//! Model: score = w . x over each report's candidate pool (the term query's top 400);
//! loss = -log(sum over the expected CVEs of softmax(score)), averaged over the reports whose
//! expected CVE is in the pool, + L2 * |w|^2 on features scaled by their standard deviation.
//! Descent: Adam, with each weight kept on the side of zero [`model::sign`] gives it.
//! The L2 strength is picked by 4-fold cross-validation inside the tuning part (folds by another
//! hash of the bug id). Only the tuning part is read: the measured-only part is never loaded here.

use kmortem_fixes::devset::{self, fnv1a64, Part, Recall};
use kmortem_fixes::model::{self, FEATURES, N, WEIGHTS};
use kmortem_fixes::FixIndex;
use std::path::PathBuf;

/// One report: candidates' features, labels, quotes-a-trace, fold (`u64::MAX` for synthesized
/// console logs, which are in every training set and no test fold), loss weight.
struct Row {
    xs: Vec<[f64; N]>,
    ys: Vec<bool>,
    quotes: bool,
    fold: u64,
    weight: f64,
}

fn fit(rows: &[&Row], sd: &[f64; N], l2: f64) -> [f64; N] {
    // FREEZE=a,b: features held at 0 (to see what the others do without them).
    let freeze: Vec<String> = std::env::var("FREEZE")
        .unwrap_or_default()
        .split(',')
        .map(String::from)
        .collect();
    let sign: [f64; N] = std::array::from_fn(|j| {
        if freeze.iter().any(|f| f == FEATURES[j]) {
            0.0
        } else {
            model::sign(FEATURES[j])
        }
    });
    let mut w: [f64; N] = std::array::from_fn(|j| (WEIGHTS[j] * sd[j]) * 0.0 + 0.1 * sign[j]);
    let (mut m1, mut m2) = ([0.0f64; N], [0.0f64; N]);
    let (b1, b2, lr) = (0.9, 0.999, 0.03);
    for it in 1..=1200 {
        let mut g = [0.0f64; N];
        let mut used = 0.0f64;
        for r in rows {
            if !r.ys.iter().any(|y| *y) {
                continue;
            }
            used += r.weight;
            let s: Vec<f64> =
                r.xs.iter()
                    .map(|x| (0..N).map(|j| w[j] * x[j] / sd[j]).sum())
                    .collect();
            let mx = s.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = s.iter().map(|v| (v - mx).exp()).collect();
            let z: f64 = e.iter().sum();
            let zp: f64 = e
                .iter()
                .zip(&r.ys)
                .filter(|(_, y)| **y)
                .map(|(v, _)| v)
                .sum();
            for (i, x) in r.xs.iter().enumerate() {
                let p_all = e[i] / z;
                let p_pos = if r.ys[i] { e[i] / zp } else { 0.0 };
                for j in 0..N {
                    g[j] += r.weight * (p_all - p_pos) * x[j] / sd[j];
                }
            }
        }
        for j in 0..N {
            g[j] = g[j] / used.max(1.0) + 2.0 * l2 * w[j];
            m1[j] = b1 * m1[j] + (1.0 - b1) * g[j];
            m2[j] = b2 * m2[j] + (1.0 - b2) * g[j] * g[j];
            let mh = m1[j] / (1.0 - b1.powi(it));
            let vh = m2[j] / (1.0 - b2.powi(it));
            w[j] -= lr * mh / (vh.sqrt() + 1e-8);
            if w[j] * sign[j] < 0.0 || sign[j] == 0.0 {
                w[j] = 0.0;
            }
        }
    }
    std::array::from_fn(|j| (w[j] / sd[j] * 100.0).round() / 100.0)
}

fn recall(rows: &[&Row], wt: &[f64; N]) -> Recall {
    let mut r = Recall::default();
    for row in rows {
        let s: Vec<f64> = row
            .xs
            .iter()
            .map(|x| (0..N).map(|j| wt[j] * x[j]).sum())
            .collect();
        let mut order: Vec<usize> = (0..row.xs.len()).collect();
        order.sort_by(|a, b| s[*b].total_cmp(&s[*a]));
        let rank = order.iter().position(|i| row.ys[*i]).map(|p| p + 1);
        r.add(rank.filter(|r| *r <= 5), row.quotes);
    }
    r
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let home = PathBuf::from(
        args.first()
            .map(|s| s.as_str())
            .unwrap_or("/tmp/kmortem-fixes-dev"),
    );
    let dev = PathBuf::from(
        args.get(1)
            .map(|s| s.as_str())
            .unwrap_or("../shared/data/syzbot-fixes-dev"),
    );
    let ix = FixIndex::open(&home).expect("index (run the syzbot example first)");
    let cases: Vec<_> = devset::load(&dev)
        .expect("dev set")
        .into_iter()
        .filter(|c| c.part == Part::Tuning)
        .collect();
    let mut data: Vec<Row> = Vec::new();
    for c in &cases {
        let q = devset::query_of(c).expect("report");
        let got = ix.search(&q, 400).expect("search");
        data.push(Row {
            xs: got.iter().map(|x| x.features.0).collect(),
            ys: got
                .iter()
                .map(|x| x.cve.as_ref().is_some_and(|id| c.expected.contains(id)))
                .collect(),
            quotes: c.quotes_trace,
            fold: (fnv1a64(&format!("fold:{}", c.bug_id)) >> 7) % 4,
            weight: 1.0,
        });
    }
    // The CVE-text evaluation's kind of query (synthesized console logs of quoted traces), so
    // that the weights keep serving it: cases 1 mod 9 (the test measures cases 0 mod 3), with
    // half the loss weight of a syzbot report in all.
    let vulns = dev
        .parent()
        .map(|d| d.join("kernel-vulns"))
        .expect("dev dir parent");
    let synth: Vec<_> = kmortem_fixes::eval::cases(&vulns)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 9 == 1)
        .map(|(_, c)| c)
        .collect();
    let sw = 0.5 * cases.len() as f64 / synth.len().max(1) as f64;
    for c in &synth {
        let q = kmortem_fixes::CrashQuery::from_text(&c.log);
        let got = ix.search(&q, 400).expect("search");
        data.push(Row {
            xs: got.iter().map(|x| x.features.0).collect(),
            ys: got
                .iter()
                .map(|x| x.cve.as_deref() == Some(c.id.as_str()))
                .collect(),
            quotes: true,
            fold: u64::MAX,
            weight: sw,
        });
    }
    println!(
        "synthesized console logs: {} (loss weight {sw:.2} each)",
        synth.len()
    );
    let in_pool = data.iter().filter(|r| r.ys.iter().any(|y| *y)).count();
    println!(
        "tuning reports: {}, expected CVE in the candidate pool: {in_pool}",
        cases.len()
    );
    for j in 0..N {
        let (mut pos, mut npos, mut neg, mut nneg) = (0.0, 0.0, 0.0, 0.0);
        for r in &data {
            for (x, y) in r.xs.iter().zip(&r.ys) {
                if *y {
                    npos += 1.0;
                    pos += (x[j] != 0.0) as u8 as f64;
                } else {
                    nneg += 1.0;
                    neg += (x[j] != 0.0) as u8 as f64;
                }
            }
        }
        println!(
            "  {:<20} fires on {:>5.1}% of expected, {:>5.1}% of others",
            FEATURES[j],
            100.0 * pos / f64::max(npos, 1.0),
            100.0 * neg / f64::max(nneg, 1.0)
        );
    }
    let mut sd = [1.0f64; N];
    for (j, s) in sd.iter_mut().enumerate() {
        let (mut n, mut m, mut m2) = (0.0f64, 0.0f64, 0.0f64);
        for r in &data {
            for x in &r.xs {
                n += 1.0;
                m += x[j];
                m2 += x[j] * x[j];
            }
        }
        let var = (m2 / n.max(1.0) - (m / n.max(1.0)).powi(2)).max(0.0);
        *s = if var > 1e-9 { var.sqrt() } else { 1.0 };
    }
    let all: Vec<&Row> = data.iter().collect();
    let mut best = (f64::MIN, 0.0);
    let grid: Vec<f64> = std::env::var("L2")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![0.0, 0.003, 0.01, 0.03]);
    for l2 in grid {
        let mut cv = Recall::default();
        for k in 0..4 {
            let train: Vec<&Row> = data.iter().filter(|r| r.fold != k).collect();
            // (synthesized rows have fold u64::MAX: always trained on, never tested here)
            let test: Vec<&Row> = data.iter().filter(|r| r.fold == k).collect();
            debug_assert!(test.iter().all(|r| r.fold != u64::MAX));
            let w = fit(&train, &sd, l2);
            let r = recall(&test, &w);
            cv.n += r.n;
            cv.at1 += r.at1;
            cv.at5 += r.at5;
            cv.n_no += r.n_no;
            cv.at1_no += r.at1_no;
            cv.at5_no += r.at5_no;
        }
        let obj = cv.r1() + cv.r5() + cv.r5_no();
        println!("L2 {l2:<6} 4-fold CV on the tuning part: {cv}");
        if obj > best.0 {
            best = (obj, l2);
        }
    }
    let fitted = fit(&all, &sd, best.1);
    let syz: Vec<&Row> = data.iter().filter(|r| r.fold != u64::MAX).collect();
    let syn: Vec<&Row> = data.iter().filter(|r| r.fold == u64::MAX).collect();
    println!("current weights (in sample): {}", recall(&syz, &WEIGHTS));
    println!(
        "fitted, L2 {} (in sample):   {}",
        best.1,
        recall(&syz, &fitted)
    );
    println!("synthesized, current: {}", recall(&syn, &WEIGHTS));
    println!("synthesized, fitted:  {}", recall(&syn, &fitted));
    println!("pub const WEIGHTS: [f64; N] = [");
    for j in 0..N {
        println!("    {:.2}, // {}", fitted[j], FEATURES[j]);
    }
    println!("];");
}
