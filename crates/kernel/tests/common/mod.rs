//! What the kernel crate's lab tests share: where the crash lab is, and its vmlinux.
#![allow(dead_code)]

use std::path::PathBuf;

/// The lab's kernel (lab/README.md: Debian's 6.1 cloud kernel).
pub const RELEASE: &str = "6.1.0-56-cloud-amd64";

/// The lab directory: `KMORTEM_LAB_DIR` (or the older `KMORTEM_LAB`), else the default cache.
/// Fails with a clear message when the lab has not been built.
pub fn lab() -> PathBuf {
    let d = std::env::var_os("KMORTEM_LAB_DIR")
        .or_else(|| std::env::var_os("KMORTEM_LAB"))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/kmortem/lab")
                .join(RELEASE)
        });
    assert!(
        d.join("root").is_dir(),
        "the crash lab is missing at {} (build it with lab/build; CI builds it before the tests)",
        d.display()
    );
    d
}

/// The lab kernel's vmlinux with DWARF.
pub fn vmlinux() -> PathBuf {
    let v = lab().join(format!("root/usr/lib/debug/boot/vmlinux-{RELEASE}"));
    assert!(v.is_file(), "vmlinux missing at {}", v.display());
    v
}
