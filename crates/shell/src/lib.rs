//! kmortem-shell: the crash-compatible command language over a kmortem-kernel [`Program`].
//!
//! It owns what a person or a script types and reads: a [`Session`] splits a command line into
//! words, dispatches on the command's name (crash's: sys, log, ps, rd, sym, struct, mod, list,
//! dis, runq, kmem, bt, foreach bt; `help` lists them), parses its options, and lays out the
//! result as crash prints it, with a JSON value beside the text (docs/json/core.md). One module
//! per command family; [`output`] and [`help`] are the leaves they share, [`session`] the one
//! that knows them all.
//!
//! It depends on kmortem-kernel for everything it shows (the dump's memory, symbols, types,
//! tasks, printk, the unwinder and the backtraces it walks), on kmortem-disasm for `dis` and on
//! kmortem-symbols for `dis -l`'s line tables and `mod`'s module files. It must not know a dump
//! format, a kernel structure's layout or how a stack is walked: what it cannot ask the
//! [`Program`] for belongs in kmortem-kernel. Front ends (`kmortem core`, the explain
//! report's lock-owner stacks) use it; it uses no front end.
//!
//! [`Program`]: kmortem_kernel::Program

mod args;
pub mod bt;
mod dis;
pub mod help;
mod kmem;
mod list;
mod modules;
pub mod output;
pub mod ptype;
mod rd;
mod runq;
pub mod session;
mod sys;

pub use help::COMMANDS;
pub use output::{CmdError, Output};
pub use session::Session;
