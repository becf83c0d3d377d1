//! Parser of the oops `Code:` line, for logs the report parser did not take apart (and fuzzed).
//! x86: `Code: 48 89 56 08 <48> 8b ...` (bytes; `<..>` marks the trapping byte, `(..)` a guessed
//! IP). arm64: `Code: d503201f a9bf7bfd (b9401000) ...` (4-byte words, the faulting one in `(..)`).

use crate::Arch;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeLine {
    pub arch: Arch,
    /// Bytes in memory order (arm64 words expanded little-endian).
    pub bytes: Vec<u8>,
    pub trap_index: Option<usize>,
    pub trap_guessed: bool,
}

/// Parses the text after `Code:`. Returns `None` for `Unable to access opcode bytes at ...` and
/// for anything that is not a byte or word list.
pub fn parse(text: &str) -> Option<CodeLine> {
    let text = text.trim();
    let text = text.strip_prefix("Code:").map(str::trim).unwrap_or(text);
    let mut bytes = Vec::new();
    let mut trap_index = None;
    let mut trap_guessed = false;
    let mut arch = None;
    for tok in text.split_ascii_whitespace() {
        let (inner, marked, guessed) =
            if let Some(t) = tok.strip_prefix('<').and_then(|t| t.strip_suffix('>')) {
                (t, true, false)
            } else if let Some(t) = tok.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
                (t, true, true)
            } else {
                (tok, false, false)
            };
        if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let this = match inner.len() {
            2 => Arch::X86_64,
            8 => Arch::Arm64,
            _ => return None,
        };
        if *arch.get_or_insert(this) != this {
            return None;
        }
        if marked {
            if trap_index.is_some() {
                return None;
            }
            trap_index = Some(bytes.len());
            trap_guessed = guessed;
        }
        match this {
            Arch::X86_64 => bytes.push(u8::from_str_radix(inner, 16).ok()?),
            Arch::Arm64 => {
                bytes.extend_from_slice(&u32::from_str_radix(inner, 16).ok()?.to_le_bytes())
            }
        }
    }
    Some(CodeLine {
        arch: arch?,
        bytes,
        trap_index,
        trap_guessed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn x86_and_arm64() {
        let c = parse("Code: 0f 05 <48> 3d 00").unwrap();
        assert_eq!(
            (c.arch, c.bytes.len(), c.trap_index, c.trap_guessed),
            (Arch::X86_64, 5, Some(2), false)
        );
        let c = parse("d503201f (b9401000)").unwrap();
        assert_eq!(
            (c.arch, c.trap_index, c.trap_guessed),
            (Arch::Arm64, Some(4), true)
        );
        assert_eq!(&c.bytes[4..], &[0x00, 0x10, 0x40, 0xb9]);
        assert_eq!(
            parse("Unable to access opcode bytes at 0xffffffffc035cfdb."),
            None
        );
        assert_eq!(parse("<48> <3d>"), None);
        assert_eq!(parse("48 d503201f"), None);
        assert_eq!(parse(""), None);
    }
}
