/* Internal to tls/: what the TLS and DTLS engines share about the peer: the fingerprints the ALG
   gave, the hold until they come, the verdict on the certificate, the alerts seen, the failure. */
#ifndef IMS_AGW_TLS_PEER_CHECK_H
#define IMS_AGW_TLS_PEER_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "fingerprint.h"
#include "session.h"

/* The first member of each engine's session: OpenSSL's callbacks find it as the SSL's app data. */
struct agw_tls_peer_check {
    enum agw_tls_role role;
    enum agw_tls_state state;
    int code; /* the failure's code once FAILED */
    struct agw_tls_error error;
    enum agw_tls_failure verify_failure; /* set by the verification callback */
    bool fingerprints_known;
    bool verified;
    bool peer_closed;     /* the peer's close_notify was read */
    uint64_t alerts_read; /* alerts of any level read */
    size_t nfp;
    struct agw_tls_fingerprint *fp;
    X509 *cert; /* the peer's certificate (one reference), until the verdict is accepted */
};

/* A HANDSHAKING check for role, with no fingerprints yet and no alert. */
void agw_tls_peer_check_init(struct agw_tls_peer_check *pc, enum agw_tls_role role);

/* Frees what pc holds. */
void agw_tls_peer_check_fini(struct agw_tls_peer_check *pc);

/* Makes the session FAILED for reason (text static) with code, unless it failed already; returns
   the failure's code. */
int agw_tls_peer_check_fail(struct agw_tls_peer_check *pc, enum agw_tls_failure reason,
                            const char *text, int code);

/* Classifies the failure of an SSL call (our verdict first, then the peer's alert, then the
   oldest OpenSSL error) and empties the thread's error queue. out_of_memory: the engine's own
   buffers could not grow. Returns the failure's code. */
int agw_tls_peer_check_fail_from_openssl(struct agw_tls_peer_check *pc, bool out_of_memory);

/* Keeps a copy of the allowed fingerprints (the agw_*_session_set_fingerprints contract); a HELD
   check goes back to HANDSHAKING, and the engine resumes the handshake. */
int agw_tls_peer_check_set_fingerprints(struct agw_tls_peer_check *pc,
                                        const struct agw_tls_fingerprint *list, size_t n);

/* OpenSSL finished the handshake: VERIFIED (fingerprints and certificate released, 0) when the
   certificate matched, else FAILED "no peer certificate" (-EACCES). */
int agw_tls_peer_check_handshake_done(struct agw_tls_peer_check *pc);

/* SSL_get_error after a handshake step that returned ret: -EAGAIN (HANDSHAKING, or HELD for
   the fingerprints) or the failure's code (out_of_memory as for fail_from_openssl). */
int agw_tls_peer_check_handshake_wait(struct agw_tls_peer_check *pc, SSL *ssl, int ret,
                                      bool out_of_memory);

/* Installs the verification, hold and alert callbacks on an SSL_CTX. */
void agw_tls_peer_check_install(SSL_CTX *c);

#endif
