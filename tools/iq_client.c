/* The MGC side of Iq over UDP: registration, transactions, retransmission, pipelining. */
#include "tools/iq_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define DATAGRAM_MAX 65535
#define RECV_BATCH 64    /* datagrams read per wake-up, so that timers still run under load */
#define SEEN_TIDS 256    /* the gateway's recent request ids: duplicates are answered, not queued */
#define MID_TEXT_MAX 160 /* a mId as written in a header */
#define ERROR_TEXT_MAX 120
#define SOCKET_BUFFER (4 * 1024 * 1024)
#define NEVER UINT64_MAX

enum entry_state { ENTRY_FREE, ENTRY_WAITING, ENTRY_DONE };

/* A received message; replies and events that came in it share it. */
struct iq_rx {
    struct h248_message *msg;
    unsigned refs;
};

/* One transaction we sent. Its slot in the table is tid & mask. */
struct entry {
    uint32_t tid;
    enum entry_state state;
    bool sync; /* iq_client_request waits for it; else it is reported by poll_replies */
    bool got_pending;
    unsigned sends, pendings, interval_ms;
    uint64_t first_us, next_send_us, deadline_us, done_us;
    char *bytes; /* this transaction alone, for retransmission */
    size_t len;
    int status;
    struct iq_rx *rx;
    const struct h248_transaction *trans;
};

/* A mId held by the client (the text lives in buf). */
struct mid_buf {
    struct h248_mid mid;
    char buf[MID_TEXT_MAX];
};

struct iq_client {
    int fd;
    struct sockaddr_storage local, gateway;
    socklen_t gateway_len;
    bool has_gateway;
    struct mid_buf self;
    char self_text[MID_TEXT_MAX]; /* as written in a header */
    unsigned version;
    struct iq_client_options opts;

    /* How ServiceChanges on ROOT are answered. */
    unsigned reg_version;
    bool reg_redirect;
    struct mid_buf reg_mid;
    unsigned reg_error;
    char reg_error_text[ERROR_TEXT_MAX];
    bool reg_waiting;
    struct iq_event reg_event; /* the registration caught while reg_waiting */
    bool reg_caught;

    uint32_t next_tid;
    struct entry *table;
    uint32_t mask;
    unsigned waiting;     /* entries in ENTRY_WAITING */
    unsigned outstanding; /* pipelined entries not yet reported */
    uint32_t *done;       /* FIFO of pipelined tids finished, not yet reported */
    unsigned done_head, done_count;

    struct iq_event *events;
    unsigned ev_head, ev_count;

    uint32_t seen[SEEN_TIDS];
    unsigned seen_pos, seen_count;

    char *rxbuf;
    struct iq_client_stats stats;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t deadline_after(int timeout_ms)
{
    return timeout_ms < 0 ? NEVER : now_us() + (uint64_t)timeout_ms * 1000u;
}

/* ---- addresses ---- */

int iq_parse_addr(const char *text, struct sockaddr_storage *out, socklen_t *len_out)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port;
    size_t hlen;
    if (text == NULL)
        return -EINVAL;
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (end == NULL || end[1] != ':')
            return -EINVAL;
        hlen = (size_t)(end - text - 1);
        if (hlen >= sizeof(host))
            return -EINVAL;
        memcpy(host, text + 1, hlen);
        port = end + 2;
    } else {
        const char *colon = strchr(text, ':');
        if (colon == NULL || strchr(colon + 1, ':') != NULL)
            return -EINVAL; /* an IPv6 literal needs brackets */
        hlen = (size_t)(colon - text);
        if (hlen >= sizeof(host))
            return -EINVAL;
        memcpy(host, text, hlen);
        port = colon + 1;
    }
    host[hlen] = '\0';
    if (*port == '\0' || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port))
        return -EINVAL;
    unsigned long p = strtoul(port, NULL, 10);
    if (p > 65535)
        return -EINVAL;

    memset(out, 0, sizeof(*out));
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)p);
        *len_out = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)p);
        *len_out = sizeof(*v6);
        return 0;
    }
    return -EINVAL;
}

const char *iq_format_addr(const struct sockaddr_storage *a, char *buf, size_t cap)
{
    char host[INET6_ADDRSTRLEN];
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)a;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
        snprintf(buf, cap, "%s:%u", host, (unsigned)ntohs(v4->sin_port));
    } else if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)a;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
        snprintf(buf, cap, "[%s]:%u", host, (unsigned)ntohs(v6->sin6_port));
    } else {
        snprintf(buf, cap, "(unknown)");
    }
    return buf;
}

static socklen_t addr_len(const struct sockaddr_storage *a)
{
    return a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static bool addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

/* A mId is checked by the codec itself: it is parsed inside a minimal message. */
static int mid_parse(const char *text, struct mid_buf *out)
{
    char msg[MID_TEXT_MAX + 64];
    if (text == NULL || strlen(text) >= MID_TEXT_MAX || strpbrk(text, " \t\r\n;{}") != NULL)
        return -EINVAL;
    int n = snprintf(msg, sizeof(msg), "MEGACO/1 %s T=1{C=-{SC=ROOT{SV{MT=RS}}}}", text);
    if (n < 0 || (size_t)n >= sizeof(msg))
        return -EINVAL;
    struct h248_message *m = NULL;
    if (h248_parse_message(msg, (size_t)n, NULL, &m, NULL) < 0)
        return -EINVAL;
    int rc = 0;
    if (m->mid.text.len >= sizeof(out->buf)) {
        rc = -EINVAL;
    } else {
        out->mid = m->mid;
        memcpy(out->buf, m->mid.text.ptr, m->mid.text.len);
        out->buf[m->mid.text.len] = '\0';
        out->mid.text.ptr = out->buf;
    }
    h248_message_free(m);
    return rc;
}

/* ---- received messages and events ---- */

static struct iq_rx *rx_ref(struct iq_rx *rx)
{
    if (rx != NULL)
        rx->refs++;
    return rx;
}

static void rx_unref(struct iq_rx *rx)
{
    if (rx != NULL && --rx->refs == 0) {
        h248_message_free(rx->msg);
        free(rx);
    }
}

void iq_event_release(struct iq_event *ev)
{
    if (ev == NULL)
        return;
    rx_unref(ev->rx);
    ev->rx = NULL;
    ev->msg = NULL;
}

void iq_reply_release(struct iq_reply *reply)
{
    if (reply == NULL)
        return;
    rx_unref(reply->rx);
    reply->rx = NULL;
    reply->msg = NULL;
    reply->trans = NULL;
}

/* Queues an event; takes a reference on rx. The oldest is dropped when the queue is full. */
static void event_push(struct iq_client *c, enum iq_event_kind kind, struct iq_rx *rx,
                       const struct h248_parse_error *err, size_t len,
                       const struct sockaddr_storage *from)
{
    unsigned cap = c->opts.max_events;
    if (c->ev_count == cap) {
        iq_event_release(&c->events[c->ev_head]);
        c->ev_head = (c->ev_head + 1) % cap;
        c->ev_count--;
        c->stats.events_dropped++;
    }
    struct iq_event *ev = &c->events[(c->ev_head + c->ev_count) % cap];
    memset(ev, 0, sizeof(*ev));
    ev->kind = kind;
    ev->rx = rx_ref(rx);
    ev->msg = rx != NULL ? rx->msg : NULL;
    if (err != NULL)
        ev->error = *err;
    ev->len = len;
    ev->from = *from;
    c->ev_count++;
}

/* ---- sending ---- */

int iq_format_message(const struct h248_message *msg, enum h248_style style, char **out,
                      size_t *len_out)
{
    size_t need = 0;
    int rc = h248_encode_message(msg, style, NULL, 0, &need);
    if (rc != -ENOSPC && rc != 0)
        return rc;
    char *buf = malloc(need + 1);
    if (buf == NULL)
        return -ENOMEM;
    rc = h248_encode_message(msg, style, buf, need, &need);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[need] = '\0';
    *out = buf;
    if (len_out != NULL)
        *len_out = need;
    return 0;
}

static int send_to(struct iq_client *c, const void *data, size_t len,
                   const struct sockaddr_storage *to)
{
    if (c->opts.trace != NULL)
        c->opts.trace(c->opts.trace_arg, true, data, len, (const struct sockaddr *)to);
    ssize_t n;
    do {
        n = sendto(c->fd, data, len, 0, (const struct sockaddr *)to, addr_len(to));
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    c->stats.sent++;
    return 0;
}

static int send_to_gateway(struct iq_client *c, const void *data, size_t len)
{
    if (!c->has_gateway)
        return -EDESTADDRREQ;
    return send_to(c, data, len, &c->gateway);
}

int iq_client_send_raw(struct iq_client *c, const void *data, size_t len)
{
    if (len > DATAGRAM_MAX)
        return -EMSGSIZE;
    return send_to_gateway(c, data, len);
}

static struct h248_message *message_new(const struct iq_client *c, unsigned version)
{
    struct h248_message *m = h248_message_new();
    if (m == NULL)
        return NULL;
    m->version = version;
    m->mid = c->self.mid; /* the text stays in the client, which outlives this message */
    return m;
}

static int encode_send(struct iq_client *c, const struct h248_message *m,
                       const struct sockaddr_storage *to)
{
    char *bytes = NULL;
    size_t len = 0;
    int rc = iq_format_message(m, H248_STYLE_COMPACT, &bytes, &len);
    if (rc == 0)
        rc = len > DATAGRAM_MAX ? -EMSGSIZE : send_to(c, bytes, len, to);
    free(bytes);
    return rc;
}

/* K{a,b,...}: one TransactionResponseAck for the ImmAckRequired replies of one datagram. */
static int send_acks(struct iq_client *c, const uint32_t *tids, unsigned n,
                     const struct sockaddr_storage *to)
{
    struct h248_message *m = message_new(c, c->version);
    if (m == NULL)
        return -ENOMEM;
    int rc = -ENOMEM;
    struct h248_transaction *t = h248_alloc(m, sizeof(*t));
    if (t == NULL)
        goto out;
    t->kind = H248_TRANS_RESPONSE_ACK;
    struct h248_ack_range **tail = &t->acks;
    for (unsigned i = 0; i < n; i++) {
        struct h248_ack_range *r = h248_alloc(m, sizeof(*r));
        if (r == NULL)
            goto out;
        r->first = r->last = tids[i];
        *tail = r;
        tail = &r->next;
    }
    m->transactions = t;
    rc = encode_send(c, m, to);
    if (rc == 0)
        c->stats.acks_sent++;
out:
    h248_message_free(m);
    return rc;
}

/* ---- answering the gateway's requests ---- */

static bool str_is(const struct h248_str *s, const char *lit)
{
    size_t n = strlen(lit);
    return s->len == n && strncasecmp(s->ptr, lit, n) == 0;
}

static const struct h248_service_change *service_change_of(const struct h248_command *cmd)
{
    for (const struct h248_descriptor *d = cmd->descriptors; d != NULL; d = d->next) {
        if (d->kind == H248_DESC_SERVICE_CHANGE)
            return &d->u.service_change;
    }
    return NULL;
}

/* A ServiceChange on ROOT that (re)starts the control association. */
static bool is_registration(const struct h248_command *cmd)
{
    if (cmd->kind != H248_CMD_SERVICE_CHANGE || cmd->terminations == NULL ||
        cmd->terminations->next != NULL || !str_is(&cmd->terminations->text, "ROOT"))
        return false;
    const struct h248_service_change *sc = service_change_of(cmd);
    if (sc == NULL)
        return false;
    return sc->method == H248_SC_RESTART || sc->method == H248_SC_FAILOVER ||
           sc->method == H248_SC_DISCONNECTED || sc->method == H248_SC_HANDOFF;
}

static bool transaction_registers(const struct h248_transaction *t)
{
    for (const struct h248_action *a = t->actions; a != NULL; a = a->next) {
        for (const struct h248_command *cmd = a->commands; cmd != NULL; cmd = cmd->next) {
            if (is_registration(cmd))
                return true;
        }
    }
    return false;
}

static unsigned offered_version(const struct h248_message *req, const struct h248_command *cmd)
{
    const struct h248_service_change *sc = service_change_of(cmd);
    return sc != NULL && sc->has_version ? sc->version : req->version;
}

/* The reply descriptor of a registration: Version, MgcIdToTry or an error. */
static struct h248_descriptor *registration_answer(struct iq_client *c, struct h248_message *m,
                                                   unsigned offered, unsigned *agreed)
{
    struct h248_descriptor *d = h248_alloc(m, sizeof(*d));
    if (d == NULL)
        return NULL;
    if (c->reg_error != 0) {
        d->kind = H248_DESC_ERROR;
        d->u.error.code = (uint16_t)c->reg_error;
        d->u.error.has_text = c->reg_error_text[0] != '\0';
        d->u.error.text.ptr = c->reg_error_text;
        d->u.error.text.len = strlen(c->reg_error_text);
        return d;
    }
    d->kind = H248_DESC_SERVICE_CHANGE;
    if (c->reg_redirect) {
        d->u.service_change.has_mgc_id = true;
        d->u.service_change.mgc_id = c->reg_mid.mid;
        return d;
    }
    unsigned v = c->reg_version != 0 ? c->reg_version : c->opts.version;
    if (offered != 0 && offered < v)
        v = offered;
    d->u.service_change.has_version = true;
    d->u.service_change.version = v;
    *agreed = v;
    return d;
}

/* Answers every request transaction of req with an empty reply (a registration gets its proper
 * answer). *registered says whether the association was (re)started by req. Reply commands
 * borrow termination ids from req, which outlives the encoding. */
static int answer_requests(struct iq_client *c, const struct h248_message *req,
                           const struct sockaddr_storage *to, bool *registered)
{
    unsigned version = req->version < c->version && req->version > 0 ? req->version : c->version;
    unsigned agreed = 0;
    struct h248_message *m = message_new(c, version);
    if (m == NULL)
        return -ENOMEM;
    int rc = -ENOMEM;
    struct h248_transaction **ttail = &m->transactions;
    for (const struct h248_transaction *t = req->transactions; t != NULL; t = t->next) {
        if (t->kind != H248_TRANS_REQUEST)
            continue;
        struct h248_transaction *rt = h248_alloc(m, sizeof(*rt));
        if (rt == NULL)
            goto out;
        rt->kind = H248_TRANS_REPLY;
        rt->id = t->id;
        struct h248_action **atail = &rt->actions;
        for (const struct h248_action *a = t->actions; a != NULL; a = a->next) {
            struct h248_action *ra = h248_alloc(m, sizeof(*ra));
            if (ra == NULL)
                goto out;
            ra->context = a->context;
            struct h248_command **ctail = &ra->commands;
            for (const struct h248_command *cmd = a->commands; cmd != NULL; cmd = cmd->next) {
                struct h248_command *rc_cmd = h248_alloc(m, sizeof(*rc_cmd));
                if (rc_cmd == NULL)
                    goto out;
                rc_cmd->kind = cmd->kind;
                rc_cmd->term_list = cmd->term_list;
                rc_cmd->terminations = cmd->terminations;
                if (is_registration(cmd)) {
                    rc_cmd->descriptors =
                        registration_answer(c, m, offered_version(req, cmd), &agreed);
                    if (rc_cmd->descriptors == NULL)
                        goto out;
                    *registered = true;
                }
                *ctail = rc_cmd;
                ctail = &rc_cmd->next;
            }
            *atail = ra;
            atail = &ra->next;
        }
        *ttail = rt;
        ttail = &rt->next;
        c->stats.requests_answered++;
    }
    rc = m->transactions != NULL ? encode_send(c, m, to) : 0;
    if (agreed != 0)
        c->version = agreed;
out:
    h248_message_free(m);
    return rc;
}

/* True when every request of msg was seen before (a retransmission); records the new ones. */
static bool requests_seen(struct iq_client *c, const struct h248_message *msg)
{
    bool all_seen = true;
    for (const struct h248_transaction *t = msg->transactions; t != NULL; t = t->next) {
        if (t->kind != H248_TRANS_REQUEST)
            continue;
        bool seen = false;
        for (unsigned i = 0; i < c->seen_count && !seen; i++)
            seen = c->seen[i] == t->id;
        if (seen)
            continue;
        all_seen = false;
        c->seen[c->seen_pos] = t->id;
        c->seen_pos = (c->seen_pos + 1) % SEEN_TIDS;
        if (c->seen_count < SEEN_TIDS)
            c->seen_count++;
    }
    return all_seen;
}

/* ---- transactions ---- */

static struct entry *entry_of(struct iq_client *c, uint32_t tid)
{
    struct entry *e = &c->table[tid & c->mask];
    return e->state != ENTRY_FREE && e->tid == tid ? e : NULL;
}

static void entry_clear(struct entry *e)
{
    free(e->bytes);
    rx_unref(e->rx);
    memset(e, 0, sizeof(*e));
}

static void entry_finish(struct iq_client *c, struct entry *e, int status, struct iq_rx *rx,
                         const struct h248_transaction *trans)
{
    e->state = ENTRY_DONE;
    e->status = status;
    e->rx = rx_ref(rx);
    e->trans = trans;
    e->done_us = now_us();
    free(e->bytes);
    e->bytes = NULL;
    c->waiting--;
    if (status == -ETIMEDOUT)
        c->stats.timeouts++;
    if (!e->sync) {
        c->done[(c->done_head + c->done_count) & c->mask] = e->tid;
        c->done_count++;
    }
}

static void entry_pending(struct iq_client *c, struct entry *e)
{
    c->stats.pendings++;
    e->pendings++;
    if (e->pendings > c->opts.max_pendings) {
        entry_finish(c, e, -ETIMEDOUT, NULL, NULL);
        return;
    }
    e->got_pending = true;
    e->next_send_us = NEVER;
    e->deadline_us = now_us() + (uint64_t)c->opts.pending_timeout_ms * 1000u;
}

static void fill_reply(const struct entry *e, struct iq_reply *r)
{
    memset(r, 0, sizeof(*r));
    r->tid = e->tid;
    r->status = e->status;
    r->rx = e->rx;
    r->msg = e->rx != NULL ? e->rx->msg : NULL;
    r->trans = e->trans;
    r->sends = e->sends;
    r->pendings = e->pendings;
    r->latency_us = e->done_us - e->first_us;
}

/* Retransmits what is due and ends what timed out; returns the next time anything is due. */
static uint64_t run_timers(struct iq_client *c)
{
    uint64_t next = NEVER;
    if (c->waiting == 0)
        return next;
    uint64_t now = now_us();
    for (uint32_t i = 0; i <= c->mask; i++) {
        struct entry *e = &c->table[i];
        if (e->state != ENTRY_WAITING)
            continue;
        if (now >= e->deadline_us) {
            entry_finish(c, e, -ETIMEDOUT, NULL, NULL);
            continue;
        }
        if (now >= e->next_send_us) {
            /* A failed copy is like a lost one: the schedule goes on. */
            send_to_gateway(c, e->bytes, e->len);
            c->stats.retransmissions++;
            e->sends++;
            e->interval_ms = e->interval_ms * 2 < c->opts.retransmit_max_ms
                                 ? e->interval_ms * 2
                                 : c->opts.retransmit_max_ms;
            e->next_send_us =
                e->sends < c->opts.max_tries ? now + (uint64_t)e->interval_ms * 1000u : NEVER;
        }
        if (e->next_send_us < next)
            next = e->next_send_us;
        if (e->deadline_us < next)
            next = e->deadline_us;
    }
    return next;
}

/* The only sole outstanding transaction, to which a message-level error can be attributed. */
static struct entry *sole_waiting(struct iq_client *c)
{
    if (c->waiting != 1)
        return NULL;
    for (uint32_t i = 0; i <= c->mask; i++) {
        if (c->table[i].state == ENTRY_WAITING)
            return &c->table[i];
    }
    return NULL;
}

static void handle_datagram(struct iq_client *c, const char *data, size_t len,
                            const struct sockaddr_storage *from)
{
    c->stats.received++;
    if (c->opts.trace != NULL)
        c->opts.trace(c->opts.trace_arg, false, data, len, (const struct sockaddr *)from);
    if (c->has_gateway && !addr_equal(from, &c->gateway)) {
        c->stats.foreign++;
        return;
    }
    struct h248_message *msg = NULL;
    struct h248_parse_error err;
    if (h248_parse_message(data, len, c->opts.limits, &msg, &err) < 0) {
        c->stats.garbage++;
        event_push(c, IQ_EVENT_GARBAGE, NULL, &err, len, from);
        return;
    }
    struct iq_rx *rx = malloc(sizeof(*rx));
    if (rx == NULL) {
        h248_message_free(msg);
        return;
    }
    rx->msg = msg;
    rx->refs = 1;

    bool unclaimed = false, has_request = false;
    uint32_t acks[16];
    unsigned n_acks = 0;
    if (msg->error != NULL) {
        struct entry *e = sole_waiting(c);
        if (e != NULL) {
            entry_finish(c, e, 0, rx, NULL);
        } else {
            c->stats.unmatched++;
            unclaimed = true;
        }
    }
    for (const struct h248_transaction *t = msg->transactions; t != NULL; t = t->next) {
        struct entry *e = entry_of(c, t->id);
        bool mine = e != NULL && e->state == ENTRY_WAITING;
        switch (t->kind) {
        case H248_TRANS_REPLY:
            /* A duplicate reply is acked again: our first K may have been lost. */
            if (t->imm_ack_required && n_acks < sizeof(acks) / sizeof(acks[0]))
                acks[n_acks++] = t->id;
            if (mine) {
                entry_finish(c, e, 0, rx, t);
            } else {
                c->stats.unmatched++;
                unclaimed = true;
            }
            break;
        case H248_TRANS_PENDING:
            if (mine) {
                entry_pending(c, e);
            } else {
                c->stats.unmatched++;
                unclaimed = true;
            }
            break;
        case H248_TRANS_REQUEST:
            has_request = true;
            break;
        case H248_TRANS_RESPONSE_ACK:
        case H248_TRANS_SEGMENT_REPLY:
            break;
        }
    }
    if (n_acks > 0)
        send_acks(c, acks, n_acks, from);
    if (has_request) {
        bool registered = false;
        bool duplicate = requests_seen(c, msg);
        answer_requests(c, msg, from, &registered);
        if (registered && !c->has_gateway) {
            c->gateway = *from;
            c->gateway_len = addr_len(from);
            c->has_gateway = true;
        }
        /* A retransmission is answered again (above) but reported once. */
        if (!duplicate && registered && c->reg_waiting && !c->reg_caught) {
            memset(&c->reg_event, 0, sizeof(c->reg_event));
            c->reg_event.kind = IQ_EVENT_REQUEST;
            c->reg_event.rx = rx_ref(rx);
            c->reg_event.msg = msg;
            c->reg_event.len = len;
            c->reg_event.from = *from;
            c->reg_caught = true;
        } else if (!duplicate) {
            event_push(c, IQ_EVENT_REQUEST, rx, NULL, len, from);
        }
    } else if (unclaimed) {
        event_push(c, IQ_EVENT_OTHER, rx, NULL, len, from);
    }
    rx_unref(rx);
}

/* Waits for datagrams until deadline or the next timer, handles what came and runs the timers.
 * Callers loop on it until their condition holds or their deadline passed. */
static int pump(struct iq_client *c, uint64_t deadline)
{
    uint64_t next = run_timers(c);
    if (deadline < next)
        next = deadline;
    uint64_t now = now_us();
    int wait_ms;
    if (next == NEVER)
        wait_ms = -1;
    else if (next <= now)
        wait_ms = 0;
    else
        wait_ms = (next - now + 999) / 1000 > INT_MAX ? INT_MAX : (int)((next - now + 999) / 1000);

    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int n = poll(&pfd, 1, wait_ms);
    if (n < 0 && errno != EINTR)
        return -errno;
    if (n > 0) {
        for (int i = 0; i < RECV_BATCH; i++) {
            struct sockaddr_storage from;
            socklen_t flen = sizeof(from);
            ssize_t got =
                recvfrom(c->fd, c->rxbuf, DATAGRAM_MAX, 0, (struct sockaddr *)&from, &flen);
            if (got < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNREFUSED)
                    break;
                return -errno;
            }
            handle_datagram(c, c->rxbuf, (size_t)got, &from);
        }
    }
    run_timers(c);
    return 0;
}

/* Stamps our header and fresh ids onto msg; every transaction must be a request. */
static int stamp(struct iq_client *c, struct h248_message *msg, bool single, unsigned *count)
{
    unsigned n = 0;
    if (msg->error != NULL || msg->transactions == NULL)
        return -EINVAL;
    for (const struct h248_transaction *t = msg->transactions; t != NULL; t = t->next) {
        if (t->kind != H248_TRANS_REQUEST)
            return -EINVAL;
        n++;
    }
    if (single && n != 1)
        return -EINVAL;
    uint32_t tid = c->next_tid;
    for (unsigned i = 0; i < n; i++) {
        uint32_t id = tid + i;
        if (id == 0 || c->table[id & c->mask].state != ENTRY_FREE)
            return -ENOBUFS; /* a straggler still holds the slot: poll first */
    }
    msg->version = c->version;
    msg->mid = c->self.mid;
    if (h248_str_copy(msg, &msg->mid.text, c->self.buf, strlen(c->self.buf)) < 0)
        return -ENOMEM;
    for (struct h248_transaction *t = msg->transactions; t != NULL; t = t->next)
        t->id = tid++;
    *count = n;
    return 0;
}

/* Encodes transaction t of msg on its own (for retransmission). */
static int encode_one(struct h248_message *msg, struct h248_transaction *t, char **out, size_t *len)
{
    struct h248_transaction *saved_list = msg->transactions, *saved_next = t->next;
    msg->transactions = t;
    t->next = NULL;
    int rc = iq_format_message(msg, H248_STYLE_COMPACT, out, len);
    msg->transactions = saved_list;
    t->next = saved_next;
    return rc;
}

static int send_request(struct iq_client *c, struct h248_message *msg, int timeout_ms, bool sync,
                        uint32_t *tid_out)
{
    unsigned n = 0;
    int rc = stamp(c, msg, sync, &n);
    if (rc < 0)
        return rc;
    char *bytes = NULL;
    size_t len = 0;
    rc = iq_format_message(msg, H248_STYLE_COMPACT, &bytes, &len);
    if (rc < 0)
        return rc;
    if (len > DATAGRAM_MAX) {
        free(bytes);
        return -EMSGSIZE; /* Annex D.1: no segmentation on UDP */
    }
    uint64_t now = now_us();
    uint64_t schedule = 0;
    for (unsigned i = 0, iv = c->opts.retransmit_ms; i < c->opts.max_tries; i++) {
        schedule += iv;
        iv = iv * 2 < c->opts.retransmit_max_ms ? iv * 2 : c->opts.retransmit_max_ms;
    }
    uint64_t deadline = now + schedule * 1000u;
    if (timeout_ms > 0 && now + (uint64_t)timeout_ms * 1000u < deadline)
        deadline = now + (uint64_t)timeout_ms * 1000u;

    unsigned made = 0;
    for (struct h248_transaction *t = msg->transactions; t != NULL; t = t->next, made++) {
        struct entry *e = &c->table[t->id & c->mask];
        memset(e, 0, sizeof(*e));
        if (n == 1) {
            e->bytes = bytes;
            e->len = len;
            bytes = NULL;
        } else if ((rc = encode_one(msg, t, &e->bytes, &e->len)) < 0) {
            break;
        }
        e->tid = t->id;
        e->state = ENTRY_WAITING;
        e->sync = sync;
        e->sends = 1;
        e->interval_ms = c->opts.retransmit_ms;
        e->first_us = now;
        e->next_send_us = c->opts.max_tries > 1 ? now + (uint64_t)e->interval_ms * 1000u : NEVER;
        e->deadline_us = deadline;
    }
    if (rc == 0) {
        const char *data = bytes != NULL ? bytes : c->table[msg->transactions->id & c->mask].bytes;
        rc = send_to_gateway(c, data, len);
        /* The socket being short of buffers is like a lost datagram: retransmission covers it. */
        if (rc == -EAGAIN || rc == -ENOBUFS || rc == -ENOMEM)
            rc = 0;
    }
    free(bytes);
    if (rc < 0) {
        struct h248_transaction *t = msg->transactions;
        for (unsigned i = 0; i < made; i++, t = t->next)
            entry_clear(&c->table[t->id & c->mask]);
        return rc;
    }
    c->waiting += n;
    if (!sync)
        c->outstanding += n;
    *tid_out = c->next_tid;
    c->next_tid += n;
    if (c->next_tid == 0 || c->next_tid > 0xfffffff0u)
        c->next_tid = 1;
    return 0;
}

int iq_client_send_request(struct iq_client *c, struct h248_message *msg, int timeout_ms,
                           uint32_t *tid_out)
{
    return send_request(c, msg, timeout_ms, false, tid_out);
}

int iq_client_request(struct iq_client *c, struct h248_message *msg, int timeout_ms,
                      struct iq_reply *reply)
{
    uint32_t tid = 0;
    memset(reply, 0, sizeof(*reply));
    int rc = send_request(c, msg, timeout_ms, true, &tid);
    if (rc < 0)
        return rc;
    struct entry *e = entry_of(c, tid);
    while (e->state == ENTRY_WAITING) {
        rc = pump(c, NEVER); /* the entry's own deadline bounds the wait */
        if (rc < 0) {
            c->waiting--;
            entry_clear(e);
            return rc;
        }
    }
    fill_reply(e, reply);
    e->rx = NULL; /* the reference moves to reply */
    rc = e->status;
    entry_clear(e);
    if (rc < 0)
        iq_reply_release(reply);
    return rc;
}

int iq_client_request_text(struct iq_client *c, const char *text, size_t len, int timeout_ms,
                           struct iq_reply *reply, struct h248_parse_error *err)
{
    struct h248_message *msg = NULL;
    memset(reply, 0, sizeof(*reply));
    int rc = iq_client_parse_text(c, text, len, &msg, err);
    if (rc < 0)
        return rc;
    rc = iq_client_request(c, msg, timeout_ms, reply);
    h248_message_free(msg);
    return rc;
}

int iq_client_poll_replies(struct iq_client *c, int timeout_ms, iq_reply_cb cb, void *arg)
{
    uint64_t deadline = deadline_after(timeout_ms);
    while (c->done_count == 0) {
        if (c->outstanding == 0 || now_us() >= deadline)
            return 0;
        int rc = pump(c, deadline);
        if (rc < 0)
            return rc;
    }
    int reported = 0;
    /* Only what was finished on entry: cb may send requests that finish later. */
    for (unsigned n = c->done_count; n > 0; n--) {
        uint32_t tid = c->done[c->done_head];
        c->done_head = (c->done_head + 1) & c->mask;
        c->done_count--;
        struct entry *e = entry_of(c, tid);
        struct iq_reply r;
        fill_reply(e, &r);
        e->rx = NULL;
        entry_clear(e);
        c->outstanding--;
        if (cb != NULL)
            cb(arg, &r);
        iq_reply_release(&r);
        reported++;
    }
    return reported;
}

unsigned iq_client_outstanding(const struct iq_client *c)
{
    return c->outstanding;
}

const struct h248_error_desc *iq_reply_error(const struct iq_reply *reply)
{
    if (reply->msg == NULL)
        return NULL;
    if (reply->trans == NULL)
        return reply->msg->error;
    if (reply->trans->error != NULL)
        return reply->trans->error;
    for (const struct h248_action *a = reply->trans->actions; a != NULL; a = a->next) {
        for (const struct h248_command *cmd = a->commands; cmd != NULL; cmd = cmd->next) {
            for (const struct h248_descriptor *d = cmd->descriptors; d != NULL; d = d->next) {
                if (d->kind == H248_DESC_ERROR)
                    return &d->u.error;
            }
        }
        if (a->error != NULL)
            return a->error;
    }
    return NULL;
}

/* ---- events and registration ---- */

static void event_take(struct iq_client *c, unsigned index, struct iq_event *ev)
{
    unsigned cap = c->opts.max_events;
    unsigned pos = (c->ev_head + index) % cap;
    *ev = c->events[pos];
    /* Close the gap: later events move one place towards the head. */
    for (unsigned i = index; i + 1 < c->ev_count; i++)
        c->events[(c->ev_head + i) % cap] = c->events[(c->ev_head + i + 1) % cap];
    c->ev_count--;
}

int iq_client_recv(struct iq_client *c, int timeout_ms, struct iq_event *ev)
{
    uint64_t deadline = deadline_after(timeout_ms);
    while (c->ev_count == 0) {
        if (now_us() >= deadline)
            return -ETIMEDOUT;
        int rc = pump(c, deadline);
        if (rc < 0)
            return rc;
    }
    event_take(c, 0, ev);
    return 0;
}

int iq_client_set_registration_reply(struct iq_client *c, const struct iq_register_reply *how)
{
    static const struct iq_register_reply accept = {0};
    if (how == NULL)
        how = &accept;
    if (how->error_code > 9999 || how->version > 99)
        return -EINVAL;
    if (how->redirect_mid != NULL && mid_parse(how->redirect_mid, &c->reg_mid) < 0)
        return -EINVAL;
    c->reg_version = how->version;
    c->reg_redirect = how->redirect_mid != NULL;
    c->reg_error = how->error_code;
    c->reg_error_text[0] = '\0';
    if (how->error_text != NULL) {
        /* A quotedString holds no DQUOTE and, here, nothing unprintable. */
        size_t n = 0;
        for (const char *p = how->error_text; *p != '\0' && n + 1 < ERROR_TEXT_MAX; p++)
            c->reg_error_text[n++] = *p == '"' || *p < 0x20 || *p > 0x7e ? '\'' : *p;
        c->reg_error_text[n] = '\0';
    }
    return 0;
}

bool iq_is_registration(const struct h248_message *msg)
{
    for (const struct h248_transaction *t = msg->transactions; t != NULL; t = t->next) {
        if (t->kind == H248_TRANS_REQUEST && transaction_registers(t))
            return true;
    }
    return false;
}

int iq_client_wait_registration(struct iq_client *c, int timeout_ms,
                                const struct iq_register_reply *how,
                                struct sockaddr_storage *gateway_out, struct iq_event *request_out)
{
    int rc = iq_client_set_registration_reply(c, how);
    if (rc < 0)
        return rc;

    /* One that was answered before this call sits in the event queue. */
    for (unsigned i = 0; i < c->ev_count && !c->reg_caught; i++) {
        const struct iq_event *ev = &c->events[(c->ev_head + i) % c->opts.max_events];
        if (ev->kind == IQ_EVENT_REQUEST && iq_is_registration(ev->msg)) {
            event_take(c, i, &c->reg_event);
            c->reg_caught = true;
        }
    }

    uint64_t deadline = deadline_after(timeout_ms);
    c->reg_waiting = true;
    while (!c->reg_caught) {
        if (now_us() >= deadline) {
            rc = -ETIMEDOUT;
            break;
        }
        if ((rc = pump(c, deadline)) < 0)
            break;
    }
    c->reg_waiting = false;
    if (rc < 0)
        return rc;
    c->reg_caught = false;
    if (gateway_out != NULL)
        *gateway_out = c->reg_event.from;
    if (request_out != NULL)
        *request_out = c->reg_event;
    else
        iq_event_release(&c->reg_event);
    memset(&c->reg_event, 0, sizeof(c->reg_event));
    return 0;
}

/* ---- text input ---- */

static size_t skip_blank(const char *p, size_t len, size_t i)
{
    while (i < len) {
        if (p[i] == ';') {
            while (i < len && p[i] != '\n')
                i++;
        } else if (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n') {
            i++;
        } else {
            break;
        }
    }
    return i;
}

static bool starts_with_ci(const char *p, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len >= n && strncasecmp(p, lit, n) == 0;
}

int iq_client_parse_text(const struct iq_client *c, const char *text, size_t len,
                         struct h248_message **out, struct h248_parse_error *err)
{
    enum { WHOLE, TRANSACTIONS, ACTIONS } shape = TRANSACTIONS;
    size_t i = skip_blank(text, len, 0);
    if (starts_with_ci(text + i, len - i, "MEGACO/") || starts_with_ci(text + i, len - i, "!/") ||
        starts_with_ci(text + i, len - i, "Authentication") ||
        starts_with_ci(text + i, len - i, "AU=")) {
        shape = WHOLE;
    } else {
        size_t w = i;
        while (w < len &&
               ((text[w] >= 'a' && text[w] <= 'z') || (text[w] >= 'A' && text[w] <= 'Z')))
            w++;
        size_t after = skip_blank(text, len, w);
        bool is_context = (w - i == 1 && (text[i] == 'C' || text[i] == 'c')) ||
                          (w - i == 7 && strncasecmp(text + i, "Context", 7) == 0);
        if (is_context && after < len && text[after] == '=')
            shape = ACTIONS;
    }
    if (shape == WHOLE)
        return h248_parse_message(text, len, c->opts.limits, out, err);

    const char *open = shape == ACTIONS ? "T=1{" : "";
    const char *close = shape == ACTIONS ? "}" : "";
    char header[MID_TEXT_MAX + 32];
    int hn = snprintf(header, sizeof(header), "MEGACO/%u %s\n%s", c->version, c->self_text, open);
    if (hn < 0 || (size_t)hn >= sizeof(header))
        return -EINVAL;
    size_t total = (size_t)hn + len + strlen(close);
    char *buf = malloc(total);
    if (buf == NULL)
        return -ENOMEM;
    memcpy(buf, header, (size_t)hn);
    memcpy(buf + hn, text, len);
    memcpy(buf + hn + len, close, strlen(close));
    int rc = h248_parse_message(buf, total, c->opts.limits, out, err);
    if (rc < 0 && err != NULL && err->offset >= (size_t)hn)
        err->offset -= (size_t)hn; /* point into what the caller wrote */
    free(buf);
    return rc;
}

/* ---- lifetime ---- */

static uint32_t random_tid(void)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = (uint32_t)now_us() ^ (uint32_t)getpid() << 16;
    /* Far from the wrap, and never 0. */
    return 1 + r % 0x40000000u;
}

static void options_fill(struct iq_client_options *o, const struct iq_client_options *in)
{
    if (in != NULL)
        *o = *in;
    else
        memset(o, 0, sizeof(*o));
    if (o->version == 0 || o->version > 3)
        o->version = 3;
    if (o->retransmit_ms == 0)
        o->retransmit_ms = 200;
    if (o->retransmit_max_ms == 0)
        o->retransmit_max_ms = 4000;
    if (o->retransmit_max_ms < o->retransmit_ms)
        o->retransmit_max_ms = o->retransmit_ms;
    if (o->max_tries == 0)
        o->max_tries = 5;
    if (o->pending_timeout_ms == 0)
        o->pending_timeout_ms = 10000;
    if (o->max_pendings == 0)
        o->max_pendings = 20;
    if (o->max_outstanding == 0)
        o->max_outstanding = 1024;
    if (o->max_outstanding > 1u << 20)
        o->max_outstanding = 1u << 20;
    if (o->max_events == 0)
        o->max_events = 1024;
    if (o->first_tid == 0)
        o->first_tid = random_tid();
}

int iq_client_set_gateway(struct iq_client *c, const char *gateway)
{
    struct sockaddr_storage a;
    socklen_t len;
    if (iq_parse_addr(gateway, &a, &len) < 0)
        return -EINVAL;
    if (a.ss_family != c->local.ss_family)
        return -EAFNOSUPPORT;
    c->gateway = a;
    c->gateway_len = len;
    c->has_gateway = true;
    return 0;
}

int iq_client_open(const char *local, const char *gateway, const char *mid,
                   const struct iq_client_options *opts, struct iq_client **out)
{
    struct sockaddr_storage la;
    socklen_t llen;
    if (iq_parse_addr(local, &la, &llen) < 0)
        return -EINVAL;
    struct iq_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->fd = -1;
    options_fill(&c->opts, opts);
    c->version = c->opts.version;
    c->next_tid = c->opts.first_tid;
    uint32_t cap = 1;
    while (cap < c->opts.max_outstanding)
        cap <<= 1;
    c->mask = cap - 1;
    int rc = -ENOMEM;
    c->table = calloc(cap, sizeof(*c->table));
    c->done = calloc(cap, sizeof(*c->done));
    c->events = calloc(c->opts.max_events, sizeof(*c->events));
    c->rxbuf = malloc(DATAGRAM_MAX + 1);
    if (c->table == NULL || c->done == NULL || c->events == NULL || c->rxbuf == NULL)
        goto fail;

    c->fd = socket(la.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        rc = -errno;
        goto fail;
    }
    int size = SOCKET_BUFFER;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)); /* best effort */
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    if (bind(c->fd, (struct sockaddr *)&la, llen) < 0) {
        rc = -errno;
        goto fail;
    }
    socklen_t blen = sizeof(c->local);
    if (getsockname(c->fd, (struct sockaddr *)&c->local, &blen) < 0) {
        rc = -errno;
        goto fail;
    }
    if (gateway != NULL && (rc = iq_client_set_gateway(c, gateway)) < 0)
        goto fail;

    if (mid != NULL) {
        snprintf(c->self_text, sizeof(c->self_text), "%s", mid);
    } else {
        /* The port goes after the brackets, for IPv4 as for IPv6: "[192.0.2.1]:2944". */
        char host[INET6_ADDRSTRLEN] = "";
        unsigned port;
        if (c->local.ss_family == AF_INET) {
            const struct sockaddr_in *v4 = (const struct sockaddr_in *)&c->local;
            inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
            port = ntohs(v4->sin_port);
        } else {
            const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&c->local;
            inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
            port = ntohs(v6->sin6_port);
        }
        snprintf(c->self_text, sizeof(c->self_text), "[%s]:%u", host, port);
    }
    if (mid_parse(c->self_text, &c->self) < 0) {
        rc = -EINVAL;
        goto fail;
    }
    *out = c;
    return 0;
fail:
    iq_client_close(c);
    return rc;
}

void iq_client_close(struct iq_client *c)
{
    if (c == NULL)
        return;
    if (c->table != NULL) {
        for (uint32_t i = 0; i <= c->mask; i++)
            entry_clear(&c->table[i]);
    }
    if (c->events != NULL) {
        for (unsigned i = 0; i < c->ev_count; i++)
            iq_event_release(&c->events[(c->ev_head + i) % c->opts.max_events]);
    }
    iq_event_release(&c->reg_event);
    if (c->fd >= 0)
        close(c->fd);
    free(c->table);
    free(c->done);
    free(c->events);
    free(c->rxbuf);
    free(c);
}

int iq_client_local_addr(const struct iq_client *c, struct sockaddr_storage *out)
{
    *out = c->local;
    return 0;
}

int iq_client_gateway_addr(const struct iq_client *c, struct sockaddr_storage *out)
{
    if (!c->has_gateway)
        return -ENOTCONN;
    *out = c->gateway;
    return 0;
}

unsigned iq_client_version(const struct iq_client *c)
{
    return c->version;
}

void iq_client_get_stats(const struct iq_client *c, struct iq_client_stats *out)
{
    *out = c->stats;
}
