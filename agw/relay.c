/* A worker's data plane: the TCP connections of each leg, TLS on the secure ones, and the byte
 * relay between the two legs of a context, bounded in both directions (backpressure). */
#include "agw/agw.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_BUFFER (64 * 1024)
#define PLAIN_BUFFER READ_BUFFER /* both come from the same pool */
#define POOL_MAX 64              /* idle buffers a worker keeps for reuse */

struct leg {
    struct agw_relay *r;
    uint64_t key;
    struct agw_leg_conf *conf; /* NULL until configured */
    struct leg *peer;
    /* A TCP-passive leg listens only while it has no connection (malloc, NULL otherwise): a
     * held session keeps no listening socket. Its port stays reserved by the control loop and
     * is bound again (port_addr) when the connection goes. */
    uv_tcp_t *listener;
    union agw_sockaddr port_addr; /* sa_family 0: the leg never listened */
    uv_tcp_t conn;
    /* One request at a time on conn: the connect, then writes one by one, then the FIN. */
    union {
        uv_connect_t connect;
        uv_write_t write;
        uv_shutdown_t shutdown;
    } req;
    uv_timer_t *timer;      /* handshake timeout, while a handshake runs (malloc) */
    uv_timer_t *idle_timer; /* media inactivity (adid/ipstop), while requested (malloc) */
    bool has_conn, connected, connecting;
    bool conn_busy;  /* l->conn is initialised and not yet through its close callback */
    bool out_closed; /* we ended our output on this connection (FIN or close_notify) */
    bool idle_reported;
    uint64_t last_activity_ms;
    bool failed, released;
    unsigned handles; /* open uv handles; the leg is freed when it is released and 0 */
    struct agw_tls_session *tls;
    bool verified;
    /* Input: what our socket gave and the peer has not taken yet. */
    char *rbuf;        /* READ_BUFFER: plaintext of a plain leg (TLS legs read into the engine) */
    char *pbuf;        /* PLAIN_BUFFER: decrypted plaintext (TLS) */
    const char *stash; /* plaintext not yet taken by the peer */
    size_t stash_len;
    bool eof_in;   /* end of our input (FIN or close_notify) */
    bool eof_sent; /* the end was passed on to the peer */
    bool reading;
    /* Output of a plain leg: bytes waiting for our socket. */
    char *obuf;
    size_t olen, ocap;
    bool writing; /* one uv_write at a time */
    size_t wlen;
    bool shut_wanted, shut_done; /* FIN after the outbox drains */
    uint64_t wire_in, wire_out;
    struct agw_log_limit log_limit; /* refused connections are hostile input */
};

struct agw_relay {
    uv_loop_t *loop;
    agw_leg_event_cb cb;
    void *arg;
    struct leg **slots; /* open addressing on key */
    size_t cap, n;
    bool closing;
    struct agw_dc *dc; /* the data-channel legs */
    unsigned open_legs;
    char *pool[POOL_MAX]; /* idle READ_BUFFER-sized buffers: legs hold one only while busy */
    unsigned pooled;
};

static char *buf_get(struct agw_relay *r)
{
    return r->pooled > 0 ? r->pool[--r->pooled] : malloc(READ_BUFFER);
}

static void buf_put(struct agw_relay *r, char *b)
{
    if (b == NULL)
        return;
    if (r->pooled < POOL_MAX && !r->closing)
        r->pool[r->pooled++] = b;
    else
        free(b);
}

/* A leg holds its buffers only while they hold bytes: idle sessions cost no buffer memory. */
static void release_idle_buffers(struct leg *l)
{
    bool stash_in_rbuf = l->stash_len > 0 && l->rbuf != NULL && l->stash >= l->rbuf &&
                         l->stash < l->rbuf + READ_BUFFER;
    bool stash_in_pbuf = l->stash_len > 0 && l->pbuf != NULL && l->stash >= l->pbuf &&
                         l->stash < l->pbuf + PLAIN_BUFFER;
    if (l->rbuf != NULL && !stash_in_rbuf) {
        buf_put(l->r, l->rbuf);
        l->rbuf = NULL;
    }
    if (l->pbuf != NULL && !stash_in_pbuf) {
        buf_put(l->r, l->pbuf);
        l->pbuf = NULL;
    }
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 31;
    x *= 0x9e3779b97f4a7c15ull;
    return x ^ (x >> 29);
}

static struct leg **slot_of(struct agw_relay *r, uint64_t key)
{
    size_t mask = r->cap - 1;
    for (size_t i = mix(key) & mask, n = 0; n < r->cap; n++, i = (i + 1) & mask)
        if (r->slots[i] == NULL || r->slots[i]->key == key)
            return &r->slots[i];
    return NULL;
}

static struct leg *find(struct agw_relay *r, uint64_t key)
{
    struct leg **s = key != 0 ? slot_of(r, key) : NULL;
    return s != NULL ? *s : NULL;
}

static void erase(struct agw_relay *r, uint64_t key)
{
    size_t mask = r->cap - 1;
    struct leg **s = slot_of(r, key);
    if (s == NULL || *s == NULL)
        return;
    size_t i = (size_t)(s - r->slots);
    /* Backward-shift deletion keeps probe chains whole. */
    for (size_t j = (i + 1) & mask; r->slots[j] != NULL; j = (j + 1) & mask) {
        size_t home = mix(r->slots[j]->key) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            r->slots[i] = r->slots[j];
            i = j;
        }
    }
    r->slots[i] = NULL;
    r->n--;
}

static int insert(struct agw_relay *r, struct leg *l)
{
    if ((r->n + 1) * 2 > r->cap) {
        size_t old_cap = r->cap;
        struct leg **old = r->slots;
        r->slots = calloc(old_cap * 2, sizeof(*r->slots));
        if (r->slots == NULL) {
            r->slots = old;
            return -ENOMEM;
        }
        r->cap = old_cap * 2;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i] != NULL)
                *slot_of(r, old[i]->key) = old[i];
        free(old);
    }
    *slot_of(r, l->key) = l;
    r->n++;
    return 0;
}

struct agw_leg_conf *agw_leg_conf_new(unsigned n_fingerprints)
{
    struct agw_leg_conf *conf =
        calloc(1, sizeof(*conf) + n_fingerprints * sizeof(conf->fingerprints[0]));
    if (conf != NULL)
        conf->n_fingerprints = n_fingerprints;
    return conf;
}

void agw_leg_conf_free(struct agw_leg_conf *conf)
{
    if (conf == NULL)
        return;
    agw_tls_identity_unref(conf->identity);
    agw_tls_ctx_unref(conf->tls_ctx);
    free(conf->dc);
    free(conf);
}

static void post(struct leg *l, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void agw_leg_event_vpost(agw_leg_event_cb cb, void *arg, uint64_t key,
                         const struct agw_leg_conf *conf, int kind, const char *fmt, va_list ap)
{
    struct agw_leg_event ev = {.kind = kind, .key = key};
    if (conf != NULL) {
        ev.context_id = conf->context_id;
        snprintf(ev.term_id, sizeof(ev.term_id), "%s", conf->term_id);
    }
    vsnprintf(ev.cause, sizeof(ev.cause), fmt, ap);
    cb(arg, &ev);
}

static void post(struct leg *l, int kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    agw_leg_event_vpost(l->r->cb, l->r->arg, l->key, l->conf, kind, fmt, ap);
    va_end(ap);
}

static const char *leg_name(const struct leg *l)
{
    return l->conf != NULL ? l->conf->term_id : "?";
}

/* ---- Life cycle of a leg's memory ---- */

static void maybe_free(struct leg *l)
{
    if (!l->released || l->handles > 0)
        return;
    agw_tls_session_free(l->tls);
    agw_leg_conf_free(l->conf);
    buf_put(l->r, l->rbuf);
    buf_put(l->r, l->pbuf);
    free(l->obuf);
    struct agw_relay *r = l->r;
    free(l);
    if (--r->open_legs == 0 && r->closing) {
        for (unsigned i = 0; i < r->pooled; i++)
            free(r->pool[i]);
        free(r->slots);
        free(r);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct leg *l = h->data;
    if (h == (uv_handle_t *)&l->conn)
        l->conn_busy = false;
    l->handles--;
    maybe_free(l);
}

static void close_handle(struct leg *l, uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        h->data = l;
        uv_close(h, on_handle_closed);
    }
}

/* The close callback of the handles a leg allocates apart (listener, timers). */
static void on_own_handle_closed(uv_handle_t *h)
{
    struct leg *l = h->data;
    free(h);
    l->handles--;
    maybe_free(l);
}

static void close_own_handle(struct leg *l, uv_handle_t *h)
{
    h->data = l;
    uv_close(h, on_own_handle_closed);
}

static void close_timer(struct leg *l, uv_timer_t **t)
{
    if (*t != NULL) {
        close_own_handle(l, (uv_handle_t *)*t);
        *t = NULL;
    }
}

static void close_listener(struct leg *l)
{
    if (l->listener != NULL) {
        close_own_handle(l, (uv_handle_t *)l->listener);
        l->listener = NULL;
    }
}

/* A timer of the leg's loop (NULL when out of memory), closed with close_timer. */
static uv_timer_t *open_timer(struct leg *l)
{
    uv_timer_t *t = malloc(sizeof(*t));
    if (t == NULL || uv_timer_init(l->r->loop, t) < 0) {
        free(t);
        return NULL;
    }
    t->data = l;
    l->handles++;
    return t;
}

static void update_reading(struct leg *l);
static void maybe_close(struct leg *l);
static void note_activity(struct leg *l);
static void tls_process(struct leg *l);
static void pump(struct leg *src);
static void start_connection(struct leg *l);
static void listen_again(struct leg *l);

/* Closes the connection: a reset when asked, else an orderly close. A TCP-passive leg listens
 * again first, so that its far end finds the port open once it sees the close. */
static void drop_connection(struct leg *l, bool reset)
{
    if (!l->has_conn)
        return;
    listen_again(l);
    l->has_conn = false;
    l->connected = false;
    l->reading = false;
    close_timer(l, &l->timer);
    if (reset && !uv_is_closing((uv_handle_t *)&l->conn)) {
        l->conn.data = l;
        if (uv_tcp_close_reset(&l->conn, on_handle_closed) == 0)
            return;
    }
    close_handle(l, (uv_handle_t *)&l->conn);
}

/* ---- Output ---- */

static void on_written(uv_write_t *req, int status);

/* Starts writing what waits for this leg's socket: TLS output in place, plain output from the
 * outbox. */
static void flush(struct leg *l)
{
    if (!l->connected || l->writing || l->shut_done)
        return;
    const void *data = NULL;
    size_t len = 0;
    if (l->tls != NULL) {
        agw_tls_session_pending_output(l->tls, &data, &len);
    } else {
        data = l->obuf;
        len = l->olen;
    }
    if (len == 0) {
        if (l->shut_wanted && !l->shut_done && l->tls == NULL) {
            l->shut_done = true;
            l->req.shutdown.data = l;
            uv_shutdown(&l->req.shutdown, (uv_stream_t *)&l->conn, NULL);
        }
        return;
    }
    uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
    l->req.write.data = l;
    if (uv_write(&l->req.write, (uv_stream_t *)&l->conn, &buf, 1, on_written) == 0) {
        l->writing = true;
        l->wlen = len;
    }
}

static void on_drained(struct leg *dst);

static void on_written(uv_write_t *req, int status)
{
    struct leg *l = req->data;
    l->writing = false;
    if (l->released || !l->has_conn)
        return;
    if (status < 0) {
        agw_log(AGW_LOG_INFO, "term %s: write failed: %s", leg_name(l), uv_strerror(status));
        drop_connection(l, true);
        if (l->peer != NULL)
            drop_connection(l->peer, true);
        return;
    }
    l->wire_out += l->wlen;
    note_activity(l);
    if (l->tls != NULL) {
        agw_tls_session_consume_output(l->tls, l->wlen);
    } else {
        memmove(l->obuf, l->obuf + l->wlen, l->olen - l->wlen);
        l->olen -= l->wlen;
        if (l->olen == 0) {
            /* Drained: an idle leg keeps no buffer. */
            free(l->obuf);
            l->obuf = NULL;
            l->ocap = 0;
        }
    }
    if (l->failed) {
        /* The alert is out: now the connection can go. */
        size_t left = l->tls != NULL ? agw_tls_session_output_size(l->tls) : 0;
        if (left == 0) {
            drop_connection(l, false);
            return;
        }
    }
    flush(l);
    on_drained(l);
    maybe_close(l);
}

/* The plain bytes a leg can still queue toward its socket. */
static size_t plain_room(const struct leg *l)
{
    size_t limit = l->conf != NULL && l->conf->buffer_bytes ? l->conf->buffer_bytes : 65536;
    return l->olen >= limit ? 0 : limit - l->olen;
}

static bool can_receive(const struct leg *dst)
{
    if (dst == NULL || dst->conf == NULL || !dst->connected || dst->failed || dst->out_closed)
        return false;
    if (dst->tls != NULL && !dst->verified)
        return false;
    /* Mode is seen from the termination: RecvOnly/Inactive send nothing to its network. */
    return dst->conf->mode != H248_MODE_RECV_ONLY && dst->conf->mode != H248_MODE_INACTIVE;
}

static bool can_send(const struct leg *src)
{
    return src->conf != NULL && src->conf->mode != H248_MODE_SEND_ONLY &&
           src->conf->mode != H248_MODE_INACTIVE;
}

/* Hands plaintext to dst; returns how much it took (0 when it must wait). */
static size_t deliver(struct leg *dst, const char *data, size_t len)
{
    if (dst->tls != NULL) {
        size_t taken = 0;
        agw_tls_session_write(dst->tls, data, len, &taken);
        if (taken > 0)
            flush(dst);
        return taken;
    }
    size_t taken = 0;
    if (dst->olen == 0 && !dst->writing) {
        /* The common case: straight to the socket, no copy. */
        uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&dst->conn, &buf, 1);
        if (n > 0) {
            taken = (size_t)n;
            dst->wire_out += (size_t)n;
        }
    }
    size_t rest = len - taken;
    if (rest > 0 && dst->obuf == NULL) {
        /* Allocated once at its bound: a uv_write in flight points into it. */
        dst->ocap = plain_room(dst);
        dst->obuf = malloc(dst->ocap);
        if (dst->obuf == NULL)
            return taken;
    }
    size_t room = dst->ocap - dst->olen;
    if (rest > 0 && room > 0) {
        size_t n = rest < room ? rest : room;
        memcpy(dst->obuf + dst->olen, data + taken, n);
        dst->olen += n;
        taken += n;
        flush(dst);
    }
    return taken;
}

/* Both directions of a connection ended and our last bytes are out: close it (orderly). */
static void maybe_close(struct leg *l)
{
    if (!l->connected || !l->eof_in || !l->eof_sent || !l->out_closed || l->writing)
        return;
    if (l->tls != NULL ? agw_tls_session_output_size(l->tls) > 0 : (l->olen > 0 || !l->shut_done))
        return;
    agw_log(AGW_LOG_DEBUG, "term %s: both directions ended, connection closed", leg_name(l));
    drop_connection(l, false);
}

/* The end of src's input reaches dst once everything before it did. */
static void pass_eof(struct leg *src)
{
    struct leg *dst = src->peer;
    if (!src->eof_in || src->stash_len > 0 || src->eof_sent || dst == NULL || !dst->connected)
        return;
    src->eof_sent = true;
    dst->out_closed = true;
    if (dst->tls != NULL) {
        if (dst->verified) {
            agw_tls_session_close(dst->tls);
            flush(dst);
        } else {
            drop_connection(dst, false);
        }
    } else {
        dst->shut_wanted = true;
        flush(dst);
    }
    maybe_close(src);
    maybe_close(dst);
}

static bool bridged(const struct leg *l)
{
    return l->conf != NULL && l->conf->bridge_key != 0;
}

static void pump(struct leg *src)
{
    if (bridged(src)) {
        /* The MSRP bytes go to the data-channel leg, which frames and re-chunks them. */
        while (src->stash_len > 0 && can_send(src)) {
            size_t n =
                agw_dc_bridge_input(src->r->dc, src->conf->bridge_key, src->stash, src->stash_len);
            if (n == 0)
                break;
            src->stash += n;
            src->stash_len -= n;
        }
        return;
    }
    struct leg *dst = src->peer;
    while (src->stash_len > 0 && can_receive(dst) && can_send(src)) {
        size_t n = deliver(dst, src->stash, src->stash_len);
        if (n == 0)
            break;
        src->stash += n;
        src->stash_len -= n;
    }
    if (src->stash_len == 0)
        pass_eof(src);
}

/* dst's socket took bytes: its peer may go on. */
static void on_drained(struct leg *dst)
{
    if (bridged(dst)) {
        agw_dc_bridge_resume(dst->r->dc, dst->conf->bridge_key);
        return;
    }
    struct leg *src = dst->peer;
    if (src == NULL || src->released)
        return;
    pump(src);
    if (src->tls != NULL)
        tls_process(src);
    else
        update_reading(src);
}

/* ---- Input ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct leg *l = h->data;
    if (l->tls != NULL) {
        /* Ciphertext goes straight into the engine's input: no copy. */
        void *space = NULL;
        size_t cap = 0;
        if (agw_tls_session_input_space(l->tls, &space, &cap) < 0)
            cap = 0;
        *buf = uv_buf_init(space, (unsigned)(cap > UINT32_MAX ? UINT32_MAX : cap));
        return;
    }
    if (l->rbuf == NULL)
        l->rbuf = buf_get(l->r);
    *buf = uv_buf_init(l->rbuf, l->rbuf != NULL ? READ_BUFFER : 0);
}

static void fail(struct leg *l, const char *cause)
{
    if (l->failed)
        return;
    l->failed = true;
    /* Failed handshakes are what a hostile UE can repeat at will: limited per termination. */
    if (agw_log_allow(&l->log_limit, uv_now(l->r->loop), 5))
        agw_log(AGW_LOG_WARN, "context %u term %s: %s: %s", l->conf ? l->conf->context_id : 0,
                leg_name(l), l->verified ? "closed" : "refused", cause);
    post(l, AGW_LEG_FAILED, "%s", cause);
    close_timer(l, &l->timer);
    if (l->reading) {
        uv_read_stop((uv_stream_t *)&l->conn);
        l->reading = false;
    }
    /* Send what the engine queued (the fatal alert) and close after it. */
    if (l->tls != NULL && agw_tls_session_output_size(l->tls) > 0 && l->connected)
        flush(l);
    else
        drop_connection(l, false);
    /* A session that failed after data flowed (truncation, bad record) is cut: the other side
     * must not take a partial stream for a complete one. */
    if (l->verified && l->peer != NULL)
        drop_connection(l->peer, true);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct leg *l = stream->data;
    if (l->released)
        return;
    if (nread == 0 || nread == UV_ENOBUFS) {
        if (nread == UV_ENOBUFS) {
            uv_read_stop(stream);
            l->reading = false;
        }
        return;
    }
    if (nread < 0) {
        uv_read_stop(stream);
        l->reading = false;
        if (nread == UV_EOF) {
            if (l->tls != NULL) {
                agw_tls_session_feed_eof(l->tls);
                tls_process(l);
            } else {
                l->eof_in = true;
                pass_eof(l);
            }
            return;
        }
        /* A reset (or worse) propagates as a reset. */
        agw_log(AGW_LOG_INFO, "term %s: connection error: %s", leg_name(l),
                uv_strerror((int)nread));
        if (!l->verified && l->tls != NULL)
            fail(l, "connection reset during the handshake");
        drop_connection(l, true);
        if (l->peer != NULL)
            drop_connection(l->peer, true);
        return;
    }
    l->wire_in += (uint64_t)nread;
    note_activity(l);
    if (l->tls != NULL) {
        agw_tls_session_input_commit(l->tls, (size_t)nread);
        tls_process(l);
    } else {
        l->stash = l->rbuf;
        l->stash_len = (size_t)nread;
        pump(l);
        update_reading(l);
    }
}

/* Reads while the leg can use what comes: its stash is empty (plaintext), or the engine needs
 * input (TLS), and the termination's mode lets it send. */
static void update_reading(struct leg *l)
{
    bool want = l->connected && !l->failed && !l->released && l->conf != NULL;
    if (want && l->tls != NULL)
        want = l->stash_len == 0 && !agw_tls_session_peer_closed(l->tls) &&
               (l->verified ? can_send(l) : agw_tls_session_state(l->tls) == AGW_TLS_HANDSHAKING);
    else if (want)
        want = l->stash_len == 0 && !l->eof_in && can_send(l);
    if (want && !l->reading) {
        l->conn.data = l;
        l->reading = uv_read_start((uv_stream_t *)&l->conn, on_alloc, on_read) == 0;
    } else if (!want && l->reading) {
        uv_read_stop((uv_stream_t *)&l->conn);
        l->reading = false;
    }
    release_idle_buffers(l);
}

static void on_verified(struct leg *l)
{
    l->verified = true;
    close_timer(l, &l->timer); /* a held session keeps no timer */
    agw_log(AGW_LOG_INFO, "context %u term %s: TLS up (%s, %s), fingerprint verified",
            l->conf->context_id, leg_name(l), agw_tls_session_version(l->tls),
            agw_tls_session_cipher(l->tls));
    post(l, AGW_LEG_UP, "tls");
    /* What the peer held back for us may go now, and an active peer may connect. */
    if (bridged(l))
        agw_dc_bridge_resume(l->r->dc, l->conf->bridge_key);
    if (l->peer != NULL) {
        start_connection(l->peer);
        pump(l->peer);
        update_reading(l->peer);
    }
}

static void tls_process(struct leg *l)
{
    /* The socket reads straight into the engine (on_alloc): here the engine works on it. */
    for (int round = 0; round < 4096 && !l->failed && !l->released; round++) {
        enum agw_tls_state st = agw_tls_session_state(l->tls);
        if (st == AGW_TLS_FAILED)
            break;
        if (st == AGW_TLS_HANDSHAKING) {
            int rc = agw_tls_session_handshake(l->tls);
            flush(l);
            if (rc == 0) {
                on_verified(l);
                continue;
            }
            break; /* more input needed, or failed */
        }
        if (st == AGW_TLS_HELD)
            break; /* no decision before the ALG gave the fingerprint */
        if (l->stash_len > 0)
            break; /* the peer has not taken the last plaintext yet */
        size_t got = 0;
        if (l->pbuf == NULL && (l->pbuf = buf_get(l->r)) == NULL)
            break;
        int rc = agw_tls_session_read(l->tls, l->pbuf, PLAIN_BUFFER, &got);
        flush(l);
        if (rc == 0 && got > 0) {
            l->stash = l->pbuf;
            l->stash_len = got;
            pump(l);
            continue;
        }
        if (rc == 0) {
            l->eof_in = true; /* close_notify */
            pass_eof(l);
            break;
        }
        break;
    }
    if (agw_tls_session_state(l->tls) == AGW_TLS_FAILED && !l->failed) {
        /* The cause names the reason, and the alert or OpenSSL's words when they add to it. */
        const struct agw_tls_error *e = agw_tls_session_error(l->tls);
        const char *reason = e != NULL ? agw_tls_failure_name(e->reason) : "TLS failure";
        char cause[96];
        if (e != NULL && e->text != NULL && strcmp(e->text, reason) != 0)
            snprintf(cause, sizeof(cause), "%s: %s", reason, e->text);
        else
            snprintf(cause, sizeof(cause), "%s", reason);
        fail(l, cause);
        return;
    }
    update_reading(l);
}

static void on_handshake_timeout(uv_timer_t *t)
{
    struct leg *l = t->data;
    if (!l->verified)
        fail(l, "handshake timeout");
}

/* A connection is up (accepted or connected): TLS starts, or plaintext may flow. */
static void on_idle_check(uv_timer_t *t)
{
    struct leg *l = t->data;
    uint32_t limit = l->conf != NULL ? l->conf->inactivity_ms : 0;
    if (limit == 0 || !l->connected || l->idle_reported)
        return;
    if (uv_now(l->r->loop) - l->last_activity_ms >= limit) {
        l->idle_reported = true;
        agw_log(AGW_LOG_INFO, "context %u term %s: no data for %u ms", l->conf->context_id,
                leg_name(l), limit);
        post(l, AGW_LEG_IDLE, "no data for %u ms", limit);
    }
}

/* Arms or disarms the media-inactivity check after a configuration or a connection change. */
static void update_idle_timer(struct leg *l)
{
    uint32_t limit = l->conf != NULL ? l->conf->inactivity_ms : 0;
    if (limit == 0 || !l->connected) {
        close_timer(l, &l->idle_timer);
        return;
    }
    if (l->idle_timer == NULL && (l->idle_timer = open_timer(l)) == NULL)
        return;
    uint64_t period = limit / 4 > 50 ? limit / 4 : 50;
    uv_timer_start(l->idle_timer, on_idle_check, period, period);
}

static void note_activity(struct leg *l)
{
    l->last_activity_ms = uv_now(l->r->loop);
    l->idle_reported = false;
}

/* A new connection starts from a clean slate: nothing of an earlier, dropped one carries over
 * (its TLS session, verdict, end-of-stream flags or unsent bytes). */
static void reset_connection_state(struct leg *l)
{
    agw_tls_session_free(l->tls);
    l->tls = NULL;
    l->verified = l->failed = false;
    l->eof_in = l->eof_sent = l->out_closed = false;
    l->shut_wanted = l->shut_done = false;
    l->stash = NULL;
    l->stash_len = 0;
    l->olen = 0;
    release_idle_buffers(l);
    if (l->peer != NULL)
        l->peer->eof_sent = false; /* the peer's end was told to the old connection */
}

static void connection_up(struct leg *l)
{
    reset_connection_state(l);
    l->connected = true;
    note_activity(l);
    update_idle_timer(l);
    agw_log(AGW_LOG_DEBUG, "context %u term %s: connected", l->conf->context_id, leg_name(l));
    if (l->conf->secure) {
        int rc =
            agw_tls_session_new(l->conf->tls_ctx, l->conf->identity,
                                l->conf->tls_client ? AGW_TLS_CLIENT : AGW_TLS_SERVER, &l->tls);
        if (rc < 0) {
            fail(l, "cannot create a TLS session");
            return;
        }
        if (l->conf->fingerprints_known)
            agw_tls_session_set_fingerprints(l->tls, l->conf->fingerprints,
                                             l->conf->n_fingerprints);
        if (l->timer != NULL || (l->timer = open_timer(l)) != NULL)
            uv_timer_start(l->timer, on_handshake_timeout,
                           l->conf->handshake_timeout_ms ? l->conf->handshake_timeout_ms : 10000,
                           0);
        tls_process(l);
    } else {
        update_reading(l);
        if (l->peer != NULL)
            pump(l->peer), update_reading(l->peer);
    }
    if (bridged(l))
        agw_dc_bridge_resume(l->r->dc, l->conf->bridge_key);
    /* Incoming triggers outgoing (TS 23.334): the peer connects now if it is the active side;
     * behind a TLS leg, only once the UE is verified, so that a refused UE reaches nothing. */
    if (l->peer != NULL && !l->conf->secure)
        start_connection(l->peer);
}

static void on_connected(uv_connect_t *req, int status)
{
    struct leg *l = req->data;
    l->connecting = false;
    if (l->released || status == UV_ECANCELED || !l->has_conn)
        return;
    if (status < 0) {
        agw_log(AGW_LOG_INFO, "term %s: connect failed: %s", leg_name(l), uv_strerror(status));
        post(l, AGW_LEG_FAILED, "connect failed: %s", uv_err_name(status));
        drop_connection(l, false);
        /* The other side cannot be served: it is cut rather than left hanging. */
        if (l->peer != NULL && l->peer->connected)
            drop_connection(l->peer, true);
        return;
    }
    connection_up(l);
}

/* The TCP-active side connects once it knows where to, and once its peer is up (verified when
 * it is TLS) or is active too. */
static void start_connection(struct leg *l)
{
    const struct agw_leg_conf *c = l->conf;
    if (c == NULL || c->datagram || c->tcp_role != AGW_ROLE_ACTIVE || !c->has_remote ||
        l->has_conn || l->failed || l->released)
        return;
    /* Nothing to connect for while the context has no other leg. */
    struct leg *p = l->peer;
    bool peer_ok = bridged(l) ? agw_dc_bridge_up(l->r->dc, c->bridge_key)
                              : p != NULL && p->conf != NULL &&
                                    (p->conf->tcp_role == AGW_ROLE_ACTIVE ||
                                     (p->connected && (p->tls == NULL || p->verified)));
    if (!peer_ok)
        return;
    if (l->conn_busy || uv_tcp_init(l->r->loop, &l->conn) < 0)
        return; /* a previous connection is still closing: the next trigger retries */
    l->conn.data = l;
    l->has_conn = true;
    l->conn_busy = true;
    l->handles++;
    uv_tcp_nodelay(&l->conn, 1);
    uv_tcp_bind(&l->conn, &c->local.sa, 0);
    l->req.connect.data = l;
    if (uv_tcp_connect(&l->req.connect, &l->conn, &c->remote.sa, on_connected) == 0) {
        l->connecting = true;
    } else {
        post(l, AGW_LEG_FAILED, "connect failed");
        drop_connection(l, false);
    }
}

static bool same_ip(const union agw_sockaddr *a, const struct sockaddr_storage *b)
{
    if (a->sa.sa_family != b->ss_family)
        return false;
    if (a->sa.sa_family == AF_INET)
        return a->in.sin_addr.s_addr == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return memcmp(&a->in6.sin6_addr, &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

static void on_refused_closed(uv_handle_t *h)
{
    free(h);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct leg *l = server->data;
    if (l->released)
        return;
    if (status == UV_EMFILE || status == UV_ENFILE) {
        /* libuv would call back again at once for as long as no descriptor frees: the
         * termination stops listening rather than spin the worker, and the ALG hears of it. */
        agw_log(AGW_LOG_ERROR, "context %u term %s: out of file descriptors: stops listening",
                l->conf != NULL ? l->conf->context_id : 0, leg_name(l));
        post(l, AGW_LEG_FAILED, "out of file descriptors");
        close_listener(l);
        return;
    }
    if (status < 0)
        return;
    uv_tcp_t *client = malloc(sizeof(*client));
    if (client == NULL || uv_tcp_init(l->r->loop, client) < 0) {
        free(client);
        return;
    }
    if (uv_accept(server, (uv_stream_t *)client) < 0) {
        uv_close((uv_handle_t *)client, on_refused_closed);
        return;
    }
    struct sockaddr_storage from;
    int len = sizeof(from);
    uv_tcp_getpeername(client, (struct sockaddr *)&from, &len);
    /* No second connection reaches here: the listener is closed while a connection is held. */
    const char *why = NULL;
    if (l->conn_busy)
        why = "a connection while the previous one is still closing";
    else if (l->conf == NULL)
        why = "a connection before the termination was configured";
    else if (l->conf->has_remote && !same_ip(&l->conf->remote, &from))
        why = "a connection from an address that is not the Remote's";
    if (why != NULL) {
        if (agw_log_allow(&l->log_limit, uv_now(l->r->loop), 5))
            agw_log(AGW_LOG_WARN, "term %s: refused %s", leg_name(l), why);
        post(l, AGW_LEG_REFUSED, "%s", why);
        uv_tcp_close_reset(client, on_refused_closed);
        return;
    }
    /* The accepted handle replaces the embedded one: move it by re-opening its fd. */
    uv_os_fd_t fd;
    uv_fileno((uv_handle_t *)client, &fd);
    int dup_fd = dup(fd);
    uv_close((uv_handle_t *)client, on_refused_closed);
    if (dup_fd < 0 || uv_tcp_init(l->r->loop, &l->conn) < 0) {
        if (dup_fd >= 0)
            close(dup_fd);
        return;
    }
    l->conn.data = l;
    l->has_conn = true;
    l->conn_busy = true;
    l->handles++;
    if (uv_tcp_open(&l->conn, dup_fd) < 0) {
        close(dup_fd);
        drop_connection(l, false);
        return;
    }
    uv_tcp_nodelay(&l->conn, 1);
    close_listener(l); /* an established session holds its two connections, nothing more */
    connection_up(l);
}

/* Listens on fd (a bound TCP socket; taken in every case). */
static int listen_on(struct leg *l, int fd)
{
    uv_tcp_t *h = malloc(sizeof(*h));
    if (h == NULL || uv_tcp_init(l->r->loop, h) < 0) {
        free(h);
        close(fd);
        return -ENOMEM;
    }
    h->data = l;
    l->handles++;
    int rc = uv_tcp_open(h, fd);
    if (rc < 0)
        close(fd);
    else
        rc = uv_listen((uv_stream_t *)h, 16, on_connection);
    if (rc < 0) {
        close_own_handle(l, (uv_handle_t *)h);
        return rc;
    }
    l->listener = h;
    return 0;
}

static socklen_t port_addr_len(const struct leg *l)
{
    return l->port_addr.sa.sa_family == AF_INET6 ? sizeof(l->port_addr.in6)
                                                 : sizeof(l->port_addr.in);
}

static uint16_t port_of(const struct leg *l)
{
    return ntohs(l->port_addr.sa.sa_family == AF_INET6 ? l->port_addr.in6.sin6_port
                                                       : l->port_addr.in.sin_port);
}

/* A TCP-passive leg whose connection goes binds its port again: the control loop still holds
 * it for the termination, but another process on the host could have taken it meanwhile. */
static void listen_again(struct leg *l)
{
    if (l->released || l->listener != NULL || l->port_addr.sa.sa_family == 0)
        return;
    int fd;
    int rc = agw_socket_bind(&l->port_addr.sa, port_addr_len(l), SOCK_STREAM, true, &fd);
    if (rc == 0)
        rc = listen_on(l, fd);
    if (rc < 0) {
        agw_log(AGW_LOG_ERROR, "context %u term %s: cannot listen on port %u again: %s",
                l->conf != NULL ? l->conf->context_id : 0, leg_name(l), port_of(l), strerror(-rc));
        post(l, AGW_LEG_FAILED, "cannot listen on port %u again: %s", port_of(l), strerror(-rc));
    }
}

/* ---- The worker's operations ---- */

static struct leg *leg_get(struct agw_relay *r, uint64_t key)
{
    struct leg *l = find(r, key);
    if (l != NULL)
        return l;
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->r = r;
    l->key = key;
    if (insert(r, l) < 0) {
        free(l);
        return NULL;
    }
    r->open_legs++;
    return l;
}

int agw_relay_new(struct agw_relay **out, uv_loop_t *loop, agw_leg_event_cb cb, void *arg)
{
    struct agw_relay *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->cap = 64;
    r->slots = calloc(r->cap, sizeof(*r->slots));
    if (r->slots == NULL) {
        free(r);
        return -ENOMEM;
    }
    r->loop = loop;
    r->cb = cb;
    r->arg = arg;
    if (agw_dc_new(&r->dc, loop, r, cb, arg) < 0) {
        free(r->slots);
        free(r);
        return -ENOMEM;
    }
    *out = r;
    return 0;
}

void agw_relay_adopt(struct agw_relay *r, uint64_t key, int fd, bool datagram, bool listening)
{
    if (datagram) {
        agw_dc_adopt(r->dc, key, fd);
        return;
    }
    struct leg *l = leg_get(r, key);
    if (l == NULL || l->listener != NULL || !listening) {
        close(fd);
        return;
    }
    socklen_t len = sizeof(l->port_addr);
    if (getsockname(fd, &l->port_addr.sa, &len) < 0 || len > sizeof(l->port_addr))
        memset(&l->port_addr, 0, sizeof(l->port_addr));
    if (listen_on(l, fd) < 0)
        agw_log(AGW_LOG_ERROR, "term %s: cannot listen on its port", leg_name(l));
}

/* The same allowed fingerprints, compared by value (hash, length, digest bytes). */
static bool same_fingerprints(const struct agw_leg_conf *a, const struct agw_leg_conf *b)
{
    if (a->n_fingerprints != b->n_fingerprints)
        return false;
    for (unsigned i = 0; i < a->n_fingerprints; i++) {
        const struct agw_tls_fingerprint *x = &a->fingerprints[i], *y = &b->fingerprints[i];
        if (x->hash != y->hash || x->len != y->len || memcmp(x->digest, y->digest, x->len) != 0)
            return false;
    }
    return true;
}

void agw_relay_configure(struct agw_relay *r, struct agw_leg_conf *conf)
{
    if (conf->datagram) {
        agw_dc_configure(r->dc, conf);
        return;
    }
    struct leg *l = leg_get(r, conf->key);
    if (l == NULL) {
        agw_leg_conf_free(conf);
        return;
    }
    struct agw_leg_conf *old = l->conf;
    l->conf = conf;
    struct leg *p = find(r, conf->peer_key);
    if (l->peer != p) {
        if (l->peer != NULL && l->peer->peer == l)
            l->peer->peer = NULL;
        l->peer = p;
    }
    if (p != NULL)
        p->peer = l;
    /* The fingerprint may arrive after the UE's handshake (terminating flow): decide now. */
    if (l->tls != NULL && conf->fingerprints_known &&
        (old == NULL || !old->fingerprints_known || !same_fingerprints(old, conf))) {
        agw_tls_session_set_fingerprints(l->tls, conf->fingerprints, conf->n_fingerprints);
        tls_process(l);
    }
    /* a=connection:new: the current connection goes, a new one may come (or is made). */
    if (old != NULL && old->connection_generation != conf->connection_generation && l->has_conn) {
        agw_log(AGW_LOG_INFO, "term %s: a=connection:new, closing the current connection",
                leg_name(l));
        drop_connection(l, false);
    }
    agw_leg_conf_free(old);
    update_idle_timer(l);
    start_connection(l);
    if (p != NULL)
        start_connection(p);
    /* Mode or peer changes may release held bytes either way. */
    if (l->connected) {
        pump(l);
        if (l->tls != NULL)
            tls_process(l);
        else
            update_reading(l);
    }
    if (p != NULL && p->connected) {
        pump(p);
        if (p->tls != NULL)
            tls_process(p);
        else
            update_reading(p);
    }
}

/* Closes every handle of a released leg; it is freed once their close callbacks ran. */
static void close_leg(struct leg *l)
{
    l->released = true;
    drop_connection(l, false);
    close_timer(l, &l->timer);
    close_timer(l, &l->idle_timer);
    close_listener(l);
    maybe_free(l);
}

static void release_leg(struct agw_relay *r, struct leg *l)
{
    erase(r, l->key);
    if (l->peer != NULL && l->peer->peer == l)
        l->peer->peer = NULL;
    l->peer = NULL;
    if (l->tls != NULL && l->verified && l->connected) {
        /* Best effort close_notify: whatever the socket takes right now. */
        agw_tls_session_close(l->tls);
        const void *data;
        size_t len;
        agw_tls_session_pending_output(l->tls, &data, &len);
        if (len > 0 && !l->writing) {
            uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
            uv_try_write((uv_stream_t *)&l->conn, &buf, 1);
        }
    }
    close_leg(l);
}

void agw_relay_release(struct agw_relay *r, uint64_t key, struct agw_leg_figures *out)
{
    if (agw_dc_has(r->dc, key)) {
        agw_dc_release(r->dc, key, out);
        return;
    }
    agw_relay_figures(r, key, out);
    struct leg *l = find(r, key);
    if (l != NULL)
        release_leg(r, l);
}

void agw_relay_figures(struct agw_relay *r, uint64_t key, struct agw_leg_figures *out)
{
    if (agw_dc_has(r->dc, key)) {
        agw_dc_figures(r->dc, key, out);
        return;
    }
    struct leg *l = find(r, key);
    memset(out, 0, sizeof(*out));
    out->octets_sent = l != NULL ? l->wire_out : 0;
    out->octets_received = l != NULL ? l->wire_in : 0;
}

int agw_relay_detach(struct agw_relay *r, uint64_t key)
{
    if (agw_dc_has(r->dc, key))
        return agw_dc_detach(r->dc, key);
    struct leg *l = find(r, key);
    if (l == NULL)
        return -1;
    /* The port goes on listening on the other worker, also when a connection held it here. */
    int fd = -1;
    uv_os_fd_t lfd;
    if (l->listener != NULL) {
        if (uv_fileno((uv_handle_t *)l->listener, &lfd) == 0)
            fd = dup(lfd);
    } else if (l->port_addr.sa.sa_family != 0) {
        int rc = agw_socket_bind(&l->port_addr.sa, port_addr_len(l), SOCK_STREAM, true, &fd);
        if (rc < 0) {
            agw_log(AGW_LOG_ERROR, "term %s: cannot listen on port %u again: %s", leg_name(l),
                    port_of(l), strerror(-rc));
            fd = -1;
        }
    }
    release_leg(r, l);
    return fd;
}

size_t agw_relay_bridge_write(struct agw_relay *r, uint64_t key, const void *data, size_t len)
{
    struct leg *l = find(r, key);
    if (l == NULL || !can_receive(l))
        return 0;
    size_t n = deliver(l, data, len);
    if (n > 0)
        note_activity(l);
    return n;
}

void agw_relay_bridge_resume(struct agw_relay *r, uint64_t key)
{
    struct leg *l = find(r, key);
    if (l == NULL || l->released)
        return;
    start_connection(l);
    if (!l->connected)
        return;
    pump(l);
    if (l->tls != NULL)
        tls_process(l);
    else
        update_reading(l);
}

void agw_relay_close(struct agw_relay *r)
{
    r->closing = true;
    agw_dc_close(r->dc);
    r->open_legs++; /* holds r while the legs go */
    for (size_t i = 0; i < r->cap; i++) {
        struct leg *l = r->slots[i];
        if (l == NULL)
            continue;
        r->slots[i] = NULL;
        l->peer = NULL;
        close_leg(l);
    }
    if (--r->open_legs == 0) {
        for (unsigned i = 0; i < r->pooled; i++)
            free(r->pool[i]);
        free(r->slots);
        free(r);
    }
}
