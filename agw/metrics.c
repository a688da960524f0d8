/* The Prometheus text exposition (format 0.0.4) of the gateway: the control loop's counters and
 * the model's gauges, rendered on the control loop for each scrape. */
#include "agw/agw.h"
#include "sctp/assoc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX "ims_agw_"

/* Label values by enum h248_command_kind, then the AGW_STATS_CMD_* labels. */
static const char *const command_names[AGW_STATS_COMMANDS] = {
    [H248_CMD_ADD] = "add",
    [H248_CMD_MOVE] = "move",
    [H248_CMD_MODIFY] = "modify",
    [H248_CMD_SUBTRACT] = "subtract",
    [H248_CMD_AUDIT_VALUE] = "audit_value",
    [H248_CMD_AUDIT_CAPABILITIES] = "audit_capabilities",
    [H248_CMD_NOTIFY] = "notify",
    [H248_CMD_SERVICE_CHANGE] = "service_change",
    [AGW_STATS_CMD_NONE] = "none",
    [AGW_STATS_CMD_UNPARSED] = "unparsed",
};

/* The SDP transport of a termination; "unknown" until a descriptor named one. */
static const char *const proto_names[] = {
    [SDP_PROTO_OTHER] = "unknown",
    [SDP_PROTO_TCP_TLS_MSRP] = "tcp_tls_msrp",
    [SDP_PROTO_TCP_MSRP] = "tcp_msrp",
    [SDP_PROTO_TCP_TLS_BFCP] = "tcp_tls_bfcp",
    [SDP_PROTO_TCP_BFCP] = "tcp_bfcp",
    [SDP_PROTO_TCP] = "tcp",
    [SDP_PROTO_UDP_DTLS_SCTP] = "udp_dtls_sctp",
    [SDP_PROTO_TCP_DTLS_SCTP] = "tcp_dtls_sctp",
    [SDP_PROTO_DTLS_SCTP] = "dtls_sctp",
    [SDP_PROTO_UDP_SCTP] = "udp_sctp",
};
#define N_PROTOS (sizeof(proto_names) / sizeof(proto_names[0]))

/* A growing text; after a failed allocation every append does nothing and failed stays set. */
struct text {
    char *buf;
    size_t len, cap;
    bool failed;
};

__attribute__((format(printf, 2, 3))) static void add(struct text *t, const char *fmt, ...)
{
    for (int round = 0; round < 2 && !t->failed; round++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 > t->len + (size_t)n + 1 ? t->cap * 2 : t->len + (size_t)n + 1;
        char *grown = realloc(t->buf, cap);
        if (grown == NULL) {
            t->failed = true;
            return;
        }
        t->buf = grown;
        t->cap = cap;
    }
}

static void family(struct text *t, const char *name, const char *type, const char *help)
{
    add(t, "# HELP " PREFIX "%s %s\n# TYPE " PREFIX "%s %s\n", name, help, name, type);
}

/* A family of one sample without labels. */
static void single(struct text *t, const char *name, const char *type, const char *help,
                   uint64_t value)
{
    family(t, name, type, help);
    add(t, PREFIX "%s %llu\n", name, (unsigned long long)value);
}

/* model.c marks deleted slots with the model's own address. */
static bool live_slot(const struct agw_model *m, const void *slot)
{
    return slot != NULL && slot != (const void *)m;
}

static void render_model(struct text *t, const struct agw_model *m)
{
    single(t, "contexts", "gauge", "Contexts the gateway holds.", m->n_contexts);
    single(t, "contexts_limit", "gauge", "Contexts the gateway holds at most (max_contexts).",
           m->max_contexts);
    /* Counted through the contexts: every termination belongs to one. */
    unsigned counts[AGW_CONFIG_MAX_REALMS][N_PROTOS];
    memset(counts, 0, sizeof(counts));
    for (size_t i = 0; i < m->ctx_cap; i++) {
        const struct agw_context *c = m->ctx_slots[i];
        if (!live_slot(m, c))
            continue;
        for (unsigned k = 0; k < c->n_terms; k++) {
            const struct agw_term *term = c->terms[k];
            if (term->realm_index < AGW_CONFIG_MAX_REALMS && (size_t)term->proto < N_PROTOS)
                counts[term->realm_index][term->proto]++;
        }
    }
    family(t, "terminations", "gauge", "Terminations by realm and SDP transport protocol.");
    for (unsigned r = 0; r < m->n_realms && r < AGW_CONFIG_MAX_REALMS; r++)
        for (size_t p = 0; p < N_PROTOS; p++)
            add(t, PREFIX "terminations{realm=\"%s\",proto=\"%s\"} %u\n", m->realms[r].name,
                proto_names[p], counts[r][p]);
}

static void render_h248(struct text *t, const struct agw_control_stats *s,
                        const struct agw_control_state *st)
{
    family(t, "h248_transactions_total", "counter",
           "Iq requests answered, by their first command and the reply's error code (0: none).");
    for (unsigned cmd = 0; cmd < AGW_STATS_COMMANDS; cmd++) {
        /* The usual outcome is always there, so that rates start from a known zero. */
        if (cmd <= H248_CMD_SUBTRACT)
            add(t, PREFIX "h248_transactions_total{command=\"%s\",code=\"0\"} %llu\n",
                command_names[cmd], (unsigned long long)s->h248_transactions[cmd][0]);
        for (unsigned code = cmd <= H248_CMD_SUBTRACT ? 1 : 0; code < AGW_STATS_CODES; code++)
            if (s->h248_transactions[cmd][code] > 0)
                add(t, PREFIX "h248_transactions_total{command=\"%s\",code=\"%u\"} %llu\n",
                    command_names[cmd], code, (unsigned long long)s->h248_transactions[cmd][code]);
    }
    family(t, "h248_commands_total", "counter", "Commands of the Iq requests executed.");
    for (unsigned cmd = 0; cmd <= H248_CMD_SERVICE_CHANGE; cmd++)
        add(t, PREFIX "h248_commands_total{command=\"%s\"} %llu\n", command_names[cmd],
            (unsigned long long)s->h248_commands[cmd]);
    single(t, "h248_transactions_in_progress", "gauge",
           "Iq requests executed whose reply waits for the workers.", st->transactions_in_progress);
    single(t, "h248_duplicates_total", "counter",
           "Iq requests received again (answered from the reply cache or with Pending).",
           s->duplicates);
    single(t, "h248_retransmissions_total", "counter",
           "Requests of the gateway (ServiceChange, Notify) sent again for want of a reply.",
           s->retransmissions);
    single(t, "h248_pendings_sent_total", "counter", "TransactionPending messages sent.",
           s->pendings_sent);
    single(t, "h248_notifies_sent_total", "counter", "Notify requests sent to the MGC.",
           s->notifies_sent);
    single(t, "h248_unknown_replies_total", "counter",
           "Replies to no request of the gateway in progress.", s->unknown_replies);
    family(t, "iq_datagrams_total", "counter", "Iq UDP datagrams by direction.");
    add(t, PREFIX "iq_datagrams_total{direction=\"received\"} %llu\n",
        (unsigned long long)s->datagrams_received);
    add(t, PREFIX "iq_datagrams_total{direction=\"sent\"} %llu\n",
        (unsigned long long)s->datagrams_sent);
    single(t, "iq_send_errors_total", "counter", "Iq datagrams the kernel did not take.",
           s->send_errors);
    single(t, "iq_malformed_total", "counter", "Iq messages that did not parse.", s->parse_errors);
    single(t, "iq_unknown_peer_drops_total", "counter",
           "Iq datagrams dropped because they came from no configured MGC.", s->unknown_peer_drops);
    single(t, "iq_before_registration_total", "counter",
           "Iq requests refused (505) before the registration completed.", s->before_registration);
}

static void render_legs(struct text *t, const struct agw_control_stats *s)
{
    family(t, "handshakes_total", "counter",
           "TLS handshakes of the legs by outcome, failures by reason.");
    add(t, PREFIX "handshakes_total{outcome=\"ok\"} %llu\n", (unsigned long long)s->legs_up);
    for (unsigned i = 0; i < AGW_LEG_CAUSES; i++)
        if (i != AGW_CAUSE_CONNECT_FAILED)
            add(t, PREFIX "handshakes_total{outcome=\"failed\",reason=\"%s\"} %llu\n",
                agw_control_cause_name((enum agw_leg_cause)i),
                (unsigned long long)s->handshakes_failed[i]);
    single(t, "fingerprint_mismatches_total", "counter",
           "Peers whose certificate matched none of the fingerprints the ALG gave.",
           s->fingerprint_mismatches);
    family(t, "leg_failures_total", "counter",
           "Legs that failed (connect, handshake, or later), by reason.");
    for (unsigned i = 0; i < AGW_LEG_CAUSES; i++)
        add(t, PREFIX "leg_failures_total{reason=\"%s\"} %llu\n",
            agw_control_cause_name((enum agw_leg_cause)i), (unsigned long long)s->leg_failures[i]);
    single(t, "connections_refused_total", "counter",
           "Connections turned away on a termination's port (a second one, too early, or not from "
           "the Remote's address).",
           s->connections_refused);
    single(t, "inactivity_reports_total", "counter",
           "Legs reported without a byte for their inactivity time (adid/ipstop).",
           s->inactivity_reports);
}

static void render_relay(struct text *t, const struct agw_control *c, const struct agw_model *m,
                         const struct agw_control_stats *s)
{
    family(t, "relayed_bytes_total", "counter",
           "Bytes on the wire of released terminations, by realm and direction (received from "
           "or sent to the far end); counted when a termination is released.");
    for (unsigned r = 0; r < m->n_realms && r < AGW_CONFIG_MAX_REALMS; r++) {
        add(t, PREFIX "relayed_bytes_total{realm=\"%s\",direction=\"received\"} %llu\n",
            m->realms[r].name, (unsigned long long)s->relayed_bytes[r][0]);
        add(t, PREFIX "relayed_bytes_total{realm=\"%s\",direction=\"sent\"} %llu\n",
            m->realms[r].name, (unsigned long long)s->relayed_bytes[r][1]);
    }
    family(t, "relayed_messages_total", "counter",
           "Data-channel messages of released terminations, by realm and direction (received "
           "from or sent to the far end); counted when a termination is released.");
    for (unsigned r = 0; r < m->n_realms && r < AGW_CONFIG_MAX_REALMS; r++) {
        add(t, PREFIX "relayed_messages_total{realm=\"%s\",direction=\"received\"} %llu\n",
            m->realms[r].name, (unsigned long long)s->relayed_messages[r][0]);
        add(t, PREFIX "relayed_messages_total{realm=\"%s\",direction=\"sent\"} %llu\n",
            m->realms[r].name, (unsigned long long)s->relayed_messages[r][1]);
    }
    single(t, "sctp_checksum_errors_total", "counter",
           "SCTP packets of data-channel legs dropped for a bad CRC32c (RFC 9260 6.8).",
           agw_sctp_checksum_errors());
    bool header = false;
    for (unsigned w = 0; w < m->workers; w++) {
        double lag = agw_control_worker_lag(c, w);
        if (lag < 0)
            continue; /* not measured yet */
        if (!header)
            family(t, "worker_loop_lag_seconds", "gauge",
                   "Round trip of a probe from the control loop through a worker loop and back.");
        header = true;
        add(t, PREFIX "worker_loop_lag_seconds{worker=\"%u\"} %.6f\n", w, lag);
    }
}

int agw_metrics_render(const struct agw_control *c, const struct agw_model *m, char **out,
                       size_t *len)
{
    struct text t = {.cap = 16384};
    t.buf = malloc(t.cap);
    if (t.buf == NULL)
        return -ENOMEM;
    const struct agw_control_stats *s = agw_control_stats(c);
    struct agw_control_state st;
    agw_control_get_state(c, &st);
    family(&t, "build_info", "gauge", "The version of ims-agw running.");
    add(&t, PREFIX "build_info{version=\"%s\"} 1\n", AGW_VERSION);
    single(&t, "registered", "gauge", "1 while the gateway is registered with an MGC.",
           st.registered);
    single(&t, "draining", "gauge", "1 while a drain refuses new contexts.", st.draining);
    single(&t, "drain_refusals_total", "counter",
           "Requests for a new context answered 510 because of a drain.", s->drain_refusals);
    single(&t, "mgc_failovers_total", "counter", "MGCs declared lost.", s->mgc_failovers);
    render_model(&t, m);
    render_h248(&t, s, &st);
    render_legs(&t, s);
    render_relay(&t, c, m, s);
    if (t.failed) {
        free(t.buf);
        return -ENOMEM;
    }
    *out = t.buf;
    *len = t.len;
    return 0;
}
