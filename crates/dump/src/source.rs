//! The bytes of a dump file: a memory map, an owned buffer (tests and fuzzing), or a flattened
//! file seen through its record index as the kdump-compressed file it encodes.

use std::borrow::Cow;

pub(crate) enum Source {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
    Flat(Box<Source>, crate::flat::Flattened),
}

impl Source {
    /// The raw bytes of the file on disk.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Source::Mapped(m) => m,
            Source::Owned(v) => v,
            Source::Flat(inner, _) => inner.bytes(),
        }
    }

    /// Whether all `len` bytes at logical offset `off` are there (no copy).
    pub(crate) fn covers(&self, off: u64, len: u64) -> bool {
        match self {
            Source::Flat(inner, idx) => idx.covers(inner.bytes(), off, len),
            _ => off
                .checked_add(len)
                .is_some_and(|e| e <= self.bytes().len() as u64),
        }
    }

    /// The logical length of the file (for a flattened file: the end of its last record).
    pub(crate) fn len(&self) -> u64 {
        match self {
            Source::Flat(_, idx) => idx.end(),
            _ => self.bytes().len() as u64,
        }
    }

    /// `len` bytes at logical offset `off`, or None if any byte is missing.
    pub(crate) fn slice(&self, off: u64, len: usize) -> Option<Cow<'_, [u8]>> {
        match self {
            Source::Flat(inner, idx) => idx.slice(inner.bytes(), off, len),
            _ => {
                let b = self.bytes();
                let s = usize::try_from(off).ok()?;
                let e = s.checked_add(len)?;
                b.get(s..e).map(Cow::Borrowed)
            }
        }
    }
}
