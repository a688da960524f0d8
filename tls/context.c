/* TLS contexts: one SSL_CTX per realm or configuration, shared by the sessions of all workers. */
#include "session.h"
#include "session_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int configure(SSL_CTX *c, const struct agw_tls_ctx *ctx, char *err, size_t errlen)
{
    const char *ciphers = ctx->ciphers;
    const char *suites = ctx->ciphersuites;
    const char *groups = ctx->groups;

    if (SSL_CTX_set_min_proto_version(c, (int)ctx->min_version) != 1 ||
        SSL_CTX_set_max_proto_version(c, (int)ctx->max_version) != 1) {
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

/* A configured SSL_CTX for ctx's sessions; NULL with err set on failure. */
static SSL_CTX *make_ssl_ctx(const struct agw_tls_ctx *ctx, char *err, size_t errlen, int *rc)
{
    SSL_CTX *c = SSL_CTX_new(TLS_method());
    if (c == NULL) {
        set_error(err, errlen, "cannot make an SSL_CTX");
        *rc = -ENOMEM;
        return NULL;
    }
    *rc = configure(c, ctx, err, errlen);
    if (*rc < 0) {
        SSL_CTX_free(c);
        return NULL;
    }
    return c;
}

static void ctx_free(struct agw_tls_ctx *ctx)
{
    for (size_t i = 0; i < AGW_TLS_IDENTITY_CTX_MAX; i++) {
        SSL_CTX_free(ctx->identity_ctx[i].ssl_ctx);
        agw_tls_identity_unref(ctx->identity_ctx[i].id);
    }
    BIO_meth_free(ctx->bio_method);
    agw_tls13_suites_free(&ctx->tls13);
    free(ctx->ciphers);
    free(ctx->ciphersuites);
    free(ctx->groups);
    mtx_destroy(&ctx->lock);
    free(ctx);
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
    if (mtx_init(&ctx->lock, mtx_plain) != thrd_success) {
        free(ctx);
        set_error(err, errlen, "cannot make a mutex");
        return -ENOMEM;
    }
    ctx->min_version = min;
    ctx->max_version = max;
    ctx->input_max = input_max;
    ctx->output_max = output_max;
    ctx->ciphers = strdup(cfg->ciphers != NULL ? cfg->ciphers : AGW_TLS_DEFAULT_CIPHERS);
    ctx->ciphersuites =
        strdup(cfg->ciphersuites != NULL ? cfg->ciphersuites : AGW_TLS_DEFAULT_CIPHERSUITES);
    ctx->groups = strdup(cfg->groups != NULL ? cfg->groups : AGW_TLS_DEFAULT_GROUPS);
    ERR_clear_error();
    ctx->bio_method = agw_tls_session_bio_method_new();
    if (ctx->ciphers == NULL || ctx->ciphersuites == NULL || ctx->groups == NULL ||
        ctx->bio_method == NULL) {
        set_error(err, errlen, "out of memory");
        ctx_free(ctx);
        return -ENOMEM;
    }
    /* The settings are checked now, on an SSL_CTX made for no identity, so that a bad one is
       refused when the configuration is loaded rather than at the first session. */
    SSL_CTX *check = make_ssl_ctx(ctx, err, errlen, &rc);
    if (check == NULL) {
        ctx_free(ctx);
        return rc;
    }
    SSL_CTX_free(check);
    /* Without these algorithms sessions simply stay on OpenSSL's record layer. */
    (void)agw_tls13_suites_load(&ctx->tls13);
    atomic_init(&ctx->refs, 1);
    *out = ctx;
    return 0;
}

SSL *agw_tls_ctx_new_ssl(struct agw_tls_ctx *ctx, struct agw_tls_identity *id)
{
    SSL *ssl = NULL;
    mtx_lock(&ctx->lock);
    struct agw_tls_identity_ctx *slot = NULL, *oldest = &ctx->identity_ctx[0];
    for (size_t i = 0; i < AGW_TLS_IDENTITY_CTX_MAX && slot == NULL; i++) {
        struct agw_tls_identity_ctx *e = &ctx->identity_ctx[i];
        if (e->id == id)
            slot = e;
        else if (e->last_use < oldest->last_use)
            oldest = e;
    }
    if (slot == NULL) {
        /* Sessions made from an evicted SSL_CTX hold their own reference to it. */
        int rc;
        SSL_CTX *c = make_ssl_ctx(ctx, NULL, 0, &rc);
        if (c == NULL || SSL_CTX_use_certificate(c, agw_tls_identity_cert(id)) != 1 ||
            SSL_CTX_use_PrivateKey(c, agw_tls_identity_key(id)) != 1) {
            SSL_CTX_free(c);
            ERR_clear_error();
            mtx_unlock(&ctx->lock);
            return NULL;
        }
        slot = oldest;
        SSL_CTX_free(slot->ssl_ctx);
        agw_tls_identity_unref(slot->id);
        slot->ssl_ctx = c;
        slot->id = agw_tls_identity_ref(id);
    }
    slot->last_use = ++ctx->use_clock;
    ssl = SSL_new(slot->ssl_ctx);
    mtx_unlock(&ctx->lock);
    return ssl;
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
    ctx_free(ctx);
}
