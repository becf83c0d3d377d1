//! The `Code:` line, and the architecture its shape tells.

use crate::report::Code;
use serde::{Deserialize, Serialize};

/// The instruction set of a `Code:` line (and of the disassembler that reads it). Serialised in
/// snake_case: `x86_64`, `arm64`, `unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// Bytes (`48 89 e5 <0f> 0b`).
    X86_64,
    /// 4-byte words (`d503233f (b9400000)`); arm32's ARM-mode words look the same.
    Arm64,
    /// Another shape (arm32 Thumb's 2-byte halfwords).
    #[default]
    Unknown,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
            Arch::Unknown => "unknown",
        }
    }

    /// `x86_64`/`x86-64`/`amd64`, `arm64`/`aarch64`; `None` for anything else.
    pub fn from_name(s: &str) -> Option<Arch> {
        match s {
            "x86_64" | "x86-64" | "amd64" => Some(Arch::X86_64),
            "arm64" | "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `code.arch == "x86_64"` keeps reading as it did when the field was a string.
impl PartialEq<&str> for Arch {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// `Code: 48 89 e5 <0f> 0b ...` (x86) or `Code: d503233f a9bf7bfd (b9400000)` (arm64/arm32
/// words), with or without the `Code:` itself.
///
/// Folklore: x86 `show_opcodes()` brackets the byte at RIP with `<..>`, or with `(..)` when RIP
/// is only a guess (prologue_guess); arm64 `dump_kernel_instr()` prints 4-byte words with the
/// faulting one in `(..)` (not a guess there); arm32 Thumb prints 2-byte halfwords. All tokens
/// have one width and at most one is marked; `Unable to access opcode bytes at ...` and
/// `Bad RIP value.` are no code. Pinned by `line::code::tests::code_*`.
pub fn parse_code(text: &str) -> Option<Code> {
    let t = text.trim();
    let raw = t.strip_prefix("Code:").map_or(t, str::trim);
    let mut code = Code {
        raw: raw.to_string(),
        ..Code::default()
    };
    let mut width = 0;
    let mut guessed = false;
    for tok in raw.split_ascii_whitespace() {
        let (inner, mark, paren) =
            if let Some(x) = tok.strip_prefix('<').and_then(|x| x.strip_suffix('>')) {
                (x, true, false)
            } else if let Some(x) = tok.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
                (x, true, true)
            } else {
                (tok, false, false)
            };
        if !matches!(inner.len(), 2 | 4 | 8) || !inner.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        if width != 0 && inner.len() != width {
            return None;
        }
        width = inner.len();
        if mark {
            if code.trap_index.is_some() {
                return None;
            }
            code.trap_index = Some(code.bytes.len());
            guessed = paren;
        }
        let v = u32::from_str_radix(inner, 16).ok()?;
        code.bytes
            .extend_from_slice(&v.to_le_bytes()[..inner.len() / 2]);
    }
    code.arch = match width {
        2 => Arch::X86_64,
        8 => Arch::Arm64,
        4 => Arch::Unknown,
        _ => return None,
    };
    code.trap_guessed = guessed && code.arch == Arch::X86_64;
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
        assert_eq!(c.arch, Arch::X86_64);
        assert_eq!(c.arch, "x86_64");
        let c = parse_code("Code: 0f 05 (48) 3d").unwrap();
        assert!(c.trap_guessed);
        let c = parse_code("d503233f (b9400000)").unwrap();
        assert_eq!(
            c.bytes,
            vec![0x3f, 0x23, 0x03, 0xd5, 0x00, 0x00, 0x40, 0xb9]
        );
        assert_eq!((c.trap_index, c.trap_guessed), (Some(4), false));
        assert_eq!(c.arch, Arch::Arm64);
        let c = parse_code("4770 (e7fe)").unwrap();
        assert_eq!((c.arch, c.bytes.len()), (Arch::Unknown, 4));
        assert!(parse_code(" Bad RIP value.").is_none());
        assert!(parse_code("Unable to access opcode bytes at 0xffffffffc035cfdb.").is_none());
        assert!(parse_code("<48> <3d>").is_none());
        assert!(parse_code("48 d503201f").is_none());
        assert!(parse_code("").is_none());
    }
}
