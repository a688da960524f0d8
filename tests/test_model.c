/* Check suite: H.248 command execution against the context/termination model (no sockets to
 * the MGC; realms bind real loopback ports). */
#include "agw/agw.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct agw_config cfg;
static struct agw_realm realms[2];
static struct agw_model model;
static struct agw_root_state root;
static uint64_t clock_ms = 1000;

static void setup(void)
{
    agw_config_init_defaults(&cfg);
    /* Small, test-private port ranges on loopback. */
    cfg.realms[0].ports.low = 3900;
    cfg.realms[0].ports.high = 3903;
    cfg.realms[1].ports.low = 3910;
    cfg.realms[1].ports.high = 3919;
    char err[256];
    for (unsigned i = 0; i < 2; i++)
        ck_assert_msg(agw_realm_init(&realms[i], &cfg.realms[i], err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(agw_model_init(&model, realms, 2, 0, 4, 2, 1), 0);
    memset(&root, 0, sizeof(root));
}

static void teardown(void)
{
    agw_model_fini(&model);
    for (unsigned i = 0; i < 2; i++)
        agw_realm_fini(&realms[i]);
}

/* Runs the ops as a worker would (closing released sockets), then finishes the exec. */
static void run_ops(struct agw_exec *x)
{
    for (size_t i = 0; i < x->n_ops; i++) {
        struct agw_op *op = &x->ops[i].op;
        if (op->kind == AGW_OP_ADOPT)
            close(op->fd);
        else if (op->kind == AGW_OP_CONFIGURE)
            agw_leg_conf_free(op->conf);
        else if (op->kind == AGW_OP_RELEASE && op->term != NULL)
            op->term->octets_sent = op->term->octets_received = 0;
    }
    agw_exec_finish(&model, x, clock_ms);
}

/* Executes one request text; returns the reply in compact form (static buffer). */
static const char *exec_text(const char *body)
{
    static char out[16384];
    char msg[8192];
    int n = snprintf(msg, sizeof(msg), "!/3 [127.0.0.1]:2947 T=77{%s}", body);
    struct h248_message *req;
    struct h248_parse_error perr;
    ck_assert_msg(h248_parse_message(msg, (size_t)n, NULL, &req, &perr) == 0, "%s", perr.text);
    struct agw_exec x;
    ck_assert_int_eq(agw_exec_transaction(&model, &root, req, req->transactions, &x, clock_ms), 0);
    run_ops(&x);
    x.reply->version = 3;
    x.reply->mid = req->mid;
    size_t len;
    ck_assert_int_eq(h248_encode_message(x.reply, H248_STYLE_COMPACT, out, sizeof(out) - 1, &len),
                     0);
    out[len] = '\0';
    agw_exec_fini(&x);
    h248_message_free(req);
    return strstr(out, "P=77");
}

#define MSRP_ACCESS_ADD                                                                            \
    "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=message $ TCP/TLS/MSRP "   \
    "*\r\na=fingerprint:$\r\n},R{v=0\r\nc=IN IP4 192.0.2.10\r\nm=message 49152 TCP/TLS/MSRP "      \
    "*\r\na=setup:active\r\na=fingerprint:sha-256 "                                                \
    "4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:3C:11:B5:34:22:B0:12:33:44:55:"   \
    "66:77\r\n}}}}}"

START_TEST(add_fills_address_port_fingerprint)
{
    const char *r = exec_text(MSRP_ACCESS_ADD);
    ck_assert_msg(strncmp(r, "P=77{C=1{A=ip/access/1{M{ST=1{L{", 32) == 0, "%s", r);
    ck_assert_msg(strstr(r, "c=IN IP4 127.0.0.1") != NULL, "%s", r);
    ck_assert_msg(strstr(r, "m=message 3900 TCP/TLS/MSRP") != NULL, "%s", r);
    /* Remote a=setup:active: the gateway listens and says so. */
    ck_assert_msg(strstr(r, "a=setup:passive") != NULL, "%s", r);
    char fp[AGW_TLS_FINGERPRINT_TEXT_MAX], want[AGW_TLS_FINGERPRINT_TEXT_MAX + 16];
    agw_tls_fingerprint_format(agw_tls_identity_fingerprint(realms[0].identity), fp, sizeof(fp));
    snprintf(want, sizeof(want), "a=fingerprint:%s", fp);
    ck_assert_msg(strstr(r, want) != NULL, "%s lacks %s", r, want);
    ck_assert_uint_eq(model.n_contexts, 1);
    ck_assert_uint_eq(model.n_terms, 1);
    ck_assert_uint_eq(realms[0].ports_used, 1);
}
END_TEST

START_TEST(core_plain_gets_setup_and_no_fingerprint)
{
    const char *r = exec_text("C=${A=${M{ST=1{O{ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\n"
                              "m=message $ TCP/MSRP *\r\n}}}}}");
    ck_assert_msg(strstr(r, "A=ip/core/1") != NULL, "%s", r);
    ck_assert_msg(strstr(r, "m=message 3910 TCP/MSRP") != NULL, "%s", r);
    ck_assert_msg(strstr(r, "a=setup:actpass") != NULL, "%s", r);
    ck_assert_msg(strstr(r, "fingerprint") == NULL, "%s", r);
}
END_TEST

START_TEST(gateway_active_uses_port_9)
{
    const char *r = exec_text(
        "C=${A=${M{ST=1{L{v=0\r\nc=IN IP4 $\r\nm=message $ TCP/TLS/MSRP *\r\n},"
        "R{v=0\r\nc=IN IP4 192.0.2.10\r\nm=message 49152 TCP/TLS/MSRP *\r\na=setup:passive\r\n"
        "}}}}}");
    ck_assert_msg(strstr(r, "m=message 9 TCP/TLS/MSRP") != NULL, "%s", r);
    ck_assert_msg(strstr(r, "a=setup:active") != NULL, "%s", r);
    ck_assert_uint_eq(realms[0].ports_used, 0);
}
END_TEST

START_TEST(subtract_all_returns_statistics_and_frees)
{
    exec_text(MSRP_ACCESS_ADD);
    exec_text("C=1{A=${M{O{ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=message $ TCP/MSRP *\r\n}}}}");
    ck_assert_uint_eq(model.n_terms, 2);
    clock_ms += 2500;
    const char *r = exec_text("C=1{S=*}");
    ck_assert_msg(strstr(r, "S=ip/access/1{SA{nt/os=0,nt/or=0,nt/dur=2500}}") != NULL, "%s", r);
    ck_assert_msg(strstr(r, "S=ip/core/1{SA{nt/os=0,nt/or=0,nt/dur=2500}}") != NULL, "%s", r);
    ck_assert_uint_eq(model.n_terms, 0);
    ck_assert_uint_eq(model.n_contexts, 0);
    ck_assert_uint_eq(realms[0].ports_used, 0);
    ck_assert_uint_eq(realms[1].ports_used, 0);
    r = exec_text("C=1{S=*}");
    ck_assert_msg(strstr(r, "ER=411") != NULL, "%s", r);
}
END_TEST

START_TEST(wildcard_reply_and_empty_audit)
{
    exec_text(MSRP_ACCESS_ADD);
    const char *r = exec_text("C=1{W-S=*}");
    ck_assert_msg(strcmp(r, "P=77{C=1{W-S=*}}") == 0, "%s", r);
    exec_text(MSRP_ACCESS_ADD);
    r = exec_text("C=2{S=ip/access/2{AT{}}}");
    ck_assert_msg(strcmp(r, "P=77{C=2{S=ip/access/2}}") == 0, "%s", r);
}
END_TEST

START_TEST(error_codes)
{
    struct {
        const char *body;
        const char *want;
    } cases[] = {
        {"C=${A=${M{L{v=0\r\nc=IN IP4 $\r\nm=audio $ RTP/AVP 0\r\n}}}}", "ER=515{\"unsupported "
                                                                         "media protocol RTP/AVP"},
        {"C=${A=${M{O{ipdc/realm=nowhere},L{v=0\r\nm=message $ TCP/MSRP *\r\n}}}}", "ER=449"},
        {"C=${A=${M{O{MO=SR}}}}", "ER=441"},
        {"C=${A=${M{O{MO=LB},L{v=0\r\nm=message $ TCP/MSRP *\r\n}}}}", "ER=517"},
        {"C=${A=${M{O{xx/yy=1},L{v=0\r\nm=message $ TCP/MSRP *\r\n}}}}", "ER=440"},
        {"C=${A=${M{O{ipdc/zz=1},L{v=0\r\nm=message $ TCP/MSRP *\r\n}}}}", "ER=445"},
        {"C=${A=${M{L{v=0\r\nm=message $ TCP/MSRP *\r\n},R{v=0\r\nm=message 1 TCP/MSRP "
         "*\r\na=fingerprint:md5 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n}},E=1{"
         "nt/netfail}}}",
         "ER=449"},
        {"C=${A=${M{L{v=0\r\nm=message $ TCP/MSRP *\r\n}},E=1{xx/boom}}}", "ER=440"},
        {"C=${A=${M{L{v=0\r\nm=message $ TCP/MSRP *\r\n}},SG{tlsc/est}}}", "ER=452"},
        {"C=${A=ip/access/99{M{L{v=0\r\nm=message $ TCP/MSRP *\r\n}}}}", "ER=430"},
        {"C=12345{MF=ip/access/1{M{O{MO=SR}}}}", "ER=411"},
        {"C=-{A=${M{L{v=0\r\nm=message $ TCP/MSRP *\r\n}}}}", "ER=421"},
        {"C=${A=${M{L{v=0\r\nc=IN IP4 10.9.9.9\r\nm=message $ TCP/MSRP *\r\n}}}}", "ER=449"},
        {"C=${A=${M{L{v=0\r\nm=message $ TCP/MSRP *\r\nm=message $ TCP/MSRP *\r\n}}}}", "ER=449"},
        {"C=-{AV=ip/access/1{AT{}}}", "ER=435"},
        {"C=*{AV=ROOT{AT{}}}", "ER=501"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *r = exec_text(cases[i].body);
        ck_assert_msg(strstr(r, cases[i].want) != NULL, "case %zu: %s, want %s", i, r,
                      cases[i].want);
    }
    /* Nothing leaked into the model from failed Adds. */
    ck_assert_uint_eq(model.n_terms, 0);
    ck_assert_uint_eq(model.n_contexts, 0);
    ck_assert_uint_eq(realms[0].ports_used + realms[1].ports_used, 0);
}
END_TEST

START_TEST(limits_contexts_terms_ports)
{
    /* 4 contexts max (model), 2 terminations per context, 4 access ports. */
    for (int i = 0; i < 4; i++) {
        const char *r = exec_text(MSRP_ACCESS_ADD);
        ck_assert_msg(strstr(r, "ER=") == NULL, "%s", r);
    }
    const char *r = exec_text(MSRP_ACCESS_ADD);
    ck_assert_msg(strstr(r, "ER=510") != NULL, "%s", r);
    r = exec_text("C=1{A=${M{L{v=0\r\nc=IN IP4 $\r\nm=message $ TCP/TLS/MSRP *\r\n}}}}");
    ck_assert_msg(strstr(r, "ER=510{\"no free port in realm access") != NULL, "%s", r);
    r = exec_text("C=1{A=${M{O{ipdc/realm=core},L{v=0\r\nm=message $ TCP/MSRP *\r\n}}}}");
    ck_assert_msg(strstr(r, "ER=") == NULL, "%s", r);
    r = exec_text("C=1{A=${M{O{ipdc/realm=core},L{v=0\r\nm=message $ TCP/MSRP *\r\n}}}}");
    ck_assert_msg(strstr(r, "ER=434") != NULL, "%s", r);
}
END_TEST

START_TEST(optional_command_failure_continues)
{
    exec_text(MSRP_ACCESS_ADD);
    const char *r = exec_text("C=1{O-MF=ip/access/9{M{O{MO=RC}}},MF=ip/access/1{M{O{MO=RC}}}}");
    ck_assert_msg(strstr(r, "MF=ip/access/9{ER=430") != NULL, "%s", r);
    ck_assert_msg(strstr(r, "MF=ip/access/1") != NULL, "%s", r);
    r = exec_text("C=1{MF=ip/access/9{M{O{MO=RC}}},MF=ip/access/1{M{O{MO=SO}}}}");
    ck_assert_msg(strcmp(r, "P=77{C=1{ER=430{\"unknown termination ip/access/9\"}}}") == 0, "%s",
                  r);
}
END_TEST

START_TEST(modify_brings_fingerprint_and_audit_shows_it)
{
    exec_text("C=${A=${M{L{v=0\r\nc=IN IP4 $\r\nm=message $ TCP/TLS/MSRP *\r\na=fingerprint:$\r\n"
              "}}}}");
    struct agw_term *t = agw_model_term(&model, "ip/access/1", 11);
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->n_fingerprints, 0);
    const char *r = exec_text(
        "C=1{MF=ip/access/1{M{R{v=0\r\nc=IN IP4 192.0.2.7\r\nm=message 5000 TCP/TLS/MSRP *\r\n"
        "a=setup:active\r\na=fingerprint:sha-1 "
        "01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14\r\n}}}}");
    ck_assert_msg(strcmp(r, "P=77{C=1{MF=ip/access/1}}") == 0, "%s", r);
    ck_assert_uint_eq(t->n_fingerprints, 1);
    ck_assert_int_eq(t->fingerprints[0].hash, AGW_TLS_HASH_SHA1);
    r = exec_text("C=1{AV=ip/access/1{AT{M,SA,PG}}}");
    ck_assert_msg(strstr(r, "M{TS{SI=IV},ST=1{O{MO=SR}") != NULL, "%s", r);
    ck_assert_msg(strstr(r, "R{v=0\r\nc=IN IP4 192.0.2.7") != NULL, "%s", r);
    ck_assert_msg(strstr(r, "SA{nt/os=0,nt/or=0,nt/dur=0}") != NULL, "%s", r);
    ck_assert_msg(strstr(r, "PG{ipdc-1,nt-1,it-1,tlsc-1,adid-1,dc-1}") != NULL, "%s", r);
}
END_TEST

START_TEST(root_audit_and_inactivity_timer)
{
    const char *r = exec_text("C=-{AV=ROOT{AT{}}}");
    ck_assert_msg(strcmp(r, "P=77{C=-{AV=ROOT}}") == 0, "%s", r);
    r = exec_text("C=-{MF=ROOT{E=9{it/ito{mit=500}}}}");
    ck_assert_msg(strcmp(r, "P=77{C=-{MF=ROOT}}") == 0, "%s", r);
    ck_assert(root.ito_armed);
    ck_assert_uint_eq(root.ito_mit_ms, 5000);
    ck_assert_uint_eq(root.ito_request_id, 9);
    r = exec_text("C=-{MF=ROOT{E=9{it/ito}}}");
    ck_assert_msg(strstr(r, "ER=457") != NULL, "%s", r);
    r = exec_text("C=-{AV=ROOT{AT{PG}}}");
    ck_assert_msg(strstr(r, "PG{") != NULL, "%s", r);
}
END_TEST

START_TEST(context_attributes_stored_and_audited)
{
    exec_text(MSRP_ACCESS_ADD);
    const char *r = exec_text("C=1{PR=7,EG,MF=ip/access/1{M{O{MO=IN}}}}");
    ck_assert_msg(strstr(r, "ER") == NULL, "%s", r);
    r = exec_text("C=1{CA{PR,EG}}");
    ck_assert_msg(strcmp(r, "P=77{C=1{PR=7,EG}}") == 0, "%s", r);
    r = exec_text("C=1{PR=16}");
    ck_assert_msg(strstr(r, "ER=449") != NULL, "%s", r);
}
END_TEST

START_TEST(move_between_contexts)
{
    exec_text(MSRP_ACCESS_ADD);
    exec_text("C=${A=${M{O{ipdc/realm=core},L{v=0\r\nm=message $ TCP/MSRP *\r\n}}}}");
    const char *r = exec_text("C=2{MV=ip/access/1}");
    ck_assert_msg(strcmp(r, "P=77{C=2{MV=ip/access/1}}") == 0, "%s", r);
    /* Context 1 lost its only termination and is gone. */
    ck_assert_ptr_null(agw_model_context(&model, 1));
    ck_assert_uint_eq(agw_model_context(&model, 2)->n_terms, 2);
}
END_TEST

START_TEST(many_add_subtract_no_leak)
{
    for (int i = 0; i < 2000; i++) {
        const char *r = exec_text(MSRP_ACCESS_ADD);
        ck_assert_msg(strstr(r, "ER=") == NULL, "%d: %s", i, r);
        char body[64];
        snprintf(body, sizeof(body), "C=%u{S=*}", model.next_context_id - 1);
        r = exec_text(body);
        ck_assert_msg(strstr(r, "ER=") == NULL, "%d: %s", i, r);
    }
    ck_assert_uint_eq(model.n_terms, 0);
    ck_assert_uint_eq(model.n_contexts, 0);
    ck_assert_uint_eq(realms[0].ports_used, 0);
}
END_TEST

static Suite *model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("commands");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, add_fills_address_port_fingerprint);
    tcase_add_test(tc, core_plain_gets_setup_and_no_fingerprint);
    tcase_add_test(tc, gateway_active_uses_port_9);
    tcase_add_test(tc, subtract_all_returns_statistics_and_frees);
    tcase_add_test(tc, wildcard_reply_and_empty_audit);
    tcase_add_test(tc, error_codes);
    tcase_add_test(tc, limits_contexts_terms_ports);
    tcase_add_test(tc, optional_command_failure_continues);
    tcase_add_test(tc, modify_brings_fingerprint_and_audit_shows_it);
    tcase_add_test(tc, root_audit_and_inactivity_timer);
    tcase_add_test(tc, context_attributes_stored_and_audited);
    tcase_add_test(tc, move_between_contexts);
    tcase_add_test(tc, many_add_subtract_no_leak);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(model_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
