/* Built-in e2ae Iq flows (MSRP, BFCP; originating, terminating) run against a gateway, checked. */
#include "tools/scenario.h"

#include "h248/sdp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REQUEST_MAX 8192
#define SDP_MAX 4096
#define TERM_ID_MAX 128
#define WHY_MAX 256

/* The UE's certificate fingerprint: a fixed test value (no media flows in these scenarios). */
#define UE_FINGERPRINT                                                                             \
    "43:E2:BE:FF:2A:DB:95:08:8F:FD:6E:92:C6:23:8A:7A:6E:B6:94:8F:B1:33:7D:FD:D3:8D:48:20:28:44:"   \
    "CC:A5"

enum step_kind { STEP_RESERVE, STEP_MODIFY, STEP_RELEASE };
enum leg { LEG_CORE, LEG_ACCESS };

/* In the SDP templates: @A@/@C@ the address type (IP4/IP6) of the access/core side, @UE@ and
 * @CORE@ the peers' addresses, @UEURI@/@COREURI@ the same as URI hosts, @FP@ the UE fingerprint. */
struct step {
    const char *name;
    enum step_kind kind;
    enum leg leg;
    const char *local;  /* Local SDP template (Add), NULL for none */
    const char *remote; /* Remote SDP template, NULL for none */
    bool mode;          /* LocalControl Mode=SendReceive on a Modify */
    bool signal;        /* the TLS signal of the options, when one is set */
};

struct flow {
    const char *name;
    const char *access_proto, *core_proto; /* what each leg's Local must answer */
    const struct step *steps;
};

#define MSRP_CORE_LOCAL "v=0\nc=IN @C@ $\nm=message $ TCP/MSRP *\n"
#define MSRP_ACCESS_LOCAL "v=0\nc=IN @A@ $\nm=message $ TCP/TLS/MSRP *\na=fingerprint:$\n"
#define BFCP_CORE_LOCAL "v=0\nc=IN @C@ $\nm=application $ TCP/BFCP *\na=floorctrl:c-only\n"
#define BFCP_ACCESS_LOCAL "v=0\nc=IN @A@ $\nm=application $ TCP/TLS/BFCP *\na=fingerprint:$\n"

static const struct step msrp_orig[] = {
    {"reserve core", STEP_RESERVE, LEG_CORE, MSRP_CORE_LOCAL, NULL, false, false},
    {"reserve-configure access", STEP_RESERVE, LEG_ACCESS, MSRP_ACCESS_LOCAL,
     "v=0\no=- 3718207654 3718207654 IN @A@ @UE@\ns=-\nc=IN @A@ @UE@\nt=0 0\n"
     "m=message 2855 TCP/TLS/MSRP *\na=accept-types:message/cpim text/plain\n"
     "a=path:msrps://@UEURI@:2855/kjhd37s2s20w2a;tcp\na=setup:actpass\n"
     "a=fingerprint:sha-256 @FP@\na=3ge2ae:requested\n",
     false, false},
    {"configure core", STEP_MODIFY, LEG_CORE, NULL,
     "v=0\no=- 2890844526 2890844527 IN @C@ @CORE@\ns=-\nc=IN @C@ @CORE@\nt=0 0\n"
     "m=message 2855 TCP/MSRP *\na=accept-types:message/cpim text/plain\n"
     "a=path:msrp://@COREURI@:2855/98cjs;tcp\na=setup:active\n",
     false, false},
    {"configure access", STEP_MODIFY, LEG_ACCESS, NULL,
     "v=0\nc=IN @A@ @UE@\nm=message 2855 TCP/TLS/MSRP *\na=setup:passive\na=connection:new\n"
     "a=fingerprint:sha-256 @FP@\n",
     true, false},
    {"release", STEP_RELEASE, LEG_CORE, NULL, NULL, false, false},
    {NULL, STEP_RELEASE, LEG_CORE, NULL, NULL, false, false},
};

static const struct step msrp_term[] = {
    {"reserve access", STEP_RESERVE, LEG_ACCESS, MSRP_ACCESS_LOCAL, NULL, false, false},
    {"reserve-configure core", STEP_RESERVE, LEG_CORE, MSRP_CORE_LOCAL,
     "v=0\no=- 1302 1302 IN @C@ @CORE@\ns=-\nc=IN @C@ @CORE@\nt=0 0\n"
     "m=message 2855 TCP/MSRP *\na=accept-types:message/cpim text/plain\n"
     "a=path:msrp://@COREURI@:2855/iau39soe2843z;tcp\na=setup:actpass\n",
     false, false},
    {"configure access", STEP_MODIFY, LEG_ACCESS, NULL,
     "v=0\no=- 3718207699 3718207699 IN @A@ @UE@\ns=-\nc=IN @A@ @UE@\nt=0 0\n"
     "m=message 2855 TCP/TLS/MSRP *\na=accept-types:message/cpim text/plain\n"
     "a=path:msrps://@UEURI@:2855/s8f2ks0d;tcp\na=setup:active\n"
     "a=fingerprint:sha-256 @FP@\na=3ge2ae:applied\n",
     false, false},
    {"release", STEP_RELEASE, LEG_CORE, NULL, NULL, false, false},
    {NULL, STEP_RELEASE, LEG_CORE, NULL, NULL, false, false},
};

static const struct step bfcp_orig[] = {
    {"reserve core", STEP_RESERVE, LEG_CORE, BFCP_CORE_LOCAL, NULL, false, false},
    {"reserve-configure access", STEP_RESERVE, LEG_ACCESS, BFCP_ACCESS_LOCAL,
     "v=0\nc=IN @A@ @UE@\nm=application 50000 TCP/TLS/BFCP *\na=setup:actpass\n"
     "a=connection:new\na=fingerprint:sha-256 @FP@\na=floorctrl:c-only\na=3ge2ae:requested\n",
     false, false},
    {"configure core", STEP_MODIFY, LEG_CORE, NULL,
     "v=0\nc=IN @C@ @CORE@\nm=application 50002 TCP/BFCP *\na=setup:active\n"
     "a=connection:new\na=floorctrl:s-only\na=confid:4321\na=userid:1234\n"
     "a=floorid:1 mstrm:10\n",
     false, false},
    {"configure access", STEP_MODIFY, LEG_ACCESS, NULL,
     "v=0\nc=IN @A@ @UE@\nm=application 50000 TCP/TLS/BFCP *\na=setup:passive\n"
     "a=connection:new\na=fingerprint:sha-256 @FP@\na=floorctrl:c-only\n",
     true, false},
    {"release", STEP_RELEASE, LEG_CORE, NULL, NULL, false, false},
    {NULL, STEP_RELEASE, LEG_CORE, NULL, NULL, false, false},
};

static const struct step bfcp_term[] = {
    {"reserve access", STEP_RESERVE, LEG_ACCESS, BFCP_ACCESS_LOCAL, NULL, false, true},
    {"reserve-configure core", STEP_RESERVE, LEG_CORE, BFCP_CORE_LOCAL,
     "v=0\nc=IN @C@ @CORE@\nm=application 50002 TCP/BFCP *\na=setup:actpass\n"
     "a=connection:new\na=floorctrl:s-only\na=confid:4321\na=userid:1234\n"
     "a=floorid:1 mstrm:10\n",
     false, false},
    {"configure access", STEP_MODIFY, LEG_ACCESS, NULL,
     "v=0\nc=IN @A@ @UE@\nm=application 9 TCP/TLS/BFCP *\na=setup:active\na=connection:new\n"
     "a=fingerprint:sha-256 @FP@\na=floorctrl:c-only\na=confid:4321\na=userid:1234\n"
     "a=floorid:1 mstrm:10\n",
     false, false},
    {"release", STEP_RELEASE, LEG_CORE, NULL, NULL, false, false},
    {NULL, STEP_RELEASE, LEG_CORE, NULL, NULL, false, false},
};

static const struct flow flows[] = {
    {"msrp-orig", "TCP/TLS/MSRP", "TCP/MSRP", msrp_orig},
    {"msrp-term", "TCP/TLS/MSRP", "TCP/MSRP", msrp_term},
    {"bfcp-orig", "TCP/TLS/BFCP", "TCP/BFCP", bfcp_orig},
    {"bfcp-term", "TCP/TLS/BFCP", "TCP/BFCP", bfcp_term},
};

const char *const scenario_names[] = {"msrp-orig", "msrp-term", "bfcp-orig", "bfcp-term", NULL};

/* The state of one flow: ids as the gateway gave them. */
struct run {
    struct iq_client *c;
    struct scenario_options o;
    const struct flow *flow;
    bool ue_v6, core_v6;
    char ue_uri[64], core_uri[64];
    bool have_context;
    uint32_t context;
    char term[2][TERM_ID_MAX]; /* by enum leg; "" until the Add reply */
    char why[WHY_MAX];         /* the failed check */
    char detail[WHY_MAX];      /* what a passed step learnt, for its line */
};

__attribute__((format(printf, 2, 3))) static bool fail(struct run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof(r->why), fmt, ap);
    va_end(ap);
    return false;
}

static bool is_v6(const char *addr)
{
    return strchr(addr, ':') != NULL;
}

/* Expands an SDP template; false when it does not fit. */
static bool expand(const struct run *r, const char *tpl, char *out, size_t cap)
{
    static const char fingerprint[] = UE_FINGERPRINT;
    size_t n = 0;
    while (*tpl != '\0') {
        const char *value = NULL;
        size_t skip = 0;
        if (*tpl == '@') {
            static const char *const names[] = {"@A@",     "@C@",       "@UE@", "@CORE@",
                                                "@UEURI@", "@COREURI@", "@FP@"};
            const char *values[] = {r->ue_v6 ? "IP6" : "IP4",
                                    r->core_v6 ? "IP6" : "IP4",
                                    r->o.ue_addr,
                                    r->o.core_addr,
                                    r->ue_uri,
                                    r->core_uri,
                                    fingerprint};
            for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && value == NULL; i++) {
                if (strncmp(tpl, names[i], strlen(names[i])) == 0) {
                    value = values[i];
                    skip = strlen(names[i]);
                }
            }
        }
        if (value == NULL) {
            if (n + 1 >= cap)
                return false;
            out[n++] = *tpl++;
            continue;
        }
        size_t len = strlen(value);
        if (n + len >= cap)
            return false;
        memcpy(out + n, value, len);
        n += len;
        tpl += skip;
    }
    out[n] = '\0';
    return true;
}

static int build_request(struct run *r, const struct step *st, char *buf, size_t cap)
{
    char context[16];
    if (r->have_context)
        snprintf(context, sizeof(context), "%u", (unsigned)r->context);
    else
        snprintf(context, sizeof(context), "$");
    char local[SDP_MAX] = "", remote[SDP_MAX] = "";
    if ((st->local != NULL && !expand(r, st->local, local, sizeof(local))) ||
        (st->remote != NULL && !expand(r, st->remote, remote, sizeof(remote))))
        return -ENOSPC;
    const char *realm = st->leg == LEG_CORE ? r->o.core_realm : r->o.access_realm;
    int n;
    switch (st->kind) {
    case STEP_RESERVE: {
        char signal[128] = "";
        if (st->signal && r->o.tls_signal != NULL)
            snprintf(signal, sizeof(signal), ",SG{%s}", r->o.tls_signal);
        n = snprintf(buf, cap, "C=%s{A=${M{ST=1{O{MO=SR,ipdc/realm=%s},L{\n%s}%s%s%s}}%s}}",
                     context, realm, local, st->remote != NULL ? ",R{\n" : "", remote,
                     st->remote != NULL ? "}" : "", signal);
        break;
    }
    case STEP_MODIFY:
        if (r->term[st->leg][0] == '\0')
            return -EINVAL;
        n = snprintf(buf, cap, "C=%s{MF=%s{M{ST=1{%sR{\n%s}}}}}", context, r->term[st->leg],
                     st->mode ? "O{MO=SR}," : "", remote);
        break;
    default:
        n = snprintf(buf, cap, "C=%s{S=*}", context);
        break;
    }
    return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

static bool id_equal(const struct h248_str *s, const char *text)
{
    return s->len == strlen(text) && strncasecmp(s->ptr, text, s->len) == 0;
}

/* The reply's single action; its context becomes ours, or must be ours. */
static const struct h248_action *check_action(struct run *r, const struct iq_reply *reply)
{
    const struct h248_transaction *t = reply->trans;
    if (t == NULL || t->actions == NULL) {
        fail(r, "the reply holds no action");
        return NULL;
    }
    const struct h248_action *a = t->actions;
    if (a->next != NULL) {
        fail(r, "the reply holds more than one action");
        return NULL;
    }
    if (a->context.kind != H248_CTX_ID) {
        fail(r, "the reply's context is not a concrete id");
        return NULL;
    }
    if (r->have_context && a->context.id != r->context) {
        fail(r, "the reply names context %u, not %u", (unsigned)a->context.id,
             (unsigned)r->context);
        return NULL;
    }
    r->have_context = true;
    r->context = a->context.id;
    return a;
}

static const struct h248_command *check_single_command(struct run *r, const struct h248_action *a,
                                                       enum h248_command_kind kind,
                                                       const char *kind_name)
{
    const struct h248_command *cmd = a->commands;
    if (cmd == NULL || cmd->next != NULL || cmd->kind != kind) {
        fail(r, "the reply does not hold exactly one %s", kind_name);
        return NULL;
    }
    if (cmd->terminations == NULL || cmd->terminations->next != NULL) {
        fail(r, "the %s reply does not name exactly one termination", kind_name);
        return NULL;
    }
    return cmd;
}

static const struct h248_str *reply_local(const struct h248_command *cmd)
{
    for (const struct h248_descriptor *d = cmd->descriptors; d != NULL; d = d->next) {
        if (d->kind != H248_DESC_MEDIA)
            continue;
        if (d->u.media.has_direct_parms && d->u.media.direct.has_local)
            return &d->u.media.direct.local;
        for (const struct h248_stream *s = d->u.media.streams; s != NULL; s = s->next) {
            if (s->id == 1 && s->parms.has_local)
                return &s->parms.local;
        }
    }
    return NULL;
}

static const struct sdp_attr *find_attr(const struct sdp_session *s, const struct sdp_media *m,
                                        enum sdp_attr_kind kind)
{
    const struct sdp_attr *a = sdp_attr_find(m->attrs, kind);
    return a != NULL ? a : sdp_attr_find(s->attrs, kind);
}

static bool has_sha256(const struct sdp_attr *list)
{
    for (const struct sdp_attr *a = sdp_attr_find(list, SDP_ATTR_FINGERPRINT); a != NULL;
         a = sdp_attr_find(a->next, SDP_ATTR_FINGERPRINT)) {
        if (a->u.fingerprint.kind == SDP_VALUE_SET && a->u.fingerprint.hash == SDP_HASH_SHA256 &&
            a->u.fingerprint.len == 32)
            return true;
    }
    return false;
}

/* DESIGN.md §5: the Local of an Add reply says where the gateway is and who connects. */
static bool check_local_sdp(struct run *r, const struct h248_str *text, const char *proto, bool tls)
{
    struct sdp_session *s = NULL;
    struct sdp_error err;
    if (sdp_parse(text->ptr, text->len, NULL, &s, &err) < 0)
        return fail(r, "Local SDP does not parse: line %d: %s", err.line, err.text);
    bool ok = false;
    const struct sdp_media *m = s->media;
    const struct sdp_connection *conn = m != NULL ? sdp_media_connection(s, m) : NULL;
    const struct sdp_attr *setup = m != NULL ? find_attr(s, m, SDP_ATTR_SETUP) : NULL;
    if (m == NULL) {
        fail(r, "Local has no m= line");
    } else if (conn == NULL || conn->kind != SDP_VALUE_SET) {
        fail(r, "Local has no concrete c= address");
    } else if (m->port_kind != SDP_VALUE_SET || m->port == 0) {
        fail(r, "Local m= port is not a concrete non-zero port");
    } else if (strcmp(m->proto, proto) != 0) {
        fail(r, "Local m= protocol is %s, asked %s", m->proto, proto);
    } else if (tls && setup == NULL) {
        fail(r, "Local has no a=setup");
    } else if (tls && !has_sha256(m->attrs) && !has_sha256(s->attrs)) {
        fail(r, "Local has no a=fingerprint:sha-256 with a digest");
    } else if (setup != NULL && setup->u.setup == SDP_SETUP_ACTIVE && m->port != 9) {
        fail(r, "Local says a=setup:active but port %u (a TCP-active side puts 9)",
             (unsigned)m->port);
    } else if (m->port == 9 && (setup == NULL || setup->u.setup != SDP_SETUP_ACTIVE)) {
        fail(r, "Local port is 9 but a=setup is not active");
    } else {
        snprintf(r->detail + strlen(r->detail), sizeof(r->detail) - strlen(r->detail),
                 " at %s port %u%s%s", conn->addr, (unsigned)m->port,
                 setup != NULL ? " setup:" : "", setup != NULL ? setup->value : "");
        ok = true;
    }
    sdp_free(s);
    return ok;
}

static bool check_add(struct run *r, const struct step *st, const struct iq_reply *reply)
{
    const struct h248_action *a = check_action(r, reply);
    if (a == NULL)
        return false;
    const struct h248_command *cmd = check_single_command(r, a, H248_CMD_ADD, "Add");
    if (cmd == NULL)
        return false;
    const struct h248_str *id = &cmd->terminations->text;
    if (id->len == 0 || id->len >= TERM_ID_MAX || memchr(id->ptr, '$', id->len) != NULL ||
        memchr(id->ptr, '*', id->len) != NULL)
        return fail(r, "the Add reply does not name a concrete termination");
    const char *other = r->term[st->leg == LEG_CORE ? LEG_ACCESS : LEG_CORE];
    if (id_equal(id, other))
        return fail(r, "the Add reply names %s again", other);
    memcpy(r->term[st->leg], id->ptr, id->len);
    r->term[st->leg][id->len] = '\0';
    snprintf(r->detail, sizeof(r->detail), ", context %u, %s", (unsigned)r->context,
             r->term[st->leg]);
    const struct h248_str *local = reply_local(cmd);
    if (local == NULL)
        return fail(r, "the Add reply of %s has no Local", r->term[st->leg]);
    bool tls = st->leg == LEG_ACCESS;
    return check_local_sdp(r, local, tls ? r->flow->access_proto : r->flow->core_proto, tls);
}

static bool check_modify(struct run *r, const struct step *st, const struct iq_reply *reply)
{
    const struct h248_action *a = check_action(r, reply);
    if (a == NULL)
        return false;
    const struct h248_command *cmd = check_single_command(r, a, H248_CMD_MODIFY, "Modify");
    if (cmd == NULL)
        return false;
    if (!id_equal(&cmd->terminations->text, r->term[st->leg]))
        return fail(r, "the Modify reply names %.*s, not %s", (int)cmd->terminations->text.len,
                    cmd->terminations->text.ptr, r->term[st->leg]);
    return true;
}

/* Subtract=* answers per termination (or with one W- wildcard reply). */
static bool check_release(struct run *r, const struct iq_reply *reply)
{
    const struct h248_action *a = check_action(r, reply);
    if (a == NULL)
        return false;
    bool seen[2] = {false, false}, wildcard = false;
    for (const struct h248_command *cmd = a->commands; cmd != NULL; cmd = cmd->next) {
        if (cmd->kind != H248_CMD_SUBTRACT)
            return fail(r, "the release reply holds something else than Subtract");
        for (const struct h248_termination_id *t = cmd->terminations; t != NULL; t = t->next) {
            for (int leg = 0; leg < 2; leg++)
                seen[leg] = seen[leg] || id_equal(&t->text, r->term[leg]);
            wildcard = wildcard || (cmd->wildcard_reply && memchr(t->text.ptr, '*', t->text.len));
        }
    }
    for (int leg = 0; leg < 2 && !wildcard; leg++) {
        if (r->term[leg][0] != '\0' && !seen[leg])
            return fail(r, "the Subtract reply does not name %s", r->term[leg]);
    }
    r->have_context = false;
    r->term[0][0] = r->term[1][0] = '\0';
    return true;
}

/* What the gateway sent on its own meanwhile (answered already): one line each. */
static void print_events(struct run *r)
{
    struct iq_event ev;
    while (iq_client_recv(r->c, 0, &ev) == 0) {
        if (ev.kind == IQ_EVENT_GARBAGE) {
            fprintf(r->o.out, "  received a datagram that does not parse: error %u: %s\n",
                    ev.error.code, ev.error.text);
        } else {
            char *text = NULL;
            if (iq_format_message(ev.msg, H248_STYLE_COMPACT, &text, NULL) == 0)
                fprintf(r->o.out, "  received%s: %s\n",
                        ev.kind == IQ_EVENT_REQUEST ? " (answered)" : "", text);
            free(text);
        }
        iq_event_release(&ev);
    }
}

/* Sends text and waits; 0 with a reply, 1 (named in why) when none came. */
static int exchange(struct run *r, const char *text, size_t len, struct iq_reply *reply)
{
    struct h248_parse_error perr;
    int rc = iq_client_request_text(r->c, text, len, r->o.timeout_ms, reply, &perr);
    if (rc == -EBADMSG || rc == -EINVAL) {
        snprintf(r->why, sizeof(r->why), "request does not parse (a scenario bug): %s", perr.text);
        return 1;
    }
    if (rc < 0) {
        snprintf(r->why, sizeof(r->why), "no reply: %s", strerror(-rc));
        return 1;
    }
    return 0;
}

static void cleanup(struct run *r)
{
    if (!r->have_context)
        return;
    char text[64];
    int n = snprintf(text, sizeof(text), "C=%u{S=*}", (unsigned)r->context);
    struct iq_reply reply;
    if (exchange(r, text, (size_t)n, &reply) != 0) {
        fprintf(r->o.out, "%s cleanup: Subtract=* in context %u: %s\n", r->flow->name,
                (unsigned)r->context, r->why);
        return;
    }
    const struct h248_error_desc *e = iq_reply_error(&reply);
    if (e != NULL)
        fprintf(r->o.out, "%s cleanup: Subtract=* in context %u: error %u: %.*s\n", r->flow->name,
                (unsigned)r->context, (unsigned)e->code, (int)e->text.len, e->text.ptr);
    else
        fprintf(r->o.out, "%s cleanup: released context %u\n", r->flow->name, (unsigned)r->context);
    iq_reply_release(&reply);
}

static int run_flow(struct iq_client *c, const struct flow *flow, const struct scenario_options *o)
{
    struct run r;
    memset(&r, 0, sizeof(r));
    r.c = c;
    r.o = *o;
    r.flow = flow;
    r.ue_v6 = is_v6(o->ue_addr);
    r.core_v6 = is_v6(o->core_addr);
    snprintf(r.ue_uri, sizeof(r.ue_uri), r.ue_v6 ? "[%s]" : "%s", o->ue_addr);
    snprintf(r.core_uri, sizeof(r.core_uri), r.core_v6 ? "[%s]" : "%s", o->core_addr);
    unsigned count = 0;
    while (flow->steps[count].name != NULL)
        count++;

    char *text = malloc(REQUEST_MAX);
    if (text == NULL)
        return 1;
    int result = 0;
    for (unsigned i = 0; i < count && result == 0; i++) {
        const struct step *st = &flow->steps[i];
        r.why[0] = r.detail[0] = '\0';
        int len = build_request(&r, st, text, REQUEST_MAX);
        struct iq_reply reply;
        memset(&reply, 0, sizeof(reply));
        if (len < 0) {
            snprintf(r.why, sizeof(r.why), "cannot build the request (a scenario bug)");
            result = 2;
        } else if (exchange(&r, text, (size_t)len, &reply) != 0) {
            result = 1;
        } else {
            const struct h248_error_desc *e = iq_reply_error(&reply);
            bool ok;
            if (e != NULL) {
                ok = fail(&r, "error %u: %.*s", (unsigned)e->code, (int)e->text.len, e->text.ptr);
            } else if (st->kind == STEP_RESERVE) {
                ok = check_add(&r, st, &reply);
            } else if (st->kind == STEP_MODIFY) {
                ok = check_modify(&r, st, &reply);
            } else {
                ok = check_release(&r, &reply);
            }
            result = ok ? 0 : 2;
        }
        if (result == 0) {
            fprintf(o->out, "%s %u/%u %s: ok %.3f ms%s", flow->name, i + 1, count, st->name,
                    (double)reply.latency_us / 1000.0, r.detail);
            if (reply.sends > 1 || reply.pendings > 0)
                fprintf(o->out, " (%u sends, %u pending)", reply.sends, reply.pendings);
            fputc('\n', o->out);
        } else {
            fprintf(o->out, "%s %u/%u %s: FAILED: %s\n", flow->name, i + 1, count, st->name, r.why);
        }
        iq_reply_release(&reply);
        print_events(&r);
    }
    free(text);
    if (result != 0)
        cleanup(&r);
    fflush(o->out);
    return result;
}

int scenario_run(struct iq_client *c, const char *name, const struct scenario_options *opts)
{
    struct scenario_options o;
    if (opts != NULL)
        o = *opts;
    else
        memset(&o, 0, sizeof(o));
    if (o.ue_addr == NULL)
        o.ue_addr = "127.0.0.1";
    if (o.core_addr == NULL)
        o.core_addr = "127.0.0.1";
    if (o.access_realm == NULL)
        o.access_realm = "access";
    if (o.core_realm == NULL)
        o.core_realm = "core";
    if (o.out == NULL)
        o.out = stdout;
    unsigned char bin[16];
    if ((inet_pton(AF_INET, o.ue_addr, bin) != 1 && inet_pton(AF_INET6, o.ue_addr, bin) != 1) ||
        (inet_pton(AF_INET, o.core_addr, bin) != 1 && inet_pton(AF_INET6, o.core_addr, bin) != 1))
        return -EINVAL;

    bool all = strcmp(name, "all") == 0;
    bool found = false;
    for (size_t i = 0; i < sizeof(flows) / sizeof(flows[0]); i++) {
        if (!all && strcmp(name, flows[i].name) != 0)
            continue;
        found = true;
        int rc = run_flow(c, &flows[i], &o);
        if (rc != 0)
            return rc;
    }
    return found ? 0 : -EINVAL;
}
