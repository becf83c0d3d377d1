#[macro_use]
pub mod missing;

pub mod core;
pub mod decode;
pub mod explain;
pub mod log;
pub mod oops;
pub mod stream;
pub mod sys;

#[cfg(feature = "server")]
pub mod agent;
#[cfg(feature = "server")]
pub mod doctor;
#[cfg(feature = "fixes")]
pub mod fixes;
#[cfg(feature = "server")]
pub mod serve;

#[cfg(not(feature = "server"))]
missing_command!(
    agent,
    "agent",
    "server",
    "Ship this host's crashes to a kmortem server"
);
#[cfg(not(feature = "server"))]
missing_command!(
    doctor,
    "doctor",
    "server",
    "Check every reason a kernel crash on this host would go unseen"
);
#[cfg(not(feature = "fixes"))]
missing_command!(fixes, "fixes", "fixes", "Find the known fix for a crash");
#[cfg(not(feature = "server"))]
missing_command!(serve, "serve", "server", "Run the crash server");

/// An I/O error as the end of a sentence, without the `(os error N)` of the library message.
pub fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => "no such file".into(),
        K::PermissionDenied => "permission denied".into(),
        K::IsADirectory => "a directory".into(),
        K::UnexpectedEof => "ends early (truncated)".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}

/// Human and plain-text output made safe for a terminal: every byte goes through
/// [`kmortem_oops::input::escape_controls`]'s rule (C0 controls but tab and newline, DEL, and
/// the C1 controls U+0080..U+009F are written as `\xNN` / `\u{NN}`), so that an escape sequence
/// in a task name, a module name or a log line cannot drive the terminal. `enabled: false`
/// (JSON output) passes bytes through: serde already escapes control characters in strings.
pub struct SafeWriter<W: std::io::Write> {
    inner: W,
    enabled: bool,
    /// A 0xC2 at the end of the last write (maybe the first byte of a C1 control).
    held: bool,
}

impl<W: std::io::Write> SafeWriter<W> {
    pub fn new(inner: W, enabled: bool) -> Self {
        SafeWriter {
            inner,
            enabled,
            held: false,
        }
    }
}

impl<W: std::io::Write> std::io::Write for SafeWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.enabled {
            return self.inner.write(buf);
        }
        let mut i = 0;
        if std::mem::take(&mut self.held) {
            match buf.first() {
                Some(&b @ 0x80..=0x9f) => {
                    write!(self.inner, "\\u{{{b:x}}}")?;
                    i = 1;
                }
                _ => self.inner.write_all(&[0xc2])?,
            }
        }
        let mut start = i;
        while i < buf.len() {
            let b = buf[i];
            let c1 = b == 0xc2 && buf.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n));
            if (b < 0x20 && b != b'\t' && b != b'\n') || b == 0x7f || c1 {
                self.inner.write_all(&buf[start..i])?;
                if c1 {
                    write!(self.inner, "\\u{{{:x}}}", buf[i + 1])?;
                    i += 2;
                } else {
                    write!(self.inner, "\\x{b:02x}")?;
                    i += 1;
                }
                start = i;
                continue;
            }
            if b == 0xc2 && i + 1 == buf.len() {
                self.inner.write_all(&buf[start..i])?;
                self.held = true;
                return Ok(buf.len());
            }
            i += 1;
        }
        self.inner.write_all(&buf[start..])?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if std::mem::take(&mut self.held) {
            self.inner.write_all(&[0xc2])?;
        }
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    #[test]
    fn safe_writer_escapes_like_escape_controls() {
        let text = "ps\x1b]0;pwned\x07 \x1b[2J\r\0 tab\tnl\n c1\u{9b}31m é\u{7f}";
        let mut w = super::SafeWriter::new(Vec::new(), true);
        // Byte by byte: a C1 control split between two writes is still caught.
        for b in text.as_bytes() {
            w.write_all(std::slice::from_ref(b)).unwrap();
        }
        w.flush().unwrap();
        let got = String::from_utf8(w.inner).unwrap();
        assert_eq!(got, kmortem_oops::input::escape_controls(text));
        assert_eq!(
            got,
            "ps\\x1b]0;pwned\\x07 \\x1b[2J\\x0d\\x00 tab\tnl\n c1\\u{9b}31m é\\x7f"
        );
        let mut w = super::SafeWriter::new(Vec::new(), false);
        w.write_all(text.as_bytes()).unwrap();
        assert_eq!(w.inner, text.as_bytes());
    }
}
