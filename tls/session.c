/* TLS sessions: one SSL object over the session's own buffers, the fingerprint hold and check. */
#include "session.h"
#include "peer_check.h"
#include "session_internal.h"

#include <errno.h>
#include <stddef.h>
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

/*
 * After a TLS 1.3 handshake the session leaves OpenSSL (the SSL object is freed) and runs the
 * records itself (record13.h), as kTLS does in a kernel that has it: an SSL object costs about
 * 16 KiB for as long as it lives (its state, the ECDHE key, the handshake hash, the peer's
 * certificate), and an established relay session needs only two AEAD contexts and their
 * sequence numbers. The traffic secrets come from the key log callback, OpenSSL 3.0's only public
 * way to them; they live in the session only until the AEADs are keyed. What stays after the
 * handshake is small and fully specified (RFC 8446 §4.6, §5, §6): application data, alerts,
 * KeyUpdate in both directions, NewSessionTicket ignored on a client. TLS 1.2 sessions stay on
 * OpenSSL.
 */

#define RECORD_PLAIN_MAX 16384  /* application bytes in one TLS record */
#define INPUT_ALLOC_MIN 4096    /* first allocation of the input buffer */
#define OUTPUT_CHUNK_SMALL 4096 /* holds a handshake flight, an alert, a short message */
/* Four full TLS 1.3 records: large socket writes. */
#define OUTPUT_CHUNK_LARGE (4 * (RECORD_PLAIN_MAX + AGW_TLS13_OVERHEAD))
#define POST_HANDSHAKE_MAX 65536 /* a post-handshake message we buffer, bytes */
/* Records sealed under one key before we update it: AES-GCM's confidentiality limit (§5.5) is
   2^24.5 full records. */
#define RECORDS_PER_KEY (1ULL << 24)

#define SECRET_CLIENT 1
#define SECRET_SERVER 2

/* Alert descriptions we send after the handshake. */
#define ALERT_CLOSE_NOTIFY 0
#define ALERT_UNEXPECTED_MESSAGE 10
#define ALERT_BAD_RECORD_MAC 20
#define ALERT_RECORD_OVERFLOW 22
#define ALERT_ILLEGAL_PARAMETER 47
#define ALERT_DECODE_ERROR 50
#define ALERT_USER_CANCELED 90

#define HS_NEW_SESSION_TICKET 4
#define HS_KEY_UPDATE 24

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
    struct agw_tls_peer_check pc; /* first: OpenSSL's callbacks find it as the app data */
    SSL *ssl;
    struct agw_tls_ctx *ctx;
    struct agw_tls_identity *id;
    bool close_sent;
    bool input_eof;
    bool output_failed; /* the BIO could not allocate: OpenSSL saw a write error */

    unsigned char *in; /* fed ciphertext, [in_start, in_end) not yet read by OpenSSL */
    size_t in_start;
    size_t in_end;
    size_t in_cap;

    struct out_chunk *out_head;
    struct out_chunk *out_tail;
    size_t out_size;

    struct agw_tls_stats stats;

    /* TLS 1.3 once the handshake is done: ssl is NULL, these carry the records. */
    struct agw_tls13_dir rx, tx;
    size_t plain_head; /* decrypted content at in + in_start not yet read */
    size_t plain_skip; /* then this many bytes (content type, padding, tag) to pass */
    uint8_t *hs;       /* a post-handshake message begun in an earlier record */
    size_t hs_len;
    bool key_update_due; /* the peer asked for our KeyUpdate */
    const char *version_name, *cipher_name;
    /* The traffic secrets, from the key log callback until the records are keyed. */
    unsigned secrets_seen; /* SECRET_CLIENT | SECRET_SERVER */
    size_t secret_len;
    uint8_t client_secret[AGW_TLS13_SECRET_MAX], server_secret[AGW_TLS13_SECRET_MAX];
};

_Static_assert(offsetof(struct agw_tls_session, pc) == 0, "the callbacks' app data is the check");

static bool on_records(const struct agw_tls_session *s)
{
    return s->ssl == NULL;
}

/* Ciphertext the session takes before it refuses more: the configured bound, but never less than
   one whole TLS 1.3 record, which is only opened once complete. */
static size_t input_bound(const struct agw_tls_session *s)
{
    if (on_records(s) && s->ctx->input_max < AGW_TLS13_RECORD_MAX)
        return AGW_TLS13_RECORD_MAX;
    return s->ctx->input_max;
}

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
        size_t want = pending + len <= INPUT_ALLOC_MIN ? INPUT_ALLOC_MIN : input_bound(s);
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

/* A new empty chunk of cap bytes at the end of the output; NULL when out of memory. */
static struct out_chunk *output_chunk_add(struct agw_tls_session *s, size_t cap)
{
    struct out_chunk *t = malloc(sizeof(*t) + cap);
    if (t == NULL)
        return NULL;
    t->next = NULL;
    t->start = 0;
    t->end = 0;
    t->cap = cap;
    if (s->out_tail != NULL)
        s->out_tail->next = t;
    else
        s->out_head = t;
    s->out_tail = t;
    return t;
}

static int output_append(struct agw_tls_session *s, const unsigned char *data, size_t len)
{
    while (len > 0) {
        struct out_chunk *t = s->out_tail;
        if (t == NULL || t->end == t->cap) {
            t = output_chunk_add(s, len < OUTPUT_CHUNK_SMALL ? OUTPUT_CHUNK_SMALL
                                                             : OUTPUT_CHUNK_LARGE);
            if (t == NULL)
                return -ENOMEM;
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

/* Room for need contiguous bytes at the end of the output; output_commit counts what was
   written there. NULL when out of memory. */
static uint8_t *output_reserve(struct agw_tls_session *s, size_t need)
{
    struct out_chunk *t = s->out_tail;
    if (t != NULL && t->cap - t->end >= need)
        return t->data + t->end;
    size_t cap = need <= OUTPUT_CHUNK_SMALL ? OUTPUT_CHUNK_SMALL : OUTPUT_CHUNK_LARGE;
    t = output_chunk_add(s, cap < need ? need : cap);
    return t != NULL ? t->data : NULL;
}

static void output_commit(struct agw_tls_session *s, size_t n)
{
    s->out_tail->end += n;
    s->out_size += n;
}

static void input_release_if_empty(struct agw_tls_session *s)
{
    if (s->in_start == s->in_end && s->plain_head == 0) {
        free(s->in);
        s->in = NULL;
        s->in_start = s->in_end = s->in_cap = 0;
    }
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

static int fail(struct agw_tls_session *s, enum agw_tls_failure reason, const char *text, int code)
{
    return agw_tls_peer_check_fail(&s->pc, reason, text, code);
}

static int fail_from_openssl(struct agw_tls_session *s)
{
    return agw_tls_peer_check_fail_from_openssl(&s->pc, s->output_failed);
}

/* ---- callbacks ---- */

/* Keeps the application traffic secrets (NSS key log lines: "LABEL <client random> <secret>"). */
static void on_keylog(const SSL *ssl, const char *line)
{
    static const char client[] = "CLIENT_TRAFFIC_SECRET_0 ";
    static const char server[] = "SERVER_TRAFFIC_SECRET_0 ";
    struct agw_tls_session *s = SSL_get_app_data(ssl);
    if (s == NULL)
        return;
    uint8_t *dst;
    unsigned bit;
    if (strncmp(line, client, sizeof(client) - 1) == 0) {
        dst = s->client_secret;
        bit = SECRET_CLIENT;
    } else if (strncmp(line, server, sizeof(server) - 1) == 0) {
        dst = s->server_secret;
        bit = SECRET_SERVER;
    } else {
        return;
    }
    size_t n = 0;
    if (OPENSSL_hexstr2buf_ex(dst, AGW_TLS13_SECRET_MAX, &n, strrchr(line, ' ') + 1, '\0') != 1 ||
        n == 0)
        return;
    s->secret_len = n;
    s->secrets_seen |= bit;
}

void agw_tls_session_install_hooks(SSL_CTX *ssl_ctx)
{
    SSL_CTX_set_keylog_callback(ssl_ctx, on_keylog);
    agw_tls_peer_check_install(ssl_ctx);
}

/* ---- TLS 1.3 records after the handshake ---- */

/* Frees the SSL object of a completed TLS 1.3 handshake and keys the records from its traffic
   secrets. Any other session (TLS 1.2, a suite record13 does not run, secrets not seen, bytes
   inside OpenSSL) stays on OpenSSL. 0, or a negative code with the session unchanged. */
static int leave_openssl(struct agw_tls_session *s)
{
    const SSL_CIPHER *cipher = SSL_get_current_cipher(s->ssl);
    if (SSL_version(s->ssl) != TLS1_3_VERSION || cipher == NULL ||
        s->secrets_seen != (SECRET_CLIENT | SECRET_SERVER) || SSL_has_pending(s->ssl))
        return 0;
    const struct agw_tls13_suite *suite =
        agw_tls13_suite_find(&s->ctx->tls13, SSL_CIPHER_get_protocol_id(cipher));
    if (suite == NULL || s->secret_len != suite->secret_len)
        return 0;
    bool server = s->pc.role == AGW_TLS_SERVER;
    const uint8_t *rx = server ? s->client_secret : s->server_secret;
    const uint8_t *tx = server ? s->server_secret : s->client_secret;
    int rc = agw_tls13_dir_init(&s->rx, suite, rx, s->secret_len);
    if (rc == 0)
        rc = agw_tls13_dir_init(&s->tx, suite, tx, s->secret_len);
    OPENSSL_cleanse(s->client_secret, sizeof(s->client_secret));
    OPENSSL_cleanse(s->server_secret, sizeof(s->server_secret));
    if (rc < 0) {
        agw_tls13_dir_clear(&s->rx);
        agw_tls13_dir_clear(&s->tx);
        return rc;
    }
    /* Static strings of libssl's tables: they outlive the SSL object. */
    s->version_name = SSL_get_version(s->ssl);
    s->cipher_name = SSL_CIPHER_get_name(cipher);
    SSL_free(s->ssl);
    s->ssl = NULL;
    return 0;
}

static int seal_into_output(struct agw_tls_session *s, uint8_t type, const void *content,
                            size_t len)
{
    uint8_t *out = output_reserve(s, len + AGW_TLS13_OVERHEAD);
    if (out == NULL)
        return -ENOMEM;
    long n = agw_tls13_seal(&s->tx, type, content, len, out);
    if (n < 0)
        return (int)n;
    output_commit(s, (size_t)n);
    return 0;
}

/* Sends a fatal alert (best effort: the session fails whether or not it went out). */
static int records_fail(struct agw_tls_session *s, int alert, const char *text)
{
    if (s->pc.state == AGW_TLS_FAILED)
        return s->pc.code;
    const uint8_t msg[2] = {2, (uint8_t)alert};
    if (!s->close_sent && seal_into_output(s, AGW_TLS13_ALERT, msg, sizeof(msg)) == 0)
        s->pc.error.alert_sent = alert;
    return fail(s, AGW_TLS_FAIL_PROTOCOL, text, -EPROTO);
}

/* KeyUpdate (§4.6.3): ours goes out under the old key, then the new one takes over. */
static int send_key_update(struct agw_tls_session *s, bool request)
{
    const uint8_t msg[5] = {HS_KEY_UPDATE, 0, 0, 1, request ? 1 : 0};
    int rc = seal_into_output(s, AGW_TLS13_HANDSHAKE, msg, sizeof(msg));
    if (rc == 0)
        rc = agw_tls13_dir_update(&s->tx);
    if (rc < 0)
        return fail(s, AGW_TLS_FAIL_INTERNAL, "cannot update the traffic key", rc);
    return 0;
}

/* Handshake messages after the handshake (§4.6): NewSessionTicket (a client ignores it: we never
   resume) and KeyUpdate. data is one record's content; a message may continue in later records
   and is kept, up to POST_HANDSHAKE_MAX bytes, in s->hs. */
static int post_handshake(struct agw_tls_session *s, const uint8_t *data, size_t len,
                          bool *update_read_key)
{
    if (len == 0)
        return records_fail(s, ALERT_UNEXPECTED_MESSAGE, "empty handshake record");
    if (s->hs_len > 0) {
        if (len > POST_HANDSHAKE_MAX + 4 - s->hs_len)
            return records_fail(s, ALERT_DECODE_ERROR, "post-handshake message too large");
        uint8_t *p = realloc(s->hs, s->hs_len + len);
        if (p == NULL)
            return fail(s, AGW_TLS_FAIL_INTERNAL, "out of memory", -ENOMEM);
        memcpy(p + s->hs_len, data, len);
        s->hs = p;
        s->hs_len += len;
        data = s->hs;
        len = s->hs_len;
    }
    size_t off = 0;
    while (len - off >= 4) {
        const uint8_t *m = data + off;
        size_t body = (size_t)m[1] << 16 | (size_t)m[2] << 8 | m[3];
        if (body > POST_HANDSHAKE_MAX)
            return records_fail(s, ALERT_DECODE_ERROR, "post-handshake message too large");
        if (len - off - 4 < body)
            break;
        if (m[0] == HS_NEW_SESSION_TICKET && s->pc.role == AGW_TLS_CLIENT) {
            /* ignored: every session makes a full handshake (fingerprint check) */
        } else if (m[0] == HS_KEY_UPDATE) {
            if (body != 1)
                return records_fail(s, ALERT_DECODE_ERROR, "malformed KeyUpdate");
            if (m[4] > 1)
                return records_fail(s, ALERT_ILLEGAL_PARAMETER, "KeyUpdate request not 0 or 1");
            if (off + 5 != len) /* the key changes after it: nothing may follow in the record */
                return records_fail(s, ALERT_UNEXPECTED_MESSAGE, "data after KeyUpdate");
            *update_read_key = true;
            if (m[4] == 1)
                s->key_update_due = true;
        } else {
            return records_fail(s, ALERT_UNEXPECTED_MESSAGE, "unexpected post-handshake message");
        }
        off += 4 + body;
    }
    size_t rest = len - off;
    if (rest == 0) {
        free(s->hs);
        s->hs = NULL;
        s->hs_len = 0;
    } else if (data == s->hs) {
        memmove(s->hs, s->hs + off, rest);
        s->hs_len = rest;
    } else {
        uint8_t *p = malloc(rest);
        if (p == NULL)
            return fail(s, AGW_TLS_FAIL_INTERNAL, "out of memory", -ENOMEM);
        memcpy(p, data + off, rest);
        free(s->hs);
        s->hs = p;
        s->hs_len = rest;
    }
    return 0;
}

/* One record's content of a type other than application data. 0 or the failure's code. */
static int records_control(struct agw_tls_session *s, uint8_t type, const uint8_t *content,
                           size_t len)
{
    if (type == AGW_TLS13_ALERT) {
        if (len != 2)
            return records_fail(s, ALERT_DECODE_ERROR, "malformed alert");
        if (content[1] == ALERT_CLOSE_NOTIFY) {
            s->pc.peer_closed = true;
        } else if (content[1] != ALERT_USER_CANCELED) { /* every other alert is fatal (§6) */
            s->pc.error.alert_received = content[1];
            return fail(s, AGW_TLS_FAIL_PEER_ALERT, agw_tls_alert_name(content[1]), -ECONNABORTED);
        }
        return 0;
    }
    if (type != AGW_TLS13_HANDSHAKE)
        return records_fail(s, ALERT_UNEXPECTED_MESSAGE, "unexpected record type");
    bool update = false;
    int rc = post_handshake(s, content, len, &update);
    if (rc < 0)
        return rc;
    if (update && agw_tls13_dir_update(&s->rx) < 0)
        return fail(s, AGW_TLS_FAIL_INTERNAL, "cannot update the traffic key", -EIO);
    if (s->key_update_due && !s->close_sent) {
        s->key_update_due = false;
        return send_key_update(s, false);
    }
    return 0;
}

static int records_read(struct agw_tls_session *s, uint8_t *plain, size_t cap, size_t *got)
{
    size_t total = 0;
    bool need_input = false;
    while (total < cap && !s->pc.peer_closed && s->pc.state != AGW_TLS_FAILED) {
        if (s->plain_head > 0) {
            size_t n = s->plain_head < cap - total ? s->plain_head : cap - total;
            memcpy(plain + total, s->in + s->in_start, n);
            total += n;
            s->in_start += n;
            s->plain_head -= n;
            if (s->plain_head == 0) {
                s->in_start += s->plain_skip;
                s->plain_skip = 0;
            }
            continue;
        }
        size_t avail = s->in_end - s->in_start;
        if (avail < AGW_TLS13_HEADER) {
            need_input = true;
            break;
        }
        uint8_t *record = s->in + s->in_start;
        long body_len = agw_tls13_body_length(record);
        if (body_len == -EMSGSIZE) {
            records_fail(s, ALERT_RECORD_OVERFLOW, "record overflow");
            break;
        }
        if (body_len < 0) {
            records_fail(s, ALERT_UNEXPECTED_MESSAGE, "unprotected record after the handshake");
            break;
        }
        if (avail - AGW_TLS13_HEADER < (size_t)body_len) {
            need_input = true;
            break;
        }
        uint8_t *body = record + AGW_TLS13_HEADER;
        /* Straight into the caller's buffer when the record fits, else in place. */
        bool direct =
            (size_t)body_len <= AGW_TLS13_TAG || (size_t)body_len - AGW_TLS13_TAG <= cap - total;
        uint8_t *out = direct ? plain + total : body;
        uint8_t type = 0;
        size_t len = 0;
        int rc = agw_tls13_open(&s->rx, record, body, (size_t)body_len, out, &type, &len);
        if (rc == -EBADMSG) {
            records_fail(s, ALERT_BAD_RECORD_MAC, "decryption failed or bad record mac");
            break;
        }
        if (rc == -ENOMSG) {
            records_fail(s, ALERT_UNEXPECTED_MESSAGE, "record without a content type");
            break;
        }
        if (rc < 0) {
            records_fail(s, ALERT_RECORD_OVERFLOW, "record overflow");
            break;
        }
        if (s->hs_len > 0 && type != AGW_TLS13_HANDSHAKE) {
            records_fail(s, ALERT_UNEXPECTED_MESSAGE, "record inside a handshake message");
            break;
        }
        if (type == AGW_TLS13_APPLICATION_DATA && !direct) {
            s->in_start += AGW_TLS13_HEADER;
            s->plain_head = len;
            s->plain_skip = (size_t)body_len - len;
            continue;
        }
        s->in_start += AGW_TLS13_HEADER + (size_t)body_len;
        if (type == AGW_TLS13_APPLICATION_DATA)
            total += len;
        else if (records_control(s, type, out, len) < 0)
            break;
    }
    input_release_if_empty(s);
    /* End of file with no whole record left: the peer's close_notify never came. */
    if (need_input && s->input_eof && s->pc.state != AGW_TLS_FAILED)
        fail(s, AGW_TLS_FAIL_PROTOCOL, "unexpected eof while reading", -EPROTO);
    *got = total;
    s->stats.plain_in += total;
    if (total > 0 || s->pc.peer_closed)
        return 0;
    return s->pc.state == AGW_TLS_FAILED ? s->pc.code : -EAGAIN;
}

static int records_write(struct agw_tls_session *s, const uint8_t *plain, size_t len)
{
    size_t done = 0;
    while (done < len) {
        if (s->key_update_due || s->tx.seq >= RECORDS_PER_KEY) {
            s->key_update_due = false;
            int rc = send_key_update(s, false);
            if (rc < 0)
                return rc;
        }
        size_t n = len - done < RECORD_PLAIN_MAX ? len - done : RECORD_PLAIN_MAX;
        int rc = seal_into_output(s, AGW_TLS13_APPLICATION_DATA, plain + done, n);
        if (rc < 0)
            return fail(s, AGW_TLS_FAIL_INTERNAL, "cannot seal a record", rc);
        done += n;
    }
    return 0;
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
    agw_tls_peer_check_init(&s->pc, role);
    s->ctx = agw_tls_ctx_ref(ctx);
    s->id = agw_tls_identity_ref(id);

    int rc = -EIO;
    ERR_clear_error();
    s->ssl = agw_tls_ctx_new_ssl(ctx, id);
    if (s->ssl == NULL)
        goto fail;
    rc = -ENOMEM;
    BIO *bio = BIO_new(ctx->bio_method);
    if (bio == NULL)
        goto fail;
    BIO_set_data(bio, s);
    BIO_set_init(bio, 1);
    SSL_set_bio(s->ssl, bio, bio); /* one reference, for both directions */
    if (SSL_set_app_data(s->ssl, s) != 1)
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
    agw_tls_peer_check_fini(&s->pc);
    free(s->in);
    free(s->hs);
    agw_tls13_dir_clear(&s->rx);
    agw_tls13_dir_clear(&s->tx);
    OPENSSL_cleanse(s->client_secret, sizeof(s->client_secret));
    OPENSSL_cleanse(s->server_secret, sizeof(s->server_secret));
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
    if (s == NULL)
        return -EINVAL;
    return agw_tls_peer_check_set_fingerprints(&s->pc, list, n);
}

int agw_tls_session_handshake(struct agw_tls_session *s)
{
    if (s == NULL)
        return -EINVAL;
    if (s->pc.state == AGW_TLS_FAILED)
        return s->pc.code;
    if (s->pc.state == AGW_TLS_VERIFIED)
        return 0;
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    if (r != 1)
        return agw_tls_peer_check_handshake_wait(&s->pc, s->ssl, r, s->output_failed);
    int rc = agw_tls_peer_check_handshake_done(&s->pc);
    if (rc == 0 && (rc = leave_openssl(s)) < 0)
        return fail(s, AGW_TLS_FAIL_INTERNAL, "cannot key the TLS 1.3 records", rc);
    return rc;
}

int agw_tls_session_feed(struct agw_tls_session *s, const void *ciphertext, size_t len,
                         size_t *consumed)
{
    if (consumed != NULL)
        *consumed = 0;
    if (s == NULL || consumed == NULL || (ciphertext == NULL && len > 0))
        return -EINVAL;
    if (s->pc.state == AGW_TLS_FAILED)
        return s->pc.code;
    if (s->input_eof)
        return -EPIPE;
    if (len == 0)
        return 0;
    size_t pending = s->in_end - s->in_start;
    size_t bound = input_bound(s);
    if (pending >= bound)
        return -EAGAIN;
    size_t take = bound - pending;
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
    if (s->pc.state == AGW_TLS_FAILED)
        return s->pc.code;
    if (s->input_eof)
        return -EPIPE;
    size_t pending = s->in_end - s->in_start;
    size_t bound = input_bound(s);
    if (pending >= bound)
        return -EAGAIN;
    size_t room = bound - pending;
    /* The whole room in one span: a socket read of any size lands without another copy. */
    if (s->in_cap - s->in_end < room) {
        if (s->in_start > 0) {
            memmove(s->in, s->in + s->in_start, pending);
            s->in_start = 0;
            s->in_end = pending;
        }
        if (s->in_cap < bound) {
            unsigned char *p = realloc(s->in, bound);
            if (p == NULL)
                return -ENOMEM;
            s->in = p;
            s->in_cap = bound;
        }
    }
    *buf = s->in + s->in_end;
    *cap = room;
    return 0;
}

int agw_tls_session_input_commit(struct agw_tls_session *s, size_t n)
{
    if (s == NULL || n > s->in_cap - s->in_end || n > input_bound(s) - (s->in_end - s->in_start))
        return -EINVAL;
    s->in_end += n;
    s->stats.cipher_in += n;
    input_release_if_empty(s); /* nothing arrived: give the buffer back */
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
    if (s->pc.state == AGW_TLS_FAILED)
        return s->pc.code;
    if (s->pc.state != AGW_TLS_VERIFIED)
        return -EAGAIN;
    if (on_records(s))
        return records_read(s, plain, cap, got);
    unsigned char *p = plain;
    size_t total = 0;
    int rc = -EAGAIN;
    /* Once per call, not per record: it costs as much as a record's bookkeeping, and OpenSSL
       leaves the queue empty on success. */
    ERR_clear_error();
    while (total < cap && !s->pc.peer_closed) {
        size_t n = 0;
        if (SSL_read_ex(s->ssl, p + total, cap - total, &n) == 1) {
            total += n;
            continue;
        }
        int e = SSL_get_error(s->ssl, 0);
        if (e == SSL_ERROR_ZERO_RETURN)
            s->pc.peer_closed = true;
        else if (e != SSL_ERROR_WANT_READ)
            rc = fail_from_openssl(s);
        break;
    }
    *got = total;
    s->stats.plain_in += total;
    if (total > 0 || s->pc.peer_closed)
        return 0;
    return rc;
}

int agw_tls_session_write(struct agw_tls_session *s, const void *plain, size_t len, size_t *taken)
{
    if (taken != NULL)
        *taken = 0;
    if (s == NULL || taken == NULL || (plain == NULL && len > 0))
        return -EINVAL;
    if (s->pc.state == AGW_TLS_FAILED)
        return s->pc.code;
    if (s->close_sent)
        return -EPIPE;
    if (s->pc.state != AGW_TLS_VERIFIED || s->out_size >= s->ctx->output_max)
        return -EAGAIN;
    if (len == 0)
        return 0;
    /* Full records even when little room is left: the bound is passed by one record at most. */
    size_t chunk = s->ctx->output_max - s->out_size;
    if (chunk < RECORD_PLAIN_MAX)
        chunk = RECORD_PLAIN_MAX;
    if (chunk > len)
        chunk = len;
    if (on_records(s)) {
        int rc = records_write(s, plain, chunk);
        if (rc < 0)
            return rc;
        *taken = chunk;
        s->stats.plain_out += chunk;
        return 0;
    }
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
    if (s->pc.state == AGW_TLS_FAILED)
        return s->pc.code;
    if (s->pc.state != AGW_TLS_VERIFIED)
        return -ENOTCONN;
    if (s->close_sent)
        return 0;
    if (on_records(s)) {
        static const uint8_t close_notify[2] = {1, ALERT_CLOSE_NOTIFY};
        int rc = seal_into_output(s, AGW_TLS13_ALERT, close_notify, sizeof(close_notify));
        if (rc < 0)
            return fail(s, AGW_TLS_FAIL_INTERNAL, "cannot seal close_notify", rc);
        s->close_sent = true;
        return 0;
    }
    ERR_clear_error();
    if (SSL_shutdown(s->ssl) < 0 && (SSL_get_shutdown(s->ssl) & SSL_SENT_SHUTDOWN) == 0)
        return fail_from_openssl(s);
    ERR_clear_error();
    s->close_sent = true;
    return 0;
}

enum agw_tls_state agw_tls_session_state(const struct agw_tls_session *s)
{
    return s->pc.state;
}

bool agw_tls_session_peer_closed(const struct agw_tls_session *s)
{
    return s->pc.peer_closed;
}

const struct agw_tls_error *agw_tls_session_error(const struct agw_tls_session *s)
{
    return s->pc.state == AGW_TLS_FAILED ? &s->pc.error : NULL;
}

X509 *agw_tls_session_peer_cert(const struct agw_tls_session *s)
{
    return s->pc.cert;
}

void agw_tls_session_stats(const struct agw_tls_session *s, struct agw_tls_stats *out)
{
    *out = s->stats;
}

const char *agw_tls_session_version(const struct agw_tls_session *s)
{
    if (on_records(s))
        return s->version_name;
    return SSL_get_current_cipher(s->ssl) != NULL ? SSL_get_version(s->ssl) : NULL;
}

const char *agw_tls_session_cipher(const struct agw_tls_session *s)
{
    if (on_records(s))
        return s->cipher_name;
    const SSL_CIPHER *c = SSL_get_current_cipher(s->ssl);
    return c != NULL ? SSL_CIPHER_get_name(c) : NULL;
}
