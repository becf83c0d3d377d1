//! Tests on the crash lab's real dumps of Debian's 6.1.0-56-cloud-amd64 (built by lab/lab.py
//! into ~/.cache/kmortem/lab/<release>/), with crash and drgn as oracles.

use kmortem_kernel::session::Session;
use kmortem_kernel::types::{Type, Types};
use kmortem_kernel::Program;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

mod common;
use common::{lab, vmlinux};

/// Complete scenarios (meta.json is written last) with their dump files.
fn scenarios() -> Vec<(String, PathBuf, Vec<PathBuf>)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(lab().join("scenarios")) else {
        return out;
    };
    for e in rd.flatten() {
        let d = e.path();
        // meta.json is written last; KMORTEM_LAB_PARTIAL=1 also takes scenarios whose oracles
        // are written but whose meta.json is not (while the lab is still running).
        let complete = d.join("meta.json").is_file()
            || (std::env::var_os("KMORTEM_LAB_PARTIAL").is_some()
                && d.join("oracle/drgn-ps.txt").is_file());
        if !complete || !d.join("oracle/crash-log.txt").is_file() {
            continue;
        }
        let mut dumps: Vec<PathBuf> = std::fs::read_dir(&d)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                n.starts_with("vmcore.") && !n.ends_with(".tmp")
            })
            .collect();
        dumps.sort();
        let name = e.file_name().to_string_lossy().into_owned();
        out.push((name, d, dumps));
    }
    out.sort();
    assert!(
        !out.is_empty(),
        "no complete scenario under {}/scenarios",
        lab().display()
    );
    out
}

fn run(s: &mut Session, cmd: &str) -> String {
    match s.run(cmd) {
        Ok(o) => o.text,
        Err(e) => panic!("{cmd}: {e}"),
    }
}

/// `sys` lines of crash as a map.
fn crash_sys(d: &Path) -> std::collections::HashMap<String, String> {
    let t = std::fs::read_to_string(d.join("oracle/crash-sys.txt")).unwrap_or_default();
    t.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// drgn's task list: (pid, comm, state).
fn drgn_ps(p: &Path) -> BTreeSet<(i64, String, String)> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.first()?.parse().ok()?,
                f.get(4..)?.join(" "),
                f.get(3)?.to_string(),
            ))
        })
        .collect()
}

#[test]
fn lab_log_sys_ps_on_every_dump_and_format() {
    let v = vmlinux();
    let mut checked = 0;
    let mut records = 0;
    let mut tasks_ours = 0;
    let mut tasks_crash = 0;
    for (name, d, dumps) in scenarios() {
        let csys = crash_sys(&d);
        let drgn: BTreeSet<(i64, String, String)> =
            std::fs::read_to_string(d.join("oracle/drgn-ps.txt"))
                .unwrap_or_default()
                .lines()
                .skip(1)
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    Some((
                        f.first()?.parse().ok()?,
                        f.get(4..)?.join(" "),
                        f.get(3)?.to_string(),
                    ))
                })
                .collect();
        let mut first: Option<(String, String, String)> = None;
        for dump in &dumps {
            let fname = dump.file_name().unwrap().to_string_lossy().into_owned();
            // The lab runs the oracles on some formats too (oracle/crash-log.kdump-zlib.txt);
            // prefer those, else the ELF dump's.
            let fmt = fname.trim_start_matches("vmcore.").to_string();
            let per_fmt = |base: &str| {
                let p = d.join(format!("oracle/{base}.{fmt}.txt"));
                if p.is_file() {
                    p
                } else {
                    d.join(format!("oracle/{base}.txt"))
                }
            };
            let oracle_log = std::fs::read_to_string(per_fmt("crash-log")).unwrap();
            let drgn: BTreeSet<(i64, String, String)> = if per_fmt("drgn-ps").is_file() {
                drgn_ps(&per_fmt("drgn-ps"))
            } else {
                drgn.clone()
            };
            // log and sys need no vmlinux.
            let p = Program::open(dump, None).unwrap_or_else(|e| panic!("{name}/{fname}: {e}"));
            let mut s = Session::new(p);
            let log = run(&mut s, "log");
            assert_eq!(
                log.lines().collect::<Vec<_>>(),
                oracle_log.lines().collect::<Vec<_>>(),
                "{name}/{fname}: log differs from crash's"
            );
            records += log.lines().count();
            let l0 = s.log().ok().map(|l| l.to_vec());
            let sys0 = s.prog.sys(l0.as_deref());
            if let Some(r) = csys.get("RELEASE") {
                assert_eq!(sys0.release.as_deref(), Some(r.as_str()), "{name}/{fname}");
            }
            // With the vmlinux: sys, ps.
            let p = Program::open(dump, Some(&v)).unwrap_or_else(|e| panic!("{name}/{fname}: {e}"));
            let mut s = Session::new(p);
            let log2 = run(&mut s, "log");
            let l1 = s.log().ok().map(|l| l.to_vec());
            let sys = s.prog.sys(l1.as_deref());
            if let Some(c) = csys.get("CPUS") {
                let n: u32 = c.split_whitespace().next().unwrap().parse().unwrap();
                assert_eq!(sys.cpus, n, "{name}/{fname}: CPUS");
            }
            if let Some(pm) = csys.get("PANIC") {
                let want = pm.split('"').nth(1).unwrap_or("");
                assert_eq!(
                    sys.panic.as_deref().unwrap_or(""),
                    want,
                    "{name}/{fname}: PANIC"
                );
            }
            if let Some(date) = csys.get("DATE") {
                let got = sys.crash_time.map(kmortem_kernel::sys::format_utc);
                assert_eq!(got.as_deref(), Some(date.as_str()), "{name}/{fname}: DATE");
            }
            let tasks = s
                .prog
                .tasks()
                .unwrap_or_else(|e| panic!("{name}/{fname}: ps: {e}"));
            let ours: BTreeSet<(i64, String, String)> = tasks
                .iter()
                .filter(|t| t.pid > 0)
                .map(|t| (t.pid as i64, t.comm.clone(), t.state.clone()))
                .collect();
            if !drgn.is_empty() {
                assert_eq!(
                    ours, drgn,
                    "{name}/{fname}: ps differs from drgn's task list"
                );
            }
            let crash_ps =
                std::fs::read_to_string(d.join("oracle/crash-ps.txt")).unwrap_or_default();
            let crash_n = crash_ps
                .lines()
                .skip(1)
                .filter(|l| !l.trim().is_empty())
                .count();
            // crash marks the active tasks with '>'; we must list at least those.
            for l in crash_ps.lines().filter(|l| l.starts_with('>')) {
                let task = u64::from_str_radix(l.split_whitespace().nth(4).unwrap(), 16).unwrap();
                assert!(
                    tasks.iter().any(|t| t.task == task && t.active),
                    "{name}/{fname}: crash's active task {task:#x} not active in ours"
                );
            }
            tasks_ours += tasks.len();
            tasks_crash += crash_n;
            let ps = run(&mut s, "ps");
            let sys_text = run(&mut s, "sys")
                .lines()
                .filter(|l| !l.contains("DUMPFILE"))
                .collect::<Vec<_>>()
                .join("\n");
            match &first {
                None => first = Some((log2, ps, sys_text)),
                Some((l, p, y)) => {
                    assert_eq!(&log2, l, "{name}/{fname}: log differs between formats");
                    assert_eq!(&ps, p, "{name}/{fname}: ps differs between formats");
                    assert_eq!(&sys_text, y, "{name}/{fname}: sys differs between formats");
                }
            }
            checked += 1;
        }
    }
    println!(
        "lab: {checked} dump files; {records} log records equal to crash's; ps lists {tasks_ours} tasks where crash lists {tasks_crash}"
    );
    assert!(tasks_ours > tasks_crash);
}

/// gdb-style struct output flattened to `path = value` leaves. Arrays of structs (`{{`) are
/// kept as one leaf per element line; values are normalized to their first token (a pointer's
/// `<symbol>` annotation is dropped).
fn flatten(text: &str) -> Vec<(String, String)> {
    let mut path: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut skip = 0i32;
    for line in text.lines() {
        let l = line.trim();
        if skip > 0 {
            skip += l.matches('{').count() as i32 - l.matches('}').count() as i32;
            continue;
        }
        if l.ends_with("= {") {
            path.push(l.trim_end_matches(" = {").to_string());
        } else if l == "{" {
            path.push(String::new());
        } else if l.starts_with('}') {
            path.pop();
        } else if let Some((k, v)) = l.split_once(" = ") {
            let v = v.trim_end_matches(',');
            if v.starts_with("{{") {
                // an array of structs spread over lines: skip it
                skip = v.matches('{').count() as i32 - v.matches('}').count() as i32;
                continue;
            }
            let v = if v.starts_with('"') {
                v.to_string()
            } else {
                v.split(' ').next().unwrap_or("").to_string()
            };
            let mut p: Vec<&str> = path
                .iter()
                .map(String::as_str)
                .filter(|x| !x.is_empty())
                .collect();
            p.push(k);
            out.push((p.join("."), v));
        }
    }
    out
}

#[test]
fn lab_struct_task_struct_matches_crash() {
    let v = vmlinux();
    let (mut defs, mut leaves, mut equal, mut identical) = (0, 0, 0, 0);
    for (name, d, dumps) in scenarios() {
        let Ok(want) = std::fs::read_to_string(d.join("oracle/crash-struct-task.txt")) else {
            continue;
        };
        let Some(dump) = dumps.first() else { continue };
        let mut s = Session::new(Program::open(dump, Some(&v)).unwrap());
        if let Some(h) = want.lines().next().filter(|l| l.starts_with("PID:")) {
            // `struct task_struct -x TASK` of the panic task: compare every leaf value.
            let task = h.split_whitespace().nth(3).unwrap();
            let body: String = want
                .lines()
                .skip(1)
                .take_while(|l| !l.is_empty())
                .map(|l| format!("{l}\n"))
                .collect();
            let got = run(&mut s, &format!("struct task_struct -x {task}"));
            if got == body {
                identical += 1;
            }
            let (w, g) = (flatten(&body), flatten(&got));
            let gm: std::collections::HashMap<&str, &str> =
                g.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let mut bad = Vec::new();
            for (k, v) in &w {
                leaves += 1;
                match gm.get(k.as_str()) {
                    Some(x) if x == v => equal += 1,
                    other => bad.push(format!("{k}: crash {v}, ours {other:?}")),
                }
            }
            if !bad.is_empty() {
                println!(
                    "{name}: {} differ: {:?}",
                    bad.len(),
                    &bad[..bad.len().min(3)]
                );
            }
            assert!(
                bad.len() * 100 <= w.len(),
                "{name}: {} of {} members differ from crash's, e.g. {:?}",
                bad.len(),
                w.len(),
                &bad[..bad.len().min(10)]
            );
        } else {
            let got = run(&mut s, "struct task_struct -x");
            assert_eq!(
                got.lines().collect::<Vec<_>>(),
                want.lines().collect::<Vec<_>>(),
                "{name}: struct task_struct differs from crash's"
            );
            defs += 1;
        }
    }
    println!(
        "struct task_struct: definition equal to crash's on {defs} scenarios; panic task values: {equal} of {leaves} members equal to crash's ({:.2}%), text identical on {identical} scenarios",
        100.0 * equal as f64 / leaves.max(1) as f64
    );
    assert!(defs + leaves > 0);
}

fn compare_layout(
    b: &Types<'_>,
    bid: u64,
    d: &Types<'_>,
    did: u64,
    path: &str,
    depth: u32,
) -> usize {
    assert_eq!(b.size_of(bid), d.size_of(did), "{path}: size");
    let (_, bt) = b.resolve(bid);
    let (_, dt) = d.resolve(did);
    let (Type::Struct { members: bm, .. }, Type::Struct { members: dm, .. }) = (&bt, &dt) else {
        return 0;
    };
    assert_eq!(bm.len(), dm.len(), "{path}: member count");
    let mut n = 0;
    for (x, y) in bm.iter().zip(dm) {
        let p = format!("{path}.{}", x.name.as_deref().unwrap_or("<anon>"));
        assert_eq!(x.name, y.name, "{p}: name");
        assert_eq!(x.bit_offset, y.bit_offset, "{p}: offset");
        assert_eq!(x.bit_size, y.bit_size, "{p}: bit size");
        assert_eq!(b.name(x.ty), d.name(y.ty), "{p}: type");
        n += 1;
        if depth < 2 {
            n += compare_layout(b, x.ty, d, y.ty, &p, depth + 1);
        }
    }
    n
}

#[test]
fn lab_btf_and_dwarf_give_the_same_layout() {
    let v = kmortem_kernel::program::load_vmlinux(&vmlinux()).unwrap();
    let btf = v.btf.as_ref().expect("vmlinux has .BTF");
    let map = std::sync::Arc::new(unsafe {
        memmap2::Mmap::map(&std::fs::File::open(vmlinux()).unwrap()).unwrap()
    });
    let t0 = std::time::Instant::now();
    let dwarf = kmortem_kernel::dwarf::Dwarf::load(map).unwrap();
    let b = Types(btf);
    let d = Types(&dwarf);
    let mut members = 0;
    for s in [
        "task_struct",
        "mm_struct",
        "rq",
        "module",
        "printk_info",
        "prb_desc_ring",
        "page",
        "sk_buff",
    ] {
        let bid = b.find_struct(s).unwrap_or_else(|| panic!("BTF lacks {s}"));
        let did = d
            .find_struct(s)
            .unwrap_or_else(|| panic!("DWARF lacks {s}"));
        members += compare_layout(&b, bid, &d, did, s, 0);
    }
    let scanned = dwarf
        .units_scanned
        .load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "BTF = DWARF on {members} members of 8 structs; DWARF scanned {scanned} of {} units in {:?}",
        dwarf.unit_count(),
        t0.elapsed()
    );
}

#[test]
fn lab_dwarf_lookup_is_lazy() {
    let map = std::sync::Arc::new(unsafe {
        memmap2::Mmap::map(&std::fs::File::open(vmlinux()).unwrap()).unwrap()
    });
    let dwarf = kmortem_kernel::dwarf::Dwarf::load(map).unwrap();
    let t0 = std::time::Instant::now();
    let d = Types(&dwarf);
    let id = d.find_struct("task_struct").expect("task_struct in DWARF");
    assert!(d.size_of(id) > 4096);
    let scanned = dwarf
        .units_scanned
        .load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "DWARF: task_struct found after scanning {scanned} of {} units in {:?}",
        dwarf.unit_count(),
        t0.elapsed()
    );
    assert!(scanned * 20 < dwarf.unit_count(), "scanned {scanned} units");
}

/// A minimal vmlinux: `.rodata` at `addr` holding `banner`, and a symbol table with
/// `linux_banner`.
fn fake_vmlinux(banner: &str, addr: u64) -> Vec<u8> {
    let mut rodata = banner.as_bytes().to_vec();
    rodata.push(0);
    rodata.resize(rodata.len().div_ceil(8) * 8, 0); // object wants an aligned .symtab
    let strtab = b"\0linux_banner\0".to_vec();
    let shstrtab = b"\0.rodata\0.symtab\0.strtab\0.shstrtab\0".to_vec();
    let mut symtab = vec![0u8; 24];
    let mut sym = vec![0u8; 24];
    sym[0..4].copy_from_slice(&1u32.to_le_bytes());
    sym[4] = 0x11; // GLOBAL OBJECT
    sym[6..8].copy_from_slice(&1u16.to_le_bytes());
    sym[8..16].copy_from_slice(&addr.to_le_bytes());
    sym[16..24].copy_from_slice(&(rodata.len() as u64).to_le_bytes());
    symtab.extend(sym);
    let mut f = vec![0u8; 64];
    let ro_off = 64u64;
    let st_off = ro_off + rodata.len() as u64;
    let str_off = st_off + symtab.len() as u64;
    let shs_off = str_off + strtab.len() as u64;
    let sh_off = (shs_off + shstrtab.len() as u64).div_ceil(8) * 8;
    f.extend(&rodata);
    f.extend(&symtab);
    f.extend(&strtab);
    f.extend(&shstrtab);
    f.resize(sh_off as usize, 0);
    let sh = |name: u32, ty: u32, flags: u64, a: u64, off: u64, size: u64, link: u32, ent: u64| {
        let mut h = vec![0u8; 64];
        h[0..4].copy_from_slice(&name.to_le_bytes());
        h[4..8].copy_from_slice(&ty.to_le_bytes());
        h[8..16].copy_from_slice(&flags.to_le_bytes());
        h[16..24].copy_from_slice(&a.to_le_bytes());
        h[24..32].copy_from_slice(&off.to_le_bytes());
        h[32..40].copy_from_slice(&size.to_le_bytes());
        h[40..44].copy_from_slice(&link.to_le_bytes());
        h[44..48].copy_from_slice(&1u32.to_le_bytes());
        h[48..56].copy_from_slice(&1u64.to_le_bytes());
        h[56..64].copy_from_slice(&ent.to_le_bytes());
        h
    };
    f.extend(sh(0, 0, 0, 0, 0, 0, 0, 0));
    f.extend(sh(1, 1, 2, addr, ro_off, rodata.len() as u64, 0, 0));
    f.extend(sh(9, 2, 0, 0, st_off, symtab.len() as u64, 3, 24));
    f.extend(sh(17, 3, 0, 0, str_off, strtab.len() as u64, 0, 0));
    f.extend(sh(25, 3, 0, 0, shs_off, shstrtab.len() as u64, 0, 0));
    f[0..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[16..18].copy_from_slice(&2u16.to_le_bytes());
    f[18..20].copy_from_slice(&62u16.to_le_bytes());
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[40..48].copy_from_slice(&sh_off.to_le_bytes());
    f[52..54].copy_from_slice(&64u16.to_le_bytes());
    f[58..60].copy_from_slice(&64u16.to_le_bytes());
    f[60..62].copy_from_slice(&5u16.to_le_bytes());
    f[62..64].copy_from_slice(&4u16.to_le_bytes());
    f
}

#[test]
fn lab_wrong_vmlinux_is_refused() {
    let (_, _, dumps) = scenarios().into_iter().next().unwrap();
    let dump = dumps.first().expect("a dump");
    let real = kmortem_kernel::program::load_vmlinux(&vmlinux()).unwrap();
    let banner_addr = real.symbols.addr("linux_banner").unwrap();
    let dir = std::env::temp_dir().join(format!("kmortem-wrong-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "other-release",
            "Linux version 6.1.0-53-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP\n",
            "is Linux 6.1.0-53-cloud-amd64",
        ),
        (
            "other-build",
            "Linux version 6.1.0-56-cloud-amd64 (someone@else) (gcc-12) #2 SMP PREEMPT_DYNAMIC\n",
            "linux_banner differs",
        ),
    ];
    for (name, banner, want) in cases {
        let p = dir.join(name);
        std::fs::write(&p, fake_vmlinux(banner, banner_addr)).unwrap();
        let err = match Program::open(dump, Some(&p)) {
            Ok(_) => panic!("{name}: a wrong vmlinux was accepted"),
            Err(e) => e.to_string(),
        };
        println!("{name}: {err}");
        assert!(err.contains("vmlinux and vmcore do not match"), "{err}");
        assert!(err.contains(want), "{err}");
    }
    // A module is not a vmlinux.
    let ko = lab().join("module/kmlab.ko");
    if ko.is_file() {
        let err = Program::open(dump, Some(&ko))
            .err()
            .expect("kmlab.ko accepted as vmlinux");
        assert!(err.to_string().contains("not a vmlinux"), "{err}");
    }
    // The right one is accepted.
    assert!(Program::open(dump, Some(&vmlinux())).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A scenario by name; missing is a failure unless KMORTEM_LAB_PARTIAL is set (the lab is
/// still running).
fn scenario(name: &str) -> Option<(PathBuf, serde_json::Value)> {
    let d = lab().join("scenarios").join(name);
    if !d.join("meta.json").is_file() {
        if std::env::var_os("KMORTEM_LAB_PARTIAL").is_some() {
            println!("{name}: not built yet, skipped (KMORTEM_LAB_PARTIAL)");
            return None;
        }
        panic!("lab scenario {name} is missing at {}", d.display());
    }
    let meta = serde_json::from_slice(&std::fs::read(d.join("meta.json")).unwrap()).unwrap();
    Some((d, meta))
}

fn first_dump(d: &Path) -> PathBuf {
    ["vmcore.elf", "vmcore.kdump-zlib"]
        .iter()
        .map(|f| d.join(f))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no dump in {}", d.display()))
}

#[test]
fn lab_no_vmcoreinfo() {
    let Some((d, meta)) = scenario("null_deref_no_vmcoreinfo") else {
        return;
    };
    let dump = first_dump(&d);
    let want = meta["kaslr_offset"]
        .as_str()
        .map(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap());
    let raw = kmortem_dump::Dump::open(&dump).unwrap();
    assert!(
        raw.vmcoreinfo().is_none(),
        "this dump should carry no VMCOREINFO note"
    );
    // Without a vmlinux: VMCOREINFO found in memory.
    let p = Program::open(&dump, None).unwrap();
    assert_eq!(
        p.vmcoreinfo_source,
        kmortem_kernel::program::VmcoreinfoSource::MemoryScan
    );
    if let Some(w) = want {
        assert_eq!(p.kaslr, w, "KASLR from the memory scan");
    }
    let mut s = Session::new(p);
    let log = run(&mut s, "log");
    let oracle = std::fs::read_to_string(d.join("oracle/crash-log.txt")).unwrap_or_default();
    if !oracle.is_empty() {
        assert_eq!(
            log.lines().collect::<Vec<_>>(),
            oracle.lines().collect::<Vec<_>>()
        );
    }
    // From the IDT and the vmlinux alone.
    let v = kmortem_kernel::program::load_vmlinux(&vmlinux()).unwrap();
    let k = kmortem_kernel::program::kaslr_from_idt(&raw, &v).unwrap();
    assert_eq!(
        k, s.prog.kaslr,
        "KASLR from the IDT = KASLR from VMCOREINFO in memory"
    );
    println!(
        "no-VMCOREINFO dump: KASLR {k:#x} from memory scan and from the IDT; {} log lines",
        log.lines().count()
    );
}

#[test]
fn lab_la57() {
    let Some((d, _)) = scenario("null_deref_la57") else {
        return;
    };
    let dump = first_dump(&d);
    let p = Program::open(&dump, Some(&vmlinux())).unwrap();
    assert!(p.vm.la57, "5-level paging expected");
    let mut s = Session::new(p);
    let tasks = s.prog.tasks().unwrap();
    let drgn = drgn_ps(&d.join("oracle/drgn-ps.txt"));
    let ours: BTreeSet<(i64, String, String)> = tasks
        .iter()
        .filter(|t| t.pid > 0)
        .map(|t| (t.pid as i64, t.comm.clone(), t.state.clone()))
        .collect();
    if !drgn.is_empty() {
        assert_eq!(ours, drgn);
    }
    let log = run(&mut s, "log");
    let oracle = std::fs::read_to_string(d.join("oracle/crash-log.txt")).unwrap_or_default();
    if !oracle.is_empty() {
        assert_eq!(
            log.lines().collect::<Vec<_>>(),
            oracle.lines().collect::<Vec<_>>()
        );
    }
    println!(
        "la57: {} tasks, {} log lines",
        tasks.len(),
        log.lines().count()
    );
}

/// The panic task (crash's `bt` header: PID, TASK, CPU, COMMAND) and its `struct task_struct`
/// values: pid, comm, CPU, state and parent as crash and drgn see them.
#[test]
fn lab_panic_task_struct_values() {
    let v = vmlinux();
    let mut n = 0;
    for (name, d, dumps) in scenarios() {
        let Ok(bt) = std::fs::read_to_string(d.join("oracle/crash-bt.txt")) else {
            continue;
        };
        let Some(h) = bt.lines().find(|l| l.starts_with("PID:")) else {
            continue;
        };
        let f: Vec<&str> = h.split_whitespace().collect();
        let (pid, task, cpu) = (f[1], f[3], f[5]);
        let comm = h.split('"').nth(1).unwrap_or("");
        let task_addr = u64::from_str_radix(task, 16).unwrap();
        let Some(dump) = dumps.first() else { continue };
        let mut s = Session::new(Program::open(dump, Some(&v)).unwrap());
        let Some(pt) = s.prog.panic_task().unwrap() else {
            // No panic (a live dump, a WARNING that did not panic): panic_cpu is -1 and crash
            // shows the task of its current CPU instead.
            let log = run(&mut s, "log");
            assert!(
                !log.contains("Kernel panic - not syncing"),
                "{name}: panic task not found"
            );
            println!("{name}: no panic, skipped");
            continue;
        };
        assert_eq!(pt.task, task_addr, "{name}: panic task");
        assert_eq!(pt.pid.to_string(), pid, "{name}");
        assert_eq!(pt.cpu.to_string(), cpu, "{name}");
        assert_eq!(pt.comm, comm, "{name}");
        let text = run(&mut s, &format!("struct task_struct {task}"));
        for want in [
            format!("\n  pid = {pid},\n"),
            format!("\n  tgid = {pid},\n"),
            format!("\n  comm = \"{comm}"),
            format!("\n    cpu = {cpu}\n"),
            "\n  __state = 0,\n".to_string(),
        ] {
            assert!(
                text.contains(&want),
                "{name}: struct task_struct {task} lacks {want:?}"
            );
        }
        // Member paths and the JSON values agree with the text.
        let o = s.run(&format!("struct task_struct.pid {task}")).unwrap();
        assert_eq!(o.json["value"], pid);
        n += 1;
    }
    println!("panic task and its struct task_struct values equal crash's on {n} scenarios");
    assert!(n > 0);
}

/// Modules and their symbols from the dump's module list: crash's `mod` (name, struct module,
/// base, size) and the module frames of crash's `bt` (`name at ADDR [module]`).
#[test]
fn lab_modules_and_module_symbols() {
    let v = vmlinux();
    let (mut mods, mut frames) = (0, 0);
    for (name, d, dumps) in scenarios() {
        let Ok(cm) = std::fs::read_to_string(d.join("oracle/crash-mod.txt")) else {
            continue;
        };
        let Some(dump) = dumps.first() else { continue };
        let p = Program::open(dump, Some(&v)).unwrap();
        for l in cm.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 4 {
                continue;
            }
            let m = p
                .modules()
                .iter()
                .find(|m| m.name == f[1])
                .unwrap_or_else(|| panic!("{name}: module {} missing", f[1]));
            assert_eq!(format!("{:016x}", m.addr), f[0], "{name}: {}", f[1]);
            assert_eq!(format!("{:016x}", m.base), f[2], "{name}: {}", f[1]);
            assert_eq!(m.size.to_string(), f[3], "{name}: {}", f[1]);
            mods += 1;
        }
        let bt = std::fs::read_to_string(d.join("oracle/crash-bt.txt")).unwrap_or_default();
        for l in bt
            .lines()
            .filter(|l| l.ends_with(']') && l.contains(" at ") && l.starts_with(" #"))
        {
            // " #4 [ffffc9ab80403db8] kmlab_do_null_deref at ffffffffc0309792 [kmlab]"
            let f: Vec<&str> = l.split_whitespace().collect();
            let (func, addr, module) = (f[2], f[4], f[5].trim_matches(['[', ']']));
            let a = u64::from_str_radix(addr, 16).unwrap();
            let (s, _) = p
                .lookup(a)
                .unwrap_or_else(|| panic!("{name}: no symbol for {addr}"));
            // crash's `bt` prints GCC clone names without their suffix (`kmlab_session_touch`
            // for the ELF symbol `kmlab_session_touch.isra.0`); we keep the real symbol name, so
            // compare up to the first `.` of a clone suffix (the uaf scenario has such a frame).
            let base = s.name.split('.').next().unwrap_or(&s.name);
            assert!(
                s.name == func || base == func,
                "{name}: {addr}: {} vs crash's {func}",
                s.name
            );
            assert_eq!(s.module.as_deref(), Some(module), "{name}: {addr}");
            frames += 1;
        }
    }
    println!("modules equal to crash's mod: {mods}; module frames of crash's bt symbolized alike: {frames}");
    assert!(mods > 0 && frames > 0);
}
