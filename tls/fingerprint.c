/* Certificate fingerprints (RFC 8122): digest of the DER certificate, SDP text form, peer check. */
#include "fingerprint.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* Longest value worth reading: "sha-512", some blanks and 191 characters of digest. Anything
   longer is refused before it is scanned. */
#define FINGERPRINT_TEXT_LIMIT 512

struct hash_info {
    const char *name;
    size_t size;
    const EVP_MD *(*md)(void); /* NULL: recognised, never computed */
};

static const struct hash_info hashes[] = {
    [AGW_TLS_HASH_SHA1] = {"sha-1", 20, EVP_sha1},
    [AGW_TLS_HASH_SHA224] = {"sha-224", 28, EVP_sha224},
    [AGW_TLS_HASH_SHA256] = {"sha-256", 32, EVP_sha256},
    [AGW_TLS_HASH_SHA384] = {"sha-384", 48, EVP_sha384},
    [AGW_TLS_HASH_SHA512] = {"sha-512", 64, EVP_sha512},
    [AGW_TLS_HASH_MD5] = {"md5", 16, NULL},
    [AGW_TLS_HASH_MD2] = {"md2", 16, NULL},
};

#define HASH_COUNT (sizeof(hashes) / sizeof(hashes[0]))

static const struct hash_info *hash_info(enum agw_tls_hash hash)
{
    if ((unsigned)hash >= HASH_COUNT)
        return NULL;
    return &hashes[hash];
}

const char *agw_tls_hash_name(enum agw_tls_hash hash)
{
    const struct hash_info *h = hash_info(hash);
    return h != NULL ? h->name : NULL;
}

size_t agw_tls_hash_size(enum agw_tls_hash hash)
{
    const struct hash_info *h = hash_info(hash);
    return h != NULL ? h->size : 0;
}

/* Digest of an already encoded certificate; out is written only on success. */
static int digest_der(const unsigned char *der, size_t der_len, enum agw_tls_hash hash,
                      struct agw_tls_fingerprint *out)
{
    const struct hash_info *h = hash_info(hash);
    if (h == NULL)
        return -EINVAL;
    if (h->md == NULL)
        return -ENOTSUP;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(der, der_len, md, &md_len, h->md(), NULL) != 1 || md_len != h->size)
        return -EIO;
    out->hash = hash;
    out->len = (uint8_t)md_len;
    memcpy(out->digest, md, md_len);
    return 0;
}

/* DER encoding of cert in a buffer to release with OPENSSL_free. */
static int encode_der(X509 *cert, unsigned char **der, size_t *der_len)
{
    *der = NULL;
    int n = i2d_X509(cert, der);
    if (n <= 0 || *der == NULL)
        return -ENOMEM;
    *der_len = (size_t)n;
    return 0;
}

int agw_tls_fingerprint_of(X509 *cert, enum agw_tls_hash hash, struct agw_tls_fingerprint *out)
{
    const struct hash_info *h = hash_info(hash);
    if (cert == NULL || out == NULL || h == NULL)
        return -EINVAL;
    if (h->md == NULL)
        return -ENOTSUP;
    unsigned char *der;
    size_t der_len;
    int rc = encode_der(cert, &der, &der_len);
    if (rc < 0)
        return rc;
    rc = digest_der(der, der_len, hash, out);
    OPENSSL_free(der);
    return rc;
}

int agw_tls_fingerprint_format(const struct agw_tls_fingerprint *fp, char *buf, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    const struct hash_info *h = fp != NULL ? hash_info(fp->hash) : NULL;
    if (h == NULL || fp->len != h->size)
        return -EINVAL;
    size_t name_len = strlen(h->name);
    /* name, space, "XX" per byte with a colon between bytes, NUL */
    if (buf == NULL || cap < name_len + 1 + (size_t)fp->len * 3)
        return -ENOSPC;
    memcpy(buf, h->name, name_len);
    char *p = buf + name_len;
    *p++ = ' ';
    for (size_t i = 0; i < fp->len; i++) {
        if (i > 0)
            *p++ = ':';
        *p++ = hex[fp->digest[i] >> 4];
        *p++ = hex[fp->digest[i] & 0x0f];
    }
    *p = '\0';
    return 0;
}

/* RFC 8866 token-char: what a hash-func name outside the known list may be made of. */
static bool is_token_char(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x27) || c == 0x2a || c == 0x2b || c == 0x2d ||
           c == 0x2e || (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) ||
           (c >= 0x5e && c <= 0x7e);
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* ASCII only: the locale must not change what a hash name matches. */
static bool equal_ignoring_case(const char *known, const unsigned char *s, size_t len)
{
    if (strlen(known) != len)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i] >= 'A' && s[i] <= 'Z' ? (unsigned char)(s[i] - 'A' + 'a') : s[i];
        if (c != (unsigned char)known[i])
            return false;
    }
    return true;
}

/* Known hash whose name is the len bytes at name (case-insensitive), or NULL. */
static const struct hash_info *hash_by_name(const unsigned char *name, size_t len,
                                            enum agw_tls_hash *out)
{
    for (size_t i = 0; i < HASH_COUNT; i++) {
        if (equal_ignoring_case(hashes[i].name, name, len)) {
            *out = (enum agw_tls_hash)i;
            return &hashes[i];
        }
    }
    return NULL;
}

int agw_tls_fingerprint_parse(const char *text, size_t len, struct agw_tls_fingerprint *out)
{
    if ((text == NULL && len > 0) || out == NULL || len > FINGERPRINT_TEXT_LIMIT)
        return -EINVAL;
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len && is_token_char(s[i]))
        i++;
    size_t name_len = i;
    if (name_len == 0)
        return -EINVAL;
    size_t blanks = i;
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i == blanks)
        return -EINVAL;

    uint8_t digest[AGW_TLS_FINGERPRINT_MAX];
    size_t n = 0;
    for (;;) {
        if (n == sizeof(digest) || len - i < 2)
            return -EINVAL;
        int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        digest[n++] = (uint8_t)(hi << 4 | lo);
        i += 2;
        if (i == len)
            break;
        if (s[i] != ':')
            return -EINVAL;
        i++;
    }

    enum agw_tls_hash hash;
    const struct hash_info *h = hash_by_name(s, name_len, &hash);
    if (h == NULL)
        return -EPROTONOSUPPORT;
    if (n != h->size)
        return -EINVAL;
    out->hash = hash;
    out->len = (uint8_t)n;
    memcpy(out->digest, digest, n);
    return h->md != NULL ? 0 : -ENOTSUP;
}

int agw_tls_fingerprint_verify(X509 *peer, const struct agw_tls_fingerprint *list, size_t n)
{
    if (peer == NULL || (list == NULL && n > 0))
        return -EINVAL;
    /* The peer's digest for each hash, computed the first time a listed entry needs it. */
    struct agw_tls_fingerprint mine[HASH_COUNT];
    bool have[HASH_COUNT] = {false};
    unsigned char *der = NULL;
    size_t der_len = 0;
    bool any_supported = false;
    int rc = -EACCES;

    for (size_t i = 0; i < n; i++) {
        const struct hash_info *h = hash_info(list[i].hash);
        if (h == NULL || h->md == NULL)
            continue;
        any_supported = true;
        if (list[i].len != h->size)
            continue;
        if (der == NULL) {
            int err = encode_der(peer, &der, &der_len);
            if (err < 0) {
                rc = err;
                goto out;
            }
        }
        if (!have[list[i].hash]) {
            int err = digest_der(der, der_len, list[i].hash, &mine[list[i].hash]);
            if (err < 0) {
                rc = err;
                goto out;
            }
            have[list[i].hash] = true;
        }
        if (CRYPTO_memcmp(mine[list[i].hash].digest, list[i].digest, h->size) == 0) {
            rc = 0;
            goto out;
        }
    }
    if (!any_supported)
        rc = -ENOTSUP;
out:
    OPENSSL_free(der);
    return rc;
}
