/* libFuzzer harness for agw/msrp_frame.c: a byte stream through the framer whole and in pieces
   (same frames, same end), every frame through the parser and the re-chunker with a random
   limit (pieces fit, reframe alone, carry the body in order with contiguous Byte-Ranges).
   Input: a split seed byte, a limit byte, then the stream. */
#include "agw/msrp_frame.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FRAMES 256

static void fail(const char *what, size_t size)
{
    fprintf(stderr, "fuzz_msrp_frame: %s (input of %zu bytes)\n", what, size);
    abort();
}

struct run {
    size_t n;
    size_t off[MAX_FRAMES]; /* frames are copied in order into one buffer */
    size_t len[MAX_FRAMES];
    uint8_t *bytes;
    size_t used;
    int err;
    size_t leftover; /* bytes held as a partial frame at the end */
};

static uint32_t next_rand(uint32_t *state)
{
    *state = *state * 1103515245u + 12345u;
    return *state >> 8;
}

/* Feeds s to a framer: all at once (seed 0) or in sizes drawn from seed, through feed or
   input_space/commit. Records each frame and the stream's end. */
static void run_framer(const uint8_t *s, size_t n, size_t max_frame, uint32_t seed, struct run *r,
                       size_t size)
{
    struct agw_msrp_framer f;
    if (agw_msrp_framer_init(&f, max_frame) != 0)
        fail("init", size);
    uint8_t *bytes = r->bytes;
    memset(r, 0, sizeof(*r));
    r->bytes = bytes;
    size_t off = 0;
    int rc = 0;
    uint32_t st = seed;
    while (rc == 0) {
        const uint8_t *fr;
        size_t len;
        struct agw_msrp_frame_info info;
        while ((rc = agw_msrp_framer_pop(&f, &fr, &len, (st & 1) ? &info : NULL)) == 1) {
            if (len == 0 || len > max_frame || r->n == MAX_FRAMES)
                fail("frame size or count", size);
            struct agw_msrp_frame_info again;
            if (agw_msrp_frame_parse(fr, len, &again) != 0)
                fail("popped frame does not parse", size);
            if ((st & 1) &&
                (info.body_len != again.body_len || info.flag != again.flag || info.tid != fr + 5))
                fail("pop info differs from parse", size);
            memcpy(r->bytes + r->used, fr, len);
            r->off[r->n] = r->used;
            r->len[r->n++] = len;
            r->used += len;
        }
        if (rc != 0 || off == n)
            break;
        size_t want = seed == 0 ? n - off : 1 + next_rand(&st) % 64;
        if (want > n - off)
            want = n - off;
        size_t got = 0;
        if (seed != 0 && (next_rand(&st) & 1)) {
            uint8_t *space;
            size_t room;
            rc = agw_msrp_framer_input_space(&f, &space, &room);
            if (rc != 0)
                break;
            if (room == 0)
                fail("no room after pop returned 0", size);
            got = want < room ? want : room;
            memcpy(space, s + off, got);
            if (agw_msrp_framer_commit(&f, got) != 0)
                fail("commit", size);
        } else {
            rc = agw_msrp_framer_feed(&f, s + off, want, &got);
            if (rc != 0)
                break;
            if (got == 0)
                fail("feed took nothing after pop returned 0", size);
        }
        off += got;
    }
    if (rc == -ENOBUFS || (rc != 0 && rc != -EPROTO && rc != -EMSGSIZE))
        fail("unexpected stream error", size);
    r->err = rc;
    r->leftover = rc == 0 ? f.len - f.head : 0;
    if (rc == 0 && r->leftover >= max_frame)
        fail("a full buffer left without an error", size);
    agw_msrp_framer_free(&f);
}

/* Gives the frame another transaction id: same frame otherwise, still one frame. */
static void check_retid(const uint8_t *fr, size_t len, size_t size)
{
    static const uint8_t tid[] = "fz0retid";
    struct agw_msrp_frame_info a, b;
    if (agw_msrp_frame_parse(fr, len, &a) != 0)
        fail("frame does not parse", size);
    size_t cap = len + 2 * AGW_MSRP_TID_MAX, n = 0;
    uint8_t *out = malloc(cap);
    if (out == NULL)
        abort();
    int err = agw_msrp_frame_retid(fr, len, tid, 8, out, cap, &n);
    if (err == 0) {
        if (n != len - 2 * a.tid_len + 16 || agw_msrp_frame_parse(out, n, &b) != 0 ||
            b.tid_len != 8 || memcmp(b.tid, tid, 8) != 0 || b.flag != a.flag ||
            b.body_len != a.body_len || b.headers_len != a.headers_len ||
            memcmp(out + b.headers_off, fr + a.headers_off, a.headers_len) != 0 ||
            memcmp(out + b.body_off, fr + a.body_off, a.body_len) != 0)
            fail("retid changed more than the id", size);
    } else if (err != -EEXIST || !a.has_body) {
        fail("retid refused a frame", size);
    }
    free(out);
}

/* Re-chunks one frame to limit and checks every piece against it. */
static void check_rechunk(const uint8_t *fr, size_t len, size_t limit, size_t size)
{
    struct agw_msrp_frame_info orig;
    if (agw_msrp_frame_parse(fr, len, &orig) != 0)
        fail("frame does not parse", size);
    struct agw_msrp_rechunker rc;
    int err = agw_msrp_rechunk_init(&rc, fr, len, limit, NULL, NULL);
    if (err != 0) {
        if (err == -EMSGSIZE && len > limit)
            return;
        if (err == -EPROTO && orig.has_range && orig.range.total != AGW_MSRP_RANGE_UNKNOWN)
            return; /* the body overruns the announced total */
        fail("rechunk init refused a frame", size);
    }
    if (len <= limit && !rc.passthrough)
        fail("a fitting frame is not passed through", size);
    uint8_t *buf = malloc(limit);
    if (buf == NULL)
        abort();
    size_t pieces = 0, body_at = 0;
    uint64_t next = orig.has_range ? orig.range.start : 1;
    for (;;) {
        size_t n = 0;
        err = agw_msrp_rechunk_next(&rc, buf, limit, &n);
        if (err == 0)
            break;
        if (err == -EEXIST && !rc.passthrough)
            break; /* a body crafted to hold every candidate id's end-line */
        if (err != 1)
            fail("rechunk next failed", size);
        pieces++;
        if (n > limit)
            fail("piece over the limit", size);
        if (rc.passthrough) {
            if (n != len || memcmp(buf, fr, len) != 0)
                fail("passthrough changed the frame", size);
            continue;
        }
        struct agw_msrp_frame_info in;
        if (agw_msrp_frame_parse(buf, n, &in) != 0)
            fail("piece does not parse", size);
        if (rc.piece_tid_len != in.tid_len || memcmp(rc.piece_tid, in.tid, in.tid_len) != 0)
            fail("piece_tid is not the piece's id", size);
        /* The piece alone, through a framer, is exactly one frame. */
        struct agw_msrp_framer f;
        const uint8_t *pf;
        size_t plen, used;
        if (agw_msrp_framer_init(&f, limit < AGW_MSRP_FRAME_MAX_MIN ? AGW_MSRP_FRAME_MAX_MIN
                                                                    : limit) != 0 ||
            agw_msrp_framer_feed(&f, buf, n, &used) != 0 || used != n ||
            agw_msrp_framer_pop(&f, &pf, &plen, NULL) != 1 || plen != n ||
            agw_msrp_framer_pop(&f, &pf, &plen, NULL) != 0)
            fail("piece does not reframe", size);
        agw_msrp_framer_free(&f);
        if (in.response || in.method_len != 4 || memcmp(in.method, "SEND", 4) != 0)
            fail("piece is not a SEND", size);
        bool last = rc.finished;
        if (in.flag != (last ? orig.flag : '+'))
            fail("piece flag", size);
        if (!in.has_body || in.body_len == 0 || body_at + in.body_len > orig.body_len ||
            memcmp(buf + in.body_off, fr + orig.body_off + body_at, in.body_len) != 0)
            fail("piece body", size);
        body_at += in.body_len;
        if (!in.has_range || in.range.start != next || in.range.end != next + in.body_len - 1)
            fail("piece range", size);
        uint64_t total = orig.has_range     ? orig.range.total
                         : orig.flag == '$' ? orig.body_len
                                            : AGW_MSRP_RANGE_UNKNOWN;
        if (in.range.total != total)
            fail("piece total", size);
        next += in.body_len;
    }
    if (err == 0 && pieces != rc.pieces)
        fail("piece count", size);
    if (err == 0 && !rc.passthrough && body_at != orig.body_len)
        fail("body not covered", size);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t seed = data[0];
    uint8_t limit_sel = data[1];
    const uint8_t *s = data + 2;
    size_t n = size - 2;
    /* A bound small enough for the oversize path to be reached. */
    size_t max_frame = AGW_MSRP_FRAME_MAX_MIN + (size_t)(seed >> 4) * 700;

    struct run whole, parts;
    whole.bytes = malloc(n + 1);
    parts.bytes = malloc(n + 1);
    if (whole.bytes == NULL || parts.bytes == NULL)
        abort();
    run_framer(s, n, max_frame, 0, &whole, size);
    run_framer(s, n, max_frame, seed | 0x100, &parts, size);
    if (whole.n != parts.n || whole.used != parts.used || whole.err != parts.err ||
        whole.leftover != parts.leftover || memcmp(whole.bytes, parts.bytes, whole.used) != 0)
        fail("split feeding differs from whole feeding", size);
    /* Frames are the stream's prefix, in order. */
    if (whole.used > n || memcmp(whole.bytes, s, whole.used) != 0)
        fail("frames are not the stream", size);
    if (whole.err == 0 && whole.used + whole.leftover != n)
        fail("bytes lost", size);

    for (size_t i = 0; i < whole.n; i++) {
        size_t len = whole.len[i];
        size_t limit = 1 + ((size_t)limit_sel * (len + 64)) / 255;
        check_rechunk(whole.bytes + whole.off[i], len, limit, size);
        check_retid(whole.bytes + whole.off[i], len, size);
    }

    /* The standalone parsers read only what they are given. */
    struct agw_msrp_frame_info info;
    int rc = agw_msrp_frame_parse(s, n, &info);
    if (rc == 0 && (whole.err != 0 || whole.n != 1 || whole.used != n) && n <= max_frame)
        fail("parser and framer disagree on a whole frame", size);
    struct agw_msrp_byte_range br;
    if (agw_msrp_byte_range_parse((const char *)s, n, &br) == 0 &&
        (br.start == 0 || (br.end != AGW_MSRP_RANGE_UNKNOWN && br.end + 1 < br.start)))
        fail("byte range accepted out of order", size);

    free(whole.bytes);
    free(parts.bytes);
    return 0;
}
