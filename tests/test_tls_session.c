/* Check suite for tls/session.c and tls/context.c: two engines (or an engine and a bare OpenSSL
   peer) talking through memory: handshakes, data, the fingerprint hold, failures, hostile input. */
#include "tls/cert.h"
#include "tls/fingerprint.h"
#include "tls/session.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MIB (1024 * 1024)

/* For hot loops: a passing ck_assert costs Check a message to the runner, this costs nothing. */
#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

static struct agw_tls_identity *srv_id;   /* the gateway */
static struct agw_tls_identity *cli_id;   /* the UE */
static struct agw_tls_identity *other_id; /* someone else: its fingerprint never matches */

static const struct agw_tls_ctx_config tls12 = {.max_version = AGW_TLS_VERSION_1_2};
static const struct agw_tls_ctx_config tls13 = {.min_version = AGW_TLS_VERSION_1_3};

/* The loop tests run once per version: _i == 0 is TLS 1.2, 1 is TLS 1.3. */
static const struct agw_tls_ctx_config *version_cfg(int i)
{
    return i == 0 ? &tls12 : &tls13;
}

/* ---- helpers ---- */

static uint64_t rng_state = 0x5eed0000ULL; /* xorshift never leaves 0: start elsewhere */

static uint64_t rnd(void)
{
    /* xorshift64*: reproducible from the seed each test sets */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rnd() >> 56);
}

static struct agw_tls_ctx *ctx_new(const struct agw_tls_ctx_config *cfg)
{
    struct agw_tls_ctx *ctx = NULL;
    char err[256] = "";
    int rc = agw_tls_ctx_new(cfg, &ctx, err, sizeof(err));
    ck_assert_msg(rc == 0, "agw_tls_ctx_new: %d %s", rc, err);
    return ctx;
}

static struct agw_tls_session *session_new(struct agw_tls_ctx *ctx, struct agw_tls_identity *id,
                                           enum agw_tls_role role)
{
    struct agw_tls_session *s = NULL;
    ck_assert_int_eq(agw_tls_session_new(ctx, id, role, &s), 0);
    ck_assert_ptr_nonnull(s);
    return s;
}

static void set_fp(struct agw_tls_session *s, const struct agw_tls_identity *expected)
{
    ck_assert_int_eq(agw_tls_session_set_fingerprints(s, agw_tls_identity_fingerprint(expected), 1),
                     0);
}

struct pair {
    struct agw_tls_ctx *sctx;
    struct agw_tls_ctx *cctx;
    struct agw_tls_session *srv; /* the gateway, presenting srv_id */
    struct agw_tls_session *cli; /* the UE, presenting cli_id */
};

/* Sessions of both roles; each knows the other's fingerprint when asked to. */
static void pair_new(struct pair *p, const struct agw_tls_ctx_config *scfg,
                     const struct agw_tls_ctx_config *ccfg, bool srv_knows, bool cli_knows)
{
    p->sctx = ctx_new(scfg);
    p->cctx = ctx_new(ccfg);
    p->srv = session_new(p->sctx, srv_id, AGW_TLS_SERVER);
    p->cli = session_new(p->cctx, cli_id, AGW_TLS_CLIENT);
    if (srv_knows)
        set_fp(p->srv, cli_id);
    if (cli_knows)
        set_fp(p->cli, srv_id);
}

static void pair_free(struct pair *p)
{
    agw_tls_session_free(p->srv);
    agw_tls_session_free(p->cli);
    agw_tls_ctx_unref(p->sctx);
    agw_tls_ctx_unref(p->cctx);
}

/* When set, move() hands ciphertext over through input_space/input_commit instead of feed. */
static bool zero_copy;

static int feed_zero_copy(struct agw_tls_session *to, const void *data, size_t len, size_t *used)
{
    void *space;
    size_t cap;
    *used = 0;
    int rc = agw_tls_session_input_space(to, &space, &cap);
    if (rc < 0)
        return rc;
    REQUIRE(cap > 0 && space != NULL, "input_space: %zu bytes", cap);
    *used = len < cap ? len : cap;
    memcpy(space, data, *used);
    return agw_tls_session_input_commit(to, *used);
}

/* Moves from's ciphertext into to, piece bytes per feed, until from has none or to is full. */
static size_t move(struct agw_tls_session *from, struct agw_tls_session *to, size_t piece)
{
    size_t moved = 0;
    while (agw_tls_session_output_size(from) > 0) {
        const void *data;
        size_t len, used = 0;
        agw_tls_session_pending_output(from, &data, &len);
        REQUIRE(len > 0, "output size without a pending span");
        if (len > piece)
            len = piece;
        int rc = zero_copy ? feed_zero_copy(to, data, len, &used)
                           : agw_tls_session_feed(to, data, len, &used);
        if (rc == -EAGAIN || (rc < 0 && agw_tls_session_state(to) == AGW_TLS_FAILED))
            break; /* full, or failed: what it would not take is dropped with the socket */
        REQUIRE(rc == 0, "feed: %d", rc);
        rc = agw_tls_session_consume_output(from, used);
        REQUIRE(rc == 0, "consume_output: %d", rc);
        moved += used;
    }
    return moved;
}

/* Drives both handshakes until no byte moves any more. */
static void pump(struct agw_tls_session *a, struct agw_tls_session *b, size_t piece)
{
    for (int round = 0; round < 100000; round++) {
        agw_tls_session_handshake(a);
        agw_tls_session_handshake(b);
        if (move(a, b, piece) + move(b, a, piece) == 0)
            return;
    }
    ck_abort_msg("handshake does not settle");
}

static void pair_handshake(struct pair *p)
{
    pump(p->cli, p->srv, SIZE_MAX);
}

static void assert_verified(struct pair *p)
{
    ck_assert_int_eq(agw_tls_session_state(p->srv), AGW_TLS_VERIFIED);
    ck_assert_int_eq(agw_tls_session_state(p->cli), AGW_TLS_VERIFIED);
    ck_assert_int_eq(agw_tls_session_handshake(p->srv), 0);
    ck_assert_int_eq(agw_tls_session_handshake(p->cli), 0);
    ck_assert_ptr_null(agw_tls_session_error(p->srv));
}

static void assert_failed(struct agw_tls_session *s, enum agw_tls_failure reason, int code)
{
    const struct agw_tls_error *e = agw_tls_session_error(s);
    ck_assert_msg(e != NULL, "not failed: state %d", agw_tls_session_state(s));
    ck_assert_msg(e->reason == reason, "reason %d (%s) instead of %d", e->reason, e->text, reason);
    ck_assert_int_eq(agw_tls_session_handshake(s), code);
    ck_assert_ptr_nonnull(e->text);
}

/* Nothing can be read from s, nor written into it. */
static void assert_no_data_path(struct agw_tls_session *s)
{
    uint8_t buf[64];
    size_t n = 99;
    int rc = agw_tls_session_read(s, buf, sizeof(buf), &n);
    ck_assert_msg(rc < 0, "read gave %d", rc);
    ck_assert_uint_eq(n, 0);
    rc = agw_tls_session_write(s, "secret", 6, &n);
    ck_assert_msg(rc < 0, "write gave %d", rc);
    ck_assert_uint_eq(n, 0);
    struct agw_tls_stats st;
    agw_tls_session_stats(s, &st);
    ck_assert_uint_eq(st.plain_in, 0);
    ck_assert_uint_eq(st.plain_out, 0);
}

/* One direction of a transfer: src encrypts data, dst decrypts it into got. */
struct flow {
    struct agw_tls_session *src;
    struct agw_tls_session *dst;
    const uint8_t *data;
    size_t len;
    size_t sent;
    size_t received;
    uint8_t *got;
    size_t read_cap_max; /* each read asks for 1..read_cap_max bytes */
};

/* One step: write what src takes, move ciphertext in pieces, read what dst has. Returns true
   while the flow is not complete. */
static bool flow_step(struct flow *f, size_t piece)
{
    if (f->sent < f->len) {
        size_t taken = 0;
        int rc = agw_tls_session_write(f->src, f->data + f->sent, f->len - f->sent, &taken);
        REQUIRE(rc == 0 || rc == -EAGAIN, "write: %d", rc);
        f->sent += taken;
    }
    move(f->src, f->dst, piece);
    for (;;) {
        size_t cap = 1 + (size_t)(rnd() % f->read_cap_max);
        if (cap > f->len - f->received)
            cap = f->len - f->received;
        if (cap == 0)
            break;
        size_t got = 0;
        int rc = agw_tls_session_read(f->dst, f->got + f->received, cap, &got);
        if (rc == -EAGAIN)
            break;
        REQUIRE(rc == 0 && got > 0, "read: %d, %zu bytes", rc, got);
        f->received += got;
    }
    return f->received < f->len;
}

/* Sends a_len random bytes from a to b and b_len from b to a at the same time, feeding piece
   bytes at a time, and checks that both arrive intact. */
static void exchange(struct agw_tls_session *a, struct agw_tls_session *b, size_t a_len,
                     size_t b_len, size_t piece, size_t read_cap_max)
{
    uint8_t *ab = malloc(a_len + 1), *ba = malloc(b_len + 1);
    uint8_t *ab_got = malloc(a_len + 1), *ba_got = malloc(b_len + 1);
    ck_assert(ab && ba && ab_got && ba_got);
    fill_random(ab, a_len);
    fill_random(ba, b_len);
    struct flow f1 = {a, b, ab, a_len, 0, 0, ab_got, read_cap_max};
    struct flow f2 = {b, a, ba, b_len, 0, 0, ba_got, read_cap_max};
    bool busy1 = true, busy2 = true;
    for (long steps = 0; busy1 || busy2; steps++) {
        REQUIRE(steps < 100000000L, "transfer stalled at %zu/%zu and %zu/%zu", f1.received, a_len,
                f2.received, b_len);
        if (busy1)
            busy1 = flow_step(&f1, piece);
        if (busy2)
            busy2 = flow_step(&f2, piece);
    }
    ck_assert(memcmp(ab, ab_got, a_len) == 0);
    ck_assert(memcmp(ba, ba_got, b_len) == 0);
    free(ab);
    free(ba);
    free(ab_got);
    free(ba_got);
}

/* A bare OpenSSL client over memory BIOs, for what the engine never does itself. */
struct raw {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *in;  /* what it reads */
    BIO *out; /* what it writes */
};

static void raw_new(struct raw *r, int max_version, struct agw_tls_identity *id)
{
    r->ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(r->ctx);
    ck_assert_int_eq(SSL_CTX_set_max_proto_version(r->ctx, max_version), 1);
    SSL_CTX_set_verify(r->ctx, SSL_VERIFY_NONE, NULL);
    if (id != NULL) {
        ck_assert_int_eq(SSL_CTX_use_certificate(r->ctx, agw_tls_identity_cert(id)), 1);
        ck_assert_int_eq(SSL_CTX_use_PrivateKey(r->ctx, agw_tls_identity_key(id)), 1);
    }
    r->ssl = SSL_new(r->ctx);
    r->in = BIO_new(BIO_s_mem());
    r->out = BIO_new(BIO_s_mem());
    ck_assert(r->ssl && r->in && r->out);
    SSL_set_bio(r->ssl, r->in, r->out);
    SSL_set_connect_state(r->ssl);
}

static void raw_free(struct raw *r)
{
    SSL_free(r->ssl);
    SSL_CTX_free(r->ctx);
    ERR_clear_error();
}

/* Moves bytes both ways between a bare peer and an engine; returns how many. */
static size_t raw_move(struct raw *r, struct agw_tls_session *s)
{
    size_t moved = 0;
    uint8_t buf[16384];
    int n;
    while ((n = BIO_read(r->out, buf, sizeof(buf))) > 0) {
        size_t used = 0;
        if (agw_tls_session_feed(s, buf, (size_t)n, &used) == 0)
            ck_assert_uint_eq(used, (size_t)n);
        moved += (size_t)n;
    }
    while (agw_tls_session_output_size(s) > 0) {
        const void *data;
        size_t len;
        agw_tls_session_pending_output(s, &data, &len);
        ck_assert_int_eq(BIO_write(r->in, data, (int)len), (int)len);
        ck_assert_int_eq(agw_tls_session_consume_output(s, len), 0);
        moved += len;
    }
    return moved;
}

/* Drives a bare client's handshake against an engine; returns its last SSL_get_error. */
static int raw_handshake(struct raw *r, struct agw_tls_session *s)
{
    int err = SSL_ERROR_NONE;
    for (int round = 0; round < 100; round++) {
        int rc = SSL_do_handshake(r->ssl);
        err = SSL_get_error(r->ssl, rc);
        agw_tls_session_handshake(s);
        if (raw_move(r, s) == 0)
            return err;
    }
    ck_abort_msg("bare handshake does not settle");
    return err;
}

/* ---- contexts ---- */

START_TEST(test_ctx_defaults_and_errors)
{
    struct agw_tls_ctx *ctx = NULL;
    char err[256];
    ck_assert_int_eq(agw_tls_ctx_new(NULL, &ctx, err, sizeof(err)), 0);
    ck_assert_ptr_eq(agw_tls_ctx_ref(ctx), ctx);
    agw_tls_ctx_unref(ctx);
    agw_tls_ctx_unref(ctx);
    agw_tls_ctx_unref(NULL);

    static const struct {
        struct agw_tls_ctx_config cfg;
        const char *word;
    } bad[] = {
        {{.ciphers = "NO-SUCH-CIPHER"}, "ciphers"},
        {{.ciphersuites = "TLS_NO_SUCH_SUITE"}, "ciphersuites"},
        {{.groups = "P-999"}, "groups"},
        {{.min_version = 0x0302}, "min_version"},
        {{.max_version = 0x0305}, "max_version"},
        {{.min_version = AGW_TLS_VERSION_1_3, .max_version = AGW_TLS_VERSION_1_2}, "above"},
        {{.input_max = 10}, "input_max"},
        {{.output_max = (size_t)1 << 40}, "output_max"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ctx = (struct agw_tls_ctx *)&ctx; /* must be reset */
        err[0] = '\0';
        ck_assert_int_eq(agw_tls_ctx_new(&bad[i].cfg, &ctx, err, sizeof(err)), -EINVAL);
        ck_assert_ptr_null(ctx);
        ck_assert_msg(strstr(err, bad[i].word) != NULL, "case %zu: \"%s\"", i, err);
    }
    ck_assert_int_eq(agw_tls_ctx_new(NULL, NULL, NULL, 0), -EINVAL);
    ck_assert_uint_eq(ERR_peek_error(), 0); /* the thread's error queue is left empty */
}
END_TEST

START_TEST(test_session_arguments)
{
    struct agw_tls_ctx *ctx = ctx_new(NULL);
    struct agw_tls_session *s = NULL;
    ck_assert_int_eq(agw_tls_session_new(ctx, NULL, AGW_TLS_SERVER, &s), -EINVAL);
    ck_assert_int_eq(agw_tls_session_new(ctx, srv_id, (enum agw_tls_role)7, &s), -EINVAL);
    ck_assert_int_eq(agw_tls_session_new(NULL, srv_id, AGW_TLS_SERVER, &s), -EINVAL);
    ck_assert_ptr_null(s);
    s = session_new(ctx, srv_id, AGW_TLS_SERVER);
    size_t n = 5;
    uint8_t buf[8];
    ck_assert_int_eq(agw_tls_session_feed(s, NULL, 3, &n), -EINVAL);
    ck_assert_int_eq(agw_tls_session_feed(s, buf, 0, &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(agw_tls_session_read(s, buf, 0, &n), -EINVAL);
    ck_assert_int_eq(agw_tls_session_read(s, buf, sizeof(buf), &n), -EAGAIN);
    ck_assert_int_eq(agw_tls_session_write(s, buf, sizeof(buf), &n), -EAGAIN);
    ck_assert_int_eq(agw_tls_session_consume_output(s, 1), -EINVAL);
    ck_assert_int_eq(agw_tls_session_close(s), -ENOTCONN);
    ck_assert_ptr_null(agw_tls_session_version(s));
    ck_assert_ptr_null(agw_tls_session_cipher(s));
    ck_assert_ptr_null(agw_tls_session_peer_cert(s));

    struct agw_tls_fingerprint many[AGW_TLS_FINGERPRINTS_MAX + 1];
    for (size_t i = 0; i < AGW_TLS_FINGERPRINTS_MAX + 1; i++)
        many[i] = *agw_tls_identity_fingerprint(cli_id);
    ck_assert_int_eq(agw_tls_session_set_fingerprints(s, many, AGW_TLS_FINGERPRINTS_MAX + 1),
                     -E2BIG);
    ck_assert_int_eq(agw_tls_session_set_fingerprints(s, NULL, 1), -EINVAL);
    ck_assert_int_eq(agw_tls_session_set_fingerprints(s, many, AGW_TLS_FINGERPRINTS_MAX), 0);
    agw_tls_session_free(s);
    agw_tls_session_free(NULL);
    agw_tls_ctx_unref(ctx);
    ck_assert_str_eq(agw_tls_failure_name(AGW_TLS_FAIL_FINGERPRINT_MISMATCH),
                     "fingerprint mismatch");
    ck_assert_str_eq(agw_tls_alert_name(42), "bad certificate");
    ck_assert_str_eq(agw_tls_alert_name(-1), "none");
}
END_TEST

/* ---- handshakes ---- */

START_TEST(test_handshake_versions)
{
    struct pair p;
    pair_new(&p, NULL, version_cfg(_i), true, true);
    ck_assert_int_eq(agw_tls_session_state(p.srv), AGW_TLS_HANDSHAKING);
    ck_assert_int_eq(agw_tls_session_handshake(p.srv), -EAGAIN); /* nothing fed yet */
    ck_assert_uint_eq(agw_tls_session_output_size(p.srv), 0);
    pair_handshake(&p);
    assert_verified(&p);
    const char *version = _i == 0 ? "TLSv1.2" : "TLSv1.3";
    const char *cipher = _i == 0 ? "ECDHE-ECDSA-AES128-GCM-SHA256" : "TLS_AES_128_GCM_SHA256";
    ck_assert_str_eq(agw_tls_session_version(p.srv), version);
    ck_assert_str_eq(agw_tls_session_version(p.cli), version);
    ck_assert_str_eq(agw_tls_session_cipher(p.srv), cipher);
    ck_assert_str_eq(agw_tls_session_cipher(p.cli), cipher);
    /* The certificates made the verdict and are released with it. */
    ck_assert_ptr_null(agw_tls_session_peer_cert(p.srv));
    ck_assert_ptr_null(agw_tls_session_peer_cert(p.cli));
    /* Both fed everything and were fed everything: the counters agree pairwise. */
    struct agw_tls_stats s, c;
    agw_tls_session_stats(p.srv, &s);
    agw_tls_session_stats(p.cli, &c);
    ck_assert_uint_gt(s.cipher_out, 0);
    ck_assert_uint_eq(s.cipher_out, c.cipher_in);
    ck_assert_uint_eq(c.cipher_out, s.cipher_in);
    ck_assert_int_eq(agw_tls_session_set_fingerprints(p.srv, NULL, 0), -EALREADY);
    pair_free(&p);
}
END_TEST

START_TEST(test_handshake_chacha20)
{
    static const struct agw_tls_ctx_config chacha = {.ciphersuites =
                                                         "TLS_CHACHA20_POLY1305_SHA256"};
    struct pair p;
    pair_new(&p, &chacha, NULL, true, true);
    pair_handshake(&p);
    assert_verified(&p);
    ck_assert_str_eq(agw_tls_session_cipher(p.cli), "TLS_CHACHA20_POLY1305_SHA256");
    exchange(p.cli, p.srv, 100000, 100000, 16384, 65536);
    pair_free(&p);
}
END_TEST

/* More identities than the context keeps an SSL_CTX for, each with live sessions while others
   are made: every session presents its own identity, also after its SSL_CTX was evicted. */
START_TEST(test_many_identities)
{
    enum { N = 12 };
    struct agw_tls_ctx *ctx = ctx_new(NULL);
    struct agw_tls_identity *ids[N];
    struct agw_tls_session *srv[N], *cli[N];
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof(name), "realm-%d", i);
        ck_assert_int_eq(agw_tls_identity_generate(name, 1, &ids[i]), 0);
        srv[i] = session_new(ctx, ids[i], AGW_TLS_SERVER);
        cli[i] = session_new(ctx, cli_id, AGW_TLS_CLIENT);
        set_fp(srv[i], cli_id);
        set_fp(cli[i], ids[i]); /* the client accepts only this identity */
    }
    for (int i = N - 1; i >= 0; i--) {
        pump(cli[i], srv[i], SIZE_MAX);
        ck_assert_int_eq(agw_tls_session_state(cli[i]), AGW_TLS_VERIFIED);
        ck_assert_int_eq(agw_tls_session_state(srv[i]), AGW_TLS_VERIFIED);
        agw_tls_session_free(srv[i]);
        agw_tls_session_free(cli[i]);
        agw_tls_identity_unref(ids[i]);
    }
    agw_tls_ctx_unref(ctx);
}
END_TEST

/* The identity is bound at creation: the caller may drop its reference at once. */
START_TEST(test_identity_bound_at_creation)
{
    struct agw_tls_identity *old = NULL;
    ck_assert_int_eq(agw_tls_identity_generate("rotated-away", 1, &old), 0);
    struct agw_tls_fingerprint old_fp = *agw_tls_identity_fingerprint(old);
    struct agw_tls_ctx *ctx = ctx_new(NULL);
    struct agw_tls_session *srv = session_new(ctx, old, AGW_TLS_SERVER);
    struct agw_tls_session *cli = session_new(ctx, cli_id, AGW_TLS_CLIENT);
    agw_tls_identity_unref(old); /* the realm rotated its certificate */
    set_fp(srv, cli_id);
    ck_assert_int_eq(agw_tls_session_set_fingerprints(cli, &old_fp, 1), 0);
    pump(cli, srv, SIZE_MAX);
    /* The client accepts only the old certificate's fingerprint. */
    ck_assert_int_eq(agw_tls_session_state(cli), AGW_TLS_VERIFIED);
    agw_tls_session_free(srv);
    agw_tls_session_free(cli);
    agw_tls_ctx_unref(ctx);
}
END_TEST

/* ---- data ---- */

START_TEST(test_data_large_16k_feeds)
{
    rng_state = 0x5eed0001ULL + (uint64_t)_i;
    struct pair p;
    pair_new(&p, NULL, version_cfg(_i), true, true);
    pair_handshake(&p);
    assert_verified(&p);
    for (int round = 0; round < 3; round++) {
        size_t a = 1 + (size_t)(rnd() % MIB), b = 1 + (size_t)(rnd() % MIB);
        exchange(p.cli, p.srv, a, b, 16384, 70000);
    }
    exchange(p.cli, p.srv, MIB, MIB, 16384, MIB);
    pair_free(&p);
}
END_TEST

START_TEST(test_data_one_byte_feeds)
{
    rng_state = 0x5eed0002ULL + (uint64_t)_i;
    struct pair p;
    pair_new(&p, NULL, version_cfg(_i), true, true);
    pump(p.cli, p.srv, 1); /* the handshake too, one byte at a time */
    assert_verified(&p);
    exchange(p.cli, p.srv, 20000 + (size_t)(rnd() % 20000), 20000 + (size_t)(rnd() % 20000), 1,
             300);
    exchange(p.srv, p.cli, 1, 1, 1, 1);
    pair_free(&p);
}
END_TEST

/* The socket reads straight into the session: same bytes, same bounds as feed. */
START_TEST(test_input_space_zero_copy)
{
    rng_state = 0x5eed0005ULL;
    static const struct agw_tls_ctx_config small = {.input_max = 2048};
    struct pair p;
    pair_new(&p, &small, NULL, true, true);
    zero_copy = true;
    pump(p.cli, p.srv, 100);
    assert_verified(&p);
    exchange(p.cli, p.srv, 300000, 300000, 16384, 5000);
    exchange(p.cli, p.srv, 3000, 3000, 1, 100);
    zero_copy = false;

    void *space;
    size_t cap, used;
    ck_assert_int_eq(agw_tls_session_input_space(p.srv, &space, &cap), 0);
    ck_assert_uint_eq(cap, 16645); /* input_max is 2048, but a TLS 1.3 record is opened whole */
    ck_assert_int_eq(agw_tls_session_input_commit(p.srv, cap + 1), -EINVAL);
    ck_assert_int_eq(agw_tls_session_input_commit(p.srv, 0), 0);
    size_t taken;
    ck_assert_int_eq(agw_tls_session_write(p.cli, "0123456789", 10, &taken), 0);
    const void *data;
    size_t len;
    agw_tls_session_pending_output(p.cli, &data, &len);
    ck_assert_int_eq(agw_tls_session_feed(p.srv, data, 5, &used), 0);
    ck_assert_int_eq(agw_tls_session_input_space(p.srv, &space, &cap), 0);
    ck_assert_uint_eq(cap, 16645 - 5); /* the bound counts what was fed */
    memcpy(space, (const uint8_t *)data + 5, len - 5);
    ck_assert_int_eq(agw_tls_session_input_commit(p.srv, len - 5), 0);
    ck_assert_int_eq(agw_tls_session_consume_output(p.cli, len), 0);
    uint8_t buf[16];
    ck_assert_int_eq(agw_tls_session_read(p.srv, buf, sizeof(buf), &used), 0);
    ck_assert_uint_eq(used, 10);
    ck_assert(memcmp(buf, "0123456789", 10) == 0);

    static uint8_t filler[16645];
    ck_assert_int_eq(agw_tls_session_feed(p.srv, filler, sizeof(filler), &used), 0);
    ck_assert_int_eq(agw_tls_session_input_space(p.srv, &space, &cap), -EAGAIN);
    ck_assert_ptr_null(space);
    ck_assert_uint_eq(cap, 0);
    agw_tls_session_feed_eof(p.cli);
    ck_assert_int_eq(agw_tls_session_input_space(p.cli, &space, &cap), -EPIPE);
    pair_free(&p);
}
END_TEST

START_TEST(test_stats_count_bytes)
{
    struct pair p;
    pair_new(&p, NULL, NULL, true, true);
    pair_handshake(&p);
    struct agw_tls_stats s0, c0, s1, c1;
    agw_tls_session_stats(p.srv, &s0);
    agw_tls_session_stats(p.cli, &c0);
    exchange(p.cli, p.srv, 123456, 654, 16384, 4096);
    agw_tls_session_stats(p.srv, &s1);
    agw_tls_session_stats(p.cli, &c1);
    ck_assert_uint_eq(c1.plain_out, 123456);
    ck_assert_uint_eq(s1.plain_in, 123456);
    ck_assert_uint_eq(s1.plain_out, 654);
    ck_assert_uint_eq(c1.plain_in, 654);
    ck_assert_uint_eq(c1.cipher_out - c0.cipher_out, s1.cipher_in - s0.cipher_in);
    /* 123456 bytes are 8 records of at most 16 KiB, each with a 22-byte TLS 1.3 overhead */
    ck_assert_uint_ge(c1.cipher_out - c0.cipher_out, 123456 + 8 * 22);
    ck_assert_uint_le(c1.cipher_out - c0.cipher_out, 123456 + 20 * 22);
    pair_free(&p);
}
END_TEST

START_TEST(test_backpressure)
{
    static const struct agw_tls_ctx_config small = {.input_max = 1024, .output_max = 1024};
    struct pair p;
    pair_new(&p, &small, &small, true, true);
    pair_handshake(&p);
    assert_verified(&p);
    static uint8_t big[100000];
    size_t taken = 0;
    /* Below one record of room, a whole record is still taken: no tiny records. */
    ck_assert_int_eq(agw_tls_session_write(p.cli, big, sizeof(big), &taken), 0);
    ck_assert_uint_eq(taken, 16384);
    size_t out = agw_tls_session_output_size(p.cli);
    ck_assert_uint_eq(out, 16384 + 22);
    ck_assert_int_eq(agw_tls_session_write(p.cli, big, sizeof(big), &taken), -EAGAIN);
    ck_assert_uint_eq(taken, 0);

    const void *data;
    size_t len, used;
    agw_tls_session_pending_output(p.cli, &data, &len);
    /* TLS 1.3 records are opened whole: the server takes one past input_max, no more. */
    ck_assert_int_eq(agw_tls_session_feed(p.srv, data, len, &used), 0);
    ck_assert_uint_eq(used, len);
    ck_assert_int_eq(agw_tls_session_consume_output(p.cli, len), 0);
    ck_assert_int_eq(agw_tls_session_write(p.cli, big + 16384, 16384, &taken), 0);
    agw_tls_session_pending_output(p.cli, &data, &len);
    ck_assert_uint_eq(len, 16384 + 22);
    ck_assert_int_eq(agw_tls_session_feed(p.srv, data, len, &used), 0);
    ck_assert_uint_eq(used, 16645 - (16384 + 22)); /* the rest of one record's room */
    size_t refused = 0;
    ck_assert_int_eq(agw_tls_session_feed(p.srv, (const uint8_t *)data + used, 10, &refused),
                     -EAGAIN);
    ck_assert_int_eq(agw_tls_session_consume_output(p.cli, used), 0);
    /* Reading the first record frees the room; the second arrives 1 KiB at a time. */
    uint8_t first[16384];
    ck_assert_int_eq(agw_tls_session_read(p.srv, first, sizeof(first), &used), 0);
    ck_assert_uint_eq(used, sizeof(first));
    ck_assert(memcmp(first, big, sizeof(first)) == 0);
    uint8_t second[16384];
    size_t second_len = 0;
    for (int i = 0; i < 1000 && second_len < sizeof(second); i++) {
        move(p.cli, p.srv, 1024);
        size_t got = 0;
        int rc =
            agw_tls_session_read(p.srv, second + second_len, sizeof(second) - second_len, &got);
        ck_assert(rc == 0 || rc == -EAGAIN);
        second_len += got;
    }
    ck_assert_uint_eq(second_len, sizeof(second));
    ck_assert(memcmp(second, big + 16384, sizeof(second)) == 0);
    rng_state = 0x5eed0006ULL; /* random data, not the zeros an unseeded generator gives */
    exchange(p.cli, p.srv, 300000, 300000, 5000, 3000); /* still intact under pressure */
    pair_free(&p);
}
END_TEST

/* A span handed out by pending_output stays put while more output is produced. */
START_TEST(test_pending_output_is_stable)
{
    struct pair p;
    pair_new(&p, NULL, NULL, true, true);
    pair_handshake(&p);
    size_t taken;
    ck_assert_int_eq(agw_tls_session_write(p.cli, "first", 5, &taken), 0);
    const void *data, *again;
    size_t len, len2;
    agw_tls_session_pending_output(p.cli, &data, &len);
    uint8_t copy[256];
    ck_assert_uint_le(len, sizeof(copy));
    memcpy(copy, data, len);
    static uint8_t more[200000];
    for (int i = 0; i < 20; i++) {
        if (agw_tls_session_write(p.cli, more, sizeof(more), &taken) == -EAGAIN)
            break;
    }
    ck_assert_uint_gt(agw_tls_session_output_size(p.cli), 65536);
    ck_assert(memcmp(data, copy, len) == 0);
    agw_tls_session_pending_output(p.cli, &again, &len2);
    ck_assert_ptr_eq(again, data);
    ck_assert_uint_ge(len2, len);
    pair_free(&p);
}
END_TEST

/* ---- the fingerprint hold ---- */

/* The UE starts TLS before the gateway knows its fingerprint: the server waits at the
   ClientHello, nothing crosses, then the Modify's fingerprint lets it go on. */
START_TEST(test_hold_server_until_fingerprint)
{
    struct pair p;
    pair_new(&p, NULL, version_cfg(_i), false, true);
    pair_handshake(&p);
    ck_assert_int_eq(agw_tls_session_state(p.srv), AGW_TLS_HELD);
    ck_assert_int_eq(agw_tls_session_state(p.cli), AGW_TLS_HANDSHAKING);
    ck_assert_int_eq(agw_tls_session_handshake(p.srv), -EAGAIN);
    ck_assert_int_eq(agw_tls_session_state(p.srv), AGW_TLS_HELD);
    assert_no_data_path(p.srv);
    assert_no_data_path(p.cli);
    ck_assert_ptr_null(agw_tls_session_peer_cert(p.srv));
    pair_handshake(&p); /* still nothing moves */
    ck_assert_int_eq(agw_tls_session_state(p.srv), AGW_TLS_HELD);

    set_fp(p.srv, cli_id);
    ck_assert_int_eq(agw_tls_session_state(p.srv), AGW_TLS_HANDSHAKING);
    pair_handshake(&p);
    assert_verified(&p);
    exchange(p.cli, p.srv, 5000, 7000, 16384, 4096);
    pair_free(&p);
}
END_TEST

/* The gateway as TLS client ("Establish TLS session"): it waits at the server's certificate. */
START_TEST(test_hold_client_until_fingerprint)
{
    struct pair p;
    pair_new(&p, NULL, version_cfg(_i), true, false);
    pair_handshake(&p);
    ck_assert_int_eq(agw_tls_session_state(p.cli), AGW_TLS_HELD);
    ck_assert_int_eq(agw_tls_session_state(p.srv), AGW_TLS_HANDSHAKING);
    assert_no_data_path(p.srv);
    assert_no_data_path(p.cli);

    set_fp(p.cli, srv_id);
    pair_handshake(&p);
    assert_verified(&p);
    exchange(p.srv, p.cli, 7000, 5000, 16384, 4096);
    pair_free(&p);
}
END_TEST

/* A client whose key share the server does not take gets a HelloRetryRequest: the hold still
   happens once, and the handshake completes after it. */
START_TEST(test_hold_across_hello_retry)
{
    static const struct agw_tls_ctx_config x25519_only = {.groups = "X25519"};
    static const struct agw_tls_ctx_config p256_first = {.groups = "P-256:X25519"};
    struct pair p;
    pair_new(&p, &x25519_only, &p256_first, false, true);
    pair_handshake(&p);
    ck_assert_int_eq(agw_tls_session_state(p.srv), AGW_TLS_HELD);
    assert_no_data_path(p.cli);
    set_fp(p.srv, cli_id);
    pair_handshake(&p);
    assert_verified(&p);
    exchange(p.cli, p.srv, 3000, 3000, 16384, 4096);
    pair_free(&p);
}
END_TEST

/* A later call replaces the fingerprints while the session is not verified. */
START_TEST(test_fingerprints_replaced_before_verification)
{
    struct pair p;
    pair_new(&p, NULL, NULL, false, true);
    set_fp(p.srv, other_id);
    set_fp(p.srv, cli_id);
    pair_handshake(&p);
    assert_verified(&p);
    pair_free(&p);
}
END_TEST

/* Another certificate than announced: the gateway refuses it with bad_certificate and no
   application byte crosses, in either direction. */
START_TEST(test_mismatch_at_server)
{
    struct pair p;
    pair_new(&p, NULL, version_cfg(_i), false, true);
    set_fp(p.srv, other_id);
    pair_handshake(&p);
    assert_failed(p.srv, AGW_TLS_FAIL_FINGERPRINT_MISMATCH, -EACCES);
    const struct agw_tls_error *e = agw_tls_session_error(p.srv);
    ck_assert_str_eq(e->text, "fingerprint mismatch");
    ck_assert_int_eq(e->alert_sent, SSL_AD_BAD_CERTIFICATE);
    ck_assert_int_eq(e->alert_received, -1);
    /* Kept for the log line: the certificate that was refused. */
    ck_assert_int_eq(X509_cmp(agw_tls_session_peer_cert(p.srv), agw_tls_identity_cert(cli_id)), 0);

    /* In TLS 1.3 the client finishes first and may try to send; it learns on its next read. */
    size_t n = 0;
    if (agw_tls_session_state(p.cli) == AGW_TLS_VERIFIED)
        agw_tls_session_write(p.cli, "secret", 6, &n);
    move(p.cli, p.srv, SIZE_MAX);
    uint8_t buf[64];
    agw_tls_session_read(p.cli, buf, sizeof(buf), &n);
    assert_failed(p.cli, AGW_TLS_FAIL_PEER_ALERT, -ECONNABORTED);
    e = agw_tls_session_error(p.cli);
    ck_assert_int_eq(e->alert_received, SSL_AD_BAD_CERTIFICATE);
    ck_assert_str_eq(e->text, "bad certificate");
    assert_no_data_path(p.srv);
    struct agw_tls_stats st;
    agw_tls_session_stats(p.cli, &st);
    ck_assert_uint_eq(st.plain_in, 0);
    ck_assert_int_eq(agw_tls_session_close(p.srv), -EACCES);
    ck_assert_int_eq(agw_tls_session_set_fingerprints(p.srv, NULL, 0), -EALREADY);
    pair_free(&p);
}
END_TEST

START_TEST(test_mismatch_at_client)
{
    struct pair p;
    pair_new(&p, NULL, version_cfg(_i), true, false);
    set_fp(p.cli, other_id);
    pair_handshake(&p);
    assert_failed(p.cli, AGW_TLS_FAIL_FINGERPRINT_MISMATCH, -EACCES);
    ck_assert_int_eq(agw_tls_session_error(p.cli)->alert_sent, SSL_AD_BAD_CERTIFICATE);
    assert_failed(p.srv, AGW_TLS_FAIL_PEER_ALERT, -ECONNABORTED);
    ck_assert_int_eq(agw_tls_session_error(p.srv)->alert_received, SSL_AD_BAD_CERTIFICATE);
    assert_no_data_path(p.srv);
    assert_no_data_path(p.cli);
    pair_free(&p);
}
END_TEST

/* The hold ends in a refusal just as well. */
START_TEST(test_hold_then_mismatch)
{
    struct pair p;
    pair_new(&p, NULL, NULL, false, true);
    pair_handshake(&p);
    ck_assert_int_eq(agw_tls_session_state(p.srv), AGW_TLS_HELD);
    set_fp(p.srv, other_id);
    pair_handshake(&p);
    assert_failed(p.srv, AGW_TLS_FAIL_FINGERPRINT_MISMATCH, -EACCES);
    uint8_t buf[8];
    size_t n;
    agw_tls_session_read(p.cli, buf, sizeof(buf), &n);
    assert_failed(p.cli, AGW_TLS_FAIL_PEER_ALERT, -ECONNABORTED);
    pair_free(&p);
}
END_TEST

START_TEST(test_no_supported_fingerprint)
{
    struct agw_tls_fingerprint md5;
    static const char text[] = "md5 48:53:56:0A:D3:73:59:89:3A:14:D4:9A:B4:BA:0D:F2";
    ck_assert_int_eq(agw_tls_fingerprint_parse(text, strlen(text), &md5), -ENOTSUP);
    for (size_t n = 0; n <= 1; n++) {
        struct pair p;
        pair_new(&p, NULL, NULL, false, true);
        ck_assert_int_eq(agw_tls_session_set_fingerprints(p.srv, &md5, n), 0);
        pair_handshake(&p);
        assert_failed(p.srv, AGW_TLS_FAIL_NO_SUPPORTED_FINGERPRINT, -EACCES);
        ck_assert_str_eq(agw_tls_session_error(p.srv)->text, "no supported fingerprint");
        ck_assert_int_eq(agw_tls_session_error(p.srv)->alert_sent, SSL_AD_BAD_CERTIFICATE);
        pair_free(&p);
    }
}
END_TEST

/* A client without a certificate is refused when its (empty) Certificate is verified, which the
   hold puts after the fingerprints are known; the reason is distinct. */
START_TEST(test_client_without_certificate)
{
    struct agw_tls_ctx *ctx = ctx_new(NULL);
    struct agw_tls_session *srv = session_new(ctx, srv_id, AGW_TLS_SERVER);
    struct raw r;
    raw_new(&r, _i == 0 ? TLS1_2_VERSION : TLS1_3_VERSION, NULL);
    raw_handshake(&r, srv);
    ck_assert_int_eq(agw_tls_session_state(srv), AGW_TLS_HELD);
    set_fp(srv, cli_id);
    int raw_err = raw_handshake(&r, srv);
    assert_failed(srv, AGW_TLS_FAIL_NO_PEER_CERT, -EACCES);
    const struct agw_tls_error *e = agw_tls_session_error(srv);
    ck_assert_str_eq(e->text, "no peer certificate");
    ck_assert_int_eq(e->alert_sent,
                     _i == 0 ? SSL_AD_HANDSHAKE_FAILURE : SSL_AD_CERTIFICATE_REQUIRED);
    ck_assert_ptr_null(agw_tls_session_peer_cert(srv));
    /* The bare client sees the alert: in its handshake in 1.2, on its first read in 1.3. */
    if (_i == 1) {
        ck_assert_int_eq(raw_err, SSL_ERROR_NONE);
        uint8_t buf[8];
        ERR_clear_error();
        raw_err = SSL_get_error(r.ssl, SSL_read(r.ssl, buf, sizeof(buf)));
    }
    ck_assert_int_eq(raw_err, SSL_ERROR_SSL);
    assert_no_data_path(srv);
    raw_free(&r);
    agw_tls_session_free(srv);
    agw_tls_ctx_unref(ctx);
}
END_TEST

/* ---- close ---- */

START_TEST(test_close_notify_both_directions)
{
    struct pair p;
    pair_new(&p, NULL, version_cfg(_i), true, true);
    pair_handshake(&p);
    exchange(p.cli, p.srv, 1000, 1000, 16384, 4096);
    uint8_t buf[64];
    size_t n = 99;

    ck_assert_int_eq(agw_tls_session_close(p.cli), 0);
    ck_assert_int_eq(agw_tls_session_close(p.cli), 0);
    ck_assert_int_eq(agw_tls_session_write(p.cli, "x", 1, &n), -EPIPE);
    ck_assert_uint_gt(agw_tls_session_output_size(p.cli), 0);
    move(p.cli, p.srv, SIZE_MAX);
    ck_assert(!agw_tls_session_peer_closed(p.srv));
    ck_assert_int_eq(agw_tls_session_read(p.srv, buf, sizeof(buf), &n), 0);
    ck_assert_uint_eq(n, 0); /* end of stream */
    ck_assert(agw_tls_session_peer_closed(p.srv));
    ck_assert_int_eq(agw_tls_session_read(p.srv, buf, sizeof(buf), &n), 0);
    ck_assert_uint_eq(n, 0);

    /* Half-close: the other direction still carries data. */
    ck_assert_int_eq(agw_tls_session_write(p.srv, "late reply", 10, &n), 0);
    ck_assert_uint_eq(n, 10);
    ck_assert_int_eq(agw_tls_session_close(p.srv), 0);
    move(p.srv, p.cli, SIZE_MAX);
    ck_assert_int_eq(agw_tls_session_read(p.cli, buf, sizeof(buf), &n), 0);
    ck_assert_uint_eq(n, 10);
    ck_assert(memcmp(buf, "late reply", 10) == 0);
    ck_assert(agw_tls_session_peer_closed(p.cli));
    ck_assert_int_eq(agw_tls_session_read(p.cli, buf, sizeof(buf), &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(agw_tls_session_state(p.cli), AGW_TLS_VERIFIED);
    ck_assert_int_eq(agw_tls_session_state(p.srv), AGW_TLS_VERIFIED);
    pair_free(&p);
}
END_TEST

/* ---- hostile and broken input ---- */

/* Random bytes in place of the peer's flight, at either role and at any size: a protocol
   failure every time, never a crash (ASan builds run this too). */
START_TEST(test_garbage_handshake)
{
    rng_state = 0x5eed0003ULL;
    static uint8_t junk[20000];
    struct agw_tls_ctx *ctx = ctx_new(NULL);
    for (int i = 0; i < 200; i++) {
        enum agw_tls_role role = i % 2 ? AGW_TLS_CLIENT : AGW_TLS_SERVER;
        struct agw_tls_session *s = session_new(ctx, srv_id, role);
        set_fp(s, cli_id);
        agw_tls_session_handshake(s);
        size_t len = 1 + (size_t)(rnd() % (i < 100 ? 64 : sizeof(junk)));
        fill_random(junk, len);
        if (i % 4 >= 2) { /* a plausible record header, random body */
            junk[0] = 22;
            junk[1] = 3;
            junk[2] = (uint8_t)(rnd() % 4);
        }
        size_t used = 0;
        int rc = agw_tls_session_feed(s, junk, len, &used);
        ck_assert_int_eq(rc, 0);
        rc = agw_tls_session_handshake(s);
        if (rc == -EAGAIN) { /* waiting for the rest of a record that never comes */
            agw_tls_session_feed_eof(s);
            rc = agw_tls_session_handshake(s);
        }
        ck_assert_msg(rc == -EPROTO || rc == -ECONNABORTED, "case %d: %d", i, rc);
        ck_assert_int_eq(agw_tls_session_state(s), AGW_TLS_FAILED);
        assert_no_data_path(s);
        ck_assert_int_eq(agw_tls_session_feed(s, junk, 1, &used), rc);
        ck_assert_uint_eq(ERR_peek_error(), 0);
        agw_tls_session_free(s);
    }
    agw_tls_ctx_unref(ctx);
}
END_TEST

/* A forged record in an established session fails the record's authentication. */
START_TEST(test_garbage_record_after_handshake)
{
    rng_state = 0x5eed0004ULL;
    struct pair p;
    pair_new(&p, NULL, version_cfg(_i), true, true);
    pair_handshake(&p);
    exchange(p.cli, p.srv, 100, 100, 16384, 4096);
    uint8_t rec[5 + 200];
    fill_random(rec, sizeof(rec));
    rec[0] = 23;
    rec[1] = 3;
    rec[2] = 3;
    rec[3] = 0;
    rec[4] = 200;
    size_t used, n;
    ck_assert_int_eq(agw_tls_session_feed(p.srv, rec, sizeof(rec), &used), 0);
    uint8_t buf[256];
    ck_assert_int_eq(agw_tls_session_read(p.srv, buf, sizeof(buf), &n), -EPROTO);
    ck_assert_uint_eq(n, 0);
    assert_failed(p.srv, AGW_TLS_FAIL_PROTOCOL, -EPROTO);
    ck_assert_int_eq(agw_tls_session_error(p.srv)->alert_sent, SSL_AD_BAD_RECORD_MAC);
    move(p.srv, p.cli, SIZE_MAX);
    ck_assert_int_eq(agw_tls_session_read(p.cli, buf, sizeof(buf), &n), -ECONNABORTED);
    pair_free(&p);
}
END_TEST

/* The client's first flight cut anywhere: the server waits for the rest, and end of file before
   it is a truncation, reported as such. */
START_TEST(test_truncated_handshake)
{
    struct agw_tls_ctx *ctx = ctx_new(version_cfg(_i));
    struct agw_tls_session *cli = session_new(ctx, cli_id, AGW_TLS_CLIENT);
    ck_assert_int_eq(agw_tls_session_handshake(cli), -EAGAIN);
    const void *hello;
    size_t hello_len;
    agw_tls_session_pending_output(cli, &hello, &hello_len);
    ck_assert_uint_gt(hello_len, 100);
    size_t cuts[] = {1, 4, 5, 6, hello_len / 2, hello_len - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        struct agw_tls_session *srv = session_new(ctx, srv_id, AGW_TLS_SERVER);
        set_fp(srv, cli_id);
        size_t used;
        ck_assert_int_eq(agw_tls_session_feed(srv, hello, cuts[i], &used), 0);
        ck_assert_int_eq(agw_tls_session_handshake(srv), -EAGAIN);
        ck_assert_int_eq(agw_tls_session_state(srv), AGW_TLS_HANDSHAKING);
        ck_assert_uint_eq(agw_tls_session_output_size(srv), 0);
        agw_tls_session_feed_eof(srv);
        ck_assert_int_eq(agw_tls_session_handshake(srv), -EPROTO);
        assert_failed(srv, AGW_TLS_FAIL_PROTOCOL, -EPROTO);
        ck_assert_msg(strstr(agw_tls_session_error(srv)->text, "unexpected eof") != NULL, "%s",
                      agw_tls_session_error(srv)->text);
        agw_tls_session_free(srv);
    }
    /* The server's flight cut short, seen from the client. */
    struct agw_tls_session *srv = session_new(ctx, srv_id, AGW_TLS_SERVER);
    set_fp(srv, cli_id);
    set_fp(cli, srv_id);
    size_t used;
    ck_assert_int_eq(agw_tls_session_feed(srv, hello, hello_len, &used), 0);
    ck_assert_int_eq(agw_tls_session_handshake(srv), -EAGAIN);
    const void *flight;
    size_t flight_len;
    agw_tls_session_pending_output(srv, &flight, &flight_len);
    ck_assert_int_eq(agw_tls_session_feed(cli, flight, flight_len - 1, &used), 0);
    ck_assert_int_eq(agw_tls_session_handshake(cli), -EAGAIN);
    agw_tls_session_feed_eof(cli);
    ck_assert_int_eq(agw_tls_session_feed(cli, flight, 1, &used), -EPIPE);
    ck_assert_int_eq(agw_tls_session_handshake(cli), -EPROTO);
    agw_tls_session_free(srv);
    agw_tls_session_free(cli);
    agw_tls_ctx_unref(ctx);
}
END_TEST

/* An established session cut without close_notify is a truncation, not an end of stream. */
START_TEST(test_truncated_stream)
{
    struct pair p;
    pair_new(&p, NULL, NULL, true, true);
    pair_handshake(&p);
    exchange(p.cli, p.srv, 100, 100, 16384, 4096);
    agw_tls_session_feed_eof(p.srv);
    uint8_t buf[8];
    size_t n;
    ck_assert_int_eq(agw_tls_session_read(p.srv, buf, sizeof(buf), &n), -EPROTO);
    ck_assert(!agw_tls_session_peer_closed(p.srv));
    pair_free(&p);
}
END_TEST

START_TEST(test_min_tls13_refuses_tls12_client)
{
    struct pair p;
    pair_new(&p, &tls13, &tls12, true, true);
    pair_handshake(&p);
    assert_failed(p.srv, AGW_TLS_FAIL_PROTOCOL, -EPROTO);
    ck_assert_int_eq(agw_tls_session_error(p.srv)->alert_sent, SSL_AD_PROTOCOL_VERSION);
    assert_failed(p.cli, AGW_TLS_FAIL_PEER_ALERT, -ECONNABORTED);
    ck_assert_int_eq(agw_tls_session_error(p.cli)->alert_received, SSL_AD_PROTOCOL_VERSION);
    pair_free(&p);
}
END_TEST

/* A TLS 1.2 client asking to renegotiate gets no_renegotiation, never a new handshake. */
START_TEST(test_renegotiation_refused)
{
    struct agw_tls_ctx *ctx = ctx_new(NULL);
    struct agw_tls_session *srv = session_new(ctx, srv_id, AGW_TLS_SERVER);
    set_fp(srv, cli_id);
    struct raw r;
    raw_new(&r, TLS1_2_VERSION, cli_id);
    ck_assert_int_eq(raw_handshake(&r, srv), SSL_ERROR_NONE);
    ck_assert_int_eq(agw_tls_session_state(srv), AGW_TLS_VERIFIED);
    ck_assert_int_eq(SSL_write(r.ssl, "ping", 4), 4);
    raw_move(&r, srv);
    uint8_t buf[16];
    size_t n;
    ck_assert_int_eq(agw_tls_session_read(srv, buf, sizeof(buf), &n), 0);
    ck_assert_uint_eq(n, 4);

    ck_assert_int_eq(SSL_renegotiate(r.ssl), 1);
    int rc = SSL_do_handshake(r.ssl);
    ck_assert_int_eq(SSL_get_error(r.ssl, rc), SSL_ERROR_WANT_READ);
    raw_move(&r, srv); /* the new ClientHello */
    ck_assert_int_eq(agw_tls_session_read(srv, buf, sizeof(buf), &n), -EAGAIN);
    ck_assert_int_eq(agw_tls_session_state(srv), AGW_TLS_VERIFIED);
    raw_move(&r, srv); /* the warning alert */
    ERR_clear_error();
    rc = SSL_do_handshake(r.ssl);
    ck_assert_int_eq(SSL_get_error(r.ssl, rc), SSL_ERROR_SSL);
    ck_assert_int_eq(ERR_GET_REASON(ERR_peek_error()), SSL_R_NO_RENEGOTIATION);
    raw_free(&r);
    agw_tls_session_free(srv);
    agw_tls_ctx_unref(ctx);
}
END_TEST

static Suite *tls_session_suite(void)
{
    Suite *s = suite_create("tls_session");
    TCase *tc = tcase_create("context");
    tcase_add_test(tc, test_ctx_defaults_and_errors);
    tcase_add_test(tc, test_session_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("handshake");
    tcase_add_loop_test(tc, test_handshake_versions, 0, 2);
    tcase_add_test(tc, test_handshake_chacha20);
    tcase_add_test(tc, test_identity_bound_at_creation);
    tcase_add_test(tc, test_many_identities);
    suite_add_tcase(s, tc);

    tc = tcase_create("data");
    tcase_set_timeout(tc, 60); /* ASan builds */
    tcase_add_loop_test(tc, test_data_large_16k_feeds, 0, 2);
    tcase_add_loop_test(tc, test_data_one_byte_feeds, 0, 2);
    tcase_add_test(tc, test_input_space_zero_copy);
    tcase_add_test(tc, test_stats_count_bytes);
    tcase_add_test(tc, test_backpressure);
    tcase_add_test(tc, test_pending_output_is_stable);
    suite_add_tcase(s, tc);

    tc = tcase_create("hold");
    tcase_add_loop_test(tc, test_hold_server_until_fingerprint, 0, 2);
    tcase_add_loop_test(tc, test_hold_client_until_fingerprint, 0, 2);
    tcase_add_test(tc, test_hold_across_hello_retry);
    tcase_add_test(tc, test_fingerprints_replaced_before_verification);
    tcase_add_loop_test(tc, test_mismatch_at_server, 0, 2);
    tcase_add_loop_test(tc, test_mismatch_at_client, 0, 2);
    tcase_add_test(tc, test_hold_then_mismatch);
    tcase_add_test(tc, test_no_supported_fingerprint);
    tcase_add_loop_test(tc, test_client_without_certificate, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("close");
    tcase_add_loop_test(tc, test_close_notify_both_directions, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("hostile");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_garbage_handshake);
    tcase_add_loop_test(tc, test_garbage_record_after_handshake, 0, 2);
    tcase_add_loop_test(tc, test_truncated_handshake, 0, 2);
    tcase_add_test(tc, test_truncated_stream);
    tcase_add_test(tc, test_min_tls13_refuses_tls12_client);
    tcase_add_test(tc, test_renegotiation_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (agw_tls_identity_generate("ims-agw.test", 30, &srv_id) != 0 ||
        agw_tls_identity_generate("ue.test", 30, &cli_id) != 0 ||
        agw_tls_identity_generate("other.test", 30, &other_id) != 0) {
        fprintf(stderr, "cannot generate identities\n");
        return 1;
    }
    SRunner *sr = srunner_create(tls_session_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    agw_tls_identity_unref(srv_id);
    agw_tls_identity_unref(cli_id);
    agw_tls_identity_unref(other_id);
    return failed == 0 ? 0 : 1;
}
