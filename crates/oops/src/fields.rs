//! Structured fields of one report: the `CPU:` line, registers, call-trace frames, `Code:`,
//! modules, fault address. Hand-written matching (no regexps): every function is linear in the
//! line and never panics.

use crate::report::{Code, Context, Frame, InstructionPointer};

pub(crate) fn parse_hex(s: &str) -> Option<u64> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// `func+0x1a/0x2b [mod]` (optionally `func+0x1a/0x2b mod`): function, offset, size, module.
/// (function, offset, size, module).
pub(crate) type Sym = (String, Option<u64>, Option<u64>, Option<String>);

pub(crate) fn parse_sym(s: &str) -> Option<Sym> {
    let s = s.trim();
    let plus = s.find("+0x")?;
    let name = &s[..plus];
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'$')
    {
        return None;
    }
    let rest = &s[plus + 1..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    let (offsz, tail) = rest.split_at(end);
    let (off, size) = match offsz.split_once('/') {
        Some((o, z)) => (parse_hex(o), parse_hex(z)),
        None => (parse_hex(offsz), None),
    };
    off?;
    let tail = tail.trim();
    let module = tail
        .strip_prefix('[')
        .and_then(|t| t.split(']').next())
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty() && !m.contains(' '));
    Some((name.to_string(), off, size, module))
}

/// The `CPU: 1 PID: 102 Comm: sh Tainted: G OE 6.1.0-53-cloud-amd64 #1 Debian 6.1.187-1` line.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct CpuLine {
    pub cpu: Option<u32>,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub taint: Option<String>,
    pub release: Option<String>,
    pub build: Option<String>,
}

/// Folklore: the layout is `dump_stack_print_info()` (lib/dump_stack.c). 6.9+ adds `UID: n`
/// between CPU and PID and moves the taint letters' meaning to a separate `Tainted: [W]=WARN`
/// line; older kernels print `Not tainted`. `Comm:` is at most 15 characters but may contain
/// spaces. Pinned by `fields::tests::cpu_line_*`.
pub(crate) fn parse_cpu_line(line: &str) -> Option<CpuLine> {
    let p = line.find("CPU: ")?;
    let s = &line[p + 5..];
    let mut out = CpuLine::default();
    let (cpu, rest) = s.split_once(' ')?;
    out.cpu = cpu.parse().ok();
    out.cpu?;
    let pp = rest.find("PID: ")?;
    let rest = &rest[pp + 5..];
    let (pid, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    out.pid = pid.parse().ok();
    let Some(rest) = rest.strip_prefix("Comm: ") else {
        return Some(out);
    };
    // The comm ends where the taint begins.
    let (comm, tail) = if let Some(i) = rest.find(" Not tainted") {
        (&rest[..i], &rest[i + 1..])
    } else if let Some(i) = rest.find(" Tainted: ") {
        (&rest[..i], &rest[i + 1..])
    } else {
        let (c, t) = rest.split_once(' ').unwrap_or((rest, ""));
        (c, t)
    };
    out.comm = Some(comm.trim().to_string()).filter(|c| !c.is_empty());
    let after_taint = if let Some(t) = tail.strip_prefix("Not tainted") {
        out.taint = Some("Not tainted".into());
        t
    } else if let Some(t) = tail.strip_prefix("Tainted: ") {
        // Taint letters are upper-case letters and spaces, then the release.
        let bytes = t.as_bytes();
        let mut i = 0;
        let mut last_flag_end = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b' ' {
                i += 1;
                continue;
            }
            // A token of capital letters only, of length 1, is a taint flag; several flags
            // may be printed together (`OE`).
            let tok_end = t[i..].find(' ').map_or(t.len(), |e| i + e);
            let tok = &t[i..tok_end];
            // RHEL prints `------------ T` (unsupported-hardware marker) among the flags.
            if (tok.bytes().all(|c| c.is_ascii_uppercase()) && tok.len() <= 4)
                || tok.bytes().all(|c| c == b'-')
            {
                last_flag_end = tok_end;
                i = tok_end;
            } else {
                break;
            }
        }
        out.taint = Some(t[..last_flag_end].trim().to_string()).filter(|s| !s.is_empty());
        &t[last_flag_end..]
    } else {
        tail
    };
    let after_taint = after_taint.trim();
    if !after_taint.is_empty() {
        let (rel, build) = after_taint.split_once(' ').unwrap_or((after_taint, ""));
        out.release = Some(rel.to_string());
        let build = build.trim();
        if !build.is_empty() {
            out.build = Some(build.to_string());
        }
    }
    Some(out)
}

/// `RIP: 0010:func+0x5/0x10 [mod]`, `RIP: 0010:[<ffffffff810d9c93>]  [<...>] func+0x3b3/0x3d0`,
/// arm64 `pc : func+0x1c/0x30 [mod]`, arm32 `PC is at func+0x1c/0x30`, or a bare address.
pub(crate) fn parse_ip(line: &str) -> Option<InstructionPointer> {
    let t = line.trim_start();
    let rest = if let Some(r) = t.strip_prefix("RIP: ").or_else(|| t.strip_prefix("EIP: ")) {
        // Segment `0010:`; user mode (`0033:`) is not a kernel IP.
        let (seg, r) = r.split_once(':')?;
        if seg == "0033" || seg == "0023" || seg == "002b" {
            return None;
        }
        r
    } else if let Some(r) = t.strip_prefix("pc : ") {
        r
    } else {
        t.strip_prefix("PC is at ")?
    };
    let mut ip = InstructionPointer::default();
    let mut r = rest.trim();
    // Old x86: `[<addr>]  [<addr>] func+...`.
    while let Some(x) = r.strip_prefix("[<") {
        let end = x.find(">]")?;
        ip.address = parse_hex(&x[..end]);
        r = x[end + 2..].trim_start();
    }
    if let Some((f, off, size, m)) = parse_sym(r) {
        ip.function = Some(f);
        ip.offset = off;
        ip.size = size;
        ip.module = m;
    } else if let Some(a) = r.split_whitespace().next().and_then(parse_hex) {
        ip.address = Some(a);
    } else if ip.address.is_none() {
        return None;
    }
    Some(ip)
}

/// Register pairs on a dump line: x86 `RAX: 0000000000000000 RBX: ...`, `RSP: 0018:ffff...`,
/// `FS:  0000(0000)`, arm64 `x29: ffff... x28: ...`, `sp : ffff...`, `pstate: 60400005 (...)`.
pub(crate) fn parse_registers(
    line: &str,
    out: &mut std::collections::BTreeMap<String, u64>,
) -> bool {
    let t = line.trim();
    let end = t.find([':', ' ']).unwrap_or(t.len());
    if !is_reg_name(&t[..end]) {
        return false;
    }
    let mut found = false;
    let toks: Vec<&str> = t.split_whitespace().collect();
    let mut i = 0;
    while i < toks.len() {
        let tok = toks[i];
        // `RAX:` `value` or `RAX:value` or `sp` `:` `value`.
        let (name, val) = if let Some(n) = tok.strip_suffix(':') {
            (n, toks.get(i + 1).copied())
        } else if toks.get(i + 1) == Some(&":") {
            i += 1;
            (tok, toks.get(i + 1).copied())
        } else if let Some((n, v)) = tok.split_once(':') {
            (n, Some(v))
        } else {
            i += 1;
            continue;
        };
        if !is_reg_name(name) {
            i += 1;
            continue;
        }
        if let Some(v) = val {
            // `0018:ffff...` (segment:value) and `0000(0000)` forms.
            let v2 = v.rsplit(':').next().unwrap_or(v);
            let v2 = v2.split('(').next().unwrap_or(v2);
            if let Some(x) = parse_hex(v2) {
                out.entry(name.to_ascii_lowercase()).or_insert(x);
                found = true;
            }
        }
        i += 2;
    }
    found
}

fn is_reg_name(n: &str) -> bool {
    // One `match` (compiled to length and byte tests): this runs on the first word of every
    // report line and on every word of a register line.
    matches!(
        n,
        "RAX" | "RBX" | "RCX" | "RDX" | "RSI" | "RDI" | "RBP" | "RSP"
            | "R08" | "R09" | "R10" | "R11" | "R12" | "R13" | "R14" | "R15"
            | "EFLAGS" | "ORIG_RAX" | "FS" | "GS" | "knlGS" | "CS" | "DS" | "ES"
            | "CR0" | "CR2" | "CR3" | "CR4"
            | "DR0" | "DR1" | "DR2" | "DR3" | "DR6" | "DR7" | "PKRU"
            | "EAX" | "EBX" | "ECX" | "EDX" | "ESI" | "EDI" | "EBP" | "ESP"
            // arm64: x0..x30, sp, pc, lr, pstate.
            | "sp" | "pc" | "lr" | "pstate"
    ) || n
        .strip_prefix('x')
        .is_some_and(|d| !d.is_empty() && d.len() <= 2 && d.bytes().all(|b| b.is_ascii_digit()))
}

/// One call-trace line, if it is one.
///
/// Folklore: x86 prints `? ` for frames the unwinder found on the stack but could not prove
/// (`printk_stack_address()` with `reliable == 0`); pre-4.x kernels print `[<addr>] func+off/size`;
/// ARM32 prints `[<pc>] (func) from [<lr>] (caller+off/size)`; `decode_stacktrace.sh` appends
/// ` file.c:123` or ` (file.c:123)`. Pinned by `fields::tests::frame_*`.
pub(crate) fn parse_frame(line: &str) -> Option<Frame> {
    let mut t = line.trim_start();
    let mut fr = Frame {
        reliable: true,
        ..Frame::default()
    };
    // ARM32 `[<80616f94>] (check_zeroed_user) from [<80321578>] (sys_openat2+0x124/0x170)`:
    // the first function is the frame, at the first address.
    if t.starts_with("[<") {
        let end = t.find(">]")?;
        fr.address = parse_hex(&t[2..end]);
        t = t[end + 2..].trim_start();
        if let Some(x) = t.strip_prefix('(') {
            let close = x.find(')')?;
            let inner = &x[..close];
            if x[close + 1..].trim_start().starts_with("from ") {
                if let Some((f, off, size, m)) = parse_sym(inner) {
                    fr.function = f;
                    fr.offset = off;
                    fr.size = size;
                    fr.module = m;
                } else if !inner.is_empty()
                    && inner
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
                {
                    fr.function = inner.to_string();
                } else {
                    return None;
                }
                return Some(fr);
            }
            return None;
        }
        // Old x86 prints the address twice sometimes.
        if t.starts_with("[<") {
            let end = t.find(">]")?;
            t = t[end + 2..].trim_start();
        }
    }
    if let Some(x) = t.strip_prefix("? ") {
        fr.reliable = false;
        t = x.trim_start();
    }
    let plus = t.find("+0x")?;
    // Symbol names have no spaces.
    if t[..plus].contains(' ') {
        return None;
    }
    let end = t[plus..].find(' ').map_or(t.len(), |e| plus + e);
    let (f, off, size, _) = parse_sym(&t[..end])?;
    size?;
    fr.function = f;
    fr.offset = off;
    fr.size = size;
    let tail = t[end..].trim();
    if let Some(m) = tail.strip_prefix('[') {
        if let Some(close) = m.find(']') {
            let name = m[..close].trim();
            if !name.is_empty() && !name.contains(' ') {
                fr.module = Some(name.to_string());
            }
        }
    } else if !tail.is_empty() {
        let src = tail.trim_start_matches('(').trim_end_matches(')');
        if src.contains(':') && src.contains('.') && !src.contains(' ') {
            fr.source = Some(src.to_string());
        }
    }
    Some(fr)
}

/// Stack-section markers: `<IRQ>`, `</IRQ>`, `<NMI>`, `<TASK>`, `<EOI>`, `<#DF>`, `<SOFTIRQ>`.
pub(crate) fn parse_context_marker(line: &str) -> Option<Option<Context>> {
    let t = line.trim();
    if !(t.starts_with('<') && t.ends_with('>')) || t.len() > 12 {
        return None;
    }
    Some(match t {
        "<IRQ>" => Some(Context::Irq),
        "<SOFTIRQ>" => Some(Context::Softirq),
        "<NMI>" => Some(Context::Nmi),
        "<TASK>" => Some(Context::Task),
        "</IRQ>" | "</NMI>" | "</SOFTIRQ>" | "<EOI>" | "</TASK>" => None,
        x if x.starts_with("<#") => Some(Context::Exception),
        x if x.starts_with("</#") => None,
        _ => return None,
    })
}

/// The name of the stack a stack-start line opens, if it is one.
pub(crate) fn stack_start(line: &str) -> Option<&'static str> {
    let t = line.trim();
    if t.starts_with("Call Trace") || t.starts_with("Call trace") || t.starts_with("Backtrace:") {
        return Some("call_trace");
    }
    if t == "stack backtrace:" {
        return Some("call_trace");
    }
    let l = t.to_ascii_lowercase();
    if !l.ends_with(':') {
        return None;
    }
    if l.starts_with("allocated by task")
        || l.starts_with("allocated:")
        || l.contains(" allocated by task ")
    {
        return Some("allocated");
    }
    if l.starts_with("freed by task") || l.starts_with("freed:") || l.contains(" freed by task ") {
        return Some("freed");
    }
    if l.starts_with("last potentially related work creation") {
        return Some("last_potentially_related");
    }
    if l.starts_with("second to last potentially related work creation") {
        return Some("second_to_last_potentially_related");
    }
    if l.starts_with("backtrace") {
        return Some("backtrace");
    }
    if l.starts_with("uninit was stored to memory at") {
        return Some("uninit_stored");
    }
    if l.starts_with("uninit was created at") {
        return Some("uninit_created");
    }
    if l.starts_with("-> #") {
        return Some("lockdep_chain");
    }
    if l.contains("accesses by task")
        || l.contains("bytes by task")
        || l.contains("bytes by interrupt")
    {
        return Some("call_trace");
    }
    None
}

/// `Code: 48 89 e5 <0f> 0b ...` (x86) or `Code: d503233f a9bf7bfd (b9400000)` (arm64/arm32 words).
///
/// Folklore: x86 `show_opcodes()` brackets the byte at RIP with `<..>`, or with `(..)` when RIP
/// is only a guess (prologue_guess); arm64 `dump_kernel_instr()` prints 4-byte words with the
/// faulting one in `(..)`. Pinned by `fields::tests::code_*`.
pub(crate) fn parse_code(rest: &str) -> Option<Code> {
    let raw = rest.trim();
    let mut code = Code {
        raw: raw.to_string(),
        ..Code::default()
    };
    let toks: Vec<&str> = raw.split_whitespace().collect();
    if toks.is_empty() {
        return None;
    }
    let word_len = toks
        .iter()
        .map(|t| {
            t.trim_matches(|c| c == '<' || c == '>' || c == '(' || c == ')')
                .len()
        })
        .max()
        .unwrap_or(0);
    for tok in &toks {
        let (inner, mark, guessed) =
            if let Some(x) = tok.strip_prefix('<').and_then(|x| x.strip_suffix('>')) {
                (x, true, false)
            } else if let Some(x) = tok.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
                (x, true, true)
            } else {
                (*tok, false, false)
            };
        if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_hexdigit()) {
            // "Code: Bad RIP value." and friends.
            return None;
        }
        if mark {
            code.trap_index = Some(code.bytes.len());
            code.trap_guessed = guessed && word_len <= 2;
        }
        if inner.len() <= 2 {
            code.bytes.push(u8::from_str_radix(inner, 16).ok()?);
        } else if inner.len() == 8 || inner.len() == 4 {
            let w = u32::from_str_radix(inner, 16).ok()?;
            let n = inner.len() / 2;
            code.bytes.extend_from_slice(&w.to_le_bytes()[..n]);
        } else {
            return None;
        }
    }
    code.arch = if word_len <= 2 {
        "x86_64".into()
    } else if word_len == 8 {
        "arm64".into()
    } else {
        "unknown".into()
    };
    Some(code)
}

/// `Modules linked in: a(E) b c [last unloaded: x]`.
pub(crate) fn parse_modules(rest: &str) -> Vec<String> {
    let rest = match rest.find("[last unloaded") {
        Some(i) => &rest[..i],
        None => rest,
    };
    rest.split_whitespace()
        .map(|m| m.split('(').next().unwrap_or(m).to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

/// The faulting address a header line names.
pub(crate) fn header_fault_address(line: &str) -> Option<u64> {
    const KEYS: &[&str] = &[
        "non-canonical address ",
        "NULL pointer dereference, address: ",
        "page fault for address: ",
        "NULL pointer dereference at ",
        "paging request at virtual address ",
        "paging request at ",
        "at virtual address ",
        " at addr ",
        "read at 0x",
        "write at 0x",
        "access at 0x",
        "corruption at 0x",
        "free at 0x",
    ];
    // Most lines of a report carry none of the keys: one automaton pass rules them out
    // before the ordered search below (which decides between overlapping keys).
    static ANY: std::sync::OnceLock<aho_corasick::AhoCorasick> = std::sync::OnceLock::new();
    let any = ANY.get_or_init(|| {
        aho_corasick::AhoCorasick::builder()
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(KEYS)
            .expect("static patterns")
    });
    if !any.is_match(line) {
        return None;
    }
    for k in KEYS {
        if let Some(p) = line.find(k) {
            let mut s = &line[p + k.len()..];
            if k.ends_with("0x") {
                s = &line[p + k.len() - 2..];
            }
            let tok = s
                .split(|c: char| c.is_whitespace() || c == ',' || c == ')' || c == ':')
                .next()
                .unwrap_or("");
            if let Some(a) = parse_hex(tok) {
                return Some(a);
            }
        }
    }
    None
}

/// Strip compiler suffixes (`.isra.0`, `.cold`, `.constprop.3`, `.part.1`, `.llvm.123`) for
/// grouping keys.
pub(crate) fn base_function(f: &str) -> &str {
    f.split('.').next().unwrap_or(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_line_debian() {
        let c = parse_cpu_line(
            "CPU: 1 PID: 102 Comm: sh Tainted: G           OE      6.1.0-53-cloud-amd64 #1 Debian 6.1.187-1",
        )
        .unwrap();
        assert_eq!((c.cpu, c.pid), (Some(1), Some(102)));
        assert_eq!(c.comm.as_deref(), Some("sh"));
        assert_eq!(c.taint.as_deref(), Some("G           OE"));
        assert_eq!(c.release.as_deref(), Some("6.1.0-53-cloud-amd64"));
        assert_eq!(c.build.as_deref(), Some("#1 Debian 6.1.187-1"));
    }

    #[test]
    fn cpu_line_rhel() {
        // RHEL 7 adds `------------ T` between the taint flags and the release.
        let c = parse_cpu_line("CPU: 0 PID: 0 Comm: swapper/0 Tainted: G        W  OE  ------------ T 3.10.0-514.26.2.el7.x86_64 #1").unwrap();
        assert_eq!(c.release.as_deref(), Some("3.10.0-514.26.2.el7.x86_64"));
        assert_eq!(c.taint.as_deref(), Some("G        W  OE  ------------ T"));
    }

    #[test]
    fn cpu_line_uid_and_not_tainted() {
        // 6.9+ prints UID between CPU and PID.
        let c = parse_cpu_line(
            "CPU: 0 UID: 0 PID: 5827 Comm: syz-executor 297 Not tainted 6.10.0-rc1 #0",
        )
        .unwrap();
        assert_eq!(c.pid, Some(5827));
        assert_eq!(c.comm.as_deref(), Some("syz-executor 297"));
        assert_eq!(c.taint.as_deref(), Some("Not tainted"));
        assert_eq!(c.release.as_deref(), Some("6.10.0-rc1"));
    }

    #[test]
    fn frame_forms() {
        let f = parse_frame(" ? __warn_printk+0xf3/0xf3 [nvme]").unwrap();
        assert!(!f.reliable);
        assert_eq!(f.function, "__warn_printk");
        assert_eq!((f.offset, f.size), (Some(0xf3), Some(0xf3)));
        assert_eq!(f.module.as_deref(), Some("nvme"));
        let f = parse_frame(" [<ffffffff810ec8b2>] drop_spte+0x162/0x260").unwrap();
        assert_eq!(f.address, Some(0xffffffff810ec8b2));
        assert!(f.reliable);
        let f = parse_frame(
            "[<80616f94>] (check_zeroed_user) from [<80321578>] (sys_openat2+0x124/0x170)",
        )
        .unwrap();
        assert_eq!(f.function, "check_zeroed_user");
        let f = parse_frame(" kasan_report+0x1/0x2 mm/kasan/report.c:123").unwrap();
        assert_eq!(f.source.as_deref(), Some("mm/kasan/report.c:123"));
        assert!(parse_frame("RIP: 0010:foo+0x1/0x2").is_none());
        assert!(parse_frame("some text with a+0x1/0x2 in it").is_none());
    }

    #[test]
    fn code_x86_and_arm64() {
        let c = parse_code("48 89 e5 <0f> 0b 90").unwrap();
        assert_eq!(c.bytes, vec![0x48, 0x89, 0xe5, 0x0f, 0x0b, 0x90]);
        assert_eq!(c.trap_index, Some(3));
        assert_eq!(c.arch, "x86_64");
        let c = parse_code("d503233f (b9400000)").unwrap();
        assert_eq!(
            c.bytes,
            vec![0x3f, 0x23, 0x03, 0xd5, 0x00, 0x00, 0x40, 0xb9]
        );
        assert_eq!(c.trap_index, Some(4));
        assert_eq!(c.arch, "arm64");
        assert!(parse_code(" Bad RIP value.").is_none());
    }

    #[test]
    fn registers() {
        let mut m = std::collections::BTreeMap::new();
        assert!(parse_registers(
            "RSP: 0018:ffff8801db206738 EFLAGS: 00000206 ORIG_RAX: ffffffffffffff11",
            &mut m
        ));
        assert!(parse_registers(
            "FS:  0000000000000000(0000) GS:ffff8801db400000(0000) knlGS:0000000000000000",
            &mut m
        ));
        assert!(parse_registers(
            "x29: ffff800008003d70 x28: 0000000000000000",
            &mut m
        ));
        assert!(parse_registers("sp : ffff800008003d70", &mut m));
        assert_eq!(m["rsp"], 0xffff8801db206738);
        assert_eq!(m["gs"], 0xffff8801db400000);
        assert_eq!(m["x29"], 0xffff800008003d70);
        assert_eq!(m["sp"], 0xffff800008003d70);
        assert!(!parse_registers("Modules linked in: x", &mut m));
    }

    #[test]
    fn ip_forms() {
        let ip = parse_ip("RIP: 0010:usb_submit_urb+0x119a/0x13c0 [usbcore]").unwrap();
        assert_eq!(ip.function.as_deref(), Some("usb_submit_urb"));
        assert_eq!(ip.module.as_deref(), Some("usbcore"));
        let ip = parse_ip(
            "RIP: 0010:[<ffffffff810d9c93>]  [<ffffffff810d9c93>] pte_list_remove+0x3b3/0x3d0",
        )
        .unwrap();
        assert_eq!(ip.address, Some(0xffffffff810d9c93));
        assert_eq!(ip.function.as_deref(), Some("pte_list_remove"));
        assert!(parse_ip("RIP: 0033:0x452ac9").is_none());
        assert!(parse_ip("pc : foo+0x1c/0x30").is_some());
    }

    #[test]
    fn fault_addresses() {
        assert_eq!(
            header_fault_address("BUG: kernel NULL pointer dereference, address: 0000000000000008"),
            Some(8)
        );
        assert_eq!(
            header_fault_address("Read of size 8 at addr ffff88801f0d4a38 by task x/1"),
            Some(0xffff88801f0d4a38)
        );
    }
}
