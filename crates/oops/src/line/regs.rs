//! Register lines: `RIP: 0010:func+0x5/0x10`, `RAX: ... RBX: ...`, arm64 `pc : ...`, `x29: ...`.

use super::{frame::parse_sym, parse_hex};
use crate::report::InstructionPointer;

/// `RIP: 0010:func+0x5/0x10 [mod]`, `RIP: 0010:[<ffffffff810d9c93>]  [<...>] func+0x3b3/0x3d0`,
/// arm64 `pc : func+0x1c/0x30 [mod]`, arm32 `PC is at func+0x1c/0x30`, or a bare address.
pub fn parse_ip(line: &str) -> Option<InstructionPointer> {
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
pub fn parse_registers(line: &str, out: &mut std::collections::BTreeMap<String, u64>) -> bool {
    each_register(line, |name, v| {
        out.entry(name).or_insert(v);
    })
}

/// The (lower-case name, value) pairs of a register line, in order; empty when the line is not
/// one (its first word is no register name). [`parse_registers`] for a stream of lines.
pub fn register_tokens(line: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    each_register(line, |name, v| out.push((name, v)));
    out
}

fn each_register(line: &str, mut f: impl FnMut(String, u64)) -> bool {
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
                f(name.to_ascii_lowercase(), x);
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            register_tokens("x9 : 0000000000000001 x8 : ffff800008003d70"),
            vec![
                ("x9".to_string(), 1),
                ("x8".to_string(), 0xffff800008003d70)
            ]
        );
        assert!(register_tokens("CPU: 0 PID: 1 Comm: sh").is_empty());
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
}
