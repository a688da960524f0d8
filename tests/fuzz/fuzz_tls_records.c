/* libFuzzer harness for what a TLS 1.3 session reads after its handshake (tls/record13.c and the
 * records part of tls/session.c). Each input gets a fresh handshake with a bare OpenSSL peer, then
 * drives a sequence of operations: records sealed with the peer's own traffic key (so that the
 * fuzzer reaches past authentication into content types, alerts and post-handshake messages),
 * raw bytes, reads of any size, writes, end of file, close. Checked after every operation:
 *  - the application data the session returns is exactly, in order, what the sealed records
 *    carried (as long as no raw bytes broke the stream);
 *  - whatever the session sends, OpenSSL accepts: data it wrote arrives intact at the peer, or,
 *    after a failure, the peer sees the alert;
 *  - output stays bounded and a failed session stays failed. */
#include "tls/cert.h"
#include "tls/record13.h"
#include "tls/session.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PLAIN_MAX (1 << 20) /* application bytes one input may send either way */

static struct agw_tls_identity *gw_id, *ue_id;
static struct agw_tls_ctx *ctx;
static SSL_CTX *peer_server_ctx, *peer_client_ctx;
static struct agw_tls13_suites suites;
static int peer_index;

struct peer {
    SSL *ssl;
    BIO *in, *out;
    uint8_t secret[AGW_TLS13_SECRET_MAX];
    size_t secret_len;
};

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_tls_records: %s:%d: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static int accept_any(int ok, X509_STORE_CTX *xs)
{
    (void)ok;
    (void)xs;
    return 1;
}

static int hex_value(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 0;
}

static void peer_keylog(const SSL *ssl, const char *line)
{
    struct peer *p = SSL_get_ex_data(ssl, peer_index);
    const char *want = SSL_is_server(ssl) ? "SERVER_TRAFFIC_SECRET_0 " : "CLIENT_TRAFFIC_SECRET_0 ";
    if (p == NULL || strncmp(line, want, strlen(want)) != 0)
        return;
    const char *hex = strrchr(line, ' ') + 1;
    size_t n = strlen(hex) / 2;
    CHECK(n <= sizeof(p->secret));
    for (size_t i = 0; i < n; i++)
        p->secret[i] = (uint8_t)(hex_value(hex[2 * i]) << 4 | hex_value(hex[2 * i + 1]));
    p->secret_len = n;
}

static SSL_CTX *peer_ctx(void)
{
    SSL_CTX *c = SSL_CTX_new(TLS_method());
    CHECK(c != NULL);
    SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
    SSL_CTX_set_num_tickets(c, 0); /* the fuzzer crafts its own NewSessionTickets */
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, accept_any);
    SSL_CTX_set_keylog_callback(c, peer_keylog);
    CHECK(SSL_CTX_use_certificate(c, agw_tls_identity_cert(ue_id)) == 1);
    CHECK(SSL_CTX_use_PrivateKey(c, agw_tls_identity_key(ue_id)) == 1);
    return c;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    peer_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    char err[256];
    struct agw_tls_ctx_config cfg = {.min_version = AGW_TLS_VERSION_1_3};
    if (agw_tls_identity_generate("fuzz-gw", 30, &gw_id) != 0 ||
        agw_tls_identity_generate("fuzz-ue", 30, &ue_id) != 0 ||
        agw_tls_ctx_new(&cfg, &ctx, err, sizeof(err)) != 0 || agw_tls13_suites_load(&suites) != 0)
        abort();
    peer_server_ctx = peer_ctx();
    peer_client_ctx = peer_ctx();
    return 0;
}

/* Output of the session to the peer's input. */
static void to_peer(struct agw_tls_session *s, struct peer *p)
{
    const void *data;
    size_t len;
    for (agw_tls_session_pending_output(s, &data, &len); len > 0;
         agw_tls_session_pending_output(s, &data, &len)) {
        CHECK(BIO_write(p->in, data, (int)len) == (int)len);
        CHECK(agw_tls_session_consume_output(s, len) == 0);
    }
}

static bool handshake(struct agw_tls_session *s, struct peer *p)
{
    char buf[16384];
    for (int i = 0; i < 20; i++) {
        int prc = SSL_do_handshake(p->ssl);
        int src = agw_tls_session_handshake(s);
        int n;
        while ((n = BIO_read(p->out, buf, sizeof(buf))) > 0) {
            size_t used;
            CHECK(agw_tls_session_feed(s, buf, (size_t)n, &used) == 0 && used == (size_t)n);
        }
        to_peer(s, p);
        if (prc == 1 && src == 0)
            return true;
    }
    return false;
}

struct reader {
    const uint8_t *p;
    size_t left;
};

static unsigned take(struct reader *r, unsigned bytes)
{
    unsigned v = 0;
    for (unsigned i = 0; i < bytes && r->left > 0; i++, r->left--)
        v = v << 8 | *r->p++;
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct reader r = {data, size};
    unsigned setup = take(&r, 1);
    enum agw_tls_role role = setup & 1 ? AGW_TLS_CLIENT : AGW_TLS_SERVER;

    struct agw_tls_session *s = NULL;
    CHECK(agw_tls_session_new(ctx, gw_id, role, &s) == 0);
    CHECK(agw_tls_session_set_fingerprints(s, agw_tls_identity_fingerprint(ue_id), 1) == 0);
    struct peer peer = {0};
    peer.ssl = SSL_new(role == AGW_TLS_CLIENT ? peer_server_ctx : peer_client_ctx);
    CHECK(peer.ssl != NULL);
    SSL_set_ex_data(peer.ssl, peer_index, &peer);
    peer.in = BIO_new(BIO_s_mem());
    peer.out = BIO_new(BIO_s_mem());
    SSL_set_bio(peer.ssl, peer.in, peer.out);
    if (role == AGW_TLS_CLIENT)
        SSL_set_accept_state(peer.ssl);
    else
        SSL_set_connect_state(peer.ssl);
    CHECK(handshake(s, &peer));
    const struct agw_tls13_suite *suite = agw_tls13_suite_find(&suites, 0x1301);
    struct agw_tls13_dir dir;
    CHECK(agw_tls13_dir_init(&dir, suite, peer.secret, peer.secret_len) == 0);

    static uint8_t expected[PLAIN_MAX], got[PLAIN_MAX], sent[PLAIN_MAX], arrived[PLAIN_MAX];
    size_t expected_len = 0, got_len = 0, sent_len = 0, arrived_len = 0;
    bool stream_clean = true; /* only sealed records, in order, were fed */
    bool failed = false;
    for (int ops = 0; r.left > 0 && ops < 256; ops++) {
        unsigned op = take(&r, 1) % 7;
        uint8_t rec[AGW_TLS13_RECORD_MAX];
        size_t used = 0;
        switch (op) {
        case 0: { /* a record sealed with the peer's key: type, length, content */
            uint8_t type = (uint8_t)take(&r, 1);
            size_t len = take(&r, 2) % (AGW_TLS13_PLAIN_MAX + 1);
            if (len > r.left)
                len = r.left;
            long n = agw_tls13_seal(&dir, type, r.p, len, rec);
            CHECK(n > 0);
            /* What the session must see (RFC 8446 §5.4): the last non-zero byte of content and
               type is the real type, the bytes before it the content; zeros after it padding. */
            size_t inner = type != 0 ? len + 1 : len;
            while (inner > 0 && (inner > len ? type : r.p[inner - 1]) == 0)
                inner--;
            uint8_t real_type = inner == 0 ? 0 : inner > len ? type : r.p[inner - 1];
            size_t real_len = inner == 0 ? 0 : inner - 1;
            if (real_type == AGW_TLS13_APPLICATION_DATA && expected_len + real_len <= PLAIN_MAX) {
                memcpy(expected + expected_len, r.p, real_len);
                expected_len += real_len;
            } else if (real_type == AGW_TLS13_APPLICATION_DATA) {
                stream_clean = false;
            }
            /* The peer's key changes after its KeyUpdate, as the session's will. */
            if (real_type == AGW_TLS13_HANDSHAKE && real_len == 5 && r.p[0] == 24 && r.p[3] == 1 &&
                r.p[4] <= 1)
                CHECK(agw_tls13_dir_update(&dir) == 0);
            r.p += len;
            r.left -= len;
            int rc = agw_tls_session_feed(s, rec, (size_t)n, &used);
            if (used < (size_t)n)
                stream_clean = false; /* refused: full, failed or after end of file */
            (void)rc;
            break;
        }
        case 1: { /* raw bytes */
            size_t len = take(&r, 1);
            if (len > r.left)
                len = r.left;
            (void)agw_tls_session_feed(s, r.p, len, &used);
            if (len > 0)
                stream_clean = false;
            r.p += len;
            r.left -= len;
            break;
        }
        case 2: { /* a read of any size */
            size_t cap = 1 + take(&r, 2) % 40000;
            if (cap > PLAIN_MAX - got_len)
                cap = PLAIN_MAX - got_len;
            if (cap == 0)
                break;
            size_t n = 0;
            int rc = agw_tls_session_read(s, got + got_len, cap, &n);
            CHECK(n <= cap);
            CHECK(rc == 0 || n == 0);
            got_len += n;
            break;
        }
        case 3: { /* the session writes */
            size_t len = take(&r, 2) % 70000;
            if (len > PLAIN_MAX - sent_len)
                len = PLAIN_MAX - sent_len;
            for (size_t i = 0; i < len; i++)
                sent[sent_len + i] = (uint8_t)(sent_len + i);
            size_t t = 0;
            (void)agw_tls_session_write(s, sent + sent_len, len, &t);
            CHECK(t <= len);
            sent_len += t;
            break;
        }
        case 4:
            agw_tls_session_feed_eof(s);
            break;
        case 5:
            (void)agw_tls_session_close(s);
            break;
        case 6: { /* the peer reads what the session sent */
            to_peer(s, &peer);
            size_t n = 0;
            int ok = 1;
            while (arrived_len < PLAIN_MAX && (ok = SSL_read_ex(peer.ssl, arrived + arrived_len,
                                                                PLAIN_MAX - arrived_len, &n)) == 1)
                arrived_len += n;
            int e = ok == 1 ? SSL_ERROR_WANT_READ : SSL_get_error(peer.ssl, 0);
            /* A refusal only after the session failed (its alert) or closed. */
            CHECK(e == SSL_ERROR_WANT_READ || e == SSL_ERROR_ZERO_RETURN ||
                  agw_tls_session_state(s) == AGW_TLS_FAILED);
            ERR_clear_error();
            break;
        }
        }
        if (failed)
            CHECK(agw_tls_session_state(s) == AGW_TLS_FAILED);
        failed = agw_tls_session_state(s) == AGW_TLS_FAILED;
        CHECK(agw_tls_session_output_size(s) <= 64 * 1024 + AGW_TLS13_RECORD_MAX);
        if (stream_clean)
            CHECK(got_len <= expected_len && memcmp(got, expected, got_len) == 0);
        CHECK(arrived_len <= sent_len && memcmp(arrived, sent, arrived_len) == 0);
    }

    agw_tls13_dir_clear(&dir);
    SSL_free(peer.ssl);
    agw_tls_session_free(s);
    ERR_clear_error();
    return 0;
}
