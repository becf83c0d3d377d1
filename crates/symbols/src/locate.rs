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

/// Recursively maps module names (`-` as `_`) to `.ko` paths. The first found wins, so callers
/// list debug directories before stripped ones.
pub fn index_modules(dir: &Path, idx: &mut HashMap<String, PathBuf>, depth: usize) {
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
            if let Some(stem) = name
                .strip_suffix(".ko")
                .or_else(|| name.strip_suffix(".ko.debug"))
            {
                idx.entry(stem.replace('-', "_")).or_insert(p);
            }
        }
    }
    for s in subdirs {
        index_modules(&s, idx, depth + 1);
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
        let c = vmlinux_candidates(Some("6.1.0-56-cloud-amd64"), &[PathBuf::from("/x")], true);
        assert_eq!(
            c[0],
            PathBuf::from("/x/usr/lib/debug/boot/vmlinux-6.1.0-56-cloud-amd64")
        );
        assert!(c.contains(&PathBuf::from(
            "/lib/modules/6.1.0-56-cloud-amd64/build/vmlinux"
        )));
        assert_eq!(
            debian_dbg_package("6.1.0-56-cloud-amd64"),
            "linux-image-6.1.0-56-cloud-amd64-dbg"
        );
    }
}
