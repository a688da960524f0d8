/* DTLS engine: DTLS 1.2 sessions over a datagram BIO of the session's own queues, with the hold. */
#include "dtls.h"
#include "peer_check.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

/*
 * The hold and the check are tls/session.c's (see its comment): a server waits at the
 * ClientHello in the certificate callback, a client at the server's certificate with
 * SSL_set_retry_verify; the fingerprint check is the verification step, so a refusal is a real
 * bad_certificate alert and "handshake done" means "verified". What datagrams change:
 *  - OpenSSL 3.0 has no BIO_s_dgram_mem: our BIO hands OpenSSL the datagram being input
 *    (borrowed) and queues each write as one datagram. OpenSSL fills a handshake datagram in its
 *    own 4 KiB buffering BIO, then writes it whole (hence MTU_MAX); afterwards one SSL_write is
 *    one record and one datagram. WPENDING is 0: OpenSSL subtracts it from the room left in the
 *    datagram it is filling, and ours are all complete.
 *  - OpenSSL 3.0 packs a flight without counting the AEAD expansion (24 bytes with AES-GCM) of
 *    its one encrypted message, the Finished, so a full datagram would exceed the MTU. OpenSSL
 *    gets an MTU smaller by AEAD_SLACK until the handshake is done, the full one afterwards
 *    (records are sized right). The BIO reports AEAD_SLACK as its overhead, which OpenSSL only
 *    uses to lower its minimum MTU (256) to match.
 *  - Datagrams that arrive while HELD are kept (bounded) and fed once the fingerprints come: for
 *    a server, ClientHello retransmissions (harmless duplicates); for a client, the rest of the
 *    server's flight when it spans datagrams. Dropping those would stall the handshake until the
 *    server's next retransmission, possibly seconds after the Modify.
 *  - Timer: 400 ms first (WebRTC stacks start well below RFC 6347's 1 s), doubling, at most 2 s;
 *    the handshake gives up at the expiry that brings the unanswered waiting to 12 s (12.8 s,
 *    after 7 retransmissions). No timer runs while HELD: the ALG decides how long a hold lasts.
 *    OpenSSL's timer reads the wall clock; callers only see "milliseconds until".
 *  - No cookie exchange: a session exists only for a peer the ALG announced, behind ICE checks.
 *  - No SSL_MODE_RELEASE_BUFFERS: that would be an allocation and a free per datagram.
 *  - After the handshake, a datagram OpenSSL's record layer discards silently (bad MAC, replay,
 *    stale epoch, wrong version, truncated) is counted as dropped: no record, output nor alert.
 */

#define MTU_MIN 256   /* OpenSSL's smallest DTLS MTU */
#define AEAD_SLACK 24 /* see the comment at the top */
#define MTU_MAX 4096  /* a handshake datagram larger than OpenSSL's buffering BIO would be cut */
#define DATAGRAM_MAX 65535
#define RECORD_MAX SSL3_RT_MAX_PLAIN_LENGTH
#define QUEUE_ALLOC_MIN 4096
#define TIMER_FIRST_US 400000u
#define TIMER_MAX_US 2000000u
#define HANDSHAKE_BUDGET_US 12000000u
#define CERT_LIST_MAX (32 * 1024) /* as for TLS: a UE sends one self-signed certificate */
#define SECURITY_LEVEL 2          /* 112 bits: P-256 and RSA-2048 pass, SHA-1 signatures do not */

#ifdef DTLS1_3_VERSION
#define DTLS_VERSION_MAX DTLS1_3_VERSION
#else
#define DTLS_VERSION_MAX DTLS1_2_VERSION /* OpenSSL 3.0 has no DTLS 1.3 */
#endif

/* Datagrams or records in one buffer, each as a 2-byte length and its bytes. A taken entry's
   bytes stay in place until the next push, which may compact or grow the buffer: that is what
   keeps pending_output's pointer valid until the next call. Allocated on first use, kept. */
struct queue {
    uint8_t *buf;
    size_t start, end, cap;
    size_t max_bytes;
    unsigned count, max_count;
};

struct agw_dtls_ctx {
    atomic_uint refs;
    SSL_CTX *ssl_ctx;
    BIO_METHOD *bio_method;
};

struct agw_dtls_session {
    struct agw_tls_peer_check pc; /* first: OpenSSL's callbacks find it as the app data */
    SSL *ssl;
    struct agw_dtls_ctx *ctx;
    struct agw_tls_identity *id;
    bool close_sent;
    uint16_t mtu;

    const uint8_t *in; /* the datagram being input, until OpenSSL reads it */
    size_t in_len;
    uint64_t events;    /* records and writes (and pc.alerts_read): did a datagram do anything? */
    unsigned timer_us;  /* the retransmission interval running */
    uint64_t waited_us; /* expired intervals, summed over the handshake */

    struct queue out;  /* datagrams for the caller */
    struct queue rx;   /* decrypted records for read */
    struct queue held; /* datagrams input while HELD */
    struct agw_dtls_stats stats;
};

/* ---- queues ---- */

static int queue_push(struct queue *q, const void *data, size_t len)
{
    size_t need = 2 + len;
    if (len > UINT16_MAX || q->count >= q->max_count || need > q->max_bytes)
        return -ENOBUFS;
    if (q->cap - q->end < need && q->start > 0) {
        memmove(q->buf, q->buf + q->start, q->end - q->start);
        q->end -= q->start;
        q->start = 0;
    }
    if (q->cap - q->end < need) {
        if (q->end + need > q->max_bytes)
            return -ENOBUFS;
        size_t cap = q->cap > 0 ? q->cap : QUEUE_ALLOC_MIN;
        while (cap < q->end + need)
            cap *= 2;
        if (cap > q->max_bytes)
            cap = q->max_bytes;
        uint8_t *p = realloc(q->buf, cap);
        if (p == NULL)
            return -ENOMEM;
        q->buf = p;
        q->cap = cap;
    }
    q->buf[q->end] = (uint8_t)(len >> 8);
    q->buf[q->end + 1] = (uint8_t)len;
    memcpy(q->buf + q->end + 2, data, len);
    q->end += need;
    q->count++;
    return 0;
}

static bool queue_pop(struct queue *q, const uint8_t **data, size_t *len)
{
    if (q->count == 0)
        return false;
    *len = (size_t)q->buf[q->start] << 8 | q->buf[q->start + 1];
    *data = q->buf + q->start + 2;
    q->start += 2 + *len;
    if (--q->count == 0)
        q->start = q->end = 0;
    return true;
}

/* ---- the datagram BIO ---- */

static int bio_write_ex(BIO *b, const char *data, size_t len, size_t *written)
{
    struct agw_dtls_session *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    s->events++;
    /* A full queue loses the datagram as a full socket buffer would: DTLS retransmits its
       flights, SCTP its packets. Telling OpenSSL would fail the session instead. */
    if (queue_push(&s->out, data, len) < 0)
        s->stats.datagrams_dropped++;
    *written = len;
    return 1;
}

static int bio_read_ex(BIO *b, char *data, size_t cap, size_t *got)
{
    struct agw_dtls_session *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    *got = 0;
    if (s->in == NULL) {
        BIO_set_retry_read(b);
        return 0;
    }
    *got = s->in_len < cap ? s->in_len : cap; /* a longer datagram is cut, as recv() does */
    memcpy(data, s->in, *got);
    s->in = NULL;
    return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    const struct agw_dtls_session *s = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
    case BIO_CTRL_DGRAM_SET_CONNECTED:    /* one peer per session: nothing to remember */
    case BIO_CTRL_DGRAM_SET_NEXT_TIMEOUT: /* read with DTLSv1_get_timeout instead */
        return 1;
    case BIO_CTRL_PENDING:
        return s->in != NULL ? (long)s->in_len : 0;
    case BIO_CTRL_DGRAM_QUERY_MTU: /* not asked (SSL_OP_NO_QUERY_MTU); safe in every phase */
    case BIO_CTRL_DGRAM_GET_FALLBACK_MTU:
    case BIO_CTRL_DGRAM_GET_MTU:
        return s->mtu - AEAD_SLACK;
    case BIO_CTRL_DGRAM_GET_MTU_OVERHEAD:
        return AEAD_SLACK;
    case BIO_CTRL_WPENDING:       /* see the comment at the top */
    case BIO_CTRL_DGRAM_GET_PEER: /* addresses are the caller's business */
    default:
        return 0;
    }
}

_Static_assert(offsetof(struct agw_dtls_session, pc) == 0, "the callbacks' app data is the check");

static int fail(struct agw_dtls_session *s, enum agw_tls_failure reason, const char *text, int code)
{
    return agw_tls_peer_check_fail(&s->pc, reason, text, code);
}

static int fail_from_openssl(struct agw_dtls_session *s)
{
    return agw_tls_peer_check_fail_from_openssl(&s->pc, false);
}

/* OpenSSL asks for the first interval (previous_us 0) and for the next one at each expiry. */
static unsigned int next_interval(SSL *ssl, unsigned int previous_us)
{
    struct agw_dtls_session *s = SSL_get_app_data(ssl);
    unsigned next = previous_us == 0                  ? TIMER_FIRST_US
                    : previous_us >= TIMER_MAX_US / 2 ? TIMER_MAX_US
                                                      : previous_us * 2;
    if (s != NULL) {
        s->waited_us += previous_us;
        s->timer_us = next;
    }
    return next;
}

/* ---- contexts ---- */

__attribute__((format(printf, 3, 4))) static void set_error(char *err, size_t errlen,
                                                            const char *fmt, ...)
{
    unsigned long e = ERR_peek_last_error();
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        if (e != 0 && n >= 0 && (size_t)n < errlen)
            snprintf(err + n, errlen - (size_t)n, ": %s", ERR_reason_error_string(e));
    }
    ERR_clear_error();
}

static int configure(SSL_CTX *c, const struct agw_tls_ctx_config *cfg, char *err, size_t errlen)
{
    const char *ciphers = cfg->ciphers != NULL ? cfg->ciphers : AGW_DTLS_DEFAULT_CIPHERS;
    const char *groups = cfg->groups != NULL ? cfg->groups : AGW_TLS_DEFAULT_GROUPS;
    if (SSL_CTX_set_min_proto_version(c, DTLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(c, DTLS_VERSION_MAX) != 1) {
        set_error(err, errlen, "cannot set the DTLS versions");
        return -EINVAL;
    }
    if (SSL_CTX_set_cipher_list(c, ciphers) != 1) {
        set_error(err, errlen, "ciphers \"%s\"", ciphers);
        return -EINVAL;
    }
    if (SSL_CTX_set1_groups_list(c, groups) != 1) {
        set_error(err, errlen, "groups \"%s\"", groups);
        return -EINVAL;
    }
    /* A full handshake, hence the fingerprint check, every time; the MTU is the caller's. */
    SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_QUERY_MTU);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_security_level(c, SECURITY_LEVEL);
    SSL_CTX_set_max_cert_list(c, CERT_LIST_MAX);
    agw_tls_peer_check_install(c);
    return 0;
}

static BIO_METHOD *bio_method_new(void)
{
    int type = BIO_get_new_index();
    BIO_METHOD *m = type == -1 ? NULL : BIO_meth_new(type | BIO_TYPE_SOURCE_SINK, "agw_dtls");
    if (m == NULL || BIO_meth_set_write_ex(m, bio_write_ex) != 1 ||
        BIO_meth_set_read_ex(m, bio_read_ex) != 1 || BIO_meth_set_ctrl(m, bio_ctrl) != 1) {
        BIO_meth_free(m);
        return NULL;
    }
    return m;
}

int agw_dtls_ctx_new(const struct agw_tls_ctx_config *cfg, struct agw_dtls_ctx **out, char *err,
                     size_t errlen)
{
    static const struct agw_tls_ctx_config defaults;
    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    struct agw_dtls_ctx *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL) {
        set_error(err, errlen, "out of memory");
        return -ENOMEM;
    }
    ERR_clear_error();
    int rc = -ENOMEM;
    ctx->ssl_ctx = SSL_CTX_new(DTLS_method());
    ctx->bio_method = bio_method_new();
    if (ctx->ssl_ctx == NULL || ctx->bio_method == NULL) {
        set_error(err, errlen, "cannot make a DTLS SSL_CTX");
        goto fail;
    }
    rc = configure(ctx->ssl_ctx, cfg != NULL ? cfg : &defaults, err, errlen);
    if (rc < 0)
        goto fail;
    atomic_init(&ctx->refs, 1);
    *out = ctx;
    return 0;

fail:
    SSL_CTX_free(ctx->ssl_ctx);
    BIO_meth_free(ctx->bio_method);
    free(ctx);
    return rc;
}

struct agw_dtls_ctx *agw_dtls_ctx_ref(struct agw_dtls_ctx *ctx)
{
    if (ctx != NULL)
        atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
    return ctx;
}

void agw_dtls_ctx_unref(struct agw_dtls_ctx *ctx)
{
    if (ctx == NULL || atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) != 1)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    BIO_meth_free(ctx->bio_method);
    free(ctx);
}

/* ---- the engine ---- */

/* Moves every application record OpenSSL can decrypt now to the receive queue. */
static int take_records(struct agw_dtls_session *s)
{
    uint8_t rec[RECORD_MAX];
    for (;;) {
        size_t n = 0;
        if (SSL_read_ex(s->ssl, rec, sizeof(rec), &n) == 1) {
            s->events++;
            /* The caller reads after each input: a full queue means it stopped, as when a
               socket's receive buffer fills. */
            if (n > 0 && queue_push(&s->rx, rec, n) < 0)
                s->stats.datagrams_dropped++;
            continue;
        }
        switch (SSL_get_error(s->ssl, 0)) {
        case SSL_ERROR_WANT_READ:
            return 0;
        case SSL_ERROR_ZERO_RETURN:
            s->pc.peer_closed = true;
            return 0;
        default:
            return fail_from_openssl(s);
        }
    }
}

/* Drives the handshake, then the reading, as far as the input so far allows. */
static int advance(struct agw_dtls_session *s)
{
    ERR_clear_error();
    if (s->pc.state != AGW_TLS_VERIFIED) {
        int r = SSL_do_handshake(s->ssl);
        if (r != 1) {
            int rc = agw_tls_peer_check_handshake_wait(&s->pc, s->ssl, r, false);
            if (rc != -EAGAIN)
                return rc;
            if (s->pc.state == AGW_TLS_HANDSHAKING && s->waited_us >= HANDSHAKE_BUDGET_US)
                return fail(s, AGW_TLS_FAIL_PROTOCOL, "handshake timeout", -EPROTO);
            return 0;
        }
        int rc = agw_tls_peer_check_handshake_done(&s->pc);
        if (rc < 0)
            return rc;
        SSL_set_mtu(s->ssl, s->mtu);
    }
    return take_records(s);
}

static void process(struct agw_dtls_session *s, const uint8_t *d, size_t len)
{
    bool was_verified = s->pc.state == AGW_TLS_VERIFIED;
    uint64_t events = s->events + s->pc.alerts_read;
    s->in = d;
    s->in_len = len;
    advance(s);
    bool unread = s->in != NULL; /* after the peer's close_notify OpenSSL reads no more */
    s->in = NULL;
    if (unread || (was_verified && s->pc.state == AGW_TLS_VERIFIED &&
                   s->events + s->pc.alerts_read == events))
        s->stats.datagrams_dropped++;
}

int agw_dtls_session_new(struct agw_dtls_ctx *ctx, struct agw_tls_identity *id,
                         enum agw_tls_role role, uint16_t mtu, struct agw_dtls_session **out)
{
    if (out != NULL)
        *out = NULL;
    if (mtu == 0)
        mtu = AGW_DTLS_DEFAULT_MTU;
    if (ctx == NULL || id == NULL || out == NULL || mtu < MTU_MIN || mtu > MTU_MAX ||
        (role != AGW_TLS_SERVER && role != AGW_TLS_CLIENT))
        return -EINVAL;
    struct agw_dtls_session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    agw_tls_peer_check_init(&s->pc, role);
    s->mtu = mtu;
    s->out = (struct queue){.max_bytes = 256 * 1024, .max_count = 64};
    s->rx = (struct queue){.max_bytes = 64 * 1024, .max_count = 64};
    s->held = (struct queue){.max_bytes = 16 * 1024, .max_count = 8};
    s->ctx = agw_dtls_ctx_ref(ctx);
    s->id = agw_tls_identity_ref(id);

    int rc = -ENOMEM;
    ERR_clear_error();
    s->ssl = SSL_new(ctx->ssl_ctx);
    if (s->ssl == NULL)
        goto fail;
    BIO *bio = BIO_new(ctx->bio_method);
    if (bio == NULL)
        goto fail;
    BIO_set_data(bio, s);
    BIO_set_init(bio, 1);
    SSL_set_bio(s->ssl, bio, bio); /* one reference, for both directions */
    if (SSL_set_app_data(s->ssl, s) != 1)
        goto fail;
    rc = -EIO;
    /* After SSL_set_bio: OpenSSL asks the BIO for its overhead to check the MTU. */
    if (SSL_use_certificate(s->ssl, agw_tls_identity_cert(id)) != 1 ||
        SSL_use_PrivateKey(s->ssl, agw_tls_identity_key(id)) != 1 ||
        SSL_set_mtu(s->ssl, mtu - AEAD_SLACK) <= 0)
        goto fail;
    DTLS_set_timer_cb(s->ssl, next_interval);
    if (role == AGW_TLS_SERVER) {
        SSL_set_accept_state(s->ssl);
    } else {
        SSL_set_connect_state(s->ssl);
        if (advance(s) < 0) /* the ClientHello */
            goto fail;
    }
    ERR_clear_error();
    *out = s;
    return 0;

fail:
    ERR_clear_error();
    agw_dtls_session_free(s);
    return rc;
}

void agw_dtls_session_free(struct agw_dtls_session *s)
{
    if (s == NULL)
        return;
    SSL_free(s->ssl);
    agw_tls_peer_check_fini(&s->pc);
    free(s->out.buf);
    free(s->rx.buf);
    free(s->held.buf);
    agw_tls_identity_unref(s->id);
    agw_dtls_ctx_unref(s->ctx);
    free(s);
}

int agw_dtls_session_set_fingerprints(struct agw_dtls_session *s,
                                      const struct agw_tls_fingerprint *list, size_t n)
{
    if (s == NULL)
        return -EINVAL;
    bool held = s->pc.state == AGW_TLS_HELD;
    int rc = agw_tls_peer_check_set_fingerprints(&s->pc, list, n);
    if (rc < 0 || !held)
        return rc;
    /* Resume, then give OpenSSL what came meanwhile. A failure shows in the state. */
    advance(s);
    const uint8_t *d;
    size_t len;
    while (queue_pop(&s->held, &d, &len)) {
        if (s->pc.state != AGW_TLS_FAILED)
            process(s, d, len);
    }
    return 0;
}

int agw_dtls_session_input(struct agw_dtls_session *s, const void *datagram, size_t len)
{
    if (s == NULL || (datagram == NULL && len > 0))
        return -EINVAL;
    if (s->pc.state == AGW_TLS_FAILED)
        return s->pc.code;
    if (len > DATAGRAM_MAX)
        return -EMSGSIZE;
    const uint8_t *d = datagram;
    s->stats.datagrams_in++;
    s->stats.cipher_in += len;
    /* RFC 7983: a first byte outside 20..63 is STUN, RTP, ZRTP...: never DTLS. */
    if (len == 0 || d[0] < 20 || d[0] > 63) {
        s->stats.datagrams_dropped++;
        return 0;
    }
    if (s->pc.state == AGW_TLS_HELD) {
        if (queue_push(&s->held, d, len) < 0)
            s->stats.datagrams_dropped++; /* the peer sends its flight again */
        return 0;
    }
    process(s, d, len);
    return s->pc.state == AGW_TLS_FAILED ? s->pc.code : 0;
}

int agw_dtls_session_read(struct agw_dtls_session *s, void *buf, size_t cap, size_t *got)
{
    if (got != NULL)
        *got = 0;
    if (s == NULL || got == NULL || (buf == NULL && cap > 0))
        return -EINVAL;
    const uint8_t *d;
    size_t n;
    /* Records that arrived before a failure or the close_notify are genuine: delivered first. */
    if (queue_pop(&s->rx, &d, &n)) {
        if (n > cap)
            return -EMSGSIZE;
        memcpy(buf, d, n);
        *got = n;
        s->stats.records_in++;
        s->stats.plain_in += n;
        return 0;
    }
    if (s->pc.state == AGW_TLS_FAILED)
        return s->pc.code;
    return s->pc.peer_closed ? -EPIPE : -EAGAIN;
}

int agw_dtls_session_write(struct agw_dtls_session *s, const void *data, size_t len)
{
    if (s == NULL || (data == NULL && len > 0))
        return -EINVAL;
    if (s->pc.state == AGW_TLS_FAILED)
        return s->pc.code;
    if (s->close_sent || s->pc.peer_closed)
        return -EPIPE;
    if (s->pc.state != AGW_TLS_VERIFIED)
        return -EAGAIN;
    if (len > agw_dtls_session_max_payload(s))
        return -EMSGSIZE;
    if (len == 0)
        return 0; /* an empty record would be skipped by the peer anyway */
    size_t n = 0;
    ERR_clear_error();
    if (SSL_write_ex(s->ssl, data, len, &n) != 1)
        return fail_from_openssl(s);
    s->stats.records_out++;
    s->stats.plain_out += n;
    return 0;
}

size_t agw_dtls_session_max_payload(const struct agw_dtls_session *s)
{
    size_t n = s->pc.state == AGW_TLS_VERIFIED ? DTLS_get_data_mtu(s->ssl) : 0;
    if (n == 0)
        n = s->mtu - AGW_DTLS_RECORD_OVERHEAD;
    return n < RECORD_MAX ? n : RECORD_MAX;
}

int agw_dtls_session_pending_output(struct agw_dtls_session *s, const uint8_t **data, size_t *len)
{
    if (!queue_pop(&s->out, data, len))
        return 0;
    s->stats.datagrams_out++;
    s->stats.cipher_out += *len;
    return 1;
}

int agw_dtls_session_timeout_ms(const struct agw_dtls_session *s)
{
    struct timeval tv;
    if (s->pc.state == AGW_TLS_HELD || s->pc.state == AGW_TLS_FAILED ||
        DTLSv1_get_timeout(s->ssl, &tv) != 1)
        return -1;
    long long ms = (long long)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000; /* never early */
    return ms < INT_MAX ? (int)ms : INT_MAX;
}

int agw_dtls_session_handle_timeout(struct agw_dtls_session *s)
{
    if (s->pc.state == AGW_TLS_FAILED)
        return s->pc.code;
    if (s->pc.state == AGW_TLS_HELD)
        return 0;
    /* Give up before sending a flight that would outlive the budget. */
    if (s->pc.state == AGW_TLS_HANDSHAKING && agw_dtls_session_timeout_ms(s) == 0 &&
        s->waited_us + s->timer_us >= HANDSHAKE_BUDGET_US)
        return fail(s, AGW_TLS_FAIL_PROTOCOL, "handshake timeout", -EPROTO);
    ERR_clear_error();
    if (DTLSv1_handle_timeout(s->ssl) < 0)
        return fail_from_openssl(s);
    return 0;
}

int agw_dtls_session_close(struct agw_dtls_session *s)
{
    if (s->pc.state == AGW_TLS_FAILED)
        return s->pc.code;
    if (s->pc.state != AGW_TLS_VERIFIED)
        return -ENOTCONN;
    if (s->close_sent)
        return 0;
    ERR_clear_error();
    if (SSL_shutdown(s->ssl) < 0 && (SSL_get_shutdown(s->ssl) & SSL_SENT_SHUTDOWN) == 0)
        return fail_from_openssl(s);
    ERR_clear_error();
    s->close_sent = true;
    return 0;
}

enum agw_tls_state agw_dtls_session_state(const struct agw_dtls_session *s)
{
    return s->pc.state;
}

bool agw_dtls_session_peer_closed(const struct agw_dtls_session *s)
{
    return s->pc.peer_closed;
}

const struct agw_tls_error *agw_dtls_session_error(const struct agw_dtls_session *s)
{
    return s->pc.state == AGW_TLS_FAILED ? &s->pc.error : NULL;
}

X509 *agw_dtls_session_peer_cert(const struct agw_dtls_session *s)
{
    return s->pc.cert;
}

void agw_dtls_session_stats(const struct agw_dtls_session *s, struct agw_dtls_stats *out)
{
    *out = s->stats;
}

const char *agw_dtls_session_version(const struct agw_dtls_session *s)
{
    return SSL_get_current_cipher(s->ssl) != NULL ? SSL_get_version(s->ssl) : NULL;
}

const char *agw_dtls_session_cipher(const struct agw_dtls_session *s)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(s->ssl);
    return c != NULL ? SSL_CIPHER_standard_name(c) : NULL;
}
