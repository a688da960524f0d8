/* Check suite of the H.248 text encoder and of structural equality (no parser needed). */
#include "h248.h"
#include "token.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- building messages ---- */

#define APPEND(head, node)                                                                         \
    do {                                                                                           \
        __typeof__(node) *pp_ = &(head);                                                           \
        while (*pp_ != NULL)                                                                       \
            pp_ = &(*pp_)->next;                                                                   \
        *pp_ = (node);                                                                             \
    } while (0)

static void *alloc(struct h248_message *m, size_t n)
{
    void *p = h248_alloc(m, n);
    ck_assert_ptr_nonnull(p);
    return p;
}

#define NEW(m, type) ((type *)alloc((m), sizeof(type)))

static struct h248_str str(struct h248_message *m, const char *s)
{
    struct h248_str out;
    ck_assert_int_eq(h248_str_copy(m, &out, s, strlen(s)), 0);
    return out;
}

static struct h248_message *msg_new(unsigned version, enum h248_mid_kind kind, const char *mid,
                                    int port)
{
    struct h248_message *m = h248_message_new();
    ck_assert_ptr_nonnull(m);
    m->version = version;
    m->mid.kind = kind;
    m->mid.text = str(m, mid);
    if (port >= 0) {
        m->mid.has_port = true;
        m->mid.port = (uint16_t)port;
    }
    return m;
}

static struct h248_message *msg_local(void)
{
    return msg_new(3, H248_MID_IPV4, "127.0.0.1", 2944);
}

static struct h248_transaction *add_trans(struct h248_message *m, enum h248_transaction_kind kind,
                                          uint32_t id)
{
    struct h248_transaction *t = NEW(m, struct h248_transaction);
    t->kind = kind;
    t->id = id;
    APPEND(m->transactions, t);
    return t;
}

static struct h248_action *add_action(struct h248_message *m, struct h248_transaction *t,
                                      enum h248_context_kind kind, uint32_t id)
{
    struct h248_action *a = NEW(m, struct h248_action);
    a->context.kind = kind;
    a->context.id = id;
    APPEND(t->actions, a);
    return a;
}

static struct h248_termination_id *term(struct h248_message *m, const char *id)
{
    struct h248_termination_id *t = NEW(m, struct h248_termination_id);
    t->text = str(m, id);
    return t;
}

static struct h248_command *add_cmd(struct h248_message *m, struct h248_action *a,
                                    enum h248_command_kind kind, const char *id)
{
    struct h248_command *c = NEW(m, struct h248_command);
    c->kind = kind;
    c->terminations = term(m, id);
    APPEND(a->commands, c);
    return c;
}

static struct h248_descriptor *add_desc(struct h248_message *m, struct h248_command *c,
                                        enum h248_descriptor_kind kind)
{
    struct h248_descriptor *d = NEW(m, struct h248_descriptor);
    d->kind = kind;
    APPEND(c->descriptors, d);
    return d;
}

static struct h248_value *val(struct h248_message *m, const char *text, bool quoted)
{
    struct h248_value *v = NEW(m, struct h248_value);
    v->text = str(m, text);
    v->quoted = quoted;
    return v;
}

/* name=value (unquoted), or the bare name when value is NULL. */
static struct h248_property *prop(struct h248_message *m, const char *name, const char *value)
{
    struct h248_property *p = NEW(m, struct h248_property);
    p->name = str(m, name);
    if (value != NULL) {
        p->has_value = true;
        p->value.values = val(m, value, false);
    }
    return p;
}

static struct h248_error_desc *error_desc(struct h248_message *m, uint16_t code, const char *text)
{
    struct h248_error_desc *e = NEW(m, struct h248_error_desc);
    e->code = code;
    if (text != NULL) {
        e->has_text = true;
        e->text = str(m, text);
    }
    return e;
}

static struct h248_event_parm *evparm(struct h248_message *m, enum h248_event_parm_kind kind)
{
    struct h248_event_parm *p = NEW(m, struct h248_event_parm);
    p->kind = kind;
    return p;
}

static struct h248_requested_event *revent(struct h248_message *m, const char *name)
{
    struct h248_requested_event *e = NEW(m, struct h248_requested_event);
    e->name = str(m, name);
    return e;
}

static struct h248_signal_request *sigreq(struct h248_message *m, const char *name)
{
    struct h248_signal_request *s = NEW(m, struct h248_signal_request);
    s->name = str(m, name);
    return s;
}

static struct h248_signal_item *sigitem(struct h248_message *m, struct h248_signal_request *s)
{
    struct h248_signal_item *it = NEW(m, struct h248_signal_item);
    it->signals = s;
    return it;
}

/* ---- encoding helpers ---- */

static char out[8192];

/* Encodes and returns the NUL-terminated bytes; fails the test on any error. */
static const char *enc(const struct h248_message *m, enum h248_style style)
{
    size_t len = 0;
    int rc = h248_encode_message(m, style, out, sizeof(out) - 1, &len);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_lt(len, sizeof(out));
    out[len] = '\0';
    ck_assert_uint_eq(strlen(out), len);
    return out;
}

static void expect_compact(struct h248_message *m, const char *want)
{
    ck_assert_str_eq(enc(m, H248_STYLE_COMPACT), want);
    h248_message_free(m);
}

static void expect_invalid(struct h248_message *m)
{
    size_t len = 12345;
    ck_assert_int_eq(h248_encode_message(m, H248_STYLE_COMPACT, out, sizeof(out), &len), -EINVAL);
    ck_assert_int_eq(h248_encode_message(m, H248_STYLE_PRETTY, out, sizeof(out), &len), -EINVAL);
    /* Not encodable wins over "too small". */
    ck_assert_int_eq(h248_encode_message(m, H248_STYLE_COMPACT, out, 0, &len), -EINVAL);
    h248_message_free(m);
}

/* ---- messages used by several tests ---- */

#define SDP_OFFER                                                                                  \
    "v=0\r\nc=IN IP4 $\r\nm=message $ TCP/TLS/MSRP *\r\na=label:{1}\r\na=fingerprint:$"
#define SDP_OFFER_ESCAPED                                                                          \
    "v=0\r\nc=IN IP4 $\r\nm=message $ TCP/TLS/MSRP *\r\na=label:{1\\}\r\na=fingerprint:$"

/* Add $ to a new context, with Mode, the realm and a Local offer. */
static struct h248_message *add_with_sdp(void)
{
    struct h248_message *m = msg_local();
    struct h248_transaction *t = add_trans(m, H248_TRANS_REQUEST, 1);
    struct h248_action *a = add_action(m, t, H248_CTX_CHOOSE, 0);
    struct h248_command *c = add_cmd(m, a, H248_CMD_ADD, "$");
    struct h248_descriptor *d = add_desc(m, c, H248_DESC_MEDIA);
    struct h248_stream *s = NEW(m, struct h248_stream);
    s->id = 1;
    s->parms.local_control = NEW(m, struct h248_local_control);
    s->parms.local_control->mode = H248_MODE_SEND_RECV;
    s->parms.local_control->properties = prop(m, "ipdc/realm", "access");
    s->parms.has_local = true;
    s->parms.local = str(m, SDP_OFFER);
    d->u.media.streams = s;
    return m;
}

static const char add_with_sdp_compact[] =
    "!/3 [127.0.0.1]:2944 T=1{C=${A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{" SDP_OFFER_ESCAPED
    "}}}}}}";

/* ---- encoding tests ---- */

START_TEST(test_service_change_registration)
{
    struct h248_message *m = msg_new(3, H248_MID_IPV4, "192.0.2.10", 2944);
    struct h248_transaction *t = add_trans(m, H248_TRANS_REQUEST, 9998);
    struct h248_action *a = add_action(m, t, H248_CTX_NULL, 0);
    struct h248_command *c = add_cmd(m, a, H248_CMD_SERVICE_CHANGE, "ROOT");
    struct h248_service_change *sc = &add_desc(m, c, H248_DESC_SERVICE_CHANGE)->u.service_change;
    sc->method = H248_SC_RESTART;
    sc->has_reason = true;
    sc->reason.text = str(m, "901 Cold Boot");
    sc->reason.quoted = true;
    sc->has_profile = true;
    sc->profile_name = str(m, "ims_agw");
    sc->profile_version = 1;
    sc->has_version = true;
    sc->version = 3;
    expect_compact(m, "!/3 [192.0.2.10]:2944 T=9998{C=-{SC=ROOT{SV{MT=RS,RE=\"901 Cold "
                      "Boot\",PF=ims_agw/1,V=3}}}}");
}
END_TEST

START_TEST(test_service_change_all_parameters)
{
    struct h248_message *m = msg_local();
    struct h248_transaction *t = add_trans(m, H248_TRANS_REPLY, 4);
    struct h248_action *a = add_action(m, t, H248_CTX_NULL, 0);
    struct h248_command *c = add_cmd(m, a, H248_CMD_SERVICE_CHANGE, "ROOT");
    struct h248_service_change *sc = &add_desc(m, c, H248_DESC_SERVICE_CHANGE)->u.service_change;
    sc->method = H248_SC_EXTENSION;
    sc->method_ext = str(m, "X-ZZ");
    sc->has_reason = true;
    sc->reason.text = str(m, "905");
    sc->has_delay = true;
    sc->delay = 4294967295u;
    sc->has_address = true;
    sc->address_is_port = true;
    sc->address_port = 55555;
    sc->has_mgc_id = true;
    sc->mgc_id.kind = H248_MID_DOMAIN;
    sc->mgc_id.text = str(m, "mgc2.example.net");
    sc->has_timestamp = true;
    memcpy(sc->date, "20240101", 9);
    memcpy(sc->time, "12000000", 9);
    sc->extensions = prop(m, "X-FO", "1");
    struct h248_audit_item *ai = NEW(m, struct h248_audit_item);
    ai->kind = H248_AUDIT_TOKEN;
    ai->token = H248_TOK_MEDIA;
    sc->audit = ai;
    sc->incomplete = true;
    expect_compact(m, "!/3 [127.0.0.1]:2944 P=4{C=-{SC=ROOT{SV{MT=X-ZZ,RE=905,DL=4294967295,"
                      "AD=55555,MG=<mgc2.example.net>,20240101T12000000,X-FO=1,M,SIC}}}}");
}
END_TEST

START_TEST(test_add_with_sdp)
{
    expect_compact(add_with_sdp(), add_with_sdp_compact);
}
END_TEST

START_TEST(test_add_pretty)
{
    struct h248_message *m = add_with_sdp();
    ck_assert_str_eq(enc(m, H248_STYLE_PRETTY),
                     "MEGACO/3 [127.0.0.1]:2944\n"
                     "Transaction = 1 {\n"
                     "    Context = $ {\n"
                     "        Add = $ {\n"
                     "            Media {\n"
                     "                Stream = 1 {\n"
                     "                    LocalControl {\n"
                     "                        Mode = SendReceive,\n"
                     "                        ipdc/realm = access\n"
                     "                    },\n"
                     "                    Local {\n" SDP_OFFER_ESCAPED "\n"
                     "                    }\n"
                     "                }\n"
                     "            }\n"
                     "        }\n"
                     "    }\n"
                     "}\n");
    h248_message_free(m);
}
END_TEST

START_TEST(test_pretty_reply_flat_lists)
{
    struct h248_message *m = msg_local();
    struct h248_transaction *t = add_trans(m, H248_TRANS_REPLY, 2);
    t->imm_ack_required = true;
    t->has_segment = true;
    t->segment_number = 1;
    t->segmentation_complete = true;
    struct h248_action *a = add_action(m, t, H248_CTX_ID, 7);
    struct h248_command *c = add_cmd(m, a, H248_CMD_AUDIT_VALUE, "ROOT");
    struct h248_package *p1 = NEW(m, struct h248_package), *p2 = NEW(m, struct h248_package);
    p1->name = str(m, "nt");
    p1->version = 1;
    p2->name = str(m, "ipdc");
    p2->version = 2;
    p1->next = p2;
    add_desc(m, c, H248_DESC_PACKAGES)->u.packages = p1;
    struct h248_property *range = prop(m, "x/r", "1");
    range->value.shape = H248_SHAPE_RANGE;
    range->value.values->next = val(m, "9", false);
    struct h248_descriptor *st = add_desc(m, c, H248_DESC_STATISTICS);
    st->u.statistics.items = range;
    add_cmd(m, a, H248_CMD_NOTIFY, "ip/access/1");
    add_trans(m, H248_TRANS_RESPONSE_ACK, 0);
    struct h248_ack_range *r1 = NEW(m, struct h248_ack_range), *r2 = NEW(m, struct h248_ack_range);
    r1->first = r1->last = 1;
    r2->first = 3;
    r2->last = 7;
    r1->next = r2;
    t->next->acks = r1;
    ck_assert_str_eq(enc(m, H248_STYLE_PRETTY), "MEGACO/3 [127.0.0.1]:2944\n"
                                                "Reply = 2/1/END {\n"
                                                "    ImmAckRequired,\n"
                                                "    Context = 7 {\n"
                                                "        AuditValue = ROOT {\n"
                                                "            Packages {nt-1, ipdc-2},\n"
                                                "            Statistics {\n"
                                                "                x/r = [1:9]\n"
                                                "            }\n"
                                                "        },\n"
                                                "        Notify = ip/access/1\n"
                                                "    }\n"
                                                "}\n"
                                                "TransactionResponseAck {1, 3-7}\n");
    ck_assert_str_eq(enc(m, H248_STYLE_COMPACT),
                     "!/3 [127.0.0.1]:2944 P=2/1/&{IA,C=7{AV=ROOT{PG{nt-1,ipdc-2},SA{x/r=[1:9]}},"
                     "N=ip/access/1}}K{1,3-7}");
    h248_message_free(m);
}
END_TEST

START_TEST(test_reply_imm_ack_and_errors)
{
    struct h248_message *m = msg_local();
    struct h248_transaction *t = add_trans(m, H248_TRANS_REPLY, 5);
    t->imm_ack_required = true;
    t->error = error_desc(m, 403, "Syntax error in transaction at 12");
    t = add_trans(m, H248_TRANS_REPLY, 6);
    t->imm_ack_required = true;
    struct h248_action *a = add_action(m, t, H248_CTX_ID, 1);
    struct h248_command *c = add_cmd(m, a, H248_CMD_MODIFY, "ip/access/9");
    add_desc(m, c, H248_DESC_ERROR)->u.error = (struct h248_error_desc){.code = 430};
    a->error = error_desc(m, 411, "Unknown context");
    expect_compact(m, "!/3 [127.0.0.1]:2944 P=5{IA,ER=403{\"Syntax error in transaction at 12\"}}"
                      "P=6{IA,C=1{MF=ip/access/9{ER=430{}},ER=411{\"Unknown context\"}}}");
}
END_TEST

START_TEST(test_pending)
{
    struct h248_message *m = msg_local();
    add_trans(m, H248_TRANS_PENDING, 4294967295u);
    ck_assert_str_eq(enc(m, H248_STYLE_PRETTY),
                     "MEGACO/3 [127.0.0.1]:2944\nPending = 4294967295 {}\n");
    expect_compact(m, "!/3 [127.0.0.1]:2944 PN=4294967295{}");
}
END_TEST

START_TEST(test_response_ack_ranges)
{
    struct h248_message *m = msg_local();
    struct h248_transaction *t = add_trans(m, H248_TRANS_RESPONSE_ACK, 0);
    static const uint32_t ranges[][2] = {{1, 1}, {3, 7}, {0, 0}, {10, 4294967295u}};
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        struct h248_ack_range *r = NEW(m, struct h248_ack_range);
        r->first = ranges[i][0];
        r->last = ranges[i][1];
        APPEND(t->acks, r);
    }
    expect_compact(m, "!/3 [127.0.0.1]:2944 K{1,3-7,0,10-4294967295}");
}
END_TEST

START_TEST(test_segment_reply)
{
    struct h248_message *m = msg_local();
    struct h248_transaction *t = add_trans(m, H248_TRANS_SEGMENT_REPLY, 8);
    t->has_segment = true;
    t->segment_number = 2;
    t = add_trans(m, H248_TRANS_SEGMENT_REPLY, 8);
    t->has_segment = true;
    t->segment_number = 3;
    t->segmentation_complete = true;
    add_trans(m, H248_TRANS_PENDING, 9);
    /* Digits of a segment reply must not run into the next transaction's token. */
    expect_compact(m, "!/3 [127.0.0.1]:2944 SM=8/2 SM=8/3/& PN=9{}");
}
END_TEST

START_TEST(test_notify_observed_event)
{
    struct h248_message *m = msg_local();
    struct h248_transaction *t = add_trans(m, H248_TRANS_REQUEST, 10);
    struct h248_action *a = add_action(m, t, H248_CTX_ID, 1);
    struct h248_command *c = add_cmd(m, a, H248_CMD_NOTIFY, "ip/access/1");
    struct h248_observed_events *oe = &add_desc(m, c, H248_DESC_OBSERVED_EVENTS)->u.observed;
    oe->request_id = 2;
    struct h248_observed_event *e1 = NEW(m, struct h248_observed_event);
    e1->has_timestamp = true;
    memcpy(e1->date, "20021217", 9);
    memcpy(e1->time, "10001234", 9);
    e1->name = str(m, "tls/fail");
    struct h248_event_parm *p = evparm(m, H248_EVPARM_STREAM);
    p->stream = 1;
    APPEND(e1->parms, p);
    p = evparm(m, H248_EVPARM_OTHER);
    p->other = *prop(m, "cause", "mismatch");
    APPEND(e1->parms, p);
    struct h248_observed_event *e2 = NEW(m, struct h248_observed_event);
    e2->name = str(m, "it/ito");
    e1->next = e2;
    oe->events = e1;
    expect_compact(m, "!/3 [127.0.0.1]:2944 T=10{C=1{N=ip/access/1{OE=2{20021217T10001234:"
                      "tls/fail{ST=1,cause=mismatch},it/ito}}}}");
}
END_TEST

START_TEST(test_subtract_reply_statistics)
{
    struct h248_message *m = msg_local();
    struct h248_transaction *t = add_trans(m, H248_TRANS_REPLY, 11);
    struct h248_action *a = add_action(m, t, H248_CTX_ID, 3);
    struct h248_command *c = add_cmd(m, a, H248_CMD_SUBTRACT, "ip/access/1");
    struct h248_statistics *st = &add_desc(m, c, H248_DESC_STATISTICS)->u.statistics;
    APPEND(st->items, prop(m, "nt/os", "1200"));
    APPEND(st->items, prop(m, "nt/or", "3400"));
    struct h248_property *dur = prop(m, "nt/dur", "5");
    dur->value.values->next = val(m, "6", false);
    dur->value.shape = H248_SHAPE_SUBLIST;
    APPEND(st->items, dur);
    c = add_cmd(m, a, H248_CMD_SUBTRACT, "ip/core/1");
    c->wildcard_reply = true;
    expect_compact(m, "!/3 [127.0.0.1]:2944 P=11{C=3{S=ip/access/1{SA{nt/os=1200,nt/or=3400,"
                      "nt/dur=[5,6]}},W-S=ip/core/1}}");
}
END_TEST

START_TEST(test_events_with_embed)
{
    struct h248_message *m = msg_local();
    struct h248_transaction *t = add_trans(m, H248_TRANS_REQUEST, 12);
    struct h248_action *a = add_action(m, t, H248_CTX_ID, 1);
    struct h248_command *c = add_cmd(m, a, H248_CMD_MODIFY, "ip/access/1");
    struct h248_events *ev = &add_desc(m, c, H248_DESC_EVENTS)->u.events;
    ev->has_request_id = true;
    ev->request_id = 3;

    /* al/of{EM{SG{cg/rt},E=4{al/on{KA}}},NBRN{EM{E}},RSE} */
    struct h248_requested_event *e1 = revent(m, "al/of");
    struct h248_event_parm *em = evparm(m, H248_EVPARM_EMBED);
    em->embed_signals = NEW(m, struct h248_signals);
    em->embed_signals->items = sigitem(m, sigreq(m, "cg/rt"));
    em->embed_events = NEW(m, struct h248_events);
    em->embed_events->has_request_id = true;
    em->embed_events->request_id = 4;
    em->embed_events->events = revent(m, "al/on");
    em->embed_events->events->parms = evparm(m, H248_EVPARM_KEEP_ACTIVE);
    APPEND(e1->parms, em);
    struct h248_event_parm *nbrn = evparm(m, H248_EVPARM_NOTIFY_REGULATED);
    nbrn->embed_events = NEW(m, struct h248_events);
    APPEND(e1->parms, nbrn);
    APPEND(e1->parms, evparm(m, H248_EVPARM_RESET_EVENTS));
    APPEND(ev->events, e1);

    /* tls/fail{ST=1,DM=dmap1,DM={xxx|x.},NBIN,NBNN,NBRN,EM{SG{}},thr>5} */
    struct h248_requested_event *e2 = revent(m, "tls/fail");
    struct h248_event_parm *p = evparm(m, H248_EVPARM_STREAM);
    p->stream = 1;
    APPEND(e2->parms, p);
    p = evparm(m, H248_EVPARM_DIGIT_MAP);
    p->digit_map = str(m, "dmap1");
    APPEND(e2->parms, p);
    p = evparm(m, H248_EVPARM_DIGIT_MAP);
    p->digit_map_is_value = true;
    p->digit_map = str(m, "xxx|x.");
    APPEND(e2->parms, p);
    APPEND(e2->parms, evparm(m, H248_EVPARM_NOTIFY_IMMEDIATE));
    APPEND(e2->parms, evparm(m, H248_EVPARM_NOTIFY_NEVER));
    APPEND(e2->parms, evparm(m, H248_EVPARM_NOTIFY_REGULATED));
    p = evparm(m, H248_EVPARM_EMBED);
    p->embed_signals = NEW(m, struct h248_signals);
    APPEND(e2->parms, p);
    p = evparm(m, H248_EVPARM_OTHER);
    p->other = *prop(m, "thr", "5");
    p->other.value.relation = H248_REL_GREATER;
    APPEND(e2->parms, p);
    APPEND(ev->events, e2);

    /* A bare Events clears the descriptor; a bare EventBuffer too. */
    add_desc(m, c, H248_DESC_EVENT_BUFFER);
    c = add_cmd(m, a, H248_CMD_MODIFY, "ip/core/1");
    add_desc(m, c, H248_DESC_EVENTS);
    struct h248_event_buffer *eb = &add_desc(m, c, H248_DESC_EVENT_BUFFER)->u.event_buffer;
    eb->events = revent(m, "al/on");
    p = evparm(m, H248_EVPARM_STREAM);
    p->stream = 2;
    eb->events->parms = p;

    expect_compact(m, "!/3 [127.0.0.1]:2944 T=12{C=1{MF=ip/access/1{E=3{al/of{EM{SG{cg/rt},"
                      "E=4{al/on{KA}}},NBRN{EM{E}},RSE},tls/fail{ST=1,DM=dmap1,DM={xxx|x.},NBIN,"
                      "NBNN,NBRN,EM{SG{}},thr>5}},EB},MF=ip/core/1{E,EB{al/on{ST=2}}}}}");
}
END_TEST

START_TEST(test_signals_with_list)
{
    struct h248_message *m = msg_local();
    struct h248_transaction *t = add_trans(m, H248_TRANS_REQUEST, 13);
    struct h248_action *a = add_action(m, t, H248_CTX_ID, 1);
    struct h248_command *c = add_cmd(m, a, H248_CMD_MODIFY, "ip/access/1");
    struct h248_signals *sg = &add_desc(m, c, H248_DESC_SIGNALS)->u.signals;

    struct h248_signal_request *s1 = sigreq(m, "cg/rt");
    s1->has_stream = true;
    s1->stream = 1;
    s1->type = H248_SIGTYPE_TIMEOUT;
    s1->has_duration = true;
    s1->duration = 100;
    s1->notify_completion = H248_NC_TIMEOUT | H248_NC_INTERRUPTED_BY_EVENT | H248_NC_ITERATION;
    s1->keep_active = true;
    s1->direction = H248_SIGDIR_EXTERNAL;
    s1->has_request_id = true;
    s1->request_id = 5;
    s1->has_intersignal_delay = true;
    s1->intersignal_delay = 3;
    struct h248_property *alt = prop(m, "vol", "1");
    alt->value.shape = H248_SHAPE_ALTERNATIVES;
    alt->value.values->next = val(m, "2", false);
    s1->others = alt;
    s1->next = sigreq(m, "an/apf");
    struct h248_signal_item *list = sigitem(m, s1);
    list->is_list = true;
    list->list_id = 2;
    APPEND(sg->items, list);
    struct h248_signal_request *s2 = sigreq(m, "tls/est");
    s2->type = H248_SIGTYPE_BRIEF;
    s2->direction = H248_SIGDIR_BOTH;
    s2->notify_completion = H248_NC_INTERRUPTED_BY_NEW_SIGNALS | H248_NC_OTHER_REASON;
    APPEND(sg->items, sigitem(m, s2));
    APPEND(sg->items, sigitem(m, sigreq(m, "g/p")));
    /* An empty Signals descriptor stops all signals. */
    add_desc(m, add_cmd(m, a, H248_CMD_MODIFY, "ip/core/1"), H248_DESC_SIGNALS);
    expect_compact(m, "!/3 [127.0.0.1]:2944 T=13{C=1{MF=ip/access/1{SG{SL=2{cg/rt{ST=1,SY=TO,"
                      "DR=100,NC={TO,IBE,IR},KA,SPADI=EX,SPARQ=5,SPAIS=3,vol={1,2}},an/apf},"
                      "tls/est{SY=BR,NC={IBS,OR},SPADI=B},g/p}},MF=ip/core/1{SG{}}}}");
}
END_TEST

START_TEST(test_topology_and_context_props)
{
    struct h248_message *m = msg_local();
    struct h248_transaction *t = add_trans(m, H248_TRANS_REQUEST, 14);
    struct h248_action *a = add_action(m, t, H248_CTX_ID, 1);
    struct h248_context_props *p = NEW(m, struct h248_context_props);
    p->has_priority = true;
    p->priority = 5;
    p->emergency = true;
    p->has_ieps = true;
    p->ieps = true;
    struct h248_topology_triple *t1 = NEW(m, struct h248_topology_triple);
    t1->from = str(m, "ip/access/1");
    t1->to = str(m, "ip/core/1");
    t1->direction = H248_TOPO_ISOLATE;
    struct h248_topology_triple *t2 = NEW(m, struct h248_topology_triple);
    t2->from = str(m, "ip/access/2");
    t2->to = str(m, "*");
    t2->direction = H248_TOPO_ONEWAY_BOTH;
    t2->has_stream = true;
    t2->stream = 2;
    t1->next = t2;
    p->topology = t1;
    p->attributes = prop(m, "ctx/a", "1");
    p->has_audit = true;
    struct h248_audit_item *ai = NEW(m, struct h248_audit_item);
    ai->kind = H248_AUDIT_TOKEN;
    ai->token = H248_TOK_TOPOLOGY;
    p->audit = ai;
    a->props = p;
    add_cmd(m, a, H248_CMD_MODIFY, "ip/access/1");

    /* Emergency off and IEPS off. */
    a = add_action(m, t, H248_CTX_ALL, 0);
    a->props = NEW(m, struct h248_context_props);
    a->props->emergency_off = true;
    a->props->has_ieps = true;
    expect_compact(m, "!/3 [127.0.0.1]:2944 T=14{C=1{PR=5,EG,IEPS=ON,TP{ip/access/1,ip/core/1,IS,"
                      "ip/access/2,*,OWB,ST=2},CT{ctx/a=1},CA{TP},MF=ip/access/1},C=*{EGO,"
                      "IEPS=OFF}}");
}
END_TEST

START_TEST(test_mid_forms)
{
    struct h248_message *m = msg_new(3, H248_MID_IPV6, "2001:db8::1", 2944);
    add_trans(m, H248_TRANS_PENDING, 1);
    expect_compact(m, "!/3 [2001:db8::1]:2944 PN=1{}");
    m = msg_new(2, H248_MID_DOMAIN, "mg1.example.net", 55555);
    add_trans(m, H248_TRANS_PENDING, 1);
    expect_compact(m, "!/2 <mg1.example.net>:55555 PN=1{}");
    m = msg_new(1, H248_MID_DOMAIN, "mg1.example.net", -1);
    add_trans(m, H248_TRANS_PENDING, 1);
    expect_compact(m, "!/1 <mg1.example.net> PN=1{}");
    m = msg_new(1, H248_MID_IPV4, "10.0.0.1", -1);
    add_trans(m, H248_TRANS_PENDING, 1);
    expect_compact(m, "!/1 [10.0.0.1] PN=1{}");
    m = msg_new(1, H248_MID_DEVICE, "gw/dev1", -1);
    add_trans(m, H248_TRANS_PENDING, 1);
    expect_compact(m, "!/1 gw/dev1 PN=1{}");
    m = msg_new(1, H248_MID_MTP, "0A1B", -1);
    add_trans(m, H248_TRANS_PENDING, 1);
    expect_compact(m, "!/1 MTP{0A1B} PN=1{}");
}
END_TEST

START_TEST(test_auth_header)
{
    struct h248_message *m = msg_local();
    m->has_auth = true;
    m->auth_spi = 0x1234abcd;
    m->auth_seq = 7;
    m->auth_data = str(m, "00112233445566778899aabbccddeeff");
    add_trans(m, H248_TRANS_PENDING, 1);
    ck_assert_str_eq(enc(m, H248_STYLE_PRETTY),
                     "Authentication = 0x1234abcd:0x00000007:0x00112233445566778899aabbccddeeff\n"
                     "MEGACO/3 [127.0.0.1]:2944\nPending = 1 {}\n");
    expect_compact(m, "AU=0x1234abcd:0x00000007:0x00112233445566778899aabbccddeeff "
                      "!/3 [127.0.0.1]:2944 PN=1{}");
}
END_TEST

START_TEST(test_message_error)
{
    struct h248_message *m = msg_new(1, H248_MID_IPV4, "127.0.0.1", 2944);
    m->error = error_desc(m, 400, "Syntax error at offset 3");
    ck_assert_str_eq(enc(m, H248_STYLE_PRETTY),
                     "MEGACO/1 [127.0.0.1]:2944\nError = 400 {\"Syntax error at offset 3\"}\n");
    expect_compact(m, "!/1 [127.0.0.1]:2944 ER=400{\"Syntax error at offset 3\"}");
    m = msg_new(1, H248_MID_IPV4, "127.0.0.1", 2944);
    m->error = error_desc(m, 400, NULL);
    expect_compact(m, "!/1 [127.0.0.1]:2944 ER=400{}");
}
END_TEST

START_TEST(test_command_forms)
{
    struct h248_message *m = msg_local();
    struct h248_transaction *t = add_trans(m, H248_TRANS_REQUEST, 15);
    struct h248_action *a = add_action(m, t, H248_CTX_ID, 4294967295u);
    struct h248_command *c = add_cmd(m, a, H248_CMD_MOVE, "ip/access/1");
    c->optional = true;
    c->wildcard_reply = true;
    c->term_list = true;
    c->terminations->next = term(m, "ip/access/2");
    c = add_cmd(m, a, H248_CMD_AUDIT_CAPABILITIES, "ROOT");
    struct h248_audit *au = &add_desc(m, c, H248_DESC_AUDIT)->u.audit;
    struct h248_audit_item *i1 = NEW(m, struct h248_audit_item);
    i1->kind = H248_AUDIT_TOKEN;
    i1->token = H248_TOK_PACKAGES;
    struct h248_audit_item *i2 = NEW(m, struct h248_audit_item);
    i2->kind = H248_AUDIT_NAME;
    i2->text = str(m, "nt/*");
    struct h248_audit_item *i3 = NEW(m, struct h248_audit_item);
    i3->kind = H248_AUDIT_RAW;
    i3->text = str(m, "M{ST=1{O{MO}}}");
    i1->next = i2;
    i2->next = i3;
    au->items = i1;
    c = add_cmd(m, a, H248_CMD_AUDIT_VALUE, "*");
    add_desc(m, c, H248_DESC_AUDIT);
    c = add_cmd(m, a, H248_CMD_ADD, "ip/core/$");
    struct h248_digit_map *dm = &add_desc(m, c, H248_DESC_DIGIT_MAP)->u.digit_map;
    dm->has_name = true;
    dm->name = str(m, "dp1");
    dm = &add_desc(m, c, H248_DESC_DIGIT_MAP)->u.digit_map;
    dm->has_name = true;
    dm->name = str(m, "dp2");
    dm->has_value = true;
    dm->value = str(m, "(0s|[1-7]xxx)");
    dm = &add_desc(m, c, H248_DESC_DIGIT_MAP)->u.digit_map;
    dm->has_value = true;
    dm->value = str(m, "xx");
    add_desc(m, c, H248_DESC_MODEM)->u.raw.text = str(m, "=V18{v/x=1}");
    add_desc(m, c, H248_DESC_MUX)->u.raw.text = str(m, "=H221{ip/access/1}");
    add_desc(m, c, H248_DESC_TOKEN)->u.token = H248_TOK_OBSERVED_EVENTS;
    add_cmd(m, a, H248_CMD_MODIFY, "ip/access/3"); /* no descriptors: no braces */
    expect_compact(m, "!/3 [127.0.0.1]:2944 T=15{C=4294967295{O-W-MV=[ip/access/1,ip/access/2],"
                      "AC=ROOT{AT{PG,nt/*,M{ST=1{O{MO}}}}},AV=*{AT{}},A=ip/core/${DM=dp1,"
                      "DM=dp2{(0s|[1-7]xxx)},DM={xx},MD=V18{v/x=1},MX=H221{ip/access/1},OE},"
                      "MF=ip/access/3}}");
}
END_TEST

START_TEST(test_media_termination_state_and_values)
{
    struct h248_message *m = msg_local();
    struct h248_transaction *t = add_trans(m, H248_TRANS_REQUEST, 16);
    struct h248_action *a = add_action(m, t, H248_CTX_ID, 1);
    struct h248_command *c = add_cmd(m, a, H248_CMD_MODIFY, "ip/access/1");
    struct h248_media *md = &add_desc(m, c, H248_DESC_MEDIA)->u.media;
    md->termination_state = NEW(m, struct h248_termination_state);
    md->termination_state->service_state = H248_SERVICE_OUT_OF_SVC;
    md->termination_state->buffer_control = H248_BUFFER_LOCKSTEP;
    md->termination_state->properties = prop(m, "hangterm/thb", "ON");
    md->has_direct_parms = true;
    md->direct.local_control = NEW(m, struct h248_local_control);
    md->direct.local_control->mode = H248_MODE_LOOPBACK;
    md->direct.local_control->reserved_value = H248_ON;
    md->direct.local_control->reserved_group = H248_OFF;
    struct h248_property *q = prop(m, "x/q", "a \"b\" {c}");
    q->value.values->quoted = true;
    q->value.relation = H248_REL_NOT_EQUAL;
    q->next = prop(m, "x/lt", "10");
    q->next->value.relation = H248_REL_LESS;
    q->next->next = prop(m, "x/flag", NULL);
    md->direct.local_control->properties = q;
    md->direct.has_remote = true;
    md->direct.remote = str(m, "v=0");
    md->direct.has_local = true;
    md->direct.local = str(m, "");
    md->direct.statistics = NEW(m, struct h248_statistics);
    md->direct.statistics->items = prop(m, "nt/os", "0");
    expect_invalid(m); /* the quoted value holds '"' */

    m = msg_local();
    t = add_trans(m, H248_TRANS_REQUEST, 16);
    a = add_action(m, t, H248_CTX_ID, 1);
    c = add_cmd(m, a, H248_CMD_MODIFY, "ip/access/1");
    md = &add_desc(m, c, H248_DESC_MEDIA)->u.media;
    md->termination_state = NEW(m, struct h248_termination_state);
    md->termination_state->service_state = H248_SERVICE_IN_SVC;
    md->termination_state->buffer_control = H248_BUFFER_OFF;
    md->has_direct_parms = true;
    md->direct.local_control = NEW(m, struct h248_local_control);
    md->direct.local_control->mode = H248_MODE_RECV_ONLY;
    q = prop(m, "x/q", "a b,{c}=\\");
    q->value.values->quoted = true;
    q->value.relation = H248_REL_NOT_EQUAL;
    q->next = prop(m, "x/lt", "10");
    q->next->value.relation = H248_REL_LESS;
    q->next->next = prop(m, "x/flag", NULL);
    md->direct.local_control->properties = q;
    md->direct.has_remote = true;
    md->direct.remote = str(m, "v=0");
    md->direct.has_local = true;
    md->direct.local = str(m, "");
    md->direct.statistics = NEW(m, struct h248_statistics);
    md->direct.statistics->items = prop(m, "nt/os", "0");
    struct h248_stream *s2 = NEW(m, struct h248_stream);
    s2->id = 65535;
    s2->parms.has_remote = true;
    s2->parms.remote = str(m, "a=x:}}");
    md->streams = s2;
    expect_compact(m, "!/3 [127.0.0.1]:2944 T=16{C=1{MF=ip/access/1{M{TS{SI=IV,BF=OFF},"
                      "O{MO=RC,x/q#\"a b,{c}=\\\",x/lt<10,x/flag},L{},R{v=0},SA{nt/os=0},"
                      "ST=65535{R{a=x:\\}\\}}}}}}}");
}
END_TEST

/* ---- sizes ---- */

START_TEST(test_enospc_every_cap)
{
    struct h248_message *m = add_with_sdp();
    for (int style = H248_STYLE_COMPACT; style <= H248_STYLE_PRETTY; style++) {
        size_t need = 0;
        ck_assert_int_eq(h248_encode_message(m, style, NULL, 0, &need), -ENOSPC);
        ck_assert_uint_gt(need, 100);
        char ref[2048];
        size_t len = 0;
        ck_assert_uint_lt(need, sizeof(ref));
        ck_assert_int_eq(h248_encode_message(m, style, ref, need, &len), 0);
        ck_assert_uint_eq(len, need);
        for (size_t cap = 0; cap < need; cap++) {
            char *buf = malloc(need + 16);
            memset(buf, 0x5a, need + 16);
            size_t got = 0;
            ck_assert_int_eq(h248_encode_message(m, style, buf, cap, &got), -ENOSPC);
            ck_assert_uint_eq(got, need);
            for (size_t i = cap; i < need + 16; i++)
                ck_assert_int_eq(buf[i], 0x5a); /* nothing written past cap */
            free(buf);
        }
    }
    size_t len = 0;
    ck_assert_int_eq(h248_encode_message(m, H248_STYLE_COMPACT, out, sizeof(out), &len), 0);
    ck_assert_uint_eq(len, strlen(add_with_sdp_compact));
    ck_assert_mem_eq(out, add_with_sdp_compact, len);
    h248_message_free(m);
}
END_TEST

/* ---- not encodable ---- */

/* A Modify of ip/access/1 in context 1 whose single property is returned for tampering. */
static struct h248_property *modify_with_property(struct h248_message **mp)
{
    struct h248_message *m = msg_local();
    struct h248_transaction *t = add_trans(m, H248_TRANS_REQUEST, 1);
    struct h248_action *a = add_action(m, t, H248_CTX_ID, 1);
    struct h248_command *c = add_cmd(m, a, H248_CMD_MODIFY, "ip/access/1");
    struct h248_media *md = &add_desc(m, c, H248_DESC_MEDIA)->u.media;
    md->has_direct_parms = true;
    md->direct.local_control = NEW(m, struct h248_local_control);
    md->direct.local_control->properties = prop(m, "ipdc/realm", "access");
    *mp = m;
    return md->direct.local_control->properties;
}

START_TEST(test_invalid_values)
{
    struct h248_message *m;
    struct h248_property *p = modify_with_property(&m);
    ck_assert_str_eq(enc(m, H248_STYLE_COMPACT),
                     "!/3 [127.0.0.1]:2944 T=1{C=1{MF=ip/access/1{M{O{ipdc/realm=access}}}}}");
    p->value.values->text = str(m, "");
    expect_invalid(m);

    static const char *const unsafe[] = {"a b", "a,b", "x}", "{", "a=b", "a:b", "\"", "a\nb",
                                         "#",   "<",   ">",  ";", "[",   "]",   "\t"};
    for (size_t i = 0; i < sizeof(unsafe) / sizeof(unsafe[0]); i++) {
        p = modify_with_property(&m);
        p->value.values->text = str(m, unsafe[i]);
        expect_invalid(m);
    }
    /* The same texts are fine quoted, except for the quote itself and line ends. */
    for (size_t i = 0; i < sizeof(unsafe) / sizeof(unsafe[0]); i++) {
        p = modify_with_property(&m);
        p->value.values->text = str(m, unsafe[i]);
        p->value.values->quoted = true;
        size_t len;
        ck_assert_int_eq(h248_encode_message(m, H248_STYLE_COMPACT, out, sizeof(out), &len),
                         strpbrk(unsafe[i], "\"\n") != NULL ? -EINVAL : 0);
        h248_message_free(m);
    }
    /* %x80-FF is allowed in an unquoted VALUE (v3). */
    p = modify_with_property(&m);
    p->value.values->text = str(m, "acc\xc3\xa8s");
    ck_assert_str_eq(
        enc(m, H248_STYLE_COMPACT),
        "!/3 [127.0.0.1]:2944 T=1{C=1{MF=ip/access/1{M{O{ipdc/realm=acc\xc3\xa8s}}}}}");
    h248_message_free(m);

    p = modify_with_property(&m);
    p->name = str(m, "");
    expect_invalid(m);
    p = modify_with_property(&m);
    p->name = str(m, "ipdc realm");
    expect_invalid(m);
    p = modify_with_property(&m);
    p->value.relation = H248_REL_GREATER;
    p->value.shape = H248_SHAPE_SUBLIST;
    expect_invalid(m);
    p = modify_with_property(&m);
    p->value.shape = H248_SHAPE_RANGE; /* one value only */
    expect_invalid(m);
    p = modify_with_property(&m);
    p->value.values->next = val(m, "core", false); /* two values in SINGLE */
    expect_invalid(m);
    p = modify_with_property(&m);
    p->value.values = NULL;
    p->value.shape = H248_SHAPE_ALTERNATIVES;
    expect_invalid(m);
}
END_TEST

START_TEST(test_invalid_octet_strings)
{
    struct h248_message *m = add_with_sdp();
    struct h248_stream_parms *sp =
        &m->transactions->actions->commands->descriptors->u.media.streams->parms;
    sp->local = str(m, "v=0\r\na=x:\\");
    /* A final backslash is kept apart from the closing brace, which it would escape. */
    ck_assert_ptr_nonnull(strstr(enc(m, H248_STYLE_COMPACT), "L{v=0\r\na=x:\\ }"));
    h248_message_free(m);
    m = add_with_sdp();
    sp = &m->transactions->actions->commands->descriptors->u.media.streams->parms;
    sp->has_remote = true;
    ck_assert_int_eq(h248_str_copy(m, &sp->remote, "v=0\0x", 5), 0);
    expect_invalid(m);
    /* An empty text, even one that points nowhere. */
    m = add_with_sdp();
    sp = &m->transactions->actions->commands->descriptors->u.media.streams->parms;
    sp->local = (struct h248_str){0};
    const char *local = strstr(enc(m, H248_STYLE_PRETTY), "Local {");
    ck_assert_ptr_nonnull(local);
    ck_assert_str_eq(local, "Local {\n\n                    }\n"
                            "                }\n"
                            "            }\n"
                            "        }\n"
                            "    }\n"
                            "}\n");
    expect_compact(m, "!/3 [127.0.0.1]:2944 T=1{C=${A=${M{ST=1{O{MO=SR,ipdc/realm=access},"
                      "L{}}}}}}");
    /* A backslash elsewhere is plain data. */
    m = add_with_sdp();
    sp = &m->transactions->actions->commands->descriptors->u.media.streams->parms;
    sp->local = str(m, "a=\\x\\");
    sp->local.len--;
    expect_compact(m, "!/3 [127.0.0.1]:2944 T=1{C=${A=${M{ST=1{O{MO=SR,ipdc/realm=access},"
                      "L{a=\\x}}}}}}");
}
END_TEST

START_TEST(test_invalid_empty_lists)
{
    struct h248_message *m = msg_local();
    expect_invalid(m); /* no transactions */

    m = msg_local();
    add_trans(m, H248_TRANS_REQUEST, 1); /* no actions */
    expect_invalid(m);

    m = msg_local();
    add_trans(m, H248_TRANS_REPLY, 1); /* neither error nor actions */
    expect_invalid(m);

    m = msg_local();
    add_trans(m, H248_TRANS_RESPONSE_ACK, 0); /* no ranges */
    expect_invalid(m);

    m = add_with_sdp();
    m->transactions->actions->commands->descriptors->u.media.streams = NULL; /* M{} */
    expect_invalid(m);

    m = add_with_sdp();
    m->transactions->actions->commands->descriptors->u.media.streams->parms =
        (struct h248_stream_parms){0}; /* ST=1{} */
    expect_invalid(m);

    m = add_with_sdp();
    struct h248_local_control *lc =
        m->transactions->actions->commands->descriptors->u.media.streams->parms.local_control;
    *lc = (struct h248_local_control){0}; /* O{} */
    expect_invalid(m);

    m = add_with_sdp();
    struct h248_media *md = &m->transactions->actions->commands->descriptors->u.media;
    md->termination_state = NEW(m, struct h248_termination_state); /* TS{} */
    expect_invalid(m);

    m = add_with_sdp();
    md = &m->transactions->actions->commands->descriptors->u.media;
    md->has_direct_parms = true; /* flag without parameters */
    expect_invalid(m);

    m = add_with_sdp();
    md = &m->transactions->actions->commands->descriptors->u.media;
    md->direct.has_local = true; /* parameters without the flag */
    expect_invalid(m);

    struct h248_command *c;
    static const enum h248_descriptor_kind empties[] = {
        H248_DESC_EVENTS,         H248_DESC_OBSERVED_EVENTS,
        H248_DESC_STATISTICS,     H248_DESC_PACKAGES,
        H248_DESC_SERVICE_CHANGE, H248_DESC_DIGIT_MAP,
        H248_DESC_MODEM,          H248_DESC_MUX,
    };
    for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        m = add_with_sdp();
        c = m->transactions->actions->commands;
        struct h248_descriptor *d = add_desc(m, c, empties[i]);
        if (empties[i] == H248_DESC_EVENTS)
            d->u.events.has_request_id = true;
        expect_invalid(m);
    }

    m = add_with_sdp();
    c = m->transactions->actions->commands;
    struct h248_signal_item *it = sigitem(m, NULL);
    it->is_list = true; /* SL=0{} */
    add_desc(m, c, H248_DESC_SIGNALS)->u.signals.items = it;
    expect_invalid(m);

    m = add_with_sdp();
    c = m->transactions->actions->commands;
    struct h248_signal_request *two = sigreq(m, "a/b");
    two->next = sigreq(m, "a/c"); /* two signals outside a list */
    add_desc(m, c, H248_DESC_SIGNALS)->u.signals.items = sigitem(m, two);
    expect_invalid(m);

    m = add_with_sdp();
    c = m->transactions->actions->commands;
    struct h248_requested_event *ev = revent(m, "a/b");
    ev->parms = evparm(m, H248_EVPARM_EMBED); /* EM{} */
    struct h248_events *evd = &add_desc(m, c, H248_DESC_EVENTS)->u.events;
    evd->has_request_id = true;
    evd->events = ev;
    expect_invalid(m);

    m = add_with_sdp();
    c = m->transactions->actions->commands;
    evd = &add_desc(m, c, H248_DESC_EVENTS)->u.events;
    evd->events = revent(m, "a/b"); /* events without a request id */
    expect_invalid(m);

    m = add_with_sdp();
    m->transactions->actions->props = NEW(m, struct h248_context_props);
    m->transactions->actions->props->has_audit = true; /* CA{} */
    expect_invalid(m);
}
END_TEST

START_TEST(test_invalid_termination_lists)
{
    struct h248_message *m = add_with_sdp();
    struct h248_command *c = m->transactions->actions->commands;
    c->terminations->next = term(m, "ip/access/2"); /* two ids without [] */
    expect_invalid(m);

    m = add_with_sdp();
    m->transactions->actions->commands->terminations = NULL;
    expect_invalid(m);

    m = add_with_sdp();
    c = m->transactions->actions->commands;
    c->term_list = true;
    c->terminations = NULL; /* [] */
    expect_invalid(m);

    m = add_with_sdp();
    m->transactions->actions->commands->terminations->text = str(m, "ip/a b");
    expect_invalid(m);
}
END_TEST

START_TEST(test_invalid_numbers_and_forms)
{
    struct h248_message *m = msg_local();
    m->version = 100;
    add_trans(m, H248_TRANS_PENDING, 1);
    expect_invalid(m);

    m = msg_local();
    m->error = error_desc(m, 10000, NULL);
    expect_invalid(m);

    m = msg_local();
    m->error = error_desc(m, 400, "say \"hi\"");
    expect_invalid(m);

    m = msg_local();
    m->error = error_desc(m, 400, NULL);
    add_trans(m, H248_TRANS_PENDING, 1); /* error and transactions */
    expect_invalid(m);

    m = add_with_sdp();
    m->transactions->kind = H248_TRANS_REPLY;
    m->transactions->error = error_desc(m, 500, NULL); /* error and actions */
    expect_invalid(m);

    m = msg_local();
    add_trans(m, H248_TRANS_REPLY, 1)->segmentation_complete = true; /* /& without /seg */
    m->transactions->error = error_desc(m, 500, NULL);
    expect_invalid(m);

    m = msg_local();
    add_trans(m, H248_TRANS_SEGMENT_REPLY, 1); /* no segment number */
    expect_invalid(m);

    m = msg_local();
    m->has_auth = true;
    m->auth_data = str(m, "0011"); /* fewer than 24 hex digits */
    add_trans(m, H248_TRANS_PENDING, 1);
    expect_invalid(m);

    m = msg_new(3, H248_MID_IPV4, "127.0.0.1]", 2944);
    add_trans(m, H248_TRANS_PENDING, 1);
    expect_invalid(m);

    m = msg_new(3, H248_MID_DOMAIN, "mg>x", -1);
    add_trans(m, H248_TRANS_PENDING, 1);
    expect_invalid(m);

    m = msg_new(3, H248_MID_DEVICE, "dev", 1);
    add_trans(m, H248_TRANS_PENDING, 1);
    expect_invalid(m);

    m = msg_new(3, H248_MID_MTP, "12", -1);
    add_trans(m, H248_TRANS_PENDING, 1);
    expect_invalid(m);

    m = add_with_sdp();
    struct h248_command *c = m->transactions->actions->commands;
    struct h248_digit_map *dm = &add_desc(m, c, H248_DESC_DIGIT_MAP)->u.digit_map;
    dm->has_value = true;
    dm->value = str(m, "xx}");
    expect_invalid(m);

    m = add_with_sdp();
    c = m->transactions->actions->commands;
    struct h248_observed_events *oe = &add_desc(m, c, H248_DESC_OBSERVED_EVENTS)->u.observed;
    oe->events = NEW(m, struct h248_observed_event);
    oe->events->name = str(m, "a/b");
    oe->events->has_timestamp = true;
    memcpy(oe->events->date, "2002121", 8); /* 7 digits */
    memcpy(oe->events->time, "10001234", 9);
    expect_invalid(m);

    m = add_with_sdp();
    c = m->transactions->actions->commands;
    oe = &add_desc(m, c, H248_DESC_OBSERVED_EVENTS)->u.observed;
    oe->events = NEW(m, struct h248_observed_event);
    oe->events->name = str(m, "a/b");
    oe->events->parms = evparm(m, H248_EVPARM_KEEP_ACTIVE); /* not an observed parameter */
    expect_invalid(m);

    m = add_with_sdp();
    c = m->transactions->actions->commands;
    struct h248_signal_request *s = sigreq(m, "a/b");
    s->notify_completion = 1u << 5;
    add_desc(m, c, H248_DESC_SIGNALS)->u.signals.items = sigitem(m, s);
    expect_invalid(m);

    m = add_with_sdp();
    c = m->transactions->actions->commands;
    struct h248_audit_item *ai = NEW(m, struct h248_audit_item);
    ai->kind = H248_AUDIT_RAW;
    ai->text = str(m, "M{ST=1");
    add_desc(m, c, H248_DESC_AUDIT)->u.audit.items = ai;
    expect_invalid(m);

    m = add_with_sdp();
    add_desc(m, m->transactions->actions->commands, H248_DESC_TOKEN)->u.token = H248_TOK_COUNT;
    expect_invalid(m);

    m = add_with_sdp();
    add_desc(m, m->transactions->actions->commands, H248_DESC_MODEM)->u.raw.text =
        str(m, "V18"); /* must start with = or [ */
    expect_invalid(m);

    m = add_with_sdp();
    struct h248_package *pk = NEW(m, struct h248_package);
    pk->name = str(m, "ip-dc");
    add_desc(m, m->transactions->actions->commands, H248_DESC_PACKAGES)->u.packages = pk;
    expect_invalid(m);

    m = add_with_sdp();
    m->transactions->actions->commands->kind = (enum h248_command_kind)99;
    expect_invalid(m);

    ck_assert_int_eq(h248_encode_message(NULL, H248_STYLE_COMPACT, out, sizeof(out), NULL),
                     -EINVAL);
}
END_TEST

/* ---- equality ---- */

/* A message touching most of the model; built twice, the copies must compare equal. */
static struct h248_message *rich(void)
{
    struct h248_message *m = add_with_sdp();
    m->has_auth = true;
    m->auth_spi = 1;
    m->auth_seq = 2;
    m->auth_data = str(m, "000102030405060708090a0b");
    struct h248_action *a = m->transactions->actions;
    a->props = NEW(m, struct h248_context_props);
    a->props->has_priority = true;
    a->props->priority = 3;
    struct h248_topology_triple *tp = NEW(m, struct h248_topology_triple);
    tp->from = str(m, "a");
    tp->to = str(m, "b");
    a->props->topology = tp;
    struct h248_command *c = add_cmd(m, a, H248_CMD_MODIFY, "ip/core/1");
    struct h248_events *ev = &add_desc(m, c, H248_DESC_EVENTS)->u.events;
    ev->has_request_id = true;
    ev->request_id = 9;
    ev->events = revent(m, "tls/fail");
    ev->events->parms = evparm(m, H248_EVPARM_STREAM);
    ev->events->parms->stream = 1;
    struct h248_signal_request *s = sigreq(m, "tls/est");
    s->has_duration = true;
    s->duration = 50;
    add_desc(m, c, H248_DESC_SIGNALS)->u.signals.items = sigitem(m, s);
    struct h248_transaction *t = add_trans(m, H248_TRANS_REPLY, 2);
    t->error = error_desc(m, 500, "x");
    t = add_trans(m, H248_TRANS_RESPONSE_ACK, 0);
    t->acks = NEW(m, struct h248_ack_range);
    t->acks->first = 1;
    t->acks->last = 4;
    return m;
}

static struct h248_command *rich_add(struct h248_message *m)
{
    return m->transactions->actions->commands;
}

static struct h248_stream *rich_stream(struct h248_message *m)
{
    return rich_add(m)->descriptors->u.media.streams;
}

static struct h248_command *rich_modify(struct h248_message *m)
{
    return rich_add(m)->next;
}

static void mut_version(struct h248_message *m)
{
    m->version = 2;
}
static void mut_mid_kind(struct h248_message *m)
{
    m->mid.kind = H248_MID_IPV6;
}
static void mut_mid_text(struct h248_message *m)
{
    m->mid.text = str(m, "127.0.0.2");
}
static void mut_mid_port(struct h248_message *m)
{
    m->mid.port = 2945;
}
static void mut_auth_seq(struct h248_message *m)
{
    m->auth_seq = 3;
}
static void mut_auth_data(struct h248_message *m)
{
    m->auth_data = str(m, "000102030405060708090a0c");
}
static void mut_trans_id(struct h248_message *m)
{
    m->transactions->id = 77;
}
static void mut_trans_kind(struct h248_message *m)
{
    m->transactions->kind = H248_TRANS_REPLY;
}
static void mut_imm_ack(struct h248_message *m)
{
    m->transactions->next->imm_ack_required = true;
}
static void mut_context(struct h248_message *m)
{
    m->transactions->actions->context.kind = H248_CTX_ALL;
}
static void mut_priority(struct h248_message *m)
{
    m->transactions->actions->props->priority = 4;
}
static void mut_topology(struct h248_message *m)
{
    m->transactions->actions->props->topology->direction = H248_TOPO_ONEWAY;
}
static void mut_command_kind(struct h248_message *m)
{
    rich_add(m)->kind = H248_CMD_MOVE;
}
static void mut_optional(struct h248_message *m)
{
    rich_add(m)->optional = true;
}
static void mut_term_id(struct h248_message *m)
{
    rich_add(m)->terminations->text = str(m, "%");
}
static void mut_extra_term(struct h248_message *m)
{
    rich_add(m)->terminations->next = term(m, "x");
}
static void mut_stream_id(struct h248_message *m)
{
    rich_stream(m)->id = 2;
}
static void mut_mode(struct h248_message *m)
{
    rich_stream(m)->parms.local_control->mode = H248_MODE_SEND_ONLY;
}
static void mut_prop_value(struct h248_message *m)
{
    rich_stream(m)->parms.local_control->properties->value.values->text = str(m, "core");
}
static void mut_prop_quoted(struct h248_message *m)
{
    rich_stream(m)->parms.local_control->properties->value.values->quoted = true;
}
static void mut_prop_relation(struct h248_message *m)
{
    rich_stream(m)->parms.local_control->properties->value.relation = H248_REL_NOT_EQUAL;
}
static void mut_local_sdp(struct h248_message *m)
{
    /* One byte shorter: the same prefix must not compare equal. */
    rich_stream(m)->parms.local.len--;
}
static void mut_has_remote(struct h248_message *m)
{
    rich_stream(m)->parms.has_remote = true;
}
static void mut_request_id(struct h248_message *m)
{
    rich_modify(m)->descriptors->u.events.request_id = 10;
}
static void mut_event_stream(struct h248_message *m)
{
    rich_modify(m)->descriptors->u.events.events->parms->stream = 2;
}
static void mut_event_parm_kind(struct h248_message *m)
{
    rich_modify(m)->descriptors->u.events.events->parms->kind = H248_EVPARM_KEEP_ACTIVE;
}
static void mut_signal_duration(struct h248_message *m)
{
    rich_modify(m)->descriptors->next->u.signals.items->signals->duration = 51;
}
static void mut_descriptor_kind(struct h248_message *m)
{
    rich_modify(m)->descriptors->next->kind = H248_DESC_EVENT_BUFFER;
}
static void mut_error_code(struct h248_message *m)
{
    m->transactions->next->error->code = 501;
}
static void mut_error_text(struct h248_message *m)
{
    m->transactions->next->error->has_text = false;
}
static void mut_ack_last(struct h248_message *m)
{
    m->transactions->next->next->acks->last = 5;
}
static void mut_drop_transaction(struct h248_message *m)
{
    m->transactions->next->next = NULL;
}

static void (*const mutations[])(struct h248_message *) = {
    mut_version,         mut_mid_kind,         mut_mid_text,
    mut_mid_port,        mut_auth_seq,         mut_auth_data,
    mut_trans_id,        mut_trans_kind,       mut_imm_ack,
    mut_context,         mut_priority,         mut_topology,
    mut_command_kind,    mut_optional,         mut_term_id,
    mut_extra_term,      mut_stream_id,        mut_mode,
    mut_prop_value,      mut_prop_quoted,      mut_prop_relation,
    mut_local_sdp,       mut_has_remote,       mut_request_id,
    mut_event_stream,    mut_event_parm_kind,  mut_signal_duration,
    mut_descriptor_kind, mut_error_code,       mut_error_text,
    mut_ack_last,        mut_drop_transaction,
};

START_TEST(test_equal_copies)
{
    struct h248_message *a = rich(), *b = rich();
    ck_assert(h248_message_equal(a, b));
    ck_assert(h248_message_equal(b, a));
    ck_assert(h248_message_equal(a, a));
    ck_assert(h248_message_equal(NULL, NULL));
    ck_assert(!h248_message_equal(a, NULL));
    ck_assert(!h248_message_equal(NULL, b));
    /* Both encode to the same bytes, too. */
    char ea[2048], eb[2048];
    size_t la, lb;
    ck_assert_int_eq(h248_encode_message(a, H248_STYLE_COMPACT, ea, sizeof(ea), &la), 0);
    ck_assert_int_eq(h248_encode_message(b, H248_STYLE_COMPACT, eb, sizeof(eb), &lb), 0);
    ck_assert_uint_eq(la, lb);
    ck_assert_mem_eq(ea, eb, la);
    h248_message_free(a);
    h248_message_free(b);
}
END_TEST

START_TEST(test_equal_single_field_changes)
{
    struct h248_message *a = rich();
    struct h248_message *b = rich();
    mutations[_i](b);
    ck_assert_msg(!h248_message_equal(a, b), "mutation %d not detected", _i);
    ck_assert_msg(!h248_message_equal(b, a), "mutation %d not detected (reversed)", _i);
    h248_message_free(a);
    h248_message_free(b);
}
END_TEST

START_TEST(test_equal_ignores_meaningless_fields)
{
    struct h248_message *a = rich(), *b = rich();
    /* A port behind a false flag, a transaction id of an ack, a context id of "$", and the
     * stream number of a KeepActive parameter are not part of the message. */
    a->mid.has_port = b->mid.has_port = false;
    b->mid.port = 1;
    b->transactions->next->next->id = 99;
    b->transactions->actions->context.id = 5;
    rich_modify(a)->descriptors->u.events.events->parms->kind = H248_EVPARM_KEEP_ACTIVE;
    rich_modify(b)->descriptors->u.events.events->parms->kind = H248_EVPARM_KEEP_ACTIVE;
    rich_modify(b)->descriptors->u.events.events->parms->stream = 7;
    ck_assert(h248_message_equal(a, b));
    /* No context properties and empty ones encode alike. */
    a->transactions->actions->props = NULL;
    b->transactions->actions->props = NEW(b, struct h248_context_props);
    ck_assert(h248_message_equal(a, b));
    h248_message_free(a);
    h248_message_free(b);
}
END_TEST

START_TEST(test_str_copy)
{
    struct h248_message *m = h248_message_new();
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(m->arena);
    ck_assert_ptr_null(m->transactions);
    struct h248_str s;
    ck_assert_int_eq(h248_str_copy(m, &s, "", 0), 0);
    ck_assert_ptr_nonnull(s.ptr);
    ck_assert_uint_eq(s.len, 0);
    ck_assert_int_eq(h248_str_copy(m, &s, NULL, 0), 0);
    ck_assert_int_eq(h248_str_copy(m, &s, NULL, 3), -EINVAL);
    char src[] = "abc";
    ck_assert_int_eq(h248_str_copy(m, &s, src, 3), 0);
    src[0] = 'x'; /* a copy, not a borrow */
    ck_assert_mem_eq(s.ptr, "abc", 3);
    unsigned char *z = h248_alloc(m, 100000); /* larger than a chunk, and zeroed */
    ck_assert_ptr_nonnull(z);
    for (size_t i = 0; i < 100000; i++)
        ck_assert_int_eq(z[i], 0);
    h248_message_free(m);
    h248_message_free(NULL);
}
END_TEST

static Suite *encode_suite(void)
{
    Suite *s = suite_create("h248_encode");
    TCase *tc = tcase_create("compact");
    tcase_add_test(tc, test_service_change_registration);
    tcase_add_test(tc, test_service_change_all_parameters);
    tcase_add_test(tc, test_add_with_sdp);
    tcase_add_test(tc, test_reply_imm_ack_and_errors);
    tcase_add_test(tc, test_pending);
    tcase_add_test(tc, test_response_ack_ranges);
    tcase_add_test(tc, test_segment_reply);
    tcase_add_test(tc, test_notify_observed_event);
    tcase_add_test(tc, test_subtract_reply_statistics);
    tcase_add_test(tc, test_events_with_embed);
    tcase_add_test(tc, test_signals_with_list);
    tcase_add_test(tc, test_topology_and_context_props);
    tcase_add_test(tc, test_mid_forms);
    tcase_add_test(tc, test_auth_header);
    tcase_add_test(tc, test_message_error);
    tcase_add_test(tc, test_command_forms);
    tcase_add_test(tc, test_media_termination_state_and_values);
    suite_add_tcase(s, tc);

    tc = tcase_create("pretty");
    tcase_add_test(tc, test_add_pretty);
    tcase_add_test(tc, test_pretty_reply_flat_lists);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_enospc_every_cap);
    tcase_add_test(tc, test_invalid_values);
    tcase_add_test(tc, test_invalid_octet_strings);
    tcase_add_test(tc, test_invalid_empty_lists);
    tcase_add_test(tc, test_invalid_termination_lists);
    tcase_add_test(tc, test_invalid_numbers_and_forms);
    suite_add_tcase(s, tc);

    tc = tcase_create("equal");
    tcase_add_test(tc, test_equal_copies);
    tcase_add_loop_test(tc, test_equal_single_field_changes, 0,
                        (int)(sizeof(mutations) / sizeof(mutations[0])));
    tcase_add_test(tc, test_equal_ignores_meaningless_fields);
    tcase_add_test(tc, test_str_copy);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(encode_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
