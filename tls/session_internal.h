/* Internal to tls/: the context's fields and the hooks session.c lends to context.c. */
#ifndef IMS_AGW_TLS_SESSION_INTERNAL_H
#define IMS_AGW_TLS_SESSION_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "record13.h"
#include "session.h"

struct agw_tls_ctx {
    atomic_uint refs;
    SSL_CTX *ssl_ctx;
    BIO_METHOD *bio_method; /* the sessions' buffers as OpenSSL's rbio and wbio */
    size_t input_max;
    size_t output_max;
    struct agw_tls13_suites tls13; /* what sessions run on once their TLS 1.3 handshake is done */
};

/* Installs the verification, hold and alert callbacks on a new SSL_CTX (session.c). */
void agw_tls_session_install_hooks(SSL_CTX *ssl_ctx);

/* A new BIO method over a session's buffers, owned by the caller (session.c); NULL on failure. */
BIO_METHOD *agw_tls_session_bio_method_new(void);

#endif
