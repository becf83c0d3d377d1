//! Line-level decoding of logs as they really arrive: console stamps, caller ids, syslog and
//! journal prefixes, `/dev/kmsg` records and extended netconsole headers.
//!
//! Everything here is a pure function over one line (no allocation unless text is unescaped),
//! except [`Reassembler`], which joins extended-netconsole fragments for the log scanner and
//! for the server's UDP receiver.

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
///
/// Byte-level (no UTF-8 pass over the header, no `str` splitting): it runs on every datagram
/// the server receives and on every line of an open report.
pub fn parse_kmsg(line: &[u8]) -> Option<KmsgRecord<'_>> {
    // Both forms start with a digit: the level, or a release (`6.1.0-...`).
    if !line.first()?.is_ascii_digit() {
        return None;
    }
    let semi = memchr::memchr(b';', line)?;
    let head = &line[..semi];
    let text = &line[semi + 1..];
    let mut fields = head.split(|&b| b == b',');
    let mut first = fields.next()?;
    let mut release = None;
    // netconsole `r` option: "6.1.0-43-cloud-amd64,6,1234,5678,-;text"
    if parse_u64(first).is_none() {
        if first.len() > 64 || first.iter().any(|b| b.is_ascii_whitespace()) {
            return None;
        }
        release = Some(std::str::from_utf8(first).ok()?);
        first = fields.next()?;
    }
    let pri = u32::try_from(parse_u64(first)?).ok()?;
    let seq = parse_u64(fields.next()?)?;
    let ts_usec = parse_u64(fields.next()?)?;
    let cont = match fields.next()? {
        b"-" => false,
        b"c" => true,
        // Some kernels printed other flag letters; tolerate any single char.
        [_] => false,
        _ => return None,
    };
    let mut caller = None;
    let mut ncfrag = None;
    for f in fields {
        if let Some(c) = f.strip_prefix(b"caller=") {
            caller = Some(std::str::from_utf8(c).ok()?);
        } else if let Some(frag) = f.strip_prefix(b"ncfrag=") {
            let slash = memchr::memchr(b'/', frag)?;
            let off = u32::try_from(parse_u64(&frag[..slash])?).ok()?;
            let total = u32::try_from(parse_u64(&frag[slash + 1..])?).ok()?;
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

/// Where [`Normalizer`] is inside a terminal escape sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Esc {
    #[default]
    None,
    /// After ESC.
    Start,
    /// Inside `ESC [ ...` (CSI), before its final byte.
    Csi,
    /// Inside `ESC ] ...` (OSC), before BEL or `ESC \`.
    Osc,
    /// ESC inside an OSC (the start of its `ESC \` terminator).
    OscEnd,
}

/// Raw log bytes as they really arrive, made into plain `\n`-separated text before any line is
/// parsed: CR, LF and CRLF all end a line, NUL bytes are dropped, and terminal escape sequences
/// (ANSI SGR colours of `dmesg --color=always`, any CSI, OSC titles, two-byte escapes) are
/// removed. Streaming: a CRLF or an escape sequence split between two chunks is handled, and
/// nothing is kept between chunks but a few bits of state.
///
/// Folklore: `dmesg --color=always` (util-linux 2.23+) wraps the timestamp, the facility and
/// the subsystem prefix in SGR sequences (`ESC[32m[   1.0]ESC[0m ESC[33mBUG:ESC[0m ...`); serial
/// consoles log CRLF, some terminal capture tools CR alone; a console that reboots writes NUL
/// runs into the capture file (QEMU's serial log after a reset). Pinned by
/// `input::tests::normalize_*` and the CLI's `tests/hostile_input.rs` (the lab's real consoles
/// coloured, NUL-injected and made CR-only).
#[derive(Debug, Clone, Default)]
pub struct Normalizer {
    /// The last byte seen was a CR (turned into `\n`): a `\n` right after it is dropped.
    after_cr: bool,
    esc: Esc,
    /// Bytes of the escape sequence in progress (a sequence longer than [`Self::MAX_ESC`] is
    /// given up on: its bytes so far are dropped and the rest is text again).
    esc_len: usize,
}

impl Normalizer {
    /// Longest escape sequence removed; past it the parameters are taken for text.
    pub const MAX_ESC: usize = 256;

    pub fn new() -> Self {
        Self::default()
    }

    /// Nothing to rewrite in `data` in the current state.
    fn clean_already(&self, data: &[u8]) -> bool {
        self.esc == Esc::None
            && !(self.after_cr && data.first() == Some(&b'\n'))
            && memchr::memchr3(b'\r', 0x1b, 0, data).is_none()
    }

    /// Normalize one chunk: returns `data` itself when it needs no change (the usual case, one
    /// vectorised search), else the rewritten bytes in `buf`.
    pub fn push<'a>(&mut self, data: &'a [u8], buf: &'a mut Vec<u8>) -> &'a [u8] {
        if self.clean_already(data) {
            if !data.is_empty() {
                self.after_cr = false;
            }
            return data;
        }
        buf.clear();
        buf.reserve(data.len());
        // NULs and escape sequences between a CR and its LF do not make two line ends.
        for &b in data {
            match self.esc {
                Esc::None => match b {
                    b'\r' => {
                        buf.push(b'\n');
                        self.after_cr = true;
                    }
                    b'\n' => {
                        if !std::mem::take(&mut self.after_cr) {
                            buf.push(b'\n');
                        }
                    }
                    0 => {}
                    0x1b => {
                        self.esc = Esc::Start;
                        self.esc_len = 1;
                    }
                    _ => {
                        self.after_cr = false;
                        buf.push(b);
                    }
                },
                _ if b == b'\n' || b == b'\r' => {
                    // A line end ends any escape sequence.
                    self.esc = Esc::None;
                    if !(b == b'\n' && self.after_cr) {
                        buf.push(b'\n');
                    }
                    self.after_cr = b == b'\r';
                }
                _ if self.esc_len >= Self::MAX_ESC => {
                    self.esc = Esc::None;
                    self.after_cr = false;
                    buf.push(b);
                }
                Esc::Start => {
                    self.esc_len += 1;
                    self.esc = match b {
                        b'[' => Esc::Csi,
                        b']' => Esc::Osc,
                        // `ESC (B` and the like: one intermediate byte, then the final one.
                        0x20..=0x2f => Esc::Start,
                        0x1b => Esc::Start,
                        _ => Esc::None,
                    };
                }
                Esc::Csi => {
                    self.esc_len += 1;
                    if (0x40..=0x7e).contains(&b) {
                        self.esc = Esc::None;
                    }
                }
                Esc::Osc => {
                    self.esc_len += 1;
                    match b {
                        0x07 => self.esc = Esc::None,
                        0x1b => self.esc = Esc::OscEnd,
                        _ => {}
                    }
                }
                Esc::OscEnd => {
                    self.esc_len += 1;
                    self.esc = if b == b'\\' { Esc::None } else { Esc::Osc };
                }
            }
        }
        buf
    }

    /// Normalize one whole line (no state kept): `None` when it is clean already.
    pub fn line(line: &[u8]) -> Option<Vec<u8>> {
        let mut n = Normalizer::new();
        if n.clean_already(line) {
            return None;
        }
        let mut buf = Vec::new();
        n.push(line, &mut buf);
        Some(buf)
    }
}

/// Terminal-safe text: C0 control characters (but tab and newline), DEL and the C1 controls
/// U+0080..U+009F are written as `\xNN` (C1 as `\u{NN}`), as `dmesg` and crash escape what they
/// print; everything else is kept. Returns the text itself when there is nothing to escape.
///
/// The one place where kmortem's human output is made safe: the CLI writes every human and
/// plain-text printer through it (`kmortem oops`, `decode`, `explain`, `fixes`, `core`, `log`);
/// JSON output is exact (serde escapes control characters on its own).
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char =
        |c: char| (c.is_control() && c != '\n' && c != '\t') || ('\u{80}'..='\u{9f}').contains(&c);
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            let v = c as u32;
            if v < 0x80 {
                out.push_str(&format!("\\x{v:02x}"));
            } else {
                out.push_str(&format!("\\u{{{v:x}}}"));
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Does the start of a file look like a binary (an ELF, a kdump or flattened vmcore, or mostly
/// non-text bytes) rather than a log? Returns what it is, for the message that says so.
///
/// Folklore: ELF vmcores start with `\x7fELF`, diskdump/kdump-compressed ones with `KDUMP   `
/// or `DISKDUMP`, makedumpfile's flattened format with `makedumpfile`; a log may carry a few
/// NULs or invalid UTF-8, but not 10% of bytes below 0x20 that are not whitespace. Pinned by
/// the CLI's `tests/hostile_input.rs::oops_on_a_vmcore`.
pub fn binary_kind(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"\x7fELF") {
        return Some("an ELF file (a vmcore, a vmlinux or a module)");
    }
    if head.starts_with(b"KDUMP   ") || head.starts_with(b"DISKDUMP") {
        return Some("a kdump-compressed vmcore");
    }
    if head.starts_with(b"makedumpfile") {
        return Some("a flattened makedumpfile vmcore");
    }
    if head.is_empty() {
        return None;
    }
    // NUL runs are console noise; count the other control bytes.
    let odd = head
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, 0 | b'\t' | b'\n' | b'\r' | 0x1b | 0x0c))
        .count();
    let nul = head.iter().filter(|&&b| b == 0).count();
    (odd * 10 > head.len() || (nul * 2 > head.len() && odd > 0)).then_some("a binary file")
}

/// Why [`Reassembler::add`] refused a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragReject {
    /// `ncfrag=<off>/<total>` out of range, a total that differs from the message's first
    /// fragment, a message over the size limit, or too many pieces.
    Malformed,
    /// A fragment overlapping bytes already received (a resent or duplicated datagram).
    Duplicate,
}

/// What [`Reassembler::add`] did with a fragment.
#[derive(Debug, PartialEq, Eq)]
pub enum Frag<H> {
    /// The last missing piece arrived: the first fragment's header and the whole message body.
    Complete(H, Vec<u8>),
    /// Stored; more pieces are missing.
    Pending,
    Rejected(FragReject),
}

struct Pending<H> {
    seq: u64,
    stamp: u64,
    header: H,
    buf: Vec<u8>,
    /// Received (offset, length) pieces.
    got: Vec<(u32, u32)>,
    received: usize,
}

/// Joins extended-netconsole fragments (`ncfrag=<off>/<total>`) back into messages, for one
/// sender. Memory is bounded: at most `max_pending` half-assembled messages (the oldest is
/// evicted, see [`Reassembler::take_evicted`]), each at most `max_message` bytes in at most
/// [`Reassembler::MAX_PIECES`] pieces.
///
/// Folklore: netconsole splits an extended message longer than its chunk (1000 bytes since
/// v4.4, commit 1fbb3e4 "netconsole: implement extended console support") into datagrams that
/// repeat the header with `,ncfrag=<byte offset>/<total length>`; the offset counts bytes of the
/// body after `;`. Since v6.x (`send_msg_fragmented`) the split can fall inside the appended
/// ` key=value` dictionary lines too. UDP delivers the pieces in any order, so they are placed
/// by offset and the message completes when every byte has arrived. Pinned by
/// `input::tests::frag_*` and the server's `netconsole::tests::fragments_any_order`.
pub struct Reassembler<H> {
    max_pending: usize,
    max_message: usize,
    pending: Vec<Pending<H>>,
    evicted: usize,
}

impl<H> Reassembler<H> {
    /// Most pieces one message may arrive in (a 16 KiB message is 17 pieces at the kernel's
    /// 1000-byte chunk): a flood of tiny fragments cannot make the overlap check quadratic.
    pub const MAX_PIECES: usize = 128;

    pub fn new(max_pending: usize, max_message: usize) -> Self {
        Reassembler {
            max_pending: max_pending.max(1),
            max_message,
            pending: Vec::new(),
            evicted: 0,
        }
    }

    /// Add the fragment `text` at `off` of a `total`-byte message with sequence number `seq`.
    /// `header` is kept from the message's first arriving fragment; `stamp` is the caller's
    /// clock (any monotonic number) for [`Reassembler::expire`].
    pub fn add(
        &mut self,
        seq: u64,
        off: u32,
        total: u32,
        text: &[u8],
        header: H,
        stamp: u64,
    ) -> Frag<H> {
        let (off, total) = (off as usize, total as usize);
        if total == 0 || total > self.max_message || off >= total || text.len() > total - off {
            return Frag::Rejected(FragReject::Malformed);
        }
        let idx = match self.pending.iter().position(|p| p.seq == seq) {
            Some(i) => i,
            None => {
                if self.pending.len() >= self.max_pending {
                    // Evict the oldest half-assembled message.
                    let oldest = (0..self.pending.len())
                        .min_by_key(|&i| self.pending[i].stamp)
                        .unwrap_or(0);
                    self.pending.swap_remove(oldest);
                    self.evicted += 1;
                }
                self.pending.push(Pending {
                    seq,
                    stamp,
                    header,
                    buf: vec![0; total],
                    got: Vec::new(),
                    received: 0,
                });
                self.pending.len() - 1
            }
        };
        let p = &mut self.pending[idx];
        if p.buf.len() != total {
            return Frag::Rejected(FragReject::Malformed);
        }
        let end = off + text.len();
        if p.got
            .iter()
            .any(|&(o, l)| off < (o + l) as usize && (o as usize) < end)
        {
            return Frag::Rejected(FragReject::Duplicate);
        }
        if p.got.len() >= Self::MAX_PIECES {
            self.pending.swap_remove(idx);
            return Frag::Rejected(FragReject::Malformed);
        }
        p.buf[off..end].copy_from_slice(text);
        p.got.push((off as u32, text.len() as u32));
        p.received += text.len();
        if p.received < total {
            return Frag::Pending;
        }
        let p = self.pending.swap_remove(idx);
        Frag::Complete(p.header, p.buf)
    }

    /// Forget messages whose first fragment arrived before `stamp`; returns how many.
    pub fn expire(&mut self, stamp: u64) -> usize {
        let before = self.pending.len();
        self.pending.retain(|p| p.stamp >= stamp);
        before - self.pending.len()
    }

    /// Half-assembled messages evicted to make room since the last call.
    pub fn take_evicted(&mut self) -> usize {
        std::mem::take(&mut self.evicted)
    }

    /// Half-assembled messages held.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Drop everything held.
    pub fn clear(&mut self) {
        self.pending.clear();
    }
}

impl<H> std::fmt::Debug for Reassembler<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reassembler")
            .field("pending", &self.pending.len())
            .field("max_pending", &self.max_pending)
            .finish()
    }
}

impl<H> Default for Reassembler<H> {
    /// 16 messages of up to 64 KiB.
    fn default() -> Self {
        Reassembler::new(16, 64 * 1024)
    }
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
        let r = parse_kmsg(b"6.1.0-43-cloud-amd64,4,77,100,c;x").unwrap();
        assert_eq!(r.release, Some("6.1.0-43-cloud-amd64"));
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

    #[test]
    fn frag_any_order_and_duplicates() {
        let mut r: Reassembler<u8> = Reassembler::new(4, 100);
        assert_eq!(r.add(7, 5, 10, b"world", 1, 0), Frag::Pending);
        assert_eq!(
            r.add(7, 5, 10, b"world", 1, 0),
            Frag::Rejected(FragReject::Duplicate)
        );
        assert_eq!(
            r.add(7, 0, 11, b"hello", 1, 0),
            Frag::Rejected(FragReject::Malformed)
        );
        assert_eq!(
            r.add(7, 0, 10, b"hello", 2, 0),
            Frag::Complete(1, b"helloworld".to_vec())
        );
        assert!(r.is_empty());
        // Fragments may carry NUL bytes: completion counts bytes, it does not look for holes.
        assert_eq!(r.add(8, 0, 2, b"\0", 0, 0), Frag::Pending);
        assert_eq!(r.add(8, 1, 2, b"\0", 0, 0), Frag::Complete(0, vec![0, 0]));
    }

    #[test]
    fn frag_bounded() {
        let mut r: Reassembler<()> = Reassembler::new(4, 100);
        assert_eq!(
            r.add(1, 0, 101, b"x", (), 0),
            Frag::Rejected(FragReject::Malformed)
        );
        assert_eq!(
            r.add(1, 5, 5, b"", (), 0),
            Frag::Rejected(FragReject::Malformed)
        );
        assert_eq!(
            r.add(1, 4, 5, b"xy", (), 0),
            Frag::Rejected(FragReject::Malformed)
        );
        for seq in 0..10 {
            assert_eq!(r.add(seq, 0, 50, b"x", (), seq), Frag::Pending);
        }
        assert_eq!(r.len(), 4);
        assert_eq!(r.take_evicted(), 6);
        assert_eq!(r.expire(8), 2);
        assert_eq!(r.len(), 2);
        // Too many pieces: the message is dropped.
        let mut r: Reassembler<()> = Reassembler::new(4, 100_000);
        for i in 0..Reassembler::<()>::MAX_PIECES as u32 {
            assert_eq!(r.add(1, i, 100_000, b"x", (), 0), Frag::Pending);
        }
        assert_eq!(
            r.add(1, 500, 100_000, b"x", (), 0),
            Frag::Rejected(FragReject::Malformed)
        );
        assert!(r.is_empty());
    }
    #[test]
    fn normalize_cr_lf_crlf_nul_and_ansi() {
        let mut n = Normalizer::new();
        let mut buf = Vec::new();
        let out = n.push(
            b"a\r\nb\rc\nd\0e\x1b[1;31mBUG\x1b[0m \x1b]0;title\x07x\x1b(By",
            &mut buf,
        );
        assert_eq!(out, b"a\nb\nc\ndeBUG xy");
        // A CRLF and an escape split between chunks.
        let mut n = Normalizer::new();
        let mut all = Vec::new();
        for chunk in [&b"x\r"[..], b"\ny\x1b[3", b"3mz\x1b", b"[0m\n", b"plain"] {
            let mut buf = Vec::new();
            all.extend_from_slice(n.push(chunk, &mut buf));
        }
        assert_eq!(all, b"x\nyz\nplain");
        // A colour reset between CR and LF, NULs after a CR: still one line end.
        assert_eq!(
            Normalizer::line(b"a\r\x1b[0m\nb\r\0\nc").unwrap(),
            b"a\nb\nc"
        );
        // Clean input is borrowed as it is.
        let mut buf = Vec::new();
        let data = b"[ 1.0] BUG: x\n";
        assert!(std::ptr::eq(
            Normalizer::new().push(data, &mut buf),
            &data[..]
        ));
        assert_eq!(Normalizer::line(b"plain"), None);
        // An endless CSI is given up on: the text after MAX_ESC bytes is kept.
        let mut long = b"\x1b[".to_vec();
        long.extend(std::iter::repeat_n(b'1', 1000));
        let l = Normalizer::line(&long).unwrap();
        assert_eq!(l.len(), 1000 + 2 - Normalizer::MAX_ESC);
    }

    #[test]
    fn escape_controls_and_binary() {
        assert_eq!(escape_controls("a\tb\n"), "a\tb\n");
        assert_eq!(escape_controls("x\x1b[31my\r\0"), "x\\x1b[31my\\x0d\\x00");
        assert_eq!(escape_controls("c1\u{9b}2J"), "c1\\u{9b}2J");
        assert_eq!(escape_controls("é ü"), "é ü");
        assert!(binary_kind(b"\x7fELF\x02\x01").unwrap().contains("ELF"));
        assert!(binary_kind(b"KDUMP   \x00\x00").unwrap().contains("kdump"));
        assert_eq!(binary_kind(b"[ 1.0] BUG: x\n\0\0\0[ 2.0] ok\n"), None);
        assert_eq!(binary_kind(&[1, 2, 3, 4, 5, b'a']), Some("a binary file"));
    }
}
