//! Header fields of a report: the `CPU:` line (release, taint, comm), `Modules linked in:`, and
//! the faulting address a header line names.

use super::parse_hex;

/// The `CPU: 1 PID: 102 Comm: sh Tainted: G OE 6.1.0-43-cloud-amd64 #1 Debian 6.1.187-1` line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CpuLine {
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
/// spaces. Pinned by `line::header::tests::cpu_line_*`.
pub fn parse_cpu_line(line: &str) -> Option<CpuLine> {
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

/// `Modules linked in: a(E) b c [last unloaded: x]`.
pub fn parse_modules(rest: &str) -> Vec<String> {
    let rest = match rest.find("[last unloaded") {
        Some(i) => &rest[..i],
        None => rest,
    };
    rest.split_whitespace()
        .map(|m| m.split('(').next().unwrap_or(m).to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

/// The keys of [`header_fault_address`], in the order they are tried.
const FAULT_ADDRESS_KEYS: &[&str] = &[
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

/// The faulting address a header line names.
pub fn header_fault_address(line: &str) -> Option<u64> {
    const KEYS: &[&str] = FAULT_ADDRESS_KEYS;
    // Every key holds ` at ` or `address`: two vectorised substring searches rule out most
    // lines (an OOM-kill line, most frames) for less than the automaton's prefilter costs on
    // them (issue 15: 3,000 instructions on an OOM-kill line). Pinned by
    // tests::fault_address_keys_hold_the_precheck.
    type Finder = std::sync::OnceLock<memchr::memmem::Finder<'static>>;
    static AT: Finder = Finder::new();
    static ADDRESS: Finder = Finder::new();
    let b = line.as_bytes();
    if AT
        .get_or_init(|| memchr::memmem::Finder::new(" at "))
        .find(b)
        .is_none()
        && ADDRESS
            .get_or_init(|| memchr::memmem::Finder::new("address"))
            .find(b)
            .is_none()
    {
        return None;
    }
    // Then one automaton pass before the ordered search below (which decides between
    // overlapping keys).
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

/// The boot banner, `Linux version REL (builder) (compiler) #1 SMP PREEMPT_DYNAMIC Debian
/// 6.1.187-1 (2024-07-27)` (`linux_banner`, init/version.c), with the console prefix stripped:
/// the release and the build string from its `#` on (the form the `CPU:` line prints it in).
pub fn parse_banner(line: &str) -> Option<(&str, Option<&str>)> {
    let rest = line.trim_start().strip_prefix("Linux version ")?;
    let rel = rest.split_whitespace().next()?;
    let build = rest.find(" #").map(|p| rest[p + 1..].trim_end());
    Some((rel, build))
}

/// The kernel release a log names when no report's `CPU:` line did: `Linux version REL ` (the
/// boot banner, [`parse_banner`]), or the word before `#` on a `... Comm: ... Tainted ...` line.
pub fn scan_release(text: &str) -> Option<String> {
    for line in text.lines() {
        if let Some(i) = line.find("Linux version ") {
            return parse_banner(&line[i..]).map(|(rel, _)| rel.to_string());
        }
        if line.contains(" Comm: ") && (line.contains("Tainted") || line.contains("tainted")) {
            let toks: Vec<&str> = line.split_whitespace().collect();
            if let Some(p) = toks.iter().position(|t| t.starts_with('#')) {
                if p > 0 {
                    return Some(toks[p - 1].to_string());
                }
            }
        }
    }
    None
}

/// The KASLR offset a log prints after a panic: `Kernel Offset: 0x2b800000 from
/// 0xffffffff81000000 (relocation range: ...)`; `disabled` is 0.
pub fn scan_kaslr(text: &str) -> Option<u64> {
    for line in text.lines() {
        if let Some(i) = line.find("Kernel Offset: ") {
            let v = line[i + 15..].split_whitespace().next()?;
            if v == "disabled" {
                return Some(0);
            }
            return parse_hex(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_address_keys_hold_the_precheck() {
        for k in FAULT_ADDRESS_KEYS {
            assert!(k.contains(" at ") || k.contains("address"), "{k:?}");
        }
        let oom = "Memory cgroup out of memory: Killed process 4133 (java) total-vm:100kB";
        assert_eq!(header_fault_address(oom), None);
        let gpf = "general protection fault, probably for non-canonical address \
                   0xdffffc0000000001: 0000 [#1] PREEMPT SMP KASAN";
        assert_eq!(header_fault_address(gpf), Some(0xdffffc0000000001));
        let kasan = "BUG: KASAN: use-after-free in f+0x1/0x2 at addr ffff888012345678";
        assert_eq!(header_fault_address(kasan), Some(0xffff888012345678));
    }

    #[test]
    fn cpu_line_debian() {
        let c = parse_cpu_line(
            "CPU: 1 PID: 102 Comm: sh Tainted: G           OE      6.1.0-43-cloud-amd64 #1 Debian 6.1.187-1",
        )
        .unwrap();
        assert_eq!((c.cpu, c.pid), (Some(1), Some(102)));
        assert_eq!(c.comm.as_deref(), Some("sh"));
        assert_eq!(c.taint.as_deref(), Some("G           OE"));
        assert_eq!(c.release.as_deref(), Some("6.1.0-43-cloud-amd64"));
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
    fn release_and_kaslr() {
        assert_eq!(
            scan_release("x\nLinux version 6.1.0-46-cloud-amd64 (debian-kernel@...)\n").as_deref(),
            Some("6.1.0-46-cloud-amd64")
        );
        assert_eq!(
            parse_banner("Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 6.1.187-1 (2024-07-27)"),
            Some((
                "6.1.0-18-amd64",
                Some("#1 SMP PREEMPT_DYNAMIC Debian 6.1.187-1 (2024-07-27)")
            ))
        );
        assert_eq!(parse_banner("Linux version "), None);
        assert_eq!(parse_banner("x Linux version 1"), None);
        assert_eq!(
            scan_release("CPU: 1 PID: 9 Comm: sh Not tainted 6.1.0 #1 Debian\n").as_deref(),
            Some("6.1.0")
        );
        assert_eq!(
            scan_kaslr("[1.0] Kernel Offset: 0x2b800000 from 0xffffffff81000000"),
            Some(0x2b800000)
        );
        assert_eq!(scan_kaslr("Kernel Offset: disabled"), Some(0));
        assert_eq!(scan_kaslr("Kernel Offset: "), None);
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
