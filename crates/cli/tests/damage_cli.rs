//! Damaged and mismatched input given to `kmortem core` (issue 25): real lab dumps of every
//! kernel, damaged here into a temporary file (truncated, bitmap rewritten, a note dropped, a
//! task's list pointer corrupted at the file offset the dump maps it to, a PT_LOAD moved onto
//! another), and wrong files given as the vmlinux. Each must give a warning that names the
//! damage on stderr, the same warning in `--json`, and exit status 3 (partial) or 1/2 (refused),
//! never a quiet answer with status 0.

mod common;

use kmortem_kernel::Memory;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

fn kmortem(args: &[&str]) -> (String, String, i32) {
    common::run(args, &[], None)
}

/// The JSON warnings lines of a `--json` run.
fn json_warnings(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("warnings").is_some())
        .flat_map(|v| v["warnings"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn kinds(ws: &[serde_json::Value]) -> Vec<String> {
    ws.iter()
        .map(|w| w["kind"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Copy the first `len` bytes (all with `None`) of `src` into a temp file.
fn copy(src: &Path, len: Option<u64>, dir: &tempfile::TempDir, name: &str) -> PathBuf {
    let dst = dir.path().join(name);
    let mut f = std::fs::File::open(src).expect("open lab dump");
    let mut o = std::fs::File::create(&dst).expect("create temp dump");
    let n = len.unwrap_or(u64::MAX);
    std::io::copy(&mut (&mut f).take(n), &mut o).expect("copy");
    dst
}

fn patch(p: &Path, off: u64, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(p)
        .expect("open temp dump");
    f.seek(SeekFrom::Start(off)).unwrap();
    f.write_all(bytes).unwrap();
}

fn read_at(p: &Path, off: u64, len: usize) -> Vec<u8> {
    let mut f = std::fs::File::open(p).unwrap();
    f.seek(SeekFrom::Start(off)).unwrap();
    let mut b = vec![0u8; len];
    f.read_exact(&mut b).unwrap();
    b
}

fn u64le(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}
fn u32le(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

/// (p_type, p_offset, p_paddr, p_filesz, file offset of the phdr) of an ELF dump.
fn phdrs(p: &Path) -> Vec<(u32, u64, u64, u64, u64)> {
    let h = read_at(p, 0, 64);
    let phoff = u64le(&h, 32);
    let n = u16::from_le_bytes([h[56], h[57]]) as u64;
    (0..n)
        .map(|i| {
            let o = phoff + i * 56;
            let b = read_at(p, o, 56);
            (u32le(&b, 0), u64le(&b, 8), u64le(&b, 24), u64le(&b, 32), o)
        })
        .collect()
}

fn scenario_dump(l: &kmortem_lab::Lab, format: &str) -> (PathBuf, PathBuf) {
    let sc = l.need("null_deref");
    let d = sc
        .dump(format)
        .unwrap_or_else(|| panic!("null_deref keeps a {format} dump"));
    (d, l.vmlinux())
}

/// The other pinned kernel's `kmlab.ko`: a module of another build for `l`'s dumps.
fn other_kernels_kmlab(l: &kmortem_lab::Lab) -> Option<PathBuf> {
    kmortem_lab::Lab::all()
        .ok()
        .and_then(|all| {
            all.iter()
                .find(|o| o.name() != l.name())
                .map(|o| o.kmlab_ko())
        })
        .filter(|p| p.is_file())
}

/// A sound dump says nothing: exit 0 and no warning (the warnings below are not noise).
#[test]
fn lab_sound_dumps_have_no_warnings() {
    kmortem_lab::each(|l| {
        for fmt in ["kdump-zlib", "elf"] {
            let (d, v) = scenario_dump(l, fmt);
            let (out, err, code) = kmortem(&[
                "core",
                d.to_str().unwrap(),
                "-s",
                v.to_str().unwrap(),
                "--json",
                "-c",
                "sys",
                "-c",
                "ps",
                "-c",
                "bt",
            ]);
            println!("[{}] {fmt}: exit {code}, stderr {err:?}", l.name());
            assert_eq!((code, err.as_str()), (0, ""), "{fmt}");
            assert!(json_warnings(&out).is_empty());
        }
    });
}

#[test]
fn lab_truncated_dumps_are_flagged() {
    kmortem_lab::each(|l| {
        let dir = tempfile::tempdir().unwrap();
        for fmt in ["kdump-zlib", "elf"] {
            let (d, v) = scenario_dump(l, fmt);
            let len = std::fs::metadata(&d).unwrap().len();
            let t = copy(&d, Some(len * 6 / 10), &dir, fmt);
            let (out, err, code) = kmortem(&[
                "core",
                t.to_str().unwrap(),
                "-s",
                v.to_str().unwrap(),
                "--json",
                "-c",
                "sys",
                "-c",
                "bt -a",
            ]);
            println!("[{}] {fmt} cut to 60%: exit {code}\n{err}", l.name());
            assert!(
                err.contains("warning: kmortem: file truncated at"),
                "{fmt}: {err}"
            );
            assert_eq!(code, 3, "{fmt}: partial answers exit 3");
            let ws = json_warnings(&out);
            assert!(kinds(&ws).contains(&"truncated".to_string()), "{ws:?}");
            let w = ws.iter().find(|w| w["kind"] == "truncated").unwrap();
            assert!(w["range"]["start"].as_str().unwrap().starts_with("0x"));
            // sys still answers; its MEMORY line is there.
            assert!(out.contains("\"memory\""), "{out}");
        }
    });
}

/// The kdump dumpable bitmap claims every page (or none): no read may return another page's
/// bytes, so reads are refused and the bitmap named.
#[test]
fn lab_kdump_bitmap_that_lies() {
    kmortem_lab::each(|l| {
        let dir = tempfile::tempdir().unwrap();
        let (d, _) = scenario_dump(l, "kdump-zlib");
        let h = read_at(&d, 0, 464);
        let bs = u32le(&h, 428) as u64;
        let sub = u32le(&h, 432) as u64;
        let blocks = u32le(&h, 436) as u64;
        let bm_off = (1 + sub) * bs;
        let half = blocks * bs / 2;
        for (name, byte) in [("all", 0xffu8), ("none", 0u8)] {
            let t = copy(&d, None, &dir, name);
            patch(&t, bm_off + half, &vec![byte; half as usize]);
            let (out, err, code) = kmortem(&[
                "core",
                t.to_str().unwrap(),
                "--json",
                "-c",
                "rd -p 0x1000000 4",
            ]);
            println!("[{}] dump bitmap {name}: exit {code}\n{err}", l.name());
            assert!(
                err.contains("the dump bitmap marks") && err.contains("page descriptors"),
                "{name}: {err}"
            );
            assert_ne!(code, 0);
            let ws = json_warnings(&out);
            assert!(kinds(&ws).contains(&"bitmap".to_string()), "{ws:?}");
            // The read is refused (rd fails), not answered from another page.
            assert!(out.contains("\"error\""), "{name}: {out}");
        }
    });
}

/// A PT_LOAD moved onto RAM that holds other bytes: the overlap is named, reads there refused.
#[test]
fn lab_overlapping_pt_load() {
    kmortem_lab::each(|l| {
        let dir = tempfile::tempdir().unwrap();
        let (d, _) = scenario_dump(l, "elf");
        let t = copy(&d, None, &dir, "overlap");
        let ph = phdrs(&t);
        let loads: Vec<_> = ph.iter().filter(|p| p.0 == 1).collect();
        assert!(loads.len() >= 2, "{ph:?}");
        // The smallest segment after the first moves to the start of the biggest RAM one.
        let big = loads.iter().max_by_key(|p| p.3).unwrap();
        let small = loads
            .iter()
            .filter(|p| p.4 != big.4)
            .min_by_key(|p| p.3)
            .unwrap();
        let at = big.2 + 0x100_0000;
        patch(&t, small.4 + 24, &at.to_le_bytes());
        patch(&t, small.4 + 16, &at.to_le_bytes());
        let (out, err, code) = kmortem(&[
            "core",
            t.to_str().unwrap(),
            "--json",
            "-c",
            &format!("rd -p {at:#x} 2"),
        ]);
        println!("[{}] overlap at {at:#x}: exit {code}\n{err}", l.name());
        assert!(
            err.contains("overlap at physical") && err.contains("different bytes"),
            "{err}"
        );
        let ws = json_warnings(&out);
        assert!(
            kinds(&ws).contains(&"overlapping_segments".to_string()),
            "{ws:?}"
        );
        assert!(
            err.contains("overlapping PT_LOAD segments hold different bytes"),
            "{err}"
        );
        assert_eq!(code, 1, "the read is refused");
    });
}

/// The panicking CPU's NT_PRSTATUS note renamed away (lost): bt says the registers are missing
/// instead of walking the stale thread.sp as if it were the stack.
#[test]
fn lab_lost_prstatus_notes_are_named() {
    kmortem_lab::each(|l| {
        let dir = tempfile::tempdir().unwrap();
        let (d, v) = scenario_dump(l, "kdump-zlib");
        let t = copy(&d, None, &dir, "nonote");
        let h = read_at(&t, 0, 464);
        let bs = u32le(&h, 428) as u64;
        let sub = read_at(&t, bs, 64);
        let (noff, nsize) = (u64le(&sub, 48), u64le(&sub, 56));
        let notes = read_at(&t, noff, nsize as usize);
        let bt = |t: &Path| {
            kmortem(&[
                "core",
                t.to_str().unwrap(),
                "-s",
                v.to_str().unwrap(),
                "--json",
                "-c",
                "bt",
            ])
        };
        // Rename the notes of NAME: those registers are lost.
        let drop = |name: &[u8; 4]| {
            let mut o = 0usize;
            let mut renamed = 0;
            while o + 16 <= notes.len() {
                let (nsz, dsz) = (u32le(&notes, o) as usize, u32le(&notes, o + 4) as usize);
                if nsz == 0 {
                    break;
                }
                if &notes[o + 12..o + 16] == name {
                    patch(&t, noff + o as u64 + 12, b"XXXX");
                    renamed += 1;
                }
                o += 12 + nsz.div_ceil(4) * 4 + dsz.div_ceil(4) * 4;
            }
            renamed
        };
        let renamed = drop(b"CORE");
        assert!(renamed > 0);
        let qemu = drop(b"QEMU");
        if qemu == 0 {
            println!("[{}] no QEMU notes in this kdump", l.name());
        } else {
            // Only the CORE notes gone: QEMU's CPU state is the start, and that is said.
            let t2 = copy(&d, None, &dir, "nocore");
            let mut o = 0usize;
            while o + 16 <= notes.len() {
                let (nsz, dsz) = (u32le(&notes, o) as usize, u32le(&notes, o + 4) as usize);
                if nsz == 0 {
                    break;
                }
                if &notes[o + 12..o + 16] == b"CORE" {
                    patch(&t2, noff + o as u64 + 12, b"XXXX");
                }
                o += 12 + nsz.div_ceil(4) * 4 + dsz.div_ceil(4) * 4;
            }
            let (out, err, code) = bt(&t2);
            println!("[{}] CORE notes dropped: exit {code}\n{err}", l.name());
            assert_eq!(code, 3, "{err}");
            assert!(
                err.contains("has no NT_PRSTATUS note") && err.contains("QEMU"),
                "{err}"
            );
            assert!(out.contains("\"frames\""), "{out}");
        }
        let (out, err, code) = bt(&t);
        println!(
            "[{}] {renamed} CORE + {qemu} QEMU notes dropped: exit {code}\n{err}",
            l.name()
        );
        assert!(err.contains("registers are missing"), "{err}");
        assert!(err.contains("NT_PRSTATUS"), "{err}");
        assert_eq!(code, 1, "bt has no answer");
        assert!(!out.contains("\"frames\""), "{out}");
        let ws = json_warnings(&out);
        assert!(
            kinds(&ws).contains(&"missing_registers".to_string()),
            "{ws:?}"
        );
    });
}

/// A task's `tasks.next` pointed at other memory, in the bytes of the dump file that hold it:
/// ps names the break, still lists drgn's tasks (found through the pid table), exits 3.
#[test]
fn lab_damaged_task_list_is_named() {
    kmortem_lab::each(|l| {
        let dir = tempfile::tempdir().unwrap();
        let (d, v) = scenario_dump(l, "elf");
        let t = copy(&d, None, &dir, "badlist");
        let prog = kmortem_kernel::Program::open(&t, Some(&v)).expect("open");
        let init = prog.symbol("init_task").unwrap();
        let off = prog.offset_of("task_struct", "tasks").unwrap();
        // The 10th task on the list.
        let mut task = init;
        for _ in 0..10 {
            task = prog.read_u64(task + off).unwrap() - off;
        }
        let link = task + off;
        let paddr = prog.vm.translate(&prog.dump, link).expect("translate");
        let seg = phdrs(&t)
            .into_iter()
            .find(|p| p.0 == 1 && p.2 <= paddr && paddr < p.2 + p.3)
            .expect("segment");
        let foff = seg.1 + (paddr - seg.2);
        let bogus = prog.symbol("jiffies").unwrap();
        drop(prog);
        patch(&t, foff, &bogus.to_le_bytes());
        let (out, err, code) = kmortem(&[
            "core",
            t.to_str().unwrap(),
            "-s",
            v.to_str().unwrap(),
            "-c",
            "ps",
        ]);
        println!(
            "[{}] task {task:#x} next -> {bogus:#x}: exit {code}\n{err}",
            l.name()
        );
        assert!(
            err.contains(&format!(
                "ps: task list ends at {link:#x} (bad next pointer"
            )),
            "{err}"
        );
        assert!(err.contains("tasks"), "{err}");
        assert_eq!(code, 3);
        // The answer is still right: every pid drgn lists is there.
        let sc = l.need("null_deref");
        let oracle = std::fs::read_to_string(sc.oracle("drgn-ps.txt")).unwrap_or_default();
        let want: Vec<&str> = oracle
            .lines()
            .skip(1)
            .filter_map(|x| x.split_whitespace().next())
            .collect();
        let have: std::collections::HashSet<&str> = out
            .lines()
            .skip(1)
            .filter_map(|x| x.trim_start_matches('>').split_whitespace().next())
            .collect();
        let missing: Vec<_> = want.iter().filter(|p| !have.contains(*p)).collect();
        println!("  {} drgn tasks, {} missing", want.len(), missing.len());
        assert!(!want.is_empty());
        assert!(missing.is_empty(), "{missing:?}");
    });
}

/// VMCOREINFO's printk descriptor offset made wrong: log says what is wrong, not nothing.
#[test]
fn lab_bad_printk_metadata_is_named() {
    kmortem_lab::each(|l| {
        let dir = tempfile::tempdir().unwrap();
        let (d, _) = scenario_dump(l, "kdump-zlib");
        let t = copy(&d, None, &dir, "badprintk");
        let head = read_at(&t, 0, 1 << 20);
        let key = b"OFFSET(prb_desc.state_var)=";
        let mut n = 0;
        let mut i = 0;
        while let Some(p) = head[i..].windows(key.len()).position(|w| w == key) {
            let at = i + p + key.len();
            let digit = head[at];
            patch(&t, at as u64, &[b'0' + (digit - b'0' + 4) % 10]);
            n += 1;
            i = at;
        }
        assert!(n > 0, "no printk offsets in the header");
        let (out, err, code) = kmortem(&["core", t.to_str().unwrap(), "--json", "-c", "log"]);
        println!(
            "[{}] state_var offset patched ({n}x): exit {code}\n{err}",
            l.name()
        );
        assert!(err.contains("printk ring makes no sense"), "{err}");
        assert!(err.contains("OFFSET(prb_desc.state_var)"), "{err}");
        assert_eq!(code, 1);
        assert!(kinds(&json_warnings(&out)).contains(&"printk".to_string()));
    });
}

/// Files that are not this kernel's vmlinux: refused with what they are; --force goes on and
/// keeps the warning.
#[test]
fn lab_wrong_vmlinux_named_and_forced() {
    kmortem_lab::each(|l| {
        let (d, v) = scenario_dump(l, "kdump-zlib");
        let d = d.to_str().unwrap();
        let ko = l.kmlab_ko();
        for (file, what) in [
            (PathBuf::from("/bin/ls"), "ls: an executable, not a vmlinux"),
            (ko.clone(), "a kernel module (.ko), not a vmlinux"),
        ] {
            if !file.is_file() {
                continue;
            }
            let (_, err, code) = kmortem(&["core", d, "-s", file.to_str().unwrap(), "-c", "sys"]);
            println!("[{}] -s {}: exit {code}: {err}", l.name(), file.display());
            assert_eq!(code, 2);
            assert!(err.contains(what), "{err}");
            assert!(err.contains("no linux_banner"), "{err}");
        }
        // Another lab kernel's vmlinux, forced.
        let other = kmortem_lab::Lab::all()
            .ok()
            .and_then(|all| all.iter().find(|o| o.name() != l.name()))
            .map(|o| o.vmlinux());
        if let Some(o) = other.filter(|o| o.is_file() && *o != v) {
            let (_, err, code) =
                kmortem(&["core", d, "-s", o.to_str().unwrap(), "-c", "sym jiffies"]);
            assert_eq!(code, 2, "{err}");
            assert!(err.contains("do not match"), "{err}");
            let (out, err, code) = kmortem(&[
                "core",
                d,
                "-s",
                o.to_str().unwrap(),
                "--force",
                "--json",
                "-c",
                "sym jiffies",
            ]);
            println!("[{}] forced {}: exit {code}: {err}", l.name(), o.display());
            assert_eq!(code, 3);
            assert!(err.contains("(going on: --force)"), "{err}");
            assert!(kinds(&json_warnings(&out)).contains(&"vmlinux_mismatch".to_string()));
        }
    });
}

/// `explain --core` alone reads the log through `kmortem log`'s reader (5.10+ lockless ring);
/// with another crash's log it says they are not the same crash; `decode` with another
/// kernel's vmlinux says the releases differ.
#[test]
fn lab_explain_core_and_decode_mismatches() {
    kmortem_lab::each(|l| {
        let (d, _) = scenario_dump(l, "kdump-zlib");
        let want = l.need("null_deref").meta.expected_title.unwrap_or_default();
        let (out, err, code) = kmortem(&["explain", "--core", d.to_str().unwrap()]);
        println!(
            "[{}] explain --core: exit {code}: {}",
            l.name(),
            out.lines().next().unwrap_or("")
        );
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(&want), "{want:?} not in {out}");
        assert!(!err.contains("not the same crash"), "{err}");
        let other = l.need("bug").console_log();
        let (_, err, _) = kmortem(&[
            "explain",
            "--core",
            d.to_str().unwrap(),
            other.to_str().unwrap(),
        ]);
        assert!(err.contains("not the same crash"), "{err}");
        let same = l.need("null_deref").console_log();
        let (_, err, _) = kmortem(&[
            "explain",
            "--core",
            d.to_str().unwrap(),
            same.to_str().unwrap(),
        ]);
        assert!(!err.contains("not the same crash"), "{err}");
        let ov = kmortem_lab::Lab::all()
            .ok()
            .and_then(|all| all.iter().find(|o| o.name() != l.name()))
            .map(|o| o.vmlinux());
        if let Some(ov) = ov.filter(|p| p.is_file()) {
            let (_, err, _) = common::run(
                &[
                    "decode",
                    "--vmlinux",
                    ov.to_str().unwrap(),
                    same.to_str().unwrap(),
                ],
                &[],
                None,
            );
            println!("[{}] decode with {}: {err}", l.name(), ov.display());
            assert!(err.contains("the oops is Linux"), "{err}");
            let (_, err, _) = common::run(
                &[
                    "decode",
                    "--vmlinux",
                    l.vmlinux().to_str().unwrap(),
                    same.to_str().unwrap(),
                ],
                &[],
                None,
            );
            assert!(!err.contains("the oops is Linux"), "{err}");
        }
    });
}

/// The lab module built for the other kernel, given with `mod -s`: named by its vermagic and
/// not used; this kernel's own build is used without a word.
#[test]
fn lab_module_of_another_build_is_named() {
    kmortem_lab::each(|l| {
        let (d, v) = scenario_dump(l, "kdump-zlib");
        let Some(other) = other_kernels_kmlab(l) else {
            println!("[{}] no other kernel's module: skipped", l.name());
            return;
        };
        let run = |ko: &Path| {
            kmortem(&[
                "core",
                d.to_str().unwrap(),
                "-s",
                v.to_str().unwrap(),
                "--json",
                "-c",
                &format!("mod -s kmlab {}", ko.display()),
            ])
        };
        let (out, err, code) = run(&other);
        println!(
            "[{}] mod -s kmlab {}: exit {code}\n{err}",
            l.name(),
            other.display()
        );
        assert_eq!(code, 3, "{err}");
        assert!(
            err.contains("module kmlab:") && err.contains("(vermagic)"),
            "{err}"
        );
        assert!(kinds(&json_warnings(&out)).contains(&"module_mismatch".to_string()));
        let own = l.kmlab_ko();
        let (_, err, code) = run(&own);
        assert_eq!((code, err.as_str()), (0, ""), "own module");
    });
}

/// `bt` makes the same check as `mod`: a `kmlab.ko` of the other lab kernel found in a
/// `--mod-dir` is named (vermagic) and gives no file:line; the module's own build does.
#[test]
fn lab_bt_names_a_module_of_another_build() {
    kmortem_lab::each(|l| {
        let (d, v) = scenario_dump(l, "kdump-zlib");
        let Some(other) = other_kernels_kmlab(l) else {
            println!("[{}] no other kernel's module: skipped", l.name());
            return;
        };
        let run = |ko: &Path| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::copy(ko, dir.path().join("kmlab.ko")).unwrap();
            let r = kmortem(&[
                "core",
                d.to_str().unwrap(),
                "-s",
                v.to_str().unwrap(),
                "--mod-dir",
                dir.path().to_str().unwrap(),
                "-c",
                "bt -l",
            ]);
            drop(dir);
            r
        };
        let kmlab_frame_lines = |out: &str| {
            out.lines()
                .filter(|l| l.trim_end().contains("kmlab.c: "))
                .count()
        };
        let (out, err, code) = run(&other);
        println!(
            "[{}] bt with another build's kmlab.ko: exit {code}\n{err}",
            l.name()
        );
        assert_eq!(code, 3, "{err}");
        assert!(
            err.contains("module kmlab:") && err.contains("(vermagic)"),
            "{err}"
        );
        assert_eq!(
            kmlab_frame_lines(&out),
            0,
            "file:line from another build:\n{out}"
        );
        let (out, err, code) = run(&l.kmlab_ko());
        assert_eq!((code, err.as_str()), (0, ""), "own module");
        assert!(kmlab_frame_lines(&out) > 0, "no kmlab.c line in bt:\n{out}");
    });
}
