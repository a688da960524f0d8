/* The peer check of both engines: fingerprints, the hold, the verdict, alerts, failures. */
#include "peer_check.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

/* The hold and the check are explained at the top of tls/session.c. */

void agw_tls_peer_check_init(struct agw_tls_peer_check *pc, enum agw_tls_role role)
{
    memset(pc, 0, sizeof(*pc));
    pc->role = role;
    pc->state = AGW_TLS_HANDSHAKING;
    pc->error.alert_sent = -1;
    pc->error.alert_received = -1;
}

void agw_tls_peer_check_fini(struct agw_tls_peer_check *pc)
{
    X509_free(pc->cert);
    free(pc->fp);
    pc->cert = NULL;
    pc->fp = NULL;
    pc->nfp = 0;
}

int agw_tls_peer_check_fail(struct agw_tls_peer_check *pc, enum agw_tls_failure reason,
                            const char *text, int code)
{
    if (pc->state == AGW_TLS_FAILED)
        return pc->code;
    pc->state = AGW_TLS_FAILED;
    pc->code = code;
    pc->error.reason = reason;
    pc->error.text = text;
    return code;
}

int agw_tls_peer_check_fail_from_openssl(struct agw_tls_peer_check *pc, bool out_of_memory)
{
    unsigned long e = ERR_peek_error();
    bool ssl_error = ERR_GET_LIB(e) == ERR_LIB_SSL;
    int rc;
    if (pc->verify_failure != AGW_TLS_FAIL_NONE) {
        rc = agw_tls_peer_check_fail(pc, pc->verify_failure,
                                     agw_tls_failure_name(pc->verify_failure), -EACCES);
    } else if (ssl_error && ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        rc = agw_tls_peer_check_fail(pc, AGW_TLS_FAIL_NO_PEER_CERT,
                                     agw_tls_failure_name(AGW_TLS_FAIL_NO_PEER_CERT), -EACCES);
    } else if (pc->error.alert_received >= 0) {
        rc = agw_tls_peer_check_fail(pc, AGW_TLS_FAIL_PEER_ALERT,
                                     agw_tls_alert_name(pc->error.alert_received), -ECONNABORTED);
    } else if (out_of_memory || ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE) {
        rc = agw_tls_peer_check_fail(pc, AGW_TLS_FAIL_INTERNAL, "out of memory", -ENOMEM);
    } else if (ssl_error && ERR_GET_REASON(e) == SSL_R_READ_TIMEOUT_EXPIRED) {
        rc = agw_tls_peer_check_fail(pc, AGW_TLS_FAIL_PROTOCOL, "handshake timeout", -EPROTO);
    } else if (pc->peer_closed && !pc->verified) {
        rc = agw_tls_peer_check_fail(pc, AGW_TLS_FAIL_PROTOCOL, "close_notify during the handshake",
                                     -EPROTO);
    } else {
        const char *text = e != 0 ? ERR_reason_error_string(e) : NULL;
        rc = agw_tls_peer_check_fail(pc, AGW_TLS_FAIL_PROTOCOL,
                                     text != NULL ? text : "protocol error", -EPROTO);
    }
    ERR_clear_error();
    return rc;
}

int agw_tls_peer_check_set_fingerprints(struct agw_tls_peer_check *pc,
                                        const struct agw_tls_fingerprint *list, size_t n)
{
    if (list == NULL && n > 0)
        return -EINVAL;
    if (n > AGW_TLS_FINGERPRINTS_MAX)
        return -E2BIG;
    if (pc->verified || pc->state == AGW_TLS_FAILED)
        return -EALREADY;
    struct agw_tls_fingerprint *copy = NULL;
    if (n > 0) {
        copy = malloc(n * sizeof(*copy));
        if (copy == NULL)
            return -ENOMEM;
        memcpy(copy, list, n * sizeof(*copy));
    }
    free(pc->fp);
    pc->fp = copy;
    pc->nfp = n;
    pc->fingerprints_known = true;
    if (pc->state == AGW_TLS_HELD)
        pc->state = AGW_TLS_HANDSHAKING;
    return 0;
}

int agw_tls_peer_check_handshake_done(struct agw_tls_peer_check *pc)
{
    /* The gate: whatever OpenSSL negotiated, data flows only after a fingerprint match. */
    if (!pc->verified)
        return agw_tls_peer_check_fail(pc, AGW_TLS_FAIL_NO_PEER_CERT,
                                       agw_tls_failure_name(AGW_TLS_FAIL_NO_PEER_CERT), -EACCES);
    pc->state = AGW_TLS_VERIFIED;
    /* The verdict is given: an idle session keeps as little as possible. */
    agw_tls_peer_check_fini(pc);
    return 0;
}

int agw_tls_peer_check_handshake_wait(struct agw_tls_peer_check *pc, SSL *ssl, int ret,
                                      bool out_of_memory)
{
    switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        pc->state = AGW_TLS_HANDSHAKING;
        return -EAGAIN;
    case SSL_ERROR_WANT_X509_LOOKUP:  /* server: hold_for_fingerprints */
    case SSL_ERROR_WANT_RETRY_VERIFY: /* client: verify_peer */
        pc->state = AGW_TLS_HELD;
        return -EAGAIN;
    default:
        return agw_tls_peer_check_fail_from_openssl(pc, out_of_memory);
    }
}

/* Replaces X509_verify_cert: any chain is acceptable, the end-entity certificate's fingerprint
   decides. A refusal sets CERT_REJECTED, which OpenSSL sends as a bad_certificate alert. */
static int verify_peer(X509_STORE_CTX *xs, void *arg)
{
    (void)arg;
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct agw_tls_peer_check *pc = SSL_get_app_data(ssl);
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);
    if (pc == NULL || leaf == NULL) {
        X509_STORE_CTX_set_error(xs, X509_V_ERR_UNSPECIFIED);
        return 0;
    }
    if (pc->cert == NULL && X509_up_ref(leaf) == 1)
        pc->cert = leaf;
    if (!pc->fingerprints_known) {
        /* Only a client gets here unknowing (a server waits at the ClientHello). Returning 1
           after SSL_set_retry_verify suspends the handshake; OpenSSL calls again on resume. */
        if (SSL_set_retry_verify(ssl) > 0)
            return 1;
        X509_STORE_CTX_set_error(xs, X509_V_ERR_UNSPECIFIED);
        return 0;
    }
    int rc = agw_tls_fingerprint_verify(leaf, pc->fp, pc->nfp);
    if (rc == 0) {
        pc->verified = true;
        return 1;
    }
    pc->verify_failure = rc == -EACCES    ? AGW_TLS_FAIL_FINGERPRINT_MISMATCH
                         : rc == -ENOTSUP ? AGW_TLS_FAIL_NO_SUPPORTED_FINGERPRINT
                                          : AGW_TLS_FAIL_INTERNAL;
    X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_REJECTED);
    return 0;
}

/* Runs on a server after the ClientHello (and on a client asked for its certificate): a negative
   return suspends the handshake until it is driven again. */
static int hold_for_fingerprints(SSL *ssl, void *arg)
{
    (void)arg;
    const struct agw_tls_peer_check *pc = SSL_get_app_data(ssl);
    return pc != NULL && pc->role == AGW_TLS_SERVER && !pc->fingerprints_known ? -1 : 1;
}

/* The only place OpenSSL tells which alert went out or came in. */
static void on_info(const SSL *ssl, int where, int ret)
{
    struct agw_tls_peer_check *pc = SSL_get_app_data(ssl);
    if ((where & SSL_CB_ALERT) == 0 || pc == NULL)
        return;
    int level = (ret >> 8) & 0xff;
    int desc = ret & 0xff;
    if (where & SSL_CB_READ) {
        pc->alerts_read++;
        if (desc == SSL_AD_CLOSE_NOTIFY)
            pc->peer_closed = true;
        else if (level == SSL3_AL_FATAL)
            pc->error.alert_received = desc;
    } else if (level == SSL3_AL_FATAL) {
        pc->error.alert_sent = desc;
    }
}

void agw_tls_peer_check_install(SSL_CTX *c)
{
    /* FAIL_IF_NO_PEER_CERT applies to a server only; fail_from_openssl turns its error into
       the distinct "no peer certificate" failure. */
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_cert_verify_callback(c, verify_peer, NULL);
    SSL_CTX_set_cert_cb(c, hold_for_fingerprints, NULL);
    SSL_CTX_set_info_callback(c, on_info);
}
