//! kmortem-explain: from a [`kmortem_oops::Report`] (plus a vmcore, when there is one) to
//! findings — which pointer was bad and which member was touched, list corruption, the condition
//! of a `BUG()`/`WARN()`, the loop of a lockup, and known-bug links.
//!
//! `decode` (symbolization and `Code:` disassembly of a whole log) lives here too: it is the first
//! half of explaining, and `kmortem decode` is a thin shell over it.

pub mod decode;
