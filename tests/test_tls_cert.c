/* Check suite for tls/cert.c and tls/fingerprint.c: generated and loaded identities, RFC 8122
   fingerprints (known answers from the openssl CLI, strict parsing, verification). */
#include "tls/cert.h"
#include "tls/fingerprint.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define DATA "tests/data/tls/"

/* `openssl x509 -noout -fingerprint -<hash> -in tests/data/tls/cert-p256.pem` (OpenSSL 3.0.19),
   in enum agw_tls_hash order, with the RFC 8122 hash name put in front. */
static const char *const kat_p256[] = {
    "sha-1 5C:07:2E:91:A7:83:53:2F:74:EC:ED:0C:93:4A:79:F7:A5:96:48:E0",
    "sha-224 D2:7E:00:87:83:62:A6:F8:9C:40:EC:BA:9F:07:DE:66:48:26:4E:95:F4:69:CB:96:91:FC:47:6E",
    "sha-256 88:51:78:8A:EB:54:1B:31:D3:D4:24:EF:8D:3E:9A:BA:84:E2:6C:B4:B1:08:70:38:76:B6:90:C9:"
    "C3:65:DE:D6",
    "sha-384 03:FD:27:45:88:A2:55:08:64:B5:0E:98:54:97:15:90:D9:3F:B6:D5:10:5C:2D:15:D5:32:C5:DB:"
    "9E:F1:09:F4:33:86:BB:8D:D1:4D:D0:41:F4:21:8E:C4:3C:AC:19:88",
    "sha-512 5B:C4:23:CB:52:59:BC:8C:89:AC:F6:12:E5:BD:20:3E:8A:3F:55:C2:A9:5F:4B:51:89:4C:A5:61:"
    "13:2B:C4:9B:0A:61:F6:F0:24:1A:E6:96:F6:86:6E:E4:9C:1A:EE:2F:42:A8:44:E6:B5:E1:0D:D7:62:36:"
    "C2:9D:A9:62:A3:4A",
};
static const char kat_p256_md5[] = "md5 48:53:56:0A:D3:73:59:89:3A:14:D4:9A:B4:BA:0D:F2";
/* The same command with -sha256 on cert-rsa2048.pem. */
static const char kat_rsa2048_sha256[] =
    "sha-256 DE:8B:C9:48:9C:57:68:D9:C3:4C:C3:65:F4:FE:4E:39:BF:63:1E:E9:FE:CE:59:DD:48:50:0C:30:"
    "7C:60:F4:86";

#define SUPPORTED_HASHES 5

/* ---- helpers ---- */

static X509 *read_cert(const char *path)
{
    FILE *fp = fopen(path, "r");
    ck_assert_msg(fp != NULL, "cannot open %s", path);
    X509 *cert = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    ck_assert_msg(cert != NULL, "no certificate in %s", path);
    return cert;
}

static struct agw_tls_fingerprint parse_ok(const char *text)
{
    struct agw_tls_fingerprint fp;
    memset(&fp, 0xa5, sizeof(fp));
    int rc = agw_tls_fingerprint_parse(text, strlen(text), &fp);
    ck_assert_msg(rc == 0, "parse of \"%s\" gave %d", text, rc);
    return fp;
}

/* Parses len bytes from a heap block of exactly that size, so that ASan sees any read past it. */
static int parse_exact(const char *text, size_t len, struct agw_tls_fingerprint *out)
{
    char *copy = malloc(len > 0 ? len : 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, text, len);
    int rc = agw_tls_fingerprint_parse(copy, len, out);
    free(copy);
    return rc;
}

static int parse_str(const char *text)
{
    struct agw_tls_fingerprint fp;
    return parse_exact(text, strlen(text), &fp);
}

static struct agw_tls_identity *generate(const char *cn, unsigned days)
{
    struct agw_tls_identity *id = NULL;
    ck_assert_int_eq(agw_tls_identity_generate(cn, days, &id), 0);
    ck_assert_ptr_nonnull(id);
    return id;
}

/* Seconds from now to t (negative: t is in the past). */
static long seconds_from_now(const ASN1_TIME *t)
{
    int days = 0, secs = 0;
    ck_assert_int_eq(ASN1_TIME_diff(&days, &secs, NULL, t), 1);
    return (long)days * 86400 + secs;
}

static int load(const char *cert, const char *key, struct agw_tls_identity **id, char *err,
                size_t errlen)
{
    return agw_tls_identity_load(cert, key, id, err, errlen);
}

/* Loads a pair that must be refused with rc; the error text must contain every needle. */
static void load_fails(const char *cert, const char *key, int rc, const char *needle1,
                       const char *needle2)
{
    struct agw_tls_identity *id = (struct agw_tls_identity *)&id; /* must be reset to NULL */
    char err[512];
    memset(err, 'x', sizeof(err));
    int got = load(cert, key, &id, err, sizeof(err));
    ck_assert_msg(got == rc, "%s + %s: %d instead of %d (%s)", cert, key, got, rc, err);
    ck_assert_ptr_null(id);
    ck_assert_ptr_nonnull(memchr(err, '\0', sizeof(err)));
    ck_assert_msg(strstr(err, needle1) != NULL, "\"%s\" lacks \"%s\"", err, needle1);
    if (needle2 != NULL)
        ck_assert_msg(strstr(err, needle2) != NULL, "\"%s\" lacks \"%s\"", err, needle2);
}

/* ---- generation ---- */

START_TEST(generated_is_p256_self_signed)
{
    struct agw_tls_identity *id = generate("agw.example.net", 365);
    X509 *cert = agw_tls_identity_cert(id);
    EVP_PKEY *key = agw_tls_identity_key(id);

    ck_assert(EVP_PKEY_is_a(key, "EC"));
    char group[64];
    size_t group_len = 0;
    ck_assert_int_eq(EVP_PKEY_get_group_name(key, group, sizeof(group), &group_len), 1);
    ck_assert_int_eq(OBJ_txt2nid(group), NID_X9_62_prime256v1);
    ck_assert_int_eq(EVP_PKEY_get_bits(key), 256);

    ck_assert_int_eq(X509_get_version(cert), X509_VERSION_3);
    ck_assert_int_eq(X509_get_signature_nid(cert), NID_ecdsa_with_SHA256);
    ck_assert_int_eq(X509_check_private_key(cert, key), 1);
    ck_assert_int_eq(X509_verify(cert, key), 1);
    /* Self-signed: subject = issuer and the signature verifies with the certificate's own key.
       (X509_check_issued would also want keyCertSign, which a leaf must not have.) */
    ck_assert_int_eq(X509_self_signed(cert, 1), 1);
    ck_assert_int_eq(X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)), 0);
    char cn[80];
    ck_assert_int_eq(
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn)), 15);
    ck_assert_str_eq(cn, "agw.example.net");

    uint32_t flags = X509_get_extension_flags(cert);
    ck_assert(flags & EXFLAG_BCONS);
    ck_assert(!(flags & EXFLAG_CA));
    ck_assert(flags & EXFLAG_KUSAGE);
    ck_assert(flags & EXFLAG_SS);
    ck_assert_uint_eq(X509_get_key_usage(cert), KU_DIGITAL_SIGNATURE);
    int bc = X509_get_ext_by_NID(cert, NID_basic_constraints, -1);
    int ku = X509_get_ext_by_NID(cert, NID_key_usage, -1);
    ck_assert_int_ge(bc, 0);
    ck_assert_int_ge(ku, 0);
    ck_assert_int_eq(X509_EXTENSION_get_critical(X509_get_ext(cert, bc)), 1);
    ck_assert_int_eq(X509_EXTENSION_get_critical(X509_get_ext(cert, ku)), 1);
    ck_assert_int_eq(X509_get_ext_count(cert), 2);

    /* A verifier that trusts the certificate itself accepts it as a leaf. */
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    ck_assert_int_eq(X509_STORE_add_cert(store, cert), 1);
    ck_assert_int_eq(X509_STORE_CTX_init(ctx, store, cert, NULL), 1);
    ck_assert_int_eq(X509_verify_cert(ctx), 1);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    agw_tls_identity_unref(id);
}
END_TEST

START_TEST(generated_validity_window)
{
    static const unsigned days[] = {1, 365, 3650, 36500};
    for (size_t i = 0; i < sizeof(days) / sizeof(days[0]); i++) {
        struct agw_tls_identity *id = generate("validity", days[i]);
        X509 *cert = agw_tls_identity_cert(id);
        long before = seconds_from_now(X509_get0_notBefore(cert));
        long after = seconds_from_now(X509_get0_notAfter(cert));
        /* notBefore one day back, notAfter days ahead; a minute of slack for a slow machine. */
        ck_assert_int_le(before, -86400 + 60);
        ck_assert_int_ge(before, -86400 - 60);
        ck_assert_int_le(after, (long)days[i] * 86400 + 60);
        ck_assert_int_ge(after, (long)days[i] * 86400 - 60);
        ck_assert_int_lt(X509_cmp_current_time(X509_get0_notBefore(cert)), 0);
        ck_assert_int_gt(X509_cmp_current_time(X509_get0_notAfter(cert)), 0);
        agw_tls_identity_unref(id);
    }
}
END_TEST

START_TEST(generated_serials_are_random)
{
    enum { N = 8 };
    struct agw_tls_identity *ids[N];
    for (int i = 0; i < N; i++) {
        ids[i] = generate("serial", 30);
        const ASN1_INTEGER *serial = X509_get0_serialNumber(agw_tls_identity_cert(ids[i]));
        BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
        ck_assert_ptr_nonnull(bn);
        ck_assert(!BN_is_negative(bn));
        ck_assert(!BN_is_zero(bn));
        ck_assert_int_le(BN_num_bits(bn), 128);
        ck_assert_int_gt(BN_num_bits(bn), 64); /* fails with probability 2^-64 per serial */
        BN_free(bn);
        for (int j = 0; j < i; j++) {
            const ASN1_INTEGER *other = X509_get0_serialNumber(agw_tls_identity_cert(ids[j]));
            ck_assert_int_ne(ASN1_INTEGER_cmp(serial, other), 0);
        }
        if (i > 0)
            ck_assert_int_ne(
                EVP_PKEY_eq(agw_tls_identity_key(ids[i]), agw_tls_identity_key(ids[i - 1])), 1);
    }
    for (int i = 0; i < N; i++)
        agw_tls_identity_unref(ids[i]);
}
END_TEST

START_TEST(generate_rejects_bad_arguments)
{
    char cn64[65], cn65[66];
    memset(cn64, 'a', 64);
    cn64[64] = '\0';
    memset(cn65, 'a', 65);
    cn65[65] = '\0';
    struct agw_tls_identity *id = (struct agw_tls_identity *)&id;

    ck_assert_int_eq(agw_tls_identity_generate("", 365, &id), -EINVAL);
    ck_assert_ptr_null(id);
    ck_assert_int_eq(agw_tls_identity_generate(cn65, 365, &id), -EINVAL);
    ck_assert_int_eq(agw_tls_identity_generate(NULL, 365, &id), -EINVAL);
    ck_assert_int_eq(agw_tls_identity_generate("x", 0, &id), -EINVAL);
    ck_assert_int_eq(agw_tls_identity_generate("x", 36501, &id), -EINVAL);
    ck_assert_int_eq(agw_tls_identity_generate("x", 365, NULL), -EINVAL);
    ck_assert_int_eq(agw_tls_identity_generate("\xff\xfe", 365, &id), -EINVAL); /* not UTF-8 */
    ck_assert_ptr_null(id);

    id = generate(cn64, 365);
    agw_tls_identity_unref(id);
}
END_TEST

START_TEST(generated_fingerprint_is_cached_sha256)
{
    struct agw_tls_identity *id = generate("fp", 365);
    const struct agw_tls_fingerprint *fp = agw_tls_identity_fingerprint(id);
    ck_assert_int_eq(fp->hash, AGW_TLS_HASH_SHA256);
    ck_assert_uint_eq(fp->len, 32);

    /* OpenSSL's own digest of the certificate, a separate code path. */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    ck_assert_int_eq(X509_digest(agw_tls_identity_cert(id), EVP_sha256(), md, &md_len), 1);
    ck_assert_uint_eq(md_len, 32);
    ck_assert_mem_eq(fp->digest, md, 32);
    ck_assert_int_eq(agw_tls_fingerprint_verify(agw_tls_identity_cert(id), fp, 1), 0);
    agw_tls_identity_unref(id);
}
END_TEST

/* What we generate, written out as PEM, passes our own load checks. */
START_TEST(generated_identity_loads_back)
{
    struct agw_tls_identity *id = generate("round-trip", 365);
    char dir[] = "/tmp/agw-tls-cert-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char cert_path[64], key_path[64];
    snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
    snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
    FILE *fp = fopen(cert_path, "w");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(PEM_write_X509(fp, agw_tls_identity_cert(id)), 1);
    fclose(fp);
    fp = fopen(key_path, "w");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(PEM_write_PrivateKey(fp, agw_tls_identity_key(id), NULL, NULL, 0, NULL, NULL),
                     1);
    fclose(fp);

    struct agw_tls_identity *loaded = NULL;
    char err[256];
    int rc = load(cert_path, key_path, &loaded, err, sizeof(err));
    ck_assert_msg(rc == 0, "%d: %s", rc, err);
    ck_assert_mem_eq(agw_tls_identity_fingerprint(loaded)->digest,
                     agw_tls_identity_fingerprint(id)->digest, 32);
    ck_assert_int_eq(EVP_PKEY_eq(agw_tls_identity_key(loaded), agw_tls_identity_key(id)), 1);

    agw_tls_identity_unref(loaded);

    /* One file holding the key and then the certificate. */
    fp = fopen(key_path, "a");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(PEM_write_X509(fp, agw_tls_identity_cert(id)), 1);
    fclose(fp);
    rc = load(key_path, key_path, &loaded, err, sizeof(err));
    ck_assert_msg(rc == 0, "%d: %s", rc, err);
    ck_assert_mem_eq(agw_tls_identity_fingerprint(loaded)->digest,
                     agw_tls_identity_fingerprint(id)->digest, 32);

    unlink(cert_path);
    unlink(key_path);
    rmdir(dir);
    agw_tls_identity_unref(loaded);
    agw_tls_identity_unref(id);
}
END_TEST

/* ---- references ---- */

START_TEST(identity_references)
{
    ck_assert_ptr_null(agw_tls_identity_ref(NULL));
    agw_tls_identity_unref(NULL);

    struct agw_tls_identity *id = generate("refs", 365);
    /* A termination holds what it got at Add time while the realm's reference is dropped. */
    struct agw_tls_identity *held = agw_tls_identity_ref(id);
    ck_assert_ptr_eq(held, id);
    ck_assert_ptr_eq(agw_tls_identity_ref(id), id);
    agw_tls_identity_unref(id);
    agw_tls_identity_unref(id);
    ck_assert_int_eq(X509_verify(agw_tls_identity_cert(held), agw_tls_identity_key(held)), 1);
    ck_assert_int_eq(agw_tls_fingerprint_verify(agw_tls_identity_cert(held),
                                                agw_tls_identity_fingerprint(held), 1),
                     0);
    agw_tls_identity_unref(held); /* the last one: ASan's leak check sees nothing left */
}
END_TEST

static void *ref_churn(void *arg)
{
    struct agw_tls_identity *id = arg;
    for (int i = 0; i < 100000; i++)
        agw_tls_identity_unref(agw_tls_identity_ref(id));
    agw_tls_identity_unref(id); /* the reference the spawning thread took for us */
    return NULL;
}

START_TEST(identity_references_across_threads)
{
    enum { THREADS = 4 };
    struct agw_tls_identity *id = generate("threads", 365);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, ref_churn, agw_tls_identity_ref(id)), 0);
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    ck_assert_int_eq(X509_verify(agw_tls_identity_cert(id), agw_tls_identity_key(id)), 1);
    agw_tls_identity_unref(id);
}
END_TEST

/* ---- loading ---- */

START_TEST(load_p256)
{
    struct agw_tls_identity *id = NULL;
    char err[256] = "stale";
    ck_assert_int_eq(load(DATA "cert-p256.pem", DATA "key-p256.pem", &id, err, sizeof(err)), 0);
    ck_assert_str_eq(err, "");
    char text[AGW_TLS_FINGERPRINT_TEXT_MAX];
    ck_assert_int_eq(
        agw_tls_fingerprint_format(agw_tls_identity_fingerprint(id), text, sizeof(text)), 0);
    ck_assert_str_eq(text, kat_p256[AGW_TLS_HASH_SHA256]);
    ck_assert(EVP_PKEY_is_a(agw_tls_identity_key(id), "EC"));
    agw_tls_identity_unref(id);

    /* err may be absent */
    ck_assert_int_eq(load(DATA "cert-p256.pem", DATA "key-p256.pem", &id, NULL, 0), 0);
    agw_tls_identity_unref(id);
}
END_TEST

START_TEST(load_rsa2048)
{
    struct agw_tls_identity *id = NULL;
    char err[256];
    int rc = load(DATA "cert-rsa2048.pem", DATA "key-rsa2048.pem", &id, err, sizeof(err));
    ck_assert_msg(rc == 0, "%d: %s", rc, err);
    char text[AGW_TLS_FINGERPRINT_TEXT_MAX];
    ck_assert_int_eq(
        agw_tls_fingerprint_format(agw_tls_identity_fingerprint(id), text, sizeof(text)), 0);
    ck_assert_str_eq(text, kat_rsa2048_sha256);
    agw_tls_identity_unref(id);
}
END_TEST

START_TEST(load_missing_files)
{
    load_fails(DATA "no-such-cert.pem", DATA "key-p256.pem", -ENOENT, DATA "no-such-cert.pem",
               "No such file");
    load_fails(DATA "cert-p256.pem", DATA "no-such-key.pem", -ENOENT, DATA "no-such-key.pem",
               "No such file");
}
END_TEST

START_TEST(load_key_mismatch)
{
    load_fails(DATA "cert-p256.pem", DATA "key-other-p256.pem", -EKEYREJECTED,
               "private key " DATA "key-other-p256.pem does not match certificate " DATA
               "cert-p256.pem",
               "key values mismatch");
    load_fails(DATA "cert-rsa2048.pem", DATA "key-p256.pem", -EKEYREJECTED, "does not match", NULL);
}
END_TEST

START_TEST(load_outside_validity)
{
    load_fails(DATA "cert-p256-expired.pem", DATA "key-p256.pem", -EKEYEXPIRED,
               "certificate " DATA "cert-p256-expired.pem expired on 2020-02-01 00:00:00 UTC",
               NULL);
    load_fails(DATA "cert-p256-not-yet-valid.pem", DATA "key-p256.pem", -EKEYEXPIRED,
               "certificate " DATA "cert-p256-not-yet-valid.pem is not valid before "
               "2099-01-01 00:00:00 UTC",
               NULL);
}
END_TEST

START_TEST(load_refuses_key_types)
{
    load_fails(DATA "cert-p384.pem", DATA "key-p384.pem", -ENOTSUP, "curve secp384r1",
               "P-256 only");
    load_fails(DATA "cert-ed25519.pem", DATA "key-ed25519.pem", -ENOTSUP, "ED25519 key",
               "not accepted");
    load_fails(DATA "cert-rsa1024.pem", DATA "key-rsa1024.pem", -ENOTSUP,
               "RSA key of 1024 bits not accepted", NULL);
}
END_TEST

START_TEST(load_refuses_bad_pem)
{
    /* A key file holds no certificate and a certificate file no key. */
    load_fails(DATA "key-p256.pem", DATA "key-p256.pem", -EBADMSG,
               "no PEM certificate in " DATA "key-p256.pem", "no start line");
    load_fails(DATA "cert-p256.pem", DATA "cert-p256.pem", -EBADMSG,
               "no PEM private key in " DATA "cert-p256.pem", "error:");
    /* Encrypted: refused without asking for a passphrase. */
    load_fails(DATA "cert-p256.pem", DATA "key-p256-encrypted.pem", -EBADMSG,
               "private key " DATA "key-p256-encrypted.pem is encrypted", "bad password read");
    /* A directory opens but reads nothing. */
    load_fails(DATA, DATA "key-p256.pem", -EBADMSG, "no PEM certificate", NULL);
}
END_TEST

START_TEST(load_error_buffer_bounds)
{
    struct agw_tls_identity *id = NULL;
    char err[8];
    memset(err, 'x', sizeof(err));
    ck_assert_int_eq(load(DATA "cert-p256-expired.pem", DATA "key-p256.pem", &id, err, 8),
                     -EKEYEXPIRED);
    ck_assert_str_eq(err, "certifi");
    ck_assert_int_eq(load(DATA "cert-p256-expired.pem", DATA "key-p256.pem", &id, NULL, 0),
                     -EKEYEXPIRED);
    ck_assert_int_eq(load(DATA "cert-p256-expired.pem", DATA "key-p256.pem", &id, err, 0),
                     -EKEYEXPIRED);
    ck_assert_int_eq(load(NULL, DATA "key-p256.pem", &id, NULL, 0), -EINVAL);
    ck_assert_int_eq(load(DATA "cert-p256.pem", NULL, &id, NULL, 0), -EINVAL);
    ck_assert_int_eq(load(DATA "cert-p256.pem", DATA "key-p256.pem", NULL, NULL, 0), -EINVAL);
    ck_assert_ptr_null(id);
}
END_TEST

/* ---- fingerprints ---- */

START_TEST(known_answers)
{
    X509 *cert = read_cert(DATA "cert-p256.pem");
    for (int h = 0; h < SUPPORTED_HASHES; h++) {
        struct agw_tls_fingerprint fp;
        ck_assert_int_eq(agw_tls_fingerprint_of(cert, (enum agw_tls_hash)h, &fp), 0);
        ck_assert_int_eq(fp.hash, h);
        ck_assert_uint_eq(fp.len, agw_tls_hash_size((enum agw_tls_hash)h));
        char text[AGW_TLS_FINGERPRINT_TEXT_MAX];
        ck_assert_int_eq(agw_tls_fingerprint_format(&fp, text, sizeof(text)), 0);
        ck_assert_str_eq(text, kat_p256[h]);

        /* The recorded text parses to the computed digest. */
        struct agw_tls_fingerprint parsed = parse_ok(kat_p256[h]);
        ck_assert_int_eq(parsed.hash, h);
        ck_assert_uint_eq(parsed.len, fp.len);
        ck_assert_mem_eq(parsed.digest, fp.digest, fp.len);
    }
    struct agw_tls_fingerprint fp;
    ck_assert_int_eq(agw_tls_fingerprint_of(cert, AGW_TLS_HASH_MD5, &fp), -ENOTSUP);
    ck_assert_int_eq(agw_tls_fingerprint_of(cert, AGW_TLS_HASH_MD2, &fp), -ENOTSUP);
    ck_assert_int_eq(agw_tls_fingerprint_of(cert, (enum agw_tls_hash)99, &fp), -EINVAL);
    ck_assert_int_eq(agw_tls_fingerprint_of(NULL, AGW_TLS_HASH_SHA256, &fp), -EINVAL);
    X509_free(cert);
}
END_TEST

START_TEST(hash_names_and_sizes)
{
    static const char *const names[] = {"sha-1",   "sha-224", "sha-256", "sha-384",
                                        "sha-512", "md5",     "md2"};
    static const size_t sizes[] = {20, 28, 32, 48, 64, 16, 16};
    for (int h = 0; h <= AGW_TLS_HASH_MD2; h++) {
        ck_assert_str_eq(agw_tls_hash_name((enum agw_tls_hash)h), names[h]);
        ck_assert_uint_eq(agw_tls_hash_size((enum agw_tls_hash)h), sizes[h]);
    }
    ck_assert_ptr_null(agw_tls_hash_name((enum agw_tls_hash)(AGW_TLS_HASH_MD2 + 1)));
    ck_assert_uint_eq(agw_tls_hash_size((enum agw_tls_hash) - 1), 0);
}
END_TEST

START_TEST(format_buffer_sizes)
{
    struct agw_tls_fingerprint fp = parse_ok(kat_p256[AGW_TLS_HASH_SHA512]);
    size_t need = strlen(kat_p256[AGW_TLS_HASH_SHA512]) + 1;
    ck_assert_uint_eq(need, AGW_TLS_FINGERPRINT_TEXT_MAX);
    char buf[AGW_TLS_FINGERPRINT_TEXT_MAX + 8];
    memset(buf, '#', sizeof(buf));
    ck_assert_int_eq(agw_tls_fingerprint_format(&fp, buf, need - 1), -ENOSPC);
    ck_assert_int_eq(agw_tls_fingerprint_format(&fp, NULL, 0), -ENOSPC);
    ck_assert_int_eq(agw_tls_fingerprint_format(&fp, buf, need), 0);
    ck_assert_str_eq(buf, kat_p256[AGW_TLS_HASH_SHA512]);
    ck_assert_int_eq(buf[need], '#');

    fp.len = 32; /* does not fit sha-512 */
    ck_assert_int_eq(agw_tls_fingerprint_format(&fp, buf, sizeof(buf)), -EINVAL);
    fp.hash = (enum agw_tls_hash)42;
    ck_assert_int_eq(agw_tls_fingerprint_format(&fp, buf, sizeof(buf)), -EINVAL);
    ck_assert_int_eq(agw_tls_fingerprint_format(NULL, buf, sizeof(buf)), -EINVAL);

    /* md5 can be written back (e.g. in a log line), with the RFC 8122 name. */
    struct agw_tls_fingerprint md5;
    ck_assert_int_eq(parse_exact(kat_p256_md5, strlen(kat_p256_md5), &md5), -ENOTSUP);
    ck_assert_int_eq(agw_tls_fingerprint_format(&md5, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, kat_p256_md5);
}
END_TEST

START_TEST(format_parse_round_trip)
{
    for (int h = 0; h < SUPPORTED_HASHES; h++) {
        for (int round = 0; round < 50; round++) {
            struct agw_tls_fingerprint fp = {.hash = (enum agw_tls_hash)h};
            fp.len = (uint8_t)agw_tls_hash_size(fp.hash);
            for (size_t i = 0; i < fp.len; i++)
                fp.digest[i] = (uint8_t)(round == 0 ? 0 : round == 1 ? 0xff : rand());
            char text[AGW_TLS_FINGERPRINT_TEXT_MAX];
            ck_assert_int_eq(agw_tls_fingerprint_format(&fp, text, sizeof(text)), 0);
            ck_assert_uint_eq(strlen(text),
                              strlen(agw_tls_hash_name(fp.hash)) + 1 + fp.len * 3 - 1);
            struct agw_tls_fingerprint back;
            ck_assert_int_eq(parse_exact(text, strlen(text), &back), 0);
            ck_assert_int_eq(back.hash, fp.hash);
            ck_assert_uint_eq(back.len, fp.len);
            ck_assert_mem_eq(back.digest, fp.digest, fp.len);
        }
    }
}
END_TEST

START_TEST(parse_accepts_variants)
{
    struct agw_tls_fingerprint ref = parse_ok(kat_p256[AGW_TLS_HASH_SHA256]);
    const char *hex = strchr(kat_p256[AGW_TLS_HASH_SHA256], ' ') + 1;
    char lower[128];
    size_t n = strlen(hex);
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)(hex[i] >= 'A' && hex[i] <= 'F' ? hex[i] - 'A' + 'a' : hex[i]);

    const char *prefixes[] = {"SHA-256 ", "Sha-256 ", "sha-256  ", "sha-256\t", "sha-256 \t \t"};
    for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++) {
        for (int lc = 0; lc < 2; lc++) {
            char text[256];
            snprintf(text, sizeof(text), "%s%s", prefixes[p], lc ? lower : hex);
            struct agw_tls_fingerprint fp;
            ck_assert_msg(parse_exact(text, strlen(text), &fp) == 0, "refused \"%s\"", text);
            ck_assert_int_eq(fp.hash, AGW_TLS_HASH_SHA256);
            ck_assert_mem_eq(fp.digest, ref.digest, 32);
        }
    }
    /* Only len bytes are read: what follows in memory does not count. */
    char longer[256];
    snprintf(longer, sizeof(longer), "%s trailing", kat_p256[AGW_TLS_HASH_SHA256]);
    struct agw_tls_fingerprint fp;
    ck_assert_int_eq(agw_tls_fingerprint_parse(longer, strlen(kat_p256[AGW_TLS_HASH_SHA256]), &fp),
                     0);
    ck_assert_mem_eq(fp.digest, ref.digest, 32);
}
END_TEST

START_TEST(parse_rejects_malformed)
{
    const char *good = kat_p256[AGW_TLS_HASH_SHA256];
    const char *hex = strchr(good, ' ') + 1;
    char text[512];

    static const char *const bad[] = {
        "",
        " ",
        "sha-256",
        "sha-256 ",
        "$",
        "sha-256 $",
        /* wrong lengths for the hash */
        "sha-256 88:51:78:8A:EB:54:1B:31:D3:D4:24:EF:8D:3E:9A:BA:84:E2:6C:B4:B1:08:70:38:76:B6:90:"
        "C9:C3:65:DE",
        "sha-256 88:51:78:8A:EB:54:1B:31:D3:D4:24:EF:8D:3E:9A:BA:84:E2:6C:B4:B1:08:70:38:76:B6:90:"
        "C9:C3:65:DE:D6:00",
        "sha-1 88:51:78:8A:EB:54:1B:31:D3:D4:24:EF:8D:3E:9A:BA:84:E2:6C:B4:B1:08:70:38:76:B6:90:"
        "C9:C3:65:DE:D6",
        "md5 48:53:56:0A:D3:73:59:89:3A:14:D4:9A:B4:BA:0D",
        /* bad hex and separators */
        "sha-1 5G:07:2E:91:A7:83:53:2F:74:EC:ED:0C:93:4A:79:F7:A5:96:48:E0",
        "sha-1 5C-07-2E-91-A7-83-53-2F-74-EC-ED-0C-93-4A-79-F7-A5-96-48-E0",
        "sha-1 5C072E91A783532F74ECED0C934A79F7A59648E0",
        "sha-1 5C:07:2E:91:A7:83:53:2F:74:EC:ED:0C:93:4A:79:F7:A5:96:48:E0:",
        ":sha-1 5C:07:2E:91:A7:83:53:2F:74:EC:ED:0C:93:4A:79:F7:A5:96:48:E0",
        "sha-1 :5C:07:2E:91:A7:83:53:2F:74:EC:ED:0C:93:4A:79:F7:A5:96:48:E0",
        "sha-1 5C::07:2E:91:A7:83:53:2F:74:EC:ED:0C:93:4A:79:F7:A5:96:48:E0",
        "sha-1 5C:7:2E:91:A7:83:53:2F:74:EC:ED:0C:93:4A:79:F7:A5:96:48:E0:00",
        "sha-1 5C:07:2E:91:A7:83:53:2F:74:EC:ED:0C:93:4A:79:F7:A5:96:48:E0 ",
        "sha-1 5C:07:2E:91:A7:83:53:2F:74:EC:ED:0C:93:4A:79:F7:A5:96:48:E0\r\n",
        "sha-1 5C:07:2E:91:A7:83:53:2F:74:EC:ED:0C:93:4A:79:F7:A5:96:48:E0 5C",
        "sha-1 5C:07:2E:91:A7:83:53:2F:74:EC:ED:0C:93:4A:79:F7:A5:96:48:E0x",
        "sha-1 0x5C:07:2E:91:A7:83:53:2F:74:EC:ED:0C:93:4A:79:F7:A5:96:48:E0",
        "sha-1 +5C:07:2E:91:A7:83:53:2F:74:EC:ED:0C:93:4A:79:F7:A5:96:48:E0",
        "sha-1 5C: 07:2E:91:A7:83:53:2F:74:EC:ED:0C:93:4A:79:F7:A5:96:48:E0",
        /* blanks other than SP and HTAB, or before the name */
        "sha-1\n5C:07:2E:91:A7:83:53:2F:74:EC:ED:0C:93:4A:79:F7:A5:96:48:E0",
        "sha-1\v5C:07:2E:91:A7:83:53:2F:74:EC:ED:0C:93:4A:79:F7:A5:96:48:E0",
        " sha-1 5C:07:2E:91:A7:83:53:2F:74:EC:ED:0C:93:4A:79:F7:A5:96:48:E0",
        /* a name that is not a token, and an unknown one with a malformed value */
        "sh\xc3\xa1-1 5C:07:2E:91:A7:83:53:2F:74:EC:ED:0C:93:4A:79:F7:A5:96:48:E0",
        "sha(1) 5C:07:2E:91:A7:83:53:2F:74:EC:ED:0C:93:4A:79:F7:A5:96:48:E0",
        "sha-3 5C:07:zz",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct agw_tls_fingerprint fp;
        memset(&fp, 0x5a, sizeof(fp));
        int rc = parse_exact(bad[i], strlen(bad[i]), &fp);
        ck_assert_msg(rc == -EINVAL, "\"%s\": %d", bad[i], rc);
        for (size_t j = 0; j < sizeof(fp); j++) /* nothing written on failure */
            ck_assert_uint_eq(((unsigned char *)&fp)[j], 0x5a);
    }

    /* missing space */
    snprintf(text, sizeof(text), "sha-256%s", hex);
    ck_assert_int_eq(parse_str(text), -EINVAL);

    /* NUL bytes anywhere: in the name, in the blank, in the digest, after it. */
    size_t len = strlen(good);
    for (size_t at = 0; at <= len; at++) {
        memcpy(text, good, len + 1);
        text[at] = '\0';
        size_t with_nul = at == len ? len + 1 : len;
        ck_assert_msg(parse_exact(text, with_nul, &(struct agw_tls_fingerprint){0}) == -EINVAL,
                      "NUL at %zu accepted", at);
    }

    /* Every proper prefix of a good value is malformed. */
    for (size_t cut = 0; cut < len; cut++)
        ck_assert_msg(parse_exact(good, cut, &(struct agw_tls_fingerprint){0}) == -EINVAL,
                      "prefix of %zu accepted", cut);

    /* NULL text */
    struct agw_tls_fingerprint fp;
    ck_assert_int_eq(agw_tls_fingerprint_parse(NULL, 0, &fp), -EINVAL);
    ck_assert_int_eq(agw_tls_fingerprint_parse(NULL, 10, &fp), -EINVAL);
    ck_assert_int_eq(agw_tls_fingerprint_parse(good, len, NULL), -EINVAL);
}
END_TEST

START_TEST(parse_rejects_huge_input)
{
    enum { MIB = 1 << 20 };
    char *big = malloc(MIB);
    ck_assert_ptr_nonnull(big);
    struct agw_tls_fingerprint fp;

    /* a name, then digest pairs to the end */
    memcpy(big, "sha-256 ", 8);
    for (size_t i = 8; i < MIB; i++)
        big[i] = (i - 8) % 3 == 2 ? ':' : 'A';
    ck_assert_int_eq(agw_tls_fingerprint_parse(big, MIB, &fp), -EINVAL);
    /* a valid value followed by blanks */
    size_t good_len = strlen(kat_p256[AGW_TLS_HASH_SHA256]);
    memcpy(big, kat_p256[AGW_TLS_HASH_SHA256], good_len);
    memset(big + good_len, ' ', MIB - good_len);
    ck_assert_int_eq(agw_tls_fingerprint_parse(big, MIB, &fp), -EINVAL);
    /* blanks between name and a valid digest */
    memcpy(big, "sha-256", 7);
    const char *hex = strchr(kat_p256[AGW_TLS_HASH_SHA256], ' ') + 1;
    memset(big + 7, ' ', MIB - 7);
    memcpy(big + MIB - strlen(hex), hex, strlen(hex));
    ck_assert_int_eq(agw_tls_fingerprint_parse(big, MIB, &fp), -EINVAL);
    /* one long token */
    memset(big, 'a', MIB);
    ck_assert_int_eq(agw_tls_fingerprint_parse(big, MIB, &fp), -EINVAL);
    free(big);
}
END_TEST

START_TEST(parse_unknown_and_unsupported_hashes)
{
    const char *hex = strchr(kat_p256[AGW_TLS_HASH_SHA256], ' ') + 1;
    char text[256];
    static const char *const unknown[] = {"sha-3", "sha-256x", "sha256", "blake2", "sha-"};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        snprintf(text, sizeof(text), "%s %s", unknown[i], hex);
        ck_assert_msg(parse_str(text) == -EPROTONOSUPPORT, "\"%s\"", text);
    }

    struct agw_tls_fingerprint fp;
    memset(&fp, 0, sizeof(fp));
    ck_assert_int_eq(parse_exact(kat_p256_md5, strlen(kat_p256_md5), &fp), -ENOTSUP);
    ck_assert_int_eq(fp.hash, AGW_TLS_HASH_MD5);
    ck_assert_uint_eq(fp.len, 16);
    ck_assert_uint_eq(fp.digest[0], 0x48);
    ck_assert_uint_eq(fp.digest[15], 0xf2);
    ck_assert_int_eq(parse_str("MD2 00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff"), -ENOTSUP);
    ck_assert_int_eq(parse_str("Md5 00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff"), -ENOTSUP);
}
END_TEST

/* ---- verification ---- */

START_TEST(verify_matching_sha256)
{
    X509 *cert = read_cert(DATA "cert-p256.pem");
    struct agw_tls_fingerprint fp = parse_ok(kat_p256[AGW_TLS_HASH_SHA256]);
    ck_assert_int_eq(agw_tls_fingerprint_verify(cert, &fp, 1), 0);
    /* each supported hash alone */
    for (int h = 0; h < SUPPORTED_HASHES; h++) {
        fp = parse_ok(kat_p256[h]);
        ck_assert_int_eq(agw_tls_fingerprint_verify(cert, &fp, 1), 0);
    }
    /* the right fingerprint, but of another certificate */
    X509 *other = read_cert(DATA "cert-rsa2048.pem");
    fp = parse_ok(kat_p256[AGW_TLS_HASH_SHA256]);
    ck_assert_int_eq(agw_tls_fingerprint_verify(other, &fp, 1), -EACCES);
    X509_free(other);
    X509_free(cert);
}
END_TEST

START_TEST(verify_one_of_several)
{
    X509 *cert = read_cert(DATA "cert-p256.pem");
    struct agw_tls_fingerprint list[4];
    list[0] = parse_ok(kat_rsa2048_sha256); /* another certificate's */
    ck_assert_int_eq(parse_exact(kat_p256_md5, strlen(kat_p256_md5), &list[1]), -ENOTSUP);
    list[2] = parse_ok(kat_p256[AGW_TLS_HASH_SHA384]);
    list[3] = parse_ok(kat_p256[AGW_TLS_HASH_SHA1]);
    list[3].digest[0] ^= 1;
    ck_assert_int_eq(agw_tls_fingerprint_verify(cert, list, 4), 0);
    /* the match last, after entries of the same hash */
    list[2] = list[0];
    list[3] = parse_ok(kat_p256[AGW_TLS_HASH_SHA256]);
    ck_assert_int_eq(agw_tls_fingerprint_verify(cert, list, 4), 0);
    /* without the match */
    ck_assert_int_eq(agw_tls_fingerprint_verify(cert, list, 3), -EACCES);
    X509_free(cert);
}
END_TEST

START_TEST(verify_rejects_every_one_bit_change)
{
    X509 *cert = read_cert(DATA "cert-p256.pem");
    for (int h = 0; h < SUPPORTED_HASHES; h++) {
        struct agw_tls_fingerprint good = parse_ok(kat_p256[h]);
        for (size_t bit = 0; bit < good.len * 8u; bit++) {
            struct agw_tls_fingerprint fp = good;
            fp.digest[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            ck_assert_int_eq(agw_tls_fingerprint_verify(cert, &fp, 1), -EACCES);
        }
    }
    X509_free(cert);
}
END_TEST

START_TEST(verify_without_supported_fingerprint)
{
    X509 *cert = read_cert(DATA "cert-p256.pem");
    struct agw_tls_fingerprint list[3];
    ck_assert_int_eq(parse_exact(kat_p256_md5, strlen(kat_p256_md5), &list[0]), -ENOTSUP);
    list[1] = list[0];
    list[1].hash = AGW_TLS_HASH_MD2;
    list[2] = list[0];
    list[2].hash = (enum agw_tls_hash)77; /* never made by parse; still no match */
    ck_assert_int_eq(agw_tls_fingerprint_verify(cert, list, 3), -ENOTSUP);
    ck_assert_int_eq(agw_tls_fingerprint_verify(cert, list, 0), -ENOTSUP);
    ck_assert_int_eq(agw_tls_fingerprint_verify(cert, NULL, 0), -ENOTSUP);

    /* a supported hash with a digest of the wrong size counts, and does not match */
    struct agw_tls_fingerprint odd = parse_ok(kat_p256[AGW_TLS_HASH_SHA256]);
    odd.len = 20;
    ck_assert_int_eq(agw_tls_fingerprint_verify(cert, &odd, 1), -EACCES);

    ck_assert_int_eq(agw_tls_fingerprint_verify(NULL, &odd, 1), -EINVAL);
    ck_assert_int_eq(agw_tls_fingerprint_verify(cert, NULL, 1), -EINVAL);
    X509_free(cert);
}
END_TEST

static Suite *tls_cert_suite(void)
{
    Suite *su = suite_create("tls_cert");
    TCase *tc = tcase_create("generate");
    tcase_add_test(tc, generated_is_p256_self_signed);
    tcase_add_test(tc, generated_validity_window);
    tcase_add_test(tc, generated_serials_are_random);
    tcase_add_test(tc, generate_rejects_bad_arguments);
    tcase_add_test(tc, generated_fingerprint_is_cached_sha256);
    tcase_add_test(tc, generated_identity_loads_back);
    suite_add_tcase(su, tc);

    tc = tcase_create("references");
    tcase_add_test(tc, identity_references);
    tcase_add_test(tc, identity_references_across_threads);
    suite_add_tcase(su, tc);

    tc = tcase_create("load");
    tcase_add_test(tc, load_p256);
    tcase_add_test(tc, load_rsa2048);
    tcase_add_test(tc, load_missing_files);
    tcase_add_test(tc, load_key_mismatch);
    tcase_add_test(tc, load_outside_validity);
    tcase_add_test(tc, load_refuses_key_types);
    tcase_add_test(tc, load_refuses_bad_pem);
    tcase_add_test(tc, load_error_buffer_bounds);
    suite_add_tcase(su, tc);

    tc = tcase_create("fingerprint");
    tcase_add_test(tc, known_answers);
    tcase_add_test(tc, hash_names_and_sizes);
    tcase_add_test(tc, format_buffer_sizes);
    tcase_add_test(tc, format_parse_round_trip);
    tcase_add_test(tc, parse_accepts_variants);
    tcase_add_test(tc, parse_rejects_malformed);
    tcase_add_test(tc, parse_rejects_huge_input);
    tcase_add_test(tc, parse_unknown_and_unsupported_hashes);
    suite_add_tcase(su, tc);

    tc = tcase_create("verify");
    tcase_add_test(tc, verify_matching_sha256);
    tcase_add_test(tc, verify_one_of_several);
    tcase_add_test(tc, verify_rejects_every_one_bit_change);
    tcase_add_test(tc, verify_without_supported_fingerprint);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(tls_cert_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
