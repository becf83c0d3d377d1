//! The crash lab's real console logs (each scenario's `console.log`), on every kernel pinned in
//! `lab/kernels.toml` (`kmortem_lab::each`; the titles themselves are checked by the lab crate's
//! tests/titles.rs). Every console holds exactly the reports its `meta.json` counts
//! (`expected_reports`: one crash, with benign WARNINGs before it in `warn_then_oops`), the panic
//! that follows an oops belongs to its report, and the title agreement of the picked crash
//! (`kmortem_oops::pick_fatal`) with the lab's expected title is printed per kernel.

#[test]
fn lab_console_logs() {
    kmortem_lab::each(lab_console_logs_on);
}

fn lab_console_logs_on(lab: &kmortem_lab::Lab) {
    let scenarios = lab.scenarios().expect("lab scenarios");
    let (mut consoles, mut agree, mut with_expect, mut panics) = (0, 0, 0, 0);
    let mut disagree = Vec::new();
    for sc in &scenarios {
        let c = sc.console_log();
        let log = std::fs::read(&c).unwrap_or_else(|e| panic!("{}: {e}", c.display()));
        consoles += 1;
        let reports: Vec<_> = kmortem_oops::parse(&log)
            .into_iter()
            .filter(|r| !r.kind.is_event())
            .collect();
        let want = if sc.meta.expected_title.is_some() {
            sc.meta.expected_reports
        } else {
            0
        };
        assert!(
            reports.len() <= want.max(1),
            "{}: {} reports, meta.json counts {want}: {:#?}",
            c.display(),
            reports.len(),
            reports.iter().map(|r| &r.title).collect::<Vec<_>>()
        );
        let text = String::from_utf8_lossy(&log);
        let fatal = kmortem_oops::pick_fatal(&reports).map(|p| &reports[p.index]);
        if let Some(r) = fatal {
            if text.contains("---[ end trace") && text.contains("Kernel panic - not syncing") {
                assert!(
                    r.panic_message.is_some(),
                    "{}: the panic was not attached to {:?}",
                    c.display(),
                    r.title
                );
                panics += 1;
            }
        }
        let got = fatal.map(|r| r.title.clone());
        if let Some(e) = &sc.meta.expected_title {
            with_expect += 1;
            if got.as_deref() == Some(e.as_str()) {
                agree += 1;
            } else {
                disagree.push(format!("{}: got {got:?}, lab expects {e:?}", sc.meta.name));
            }
        }
    }
    for d in &disagree {
        println!("  {d}");
    }
    println!(
        "lab consoles: {consoles} files, no more reports than meta.json counts, {panics} panics attached to \
         their oops; the title agrees with the lab's expectation on {agree}/{with_expect}"
    );
    assert!(
        consoles >= 20 && with_expect > 0 && panics > 0,
        "{consoles} consoles"
    );
}
