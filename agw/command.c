/* H.248 command execution: Add, Modify, Subtract, Move and the audits against the model. */
#include "agw/agw.h"
#include "h248/token.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Builders for the reply (all memory in exec->reply's arena). */

static struct h248_str rstr(struct agw_exec *x, const char *s, size_t len)
{
    struct h248_str out = {"", 0};
    if (h248_str_copy(x->reply, &out, s, len) < 0)
        out.len = 0;
    return out;
}

static void *ralloc(struct agw_exec *x, size_t size)
{
    return h248_alloc(x->reply, size);
}

static struct h248_error_desc *error_desc(struct agw_exec *x, const struct agw_status *st)
{
    struct h248_error_desc *e = ralloc(x, sizeof(*e));
    if (e != NULL) {
        e->code = (uint16_t)st->code;
        e->has_text = st->text[0] != '\0';
        e->text = rstr(x, st->text, strlen(st->text));
    }
    return e;
}

static struct h248_descriptor *append_descriptor(struct agw_exec *x, struct h248_command *c,
                                                 enum h248_descriptor_kind kind)
{
    struct h248_descriptor *d = ralloc(x, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->kind = kind;
    struct h248_descriptor **tail = &c->descriptors;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = d;
    return d;
}

static struct h248_command *reply_command(struct agw_exec *x, struct h248_action *ra,
                                          const struct h248_command *req, const char *id,
                                          size_t id_len)
{
    struct h248_command *c = ralloc(x, sizeof(*c));
    struct h248_termination_id *t = ralloc(x, sizeof(*t));
    if (c == NULL || t == NULL)
        return NULL;
    c->kind = req->kind;
    c->wildcard_reply = req->wildcard_reply;
    t->text = rstr(x, id, id_len);
    c->terminations = t;
    struct h248_command **tail = &ra->commands;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = c;
    return c;
}

static struct h248_property *stat_property(struct agw_exec *x, const char *name)
{
    struct h248_property *p = ralloc(x, sizeof(*p));
    struct h248_value *v = ralloc(x, sizeof(*v));
    if (p == NULL || v == NULL)
        return NULL;
    p->name = rstr(x, name, strlen(name));
    p->has_value = true;
    p->value.values = v;
    v->text = rstr(x, "0", 1);
    return p;
}

/* nt/os, nt/or, nt/dur with values filled in by fill_statistics. */
/* The statistics of t: nt/os, nt/or, nt/dur, and for a data-channel termination the channel
 * messages sent and received and the channels opened (dc/ms, dc/mr, dc/ch). */
static const char *const stat_names[] = {"nt/os", "nt/or", "nt/dur", "dc/ms", "dc/mr", "dc/ch"};

static struct h248_statistics *statistics_descriptor(struct agw_exec *x, struct h248_command *c,
                                                     const struct agw_term *t)
{
    struct h248_descriptor *d = append_descriptor(x, c, H248_DESC_STATISTICS);
    if (d == NULL)
        return NULL;
    size_t n = t->datagram ? 6 : 3;
    struct h248_property **tail = &d->u.statistics.items;
    for (size_t i = 0; i < n; i++) {
        struct h248_property *p = stat_property(x, stat_names[i]);
        if (p == NULL)
            return NULL;
        *tail = p;
        tail = &p->next;
    }
    return &d->u.statistics;
}

static void set_u64(struct agw_exec *x, struct h248_property *p, uint64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    p->value.values->text = rstr(x, buf, (size_t)n);
}

static void fill_statistics(struct agw_exec *x, struct h248_statistics *s, const struct agw_term *t,
                            uint64_t now_ms)
{
    uint64_t values[] = {
        t->octets_sent,   t->octets_received,   now_ms >= t->added_ms ? now_ms - t->added_ms : 0,
        t->messages_sent, t->messages_received, t->channels};
    size_t i = 0;
    for (struct h248_property *p = s->items; p != NULL && i < 6; p = p->next)
        set_u64(x, p, values[i++]);
}

static int push_op(struct agw_exec *x, unsigned worker, const struct agw_op *op)
{
    if (x->n_ops == x->cap_ops) {
        size_t cap = x->cap_ops ? x->cap_ops * 2 : 8;
        struct agw_exec_op *grown = realloc(x->ops, cap * sizeof(*grown));
        if (grown == NULL)
            return -ENOMEM;
        x->ops = grown;
        x->cap_ops = cap;
    }
    x->ops[x->n_ops].worker = worker;
    x->ops[x->n_ops].op = *op;
    x->n_ops++;
    if (worker < 64)
        x->workers_touched |= 1ull << worker;
    return 0;
}

/* A termination already leaving its old worker in this transaction lands on `worker` instead of
 * where it was headed; a leg that an earlier action configured there is dropped (it holds no
 * socket: that follows the hand-over). */
static int redirect_move(struct agw_exec *x, struct agw_released *r, unsigned worker)
{
    if (r->adopt_worker == worker)
        return 0;
    struct agw_op op = {.kind = AGW_OP_RELEASE, .key = r->term->key};
    int rc = push_op(x, r->adopt_worker, &op);
    r->adopt_worker = worker;
    return rc;
}

/* The pending hand-over of t in this transaction, if one was already asked for. */
static struct agw_released *find_moved(struct agw_exec *x, const struct agw_term *t)
{
    for (size_t i = 0; i < x->n_released; i++)
        if (x->released[i].moved && x->released[i].term == t)
            return &x->released[i];
    return NULL;
}

static struct agw_released *push_released(struct agw_exec *x, struct agw_term *t)
{
    if (x->n_released == x->cap_released) {
        size_t cap = x->cap_released ? x->cap_released * 2 : 8;
        struct agw_released *grown = realloc(x->released, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        x->released = grown;
        x->cap_released = cap;
    }
    struct agw_released *r = &x->released[x->n_released++];
    memset(r, 0, sizeof(*r));
    r->term = t;
    return r;
}

/* Hands a termination's reserved socket to its context's worker. */
static int adopt_socket(struct agw_exec *x, struct agw_term *t)
{
    if (t->fd < 0)
        return 0;
    struct agw_op op = {.kind = AGW_OP_ADOPT,
                        .key = t->key,
                        .fd = t->fd,
                        .datagram = t->datagram,
                        .listening = !t->datagram};
    if (push_op(x, t->ctx->worker, &op) < 0)
        return -ENOMEM;
    t->fd = -1;
    return 0;
}

static bool is_msrp(const struct agw_term *t)
{
    return t->proto == SDP_PROTO_TCP_MSRP || t->proto == SDP_PROTO_TCP_TLS_MSRP;
}

/* The data-channel termination whose MSRP channel a TCP/MSRP termination of c serves: the one
 * in another realm (the access side of a core TCP/MSRP leg), else the first one. */
static const struct agw_term *bridge_partner(const struct agw_context *c,
                                             const struct agw_term *tcp)
{
    const struct agw_term *first = NULL;
    for (unsigned k = 0; k < c->n_terms; k++) {
        const struct agw_term *o = c->terms[k];
        if (!o->datagram || o->stream_id != tcp->stream_id)
            continue;
        if (o->realm_index != tcp->realm_index)
            return o;
        if (first == NULL)
            first = o;
    }
    return first;
}

/* usrsctp is one process-wide instance driven by one worker (DESIGN.md §3): a context that holds
 * a data-channel termination lives there. Its terminations already on another worker are
 * detached there and adopted again on the data-channel worker, as Move does. */
static int pin_datachannel_context(struct agw_exec *x, struct agw_context *c)
{
    if (c->worker == AGW_DATACHANNEL_WORKER)
        return 0;
    bool datachannel = false;
    for (unsigned i = 0; i < c->n_terms; i++)
        datachannel |= c->terms[i]->datagram;
    if (!datachannel)
        return 0;
    for (unsigned i = 0; i < c->n_terms; i++) {
        struct agw_term *t = c->terms[i];
        /* Already leaving its old worker in this transaction: it just lands elsewhere. */
        struct agw_released *r = find_moved(x, t);
        if (r != NULL) {
            if (redirect_move(x, r, AGW_DATACHANNEL_WORKER) < 0)
                return -ENOMEM;
            continue;
        }
        r = push_released(x, t);
        struct agw_op op = {.kind = AGW_OP_DETACH, .key = t->key, .term = t};
        if (r == NULL || push_op(x, c->worker, &op) < 0)
            return -ENOMEM;
        r->moved = true;
        r->adopt_worker = AGW_DATACHANNEL_WORKER;
    }
    agw_log(AGW_LOG_DEBUG, "context %u: moved to worker %u for its data channels", c->id,
            AGW_DATACHANNEL_WORKER);
    c->worker = AGW_DATACHANNEL_WORKER;
    return 0;
}

/* The data-channel part of a datagram leg's configuration, defaults filled in. */
static int set_dc_params(struct agw_leg_conf *conf, const struct agw_term *t)
{
    struct agw_dc_params *dc = malloc(sizeof(*dc));
    if (dc == NULL)
        return -ENOMEM;
    if (t->dc != NULL)
        *dc = *t->dc;
    else
        memset(dc, 0, sizeof(*dc));
    if (dc->local_sctp_port == 0)
        dc->local_sctp_port = AGW_SCTP_PORT_DEFAULT;
    if (dc->remote_sctp_port == 0) {
        dc->remote_sctp_port = AGW_SCTP_PORT_DEFAULT;
        dc->remote_max_message_size = 65536;
    }
    conf->dc = dc;
    return 0;
}

/* Sends the worker of c a fresh configuration of each of its terminations. */
static int configure_context(struct agw_exec *x, const struct agw_model *m, struct agw_context *c)
{
    if (pin_datachannel_context(x, c) < 0)
        return -ENOMEM;
    for (unsigned i = 0; i < c->n_terms; i++) {
        const struct agw_term *t = c->terms[i];
        if (t->proto == SDP_PROTO_OTHER)
            continue; /* nothing to run yet */
        struct agw_leg_conf *conf = agw_leg_conf_new(t->n_fingerprints);
        if (conf == NULL)
            return -ENOMEM;
        conf->key = t->key;
        /* A data-channel leg pairs with the other data-channel leg; a TCP/MSRP leg pairs with
         * the MSRP channel of the data-channel leg on the far side through the bridge
         * (RFC 8873); the other legs pair with each other. */
        for (unsigned k = 0; k < c->n_terms; k++) {
            const struct agw_term *o = c->terms[k];
            if (k == i || o->stream_id != t->stream_id)
                continue;
            if (t->datagram != o->datagram && (is_msrp(o) || is_msrp(t))) {
                const struct agw_term *tcp = is_msrp(t) ? t : o;
                if (conf->bridge_key == 0 && bridge_partner(c, tcp) == (t->datagram ? t : o))
                    conf->bridge_key = o->key;
            } else if (conf->peer_key == 0 && t->datagram == o->datagram) {
                conf->peer_key = o->key;
            } else if (conf->peer_key == 0 && !t->datagram && !o->datagram) {
                conf->peer_key = o->key;
            }
        }
        conf->context_id = c->id;
        snprintf(conf->term_id, sizeof(conf->term_id), "%s", t->id);
        conf->secure = t->secure;
        conf->datagram = t->datagram;
        conf->tcp_role = t->tcp_role;
        conf->tls_client = t->establish_tls_signal || t->tcp_role == AGW_ROLE_ACTIVE;
        conf->has_remote = t->has_remote_addr;
        conf->remote = t->remote_addr;
        memcpy(&conf->local, &t->realm->addr, sizeof(conf->local)); /* IPv4 or IPv6: it fits */
        conf->fingerprints_known = t->n_fingerprints > 0;
        if (t->n_fingerprints > 0)
            memcpy(conf->fingerprints, t->fingerprints,
                   t->n_fingerprints * sizeof(t->fingerprints[0]));
        conf->identity = agw_tls_identity_ref(t->identity);
        conf->tls_ctx = t->secure ? agw_tls_ctx_ref(m->tls_ctx) : NULL;
        conf->mode = t->mode;
        conf->handshake_timeout_ms = m->handshake_timeout_ms;
        conf->ice_consent_timeout_ms = m->ice_consent_timeout_ms;
        conf->buffer_bytes = m->buffer_bytes;
        conf->inactivity_ms = t->inactivity_ms;
        conf->connection_generation = t->connection_generation;
        if (t->datagram && set_dc_params(conf, t) < 0) {
            agw_leg_conf_free(conf);
            return -ENOMEM;
        }
        struct agw_op op = {.kind = AGW_OP_CONFIGURE, .key = t->key, .conf = conf};
        if (push_op(x, c->worker, &op) < 0) {
            agw_leg_conf_free(conf);
            return -ENOMEM;
        }
    }
    return 0;
}

/* Descriptor content of one Add/Modify/Move request, gathered before anything changes. */
struct media_request {
    const struct h248_stream_parms *parms;
    uint16_t stream_id;
    bool direct;
    const struct h248_events *events;
    const struct h248_signals *signals;
    const struct h248_audit *audit;
    bool realm_given;
    struct h248_str realm;
};

static int gather(const struct h248_command *cmd, struct media_request *mr, struct agw_status *st)
{
    memset(mr, 0, sizeof(*mr));
    for (const struct h248_descriptor *d = cmd->descriptors; d != NULL; d = d->next) {
        switch (d->kind) {
        case H248_DESC_MEDIA: {
            const struct h248_media *md = &d->u.media;
            unsigned n = md->has_direct_parms ? 1 : 0;
            for (const struct h248_stream *s = md->streams; s != NULL; s = s->next)
                n++;
            if (n > AGW_MAX_STREAMS)
                return agw_status_set(st, 501, "one stream per termination is supported");
            if (md->has_direct_parms) {
                mr->parms = &md->direct;
                mr->stream_id = 1;
                mr->direct = true;
            } else if (md->streams != NULL) {
                mr->parms = &md->streams->parms;
                mr->stream_id = md->streams->id;
            }
            if (md->termination_state != NULL) {
                for (const struct h248_property *p = md->termination_state->properties; p;
                     p = p->next) {
                    if (p->name.len == 10 && memcmp(p->name.ptr, "ipdc/realm", 10) == 0 &&
                        p->has_value) {
                        mr->realm_given = true;
                        mr->realm = p->value.values->text;
                    } else {
                        unsigned code =
                            agw_profile_check_item(AGW_ITEM_PROPERTY, p->name.ptr, p->name.len);
                        return agw_status_set(st, code ? code : 445,
                                              "property %.*s not supported here", (int)p->name.len,
                                              p->name.ptr);
                    }
                }
            }
            if (mr->parms != NULL && mr->parms->statistics != NULL)
                return agw_status_set(st, 460, "statistics cannot be set on a stream");
            const struct h248_local_control *lc = mr->parms ? mr->parms->local_control : NULL;
            if (lc != NULL) {
                if (lc->mode == H248_MODE_LOOPBACK)
                    return agw_status_set(st, 517, "Loopback mode is not supported");
                for (const struct h248_property *p = lc->properties; p; p = p->next) {
                    if (p->name.len == 10 && memcmp(p->name.ptr, "ipdc/realm", 10) == 0) {
                        if (!p->has_value || p->value.shape != H248_SHAPE_SINGLE ||
                            p->value.relation != H248_REL_EQUAL)
                            return agw_status_set(st, 449, "ipdc/realm needs one value");
                        mr->realm_given = true;
                        mr->realm = p->value.values->text;
                        continue;
                    }
                    unsigned code =
                        agw_profile_check_item(AGW_ITEM_PROPERTY, p->name.ptr, p->name.len);
                    return agw_status_set(st, code ? code : 445,
                                          "property %.*s not supported in LocalControl",
                                          (int)p->name.len, p->name.ptr);
                }
            }
            break;
        }
        case H248_DESC_EVENTS:
            mr->events = &d->u.events;
            break;
        case H248_DESC_SIGNALS:
            mr->signals = &d->u.signals;
            break;
        case H248_DESC_AUDIT:
            mr->audit = &d->u.audit;
            break;
        default:
            return agw_status_set(st, 444, "descriptor not supported in this command");
        }
    }
    return 0;
}

static int check_events(const struct h248_events *ev, bool root, struct agw_status *st)
{
    unsigned n = 0;
    for (const struct h248_requested_event *e = ev->events; e != NULL; e = e->next, n++) {
        if (n >= AGW_MAX_EVENTS)
            return agw_status_set(st, 510, "more than %d events", AGW_MAX_EVENTS);
        unsigned code = agw_profile_check_item(AGW_ITEM_EVENT, e->name.ptr, e->name.len);
        if (code != 0)
            return agw_status_set(st, code, "event %.*s not supported", (int)e->name.len,
                                  e->name.ptr);
        bool ito = e->name.len == 6 && memcmp(e->name.ptr, "it/ito", 6) == 0;
        if (ito != root)
            return agw_status_set(st, 451, "event %.*s not supported on %s", (int)e->name.len,
                                  e->name.ptr, root ? "ROOT" : "this termination");
    }
    return 0;
}

static int apply_events(struct agw_term *t, const struct h248_events *ev, struct agw_status *st)
{
    if (check_events(ev, false, st) < 0)
        return -1;
    uint32_t inactivity_ms = 0;
    for (const struct h248_requested_event *e = ev->events; e != NULL; e = e->next) {
        if (e->name.len != strlen(AGW_INACTIVITY_EVENT) ||
            memcmp(e->name.ptr, AGW_INACTIVITY_EVENT, e->name.len) != 0)
            continue;
        inactivity_ms = 30000; /* a detection time of 30 s unless dt says otherwise */
        for (const struct h248_event_parm *p = e->parms; p != NULL; p = p->next) {
            if (p->kind != H248_EVPARM_OTHER || p->other.name.len != 2 ||
                memcmp(p->other.name.ptr, "dt", 2) != 0 || !p->other.has_value)
                continue;
            struct h248_str v = p->other.value.values->text;
            uint64_t n = 0;
            for (size_t i = 0; i < v.len && n <= 86400; i++) {
                if (v.ptr[i] < '0' || v.ptr[i] > '9')
                    return agw_status_set(st, 449, "adid/ipstop dt must be a number of seconds");
                n = n * 10 + (uint64_t)(v.ptr[i] - '0');
            }
            if (n == 0 || n > 86400)
                return agw_status_set(st, 449, "adid/ipstop dt out of range 1..86400");
            inactivity_ms = (uint32_t)n * 1000;
        }
    }
    unsigned n = 0;
    for (const struct h248_requested_event *e = ev->events; e != NULL; e = e->next)
        n++;
    char(*names)[32] = NULL;
    if (n > 0 && (names = malloc(n * sizeof(*names))) == NULL)
        return agw_status_set(st, 510, "out of memory");
    n = 0;
    for (const struct h248_requested_event *e = ev->events; e != NULL; e = e->next, n++)
        snprintf(names[n], sizeof(names[n]), "%.*s", (int)e->name.len, e->name.ptr);
    free(t->events);
    t->events = names;
    t->n_events = n;
    t->has_events = ev->has_request_id;
    t->events_request_id = ev->request_id;
    t->inactivity_ms = inactivity_ms;
    return 0;
}

static int apply_signals(struct agw_term *t, const struct h248_signals *sg, struct agw_status *st)
{
    bool establish = false;
    for (const struct h248_signal_item *i = sg->items; i != NULL; i = i->next) {
        for (const struct h248_signal_request *r = i->signals; r != NULL; r = r->next) {
            unsigned code = agw_profile_check_item(AGW_ITEM_SIGNAL, r->name.ptr, r->name.len);
            if (code != 0)
                return agw_status_set(st, code, "signal %.*s not supported", (int)r->name.len,
                                      r->name.ptr);
            if (!t->secure || t->datagram)
                return agw_status_set(st, 452, "signal %.*s needs a TLS termination",
                                      (int)r->name.len, r->name.ptr);
            establish = true;
        }
    }
    t->establish_tls_signal = establish;
    return 0;
}

/* Applies Media/Events/Signals to t (Remote before Local: a=setup decides who listens). */
static int apply_media(struct agw_model *m, struct agw_term *t, const struct media_request *mr,
                       bool adding, struct agw_status *st)
{
    if (mr->realm_given && !adding &&
        (mr->realm.len != strlen(t->realm->name) ||
         memcmp(mr->realm.ptr, t->realm->name, mr->realm.len) != 0))
        return agw_status_set(st, 449, "ipdc/realm cannot change on a termination");
    const struct h248_stream_parms *sp = mr->parms;
    if (adding && (sp == NULL || !sp->has_local))
        return agw_status_set(st, 441, "Add needs a Local descriptor");
    if (sp != NULL) {
        if (sp->local_control != NULL && sp->local_control->mode != H248_MODE_UNSET)
            t->mode = sp->local_control->mode;
        t->stream_id = mr->stream_id;
        if (sp->has_remote && agw_profile_apply_remote(t, sp->remote.ptr, sp->remote.len, st) < 0)
            return -1;
        if (sp->has_local && agw_profile_apply_local(m, t, sp->local.ptr, sp->local.len, st) < 0)
            return -1;
    }
    if (mr->events != NULL && apply_events(t, mr->events, st) < 0)
        return -1;
    if (mr->signals != NULL && apply_signals(t, mr->signals, st) < 0)
        return -1;
    return 0;
}

/* The reply's Media: the Local the gateway filled in, in the shape the request used. */
static int reply_media(struct agw_exec *x, struct h248_command *c, const struct agw_term *t,
                       const struct media_request *mr, bool with_remote, bool with_control)
{
    struct h248_descriptor *d = append_descriptor(x, c, H248_DESC_MEDIA);
    if (d == NULL)
        return -ENOMEM;
    struct h248_stream_parms *sp;
    if (mr == NULL || !mr->direct) {
        struct h248_stream *s = ralloc(x, sizeof(*s));
        if (s == NULL)
            return -ENOMEM;
        s->id = t->stream_id;
        d->u.media.streams = s;
        sp = &s->parms;
    } else {
        d->u.media.has_direct_parms = true;
        sp = &d->u.media.direct;
    }
    if (with_control) {
        sp->local_control = ralloc(x, sizeof(*sp->local_control));
        struct h248_termination_state *ts = ralloc(x, sizeof(*ts));
        if (sp->local_control == NULL || ts == NULL)
            return -ENOMEM;
        sp->local_control->mode = t->mode;
        ts->service_state = H248_SERVICE_IN_SVC; /* ephemeral terminations are always in service */
        d->u.media.termination_state = ts;
    }
    if (t->local_sdp != NULL) {
        sp->has_local = true;
        sp->local = rstr(x, t->local_sdp, t->local_len);
    }
    if (with_remote && t->remote_sdp != NULL) {
        sp->has_remote = true;
        sp->remote = rstr(x, t->remote_sdp, t->remote_len);
    }
    if (!sp->has_local && !sp->has_remote && sp->local_control == NULL) {
        /* Nothing to say: drop the empty Media again. */
        struct h248_descriptor **p = &c->descriptors;
        while (*p != d)
            p = &(*p)->next;
        *p = NULL;
    }
    return 0;
}

static bool is_wildcard(struct h248_str id)
{
    return memchr(id.ptr, '*', id.len) != NULL;
}

static bool is_root(struct h248_str id)
{
    return id.len == 4 && strncasecmp(id.ptr, "ROOT", 4) == 0;
}

/* Terminations of ctx named by id (exact or wildcard), into out[]; 0 or an error status. */
static int resolve(struct agw_model *m, struct agw_context *ctx, struct h248_str id,
                   struct agw_term **out, unsigned *n, struct agw_status *st)
{
    *n = 0;
    if (is_wildcard(id)) {
        if (ctx != NULL)
            for (unsigned k = 0; k < ctx->n_terms; k++)
                if (agw_term_matches(ctx->terms[k], id.ptr, id.len))
                    out[(*n)++] = ctx->terms[k];
        if (*n == 0)
            return agw_status_set(st, 431, "no termination matched %.*s", (int)id.len, id.ptr);
        return 0;
    }
    struct agw_term *t = agw_model_term(m, id.ptr, id.len);
    if (t == NULL)
        return agw_status_set(st, 430, "unknown termination %.*s", (int)id.len, id.ptr);
    if (t->ctx != ctx)
        return agw_status_set(st, 435, "termination %.*s is not in this context", (int)id.len,
                              id.ptr);
    out[(*n)++] = t;
    return 0;
}

struct action_state {
    struct agw_model *m;
    struct agw_root_state *root;
    struct agw_exec *x;
    struct h248_action *ra;
    struct agw_context *ctx; /* NULL: the null context */
    bool ctx_created;
    bool touched; /* a termination of ctx changed: its legs need a new configuration */
    uint64_t now_ms;
};

static int do_add(struct action_state *as, const struct h248_command *cmd, struct agw_status *st)
{
    if (as->ctx == NULL)
        return agw_status_set(st, 421, "Add into the null context");
    if (cmd->term_list)
        return agw_status_set(st, 501, "Add of a termination list");
    struct h248_str id = cmd->terminations->text;
    if (!(id.len == 1 && id.ptr[0] == '$')) {
        if (is_root(id))
            return agw_status_set(st, 421, "ROOT cannot be added");
        if (agw_model_term(as->m, id.ptr, id.len) != NULL)
            return agw_status_set(st, 433, "termination %.*s is already in a context", (int)id.len,
                                  id.ptr);
        return agw_status_set(st, 430, "unknown termination %.*s (ids are chosen with $)",
                              (int)id.len, id.ptr);
    }
    struct media_request mr;
    if (gather(cmd, &mr, st) < 0)
        return -1;
    int realm = (int)as->m->default_realm;
    if (mr.realm_given) {
        realm = agw_model_realm_index(as->m, mr.realm.ptr, mr.realm.len);
        if (realm < 0)
            return agw_status_set(st, 449, "unknown realm %.*s", (int)mr.realm.len, mr.realm.ptr);
    }
    unsigned code = 0;
    struct agw_term *t = agw_model_term_new(as->m, as->ctx, (unsigned)realm, &code);
    if (t == NULL)
        return agw_status_set(st, code,
                              code == 434   ? "context is full"
                              : code == 432 ? "no termination id available"
                                            : "out of memory");
    t->added_ms = as->now_ms;
    if (apply_media(as->m, t, &mr, true, st) < 0) {
        if (t->port_reserved && t->port != 9)
            agw_realm_release(t->realm, t->port);
        agw_model_term_remove(as->m, t);
        agw_model_term_free(t);
        return -1;
    }
    struct h248_command *c = reply_command(as->x, as->ra, cmd, t->id, t->id_len);
    if (c == NULL || adopt_socket(as->x, t) < 0 || reply_media(as->x, c, t, &mr, false, false) < 0)
        return agw_status_set(st, 510, "out of memory");
    as->touched = true;
    agw_log(AGW_LOG_DEBUG, "context %u term %s: added (%s, port %u)", as->ctx->id, t->id,
            t->proto_text, t->port);
    return 0;
}

static int do_modify(struct action_state *as, const struct h248_command *cmd, struct agw_status *st)
{
    struct media_request mr;
    if (gather(cmd, &mr, st) < 0)
        return -1;
    if (cmd->term_list)
        return agw_status_set(st, 501, "Modify of a termination list");
    struct h248_str id = cmd->terminations->text;
    if (is_root(id)) {
        if (as->ctx != NULL)
            return agw_status_set(st, 421, "ROOT is only in the null context");
        if (mr.parms != NULL || mr.signals != NULL)
            return agw_status_set(st, 444, "ROOT takes only Events");
        if (mr.events != NULL) {
            if (check_events(mr.events, true, st) < 0)
                return -1;
            as->root->ito_armed = false;
            for (const struct h248_requested_event *e = mr.events->events; e; e = e->next) {
                /* H.248.14: mit, the maximum inactivity time, in units of 10 ms. */
                uint32_t mit_ms = 0;
                for (const struct h248_event_parm *p = e->parms; p != NULL; p = p->next) {
                    if (p->kind == H248_EVPARM_OTHER && p->other.name.len == 3 &&
                        memcmp(p->other.name.ptr, "mit", 3) == 0 && p->other.has_value) {
                        struct h248_str v = p->other.value.values->text;
                        uint64_t n = 0;
                        for (size_t i = 0; i < v.len && n < 100000000; i++) {
                            if (v.ptr[i] < '0' || v.ptr[i] > '9')
                                return agw_status_set(st, 449, "mit must be a number");
                            n = n * 10 + (uint64_t)(v.ptr[i] - '0');
                        }
                        if (n == 0 || n > 8640000)
                            return agw_status_set(st, 449, "mit out of range");
                        mit_ms = (uint32_t)n * 10;
                    }
                }
                if (mit_ms == 0)
                    return agw_status_set(st, 457, "it/ito needs mit");
                as->root->ito_armed = true;
                as->root->ito_request_id = mr.events->request_id;
                as->root->ito_mit_ms = mit_ms;
            }
        }
        return reply_command(as->x, as->ra, cmd, "ROOT", 4) ? 0 : agw_status_set(st, 510, "memory");
    }
    struct agw_term *terms[AGW_MAX_TERMS_PER_CONTEXT];
    unsigned n;
    if (resolve(as->m, as->ctx, id, terms, &n, st) < 0)
        return -1;
    for (unsigned i = 0; i < n; i++) {
        struct agw_term *t = terms[i];
        as->touched = true;
        if (apply_media(as->m, t, &mr, false, st) < 0)
            return -1;
        if (adopt_socket(as->x, t) < 0)
            return agw_status_set(st, 510, "out of memory");
        if (as->ctx->worker < 64)
            as->x->workers_touched |= 1ull << as->ctx->worker;
        if (cmd->wildcard_reply && i > 0)
            continue;
        struct h248_command *c = cmd->wildcard_reply
                                     ? reply_command(as->x, as->ra, cmd, id.ptr, id.len)
                                     : reply_command(as->x, as->ra, cmd, t->id, t->id_len);
        if (c == NULL)
            return agw_status_set(st, 510, "out of memory");
        bool local_changed = mr.parms != NULL && mr.parms->has_local;
        if (local_changed && !cmd->wildcard_reply &&
            reply_media(as->x, c, t, &mr, false, false) < 0)
            return agw_status_set(st, 510, "out of memory");
    }
    return 0;
}

static bool audit_is_empty(const struct h248_audit *a)
{
    return a != NULL && a->items == NULL;
}

static void maybe_delete_context(struct action_state *as)
{
    if (as->ctx != NULL && as->ctx->n_terms == 0) {
        agw_log(AGW_LOG_DEBUG, "context %u: deleted with its last termination", as->ctx->id);
        agw_model_context_delete(as->m, as->ctx);
        as->ctx = NULL;
    }
}

static int do_subtract(struct action_state *as, const struct h248_command *cmd,
                       struct agw_status *st)
{
    if (as->ctx == NULL)
        return agw_status_set(st, 421, "Subtract from the null context");
    if (cmd->term_list)
        return agw_status_set(st, 501, "Subtract of a termination list");
    struct media_request mr;
    if (gather(cmd, &mr, st) < 0)
        return -1;
    struct h248_str id = cmd->terminations->text;
    struct agw_term *terms[AGW_MAX_TERMS_PER_CONTEXT];
    unsigned n;
    if (resolve(as->m, as->ctx, id, terms, &n, st) < 0)
        return -1;
    bool stats = !audit_is_empty(mr.audit) && !cmd->wildcard_reply;
    if (cmd->wildcard_reply && reply_command(as->x, as->ra, cmd, id.ptr, id.len) == NULL)
        return agw_status_set(st, 510, "out of memory");
    for (unsigned i = 0; i < n; i++) {
        struct agw_term *t = terms[i];
        unsigned worker = as->ctx->worker;
        struct agw_released *r = push_released(as->x, t);
        if (r == NULL)
            return agw_status_set(st, 510, "out of memory");
        if (!cmd->wildcard_reply) {
            struct h248_command *c = reply_command(as->x, as->ra, cmd, t->id, t->id_len);
            if (c == NULL || (stats && (r->stats = statistics_descriptor(as->x, c, t)) == NULL))
                return agw_status_set(st, 510, "out of memory");
        }
        struct agw_op op = {.kind = AGW_OP_RELEASE, .key = t->key, .term = t};
        if (push_op(as->x, worker, &op) < 0)
            return agw_status_set(st, 510, "out of memory");
        agw_model_term_remove(as->m, t);
        as->touched = true;
        agw_log(AGW_LOG_DEBUG, "context %u term %s: subtracted", as->ctx->id, t->id);
    }
    maybe_delete_context(as);
    return 0;
}

static int do_move(struct action_state *as, const struct h248_command *cmd, struct agw_status *st)
{
    if (as->ctx == NULL)
        return agw_status_set(st, 421, "Move into the null context");
    if (cmd->term_list || is_wildcard(cmd->terminations->text))
        return agw_status_set(st, 501, "Move of several terminations");
    struct media_request mr;
    if (gather(cmd, &mr, st) < 0)
        return -1;
    struct h248_str id = cmd->terminations->text;
    struct agw_term *t = agw_model_term(as->m, id.ptr, id.len);
    if (t == NULL)
        return agw_status_set(st, 430, "unknown termination %.*s", (int)id.len, id.ptr);
    if (t->ctx == as->ctx)
        return agw_status_set(st, 421, "termination %.*s is already in this context", (int)id.len,
                              id.ptr);
    struct agw_context *from = t->ctx;
    if (agw_model_term_move(as->m, t, as->ctx) < 0)
        return agw_status_set(st, 434, "context is full");
    struct agw_released *moving = find_moved(as->x, t);
    if (moving != NULL) {
        /* Moved twice in one transaction: one hand-over, to where it ends up. */
        if (redirect_move(as->x, moving, as->ctx->worker) < 0)
            return agw_status_set(st, 510, "out of memory");
    } else if (from->worker != as->ctx->worker) {
        struct agw_released *r = push_released(as->x, t);
        struct agw_op op = {.kind = AGW_OP_DETACH, .key = t->key, .term = t};
        if (r == NULL || push_op(as->x, from->worker, &op) < 0)
            return agw_status_set(st, 510, "out of memory");
        r->moved = true;
        r->adopt_worker = as->ctx->worker;
    }
    if (from->n_terms == 0)
        agw_model_context_delete(as->m, from);
    else if (configure_context(as->x, as->m, from) < 0)
        return agw_status_set(st, 510, "out of memory");
    as->touched = true;
    if (apply_media(as->m, t, &mr, false, st) < 0)
        return -1;
    if (adopt_socket(as->x, t) < 0 || reply_command(as->x, as->ra, cmd, t->id, t->id_len) == NULL)
        return agw_status_set(st, 510, "out of memory");
    return 0;
}

static int audit_packages(struct agw_exec *x, struct h248_command *c)
{
    struct h248_descriptor *d = append_descriptor(x, c, H248_DESC_PACKAGES);
    if (d == NULL)
        return -ENOMEM;
    size_t n;
    const struct agw_package_info *p = agw_profile_packages(&n);
    struct h248_package **tail = &d->u.packages;
    for (size_t i = 0; i < n; i++) {
        struct h248_package *pkg = ralloc(x, sizeof(*pkg));
        if (pkg == NULL)
            return -ENOMEM;
        pkg->name = rstr(x, p[i].name, strlen(p[i].name));
        pkg->version = (uint16_t)p[i].version;
        *tail = pkg;
        tail = &pkg->next;
    }
    return 0;
}

static int audit_events(struct agw_exec *x, struct h248_command *c, bool has, uint32_t rid,
                        const char (*names)[32], unsigned n)
{
    struct h248_descriptor *d = append_descriptor(x, c, H248_DESC_EVENTS);
    if (d == NULL)
        return -ENOMEM;
    if (!has || n == 0)
        return 0; /* a bare Events: none requested */
    d->u.events.has_request_id = true;
    d->u.events.request_id = rid;
    struct h248_requested_event **tail = &d->u.events.events;
    for (unsigned i = 0; i < n; i++) {
        struct h248_requested_event *e = ralloc(x, sizeof(*e));
        if (e == NULL)
            return -ENOMEM;
        e->name = rstr(x, names[i], strlen(names[i]));
        *tail = e;
        tail = &e->next;
    }
    return 0;
}

/* One audited termination: the descriptors asked for by the Audit items. */
static int audit_term(struct action_state *as, struct h248_command *c, struct agw_term *t,
                      const struct h248_audit *audit, struct agw_status *st)
{
    for (const struct h248_audit_item *i = audit->items; i != NULL; i = i->next) {
        int rc = 0;
        if (i->kind != H248_AUDIT_TOKEN)
            return agw_status_set(st, 501, "individual audit is not supported");
        switch (i->token) {
        case H248_TOK_MEDIA:
            rc = reply_media(as->x, c, t, NULL, true, true);
            break;
        case H248_TOK_EVENTS:
            rc =
                audit_events(as->x, c, t->has_events, t->events_request_id, t->events, t->n_events);
            break;
        case H248_TOK_STATISTICS: {
            /* The live figures are the worker's: the reply waits for them. */
            struct h248_statistics *s = statistics_descriptor(as->x, c, t);
            struct agw_released *r = s != NULL ? push_released(as->x, t) : NULL;
            struct agw_op op = {.kind = AGW_OP_FIGURES, .key = t->key, .term = t};
            if (r == NULL || push_op(as->x, t->ctx->worker, &op) < 0)
                return agw_status_set(st, 510, "out of memory");
            r->stats = s;
            r->audited = true;
            break;
        }
        case H248_TOK_PACKAGES:
            rc = audit_packages(as->x, c);
            break;
        case H248_TOK_SIGNALS:
            if (append_descriptor(as->x, c, H248_DESC_SIGNALS) == NULL)
                rc = -ENOMEM;
            break;
        default:
            return agw_status_set(st, 444, "audit of that descriptor is not supported");
        }
        if (rc < 0)
            return agw_status_set(st, 510, "out of memory");
    }
    return 0;
}

static int audit_root(struct action_state *as, struct h248_command *c,
                      const struct h248_audit *audit, struct agw_status *st)
{
    for (const struct h248_audit_item *i = audit->items; i != NULL; i = i->next) {
        int rc = 0;
        if (i->kind != H248_AUDIT_TOKEN)
            return agw_status_set(st, 501, "individual audit is not supported");
        if (i->token == H248_TOK_PACKAGES) {
            rc = audit_packages(as->x, c);
        } else if (i->token == H248_TOK_EVENTS) {
            static const char ito[1][32] = {"it/ito"};
            rc = audit_events(as->x, c, as->root->ito_armed, as->root->ito_request_id, ito,
                              as->root->ito_armed ? 1 : 0);
        } else {
            return agw_status_set(st, 444, "audit of that descriptor on ROOT is not supported");
        }
        if (rc < 0)
            return agw_status_set(st, 510, "out of memory");
    }
    return 0;
}

static int do_audit(struct action_state *as, const struct h248_command *cmd, struct agw_status *st)
{
    struct media_request mr;
    if (gather(cmd, &mr, st) < 0)
        return -1;
    if (mr.audit == NULL)
        return agw_status_set(st, 441, "audit without an Audit descriptor");
    if (cmd->term_list)
        return agw_status_set(st, 501, "audit of a termination list");
    struct h248_str id = cmd->terminations->text;
    if (is_root(id)) {
        if (as->ctx != NULL)
            return agw_status_set(st, 421, "ROOT is only in the null context");
        struct h248_command *c = reply_command(as->x, as->ra, cmd, "ROOT", 4);
        if (c == NULL)
            return agw_status_set(st, 510, "out of memory");
        return audit_root(as, c, mr.audit, st);
    }
    if (as->ctx == NULL)
        return agw_status_set(st, 435, "termination %.*s is not in the null context", (int)id.len,
                              id.ptr);
    struct agw_term *terms[AGW_MAX_TERMS_PER_CONTEXT];
    unsigned n;
    if (resolve(as->m, as->ctx, id, terms, &n, st) < 0)
        return -1;
    for (unsigned i = 0; i < n; i++) {
        struct h248_command *c = reply_command(as->x, as->ra, cmd, terms[i]->id, terms[i]->id_len);
        if (c == NULL)
            return agw_status_set(st, 510, "out of memory");
        c->wildcard_reply = false;
        if (audit_term(as, c, terms[i], mr.audit, st) < 0)
            return -1;
    }
    return 0;
}

static int run_command(struct action_state *as, const struct h248_command *cmd,
                       struct agw_status *st)
{
    switch (cmd->kind) {
    case H248_CMD_ADD:
        return do_add(as, cmd, st);
    case H248_CMD_MODIFY:
        return do_modify(as, cmd, st);
    case H248_CMD_SUBTRACT:
        return do_subtract(as, cmd, st);
    case H248_CMD_MOVE:
        return do_move(as, cmd, st);
    case H248_CMD_AUDIT_VALUE:
    case H248_CMD_AUDIT_CAPABILITIES:
        return do_audit(as, cmd, st);
    case H248_CMD_NOTIFY:
        return agw_status_set(st, 443, "Notify is sent by the gateway, not to it");
    case H248_CMD_SERVICE_CHANGE:
        return agw_status_set(st, 501, "ServiceChange from the MGC is not supported");
    }
    return agw_status_set(st, 443, "unknown command");
}

static int apply_context_props(struct action_state *as, const struct h248_context_props *p,
                               struct agw_status *st)
{
    if (as->ctx == NULL)
        return agw_status_set(st, 421, "context properties need a context");
    if (p->attributes != NULL)
        return agw_status_set(st, 445, "no context attribute is supported");
    for (const struct h248_topology_triple *t = p->topology; t != NULL; t = t->next)
        if (t->direction != H248_TOPO_BOTHWAY)
            return agw_status_set(st, 522, "only bothway topology is supported");
    if (p->has_priority) {
        if (p->priority > 15)
            return agw_status_set(st, 449, "priority %u is out of range 0..15", p->priority);
        as->ctx->has_priority = true;
        as->ctx->priority = p->priority;
    }
    if (p->emergency)
        as->ctx->emergency = true;
    if (p->emergency_off)
        as->ctx->emergency = false;
    return 0;
}

/* ContextAudit{...}: the reply's context properties. */
static int reply_context_audit(struct action_state *as, const struct h248_context_props *p)
{
    if (as->ctx == NULL || !p->has_audit)
        return 0;
    struct h248_context_props *rp = ralloc(as->x, sizeof(*rp));
    if (rp == NULL)
        return -ENOMEM;
    for (const struct h248_audit_item *i = p->audit; i != NULL; i = i->next) {
        if (i->kind == H248_AUDIT_TOKEN && i->token == H248_TOK_PRIORITY) {
            rp->has_priority = true;
            rp->priority = as->ctx->has_priority ? as->ctx->priority : 0;
        } else if (i->kind == H248_AUDIT_TOKEN && i->token == H248_TOK_EMERGENCY) {
            rp->emergency = as->ctx->emergency;
            rp->emergency_off = !as->ctx->emergency;
        }
    }
    as->ra->props = rp;
    return 0;
}

static int run_action(struct agw_model *m, struct agw_root_state *root, struct agw_exec *x,
                      const struct h248_action *a, struct h248_action *ra, uint64_t now_ms)
{
    struct action_state as = {.m = m, .root = root, .x = x, .ra = ra, .now_ms = now_ms};
    struct agw_status st = {0};
    ra->context = a->context;
    switch (a->context.kind) {
    case H248_CTX_CHOOSE:
        as.ctx = agw_model_context_new(m);
        if (as.ctx == NULL) {
            agw_status_set(&st, 510, "no context available (max_contexts %u)", m->max_contexts);
            goto failed;
        }
        as.ctx_created = true;
        ra->context.kind = H248_CTX_ID;
        ra->context.id = as.ctx->id;
        break;
    case H248_CTX_ID:
        as.ctx = agw_model_context(m, a->context.id);
        if (as.ctx == NULL) {
            agw_status_set(&st, 411, "unknown context %u", a->context.id);
            goto failed;
        }
        break;
    case H248_CTX_NULL:
        break;
    case H248_CTX_ALL:
        agw_status_set(&st, 501, "context ALL is not supported");
        goto failed;
    }
    if (a->props != NULL) {
        if (apply_context_props(&as, a->props, &st) < 0)
            goto failed;
        if (reply_context_audit(&as, a->props) < 0) {
            agw_status_set(&st, 510, "out of memory");
            goto failed;
        }
    }
    for (const struct h248_command *cmd = a->commands; cmd != NULL; cmd = cmd->next) {
        memset(&st, 0, sizeof(st));
        if (run_command(&as, cmd, &st) == 0)
            continue;
        if (!cmd->optional)
            goto failed;
        /* O-: the failure is reported in the command's own reply and the action goes on. */
        struct h248_command *c =
            reply_command(x, ra, cmd, cmd->terminations->text.ptr, cmd->terminations->text.len);
        struct h248_descriptor *d = c != NULL ? append_descriptor(x, c, H248_DESC_ERROR) : NULL;
        struct h248_error_desc *e = error_desc(x, &st);
        if (d == NULL || e == NULL)
            return -ENOMEM;
        d->u.error = *e;
        if (as.ctx != NULL && as.ctx->n_terms == 0 && as.ctx_created) {
            agw_model_context_delete(m, as.ctx);
            as.ctx = NULL;
        }
    }
    if (as.ctx_created && as.ctx != NULL && as.ctx->n_terms == 0) {
        /* A new context that got no termination does not outlive its action. */
        agw_model_context_delete(m, as.ctx);
    } else if (as.ctx != NULL && as.touched && configure_context(x, m, as.ctx) < 0) {
        return -ENOMEM;
    }
    return 0;
failed:
    agw_log(AGW_LOG_INFO, "context %u: error %u: %s", ra->context.id, st.code, st.text);
    if (as.ctx_created && as.ctx != NULL && as.ctx->n_terms == 0)
        agw_model_context_delete(m, as.ctx);
    else if (as.ctx != NULL && as.touched && configure_context(x, m, as.ctx) < 0)
        return -ENOMEM;
    ra->error = error_desc(x, &st);
    return ra->error != NULL ? 0 : -ENOMEM;
}

int agw_exec_transaction(struct agw_model *m, struct agw_root_state *root,
                         const struct h248_message *req_msg, const struct h248_transaction *req,
                         struct agw_exec *x, uint64_t now_ms)
{
    (void)req_msg;
    memset(x, 0, sizeof(*x));
    x->reply = h248_message_new();
    if (x->reply == NULL)
        return -ENOMEM;
    x->txn = ralloc(x, sizeof(*x->txn));
    if (x->txn == NULL) {
        agw_exec_fini(x);
        return -ENOMEM;
    }
    x->txn->kind = H248_TRANS_REPLY;
    x->txn->id = req->id;
    x->reply->transactions = x->txn;
    struct h248_action **tail = &x->txn->actions;
    for (const struct h248_action *a = req->actions; a != NULL; a = a->next) {
        struct h248_action *ra = ralloc(x, sizeof(*ra));
        if (ra == NULL || run_action(m, root, x, a, ra, now_ms) < 0) {
            agw_log(AGW_LOG_ERROR, "transaction %u: out of memory building the reply", req->id);
            return -ENOMEM;
        }
        *tail = ra;
        tail = &ra->next;
    }
    return 0;
}

void agw_exec_finish(struct agw_model *m, struct agw_exec *x, uint64_t now_ms)
{
    (void)m;
    for (size_t i = 0; i < x->n_released; i++) {
        struct agw_released *r = &x->released[i];
        if (r->moved)
            continue; /* still alive: its socket is re-adopted by the caller */
        if (r->stats != NULL)
            fill_statistics(x, r->stats, r->term, now_ms);
        if (r->audited)
            continue;
        if (r->term->port_reserved && r->term->port != 9)
            agw_realm_release(r->term->realm, r->term->port);
        agw_model_term_free(r->term);
        r->term = NULL;
    }
}

void agw_exec_fini(struct agw_exec *x)
{
    h248_message_free(x->reply);
    free(x->ops);
    free(x->released);
    memset(x, 0, sizeof(*x));
}
