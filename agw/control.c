/* The control loop's Iq endpoint: UDP transport, the transaction layer, the association with
 * the MGC (registration, failover, inactivity) and dispatch of commands to the model. */
#include "agw/agw.h"
#include "h248/transaction.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum association { ASSOC_REGISTERING, ASSOC_REGISTERED, ASSOC_SHUTTING_DOWN, ASSOC_DOWN };

/* A transaction whose reply waits for the workers. Its address is the barrier cookie. */
struct pending_exec {
    struct pending_exec *prev, *next;
    struct agw_exec x;
    unsigned barriers_left;
    uint64_t peer; /* struct mgc_peer key */
    uint32_t tid;
    unsigned label; /* the request's first command, for the transaction counters */
};

/* An MGC the gateway talks to. The key names it in the transaction tables and in the replies
 * still waiting for the workers: an address kept by a reload keeps its key, and a key is never
 * reused, so what was left of a removed MGC can reach no one else. */
struct mgc_peer {
    struct sockaddr_storage addr;
    uint64_t key;
};

/* A barrier sent to a worker to time its loop (agw_control_probe_workers). */
struct worker_probe {
    bool out;         /* sent, not back yet */
    uint64_t sent_ns; /* uv_hrtime */
    int64_t rtt_ns;   /* the last round trip; -1 before the first */
};

/* Cause texts the workers report (relay.c, tls/session.c), by their start. */
static const struct {
    const char *prefix, *name;
} leg_causes[AGW_LEG_CAUSES] = {
    [AGW_CAUSE_FINGERPRINT_MISMATCH] = {"fingerprint mismatch", "fingerprint_mismatch"},
    [AGW_CAUSE_NO_PEER_CERTIFICATE] = {"no peer certificate", "no_peer_certificate"},
    [AGW_CAUSE_NO_SUPPORTED_FINGERPRINT] = {"no supported fingerprint", "no_supported_fingerprint"},
    [AGW_CAUSE_PEER_ALERT] = {"peer sent a fatal alert", "peer_alert"},
    [AGW_CAUSE_PROTOCOL_ERROR] = {"protocol error", "protocol_error"},
    [AGW_CAUSE_INTERNAL_ERROR] = {"internal error", "internal_error"},
    [AGW_CAUSE_TIMEOUT] = {"handshake timeout", "timeout"},
    [AGW_CAUSE_CONNECTION_RESET] = {"connection reset", "connection_reset"},
    [AGW_CAUSE_CONNECT_FAILED] = {"connect failed", "connect_failed"},
    [AGW_CAUSE_OTHER] = {NULL, "other"},
};

struct agw_control {
    uv_loop_t *loop;
    const struct agw_config *cfg;
    struct agw_model *model;
    struct agw_workers *workers;
    struct agw_root_state root;
    uv_udp_t udp;
    uv_timer_t timer;
    uv_timer_t ito_timer;
    struct h248_mid self_mid;
    struct h248_message *mid_holder; /* owns self_mid's text */
    unsigned version;                /* negotiated with the MGC */
    /* Peers: the configured MGCs, then one address learnt from MgcIdToTry. */
    struct mgc_peer peers[AGW_CONFIG_MAX_MGCS + 1];
    unsigned n_peers, n_configured, target;
    uint64_t next_peer_key;
    enum association assoc;
    bool was_registered;
    uint32_t assoc_tid; /* the ServiceChange in flight */
    /* The transaction tables. A reload that changes their timers starts new tables for new
     * transactions; the old ones (_old) finish what they hold, then go. */
    struct h248_txn_in *txn_in, *txn_in_old;
    struct h248_txn_out *txn_out, *txn_out_old;
    struct h248_txn_in_config in_cfg;   /* txn_in's */
    struct h248_txn_out_config out_cfg; /* txn_out's */
    bool timers_waiting;                /* a timer change waits for an old table to go */
    struct pending_exec pending;        /* list head */
    unsigned shutdown_polls;
    unsigned handles_open; /* closed one by one; c is freed after the last */
    struct agw_log_limit hostile_log;
    agw_control_stopped_cb on_stopped;
    struct agw_control_stats stats;
    uint64_t registered_ms;
    unsigned n_pending;
    bool draining;
    uv_timer_t drain_timer;
    uint64_t drain_deadline_ms;
    agw_control_drained_cb on_drained;
    void *drained_arg;
    uv_timer_t probe_timer;
    struct worker_probe probes[64];
    char rx[AGW_DATAGRAM_MAX];
    char tx[AGW_DATAGRAM_MAX];
    /* Replies ready together go out in one datagram per peer. */
    char batch[AGW_DATAGRAM_MAX];
    size_t batch_len, batch_header_len;
    uint64_t batch_peer;
};

static uint64_t now_ms(struct agw_control *c)
{
    return uv_now(c->loop);
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr *b)
{
    if (a->ss_family != b->sa_family)
        return false;
    if (b->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (b->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

static int peer_index(struct agw_control *c, const struct sockaddr *from)
{
    for (unsigned i = 0; i < c->n_peers; i++)
        if (same_addr(&c->peers[i].addr, from))
            return (int)i;
    return -1;
}

static int peer_by_key(const struct agw_control *c, uint64_t key)
{
    for (unsigned i = 0; i < c->n_peers; i++)
        if (c->peers[i].key == key)
            return (int)i;
    return -1;
}

static uint64_t target_key(const struct agw_control *c)
{
    return c->peers[c->target].key;
}

/* Sends to the MGC named by key; nothing goes to one a reload removed. */
static void send_to(struct agw_control *c, uint64_t peer, const char *bytes, size_t len)
{
    int i = peer_by_key(c, peer);
    if (i < 0) {
        agw_log(AGW_LOG_DEBUG, "iq: %zu bytes for an MGC no longer configured: not sent", len);
        return;
    }
    uv_buf_t buf = uv_buf_init((char *)bytes, (unsigned)len);
    int rc = uv_udp_try_send(&c->udp, &buf, 1, (const struct sockaddr *)&c->peers[i].addr);
    if (rc < 0) {
        c->stats.send_errors++;
        agw_log(AGW_LOG_WARN, "iq: send of %zu bytes failed: %s", len, uv_strerror(rc));
    } else {
        c->stats.datagrams_sent++;
    }
}

static void batch_flush(struct agw_control *c)
{
    if (c->batch_len > 0)
        send_to(c, c->batch_peer, c->batch, c->batch_len);
    c->batch_len = 0;
}

/* Queues an encoded single-transaction message for peer, merging it into the batch when the
 * header matches and the datagram stays under a path-MTU-friendly size. */
static void batch_add(struct agw_control *c, uint64_t peer, const char *msg, size_t len,
                      size_t header_len)
{
    const size_t soft_max = 1400;
    if (c->batch_len > 0 &&
        (peer != c->batch_peer || header_len != c->batch_header_len ||
         memcmp(c->batch, msg, header_len) != 0 || c->batch_len + len - header_len > soft_max))
        batch_flush(c);
    if (c->batch_len == 0) {
        if (len > sizeof(c->batch))
            return;
        memcpy(c->batch, msg, len);
        c->batch_len = len;
        c->batch_header_len = header_len;
        c->batch_peer = peer;
        return;
    }
    memcpy(c->batch + c->batch_len, msg + header_len, len - header_len);
    c->batch_len += len - header_len;
}

/* ---- The transaction tables: both generations (see txn_in_old in struct agw_control) ---- */

/* The incoming table in which tid of peer executes: the old one for what it began. */
static struct h248_txn_in *in_table(struct agw_control *c, uint64_t peer, uint32_t tid)
{
    bool imm_ack;
    if (c->txn_in_old != NULL && h248_txn_in_needs_imm_ack(c->txn_in_old, peer, tid, &imm_ack) == 0)
        return c->txn_in_old;
    return c->txn_in;
}

/* h248_txn_in_begin over both tables: a repetition of a request the old table knows is answered
 * from there, anything else is new to the current table. The old table has no lookup that does
 * not insert, so a request it does not know is begun there and aborted at once. */
static int in_begin(struct agw_control *c, uint64_t peer, uint32_t tid,
                    enum h248_txn_in_verdict *verdict, const void **stored, size_t *stored_len)
{
    uint64_t now = now_ms(c);
    if (c->txn_in_old != NULL &&
        h248_txn_in_begin(c->txn_in_old, peer, tid, now, verdict, stored, stored_len) == 0) {
        if (*verdict != H248_TXN_NEW)
            return 0;
        h248_txn_in_abort(c->txn_in_old, peer, tid);
    }
    return h248_txn_in_begin(c->txn_in, peer, tid, now, verdict, stored, stored_len);
}

/* A reply or a Pending of the MGC: for the current table's request, else for the old one's. */
static int out_reply_received(struct agw_control *c, uint32_t tid, bool imm_ack_required,
                              bool *ack_now)
{
    int rc = h248_txn_out_reply_received(c->txn_out, tid, imm_ack_required, now_ms(c), ack_now);
    if (rc == -ENOENT && c->txn_out_old != NULL)
        rc = h248_txn_out_reply_received(c->txn_out_old, tid, imm_ack_required, now_ms(c), ack_now);
    return rc;
}

static void out_pending_received(struct agw_control *c, uint32_t tid)
{
    if (h248_txn_out_pending_received(c->txn_out, tid, now_ms(c)) == -ENOENT &&
        c->txn_out_old != NULL)
        h248_txn_out_pending_received(c->txn_out_old, tid, now_ms(c));
}

static uint64_t out_outstanding(const struct h248_txn_out *out)
{
    struct h248_txn_out_stats st;
    if (out == NULL || h248_txn_out_get_stats(out, &st) < 0)
        return 0;
    return st.outstanding;
}

/* Every request the gateway sent is forgotten (a new MGC, or the shutdown). */
static void out_cancel_all(struct agw_control *c)
{
    h248_txn_out_cancel_all(c->txn_out);
    h248_txn_out_free(c->txn_out_old);
    c->txn_out_old = NULL;
}

/* Frees the old tables once they hold nothing more. True if one went. */
static bool drop_finished_tables(struct agw_control *c)
{
    bool dropped = false;
    struct h248_txn_in_stats st;
    if (c->txn_in_old != NULL && h248_txn_in_get_stats(c->txn_in_old, &st) == 0 &&
        st.entries == 0) {
        h248_txn_in_free(c->txn_in_old);
        c->txn_in_old = NULL;
        dropped = true;
    }
    if (c->txn_out_old != NULL && out_outstanding(c->txn_out_old) == 0) {
        h248_txn_out_free(c->txn_out_old);
        c->txn_out_old = NULL;
        dropped = true;
    }
    return dropped;
}

/* The transaction timers of c->cfg. The provisional timer changes in place (each transaction's
 * next timer uses it); the others go to new tables, so that they apply to new transactions and
 * the old tables keep answering repetitions of what they hold. While an old table of an earlier
 * change still holds something, the next change of that table waits for it to go. */
static void apply_timers(struct agw_control *c)
{
    const struct agw_config *cfg = c->cfg;
    drop_finished_tables(c);
    c->timers_waiting = false;
    if (cfg->provisional_timer_ms != c->in_cfg.provisional_ms) {
        c->in_cfg.provisional_ms = cfg->provisional_timer_ms;
        h248_txn_in_set_root(c->txn_in, c->in_cfg.provisional_ms, c->in_cfg.pending_limit);
        if (c->txn_in_old != NULL)
            h248_txn_in_set_root(c->txn_in_old, c->in_cfg.provisional_ms, c->in_cfg.pending_limit);
    }
    bool changed = false;
    if (cfg->long_timer_ms != c->in_cfg.long_timer_ms) {
        struct h248_txn_in_config next = c->in_cfg;
        next.long_timer_ms = cfg->long_timer_ms;
        struct h248_txn_in *fresh;
        if (c->txn_in_old != NULL) {
            c->timers_waiting = true;
        } else if (h248_txn_in_new(&next, &fresh) < 0) {
            agw_log(AGW_LOG_ERROR, "iq: no memory for a transaction table: long_timer_ms kept");
        } else {
            c->txn_in_old = c->txn_in;
            c->txn_in = fresh;
            c->in_cfg = next;
            changed = true;
        }
    }
    if (cfg->mg_initial_rto_ms != c->out_cfg.initial_rto_ms ||
        cfg->mg_min_rto_ms != c->out_cfg.min_rto_ms ||
        cfg->mg_max_rto_ms != c->out_cfg.max_rto_ms ||
        cfg->mg_max_retransmissions != c->out_cfg.max_retransmissions) {
        struct h248_txn_out_config next = c->out_cfg;
        next.initial_rto_ms = cfg->mg_initial_rto_ms;
        next.min_rto_ms = cfg->mg_min_rto_ms;
        next.max_rto_ms = cfg->mg_max_rto_ms;
        next.max_retransmissions = cfg->mg_max_retransmissions;
        next.seed = uv_hrtime();
        struct h248_txn_out *fresh;
        /* The new table's ids follow the old one's: no id is outstanding in both. */
        if (c->txn_out_old != NULL) {
            c->timers_waiting = true;
        } else if (h248_txn_out_next_tid(c->txn_out, &next.first_tid) < 0 ||
                   h248_txn_out_new(&next, &fresh) < 0) {
            agw_log(AGW_LOG_ERROR, "iq: no memory for a transaction table: mg_* timers kept");
        } else {
            c->txn_out_old = c->txn_out;
            c->txn_out = fresh;
            c->out_cfg = next;
            changed = true;
        }
    }
    if (changed)
        agw_log(AGW_LOG_INFO, "iq: transaction timers changed: new transactions use them");
    if (c->timers_waiting)
        agw_log(AGW_LOG_INFO, "iq: a transaction timer change waits for the transactions of the "
                              "previous one to finish");
    drop_finished_tables(c);
}

/* Encodes msg (its header set here) into c->tx; the length of the header goes to *header_len. */
static int encode(struct agw_control *c, struct h248_message *msg, size_t *len, size_t *header_len)
{
    msg->version = c->version;
    msg->mid = c->self_mid;
    int rc = h248_encode_message(msg, H248_STYLE_COMPACT, c->tx, sizeof(c->tx), len);
    if (rc == 0 && header_len != NULL) {
        /* Compact form: "!/v mid " then the body. */
        const char *sp = memchr(c->tx, ' ', *len);
        sp = sp != NULL ? memchr(sp + 1, ' ', *len - (size_t)(sp + 1 - c->tx)) : NULL;
        *header_len = sp != NULL ? (size_t)(sp + 1 - c->tx) : 0;
    }
    return rc;
}

static struct h248_message *error_reply(uint32_t tid, bool has_tid, unsigned code, const char *text)
{
    struct h248_message *m = h248_message_new();
    struct h248_error_desc *e = m != NULL ? h248_alloc(m, sizeof(*e)) : NULL;
    if (e == NULL) {
        h248_message_free(m);
        return NULL;
    }
    e->code = (uint16_t)code;
    e->has_text = text != NULL && text[0] != '\0';
    if (e->has_text && h248_str_copy(m, &e->text, text, strlen(text)) < 0)
        e->has_text = false;
    if (!has_tid) {
        m->error = e;
        return m;
    }
    struct h248_transaction *t = h248_alloc(m, sizeof(*t));
    if (t == NULL) {
        h248_message_free(m);
        return NULL;
    }
    t->kind = H248_TRANS_REPLY;
    t->id = tid;
    t->error = e;
    m->transactions = t;
    return m;
}

/* The first error code a reply carries: transaction, action or command level; 0 if none. */
static unsigned reply_code(const struct h248_message *reply)
{
    if (reply->error != NULL)
        return reply->error->code;
    for (const struct h248_transaction *t = reply->transactions; t != NULL; t = t->next) {
        if (t->error != NULL)
            return t->error->code;
        for (const struct h248_action *a = t->actions; a != NULL; a = a->next) {
            if (a->error != NULL)
                return a->error->code;
            for (const struct h248_command *cmd = a->commands; cmd != NULL; cmd = cmd->next)
                for (const struct h248_descriptor *d = cmd->descriptors; d != NULL; d = d->next)
                    if (d->kind == H248_DESC_ERROR)
                        return d->u.error.code;
        }
    }
    return 0;
}

static unsigned command_label(enum h248_command_kind kind)
{
    return (unsigned)kind <= (unsigned)H248_CMD_SERVICE_CHANGE ? (unsigned)kind
                                                               : (unsigned)AGW_STATS_CMD_NONE;
}

/* The label of a request in the transaction counters: its first command. */
static unsigned request_label(const struct h248_transaction *t)
{
    for (const struct h248_action *a = t->actions; a != NULL; a = a->next)
        if (a->commands != NULL)
            return command_label(a->commands->kind);
    return AGW_STATS_CMD_NONE;
}

static void count_answer(struct agw_control *c, unsigned label, unsigned code)
{
    if (label >= AGW_STATS_COMMANDS)
        label = AGW_STATS_CMD_NONE;
    c->stats.h248_transactions[label][code < AGW_STATS_CODES ? code : AGW_STATS_CODES - 1]++;
}

/* Sends a reply for a request and stores it in the reply cache. */
static void answer(struct agw_control *c, uint64_t peer, uint32_t tid, struct h248_message *reply,
                   bool cache, unsigned label)
{
    size_t len, header_len;
    bool imm_ack = false;
    struct h248_txn_in *table = in_table(c, peer, tid);
    if (cache && h248_txn_in_needs_imm_ack(table, peer, tid, &imm_ack) == 0 && imm_ack)
        reply->transactions->imm_ack_required = true;
    unsigned code = reply_code(reply);
    int rc = encode(c, reply, &len, &header_len);
    if (rc == -ENOSPC) {
        /* H.248.1 Annex D.1: no segmentation on UDP; the reply becomes error 533. */
        struct h248_message *err =
            error_reply(tid, true, 533, "response exceeds the maximum transport PDU size");
        rc = err != NULL ? encode(c, err, &len, &header_len) : -ENOMEM;
        h248_message_free(err);
        code = 533;
    }
    if (rc < 0) {
        agw_log(AGW_LOG_ERROR, "transaction %u: cannot encode the reply: %s", tid, strerror(-rc));
        if (cache)
            h248_txn_in_abort(table, peer, tid);
        return;
    }
    if (cache)
        h248_txn_in_complete(table, peer, tid, c->tx, len, now_ms(c));
    batch_add(c, peer, c->tx, len, header_len);
    count_answer(c, label, code);
}

static void answer_error(struct agw_control *c, uint64_t peer, uint32_t tid, bool has_tid,
                         unsigned code, const char *text, bool cache, unsigned label)
{
    struct h248_message *m = error_reply(tid, has_tid, code, text);
    if (m == NULL)
        return;
    if (has_tid) {
        answer(c, peer, tid, m, cache, label);
    } else {
        size_t len;
        if (encode(c, m, &len, NULL) == 0) {
            send_to(c, peer, c->tx, len);
            count_answer(c, label, code);
        }
    }
    h248_message_free(m);
}

static void schedule(struct agw_control *c);

/* ---- Transactions whose reply waits for the workers ---- */

static void finish_exec(struct agw_control *c, struct pending_exec *p)
{
    /* The workers wrote the final figures; agw_exec_finish frees the terminations. */
    for (size_t i = 0; i < p->x.n_released; i++) {
        const struct agw_term *t = p->x.released[i].term;
        if (p->x.released[i].moved || p->x.released[i].audited || t == NULL ||
            t->realm_index >= AGW_CONFIG_MAX_REALMS)
            continue;
        c->stats.relayed_bytes[t->realm_index][0] += t->octets_received;
        c->stats.relayed_bytes[t->realm_index][1] += t->octets_sent;
        c->stats.relayed_messages[t->realm_index][0] += t->messages_received;
        c->stats.relayed_messages[t->realm_index][1] += t->messages_sent;
    }
    agw_exec_finish(c->model, &p->x, now_ms(c));
    for (size_t i = 0; i < p->x.n_released; i++) {
        struct agw_released *r = &p->x.released[i];
        if (!r->moved || r->term == NULL)
            continue;
        struct agw_op op = {.kind = AGW_OP_ADOPT,
                            .key = r->term->key,
                            .fd = r->term->fd,
                            .datagram = r->term->datagram,
                            .listening = !r->term->datagram};
        if (op.fd >= 0 && agw_workers_submit(c->workers, r->adopt_worker, &op, 1) == 0)
            r->term->fd = -1;
    }
    answer(c, p->peer, p->tid, p->x.reply, true, p->label);
    agw_exec_fini(&p->x);
    p->prev->next = p->next;
    p->next->prev = p->prev;
    c->n_pending--;
    free(p);
}

static void on_barrier(void *user, uint64_t cookie)
{
    struct agw_control *c = user;
    uintptr_t probes = (uintptr_t)c->probes;
    if (cookie >= probes && cookie < probes + sizeof(c->probes)) {
        struct worker_probe *probe = (struct worker_probe *)(uintptr_t)cookie;
        probe->out = false;
        probe->rtt_ns = (int64_t)(uv_hrtime() - probe->sent_ns);
        return;
    }
    struct pending_exec *p = (struct pending_exec *)(uintptr_t)cookie;
    if (--p->barriers_left == 0)
        finish_exec(c, p);
    /* Barriers arrive in bursts: replies finished in one burst share datagrams. */
    batch_flush(c);
    schedule(c);
}

/* The cause a worker reported, by the start of its text. */
static enum agw_leg_cause leg_cause_of(const char *text)
{
    for (unsigned i = 0; i < AGW_CAUSE_OTHER; i++)
        if (strncmp(text, leg_causes[i].prefix, strlen(leg_causes[i].prefix)) == 0)
            return (enum agw_leg_cause)i;
    return AGW_CAUSE_OTHER;
}

const char *agw_control_cause_name(enum agw_leg_cause cause)
{
    return (unsigned)cause < AGW_LEG_CAUSES ? leg_causes[cause].name : "other";
}

/* A leg failed (TLS refused, handshake timeout, connect failure) or came up. */
static void on_leg_event(void *user, const struct agw_leg_event *ev)
{
    struct agw_control *c = user;
    struct agw_term *t = agw_model_term(c->model, ev->term_id, strlen(ev->term_id));
    if (t != NULL && t->key != ev->key)
        t = NULL; /* the name was reused: the event is of a termination gone */
    if (ev->kind == AGW_LEG_UP) {
        c->stats.legs_up++;
        if (t != NULL)
            t->leg_state = AGW_LEG_STATE_UP;
        return;
    }
    if (ev->kind == AGW_LEG_REFUSED) {
        c->stats.connections_refused++;
        return;
    }
    const char *event = AGW_TLS_FAILURE_EVENT;
    if (ev->kind == AGW_LEG_IDLE) {
        c->stats.inactivity_reports++;
        event = AGW_INACTIVITY_EVENT;
    } else {
        c->stats.legs_failed++;
        if (strstr(ev->cause, "fingerprint mismatch") != NULL)
            c->stats.fingerprint_mismatches++;
        else if (strstr(ev->cause, "handshake timeout") != NULL)
            c->stats.handshake_timeouts++;
        enum agw_leg_cause cause = leg_cause_of(ev->cause);
        c->stats.leg_failures[cause]++;
        /* A connection that never came up is no handshake; a leg that was up failed later. */
        if (cause != AGW_CAUSE_CONNECT_FAILED && (t == NULL || t->leg_state != AGW_LEG_STATE_UP))
            c->stats.handshakes_failed[cause]++;
        if (t != NULL) {
            t->leg_state = AGW_LEG_STATE_FAILED;
            t->leg_cause = (uint8_t)cause;
        }
    }
    /* Tell the ALG when it asked for the failure event on that termination. */
    if (t == NULL || !t->has_events)
        return;
    for (unsigned i = 0; i < t->n_events; i++) {
        if (strcmp(t->events[i], event) != 0)
            continue;
        struct agw_notify_param cause = {"cause", ev->cause, true};
        int rc = agw_control_notify(c, t->ctx->id, t->id, t->events_request_id, event,
                                    ev->kind == AGW_LEG_IDLE ? NULL : &cause,
                                    ev->kind == AGW_LEG_IDLE ? 0 : 1);
        if (rc < 0)
            agw_log(AGW_LOG_WARN, "context %u term %s: cannot notify the failure: %s", t->ctx->id,
                    t->id, strerror(-rc));
        return;
    }
}

static void execute(struct agw_control *c, uint64_t peer, const struct h248_message *msg,
                    const struct h248_transaction *t)
{
    unsigned label = request_label(t);
    struct pending_exec *p = calloc(1, sizeof(*p));
    if (p == NULL || agw_exec_transaction(c->model, &c->root, msg, t, &p->x, now_ms(c)) < 0) {
        free(p);
        answer_error(c, peer, t->id, true, 500, "out of memory", true, label);
        return;
    }
    c->stats.transactions++;
    for (const struct h248_action *a = t->actions; a != NULL; a = a->next)
        for (const struct h248_command *cmd = a->commands; cmd != NULL; cmd = cmd->next)
            c->stats.h248_commands[command_label(cmd->kind)]++;
    p->peer = peer;
    p->tid = t->id;
    p->label = label;
    p->prev = &c->pending;
    p->next = c->pending.next;
    c->pending.next->prev = p;
    c->pending.next = p;
    c->n_pending++;
    if (p->x.workers_touched == 0) {
        finish_exec(c, p);
        return;
    }
    /* Each touched worker gets its ops in order, then a barrier that reports back, as one batch:
       one wake-up of the worker per transaction. */
    for (unsigned w = 0; w < c->model->workers && w < 64; w++) {
        if (!(p->x.workers_touched & (1ull << w)))
            continue;
        struct agw_op on_stack[16], *batch = on_stack;
        size_t n = 0;
        for (size_t i = 0; i < p->x.n_ops; i++)
            n += p->x.ops[i].worker == w;
        if (n + 1 > sizeof(on_stack) / sizeof(on_stack[0]) &&
            (batch = malloc((n + 1) * sizeof(*batch))) == NULL) {
            batch = on_stack; /* out of memory: the ops go one by one */
            for (size_t i = 0; i < p->x.n_ops; i++)
                if (p->x.ops[i].worker == w)
                    agw_workers_submit(c->workers, w, &p->x.ops[i].op, 1);
            n = 0;
        } else {
            n = 0;
            for (size_t i = 0; i < p->x.n_ops; i++)
                if (p->x.ops[i].worker == w)
                    batch[n++] = p->x.ops[i].op;
        }
        batch[n++] = (struct agw_op){.kind = AGW_OP_BARRIER, .cookie = (uint64_t)(uintptr_t)p};
        p->barriers_left++;
        agw_workers_submit(c->workers, w, batch, n);
        if (batch != on_stack)
            free(batch);
    }
}

/* ---- The association with the MGC ---- */

static int send_request(struct agw_control *c, struct h248_message *msg, uint32_t *tid_out)
{
    uint32_t tid;
    size_t len;
    int rc = h248_txn_out_next_tid(c->txn_out, &tid);
    if (rc < 0)
        return rc;
    msg->transactions->id = tid;
    if ((rc = encode(c, msg, &len, NULL)) < 0)
        return rc;
    if ((rc = h248_txn_out_send(c->txn_out, tid, c->tx, len, now_ms(c))) < 0)
        return rc;
    send_to(c, target_key(c), c->tx, len);
    *tid_out = tid;
    return 0;
}

/* ServiceChange on ROOT: Restart 901 at start, Disconnected 900 after losing an MGC,
 * Graceful 905 on shutdown. */
static int send_service_change(struct agw_control *c, enum h248_sc_method method,
                               const char *reason)
{
    struct h248_message *m = h248_message_new();
    struct h248_transaction *t = m ? h248_alloc(m, sizeof(*t)) : NULL;
    struct h248_action *a = m ? h248_alloc(m, sizeof(*a)) : NULL;
    struct h248_command *cmd = m ? h248_alloc(m, sizeof(*cmd)) : NULL;
    struct h248_termination_id *root = m ? h248_alloc(m, sizeof(*root)) : NULL;
    struct h248_descriptor *d = m ? h248_alloc(m, sizeof(*d)) : NULL;
    int rc = -ENOMEM;
    if (d == NULL || h248_str_copy(m, &root->text, "ROOT", 4) < 0)
        goto out;
    t->kind = H248_TRANS_REQUEST;
    a->context.kind = H248_CTX_NULL;
    cmd->kind = H248_CMD_SERVICE_CHANGE;
    cmd->terminations = root;
    d->kind = H248_DESC_SERVICE_CHANGE;
    struct h248_service_change *sc = &d->u.service_change;
    sc->method = method;
    sc->has_reason = true;
    sc->reason.quoted = true;
    if (h248_str_copy(m, &sc->reason.text, reason, strlen(reason)) < 0)
        goto out;
    if (method == H248_SC_RESTART || method == H248_SC_DISCONNECTED) {
        sc->has_version = true;
        sc->version = 3;
        const char *slash = strrchr(c->cfg->profile, '/');
        if (slash != NULL && h248_str_copy(m, &sc->profile_name, c->cfg->profile,
                                           (size_t)(slash - c->cfg->profile)) == 0) {
            sc->has_profile = true;
            sc->profile_version = (unsigned)atoi(slash + 1);
        }
    }
    cmd->descriptors = d;
    a->commands = cmd;
    t->actions = a;
    m->transactions = t;
    rc = send_request(c, m, &c->assoc_tid);
out:
    h248_message_free(m);
    return rc;
}

static void start_registration(struct agw_control *c)
{
    c->assoc = ASSOC_REGISTERING;
    c->registered_ms = 0;
    c->version = 3;
    out_cancel_all(c);
    h248_txn_out_reset_rtt(c->txn_out);
    char addr[64];
    agw_config_format_address(&c->peers[c->target].addr, true, addr, sizeof(addr));
    const char *reason = c->was_registered ? "900 Service Restored" : "901 Cold Boot";
    agw_log(AGW_LOG_INFO, "iq: registering with MGC %s (%s)", addr,
            c->was_registered ? "Disconnected" : "Restart");
    int rc =
        send_service_change(c, c->was_registered ? H248_SC_DISCONNECTED : H248_SC_RESTART, reason);
    if (rc < 0)
        agw_log(AGW_LOG_ERROR, "iq: cannot send ServiceChange: %s", strerror(-rc));
}

static void mgc_lost(struct agw_control *c, const char *why)
{
    char addr[64];
    agw_config_format_address(&c->peers[c->target].addr, true, addr, sizeof(addr));
    agw_log(AGW_LOG_WARN, "iq: MGC %s lost (%s)", addr, why);
    c->stats.mgc_failovers++;
    if (c->assoc == ASSOC_REGISTERED)
        c->was_registered = true;
    if (c->assoc == ASSOC_SHUTTING_DOWN) {
        c->assoc = ASSOC_DOWN;
        return;
    }
    /* Back to the configured list (a redirect target is not kept), next one in order. */
    c->n_peers = c->n_configured;
    c->target = (c->target + 1) % c->n_peers;
    start_registration(c);
}

/* The MGC list of c->cfg replaces the one in use. The MGC registered with (or being tried)
 * stays where the new list still has it; one reached through MgcIdToTry is kept too, the list
 * never named it. Otherwise the first MGC of the new list takes over as after a failover, with
 * every context kept: the ServiceChange says Disconnected once an MGC had the association.
 * Transactions of a removed MGC end: its replies are not sent, its datagrams are dropped. */
static void apply_mgc_list(struct agw_control *c)
{
    const struct agw_config *cfg = c->cfg;
    struct mgc_peer peers[AGW_CONFIG_MAX_MGCS + 1];
    memset(peers, 0, sizeof(peers));
    unsigned n = 0;
    bool same = cfg->mgc_count == c->n_configured;
    for (unsigned i = 0; i < cfg->mgc_count && i < AGW_CONFIG_MAX_MGCS; i++) {
        int known = peer_index(c, (const struct sockaddr *)&cfg->mgc[i]);
        peers[n].addr = cfg->mgc[i];
        peers[n].key = known >= 0 ? c->peers[known].key : c->next_peer_key++;
        if (known != (int)i)
            same = false;
        n++;
    }
    if (same)
        return;
    const struct mgc_peer current = c->peers[c->target];
    int now = -1;
    for (unsigned i = 0; i < n; i++)
        if (peers[i].key == current.key)
            now = (int)i;
    bool redirected = c->target >= c->n_configured;
    if (now < 0 && redirected) {
        peers[n] = current;
        now = (int)n;
    }
    memcpy(c->peers, peers, sizeof(peers));
    c->n_configured = n;
    c->n_peers = redirected && now == (int)n ? n + 1 : n;
    char addr[64], first[64];
    agw_config_format_address(&current.addr, true, addr, sizeof(addr));
    if (now >= 0) {
        c->target = (unsigned)now;
        agw_log(AGW_LOG_INFO, "iq: MGC list reloaded (%u), MGC %s kept", n, addr);
        return;
    }
    c->target = 0;
    agw_config_format_address(&c->peers[0].addr, true, first, sizeof(first));
    agw_log(AGW_LOG_INFO, "iq: MGC list reloaded (%u): MGC %s is no longer in it, %s takes over", n,
            addr, first);
    if (c->assoc == ASSOC_SHUTTING_DOWN || c->assoc == ASSOC_DOWN)
        return;
    if (c->assoc == ASSOC_REGISTERED)
        c->was_registered = true;
    start_registration(c);
}

void agw_control_reload(struct agw_control *c)
{
    /* Timers first: a registration the new list starts is a new transaction. */
    apply_timers(c);
    apply_mgc_list(c);
    batch_flush(c);
    schedule(c);
}

static void on_registration_reply(struct agw_control *c, const struct h248_transaction *t)
{
    const struct h248_command *cmd = t->actions ? t->actions->commands : NULL;
    const struct h248_error_desc *err = t->error;
    if (err == NULL && t->actions != NULL)
        err = t->actions->error;
    const struct h248_service_change *sc = NULL;
    for (const struct h248_descriptor *d = cmd ? cmd->descriptors : NULL; d; d = d->next) {
        if (d->kind == H248_DESC_ERROR)
            err = &d->u.error;
        else if (d->kind == H248_DESC_SERVICE_CHANGE)
            sc = &d->u.service_change;
    }
    if (c->assoc == ASSOC_SHUTTING_DOWN) {
        c->assoc = ASSOC_DOWN;
        return;
    }
    if (err != NULL) {
        agw_log(AGW_LOG_WARN, "iq: registration refused: error %u %.*s", err->code,
                (int)err->text.len, err->text.ptr);
        mgc_lost(c, "registration refused");
        return;
    }
    if (sc != NULL && sc->has_mgc_id) {
        /* Redirect: register with the MGC the reply names. */
        char text[80];
        snprintf(text, sizeof(text), "%.*s", (int)sc->mgc_id.text.len, sc->mgc_id.text.ptr);
        struct sockaddr_storage ss = {0};
        int port = sc->mgc_id.has_port ? sc->mgc_id.port : 2944;
        int rc =
            sc->mgc_id.kind == H248_MID_IPV4   ? uv_ip4_addr(text, port, (struct sockaddr_in *)&ss)
            : sc->mgc_id.kind == H248_MID_IPV6 ? uv_ip6_addr(text, port, (struct sockaddr_in6 *)&ss)
                                               : UV_EINVAL;
        if (rc < 0) {
            agw_log(AGW_LOG_WARN, "iq: MgcIdToTry %s is not an address: ignored", text);
        } else {
            int known = peer_index(c, (struct sockaddr *)&ss);
            if (known < 0) {
                known = (int)c->n_configured;
                c->peers[known].addr = ss;
                c->peers[known].key = c->next_peer_key++;
                c->n_peers = c->n_configured + 1;
            }
            agw_log(AGW_LOG_INFO, "iq: redirected to MGC %s", text);
            c->target = (unsigned)known;
            start_registration(c);
            return;
        }
    }
    if (sc != NULL && sc->has_version && sc->version >= 1 && sc->version < c->version)
        c->version = sc->version;
    c->assoc = ASSOC_REGISTERED;
    c->was_registered = true;
    c->registered_ms = now_ms(c);
    char addr[64];
    agw_config_format_address(&c->peers[c->target].addr, true, addr, sizeof(addr));
    agw_log(AGW_LOG_INFO, "iq: registered with MGC %s, version %u", addr, c->version);
}

int agw_control_notify(struct agw_control *c, uint32_t context_id, const char *term_id,
                       uint32_t request_id, const char *event,
                       const struct agw_notify_param *params, size_t n_params)
{
    if (c->assoc != ASSOC_REGISTERED)
        return -ENOTCONN; /* H.248.1 §11.3: nothing before the ServiceChange reply */
    struct h248_message *m = h248_message_new();
    struct h248_transaction *t = m ? h248_alloc(m, sizeof(*t)) : NULL;
    struct h248_action *a = m ? h248_alloc(m, sizeof(*a)) : NULL;
    struct h248_command *cmd = m ? h248_alloc(m, sizeof(*cmd)) : NULL;
    struct h248_termination_id *tid = m ? h248_alloc(m, sizeof(*tid)) : NULL;
    struct h248_descriptor *d = m ? h248_alloc(m, sizeof(*d)) : NULL;
    struct h248_observed_event *ev = m ? h248_alloc(m, sizeof(*ev)) : NULL;
    int rc = -ENOMEM;
    if (ev == NULL || h248_str_copy(m, &tid->text, term_id, strlen(term_id)) < 0 ||
        h248_str_copy(m, &ev->name, event, strlen(event)) < 0)
        goto out;
    struct h248_event_parm **tail = &ev->parms;
    for (size_t i = 0; i < n_params; i++) {
        struct h248_event_parm *p = h248_alloc(m, sizeof(*p));
        struct h248_value *v = h248_alloc(m, sizeof(*v));
        if (v == NULL ||
            h248_str_copy(m, &p->other.name, params[i].name, strlen(params[i].name)) < 0 ||
            h248_str_copy(m, &v->text, params[i].value, strlen(params[i].value)) < 0)
            goto out;
        p->kind = H248_EVPARM_OTHER;
        p->other.has_value = true;
        p->other.value.values = v;
        v->quoted = params[i].quoted;
        *tail = p;
        tail = &p->next;
    }
    t->kind = H248_TRANS_REQUEST;
    if (context_id == 0) {
        a->context.kind = H248_CTX_NULL;
    } else {
        a->context.kind = H248_CTX_ID;
        a->context.id = context_id;
    }
    cmd->kind = H248_CMD_NOTIFY;
    cmd->terminations = tid;
    d->kind = H248_DESC_OBSERVED_EVENTS;
    d->u.observed.request_id = request_id;
    d->u.observed.events = ev;
    cmd->descriptors = d;
    a->commands = cmd;
    t->actions = a;
    m->transactions = t;
    uint32_t sent;
    rc = send_request(c, m, &sent);
    if (rc == 0)
        c->stats.notifies_sent++;
out:
    h248_message_free(m);
    schedule(c);
    return rc;
}

/* The label of the transaction tid of peer still executing (AGW_STATS_CMD_NONE if none is). */
static unsigned pending_label(const struct agw_control *c, uint64_t peer, uint32_t tid)
{
    for (const struct pending_exec *p = c->pending.next; p != &c->pending; p = p->next)
        if (p->peer == peer && p->tid == tid)
            return p->label;
    return AGW_STATS_CMD_NONE;
}

/* H.248.14: no message from the MGC for mit: tell it, on ROOT. */
static void on_ito(uv_timer_t *timer)
{
    struct agw_control *c = timer->data;
    if (!c->root.ito_armed || c->assoc != ASSOC_REGISTERED)
        return;
    if (agw_control_notify(c, 0, "ROOT", c->root.ito_request_id, "it/ito", NULL, 0) == 0)
        agw_log(AGW_LOG_INFO, "iq: no message from the MGC for %u ms: Notify it/ito",
                c->root.ito_mit_ms);
    uv_timer_start(&c->ito_timer, on_ito, c->root.ito_mit_ms, 0);
}

static void heard_from_mgc(struct agw_control *c)
{
    if (c->assoc == ASSOC_SHUTTING_DOWN || c->assoc == ASSOC_DOWN)
        return; /* the timer now paces the shutdown */
    if (c->root.ito_armed)
        uv_timer_start(&c->ito_timer, on_ito, c->root.ito_mit_ms, 0);
    else
        uv_timer_stop(&c->ito_timer);
}

/* ---- Timers of the transaction layer ---- */

static void on_timer(uv_timer_t *timer)
{
    struct agw_control *c = timer->data;
    uint64_t now = now_ms(c);
    struct h248_txn_in *ins[2] = {c->txn_in_old, c->txn_in};
    for (int k = 0; k < 2; k++) {
        struct h248_txn_in_event iev;
        while (ins[k] != NULL && h248_txn_in_poll(ins[k], now, &iev) == 0) {
            if (iev.kind == H248_TXN_IN_SEND_PENDING) {
                size_t len;
                if (h248_txn_encode_pending(c->version, &c->self_mid, iev.tid, c->tx, sizeof(c->tx),
                                            &len) == 0) {
                    c->stats.pendings_sent++;
                    send_to(c, iev.peer, c->tx, len);
                }
            } else {
                answer_error(c, iev.peer, iev.tid, true, 506,
                             "number of transaction pendings exceeded", true,
                             pending_label(c, iev.peer, iev.tid));
            }
        }
        if (ins[k] != NULL)
            h248_txn_in_expire(ins[k], now, NULL);
    }
    /* Losing the MGC cancels every request and frees the old table: the polls end there. */
    struct h248_txn_out *outs[2] = {c->txn_out_old, c->txn_out};
    bool lost = false;
    for (int k = 0; k < 2 && !lost; k++) {
        struct h248_txn_out_event oev;
        while (outs[k] != NULL && h248_txn_out_poll(outs[k], now, &oev) == 0) {
            if (oev.kind == H248_TXN_OUT_RETRANSMIT) {
                c->stats.retransmissions++;
                send_to(c, target_key(c), oev.bytes, oev.len);
            } else {
                mgc_lost(c, oev.kind == H248_TXN_OUT_GIVE_UP ? "no reply" : "too many pendings");
                lost = true;
                break;
            }
        }
    }
    batch_flush(c); /* 506 answers of the pending limit */
    schedule(c);
}

static uint64_t earliest(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static void schedule(struct agw_control *c)
{
    if (drop_finished_tables(c) && c->timers_waiting)
        apply_timers(c);
    uint64_t next = UINT64_MAX, t, now = now_ms(c);
    if (h248_txn_in_next_deadline(c->txn_in, &t) == 0)
        next = earliest(next, t);
    if (c->txn_in_old != NULL && h248_txn_in_next_deadline(c->txn_in_old, &t) == 0)
        next = earliest(next, t);
    if (h248_txn_out_next_deadline(c->txn_out, &t) == 0)
        next = earliest(next, t);
    if (c->txn_out_old != NULL && h248_txn_out_next_deadline(c->txn_out_old, &t) == 0)
        next = earliest(next, t);
    if (next == UINT64_MAX) {
        uv_timer_stop(&c->timer);
        return;
    }
    uv_timer_start(&c->timer, on_timer, next > now ? next - now : 0, 0);
}

/* ---- Incoming datagrams ---- */

/* Whether executing t would make a context (an action on CHOOSE). */
static bool creates_context(const struct h248_transaction *t)
{
    for (const struct h248_action *a = t->actions; a != NULL; a = a->next)
        if (a->context.kind == H248_CTX_CHOOSE)
            return true;
    return false;
}

static void handle_request(struct agw_control *c, uint64_t peer, const struct h248_message *msg,
                           const struct h248_transaction *t)
{
    unsigned label = request_label(t);
    enum h248_txn_in_verdict verdict;
    const void *stored;
    size_t stored_len;
    int rc = in_begin(c, peer, t->id, &verdict, &stored, &stored_len);
    if (c->assoc != ASSOC_REGISTERED && (rc < 0 || verdict == H248_TXN_NEW)) {
        /* H.248.1 §11.3: nothing new before registration completes; a repetition of what was
         * executed before (its reply lost while the gateway re-registers) still gets that
         * reply, or the MGC would take a done Add for a failed one. */
        if (rc == 0)
            h248_txn_in_abort(c->txn_in, peer, t->id);
        c->stats.before_registration++;
        answer_error(c, peer, t->id, true, 505, "transaction received before a ServiceChange reply",
                     false, label);
        return;
    }
    if (rc < 0) {
        answer_error(c, peer, t->id, true, 510, "too many transactions in progress", false, label);
        return;
    }
    switch (verdict) {
    case H248_TXN_NEW:
        if (c->draining && creates_context(t)) {
            c->stats.drain_refusals++;
            answer_error(c, peer, t->id, true, 510, "draining: no new context", true, label);
            break;
        }
        execute(c, peer, msg, t);
        break;
    case H248_TXN_EXECUTING: {
        size_t len;
        c->stats.duplicates++;
        if (h248_txn_encode_pending(c->version, &c->self_mid, t->id, c->tx, sizeof(c->tx), &len) ==
            0) {
            c->stats.pendings_sent++;
            send_to(c, peer, c->tx, len);
        }
        break;
    }
    case H248_TXN_REPLIED:
        c->stats.duplicates++;
        send_to(c, peer, stored, stored_len);
        break;
    case H248_TXN_DISCARD:
        c->stats.duplicates++;
        break;
    case H248_TXN_PENDING_LIMIT:
        answer_error(c, peer, t->id, true, 506, "number of transaction pendings exceeded", true,
                     label);
        break;
    }
}

static void handle_reply(struct agw_control *c, uint64_t peer, const struct h248_transaction *t)
{
    bool ack_now = false;
    if (out_reply_received(c, t->id, t->imm_ack_required, &ack_now) < 0) {
        c->stats.unknown_replies++;
        return;
    }
    if (ack_now) {
        size_t len;
        if (h248_txn_encode_ack(c->version, &c->self_mid, t->id, t->id, c->tx, sizeof(c->tx),
                                &len) == 0)
            send_to(c, peer, c->tx, len);
    }
    if (t->id == c->assoc_tid)
        on_registration_reply(c, t);
}

static void handle_datagram(struct agw_control *c, uint64_t peer, const char *data, size_t len)
{
    struct h248_message *msg;
    struct h248_parse_error err;
    int rc = h248_parse_message(data, len, NULL, &msg, &err);
    if (rc < 0) {
        c->stats.parse_errors++;
        if (agw_log_allow(&c->hostile_log, now_ms(c), 10))
            agw_log(AGW_LOG_WARN, "iq: malformed message (%zu bytes): error %u: %s", len, err.code,
                    err.text);
        answer_error(c, peer, err.transaction_id, err.has_transaction_id, err.code, err.text, false,
                     AGW_STATS_CMD_UNPARSED);
        return;
    }
    for (const struct h248_transaction *t = msg->transactions; t != NULL; t = t->next) {
        switch (t->kind) {
        case H248_TRANS_REQUEST:
            handle_request(c, peer, msg, t);
            break;
        case H248_TRANS_REPLY:
            handle_reply(c, peer, t);
            break;
        case H248_TRANS_PENDING:
            out_pending_received(c, t->id);
            break;
        case H248_TRANS_RESPONSE_ACK:
            for (const struct h248_ack_range *r = t->acks; r != NULL; r = r->next) {
                h248_txn_in_ack(c->txn_in, peer, r->first, r->last);
                if (c->txn_in_old != NULL)
                    h248_txn_in_ack(c->txn_in_old, peer, r->first, r->last);
            }
            break;
        case H248_TRANS_SEGMENT_REPLY:
            break; /* we never segment: nothing to confirm */
        }
    }
    h248_message_free(msg);
    heard_from_mgc(c); /* after the commands: one of them may have armed it/ito */
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct agw_control *c = handle->data;
    *buf = uv_buf_init(c->rx, sizeof(c->rx));
}

static void on_recv(uv_udp_t *udp, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                    unsigned flags)
{
    struct agw_control *c = udp->data;
    if (nread <= 0 || from == NULL)
        return;
    c->stats.datagrams_received++;
    if (flags & UV_UDP_PARTIAL) {
        c->stats.parse_errors++;
        return;
    }
    int peer = peer_index(c, from);
    if (peer < 0) {
        c->stats.unknown_peer_drops++;
        if (agw_log_allow(&c->hostile_log, now_ms(c), 10)) {
            char addr[64];
            agw_config_format_address((const struct sockaddr_storage *)from, true, addr,
                                      sizeof(addr));
            agw_log(AGW_LOG_WARN, "iq: dropped %zd bytes from %s, not a configured MGC", nread,
                    addr);
        }
        return;
    }
    handle_datagram(c, c->peers[peer].key, buf->base, (size_t)nread);
    batch_flush(c);
    schedule(c);
}

/* ---- Life cycle ---- */

static int parse_self_mid(struct agw_control *c)
{
    char mid[AGW_CONFIG_TEXT_MAX + 32], text[AGW_CONFIG_TEXT_MAX + 64];
    agw_config_mid(c->cfg, mid, sizeof(mid));
    int n = snprintf(text, sizeof(text), "!/3 %s PN=1{}", mid);
    struct h248_parse_error err;
    if (h248_parse_message(text, (size_t)n, NULL, &c->mid_holder, &err) < 0) {
        agw_log(AGW_LOG_ERROR, "invalid mid '%s': %s", mid, err.text);
        return -EINVAL;
    }
    c->self_mid = c->mid_holder->mid;
    return 0;
}

int agw_control_start(struct agw_control **out, uv_loop_t *loop, const struct agw_config *cfg,
                      struct agw_model *model, unsigned debug_worker_delay_ms)
{
    struct agw_control *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->loop = loop;
    c->cfg = cfg;
    c->model = model;
    c->pending.next = c->pending.prev = &c->pending;
    c->version = 3;
    c->next_peer_key = 1;
    for (unsigned i = 0; i < cfg->mgc_count; i++) {
        c->peers[i].addr = cfg->mgc[i];
        c->peers[i].key = c->next_peer_key++;
    }
    c->n_peers = c->n_configured = cfg->mgc_count;
    c->in_cfg = h248_txn_in_default_config;
    c->in_cfg.long_timer_ms = cfg->long_timer_ms;
    c->in_cfg.provisional_ms = cfg->provisional_timer_ms;
    c->out_cfg = h248_txn_out_default_config;
    c->out_cfg.initial_rto_ms = cfg->mg_initial_rto_ms;
    c->out_cfg.min_rto_ms = cfg->mg_min_rto_ms;
    c->out_cfg.max_rto_ms = cfg->mg_max_rto_ms;
    c->out_cfg.max_retransmissions = cfg->mg_max_retransmissions;
    c->out_cfg.first_tid = (uint32_t)(uv_hrtime() & 0xFFFFF) + 1;
    c->out_cfg.seed = uv_hrtime();
    int rc = parse_self_mid(c);
    if (rc == 0)
        rc = h248_txn_in_new(&c->in_cfg, &c->txn_in);
    if (rc == 0)
        rc = h248_txn_out_new(&c->out_cfg, &c->txn_out);
    if (rc == 0)
        rc = agw_workers_start(&c->workers, model->workers, loop, on_barrier, on_leg_event, c,
                               debug_worker_delay_ms);
    if (rc == 0)
        rc = uv_udp_init(loop, &c->udp);
    if (rc == 0) {
        c->udp.data = c;
        rc = uv_udp_bind(&c->udp, (const struct sockaddr *)&cfg->iq_listen, 0);
        if (rc == 0) {
            /* Bursts of pipelined requests must not overflow the kernel's default buffers:
             * every drop costs the MGC a retransmission timer. */
            int size = 4 << 20;
            uv_recv_buffer_size((uv_handle_t *)&c->udp, &size);
            size = 4 << 20;
            uv_send_buffer_size((uv_handle_t *)&c->udp, &size);
            rc = uv_udp_recv_start(&c->udp, on_alloc, on_recv);
        }
        if (rc < 0) {
            char addr[64];
            agw_config_format_address(&cfg->iq_listen, true, addr, sizeof(addr));
            agw_log(AGW_LOG_ERROR, "iq: cannot listen on %s: %s", addr, uv_strerror(rc));
            uv_close((uv_handle_t *)&c->udp, NULL);
            agw_workers_stop(c->workers);
            c->workers = NULL;
        }
    }
    if (rc < 0) {
        h248_txn_in_free(c->txn_in);
        h248_txn_out_free(c->txn_out);
        h248_message_free(c->mid_holder);
        /* c is still referenced by closing handles: freed at process exit. */
        return rc;
    }
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    uv_timer_init(loop, &c->ito_timer);
    c->ito_timer.data = c;
    uv_timer_init(loop, &c->drain_timer);
    c->drain_timer.data = c;
    uv_timer_init(loop, &c->probe_timer);
    c->probe_timer.data = c;
    for (size_t i = 0; i < sizeof(c->probes) / sizeof(c->probes[0]); i++)
        c->probes[i].rtt_ns = -1;
    char addr[64];
    agw_config_format_address(&cfg->iq_listen, true, addr, sizeof(addr));
    agw_log(AGW_LOG_INFO, "iq: listening on %s, %u worker(s)", addr, model->workers);
    start_registration(c);
    schedule(c);
    *out = c;
    return 0;
}

bool agw_control_registered(const struct agw_control *c)
{
    return c->assoc == ASSOC_REGISTERED;
}

const struct agw_control_stats *agw_control_stats(const struct agw_control *c)
{
    return &c->stats;
}

bool agw_control_workers_alive(const struct agw_control *c, uint64_t max_age_ms)
{
    return agw_workers_alive(c->workers, max_age_ms);
}

void agw_control_get_state(const struct agw_control *c, struct agw_control_state *out)
{
    static const char *const names[] = {
        [ASSOC_REGISTERING] = "registering",
        [ASSOC_REGISTERED] = "registered",
        [ASSOC_SHUTTING_DOWN] = "shutting down",
        [ASSOC_DOWN] = "down",
    };
    memset(out, 0, sizeof(*out));
    out->association = names[c->assoc];
    out->registered = c->assoc == ASSOC_REGISTERED;
    out->draining = c->draining;
    out->mgc = c->peers[c->target].addr;
    out->version = c->version;
    out->registered_ms = out->registered ? c->registered_ms : 0;
    out->transactions_in_progress = c->n_pending;
}

/* ---- Drain and worker probes (operations) ---- */

static void on_drain_tick(uv_timer_t *timer)
{
    struct agw_control *c = timer->data;
    unsigned left = c->model->n_contexts;
    if (left > 0 && now_ms(c) < c->drain_deadline_ms)
        return;
    uv_timer_stop(&c->drain_timer);
    agw_log(AGW_LOG_INFO, "drain: %s, %u context(s) left", left == 0 ? "done" : "timed out", left);
    if (c->on_drained != NULL)
        c->on_drained(c->drained_arg, left);
}

int agw_control_drain(struct agw_control *c, uint32_t timeout_ms, agw_control_drained_cb done,
                      void *arg)
{
    if (c->workers == NULL || c->assoc == ASSOC_SHUTTING_DOWN || c->assoc == ASSOC_DOWN)
        return -ESHUTDOWN;
    if (c->draining)
        return -EALREADY;
    c->draining = true;
    c->on_drained = done;
    c->drained_arg = arg;
    c->drain_deadline_ms = now_ms(c) + timeout_ms;
    agw_log(AGW_LOG_INFO, "drain: no new context from now on; %u context(s), waiting up to %u s",
            c->model->n_contexts, timeout_ms / 1000);
    /* The first check runs from the loop: done never runs inside this call. */
    uv_timer_start(&c->drain_timer, on_drain_tick, 0, 100);
    return 0;
}

static void on_probe(uv_timer_t *timer)
{
    struct agw_control *c = timer->data;
    if (c->workers == NULL)
        return;
    for (unsigned w = 0; w < c->model->workers && w < 64; w++) {
        struct worker_probe *probe = &c->probes[w];
        if (probe->out)
            continue; /* still on its way: its age is the lag */
        struct agw_op op = {.kind = AGW_OP_BARRIER, .cookie = (uint64_t)(uintptr_t)probe};
        probe->sent_ns = uv_hrtime();
        if (agw_workers_submit(c->workers, w, &op, 1) == 0)
            probe->out = true;
    }
}

void agw_control_probe_workers(struct agw_control *c, unsigned period_ms)
{
    uv_timer_start(&c->probe_timer, on_probe, 0, period_ms);
}

double agw_control_worker_lag(const struct agw_control *c, unsigned w)
{
    if (w >= 64 || w >= c->model->workers)
        return -1;
    const struct worker_probe *probe = &c->probes[w];
    int64_t lag = probe->rtt_ns;
    if (probe->out && (int64_t)(uv_hrtime() - probe->sent_ns) > lag)
        lag = (int64_t)(uv_hrtime() - probe->sent_ns);
    return lag < 0 ? -1 : (double)lag / 1e9;
}

static void on_closed(uv_handle_t *handle)
{
    struct agw_control *c = handle->data;
    if (--c->handles_open > 0)
        return;
    while (c->pending.next != &c->pending) {
        struct pending_exec *p = c->pending.next;
        p->next->prev = &c->pending;
        c->pending.next = p->next;
        agw_exec_fini(&p->x);
        free(p);
    }
    h248_txn_in_free(c->txn_in);
    h248_txn_in_free(c->txn_in_old);
    h248_txn_out_free(c->txn_out);
    h248_txn_out_free(c->txn_out_old);
    h248_message_free(c->mid_holder);
    agw_control_stopped_cb cb = c->on_stopped;
    free(c);
    if (cb != NULL)
        cb();
}

static void close_all(struct agw_control *c)
{
    if (c->workers == NULL)
        return; /* already closing */
    agw_workers_stop(c->workers);
    c->workers = NULL;
    c->handles_open = 5;
    uv_close((uv_handle_t *)&c->timer, on_closed);
    uv_close((uv_handle_t *)&c->ito_timer, on_closed);
    uv_close((uv_handle_t *)&c->drain_timer, on_closed);
    uv_close((uv_handle_t *)&c->probe_timer, on_closed);
    uv_close((uv_handle_t *)&c->udp, on_closed);
}

static void on_shutdown_poll(uv_timer_t *timer);

void agw_control_shutdown(struct agw_control *c, bool forced, agw_control_stopped_cb done)
{
    const struct agw_control_stats *s = &c->stats;
    agw_log(AGW_LOG_INFO,
            "counters: transactions %llu, duplicates %llu, pendings %llu, parse errors %llu, "
            "unknown peers %llu, retransmissions %llu, failovers %llu, legs up %llu, failed "
            "%llu (fingerprint mismatch %llu, handshake timeout %llu), connections refused %llu",
            (unsigned long long)s->transactions, (unsigned long long)s->duplicates,
            (unsigned long long)s->pendings_sent, (unsigned long long)s->parse_errors,
            (unsigned long long)s->unknown_peer_drops, (unsigned long long)s->retransmissions,
            (unsigned long long)s->mgc_failovers, (unsigned long long)s->legs_up,
            (unsigned long long)s->legs_failed, (unsigned long long)s->fingerprint_mismatches,
            (unsigned long long)s->handshake_timeouts, (unsigned long long)s->connections_refused);
    c->on_stopped = done;
    uv_timer_stop(&c->drain_timer); /* a drain still waiting ends here */
    if (c->assoc != ASSOC_REGISTERED) {
        close_all(c);
        return;
    }
    /* The ServiceChange, then close once it is answered or given up on. */
    c->assoc = ASSOC_SHUTTING_DOWN;
    out_cancel_all(c);
    if (send_service_change(c, forced ? H248_SC_FORCED : H248_SC_GRACEFUL,
                            "905 Termination taken out of service") < 0) {
        close_all(c);
        return;
    }
    agw_log(AGW_LOG_INFO, "iq: %s ServiceChange sent", forced ? "Forced" : "Graceful");
    schedule(c);
    uv_timer_stop(&c->ito_timer);
    uv_timer_start(&c->ito_timer, on_shutdown_poll, 50, 50);
}

static void on_shutdown_poll(uv_timer_t *timer)
{
    struct agw_control *c = timer->data;
    /* The MGC gets a bounded time to answer: a dead MGC must not hold the gateway up. */
    if (c->assoc == ASSOC_DOWN || out_outstanding(c->txn_out) == 0 || ++c->shutdown_polls >= 40)
        close_all(c);
}
