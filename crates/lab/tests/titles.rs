//! Every crash-lab scenario's console log, parsed by kmortem-oops, must get the title and the
//! kind the scenario meant (see lab/README.md). The live guest must give no report.
//! Builds the lab first if it is missing (lab/build prints its progress).

use kmortem_lab::Lab;

#[test]
fn every_lab_console_gets_its_title_and_kind() {
    kmortem_lab::each(titles_of);
}

fn titles_of(lab: &Lab) {
    let scenarios = lab.scenarios().expect("lab scenarios");
    assert!(
        scenarios.len() >= 20,
        "the lab should have at least 20 scenarios, has {}",
        scenarios.len()
    );
    let mut bad = Vec::new();
    let mut good = 0;
    for sc in &scenarios {
        let log = std::fs::read(sc.console_log())
            .unwrap_or_else(|e| panic!("{}: {e}", sc.console_log().display()));
        let reports: Vec<_> = kmortem_oops::parse(&log)
            .into_iter()
            .filter(|r| !r.kind.is_event())
            .collect();
        let (Some(title), Some(kind)) = (&sc.meta.expected_title, &sc.meta.kind) else {
            // the live guest: nothing crashed
            if let Some(r) = reports.first() {
                bad.push(format!(
                    "{}: expected no report, got {:?}",
                    sc.meta.name, r.title
                ));
            } else {
                good += 1;
            }
            continue;
        };
        // The crash is the report that ended the machine (warn_then_oops has a benign WARNING
        // first): kmortem-oops' pick, and the console holds at least the reports meta.json
        // counts (a panic may parse as a report of its own after the one it ends).
        if reports.len() < sc.meta.expected_reports {
            bad.push(format!(
                "{}: {} reports, expected {}",
                sc.meta.name,
                reports.len(),
                sc.meta.expected_reports
            ));
            continue;
        }
        let fatal = kmortem_oops::pick_fatal(&reports).map(|p| &reports[p.index]);
        match fatal {
            None => bad.push(format!(
                "{}: no report found (expected {title:?})",
                sc.meta.name
            )),
            Some(r) if &r.title != title || r.kind.as_str() != kind => bad.push(format!(
                "{}: got {:?} ({}), expected {title:?} ({kind})",
                sc.meta.name,
                r.title,
                r.kind.as_str()
            )),
            Some(r) => {
                println!("ok   {:28} {}", sc.meta.name, r.title);
                good += 1;
            }
        }
    }
    for b in &bad {
        println!("FAIL {b}");
    }
    println!(
        "lab titles [{}]: {good}/{} scenarios titled and kinded as expected",
        lab.name(),
        scenarios.len()
    );
    assert!(
        bad.is_empty(),
        "{} scenario(s) mis-titled:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn meta_matches_the_files_on_disk() {
    kmortem_lab::each(meta_matches);
}

/// Every pinned kernel has every scenario `lab/build --list` names, and each `meta.json` says
/// what is on disk, for the kernel it was built for.
fn meta_matches(lab: &Lab) {
    let listed = std::process::Command::new(kmortem_lab::repo_root().join("lab/build"))
        .arg("--list")
        .output()
        .expect("lab/build --list");
    let names: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert!(names.len() >= 20, "lab/build --list: {names:?}");
    for n in &names {
        lab.need(n);
    }
    for sc in lab.scenarios().expect("lab scenarios") {
        assert_eq!(sc.meta.kernel_release, lab.release(), "{}", sc.meta.name);
        assert_eq!(
            sc.meta.kernel_name.as_deref(),
            Some(lab.name()),
            "{}",
            sc.meta.name
        );
        assert!(sc.console_log().exists(), "{}: console.log", sc.meta.name);
        assert!(!sc.meta.dumps.is_empty(), "{}: no dumps", sc.meta.name);
        for d in &sc.meta.dumps {
            let p = sc.dir.join(&d.file);
            let len = std::fs::metadata(&p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .len();
            assert_eq!(len, d.bytes, "{}: size of {}", sc.meta.name, d.file);
        }
        assert!(sc.meta.vmlinux.exists(), "{}: vmlinux", sc.meta.name);
        assert!(
            sc.oracle("timings.json").exists(),
            "{}: timings",
            sc.meta.name
        );
        if sc.meta.kaslr && !sc.meta.variant.live {
            assert_ne!(
                sc.meta.kaslr_offset_value(),
                0,
                "{}: KASLR offset",
                sc.meta.name
            );
        }
        if sc.meta.variant.nokaslr {
            assert_eq!(
                sc.meta.kaslr_offset_value(),
                0,
                "{}: nokaslr offset",
                sc.meta.name
            );
        }
    }
}
