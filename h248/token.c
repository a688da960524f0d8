/* Token table and a perfect-enough hash for case-insensitive token lookup. */
#include "token.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

static const char *const long_names[H248_TOK_COUNT] = {
#define H248_TOKEN_LONG(id, long_name, short_name) [H248_TOK_##id] = long_name,
    H248_TOKENS(H248_TOKEN_LONG)
#undef H248_TOKEN_LONG
};

static const char *const short_names[H248_TOK_COUNT] = {
#define H248_TOKEN_SHORT(id, long_name, short_name) [H248_TOK_##id] = short_name,
    H248_TOKENS(H248_TOKEN_SHORT)
#undef H248_TOKEN_SHORT
};

/* Spellings of earlier drafts of H.248.1 v3 that peers still send. */
static const struct {
    const char *name;
    enum h248_token tok;
} aliases[] = {
    {"Direction", H248_TOK_DIRECTION},
    {"DI", H248_TOK_DIRECTION},
    {"RequestID", H248_TOK_REQUEST_ID},
    {"RQ", H248_TOK_REQUEST_ID},
    {"EmergencyOffToken", H248_TOK_EMERGENCY_OFF},
    {"InSvc", H248_TOK_IN_SVC},
    {"OutOfSvc", H248_TOK_OUT_OF_SVC},
};

#define TABLE_BITS 10
#define TABLE_SIZE (1u << TABLE_BITS)
#define MAX_TOKEN_LEN 24

struct slot {
    uint8_t len;
    uint8_t tok;
    char lower[MAX_TOKEN_LEN];
};

static struct slot table[TABLE_SIZE];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static inline unsigned char lower_ascii(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

static inline uint32_t hash_lower(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ lower_ascii((unsigned char)s[i])) * 16777619u;
    return h ^ (h >> 15);
}

static void insert(const char *name, enum h248_token tok)
{
    size_t len = strlen(name);
    uint32_t i = hash_lower(name, len) & (TABLE_SIZE - 1);
    while (table[i].len != 0)
        i = (i + 1) & (TABLE_SIZE - 1);
    table[i].len = (uint8_t)len;
    table[i].tok = (uint8_t)tok;
    for (size_t k = 0; k < len; k++)
        table[i].lower[k] = (char)lower_ascii((unsigned char)name[k]);
}

static void build_table(void)
{
    for (int t = 1; t < H248_TOK_COUNT; t++) {
        insert(long_names[t], (enum h248_token)t);
        if (strcmp(long_names[t], short_names[t]) != 0)
            insert(short_names[t], (enum h248_token)t);
    }
    for (size_t a = 0; a < sizeof(aliases) / sizeof(aliases[0]); a++)
        insert(aliases[a].name, aliases[a].tok);
}

enum h248_token h248_token_lookup(const char *name, size_t len)
{
    if (len == 0 || len > MAX_TOKEN_LEN)
        return H248_TOK_NONE;
    pthread_once(&table_once, build_table);
    uint32_t i = hash_lower(name, len) & (TABLE_SIZE - 1);
    while (table[i].len != 0) {
        if (table[i].len == len) {
            size_t k = 0;
            while (k < len &&
                   lower_ascii((unsigned char)name[k]) == (unsigned char)table[i].lower[k])
                k++;
            if (k == len)
                return (enum h248_token)table[i].tok;
        }
        i = (i + 1) & (TABLE_SIZE - 1);
    }
    return H248_TOK_NONE;
}

const char *h248_token_long(enum h248_token tok)
{
    return (tok > H248_TOK_NONE && tok < H248_TOK_COUNT) ? long_names[tok] : "";
}

const char *h248_token_short(enum h248_token tok)
{
    return (tok > H248_TOK_NONE && tok < H248_TOK_COUNT) ? short_names[tok] : "";
}
