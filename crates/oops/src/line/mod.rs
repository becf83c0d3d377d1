//! The crash-text grammar: everything kmortem knows about the syntax of kernel log lines, in one
//! place. Console prefixes (stamps, caller ids, syslog, `/dev/kmsg`), frame tokens, register
//! and `Code:` lines, the `CPU:` line, kernel paths. Other crates (`symbols`, `explain`,
//! `disasm`, `fixes`) call these instead of parsing log text themselves.
//!
//! Hand-written matching (no regexps): every function is linear in the line and never panics
//! (fuzz target `line`).
//!
//! | what | functions |
//! |---|---|
//! | console prefixes | [`clean`] (stamps, caller ids, syslog/journal, `/dev/kmsg`, netconsole), [`console_prefix_len`], [`strip_console_prefix`] |
//! | frames | [`parse_frame`] (report lines), [`find_frame`] (a token anywhere in a line), [`text_frame`] (pasted crash/drgn/decode_stacktrace frames), [`parse_sym`], [`base_function`], [`generic_frame`] |
//! | stacks | [`stack_start`], [`parse_context_marker`] |
//! | registers | [`parse_ip`], [`parse_registers`], [`register_tokens`] |
//! | code | [`parse_code`], [`Arch`] |
//! | header | [`parse_cpu_line`], [`parse_banner`], [`parse_modules`], [`header_fault_address`], [`scan_release`], [`scan_kaslr`] |
//! | paths | [`clean_path`], [`kernel_relative`], [`source_path`] |
//! | shape | [`is_report_line`] |

mod code;
mod frame;
mod header;
mod path;
mod prefix;
mod regs;
mod shape;
mod token;

pub use code::{parse_code, Arch};
pub use frame::{
    base_function, generic_frame, parse_context_marker, parse_frame, parse_sym, stack_start, Sym,
    GENERIC_EXACT, GENERIC_PREFIXES,
};
pub use header::{
    header_fault_address, parse_banner, parse_cpu_line, parse_modules, scan_kaslr, scan_release,
    CpuLine,
};
pub use path::{clean_path, kernel_relative, source_path};
pub use prefix::{clean, console_prefix_len, strip_console_prefix, Clean, Ctx, MAX_LINE};
pub use regs::{parse_ip, parse_registers, register_tokens};
pub use shape::is_report_line;
pub use token::{find_frame, text_frame, FrameToken, TextFrame};

/// A hex number with or without `0x`, at most 16 digits.
pub fn parse_hex(s: &str) -> Option<u64> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}
