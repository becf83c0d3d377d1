//! What `explain` must say about each explain-relevant lab scenario, written down from
//! lab/module/kmlab.c before the code that finds it (issue 21). The truth is the C source: each
//! entry quotes the line that goes wrong.
//!
//! A scenario's `_O1` and `_Os` variants (kmlab.ko built at -O1 and -Os) expect exactly what the
//! base scenario expects, on every lab kernel: the compiler's layout must not change the answer.
//!
//! `top` is explain's first finding (findings are sorted most certain first); `also` are
//! findings that must be present besides it. Facts are `Finding::facts` keys.

#![allow(dead_code)]

/// How a fact must look.
#[derive(Debug, Clone, Copy)]
pub enum M {
    /// Exactly this.
    Eq(&'static str),
    /// Contains this.
    Has(&'static str),
    /// One of these exactly.
    OneOf(&'static [&'static str]),
}

impl M {
    pub fn check(&self, got: Option<&str>) -> bool {
        match (self, got) {
            (M::Eq(e), Some(g)) => g == *e,
            (M::Has(e), Some(g)) => g.contains(e),
            (M::OneOf(es), Some(g)) => es.contains(&g),
            (_, None) => false,
        }
    }
}

/// One expected finding: its kind, facts and words of its summary.
#[derive(Debug, Clone, Copy)]
pub struct Want {
    pub kind: &'static str,
    pub facts: &'static [(&'static str, M)],
    pub summary_has: &'static [&'static str],
}

/// Expectations for one scenario (and its optimisation-level variants).
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    pub scenario: &'static str,
    /// Whether explain must already give this answer (the test fails otherwise); the others are
    /// measured and printed (BENCHMARKS.md) but not yet required.
    pub must: bool,
    /// The report explain must pick among the console's reports (0-based, counted from the end:
    /// 0 = the last one; the fatal report is the last one in every lab console) and the reason.
    pub picked: (usize, &'static str),
    /// From the console log and the debug info alone.
    pub console: Want,
    pub console_also: &'static [Want],
    /// With the vmcore too.
    pub core: Want,
    pub core_also: &'static [Want],
}

use M::*;

// --- estats_null (seed 003) ---------------------------------------------------------------
//   struct kmlab_estats *stats = sk->estats;            /* NULL: the kzalloc failure ignored */
//   struct kmlab_stack_table *stack_table = stats->tables.stack_table;   /* faults: 0x18 */
const ESTATS: Want = Want {
    kind: "bad_pointer",
    facts: &[
        ("variable", Eq("stats")),
        ("derived_from", Eq("sk->estats")),
        ("member", Eq("tables.stack_table")),
        ("verdict", Eq("null")),
    ],
    summary_has: &["is NULL"],
};

// --- leaf_cfs_rq (seed 000) ---------------------------------------------------------------
//   list_add_rcu(&cfs_rq->leaf_cfs_rq_list, rq->tmp_alone_branch);  /* its ->next is NULL */
const LEAF: Want = Want {
    kind: "list_corruption",
    facts: &[
        ("link", Eq("next")),
        ("actual", Eq("0x0")),
        ("arg.next.derivation", Has("tmp_alone_branch")),
    ],
    summary_has: &[],
};
const LEAF_WALK: Want = Want {
    kind: "list_walk",
    facts: &[("bad_node_name", Eq("stale.leaf_cfs_rq_list"))],
    summary_has: &["next is NULL"],
};

// --- wrong_cpu_index (seed 002) -----------------------------------------------------------
//   struct kmlab_hctx_data *khd = hctx->sched_data;
//   struct kmlab_ctx_queue *kcq = &khd->kcqs[ctx->index_hw[hctx->type]];   /* index 64 of 2 */
//   spin_lock(&kcq->lock);      /* _raw_spin_lock(lock) faults: 72-byte elements, vmalloc'd */
// From the console alone the index is gone (the register that held it is the callee's
// scratch register) unless the build kept it; the chain and the array are named.
// `khd` has no DWARF location where the element address is computed (its register already
// holds `khd->kcqs`), so the array is named through khd's own origin, `hctx.sched_data`
// (`hctx` is a static the constprop clone reads directly): `->kcqs`, whatever the base.
const KCQ_CONSOLE: Want = Want {
    kind: "bad_pointer",
    facts: &[
        ("variable", Eq("lock")),
        ("chain", Has("&kcq->lock")),
        ("chain", Has("->kcqs[")),
        ("array", Has("->kcqs")),
        ("element_size", Eq("72")),
        ("verdict", OneOf(&["unmapped", "index_out_of_bounds"])),
    ],
    summary_has: &["kcqs["],
};
// With the vmcore: khd->kcqs and khd->nr_kcqs are read, so the index and the bound are known.
const KCQ_CORE: Want = Want {
    kind: "bad_pointer",
    facts: &[
        ("variable", Eq("lock")),
        ("chain", Has("&kcq->lock")),
        ("array", Has("->kcqs")),
        ("element_size", Eq("72")),
        ("index", Eq("64")),
        ("bound", Eq("2")),
        ("bound_source", Has("->nr_kcqs")),
        ("verdict", Eq("index_out_of_bounds")),
    ],
    summary_has: &["kcqs[64]", "nr_kcqs` = 2", "out of bounds"],
};

// --- list_del_corruption ------------------------------------------------------------------
//   kmlab_remove_node(&a); kmlab_remove_node(&a);    /* list_del(&a.link) twice */
const LISTDEL: Want = Want {
    kind: "list_corruption",
    facts: &[
        ("link", Eq("entry->next")),
        ("actual", Eq("0xdead000000000100")),
        ("arg.entry", Eq("&a.link")),
    ],
    summary_has: &["double list_del"],
};
const LISTDEL_WALK: Want = Want {
    kind: "list_walk",
    facts: &[("start", Eq("a.link"))],
    summary_has: &["LIST_POISON1"],
};

// --- uaf ----------------------------------------------------------------------------------
//   kmem_cache_free(kmlab_session_cache, s); kmlab_session_touch(s);
//   dev = s->dev (0x6b poison with slub_debug=P); dev->refcount++;
const UAF: Want = Want {
    kind: "bad_pointer",
    facts: &[
        ("variable", Eq("dev")),
        ("member", Eq("refcount")),
        ("class", Eq("slab_free_poison")),
        ("verdict", Eq("use_after_free")),
    ],
    summary_has: &[],
};
const UAF_FREED: Want = Want {
    kind: "freed_object",
    facts: &[("cache", Eq("kmlab_session"))],
    summary_has: &[],
};

// --- null_member_deep (new shape: a NULL two members deep, no variable names it) ------------
//   return req->conn->xprt->mtu;          /* conn->xprt was never attached: NULL; mtu at 4 */
const DEEP: Want = Want {
    kind: "bad_pointer",
    facts: &[
        ("variable", Eq("req->conn->xprt")),
        ("member", Eq("mtu")),
        ("verdict", Eq("null")),
    ],
    summary_has: &["req->conn->xprt", "is NULL"],
};

// --- hlist_double_del (new shape: an hlist, not a list) --------------------------------------
//   hlist_del(&p->hnode) twice: __hlist_del()'s `*pprev = next` with pprev = n->pprev =
//   LIST_POISON2 (no CONFIG_DEBUG_LIST check for hlists: a GPF).
const HLIST: Want = Want {
    kind: "bad_pointer",
    facts: &[
        ("variable", Eq("pprev")),
        ("derived_from", Eq("n->pprev")),
        ("chain", Has("&p->hnode")),
        ("class", Eq("list_poison2")),
        ("verdict", Eq("use_after_delete")),
    ],
    summary_has: &["LIST_POISON2"],
};

// --- percpu_index (new shape: an index into a per-CPU array) ---------------------------------
//   struct kmlab_hit *h = get_cpu_ptr(&kmlab_hits[slot]);    /* slot 0x2000000, 4 slots */
//   h->hits++;                                               /* 24-byte elements, unmapped */
// The index is still in a register and the bound is the DWARF array length: no vmcore needed.
const PERCPU: Want = Want {
    kind: "bad_pointer",
    facts: &[
        ("variable", Eq("h")),
        ("member", Eq("hits")),
        ("array", Eq("kmlab_hits")),
        ("index_expr", Eq("slot")),
        ("element_size", Eq("24")),
        ("index", Eq("33554432")),
        ("bound", Eq("4")),
        ("verdict", Eq("index_out_of_bounds")),
    ],
    summary_has: &["kmlab_hits[33554432]", "out of bounds"],
};

// --- uaf_realloc (new shape: a use after free whose memory another cache reused) -------------
//   t freed (kmlab_token), its slab page shrunk away and reused by kmlab_frame;
//   t->owner->refcount++ reads f->cookie = 0x4b4d4c4142465200 (non-canonical).
// The console sees a garbage pointer; the vmcore shows `t` inside a live kmlab_frame object.
const REALLOC_CONSOLE: Want = Want {
    kind: "bad_pointer",
    facts: &[
        ("variable", Eq("t->owner")),
        ("member", Eq("refcount")),
        ("class", Eq("non_canonical")),
        ("verdict", Eq("non_canonical")),
    ],
    summary_has: &[],
};
const REALLOC_CORE: Want = Want {
    kind: "bad_pointer",
    facts: &[
        ("variable", Eq("t->owner")),
        ("member", Eq("refcount")),
        ("stale", Eq("t")),
        ("stale_cache", Eq("kmlab_frame")),
        ("verdict", Eq("reallocated")),
    ],
    summary_has: &["kmlab_frame", "use after free"],
};

pub const EXPECTED: &[Expect] = &[
    Expect {
        scenario: "estats_null",
        must: true,
        picked: (0, "panic"),
        console: ESTATS,
        console_also: &[],
        core: ESTATS,
        core_also: &[],
    },
    Expect {
        scenario: "leaf_cfs_rq",
        must: true,
        picked: (0, "panic"),
        console: LEAF,
        console_also: &[],
        core: LEAF,
        core_also: &[LEAF_WALK],
    },
    Expect {
        scenario: "wrong_cpu_index",
        must: true,
        picked: (0, "panic"),
        console: KCQ_CONSOLE,
        console_also: &[],
        core: KCQ_CORE,
        core_also: &[],
    },
    Expect {
        scenario: "list_del_corruption",
        must: true,
        picked: (0, "panic"),
        console: LISTDEL,
        console_also: &[],
        core: LISTDEL,
        core_also: &[LISTDEL_WALK],
    },
    Expect {
        scenario: "uaf",
        must: true,
        picked: (0, "panic"),
        console: UAF,
        console_also: &[],
        core: UAF,
        core_also: &[UAF_FREED],
    },
    Expect {
        scenario: "null_member_deep",
        must: true,
        picked: (0, "panic"),
        console: DEEP,
        console_also: &[],
        core: DEEP,
        core_also: &[],
    },
    Expect {
        scenario: "hlist_double_del",
        must: true,
        picked: (0, "panic"),
        console: HLIST,
        console_also: &[],
        core: HLIST,
        core_also: &[],
    },
    Expect {
        scenario: "percpu_index",
        must: true,
        picked: (0, "panic"),
        console: PERCPU,
        console_also: &[],
        core: PERCPU,
        core_also: &[],
    },
    Expect {
        scenario: "uaf_realloc",
        must: true,
        picked: (0, "panic"),
        console: REALLOC_CONSOLE,
        console_also: &[],
        core: REALLOC_CORE,
        core_also: &[],
    },
    // A benign WARNING (kmlab_check_budget) first, the machine goes on, then the fatal oops:
    // explain must pick the last report, the one `Kernel panic - not syncing` follows.
    Expect {
        scenario: "warn_then_oops",
        must: true,
        picked: (0, "panic"),
        console: DEEP,
        console_also: &[],
        core: DEEP,
        core_also: &[],
    },
];

/// The expectations of a scenario or of one of its `_O1`/`_Os` variants (`base` from
/// `Meta::base_name`).
pub fn for_scenario(base: &str) -> Option<&'static Expect> {
    EXPECTED.iter().find(|e| e.scenario == base)
}
