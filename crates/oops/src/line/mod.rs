//! The crash-text grammar: everything kmortem knows about the syntax of kernel log lines, in one
//! place. Console prefixes (stamps, caller ids, syslog, `/dev/kmsg`), frame tokens, register
//! and `Code:` lines, the `CPU:` line, kernel paths. Other crates (`symbols`, `explain`,
//! `disasm`, `fixes`) call these instead of parsing log text themselves.
//!
//! Hand-written matching (no regexps): every function is linear in the line and never panics
//! (fuzz target `line`).

mod code;
mod frame;
mod header;
mod path;
mod prefix;
mod regs;

pub use code::parse_code;
pub use frame::{
    base_function, generic_frame, parse_context_marker, parse_frame, parse_sym, stack_start, Sym,
};
pub use header::{header_fault_address, parse_cpu_line, parse_modules, CpuLine};
pub use path::clean_path;
pub use prefix::{clean, Clean, Ctx, MAX_LINE};
pub use regs::{parse_ip, parse_registers};

/// A hex number with or without `0x`, at most 16 digits.
pub fn parse_hex(s: &str) -> Option<u64> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}
