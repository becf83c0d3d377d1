//! The `Code:` line.

use crate::report::Code;

/// `Code: 48 89 e5 <0f> 0b ...` (x86) or `Code: d503233f a9bf7bfd (b9400000)` (arm64/arm32 words).
///
/// Folklore: x86 `show_opcodes()` brackets the byte at RIP with `<..>`, or with `(..)` when RIP
/// is only a guess (prologue_guess); arm64 `dump_kernel_instr()` prints 4-byte words with the
/// faulting one in `(..)`. Pinned by `line::code::tests::code_*`.
pub fn parse_code(rest: &str) -> Option<Code> {
    let raw = rest.trim();
    let mut code = Code {
        raw: raw.to_string(),
        ..Code::default()
    };
    let toks: Vec<&str> = raw.split_whitespace().collect();
    if toks.is_empty() {
        return None;
    }
    let word_len = toks
        .iter()
        .map(|t| {
            t.trim_matches(|c| c == '<' || c == '>' || c == '(' || c == ')')
                .len()
        })
        .max()
        .unwrap_or(0);
    for tok in &toks {
        let (inner, mark, guessed) =
            if let Some(x) = tok.strip_prefix('<').and_then(|x| x.strip_suffix('>')) {
                (x, true, false)
            } else if let Some(x) = tok.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
                (x, true, true)
            } else {
                (*tok, false, false)
            };
        if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_hexdigit()) {
            // "Code: Bad RIP value." and friends.
            return None;
        }
        if mark {
            code.trap_index = Some(code.bytes.len());
            code.trap_guessed = guessed && word_len <= 2;
        }
        if inner.len() <= 2 {
            code.bytes.push(u8::from_str_radix(inner, 16).ok()?);
        } else if inner.len() == 8 || inner.len() == 4 {
            let w = u32::from_str_radix(inner, 16).ok()?;
            let n = inner.len() / 2;
            code.bytes.extend_from_slice(&w.to_le_bytes()[..n]);
        } else {
            return None;
        }
    }
    code.arch = if word_len <= 2 {
        "x86_64".into()
    } else if word_len == 8 {
        "arm64".into()
    } else {
        "unknown".into()
    };
    Some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_x86_and_arm64() {
        let c = parse_code("48 89 e5 <0f> 0b 90").unwrap();
        assert_eq!(c.bytes, vec![0x48, 0x89, 0xe5, 0x0f, 0x0b, 0x90]);
        assert_eq!(c.trap_index, Some(3));
        assert_eq!(c.arch, "x86_64");
        let c = parse_code("d503233f (b9400000)").unwrap();
        assert_eq!(
            c.bytes,
            vec![0x3f, 0x23, 0x03, 0xd5, 0x00, 0x00, 0x40, 0xb9]
        );
        assert_eq!(c.trap_index, Some(4));
        assert_eq!(c.arch, "arm64");
        assert!(parse_code(" Bad RIP value.").is_none());
    }
}
