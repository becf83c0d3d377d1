//! With a vmcore: memory facts behind the console findings — the slab object a pointer points
//! into (cache, object start, free or not), the vmalloc area of a bad address with the real
//! length of an array indexed out of range, and the damaged list walked to where it breaks.

use crate::{Confidence, Finding};
use kmortem_kernel::list::walk_list;
use kmortem_kernel::Program;
use kmortem_oops::{Kind, Report};
use kmortem_symbols::Symbolizer;

const GP: [&str; 15] = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
    "r15",
];

fn hexfact(f: &Finding, k: &str) -> Option<u64> {
    let v = f.facts.get(k)?;
    u64::from_str_radix(v.trim_start_matches("0x"), 16).ok()
}

/// A module's static variable (or a vmlinux symbol) containing a runtime address:
/// `stale.leaf_cfs_rq_list`, `a.link`.
fn name_address(prog: &Program, sym: &mut Symbolizer, addr: u64) -> Option<String> {
    for m in prog.modules() {
        if m.size > 0 && !(m.base..m.base + m.size).contains(&addr) {
            continue;
        }
        let s = m
            .symbols
            .iter()
            .filter(|s| s.addr <= addr && addr < s.addr + s.size.max(1))
            .max_by_key(|s| s.addr)?;
        let off = addr - s.addr;
        let short = s.name.split('.').next().unwrap_or(&s.name).to_string();
        // Member path through the module's DWARF.
        if let Some(bin) = sym.module(&m.name) {
            if let Some((i, _)) = bin.symbols_named(&s.name).next() {
                let la = bin.symbols[i].address + off;
                if let Some((vn, Some(t), voff)) = bin.static_variable_at(la) {
                    if let Some((p, _)) = crate::origin::shallow_member(&bin, t, voff) {
                        return Some(format!("{vn}.{p}"));
                    }
                    if voff == 0 {
                        return Some(vn);
                    }
                }
            }
        }
        return Some(if off == 0 {
            short
        } else {
            format!("{short}+{off:#x}")
        });
    }
    // Heap: the slab object holding it (container_of by cache: the member is at that offset).
    if let Ok(Some(o)) = prog.slab_object(addr) {
        return Some(format!(
            "{:#x}+{:#x} in a{} kmem_cache {} object",
            o.object,
            o.offset,
            if o.free == Some(true) {
                " FREED"
            } else {
                "n allocated"
            },
            o.cache_name
        ));
    }
    let (s, off) = prog.lookup(addr)?;
    Some(if off == 0 {
        s.name
    } else {
        format!("{}+{off:#x}", s.name)
    })
}

pub fn explain(report: &Report, prog: &Program, sym: &mut Symbolizer, found: &mut Vec<Finding>) {
    let mut extra = Vec::new();
    // 1. Registers pointing into freed slab objects (and the bad pointer's own object).
    let poisoned = found
        .iter()
        .any(|f| f.facts.get("class").is_some_and(|c| c.starts_with("slab_")));
    let mut seen = std::collections::HashSet::new();
    // Registers of a stuck CPU or a BUG hold whatever the code last used: only a fault (or a
    // BUG, the allocator's double-free check) makes a freed object in a register relevant, and
    // only a slab-poisoned bad pointer makes it the cause (high).
    let relevant = matches!(
        report.kind,
        Kind::NullPointerDereference
            | Kind::PagingRequest
            | Kind::GeneralProtectionFault
            | Kind::KernelBug
            | Kind::Kasan
    );
    for r in GP {
        if !relevant {
            break;
        }
        let Some(&v) = report.registers.get(r) else {
            continue;
        };
        if v < 0xffff_8000_0000_0000 || kmortem_symbols_class_bad(v) {
            continue;
        }
        let Ok(Some(o)) = prog.slab_object(v) else {
            continue;
        };
        if o.free != Some(true) || o.offset >= o.object_size || !seen.insert(o.object) {
            continue;
        }
        let mut f = Finding::new(
            "freed_object",
            format!(
                "%{r} = {v:#x} points into a FREED object of kmem_cache `{}` (object {:#x} + {:#x}, {} bytes){}",
                o.cache_name,
                o.object,
                o.offset,
                o.object_size,
                if poisoned {
                    ": the poisoned pointer was read from freed memory like this (use after free)"
                } else {
                    " (a freed object still in use, or a stale register)"
                }
            ),
            if poisoned {
                Confidence::High
            } else {
                Confidence::Medium
            },
        );
        f.evidence.push(format!(
            "vmcore: slab {:#x} of cache {} ({:#x}), object index {} of {}, on the freelist",
            o.slab, o.cache_name, o.cache, o.index, o.objects
        ));
        if let Some(e) = &o.freelist_error {
            f.evidence.push(format!("freelist walk: {e}"));
        }
        f.fact("register", r);
        f.fact("cache", o.cache_name.clone());
        f.fact("object", format!("{:#x}", o.object));
        f.fact("free", "true");
        extra.push(f);
    }
    // 2. A bad address in a vmalloc area: its allocation and, for an array element, the index
    //    against the allocation's real length.
    for f in found.iter() {
        if f.kind != "bad_pointer" {
            continue;
        }
        let Some(addr) = hexfact(f, "address") else {
            continue;
        };
        let Ok(Some(a)) = prog.vmalloc_area(addr) else {
            continue;
        };
        let mut g = Finding::new(
            "vmalloc_bounds",
            format!(
                "{addr:#x} is {:#x} bytes into the vmalloc area {:#x}-{:#x} ({} usable bytes{}), {}",
                a.offset,
                a.va_start,
                a.va_end,
                a.usable_size,
                a.caller_symbol
                    .as_ref()
                    .map(|c| format!(", allocated by {c}"))
                    .unwrap_or_default(),
                if a.guard_page || a.offset >= a.usable_size {
                    "past its end (guard page): out of bounds"
                } else {
                    "inside it"
                }
            ),
            if a.guard_page || a.offset >= a.usable_size {
                Confidence::High
            } else {
                Confidence::Medium
            },
        );
        g.evidence.push(format!(
            "vmcore: vmap_area {:#x}-{:#x}, vm_struct {:#x}, {} pages",
            a.va_start, a.va_end, a.vm, a.nr_pages
        ));
        if let (Some(arr), Some(es)) = (
            f.facts.get("array"),
            f.facts
                .get("element_size")
                .and_then(|s| s.parse::<u64>().ok()),
        ) {
            if es > 0 && (a.offset >= a.usable_size || a.guard_page) {
                let base = addr - a.offset;
                let value = hexfact(f, "value").unwrap_or(addr);
                let idx = value.wrapping_sub(base) / es;
                let len = a.usable_size / es;
                g.summary = format!(
                    "index {idx} of `{arr}[]` ({es}-byte elements) is out of range: the array's vmalloc allocation ({} usable bytes{}) holds at most {len} elements",
                    a.usable_size,
                    a.caller_symbol
                        .as_ref()
                        .map(|c| format!(", by {c}"))
                        .unwrap_or_default()
                );
                g.kind = "array_index".into();
                g.fact("index", idx.to_string());
                g.fact("max_length", len.to_string());
                g.fact("array", arr.clone());
                g.evidence.push(format!(
                    "element address {value:#x} - array start {base:#x} = {:#x} = {idx} × {es}",
                    value - base
                ));
            }
        }
        extra.push(g);
    }
    // 3. Damaged lists: walk from the entry (list_del) or the node before the bad link.
    for f in found.iter() {
        if f.kind != "list_corruption" {
            continue;
        }
        let start = hexfact(f, "entry").or_else(|| hexfact(f, "arg.prev.value"));
        let Some(start) = start else { continue };
        let w = walk_list(prog, start, 100_000);
        let where_ = name_address(prog, sym, start);
        let mut g = Finding::new(
            "list_walk",
            match w.corruption() {
                Some(b) => format!(
                    "walking the list from {start:#x}{}: {b}{}{}",
                    where_
                        .as_ref()
                        .map(|n| format!(" (`{n}`)"))
                        .unwrap_or_default(),
                    if w.nodes.is_empty() {
                        " (at the first node)".to_string()
                    } else {
                        format!(" (after {} good nodes)", w.nodes.len())
                    },
                    name_address(prog, sym, b.node)
                        .map(|n| format!("; the bad node is `{n}`"))
                        .unwrap_or_default()
                ),
                None => format!(
                    "walking the list from {start:#x}{}: {} nodes, it ends {:?}",
                    where_
                        .as_ref()
                        .map(|n| format!(" (`{n}`)"))
                        .unwrap_or_default(),
                    w.nodes.len(),
                    w.end
                ),
            },
            if w.corruption().is_some() {
                Confidence::High
            } else {
                Confidence::Medium
            },
        );
        g.evidence.push(format!(
            "vmcore: list walk {start:#x}{}",
            w.nodes
                .iter()
                .take(6)
                .map(|n| format!(" → {n:#x}"))
                .collect::<String>()
        ));
        if let Some(n) = where_ {
            g.fact("start", n);
        }
        if let Some(b) = w.corruption() {
            g.fact("bad_node", format!("{:#x}", b.node));
            if let Some(n) = name_address(prog, sym, b.node) {
                g.fact("bad_node_name", n);
            }
        }
        extra.push(g);
    }
    found.extend(extra);
    found.sort_by_key(|f| std::cmp::Reverse(f.confidence));
}

/// Values that are never slab addresses (poison, non-canonical).
fn kmortem_symbols_class_bad(v: u64) -> bool {
    crate::pointer::classify(v).is_some()
}
