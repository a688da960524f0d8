/* agw-soak's peers: every session's UE (TLS or plain TCP) and core peer in one epoll loop,
 * moving bytes both ways at a steady rate and checking each one, with churn and faults. */
#define _GNU_SOURCE /* accept4 */
#include "tools/soak.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define TICK_MS 10
#define BUCKETS 100 /* slot i writes in tick i % BUCKETS: once a second, spread over the second */
#define CHUNK_MAX 16384
#define CONNECT_TIMEOUT_MS 15000
#define DRAIN_TIMEOUT_MS 10000
#define CLOSE_TIMEOUT_MS 10000
#define FAULT_TIMEOUT_MS 10000
#define HEADER_TIMEOUT_MS 10000
#define RELEASE_PHASE_MS 180000
#define PROGRESS_MS 10000
#define PENDING_MAX 1024 /* core connections not yet identified by their header */

enum tag { T_UE = 1, T_CORE, T_PENDING, T_SINK, T_QUEUE };

enum pstate {
    P_FREE,
    P_SETUP,   /* the Iq thread adds the terminations */
    P_CONNECT, /* connections, TLS handshake, the core connection identified */
    P_UP,      /* bytes both ways */
    P_FAULT,   /* a fault was injected: waiting for its outcome */
    P_DRAIN,   /* no new bytes: waiting for the ones in flight */
    P_RELEASE, /* the Iq thread subtracts */
    P_CLOSING, /* waiting for the gateway to close both connections */
};

struct peer {
    enum pstate state;
    uint64_t since; /* ms: when the state was entered */
    int ue_fd, core_fd;
    SSL *ssl;
    bool ue_connected, core_connected, handshake_done, modify_asked;
    bool ue_want_out, core_want_out;
    uint32_t ue_ev, core_ev; /* epoll events registered */
    uint64_t up_goal, up_tx, up_rx, down_goal, down_tx, down_rx;
    size_t ssl_pending; /* an SSL_write to repeat with the same length */
    uint32_t seed_up, seed_down;
    unsigned char header[SOAK_HEADER_LEN];
    bool ue_refused, notified, failed, retry;
    char cause[96];
};

struct pending {
    int fd;
    unsigned got;
    unsigned char header[SOAK_HEADER_LEN];
    uint64_t since;
};

enum phase { PH_RAMP, PH_RUN, PH_RELEASE, PH_DONE };

struct peers {
    struct soak_run *r;
    unsigned n;
    struct peer *p;
    int ep, sink_fd;
    SSL_CTX *ctx, *ctx12, *bad_ctx;
    struct pending pend[PENDING_MAX];
    uint64_t rng;
    enum phase phase;
    uint64_t phase_t0, last_progress;
    unsigned churn_cursor, fault_cursor, next_fault;
    double churn_owed;
    bool want_wrong_cert;
    uint64_t ticks, seconds_run;
    unsigned char buf[CHUNK_MAX], want[CHUNK_MAX];
};

static const unsigned char magic[4] = {'A', 'G', 'W', 'S'};

static uint64_t rnd(struct peers *pe)
{
    pe->rng ^= pe->rng << 13;
    pe->rng ^= pe->rng >> 7;
    pe->rng ^= pe->rng << 17;
    return pe->rng;
}

/* Bytes 8w..8w+7 of the stream named seed: a full mix of both, so that streams of different
 * seeds differ everywhere and no stream repeats. */
static uint64_t pattern_word(uint64_t w, uint32_t seed)
{
    uint64_t x = w * 0x9E3779B97F4A7C15ull + (uint64_t)seed * 0xD1B54A32D192ED03ull;
    x ^= x >> 32;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return x;
}

static void fill_pattern(unsigned char *out, uint64_t offset, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n;) {
        uint64_t k = offset + i;
        uint64_t w = pattern_word(k >> 3, seed);
        for (unsigned b = (unsigned)(k & 7); b < 8 && i < n; b++, i++)
            out[i] = (unsigned char)(w >> (8 * b));
    }
}

/* The upstream's bytes at offset: the header, then the pattern. */
static void fill_up(const struct peer *p, unsigned char *out, uint64_t offset, size_t n)
{
    size_t i = 0;
    for (; i < n && offset + i < SOAK_HEADER_LEN; i++)
        out[i] = p->header[offset + i];
    fill_pattern(out + i, offset + i, n - i, p->seed_up);
}

static void fill_down(const struct peer *p, unsigned char *out, uint64_t offset, size_t n)
{
    fill_pattern(out, offset, n, p->seed_down);
}

/* Epoll data: what the descriptor is, its slot, and for a session's sockets the low bits of the
 * session's generation: an event of a released session's socket, taken in the same batch as
 * the set-up of the next one in the slot, must not reach that one. */
#define TAG_SLOT_BITS 17 /* --sessions is at most 100000 */
#define TAG_GEN_MASK 0x7fffu

static uint64_t tag(enum tag t, unsigned idx, uint32_t gen)
{
    return (uint64_t)t << 32 | (uint64_t)(gen & TAG_GEN_MASK) << TAG_SLOT_BITS | idx;
}

static void watch(struct peers *pe, int fd, uint64_t data, uint32_t *current, uint32_t want)
{
    if (fd < 0 || *current == want)
        return;
    struct epoll_event ev = {.events = want, .data.u64 = data};
    int op = *current == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(pe->ep, op, fd, &ev) == 0)
        *current = want;
    else
        soak_error(pe->r, "epoll_ctl: %s", strerror(errno));
}

static void update_interest(struct peers *pe, unsigned i)
{
    struct peer *p = &pe->p[i];
    uint32_t gen = pe->r->sessions[i].gen;
    watch(pe, p->ue_fd, tag(T_UE, i, gen), &p->ue_ev,
          EPOLLIN | (!p->ue_connected || p->ue_want_out ? EPOLLOUT : 0));
    watch(pe, p->core_fd, tag(T_CORE, i, gen), &p->core_ev,
          EPOLLIN | (!p->core_connected || p->core_want_out ? EPOLLOUT : 0));
}

static void set_state(struct peers *pe, unsigned i, enum pstate s)
{
    struct peer *p = &pe->p[i];
    if (p->state == P_UP && s != P_UP)
        atomic_fetch_sub(&pe->r->stats.sessions_up, 1);
    else if (p->state != P_UP && s == P_UP)
        atomic_fetch_add(&pe->r->stats.sessions_up, 1);
    p->state = s;
    p->since = soak_now_ms();
}

static void push_job(struct peers *pe, enum soak_msg_kind kind, unsigned slot)
{
    struct soak_msg m = {.kind = kind, .slot = slot};
    if (soak_queue_push(&pe->r->to_iq, &m) < 0)
        soak_error(pe->r, "out of memory queueing a job for slot %u", slot);
}

static void close_ue(struct peer *p)
{
    SSL_free(p->ssl);
    p->ssl = NULL;
    if (p->ue_fd >= 0)
        close(p->ue_fd);
    p->ue_fd = -1;
    p->ue_ev = 0;
}

static void close_core(struct peer *p)
{
    if (p->core_fd >= 0)
        close(p->core_fd);
    p->core_fd = -1;
    p->core_ev = 0;
}

static const char *kind_name(const struct soak_session *s)
{
    return s->kind == SOAK_PLAIN ? "plain" : s->terminating ? "tls-terminating" : "tls";
}

/* Asks for the release: figures checked when every byte sent arrived (the drain). */
static void release(struct peers *pe, unsigned i, bool check_figures)
{
    struct peer *p = &pe->p[i];
    struct soak_session *s = &pe->r->sessions[i];
    s->check_figures = check_figures;
    s->up_bytes = p->up_tx;
    s->down_bytes = p->down_tx;
    set_state(pe, i, P_RELEASE);
    push_job(pe, SOAK_JOB_RELEASE, i);
}

static void check_progress(struct peers *pe, unsigned i);

/* An error on a session: counted once, its connections closed, the session released. */
static void session_fail(struct peers *pe, unsigned i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void session_fail(struct peers *pe, unsigned i, const char *fmt, ...)
{
    struct peer *p = &pe->p[i];
    struct soak_session *s = &pe->r->sessions[i];
    if (p->failed)
        return;
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    soak_error(pe->r,
               "slot %u gen %u (%s, context %u, %s): %s; up %llu/%llu/%llu down %llu/%llu/%llu", i,
               s->gen, kind_name(s), s->ctx, s->access_id, why, (unsigned long long)p->up_goal,
               (unsigned long long)p->up_tx, (unsigned long long)p->up_rx,
               (unsigned long long)p->down_goal, (unsigned long long)p->down_tx,
               (unsigned long long)p->down_rx);
    p->failed = true;
    close_ue(p);
    close_core(p);
    if (p->state == P_CLOSING)
        check_progress(pe, i);
    else if (p->state != P_RELEASE)
        release(pe, i, false);
}

/* ---- Set-up ---- */

static void start_setup(struct peers *pe, unsigned i)
{
    struct soak_session *s = &pe->r->sessions[i];
    struct peer *p = &pe->p[i];
    s->gen++;
    s->terminating = s->kind == SOAK_TLS && s->gen % 2 == 0;
    s->fault = SOAK_FAULT_NONE;
    if (pe->want_wrong_cert && s->kind == SOAK_TLS) {
        pe->want_wrong_cert = false;
        s->fault = SOAK_FAULT_WRONG_CERT;
        s->terminating = false;
        atomic_fetch_add(&pe->r->stats.faults_injected, 1);
    }
    s->check_figures = false;
    memset(p, 0, sizeof(*p));
    p->ue_fd = p->core_fd = -1;
    memcpy(p->header, magic, 4);
    uint32_t be = htonl(i);
    memcpy(p->header + 4, &be, 4);
    be = htonl(s->gen);
    memcpy(p->header + 8, &be, 4);
    p->seed_up = i * 2654435761u ^ s->gen * 40503u;
    p->seed_down = p->seed_up ^ 0x5bd1e995u;
    set_state(pe, i, P_SETUP);
    push_job(pe, SOAK_JOB_SETUP, i);
}

static int connect_to(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

static void start_connect(struct peers *pe, unsigned i)
{
    struct peer *p = &pe->p[i];
    struct soak_session *s = &pe->r->sessions[i];
    set_state(pe, i, P_CONNECT);
    p->ue_fd = connect_to(s->access_port);
    if (p->ue_fd < 0) {
        session_fail(pe, i, "UE socket: %s", strerror(-p->ue_fd));
        return;
    }
    if (s->kind == SOAK_TLS) {
        SSL_CTX *ctx = s->fault == SOAK_FAULT_WRONG_CERT ? pe->bad_ctx
                       : s->gen % 4 == 1                 ? pe->ctx12
                                                         : pe->ctx;
        p->ssl = SSL_new(ctx);
        if (p->ssl == NULL || SSL_set_fd(p->ssl, p->ue_fd) != 1) {
            session_fail(pe, i, "SSL_new failed");
            return;
        }
        SSL_set_connect_state(p->ssl);
    } else {
        p->core_fd = connect_to(s->core_port);
        if (p->core_fd < 0) {
            session_fail(pe, i, "core socket: %s", strerror(-p->core_fd));
            return;
        }
    }
    update_interest(pe, i);
}

static void maybe_up(struct peers *pe, unsigned i)
{
    struct peer *p = &pe->p[i];
    struct soak_session *s = &pe->r->sessions[i];
    if (p->state != P_CONNECT || !p->ue_connected || !p->core_connected)
        return;
    if (s->kind == SOAK_TLS && !p->handshake_done)
        return;
    set_state(pe, i, P_UP);
}

/* ---- Writing ---- */

static void flush_up(struct peers *pe, unsigned i)
{
    struct peer *p = &pe->p[i];
    if (p->ue_fd < 0 || !p->ue_connected || (p->ssl != NULL && !p->handshake_done))
        return;
    p->ue_want_out = false;
    while (p->up_tx < p->up_goal) {
        size_t n = p->ssl_pending != 0                 ? p->ssl_pending
                   : p->up_goal - p->up_tx < CHUNK_MAX ? (size_t)(p->up_goal - p->up_tx)
                                                       : CHUNK_MAX;
        fill_up(p, pe->buf, p->up_tx, n);
        if (p->ssl != NULL) {
            size_t w = 0;
            int rc = SSL_write_ex(p->ssl, pe->buf, n, &w);
            if (rc == 1) {
                p->up_tx += w;
                p->ssl_pending = 0;
                continue;
            }
            int e = SSL_get_error(p->ssl, rc);
            ERR_clear_error();
            p->ssl_pending = n;
            if (e == SSL_ERROR_WANT_WRITE)
                p->ue_want_out = true;
            else if (e != SSL_ERROR_WANT_READ)
                session_fail(pe, i, "UE: TLS write failed (error %d)", e);
            return;
        }
        ssize_t w = send(p->ue_fd, pe->buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p->up_tx += (uint64_t)w;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            p->ue_want_out = true;
        else
            session_fail(pe, i, "UE: send: %s", strerror(errno));
        return;
    }
}

static void flush_down(struct peers *pe, unsigned i)
{
    struct peer *p = &pe->p[i];
    if (p->core_fd < 0 || !p->core_connected)
        return;
    p->core_want_out = false;
    while (p->down_tx < p->down_goal) {
        size_t n =
            p->down_goal - p->down_tx < CHUNK_MAX ? (size_t)(p->down_goal - p->down_tx) : CHUNK_MAX;
        fill_down(p, pe->buf, p->down_tx, n);
        ssize_t w = send(p->core_fd, pe->buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p->down_tx += (uint64_t)w;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            p->core_want_out = true;
        else
            session_fail(pe, i, "core: send: %s", strerror(errno));
        return;
    }
}

/* ---- Reading ---- */

static void check_wrong_cert(struct peers *pe, unsigned i);

/* A stream ended: expected once the Subtract is under way, and for some faults. */
static void stream_ended(struct peers *pe, unsigned i, bool ue, const char *how)
{
    struct peer *p = &pe->p[i];
    struct soak_session *s = &pe->r->sessions[i];
    if (ue)
        close_ue(p);
    else
        close_core(p);
    if (p->state == P_RELEASE || p->state == P_CLOSING)
        return;
    if (ue && s->fault == SOAK_FAULT_WRONG_CERT && p->state == P_CONNECT) {
        p->ue_refused = true;
        check_wrong_cert(pe, i);
        return;
    }
    if (!ue && s->fault == SOAK_FAULT_UE_RESET && p->state == P_FAULT) {
        atomic_fetch_add(&pe->r->stats.faults_ok, 1);
        release(pe, i, false);
        return;
    }
    session_fail(pe, i, "the %s connection ended (%s) while %s", ue ? "UE" : "core", how,
                 p->state == P_UP      ? "relaying"
                 : p->state == P_DRAIN ? "draining"
                                       : "setting up");
}

/* Checks n received bytes against what was sent: no more than that, and the same. */
static bool check_received(struct peers *pe, unsigned i, bool at_ue, const unsigned char *data,
                           size_t n)
{
    struct peer *p = &pe->p[i];
    uint64_t rx = at_ue ? p->down_rx : p->up_rx, tx = at_ue ? p->down_tx : p->up_tx;
    if (rx + n > tx) {
        session_fail(pe, i, "the %s got %zu bytes at offset %llu, only %llu were sent",
                     at_ue ? "UE" : "core", n, (unsigned long long)rx, (unsigned long long)tx);
        return false;
    }
    if (at_ue)
        fill_down(p, pe->want, rx, n);
    else
        fill_up(p, pe->want, rx, n);
    if (memcmp(data, pe->want, n) != 0) {
        size_t k = 0;
        while (data[k] == pe->want[k])
            k++;
        session_fail(pe, i, "wrong byte at the %s, offset %llu: %02x instead of %02x",
                     at_ue ? "UE" : "core", (unsigned long long)(rx + k), data[k], pe->want[k]);
        return false;
    }
    if (at_ue) {
        p->down_rx += n;
        atomic_fetch_add(&pe->r->stats.down_verified, n);
    } else {
        p->up_rx += n;
        atomic_fetch_add(&pe->r->stats.up_verified, n);
    }
    return true;
}

static void read_ue(struct peers *pe, unsigned i)
{
    struct peer *p = &pe->p[i];
    unsigned char data[CHUNK_MAX];
    while (p->ue_fd >= 0) {
        size_t n = 0;
        if (p->ssl != NULL) {
            int rc = SSL_read_ex(p->ssl, data, sizeof(data), &n);
            if (rc != 1) {
                int e = SSL_get_error(p->ssl, rc);
                unsigned long why = ERR_peek_error();
                ERR_clear_error();
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                    return;
                char how[128];
                if (e == SSL_ERROR_ZERO_RETURN)
                    snprintf(how, sizeof(how), "close_notify");
                else if (why != 0)
                    snprintf(how, sizeof(how), "%s", ERR_reason_error_string(why));
                else
                    snprintf(how, sizeof(how), "TLS error %d, errno %d", e, errno);
                stream_ended(pe, i, true, how);
                return;
            }
        } else {
            ssize_t k = recv(p->ue_fd, data, sizeof(data), MSG_DONTWAIT);
            if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return;
            if (k <= 0) {
                stream_ended(pe, i, true, k == 0 ? "end of stream" : strerror(errno));
                return;
            }
            n = (size_t)k;
        }
        if (!check_received(pe, i, true, data, n))
            return;
    }
}

static void read_core(struct peers *pe, unsigned i)
{
    struct peer *p = &pe->p[i];
    unsigned char data[CHUNK_MAX];
    while (p->core_fd >= 0) {
        ssize_t k = recv(p->core_fd, data, sizeof(data), MSG_DONTWAIT);
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (k <= 0) {
            stream_ended(pe, i, false, k == 0 ? "end of stream" : strerror(errno));
            return;
        }
        if (!check_received(pe, i, false, data, (size_t)k))
            return;
    }
}

/* ---- Drain, release, close ---- */

static void check_progress(struct peers *pe, unsigned i)
{
    struct peer *p = &pe->p[i];
    if (p->state == P_DRAIN && p->up_tx == p->up_goal && p->up_rx == p->up_goal &&
        p->down_tx == p->down_goal && p->down_rx == p->down_goal)
        release(pe, i, true);
    if (p->state == P_CLOSING && p->ue_fd < 0 && p->core_fd < 0) {
        struct soak_session *s = &pe->r->sessions[i];
        if (s->fault == SOAK_FAULT_ABRUPT && !p->failed)
            atomic_fetch_add(&pe->r->stats.faults_ok, 1);
        set_state(pe, i, P_FREE);
        if (pe->phase == PH_RAMP || pe->phase == PH_RUN)
            start_setup(pe, i);
    }
}

static void start_drain(struct peers *pe, unsigned i)
{
    set_state(pe, i, P_DRAIN);
    check_progress(pe, i);
}

/* ---- Events ---- */

static void ue_handshake(struct peers *pe, unsigned i)
{
    struct peer *p = &pe->p[i];
    struct soak_session *s = &pe->r->sessions[i];
    int rc = SSL_do_handshake(p->ssl);
    if (rc == 1) {
        p->handshake_done = true;
        pe->r->stats.handshakes++;
        if (s->fault == SOAK_FAULT_WRONG_CERT)
            return; /* TLS 1.3: the refusal comes after the client's Finished */
        X509 *cert = SSL_get1_peer_certificate(p->ssl);
        int v = cert != NULL ? agw_tls_fingerprint_verify(cert, &s->gateway_fp, 1) : -EINVAL;
        X509_free(cert);
        if (v != 0) {
            session_fail(pe, i, "the gateway's certificate is not the one its Add reply named");
            return;
        }
        p->up_goal = SOAK_HEADER_LEN;
        return;
    }
    int e = SSL_get_error(p->ssl, rc);
    unsigned long why = ERR_peek_error();
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ) {
        /* The ClientHello is out: the gateway holds it until the Modify brings our fingerprint. */
        if (s->terminating && !p->modify_asked) {
            p->modify_asked = true;
            pe->r->stats.held_handshakes++;
            push_job(pe, SOAK_JOB_MODIFY, i);
        }
        return;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        p->ue_want_out = true;
        return;
    }
    stream_ended(pe, i, true, why != 0 ? ERR_reason_error_string(why) : "TLS handshake failed");
}

static int socket_error(int fd)
{
    int e = 0;
    socklen_t len = sizeof(e);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
        return errno;
    return e;
}

static void on_ue(struct peers *pe, unsigned i, uint32_t events)
{
    struct peer *p = &pe->p[i];
    struct soak_session *s = &pe->r->sessions[i];
    if (p->ue_fd < 0)
        return;
    if (!p->ue_connected) {
        if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0)
            return;
        int e = socket_error(p->ue_fd);
        if (e != 0) {
            session_fail(pe, i, "UE connect: %s", strerror(e));
            return;
        }
        p->ue_connected = true;
        if (s->kind == SOAK_PLAIN)
            p->up_goal = SOAK_HEADER_LEN;
    }
    if (p->ssl != NULL && !p->handshake_done) {
        ue_handshake(pe, i);
        if (p->ue_fd < 0 || !p->handshake_done) {
            update_interest(pe, i);
            return;
        }
    }
    flush_up(pe, i);
    read_ue(pe, i);
    maybe_up(pe, i);
    check_progress(pe, i);
    update_interest(pe, i);
}

static void on_core(struct peers *pe, unsigned i, uint32_t events)
{
    struct peer *p = &pe->p[i];
    if (p->core_fd < 0)
        return;
    if (!p->core_connected) {
        if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0)
            return;
        int e = socket_error(p->core_fd);
        if (e != 0) {
            session_fail(pe, i, "core connect: %s", strerror(e));
            return;
        }
        p->core_connected = true;
    }
    flush_down(pe, i);
    read_core(pe, i);
    maybe_up(pe, i);
    check_progress(pe, i);
    update_interest(pe, i);
}

static void on_sink(struct peers *pe)
{
    for (;;) {
        int fd = accept4(pe->sink_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == EINTR || e == ECONNABORTED)
                continue;
            if (e != EAGAIN && e != EWOULDBLOCK)
                soak_error(pe->r, "sink: accept: %s", strerror(e));
            return;
        }
        unsigned k = 0;
        while (k < PENDING_MAX && pe->pend[k].fd >= 0)
            k++;
        if (k == PENDING_MAX) {
            soak_error(pe->r, "sink: more than %d connections without a header", PENDING_MAX);
            close(fd);
            continue;
        }
        pe->pend[k] = (struct pending){.fd = fd, .since = soak_now_ms()};
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag(T_PENDING, k, 0)};
        if (epoll_ctl(pe->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            soak_error(pe->r, "epoll_ctl: %s", strerror(errno));
            close(fd);
            pe->pend[k].fd = -1;
        }
    }
}

/* A connection the gateway made to the sink: its header names the session it belongs to. */
static void on_pending(struct peers *pe, unsigned k)
{
    struct pending *c = &pe->pend[k];
    ssize_t n = recv(c->fd, c->header + c->got, SOAK_HEADER_LEN - c->got, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0) {
        soak_error(pe->r, "sink: a connection ended before its header (%s)",
                   n == 0 ? "end of stream" : strerror(errno));
        close(c->fd);
        c->fd = -1;
        return;
    }
    c->got += (unsigned)n;
    if (c->got < SOAK_HEADER_LEN)
        return;
    uint32_t slot, gen;
    memcpy(&slot, c->header + 4, 4);
    memcpy(&gen, c->header + 8, 4);
    slot = ntohl(slot);
    gen = ntohl(gen);
    int fd = c->fd;
    c->fd = -1;
    struct peer *p = slot < pe->n ? &pe->p[slot] : NULL;
    struct soak_session *s = p != NULL ? &pe->r->sessions[slot] : NULL;
    if (p == NULL || memcmp(c->header, magic, 4) != 0 || s->gen != gen || s->kind != SOAK_TLS ||
        p->state != P_CONNECT || p->core_fd >= 0 || s->fault == SOAK_FAULT_WRONG_CERT) {
        soak_error(pe->r,
                   "sink: a connection with header %02x%02x%02x%02x slot %u gen %u that "
                   "no session waits for",
                   c->header[0], c->header[1], c->header[2], c->header[3], slot, gen);
        close(fd);
        return;
    }
    p->core_fd = fd;
    p->core_connected = true;
    p->up_rx = SOAK_HEADER_LEN;
    atomic_fetch_add(&pe->r->stats.up_verified, SOAK_HEADER_LEN);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag(T_CORE, slot, gen)};
    if (epoll_ctl(pe->ep, EPOLL_CTL_MOD, fd, &ev) < 0) {
        session_fail(pe, slot, "epoll_ctl: %s", strerror(errno));
        return;
    }
    p->core_ev = EPOLLIN;
    on_core(pe, slot, EPOLLIN);
}

/* ---- Messages from the Iq thread ---- */

static void check_wrong_cert(struct peers *pe, unsigned i)
{
    struct peer *p = &pe->p[i];
    if (p->state != P_CONNECT || !p->ue_refused || !p->notified)
        return;
    if (strstr(p->cause, "fingerprint mismatch") == NULL) {
        session_fail(pe, i, "wrong certificate refused with the cause \"%s\"", p->cause);
        return;
    }
    if (p->core_fd >= 0) {
        session_fail(pe, i, "wrong certificate refused, but the core was connected");
        return;
    }
    atomic_fetch_add(&pe->r->stats.faults_ok, 1);
    close_ue(p);
    release(pe, i, false);
}

static void on_message(struct peers *pe, const struct soak_msg *m)
{
    unsigned i = m->slot;
    struct peer *p = &pe->p[i];
    struct soak_session *s = &pe->r->sessions[i];
    switch (m->kind) {
    case SOAK_DONE_SETUP:
        if (m->status < 0) {
            atomic_fetch_add(&pe->r->stats.setup_failures, 1);
            soak_error(pe->r, "slot %u gen %u (%s): set-up failed: %s", i, s->gen, kind_name(s),
                       m->text);
            if (s->fault == SOAK_FAULT_WRONG_CERT)
                pe->want_wrong_cert = true; /* the fault goes to the next set-up */
            set_state(pe, i, P_FREE);
            p->retry = true; /* in a second */
            return;
        }
        atomic_fetch_add(&pe->r->stats.setups, 1);
        start_connect(pe, i);
        return;
    case SOAK_DONE_MODIFY:
        if (m->status < 0 && p->state != P_RELEASE && p->state != P_CLOSING)
            session_fail(pe, i, "Modify with the UE's fingerprint failed: %s", m->text);
        return;
    case SOAK_DONE_RELEASE:
        atomic_fetch_add(&pe->r->stats.releases, 1);
        if (m->status < 0)
            soak_error(pe->r, "slot %u gen %u (%s, context %u): Subtract: %s", i, s->gen,
                       kind_name(s), s->ctx, m->text);
        set_state(pe, i, P_CLOSING);
        check_progress(pe, i);
        return;
    case SOAK_NOTIFIED:
        if (p->failed)
            return; /* our own doing: the connections were cut on the error */
        if (s->fault == SOAK_FAULT_NONE) {
            session_fail(pe, i, "Notify with cause \"%s\"", m->text);
            return;
        }
        p->notified = true;
        snprintf(p->cause, sizeof(p->cause), "%.95s", m->text);
        if (s->fault == SOAK_FAULT_WRONG_CERT)
            check_wrong_cert(pe, i);
        return;
    default:
        return;
    }
}

static void on_queue(struct peers *pe)
{
    uint64_t v;
    if (read(pe->r->to_peers.efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        soak_error(pe->r, "eventfd: %s", strerror(errno));
    struct soak_msg m;
    while (soak_queue_pop(&pe->r->to_peers, &m))
        on_message(pe, &m);
}

/* ---- Faults ---- */

/* The next session in the relaying state from *cursor on, matching kind (-1: any). */
static int pick_up(struct peers *pe, unsigned *cursor, int kind)
{
    for (unsigned k = 0; k < pe->n; k++) {
        unsigned i = (*cursor + k) % pe->n;
        struct soak_session *s = &pe->r->sessions[i];
        if (pe->p[i].state == P_UP && s->fault == SOAK_FAULT_NONE &&
            (kind < 0 || (int)s->kind == kind)) {
            *cursor = (i + 1) % pe->n;
            return (int)i;
        }
    }
    return -1;
}

static void inject_fault(struct peers *pe)
{
    enum soak_fault f = (enum soak_fault)(1 + pe->next_fault % (SOAK_FAULTS - 1));
    pe->next_fault++;
    if (f == SOAK_FAULT_WRONG_CERT) {
        pe->want_wrong_cert = true; /* the next TLS set-up */
        return;
    }
    int i = pick_up(pe, &pe->fault_cursor, f == SOAK_FAULT_UE_RESET ? SOAK_TLS : -1);
    if (i < 0)
        return;
    struct peer *p = &pe->p[i];
    pe->r->sessions[i].fault = f;
    atomic_fetch_add(&pe->r->stats.faults_injected, 1);
    if (f == SOAK_FAULT_UE_RESET) {
        struct linger lg = {1, 0};
        setsockopt(p->ue_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close_ue(p);
        set_state(pe, (unsigned)i, P_FAULT);
    } else {
        release(pe, (unsigned)i, false);
    }
}

/* ---- Once a second ---- */

static void check_timeouts(struct peers *pe, uint64_t now)
{
    for (unsigned i = 0; i < pe->n; i++) {
        struct peer *p = &pe->p[i];
        struct soak_session *s = &pe->r->sessions[i];
        uint64_t age = now - p->since;
        switch (p->state) {
        case P_FREE:
            if (p->retry && age >= 1000 && (pe->phase == PH_RAMP || pe->phase == PH_RUN))
                start_setup(pe, i);
            break;
        case P_CONNECT:
            if (s->fault == SOAK_FAULT_WRONG_CERT && age > FAULT_TIMEOUT_MS)
                session_fail(pe, i, "wrong certificate: %s%s", p->ue_refused ? "" : "not refused",
                             p->notified ? "" : " no Notify");
            else if (age > CONNECT_TIMEOUT_MS)
                session_fail(pe, i, "not up after %d s: UE %s%s, core %s",
                             CONNECT_TIMEOUT_MS / 1000,
                             p->ue_connected ? "connected" : "not connected",
                             s->kind == SOAK_TLS && !p->handshake_done ? ", no TLS" : "",
                             p->core_connected ? "connected" : "not connected");
            break;
        case P_FAULT:
            if (age > FAULT_TIMEOUT_MS)
                session_fail(pe, i, "UE reset: the core connection stayed open");
            break;
        case P_DRAIN:
            if (age > DRAIN_TIMEOUT_MS)
                session_fail(pe, i, "bytes did not arrive within %d s", DRAIN_TIMEOUT_MS / 1000);
            break;
        case P_CLOSING:
            if (age > CLOSE_TIMEOUT_MS) {
                soak_error(pe->r,
                           "slot %u gen %u (%s, context %u): %s%s open %d s after the "
                           "Subtract",
                           i, s->gen, kind_name(s), s->ctx, p->ue_fd >= 0 ? "UE " : "",
                           p->core_fd >= 0 ? "core" : "", CLOSE_TIMEOUT_MS / 1000);
                p->failed = true;
                close_ue(p);
                close_core(p);
                check_progress(pe, i);
            }
            break;
        default:
            break;
        }
    }
    for (unsigned k = 0; k < PENDING_MAX; k++) {
        if (pe->pend[k].fd >= 0 && now - pe->pend[k].since > HEADER_TIMEOUT_MS) {
            soak_error(pe->r, "sink: no header within %d s", HEADER_TIMEOUT_MS / 1000);
            close(pe->pend[k].fd);
            pe->pend[k].fd = -1;
        }
    }
}

static unsigned count_state(struct peers *pe, enum pstate s)
{
    unsigned n = 0;
    for (unsigned i = 0; i < pe->n; i++)
        n += pe->p[i].state == s;
    return n;
}

static void each_second(struct peers *pe, soak_progress_cb progress)
{
    struct soak_run *r = pe->r;
    uint64_t now = soak_now_ms();
    check_timeouts(pe, now);
    if (pe->phase == PH_RAMP) {
        unsigned up = atomic_load(&r->stats.sessions_up), dc = atomic_load(&r->stats.dc_up);
        bool late = now - pe->phase_t0 > (uint64_t)r->cfg->ramp_seconds * 1000;
        if ((up == pe->n && dc == r->cfg->dc_sessions) || late) {
            if (late)
                soak_error(r, "only %u of %u sessions and %u of %u data channels up after %u s", up,
                           pe->n, dc, r->cfg->dc_sessions, r->cfg->ramp_seconds);
            progress(r, "ramp", true);
            pe->phase = PH_RUN;
            atomic_store(&r->phase, SOAK_RUN);
            pe->phase_t0 = pe->last_progress = now;
        }
    } else if (pe->phase == PH_RUN) {
        pe->seconds_run++;
        pe->churn_owed += pe->n * r->cfg->churn_percent / 100.0 / 10.0;
        for (; pe->churn_owed >= 1; pe->churn_owed -= 1) {
            int i = pick_up(pe, &pe->churn_cursor, -1);
            if (i >= 0)
                start_drain(pe, (unsigned)i);
        }
        if (r->cfg->fault_every > 0 && pe->seconds_run % r->cfg->fault_every == 0)
            inject_fault(pe);
        if (now - pe->phase_t0 >= (uint64_t)r->cfg->seconds * 1000) {
            progress(r, "run", true);
            pe->phase = PH_RELEASE;
            atomic_store(&r->phase, SOAK_RELEASE);
            pe->phase_t0 = pe->last_progress = now;
            pe->want_wrong_cert = false;
            for (unsigned i = 0; i < pe->n; i++)
                if (pe->p[i].state == P_UP)
                    start_drain(pe, i);
        }
    } else if (pe->phase == PH_RELEASE) {
        if (count_state(pe, P_FREE) == pe->n && atomic_load(&r->dc_idle)) {
            progress(r, "release", true);
            pe->phase = PH_DONE;
            return;
        }
        if (now - pe->phase_t0 > RELEASE_PHASE_MS) {
            soak_error(r, "%u sessions not released after %d s%s", pe->n - count_state(pe, P_FREE),
                       RELEASE_PHASE_MS / 1000,
                       atomic_load(&r->dc_idle) ? "" : ", data channels neither");
            progress(r, "release", true);
            pe->phase = PH_DONE;
            return;
        }
        for (unsigned i = 0; i < pe->n; i++)
            if (pe->p[i].state == P_UP)
                start_drain(pe, i); /* came up after the run ended */
    }
    if (now - pe->last_progress >= PROGRESS_MS) {
        pe->last_progress = now;
        progress(r, pe->phase == PH_RAMP ? "ramp" : pe->phase == PH_RUN ? "run" : "release", false);
    }
}

/* Every session writes once a second, in its tick: a chunk of about rate bytes each way. */
static void on_tick(struct peers *pe)
{
    unsigned rate = pe->r->cfg->rate;
    for (unsigned i = (unsigned)(pe->ticks % BUCKETS); i < pe->n; i += BUCKETS) {
        struct peer *p = &pe->p[i];
        if (p->state != P_UP || rate == 0)
            continue;
        p->up_goal += rate / 2 + rnd(pe) % (rate + 1);
        p->down_goal += rate / 2 + rnd(pe) % (rate + 1);
        flush_up(pe, i);
        flush_down(pe, i);
        update_interest(pe, i);
    }
    pe->ticks++;
}

/* ---- Set-up and the loop ---- */

static int accept_any(int ok, X509_STORE_CTX *x)
{
    (void)ok;
    (void)x;
    return 1; /* checked against the Add reply's a=fingerprint after the handshake */
}

static SSL_CTX *make_ctx(struct agw_tls_identity *id, int max_version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || SSL_CTX_use_certificate(ctx, agw_tls_identity_cert(id)) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, agw_tls_identity_key(id)) != 1 ||
        (max_version != 0 && SSL_CTX_set_max_proto_version(ctx, max_version) != 1)) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ctx;
}

static void peers_free(struct peers *pe)
{
    for (unsigned i = 0; pe->p != NULL && i < pe->n; i++) {
        close_ue(&pe->p[i]);
        close_core(&pe->p[i]);
    }
    for (unsigned k = 0; k < PENDING_MAX; k++)
        if (pe->pend[k].fd >= 0)
            close(pe->pend[k].fd);
    if (pe->ep >= 0)
        close(pe->ep);
    if (pe->sink_fd >= 0)
        close(pe->sink_fd);
    SSL_CTX_free(pe->ctx);
    SSL_CTX_free(pe->ctx12);
    SSL_CTX_free(pe->bad_ctx);
    free(pe->p);
    free(pe);
}

static int sink_listen(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

int soak_peers_run(struct soak_run *r, soak_progress_cb progress)
{
    struct peers *pe = calloc(1, sizeof(*pe));
    if (pe == NULL)
        return -1;
    pe->r = r;
    pe->n = r->cfg->sessions;
    pe->ep = pe->sink_fd = -1;
    pe->rng = 0x2545F4914F6CDD1Dull ^ (uint64_t)getpid();
    for (unsigned k = 0; k < PENDING_MAX; k++)
        pe->pend[k].fd = -1;
    pe->p = calloc(pe->n, sizeof(*pe->p));
    pe->ctx = make_ctx(r->ue, 0);
    pe->ctx12 = make_ctx(r->ue, TLS1_2_VERSION);
    pe->bad_ctx = make_ctx(r->intruder, 0);
    pe->ep = epoll_create1(EPOLL_CLOEXEC);
    pe->sink_fd = sink_listen(&r->sink_port);
    if (pe->p == NULL || pe->ctx == NULL || pe->ctx12 == NULL || pe->bad_ctx == NULL ||
        pe->ep < 0 || pe->sink_fd < 0) {
        fprintf(stderr, "agw-soak: cannot set the peers up (memory, TLS, epoll or the sink)\n");
        peers_free(pe);
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag(T_SINK, 0, 0)};
    epoll_ctl(pe->ep, EPOLL_CTL_ADD, pe->sink_fd, &ev);
    ev.data.u64 = tag(T_QUEUE, 0, 0);
    epoll_ctl(pe->ep, EPOLL_CTL_ADD, r->to_peers.efd, &ev);
    for (unsigned i = 0; i < pe->n; i++) {
        struct soak_session *s = &r->sessions[i];
        s->slot = i;
        /* Spread the kinds over the ticks: i * 37 mod 100 runs through every residue. */
        s->kind = (i * 37) % 100 < r->cfg->tls_percent ? SOAK_TLS : SOAK_PLAIN;
        pe->p[i].ue_fd = pe->p[i].core_fd = -1;
        start_setup(pe, i);
    }
    pe->phase = PH_RAMP;
    atomic_store(&r->phase, SOAK_RAMP);
    pe->phase_t0 = pe->last_progress = soak_now_ms();
    uint64_t next_tick = soak_now_ms() + TICK_MS, next_second = soak_now_ms() + 1000;
    struct epoll_event evs[256];
    while (pe->phase != PH_DONE && !atomic_load(&r->abort)) {
        uint64_t now = soak_now_ms();
        int wait = next_tick > now ? (int)(next_tick - now) : 0;
        int n = epoll_wait(pe->ep, evs, 256, wait);
        if (n < 0 && errno != EINTR) {
            soak_error(r, "epoll_wait: %s", strerror(errno));
            break;
        }
        for (int k = 0; k < n; k++) {
            uint64_t data = evs[k].data.u64;
            unsigned idx = (unsigned)(data & ((1u << TAG_SLOT_BITS) - 1));
            uint32_t gen = (uint32_t)(data >> TAG_SLOT_BITS) & TAG_GEN_MASK;
            enum tag t = (enum tag)(data >> 32);
            if ((t == T_UE || t == T_CORE) && gen != (r->sessions[idx].gen & TAG_GEN_MASK))
                continue; /* the socket of a released session */
            switch (t) {
            case T_UE:
                on_ue(pe, idx, evs[k].events);
                break;
            case T_CORE:
                on_core(pe, idx, evs[k].events);
                break;
            case T_PENDING:
                if (pe->pend[idx].fd >= 0)
                    on_pending(pe, idx);
                break;
            case T_SINK:
                on_sink(pe);
                break;
            case T_QUEUE:
                on_queue(pe);
                break;
            }
        }
        now = soak_now_ms();
        for (; next_tick <= now; next_tick += TICK_MS)
            on_tick(pe);
        if (now >= next_second) {
            next_second += 1000;
            each_second(pe, progress);
        }
    }
    atomic_store(&r->phase, SOAK_DONE);
    peers_free(pe);
    return 0;
}
