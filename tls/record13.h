/* TLS 1.3 record protection (RFC 8446 §5.2, §7): one direction's traffic keys, sealing and opening
   records, key updates. A session runs on this once OpenSSL has completed its handshake. */
#ifndef IMS_AGW_TLS_RECORD13_H
#define IMS_AGW_TLS_RECORD13_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#define AGW_TLS13_HEADER 5               /* type, legacy version, length */
#define AGW_TLS13_TAG 16                 /* every supported AEAD's tag */
#define AGW_TLS13_PLAIN_MAX 16384        /* content bytes in one record */
#define AGW_TLS13_BODY_MAX (16384 + 256) /* encrypted record body bound (§5.2) */
#define AGW_TLS13_RECORD_MAX (AGW_TLS13_HEADER + AGW_TLS13_BODY_MAX)
#define AGW_TLS13_OVERHEAD (AGW_TLS13_HEADER + 1 + AGW_TLS13_TAG) /* we never pad */
#define AGW_TLS13_SECRET_MAX 48
#define AGW_TLS13_IV 12

/* Content types (§5.1). */
#define AGW_TLS13_ALERT 21
#define AGW_TLS13_HANDSHAKE 22
#define AGW_TLS13_APPLICATION_DATA 23

/* The cipher suites this layer runs, each with its hash and AEAD fetched once. */
struct agw_tls13_suite {
    uint16_t id; /* 0x1301 TLS_AES_128_GCM_SHA256, 0x1302 ..._256_GCM_SHA384, 0x1303 CHACHA20 */
    EVP_CIPHER *aead;
    EVP_MD *md;
    EVP_MAC_CTX *hmac; /* HMAC with md, duplicated per use rather than fetched again by name */
    size_t key_len;
    size_t secret_len; /* the hash's output size */
};

struct agw_tls13_suites {
    struct agw_tls13_suite suite[3];
    EVP_MAC *hmac;
};

/* Fetches the algorithms into s (owned by the caller, freed with agw_tls13_suites_free).
   0; -ENOSYS when the library lacks one. */
int agw_tls13_suites_load(struct agw_tls13_suites *s);
void agw_tls13_suites_free(struct agw_tls13_suites *s);

/* The suite for an IANA id, borrowed from s; NULL when this layer does not run it. */
const struct agw_tls13_suite *agw_tls13_suite_find(const struct agw_tls13_suites *s, uint16_t id);

/* One direction of a connection: the current traffic secret, the AEAD keyed from it, and the
   record sequence number. Zeroed means empty. */
struct agw_tls13_dir {
    EVP_CIPHER_CTX *aead;
    const struct agw_tls13_suite *suite; /* borrowed from the suites, which outlive d */
    uint64_t seq;
    uint8_t iv[AGW_TLS13_IV];
    uint8_t secret[AGW_TLS13_SECRET_MAX];
};

/* Keys d from a traffic secret (len == the suite's secret_len). 0; -EINVAL; -ENOMEM; -EIO. */
int agw_tls13_dir_init(struct agw_tls13_dir *d, const struct agw_tls13_suite *suite,
                       const uint8_t *secret, size_t len);

/* Moves d to the next generation of its secret (§7.2, KeyUpdate). 0; -ENOMEM; -EIO. */
int agw_tls13_dir_update(struct agw_tls13_dir *d);

/* Frees d's AEAD and wipes its secrets; d is empty afterwards. */
void agw_tls13_dir_clear(struct agw_tls13_dir *d);

/* Seals len <= AGW_TLS13_PLAIN_MAX bytes of content of the given type as one record into out
   (len + AGW_TLS13_OVERHEAD bytes of room). The record's size on success; -EIO. */
long agw_tls13_seal(struct agw_tls13_dir *d, uint8_t type, const void *content, size_t len,
                    uint8_t *out);

/* The body length announced by a record header, or -EPROTO when it is not an encrypted record
   (outer type other than application_data) and -EMSGSIZE past AGW_TLS13_BODY_MAX. */
long agw_tls13_body_length(const uint8_t header[AGW_TLS13_HEADER]);

/* Opens the record whose header is header and whose body (body_len bytes) is body; the inner
   plaintext goes to out (room for body_len - AGW_TLS13_TAG bytes; out == body decrypts in place).
   *type and *len give the content type and length. 0; -EBADMSG for a record that fails
   authentication; -ENOMSG when it carries no content type; -EMSGSIZE for content past
   AGW_TLS13_PLAIN_MAX. */
int agw_tls13_open(struct agw_tls13_dir *d, const uint8_t header[AGW_TLS13_HEADER], uint8_t *body,
                   size_t body_len, uint8_t *out, uint8_t *type, size_t *len);

#endif
