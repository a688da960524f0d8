/* TLS contexts: one SSL_CTX per realm or configuration, shared by the sessions of all workers. */
#include "session.h"
#include "session_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/err.h>

#define BUFFER_MIN 1024
#define BUFFER_MAX (64 * 1024 * 1024)
/* Bounds the peer's certificate chain, hence what one handshake may make us hold; a UE sends one
   self-signed certificate of well under 2 KiB. */
#define CERT_LIST_MAX (32 * 1024)
/* 112-bit security: P-256 and RSA-2048 pass, SHA-1 signatures and RSA-1024 keys do not. */
#define SECURITY_LEVEL 2

static const unsigned char session_id_context[] = "ims-agw";

/* Writes the text and OpenSSL's newest error to err, then empties the thread's error queue so
   that the next SSL call of this thread starts clean. */
__attribute__((format(printf, 3, 4))) static void set_error(char *err, size_t errlen,
                                                            const char *fmt, ...)
{
    unsigned long e = ERR_peek_last_error();
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        if (e != 0 && n >= 0 && (size_t)n < errlen) {
            char ossl[256];
            ERR_error_string_n(e, ossl, sizeof(ossl));
            snprintf(err + n, errlen - (size_t)n, ": %s", ossl);
        }
    }
    ERR_clear_error();
}

static int check_version(unsigned v, const char *what, char *err, size_t errlen)
{
    if (v == AGW_TLS_VERSION_1_2 || v == AGW_TLS_VERSION_1_3)
        return 0;
    set_error(err, errlen, "%s 0x%04x: only TLS 1.2 (0x0303) and 1.3 (0x0304)", what, v);
    return -EINVAL;
}

static int check_buffer(size_t v, const char *what, char *err, size_t errlen)
{
    if (v >= BUFFER_MIN && v <= BUFFER_MAX)
        return 0;
    set_error(err, errlen, "%s %zu outside %d..%d", what, v, BUFFER_MIN, BUFFER_MAX);
    return -EINVAL;
}

/* Everything that does not come from the configuration: no resumption (no tickets, no cache: a
   full handshake, hence the fingerprint check, every time), no compression, no renegotiation. */
static int set_fixed_options(SSL_CTX *c)
{
    SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA);
    SSL_CTX_clear_options(c, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_security_level(c, SECURITY_LEVEL);
    SSL_CTX_set_max_cert_list(c, CERT_LIST_MAX);
    /* The session's BIO never refuses a write, so OpenSSL never has to be called again with the
       same bytes; the two write modes only make that explicit. Buffers go back to the heap as
       soon as they are empty, so that an idle session costs little. */
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_set_num_tickets(c, 0) != 1)
        return -ENOMEM;
    if (SSL_CTX_set_session_id_context(c, session_id_context, sizeof(session_id_context) - 1) != 1)
        return -ENOMEM;
    return 0;
}

static int configure(SSL_CTX *c, const struct agw_tls_ctx_config *cfg, unsigned min, unsigned max,
                     char *err, size_t errlen)
{
    const char *ciphers = cfg->ciphers != NULL ? cfg->ciphers : AGW_TLS_DEFAULT_CIPHERS;
    const char *suites =
        cfg->ciphersuites != NULL ? cfg->ciphersuites : AGW_TLS_DEFAULT_CIPHERSUITES;
    const char *groups = cfg->groups != NULL ? cfg->groups : AGW_TLS_DEFAULT_GROUPS;

    if (SSL_CTX_set_min_proto_version(c, (int)min) != 1 ||
        SSL_CTX_set_max_proto_version(c, (int)max) != 1) {
        set_error(err, errlen, "cannot set the protocol versions");
        return -EINVAL;
    }
    if (SSL_CTX_set_cipher_list(c, ciphers) != 1) {
        set_error(err, errlen, "ciphers \"%s\"", ciphers);
        return -EINVAL;
    }
    if (SSL_CTX_set_ciphersuites(c, suites) != 1) {
        set_error(err, errlen, "ciphersuites \"%s\"", suites);
        return -EINVAL;
    }
    if (SSL_CTX_set1_groups_list(c, groups) != 1) {
        set_error(err, errlen, "groups \"%s\"", groups);
        return -EINVAL;
    }
    int rc = set_fixed_options(c);
    if (rc < 0) {
        set_error(err, errlen, "cannot set the fixed options");
        return rc;
    }
    agw_tls_session_install_hooks(c);
    return 0;
}

int agw_tls_ctx_new(const struct agw_tls_ctx_config *cfg, struct agw_tls_ctx **out, char *err,
                    size_t errlen)
{
    static const struct agw_tls_ctx_config defaults;
    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    if (cfg == NULL)
        cfg = &defaults;

    unsigned min = cfg->min_version != 0 ? cfg->min_version : AGW_TLS_VERSION_1_2;
    unsigned max = cfg->max_version != 0 ? cfg->max_version : AGW_TLS_VERSION_1_3;
    size_t input_max = cfg->input_max != 0 ? cfg->input_max : AGW_TLS_DEFAULT_BUFFER;
    size_t output_max = cfg->output_max != 0 ? cfg->output_max : AGW_TLS_DEFAULT_BUFFER;
    int rc;
    if ((rc = check_version(min, "min_version", err, errlen)) < 0 ||
        (rc = check_version(max, "max_version", err, errlen)) < 0 ||
        (rc = check_buffer(input_max, "input_max", err, errlen)) < 0 ||
        (rc = check_buffer(output_max, "output_max", err, errlen)) < 0)
        return rc;
    if (min > max) {
        set_error(err, errlen, "min_version 0x%04x above max_version 0x%04x", min, max);
        return -EINVAL;
    }

    struct agw_tls_ctx *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL) {
        set_error(err, errlen, "out of memory");
        return -ENOMEM;
    }
    ERR_clear_error();
    rc = -ENOMEM;
    ctx->ssl_ctx = SSL_CTX_new(TLS_method());
    ctx->bio_method = agw_tls_session_bio_method_new();
    if (ctx->ssl_ctx == NULL || ctx->bio_method == NULL) {
        set_error(err, errlen, "cannot make an SSL_CTX");
        goto fail;
    }
    rc = configure(ctx->ssl_ctx, cfg, min, max, err, errlen);
    if (rc < 0)
        goto fail;
    /* Without these algorithms sessions simply stay on OpenSSL's record layer. */
    (void)agw_tls13_suites_load(&ctx->tls13);
    atomic_init(&ctx->refs, 1);
    ctx->input_max = input_max;
    ctx->output_max = output_max;
    *out = ctx;
    return 0;

fail:
    SSL_CTX_free(ctx->ssl_ctx);
    BIO_meth_free(ctx->bio_method);
    agw_tls13_suites_free(&ctx->tls13);
    free(ctx);
    return rc;
}

struct agw_tls_ctx *agw_tls_ctx_ref(struct agw_tls_ctx *ctx)
{
    if (ctx != NULL)
        atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
    return ctx;
}

void agw_tls_ctx_unref(struct agw_tls_ctx *ctx)
{
    if (ctx == NULL)
        return;
    /* acq_rel: the thread that frees sees every other thread's last use of the context. */
    if (atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) != 1)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    BIO_meth_free(ctx->bio_method);
    agw_tls13_suites_free(&ctx->tls13);
    free(ctx);
}
