//! Compressed ELF files: the one place that decompresses what [`crate::Binary::open`] is given.
//!
//! Folklore: kernels built with `CONFIG_MODULE_COMPRESS_XZ` install their modules as `.ko.xz`
//! (Debian's 6.12 backports, Fedora, Arch); `modprobe` and the kernel's own decompressor read
//! them. `scripts/Makefile.modinst` makes them with `xz --check=crc32 --lzma2=dict=1MiB`: one
//! stream, LZMA2, no BCJ filter. Debian keeps the DWARF in the uncompressed `.ko` files of the
//! `-dbg` package, so a stripped `.ko.xz` still gives kallsyms-style names and sizes. Pinned by
//! tests/lab.rs::image_modules_are_found_and_read (every `.ko.xz` of the 6.12 lab's image).

use std::io::Write;

/// Decompressed files larger than this are refused: a module, even with DWARF, is far smaller,
/// and a corrupt or hostile header must not make us allocate without end.
pub const MAX_DECOMPRESSED: usize = 1 << 30;

/// The xz stream header magic.
const XZ_MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0];

/// Whether `data` starts like an xz file.
pub fn is_xz(data: &[u8]) -> bool {
    data.starts_with(&XZ_MAGIC)
}

/// A writer that refuses to grow past `limit` bytes.
struct Bounded {
    out: Vec<u8>,
    limit: usize,
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len().saturating_add(buf.len()) > self.limit {
            return Err(std::io::Error::other(format!(
                "decompresses to more than {} MiB",
                self.limit >> 20
            )));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Decompresses an xz file, refusing output larger than `limit` bytes. Corrupt or truncated
/// input is an error (the stream's CRC is checked), never a panic.
pub fn xz(data: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let mut input = std::io::BufReader::new(data);
    let mut out = Bounded {
        out: Vec::with_capacity(data.len().saturating_mul(4).min(limit)),
        limit,
    };
    // lzma-rs is pure Rust and returns errors on bad input; the unwind guard keeps a bug in it
    // from taking the whole report down with one bad module file.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lzma_rs::xz_decompress(&mut input, &mut out)
    }));
    match r {
        Ok(Ok(())) => Ok(out.out),
        Ok(Err(e)) => Err(format!("xz: {e}")),
        Err(_) => Err("xz: the decompressor failed on this input".into()),
    }
}

/// `data` itself, or its decompressed form when it is a compressed file we read.
pub fn decompress(data: &[u8]) -> Result<Option<Vec<u8>>, String> {
    if is_xz(data) {
        return xz(data, MAX_DECOMPRESSED).map(Some);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `printf 'kmortem\n' | xz --check=crc32 --lzma2=dict=1MiB | xxd -i` (the kernel's options).
    const SMALL: &[u8] = &[
        0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x01, 0x69, 0x22, 0xde, 0x36, 0x02, 0x00, 0x21,
        0x01, 0x10, 0x00, 0x00, 0x00, 0xa8, 0x70, 0x8e, 0x86, 0x01, 0x00, 0x07, 0x6b, 0x6d, 0x6f,
        0x72, 0x74, 0x65, 0x6d, 0x0a, 0x00, 0x75, 0x82, 0xb5, 0xe2, 0x00, 0x01, 0x1c, 0x08, 0x44,
        0x60, 0x2a, 0xc8, 0x90, 0x42, 0x99, 0x0d, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x59, 0x5a,
    ];

    #[test]
    fn decompresses_the_kernels_xz_form() {
        assert!(is_xz(SMALL));
        assert_eq!(xz(SMALL, 1 << 20).unwrap(), b"kmortem\n");
        assert_eq!(decompress(SMALL).unwrap().unwrap(), b"kmortem\n");
        assert_eq!(decompress(b"\x7fELF").unwrap(), None);
    }

    #[test]
    fn bounded_and_corrupt_input_are_errors() {
        assert!(xz(SMALL, 4).unwrap_err().contains("more than"));
        for cut in 0..SMALL.len() {
            assert!(xz(&SMALL[..cut], 1 << 20).is_err(), "cut at {cut}");
        }
        for i in 6..SMALL.len() {
            let mut b = SMALL.to_vec();
            b[i] ^= 0x55;
            // A flipped byte is an error (headers and data are CRC-checked), never a panic.
            let _ = xz(&b, 1 << 20);
        }
    }
}
