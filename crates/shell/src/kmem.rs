//! `kmem ADDR`: the slab object (cache, free or allocated) or vmalloc area (caller, guard page)
//! holding an address, in crash's layout.

use crate::args::resolve_addr;
use crate::output::{usage, CmdError, Output};
use kmortem_kernel::Program;
use serde_json::json;

/// `kmem ADDR`: the slab object or vmalloc area holding ADDR (crash's `kmem ADDR`).
pub(crate) fn kmem(prog: &Program, args: &[&str]) -> Result<Output, CmdError> {
    let [a] = args else {
        return Err(usage("usage: kmem ADDR|SYMBOL"));
    };
    let addr = resolve_addr(prog, a)?;
    let p = prog;
    let mut t = String::new();
    if let Some(v) = p.vmalloc_area(addr)? {
        t.push_str(
            "    VMAP_AREA         VM_STRUCT                 ADDRESS RANGE                SIZE\n",
        );
        t.push_str(&format!(
            "{:016x}  {:016x}  {:016x} - {:016x}  {:>7}\n",
            v.va, v.vm, v.va_start, v.va_end, v.size
        ));
        if let Some(c) = &v.caller_symbol {
            t.push_str(&format!("  CALLER: {c}  PAGES: {}\n", v.nr_pages));
        }
        if v.guard_page {
            t.push_str(&format!(
                "  {addr:x} is on the guard page: {:#x} bytes into the area, {:#x} usable\n",
                v.offset, v.usable_size
            ));
        }
        return Ok(Output {
            text: t,
            json: json!({"vmalloc": v}),
        });
    }
    let o = match p.slab_object(addr) {
        Ok(o) => o,
        Err(kmortem_kernel::program::Error::Read(e)) => {
            return Ok(Output {
                text: format!("{addr:x}: not mapped ({e})\n"),
                json: json!({"kind": "unmapped", "error": e.to_string()}),
            })
        }
        Err(e) => return Err(e.into()),
    };
    let Some(o) = o else {
        let what = p
            .lookup(addr)
            .map(|(s, off)| format!(" ({}+{off:#x})", s.name))
            .unwrap_or_default();
        return Ok(Output {
            text: format!("{addr:x}: not in a slab or a vmalloc area{what}\n"),
            json: json!({"kind": "other"}),
        });
    };
    t.push_str("CACHE             OBJSIZE  NAME\n");
    t.push_str(&format!(
        "{:016x} {:>8}  {}\n",
        o.cache, o.object_size, o.cache_name
    ));
    t.push_str("  SLAB              MEMORY            TOTAL  ALLOCATED  FREE\n");
    t.push_str(&format!(
        "  {:016x}  {:016x} {:>5} {:>10} {:>5}\n",
        o.slab,
        o.slab_base,
        o.objects,
        o.objects.saturating_sub(o.nfree),
        o.nfree
    ));
    t.push_str("  FREE / [ALLOCATED]\n");
    match o.free {
        Some(true) => t.push_str(&format!("   {:016x}  (free)\n", o.object)),
        Some(false) => t.push_str(&format!("  [{:016x}]\n", o.object)),
        None => t.push_str(&format!("  ?{:016x}? (free state unknown)\n", o.object)),
    }
    if o.offset != 0 {
        t.push_str(&format!(
            "  {addr:x} is {:#x} bytes into the object (index {})\n",
            o.offset, o.index
        ));
    }
    if let Some(e) = &o.freelist_error {
        t.push_str(&format!("  freelist: {e}\n"));
    }
    Ok(Output {
        text: t,
        json: json!({"slab": o}),
    })
}
