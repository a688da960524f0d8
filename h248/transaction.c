/* H.248.1 Annex D.1 transaction layer: reply cache and Pending for incoming requests,
 * retransmission with adaptive timers for outgoing ones. Clause numbers are those of H.248.1
 * (RFC 3525 numbering, unchanged in versions 2 and 3; 8.2.3 pending limits from version 2). */
#include "transaction.h"

#include "h248.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX
/* Bounds every allocation made from a configuration (entries, index slots, heaps). */
#define MAX_TABLE_ENTRIES (1u << 22)
/* An RTT sample above this is a clock fault or a reply to something else: clamp it. */
#define MAX_RTT_SAMPLE_MS 60000u
/* More doublings than this saturate any 32-bit millisecond timer anyway. */
#define MAX_BACKOFF 31u

const struct h248_txn_in_config h248_txn_in_default_config = {
    .max_entries = 4096,
    .max_reply_bytes = 4u << 20,
    .long_timer_ms = 30000, /* D.1.1: "A suggested value is 30 seconds" */
    /* E.2 gives no number ("initially normalMGExecutionTime plus network delay") and TS 29.334
     * table 5.10.7 says "Provisioned": this is our choice, below common MGC repetition timers. */
    .provisional_ms = 500,
    .pending_limit = 0,
};

const struct h248_txn_out_config h248_txn_out_default_config = {
    .max_outstanding = 1024,
    .first_tid = 1,
    .initial_rto_ms = 200,    /* the D.1.5 example value */
    .min_rto_ms = 100,        /* our choice: keeps a quiet LAN from retransmitting on jitter */
    .max_rto_ms = 4000,       /* D.1.3: "A suggested maximum value is 4 seconds" */
    .adev_factor = 4,         /* D.1.3 leaves N open; 4 as in TCP */
    .max_retransmissions = 8, /* D.1.5: "typically between 7 and 11 times" */
    /* D.1.5: LONG-TIMER = T-MAX + maximum propagation delay; 30 s - 1 s assumed. */
    .max_total_ms = 29000,
    .pending_interval_ms = 4000,
    .pending_timeout_ms = 30000, /* LONG-TIMER */
    .pending_limit = 0,
    .jitter = true,
    .seed = 0,
};

/* ---- Shared: entries addressed by index, a hash index on (peer, tid), deadline heaps ---- */

/* The first member of every entry: its key and its place in a deadline heap. */
struct node {
    uint64_t peer;
    uint64_t deadline;
    uint32_t tid;
    uint32_t heap_pos; /* NONE when in no heap */
};

/* Fixed array of entries, a stack of the free ones and an open-addressing index (linear
 * probing, backward-shift deletion, load <= 1/2): everything allocated once, at creation. */
struct table {
    char *base;
    size_t stride;
    uint32_t cap;
    uint32_t *free;
    uint32_t nfree;
    uint32_t *slots; /* entry index + 1; 0 = empty */
    uint32_t mask;
};

/* Min-heap of entry indexes ordered by node.deadline. */
struct heap {
    const struct table *t;
    uint32_t *idx;
    uint32_t len;
};

static struct node *node_at(const struct table *t, uint32_t i)
{
    return (struct node *)(void *)(t->base + (size_t)i * t->stride);
}

static uint64_t add_ms(uint64_t now, uint64_t ms)
{
    return now > UINT64_MAX - ms ? UINT64_MAX : now + ms;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* Only configured MGCs reach this table (DESIGN.md §4), so an unkeyed mix is enough. */
static uint32_t home_slot(const struct table *t, uint64_t peer, uint32_t tid)
{
    return (uint32_t)mix64(peer ^ mix64((uint64_t)tid + 0x9e3779b97f4a7c15ULL)) & t->mask;
}

static int table_init(struct table *t, uint32_t cap, size_t stride)
{
    if (cap == 0 || cap > MAX_TABLE_ENTRIES)
        return -EINVAL;
    uint32_t nslots = 1;
    while (nslots < 2 * cap)
        nslots <<= 1;
    t->base = calloc(cap, stride);
    t->free = calloc(cap, sizeof(*t->free));
    t->slots = calloc(nslots, sizeof(*t->slots));
    if (t->base == NULL || t->free == NULL || t->slots == NULL) {
        free(t->base);
        free(t->free);
        free(t->slots);
        return -ENOMEM;
    }
    t->stride = stride;
    t->cap = cap;
    t->mask = nslots - 1;
    /* Lowest indexes on top of the stack: recently freed entries are reused first. */
    for (uint32_t i = 0; i < cap; i++) {
        t->free[i] = cap - 1 - i;
        node_at(t, i)->heap_pos = NONE;
    }
    t->nfree = cap;
    return 0;
}

static void table_destroy(struct table *t)
{
    free(t->base);
    free(t->free);
    free(t->slots);
}

static uint32_t table_find(const struct table *t, uint64_t peer, uint32_t tid)
{
    for (uint32_t i = home_slot(t, peer, tid);; i = (i + 1) & t->mask) {
        uint32_t s = t->slots[i];
        if (s == 0)
            return NONE;
        const struct node *n = node_at(t, s - 1);
        if (n->peer == peer && n->tid == tid)
            return s - 1;
    }
}

/* Takes a free entry, keys it and indexes it. The caller checked nfree and absence of the key. */
static uint32_t table_add(struct table *t, uint64_t peer, uint32_t tid)
{
    uint32_t e = t->free[--t->nfree];
    struct node *n = node_at(t, e);
    memset(n, 0, t->stride);
    n->peer = peer;
    n->tid = tid;
    n->heap_pos = NONE;
    uint32_t i = home_slot(t, peer, tid);
    while (t->slots[i] != 0)
        i = (i + 1) & t->mask;
    t->slots[i] = e + 1;
    return e;
}

static void table_remove(struct table *t, uint32_t e)
{
    const struct node *n = node_at(t, e);
    uint32_t i = home_slot(t, n->peer, n->tid);
    while (t->slots[i] != e + 1)
        i = (i + 1) & t->mask;
    /* Backward shift: pull later members of the probe run into the hole, so that lookups never
     * need tombstones. An entry at j may move to i unless its home lies cyclically in (i, j]. */
    for (;;) {
        uint32_t j = i;
        for (;;) {
            j = (j + 1) & t->mask;
            if (t->slots[j] == 0) {
                t->slots[i] = 0;
                t->free[t->nfree++] = e;
                return;
            }
            const struct node *m = node_at(t, t->slots[j] - 1);
            uint32_t k = home_slot(t, m->peer, m->tid);
            bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
            if (!stays)
                break;
        }
        t->slots[i] = t->slots[j];
        i = j;
    }
}

static int heap_init(struct heap *h, const struct table *t)
{
    h->t = t;
    h->len = 0;
    h->idx = calloc(t->cap, sizeof(*h->idx));
    return h->idx == NULL ? -ENOMEM : 0;
}

static uint64_t heap_key(const struct heap *h, uint32_t pos)
{
    return node_at(h->t, h->idx[pos])->deadline;
}

static void heap_place(struct heap *h, uint32_t pos, uint32_t e)
{
    h->idx[pos] = e;
    node_at(h->t, e)->heap_pos = pos;
}

static void heap_sift(struct heap *h, uint32_t pos)
{
    uint32_t e = h->idx[pos];
    uint64_t d = node_at(h->t, e)->deadline;
    while (pos > 0 && heap_key(h, (pos - 1) / 2) > d) {
        heap_place(h, pos, h->idx[(pos - 1) / 2]);
        pos = (pos - 1) / 2;
    }
    for (;;) {
        uint32_t c = 2 * pos + 1;
        if (c >= h->len)
            break;
        if (c + 1 < h->len && heap_key(h, c + 1) < heap_key(h, c))
            c++;
        if (heap_key(h, c) >= d)
            break;
        heap_place(h, pos, h->idx[c]);
        pos = c;
    }
    heap_place(h, pos, e);
}

/* Inserts e or moves it to its new deadline. Capacity: every entry fits (idx has cap slots). */
static void heap_set(struct heap *h, uint32_t e, uint64_t deadline)
{
    struct node *n = node_at(h->t, e);
    n->deadline = deadline;
    if (n->heap_pos == NONE) {
        h->idx[h->len] = e;
        n->heap_pos = h->len++;
    }
    heap_sift(h, n->heap_pos);
}

static void heap_remove(struct heap *h, uint32_t e)
{
    struct node *n = node_at(h->t, e);
    uint32_t pos = n->heap_pos;
    if (pos == NONE)
        return;
    n->heap_pos = NONE;
    uint32_t last = h->idx[--h->len];
    if (pos != h->len) {
        heap_place(h, pos, last);
        heap_sift(h, pos);
    }
}

static uint32_t heap_top(const struct heap *h)
{
    return h->len == 0 ? NONE : h->idx[0];
}

static uint64_t heap_deadline(const struct heap *h)
{
    return h->len == 0 ? UINT64_MAX : heap_key(h, 0);
}

/* ---- Incoming requests ---- */

enum in_state { IN_EXECUTING = 1, IN_REPLIED, IN_TOMB };

struct in_entry {
    struct node n; /* deadline: next Pending while executing, end of LONG-TIMER afterwards */
    void *reply;
    size_t reply_len;
    uint32_t prev, next; /* in the replied or tombstone list */
    uint32_t pendings;   /* Pendings sent so far */
    uint8_t state;
    bool limit_hit;
};

struct list {
    uint32_t head, tail;
};

struct h248_txn_in {
    struct h248_txn_in_config cfg;
    struct table t;
    struct heap running; /* EXECUTING entries with a provisional timer */
    struct heap done;    /* REPLIED and TOMB entries until LONG-TIMER */
    struct list replied; /* entries holding a reply copy, oldest first: evicted first */
    struct list tombs;   /* entries keeping only their id (acknowledged or evicted) */
    size_t reply_bytes;
    struct h248_txn_in_stats st;
};

static struct in_entry *in_at(const struct h248_txn_in *in, uint32_t i)
{
    return (struct in_entry *)(void *)node_at(&in->t, i);
}

static void list_append(struct h248_txn_in *in, struct list *l, uint32_t i)
{
    struct in_entry *e = in_at(in, i);
    e->prev = l->tail;
    e->next = NONE;
    if (l->tail != NONE)
        in_at(in, l->tail)->next = i;
    else
        l->head = i;
    l->tail = i;
}

static void list_unlink(struct h248_txn_in *in, struct list *l, uint32_t i)
{
    struct in_entry *e = in_at(in, i);
    if (e->prev != NONE)
        in_at(in, e->prev)->next = e->next;
    else
        l->head = e->next;
    if (e->next != NONE)
        in_at(in, e->next)->prev = e->prev;
    else
        l->tail = e->prev;
}

static void in_release_reply(struct h248_txn_in *in, struct in_entry *e)
{
    free(e->reply);
    in->reply_bytes -= e->reply_len;
    e->reply = NULL;
    e->reply_len = 0;
}

static void in_drop(struct h248_txn_in *in, uint32_t i)
{
    struct in_entry *e = in_at(in, i);
    if (e->state == IN_EXECUTING) {
        heap_remove(&in->running, i);
    } else {
        heap_remove(&in->done, i);
        list_unlink(in, e->state == IN_REPLIED ? &in->replied : &in->tombs, i);
        in_release_reply(in, e);
    }
    e->state = 0;
    table_remove(&in->t, i);
}

/* Keeps only the id, so that a repetition is still never executed again (D.1.1). The entry is
 * already on the LONG-TIMER heap. */
static void in_to_tomb(struct h248_txn_in *in, uint32_t i)
{
    struct in_entry *e = in_at(in, i);
    if (e->state == IN_REPLIED) {
        list_unlink(in, &in->replied, i);
        in_release_reply(in, e);
    }
    e->state = IN_TOMB;
    list_append(in, &in->tombs, i);
}

/* Frees one entry for a new request: an id-only entry first, else the oldest reply. Executing
 * entries are never taken: their requests would run twice. */
static int in_evict_entry(struct h248_txn_in *in)
{
    uint32_t i = in->tombs.head != NONE ? in->tombs.head : in->replied.head;
    if (i == NONE)
        return -ENOBUFS;
    in_drop(in, i);
    in->st.evictions++;
    return 0;
}

static void in_stop_for_limit(struct h248_txn_in *in, uint32_t i)
{
    struct in_entry *e = in_at(in, i);
    heap_remove(&in->running, i);
    if (!e->limit_hit) {
        e->limit_hit = true;
        in->st.pending_limits++;
    }
}

/* MGOriginatedPendingLimit (8.2.3): when one more Pending would exceed it, the MG stops the
 * transaction and replies with error 506. */
static bool in_limit_reached(const struct h248_txn_in *in, const struct in_entry *e)
{
    return in->cfg.pending_limit != 0 && e->pendings >= in->cfg.pending_limit;
}

int h248_txn_in_new(const struct h248_txn_in_config *cfg, struct h248_txn_in **out)
{
    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    if (cfg == NULL)
        cfg = &h248_txn_in_default_config;
    if (cfg->max_entries == 0 || cfg->max_entries > MAX_TABLE_ENTRIES ||
        cfg->max_reply_bytes == 0 || cfg->long_timer_ms == 0)
        return -EINVAL;
    struct h248_txn_in *in = calloc(1, sizeof(*in));
    if (in == NULL)
        return -ENOMEM;
    in->cfg = *cfg;
    int rc = table_init(&in->t, cfg->max_entries, sizeof(struct in_entry));
    if (rc != 0) {
        free(in);
        return rc;
    }
    in->replied.head = in->replied.tail = NONE;
    in->tombs.head = in->tombs.tail = NONE;
    if (heap_init(&in->running, &in->t) != 0 || heap_init(&in->done, &in->t) != 0) {
        h248_txn_in_free(in);
        return -ENOMEM;
    }
    *out = in;
    return 0;
}

void h248_txn_in_free(struct h248_txn_in *in)
{
    if (in == NULL)
        return;
    for (uint32_t i = in->replied.head; i != NONE; i = in_at(in, i)->next)
        free(in_at(in, i)->reply);
    free(in->running.idx);
    free(in->done.idx);
    table_destroy(&in->t);
    free(in);
}

int h248_txn_in_begin(struct h248_txn_in *in, uint64_t peer, uint32_t tid, uint64_t now,
                      enum h248_txn_in_verdict *verdict, const void **reply, size_t *reply_len)
{
    if (in == NULL || verdict == NULL)
        return -EINVAL;
    if (reply != NULL)
        *reply = NULL;
    if (reply_len != NULL)
        *reply_len = 0;
    uint32_t i = table_find(&in->t, peer, tid);
    if (i != NONE && in_at(in, i)->state != IN_EXECUTING && in_at(in, i)->n.deadline <= now) {
        /* LONG-TIMER is over but expire() has not run yet: the id may be reused (D.1.1). */
        in_drop(in, i);
        in->st.expired++;
        i = NONE;
    }
    if (i != NONE) {
        struct in_entry *e = in_at(in, i);
        switch (e->state) {
        case IN_EXECUTING:
            /* D.1.1: a repetition of a running request is not executed; D.1.4: it SHOULD be
             * answered with a Pending; 8.2.3 allows sending it at once. */
            in->st.duplicates_running++;
            if (in_limit_reached(in, e)) {
                in_stop_for_limit(in, i);
                *verdict = H248_TXN_PENDING_LIMIT;
                return 0;
            }
            e->pendings++;
            in->st.pendings++;
            if (in->cfg.provisional_ms != 0 && !e->limit_hit)
                heap_set(&in->running, i, add_ms(now, in->cfg.provisional_ms));
            *verdict = H248_TXN_EXECUTING;
            return 0;
        case IN_REPLIED:
            /* D.1.1: "the entity does not execute the transaction, but simply repeats the
             * response". */
            in->st.duplicates_replied++;
            if (reply != NULL)
                *reply = e->reply;
            if (reply_len != NULL)
                *reply_len = e->reply_len;
            *verdict = H248_TXN_REPLIED;
            return 0;
        default:
            /* D.1.2.2: commands whose id was acknowledged are silently discarded; an evicted
             * reply cannot be repeated, and executing again would break at-most-once. */
            in->st.duplicates_dropped++;
            *verdict = H248_TXN_DISCARD;
            return 0;
        }
    }
    if (in->t.nfree == 0 && in_evict_entry(in) != 0) {
        in->st.rejected++;
        return -ENOBUFS;
    }
    i = table_add(&in->t, peer, tid);
    struct in_entry *e = in_at(in, i);
    e->state = IN_EXECUTING;
    e->prev = e->next = NONE;
    /* D.1.4 and E.2: MGProvisionalResponseTimerValue is the longest time between receipt of
     * the command and the Pending. */
    if (in->cfg.provisional_ms != 0)
        heap_set(&in->running, i, add_ms(now, in->cfg.provisional_ms));
    in->st.requests++;
    *verdict = H248_TXN_NEW;
    return 0;
}

int h248_txn_in_needs_imm_ack(const struct h248_txn_in *in, uint64_t peer, uint32_t tid,
                              bool *imm_ack)
{
    if (in == NULL || imm_ack == NULL)
        return -EINVAL;
    *imm_ack = false;
    uint32_t i = table_find(&in->t, peer, tid);
    if (i == NONE || in_at(in, i)->state != IN_EXECUTING)
        return -ENOENT;
    /* D.1.4: "An entity that sends a provisional response, SHALL include the immAckRequired
     * field in the ensuing final response". */
    *imm_ack = in_at(in, i)->pendings > 0;
    return 0;
}

int h248_txn_in_complete(struct h248_txn_in *in, uint64_t peer, uint32_t tid, const void *reply,
                         size_t len, uint64_t now)
{
    if (in == NULL || reply == NULL || len == 0)
        return -EINVAL;
    uint32_t i = table_find(&in->t, peer, tid);
    if (i == NONE)
        return -ENOENT;
    struct in_entry *e = in_at(in, i);
    if (e->state != IN_EXECUTING)
        return -EALREADY;
    heap_remove(&in->running, i);
    /* D.1.1: the copy may be destroyed LONG-TIMER after the response is issued. */
    heap_set(&in->done, i, add_ms(now, in->cfg.long_timer_ms));
    if (len > in->cfg.max_reply_bytes) {
        in_to_tomb(in, i);
        in->st.evictions++;
        return 0;
    }
    while (in->reply_bytes + len > in->cfg.max_reply_bytes) {
        in_to_tomb(in, in->replied.head);
        in->st.evictions++;
    }
    void *copy = malloc(len);
    if (copy == NULL) {
        in_to_tomb(in, i);
        return -ENOMEM;
    }
    memcpy(copy, reply, len);
    e->reply = copy;
    e->reply_len = len;
    e->state = IN_REPLIED;
    in->reply_bytes += len;
    list_append(in, &in->replied, i);
    return 0;
}

int h248_txn_in_abort(struct h248_txn_in *in, uint64_t peer, uint32_t tid)
{
    if (in == NULL)
        return -EINVAL;
    uint32_t i = table_find(&in->t, peer, tid);
    if (i == NONE || in_at(in, i)->state != IN_EXECUTING)
        return -ENOENT;
    in_drop(in, i);
    return 0;
}

static void in_ack_one(struct h248_txn_in *in, uint32_t i)
{
    /* D.1.1: an acknowledged reply may be destroyed, but its id is kept for LONG-TIMER after
     * the response (the entry keeps its deadline) to ignore repetitions still in the network. */
    if (i != NONE && in_at(in, i)->state == IN_REPLIED) {
        in_to_tomb(in, i);
        in->st.acks++;
    }
}

int h248_txn_in_ack(struct h248_txn_in *in, uint64_t peer, uint32_t first, uint32_t last)
{
    if (in == NULL)
        return -EINVAL;
    /* B.2 writes a range as first "-" last and D.1.2.2 never wraps it: a reversed range is
     * malformed. Ignoring it only keeps replies until LONG-TIMER; guessing a wrap could free
     * (and then silently discard) up to 2^32 ids. */
    if (first > last) {
        in->st.acks_invalid++;
        return -EINVAL;
    }
    uint64_t span = (uint64_t)last - first + 1;
    if (span <= in->t.cap - in->t.nfree) {
        for (uint64_t tid = first; tid <= last; tid++)
            in_ack_one(in, table_find(&in->t, peer, (uint32_t)tid));
        return 0;
    }
    /* A wide range: walk the stored replies instead, so the cost is O(min(span, entries)). */
    uint32_t i = in->replied.head;
    while (i != NONE) {
        const struct in_entry *e = in_at(in, i);
        uint32_t next = e->next;
        if (e->n.peer == peer && e->n.tid >= first && e->n.tid <= last)
            in_ack_one(in, i);
        i = next;
    }
    return 0;
}

int h248_txn_in_poll(struct h248_txn_in *in, uint64_t now, struct h248_txn_in_event *ev)
{
    if (in == NULL || ev == NULL)
        return -EINVAL;
    for (;;) {
        uint32_t i = heap_top(&in->running);
        if (i == NONE || in_at(in, i)->n.deadline > now)
            return -EAGAIN;
        struct in_entry *e = in_at(in, i);
        if (in->cfg.provisional_ms == 0) { /* switched off by h248_txn_in_set_root */
            heap_remove(&in->running, i);
            continue;
        }
        ev->peer = e->n.peer;
        ev->tid = e->n.tid;
        if (in_limit_reached(in, e)) {
            in_stop_for_limit(in, i);
            ev->kind = H248_TXN_IN_PENDING_LIMIT;
            return 0;
        }
        /* 8.2.3: TransactionPending "periodically" tells the requester the transaction is
         * still being processed: one per provisional period while it runs. */
        e->pendings++;
        in->st.pendings++;
        heap_set(&in->running, i, add_ms(now, in->cfg.provisional_ms));
        ev->kind = H248_TXN_IN_SEND_PENDING;
        return 0;
    }
}

int h248_txn_in_expire(struct h248_txn_in *in, uint64_t now, size_t *freed)
{
    if (in == NULL)
        return -EINVAL;
    size_t n = 0;
    for (uint32_t i = heap_top(&in->done); i != NONE && in_at(in, i)->n.deadline <= now;
         i = heap_top(&in->done)) {
        in_drop(in, i);
        n++;
    }
    in->st.expired += n;
    if (freed != NULL)
        *freed = n;
    return 0;
}

int h248_txn_in_next_deadline(const struct h248_txn_in *in, uint64_t *deadline)
{
    if (in == NULL || deadline == NULL)
        return -EINVAL;
    uint64_t a = heap_deadline(&in->running), b = heap_deadline(&in->done);
    *deadline = a < b ? a : b;
    return 0;
}

int h248_txn_in_set_root(struct h248_txn_in *in, uint32_t provisional_ms, uint32_t pending_limit)
{
    if (in == NULL)
        return -EINVAL;
    in->cfg.provisional_ms = provisional_ms;
    in->cfg.pending_limit = pending_limit;
    return 0;
}

int h248_txn_in_get_stats(const struct h248_txn_in *in, struct h248_txn_in_stats *stats)
{
    if (in == NULL || stats == NULL)
        return -EINVAL;
    *stats = in->st;
    stats->entries = in->t.cap - in->t.nfree;
    stats->reply_bytes = in->reply_bytes;
    return 0;
}

/* ---- Outgoing requests ---- */

struct out_entry {
    struct node n; /* peer is always 0: our ids are unique toward every MGC */
    void *bytes;
    size_t len;
    uint64_t sent_at;   /* first sending: the RTT sample starts here */
    uint64_t epoch;     /* first sending or last Pending: T-MAX and pending timeout */
    uint32_t base_ms;   /* timer before doubling in this epoch */
    uint32_t retx;      /* repetitions in this epoch */
    uint32_t pendings;  /* Pendings received */
    bool retransmitted; /* ever: Karn's rule */
    bool pending;       /* a Pending arrived: D.1.4 timer */
    bool limit_hit;     /* MGCOriginatedPendingLimit exceeded */
};

struct h248_txn_out {
    struct h248_txn_out_config cfg;
    struct table t;
    struct heap timers; /* every outstanding request: next repetition or give-up */
    uint32_t next_tid;
    bool measured;
    int64_t srtt8;   /* 8 * AAD, ms */
    int64_t rttvar4; /* 4 * ADEV, ms */
    unsigned backoff;
    uint64_t rng;
    struct h248_txn_out_stats st;
};

static struct out_entry *out_at(const struct h248_txn_out *out, uint32_t i)
{
    return (struct out_entry *)(void *)node_at(&out->t, i);
}

static uint32_t clamp_ms(uint64_t v, uint32_t lo, uint32_t hi)
{
    return v < lo ? lo : v > hi ? hi : (uint32_t)v;
}

static uint32_t out_aad(const struct h248_txn_out *out)
{
    return out->measured ? (uint32_t)((out->srtt8 + 4) / 8) : out->cfg.initial_rto_ms;
}

static uint32_t out_adev(const struct h248_txn_out *out)
{
    return out->measured ? (uint32_t)((out->rttvar4 + 2) / 4) : 0;
}

/* AAD with the doublings kept since the last valid sample (Karn), bounded by the ceiling. */
static uint32_t out_base(const struct h248_txn_out *out)
{
    uint64_t a = (uint64_t)out_aad(out) << out->backoff;
    return a > out->cfg.max_rto_ms ? out->cfg.max_rto_ms : (uint32_t)a;
}

static uint64_t out_random(struct h248_txn_out *out)
{
    /* xorshift64*: enough to break synchronisation, which is all D.1.3 asks of it. */
    out->rng ^= out->rng >> 12;
    out->rng ^= out->rng << 25;
    out->rng ^= out->rng >> 27;
    return out->rng * 0x2545f4914f6cdd1dULL;
}

/* D.1.3: after the k-th retransmission, AAD is doubled k times, a random value is drawn in
 * [AAD/2, AAD] and N * ADEV added; the first timer is AAD + N * ADEV. ceiling bounds it all. */
static uint32_t out_interval(struct h248_txn_out *out, uint32_t base, uint32_t k, uint32_t adev,
                             uint32_t ceiling)
{
    uint64_t a = k > MAX_BACKOFF ? ceiling : (uint64_t)base << k;
    if (a > ceiling)
        a = ceiling;
    if (k > 0 && out->cfg.jitter && a > 1) {
        uint64_t lo = a / 2;
        a = lo + out_random(out) % (a - lo + 1);
    }
    return clamp_ms(a + (uint64_t)out->cfg.adev_factor * adev, out->cfg.min_rto_ms, ceiling);
}

static void out_drop(struct h248_txn_out *out, uint32_t i)
{
    struct out_entry *e = out_at(out, i);
    heap_remove(&out->timers, i);
    free(e->bytes);
    e->bytes = NULL;
    table_remove(&out->t, i);
}

/* Jacobson's estimator in scaled integers, gains 1/8 and 1/4 (D.1.3 NOTE: "the algorithm
 * implemented in TCP-IP"): AAD += (R - AAD) / 8, ADEV += (|R - AAD| - ADEV) / 4. */
static void out_sample(struct h248_txn_out *out, uint64_t rtt)
{
    int64_t r = rtt > MAX_RTT_SAMPLE_MS ? MAX_RTT_SAMPLE_MS : (int64_t)rtt;
    if (!out->measured) {
        out->srtt8 = r * 8;
        out->rttvar4 = r * 2; /* ADEV = R / 2 */
        out->measured = true;
    } else {
        int64_t err = r - out->srtt8 / 8;
        out->srtt8 += err;
        if (err < 0)
            err = -err;
        out->rttvar4 += err - out->rttvar4 / 4;
    }
    out->backoff = 0;
    out->st.rtt_samples++;
}

int h248_txn_out_new(const struct h248_txn_out_config *cfg, struct h248_txn_out **out)
{
    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    if (cfg == NULL)
        cfg = &h248_txn_out_default_config;
    if (cfg->max_outstanding == 0 || cfg->max_outstanding > MAX_TABLE_ENTRIES ||
        cfg->initial_rto_ms == 0 || cfg->min_rto_ms == 0 || cfg->min_rto_ms > cfg->max_rto_ms ||
        cfg->pending_interval_ms == 0 || cfg->pending_timeout_ms == 0)
        return -EINVAL;
    struct h248_txn_out *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return -ENOMEM;
    o->cfg = *cfg;
    int rc = table_init(&o->t, cfg->max_outstanding, sizeof(struct out_entry));
    if (rc != 0) {
        free(o);
        return rc;
    }
    if (heap_init(&o->timers, &o->t) != 0) {
        h248_txn_out_free(o);
        return -ENOMEM;
    }
    o->next_tid = cfg->first_tid != 0 ? cfg->first_tid : 1;
    o->rng = cfg->seed != 0 ? cfg->seed : 0x853c49e6748fea9bULL;
    *out = o;
    return 0;
}

void h248_txn_out_free(struct h248_txn_out *out)
{
    if (out == NULL)
        return;
    if (out->timers.idx != NULL)
        for (uint32_t p = 0; p < out->timers.len; p++)
            free(out_at(out, out->timers.idx[p])->bytes);
    free(out->timers.idx);
    table_destroy(&out->t);
    free(out);
}

int h248_txn_out_next_tid(struct h248_txn_out *out, uint32_t *tid)
{
    if (out == NULL || tid == NULL)
        return -EINVAL;
    /* At most max_outstanding ids are taken, so this ends within max_outstanding + 1 steps.
     * 0 is skipped: 8.1.1 reserves it for replies to requests without a usable id. */
    for (uint64_t n = 0; n <= out->t.cap; n++) {
        uint32_t t = out->next_tid;
        out->next_tid = t == UINT32_MAX ? 1 : t + 1;
        if (table_find(&out->t, 0, t) == NONE) {
            *tid = t;
            return 0;
        }
    }
    return -ENOBUFS;
}

int h248_txn_out_send(struct h248_txn_out *out, uint32_t tid, const void *bytes, size_t len,
                      uint64_t now)
{
    if (out == NULL || tid == 0 || bytes == NULL || len == 0)
        return -EINVAL;
    if (table_find(&out->t, 0, tid) != NONE)
        return -EEXIST;
    if (out->t.nfree == 0)
        return -ENOBUFS;
    void *copy = malloc(len);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, bytes, len);
    uint32_t i = table_add(&out->t, 0, tid);
    struct out_entry *e = out_at(out, i);
    e->bytes = copy;
    e->len = len;
    e->sent_at = e->epoch = now;
    e->base_ms = out_base(out);
    heap_set(&out->timers, i,
             add_ms(now, out_interval(out, e->base_ms, 0, out_adev(out), out->cfg.max_rto_ms)));
    out->st.requests++;
    return 0;
}

int h248_txn_out_reply_received(struct h248_txn_out *out, uint32_t tid, bool imm_ack_required,
                                uint64_t now, bool *ack_now)
{
    if (out == NULL)
        return -EINVAL;
    if (ack_now != NULL)
        *ack_now = false;
    uint32_t i = table_find(&out->t, 0, tid);
    if (i == NONE) {
        out->st.unknown_replies++;
        return -ENOENT;
    }
    struct out_entry *e = out_at(out, i);
    /* D.1.4: "Upon receipt of a final response following receipt of provisional responses, an
     * immediate confirmation shall be sent"; immAckRequired asks for the same. */
    if (ack_now != NULL)
        *ack_now = imm_ack_required || e->pendings > 0;
    /* Karn: a reply to a repeated request cannot tell which copy it answers, and one that
     * followed a Pending measures execution time, not the network. */
    if (!e->retransmitted && e->pendings == 0 && now >= e->sent_at)
        out_sample(out, now - e->sent_at);
    out->st.replies++;
    out_drop(out, i);
    return 0;
}

int h248_txn_out_pending_received(struct h248_txn_out *out, uint32_t tid, uint64_t now)
{
    if (out == NULL)
        return -EINVAL;
    uint32_t i = table_find(&out->t, 0, tid);
    if (i == NONE) {
        /* D.1.4: "Receipt of a Transaction Pending after receipt of a reply shall be ignored." */
        out->st.unknown_pendings++;
        return -ENOENT;
    }
    struct out_entry *e = out_at(out, i);
    e->pendings++;
    out->st.pendings++;
    if (out->cfg.pending_limit != 0 && e->pendings > out->cfg.pending_limit) {
        /* 8.2.3: beyond MGCOriginatedPendingLimit "the MG can assume the Transaction to be in
         * error"; reported by the next poll. */
        e->limit_hit = true;
        heap_set(&out->timers, i, now);
        return 0;
    }
    /* D.1.4: switch to a different repetition timer; 8.2: "Receipt of Pending should restart
     * the timer". Repetitions go on (slowly) so that a lost final reply is sent again. */
    e->pending = true;
    e->epoch = now;
    e->retx = 0;
    e->base_ms = out->cfg.pending_interval_ms;
    uint64_t next = add_ms(now, out->cfg.pending_interval_ms);
    uint64_t end = add_ms(now, out->cfg.pending_timeout_ms);
    heap_set(&out->timers, i, next < end ? next : end);
    return 0;
}

int h248_txn_out_cancel(struct h248_txn_out *out, uint32_t tid)
{
    if (out == NULL)
        return -EINVAL;
    uint32_t i = table_find(&out->t, 0, tid);
    if (i == NONE)
        return -ENOENT;
    out_drop(out, i);
    return 0;
}

int h248_txn_out_cancel_all(struct h248_txn_out *out)
{
    if (out == NULL)
        return -EINVAL;
    while (out->timers.len != 0)
        out_drop(out, out->timers.idx[out->timers.len - 1]);
    return 0;
}

int h248_txn_out_poll(struct h248_txn_out *out, uint64_t now, struct h248_txn_out_event *ev)
{
    if (out == NULL || ev == NULL)
        return -EINVAL;
    uint32_t i = heap_top(&out->timers);
    if (i == NONE || out_at(out, i)->n.deadline > now)
        return -EAGAIN;
    struct out_entry *e = out_at(out, i);
    ev->tid = e->n.tid;
    ev->bytes = NULL;
    ev->len = 0;
    uint64_t elapsed = now >= e->epoch ? now - e->epoch : 0;
    bool give_up;
    if (e->limit_hit) {
        ev->kind = H248_TXN_OUT_PENDING_LIMIT;
        out->st.pending_limits++;
        out_drop(out, i);
        return 0;
    } else if (e->pending) {
        give_up = elapsed >= out->cfg.pending_timeout_ms;
    } else {
        /* D.1.5: "Prior to any retransmission, it is checked that the time elapsed since the
         * sending of the initial datagram is no greater than T-MAX"; the count is the
         * "disconnection threshold". */
        give_up = e->retx >= out->cfg.max_retransmissions || elapsed > out->cfg.max_total_ms;
    }
    if (give_up) {
        ev->kind = H248_TXN_OUT_GIVE_UP;
        out->st.give_ups++;
        out_drop(out, i);
        return 0;
    }
    e->retx++;
    e->retransmitted = true;
    out->st.retransmissions++;
    uint64_t deadline;
    if (e->pending) {
        uint32_t ceiling = out->cfg.max_rto_ms > out->cfg.pending_interval_ms
                               ? out->cfg.max_rto_ms
                               : out->cfg.pending_interval_ms;
        uint64_t next = add_ms(now, out_interval(out, e->base_ms, e->retx, 0, ceiling));
        uint64_t end = add_ms(e->epoch, out->cfg.pending_timeout_ms);
        deadline = next < end ? next : end;
    } else {
        /* D.1.3 doubles "the estimated value of the average delay": new requests start from
         * the doubled value too until a reply gives a valid sample (Karn's back-off). */
        if (e->retx > out->backoff)
            out->backoff = e->retx > MAX_BACKOFF ? MAX_BACKOFF : e->retx;
        deadline =
            add_ms(now, out_interval(out, e->base_ms, e->retx, out_adev(out), out->cfg.max_rto_ms));
    }
    heap_set(&out->timers, i, deadline);
    ev->kind = H248_TXN_OUT_RETRANSMIT;
    ev->bytes = e->bytes;
    ev->len = e->len;
    return 0;
}

int h248_txn_out_next_deadline(const struct h248_txn_out *out, uint64_t *deadline)
{
    if (out == NULL || deadline == NULL)
        return -EINVAL;
    *deadline = heap_deadline(&out->timers);
    return 0;
}

int h248_txn_out_get_rtt(const struct h248_txn_out *out, struct h248_txn_out_rtt *rtt)
{
    if (out == NULL || rtt == NULL)
        return -EINVAL;
    rtt->measured = out->measured;
    rtt->aad_ms = out_aad(out);
    rtt->adev_ms = out_adev(out);
    rtt->rto_ms = clamp_ms((uint64_t)out_base(out) + (uint64_t)out->cfg.adev_factor * rtt->adev_ms,
                           out->cfg.min_rto_ms, out->cfg.max_rto_ms);
    rtt->backoff = out->backoff;
    return 0;
}

int h248_txn_out_reset_rtt(struct h248_txn_out *out)
{
    if (out == NULL)
        return -EINVAL;
    out->measured = false;
    out->srtt8 = out->rttvar4 = 0;
    out->backoff = 0;
    return 0;
}

int h248_txn_out_set_root(struct h248_txn_out *out, uint32_t pending_interval_ms,
                          uint32_t pending_limit)
{
    if (out == NULL || pending_interval_ms == 0)
        return -EINVAL;
    out->cfg.pending_interval_ms = pending_interval_ms;
    out->cfg.pending_limit = pending_limit;
    return 0;
}

int h248_txn_out_get_stats(const struct h248_txn_out *out, struct h248_txn_out_stats *stats)
{
    if (out == NULL || stats == NULL)
        return -EINVAL;
    *stats = out->st;
    stats->outstanding = out->t.cap - out->t.nfree;
    return 0;
}

/* ---- Small messages ---- */

static int encode_single(unsigned version, const struct h248_mid *mid, struct h248_transaction *t,
                         char *buf, size_t cap, size_t *len_out)
{
    if (mid == NULL || len_out == NULL)
        return -EINVAL;
    struct h248_message msg;
    memset(&msg, 0, sizeof(msg));
    msg.version = version;
    msg.mid = *mid;
    msg.transactions = t;
    return h248_encode_message(&msg, H248_STYLE_COMPACT, buf, cap, len_out);
}

int h248_txn_encode_pending(unsigned version, const struct h248_mid *mid, uint32_t tid, char *buf,
                            size_t cap, size_t *len_out)
{
    struct h248_transaction t;
    memset(&t, 0, sizeof(t));
    t.kind = H248_TRANS_PENDING;
    t.id = tid;
    return encode_single(version, mid, &t, buf, cap, len_out);
}

int h248_txn_encode_ack(unsigned version, const struct h248_mid *mid, uint32_t first, uint32_t last,
                        char *buf, size_t cap, size_t *len_out)
{
    if (first > last)
        return -EINVAL;
    struct h248_ack_range range = {.next = NULL, .first = first, .last = last};
    struct h248_transaction t;
    memset(&t, 0, sizeof(t));
    t.kind = H248_TRANS_RESPONSE_ACK;
    t.acks = &range;
    return encode_single(version, mid, &t, buf, cap, len_out);
}
