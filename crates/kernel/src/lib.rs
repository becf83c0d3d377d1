//! kmortem-kernel: the Linux kernel as a vmcore froze it.
//!
//! It owns the program model: a [`Program`] ties a dump to VMCOREINFO, the x86_64 address space
//! and optionally the vmlinux (symbols with KASLR applied, BTF and lazily indexed DWARF types),
//! and computes what the kernel's memory says: the printk log ([`printk`]), tasks ([`tasks`]),
//! per-CPU data, modules, lists ([`list`]), slab and vmalloc ([`slab`]), locks ([`locks`]),
//! `sys`'s facts ([`sys`]), values of typed objects ([`types`]), the ORC unwinder
//! ([`unwind`]) and the backtraces it walks, with inlined frames and variables
//! ([`backtrace`]).
//!
//! It depends on kmortem-dump (the vmcore containers and their physical memory) and
//! kmortem-symbols (DWARF line tables, inlined calls, frame variables), and reads the vmlinux's
//! ELF, BTF and DWARF itself (object, gimli). It must not parse
//! command lines or lay out a command's output: that is kmortem-shell, which asks a
//! [`Program`] for data and prints it. What it renders is values in the kernel's and C's own
//! notation (a struct's members as gdb prints them, a log record as dmesg does), for the
//! shell to place.

pub mod backtrace;
pub mod btf;
pub mod dwarf;
pub mod kallsyms;
pub mod list;
pub mod locks;
pub mod mem;
pub mod printk;
pub mod program;
pub mod slab;
pub mod symbols;
pub mod sys;
pub mod tasks;
pub mod types;
pub mod unwind;
pub mod vmcoreinfo;
pub mod warnings;

pub use mem::{Memory, ReadError};
pub use program::{Error, Program};
pub use vmcoreinfo::VmcoreInfo;
pub use warnings::{Kind as WarningKind, Warning, Warnings};

/// Serialize an address as a `0x`-prefixed hex string (JSON numbers lose precision above
/// 2^53, and kernel addresses are all above it).
pub fn hex_addr<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:#x}"))
}
