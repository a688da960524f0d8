/* Worker loops: each runs the data plane (agw/relay.c) of the contexts pinned to it; the control
 * loop talks to them through a queue and a doorbell, and hears back (barriers, leg events) the
 * same way. */
#include "agw/agw.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/*
 * A doorbell is an eventfd the woken loop polls, rung only when its queue goes from empty to
 * non-empty. It replaces uv_async_t: in libuv 1.44 the woken loop spins (then sched_yield()s)
 * for as long as the ringing thread is inside uv_async_send, i.e. inside its write() system call,
 * and with the two threads on two cores that spin was 8 % of the gateway's CPU at 450 session
 * set-ups per second. The woken side reads the eventfd before it takes the queue, so a ring that
 * comes meanwhile is never lost (at worst it wakes the loop once for an empty queue).
 */
struct doorbell {
    uv_poll_t poll;
    int fd;
};

static int doorbell_init(uv_loop_t *loop, struct doorbell *d, uv_poll_cb cb, void *data)
{
    d->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (d->fd < 0)
        return -errno;
    int rc = uv_poll_init(loop, &d->poll, d->fd);
    if (rc == 0) {
        d->poll.data = data;
        rc = uv_poll_start(&d->poll, UV_READABLE, cb);
    }
    if (rc < 0) {
        close(d->fd);
        d->fd = -1;
    }
    return rc;
}

static void doorbell_ring(struct doorbell *d)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is full: the bell is ringing already. */
    ssize_t n = write(d->fd, &one, sizeof(one));
    (void)n;
}

static void doorbell_clear(struct doorbell *d)
{
    uint64_t count;
    ssize_t n = read(d->fd, &count, sizeof(count));
    (void)n;
}

struct worker {
    struct agw_workers *ws;
    unsigned index;
    uv_thread_t thread;
    uv_loop_t loop;
    struct doorbell wake;
    uv_timer_t heartbeat;
    uv_mutex_t lock;
    struct agw_op *queue; /* guarded by lock */
    size_t queued, queue_cap;
    bool stopping; /* guarded by lock */
    _Atomic uint64_t last_turn_ms;
    struct agw_relay *relay;
};

/* What workers report to the control loop. */
struct report {
    bool is_event;
    uint64_t cookie;
    struct agw_leg_event ev;
};

struct agw_workers {
    unsigned n;
    struct worker *w;
    struct doorbell done_bell; /* on the control loop */
    uv_mutex_t done_lock;
    struct report *done; /* guarded by done_lock */
    size_t done_n, done_cap;
    agw_barrier_cb on_barrier;
    agw_leg_event_cb on_leg_event;
    void *user;
    unsigned delay_ms;
};

static void report(struct agw_workers *ws, const struct report *rep)
{
    uv_mutex_lock(&ws->done_lock);
    if (ws->done_n == ws->done_cap) {
        size_t cap = ws->done_cap ? ws->done_cap * 2 : 64;
        struct report *grown = realloc(ws->done, cap * sizeof(*grown));
        if (grown == NULL) {
            uv_mutex_unlock(&ws->done_lock);
            agw_log(AGW_LOG_ERROR, "workers: out of memory for a report");
            return;
        }
        ws->done = grown;
        ws->done_cap = cap;
    }
    bool was_empty = ws->done_n == 0;
    ws->done[ws->done_n++] = *rep;
    uv_mutex_unlock(&ws->done_lock);
    if (was_empty)
        doorbell_ring(&ws->done_bell);
}

static void on_leg_event(void *arg, const struct agw_leg_event *ev)
{
    struct worker *w = arg;
    struct report rep = {.is_event = true, .ev = *ev};
    report(w->ws, &rep);
}

static void run_op(struct worker *w, const struct agw_op *op)
{
    switch (op->kind) {
    case AGW_OP_ADOPT:
        agw_relay_adopt(w->relay, op->key, op->fd, op->datagram, op->listening);
        return;
    case AGW_OP_CONFIGURE:
        agw_relay_configure(w->relay, op->conf);
        return;
    case AGW_OP_RELEASE: {
        struct agw_leg_figures f;
        agw_relay_release(w->relay, op->key, &f);
        if (op->term != NULL)
            agw_term_set_figures(op->term, &f);
        return;
    }
    case AGW_OP_DETACH:
        op->term->fd = agw_relay_detach(w->relay, op->key);
        return;
    case AGW_OP_FIGURES: {
        struct agw_leg_figures f;
        agw_relay_figures(w->relay, op->key, &f);
        agw_term_set_figures(op->term, &f);
        return;
    }
    case AGW_OP_BARRIER: {
        struct report rep = {.cookie = op->cookie};
        report(w->ws, &rep);
        return;
    }
    }
}

static void drop_ops(struct agw_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind == AGW_OP_ADOPT)
            close(ops[i].fd);
        else if (ops[i].kind == AGW_OP_CONFIGURE)
            agw_leg_conf_free(ops[i].conf);
    }
}

static void on_wake(uv_poll_t *poll, int status, int events)
{
    (void)status;
    (void)events;
    struct worker *w = poll->data;
    doorbell_clear(&w->wake);
    uv_mutex_lock(&w->lock);
    struct agw_op *ops = w->queue;
    size_t n = w->queued;
    bool stopping = w->stopping;
    w->queue = NULL;
    w->queued = w->queue_cap = 0;
    uv_mutex_unlock(&w->lock);
    if (n > 0 && w->ws->delay_ms > 0)
        uv_sleep(w->ws->delay_ms); /* test hook: a worker too busy to answer at once */
    if (stopping) {
        drop_ops(ops, n);
        free(ops);
        agw_relay_close(w->relay);
        w->relay = NULL;
        uv_close((uv_handle_t *)&w->wake.poll, NULL);
        uv_close((uv_handle_t *)&w->heartbeat, NULL);
        return;
    }
    for (size_t i = 0; i < n; i++)
        run_op(w, &ops[i]);
    free(ops);
    w->last_turn_ms = uv_now(&w->loop);
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

static void on_done(uv_poll_t *poll, int status, int events)
{
    (void)status;
    (void)events;
    struct agw_workers *ws = poll->data;
    doorbell_clear(&ws->done_bell);
    uv_mutex_lock(&ws->done_lock);
    struct report *done = ws->done;
    size_t n = ws->done_n;
    ws->done = NULL;
    ws->done_n = ws->done_cap = 0;
    uv_mutex_unlock(&ws->done_lock);
    for (size_t i = 0; i < n; i++) {
        if (done[i].is_event)
            ws->on_leg_event(ws->user, &done[i].ev);
        else
            ws->on_barrier(ws->user, done[i].cookie);
    }
    free(done);
}

static void free_workers(uv_handle_t *handle)
{
    struct agw_workers *ws = handle->data;
    close(ws->done_bell.fd);
    free(ws);
}

int agw_workers_start(struct agw_workers **out, unsigned n, uv_loop_t *control_loop,
                      agw_barrier_cb on_barrier, agw_leg_event_cb on_leg_event_cb, void *user,
                      unsigned debug_delay_ms)
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
    ws->on_leg_event = on_leg_event_cb;
    ws->user = user;
    ws->delay_ms = debug_delay_ms;
    int rc = doorbell_init(control_loop, &ws->done_bell, on_done, ws);
    if (rc < 0) {
        free(ws->w);
        free(ws);
        return rc;
    }
    uv_mutex_init(&ws->done_lock);
    for (unsigned i = 0; i < n; i++) {
        struct worker *w = &ws->w[i];
        w->ws = ws;
        w->index = i;
        w->wake.fd = -1;
        rc = uv_loop_init(&w->loop);
        if (rc == 0)
            rc = agw_relay_new(&w->relay, &w->loop, on_leg_event, w);
        if (rc == 0)
            rc = doorbell_init(&w->loop, &w->wake, on_wake, w);
        if (rc == 0) {
            uv_mutex_init(&w->lock);
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
    if (index >= ws->n)
        return -EINVAL;
    if (n == 0)
        return 0;
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
    bool was_empty = w->queued == 0;
    memcpy(w->queue + w->queued, ops, n * sizeof(*ops));
    w->queued += n;
    uv_mutex_unlock(&w->lock);
    if (was_empty)
        doorbell_ring(&w->wake);
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
        doorbell_ring(&w->wake);
    }
    for (unsigned i = 0; i < ws->n; i++) {
        struct worker *w = &ws->w[i];
        uv_thread_join(&w->thread);
        uv_loop_close(&w->loop);
        close(w->wake.fd);
        uv_mutex_destroy(&w->lock);
        free(w->queue);
    }
    /* Barriers still queued are dropped: their transactions die with the control loop. */
    free(ws->done);
    ws->done = NULL;
    uv_mutex_destroy(&ws->done_lock);
    free(ws->w);
    ws->w = NULL;
    uv_close((uv_handle_t *)&ws->done_bell.poll, free_workers);
}
