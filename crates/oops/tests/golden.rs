//! Golden tests: each `tests/golden/NAME.log` (a small real-shaped log) is parsed and the reports
//! compared, as JSON, with `tests/golden/NAME.json`. One test per file.
//!
//! To regenerate after an intended change: `KMORTEM_BLESS=1 cargo test -p kmortem-oops --test
//! golden`, then review the diff of the `.json` files.

use std::path::PathBuf;

fn golden(name: &str) {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden"));
    let log = std::fs::read(dir.join(format!("{name}.log"))).unwrap();
    let reports = kmortem_oops::parse(&log);
    let got = serde_json::to_string_pretty(&reports).unwrap() + "\n";
    let path = dir.join(format!("{name}.json"));
    if std::env::var_os("KMORTEM_BLESS").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with KMORTEM_BLESS=1 to create it)",
            path.display()
        )
    });
    // Streaming and whole-input parsing must agree.
    let mut s = kmortem_oops::Scanner::new();
    let mut streamed = Vec::new();
    for line in log
        .strip_suffix(b"\n")
        .unwrap_or(&log)
        .split(|&b| b == b'\n')
    {
        streamed.extend(s.push_line(line));
    }
    streamed.extend(s.finish());
    streamed.sort_by_key(|r| r.start_line);
    assert_eq!(streamed, reports, "{name}: Scanner and parse() disagree");
    assert_eq!(got, want, "{name}: output differs from {}", path.display());
}

macro_rules! golden_tests {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { golden(stringify!($name)); })*
        /// Every `.log` in the directory has a test above.
        #[test]
        fn every_golden_file_has_a_test() {
            let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden"));
            let known = [$(stringify!($name)),*];
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "log") {
                    let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
                    assert!(known.contains(&stem.as_str()), "no golden test for {stem}.log");
                }
            }
        }
    };
}

golden_tests!(
    arm64_paging,
    crlf_hung_task_truncated,
    dmesg_t_gpf,
    interleaved_callers,
    kmsg_soft_lockup,
    oom_kill,
    panic_after_oops,
    second_report_same_task,
    ubsan_shift,
    kfence_uaf,
    mce,
    stack_protector,
    journal_warning_panic_on_warn,
);
