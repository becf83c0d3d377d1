//! [`Report`] as pretty JSON, written by hand: the same bytes as
//! `serde_json::to_writer_pretty(&report)` (two-space indent, `"key": value`, one array element
//! per line, `[]`/`{}` when empty, `truncated_reason`/`source` left out when `None`), at a
//! fraction of the cost. `kmortem oops --json` writes 60-odd MB of it for a crash-dense log,
//! where serde's serializer was the largest single item of the main thread (issue 15).
//! Pinned by json::tests (against serde_json over the golden logs and hostile strings).

use crate::report::{Code, Context, Frame, InstructionPointer, Report};

impl Report {
    /// Append the report as pretty JSON (exactly what `serde_json::to_writer_pretty` writes for
    /// it, at indentation level 0, no trailing newline) to `out`.
    pub fn write_json_pretty(&self, out: &mut Vec<u8>) {
        let r = self;
        out.extend_from_slice(b"{\n  \"title\": ");
        string(out, &r.title);
        out.extend_from_slice(b",\n  \"alt_titles\": ");
        strings(out, &r.alt_titles, 1);
        out.extend_from_slice(b",\n  \"kind\": \"");
        out.extend_from_slice(r.kind.as_str().as_bytes());
        out.extend_from_slice(b"\",\n  \"crash_type\": ");
        string(out, &r.crash_type);
        out.extend_from_slice(b",\n  \"corrupted\": ");
        boolean(out, r.corrupted);
        out.extend_from_slice(b",\n  \"corrupted_reason\": ");
        opt_string(out, r.corrupted_reason.as_deref());
        out.extend_from_slice(b",\n  \"guilty_frame\": ");
        opt_string(out, r.guilty_frame.as_deref());
        out.extend_from_slice(b",\n  \"signature\": ");
        string(out, &r.signature);
        out.extend_from_slice(b",\n  \"kernel_release\": ");
        opt_string(out, r.kernel_release.as_deref());
        out.extend_from_slice(b",\n  \"kernel_build\": ");
        opt_string(out, r.kernel_build.as_deref());
        out.extend_from_slice(b",\n  \"cpu\": ");
        opt_uint(out, r.cpu.map(u64::from));
        out.extend_from_slice(b",\n  \"pid\": ");
        opt_uint(out, r.pid.map(u64::from));
        out.extend_from_slice(b",\n  \"comm\": ");
        opt_string(out, r.comm.as_deref());
        out.extend_from_slice(b",\n  \"taint\": ");
        opt_string(out, r.taint.as_deref());
        out.extend_from_slice(b",\n  \"hardware\": ");
        opt_string(out, r.hardware.as_deref());
        out.extend_from_slice(b",\n  \"ip\": ");
        match &r.ip {
            Some(ip) => instruction_pointer(out, ip),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\n  \"fault_address\": ");
        opt_uint(out, r.fault_address);
        out.extend_from_slice(b",\n  \"registers\": ");
        if r.registers.is_empty() {
            out.extend_from_slice(b"{}");
        } else {
            let mut first = true;
            for (k, v) in &r.registers {
                out.extend_from_slice(if first { b"{\n    " } else { b",\n    " });
                first = false;
                string(out, k);
                out.extend_from_slice(b": ");
                uint(out, *v);
            }
            out.extend_from_slice(b"\n  }");
        }
        out.extend_from_slice(b",\n  \"frames\": ");
        if r.frames.is_empty() {
            out.extend_from_slice(b"[]");
        } else {
            let mut first = true;
            for f in &r.frames {
                out.extend_from_slice(if first { b"[\n    " } else { b",\n    " });
                first = false;
                frame(out, f);
            }
            out.extend_from_slice(b"\n  ]");
        }
        out.extend_from_slice(b",\n  \"code\": ");
        match &r.code {
            Some(c) => code(out, c),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\n  \"modules\": ");
        strings(out, &r.modules, 1);
        out.extend_from_slice(b",\n  \"panic_message\": ");
        opt_string(out, r.panic_message.as_deref());
        out.extend_from_slice(b",\n  \"start_line\": ");
        uint(out, r.start_line as u64);
        out.extend_from_slice(b",\n  \"end_line\": ");
        uint(out, r.end_line as u64);
        out.extend_from_slice(b",\n  \"text\": ");
        string(out, &r.text);
        out.extend_from_slice(b",\n  \"truncated\": ");
        boolean(out, r.truncated);
        if let Some(t) = &r.truncated_reason {
            out.extend_from_slice(b",\n  \"truncated_reason\": ");
            string(out, t);
        }
        out.extend_from_slice(b",\n  \"guilty_file\": ");
        opt_string(out, r.guilty_file.as_deref());
        if let Some(s) = &r.source {
            out.extend_from_slice(b",\n  \"source\": ");
            string(out, s);
        }
        out.extend_from_slice(b"\n}");
    }
}

fn instruction_pointer(out: &mut Vec<u8>, ip: &InstructionPointer) {
    out.extend_from_slice(b"{\n    \"function\": ");
    opt_string(out, ip.function.as_deref());
    out.extend_from_slice(b",\n    \"offset\": ");
    opt_uint(out, ip.offset);
    out.extend_from_slice(b",\n    \"size\": ");
    opt_uint(out, ip.size);
    out.extend_from_slice(b",\n    \"module\": ");
    opt_string(out, ip.module.as_deref());
    out.extend_from_slice(b",\n    \"address\": ");
    opt_uint(out, ip.address);
    out.extend_from_slice(b"\n  }");
}

fn frame(out: &mut Vec<u8>, f: &Frame) {
    out.extend_from_slice(b"{\n      \"function\": ");
    string(out, &f.function);
    out.extend_from_slice(b",\n      \"offset\": ");
    opt_uint(out, f.offset);
    out.extend_from_slice(b",\n      \"size\": ");
    opt_uint(out, f.size);
    out.extend_from_slice(b",\n      \"module\": ");
    opt_string(out, f.module.as_deref());
    out.extend_from_slice(b",\n      \"address\": ");
    opt_uint(out, f.address);
    out.extend_from_slice(b",\n      \"reliable\": ");
    boolean(out, f.reliable);
    out.extend_from_slice(b",\n      \"context\": \"");
    out.extend_from_slice(match f.context {
        Context::Task => b"task".as_slice(),
        Context::Irq => b"irq",
        Context::Softirq => b"softirq",
        Context::Nmi => b"nmi",
        Context::Exception => b"exception",
    });
    out.extend_from_slice(b"\",\n      \"stack\": ");
    string(out, &f.stack);
    out.extend_from_slice(b",\n      \"source\": ");
    opt_string(out, f.source.as_deref());
    out.extend_from_slice(b",\n      \"line\": ");
    uint(out, f.line as u64);
    out.extend_from_slice(b"\n    }");
}

fn code(out: &mut Vec<u8>, c: &Code) {
    out.extend_from_slice(b"{\n    \"bytes\": ");
    if c.bytes.is_empty() {
        out.extend_from_slice(b"[]");
    } else {
        let mut first = true;
        for &b in &c.bytes {
            out.extend_from_slice(if first { b"[\n      " } else { b",\n      " });
            first = false;
            uint(out, u64::from(b));
        }
        out.extend_from_slice(b"\n    ]");
    }
    out.extend_from_slice(b",\n    \"trap_index\": ");
    opt_uint(out, c.trap_index.map(|t| t as u64));
    out.extend_from_slice(b",\n    \"trap_guessed\": ");
    boolean(out, c.trap_guessed);
    out.extend_from_slice(b",\n    \"arch\": \"");
    out.extend_from_slice(c.arch.as_str().as_bytes());
    out.extend_from_slice(b"\",\n    \"raw\": ");
    string(out, &c.raw);
    out.extend_from_slice(b"\n  }");
}

/// A string array whose elements stand at indentation `level + 1`.
fn strings(out: &mut Vec<u8>, v: &[String], level: usize) {
    if v.is_empty() {
        out.extend_from_slice(b"[]");
        return;
    }
    for (i, s) in v.iter().enumerate() {
        out.extend_from_slice(if i == 0 { b"[\n" } else { b",\n" });
        indent(out, level + 1);
        string(out, s);
    }
    out.push(b'\n');
    indent(out, level);
    out.push(b']');
}

fn indent(out: &mut Vec<u8>, level: usize) {
    for _ in 0..level {
        out.extend_from_slice(b"  ");
    }
}

fn boolean(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

fn opt_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn opt_uint(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => uint(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

fn uint(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Does this 8-byte word hold a byte that JSON escapes (`"`, `\`, below 0x20)? The classic
/// has-zero-byte test on `w ^ '"'`, `w ^ '\'`, and a has-less-than-0x20 test: exact, no false
/// negatives (a false positive only sends the word to the byte loop).
fn word_needs_escape(w: u64) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
    let quote = has_zero(w ^ (LO * u64::from(b'"')));
    let backslash = has_zero(w ^ (LO * u64::from(b'\\')));
    let control = w.wrapping_sub(LO * 0x20) & !w & HI;
    (quote | backslash | control) != 0
}

/// A JSON string as serde_json writes it: `"` and `\` backslashed, `\b \t \n \f \r`, the other
/// control bytes as `\u00xx` (lower-case hex), everything else (DEL, non-ASCII) as is.
fn string(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        if i + 8 <= b.len() {
            let w = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
            if !word_needs_escape(w) {
                i += 8;
                continue;
            }
        }
        let c = b[i];
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\t' => b"\\t",
            b'\r' => b"\\r",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                out.extend_from_slice(&b[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(c >> 4)]);
                out.push(HEX[usize::from(c & 0xf)]);
                i += 1;
                start = i;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&b[start..i]);
        out.extend_from_slice(esc);
        i += 1;
        start = i;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Kind;

    fn serde(r: &Report) -> String {
        serde_json::to_string_pretty(r).unwrap()
    }

    fn mine(r: &Report) -> String {
        let mut out = Vec::new();
        r.write_json_pretty(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn same_bytes_as_serde_on_the_golden_logs() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut n = 0;
        let mut bytes = 0;
        let mut entries: Vec<_> = [root.join("tests/golden"), root.join("../../examples")]
            .iter()
            .flat_map(|d| std::fs::read_dir(d).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        entries.sort();
        for p in entries {
            for mut r in crate::parse(&std::fs::read(&p).unwrap()) {
                let want = serde(&r);
                assert_eq!(mine(&r), want, "{}: {}", p.display(), r.title);
                r.source = Some(p.display().to_string());
                r.truncated_reason = Some("line_cap".into());
                assert_eq!(mine(&r), serde(&r), "{}: {}", p.display(), r.title);
                n += 1;
                bytes += want.len();
            }
        }
        println!("{n} golden and example reports, {bytes} bytes of JSON, as serde_json's");
        assert!(n >= 18, "only {n} reports in the golden logs and examples");
    }

    #[test]
    fn same_bytes_as_serde_for_every_field_and_escape() {
        let all: String = (0u8..=0x7f).map(char::from).collect();
        let hostile = format!("{all}\u{7f}é\u{2028}\"\\ end \"\"\\\\ 1234567\"");
        let mut r = crate::parse(b"BUG: kernel NULL pointer dereference, address: 8\n")
            .pop()
            .unwrap();
        r.title = hostile.clone();
        r.alt_titles = vec![hostile.clone(), String::new(), "x".into()];
        r.crash_type = "\u{1}".into();
        r.corrupted = true;
        r.corrupted_reason = Some(hostile.clone());
        r.guilty_frame = Some("f".into());
        r.kernel_release = Some("6.1.0-46-cloud-amd64".into());
        r.kernel_build = Some("#1 SMP".into());
        r.cpu = Some(u32::MAX);
        r.pid = Some(0);
        r.comm = Some("a\"b".into());
        r.taint = Some("G        W  OE".into());
        r.hardware = Some("QEMU".into());
        r.ip = Some(InstructionPointer {
            function: Some("f".into()),
            offset: Some(0x1c),
            size: None,
            module: Some("m\\".into()),
            address: Some(u64::MAX),
        });
        r.fault_address = Some(1 << 63);
        r.registers.insert("rax".into(), 0);
        r.registers.insert("r\"1".into(), u64::MAX);
        let mut f = Frame {
            function: hostile.clone(),
            stack: "allocated".into(),
            source: Some("a.c:1".into()),
            line: 17,
            ..Frame::default()
        };
        for c in [
            Context::Task,
            Context::Irq,
            Context::Softirq,
            Context::Nmi,
            Context::Exception,
        ] {
            f.context = c;
            f.reliable = !f.reliable;
            r.frames.push(f.clone());
        }
        r.code = Some(Code {
            bytes: vec![0, 9, 10, 99, 100, 255],
            trap_index: Some(3),
            trap_guessed: true,
            arch: crate::line::Arch::Arm64,
            raw: "d503233f (b9400000)".into(),
        });
        r.modules = vec!["ext4".into(), hostile.clone()];
        r.panic_message = Some("Fatal exception".into());
        r.start_line = usize::MAX;
        r.text = hostile;
        r.truncated = true;
        r.truncated_reason = Some("end_of_input".into());
        r.guilty_file = Some("fs/ext4/inode.c".into());
        r.source = Some("<stdin>".into());
        assert_eq!(mine(&r), serde(&r));
        r.code.as_mut().unwrap().bytes.clear();
        r.code.as_mut().unwrap().arch = crate::line::Arch::X86_64;
        r.frames.truncate(1);
        assert_eq!(mine(&r), serde(&r));
        for k in [
            Kind::NullPointerDereference,
            Kind::PagingRequest,
            Kind::GeneralProtectionFault,
            Kind::KernelBug,
            Kind::InvalidOpcode,
            Kind::DivideError,
            Kind::DoubleFault,
            Kind::StackProtector,
            Kind::StackCorruption,
            Kind::SoftLockup,
            Kind::HardLockup,
            Kind::HungTask,
            Kind::RcuStall,
            Kind::WorkqueueLockup,
            Kind::Kasan,
            Kind::Kmsan,
            Kind::Kcsan,
            Kind::Kfence,
            Kind::Ubsan,
            Kind::Warning,
            Kind::RefcountWarning,
            Kind::OdebugWarning,
            Kind::ListCorruption,
            Kind::BadPageState,
            Kind::Lockdep,
            Kind::SchedulingWhileAtomic,
            Kind::SleepingInAtomic,
            Kind::MemoryLeak,
            Kind::Panic,
            Kind::Oom,
            Kind::MachineCheck,
            Kind::Other,
        ] {
            r.kind = k;
            assert_eq!(mine(&r), serde(&r), "{k:?}");
        }
        // Every escape position against the 8-byte words.
        for pad in 0..17 {
            for c in ['"', '\\', '\n', '\u{1f}', '\u{0}', '\u{7f}', ' ', 'é'] {
                r.text = format!("{}{c}{}", "a".repeat(pad), "b".repeat(pad % 9));
                assert_eq!(mine(&r), serde(&r), "pad {pad} {c:?}");
            }
        }
    }
}
