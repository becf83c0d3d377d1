//! ORC tables: decoding entries in every encoding, and reading/searching a table from
//! arbitrary "memory" (ip offsets and entries taken from the input).
#![no_main]
use kmortem_kernel::mem::Memory;
use kmortem_kernel::unwind::orc::{Encoding, OrcTable};
use kmortem_kernel::ReadError;

struct Buf<'a>(&'a [u8]);
const BASE: u64 = 0xffff_ffff_8100_0000;

impl Memory for Buf<'_> {
    fn read(&self, vaddr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let off = vaddr.wrapping_sub(BASE) as usize;
        match off.checked_add(buf.len()).and_then(|e| self.0.get(off..e)) {
            Some(s) => {
                buf.copy_from_slice(s);
                Ok(())
            }
            None => Err(ReadError::NonCanonical(vaddr)),
        }
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for enc in [Encoding::TypeEnd, Encoding::TypeSignalEnd, Encoding::Type3Signal] {
        for e in data.chunks(6) {
            let _ = enc.decode(e);
        }
    }
    if data.len() < 2 {
        return;
    }
    let n = (data[0] as usize) % 64;
    let mem = Buf(&data[1..]);
    if let Some(t) = OrcTable::read(&mem, BASE, BASE + 4 * n as u64, n, None, (0, u64::MAX)) {
        for ip in [0, BASE, BASE + 17, u64::MAX] {
            let _ = t.find(ip);
            let _ = t.contains(ip);
        }
    }
});
