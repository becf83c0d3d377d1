//! Command-line words: numbers as crash reads them, and addresses given as a number, a symbol
//! or `symbol+offset`.

use crate::output::{usage, CmdError};
use kmortem_kernel::Program;

pub(crate) fn parse_num(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u64::from_str_radix(h, 16).ok();
    }
    // crash treats bare words that look like hex addresses as hex.
    if s.len() >= 8 && s.chars().all(|c| c.is_ascii_hexdigit()) {
        return u64::from_str_radix(s, 16).ok();
    }
    s.parse().ok()
}

/// A count: decimal, or hex with `0x`.
pub(crate) fn parse_dec(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x") {
        return u64::from_str_radix(h, 16).ok();
    }
    s.parse().ok()
}

/// An address: a number, a kernel or module symbol, or `symbol+offset`.
pub(crate) fn resolve_addr(prog: &Program, s: &str) -> Result<u64, CmdError> {
    if let Some(a) = parse_num(s) {
        return Ok(a);
    }
    let (name, off) = match s.split_once('+') {
        Some((n, o)) => (
            n,
            parse_num(o).ok_or_else(|| usage(format!("bad offset in {s}")))?,
        ),
        None => (s, 0),
    };
    if let Some(a) = prog.symbol(name) {
        return Ok(a + off);
    }
    if let Some(m) = prog.module_symbol(name) {
        return Ok(m.addr + off);
    }
    Err(usage(format!("{s}: not a number or a known symbol")))
}
