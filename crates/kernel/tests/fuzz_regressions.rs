//! Every input a fuzz target ever found a problem with (fuzz/regressions/TARGET/*), replayed
//! through the same entry point as the target, for the kernel crate's targets. A finding of
//! `scripts/fuzz` becomes a file here; the test fails (or aborts, for a stack overflow) until
//! the bug is fixed.

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .map(|p| {
                    let b = std::fs::read(&p).unwrap();
                    (p, b)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn btf_regressions() {
    let all = inputs("btf");
    assert!(
        !all.is_empty(),
        "fuzz/regressions/btf holds issue 25's reproducer"
    );
    for (p, data) in &all {
        kmortem_kernel::btf::fuzz_btf(data);
        println!("btf: {} ({} bytes): no panic", p.display(), data.len());
    }
}

#[test]
fn kallsyms_and_vmcoreinfo_regressions() {
    for (p, data) in inputs("kallsyms") {
        kmortem_kernel::kallsyms::fuzz_kallsyms(&data);
        println!("kallsyms: {}: no panic", p.display());
    }
    for (p, data) in inputs("vmcoreinfo") {
        let v = kmortem_kernel::VmcoreInfo::parse(&data);
        let _ = v.symbol("prb");
        println!("vmcoreinfo: {}: no panic", p.display());
    }
}
