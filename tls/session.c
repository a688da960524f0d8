/* TLS sessions: one SSL object over the session's own buffers, the fingerprint hold and check. */
#include "session.h"
#include "session_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

/*
 * The fingerprint hold (DESIGN.md §1, e2ae terminating: the UE may start TLS before the Modify
 * that brings its fingerprint). The hold is inside the handshake, and the check is OpenSSL's
 * certificate verification step, for three reasons:
 *  - A refusal is a real fatal alert (bad_certificate) sent at the point TLS defines for it.
 *    After the handshake OpenSSL 3.0 can send close_notify and nothing else: a session that had
 *    completed would have no way to tell the UE why it is dropped.
 *  - No application data can exist before the check: the peer has no traffic keys until our
 *    side goes on, so "nothing crosses before verification" holds by construction instead of
 *    by a flag tested on each read and write (read and write still refuse before VERIFIED).
 *  - Handshake done means verified: there is no state where TLS is up but the peer unknown.
 * Where the handshake waits depends on the role, because OpenSSL 3.0 can suspend certificate
 * verification (SSL_set_retry_verify) on a client only; on a server it is ignored:
 *  - CLIENT: the verification callback suspends the handshake when the fingerprints are unknown
 *    and checks them when called again; the handshake went as far as it could meanwhile.
 *  - SERVER: the certificate callback, which runs on the ClientHello, suspends the handshake
 *    until the fingerprints are known, so that the client's certificate is checked as it
 *    arrives. The UE waits for our ServerHello meanwhile; its handshake timer is normally tens of
 *    seconds, the Modify comes within a SIP round trip.
 * Verification never builds a chain: no PKI, self-signed certificates are the norm (RFC 8122);
 * the callback replaces X509_verify_cert and only compares the end-entity certificate's
 * fingerprint. A server requests the client's certificate and fails, with the distinct reason
 * "no peer certificate", a client that sends none: with the hold, that happens when the
 * fingerprints are known, i.e. at verification time, and the alert is TLS's own
 * (certificate_required in 1.3, handshake_failure in 1.2).
 */

#define RECORD_PLAIN_MAX 16384   /* application bytes in one TLS record */
#define INPUT_ALLOC_MIN 4096     /* first allocation of the input buffer */
#define OUTPUT_CHUNK_SMALL 4096  /* holds a handshake flight, an alert, a short message */
#define OUTPUT_CHUNK_LARGE 65536 /* several full records: large socket writes */

/* Output ciphertext: a list of chunks, so that appending never moves bytes already handed out by
   pending_output. */
struct out_chunk {
    struct out_chunk *next;
    size_t start;
    size_t end;
    size_t cap;
    unsigned char data[];
};

struct agw_tls_session {
    SSL *ssl;
    struct agw_tls_ctx *ctx;
    struct agw_tls_identity *id;
    enum agw_tls_role role;
    enum agw_tls_state state;
    int code; /* the failure's code once FAILED */
    struct agw_tls_error error;
    enum agw_tls_failure verify_failure; /* set by the verification callback */
    bool fingerprints_known;
    bool verified;
    bool close_sent;
    bool peer_closed;
    bool input_eof;
    bool output_failed; /* the BIO could not allocate: OpenSSL saw a write error */
    size_t nfp;
    struct agw_tls_fingerprint *fp;
    X509 *peer; /* one reference */

    unsigned char *in; /* fed ciphertext, [in_start, in_end) not yet read by OpenSSL */
    size_t in_start;
    size_t in_end;
    size_t in_cap;

    struct out_chunk *out_head;
    struct out_chunk *out_tail;
    size_t out_size;

    struct agw_tls_stats stats;
};

static const char *const failure_names[] = {
    [AGW_TLS_FAIL_NONE] = "none",
    [AGW_TLS_FAIL_FINGERPRINT_MISMATCH] = "fingerprint mismatch",
    [AGW_TLS_FAIL_NO_PEER_CERT] = "no peer certificate",
    [AGW_TLS_FAIL_NO_SUPPORTED_FINGERPRINT] = "no supported fingerprint",
    [AGW_TLS_FAIL_PEER_ALERT] = "peer sent a fatal alert",
    [AGW_TLS_FAIL_PROTOCOL] = "protocol error",
    [AGW_TLS_FAIL_INTERNAL] = "internal error",
};

const char *agw_tls_failure_name(enum agw_tls_failure reason)
{
    if ((unsigned)reason >= sizeof(failure_names) / sizeof(failure_names[0]))
        return "unknown";
    return failure_names[reason];
}

const char *agw_tls_alert_name(int alert)
{
    if (alert < 0 || alert > 255)
        return "none";
    return SSL_alert_desc_string_long(alert);
}

/* ---- buffers and the BIO over them ---- */

static int input_append(struct agw_tls_session *s, const unsigned char *data, size_t len)
{
    size_t pending = s->in_end - s->in_start;
    if (s->in_cap - s->in_end < len && s->in_start > 0) {
        memmove(s->in, s->in + s->in_start, pending);
        s->in_start = 0;
        s->in_end = pending;
    }
    if (s->in_cap - s->in_end < len) {
        /* Two sizes only: a short message or a handshake flight, or a bulk flow, which gets the
           whole bound at once rather than a series of copying reallocations. */
        size_t want = pending + len <= INPUT_ALLOC_MIN ? INPUT_ALLOC_MIN : s->ctx->input_max;
        unsigned char *p = realloc(s->in, want);
        if (p == NULL)
            return -ENOMEM;
        s->in = p;
        s->in_cap = want;
    }
    memcpy(s->in + s->in_end, data, len);
    s->in_end += len;
    return 0;
}

static int output_append(struct agw_tls_session *s, const unsigned char *data, size_t len)
{
    while (len > 0) {
        struct out_chunk *t = s->out_tail;
        if (t == NULL || t->end == t->cap) {
            size_t cap = len < OUTPUT_CHUNK_SMALL ? OUTPUT_CHUNK_SMALL : OUTPUT_CHUNK_LARGE;
            t = malloc(sizeof(*t) + cap);
            if (t == NULL)
                return -ENOMEM;
            t->next = NULL;
            t->start = 0;
            t->end = 0;
            t->cap = cap;
            if (s->out_tail != NULL)
                s->out_tail->next = t;
            else
                s->out_head = t;
            s->out_tail = t;
        }
        size_t n = t->cap - t->end < len ? t->cap - t->end : len;
        memcpy(t->data + t->end, data, n);
        t->end += n;
        data += n;
        len -= n;
        s->out_size += n;
    }
    return 0;
}

static int bio_write_ex(BIO *b, const char *data, size_t len, size_t *written)
{
    struct agw_tls_session *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (output_append(s, (const unsigned char *)data, len) < 0) {
        s->output_failed = true;
        *written = 0;
        return 0;
    }
    *written = len;
    return 1;
}

/* Frees the input buffer as soon as OpenSSL has taken everything: idle sessions hold none. */
static int bio_read_ex(BIO *b, char *data, size_t len, size_t *readbytes)
{
    struct agw_tls_session *s = BIO_get_data(b);
    size_t avail = s->in_end - s->in_start;
    BIO_clear_retry_flags(b);
    if (avail == 0) {
        *readbytes = 0;
        if (!s->input_eof)
            BIO_set_retry_read(b);
        return 0;
    }
    size_t n = avail < len ? avail : len;
    memcpy(data, s->in + s->in_start, n);
    s->in_start += n;
    if (s->in_start == s->in_end) {
        free(s->in);
        s->in = NULL;
        s->in_start = s->in_end = s->in_cap = 0;
    }
    *readbytes = n;
    return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    struct agw_tls_session *s = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_EOF: /* OpenSSL reports a truncation only when the BIO says end of file */
        return s->input_eof && s->in_start == s->in_end;
    case BIO_CTRL_PENDING:
        return (long)(s->in_end - s->in_start);
    case BIO_CTRL_WPENDING:
        return (long)s->out_size;
    default:
        return 0;
    }
}

BIO_METHOD *agw_tls_session_bio_method_new(void)
{
    int type = BIO_get_new_index();
    if (type == -1)
        return NULL;
    BIO_METHOD *m = BIO_meth_new(type | BIO_TYPE_SOURCE_SINK, "agw_tls_session");
    if (m == NULL)
        return NULL;
    if (BIO_meth_set_write_ex(m, bio_write_ex) != 1 || BIO_meth_set_read_ex(m, bio_read_ex) != 1 ||
        BIO_meth_set_ctrl(m, bio_ctrl) != 1) {
        BIO_meth_free(m);
        return NULL;
    }
    return m;
}

/* ---- failure ---- */

static int fail(struct agw_tls_session *s, enum agw_tls_failure reason, const char *text, int code)
{
    if (s->state == AGW_TLS_FAILED)
        return s->code;
    s->state = AGW_TLS_FAILED;
    s->code = code;
    s->error.reason = reason;
    s->error.text = text;
    return code;
}

/* Classifies the failure of an SSL call: our own verdict first, then the peer's alert, then the
   oldest entry of the thread's error queue, which it empties for the next session. */
static int fail_from_openssl(struct agw_tls_session *s)
{
    unsigned long e = ERR_peek_error();
    int rc;
    if (s->verify_failure != AGW_TLS_FAIL_NONE) {
        rc = fail(s, s->verify_failure, agw_tls_failure_name(s->verify_failure), -EACCES);
    } else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
               ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        rc = fail(s, AGW_TLS_FAIL_NO_PEER_CERT, agw_tls_failure_name(AGW_TLS_FAIL_NO_PEER_CERT),
                  -EACCES);
    } else if (s->error.alert_received >= 0) {
        rc = fail(s, AGW_TLS_FAIL_PEER_ALERT, agw_tls_alert_name(s->error.alert_received),
                  -ECONNABORTED);
    } else if (s->output_failed) {
        rc = fail(s, AGW_TLS_FAIL_INTERNAL, "out of memory", -ENOMEM);
    } else if (s->peer_closed) {
        rc = fail(s, AGW_TLS_FAIL_PROTOCOL, "close_notify during the handshake", -EPROTO);
    } else {
        const char *text = e != 0 ? ERR_reason_error_string(e) : NULL;
        rc = fail(s, AGW_TLS_FAIL_PROTOCOL, text != NULL ? text : "protocol error", -EPROTO);
    }
    ERR_clear_error();
    return rc;
}

/* ---- callbacks ---- */

/* Replaces X509_verify_cert: any chain is acceptable, the end-entity certificate's fingerprint
   decides. A refusal sets CERT_REJECTED, which OpenSSL sends as a bad_certificate alert. */
static int verify_peer(X509_STORE_CTX *xs, void *arg)
{
    (void)arg;
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct agw_tls_session *s = SSL_get_app_data(ssl);
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);
    if (s == NULL || leaf == NULL) {
        X509_STORE_CTX_set_error(xs, X509_V_ERR_UNSPECIFIED);
        return 0;
    }
    if (s->peer == NULL && X509_up_ref(leaf) == 1)
        s->peer = leaf;
    if (!s->fingerprints_known) {
        /* Only a client gets here unknowing (a server waits at the ClientHello). Returning 1
           after SSL_set_retry_verify suspends the handshake; OpenSSL calls again on resume. */
        if (SSL_set_retry_verify(ssl) > 0)
            return 1;
        X509_STORE_CTX_set_error(xs, X509_V_ERR_UNSPECIFIED);
        return 0;
    }
    int rc = agw_tls_fingerprint_verify(leaf, s->fp, s->nfp);
    if (rc == 0) {
        s->verified = true;
        return 1;
    }
    if (rc == -EACCES)
        s->verify_failure = AGW_TLS_FAIL_FINGERPRINT_MISMATCH;
    else if (rc == -ENOTSUP)
        s->verify_failure = AGW_TLS_FAIL_NO_SUPPORTED_FINGERPRINT;
    else
        s->verify_failure = AGW_TLS_FAIL_INTERNAL;
    X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_REJECTED);
    return 0;
}

/* Runs on a server after the ClientHello (and on a client asked for its certificate): a negative
   return suspends the handshake until it is driven again. */
static int hold_for_fingerprints(SSL *ssl, void *arg)
{
    (void)arg;
    const struct agw_tls_session *s = SSL_get_app_data(ssl);
    if (s != NULL && s->role == AGW_TLS_SERVER && !s->fingerprints_known)
        return -1;
    return 1;
}

/* The only place OpenSSL tells which alert went out or came in. */
static void on_info(const SSL *ssl, int where, int ret)
{
    if ((where & SSL_CB_ALERT) == 0)
        return;
    struct agw_tls_session *s = SSL_get_app_data(ssl);
    if (s == NULL)
        return;
    int level = (ret >> 8) & 0xff;
    int desc = ret & 0xff;
    if (where & SSL_CB_READ) {
        if (desc == SSL_AD_CLOSE_NOTIFY)
            s->peer_closed = true;
        else if (level == SSL3_AL_FATAL)
            s->error.alert_received = desc;
    } else if (level == SSL3_AL_FATAL) {
        s->error.alert_sent = desc;
    }
}

void agw_tls_session_install_hooks(SSL_CTX *ssl_ctx)
{
    /* FAIL_IF_NO_PEER_CERT applies to a server only; fail_from_openssl turns its error into
       the distinct "no peer certificate" failure. */
    SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_cert_verify_callback(ssl_ctx, verify_peer, NULL);
    SSL_CTX_set_cert_cb(ssl_ctx, hold_for_fingerprints, NULL);
    SSL_CTX_set_info_callback(ssl_ctx, on_info);
}

/* ---- sessions ---- */

int agw_tls_session_new(struct agw_tls_ctx *ctx, struct agw_tls_identity *id,
                        enum agw_tls_role role, struct agw_tls_session **out)
{
    if (out != NULL)
        *out = NULL;
    if (ctx == NULL || id == NULL || out == NULL ||
        (role != AGW_TLS_SERVER && role != AGW_TLS_CLIENT))
        return -EINVAL;
    struct agw_tls_session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->role = role;
    s->state = AGW_TLS_HANDSHAKING;
    s->error.alert_sent = -1;
    s->error.alert_received = -1;
    s->ctx = agw_tls_ctx_ref(ctx);
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
    if (SSL_use_certificate(s->ssl, agw_tls_identity_cert(id)) != 1 ||
        SSL_use_PrivateKey(s->ssl, agw_tls_identity_key(id)) != 1)
        goto fail;
    if (role == AGW_TLS_SERVER)
        SSL_set_accept_state(s->ssl);
    else
        SSL_set_connect_state(s->ssl);
    *out = s;
    return 0;

fail:
    ERR_clear_error();
    agw_tls_session_free(s);
    return rc;
}

void agw_tls_session_free(struct agw_tls_session *s)
{
    if (s == NULL)
        return;
    SSL_free(s->ssl);
    X509_free(s->peer);
    free(s->fp);
    free(s->in);
    for (struct out_chunk *c = s->out_head, *next; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    agw_tls_identity_unref(s->id);
    agw_tls_ctx_unref(s->ctx);
    free(s);
}

int agw_tls_session_set_fingerprints(struct agw_tls_session *s,
                                     const struct agw_tls_fingerprint *list, size_t n)
{
    if (s == NULL || (list == NULL && n > 0))
        return -EINVAL;
    if (n > AGW_TLS_FINGERPRINTS_MAX)
        return -E2BIG;
    if (s->verified || s->state == AGW_TLS_FAILED)
        return -EALREADY;
    struct agw_tls_fingerprint *copy = NULL;
    if (n > 0) {
        copy = malloc(n * sizeof(*copy));
        if (copy == NULL)
            return -ENOMEM;
        memcpy(copy, list, n * sizeof(*copy));
    }
    free(s->fp);
    s->fp = copy;
    s->nfp = n;
    s->fingerprints_known = true;
    if (s->state == AGW_TLS_HELD)
        s->state = AGW_TLS_HANDSHAKING;
    return 0;
}

int agw_tls_session_handshake(struct agw_tls_session *s)
{
    if (s == NULL)
        return -EINVAL;
    if (s->state == AGW_TLS_FAILED)
        return s->code;
    if (s->state == AGW_TLS_VERIFIED)
        return 0;
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    if (r == 1) {
        /* The gate: whatever OpenSSL negotiated, data flows only after a fingerprint match. */
        if (!s->verified)
            return fail(s, AGW_TLS_FAIL_NO_PEER_CERT,
                        agw_tls_failure_name(AGW_TLS_FAIL_NO_PEER_CERT), -EACCES);
        s->state = AGW_TLS_VERIFIED;
        free(s->fp); /* no longer needed: an idle session keeps as little as possible */
        s->fp = NULL;
        s->nfp = 0;
        return 0;
    }
    switch (SSL_get_error(s->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        s->state = AGW_TLS_HANDSHAKING;
        return -EAGAIN;
    case SSL_ERROR_WANT_X509_LOOKUP:  /* server: hold_for_fingerprints */
    case SSL_ERROR_WANT_RETRY_VERIFY: /* client: verify_peer */
        s->state = AGW_TLS_HELD;
        return -EAGAIN;
    default:
        return fail_from_openssl(s);
    }
}

int agw_tls_session_feed(struct agw_tls_session *s, const void *ciphertext, size_t len,
                         size_t *consumed)
{
    if (consumed != NULL)
        *consumed = 0;
    if (s == NULL || consumed == NULL || (ciphertext == NULL && len > 0))
        return -EINVAL;
    if (s->state == AGW_TLS_FAILED)
        return s->code;
    if (s->input_eof)
        return -EPIPE;
    if (len == 0)
        return 0;
    size_t pending = s->in_end - s->in_start;
    if (pending >= s->ctx->input_max)
        return -EAGAIN;
    size_t take = s->ctx->input_max - pending;
    if (take > len)
        take = len;
    if (input_append(s, ciphertext, take) < 0)
        return -ENOMEM;
    *consumed = take;
    s->stats.cipher_in += take;
    return 0;
}

int agw_tls_session_input_space(struct agw_tls_session *s, void **buf, size_t *cap)
{
    if (buf != NULL)
        *buf = NULL;
    if (cap != NULL)
        *cap = 0;
    if (s == NULL || buf == NULL || cap == NULL)
        return -EINVAL;
    if (s->state == AGW_TLS_FAILED)
        return s->code;
    if (s->input_eof)
        return -EPIPE;
    size_t pending = s->in_end - s->in_start;
    size_t room = s->ctx->input_max - pending;
    if (room == 0)
        return -EAGAIN;
    /* The whole room in one span: a socket read of any size lands without another copy. */
    if (s->in_cap - s->in_end < room) {
        if (s->in_start > 0) {
            memmove(s->in, s->in + s->in_start, pending);
            s->in_start = 0;
            s->in_end = pending;
        }
        if (s->in_cap < s->ctx->input_max) {
            unsigned char *p = realloc(s->in, s->ctx->input_max);
            if (p == NULL)
                return -ENOMEM;
            s->in = p;
            s->in_cap = s->ctx->input_max;
        }
    }
    *buf = s->in + s->in_end;
    *cap = room;
    return 0;
}

int agw_tls_session_input_commit(struct agw_tls_session *s, size_t n)
{
    if (s == NULL || n > s->in_cap - s->in_end || n > s->ctx->input_max - (s->in_end - s->in_start))
        return -EINVAL;
    s->in_end += n;
    s->stats.cipher_in += n;
    if (s->in_start == s->in_end) { /* nothing arrived: give the buffer back */
        free(s->in);
        s->in = NULL;
        s->in_start = s->in_end = s->in_cap = 0;
    }
    return 0;
}

void agw_tls_session_feed_eof(struct agw_tls_session *s)
{
    if (s != NULL)
        s->input_eof = true;
}

int agw_tls_session_read(struct agw_tls_session *s, void *plain, size_t cap, size_t *got)
{
    if (got != NULL)
        *got = 0;
    if (s == NULL || plain == NULL || cap == 0 || got == NULL)
        return -EINVAL;
    if (s->state == AGW_TLS_FAILED)
        return s->code;
    if (s->state != AGW_TLS_VERIFIED)
        return -EAGAIN;
    unsigned char *p = plain;
    size_t total = 0;
    int rc = -EAGAIN;
    /* Once per call, not per record: it costs as much as a record's bookkeeping, and OpenSSL
       leaves the queue empty on success. */
    ERR_clear_error();
    while (total < cap && !s->peer_closed) {
        size_t n = 0;
        if (SSL_read_ex(s->ssl, p + total, cap - total, &n) == 1) {
            total += n;
            continue;
        }
        int e = SSL_get_error(s->ssl, 0);
        if (e == SSL_ERROR_ZERO_RETURN)
            s->peer_closed = true;
        else if (e != SSL_ERROR_WANT_READ)
            rc = fail_from_openssl(s);
        break;
    }
    *got = total;
    s->stats.plain_in += total;
    if (total > 0 || s->peer_closed)
        return 0;
    return rc;
}

int agw_tls_session_write(struct agw_tls_session *s, const void *plain, size_t len, size_t *taken)
{
    if (taken != NULL)
        *taken = 0;
    if (s == NULL || taken == NULL || (plain == NULL && len > 0))
        return -EINVAL;
    if (s->state == AGW_TLS_FAILED)
        return s->code;
    if (s->close_sent)
        return -EPIPE;
    if (s->state != AGW_TLS_VERIFIED || s->out_size >= s->ctx->output_max)
        return -EAGAIN;
    if (len == 0)
        return 0;
    /* Full records even when little room is left: the bound is passed by one record at most. */
    size_t chunk = s->ctx->output_max - s->out_size;
    if (chunk < RECORD_PLAIN_MAX)
        chunk = RECORD_PLAIN_MAX;
    if (chunk > len)
        chunk = len;
    size_t n = 0;
    ERR_clear_error();
    if (SSL_write_ex(s->ssl, plain, chunk, &n) != 1)
        return fail_from_openssl(s);
    *taken = n;
    s->stats.plain_out += n;
    return 0;
}

void agw_tls_session_pending_output(const struct agw_tls_session *s, const void **data, size_t *len)
{
    const struct out_chunk *c = s != NULL ? s->out_head : NULL;
    *data = c != NULL ? c->data + c->start : NULL;
    *len = c != NULL ? c->end - c->start : 0;
}

size_t agw_tls_session_output_size(const struct agw_tls_session *s)
{
    return s != NULL ? s->out_size : 0;
}

int agw_tls_session_consume_output(struct agw_tls_session *s, size_t n)
{
    if (s == NULL || n > s->out_size)
        return -EINVAL;
    s->out_size -= n;
    s->stats.cipher_out += n;
    while (n > 0) {
        struct out_chunk *c = s->out_head;
        size_t here = c->end - c->start;
        if (n < here) {
            c->start += n;
            break;
        }
        n -= here;
        s->out_head = c->next;
        if (s->out_head == NULL)
            s->out_tail = NULL;
        free(c);
    }
    return 0;
}

int agw_tls_session_close(struct agw_tls_session *s)
{
    if (s == NULL)
        return -EINVAL;
    if (s->state == AGW_TLS_FAILED)
        return s->code;
    if (s->state != AGW_TLS_VERIFIED)
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

enum agw_tls_state agw_tls_session_state(const struct agw_tls_session *s)
{
    return s->state;
}

bool agw_tls_session_peer_closed(const struct agw_tls_session *s)
{
    return s->peer_closed;
}

const struct agw_tls_error *agw_tls_session_error(const struct agw_tls_session *s)
{
    return s->state == AGW_TLS_FAILED ? &s->error : NULL;
}

X509 *agw_tls_session_peer_cert(const struct agw_tls_session *s)
{
    return s->peer;
}

void agw_tls_session_stats(const struct agw_tls_session *s, struct agw_tls_stats *out)
{
    *out = s->stats;
}

const char *agw_tls_session_version(const struct agw_tls_session *s)
{
    return SSL_get_current_cipher(s->ssl) != NULL ? SSL_get_version(s->ssl) : NULL;
}

const char *agw_tls_session_cipher(const struct agw_tls_session *s)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(s->ssl);
    return c != NULL ? SSL_CIPHER_get_name(c) : NULL;
}
