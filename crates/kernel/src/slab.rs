//! What a kernel address points into: a SLUB object (its cache, its index, and whether it is
//! free), or a vmalloc area (its size, its caller, and whether the address is on the guard
//! page). crash's `kmem ADDR`, in a library.

use crate::mem::Memory;
use crate::program::{Error, Program};
use std::collections::HashSet;

const PAGE: u64 = 4096;

/// A slab object holding an address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SlabObject {
    /// The address asked about.
    #[serde(serialize_with = "crate::hex_addr")]
    pub addr: u64,
    /// `kmem_cache` name (`kmalloc-64`, `kmlab_session`, ...).
    pub cache_name: String,
    #[serde(serialize_with = "crate::hex_addr")]
    pub cache: u64,
    /// The object's size as allocated (`object_size`) and the slot stride (`size`).
    pub object_size: u64,
    pub size: u64,
    /// `struct slab` (or the head `struct page` on kernels without `struct slab`).
    #[serde(serialize_with = "crate::hex_addr")]
    pub slab: u64,
    /// First byte of the slab's memory.
    #[serde(serialize_with = "crate::hex_addr")]
    pub slab_base: u64,
    /// Start of the object holding `addr`, its index in the slab and the offset of `addr` in it.
    #[serde(serialize_with = "crate::hex_addr")]
    pub object: u64,
    pub index: u64,
    pub offset: u64,
    /// Objects in the slab, and in use (from the slab's counters; for the active CPU slab the
    /// per-CPU freelist holds free objects too).
    pub objects: u64,
    pub inuse: u64,
    /// Free objects found on the freelists (crash's `kmem` FREE column).
    pub nfree: u64,
    /// Free: on the slab's freelist or on the per-CPU freelist of the CPU using the slab.
    /// None when a freelist could not be walked to the end.
    pub free: Option<bool>,
    /// The CPU whose active slab this is.
    pub cpu: Option<u32>,
    /// Where a freelist walk stopped early (a pointer outside the slab: corruption, or a
    /// wrong guess of the obfuscation).
    pub freelist_error: Option<String>,
}

/// A vmalloc area holding an address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VmallocArea {
    #[serde(serialize_with = "crate::hex_addr")]
    pub addr: u64,
    /// The `struct vmap_area`.
    #[serde(serialize_with = "crate::hex_addr")]
    pub va: u64,
    #[serde(serialize_with = "crate::hex_addr")]
    pub va_start: u64,
    #[serde(serialize_with = "crate::hex_addr")]
    pub va_end: u64,
    /// `vm_struct` (0 for an area without one, e.g. a vm_map_ram() block).
    #[serde(serialize_with = "crate::hex_addr")]
    pub vm: u64,
    /// `vm->size` (it includes the guard page) and the usable size.
    pub size: u64,
    pub usable_size: u64,
    pub nr_pages: u64,
    #[serde(serialize_with = "crate::hex_addr")]
    pub flags: u64,
    #[serde(serialize_with = "crate::hex_addr")]
    pub caller: u64,
    /// `caller` as `func+off`.
    pub caller_symbol: Option<String>,
    /// The address lies on the trailing guard page (past the usable size).
    pub guard_page: bool,
    /// Offset of `addr` from the area's start.
    pub offset: u64,
}

/// `vm_struct.flags` VM_NO_GUARD (include/linux/vmalloc.h: 0x40 since 4.1).
const VM_NO_GUARD: u64 = 0x40;

impl Program {
    fn sym_u64(&self, name: &str) -> Result<u64, Error> {
        Ok(self.read_u64(self.need_symbol(name)?)?)
    }

    /// The `struct page` of a kernel virtual address (any mapping), and its pfn.
    pub fn page_of(&self, addr: u64) -> Result<(u64, u64), Error> {
        let phys = self.vm.walk(&self.dump, addr)?;
        let pfn = phys >> 12;
        let vmemmap = self.sym_u64("vmemmap_base")?;
        let psize = self.types()?.size_of(self.struct_id("page")?);
        Ok((vmemmap + pfn * psize, pfn))
    }

    fn pg_slab_bit(&self) -> Option<u64> {
        if let Some(n) = self.vmcoreinfo.number("PG_slab") {
            return Some(n as u64);
        }
        let t = self.types().ok()?;
        let id = t.0.find(crate::types::Kind::Enum, "pageflags")?;
        if let crate::types::Type::Enum { values, .. } = t.get(id) {
            return values
                .iter()
                .find(|(n, _)| n == "PG_slab")
                .map(|(_, v)| *v as u64);
        }
        None
    }

    /// Whether the (head) page at `head` is a slab page; None when the kernel says neither way.
    ///
    /// Folklore: until 6.10 a slab page has the PG_slab page flag (VMCOREINFO `NUMBER(PG_slab)`,
    /// or `enum pageflags`). 6.10 (commit 46df8e73a4a3, "mm: free up PG_slab") made slab a
    /// page *type* in `page.page_type` (which overlays `_mapcount`), and VMCOREINFO gives
    /// `NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)` instead: in 6.10-6.11 page types clear a bit of an
    /// all-ones word (the value is `~PG_slab`; a slab page has the top nibble 0xf and that bit
    /// clear), and since 6.12 ("mm: support only one page_type per page") the type is the top
    /// byte (`PGTY_slab << 24`, 0xf5000000). The two encodings tell themselves apart by the
    /// low 24 bits of the value. Pinned by `lab_slab_and_vmalloc` (6.1: PG_slab; 6.12: the top
    /// byte; 6.10-6.11 are not in the lab).
    pub fn is_slab_page(&self, head: u64) -> Result<Option<bool>, Error> {
        if let Some(bit) = self.pg_slab_bit() {
            let flags = self.read_member(head, "page", "flags")?;
            return Ok(Some(flags & (1 << bit) != 0));
        }
        let value = self
            .vmcoreinfo
            .number("PAGE_SLAB_MAPCOUNT_VALUE")
            .map(|v| v as u32)
            .or_else(|| self.pgty_slab().map(|t| t << 24));
        let Some(v) = value else {
            return Ok(None);
        };
        let off = self
            .offset_of("page", "page_type")
            .or_else(|_| self.offset_of("page", "_mapcount"))?;
        let pt = self.read_u32(head + off)?;
        Ok(Some(if v & 0x00ff_ffff == 0 {
            pt >> 24 == v >> 24
        } else {
            let bit = !v;
            pt & (0xf000_0000 | bit) == 0xf000_0000
        }))
    }

    /// `PGTY_slab` of `enum pagetype` (6.12+) in the kernel's types.
    fn pgty_slab(&self) -> Option<u32> {
        let t = self.types().ok()?;
        let id = t.0.find(crate::types::Kind::Enum, "pagetype")?;
        match t.get(id) {
            crate::types::Type::Enum { values, .. } => values
                .iter()
                .find(|(n, _)| n == "PGTY_slab")
                .map(|(_, v)| *v as u32),
            _ => None,
        }
    }

    /// The SLUB object holding `addr`, or None when `addr` is not in a slab page.
    ///
    /// Folklore: since 5.17 (commit d122019bf061, "mm: Split slab into its own type") SLUB's
    /// fields live in `struct slab`, which overlays `struct page` (same address); before, they
    /// were `struct page` fields of the same names (`slab_cache`, `freelist`, `inuse`,
    /// `objects`, and `kmem_cache_cpu.page` instead of `.slab`). Probed by member, not by
    /// version. A slab of order > 0 is a compound page: tail pages have bit 0 of
    /// `compound_head` set and point at the head. Pinned by `lab_slab_and_vmalloc`.
    pub fn slab_object(&self, addr: u64) -> Result<Option<SlabObject>, Error> {
        let (page, _) = self.page_of(addr)?;
        let vmemmap = self.sym_u64("vmemmap_base")?;
        let psize = self.types()?.size_of(self.struct_id("page")?);
        let ch_off = self.offset_of("page", "compound_head").unwrap_or(8);
        let ch = self.read_u64(page + ch_off)?;
        let head = if ch & 1 == 1 { ch - 1 } else { page };
        if self.is_slab_page(head)? == Some(false) {
            return Ok(None);
        }
        let st = if self.has_member("slab", "slab_cache") {
            "slab"
        } else {
            "page"
        };
        let cache = self.read_member(head, st, "slab_cache")?;
        if cache == 0 {
            return Ok(None);
        }
        let name_p = self.read_member(cache, "kmem_cache", "name")?;
        let cache_name =
            String::from_utf8_lossy(&self.read_cstr(name_p, 64).unwrap_or_default()).into_owned();
        let size = self.read_member(cache, "kmem_cache", "size")?.max(1);
        let object_size = self.read_member(cache, "kmem_cache", "object_size")?;
        let fp_off = self.read_member(cache, "kmem_cache", "offset")?;
        let red_left = self
            .read_member(cache, "kmem_cache", "red_left_pad")
            .unwrap_or(0);
        let random = self.read_member(cache, "kmem_cache", "random").ok();
        let head_pfn = head.wrapping_sub(vmemmap) / psize.max(1);
        let pob = self.sym_u64("page_offset_base")?;
        let slab_base = pob + head_pfn * PAGE;
        let objects = self.read_member(head, st, "objects").unwrap_or(0);
        let inuse = self.read_member(head, st, "inuse").unwrap_or(0);
        let rel = addr.wrapping_sub(slab_base);
        let index = rel / size;
        let object = slab_base + index * size + red_left;
        let offset = addr.wrapping_sub(object);
        let slab_end = slab_base + objects.max(1) * size;

        // Free objects: the slab's own freelist, and the per-CPU freelist of the CPU whose
        // active slab this is.
        let mut free = HashSet::new();
        let mut error = None;
        let sl_free = self.read_member(head, st, "freelist").unwrap_or(0);
        let walk = |start: u64, free: &mut HashSet<u64>| -> Option<String> {
            let mut p = start;
            let mut n = 0;
            while p != 0 {
                if p < slab_base || p >= slab_end || n > objects + 1 {
                    return Some(format!("freelist pointer {p:x} outside the slab"));
                }
                if !free.insert(p) {
                    return Some(format!("freelist loops at {p:x} (a double free)"));
                }
                let at = p + fp_off;
                let Ok(raw) = self.read_u64(at) else {
                    return Some(format!("freelist pointer at {at:x} unreadable"));
                };
                p = decode_freeptr(raw, at, random);
                n += 1;
            }
            None
        };
        if let Some(e) = walk(sl_free, &mut free) {
            error = Some(e);
        }
        let mut cpu = None;
        let cpu_m = if self.has_member("kmem_cache_cpu", "slab") {
            "slab"
        } else {
            "page"
        };
        if let Ok(pc) = self.read_member(cache, "kmem_cache", "cpu_slab") {
            for c in self.present_cpus() {
                let Ok(off) = self.per_cpu_offset(c) else {
                    continue;
                };
                let kc = pc.wrapping_add(off);
                if self.read_member(kc, "kmem_cache_cpu", cpu_m).ok() == Some(head) {
                    cpu = Some(c);
                    let f = self
                        .read_member(kc, "kmem_cache_cpu", "freelist")
                        .unwrap_or(0);
                    if let Some(e) = walk(f, &mut free) {
                        error.get_or_insert(e);
                    }
                }
            }
        }
        let is_free = free.contains(&object);
        Ok(Some(SlabObject {
            addr,
            cache_name,
            cache,
            object_size,
            size,
            slab: head,
            slab_base,
            object,
            index,
            offset,
            objects,
            inuse,
            nfree: free.len() as u64,
            // A broken walk can only prove "free", not "allocated".
            free: if is_free || error.is_none() {
                Some(is_free)
            } else {
                None
            },
            cpu,
            freelist_error: error,
        }))
    }

    /// The vmalloc area holding `addr`, searched in the busy areas' rbtree(s), or in
    /// `vmap_area_list` when there is no tree.
    ///
    /// Folklore: busy areas are in `vmap_area_root` keyed by `va_start` (since 2.6.28) and on
    /// `vmap_area_list` sorted by address (removed in 6.9, commit 7c9b8f2b0d2b); `va->vm` is
    /// the `vm_struct`, whose `size` includes one guard page unless VM_NO_GUARD (so an
    /// overflow by a page or less faults on the guard: seed 002). Pinned by
    /// `lab_slab_and_vmalloc` on `wrong_cpu_index`.
    pub fn vmalloc_area(&self, addr: u64) -> Result<Option<VmallocArea>, Error> {
        let rb_off = self.offset_of("vmap_area", "rb_node")?;
        let start_off = self.offset_of("vmap_area", "va_start")?;
        let end_off = self.offset_of("vmap_area", "va_end")?;
        let mut found = None;
        // The busy trees: `vmap_area_root`, or since 6.9 one per `struct vmap_node`
        // (`vmap_nodes[0 .. nr_vmap_nodes]`, each `busy.root`): Uladzislau Rezki's series
        // "mm/vmalloc: Mitigate a vmap lock contention" replaced the global tree and lock.
        let mut roots = Vec::new();
        if let Some(root) = self.symbol("vmap_area_root") {
            roots.push(root);
        } else if let (Some(np), Some(nn)) =
            (self.symbol("vmap_nodes"), self.symbol("nr_vmap_nodes"))
        {
            let nodes = self.read_u64(np)?;
            let n = self.read_u32(nn)?.min(4096) as u64;
            let size = self.types()?.size_of(self.struct_id("vmap_node")?);
            let busy = self.offset_of("vmap_node", "busy.root")?;
            roots.extend(
                (0..n).map(|i| nodes.wrapping_add(i.wrapping_mul(size)).wrapping_add(busy)),
            );
        }
        let has_tree = !roots.is_empty();
        for root in roots {
            let mut node = self.read_u64(root)?;
            let mut guard = 0;
            while node != 0 && guard < 128 {
                guard += 1;
                let va = node.wrapping_sub(rb_off);
                let s = self.read_u64(va + start_off)?;
                let e = self.read_u64(va + end_off)?;
                node = if addr < s {
                    self.read_u64(node + 16)? // rb_left
                } else if addr >= e {
                    self.read_u64(node + 8)? // rb_right
                } else {
                    found = Some((va, s, e));
                    break;
                };
            }
            if found.is_some() {
                break;
            }
        }
        if found.is_none() && !has_tree {
            let Some(head) = self.symbol("vmap_area_list") else {
                return Ok(None);
            };
            let list_off = self.offset_of("vmap_area", "list")?;
            let w = crate::list::walk_list(self, head, 1 << 20);
            for n in w.nodes {
                let va = n.wrapping_sub(list_off);
                let s = self.read_u64(va + start_off)?;
                let e = self.read_u64(va + end_off)?;
                if (s..e).contains(&addr) {
                    found = Some((va, s, e));
                    break;
                }
            }
        }
        let Some((va, va_start, va_end)) = found else {
            return Ok(None);
        };
        let vm = self.read_member(va, "vmap_area", "vm").unwrap_or(0);
        let (mut size, mut flags, mut caller, mut nr_pages, mut base) =
            (va_end.saturating_sub(va_start), 0, 0, 0, va_start);
        if vm != 0 {
            size = self.read_member(vm, "vm_struct", "size").unwrap_or(size);
            flags = self.read_member(vm, "vm_struct", "flags").unwrap_or(0);
            caller = self.read_member(vm, "vm_struct", "caller").unwrap_or(0);
            nr_pages = self.read_member(vm, "vm_struct", "nr_pages").unwrap_or(0);
            base = self
                .read_member(vm, "vm_struct", "addr")
                .unwrap_or(va_start);
        }
        let usable_size = if vm != 0 && flags & VM_NO_GUARD == 0 {
            size.saturating_sub(PAGE)
        } else {
            size
        };
        let offset = addr.wrapping_sub(base);
        Ok(Some(VmallocArea {
            addr,
            va,
            va_start,
            va_end,
            vm,
            size,
            usable_size,
            nr_pages,
            flags,
            caller,
            caller_symbol: (caller != 0)
                .then(|| {
                    self.lookup(caller)
                        .map(|(s, o)| format!("{}+{o:#x}", s.name))
                })
                .flatten(),
            guard_page: offset >= usable_size,
            offset,
        }))
    }
}

/// Decode a SLUB free pointer stored at `at`.
///
/// Folklore: with CONFIG_SLAB_FREELIST_HARDENED (4.14+, commit 2482ddec670f) the free pointer
/// is stored as `ptr ^ s->random ^ swab(at)`, where `at` is the address the pointer is stored
/// at. `kmem_cache` has the `random` member only with the option, so its presence is the
/// probe. This always byte-swaps `at`, which is the 5.7+ form (commit 1ad53d9fa3f6); kernels
/// 4.14-5.6 stored `ptr ^ random ^ at` unswapped and are not decoded right here (no lab
/// kernel has that form; a probe would try both and keep the one that lands in the slab).
/// Pinned by `tests::freeptr` and the lab's `uaf`/`double_free` dumps
/// (`lab_slab_and_vmalloc`).
pub fn decode_freeptr(raw: u64, at: u64, random: Option<u64>) -> u64 {
    match random {
        Some(r) => raw ^ r ^ at.swap_bytes(),
        None => raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn freeptr() {
        let at = 0xffff888003a1c040u64;
        let ptr = 0xffff888003a1c080u64;
        let random = 0x1234_5678_9abc_def0u64;
        let stored = ptr ^ random ^ at.swap_bytes();
        assert_eq!(decode_freeptr(stored, at, Some(random)), ptr);
        assert_eq!(decode_freeptr(ptr, at, None), ptr);
        // end of the list: NULL is stored obfuscated too
        assert_eq!(
            decode_freeptr(random ^ at.swap_bytes(), at, Some(random)),
            0
        );
    }
}
