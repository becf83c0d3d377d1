//! The traces quoted in the users' stories (`../shared/seeds/`), read in place.

use std::path::PathBuf;

fn seed(prefix: &str) -> Vec<u8> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/seeds"
    ));
    assert!(
        dir.is_dir(),
        "the shared seeds are missing: expected {}",
        dir.display()
    );
    let entry = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("no seed {prefix}* in {}", dir.display()));
    std::fs::read(entry).unwrap()
}

fn crashes(log: &[u8]) -> Vec<kmortem_oops::Report> {
    kmortem_oops::parse(log)
        .into_iter()
        .filter(|r| !r.kind.is_event())
        .collect()
}

/// Seed 004: a RHEL 7 `kernel BUG at kernel/timer.c:1105!` in a Markdown story. The report
/// is titled after the RIP function, like syzbot would.
#[test]
fn seed_004_kernel_bug_in_cascade() {
    let reports = crashes(&seed("004"));
    println!(
        "{:#?}",
        reports.iter().map(|r| &r.title).collect::<Vec<_>>()
    );
    let r = reports
        .iter()
        .find(|r| r.kind == kmortem_oops::Kind::KernelBug)
        .expect("a kernel BUG report");
    assert_eq!(r.title, "kernel BUG in cascade");
    assert_eq!(
        r.kernel_release.as_deref(),
        Some("3.10.0-514.26.2.el7.x86_64")
    );
    assert_eq!(
        (r.cpu, r.pid, r.comm.as_deref()),
        (Some(0), Some(0), Some("swapper/0"))
    );
    let ip = r.ip.as_ref().unwrap();
    assert_eq!(ip.function.as_deref(), Some("cascade"));
    assert_eq!(ip.address, Some(0xffffffff81096fd2));
    assert_eq!(r.registers.get("cr2"), Some(&0x00007f36032b1b80));
    // The trace starts in <IRQ> with run_timer_softirq; `? timerqueue_add` is unreliable.
    let first = &r.frames[0];
    assert_eq!(first.function, "run_timer_softirq");
    assert_eq!(first.context, kmortem_oops::Context::Irq);
    assert!(r
        .frames
        .iter()
        .any(|f| f.function == "timerqueue_add" && !f.reliable));
    assert!(
        r.signature.contains("cascade") || r.signature.contains("run_timer_softirq"),
        "{}",
        r.signature
    );
}

/// Seed 001: a soft lockup whose header line was glued to bnx2x driver noise. The story quotes
/// no trace, so syzkaller's rules name no frame and call the report corrupted.
#[test]
fn seed_001_soft_lockup() {
    let reports = crashes(&seed("001"));
    println!(
        "{:#?}",
        reports
            .iter()
            .map(|r| (&r.title, r.corrupted))
            .collect::<Vec<_>>()
    );
    let r = reports
        .iter()
        .find(|r| r.kind == kmortem_oops::Kind::SoftLockup)
        .expect("a soft lockup report");
    assert_eq!(r.title, "BUG: soft lockup in corrupted");
    assert!(r.corrupted, "{:?}", r.corrupted_reason);
    assert_eq!(r.alt_titles, vec!["stall in corrupted".to_string()]);
}

/// Seeds 000, 002 and 003 quote `crash` sessions and prose, not console logs. A header word in
/// prose may still be reported (syzkaller does the same), but no structure may be invented for
/// it: no frames, no CPU line, no registers.
#[test]
fn seeds_without_console_logs() {
    let mut seen = 0;
    for s in ["000", "002", "003"] {
        for r in crashes(&seed(s)) {
            seen += 1;
            println!(
                "seed {s}: {:?} corrupted={} reason={:?}",
                r.title, r.corrupted, r.corrupted_reason
            );
            assert!(
                r.frames.is_empty() && r.cpu.is_none() && r.registers.is_empty(),
                "seed {s}: {r:#?}"
            );
        }
    }
    println!("{seen} prose reports");
}
