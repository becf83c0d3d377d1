//! `kernel BUG at FILE:LINE!` / `WARNING: ... at FILE:LINE`: the source line and its condition;
//! lockups: the loop the CPU spins in and the lock it waits for; hung tasks: what they block on.

use crate::insn;
use crate::{Confidence, Finding, Frames};
use kmortem_oops::{Kind, Report};
use std::path::{Path, PathBuf};

/// `(file, line)` from `kernel BUG at FILE:LINE!` or `WARNING: CPU: 0 PID: 1 at FILE:LINE func`.
pub fn bug_location(text: &str) -> Option<(String, u32, bool)> {
    for l in text.lines() {
        if let Some(i) = l.find("kernel BUG at ") {
            let rest = l[i + 14..].trim().trim_end_matches('!');
            let (f, n) = rest.rsplit_once(':')?;
            return Some((f.to_string(), n.trim().parse().ok()?, true));
        }
        if let Some(i) = l.find("WARNING: ") {
            let rest = &l[i..];
            let j = rest.find(" at ")?;
            let loc = rest[j + 4..].split_whitespace().next()?;
            let (f, n) = loc.rsplit_once(':')?;
            return Some((f.to_string(), n.parse().ok()?, false));
        }
    }
    None
}

fn find_source(dir: &Path, file: &str) -> Option<PathBuf> {
    let p = Path::new(file);
    let mut cands = vec![dir.join(file.trim_start_matches('/'))];
    if p.is_absolute() {
        cands.push(p.to_path_buf());
    }
    // An absolute build path: try its tail components under DIR (kmlab.c, drivers/x/y.c).
    let comps: Vec<&str> = file.split('/').filter(|c| !c.is_empty()).collect();
    for k in 1..=comps.len().min(6) {
        cands.push(dir.join(comps[comps.len() - k..].join("/")));
    }
    if dir.is_file() {
        cands.insert(0, dir.to_path_buf());
    }
    cands.into_iter().find(|c| c.is_file())
}

/// The condition of a BUG_ON/WARN_ON line, or of the `if (...)` guarding a bare BUG()/WARN().
fn condition(lines: &[&str], idx: usize) -> Option<String> {
    let l = lines.get(idx)?.trim();
    for mac in [
        "BUG_ON(",
        "WARN_ON_ONCE(",
        "WARN_ON(",
        "WARN_ONCE(",
        "WARN(",
        "VM_BUG_ON(",
        "BUILD_BUG_ON(",
    ] {
        if let Some(i) = l.find(mac) {
            let inner = &l[i + mac.len()..];
            // Balanced parentheses up to the first top-level ',' or ')'.
            let mut depth = 0i32;
            for (j, ch) in inner.char_indices() {
                match ch {
                    '(' => depth += 1,
                    ')' if depth == 0 => return Some(inner[..j].trim().to_string()),
                    ')' => depth -= 1,
                    ',' if depth == 0
                        && mac.starts_with("WARN")
                        && mac != "WARN_ON("
                        && mac != "WARN_ON_ONCE(" =>
                    {
                        return Some(inner[..j].trim().to_string())
                    }
                    _ => {}
                }
            }
            return Some(inner.trim_end_matches(';').trim().to_string());
        }
    }
    // `if (cond)` on the line(s) before a bare BUG();
    for k in 1..=3 {
        let p = lines.get(idx.checked_sub(k)?)?.trim();
        if let Some(rest) = p.strip_prefix("if (").or_else(|| p.strip_prefix("if(")) {
            let c = rest.trim_end_matches('{').trim();
            let c = c.strip_suffix(')').unwrap_or(c);
            return Some(c.trim().to_string());
        }
    }
    None
}

pub fn bug_warn(report: &Report, frames: &Frames, source: Option<&Path>) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some((file, line, is_bug)) = bug_location(&report.text) else {
        return out;
    };
    let what = if is_bug { "kernel BUG" } else { "WARNING" };
    let kind = if is_bug {
        "bug_condition"
    } else {
        "warning_condition"
    };
    let mut evidence = vec![format!("{what} at {file}:{line}")];
    if let Some(ip) = &frames.ip {
        if let Some(f) = ip.res.frames.first() {
            evidence.push(format!(
                "RIP {}+{:#x} is at {}:{} (DWARF)",
                ip.function(),
                ip.res.offset.unwrap_or(0),
                f.short_file.as_deref().unwrap_or("?"),
                f.line
            ));
        }
    }
    let text = source.and_then(|d| {
        let p = find_source(d, &file)?;
        Some((std::fs::read_to_string(&p).ok()?, p))
    });
    let Some((text, path)) = text else {
        let mut f = Finding::new(
            kind,
            format!(
                "{what} at {file}:{line}{}",
                if source.is_some() {
                    " (source file not found under --source)"
                } else {
                    " (pass --source DIR to see the condition)"
                }
            ),
            Confidence::Medium,
        );
        f.evidence = evidence;
        f.fact("file", file);
        f.fact("line", line.to_string());
        out.push(f);
        return out;
    };
    let lines: Vec<&str> = text.lines().collect();
    let idx = line as usize - 1;
    let Some(src) = lines.get(idx) else {
        return out;
    };
    evidence.push(format!("{}:{line}: {}", path.display(), src.trim()));
    let cond = condition(&lines, idx);
    let summary = match &cond {
        Some(c) => format!(
            "{what} at {}:{line}: the condition `{c}` was true",
            file.rsplit('/').next().unwrap_or(&file)
        ),
        None => format!(
            "{what} at {}:{line}: `{}`",
            file.rsplit('/').next().unwrap_or(&file),
            src.trim()
        ),
    };
    let mut f = Finding::new(
        kind,
        summary,
        if cond.is_some() {
            Confidence::High
        } else {
            Confidence::Medium
        },
    );
    f.evidence = evidence;
    f.fact("file", file);
    f.fact("line", line.to_string());
    f.fact("source", src.trim().to_string());
    if let Some(c) = cond {
        f.fact("condition", c);
    }
    out.push(f);
    out
}

const LOCK_TYPES: [&str; 8] = [
    "spinlock",
    "qspinlock",
    "raw_spinlock",
    "struct mutex",
    "rw_semaphore",
    "struct completion",
    "rwlock",
    "seqlock",
];

pub fn lockup(report: &Report, frames: &Frames) -> Vec<Finding> {
    let mut out = Vec::new();
    match report.kind {
        Kind::SoftLockup | Kind::HardLockup | Kind::RcuStall => {}
        Kind::HungTask => return hung(report),
        _ => return out,
    }
    let Some(ipf) = &frames.ip else { return out };
    let (Some(code), Some(pc)) = (&ipf.code, ipf.res.address) else {
        return out;
    };
    let mut evidence = Vec::new();
    let loop_ = insn::enclosing_loop(&code.insns, pc);
    let mut summary = match loop_ {
        Some((top, jmp)) => {
            let n = code
                .insns
                .iter()
                .filter(|i| i.ip() >= top && i.ip() <= jmp)
                .count();
            for i in code.insns.iter().filter(|i| i.ip() >= top && i.ip() <= jmp).take(12) {
                evidence.push(format!(
                    "{}+{:#x}: {}{}",
                    code.name,
                    i.ip() - code.start,
                    i.text,
                    if i.ip() == pc { "   <-- RIP" } else { "" }
                ));
            }
            format!(
                "the CPU spins in a loop of {n} instructions in {} (+{:#x}..+{:#x}, backward jump at +{:#x})",
                code.name,
                top - code.start,
                jmp - code.start,
                jmp - code.start
            )
        }
        None => format!(
            "the CPU was at {}+{:#x} (no backward jump around the RIP in this function: the loop is in a caller)",
            code.name,
            pc - code.start
        ),
    };
    if let Some(f) = ipf.res.frames.first() {
        evidence.push(format!(
            "RIP source: {}:{}",
            f.short_file.as_deref().unwrap_or("?"),
            f.line
        ));
    }
    // A lock the loop waits for: a lock-typed variable in a register at the RIP.
    let mut conf = if loop_.is_some() {
        Confidence::High
    } else {
        Confidence::Medium
    };
    {
        let scopes = code.variables_at(pc);
        'outer: for s in &scopes {
            for v in &s.vars {
                if !LOCK_TYPES.iter().any(|t| v.type_name.contains(t)) {
                    continue;
                }
                let Some(r) = v.location.register() else {
                    continue;
                };
                let rn = kmortem_symbols::vars::x86_64_register_name(r).unwrap_or("?");
                let val = report.registers.get(rn).copied();
                let tracer = frames.tracer();
                let o = tracer.origin(code, 0, pc, r, 4);
                let desc = match &o {
                    Some(o) => o.explained(),
                    None => format!("`{}`", v.name),
                };
                summary.push_str(&format!(
                    "; it waits for the lock {desc} ({}){}",
                    v.type_name,
                    val.map(|x| format!(" at {x:#x}")).unwrap_or_default()
                ));
                evidence.push(format!(
                    "DWARF: `{}` ({}) lives in %{rn} in {}",
                    v.name, v.type_name, s.function
                ));
                break 'outer;
            }
        }
    }
    if report.kind == Kind::RcuStall {
        conf = conf.min(Confidence::Medium);
    }
    let mut f = Finding::new("lockup_loop", summary, conf);
    f.evidence = evidence;
    if let Some((top, jmp)) = loop_ {
        f.fact("function", code.name.clone());
        f.fact("loop_start", format!("{:#x}", top - code.start));
        f.fact("loop_jump", format!("{:#x}", jmp - code.start));
    }
    out.push(f);
    out
}

fn hung(report: &Report) -> Vec<Finding> {
    let mut out = Vec::new();
    const WAITS: [(&str, &str); 10] = [
        ("__wait_for_common", "a completion"),
        ("wait_for_common", "a completion"),
        ("mutex_lock", "a mutex"),
        ("__mutex_lock", "a mutex"),
        ("rwsem_down_read", "an rw_semaphore (read)"),
        ("rwsem_down_write", "an rw_semaphore (write)"),
        ("down_read", "an rw_semaphore (read)"),
        ("down_write", "an rw_semaphore (write)"),
        ("wait_for_completion", "a completion"),
        ("io_schedule", "I/O"),
    ];
    let fs: Vec<&kmortem_oops::Frame> = report.frames.iter().filter(|f| f.reliable).collect();
    for (i, f) in fs.iter().enumerate() {
        if let Some((_, what)) = WAITS.iter().find(|(n, _)| f.function.starts_with(n)) {
            let caller = fs[i + 1..]
                .iter()
                .find(|g| {
                    !WAITS.iter().any(|(n, _)| g.function.starts_with(n))
                        && !g.function.starts_with("schedule")
                        && !g.function.starts_with("__schedule")
                })
                .map(|g| g.function.clone());
            let mut fi = Finding::new(
                "hung_wait",
                format!(
                    "the task sleeps on {what}, waited for in {}{}",
                    caller.clone().unwrap_or_else(|| "?".into()),
                    " (with a vmcore, the owner can be read from the lock)"
                ),
                Confidence::Medium,
            );
            fi.evidence.push(format!(
                "call trace: {} ← {}",
                f.function,
                caller.clone().unwrap_or_default()
            ));
            fi.fact("wait", (*what).to_string());
            if let Some(c) = caller {
                fi.fact("caller", c);
            }
            out.push(fi);
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn locations_and_conditions() {
        assert_eq!(
            bug_location("kernel BUG at /a/kmlab.c:224!"),
            Some(("/a/kmlab.c".into(), 224, true))
        );
        assert_eq!(
            bug_location(
                "WARNING: CPU: 0 PID: 102 at /m/kmlab.c:287 kmlab_put_ref+0x17/0x20 [kmlab]"
            ),
            Some(("/m/kmlab.c".into(), 287, false))
        );
        let l = ["\tWARN_ON(dev->refcount == 0);"];
        assert_eq!(condition(&l, 0).as_deref(), Some("dev->refcount == 0"));
        let l = ["\tif (x > f(y)) {", "\t\tBUG();"];
        assert_eq!(condition(&l, 1).as_deref(), Some("x > f(y)"));
        let l = ["\tBUG_ON(!list_empty(&q->list));"];
        assert_eq!(condition(&l, 0).as_deref(), Some("!list_empty(&q->list)"));
    }
}
