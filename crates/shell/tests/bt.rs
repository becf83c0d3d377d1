//! `bt`, `bt -a`, `bt -v` and `foreach bt` on every dump of every pinned kernel's crash lab,
//! with crash's and drgn's backtraces (lab/oracle) as the anchors: drgn on every kernel, crash
//! where it reads the kernel (6.1). Figures are printed per kernel and scenario (run with
//! `--show-output`).

use kmortem_kernel::Program;
use kmortem_shell::Session;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

#[path = "../../kernel/tests/common/mod.rs"]
mod common;
use common::{dumps, each, oracle, primary, scenarios, vmlinux, Lab, Scenario};

fn session(lab: &Lab, sc: &Scenario, dump: &Path) -> Session {
    let prog = Program::open(dump, Some(&vmlinux(lab)))
        .unwrap_or_else(|e| panic!("{}: open {}: {e}", sc.meta.name, dump.display()));
    let mut sess = Session::new(prog);
    if let Some(d) = sc.meta.kmlab_ko.parent() {
        sess.bt.module_dirs.push(d.to_path_buf());
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
    /// `file:line:column`.
    line: Option<String>,
    vars: Vec<(String, String)>,
}

/// drgn-bt.txt: `#N  func pc=... file:line [(inlined)]` then `      name = value` lines
/// (drgn's warnings, like `ignoring module: ...`, may come before or between them). drgn walks
/// past the user-space entry into `0x...` frames: the list stops there (kmortem stops at the
/// entry pt_regs with a user CS, which is the right place). None when drgn had no crashed
/// thread or did not run.
fn drgn_frames(lab: &Lab, sc: &Scenario, tag: &str) -> Option<Vec<DrgnFrame>> {
    let text = oracle(lab, sc, "drgn-bt", tag).ok()?;
    let start = text.find("crashed thread:")?;
    let mut out: Vec<DrgnFrame> = Vec::new();
    for l in text[start..].lines() {
        if let Some(rest) = l.strip_prefix('#') {
            let mut w = rest.split_whitespace();
            let _n = w.next();
            let f = w.next().unwrap_or("");
            if f.starts_with("0x") {
                break;
            }
            out.push(DrgnFrame {
                function: f.to_string(),
                line: l.split_whitespace().nth(3).map(String::from),
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

/// crash-bt.txt: `#N [SLOT] func at ADDR` of the first task (none without crash).
fn crash_frames(lab: &Lab, sc: &Scenario, tag: &str) -> Vec<(u64, String)> {
    let Ok(text) = oracle(lab, sc, "crash-bt", tag) else {
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

/// drgn could not read a filtered dump's module list (`ignoring module: ... Excluded page`,
/// then `kmlab.ko did not match any loaded modules`): it cannot unwind through module frames.
fn drgn_lost_module(lab: &Lab, sc: &Scenario, tag: &str) -> bool {
    oracle(lab, sc, "drgn-bt", tag).is_ok_and(|t| t.contains("did not match any loaded modules"))
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
/// `bt` at every stack slot both report (where the kernel has crash), on every dump of every
/// scenario that has its own oracles.
#[test]
fn lab_bt_matches_oracles() {
    each(|lab| {
        let mut compared = 0;
        let mut failures = Vec::new();
        for sc in scenarios(lab) {
            for dump in dumps(&sc) {
                let Some(tag) = dump.tag.clone() else {
                    continue;
                };
                let label = dump.label(&sc);
                let mut sess = session(lab, &sc, &dump.path);
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
                        || sc.meta.name == "stack_protector",
                    "{label}: bt ended with an error: {}",
                    j["end"]
                );
                // drgn. Scenarios without a drgn trace: `live` and `null_deref_limp_on` (no
                // panic, so drgn's crashed_thread() has nothing) and dumps drgn cannot open
                // (without VMCOREINFO). crash still anchors those where it reads the kernel.
                let drgn = drgn_frames(lab, &sc, &tag);
                // An assembly label inside a sized symbol: drgn names the symbol
                // (`secondary_startup_64`), the kernel's own trace and kmortem the label
                // (`common_startup_64` on 6.12).
                let inside = |d: &str, f: &Value| {
                    sess.prog.kernel_symbol(d).is_some_and(|s| {
                        (s.addr..s.addr + s.size.max(1)).contains(&hex(&f["address"]))
                    })
                };
                let agrees = |d: &[DrgnFrame], m: &[Value]| {
                    d.len() == m.len()
                        && d.iter()
                            .zip(m)
                            .all(|(a, b)| same(&a.function, &fname(b)) || inside(&a.function, b))
                };
                let drgn_ok = match &drgn {
                    Some(d)
                        if d.len() < mine.len()
                            && agrees(d, &mine[..d.len()])
                            && drgn_lost_module(lab, &sc, &tag) =>
                    {
                        // drgn could not read the module list of this filtered dump and stops
                        // at the first module frame; the rest is compared with the full dump.
                        let full = primary(&sc);
                        let mut fs = session(lab, &sc, &full.path);
                        let want = frames_of(&fs.run("bt -v").expect("bt").json);
                        let names = |v: &[Value]| v.iter().map(fname).collect::<Vec<_>>();
                        if names(&want) != names(&mine) {
                            failures.push(format!(
                                "{label}: differs from the full dump's bt: {:?} vs {:?}",
                                names(&mine),
                                names(&want)
                            ));
                        }
                        compared += 1;
                        "drgn's prefix"
                    }
                    Some(d)
                        if d.len() == 1
                            && mine.len() > 1
                            && agrees(d, &mine[..1])
                            && d[0].function.starts_with("__x86_indirect_thunk") =>
                    {
                        // The CPU was saved at a retpoline thunk's first byte (UNWIND_HINT_EMPTY:
                        // ORC calls it the end of the stack): drgn stops there; kmortem reads
                        // the return address at sp (unwind/mod.rs `called_just_now`) and goes
                        // on. The frames above are checked against crash's slots below.
                        compared += 1;
                        "ours extends it"
                    }
                    Some(d) => {
                        let ok = agrees(d, &mine);
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
                // register-state frame (`delay_tsc`), cannot show inlined frames, and on the
                // real kdump walks from machine_kexec while the NT_PRSTATUS note (and so drgn
                // and kmortem) holds the oops's pt_regs, which crash_kexec(regs) saved. So only
                // shared slots are compared.
                let crash = crash_frames(lab, &sc, &tag);
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
                            failures
                                .push(format!("{label}: at {slot:#x} crash says {f}, kmortem {m}"));
                        }
                    }
                }
                let crash_note = if lab.has_oracle("crash") {
                    format!(
                        "crash: {agree}/{} frames at the same slots agree",
                        crash.len()
                    )
                } else {
                    "crash: none on this kernel".to_string()
                };
                println!(
                    "[{}] {label:34} frames {:2}  drgn: {drgn_ok:15} {crash_note}",
                    lab.name(),
                    mine.len(),
                );
                if crash.len() >= 2 && agree < 2 {
                    failures.push(format!(
                        "{label}: only {agree} of crash's {} frames found at the same slots",
                        crash.len()
                    ));
                }
            }
        }
        println!("[{}] compared with drgn on {compared} dumps", lab.name());
        assert!(compared >= 25, "too few drgn comparisons: {compared}");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    });
}

/// `bt -a`: one backtrace per CPU, each readable to its end (crash fails on the other CPU's
/// exception stack in QEMU dumps: "read of stack at fffffe... failed"); the panic CPU's is the
/// panic task's `bt`.
#[test]
fn lab_bt_a_covers_every_cpu() {
    each(|lab| {
        let mut failures = Vec::new();
        let mut checked = 0;
        for sc in scenarios(lab) {
            let dump = primary(&sc);
            let mut sess = session(lab, &sc, &dump.path);
            let cpus = sess.prog.present_cpus().len();
            let j = sess.run("bt -a").expect("bt -a").json;
            let tasks = j.as_array().cloned().unwrap_or_default();
            let crash_fail = oracle(lab, &sc, "crash-bt-a", "")
                .map(|c| format!("{} stack read failures", c.matches("failed").count()))
                .unwrap_or_else(|_| "none on this kernel".into());
            let mut ok = 0;
            for t in &tasks {
                let n = frames_of(t).len();
                let err = t["end"].get("error").is_some();
                if n > 0 && (!err || sc.meta.name == "stack_protector") {
                    ok += 1;
                }
            }
            // The CPUs' current tasks, as the runqueues name them.
            let runq = sess.run("runq").expect("runq").json;
            let currents: Vec<String> = runq
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|c| c["current"]["task"].as_str().unwrap_or("").to_string())
                        .collect()
                })
                .unwrap_or_default();
            let traced: Vec<String> = tasks
                .iter()
                .map(|t| format!("{:#x}", hex(&t["task"])))
                .collect();
            println!(
                "[{}] {:26} CPUs {cpus}  bt -a tasks {}  complete {ok}  (crash: {crash_fail})",
                lab.name(),
                sc.meta.name,
                tasks.len()
            );
            if tasks.len() != cpus || ok != cpus || traced != currents {
                failures.push(format!(
                    "{}: {} traces, {ok} complete, {cpus} CPUs, tasks {traced:?} vs runq's {currents:?}: {j}",
                    sc.meta.name,
                    tasks.len()
                ));
            }
            checked += 1;
        }
        assert!(checked >= 25, "{checked} scenarios");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    });
}

/// `bt -v`: the values drgn prints for the same frames. Only scalars and pointers are compared
/// (drgn prints structs in full; kmortem abbreviates them); variables kmortem cannot recover
/// (callee-saved registers in caller frames: ORC has only sp/bp) are counted, not compared.
#[test]
fn lab_bt_v_matches_drgn() {
    each(|lab| {
        let (mut equal, mut total, mut unavailable) = (0, 0, 0);
        let mut failures = Vec::new();
        for sc in scenarios(lab) {
            let dump = primary(&sc);
            let Some(drgn) = drgn_frames(lab, &sc, "") else {
                continue;
            };
            let mut sess = session(lab, &sc, &dump.path);
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
                    let fp =
                        |v: &str| v.starts_with('(') && v.contains("(*)") || v.contains("(...) *");
                    let addr = |v: &str| v.rsplit(')').next().unwrap_or("").to_string();
                    if dv == mv || fp(dv) && fp(mv) && addr(dv) == addr(mv) {
                        e += 1;
                    } else {
                        failures.push(format!(
                            "{} {}: {name}: drgn {dv}, kmortem {mv}",
                            sc.meta.name, d.function
                        ));
                    }
                }
            }
            println!(
                "[{}] {:26} bt -v: {e}/{t} values equal to drgn's",
                lab.name(),
                sc.meta.name
            );
            equal += e;
            total += t;
        }
        println!(
            "[{}] bt -v: {equal}/{total} values equal to drgn's; {unavailable} drgn values kmortem could not recover",
            lab.name()
        );
        assert!(total >= 100, "too few values compared: {total}");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    });
}

/// `foreach bt` on the many_tasks dump: every task (3,000+) walks to its end.
#[test]
fn lab_foreach_bt_many_tasks() {
    each(|lab| {
        let sc = lab.need("many_tasks");
        let dump = primary(&sc);
        let mut sess = session(lab, &sc, &dump.path);
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
            "[{}] foreach bt: {} tasks, {complete} walked to their end ({:.2}%), {scheduled} through __schedule",
            lab.name(),
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
    });
}

/// `bt -f`: each frame's stack words are the memory between its return-address slot and the
/// next frame's (the same words `rd` reads there), and `bt -l` gives file:line from DWARF, the
/// line drgn gives for the faulting function.
#[test]
fn lab_bt_f_and_l() {
    each(|lab| {
        let sc = lab.need("null_deref");
        let dump = primary(&sc);
        let mut sess = session(lab, &sc, &dump.path);
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
        println!(
            "[{}] bt -f: {checked} frames' words checked; bt -l: {with_lines} frames with file:line",
            lab.name()
        );
        assert!(checked >= 8, "{checked}");
        assert!(with_lines >= 15, "{with_lines}");
        // The faulting function's line: drgn's `kmlab.c:LINE:COL` for kmlab_device_get.
        let drgn = drgn_frames(lab, &sc, "").expect("drgn's bt of null_deref");
        let want = drgn
            .iter()
            .find(|f| f.function == "kmlab_device_get")
            .and_then(|f| f.line.clone())
            .expect("kmlab_device_get in drgn's bt");
        let mut it = want.rsplit(':');
        let (_, line) = (it.next(), it.next().unwrap_or(""));
        let text = sess.run("bt -l").expect("bt -l").text;
        assert!(
            text.contains(&format!("kmlab.c: {line}\n")),
            "kmlab.c: {line} not in:\n{text}"
        );
    });
}

/// What the walks start from, on every dump: the ORC encoding the kernel's types describe
/// (`struct orc_entry`: 6.1 `type:2 end:1`, 6.4+ `type:3 signal:1`, see unwind/orc.rs) is the
/// one the entries themselves imply (what a dump without types gets), and each CPU's current
/// task by the per-CPU `current_task` (6.1) or `pcpu_hot.current_task` (6.2+) is its
/// runqueue's `curr`.
#[test]
fn lab_orc_encoding_and_current_task() {
    use kmortem_kernel::unwind::orc::{probe_encoding, OrcTable};
    use kmortem_kernel::unwind::stacks::current_task;
    each(|lab| {
        let (mut dumps_n, mut cpus_n) = (0, 0);
        let mut encodings = std::collections::BTreeSet::new();
        for sc in scenarios(lab) {
            let d = primary(&sc);
            let sess = session(lab, &sc, &d.path);
            let p = &sess.prog;
            let enc = probe_encoding(p).expect("struct orc_entry in the kernel's types");
            let ip = p.symbol("__start_orc_unwind_ip").unwrap();
            let n = (p.symbol("__stop_orc_unwind_ip").unwrap() - ip) / 4;
            let orc = p.symbol("__start_orc_unwind").unwrap();
            let t = OrcTable::read(p, ip, orc, n as usize, None, (0, u64::MAX))
                .expect("the kernel's ORC table");
            assert_eq!(
                t.encoding, enc,
                "{}: ORC entries vs struct orc_entry",
                sc.meta.name
            );
            encodings.insert(format!("{enc:?}"));
            for cpu in p.present_cpus() {
                let rq = p.per_cpu("runqueues", cpu).unwrap();
                let curr = p.read_member(rq, "rq", "curr").unwrap();
                assert_eq!(
                    current_task(p, cpu),
                    Some(curr),
                    "{}: CPU {cpu}",
                    sc.meta.name
                );
                cpus_n += 1;
            }
            dumps_n += 1;
        }
        println!(
            "[{}] ORC encoding {encodings:?} on {dumps_n} dumps (types = entries); current task = rq->curr on {cpus_n} CPUs; per-CPU current_task {}",
            lab.name(),
            if sessionless_has(lab, "current_task") { "(6.1 style)" } else { "in pcpu_hot (6.2+)" }
        );
        assert!(dumps_n >= 25 && encodings.len() == 1);
    });
}

/// Whether the kernel has a symbol (read from its vmlinux).
fn sessionless_has(lab: &Lab, sym: &str) -> bool {
    kmortem_kernel::program::load_vmlinux(&vmlinux(lab))
        .map(|v| v.symbols.addr(sym).is_some())
        .unwrap_or(false)
}
