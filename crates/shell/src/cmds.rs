//! Session commands over the kernel helpers: `list`, `dis`, `mod`, `runq` (crash's names and
//! layouts; JSON shapes in docs/json/core.md).

use crate::session::{parse_num, usage, CmdError, Output, Session};
use kmortem_kernel::list::{walk_hlist, walk_list, End, DEFAULT_LIMIT};
use kmortem_kernel::mem::{Memory, KERNEL_IMAGE_END, START_KERNEL_MAP};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the commands keep between calls.
#[derive(Default)]
pub struct State {
    /// Extra directories searched for module `.ko` files (`mod -S DIR`).
    module_dirs: Vec<PathBuf>,
    /// Explicit module files (`mod -s NAME FILE`).
    module_files: HashMap<String, PathBuf>,
    /// The vmlinux opened by kmortem-symbols for line tables (`dis -l`), once.
    lines: Option<Option<Arc<kmortem_symbols::Binary>>>,
}

impl Session {
    /// Add a directory searched for module debug files (the CLI's `--modules DIR`).
    pub fn add_module_dir(&mut self, dir: &Path) {
        self.cmds.module_dirs.push(dir.to_path_buf());
    }

    fn member_offset(&self, spec: &str) -> Result<u64, CmdError> {
        if let Some(n) = parse_num(spec) {
            return Ok(n);
        }
        let (t, m) = spec
            .split_once('.')
            .ok_or_else(|| usage(format!("{spec}: expected OFFSET or TYPE.member")))?;
        Ok(self.prog.offset_of(t.trim_start_matches("struct "), m)?)
    }

    /// `list [-o OFFSET|TYPE.member] [-s TYPE.member] [-H|-h] ADDR`
    pub(crate) fn cmd_list(&mut self, args: &[&str]) -> Result<Output, CmdError> {
        const USAGE: &str =
            "usage: list [-o OFFSET|TYPE.member] [-s TYPE.member] [-H|-h] ADDR|SYMBOL";
        let mut offset = 0u64;
        let mut head_mode = false;
        let mut hlist = false;
        let mut pos = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match *a {
                "-o" | "-s" => {
                    let v = it.next().ok_or_else(|| usage(USAGE))?;
                    offset = self.member_offset(v)?;
                }
                "-H" => head_mode = true,
                "-h" => {
                    hlist = true;
                    head_mode = true;
                }
                s if s.starts_with('-') && parse_num(s).is_none() => {
                    return Err(usage(format!("list: unknown option {s}; {USAGE}")))
                }
                s => pos.push(s),
            }
        }
        let [start] = pos[..] else {
            return Err(usage(USAGE));
        };
        let start = self.resolve_addr(start)?;
        // crash: without -H, ADDR is the first structure (its list_head at ADDR+offset) and is
        // printed; with -H, ADDR is a bare list head and is not.
        let (walk, first) = if hlist {
            (walk_hlist(&self.prog, start, DEFAULT_LIMIT), None)
        } else if head_mode {
            (walk_list(&self.prog, start, DEFAULT_LIMIT), None)
        } else {
            (
                walk_list(&self.prog, start.wrapping_add(offset), DEFAULT_LIMIT),
                Some(start),
            )
        };
        // An unreadable start is a bad address, not a corrupted list.
        if let End::Corrupted(b) = &walk.end {
            if b.index == 0 {
                if let kmortem_kernel::list::Corruption::Unreadable { .. } = b.corruption {
                    self.prog.read_u64(b.node)?;
                }
            }
        }
        let mut entries: Vec<u64> = first.into_iter().collect();
        entries.extend(walk.containers(offset));
        let mut t = String::new();
        for e in &entries {
            t.push_str(&format!("{e:016x}\n"));
        }
        match &walk.end {
            End::Complete => {}
            End::Cycle { at } => t.push_str(&format!(
                "list: loop detected: {at:x} comes back without reaching the head\n"
            )),
            End::Corrupted(b) => t.push_str(&format!("{b}\n")),
            End::Limit { limit } => t.push_str(&format!("list: stopped after {limit} entries\n")),
        }
        let mut j = serde_json::to_value(&walk).unwrap_or(Value::Null);
        j["offset"] = json!(offset);
        j["entries"] = json!(entries
            .iter()
            .map(|e| format!("{e:#x}"))
            .collect::<Vec<_>>());
        Ok(Output { text: t, json: j })
    }

    fn line_binary(&mut self) -> Option<Arc<kmortem_symbols::Binary>> {
        if self.cmds.lines.is_none() {
            let b = self
                .prog
                .vmlinux
                .as_ref()
                .and_then(|v| kmortem_symbols::Binary::open(&v.path).ok())
                .map(Arc::new);
            self.cmds.lines = Some(b);
        }
        self.cmds.lines.clone().flatten()
    }

    fn sym_off(&self, a: u64) -> Option<String> {
        let (s, off) = self.prog.lookup(a)?;
        Some(if off == 0 {
            s.name
        } else {
            format!("{}+{off}", s.name)
        })
    }

    /// `dis [-l] ADDR|FUNC [COUNT]`
    pub(crate) fn cmd_dis(&mut self, args: &[&str]) -> Result<Output, CmdError> {
        const USAGE: &str = "usage: dis [-l] ADDR|FUNC [COUNT]";
        let lines = args.contains(&"-l");
        let pos: Vec<&str> = args.iter().copied().filter(|a| *a != "-l").collect();
        if let Some(bad) = pos.iter().find(|a| a.starts_with('-')) {
            return Err(usage(format!("dis: unknown option {bad}; {USAGE}")));
        }
        let Some(target) = pos.first() else {
            return Err(usage(USAGE));
        };
        let addr = self.resolve_addr(target)?;
        let count = match pos.get(1) {
            Some(c) => Some(
                c.parse::<usize>()
                    .map_err(|_| usage(format!("dis: bad count {c}")))?
                    .clamp(1, 100_000),
            ),
            None => None,
        };
        // A function name without a count: the whole function (crash's `dis FUNC`).
        let whole = count.is_none() && parse_num(target).is_none();
        let len = if whole {
            let (s, off) = self
                .prog
                .lookup(addr)
                .ok_or_else(|| usage(format!("dis: {target}: no symbol")))?;
            let size = if s.size > 0 { s.size } else { 256 };
            size.saturating_sub(off).clamp(1, 1 << 20) as usize
        } else {
            count.unwrap_or(1) * 15
        };
        let bytes = read_prefix(&self.prog, addr, len);
        if bytes.is_empty() {
            // The same error a plain read gives (hole or unmapped).
            self.prog.read(addr, &mut [0u8; 1])?;
        }
        let d = kmortem_disasm::decode(
            kmortem_disasm::Arch::X86_64,
            &bytes,
            Some(0),
            Some(addr),
            &Default::default(),
        );
        let mut insns = d.from_trap;
        if let Some(c) = count {
            insns.truncate(c);
        } else if !whole {
            insns.truncate(1);
        }
        // The last instruction may be cut by the end of the readable bytes.
        if insns.last().is_some_and(|i| i.invalid) && insns.len() > 1 {
            insns.pop();
        }
        let in_image = (START_KERNEL_MAP..KERNEL_IMAGE_END).contains(&addr);
        let file = if in_image && self.prog.vmlinux.is_some() {
            let end = insns
                .last()
                .map(|i| (i.address - addr) as usize + i.bytes.len())
                .unwrap_or(0);
            self.prog.vmlinux_bytes(addr, end)
        } else {
            None
        };
        let bin = if lines { self.line_binary() } else { None };
        let kaslr = self.prog.kaslr;
        let mut t = String::new();
        let mut rows = Vec::new();
        let mut last_line = None;
        let mut differ = 0;
        for i in &insns {
            let sym = self.sym_off(i.address);
            let mut text = self.annotate(&i.text);
            let o = (i.address - addr) as usize;
            let built = file.as_ref().and_then(|f| f.get(o..o + i.bytes.len()));
            let patched = built.is_some_and(|b| !same_text(&i.bytes, b, kaslr));
            let mut note = None;
            if patched {
                differ += 1;
                let b = built.unwrap_or_default();
                // Folklore: ftrace turns each `call __fentry__` at a function's entry into a
                // 5-byte NOP at boot (ftrace_init() -> ftrace_process_locs(), since 2.6.27;
                // crash marks it `[FTRACE NOP]`); alternatives (apply_alternatives()),
                // static keys (jump_label_init()) and paravirt patching rewrite other
                // sites. The dump holds the patched text, vmlinux the text as built.
                if b.first() == Some(&0xe8) && i.text.starts_with("nop") && b.len() == 5 {
                    note = Some("FTRACE NOP".to_string());
                } else {
                    note = Some(format!("patched at boot: vmlinux has {}", hex_bytes(b)));
                }
            }
            if let Some(n) = &note {
                text.push_str(&format!(" [{n}]"));
            }
            let mut src = None;
            if let Some(b) = &bin {
                let frames = b
                    .source_frames(i.address.wrapping_sub(kaslr))
                    .unwrap_or_default();
                if let Some(f) = frames.first() {
                    let file = f.short_file.clone().or(f.file.clone()).unwrap_or_default();
                    let key = (file.clone(), f.line);
                    if last_line.as_ref() != Some(&key) {
                        t.push_str(&format!("{file}: {}\n", f.line));
                        last_line = Some(key);
                    }
                    src = Some(json!({"file": file, "line": f.line}));
                }
            }
            let label = sym.clone().map(|s| format!(" <{s}>")).unwrap_or_default();
            t.push_str(&format!("{:#x}{label}:\t{text}\n", i.address));
            rows.push(json!({
                "address": format!("{:#x}", i.address),
                "symbol": sym,
                "bytes": hex_bytes(&i.bytes),
                "text": text,
                "source": src,
                "patched": patched,
                "note": note,
                "vmlinux_bytes": built.filter(|_| patched).map(hex_bytes),
            }));
        }
        if lines && bin.is_none() {
            t.push_str("dis: -l needs the vmlinux's line tables (-s VMLINUX)\n");
        }
        if file.is_none() && in_image && self.prog.vmlinux.is_some() {
            t.push_str("dis: the vmlinux has no bytes for this range (not checked)\n");
        }
        Ok(Output {
            text: t,
            json: json!({
                "address": format!("{addr:#x}"),
                "checked_against_vmlinux": file.is_some(),
                "patched": differ,
                "instructions": rows,
            }),
        })
    }

    /// gdb's annotations: `<sym+off>` after branch targets and RIP-relative comments.
    fn annotate(&self, text: &str) -> String {
        if let Some((ins, c)) = text.split_once("        # ") {
            if let Ok(a) = u64::from_str_radix(c.trim(), 16) {
                // Folklore: x86-64 per-CPU accesses are `%gs:sym(%rip)` since 6.8 (Uros
                // Bizjak's "x86/percpu: Introduce %rip-relative addressing to PER_CPU_VAR");
                // before, `%gs:0x1fb80` with an absolute offset and no comment. The target is
                // then a per-CPU offset (`# 0x35000`), which gdb, and so crash's `dis`, names
                // after the per-CPU variable (`<pcpu_hot>`). Pinned by
                // `lab_dis_runq_mod_match_crash` (gdb as the oracle on 6.12).
                let name = if a < START_KERNEL_MAP {
                    self.prog.lookup_percpu(a).map(|(s, off)| {
                        if off == 0 {
                            s.name
                        } else {
                            format!("{}+{off}", s.name)
                        }
                    })
                } else {
                    self.sym_off(a)
                };
                let s = name.map(|s| format!(" <{s}>")).unwrap_or_default();
                return format!("{ins}        # {a:#x}{s}");
            }
        }
        let mnem = text.split_whitespace().next().unwrap_or("");
        if mnem.starts_with('j') || mnem.starts_with("call") || mnem.starts_with("loop") {
            if let Some(op) = text.split_whitespace().nth(1) {
                if let Some(h) = op.strip_prefix("0x") {
                    if let Ok(a) = u64::from_str_radix(h, 16) {
                        if let Some(s) = self.sym_off(a) {
                            return format!("{text} <{s}>");
                        }
                    }
                }
            }
        }
        text.to_string()
    }

    /// `mod [-S DIR] [-s NAME FILE]`
    pub(crate) fn cmd_mod(&mut self, args: &[&str]) -> Result<Output, CmdError> {
        const USAGE: &str = "usage: mod [-S DIR] [-s NAME FILE]";
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match *a {
                "-S" => {
                    let d = it.next().ok_or_else(|| usage(USAGE))?;
                    if !Path::new(d).is_dir() {
                        return Err(usage(format!("mod: {d}: not a directory")));
                    }
                    self.cmds.module_dirs.push(PathBuf::from(d));
                }
                "-s" => {
                    let (Some(n), Some(f)) = (it.next(), it.next()) else {
                        return Err(usage(USAGE));
                    };
                    let p = PathBuf::from(f);
                    if !p.is_file() {
                        return Err(usage(format!("mod: {f}: no such file")));
                    }
                    self.cmds.module_files.insert(n.replace('-', "_"), p);
                }
                s => return Err(usage(format!("mod: unexpected {s}; {USAGE}"))),
            }
        }
        let found = self.module_files();
        let mut mods: Vec<&kmortem_kernel::program::Module> = self.prog.modules().iter().collect();
        mods.sort_by_key(|m| m.addr);
        let w = mods.iter().map(|m| m.name.len()).max().unwrap_or(4).max(4);
        let mut t = format!(
            "     MODULE       {:<w$}       BASE         SIZE  OBJECT FILE\n",
            "NAME"
        );
        let mut rows = Vec::new();
        for m in mods {
            let f = found.get(&m.name.replace('-', "_"));
            t.push_str(&format!(
                "{:016x}  {:<w$}  {:016x}  {:>5}  {}\n",
                m.addr,
                m.name,
                m.base,
                m.size,
                f.map(|p| p.display().to_string())
                    .unwrap_or_else(|| "(not found)".into())
            ));
            rows.push(json!({
                "name": m.name,
                "addr": format!("{:#x}", m.addr),
                "base": format!("{:#x}", m.base),
                "size": m.size,
                "regions": m.regions,
                "symbols": m.symbols.len(),
                "debuginfo": f.map(|p| p.display().to_string()),
            }));
        }
        Ok(Output {
            text: t,
            json: Value::Array(rows),
        })
    }

    /// Module name -> `.ko` with debug info: `mod -s` files, `mod -S`/`--modules`
    /// directories, then kmortem-symbols' usual places for the release (under the vmlinux's
    /// debug root and `/`).
    fn module_files(&self) -> HashMap<String, PathBuf> {
        let mut roots = Vec::new();
        if let Some(v) = &self.prog.vmlinux {
            // ROOT/usr/lib/debug/boot/vmlinux-REL: ROOT is a debug root.
            let mut p = v.path.as_path();
            for _ in 0..5 {
                match p.parent() {
                    Some(q) => p = q,
                    None => break,
                }
            }
            if v.path.to_string_lossy().contains("usr/lib/debug/boot/") {
                roots.push(p.to_path_buf());
            }
        }
        let rel = self.prog.vmcoreinfo.osrelease.clone();
        let mut dirs = self.cmds.module_dirs.clone();
        dirs.extend(kmortem_symbols::locate::module_dirs(
            rel.as_deref(),
            &roots,
            true,
        ));
        let mut idx = HashMap::new();
        for d in &dirs {
            kmortem_symbols::locate::index_modules(d, &mut idx, 0);
        }
        // a file counts as debug info only when it has DWARF (opened for loaded modules only)
        let loaded: std::collections::HashSet<String> = self
            .prog
            .modules()
            .iter()
            .map(|m| m.name.replace('-', "_"))
            .collect();
        idx.retain(|n, _| loaded.contains(n));
        idx.retain(|_, p| {
            kmortem_symbols::Binary::open(p)
                .map(|b| b.has_dwarf())
                .unwrap_or(false)
        });
        for (n, p) in &self.cmds.module_files {
            idx.insert(n.clone(), p.clone());
        }
        // A file of another build is named and left out, never used quietly.
        let prog = &self.prog;
        idx.retain(|n, p| match prog.module_file_mismatch(n, p) {
            Some(why) => {
                prog.warnings.push(
                    kmortem_kernel::warnings::Warning::new(
                        kmortem_kernel::warnings::Kind::ModuleMismatch,
                        why,
                    )
                    .what(format!("module {n}")),
                );
                false
            }
            None => true,
        });
        idx
    }

    /// `kmem ADDR`: the slab object or vmalloc area holding ADDR (crash's `kmem ADDR`).
    pub(crate) fn cmd_kmem(&mut self, args: &[&str]) -> Result<Output, CmdError> {
        let [a] = args else {
            return Err(usage("usage: kmem ADDR|SYMBOL"));
        };
        let addr = self.resolve_addr(a)?;
        let p = &self.prog;
        let mut t = String::new();
        if let Some(v) = p.vmalloc_area(addr)? {
            t.push_str("    VMAP_AREA         VM_STRUCT                 ADDRESS RANGE                SIZE\n");
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

    /// `runq`
    pub(crate) fn cmd_runq(&mut self, args: &[&str]) -> Result<Output, CmdError> {
        if let Some(a) = args.first() {
            return Err(usage(format!("runq: unexpected {a}; usage: runq")));
        }
        let p = &self.prog;
        let rt_active = p.offset_of("rq", "rt.active")?;
        let timeline = p.offset_of("rq", "cfs.tasks_timeline")?;
        let mut t = String::new();
        let mut cpus = Vec::new();
        for (n, cpu) in p.present_cpus().into_iter().enumerate() {
            let rq = p.per_cpu("runqueues", cpu)?;
            let curr = p.read_member(rq, "rq", "curr")?;
            let cur = self.task_row(curr);
            if n > 0 {
                t.push('\n');
            }
            t.push_str(&format!("CPU {cpu} RUNQUEUE: {rq:x}\n"));
            t.push_str(&format!(
                "  CURRENT: PID: {:<6} TASK: {curr:x}  COMMAND: \"{}\"\n",
                cur.1, cur.2
            ));
            let rt = self.rt_tasks(rq + rt_active)?;
            t.push_str(&format!("  RT PRIO_ARRAY: {:x}\n", rq + rt_active));
            self.push_rows(&mut t, &rt, "     ");
            let mut groups = Vec::new();
            let cfs = self.cfs_tasks(rq + timeline, 0, &mut groups)?;
            t.push_str(&format!("  CFS RB_ROOT: {:x}\n", rq + timeline));
            self.push_rows(&mut t, &cfs, "     ");
            let js = |v: &[(u64, i64, u32)]| {
                v.iter()
                    .map(|&(task, prio, depth)| {
                        let r = self.task_row(task);
                        json!({"task": format!("{task:#x}"), "pid": r.1, "comm": r.2, "prio": prio, "group_depth": depth})
                    })
                    .collect::<Vec<_>>()
            };
            cpus.push(json!({
                "cpu": cpu,
                "rq": format!("{rq:#x}"),
                "current": {"task": format!("{curr:#x}"), "pid": cur.1, "comm": cur.2},
                "rt_prio_array": format!("{:#x}", rq + rt_active),
                "rt": js(&rt),
                "cfs_rb_root": format!("{:#x}", rq + timeline),
                "cfs": js(&cfs),
            }));
        }
        Ok(Output {
            text: t,
            json: Value::Array(cpus),
        })
    }

    fn push_rows(&self, t: &mut String, rows: &[(u64, i64, u32)], pad: &str) {
        if rows.is_empty() {
            t.push_str(&format!("{pad}[no tasks queued]\n"));
        }
        for &(task, prio, depth) in rows {
            let r = self.task_row(task);
            t.push_str(&format!(
                "{pad}{}[{prio:3}] PID: {:<6} TASK: {task:x}  COMMAND: \"{}\"\n",
                "   ".repeat(depth as usize),
                r.1,
                r.2
            ));
        }
    }

    fn task_row(&self, task: u64) -> (u64, i64, String) {
        let p = &self.prog;
        let pid = p.read_member(task, "task_struct", "pid").unwrap_or(0) as u32 as i32 as i64;
        let comm = p
            .offset_of("task_struct", "comm")
            .ok()
            .and_then(|o| p.read_cstr(task + o, 16).ok())
            .map(|c| String::from_utf8_lossy(&c).into_owned())
            .unwrap_or_default();
        (task, pid, comm)
    }

    /// RT tasks: `rt_prio_array.queue[prio]` lists of `sched_rt_entity.run_list`.
    fn rt_tasks(&self, array: u64) -> Result<Vec<(u64, i64, u32)>, CmdError> {
        let p = &self.prog;
        let queue = p.offset_of("rt_prio_array", "queue")?;
        let rt_off = p.offset_of("task_struct", "rt")?;
        let run_list = p.offset_of("sched_rt_entity", "run_list")?;
        let mut out = Vec::new();
        for prio in 0..100u64 {
            let head = array + queue + prio * 16;
            let w = walk_list(p, head, 100_000);
            for n in w.nodes {
                out.push((n - run_list - rt_off, prio as i64, 0));
            }
        }
        Ok(out)
    }

    /// CFS tasks in vruntime order: an in-order walk of `cfs_rq.tasks_timeline`; a group
    /// entity (`se->my_q` set) is walked into.
    fn cfs_tasks(
        &self,
        root: u64,
        depth: u32,
        groups: &mut Vec<u64>,
    ) -> Result<Vec<(u64, i64, u32)>, CmdError> {
        let p = &self.prog;
        let run_node = p.offset_of("sched_entity", "run_node")?;
        let se_off = p.offset_of("task_struct", "se")?;
        let my_q = p.offset_of("sched_entity", "my_q").ok();
        let timeline = p.offset_of("cfs_rq", "tasks_timeline")?;
        let mut out = Vec::new();
        let mut nodes = Vec::new();
        // iterative in-order walk; rb_node = { __rb_parent_color, rb_right, rb_left }
        let mut stack = Vec::new();
        let mut n = p.read_u64(root)?;
        let mut guard = 0;
        while (n != 0 || !stack.is_empty()) && guard < 1_000_000 {
            guard += 1;
            while n != 0 && stack.len() < 128 {
                stack.push(n);
                n = p.read_u64(n + 16).unwrap_or(0);
            }
            let Some(x) = stack.pop() else { break };
            nodes.push(x);
            n = p.read_u64(x + 8).unwrap_or(0);
        }
        for node in nodes {
            let se = node - run_node;
            let q = my_q.and_then(|o| p.read_u64(se + o).ok()).unwrap_or(0);
            if q != 0 {
                if depth < 8 && !groups.contains(&q) {
                    groups.push(q);
                    out.extend(self.cfs_tasks(q + timeline, depth + 1, groups)?);
                }
                continue;
            }
            let task = se - se_off;
            let prio = p.read_member(task, "task_struct", "prio").unwrap_or(0) as u32 as i32;
            out.push((task, prio as i64, depth));
        }
        Ok(out)
    }
}

/// Read up to `len` bytes, stopping at the first unreadable page.
fn read_prefix(m: &dyn Memory, addr: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut a = addr;
    while out.len() < len {
        let n = (4096 - (a % 4096) as usize).min(len - out.len());
        let mut b = vec![0u8; n];
        if m.read(a, &mut b).is_err() {
            break;
        }
        out.extend_from_slice(&b);
        a += n as u64;
    }
    out
}

/// Are the dump's bytes the vmlinux's, once KASLR's relocations are applied?
///
/// Folklore: the decompressor relocates the kernel by the KASLR delta
/// (arch/x86/boot/compressed/misc.c handle_relocations(), since 3.14): 32- and 64-bit
/// absolute addresses get `+delta`, and 32-bit "inverse" relocations (RIP-relative
/// references to per-CPU symbols, which do not move) get `-delta`. So one 4- or 8-byte
/// field of an instruction may differ by the delta without anything being patched.
/// Pinned by `lab_no_debug_info` (`dis` on a KASLR dump).
fn same_text(mem: &[u8], file: &[u8], kaslr: u64) -> bool {
    if mem == file {
        return true;
    }
    if mem.len() != file.len() || kaslr == 0 {
        return false;
    }
    for w in [4usize, 8] {
        if mem.len() < w {
            continue;
        }
        for o in 0..=mem.len() - w {
            if mem[..o] != file[..o] || mem[o + w..] != file[o + w..] {
                continue;
            }
            let mut m = [0u8; 8];
            let mut f = [0u8; 8];
            m[..w].copy_from_slice(&mem[o..o + w]);
            f[..w].copy_from_slice(&file[o..o + w]);
            let (m, f) = (u64::from_le_bytes(m), u64::from_le_bytes(f));
            let mask = if w == 4 { 0xffff_ffff } else { u64::MAX };
            if m == f.wrapping_add(kaslr) & mask || m == f.wrapping_sub(kaslr) & mask {
                return true;
            }
        }
    }
    false
}

fn hex_bytes(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
