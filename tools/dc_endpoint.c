/* Data-channel endpoints for tests and tools: one thread runs UDP, DTLS, usrsctp and DCEP. */
#include "tools/dc_endpoint.h"

#include "agw/stun.h"
#include "sctp/assoc.h"
#include "sctp/dcep.h"
#include "tls/dtls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define DATAGRAM_MAX 65536
#define READ_BURST 64 /* datagrams read from one socket before the others get a turn */
#define SOCKET_BUFFER (4 << 20)
#define EVENT_COST 64     /* queue bytes counted for an event without data */
#define FINISH_TRIES 1000 /* usrsctp frees closed sockets from its timers: ticks to wait */

/* Threads: the net thread alone calls agw_sctp_ and agw_dtls_ functions and touches the fields
   marked "net"; the fields marked "mu" are shared under net->mu, written by the net thread and
   read by callers (the event queue is written by both). */

enum ch_state { CH_FREE, CH_OPENING, CH_OPEN, CH_CLOSING, CH_CLOSED };

struct channel {
    uint8_t state; /* mu: enum ch_state */
    uint8_t type;  /* net: the DCEP channel type */
    uint32_t reliability;
    bool ours; /* net: we sent the OPEN and wait for its ACK */
    bool ours_reset, peer_reset;
    uint8_t *ctrl; /* net: a DCEP message waiting for room in the send buffer */
    size_t ctrl_len;
};

struct evnode {
    struct evnode *next;
    struct dc_event ev;
    size_t cost;
};

struct dc_endpoint {
    struct dc_net *net;
    struct dc_endpoint *next; /* net: the net thread's list */
    /* fixed at creation */
    int fd;
    uint16_t port;
    bool dtls;
    enum agw_tls_role role;
    struct agw_tls_identity *id;
    uint16_t sctp_port, peer_sctp_port;
    size_t max_message_size, peer_max_message_size;
    size_t ev_max;
    uint16_t n_ch;
    struct channel *ch;
    /* net */
    struct sockaddr_storage remote;
    socklen_t remote_len;
    bool has_remote;
    struct agw_tls_fingerprint fps[AGW_TLS_FINGERPRINTS_MAX];
    size_t n_fps;
    struct agw_dtls_session *dtls_s;
    struct agw_sctp_assoc *assoc;
    uint16_t streams; /* usable stream ids once up */
    /* ICE (controlling full agent toward an ICE-lite peer): the peer's credentials and ours */
    bool ice, ice_ok;
    char ice_peer_ufrag[AGW_ICE_TEXT_MAX + 1], ice_peer_pwd[AGW_ICE_TEXT_MAX + 1];
    char ice_ufrag[AGW_ICE_TEXT_MAX + 1];
    uint64_t ice_next_ms;
    bool ctrl_pending;
    struct dc_endpoint_stats st;
    /* mu */
    bool up;
    int error;
    char failure[128];
    uint64_t writable_gen;
    struct evnode *ev_head, *ev_tail;
    size_t ev_bytes;
    bool rx_blocked;
};

struct cmd;
typedef int cmd_fn(struct dc_endpoint *ep, struct cmd *c);

/* A request to the net thread, on the caller's stack until done. */
struct cmd {
    struct cmd *next;
    cmd_fn *fn;
    struct dc_endpoint *ep;
    const void *data;
    size_t len;
    uint16_t stream;
    bool binary;
    void *out;
    int result;
    uint64_t gen; /* writable_gen when a send found the buffer full */
    bool done;
};

struct dc_net {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast on every change a caller may wait for */
    int wake_fd;
    bool stopping;                   /* mu */
    struct cmd *cmd_head, *cmd_tail; /* mu */
    struct agw_dtls_ctx *dtls_ctx;   /* mu: made by the first DTLS endpoint */
    struct dc_endpoint *eps;         /* net */
    size_t n_eps;                    /* net */
    uint64_t last_tick;              /* net */
    uint8_t buf[DATAGRAM_MAX];       /* net */
};

#define ICE_CHECK_MS 50 /* between connectivity checks until one succeeds */
#define ICE_CONSENT_MS                                                                             \
    1000 /* between consent checks afterwards (RFC 7675: 4 to 6 s; tests                           \
           run the gateway with a short consent timeout) */

static atomic_bool net_running;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void wake(struct dc_net *n)
{
    uint64_t one = 1;
    ssize_t rc = write(n->wake_fd, &one, sizeof(one));
    (void)rc; /* a full counter still wakes the thread */
}

/* An absolute CLOCK_MONOTONIC time (the clock n->cv waits with); tv_sec -1: none. */
static struct timespec deadline_of(int timeout_ms)
{
    struct timespec ts = {.tv_sec = -1};
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
    }
    return ts;
}

/* Waits on n->cv (mu held); false once the deadline passed. */
static bool wait_until(struct dc_net *n, const struct timespec *deadline)
{
    if (deadline->tv_sec < 0)
        return pthread_cond_wait(&n->cv, &n->mu) == 0;
    return pthread_cond_timedwait(&n->cv, &n->mu, deadline) != ETIMEDOUT;
}

/* ---- events (net thread side) ---- */

static void push_event(struct dc_endpoint *ep, struct dc_event *ev, size_t cost)
{
    struct evnode *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        dc_event_clear(ev);
        ep->st.messages_dropped++;
        return;
    }
    e->ev = *ev;
    e->cost = cost;
    pthread_mutex_lock(&ep->net->mu);
    if (ep->ev_tail != NULL)
        ep->ev_tail->next = e;
    else
        ep->ev_head = e;
    ep->ev_tail = e;
    ep->ev_bytes += cost;
    pthread_cond_broadcast(&ep->net->cv);
    pthread_mutex_unlock(&ep->net->mu);
}

/* The first failure ends the endpoint: later ones are consequences. */
static void set_failure(struct dc_endpoint *ep, int error, const char *text)
{
    pthread_mutex_lock(&ep->net->mu);
    bool first = ep->error == 0;
    if (first) {
        ep->error = error;
        snprintf(ep->failure, sizeof(ep->failure), "%s", text);
        pthread_cond_broadcast(&ep->net->cv);
    }
    pthread_mutex_unlock(&ep->net->mu);
    if (first) {
        struct dc_event ev = {.type = DC_EVENT_DOWN, .error = error};
        push_event(ep, &ev, EVENT_COST);
    }
}

static void set_channel_state(struct dc_endpoint *ep, uint16_t stream, enum ch_state state)
{
    pthread_mutex_lock(&ep->net->mu);
    ep->ch[stream].state = (uint8_t)state;
    pthread_cond_broadcast(&ep->net->cv);
    pthread_mutex_unlock(&ep->net->mu);
}

static void release_channel(struct dc_endpoint *ep, uint16_t stream)
{
    struct channel *c = &ep->ch[stream];
    free(c->ctrl);
    *c = (struct channel){.state = c->state}; /* callers read state under mu only */
    set_channel_state(ep, stream, CH_FREE);
}

/* ---- output ---- */

static void send_udp(struct dc_endpoint *ep, const void *data, size_t len)
{
    if (!ep->has_remote)
        return;
    ssize_t n = sendto(ep->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL,
                       (const struct sockaddr *)&ep->remote, ep->remote_len);
    if (n == (ssize_t)len)
        ep->st.datagrams_out++;
    else
        ep->st.datagrams_dropped++; /* a full socket buffer is a loss: SCTP repairs it */
}

static bool drain_dtls(struct dc_endpoint *ep)
{
    const uint8_t *d;
    size_t len;
    bool moved = false;
    while (ep->dtls_s != NULL && agw_dtls_session_pending_output(ep->dtls_s, &d, &len) == 1) {
        send_udp(ep, d, len);
        moved = true;
    }
    return moved;
}

static bool drain_sctp(struct dc_endpoint *ep)
{
    const uint8_t *pkt;
    size_t len;
    bool moved = false;
    while (ep->assoc != NULL && agw_sctp_assoc_pending_output(ep->assoc, &pkt, &len) == 1) {
        moved = true;
        if (!ep->dtls)
            send_udp(ep, pkt, len);
        else if (agw_dtls_session_write(ep->dtls_s, pkt, len) == 0)
            drain_dtls(ep);
    }
    return moved;
}

/* DCEP messages go ordered and reliably (RFC 8832 §6), ahead of any data on their stream. */
static void flush_ctrl(struct dc_endpoint *ep)
{
    if (!ep->ctrl_pending)
        return;
    ep->ctrl_pending = false;
    for (uint16_t s = 0; s < ep->n_ch; s++) {
        struct channel *c = &ep->ch[s];
        if (c->ctrl == NULL)
            continue;
        struct agw_sctp_sendinfo info = {.stream = s, .ppid = DCEP_PPID_CONTROL};
        int rc = agw_sctp_assoc_send(ep->assoc, &info, c->ctrl, c->ctrl_len);
        if (rc == -EAGAIN) {
            ep->ctrl_pending = true; /* WRITABLE follows */
            return;
        }
        free(c->ctrl);
        c->ctrl = NULL;
        if (rc != 0)
            ep->st.dcep_errors++;
    }
}

static int queue_ctrl(struct dc_endpoint *ep, uint16_t stream, const uint8_t *msg, size_t len)
{
    uint8_t *copy = malloc(len);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, msg, len);
    free(ep->ch[stream].ctrl);
    ep->ch[stream].ctrl = copy;
    ep->ch[stream].ctrl_len = len;
    ep->ctrl_pending = true;
    flush_ctrl(ep);
    return 0;
}

/* ---- channels ---- */

static enum dcep_dtls_role dcep_role(enum agw_tls_role role)
{
    return role == AGW_TLS_CLIENT ? DCEP_DTLS_CLIENT : DCEP_DTLS_SERVER;
}

static char *copy_string(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    if (out != NULL) {
        memcpy(out, s, len);
        out[len] = '\0';
    }
    return out;
}

static void reset_ours(struct dc_endpoint *ep, uint16_t stream)
{
    struct channel *c = &ep->ch[stream];
    free(c->ctrl);
    c->ctrl = NULL;
    if (agw_sctp_assoc_reset_stream(ep->assoc, stream) != 0)
        c->ours_reset = true; /* nothing to wait for */
}

/* A bad OPEN: reset the stream so that the peer's channel closes (RFC 8832 leaves no other
   way to refuse), and tell the user. */
static void refuse_open(struct dc_endpoint *ep, uint16_t stream, int error)
{
    ep->st.dcep_errors++;
    if (ep->ch[stream].state == CH_OPEN || ep->ch[stream].state == CH_OPENING)
        set_channel_state(ep, stream, CH_CLOSING);
    (void)agw_sctp_assoc_reset_stream(ep->assoc, stream);
    struct dc_event ev = {
        .type = DC_EVENT_CHANNEL_CLOSED, .stream = stream, .by_peer = true, .error = error};
    push_event(ep, &ev, EVENT_COST);
}

static void on_dcep(struct dc_endpoint *ep, uint16_t stream, const uint8_t *data, size_t len)
{
    struct channel *c = &ep->ch[stream];
    struct dcep_message m;
    int rc = dcep_parse(data, len, NULL, &m);
    if (rc != 0) {
        refuse_open(ep, stream, rc);
        return;
    }
    if (m.type == DCEP_MSG_ACK) {
        if (c->state == CH_OPENING && c->ours)
            set_channel_state(ep, stream, CH_OPEN);
        else
            ep->st.dcep_errors++;
        return;
    }
    enum dcep_dtls_role peer =
        dcep_role(ep->role) == DCEP_DTLS_CLIENT ? DCEP_DTLS_SERVER : DCEP_DTLS_CLIENT;
    if (!dcep_stream_id_valid(stream, peer)) {
        refuse_open(ep, stream, -EINVAL);
        return;
    }
    if (c->state != CH_FREE) {
        refuse_open(ep, stream, -EADDRINUSE);
        return;
    }
    struct dc_event ev = {
        .type = DC_EVENT_CHANNEL_OPEN,
        .stream = stream,
        .label = copy_string(m.open.label, m.open.label_len),
        .protocol = copy_string(m.open.protocol, m.open.protocol_len),
        .label_len = m.open.label_len,
        .protocol_len = m.open.protocol_len,
        .channel_type = m.open.channel_type,
        .reliability = m.open.reliability,
        .priority = m.open.priority,
        .by_peer = true,
    };
    uint8_t ack[DCEP_ACK_LEN];
    size_t ack_len;
    if (ev.label == NULL || ev.protocol == NULL ||
        dcep_encode_ack(ack, sizeof(ack), &ack_len) != 0 ||
        queue_ctrl(ep, stream, ack, ack_len) != 0) {
        dc_event_clear(&ev);
        refuse_open(ep, stream, -ENOMEM);
        return;
    }
    c->type = m.open.channel_type;
    c->reliability = m.open.reliability;
    c->ours = false;
    set_channel_state(ep, stream, CH_OPEN);
    push_event(ep, &ev, EVENT_COST + ev.label_len + ev.protocol_len);
}

static void on_message(struct dc_endpoint *ep, const struct agw_sctp_event *sev)
{
    uint16_t stream = sev->stream;
    if (stream >= ep->n_ch) {
        ep->st.messages_dropped++;
        return;
    }
    if (sev->ppid == DCEP_PPID_CONTROL) {
        on_dcep(ep, stream, sev->data, sev->len);
        return;
    }
    struct channel *c = &ep->ch[stream];
    bool empty = sev->ppid == DCEP_PPID_STRING_EMPTY || sev->ppid == DCEP_PPID_BINARY_EMPTY;
    bool binary = sev->ppid == DCEP_PPID_BINARY || sev->ppid == DCEP_PPID_BINARY_EMPTY ||
                  sev->ppid == DCEP_PPID_BINARY_PARTIAL;
    bool known =
        empty || binary || sev->ppid == DCEP_PPID_STRING || sev->ppid == DCEP_PPID_STRING_PARTIAL;
    if (!known || c->state == CH_FREE || c->state == CH_CLOSED) {
        ep->st.messages_dropped++;
        return;
    }
    /* RFC 8832 §6: a message from the peer on the channel implies the ACK. */
    if (c->state == CH_OPENING)
        set_channel_state(ep, stream, CH_OPEN);
    size_t len = empty ? 0 : sev->len;
    struct dc_event ev = {.type = DC_EVENT_MESSAGE,
                          .stream = stream,
                          .ppid = sev->ppid,
                          .binary = binary,
                          .unordered = sev->unordered,
                          .data = malloc(len ? len : 1),
                          .len = len};
    if (ev.data == NULL) {
        ep->st.messages_dropped++;
        return;
    }
    memcpy(ev.data, sev->data, len);
    ep->st.messages_in++;
    ep->st.bytes_in += len;
    push_event(ep, &ev, EVENT_COST + len);
}

/* The peer reset its outgoing stream: the channel is closed that way; close ours too
   (RFC 8831 §6.7). The id is free again once both directions are reset. */
static void on_stream_closed(struct dc_endpoint *ep, uint16_t stream)
{
    if (stream >= ep->n_ch)
        return;
    struct channel *c = &ep->ch[stream];
    if (c->state == CH_FREE || c->peer_reset)
        return;
    c->peer_reset = true;
    bool by_peer = c->state != CH_CLOSING;
    if (by_peer)
        reset_ours(ep, stream);
    struct dc_event ev = {.type = DC_EVENT_CHANNEL_CLOSED, .stream = stream, .by_peer = by_peer};
    push_event(ep, &ev, EVENT_COST);
    if (c->ours_reset)
        release_channel(ep, stream);
    else
        set_channel_state(ep, stream, CH_CLOSED);
}

static void on_reset_done(struct dc_endpoint *ep, uint16_t stream)
{
    if (stream >= ep->n_ch || ep->ch[stream].state == CH_FREE)
        return;
    ep->ch[stream].ours_reset = true;
    if (ep->ch[stream].peer_reset)
        release_channel(ep, stream);
}

static void on_sctp_event(struct dc_endpoint *ep, const struct agw_sctp_event *sev)
{
    switch (sev->type) {
    case AGW_SCTP_EVENT_UP:
        ep->streams = sev->in_streams < sev->out_streams ? sev->in_streams : sev->out_streams;
        if (ep->streams > ep->n_ch)
            ep->streams = ep->n_ch;
        pthread_mutex_lock(&ep->net->mu);
        ep->up = true;
        pthread_cond_broadcast(&ep->net->cv);
        pthread_mutex_unlock(&ep->net->mu);
        break;
    case AGW_SCTP_EVENT_DOWN:
        set_failure(ep, sev->error != 0 ? sev->error : -EPIPE,
                    sev->error == -ECONNREFUSED ? "sctp association could not start"
                    : sev->error != 0           ? "sctp association aborted or lost"
                                                : "sctp association shut down");
        break;
    case AGW_SCTP_EVENT_MESSAGE:
        on_message(ep, sev);
        break;
    case AGW_SCTP_EVENT_MESSAGE_DROPPED:
        ep->st.messages_dropped++;
        break;
    case AGW_SCTP_EVENT_STREAM_CLOSED:
        on_stream_closed(ep, sev->stream);
        break;
    case AGW_SCTP_EVENT_STREAM_RESET_DONE:
        on_reset_done(ep, sev->stream);
        break;
    case AGW_SCTP_EVENT_WRITABLE:
        flush_ctrl(ep);
        pthread_mutex_lock(&ep->net->mu);
        ep->writable_gen++;
        pthread_cond_broadcast(&ep->net->cv);
        pthread_mutex_unlock(&ep->net->mu);
        break;
    }
}

/* Pops association events while the user's queue has room: beyond, usrsctp stops reading and the
   peer's window closes. */
static bool pop_events(struct dc_endpoint *ep)
{
    bool moved = false;
    for (;;) {
        pthread_mutex_lock(&ep->net->mu);
        bool full = ep->ev_bytes >= ep->ev_max;
        ep->rx_blocked = full;
        pthread_mutex_unlock(&ep->net->mu);
        struct agw_sctp_event sev;
        if (full || agw_sctp_assoc_next_event(ep->assoc, &sev) != 1)
            return moved;
        moved = true;
        on_sctp_event(ep, &sev);
    }
}

/* Moves everything that waits: packets out, events in, until nothing moves. */
static void pump(struct dc_endpoint *ep)
{
    bool moved = true;
    while (moved) {
        moved = drain_dtls(ep);
        if (ep->assoc != NULL) {
            flush_ctrl(ep);
            moved |= drain_sctp(ep);
            moved |= pop_events(ep);
        }
    }
}

/* ---- DTLS and SCTP set-up ---- */

static int tls_failure_code(enum agw_tls_failure reason)
{
    switch (reason) {
    case AGW_TLS_FAIL_FINGERPRINT_MISMATCH:
    case AGW_TLS_FAIL_NO_PEER_CERT:
    case AGW_TLS_FAIL_NO_SUPPORTED_FINGERPRINT:
        return -EACCES;
    case AGW_TLS_FAIL_PEER_ALERT:
        return -ECONNABORTED;
    case AGW_TLS_FAIL_INTERNAL:
        return -EIO;
    default:
        return -EPROTO;
    }
}

static void start_sctp(struct dc_endpoint *ep)
{
    struct agw_sctp_limits lim = agw_sctp_default_limits;
    lim.max_message_size = ep->max_message_size;
    lim.peer_max_message_size = ep->peer_max_message_size;
    lim.streams = ep->n_ch;
    if (ep->dtls) {
        size_t room = agw_dtls_session_max_payload(ep->dtls_s);
        if (room < lim.mtu)
            lim.mtu = (uint16_t)room;
    }
    int rc = agw_sctp_assoc_new(ep->sctp_port, ep->peer_sctp_port, &lim, &ep->assoc);
    if (rc != 0)
        set_failure(ep, rc, "sctp association refused by usrsctp");
}

/* After anything that moved the handshake: start SCTP once verified, report a failure. */
static void check_dtls(struct dc_endpoint *ep)
{
    enum agw_tls_state state = agw_dtls_session_state(ep->dtls_s);
    if (state == AGW_TLS_VERIFIED && ep->assoc == NULL && ep->error == 0) {
        start_sctp(ep);
    } else if (state == AGW_TLS_FAILED) {
        const struct agw_tls_error *e = agw_dtls_session_error(ep->dtls_s);
        set_failure(ep, e != NULL ? tls_failure_code(e->reason) : -EPROTO,
                    e != NULL && e->text != NULL ? e->text : "dtls failed");
    }
}

static int start_dtls(struct dc_endpoint *ep);

/* A binding request to the remote: checks until one succeeds, then consent checks. */
static void send_check(struct dc_endpoint *ep)
{
    struct agw_stun_request req = {.use_candidate = true,
                                   .controlling = true,
                                   .priority = 2130706431u,
                                   .tie_breaker = 0x1234567890abcdefull};
    char user[2 * AGW_ICE_TEXT_MAX + 2];
    int n = snprintf(user, sizeof(user), "%s:%s", ep->ice_peer_ufrag, ep->ice_ufrag);
    req.username = user;
    req.username_len = (size_t)n;
    for (size_t i = 0; i < sizeof(req.tid); i++)
        req.tid[i] = (uint8_t)rand();
    uint8_t buf[512];
    size_t len;
    if (agw_stun_build_request(&req, ep->ice_peer_pwd, buf, sizeof(buf), &len) == 0)
        send_udp(ep, buf, len);
    ep->ice_next_ms = now_ms() + (ep->ice_ok ? ICE_CONSENT_MS : ICE_CHECK_MS);
}

/* A STUN answer from the remote: the first verified success opens the way to DTLS. */
static void on_stun(struct dc_endpoint *ep, const uint8_t *data, size_t len)
{
    uint8_t tid[AGW_STUN_TID_LEN];
    struct sockaddr_storage mapped;
    if (agw_stun_parse_success(data, len, ep->ice_peer_pwd, tid, &mapped) != 0) {
        ep->st.datagrams_dropped++;
        return;
    }
    if (ep->ice_ok)
        return;
    ep->ice_ok = true;
    if (!ep->dtls) {
        start_sctp(ep);
    } else if (ep->dtls_s == NULL && start_dtls(ep) != 0) {
        set_failure(ep, -EIO, "cannot start DTLS");
    }
}

static int start_dtls(struct dc_endpoint *ep)
{
    int rc = agw_dtls_session_new(ep->net->dtls_ctx, ep->id, ep->role, 0, &ep->dtls_s);
    if (rc == 0 && ep->n_fps > 0)
        rc = agw_dtls_session_set_fingerprints(ep->dtls_s, ep->fps, ep->n_fps);
    return rc;
}

static void on_datagram(struct dc_endpoint *ep, const uint8_t *data, size_t len)
{
    if (ep->error != 0)
        return;
    if (!ep->dtls) {
        if (ep->assoc == NULL)
            start_sctp(ep);
        if (ep->assoc != NULL)
            (void)agw_sctp_assoc_input(ep->assoc, data, len);
        return;
    }
    if (ep->dtls_s == NULL)
        return;
    (void)agw_dtls_session_input(ep->dtls_s, data, len);
    check_dtls(ep);
    uint8_t *rec = ep->net->buf;
    size_t got;
    int rc;
    while ((rc = agw_dtls_session_read(ep->dtls_s, rec, DATAGRAM_MAX, &got)) == 0) {
        if (ep->assoc != NULL)
            (void)agw_sctp_assoc_input(ep->assoc, rec, got);
    }
    if (rc == -EPIPE)
        set_failure(ep, -EPIPE, "peer sent close_notify");
    else if (rc != -EAGAIN && rc != -EMSGSIZE)
        check_dtls(ep);
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

static void read_socket(struct dc_endpoint *ep)
{
    uint8_t *buf = ep->net->buf;
    for (int i = 0; i < READ_BURST; i++) {
        struct sockaddr_storage from;
        socklen_t from_len = sizeof(from);
        ssize_t n =
            recvfrom(ep->fd, buf, DATAGRAM_MAX, MSG_DONTWAIT, (struct sockaddr *)&from, &from_len);
        if (n < 0)
            return;
        ep->st.datagrams_in++;
        if (!ep->has_remote && ep->role == AGW_TLS_SERVER) {
            ep->remote = from;
            ep->remote_len = from_len;
            ep->has_remote = true;
        }
        if (!ep->has_remote || !same_addr(&from, &ep->remote) || n == 0) {
            ep->st.datagrams_dropped++;
            continue;
        }
        if (ep->ice && agw_stun_is_stun(buf, (size_t)n)) {
            on_stun(ep, buf, (size_t)n);
            pump(ep);
            continue;
        }
        /* on_datagram reuses buf for decrypted records, which are never longer. */
        on_datagram(ep, buf, (size_t)n);
        pump(ep);
    }
}

/* ---- commands (net thread) ---- */

static int pick_stream(const struct dc_endpoint *ep)
{
    for (unsigned s = ep->role == AGW_TLS_CLIENT ? 0 : 1; s < ep->streams; s += 2) {
        if (ep->ch[s].state == CH_FREE)
            return (int)s;
    }
    return -ENOSPC;
}

static int cmd_open(struct dc_endpoint *ep, struct cmd *c)
{
    const struct dc_channel_spec *spec = c->data;
    uint16_t *out = c->out;
    if (!dcep_channel_type_valid(spec->channel_type))
        return -EINVAL;
    if (spec->negotiated) {
        if (spec->stream >= ep->n_ch || spec->stream > DCEP_STREAM_MAX)
            return -EINVAL;
        if (ep->ch[spec->stream].state != CH_FREE)
            return -EADDRINUSE;
        ep->ch[spec->stream].type = spec->channel_type;
        ep->ch[spec->stream].reliability = spec->reliability;
        *out = spec->stream;
        set_channel_state(ep, spec->stream, CH_OPEN);
        return 0;
    }
    if (ep->assoc == NULL || ep->streams == 0 || ep->error != 0)
        return ep->error != 0 ? ep->error : -ENOTCONN;
    int s = pick_stream(ep);
    if (s < 0)
        return s;
    struct dcep_open open = {
        .channel_type = spec->channel_type,
        .priority = spec->priority,
        .reliability = (spec->channel_type & 0x7f) != 0 ? spec->reliability : 0,
        .label = spec->label != NULL ? spec->label : "",
        .protocol = spec->protocol != NULL ? spec->protocol : "",
    };
    open.label_len = strlen(open.label);
    open.protocol_len = strlen(open.protocol);
    size_t len = 0;
    int rc = dcep_encode_open(&open, NULL, 0, &len);
    if (rc != -ENOSPC)
        return -EINVAL;
    uint8_t *msg = malloc(len);
    if (msg == NULL)
        return -ENOMEM;
    rc = dcep_encode_open(&open, msg, len, &len);
    if (rc == 0) {
        struct channel *ch = &ep->ch[s];
        ch->type = spec->channel_type;
        ch->reliability = open.reliability;
        ch->ours = true;
        set_channel_state(ep, (uint16_t)s, CH_OPENING);
        rc = queue_ctrl(ep, (uint16_t)s, msg, len);
        if (rc != 0)
            set_channel_state(ep, (uint16_t)s, CH_FREE);
    }
    free(msg);
    if (rc == 0)
        *out = (uint16_t)s;
    return rc == -ENOSPC ? -EINVAL : rc;
}

static int cmd_send(struct dc_endpoint *ep, struct cmd *c)
{
    if (ep->error != 0)
        return ep->error;
    if (ep->assoc == NULL || ep->streams == 0)
        return -ENOTCONN;
    if (c->stream >= ep->n_ch)
        return -EINVAL;
    struct channel *ch = &ep->ch[c->stream];
    if (ch->state != CH_OPEN && ch->state != CH_OPENING)
        return -EPIPE;
    c->gen = ep->writable_gen;
    if (ch->ctrl != NULL)
        return -EAGAIN; /* its OPEN or ACK has to go first */
    struct agw_sctp_sendinfo info = {.stream = c->stream};
    if (ch->state == CH_OPEN) {
        info.unordered = !dcep_channel_ordered(ch->type);
        if ((ch->type & 0x7f) == DCEP_CHANNEL_PARTIAL_RELIABLE_REXMIT)
            info.pr = AGW_SCTP_PR_RTX;
        else if ((ch->type & 0x7f) == DCEP_CHANNEL_PARTIAL_RELIABLE_TIMED)
            info.pr = AGW_SCTP_PR_TTL;
        info.pr_value = ch->reliability;
    }
    const void *data = c->data;
    size_t len = c->len;
    if (len == 0) { /* RFC 8831 §6.6: one byte with the "empty" PPID */
        info.ppid = c->binary ? DCEP_PPID_BINARY_EMPTY : DCEP_PPID_STRING_EMPTY;
        data = "";
        len = 1;
    } else {
        info.ppid = c->binary ? DCEP_PPID_BINARY : DCEP_PPID_STRING;
    }
    int rc = agw_sctp_assoc_send(ep->assoc, &info, data, len);
    if (rc == 0) {
        ep->st.messages_out++;
        ep->st.bytes_out += c->len;
    }
    return rc;
}

/* Tests of hostile peers: any PPID on any stream, no channel needed. */
static int cmd_send_raw(struct dc_endpoint *ep, struct cmd *c)
{
    if (ep->error != 0)
        return ep->error;
    if (ep->assoc == NULL || ep->streams == 0)
        return -ENOTCONN;
    struct agw_sctp_sendinfo info = {.stream = c->stream, .ppid = (uint32_t)c->gen};
    return agw_sctp_assoc_send(ep->assoc, &info, c->data, c->len);
}

static int cmd_close(struct dc_endpoint *ep, struct cmd *c)
{
    uint16_t stream = c->stream;
    if (stream >= ep->n_ch)
        return -EINVAL;
    if (ep->ch[stream].state != CH_OPEN && ep->ch[stream].state != CH_OPENING)
        return -EPIPE;
    if (ep->assoc == NULL || ep->streams == 0 || ep->error != 0)
        return -ENOTCONN;
    reset_ours(ep, stream);
    set_channel_state(ep, stream, CH_CLOSING);
    return 0;
}

static int cmd_connect(struct dc_endpoint *ep, struct cmd *c)
{
    struct sockaddr_storage to;
    socklen_t len = (socklen_t)c->len;
    memset(&to, 0, sizeof(to));
    memcpy(&to, c->data, len);
    if (ep->has_remote) /* learned already from the peer's first datagram: fine */
        return same_addr(&to, &ep->remote) ? 0 : -EISCONN;
    ep->remote = to;
    ep->remote_len = len;
    ep->has_remote = true;
    if (ep->ice) {
        send_check(ep); /* DTLS (or SCTP) starts once a check succeeded */
        return 0;
    }
    if (!ep->dtls) {
        start_sctp(ep);
        return 0;
    }
    if (ep->dtls_s != NULL)
        return 0;
    int rc = start_dtls(ep);
    if (rc != 0)
        ep->has_remote = false;
    return rc;
}

static int cmd_set_fps(struct dc_endpoint *ep, struct cmd *c)
{
    const struct agw_tls_fingerprint *fps = c->data;
    size_t n = c->len;
    if (!ep->dtls)
        return -EINVAL;
    if (n > AGW_TLS_FINGERPRINTS_MAX)
        return -E2BIG;
    memcpy(ep->fps, fps, n * sizeof(*fps));
    ep->n_fps = n;
    if (ep->dtls_s == NULL)
        return 0;
    int rc = agw_dtls_session_set_fingerprints(ep->dtls_s, fps, n);
    check_dtls(ep);
    return rc;
}

static void free_events(struct dc_endpoint *ep)
{
    while (ep->ev_head != NULL) {
        struct evnode *e = ep->ev_head;
        ep->ev_head = e->next;
        dc_event_clear(&e->ev);
        free(e);
    }
}

/* Says goodbye (ABORT, close_notify) and frees ep. */
static int cmd_free(struct dc_endpoint *ep, struct cmd *c)
{
    (void)c;
    struct dc_net *n = ep->net;
    for (struct dc_endpoint **link = &n->eps; *link != NULL; link = &(*link)->next) {
        if (*link == ep) {
            *link = ep->next;
            n->n_eps--;
            break;
        }
    }
    if (ep->assoc != NULL && agw_sctp_assoc_abort(ep->assoc) == 0)
        drain_sctp(ep);
    if (ep->dtls_s != NULL && agw_dtls_session_close(ep->dtls_s) == 0)
        drain_dtls(ep);
    agw_sctp_assoc_free(ep->assoc);
    agw_dtls_session_free(ep->dtls_s);
    close(ep->fd);
    agw_tls_identity_unref(ep->id);
    for (uint16_t s = 0; s < ep->n_ch; s++)
        free(ep->ch[s].ctrl);
    free(ep->ch);
    free_events(ep);
    free(ep);
    return 0;
}

static int cmd_add(struct dc_endpoint *ep, struct cmd *c)
{
    (void)c;
    ep->next = ep->net->eps;
    ep->net->eps = ep;
    ep->net->n_eps++;
    return ep->dtls && ep->role == AGW_TLS_SERVER ? start_dtls(ep) : 0;
}

static int cmd_stats(struct dc_endpoint *ep, struct cmd *c)
{
    struct dc_endpoint_stats *st = c->out;
    *st = ep->st;
    if (ep->dtls_s != NULL) {
        struct agw_dtls_stats ds;
        agw_dtls_session_stats(ep->dtls_s, &ds);
        st->dtls_datagrams_in = ds.datagrams_in;
        st->dtls_datagrams_out = ds.datagrams_out;
        st->dtls_datagrams_dropped = ds.datagrams_dropped;
    }
    return 0;
}

static void run_commands(struct dc_net *n)
{
    pthread_mutex_lock(&n->mu);
    struct cmd *list = n->cmd_head;
    n->cmd_head = n->cmd_tail = NULL;
    pthread_mutex_unlock(&n->mu);
    while (list != NULL) {
        struct cmd *c = list;
        list = c->next;
        int rc = c->fn(c->ep, c);
        if (c->fn != cmd_free)
            pump(c->ep);
        pthread_mutex_lock(&n->mu);
        c->result = rc;
        c->done = true; /* c belongs to its caller again */
        pthread_cond_broadcast(&n->cv);
        pthread_mutex_unlock(&n->mu);
    }
}

/* ---- the thread ---- */

static void run_timers(struct dc_net *n)
{
    uint64_t now = now_ms();
    if (agw_sctp_next_timeout() < 0) {
        n->last_tick = now;
    } else if (now - n->last_tick >= AGW_SCTP_TICK_MS) {
        agw_sctp_timers((uint32_t)(now - n->last_tick));
        n->last_tick = now;
    }
    for (struct dc_endpoint *ep = n->eps; ep != NULL; ep = ep->next) {
        if (ep->ice && ep->has_remote && ep->error == 0 && now >= ep->ice_next_ms)
            send_check(ep);
        if (ep->dtls_s != NULL && agw_dtls_session_timeout_ms(ep->dtls_s) == 0) {
            (void)agw_dtls_session_handle_timeout(ep->dtls_s);
            check_dtls(ep);
        }
        pump(ep); /* the timers may have sent or delivered on any association */
    }
}

static int poll_timeout(struct dc_net *n)
{
    int timeout = -1;
    if (agw_sctp_next_timeout() >= 0) {
        uint64_t since = now_ms() - n->last_tick;
        timeout = since >= AGW_SCTP_TICK_MS ? 0 : (int)(AGW_SCTP_TICK_MS - since);
    }
    for (struct dc_endpoint *ep = n->eps; ep != NULL; ep = ep->next) {
        int t = ep->dtls_s != NULL ? agw_dtls_session_timeout_ms(ep->dtls_s) : -1;
        if (t >= 0 && (timeout < 0 || t < timeout))
            timeout = t;
        if (ep->ice && ep->has_remote) {
            uint64_t now = now_ms();
            int ice_t = ep->ice_next_ms > now ? (int)(ep->ice_next_ms - now) : 0;
            if (timeout < 0 || ice_t < timeout)
                timeout = ice_t;
        }
    }
    return timeout;
}

static void *net_main(void *arg)
{
    struct dc_net *n = arg;
    struct pollfd *pfd = NULL;
    struct dc_endpoint **pep = NULL;
    size_t cap = 0;
    (void)agw_sctp_init();
    n->last_tick = now_ms();
    for (;;) {
        pthread_mutex_lock(&n->mu);
        bool stopping = n->stopping;
        pthread_mutex_unlock(&n->mu);
        if (stopping)
            break;
        if (pfd == NULL || pep == NULL || cap < n->n_eps + 1) {
            /* Refilled every round: nothing to carry over, so no realloc. */
            free(pfd);
            free(pep);
            cap = (n->n_eps + 1) * 2;
            pfd = malloc(cap * sizeof(*pfd));
            pep = malloc(cap * sizeof(*pep));
            if (pfd == NULL || pep == NULL) {
                usleep(10000);
                continue;
            }
        }
        size_t nfd = 0;
        pfd[nfd++] = (struct pollfd){.fd = n->wake_fd, .events = POLLIN};
        for (struct dc_endpoint *ep = n->eps; ep != NULL; ep = ep->next) {
            pep[nfd] = ep;
            pfd[nfd++] = (struct pollfd){.fd = ep->fd, .events = POLLIN};
        }
        (void)poll(pfd, (nfds_t)nfd, poll_timeout(n)); /* EINTR: the loop runs again */
        if (pfd[0].revents & POLLIN) {
            uint64_t v;
            ssize_t rc = read(n->wake_fd, &v, sizeof(v));
            (void)rc;
        }
        for (size_t i = 1; i < nfd; i++) {
            if (pfd[i].revents & (POLLIN | POLLERR))
                read_socket(pep[i]);
        }
        run_commands(n);
        run_timers(n);
    }
    free(pfd);
    free(pep);
    while (n->eps != NULL)
        cmd_free(n->eps, NULL);
    for (int i = 0; i < FINISH_TRIES && agw_sctp_finish() == -EBUSY; i++) {
        usleep(AGW_SCTP_TICK_MS * 1000);
        agw_sctp_timers(AGW_SCTP_TICK_MS);
    }
    return NULL;
}

int dc_net_start(struct dc_net **out)
{
    if (out == NULL)
        return -EINVAL;
    bool expected = false;
    if (!atomic_compare_exchange_strong(&net_running, &expected, true))
        return -EBUSY;
    struct dc_net *n = calloc(1, sizeof(*n));
    if (n == NULL) {
        atomic_store(&net_running, false);
        return -ENOMEM;
    }
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&n->cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&n->mu, NULL);
    int rc = 0;
    n->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (n->wake_fd < 0)
        rc = -errno;
    if (rc == 0)
        rc = -pthread_create(&n->thread, NULL, net_main, n);
    if (rc != 0) {
        if (n->wake_fd >= 0)
            close(n->wake_fd);
        pthread_cond_destroy(&n->cv);
        pthread_mutex_destroy(&n->mu);
        free(n);
        atomic_store(&net_running, false);
        return rc;
    }
    *out = n;
    return 0;
}

void dc_net_stop(struct dc_net *n)
{
    if (n == NULL)
        return;
    pthread_mutex_lock(&n->mu);
    n->stopping = true;
    pthread_mutex_unlock(&n->mu);
    wake(n);
    pthread_join(n->thread, NULL);
    agw_dtls_ctx_unref(n->dtls_ctx);
    close(n->wake_fd);
    pthread_cond_destroy(&n->cv);
    pthread_mutex_destroy(&n->mu);
    free(n);
    atomic_store(&net_running, false);
}

/* ---- the callers' side ---- */

static int run(struct dc_endpoint *ep, cmd_fn *fn, struct cmd *c)
{
    struct dc_net *n = ep->net;
    c->fn = fn;
    c->ep = ep;
    pthread_mutex_lock(&n->mu);
    if (n->cmd_tail != NULL)
        n->cmd_tail->next = c;
    else
        n->cmd_head = c;
    n->cmd_tail = c;
    pthread_mutex_unlock(&n->mu);
    wake(n);
    pthread_mutex_lock(&n->mu);
    while (!c->done)
        pthread_cond_wait(&n->cv, &n->mu);
    pthread_mutex_unlock(&n->mu);
    return c->result;
}

/* Waits until ready(ep, arg), called under mu, says something other than -EAGAIN. */
static int wait_for(struct dc_endpoint *ep, const struct timespec *deadline,
                    int (*ready)(const struct dc_endpoint *, uint64_t), uint64_t arg)
{
    pthread_mutex_lock(&ep->net->mu);
    int rc;
    bool more = true;
    while ((rc = ready(ep, arg)) == -EAGAIN && more)
        more = wait_until(ep->net, deadline);
    pthread_mutex_unlock(&ep->net->mu);
    return rc == -EAGAIN ? -ETIMEDOUT : rc;
}

static int open_socket(struct dc_endpoint *ep, const struct dc_endpoint_config *cfg)
{
    struct sockaddr_in loopback = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    const struct sockaddr *local = cfg->local != NULL ? cfg->local : (void *)&loopback;
    socklen_t len = cfg->local != NULL ? cfg->local_len : (socklen_t)sizeof(loopback);
    if (local->sa_family != AF_INET && local->sa_family != AF_INET6)
        return -EINVAL;
    ep->fd = socket(local->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ep->fd < 0)
        return -errno;
    /* Bursts of a whole congestion window arrive between two polls. FORCE needs privilege. */
    int size = SOCKET_BUFFER;
    if (setsockopt(ep->fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0)
        (void)setsockopt(ep->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    if (setsockopt(ep->fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) != 0)
        (void)setsockopt(ep->fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof(bound);
    if (bind(ep->fd, local, len) != 0 ||
        getsockname(ep->fd, (struct sockaddr *)&bound, &bound_len) != 0)
        return -errno;
    ep->port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                                : ((struct sockaddr_in6 *)&bound)->sin6_port);
    return 0;
}

static int dtls_setup(struct dc_net *n, struct dc_endpoint *ep,
                      const struct dc_endpoint_config *cfg)
{
    int rc = 0;
    pthread_mutex_lock(&n->mu);
    if (n->dtls_ctx == NULL)
        rc = agw_dtls_ctx_new(NULL, &n->dtls_ctx, NULL, 0);
    pthread_mutex_unlock(&n->mu);
    if (rc != 0)
        return rc;
    if (cfg->identity != NULL)
        ep->id = agw_tls_identity_ref(cfg->identity);
    else if ((rc = agw_tls_identity_generate("dc-endpoint", 30, &ep->id)) != 0)
        return rc;
    if (cfg->n_peer_fps > AGW_TLS_FINGERPRINTS_MAX || (cfg->n_peer_fps > 0 && !cfg->peer_fps))
        return -EINVAL;
    if (cfg->n_peer_fps > 0)
        memcpy(ep->fps, cfg->peer_fps, cfg->n_peer_fps * sizeof(*ep->fps));
    ep->n_fps = cfg->n_peer_fps;
    return 0;
}

int dc_endpoint_new(struct dc_net *n, const struct dc_endpoint_config *cfg,
                    struct dc_endpoint **out)
{
    if (n == NULL || cfg == NULL || out == NULL ||
        (cfg->role != AGW_TLS_CLIENT && cfg->role != AGW_TLS_SERVER))
        return -EINVAL;
    struct dc_endpoint *ep = calloc(1, sizeof(*ep));
    if (ep == NULL)
        return -ENOMEM;
    ep->net = n;
    ep->fd = -1;
    ep->dtls = cfg->dtls;
    ep->role = cfg->role;
    ep->sctp_port = cfg->sctp_port ? cfg->sctp_port : DC_SCTP_PORT;
    ep->peer_sctp_port = cfg->peer_sctp_port ? cfg->peer_sctp_port : DC_SCTP_PORT;
    ep->max_message_size = cfg->max_message_size ? cfg->max_message_size : DC_MAX_MESSAGE_SIZE;
    ep->peer_max_message_size =
        cfg->peer_max_message_size ? cfg->peer_max_message_size : DC_PEER_MAX_MESSAGE_SIZE;
    ep->ev_max = cfg->event_queue_max ? cfg->event_queue_max : DC_EVENT_QUEUE_MAX;
    if (cfg->ice_peer_ufrag != NULL && cfg->ice_peer_pwd != NULL) {
        ep->ice = true;
        snprintf(ep->ice_peer_ufrag, sizeof(ep->ice_peer_ufrag), "%s", cfg->ice_peer_ufrag);
        snprintf(ep->ice_peer_pwd, sizeof(ep->ice_peer_pwd), "%s", cfg->ice_peer_pwd);
        snprintf(ep->ice_ufrag, sizeof(ep->ice_ufrag), "%s",
                 cfg->ice_ufrag != NULL ? cfg->ice_ufrag : "dcpeer");
    }
    ep->n_ch = agw_sctp_default_limits.streams;
    ep->ch = calloc(ep->n_ch, sizeof(*ep->ch));
    int rc = ep->ch != NULL ? open_socket(ep, cfg) : -ENOMEM;
    if (rc == 0 && ep->dtls)
        rc = dtls_setup(n, ep, cfg);
    if (rc != 0) {
        if (ep->fd >= 0)
            close(ep->fd);
        agw_tls_identity_unref(ep->id);
        free(ep->ch);
        free(ep);
        return rc;
    }
    struct cmd c = {0}, f = {0};
    rc = run(ep, cmd_add, &c);
    if (rc != 0)
        run(ep, cmd_free, &f);
    else
        *out = ep;
    return rc;
}

uint16_t dc_endpoint_port(const struct dc_endpoint *ep)
{
    return ep != NULL ? ep->port : 0;
}

int dc_endpoint_fingerprint(const struct dc_endpoint *ep, struct agw_tls_fingerprint *out)
{
    if (ep == NULL || out == NULL || ep->id == NULL)
        return -EINVAL;
    *out = *agw_tls_identity_fingerprint(ep->id);
    return 0;
}

int dc_endpoint_connect(struct dc_endpoint *ep, const struct sockaddr *remote, socklen_t len)
{
    if (ep == NULL || remote == NULL || len > sizeof(struct sockaddr_storage) ||
        (remote->sa_family == AF_INET && len < sizeof(struct sockaddr_in)) ||
        (remote->sa_family == AF_INET6 && len < sizeof(struct sockaddr_in6)) ||
        (remote->sa_family != AF_INET && remote->sa_family != AF_INET6))
        return -EINVAL;
    struct cmd c = {.data = remote, .len = len};
    return run(ep, cmd_connect, &c);
}

int dc_endpoint_set_peer_fingerprints(struct dc_endpoint *ep, const struct agw_tls_fingerprint *fps,
                                      size_t n)
{
    if (ep == NULL || (n > 0 && fps == NULL))
        return -EINVAL;
    struct cmd c = {.data = fps, .len = n};
    return run(ep, cmd_set_fps, &c);
}

static int up_ready(const struct dc_endpoint *ep, uint64_t arg)
{
    (void)arg;
    return ep->error != 0 ? ep->error : ep->up ? 0 : -EAGAIN;
}

int dc_endpoint_wait_up(struct dc_endpoint *ep, int timeout_ms)
{
    struct timespec deadline = deadline_of(timeout_ms);
    return ep != NULL ? wait_for(ep, &deadline, up_ready, 0) : -EINVAL;
}

int dc_endpoint_failure(struct dc_endpoint *ep, char *text, size_t cap)
{
    if (ep == NULL)
        return -EINVAL;
    pthread_mutex_lock(&ep->net->mu);
    int rc = ep->error;
    if (text != NULL && cap > 0)
        snprintf(text, cap, "%s", ep->failure);
    pthread_mutex_unlock(&ep->net->mu);
    return rc;
}

int dc_endpoint_open_channel(struct dc_endpoint *ep, const struct dc_channel_spec *spec,
                             uint16_t *stream)
{
    if (ep == NULL || spec == NULL || stream == NULL)
        return -EINVAL;
    struct cmd c = {.data = spec, .out = stream};
    return run(ep, cmd_open, &c);
}

static int open_ready(const struct dc_endpoint *ep, uint64_t stream)
{
    uint8_t state = ep->ch[stream].state;
    if (ep->error != 0)
        return ep->error;
    return state == CH_OPENING ? -EAGAIN : state == CH_OPEN ? 0 : -ECONNRESET;
}

int dc_endpoint_wait_open(struct dc_endpoint *ep, uint16_t stream, int timeout_ms)
{
    if (ep == NULL || stream >= ep->n_ch)
        return -EINVAL;
    struct timespec deadline = deadline_of(timeout_ms);
    return wait_for(ep, &deadline, open_ready, stream);
}

static int writable_ready(const struct dc_endpoint *ep, uint64_t gen)
{
    return ep->error != 0 ? ep->error : ep->writable_gen != gen ? 0 : -EAGAIN;
}

int dc_endpoint_send(struct dc_endpoint *ep, uint16_t stream, bool binary, const void *data,
                     size_t len, int timeout_ms)
{
    if (ep == NULL || (data == NULL && len > 0))
        return -EINVAL;
    struct timespec deadline = deadline_of(timeout_ms);
    for (;;) {
        struct cmd c = {.data = data, .len = len, .stream = stream, .binary = binary};
        int rc = run(ep, cmd_send, &c);
        if (rc != -EAGAIN)
            return rc;
        /* The send buffer is full: wait for WRITABLE (the generation moves) or the end. */
        rc = wait_for(ep, &deadline, writable_ready, c.gen);
        if (rc != 0)
            return rc;
    }
}

int dc_endpoint_send_raw(struct dc_endpoint *ep, uint16_t stream, uint32_t ppid, const void *data,
                         size_t len)
{
    if (ep == NULL || data == NULL || len == 0)
        return -EINVAL;
    struct cmd c = {.data = data, .len = len, .stream = stream, .gen = ppid};
    return run(ep, cmd_send_raw, &c);
}

int dc_endpoint_close_channel(struct dc_endpoint *ep, uint16_t stream)
{
    if (ep == NULL)
        return -EINVAL;
    struct cmd c = {.stream = stream};
    return run(ep, cmd_close, &c);
}

static int event_ready(const struct dc_endpoint *ep, uint64_t arg)
{
    (void)arg;
    return ep->ev_head != NULL ? 0 : -EAGAIN;
}

int dc_endpoint_next_event(struct dc_endpoint *ep, struct dc_event *ev, int timeout_ms)
{
    if (ep == NULL || ev == NULL)
        return -EINVAL;
    struct timespec deadline = deadline_of(timeout_ms);
    int rc = wait_for(ep, &deadline, event_ready, 0);
    if (rc != 0)
        return rc;
    /* Only this caller pops: the event found stays at the head. */
    pthread_mutex_lock(&ep->net->mu);
    struct evnode *e = ep->ev_head;
    ep->ev_head = e->next;
    if (ep->ev_head == NULL)
        ep->ev_tail = NULL;
    ep->ev_bytes -= e->cost;
    bool resume = ep->rx_blocked && ep->ev_bytes < ep->ev_max;
    if (resume)
        ep->rx_blocked = false;
    pthread_mutex_unlock(&ep->net->mu);
    if (resume)
        wake(ep->net);
    *ev = e->ev;
    free(e);
    return 0;
}

void dc_event_clear(struct dc_event *ev)
{
    if (ev == NULL)
        return;
    free(ev->data);
    free(ev->label);
    free(ev->protocol);
    memset(ev, 0, sizeof(*ev));
}

int dc_endpoint_stats(struct dc_endpoint *ep, struct dc_endpoint_stats *out)
{
    if (ep == NULL || out == NULL)
        return -EINVAL;
    struct cmd c = {.out = out};
    return run(ep, cmd_stats, &c);
}

void dc_endpoint_free(struct dc_endpoint *ep)
{
    struct cmd c = {0};
    if (ep != NULL)
        run(ep, cmd_free, &c);
}
