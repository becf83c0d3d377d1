//! Tests on the crash lab's real dumps of every pinned kernel (lab/kernels.toml: Debian 12's 6.1
//! and its 6.12 backport; kmortem-lab finds them): types (BTF against DWARF), the vmlinux check,
//! modules and their symbols, with crash and drgn as oracles where the kernel has them (crash
//! cannot read 6.12: drgn is the oracle there). The session's commands on the same dumps:
//! crates/shell/tests/lab.rs. Figures are printed per kernel (`--show-output`).

use kmortem_kernel::types::{Type, Types};
use kmortem_kernel::Program;
use std::collections::BTreeSet;

mod common;
use common::{drgn_mod, each, oracle, primary, scenarios, vmlinux};

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
    each(|lab| {
        let v = kmortem_kernel::program::load_vmlinux(&vmlinux(lab)).unwrap();
        let btf = v.btf.as_ref().expect("vmlinux has .BTF");
        let map = std::sync::Arc::new(unsafe {
            memmap2::Mmap::map(&std::fs::File::open(vmlinux(lab)).unwrap()).unwrap()
        });
        let t0 = std::time::Instant::now();
        let dwarf = kmortem_kernel::dwarf::Dwarf::load(map).unwrap();
        let b = Types(btf);
        let d = Types(&dwarf);
        let mut members = 0;
        let structs = [
            "task_struct",
            "mm_struct",
            "rq",
            "module",
            "printk_info",
            "prb_desc_ring",
            "page",
            "slab",
            "sk_buff",
            "orc_entry",
        ];
        for s in structs {
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
            "[{}] BTF = DWARF on {members} members of {} structs; DWARF scanned {scanned} of {} units in {:?}",
            lab.name(),
            structs.len(),
            dwarf.unit_count(),
            t0.elapsed()
        );
        assert!(members > 1000, "{members} members compared");
    });
}

#[test]
fn lab_dwarf_lookup_is_lazy() {
    each(|lab| {
        let map = std::sync::Arc::new(unsafe {
            memmap2::Mmap::map(&std::fs::File::open(vmlinux(lab)).unwrap()).unwrap()
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
            "[{}] DWARF: task_struct found after scanning {scanned} of {} units in {:?}",
            lab.name(),
            dwarf.unit_count(),
            t0.elapsed()
        );
        assert!(scanned * 20 < dwarf.unit_count(), "scanned {scanned} units");
    });
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
    each(|lab| {
        let sc = lab.need("null_deref");
        let dump = primary(&sc).path;
        let real = kmortem_kernel::program::load_vmlinux(&vmlinux(lab)).unwrap();
        let banner_addr = real.symbols.addr("linux_banner").unwrap();
        let dir = std::env::temp_dir().join(format!(
            "kmortem-wrong-{}-{}",
            std::process::id(),
            lab.name()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let rel = lab.release();
        let other = format!("{rel}-other");
        let cases = [
            (
                "other-release",
                format!("Linux version {other} (debian-kernel@lists.debian.org) #1 SMP\n"),
                format!("is Linux {other}"),
            ),
            (
                "other-build",
                format!("Linux version {rel} (someone@else) (gcc-12) #2 SMP PREEMPT_DYNAMIC\n"),
                "linux_banner differs".to_string(),
            ),
        ];
        for (name, banner, want) in cases {
            let p = dir.join(name);
            std::fs::write(&p, fake_vmlinux(&banner, banner_addr)).unwrap();
            let err = match Program::open(&dump, Some(&p)) {
                Ok(_) => panic!("{name}: a wrong vmlinux was accepted"),
                Err(e) => e.to_string(),
            };
            println!("[{}] {name}: {err}", lab.name());
            assert!(err.contains("vmlinux and vmcore do not match"), "{err}");
            assert!(err.contains(&want), "{err}");
        }
        // A mixed fleet: the other pinned kernels' vmlinux files are refused too.
        let mut others = 0;
        for o in kmortem_lab::Lab::all()
            .unwrap()
            .iter()
            .filter(|o| o.name() != lab.name())
        {
            let err = Program::open(&dump, Some(&vmlinux(o)))
                .err()
                .unwrap_or_else(|| panic!("the vmlinux of kernel {} accepted", o.name()));
            println!("[{}] vmlinux of {}: {err}", lab.name(), o.name());
            assert!(
                err.to_string()
                    .contains(&format!("is Linux {}", o.release())),
                "{err}"
            );
            others += 1;
        }
        if others == 0 {
            println!("  note: one kernel selected: no other kernel's vmlinux to refuse");
        }
        // A module is not a vmlinux.
        let ko = lab.kmlab_ko();
        assert!(ko.is_file(), "{} missing", ko.display());
        let err = Program::open(&dump, Some(&ko))
            .err()
            .expect("kmlab.ko accepted as vmlinux");
        assert!(err.to_string().contains("not a vmlinux"), "{err}");
        // The right one is accepted.
        assert!(Program::open(&dump, Some(&vmlinux(lab))).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// Names compared across tools: GCC clone suffixes (`.isra.0`, `.constprop.0`, `.cold`) are
/// dropped (crash's `bt` and drgn name the function, the ELF symbol keeps them).
fn base_name(n: &str) -> &str {
    n.split('.').next().unwrap_or(n)
}

/// Modules and their symbols from the dump's module list: crash's and drgn's `mod` (name,
/// struct module, base, size) and the module frames of their backtraces (crash: `name at ADDR
/// [module]`; drgn: a pc inside a module).
#[test]
fn lab_modules_and_module_symbols() {
    each(|lab| {
        let v = vmlinux(lab);
        let (mut mods_crash, mut frames_crash, mut mods_drgn, mut frames_drgn) = (0, 0, 0, 0);
        let mut vars = 0;
        let mut notes = BTreeSet::new();
        for sc in scenarios(lab) {
            let name = sc.meta.name.clone();
            let dump = primary(&sc);
            let p = Program::open(&dump.path, Some(&v)).unwrap();
            let module = |n: &str| {
                p.modules()
                    .iter()
                    .find(|m| m.name == n)
                    .unwrap_or_else(|| panic!("{name}: module {n} missing"))
            };
            if let Ok(cm) = oracle(lab, &sc, "crash-mod", "") {
                for l in cm.lines().skip(1) {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    if f.len() < 4 {
                        continue;
                    }
                    let m = module(f[1]);
                    assert_eq!(format!("{:016x}", m.addr), f[0], "{name}: {}", f[1]);
                    assert_eq!(format!("{:016x}", m.base), f[2], "{name}: {}", f[1]);
                    assert_eq!(m.size.to_string(), f[3], "{name}: {}", f[1]);
                    mods_crash += 1;
                }
                let bt = oracle(lab, &sc, "crash-bt", "").unwrap_or_default();
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
                    // crash's `bt` prints GCC clone names without their suffix
                    // (`kmlab_session_touch` for `kmlab_session_touch.isra.0`).
                    assert!(
                        s.name == func || base_name(&s.name) == func,
                        "{name}: {addr}: {} vs crash's {func}",
                        s.name
                    );
                    assert_eq!(s.module.as_deref(), Some(module), "{name}: {addr}");
                    frames_crash += 1;
                }
            }
            match drgn_mod(lab, &sc, "") {
                Ok(dm) => {
                    assert_eq!(dm.len(), p.modules().len(), "{name}: modules vs drgn's");
                    for (addr, n, base, size) in dm {
                        let m = module(&n);
                        assert_eq!(
                            (m.addr, m.base, m.size),
                            (addr, base, size),
                            "{name}: {n} vs drgn's mod"
                        );
                        mods_drgn += 1;
                    }
                }
                Err(why) => {
                    notes.insert(format!("mod: {why}"));
                }
            }
            // drgn's frames whose pc is in a module (its text) are named alike.
            if let Ok(bt) = oracle(lab, &sc, "drgn-bt", "") {
                for l in bt
                    .lines()
                    .filter(|l| l.starts_with('#') && !l.ends_with("(inlined)"))
                {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    let (Some(func), Some(pc)) =
                        (f.get(1), f.get(2).and_then(|w| w.strip_prefix("pc=0x")))
                    else {
                        continue;
                    };
                    let a = u64::from_str_radix(pc, 16).unwrap();
                    let Some(m) = p
                        .modules()
                        .iter()
                        .find(|m| (m.base..m.base + m.size).contains(&a))
                    else {
                        continue;
                    };
                    let (s, _) = p
                        .lookup(a)
                        .unwrap_or_else(|| panic!("{name}: no symbol for {pc}"));
                    assert_eq!(base_name(&s.name), base_name(func), "{name}: {pc}");
                    assert_eq!(s.module.as_deref(), Some(m.name.as_str()), "{name}: {pc}");
                    frames_drgn += 1;
                }
            }
            // Module variables are named by address too: the nearest symbol of the region
            // (data, rodata) holding them, not the last function before them.
            let km = p.modules().iter().find(|m| m.name == "kmlab");
            if km.is_none() {
                // The lab's guest crashed before it loaded kmlab (see the console).
                notes.insert(format!("{name}: kmlab is not loaded in this dump"));
            }
            for s in km
                .into_iter()
                .flat_map(|m| &m.symbols)
                .filter(|s| "dDbBrR".contains(s.kind) && s.size > 0)
            {
                let a = s.addr + s.size / 2;
                let (got, off) = p.lookup(a).unwrap_or_else(|| {
                    panic!("{name}: no symbol for kmlab's {} at {a:#x}", s.name)
                });
                assert_eq!(
                    (got.addr, off),
                    (s.addr, s.size / 2),
                    "{name}: {} named {}",
                    s.name,
                    got.name
                );
                assert_ne!(
                    km.and_then(|m| m.region(a)).map(|r| r.kind),
                    Some("text"),
                    "{name}: {}",
                    s.name
                );
                vars += 1;
            }
        }
        for n in &notes {
            println!("  note: {n}");
        }
        println!(
            "[{}] modules equal to crash's mod: {mods_crash}, to drgn's: {mods_drgn}; module frames symbolized as crash's bt names them: {frames_crash}, as drgn's: {frames_drgn}; {vars} module variables named by address",
            lab.name()
        );
        assert!(
            frames_drgn >= 40,
            "{frames_drgn} module frames compared with drgn"
        );
        if lab.has_oracle("crash") {
            assert!(mods_crash > 0 && frames_crash > 0);
        } else {
            assert!(mods_drgn >= 40, "{mods_drgn} modules compared with drgn");
        }
    });
}
