//! Issue 21: explain on every explain-relevant lab scenario (the seed patterns, their new
//! shapes, and the `_O1`/`_Os` builds), console-only and with the vmcore, against the expected
//! findings written down in `expected/mod.rs` before the code that finds them. Prints one table
//! row per scenario x kernel x opt level x input (the table in BENCHMARKS.md); fails on a wrong
//! pick anywhere, and on a wrong top finding for the scenarios marked `must`.
//!
//! Scenarios missing from a lab are listed as `not built` (a fresh `lab/build` builds them all).
//! `KMORTEM_CACHE=DIR` points at another lab (the new shapes were first built in a private one).

mod expected;

use expected::{Expect, Want};
use kmortem_explain::{Context, Finding};
use kmortem_lab::{Lab, Scenario};
use kmortem_symbols::Symbolizer;

/// (picked index, reason, number of reports, findings) for one scenario and input.
fn run(sc: &Scenario, core: bool) -> (usize, String, usize, Vec<Finding>) {
    let log = std::fs::read(sc.console_log()).expect("console.log");
    let text = String::from_utf8_lossy(&log).into_owned();
    let reports = kmortem_oops::parse(&log);
    let pick = kmortem_oops::pick_fatal(&reports).expect("a crash in console.log");
    let prog = if core {
        let dump = sc
            .dump("kdump-zlib")
            .or_else(|| sc.dump("elf"))
            .expect("a vmcore");
        Some(kmortem_kernel::Program::open(&dump, Some(&sc.meta.vmlinux)).expect("open vmcore"))
    } else {
        None
    };
    let mut sym = Symbolizer::new();
    sym.set_vmlinux(&sc.meta.vmlinux).expect("vmlinux");
    sym.add_module_file("kmlab", &sc.meta.kmlab_ko)
        .expect("kmlab.ko");
    let mut ctx = Context {
        sym: &mut sym,
        source: None,
        log: Some(&text),
        program: prog.as_ref(),
    };
    let f = kmortem_explain::explain(&reports[pick.index], &mut ctx);
    (
        pick.index,
        pick.reason.as_str().to_string(),
        reports.len(),
        f,
    )
}

/// What is wrong with a finding against a Want (empty: it matches).
fn mismatch(w: &Want, f: Option<&Finding>) -> Vec<String> {
    let Some(f) = f else {
        return vec!["no finding".into()];
    };
    let mut out = Vec::new();
    if f.kind != w.kind {
        out.push(format!("kind {} (want {})", f.kind, w.kind));
    }
    for (k, m) in w.facts {
        let got = f.facts.get(*k).map(String::as_str);
        if !m.check(got) {
            out.push(format!("{k}={} (want {m:?})", got.unwrap_or("-")));
        }
    }
    for s in w.summary_has {
        if !f.summary.contains(s) {
            out.push(format!("summary lacks {s:?}"));
        }
    }
    out
}

/// One row: `| scenario | kernel | opt | input | pick | top finding | verdict |`; the failures.
fn check(lab: &Lab, sc: &Scenario, e: &Expect, core: bool, rows: &mut Vec<String>) -> Vec<String> {
    let (idx, reason, n, fs) = run(sc, core);
    let mut fails = Vec::new();
    let want_idx = n - 1 - e.picked.0;
    let pick_ok = idx == want_idx && reason == e.picked.1;
    if !pick_ok {
        fails.push(format!(
            "{} [{}]: picked report {} ({reason}), want {want_idx} ({})",
            sc.meta.name,
            lab.name(),
            idx,
            e.picked.1
        ));
    }
    let (want, also) = if core {
        (&e.core, e.core_also)
    } else {
        (&e.console, e.console_also)
    };
    let mut miss = mismatch(want, fs.first());
    for a in also {
        let best = fs.iter().find(|f| f.kind == a.kind);
        miss.extend(
            mismatch(a, best)
                .into_iter()
                .map(|m| format!("{}: {m}", a.kind)),
        );
    }
    let top = fs
        .first()
        .map(|f| format!("[{}] {}", f.confidence.as_str(), f.summary))
        .unwrap_or_else(|| "(no finding)".into());
    rows.push(format!(
        "| {} | {} | {} | {} | {} | {} | {} |",
        e.scenario,
        lab.name(),
        sc.meta.opt.as_deref().unwrap_or("-O2"),
        if core { "vmcore" } else { "console" },
        if pick_ok {
            format!("ok ({}/{n}, {reason})", idx + 1)
        } else {
            format!("WRONG ({}/{n})", idx + 1)
        },
        top.replace('|', "\\|"),
        if miss.is_empty() {
            "as expected".to_string()
        } else {
            format!("differs: {}", miss.join("; ").replace('|', "\\|"))
        }
    ));
    if e.must && !miss.is_empty() {
        fails.push(format!(
            "{} [{}] {}: {}",
            sc.meta.name,
            lab.name(),
            if core { "vmcore" } else { "console" },
            miss.join("; ")
        ));
    }
    fails
}

#[test]
fn explain_names_the_expected_finding_on_every_shape() {
    let rows = std::sync::Mutex::new(Vec::new());
    let fails = std::sync::Mutex::new(Vec::new());
    let checked = std::sync::atomic::AtomicUsize::new(0);
    kmortem_lab::each(|lab| {
        let have = lab.scenarios().expect("the lab's scenarios");
        for e in expected::EXPECTED {
            let mine: Vec<&Scenario> = have
                .iter()
                .filter(|s| s.meta.base_name() == e.scenario)
                .collect();
            if mine.is_empty() {
                rows.lock().unwrap().push(format!(
                    "| {} | {} | - | - | not built | | |",
                    e.scenario,
                    lab.name()
                ));
                continue;
            }
            for sc in mine {
                for core in [false, true] {
                    if core && sc.dump("kdump-zlib").or_else(|| sc.dump("elf")).is_none() {
                        continue;
                    }
                    let mut r = Vec::new();
                    let f = check(lab, sc, e, core, &mut r);
                    rows.lock().unwrap().extend(r);
                    fails.lock().unwrap().extend(f);
                    checked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    });
    println!("| scenario | kernel | opt | input | picked | explain's top finding | vs expected |");
    println!("|---|---|---|---|---|---|---|");
    let rows = rows.into_inner().unwrap();
    for r in &rows {
        println!("{r}");
    }
    let n = checked.into_inner();
    let ok = rows
        .iter()
        .filter(|r| r.ends_with("| as expected |"))
        .count();
    println!("as expected: {ok}/{n} (scenario x kernel x opt x input)");
    let fails = fails.into_inner().unwrap();
    assert!(n > 0, "no expected scenario in the lab");
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}
