/* agw-soak's Iq thread: plays the ALG, setting sessions up, holding handshakes for a Modify,
 * releasing them with their octet figures checked, and judging every Notify. */
#include "h248/h248.h"
#include "tools/soak.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPLY_MAX 16384
#define IQ_TIMEOUT_MS 5000
/* Access termination ids of released sessions that had a fault injected: a Notify about one of
 * them may come after the Subtract and is no error. */
#define LATE_IDS 256

struct iq_state {
    struct soak_run *r;
    bool *live; /* per slot: set up and not released, as far as this thread knows */
    char late[LATE_IDS][SOAK_ID_MAX];
    unsigned late_next;
    char reply[REPLY_MAX];
};

/* The number after key in text; false when key is absent. */
static bool number_after(const char *text, const char *key, unsigned long *out)
{
    const char *p = strstr(text, key);
    if (p == NULL)
        return false;
    char *end;
    *out = strtoul(p + strlen(key), &end, 10);
    return end != p + strlen(key);
}

/* The termination id an Add in the reply names ("ip/core/17"). */
static bool added_id(const char *reply, char *id)
{
    const char *p = strstr(reply, "A=ip/");
    if (p == NULL)
        return false;
    p += 2;
    size_t n = strcspn(p, "{,}");
    if (n == 0 || n >= SOAK_ID_MAX)
        return false;
    memcpy(id, p, n);
    id[n] = '\0';
    return true;
}

/* Sends text; 0 with the compact reply in st->reply, or -1 with why in err (the reply's error
 * descriptor, or the transport failure). */
static int request(struct iq_state *st, const char *text, char *err, size_t cap)
{
    struct iq_reply reply;
    struct h248_parse_error perr;
    st->reply[0] = '\0';
    int rc = iq_client_request_text(st->r->iq, text, strlen(text), IQ_TIMEOUT_MS, &reply, &perr);
    if (rc < 0) {
        snprintf(err, cap, "%s", rc == -ETIMEDOUT ? "no reply" : strerror(-rc));
        return -1;
    }
    size_t len = 0;
    h248_encode_message(reply.msg, H248_STYLE_COMPACT, st->reply, REPLY_MAX - 1, &len);
    st->reply[len] = '\0';
    const struct h248_error_desc *e = iq_reply_error(&reply);
    if (e != NULL)
        snprintf(err, cap, "error %u: %.*s", e->code, e->has_text ? (int)e->text.len : 0,
                 e->has_text ? e->text.ptr : "");
    iq_reply_release(&reply);
    return e != NULL ? -1 : 0;
}

static void post(struct iq_state *st, enum soak_msg_kind kind, unsigned slot, int status,
                 const char *text)
{
    struct soak_msg m = {.kind = kind, .slot = slot, .status = status};
    snprintf(m.text, sizeof(m.text), "%s", text != NULL ? text : "");
    if (soak_queue_push(&st->r->to_peers, &m) < 0)
        soak_error(st->r, "out of memory queueing a message for slot %u", slot);
}

static int add_core(struct iq_state *st, struct soak_session *s, char *err, size_t cap)
{
    char text[1024];
    if (s->kind == SOAK_TLS)
        /* e2ae: the gateway dials the core (the sink), plain TCP/MSRP. */
        snprintf(text, sizeof(text),
                 "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=message $ "
                 "TCP/MSRP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message %u TCP/MSRP *\r\n"
                 "a=setup:passive\r\n}}}}}",
                 st->r->sink_port);
    else
        /* Plain TCP both ways: the core peer connects to the gateway. */
        snprintf(text, sizeof(text),
                 "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
                 "TCP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=application 9 TCP *\r\n"
                 "a=setup:active\r\n}}}}}");
    if (request(st, text, err, cap) < 0)
        return -1;
    unsigned long ctx, port;
    if (!number_after(st->reply, "C=", &ctx) || !added_id(st->reply, s->core_id) ||
        !number_after(st->reply, s->kind == SOAK_TLS ? "m=message " : "m=application ", &port)) {
        snprintf(err, cap, "core Add: unexpected reply %.120s", st->reply);
        return -1;
    }
    s->ctx = (uint32_t)ctx;
    s->core_port = (uint16_t)port;
    return 0;
}

static int add_access(struct iq_state *st, struct soak_session *s, char *err, size_t cap)
{
    char text[1024];
    if (s->kind == SOAK_TLS) {
        char remote[512] = "";
        if (!s->terminating)
            snprintf(remote, sizeof(remote),
                     ",R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message 9 TCP/TLS/MSRP *\r\n"
                     "a=setup:active\r\na=fingerprint:%s\r\n}",
                     st->r->ue_fingerprint);
        snprintf(text, sizeof(text),
                 "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=message $ "
                 "TCP/TLS/MSRP *\r\na=fingerprint:$\r\n}%s}},E=5{tlsc/fail}}}",
                 s->ctx, remote);
    } else {
        snprintf(text, sizeof(text),
                 "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\n"
                 "m=application $ TCP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=application 9 TCP "
                 "*\r\na=setup:active\r\n}}},E=5{tlsc/fail}}}",
                 s->ctx);
    }
    if (request(st, text, err, cap) < 0)
        return -1;
    unsigned long port;
    if (!added_id(st->reply, s->access_id) ||
        !number_after(st->reply, s->kind == SOAK_TLS ? "m=message " : "m=application ", &port)) {
        snprintf(err, cap, "access Add: unexpected reply %.120s", st->reply);
        return -1;
    }
    s->access_port = (uint16_t)port;
    if (s->kind == SOAK_TLS) {
        const char *fp = strstr(st->reply, "a=fingerprint:");
        if (fp == NULL) {
            snprintf(err, cap, "access Add: no a=fingerprint in %.120s", st->reply);
            return -1;
        }
        fp += strlen("a=fingerprint:");
        if (agw_tls_fingerprint_parse(fp, strcspn(fp, "\r\n}"), &s->gateway_fp) < 0) {
            snprintf(err, cap, "access Add: bad a=fingerprint in %.120s", st->reply);
            return -1;
        }
    }
    return 0;
}

static void subtract_quietly(struct iq_state *st, uint32_t ctx)
{
    char text[64], err[160];
    snprintf(text, sizeof(text), "C=%u{S=*}", ctx);
    request(st, text, err, sizeof(err));
}

static void job_setup(struct iq_state *st, unsigned slot)
{
    struct soak_session *s = &st->r->sessions[slot];
    char err[200];
    s->ctx = 0;
    if (add_core(st, s, err, sizeof(err)) < 0 || add_access(st, s, err, sizeof(err)) < 0) {
        if (s->ctx != 0)
            subtract_quietly(st, s->ctx);
        post(st, SOAK_DONE_SETUP, slot, -1, err);
        return;
    }
    st->live[slot] = true;
    post(st, SOAK_DONE_SETUP, slot, 0, NULL);
}

/* Terminating flow: the UE's fingerprint arrives while the gateway holds its handshake. */
static void job_modify(struct iq_state *st, unsigned slot)
{
    struct soak_session *s = &st->r->sessions[slot];
    char text[1024], err[200];
    snprintf(text, sizeof(text),
             "C=%u{MF=%s{M{ST=1{R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message 9 TCP/TLS/MSRP *\r\n"
             "a=setup:active\r\na=fingerprint:%s\r\n}}}}}",
             s->ctx, s->access_id, st->r->ue_fingerprint);
    int rc = request(st, text, err, sizeof(err));
    post(st, SOAK_DONE_MODIFY, slot, rc, rc < 0 ? err : NULL);
}

/* The octets the reply gives for one termination equal the bytes the peers counted. */
static bool figures_match(const char *reply, const char *id, uint64_t os, uint64_t or_, char *err,
                          size_t cap)
{
    char key[SOAK_ID_MAX + 4];
    snprintf(key, sizeof(key), "S=%s{", id);
    const char *p = strstr(reply, key);
    unsigned long got_os, got_or;
    if (p == NULL || !number_after(p, "nt/os=", &got_os) || !number_after(p, "nt/or=", &got_or)) {
        snprintf(err, cap, "no statistics for %s in the Subtract reply", id);
        return false;
    }
    if (got_os != os || got_or != or_) {
        snprintf(err, cap, "%s: nt/os=%lu nt/or=%lu, the peers counted %llu and %llu", id, got_os,
                 got_or, (unsigned long long)os, (unsigned long long)or_);
        return false;
    }
    return true;
}

static void job_release(struct iq_state *st, unsigned slot)
{
    struct soak_session *s = &st->r->sessions[slot];
    char text[64], err[200] = "";
    snprintf(text, sizeof(text), "C=%u{S=*}", s->ctx);
    int rc = request(st, text, err, sizeof(err));
    st->live[slot] = false;
    if (s->fault != SOAK_FAULT_NONE) {
        snprintf(st->late[st->late_next], SOAK_ID_MAX, "%s", s->access_id);
        st->late_next = (st->late_next + 1) % LATE_IDS;
    }
    /* Both legs relay plaintext toward the core; a plain access leg carries the same bytes. */
    if (rc == 0 && s->check_figures) {
        if (!figures_match(st->reply, s->core_id, s->up_bytes, s->down_bytes, err, sizeof(err)) ||
            (s->kind == SOAK_PLAIN &&
             !figures_match(st->reply, s->access_id, s->down_bytes, s->up_bytes, err, sizeof(err))))
            rc = -1;
        else
            st->r->stats.figures_checked++;
    }
    post(st, SOAK_DONE_RELEASE, slot, rc, rc < 0 ? err : NULL);
}

static void post_dc(struct iq_state *st, enum soak_msg_kind kind, unsigned slot, int status,
                    const char *text)
{
    struct soak_msg m = {.kind = kind, .slot = slot, .status = status};
    snprintf(m.text, sizeof(m.text), "%s", text != NULL ? text : "");
    if (soak_queue_push(&st->r->to_dc, &m) < 0)
        soak_error(st->r, "out of memory queueing a message for data channel %u", slot);
}

/* e2DCe: the gateway dials the core peer (plain UDP/SCTP); the UE is the DTLS client. */
static void job_dc_setup(struct iq_state *st, unsigned slot)
{
    struct soak_dc_session *d = &st->r->dc[slot];
    char text[1024], err[200];
    d->ctx = 0;
    snprintf(text, sizeof(text),
             "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
             "UDP/SCTP webrtc-datachannel\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=application %u "
             "UDP/SCTP webrtc-datachannel\r\na=setup:passive\r\na=sctp-port:5000\r\n"
             "a=max-message-size:65536\r\n}}}}}",
             d->core_port);
    unsigned long ctx, port;
    const char *fp;
    if (request(st, text, err, sizeof(err)) < 0)
        goto fail;
    if (!number_after(st->reply, "C=", &ctx) || !number_after(st->reply, "m=application ", &port)) {
        snprintf(err, sizeof(err), "core Add: unexpected reply %.120s", st->reply);
        goto fail;
    }
    d->ctx = (uint32_t)ctx;
    d->gw_core_port = (uint16_t)port;
    snprintf(text, sizeof(text),
             "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
             "UDP/DTLS/SCTP webrtc-datachannel\r\na=fingerprint:$\r\n},R{v=0\r\nc=IN IP4 "
             "127.0.0.1\r\nm=application %u UDP/DTLS/SCTP webrtc-datachannel\r\na=setup:active\r\n"
             "a=fingerprint:%s\r\na=tls-id:agwsoakdc%05u%08u\r\na=sctp-port:5000\r\n"
             "a=max-message-size:65536\r\n}}}}}",
             d->ctx, d->ue_port, st->r->ue_fingerprint, slot, d->gen);
    if (request(st, text, err, sizeof(err)) < 0)
        goto fail;
    fp = strstr(st->reply, "a=fingerprint:");
    if (!number_after(st->reply, "m=application ", &port) || fp == NULL ||
        agw_tls_fingerprint_parse(fp + strlen("a=fingerprint:"),
                                  strcspn(fp + strlen("a=fingerprint:"), "\r\n}"), &d->gw_fp) < 0) {
        snprintf(err, sizeof(err), "access Add: unexpected reply %.120s", st->reply);
        goto fail;
    }
    d->gw_access_port = (uint16_t)port;
    post_dc(st, SOAK_DONE_DC_SETUP, slot, 0, NULL);
    return;
fail:
    if (d->ctx != 0)
        subtract_quietly(st, d->ctx);
    post_dc(st, SOAK_DONE_DC_SETUP, slot, -1, err);
}

static void job_dc_release(struct iq_state *st, unsigned slot)
{
    char text[64], err[200];
    snprintf(text, sizeof(text), "C=%u{S=*}", st->r->dc[slot].ctx);
    int rc = request(st, text, err, sizeof(err));
    post_dc(st, SOAK_DONE_DC_RELEASE, slot, rc, rc < 0 ? err : NULL);
}

/* "N=ip/access/12{OE=5{tlsc/fail{cause="..."}}}": passed to the slot it names, if live. */
static void on_notify(struct iq_state *st, const char *text)
{
    struct soak_run *r = st->r;
    atomic_fetch_add(&r->stats.notifies, 1);
    const char *n = strstr(text, "N=");
    char id[SOAK_ID_MAX] = "", cause[160] = "";
    if (n != NULL) {
        size_t len = strcspn(n + 2, "{,}");
        if (len < sizeof(id)) {
            memcpy(id, n + 2, len);
            id[len] = '\0';
        }
    }
    const char *c = strstr(text, "cause=\"");
    if (c != NULL) {
        c += strlen("cause=\"");
        snprintf(cause, sizeof(cause), "%.*s", (int)strcspn(c, "\""), c);
    }
    for (unsigned i = 0; i < r->cfg->sessions; i++) {
        if (st->live[i] && strcmp(r->sessions[i].access_id, id) == 0) {
            post(st, SOAK_NOTIFIED, i, 0, cause);
            return;
        }
    }
    for (unsigned i = 0; i < LATE_IDS; i++) {
        if (id[0] != '\0' && strcmp(st->late[i], id) == 0) {
            atomic_fetch_add(&r->stats.late_notifies, 1);
            return;
        }
    }
    soak_error(r, "Notify for no live session: %.200s", text);
}

static void on_event(struct iq_state *st, const struct iq_event *ev)
{
    char text[2048];
    size_t len = 0;
    if (ev->msg != NULL)
        h248_encode_message(ev->msg, H248_STYLE_COMPACT, text, sizeof(text) - 1, &len);
    text[len] = '\0';
    switch (ev->kind) {
    case IQ_EVENT_REQUEST:
        if (strstr(text, "N=") != NULL)
            on_notify(st, text);
        else
            soak_error(st->r, "unexpected request from the gateway: %.200s", text);
        break;
    case IQ_EVENT_GARBAGE:
        soak_error(st->r, "the gateway sent a datagram that does not parse: %s", ev->error.text);
        break;
    case IQ_EVENT_OTHER:
        break; /* a late copy of a reply we already had */
    }
}

void *soak_iq_thread(void *arg)
{
    struct soak_run *r = arg;
    struct iq_state *st = calloc(1, sizeof(*st));
    bool *live = calloc(r->cfg->sessions, sizeof(*live));
    if (st == NULL || live == NULL) {
        soak_error(r, "Iq thread: out of memory");
        free(st);
        free(live);
        return NULL;
    }
    st->r = r;
    st->live = live;
    while (!atomic_load(&r->iq_stop)) {
        struct soak_msg m;
        struct iq_event ev;
        /* Events queued by the requests first (0: no wait), then jobs, then wait a little. */
        while (iq_client_recv(r->iq, 0, &ev) == 0) {
            on_event(st, &ev);
            iq_event_release(&ev);
        }
        if (soak_queue_pop(&r->to_iq, &m)) {
            switch (m.kind) {
            case SOAK_JOB_SETUP:
                job_setup(st, m.slot);
                break;
            case SOAK_JOB_MODIFY:
                job_modify(st, m.slot);
                break;
            case SOAK_JOB_RELEASE:
                job_release(st, m.slot);
                break;
            case SOAK_JOB_DC_SETUP:
                job_dc_setup(st, m.slot);
                break;
            case SOAK_JOB_DC_RELEASE:
                job_dc_release(st, m.slot);
                break;
            default:
                break;
            }
            continue;
        }
        if (iq_client_recv(r->iq, 10, &ev) == 0) {
            on_event(st, &ev);
            iq_event_release(&ev);
        }
    }
    free(live);
    free(st);
    return NULL;
}
