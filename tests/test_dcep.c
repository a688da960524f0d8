/* Check suite for sctp/dcep.c: RFC 8832 byte vectors, round trips, truncations, bad lengths,
   unknown types, UTF-8, 64 KiB labels, encoder buffer handling, stream-id parity. */
#include "sctp/dcep.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Vectors laid out by hand from the figure of RFC 8832 §5.1 (type, channel type, priority,
   reliability, label length, protocol length, label, protocol; network byte order). */
static const uint8_t open_reliable_chat[] = {
    0x03, 0x00, 0x01, 0x00, /* OPEN, reliable, priority 256 */
    0x00, 0x00, 0x00, 0x00, /* reliability */
    0x00, 0x04, 0x00, 0x00, /* label 4, protocol 0 */
    'c',  'h',  'a',  't',
};
static const uint8_t open_rexmit_unordered[] = {
    0x03, 0x81, 0x02, 0x00, /* OPEN, rexmit unordered, priority 512 */
    0x00, 0x00, 0x00, 0x03, /* 3 retransmissions */
    0x00, 0x04, 0x00, 0x04, /* label 4, protocol 4 */
    'f',  'i',  'l',  'e',  'm', 's', 'r', 'p',
};
static const uint8_t open_timed_empty[] = {
    0x03, 0x02, 0x00, 0x80, /* OPEN, timed, priority 128 */
    0x00, 0x00, 0x05, 0xDC, /* 1500 ms */
    0x00, 0x00, 0x00, 0x00, /* no label, no protocol */
};
/* Label "ü€" (2- and 3-byte UTF-8), protocol "t.38" (a 4-byte sequence follows in utf8_ok). */
static const uint8_t open_utf8[] = {
    0x03, 0x82, 0x04, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05, 0x00,
    0x04, 0xC3, 0xBC, 0xE2, 0x82, 0xAC, 't',  '.',  '3',  '8',
};
static const uint8_t ack[] = {0x02};

static const struct dcep_limits max_limits = {DCEP_STRING_MAX, DCEP_STRING_MAX};

static struct dcep_message parse_ok(const uint8_t *data, size_t len)
{
    struct dcep_message m;
    int rc = dcep_parse(data, len, &max_limits, &m);
    ck_assert_msg(rc == 0, "parse of %zu bytes gave %d", len, rc);
    return m;
}

static void assert_encodes_to(const struct dcep_open *o, const uint8_t *want, size_t want_len)
{
    uint8_t buf[256];
    size_t len = 0;
    ck_assert_int_eq(dcep_encode_open(o, buf, sizeof(buf), &len), 0);
    ck_assert_uint_eq(len, want_len);
    ck_assert_mem_eq(buf, want, want_len);
}

/* An OPEN of any size, built the way the figure says, without the encoder. */
static uint8_t *build_open(uint8_t type, size_t label_len, size_t protocol_len, uint8_t fill,
                           size_t *len_out)
{
    size_t len = DCEP_OPEN_HEADER_LEN + label_len + protocol_len;
    uint8_t *b = malloc(len);
    ck_assert_ptr_nonnull(b);
    memset(b, 0, DCEP_OPEN_HEADER_LEN);
    b[0] = 0x03;
    b[1] = type;
    b[2] = 0x01;
    b[8] = (uint8_t)(label_len >> 8);
    b[9] = (uint8_t)label_len;
    b[10] = (uint8_t)(protocol_len >> 8);
    b[11] = (uint8_t)protocol_len;
    memset(b + DCEP_OPEN_HEADER_LEN, fill, label_len + protocol_len);
    *len_out = len;
    return b;
}

/* ---- known vectors ---- */

START_TEST(vector_reliable)
{
    struct dcep_message m = parse_ok(open_reliable_chat, sizeof(open_reliable_chat));
    ck_assert_int_eq(m.type, DCEP_MSG_OPEN);
    ck_assert_uint_eq(m.open.channel_type, DCEP_CHANNEL_RELIABLE);
    ck_assert_uint_eq(m.open.priority, 256);
    ck_assert_uint_eq(m.open.reliability, 0);
    ck_assert_uint_eq(m.open.label_len, 4);
    ck_assert_mem_eq(m.open.label, "chat", 4);
    ck_assert_uint_eq(m.open.protocol_len, 0);
    /* Borrowed from the input, not copied. */
    ck_assert_ptr_eq(m.open.label, (const char *)open_reliable_chat + 12);
    ck_assert(dcep_channel_ordered(m.open.channel_type));

    struct dcep_open o = {
        .channel_type = DCEP_CHANNEL_RELIABLE, .priority = 256, .label = "chat", .label_len = 4};
    assert_encodes_to(&o, open_reliable_chat, sizeof(open_reliable_chat));
}
END_TEST

START_TEST(vector_rexmit_unordered)
{
    struct dcep_message m = parse_ok(open_rexmit_unordered, sizeof(open_rexmit_unordered));
    ck_assert_uint_eq(m.open.channel_type, DCEP_CHANNEL_PARTIAL_RELIABLE_REXMIT_UNORDERED);
    ck_assert_uint_eq(m.open.priority, 512);
    ck_assert_uint_eq(m.open.reliability, 3);
    ck_assert_mem_eq(m.open.label, "file", 4);
    ck_assert_uint_eq(m.open.protocol_len, 4);
    ck_assert_mem_eq(m.open.protocol, "msrp", 4);
    ck_assert(!dcep_channel_ordered(m.open.channel_type));

    struct dcep_open o = {.channel_type = 0x81,
                          .priority = 512,
                          .reliability = 3,
                          .label = "file",
                          .label_len = 4,
                          .protocol = "msrp",
                          .protocol_len = 4};
    assert_encodes_to(&o, open_rexmit_unordered, sizeof(open_rexmit_unordered));
}
END_TEST

START_TEST(vector_timed_empty)
{
    struct dcep_message m = parse_ok(open_timed_empty, sizeof(open_timed_empty));
    ck_assert_uint_eq(m.open.channel_type, DCEP_CHANNEL_PARTIAL_RELIABLE_TIMED);
    ck_assert_uint_eq(m.open.priority, 128);
    ck_assert_uint_eq(m.open.reliability, 1500);
    ck_assert_uint_eq(m.open.label_len, 0);
    ck_assert_uint_eq(m.open.protocol_len, 0);

    struct dcep_open o = {.channel_type = 0x02, .priority = 128, .reliability = 1500};
    assert_encodes_to(&o, open_timed_empty, sizeof(open_timed_empty));
}
END_TEST

START_TEST(vector_utf8)
{
    struct dcep_message m = parse_ok(open_utf8, sizeof(open_utf8));
    ck_assert_uint_eq(m.open.channel_type, DCEP_CHANNEL_PARTIAL_RELIABLE_TIMED_UNORDERED);
    ck_assert_uint_eq(m.open.priority, 1024);
    ck_assert_uint_eq(m.open.reliability, 65536);
    ck_assert_uint_eq(m.open.label_len, 5);
    ck_assert_mem_eq(m.open.label, "\xC3\xBC\xE2\x82\xAC", 5);
    ck_assert_mem_eq(m.open.protocol, "t.38", 4);
    assert_encodes_to(&m.open, open_utf8, sizeof(open_utf8));
}
END_TEST

START_TEST(vector_ack)
{
    struct dcep_message m;
    memset(&m, 0x5a, sizeof(m));
    ck_assert_int_eq(dcep_parse(ack, sizeof(ack), NULL, &m), 0);
    ck_assert_int_eq(m.type, DCEP_MSG_ACK);
    ck_assert_uint_eq(m.open.label_len, 0);
    ck_assert_ptr_null(m.open.label);

    uint8_t buf[4] = {0xff, 0xff, 0xff, 0xff};
    size_t len = 0;
    ck_assert_int_eq(dcep_encode_ack(buf, sizeof(buf), &len), 0);
    ck_assert_uint_eq(len, 1);
    ck_assert_uint_eq(buf[0], 0x02);
    ck_assert_uint_eq(buf[1], 0xff);
}
END_TEST

/* RFC 8832 §5.1: the reliability parameter of a reliable channel is ignored on receive. */
START_TEST(reliable_ignores_reliability)
{
    static const uint8_t in[] = {0x03, 0x80, 0x01, 0x00, 0xDE, 0xAD, 0xBE,
                                 0xEF, 0x00, 0x01, 0x00, 0x00, 'x'};
    struct dcep_message m = parse_ok(in, sizeof(in));
    ck_assert_uint_eq(m.open.channel_type, DCEP_CHANNEL_RELIABLE_UNORDERED);
    ck_assert_uint_eq(m.open.reliability, 0);
    /* and must be sent as zero */
    struct dcep_open o = m.open;
    o.reliability = 1;
    uint8_t buf[64];
    size_t len;
    ck_assert_int_eq(dcep_encode_open(&o, buf, sizeof(buf), &len), -EINVAL);
}
END_TEST

/* ---- round trips ---- */

START_TEST(round_trip_all_types)
{
    static const uint8_t types[] = {0x00, 0x80, 0x01, 0x81, 0x02, 0x82};
    static const char *const labels[] = {"", "a", "bootstrap", "\xF0\x9F\x98\x80 smile"};
    static const char *const protocols[] = {"", "msrp", "bfcp", "urn:3gpp:dc:x"};
    uint8_t buf[256];
    for (size_t t = 0; t < sizeof(types); t++) {
        for (size_t l = 0; l < 4; l++) {
            for (size_t p = 0; p < 4; p++) {
                struct dcep_open o = {
                    .channel_type = types[t],
                    .priority = (uint16_t)(t * 1000 + l * 10 + p),
                    .reliability = (types[t] & 0x7F) ? (uint32_t)(0xFFFFFFF0u + l + p) : 0,
                    .label = labels[l],
                    .label_len = strlen(labels[l]),
                    .protocol = protocols[p],
                    .protocol_len = strlen(protocols[p]),
                };
                size_t len = 0;
                ck_assert_int_eq(dcep_encode_open(&o, buf, sizeof(buf), &len), 0);
                ck_assert_uint_eq(len, 12 + o.label_len + o.protocol_len);
                struct dcep_message m = parse_ok(buf, len);
                ck_assert_int_eq(m.type, DCEP_MSG_OPEN);
                ck_assert_uint_eq(m.open.channel_type, o.channel_type);
                ck_assert_uint_eq(m.open.priority, o.priority);
                ck_assert_uint_eq(m.open.reliability, o.reliability);
                ck_assert_uint_eq(m.open.label_len, o.label_len);
                ck_assert_uint_eq(m.open.protocol_len, o.protocol_len);
                ck_assert(memcmp(m.open.label, o.label, o.label_len) == 0);
                ck_assert(memcmp(m.open.protocol, o.protocol, o.protocol_len) == 0);
                ck_assert_int_eq(dcep_channel_ordered(types[t]), types[t] < 0x80);
            }
        }
    }
}
END_TEST

/* ---- malformed input ---- */

START_TEST(every_truncation)
{
    const struct {
        const uint8_t *data;
        size_t len;
    } vectors[] = {
        {open_reliable_chat, sizeof(open_reliable_chat)},
        {open_rexmit_unordered, sizeof(open_rexmit_unordered)},
        {open_timed_empty, sizeof(open_timed_empty)},
        {open_utf8, sizeof(open_utf8)},
        {ack, sizeof(ack)},
    };
    for (size_t v = 0; v < sizeof(vectors) / sizeof(vectors[0]); v++) {
        for (size_t cut = 0; cut < vectors[v].len; cut++) {
            /* A heap copy of exactly `cut` bytes, so that ASan sees any read past the end. */
            uint8_t *copy = malloc(cut + 1);
            ck_assert_ptr_nonnull(copy);
            memcpy(copy, vectors[v].data, cut);
            struct dcep_message m;
            int rc = dcep_parse(cut ? copy : NULL, cut, &max_limits, &m);
            ck_assert_msg(rc == DCEP_ERR_MALFORMED, "vector %zu cut at %zu gave %d", v, cut, rc);
            free(copy);
        }
    }
}
END_TEST

START_TEST(trailing_bytes)
{
    uint8_t buf[64];
    memcpy(buf, open_rexmit_unordered, sizeof(open_rexmit_unordered));
    buf[sizeof(open_rexmit_unordered)] = 'x';
    struct dcep_message m;
    ck_assert_int_eq(dcep_parse(buf, sizeof(open_rexmit_unordered) + 1, NULL, &m),
                     DCEP_ERR_MALFORMED);
    static const uint8_t long_ack[] = {0x02, 0x00};
    ck_assert_int_eq(dcep_parse(long_ack, sizeof(long_ack), NULL, &m), DCEP_ERR_MALFORMED);
}
END_TEST

START_TEST(bad_lengths)
{
    uint8_t buf[64];
    struct dcep_message m;
    const size_t n = sizeof(open_rexmit_unordered); /* label 4 + protocol 4 */
    static const struct {
        uint16_t label, protocol;
    } cases[] = {{5, 4}, {4, 5},      {3, 4},      {4, 3},           {0, 0},          {8, 0},
                 {0, 9}, {0xFFFF, 0}, {0, 0xFFFF}, {0xFFFF, 0xFFFF}, {0x0104, 0x0004}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memcpy(buf, open_rexmit_unordered, n);
        buf[8] = (uint8_t)(cases[i].label >> 8);
        buf[9] = (uint8_t)cases[i].label;
        buf[10] = (uint8_t)(cases[i].protocol >> 8);
        buf[11] = (uint8_t)cases[i].protocol;
        int rc = dcep_parse(buf, n, &max_limits, &m);
        /* {8, 0} adds up: the label is then "filemsrp". */
        if (cases[i].label + cases[i].protocol == 8) {
            ck_assert_int_eq(rc, 0);
            ck_assert_uint_eq(m.open.label_len, cases[i].label);
        } else {
            ck_assert_msg(rc == DCEP_ERR_MALFORMED, "case %zu gave %d", i, rc);
        }
    }
}
END_TEST

START_TEST(unknown_message_types)
{
    uint8_t buf[sizeof(open_reliable_chat)];
    for (unsigned t = 0; t < 256; t++) {
        memcpy(buf, open_reliable_chat, sizeof(buf));
        buf[0] = (uint8_t)t;
        struct dcep_message m;
        int rc = dcep_parse(buf, sizeof(buf), NULL, &m);
        if (t == DCEP_MSG_OPEN)
            ck_assert_int_eq(rc, 0);
        else if (t == DCEP_MSG_ACK)
            ck_assert_int_eq(rc, DCEP_ERR_MALFORMED); /* an ACK is one byte */
        else
            ck_assert_msg(rc == DCEP_ERR_MESSAGE_TYPE, "type 0x%02x gave %d", t, rc);
        /* A lone unknown byte is still "unknown type", not "truncated". */
        if (t != DCEP_MSG_OPEN && t != DCEP_MSG_ACK)
            ck_assert_int_eq(dcep_parse(buf, 1, NULL, &m), DCEP_ERR_MESSAGE_TYPE);
    }
}
END_TEST

START_TEST(unknown_channel_types)
{
    uint8_t buf[sizeof(open_reliable_chat)];
    unsigned accepted = 0;
    for (unsigned t = 0; t < 256; t++) {
        memcpy(buf, open_reliable_chat, sizeof(buf));
        buf[1] = (uint8_t)t;
        struct dcep_message m;
        int rc = dcep_parse(buf, sizeof(buf), NULL, &m);
        if (dcep_channel_type_valid((uint8_t)t)) {
            ck_assert_int_eq(rc, 0);
            accepted++;
        } else {
            ck_assert_msg(rc == DCEP_ERR_CHANNEL_TYPE, "channel type 0x%02x gave %d", t, rc);
            struct dcep_open o = {.channel_type = (uint8_t)t};
            size_t len;
            ck_assert_int_eq(dcep_encode_open(&o, buf, sizeof(buf), &len), -EINVAL);
        }
    }
    ck_assert_uint_eq(accepted, 6);
}
END_TEST

START_TEST(utf8_checked)
{
    static const struct {
        const char *s;
        size_t len;
        bool ok;
    } cases[] = {
        {"\xF0\x9F\x98\x80", 4, true},  /* U+1F600 */
        {"\xF4\x8F\xBF\xBF", 4, true},  /* U+10FFFF */
        {"\xED\x9F\xBF", 3, true},      /* U+D7FF */
        {"a\0b", 3, true},              /* NUL is a character */
        {"\xC0\x80", 2, false},         /* overlong NUL */
        {"\xE0\x9F\xBF", 3, false},     /* overlong 3-byte */
        {"\xF0\x8F\xBF\xBF", 4, false}, /* overlong 4-byte */
        {"\xED\xA0\x80", 3, false},     /* surrogate U+D800 */
        {"\xF4\x90\x80\x80", 4, false}, /* above U+10FFFF */
        {"\xF5\x80\x80\x80", 4, false},
        {"\x80", 1, false},      /* lone continuation */
        {"\xE2\x82", 2, false},  /* cut sequence */
        {"\xE2\x82x", 3, false}, /* bad continuation */
        {"ok\xC3", 3, false},    /* cut at the end */
        {"\xFF", 1, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int where = 0; where < 2; where++) {
            size_t len;
            uint8_t *b = build_open(0x00, where == 0 ? cases[i].len : 0,
                                    where == 1 ? cases[i].len : 0, 0, &len);
            memcpy(b + 12, cases[i].s, cases[i].len);
            struct dcep_message m;
            int rc = dcep_parse(b, len, NULL, &m);
            ck_assert_msg(rc == (cases[i].ok ? 0 : DCEP_ERR_UTF8), "case %zu in %s gave %d", i,
                          where ? "protocol" : "label", rc);
            struct dcep_open o = {.channel_type = 0};
            if (where == 0) {
                o.label = cases[i].s;
                o.label_len = cases[i].len;
            } else {
                o.protocol = cases[i].s;
                o.protocol_len = cases[i].len;
            }
            uint8_t out[32];
            ck_assert_int_eq(dcep_encode_open(&o, out, sizeof(out), &len),
                             cases[i].ok ? 0 : -EINVAL);
            free(b);
        }
    }
}
END_TEST

/* ---- limits: 64 KiB labels ---- */

START_TEST(max_label_and_protocol)
{
    size_t len;
    uint8_t *b = build_open(0x01, DCEP_STRING_MAX, DCEP_STRING_MAX, 'L', &len);
    ck_assert_uint_eq(len, 12 + 2 * 65535);
    struct dcep_message m = parse_ok(b, len);
    ck_assert_uint_eq(m.open.label_len, 65535);
    ck_assert_uint_eq(m.open.protocol_len, 65535);
    ck_assert_ptr_eq(m.open.protocol, (const char *)b + 12 + 65535);
    /* Default limits refuse it with the distinct code. */
    ck_assert_int_eq(dcep_parse(b, len, NULL, &m), DCEP_ERR_TOO_LONG);

    uint8_t *out = malloc(len);
    ck_assert_ptr_nonnull(out);
    size_t out_len = 0;
    ck_assert_int_eq(dcep_parse(b, len, &max_limits, &m), 0);
    ck_assert_int_eq(dcep_encode_open(&m.open, out, len, &out_len), 0);
    ck_assert_uint_eq(out_len, len);
    ck_assert_mem_eq(out, b, len);

    /* One byte more than the format allows cannot be encoded. */
    struct dcep_open big = m.open;
    char *label = malloc(65536);
    ck_assert_ptr_nonnull(label);
    memset(label, 'L', 65536);
    big.label = label;
    big.label_len = 65536;
    ck_assert_int_eq(dcep_encode_open(&big, NULL, 0, &out_len), -EINVAL);
    free(label);
    free(out);
    free(b);
}
END_TEST

START_TEST(configured_limits)
{
    const struct dcep_limits lim = {.max_label_len = 100, .max_protocol_len = 10};
    struct dcep_message m;
    size_t len;
    uint8_t *b = build_open(0x00, 100, 10, 'a', &len);
    ck_assert_int_eq(dcep_parse(b, len, &lim, &m), 0);
    free(b);
    b = build_open(0x00, 101, 10, 'a', &len);
    ck_assert_int_eq(dcep_parse(b, len, &lim, &m), DCEP_ERR_TOO_LONG);
    free(b);
    b = build_open(0x00, 100, 11, 'a', &len);
    ck_assert_int_eq(dcep_parse(b, len, &lim, &m), DCEP_ERR_TOO_LONG);
    free(b);
    /* The defaults: 1024 bytes each. */
    b = build_open(0x00, 1024, 1024, 'a', &len);
    ck_assert_int_eq(dcep_parse(b, len, NULL, &m), 0);
    free(b);
    b = build_open(0x00, 1025, 0, 'a', &len);
    ck_assert_int_eq(dcep_parse(b, len, NULL, &m), DCEP_ERR_TOO_LONG);
    free(b);
}
END_TEST

/* ---- encoder buffers and arguments ---- */

START_TEST(encode_nospc)
{
    struct dcep_open o = {.channel_type = 0x81,
                          .priority = 512,
                          .reliability = 3,
                          .label = "file",
                          .label_len = 4,
                          .protocol = "msrp",
                          .protocol_len = 4};
    uint8_t buf[20];
    size_t len = 0;
    ck_assert_int_eq(dcep_encode_open(&o, NULL, 0, &len), -ENOSPC);
    ck_assert_uint_eq(len, 20);
    for (size_t cap = 0; cap < 20; cap++) {
        memset(buf, 0xEE, sizeof(buf));
        len = 0;
        ck_assert_int_eq(dcep_encode_open(&o, buf, cap, &len), -ENOSPC);
        ck_assert_uint_eq(len, 20);
        /* Nothing written on failure. */
        for (size_t i = 0; i < sizeof(buf); i++)
            ck_assert_uint_eq(buf[i], 0xEE);
    }
    ck_assert_int_eq(dcep_encode_open(&o, buf, 20, &len), 0);
    ck_assert_mem_eq(buf, open_rexmit_unordered, 20);

    ck_assert_int_eq(dcep_encode_ack(buf, 0, &len), -ENOSPC);
    ck_assert_uint_eq(len, 1);
    ck_assert_int_eq(dcep_encode_ack(NULL, 5, &len), -ENOSPC);
}
END_TEST

START_TEST(bad_arguments)
{
    struct dcep_message m;
    uint8_t buf[32];
    size_t len;
    ck_assert_int_eq(dcep_parse(NULL, 1, NULL, &m), -EINVAL);
    ck_assert_int_eq(dcep_parse(ack, 1, NULL, NULL), -EINVAL);
    ck_assert_int_eq(dcep_parse(NULL, 0, NULL, &m), DCEP_ERR_MALFORMED);
    ck_assert_int_eq(dcep_encode_open(NULL, buf, sizeof(buf), &len), -EINVAL);
    struct dcep_open o = {.channel_type = 0, .label = NULL, .label_len = 3};
    ck_assert_int_eq(dcep_encode_open(&o, buf, sizeof(buf), &len), -EINVAL);
    o.label_len = 0;
    ck_assert_int_eq(dcep_encode_open(&o, buf, sizeof(buf), NULL), -EINVAL);
    ck_assert_int_eq(dcep_encode_ack(buf, sizeof(buf), NULL), -EINVAL);
}
END_TEST

/* ---- constants and stream ids ---- */

START_TEST(ppids)
{
    /* RFC 8831 §8 and RFC 8832 §8.1 (IANA SCTP PPID registry). */
    ck_assert_int_eq(DCEP_PPID_CONTROL, 50);
    ck_assert_int_eq(DCEP_PPID_STRING, 51);
    ck_assert_int_eq(DCEP_PPID_BINARY_PARTIAL, 52);
    ck_assert_int_eq(DCEP_PPID_BINARY, 53);
    ck_assert_int_eq(DCEP_PPID_STRING_PARTIAL, 54);
    ck_assert_int_eq(DCEP_PPID_STRING_EMPTY, 56);
    ck_assert_int_eq(DCEP_PPID_BINARY_EMPTY, 57);
}
END_TEST

START_TEST(stream_parity)
{
    ck_assert(dcep_stream_id_valid(0, DCEP_DTLS_CLIENT));
    ck_assert(!dcep_stream_id_valid(0, DCEP_DTLS_SERVER));
    ck_assert(dcep_stream_id_valid(1, DCEP_DTLS_SERVER));
    ck_assert(!dcep_stream_id_valid(1, DCEP_DTLS_CLIENT));
    ck_assert(dcep_stream_id_valid(65534, DCEP_DTLS_CLIENT));
    ck_assert(dcep_stream_id_valid(65533, DCEP_DTLS_SERVER));
    ck_assert(!dcep_stream_id_valid(65535, DCEP_DTLS_SERVER));
    ck_assert(!dcep_stream_id_valid(65535, DCEP_DTLS_CLIENT));
    unsigned client = 0, server = 0;
    for (unsigned s = 0; s <= 65535; s++) {
        bool c = dcep_stream_id_valid((uint16_t)s, DCEP_DTLS_CLIENT);
        bool v = dcep_stream_id_valid((uint16_t)s, DCEP_DTLS_SERVER);
        ck_assert(!(c && v));
        client += c;
        server += v;
    }
    ck_assert_uint_eq(client, 32768);
    ck_assert_uint_eq(server, 32767);
}
END_TEST

static Suite *dcep_suite(void)
{
    Suite *s = suite_create("dcep");
    TCase *tc = tcase_create("vectors");
    tcase_add_test(tc, vector_reliable);
    tcase_add_test(tc, vector_rexmit_unordered);
    tcase_add_test(tc, vector_timed_empty);
    tcase_add_test(tc, vector_utf8);
    tcase_add_test(tc, vector_ack);
    tcase_add_test(tc, reliable_ignores_reliability);
    tcase_add_test(tc, round_trip_all_types);
    suite_add_tcase(s, tc);

    tc = tcase_create("malformed");
    tcase_add_test(tc, every_truncation);
    tcase_add_test(tc, trailing_bytes);
    tcase_add_test(tc, bad_lengths);
    tcase_add_test(tc, unknown_message_types);
    tcase_add_test(tc, unknown_channel_types);
    tcase_add_test(tc, utf8_checked);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_test(tc, max_label_and_protocol);
    tcase_add_test(tc, configured_limits);
    tcase_add_test(tc, encode_nospc);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("constants");
    tcase_add_test(tc, ppids);
    tcase_add_test(tc, stream_parity);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(dcep_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
