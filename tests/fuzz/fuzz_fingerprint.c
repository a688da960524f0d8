/* libFuzzer harness for a=fingerprint values: parse against a reference reading of the grammar,
 * format back, re-parse, and verify a fixed certificate against what was parsed. */
#include "tls/cert.h"
#include "tls/fingerprint.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The parser refuses longer values before reading them (tls/fingerprint.c). */
#define TEXT_LIMIT 512

static struct agw_tls_identity *identity;

static void fail(const char *what, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_fingerprint: %s: \"%.*s\"\n", what, (int)(size > 300 ? 300 : size),
            (const char *)data);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (agw_tls_identity_generate("fuzz_fingerprint", 30, &identity) != 0)
        abort();
    return 0;
}

static bool token_char(unsigned char c)
{
    /* RFC 8866 token-char: visible ASCII but '"' ( ) , / : ; < = > ? @ [ \ ]. */
    return c > 0x20 && c < 0x7f && strchr("\"(),/:;<=>?@[\\]", c) == NULL;
}

static bool hex_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

static const struct {
    const char *name;
    size_t size;
    int rc; /* what a well-formed value with this name gives */
} known[] = {
    {"sha-1", 20, 0},   {"sha-224", 28, 0},    {"sha-256", 32, 0},    {"sha-384", 48, 0},
    {"sha-512", 64, 0}, {"md5", 16, -ENOTSUP}, {"md2", 16, -ENOTSUP},
};

/* What the header's contract says the parse of s must return: hash-func, blanks (space or tab),
 * then 1..64 hex pairs joined by single colons and nothing else; malformed wins. */
static int expected_rc(const unsigned char *s, size_t len)
{
    if (len > TEXT_LIMIT)
        return -EINVAL;
    size_t i = 0;
    while (i < len && token_char(s[i]))
        i++;
    size_t name_len = i;
    if (name_len == 0)
        return -EINVAL;
    size_t blanks = i;
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i == blanks)
        return -EINVAL;
    size_t pairs = 0;
    for (;;) {
        if (len - i < 2 || !hex_char(s[i]) || !hex_char(s[i + 1]) || ++pairs > 64)
            return -EINVAL;
        i += 2;
        if (i == len)
            break;
        if (s[i] != ':')
            return -EINVAL;
        i++;
    }
    for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
        if (strlen(known[k].name) != name_len)
            continue;
        size_t j = 0;
        while (j < name_len && lower(s[j]) == (unsigned char)known[k].name[j])
            j++;
        if (j == name_len)
            return pairs == known[k].size ? known[k].rc : -EINVAL;
    }
    return -EPROTONOSUPPORT;
}

/* The formatted text is the input with the name in lower case, one space and upper-case hex. */
static bool canonical_of(const char *text, const unsigned char *s, size_t len)
{
    size_t i = 0, j = 0;
    while (i < len && s[i] != ' ' && s[i] != '\t') {
        if (text[j] == '\0' || lower(s[i]) != (unsigned char)text[j])
            return false;
        i++;
        j++;
    }
    if (text[j++] != ' ')
        return false;
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    for (; i < len; i++, j++) {
        unsigned char c = s[i] >= 'a' && s[i] <= 'f' ? (unsigned char)(s[i] - 'a' + 'A') : s[i];
        if (text[j] == '\0' || c != (unsigned char)text[j])
            return false;
    }
    return text[j] == '\0';
}

static bool same(const struct agw_tls_fingerprint *a, const struct agw_tls_fingerprint *b)
{
    return a->hash == b->hash && a->len == b->len && memcmp(a->digest, b->digest, a->len) == 0;
}

static void check_verify(const struct agw_tls_fingerprint *fp, int parse_rc, const uint8_t *data,
                         size_t size)
{
    X509 *cert = agw_tls_identity_cert(identity);
    struct agw_tls_fingerprint real;
    int rc = agw_tls_fingerprint_verify(cert, fp, 1);
    if (parse_rc == -ENOTSUP) {
        if (rc != -ENOTSUP)
            fail("md5/md2 fingerprint was not refused as unsupported", data, size);
        return;
    }
    if (agw_tls_fingerprint_of(cert, fp->hash, &real) != 0)
        fail("cannot compute the certificate's own fingerprint", data, size);
    if (rc != (same(fp, &real) ? 0 : -EACCES))
        fail("verify disagrees with a digest comparison", data, size);
    /* A list that also holds the right value is accepted, whatever comes first. */
    struct agw_tls_fingerprint list[2] = {*fp, real};
    if (agw_tls_fingerprint_verify(cert, list, 2) != 0)
        fail("verify refused a list holding the certificate's fingerprint", data, size);
    /* The right value with one byte changed is refused. */
    real.digest[size % real.len] ^= (uint8_t)(1u << (size % 8));
    if (agw_tls_fingerprint_verify(cert, &real, 1) != -EACCES)
        fail("verify accepted a changed digest", data, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct agw_tls_fingerprint fp, again;
    memset(&fp, 0xA5, sizeof(fp));
    int rc = agw_tls_fingerprint_parse((const char *)data, size, &fp);
    int want = expected_rc(data, size);
    if (rc != want) {
        fprintf(stderr, "fuzz_fingerprint: parse gave %d, the grammar says %d\n", rc, want);
        fail("parse result", data, size);
    }
    if (rc != 0 && rc != -ENOTSUP)
        return 0;
    if (fp.len != agw_tls_hash_size(fp.hash) || agw_tls_hash_name(fp.hash) == NULL)
        fail("parsed length does not match the hash", data, size);

    char text[AGW_TLS_FINGERPRINT_TEXT_MAX];
    if (agw_tls_fingerprint_format(&fp, text, sizeof(text)) != 0)
        fail("format of a parsed fingerprint failed", data, size);
    size_t len = strlen(text);
    if (!canonical_of(text, data, size))
        fail("formatted text is not the input's canonical form", data, size);
    /* The documented capacity is exact: one byte less does not fit. */
    char small[AGW_TLS_FINGERPRINT_TEXT_MAX];
    if (agw_tls_fingerprint_format(&fp, small, len + 1) != 0 || strcmp(small, text) != 0 ||
        agw_tls_fingerprint_format(&fp, small, len) != -ENOSPC)
        fail("format capacity", data, size);
    memset(&again, 0x5A, sizeof(again));
    if (agw_tls_fingerprint_parse(text, len, &again) != rc || !same(&fp, &again))
        fail("format then parse changed the fingerprint", data, size);
    check_verify(&fp, rc, data, size);
    return 0;
}
