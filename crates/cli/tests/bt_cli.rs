//! `kmortem core -c bt` as users run it, snapshotted on the crash lab's `null_deref_nokaslr`
//! dump of every pinned kernel (kmortem-lab). Hex numbers of 8+ digits (stack addresses and
//! registers differ between lab builds), the lab's path and the kernel's version are redacted.

mod common;

/// The `PID: N ... CPU: N` of the header: which CPU ran the crashing `sh`, and its pid, vary
/// between lab runs (the test checks them against meta.json instead).
fn redact_header(s: &str) -> String {
    s.lines()
        .map(|l| match l.strip_prefix("PID: ") {
            Some(rest) => {
                let task = rest.find("TASK:").unwrap_or(0);
                let cpu = rest.find("COMMAND:").unwrap_or(rest.len());
                let cpu_col = &rest[task..cpu];
                let cpu_col = match cpu_col.find("CPU: ") {
                    Some(i) => format!("{}CPU: N    ", &cpu_col[..i]),
                    None => cpu_col.to_string(),
                };
                format!("PID: N        {cpu_col}{}", &rest[cpu..])
            }
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + if s.ends_with('\n') { "\n" } else { "" }
}

/// The trace from the panic() frame (6.12: vpanic) down, frames numbered from it (`#P+0`).
/// What is above it is where panic() was spinning when the dump was taken (delay_tsc, or the
/// preempt-count helpers inlined in it): it differs between two builds of the same scenario,
/// so it is left out of the snapshot (the frame numbering is checked here instead).
fn from_panic(s: &str) -> String {
    let frame_no = |l: &str| -> Option<usize> {
        let t = l.strip_prefix(" #")?;
        t[..t.find(' ')?].parse().ok()
    };
    let numbers: Vec<usize> = s.lines().filter_map(frame_no).collect();
    assert_eq!(
        numbers,
        (0..numbers.len()).collect::<Vec<_>>(),
        "frames are numbered from #0 without a gap:\n{s}"
    );
    let is_panic = |l: &str| {
        frame_no(l).is_some() && (l.contains("] panic at ") || l.contains("] vpanic at "))
    };
    let lines: Vec<&str> = s.lines().collect();
    let at = lines
        .iter()
        .position(|l| is_panic(l))
        .unwrap_or_else(|| panic!("no panic frame in bt -l:\n{s}"));
    let base = frame_no(lines[at]).unwrap_or(0);
    let mut out = vec![
        lines[0].to_string(),
        "   (frames above panic(): where it spun, timing-dependent)".to_string(),
    ];
    for l in &lines[at..] {
        match frame_no(l) {
            Some(n) => {
                let rest = &l[l.find(' ').map_or(0, |i| i + 1)..];
                let rest = &rest[rest.find(' ').map_or(0, |i| i + 1)..];
                out.push(format!(" #P+{} {rest}", n - base));
            }
            None => out.push(l.to_string()),
        }
    }
    out.join("\n") + "\n"
}

/// (pid, cpu) of the console's last `CPU: 1 PID: 103 Comm: sh` line before the panic
/// (`CPU: 1 UID: 0 PID: 155 Comm: sh` since 6.10). lab.py's meta.json has them as panic_pid
/// and panic_cpu, but only for the older form.
fn console_cpu_line(sc: &kmortem_lab::Scenario) -> Option<(String, String)> {
    let t = std::fs::read(sc.console_log()).ok()?;
    let t = String::from_utf8_lossy(&t);
    let end = t.find("Kernel panic - not syncing").unwrap_or(t.len());
    let l = t[..end]
        .lines()
        .rev()
        .find(|l| l.contains(" PID: ") && l.contains("CPU: "))?;
    let w: Vec<&str> = l.split_whitespace().collect();
    let after = |k: &str| w.iter().position(|x| *x == k).and_then(|i| w.get(i + 1));
    Some((after("PID:")?.to_string(), after("CPU:")?.to_string()))
}

/// `kmlab.c: 285` becomes `kmlab.c: «return dev->ops;»`: the source line itself, so that the
/// snapshot checks that the line is the right one and does not move when kmlab.c grows (a new
/// lab scenario shifts every line number below it).
fn kmlab_source_lines(s: &str, src: &std::path::Path) -> String {
    let text = std::fs::read_to_string(src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<String> = Vec::new();
    for l in s.lines() {
        let replaced = l.rfind("kmlab.c: ").and_then(|i| {
            let n: usize = l[i + 9..].trim().parse().ok()?;
            let code = lines.get(n.checked_sub(1)?)?.trim();
            Some(format!("{}kmlab.c: «{code}»", &l[..i]))
        });
        out.push(replaced.unwrap_or_else(|| l.to_string()));
    }
    out.join("\n") + if s.ends_with('\n') { "\n" } else { "" }
}

fn redact(s: &str, lab: &kmortem_lab::Lab) -> String {
    // The upstream version (`6.1.192` of Debian's `6.1.192-3`) in the build paths.
    let upstream = lab.kernel.version.split('-').next().unwrap_or("");
    let s = s
        .replace(&lab.dir.display().to_string(), "$LAB")
        .replace(&format!("linux-{upstream}/"), "linux-$VERSION/");
    let mut out = String::with_capacity(s.len());
    let mut word = String::new();
    let flush = |w: &mut String, out: &mut String| {
        let hex = w.trim_start_matches("0x");
        if hex.len() >= 8 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            out.push_str(if w.starts_with("0x") {
                "0xADDR"
            } else {
                "ADDR"
            });
        } else {
            out.push_str(w);
        }
        w.clear();
    };
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[test]
fn lab_bt_snapshot() {
    kmortem_lab::each(|lab| {
        let sc = lab.need("null_deref_nokaslr");
        let dump = sc
            .dump("kdump-zlib")
            .expect("null_deref_nokaslr keeps a kdump-zlib dump");
        let v = lab.vmlinux();
        assert!(
            v.is_file(),
            "kernel {}: no vmlinux at {}",
            lab.name(),
            v.display()
        );
        let moddir = sc.meta.kmlab_ko.parent().expect("module dir");
        let (out, err, code) = common::kmortem(&[
            "core",
            dump.to_str().unwrap(),
            "-s",
            v.to_str().unwrap(),
            "--mod-dir",
            moddir.to_str().unwrap(),
            "-c",
            "bt -l",
        ]);
        assert_eq!((code, err.as_str()), (0, ""));
        assert!(out.contains("[exception RIP: kmlab_device_get+"), "{out}");
        println!("[{}] bt -l: {} lines", lab.name(), out.lines().count());
        // The header is the panic task's, as the console's CPU line says.
        let head = out.lines().next().unwrap_or("");
        let f: Vec<&str> = head.split_whitespace().collect();
        assert_eq!(
            (f.get(1).copied(), f.get(5).copied()),
            console_cpu_line(&sc)
                .as_ref()
                .map(|(p, c)| (Some(p.as_str()), Some(c.as_str())))
                .unwrap_or_default(),
            "{head}"
        );
        let out = kmlab_source_lines(&from_panic(&redact_header(&out)), &sc.meta.kmlab_source);
        insta::with_settings!({snapshot_suffix => lab.name()}, {
            insta::assert_snapshot!("bt_null_deref_nokaslr", redact(&out, lab));
        });
    });
}
