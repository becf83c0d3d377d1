//! Evaluation helpers: turn the traces quoted in CVE records into console-log forms a real crash
//! would have (timestamps, a header naming the kind, the CPU line, RIP and registers, `? ` noise
//! frames, fresh offsets, and in half the cases the top frames lost). Used by the recall test and
//! the benchmarks; deterministic for a given seed.

use crate::extract::KindTag;
use crate::record::cve_record;
use kmortem_oops::line::generic_frame as is_generic_frame;
use std::path::Path;

/// xorshift64*: a deterministic generator, so the evaluation is the same on every run.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

pub struct Case {
    pub id: String,
    pub log: String,
}

const NOISE: &[&str] = &[
    "__schedule",
    "schedule_timeout",
    "wait_for_completion",
    "__wake_up_common",
    "_raw_spin_lock_irqsave",
    "kmem_cache_alloc",
    "__kmalloc",
    "lock_acquire",
    "mark_held_locks",
    "trace_hardirqs_on",
    "rcu_read_lock_sched_held",
    "__lock_acquire",
    "find_held_lock",
    "irq_work_run",
    "do_syscall_64",
    "entry_SYSCALL_64_after_hwframe",
];

/// Console-log forms of a quoted trace: timestamps, a header naming the kind, a CPU line, RIP and
/// registers, `? ` noise frames, fresh offsets, and (in half the cases) the top 1-2 frames lost.
///
/// `kernel` is the release the `CPU:` line names (`5.12.0-syzkaller`); [`affected_release`] picks
/// one the record says is affected, as a real crash of the bug would run.
pub fn synthesize(
    id: &str,
    title: Option<&str>,
    kind: Option<KindTag>,
    trace: &[String],
    kernel: &str,
    rng: &mut Rng,
) -> Option<String> {
    let mut frames: Vec<String> = trace.to_vec();
    let key: Vec<usize> = frames
        .iter()
        .enumerate()
        .filter(|(_, f)| !is_generic_frame(f))
        .map(|(i, _)| i)
        .collect();
    if key.len() < 3 {
        return None;
    }
    // Lose top frames: drop everything up to and including the first 1-2 key frames.
    let drop = if rng.below(2) == 0 {
        0
    } else {
        1 + rng.below(2) as usize
    };
    let cut = if drop > 0 {
        key[drop.min(key.len() - 2)]
    } else {
        0
    };
    // Keep generic frames before the cut (a sanitizer's own frames survive)
    let mut kept: Vec<String> = frames[..cut]
        .iter()
        .filter(|f| is_generic_frame(f))
        .cloned()
        .collect();
    kept.extend(frames.drain(cut..));
    let frames = kept;
    let top = frames.iter().find(|f| !is_generic_frame(f))?.clone();
    let mut t = 100.0 + rng.below(5000) as f64 + rng.below(1_000_000) as f64 / 1e6;
    let mut out = String::new();
    let mut line = |s: &str, t: &mut f64| {
        *t += rng_step(*t);
        out.push_str(&format!(
            "[{:>5}.{:06}] {}\n",
            *t as u64,
            ((*t).fract() * 1e6) as u64,
            s
        ));
    };
    let header = match (title, kind) {
        (Some(tl), _) if drop == 0 => tl.to_string(),
        (_, Some(KindTag::UseAfterFree)) => format!("BUG: KASAN: use-after-free in {top}+0x{:x}/0x{:x}", 0x10 + rng.below(0x200), 0x300 + rng.below(0x400)),
        (_, Some(KindTag::OutOfBounds)) => format!("BUG: KASAN: slab-out-of-bounds in {top}+0x{:x}/0x{:x}", 0x10 + rng.below(0x200), 0x300 + rng.below(0x400)),
        (_, Some(KindTag::NullDeref)) => "BUG: kernel NULL pointer dereference, address: 0000000000000010".to_string(),
        (_, Some(KindTag::Warning)) => format!("WARNING: CPU: 1 PID: 4242 at somewhere.c:123 {top}+0x{:x}/0x{:x}", 0x10 + rng.below(0x200), 0x300 + rng.below(0x400)),
        (_, Some(k)) => format!("BUG: {} in {top}", k.as_str()),
        (None, None) => "general protection fault, probably for non-canonical address 0xdffffc0000000002: 0000 [#1] PREEMPT SMP KASAN".to_string(),
        (Some(tl), None) => tl.to_string(),
    };
    line(&header, &mut t);
    line(
        &format!(
            "CPU: {} PID: {} Comm: syz-executor.{} Not tainted {kernel} #0",
            rng.below(4),
            1000 + rng.below(30000),
            rng.below(6),
        ),
        &mut t,
    );
    line(
        "Hardware name: Google Google Compute Engine/Google Compute Engine, BIOS Google 07/22/2023",
        &mut t,
    );
    line(
        &format!(
            "RIP: 0010:{top}+0x{:x}/0x{:x}",
            0x10 + rng.below(0x300),
            0x400 + rng.below(0x400)
        ),
        &mut t,
    );
    line(
        "Code: 48 89 df e8 5a 1f 00 00 48 8b 43 08 <48> 8b 40 10 48 85 c0 74 0a",
        &mut t,
    );
    line(
        &format!(
            "RSP: 0018:ffffc90003{:06x} EFLAGS: 00010246",
            rng.below(0xffffff)
        ),
        &mut t,
    );
    line(
        &format!(
            "RAX: {:016x} RBX: ffff888012{:06x} RCX: 0000000000000000",
            rng.next_u64(),
            rng.below(0xffffff)
        ),
        &mut t,
    );
    line("Call Trace:", &mut t);
    line(" <TASK>", &mut t);
    for f in &frames {
        if rng.below(4) == 0 {
            let n = NOISE[rng.below(NOISE.len() as u64) as usize];
            line(
                &format!(
                    " ? {n}+0x{:x}/0x{:x}",
                    rng.below(0x200),
                    0x200 + rng.below(0x400)
                ),
                &mut t,
            );
        }
        line(
            &format!(
                " {f}+0x{:x}/0x{:x}",
                0x5 + rng.below(0x800),
                0x900 + rng.below(0x800)
            ),
            &mut t,
        );
    }
    line(" </TASK>", &mut t);
    line(
        &format!(
            "Modules linked in: {}",
            if id.len().is_multiple_of(2) {
                ""
            } else {
                "nf_tables"
            }
        ),
        &mut t,
    );
    Some(out)
}

fn rng_step(t: f64) -> f64 {
    // Sub-millisecond increments, deterministic in t.
    ((t * 1000.0) as u64 % 97) as f64 * 1e-6 + 1e-6
}

/// A kernel release a record says is affected, drawn uniformly from the mainline releases from
/// its introduction (or six releases before the fix, when unknown) up to the one before its
/// mainline fix, as `X.Y.0-syzkaller`; `6.1.N-syzkaller` when the record has no versions.
pub fn affected_release(ranges: &[crate::Range], rng: &mut Rng) -> String {
    use crate::signals::release_index;
    use crate::KVersion;
    let fixes: Vec<KVersion> = ranges
        .iter()
        .filter_map(|r| r.fixed.as_deref().and_then(KVersion::parse))
        .collect();
    let Some(fix) = fixes
        .iter()
        .filter(|v| v.is_mainline())
        .min()
        .or_else(|| fixes.iter().min())
        .copied()
    else {
        return format!("6.1.{}-syzkaller", rng.below(150));
    };
    let intro = ranges
        .iter()
        .filter_map(|r| r.introduced.as_deref().and_then(KVersion::parse))
        .filter(|v| v.is_mainline())
        .min();
    let hi = release_index(KVersion::new(fix.major, fix.minor, None)) - 1.0;
    let lo = intro
        .map(release_index)
        .unwrap_or(hi - 5.0)
        .clamp(hi - 30.0, hi);
    let pick = lo + rng.below((hi - lo) as u64 + 1) as f64;
    // Back from the index to a release: walk the majors.
    for (major, base, top) in [
        (3u32, 0.0, 19u32),
        (4, 20.0, 20),
        (5, 41.0, 19),
        (6, 61.0, 99),
    ] {
        if pick >= base && pick <= base + top as f64 {
            return format!("{major}.{}.0-syzkaller", (pick - base) as u32);
        }
    }
    format!("{}.{}-rc1-syzkaller", fix.major, fix.minor)
}

/// One synthesized console log per CVE record whose quoted trace has at least three key frames.
pub fn cases(vulns: &Path) -> Vec<Case> {
    let mut rng = Rng(0x9E3779B97F4A7C15);
    let mut out = Vec::new();
    let root = vulns.join("cve/published");
    let mut years: Vec<_> = std::fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    years.sort();
    for y in years {
        let mut files: Vec<_> = std::fs::read_dir(&y)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for p in files {
            let Ok(json) = std::fs::read(&p) else {
                continue;
            };
            let dyad = std::fs::read_to_string(p.with_extension("dyad")).ok();
            let Ok(rec) = cve_record(&json, None, dyad.as_deref(), false) else {
                continue;
            };
            let e = rec.entry;
            let kind = e.trace_kind.as_deref().and_then(KindTag::parse);
            let id = e.cve.clone().unwrap_or_default();
            let kernel = affected_release(&e.ranges, &mut rng);
            if let Some(log) = synthesize(
                &id,
                e.trace_title.as_deref(),
                kind,
                &e.trace,
                &kernel,
                &mut rng,
            ) {
                out.push(Case { id, log });
            }
        }
    }
    out
}
