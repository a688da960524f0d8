/* Malformed-input tests of the H.248 text parser: truncation, byte corruption, nesting, huge
 * numbers and sizes, limits; the parser answers with an error (or, where the ABNF allows the
 * input, a message that round-trips) and never crashes. */
#define _GNU_SOURCE /* memmem */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h248/h248.h"

#define MIB (1024 * 1024)

/* Valid corpus messages the mutation tests start from. single: one transaction, so the only
 * prefixes that may parse are the message minus trailing white space. */
static const struct {
    const char *path;
    bool single;
} sources[] = {
    {"tests/corpus/rfc3525/11-add-choose-local.txt", true},
    {"tests/corpus/iq/31-dc-reserve-configure-access.compact.txt", true},
    {"tests/corpus/iq/29-notify-fingerprint-mismatch.pretty.txt", true},
    {"tests/corpus/h248/12-erlang-authentication-header.txt", true},
    {"tests/corpus/h248/32-yak-pending-and-ack-ranges.txt", false},
};
#define N_SOURCES (sizeof(sources) / sizeof(sources[0]))

static const char HDR[] = "!/3 [192.0.2.1]:2944\n";

static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    while ((got = fread(buf + n, 1, cap - n, fp)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
    }
    fclose(fp);
    *len = n;
    return buf;
}

static const char *err_text(const struct h248_parse_error *err)
{
    static char text[sizeof(err->text) + 1];
    memcpy(text, err->text, sizeof(err->text));
    text[sizeof(err->text)] = '\0';
    return text;
}

/* Encodes into a fresh buffer (caller frees); grows once on -ENOSPC. */
static char *encode(const char *what, const struct h248_message *msg, enum h248_style style,
                    size_t *len)
{
    size_t cap = 65536;
    for (int attempt = 0; attempt < 2; attempt++) {
        char *buf = malloc(cap);
        ck_assert_ptr_nonnull(buf);
        size_t need = 0;
        int rc = h248_encode_message(msg, style, buf, cap, &need);
        if (rc == 0) {
            *len = need;
            return buf;
        }
        free(buf);
        ck_assert_msg(rc == -ENOSPC, "%s: accepted, but its %s encoding failed: %d", what,
                      style == H248_STYLE_COMPACT ? "compact" : "pretty", rc);
        cap = need;
    }
    ck_abort_msg("%s: encoder asked for more room twice", what);
    return NULL;
}

/* An accepted input must survive both encodings: whatever the parser lets in, it can put out
 * (under the same limits but the message length). */
static void assert_round_trip(const char *what, const struct h248_message *msg,
                              const struct h248_limits *limits)
{
    static const enum h248_style styles[] = {H248_STYLE_COMPACT, H248_STYLE_PRETTY};
    for (size_t i = 0; i < 2; i++) {
        size_t len;
        char *enc = encode(what, msg, styles[i], &len);
        /* The pretty form is longer than the input may have been: only the length may grow. */
        struct h248_limits lim = limits != NULL ? *limits : h248_default_limits;
        if (lim.max_message_len < len)
            lim.max_message_len = len;
        struct h248_message *again = NULL;
        struct h248_parse_error err;
        memset(&err, 0, sizeof(err));
        int rc = h248_parse_message(enc, len, &lim, &again, &err);
        ck_assert_msg(rc == 0, "%s: accepted, but its own %s encoding is rejected: %u %s\n%.*s",
                      what, i == 0 ? "compact" : "pretty", err.code, err_text(&err),
                      (int)(len > 2000 ? 2000 : len), enc);
        ck_assert_msg(h248_message_equal(msg, again), "%s: accepted, but does not round-trip",
                      what);
        h248_message_free(again);
        free(enc);
    }
}

static void assert_sane_error(const char *what, int rc, const struct h248_parse_error *err,
                              size_t len)
{
    ck_assert_msg(rc < 0, "%s: parse returned %d", what, rc);
    ck_assert_msg(err->code >= 400 && err->code < 600, "%s: error code %u", what, err->code);
    ck_assert_msg(err->text[0] != '\0', "%s: error %u without text", what, err->code);
    ck_assert_msg(memchr(err->text, '\0', sizeof(err->text)) != NULL,
                  "%s: error text not terminated", what);
    ck_assert_msg(err->offset <= len, "%s: error offset %zu beyond %zu bytes", what, err->offset,
                  len);
}

/* Parses; on success checks the round trip and returns the message, on failure checks the
 * error and returns NULL. Either way the outcome is recorded in *err. */
static struct h248_message *parse_any(const char *what, const char *data, size_t len,
                                      const struct h248_limits *limits,
                                      struct h248_parse_error *err)
{
    struct h248_message *msg = NULL;
    memset(err, 0, sizeof(*err));
    int rc = h248_parse_message(data, len, limits, &msg, err);
    if (rc == 0) {
        ck_assert_ptr_nonnull(msg);
        assert_round_trip(what, msg, limits);
        return msg;
    }
    ck_assert_msg(msg == NULL, "%s: failed parse left a message behind", what);
    assert_sane_error(what, rc, err, len);
    return NULL;
}

/* Must fail; code 0 means any code will do (the class is not clear from the input). */
static void expect_fail(const char *what, const char *data, size_t len,
                        const struct h248_limits *limits, unsigned code)
{
    struct h248_parse_error err;
    struct h248_message *msg = parse_any(what, data, len, limits, &err);
    if (msg != NULL) {
        size_t elen;
        char *enc = encode(what, msg, H248_STYLE_COMPACT, &elen);
        ck_abort_msg("%s: accepted; parsed as:\n%.*s", what, (int)(elen > 500 ? 500 : elen), enc);
    }
    if (code != 0)
        ck_assert_msg(err.code == code, "%s: error %u, expected %u (offset %zu: %s)", what,
                      err.code, code, err.offset, err_text(&err));
}

static struct h248_message *expect_ok(const char *what, const char *data, size_t len,
                                      const struct h248_limits *limits)
{
    struct h248_parse_error err;
    struct h248_message *msg = parse_any(what, data, len, limits, &err);
    ck_assert_msg(msg != NULL, "%s: rejected: %u at offset %zu: %s", what, err.code, err.offset,
                  err_text(&err));
    return msg;
}

static void expect_fail_str(const char *what, const char *s, unsigned code)
{
    expect_fail(what, s, strlen(s), NULL, code);
}

/* Builds prefix + count copies of unit + suffix in a fresh buffer (caller frees). */
static char *repeat(const char *prefix, const char *unit, size_t count, const char *suffix,
                    size_t *len)
{
    size_t pl = strlen(prefix), ul = strlen(unit), sl = strlen(suffix);
    *len = pl + ul * count + sl;
    char *buf = malloc(*len + 1);
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, prefix, pl);
    for (size_t i = 0; i < count; i++)
        memcpy(buf + pl + i * ul, unit, ul);
    memcpy(buf + pl + ul * count, suffix, sl);
    buf[*len] = '\0';
    return buf;
}

/* The first Local{} body of the first command, or NULL. */
static const struct h248_str *first_local(const struct h248_message *msg)
{
    if (msg->transactions == NULL || msg->transactions->actions == NULL ||
        msg->transactions->actions->commands == NULL)
        return NULL;
    for (const struct h248_descriptor *d = msg->transactions->actions->commands->descriptors;
         d != NULL; d = d->next) {
        if (d->kind != H248_DESC_MEDIA)
            continue;
        if (d->u.media.has_direct_parms && d->u.media.direct.has_local)
            return &d->u.media.direct.local;
        for (const struct h248_stream *s = d->u.media.streams; s != NULL; s = s->next)
            if (s->parms.has_local)
                return &s->parms.local;
    }
    return NULL;
}

static bool only_space_after(const char *data, size_t from, size_t len)
{
    for (size_t i = from; i < len; i++)
        if (data[i] != ' ' && data[i] != '\t' && data[i] != '\r' && data[i] != '\n')
            return false;
    return true;
}

/* Every prefix is rejected, unless it is itself a complete message. */
START_TEST(test_truncation)
{
    const char *path = sources[_i].path;
    size_t len;
    char *full = read_file(path, &len);
    struct h248_parse_error err;
    struct h248_message *whole = expect_ok(path, full, len, NULL);
    char what[256];

    for (size_t cut = 0; cut < len; cut++) {
        char *prefix = malloc(cut > 0 ? cut : 1);
        ck_assert_ptr_nonnull(prefix);
        memcpy(prefix, full, cut);
        snprintf(what, sizeof(what), "%s cut at %zu", path, cut);
        struct h248_message *msg = parse_any(what, prefix, cut, NULL, &err);
        if (msg != NULL) {
            size_t last = cut;
            while (last > 0 && strchr(" \t\r\n", prefix[last - 1]) != NULL)
                last--;
            ck_assert_msg(last > 0 && prefix[last - 1] == '}',
                          "%s: accepted a prefix that does not end a transaction", what);
            if (sources[_i].single) {
                ck_assert_msg(only_space_after(full, cut, len),
                              "%s: accepted a prefix of a one-transaction message", what);
                ck_assert_msg(h248_message_equal(msg, whole), "%s: differs from the whole", what);
            }
            h248_message_free(msg);
        }
        free(prefix);
    }
    h248_message_free(whole);
    free(full);
}
END_TEST

/* Every byte replaced by a delimiter, a quote, NUL, 0xFF or the octet-string escape. NUL is
 * legal nowhere in the ABNF (not even in octet strings), so those must all fail. */
START_TEST(test_byte_replacement)
{
    static const char repl[] = {'{', '}', '"', '\0', (char)0xFF, '\\'};
    const char *path = sources[_i].path;
    size_t len;
    char *full = read_file(path, &len);
    char *copy = malloc(len);
    ck_assert_ptr_nonnull(copy);
    char what[256];
    struct h248_parse_error err;

    for (size_t pos = 0; pos < len; pos++) {
        for (size_t r = 0; r < sizeof(repl); r++) {
            if (full[pos] == repl[r])
                continue;
            memcpy(copy, full, len);
            copy[pos] = repl[r];
            snprintf(what, sizeof(what), "%s byte %zu -> 0x%02x", path, pos,
                     (unsigned char)repl[r]);
            if (repl[r] == '\0') {
                expect_fail(what, copy, len, NULL, 0);
                continue;
            }
            h248_message_free(parse_any(what, copy, len, NULL, &err));
        }
    }
    free(copy);
    free(full);
}
END_TEST

START_TEST(test_unbalanced_braces)
{
    size_t len;
    char *full = read_file(sources[0].path, &len);
    char *buf = malloc(len + 2);
    ck_assert_ptr_nonnull(buf);

    /* One closing brace too many after the message. */
    memcpy(buf, full, len);
    buf[len] = '}';
    expect_fail("extra } at the end", buf, len + 1, NULL, 0);

    /* The last closing brace missing: the transaction is left open. */
    size_t last = len;
    while (last > 0 && full[last - 1] != '}')
        last--;
    ck_assert_uint_gt(last, 0);
    memcpy(buf, full, last - 1);
    expect_fail("last } removed", buf, last - 1, NULL, H248_ERR_TRANSACTION_SYNTAX);

    /* An opening brace where a descriptor name belongs. */
    const char *media = strstr(full, "Media");
    ck_assert_ptr_nonnull(media);
    size_t at = (size_t)(media - full);
    memcpy(buf, full, at);
    buf[at] = '{';
    memcpy(buf + at + 1, full + at, len - at);
    expect_fail("{ before Media", buf, len + 1, NULL, H248_ERR_COMMAND_SYNTAX);

    expect_fail_str("only }", "}", H248_ERR_MESSAGE_SYNTAX);
    expect_fail_str("only {", "{", H248_ERR_MESSAGE_SYNTAX);
    expect_fail_str("} before transaction", "!/3 [192.0.2.1]:2944\n}T=1{C=-{AV=ROOT{AT{}}}}", 0);
    free(buf);
    free(full);
}
END_TEST

START_TEST(test_huge_numbers)
{
    struct h248_message *msg = expect_ok(
        "TransactionID 4294967295", "!/3 [192.0.2.1]:2944\nT=4294967295{C=-{AV=ROOT{AT{}}}}",
        strlen("!/3 [192.0.2.1]:2944\nT=4294967295{C=-{AV=ROOT{AT{}}}}"), NULL);
    ck_assert_ptr_nonnull(msg->transactions);
    ck_assert_uint_eq(msg->transactions->id, 4294967295u);
    h248_message_free(msg);

    expect_fail_str("TransactionID 4294967296",
                    "!/3 [192.0.2.1]:2944\nT=4294967296{C=-{AV=ROOT{AT{}}}}", 0);
    expect_fail_str("TransactionID 99999999999999999999",
                    "!/3 [192.0.2.1]:2944\nT=99999999999999999999{C=-{AV=ROOT{AT{}}}}", 0);
    expect_fail_str("ContextID 4294967296",
                    "!/3 [192.0.2.1]:2944\nT=1{C=4294967296{AV=ROOT{AT{}}}}", 0);
    expect_fail_str("ContextID 99999999999999999999",
                    "!/3 [192.0.2.1]:2944\nT=1{C=99999999999999999999{AV=ROOT{AT{}}}}", 0);
    expect_fail_str("message error code 12345", "!/3 [192.0.2.1]:2944\nER=12345{\"x\"}",
                    H248_ERR_MESSAGE_SYNTAX);
    expect_fail_str("command error code 12345",
                    "!/3 [192.0.2.1]:2944\nP=1{C=1{MF=ip/access/1{ER=12345{\"x\"}}}}", 0);
    expect_fail_str("Priority 65536",
                    "!/3 [192.0.2.1]:2944\nT=1{C=${PR=65536,A=${M{ST=1{O{MO=SR}}}}}}",
                    H248_ERR_ACTION_SYNTAX);
    expect_fail_str("StreamID 99999999999",
                    "!/3 [192.0.2.1]:2944\nT=1{C=${A=${M{ST=99999999999{O{MO=SR}}}}}}",
                    H248_ERR_COMMAND_SYNTAX);
    expect_fail_str("RequestID 4294967296",
                    "!/3 [192.0.2.1]:2944\nT=1{C=-{MF=ROOT{E=4294967296{it/ito}}}}",
                    H248_ERR_COMMAND_SYNTAX);
    expect_fail_str("port 99999", "!/3 [192.0.2.1]:99999\nT=1{C=-{AV=ROOT{AT{}}}}",
                    H248_ERR_MESSAGE_SYNTAX);
    expect_fail_str("ServiceChange Delay 4294967296",
                    "!/3 [192.0.2.1]:2944\nT=1{C=-{SC=ROOT{SV{MT=GR,RE=\"905\",DL=4294967296}}}}",
                    H248_ERR_COMMAND_SYNTAX);
    expect_fail_str("version 99999", "!/99999 [192.0.2.1]:2944\nT=1{C=-{AV=ROOT{AT{}}}}",
                    H248_ERR_MESSAGE_SYNTAX);
}
END_TEST

/* 10,000 levels of nesting: a recursive parser must stop at its depth limit, not the stack. */
START_TEST(test_deep_nesting)
{
    const size_t depth = 10000;
    size_t len;
    char *buf;

    buf = repeat("!/3 [192.0.2.1]:2944\nT=1{", "{", depth, "", &len);
    expect_fail("braces in a transaction", buf, len, NULL, H248_ERR_TRANSACTION_SYNTAX);
    free(buf);

    buf = repeat("!/3 [192.0.2.1]:2944\nT=1{C=1{", "{", depth, "", &len);
    expect_fail("braces in an action", buf, len, NULL, H248_ERR_ACTION_SYNTAX);
    free(buf);

    buf = repeat("!/3 [192.0.2.1]:2944\nT=1{C=1{MF=ip/access/1{", "{", depth, "", &len);
    expect_fail("braces in a command", buf, len, NULL, H248_ERR_COMMAND_SYNTAX);
    free(buf);

    buf =
        repeat("!/3 [192.0.2.1]:2944\nT=1{C=1{MF=ip/access/1{M{ST=1{O{x/y=", "[", depth, "", &len);
    expect_fail("brackets in a property value", buf, len, NULL, H248_ERR_COMMAND_SYNTAX);
    free(buf);

    buf = repeat("!/3 [192.0.2.1]:2944\nT=1{C=1{MF=ip/access/1{E=1{al/of{", "EM{E=2{al/of{", depth,
                 "", &len);
    expect_fail("embedded events", buf, len, NULL, 0);
    free(buf);

    /* Audit and Modem bodies may be kept as raw balanced text: balanced but far too deep. */
    char *closing = malloc(depth + 16);
    ck_assert_ptr_nonnull(closing);
    memset(closing, '}', depth);
    strcpy(closing + depth, "}}}}}");
    buf = repeat("!/3 [192.0.2.1]:2944\nT=1{C=1{AV=ip/access/1{AT{", "M{", depth, closing, &len);
    expect_fail("balanced audit nesting", buf, len, NULL, 0);
    free(buf);
    buf = repeat("!/3 [192.0.2.1]:2944\nT=1{C=1{MF=ip/access/1{MD=V18{", "{", depth, closing, &len);
    expect_fail("balanced modem nesting", buf, len, NULL, 0);
    free(buf);
    free(closing);

    /* Inside an octet string only } ends the body: 10,000 { are plain data. */
    struct h248_limits lim = h248_default_limits;
    if (lim.max_octet_string_len < 2 * depth)
        lim.max_octet_string_len = 2 * depth;
    if (lim.max_message_len < 4 * depth)
        lim.max_message_len = 4 * depth;
    buf = repeat("!/3 [192.0.2.1]:2944\nT=1{C=${A=${M{ST=1{L{", "{", depth, "}}}}}}", &len);
    struct h248_message *msg = expect_ok("10000 { in Local", buf, len, &lim);
    const struct h248_str *local = first_local(msg);
    ck_assert_ptr_nonnull(local);
    ck_assert_uint_eq(local->len, depth);
    ck_assert_int_eq(local->ptr[0], '{');
    ck_assert_int_eq(local->ptr[depth - 1], '{');
    h248_message_free(msg);
    free(buf);
}
END_TEST

/* Big tokens, quoted strings and octet strings: refused by the limits, never copied blindly. */
START_TEST(test_huge_items)
{
    struct h248_limits big = h248_default_limits;
    big.max_message_len = 4 * MIB;
    size_t len;
    char *buf;

    buf = repeat("!/3 [192.0.2.1]:2944\nT=1{C=1{MF=ip/", "a", MIB, "{M{ST=1{O{MO=SR}}}}}}", &len);
    expect_fail("1 MiB termination id, default limits", buf, len, NULL, 0);
    expect_fail("1 MiB termination id, 4 MiB message limit", buf, len, &big, 0);
    free(buf);

    buf = repeat("!/3 [192.0.2.1]:2944\nT=1{C=-{SC=ROOT{SV{MT=RS,RE=\"", "a", MIB, "\"}}}}", &len);
    expect_fail("1 MiB quoted string, default limits", buf, len, NULL, 0);
    expect_fail("1 MiB quoted string, 4 MiB message limit", buf, len, &big, 0);
    free(buf);

    buf = repeat("!/3 [192.0.2.1]:2944\nT=1{C=${A=${M{ST=1{L{v=0\n", "a=x\n", MIB / 4, "}}}}}}",
                 &len);
    expect_fail("1 MiB Local, default limits", buf, len, NULL, 0);
    struct h248_limits lim = big;
    lim.max_octet_string_len = 65536;
    expect_fail("1 MiB Local, 64 KiB octet limit", buf, len, &lim, 0);
    lim.max_octet_string_len = 2 * MIB;
    struct h248_message *msg = expect_ok("1 MiB Local, 2 MiB octet limit", buf, len, &lim);
    const struct h248_str *local = first_local(msg);
    ck_assert_ptr_nonnull(local);
    ck_assert_uint_ge(local->len, (size_t)MIB);
    h248_message_free(msg);
    free(buf);

    /* max_token_len is exact: a name of that length passes, one byte more fails. */
    lim = h248_default_limits;
    lim.max_token_len = 64;
    buf = repeat("!/3 [192.0.2.1]:2944\nT=1{C=1{MF=", "t", 64, "{M{ST=1{O{MO=SR}}}}}}", &len);
    h248_message_free(expect_ok("64-byte termination id, limit 64", buf, len, &lim));
    free(buf);
    buf = repeat("!/3 [192.0.2.1]:2944\nT=1{C=1{MF=", "t", 65, "{M{ST=1{O{MO=SR}}}}}}", &len);
    expect_fail("65-byte termination id, limit 64", buf, len, &lim, 0);
    free(buf);

    /* A message one byte over max_message_len is refused before anything else. */
    lim = h248_default_limits;
    const char *ok = "!/3 [192.0.2.1]:2944\nT=1{C=-{AV=ROOT{AT{}}}}";
    lim.max_message_len = strlen(ok);
    h248_message_free(expect_ok("message at max_message_len", ok, strlen(ok), &lim));
    lim.max_message_len = strlen(ok) - 1;
    expect_fail("message over max_message_len", ok, strlen(ok), &lim, 0);
}
END_TEST

START_TEST(test_nul_bytes)
{
    static const char msg[] = "!/3 [192.0.2.1]:2944\nT=1{C=-{AV=ROOT{AT{}}}}";
    size_t n = sizeof(msg) - 1;
    char buf[sizeof(msg) + 1];

    memcpy(buf, msg, n);
    buf[n] = '\0';
    expect_fail("NUL after the message", buf, n + 1, NULL, 0);

    char zeros[64] = {0};
    expect_fail("only NUL bytes", zeros, sizeof(zeros), NULL, H248_ERR_MESSAGE_SYNTAX);

    static const char in_sdp[] = "!/3 [192.0.2.1]:2944\nT=1{C=${A=${M{ST=1{L{v=0\na=x\0y\n}}}}}}";
    expect_fail("NUL in Local", in_sdp, sizeof(in_sdp) - 1, NULL, H248_ERR_COMMAND_SYNTAX);
    static const char in_quoted[] =
        "!/3 [192.0.2.1]:2944\nT=1{C=-{SC=ROOT{SV{MT=RS,RE=\"9\00001\"}}}}";
    expect_fail("NUL in quoted string", in_quoted, sizeof(in_quoted) - 1, NULL,
                H248_ERR_COMMAND_SYNTAX);
    static const char in_comment[] = "; a\0b\n!/3 [192.0.2.1]:2944\nT=1{C=-{AV=ROOT{AT{}}}}";
    expect_fail("NUL in a comment", in_comment, sizeof(in_comment) - 1, NULL,
                H248_ERR_MESSAGE_SYNTAX);
}
END_TEST

/* Octet strings carry any byte but NUL and an unescaped }; the rest of the syntax is ASCII. */
START_TEST(test_invalid_utf8)
{
    static const char sdp[] =
        "!/3 [192.0.2.1]:2944\nT=1{C=${A=${M{ST=1{L{v=0\na=label:\xC3\x28\xFF\xFE\x80\n}}}}}}";
    struct h248_message *msg = expect_ok("invalid UTF-8 in Local", sdp, sizeof(sdp) - 1, NULL);
    const struct h248_str *local = first_local(msg);
    ck_assert_ptr_nonnull(local);
    ck_assert_ptr_nonnull(memmem(local->ptr, local->len, "\xC3\x28\xFF\xFE\x80", 5));
    h248_message_free(msg);

    expect_fail_str("invalid UTF-8 in a quoted string",
                    "!/3 [192.0.2.1]:2944\nT=1{C=-{SC=ROOT{SV{MT=RS,RE=\"9\xC3\x28\"}}}}", 0);
    expect_fail_str("invalid UTF-8 in a termination id",
                    "!/3 [192.0.2.1]:2944\nT=1{C=1{MF=ip/\xFF\xFE{M{ST=1{O{MO=SR}}}}}}", 0);
    expect_fail_str("invalid UTF-8 in the mId", "!/3 <mg\xC3\x28>:2944\nT=1{C=-{AV=ROOT{AT{}}}}",
                    H248_ERR_MESSAGE_SYNTAX);
}
END_TEST

/* Builds a message of n AuditValue transactions. */
static char *transactions(unsigned n, size_t *len)
{
    size_t cap = strlen(HDR) + (size_t)n * 48 + 1;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    size_t off = (size_t)snprintf(buf, cap, "%s", HDR);
    for (unsigned i = 1; i <= n; i++)
        off += (size_t)snprintf(buf + off, cap - off, "T=%u{C=-{AV=ROOT{AT{}}}}", i);
    *len = off;
    return buf;
}

START_TEST(test_transaction_limit)
{
    struct h248_limits lim = h248_default_limits;
    lim.max_transactions = 10;
    size_t len;
    char *buf = transactions(10, &len);
    struct h248_message *msg = expect_ok("10 transactions, limit 10", buf, len, &lim);
    unsigned n = 0;
    for (const struct h248_transaction *t = msg->transactions; t != NULL; t = t->next)
        n++;
    ck_assert_uint_eq(n, 10);
    h248_message_free(msg);
    free(buf);

    buf = transactions(11, &len);
    expect_fail("11 transactions, limit 10", buf, len, &lim, 0);
    free(buf);

    buf = transactions(1000, &len);
    lim.max_message_len = len;
    expect_fail("1000 transactions, limit 10", buf, len, &lim, 0);
    free(buf);
}
END_TEST

START_TEST(test_empty_inputs)
{
    expect_fail("empty input", "", 0, NULL, H248_ERR_MESSAGE_SYNTAX);
    expect_fail_str("only white space", " \t\r\n\n   \t", H248_ERR_MESSAGE_SYNTAX);
    expect_fail_str("only a comment", "; nothing but a comment\n", H248_ERR_MESSAGE_SYNTAX);
    expect_fail_str("only comments and space", "\n; one\n  ; two\n\n", H248_ERR_MESSAGE_SYNTAX);
    expect_fail_str("comment without end of line", "; no newline", H248_ERR_MESSAGE_SYNTAX);
    expect_fail_str("header only", "!/3 [192.0.2.1]:2944", H248_ERR_MESSAGE_SYNTAX);
    expect_fail_str("header and space", "!/3 [192.0.2.1]:2944 \n\n", H248_ERR_MESSAGE_SYNTAX);

    /* err may be NULL: the failure is still reported by the return value. */
    struct h248_message *msg = NULL;
    ck_assert_int_lt(h248_parse_message("}", 1, NULL, &msg, NULL), 0);
    ck_assert_ptr_null(msg);
}
END_TEST

/* The error class follows where the syntax broke; the transaction id is reported once known. */
START_TEST(test_error_classes)
{
    struct h248_parse_error err;
    static const char broken_command[] = "!/3 [192.0.2.1]:2944\nT=77{C=1{MF=ip/access/1{M{}}}}";
    expect_fail_str("broken header", "!/3 [192.0.2.1:2944\nT=77{C=1{AV=ROOT{AT{}}}}",
                    H248_ERR_MESSAGE_SYNTAX);
    expect_fail_str("broken transaction", "!/3 [192.0.2.1]:2944\nT=77{X}",
                    H248_ERR_TRANSACTION_SYNTAX);
    expect_fail_str("broken action", "!/3 [192.0.2.1]:2944\nT=77{C=1{}}", H248_ERR_ACTION_SYNTAX);
    expect_fail_str("broken command", broken_command, H248_ERR_COMMAND_SYNTAX);

    ck_assert_ptr_null(
        parse_any("broken command", broken_command, strlen(broken_command), NULL, &err));
    ck_assert_msg(err.has_transaction_id, "transaction id not reported: %s", err_text(&err));
    ck_assert_uint_eq(err.transaction_id, 77);
    ck_assert_uint_ge(err.offset, (size_t)(strstr(broken_command, "M{}") - broken_command));

    /* The second transaction is the broken one: its id is the one reported. */
    static const char second[] =
        "!/3 [192.0.2.1]:2944\nT=5{C=-{AV=ROOT{AT{}}}}T=6{C=1{MF=ip/access/1{M{}}}}";
    ck_assert_ptr_null(parse_any("second transaction", second, strlen(second), NULL, &err));
    ck_assert_uint_eq(err.code, H248_ERR_COMMAND_SYNTAX);
    ck_assert(err.has_transaction_id);
    ck_assert_uint_eq(err.transaction_id, 6);
    ck_assert_uint_gt(err.offset, (size_t)(strstr(second, "T=6") - second));
}
END_TEST

/* Line ends: CRLF everywhere (SDP included) is as good as LF. */
START_TEST(test_crlf)
{
    size_t len;
    char *lf = read_file("tests/corpus/iq/09-msrp-orig-reserve-configure-access.pretty.txt", &len);
    char *crlf = malloc(2 * len);
    ck_assert_ptr_nonnull(crlf);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (lf[i] == '\n')
            crlf[n++] = '\r';
        crlf[n++] = lf[i];
    }
    struct h248_message *msg = expect_ok("CRLF message", crlf, n, NULL);
    const struct h248_str *local = first_local(msg);
    ck_assert_ptr_nonnull(local);
    ck_assert_ptr_nonnull(memmem(local->ptr, local->len, "v=0\r\nc=IN IP4 $\r\n", 17));
    h248_message_free(msg);
    free(crlf);
    free(lf);
}
END_TEST

static Suite *malformed_suite(void)
{
    Suite *s = suite_create("malformed");
    TCase *tc = tcase_create("mutations");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_truncation, 0, (int)N_SOURCES);
    tcase_add_loop_test(tc, test_byte_replacement, 0, (int)N_SOURCES);
    suite_add_tcase(s, tc);

    tc = tcase_create("shapes");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_unbalanced_braces);
    tcase_add_test(tc, test_huge_numbers);
    tcase_add_test(tc, test_deep_nesting);
    tcase_add_test(tc, test_huge_items);
    tcase_add_test(tc, test_nul_bytes);
    tcase_add_test(tc, test_invalid_utf8);
    tcase_add_test(tc, test_transaction_limit);
    tcase_add_test(tc, test_empty_inputs);
    tcase_add_test(tc, test_error_classes);
    tcase_add_test(tc, test_crlf);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(malformed_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
