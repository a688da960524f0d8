/* Certificate fingerprints (RFC 8122 a=fingerprint): compute, format, parse, verify a peer. */
#ifndef IMS_AGW_TLS_FINGERPRINT_H
#define IMS_AGW_TLS_FINGERPRINT_H

#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 8122 hash functions. MD5 and MD2 are recognised so that they can be reported, never
   computed nor verified. */
enum agw_tls_hash {
    AGW_TLS_HASH_SHA1, /* "sha-1" */
    AGW_TLS_HASH_SHA224,
    AGW_TLS_HASH_SHA256,
    AGW_TLS_HASH_SHA384,
    AGW_TLS_HASH_SHA512,
    AGW_TLS_HASH_MD5, /* unsupported */
    AGW_TLS_HASH_MD2, /* unsupported */
};

#define AGW_TLS_FINGERPRINT_MAX 64       /* digest bytes of the longest hash (sha-512) */
#define AGW_TLS_FINGERPRINT_TEXT_MAX 200 /* "sha-512 " + 64 hex pairs with colons + NUL */

struct agw_tls_fingerprint {
    enum agw_tls_hash hash;
    uint8_t len; /* digest bytes, always agw_tls_hash_size(hash) */
    uint8_t digest[AGW_TLS_FINGERPRINT_MAX];
};

/* SDP name ("sha-256") of a hash, a static string; NULL for a value outside the enum. */
const char *agw_tls_hash_name(enum agw_tls_hash hash);

/* Digest bytes of a hash; 0 for a value outside the enum. */
size_t agw_tls_hash_size(enum agw_tls_hash hash);

/* Fingerprint of cert (borrowed) with hash: the digest of its DER encoding, written to *out.
   0; -ENOTSUP for MD5/MD2; -EINVAL for a bad argument; -ENOMEM or -EIO when OpenSSL fails. */
int agw_tls_fingerprint_of(X509 *cert, enum agw_tls_hash hash, struct agw_tls_fingerprint *out);

/* Writes "sha-256 AB:CD:..." (upper-case hex) and a NUL to buf. 0; -ENOSPC if cap is too
   small (AGW_TLS_FINGERPRINT_TEXT_MAX always fits); -EINVAL if fp's len does not fit its hash. */
int agw_tls_fingerprint_format(const struct agw_tls_fingerprint *fp, char *buf, size_t cap);

/* Parses an a=fingerprint value (text after "fingerprint:", len bytes, no NUL needed) into *out.
   0; -EINVAL malformed (a digest of the wrong length included); -ENOTSUP md5/md2, well formed
   (*out is filled; verify skips it: answer 449); -EPROTONOSUPPORT a well-formed hash name we do not
   know. Malformed wins over the other two. */
int agw_tls_fingerprint_parse(const char *text, size_t len, struct agw_tls_fingerprint *out);

/* Checks peer (borrowed) against the n fingerprints of list: each one whose hash is supported is
   compared, in constant time, with peer's fingerprint for that hash. 0 on any match; -EACCES when
   none matched; -ENOTSUP when the list holds no supported fingerprint (n == 0 included); -EINVAL,
   -ENOMEM, -EIO on a bad argument or an OpenSSL failure. Anything but 0 means reject. */
int agw_tls_fingerprint_verify(X509 *peer, const struct agw_tls_fingerprint *list, size_t n);

#endif
