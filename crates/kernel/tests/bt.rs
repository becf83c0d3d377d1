//! `bt`, `bt -a`, `bt -v` and `foreach bt` on every dump of the crash lab, with crash's and
//! drgn's backtraces (lab/oracle) as the anchors. Figures are printed per scenario (run with
//! `--show-output`).

use kmortem_kernel::session::Session;
use kmortem_kernel::Program;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod common;
use common::{lab, vmlinux};

struct Scenario {
    name: String,
    dir: PathBuf,
    meta: Value,
}

fn scenarios() -> Vec<Scenario> {
    let mut out: Vec<Scenario> = std::fs::read_dir(lab().join("scenarios"))
        .expect("lab scenarios")
        .flatten()
        .filter_map(|e| {
            let dir = e.path();
            let meta: Value =
                serde_json::from_slice(&std::fs::read(dir.join("meta.json")).ok()?).ok()?;
            Some(Scenario {
                name: e.file_name().to_string_lossy().into_owned(),
                dir,
                meta,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        out.len() >= 20,
        "expected the lab's scenarios, found {}",
        out.len()
    );
    out
}

/// Each dump with its oracle suffix: the primary dump (the one `timings.json` says the
/// unsuffixed oracles were made from) has "", the others ".kdump-lzo" etc.
fn dumps(s: &Scenario) -> Vec<(PathBuf, String)> {
    let t: Value = std::fs::read(s.dir.join("oracle/timings.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let primary = t["drgn-bt"]["command"]
        .as_str()
        .and_then(|c| c.split_whitespace().find(|w| w.contains("/vmcore.")))
        .map(PathBuf::from);
    let mut out = Vec::new();
    for e in std::fs::read_dir(&s.dir).into_iter().flatten().flatten() {
        let p = e.path();
        let n = e.file_name().to_string_lossy().into_owned();
        let Some(fmt) = n.strip_prefix("vmcore.") else {
            continue;
        };
        if n.ends_with(".tmp") {
            continue;
        }
        if Some(&p) == primary.as_ref() {
            out.push((p, String::new()));
        } else if s.dir.join(format!("oracle/drgn-bt.{fmt}.txt")).is_file() {
            out.push((p, format!(".{fmt}")));
        }
    }
    out.sort();
    out
}

fn session(s: &Scenario, dump: &Path) -> Session {
    let prog = Program::open(dump, Some(&vmlinux())).expect("open dump");
    let mut sess = Session::new(prog);
    if let Some(ko) = s.meta["kmlab_ko"].as_str() {
        if let Some(d) = Path::new(ko).parent() {
            sess.bt.module_dirs.push(d.to_path_buf());
        }
    }
    sess
}

/// Names compared across tools: GCC clone suffixes (`.cold`, `.isra.0`, `.constprop.0`) are
/// dropped (drgn names the DWARF function, crash and kmortem the ELF symbol).
fn norm(n: &str) -> String {
    n.split('.').next().unwrap_or(n).to_string()
}

/// Assembly labels inside a symbol: drgn names the enclosing symbol (`entry_SYSCALL_64`,
/// `secondary_startup_64`), crash and kmortem the nearest label (`..._after_hwframe`,
/// `..._no_verify`).
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (norm(a), norm(b));
    a == b || a.starts_with(&format!("{b}_")) || b.starts_with(&format!("{a}_"))
}

struct DrgnFrame {
    function: String,
    vars: Vec<(String, String)>,
}

/// drgn-bt.txt: `#N  func pc=... file:line [(inlined)]` then `      name = value` lines. drgn
/// walks past the user-space entry into `0x...` frames: the list stops there (kmortem stops
/// at the entry pt_regs with a user CS, which is the right place).
fn drgn_frames(path: &Path) -> Option<Vec<DrgnFrame>> {
    let text = std::fs::read_to_string(path).ok()?;
    if !text.starts_with("crashed thread:") {
        return None;
    }
    let mut out: Vec<DrgnFrame> = Vec::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix('#') {
            let mut w = rest.split_whitespace();
            let _n = w.next();
            let f = w.next().unwrap_or("");
            if f.starts_with("0x") {
                break;
            }
            out.push(DrgnFrame {
                function: f.to_string(),
                vars: Vec::new(),
            });
        } else if let (Some(last), Some((k, v))) = (out.last_mut(), l.trim().split_once(" = ")) {
            if l.starts_with("      ") {
                last.vars.push((k.to_string(), v.to_string()));
            }
        }
    }
    Some(out)
}

/// crash-bt.txt: `#N [SLOT] func at ADDR` of the first task.
fn crash_frames(path: &Path) -> Vec<(u64, String)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for l in text.lines() {
        if l.starts_with("PID:") && !out.is_empty() {
            break;
        }
        let t = l.trim_start();
        if !t.starts_with('#') {
            continue;
        }
        let (Some(a), Some(b)) = (t.find('['), t.find(']')) else {
            continue;
        };
        let slot = u64::from_str_radix(&t[a + 1..b], 16).unwrap_or(0);
        let f = t[b + 1..]
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        out.push((slot, f));
    }
    out
}

fn frames_of(j: &Value) -> Vec<Value> {
    j["frames"].as_array().cloned().unwrap_or_default()
}

fn fname(f: &Value) -> String {
    f["function"].as_str().unwrap_or("?").to_string()
}

fn hex(v: &Value) -> u64 {
    v.as_str()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0)
}

/// Panic-task `bt` == drgn's `stack_trace` (inlined frames included) and agrees with crash's
/// `bt` at every stack slot both report, on every dump of every scenario.
#[test]
fn lab_bt_matches_oracles() {
    let mut compared = 0;
    let mut failures = Vec::new();
    for s in scenarios() {
        for (dump, sfx) in dumps(&s) {
            let label = format!("{}{}", s.name, sfx);
            let mut sess = session(&s, &dump);
            let j = match sess.run("bt -v") {
                Ok(o) => o.json,
                Err(e) => {
                    failures.push(format!("{label}: bt failed: {e}"));
                    continue;
                }
            };
            let mine = frames_of(&j);
            assert!(!mine.is_empty(), "{label}: no frames");
            assert!(
                !matches!(j["end"], Value::Object(ref o) if o.contains_key("error"))
                    || s.name == "stack_protector",
                "{label}: bt ended with an error: {}",
                j["end"]
            );
            // drgn. Scenarios without a drgn trace: `live` and `null_deref_limp_on` (no
            // panic, so drgn's crashed_thread() has nothing) and `null_deref_no_vmcoreinfo`
            // (drgn cannot open a dump without KERNELOFFSET). crash still anchors those.
            let drgn = drgn_frames(&s.dir.join(format!("oracle/drgn-bt{sfx}.txt")));
            let drgn_ok = match &drgn {
                Some(d) => {
                    let ok = d.len() == mine.len()
                        && d.iter()
                            .zip(&mine)
                            .all(|(a, b)| same(&a.function, &fname(b)));
                    if !ok {
                        failures.push(format!(
                            "{label}: drgn {:?}\n   kmortem {:?}",
                            d.iter().map(|f| f.function.clone()).collect::<Vec<_>>(),
                            mine.iter().map(fname).collect::<Vec<_>>()
                        ));
                    }
                    compared += 1;
                    if ok {
                        "same functions"
                    } else {
                        "DIFFERENT"
                    }
                }
                None => "no drgn trace",
            };
            // crash: the same function at every stack slot both name. crash 8.0.2's x86_64
            // `bt` also reports stale return addresses it finds by scanning the stack (e.g.
            // `exit_to_user_mode_prepare` between do_syscall_64 and the entry pt_regs, or
            // page-fault frames left from earlier syscalls), skips `oops_end` and the
            // register-state frame (`delay_tsc`), cannot show inlined frames, and on the real
            // kdump walks from machine_kexec while the NT_PRSTATUS note (and so drgn and
            // kmortem) holds the oops's pt_regs, which crash_kexec(regs) saved. So only
            // shared slots are compared.
            let crash = crash_frames(&s.dir.join(format!("oracle/crash-bt{sfx}.txt")));
            let slots: HashMap<u64, String> = mine
                .iter()
                .filter(|f| f["inline"] == false && f["exception"] == false)
                .skip(1)
                .map(|f| (hex(&f["stack_address"]), fname(f)))
                .collect();
            let mut agree = 0;
            for (slot, f) in &crash {
                if let Some(m) = slots.get(slot) {
                    if same(m, f) {
                        agree += 1;
                    } else {
                        failures.push(format!("{label}: at {slot:#x} crash says {f}, kmortem {m}"));
                    }
                }
            }
            println!(
                "{label:34} frames {:2}  drgn: {drgn_ok:15} crash: {agree}/{} frames at the same slots agree",
                mine.len(),
                crash.len()
            );
            if crash.len() >= 2 && agree < 2 {
                failures.push(format!(
                    "{label}: only {agree} of crash's {} frames found at the same slots",
                    crash.len()
                ));
            }
        }
    }
    println!("compared with drgn on {compared} dumps");
    assert!(compared >= 25, "too few drgn comparisons: {compared}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `bt -a`: one backtrace per CPU, each readable to its end (crash fails on the other CPU's
/// exception stack in QEMU dumps: "read of stack at fffffe... failed").
#[test]
fn lab_bt_a_covers_every_cpu() {
    let mut failures = Vec::new();
    for s in scenarios() {
        let Some((dump, _)) = dumps(&s).into_iter().find(|(_, x)| x.is_empty()) else {
            continue;
        };
        let mut sess = session(&s, &dump);
        let cpus = sess.prog.present_cpus().len();
        let j = sess.run("bt -a").expect("bt -a").json;
        let tasks = j.as_array().cloned().unwrap_or_default();
        let crash =
            std::fs::read_to_string(s.dir.join("oracle/crash-bt-a.txt")).unwrap_or_default();
        let crash_fail = crash.matches("failed").count();
        let mut ok = 0;
        for t in &tasks {
            let n = frames_of(t).len();
            let err = t["end"].get("error").is_some();
            if n > 0 && (!err || s.name == "stack_protector") {
                ok += 1;
            }
        }
        println!(
            "{:26} CPUs {cpus}  bt -a tasks {}  complete {ok}  (crash: {crash_fail} stack read failures)",
            s.name,
            tasks.len()
        );
        if tasks.len() != cpus || ok != cpus {
            failures.push(format!(
                "{}: {} traces, {ok} complete, {cpus} CPUs: {j}",
                s.name,
                tasks.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `bt -v`: the values drgn prints for the same frames. Only scalars and pointers are compared
/// (drgn prints structs in full; kmortem abbreviates them); variables kmortem cannot recover
/// (callee-saved registers in caller frames: ORC has only sp/bp) are counted, not compared.
#[test]
fn lab_bt_v_matches_drgn() {
    let (mut equal, mut total, mut unavailable) = (0, 0, 0);
    let mut failures = Vec::new();
    for s in scenarios() {
        let Some((dump, _)) = dumps(&s).into_iter().find(|(_, x)| x.is_empty()) else {
            continue;
        };
        let Some(drgn) = drgn_frames(&s.dir.join("oracle/drgn-bt.txt")) else {
            continue;
        };
        let mut sess = session(&s, &dump);
        let j = sess.run("bt -v").expect("bt -v").json;
        let mine = frames_of(&j);
        let (mut e, mut t) = (0, 0);
        for (d, m) in drgn.iter().zip(&mine) {
            let vars = m["variables"].as_array().cloned().unwrap_or_default();
            for (name, dv) in &d.vars {
                let Some(v) = vars.iter().find(|v| v["name"] == name.as_str()) else {
                    continue;
                };
                let mv = v["value"].as_str().unwrap_or("");
                if dv.starts_with('{')
                    || dv.starts_with('"') && !mv.starts_with('"')
                    || mv.contains("{...}")
                {
                    continue;
                }
                if mv.starts_with("<unavailable") {
                    if !dv.starts_with('<') {
                        unavailable += 1;
                    }
                    continue;
                }
                if dv == "<optimized out>" && !mv.starts_with('<') {
                    // kmortem has the register (frame 0 or an exception frame) where drgn
                    // gave up; not a disagreement about the value.
                    continue;
                }
                t += 1;
                // Function pointers: kmortem-symbols spells the type `int (...) *`, drgn
                // `int (*)(void *)`; the address is what is compared.
                let fp = |v: &str| v.starts_with('(') && v.contains("(*)") || v.contains("(...) *");
                let addr = |v: &str| v.rsplit(')').next().unwrap_or("").to_string();
                if dv == mv || fp(dv) && fp(mv) && addr(dv) == addr(mv) {
                    e += 1;
                } else {
                    failures.push(format!(
                        "{} {}: {name}: drgn {dv}, kmortem {mv}",
                        s.name, d.function
                    ));
                }
            }
        }
        println!("{:26} bt -v: {e}/{t} values equal to drgn's", s.name);
        equal += e;
        total += t;
    }
    println!("bt -v: {equal}/{total} values equal to drgn's; {unavailable} drgn values kmortem could not recover");
    assert!(total >= 100, "too few values compared: {total}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `foreach bt` on the many_tasks dump: every task (3,000+) walks to its end.
#[test]
fn lab_foreach_bt_many_tasks() {
    let s = scenarios()
        .into_iter()
        .find(|s| s.name == "many_tasks")
        .expect("many_tasks scenario");
    let (dump, _) = dumps(&s)
        .into_iter()
        .find(|(_, x)| x.is_empty())
        .expect("dump");
    let mut sess = session(&s, &dump);
    let j = sess.run("foreach bt").expect("foreach bt").json;
    let tasks = j.as_array().cloned().unwrap_or_default();
    let complete = tasks
        .iter()
        .filter(|t| !frames_of(t).is_empty() && t["end"].get("error").is_none())
        .count();
    let scheduled = tasks
        .iter()
        .filter(|t| frames_of(t).iter().any(|f| fname(f) == "__schedule"))
        .count();
    println!(
        "foreach bt: {} tasks, {complete} walked to their end ({:.2}%), {scheduled} through __schedule",
        tasks.len(),
        100.0 * complete as f64 / tasks.len().max(1) as f64
    );
    assert!(tasks.len() >= 3000, "{} tasks", tasks.len());
    assert!(
        complete * 1000 >= tasks.len() * 999,
        "{complete} of {} complete",
        tasks.len()
    );
    assert!(
        scheduled + 4 >= tasks.len(),
        "sleeping tasks should be in __schedule"
    );
}

/// `bt -f`: each frame's stack words are the memory between its return-address slot and the
/// next frame's (the same words `rd` reads there), and `bt -l` gives file:line from DWARF.
#[test]
fn lab_bt_f_and_l() {
    let s = scenarios()
        .into_iter()
        .find(|s| s.name == "null_deref")
        .expect("null_deref scenario");
    let (dump, _) = dumps(&s)
        .into_iter()
        .find(|(_, x)| x.is_empty())
        .expect("dump");
    let mut sess = session(&s, &dump);
    let j = sess.run("bt -f -l").expect("bt -f -l").json;
    let frames: Vec<Value> = frames_of(&j)
        .into_iter()
        .filter(|f| f["inline"] == false)
        .collect();
    let mut checked = 0;
    for w in frames.windows(2) {
        let (a, b) = (hex(&w[0]["stack_address"]), hex(&w[1]["stack_address"]));
        if w[1]["exception"] == true || w[0]["exception"] == true || b <= a {
            continue;
        }
        let words = w[0]["stack_words"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            words.len() as u64,
            (b - a) / 8 - 1,
            "{} -> {}",
            fname(&w[0]),
            fname(&w[1])
        );
        if let Some(first) = words.first() {
            let rd = sess.run(&format!("rd -64 {:#x}", a + 8)).expect("rd").json;
            assert_eq!(hex(first), hex(&rd["values"][0]), "{}", fname(&w[0]));
        }
        checked += 1;
    }
    let with_lines = frames_of(&j)
        .iter()
        .filter(|f| f["line"].as_u64().is_some_and(|l| l > 0))
        .count();
    println!("bt -f: {checked} frames' words checked; bt -l: {with_lines} frames with file:line");
    assert!(checked >= 8, "{checked}");
    assert!(with_lines >= 15, "{with_lines}");
    let text = sess.run("bt -l").expect("bt -l").text;
    assert!(text.contains("kmlab.c: 219"), "{text}");
}
