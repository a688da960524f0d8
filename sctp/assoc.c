/* One SCTP association over a usrsctp AF_CONN socket: options, send queue, reassembly, events. */
#include "assoc.h"
#include "crc32c.h"
#include "usrsctp_glue.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <usrsctp.h>

const struct agw_sctp_limits agw_sctp_default_limits = {
    .max_message_size = 256 * 1024,
    .peer_max_message_size = 256 * 1024,
    .send_buffer = 1024 * 1024,
    .recv_buffer = 1024 * 1024,
    .output_buffer = 1024 * 1024,
    .streams = 1024,
    .mtu = 1200,
};

/* Large enough for any notification usrsctp can produce (a stream reset naming every stream), so
   that notifications are always read whole. Shared: everything runs on one thread. */
#define RX_BUF_LEN (160 * 1024)
static _Alignas(16) uint8_t rx_buf[RX_BUF_LEN];

#define MIN_MTU 576 /* the IPv4 minimum datagram; less leaves no room for an INIT-ACK */

/* Process-wide, like usrsctp: every association runs on one thread; read from any thread (the
   metrics scrape), hence atomic. */
static _Atomic uint64_t checksum_errors;

struct packet {
    struct packet *next;
    size_t len;
    uint8_t data[];
};

struct event {
    struct event *next;
    struct agw_sctp_event ev;
    uint8_t *buf; /* owned: the data of a MESSAGE */
};

enum tx_kind { TX_MESSAGE, TX_RESET };

/* A message (or the bytes of it usrsctp has not taken yet), or a stream reset waiting for the
   messages queued before it. */
struct tx {
    struct tx *next;
    enum tx_kind kind;
    struct agw_sctp_sendinfo info;
    size_t len, off;
    uint8_t data[];
};

/* A message being received in pieces (usrsctp hands over at most RX_BUF_LEN per read). */
struct partial {
    struct partial *next;
    uint16_t stream;
    uint32_t ppid;
    bool unordered;
    bool dropping; /* over max_message_size: counted, not kept */
    int error;
    size_t len, cap;
    uint8_t *buf;
};

enum state { ST_CONNECTING, ST_UP, ST_DOWN };

struct agw_sctp_assoc {
    uintptr_t id;
    struct socket *so;
    enum state state;
    bool shutdown_wanted, shutdown_sent;
    struct agw_sctp_limits lim;
    uint16_t in_streams, out_streams;

    struct packet *out_head, *out_tail, *out_given;
    size_t out_bytes;

    struct event *ev_head, *ev_tail, *ev_given;
    size_t ev_bytes;
    bool read_paused;

    struct tx *tx_head, *tx_tail;
    size_t tx_bytes;
    bool tx_refused;

    struct partial *partials;
    bool skip_notification; /* the rest of a notification we could not read whole */
};

/* ---- events ---- */

static struct event *push_event(struct agw_sctp_assoc *a, enum agw_sctp_event_type type)
{
    struct event *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->ev.type = type;
    if (a->ev_tail != NULL)
        a->ev_tail->next = e;
    else
        a->ev_head = e;
    a->ev_tail = e;
    return e;
}

static void free_event(struct event *e)
{
    if (e != NULL)
        free(e->buf);
    free(e);
}

static void stream_event(struct agw_sctp_assoc *a, enum agw_sctp_event_type type, uint16_t stream,
                         int error)
{
    struct event *e = push_event(a, type);
    if (e != NULL) {
        e->ev.stream = stream;
        e->ev.error = error;
    }
}

/* ---- send queue ---- */

static void drop_tx(struct agw_sctp_assoc *a)
{
    while (a->tx_head != NULL) {
        struct tx *t = a->tx_head;
        a->tx_head = t->next;
        free(t);
    }
    a->tx_tail = NULL;
    a->tx_bytes = 0;
}

static void append_tx(struct agw_sctp_assoc *a, struct tx *t)
{
    t->next = NULL;
    if (a->tx_tail != NULL)
        a->tx_tail->next = t;
    else
        a->tx_head = t;
    a->tx_tail = t;
}

static void drop_partial(struct agw_sctp_assoc *a, uint16_t stream)
{
    for (struct partial **link = &a->partials; *link != NULL; link = &(*link)->next) {
        struct partial *p = *link;
        if (p->stream == stream) {
            *link = p->next;
            free(p->buf);
            free(p);
            return;
        }
    }
}

static void drop_partials(struct agw_sctp_assoc *a)
{
    while (a->partials != NULL) {
        struct partial *p = a->partials;
        a->partials = p->next;
        free(p->buf);
        free(p);
    }
}

static void go_down(struct agw_sctp_assoc *a, int error)
{
    if (a->state == ST_DOWN)
        return;
    a->state = ST_DOWN;
    drop_tx(a);
    drop_partials(a);
    struct event *e = push_event(a, AGW_SCTP_EVENT_DOWN);
    if (e != NULL)
        e->ev.error = error;
}

/* Ends the association for the peer too (an ABORT among the pending output). */
static void fail(struct agw_sctp_assoc *a, int error)
{
    struct sctp_sndinfo snd;
    memset(&snd, 0, sizeof(snd));
    snd.snd_flags = SCTP_ABORT;
    /* usrsctp refuses a NULL buffer with EFAULT even for zero bytes. */
    (void)usrsctp_sendv(a->so, "", 0, NULL, 0, &snd, (socklen_t)sizeof(snd), SCTP_SENDV_SNDINFO, 0);
    go_down(a, error);
}

/* One usrsctp_sendv of bytes of message t. With SCTP_EXPLICIT_EOR a non-blocking socket takes
   what fits and the message ends only with the piece that carries SCTP_EOR and is taken whole,
   so messages larger than usrsctp's send buffer go out in several calls. */
static ssize_t send_piece(struct agw_sctp_assoc *a, const struct agw_sctp_sendinfo *info,
                          const void *data, size_t len)
{
    struct sctp_sendv_spa spa;
    memset(&spa, 0, sizeof(spa));
    spa.sendv_flags = SCTP_SEND_SNDINFO_VALID;
    spa.sendv_sndinfo.snd_sid = info->stream;
    spa.sendv_sndinfo.snd_ppid = htonl(info->ppid);
    spa.sendv_sndinfo.snd_flags = SCTP_EOR | (info->unordered ? SCTP_UNORDERED : 0);
    if (info->pr != AGW_SCTP_PR_NONE) {
        spa.sendv_flags |= SCTP_SEND_PRINFO_VALID;
        spa.sendv_prinfo.pr_policy =
            info->pr == AGW_SCTP_PR_RTX ? SCTP_PR_SCTP_RTX : SCTP_PR_SCTP_TTL;
        spa.sendv_prinfo.pr_value = info->pr_value;
    }
    return usrsctp_sendv(a->so, data, len, NULL, 0, &spa, (socklen_t)sizeof(spa), SCTP_SENDV_SPA,
                         0);
}

static int reset_now(struct agw_sctp_assoc *a, uint16_t stream)
{
    union {
        struct sctp_reset_streams srs;
        uint8_t raw[sizeof(struct sctp_reset_streams) + sizeof(uint16_t)];
    } req;
    memset(&req, 0, sizeof(req));
    req.srs.srs_flags = SCTP_STREAM_RESET_OUTGOING;
    req.srs.srs_number_streams = 1;
    req.srs.srs_stream_list[0] = stream;
    if (usrsctp_setsockopt(a->so, IPPROTO_SCTP, SCTP_RESET_STREAMS, &req, sizeof(req)) == 0)
        return 0;
    /* One request may be outstanding at a time: retry when its answer arrives. */
    if (errno == EALREADY || errno == EBUSY || errno == EAGAIN)
        return -EAGAIN;
    return -errno;
}

/* Hands queued messages and resets to usrsctp in order until it takes no more. */
static void flush(struct agw_sctp_assoc *a)
{
    while (a->tx_head != NULL && a->state == ST_UP) {
        struct tx *t = a->tx_head;
        if (t->kind == TX_RESET) {
            int rc = reset_now(a, t->info.stream);
            if (rc == -EAGAIN)
                return;
            if (rc != 0)
                stream_event(a, AGW_SCTP_EVENT_STREAM_RESET_DONE, t->info.stream,
                             rc == -EOPNOTSUPP ? -EPERM : -EIO);
        } else {
            ssize_t n = send_piece(a, &t->info, t->data + t->off, t->len - t->off);
            if (n < 0 && (errno == EWOULDBLOCK || errno == EAGAIN))
                return;
            if (n >= 0) {
                t->off += (size_t)n;
                a->tx_bytes -= (size_t)n;
                if (t->off < t->len)
                    return;
            } else {
                a->tx_bytes -= t->len - t->off; /* refused for good: the association ends */
            }
        }
        a->tx_head = t->next;
        if (a->tx_head == NULL)
            a->tx_tail = NULL;
        free(t);
    }
    if (a->tx_head == NULL && a->shutdown_wanted && !a->shutdown_sent && a->state == ST_UP) {
        a->shutdown_sent = true;
        usrsctp_shutdown(a->so, SHUT_WR);
    }
    if (a->tx_refused && a->tx_bytes <= a->lim.send_buffer / 2) {
        a->tx_refused = false;
        push_event(a, AGW_SCTP_EVENT_WRITABLE);
    }
}

/* ---- receiving ---- */

static struct partial *find_partial(struct agw_sctp_assoc *a, uint16_t stream)
{
    for (struct partial *p = a->partials; p != NULL; p = p->next) {
        if (p->stream == stream)
            return p;
    }
    return NULL;
}

static void deliver(struct agw_sctp_assoc *a, uint16_t stream, uint32_t ppid, bool unordered,
                    uint8_t *buf, size_t len, bool dropped, int error)
{
    struct event *e =
        push_event(a, dropped ? AGW_SCTP_EVENT_MESSAGE_DROPPED : AGW_SCTP_EVENT_MESSAGE);
    if (e == NULL) {
        free(buf);
        return;
    }
    e->ev.stream = stream;
    e->ev.ppid = ppid;
    e->ev.unordered = unordered;
    e->ev.len = len;
    e->ev.error = error;
    if (!dropped) {
        e->buf = buf;
        e->ev.data = buf;
        a->ev_bytes += len;
    }
}

static void on_data(struct agw_sctp_assoc *a, const struct sctp_rcvinfo *rcv, size_t n, bool eor)
{
    uint16_t stream = rcv->rcv_sid;
    uint32_t ppid = ntohl(rcv->rcv_ppid);
    bool unordered = (rcv->rcv_flags & SCTP_UNORDERED) != 0;
    size_t max = a->lim.max_message_size;
    struct partial *p = find_partial(a, stream);
    if (p == NULL && eor) {
        if (n > max) {
            deliver(a, stream, ppid, unordered, NULL, n, true, -EMSGSIZE);
            return;
        }
        uint8_t *buf = malloc(n);
        if (buf == NULL) {
            deliver(a, stream, ppid, unordered, NULL, n, true, -ENOMEM);
            return;
        }
        memcpy(buf, rx_buf, n);
        deliver(a, stream, ppid, unordered, buf, n, false, 0);
        return;
    }
    if (p == NULL) {
        p = calloc(1, sizeof(*p));
        if (p == NULL) {
            /* Without memory for the bookkeeping the message cannot be followed: the stream's
               later pieces would look like new messages, so better end the association. */
            fail(a, -ENOMEM);
            return;
        }
        p->stream = stream;
        p->ppid = ppid;
        p->unordered = unordered;
        p->next = a->partials;
        a->partials = p;
    }
    if (!p->dropping && p->len + n > max) {
        p->dropping = true;
        p->error = -EMSGSIZE;
    }
    if (!p->dropping && p->len + n > p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64 * 1024;
        if (cap < p->len + n)
            cap = p->len + n;
        if (cap > max)
            cap = max;
        uint8_t *buf = realloc(p->buf, cap);
        if (buf == NULL) {
            p->dropping = true;
            p->error = -ENOMEM;
        } else {
            p->buf = buf;
            p->cap = cap;
        }
    }
    if (p->dropping) {
        free(p->buf);
        p->buf = NULL;
        p->cap = 0;
    } else {
        memcpy(p->buf + p->len, rx_buf, n);
    }
    p->len += n;
    if (!eor)
        return;
    uint8_t *buf = p->buf;
    p->buf = NULL;
    deliver(a, p->stream, p->ppid, p->unordered, buf, p->len, p->dropping, p->error);
    drop_partial(a, stream);
}

static void on_assoc_change(struct agw_sctp_assoc *a, size_t n)
{
    struct sctp_assoc_change sac;
    if (n < sizeof(sac))
        return;
    memcpy(&sac, rx_buf, sizeof(sac));
    switch (sac.sac_state) {
    case SCTP_COMM_UP:
    case SCTP_RESTART: {
        if (a->state == ST_DOWN)
            return;
        a->state = ST_UP;
        a->in_streams = sac.sac_inbound_streams;
        a->out_streams = sac.sac_outbound_streams;
        struct event *e = push_event(a, AGW_SCTP_EVENT_UP);
        if (e != NULL) {
            e->ev.in_streams = a->in_streams;
            e->ev.out_streams = a->out_streams;
        }
        break;
    }
    case SCTP_COMM_LOST:
        go_down(a, -ECONNRESET);
        break;
    case SCTP_SHUTDOWN_COMP:
        go_down(a, 0);
        break;
    case SCTP_CANT_STR_ASSOC:
        go_down(a, -ECONNREFUSED);
        break;
    default:
        break;
    }
}

static void on_stream_reset(struct agw_sctp_assoc *a, size_t n)
{
    struct sctp_stream_reset_event sre;
    if (n < sizeof(sre))
        return;
    memcpy(&sre, rx_buf, sizeof(sre));
    size_t len = sre.strreset_length < n ? sre.strreset_length : n;
    if (len < sizeof(sre))
        return;
    size_t count = (len - sizeof(sre)) / sizeof(uint16_t);
    int error = 0;
    if (sre.strreset_flags & SCTP_STREAM_RESET_DENIED)
        error = -EPERM;
    else if (sre.strreset_flags & SCTP_STREAM_RESET_FAILED)
        error = -EIO;
    bool incoming = (sre.strreset_flags & SCTP_STREAM_RESET_INCOMING_SSN) != 0;
    bool outgoing = (sre.strreset_flags & SCTP_STREAM_RESET_OUTGOING_SSN) != 0;
    /* An empty list means every stream. */
    size_t total = count > 0 ? count : (incoming ? a->in_streams : a->out_streams);
    for (size_t i = 0; i < total; i++) {
        uint16_t stream = (uint16_t)i;
        if (count > 0)
            memcpy(&stream, rx_buf + sizeof(sre) + i * sizeof(uint16_t), sizeof(stream));
        if (incoming && error == 0) {
            drop_partial(a, stream);
            stream_event(a, AGW_SCTP_EVENT_STREAM_CLOSED, stream, 0);
        }
        if (outgoing)
            stream_event(a, AGW_SCTP_EVENT_STREAM_RESET_DONE, stream, error);
    }
}

static void on_notification(struct agw_sctp_assoc *a, size_t n)
{
    struct sctp_tlv hdr;
    if (n < sizeof(hdr))
        return;
    memcpy(&hdr, rx_buf, sizeof(hdr));
    switch (hdr.sn_type) {
    case SCTP_ASSOC_CHANGE:
        on_assoc_change(a, n);
        break;
    case SCTP_STREAM_RESET_EVENT:
        on_stream_reset(a, n);
        break;
    case SCTP_PARTIAL_DELIVERY_EVENT: {
        struct sctp_pdapi_event pd;
        if (n >= sizeof(pd)) {
            memcpy(&pd, rx_buf, sizeof(pd));
            if (pd.pdapi_indication == SCTP_PARTIAL_DELIVERY_ABORTED)
                drop_partial(a, (uint16_t)pd.pdapi_stream);
        }
        break;
    }
    case SCTP_STREAM_CHANGE_EVENT: {
        struct sctp_stream_change_event sc;
        if (n >= sizeof(sc)) {
            memcpy(&sc, rx_buf, sizeof(sc));
            if ((sc.strchange_flags & (SCTP_STREAM_CHANGE_DENIED | SCTP_STREAM_CHANGE_FAILED)) ==
                0) {
                a->in_streams = sc.strchange_instrms;
                a->out_streams = sc.strchange_outstrms;
            }
        }
        break;
    }
    default:
        break;
    }
}

/* Reads what usrsctp holds for us until recv_buffer bytes of events wait for the caller. */
static void read_all(struct agw_sctp_assoc *a)
{
    while (a->so != NULL && a->ev_bytes < a->lim.recv_buffer) {
        struct sctp_rcvinfo rcv;
        memset(&rcv, 0, sizeof(rcv));
        socklen_t infolen = (socklen_t)sizeof(rcv);
        unsigned int infotype = 0;
        int flags = 0;
        ssize_t n = usrsctp_recvv(a->so, rx_buf, sizeof(rx_buf), NULL, NULL, &rcv, &infolen,
                                  &infotype, &flags);
        if (n <= 0)
            break;
        bool eor = (flags & MSG_EOR) != 0;
        if (flags & MSG_NOTIFICATION) {
            if (!a->skip_notification && eor)
                on_notification(a, (size_t)n);
            a->skip_notification = !eor;
            continue;
        }
        if (infotype == SCTP_RECVV_RCVINFO)
            on_data(a, &rcv, (size_t)n, eor);
    }
    a->read_paused = a->ev_bytes >= a->lim.recv_buffer;
}

void agw_sctp_assoc_serve(struct agw_sctp_assoc *a)
{
    read_all(a);
    flush(a);
}

void agw_sctp_assoc_take_packet(struct agw_sctp_assoc *a, const void *data, size_t len)
{
    if (len > a->lim.output_buffer || a->out_bytes > a->lim.output_buffer - len)
        return; /* the caller is not draining: a lost packet, which SCTP repairs */
    struct packet *p = malloc(sizeof(*p) + len);
    if (p == NULL)
        return;
    p->next = NULL;
    p->len = len;
    memcpy(p->data, data, len);
    /* usrsctp left the checksum to us (offload, see agw_sctp_init). */
    agw_sctp_checksum_set(p->data, len);
    if (a->out_tail != NULL)
        a->out_tail->next = p;
    else
        a->out_head = p;
    a->out_tail = p;
    a->out_bytes += len;
}

/* ---- public API ---- */

static int set_opt(struct socket *so, int level, int name, const void *value, size_t len)
{
    return usrsctp_setsockopt(so, level, name, value, (socklen_t)len) == 0 ? 0 : -EIO;
}

static int set_assoc_value(struct socket *so, int name, uint32_t value)
{
    struct sctp_assoc_value av = {.assoc_id = SCTP_FUTURE_ASSOC, .assoc_value = value};
    return set_opt(so, IPPROTO_SCTP, name, &av, sizeof(av));
}

static int configure(struct agw_sctp_assoc *a)
{
    const int on = 1;
    int rc = 0;
    rc |= set_opt(a->so, IPPROTO_SCTP, SCTP_RECVRCVINFO, &on, sizeof(on));
    rc |= set_opt(a->so, IPPROTO_SCTP, SCTP_EXPLICIT_EOR, &on, sizeof(on));
    /* Messages, not a byte stream: no Nagle delay for small ones. */
    rc |= set_opt(a->so, IPPROTO_SCTP, SCTP_NODELAY, &on, sizeof(on));
    rc |= set_assoc_value(a->so, SCTP_ENABLE_STREAM_RESET, SCTP_ENABLE_RESET_STREAM_REQ);
    /* DTLS carries no ECN bits. */
    rc |= set_assoc_value(a->so, SCTP_ECN_SUPPORTED, 0);
#ifdef SCTP_INTERLEAVING_SUPPORTED
    /* I-DATA (RFC 8260) needs fragment interleave level 2. */
    const int level = 2;
    if (set_assoc_value(a->so, SCTP_INTERLEAVING_SUPPORTED, 1) == 0)
        rc |= set_opt(a->so, IPPROTO_SCTP, SCTP_FRAGMENT_INTERLEAVE, &level, sizeof(level));
#endif
    struct sctp_initmsg init = {
        .sinit_num_ostreams = a->lim.streams,
        .sinit_max_instreams = a->lim.streams,
    };
    rc |= set_opt(a->so, IPPROTO_SCTP, SCTP_INITMSG, &init, sizeof(init));
    static const uint16_t events[] = {SCTP_ASSOC_CHANGE, SCTP_STREAM_RESET_EVENT,
                                      SCTP_PARTIAL_DELIVERY_EVENT, SCTP_STREAM_CHANGE_EVENT};
    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
        struct sctp_event ev = {.se_assoc_id = SCTP_FUTURE_ASSOC, .se_type = events[i], .se_on = 1};
        rc |= set_opt(a->so, IPPROTO_SCTP, SCTP_EVENT, &ev, sizeof(ev));
    }
    /* The path MTU is what a DTLS record in a UDP datagram leaves: no discovery over AF_CONN.
       usrsctp (0.9.5) sizes AF_CONN packets as path MTU + the 12-byte common header, so the
       header is taken off here for packets to stay within lim.mtu. */
    struct sctp_paddrparams pp;
    memset(&pp, 0, sizeof(pp));
    pp.spp_assoc_id = SCTP_FUTURE_ASSOC;
    pp.spp_flags = SPP_PMTUD_DISABLE;
    pp.spp_pathmtu = a->lim.mtu - (uint32_t)sizeof(struct sctp_common_header);
    rc |= set_opt(a->so, IPPROTO_SCTP, SCTP_PEER_ADDR_PARAMS, &pp, sizeof(pp));
    return rc == 0 ? 0 : -EIO;
}

static bool limits_valid(const struct agw_sctp_limits *l)
{
    return l->max_message_size > 0 && l->peer_max_message_size > 0 && l->send_buffer > 0 &&
           l->recv_buffer > 0 && l->output_buffer > 0 && l->streams > 0 && l->mtu >= MIN_MTU;
}

int agw_sctp_assoc_new(uint16_t local_port, uint16_t remote_port,
                       const struct agw_sctp_limits *limits, struct agw_sctp_assoc **out)
{
    if (out == NULL || !agw_sctp_glue_ready() || local_port == 0 || remote_port == 0)
        return -EINVAL;
    if (limits == NULL)
        limits = &agw_sctp_default_limits;
    if (!limits_valid(limits))
        return -EINVAL;
    struct agw_sctp_assoc *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    a->lim = *limits;
    a->state = ST_CONNECTING;
    int rc = agw_sctp_glue_attach(a, &a->id);
    if (rc != 0) {
        free(a);
        return rc;
    }
    rc = -EIO;
    a->so = usrsctp_socket(AF_CONN, SOCK_STREAM, IPPROTO_SCTP, NULL, NULL, 0, NULL);
    if (a->so == NULL)
        goto fail;
    if (usrsctp_set_non_blocking(a->so, 1) != 0 ||
        usrsctp_set_upcall(a->so, agw_sctp_glue_upcall, (void *)a->id) != 0)
        goto fail;
    if (configure(a) != 0)
        goto fail;
    struct sockaddr_conn sconn;
    memset(&sconn, 0, sizeof(sconn));
    sconn.sconn_family = AF_CONN;
    sconn.sconn_port = htons(local_port);
    sconn.sconn_addr = (void *)a->id;
    if (usrsctp_bind(a->so, (struct sockaddr *)&sconn, sizeof(sconn)) != 0)
        goto fail;
    sconn.sconn_port = htons(remote_port);
    if (usrsctp_connect(a->so, (struct sockaddr *)&sconn, sizeof(sconn)) != 0 &&
        errno != EINPROGRESS)
        goto fail;
    agw_sctp_glue_service();
    *out = a;
    return 0;
fail:
    agw_sctp_assoc_free(a);
    return rc;
}

void agw_sctp_assoc_free(struct agw_sctp_assoc *a)
{
    if (a == NULL)
        return;
    if (a->so != NULL) {
        /* Linger 0: close aborts at once instead of leaving a shutdown running inside usrsctp
           for an id nobody serves any more. */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        (void)usrsctp_setsockopt(a->so, SOL_SOCKET, SO_LINGER, &lg, (socklen_t)sizeof(lg));
        usrsctp_close(a->so);
        a->so = NULL;
    }
    agw_sctp_glue_detach(a->id);
    drop_tx(a);
    drop_partials(a);
    free_event(a->ev_given);
    while (a->ev_head != NULL) {
        struct event *e = a->ev_head;
        a->ev_head = e->next;
        free_event(e);
    }
    free(a->out_given);
    while (a->out_head != NULL) {
        struct packet *p = a->out_head;
        a->out_head = p->next;
        free(p);
    }
    free(a);
}

int agw_sctp_assoc_input(struct agw_sctp_assoc *a, const void *packet, size_t len)
{
    if (a == NULL || packet == NULL || len == 0)
        return -EINVAL;
    if (len > UINT16_MAX)
        return -EMSGSIZE; /* larger than any UDP payload */
    /* usrsctp does not verify (offload, see agw_sctp_init): a damaged packet stops here, as
       RFC 9260 §6.8 wants, and the peer retransmits what it carried. */
    if (!agw_sctp_checksum_ok(packet, len)) {
        atomic_fetch_add_explicit(&checksum_errors, 1, memory_order_relaxed);
        return 0;
    }
    usrsctp_conninput((void *)a->id, packet, len, 0);
    agw_sctp_glue_service();
    return 0;
}

uint64_t agw_sctp_checksum_errors(void)
{
    return atomic_load_explicit(&checksum_errors, memory_order_relaxed);
}

int agw_sctp_assoc_pending_output(struct agw_sctp_assoc *a, const uint8_t **packet, size_t *len)
{
    if (a == NULL || packet == NULL || len == NULL)
        return -EINVAL;
    free(a->out_given);
    a->out_given = NULL;
    struct packet *p = a->out_head;
    if (p == NULL)
        return 0;
    a->out_head = p->next;
    if (a->out_head == NULL)
        a->out_tail = NULL;
    a->out_bytes -= p->len;
    a->out_given = p;
    *packet = p->data;
    *len = p->len;
    return 1;
}

int agw_sctp_assoc_send(struct agw_sctp_assoc *a, const struct agw_sctp_sendinfo *info,
                        const void *data, size_t len)
{
    if (a == NULL || info == NULL || data == NULL || len == 0)
        return -EINVAL;
    if (a->state != ST_UP || a->shutdown_wanted)
        return -ENOTCONN;
    if (info->stream >= a->out_streams || info->pr > AGW_SCTP_PR_TTL)
        return -EINVAL;
    if (len > a->lim.peer_max_message_size)
        return -EMSGSIZE;
    /* One message of any size is taken into an empty queue, so tx_bytes may exceed the limit. */
    if (a->tx_bytes > 0 &&
        (a->tx_bytes >= a->lim.send_buffer || len > a->lim.send_buffer - a->tx_bytes)) {
        a->tx_refused = true;
        return -EAGAIN;
    }
    size_t off = 0;
    if (a->tx_head == NULL) {
        ssize_t n = send_piece(a, info, data, len);
        if (n < 0 && errno != EWOULDBLOCK && errno != EAGAIN) {
            int err = errno;
            agw_sctp_glue_service();
            return err == EPIPE || err == ENOTCONN || err == ECONNRESET ? -ENOTCONN : -EIO;
        }
        if (n > 0)
            off = (size_t)n;
    }
    if (off < len) {
        struct tx *t = malloc(sizeof(*t) + (len - off));
        if (t == NULL) {
            /* Part of the message may already be in usrsctp, unterminated: nothing can follow
               it on this association. */
            if (off > 0)
                fail(a, -ENOMEM);
            agw_sctp_glue_service();
            return -ENOMEM;
        }
        t->kind = TX_MESSAGE;
        t->info = *info;
        t->len = len - off;
        t->off = 0;
        memcpy(t->data, (const uint8_t *)data + off, len - off);
        append_tx(a, t);
        a->tx_bytes += len - off;
    }
    agw_sctp_glue_service();
    return 0;
}

size_t agw_sctp_assoc_buffered(const struct agw_sctp_assoc *a)
{
    return a != NULL ? a->tx_bytes : 0;
}

int agw_sctp_assoc_reset_stream(struct agw_sctp_assoc *a, uint16_t stream)
{
    if (a == NULL)
        return -EINVAL;
    if (a->state != ST_UP)
        return -ENOTCONN;
    if (stream >= a->out_streams)
        return -EINVAL;
    struct tx *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->kind = TX_RESET;
    t->info.stream = stream;
    append_tx(a, t);
    flush(a);
    agw_sctp_glue_service();
    return 0;
}

int agw_sctp_assoc_shutdown(struct agw_sctp_assoc *a)
{
    if (a == NULL)
        return -EINVAL;
    if (a->state != ST_UP)
        return -ENOTCONN;
    a->shutdown_wanted = true;
    flush(a);
    agw_sctp_glue_service();
    return 0;
}

int agw_sctp_assoc_abort(struct agw_sctp_assoc *a)
{
    if (a == NULL)
        return -EINVAL;
    if (a->state == ST_DOWN)
        return -ENOTCONN;
    fail(a, -ECONNRESET);
    agw_sctp_glue_service();
    return 0;
}

int agw_sctp_assoc_next_event(struct agw_sctp_assoc *a, struct agw_sctp_event *ev)
{
    if (a == NULL || ev == NULL)
        return -EINVAL;
    free_event(a->ev_given);
    a->ev_given = NULL;
    if (a->ev_head == NULL && a->read_paused) {
        read_all(a);
        agw_sctp_glue_service();
    }
    struct event *e = a->ev_head;
    if (e == NULL)
        return 0;
    a->ev_head = e->next;
    if (a->ev_head == NULL)
        a->ev_tail = NULL;
    if (e->ev.type == AGW_SCTP_EVENT_MESSAGE)
        a->ev_bytes -= e->ev.len;
    a->ev_given = e;
    *ev = e->ev;
    if (a->read_paused && a->ev_bytes < a->lim.recv_buffer) {
        read_all(a);
        agw_sctp_glue_service();
    }
    return 1;
}
