/* H.248.1 text encoder (Annex B): compact and pretty forms, written straight into the caller's
 * buffer, refusing any model that a conforming parser would not read back. */
#include "h248.h"
#include "token.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

struct spelling {
    const char *s;
    uint8_t n;
};

static const struct spelling short_spelling[H248_TOK_COUNT] = {
#define SPELL_SHORT(id, long_name, short_name)                                                     \
    [H248_TOK_##id] = {short_name, sizeof(short_name) - 1},
    H248_TOKENS(SPELL_SHORT)
#undef SPELL_SHORT
};

static const struct spelling long_spelling[H248_TOK_COUNT] = {
#define SPELL_LONG(id, long_name, short_name) [H248_TOK_##id] = {long_name, sizeof(long_name) - 1},
    H248_TOKENS(SPELL_LONG)
#undef SPELL_LONG
};

/* Character classes of Annex B, one bit each. */
enum {
    C_SAFE = 1 << 0,   /* SafeChar */
    C_HIGH = 1 << 1,   /* %x80-FF, allowed in an unquoted VALUE since v3 */
    C_HEX = 1 << 2,    /* HEXDIG */
    C_V4 = 1 << 3,     /* IPv4address: DIGIT / "." */
    C_V6 = 1 << 4,     /* IPv6address: HEXDIG / ":" / "." */
    C_DOMAIN = 1 << 5, /* domainName: ALPHA / DIGIT / "-" / "." */
    C_NAME = 1 << 6,   /* NAME: ALPHA / DIGIT / "_" */
};

#define DIG (C_SAFE | C_HEX | C_V4 | C_V6 | C_DOMAIN | C_NAME)
#define HEXL (C_SAFE | C_HEX | C_V6 | C_DOMAIN | C_NAME)
#define ALPH (C_SAFE | C_DOMAIN | C_NAME)

static const uint8_t char_class[256] = {
    ['0' ... '9'] = DIG,
    ['A' ... 'F'] = HEXL,
    ['a' ... 'f'] = HEXL,
    ['G' ... 'Z'] = ALPH,
    ['g' ... 'z'] = ALPH,
    ['_'] = C_SAFE | C_NAME,
    ['-'] = C_SAFE | C_DOMAIN,
    ['.'] = C_SAFE | C_V4 | C_V6 | C_DOMAIN,
    [':'] = C_V6,
    ['+'] = C_SAFE,
    ['&'] = C_SAFE,
    ['!'] = C_SAFE,
    ['/'] = C_SAFE,
    ['\''] = C_SAFE,
    ['?'] = C_SAFE,
    ['@'] = C_SAFE,
    ['^'] = C_SAFE,
    ['`'] = C_SAFE,
    ['~'] = C_SAFE,
    ['*'] = C_SAFE,
    ['$'] = C_SAFE,
    ['\\'] = C_SAFE,
    ['('] = C_SAFE,
    [')'] = C_SAFE,
    ['%'] = C_SAFE,
    ['|'] = C_SAFE,
    [0x80 ... 0xff] = C_HIGH,
};

static const char spaces[] = "                                                                ";

struct writer {
    char *buf;
    size_t cap;
    size_t pos; /* keeps counting past cap, so that -ENOSPC can report the size needed */
    const struct spelling *tok;
    bool pretty;
    bool invalid;
    unsigned depth;
};

static inline void put(struct writer *w, const void *s, size_t n)
{
    size_t end = w->pos + n;
    if (n != 0 && end <= w->cap)
        memcpy(w->buf + w->pos, s, n);
    w->pos = end;
}

static inline void put_char(struct writer *w, char c)
{
    if (w->pos < w->cap)
        w->buf[w->pos] = c;
    w->pos++;
}

static inline void put_str(struct writer *w, const struct h248_str *s)
{
    put(w, s->ptr, s->len);
}

static inline void put_tok(struct writer *w, enum h248_token t)
{
    put(w, w->tok[t].s, w->tok[t].n);
}

static void put_u32(struct writer *w, uint32_t v)
{
    char tmp[10];
    char *p = tmp + sizeof(tmp);
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    put(w, p, (size_t)(tmp + sizeof(tmp) - p));
}

static void put_hex32(struct writer *w, uint32_t v)
{
    static const char digits[16] = "0123456789abcdef";
    char tmp[10] = {'0', 'x'};
    for (int i = 0; i < 8; i++)
        tmp[2 + i] = digits[(v >> (28 - 4 * i)) & 0xf];
    put(w, tmp, sizeof(tmp));
}

static void newline(struct writer *w)
{
    put_char(w, '\n');
    size_t n = (size_t)w->depth * 4;
    while (n > sizeof(spaces) - 1) {
        put(w, spaces, sizeof(spaces) - 1);
        n -= sizeof(spaces) - 1;
    }
    put(w, spaces, n);
}

static inline void reject(struct writer *w)
{
    w->invalid = true;
}

/* EQUAL and INEQUAL: bare in compact form, with a space either side in pretty form. */
static void relation(struct writer *w, char c)
{
    if (w->pretty) {
        char s[3] = {' ', c, ' '};
        put(w, s, 3);
    } else {
        put_char(w, c);
    }
}

static inline void equal(struct writer *w)
{
    relation(w, '=');
}

/* Separator of a list kept on one line. */
static inline void flat_sep(struct writer *w)
{
    if (w->pretty)
        put(w, ", ", 2);
    else
        put_char(w, ',');
}

static inline void space(struct writer *w)
{
    if (w->pretty)
        put_char(w, ' ');
}

/* A braced list of items, one per line in pretty form: open, item before each, close. */
static void open_block(struct writer *w)
{
    if (w->pretty)
        put(w, " {", 2);
    else
        put_char(w, '{');
    w->depth++;
}

static void item(struct writer *w, bool *first)
{
    if (!*first)
        put_char(w, ',');
    *first = false;
    if (w->pretty)
        newline(w);
}

static void close_block(struct writer *w, bool first)
{
    w->depth--;
    if (w->pretty && !first)
        newline(w);
    put_char(w, '}');
}

/* For optional braces (event and signal parameters): the brace opens with the first item. */
static void lazy_item(struct writer *w, bool *first)
{
    if (*first)
        open_block(w);
    item(w, first);
}

static void lazy_close(struct writer *w, bool first)
{
    if (!first)
        close_block(w, false);
}

static bool all_in_class(const struct h248_str *s, unsigned mask)
{
    if (s->len == 0)
        return false;
    const unsigned char *p = (const unsigned char *)s->ptr;
    for (size_t i = 0; i < s->len; i++)
        if ((char_class[p[i]] & mask) == 0)
            return false;
    return true;
}

static bool has_char(const struct h248_str *s, char c)
{
    return s->len != 0 && memchr(s->ptr, c, s->len) != NULL;
}

/* Names, termination ids, pkgdNames: a run of SafeChar. */
static void put_name(struct writer *w, const struct h248_str *s)
{
    if (!all_in_class(s, C_SAFE))
        reject(w);
    put_str(w, s);
}

static void put_token_checked(struct writer *w, unsigned t)
{
    if (t == H248_TOK_NONE || t >= H248_TOK_COUNT) {
        reject(w);
        return;
    }
    put_tok(w, (enum h248_token)t);
}

/* quotedString = DQUOTE *(SafeChar / RestChar / WSP) DQUOTE: printable ASCII and tabs. */
static void put_quoted(struct writer *w, const struct h248_str *s)
{
    for (size_t i = 0; i < s->len; i++) {
        unsigned char c = (unsigned char)s->ptr[i];
        if (c == '"' || (c < 0x20 && c != '\t') || c >= 0x7f) {
            reject(w);
            break;
        }
    }
    put_char(w, '"');
    put_str(w, s);
    put_char(w, '"');
}

static void put_value(struct writer *w, const struct h248_value *v)
{
    if (v->quoted) {
        put_quoted(w, &v->text);
        return;
    }
    if (!all_in_class(&v->text, C_SAFE | C_HIGH))
        reject(w);
    put_str(w, &v->text);
}

/* Date "T" Time, 8 digits each. */
static void put_timestamp(struct writer *w, const char date[9], const char time[9])
{
    for (int i = 0; i < 8; i++)
        if (date[i] < '0' || date[i] > '9' || time[i] < '0' || time[i] > '9')
            reject(w);
    put(w, date, 8);
    put_char(w, 'T');
    put(w, time, 8);
}

/* Balanced braces outside quoted strings and \} escapes, and no comment: raw text must not
 * end the enclosing descriptor early nor leave it open. */
static bool raw_balanced(const struct h248_str *s)
{
    char open[64];
    size_t depth = 0;
    bool quoted = false;
    for (size_t i = 0; i < s->len; i++) {
        char c = s->ptr[i];
        if (c == '\0')
            return false;
        if (quoted) {
            quoted = c != '"';
        } else if (c == '"') {
            quoted = true;
        } else if (c == ';') {
            return false; /* a comment would swallow what follows it */
        } else if (c == '\\' && i + 1 < s->len && s->ptr[i + 1] == '}') {
            i++;
        } else if (c == '{' || c == '[') {
            if (depth == sizeof(open))
                return false;
            open[depth++] = c;
        } else if (c == '}' || c == ']') {
            if (depth == 0 || open[--depth] != (c == '}' ? '{' : '['))
                return false;
        } else if (c == ',' && depth == 0) {
            return false; /* it would end the item early */
        }
    }
    return depth == 0 && !quoted;
}

/* A final backslash would escape the closing brace that follows: keep white space between
 * them (the parser trims it). */
static void put_backslash_guard(struct writer *w, const struct h248_str *s)
{
    if (s->len != 0 && s->ptr[s->len - 1] == '\\')
        put_char(w, ' ');
}

static void put_raw(struct writer *w, const struct h248_str *s)
{
    if (s->len == 0 || !raw_balanced(s))
        reject(w);
    put_str(w, s);
    put_backslash_guard(w, s);
}

static void put_mid(struct writer *w, const struct h248_mid *m)
{
    switch (m->kind) {
    case H248_MID_IPV4:
    case H248_MID_IPV6:
        if (!all_in_class(&m->text, m->kind == H248_MID_IPV4 ? C_V4 : C_V6))
            reject(w);
        put_char(w, '[');
        put_str(w, &m->text);
        put_char(w, ']');
        break;
    case H248_MID_DOMAIN:
        if (!all_in_class(&m->text, C_DOMAIN))
            reject(w);
        put_char(w, '<');
        put_str(w, &m->text);
        put_char(w, '>');
        break;
    case H248_MID_DEVICE:
        if (m->has_port)
            reject(w);
        put_name(w, &m->text);
        return;
    case H248_MID_MTP:
        if (m->has_port || m->text.len < 4 || m->text.len > 8 || !all_in_class(&m->text, C_HEX))
            reject(w);
        put_tok(w, H248_TOK_MTP);
        put_char(w, '{');
        put_str(w, &m->text);
        put_char(w, '}');
        return;
    default:
        reject(w);
        return;
    }
    if (m->has_port) {
        put_char(w, ':');
        put_u32(w, m->port);
    }
}

static void put_error(struct writer *w, const struct h248_error_desc *e)
{
    if (e->code > 9999) /* ErrorCode = 1*4(DIGIT) */
        reject(w);
    put_tok(w, H248_TOK_ERROR);
    equal(w);
    put_u32(w, e->code);
    space(w);
    put_char(w, '{');
    if (e->has_text)
        put_quoted(w, &e->text);
    put_char(w, '}');
}

static void put_property(struct writer *w, const struct h248_property *p)
{
    put_name(w, &p->name);
    if (!p->has_value)
        return;
    const struct h248_parm_value *pv = &p->value;
    switch (pv->relation) {
    case H248_REL_EQUAL:
        relation(w, '=');
        break;
    case H248_REL_GREATER:
        relation(w, '>');
        break;
    case H248_REL_LESS:
        relation(w, '<');
        break;
    case H248_REL_NOT_EQUAL:
        relation(w, '#');
        break;
    default:
        reject(w);
        return;
    }
    /* INEQUAL takes a single VALUE. */
    if (pv->relation != H248_REL_EQUAL && pv->shape != H248_SHAPE_SINGLE)
        reject(w);
    const struct h248_value *v = pv->values;
    if (v == NULL) {
        reject(w);
        return;
    }
    switch (pv->shape) {
    case H248_SHAPE_SINGLE:
        if (v->next != NULL)
            reject(w);
        put_value(w, v);
        break;
    case H248_SHAPE_RANGE:
        if (v->next == NULL || v->next->next != NULL) {
            reject(w);
            return;
        }
        put_char(w, '[');
        put_value(w, v);
        put_char(w, ':');
        put_value(w, v->next);
        put_char(w, ']');
        break;
    case H248_SHAPE_SUBLIST:
    case H248_SHAPE_ALTERNATIVES:
        put_char(w, pv->shape == H248_SHAPE_SUBLIST ? '[' : '{');
        for (; v != NULL; v = v->next) {
            put_value(w, v);
            if (v->next != NULL)
                flat_sep(w);
        }
        put_char(w, pv->shape == H248_SHAPE_SUBLIST ? ']' : '}');
        break;
    default:
        reject(w);
    }
}

static void put_properties(struct writer *w, const struct h248_property *p, bool *first)
{
    for (; p != NULL; p = p->next) {
        item(w, first);
        put_property(w, p);
    }
}

static void put_audit_item(struct writer *w, const struct h248_audit_item *a)
{
    switch (a->kind) {
    case H248_AUDIT_TOKEN:
        put_token_checked(w, a->token);
        break;
    case H248_AUDIT_NAME:
        put_name(w, &a->text);
        break;
    case H248_AUDIT_RAW:
        put_raw(w, &a->text);
        break;
    default:
        reject(w);
    }
}

static void put_audit_items(struct writer *w, const struct h248_audit_item *a, bool *first)
{
    for (; a != NULL; a = a->next) {
        item(w, first);
        put_audit_item(w, a);
    }
}

static void put_termination_id(struct writer *w, const struct h248_termination_id *t)
{
    put_name(w, &t->text);
}

static void put_statistics(struct writer *w, const struct h248_statistics *s)
{
    bool first = true;
    put_tok(w, H248_TOK_STATISTICS);
    open_block(w);
    put_properties(w, s->items, &first);
    close_block(w, first);
    if (first) /* statisticsParameter is 1-or-more */
        reject(w);
}

/* Local/Remote: SDP verbatim with "}" escaped; never reindented, as SDP lines are significant. */
static void put_octet_string(struct writer *w, enum h248_token t, const struct h248_str *s)
{
    /* The octet zero is not in octetString. */
    if (s->len != 0 && memchr(s->ptr, '\0', s->len) != NULL)
        reject(w);
    put_tok(w, t);
    if (w->pretty)
        put(w, " {\n", 3);
    else
        put_char(w, '{');
    const char *p = s->ptr, *end = s->len != 0 ? s->ptr + s->len : s->ptr;
    while (p != end) {
        const char *brace = memchr(p, '}', (size_t)(end - p));
        if (brace == NULL) {
            put(w, p, (size_t)(end - p));
            break;
        }
        put(w, p, (size_t)(brace - p));
        put(w, "\\}", 2);
        p = brace + 1;
    }
    if (w->pretty)
        newline(w);
    else
        put_backslash_guard(w, s);
    put_char(w, '}');
}

static const enum h248_token mode_tokens[] = {
    [H248_MODE_SEND_ONLY] = H248_TOK_SEND_ONLY, [H248_MODE_RECV_ONLY] = H248_TOK_RECV_ONLY,
    [H248_MODE_SEND_RECV] = H248_TOK_SEND_RECV, [H248_MODE_INACTIVE] = H248_TOK_INACTIVE,
    [H248_MODE_LOOPBACK] = H248_TOK_LOOPBACK,
};

static void put_on_off(struct writer *w, enum h248_token t, enum h248_tristate v, bool *first)
{
    if (v == H248_UNSET)
        return;
    item(w, first);
    put_tok(w, t);
    equal(w);
    if (v == H248_ON)
        put_tok(w, H248_TOK_ON);
    else if (v == H248_OFF)
        put_tok(w, H248_TOK_OFF);
    else
        reject(w);
}

static void put_local_control(struct writer *w, const struct h248_local_control *lc)
{
    bool first = true;
    put_tok(w, H248_TOK_LOCAL_CONTROL);
    open_block(w);
    if (lc->mode != H248_MODE_UNSET) {
        item(w, &first);
        put_tok(w, H248_TOK_MODE);
        equal(w);
        if ((unsigned)lc->mode < sizeof(mode_tokens) / sizeof(mode_tokens[0]))
            put_tok(w, mode_tokens[lc->mode]);
        else
            reject(w);
    }
    put_on_off(w, H248_TOK_RESERVED_VALUE, lc->reserved_value, &first);
    put_on_off(w, H248_TOK_RESERVED_GROUP, lc->reserved_group, &first);
    put_properties(w, lc->properties, &first);
    close_block(w, first);
    if (first)
        reject(w);
}

static void put_stream_parms(struct writer *w, const struct h248_stream_parms *sp, bool *first)
{
    if (sp->local_control != NULL) {
        item(w, first);
        put_local_control(w, sp->local_control);
    }
    if (sp->has_local) {
        item(w, first);
        put_octet_string(w, H248_TOK_LOCAL, &sp->local);
    }
    if (sp->has_remote) {
        item(w, first);
        put_octet_string(w, H248_TOK_REMOTE, &sp->remote);
    }
    if (sp->statistics != NULL) {
        item(w, first);
        put_statistics(w, sp->statistics);
    }
}

static bool stream_parms_empty(const struct h248_stream_parms *sp)
{
    return sp->local_control == NULL && !sp->has_local && !sp->has_remote && sp->statistics == NULL;
}

static void put_termination_state(struct writer *w, const struct h248_termination_state *ts)
{
    static const enum h248_token service[] = {
        [H248_SERVICE_TEST] = H248_TOK_TEST,
        [H248_SERVICE_OUT_OF_SVC] = H248_TOK_OUT_OF_SVC,
        [H248_SERVICE_IN_SVC] = H248_TOK_IN_SVC,
    };
    bool first = true;
    put_tok(w, H248_TOK_TERMINATION_STATE);
    open_block(w);
    if (ts->service_state != H248_SERVICE_UNSET) {
        item(w, &first);
        put_tok(w, H248_TOK_SERVICE_STATES);
        equal(w);
        if ((unsigned)ts->service_state < sizeof(service) / sizeof(service[0]))
            put_tok(w, service[ts->service_state]);
        else
            reject(w);
    }
    if (ts->buffer_control != H248_BUFFER_UNSET) {
        item(w, &first);
        put_tok(w, H248_TOK_BUFFER);
        equal(w);
        if (ts->buffer_control == H248_BUFFER_OFF)
            put_tok(w, H248_TOK_OFF);
        else if (ts->buffer_control == H248_BUFFER_LOCKSTEP)
            put_tok(w, H248_TOK_LOCKSTEP);
        else
            reject(w);
    }
    put_properties(w, ts->properties, &first);
    close_block(w, first);
    if (first)
        reject(w);
}

static void put_media(struct writer *w, const struct h248_media *m)
{
    bool first = true;
    put_tok(w, H248_TOK_MEDIA);
    open_block(w);
    if (m->termination_state != NULL) {
        item(w, &first);
        put_termination_state(w, m->termination_state);
    }
    if (m->has_direct_parms == stream_parms_empty(&m->direct))
        reject(w); /* a flag without parameters, or parameters the flag would drop */
    if (m->has_direct_parms)
        put_stream_parms(w, &m->direct, &first);
    for (const struct h248_stream *s = m->streams; s != NULL; s = s->next) {
        bool sfirst = true;
        item(w, &first);
        put_tok(w, H248_TOK_STREAM);
        equal(w);
        put_u32(w, s->id);
        open_block(w);
        put_stream_parms(w, &s->parms, &sfirst);
        close_block(w, sfirst);
        if (sfirst)
            reject(w);
    }
    close_block(w, first);
    if (first)
        reject(w);
}

static void put_signals(struct writer *w, const struct h248_signals *s);
static void put_events(struct writer *w, const struct h248_events *e);

/* Embed{[Signals{..}][,Events=id{..}]}: at least one of the two. */
static void put_embed(struct writer *w, const struct h248_event_parm *p)
{
    bool first = true;
    put_tok(w, H248_TOK_EMBED);
    open_block(w);
    if (p->embed_signals != NULL) {
        item(w, &first);
        put_signals(w, p->embed_signals);
    }
    if (p->embed_events != NULL) {
        item(w, &first);
        put_events(w, p->embed_events);
    }
    close_block(w, first);
    if (first)
        reject(w);
}

/* digitMapValue sits between braces with no escape, so it may hold none. */
static void put_digit_map_value(struct writer *w, const struct h248_str *v)
{
    if (v->len == 0 || has_char(v, '{') || has_char(v, '}') || has_char(v, '\0'))
        reject(w);
    put_char(w, '{');
    put_str(w, v);
    put_char(w, '}');
}

static void put_digit_map_name(struct writer *w, const struct h248_str *name)
{
    if (!all_in_class(name, C_NAME))
        reject(w);
    put_str(w, name);
}

static void put_event_parm(struct writer *w, const struct h248_event_parm *p)
{
    switch (p->kind) {
    case H248_EVPARM_OTHER:
        put_property(w, &p->other);
        break;
    case H248_EVPARM_STREAM:
        put_tok(w, H248_TOK_STREAM);
        equal(w);
        put_u32(w, p->stream);
        break;
    case H248_EVPARM_KEEP_ACTIVE:
        put_tok(w, H248_TOK_KEEP_ACTIVE);
        break;
    case H248_EVPARM_EMBED:
        put_embed(w, p);
        break;
    case H248_EVPARM_DIGIT_MAP:
        /* eventDM = DigitMapToken EQUAL (digitMapName / LBRKT digitMapValue RBRKT) */
        put_tok(w, H248_TOK_DIGIT_MAP);
        equal(w);
        if (p->digit_map_is_value)
            put_digit_map_value(w, &p->digit_map);
        else
            put_digit_map_name(w, &p->digit_map);
        break;
    case H248_EVPARM_NOTIFY_IMMEDIATE:
        put_tok(w, H248_TOK_IMMEDIATE_NOTIFY);
        break;
    case H248_EVPARM_NOTIFY_NEVER:
        put_tok(w, H248_TOK_NEVER_NOTIFY);
        break;
    case H248_EVPARM_NOTIFY_REGULATED:
        put_tok(w, H248_TOK_REGULATED_NOTIFY);
        if (p->embed_signals != NULL || p->embed_events != NULL) {
            bool first = true;
            open_block(w);
            item(w, &first);
            put_embed(w, p);
            close_block(w, first);
        }
        break;
    case H248_EVPARM_RESET_EVENTS:
        put_tok(w, H248_TOK_RESET_EVENTS);
        break;
    default:
        reject(w);
    }
}

/* pkgdName [{parameters}]; observed events and buffered events allow fewer parameter kinds. */
static void put_event(struct writer *w, const struct h248_str *name,
                      const struct h248_event_parm *parms, bool stream_or_other_only)
{
    bool first = true;
    put_name(w, name);
    for (const struct h248_event_parm *p = parms; p != NULL; p = p->next) {
        if (stream_or_other_only && p->kind != H248_EVPARM_STREAM && p->kind != H248_EVPARM_OTHER)
            reject(w);
        lazy_item(w, &first);
        put_event_parm(w, p);
    }
    lazy_close(w, first);
}

static void put_events(struct writer *w, const struct h248_events *e)
{
    put_tok(w, H248_TOK_EVENTS);
    if (!e->has_request_id) {
        if (e->events != NULL)
            reject(w);
        return;
    }
    bool first = true;
    equal(w);
    put_u32(w, e->request_id);
    open_block(w);
    for (const struct h248_requested_event *ev = e->events; ev != NULL; ev = ev->next) {
        item(w, &first);
        put_event(w, &ev->name, ev->parms, false);
    }
    close_block(w, first);
    if (first)
        reject(w);
}

static void put_event_buffer(struct writer *w, const struct h248_event_buffer *eb)
{
    put_tok(w, H248_TOK_EVENT_BUFFER);
    if (eb->events == NULL)
        return;
    bool first = true;
    open_block(w);
    for (const struct h248_requested_event *ev = eb->events; ev != NULL; ev = ev->next) {
        item(w, &first);
        put_event(w, &ev->name, ev->parms, false);
    }
    close_block(w, first);
}

static void put_signal_request(struct writer *w, const struct h248_signal_request *s)
{
    static const enum h248_token types[] = {
        [H248_SIGTYPE_ON_OFF] = H248_TOK_ON_OFF,
        [H248_SIGTYPE_TIMEOUT] = H248_TOK_TIMEOUT,
        [H248_SIGTYPE_BRIEF] = H248_TOK_BRIEF,
    };
    static const enum h248_token directions[] = {
        [H248_SIGDIR_EXTERNAL] = H248_TOK_EXTERNAL,
        [H248_SIGDIR_INTERNAL] = H248_TOK_INTERNAL,
        [H248_SIGDIR_BOTH] = H248_TOK_BOTH,
    };
    static const enum h248_token reasons[] = {
        H248_TOK_TIMEOUT,      H248_TOK_INT_BY_EVENT, H248_TOK_INT_BY_SIG_DESCR,
        H248_TOK_OTHER_REASON, H248_TOK_ITERATION,
    };
    bool first = true;
    put_name(w, &s->name);
    if (s->has_stream) {
        lazy_item(w, &first);
        put_tok(w, H248_TOK_STREAM);
        equal(w);
        put_u32(w, s->stream);
    }
    if (s->type != H248_SIGTYPE_UNSET) {
        lazy_item(w, &first);
        put_tok(w, H248_TOK_SIGNAL_TYPE);
        equal(w);
        if ((unsigned)s->type < sizeof(types) / sizeof(types[0]))
            put_tok(w, types[s->type]);
        else
            reject(w);
    }
    if (s->has_duration) {
        lazy_item(w, &first);
        put_tok(w, H248_TOK_DURATION);
        equal(w);
        put_u32(w, s->duration);
    }
    if (s->notify_completion != 0) {
        /* notifyCompletion = NotifyCompletionToken EQUAL LBRKT reason *(COMMA reason) RBRKT */
        bool any = false;
        if (s->notify_completion >> 5 != 0)
            reject(w);
        lazy_item(w, &first);
        put_tok(w, H248_TOK_NOTIFY_COMPLETION);
        equal(w);
        put_char(w, '{');
        for (unsigned bit = 0; bit < 5; bit++) {
            if ((s->notify_completion & (1u << bit)) == 0)
                continue;
            if (any)
                flat_sep(w);
            put_tok(w, reasons[bit]);
            any = true;
        }
        put_char(w, '}');
    }
    if (s->keep_active) {
        lazy_item(w, &first);
        put_tok(w, H248_TOK_KEEP_ACTIVE);
    }
    if (s->direction != H248_SIGDIR_UNSET) {
        lazy_item(w, &first);
        put_tok(w, H248_TOK_DIRECTION);
        equal(w);
        if ((unsigned)s->direction < sizeof(directions) / sizeof(directions[0]))
            put_tok(w, directions[s->direction]);
        else
            reject(w);
    }
    if (s->has_request_id) {
        lazy_item(w, &first);
        put_tok(w, H248_TOK_REQUEST_ID);
        equal(w);
        put_u32(w, s->request_id);
    }
    if (s->has_intersignal_delay) {
        lazy_item(w, &first);
        put_tok(w, H248_TOK_INTERSIGNAL);
        equal(w);
        put_u32(w, s->intersignal_delay);
    }
    for (const struct h248_property *p = s->others; p != NULL; p = p->next) {
        lazy_item(w, &first);
        put_property(w, p);
    }
    lazy_close(w, first);
}

static void put_signals(struct writer *w, const struct h248_signals *s)
{
    bool first = true;
    put_tok(w, H248_TOK_SIGNALS);
    open_block(w);
    for (const struct h248_signal_item *it = s->items; it != NULL; it = it->next) {
        item(w, &first);
        if (!it->is_list) {
            if (it->signals == NULL) {
                reject(w);
                continue;
            }
            if (it->signals->next != NULL)
                reject(w);
            put_signal_request(w, it->signals);
            continue;
        }
        bool lfirst = true;
        put_tok(w, H248_TOK_SIGNAL_LIST);
        equal(w);
        put_u32(w, it->list_id);
        open_block(w);
        for (const struct h248_signal_request *r = it->signals; r != NULL; r = r->next) {
            item(w, &lfirst);
            put_signal_request(w, r);
        }
        close_block(w, lfirst);
        if (lfirst)
            reject(w);
    }
    close_block(w, first);
}

static void put_digit_map(struct writer *w, const struct h248_digit_map *dm)
{
    /* digitMapDescriptor = DigitMapToken EQUAL ((LBRKT value RBRKT) / (name [LBRKT value RBRKT]))
     */
    if (!dm->has_name && !dm->has_value)
        reject(w);
    put_tok(w, H248_TOK_DIGIT_MAP);
    equal(w);
    if (dm->has_name) {
        put_digit_map_name(w, &dm->name);
        if (dm->has_value)
            space(w);
    }
    if (dm->has_value)
        put_digit_map_value(w, &dm->value);
}

static void put_audit(struct writer *w, const struct h248_audit *a)
{
    bool first = true;
    put_tok(w, H248_TOK_AUDIT);
    open_block(w);
    put_audit_items(w, a->items, &first);
    close_block(w, first);
}

static void put_observed_events(struct writer *w, const struct h248_observed_events *oe)
{
    bool first = true;
    put_tok(w, H248_TOK_OBSERVED_EVENTS);
    equal(w);
    put_u32(w, oe->request_id);
    open_block(w);
    for (const struct h248_observed_event *ev = oe->events; ev != NULL; ev = ev->next) {
        item(w, &first);
        if (ev->has_timestamp) {
            put_timestamp(w, ev->date, ev->time);
            put_char(w, ':');
        }
        put_event(w, &ev->name, ev->parms, true);
    }
    close_block(w, first);
    if (first)
        reject(w);
}

static void put_packages(struct writer *w, const struct h248_package *p)
{
    if (p == NULL)
        reject(w);
    put_tok(w, H248_TOK_PACKAGES);
    space(w);
    put_char(w, '{');
    for (; p != NULL; p = p->next) {
        /* packagesItem = NAME "-" UINT16: a "-" in the name would split it. */
        if (!all_in_class(&p->name, C_NAME))
            reject(w);
        put_str(w, &p->name);
        put_char(w, '-');
        put_u32(w, p->version);
        if (p->next != NULL)
            flat_sep(w);
    }
    put_char(w, '}');
}

static void put_service_change(struct writer *w, const struct h248_service_change *sc)
{
    static const enum h248_token methods[] = {
        [H248_SC_FAILOVER] = H248_TOK_FAILOVER,         [H248_SC_FORCED] = H248_TOK_FORCED,
        [H248_SC_GRACEFUL] = H248_TOK_GRACEFUL,         [H248_SC_RESTART] = H248_TOK_RESTART,
        [H248_SC_DISCONNECTED] = H248_TOK_DISCONNECTED, [H248_SC_HANDOFF] = H248_TOK_HANDOFF,
    };
    bool first = true;
    put_tok(w, H248_TOK_SERVICES);
    open_block(w);
    if (sc->method != H248_SC_UNSET) {
        item(w, &first);
        put_tok(w, H248_TOK_METHOD);
        equal(w);
        if (sc->method == H248_SC_EXTENSION)
            put_name(w, &sc->method_ext);
        else if ((unsigned)sc->method < sizeof(methods) / sizeof(methods[0]))
            put_tok(w, methods[sc->method]);
        else
            reject(w);
    }
    if (sc->has_reason) {
        item(w, &first);
        put_tok(w, H248_TOK_REASON);
        equal(w);
        put_value(w, &sc->reason);
    }
    if (sc->has_delay) {
        item(w, &first);
        put_tok(w, H248_TOK_DELAY);
        equal(w);
        put_u32(w, sc->delay);
    }
    if (sc->has_address) {
        item(w, &first);
        put_tok(w, H248_TOK_SERVICE_CHANGE_ADDRESS);
        equal(w);
        if (sc->address_is_port)
            put_u32(w, sc->address_port);
        else
            put_mid(w, &sc->address);
    }
    if (sc->has_profile) {
        item(w, &first);
        put_tok(w, H248_TOK_PROFILE);
        equal(w);
        if (has_char(&sc->profile_name, '/') || sc->profile_version > 99)
            reject(w);
        put_name(w, &sc->profile_name);
        put_char(w, '/');
        put_u32(w, sc->profile_version);
    }
    if (sc->has_version) {
        item(w, &first);
        put_tok(w, H248_TOK_VERSION);
        equal(w);
        if (sc->version > 99) /* Version = 1*2(DIGIT) */
            reject(w);
        put_u32(w, sc->version);
    }
    if (sc->has_mgc_id) {
        item(w, &first);
        put_tok(w, H248_TOK_MGC_ID);
        equal(w);
        put_mid(w, &sc->mgc_id);
    }
    if (sc->has_timestamp) {
        item(w, &first);
        put_timestamp(w, sc->date, sc->time);
    }
    put_properties(w, sc->extensions, &first);
    put_audit_items(w, sc->audit, &first);
    if (sc->incomplete) {
        item(w, &first);
        put_tok(w, H248_TOK_SERVICE_CHANGE_INC);
    }
    close_block(w, first);
    if (first)
        reject(w);
}

/* Modem and Mux keep what followed their token, which must start their own syntax. */
static void put_raw_descriptor(struct writer *w, enum h248_token t, const struct h248_str *raw)
{
    size_t i = 0;
    while (i < raw->len && (raw->ptr[i] == ' ' || raw->ptr[i] == '\t' || raw->ptr[i] == '\r' ||
                            raw->ptr[i] == '\n'))
        i++;
    if (i == raw->len || (raw->ptr[i] != '=' && raw->ptr[i] != '['))
        reject(w);
    put_tok(w, t);
    put_raw(w, raw);
}

static void put_descriptor(struct writer *w, const struct h248_descriptor *d)
{
    switch (d->kind) {
    case H248_DESC_MEDIA:
        put_media(w, &d->u.media);
        break;
    case H248_DESC_EVENTS:
        put_events(w, &d->u.events);
        break;
    case H248_DESC_EVENT_BUFFER:
        put_event_buffer(w, &d->u.event_buffer);
        break;
    case H248_DESC_SIGNALS:
        put_signals(w, &d->u.signals);
        break;
    case H248_DESC_DIGIT_MAP:
        put_digit_map(w, &d->u.digit_map);
        break;
    case H248_DESC_AUDIT:
        put_audit(w, &d->u.audit);
        break;
    case H248_DESC_OBSERVED_EVENTS:
        put_observed_events(w, &d->u.observed);
        break;
    case H248_DESC_STATISTICS:
        put_statistics(w, &d->u.statistics);
        break;
    case H248_DESC_PACKAGES:
        put_packages(w, d->u.packages);
        break;
    case H248_DESC_ERROR:
        put_error(w, &d->u.error);
        break;
    case H248_DESC_SERVICE_CHANGE:
        put_service_change(w, &d->u.service_change);
        break;
    case H248_DESC_MODEM:
        put_raw_descriptor(w, H248_TOK_MODEM, &d->u.raw.text);
        break;
    case H248_DESC_MUX:
        put_raw_descriptor(w, H248_TOK_MUX, &d->u.raw.text);
        break;
    case H248_DESC_TOKEN:
        put_token_checked(w, d->u.token);
        break;
    default:
        reject(w);
    }
}

static const enum h248_token command_tokens[] = {
    [H248_CMD_ADD] = H248_TOK_ADD,
    [H248_CMD_MOVE] = H248_TOK_MOVE,
    [H248_CMD_MODIFY] = H248_TOK_MODIFY,
    [H248_CMD_SUBTRACT] = H248_TOK_SUBTRACT,
    [H248_CMD_AUDIT_VALUE] = H248_TOK_AUDIT_VALUE,
    [H248_CMD_AUDIT_CAPABILITIES] = H248_TOK_AUDIT_CAP,
    [H248_CMD_NOTIFY] = H248_TOK_NOTIFY,
    [H248_CMD_SERVICE_CHANGE] = H248_TOK_SERVICE_CHANGE,
};

static void put_command(struct writer *w, const struct h248_command *c)
{
    if (c->optional)
        put(w, "O-", 2);
    if (c->wildcard_reply)
        put(w, "W-", 2);
    if ((unsigned)c->kind >= sizeof(command_tokens) / sizeof(command_tokens[0])) {
        reject(w);
        return;
    }
    put_tok(w, command_tokens[c->kind]);
    equal(w);
    const struct h248_termination_id *t = c->terminations;
    if (t == NULL) {
        reject(w);
    } else if (!c->term_list) {
        if (t->next != NULL)
            reject(w);
        put_termination_id(w, t);
    } else {
        put_char(w, '[');
        for (; t != NULL; t = t->next) {
            put_termination_id(w, t);
            if (t->next != NULL)
                flat_sep(w);
        }
        put_char(w, ']');
    }
    if (c->descriptors == NULL)
        return;
    bool first = true;
    open_block(w);
    for (const struct h248_descriptor *d = c->descriptors; d != NULL; d = d->next) {
        item(w, &first);
        put_descriptor(w, d);
    }
    close_block(w, first);
}

static void put_topology(struct writer *w, const struct h248_topology_triple *t)
{
    static const enum h248_token directions[] = {
        [H248_TOPO_BOTHWAY] = H248_TOK_BOTHWAY,
        [H248_TOPO_ISOLATE] = H248_TOK_ISOLATE,
        [H248_TOPO_ONEWAY] = H248_TOK_ONEWAY,
        [H248_TOPO_ONEWAY_EXTERNAL] = H248_TOK_ONEWAY_EXTERNAL,
        [H248_TOPO_ONEWAY_BOTH] = H248_TOK_ONEWAY_BOTH,
    };
    bool first = true;
    put_tok(w, H248_TOK_TOPOLOGY);
    open_block(w);
    for (; t != NULL; t = t->next) {
        item(w, &first);
        put_name(w, &t->from);
        flat_sep(w);
        put_name(w, &t->to);
        flat_sep(w);
        if ((unsigned)t->direction < sizeof(directions) / sizeof(directions[0]))
            put_tok(w, directions[t->direction]);
        else
            reject(w);
        if (t->has_stream) {
            flat_sep(w);
            put_tok(w, H248_TOK_STREAM);
            equal(w);
            put_u32(w, t->stream);
        }
    }
    close_block(w, first);
}

static bool context_props_empty(const struct h248_context_props *p)
{
    return !p->has_priority && !p->emergency && !p->emergency_off && !p->has_ieps &&
           p->topology == NULL && p->attributes == NULL && !p->has_audit;
}

static void put_context_props(struct writer *w, const struct h248_context_props *p, bool *first)
{
    if (p->has_priority) {
        item(w, first);
        put_tok(w, H248_TOK_PRIORITY);
        equal(w);
        put_u32(w, p->priority);
    }
    if (p->emergency) {
        item(w, first);
        put_tok(w, H248_TOK_EMERGENCY);
    }
    if (p->emergency_off) {
        item(w, first);
        put_tok(w, H248_TOK_EMERGENCY_OFF);
    }
    if (p->has_ieps) {
        item(w, first);
        put_tok(w, H248_TOK_IEPS);
        equal(w);
        put_tok(w, p->ieps ? H248_TOK_ON : H248_TOK_OFF);
    }
    if (p->topology != NULL) {
        item(w, first);
        put_topology(w, p->topology);
    }
    if (p->attributes != NULL) {
        bool afirst = true;
        item(w, first);
        put_tok(w, H248_TOK_CONTEXT_ATTR);
        open_block(w);
        put_properties(w, p->attributes, &afirst);
        close_block(w, afirst);
    }
    if (p->has_audit) {
        bool afirst = true;
        item(w, first);
        put_tok(w, H248_TOK_CONTEXT_AUDIT);
        open_block(w);
        put_audit_items(w, p->audit, &afirst);
        close_block(w, afirst);
        if (afirst) /* contextAuditProperties is 1-or-more */
            reject(w);
    } else if (p->audit != NULL) {
        reject(w);
    }
}

static void put_action(struct writer *w, const struct h248_action *a, bool reply)
{
    bool first = true;
    put_tok(w, H248_TOK_CONTEXT);
    equal(w);
    switch (a->context.kind) {
    case H248_CTX_ID:
        put_u32(w, a->context.id);
        break;
    case H248_CTX_CHOOSE:
        put_char(w, '$');
        break;
    case H248_CTX_ALL:
        put_char(w, '*');
        break;
    case H248_CTX_NULL:
        put_char(w, '-');
        break;
    default:
        reject(w);
    }
    bool empty = a->commands == NULL && a->error == NULL &&
                 (a->props == NULL || context_props_empty(a->props));
    if (empty) {
        /* v3 actionReply braces are optional and never empty; a request action holds
         * something. */
        if (!reply)
            reject(w);
        return;
    }
    open_block(w);
    if (a->props != NULL)
        put_context_props(w, a->props, &first);
    for (const struct h248_command *c = a->commands; c != NULL; c = c->next) {
        item(w, &first);
        put_command(w, c);
    }
    if (a->error != NULL) {
        item(w, &first);
        put_error(w, a->error);
    }
    close_block(w, first);
}

static void put_actions(struct writer *w, const struct h248_action *a, bool *first, bool reply)
{
    if (a == NULL) /* actionRequest and actionReply lists are 1-or-more */
        reject(w);
    for (; a != NULL; a = a->next) {
        item(w, first);
        put_action(w, a, reply);
    }
}

/* [/segment[/END]] of a reply or a segment reply. */
static void put_segment(struct writer *w, const struct h248_transaction *t)
{
    if (!t->has_segment) {
        if (t->segmentation_complete)
            reject(w);
        return;
    }
    put_char(w, '/');
    put_u32(w, t->segment_number);
    if (t->segmentation_complete) {
        put_char(w, '/');
        put_tok(w, H248_TOK_SEGMENTATION_COMPLETE);
    }
}

/* Fields a transaction kind does not use are not written (h248_message_equal ignores them). */
static void put_transaction(struct writer *w, const struct h248_transaction *t)
{
    bool first = true;
    switch (t->kind) {
    case H248_TRANS_REQUEST:
        put_tok(w, H248_TOK_TRANSACTION);
        equal(w);
        put_u32(w, t->id);
        open_block(w);
        put_actions(w, t->actions, &first, false);
        close_block(w, first);
        break;
    case H248_TRANS_REPLY:
        put_tok(w, H248_TOK_REPLY);
        equal(w);
        put_u32(w, t->id);
        put_segment(w, t);
        open_block(w);
        if (t->imm_ack_required) {
            item(w, &first);
            put_tok(w, H248_TOK_IMM_ACK_REQUIRED);
        }
        if (t->error != NULL) {
            if (t->actions != NULL) /* errorDescriptor / actionReplyList, not both */
                reject(w);
            item(w, &first);
            put_error(w, t->error);
        } else {
            put_actions(w, t->actions, &first, true);
        }
        close_block(w, first);
        break;
    case H248_TRANS_PENDING:
        put_tok(w, H248_TOK_PENDING);
        equal(w);
        put_u32(w, t->id);
        space(w);
        put(w, "{}", 2);
        break;
    case H248_TRANS_RESPONSE_ACK:
        if (t->acks == NULL)
            reject(w);
        put_tok(w, H248_TOK_RESPONSE_ACK);
        space(w);
        put_char(w, '{');
        for (const struct h248_ack_range *r = t->acks; r != NULL; r = r->next) {
            put_u32(w, r->first);
            if (r->last != r->first) {
                put_char(w, '-');
                put_u32(w, r->last);
            }
            if (r->next != NULL)
                flat_sep(w);
        }
        put_char(w, '}');
        break;
    case H248_TRANS_SEGMENT_REPLY:
        if (!t->has_segment)
            reject(w);
        put_tok(w, H248_TOK_SEGMENT);
        equal(w);
        put_u32(w, t->id);
        put_segment(w, t);
        break;
    default:
        reject(w);
    }
}

static void put_message(struct writer *w, const struct h248_message *msg)
{
    if (msg->has_auth) {
        /* AuthData = "0x" 24*64(HEXDIG); auth_data holds the digits. */
        if (msg->auth_data.len < 24 || msg->auth_data.len > 64 ||
            !all_in_class(&msg->auth_data, C_HEX))
            reject(w);
        put_tok(w, H248_TOK_AUTH);
        equal(w);
        put_hex32(w, msg->auth_spi);
        put_char(w, ':');
        put_hex32(w, msg->auth_seq);
        put(w, ":0x", 3);
        put_str(w, &msg->auth_data);
        put_char(w, w->pretty ? '\n' : ' ');
    }
    if (msg->version > 99)
        reject(w);
    put_tok(w, H248_TOK_MEGACO);
    put_char(w, '/');
    put_u32(w, msg->version);
    put_char(w, ' ');
    put_mid(w, &msg->mid);
    put_char(w, w->pretty ? '\n' : ' ');
    if (msg->error != NULL) {
        if (msg->transactions != NULL) /* messageBody = errorDescriptor / transactionList */
            reject(w);
        put_error(w, msg->error);
    } else {
        if (msg->transactions == NULL)
            reject(w);
        for (const struct h248_transaction *t = msg->transactions; t != NULL; t = t->next) {
            put_transaction(w, t);
            /* A segment reply ends in digits or "&": keep the next token apart from them. */
            if (t->next != NULL && (w->pretty || t->kind == H248_TRANS_SEGMENT_REPLY))
                put_char(w, w->pretty ? '\n' : ' ');
        }
    }
    if (w->pretty)
        put_char(w, '\n');
}

int h248_encode_message(const struct h248_message *msg, enum h248_style style, char *buf,
                        size_t cap, size_t *len_out)
{
    if (msg == NULL || (buf == NULL && cap != 0) ||
        (style != H248_STYLE_COMPACT && style != H248_STYLE_PRETTY))
        return -EINVAL;
    struct writer w = {
        .buf = buf,
        .cap = cap,
        .pretty = style == H248_STYLE_PRETTY,
        .tok = style == H248_STYLE_PRETTY ? long_spelling : short_spelling,
    };
    put_message(&w, msg);
    if (w.invalid)
        return -EINVAL;
    if (len_out != NULL)
        *len_out = w.pos;
    return w.pos > cap ? -ENOSPC : 0;
}
