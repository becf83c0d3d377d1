//! Finding debug files from a kernel release string, through the usual layouts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// vmlinux candidates for `release`, best first, under each root (`/` and every `--debug-dir`).
/// A `--debug-dir` may also be a directory holding `vmlinux-REL` or `vmlinux` directly.
pub fn vmlinux_candidates(
    release: Option<&str>,
    debug_dirs: &[PathBuf],
    system: bool,
) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let roots = search_roots(debug_dirs, system);
    for root in &roots {
        if let Some(rel) = release {
            for p in [
                format!("usr/lib/debug/boot/vmlinux-{rel}"),
                format!("usr/lib/debug/lib/modules/{rel}/vmlinux"),
                format!("lib/modules/{rel}/build/vmlinux"),
                format!("boot/vmlinux-{rel}"),
                format!("usr/lib/debug/vmlinux-{rel}"),
                format!("vmlinux-{rel}"),
                format!("boot/vmlinux-{rel}.debug"),
            ] {
                out.push(root.join(p));
            }
        }
        out.push(root.join("vmlinux"));
    }
    out
}

/// Directories holding module `.ko` files for `release`.
pub fn module_dirs(release: Option<&str>, debug_dirs: &[PathBuf], system: bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let roots = search_roots(debug_dirs, system);
    for root in &roots {
        if let Some(rel) = release {
            out.push(root.join(format!("usr/lib/debug/lib/modules/{rel}")));
            out.push(root.join(format!("lib/modules/{rel}")));
        }
    }
    out.retain(|d| d.is_dir());
    out
}

/// `System.map` candidates.
pub fn map_candidates(release: Option<&str>, debug_dirs: &[PathBuf], system: bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let roots = search_roots(debug_dirs, system);
    for root in &roots {
        if let Some(rel) = release {
            out.push(root.join(format!("boot/System.map-{rel}")));
            out.push(root.join(format!("usr/lib/debug/boot/System.map-{rel}")));
            out.push(root.join(format!("lib/modules/{rel}/build/System.map")));
        }
        out.push(root.join("System.map"));
    }
    out
}

/// The module name of a module file: `kmlab.ko`, `kmlab.ko.debug` (Fedora's debuginfo) and
/// `kmlab.ko.xz` (a `CONFIG_MODULE_COMPRESS_XZ` image, as Debian's 6.12 installs them) are
/// `kmlab`; `-` is `_` as in the kernel.
pub fn module_file_name(file: &str) -> Option<String> {
    let stem = file
        .strip_suffix(".ko")
        .or_else(|| file.strip_suffix(".ko.debug"))
        .or_else(|| file.strip_suffix(".ko.xz"))?;
    (!stem.is_empty()).then(|| stem.replace('-', "_"))
}

/// Recursively maps module names (`-` as `_`) to module files (`.ko`, `.ko.debug`, `.ko.xz`).
/// The first found wins, so callers list debug directories before stripped ones; inside one
/// directory tree an uncompressed `.ko` wins over a `.ko.xz` of the same module.
pub fn index_modules(dir: &Path, idx: &mut HashMap<String, PathBuf>, depth: usize) {
    let mut mine = std::collections::HashSet::new();
    index_modules_in(dir, idx, depth, &mut mine);
}

fn index_modules_in(
    dir: &Path,
    idx: &mut HashMap<String, PathBuf>,
    depth: usize,
    mine: &mut std::collections::HashSet<String>,
) {
    if depth > 8 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut subdirs = Vec::new();
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            // `build`/`source` are symlinks into the headers tree: no modules there.
            subdirs.push(p);
        } else if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
            let Some(module) = module_file_name(name) else {
                continue;
            };
            let compressed = name.ends_with(".xz");
            match idx.get(&module) {
                None => {
                    mine.insert(module.clone());
                    idx.insert(module, p);
                }
                Some(old)
                    if !compressed
                        && mine.contains(&module)
                        && old.extension().is_some_and(|e| e == "xz") =>
                {
                    idx.insert(module, p);
                }
                Some(_) => {}
            }
        }
    }
    for s in subdirs {
        index_modules_in(&s, idx, depth + 1, mine);
    }
}

/// The Debian package that carries debug info for a release (`linux-image-REL-dbg`).
pub fn debian_dbg_package(release: &str) -> String {
    format!("linux-image-{release}-dbg")
}

/// The roots searched for debug files: each `--debug-dir`, then `/` when system paths are allowed.
fn search_roots(debug_dirs: &[PathBuf], system: bool) -> Vec<PathBuf> {
    let mut roots = debug_dirs.to_vec();
    if system {
        roots.push(PathBuf::from("/"));
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn layouts() {
        // Any release string: the layouts only join it.
        let rel = "9.9.0-1-cloud-amd64";
        let c = vmlinux_candidates(Some(rel), &[PathBuf::from("/x")], true);
        assert_eq!(
            c[0],
            PathBuf::from(format!("/x/usr/lib/debug/boot/vmlinux-{rel}"))
        );
        assert!(c.contains(&PathBuf::from(format!("/lib/modules/{rel}/build/vmlinux"))));
        assert_eq!(debian_dbg_package(rel), format!("linux-image-{rel}-dbg"));
    }

    #[test]
    fn module_file_names() {
        assert_eq!(module_file_name("kmlab.ko").as_deref(), Some("kmlab"));
        assert_eq!(
            module_file_name("qemu_fw_cfg.ko.xz").as_deref(),
            Some("qemu_fw_cfg")
        );
        assert_eq!(
            module_file_name("nf-nat.ko.debug").as_deref(),
            Some("nf_nat")
        );
        assert_eq!(module_file_name("kmlab.ko.gz"), None);
        assert_eq!(module_file_name(".ko"), None);
        assert_eq!(module_file_name("kmlab.c"), None);
    }

    #[test]
    fn uncompressed_module_wins_in_one_tree_first_tree_wins_across() {
        let d = std::env::temp_dir().join(format!("kmortem-locate-{}", std::process::id()));
        let (a, b) = (d.join("a/kernel"), d.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        for f in [
            a.join("x.ko.xz"),
            d.join("a/x.ko"),
            a.join("y.ko.xz"),
            b.join("y.ko"),
        ] {
            std::fs::write(f, b"").unwrap();
        }
        let mut idx = HashMap::new();
        index_modules(&d.join("a"), &mut idx, 0);
        index_modules(&b, &mut idx, 0);
        assert_eq!(idx["x"], d.join("a/x.ko"));
        assert_eq!(idx["y"], a.join("y.ko.xz"));
        let _ = std::fs::remove_dir_all(&d);
    }
}
