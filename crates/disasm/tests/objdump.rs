//! Oracle test: the trapping instruction of a decoded `Code:` line equals what binutils' objdump
//! shows at that address, on the crash lab's console logs and on Code: lines cut from the Debian
//! vmlinux's own text. On every kernel pinned in `lab/kernels.toml`.

use kmortem_disasm::{code_line, decode, Arch};
use object::{Object, ObjectSection};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn scenarios(lab: &kmortem_lab::Lab) -> Vec<kmortem_lab::Scenario> {
    let sc = lab
        .scenarios()
        .unwrap_or_else(|e| panic!("crash lab scenarios: {e}"));
    assert!(
        lab.vmlinux().is_file(),
        "lab vmlinux missing: {}",
        lab.vmlinux().display()
    );
    sc
}

/// objdump's text for comparison: no `# comment`, no `<sym+off>`, no `0x`, single spaces.
fn norm(s: &str) -> String {
    let s = s.split('#').next().unwrap_or(s);
    let mut out = String::new();
    let mut depth = 0;
    for c in s.chars() {
        match c {
            '<' => depth += 1,
            '>' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.replace("0x", "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `objdump -d -w --no-show-raw-insn` between two addresses: address -> text.
fn objdump(binary: &Path, section: Option<&str>, start: u64, stop: u64) -> BTreeMap<u64, String> {
    objdump_args(binary, section, start, stop, &[])
}

/// `objdump -D -b binary -m i386:x86-64` on the Code: bytes themselves (what scripts/decodecode
/// runs), with the bytes placed at `base`.
fn objdump_raw(bytes: &[u8], base: u64, at: u64) -> String {
    let f = std::env::temp_dir().join(format!("kmortem-code-{}-{at:x}.bin", std::process::id()));
    std::fs::write(&f, bytes).expect("write temp");
    let adj = format!("--adjust-vma={base:#x}");
    let m = objdump_args(
        &f,
        None,
        at,
        at + 16,
        &["-D", "-b", "binary", "-m", "i386:x86-64", &adj],
    );
    let _ = std::fs::remove_file(&f);
    m.get(&at).cloned().unwrap_or_default()
}

fn objdump_args(
    binary: &Path,
    section: Option<&str>,
    start: u64,
    stop: u64,
    extra: &[&str],
) -> BTreeMap<u64, String> {
    let mut cmd = Command::new("objdump");
    if extra.is_empty() {
        cmd.arg("-d");
    }
    cmd.args(["-w", "--no-show-raw-insn"]).args(extra);
    if let Some(s) = section {
        cmd.arg("-j").arg(s);
    }
    cmd.arg(format!("--start-address={start:#x}"))
        .arg(format!("--stop-address={stop:#x}"))
        .arg(binary);
    let out = cmd.output().expect("run objdump (apt install binutils)");
    let mut m = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((a, rest)) = l.split_once(":\t") else {
            continue;
        };
        let Ok(a) = u64::from_str_radix(a.trim(), 16) else {
            continue;
        };
        m.insert(a, rest.trim().to_string());
    }
    m
}

fn text_section(path: &Path) -> (u64, Vec<u8>) {
    let data = std::fs::read(path).expect("read vmlinux");
    let obj = object::File::parse(&*data).expect("parse");
    let s = obj.section_by_name(".text").expect(".text");
    (s.address(), s.data().expect("data").to_vec())
}

#[test]
fn code_lines_cut_from_vmlinux_match_objdump() {
    kmortem_lab::each(code_lines_cut_from_vmlinux_match_objdump_on);
}

fn code_lines_cut_from_vmlinux_match_objdump_on(lab: &kmortem_lab::Lab) {
    let vm = lab.vmlinux();
    let (base, text) = text_section(&vm);
    let regs = BTreeMap::new();
    let mut total = 0;
    let mut agree = 0;
    let mut bad = Vec::new();
    // Three 24 KiB windows spread over .text; every 5th instruction becomes a trapping one.
    for frac in [7u64, 41, 83] {
        let start = (base + (text.len() as u64 * frac / 100)) & !0xf;
        let stop = start + 24 * 1024;
        let od = objdump(&vm, None, start, stop);
        for (i, (&a, t)) in od.iter().enumerate() {
            if i % 5 != 0 || a < start + 64 || a + 64 > stop || t.contains("(bad)") {
                continue;
            }
            let off = (a - base) as usize;
            let bytes = &text[off - 42..off + 22];
            // Format the bytes exactly as the kernel prints them and parse that line back.
            let line: Vec<String> = bytes
                .iter()
                .enumerate()
                .map(|(k, b)| {
                    if k == 42 {
                        format!("<{b:02x}>")
                    } else {
                        format!("{b:02x}")
                    }
                })
                .collect();
            let c =
                code_line::parse(&format!("Code: {}", line.join(" "))).expect("parse code line");
            let d = decode(Arch::X86_64, &c.bytes, c.trap_index, Some(a), &regs);
            let ours = d.trap.map(|t| t.text).unwrap_or_default();
            total += 1;
            if norm(&ours) == norm(t) {
                agree += 1;
            } else {
                bad.push(format!("{a:#x}: ours `{ours}` objdump `{t}`"));
            }
        }
    }
    println!("Code: trapping instruction vs objdump (cut from vmlinux): {agree}/{total} agree");
    for b in bad.iter().take(40) {
        println!("  {b}");
    }
    assert!(total > 500, "too few instructions checked: {total}");
    assert!(bad.is_empty(), "{} disagreements with objdump", bad.len());
}

#[test]
fn lab_code_lines_match_objdump() {
    kmortem_lab::each(lab_code_lines_match_objdump_on);
}

fn lab_code_lines_match_objdump_on(lab: &kmortem_lab::Lab) {
    let sc = scenarios(lab);
    let mut sym = kmortem_symbols::Symbolizer::new();
    sym.set_vmlinux(&lab.vmlinux()).expect("vmlinux");
    sym.add_module_dir(&lab.modules_debug_dir());
    let mut checked = 0;
    let mut bad = Vec::new();
    let scenarios: Vec<(PathBuf, PathBuf)> = sc
        .iter()
        .map(|s| (s.console_log(), s.meta.kmlab_ko.clone()))
        .filter(|p| p.0.is_file())
        .collect();
    let mut unavailable = 0;
    let mut patched = 0;
    for (log, ko) in &scenarios {
        sym.add_module_file("kmlab", ko).expect("kmlab.ko");
        let text = std::fs::read_to_string(log).expect("log");
        let mut rip: Option<kmortem_symbols::trace::FrameToken> = None;
        for (n, line) in text.lines().enumerate() {
            if line.contains("RIP: 0010:") {
                rip = kmortem_symbols::trace::find_frame(line);
                continue;
            }
            let Some(i) = line.find("Code: ") else {
                continue;
            };
            let Some(tok) = rip.take() else { continue };
            let Some(c) = code_line::parse(&line[i..]) else {
                unavailable += 1;
                continue;
            };
            let r = sym.resolve(&kmortem_symbols::Query {
                function: Some(&tok.function),
                offset: Some(tok.offset),
                size: tok.size,
                module: tok.module.as_deref(),
                address: None,
                return_address: false,
            });
            let Some(addr) = r.address else { continue };
            let bin = r.binary.clone().expect("binary");
            let (section, at) = match &r.section {
                Some((s, off)) => (Some(s.as_str()), *off),
                None => (None, addr),
            };
            let od = objdump(&bin, section, at, at + 16);
            let theirs = od.get(&at).cloned().unwrap_or_default();
            let d = decode(
                Arch::X86_64,
                &c.bytes,
                c.trap_index,
                Some(at),
                &BTreeMap::new(),
            );
            let ours = d.trap.map(|t| t.text).unwrap_or_default();
            checked += 1;
            // The running kernel's bytes can differ from the file's: boot-time patching turns
            // `jmp __x86_return_thunk` into `ret` (retbleed return thunks, 6.0+), alternatives and
            // static keys rewrite others. Then the file's instruction is not the one that ran;
            // objdump on the Code: bytes themselves (decodecode's way) is the oracle.
            let t = c.trap_index.unwrap_or(0) as u64;
            if norm(&ours) != norm(&theirs) && at >= t {
                let raw = objdump_raw(&c.bytes, at - t, at);
                if norm(&ours) == norm(&raw) {
                    patched += 1;
                    println!(
                        "{}:{} runtime-patched site: ours `{ours}` = objdump on the Code: bytes `{raw}`; the file has `{theirs}`",
                        log.display(),
                        n + 1
                    );
                    continue;
                }
            }
            println!(
                "{}:{} {}+{:#x}: ours `{ours}` objdump `{theirs}`",
                log.display(),
                n + 1,
                tok.function,
                tok.offset
            );
            if norm(&ours) != norm(&theirs) {
                bad.push(format!(
                    "{}:{}: ours `{ours}` objdump `{theirs}`",
                    log.display(),
                    n + 1
                ));
            }
        }
    }
    println!("lab Code: lines: {checked} trapping instructions checked against objdump, {} differ, {patched} runtime-patched sites matched objdump on the Code: bytes ({unavailable} Code: lines had no bytes)", bad.len());
    assert!(
        checked >= 10,
        "too few trapping instructions checked: {checked}"
    );
    assert!(bad.is_empty(), "{bad:?}");
}
