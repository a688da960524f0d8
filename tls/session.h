/* TLS session engine: per-realm contexts and sans-I/O sessions with the fingerprint hold. */
#ifndef IMS_AGW_TLS_SESSION_H
#define IMS_AGW_TLS_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "cert.h"
#include "fingerprint.h"

/* Protocol versions, as on the wire. */
#define AGW_TLS_VERSION_1_2 0x0303
#define AGW_TLS_VERSION_1_3 0x0304

#define AGW_TLS_DEFAULT_CIPHERS                                                                    \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define AGW_TLS_DEFAULT_CIPHERSUITES                                                               \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define AGW_TLS_DEFAULT_GROUPS "X25519:P-256"
#define AGW_TLS_DEFAULT_BUFFER (64 * 1024)
#define AGW_TLS_FINGERPRINTS_MAX 16 /* entries agw_tls_session_set_fingerprints keeps */

/* Zeroed fields take the defaults. Strings are borrowed for the duration of agw_tls_ctx_new. */
struct agw_tls_ctx_config {
    unsigned min_version;     /* AGW_TLS_VERSION_1_2 (0) or AGW_TLS_VERSION_1_3 */
    unsigned max_version;     /* AGW_TLS_VERSION_1_3 (0) or AGW_TLS_VERSION_1_2 */
    const char *ciphers;      /* TLS 1.2 cipher list, OpenSSL syntax; NULL: the default */
    const char *ciphersuites; /* TLS 1.3 ciphersuites; NULL: the default */
    const char *groups;       /* key exchange groups; NULL: the default */
    size_t input_max;         /* ciphertext fed and not yet processed, bytes (0: 64 KiB, min 1 KiB;
                                 a verified TLS 1.3 session takes one whole record, 16645 bytes, even
                                 when this is less) */
    size_t output_max; /* ciphertext write() lets pile up before -EAGAIN (0: 64 KiB, min 1 KiB) */
};

/* Immutable once made; shared by the sessions of every worker, each holding a reference. */
struct agw_tls_ctx;

/* Makes a context (one SSL_CTX for both roles); cfg may be NULL for all defaults. *out holds one
   reference, owned by the caller. On failure err (errlen bytes, may be NULL) gets a text naming
   the bad setting. 0; -EINVAL for a bad version, bound or list; -ENOMEM. */
int agw_tls_ctx_new(const struct agw_tls_ctx_config *cfg, struct agw_tls_ctx **out, char *err,
                    size_t errlen);

/* Takes one more reference to ctx and returns ctx; NULL gives NULL. Any thread. */
struct agw_tls_ctx *agw_tls_ctx_ref(struct agw_tls_ctx *ctx);

/* Drops one reference; the last one (the sessions hold theirs) frees it. NULL is ignored. */
void agw_tls_ctx_unref(struct agw_tls_ctx *ctx);

enum agw_tls_role { AGW_TLS_SERVER, AGW_TLS_CLIENT };

enum agw_tls_state {
    AGW_TLS_HANDSHAKING, /* call agw_tls_session_handshake as input arrives */
    AGW_TLS_HELD,        /* the handshake waits for agw_tls_session_set_fingerprints */
    AGW_TLS_VERIFIED,    /* handshake done and the peer's fingerprint matched: data may flow
                            (a TLS 1.3 CLIENT gets here before the server has judged it: a
                            refusal then comes as a fatal alert on read) */
    AGW_TLS_FAILED,      /* for good; flush the pending output (an alert), then drop the socket */
};

enum agw_tls_failure {
    AGW_TLS_FAIL_NONE,
    AGW_TLS_FAIL_FINGERPRINT_MISMATCH,     /* "fingerprint mismatch" */
    AGW_TLS_FAIL_NO_PEER_CERT,             /* "no peer certificate" */
    AGW_TLS_FAIL_NO_SUPPORTED_FINGERPRINT, /* "no supported fingerprint" */
    AGW_TLS_FAIL_PEER_ALERT,               /* the peer sent a fatal alert */
    AGW_TLS_FAIL_PROTOCOL, /* malformed, unexpected or truncated input, refused version */
    AGW_TLS_FAIL_INTERNAL, /* memory or OpenSSL failure */
};

/* Why a session failed, for the failure event to the ALG and the log line. */
struct agw_tls_error {
    enum agw_tls_failure reason;
    const char *text;   /* static: the reason's name, or OpenSSL's reason or the peer's alert */
    int alert_sent;     /* fatal alert description we sent (42 bad_certificate, ...); -1 none */
    int alert_received; /* fatal alert description the peer sent; -1 none */
};

/* Byte counters, for the statistics returned at Subtract. */
struct agw_tls_stats {
    uint64_t cipher_in;  /* accepted by feed */
    uint64_t cipher_out; /* released by consume_output */
    uint64_t plain_in;   /* returned by read */
    uint64_t plain_out;  /* taken by write */
};

/* One TLS connection, driven by one thread. Return codes, unless said otherwise: 0; -EAGAIN when
   more input, output space or the fingerprints are needed; when FAILED, the failure's code:
   -EACCES the peer's certificate was refused, -ECONNABORTED the peer sent a fatal alert,
   -EPROTO any other protocol failure, -ENOMEM or -EIO. Nothing blocks. */
struct agw_tls_session;

/* Makes a session that presents id (one reference taken: rotating the realm's identity later
   does not change what this session presents) and keeps a reference to ctx. A CLIENT sends its
   ClientHello on the first agw_tls_session_handshake. 0; -EINVAL; -ENOMEM; -EIO. */
int agw_tls_session_new(struct agw_tls_ctx *ctx, struct agw_tls_identity *id,
                        enum agw_tls_role role, struct agw_tls_session **out);

/* Frees the session, its buffers and its references; sends nothing. NULL is ignored. */
void agw_tls_session_free(struct agw_tls_session *s);

/* Sets the peer's allowed fingerprints (RFC 8122; list copied, n <= AGW_TLS_FINGERPRINTS_MAX,
   n == 0 means "none usable"), before or during the handshake; a later call replaces an earlier
   one until the peer is verified. A HELD session goes back to HANDSHAKING: call
   agw_tls_session_handshake. 0; -EINVAL; -E2BIG; -EALREADY once verified or failed; -ENOMEM. */
int agw_tls_session_set_fingerprints(struct agw_tls_session *s,
                                     const struct agw_tls_fingerprint *list, size_t n);

/* Drives the handshake with the input fed so far. 0 once VERIFIED; -EAGAIN while HANDSHAKING or
   HELD (flush the pending output either way); the failure's code when it fails. */
int agw_tls_session_handshake(struct agw_tls_session *s);

/* Copies up to len bytes read from the socket (borrowed for the call) into the session;
   *consumed says how many (fewer when input_max bytes are waiting: feed the rest later).
   0 (len == 0 included); -EAGAIN when nothing fit; the failure's code; -EPIPE after feed_eof. */
int agw_tls_session_feed(struct agw_tls_session *s, const void *ciphertext, size_t len,
                         size_t *consumed);

/* Zero-copy alternative to feed: *buf is room for *cap bytes of ciphertext inside the session
   (all that input_max allows), to read the socket into (a libuv alloc_cb); then input_commit says
   how many arrived. *buf is valid until the next call on s. 0; -EAGAIN when full (stop reading
   the socket); the failure's code; -EPIPE after feed_eof; -ENOMEM. */
int agw_tls_session_input_space(struct agw_tls_session *s, void **buf, size_t *cap);

/* Counts n bytes written at the start of the input_space span as fed. 0; -EINVAL if n exceeds
   that span. */
int agw_tls_session_input_commit(struct agw_tls_session *s, size_t n);

/* The socket reached end of file: once the fed bytes are used up, a missing close_notify is a
   truncation (FAILED, PROTOCOL, "unexpected eof while reading"). */
void agw_tls_session_feed_eof(struct agw_tls_session *s);

/* Decrypts application data into plain (cap > 0 bytes, as many records as fit). Only once
   VERIFIED: before, the ciphertext stays fed and undecrypted. 0 with *got > 0; 0 with *got == 0
   at the peer's close_notify (end of stream); -EAGAIN (not verified, or more input needed);
   the failure's code (bytes already returned by earlier calls are genuine). */
int agw_tls_session_read(struct agw_tls_session *s, void *plain, size_t cap, size_t *got);

/* Encrypts up to len bytes of plain (borrowed for the call); *taken says how many. Taken bytes
   are never asked for again. Refused with -EAGAIN until VERIFIED and while output_max bytes of
   output are pending (the output may exceed it by one record); -EPIPE after close. */
int agw_tls_session_write(struct agw_tls_session *s, const void *plain, size_t len, size_t *taken);

/* The oldest ciphertext waiting for the socket: *data (NULL when *len == 0) points into the
   session's buffer and stays valid, unchanged, until consume_output releases those bytes or the
   session is freed, whatever else is called meanwhile (so an asynchronous write can use it). */
void agw_tls_session_pending_output(const struct agw_tls_session *s, const void **data,
                                    size_t *len);

/* Bytes of ciphertext waiting in all, possibly more than one pending_output span. */
size_t agw_tls_session_output_size(const struct agw_tls_session *s);

/* Releases n bytes written to the socket, oldest first. 0; -EINVAL if n > output_size. */
int agw_tls_session_consume_output(struct agw_tls_session *s, size_t n);

/* Queues close_notify; reading may go on until the peer's (TLS half-close). 0 (also when sent
   before); -ENOTCONN before VERIFIED (nothing can be sent: drop the connection); the failure's
   code. */
int agw_tls_session_close(struct agw_tls_session *s);

enum agw_tls_state agw_tls_session_state(const struct agw_tls_session *s);

/* True once the peer's close_notify has been read. */
bool agw_tls_session_peer_closed(const struct agw_tls_session *s);

/* The failure, borrowed from s; NULL unless FAILED. */
const struct agw_tls_error *agw_tls_session_error(const struct agw_tls_session *s);

/* The peer's end-entity certificate, borrowed from s, from the moment the peer sent it until the
   session is VERIFIED (then it is released); kept when it was refused, for the log. NULL
   otherwise. */
X509 *agw_tls_session_peer_cert(const struct agw_tls_session *s);

void agw_tls_session_stats(const struct agw_tls_session *s, struct agw_tls_stats *out);

/* Negotiated version ("TLSv1.3") and cipher ("TLS_AES_128_GCM_SHA256"), static strings; NULL
   before the ServerHello. */
const char *agw_tls_session_version(const struct agw_tls_session *s);
const char *agw_tls_session_cipher(const struct agw_tls_session *s);

/* Names for logs, static strings: "fingerprint mismatch", ...; "bad certificate", .... */
const char *agw_tls_failure_name(enum agw_tls_failure reason);
const char *agw_tls_alert_name(int alert);

#endif
