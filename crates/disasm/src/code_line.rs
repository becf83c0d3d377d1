//! The oops `Code:` line as this crate decodes it. The syntax is the report parser's
//! ([`kmortem_oops::line::parse_code`]): x86 bytes with `<..>` (or `(..)`, a guessed IP) on the
//! trapping one, arm64 4-byte words with the faulting one in `(..)`.

use crate::Arch;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeLine {
    pub arch: Arch,
    /// Bytes in memory order (arm64 words expanded little-endian).
    pub bytes: Vec<u8>,
    pub trap_index: Option<usize>,
    pub trap_guessed: bool,
}

/// Parses a `Code:` line (with or without `Code:`). `None` for `Unable to access opcode bytes
/// at ...`, for anything that is not a byte or word list, and for shapes this crate does not
/// decode.
pub fn parse(text: &str) -> Option<CodeLine> {
    let c = kmortem_oops::line::parse_code(text)?;
    (c.arch != Arch::Unknown).then_some(CodeLine {
        arch: c.arch,
        bytes: c.bytes,
        trap_index: c.trap_index,
        trap_guessed: c.trap_guessed,
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
            (Arch::Arm64, Some(4), false)
        );
        assert_eq!(&c.bytes[4..], &[0x00, 0x10, 0x40, 0xb9]);
        assert_eq!(
            parse("Unable to access opcode bytes at 0xffffffffc035cfdb."),
            None
        );
        assert_eq!(parse("<48> <3d>"), None);
        assert_eq!(parse("48 d503201f"), None);
        assert_eq!(parse("4770 (e7fe)"), None);
        assert_eq!(parse(""), None);
    }
}
