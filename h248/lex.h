/* Cursor over H.248 text: whitespace and comments, words, numbers, strings, error reporting. */
#ifndef IMS_AGW_H248_LEX_H
#define IMS_AGW_H248_LEX_H

#include "h248.h"
#include "token.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct h248_lex {
    const char *base; /* start of the (arena-owned, writable) input copy */
    char *pos;
    const char *end;
    const struct h248_limits *limits;
    struct h248_parse_error *err;
    unsigned code; /* error class of the construct being parsed: 400, 403, 422, 442 */
    unsigned depth;
    bool failed;
    bool has_tid;
    uint32_t tid;
};

/* Records the first error (code = lx->code) with its position and a printf-style text; returns -1.
 */
int h248_lex_fail(struct h248_lex *lx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Skips LWSP (spaces, tabs, CR, LF, ';' comments). Returns -1 on a bad byte in a comment. */
int h248_lex_skip(struct h248_lex *lx);

/* Next significant byte after LWSP, or -1 at the end of input (and on a bad comment). */
int h248_lex_peek(struct h248_lex *lx);

/* Consumes c after LWSP, or fails naming what was expected. */
int h248_lex_expect(struct h248_lex *lx, char c, const char *what);

/* Consumes c after LWSP if it is there; true if it was. */
bool h248_lex_accept(struct h248_lex *lx, char c);

/* Reads 1*SafeChar after LWSP into *word (bounded by max_token_len). */
int h248_lex_word(struct h248_lex *lx, struct h248_str *word, const char *what);

/* Reads a word and maps it to a token (H248_TOK_NONE when it is not one). */
int h248_lex_token(struct h248_lex *lx, struct h248_str *word, enum h248_token *tok,
                   const char *what);

/* Reads decimal digits (at most max_digits) with value <= max after LWSP. The next byte must not
 * continue a word unless allow_slash and it is '/', or allow_dash and it is '-'. */
int h248_lex_uint(struct h248_lex *lx, uint64_t max, unsigned max_digits, bool allow_slash,
                  bool allow_dash, uint64_t *out, const char *what);

/* Reads a VALUE: a quoted string or 1*SafeChar. */
int h248_lex_value(struct h248_lex *lx, struct h248_value *value, const char *what);

/* Reads a quoted string (quotes required). */
int h248_lex_quoted(struct h248_lex *lx, struct h248_str *text, const char *what);

/* Reads an octet string up to the unescaped '}' (left unconsumed), unescapes "\}" in place and
 * trims surrounding whitespace. */
int h248_lex_octets(struct h248_lex *lx, struct h248_str *text, const char *what);

/* Reads balanced text up to (not including) the ',' or '}' that ends the current item at depth 0,
 * skipping quoted strings, comments and escaped braces; trims trailing whitespace. */
int h248_lex_balanced(struct h248_lex *lx, struct h248_str *text, const char *what);

/* Opens a nested brace/bracket level, enforcing max_depth. */
int h248_lex_enter(struct h248_lex *lx, char open, const char *what);

/* Closes a level opened with h248_lex_enter. */
int h248_lex_leave(struct h248_lex *lx, char close, const char *what);

bool h248_is_safe_char(unsigned char c);
bool h248_str_ieq(struct h248_str s, const char *lit);

#endif
