/* The gateway's TLS identity: a key and its certificate, generated or loaded, reference counted. */
#ifndef IMS_AGW_TLS_CERT_H
#define IMS_AGW_TLS_CERT_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "fingerprint.h"

/* Immutable once made. A termination keeps the identity it was given at Add time (a reference),
   so a reload can install a new one while old sessions still present the old certificate.
   References may be taken and dropped from any thread. */
struct agw_tls_identity;

#define AGW_TLS_CN_MAX 64 /* bytes of a common name (RFC 5280 ub-common-name) */

/* Makes a fresh ECDSA P-256 key and a self-signed X.509 v3 certificate (CN = common_name, random
   128-bit serial, ecdsa-with-SHA256, valid from a day ago for validity_days days, CA:FALSE,
   keyUsage digitalSignature). *out holds one reference, owned by the caller. 0; -EINVAL for an
   empty or too long common_name or validity_days outside 1..36500; -ENOMEM or -EIO when OpenSSL
   fails. */
int agw_tls_identity_generate(const char *common_name, unsigned validity_days,
                              struct agw_tls_identity **out);

/* Loads the first certificate of cert_pem_path and the private key of key_pem_path (the same
   file may hold both; encrypted keys are refused, never prompted for). The key must match the
   certificate, be ECDSA P-256 or RSA of at least 2048 bits, and the certificate must be valid now.
   *out holds one reference, owned by the caller. On failure err (errlen bytes, may be NULL) gets a
   NUL-terminated text naming the file and the reason, OpenSSL's error string included. 0; -errno
   from opening a file (-ENOENT, -EACCES, ...); -EBADMSG no PEM certificate or key could be read;
   -EKEYREJECTED key and certificate do not match; -ENOTSUP key type or size not accepted;
   -EKEYEXPIRED certificate expired or not yet valid; -EINVAL, -ENOMEM, -EIO otherwise. */
int agw_tls_identity_load(const char *cert_pem_path, const char *key_pem_path,
                          struct agw_tls_identity **out, char *err, size_t errlen);

/* Takes one more reference to id and returns id; NULL gives NULL. */
struct agw_tls_identity *agw_tls_identity_ref(struct agw_tls_identity *id);

/* Drops one reference; the last one frees the identity. NULL is ignored. */
void agw_tls_identity_unref(struct agw_tls_identity *id);

/* The certificate, borrowed: valid while the caller holds a reference to id; not to be modified
   (take an X509_up_ref to keep it longer). */
X509 *agw_tls_identity_cert(const struct agw_tls_identity *id);

/* The private key, borrowed on the same terms as the certificate. */
EVP_PKEY *agw_tls_identity_key(const struct agw_tls_identity *id);

/* The certificate's sha-256 fingerprint, computed once; borrowed on the same terms. */
const struct agw_tls_fingerprint *agw_tls_identity_fingerprint(const struct agw_tls_identity *id);

#endif
