/* Check suite for agw/msrp_frame.c: RFC 4975 style frames, stream framing at every split,
   end-line decoys, malformed and oversized input, re-chunking to a data channel's size. */
#include "agw/msrp_frame.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALICE "msrp://alicepc.example.com:7777/iau39soe2843z;tcp"
#define BOB "msrp://bob.example.com:8888/9di4eae923wzd;tcp"

/* Laid out as in RFC 4975 §7.1 / §11 (Alice sends Bob a short text, Bob answers, a REPORT). */
static const char send_text[] = "MSRP a786hjs2 SEND\r\n"
                                "To-Path: " BOB "\r\n"
                                "From-Path: " ALICE "\r\n"
                                "Message-ID: 87652491\r\n"
                                "Byte-Range: 1-24/24\r\n"
                                "Content-Type: text/plain\r\n"
                                "\r\n"
                                "Hi Bob, it's Alice here.\r\n"
                                "-------a786hjs2$\r\n";
static const char ok_response[] = "MSRP a786hjs2 200 OK\r\n"
                                  "To-Path: " ALICE "\r\n"
                                  "From-Path: " BOB "\r\n"
                                  "-------a786hjs2$\r\n";
static const char report[] = "MSRP dkei38sd REPORT\r\n"
                             "To-Path: " ALICE "\r\n"
                             "From-Path: " BOB "\r\n"
                             "Message-ID: 87652491\r\n"
                             "Byte-Range: 1-24/24\r\n"
                             "Status: 000 200 OK\r\n"
                             "-------dkei38sd$\r\n";
/* A body-less SEND, as sent to bind a connection. */
static const char send_empty[] = "MSRP 5Xy.9%=+ SEND\r\n"
                                 "To-Path: " BOB "\r\n"
                                 "From-Path: " ALICE "\r\n"
                                 "Message-ID: 4711abcd\r\n"
                                 "Byte-Range: 1-0/0\r\n"
                                 "-------5Xy.9%=+$\r\n";
/* The first chunk of a longer message: '+' and an unknown end. */
static const char send_chunk[] = "MSRP qwe5tzu7 SEND\r\n"
                                 "To-Path: " BOB "\r\n"
                                 "From-Path: " ALICE "\r\n"
                                 "Message-ID: 9a8b7c6d\r\n"
                                 "Byte-Range: 1-*/*\r\n"
                                 "Content-Type: text/plain\r\n"
                                 "\r\n"
                                 "part one\r\n"
                                 "-------qwe5tzu7+\r\n";
/* A body full of near misses: other ids, a shorter id, no flag, no CRLF around, 8 dashes. */
static const char send_decoys[] = "MSRP d3c0yT1d SEND\r\n"
                                  "To-Path: " BOB "\r\n"
                                  "From-Path: " ALICE "\r\n"
                                  "Message-ID: d3c0y\r\n"
                                  "Content-Type: text/plain\r\n"
                                  "\r\n"
                                  "-------\r\n"
                                  "-------d3c0yT1\r\n"
                                  "-------d3c0yT1$\r\n"
                                  "-------othertid$\r\n"
                                  "-------d3c0yT1d\r\n"
                                  "-------d3c0yT1dx$\r\n"
                                  "-------d3c0yT1d$x\r\n"
                                  "-------d3c0yT1d$ \n"
                                  "-------d3c0yT1d+\r\r\n"
                                  "--------d3c0yT1d$\r\n"
                                  "x-------d3c0yT1d+\r\n"
                                  "-------D3C0YT1D$\r\n"
                                  "\r\n\r\n-------d3c0yT1d!\r\n"
                                  "\r\n"
                                  "-------d3c0yT1d#\r\n";

static const char *const stream_frames[] = {send_text,  ok_response, report,
                                            send_empty, send_chunk,  send_decoys};
#define N_STREAM_FRAMES (sizeof(stream_frames) / sizeof(stream_frames[0]))

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* ---- helpers ---- */

struct collected {
    size_t n;
    uint8_t *frame[64];
    size_t len[64];
    int err;
};

static void collected_free(struct collected *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->frame[i]);
    c->n = 0;
}

static int pop_all(struct agw_msrp_framer *f, struct collected *c)
{
    for (;;) {
        const uint8_t *fr = NULL;
        size_t len = 0;
        struct agw_msrp_frame_info info;
        int rc = agw_msrp_framer_pop(f, &fr, &len, &info);
        if (rc <= 0)
            return rc;
        ck_assert_uint_lt(c->n, 64);
        /* info describes the popped frame exactly as the standalone parser does. */
        struct agw_msrp_frame_info again;
        ck_assert_int_eq(agw_msrp_frame_parse(fr, len, &again), 0);
        ck_assert_uint_eq(again.body_len, info.body_len);
        ck_assert_uint_eq(again.tid_len, info.tid_len);
        ck_assert_ptr_eq(info.tid, fr + 5);
        c->frame[c->n] = malloc(len);
        ck_assert_ptr_nonnull(c->frame[c->n]);
        memcpy(c->frame[c->n], fr, len);
        c->len[c->n++] = len;
    }
}

/* Feeds s in pieces: mode 0 all at once, 1 byte by byte, 2 random sizes, 3 random sizes
   through input_space/commit. Pops after every piece. Returns the stream error (0 = clean). */
static int run_stream(const uint8_t *s, size_t len, size_t max_frame, int mode, struct collected *c)
{
    struct agw_msrp_framer f;
    ck_assert_int_eq(agw_msrp_framer_init(&f, max_frame), 0);
    memset(c, 0, sizeof(*c));
    size_t off = 0;
    int rc = 0;
    while (off < len && rc == 0) {
        size_t want = mode == 0 ? len - off : mode == 1 ? 1 : 1 + (size_t)(rng() % 300);
        if (want > len - off)
            want = len - off;
        size_t used = 0;
        if (mode == 3) {
            uint8_t *space = NULL;
            size_t room = 0;
            rc = agw_msrp_framer_input_space(&f, &space, &room);
            if (rc != 0)
                break;
            ck_assert_uint_ge(room, 1);
            used = want < room ? want : room;
            memcpy(space, s + off, used);
            ck_assert_int_eq(agw_msrp_framer_commit(&f, used), 0);
        } else {
            rc = agw_msrp_framer_feed(&f, s + off, want, &used);
            if (rc != 0)
                break;
        }
        ck_assert_uint_ge(used, 1);
        off += used;
        rc = pop_all(&f, c);
    }
    if (rc == 0)
        ck_assert_uint_eq(f.len - f.head, 0); /* nothing left half-framed */
    agw_msrp_framer_free(&f);
    c->err = rc;
    return rc;
}

static uint8_t *concat_frames(size_t *len_out)
{
    size_t len = 0;
    for (size_t i = 0; i < N_STREAM_FRAMES; i++)
        len += strlen(stream_frames[i]);
    uint8_t *s = malloc(len);
    ck_assert_ptr_nonnull(s);
    size_t off = 0;
    for (size_t i = 0; i < N_STREAM_FRAMES; i++) {
        memcpy(s + off, stream_frames[i], strlen(stream_frames[i]));
        off += strlen(stream_frames[i]);
    }
    *len_out = len;
    return s;
}

static struct agw_msrp_frame_info parse_ok(const char *frame)
{
    struct agw_msrp_frame_info info;
    int rc = agw_msrp_frame_parse((const uint8_t *)frame, strlen(frame), &info);
    ck_assert_msg(rc == 0, "parse gave %d for:\n%s", rc, frame);
    return info;
}

static int parse_str(const char *frame)
{
    struct agw_msrp_frame_info info;
    return agw_msrp_frame_parse((const uint8_t *)frame, strlen(frame), &info);
}

/* Value of header `name` in a frame, or NULL; *len its length. */
static const uint8_t *header_value(const uint8_t *fr, const struct agw_msrp_frame_info *info,
                                   const char *name, size_t *len)
{
    size_t pos = info->headers_off, end = info->headers_off + info->headers_len;
    size_t nl = strlen(name);
    while (pos < end) {
        const uint8_t *crlf = memchr(fr + pos, '\r', end - pos);
        ck_assert_ptr_nonnull(crlf);
        size_t k = (size_t)(crlf - fr);
        if (k - pos > nl + 1 && memcmp(fr + pos, name, nl) == 0 && fr[pos + nl] == ':') {
            *len = k - pos - nl - 2;
            return fr + pos + nl + 2;
        }
        pos = k + 2;
    }
    return NULL;
}

/* ---- parsing ---- */

START_TEST(parse_send)
{
    struct agw_msrp_frame_info in = parse_ok(send_text);
    ck_assert(!in.response);
    ck_assert_uint_eq(in.tid_len, 8);
    ck_assert_mem_eq(in.tid, "a786hjs2", 8);
    ck_assert_uint_eq(in.method_len, 4);
    ck_assert_mem_eq(in.method, "SEND", 4);
    ck_assert_int_eq(in.flag, '$');
    ck_assert(in.has_body);
    ck_assert_uint_eq(in.body_len, 24);
    ck_assert_mem_eq(send_text + in.body_off, "Hi Bob, it's Alice here.", 24);
    ck_assert(in.has_range);
    ck_assert_uint_eq(in.range.start, 1);
    ck_assert_uint_eq(in.range.end, 24);
    ck_assert_uint_eq(in.range.total, 24);
    ck_assert_uint_eq(in.message_id_len, 8);
    ck_assert_mem_eq(in.message_id, "87652491", 8);
    ck_assert_uint_eq(in.headers_off, strlen("MSRP a786hjs2 SEND\r\n"));
    /* The header lines end where the empty line begins. */
    ck_assert_mem_eq(send_text + in.headers_off + in.headers_len - 2, "\r\n\r\n", 4);
}
END_TEST

START_TEST(parse_response_and_report)
{
    struct agw_msrp_frame_info in = parse_ok(ok_response);
    ck_assert(in.response);
    ck_assert_uint_eq(in.status, 200);
    ck_assert(!in.has_body);
    ck_assert(!in.has_range);
    ck_assert_ptr_null(in.message_id);
    ck_assert_int_eq(in.flag, '$');
    ck_assert_uint_eq(in.headers_off + in.headers_len + strlen("-------a786hjs2$\r\n"),
                      strlen(ok_response));

    in = parse_ok("MSRP a786hjs2 413\r\nTo-Path: " ALICE "\r\nFrom-Path: " BOB
                  "\r\n-------a786hjs2$\r\n");
    ck_assert(in.response);
    ck_assert_uint_eq(in.status, 413);

    in = parse_ok(report);
    ck_assert(!in.response);
    ck_assert_uint_eq(in.method_len, 6);
    ck_assert_mem_eq(in.method, "REPORT", 6);
    ck_assert(!in.has_body);
    ck_assert_uint_eq(in.range.end, 24);

    in = parse_ok(send_empty);
    ck_assert(!in.has_body);
    ck_assert_uint_eq(in.range.start, 1);
    ck_assert_uint_eq(in.range.end, 0);
    ck_assert_uint_eq(in.range.total, 0);

    in = parse_ok(send_chunk);
    ck_assert_int_eq(in.flag, '+');
    ck_assert_uint_eq(in.range.end, AGW_MSRP_RANGE_UNKNOWN);
    ck_assert_uint_eq(in.range.total, AGW_MSRP_RANGE_UNKNOWN);

    in = parse_ok(send_decoys);
    ck_assert_int_eq(in.flag, '#');
    const char *body = strstr(send_decoys, "\r\n\r\n") + 4;
    ck_assert_uint_eq(in.body_len, strlen(body) - strlen("\r\n-------d3c0yT1d#\r\n"));

    /* An empty body after the empty line; header names in any case. */
    in = parse_ok("MSRP abcd SEND\r\nto-path: " BOB "\r\nFROM-PATH: " ALICE
                  "\r\ncontent-type: text/plain\r\n\r\n\r\n-------abcd$\r\n");
    ck_assert(in.has_body);
    ck_assert_uint_eq(in.body_len, 0);
}
END_TEST

START_TEST(parse_byte_range)
{
    struct agw_msrp_byte_range r;
    ck_assert_int_eq(agw_msrp_byte_range_parse("1-100/100", 9, &r), 0);
    ck_assert_uint_eq(r.start, 1);
    ck_assert_uint_eq(r.end, 100);
    ck_assert_uint_eq(r.total, 100);
    ck_assert_int_eq(agw_msrp_byte_range_parse("50001-*/*", 9, &r), 0);
    ck_assert_uint_eq(r.start, 50001);
    ck_assert_uint_eq(r.end, AGW_MSRP_RANGE_UNKNOWN);
    ck_assert_uint_eq(r.total, AGW_MSRP_RANGE_UNKNOWN);
    ck_assert_int_eq(agw_msrp_byte_range_parse("9999999999999999999-*/*", 23, &r), 0);
    ck_assert_uint_eq(r.start, 9999999999999999999ull);
    /* Only the given length is read: the "0" after it does not count. */
    ck_assert_int_eq(agw_msrp_byte_range_parse("1-5/50", 5, &r), 0);
    ck_assert_uint_eq(r.total, 5);

    static const char *const bad[] = {
        "",        "1",        "1-5",
        "1-5/",    "-5/5",     "0-5/5",
        "5-3/10",  "1-20/10",  "11-*/9",
        "1-5/5/5", "a-5/5",    "1-5/*x",
        "+1-5/5",  " 1-5/5",   "1--5/5",
        "1-**/*",  "1-5/ 5",   "1-5/5 ",
        "1 -5/5",  "1-0x5/10", "10000000000000000000-*/*", /* 20 digits */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(agw_msrp_byte_range_parse(bad[i], strlen(bad[i]), &r) == -EPROTO,
                      "accepted \"%s\"", bad[i]);
}
END_TEST

/* Every way a frame may be wrong: each is refused by the parser and by the framer. */
static const char *const malformed[] = {
    "HTTP/1.1 200 OK\r\n\r\n",
    "msrp abcd SEND\r\nTo-Path: a\r\nFrom-Path: b\r\n-------abcd$\r\n",
    "MSRP abc SEND\r\nTo-Path: a\r\nFrom-Path: b\r\n-------abc$\r\n",
    "MSRP abcdefghijklmnopqrstuvwxyz0123456 SEND\r\nTo-Path: a\r\nFrom-Path: b\r\n"
    "-------abcdefghijklmnopqrstuvwxyz0123456$\r\n",
    "MSRP ab_cd SEND\r\nTo-Path: a\r\nFrom-Path: b\r\n-------ab_cd$\r\n",
    "MSRP .abcd SEND\r\nTo-Path: a\r\nFrom-Path: b\r\n-------.abcd$\r\n",
    "MSRP abcd send\r\nTo-Path: a\r\nFrom-Path: b\r\n-------abcd$\r\n",
    "MSRP abcd 20 OK\r\nTo-Path: a\r\nFrom-Path: b\r\n-------abcd$\r\n",
    "MSRP abcd 2000 OK\r\nTo-Path: a\r\nFrom-Path: b\r\n-------abcd$\r\n",
    "MSRP  abcd SEND\r\nTo-Path: a\r\nFrom-Path: b\r\n-------abcd$\r\n",
    "MSRP abcd SEND \r\nTo-Path: a\r\nFrom-Path: b\r\n-------abcd$\r\n",
    "MSRP abcd SEND\nTo-Path: a\r\nFrom-Path: b\r\n-------abcd$\r\n",
    "MSRP abcd\r\nTo-Path: a\r\nFrom-Path: b\r\n-------abcd$\r\n",
    "MSRP abcd 200 O\x01K\r\nTo-Path: a\r\nFrom-Path: b\r\n-------abcd$\r\n",
    "MSRP abcd SEND\r\n-------abcd$\r\n",
    "MSRP abcd SEND\r\nTo-Path a\r\nFrom-Path: b\r\n-------abcd$\r\n",
    "MSRP abcd SEND\r\nTo-Path: a\r\n-------abcd$\r\n",
    "MSRP abcd SEND\r\nFrom-Path: b\r\n-------abcd$\r\n",
    "MSRP abcd SEND\r\nTo-Path: a\r\nTo-Path: a\r\nFrom-Path: b\r\n-------abcd$\r\n",
    "MSRP abcd SEND\r\nTo-Path: a\r\nFrom-Path: b\r\n: x\r\n-------abcd$\r\n",
    "MSRP abcd SEND\r\nTo-Path: a\r\nFrom-Path: b\r\nX Y: z\r\n-------abcd$\r\n",
    "MSRP abcd SEND\r\nTo-Path: a\r\nFrom-Path: b\r\nX: a\rb\r\n-------abcd$\r\n",
    "MSRP abcd SEND\r\nTo-Path: a\r\nFrom-Path: b\r\nX: a\nb\r\n-------abcd$\r\n",
    "MSRP abcd SEND\r\nTo-Path: a\r\nFrom-Path: b\r\nX: a\x7f\r\n-------abcd$\r\n",
    "MSRP abcd SEND\r\nTo-Path: a\r\nFrom-Path: b\r\nByte-Range: 0-1/1\r\n-------abcd$\r\n",
    "MSRP abcd SEND\r\nTo-Path: a\r\nFrom-Path: b\r\nByte-Range: 1-2/1\r\n-------abcd$\r\n",
    "MSRP abcd SEND\r\nTo-Path: a\r\nFrom-Path: b\r\nByte-Range: 1-2\r\n-------abcd$\r\n",
    "MSRP abcd SEND\r\nTo-Path: a\r\nFrom-Path: b\r\nByte-Range: 1-1/1\r\nByte-Range: 1-1/1\r\n"
    "-------abcd$\r\n",
    "MSRP abcd SEND\r\nTo-Path: a\r\nFrom-Path: b\r\nMessage-ID: x\r\nMessage-ID: y\r\n"
    "-------abcd$\r\n",
    /* An empty line right before the end-line: no "data CRLF". */
    "MSRP abcd SEND\r\nTo-Path: a\r\nFrom-Path: b\r\n\r\n-------abcd$\r\n",
    /* A response carries no body. */
    "MSRP abcd 200 OK\r\nTo-Path: a\r\nFrom-Path: b\r\n\r\nhello\r\n-------abcd$\r\n",
};

START_TEST(parse_malformed)
{
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        ck_assert_msg(parse_str(malformed[i]) == -EPROTO, "parser accepted #%zu", i);
        struct collected c;
        ck_assert_msg(run_stream((const uint8_t *)malformed[i], strlen(malformed[i]), 0, 1, &c) ==
                          -EPROTO,
                      "framer accepted #%zu", i);
        ck_assert_uint_eq(c.n, 0);
    }
    /* Complete frames only: nothing before, nothing after, the end-line exactly at the end. */
    size_t n = strlen(send_text);
    struct agw_msrp_frame_info info;
    for (size_t len = 0; len < n; len++)
        ck_assert_int_eq(agw_msrp_frame_parse((const uint8_t *)send_text, len, &info), -EPROTO);
    char buf[1024];
    snprintf(buf, sizeof(buf), "%sMSRP", send_text);
    ck_assert_int_eq(parse_str(buf), -EPROTO);
    snprintf(buf, sizeof(buf), " %s", send_text);
    ck_assert_int_eq(parse_str(buf), -EPROTO);
    ck_assert_int_eq(agw_msrp_frame_parse(NULL, 0, &info), -EINVAL);
}
END_TEST

/* ---- framer ---- */

START_TEST(framer_splits_equal_whole)
{
    size_t len = 0;
    uint8_t *s = concat_frames(&len);
    struct collected whole;
    ck_assert_int_eq(run_stream(s, len, 0, 0, &whole), 0);
    ck_assert_uint_eq(whole.n, N_STREAM_FRAMES);
    for (size_t i = 0; i < N_STREAM_FRAMES; i++) {
        ck_assert_uint_eq(whole.len[i], strlen(stream_frames[i]));
        ck_assert_mem_eq(whole.frame[i], stream_frames[i], whole.len[i]);
    }
    for (int mode = 1; mode <= 3; mode++) {
        for (int round = 0; round < (mode == 1 ? 1 : 50); round++) {
            struct collected c;
            ck_assert_int_eq(run_stream(s, len, 0, mode, &c), 0);
            ck_assert_uint_eq(c.n, whole.n);
            for (size_t i = 0; i < c.n; i++) {
                ck_assert_uint_eq(c.len[i], whole.len[i]);
                ck_assert_mem_eq(c.frame[i], whole.frame[i], c.len[i]);
            }
            collected_free(&c);
        }
    }
    collected_free(&whole);
    free(s);
}
END_TEST

/* Two feeds, split at every byte position of a stream of two frames. */
START_TEST(framer_every_split_point)
{
    char two[2048];
    snprintf(two, sizeof(two), "%s%s", send_decoys, ok_response);
    size_t len = strlen(two);
    for (size_t cut = 0; cut <= len; cut++) {
        struct agw_msrp_framer f;
        ck_assert_int_eq(agw_msrp_framer_init(&f, 0), 0);
        struct collected c = {0};
        size_t used = 0;
        if (cut > 0) {
            ck_assert_int_eq(agw_msrp_framer_feed(&f, two, cut, &used), 0);
            ck_assert_uint_eq(used, cut);
        }
        ck_assert_int_eq(pop_all(&f, &c), 0);
        ck_assert_uint_eq(c.n, cut >= strlen(send_decoys) ? 1 + (cut == len) : 0);
        if (cut < len) {
            ck_assert_int_eq(agw_msrp_framer_feed(&f, two + cut, len - cut, &used), 0);
            ck_assert_uint_eq(used, len - cut);
        }
        ck_assert_int_eq(pop_all(&f, &c), 0);
        ck_assert_uint_eq(c.n, 2);
        ck_assert_uint_eq(c.len[0], strlen(send_decoys));
        ck_assert_mem_eq(c.frame[0], send_decoys, c.len[0]);
        ck_assert_mem_eq(c.frame[1], ok_response, c.len[1]);
        collected_free(&c);
        agw_msrp_framer_free(&f);
    }
}
END_TEST

START_TEST(framer_garbage_fails_early)
{
    struct agw_msrp_framer f;
    const uint8_t *fr;
    size_t len, used;
    ck_assert_int_eq(agw_msrp_framer_init(&f, 0), 0);
    /* Nothing in, nothing allocated yet: nothing out (fuzzing found arithmetic on NULL here). */
    ck_assert_int_eq(agw_msrp_framer_pop(&f, &fr, &len, NULL), 0);
    ck_assert_int_eq(agw_msrp_framer_trim(&f), 0);
    ck_assert_int_eq(agw_msrp_framer_feed(&f, "MSR", 3, &used), 0);
    ck_assert_int_eq(agw_msrp_framer_pop(&f, &fr, &len, NULL), 0);
    ck_assert_int_eq(agw_msrp_framer_feed(&f, "X", 1, &used), 0);
    ck_assert_int_eq(agw_msrp_framer_pop(&f, &fr, &len, NULL), -EPROTO);
    /* Sticky: the stream is unusable. */
    ck_assert_int_eq(agw_msrp_framer_pop(&f, &fr, &len, NULL), -EPROTO);
    ck_assert_int_eq(agw_msrp_framer_feed(&f, "M", 1, &used), -EPROTO);
    uint8_t *space;
    size_t room;
    ck_assert_int_eq(agw_msrp_framer_input_space(&f, &space, &room), -EPROTO);
    agw_msrp_framer_free(&f);

    /* A start line that never ends fails at AGW_MSRP_START_LINE_MAX bytes. */
    char line[AGW_MSRP_START_LINE_MAX];
    memcpy(line, "MSRP abcd 200 ", 14);
    memset(line + 14, 'x', sizeof(line) - 14);
    ck_assert_int_eq(agw_msrp_framer_init(&f, 0), 0);
    ck_assert_int_eq(agw_msrp_framer_feed(&f, line, sizeof(line) - 1, &used), 0);
    ck_assert_int_eq(agw_msrp_framer_pop(&f, &fr, &len, NULL), 0);
    ck_assert_int_eq(agw_msrp_framer_feed(&f, line, 1, &used), 0);
    ck_assert_int_eq(agw_msrp_framer_pop(&f, &fr, &len, NULL), -EPROTO);
    agw_msrp_framer_free(&f);

    /* A good frame is delivered before the garbage after it is reported. */
    char buf[1024];
    snprintf(buf, sizeof(buf), "%sGET / HTTP/1.1\r\n", ok_response);
    struct collected c;
    ck_assert_int_eq(run_stream((const uint8_t *)buf, strlen(buf), 0, 0, &c), -EPROTO);
    ck_assert_uint_eq(c.n, 1);
    collected_free(&c);
}
END_TEST

/* A SEND of exactly `size` bytes with a body of 'z'. */
static char *make_sized_send(size_t size)
{
    const char *head = "MSRP sized123 SEND\r\nTo-Path: " BOB "\r\nFrom-Path: " ALICE
                       "\r\nContent-Type: text/plain\r\n\r\n";
    const char *tail = "\r\n-------sized123$\r\n";
    size_t fixed = strlen(head) + strlen(tail);
    ck_assert_uint_ge(size, fixed);
    char *s = malloc(size + 1);
    ck_assert_ptr_nonnull(s);
    memcpy(s, head, strlen(head));
    memset(s + strlen(head), 'z', size - fixed);
    memcpy(s + size - strlen(tail), tail, strlen(tail) + 1);
    return s;
}

START_TEST(framer_bound)
{
    struct collected c;
    char *fit = make_sized_send(1024);
    ck_assert_int_eq(run_stream((const uint8_t *)fit, 1024, 1024, 1, &c), 0);
    ck_assert_uint_eq(c.n, 1);
    ck_assert_uint_eq(c.len[0], 1024);
    collected_free(&c);
    ck_assert_int_eq(run_stream((const uint8_t *)fit, 1024, 1024, 0, &c), 0);
    collected_free(&c);
    free(fit);

    char *over = make_sized_send(1025);
    for (int mode = 0; mode <= 3; mode++) {
        ck_assert_int_eq(run_stream((const uint8_t *)over, 1025, 1024, mode, &c), -EMSGSIZE);
        ck_assert_uint_eq(c.n, 0);
    }
    free(over);

    /* Reported as soon as max_frame bytes are held without an end-line. */
    struct agw_msrp_framer f;
    const uint8_t *fr;
    size_t len, used;
    char *big = make_sized_send(5000);
    ck_assert_int_eq(agw_msrp_framer_init(&f, 1024), 0);
    ck_assert_int_eq(agw_msrp_framer_feed(&f, big, 5000, &used), 0);
    ck_assert_uint_eq(used, 1024);
    ck_assert_int_eq(agw_msrp_framer_pop(&f, &fr, &len, NULL), -EMSGSIZE);
    ck_assert_int_eq(agw_msrp_framer_feed(&f, big + used, 10, &used), -EMSGSIZE);
    agw_msrp_framer_free(&f);
    free(big);

    ck_assert_int_eq(agw_msrp_framer_init(&f, AGW_MSRP_FRAME_MAX_MIN - 1), -EINVAL);
    ck_assert_int_eq(agw_msrp_framer_init(&f, 0), 0);
    ck_assert_uint_eq(f.max_frame, AGW_MSRP_FRAME_MAX_DEFAULT);
}
END_TEST

START_TEST(framer_several_per_feed_and_backpressure)
{
    /* Frames filling the whole bound arrive in one feed; more input waits for the pops. */
    size_t one = strlen(ok_response);
    size_t max = one * 4;
    uint8_t *s = malloc(one * 5);
    ck_assert_ptr_nonnull(s);
    for (int i = 0; i < 5; i++)
        memcpy(s + (size_t)i * one, ok_response, one);
    struct agw_msrp_framer f;
    ck_assert_int_eq(agw_msrp_framer_init(&f, max), 0);
    size_t used = 0;
    ck_assert_int_eq(agw_msrp_framer_feed(&f, s, one * 5, &used), 0);
    ck_assert_uint_eq(used, max);
    size_t more = 0;
    ck_assert_int_eq(agw_msrp_framer_feed(&f, s + used, one, &more), -ENOBUFS);
    ck_assert_uint_eq(more, 0);
    struct collected c = {0};
    ck_assert_int_eq(pop_all(&f, &c), 0);
    ck_assert_uint_eq(c.n, 4);
    ck_assert_int_eq(agw_msrp_framer_trim(&f), 0);
    ck_assert_ptr_null(f.buf);
    ck_assert_int_eq(agw_msrp_framer_feed(&f, s + used, one - 3, &more), 0);
    ck_assert_int_eq(pop_all(&f, &c), 0);
    ck_assert_uint_eq(c.n, 4);
    ck_assert_int_eq(agw_msrp_framer_trim(&f), -EBUSY);
    ck_assert_int_eq(agw_msrp_framer_feed(&f, s + one * 5 - 3, 3, &more), 0);
    ck_assert_int_eq(pop_all(&f, &c), 0);
    ck_assert_uint_eq(c.n, 5);
    for (size_t i = 0; i < 5; i++)
        ck_assert_mem_eq(c.frame[i], ok_response, one);
    collected_free(&c);

    /* commit may not claim more than the space handed out. */
    uint8_t *space;
    size_t room;
    ck_assert_int_eq(agw_msrp_framer_input_space(&f, &space, &room), 0);
    ck_assert_int_eq(agw_msrp_framer_commit(&f, room + 1), -EINVAL);
    agw_msrp_framer_free(&f);
    free(s);
}
END_TEST

/* A stream of 300 random frames (requests with and without bodies, responses, chunks), fed in
   random sizes and through input_space, against a 64 KiB bound. */
START_TEST(framer_random_stream)
{
    size_t cap = 300 * 2200, len = 0;
    uint8_t *s = malloc(cap);
    ck_assert_ptr_nonnull(s);
    size_t sizes[300];
    for (int i = 0; i < 300; i++) {
        char tid[33];
        size_t tl = 4 + (size_t)(rng() % 29);
        static const char ic[] = "abcdefghijklmnopqrstuvwxyz0123456789.-+%=";
        tid[0] = 'a' + (char)(rng() % 26);
        for (size_t k = 1; k < tl; k++)
            tid[k] = ic[rng() % (sizeof(ic) - 1)];
        tid[tl] = '\0';
        int kind = (int)(rng() % 3);
        int n;
        if (kind == 0) {
            n = snprintf((char *)s + len, cap - len,
                         "MSRP %s 200 OK\r\nTo-Path: " ALICE "\r\nFrom-Path: " BOB
                         "\r\n-------%s$\r\n",
                         tid, tid);
        } else if (kind == 1) {
            n = snprintf((char *)s + len, cap - len,
                         "MSRP %s REPORT\r\nTo-Path: " ALICE "\r\nFrom-Path: " BOB
                         "\r\nByte-Range: 1-10/10\r\nStatus: 000 200 OK\r\n-------%s$\r\n",
                         tid, tid);
        } else {
            n = snprintf((char *)s + len, cap - len,
                         "MSRP %s SEND\r\nTo-Path: " BOB "\r\nFrom-Path: " ALICE
                         "\r\nContent-Type: application/octet-stream\r\n\r\n",
                         tid);
            ck_assert_int_gt(n, 0);
            size_t body = rng() % 1800;
            for (size_t k = 0; k < body; k++) {
                /* Bytes that look like framing, and the start of our own end-line. */
                uint64_t r = rng() % 16;
                s[len + (size_t)n + k] = r == 0   ? '\r'
                                         : r == 1 ? '\n'
                                         : r < 6  ? '-'
                                                  : (uint8_t)rng();
            }
            if (body > 40 && rng() % 2)
                memcpy(s + len + (size_t)n + 10, "\r\n-------", 9);
            n += (int)body;
            n += snprintf((char *)s + len + (size_t)n, cap - len - (size_t)n, "\r\n-------%s%c\r\n",
                          tid, "$+#"[rng() % 3]);
        }
        ck_assert_int_gt(n, 0);
        sizes[i] = (size_t)n;
        len += (size_t)n;
    }
    for (int mode = 0; mode <= 3; mode++) {
        struct agw_msrp_framer f;
        ck_assert_int_eq(agw_msrp_framer_init(&f, 65536), 0);
        size_t off = 0, popped = 0, at = 0;
        while (off < len) {
            size_t want = mode == 0 ? len - off : 1 + (size_t)(rng() % (mode == 1 ? 7 : 5000));
            if (want > len - off)
                want = len - off;
            size_t used = 0;
            ck_assert_int_eq(agw_msrp_framer_feed(&f, s + off, want, &used), 0);
            off += used;
            const uint8_t *fr;
            size_t flen;
            int rc;
            while ((rc = agw_msrp_framer_pop(&f, &fr, &flen, NULL)) == 1) {
                ck_assert_uint_eq(flen, sizes[popped]);
                ck_assert_mem_eq(fr, s + at, flen);
                at += flen;
                popped++;
            }
            ck_assert_int_eq(rc, 0);
        }
        ck_assert_uint_eq(popped, 300);
        agw_msrp_framer_free(&f);
    }
    free(s);
}
END_TEST

/* ---- re-chunker ---- */

/* A SEND of body_len pseudo-random bytes (CRLFs and dashes included) with the given extra
   Byte-Range header line (or none) and flag. */
static uint8_t *make_send(const char *tid, const uint8_t *body, size_t body_len,
                          const char *range_line, char flag, size_t *len_out)
{
    char head[1024];
    int hn = snprintf(head, sizeof(head),
                      "MSRP %s SEND\r\nTo-Path: " BOB "\r\nFrom-Path: " ALICE
                      "\r\nMessage-ID: msg4711x\r\nSuccess-Report: yes\r\n%s"
                      "Content-Type: application/octet-stream\r\n\r\n",
                      tid, range_line != NULL ? range_line : "");
    ck_assert_int_gt(hn, 0);
    size_t len = (size_t)hn + body_len + 2 + 7 + strlen(tid) + 1 + 2;
    uint8_t *s = malloc(len);
    ck_assert_ptr_nonnull(s);
    memcpy(s, head, (size_t)hn);
    memcpy(s + hn, body, body_len);
    size_t off = (size_t)hn + body_len;
    memcpy(s + off, "\r\n-------", 9);
    memcpy(s + off + 9, tid, strlen(tid));
    s[off + 9 + strlen(tid)] = (uint8_t)flag;
    memcpy(s + off + 10 + strlen(tid), "\r\n", 2);
    *len_out = len;
    return s;
}

static uint8_t *random_body(size_t n)
{
    uint8_t *b = malloc(n);
    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rng() % 20;
        b[i] = r == 0 ? '\r' : r == 1 ? '\n' : r < 4 ? '-' : (uint8_t)rng();
    }
    return b;
}

struct pieces {
    size_t n;
    uint8_t *data[8192];
    size_t len[8192];
};

static void pieces_free(struct pieces *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->data[i]);
    p->n = 0;
}

/* Runs the re-chunker to the end; every piece must also come out of a framer as one frame. */
static int rechunk_all(const uint8_t *frame, size_t len, size_t limit, agw_msrp_tid_fn fn,
                       void *arg, struct pieces *out)
{
    struct agw_msrp_rechunker rc;
    memset(out, 0, sizeof(*out));
    int err = agw_msrp_rechunk_init(&rc, frame, len, limit, fn, arg);
    if (err != 0)
        return err;
    for (;;) {
        uint8_t *buf = malloc(limit);
        ck_assert_ptr_nonnull(buf);
        size_t n = 0;
        err = agw_msrp_rechunk_next(&rc, buf, limit, &n);
        if (err <= 0) {
            free(buf);
            break;
        }
        ck_assert_uint_le(n, limit);
        ck_assert_uint_lt(out->n, 8192);
        struct agw_msrp_frame_info in;
        ck_assert_int_eq(agw_msrp_frame_parse(buf, n, &in), 0);
        ck_assert_uint_eq(rc.piece_tid_len, in.tid_len);
        ck_assert_mem_eq(rc.piece_tid, in.tid, in.tid_len);
        struct collected c;
        ck_assert_int_eq(run_stream(buf, n, limit, 2, &c), 0);
        ck_assert_uint_eq(c.n, 1);
        ck_assert_uint_eq(c.len[0], n);
        collected_free(&c);
        out->data[out->n] = buf;
        out->len[out->n++] = n;
    }
    if (err == 0)
        ck_assert_uint_eq(out->n, rc.pieces);
    return err;
}

static int compare_tids(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Checks the pieces against the original chunk: ids, flags, ranges, headers, bodies. */
static void check_pieces(const uint8_t *frame, size_t len, const struct pieces *p, uint64_t first,
                         uint64_t total)
{
    struct agw_msrp_frame_info orig;
    ck_assert_int_eq(agw_msrp_frame_parse(frame, len, &orig), 0);
    size_t body_at = 0;
    uint64_t next = first;
    char(*tids)[AGW_MSRP_TID_MAX + 1] = calloc(p->n, AGW_MSRP_TID_MAX + 1);
    ck_assert_ptr_nonnull(tids);
    for (size_t i = 0; i < p->n; i++) {
        struct agw_msrp_frame_info in;
        ck_assert_int_eq(agw_msrp_frame_parse(p->data[i], p->len[i], &in), 0);
        ck_assert(!in.response);
        ck_assert_mem_eq(in.method, "SEND", 4);
        ck_assert_int_eq(in.flag, i + 1 == p->n ? orig.flag : '+');
        ck_assert(in.has_body);
        ck_assert_uint_ge(in.body_len, 1);
        ck_assert_uint_le(body_at + in.body_len, orig.body_len);
        ck_assert_mem_eq(p->data[i] + in.body_off, frame + orig.body_off + body_at, in.body_len);
        body_at += in.body_len;
        ck_assert(in.has_range);
        ck_assert_uint_eq(in.range.start, next);
        ck_assert_uint_eq(in.range.end, next + in.body_len - 1);
        ck_assert_uint_eq(in.range.total, total);
        next += in.body_len;
        memset(tids[i], 0, sizeof(tids[i]));
        memcpy(tids[i], in.tid, in.tid_len);
        /* Each piece is its own transaction; the other headers travel unchanged. */
        static const char *const kept[] = {"To-Path", "From-Path", "Message-ID", "Success-Report",
                                           "Content-Type"};
        for (size_t h = 0; h < sizeof(kept) / sizeof(kept[0]); h++) {
            size_t a = 0, b = 0;
            const uint8_t *va = header_value(frame, &orig, kept[h], &a);
            const uint8_t *vb = header_value(p->data[i], &in, kept[h], &b);
            ck_assert_ptr_nonnull(vb);
            ck_assert_ptr_nonnull(va);
            ck_assert_uint_eq(a, b);
            ck_assert_mem_eq(va, vb, a);
        }
    }
    ck_assert_uint_eq(body_at, orig.body_len);
    qsort(tids, p->n, sizeof(tids[0]), compare_tids);
    for (size_t i = 1; i < p->n; i++)
        ck_assert_str_ne(tids[i - 1], tids[i]);
    free(tids);
}

START_TEST(rechunk_100k_to_16k)
{
    size_t body_len = 100 * 1024, len = 0;
    uint8_t *body = random_body(body_len);
    uint8_t *frame =
        make_send("a786hjs2", body, body_len, "Byte-Range: 1-102400/102400\r\n", '$', &len);
    struct pieces p;
    ck_assert_int_eq(rechunk_all(frame, len, 16384, NULL, NULL, &p), 0);
    ck_assert_uint_eq(p.n, 7);
    check_pieces(frame, len, &p, 1, 102400);
    for (size_t i = 0; i < p.n; i++) {
        struct agw_msrp_frame_info in;
        ck_assert_int_eq(agw_msrp_frame_parse(p.data[i], p.len[i], &in), 0);
        char want[40];
        snprintf(want, sizeof(want), "a786hjs2.%zu", i);
        ck_assert_uint_eq(in.tid_len, strlen(want));
        ck_assert_mem_eq(in.tid, want, in.tid_len);
        if (i + 1 < p.n) /* only the last piece is short */
            ck_assert_uint_ge(p.len[i], 16384 - 2 * AGW_MSRP_TID_MAX);
    }
    /* The Byte-Range line is rewritten where it was. */
    const char *expect = "MSRP a786hjs2.1 SEND\r\nTo-Path: " BOB "\r\nFrom-Path: " ALICE
                         "\r\nMessage-ID: msg4711x\r\nSuccess-Report: yes\r\nByte-Range: ";
    ck_assert_mem_eq(p.data[1], expect, strlen(expect));
    pieces_free(&p);
    free(frame);
    free(body);
}
END_TEST

START_TEST(rechunk_keeps_continuation_and_abort)
{
    size_t body_len = 70000, len = 0;
    uint8_t *body = random_body(body_len);
    uint8_t *frame =
        make_send("qwe5tzu7", body, body_len, "Byte-Range: 50001-*/300000\r\n", '+', &len);
    struct pieces p;
    ck_assert_int_eq(rechunk_all(frame, len, 16384, NULL, NULL, &p), 0);
    ck_assert_uint_eq(p.n, 5);
    check_pieces(frame, len, &p, 50001, 300000);
    struct agw_msrp_frame_info last;
    ck_assert_int_eq(agw_msrp_frame_parse(p.data[p.n - 1], p.len[p.n - 1], &last), 0);
    ck_assert_int_eq(last.flag, '+');
    ck_assert_uint_eq(last.range.end, 120000);
    pieces_free(&p);
    free(frame);

    frame = make_send("qwe5tzu7", body, body_len, "Byte-Range: 1-*/*\r\n", '#', &len);
    ck_assert_int_eq(rechunk_all(frame, len, 20000, NULL, NULL, &p), 0);
    check_pieces(frame, len, &p, 1, AGW_MSRP_RANGE_UNKNOWN);
    pieces_free(&p);
    free(frame);
    free(body);
}
END_TEST

START_TEST(rechunk_adds_byte_range)
{
    size_t body_len = 40000, len = 0;
    uint8_t *body = random_body(body_len);
    uint8_t *frame = make_send("nobr1234", body, body_len, NULL, '$', &len);
    struct pieces p;
    ck_assert_int_eq(rechunk_all(frame, len, 16384, NULL, NULL, &p), 0);
    ck_assert_uint_eq(p.n, 3);
    check_pieces(frame, len, &p, 1, 40000);
    /* Added after the other headers, before the MIME ones (content-stuff comes last). */
    const char *expect = "MSRP nobr1234.0 SEND\r\nTo-Path: " BOB "\r\nFrom-Path: " ALICE
                         "\r\nMessage-ID: msg4711x\r\nSuccess-Report: yes\r\n"
                         "Byte-Range: 1-";
    ck_assert_mem_eq(p.data[0], expect, strlen(expect));
    pieces_free(&p);
    free(frame);

    /* Without a Byte-Range a '+' chunk's total is unknown. */
    frame = make_send("nobr1234", body, body_len, NULL, '+', &len);
    ck_assert_int_eq(rechunk_all(frame, len, 16384, NULL, NULL, &p), 0);
    check_pieces(frame, len, &p, 1, AGW_MSRP_RANGE_UNKNOWN);
    pieces_free(&p);
    free(frame);
    free(body);
}
END_TEST

START_TEST(rechunk_passthrough_and_refusals)
{
    struct pieces p;
    /* Anything that fits goes out byte for byte, transaction id included. */
    static const char *const fits[] = {send_text, ok_response, report, send_empty, send_decoys};
    for (size_t i = 0; i < sizeof(fits) / sizeof(fits[0]); i++) {
        size_t n = strlen(fits[i]);
        ck_assert_int_eq(rechunk_all((const uint8_t *)fits[i], n, n, NULL, NULL, &p), 0);
        ck_assert_uint_eq(p.n, 1);
        ck_assert_uint_eq(p.len[0], n);
        ck_assert_mem_eq(p.data[0], fits[i], n);
        pieces_free(&p);
    }
    /* Responses, REPORTs and body-less requests cannot be split. */
    static const char *const whole[] = {ok_response, report, send_empty};
    for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++) {
        size_t n = strlen(whole[i]);
        ck_assert_int_eq(rechunk_all((const uint8_t *)whole[i], n, n - 1, NULL, NULL, &p),
                         -EMSGSIZE);
    }
    /* A limit too small for the headers and one byte of body. */
    size_t len = 0;
    uint8_t *body = random_body(5000);
    uint8_t *frame = make_send("small123", body, 5000, "Byte-Range: 1-5000/5000\r\n", '$', &len);
    ck_assert_int_eq(rechunk_all(frame, len, 200, NULL, NULL, &p), -EMSGSIZE);
    /* The smallest workable limit gives one body byte per piece. */
    size_t limit = 200;
    struct agw_msrp_rechunker rc;
    while (agw_msrp_rechunk_init(&rc, frame, len, limit, NULL, NULL) == -EMSGSIZE)
        limit++;
    ck_assert_uint_eq(rc.payload, 1);
    ck_assert_uint_eq(rc.pieces, 5000);
    ck_assert_int_eq(rechunk_all(frame, len, limit, NULL, NULL, &p), 0);
    check_pieces(frame, len, &p, 1, 5000);
    pieces_free(&p);
    free(frame);

    /* A Byte-Range whose total the body overruns; a malformed frame. */
    frame = make_send("small123", body, 5000, "Byte-Range: 1-*/100\r\n", '$', &len);
    ck_assert_int_eq(rechunk_all(frame, len, 1000, NULL, NULL, &p), -EPROTO);
    free(frame);
    ck_assert_int_eq(
        rechunk_all((const uint8_t *)malformed[1], strlen(malformed[1]), 1000, NULL, NULL, &p),
        -EPROTO);
    ck_assert_int_eq(agw_msrp_rechunk_init(&rc, NULL, 10, 100, NULL, NULL), -EINVAL);
    /* A limit of 0 is no limit. */
    size_t big_len = 0;
    uint8_t *big = make_send("nolimit1", body, 5000, NULL, '$', &big_len);
    ck_assert_int_eq(agw_msrp_rechunk_init(&rc, big, big_len, 0, NULL, NULL), 0);
    ck_assert(rc.passthrough);
    ck_assert_uint_eq(rc.pieces, 1);
    free(big);
    free(body);
}
END_TEST

START_TEST(rechunk_long_tid)
{
    const char *tid = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"; /* 32, the most allowed */
    size_t len = 0, body_len = 300000;
    uint8_t *body = random_body(body_len);
    uint8_t *frame = make_send(tid, body, body_len, NULL, '$', &len);
    struct pieces p;
    ck_assert_int_eq(rechunk_all(frame, len, 8192, NULL, NULL, &p), 0);
    ck_assert_uint_ge(p.n, 37);
    check_pieces(frame, len, &p, 1, 300000);
    struct agw_msrp_frame_info in;
    ck_assert_int_eq(agw_msrp_frame_parse(p.data[36], p.len[36], &in), 0);
    ck_assert_uint_eq(in.tid_len, 32);
    ck_assert_mem_eq(in.tid, "ABCDEFGHIJKLMNOPQRSTUVWXYZ012.36", 32);
    pieces_free(&p);
    free(frame);
    free(body);
}
END_TEST

START_TEST(rechunk_avoids_end_line_in_body)
{
    /* Piece 0's body holds the end-lines of its first two candidate ids. */
    size_t body_len = 30000, len = 0;
    uint8_t *body = random_body(body_len);
    memcpy(body + 100, "-------abcdefgh.0$", 18);
    memcpy(body + 5000, "\r\n-------abcdefgh.0-1+\r\n", 24);
    uint8_t *frame = make_send("abcdefgh", body, body_len, NULL, '$', &len);
    struct pieces p;
    ck_assert_int_eq(rechunk_all(frame, len, 16384, NULL, NULL, &p), 0);
    check_pieces(frame, len, &p, 1, 30000);
    struct agw_msrp_frame_info in;
    ck_assert_int_eq(agw_msrp_frame_parse(p.data[0], p.len[0], &in), 0);
    ck_assert_uint_eq(in.tid_len, 12);
    ck_assert_mem_eq(in.tid, "abcdefgh.0-2", 12);
    ck_assert_int_eq(agw_msrp_frame_parse(p.data[1], p.len[1], &in), 0);
    ck_assert_mem_eq(in.tid, "abcdefgh.1", 10);
    pieces_free(&p);
    free(frame);

    /* Every candidate taken: the piece cannot be named. */
    char decoy[32];
    for (int a = 1; a < 8; a++) {
        int n = snprintf(decoy, sizeof(decoy), "-------abcdefgh.0-%d#", a);
        memcpy(body + 200 + 40 * (size_t)a, decoy, (size_t)n);
    }
    frame = make_send("abcdefgh", body, body_len, NULL, '$', &len);
    ck_assert_int_eq(rechunk_all(frame, len, 16384, NULL, NULL, &p), -EEXIST);
    pieces_free(&p);
    free(frame);
    free(body);
}
END_TEST

static int counter_tid(void *arg, const uint8_t *orig, size_t orig_len, unsigned index,
                       unsigned attempt, char *out, size_t *out_len)
{
    (void)orig;
    (void)orig_len;
    (void)index;
    (void)attempt;
    unsigned *next = arg;
    int n = snprintf(out, AGW_MSRP_TID_MAX, "gw%08u", (*next)++);
    *out_len = (size_t)n;
    return 0;
}

static int short_tid(void *arg, const uint8_t *orig, size_t orig_len, unsigned index,
                     unsigned attempt, char *out, size_t *out_len)
{
    (void)arg;
    (void)orig;
    (void)orig_len;
    (void)index;
    (void)attempt;
    memcpy(out, "abc", 3);
    *out_len = 3;
    return 0;
}

static int failing_tid(void *arg, const uint8_t *orig, size_t orig_len, unsigned index,
                       unsigned attempt, char *out, size_t *out_len)
{
    (void)arg;
    (void)orig;
    (void)orig_len;
    (void)index;
    (void)attempt;
    (void)out;
    (void)out_len;
    return -EAGAIN;
}

START_TEST(rechunk_tid_generator_and_nospc)
{
    size_t len = 0, body_len = 50000;
    uint8_t *body = random_body(body_len);
    uint8_t *frame = make_send("orig1234", body, body_len, NULL, '$', &len);
    unsigned next = 7;
    struct pieces p;
    ck_assert_int_eq(rechunk_all(frame, len, 16384, counter_tid, &next, &p), 0);
    check_pieces(frame, len, &p, 1, 50000);
    ck_assert_uint_ge(p.n, 4);
    ck_assert_mem_eq(p.data[0], "MSRP gw00000007 SEND\r\n", 22);
    ck_assert_mem_eq(p.data[3], "MSRP gw00000010 SEND\r\n", 22);
    pieces_free(&p);
    ck_assert_int_eq(rechunk_all(frame, len, 16384, short_tid, NULL, &p), -EINVAL);
    ck_assert_int_eq(rechunk_all(frame, len, 16384, failing_tid, NULL, &p), -EAGAIN);

    /* A buffer too small consumes nothing. */
    struct agw_msrp_rechunker rc;
    ck_assert_int_eq(agw_msrp_rechunk_init(&rc, frame, len, 16384, NULL, NULL), 0);
    uint8_t *buf = malloc(16384);
    ck_assert_ptr_nonnull(buf);
    size_t n = 0;
    ck_assert_int_eq(agw_msrp_rechunk_next(&rc, buf, 1000, &n), -ENOSPC);
    ck_assert_int_eq(agw_msrp_rechunk_next(&rc, buf, 16384, &n), 1);
    ck_assert_mem_eq(buf, "MSRP orig1234.0 SEND\r\n", 22);
    for (int i = 1; i < 4; i++)
        ck_assert_int_eq(agw_msrp_rechunk_next(&rc, buf, 16384, &n), 1);
    ck_assert_int_eq(agw_msrp_rechunk_next(&rc, buf, 16384, &n), 0);
    ck_assert_int_eq(agw_msrp_rechunk_next(&rc, buf, 16384, &n), 0);

    ck_assert_int_eq(
        agw_msrp_rechunk_init(&rc, (const uint8_t *)send_text, strlen(send_text), 4096, NULL, NULL),
        0);
    ck_assert_int_eq(agw_msrp_rechunk_next(&rc, buf, 10, &n), -ENOSPC);
    ck_assert_int_eq(agw_msrp_rechunk_next(&rc, buf, 4096, &n), 1);
    ck_assert_uint_eq(n, strlen(send_text));
    free(buf);
    free(frame);
    free(body);
}
END_TEST

static int retid(const char *frame, const char *tid, uint8_t *out, size_t cap, size_t *n)
{
    return agw_msrp_frame_retid((const uint8_t *)frame, strlen(frame), (const uint8_t *)tid,
                                strlen(tid), out, cap, n);
}

START_TEST(retid_frames)
{
    uint8_t out[1024], back[1024];
    size_t n = 0, m = 0;
    /* The UE answers piece a786hjs2.3; the core hears about a786hjs2. */
    char piece_ok[512];
    snprintf(piece_ok, sizeof(piece_ok),
             "MSRP a786hjs2.3 200 OK\r\nTo-Path: " ALICE "\r\nFrom-Path: " BOB
             "\r\n-------a786hjs2.3$\r\n");
    ck_assert_int_eq(retid(piece_ok, "a786hjs2", out, sizeof(out), &n), 0);
    ck_assert_uint_eq(n, strlen(ok_response));
    ck_assert_mem_eq(out, ok_response, n);
    ck_assert_int_eq(
        agw_msrp_frame_retid(out, n, (const uint8_t *)"a786hjs2.3", 10, back, sizeof(back), &m), 0);
    ck_assert_uint_eq(m, strlen(piece_ok));
    ck_assert_mem_eq(back, piece_ok, m);

    /* A request keeps its headers and body. */
    ck_assert_int_eq(retid(send_text, "Zz9-x.y+%=", out, sizeof(out), &n), 0);
    struct agw_msrp_frame_info a = parse_ok(send_text), b;
    ck_assert_int_eq(agw_msrp_frame_parse(out, n, &b), 0);
    ck_assert_mem_eq(b.tid, "Zz9-x.y+%=", 10);
    ck_assert_int_eq(b.flag, '$');
    ck_assert_uint_eq(b.body_len, a.body_len);
    ck_assert_mem_eq(out + b.body_off, send_text + a.body_off, a.body_len);
    ck_assert_uint_eq(b.headers_len, a.headers_len);
    ck_assert_mem_eq(out + b.headers_off, send_text + a.headers_off, a.headers_len);

    /* The decoy body holds "-------d3c0yT1$": that id cannot frame it. */
    ck_assert_int_eq(retid(send_decoys, "d3c0yT1", out, sizeof(out), &n), -EEXIST);
    ck_assert_int_eq(retid(send_decoys, "d3c0yT2", out, sizeof(out), &n), 0);
    ck_assert_int_eq(retid(send_text, "abc", out, sizeof(out), &n), -EINVAL);
    ck_assert_int_eq(retid(send_text, "-abc", out, sizeof(out), &n), -EINVAL);
    ck_assert_int_eq(retid(malformed[6], "abcd", out, sizeof(out), &n), -EPROTO);
    ck_assert_int_eq(retid(ok_response, "abcd", out, strlen(ok_response) - 9, &n), -ENOSPC);
    ck_assert_int_eq(retid(ok_response, "abcd", out, strlen(ok_response) - 8, &n), 0);
}
END_TEST

/* Every file of the fuzz corpus goes through the framer whole and byte by byte alike. */
START_TEST(fuzz_corpus_replay)
{
    static const char *const seeds[] = {"send-text", "response-200", "report",     "decoys",
                                        "stream",    "empty-send",   "chunk-plus", "big-send",
                                        "long-tid",  "conflict"};
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        char path[256];
        snprintf(path, sizeof(path), "tests/fuzz/corpus/msrp_frame/%s", seeds[i]);
        FILE *fp = fopen(path, "rb");
        ck_assert_msg(fp != NULL, "cannot open %s", path);
        uint8_t data[8192];
        size_t n = fread(data, 1, sizeof(data), fp);
        fclose(fp);
        ck_assert_uint_gt(n, 4);
        /* The harness reads two control bytes, then the stream. */
        struct collected a, b;
        int ra = run_stream(data + 2, n - 2, 0, 0, &a);
        int rb = run_stream(data + 2, n - 2, 0, 1, &b);
        ck_assert_int_eq(ra, 0);
        ck_assert_int_eq(rb, 0);
        ck_assert_uint_eq(a.n, b.n);
        ck_assert_uint_ge(a.n, 1);
        collected_free(&a);
        collected_free(&b);
    }
}
END_TEST

static Suite *msrp_frame_suite(void)
{
    Suite *s = suite_create("msrp_frame");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, parse_send);
    tcase_add_test(tc, parse_response_and_report);
    tcase_add_test(tc, parse_byte_range);
    tcase_add_test(tc, parse_malformed);
    suite_add_tcase(s, tc);

    tc = tcase_create("framer");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, framer_splits_equal_whole);
    tcase_add_test(tc, framer_every_split_point);
    tcase_add_test(tc, framer_garbage_fails_early);
    tcase_add_test(tc, framer_bound);
    tcase_add_test(tc, framer_several_per_feed_and_backpressure);
    tcase_add_test(tc, framer_random_stream);
    tcase_add_test(tc, fuzz_corpus_replay);
    suite_add_tcase(s, tc);

    tc = tcase_create("rechunk");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, rechunk_100k_to_16k);
    tcase_add_test(tc, rechunk_keeps_continuation_and_abort);
    tcase_add_test(tc, rechunk_adds_byte_range);
    tcase_add_test(tc, rechunk_passthrough_and_refusals);
    tcase_add_test(tc, rechunk_long_tid);
    tcase_add_test(tc, rechunk_avoids_end_line_in_body);
    tcase_add_test(tc, rechunk_tid_generator_and_nospc);
    tcase_add_test(tc, retid_frames);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(msrp_frame_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
