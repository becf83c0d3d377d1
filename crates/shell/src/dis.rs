//! `dis [-l] ADDR|FUNC [COUNT]`: disassembly of the dump's memory in gdb's layout, checked
//! against the vmlinux's bytes (what boot patched is named), with `-l` source lines.

use crate::args::{parse_num, resolve_addr};
use crate::output::{usage, CmdError, Output};
use kmortem_kernel::mem::{Memory, KERNEL_IMAGE_END, START_KERNEL_MAP};
use kmortem_kernel::Program;
use serde_json::json;
use std::sync::Arc;

/// What `dis` keeps between calls.
#[derive(Default)]
pub(crate) struct State {
    /// The vmlinux opened by kmortem-symbols for line tables (`dis -l`), once.
    lines: Option<Option<Arc<kmortem_symbols::Binary>>>,
}

impl State {
    fn line_binary(&mut self, prog: &Program) -> Option<Arc<kmortem_symbols::Binary>> {
        if self.lines.is_none() {
            let b = prog
                .vmlinux
                .as_ref()
                .and_then(|v| kmortem_symbols::Binary::open(&v.path).ok())
                .map(Arc::new);
            self.lines = Some(b);
        }
        self.lines.clone().flatten()
    }
}

fn sym_off(prog: &Program, a: u64) -> Option<String> {
    let (s, off) = prog.lookup(a)?;
    Some(if off == 0 {
        s.name
    } else {
        format!("{}+{off}", s.name)
    })
}

/// `dis [-l] ADDR|FUNC [COUNT]`
pub(crate) fn dis(prog: &Program, st: &mut State, args: &[&str]) -> Result<Output, CmdError> {
    const USAGE: &str = "usage: dis [-l] ADDR|FUNC [COUNT]";
    let lines = args.contains(&"-l");
    let pos: Vec<&str> = args.iter().copied().filter(|a| *a != "-l").collect();
    if let Some(bad) = pos.iter().find(|a| a.starts_with('-')) {
        return Err(usage(format!("dis: unknown option {bad}; {USAGE}")));
    }
    let Some(target) = pos.first() else {
        return Err(usage(USAGE));
    };
    let addr = resolve_addr(prog, target)?;
    let count = match pos.get(1) {
        Some(c) => Some(
            c.parse::<usize>()
                .map_err(|_| usage(format!("dis: bad count {c}")))?
                .clamp(1, 100_000),
        ),
        None => None,
    };
    // A function name without a count: the whole function (crash's `dis FUNC`).
    let whole = count.is_none() && parse_num(target).is_none();
    let len = if whole {
        let (s, off) = prog
            .lookup(addr)
            .ok_or_else(|| usage(format!("dis: {target}: no symbol")))?;
        let size = if s.size > 0 { s.size } else { 256 };
        size.saturating_sub(off).clamp(1, 1 << 20) as usize
    } else {
        count.unwrap_or(1) * 15
    };
    let bytes = read_prefix(prog, addr, len);
    if bytes.is_empty() {
        // The same error a plain read gives (hole or unmapped).
        prog.read(addr, &mut [0u8; 1])?;
    }
    let d = kmortem_disasm::decode(
        kmortem_disasm::Arch::X86_64,
        &bytes,
        Some(0),
        Some(addr),
        &Default::default(),
    );
    let mut insns = d.from_trap;
    if let Some(c) = count {
        insns.truncate(c);
    } else if !whole {
        insns.truncate(1);
    }
    // The last instruction may be cut by the end of the readable bytes.
    if insns.last().is_some_and(|i| i.invalid) && insns.len() > 1 {
        insns.pop();
    }
    let in_image = (START_KERNEL_MAP..KERNEL_IMAGE_END).contains(&addr);
    let file = if in_image && prog.vmlinux.is_some() {
        let end = insns
            .last()
            .map(|i| (i.address - addr) as usize + i.bytes.len())
            .unwrap_or(0);
        prog.vmlinux_bytes(addr, end)
    } else {
        None
    };
    let bin = if lines { st.line_binary(prog) } else { None };
    let kaslr = prog.kaslr;
    let mut t = String::new();
    let mut rows = Vec::new();
    let mut last_line = None;
    let mut differ = 0;
    for i in &insns {
        let sym = sym_off(prog, i.address);
        let mut text = annotate(prog, &i.text);
        let o = (i.address - addr) as usize;
        let built = file.as_ref().and_then(|f| f.get(o..o + i.bytes.len()));
        let patched = built.is_some_and(|b| !same_text(&i.bytes, b, kaslr));
        let mut note = None;
        if patched {
            differ += 1;
            let b = built.unwrap_or_default();
            // Folklore: ftrace turns each `call __fentry__` at a function's entry into a
            // 5-byte NOP at boot (ftrace_init() -> ftrace_process_locs(), since 2.6.27;
            // crash marks it `[FTRACE NOP]`); alternatives (apply_alternatives()),
            // static keys (jump_label_init()) and paravirt patching rewrite other
            // sites. The dump holds the patched text, vmlinux the text as built.
            if b.first() == Some(&0xe8) && i.text.starts_with("nop") && b.len() == 5 {
                note = Some("FTRACE NOP".to_string());
            } else {
                note = Some(format!("patched at boot: vmlinux has {}", hex_bytes(b)));
            }
        }
        if let Some(n) = &note {
            text.push_str(&format!(" [{n}]"));
        }
        let mut src = None;
        if let Some(b) = &bin {
            let frames = b
                .source_frames(i.address.wrapping_sub(kaslr))
                .unwrap_or_default();
            if let Some(f) = frames.first() {
                let file = f.short_file.clone().or(f.file.clone()).unwrap_or_default();
                let key = (file.clone(), f.line);
                if last_line.as_ref() != Some(&key) {
                    t.push_str(&format!("{file}: {}\n", f.line));
                    last_line = Some(key);
                }
                src = Some(json!({"file": file, "line": f.line}));
            }
        }
        let label = sym.clone().map(|s| format!(" <{s}>")).unwrap_or_default();
        t.push_str(&format!("{:#x}{label}:\t{text}\n", i.address));
        rows.push(json!({
            "address": format!("{:#x}", i.address),
            "symbol": sym,
            "bytes": hex_bytes(&i.bytes),
            "text": text,
            "source": src,
            "patched": patched,
            "note": note,
            "vmlinux_bytes": built.filter(|_| patched).map(hex_bytes),
        }));
    }
    if lines && bin.is_none() {
        t.push_str("dis: -l needs the vmlinux's line tables (-s VMLINUX)\n");
    }
    if file.is_none() && in_image && prog.vmlinux.is_some() {
        t.push_str("dis: the vmlinux has no bytes for this range (not checked)\n");
    }
    Ok(Output {
        text: t,
        json: json!({
            "address": format!("{addr:#x}"),
            "checked_against_vmlinux": file.is_some(),
            "patched": differ,
            "instructions": rows,
        }),
    })
}

/// gdb's annotations: `<sym+off>` after branch targets and RIP-relative comments.
fn annotate(prog: &Program, text: &str) -> String {
    if let Some((ins, c)) = text.split_once("        # ") {
        if let Ok(a) = u64::from_str_radix(c.trim(), 16) {
            // Folklore: x86-64 per-CPU accesses are `%gs:sym(%rip)` since 6.8 (Uros
            // Bizjak's "x86/percpu: Introduce %rip-relative addressing to PER_CPU_VAR");
            // before, `%gs:0x1fb80` with an absolute offset and no comment. The target is
            // then a per-CPU offset (`# 0x35000`), which gdb, and so crash's `dis`, names
            // after the per-CPU variable (`<pcpu_hot>`). Pinned by
            // `lab_dis_runq_mod_match_crash` (gdb as the oracle on 6.12).
            let name = if a < START_KERNEL_MAP {
                prog.lookup_percpu(a).map(|(s, off)| {
                    if off == 0 {
                        s.name
                    } else {
                        format!("{}+{off}", s.name)
                    }
                })
            } else {
                sym_off(prog, a)
            };
            let s = name.map(|s| format!(" <{s}>")).unwrap_or_default();
            return format!("{ins}        # {a:#x}{s}");
        }
    }
    let mnem = text.split_whitespace().next().unwrap_or("");
    if mnem.starts_with('j') || mnem.starts_with("call") || mnem.starts_with("loop") {
        if let Some(op) = text.split_whitespace().nth(1) {
            if let Some(h) = op.strip_prefix("0x") {
                if let Ok(a) = u64::from_str_radix(h, 16) {
                    if let Some(s) = sym_off(prog, a) {
                        return format!("{text} <{s}>");
                    }
                }
            }
        }
    }
    text.to_string()
}

/// Read up to `len` bytes, stopping at the first unreadable page.
fn read_prefix(m: &dyn Memory, addr: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut a = addr;
    while out.len() < len {
        let n = (4096 - (a % 4096) as usize).min(len - out.len());
        let mut b = vec![0u8; n];
        if m.read(a, &mut b).is_err() {
            break;
        }
        out.extend_from_slice(&b);
        a += n as u64;
    }
    out
}

/// Are the dump's bytes the vmlinux's, once KASLR's relocations are applied?
///
/// Folklore: the decompressor relocates the kernel by the KASLR delta
/// (arch/x86/boot/compressed/misc.c handle_relocations(), since 3.14): 32- and 64-bit
/// absolute addresses get `+delta`, and 32-bit "inverse" relocations (RIP-relative
/// references to per-CPU symbols, which do not move) get `-delta`. So one 4- or 8-byte
/// field of an instruction may differ by the delta without anything being patched.
/// Pinned by `lab_no_debug_info` (`dis` on a KASLR dump).
fn same_text(mem: &[u8], file: &[u8], kaslr: u64) -> bool {
    if mem == file {
        return true;
    }
    if mem.len() != file.len() || kaslr == 0 {
        return false;
    }
    for w in [4usize, 8] {
        if mem.len() < w {
            continue;
        }
        for o in 0..=mem.len() - w {
            if mem[..o] != file[..o] || mem[o + w..] != file[o + w..] {
                continue;
            }
            let mut m = [0u8; 8];
            let mut f = [0u8; 8];
            m[..w].copy_from_slice(&mem[o..o + w]);
            f[..w].copy_from_slice(&file[o..o + w]);
            let (m, f) = (u64::from_le_bytes(m), u64::from_le_bytes(f));
            let mask = if w == 4 { 0xffff_ffff } else { u64::MAX };
            if m == f.wrapping_add(kaslr) & mask || m == f.wrapping_sub(kaslr) & mask {
                return true;
            }
        }
    }
    false
}

fn hex_bytes(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
