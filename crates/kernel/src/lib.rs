//! kmortem-kernel: the Linux kernel as a vmcore froze it.
//!
//! A [`Program`] ties a dump to VMCOREINFO, the x86_64 address space, and optionally the
//! vmlinux (symbols with KASLR applied, BTF and lazily indexed DWARF types). On it: the printk
//! log ([`printk`]), tasks ([`tasks`]), `sys` ([`sys`]), and crash-style struct printing
//! ([`types`]).

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
