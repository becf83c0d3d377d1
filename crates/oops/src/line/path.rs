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

/// The top-level directories of a kernel tree, where a build's absolute path is cut.
const TOP_DIRS: &[&str] = &[
    "arch", "block", "certs", "crypto", "drivers", "fs", "include", "init", "io_uring", "ipc",
    "kernel", "lib", "mm", "net", "rust", "samples", "scripts", "security", "sound", "tools",
    "usr", "virt",
];

/// A kernel source path for display: relative to the tree. DWARF of assembly units and
/// `decode_stacktrace.sh` output can carry the build's absolute path
/// (`/build/reproducible-path/linux-6.1.192/arch/x86/entry/entry_64.S`): cut at the first
/// top-level kernel directory, when what precedes it looks like a tree root (`linux*`, `build`,
/// `src`). Other paths are kept.
pub fn kernel_relative(path: &str) -> &str {
    if !path.starts_with('/') {
        return path;
    }
    let best = TOP_DIRS
        .iter()
        .filter_map(|t| path.find(&format!("/{t}/")))
        .min();
    match best {
        Some(i)
            if path[..i]
                .rsplit('/')
                .next()
                .is_some_and(|d| d.starts_with("linux") || d == "build" || d == "src") =>
        {
            &path[i + 1..]
        }
        _ => path,
    }
}

/// A source path named in text (a frame's `(../block/kyber-iosched.c:573:2)`, prose), as a
/// tree-relative path: quotes and leading `../` / `./` dropped, an absolute build path cut at the
/// first top-level kernel directory; `None` unless it ends in `.c`, `.h`, `.S` or `.rs` and is
/// made of path characters.
pub fn source_path(p: &str) -> Option<String> {
    let mut p = p
        .trim()
        .trim_matches(|c: char| c == '"' || c == '\'' || c == '`' || c == ',');
    while let Some(r) = p.strip_prefix("../").or_else(|| p.strip_prefix("./")) {
        p = r;
    }
    let ok_ext = [".c", ".h", ".S", ".rs"].iter().any(|e| p.ends_with(e));
    if !ok_ext || p.len() < 3 || p.len() > 200 {
        return None;
    }
    if !p
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/_-.+,".contains(&b))
    {
        return None;
    }
    if p.starts_with('/') {
        let i = TOP_DIRS
            .iter()
            .filter_map(|t| p.find(&format!("/{t}/")))
            .min()?;
        return Some(p[i + 1..].to_string());
    }
    Some(p.to_string())
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

    #[test]
    fn display_and_source_paths() {
        use super::{kernel_relative, source_path};
        assert_eq!(
            kernel_relative("/build/reproducible-path/linux-6.1.192/arch/x86/entry/entry_64.S"),
            "arch/x86/entry/entry_64.S"
        );
        assert_eq!(
            kernel_relative("/home/me/kmlab/kmlab.c"),
            "/home/me/kmlab/kmlab.c"
        );
        assert_eq!(kernel_relative("fs/read_write.c"), "fs/read_write.c");
        assert_eq!(
            source_path("../block/kyber-iosched.c").as_deref(),
            Some("block/kyber-iosched.c")
        );
        assert_eq!(
            source_path("/tmp/x/linux/net/core/dev.c").as_deref(),
            Some("net/core/dev.c")
        );
        assert_eq!(source_path("/tmp/x.c"), None);
        assert_eq!(source_path("README"), None);
    }
}
