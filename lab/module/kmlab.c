// SPDX-License-Identifier: GPL-2.0
/*
 * kmlab: crash triggers for the kmortem crash lab.
 *
 * Write a scenario name to /proc/kmlab (e.g. `echo null_deref > /proc/kmlab`) and the kernel
 * crashes the way that scenario describes. Every trigger goes through noinline helpers with
 * distinctive kmlab_* names and real structs with members, so that a post-mortem tool can name
 * the function, the variable and the member from DWARF. Debian does not build lkdtm, so the
 * classics live here too, next to miniatures of the bug patterns of the seeds:
 *
 *   estats_null      seed 003: an ignored allocation failure leaves sk->estats NULL, and
 *                    kmlab_estats_update_mss() chases sk->estats->tables.stack_table.
 *   leaf_cfs_rq      seed 000: list_add() through rq->tmp_alone_branch whose node had its
 *                    `next` zeroed.
 *   timer_reinit     seed 004: a timer re-initialised while pending and then re-armed; the
 *                    timer wheel still links the old entry and crashes in the timer code.
 *   wrong_cpu_index  seed 002: a per-queue array indexed with another hardware queue's index,
 *                    so spin_lock() runs on garbage.
 *
 * New shapes of the same bugs (issue 21), for explaining code it was not developed against:
 *   null_member_deep  a NULL two members deep, with no variable naming it: req->conn->xprt.
 *   hlist_double_del  hlist_del() twice: the second one writes through LIST_POISON2 (hlists
 *                     have no CONFIG_DEBUG_LIST check, so it is a GPF, not a list report).
 *   percpu_index      an index 0x2000000 into a per-CPU array of 4 (get_cpu_ptr(&a[i])).
 *   uaf_realloc       a use after free whose slab page went back to the page allocator and
 *                     now holds another cache's objects (needs slab_nomerge).
 *   warn_then_oops    a benign WARNING first (the machine goes on), then the fatal oops.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/proc_fs.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/list.h>
#include <linux/rculist.h>
#include <linux/timer.h>
#include <linux/hrtimer.h>
#include <linux/workqueue.h>
#include <linux/delay.h>
#include <linux/completion.h>
#include <linux/spinlock.h>
#include <linux/rcupdate.h>
#include <linux/uaccess.h>
#include <linux/sched.h>
#include <linux/string.h>
#include <linux/kthread.h>
#include <linux/percpu.h>
#include <linux/cpumask.h>

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmortem crash lab triggers");

/* The scenario named on the kernel command line (kmlab.scenario=NAME), for the record only:
 * /init reads it and writes it to /proc/kmlab from a child process. */
static char *scenario = "";
module_param(scenario, charp, 0444);
MODULE_PARM_DESC(scenario, "scenario this boot was started for (informational)");

/* Hide a value from the optimiser so that a NULL or zero stays a run-time surprise. */
#define KMLAB_HIDE(x) OPTIMIZER_HIDE_VAR(x)

/* ---------------------------------------------------------------- data structures */

struct kmlab_ops {
	int (*open)(void *priv);
	int (*release)(void *priv);
};

struct kmlab_device {
	char name[16];
	int id;
	unsigned int refcount;
	const struct kmlab_ops *ops;
	void *priv;
};

struct kmlab_account {
	u64 id;
	long balance;
	long limit;
};

struct kmlab_stats {
	u64 total;
	u32 count;
	u32 flags;
};

struct kmlab_node {
	struct list_head link;
	u64 key;
	u64 value;
};

struct kmlab_session {
	u64 id;
	struct kmlab_device *dev;
	struct list_head peers;
	char user[32];
};

struct kmlab_watchdog {
	struct timer_list timer;
	struct kmlab_device *dev;
	unsigned long fired;
};

struct kmlab_pulse {
	struct hrtimer timer;
	u32 period_ns;
	int beats;
};

struct kmlab_flusher {
	struct work_struct work;
	struct kmlab_device *target;
	int pending;
};

/* seed 003: struct tcp_sock / struct tcp_estats in miniature */
struct kmlab_stack_table {
	u32 mss;
	u32 cur_mss;
	u64 updates;
};

struct kmlab_estats_tables {
	u64 hits;
	struct kmlab_stack_table *stack_table;
	void *app_table;
};

struct kmlab_estats {
	u64 created;
	u32 state;
	u32 limit;
	struct kmlab_estats_tables tables;
};

struct kmlab_sock {
	u32 mss_cache;
	u32 flags;
	struct kmlab_estats *estats;
	char name[16];
};

/* seed 000: struct rq / struct cfs_rq in miniature */
struct kmlab_cfs_rq {
	struct list_head leaf_cfs_rq_list;
	struct kmlab_cfs_rq *parent;
	int on_list;
	int throttled;
	u64 load;
};

struct kmlab_rq {
	int cpu;
	struct list_head leaf_cfs_rq_list;
	struct list_head *tmp_alone_branch;
};

/* seed 004: a neighbour entry with its timer */
struct kmlab_neigh {
	struct timer_list timer;
	u32 ip;
	u8 nud_state;
	unsigned long updated;
};

/* seed 002: kyber's per-hctx data and per-ctx queues in miniature */
struct kmlab_ctx_queue {
	spinlock_t lock;
	struct list_head rq_list[4];
};

struct kmlab_hctx {
	unsigned int queue_num;
	unsigned int type;
	struct kmlab_hctx_data *sched_data;
};

struct kmlab_sw_ctx {
	unsigned int cpu;
	unsigned short index_hw[3];
};

struct kmlab_hctx_data {
	spinlock_t lock;
	unsigned int nr_kcqs;
	struct kmlab_ctx_queue *kcqs;
};

/* null_member_deep: a request, its connection, the connection's transport */
struct kmlab_xprt {
	u32 proto;
	u32 mtu;
	u64 tx_bytes;
};

struct kmlab_conn {
	u64 id;
	u32 state;
	struct kmlab_xprt *xprt;
};

struct kmlab_request {
	u32 tag;
	u32 len;
	struct kmlab_conn *conn;
};

/* hlist_double_del: a peer hashed by address */
struct kmlab_peer {
	u32 addr;
	u16 port;
	struct hlist_node hnode;
	u64 last_seen;
};

/* percpu_index: per-CPU hit counters, 4 slots per CPU */
struct kmlab_hit {
	u64 hits;
	u64 bytes;
	unsigned long last;
};

/* uaf_realloc: two caches of 64-byte objects; a token's owner overlaps a frame's cookie */
struct kmlab_token {
	u64 id;
	struct kmlab_device *owner;
	u32 flags;
	char label[44];
};

struct kmlab_frame {
	u64 seq;
	u64 cookie;
	u32 len;
	u8 payload[44];
};

/* 'KMLABFR', a non-canonical address: a use of it faults as a general protection fault */
#define KMLAB_FRAME_COOKIE 0x4b4d4c4142465200ULL


/* ---------------------------------------------------------------- helpers */

static struct kmem_cache *kmlab_session_cache;
static DECLARE_COMPLETION(kmlab_never);
static struct kmlab_watchdog kmlab_wd;
static struct kmlab_pulse kmlab_pulse;
static struct kmlab_flusher kmlab_flusher;
static struct kmlab_neigh kmlab_neighs[2];
static struct hlist_head kmlab_peer_hash[8];
static DEFINE_PER_CPU(struct kmlab_hit, kmlab_hits[4]);
static struct kmem_cache *kmlab_token_cache, *kmlab_frame_cache;

/*
 * The oops's Code: line shows 42 bytes before the faulting instruction; at the very start of a
 * module's .text those bytes lie on an unmapped page ("Code: Unable to access opcode bytes at
 * ..."). Pad the start of .text with int3 so that every trigger prints its code bytes.
 */
asm(".pushsection .text, \"ax\"\n"
    "kmlab_text_pad:\n"
    ".skip 64, 0xcc\n"
    ".popsection\n");

static noinline void kmlab_describe_device(const struct kmlab_device *dev)
{
	pr_info("kmlab: device %s id %d refs %u ops %p priv %p\n", dev->name, dev->id,
		dev->refcount, dev->ops, dev->priv);
}

static noinline struct kmlab_device *kmlab_lookup_device(int id)
{
	struct kmlab_device *dev = NULL;

	/* no device with that id: the caller forgets to check */
	KMLAB_HIDE(dev);
	return dev;
}

static noinline void kmlab_device_get(struct kmlab_device *dev)
{
	dev->refcount++;
}

static noinline void kmlab_check_invariant(struct kmlab_account *acct)
{
	BUG_ON(acct->balance < -acct->limit);
}

/* noipa: keep the load in this function (IPA-SRA would move it into the caller) */
static noinline __attribute__((noipa)) u64 kmlab_read_node(struct kmlab_node *node)
{
	return node->value;
}

static noinline u64 kmlab_compute_average(struct kmlab_stats *stats)
{
	return stats->total / stats->count;
}

static noinline void kmlab_insert_node(struct kmlab_node *node, struct list_head *head)
{
	list_add(&node->link, head);
}

static noinline void kmlab_remove_node(struct kmlab_node *node)
{
	list_del(&node->link);
}

/* noipa: without it GCC proves kmlab_parse_request() pure and drops the call entirely */
static noinline __attribute__((noipa)) void kmlab_copy_name(char *dst, const char *src,
							      size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		dst[i] = src[i];
}

static noinline __attribute__((noipa)) int kmlab_parse_request(const char *src, size_t len)
{
	char name[16];

	KMLAB_HIDE(len);
	kmlab_copy_name(name, src, len);
	return name[0];
}

static noinline void kmlab_release_session(struct kmlab_session *s)
{
	kfree(s->dev);
	kfree(s->dev);
}

static noinline struct kmlab_device *kmlab_session_device(struct kmlab_session *s)
{
	return s->dev;
}

static noinline void kmlab_session_touch(struct kmlab_session *s)
{
	struct kmlab_device *dev = kmlab_session_device(s);

	dev->refcount++;
}

static noinline void kmlab_put_ref(struct kmlab_device *dev)
{
	WARN_ON(dev->refcount == 0);
	if (dev->refcount)
		dev->refcount--;
}

static noinline void kmlab_spin_forever(unsigned long *counter)
{
	for (;;) {
		(*counter)++;
		cpu_relax();
	}
}

static noinline void kmlab_spin_irqs_off(unsigned long *counter)
{
	local_irq_disable();
	for (;;) {
		(*counter)++;
		cpu_relax();
	}
}

/* Named without "wait": syzkaller's hang extractor skips frames containing "wait". */
static noinline void kmlab_recv_reply(struct completion *done)
{
	wait_for_completion(done);
}

static noinline void kmlab_stats_reader(unsigned long *counter)
{
	rcu_read_lock();
	preempt_disable();
	for (;;) {
		(*counter)++;
		cpu_relax();
	}
}

static noinline void kmlab_watchdog_fn(struct timer_list *t)
{
	struct kmlab_watchdog *wd = from_timer(wd, t, timer);

	wd->fired++;
	wd->dev->refcount++;
}

static noinline enum hrtimer_restart kmlab_pulse_fn(struct hrtimer *t)
{
	struct kmlab_pulse *p = container_of(t, struct kmlab_pulse, timer);

	p->beats++;
	BUG_ON(p->beats > 2);
	hrtimer_forward_now(t, ns_to_ktime(p->period_ns));
	return HRTIMER_RESTART;
}

static noinline void kmlab_flush_work_fn(struct work_struct *work)
{
	struct kmlab_flusher *f = container_of(work, struct kmlab_flusher, work);

	f->pending = 0;
	f->target->refcount--;
}

/* seed 003 */
static noinline struct kmlab_estats *kmlab_estats_create(void)
{
	/* A request the allocator cannot satisfy: this really returns NULL. */
	size_t size = KMALLOC_MAX_SIZE * 2;

	KMLAB_HIDE(size);
	return kzalloc(size, GFP_KERNEL | __GFP_NOWARN);
}

static noinline void kmlab_estats_update_mss(struct kmlab_sock *sk)
{
	struct kmlab_estats *stats = sk->estats;
	struct kmlab_stack_table *stack_table = stats->tables.stack_table;

	stack_table->mss = sk->mss_cache;
	stack_table->updates++;
}

static noinline void kmlab_sock_set_mss(struct kmlab_sock *sk, u32 mss)
{
	sk->mss_cache = mss;
	kmlab_estats_update_mss(sk);
}

/* seed 000 */
static noinline void kmlab_list_add_leaf_cfs_rq(struct kmlab_rq *rq, struct kmlab_cfs_rq *cfs_rq)
{
	if (cfs_rq->on_list)
		return;
	cfs_rq->on_list = 1;
	list_add_rcu(&cfs_rq->leaf_cfs_rq_list, rq->tmp_alone_branch);
	rq->tmp_alone_branch = &cfs_rq->leaf_cfs_rq_list;
}

/* seed 004 */
static noinline void kmlab_neigh_timer_handler(struct timer_list *t)
{
	struct kmlab_neigh *n = from_timer(n, t, timer);

	n->updated = jiffies;
}

static noinline void kmlab_neigh_add_timer(struct kmlab_neigh *n, unsigned long when)
{
	/* The bug: (re)initialise the timer without checking whether it is pending. */
	timer_setup(&n->timer, kmlab_neigh_timer_handler, 0);
	mod_timer(&n->timer, when);
}

/* seed 002 */
static noinline void kmlab_bio_merge(struct kmlab_hctx *hctx, struct kmlab_sw_ctx *ctx)
{
	struct kmlab_hctx_data *khd = hctx->sched_data;
	struct kmlab_ctx_queue *kcq = &khd->kcqs[ctx->index_hw[hctx->type]];

	spin_lock(&kcq->lock);
	list_del_init(&kcq->rq_list[0]);
	spin_unlock(&kcq->lock);
}

/* null_member_deep */
static noinline u32 kmlab_request_mtu(struct kmlab_request *req)
{
	return req->conn->xprt->mtu;
}

/* hlist_double_del */
static noinline void kmlab_peer_unhash(struct kmlab_peer *p)
{
	hlist_del(&p->hnode);
}

/* percpu_index */
static noinline void kmlab_account_hit(unsigned int slot, u64 bytes)
{
	struct kmlab_hit *h = get_cpu_ptr(&kmlab_hits[slot]);

	h->hits++;
	h->bytes += bytes;
	h->last = jiffies;
	put_cpu_ptr(&kmlab_hits[slot]);
}

/* uaf_realloc */
static noinline void kmlab_token_get(struct kmlab_token *t)
{
	t->owner->refcount++;
}

/* warn_then_oops: a benign warning */
static noinline void kmlab_check_budget(unsigned int used, unsigned int budget)
{
	WARN_ONCE(used > budget, "kmlab: budget exceeded: %u > %u\n", used, budget);
}

/* ---------------------------------------------------------------- scenarios */

static noinline void kmlab_do_bug(void)
{
	struct kmlab_account acct = { .id = 7, .balance = -500, .limit = 100 };

	kmlab_check_invariant(&acct);
}

static noinline void kmlab_do_null_deref(void)
{
	kmlab_device_get(kmlab_lookup_device(3));
}

static noinline void kmlab_do_paging(void)
{
	struct kmlab_device *dev = vzalloc(PAGE_SIZE);

	vfree(dev);
	/* vfree() unmapped it: use after free of a vmalloc area */
	kmlab_device_get(dev);
}

static noinline void kmlab_do_gpf(void)
{
	struct kmlab_node *node = (struct kmlab_node *)0xdead4ead00000000UL;

	KMLAB_HIDE(node);
	pr_info("kmlab: value %llu\n", kmlab_read_node(node));
}

static noinline void kmlab_do_divide_error(void)
{
	struct kmlab_stats stats = { .total = 1000, .count = 0 };

	pr_info("kmlab: average %llu\n", kmlab_compute_average(&stats));
}

static noinline void kmlab_do_list_add_corruption(void)
{
	static LIST_HEAD(kmlab_nodes);
	static struct kmlab_node a, b, c;

	kmlab_insert_node(&a, &kmlab_nodes);
	kmlab_insert_node(&b, &kmlab_nodes);
	/* a stray write over the back pointer of the first node (b) */
	b.link.prev = &c.link;
	kmlab_insert_node(&c, &kmlab_nodes);
}

static noinline void kmlab_do_list_del_corruption(void)
{
	static LIST_HEAD(kmlab_nodes);
	static struct kmlab_node a, b;

	kmlab_insert_node(&a, &kmlab_nodes);
	kmlab_insert_node(&b, &kmlab_nodes);
	kmlab_remove_node(&a);
	kmlab_remove_node(&a);
}

static noinline void kmlab_do_stack_protector(void)
{
	static const char request[64] = "GET /a/very/long/path/that/does/not/fit/in/sixteen/bytes";

	pr_info("kmlab: request type %d\n", kmlab_parse_request(request, sizeof(request)));
}

static noinline void kmlab_do_double_free(void)
{
	struct kmlab_session s = { .id = 1 };

	s.dev = kzalloc(sizeof(*s.dev), GFP_KERNEL);
	kmlab_release_session(&s);
}

static noinline void kmlab_do_uaf(void)
{
	struct kmlab_session *s = kmem_cache_zalloc(kmlab_session_cache, GFP_KERNEL);

	if (!s)
		return;
	s->dev = kzalloc(sizeof(*s->dev), GFP_KERNEL);
	kmem_cache_free(kmlab_session_cache, s);
	/* use after free: with slub_debug=P the object now holds 0x6b poison */
	kmlab_session_touch(s);
}

static noinline void kmlab_do_warning(void)
{
	struct kmlab_device dev = { .name = "kmlab0", .refcount = 0 };

	kmlab_put_ref(&dev);
}

static unsigned long kmlab_counter;

/*
 * The stalls run in kernel threads of their own: a stall reached through write(2) would be
 * titled after the function before vfs_write (proc_reg_write), the way syzkaller's stall
 * extractor names syscall stalls. In a kthread, the function before kthread() names it.
 */
static noinline int kmlab_softlockup_thread(void *arg)
{
	preempt_disable();	/* whatever the preemption model, nothing else runs here */
	kmlab_spin_forever(&kmlab_counter);
	return 0;
}

static noinline int kmlab_irqsoff_thread(void *arg)
{
	kmlab_spin_irqs_off(&kmlab_counter);
	return 0;
}

/* Named without "rcu": syzkaller's RCU-stall titles skip every frame containing "rcu". */
static noinline int kmlab_reader_thread(void *arg)
{
	kmlab_stats_reader(&kmlab_counter);
	return 0;
}

static noinline void kmlab_do_soft_lockup(void)
{
	kthread_run(kmlab_softlockup_thread, NULL, "kmlab-spin");
}

/*
 * Folklore: a CPU spinning with interrupts off never answers an IPI, and whoever sends it one
 * spins in smp_call_function_many_cond() with preemption off. When that happened, RCU's GP
 * kthread starved behind the sender on the other CPU and the stall came out titled after
 * smp_call_function (6.12 on a loaded host, issue 14). Two IPIs reached the spinning CPU:
 * - insmod returns with the module loader's do_free_init() still queued (it waits for a grace
 *   period, then vfree()s the init sections, whose VM_FLUSH_RESET_PERMS flushes the kernel TLB
 *   on every CPU). The trigger flushes that work first. schedule_work() queues on system_wq up
 *   to 6.1 and on system_percpu_wq where it exists (Debian's 6.12; Kbuild probes the header).
 * - a kthread runs on the mm of the last user task of its CPU (lazy TLB), and when that task
 *   exits, exit_mmap() frees page tables and flushes every CPU in the mm's cpumask, lazy ones
 *   included (seen for the writing `sh` on 6.1 and 6.12). So the spinner is SCHED_FIFO and bound
 *   to the writer's CPU, and the writer is pinned there: the spinner preempts it at once and the
 *   writer never runs again, so the borrowed mm is never torn down.
 * crates/lab/tests/titles.rs pins the title on both kernels.
 */
static noinline void kmlab_do_hard_lockup(void)
{
	struct task_struct *t;
	int cpu = raw_smp_processor_id();

	__flush_workqueue(system_wq);
#ifdef KMLAB_HAVE_SYSTEM_PERCPU_WQ
	__flush_workqueue(system_percpu_wq);
#endif
	if (set_cpus_allowed_ptr(current, cpumask_of(cpu)))
		return;
	t = kthread_create(kmlab_irqsoff_thread, NULL, "kmlab-irqsoff");
	if (IS_ERR(t))
		return;
	kthread_bind(t, cpu);
	sched_set_fifo(t);
	wake_up_process(t);
}

static noinline void kmlab_do_hung_task(void)
{
	kmlab_recv_reply(&kmlab_never);
}

static noinline void kmlab_do_rcu_stall(void)
{
	kthread_run(kmlab_reader_thread, NULL, "kmlab-reader");
}

static noinline void kmlab_do_timer_null(void)
{
	kmlab_wd.dev = NULL;
	timer_setup(&kmlab_wd.timer, kmlab_watchdog_fn, 0);
	mod_timer(&kmlab_wd.timer, jiffies + HZ / 10);
}

static noinline void kmlab_do_hrtimer_bug(void)
{
	kmlab_pulse.period_ns = 10 * NSEC_PER_MSEC;
	hrtimer_init(&kmlab_pulse.timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL);
	kmlab_pulse.timer.function = kmlab_pulse_fn;
	hrtimer_start(&kmlab_pulse.timer, ns_to_ktime(kmlab_pulse.period_ns), HRTIMER_MODE_REL);
}

static noinline void kmlab_do_workqueue_null(void)
{
	kmlab_flusher.target = NULL;
	kmlab_flusher.pending = 1;
	INIT_WORK(&kmlab_flusher.work, kmlab_flush_work_fn);
	schedule_work(&kmlab_flusher.work);
}

static noinline void kmlab_do_estats_null(void)
{
	struct kmlab_sock *sk = kzalloc(sizeof(*sk), GFP_KERNEL);

	if (!sk)
		return;
	strscpy(sk->name, "kmlab-sock", sizeof(sk->name));
	sk->estats = kmlab_estats_create(); /* the failure is ignored */
	kmlab_sock_set_mss(sk, 1448);
}

/*
 * The caller, named after the seed's enqueue_entity(): syzkaller's titles skip list helpers by
 * substring ("list_add"), so the title names this frame.
 */
static noinline void kmlab_enqueue_entity(struct kmlab_rq *rq, struct kmlab_cfs_rq *cfs_rq)
{
	cfs_rq->load += 1024;
	kmlab_list_add_leaf_cfs_rq(rq, cfs_rq);
}

static noinline void kmlab_do_leaf_cfs_rq(void)
{
	static struct kmlab_rq rq = { .cpu = 1 };
	static struct kmlab_cfs_rq parent, child, stale;

	INIT_LIST_HEAD(&rq.leaf_cfs_rq_list);
	rq.tmp_alone_branch = &rq.leaf_cfs_rq_list;
	child.parent = &parent;
	/* a branch was left dangling: tmp_alone_branch names a node whose next was zeroed */
	list_add_rcu(&stale.leaf_cfs_rq_list, &rq.leaf_cfs_rq_list);
	rq.tmp_alone_branch = &stale.leaf_cfs_rq_list;
	memset(&stale.leaf_cfs_rq_list, 0, sizeof(stale.leaf_cfs_rq_list));
	kmlab_enqueue_entity(&rq, &child);
}

static noinline void kmlab_do_timer_reinit(void)
{
	struct kmlab_neigh *n = &kmlab_neighs[0];

	n->ip = 0x0a000001;
	kmlab_neigh_add_timer(n, jiffies + HZ / 5);
	/* still pending: re-initialised and re-armed into another wheel bucket */
	kmlab_neigh_add_timer(n, jiffies + HZ / 2);
}

static noinline void kmlab_do_wrong_cpu_index(void)
{
	static struct kmlab_hctx_data khd;
	static struct kmlab_hctx hctx = { .queue_num = 0, .type = 2 };
	/* index_hw[2] belongs to another hardware queue type: 64 >= nr_kcqs */
	static struct kmlab_sw_ctx ctx = { .cpu = 1, .index_hw = { 0, 1, 64 } };
	int i;

	spin_lock_init(&khd.lock);
	khd.nr_kcqs = 2;
	/*
	 * vmalloc, so that kcqs[64] (4.6 KB past a one-page array) lands on the guard page and
	 * spin_lock() faults deterministically (with kmalloc it would spin on whatever follows).
	 */
	khd.kcqs = vzalloc(khd.nr_kcqs * sizeof(*khd.kcqs));
	if (!khd.kcqs)
		return;
	for (i = 0; i < khd.nr_kcqs; i++) {
		spin_lock_init(&khd.kcqs[i].lock);
		INIT_LIST_HEAD(&khd.kcqs[i].rq_list[0]);
	}
	hctx.sched_data = &khd;
	kmlab_bio_merge(&hctx, &ctx);
}

static noinline void kmlab_do_null_member_deep(void)
{
	struct kmlab_request *req = kzalloc(sizeof(*req), GFP_KERNEL);

	if (!req)
		return;
	req->tag = 7;
	req->len = 512;
	req->conn = kzalloc(sizeof(*req->conn), GFP_KERNEL);
	if (!req->conn)
		return;
	/* connected, but its transport was never attached: conn->xprt stays NULL */
	req->conn->id = 42;
	pr_info("kmlab: request mtu %u\n", kmlab_request_mtu(req));
}

static noinline void kmlab_do_hlist_double_del(void)
{
	struct kmlab_peer *p = kzalloc(sizeof(*p), GFP_KERNEL);
	struct kmlab_peer *q = kzalloc(sizeof(*q), GFP_KERNEL);

	if (!p || !q)
		return;
	p->addr = 0x0a000002;
	q->addr = 0x0a00000a;
	hlist_add_head(&q->hnode, &kmlab_peer_hash[q->addr & 7]);
	hlist_add_head(&p->hnode, &kmlab_peer_hash[p->addr & 7]);
	kmlab_peer_unhash(p);
	/* unhashed a second time (an expiry and a close, one after the other) */
	kmlab_peer_unhash(p);
}

static noinline void kmlab_do_percpu_index(void)
{
	/* a flow hash used as the slot, never reduced modulo the 4 slots */
	unsigned int slot = 0x2000000;

	KMLAB_HIDE(slot);
	kmlab_account_hit(slot, 1500);
}

static noinline void kmlab_do_uaf_realloc(void)
{
	struct kmlab_token *toks[8], *t;
	struct kmlab_frame *f = NULL;
	int i, n;

	kmlab_token_cache = kmem_cache_create("kmlab_token", sizeof(struct kmlab_token), 0, 0,
					      NULL);
	kmlab_frame_cache = kmem_cache_create("kmlab_frame", sizeof(struct kmlab_frame), 0, 0,
					      NULL);
	if (!kmlab_token_cache || !kmlab_frame_cache)
		return;
	/*
	 * Stay on this CPU: the freed slab page goes to this CPU's free page lists, where the
	 * other cache's first slab finds it.
	 */
	set_cpus_allowed_ptr(current, cpumask_of(raw_smp_processor_id()));
	for (i = 0; i < ARRAY_SIZE(toks); i++) {
		toks[i] = kmem_cache_zalloc(kmlab_token_cache, GFP_KERNEL);
		if (!toks[i])
			return;
		toks[i]->id = i;
	}
	t = toks[3];
	t->owner = kzalloc(sizeof(*t->owner), GFP_KERNEL);
	for (i = 0; i < ARRAY_SIZE(toks); i++)
		kmem_cache_free(kmlab_token_cache, toks[i]);
	/* the slab is empty: shrinking gives its page back to the page allocator */
	kmem_cache_shrink(kmlab_token_cache);
	for (n = 0; n < 1024; n++) {
		f = kmem_cache_alloc(kmlab_frame_cache, GFP_KERNEL);
		if (!f)
			break;
		f->seq = n;
		f->cookie = KMLAB_FRAME_COOKIE;
		f->len = 0;
		if ((void *)f == (void *)t)
			break;
	}
	pr_info("kmlab: token %px %s\n", t,
		(void *)f == (void *)t ? "now holds a kmlab_frame" : "was not reused");
	/* not reused: a BUG with another title, which lab/build reports, instead of no crash */
	BUG_ON((void *)f != (void *)t);
	/* use after free: t->owner is now f->cookie */
	kmlab_token_get(t);
}

static noinline void kmlab_do_warn_then_oops(void)
{
	/* benign: the machine goes on */
	kmlab_check_budget(130, 100);
	msleep(200);
	kmlab_do_null_member_deep();
}

struct kmlab_scenario {
	const char *name;
	void (*fn)(void);
};

static const struct kmlab_scenario kmlab_scenarios[] = {
	{ "bug", kmlab_do_bug },
	{ "null_deref", kmlab_do_null_deref },
	{ "paging", kmlab_do_paging },
	{ "gpf", kmlab_do_gpf },
	{ "divide_error", kmlab_do_divide_error },
	{ "list_add_corruption", kmlab_do_list_add_corruption },
	{ "list_del_corruption", kmlab_do_list_del_corruption },
	{ "stack_protector", kmlab_do_stack_protector },
	{ "double_free", kmlab_do_double_free },
	{ "uaf", kmlab_do_uaf },
	{ "warning", kmlab_do_warning },
	{ "soft_lockup", kmlab_do_soft_lockup },
	{ "hard_lockup", kmlab_do_hard_lockup },
	{ "hung_task", kmlab_do_hung_task },
	{ "rcu_stall", kmlab_do_rcu_stall },
	{ "timer_null", kmlab_do_timer_null },
	{ "hrtimer_bug", kmlab_do_hrtimer_bug },
	{ "workqueue_null", kmlab_do_workqueue_null },
	{ "estats_null", kmlab_do_estats_null },
	{ "leaf_cfs_rq", kmlab_do_leaf_cfs_rq },
	{ "timer_reinit", kmlab_do_timer_reinit },
	{ "wrong_cpu_index", kmlab_do_wrong_cpu_index },
	{ "null_member_deep", kmlab_do_null_member_deep },
	{ "hlist_double_del", kmlab_do_hlist_double_del },
	{ "percpu_index", kmlab_do_percpu_index },
	{ "uaf_realloc", kmlab_do_uaf_realloc },
	{ "warn_then_oops", kmlab_do_warn_then_oops },
};

static ssize_t kmlab_write(struct file *file, const char __user *ubuf, size_t len, loff_t *off)
{
	char buf[32];
	size_t n = min(len, sizeof(buf) - 1);
	int i;

	if (copy_from_user(buf, ubuf, n))
		return -EFAULT;
	buf[n] = 0;
	strim(buf);
	for (i = 0; i < ARRAY_SIZE(kmlab_scenarios); i++) {
		if (strcmp(buf, kmlab_scenarios[i].name) == 0) {
			pr_info("kmlab: triggering %s\n", buf);
			kmlab_scenarios[i].fn();
			return len;
		}
	}
	pr_info("kmlab: unknown scenario '%s'\n", buf);
	return -EINVAL;
}

static const struct proc_ops kmlab_proc_ops = {
	.proc_write = kmlab_write,
};

static int __init kmlab_init(void)
{
	kmlab_session_cache = kmem_cache_create("kmlab_session", sizeof(struct kmlab_session), 0,
						0, NULL);
	if (!kmlab_session_cache)
		return -ENOMEM;
	if (!proc_create("kmlab", 0200, NULL, &kmlab_proc_ops)) {
		kmem_cache_destroy(kmlab_session_cache);
		return -ENOMEM;
	}
	{
		struct kmlab_device dev = { .name = "kmlab0", .id = 0 };

		kmlab_describe_device(&dev);
	}
	pr_info("kmlab: ready, %zu scenarios\n", ARRAY_SIZE(kmlab_scenarios));
	return 0;
}

static void __exit kmlab_exit(void)
{
	remove_proc_entry("kmlab", NULL);
	kmem_cache_destroy(kmlab_session_cache);
}

module_init(kmlab_init);
module_exit(kmlab_exit);
