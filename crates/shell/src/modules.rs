//! `mod [-S DIR] [-s NAME FILE]`: the loaded modules in crash's layout, with the `.ko` found
//! for each (a file of another build is named and left out).

use crate::output::{usage, CmdError, Output};
use kmortem_kernel::Program;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where `mod` looks for module files, kept between calls.
#[derive(Default)]
pub(crate) struct State {
    /// Extra directories searched for module `.ko` files (`mod -S DIR`).
    module_dirs: Vec<PathBuf>,
    /// Explicit module files (`mod -s NAME FILE`).
    module_files: HashMap<String, PathBuf>,
}

impl State {
    /// Add a directory searched for module debug files (the CLI's `--modules DIR`).
    pub(crate) fn add_dir(&mut self, dir: &Path) {
        self.module_dirs.push(dir.to_path_buf());
    }
}

/// `mod [-S DIR] [-s NAME FILE]`
pub(crate) fn cmd_mod(prog: &Program, st: &mut State, args: &[&str]) -> Result<Output, CmdError> {
    const USAGE: &str = "usage: mod [-S DIR] [-s NAME FILE]";
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match *a {
            "-S" => {
                let d = it.next().ok_or_else(|| usage(USAGE))?;
                if !Path::new(d).is_dir() {
                    return Err(usage(format!("mod: {d}: not a directory")));
                }
                st.module_dirs.push(PathBuf::from(d));
            }
            "-s" => {
                let (Some(n), Some(f)) = (it.next(), it.next()) else {
                    return Err(usage(USAGE));
                };
                let p = PathBuf::from(f);
                if !p.is_file() {
                    return Err(usage(format!("mod: {f}: no such file")));
                }
                st.module_files.insert(n.replace('-', "_"), p);
            }
            s => return Err(usage(format!("mod: unexpected {s}; {USAGE}"))),
        }
    }
    let found = module_files(prog, st);
    let mut mods: Vec<&kmortem_kernel::program::Module> = prog.modules().iter().collect();
    mods.sort_by_key(|m| m.addr);
    let w = mods.iter().map(|m| m.name.len()).max().unwrap_or(4).max(4);
    let mut t = format!(
        "     MODULE       {:<w$}       BASE         SIZE  OBJECT FILE\n",
        "NAME"
    );
    let mut rows = Vec::new();
    for m in mods {
        let f = found.get(&m.name.replace('-', "_"));
        t.push_str(&format!(
            "{:016x}  {:<w$}  {:016x}  {:>5}  {}\n",
            m.addr,
            m.name,
            m.base,
            m.size,
            f.map(|p| p.display().to_string())
                .unwrap_or_else(|| "(not found)".into())
        ));
        rows.push(json!({
            "name": m.name,
            "addr": format!("{:#x}", m.addr),
            "base": format!("{:#x}", m.base),
            "size": m.size,
            "regions": m.regions,
            "symbols": m.symbols.len(),
            "debuginfo": f.map(|p| p.display().to_string()),
        }));
    }
    Ok(Output {
        text: t,
        json: Value::Array(rows),
    })
}

/// Module name -> `.ko` with debug info: `mod -s` files, `mod -S`/`--modules`
/// directories, then kmortem-symbols' usual places for the release (under the vmlinux's
/// debug root and `/`).
fn module_files(prog: &Program, st: &State) -> HashMap<String, PathBuf> {
    let mut roots = Vec::new();
    if let Some(v) = &prog.vmlinux {
        // ROOT/usr/lib/debug/boot/vmlinux-REL: ROOT is a debug root.
        let mut p = v.path.as_path();
        for _ in 0..5 {
            match p.parent() {
                Some(q) => p = q,
                None => break,
            }
        }
        if v.path.to_string_lossy().contains("usr/lib/debug/boot/") {
            roots.push(p.to_path_buf());
        }
    }
    let rel = prog.vmcoreinfo.osrelease.clone();
    let mut dirs = st.module_dirs.clone();
    dirs.extend(kmortem_symbols::locate::module_dirs(
        rel.as_deref(),
        &roots,
        true,
    ));
    let mut idx = HashMap::new();
    for d in &dirs {
        kmortem_symbols::locate::index_modules(d, &mut idx, 0);
    }
    // a file counts as debug info only when it has DWARF (opened for loaded modules only)
    let loaded: std::collections::HashSet<String> = prog
        .modules()
        .iter()
        .map(|m| m.name.replace('-', "_"))
        .collect();
    idx.retain(|n, _| loaded.contains(n));
    idx.retain(|_, p| {
        kmortem_symbols::Binary::open(p)
            .map(|b| b.has_dwarf())
            .unwrap_or(false)
    });
    for (n, p) in &st.module_files {
        idx.insert(n.clone(), p.clone());
    }
    // A file of another build is named and left out, never used quietly.
    idx.retain(|n, p| match prog.module_file_mismatch(n, p) {
        Some(why) => {
            prog.warnings.push(
                kmortem_kernel::warnings::Warning::new(
                    kmortem_kernel::warnings::Kind::ModuleMismatch,
                    why,
                )
                .what(format!("module {n}")),
            );
            false
        }
        None => true,
    });
    idx
}
