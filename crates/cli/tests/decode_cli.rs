//! `kmortem decode` as users see it: `--help`, the output without any debug info (what is
//! missing and how to get it, plus the decoded Code: that needs no debug info), and end to end
//! on the crash lab with the Debian vmlinux, on every kernel pinned in `lab/kernels.toml`.

mod common;

use common::kmortem;

#[test]
fn decode_help() {
    let (out, _, code) = kmortem(&["decode", "--help"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!(out);
}

#[test]
fn decode_without_debug_info() {
    let (out, err, code) = kmortem(&[
        "decode",
        "--no-system",
        "crates/cli/tests/decode/no_debug_info.log",
    ]);
    assert_eq!(code, 0);
    // The hint names the release the log's `CPU:` line printed (`... OE  RELEASE #1 ...`).
    let log = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/decode/no_debug_info.log"
    ))
    .expect("log");
    let release = log
        .lines()
        .find(|l| l.contains(" Comm: "))
        .and_then(|l| l.split(" #").next())
        .and_then(|l| l.split_whitespace().last())
        .expect("a release in the CPU: line");
    assert!(
        err.contains(&format!("apt install linux-image-{release}-dbg")),
        "{err}"
    );
    assert!(out.contains("<-- trapping instruction"), "{out}");
    assert!(
        out.contains("reads 8 bytes at RDI+0x18 = 0xdead4ead00000018"),
        "{out}"
    );
    insta::assert_snapshot!(format!("{out}\n--- stderr ---\n{err}"));
}

#[test]
fn decode_json_without_debug_info() {
    let (out, _, code) = kmortem(&[
        "decode",
        "--no-system",
        "--json",
        "crates/cli/tests/decode/no_debug_info.log",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let r = &v["reports"][0];
    assert_eq!(r["kind"], "general_protection_fault");
    assert_eq!(
        r["decode"]["code"]["trap"]["text"],
        "mov    0x18(%rdi),%rax"
    );
    assert_eq!(r["decode"]["code"]["accesses"][0]["expression"], "RDI+0x18");
    assert_eq!(
        r["decode"]["frames"].as_array().map(Vec::len),
        r["frames"].as_array().map(Vec::len)
    );
    assert!(v["notes"][0].as_str().unwrap_or("").contains("-dbg"));
}

/// End to end on every lab console log: each trace line of the kernel gets `(file:line)`, the
/// trapping instruction is marked, and nothing reports a size mismatch. Each log is decoded with
/// the kmlab.ko that crashed in it (`meta.json`'s `kmlab_ko`).
#[test]
fn decode_lab_consoles() {
    kmortem_lab::each(decode_lab_consoles_on);
}

fn decode_lab_consoles_on(lab: &kmortem_lab::Lab) {
    let sc = lab.scenarios().expect("scenarios");
    let vmlinux = lab.vmlinux();
    let (mut lines, mut annotated, mut inlined, mut traps, mut logs) = (0, 0, 0, 0, 0);
    let mut missing = Vec::new();
    for s in &sc {
        let log = s.console_log();
        let (out, err, code) = kmortem(&[
            "decode",
            log.to_str().expect("utf-8 path"),
            "--vmlinux",
            vmlinux.to_str().expect("utf-8"),
            "--modules",
            s.meta
                .kmlab_ko
                .parent()
                .and_then(|p| p.to_str())
                .expect("utf-8"),
            "--no-system",
        ]);
        assert_eq!(code, 0, "{err}");
        logs += 1;
        for l in out.lines() {
            // `? func+0x90/0x90` (`? __pfx_func+0x10/0x10` on 6.12): a stale stack word pointing
            // just past a function (into the padding before the next one), which has no line
            // info; not a frame to annotate.
            if kmortem_symbols_like_frame(l) && !stale_end_of_function(l) {
                lines += 1;
                if l.trim_end().ends_with(')') && !l.contains("[size mismatch") {
                    annotated += 1;
                } else {
                    missing.push(format!("{}: {l}", log.display()));
                }
            }
            if l.contains("(inlined by)") {
                inlined += 1;
            }
            if l.contains("<-- trapping instruction") {
                traps += 1;
            }
        }
    }
    println!("decode on {logs} lab logs: {annotated}/{lines} frame lines annotated, {inlined} inlined-by lines, {traps} trapping instructions marked");
    assert!(
        lines > 0 && annotated == lines,
        "{annotated}/{lines}: {missing:#?}"
    );
    assert!(
        logs >= 20 && inlined > 0 && traps >= 10,
        "{logs} logs, {traps} traps"
    );
}

fn stale_end_of_function(l: &str) -> bool {
    let Some(tok) = l
        .split_whitespace()
        .find(|t| t.contains("+0x") && t.contains("/0x"))
    else {
        return false;
    };
    let Some((_, r)) = tok.split_once("+0x") else {
        return false;
    };
    let Some((off, size)) = r.split_once("/0x") else {
        return false;
    };
    l.contains(" ? ") && off == size
}

fn kmortem_symbols_like_frame(l: &str) -> bool {
    // ` func+0x1a/0x2b` (not `(inlined by)` lines, not user-space `RIP: 0033:0x...`).
    let Some(i) = l.find("+0x") else { return false };
    let rest = &l[i + 3..];
    !l.contains("(inlined by)")
        && rest
            .split_once("/0x")
            .is_some_and(|(o, _)| o.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Without a vmlinux, System.map still names every vmlinux frame, and the kernel's printed
/// `/0xsize` equals the distance to the next System.map symbol (REFERENCE §6).
#[test]
fn decode_lab_with_system_map_only() {
    kmortem_lab::each(decode_lab_with_system_map_only_on);
}

fn decode_lab_with_system_map_only_on(lab: &kmortem_lab::Lab) {
    let sc = lab.scenarios().expect("scenarios");
    // lab.system_map() is Debian's /boot stub; the real map sits next to the debug vmlinux.
    let map = lab
        .vmlinux()
        .with_file_name(format!("System.map-{}", lab.release()));
    let (mut checked, mut mismatched) = (0, Vec::new());
    for s in sc.iter().filter(|s| s.console_log().is_file()) {
        let log = s.console_log();
        let (out, err, code) = kmortem(&[
            "decode",
            log.to_str().expect("utf-8"),
            "--no-system",
            "--system-map",
            map.to_str().expect("utf-8"),
            "--json",
        ]);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert!(
            v["notes"].to_string().contains("-dbg"),
            "no hint about the -dbg package"
        );
        for r in v["reports"].as_array().into_iter().flatten() {
            for (f, d) in r["frames"]
                .as_array()
                .into_iter()
                .flatten()
                .zip(r["decode"]["frames"].as_array().into_iter().flatten())
            {
                if !f["module"].is_null() || f["size"].is_null() {
                    continue;
                }
                assert_eq!(d["source"], "system_map", "{f} -> {d}");
                checked += 1;
                if !d["size_mismatch"].is_null() {
                    mismatched.push(format!("{} {}", f["function"], d["size_mismatch"]));
                }
            }
        }
    }
    println!("System.map only: {checked} vmlinux frames named, {} printed sizes differ from the next-symbol distance", mismatched.len());
    assert!(checked > 50, "{checked}");
    assert!(mismatched.is_empty(), "{mismatched:?}");
}

/// arm64: 4-byte Code: words, `(..)` marks the faulting word, registers printed before Code:.
#[test]
fn decode_arm64_code() {
    let (out, err, code) = kmortem(&[
        "decode",
        "--no-system",
        "crates/cli/tests/decode/arm64_null.log",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ldr w0, [x0, #0x10]\t\t<-- trapping instruction"),
        "{out}"
    );
    assert!(
        out.contains("reads 4 bytes at X0+0x10 = 0x10: NULL + 16"),
        "{out}"
    );
    insta::assert_snapshot!(out);
}

/// `--modules /lib/modules/RELEASE`, as a user points at the running system's modules: the
/// image's own module files are found by name and read (stripped `.ko` on 6.1, `.ko.xz` on
/// 6.12, decompressed by kmortem-symbols), and frames of them get the symbol table's names and
/// sizes; with the `-dbg` package's directory first, file:line. The log is built from a module
/// every lab guest loads (`Modules linked in:`), with functions and kallsyms sizes of its file.
#[test]
fn decode_frames_of_image_modules() {
    kmortem_lab::each(decode_frames_of_image_modules_on);
}

fn decode_frames_of_image_modules_on(lab: &kmortem_lab::Lab) {
    use kmortem_symbols::locate::index_modules;
    let sc = lab.scenarios().expect("scenarios");
    let loaded = sc
        .iter()
        .filter_map(|s| std::fs::read_to_string(s.console_log()).ok())
        .find_map(|t| {
            let list = t
                .lines()
                .find_map(|l| l.split_once("Modules linked in:"))?
                .1;
            list.split_whitespace()
                .map(|m| m.split('(').next().unwrap_or(m).to_string())
                .find(|m| m != "kmlab")
        })
        .expect("a module other than kmlab loaded in the lab");
    let mut image = std::collections::HashMap::new();
    index_modules(&lab.modules_dir(), &mut image, 0);
    let file = image
        .get(&loaded.replace('-', "_"))
        .unwrap_or_else(|| panic!("{loaded} not under {}", lab.modules_dir().display()))
        .clone();
    let bin = kmortem_symbols::Binary::open(&file).expect("open the image module");
    // Two functions of .text with their kallsyms sizes, as the kernel would print them.
    let funcs: Vec<(String, u64)> = (0..bin.symbols.len())
        .filter(|&i| {
            let s = &bin.symbols[i];
            s.is_function && s.size > 16 && !s.name.starts_with("__pfx_")
        })
        .map(|i| (bin.symbols[i].name.to_string(), bin.kallsyms_size(i)))
        .take(2)
        .collect();
    assert_eq!(funcs.len(), 2, "{}: too few functions", file.display());
    let (f1, s1) = &funcs[0];
    let (f2, s2) = &funcs[1];
    let log = format!(
        "[   10.000000] ------------[ cut here ]------------\n\
         [   10.000000] WARNING: CPU: 0 PID: 1 at {loaded}.c:1 {f1}+0x4/{s1:#x} [{loaded}]\n\
         [   10.000000] Modules linked in: {loaded}\n\
         [   10.000000] CPU: 0 PID: 1 Comm: sh Not tainted {rel} #1\n\
         [   10.000000] RIP: 0010:{f1}+0x4/{s1:#x} [{loaded}]\n\
         [   10.000000] Call Trace:\n\
         [   10.000000]  <TASK>\n\
         [   10.000000]  {f2}+0x9/{s2:#x} [{loaded}]\n\
         [   10.000000]  </TASK>\n\
         [   10.000000] ---[ end trace 0000000000000000 ]---\n",
        rel = lab.release()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("image-module.log");
    std::fs::write(&path, log).expect("write log");
    let decode = |modules: &[std::path::PathBuf]| -> serde_json::Value {
        let mut args = vec![
            "decode".to_string(),
            path.display().to_string(),
            "--no-system".into(),
            "--json".into(),
        ];
        for m in modules {
            args.push("--modules".into());
            args.push(m.display().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (out, err, code) = kmortem(&args);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).expect("json")
    };
    // The image directory alone: names and sizes from the module's symbol table.
    let v = decode(&[lab.modules_dir()]);
    let d = &v["reports"][0]["decode"];
    let mut resolved = vec![d["ip"].clone()];
    resolved.extend(d["frames"].as_array().into_iter().flatten().cloned());
    for (r, f) in resolved.iter().zip([f1, f2]) {
        assert_eq!(r["symbol"], f.as_str(), "{r}");
        assert!(r["size_mismatch"].is_null(), "{r}");
        assert_eq!(r["binary"], file.display().to_string(), "{r}");
    }
    // The -dbg directory first: the same frames from DWARF.
    let v = decode(&[lab.modules_debug_dir(), lab.modules_dir()]);
    let d = &v["reports"][0]["decode"];
    let mut dwarf = vec![d["ip"].clone()];
    dwarf.extend(d["frames"].as_array().into_iter().flatten().cloned());
    for r in &dwarf {
        assert_eq!(r["source"], "dwarf", "{r}");
        assert!(r["frames"][0]["line"].as_u64().unwrap_or(0) > 0, "{r}");
    }
    println!(
        "{loaded} from {}: {f1}, {f2} named from its symbol table ({}), file:line from the -dbg \
         module",
        file.display(),
        resolved[0]["source"]
    );
}
