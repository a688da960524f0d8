/* Lexical layer of the H.248 text parser (Annex B: LWSP, SafeChar, VALUE, octetString). */
#include "lex.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* SafeChar = DIGIT / ALPHA / "+" / "-" / "&" / "!" / "_" / "/" / "'" / "?" / "@" / "^" / "`" /
 * "~" / "*" / "$" / "\" / "(" / ")" / "%" / "|" / "." */
static const unsigned char safe_table[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,  ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1,  ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1,  ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1,  ['T'] = 1, ['U'] = 1, ['V'] = 1,
    ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1,  ['b'] = 1, ['c'] = 1, ['d'] = 1,
    ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,  ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1,  ['r'] = 1, ['s'] = 1, ['t'] = 1,
    ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1,  ['z'] = 1, ['+'] = 1, ['-'] = 1,
    ['&'] = 1, ['!'] = 1, ['_'] = 1, ['/'] = 1, ['\''] = 1, ['?'] = 1, ['@'] = 1, ['^'] = 1,
    ['`'] = 1, ['~'] = 1, ['*'] = 1, ['$'] = 1, ['\\'] = 1, ['('] = 1, [')'] = 1, ['%'] = 1,
    ['|'] = 1, ['.'] = 1,
};

bool h248_is_safe_char(unsigned char c)
{
    return safe_table[c] != 0;
}

bool h248_str_ieq(struct h248_str s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char a = (unsigned char)s.ptr[i], b = (unsigned char)lit[i];
        if (a >= 'A' && a <= 'Z')
            a |= 0x20;
        if (b >= 'A' && b <= 'Z')
            b |= 0x20;
        if (a != b)
            return false;
    }
    return true;
}

/* A short printable rendering of the input at the error position, for the error text. */
static void describe_here(const struct h248_lex *lx, char *out, size_t cap)
{
    if (lx->pos >= lx->end) {
        snprintf(out, cap, "end of message");
        return;
    }
    size_t n = 0;
    out[n++] = '\'';
    for (const char *p = lx->pos; p < lx->end && n + 5 < cap && p - lx->pos < 16; p++) {
        unsigned char c = (unsigned char)*p;
        if (p != lx->pos && (c == ' ' || c == '\t' || c == '\r' || c == '\n'))
            break;
        out[n++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\'') ? (char)c : '?';
    }
    out[n++] = '\'';
    out[n] = '\0';
}

int h248_lex_fail(struct h248_lex *lx, const char *fmt, ...)
{
    if (lx->failed)
        return -1;
    lx->failed = true;
    if (lx->err == NULL)
        return -1;
    size_t offset = (size_t)(lx->pos - lx->base);
    unsigned line = 1, col = 1;
    for (const char *p = lx->base; p < lx->pos; p++) {
        if (*p == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    char what[96], here[24];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    describe_here(lx, here, sizeof(here));
    lx->err->code = lx->code;
    lx->err->offset = offset;
    lx->err->has_transaction_id = lx->has_tid;
    lx->err->transaction_id = lx->tid;
    snprintf(lx->err->text, sizeof(lx->err->text), "line %u col %u: %s, got %s", line, col, what,
             here);
    /* The text travels inside an H.248 quotedString: keep it free of quotes and controls. */
    for (char *t = lx->err->text; *t != '\0'; t++) {
        if (*t == '"')
            *t = '\'';
        else if ((unsigned char)*t < 0x20 || (unsigned char)*t >= 0x7f)
            *t = '?';
    }
    return -1;
}

int h248_lex_skip(struct h248_lex *lx)
{
    while (lx->pos < lx->end) {
        char c = *lx->pos;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            lx->pos++;
        } else if (c == ';') {
            /* COMMENT = ";" *(SafeChar / RestChar / WSP / %x22) EOL */
            char *p = lx->pos + 1;
            while (p < lx->end && *p != '\r' && *p != '\n') {
                unsigned char b = (unsigned char)*p;
                if ((b < 0x20 && b != '\t') || b >= 0x7f) {
                    lx->pos = p;
                    return h248_lex_fail(lx, "invalid character in comment");
                }
                p++;
            }
            lx->pos = p;
        } else {
            break;
        }
    }
    return 0;
}

int h248_lex_peek(struct h248_lex *lx)
{
    if (h248_lex_skip(lx) < 0 || lx->pos >= lx->end)
        return -1;
    return (unsigned char)*lx->pos;
}

int h248_lex_expect(struct h248_lex *lx, char c, const char *what)
{
    if (h248_lex_peek(lx) != (unsigned char)c)
        return h248_lex_fail(lx, "expected '%c' %s", c, what);
    lx->pos++;
    return 0;
}

bool h248_lex_accept(struct h248_lex *lx, char c)
{
    if (h248_lex_peek(lx) != (unsigned char)c)
        return false;
    lx->pos++;
    return true;
}

int h248_lex_word(struct h248_lex *lx, struct h248_str *word, const char *what)
{
    if (h248_lex_skip(lx) < 0)
        return -1;
    char *start = lx->pos, *p = start;
    while (p < lx->end && safe_table[(unsigned char)*p])
        p++;
    if (p == start)
        return h248_lex_fail(lx, "expected %s", what);
    if ((size_t)(p - start) > lx->limits->max_token_len)
        return h248_lex_fail(lx, "%s longer than %zu bytes", what, lx->limits->max_token_len);
    word->ptr = start;
    word->len = (size_t)(p - start);
    lx->pos = p;
    return 0;
}

int h248_lex_token(struct h248_lex *lx, struct h248_str *word, enum h248_token *tok,
                   const char *what)
{
    if (h248_lex_word(lx, word, what) < 0)
        return -1;
    *tok = h248_token_lookup(word->ptr, word->len);
    return 0;
}

int h248_lex_uint(struct h248_lex *lx, uint64_t max, unsigned max_digits, bool allow_slash,
                  bool allow_dash, uint64_t *out, const char *what)
{
    if (h248_lex_skip(lx) < 0)
        return -1;
    char *p = lx->pos;
    uint64_t v = 0;
    unsigned n = 0;
    while (p < lx->end && *p >= '0' && *p <= '9') {
        if (++n > max_digits)
            return h248_lex_fail(lx, "%s has too many digits", what);
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
    }
    if (n == 0)
        return h248_lex_fail(lx, "expected %s (a number)", what);
    if (p < lx->end && safe_table[(unsigned char)*p] && !(allow_slash && *p == '/') &&
        !(allow_dash && *p == '-'))
        return h248_lex_fail(lx, "%s is not a number", what);
    if (v > max)
        return h248_lex_fail(lx, "%s out of range (max %llu)", what, (unsigned long long)max);
    lx->pos = p;
    *out = v;
    return 0;
}

int h248_lex_quoted(struct h248_lex *lx, struct h248_str *text, const char *what)
{
    if (h248_lex_peek(lx) != '"')
        return h248_lex_fail(lx, "expected quoted %s", what);
    char *start = lx->pos + 1, *p = start;
    /* quotedString = DQUOTE *(SafeChar / RestChar / WSP) DQUOTE: printable ASCII and tabs. */
    while (p < lx->end && *p != '"') {
        unsigned char b = (unsigned char)*p;
        if ((b < 0x20 && b != '\t') || b >= 0x7f) {
            lx->pos = p;
            return h248_lex_fail(lx, "invalid character in quoted %s", what);
        }
        p++;
    }
    if (p >= lx->end)
        return h248_lex_fail(lx, "unterminated quoted %s", what);
    if ((size_t)(p - start) > lx->limits->max_token_len)
        return h248_lex_fail(lx, "quoted %s longer than %zu bytes", what,
                             lx->limits->max_token_len);
    text->ptr = start;
    text->len = (size_t)(p - start);
    lx->pos = p + 1;
    return 0;
}

int h248_lex_value(struct h248_lex *lx, struct h248_value *value, const char *what)
{
    int c = h248_lex_peek(lx);
    if (c == '"') {
        value->quoted = true;
        return h248_lex_quoted(lx, &value->text, what);
    }
    value->quoted = false;
    return h248_lex_word(lx, &value->text, what);
}

static inline bool is_lwsp_char(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int h248_lex_octets(struct h248_lex *lx, struct h248_str *text, const char *what)
{
    /* LBRKT = LWSP "{" LWSP: leading white space belongs to the bracket, not the text. */
    while (lx->pos < lx->end && is_lwsp_char(*lx->pos))
        lx->pos++;
    char *start = lx->pos, *p = start;
    size_t escapes = 0;
    while (p < lx->end && *p != '}') {
        if (*p == '\0') {
            lx->pos = p;
            return h248_lex_fail(lx, "NUL byte in %s", what);
        }
        if (*p == '\\' && p + 1 < lx->end && p[1] == '}') {
            escapes++;
            p += 2;
            continue;
        }
        p++;
    }
    if (p >= lx->end)
        return h248_lex_fail(lx, "unterminated %s", what);
    if ((size_t)(p - start) > lx->limits->max_octet_string_len)
        return h248_lex_fail(lx, "%s longer than %zu bytes", what,
                             lx->limits->max_octet_string_len);
    char *stop = p;
    if (escapes > 0) {
        /* Unescape in place: the text only shrinks and lies behind the cursor. */
        char *w = start;
        for (char *r = start; r < stop; r++) {
            if (*r == '\\' && r + 1 < stop && r[1] == '}')
                r++;
            *w++ = *r;
        }
        stop = w;
    }
    while (stop > start && is_lwsp_char(stop[-1]))
        stop--;
    text->ptr = start;
    text->len = (size_t)(stop - start);
    lx->pos = p;
    return 0;
}

int h248_lex_balanced(struct h248_lex *lx, struct h248_str *text, const char *what)
{
    if (h248_lex_skip(lx) < 0)
        return -1;
    char *start = lx->pos, *p = start;
    char open[64]; /* braces and brackets must nest properly */
    unsigned depth = 0,
             max = lx->limits->max_depth -
                   (lx->depth < lx->limits->max_depth ? lx->depth : lx->limits->max_depth);
    if (max > sizeof(open))
        max = sizeof(open);
    while (p < lx->end) {
        char c = *p;
        if (c == '{' || c == '[') {
            if (depth >= max) {
                lx->pos = p;
                return h248_lex_fail(lx, "%s nested too deeply", what);
            }
            open[depth++] = c;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                break;
            if (open[--depth] != (c == '}' ? '{' : '[')) {
                lx->pos = p;
                return h248_lex_fail(lx, "unbalanced '%c' in %s", c, what);
            }
        } else if (c == ',' && depth == 0) {
            break;
        } else if (c == '"') {
            p++;
            while (p < lx->end && *p != '"' && *p != '\0')
                p++;
            if (p >= lx->end || *p == '\0') {
                lx->pos = p;
                return h248_lex_fail(lx, "unterminated quoted string in %s", what);
            }
        } else if (c == ';') {
            /* Comments are white space: blank them so that the kept text holds none. */
            while (p < lx->end && *p != '\r' && *p != '\n')
                *p++ = ' ';
            continue;
        } else if (c == '\\' && p + 1 < lx->end && p[1] == '}') {
            p++;
        } else if (c == '\0') {
            lx->pos = p;
            return h248_lex_fail(lx, "NUL byte in %s", what);
        }
        p++;
    }
    if (p >= lx->end)
        return h248_lex_fail(lx, "unterminated %s", what);
    char *stop = p;
    while (stop > start && is_lwsp_char(stop[-1]))
        stop--;
    if (stop == start)
        return h248_lex_fail(lx, "empty %s", what);
    if ((size_t)(stop - start) > lx->limits->max_octet_string_len)
        return h248_lex_fail(lx, "%s longer than %zu bytes", what,
                             lx->limits->max_octet_string_len);
    text->ptr = start;
    text->len = (size_t)(stop - start);
    lx->pos = p;
    return 0;
}

int h248_lex_enter(struct h248_lex *lx, char open, const char *what)
{
    if (h248_lex_expect(lx, open, what) < 0)
        return -1;
    if (++lx->depth > lx->limits->max_depth)
        return h248_lex_fail(lx, "nested deeper than %u", lx->limits->max_depth);
    return 0;
}

int h248_lex_leave(struct h248_lex *lx, char close, const char *what)
{
    if (h248_lex_expect(lx, close, what) < 0)
        return -1;
    lx->depth--;
    return 0;
}
