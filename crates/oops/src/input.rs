//! Line-level decoding of logs as they really arrive: console stamps, caller ids, syslog and
//! journal prefixes, `/dev/kmsg` records and extended netconsole headers.
//!
//! Everything here is a pure function over one line; no allocation unless text is unescaped.

/// A `/dev/kmsg` record header, which extended netconsole shares:
/// `<pri>,<seq>,<ts_usec>,<flag>[,caller=T123][,ncfrag=<off>/<len>][,...];text`.
///
/// Folklore: the prefix is `<level>` in netconsole but `<facility*8+level>` in /dev/kmsg
/// (`printk.c: info_print_ext_header()`); we keep the raw number as `pri` and derive `level`.
/// Unknown comma fields are ignored, as the kernel documents (Documentation/ABI/testing/dev-kmsg).
/// Pinned by `input::tests::kmsg_*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord<'a> {
    pub pri: u32,
    pub seq: u64,
    pub ts_usec: u64,
    /// `c` flag: continuation of the previous record (old kernels), `-` otherwise.
    pub cont: bool,
    /// `caller=T123` / `caller=C1`.
    pub caller: Option<&'a str>,
    /// `ncfrag=<offset>/<total>` of a fragmented extended-netconsole message.
    pub ncfrag: Option<(u32, u32)>,
    /// Kernel release prepended by netconsole's `r` option (first comma field, before the level).
    pub release: Option<&'a str>,
    /// The message text after `;`, still escaped (`\xNN`).
    pub text: &'a [u8],
}

impl KmsgRecord<'_> {
    pub fn level(&self) -> u32 {
        self.pri & 7
    }
    pub fn facility(&self) -> u32 {
        self.pri >> 3
    }
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// Parse a `/dev/kmsg` or extended-netconsole header line. Returns `None` for anything else.
pub fn parse_kmsg(line: &[u8]) -> Option<KmsgRecord<'_>> {
    let semi = memchr::memchr(b';', line)?;
    let head = std::str::from_utf8(&line[..semi]).ok()?;
    let text = &line[semi + 1..];
    let mut fields = head.split(',');
    let mut first = fields.next()?;
    let mut release = None;
    // netconsole `r` option: "6.1.0-53-cloud-amd64,6,1234,5678,-;text"
    if parse_u64(first.as_bytes()).is_none() {
        if first.is_empty() || first.len() > 64 || first.contains(|c: char| c.is_whitespace()) {
            return None;
        }
        release = Some(first);
        first = fields.next()?;
    }
    let pri = u32::try_from(parse_u64(first.as_bytes())?).ok()?;
    let seq = parse_u64(fields.next()?.as_bytes())?;
    let ts_usec = parse_u64(fields.next()?.as_bytes())?;
    let flag = fields.next()?;
    let cont = match flag {
        "-" => false,
        "c" => true,
        // Some kernels printed other flag letters; tolerate any single char.
        f if f.len() == 1 => false,
        _ => return None,
    };
    let mut caller = None;
    let mut ncfrag = None;
    for f in fields {
        if let Some(c) = f.strip_prefix("caller=") {
            caller = Some(c);
        } else if let Some(frag) = f.strip_prefix("ncfrag=") {
            let (off, total) = frag.split_once('/')?;
            let off = u32::try_from(parse_u64(off.as_bytes())?).ok()?;
            let total = u32::try_from(parse_u64(total.as_bytes())?).ok()?;
            ncfrag = Some((off, total));
        }
    }
    Some(KmsgRecord {
        pri,
        seq,
        ts_usec,
        cont,
        caller,
        ncfrag,
        release,
        text,
    })
}

/// Undo `/dev/kmsg` escaping: `\xNN` becomes the byte NN. Other backslashes are kept.
pub fn unescape_kmsg(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'\\' && text.len() >= i + 4 && text[i + 1] == b'x' {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(text[i + 2]), hex(text[i + 3])) {
                out.push((h * 16 + l) as u8);
                i += 4;
                continue;
            }
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmsg_basic() {
        let r = parse_kmsg(b"6,1234,5678901,-;hello world").unwrap();
        assert_eq!((r.pri, r.seq, r.ts_usec, r.cont), (6, 1234, 5678901, false));
        assert_eq!(r.text, b"hello world");
        assert_eq!(r.level(), 6);
    }

    #[test]
    fn kmsg_caller_and_frag() {
        let r = parse_kmsg(b"4,77,100,-,caller=T42,ncfrag=0/1500;abc").unwrap();
        assert_eq!(r.caller, Some("T42"));
        assert_eq!(r.ncfrag, Some((0, 1500)));
    }

    #[test]
    fn kmsg_release_prefix() {
        let r = parse_kmsg(b"6.1.0-53-cloud-amd64,4,77,100,c;x").unwrap();
        assert_eq!(r.release, Some("6.1.0-53-cloud-amd64"));
        assert!(r.cont);
        assert_eq!(r.pri, 4);
    }

    #[test]
    fn kmsg_rejects_plain_lines() {
        assert!(parse_kmsg(b"[  12.345678] BUG: foo; bar").is_none());
        assert!(parse_kmsg(b"no semicolon").is_none());
        assert!(parse_kmsg(b"a b,1,2,-;x").is_none());
    }

    #[test]
    fn kmsg_unescape() {
        assert_eq!(unescape_kmsg(b"a\\x0ab\\x5c\\xZZ"), b"a\nb\\\\xZZ");
    }
}
