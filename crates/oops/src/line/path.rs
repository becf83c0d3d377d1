//! Kernel source paths as logs print them.

/// `arch/x86/kvm/../../../virt/kvm/eventfd.c` -> `virt/kvm/eventfd.c`.
pub fn normalize_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "." | "" => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}
