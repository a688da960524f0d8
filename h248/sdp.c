/* SDP codec (RFC 8866 lines, RFC 4145/8122/8839/8841/8842/8864 attributes, H.248 CHOOSE). */
#include "sdp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct sdp_limits sdp_default_limits = {
    .max_len = 65535, /* one H.248 message over UDP cannot carry more */
    .max_line_len = 4096,
    .max_lines = 1024,
    .max_sessions = 8,
    .max_media = 32,
    .max_attrs = 128,
    .max_fingerprints = 8,
    .max_dcmaps = 64,
};

/* ---- arena: the first block is the allocation that holds the arena itself ---- */

struct sdp_block {
    struct sdp_block *next;
};

struct sdp_arena {
    struct sdp_block *blocks; /* added when the first allocation ran out */
    char *cur, *end;
    size_t next_block; /* doubles, so that a big body costs few mallocs */
};

/* A usual body needs about 4 bytes of structures and copies per input byte. */
#define ARENA_PER_BYTE 4u
#define ARENA_MIN_BLOCK 1024u

static struct sdp_arena *arena_new(size_t size)
{
    if (size > SIZE_MAX - sizeof(struct sdp_arena))
        return NULL;
    struct sdp_arena *a = malloc(sizeof(*a) + size);
    if (a == NULL)
        return NULL;
    a->blocks = NULL;
    a->cur = (char *)(a + 1);
    a->end = a->cur + size;
    a->next_block = ARENA_MIN_BLOCK;
    return a;
}

static void *arena_take(struct sdp_arena *a, size_t size, size_t align)
{
    uintptr_t cur = (uintptr_t)a->cur, end = (uintptr_t)a->end;
    uintptr_t p = (cur + align - 1) & ~(uintptr_t)(align - 1);
    if (p < cur || p > end || size > end - p)
        return NULL;
    a->cur = a->cur + (p - cur) + size;
    return a->cur - size;
}

static void *arena_alloc(struct sdp_arena *a, size_t size, size_t align)
{
    void *p = arena_take(a, size, align);
    if (p != NULL)
        return p;
    if (size > SIZE_MAX / 2)
        return NULL;
    size_t want = sizeof(struct sdp_block) + size + align;
    if (want < a->next_block)
        want = a->next_block;
    struct sdp_block *b = malloc(want);
    if (b == NULL)
        return NULL;
    if (a->next_block < SIZE_MAX / 4)
        a->next_block *= 2;
    b->next = a->blocks;
    a->blocks = b;
    a->cur = (char *)(b + 1);
    a->end = (char *)b + want;
    return arena_take(a, size, align);
}

static void arena_free(struct sdp_arena *a)
{
    if (a == NULL)
        return;
    struct sdp_block *b = a->blocks;
    while (b != NULL) {
        struct sdp_block *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}

/* ---- context, errors, small text helpers ---- */

struct ctx {
    struct sdp_arena *arena;
    const struct sdp_limits *lim;
    struct sdp_error *err;
    const char *base; /* start of the input, for offsets; NULL for setters */
    int line;
};

__attribute__((format(printf, 4, 5))) static int fail(struct ctx *c, int rc, const char *at,
                                                      const char *fmt, ...)
{
    if (c->err == NULL)
        return rc;
    struct sdp_error *e = c->err;
    e->line = c->line;
    e->offset = (at != NULL && c->base != NULL) ? (size_t)(at - c->base) : 0;
    int n = c->line > 0 ? snprintf(e->text, sizeof(e->text), "line %d: ", c->line) : 0;
    if (n < 0 || (size_t)n >= sizeof(e->text))
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text + n, sizeof(e->text) - (size_t)n, fmt, ap);
    va_end(ap);
    return rc;
}

static int no_mem(struct ctx *c)
{
    return fail(c, -ENOMEM, NULL, "out of memory");
}

#define NEW(c, type) ((type *)zalloc((c), sizeof(type), _Alignof(type)))

static void *zalloc(struct ctx *c, size_t size, size_t align)
{
    void *p = arena_alloc(c->arena, size, align);
    if (p != NULL)
        memset(p, 0, size);
    return p;
}

struct span {
    const char *p;
    size_t n;
};

/* Error texts quote at most this much of the offending input. */
#define QUOTE_MAX 32
#define QUOTE(s) (int)((s).n < QUOTE_MAX ? (s).n : QUOTE_MAX), (s).p

static char *dup_span(struct ctx *c, struct span s)
{
    char *p = arena_alloc(c->arena, s.n + 1, 1);
    if (p == NULL)
        return NULL;
    if (s.n > 0)
        memcpy(p, s.p, s.n);
    p[s.n] = '\0';
    return p;
}

/* Character classes, computed at compile time for every byte value. */
enum {
    C_WS = 1,     /* SP, TAB */
    C_DIGIT = 2,  /* 0-9 */
    C_ALPHA = 4,  /* A-Z a-z */
    C_TOKEN = 8,  /* RFC 8866 token-char: visible ASCII except "(),/:;<=>?@[\] */
    C_ICE = 16,   /* RFC 8839 ice-char: ALPHA DIGIT + / */
    C_TLS_ID = 32 /* RFC 8842 tls-id-char: ALPHA DIGIT + / - _ */
};
#define CC_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define CC_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define CC_TOKEN(c)                                                                                \
    ((c) >= 0x21 && (c) <= 0x7e && (c) != '"' && (c) != '(' && (c) != ')' && (c) != ',' &&         \
     (c) != '/' && ((c) < ':' || (c) > '@') && ((c) < '[' || (c) > ']'))
#define CC(c)                                                                                      \
    (((c) == ' ' || (c) == '\t' ? C_WS : 0) | (CC_DIGIT(c) ? C_DIGIT : 0) |                        \
     (CC_ALPHA(c) ? C_ALPHA : 0) | (CC_TOKEN(c) ? C_TOKEN : 0) |                                   \
     (CC_ALPHA(c) || CC_DIGIT(c) || (c) == '+' || (c) == '/' ? C_ICE | C_TLS_ID : 0) |             \
     ((c) == '-' || (c) == '_' ? C_TLS_ID : 0))
#define CC4(c) CC(c), CC((c) + 1), CC((c) + 2), CC((c) + 3)
#define CC16(c) CC4(c), CC4((c) + 4), CC4((c) + 8), CC4((c) + 12)
#define CC64(c) CC16(c), CC16((c) + 16), CC16((c) + 32), CC16((c) + 48)
static const unsigned char cclass[256] = {CC64(0), CC64(64), CC64(128), CC64(192)};

static bool has_class(char ch, unsigned cls)
{
    return (cclass[(unsigned char)ch] & cls) != 0;
}

static bool is_ws(char ch)
{
    return has_class(ch, C_WS);
}

static bool is_digit(char ch)
{
    return has_class(ch, C_DIGIT);
}

static bool is_alpha(char ch)
{
    return has_class(ch, C_ALPHA);
}

#define HV(c)                                                                                      \
    (CC_DIGIT(c)                ? (c) - '0'                                                        \
     : (c) >= 'a' && (c) <= 'f' ? (c) - 'a' + 10                                                   \
     : (c) >= 'A' && (c) <= 'F' ? (c) - 'A' + 10                                                   \
                                : -1)
#define HV4(c) HV(c), HV((c) + 1), HV((c) + 2), HV((c) + 3)
#define HV16(c) HV4(c), HV4((c) + 4), HV4((c) + 8), HV4((c) + 12)
#define HV64(c) HV16(c), HV16((c) + 16), HV16((c) + 32), HV16((c) + 48)
static const signed char hexval[256] = {HV64(0), HV64(64), HV64(128), HV64(192)};

static int hex_val(char ch)
{
    return hexval[(unsigned char)ch];
}

static char lower(char ch)
{
    return (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
}

static bool token_char(char ch)
{
    return has_class(ch, C_TOKEN);
}

static bool ice_char(char ch)
{
    return has_class(ch, C_ICE);
}

static bool tls_id_char(char ch)
{
    return has_class(ch, C_TLS_ID);
}

static bool all_of(struct span s, bool (*ok)(char))
{
    for (size_t i = 0; i < s.n; i++)
        if (!ok(s.p[i]))
            return false;
    return true;
}

static bool is_token(struct span s)
{
    return s.n > 0 && all_of(s, token_char);
}

static bool span_is(struct span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

static bool span_ieq(struct span s, const char *lit)
{
    size_t i = 0;
    for (; i < s.n; i++)
        if (lit[i] == '\0' || lower(s.p[i]) != lit[i])
            return false;
    return lit[i] == '\0';
}

static struct span trim_left(struct span s)
{
    while (s.n > 0 && is_ws(s.p[0])) {
        s.p++;
        s.n--;
    }
    return s;
}

/* The next blank-separated token of *rest (empty at the end); *rest moves past it. */
static struct span next_tok(struct span *rest)
{
    struct span s = trim_left(*rest);
    size_t i = 0;
    while (i < s.n && !is_ws(s.p[i]))
        i++;
    rest->p = s.p + i;
    rest->n = s.n - i;
    return (struct span){s.p, i};
}

/* Decimal digits only (1..max_digits of them), value at most max. */
static bool parse_uint(struct span s, size_t max_digits, uint64_t max, uint64_t *out)
{
    if (s.n == 0 || s.n > max_digits)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (!is_digit(s.p[i]))
            return false;
        unsigned d = (unsigned)(s.p[i] - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* "0" / integer of RFC 8864: no leading zero. */
static bool parse_uint_nlz(struct span s, uint64_t max, uint64_t *out)
{
    if (s.n > 1 && s.p[0] == '0')
        return false;
    return parse_uint(s, 20, max, out);
}

/* Returns the first byte that is not UTF-8 text (NUL, a control other than TAB, DEL, a bad
   sequence), or NULL. Everything we keep becomes a C string and may reach a log line. */
static const char *bad_text(const char *p, const char *e)
{
    const unsigned char *s = (const unsigned char *)p, *end = (const unsigned char *)e;
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    while (s < end) {
        /* Eight printable ASCII bytes at a time: none below 0x20, none at 0x7f or above. */
        while (end - s >= 8) {
            uint64_t w;
            memcpy(&w, s, 8);
            if ((((w - 0x20 * ones) & ~w) | ((w + ones) | w)) & highs)
                break;
            s += 8;
        }
        if (s == end)
            break;
        unsigned ch = *s;
        if ((ch >= 0x20 && ch < 0x7f) || ch == '\t') {
            s++;
            continue;
        }
        if (ch < 0xc2 || ch > 0xf4)
            return (const char *)s;
        size_t need = ch < 0xe0 ? 1 : ch < 0xf0 ? 2 : 3;
        unsigned lo = 0x80, hi = 0xbf;
        if (ch == 0xe0)
            lo = 0xa0; /* overlong */
        else if (ch == 0xed)
            hi = 0x9f; /* surrogates */
        else if (ch == 0xf0)
            lo = 0x90; /* overlong */
        else if (ch == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
        if ((size_t)(end - s) <= need || s[1] < lo || s[1] > hi)
            return (const char *)s;
        for (size_t i = 2; i <= need; i++)
            if ((s[i] & 0xc0) != 0x80)
                return (const char *)s;
        s += need + 1;
    }
    return NULL;
}

/* inet_pton wants a C string: copy into a bounded buffer first. */
static bool parse_ip(struct span s, enum sdp_addrtype type, char out[46])
{
    char buf[46];
    unsigned char bin[16];
    if (s.n == 0 || s.n >= sizeof(buf))
        return false;
    memcpy(buf, s.p, s.n);
    buf[s.n] = '\0';
    if (inet_pton(type == SDP_ADDR_IP4 ? AF_INET : AF_INET6, buf, bin) != 1)
        return false;
    if (out != NULL)
        memcpy(out, buf, s.n + 1);
    return true;
}

/* ICE connection-address: IPv4, IPv6 or a host name (mDNS names included). */
static bool parse_host(struct span s, enum sdp_addrtype *type)
{
    if (parse_ip(s, SDP_ADDR_IP4, NULL)) {
        *type = SDP_ADDR_IP4;
        return true;
    }
    if (memchr(s.p, ':', s.n) != NULL) {
        *type = SDP_ADDR_IP6;
        return parse_ip(s, SDP_ADDR_IP6, NULL);
    }
    if (s.n == 0 || s.n > 253)
        return false;
    size_t label = 0;
    bool numeric = true; /* of the last label: "1.2.3.999" is a bad address, not a name */
    for (size_t i = 0; i < s.n; i++) {
        char ch = s.p[i];
        if (ch == '.') {
            if (label == 0)
                return false;
            label = 0;
            numeric = true;
        } else if (is_alpha(ch) || is_digit(ch) || ch == '-') {
            if (++label > 63)
                return false;
            numeric = numeric && is_digit(ch);
        } else {
            return false;
        }
    }
    *type = SDP_ADDR_FQDN;
    return label > 0 && !numeric;
}

/* ---- typed attributes ---- */

static const struct {
    const char *name;
    size_t len;
} hashes[] = {
    [SDP_HASH_SHA1] = {"sha-1", 20},     [SDP_HASH_SHA224] = {"sha-224", 28},
    [SDP_HASH_SHA256] = {"sha-256", 32}, [SDP_HASH_SHA384] = {"sha-384", 48},
    [SDP_HASH_SHA512] = {"sha-512", 64}, [SDP_HASH_MD5] = {"md5", 16},
    [SDP_HASH_MD2] = {"md2", 16},
};

#define COUNT(x) (sizeof(x) / sizeof((x)[0]))

const char *sdp_hash_name(enum sdp_hash hash)
{
    return (unsigned)hash < COUNT(hashes) ? hashes[hash].name : NULL;
}

size_t sdp_hash_len(enum sdp_hash hash)
{
    return (unsigned)hash < COUNT(hashes) ? hashes[hash].len : 0;
}

/* RFC 8122: fingerprint = hash-func SP 2UHEX *(":" 2UHEX); lowercase hex is accepted too. */
static int p_fingerprint(struct ctx *c, struct sdp_attr *a, struct span v)
{
    struct sdp_fingerprint *f = &a->u.fingerprint;
    f->kind = SDP_VALUE_SET;
    f->hash = SDP_HASH_OTHER;
    f->len = 0; /* digest bytes past len are left as they are */
    if (span_is(v, "$")) {
        f->kind = SDP_VALUE_CHOOSE;
        return 0;
    }
    struct span rest = v;
    struct span h = next_tok(&rest);
    if (!is_token(h))
        return fail(c, -EINVAL, h.p, "a=fingerprint: bad hash function");
    for (unsigned i = 1; i < COUNT(hashes); i++)
        if (span_ieq(h, hashes[i].name))
            f->hash = (enum sdp_hash)i;
    struct span hex = trim_left(rest);
    if (hex.n == 0)
        return fail(c, -EINVAL, hex.p, "a=fingerprint: missing digest");
    size_t i = 0;
    for (;;) {
        if (f->len == SDP_FINGERPRINT_MAX)
            return fail(c, -EINVAL, hex.p + i, "a=fingerprint: digest longer than %d bytes",
                        SDP_FINGERPRINT_MAX);
        int hi = hex.n - i >= 2 ? hex_val(hex.p[i]) : -1;
        int lo = hi >= 0 ? hex_val(hex.p[i + 1]) : -1;
        if (lo < 0)
            return fail(c, -EINVAL, hex.p + i, "a=fingerprint: bad hex at byte %u", f->len + 1u);
        f->digest[f->len++] = (uint8_t)(hi << 4 | lo);
        i += 2;
        if (i == hex.n)
            break;
        if (hex.p[i] != ':')
            return fail(c, -EINVAL, hex.p + i, "a=fingerprint: expected ':' after byte %u",
                        (unsigned)f->len);
        i++;
    }
    if (f->hash != SDP_HASH_OTHER && f->len != hashes[f->hash].len)
        return fail(c, -EINVAL, hex.p, "a=fingerprint: %s digest must be %zu bytes, got %u",
                    hashes[f->hash].name, hashes[f->hash].len, (unsigned)f->len);
    return 0;
}

static int p_setup(struct ctx *c, struct sdp_attr *a, struct span v)
{
    static const char *const roles[] = {
        [SDP_SETUP_ACTIVE] = "active",
        [SDP_SETUP_PASSIVE] = "passive",
        [SDP_SETUP_ACTPASS] = "actpass",
        [SDP_SETUP_HOLDCONN] = "holdconn",
    };
    for (unsigned i = 0; i < COUNT(roles); i++) {
        if (span_ieq(v, roles[i])) {
            a->u.setup = (enum sdp_setup)i;
            return 0;
        }
    }
    return fail(c, -EINVAL, v.p, "a=setup: unknown role '%.*s'", QUOTE(v));
}

static int p_connection(struct ctx *c, struct sdp_attr *a, struct span v)
{
    if (span_ieq(v, "new"))
        a->u.connection = SDP_CONNECTION_NEW;
    else if (span_ieq(v, "existing"))
        a->u.connection = SDP_CONNECTION_EXISTING;
    else
        return fail(c, -EINVAL, v.p, "a=connection: must be new or existing");
    return 0;
}

/* RFC 8842: tls-id-value = 20*255(tls-id-char) */
/* "$" (CHOOSE) asks the gateway for a value of its own (its tls-id, its ICE credentials), as
 * a=fingerprint:$ does. */
static bool is_choose(struct span v)
{
    return v.n == 1 && v.p[0] == '$';
}

static int p_tls_id(struct ctx *c, struct sdp_attr *a, struct span v)
{
    (void)a;
    if (is_choose(v))
        return 0;
    if (v.n < 20 || v.n > 255 || !all_of(v, tls_id_char))
        return fail(c, -EINVAL, v.p, "a=tls-id: need 20 to 255 of ALPHA DIGIT + / - _");
    return 0;
}

static int p_sctp_port(struct ctx *c, struct sdp_attr *a, struct span v)
{
    uint64_t n;
    if (!parse_uint(v, 5, 65535, &n) || n == 0)
        return fail(c, -EINVAL, v.p, "a=sctp-port: must be 1 to 65535");
    a->u.sctp_port = (uint16_t)n;
    return 0;
}

static int p_max_message_size(struct ctx *c, struct sdp_attr *a, struct span v)
{
    if (!parse_uint(v, 20, UINT64_MAX, &a->u.max_message_size))
        return fail(c, -EINVAL, v.p, "a=max-message-size: not a 64-bit decimal");
    return 0;
}

static int p_ice_ufrag(struct ctx *c, struct sdp_attr *a, struct span v)
{
    (void)a;
    if (is_choose(v))
        return 0;
    if (v.n < 4 || v.n > 256 || !all_of(v, ice_char))
        return fail(c, -EINVAL, v.p, "a=ice-ufrag: need 4 to 256 ice-chars");
    return 0;
}

static int p_ice_pwd(struct ctx *c, struct sdp_attr *a, struct span v)
{
    (void)a;
    if (is_choose(v))
        return 0;
    if (v.n < 22 || v.n > 256 || !all_of(v, ice_char))
        return fail(c, -EINVAL, v.p, "a=ice-pwd: need 22 to 256 ice-chars");
    return 0;
}

static int stream_id(struct ctx *c, struct span t, const char *what, uint16_t *out)
{
    uint64_t n;
    if (!parse_uint(t, 5, 65534, &n))
        return fail(c, -EINVAL, t.p, "a=%s: stream id must be 0 to 65534", what);
    *out = (uint16_t)n;
    return 0;
}

/* RFC 8864 quoted-string at the start of *s, %-decoded into the arena; *s moves past it. */
static int quoted(struct ctx *c, struct span *s, const char *what, const char **out,
                  size_t *out_len)
{
    const char *p = s->p;
    size_t n = s->n, len = 0, i = 1;
    if (n == 0 || p[0] != '"')
        return fail(c, -EINVAL, p, "a=dcmap: %s must be a quoted string", what);
    for (; i < n && p[i] != '"'; i++, len++) {
        char ch = p[i];
        if (ch == '%') {
            if (n - i < 3 || hex_val(p[i + 1]) < 0 || hex_val(p[i + 2]) < 0)
                return fail(c, -EINVAL, p + i, "a=dcmap: bad %% escape in %s", what);
            i += 2;
        } else if (ch < 0x20 || ch > 0x7e) {
            return fail(c, -EINVAL, p + i, "a=dcmap: %s holds a byte that must be escaped", what);
        }
    }
    if (i == n)
        return fail(c, -EINVAL, p, "a=dcmap: unterminated %s", what);
    char *d = arena_alloc(c->arena, len + 1, 1);
    if (d == NULL)
        return no_mem(c);
    size_t k = 0;
    for (size_t j = 1; j < i; j++) {
        if (p[j] == '%') {
            d[k++] = (char)(hex_val(p[j + 1]) << 4 | hex_val(p[j + 2]));
            j += 2;
        } else {
            d[k++] = p[j];
        }
    }
    d[k] = '\0';
    *out = d;
    *out_len = k;
    s->p = p + i + 1;
    s->n = n - i - 1;
    return 0;
}

static int dcmap_number(struct ctx *c, struct span *s, const char *opt, uint64_t max, uint64_t *out)
{
    size_t i = 0;
    while (i < s->n && s->p[i] != ';' && !is_ws(s->p[i]))
        i++;
    struct span t = {s->p, i};
    if (!parse_uint_nlz(t, max, out))
        return fail(c, -EINVAL, t.p, "a=dcmap: %s must be a number up to %llu", opt,
                    (unsigned long long)max);
    s->p += i;
    s->n -= i;
    return 0;
}

/* One dcmap-opt at the start of *s; *s moves past it. Unknown name=value options are kept in
   the raw value and otherwise ignored. */
static int dcmap_opt(struct ctx *c, struct sdp_dcmap *d, struct span *s)
{
    size_t i = 0;
    while (i < s->n && s->p[i] != '=')
        i++;
    struct span name = {s->p, i};
    if (i == s->n || !is_token(name))
        return fail(c, -EINVAL, s->p, "a=dcmap: expected name=value option");
    s->p += i + 1;
    s->n -= i + 1;
    uint64_t n;
    int rc;
    if (span_ieq(name, "label")) {
        if (d->label != NULL)
            return fail(c, -EINVAL, name.p, "a=dcmap: duplicate label");
        return quoted(c, s, "label", &d->label, &d->label_len);
    }
    if (span_ieq(name, "subprotocol")) {
        if (d->subprotocol != NULL)
            return fail(c, -EINVAL, name.p, "a=dcmap: duplicate subprotocol");
        return quoted(c, s, "subprotocol", &d->subprotocol, &d->subprotocol_len);
    }
    if (span_ieq(name, "ordered")) {
        size_t k = 0;
        while (k < s->n && s->p[k] != ';' && !is_ws(s->p[k]))
            k++;
        struct span t = {s->p, k};
        if (d->has_ordered)
            return fail(c, -EINVAL, name.p, "a=dcmap: duplicate ordered");
        if (span_ieq(t, "true"))
            d->ordered = true;
        else if (!span_ieq(t, "false"))
            return fail(c, -EINVAL, t.p, "a=dcmap: ordered must be true or false");
        d->has_ordered = true;
        s->p += k;
        s->n -= k;
        return 0;
    }
    if (span_ieq(name, "max-retr") || span_ieq(name, "max-time")) {
        bool retr = lower(name.p[4]) == 'r';
        if (d->has_max_retr || d->has_max_time)
            return fail(c, -EINVAL, name.p, "a=dcmap: only one of max-retr and max-time");
        if ((rc = dcmap_number(c, s, retr ? "max-retr" : "max-time", UINT32_MAX, &n)) < 0)
            return rc;
        if (retr) {
            d->has_max_retr = true;
            d->max_retr = (uint32_t)n;
        } else {
            d->has_max_time = true;
            d->max_time = (uint32_t)n;
        }
        return 0;
    }
    if (span_ieq(name, "priority")) {
        if (d->has_priority)
            return fail(c, -EINVAL, name.p, "a=dcmap: duplicate priority");
        if ((rc = dcmap_number(c, s, "priority", UINT16_MAX, &n)) < 0)
            return rc;
        d->has_priority = true;
        d->priority = (uint16_t)n;
        return 0;
    }
    if (s->n > 0 && s->p[0] == '"') {
        const char *ignored;
        size_t ignored_len;
        return quoted(c, s, "option value", &ignored, &ignored_len);
    }
    size_t k = 0;
    while (k < s->n && token_char(s->p[k]) && s->p[k] != ';')
        k++;
    if (k == 0)
        return fail(c, -EINVAL, s->p, "a=dcmap: option %.*s has no value", QUOTE(name));
    s->p += k;
    s->n -= k;
    return 0;
}

/* RFC 8864: dcmap-stream-id [SP dcmap-opt *(";" dcmap-opt)]; blanks around ';' tolerated. */
static int p_dcmap(struct ctx *c, struct sdp_attr *a, struct span v)
{
    struct sdp_dcmap *d = &a->u.dcmap;
    *d = (struct sdp_dcmap){0};
    struct span rest = v;
    int rc = stream_id(c, next_tok(&rest), "dcmap", &d->stream_id);
    if (rc < 0)
        return rc;
    rest = trim_left(rest);
    while (rest.n > 0) {
        if ((rc = dcmap_opt(c, d, &rest)) < 0)
            return rc;
        rest = trim_left(rest);
        if (rest.n == 0)
            break;
        if (rest.p[0] != ';')
            return fail(c, -EINVAL, rest.p, "a=dcmap: expected ';' between options");
        rest.p++;
        rest.n--;
        rest = trim_left(rest);
        if (rest.n == 0)
            return fail(c, -EINVAL, rest.p, "a=dcmap: trailing ';'");
    }
    return 0;
}

/* RFC 8864: dcsa-value = stream-id SP attribute */
static int p_dcsa(struct ctx *c, struct sdp_attr *a, struct span v)
{
    struct span rest = v;
    int rc = stream_id(c, next_tok(&rest), "dcsa", &a->u.dcsa.stream_id);
    if (rc < 0)
        return rc;
    struct span attr = trim_left(rest);
    const char *colon = memchr(attr.p, ':', attr.n);
    struct span name = {attr.p, colon != NULL ? (size_t)(colon - attr.p) : attr.n};
    if (!is_token(name))
        return fail(c, -EINVAL, attr.p, "a=dcsa: expected an attribute after the stream id");
    if ((a->u.dcsa.attribute = dup_span(c, attr)) == NULL)
        return no_mem(c);
    return 0;
}

static int cand_host(struct ctx *c, struct span t, const char *what, const char **out,
                     enum sdp_addrtype *type)
{
    enum sdp_addrtype ignored;
    if (!parse_host(t, type != NULL ? type : &ignored))
        return fail(c, -EINVAL, t.p, "a=candidate: bad %s '%.*s'", what, QUOTE(t));
    if ((*out = dup_span(c, t)) == NULL)
        return no_mem(c);
    return 0;
}

/* RFC 8839 candidate-attribute. */
static int p_candidate(struct ctx *c, struct sdp_attr *a, struct span v)
{
    static const char *const types[] = {
        [SDP_CAND_HOST] = "host",
        [SDP_CAND_SRFLX] = "srflx",
        [SDP_CAND_PRFLX] = "prflx",
        [SDP_CAND_RELAY] = "relay",
    };
    struct sdp_candidate *k = &a->u.candidate;
    struct span rest = v, t;
    uint64_t n;
    int rc;

    k->raddr = NULL;
    k->rport = -1;
    k->ext = NULL;
    k->ext_count = 0;

    t = next_tok(&rest);
    if (t.n == 0 || t.n > 32 || !all_of(t, ice_char))
        return fail(c, -EINVAL, t.p, "a=candidate: bad foundation");
    if ((k->foundation = dup_span(c, t)) == NULL)
        return no_mem(c);
    t = next_tok(&rest);
    if (!parse_uint(t, 3, 256, &n) || n == 0)
        return fail(c, -EINVAL, t.p, "a=candidate: component id must be 1 to 256");
    k->component = (uint16_t)n;
    t = next_tok(&rest);
    if (!is_token(t))
        return fail(c, -EINVAL, t.p, "a=candidate: bad transport");
    if ((k->transport = dup_span(c, t)) == NULL)
        return no_mem(c);
    t = next_tok(&rest);
    if (!parse_uint(t, 10, 0x7fffffff, &n) || n == 0)
        return fail(c, -EINVAL, t.p, "a=candidate: priority must be 1 to 2^31-1");
    k->priority = (uint32_t)n;
    if ((rc = cand_host(c, next_tok(&rest), "address", &k->address, &k->addrtype)) < 0)
        return rc;
    t = next_tok(&rest);
    if (!parse_uint(t, 5, 65535, &n))
        return fail(c, -EINVAL, t.p, "a=candidate: bad port");
    k->port = (uint16_t)n;
    t = next_tok(&rest);
    if (!span_ieq(t, "typ"))
        return fail(c, -EINVAL, t.p, "a=candidate: expected 'typ'");
    t = next_tok(&rest);
    if (!is_token(t))
        return fail(c, -EINVAL, t.p, "a=candidate: bad candidate type");
    k->type = SDP_CAND_OTHER;
    for (unsigned i = 0; i < COUNT(types); i++)
        if (span_ieq(t, types[i]))
            k->type = (enum sdp_cand_type)i;
    if ((k->type_name = dup_span(c, t)) == NULL)
        return no_mem(c);

    t = next_tok(&rest);
    if (span_ieq(t, "raddr")) {
        if ((rc = cand_host(c, next_tok(&rest), "raddr", &k->raddr, NULL)) < 0)
            return rc;
        t = next_tok(&rest);
    }
    if (span_ieq(t, "rport")) {
        struct span p = next_tok(&rest);
        if (!parse_uint(p, 5, 65535, &n))
            return fail(c, -EINVAL, p.p, "a=candidate: bad rport");
        k->rport = (int32_t)n;
        t = next_tok(&rest);
    }
    if (t.n == 0)
        return 0;

    /* Extension pairs: count first so that they land in one array. */
    unsigned count = 1;
    for (struct span r = rest; next_tok(&r).n > 0;)
        count++;
    if (count % 2 != 0)
        return fail(c, -EINVAL, t.p, "a=candidate: extension without a value");
    struct sdp_cand_ext *ext = zalloc(c, sizeof(*ext) * (count / 2), _Alignof(struct sdp_cand_ext));
    if (ext == NULL)
        return no_mem(c);
    for (unsigned i = 0; i < count / 2; i++) {
        if (i > 0)
            t = next_tok(&rest);
        struct span val = next_tok(&rest);
        if (!is_token(t))
            return fail(c, -EINVAL, t.p, "a=candidate: bad extension name");
        if ((ext[i].name = dup_span(c, t)) == NULL || (ext[i].value = dup_span(c, val)) == NULL)
            return no_mem(c);
    }
    k->ext = ext;
    k->ext_count = count / 2;
    return 0;
}

enum level_rule { ANY_LEVEL, SESSION_ONLY, MEDIA_ONLY };

/* What each known attribute needs; indexed by kind. */
static const struct attr_def {
    const char *name;
    int (*parse)(struct ctx *, struct sdp_attr *, struct span);
    bool flag;   /* property attribute: no value */
    bool single; /* at most one per level */
    enum level_rule level;
} attr_defs[] = {
    [SDP_ATTR_OTHER] = {NULL, NULL, false, false, ANY_LEVEL},
    [SDP_ATTR_FINGERPRINT] = {"fingerprint", p_fingerprint, false, false, ANY_LEVEL},
    [SDP_ATTR_SETUP] = {"setup", p_setup, false, true, ANY_LEVEL},
    [SDP_ATTR_CONNECTION] = {"connection", p_connection, false, true, ANY_LEVEL},
    [SDP_ATTR_TLS_ID] = {"tls-id", p_tls_id, false, true, ANY_LEVEL},
    [SDP_ATTR_SCTP_PORT] = {"sctp-port", p_sctp_port, false, true, MEDIA_ONLY},
    [SDP_ATTR_MAX_MESSAGE_SIZE] = {"max-message-size", p_max_message_size, false, true, MEDIA_ONLY},
    [SDP_ATTR_DCMAP] = {"dcmap", p_dcmap, false, false, MEDIA_ONLY},
    [SDP_ATTR_DCSA] = {"dcsa", p_dcsa, false, false, MEDIA_ONLY},
    [SDP_ATTR_ICE_UFRAG] = {"ice-ufrag", p_ice_ufrag, false, true, ANY_LEVEL},
    [SDP_ATTR_ICE_PWD] = {"ice-pwd", p_ice_pwd, false, true, ANY_LEVEL},
    [SDP_ATTR_ICE_LITE] = {"ice-lite", NULL, true, true, SESSION_ONLY},
    [SDP_ATTR_CANDIDATE] = {"candidate", p_candidate, false, false, MEDIA_ONLY},
};

/* What has been seen at one level (session or media), to enforce counts and uniqueness. */
struct level {
    struct sdp_attr **attrs;
    struct sdp_attr *attrs_tail;
    struct sdp_line **lines;
    struct sdp_line *lines_tail;
    bool media;
    unsigned count, fingerprints, dcmaps;
    uint32_t seen; /* bit per kind */
};

static void level_open(struct level *l, struct sdp_attr **attrs, struct sdp_line **lines,
                       bool media)
{
    memset(l, 0, sizeof(*l));
    l->attrs = attrs;
    l->lines = lines;
    l->media = media;
    for (struct sdp_attr *a = *attrs; a != NULL; a = a->next) {
        l->attrs_tail = a;
        l->count++;
        l->seen |= 1u << a->kind;
        l->fingerprints += a->kind == SDP_ATTR_FINGERPRINT;
        l->dcmaps += a->kind == SDP_ATTR_DCMAP;
    }
    for (struct sdp_line *x = *lines; x != NULL; x = x->next) {
        l->lines_tail = x;
        l->count++;
    }
}

static int level_check(struct ctx *c, const struct level *l, const struct sdp_attr *a,
                       const char *at)
{
    const struct attr_def *def = &attr_defs[a->kind];
    if (l->count >= c->lim->max_attrs)
        return fail(c, -E2BIG, at, "more than %u attributes at one level", c->lim->max_attrs);
    if (def->level == MEDIA_ONLY && !l->media)
        return fail(c, -EINVAL, at, "a=%s is not allowed at session level", def->name);
    if (def->level == SESSION_ONLY && l->media)
        return fail(c, -EINVAL, at, "a=%s is not allowed at media level", def->name);
    if (def->single && (l->seen & (1u << a->kind)))
        return fail(c, -EINVAL, at, "duplicate a=%s", def->name);
    if (a->kind == SDP_ATTR_FINGERPRINT && l->fingerprints >= c->lim->max_fingerprints)
        return fail(c, -E2BIG, at, "more than %u a=fingerprint", c->lim->max_fingerprints);
    if (a->kind == SDP_ATTR_DCMAP) {
        if (l->dcmaps >= c->lim->max_dcmaps)
            return fail(c, -E2BIG, at, "more than %u a=dcmap", c->lim->max_dcmaps);
        for (const struct sdp_attr *x = *l->attrs; x != NULL; x = x->next)
            if (x->kind == SDP_ATTR_DCMAP && x->u.dcmap.stream_id == a->u.dcmap.stream_id)
                return fail(c, -EINVAL, at, "duplicate a=dcmap stream id %u",
                            (unsigned)a->u.dcmap.stream_id);
    }
    return 0;
}

static void level_append(struct level *l, struct sdp_attr *a)
{
    a->next = NULL;
    if (l->attrs_tail != NULL)
        l->attrs_tail->next = a;
    else
        *l->attrs = a;
    l->attrs_tail = a;
    l->count++;
    l->seen |= 1u << a->kind;
    l->fingerprints += a->kind == SDP_ATTR_FINGERPRINT;
    l->dcmaps += a->kind == SDP_ATTR_DCMAP;
}

static enum sdp_attr_kind attr_kind(struct span name)
{
    /* No known name is shorter than 4 or longer than 16 bytes: most opaque names stop here. */
    if (name.n < 4 || name.n > 16)
        return SDP_ATTR_OTHER;
    for (unsigned i = 1; i < COUNT(attr_defs); i++)
        if (attr_defs[i].name[0] == lower(name.p[0]) && span_ieq(name, attr_defs[i].name))
            return (enum sdp_attr_kind)i;
    return SDP_ATTR_OTHER;
}

/* Fills a from name[:value]: copies both, derives kind and typed fields. The union is not
   cleared (it is most of the struct): each typed parser sets every field of its member. */
static int attr_fill(struct ctx *c, struct sdp_attr *a, struct span name, bool has_value,
                     struct span value)
{
    a->next = NULL;
    a->value = NULL;
    if (!is_token(name))
        return fail(c, -EINVAL, name.p, "bad attribute name '%.*s'", QUOTE(name));
    char *buf = arena_alloc(c->arena, name.n + 1 + (has_value ? value.n + 1 : 0), 1);
    if (buf == NULL)
        return no_mem(c);
    memcpy(buf, name.p, name.n);
    buf[name.n] = '\0';
    a->name = buf;
    if (has_value) {
        char *v = buf + name.n + 1;
        if (value.n > 0)
            memcpy(v, value.p, value.n);
        v[value.n] = '\0';
        a->value = v;
    }
    a->kind = attr_kind(name);
    const struct attr_def *def = &attr_defs[a->kind];
    if (a->kind == SDP_ATTR_OTHER)
        return 0;
    if (def->flag)
        return has_value ? fail(c, -EINVAL, value.p, "a=%s takes no value", def->name) : 0;
    if (!has_value)
        return fail(c, -EINVAL, name.p, "a=%s needs a value", def->name);
    return def->parse(c, a, value);
}

/* ---- lines and sessions ---- */

/* Where a kept line goes, in RFC 8866 order (c= sits between 4 and 5, t= between 5 and 6). */
static int line_rank(char type)
{
    switch (type) {
    case 'i':
        return 1;
    case 'u':
        return 2;
    case 'e':
        return 3;
    case 'p':
        return 4;
    case 'b':
        return 5;
    case 'r':
        return 6;
    case 'z':
        return 7;
    case 'k':
        return 8;
    default:
        return 0;
    }
}

struct parser {
    struct ctx c;
    struct sdp_session *first, *sess, *sess_tail;
    struct sdp_media *media, *media_tail;
    unsigned sessions, media_count, sess_lines;
    struct level lvl;
};

static int keep_line(struct parser *P, char type, struct span v, const char *at)
{
    struct level *l = &P->lvl;
    if (l->count >= P->c.lim->max_attrs)
        return fail(&P->c, -E2BIG, at, "more than %u attributes at one level", P->c.lim->max_attrs);
    struct sdp_line *x = NEW(&P->c, struct sdp_line);
    if (x == NULL || (x->value = dup_span(&P->c, v)) == NULL)
        return no_mem(&P->c);
    x->type = type;
    int rank = line_rank(type);
    /* Kept sorted by rank so that encode (which writes them at their place) round-trips. */
    if (l->lines_tail == NULL || line_rank(l->lines_tail->type) <= rank) {
        if (l->lines_tail != NULL)
            l->lines_tail->next = x;
        else
            *l->lines = x;
        l->lines_tail = x;
    } else {
        struct sdp_line **pp = l->lines;
        while (line_rank((*pp)->type) <= rank)
            pp = &(*pp)->next;
        x->next = *pp;
        *pp = x;
    }
    l->count++;
    return 0;
}

static int new_session(struct parser *P, const char *at)
{
    if (P->sessions >= P->c.lim->max_sessions)
        return fail(&P->c, -E2BIG, at, "more than %u session descriptions", P->c.lim->max_sessions);
    struct sdp_session *s = NEW(&P->c, struct sdp_session);
    if (s == NULL)
        return no_mem(&P->c);
    s->arena = P->c.arena;
    if (P->sess_tail != NULL)
        P->sess_tail->next = s;
    else
        P->first = s;
    P->sess = P->sess_tail = s;
    P->media = P->media_tail = NULL;
    P->sessions++;
    P->media_count = 0;
    P->sess_lines = 0;
    level_open(&P->lvl, &s->attrs, &s->lines, false);
    return 0;
}

static int parse_conn(struct ctx *c, struct sdp_connection *conn, struct span v)
{
    struct span rest = v;
    struct span net = next_tok(&rest), type = next_tok(&rest), addr = next_tok(&rest);
    if (!span_is(net, "IN"))
        return fail(c, -EINVAL, net.p, "c=: network type must be IN");
    if (span_is(type, "IP4"))
        conn->addrtype = SDP_ADDR_IP4;
    else if (span_is(type, "IP6"))
        conn->addrtype = SDP_ADDR_IP6;
    else
        return fail(c, -EINVAL, type.p, "c=: address type must be IP4 or IP6");
    if (trim_left(rest).n > 0)
        return fail(c, -EINVAL, rest.p, "c=: unexpected text after the address");
    if (span_is(addr, "$")) {
        conn->kind = SDP_VALUE_CHOOSE;
    } else if (span_is(addr, "-")) {
        conn->kind = SDP_VALUE_UNSPECIFIED;
    } else if (parse_ip(addr, conn->addrtype, conn->addr)) {
        conn->kind = SDP_VALUE_SET;
    } else {
        return fail(c, -EINVAL, addr.p, "c=: '%.*s' is not an %s address", QUOTE(addr),
                    conn->addrtype == SDP_ADDR_IP4 ? "IPv4" : "IPv6");
    }
    conn->present = true;
    return 0;
}

static const char *const protos[] = {
    [SDP_PROTO_TCP_TLS_MSRP] = "TCP/TLS/MSRP",
    [SDP_PROTO_TCP_MSRP] = "TCP/MSRP",
    [SDP_PROTO_TCP_TLS_BFCP] = "TCP/TLS/BFCP",
    [SDP_PROTO_TCP_BFCP] = "TCP/BFCP",
    [SDP_PROTO_TCP] = "TCP",
    [SDP_PROTO_UDP_DTLS_SCTP] = "UDP/DTLS/SCTP",
    [SDP_PROTO_TCP_DTLS_SCTP] = "TCP/DTLS/SCTP",
    [SDP_PROTO_DTLS_SCTP] = "DTLS/SCTP",
    [SDP_PROTO_UDP_SCTP] = "UDP/SCTP",
};

/* proto = token *("/" token) */
static bool is_proto(struct span s)
{
    size_t seg = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] == '/') {
            if (seg == 0)
                return false;
            seg = 0;
        } else if (token_char(s.p[i])) {
            seg++;
        } else {
            return false;
        }
    }
    return seg > 0;
}

static int parse_media(struct ctx *c, struct sdp_media *m, struct span v)
{
    struct span rest = v, t;
    uint64_t n;

    t = next_tok(&rest);
    if (!is_token(t))
        return fail(c, -EINVAL, t.p, "m=: bad media type");
    if ((m->type = dup_span(c, t)) == NULL)
        return no_mem(c);

    t = next_tok(&rest);
    if (span_is(t, "$")) {
        m->port_kind = SDP_VALUE_CHOOSE;
    } else if (span_is(t, "-")) {
        m->port_kind = SDP_VALUE_UNSPECIFIED;
    } else {
        const char *slash = memchr(t.p, '/', t.n);
        struct span port = {t.p, slash != NULL ? (size_t)(slash - t.p) : t.n};
        if (!parse_uint(port, 5, 65535, &n))
            return fail(c, -EINVAL, t.p, "m=: port must be $, - or 0 to 65535");
        m->port = (uint16_t)n;
        if (slash != NULL) {
            struct span cnt = {slash + 1, t.n - port.n - 1};
            if (!parse_uint(cnt, 5, 65535, &n) || n == 0)
                return fail(c, -EINVAL, cnt.p, "m=: bad port count");
            m->port_count = (uint16_t)n;
        }
    }

    t = next_tok(&rest);
    if (!is_proto(t))
        return fail(c, -EINVAL, t.p, "m=: bad protocol");
    if ((m->proto = dup_span(c, t)) == NULL)
        return no_mem(c);
    m->proto_id = SDP_PROTO_OTHER;
    for (unsigned i = 1; i < COUNT(protos); i++)
        if (span_is(t, protos[i]))
            m->proto_id = (enum sdp_proto)i;

    struct span fmt = trim_left(rest);
    if (fmt.n == 0)
        return fail(c, -EINVAL, fmt.p, "m=: missing format");
    for (struct span r = fmt; (t = next_tok(&r)).n > 0;)
        if (!is_token(t))
            return fail(c, -EINVAL, t.p, "m=: bad format '%.*s'", QUOTE(t));
    if ((m->fmt = dup_span(c, fmt)) == NULL)
        return no_mem(c);
    return 0;
}

static int parse_origin(struct ctx *c, struct sdp_session *s, struct span v)
{
    const char **fields[] = {&s->origin.username, &s->origin.sess_id,  &s->origin.sess_version,
                             &s->origin.nettype,  &s->origin.addrtype, &s->origin.address};
    struct span rest = v;
    for (unsigned i = 0; i < COUNT(fields); i++) {
        struct span t = next_tok(&rest);
        if (t.n == 0)
            return fail(c, -EINVAL, t.p, "o=: needs 6 fields, got %u", i);
        if ((*fields[i] = dup_span(c, t)) == NULL)
            return no_mem(c);
    }
    if (trim_left(rest).n > 0)
        return fail(c, -EINVAL, rest.p, "o=: more than 6 fields");
    s->has_origin = true;
    return 0;
}

static int parse_timing(struct ctx *c, struct sdp_session *s, struct span v)
{
    struct span rest = v;
    struct span a = next_tok(&rest), b = next_tok(&rest);
    if (!parse_uint(a, 20, UINT64_MAX, &s->start_time) ||
        !parse_uint(b, 20, UINT64_MAX, &s->stop_time) || trim_left(rest).n > 0)
        return fail(c, -EINVAL, v.p, "t=: expected <start> <stop>");
    s->has_timing = true;
    return 0;
}

static int parse_attr_line(struct parser *P, struct span v)
{
    struct ctx *c = &P->c;
    const char *colon = memchr(v.p, ':', v.n);
    struct span name = {v.p, colon != NULL ? (size_t)(colon - v.p) : v.n};
    struct span value = {colon != NULL ? colon + 1 : v.p + v.n,
                         colon != NULL ? v.n - name.n - 1 : 0};
    struct sdp_attr *a = arena_alloc(c->arena, sizeof(*a), _Alignof(struct sdp_attr));
    if (a == NULL)
        return no_mem(c);
    int rc = attr_fill(c, a, name, colon != NULL, value);
    if (rc == 0)
        rc = level_check(c, &P->lvl, a, v.p);
    if (rc == 0)
        level_append(&P->lvl, a);
    return rc;
}

static int parse_line(struct parser *P, char type, struct span v, const char *at)
{
    struct ctx *c = &P->c;
    int rc;
    if (type == 'v') {
        if (P->sess == NULL || P->sess_lines > 0)
            if ((rc = new_session(P, at)) < 0)
                return rc;
        if (!span_is(v, "0"))
            return fail(c, -EINVAL, v.p, "v=: only version 0 is known");
        P->sess->has_version = true;
        P->sess_lines++;
        return 0;
    }
    if (P->sess == NULL && (rc = new_session(P, at)) < 0)
        return rc;
    P->sess_lines++;
    struct sdp_session *s = P->sess;

    if (type == 'm') {
        if (P->media_count >= c->lim->max_media)
            return fail(c, -E2BIG, at, "more than %u m= lines", c->lim->max_media);
        struct sdp_media *m = NEW(c, struct sdp_media);
        if (m == NULL)
            return no_mem(c);
        if (P->media_tail != NULL)
            P->media_tail->next = m;
        else
            s->media = m;
        P->media = P->media_tail = m;
        P->media_count++;
        level_open(&P->lvl, &m->attrs, &m->lines, true);
        return parse_media(c, m, v);
    }
    if (type == 'a')
        return parse_attr_line(P, v);
    if (type == 'c') {
        struct sdp_connection *conn = P->media != NULL ? &P->media->conn : &s->conn;
        if (conn->present)
            return fail(c, -EINVAL, at, "duplicate c= line");
        return parse_conn(c, conn, v);
    }
    if (type == 'i' || type == 'b' || type == 'k')
        return keep_line(P, type, v, at);
    if (strchr("ostuepzr", type) == NULL)
        return fail(c, -EINVAL, at, "unknown line type '%c='", type);
    if (P->media != NULL)
        return fail(c, -EINVAL, at, "%c= is not allowed after m=", type);
    switch (type) {
    case 'o':
        if (s->has_origin)
            return fail(c, -EINVAL, at, "duplicate o= line");
        return parse_origin(c, s, v);
    case 's':
        if (s->name != NULL)
            return fail(c, -EINVAL, at, "duplicate s= line");
        return (s->name = dup_span(c, v)) == NULL ? no_mem(c) : 0;
    case 't':
        if (s->has_timing)
            return fail(c, -EINVAL, at, "only one t= line is supported");
        return parse_timing(c, s, v);
    default:
        return keep_line(P, type, v, at);
    }
}

int sdp_parse(const char *data, size_t len, const struct sdp_limits *limits,
              struct sdp_session **out, struct sdp_error *err)
{
    struct parser P;
    memset(&P, 0, sizeof(P));
    P.c.lim = limits != NULL ? limits : &sdp_default_limits;
    P.c.err = err;
    P.c.base = data;
    *out = NULL;
    if (err != NULL) {
        err->line = 0;
        err->offset = 0;
        err->text[0] = '\0';
    }
    if (len == 0 || data == NULL)
        return fail(&P.c, -EINVAL, NULL, "empty SDP");
    if (len > P.c.lim->max_len)
        return fail(&P.c, -E2BIG, NULL, "SDP of %zu bytes exceeds %zu", len, P.c.lim->max_len);

    const char *end = data + len;
    P.c.arena = arena_new(len * ARENA_PER_BYTE + 512);
    if (P.c.arena == NULL)
        return no_mem(&P.c);

    int rc = 0;
    for (const char *p = data; p < end && rc == 0;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl != NULL ? nl : end;
        P.c.line++;
        if ((unsigned)P.c.line > P.c.lim->max_lines) {
            rc = fail(&P.c, -E2BIG, p, "more than %u lines", P.c.lim->max_lines);
            break;
        }
        if ((size_t)(le - p) > P.c.lim->max_line_len) {
            rc = fail(&P.c, -E2BIG, p, "line longer than %zu bytes", P.c.lim->max_line_len);
            break;
        }
        const char *s = p, *e = le;
        p = nl != NULL ? nl + 1 : end;
        while (e > s && (is_ws(e[-1]) || e[-1] == '\r'))
            e--;
        while (s < e && is_ws(*s))
            s++;
        if (s == e)
            continue;
        const char *bad = bad_text(s, e);
        if (bad != NULL) {
            unsigned ch = (unsigned char)*bad;
            rc = fail(&P.c, -EINVAL, bad,
                      ch >= 0x80 ? "invalid UTF-8 byte 0x%02x" : "control character 0x%02x", ch);
            break;
        }
        if (e - s < 2 || s[1] != '=' || s[0] < 'a' || s[0] > 'z') {
            rc = fail(&P.c, -EINVAL, s, "expected <type>=<value>");
            break;
        }
        rc = parse_line(&P, s[0], (struct span){s + 2, (size_t)(e - s - 2)}, s);
    }
    if (rc == 0 && P.first == NULL)
        rc = fail(&P.c, -EINVAL, NULL, "empty SDP");
    if (rc < 0) {
        arena_free(P.c.arena);
        return rc;
    }
    *out = P.first;
    return 0;
}

void sdp_free(struct sdp_session *s)
{
    if (s != NULL)
        arena_free(s->arena);
}

/* ---- encoding ---- */

struct writer {
    char *buf;
    size_t cap, pos;
};

static void put(struct writer *w, const char *s, size_t n)
{
    if (n > 0 && w->pos <= w->cap && n <= w->cap - w->pos)
        memcpy(w->buf + w->pos, s, n);
    w->pos += n;
}

static void puts_(struct writer *w, const char *s)
{
    put(w, s, strlen(s));
}

static void put_u64(struct writer *w, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    put(w, tmp + i, sizeof(tmp) - i);
}

static void put_lines(struct writer *w, const struct sdp_line *x, int lo, int hi)
{
    for (; x != NULL; x = x->next) {
        int rank = line_rank(x->type);
        if (rank < lo || rank > hi)
            continue;
        char head[2] = {x->type, '='};
        put(w, head, 2);
        puts_(w, x->value);
        put(w, "\r\n", 2);
    }
}

static void put_conn(struct writer *w, const struct sdp_connection *c)
{
    if (!c->present)
        return;
    puts_(w, c->addrtype == SDP_ADDR_IP6 ? "c=IN IP6 " : "c=IN IP4 ");
    if (c->kind == SDP_VALUE_CHOOSE)
        put(w, "$", 1);
    else if (c->kind == SDP_VALUE_UNSPECIFIED)
        put(w, "-", 1);
    else
        puts_(w, c->addr);
    put(w, "\r\n", 2);
}

static void put_attrs(struct writer *w, const struct sdp_attr *a)
{
    for (; a != NULL; a = a->next) {
        put(w, "a=", 2);
        puts_(w, a->name);
        if (a->value != NULL) {
            put(w, ":", 1);
            puts_(w, a->value);
        }
        put(w, "\r\n", 2);
    }
}

static void put_media(struct writer *w, const struct sdp_media *m)
{
    put(w, "m=", 2);
    puts_(w, m->type);
    put(w, " ", 1);
    if (m->port_kind == SDP_VALUE_CHOOSE) {
        put(w, "$", 1);
    } else if (m->port_kind == SDP_VALUE_UNSPECIFIED) {
        put(w, "-", 1);
    } else {
        put_u64(w, m->port);
        if (m->port_count != 0) {
            put(w, "/", 1);
            put_u64(w, m->port_count);
        }
    }
    put(w, " ", 1);
    puts_(w, m->proto);
    put(w, " ", 1);
    puts_(w, m->fmt);
    put(w, "\r\n", 2);
    put_lines(w, m->lines, 1, 4);
    put_conn(w, &m->conn);
    put_lines(w, m->lines, 5, 8);
    put_attrs(w, m->attrs);
}

int sdp_encode(const struct sdp_session *s, char *buf, size_t cap, size_t *len_out)
{
    struct writer w = {buf, buf != NULL ? cap : 0, 0};
    for (bool first = true; s != NULL; s = s->next, first = false) {
        /* A later alternative must start with v= or the parser would merge it. */
        if (s->has_version || !first)
            put(&w, "v=0\r\n", 5);
        if (s->has_origin) {
            const char *const f[] = {s->origin.username, s->origin.sess_id,  s->origin.sess_version,
                                     s->origin.nettype,  s->origin.addrtype, s->origin.address};
            put(&w, "o=", 2);
            for (unsigned i = 0; i < COUNT(f); i++) {
                if (i > 0)
                    put(&w, " ", 1);
                puts_(&w, f[i]);
            }
            put(&w, "\r\n", 2);
        }
        if (s->name != NULL) {
            put(&w, "s=", 2);
            /* RFC 8866 asks for a single space when there is no name. */
            puts_(&w, s->name[0] != '\0' ? s->name : " ");
            put(&w, "\r\n", 2);
        }
        put_lines(&w, s->lines, 1, 4);
        put_conn(&w, &s->conn);
        put_lines(&w, s->lines, 5, 5);
        if (s->has_timing) {
            put(&w, "t=", 2);
            put_u64(&w, s->start_time);
            put(&w, " ", 1);
            put_u64(&w, s->stop_time);
            put(&w, "\r\n", 2);
        }
        put_lines(&w, s->lines, 6, 8);
        put_attrs(&w, s->attrs);
        for (const struct sdp_media *m = s->media; m != NULL; m = m->next)
            put_media(&w, m);
    }
    if (len_out != NULL)
        *len_out = w.pos;
    if (w.pos > w.cap)
        return -ENOSPC;
    if (w.pos < w.cap)
        buf[w.pos] = '\0';
    return 0;
}

/* ---- comparison ---- */

static bool str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static bool conn_eq(const struct sdp_connection *a, const struct sdp_connection *b)
{
    if (a->present != b->present)
        return false;
    if (!a->present)
        return true;
    return a->kind == b->kind && a->addrtype == b->addrtype &&
           (a->kind != SDP_VALUE_SET || strcmp(a->addr, b->addr) == 0);
}

static bool lines_eq(const struct sdp_line *a, const struct sdp_line *b)
{
    for (; a != NULL && b != NULL; a = a->next, b = b->next)
        if (a->type != b->type || !str_eq(a->value, b->value))
            return false;
    return a == NULL && b == NULL;
}

/* The typed fields are derived from name and value, so these decide. */
static bool attrs_eq(const struct sdp_attr *a, const struct sdp_attr *b)
{
    for (; a != NULL && b != NULL; a = a->next, b = b->next)
        if (a->kind != b->kind || !str_eq(a->name, b->name) || !str_eq(a->value, b->value))
            return false;
    return a == NULL && b == NULL;
}

static bool media_eq(const struct sdp_media *a, const struct sdp_media *b)
{
    return str_eq(a->type, b->type) && a->port_kind == b->port_kind &&
           (a->port_kind != SDP_VALUE_SET ||
            (a->port == b->port && a->port_count == b->port_count)) &&
           str_eq(a->proto, b->proto) && a->proto_id == b->proto_id && str_eq(a->fmt, b->fmt) &&
           conn_eq(&a->conn, &b->conn) && lines_eq(a->lines, b->lines) &&
           attrs_eq(a->attrs, b->attrs);
}

static bool session_eq(const struct sdp_session *a, const struct sdp_session *b)
{
    if (a->has_version != b->has_version || a->has_origin != b->has_origin ||
        a->has_timing != b->has_timing || !str_eq(a->name, b->name))
        return false;
    if (a->has_origin && (!str_eq(a->origin.username, b->origin.username) ||
                          !str_eq(a->origin.sess_id, b->origin.sess_id) ||
                          !str_eq(a->origin.sess_version, b->origin.sess_version) ||
                          !str_eq(a->origin.nettype, b->origin.nettype) ||
                          !str_eq(a->origin.addrtype, b->origin.addrtype) ||
                          !str_eq(a->origin.address, b->origin.address)))
        return false;
    if (a->has_timing && (a->start_time != b->start_time || a->stop_time != b->stop_time))
        return false;
    if (!conn_eq(&a->conn, &b->conn) || !lines_eq(a->lines, b->lines) ||
        !attrs_eq(a->attrs, b->attrs))
        return false;
    const struct sdp_media *x = a->media, *y = b->media;
    for (; x != NULL && y != NULL; x = x->next, y = y->next)
        if (!media_eq(x, y))
            return false;
    return x == NULL && y == NULL;
}

bool sdp_equal(const struct sdp_session *a, const struct sdp_session *b)
{
    for (; a != NULL && b != NULL; a = a->next, b = b->next)
        if (!session_eq(a, b))
            return false;
    return a == NULL && b == NULL;
}

/* ---- building replies ---- */

int sdp_connection_set(struct sdp_connection *c, enum sdp_value_kind kind, const char *addr)
{
    if (kind == SDP_VALUE_SET) {
        if (addr == NULL)
            return -EINVAL;
        struct span s = {addr, strlen(addr)};
        if (parse_ip(s, SDP_ADDR_IP4, c->addr))
            c->addrtype = SDP_ADDR_IP4;
        else if (parse_ip(s, SDP_ADDR_IP6, c->addr))
            c->addrtype = SDP_ADDR_IP6;
        else
            return -EINVAL;
    } else if (kind == SDP_VALUE_CHOOSE || kind == SDP_VALUE_UNSPECIFIED) {
        c->addr[0] = '\0';
    } else {
        return -EINVAL;
    }
    c->kind = kind;
    c->present = true;
    return 0;
}

int sdp_media_set_port(struct sdp_media *m, enum sdp_value_kind kind, uint16_t port)
{
    if (kind != SDP_VALUE_SET && kind != SDP_VALUE_CHOOSE && kind != SDP_VALUE_UNSPECIFIED)
        return -EINVAL;
    m->port_kind = kind;
    m->port = kind == SDP_VALUE_SET ? port : 0;
    m->port_count = 0;
    return 0;
}

static void setter_ctx(struct ctx *c, struct sdp_session *s)
{
    memset(c, 0, sizeof(*c));
    c->arena = s->arena;
    c->lim = &sdp_default_limits;
}

int sdp_attr_add(struct sdp_session *s, struct sdp_media *m, const char *name, const char *value,
                 const struct sdp_attr **out)
{
    struct ctx c;
    struct level l;
    if (s == NULL || name == NULL)
        return -EINVAL;
    setter_ctx(&c, s);
    struct span n = {name, strlen(name)};
    struct span v = {value != NULL ? value : name, value != NULL ? strlen(value) : 0};
    if (bad_text(v.p, v.p + v.n) != NULL)
        return -EINVAL;
    if (m != NULL)
        level_open(&l, &m->attrs, &m->lines, true);
    else
        level_open(&l, &s->attrs, &s->lines, false);
    struct sdp_attr *a = NEW(&c, struct sdp_attr);
    if (a == NULL)
        return -ENOMEM;
    int rc = attr_fill(&c, a, n, value != NULL, v);
    if (rc == 0)
        rc = level_check(&c, &l, a, NULL);
    if (rc < 0)
        return rc;
    level_append(&l, a);
    if (out != NULL)
        *out = a;
    return 0;
}

int sdp_attr_remove(struct sdp_session *s, struct sdp_media *m, const struct sdp_attr *a)
{
    if (s == NULL)
        return -EINVAL;
    for (struct sdp_attr **pp = m != NULL ? &m->attrs : &s->attrs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == a) {
            *pp = a->next;
            return 0;
        }
    }
    return -ENOENT;
}

int sdp_fingerprint_fill(struct sdp_session *s, struct sdp_media *m, enum sdp_hash hash,
                         const uint8_t *digest, size_t len)
{
    static const char hexdig[] = "0123456789ABCDEF";
    const char *hname = sdp_hash_name(hash);
    if (s == NULL || hname == NULL || digest == NULL || len != sdp_hash_len(hash))
        return -EINVAL;
    char value[8 + 3 * SDP_FINGERPRINT_MAX + 1];
    size_t n = strlen(hname);
    memcpy(value, hname, n);
    for (size_t i = 0; i < len; i++) {
        value[n++] = i == 0 ? ' ' : ':';
        value[n++] = hexdig[digest[i] >> 4];
        value[n++] = hexdig[digest[i] & 15];
    }
    value[n] = '\0';

    struct sdp_attr *choose = NULL;
    for (struct sdp_attr **pp = m != NULL ? &m->attrs : &s->attrs; *pp != NULL;) {
        struct sdp_attr *a = *pp;
        if (a->kind == SDP_ATTR_FINGERPRINT && a->u.fingerprint.kind == SDP_VALUE_CHOOSE) {
            if (choose == NULL) {
                choose = a;
            } else {
                *pp = a->next; /* a second request for the same value */
                continue;
            }
        }
        pp = &a->next;
    }
    if (choose == NULL)
        return sdp_attr_add(s, m, "fingerprint", value, NULL);

    struct ctx c;
    struct sdp_attr tmp;
    setter_ctx(&c, s);
    memset(&tmp, 0, sizeof(tmp));
    struct span name = {choose->name, strlen(choose->name)};
    int rc = attr_fill(&c, &tmp, name, true, (struct span){value, n});
    if (rc < 0)
        return rc;
    tmp.next = choose->next;
    *choose = tmp;
    return 0;
}

/* ---- lookups ---- */

const struct sdp_attr *sdp_attr_find(const struct sdp_attr *list, enum sdp_attr_kind kind)
{
    for (; list != NULL; list = list->next)
        if (list->kind == kind)
            return list;
    return NULL;
}

const struct sdp_attr *sdp_attr_find_name(const struct sdp_attr *list, const char *name)
{
    struct span n = {name, strlen(name)};
    for (; list != NULL; list = list->next) {
        struct span x = {list->name, strlen(list->name)};
        if (x.n != n.n)
            continue;
        size_t i = 0;
        while (i < n.n && lower(x.p[i]) == lower(n.p[i]))
            i++;
        if (i == n.n)
            return list;
    }
    return NULL;
}

const struct sdp_connection *sdp_media_connection(const struct sdp_session *s,
                                                  const struct sdp_media *m)
{
    if (m != NULL && m->conn.present)
        return &m->conn;
    if (s != NULL && s->conn.present)
        return &s->conn;
    return NULL;
}

uint64_t sdp_media_max_message_size(const struct sdp_media *m)
{
    const struct sdp_attr *a = sdp_attr_find(m->attrs, SDP_ATTR_MAX_MESSAGE_SIZE);
    return a != NULL ? a->u.max_message_size : 65536;
}
