//! syzkaller crash titles as search keys: the titles a fix message quotes (`syzbot reported
//! "KASAN: use-after-free Read in nfc_llcp_put_ssap"`, a quoted report's header line), and the
//! normal form both sides are compared in.
//!
//! Folklore: syzbot appends ` (2)`, ` (3)` to a title that was seen again after an earlier bug with
//! the same title was closed; fix messages quote either form. `BUG: KASAN:` (the console header)
//! and `KASAN:` (syzkaller's title) are the same crash. Both are dropped by [`normalize`]. Pinned
//! by `tests::normal_forms`.

/// Title starts syzkaller uses (`pkg/report/linux.go`), followed somewhere by ` in FUNCTION`.
const STARTS: &[&str] = &[
    "KASAN: ",
    "KMSAN: ",
    "KCSAN: ",
    "UBSAN: ",
    "KFENCE: ",
    "BUG: ",
    "WARNING: ",
    "WARNING in ",
    "general protection fault in ",
    "kernel BUG in ",
    "INFO: ",
    "possible deadlock in ",
    "memory leak in ",
    "inconsistent lock state in ",
    "divide error in ",
    "unregister_netdevice: ",
    "suspicious RCU usage in ",
    "kernel panic: ",
    "panic: ",
];

/// The normal form of a crash title: lower case, one space, no syzbot ` (N)` suffix, no `BUG: `
/// before a sanitizer name, no trailing punctuation.
pub fn normalize(title: &str) -> String {
    let mut t: String = title
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase();
    loop {
        let before = t.len();
        let trimmed = t
            .trim_end_matches(['.', ',', ';', ':', '"', '\'', '`', ')', ' '])
            .to_string();
        // ` (2)`: a parenthesized number at the end.
        if let Some(p) = t.rfind(" (") {
            let inner = &t[p + 2..];
            let inner = inner.strip_suffix(')').unwrap_or(inner);
            if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
                t.truncate(p);
                continue;
            }
        }
        t = trimmed;
        if t.len() == before {
            break;
        }
    }
    for pre in [
        "bug: kasan: ",
        "bug: kfence: ",
        "bug: kmsan: ",
        "bug: kcsan: ",
    ] {
        if let Some(rest) = t.strip_prefix(pre) {
            t = format!("{}{rest}", &pre[5..]);
        }
    }
    t.trim_start_matches(['"', '\'', '`', ' ']).to_string()
}

/// The function a title names: the identifier after its last ` in ` (`KASAN: use-after-free Read
/// in nfc_llcp_put_ssap` -> `nfc_llcp_put_ssap`).
pub fn function_of(title: &str) -> Option<String> {
    let p = title.rfind(" in ")?;
    let rest = &title[p + 4..];
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let ok = name.len() >= 3
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.contains(|c: char| c == '_' || c.is_ascii_lowercase());
    ok.then_some(name)
}

/// Titles quoted in a text, normalized, each naming a function. Linear in the text; never
/// panics (the text is untrusted).
pub fn quoted_titles(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines().take(20_000) {
        if line.len() > 2000 {
            continue;
        }
        for start in STARTS {
            let mut from = 0;
            while let Some(p) = line[from..].find(start) {
                let s = from + p;
                from = s + start.len();
                // At a word start only (`XBUG: ` is not a title).
                if s > 0 && line.as_bytes()[s - 1].is_ascii_alphanumeric() {
                    continue;
                }
                if let Some(t) = title_at(&line[s..]) {
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
                if out.len() >= 16 {
                    return out;
                }
            }
        }
    }
    out
}

/// A title starting at `s`: up to and including the identifier after the first ` in ` within
/// 120 bytes.
fn title_at(s: &str) -> Option<String> {
    let window = &s[..floor_char_boundary(s, 120)];
    let p = window.find(" in ")?;
    let rest = &s[p + 4..];
    let n = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    if n < 3 {
        return None;
    }
    let t = normalize(&s[..p + 4 + n]);
    function_of(&t).map(|_| t)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms() {
        assert_eq!(
            normalize("KASAN: use-after-free Read in nfc_llcp_put_ssap (2)"),
            "kasan: use-after-free read in nfc_llcp_put_ssap"
        );
        assert_eq!(
            normalize("BUG: KASAN: slab-out-of-bounds in  foo."),
            "kasan: slab-out-of-bounds in foo"
        );
        assert_eq!(
            function_of("general protection fault in tcf_action_destroy").as_deref(),
            Some("tcf_action_destroy")
        );
        assert_eq!(function_of("BUG: memory leak"), None);
    }

    #[test]
    fn titles_in_fix_text() {
        let t = quoted_titles(
            "syzbot reported \"KASAN: use-after-free Read in nfc_llcp_put_ssap (2)\" and\n\
             WARNING in ovl_create_real, and BUG: unable to handle kernel NULL pointer dereference in foo_bar+0x10/0x20\n\
             Reported-by: syzbot+abc@syzkaller.appspotmail.com\n",
        );
        assert_eq!(
            t,
            vec![
                "kasan: use-after-free read in nfc_llcp_put_ssap".to_string(),
                "bug: unable to handle kernel null pointer dereference in foo_bar".to_string(),
                "warning in ovl_create_real".to_string(),
            ]
        );
        assert!(quoted_titles("no titles here, WARNING: nothing").is_empty());
        // Multi-byte text near the window edge does not panic.
        let s = format!("BUG: {} in x", "é".repeat(80));
        let _ = quoted_titles(&s);
    }
}
