//! Kernel source paths as logs print them.

/// Lexical cleaning of a path, as Go's `filepath.Clean` does it (syzkaller cleans the guilty
/// file this way): `arch/x86/kvm/../../../virt/kvm/eventfd.c` -> `virt/kvm/eventfd.c`, `./a//b`
/// -> `a/b`; a relative path keeps the `..` it cannot resolve, the empty path is `.`.
pub fn clean_path(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::clean_path;

    #[test]
    fn go_clean() {
        assert_eq!(
            clean_path("arch/x86/kvm/../../../virt/kvm/eventfd.c"),
            "virt/kvm/eventfd.c"
        );
        assert_eq!(clean_path("./a//b/"), "a/b");
        assert_eq!(clean_path("../x.c"), "../x.c");
        assert_eq!(clean_path("/../x.c"), "/x.c");
        assert_eq!(clean_path(""), ".");
    }
}
