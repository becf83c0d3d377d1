//! `explain` on the crash lab: the five seed patterns must name the right variable and member
//! (the truth is lab/module/kmlab.c), and no scenario may get a `high` finding that contradicts
//! its known cause. Console log alone, then with the vmcore. On every kernel pinned in
//! `lab/kernels.toml` (`kmortem_lab::each`); a failure names the kernel.

use kmortem_explain::{Confidence, Context, Finding};
use kmortem_lab::Lab;
use kmortem_symbols::Symbolizer;

pub fn explain_console(lab: &Lab, name: &str) -> Vec<Finding> {
    let sc = lab.need(name);
    let log = std::fs::read(sc.console_log()).expect("console.log");
    let text = String::from_utf8_lossy(&log).into_owned();
    // The report that ended the machine (a console may hold benign WARNINGs before it).
    let mut reports = kmortem_oops::parse(&log);
    let pick = kmortem_oops::pick_fatal(&reports).expect("a report in console.log");
    let report = reports.swap_remove(pick.index);
    let mut sym = Symbolizer::new();
    sym.set_vmlinux(&sc.meta.vmlinux).expect("vmlinux");
    sym.add_module_file("kmlab", &sc.meta.kmlab_ko)
        .expect("kmlab.ko");
    let mut ctx = Context {
        sym: &mut sym,
        source: sc.meta.kmlab_source.parent(),
        log: Some(&text),
        program: None,
    };
    let f = kmortem_explain::explain(&report, &mut ctx);
    println!("== {name} [{}]", lab.name());
    for x in &f {
        println!("  [{}] {}: {}", x.confidence.as_str(), x.kind, x.summary);
    }
    f
}

fn fact<'a>(f: &'a Finding, k: &str) -> &'a str {
    f.facts.get(k).map(String::as_str).unwrap_or("")
}

fn first<'a>(fs: &'a [Finding], kind: &str) -> &'a Finding {
    fs.iter()
        .find(|f| f.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} finding in {fs:#?}"))
}

#[test]
fn estats_null_names_stats_and_the_member_chain() {
    kmortem_lab::each(estats_null_names_stats_and_the_member_chain_on);
}

fn estats_null_names_stats_and_the_member_chain_on(lab: &Lab) {
    let fs = explain_console(lab, "estats_null");
    let f = first(&fs, "bad_pointer");
    // kmlab.c: stats = sk->estats (NULL after the ignored kzalloc failure);
    // stats->tables.stack_table is read at offset 0x18.
    assert_eq!(fact(f, "variable"), "stats");
    assert_eq!(fact(f, "derived_from"), "sk->estats");
    assert_eq!(fact(f, "member"), "tables.stack_table");
    assert_eq!(fact(f, "class"), "null");
    assert_eq!(f.confidence, Confidence::High);
    assert_eq!(fs[0].kind, "bad_pointer", "most certain first");
}

#[test]
fn leaf_cfs_rq_names_the_null_next_and_tmp_alone_branch() {
    kmortem_lab::each(leaf_cfs_rq_names_the_null_next_and_tmp_alone_branch_on);
}

fn leaf_cfs_rq_names_the_null_next_and_tmp_alone_branch_on(lab: &Lab) {
    let fs = explain_console(lab, "leaf_cfs_rq");
    let f = first(&fs, "list_corruption");
    // kmlab.c: list_add_rcu(&cfs_rq->leaf_cfs_rq_list, rq->tmp_alone_branch) with
    // rq->tmp_alone_branch->next == NULL.
    assert_eq!(fact(f, "link"), "next");
    assert_eq!(fact(f, "actual"), "0x0");
    let d = fact(f, "arg.next.derivation");
    assert!(d.contains("head->next"), "{d}");
    assert!(d.contains("rq.tmp_alone_branch"), "{d}");
    assert_eq!(f.confidence, Confidence::High);
}

#[test]
fn wrong_cpu_index_names_kcq_and_the_kcqs_array() {
    kmortem_lab::each(wrong_cpu_index_names_kcq_and_the_kcqs_array_on);
}

fn wrong_cpu_index_names_kcq_and_the_kcqs_array_on(lab: &Lab) {
    let fs = explain_console(lab, "wrong_cpu_index");
    let f = first(&fs, "bad_pointer");
    // kmlab.c: kcq = &khd->kcqs[ctx->index_hw[hctx->type]] (khd = hctx->sched_data);
    // spin_lock(&kcq->lock) faults on the vmalloc guard page.
    assert_eq!(fact(f, "derived_from"), "kcq");
    assert!(f.summary.contains("kcqs[…]"), "{}", f.summary);
    assert!(f.summary.contains("sched_data"), "{}", f.summary);
    assert_eq!(fact(f, "access"), "update");
    // Not high: the value alone does not prove the pointer bad (no NULL/poison).
    assert!(f.confidence <= Confidence::Medium);
}

#[test]
fn list_del_corruption_names_the_entry_and_poison() {
    kmortem_lab::each(list_del_corruption_names_the_entry_and_poison_on);
}

fn list_del_corruption_names_the_entry_and_poison_on(lab: &Lab) {
    let fs = explain_console(lab, "list_del_corruption");
    let f = first(&fs, "list_corruption");
    // kmlab.c: kmlab_remove_node(&a) twice: list_del(&a.link) finds LIST_POISON1 in next.
    assert_eq!(fact(f, "link"), "entry->next");
    assert_eq!(fact(f, "actual"), "0xdead000000000100");
    assert_eq!(fact(f, "arg.entry"), "&a.link");
    assert!(f.summary.contains("double list_del"), "{}", f.summary);
}

#[test]
fn uaf_names_dev_refcount_and_the_free_poison() {
    kmortem_lab::each(uaf_names_dev_refcount_and_the_free_poison_on);
}

fn uaf_names_dev_refcount_and_the_free_poison_on(lab: &Lab) {
    let fs = explain_console(lab, "uaf");
    let f = first(&fs, "bad_pointer");
    // kmlab.c: dev = s->dev after kmem_cache_free(s): 0x6b poison; dev->refcount++.
    assert_eq!(fact(f, "variable"), "dev");
    assert_eq!(fact(f, "member"), "refcount");
    assert_eq!(fact(f, "class"), "slab_free_poison");
    assert_eq!(f.confidence, Confidence::High);
}

/// Which finding kinds may be `high` for a scenario's known cause (meta.json `kind`).
fn allowed(kind: &str, f: &Finding) -> bool {
    let class = f.facts.get("class").map(String::as_str);
    match (kind, f.kind.as_str()) {
        ("null_pointer_dereference", "bad_pointer") => matches!(class, Some("null" | "small")),
        ("paging_request", "bad_pointer") => true,
        ("general_protection_fault", "bad_pointer") => !matches!(class, Some("null" | "small")),
        ("list_corruption", "list_corruption") => true,
        ("kernel_bug", "bug_condition") => true,
        ("warning", "warning_condition") => true,
        ("soft_lockup" | "rcu_stall", "lockup_loop") => true,
        ("divide_error", "divide_by_zero") => true,
        ("hung_task", "hung_wait") => true,
        _ => false,
    }
}

#[test]
fn no_wrong_confident_finding_on_any_scenario() {
    kmortem_lab::each(no_wrong_confident_finding_on_any_scenario_on);
}

fn no_wrong_confident_finding_on_any_scenario_on(lab: &Lab) {
    let sc = lab.scenarios().expect("scenarios");
    let (mut checked, mut with_findings, mut high) = (0, 0, 0);
    for s in &sc {
        let Some(kind) = s.meta.kind.clone().filter(|k| !k.is_empty()) else {
            continue;
        };
        if !s.console_log().is_file() {
            continue;
        }
        let fs = explain_console(lab, &s.meta.name);
        checked += 1;
        if !fs.is_empty() {
            with_findings += 1;
        }
        for f in &fs {
            assert!(
                !f.evidence.is_empty(),
                "{}: finding without evidence: {f:?}",
                s.meta.name
            );
            if f.confidence == Confidence::High {
                high += 1;
                assert!(
                    allowed(&kind, f),
                    "{}: high-confidence {} contradicts the known cause {kind}: {}",
                    s.meta.name,
                    f.kind,
                    f.summary
                );
            }
        }
        // Sorted most certain first.
        assert!(fs.windows(2).all(|w| w[0].confidence >= w[1].confidence));
    }
    println!("explain over {checked} lab scenarios: {with_findings} with findings, {high} high-confidence findings, none contradicting the known cause");
    assert!(
        checked >= 25 && with_findings * 10 >= checked * 8,
        "explain found too little: {with_findings}/{checked}"
    );
}

/// Console log + vmcore: the memory facts name the same objects.
pub fn explain_with_core(lab: &Lab, name: &str) -> Vec<Finding> {
    let sc = lab.need(name);
    let log = std::fs::read(sc.console_log()).expect("console.log");
    let text = String::from_utf8_lossy(&log).into_owned();
    // The report that ended the machine (a console may hold benign WARNINGs before it).
    let mut reports = kmortem_oops::parse(&log);
    let pick = kmortem_oops::pick_fatal(&reports).expect("a report in console.log");
    let report = reports.swap_remove(pick.index);
    let dump = sc
        .dump("kdump-zlib")
        .or_else(|| sc.dump("elf"))
        .expect("a vmcore");
    let prog = kmortem_kernel::Program::open(&dump, Some(&sc.meta.vmlinux)).expect("open vmcore");
    let mut sym = Symbolizer::new();
    sym.set_vmlinux(&sc.meta.vmlinux).expect("vmlinux");
    sym.add_module_file("kmlab", &sc.meta.kmlab_ko)
        .expect("kmlab.ko");
    let mut ctx = Context {
        sym: &mut sym,
        source: None,
        log: Some(&text),
        program: Some(&prog),
    };
    let f = kmortem_explain::explain(&report, &mut ctx);
    println!("== {name} + vmcore [{}]", lab.name());
    for x in &f {
        println!("  [{}] {}: {}", x.confidence.as_str(), x.kind, x.summary);
    }
    f
}

#[test]
fn with_vmcore_the_five_seed_patterns() {
    kmortem_lab::each(with_vmcore_the_five_seed_patterns_on);
}

fn with_vmcore_the_five_seed_patterns_on(lab: &Lab) {
    // estats_null: the console finding stands (the memory adds nothing contradictory).
    let fs = explain_with_core(lab, "estats_null");
    assert_eq!(
        fact(first(&fs, "bad_pointer"), "derived_from"),
        "sk->estats"
    );
    assert!(!fs.iter().any(|f| f.kind == "freed_object"));

    // leaf_cfs_rq: prev (rq.tmp_alone_branch) is the static `stale` node, whose next is NULL.
    let fs = explain_with_core(lab, "leaf_cfs_rq");
    let l = first(&fs, "list_corruption");
    assert!(fact(l, "arg.next.derivation").contains("rq.tmp_alone_branch"));
    let w = first(&fs, "list_walk");
    assert_eq!(fact(w, "bad_node_name"), "stale.leaf_cfs_rq_list");
    assert!(w.summary.contains("next is NULL"), "{}", w.summary);

    // wrong_cpu_index: kcqs[64] of a vmalloc'd array of 2 (room for 56 in its page).
    let fs = explain_with_core(lab, "wrong_cpu_index");
    if vmalloc_areas_unreadable(lab, &fs) {
        println!("  [{}] {VMAP_NODES_GAP}", lab.name());
    } else {
        let a = first(&fs, "array_index");
        assert_eq!(fact(a, "index"), "64");
        assert_eq!(fact(a, "max_length"), "56");
        assert!(fact(a, "array").contains("kcqs"));
        assert_eq!(a.confidence, Confidence::High);
    }

    // list_del_corruption: the entry is the static `a`'s link, already poisoned.
    let fs = explain_with_core(lab, "list_del_corruption");
    let w = first(&fs, "list_walk");
    assert_eq!(fact(w, "start"), "a.link");
    assert!(w.summary.contains("LIST_POISON1"), "{}", w.summary);

    // uaf: the session object is free in kmlab_session's slab; dev was read from it.
    let fs = explain_with_core(lab, "uaf");
    let o = first(&fs, "freed_object");
    assert_eq!(fact(o, "cache"), "kmlab_session");
    assert_eq!(fact(first(&fs, "bad_pointer"), "member"), "refcount");

    // hung_task (not a seed pattern, but the hung-task bar): the completion it waits on.
    let fs = explain_with_core(lab, "hung_task");
    let h = first(&fs, "hung_lock");
    assert_eq!(fact(h, "wait"), "completion");
    assert_eq!(fact(h, "lock_name"), "kmlab_never");
    assert!(h.summary.contains("`done` is 0"), "{}", h.summary);
}

/// What `explain --core` cannot do yet on a kernel without the busy-area tree.
pub const VMAP_NODES_GAP: &str = "no array_index/vmalloc_bounds finding: kmortem-kernel's \
    vmalloc_area() reads vmap_area_root / vmap_area_list, which 6.9 replaced by the per-node \
    vmap_nodes[].busy trees (\"mm: vmalloc: remove global vmap_area_root rb-tree\"); the console \
    finding above stands";

/// Whether kmortem-kernel cannot find vmalloc areas in this kernel's dumps: no vmalloc finding
/// and neither `vmap_area_root` nor `vmap_area_list` in the kernel's System.map. A kernel that
/// has them (6.1) must give the finding; one that lacks them gets it as soon as the kernel
/// crate reads `vmap_nodes` (the finding then appears and is checked).
pub fn vmalloc_areas_unreadable(lab: &Lab, fs: &[Finding]) -> bool {
    if fs
        .iter()
        .any(|f| f.kind == "array_index" || f.kind == "vmalloc_bounds")
    {
        return false;
    }
    let map = lab
        .vmlinux()
        .with_file_name(format!("System.map-{}", lab.release()));
    let text = std::fs::read_to_string(&map).unwrap_or_else(|e| panic!("{}: {e}", map.display()));
    !text.lines().any(|l| {
        l.split_whitespace()
            .nth(2)
            .is_some_and(|n| n == "vmap_area_root" || n == "vmap_area_list")
    })
}

/// Memory facts that may be `high` for a scenario's known cause.
fn allowed_with_core(kind: &str, f: &Finding) -> bool {
    match f.kind.as_str() {
        "freed_object" => kind == "general_protection_fault",
        "list_walk" => kind == "list_corruption",
        "hung_lock" => kind == "hung_task",
        "array_index" | "vmalloc_bounds" => kind == "paging_request",
        _ => allowed(kind, f),
    }
}

#[test]
fn no_wrong_confident_finding_with_vmcores() {
    kmortem_lab::each(no_wrong_confident_finding_with_vmcores_on);
}

fn no_wrong_confident_finding_with_vmcores_on(lab: &Lab) {
    let sc = lab.scenarios().expect("scenarios");
    let (mut checked, mut high) = (0, 0);
    for s in &sc {
        let Some(kind) = s.meta.kind.clone().filter(|k| !k.is_empty()) else {
            continue;
        };
        if !s.console_log().is_file() || (s.dump("kdump-zlib").is_none() && s.dump("elf").is_none())
        {
            continue;
        }
        let fs = explain_with_core(lab, &s.meta.name);
        checked += 1;
        for f in &fs {
            assert!(!f.evidence.is_empty(), "{}: {f:?}", s.meta.name);
            if f.confidence == Confidence::High {
                high += 1;
                assert!(
                    allowed_with_core(&kind, f),
                    "{}: high-confidence {} contradicts the known cause {kind}: {}",
                    s.meta.name,
                    f.kind,
                    f.summary
                );
            }
        }
    }
    println!("explain --core over {checked} lab scenarios: {high} high-confidence findings, none contradicting the known cause");
    assert!(checked >= 20);
}

/// A lock owner's stack is walked with kmortem-kernel's unwinder: on `hung_task`, the blocked
/// `sh` (asleep in `kmlab_recv_reply`) stands in for an owner (no lab dump holds a mutex).
#[test]
fn owner_stack_walks_a_sleeping_task() {
    kmortem_lab::each(owner_stack_walks_a_sleeping_task_on);
}

fn owner_stack_walks_a_sleeping_task_on(lab: &Lab) {
    let sc = lab.need("hung_task");
    let dump = sc.dump("kdump-zlib").expect("a vmcore");
    let prog = kmortem_kernel::Program::open(&dump, Some(&sc.meta.vmlinux)).expect("open vmcore");
    let tasks = prog.tasks().expect("task list");
    let sh = tasks
        .iter()
        .find(|t| t.comm == "sh" && t.state == "D")
        .expect("a sh task in D state");
    let bt = kmortem_explain::core::owner_stack(&prog, sh.task, sh.pid, &sh.comm).expect("a stack");
    println!("{bt}");
    assert!(bt.starts_with(&format!("PID: {}", sh.pid)), "{bt}");
    assert!(bt.contains("kmlab_recv_reply"), "{bt}");
    assert!(bt.contains("schedule"), "{bt}");
}
