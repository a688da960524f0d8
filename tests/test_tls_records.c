/* Check suite for the TLS 1.3 records a session runs after its handshake (tls/record13.c and its
   use in tls/session.c): a bare OpenSSL peer for interoperability (KeyUpdate both ways, session
   tickets, close_notify, alerts), and records crafted with the peer's own traffic secret for
   everything OpenSSL would never send. */
#include "tls/cert.h"
#include "tls/record13.h"
#include "tls/session.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static struct agw_tls_identity *gw_id; /* the session under test */
static struct agw_tls_identity *ue_id; /* the OpenSSL peer */

/* A bare OpenSSL peer over memory BIOs, with the secret its key log gave. */
struct peer {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *in;  /* what the session sent, for the peer to read */
    BIO *out; /* what the peer sent */
    uint8_t tx_secret[AGW_TLS13_SECRET_MAX];
    size_t tx_secret_len;
    unsigned key_updates_seen; /* KeyUpdate messages the peer received */
    unsigned tickets;          /* NewSessionTicket messages the peer received */
    uint8_t *backlog;          /* sent by the peer, not yet taken by the session */
    size_t backlog_len;
};

static int peer_index = -1;

static int accept_any(int ok, X509_STORE_CTX *xs)
{
    (void)ok;
    (void)xs;
    return 1;
}

static int hex_value(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void peer_keylog(const SSL *ssl, const char *line)
{
    struct peer *p = SSL_get_ex_data(ssl, peer_index);
    const char *want = SSL_is_server(ssl) ? "SERVER_TRAFFIC_SECRET_0 " : "CLIENT_TRAFFIC_SECRET_0 ";
    if (strncmp(line, want, strlen(want)) != 0)
        return;
    const char *hex = strrchr(line, ' ') + 1;
    size_t n = strlen(hex) / 2;
    ck_assert_uint_le(n, sizeof(p->tx_secret));
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        ck_assert(hi >= 0 && lo >= 0);
        p->tx_secret[i] = (uint8_t)(hi << 4 | lo);
    }
    p->tx_secret_len = n;
}

static void peer_msg(int write_p, int version, int content_type, const void *buf, size_t len,
                     SSL *ssl, void *arg)
{
    (void)version;
    (void)arg;
    struct peer *p = SSL_get_ex_data(ssl, peer_index);
    if (write_p || content_type != SSL3_RT_HANDSHAKE || len < 1)
        return;
    uint8_t type = ((const uint8_t *)buf)[0];
    if (type == 24)
        p->key_updates_seen++;
    else if (type == 4)
        p->tickets++;
}

static void peer_new(struct peer *p, bool server, const char *suites, int tickets)
{
    memset(p, 0, sizeof(*p));
    p->ctx = SSL_CTX_new(TLS_method());
    ck_assert_ptr_nonnull(p->ctx);
    SSL_CTX_set_min_proto_version(p->ctx, TLS1_3_VERSION);
    if (suites != NULL)
        ck_assert_int_eq(SSL_CTX_set_ciphersuites(p->ctx, suites), 1);
    SSL_CTX_set_num_tickets(p->ctx, (size_t)tickets);
    SSL_CTX_set_verify(p->ctx, SSL_VERIFY_PEER, accept_any);
    SSL_CTX_set_keylog_callback(p->ctx, peer_keylog);
    SSL_CTX_set_msg_callback(p->ctx, peer_msg);
    ck_assert_int_eq(SSL_CTX_use_certificate(p->ctx, agw_tls_identity_cert(ue_id)), 1);
    ck_assert_int_eq(SSL_CTX_use_PrivateKey(p->ctx, agw_tls_identity_key(ue_id)), 1);
    p->ssl = SSL_new(p->ctx);
    ck_assert_ptr_nonnull(p->ssl);
    SSL_set_ex_data(p->ssl, peer_index, p);
    p->in = BIO_new(BIO_s_mem());
    p->out = BIO_new(BIO_s_mem());
    SSL_set_bio(p->ssl, p->in, p->out);
    if (server)
        SSL_set_accept_state(p->ssl);
    else
        SSL_set_connect_state(p->ssl);
}

static void peer_free(struct peer *p)
{
    SSL_free(p->ssl);
    SSL_CTX_free(p->ctx);
    free(p->backlog);
}

/* Moves what each side has sent to the other; true when something moved. What the session
   cannot take yet (its input bound) waits in the peer's backlog. */
static bool shuttle(struct peer *p, struct agw_tls_session *s)
{
    bool moved = false;
    char buf[65536];
    int n;
    while ((n = BIO_read(p->out, buf, sizeof(buf))) > 0) {
        p->backlog = realloc(p->backlog, p->backlog_len + (size_t)n);
        memcpy(p->backlog + p->backlog_len, buf, (size_t)n);
        p->backlog_len += (size_t)n;
    }
    if (p->backlog_len > 0) {
        size_t used = 0;
        int rc = agw_tls_session_feed(s, p->backlog, p->backlog_len, &used);
        ck_assert_msg(rc == 0 || rc == -EAGAIN, "feed %d", rc);
        memmove(p->backlog, p->backlog + used, p->backlog_len - used);
        p->backlog_len -= used;
        moved = used > 0;
    }
    const void *data;
    size_t len;
    for (agw_tls_session_pending_output(s, &data, &len); len > 0;
         agw_tls_session_pending_output(s, &data, &len)) {
        ck_assert_int_eq(BIO_write(p->in, data, (int)len), (int)len);
        ck_assert_int_eq(agw_tls_session_consume_output(s, len), 0);
        moved = true;
    }
    return moved;
}

/* Runs both handshakes to the end; the session must be VERIFIED and on TLS 1.3. */
static void handshake(struct peer *p, struct agw_tls_session *s)
{
    for (int i = 0; i < 50; i++) {
        int prc = SSL_do_handshake(p->ssl);
        int src = agw_tls_session_handshake(s);
        bool moved = shuttle(p, s);
        if (prc == 1 && src == 0 && !moved)
            break;
    }
    ck_assert_int_eq(SSL_is_init_finished(p->ssl), 1);
    ck_assert_int_eq(agw_tls_session_state(s), AGW_TLS_VERIFIED);
    ck_assert_str_eq(agw_tls_session_version(s), "TLSv1.3");
    ck_assert_uint_gt(p->tx_secret_len, 0);
}

struct fixture {
    struct agw_tls_ctx *ctx;
    struct agw_tls_session *s;
    struct peer p;
};

static void fixture_new(struct fixture *f, enum agw_tls_role role, const char *suites,
                        int peer_tickets)
{
    char err[256] = "";
    struct agw_tls_ctx_config cfg = {.min_version = AGW_TLS_VERSION_1_3, .ciphersuites = suites};
    ck_assert_int_eq(agw_tls_ctx_new(&cfg, &f->ctx, err, sizeof(err)), 0);
    ck_assert_int_eq(agw_tls_session_new(f->ctx, gw_id, role, &f->s), 0);
    ck_assert_int_eq(agw_tls_session_set_fingerprints(f->s, agw_tls_identity_fingerprint(ue_id), 1),
                     0);
    peer_new(&f->p, role == AGW_TLS_CLIENT, suites, peer_tickets);
    handshake(&f->p, f->s);
}

static void fixture_free(struct fixture *f)
{
    agw_tls_session_free(f->s);
    agw_tls_ctx_unref(f->ctx);
    peer_free(&f->p);
}

static void fill(uint8_t *b, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        b[i] = (uint8_t)(seed >> 16);
    }
}

/* The peer sends n bytes; the session must read exactly them. */
static void peer_to_session(struct fixture *f, size_t n, uint32_t seed)
{
    uint8_t *want = malloc(n), *got = malloc(n + 1);
    ck_assert(want != NULL && got != NULL);
    fill(want, n, seed);
    size_t sent = 0, have = 0;
    while (have < n) {
        if (sent < n) {
            size_t w = 0;
            ck_assert_int_eq(SSL_write_ex(f->p.ssl, want + sent, n - sent, &w), 1);
            sent += w;
        }
        shuttle(&f->p, f->s);
        size_t r = 0;
        int rc = agw_tls_session_read(f->s, got + have, n + 1 - have, &r);
        ck_assert_msg(rc == 0 || rc == -EAGAIN, "read %d", rc);
        have += r;
        ck_assert_uint_le(have, n);
    }
    ck_assert(memcmp(want, got, n) == 0);
    free(want);
    free(got);
}

/* The session sends n bytes; the peer must read exactly them. */
static void session_to_peer(struct fixture *f, size_t n, uint32_t seed)
{
    uint8_t *want = malloc(n), *got = malloc(n);
    ck_assert(want != NULL && got != NULL);
    fill(want, n, seed);
    size_t sent = 0, have = 0;
    for (int i = 0; i < 100000 && have < n; i++) {
        if (sent < n) {
            size_t t = 0;
            int rc = agw_tls_session_write(f->s, want + sent, n - sent, &t);
            ck_assert(rc == 0 || rc == -EAGAIN);
            sent += t;
        }
        shuttle(&f->p, f->s);
        size_t r = 0;
        if (SSL_read_ex(f->p.ssl, got + have, n - have, &r) == 1)
            have += r;
        else
            ck_assert_int_eq(SSL_get_error(f->p.ssl, 0), SSL_ERROR_WANT_READ);
    }
    ck_assert_uint_eq(have, n);
    ck_assert(memcmp(want, got, n) == 0);
    free(want);
    free(got);
}

/* ---- interoperability with OpenSSL ---- */

START_TEST(test_data_both_ways)
{
    static const char *const suites[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                         "TLS_CHACHA20_POLY1305_SHA256"};
    struct fixture f;
    fixture_new(&f, _i % 2 == 0 ? AGW_TLS_SERVER : AGW_TLS_CLIENT, suites[_i / 2], 0);
    ck_assert_str_eq(agw_tls_session_cipher(f.s), suites[_i / 2]);
    ck_assert_ptr_null(agw_tls_session_peer_cert(f.s));
    peer_to_session(&f, 1, 1);
    session_to_peer(&f, 1, 2);
    peer_to_session(&f, 300000, 3);
    session_to_peer(&f, 300000, 4);
    struct agw_tls_stats st;
    agw_tls_session_stats(f.s, &st);
    ck_assert_uint_eq(st.plain_in, 300001);
    ck_assert_uint_eq(st.plain_out, 300001);
    fixture_free(&f);
}
END_TEST

/* The peer asks for our KeyUpdate: its keys change, ours follow, data keeps flowing. */
START_TEST(test_key_update_requested)
{
    struct fixture f;
    fixture_new(&f, _i == 0 ? AGW_TLS_SERVER : AGW_TLS_CLIENT, NULL, 0);
    for (int round = 0; round < 3; round++) {
        ck_assert_int_eq(SSL_key_update(f.p.ssl, SSL_KEY_UPDATE_REQUESTED), 1);
        peer_to_session(&f, 5000, 10 + (uint32_t)round);
        session_to_peer(&f, 5000, 20 + (uint32_t)round);
        ck_assert_uint_eq(f.p.key_updates_seen, (unsigned)round + 1);
    }
    ck_assert_int_eq(SSL_key_update(f.p.ssl, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    peer_to_session(&f, 5000, 30);
    session_to_peer(&f, 5000, 31);
    ck_assert_uint_eq(f.p.key_updates_seen, 3);
    fixture_free(&f);
}
END_TEST

/* A server's tickets reach our client after its handshake: ignored, nothing else changes. */
START_TEST(test_tickets_ignored)
{
    struct fixture f;
    fixture_new(&f, AGW_TLS_CLIENT, NULL, 3);
    peer_to_session(&f, 1000, 40);
    session_to_peer(&f, 1000, 41);
    fixture_free(&f);
}
END_TEST

START_TEST(test_close_notify_both_ways)
{
    struct fixture f;
    fixture_new(&f, AGW_TLS_SERVER, NULL, 0);
    peer_to_session(&f, 100, 50);
    ck_assert_int_eq(agw_tls_session_close(f.s), 0);
    ck_assert_int_eq(agw_tls_session_close(f.s), 0);
    size_t t;
    ck_assert_int_eq(agw_tls_session_write(f.s, "x", 1, &t), -EPIPE);
    shuttle(&f.p, f.s);
    char b[16];
    size_t r;
    ck_assert_int_eq(SSL_read_ex(f.p.ssl, b, sizeof(b), &r), 0);
    ck_assert_int_eq(SSL_get_error(f.p.ssl, 0), SSL_ERROR_ZERO_RETURN);
    /* Half-closed: the peer may still send, then closes too. */
    ck_assert_int_eq(SSL_write_ex(f.p.ssl, "late", 4, &t), 1);
    ck_assert_int_ge(SSL_shutdown(f.p.ssl), 0);
    shuttle(&f.p, f.s);
    ck_assert_int_eq(agw_tls_session_read(f.s, b, sizeof(b), &r), 0);
    ck_assert_uint_eq(r, 4);
    ck_assert(memcmp(b, "late", 4) == 0);
    ck_assert(agw_tls_session_peer_closed(f.s));
    ck_assert_int_eq(agw_tls_session_read(f.s, b, sizeof(b), &r), 0);
    ck_assert_uint_eq(r, 0);
    fixture_free(&f);
}
END_TEST

/* A byte flipped in flight: bad_record_mac goes out and the session fails. */
START_TEST(test_tampered_record)
{
    struct fixture f;
    fixture_new(&f, AGW_TLS_SERVER, NULL, 0);
    size_t w;
    ck_assert_int_eq(SSL_write_ex(f.p.ssl, "hello", 5, &w), 1);
    uint8_t rec[64];
    int n = BIO_read(f.p.out, rec, sizeof(rec));
    ck_assert_int_gt(n, 10);
    rec[n - 3] ^= 0x40;
    size_t used;
    ck_assert_int_eq(agw_tls_session_feed(f.s, rec, (size_t)n, &used), 0);
    char b[16];
    size_t r;
    ck_assert_int_eq(agw_tls_session_read(f.s, b, sizeof(b), &r), -EPROTO);
    ck_assert_uint_eq(r, 0);
    const struct agw_tls_error *e = agw_tls_session_error(f.s);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->alert_sent, SSL_AD_BAD_RECORD_MAC);
    ck_assert_str_eq(e->text, "decryption failed or bad record mac");
    shuttle(&f.p, f.s);
    ck_assert_int_eq(SSL_read_ex(f.p.ssl, b, sizeof(b), &r), 0);
    ck_assert_int_eq(SSL_get_error(f.p.ssl, 0), SSL_ERROR_SSL);
    fixture_free(&f);
}
END_TEST

/* The peer's fatal alert after the handshake (its refusal of a TLS 1.3 client comes this way). */
START_TEST(test_peer_fatal_alert)
{
    struct fixture f;
    fixture_new(&f, AGW_TLS_SERVER, NULL, 0);
    struct agw_tls13_suites suites;
    ck_assert_int_eq(agw_tls13_suites_load(&suites), 0);
    struct agw_tls13_dir d;
    ck_assert_int_eq(agw_tls13_dir_init(&d, agw_tls13_suite_find(&suites, 0x1301), f.p.tx_secret,
                                        f.p.tx_secret_len),
                     0);
    uint8_t rec[64];
    const uint8_t alert[2] = {2, 42};
    long n = agw_tls13_seal(&d, AGW_TLS13_ALERT, alert, 2, rec);
    ck_assert_int_gt(n, 0);
    size_t used;
    ck_assert_int_eq(agw_tls_session_feed(f.s, rec, (size_t)n, &used), 0);
    char b[8];
    size_t r;
    ck_assert_int_eq(agw_tls_session_read(f.s, b, sizeof(b), &r), -ECONNABORTED);
    const struct agw_tls_error *e = agw_tls_session_error(f.s);
    ck_assert_int_eq(e->reason, AGW_TLS_FAIL_PEER_ALERT);
    ck_assert_int_eq(e->alert_received, 42);
    ck_assert_int_eq(e->alert_sent, -1);
    agw_tls13_dir_clear(&d);
    agw_tls13_suites_free(&suites);
    fixture_free(&f);
}
END_TEST

/* End of file without close_notify is a truncation, after the bytes that did arrive. */
START_TEST(test_truncation)
{
    struct fixture f;
    fixture_new(&f, AGW_TLS_SERVER, NULL, 0);
    size_t w;
    ck_assert_int_eq(SSL_write_ex(f.p.ssl, "whole", 5, &w), 1);
    ck_assert_int_eq(SSL_write_ex(f.p.ssl, "cut", 3, &w), 1);
    uint8_t buf[256];
    int n = BIO_read(f.p.out, buf, sizeof(buf));
    ck_assert_int_gt(n, 30);
    size_t used;
    ck_assert_int_eq(agw_tls_session_feed(f.s, buf, (size_t)n - 4, &used), 0);
    agw_tls_session_feed_eof(f.s);
    char b[16];
    size_t r;
    ck_assert_int_eq(agw_tls_session_read(f.s, b, sizeof(b), &r), 0);
    ck_assert_uint_eq(r, 5);
    ck_assert_int_eq(agw_tls_session_state(f.s), AGW_TLS_FAILED);
    ck_assert_str_eq(agw_tls_session_error(f.s)->text, "unexpected eof while reading");
    ck_assert_int_eq(agw_tls_session_read(f.s, b, sizeof(b), &r), -EPROTO);
    fixture_free(&f);
}
END_TEST

/* ---- records OpenSSL would never send, sealed with the peer's own key ---- */

struct crafted {
    struct fixture f;
    struct agw_tls13_suites suites;
    struct agw_tls13_dir d; /* the peer's sending direction */
};

static void crafted_new(struct crafted *c, enum agw_tls_role role)
{
    fixture_new(&c->f, role, NULL, 0);
    ck_assert_int_eq(agw_tls13_suites_load(&c->suites), 0);
    ck_assert_int_eq(agw_tls13_dir_init(&c->d, agw_tls13_suite_find(&c->suites, 0x1301),
                                        c->f.p.tx_secret, c->f.p.tx_secret_len),
                     0);
}

static void crafted_free(struct crafted *c)
{
    agw_tls13_dir_clear(&c->d);
    agw_tls13_suites_free(&c->suites);
    fixture_free(&c->f);
}

static void send_crafted(struct crafted *c, uint8_t type, const void *content, size_t len)
{
    uint8_t rec[AGW_TLS13_RECORD_MAX];
    long n = agw_tls13_seal(&c->d, type, content, len, rec);
    ck_assert_int_gt(n, 0);
    size_t used;
    ck_assert_int_eq(agw_tls_session_feed(c->f.s, rec, (size_t)n, &used), 0);
    ck_assert_uint_eq(used, (size_t)n);
}

static void send_raw(struct crafted *c, const void *bytes, size_t len)
{
    size_t used;
    ck_assert_int_eq(agw_tls_session_feed(c->f.s, bytes, len, &used), 0);
    ck_assert_uint_eq(used, len);
}

/* Reads until the session fails; returns the alert it sent. */
static int expect_failure(struct crafted *c, const char *text)
{
    char b[64];
    size_t r;
    int rc = agw_tls_session_read(c->f.s, b, sizeof(b), &r);
    ck_assert_msg(rc == -EPROTO, "read %d", rc);
    const struct agw_tls_error *e = agw_tls_session_error(c->f.s);
    ck_assert_str_eq(e->text, text);
    /* The alert went out, sealed: the peer reads it as a fatal alert. */
    shuttle(&c->f.p, c->f.s);
    ck_assert_int_eq(SSL_read_ex(c->f.p.ssl, b, sizeof(b), &r), 0);
    ck_assert_int_eq(SSL_get_error(c->f.p.ssl, 0), SSL_ERROR_SSL);
    return e->alert_sent;
}

static void expect_data(struct crafted *c, const char *want)
{
    char b[64];
    size_t r = 0;
    ck_assert_int_eq(agw_tls_session_read(c->f.s, b, sizeof(b), &r), 0);
    ck_assert_uint_eq(r, strlen(want));
    ck_assert(memcmp(b, want, r) == 0);
}

/* A KeyUpdate split over two records, and padding after the content type. */
START_TEST(test_fragmented_key_update_and_padding)
{
    struct crafted c;
    crafted_new(&c, AGW_TLS_SERVER);
    const uint8_t ku[5] = {24, 0, 0, 1, 1};
    send_crafted(&c, AGW_TLS13_HANDSHAKE, ku, 2);
    send_crafted(&c, AGW_TLS13_HANDSHAKE, ku + 2, 3);
    ck_assert_int_eq(agw_tls13_dir_update(&c.d), 0);
    uint8_t padded[100] = "after";
    padded[5] = AGW_TLS13_APPLICATION_DATA; /* then zeros: seal adds the type after them */
    uint8_t rec[256];
    long n = agw_tls13_seal(&c.d, 0, padded, sizeof(padded), rec);
    ck_assert_int_gt(n, 0);
    send_raw(&c, rec, (size_t)n);
    expect_data(&c, "after");
    /* It asked for ours: the peer sees it and reads what follows under the new key. */
    session_to_peer(&c.f, 1000, 60);
    ck_assert_uint_eq(c.f.p.key_updates_seen, 1);
    crafted_free(&c);
}
END_TEST

START_TEST(test_hostile_records)
{
    struct crafted c;
    crafted_new(&c, AGW_TLS_SERVER);
    int alert = 0;
    switch (_i) {
    case 0: { /* change_cipher_spec after the handshake, in clear */
        const uint8_t ccs[6] = {20, 3, 3, 0, 1, 1};
        send_raw(&c, ccs, sizeof(ccs));
        alert = expect_failure(&c, "unprotected record after the handshake");
        ck_assert_int_eq(alert, SSL_AD_UNEXPECTED_MESSAGE);
        break;
    }
    case 1: { /* a length past 2^14 + 256 */
        const uint8_t big[5] = {23, 3, 3, 0x41, 0x01};
        send_raw(&c, big, sizeof(big));
        alert = expect_failure(&c, "record overflow");
        ck_assert_int_eq(alert, SSL_AD_RECORD_OVERFLOW);
        break;
    }
    case 2: { /* all padding, no content type */
        uint8_t zeros[32] = {0};
        uint8_t rec[128];
        /* type 0 with zero content and zero padding: seal puts a 0 type byte */
        long n = agw_tls13_seal(&c.d, 0, zeros, sizeof(zeros), rec);
        send_raw(&c, rec, (size_t)n);
        alert = expect_failure(&c, "record without a content type");
        ck_assert_int_eq(alert, SSL_AD_UNEXPECTED_MESSAGE);
        break;
    }
    case 3: { /* a content type TLS does not define */
        send_crafted(&c, 0x78, "x", 1);
        alert = expect_failure(&c, "unexpected record type");
        ck_assert_int_eq(alert, SSL_AD_UNEXPECTED_MESSAGE);
        break;
    }
    case 4: { /* a NewSessionTicket sent to a server */
        const uint8_t nst[8] = {4, 0, 0, 4, 0, 0, 0, 0};
        send_crafted(&c, AGW_TLS13_HANDSHAKE, nst, sizeof(nst));
        alert = expect_failure(&c, "unexpected post-handshake message");
        ck_assert_int_eq(alert, SSL_AD_UNEXPECTED_MESSAGE);
        break;
    }
    case 5: { /* data after a KeyUpdate in the same record */
        const uint8_t ku[9] = {24, 0, 0, 1, 0, 24, 0, 0, 1};
        send_crafted(&c, AGW_TLS13_HANDSHAKE, ku, sizeof(ku));
        alert = expect_failure(&c, "data after KeyUpdate");
        ck_assert_int_eq(alert, SSL_AD_UNEXPECTED_MESSAGE);
        break;
    }
    case 6: { /* a KeyUpdate value other than 0 or 1 */
        const uint8_t ku[5] = {24, 0, 0, 1, 7};
        send_crafted(&c, AGW_TLS13_HANDSHAKE, ku, sizeof(ku));
        alert = expect_failure(&c, "KeyUpdate request not 0 or 1");
        ck_assert_int_eq(alert, SSL_AD_ILLEGAL_PARAMETER);
        break;
    }
    case 7: { /* application data inside a fragmented handshake message */
        const uint8_t part[2] = {24, 0};
        send_crafted(&c, AGW_TLS13_HANDSHAKE, part, sizeof(part));
        send_crafted(&c, AGW_TLS13_APPLICATION_DATA, "x", 1);
        alert = expect_failure(&c, "record inside a handshake message");
        ck_assert_int_eq(alert, SSL_AD_UNEXPECTED_MESSAGE);
        break;
    }
    case 8: { /* a post-handshake message announced past the bound */
        const uint8_t huge[4] = {4, 0x7f, 0xff, 0xff};
        send_crafted(&c, AGW_TLS13_HANDSHAKE, huge, sizeof(huge));
        alert = expect_failure(&c, "post-handshake message too large");
        ck_assert_int_eq(alert, SSL_AD_DECODE_ERROR);
        break;
    }
    case 9: { /* an alert of the wrong length */
        const uint8_t a3[3] = {1, 0, 0};
        send_crafted(&c, AGW_TLS13_ALERT, a3, sizeof(a3));
        alert = expect_failure(&c, "malformed alert");
        ck_assert_int_eq(alert, SSL_AD_DECODE_ERROR);
        break;
    }
    case 10: { /* an empty handshake record */
        send_crafted(&c, AGW_TLS13_HANDSHAKE, "", 0);
        alert = expect_failure(&c, "empty handshake record");
        ck_assert_int_eq(alert, SSL_AD_UNEXPECTED_MESSAGE);
        break;
    }
    case 11: { /* a record shorter than its tag */
        const uint8_t tiny[8] = {23, 3, 3, 0, 3, 1, 2, 3};
        send_raw(&c, tiny, sizeof(tiny));
        alert = expect_failure(&c, "decryption failed or bad record mac");
        ck_assert_int_eq(alert, SSL_AD_BAD_RECORD_MAC);
        break;
    }
    default:
        ck_abort();
    }
    crafted_free(&c);
}
END_TEST

/* user_canceled is not fatal; zero-length data records are legal; data after close_notify is
   never read. */
START_TEST(test_benign_records)
{
    struct crafted c;
    crafted_new(&c, AGW_TLS_SERVER);
    const uint8_t canceled[2] = {1, 90};
    send_crafted(&c, AGW_TLS13_ALERT, canceled, 2);
    send_crafted(&c, AGW_TLS13_APPLICATION_DATA, "", 0);
    send_crafted(&c, AGW_TLS13_APPLICATION_DATA, "one", 3);
    expect_data(&c, "one");
    const uint8_t close_notify[2] = {1, 0};
    send_crafted(&c, AGW_TLS13_ALERT, close_notify, 2);
    send_crafted(&c, AGW_TLS13_APPLICATION_DATA, "ignored", 7);
    char b[16];
    size_t r = 1;
    ck_assert_int_eq(agw_tls_session_read(c.f.s, b, sizeof(b), &r), 0);
    ck_assert_uint_eq(r, 0);
    ck_assert(agw_tls_session_peer_closed(c.f.s));
    ck_assert_int_eq(agw_tls_session_state(c.f.s), AGW_TLS_VERIFIED);
    crafted_free(&c);
}
END_TEST

/* A record read in pieces into a buffer smaller than it: in-place decryption, nothing lost. */
START_TEST(test_small_reads)
{
    struct fixture f;
    fixture_new(&f, AGW_TLS_SERVER, NULL, 0);
    uint8_t want[40000];
    fill(want, sizeof(want), 70);
    size_t w;
    ck_assert_int_eq(SSL_write_ex(f.p.ssl, want, sizeof(want), &w), 1);
    shuttle(&f.p, f.s);
    uint8_t got[sizeof(want)];
    size_t have = 0;
    while (have < sizeof(want)) {
        size_t r = 0;
        size_t step = 1 + have % 7919;
        if (step > sizeof(want) - have)
            step = sizeof(want) - have;
        ck_assert_int_eq(agw_tls_session_read(f.s, got + have, step, &r), 0);
        have += r;
    }
    ck_assert(memcmp(want, got, sizeof(want)) == 0);
    size_t r;
    ck_assert_int_eq(agw_tls_session_read(f.s, got, sizeof(got), &r), -EAGAIN);
    fixture_free(&f);
}
END_TEST

/* RFC 8448 §3 (simple 1-RTT handshake): the server's application traffic secret gives the
   server's application write key and IV listed there. */
START_TEST(test_rfc8448_keys)
{
    static const uint8_t secret[32] = {0xa1, 0x1a, 0xf9, 0xf0, 0x55, 0x31, 0xf8, 0x56,
                                       0xad, 0x47, 0x11, 0x6b, 0x45, 0xa9, 0x50, 0x32,
                                       0x82, 0x04, 0xb4, 0xf4, 0x4b, 0xfb, 0x6b, 0x3a,
                                       0x4b, 0x4f, 0x1f, 0x3f, 0xcb, 0x63, 0x16, 0x43};
    static const uint8_t iv[12] = {0xcf, 0x78, 0x2b, 0x88, 0xdd, 0x83,
                                   0x54, 0x9a, 0xad, 0xf1, 0xe9, 0x84};
    struct agw_tls13_suites suites;
    ck_assert_int_eq(agw_tls13_suites_load(&suites), 0);
    struct agw_tls13_dir d;
    ck_assert_int_eq(
        agw_tls13_dir_init(&d, agw_tls13_suite_find(&suites, 0x1301), secret, sizeof(secret)), 0);
    ck_assert(memcmp(d.iv, iv, sizeof(iv)) == 0);
    /* The wrong length and unknown suites are refused. */
    struct agw_tls13_dir e;
    ck_assert_int_eq(agw_tls13_dir_init(&e, agw_tls13_suite_find(&suites, 0x1301), secret, 31),
                     -EINVAL);
    ck_assert_ptr_null(agw_tls13_suite_find(&suites, 0x1304));
    agw_tls13_dir_clear(&d);
    agw_tls13_suites_free(&suites);
}
END_TEST

static Suite *records_suite(void)
{
    Suite *s = suite_create("tls_records");
    TCase *t = tcase_create("openssl");
    tcase_set_timeout(t, 60);
    tcase_add_loop_test(t, test_data_both_ways, 0, 6);
    tcase_add_loop_test(t, test_key_update_requested, 0, 2);
    tcase_add_test(t, test_tickets_ignored);
    tcase_add_test(t, test_close_notify_both_ways);
    tcase_add_test(t, test_tampered_record);
    tcase_add_test(t, test_peer_fatal_alert);
    tcase_add_test(t, test_truncation);
    tcase_add_test(t, test_small_reads);
    suite_add_tcase(s, t);
    TCase *h = tcase_create("crafted");
    tcase_add_test(h, test_fragmented_key_update_and_padding);
    tcase_add_loop_test(h, test_hostile_records, 0, 12);
    tcase_add_test(h, test_benign_records);
    tcase_add_test(h, test_rfc8448_keys);
    suite_add_tcase(s, h);
    return s;
}

int main(void)
{
    peer_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (agw_tls_identity_generate("gateway", 1, &gw_id) != 0 ||
        agw_tls_identity_generate("ue", 1, &ue_id) != 0)
        return 2;
    SRunner *sr = srunner_create(records_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    agw_tls_identity_unref(gw_id);
    agw_tls_identity_unref(ue_id);
    return failed == 0 ? 0 : 1;
}
