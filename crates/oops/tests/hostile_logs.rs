//! The crash lab's real console logs as real logs also arrive (issue 25): coloured like
//! `dmesg --color=always`, with NUL bytes injected, with CR-only and CRLF line ends. Each variant
//! must yield the reports of the clean log: same titles, frames, release and line numbers, both
//! through `parse` and through `Scanner::feed` in small chunks (a CRLF or an escape sequence
//! split between two chunks).

use kmortem_oops::{Report, Scanner};

/// `dmesg --color=always`: the timestamp in green, a `subsystem:` prefix in yellow, the rest
/// of error lines in bold red (util-linux's dmesg colour scheme).
fn coloured(log: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in log.split_inclusive(|&b| b == b'\n') {
        let (body, nl) = match line.strip_suffix(b"\n") {
            Some(b) => (b, &b"\n"[..]),
            None => (line, &b""[..]),
        };
        let split = body.iter().position(|&b| b == b']').map_or(0, |p| p + 1);
        let (stamp, rest) = body.split_at(if body.first() == Some(&b'[') {
            split
        } else {
            0
        });
        if !stamp.is_empty() {
            out.extend_from_slice(b"\x1b[32m");
            out.extend_from_slice(stamp);
            out.extend_from_slice(b"\x1b[0m");
        }
        match rest.iter().position(|&b| b == b':') {
            Some(c) if c < 24 => {
                out.extend_from_slice(b"\x1b[33m");
                out.extend_from_slice(&rest[..=c]);
                out.extend_from_slice(b"\x1b[0m\x1b[1;31m");
                out.extend_from_slice(&rest[c + 1..]);
                out.extend_from_slice(b"\x1b[0m");
            }
            _ => out.extend_from_slice(rest),
        }
        out.extend_from_slice(nl);
    }
    out
}

/// NUL bytes where a console puts them: runs at line starts (a serial line after a reset) and
/// single ones inside words.
fn nul_injected(log: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, line) in log.split_inclusive(|&b| b == b'\n').enumerate() {
        if i % 3 == 0 {
            out.extend_from_slice(&[0; 7]);
        }
        for (j, &b) in line.iter().enumerate() {
            out.push(b);
            if j % 11 == 5 && b != b'\n' {
                out.push(0);
            }
        }
    }
    out
}

fn replace_lf(log: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in log {
        if b == b'\n' {
            out.extend_from_slice(with);
        } else {
            out.push(b);
        }
    }
    out
}

/// Title, first and last line, release and frame functions of each report.
type Key = (String, usize, usize, Option<String>, Vec<String>);

fn key(rs: &[Report]) -> Vec<Key> {
    rs.iter()
        .map(|r| {
            (
                r.title.clone(),
                r.start_line,
                r.end_line,
                r.kernel_release.clone(),
                r.frames.iter().map(|f| f.function.clone()).collect(),
            )
        })
        .collect()
}

fn fed(log: &[u8], chunk: usize) -> Vec<Report> {
    let mut s = Scanner::new();
    let mut out = Vec::new();
    for c in log.chunks(chunk) {
        out.extend(s.feed(c));
    }
    out.extend(s.finish());
    out.sort_by_key(|r| r.start_line);
    out
}

#[test]
fn lab_consoles_coloured_nul_cr_crlf() {
    kmortem_lab::each(|lab| {
        let scenarios = lab.scenarios().expect("lab scenarios");
        let mut checked = 0;
        for sc in &scenarios {
            let path = sc.console_log();
            let log = std::fs::read(&path).unwrap();
            let want = key(&kmortem_oops::parse(&log));
            if want.is_empty() {
                continue;
            }
            // The lab's serial consoles log CRLF: the variants are made from LF lines.
            let log: Vec<u8> = log.iter().copied().filter(|&b| b != b'\r').collect();
            assert_eq!(
                key(&kmortem_oops::parse(&log)),
                want,
                "{}: LF only",
                path.display()
            );
            for (name, variant) in [
                ("coloured", coloured(&log)),
                ("nul", nul_injected(&log)),
                ("cr-only", replace_lf(&log, b"\r")),
                ("crlf", replace_lf(&log, b"\r\n")),
            ] {
                assert_ne!(variant, log, "{name}: the variant changed nothing");
                let got = key(&kmortem_oops::parse(&variant));
                assert_eq!(got, want, "{}: {name} (parse)", path.display());
                let got = key(&fed(&variant, 61));
                assert_eq!(got, want, "{}: {name} (feed)", path.display());
            }
            checked += 1;
        }
        println!(
            "{}: {checked} consoles x 4 hostile variants agree",
            lab.release()
        );
        assert!(checked > 0);
    });
}
