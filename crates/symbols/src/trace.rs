//! Finding the `func+0xoff/0xsize [module]` token of one log line, the way
//! `decode_stacktrace.sh` does: it works line by line on any log, whatever else the line holds.

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

fn hex(s: &str) -> Option<u64> {
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

fn parse_sym(tok: &str) -> Option<(String, u64, Option<u64>)> {
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
        Some((o, s)) => (hex(o)?, Some(hex(s)?)),
        None => (hex(rest)?, None),
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
        if let Some((function, offset, size)) = parse_sym(t) {
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
}
