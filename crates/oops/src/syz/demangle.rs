//! Frame names as syzkaller reads them: `demangle.Filter(name, demangle.NoParams)`.
//!
//! Folklore: Rust code in the kernel (binder, ashmem; 6.12+ Android kernels) prints v0-mangled
//! frames, `_RNvMs3_NtCshgDM7dBCdno_11rust_binder7processNtB5_7Process10update_ref+0x17e5/0x1860`;
//! syzkaller titles them demangled without crate hashes, `<rust_binder::process::Process>::update_ref`.
//! C++ (`_Z8fakeNameiii`) comes out without its parameters. A name that does not demangle is
//! kept as printed. Pinned by `tests::rust_and_cpp` and the corpus' Rust panics.

/// The demangled name, or the name itself.
pub(crate) fn filter(name: &str) -> String {
    if name.starts_with("_R") || name.starts_with("_ZN") {
        if let Ok(d) = rustc_demangle::try_demangle(name) {
            // `{:#}` leaves the crate disambiguators and legacy hashes out.
            return format!("{d:#}");
        }
    }
    if let Some(rest) = name.strip_prefix("_Z") {
        if let Some(n) = itanium_name(rest) {
            return n;
        }
    }
    name.to_string()
}

/// The qualified name of an Itanium-mangled function, parameters left out: `8fakeName` or
/// `N3foo3barE`. `None` for anything else.
fn itanium_name(s: &str) -> Option<String> {
    let (nested, mut rest) = match s.strip_prefix('N') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let mut parts: Vec<&str> = Vec::new();
    loop {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            break;
        }
        let n: usize = rest[..digits].parse().ok()?;
        let name = rest.get(digits..digits + n)?;
        parts.push(name);
        rest = &rest[digits + n..];
        if !nested {
            break;
        }
    }
    if parts.is_empty() || (nested && !rest.starts_with('E')) {
        return None;
    }
    Some(parts.join("::"))
}

#[cfg(test)]
mod tests {
    use super::filter;

    #[test]
    fn rust_and_cpp() {
        assert_eq!(
            filter("_RNvMs3_NtCshgDM7dBCdno_11rust_binder7processNtB5_7Process10update_ref"),
            "<rust_binder::process::Process>::update_ref"
        );
        assert_eq!(
            filter("_RNvCscSpY9Juk0HT_7___rustc17rust_begin_unwind"),
            "__rustc::rust_begin_unwind"
        );
        assert_eq!(filter("_Z8fakeNameiii"), "fakeName");
        assert_eq!(filter("_ZN3foo3barEv"), "foo::bar");
        assert_eq!(filter("_Z"), "_Z");
        assert_eq!(filter("_Z99x"), "_Z99x");
        assert_eq!(filter("ip6_fragment"), "ip6_fragment");
    }
}
