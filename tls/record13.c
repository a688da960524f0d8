/* TLS 1.3 record protection: traffic keys from secrets, AEAD seal and open, key updates. */
#include "record13.h"

#include <errno.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>

#define LABEL_PREFIX "tls13 "
#define LABEL_MAX 16

static const struct {
    uint16_t id;
    const char *aead;
    const char *md;
    size_t key_len;
} suite_names[3] = {
    {0x1301, "AES-128-GCM", "SHA256", 16},
    {0x1302, "AES-256-GCM", "SHA384", 32},
    {0x1303, "ChaCha20-Poly1305", "SHA256", 32},
};

int agw_tls13_suites_load(struct agw_tls13_suites *s)
{
    memset(s, 0, sizeof(*s));
    s->hmac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
    if (s->hmac == NULL)
        goto fail;
    for (size_t i = 0; i < 3; i++) {
        struct agw_tls13_suite *t = &s->suite[i];
        t->id = suite_names[i].id;
        t->key_len = suite_names[i].key_len;
        t->aead = EVP_CIPHER_fetch(NULL, suite_names[i].aead, NULL);
        t->md = EVP_MD_fetch(NULL, suite_names[i].md, NULL);
        if (t->aead == NULL || t->md == NULL)
            goto fail;
        t->hmac = EVP_MAC_CTX_new(s->hmac);
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)suite_names[i].md, 0),
            OSSL_PARAM_construct_end(),
        };
        if (t->hmac == NULL || EVP_MAC_CTX_set_params(t->hmac, params) != 1)
            goto fail;
        t->secret_len = (size_t)EVP_MD_get_size(t->md);
        if (t->secret_len > AGW_TLS13_SECRET_MAX ||
            (size_t)EVP_CIPHER_get_key_length(t->aead) != t->key_len)
            goto fail;
    }
    return 0;
fail:
    agw_tls13_suites_free(s);
    return -ENOSYS;
}

void agw_tls13_suites_free(struct agw_tls13_suites *s)
{
    for (size_t i = 0; i < 3; i++) {
        EVP_CIPHER_free(s->suite[i].aead);
        EVP_MD_free(s->suite[i].md);
        EVP_MAC_CTX_free(s->suite[i].hmac);
    }
    EVP_MAC_free(s->hmac);
    memset(s, 0, sizeof(*s));
}

const struct agw_tls13_suite *agw_tls13_suite_find(const struct agw_tls13_suites *s, uint16_t id)
{
    if (s->hmac == NULL)
        return NULL;
    for (size_t i = 0; i < 3; i++)
        if (s->suite[i].id == id)
            return &s->suite[i];
    return NULL;
}

/* HKDF-Expand-Label(secret, label, "", out_len) of §7.1. Every output here is at most one hash
   long, and HKDF-Expand (RFC 5869 §2.3) of one block is T(1) = HMAC(secret, info | 0x01). */
static int expand_label(const struct agw_tls13_suite *suite, const uint8_t *secret,
                        const char *label, uint8_t *out, size_t out_len)
{
    uint8_t info[2 + 1 + sizeof(LABEL_PREFIX) - 1 + LABEL_MAX + 1 + 1];
    size_t label_len = strlen(label);
    size_t prefixed = sizeof(LABEL_PREFIX) - 1 + label_len;
    if (label_len > LABEL_MAX || out_len > suite->secret_len)
        return -EINVAL;
    info[0] = (uint8_t)(out_len >> 8);
    info[1] = (uint8_t)out_len;
    info[2] = (uint8_t)prefixed;
    memcpy(info + 3, LABEL_PREFIX, sizeof(LABEL_PREFIX) - 1);
    memcpy(info + 3 + sizeof(LABEL_PREFIX) - 1, label, label_len);
    info[3 + prefixed] = 0;     /* empty context */
    info[3 + prefixed + 1] = 1; /* the block counter */

    EVP_MAC_CTX *m = EVP_MAC_CTX_dup(suite->hmac);
    if (m == NULL)
        return -ENOMEM;
    uint8_t block[EVP_MAX_MD_SIZE];
    size_t n = 0;
    int ok = EVP_MAC_init(m, secret, suite->secret_len, NULL) == 1 &&
             EVP_MAC_update(m, info, 3 + prefixed + 2) == 1 &&
             EVP_MAC_final(m, block, &n, sizeof(block)) == 1 && n == suite->secret_len;
    EVP_MAC_CTX_free(m);
    if (ok)
        memcpy(out, block, out_len);
    OPENSSL_cleanse(block, sizeof(block));
    return ok ? 0 : -EIO;
}

/* Keys d's AEAD and IV from d->secret (§7.3). */
static int rekey(struct agw_tls13_dir *d)
{
    uint8_t key[32];
    int rc = expand_label(d->suite, d->secret, "key", key, d->suite->key_len);
    if (rc == 0)
        rc = expand_label(d->suite, d->secret, "iv", d->iv, AGW_TLS13_IV);
    if (rc == 0 && EVP_CipherInit_ex(d->aead, NULL, NULL, key, NULL, -1) != 1)
        rc = -EIO;
    OPENSSL_cleanse(key, sizeof(key));
    d->seq = 0;
    return rc;
}

int agw_tls13_dir_init(struct agw_tls13_dir *d, const struct agw_tls13_suite *suite,
                       const uint8_t *secret, size_t len)
{
    memset(d, 0, sizeof(*d));
    if (suite == NULL || secret == NULL || len != suite->secret_len)
        return -EINVAL;
    d->suite = suite;
    memcpy(d->secret, secret, len);
    d->aead = EVP_CIPHER_CTX_new();
    if (d->aead == NULL) {
        agw_tls13_dir_clear(d);
        return -ENOMEM;
    }
    /* Direction-neutral: every record sets it again with its nonce. */
    if (EVP_CipherInit_ex(d->aead, suite->aead, NULL, NULL, NULL, 0) != 1) {
        agw_tls13_dir_clear(d);
        return -EIO;
    }
    int rc = rekey(d);
    if (rc < 0)
        agw_tls13_dir_clear(d);
    return rc;
}

int agw_tls13_dir_update(struct agw_tls13_dir *d)
{
    uint8_t next[AGW_TLS13_SECRET_MAX];
    int rc = expand_label(d->suite, d->secret, "traffic upd", next, d->suite->secret_len);
    if (rc == 0) {
        memcpy(d->secret, next, d->suite->secret_len);
        rc = rekey(d);
    }
    OPENSSL_cleanse(next, sizeof(next));
    return rc;
}

void agw_tls13_dir_clear(struct agw_tls13_dir *d)
{
    EVP_CIPHER_CTX_free(d->aead);
    OPENSSL_cleanse(d, sizeof(*d));
    memset(d, 0, sizeof(*d));
}

/* The per-record nonce of §5.3: the IV with the sequence number XORed into its end. */
static void make_nonce(const struct agw_tls13_dir *d, uint8_t nonce[AGW_TLS13_IV])
{
    memcpy(nonce, d->iv, AGW_TLS13_IV);
    for (int i = 0; i < 8; i++)
        nonce[AGW_TLS13_IV - 1 - i] ^= (uint8_t)(d->seq >> (8 * i));
}

long agw_tls13_seal(struct agw_tls13_dir *d, uint8_t type, const void *content, size_t len,
                    uint8_t *out)
{
    if (len > AGW_TLS13_PLAIN_MAX || d->aead == NULL)
        return -EIO;
    size_t body = len + 1 + AGW_TLS13_TAG;
    out[0] = AGW_TLS13_APPLICATION_DATA;
    out[1] = 3;
    out[2] = 3;
    out[3] = (uint8_t)(body >> 8);
    out[4] = (uint8_t)body;
    uint8_t nonce[AGW_TLS13_IV];
    make_nonce(d, nonce);
    int n = 0;
    uint8_t *p = out + AGW_TLS13_HEADER;
    if (EVP_CipherInit_ex(d->aead, NULL, NULL, NULL, nonce, 1) != 1 ||
        EVP_CipherUpdate(d->aead, NULL, &n, out, AGW_TLS13_HEADER) != 1 ||
        EVP_CipherUpdate(d->aead, p, &n, content, (int)len) != 1 ||
        EVP_CipherUpdate(d->aead, p + len, &n, &type, 1) != 1 ||
        EVP_CipherFinal_ex(d->aead, p + len + 1, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(d->aead, EVP_CTRL_AEAD_GET_TAG, AGW_TLS13_TAG, p + len + 1) != 1)
        return -EIO;
    d->seq++;
    return (long)(AGW_TLS13_HEADER + body);
}

long agw_tls13_body_length(const uint8_t header[AGW_TLS13_HEADER])
{
    /* legacy_record_version is ignored, as §5.1 says. */
    if (header[0] != AGW_TLS13_APPLICATION_DATA)
        return -EPROTO;
    long len = (long)header[3] << 8 | header[4];
    return len > AGW_TLS13_BODY_MAX ? -EMSGSIZE : len;
}

int agw_tls13_open(struct agw_tls13_dir *d, const uint8_t header[AGW_TLS13_HEADER], uint8_t *body,
                   size_t body_len, uint8_t *out, uint8_t *type, size_t *len)
{
    if (body_len <= AGW_TLS13_TAG || body_len > AGW_TLS13_BODY_MAX || d->aead == NULL)
        return -EBADMSG;
    size_t cipher_len = body_len - AGW_TLS13_TAG;
    uint8_t nonce[AGW_TLS13_IV];
    make_nonce(d, nonce);
    int n = 0, last = 0;
    if (EVP_CipherInit_ex(d->aead, NULL, NULL, NULL, nonce, 0) != 1 ||
        EVP_CIPHER_CTX_ctrl(d->aead, EVP_CTRL_AEAD_SET_TAG, AGW_TLS13_TAG, body + cipher_len) !=
            1 ||
        EVP_CipherUpdate(d->aead, NULL, &n, header, AGW_TLS13_HEADER) != 1 ||
        EVP_CipherUpdate(d->aead, out, &n, body, (int)cipher_len) != 1 ||
        EVP_CipherFinal_ex(d->aead, out + n, &last) != 1)
        return -EBADMSG;
    d->seq++;
    /* The content type is the last non-zero byte; zeros after it are padding (§5.4). */
    size_t i = cipher_len;
    while (i > 0 && out[i - 1] == 0)
        i--;
    if (i == 0)
        return -ENOMSG;
    *type = out[i - 1];
    *len = i - 1;
    return *len > AGW_TLS13_PLAIN_MAX ? -EMSGSIZE : 0;
}
