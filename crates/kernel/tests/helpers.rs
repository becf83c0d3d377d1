//! The kernel helpers (lists, slab/vmalloc, locks) on every pinned kernel's crash lab (the
//! session commands built on them: crates/shell/tests/commands.rs). Oracles: drgn (run by the
//! tests) and the module's own statics.

use kmortem_kernel::list::{walk_list, Corruption, End, Poison};
use kmortem_kernel::mem::Memory;
use kmortem_kernel::Program;
use std::path::Path;

mod common;
use common::{console_reg, drgn_jobs, drgn_slab, dump, each, open, statics, vmlinux, Lab};

#[test]
fn lab_list_walks() {
    each(|lab| {
        // seed 000: kmlab_do_leaf_cfs_rq's rq (`struct kmlab_rq { int cpu; struct list_head
        // leaf_cfs_rq_list; ... }`, so the list is at +8) has one node, `stale`, zeroed by
        // memset.
        let p = open(lab, "leaf_cfs_rq");
        let rq = statics(&p, "rq")[0];
        let w = walk_list(&p, rq + 8, 1000);
        println!("[{}] leaf_cfs_rq: {w:?}", lab.name());
        let b = w.corruption().expect("the leaf_cfs_rq list is corrupted");
        assert_eq!(b.corruption, Corruption::Zeroed);
        assert_eq!(w.nodes.len(), 1);
        // the zeroed node is `stale` (rq's first node), and the head's next points at it
        assert_eq!(b.node, p.read_u64(rq + 8).unwrap());
        assert_eq!(p.read_u64(b.node).unwrap(), 0);

        // list_add_corruption: head -> b -> a, then b.prev = &c: head->next->prev is not head.
        let p = open(lab, "list_add_corruption");
        let mut hit = 0;
        for head in statics(&p, "kmlab_nodes") {
            let w = walk_list(&p, head, 1000);
            println!("[{}] list_add_corruption {head:#x}: {w:?}", lab.name());
            if w.nodes.is_empty() && w.end == End::Complete {
                continue; // the other scenario's list, never used
            }
            hit += 1;
            let b = w.corruption().expect("corrupted");
            let Corruption::BadBackLink {
                next,
                found,
                expected,
            } = b.corruption
            else {
                panic!("expected a bad back link: {b:?}");
            };
            assert_eq!(b.node, head);
            assert_eq!(expected, head);
            assert_eq!(next, p.read_u64(head).unwrap());
            // c is the node the stray write named; it is not on the list
            assert!(statics(&p, "c").contains(&found), "{found:#x}");
            assert!(b.to_string().contains("should be"), "{b}");
        }
        assert_eq!(hit, 1);

        // list_del_corruption: a was deleted (poisoned) and deleted again. The list from the
        // head is intact (head -> b); walked from a, the first link is LIST_POISON1.
        let p = open(lab, "list_del_corruption");
        let mut poisoned = 0;
        for head in statics(&p, "kmlab_nodes") {
            let w = walk_list(&p, head, 1000);
            assert_eq!(w.end, End::Complete, "{w:?}");
        }
        for a in statics(&p, "a") {
            let w = walk_list(&p, a, 1000);
            println!("[{}] list_del_corruption from {a:#x}: {w:?}", lab.name());
            if let Some(b) = w.corruption() {
                if let Corruption::Poisoned { field, poison } = &b.corruption {
                    assert_eq!((*field, *poison), ("next", Poison::One));
                    assert_eq!(b.next, 0xdead000000000100);
                    poisoned += 1;
                }
            }
        }
        assert_eq!(poisoned, 1, "exactly one `a` was list_del'd");
    });
}

/// drgn's `find_vmap_area()` of each address: `va_start va_end vm_size caller` or `-`.
fn drgn_vmap(lab: &Lab, dump: &Path, addrs: &[u64]) -> Vec<String> {
    let code = format!(
        r#"
from drgn.helpers.linux.mm import find_vmap_area
for a in {addrs:?}:
    va = find_vmap_area(prog, a)
    if not va:
        print("-")
    else:
        vm = va.vm
        print(hex(va.va_start), hex(va.va_end), int(vm.size) if vm else 0, hex(vm.caller) if vm else 0)
"#
    );
    let out = drgn_jobs(&vmlinux(lab), &[(dump.to_path_buf(), code)]);
    let text = out
        .into_iter()
        .next()
        .expect("one job")
        .unwrap_or_else(|e| panic!("drgn find_vmap_area: {e}"));
    text.lines().map(String::from).collect()
}

/// Our answer in drgn's terms: `cache object allocated slab` or `-`.
fn our_slab(p: &Program, a: u64) -> String {
    match p.slab_object(a) {
        Ok(Some(o)) => format!(
            "{} {:#x} {} {:#x}",
            o.cache_name,
            o.object,
            match o.free {
                Some(true) => "False",
                Some(false) => "True",
                None => "?",
            },
            o.slab
        ),
        _ => "-".into(),
    }
}

#[test]
fn lab_slab_and_vmalloc() {
    each(|lab| {
        // uaf: kmlab_session_touch(s) after kmem_cache_free(s): with slub_debug=P the freed
        // object holds 0x6b; RBX in the oops holds a pointer into the freed object.
        let p = open(lab, "uaf");
        let rbx = console_reg(lab, "uaf", "RBX");
        let o = p.slab_object(rbx).unwrap().expect("RBX is a slab object");
        println!("[{}] uaf RBX {rbx:#x}: {o:?}", lab.name());
        assert_eq!(o.cache_name, "kmlab_session");
        assert!(o.object <= rbx && rbx < o.object + o.size);
        assert_eq!(o.free, Some(true), "the session was freed: {o:?}");
        // the poisoned bytes are there (0x6b, POISON_FREE)
        assert_eq!(p.read_u64(o.object).unwrap(), 0x6b6b6b6b6b6b6b6b);

        // an allocated object: the panicking task's task_struct (task_struct cache, in use)
        let t = p.panic_task().unwrap().expect("panic task");
        let o = p
            .slab_object(t.task)
            .unwrap()
            .expect("task_struct is a slab object");
        println!("[{}] task {:#x}: {o:?}", lab.name(), t.task);
        assert_eq!(o.cache_name, "task_struct");
        assert_eq!(o.object, t.task);
        assert_eq!(o.free, Some(false));
        // a kernel image address and a page of the printk ring (memblock) are in no slab
        let text = p.symbol("_stext").unwrap();
        assert!(p.slab_object(text).unwrap().is_none());
        let prb = p.read_u64(p.symbol("prb").unwrap()).unwrap();
        let data = p
            .read_member(prb, "printk_ringbuffer", "text_data_ring.data")
            .unwrap();
        assert!(
            p.slab_object(data).unwrap().is_none(),
            "the printk text ring is not a slab object"
        );

        // The same verdicts as drgn's slab_object_info() on every task's task_struct, the
        // freed session, the ring, and the tasks' kernel stacks (vmalloc: not slab).
        let tasks = p.tasks().unwrap();
        let mut addrs = vec![rbx, data];
        addrs.extend(tasks.iter().filter(|t| t.pid > 0).map(|t| t.task));
        let stacks: Vec<u64> = tasks
            .iter()
            .filter(|t| t.pid > 0)
            .filter_map(|t| p.read_member(t.task, "task_struct", "stack").ok())
            .collect();
        addrs.extend(&stacks);
        let want = drgn_slab(lab, &dump(lab, "uaf"), &addrs);
        let got: Vec<String> = addrs.iter().map(|&a| our_slab(&p, a)).collect();
        assert_eq!(got, want, "slab objects vs drgn's slab_object_info()");
        // And the stacks' vmalloc areas as drgn's find_vmap_area() sees them.
        let want = drgn_vmap(lab, &dump(lab, "uaf"), &stacks);
        let got: Vec<String> = stacks
            .iter()
            .map(|&a| match p.vmalloc_area(a) {
                Ok(Some(v)) => format!(
                    "{:#x} {:#x} {} {:#x}",
                    v.va_start, v.va_end, v.size, v.caller
                ),
                _ => "-".into(),
            })
            .collect();
        assert_eq!(
            got, want,
            "vmalloc areas of the kernel stacks vs drgn's find_vmap_area()"
        );
        println!(
            "[{}] uaf: {} addresses' slab verdicts and {} stacks' vmalloc areas equal to drgn's",
            lab.name(),
            addrs.len(),
            stacks.len()
        );

        // double_free: the freelist check catches kfree() of an object on the freelist already,
        // with the object in RBX.
        let p = open(lab, "double_free");
        let rbx = console_reg(lab, "double_free", "RBX");
        let o = p.slab_object(rbx).unwrap().expect("RBX is a slab object");
        println!("[{}] double_free RBX {rbx:#x}: {o:?}", lab.name());
        assert!(o.cache_name.starts_with("kmalloc-"), "{o:?}");
        assert_eq!(o.object, rbx);
        assert_eq!(o.free, Some(true));
        assert_eq!(
            vec![our_slab(&p, rbx)],
            drgn_slab(lab, &dump(lab, "double_free"), &[rbx])
        );

        // wrong_cpu_index: kcqs[64] of a vzalloc'd 2-element array faults on the guard page.
        let p = open(lab, "wrong_cpu_index");
        let cr2 = console_reg(lab, "wrong_cpu_index", "CR2");
        let v = p
            .vmalloc_area(cr2)
            .unwrap()
            .expect("CR2 is in a vmalloc area");
        println!("[{}] wrong_cpu_index CR2 {cr2:#x}: {v:?}", lab.name());
        assert!(v.guard_page, "{v:?}");
        assert_eq!(v.size, 8192);
        assert_eq!(v.usable_size, 4096);
        assert!(
            v.caller_symbol
                .as_deref()
                .is_some_and(|c| c.starts_with("kmlab_do_wrong_cpu_index")),
            "{v:?}"
        );
        assert_eq!(
            vec![format!(
                "{:#x} {:#x} {} {:#x}",
                v.va_start, v.va_end, v.size, v.caller
            )],
            drgn_vmap(lab, &dump(lab, "wrong_cpu_index"), &[cr2])
        );
        assert!(p
            .vmalloc_area(p.symbol("_stext").unwrap())
            .unwrap()
            .is_none());
    });
}

/// drgn's view of a few global locks, as `name owner_word count_or_0`.
fn drgn_locks(
    lab: &Lab,
    dump: &Path,
    mutexes: &[&str],
    rwsems: &[&str],
) -> Vec<(String, u64, u64)> {
    let code = format!(
        r#"
for n in {mutexes:?}:
    print(n, int(prog[n].owner.counter), 0)
for n in {rwsems:?}:
    print(n, int(prog[n].owner.counter), int(prog[n].count.counter))
"#
    );
    let out = drgn_jobs(&vmlinux(lab), &[(dump.to_path_buf(), code)]);
    let text = out
        .into_iter()
        .next()
        .expect("one job")
        .unwrap_or_else(|e| panic!("drgn: {e}"));
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].to_string(),
                f[1].parse::<i64>().unwrap() as u64,
                f[2].parse::<i64>().unwrap() as u64,
            )
        })
        .collect()
}

#[test]
fn lab_lock_owners() {
    each(|lab| {
        // No lab scenario blocks on a mutex or rwsem (hung_task waits on a completion), so the
        // decoding is checked against drgn's raw words on global locks of the hung_task dump.
        // Which locks exist depends on the kernel (6.7 turned shrinker_rwsem into
        // shrinker_mutex): the candidates are probed by symbol.
        let p = open(lab, "hung_task");
        let have = |n: &&str| p.symbol(n).is_some();
        let mutexes: Vec<&str> = [
            "module_mutex",
            "tty_mutex",
            "cgroup_mutex",
            "text_mutex",
            "shrinker_mutex",
        ]
        .into_iter()
        .filter(have)
        .collect();
        let rwsems: Vec<&str> = ["uts_sem", "namespace_sem", "shrinker_rwsem", "pci_bus_sem"]
            .into_iter()
            .filter(have)
            .collect();
        assert!(
            mutexes.len() >= 4 && rwsems.len() >= 2,
            "{mutexes:?} {rwsems:?}"
        );
        let oracle = drgn_locks(lab, &dump(lab, "hung_task"), &mutexes, &rwsems);
        assert_eq!(oracle.len(), mutexes.len() + rwsems.len());
        for (name, owner, count) in oracle {
            let a = p.symbol(&name).unwrap();
            let s = if mutexes.contains(&name.as_str()) {
                p.mutex_owner(a).unwrap()
            } else {
                p.rwsem_owner(a).unwrap()
            };
            println!("[{}] {name}: {s:?}", lab.name());
            assert_eq!(s.owner_word, owner, "{name}");
            let readers = (count >> 8) & ((1 << 48) - 1);
            let held = if s.kind == "mutex" {
                owner & !7 != 0
            } else {
                count & 1 != 0 || (owner & 1 != 0 && readers > 0)
            };
            assert_eq!(
                s.owner.as_ref().map(|o| o.task),
                held.then_some(owner & !7),
                "{name}"
            );
            if let Some(o) = &s.owner {
                assert!(o.pid >= 0 && !o.comm.is_empty(), "{name}: {o:?}");
            }
            if s.kind == "rw_semaphore" {
                assert_eq!(s.readers, readers);
            }
        }
    });
}
