/* DTLS engine: sans-I/O DTLS 1.2 sessions over datagrams, with the same fingerprint hold as TLS. */
#ifndef IMS_AGW_TLS_DTLS_H
#define IMS_AGW_TLS_DTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "cert.h"
#include "fingerprint.h"
#include "session.h"

/* DTLS 1.2 cipher list: ECDHE with AES-GCM or ChaCha20 (what browsers offer for data channels). */
#define AGW_DTLS_DEFAULT_CIPHERS                                                                   \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"   \
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305"
#define AGW_DTLS_DEFAULT_MTU 1200   /* UDP payload bytes: what WebRTC stacks assume is safe */
#define AGW_DTLS_RECORD_OVERHEAD 37 /* header 13 + GCM explicit nonce 8 + tag 16 */

/* Immutable once made; shared by the sessions of every worker, each holding a reference. */
struct agw_dtls_ctx;

/* Makes a DTLS context (one SSL_CTX for both roles). cfg may be NULL; of it DTLS uses ciphers
   and groups (the versions are DTLS 1.2, and 1.3 where the OpenSSL in use has it). *out holds
   one reference, owned by the caller. err (may be NULL) names a bad setting. 0; -EINVAL;
   -ENOMEM. */
int agw_dtls_ctx_new(const struct agw_tls_ctx_config *cfg, struct agw_dtls_ctx **out, char *err,
                     size_t errlen);
/* One more reference; returns ctx (NULL gives NULL). Any thread. */
struct agw_dtls_ctx *agw_dtls_ctx_ref(struct agw_dtls_ctx *ctx);
/* Drops one reference; the last frees it. NULL is ignored. */
void agw_dtls_ctx_unref(struct agw_dtls_ctx *ctx);

/* One DTLS association, driven by one thread. Datagrams in, datagrams out: nothing here touches
   a socket or reads a clock the caller cannot see (retransmissions are driven by
   agw_dtls_session_timeout_ms / agw_dtls_session_handle_timeout). Return codes as for
   agw_tls_session: 0; -EAGAIN; when FAILED, -EACCES (peer certificate refused),
   -ECONNABORTED (peer alert), -EPROTO, -ENOMEM or -EIO. States are enum agw_tls_state. */
struct agw_dtls_session;

/* Makes a session presenting id (one reference taken) with ctx (one reference taken). mtu is the
   largest datagram the session will emit (0: AGW_DTLS_DEFAULT_MTU; at least 256). A CLIENT
   queues its ClientHello at once (see pending_output). 0; -EINVAL; -ENOMEM; -EIO. */
int agw_dtls_session_new(struct agw_dtls_ctx *ctx, struct agw_tls_identity *id,
                         enum agw_tls_role role, uint16_t mtu, struct agw_dtls_session **out);

/* Frees the session and its references; sends nothing. NULL is ignored. */
void agw_dtls_session_free(struct agw_dtls_session *s);

/* The peer's allowed fingerprints (copied; n <= AGW_TLS_FINGERPRINTS_MAX; n == 0: none usable).
   Until set, a server holds the handshake at the ClientHello and a client at the server's
   certificate (state HELD); setting them resumes it (drain the output afterwards).
   0; -EINVAL; -E2BIG; -EALREADY once verified or failed; -ENOMEM. */
int agw_dtls_session_set_fingerprints(struct agw_dtls_session *s,
                                      const struct agw_tls_fingerprint *list, size_t n);

/* Processes one received datagram (borrowed; may hold several records) and advances the
   handshake. Garbage that is not DTLS is dropped silently (counted in the stats) as DTLS over
   UDP requires; only a failed handshake or a fatal alert fails the session. Afterwards drain
   the output and read the application data. 0 (also for dropped garbage); -EAGAIN never; the
   failure's code once FAILED; -EMSGSIZE above 65535 bytes. */
int agw_dtls_session_input(struct agw_dtls_session *s, const void *datagram, size_t len);

/* The next application record's payload, decrypted (one SCTP packet for data channels), copied
   into buf. 0 with *got set (*got == 0 never: empty records are skipped); -EAGAIN when none
   is waiting; -EMSGSIZE when cap is too small (the record is dropped); -EPIPE after the peer's
   close_notify; the failure's code. */
int agw_dtls_session_read(struct agw_dtls_session *s, void *buf, size_t cap, size_t *got);

/* Encrypts len bytes as one record (one datagram). 0; -EAGAIN until VERIFIED; -EMSGSIZE when
   len exceeds agw_dtls_session_max_payload; -EPIPE after close; the failure's code. */
int agw_dtls_session_write(struct agw_dtls_session *s, const void *data, size_t len);

/* The largest payload one write can take with the session's MTU and negotiated cipher. */
size_t agw_dtls_session_max_payload(const struct agw_dtls_session *s);

/* The next datagram to send: 1 with *data and *len set (valid until the next call on s that
   is not agw_dtls_session_state/_stats), and the datagram is taken off the queue; 0 when
   there is none. */
int agw_dtls_session_pending_output(struct agw_dtls_session *s, const uint8_t **data, size_t *len);

/* Milliseconds until agw_dtls_session_handle_timeout should run (handshake retransmission);
   -1 when no timer is running. */
int agw_dtls_session_timeout_ms(const struct agw_dtls_session *s);

/* Runs an expired retransmission timer (resend the last flight; give up after OpenSSL's retry
   limit: FAILED, PROTOCOL, "handshake timeout"). Drain the output afterwards. 0; failure code. */
int agw_dtls_session_handle_timeout(struct agw_dtls_session *s);

/* Queues close_notify. 0; -ENOTCONN before VERIFIED. */
int agw_dtls_session_close(struct agw_dtls_session *s);

enum agw_tls_state agw_dtls_session_state(const struct agw_dtls_session *s);
bool agw_dtls_session_peer_closed(const struct agw_dtls_session *s);
/* Borrowed from s; NULL unless FAILED. */
const struct agw_tls_error *agw_dtls_session_error(const struct agw_dtls_session *s);
/* The peer's certificate, borrowed from s, from the moment it arrives until the session is
   VERIFIED (then released); kept when it was refused, for the log. NULL otherwise. */
X509 *agw_dtls_session_peer_cert(const struct agw_dtls_session *s);

struct agw_dtls_stats {
    uint64_t datagrams_in, datagrams_out, datagrams_dropped; /* dropped: not DTLS, or replayed */
    uint64_t cipher_in, cipher_out;                          /* datagram bytes */
    uint64_t records_in, records_out;                        /* application records */
    uint64_t plain_in, plain_out;                            /* application bytes */
};
void agw_dtls_session_stats(const struct agw_dtls_session *s, struct agw_dtls_stats *out);

/* "DTLSv1.2" and the cipher's standard name; static; NULL before the ServerHello. */
const char *agw_dtls_session_version(const struct agw_dtls_session *s);
const char *agw_dtls_session_cipher(const struct agw_dtls_session *s);

#endif
