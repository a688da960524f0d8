/* MSRP framing: frame parser, TCP stream framer and data-channel re-chunker (RFC 4975, 8873). */
#include "agw/msrp_frame.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define END_DASHES "-------"
#define END_DASHES_LEN 7
#define FRAMER_FIRST_CAP 4096
#define FRAMER_MIN_READ 4096 /* grow rather than hand out a sliver of space */
#define TID_ATTEMPTS 8
#define RANGE_DIGITS_MAX 19 /* keeps every number below UINT64_MAX, the "*" marker */

/* ---- characters ---- */

static bool is_alnum(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_ident_char(uint8_t c)
{
    return is_alnum(c) || c == '.' || c == '-' || c == '+' || c == '%' || c == '=';
}

/* RFC 4975 §9 token: visible ASCII less the separators; excludes ':' so it ends a name. */
static bool is_token_char(uint8_t c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x27) || c == 0x2A || c == 0x2B || c == 0x2D ||
           c == 0x2E || (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) ||
           (c >= 0x5E && c <= 0x7E);
}

/* Header values and comments: UTF-8 text, no control characters but HTAB. */
static bool is_text_char(uint8_t c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7F);
}

static bool is_flag(uint8_t c)
{
    return c == '$' || c == '+' || c == '#';
}

static bool ident_valid(const uint8_t *s, size_t n)
{
    if (n < AGW_MSRP_TID_MIN || n > AGW_MSRP_TID_MAX || !is_alnum(s[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!is_ident_char(s[i]))
            return false;
    return true;
}

/* ABNF literals are case-insensitive (RFC 5234 §2.3), header names included. */
static bool name_is(const uint8_t *s, size_t n, const char *lit)
{
    size_t i = 0;
    for (; i < n && lit[i] != '\0'; i++) {
        uint8_t a = s[i], b = (uint8_t)lit[i];
        if (a >= 'A' && a <= 'Z')
            a = (uint8_t)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (uint8_t)(b - 'A' + 'a');
        if (a != b)
            return false;
    }
    return i == n && lit[i] == '\0';
}

static bool name_has_prefix(const uint8_t *s, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    return n >= k && name_is(s, k, lit);
}

/* The end-line with the CRLF before it: CRLF "-------" tid flag CRLF. */
static size_t end_line_len(size_t tid_len)
{
    return 2 + END_DASHES_LEN + tid_len + 1 + 2;
}

/* Searches p[from..n) for CRLF "-------" tid flag CRLF. 1 and *at = offset of its first CR;
   0 when absent so far, *at = where a search with more bytes must resume. */
static int find_end_line(const uint8_t *p, size_t n, size_t from, const uint8_t *tid,
                         size_t tid_len, size_t *at)
{
    size_t need = end_line_len(tid_len);
    size_t i = from;
    while (i < n) {
        const uint8_t *cr = memchr(p + i, '\r', n - i);
        if (cr == NULL)
            break;
        size_t j = (size_t)(cr - p);
        if (n - j < need) {
            *at = j;
            return 0;
        }
        const uint8_t *q = p + j;
        if (q[1] == '\n' && memcmp(q + 2, END_DASHES, END_DASHES_LEN) == 0 &&
            memcmp(q + 2 + END_DASHES_LEN, tid, tid_len) == 0 &&
            is_flag(q[2 + END_DASHES_LEN + tid_len]) && q[need - 2] == '\r' &&
            q[need - 1] == '\n') {
            *at = j;
            return 1;
        }
        i = j + 1;
    }
    *at = n;
    return 0;
}

/* True when "-------" tid flag occurs anywhere in p[0..n): RFC 4975 §7.1 forbids it in a body. */
static bool body_has_end_line(const uint8_t *p, size_t n, const char *tid, size_t tid_len)
{
    size_t need = END_DASHES_LEN + tid_len + 1;
    for (size_t i = 0; n - i >= need;) {
        const uint8_t *d = memchr(p + i, '-', n - i - need + 1);
        if (d == NULL)
            return false;
        size_t j = (size_t)(d - p);
        if (memcmp(d, END_DASHES, END_DASHES_LEN) == 0 &&
            memcmp(d + END_DASHES_LEN, tid, tid_len) == 0 && is_flag(d[need - 1]))
            return true;
        i = j + 1;
    }
    return false;
}

/* ---- parsing ---- */

static int parse_number(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > RANGE_DIGITS_MAX)
        return -EPROTO;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EPROTO;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

static int parse_number_or_star(const char *s, size_t n, uint64_t *out)
{
    if (n == 1 && s[0] == '*') {
        *out = AGW_MSRP_RANGE_UNKNOWN;
        return 0;
    }
    return parse_number(s, n, out);
}

int agw_msrp_byte_range_parse(const char *value, size_t len, struct agw_msrp_byte_range *out)
{
    if (value == NULL || out == NULL)
        return -EPROTO;
    const char *dash = memchr(value, '-', len);
    if (dash == NULL)
        return -EPROTO;
    size_t start_len = (size_t)(dash - value);
    const char *rest = dash + 1;
    size_t rest_len = len - start_len - 1;
    const char *slash = memchr(rest, '/', rest_len);
    if (slash == NULL)
        return -EPROTO;
    size_t end_len = (size_t)(slash - rest);
    struct agw_msrp_byte_range r;
    if (parse_number(value, start_len, &r.start) != 0 ||
        parse_number_or_star(rest, end_len, &r.end) != 0 ||
        parse_number_or_star(slash + 1, rest_len - end_len - 1, &r.total) != 0)
        return -EPROTO;
    /* An empty chunk is start-(start-1); nothing may lie past a known total. */
    if (r.start == 0)
        return -EPROTO;
    if (r.end != AGW_MSRP_RANGE_UNKNOWN && r.end < r.start - 1)
        return -EPROTO;
    if (r.total != AGW_MSRP_RANGE_UNKNOWN &&
        (r.start - 1 > r.total || (r.end != AGW_MSRP_RANGE_UNKNOWN && r.end > r.total)))
        return -EPROTO;
    *out = r;
    return 0;
}

/* "MSRP" SP transact-id SP (method / status-code [SP comment]), n bytes without the CRLF. */
static int parse_start_line(const uint8_t *p, size_t n, struct agw_msrp_frame_info *out)
{
    if (n < 5 || memcmp(p, "MSRP ", 5) != 0)
        return -EPROTO;
    size_t i = 5, t = i;
    while (i < n && p[i] != ' ')
        i++;
    if (i == n || !ident_valid(p + t, i - t))
        return -EPROTO;
    out->tid = p + t;
    out->tid_len = i - t;
    i++;
    size_t w = i;
    while (i < n && p[i] != ' ')
        i++;
    const uint8_t *word = p + w;
    size_t word_len = i - w;
    if (word_len == 3 && word[0] >= '0' && word[0] <= '9' && word[1] >= '0' && word[1] <= '9' &&
        word[2] >= '0' && word[2] <= '9') {
        out->response = true;
        out->status = (unsigned)(word[0] - '0') * 100 + (unsigned)(word[1] - '0') * 10 +
                      (unsigned)(word[2] - '0');
        for (size_t k = i; k < n; k++)
            if (!is_text_char(p[k]))
                return -EPROTO;
        return 0;
    }
    if (word_len == 0 || i != n)
        return -EPROTO;
    for (size_t k = 0; k < word_len; k++)
        if (word[k] < 'A' || word[k] > 'Z')
            return -EPROTO;
    out->method = word;
    out->method_len = word_len;
    return 0;
}

/* Finds and parses the start line in the first n bytes of a frame. 1 with *line_end (past its
   CRLF); 0 when it may still be incomplete; -EPROTO. Checks what it can of a partial line so
   that a stream of garbage fails early. */
static int parse_start(const uint8_t *p, size_t n, struct agw_msrp_frame_info *out,
                       size_t *line_end)
{
    size_t k = n < 5 ? n : 5;
    if (memcmp(p, "MSRP ", k) != 0)
        return -EPROTO;
    size_t lim = n < AGW_MSRP_START_LINE_MAX ? n : AGW_MSRP_START_LINE_MAX;
    const uint8_t *lf = memchr(p, '\n', lim);
    if (lf == NULL)
        return lim == AGW_MSRP_START_LINE_MAX ? -EPROTO : 0;
    size_t le = (size_t)(lf - p) + 1;
    if (le < 2 || p[le - 2] != '\r')
        return -EPROTO;
    int rc = parse_start_line(p, le - 2, out);
    if (rc != 0)
        return rc;
    *line_end = le;
    return 1;
}

/* One header line (no CRLF): hname ":" value. Records what the frame's users need. */
static int parse_header_line(const uint8_t *p, size_t n, struct agw_msrp_frame_info *out,
                             unsigned *to_count, unsigned *from_count)
{
    size_t i = 0;
    while (i < n && is_token_char(p[i]))
        i++;
    if (i == 0 || i == n || p[i] != ':')
        return -EPROTO;
    size_t name_len = i++;
    for (size_t k = i; k < n; k++)
        if (!is_text_char(p[k]))
            return -EPROTO;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    size_t v = i, v_end = n;
    while (v_end > v && (p[v_end - 1] == ' ' || p[v_end - 1] == '\t'))
        v_end--;
    if (name_is(p, name_len, "To-Path")) {
        (*to_count)++;
    } else if (name_is(p, name_len, "From-Path")) {
        (*from_count)++;
    } else if (name_is(p, name_len, "Message-ID")) {
        if (out->message_id != NULL)
            return -EPROTO;
        out->message_id = p + v;
        out->message_id_len = v_end - v;
    } else if (name_is(p, name_len, "Byte-Range")) {
        if (out->has_range ||
            agw_msrp_byte_range_parse((const char *)p + v, v_end - v, &out->range) != 0)
            return -EPROTO;
        out->has_range = true;
    }
    return 0;
}

/* The header lines from le up to the end-line whose CRLF is at e, then the optional body. */
static int parse_headers(const uint8_t *p, size_t le, size_t e, struct agw_msrp_frame_info *out)
{
    unsigned to_count = 0, from_count = 0;
    size_t pos = le;
    out->headers_off = le;
    out->headers_len = e + 2 - le;
    while (pos < e + 2) {
        /* An empty line right before the end-line: neither body-less nor "data CRLF". */
        if (pos >= e)
            return -EPROTO;
        size_t k = pos;
        while (p[k] != '\r' && p[k] != '\n')
            k++;
        if (p[k] != '\r' || p[k + 1] != '\n')
            return -EPROTO;
        if (k == pos) {
            out->headers_len = pos - le;
            out->has_body = true;
            out->body_off = pos + 2;
            out->body_len = e - (pos + 2);
            break;
        }
        int rc = parse_header_line(p + pos, k - pos, out, &to_count, &from_count);
        if (rc != 0)
            return rc;
        pos = k + 2;
    }
    if (to_count != 1 || from_count != 1)
        return -EPROTO;
    if (out->response && out->has_body)
        return -EPROTO;
    return 0;
}

/* Everything after the start line, for a frame whose first end-line has its CRLF at e. */
static int parse_rest(const uint8_t *p, size_t le, size_t e, struct agw_msrp_frame_info *out)
{
    out->flag = (char)p[e + 2 + END_DASHES_LEN + out->tid_len];
    return parse_headers(p, le, e, out);
}

int agw_msrp_frame_parse(const uint8_t *frame, size_t len, struct agw_msrp_frame_info *out)
{
    if (frame == NULL || out == NULL)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    size_t le = 0, e = 0;
    int rc = parse_start(frame, len, out, &le);
    if (rc <= 0)
        return -EPROTO;
    if (find_end_line(frame, len, le - 2, out->tid, out->tid_len, &e) != 1 ||
        e + end_line_len(out->tid_len) != len)
        return -EPROTO;
    return parse_rest(frame, le, e, out);
}

/* ---- stream framer ---- */

int agw_msrp_framer_init(struct agw_msrp_framer *f, size_t max_frame)
{
    if (f == NULL)
        return -EINVAL;
    if (max_frame == 0)
        max_frame = AGW_MSRP_FRAME_MAX_DEFAULT;
    if (max_frame < AGW_MSRP_FRAME_MAX_MIN)
        return -EINVAL;
    memset(f, 0, sizeof(*f));
    f->max_frame = max_frame;
    return 0;
}

void agw_msrp_framer_free(struct agw_msrp_framer *f)
{
    if (f == NULL)
        return;
    free(f->buf);
    f->buf = NULL;
    f->cap = f->len = f->head = 0;
}

int agw_msrp_framer_trim(struct agw_msrp_framer *f)
{
    if (f == NULL)
        return -EINVAL;
    if (f->head != f->len)
        return -EBUSY;
    free(f->buf);
    f->buf = NULL;
    f->cap = f->len = f->head = 0;
    f->line_end = f->scan = 0;
    return 0;
}

/* Makes room for up to `want` more bytes (at least one): moves the partial frame to the front,
   then grows the buffer, never past max_frame. */
static int framer_reserve(struct agw_msrp_framer *f, size_t want)
{
    if (f->error != 0)
        return f->error;
    size_t pending = f->len - f->head;
    if (f->head > 0) {
        memmove(f->buf, f->buf + f->head, pending);
        f->head = 0;
        f->len = pending;
    }
    if (pending >= f->max_frame)
        return -ENOBUFS; /* a full frame is waiting: pop reports it or its excess */
    size_t room = f->max_frame - pending;
    if (want > room)
        want = room;
    if (want == 0)
        want = 1;
    if (f->cap - f->len >= want)
        return 0;
    size_t cap = f->cap != 0 ? f->cap : FRAMER_FIRST_CAP;
    while (cap - f->len < want && cap < f->max_frame)
        cap = cap > f->max_frame / 2 ? f->max_frame : cap * 2;
    if (cap > f->max_frame)
        cap = f->max_frame;
    uint8_t *nb = realloc(f->buf, cap);
    if (nb == NULL)
        return -ENOMEM;
    f->buf = nb;
    f->cap = cap;
    return 0;
}

int agw_msrp_framer_input_space(struct agw_msrp_framer *f, uint8_t **buf, size_t *space)
{
    if (f == NULL || buf == NULL || space == NULL)
        return -EINVAL;
    int rc = framer_reserve(f, FRAMER_MIN_READ);
    if (rc != 0)
        return rc;
    *buf = f->buf + f->len;
    *space = f->cap - f->len;
    return 0;
}

int agw_msrp_framer_commit(struct agw_msrp_framer *f, size_t n)
{
    if (f == NULL || n > f->cap - f->len)
        return -EINVAL;
    f->len += n;
    return 0;
}

int agw_msrp_framer_feed(struct agw_msrp_framer *f, const void *data, size_t len, size_t *used)
{
    if (f == NULL || used == NULL || (data == NULL && len > 0))
        return -EINVAL;
    *used = 0;
    if (len == 0)
        return f->error;
    int rc = framer_reserve(f, len);
    if (rc != 0)
        return rc;
    size_t n = f->cap - f->len;
    if (n > len)
        n = len;
    memcpy(f->buf + f->len, data, n);
    f->len += n;
    *used = n;
    return 0;
}

static int framer_fail(struct agw_msrp_framer *f, int err)
{
    f->error = err;
    return err;
}

int agw_msrp_framer_pop(struct agw_msrp_framer *f, const uint8_t **frame, size_t *len,
                        struct agw_msrp_frame_info *info)
{
    if (f == NULL || frame == NULL || len == NULL)
        return -EINVAL;
    if (f->error != 0)
        return f->error;
    size_t n = f->len - f->head;
    if (n == 0)
        return 0; /* before the first input buf is NULL: no pointer arithmetic on it */
    const uint8_t *p = f->buf + f->head;
    struct agw_msrp_frame_info tmp;
    if (info == NULL)
        info = &tmp;
    if (f->line_end == 0) {
        size_t le = 0;
        int rc = parse_start(p, n, info, &le);
        if (rc < 0)
            return framer_fail(f, rc);
        if (rc == 0)
            return n >= f->max_frame ? framer_fail(f, -EMSGSIZE) : 0;
        f->line_end = le;
        f->scan = le - 2;
        memcpy(f->tid, info->tid, info->tid_len);
        f->tid_len = info->tid_len;
    }
    size_t e = 0;
    if (find_end_line(p, n, f->scan, f->tid, f->tid_len, &e) != 1) {
        f->scan = e;
        return n >= f->max_frame ? framer_fail(f, -EMSGSIZE) : 0;
    }
    /* The start line was checked when it arrived; parse it again only to fill info. */
    memset(info, 0, sizeof(*info));
    int rc = parse_start_line(p, f->line_end - 2, info);
    if (rc == 0)
        rc = parse_rest(p, f->line_end, e, info);
    if (rc != 0)
        return framer_fail(f, rc);
    size_t flen = e + end_line_len(f->tid_len);
    f->head += flen;
    f->line_end = f->scan = 0;
    *frame = p;
    *len = flen;
    return 1;
}

/* ---- re-chunker ---- */

static size_t decimal_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* The default names: orig "." index, then orig "." index "-" attempt; orig is shortened from
   its end when the whole would pass 32 characters. */
static int tid_default(void *arg, const uint8_t *orig, size_t orig_len, unsigned index,
                       unsigned attempt, char *out, size_t *out_len)
{
    (void)arg;
    char suffix[32];
    int sn = attempt == 0 ? snprintf(suffix, sizeof(suffix), ".%u", index)
                          : snprintf(suffix, sizeof(suffix), ".%u-%u", index, attempt);
    if (sn < 0 || (size_t)sn >= sizeof(suffix))
        return -EINVAL;
    size_t keep = orig_len;
    if (keep + (size_t)sn > AGW_MSRP_TID_MAX)
        keep = AGW_MSRP_TID_MAX - (size_t)sn;
    memcpy(out, orig, keep);
    memcpy(out + keep, suffix, (size_t)sn);
    *out_len = keep + (size_t)sn;
    return 0;
}

/* Finds the header line named name within the frame's headers: 1 with its offset and length
   (CRLF included), 0 when absent. Headers were validated by the parser. */
static int find_header(const uint8_t *p, const struct agw_msrp_frame_info *info, const char *name,
                       bool prefix, size_t *off, size_t *len)
{
    size_t pos = info->headers_off, end = info->headers_off + info->headers_len;
    while (pos < end) {
        const uint8_t *crlf = memchr(p + pos, '\r', end - pos);
        size_t k = crlf != NULL ? (size_t)(crlf - p) : end;
        const uint8_t *colon = memchr(p + pos, ':', k - pos);
        size_t name_len = colon != NULL ? (size_t)(colon - (p + pos)) : k - pos;
        if (prefix ? name_has_prefix(p + pos, name_len, name) : name_is(p + pos, name_len, name)) {
            *off = pos;
            *len = k + 2 - pos;
            return 1;
        }
        pos = k + 2;
    }
    return 0;
}

int agw_msrp_rechunk_init(struct agw_msrp_rechunker *rc, const uint8_t *frame, size_t len,
                          size_t limit, agw_msrp_tid_fn tid_fn, void *tid_arg)
{
    if (rc == NULL || frame == NULL)
        return -EINVAL;
    if (limit == 0)
        limit = SIZE_MAX; /* RFC 8841 §6.1: a max-message-size of 0 sets no limit */
    memset(rc, 0, sizeof(*rc));
    int err = agw_msrp_frame_parse(frame, len, &rc->info);
    if (err != 0)
        return err;
    const struct agw_msrp_frame_info *in = &rc->info;
    rc->frame = frame;
    rc->frame_len = len;
    rc->limit = limit;
    rc->tid_fn = tid_fn != NULL ? tid_fn : tid_default;
    rc->tid_arg = tid_arg;
    if (len <= limit) {
        rc->passthrough = true;
        rc->pieces = 1;
        return 0;
    }
    if (in->response || in->method_len != 4 || memcmp(in->method, "SEND", 4) != 0 ||
        !in->has_body || in->body_len == 0)
        return -EMSGSIZE;

    /* Without a Byte-Range the chunk starts the message (RFC 4975 §7.1.1). */
    rc->range_start = in->has_range ? in->range.start : 1;
    if (in->has_range)
        rc->range_total = in->range.total;
    else
        rc->range_total = in->flag == '$' ? (uint64_t)in->body_len : AGW_MSRP_RANGE_UNKNOWN;
    uint64_t before = rc->range_start - 1;
    if ((uint64_t)in->body_len > UINT64_MAX - 1 - before)
        return -EPROTO;
    uint64_t last = before + (uint64_t)in->body_len;
    if (rc->range_total != AGW_MSRP_RANGE_UNKNOWN && last > rc->range_total)
        return -EPROTO;

    /* The Byte-Range line is replaced in place, or added before the MIME headers, which the
       grammar puts last (content-stuff). */
    size_t hoff = 0, hlen = 0;
    if (find_header(frame, in, "Byte-Range", false, &hoff, &hlen) != 1) {
        if (find_header(frame, in, "Content-", true, &hoff, &hlen) != 1)
            hoff = in->headers_off + in->headers_len;
        hlen = 0;
    }
    rc->keep1_len = hoff - in->headers_off;
    rc->keep2_off = hoff + hlen;
    rc->keep2_len = in->headers_off + in->headers_len - rc->keep2_off;

    /* Sized for the longest id and the widest numbers, so every piece fits the same payload. */
    size_t range_line =
        strlen("Byte-Range: ") + 2 * decimal_len(last) + 2 +
        (rc->range_total == AGW_MSRP_RANGE_UNKNOWN ? 1 : decimal_len(rc->range_total)) + 2;
    size_t overhead = 5 + AGW_MSRP_TID_MAX + 1 + in->method_len + 2 + rc->keep1_len + range_line +
                      rc->keep2_len + 2 + 2 + END_DASHES_LEN + AGW_MSRP_TID_MAX + 1 + 2;
    if (limit <= overhead)
        return -EMSGSIZE;
    rc->payload = limit - overhead;
    rc->pieces = in->body_len / rc->payload + (in->body_len % rc->payload != 0);
    return 0;
}

/* Asks tid_fn for the piece's id until one is a valid ident whose end-line is not in body. */
static int choose_tid(struct agw_msrp_rechunker *rc, const uint8_t *body, size_t body_len,
                      char *tid, size_t *tid_len)
{
    for (unsigned attempt = 0; attempt < TID_ATTEMPTS; attempt++) {
        size_t n = 0;
        int err =
            rc->tid_fn(rc->tid_arg, rc->info.tid, rc->info.tid_len, rc->index, attempt, tid, &n);
        if (err != 0)
            return err;
        if (!ident_valid((const uint8_t *)tid, n))
            return -EINVAL;
        if (!body_has_end_line(body, body_len, tid, n)) {
            *tid_len = n;
            return 0;
        }
    }
    return -EEXIST;
}

static uint8_t *put(uint8_t *w, const void *src, size_t n)
{
    memcpy(w, src, n);
    return w + n;
}

int agw_msrp_rechunk_next(struct agw_msrp_rechunker *rc, uint8_t *out, size_t cap, size_t *out_len)
{
    if (rc == NULL || out == NULL || out_len == NULL)
        return -EINVAL;
    if (rc->finished)
        return 0;
    if (rc->passthrough) {
        if (cap < rc->frame_len)
            return -ENOSPC;
        memcpy(out, rc->frame, rc->frame_len);
        *out_len = rc->frame_len;
        memcpy(rc->piece_tid, rc->info.tid, rc->info.tid_len);
        rc->piece_tid_len = rc->info.tid_len;
        rc->finished = true;
        return 1;
    }
    const struct agw_msrp_frame_info *in = &rc->info;
    size_t left = in->body_len - rc->done;
    size_t piece = left < rc->payload ? left : rc->payload;
    bool last = piece == left;
    const uint8_t *body = rc->frame + in->body_off + rc->done;
    char tid[AGW_MSRP_TID_MAX];
    size_t tid_len = 0;
    int err = choose_tid(rc, body, piece, tid, &tid_len);
    if (err != 0)
        return err;

    uint64_t start = rc->range_start + rc->done;
    char range[96], total[24];
    if (rc->range_total == AGW_MSRP_RANGE_UNKNOWN)
        snprintf(total, sizeof(total), "*");
    else
        snprintf(total, sizeof(total), "%" PRIu64, rc->range_total);
    int rn = snprintf(range, sizeof(range), "Byte-Range: %" PRIu64 "-%" PRIu64 "/%s\r\n", start,
                      start + piece - 1, total);
    if (rn < 0 || (size_t)rn >= sizeof(range))
        return -EINVAL;

    size_t need = 5 + tid_len + 1 + in->method_len + 2 + rc->keep1_len + (size_t)rn +
                  rc->keep2_len + 2 + piece + 2 + END_DASHES_LEN + tid_len + 1 + 2;
    if (need > cap)
        return -ENOSPC;
    uint8_t *w = out;
    w = put(w, "MSRP ", 5);
    w = put(w, tid, tid_len);
    w = put(w, " ", 1);
    w = put(w, in->method, in->method_len);
    w = put(w, "\r\n", 2);
    w = put(w, rc->frame + in->headers_off, rc->keep1_len);
    w = put(w, range, (size_t)rn);
    w = put(w, rc->frame + rc->keep2_off, rc->keep2_len);
    w = put(w, "\r\n", 2);
    w = put(w, body, piece);
    w = put(w, "\r\n" END_DASHES, 2 + END_DASHES_LEN);
    w = put(w, tid, tid_len);
    *w++ = (uint8_t)(last ? in->flag : '+');
    w = put(w, "\r\n", 2);
    *out_len = (size_t)(w - out);
    rc->done += piece;
    rc->index++;
    memcpy(rc->piece_tid, tid, tid_len);
    rc->piece_tid_len = tid_len;
    rc->finished = last;
    return 1;
}

int agw_msrp_frame_retid(const uint8_t *frame, size_t len, const uint8_t *tid, size_t tid_len,
                         uint8_t *out, size_t cap, size_t *out_len)
{
    if (frame == NULL || tid == NULL || out == NULL || out_len == NULL)
        return -EINVAL;
    if (!ident_valid(tid, tid_len))
        return -EINVAL;
    struct agw_msrp_frame_info in;
    int err = agw_msrp_frame_parse(frame, len, &in);
    if (err != 0)
        return err;
    if (in.has_body &&
        body_has_end_line(frame + in.body_off, in.body_len, (const char *)tid, tid_len))
        return -EEXIST;
    /* Between the ids: the rest of the start line, the headers, the body and the dashes. */
    size_t mid_off = 5 + in.tid_len;
    size_t end_off = len - end_line_len(in.tid_len) + 2 + END_DASHES_LEN;
    size_t mid_len = end_off - mid_off;
    size_t need = 5 + tid_len + mid_len + tid_len + 3;
    if (need > cap)
        return -ENOSPC;
    uint8_t *w = out;
    w = put(w, "MSRP ", 5);
    w = put(w, tid, tid_len);
    w = put(w, frame + mid_off, mid_len);
    w = put(w, tid, tid_len);
    w = put(w, frame + end_off + in.tid_len, 3);
    *out_len = (size_t)(w - out);
    return 0;
}
