/* Internal to tls/: the context's fields and the hooks session.c lends to context.c. */
#ifndef IMS_AGW_TLS_SESSION_INTERNAL_H
#define IMS_AGW_TLS_SESSION_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <threads.h>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "cert.h"
#include "record13.h"
#include "session.h"

#define AGW_TLS_IDENTITY_CTX_MAX                                                                   \
    8 /* identities (realms, rotations) with an SSL_CTX of their own                               \
       */

/* One SSL_CTX per identity a context's sessions present: OpenSSL checks a certificate and its key
   (about 25 us) when they are set, and an SSL made from a CTX that has them set skips that. */
struct agw_tls_identity_ctx {
    struct agw_tls_identity *id; /* one reference */
    SSL_CTX *ssl_ctx;
    uint64_t last_use;
};

struct agw_tls_ctx {
    atomic_uint refs;
    BIO_METHOD *bio_method; /* the sessions' buffers as OpenSSL's rbio and wbio */
    unsigned min_version, max_version;
    char *ciphers, *ciphersuites, *groups; /* the configuration, for each identity's SSL_CTX */
    mtx_t lock;                            /* guards identity_ctx and use_clock */
    struct agw_tls_identity_ctx identity_ctx[AGW_TLS_IDENTITY_CTX_MAX];
    uint64_t use_clock;
    size_t input_max;
    size_t output_max;
    struct agw_tls13_suites tls13; /* what sessions run on once their TLS 1.3 handshake is done */
};

/* A new SSL presenting id, made from ctx's SSL_CTX for id (made on first use; any thread).
   NULL when out of memory or when OpenSSL refuses the certificate or key. */
SSL *agw_tls_ctx_new_ssl(struct agw_tls_ctx *ctx, struct agw_tls_identity *id);

/* Installs the verification, hold and alert callbacks on a new SSL_CTX (session.c). */
void agw_tls_session_install_hooks(SSL_CTX *ssl_ctx);

/* A new BIO method over a session's buffers, owned by the caller (session.c); NULL on failure. */
BIO_METHOD *agw_tls_session_bio_method_new(void);

#endif
