/* agw-soak's data-channel thread: e2DCe sessions (a DTLS+SCTP UE, a UDP/SCTP core peer) with
 * one reliable channel each, a message a second each way checked in order and byte by byte,
 * each session released and set up again after 20 to 60 s. */
#include "sctp/dcep.h"
#include "tools/dc_endpoint.h"
#include "tools/soak.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DC_MAX_MESSAGE 65536
#define DC_HEADER_LEN 16 /* "AGWD", slot, generation, sequence number (big endian) */
#define DC_SETUP_MS 15000
#define DC_DRAIN_MS 10000
#define DC_LOOP_US 50000 /* each loop visits every session: messages are one a second */

enum dstate { D_FREE, D_SETUP, D_CONNECT, D_OPENING, D_UP, D_DRAIN, D_RELEASE };

struct dpeer {
    enum dstate state;
    uint64_t since, expires, next_send;
    struct dc_endpoint *ue, *core;
    uint16_t ue_stream, core_stream;
    bool core_saw_open;
    uint32_t tx[2], rx[2]; /* messages sent and checked: [0] UE to core, [1] core to UE */
    bool failed;
};

struct dcs {
    struct soak_run *r;
    unsigned n;
    struct dpeer *p;
    struct dc_net *net;
    uint64_t rng;
    unsigned char msg[DC_MAX_MESSAGE], want[DC_MAX_MESSAGE];
};

static const unsigned char magic[4] = {'A', 'G', 'W', 'D'};

static uint64_t rnd(struct dcs *d)
{
    d->rng ^= d->rng << 13;
    d->rng ^= d->rng >> 7;
    d->rng ^= d->rng << 17;
    return d->rng;
}

/* Message seq of direction dir of slot i, generation gen: the header, then len - header bytes
 * that depend on all four. */
static size_t make_message(unsigned char *out, size_t len, unsigned i, uint32_t gen, unsigned dir,
                           uint32_t seq)
{
    uint32_t be[3] = {htonl(i), htonl(gen), htonl(seq)};
    memcpy(out, magic, 4);
    memcpy(out + 4, be, sizeof(be));
    uint64_t x = ((uint64_t)i << 40) ^ ((uint64_t)gen << 20) ^ seq ^ ((uint64_t)dir << 63);
    for (size_t k = DC_HEADER_LEN; k < len; k++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        out[k] = (unsigned char)(x >> 56);
    }
    return len;
}

/* The length of message seq: the rate's worth, varied, from the header up. */
static size_t message_len(const struct soak_run *r, uint32_t seq)
{
    unsigned rate = r->cfg->rate < DC_HEADER_LEN ? DC_HEADER_LEN : r->cfg->rate;
    size_t len = rate / 2 + (seq * 2654435761u) % (rate + 1);
    if (len < DC_HEADER_LEN)
        len = DC_HEADER_LEN;
    return len > DC_MAX_MESSAGE ? DC_MAX_MESSAGE : len;
}

static void push_job(struct dcs *d, enum soak_msg_kind kind, unsigned slot)
{
    struct soak_msg m = {.kind = kind, .slot = slot};
    if (soak_queue_push(&d->r->to_iq, &m) < 0)
        soak_error(d->r, "out of memory queueing a data-channel job");
}

static void set_state(struct dcs *d, unsigned i, enum dstate s)
{
    struct dpeer *p = &d->p[i];
    if (p->state == D_UP && s != D_UP)
        atomic_fetch_sub(&d->r->stats.dc_up, 1);
    else if (p->state != D_UP && s == D_UP)
        atomic_fetch_add(&d->r->stats.dc_up, 1);
    p->state = s;
    p->since = soak_now_ms();
}

static void release(struct dcs *d, unsigned i)
{
    set_state(d, i, D_RELEASE);
    push_job(d, SOAK_JOB_DC_RELEASE, i);
}

static void dc_fail(struct dcs *d, unsigned i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void dc_fail(struct dcs *d, unsigned i, const char *fmt, ...)
{
    struct dpeer *p = &d->p[i];
    if (p->failed)
        return;
    p->failed = true;
    char why[256], ue[96] = "", core[96] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (p->ue != NULL)
        dc_endpoint_failure(p->ue, ue, sizeof(ue));
    if (p->core != NULL)
        dc_endpoint_failure(p->core, core, sizeof(core));
    soak_error(d->r,
               "data channel %u gen %u (context %u): %s; sent %u/%u, checked %u/%u; UE: %s, "
               "core: %s",
               i, d->r->dc[i].gen, d->r->dc[i].ctx, why, p->tx[0], p->tx[1], p->rx[0], p->rx[1],
               ue[0] != '\0' ? ue : "-", core[0] != '\0' ? core : "-");
    if (p->state != D_SETUP && p->state != D_RELEASE)
        release(d, i);
}

static bool running(const struct dcs *d)
{
    int phase = atomic_load(&d->r->phase);
    return phase == SOAK_RAMP || phase == SOAK_RUN;
}

static void start_setup(struct dcs *d, unsigned i)
{
    struct dpeer *p = &d->p[i];
    struct soak_dc_session *s = &d->r->dc[i];
    memset(p, 0, sizeof(*p));
    s->gen++;
    struct dc_endpoint_config cc = {.dtls = false,
                                    .role = AGW_TLS_SERVER,
                                    .max_message_size = DC_MAX_MESSAGE,
                                    .peer_max_message_size = DC_MAX_MESSAGE};
    struct dc_endpoint_config uc = {.dtls = true,
                                    .role = AGW_TLS_CLIENT,
                                    .identity = d->r->ue,
                                    .max_message_size = DC_MAX_MESSAGE,
                                    .peer_max_message_size = DC_MAX_MESSAGE};
    int rc = dc_endpoint_new(d->net, &cc, &p->core);
    if (rc == 0)
        rc = dc_endpoint_new(d->net, &uc, &p->ue);
    set_state(d, i, D_SETUP);
    if (rc < 0) {
        soak_error(d->r, "data channel %u: endpoint: %s", i, strerror(-rc));
        set_state(d, i, D_FREE);
        return;
    }
    s->ue_port = dc_endpoint_port(p->ue);
    s->core_port = dc_endpoint_port(p->core);
    push_job(d, SOAK_JOB_DC_SETUP, i);
}

static void loopback(uint16_t port, struct sockaddr_in *a)
{
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

static void on_setup_done(struct dcs *d, unsigned i, const struct soak_msg *m)
{
    struct dpeer *p = &d->p[i];
    struct soak_dc_session *s = &d->r->dc[i];
    if (m->status < 0) {
        soak_error(d->r, "data channel %u gen %u: set-up failed: %s", i, s->gen, m->text);
        dc_endpoint_free(p->ue);
        dc_endpoint_free(p->core);
        p->ue = p->core = NULL;
        set_state(d, i, D_FREE);
        return;
    }
    atomic_fetch_add(&d->r->stats.dc_setups, 1);
    struct sockaddr_in core, access;
    loopback(s->gw_core_port, &core);
    loopback(s->gw_access_port, &access);
    int rc = dc_endpoint_connect(p->core, (struct sockaddr *)&core, sizeof(core));
    if (rc == 0)
        rc = dc_endpoint_set_peer_fingerprints(p->ue, &s->gw_fp, 1);
    if (rc == 0)
        rc = dc_endpoint_connect(p->ue, (struct sockaddr *)&access, sizeof(access));
    set_state(d, i, D_CONNECT);
    if (rc < 0)
        dc_fail(d, i, "connect: %s", strerror(-rc));
}

static void on_release_done(struct dcs *d, unsigned i, const struct soak_msg *m)
{
    struct dpeer *p = &d->p[i];
    if (m->status < 0)
        soak_error(d->r, "data channel %u gen %u (context %u): Subtract: %s", i, d->r->dc[i].gen,
                   d->r->dc[i].ctx, m->text);
    dc_endpoint_free(p->ue);
    dc_endpoint_free(p->core);
    p->ue = p->core = NULL;
    set_state(d, i, D_FREE);
    if (running(d))
        start_setup(d, i);
}

/* Takes what arrived at one end; every message must be the next one of its direction. */
static void drain(struct dcs *d, unsigned i, bool at_core)
{
    struct dpeer *p = &d->p[i];
    struct dc_endpoint *ep = at_core ? p->core : p->ue;
    unsigned dir = at_core ? 0 : 1;
    for (int k = 0; k < 64 && !p->failed; k++) {
        struct dc_event ev;
        if (dc_endpoint_next_event(ep, &ev, 0) < 0)
            return;
        switch (ev.type) {
        case DC_EVENT_CHANNEL_OPEN:
            if (at_core && !p->core_saw_open && strcmp(ev.label, "soak") == 0) {
                p->core_saw_open = true;
                p->core_stream = ev.stream;
            } else {
                dc_fail(d, i, "unexpected channel %u opened at the %s", ev.stream,
                        at_core ? "core" : "UE");
            }
            break;
        case DC_EVENT_MESSAGE: {
            uint16_t stream = at_core ? p->core_stream : p->ue_stream;
            size_t len = message_len(d->r, p->rx[dir]);
            make_message(d->want, len, i, d->r->dc[i].gen, dir, p->rx[dir]);
            if (ev.stream != stream || ev.len != len || memcmp(ev.data, d->want, len) != 0) {
                dc_fail(d, i, "message %u at the %s: stream %u, %zu bytes, not the one sent",
                        p->rx[dir], at_core ? "core" : "UE", ev.stream, ev.len);
            } else {
                p->rx[dir]++;
                atomic_fetch_add(&d->r->stats.dc_messages, 1);
                atomic_fetch_add(&d->r->stats.dc_bytes, len);
            }
            break;
        }
        case DC_EVENT_CHANNEL_CLOSED:
            dc_fail(d, i, "the channel closed at the %s", at_core ? "core" : "UE");
            break;
        case DC_EVENT_DOWN:
            dc_fail(d, i, "the %s endpoint went down (%d)", at_core ? "core" : "UE", ev.error);
            break;
        }
        dc_event_clear(&ev);
    }
}

static void send_one(struct dcs *d, unsigned i, unsigned dir)
{
    struct dpeer *p = &d->p[i];
    size_t len = message_len(d->r, p->tx[dir]);
    make_message(d->msg, len, i, d->r->dc[i].gen, dir, p->tx[dir]);
    int rc = dir == 0 ? dc_endpoint_send(p->ue, p->ue_stream, true, d->msg, len, 1000)
                      : dc_endpoint_send(p->core, p->core_stream, true, d->msg, len, 1000);
    if (rc < 0)
        dc_fail(d, i, "send %s: %s", dir == 0 ? "UE to core" : "core to UE", strerror(-rc));
    else
        p->tx[dir]++;
}

static void step(struct dcs *d, unsigned i, uint64_t now)
{
    struct dpeer *p = &d->p[i];
    switch (p->state) {
    case D_FREE:
        if (running(d) && now - p->since > 1000)
            start_setup(d, i); /* after a failed set-up */
        return;
    case D_CONNECT:
        if (dc_endpoint_wait_up(p->ue, 0) == 0 && dc_endpoint_wait_up(p->core, 0) == 0) {
            struct dc_channel_spec spec = {.channel_type = DCEP_CHANNEL_RELIABLE, .label = "soak"};
            int rc = dc_endpoint_open_channel(p->ue, &spec, &p->ue_stream);
            if (rc < 0)
                dc_fail(d, i, "open channel: %s", strerror(-rc));
            else
                set_state(d, i, D_OPENING);
        } else if (now - p->since > DC_SETUP_MS) {
            dc_fail(d, i, "not up after %d s", DC_SETUP_MS / 1000);
        }
        return;
    case D_OPENING:
        drain(d, i, true);
        if (p->core_saw_open && dc_endpoint_wait_open(p->ue, p->ue_stream, 0) == 0) {
            set_state(d, i, D_UP);
            p->expires = now + 20000 + rnd(d) % 40000;
            p->next_send = now + rnd(d) % 1000;
        } else if (now - p->since > DC_SETUP_MS) {
            dc_fail(d, i, "channel not open after %d s", DC_SETUP_MS / 1000);
        }
        return;
    case D_UP:
        if (now >= p->next_send) {
            p->next_send += 1000;
            send_one(d, i, 0);
            if (!p->failed)
                send_one(d, i, 1);
        }
        drain(d, i, true);
        drain(d, i, false);
        if (p->state == D_UP && (now >= p->expires || !running(d)))
            set_state(d, i, D_DRAIN);
        return;
    case D_DRAIN:
        drain(d, i, true);
        drain(d, i, false);
        if (p->state != D_DRAIN)
            return;
        if (p->rx[0] == p->tx[0] && p->rx[1] == p->tx[1])
            release(d, i);
        else if (now - p->since > DC_DRAIN_MS)
            dc_fail(d, i, "messages did not arrive within %d s", DC_DRAIN_MS / 1000);
        return;
    default:
        return;
    }
}

void *soak_dc_thread(void *arg)
{
    struct soak_run *r = arg;
    struct dcs *d = calloc(1, sizeof(*d));
    if (d == NULL || (d->p = calloc(r->cfg->dc_sessions, sizeof(*d->p))) == NULL ||
        dc_net_start(&d->net) < 0) {
        soak_error(r, "data channels: cannot start (memory or usrsctp)");
        if (d != NULL)
            free(d->p);
        free(d);
        atomic_store(&r->dc_idle, true);
        return NULL;
    }
    d->r = r;
    d->n = r->cfg->dc_sessions;
    d->rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
    for (unsigned i = 0; i < d->n; i++)
        start_setup(d, i);
    for (;;) {
        struct soak_msg m;
        while (soak_queue_pop(&r->to_dc, &m)) {
            if (m.kind == SOAK_DONE_DC_SETUP)
                on_setup_done(d, m.slot, &m);
            else if (m.kind == SOAK_DONE_DC_RELEASE)
                on_release_done(d, m.slot, &m);
        }
        uint64_t now = soak_now_ms();
        unsigned busy = 0;
        for (unsigned i = 0; i < d->n; i++) {
            step(d, i, now);
            busy += d->p[i].state != D_FREE;
        }
        if ((!running(d) && busy == 0) || atomic_load(&r->phase) == SOAK_DONE)
            break; /* all released, or the run was cut short */
        usleep(DC_LOOP_US);
    }
    dc_net_stop(d->net);
    free(d->p);
    free(d);
    atomic_store(&r->dc_idle, true);
    return NULL;
}
