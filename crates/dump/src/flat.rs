//! makedumpfile's flattened format (`makedumpfile -F`, QEMU 7.2's kdump output).
//!
//! Folklore: the flattened format exists so makedumpfile can write a kdump-compressed file to a
//! pipe (ssh). It is a 4096-byte header starting with "makedumpfile" (then big-endian i64
//! type=1, version=1), then records {be i64 offset, be i64 size, size bytes}, ending with
//! offset = -1. Each record writes its bytes at `offset` of the real file; later records may
//! rewrite earlier bytes (makedumpfile writes the header and bitmaps again after the pages).
//! `makedumpfile -R` rewrites the file; we index the records at open and read through the
//! index instead. Pinned by `tests::flattened_matches_kdump` and the lab's vmcore.flat.

use crate::{malformed, OpenError};
use std::borrow::Cow;
use std::collections::BTreeMap;

pub(crate) struct Flattened {
    /// logical start -> (logical end, file offset of the first byte)
    map: BTreeMap<u64, (u64, u64)>,
}

const HEADER: usize = 4096;

impl Flattened {
    pub(crate) fn index(raw: &[u8]) -> Result<Flattened, OpenError> {
        if raw.len() < HEADER {
            return Err(malformed(
                "flattened",
                "file shorter than its 4096-byte header",
            ));
        }
        let be = |o: usize| -> Option<i64> {
            Some(i64::from_be_bytes(raw.get(o..o + 8)?.try_into().ok()?))
        };
        if be(16) != Some(1) {
            return Err(malformed("flattened", "header type is not 1"));
        }
        let mut map: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        let mut pos = HEADER;
        // A truncated file ends the loop early: keep what we indexed so far.
        while let (Some(off), Some(size)) = (be(pos), be(pos + 8)) {
            if off == -1 {
                break;
            }
            if off < 0 || size < 0 {
                return Err(malformed(
                    "flattened",
                    format!("bad record at file offset {pos}: offset {off}, size {size}"),
                ));
            }
            let data = (pos + 16) as u64;
            let avail = (raw.len() as u64).saturating_sub(data).min(size as u64);
            if avail > 0 {
                insert(&mut map, off as u64, off as u64 + avail, data);
            }
            let Some(next) = (pos + 16).checked_add(size as usize) else {
                break;
            };
            pos = next;
        }
        Ok(Flattened { map })
    }

    /// Whether the records hold every byte of [off, off + len).
    pub(crate) fn covers(&self, raw: &[u8], off: u64, len: u64) -> bool {
        let Some(end) = off.checked_add(len) else {
            return false;
        };
        let mut cur = off;
        while cur < end {
            let Some((_, &(e, _))) = self.map.range(..=cur).next_back() else {
                return false;
            };
            if cur >= e {
                return false;
            }
            cur = e;
        }
        let _ = raw;
        true
    }

    /// The logical end of the file: the end of the last record.
    pub(crate) fn end(&self) -> u64 {
        self.map.values().map(|&(e, _)| e).max().unwrap_or(0)
    }

    pub(crate) fn slice<'a>(&self, raw: &'a [u8], off: u64, len: usize) -> Option<Cow<'a, [u8]>> {
        let end = off.checked_add(len as u64)?;
        // Fast path: one record holds it all.
        let (&s, &(e, f)) = self.map.range(..=off).next_back()?;
        if end <= e {
            let fs = usize::try_from(f + (off - s)).ok()?;
            return raw.get(fs..fs + len).map(Cow::Borrowed);
        }
        // Only allocate for bytes the records hold: a damaged header can ask for 2^52 bytes.
        if !self.covers(raw, off, len as u64) {
            return None;
        }
        let mut out = Vec::with_capacity(len);
        let mut cur = off;
        while cur < end {
            let (&s, &(e, f)) = self.map.range(..=cur).next_back()?;
            if cur >= e {
                return None;
            }
            let n = (e.min(end) - cur) as usize;
            let fs = usize::try_from(f + (cur - s)).ok()?;
            out.extend_from_slice(raw.get(fs..fs + n)?);
            cur += n as u64;
        }
        Some(Cow::Owned(out))
    }
}

/// Insert [s, e) -> file offset f, trimming whatever it overlaps (later records win).
fn insert(map: &mut BTreeMap<u64, (u64, u64)>, s: u64, e: u64, f: u64) {
    // Split a predecessor that straddles s.
    if let Some((&ps, &(pe, pf))) = map.range(..s).next_back() {
        if pe > s {
            map.insert(ps, (s, pf));
            if pe > e {
                map.insert(e, (pe, pf + (e - ps)));
            }
        }
    }
    let inside: Vec<u64> = map.range(s..e).map(|(&k, _)| k).collect();
    for k in inside {
        if let Some((ke, kf)) = map.remove(&k) {
            if ke > e {
                map.insert(e, (ke, kf + (e - k)));
            }
        }
    }
    map.insert(s, (e, f));
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn later_records_win() {
        let mut m = BTreeMap::new();
        insert(&mut m, 0, 100, 1000);
        insert(&mut m, 10, 20, 5000);
        insert(&mut m, 90, 120, 7000);
        let f = Flattened { map: m.clone() };
        let v: Vec<_> = m.into_iter().collect();
        assert!(f.covers(&[], 5, 100));
        assert!(!f.covers(&[], 5, 200));
        // A length no record holds is refused before anything is allocated for it.
        assert!(f.slice(&[], 0, usize::MAX / 2).is_none());
        assert_eq!(
            v,
            vec![
                (0, (10, 1000)),
                (10, (20, 5000)),
                (20, (90, 1020)),
                (90, (120, 7000))
            ]
        );
    }
}
