//! Every crash-lab scenario's console log, parsed by kmortem-oops, must get the title and the
//! kind the scenario meant (see lab/README.md). The live guest must give no report.
//! Builds the lab first if it is missing (lab/build prints its progress).

use kmortem_lab::Lab;

#[test]
fn every_lab_console_gets_its_title_and_kind() {
    let lab = Lab::get().unwrap_or_else(|e| panic!("crash lab unavailable: {e}"));
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
        match reports.first() {
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
        "lab titles: {good}/{} scenarios titled and kinded as expected",
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
    let lab = Lab::get().unwrap_or_else(|e| panic!("crash lab unavailable: {e}"));
    for sc in lab.scenarios().expect("lab scenarios") {
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
