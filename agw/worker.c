/* Worker loops: each owns the sockets of the contexts pinned to it; the control loop talks to
 * them through a queue and uv_async, and learns that a batch is done through barriers. */
#include "agw/agw.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct owned_socket {
    uint64_t key; /* 0: free slot */
    int fd;
    bool datagram, listening;
};

struct worker {
    struct agw_workers *ws;
    unsigned index;
    uv_thread_t thread;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t heartbeat;
    uv_mutex_t lock;
    struct agw_op *queue; /* guarded by lock */
    size_t queued, queue_cap;
    bool stopping; /* guarded by lock */
    _Atomic uint64_t last_turn_ms;
    struct owned_socket *owned; /* open addressing on key, touched by this thread only */
    size_t owned_cap, owned_n;
};

struct agw_workers {
    unsigned n;
    struct worker *w;
    uv_async_t done_async; /* on the control loop */
    uv_mutex_t done_lock;
    uint64_t *done; /* barrier cookies, guarded by done_lock */
    size_t done_n, done_cap;
    agw_barrier_cb on_barrier;
    void *user;
    unsigned delay_ms;
};

static uint64_t mix(uint64_t x)
{
    x ^= x >> 31;
    x *= 0x9e3779b97f4a7c15ull;
    return x ^ (x >> 29);
}

static struct owned_socket *owned_find(struct worker *w, uint64_t key, bool insert)
{
    size_t mask = w->owned_cap - 1;
    for (size_t i = mix(key) & mask, n = 0; n < w->owned_cap; n++, i = (i + 1) & mask) {
        if (w->owned[i].key == key)
            return &w->owned[i];
        if (w->owned[i].key == 0)
            return insert ? &w->owned[i] : NULL;
    }
    return NULL;
}

static int owned_grow(struct worker *w)
{
    size_t cap = w->owned_cap * 2;
    struct owned_socket *old = w->owned, *fresh = calloc(cap, sizeof(*fresh));
    if (fresh == NULL)
        return -ENOMEM;
    size_t old_cap = w->owned_cap;
    w->owned = fresh;
    w->owned_cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key != 0)
            *owned_find(w, old[i].key, true) = old[i];
    free(old);
    return 0;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void owned_erase(struct worker *w, struct owned_socket *slot)
{
    size_t mask = w->owned_cap - 1, i = (size_t)(slot - w->owned);
    for (size_t j = (i + 1) & mask; w->owned[j].key != 0; j = (j + 1) & mask) {
        size_t home = mix(w->owned[j].key) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            w->owned[i] = w->owned[j];
            i = j;
        }
    }
    w->owned[i].key = 0;
    w->owned_n--;
}

static void run_op(struct worker *w, const struct agw_op *op)
{
    struct owned_socket *s;
    switch (op->kind) {
    case AGW_OP_ADOPT:
        if ((w->owned_n + 1) * 2 > w->owned_cap && owned_grow(w) < 0) {
            agw_log(AGW_LOG_ERROR, "worker %u: out of memory, closing socket of term %llu",
                    w->index, (unsigned long long)op->key);
            close(op->fd);
            return;
        }
        s = owned_find(w, op->key, true);
        if (s->key == 0)
            w->owned_n++;
        else
            close(s->fd);
        *s = (struct owned_socket){op->key, op->fd, op->datagram, op->listening};
        return;
    case AGW_OP_RELEASE:
        if (op->term != NULL) {
            /* No bytes are relayed yet by this build: the figures are what the socket saw. */
            op->term->octets_sent = 0;
            op->term->octets_received = 0;
        }
        if ((s = owned_find(w, op->key, false)) != NULL) {
            close(s->fd);
            owned_erase(w, s);
        }
        return;
    case AGW_OP_DETACH:
        if ((s = owned_find(w, op->key, false)) != NULL) {
            op->term->fd = s->fd;
            owned_erase(w, s);
        }
        return;
    case AGW_OP_BARRIER: {
        struct agw_workers *ws = w->ws;
        uv_mutex_lock(&ws->done_lock);
        if (ws->done_n == ws->done_cap) {
            size_t cap = ws->done_cap ? ws->done_cap * 2 : 64;
            uint64_t *grown = realloc(ws->done, cap * sizeof(*grown));
            if (grown == NULL) {
                uv_mutex_unlock(&ws->done_lock);
                agw_log(AGW_LOG_ERROR, "worker %u: out of memory for a barrier", w->index);
                return;
            }
            ws->done = grown;
            ws->done_cap = cap;
        }
        ws->done[ws->done_n++] = op->cookie;
        uv_mutex_unlock(&ws->done_lock);
        uv_async_send(&ws->done_async);
        return;
    }
    }
}

static void close_all(struct worker *w)
{
    for (size_t i = 0; i < w->owned_cap; i++)
        if (w->owned[i].key != 0)
            close(w->owned[i].fd);
    w->owned_n = 0;
}

static void on_wake(uv_async_t *async)
{
    struct worker *w = async->data;
    uv_mutex_lock(&w->lock);
    struct agw_op *ops = w->queue;
    size_t n = w->queued;
    bool stopping = w->stopping;
    w->queue = NULL;
    w->queued = w->queue_cap = 0;
    uv_mutex_unlock(&w->lock);
    if (n > 0 && w->ws->delay_ms > 0)
        uv_sleep(w->ws->delay_ms); /* test hook: a worker too busy to answer at once */
    for (size_t i = 0; i < n; i++)
        run_op(w, &ops[i]);
    free(ops);
    w->last_turn_ms = uv_now(&w->loop);
    if (stopping) {
        close_all(w);
        uv_close((uv_handle_t *)&w->wake, NULL);
        uv_close((uv_handle_t *)&w->heartbeat, NULL);
    }
}

static void on_heartbeat(uv_timer_t *timer)
{
    struct worker *w = timer->data;
    uv_update_time(&w->loop);
    w->last_turn_ms = uv_now(&w->loop);
}

static void worker_main(void *arg)
{
    struct worker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

static void on_done(uv_async_t *async)
{
    struct agw_workers *ws = async->data;
    uv_mutex_lock(&ws->done_lock);
    uint64_t *done = ws->done;
    size_t n = ws->done_n;
    ws->done = NULL;
    ws->done_n = ws->done_cap = 0;
    uv_mutex_unlock(&ws->done_lock);
    for (size_t i = 0; i < n; i++)
        ws->on_barrier(ws->user, done[i]);
    free(done);
}

static void free_workers(uv_handle_t *handle)
{
    free(handle->data);
}

int agw_workers_start(struct agw_workers **out, unsigned n, uv_loop_t *control_loop,
                      agw_barrier_cb on_barrier, void *user, unsigned debug_delay_ms)
{
    struct agw_workers *ws = calloc(1, sizeof(*ws));
    if (ws == NULL)
        return -ENOMEM;
    ws->w = calloc(n, sizeof(*ws->w));
    if (ws->w == NULL) {
        free(ws);
        return -ENOMEM;
    }
    ws->on_barrier = on_barrier;
    ws->user = user;
    ws->delay_ms = debug_delay_ms;
    uv_mutex_init(&ws->done_lock);
    uv_async_init(control_loop, &ws->done_async, on_done);
    ws->done_async.data = ws;
    for (unsigned i = 0; i < n; i++) {
        struct worker *w = &ws->w[i];
        w->ws = ws;
        w->index = i;
        w->owned_cap = 64;
        w->owned = calloc(w->owned_cap, sizeof(*w->owned));
        int rc = w->owned == NULL ? -ENOMEM : uv_loop_init(&w->loop);
        if (rc == 0) {
            uv_mutex_init(&w->lock);
            uv_async_init(&w->loop, &w->wake, on_wake);
            w->wake.data = w;
            uv_timer_init(&w->loop, &w->heartbeat);
            w->heartbeat.data = w;
            uv_timer_start(&w->heartbeat, on_heartbeat, 0, 250);
            w->last_turn_ms = uv_now(&w->loop);
            rc = uv_thread_create(&w->thread, worker_main, w);
        }
        if (rc < 0) {
            ws->n = i;
            agw_workers_stop(ws);
            return rc;
        }
        ws->n = i + 1;
    }
    *out = ws;
    return 0;
}

int agw_workers_submit(struct agw_workers *ws, unsigned index, const struct agw_op *ops, size_t n)
{
    if (index >= ws->n || n == 0)
        return index >= ws->n ? -EINVAL : 0;
    struct worker *w = &ws->w[index];
    uv_mutex_lock(&w->lock);
    if (w->queued + n > w->queue_cap) {
        size_t cap = w->queue_cap ? w->queue_cap : 64;
        while (cap < w->queued + n)
            cap *= 2;
        struct agw_op *grown = realloc(w->queue, cap * sizeof(*grown));
        if (grown == NULL) {
            uv_mutex_unlock(&w->lock);
            return -ENOMEM;
        }
        w->queue = grown;
        w->queue_cap = cap;
    }
    memcpy(w->queue + w->queued, ops, n * sizeof(*ops));
    w->queued += n;
    uv_mutex_unlock(&w->lock);
    uv_async_send(&w->wake);
    return 0;
}

bool agw_workers_alive(struct agw_workers *ws, uint64_t max_age_ms)
{
    uint64_t now = uv_hrtime() / 1000000;
    for (unsigned i = 0; i < ws->n; i++) {
        /* uv_now of another loop is on the same monotonic clock, in milliseconds. */
        uint64_t last = ws->w[i].last_turn_ms;
        if (now > last + max_age_ms)
            return false;
    }
    return true;
}

void agw_workers_stop(struct agw_workers *ws)
{
    if (ws == NULL)
        return;
    for (unsigned i = 0; i < ws->n; i++) {
        struct worker *w = &ws->w[i];
        uv_mutex_lock(&w->lock);
        w->stopping = true;
        uv_mutex_unlock(&w->lock);
        uv_async_send(&w->wake);
    }
    for (unsigned i = 0; i < ws->n; i++) {
        struct worker *w = &ws->w[i];
        uv_thread_join(&w->thread);
        uv_loop_close(&w->loop);
        uv_mutex_destroy(&w->lock);
        free(w->queue);
        free(w->owned);
    }
    /* Barriers still queued are dropped: their transactions die with the control loop. */
    free(ws->done);
    ws->done = NULL;
    uv_mutex_destroy(&ws->done_lock);
    free(ws->w);
    ws->w = NULL;
    uv_close((uv_handle_t *)&ws->done_async, free_workers);
}
