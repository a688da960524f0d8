/* The gateway's TLS identity: ECDSA P-256 self-signed generation, PEM loading and checks. */
#include "cert.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

/* notBefore of a generated certificate lies this far in the past, so that a peer whose clock is
   behind ours does not see a certificate that is not yet valid. */
#define BACKDATE_SECONDS (24 * 60 * 60)
#define VALIDITY_DAYS_MAX 36500
#define SERIAL_BYTES 16
#define RSA_BITS_MIN 2048

struct agw_tls_identity {
    atomic_uint refs;
    EVP_PKEY *key;
    X509 *cert;
    struct agw_tls_fingerprint sha256;
};

/* Writes the text to err, followed by the newest OpenSSL error of this thread when there is one,
   and empties the thread's OpenSSL error queue so that later SSL_get_error calls see no stale
   entry. */
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

/* Takes ownership of key and cert on success only. */
static int identity_new(EVP_PKEY *key, X509 *cert, struct agw_tls_identity **out)
{
    struct agw_tls_identity *id = calloc(1, sizeof(*id));
    if (id == NULL)
        return -ENOMEM;
    int rc = agw_tls_fingerprint_of(cert, AGW_TLS_HASH_SHA256, &id->sha256);
    if (rc < 0) {
        free(id);
        return rc;
    }
    atomic_init(&id->refs, 1);
    id->key = key;
    id->cert = cert;
    *out = id;
    return 0;
}

struct agw_tls_identity *agw_tls_identity_ref(struct agw_tls_identity *id)
{
    if (id != NULL)
        atomic_fetch_add_explicit(&id->refs, 1, memory_order_relaxed);
    return id;
}

void agw_tls_identity_unref(struct agw_tls_identity *id)
{
    if (id == NULL)
        return;
    /* acq_rel: the thread that frees sees every other thread's last use of the identity. */
    if (atomic_fetch_sub_explicit(&id->refs, 1, memory_order_acq_rel) != 1)
        return;
    X509_free(id->cert);
    EVP_PKEY_free(id->key);
    free(id);
}

X509 *agw_tls_identity_cert(const struct agw_tls_identity *id)
{
    return id->cert;
}

EVP_PKEY *agw_tls_identity_key(const struct agw_tls_identity *id)
{
    return id->key;
}

const struct agw_tls_fingerprint *agw_tls_identity_fingerprint(const struct agw_tls_identity *id)
{
    return &id->sha256;
}

/* Adds a DER-encoded extension built from an OpenSSL structure; 0 or -ENOMEM. */
static int add_extension(X509 *cert, int nid, void *value)
{
    return X509_add1_ext_i2d(cert, nid, value, 1 /* critical */, X509V3_ADD_DEFAULT) == 1 ? 0
                                                                                          : -ENOMEM;
}

/* Subject, issuer, serial, validity and extensions of a self-signed end-entity certificate. */
static int fill_certificate(X509 *cert, EVP_PKEY *key, const char *common_name, size_t cn_len,
                            unsigned validity_days)
{
    int rc = -ENOMEM;
    BIGNUM *serial = NULL;
    X509_NAME *name = NULL;
    BASIC_CONSTRAINTS *bc = NULL;
    ASN1_BIT_STRING *usage = NULL;

    /* RFC 5280 §4.1.2.2: positive, at most 20 octets. 128 random bits encode in 16 or 17. */
    unsigned char rnd[SERIAL_BYTES];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        rc = -EIO;
        goto out;
    }
    serial = BN_bin2bn(rnd, sizeof(rnd), NULL);
    if (serial == NULL)
        goto out;
    if (BN_is_zero(serial) && BN_set_word(serial, 1) != 1)
        goto out;
    if (BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)) == NULL)
        goto out;

    if (X509_set_version(cert, X509_VERSION_3) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(cert), -BACKDATE_SECONDS) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(cert), (int)validity_days, 0, NULL) == NULL)
        goto out;

    name = X509_NAME_new();
    if (name == NULL)
        goto out;
    if (X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                   (const unsigned char *)common_name, (int)cn_len, -1, 0) != 1) {
        rc = -EINVAL; /* not UTF-8 */
        goto out;
    }
    if (X509_set_subject_name(cert, name) != 1 || X509_set_issuer_name(cert, name) != 1 ||
        X509_set_pubkey(cert, key) != 1)
        goto out;

    bc = BASIC_CONSTRAINTS_new();
    usage = ASN1_BIT_STRING_new();
    if (bc == NULL || usage == NULL)
        goto out;
    bc->ca = 0;
    if (ASN1_BIT_STRING_set_bit(usage, 0 /* digitalSignature */, 1) != 1)
        goto out;
    if ((rc = add_extension(cert, NID_basic_constraints, bc)) < 0 ||
        (rc = add_extension(cert, NID_key_usage, usage)) < 0)
        goto out;

    rc = X509_sign(cert, key, EVP_sha256()) > 0 ? 0 : -EIO;
out:
    BN_free(serial);
    X509_NAME_free(name);
    BASIC_CONSTRAINTS_free(bc);
    ASN1_BIT_STRING_free(usage);
    return rc;
}

int agw_tls_identity_generate(const char *common_name, unsigned validity_days,
                              struct agw_tls_identity **out)
{
    if (out == NULL || common_name == NULL)
        return -EINVAL;
    *out = NULL;
    size_t cn_len = strnlen(common_name, AGW_TLS_CN_MAX + 1);
    if (cn_len == 0 || cn_len > AGW_TLS_CN_MAX || validity_days == 0 ||
        validity_days > VALIDITY_DAYS_MAX)
        return -EINVAL;

    int rc = -EIO;
    X509 *cert = NULL;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (key == NULL)
        goto out;
    cert = X509_new();
    if (cert == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    rc = fill_certificate(cert, key, common_name, cn_len, validity_days);
    if (rc < 0)
        goto out;
    rc = identity_new(key, cert, out);
out:
    if (rc < 0) {
        X509_free(cert);
        EVP_PKEY_free(key);
        ERR_clear_error();
    }
    return rc;
}

/* Never prompts: an encrypted key fails to load instead of blocking the daemon on a terminal. */
static int refuse_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static int open_pem(const char *path, const char *what, BIO **out, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "re");
    if (fp == NULL) {
        int e = errno;
        set_error(err, errlen, "cannot open %s %s: %s", what, path, strerror(e));
        return e > 0 ? -e : -EIO;
    }
    *out = BIO_new_fp(fp, BIO_CLOSE);
    if (*out == NULL) {
        fclose(fp);
        set_error(err, errlen, "cannot read %s %s", what, path);
        return -ENOMEM;
    }
    return 0;
}

static int read_certificate(const char *path, X509 **out, char *err, size_t errlen)
{
    BIO *bio;
    int rc = open_pem(path, "certificate", &bio, err, errlen);
    if (rc < 0)
        return rc;
    *out = PEM_read_bio_X509(bio, NULL, refuse_password, NULL);
    BIO_free(bio);
    if (*out == NULL) {
        set_error(err, errlen, "no PEM certificate in %s", path);
        return -EBADMSG;
    }
    return 0;
}

static int read_key(const char *path, EVP_PKEY **out, char *err, size_t errlen)
{
    BIO *bio;
    int rc = open_pem(path, "private key", &bio, err, errlen);
    if (rc < 0)
        return rc;
    *out = PEM_read_bio_PrivateKey(bio, NULL, refuse_password, NULL);
    BIO_free(bio);
    if (*out != NULL)
        return 0;
    int reason = ERR_GET_REASON(ERR_peek_last_error());
    if (reason == PEM_R_BAD_PASSWORD_READ || reason == PEM_R_PROBLEMS_GETTING_PASSWORD)
        set_error(err, errlen, "private key %s is encrypted (not supported: no passphrase prompt)",
                  path);
    else
        set_error(err, errlen, "no PEM private key in %s", path);
    return -EBADMSG;
}

/* ECDSA P-256 (what we generate) or RSA >= 2048 (what operators' tooling often makes). Other
   types, Ed25519 included, are refused here: peers' TLS/DTLS stacks (browsers, UE clients) do not
   all accept them, and a refusal at load is clearer than handshakes failing later. */
static int check_key_type(EVP_PKEY *key, const char *path, char *err, size_t errlen)
{
    if (EVP_PKEY_is_a(key, "EC")) {
        char group[80] = "explicit parameters";
        size_t group_len = 0;
        if (EVP_PKEY_get_group_name(key, group, sizeof(group), &group_len) == 1 &&
            OBJ_txt2nid(group) == NID_X9_62_prime256v1)
            return 0;
        set_error(err, errlen, "private key %s: EC key on curve %s not accepted (P-256 only)", path,
                  group);
        return -ENOTSUP;
    }
    if (EVP_PKEY_is_a(key, "RSA")) {
        int bits = EVP_PKEY_get_bits(key);
        if (bits >= RSA_BITS_MIN)
            return 0;
        set_error(err, errlen, "private key %s: RSA key of %d bits not accepted (%d at least)",
                  path, bits, RSA_BITS_MIN);
        return -ENOTSUP;
    }
    const char *type = EVP_PKEY_get0_type_name(key);
    set_error(err, errlen,
              "private key %s: %s key not accepted (ECDSA P-256 or RSA of %d bits or more)", path,
              type != NULL ? type : "unknown", RSA_BITS_MIN);
    return -ENOTSUP;
}

static void format_time(const ASN1_TIME *t, char *buf, size_t cap)
{
    struct tm tm;
    if (ASN1_TIME_to_tm(t, &tm) != 1 || strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(buf, cap, "(unreadable time)");
}

static int check_validity(X509 *cert, const char *path, char *err, size_t errlen)
{
    char when[40];
    const ASN1_TIME *not_before = X509_get0_notBefore(cert);
    const ASN1_TIME *not_after = X509_get0_notAfter(cert);
    /* X509_cmp_current_time: -1 earlier than now (or equal), 1 later, 0 unreadable. */
    int before = X509_cmp_current_time(not_before);
    int after = X509_cmp_current_time(not_after);
    if (before == 0 || after == 0) {
        set_error(err, errlen, "certificate %s: unreadable validity dates", path);
        return -EBADMSG;
    }
    if (before > 0) {
        format_time(not_before, when, sizeof(when));
        set_error(err, errlen, "certificate %s is not valid before %s", path, when);
        return -EKEYEXPIRED;
    }
    if (after < 0) {
        format_time(not_after, when, sizeof(when));
        set_error(err, errlen, "certificate %s expired on %s", path, when);
        return -EKEYEXPIRED;
    }
    return 0;
}

int agw_tls_identity_load(const char *cert_pem_path, const char *key_pem_path,
                          struct agw_tls_identity **out, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (out != NULL)
        *out = NULL;
    if (cert_pem_path == NULL || key_pem_path == NULL || out == NULL) {
        set_error(err, errlen, "missing certificate path, key path or result");
        return -EINVAL;
    }
    ERR_clear_error();

    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    int rc = read_certificate(cert_pem_path, &cert, err, errlen);
    if (rc < 0)
        goto out;
    rc = read_key(key_pem_path, &key, err, errlen);
    if (rc < 0)
        goto out;
    if (X509_check_private_key(cert, key) != 1) {
        set_error(err, errlen, "private key %s does not match certificate %s", key_pem_path,
                  cert_pem_path);
        rc = -EKEYREJECTED;
        goto out;
    }
    rc = check_key_type(key, key_pem_path, err, errlen);
    if (rc < 0)
        goto out;
    rc = check_validity(cert, cert_pem_path, err, errlen);
    if (rc < 0)
        goto out;
    rc = identity_new(key, cert, out);
    if (rc < 0)
        set_error(err, errlen, "cannot fingerprint certificate %s", cert_pem_path);
out:
    if (rc < 0) {
        X509_free(cert);
        EVP_PKEY_free(key);
    }
    return rc;
}
