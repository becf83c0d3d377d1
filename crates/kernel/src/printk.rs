//! The kernel log from the printk buffer, in both formats, using only VMCOREINFO.

use crate::mem::Memory;
use crate::vmcoreinfo::VmcoreInfo;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogRecord {
    pub seq: u64,
    pub ts_nsec: u64,
    pub level: u8,
    pub facility: u8,
    /// `T<tid>` or `C<cpu>` when the kernel recorded the caller (CONFIG_PRINTK_CALLER).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    pub text: String,
}

impl LogRecord {
    /// `[    1.234567] text`, as dmesg and crash's `log` print it. With `caller`, the caller
    /// id goes in its own brackets like dmesg on a CONFIG_PRINTK_CALLER kernel (`[    T1]`).
    pub fn format(&self, caller: bool) -> String {
        let mut s = format!(
            "[{:5}.{:06}] ",
            self.ts_nsec / 1_000_000_000,
            (self.ts_nsec % 1_000_000_000) / 1000
        );
        if caller {
            if let Some(c) = &self.caller {
                s.push_str(&format!("[{c:>6}] "));
            }
        }
        // Continuation lines of a multi-line record are indented under the text, as crash's
        // `log` and dmesg print them.
        let indent = " ".repeat(s.len());
        let text = self.text.trim_end_matches('\n');
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                s.push('\n');
                s.push_str(&indent);
            }
            s.push_str(line);
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("VMCOREINFO lacks {0}, needed to find the printk buffer")]
    Missing(String),
    #[error("cannot read the printk buffer: {0}")]
    Read(#[from] crate::mem::ReadError),
    #[error("{0}")]
    Inconsistent(String),
}

struct Need<'a>(&'a VmcoreInfo);
impl Need<'_> {
    fn off(&self, k: &str) -> Result<u64, LogError> {
        self.0
            .offset(k)
            .ok_or_else(|| LogError::Missing(format!("OFFSET({k})")))
    }
    fn size(&self, k: &str) -> Result<u64, LogError> {
        self.0
            .size(k)
            .ok_or_else(|| LogError::Missing(format!("SIZE({k})")))
    }
    fn sym(&self, k: &str) -> Result<u64, LogError> {
        self.0
            .symbol(k)
            .ok_or_else(|| LogError::Missing(format!("SYMBOL({k})")))
    }
}

thread_local! {
    static HOLES: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The log with the records that could not be read (holes in a truncated or filtered dump).
pub fn read_log_partial(
    mem: &dyn Memory,
    vi: &VmcoreInfo,
) -> Result<(Vec<LogRecord>, Vec<String>), LogError> {
    HOLES.with(|h| h.borrow_mut().clear());
    let r = read_log(mem, vi)?;
    Ok((r, HOLES.with(|h| std::mem::take(&mut *h.borrow_mut()))))
}

/// Read the log, picking the format by the symbols VMCOREINFO has (`prb` for the lockless
/// ring buffer of 5.10+, `log_buf` with `printk_log` records before).
pub fn read_log(mem: &dyn Memory, vi: &VmcoreInfo) -> Result<Vec<LogRecord>, LogError> {
    if vi.symbol("prb").is_some() {
        read_lockless(mem, vi)
    } else {
        read_printk_log(mem, vi)
    }
}

fn caller(id: u32) -> Option<String> {
    if id == 0 {
        return None;
    }
    // Folklore: caller_id bit 31 set means a CPU number (printed in an interrupt context),
    // otherwise a task id (kernel/printk/printk.c, printk_caller_id(), 5.1+).
    Some(if id & 0x8000_0000 != 0 {
        format!("C{}", id & 0x7fff_ffff)
    } else {
        format!("T{id}")
    })
}

/// The lockless printk_ringbuffer (kernel/printk/printk_ringbuffer.h, 5.10+, commit
/// 896fbe20b4e2). Pinned by the lab's `log` oracle.
pub fn read_lockless(mem: &dyn Memory, vi: &VmcoreInfo) -> Result<Vec<LogRecord>, LogError> {
    let n = Need(vi);
    let prb = mem.read_u64(n.sym("prb")?)?;
    let desc_ring = prb + n.off("printk_ringbuffer.desc_ring")?;
    let text_ring = prb + n.off("printk_ringbuffer.text_data_ring")?;
    let count_bits = mem.read_u32(desc_ring + n.off("prb_desc_ring.count_bits")?)?;
    let descs = mem.read_u64(desc_ring + n.off("prb_desc_ring.descs")?)?;
    let infos = mem.read_u64(desc_ring + n.off("prb_desc_ring.infos")?)?;
    let counter = vi.offset("atomic_long_t.counter").unwrap_or(0);
    let head_id = mem.read_u64(desc_ring + n.off("prb_desc_ring.head_id")? + counter)?;
    let tail_id = mem.read_u64(desc_ring + n.off("prb_desc_ring.tail_id")? + counter)?;
    let size_bits = mem.read_u32(text_ring + n.off("prb_data_ring.size_bits")?)?;
    let data = mem.read_u64(text_ring + n.off("prb_data_ring.data")?)?;
    let desc_size = n.size("prb_desc")?;
    let state_off = n.off("prb_desc.state_var")? + counter;
    let blk_off = n.off("prb_desc.text_blk_lpos")?;
    let begin_off = n.off("prb_data_blk_lpos.begin")?;
    let next_off = n.off("prb_data_blk_lpos.next")?;
    let info_size = n.size("printk_info")?;
    let seq_off = n.off("printk_info.seq")?;
    let ts_off = n.off("printk_info.ts_nsec")?;
    let len_off = n.off("printk_info.text_len")?;
    let caller_off = vi.offset("printk_info.caller_id");
    if count_bits > 24 || size_bits > 34 {
        return Err(LogError::Missing(format!(
            "a sane ring size (count_bits {count_bits}, size_bits {size_bits})"
        )));
    }
    // The whole text ring in one read (it is a few hundred KiB to a few MiB).
    let ring_size = 1u64 << size_bits;
    // A truncated or filtered dump may miss pages of the ring: read what is there page by page
    // and remember the holes, so the records outside them still come out.
    let mut ring = vec![0u8; ring_size as usize];
    let mut missing = Vec::new();
    if mem.read(data, &mut ring).is_err() {
        for (i, chunk) in ring.chunks_mut(4096).enumerate() {
            if let Err(e) = mem.read(data + i as u64 * 4096, chunk) {
                missing.push((i as u64 * 4096, e));
            }
        }
    }
    let in_hole = |off: u64| missing.iter().any(|(s, _)| off / 4096 == s / 4096);
    let count = 1u64 << count_bits;
    let id_mask = (1u64 << 62) - 1;
    let mut out = Vec::new();
    let mut id = tail_id & id_mask;
    let head = head_id & id_mask;
    // Descriptors whose state names another id: a few are normal at the tail (reused), all of
    // them means VMCOREINFO's offsets do not describe this ring.
    let mut foreign = 0u64;
    let mut scanned = 0u64;
    for _ in 0..=count {
        let idx = id & (count - 1);
        let d = descs + idx * desc_size;
        let Ok(sv) = mem.read_u64(d + state_off) else {
            HOLES.with(|h| h.borrow_mut().push(format!("descriptor {id}: unreadable")));
            if id == head {
                break;
            }
            id = (id + 1) & id_mask;
            continue;
        };
        let state = sv >> 62;
        scanned += 1;
        if sv & id_mask != id {
            foreign += 1;
        }
        // 1 = committed, 2 = finalized: complete records. 0 = reserved, 3 = reusable.
        if sv & id_mask == id && (state == 1 || state == 2) {
            let begin = mem.read_u64(d + blk_off + begin_off)?;
            let next = mem.read_u64(d + blk_off + next_off)?;
            let info = infos + idx * info_size;
            let ib = mem.read_vec(info, info_size as usize)?;
            let rd64 = |o: u64| {
                ib.get(o as usize..o as usize + 8)
                    .map(|s| u64::from_le_bytes(s.try_into().unwrap_or_default()))
                    .unwrap_or(0)
            };
            let seq = rd64(seq_off);
            let ts = rd64(ts_off);
            let text_len = rd64(len_off) as u16 as usize;
            // Folklore: VMCOREINFO has no offsets for facility and level: they are the two
            // bytes after text_len (u8 facility; u8 flags:5, level:3), since 5.10.
            let facility = ib.get(len_off as usize + 2).copied().unwrap_or(0);
            let level = ib.get(len_off as usize + 3).copied().unwrap_or(0) >> 5;
            let caller_id = caller_off.map(|o| rd64(o) as u32).unwrap_or(0);
            if in_hole(begin % ring_size) || in_hole((next.wrapping_sub(1)) % ring_size) {
                if let Some((_, e)) = missing.first() {
                    HOLES.with(|h| h.borrow_mut().push(format!("record {seq}: {e}")));
                }
                if id == head {
                    break;
                }
                id = (id + 1) & id_mask;
                continue;
            }
            let text = text_of(&ring, size_bits, begin, next, text_len);
            out.push(LogRecord {
                seq,
                ts_nsec: ts,
                level,
                facility,
                caller: caller(caller_id),
                text: String::from_utf8_lossy(&text).into_owned(),
            });
        }
        if id == head {
            break;
        }
        id = (id + 1) & id_mask;
    }
    // Folklore: every descriptor between tail_id and head_id carries its own id in state_var
    // (prb_reserve() writes it, kernel/printk/printk_ringbuffer.c); a ring where none does, or
    // whose records have text longer than the ring, was read with offsets that are not this
    // kernel's. Pinned by `lab_bad_printk_metadata_is_named`.
    if out.is_empty() && foreign > 0 && foreign * 2 >= scanned {
        return Err(LogError::Inconsistent(format!(
            "the printk ring makes no sense with VMCOREINFO's offsets: none of the {scanned} descriptors from tail id {tail_id:#x} to head id {head_id:#x} is a record ({foreign} carry another id; OFFSET(prb_desc.state_var)={}, SIZE(prb_desc)={desc_size}, OFFSET(printk_ringbuffer.desc_ring)={})",
            n.off("prb_desc.state_var")?,
            n.off("printk_ringbuffer.desc_ring")?
        )));
    }
    if foreign * 2 > scanned && scanned > 8 {
        HOLES.with(|h| {
            h.borrow_mut().push(format!(
                "{foreign} of {scanned} descriptors carry another id: the ring or VMCOREINFO's printk offsets are damaged"
            ))
        });
    }
    Ok(out)
}

/// The data block of a record: skip the block's leading `unsigned long id`.
fn text_of(ring: &[u8], size_bits: u32, begin: u64, next: u64, text_len: usize) -> Vec<u8> {
    // Data-less blocks have bit 0 set (LPOS_DATALESS).
    if begin & 1 == 1 || next & 1 == 1 || text_len == 0 {
        return Vec::new();
    }
    let size = 1u64 << size_bits;
    let wraps = |l: u64| l >> size_bits;
    let (start, len) = if wraps(begin) == wraps(next) {
        (begin % size, next.wrapping_sub(begin))
    } else if wraps(begin.wrapping_add(size)) == wraps(next) {
        // The block wrapped: it starts at offset 0.
        (0, next % size)
    } else {
        return Vec::new();
    };
    let s = (start + 8) as usize;
    let len = (len.saturating_sub(8) as usize).min(text_len);
    ring.get(s..s + len).map(|b| b.to_vec()).unwrap_or_default()
}

/// The variable-length `struct printk_log` records of 3.5 to 5.9 (named `struct log` before
/// 3.11, commit 62e32ac3505a). Pinned by `tests::printk_log_format` on a buffer laid out by
/// the struct's definition.
pub fn read_printk_log(mem: &dyn Memory, vi: &VmcoreInfo) -> Result<Vec<LogRecord>, LogError> {
    let n = Need(vi);
    let st = if vi.size("printk_log").is_some() {
        "printk_log"
    } else {
        "log"
    };
    let hdr = n.size(st)?;
    let ts_off = n.off(&format!("{st}.ts_nsec"))?;
    let len_off = n.off(&format!("{st}.len"))?;
    let tlen_off = n.off(&format!("{st}.text_len"))?;
    let buf = mem.read_u64(n.sym("log_buf")?)?;
    let buf_len = mem.read_u32(n.sym("log_buf_len")?)? as u64;
    let first = mem.read_u32(n.sym("log_first_idx")?)? as u64;
    let next = mem.read_u32(n.sym("log_next_idx")?)? as u64;
    let first_seq = vi
        .symbol("log_first_seq")
        .and_then(|a| mem.read_u64(a).ok())
        .unwrap_or(0);
    if buf_len == 0 || buf_len > (1 << 30) {
        return Err(LogError::Missing("a sane log_buf_len".into()));
    }
    let ring = mem.read_vec(buf, buf_len as usize)?;
    let u16_at = |o: u64| {
        ring.get(o as usize..o as usize + 2)
            .map(|s| u16::from_le_bytes([s[0], s[1]]))
    };
    let mut out = Vec::new();
    let mut idx = first;
    let mut seq = first_seq;
    let mut wrapped = false;
    while idx != next && (out.len() as u64) < buf_len / hdr.max(1) + 1 {
        let Some(len) = u16_at(idx + len_off) else {
            break;
        };
        if len == 0 {
            // A zero length marks the end of the used area: wrap to the start.
            if wrapped {
                break;
            }
            wrapped = true;
            idx = 0;
            continue;
        }
        let ts = ring
            .get((idx + ts_off) as usize..(idx + ts_off) as usize + 8)
            .map(|s| u64::from_le_bytes(s.try_into().unwrap_or_default()))
            .unwrap_or(0);
        let tlen = u16_at(idx + tlen_off).unwrap_or(0) as u64;
        // facility, then flags:5 level:3, follow dict_len (tlen_off + 4).
        let facility = ring
            .get((tlen_off + 4 + idx) as usize)
            .copied()
            .unwrap_or(0);
        let level = ring
            .get((tlen_off + 5 + idx) as usize)
            .copied()
            .unwrap_or(0)
            >> 5;
        let caller_id = if hdr >= tlen_off + 10 {
            // [u32 caller_id] (5.1+ with CONFIG_PRINTK_CALLER) follows the flags byte.
            let o = (idx + tlen_off + 6) as usize;
            ring.get(o..o + 4)
                .map(|s| u32::from_le_bytes(s.try_into().unwrap_or_default()))
                .unwrap_or(0)
        } else {
            0
        };
        let t0 = (idx + hdr) as usize;
        let text = ring.get(t0..t0 + tlen as usize).unwrap_or(&[]);
        out.push(LogRecord {
            seq,
            ts_nsec: ts,
            level,
            facility,
            caller: caller(caller_id),
            text: String::from_utf8_lossy(text).into_owned(),
        });
        seq += 1;
        idx += len as u64;
        if idx >= buf_len {
            idx = 0;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::ReadError;
    use std::collections::BTreeMap;

    /// Virtual memory as a few byte regions.
    struct Regions(BTreeMap<u64, Vec<u8>>);
    impl Memory for Regions {
        fn read(&self, a: u64, buf: &mut [u8]) -> Result<(), ReadError> {
            let (s, v) = self
                .0
                .range(..=a)
                .next_back()
                .ok_or(ReadError::NotMapped { vaddr: a, level: 0 })?;
            let o = (a - s) as usize;
            buf.copy_from_slice(
                v.get(o..o + buf.len())
                    .ok_or(ReadError::NotMapped { vaddr: a, level: 0 })?,
            );
            Ok(())
        }
    }

    /// struct printk_log { u64 ts_nsec; u16 len; u16 text_len; u16 dict_len; u8 facility;
    /// u8 flags:5, level:3; u32 caller_id; }, `__packed __aligned(4)` on x86
    /// (CONFIG_HAVE_EFFICIENT_UNALIGNED_ACCESS): 20 bytes with CONFIG_PRINTK_CALLER (5.1+),
    /// records aligned to LOG_ALIGN = 4.
    fn record(ts: u64, text: &str, dict: &str, level: u8, caller: u32) -> Vec<u8> {
        let hdr = 20usize;
        let len = (hdr + text.len() + dict.len()).div_ceil(4) * 4;
        let mut r = vec![0u8; len];
        r[0..8].copy_from_slice(&ts.to_le_bytes());
        r[8..10].copy_from_slice(&(len as u16).to_le_bytes());
        r[10..12].copy_from_slice(&(text.len() as u16).to_le_bytes());
        r[12..14].copy_from_slice(&(dict.len() as u16).to_le_bytes());
        r[14] = 0;
        r[15] = level << 5;
        r[16..20].copy_from_slice(&caller.to_le_bytes());
        r[hdr..hdr + text.len()].copy_from_slice(text.as_bytes());
        r[hdr + text.len()..hdr + text.len() + dict.len()].copy_from_slice(dict.as_bytes());
        r
    }

    #[test]
    fn printk_log_format() {
        // A 256-byte ring: two records at the end, a zero-length wrap marker, then the
        // newest two from offset 0. first_idx points at the oldest.
        let mut ring = vec![0u8; 256];
        let r3 = record(3_000_001_000, "third", "", 4, 0x8000_0001);
        let r4 = record(4_500_000_000, "fourth line", "SUBSYSTEM=pci", 3, 42);
        let r1 = record(1_000_000, "first", "", 6, 1);
        let r2 = record(2_000_000_000, "second", "DEVICE=+pci:0000", 6, 1);
        let start = 256 - r1.len() - r2.len() - 16;
        ring[start..start + r1.len()].copy_from_slice(&r1);
        ring[start + r1.len()..start + r1.len() + r2.len()].copy_from_slice(&r2);
        // the remaining 16 bytes are zeros: len == 0 means wrap.
        ring[..r3.len()].copy_from_slice(&r3);
        ring[r3.len()..r3.len() + r4.len()].copy_from_slice(&r4);
        let next = (r3.len() + r4.len()) as u32;
        let base = 0xffff_8880_0100_0000u64;
        let mut m = BTreeMap::new();
        m.insert(base, ring);
        let syms = 0xffff_ffff_8200_0000u64;
        let mut s = vec![0u8; 64];
        s[0..8].copy_from_slice(&base.to_le_bytes()); // log_buf
        s[8..12].copy_from_slice(&256u32.to_le_bytes()); // log_buf_len
        s[16..20].copy_from_slice(&(start as u32).to_le_bytes()); // log_first_idx
        s[24..28].copy_from_slice(&next.to_le_bytes()); // log_next_idx
        s[32..40].copy_from_slice(&7u64.to_le_bytes()); // log_first_seq
        m.insert(syms, s);
        let vi = VmcoreInfo::parse(
            format!(
                "SYMBOL(log_buf)={:x}\nSYMBOL(log_buf_len)={:x}\nSYMBOL(log_first_idx)={:x}\n\
SYMBOL(log_next_idx)={:x}\nSYMBOL(log_first_seq)={:x}\nSIZE(printk_log)=20\n\
OFFSET(printk_log.ts_nsec)=0\nOFFSET(printk_log.len)=8\nOFFSET(printk_log.text_len)=10\n",
                syms,
                syms + 8,
                syms + 16,
                syms + 24,
                syms + 32
            )
            .as_bytes(),
        );
        let recs = read_log(&Regions(m), &vi).unwrap();
        let lines: Vec<String> = recs.iter().map(|r| r.format(true)).collect();
        assert_eq!(
            lines,
            vec![
                "[    0.001000] [    T1] first",
                "[    2.000000] [    T1] second",
                "[    3.000001] [    C1] third",
                "[    4.500000] [   T42] fourth line",
            ]
        );
        assert_eq!(recs[0].seq, 7);
        assert_eq!(recs[3].level, 3);
        assert_eq!(recs[3].seq, 10);
    }

    #[test]
    fn lockless_text_blocks() {
        // size_bits 6 (64 bytes); a wrapped block: begin in lap 0 near the end, next in lap 1.
        let mut ring = vec![0u8; 64];
        ring[8..13].copy_from_slice(b"hello");
        assert_eq!(text_of(&ring, 6, 64 + 56, 128 + 16, 5), b"hello");
        ring[40..45].copy_from_slice(b"world");
        assert_eq!(text_of(&ring, 6, 32, 48, 5), b"world");
        assert_eq!(text_of(&ring, 6, 33, 48, 5), b"");
        assert_eq!(text_of(&ring, 6, 0, 500, 5), b"");
    }
}
