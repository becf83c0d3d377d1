//! Frame tokens in arbitrary lines, for the tools that read logs line by line without the
//! report parser: `func+0xoff/0xsize [module]` wherever it stands in a line (`kmortem decode`,
//! as `decode_stacktrace.sh` does), and the frames people paste into commit messages and bug
//! reports (crash's `#3 [addr] func at addr`, drgn's `#4  func (file.c:1:2)`, `[exception RIP:
//! func+532]`, register lines), for the fix index.
//!
//! Folklore: pasted traces mix formats; a frame must end its line (or be followed by a module,
//! a source location or ARM's `from`), so that prose like "in foo+0x10 we" is no frame. Pinned
//! by `line::token::tests`.

use super::{base_function, source_path, strip_console_prefix};

/// A frame token found in a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameToken {
    pub function: String,
    pub offset: u64,
    pub size: Option<u64>,
    pub module: Option<String>,
    /// `[<ffffffff81234567>]` printed on the same line (old x86, arm32).
    pub address: Option<u64>,
    /// Byte range of the token (through `[module]`) in the line.
    pub start: usize,
    pub end: usize,
    /// The line is an instruction-pointer line (`RIP:`, `pc :`, `EIP:`, `NIP`), not a return address.
    pub is_ip: bool,
}

fn hex_0x(s: &str) -> Option<u64> {
    let s = s.strip_prefix("0x")?;
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// Length of a `0010:` selector prefix on a token.
fn selector_len(tok: &str) -> usize {
    match tok.split_once(':') {
        Some((sel, _)) if sel.len() == 4 && sel.bytes().all(|b| b.is_ascii_hexdigit()) => 5,
        _ => 0,
    }
}

fn sym_token(tok: &str) -> Option<(String, u64, Option<u64>)> {
    // RIP: 0010:func+0x5/0x10 -> strip the selector.
    let tok = match tok.split_once(':') {
        Some((sel, rest)) if sel.len() == 4 && sel.bytes().all(|b| b.is_ascii_hexdigit()) => rest,
        _ => tok,
    };
    let tok = tok
        .trim_start_matches(['(', '<'])
        .trim_end_matches([')', ',', '>']);
    let plus = tok.rfind('+')?;
    let name = &tok[..plus];
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$' | b'-'))
    {
        return None;
    }
    let rest = &tok[plus + 1..];
    let (off, size) = match rest.split_once('/') {
        Some((o, s)) => (hex_0x(o)?, Some(hex_0x(s)?)),
        None => (hex_0x(rest)?, None),
    };
    Some((name.to_string(), off, size))
}

/// Finds the frame token of a log line. Lines that only carry an address are ignored.
pub fn find_frame(line: &str) -> Option<FrameToken> {
    // Skip a `[  123.456789]` stamp and a `[T123]` caller id.
    let mut body_start = 0;
    let b = line.as_bytes();
    while body_start < b.len() && b[body_start] == b'[' {
        match line[body_start..].find(']') {
            Some(e) if !line[body_start..body_start + e].contains('<') => body_start += e + 1,
            _ => break,
        }
        while body_start < b.len() && b[body_start] == b' ' {
            body_start += 1;
        }
    }
    let body = &line[body_start..];
    let is_ip = body.trim_start().starts_with("RIP:")
        || body.trim_start().starts_with("EIP:")
        || body.trim_start().starts_with("pc :")
        || body.trim_start().starts_with("NIP");
    let mut address = None;
    let mut found: Option<FrameToken> = None;
    let mut pos = 0;
    let tokens: Vec<(usize, &str)> = body
        .split(' ')
        .map(|t| {
            let p = pos;
            pos += t.len() + 1;
            (p, t)
        })
        .filter(|(_, t)| !t.is_empty())
        .collect();
    for (i, (p, t)) in tokens.iter().enumerate() {
        if let Some(a) = t.strip_prefix("[<").and_then(|x| x.strip_suffix(">]")) {
            address = u64::from_str_radix(a, 16).ok();
            continue;
        }
        if let Some((function, offset, size)) = sym_token(t) {
            let mut end = p + t.len();
            let mut module = None;
            if let Some((mp, mt)) = tokens.get(i + 1) {
                if let Some(m) = mt.strip_prefix('[') {
                    if let Some(m) = m.strip_suffix(']') {
                        module = Some(m.to_string());
                        end = mp + mt.len();
                    } else if let Some((bp, bt)) = tokens.get(i + 2) {
                        // `[mod buildid]`
                        if let Some(bid) = bt.strip_suffix(']') {
                            module = Some(format!("{m} {bid}"));
                            end = bp + bt.len();
                        }
                    }
                }
            }
            found = Some(FrameToken {
                function,
                offset,
                size,
                module,
                address: None,
                start: body_start + p + selector_len(t),
                end: body_start + end,
                is_ip,
            });
            // The first symbol token of the line is the frame (arm32 `(func) from (caller)`
            // lines name the caller second).
            break;
        }
    }
    let mut f = found?;
    f.address = address;
    Some(f)
}

/// Parses `func+0x1f/0x30` (optionally `.cold.13`, `[mod]`) starting at the beginning of `s`.
/// Returns the function name.
fn parse_func_off(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.is_empty() || !is_ident_start(b[0]) {
        return None;
    }
    let mut i = 0;
    while i < b.len() && (is_ident(b[i]) || b[i] == b'.') {
        i += 1;
    }
    let name = &s[..i];
    let rest = &s[i..];
    let rest = rest.strip_prefix('+')?;
    let rest = rest.strip_prefix("0x").unwrap_or(rest);
    let hex = rest.bytes().take_while(|c| c.is_ascii_hexdigit()).count();
    if hex == 0 {
        return None;
    }
    Some(base_function(name).to_string())
}

/// One frame found in text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextFrame {
    pub function: String,
    /// `false` for frames printed with a leading `? `.
    pub reliable: bool,
    /// `file.c` or `dir/file.c` when the line carried one (drgn, decode_stacktrace.sh).
    pub file: Option<String>,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}
fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Finds a frame in one line of text. Handles:
/// - `func+0x1f/0x30 [mod]`, `? func+0x..`, `[<ffffffff81098c25>] func+0x2b5/0x340`
/// - `RIP: 0010:func+0x5/0x10`, `pc : func+0x..`, `lr : func+0x..`
/// - drgn: `#4  kyber_bio_merge (../block/kyber-iosched.c:573:2)`
/// - crash: `#10 [ffff8d5300143ed0] enqueue_task_fair at ffffffff900c647c`, `[exception RIP: enqueue_entity+532]`
/// - decode_stacktrace: `func (dir/file.c:123)` after a `func+0x..` form.
pub fn text_frame(line: &str) -> Option<TextFrame> {
    let s = strip_console_prefix(line);
    let s = s.trim();
    if s.is_empty() || s.len() > 400 {
        return None;
    }
    // crash's exception RIP.
    if let Some(p) = s.find("[exception RIP: ") {
        let rest = &s[p + "[exception RIP: ".len()..];
        let name: String = rest
            .bytes()
            .take_while(|&b| is_ident(b))
            .map(char::from)
            .collect();
        if !name.is_empty() {
            return Some(TextFrame {
                function: name,
                reliable: true,
                file: None,
            });
        }
    }
    // drgn / crash numbered frames.
    if let Some(rest) = s.strip_prefix('#') {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0 && digits < 5 {
            let mut rest = rest[digits..].trim_start();
            if let Some(r) = rest.strip_prefix('[') {
                // crash: `[ffff...] func at ffff...`
                let end = r.find(']')?;
                rest = r[end + 1..].trim_start();
                let name: String = rest
                    .bytes()
                    .take_while(|&b| is_ident(b))
                    .map(char::from)
                    .collect();
                if !name.is_empty() && rest[name.len()..].trim_start().starts_with("at ") {
                    return Some(TextFrame {
                        function: name,
                        reliable: true,
                        file: None,
                    });
                }
                return None;
            }
            if let Some(f) = parse_func_off(rest) {
                return Some(TextFrame {
                    function: f,
                    reliable: true,
                    file: paren_file(rest),
                });
            }
            let name: String = rest
                .bytes()
                .take_while(|&b| is_ident(b))
                .map(char::from)
                .collect();
            if !name.is_empty() && is_ident_start(name.as_bytes()[0]) {
                let after = rest[name.len()..].trim_start();
                if after.starts_with('(') || after.is_empty() {
                    return Some(TextFrame {
                        function: name,
                        reliable: true,
                        file: paren_file(after),
                    });
                }
            }
            return None;
        }
    }
    // Register-style lines.
    for key in ["RIP: ", "pc : ", "lr : ", "PC is at ", "LR is at ", "EIP: "] {
        if let Some(p) = s.find(key) {
            if p < 24 {
                let rest = &s[p + key.len()..];
                // `RIP: 0010:func+0x..` or old `RIP: 0010:[<ffff>]  [<ffff>] func+0x..`
                let mut cand = rest;
                if let Some(c) = cand.find(':') {
                    if c <= 4 && cand[..c].bytes().all(|b| b.is_ascii_hexdigit()) {
                        cand = &cand[c + 1..];
                    }
                }
                let cand = skip_addr_brackets(cand);
                if let Some(f) = parse_func_off(cand) {
                    return Some(TextFrame {
                        function: f,
                        reliable: true,
                        file: None,
                    });
                }
                return None;
            }
        }
    }
    // Plain frames.
    let mut rest = skip_addr_brackets(s);
    let mut reliable = true;
    if let Some(r) = rest.strip_prefix("? ") {
        reliable = false;
        rest = skip_addr_brackets(r.trim_start());
    }
    // arm32: `[<c0123456>] (func) from [<...>] (caller)`
    if let Some(r) = rest.strip_prefix('(') {
        if let Some(f) = parse_func_off(r) {
            return Some(TextFrame {
                function: f,
                reliable,
                file: None,
            });
        }
        let name: String = r
            .bytes()
            .take_while(|&b| is_ident(b))
            .map(char::from)
            .collect();
        if !name.is_empty()
            && r[name.len()..].starts_with(") from ")
            && is_ident_start(name.as_bytes()[0])
        {
            return Some(TextFrame {
                function: name,
                reliable,
                file: None,
            });
        }
    }
    let f = parse_func_off(rest)?;
    // The frame must end the line (or be followed by a module, a symbolized source, or a frame
    // marker), so that prose like "in foo+0x10 we" does not become a frame... but prose rarely has
    // that form, so accept the common trailers only.
    let tail_start = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let tail = rest[tail_start..].trim();
    let ok_tail = tail.is_empty()
        || tail.starts_with('[')
        || tail.starts_with('(')
        || tail.starts_with("from ")
        || tail.starts_with("arch/")
        || tail.len() < 3;
    if !ok_tail {
        return None;
    }
    Some(TextFrame {
        function: f,
        reliable,
        file: paren_file(tail),
    })
}

fn skip_addr_brackets(mut s: &str) -> &str {
    loop {
        let t = s.trim_start();
        if let Some(r) = t.strip_prefix("[<") {
            if let Some(end) = r.find(">]") {
                s = &r[end + 2..];
                continue;
            }
        }
        return t;
    }
}

/// `(../block/kyber-iosched.c:573:2)` -> `block/kyber-iosched.c`
fn paren_file(s: &str) -> Option<String> {
    let open = s.find('(')?;
    let close = s[open..].find(')')? + open;
    let inner = &s[open + 1..close];
    let path = inner.split(':').next()?.trim();
    source_path(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_in_lines() {
        let f = find_frame("[    4.460037]  vfs_write+0xc7/0x3f0").unwrap();
        assert_eq!(
            (f.function.as_str(), f.offset, f.size, f.is_ip),
            ("vfs_write", 0xc7, Some(0x3f0), false)
        );
        let f = find_frame("[    4.458648] RIP: 0010:kmlab_device_get+0x5/0x10 [kmlab]").unwrap();
        assert_eq!(f.module.as_deref(), Some("kmlab"));
        assert!(f.is_ip);
        assert_eq!(
            &"[    4.458648] RIP: 0010:kmlab_device_get+0x5/0x10 [kmlab]"[f.start..f.end],
            "kmlab_device_get+0x5/0x10 [kmlab]"
        );
        let f = find_frame(" ? do_set_pte+0x18e/0x1e0").unwrap();
        assert_eq!(f.function, "do_set_pte");
        let f = find_frame(" [<ffffffff8134d4a3>] vfs_write+0xd3/0x1e0").unwrap();
        assert_eq!(f.address, Some(0xffffffff8134d4a3));
        let f = find_frame("[  1.0][T101]  kmlab_write.cold+0x3d/0x45 [kmlab abcdef01]").unwrap();
        assert_eq!(f.module.as_deref(), Some("kmlab abcdef01"));
        assert_eq!(find_frame("[    4.460037] RIP: 0033:0x47b7a0"), None);
        assert_eq!(find_frame("Modules linked in: kmlab(OE)"), None);
        assert_eq!(find_frame("a+b/c"), None);
    }

    #[test]
    fn frames_of_each_format() {
        let cases = [
            (
                "[  147.467058][T10579]  kyber_bio_merge+0x112/0x180",
                "kyber_bio_merge",
                true,
            ),
            (" ? timerqueue_add+0x60/0xb0", "timerqueue_add", false),
            (
                "[ 1077.065016]  [<ffffffff81098c25>] run_timer_softirq+0x2b5/0x340",
                "run_timer_softirq",
                true,
            ),
            (
                "[ 1077.078849]  [<ffffffff81321c30>] ? timerqueue_add+0x60/0xb0",
                "timerqueue_add",
                false,
            ),
            (
                "RIP: 0010:[<ffffffff81096fd2>]  [<ffffffff81096fd2>] cascade+0xb2/0xc0",
                "cascade",
                true,
            ),
            (
                "RIP: 0010:enqueue_entity+0x214/0x540",
                "enqueue_entity",
                true,
            ),
            (
                "    #4  kyber_bio_merge (../block/kyber-iosched.c:573:2)",
                "kyber_bio_merge",
                true,
            ),
            (
                " #10 [ffff8d5300143ed0] enqueue_task_fair at ffffffff900c647c",
                "enqueue_task_fair",
                true,
            ),
            (
                "    [exception RIP: enqueue_entity+532]",
                "enqueue_entity",
                true,
            ),
            (
                " __ubsan_handle_out_of_bounds.cold.13+0x2a/0x34",
                "__ubsan_handle_out_of_bounds",
                true,
            ),
            (
                "pc : nfc_llcp_sock_unlink+0x10/0x40 [nfc]",
                "nfc_llcp_sock_unlink",
                true,
            ),
            (
                "[<c0123456>] (unwind_backtrace) from [<c0101234>] (show_stack+0x10/0x14)",
                "unwind_backtrace",
                true,
            ),
        ];
        for (line, f, rel) in cases {
            let fr = text_frame(line).unwrap_or_else(|| panic!("no frame in {line:?}"));
            assert_eq!(fr.function, f, "{line}");
            assert_eq!(fr.reliable, rel, "{line}");
        }
        assert_eq!(
            text_frame("    #4  kyber_bio_merge (../block/kyber-iosched.c:573:2)")
                .and_then(|f| f.file),
            Some("block/kyber-iosched.c".to_string())
        );
        for prose in [
            "the fix is in foo+0x10 which is",
            "Fixes: 1234 (\"foo\")",
            "",
            "#include <linux/foo.h>",
        ] {
            assert!(text_frame(prose).is_none(), "{prose}");
        }
    }
}
