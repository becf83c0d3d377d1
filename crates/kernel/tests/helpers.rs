//! The kernel helpers (lists, slab/vmalloc, locks) on the crash lab's dumps, and the session
//! commands built on them (list, dis, mod, runq, no-debug-info mode).

use kmortem_kernel::list::{walk_list, Corruption, End, Poison};
use kmortem_kernel::mem::Memory;
use kmortem_kernel::Program;
use std::path::{Path, PathBuf};

mod common;
use common::{lab, vmlinux};

pub fn dump(name: &str) -> PathBuf {
    let d = lab().join("scenarios").join(name);
    assert!(
        d.join("meta.json").is_file(),
        "lab scenario {name} is missing at {}",
        d.display()
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("meta.json")).unwrap()).unwrap();
    let primary = meta["dumps"][0]["file"]
        .as_str()
        .unwrap_or("vmcore.kdump-zlib");
    ["vmcore.elf", "vmcore.kdump-zlib", primary]
        .iter()
        .map(|f| d.join(f))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no dump in {}", d.display()))
}

fn open(name: &str) -> Program {
    Program::open(&dump(name), Some(&vmlinux())).unwrap()
}

/// A register value from the oops in the scenario's console log (`RBX: ffff...`).
fn console_reg(name: &str, reg: &str) -> u64 {
    let log = std::fs::read_to_string(lab().join("scenarios").join(name).join("console.log"))
        .expect("console.log");
    let key = format!("{reg}: ");
    for line in log.lines() {
        if let Some(i) = line.find(&key) {
            let v = &line[i + key.len()..];
            let v = v.split_whitespace().next().unwrap_or("");
            if let Ok(x) = u64::from_str_radix(v, 16) {
                return x;
            }
        }
    }
    panic!("no {reg} in the console log of {name}");
}

/// The module's static symbols named `prefix.N` (GCC's names for function-local statics).
fn statics(p: &Program, prefix: &str) -> Vec<u64> {
    let m = p
        .modules()
        .iter()
        .find(|m| m.name == "kmlab")
        .expect("kmlab loaded");
    let mut v: Vec<u64> = m
        .symbols
        .iter()
        .filter(|s| {
            s.name
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('.'))
                .is_some_and(|r| r.chars().all(|c| c.is_ascii_digit()))
        })
        .map(|s| s.addr)
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no static {prefix}.N in kmlab");
    v
}

#[test]
fn lab_list_walks() {
    // seed 000: kmlab_do_leaf_cfs_rq's rq (`struct kmlab_rq { int cpu; struct list_head
    // leaf_cfs_rq_list; ... }`, so the list is at +8) has one node, `stale`, zeroed by memset.
    let p = open("leaf_cfs_rq");
    let rq = statics(&p, "rq")[0];
    let w = walk_list(&p, rq + 8, 1000);
    println!("leaf_cfs_rq: {w:?}");
    let b = w.corruption().expect("the leaf_cfs_rq list is corrupted");
    assert_eq!(b.corruption, Corruption::Zeroed);
    assert_eq!(w.nodes.len(), 1);
    // the zeroed node is `stale` (rq's first node), and the head's next points at it
    assert_eq!(b.node, p.read_u64(rq + 8).unwrap());
    assert_eq!(p.read_u64(b.node).unwrap(), 0);

    // list_add_corruption: head -> b -> a, then b.prev = &c: head->next->prev is not head.
    let p = open("list_add_corruption");
    let mut hit = 0;
    for head in statics(&p, "kmlab_nodes") {
        let w = walk_list(&p, head, 1000);
        println!("list_add_corruption {head:#x}: {w:?}");
        if w.nodes.is_empty() && w.end == End::Complete {
            continue; // the other scenario's list, never used
        }
        hit += 1;
        let b = w.corruption().expect("corrupted");
        let Corruption::BadBackLink {
            next,
            found,
            expected,
        } = b.corruption
        else {
            panic!("expected a bad back link: {b:?}");
        };
        assert_eq!(b.node, head);
        assert_eq!(expected, head);
        assert_eq!(next, p.read_u64(head).unwrap());
        // c is the node the stray write named; it is not on the list
        assert!(statics(&p, "c").contains(&found), "{found:#x}");
        assert!(b.to_string().contains("should be"), "{b}");
    }
    assert_eq!(hit, 1);

    // list_del_corruption: a was deleted (poisoned) and deleted again. The list from the head
    // is intact (head -> b); walked from a, the first link is LIST_POISON1.
    let p = open("list_del_corruption");
    let mut poisoned = 0;
    for head in statics(&p, "kmlab_nodes") {
        let w = walk_list(&p, head, 1000);
        assert_eq!(w.end, End::Complete, "{w:?}");
    }
    for a in statics(&p, "a") {
        let w = walk_list(&p, a, 1000);
        println!("list_del_corruption from {a:#x}: {w:?}");
        if let Some(b) = w.corruption() {
            if let Corruption::Poisoned { field, poison } = &b.corruption {
                assert_eq!((*field, *poison), ("next", Poison::One));
                assert_eq!(b.next, 0xdead000000000100);
                poisoned += 1;
            }
        }
    }
    assert_eq!(poisoned, 1, "exactly one `a` was list_del'd");
}

#[test]
fn lab_slab_and_vmalloc() {
    // uaf: kmlab_session_touch(s) after kmem_cache_free(s): with slub_debug=P the freed object
    // holds 0x6b; RBX/R09 in the oops hold pointers into the freed object.
    let p = open("uaf");
    let rbx = console_reg("uaf", "RBX");
    let o = p.slab_object(rbx).unwrap().expect("RBX is a slab object");
    println!("uaf RBX {rbx:#x}: {o:?}");
    assert_eq!(o.cache_name, "kmlab_session");
    assert!(o.object <= rbx && rbx < o.object + o.size);
    assert_eq!(o.free, Some(true), "the session was freed: {o:?}");
    // the poisoned bytes are there (0x6b, POISON_FREE)
    assert_eq!(p.read_u64(o.object).unwrap(), 0x6b6b6b6b6b6b6b6b);

    // an allocated object: the panicking task's task_struct (task_struct cache, in use)
    let t = p.panic_task().unwrap().expect("panic task");
    let o = p
        .slab_object(t.task)
        .unwrap()
        .expect("task_struct is a slab object");
    println!("task {:#x}: {o:?}", t.task);
    assert_eq!(o.cache_name, "task_struct");
    assert_eq!(o.object, t.task);
    assert_eq!(o.free, Some(false));
    // and a kernel image address is not in a slab
    let text = p.symbol("_stext").unwrap();
    assert!(p.slab_object(text).unwrap().is_none());

    // double_free: __kmem_cache_free's BUG_ON(object == fp) with the object in RBX: it is on
    // the freelist already.
    let p = open("double_free");
    let rbx = console_reg("double_free", "RBX");
    let o = p.slab_object(rbx).unwrap().expect("RBX is a slab object");
    println!("double_free RBX {rbx:#x}: {o:?}");
    assert!(o.cache_name.starts_with("kmalloc-"), "{o:?}");
    assert_eq!(o.object, rbx);
    assert_eq!(o.free, Some(true));
    // RDI holds the kmem_cache
    assert_eq!(o.cache, console_reg("double_free", "RDI"));

    // wrong_cpu_index: kcqs[64] of a vzalloc'd 2-element array faults on the guard page.
    let p = open("wrong_cpu_index");
    let cr2 = console_reg("wrong_cpu_index", "CR2");
    let v = p
        .vmalloc_area(cr2)
        .unwrap()
        .expect("CR2 is in a vmalloc area");
    println!("wrong_cpu_index CR2 {cr2:#x}: {v:?}");
    assert!(v.guard_page, "{v:?}");
    assert_eq!(v.size, 8192);
    assert_eq!(v.usable_size, 4096);
    assert!(
        v.caller_symbol
            .as_deref()
            .is_some_and(|c| c.starts_with("kmlab_do_wrong_cpu_index")),
        "{v:?}"
    );
    assert!(p
        .vmalloc_area(p.symbol("_stext").unwrap())
        .unwrap()
        .is_none());
}

/// drgn's view of a few global locks, as `name owner_word count_or_0`.
fn drgn_locks(dump: &Path, mutexes: &[&str], rwsems: &[&str]) -> Vec<(String, u64, u64)> {
    let py = PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
        .join(".cache/kmortem/venv/bin/python");
    let script = format!(
        r#"
import drgn
# libkdumpfile cannot tell the architecture of QEMU's kdump files: name the platform
prog = drgn.Program(drgn.host_platform)
prog.set_core_dump({dump:?})
try:
    prog.load_debug_info([{vml:?}], default=False)
except drgn.MissingDebugInfoError:
    pass
for n in {mutexes:?}:
    print(n, int(prog[n].owner.counter), 0)
for n in {rwsems:?}:
    print(n, int(prog[n].owner.counter), int(prog[n].count.counter))
"#,
        vml = vmlinux()
    );
    let out = std::process::Command::new(&py)
        .arg("-c")
        .arg(script)
        .output()
        .unwrap_or_else(|e| panic!("drgn at {}: {e}", py.display()));
    assert!(
        out.status.success(),
        "drgn failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].to_string(),
                f[1].parse::<i64>().unwrap() as u64,
                f[2].parse::<i64>().unwrap() as u64,
            )
        })
        .collect()
}

#[test]
fn lab_lock_owners() {
    // No lab scenario blocks on a mutex or rwsem (hung_task waits on a completion), so the
    // decoding is checked against drgn's raw words on global locks of the hung_task dump.
    let p = open("hung_task");
    let mutexes = ["module_mutex", "tty_mutex", "cgroup_mutex", "text_mutex"];
    let rwsems = ["uts_sem", "namespace_sem", "shrinker_rwsem"];
    let oracle = drgn_locks(&dump("hung_task"), &mutexes, &rwsems);
    assert_eq!(oracle.len(), mutexes.len() + rwsems.len());
    for (name, owner, count) in oracle {
        let a = p.symbol(&name).unwrap();
        let s = if mutexes.contains(&name.as_str()) {
            p.mutex_owner(a).unwrap()
        } else {
            p.rwsem_owner(a).unwrap()
        };
        println!("{name}: {s:?}");
        assert_eq!(s.owner_word, owner, "{name}");
        let readers = (count >> 8) & ((1 << 48) - 1);
        let held = if s.kind == "mutex" {
            owner & !7 != 0
        } else {
            count & 1 != 0 || (owner & 1 != 0 && readers > 0)
        };
        assert_eq!(
            s.owner.as_ref().map(|o| o.task),
            held.then_some(owner & !7),
            "{name}"
        );
        if let Some(o) = &s.owner {
            assert!(o.pid >= 0 && !o.comm.is_empty(), "{name}: {o:?}");
        }
        if s.kind == "rw_semaphore" {
            assert_eq!(s.readers, readers);
        }
    }
}

// ------------------------------------------------------------------ session commands

use kmortem_kernel::session::Session;

fn session(name: &str) -> Session {
    Session::new(open(name))
}

fn text(s: &mut Session, cmd: &str) -> String {
    match s.run(cmd) {
        Ok(o) => o.text,
        Err(e) => panic!("{cmd}: {e}"),
    }
}

fn json(s: &mut Session, cmd: &str) -> serde_json::Value {
    match s.run(cmd) {
        Ok(o) => o.json,
        Err(e) => panic!("{cmd}: {e}"),
    }
}

/// Replace every 16-digit hex address (with or without 0x) by `<ADDR>`, for snapshots of
/// KASLR dumps.
fn redact(t: &str) -> String {
    let mut out = String::new();
    let b = t.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = if b[i..].starts_with(b"0x") { i + 2 } else { i };
        let n = b[start..]
            .iter()
            .take_while(|c| c.is_ascii_hexdigit())
            .count();
        let word_start = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        if word_start && n == 16 {
            out.push_str("<ADDR>");
            i = start + n;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Run crash once on a dump with several commands; returns each command's output.
fn crash(dump: &Path, cmds: &[&str]) -> Vec<String> {
    let mut input = String::new();
    for (i, c) in cmds.iter().enumerate() {
        input.push_str(&format!("echo ==KMORTEM{i}==\n{c}\n"));
    }
    input.push_str(&format!("echo ==KMORTEM{}==\nquit\n", cmds.len()));
    let mut ch = std::process::Command::new("/usr/bin/crash")
        .arg("-s")
        .arg(vmlinux())
        .arg(dump)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("crash is /usr/bin/crash (scripts/deps installs it)");
    use std::io::Write;
    ch.stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = ch.wait_with_output().unwrap();
    let o = String::from_utf8_lossy(&out.stdout).into_owned();
    (0..cmds.len())
        .map(|i| {
            let a = format!("==KMORTEM{i}==\n");
            let b = format!("==KMORTEM{}==\n", i + 1);
            let s = o.find(&a).unwrap_or_else(|| panic!("crash output: {o}")) + a.len();
            let e = o[s..].find(&b).map(|e| s + e).unwrap_or(o.len());
            o[s..e].to_string()
        })
        .collect()
}

#[test]
fn lab_dis_runq_mod_match_crash() {
    let name = "null_deref_nokaslr";
    let d = dump(name);
    let cmds = [
        "dis schedule 12",
        "dis vfs_write 40",
        "dis do_syscall_64 25",
        "dis -l vfs_write 8",
        "runq",
    ];
    let want = crash(&d, &cmds);
    let mut s = session(name);
    for (c, w) in cmds.iter().zip(&want) {
        let got = text(&mut s, c);
        println!("== {c}\n{got}");
        if c.starts_with("dis -l") {
            // crash names files as gdb does (the build directory's path); we print them
            // relative to the kernel tree: compare the line numbers and the file's tail.
            let norm = |t: &str| -> Vec<String> {
                t.lines()
                    .map(|l| match l.rsplit_once(": ") {
                        Some((f, n)) if !l.starts_with("0x") => {
                            format!("{}: {n}", f.rsplit('/').next().unwrap_or(f))
                        }
                        _ => l.split_whitespace().collect::<Vec<_>>().join(" "),
                    })
                    .collect()
            };
            assert_eq!(norm(&got), norm(w), "{c}");
        } else {
            let norm = |t: &str| -> Vec<String> {
                t.lines()
                    .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                    .filter(|l| !l.is_empty())
                    .collect()
            };
            assert_eq!(norm(&got), norm(w), "{c}");
        }
    }
    // dis -l output and JSON agree
    let j = json(&mut s, "dis vfs_write 3");
    assert_eq!(j["instructions"].as_array().unwrap().len(), 3);
    assert_eq!(j["checked_against_vmlinux"], true);
    assert_eq!(j["instructions"][0]["note"], "FTRACE NOP");

    // mod: against crash's `mod` from the lab's oracle; the debug info is found for
    // qemu_fw_cfg (the debug package) and for kmlab after `mod -S`.
    let oracle = std::fs::read_to_string(
        lab()
            .join("scenarios")
            .join(name)
            .join("oracle/crash-mod.txt"),
    )
    .unwrap();
    let rows: Vec<Vec<String>> = oracle
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().take(4).map(String::from).collect())
        .collect();
    let got = text(&mut s, "mod");
    println!("{got}");
    let mine: Vec<Vec<String>> = got
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().take(4).map(String::from).collect())
        .collect();
    assert_eq!(mine, rows);
    let j = json(&mut s, "mod");
    let fw = j
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "qemu_fw_cfg")
        .unwrap();
    assert!(
        fw["debuginfo"]
            .as_str()
            .unwrap()
            .ends_with("qemu_fw_cfg.ko"),
        "{fw}"
    );
    let km = j
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "kmlab")
        .unwrap();
    assert!(km["debuginfo"].is_null());
    let j = json(
        &mut s,
        &format!("mod -S {}", lab().join("module").display()),
    );
    let km = j
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "kmlab")
        .unwrap();
    assert!(
        km["debuginfo"].as_str().unwrap().ends_with("kmlab.ko"),
        "{km}"
    );

    insta::assert_snapshot!("dis_schedule", text(&mut s, "dis schedule 12"));
    let m = text(&mut s, "mod").replace(&lab().display().to_string(), "<LAB>");
    insta::assert_snapshot!("mod_nokaslr", m);
    insta::assert_snapshot!("runq_nokaslr", text(&mut s, "runq"));
    insta::assert_snapshot!(
        "list_modules",
        text(&mut s, "list -o module.list -H modules")
    );
}

#[test]
fn lab_list_command() {
    let mut s = session("null_deref_nokaslr");
    // `list -H modules` gives the list_heads; with -o module.list, the modules themselves.
    let heads = text(&mut s, "list -H modules");
    let mods = text(&mut s, "list -o module.list -H modules");
    let off = s.prog.offset_of("module", "list").unwrap();
    let want: Vec<String> = {
        let mut m: Vec<u64> = s.prog.modules().iter().map(|m| m.addr).collect();
        m.sort();
        m.iter().map(|a| format!("{a:016x}")).collect()
    };
    let mut got: Vec<String> = mods.lines().map(String::from).collect();
    got.sort();
    assert_eq!(got, want);
    for (h, m) in heads.lines().zip(mods.lines()) {
        let h = u64::from_str_radix(h, 16).unwrap();
        let m = u64::from_str_radix(m, 16).unwrap();
        assert_eq!(h - off, m);
    }
    // crash's form without -H: the first structure is printed first, the walk ends at it
    let first = mods.lines().next().unwrap();
    let t = text(&mut s, &format!("list -o module.list {first}"));
    assert_eq!(t.lines().next(), Some(first));
    // the head (modules) shows up once, minus the offset
    assert_eq!(t.lines().count(), mods.lines().count() + 1);

    // an hlist: the panic task's struct pid lists it on tasks[PIDTYPE_PID] through
    // task_struct.pid_links[0]
    let t = s.prog.panic_task().unwrap().expect("panic task").task;
    let pid = s.prog.read_member(t, "task_struct", "thread_pid").unwrap();
    let head = pid + s.prog.offset_of("pid", "tasks").unwrap();
    let out = text(
        &mut s,
        &format!("list -o task_struct.pid_links -h {head:#x}"),
    );
    assert_eq!(out, format!("{t:016x}\n"));

    // seed 000 through the command: the corruption line, and the JSON
    let mut s = session("leaf_cfs_rq");
    let rq = statics(&s.prog, "rq")[0];
    let t = text(&mut s, &format!("list -H {:#x}", rq + 8));
    println!("{t}");
    assert!(t.contains("next and prev are NULL"), "{t}");
    let j = json(&mut s, &format!("list -H {:#x}", rq + 8));
    assert_eq!(j["end"], "corrupted");
    assert_eq!(j["kind"], "zeroed");
    assert_eq!(j["entries"].as_array().unwrap().len(), 1);
    insta::assert_snapshot!("list_leaf_cfs_rq", redact(&t));
    // errors are errors, not panics
    assert!(s.run("list").is_err());
    assert!(s.run("list -x 1").is_err());
    assert!(s.run("list -o nosuch.member -H modules").is_err());
    assert!(
        s.run("list -H 0").is_err(),
        "an unreadable head is an error"
    );
}

// ------------------------------------------------------------------ no debug info

/// The link-time addresses of vmlinux's symbols by name. (Debian's /boot/System.map is a
/// stub that points at the -dbg package; the vmlinux's .symtab is the same table.)
fn system_map() -> std::collections::HashMap<String, Vec<u64>> {
    use object::{Object, ObjectSymbol};
    let data = std::fs::read(vmlinux()).unwrap();
    let f = object::File::parse(&data[..]).unwrap();
    let mut m: std::collections::HashMap<String, Vec<u64>> = Default::default();
    for s in f.symbols() {
        if let Ok(n) = s.name() {
            m.entry(n.to_string()).or_default().push(s.address());
        }
    }
    m
}

#[test]
fn lab_no_debug_info() {
    let map = system_map();
    for name in ["null_deref_nokaslr", "leaf_cfs_rq", "uaf", "hung_task"] {
        let d = dump(name);
        let bare = Program::open(&d, None).unwrap();
        let k = bare
            .kallsyms()
            .unwrap_or_else(|| panic!("{name}: {:?}", bare.kallsyms_error()));
        // every text symbol of kallsyms is at its System.map address + the KASLR offset
        let (mut ntext, mut ok, mut absent) = (0, 0, 0);
        for (a, kind, n) in k.iter() {
            if !kind.eq_ignore_ascii_case(&'t') {
                continue;
            }
            ntext += 1;
            match map.get(n) {
                Some(v) if v.iter().any(|m| m.wrapping_add(bare.kaslr) == a) => ok += 1,
                Some(v) => panic!(
                    "{name}: {n} at {a:#x}, System.map says {v:x?} + {:#x}",
                    bare.kaslr
                ),
                None => absent += 1,
            }
        }
        println!(
            "{name}: kallsyms {} symbols, {ntext} text; {ok} equal the vmlinux symtab + KASLR, {absent} not in it",
            k.len()
        );
        assert!(k.len() > 50_000 && ntext > 30_000);
        assert_eq!(absent, 0);

        let mut with = Session::new(open(name));
        let mut without = Session::new(bare);
        // same tasks, log, system facts, modules, layouts, values
        for c in [
            "ps",
            "log",
            "mod",
            "sym schedule",
            "sym init_task",
            "struct task_struct -o",
            "struct list_head",
            "rd -64 init_task 8",
            "list -o task_struct.tasks -H init_task.tasks",
            "runq",
        ] {
            let c = c.replace(
                "init_task.tasks",
                &format!(
                    "{:#x}",
                    with.prog.symbol("init_task").unwrap()
                        + with.prog.offset_of("task_struct", "tasks").unwrap()
                ),
            );
            let a = text(&mut with, &c);
            let b = text(&mut without, &c);
            if c.starts_with("mod") {
                // the OBJECT FILE column: debug info is found through the vmlinux's tree
                let cut = |t: &str| -> Vec<String> {
                    t.lines()
                        .map(|l| l.split_whitespace().take(4).collect::<Vec<_>>().join(" "))
                        .collect()
                };
                assert_eq!(cut(&a), cut(&b), "{name}: {c}");
            } else {
                assert_eq!(a, b, "{name}: {c}");
            }
        }
        // the panic task's struct values (BTF from memory vs the vmlinux)
        let t = with.prog.panic_task().unwrap().expect("panic task").task;
        let c = format!("struct task_struct {t:#x}");
        assert_eq!(text(&mut with, &c), text(&mut without, &c), "{name}: {c}");
        // sys is the same but for the vmlinux's name in KERNEL
        let sys = |s: &mut Session| -> Vec<String> {
            text(s, "sys")
                .lines()
                .filter(|l| !l.trim_start().starts_with("KERNEL"))
                .map(String::from)
                .collect()
        };
        assert_eq!(sys(&mut with), sys(&mut without), "{name}: sys");
        // dis works from memory, with kallsyms names; the text is identical
        let a = text(&mut with, "dis schedule 20");
        let b = text(&mut without, "dis schedule 20");
        let strip = |t: &str| t.replace(" [FTRACE NOP]", "");
        assert_eq!(strip(&a), strip(&b), "{name}: dis");
    }
}

/// The non-inlined function names of a `bt` JSON document (one task) or of each task.
fn bt_functions(j: &serde_json::Value) -> Vec<Vec<String>> {
    let tasks: Vec<&serde_json::Value> = match j {
        serde_json::Value::Array(a) => a.iter().collect(),
        o => vec![o],
    };
    tasks
        .iter()
        .map(|t| {
            t["frames"]
                .as_array()
                .map(|f| {
                    f.iter()
                        .filter(|f| f["inline"] != true)
                        .map(|f| f["function"].as_str().unwrap_or("?").to_string())
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn lab_no_debug_info_bt() {
    // `bt` and `bt -a` with no vmlinux (kallsyms, BTF and ORC from the dump) name the same
    // functions, in the same order, as with the vmlinux's DWARF, minus the inlined frames
    // only DWARF can show.
    let root = lab().join("scenarios");
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("meta.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let (mut checked, mut frames) = (0, 0);
    for name in &names {
        let d = dump(name);
        let bare = match Program::open(&d, None) {
            Ok(p) => p,
            Err(e) => {
                // only the dump without VMCOREINFO needs the vmlinux to find the kernel
                assert!(name.contains("no_vmcoreinfo"), "{name}: {e}");
                println!("{name}: skipped ({e})");
                continue;
            }
        };
        let mut without = Session::new(bare);
        let mut with = Session::new(open(name));
        for c in ["bt", "bt -a"] {
            let a = bt_functions(&json(&mut with, c));
            let b = bt_functions(&json(&mut without, c));
            assert_eq!(a, b, "{name}: {c}");
            assert!(a.iter().any(|t| !t.is_empty()), "{name}: {c} has frames");
            frames += a.iter().map(|t| t.len()).sum::<usize>();
        }
        checked += 1;
    }
    println!("no-debug-info bt: {checked} dumps, {frames} frames named the same as with DWARF");
    assert!(checked >= names.len() - 1);
}

#[test]
fn lab_kmem_matches_crash() {
    // crash's `kmem ADDR` on a freed object (uaf's RBX) and an allocated one (the panic
    // task's task_struct): same cache, slab, counts, and free/allocated verdict.
    let name = "uaf";
    let mut s = session(name);
    let freed = console_reg(name, "RBX");
    let task = s.prog.panic_task().unwrap().unwrap().task;
    let want = crash(
        &dump(name),
        &[&format!("kmem {freed:x}"), &format!("kmem {task:x}")],
    );
    for (addr, w) in [freed, task].iter().zip(&want) {
        let got = text(&mut s, &format!("kmem {addr:#x}"));
        println!("{got}\n-- crash:\n{w}");
        let wl: Vec<&str> = w.lines().collect();
        // CACHE line: address, objsize, name (crash also prints cache-wide totals)
        let wc: Vec<&str> = wl[1].split_whitespace().collect();
        let gl: Vec<&str> = got.lines().collect();
        let gc: Vec<&str> = gl[1].split_whitespace().collect();
        assert_eq!((gc[0], gc[1], gc[2]), (wc[0], wc[1], wc[6]), "{addr:x}");
        // SLAB line: slab, memory, (node), total, allocated, free
        let ws: Vec<&str> = wl[3].split_whitespace().collect();
        let gs: Vec<&str> = gl[3].split_whitespace().collect();
        assert_eq!(
            (gs[0], gs[1], gs[2], gs[3], gs[4]),
            (ws[0], ws[1], ws[3], ws[4], ws[5]),
            "{addr:x}"
        );
        // FREE / [ALLOCATED]: "   ADDR" when free, "  [ADDR]" when allocated
        let wf = wl[5].trim();
        let gf = gl[5].trim().trim_end_matches("(free)").trim();
        assert_eq!(gf, wf, "{addr:x}");
    }
    // crash cannot translate the guard page of wrong_cpu_index; kmem names the area
    let mut s = session("wrong_cpu_index");
    let cr2 = console_reg("wrong_cpu_index", "CR2");
    let t = text(&mut s, &format!("kmem {cr2:#x}"));
    println!("{t}");
    assert!(
        t.contains("guard page") && t.contains("kmlab_do_wrong_cpu_index"),
        "{t}"
    );
    let j = json(&mut s, &format!("kmem {cr2:#x}"));
    assert_eq!(j["vmalloc"]["guard_page"], true);
    insta::assert_snapshot!("kmem_guard_page", redact(&t));
}
