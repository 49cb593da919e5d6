/*
 * The store: one writer, lock-free readers.
 *
 * Theory of operation
 *
 * Contents. Everything a reader can see hangs off one pointer, core->cur,
 * to a generation (struct kfs_gen): the main table and one table per
 * index. The main table is a ck_hs set in single-writer, many-reader mode
 * (CK_HS_MODE_SPMC) of entries {object, seq}, keyed by the object's
 * identity (kind, namespace, name); an entry usually lives inside its
 * object, so a look-up touches one allocation. An index table maps a key string
 * to a bucket, and a bucket is itself an SPMC ck_hs set of the same entries.
 * Entries are immutable once a reader can reach them: a changed object
 * gets a new entry, put in place of the old one with ck_hs_fas() (one
 * pointer store into the same slot, so a concurrent iteration sees the
 * old entry or the new one, never neither nor both).
 *
 * Readers. A reader handle owns a ck_epoch record. Every reader call is
 * one epoch section: load core->cur, probe or iterate, take references on
 * the objects it returns, leave. No lock, no write to shared memory
 * except the reader's own record. The record serves the first thread
 * that reads through the handle (bound, set once with one CAS); calls
 * from any other thread borrow a spare record for the call, so every call
 * stays correct from any thread, and one handle per thread is fastest.
 *
 * Fences. ck_epoch_begin() orders the record's "active" store before the
 * loads of the section with a locked instruction. Here, when the kernel
 * offers membarrier(PRIVATE_EXPEDITED), the reader only keeps the
 * compiler from reordering and the writer calls membarrier() before every
 * scan of the records (poll, barrier, synchronize): each running thread
 * then passes a full barrier, so a section that began before it is seen
 * by the scan, and one that began after it sees everything unlinked
 * before it. A look-up then costs no atomic read-modify-write at all.
 * Without membarrier (or under TSan) the plain ck_epoch_begin() is used.
 *
 * Borrowed reads. kf_store_read() runs the caller's function inside the
 * section and kf_store_get_borrowed() returns objects that stay valid
 * until kf_store_unpin(): no reference count, so readers of the same hot
 * objects write no shared line. A pin claims the handle's pinner word
 * (one CAS per pin, not per look-up) and runs on the handle's record when
 * the pinning thread is the bound one, on a spare record otherwise; calls
 * from the pinning thread nest in the pinned section (ck_epoch counts the
 * depth).
 *
 * Retirement. Whatever the writer unlinks (an entry and its object
 * reference, an empty bucket, a ck_hs map outgrown by a resize, a whole
 * generation after a swap) goes into a limbo batch handed to ck_epoch_call
 * at the end of the writer's call; ck_epoch_poll frees batches once every
 * reader section that could have seen them has ended. After a swap the
 * writer waits for that grace period at once (ck_epoch_barrier) so a
 * re-list never holds two full generations longer than the readers'
 * sections last. Readers never wait for the writer; the writer waits for
 * readers only there, and for as long as one reader call takes.
 *
 * Re-lists. INIT starts a private generation (next). Each INIT_APPLY is
 * compared with the current contents by identity: same uid and
 * resourceVersion shares the current object (the new copy is dropped);
 * otherwise the entry is marked changed, replaced (new uid) or added and
 * queued. INIT_DONE computes the differences (deletes for what vanished,
 * delete+apply for a new uid, apply for a change), stamps the new entries
 * with the sequence numbers those events will get, swaps core->cur to
 * next with one release store, then publishes the events in order.
 *
 * Time. The store never compares resourceVersions (they are opaque): it
 * holds exactly what the watcher sent, in the order sent. "Never back in
 * time" is the watcher's duty (a re-list is a consistent read, newer than
 * anything watched before); the store's part is that the swap is one
 * step and that the differences are published only after it, so nobody
 * downstream sees the new list's events before the store holds it.
 *
 * Readiness is an atomic word read by get() without a lock; a mutex and a
 * condition variable serve only the reason text and waiters.
 *
 * TSan. ck's loads, stores and epoch logic are invisible to TSan. Entry
 * and bucket publication therefore also goes through C11 release/acquire
 * on the entry's object pointer and the bucket's key pointer, and under
 * TSan readers release a sync address when leaving a section, which the
 * limbo callback acquires before freeing anything.
 */
#include <assert.h>
#include <ck_epoch.h>
#include <ck_hs.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__linux__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#endif

#include "kubefan/store.h"
#include "log.h"
#include "object_int.h"
#include "ring.h"
#include "store_int.h"

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define KFS_TSAN_RELEASE(a) __tsan_release(a)
#define KFS_TSAN_ACQUIRE(a) __tsan_acquire(a)
#else
#define KFS_TSAN_RELEASE(a) ((void)(a))
#define KFS_TSAN_ACQUIRE(a) ((void)(a))
#endif

#define KFS_MAX_INDEX  16
#define KFS_HS_MODE    (CK_HS_MODE_SPMC | CK_HS_MODE_OBJECT)
#define KFS_POLL_EVERY 64 /* writer calls between polls (each a membarrier) */

enum kfs_class {
	KFS_SAME = 0, /* re-list: shared with the current contents */
	KFS_CHANGED,  /* same uid, other resourceVersion */
	KFS_REPLACED, /* same name, new uid */
	KFS_ADDED,    /* not in the current contents */
};

/* A main-table and bucket element (struct kfi_store_entry, object_int.h):
 * {object, seq}. Immutable once reachable by readers except cls and pend,
 * which only the writer touches; a probe has obj == NULL and u.id set.
 * Usually it is the object's own entry (kfi_object_entry_claim), freed
 * with the object; when that one is taken (the object sits in another
 * store, or is applied again with a new seq) it is a separate malloc. An
 * object's own entry unchanged across a re-list is shared by both
 * generations, each holding one reference on the object. */
#define kfs_entry kfi_store_entry

struct kfs_bucket {
	_Atomic(const char *) key; /* keybuf; a probe points elsewhere */
	uint64_t hash;
	ck_hs_t set; /* struct kfs_entry * */
	char keybuf[];
};

enum kfs_idx_kind { KFS_IDX_NAMESPACE, KFS_IDX_LABEL, KFS_IDX_USER };

struct kfs_idxdef {
	char *name;
	enum kfs_idx_kind kind;
	kf_index_fn fn;
	void *arg;
};

struct kfs_gen {
	ck_hs_t main; /* struct kfs_entry * */
	atomic_uint nidx;
	ck_hs_t idx[KFS_MAX_INDEX]; /* struct kfs_bucket * */
};

enum kfs_limbo_kind {
	KFS_L_ENTRY,  /* unref the object, free the entry */
	KFS_L_BUCKET, /* destroy the set, free the bucket */
	KFS_L_RAW,    /* free() */
	KFS_L_GEN,    /* tear down a whole generation */
};

struct kfs_limbo_item {
	void *p;
	enum kfs_limbo_kind kind;
};

struct kfs_core;

struct kfs_limbo {
	struct ck_epoch_entry ee;
	struct kfs_core *core;
	size_t n, cap;
	struct kfs_limbo_item items[];
};

struct kfs_core {
	atomic_uint refs; /* the writer and each reader handle */
	ck_epoch_t epoch;
	ck_epoch_record_t *wrec;
	_Atomic(struct kfs_gen *) cur;

	struct kfs_idxdef idx[KFS_MAX_INDEX];
	atomic_uint nidx;

	atomic_int readiness;
	atomic_bool synced;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char why[256];
	bool writer_gone; /* under mu: readiness can no longer change */

	_Atomic uint64_t seq_started, seq_done;
	struct kfi_ring *ring;
	char tsan_sync;
};

/* A cache line of its own: the record is written on every call, and two
 * handles of two threads must not share a line. */
struct kf_store {
	struct kfs_core *core;
	ck_epoch_record_t *rec;
	/* The thread whose calls use rec (&kfs_tls_me): the first that read
	 * through the handle. Set once; other threads borrow spare records. */
	_Atomic(const void *) bound;
	/* kf_store_pin(): the pinning thread, its depth (touched only by
	 * that thread) and the record its section runs on. */
	_Atomic(const void *) pinner;
	unsigned pins;
	ck_epoch_record_t *pin_rec;
} __attribute__((aligned(CK_MD_CACHELINE)));

/* Its address names the calling thread (unique among live threads). */
static _Thread_local char kfs_tls_me;

/* Keys of one object up to this many are deduplicated by a linear scan;
 * past it through a hash table (an object may carry thousands of labels,
 * and a scan per key made its apply quadratic). */
#define KFS_KEYS_SCAN 16

/* A set of index keys, deduplicated, in one growing arena. */
struct kfs_keys {
	char *buf;
	size_t len, cap;
	size_t *off;
	size_t n, ocap;
	uint32_t *tab; /* index + 1 of a key, 0 empty; valid when hashed */
	size_t tcap;   /* a power of two, >= 2 n when hashed */
	bool hashed;
	bool nomem;
};

struct kfs_diff {
	kf_event_type type;
	kf_object *obj;
	struct kfs_entry *e; /* APPLY: the entry to stamp */
};

struct kf_writer {
	struct kfs_core *core;
	struct kfs_gen *next; /* INIT..INIT_DONE only */
	struct kfs_entry **pending;
	size_t npending, cappending;
	size_t matched; /* current entries the re-list named again */
	bool moved;	/* watch events changed cur since INIT */
	struct kfs_diff *diffs;
	size_t ndiffs, capdiffs;
	struct kfs_limbo *limbo;
	struct kfs_keys ka, kb;
	uint64_t local_seq;
	unsigned since_poll;
	bool events_seen;
};

struct kf_state {
	size_t len, cap;
	kf_object **objs;
	uint64_t *seqs;
};

/* The writer whose call is running on this thread: ck_hs frees outgrown
 * maps through kfs_hs_free() with no context argument. */
static _Thread_local struct kf_writer *kfs_tls_writer;

static void kfs_retire(struct kf_writer *w, void *p, enum kfs_limbo_kind k);

/* ---- asymmetric fences ---- */

/* True when readers open sections without a store-load fence and the
 * writer makes every thread of the process run one (membarrier) before it
 * scans the reader records. Set once, before the first store exists. */
static bool kfs_asym;
static pthread_once_t kfs_asym_once = PTHREAD_ONCE_INIT;

static void
kfs_asym_setup(void)
{
#if defined(__linux__) && !defined(__SANITIZE_THREAD__)
	long cmds;
	/* KUBEFAN_STORE_FENCES=1 keeps the fence in every reader call (the
	 * tests run both ways). */
	const char *fences = getenv("KUBEFAN_STORE_FENCES");

	if (fences != NULL && *fences != '\0' && strcmp(fences, "0") != 0)
		return;
	cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0);
	if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED))
		return;
	kfs_asym = syscall(SYS_membarrier,
			   MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0) == 0;
#endif
}

/* The writer's half: before it reads reader records, every running thread
 * of the process has passed a full memory barrier, so a reader's section
 * start is visible or the reader sees everything unlinked before now. */
static void
kfs_scan_fence(void)
{
#if defined(__linux__) && !defined(__SANITIZE_THREAD__)
	if (!kfs_asym)
		return;
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0) == 0)
		return;
	/* EPERM: not registered in this process (a child forked after the
	 * first store): register now. Then the slow global command. */
	if (errno == EPERM &&
	    syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
		    0) == 0 &&
	    syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0) == 0)
		return;
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0) == 0)
		return;
	/* Neither: no reader can be trusted to be seen, and freeing would be
	 * unsafe. */
	kfi_log(KF_LOG_ERR, "KF-STORE-MEMBARRIER",
		"membarrier failed after registration: %s", strerror(errno));
	abort();
#endif
}

/* ---- ck_hs callbacks ---- */

static void *
kfs_hs_malloc(size_t n)
{
	return malloc(n);
}

static void *
kfs_hs_realloc(void *p, size_t old, size_t n, bool defer)
{
	void *q;

	if (!defer)
		return realloc(p, n);
	q = malloc(n);
	if (q == NULL)
		return NULL;
	memcpy(q, p, old < n ? old : n);
	kfs_retire(kfs_tls_writer, p, KFS_L_RAW);
	return q;
}

static void
kfs_hs_free(void *p, size_t n, bool defer)
{
	if (p == NULL)
		return;
	if (defer) {
		assert(kfs_tls_writer != NULL);
		kfs_retire(kfs_tls_writer, p, KFS_L_RAW);
		return;
	}
	free(p);
}

static struct ck_malloc kfs_ck_alloc = {
    .malloc = kfs_hs_malloc,
    .realloc = kfs_hs_realloc,
    .free = kfs_hs_free,
};

static kf_object *
kfs_entry_obj(const struct kfs_entry *e)
{
	return atomic_load_explicit(&((struct kfs_entry *)e)->obj,
				    memory_order_acquire);
}

static unsigned long
kfs_entry_hash(const void *p, unsigned long seed)
{
	const struct kfs_entry *e = p;
	kf_object *obj = kfs_entry_obj(e);

	(void)seed;
	if (obj == NULL)
		return (unsigned long)e->u.id->hash;
	return (unsigned long)kfi_object_hash(obj);
}

static bool
kfs_entry_cmp(const void *stored, const void *key)
{
	kf_object *a = kfs_entry_obj(stored);
	const struct kfs_entry *k = key;
	kf_object *b = kfs_entry_obj(k);

	if (b != NULL)
		return kfi_object_same_identity(a, b);
	return kfi_object_ident_eq(a, k->u.id);
}

static unsigned long
kfs_bucket_hash(const void *p, unsigned long seed)
{
	const struct kfs_bucket *b = p;

	(void)seed;
	(void)atomic_load_explicit(&((struct kfs_bucket *)b)->key,
				   memory_order_acquire);
	return (unsigned long)b->hash;
}

static bool
kfs_bucket_cmp(const void *stored, const void *key)
{
	const char *a = atomic_load_explicit(
	    &((struct kfs_bucket *)stored)->key, memory_order_acquire);
	const char *b = atomic_load_explicit(&((struct kfs_bucket *)key)->key,
					     memory_order_relaxed);

	return strcmp(a, b) == 0;
}

static uint64_t
kfs_key_hash(const char *key)
{
	return kfi_identity_hash(NULL, NULL, key);
}

static bool
kfs_hs_init(ck_hs_t *hs, bool buckets, unsigned long cap)
{
	if (buckets)
		return ck_hs_init(hs, KFS_HS_MODE, kfs_bucket_hash,
				  kfs_bucket_cmp, &kfs_ck_alloc, cap, 0);
	return ck_hs_init(hs, KFS_HS_MODE, kfs_entry_hash, kfs_entry_cmp,
			  &kfs_ck_alloc, cap, 0);
}

/* ---- limbo: retirement through ck_epoch ---- */

static void kfs_gen_destroy(struct kfs_gen *g);

static void
kfs_entry_free(struct kfs_entry *e)
{
	kf_object *obj = atomic_load_explicit(&e->obj, memory_order_relaxed);

	if (!kfi_object_entry_is_own(obj, e))
		free(e);
	kf_object_unref(obj);
}

static void
kfs_bucket_free(struct kfs_bucket *b)
{
	ck_hs_destroy(&b->set);
	free(b);
}

static void
kfs_item_run(void *p, enum kfs_limbo_kind kind)
{
	switch (kind) {
	case KFS_L_ENTRY:
		kfs_entry_free(p);
		break;
	case KFS_L_BUCKET:
		kfs_bucket_free(p);
		break;
	case KFS_L_RAW:
		free(p);
		break;
	case KFS_L_GEN:
		kfs_gen_destroy(p);
		break;
	}
}

static void
kfs_limbo_run(struct kfs_limbo *l)
{
	for (size_t i = 0; i < l->n; i++)
		kfs_item_run(l->items[i].p, l->items[i].kind);
	free(l);
}

static void
kfs_limbo_cb(ck_epoch_entry_t *ee)
{
	struct kfs_limbo *l = (struct kfs_limbo *)ee;

	KFS_TSAN_ACQUIRE(&l->core->tsan_sync);
	kfs_limbo_run(l);
}

static void
kfs_retire(struct kf_writer *w, void *p, enum kfs_limbo_kind k)
{
	struct kfs_limbo *l = w->limbo;

	if (l == NULL || l->n == l->cap) {
		size_t cap = l == NULL ? 16 : l->cap * 2;
		struct kfs_limbo *nl =
		    realloc(l, sizeof(*l) + cap * sizeof(l->items[0]));

		if (nl == NULL) {
			/* No room to defer: wait out the readers instead. */
			kfs_scan_fence();
			ck_epoch_synchronize(w->core->wrec);
			KFS_TSAN_ACQUIRE(&w->core->tsan_sync);
			kfs_item_run(p, k);
			return;
		}
		if (l == NULL) {
			nl->n = 0;
			nl->core = w->core;
		}
		nl->cap = cap;
		w->limbo = l = nl;
	}
	l->items[l->n].p = p;
	l->items[l->n].kind = k;
	l->n++;
}

/* End of a writer call: hand the batch to the epoch, poll now and then. */
static void
kfs_flush(struct kf_writer *w, bool wait)
{
	ck_epoch_record_t *rec = w->core->wrec;

	if (w->limbo != NULL) {
		ck_epoch_call(rec, &w->limbo->ee, kfs_limbo_cb);
		w->limbo = NULL;
		w->since_poll++;
	}
	if (wait) {
		kfs_scan_fence();
		ck_epoch_barrier(rec);
		w->since_poll = 0;
	} else if (w->since_poll >= KFS_POLL_EVERY) {
		kfs_scan_fence();
		ck_epoch_poll(rec);
		w->since_poll = 0;
	}
}

/* ---- index keys ---- */

static void
kfs_keys_reset(struct kfs_keys *k)
{
	k->len = 0;
	k->n = 0;
	k->hashed = false;
	k->nomem = false;
}

static const char *
kfs_keys_at(const struct kfs_keys *k, size_t i)
{
	return k->buf + k->off[i];
}

static bool
kfs_keys_has(const struct kfs_keys *k, const char *key)
{
	size_t mask = k->tcap - 1, i;

	if (!k->hashed) {
		for (i = 0; i < k->n; i++)
			if (strcmp(kfs_keys_at(k, i), key) == 0)
				return true;
		return false;
	}
	/* Bound: the table is at most half full. */
	for (i = kfs_key_hash(key) & mask; k->tab[i] != 0; i = (i + 1) & mask)
		if (strcmp(kfs_keys_at(k, k->tab[i] - 1), key) == 0)
			return true;
	return false;
}

static void
kfs_keys_slot(struct kfs_keys *k, size_t idx)
{
	size_t mask = k->tcap - 1;
	size_t i = kfs_key_hash(kfs_keys_at(k, idx)) & mask;

	while (k->tab[i] != 0)
		i = (i + 1) & mask;
	k->tab[i] = (uint32_t)(idx + 1);
}

/* After key n-1 was added: hash the keys once there are many. Without
 * memory for the table the scan goes on (slow, still right). */
static void
kfs_keys_index(struct kfs_keys *k)
{
	size_t cap =
	    k->hashed ? k->tcap : 0; /* fresh: shrink after a big one */

	if (k->n < KFS_KEYS_SCAN || k->n > UINT32_MAX - 1)
		return;
	if (k->hashed && 2 * k->n <= cap) {
		kfs_keys_slot(k, k->n - 1);
		return;
	}
	while (cap < 4 * k->n)
		cap = cap ? cap * 2 : 64;
	if (cap != k->tcap) {
		uint32_t *tab = realloc(k->tab, cap * sizeof(*tab));

		if (tab == NULL) {
			k->hashed = false;
			return;
		}
		k->tab = tab;
		k->tcap = cap;
	}
	memset(k->tab, 0, k->tcap * sizeof(*k->tab));
	/* Bound: the keys of one object, once per doubling. */
	for (size_t i = 0; i < k->n; i++)
		kfs_keys_slot(k, i);
	k->hashed = true;
}

static void
kfs_keys_add2(struct kfs_keys *k, const char *a, const char *sep, const char *b)
{
	size_t la = strlen(a), ls = strlen(sep), lb = strlen(b);
	size_t need = la + ls + lb + 1;
	char *dst;

	if (k->len + need > k->cap) {
		size_t cap = (k->cap + need) * 2;
		char *buf = realloc(k->buf, cap);

		if (buf == NULL) {
			k->nomem = true;
			return;
		}
		k->buf = buf;
		k->cap = cap;
	}
	if (k->n == k->ocap) {
		size_t ocap = k->ocap ? k->ocap * 2 : 16;
		size_t *off = realloc(k->off, ocap * sizeof(*off));

		if (off == NULL) {
			k->nomem = true;
			return;
		}
		k->off = off;
		k->ocap = ocap;
	}
	dst = k->buf + k->len;
	memcpy(dst, a, la);
	memcpy(dst + la, sep, ls);
	memcpy(dst + la + ls, b, lb + 1);
	if (kfs_keys_has(k, dst))
		return;
	k->off[k->n++] = k->len;
	k->len += need;
	kfs_keys_index(k);
}

static void
kfs_keys_emit(void *ctx, const char *key)
{
	if (key != NULL)
		kfs_keys_add2(ctx, key, "", "");
}

static void
kfs_keys_of(const struct kfs_idxdef *d, const kf_object *obj,
	    struct kfs_keys *k)
{
	const char *key, *val;

	kfs_keys_reset(k);
	switch (d->kind) {
	case KFS_IDX_NAMESPACE:
		kfs_keys_add2(k, kf_object_namespace(obj), "", "");
		break;
	case KFS_IDX_LABEL:
		for (size_t i = 0; i < kf_object_label_count(obj); i++) {
			kf_object_label_at(obj, i, &key, &val);
			kfs_keys_add2(k, key, "=", val);
		}
		break;
	case KFS_IDX_USER:
		d->fn(d->arg, obj, kfs_keys_emit, k);
		break;
	}
}

static void
kfs_keys_fini(struct kfs_keys *k)
{
	free(k->buf);
	free(k->off);
	free(k->tab);
}

/* ---- buckets ---- */

static struct kfs_bucket *
kfs_bucket_get(ck_hs_t *idx, const char *key, uint64_t h)
{
	struct kfs_bucket probe = {.hash = h};

	atomic_init(&probe.key, key);
	return ck_hs_get(idx, (unsigned long)h, &probe);
}

static struct kfs_bucket *
kfs_bucket_make(ck_hs_t *idx, const char *key, uint64_t h)
{
	size_t n = strlen(key);
	struct kfs_bucket *b = malloc(sizeof(*b) + n + 1);

	if (b == NULL)
		return NULL;
	memcpy(b->keybuf, key, n + 1);
	b->hash = h;
	if (!kfs_hs_init(&b->set, false, 4)) {
		free(b);
		return NULL;
	}
	atomic_store_explicit(&b->key, b->keybuf, memory_order_release);
	if (!ck_hs_put(idx, (unsigned long)h, b)) {
		kfs_bucket_free(b);
		return NULL;
	}
	return b;
}

static bool
kfs_bucket_add(ck_hs_t *idx, const char *key, struct kfs_entry *e, bool replace)
{
	uint64_t h = kfs_key_hash(key);
	struct kfs_bucket *b = kfs_bucket_get(idx, key, h);
	unsigned long eh = kfs_entry_hash(e, 0);
	void *prev;

	if (b == NULL && (b = kfs_bucket_make(idx, key, h)) == NULL)
		return false;
	if (replace && ck_hs_fas(&b->set, eh, e, &prev))
		return true;
	return ck_hs_put(&b->set, eh, e);
}

static void
kfs_bucket_del(struct kf_writer *w, ck_hs_t *idx, const char *key,
	       struct kfs_entry *e)
{
	uint64_t h = kfs_key_hash(key);
	struct kfs_bucket *b = kfs_bucket_get(idx, key, h);

	if (b == NULL)
		return;
	ck_hs_remove(&b->set, kfs_entry_hash(e, 0), e);
	if (ck_hs_count(&b->set) > 0)
		return;
	ck_hs_remove(idx, (unsigned long)h, b);
	kfs_retire(w, b, KFS_L_BUCKET);
}

/* ---- generations ---- */

static struct kfs_gen *
kfs_gen_alloc(struct kfs_core *c, unsigned long cap)
{
	struct kfs_gen *g = calloc(1, sizeof(*g));
	unsigned n = atomic_load(&c->nidx);

	if (g == NULL)
		return NULL;
	if (!kfs_hs_init(&g->main, false, cap < 64 ? 64 : cap))
		goto fail;
	for (unsigned i = 0; i < n; i++) {
		if (!kfs_hs_init(&g->idx[i], true, 64)) {
			atomic_store(&g->nidx, i);
			kfs_gen_destroy(g);
			return NULL;
		}
	}
	atomic_store(&g->nidx, n);
	return g;
fail:
	free(g);
	return NULL;
}

static void
kfs_gen_destroy(struct kfs_gen *g)
{
	ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
	unsigned n = atomic_load(&g->nidx);
	void *p;

	while (ck_hs_next(&g->main, &it, &p))
		kfs_entry_free(p);
	ck_hs_destroy(&g->main);
	for (unsigned i = 0; i < n; i++) {
		ck_hs_iterator_init(&it);
		while (ck_hs_next(&g->idx[i], &it, &p))
			kfs_bucket_free(p);
		ck_hs_destroy(&g->idx[i]);
	}
	free(g);
}

static struct kfs_entry *
kfs_entry_new(kf_object *obj, uint64_t seq)
{
	struct kfs_entry *e = kfi_object_entry_claim(obj);

	if (e == NULL && (e = malloc(sizeof(*e))) == NULL)
		return NULL;
	e->u.seq = seq;
	e->cls = KFS_SAME;
	e->pend = 0;
	atomic_store_explicit(&e->obj, kf_object_ref(obj),
			      memory_order_release);
	return e;
}

/* For the next generation: the same {object, seq} as old. */
static struct kfs_entry *
kfs_entry_share(struct kfs_entry *old)
{
	kf_object *obj = kfs_entry_obj(old);
	struct kfs_entry *e;

	if (!kfi_object_entry_is_own(obj, old))
		return kfs_entry_new(obj, old->u.seq);
	e = old;
	kf_object_ref(obj);
	e->cls = KFS_SAME; /* writer-only fields; readers never look */
	e->pend = 0;
	return e;
}

static struct kfs_entry *
kfs_gen_find(struct kfs_gen *g, const kf_object *obj)
{
	struct kfs_entry probe = {.u.seq = 0};

	atomic_init(&probe.obj, (kf_object *)obj);
	return ck_hs_get(&g->main, (unsigned long)kfi_object_hash(obj), &probe);
}

/* Index maintenance for one generation: old and/or new entry. */
static kf_err
kfs_gen_index(struct kf_writer *w, struct kfs_gen *g, struct kfs_entry *old,
	      struct kfs_entry *nu)
{
	struct kfs_core *c = w->core;
	unsigned n = atomic_load_explicit(&g->nidx, memory_order_relaxed);
	kf_err err = KF_OK;

	for (unsigned i = 0; i < n; i++) {
		struct kfs_keys *ko = &w->ka, *kn = &w->kb;

		kfs_keys_reset(ko);
		kfs_keys_reset(kn);
		if (old != NULL)
			kfs_keys_of(&c->idx[i], kfs_entry_obj(old), ko);
		if (nu != NULL)
			kfs_keys_of(&c->idx[i], kfs_entry_obj(nu), kn);
		if (ko->nomem || kn->nomem)
			err = KF_ENOMEM;
		/* Bound: the keys of two objects for this index. */
		for (size_t k = 0; k < kn->n; k++) {
			const char *key = kfs_keys_at(kn, k);
			bool both = old != NULL && kfs_keys_has(ko, key);

			if (!kfs_bucket_add(&g->idx[i], key, nu, both))
				err = KF_ENOMEM;
		}
		for (size_t k = 0; k < ko->n; k++) {
			const char *key = kfs_keys_at(ko, k);

			if (nu == NULL || !kfs_keys_has(kn, key))
				kfs_bucket_del(w, &g->idx[i], key, old);
		}
	}
	return err;
}

/* Puts nu in g, in place of old when old != NULL (same identity). */
static kf_err
kfs_gen_set(struct kf_writer *w, struct kfs_gen *g, struct kfs_entry *old,
	    struct kfs_entry *nu)
{
	unsigned long h = kfs_entry_hash(nu, 0);
	void *prev;
	kf_err err;

	if (old != NULL) {
		ck_hs_fas(&g->main, h, nu, &prev);
		assert(prev == old);
	} else if (!ck_hs_put(&g->main, h, nu)) {
		kfs_entry_free(nu);
		return KF_ENOMEM;
	}
	err = kfs_gen_index(w, g, old, nu);
	if (old != NULL)
		kfs_retire(w, old, KFS_L_ENTRY);
	return err;
}

static void
kfs_gen_del(struct kf_writer *w, struct kfs_gen *g, struct kfs_entry *old)
{
	struct ck_hs_stat st;

	ck_hs_remove(&g->main, kfs_entry_hash(old, 0), old);
	kfs_gen_index(w, g, old, NULL);
	kfs_retire(w, old, KFS_L_ENTRY);
	ck_hs_stat(&g->main, &st);
	if (st.tombstones > st.n_entries + 1024)
		ck_hs_rebuild(&g->main); /* the old map goes to limbo */
}

/* ---- core and handles ---- */

static ck_epoch_record_t *
kfs_record_get(struct kfs_core *c)
{
	ck_epoch_record_t *r = ck_epoch_recycle(&c->epoch, NULL);

	if (r != NULL) {
		KFS_TSAN_ACQUIRE(r); /* handed over inside libck */
		return r;
	}
	r = aligned_alloc(CK_MD_CACHELINE, sizeof(*r));
	if (r == NULL)
		return NULL;
	ck_epoch_register(&c->epoch, r, NULL);
	return r;
}

static void
kfs_record_put(ck_epoch_record_t *r)
{
	KFS_TSAN_RELEASE(r);
	ck_epoch_unregister(r);
}

static void
kfs_core_destroy(struct kfs_core *c)
{
	ck_stack_entry_t *cursor, *next;
	struct kfs_gen *g = atomic_load(&c->cur);

	if (g != NULL)
		kfs_gen_destroy(g);
	if (c->ring != NULL)
		kfi_ring_free(c->ring);
	for (cursor = CK_STACK_FIRST(&c->epoch.records); cursor != NULL;
	     cursor = next) {
		next = CK_STACK_NEXT(cursor);
		free((ck_epoch_record_t *)cursor); /* record_next is first */
	}
	for (unsigned i = 0; i < atomic_load(&c->nidx); i++)
		free(c->idx[i].name);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c);
}

static void
kfs_core_unref(struct kfs_core *c)
{
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
		kfs_core_destroy(c);
}

static kf_store *
kfs_handle(struct kfs_core *c)
{
	kf_store *s = aligned_alloc(CK_MD_CACHELINE, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->rec = kfs_record_get(c);
	if (s->rec == NULL) {
		free(s);
		return NULL;
	}
	s->core = c;
	atomic_init(&s->bound, NULL);
	atomic_init(&s->pinner, NULL);
	s->pins = 0;
	s->pin_rec = NULL;
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return s;
}

static kf_err
kfs_add_builtin(struct kfs_core *c, const char *name, enum kfs_idx_kind k)
{
	unsigned n = atomic_load(&c->nidx);

	c->idx[n].name = strdup(name);
	if (c->idx[n].name == NULL)
		return KF_ENOMEM;
	c->idx[n].kind = k;
	atomic_store(&c->nidx, n + 1);
	return KF_OK;
}

static kf_err
kfs_alloc(size_t capacity, bool shared, kf_writer **writer, kf_store **reader)
{
	struct kfs_core *c = calloc(1, sizeof(*c));
	struct kf_writer *w = NULL;
	pthread_condattr_t ca;
	kf_err err = KF_ENOMEM;

	*writer = NULL;
	*reader = NULL;
	if (c == NULL)
		return KF_ENOMEM;
	pthread_once(&kfs_asym_once, kfs_asym_setup);
	atomic_init(&c->refs, 1);
	ck_epoch_init(&c->epoch);
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&c->readiness, KF_READINESS_NOT_SYNCED);
	atomic_init(&c->seq_started, 1);
	atomic_init(&c->seq_done, 1);
	if (kfs_add_builtin(c, "namespace", KFS_IDX_NAMESPACE) != KF_OK ||
	    kfs_add_builtin(c, "label", KFS_IDX_LABEL) != KF_OK)
		goto fail;
	c->wrec = kfs_record_get(c);
	if (c->wrec == NULL)
		goto fail;
	if (shared) {
		err = kfi_ring_alloc(capacity, &c->ring);
		if (err != KF_OK)
			goto fail;
		err = KF_ENOMEM;
	}
	atomic_init(&c->cur, kfs_gen_alloc(c, 64));
	w = calloc(1, sizeof(*w));
	if (atomic_load(&c->cur) == NULL || w == NULL)
		goto fail;
	w->core = c;
	w->local_seq = 1;
	*reader = kfs_handle(c);
	if (*reader == NULL)
		goto fail;
	*writer = w;
	return KF_OK;
fail:
	free(w);
	kfs_core_destroy(c);
	return err;
}

kf_err
kf_store_alloc(kf_writer **writer, kf_store **reader)
{
	return kfs_alloc(0, false, writer, reader);
}

kf_err
kf_store_shared_alloc(size_t capacity, kf_writer **writer, kf_store **reader)
{
	if (capacity < 2 || (capacity & (capacity - 1)) != 0) {
		*writer = NULL;
		*reader = NULL;
		return KF_EINVAL;
	}
	return kfs_alloc(capacity, true, writer, reader);
}

/* ---- readiness ---- */

static void
kfs_set_readiness(struct kfs_core *c, kf_readiness r, const char *why)
{
	pthread_mutex_lock(&c->mu);
	snprintf(c->why, sizeof(c->why), "%s", why != NULL ? why : "");
	atomic_store_explicit(&c->readiness, r, memory_order_release);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

void
kf_writer_mark_stale(kf_writer *w, const char *reason)
{
	struct kfs_core *c = w->core;
	bool synced = atomic_load(&c->synced);

	kfs_set_readiness(
	    c, synced ? KF_READINESS_STALE : KF_READINESS_NOT_SYNCED, reason);
	kfi_log(KF_LOG_WARNING, "KF-STORE-STALE", "store %s: %s",
		synced ? "stale" : "still not synced",
		reason != NULL ? reason : "");
}

void
kf_writer_mark_fresh(kf_writer *w)
{
	struct kfs_core *c = w->core;

	if (atomic_load(&c->synced))
		kfs_set_readiness(c, KF_READINESS_READY, NULL);
	else
		kfs_set_readiness(c, KF_READINESS_NOT_SYNCED, NULL);
}

/* ---- writer ---- */

static uint64_t
kfs_head(struct kf_writer *w)
{
	return w->core->ring != NULL ? kfi_ring_head(w->core->ring)
				     : w->local_seq;
}

static void
kfs_publish(struct kf_writer *w, kf_event_type type, unsigned flags,
	    kf_object *obj)
{
	kf_event ev = {.type = type, .flags = flags, .obj = obj};

	if (w->core->ring != NULL)
		kfi_ring_publish(w->core->ring, &ev);
	else
		w->local_seq++;
}

static struct kfs_gen *
kfs_cur(struct kf_writer *w)
{
	return atomic_load_explicit(&w->core->cur, memory_order_relaxed);
}

static kf_err
kfs_apply_live(struct kf_writer *w, const kf_event *ev)
{
	struct kfs_core *c = w->core;
	struct kfs_gen *g = kfs_cur(w);
	struct kfs_entry *old = kfs_gen_find(g, ev->obj), *nu;
	uint64_t seq = kfs_head(w);
	kf_err err = KF_OK;

	atomic_store_explicit(&c->seq_started, seq + 1, memory_order_relaxed);
	/* Pairs with the fence in kfi_store_snapshot_seq(): a reader that
	 * saw this event's change (also a removal, which publishes nothing
	 * it could acquire) then reads started > seq. */
	atomic_thread_fence(memory_order_release);
	if (w->next != NULL)
		w->moved = true; /* INIT_APPLY's classes are out of date */
	if (ev->type == KF_EV_APPLY) {
		nu = kfs_entry_new(ev->obj, seq);
		if (nu == NULL)
			return KF_ENOMEM;
		err = kfs_gen_set(w, g, old, nu);
	} else if (old != NULL) {
		kfs_gen_del(w, g, old);
	}
	kfs_publish(w, ev->type, ev->flags, ev->obj);
	atomic_store_explicit(&c->seq_done, seq + 1, memory_order_release);
	return err;
}

static void
kfs_next_drop(struct kf_writer *w)
{
	if (w->next != NULL)
		kfs_retire(w, w->next, KFS_L_GEN);
	w->next = NULL;
	w->npending = 0;
	w->matched = 0;
	w->moved = false;
}

static kf_err
kfs_init(struct kf_writer *w)
{
	struct kfs_gen *cur = kfs_cur(w);

	kfs_next_drop(w);
	w->next = kfs_gen_alloc(w->core, ck_hs_count(&cur->main) + 64);
	return w->next != NULL ? KF_OK : KF_ENOMEM;
}

static bool
kfs_pending_push(struct kf_writer *w, struct kfs_entry *e)
{
	if (w->npending == w->cappending) {
		size_t cap = w->cappending ? w->cappending * 2 : 1024;
		struct kfs_entry **p = realloc(w->pending, cap * sizeof(*p));

		if (p == NULL)
			return false;
		w->pending = p;
		w->cappending = cap;
	}
	w->pending[w->npending++] = e;
	e->pend = (uint32_t)w->npending;
	return true;
}

/* How obj of the next contents differs from old, its current entry. */
static enum kfs_class
kfs_classify(const struct kfs_entry *old, const kf_object *obj)
{
	kf_object *oo = old != NULL ? kfs_entry_obj(old) : NULL;

	if (oo == NULL)
		return KFS_ADDED;
	if (strcmp(kf_object_uid(oo), kf_object_uid(obj)) != 0)
		return KFS_REPLACED;
	if (strcmp(kf_object_resource_version(oo),
		   kf_object_resource_version(obj)) != 0)
		return KFS_CHANGED;
	return KFS_SAME;
}

static kf_err
kfs_init_apply(struct kf_writer *w, kf_object *obj)
{
	struct kfs_entry *old = kfs_gen_find(kfs_cur(w), obj);
	struct kfs_entry *prev = kfs_gen_find(w->next, obj);
	enum kfs_class cls = kfs_classify(old, obj);
	struct kfs_entry *e;
	uint32_t ppend;
	kf_err err;

	e = cls == KFS_SAME ? kfs_entry_share(old) : kfs_entry_new(obj, 0);
	if (e == NULL)
		return KF_ENOMEM;
	e->cls = (uint16_t)cls;
	ppend = prev != NULL ? prev->pend : 0;
	err = kfs_gen_set(w, w->next, prev, e); /* frees e if it fails */
	if (err == KF_ENOMEM && prev == NULL &&
	    kfs_gen_find(w->next, obj) == NULL)
		return err;
	if (ppend != 0) {
		/* The same name twice in one list: the later one wins. */
		w->pending[ppend - 1] = e;
		e->pend = ppend;
	} else if (cls != KFS_SAME && !kfs_pending_push(w, e)) {
		err = KF_ENOMEM;
	}
	if (prev == NULL && old != NULL)
		w->matched++;
	return err;
}

static bool
kfs_diff_push(struct kf_writer *w, kf_event_type type, kf_object *obj,
	      struct kfs_entry *e)
{
	if (w->ndiffs == w->capdiffs) {
		size_t cap = w->capdiffs ? w->capdiffs * 2 : 256;
		struct kfs_diff *d = realloc(w->diffs, cap * sizeof(*d));

		if (d == NULL)
			return false;
		w->diffs = d;
		w->capdiffs = cap;
	}
	w->diffs[w->ndiffs++] = (struct kfs_diff){type, obj, e};
	return true;
}

/* Watch events changed cur after INIT_APPLY classed the list against it:
 * class every entry of next again against cur as it is now. An entry
 * classed SAME was shared with cur, so readers may hold it; one that now
 * needs an event gets a fresh entry in next for its new number. */
static kf_err
kfs_reclass(struct kf_writer *w, struct kfs_gen *cur)
{
	ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
	struct kfs_entry *e, *old, *nu;
	enum kfs_class cls;
	kf_err err;
	void *p;

	w->npending = 0;
	/* Bound: one pass over next, then one turn per entry that is not
	 * the current one. */
	while (ck_hs_next(&w->next->main, &it, &p)) {
		e = p;
		old = kfs_gen_find(cur, kfs_entry_obj(e));
		if ((old == NULL || kfs_entry_obj(old) != kfs_entry_obj(e)) &&
		    !kfs_pending_push(w, e))
			return KF_ENOMEM;
	}
	for (size_t i = 0; i < w->npending; i++) {
		e = w->pending[i];
		old = kfs_gen_find(cur, kfs_entry_obj(e));
		cls = kfs_classify(old, kfs_entry_obj(e));
		if (e->cls == KFS_SAME && cls != KFS_SAME) {
			nu = kfs_entry_new(kfs_entry_obj(e), 0);
			if (nu == NULL)
				return KF_ENOMEM;
			err = kfs_gen_set(w, w->next, e, nu);
			if (err != KF_OK)
				return err;
			w->pending[i] = e = nu;
		} else if (e->cls != KFS_SAME && cls == KFS_SAME) {
			e->u.seq = old->u.seq; /* private to next */
		}
		e->cls = (uint16_t)cls;
	}
	return KF_OK;
}

static kf_err
kfs_diffs(struct kf_writer *w, struct kfs_gen *cur)
{
	ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
	kf_err err;
	void *p;

	w->ndiffs = 0;
	if (w->moved && (err = kfs_reclass(w, cur)) != KF_OK)
		return err;
	/* Bound: one pass over the current contents, only when some of
	 * them were not named by the re-list. */
	if (w->moved || w->matched < ck_hs_count(&cur->main)) {
		while (ck_hs_next(&cur->main, &it, &p)) {
			kf_object *o = kfs_entry_obj(p);

			if (kfs_gen_find(w->next, o) == NULL &&
			    !kfs_diff_push(w, KF_EV_DELETE, o, NULL))
				return KF_ENOMEM;
		}
	}
	for (size_t i = 0; i < w->npending; i++) {
		struct kfs_entry *e = w->pending[i];
		kf_object *o = kfs_entry_obj(e);

		if (e->cls == KFS_REPLACED &&
		    !kfs_diff_push(w, KF_EV_DELETE,
				   kfs_entry_obj(kfs_gen_find(cur, o)), NULL))
			return KF_ENOMEM;
		if (e->cls != KFS_SAME && !kfs_diff_push(w, KF_EV_APPLY, o, e))
			return KF_ENOMEM;
	}
	return KF_OK;
}

static kf_err
kfs_init_done(struct kf_writer *w)
{
	struct kfs_core *c = w->core;
	struct kfs_gen *cur = kfs_cur(w), *nx = w->next;
	bool first = !atomic_load(&c->synced);
	uint64_t base = kfs_head(w);
	kf_err err = KF_OK;

	if (first) {
		/* A SAME entry may be shared with the current contents
		 * (readers see it): it keeps its number. */
		for (size_t i = 0; i < w->npending; i++)
			if (w->pending[i]->cls != KFS_SAME)
				w->pending[i]->u.seq = base;
		w->ndiffs = 0;
	} else {
		err = kfs_diffs(w, cur);
		if (err != KF_OK)
			return err; /* next stays aside; a new INIT drops it */
		for (size_t i = 0; i < w->ndiffs; i++)
			if (w->diffs[i].e != NULL)
				w->diffs[i].e->u.seq = base + i;
	}
	if (first || w->ndiffs > 0)
		atomic_store_explicit(&c->seq_started,
				      base + (first ? 1 : w->ndiffs),
				      memory_order_release);

	atomic_store_explicit(&c->cur, nx, memory_order_release);
	w->next = NULL;
	w->npending = 0;
	w->matched = 0;
	w->moved = false;
	if (first)
		atomic_store(&c->synced, true);
	kfs_set_readiness(c, KF_READINESS_READY, NULL);

	if (first)
		kfs_publish(w, KF_EV_INIT_DONE, 0, NULL);
	/* Bound: the differences of this one re-list. */
	for (size_t i = 0; i < w->ndiffs; i++) {
		assert(kfs_head(w) == base + i);
		kfs_publish(w, w->diffs[i].type, KF_EVF_RELIST,
			    w->diffs[i].obj);
	}
	atomic_store_explicit(&c->seq_done, kfs_head(w), memory_order_release);
	kfi_log(KF_LOG_DEBUG, "KF-STORE-SWAP",
		"store swapped in %lu objects, %zu differences",
		ck_hs_count(&nx->main), w->ndiffs);
	w->ndiffs = 0;
	kfs_retire(w, cur, KFS_L_GEN);
	return KF_OK;
}

kf_err
kf_writer_apply(kf_writer *w, const kf_event *ev)
{
	kf_err err;
	bool wait = false;

	if (w == NULL || ev == NULL)
		return KF_EINVAL;
	switch (ev->type) {
	case KF_EV_INIT:
	case KF_EV_INIT_DONE:
		break;
	case KF_EV_INIT_APPLY:
		if (w->next == NULL)
			return KF_EINVAL;
		/* fall through */
	case KF_EV_APPLY:
	case KF_EV_DELETE:
		if (ev->obj == NULL)
			return KF_EINVAL;
		break;
	default:
		return KF_EINVAL;
	}
	if (ev->type == KF_EV_INIT_DONE && w->next == NULL)
		return KF_EINVAL;

	kfs_tls_writer = w;
	w->events_seen = true;
	switch (ev->type) {
	case KF_EV_INIT:
		err = kfs_init(w);
		break;
	case KF_EV_INIT_APPLY:
		err = kfs_init_apply(w, ev->obj);
		break;
	case KF_EV_INIT_DONE:
		err = kfs_init_done(w);
		wait = err == KF_OK;
		break;
	default:
		err = kfs_apply_live(w, ev);
		break;
	}
	kfs_flush(w, wait);
	kfs_tls_writer = NULL;
	return err;
}

kf_err
kf_writer_add_index(kf_writer *w, const char *name, kf_index_fn fn, void *arg)
{
	struct kfs_core *c = w->core;
	struct kfs_gen *g = kfs_cur(w);
	unsigned n = atomic_load(&c->nidx);

	if (name == NULL || fn == NULL || w->events_seen || n == KFS_MAX_INDEX)
		return KF_EINVAL;
	for (unsigned i = 0; i < n; i++)
		if (strcmp(c->idx[i].name, name) == 0)
			return KF_EINVAL;
	c->idx[n].name = strdup(name);
	if (c->idx[n].name == NULL)
		return KF_ENOMEM;
	c->idx[n].kind = KFS_IDX_USER;
	c->idx[n].fn = fn;
	c->idx[n].arg = arg;
	if (!kfs_hs_init(&g->idx[n], true, 64)) {
		free(c->idx[n].name);
		return KF_ENOMEM;
	}
	atomic_store_explicit(&g->nidx, n + 1, memory_order_release);
	atomic_store_explicit(&c->nidx, n + 1, memory_order_release);
	return KF_OK;
}

kf_store *
kf_writer_reader(kf_writer *w)
{
	return kfs_handle(w->core);
}

void
kf_writer_free(kf_writer *w)
{
	struct kfs_core *c;

	if (w == NULL)
		return;
	c = w->core;
	kfs_tls_writer = w;
	kfs_next_drop(w);
	kfs_flush(w, true);
	kfs_tls_writer = NULL;
	pthread_mutex_lock(&c->mu);
	c->writer_gone = true;
	pthread_cond_broadcast(&c->cv); /* waiters for readiness give up */
	pthread_mutex_unlock(&c->mu);
	if (c->ring != NULL)
		kfi_ring_close(c->ring);
	kfs_record_put(c->wrec);
	kfs_keys_fini(&w->ka);
	kfs_keys_fini(&w->kb);
	free(w->pending);
	free(w->diffs);
	free(w);
	kfs_core_unref(c);
}

/* ---- readers ---- */

static bool
kfs_pinned_here(kf_store *s)
{
	return atomic_load_explicit(&s->pinner, memory_order_relaxed) ==
	       &kfs_tls_me;
}

/* Open a section on a record only this thread uses now. The outermost
 * begin is ck_epoch_begin() without its store-load fence when the writer
 * issues membarrier() before every scan instead (kfs_asym): on x86 that
 * takes the one locked instruction out of every look-up. */
static void
kfs_section_begin(ck_epoch_record_t *r)
{
	unsigned depth = ck_pr_load_uint(&r->active);

	if (depth != 0 || !kfs_asym) {
		ck_epoch_begin(r, NULL);
		return;
	}
	ck_pr_store_uint(&r->active, 1);
	/* The writer's membarrier() orders this store before the loads
	 * below on the CPU that runs us; the compiler must not move them. */
	atomic_signal_fence(memory_order_seq_cst);
	ck_pr_store_uint(&r->epoch, ck_pr_load_uint(&r->global->epoch));
	atomic_signal_fence(memory_order_seq_cst);
}

/* True when the handle's own record is this thread's: it is bound to
 * this thread, or was free and is now. */
static bool
kfs_owned_here(kf_store *s)
{
	const void *b = atomic_load_explicit(&s->bound, memory_order_relaxed);

	if (b == &kfs_tls_me)
		return true;
	return b == NULL && atomic_compare_exchange_strong_explicit(
				&s->bound, &b, &kfs_tls_me,
				memory_order_acquire, memory_order_relaxed);
}

static ck_epoch_record_t *
kfs_enter(kf_store *s)
{
	ck_epoch_record_t *r;

	if (kfs_pinned_here(s))
		r = s->pin_rec; /* nest in this thread's pinned section */
	else if (kfs_owned_here(s))
		r = s->rec;
	else if ((r = kfs_record_get(s->core)) == NULL)
		return NULL; /* another thread's handle: a spare record */
	kfs_section_begin(r);
	return r;
}

/* A spare record goes back when its last section ends, not before: an
 * unpin inside a kf_store_read() callback ends the pin while the read's
 * section still runs on the same spare record (the pin's), so whichever
 * of the two ends last gives it back. */
static void
kfs_leave(kf_store *s, ck_epoch_record_t *r)
{
	KFS_TSAN_RELEASE(&s->core->tsan_sync);
	if (ck_epoch_end(r, NULL) && r != s->rec)
		kfs_record_put(r);
}

static struct kfs_gen *
kfs_gen_load(kf_store *s)
{
	return atomic_load_explicit(&s->core->cur, memory_order_acquire);
}

kf_store *
kf_store_clone(kf_store *s)
{
	return kfs_handle(s->core);
}

void
kf_store_free(kf_store *s)
{
	struct kfs_core *c;

	if (s == NULL)
		return;
	c = s->core;
	if (kfs_pinned_here(s)) {
		/* Freed inside a pinned section: end it first. */
		s->pins = 1;
		kf_store_unpin(s);
	}
	kfs_record_put(s->rec);
	free(s);
	kfs_core_unref(c);
}

static bool
kfs_state_push(kf_state *st, kf_object *obj, uint64_t seq)
{
	if (st->len == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 64;
		kf_object **o = realloc(st->objs, cap * sizeof(*o));
		uint64_t *q;

		if (o == NULL)
			return false;
		st->objs = o;
		if (st->seqs != NULL) {
			q = realloc(st->seqs, cap * sizeof(*q));
			if (q == NULL)
				return false;
			st->seqs = q;
		}
		st->cap = cap;
	}
	st->objs[st->len] = kf_object_ref(obj);
	if (st->seqs != NULL)
		st->seqs[st->len] = seq;
	st->len++;
	return true;
}

static kf_state *
kfs_state_new(size_t hint, bool seqs)
{
	kf_state *st = calloc(1, sizeof(*st));

	if (st == NULL)
		return NULL;
	st->cap = hint ? hint : 1;
	st->objs = malloc(st->cap * sizeof(*st->objs));
	if (seqs)
		st->seqs = malloc(st->cap * sizeof(*st->seqs));
	if (st->objs == NULL || (seqs && st->seqs == NULL)) {
		free(st->objs);
		free(st->seqs);
		free(st);
		return NULL;
	}
	return st;
}

/* Copies every entry of set into st; within a reader section. */
static bool
kfs_collect(ck_hs_t *set, kf_state *st)
{
	ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
	void *p;

	/* Bound: the set's slots; the set is read, never waited on. */
	while (ck_hs_next_spmc(set, &it, &p)) {
		struct kfs_entry *e = p;
		kf_object *obj = kfs_entry_obj(e); /* acquire, then seq */

		if (!kfs_state_push(st, obj, e->u.seq))
			return false;
	}
	return true;
}

static kf_err
kfs_snapshot(kf_store *s, bool seqs, kf_state **out)
{
	ck_epoch_record_t *r;
	struct kfs_gen *g;
	kf_state *st;
	bool ok;

	*out = NULL;
	r = kfs_enter(s);
	if (r == NULL)
		return KF_ENOMEM;
	g = kfs_gen_load(s);
	st = kfs_state_new(ck_hs_count(&g->main) + 16, seqs);
	ok = st != NULL && kfs_collect(&g->main, st);
	kfs_leave(s, r);
	if (!ok) {
		kf_state_free(st);
		return KF_ENOMEM;
	}
	*out = st;
	return KF_OK;
}

kf_err
kf_store_state(kf_store *s, kf_state **out)
{
	return kfs_snapshot(s, false, out);
}

kf_err
kfi_store_snapshot_seq(kf_store *s, kf_state **out, uint64_t *head_before,
		       uint64_t *head_after)
{
	struct kfs_core *c = s->core;
	kf_err err;

	*head_before = atomic_load_explicit(&c->seq_done, memory_order_acquire);
	err = kfs_snapshot(s, true, out);
	atomic_thread_fence(memory_order_acquire);
	*head_after =
	    atomic_load_explicit(&c->seq_started, memory_order_relaxed);
	return err;
}

uint64_t
kfi_state_seq_at(const kf_state *st, size_t i)
{
	return st->seqs != NULL && i < st->len ? st->seqs[i] : 0;
}

struct kfi_ring *
kfi_store_ring(kf_store *s)
{
	return s->core->ring;
}

bool
kfi_store_synced_once(kf_store *s)
{
	return atomic_load(&s->core->synced);
}

size_t
kfi_store_record_count(kf_store *s)
{
	ck_stack_entry_t *cursor;
	size_t n = 0;

	CK_STACK_FOREACH(&s->core->epoch.records, cursor)
	n++;
	return n;
}

/* The object of identity id in the current contents, borrowed; within a
 * reader section. */
static kf_object *
kfs_lookup(kf_store *s, const struct kfi_ident *id)
{
	struct kfs_entry probe = {.u.id = id};
	struct kfs_entry *e;

	atomic_init(&probe.obj, NULL);
	e = ck_hs_get(&kfs_gen_load(s)->main, (unsigned long)id->hash, &probe);
	return e != NULL ? kfs_entry_obj(e) : NULL;
}

/* A key's identity, without hashing again. */
static void
kfs_key_ident(const kf_store_key *key, struct kfi_ident *id)
{
	id->kind = key->ref.kind != NULL ? key->ref.kind : "";
	id->ns = key->ref.namespace_ != NULL ? key->ref.namespace_ : "";
	id->name = key->ref.name != NULL ? key->ref.name : "";
	id->kind_len = key->kind_len;
	id->ns_len = key->namespace_len;
	id->name_len = key->name_len;
	id->hash = key->hash;
}

/* The answer of a look-up given the readiness read before it. */
static kf_err
kfs_answer(int rd, const kf_object *obj)
{
	if (rd == KF_READINESS_STALE)
		return KF_ENOTREADY;
	return obj != NULL ? KF_OK : KF_ENOTFOUND;
}

static kf_err
kfs_get(kf_store *s, const struct kfi_ident *id, kf_object **out)
{
	int rd =
	    atomic_load_explicit(&s->core->readiness, memory_order_acquire);
	ck_epoch_record_t *r;
	kf_object *obj;

	if (rd == KF_READINESS_NOT_SYNCED)
		return KF_ENOTREADY;
	r = kfs_enter(s);
	if (r == NULL)
		return KF_ENOMEM;
	obj = kf_object_ref(kfs_lookup(s, id));
	kfs_leave(s, r);
	*out = obj;
	return kfs_answer(rd, obj);
}

kf_err
kf_store_get(kf_store *s, const kf_objref *ref, kf_object **out)
{
	struct kfi_ident id;

	*out = NULL;
	if (ref == NULL)
		return KF_EINVAL;
	kfi_ident_init(&id, ref->kind, ref->namespace_, ref->name);
	return kfs_get(s, &id, out);
}

kf_store_key
kf_store_key_make(const kf_objref *ref)
{
	struct kfi_ident id;
	kf_store_key k = {0};

	if (ref == NULL)
		return k; /* finds nothing: hash 0 is not the empty identity's
			   */
	k.ref = *ref;
	kfi_ident_init(&id, ref->kind, ref->namespace_, ref->name);
	k.hash = id.hash;
	k.kind_len = id.kind_len;
	k.namespace_len = id.ns_len;
	k.name_len = id.name_len;
	return k;
}

kf_err
kf_store_get_key(kf_store *s, const kf_store_key *key, kf_object **out)
{
	struct kfi_ident id;

	*out = NULL;
	if (key == NULL)
		return KF_EINVAL;
	kfs_key_ident(key, &id);
	return kfs_get(s, &id, out);
}

kf_err
kf_store_read(kf_store *s, const kf_store_key *key, kf_store_read_fn fn,
	      void *arg)
{
	struct kfi_ident id;
	int rd;
	ck_epoch_record_t *r;
	kf_object *obj;

	if (key == NULL || fn == NULL)
		return KF_EINVAL;
	rd = atomic_load_explicit(&s->core->readiness, memory_order_acquire);
	if (rd == KF_READINESS_NOT_SYNCED)
		return KF_ENOTREADY;
	r = kfs_enter(s);
	if (r == NULL)
		return KF_ENOMEM;
	kfs_key_ident(key, &id);
	obj = kfs_lookup(s, &id);
	if (obj != NULL)
		fn(arg, obj);
	kfs_leave(s, r);
	return kfs_answer(rd, obj);
}

kf_err
kf_store_pin(kf_store *s)
{
	const void *none = NULL;
	ck_epoch_record_t *r;

	if (kfs_pinned_here(s)) {
		s->pins++;
		return KF_OK;
	}
	if (!atomic_compare_exchange_strong_explicit(
		&s->pinner, &none, &kfs_tls_me, memory_order_acquire,
		memory_order_relaxed))
		return KF_EAGAIN;
	r = kfs_owned_here(s) ? s->rec : kfs_record_get(s->core);
	if (r == NULL) {
		atomic_store_explicit(&s->pinner, NULL, memory_order_release);
		return KF_ENOMEM;
	}
	s->pins = 1;
	s->pin_rec = r;
	kfs_section_begin(r);
	return KF_OK;
}

void
kf_store_unpin(kf_store *s)
{
	ck_epoch_record_t *r = s->pin_rec;

	if (!kfs_pinned_here(s) || --s->pins > 0)
		return;
	KFS_TSAN_RELEASE(&s->core->tsan_sync);
	/* A spare record still in a section (this unpin runs inside a read
	 * on it) goes back when that section ends (kfs_leave). */
	if (ck_epoch_end(r, NULL) && r != s->rec)
		kfs_record_put(r);
	s->pin_rec = NULL;
	atomic_store_explicit(&s->pinner, NULL, memory_order_release);
}

kf_err
kf_store_get_borrowed(kf_store *s, const kf_store_key *key,
		      const kf_object **out)
{
	struct kfi_ident id;
	int rd;
	kf_object *obj;

	*out = NULL;
	if (key == NULL || !kfs_pinned_here(s))
		return KF_EINVAL;
	rd = atomic_load_explicit(&s->core->readiness, memory_order_acquire);
	if (rd == KF_READINESS_NOT_SYNCED)
		return KF_ENOTREADY;
	kfs_key_ident(key, &id);
	obj = kfs_lookup(s, &id);
	*out = obj;
	return kfs_answer(rd, obj);
}

static int
kfs_index_find(struct kfs_core *c, const char *name)
{
	unsigned n = atomic_load_explicit(&c->nidx, memory_order_acquire);

	for (unsigned i = 0; i < n; i++)
		if (strcmp(c->idx[i].name, name) == 0)
			return (int)i;
	return -1;
}

kf_err
kf_store_by_index(kf_store *s, const char *index, const char *key,
		  kf_state **out)
{
	int i = index != NULL ? kfs_index_find(s->core, index) : -1;
	ck_epoch_record_t *r;
	struct kfs_gen *g;
	struct kfs_bucket *b;
	kf_state *st;
	bool ok = true;

	*out = NULL;
	if (i < 0 || key == NULL)
		return KF_EINVAL;
	st = kfs_state_new(16, false);
	if (st == NULL)
		return KF_ENOMEM;
	r = kfs_enter(s);
	if (r == NULL) {
		kf_state_free(st);
		return KF_ENOMEM;
	}
	g = kfs_gen_load(s);
	if ((unsigned)i <
	    atomic_load_explicit(&g->nidx, memory_order_acquire)) {
		b = kfs_bucket_get(&g->idx[i], key, kfs_key_hash(key));
		if (b != NULL)
			ok = kfs_collect(&b->set, st);
	}
	kfs_leave(s, r);
	if (!ok) {
		kf_state_free(st);
		return KF_ENOMEM;
	}
	*out = st;
	return KF_OK;
}

kf_err
kf_store_by_namespace(kf_store *s, const char *ns, kf_state **out)
{
	return kf_store_by_index(s, "namespace", ns != NULL ? ns : "", out);
}

kf_err
kf_store_by_label(kf_store *s, const char *key, const char *value,
		  kf_state **out)
{
	char small[256], *buf = small;
	size_t lk, lv;
	kf_err err;

	*out = NULL;
	if (key == NULL || value == NULL)
		return KF_EINVAL;
	lk = strlen(key);
	lv = strlen(value);
	if (lk + lv + 2 > sizeof(small) && (buf = malloc(lk + lv + 2)) == NULL)
		return KF_ENOMEM;
	memcpy(buf, key, lk);
	buf[lk] = '=';
	memcpy(buf + lk + 1, value, lv + 1);
	err = kf_store_by_index(s, "label", buf, out);
	if (buf != small)
		free(buf);
	return err;
}

size_t
kf_store_len(kf_store *s)
{
	ck_epoch_record_t *r = kfs_enter(s);
	size_t n;

	if (r == NULL)
		return 0;
	n = ck_hs_count(&kfs_gen_load(s)->main);
	kfs_leave(s, r);
	return n;
}

bool
kf_store_is_ready(kf_store *s)
{
	return atomic_load_explicit(&s->core->readiness,
				    memory_order_acquire) == KF_READINESS_READY;
}

kf_readiness
kf_store_readiness(kf_store *s, char *why, size_t len)
{
	struct kfs_core *c = s->core;
	kf_readiness r;

	if (why == NULL || len == 0)
		return atomic_load_explicit(&c->readiness,
					    memory_order_acquire);
	pthread_mutex_lock(&c->mu);
	r = atomic_load(&c->readiness);
	snprintf(why, len, "%s", c->why);
	pthread_mutex_unlock(&c->mu);
	return r;
}

kf_err
kf_store_wait_until_ready(kf_store *s, int64_t timeout_ms)
{
	struct kfs_core *c = s->core;
	struct timespec dl;
	kf_err err = KF_OK;

	if (kf_store_is_ready(s))
		return KF_OK;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	if (timeout_ms >= 0) {
		dl.tv_sec += timeout_ms / 1000;
		dl.tv_nsec += (timeout_ms % 1000) * 1000000;
		if (dl.tv_nsec >= 1000000000) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000;
		}
	}
	pthread_mutex_lock(&c->mu);
	while (atomic_load(&c->readiness) != KF_READINESS_READY) {
		int rc;

		if (c->writer_gone) {
			err = KF_ECLOSED;
			break;
		}
		rc = timeout_ms < 0
			 ? pthread_cond_wait(&c->cv, &c->mu)
			 : pthread_cond_timedwait(&c->cv, &c->mu, &dl);
		if (rc == ETIMEDOUT) {
			err = KF_ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&c->mu);
	return err;
}

/* ---- snapshots ---- */

size_t
kf_state_len(const kf_state *st)
{
	return st != NULL ? st->len : 0;
}

kf_object *
kf_state_at(const kf_state *st, size_t i)
{
	return st != NULL && i < st->len ? st->objs[i] : NULL;
}

void
kf_state_free(kf_state *st)
{
	if (st == NULL)
		return;
	for (size_t i = 0; i < st->len; i++)
		kf_object_unref(st->objs[i]);
	free(st->objs);
	free(st->seqs);
	free(st);
}
