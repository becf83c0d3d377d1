//! Finding the `func+0xoff/0xsize [module]` token of one log line, the way
//! `decode_stacktrace.sh` does. The syntax belongs to the report parser's grammar
//! ([`kmortem_oops::line::find_frame`]); this is where the symbolizer's callers have found it.

pub use kmortem_oops::line::{find_frame, FrameToken};
