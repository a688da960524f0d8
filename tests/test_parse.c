/* Check suite: the H.248 text parser (tokens, header, transactions, descriptors, error codes). */
#include "h248.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static struct h248_message *parse_ok(const char *text)
{
    struct h248_message *msg = NULL;
    struct h248_parse_error err;
    int r = h248_parse_message(text, strlen(text), NULL, &msg, &err);
    ck_assert_msg(r == 0, "parse failed (%u: %s) for: %s", err.code, err.text, text);
    return msg;
}

static struct h248_parse_error parse_fail(const char *text)
{
    struct h248_message *msg = NULL;
    struct h248_parse_error err;
    int r = h248_parse_message(text, strlen(text), NULL, &msg, &err);
    ck_assert_msg(r < 0, "parse unexpectedly succeeded for: %s", text);
    ck_assert_ptr_null(msg);
    ck_assert_msg(err.text[0] != '\0', "error without text");
    return err;
}

static bool str_is(struct h248_str s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

#define ASSERT_STR(s, lit)                                                                         \
    ck_assert_msg(str_is((s), (lit)), "got '%.*s', want '%s'", (int)(s).len, (s).ptr, (lit))

START_TEST(header_mid_forms)
{
    struct h248_message *m = parse_ok("MEGACO/1 [124.124.124.222]:55555 T=1{C=-{S=ROOT}}");
    ck_assert_uint_eq(m->version, 1);
    ck_assert_int_eq(m->mid.kind, H248_MID_IPV4);
    ASSERT_STR(m->mid.text, "124.124.124.222");
    ck_assert(m->mid.has_port);
    ck_assert_uint_eq(m->mid.port, 55555);
    h248_message_free(m);

    m = parse_ok("!/3 [2001:db8::1]:2944 T=1{C=-{S=ROOT}}");
    ck_assert_uint_eq(m->version, 3);
    ck_assert_int_eq(m->mid.kind, H248_MID_IPV6);
    ASSERT_STR(m->mid.text, "2001:db8::1");
    ck_assert_uint_eq(m->mid.port, 2944);
    h248_message_free(m);

    m = parse_ok("megaco/2 <mg1.example.net>:2944\nT=1{C=-{S=ROOT}}");
    ck_assert_int_eq(m->mid.kind, H248_MID_DOMAIN);
    ASSERT_STR(m->mid.text, "mg1.example.net");
    h248_message_free(m);

    m = parse_ok("!/1 <mg1>\tT=1{C=-{S=ROOT}}");
    ck_assert_int_eq(m->mid.kind, H248_MID_DOMAIN);
    ck_assert(!m->mid.has_port);
    h248_message_free(m);

    m = parse_ok("!/1 gateway/unit7 T=1{C=-{S=ROOT}}");
    ck_assert_int_eq(m->mid.kind, H248_MID_DEVICE);
    ASSERT_STR(m->mid.text, "gateway/unit7");
    h248_message_free(m);

    m = parse_ok("!/1 MTP{0a1B} T=1{C=-{S=ROOT}}");
    ck_assert_int_eq(m->mid.kind, H248_MID_MTP);
    ASSERT_STR(m->mid.text, "0a1B");
    h248_message_free(m);
}
END_TEST

START_TEST(header_errors_are_400)
{
    const char *bad[] = {
        "",
        "   \r\n ; only a comment\n",
        "MEGACO/1",
        "MEGACO/ [1.2.3.4]:1 T=1{C=-{S=ROOT}}",
        "MEGACO/1[1.2.3.4]:1 T=1{C=-{S=ROOT}}",
        "MEGACO/1 [1.2.3.400]:1 T=1{C=-{S=ROOT}}",
        "MEGACO/1 [1.2.3.4]:65536 T=1{C=-{S=ROOT}}",
        "MEGACO/1 [1.2.3.4]:1T=1{C=-{S=ROOT}}",
        "MEGACO/1 [::g]:1 T=1{C=-{S=ROOT}}",
        "MEGACO/1 <-bad>:1 T=1{C=-{S=ROOT}}",
        "MEGACO/123 [1.2.3.4]:1 T=1{C=-{S=ROOT}}",
        "MEGACX/1 [1.2.3.4]:1 T=1{C=-{S=ROOT}}",
        "MEGACO/1 [1.2.3.4]:1 ",
        "MEGACO/1 [1.2.3.4]:1 Foo=1{}",
        "MEGACO/1 [1.2.3.4]:1 T=1{C=-{S=ROOT}} trailing",
        "MEGACO/1 [1.2.3.4]:1 ER=400{\"x\"} T=1{C=-{S=ROOT}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct h248_parse_error err = parse_fail(bad[i]);
        ck_assert_msg(err.code == 400, "case %zu: code %u (%s)", i, err.code, err.text);
    }
}
END_TEST

START_TEST(tokens_long_short_any_case)
{
    struct h248_message *a =
        parse_ok("MEGACO/1 [1.2.3.4]:2944 Transaction = 7 { Context = 5 { Modify = t1 { Media { "
                 "Stream = 1 { LocalControl { Mode = SendReceive } } } } } }");
    struct h248_message *b = parse_ok("!/1 [1.2.3.4]:2944 T=7{C=5{MF=t1{M{ST=1{O{MO=SR}}}}}}");
    struct h248_message *c =
        parse_ok("!/1 [1.2.3.4]:2944 t=7{c=5{mf=t1{m{st=1{o{mo=sendreceive}}}}}}");
    ck_assert(h248_message_equal(a, b));
    ck_assert(h248_message_equal(a, c));
    struct h248_command *cmd = a->transactions->actions->commands;
    ck_assert_int_eq(cmd->kind, H248_CMD_MODIFY);
    ck_assert_int_eq(cmd->descriptors->kind, H248_DESC_MEDIA);
    ck_assert_int_eq(cmd->descriptors->u.media.streams->parms.local_control->mode,
                     H248_MODE_SEND_RECV);
    h248_message_free(a);
    h248_message_free(b);
    h248_message_free(c);
}
END_TEST

START_TEST(comments_and_whitespace)
{
    struct h248_message *m =
        parse_ok("; leading comment\r\n"
                 "MEGACO/1 ; after version\r\n"
                 "[1.2.3.4]:2944 ; after mid\r\n"
                 "T\t=\t1 ; c\n{ ; c\n C = - { ; c\n S = ROOT ; c\n } ; c\n }\n");
    ck_assert_int_eq(m->transactions->kind, H248_TRANS_REQUEST);
    ck_assert_uint_eq(m->transactions->id, 1);
    h248_message_free(m);
}
END_TEST

START_TEST(context_ids_and_properties)
{
    struct h248_message *m =
        parse_ok("!/3 [1.2.3.4]:2944 T=9{C=${PR=3,EG,IEPS=ON,TP{t1,t2,isolate,ST=1,t2,t3,OW},"
                 "CT{ipdc/realm=access},A=$},C=*{CA{TP,PR,EG,nt/dur}},C=-{AV=ROOT{AT{}}},"
                 "C=4294967295{S=*}}");
    struct h248_action *a = m->transactions->actions;
    ck_assert_int_eq(a->context.kind, H248_CTX_CHOOSE);
    ck_assert(a->props->has_priority);
    ck_assert_uint_eq(a->props->priority, 3);
    ck_assert(a->props->emergency);
    ck_assert(a->props->has_ieps && a->props->ieps);
    struct h248_topology_triple *t = a->props->topology;
    ASSERT_STR(t->from, "t1");
    ASSERT_STR(t->to, "t2");
    ck_assert_int_eq(t->direction, H248_TOPO_ISOLATE);
    ck_assert(t->has_stream);
    ck_assert_uint_eq(t->stream, 1);
    ck_assert_int_eq(t->next->direction, H248_TOPO_ONEWAY);
    ck_assert(!t->next->has_stream);
    ASSERT_STR(a->props->attributes->name, "ipdc/realm");
    a = a->next;
    ck_assert_int_eq(a->context.kind, H248_CTX_ALL);
    ck_assert(a->props->has_audit);
    ck_assert_int_eq(a->props->audit->kind, H248_AUDIT_TOKEN);
    a = a->next;
    ck_assert_int_eq(a->context.kind, H248_CTX_NULL);
    a = a->next;
    ck_assert_int_eq(a->context.kind, H248_CTX_ID);
    ck_assert_uint_eq(a->context.id, 4294967295u);
    h248_message_free(m);
}
END_TEST

START_TEST(command_prefixes_and_term_lists)
{
    struct h248_message *m =
        parse_ok("!/3 [1.2.3.4]:2944 T=1{C=1{O-MF=t1{E=1{al/on}},W-S=*,O-W-S=[t1,t2]{AT{}}}}");
    struct h248_command *c = m->transactions->actions->commands;
    ck_assert(c->optional && !c->wildcard_reply);
    ck_assert_int_eq(c->kind, H248_CMD_MODIFY);
    c = c->next;
    ck_assert(!c->optional && c->wildcard_reply);
    ck_assert_int_eq(c->kind, H248_CMD_SUBTRACT);
    ASSERT_STR(c->terminations->text, "*");
    c = c->next;
    ck_assert(c->optional && c->wildcard_reply && c->term_list);
    ASSERT_STR(c->terminations->text, "t1");
    ASSERT_STR(c->terminations->next->text, "t2");
    h248_message_free(m);
}
END_TEST

START_TEST(replies_pending_acks)
{
    struct h248_message *m =
        parse_ok("!/3 [1.2.3.4]:2944 P=5{IA,C=1{A=ip/access/1{M{ST=1{L{v=0\nc=IN IP4 1.2.3.4\n}}}},"
                 "ER=430{\"no such termination\"}}} PN=6{} K{1,3-5,7} P=8/2/END{C=-{N=ROOT}} "
                 "P=9{ER=501{\"command unsupported\"}}");
    struct h248_transaction *t = m->transactions;
    ck_assert_int_eq(t->kind, H248_TRANS_REPLY);
    ck_assert(t->imm_ack_required);
    ck_assert_uint_eq(t->actions->error->code, 430);
    ASSERT_STR(t->actions->error->text, "no such termination");
    ASSERT_STR(t->actions->commands->descriptors->u.media.streams->parms.local,
               "v=0\nc=IN IP4 1.2.3.4");
    t = t->next;
    ck_assert_int_eq(t->kind, H248_TRANS_PENDING);
    ck_assert_uint_eq(t->id, 6);
    t = t->next;
    ck_assert_int_eq(t->kind, H248_TRANS_RESPONSE_ACK);
    ck_assert_uint_eq(t->acks->first, 1);
    ck_assert_uint_eq(t->acks->next->first, 3);
    ck_assert_uint_eq(t->acks->next->last, 5);
    ck_assert_uint_eq(t->acks->next->next->last, 7);
    t = t->next;
    ck_assert(t->has_segment && t->segmentation_complete);
    ck_assert_uint_eq(t->segment_number, 2);
    t = t->next;
    ck_assert_uint_eq(t->error->code, 501);
    h248_message_free(m);
}
END_TEST

START_TEST(octet_string_escapes)
{
    struct h248_message *m = parse_ok("!/3 [1.2.3.4]:2944 T=1{C=${A=${M{L{\r\n  v=0\r\n"
                                      "a=x-brace:\\}a\\\\}b\r\n}}}}}");
    struct h248_stream_parms *sp = &m->transactions->actions->commands->descriptors->u.media.direct;
    ck_assert(sp->has_local);
    ASSERT_STR(sp->local, "v=0\r\na=x-brace:}a\\}b");
    h248_message_free(m);
}
END_TEST

START_TEST(events_signals_observed)
{
    struct h248_message *m =
        parse_ok("!/3 [1.2.3.4]:2944 T=1{C=1{MF=t1{E=22{al/on{strict=state,ST=2,KA,"
                 "EM{SG{cg/rt},E=23{dd/ce{DM=dialplan0}}}},dd/ce{DM={(0|1x.)}},tls/fail{NBRN}},"
                 "SG{cg/dt{SY=TO,DR=100,NC={TO,IBE},ST=1,SPARQ=4,x=y},SL=3{a/b,c/d}},"
                 "DM=dialplan0{(0|00|[1-7]xxx|8xxxxxxx)}}},"
                 "C=2{N=t2{OE=22{20021217T10001234:al/of{init=false},dd/"
                 "ce{ds=\"916135551212\",Meth=UM}}}}}");
    struct h248_descriptor *d = m->transactions->actions->commands->descriptors;
    ck_assert_int_eq(d->kind, H248_DESC_EVENTS);
    ck_assert_uint_eq(d->u.events.request_id, 22);
    struct h248_requested_event *ev = d->u.events.events;
    ASSERT_STR(ev->name, "al/on");
    struct h248_event_parm *p = ev->parms;
    ck_assert_int_eq(p->kind, H248_EVPARM_OTHER);
    ASSERT_STR(p->other.name, "strict");
    ASSERT_STR(p->other.value.values->text, "state");
    ck_assert_int_eq(p->next->kind, H248_EVPARM_STREAM);
    ck_assert_int_eq(p->next->next->kind, H248_EVPARM_KEEP_ACTIVE);
    struct h248_event_parm *embed = p->next->next->next;
    ck_assert_int_eq(embed->kind, H248_EVPARM_EMBED);
    ASSERT_STR(embed->embed_signals->items->signals->name, "cg/rt");
    ck_assert_uint_eq(embed->embed_events->request_id, 23);
    ck_assert_int_eq(ev->next->parms->kind, H248_EVPARM_DIGIT_MAP);
    ck_assert(ev->next->parms->digit_map_is_value);
    ASSERT_STR(ev->next->parms->digit_map, "(0|1x.)");
    ck_assert_int_eq(ev->next->next->parms->kind, H248_EVPARM_NOTIFY_REGULATED);

    d = d->next;
    ck_assert_int_eq(d->kind, H248_DESC_SIGNALS);
    struct h248_signal_request *sr = d->u.signals.items->signals;
    ck_assert_int_eq(sr->type, H248_SIGTYPE_TIMEOUT);
    ck_assert_uint_eq(sr->duration, 100);
    ck_assert_uint_eq(sr->notify_completion, H248_NC_TIMEOUT | H248_NC_INTERRUPTED_BY_EVENT);
    ck_assert(sr->has_request_id);
    ASSERT_STR(sr->others->name, "x");
    ck_assert(d->u.signals.items->next->is_list);
    ck_assert_uint_eq(d->u.signals.items->next->list_id, 3);
    d = d->next;
    ck_assert_int_eq(d->kind, H248_DESC_DIGIT_MAP);
    ASSERT_STR(d->u.digit_map.name, "dialplan0");
    ASSERT_STR(d->u.digit_map.value, "(0|00|[1-7]xxx|8xxxxxxx)");

    struct h248_observed_event *oe =
        m->transactions->actions->next->commands->descriptors->u.observed.events;
    ck_assert(oe->has_timestamp);
    ck_assert_str_eq(oe->date, "20021217");
    ck_assert_str_eq(oe->time, "10001234");
    ASSERT_STR(oe->name, "al/of");
    ck_assert(oe->next->parms->other.value.values->quoted);
    h248_message_free(m);
}
END_TEST

START_TEST(parm_values_shapes)
{
    struct h248_message *m = parse_ok("!/3 [1.2.3.4]:2944 T=1{C=1{MF=t1{M{O{a/b=[1,2,3],"
                                      "a/c={x,y},a/d=[1:9],a/e>5,a/f<6,a/g#7,a/h=\"q v\"}}}}}");
    struct h248_property *p =
        m->transactions->actions->commands->descriptors->u.media.direct.local_control->properties;
    ck_assert_int_eq(p->value.shape, H248_SHAPE_SUBLIST);
    ASSERT_STR(p->value.values->next->next->text, "3");
    p = p->next;
    ck_assert_int_eq(p->value.shape, H248_SHAPE_ALTERNATIVES);
    p = p->next;
    ck_assert_int_eq(p->value.shape, H248_SHAPE_RANGE);
    ASSERT_STR(p->value.values->next->text, "9");
    p = p->next;
    ck_assert_int_eq(p->value.relation, H248_REL_GREATER);
    p = p->next;
    ck_assert_int_eq(p->value.relation, H248_REL_LESS);
    p = p->next;
    ck_assert_int_eq(p->value.relation, H248_REL_NOT_EQUAL);
    p = p->next;
    ck_assert(p->value.values->quoted);
    ASSERT_STR(p->value.values->text, "q v");
    h248_message_free(m);
}
END_TEST

START_TEST(service_change_params)
{
    struct h248_message *m =
        parse_ok("!/3 [1.2.3.4]:2944 T=1{C=-{SC=ROOT{SV{MT=RS,RE=\"901 Cold Boot\",DL=10,"
                 "AD=[1.2.3.4]:2945,PF=ResGW/1,V=3,20021217T10001234,X-abc=1}}}}"
                 " P=2{C=-{SC=ROOT{SV{MG=<mgc2>:2944,V=2}}}}");
    struct h248_service_change *sc =
        &m->transactions->actions->commands->descriptors->u.service_change;
    ck_assert_int_eq(sc->method, H248_SC_RESTART);
    ASSERT_STR(sc->reason.text, "901 Cold Boot");
    ck_assert_uint_eq(sc->delay, 10);
    ck_assert_uint_eq(sc->address.port, 2945);
    ASSERT_STR(sc->profile_name, "ResGW");
    ck_assert_uint_eq(sc->profile_version, 1);
    ck_assert_uint_eq(sc->version, 3);
    ck_assert(sc->has_timestamp);
    ASSERT_STR(sc->extensions->name, "X-abc");
    sc = &m->transactions->next->actions->commands->descriptors->u.service_change;
    ck_assert(sc->has_mgc_id);
    ASSERT_STR(sc->mgc_id.text, "mgc2");
    ck_assert_uint_eq(sc->version, 2);
    h248_message_free(m);
}
END_TEST

START_TEST(error_classes)
{
    struct {
        const char *text;
        unsigned code;
        bool has_tid;
        uint32_t tid;
    } cases[] = {
        {"!/3 [1.2.3.4]:2944 T=x{C=1{S=t}}", 403, false, 0},
        {"!/3 [1.2.3.4]:2944 T=12{C=1{S=t}", 403, true, 12},
        {"!/3 [1.2.3.4]:2944 T=12{X=1{S=t}}", 403, true, 12},
        {"!/3 [1.2.3.4]:2944 T=4294967296{C=1{S=t}}", 403, false, 0},
        {"!/3 [1.2.3.4]:2944 T=12{C=99999999999{S=t}}", 422, true, 12},
        {"!/3 [1.2.3.4]:2944 T=12{C=1{Q=t}}", 442, true, 12},
        {"!/3 [1.2.3.4]:2944 T=12{C=1{A=t{M{ST=1{O{MO=Bogus}}}}}}", 442, true, 12},
        {"!/3 [1.2.3.4]:2944 T=12{C=1{A=t{M{L{v=0", 442, true, 12},
        {"!/3 [1.2.3.4]:2944 T=12{C=1{S=t{M{L{v=0}}}}}", 442, true, 12},
        {"!/3 [1.2.3.4]:2944 T=12{C=1{A=t{M{O{MO=SR},O{MO=SR}}}}}", 442, true, 12},
        {"!/3 [1.2.3.4]:2944 T=12{C=1{AV=t}}", 442, true, 12},
        {"!/3 [1.2.3.4]:2944 T=12{C=1{N=t{E=1{a/b}}}}", 442, true, 12},
        {"!/3 [1.2.3.4]:2944 T=12{C=1{A=1bad}}", 442, true, 12},
        {"!/3 [1.2.3.4]:2944 T=12{C=1{A=t}} T=13{C=1{A=t{E=1{bad}}}}", 442, true, 13},
        {"!/3 [1.2.3.4]:2944 P=5{ER=12345{}}", 403, true, 5},
        {"!/3 [1.2.3.4]:2944 T=12{C=1{A=t{SG{x/y{SY=ON}}}}}", 442, true, 12},
        {"!/3 [1.2.3.4]:2944 T=12{C=1{A=t{M{O{mo=sr,a/b=\"x\ny\"}}}}}", 442, true, 12},
        {"!/3 [1.2.3.4]:2944 T=12{C=1{A=t,PR=1}}", 422, true, 12},
        {"!/3 [1.2.3.4]:2944 T=12{C=1{SC=ROOT{SV{RE=901}}}}", 442, true, 12},
        {"!/3 [1.2.3.4]:2944 T=12{C=1{A=t{MX Audit{x}}}}", 442, true, 12},
        {"!/3 [1.2.3.4]:2944 T=12{C=1{S=t{AT{M{ST=1]}}}}}", 442, true, 12},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct h248_parse_error err = parse_fail(cases[i].text);
        ck_assert_msg(err.code == cases[i].code, "case %zu: code %u, want %u (%s)", i, err.code,
                      cases[i].code, err.text);
        ck_assert_msg(err.has_transaction_id == cases[i].has_tid, "case %zu: has_tid", i);
        if (cases[i].has_tid)
            ck_assert_uint_eq(err.transaction_id, cases[i].tid);
        ck_assert_ptr_null(strchr(err.text, '"'));
    }
}
END_TEST

START_TEST(error_text_names_position_and_token)
{
    struct h248_parse_error err = parse_fail("!/3 [1.2.3.4]:2944\nT=12{C=1{Q=t}}");
    ck_assert_uint_eq(err.offset, 28);
    ck_assert_msg(strstr(err.text, "line 2") != NULL, "%s", err.text);
    ck_assert_msg(strstr(err.text, "'Q") != NULL, "%s", err.text);
}
END_TEST

START_TEST(limits_are_enforced)
{
    struct h248_limits lim = h248_default_limits;
    lim.max_transactions = 2;
    struct h248_message *m = NULL;
    struct h248_parse_error err;
    const char *three = "!/3 [1.2.3.4]:2944 T=1{C=-{S=a}} T=2{C=-{S=a}} T=3{C=-{S=a}}";
    ck_assert_int_lt(h248_parse_message(three, strlen(three), &lim, &m, &err), 0);
    ck_assert_uint_eq(err.code, 413);
    lim = h248_default_limits;
    lim.max_message_len = 10;
    ck_assert_int_lt(h248_parse_message(three, strlen(three), &lim, &m, &err), 0);
    lim = h248_default_limits;
    lim.max_depth = 4;
    const char *deep = "!/3 [1.2.3.4]:2944 T=1{C=1{A=t{M{ST=1{O{MO=SR}}}}}}";
    ck_assert_int_lt(h248_parse_message(deep, strlen(deep), &lim, &m, &err), 0);
    ck_assert_uint_eq(err.code, 442);
    lim = h248_default_limits;
    lim.max_terminations = 2;
    const char *terms = "!/3 [1.2.3.4]:2944 T=1{C=1{S=[a,b,c]}}";
    ck_assert_int_lt(h248_parse_message(terms, strlen(terms), &lim, &m, &err), 0);
    ck_assert_ptr_null(m);
}
END_TEST

START_TEST(input_is_not_nul_terminated)
{
    const char text[] = "!/3 [1.2.3.4]:2944 T=1{C=-{S=a}}XXXX";
    size_t len = strlen(text) - 4;
    char *copy = malloc(len);
    memcpy(copy, text, len);
    struct h248_message *m = NULL;
    struct h248_parse_error err;
    ck_assert_int_eq(h248_parse_message(copy, len, NULL, &m, &err), 0);
    free(copy);
    ck_assert_uint_eq(m->transactions->id, 1);
    h248_message_free(m);
}
END_TEST

static Suite *parse_suite(void)
{
    Suite *s = suite_create("parse");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, header_mid_forms);
    tcase_add_test(tc, header_errors_are_400);
    tcase_add_test(tc, tokens_long_short_any_case);
    tcase_add_test(tc, comments_and_whitespace);
    tcase_add_test(tc, context_ids_and_properties);
    tcase_add_test(tc, command_prefixes_and_term_lists);
    tcase_add_test(tc, replies_pending_acks);
    tcase_add_test(tc, octet_string_escapes);
    tcase_add_test(tc, events_signals_observed);
    tcase_add_test(tc, parm_values_shapes);
    tcase_add_test(tc, service_change_params);
    tcase_add_test(tc, error_classes);
    tcase_add_test(tc, error_text_names_position_and_token);
    tcase_add_test(tc, limits_are_enforced);
    tcase_add_test(tc, input_is_not_nul_terminated);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(parse_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
