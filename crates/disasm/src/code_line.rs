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

    /// A 1 MB `Code:` line (a hostile or damaged log; the kernel prints 64 bytes) is parsed
    /// and decoded whole: every byte, the trap where it was marked, and a listing that starts
    /// at byte 0. Decoding it used to be quadratic in the line length (issue 25).
    #[test]
    fn one_megabyte_code_line() {
        let nops = 334_000;
        let mut line = String::from("Code: ");
        line.push_str(&"90 ".repeat(nops));
        line.push_str("<0f> 0b 90 90 90");
        assert!(line.len() >= 1_000_000, "{}", line.len());
        let c = parse(&line).unwrap();
        assert_eq!(c.bytes.len(), nops + 5);
        assert_eq!(c.trap_index, Some(nops));
        let d = crate::decode(
            c.arch,
            &c.bytes,
            c.trap_index,
            Some(0xffffffff81000000),
            &Default::default(),
        );
        assert_eq!(d.skipped, 0);
        assert_eq!(d.all.len(), nops + 4);
        assert_eq!(d.from_trap.len(), 4);
        let trap = d.trap.unwrap();
        assert_eq!((trap.text.as_str(), trap.offset), ("ud2", nops));
        assert_eq!(trap.address, 0xffffffff81000000);
        assert!(d.all[..nops].iter().all(|i| i.text == "nop"));
        // A misaligned start (the second byte of `mov %rdx,0x8(%rsi)`) is skipped.
        let c = parse("Code: 56 08 90 90 <c3>").unwrap();
        let d = crate::decode(c.arch, &c.bytes, c.trap_index, None, &Default::default());
        assert_eq!(d.skipped, 2);
        assert_eq!(d.all[0].text, "nop");
    }
}
