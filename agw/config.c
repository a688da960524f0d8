/* ims-agw configuration: one key table drives the INI reader, the command line, validation,
 * printing and the reload check. */

/* Debian 12's libinih (55-1) is built with INI_HANDLER_LINENO=1 although its ini.h defaults the
 * macro to 0: the library passes the line number as a fifth handler argument. test_config checks
 * the line numbers in errors, so a libinih built otherwise fails the tests instead of misreporting.
 */
#define INI_HANDLER_LINENO 1

#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define VALUE_MAX 1024 /* longest value taken from anywhere */
#define QUOTE_MAX 80   /* longest piece of a value quoted in an error */
#define QUOTE(p, len) (int)((len) > QUOTE_MAX ? QUOTE_MAX : (len)), (p)
#define WHY_MAX 256
#define ADDR_TEXT (INET6_ADDRSTRLEN + 8) /* "[v6]:port" */

enum key_type {
    KEY_STRING,
    KEY_UINT,
    KEY_ENUM,
    KEY_ADDR_PORT,
    KEY_ADDR,
    KEY_PORT_RANGE,
    KEY_ADDR_PORT_LIST,
};
enum key_section { IN_GLOBAL, IN_REALM };
enum text_kind { TEXT_MID, TEXT_PROFILE, TEXT_REALM_NAME, TEXT_PATH, TEXT_TLS_LIST };

#define KEY_RELOADABLE 0x1u /* may change on SIGHUP */
#define KEY_AUTO 0x2u       /* KEY_UINT: "auto" is accepted and stored as 0 */
#define KEY_EMPTY_OK 0x4u   /* KEY_STRING: "" is a value; KEY_ADDR_PORT: "" is no address */

struct config_key {
    const char *name;
    enum key_section section;
    enum key_type type;
    unsigned flags;
    uint32_t min, max;        /* KEY_UINT: the value; address and port-range types: the port */
    enum text_kind text;      /* KEY_STRING */
    const char *const *names; /* KEY_ENUM, NULL-terminated, in enum order */
    size_t offset, size;      /* of the field in struct agw_config or struct agw_config_realm */
    size_t count_offset;      /* KEY_ADDR_PORT_LIST: of its unsigned count */
    const char *def;          /* parsed like a file value; NULL: required */
    const char *help;
};

static const char *const log_level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const tls_version_names[] = {"1.2", "1.3", NULL};
_Static_assert(sizeof(enum agw_log_level) == sizeof(int), "enum keys are stored as int");

#define GLOBAL(f)                                                                                  \
    .section = IN_GLOBAL, .offset = offsetof(struct agw_config, f),                                \
    .size = sizeof(((struct agw_config *)0)->f)
#define REALM(f)                                                                                   \
    .section = IN_REALM, .offset = offsetof(struct agw_config_realm, f),                           \
    .size = sizeof(((struct agw_config_realm *)0)->f)
#define UINT(lo, hi) .type = KEY_UINT, .min = (lo), .max = (hi)
#define TEXT(kind) .type = KEY_STRING, .text = (kind)
#define RELOAD .flags = KEY_RELOADABLE

/* The order here is the order of `ims-agw -t` and of the usage text. */
static const struct config_key keys[] = {
    {.name = "iq_listen",
     GLOBAL(iq_listen),
     .type = KEY_ADDR_PORT,
     .min = 0,
     .max = 65535,
     .def = "127.0.0.1:2944",
     .help = "Iq UDP address: a.b.c.d:port or [v6]:port"},
    {.name = "mgc",
     GLOBAL(mgc),
     .type = KEY_ADDR_PORT_LIST,
     .min = 1,
     .max = 65535,
     .count_offset = offsetof(struct agw_config, mgc_count),
     RELOAD,
     .def = "127.0.0.1:2947",
     .help = "MGC addresses in failover order: repeat the key or separate with commas, max 8"},
    {.name = "mid",
     GLOBAL(mid),
     TEXT(TEXT_MID),
     .flags = KEY_EMPTY_OK,
     .def = "",
     .help = "H.248 mId: [address]:port, <domain>:port or a device name; "
             "empty = [iq_listen address]:port"},
    {.name = "profile",
     GLOBAL(profile),
     TEXT(TEXT_PROFILE),
     .def = "threegiq/1",
     .help = "ServiceChange profile name/version (the exact Iq profile name is unconfirmed)"},
    {.name = "workers",
     GLOBAL(workers),
     UINT(1, 64),
     .flags = KEY_AUTO,
     .def = "auto",
     .help = "data-plane threads: auto (one per CPU) or a number"},
    {.name = "log_level",
     GLOBAL(log_level),
     .type = KEY_ENUM,
     .names = log_level_names,
     RELOAD,
     .def = "info",
     .help = "error, warn, info or debug"},
    {.name = "max_contexts",
     GLOBAL(max_contexts),
     UINT(1, 1000000),
     RELOAD,
     .def = "10000",
     .help = "contexts the gateway holds at most"},
    {.name = "max_terminations_per_context",
     GLOBAL(max_terminations_per_context),
     UINT(1, 16),
     RELOAD,
     .def = "4",
     .help = "terminations per context at most"},
    {.name = "default_realm",
     GLOBAL(default_realm),
     TEXT(TEXT_REALM_NAME),
     RELOAD,
     .def = "access",
     .help = "realm used when a request names none"},
    {.name = "long_timer_ms",
     GLOBAL(long_timer_ms),
     UINT(1000, 600000),
     RELOAD,
     .def = "30000",
     .help = "H.248 LONG-TIMER: how long a reply is kept to answer a repeated request"},
    {.name = "provisional_timer_ms",
     GLOBAL(provisional_timer_ms),
     UINT(10, 60000),
     RELOAD,
     .def = "500",
     .help = "a request still running after this long is answered Pending"},
    {.name = "mg_initial_rto_ms",
     GLOBAL(mg_initial_rto_ms),
     UINT(10, 60000),
     RELOAD,
     .def = "500",
     .help = "first retransmission timeout of requests the gateway sends"},
    {.name = "mg_min_rto_ms",
     GLOBAL(mg_min_rto_ms),
     UINT(10, 60000),
     RELOAD,
     .def = "100",
     .help = "lower bound of the adaptive retransmission timeout"},
    {.name = "mg_max_rto_ms",
     GLOBAL(mg_max_rto_ms),
     UINT(10, 600000),
     RELOAD,
     .def = "4000",
     .help = "upper bound of the adaptive retransmission timeout"},
    {.name = "mg_max_retransmissions",
     GLOBAL(mg_max_retransmissions),
     UINT(0, 100),
     RELOAD,
     .def = "7",
     .help = "retransmissions before the MGC counts as lost and the next is tried"},
    {.name = "relay_buffer_bytes",
     GLOBAL(relay_buffer_bytes),
     UINT(4096, 16777216),
     RELOAD,
     .def = "65536",
     .help = "relay buffer of a session, per direction"},
    {.name = "handshake_timeout_ms",
     GLOBAL(handshake_timeout_ms),
     UINT(100, 600000),
     RELOAD,
     .def = "10000",
     .help = "time a TLS or DTLS handshake may take"},
    {.name = "shutdown_drain_seconds",
     GLOBAL(shutdown_drain_seconds),
     UINT(0, 3600),
     RELOAD,
     .def = "0",
     .help = "on SIGTERM, time the contexts get to be released before the Forced ServiceChange "
             "(0: at once)"},
    {.name = "ice_consent_timeout_ms",
     GLOBAL(ice_consent_timeout_ms),
     UINT(1000, 600000),
     RELOAD,
     .def = "30000",
     .help = "ICE-lite: time without a connectivity check after which a data-channel leg stops "
             "sending (RFC 7675)"},
    {.name = "tls_min_version",
     GLOBAL(tls_min_version),
     .type = KEY_ENUM,
     .names = tls_version_names,
     .def = "1.2",
     .help = "lowest TLS version accepted on the access legs: 1.2 or 1.3"},
    {.name = "tls_ciphers",
     GLOBAL(tls_ciphers),
     TEXT(TEXT_TLS_LIST),
     .flags = KEY_EMPTY_OK,
     .def = "",
     .help = "TLS 1.2 cipher list in OpenSSL syntax; empty = modern AEAD ECDHE suites"},
    {.name = "tls_ciphersuites",
     GLOBAL(tls_ciphersuites),
     TEXT(TEXT_TLS_LIST),
     .flags = KEY_EMPTY_OK,
     .def = "",
     .help = "TLS 1.3 ciphersuites; empty = AES-128-GCM, AES-256-GCM, CHACHA20-POLY1305"},
    {.name = "tls_groups",
     GLOBAL(tls_groups),
     TEXT(TEXT_TLS_LIST),
     .flags = KEY_EMPTY_OK,
     .def = "",
     .help = "key exchange groups; empty = X25519:P-256"},
    {.name = "metrics_listen",
     GLOBAL(metrics_listen),
     .type = KEY_ADDR_PORT,
     .flags = KEY_EMPTY_OK,
     .min = 1,
     .max = 65535,
     .def = "",
     .help = "Prometheus /metrics HTTP address: a.b.c.d:port or [v6]:port; empty = none"},
    {.name = "control_socket",
     GLOBAL(control_socket),
     TEXT(TEXT_PATH),
     .flags = KEY_EMPTY_OK,
     .def = "auto",
     .help = "agw-ctl Unix socket: auto ($RUNTIME_DIRECTORY/control.sock, "
             "$XDG_RUNTIME_DIR/ims-agw.sock or /tmp/ims-agw-UID.sock), a path, or empty = none"},
    {.name = "address",
     REALM(address),
     .type = KEY_ADDR,
     .def = NULL,
     .help = "IPv4 or IPv6 address of the realm's terminations (required)"},
    {.name = "ports",
     REALM(ports),
     .type = KEY_PORT_RANGE,
     .min = 1,
     .max = 65535,
     .def = NULL,
     .help = "inclusive port range low-high of the realm's terminations (required)"},
    {.name = "certificate",
     REALM(certificate),
     TEXT(TEXT_PATH),
     .flags = KEY_EMPTY_OK | KEY_RELOADABLE,
     .def = "",
     .help = "PEM certificate file; empty (with private_key) = generated at start"},
    {.name = "private_key",
     REALM(private_key),
     TEXT(TEXT_PATH),
     .flags = KEY_EMPTY_OK | KEY_RELOADABLE,
     .def = "",
     .help = "PEM private key file of the certificate"},
};
#define KEY_COUNT ARRAY_SIZE(keys)

static const struct {
    const char *name, *address, *ports;
} default_realms[] = {
    {"access", "127.0.0.1", "20000-29999"},
    {"core", "127.0.0.1", "30000-39999"},
};

/* ---- text helpers ---- */

/* Appends to a bounded buffer; once it is full, the rest is dropped (the text stays terminated). */
struct msg {
    char *buf;
    size_t cap, len;
};

__attribute__((format(printf, 2, 3))) static void msg_add(struct msg *m, const char *fmt, ...)
{
    if (m->cap == 0 || m->len >= m->cap - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(m->buf + m->len, m->cap - m->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    m->len += (size_t)n < m->cap - m->len ? (size_t)n : m->cap - m->len - 1;
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static void trim(const char **p, size_t *len)
{
    while (*len && is_blank(**p)) {
        (*p)++;
        (*len)--;
    }
    while (*len && is_blank((*p)[*len - 1]))
        (*len)--;
}

static const char *find_char(const char *p, size_t len, char c)
{
    return len ? memchr(p, c, len) : NULL;
}

/* ---- value parsers: (pointer, length), no NUL needed ---- */

/* Decimal digits only. 0, -EINVAL (not a number) or -ERANGE (above UINT32_MAX). */
static int parse_uint(const char *p, size_t len, uint32_t *out)
{
    if (len == 0)
        return -EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(p[i]))
            return -EINVAL;
        v = v * 10 + (uint64_t)(p[i] - '0');
        if (v > UINT32_MAX)
            return -ERANGE;
    }
    *out = (uint32_t)v;
    return 0;
}

/* 0, -EINVAL (not a number) or -ERANGE (outside min..max). */
static int parse_port(const char *p, size_t len, uint32_t min, uint32_t max, uint16_t *out)
{
    uint32_t v;
    int rc = parse_uint(p, len, &v);
    if (rc < 0)
        return rc;
    if (v < min || v > max)
        return -ERANGE;
    *out = (uint16_t)v;
    return 0;
}

/* A bare IPv4 or IPv6 literal into out (port 0, everything else zeroed). */
static int parse_ip(const char *p, size_t len, struct sockaddr_storage *out)
{
    char text[INET6_ADDRSTRLEN];
    if (len == 0 || len >= sizeof(text))
        return -EINVAL;
    memcpy(text, p, len);
    text[len] = '\0';
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        return 0;
    }
    memset(out, 0, sizeof(*out));
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        return 0;
    }
    memset(out, 0, sizeof(*out));
    return -EINVAL;
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

static uint16_t get_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return 0;
}

/* "a.b.c.d:port" or "[v6]:port" ("[a.b.c.d]:port" too, as H.248 writes it). */
static int parse_addr_port(const char *p, size_t len, uint32_t min, uint32_t max,
                           struct sockaddr_storage *out, char *why, size_t whylen)
{
    const char *host = p, *port;
    size_t host_len;
    if (len && p[0] == '[') {
        const char *close = find_char(p, len, ']');
        if (close == NULL || close + 1 == p + len || close[1] != ':')
            goto bad;
        host = p + 1;
        host_len = (size_t)(close - host);
        port = close + 2;
    } else {
        const char *colon = NULL;
        for (size_t i = 0; i < len; i++)
            if (p[i] == ':')
                colon = p + i;
        if (colon == NULL)
            goto bad;
        host_len = (size_t)(colon - p);
        if (find_char(p, host_len, ':'))
            return fail(why, whylen, "'%.*s': an IPv6 address:port is written [addr]:port",
                        QUOTE(p, len));
        port = colon + 1;
    }
    if (parse_ip(host, host_len, out) < 0)
        goto bad;
    size_t port_len = len - (size_t)(port - p);
    uint16_t v;
    int rc = parse_port(port, port_len, min, max, &v);
    if (rc == -ERANGE)
        return fail(why, whylen, "port %.*s is out of range %u..%u", QUOTE(port, port_len),
                    (unsigned)min, (unsigned)max);
    if (rc < 0)
        goto bad;
    set_port(out, v);
    return 0;
bad:
    memset(out, 0, sizeof(*out));
    return fail(why, whylen, "'%.*s' is not an address:port (a.b.c.d:port or [v6]:port)",
                QUOTE(p, len));
}

/* "LOW-HIGH" or a single port. */
static int parse_port_range(const char *p, size_t len, uint32_t min, uint32_t max,
                            struct agw_config_port_range *out, char *why, size_t whylen)
{
    const char *dash = find_char(p, len, '-');
    const char *part[2] = {p, dash ? dash + 1 : p};
    size_t part_len[2] = {dash ? (size_t)(dash - p) : len,
                          dash ? len - (size_t)(dash + 1 - p) : len};
    uint16_t v[2];
    for (int i = 0; i < 2; i++) {
        int rc = parse_port(part[i], part_len[i], min, max, &v[i]);
        if (rc == -ERANGE)
            return fail(why, whylen, "%.*s is out of range %u..%u", QUOTE(part[i], part_len[i]),
                        (unsigned)min, (unsigned)max);
        if (rc < 0)
            return fail(why, whylen, "'%.*s' is not a port range (low-high)", QUOTE(p, len));
    }
    if (v[0] > v[1])
        return fail(why, whylen, "low port %u is above high port %u", v[0], v[1]);
    out->low = v[0];
    out->high = v[1];
    return 0;
}

static bool realm_name_ok(const char *p, size_t len)
{
    if (len == 0 || len > AGW_CONFIG_REALM_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || is_digit(p[i]) || p[i] == '_' || p[i] == '-'))
            return false;
    return true;
}

/* H.248.1 Annex B: NAME = ALPHA *63(ALPHA / DIGIT / "_"), Version = 1*2(DIGIT). */
static bool profile_ok(const char *p, size_t len)
{
    const char *slash = find_char(p, len, '/');
    if (slash == NULL)
        return false;
    size_t name_len = (size_t)(slash - p), ver_len = len - name_len - 1;
    if (name_len == 0 || name_len > 64 || !is_alpha(p[0]) || ver_len == 0 || ver_len > 2)
        return false;
    for (size_t i = 1; i < name_len; i++)
        if (!is_alpha(p[i]) && !is_digit(p[i]) && p[i] != '_')
            return false;
    for (size_t i = 0; i < ver_len; i++)
        if (!is_digit(slash[1 + i]))
            return false;
    return true;
}

/* The H.248.1 mId forms an operator writes: [IP]:port, <domain>:port (port optional), or a
 * device name (ALPHA first, then letters, digits and _ / * $ @ . -). */
static bool mid_ok(const char *p, size_t len)
{
    if (p[0] == '[' || p[0] == '<') {
        const char *close = find_char(p, len, p[0] == '[' ? ']' : '>');
        if (close == NULL)
            return false;
        size_t inner = (size_t)(close - p - 1);
        struct sockaddr_storage ss;
        if (p[0] == '[' && parse_ip(p + 1, inner, &ss) < 0)
            return false;
        if (p[0] == '<') {
            if (inner == 0 || !(is_alpha(p[1]) || is_digit(p[1])))
                return false;
            for (size_t i = 1; i <= inner; i++)
                if (!is_alpha(p[i]) && !is_digit(p[i]) && p[i] != '.' && p[i] != '-')
                    return false;
        }
        size_t rest = len - inner - 2;
        uint16_t port;
        return rest == 0 ||
               (close[1] == ':' && parse_port(close + 2, rest - 1, 1, 65535, &port) == 0);
    }
    if (!is_alpha(p[0]))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!is_alpha(p[i]) && !is_digit(p[i]) && !strchr("_/*$@.-", p[i]))
            return false;
    return true;
}

/* Paths come back through the INI reader: no ';' (inline comment), no control characters, no
 * blanks at either end (inih strips them). */
static bool path_ok(const char *p, size_t len)
{
    if (len && (is_blank(p[0]) || is_blank(p[len - 1])))
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f || p[i] == ';')
            return false;
    return true;
}

static int check_text(enum text_kind kind, const char *p, size_t len, char *why, size_t whylen)
{
    switch (kind) {
    case TEXT_MID:
        if (len == 0 || mid_ok(p, len))
            return 0;
        return fail(why, whylen,
                    "'%.*s' is not an H.248 mId ([address]:port, <domain>:port or a device name)",
                    QUOTE(p, len));
    case TEXT_PROFILE:
        if (profile_ok(p, len))
            return 0;
        return fail(why, whylen, "'%.*s' is not a profile name/version such as threegiq/1",
                    QUOTE(p, len));
    case TEXT_REALM_NAME:
        if (realm_name_ok(p, len))
            return 0;
        return fail(why, whylen,
                    "'%.*s' is not a realm name (1..%d characters of a-z, 0-9, _ and -)",
                    QUOTE(p, len), AGW_CONFIG_REALM_NAME_MAX);
    case TEXT_TLS_LIST:
        for (size_t i = 0; i < len; i++) {
            char ch = p[i];
            bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                      (ch >= '0' && ch <= '9') || strchr(":_-+!@=.", ch) != NULL;
            if (!ok)
                return fail(why, whylen,
                            "'%.*s' is not an OpenSSL list (letters, digits, "
                            "':', '_', '-', '+', '!', '@', '=', '.')",
                            QUOTE(p, len));
        }
        return 0;
    case TEXT_PATH:
        if (path_ok(p, len))
            return 0;
        return fail(why, whylen,
                    "'%.*s' is not a usable path (no ';', control characters or outer blanks)",
                    QUOTE(p, len));
    }
    return fail(why, whylen, "unknown text kind");
}

/* ---- applying one value to one key ---- */

static unsigned *list_count(const struct config_key *k, char *base)
{
    return (unsigned *)(base + k->count_offset);
}

static void list_clear(const struct config_key *k, char *base)
{
    memset(base + k->offset, 0, k->size);
    *list_count(k, base) = 0;
}

/* Parses value into the field of k in base (a struct agw_config or agw_config_realm). A list
 * key appends. On error the field is unchanged and why holds the reason. */
static int key_apply(const struct config_key *k, char *base, const char *p, size_t len, char *why,
                     size_t whylen)
{
    char *field = base + k->offset;
    trim(&p, &len);
    if (len == 0 && !(k->flags & KEY_EMPTY_OK))
        return fail(why, whylen, "a value is required");
    if (len > VALUE_MAX)
        return fail(why, whylen, "the value is longer than %d characters", VALUE_MAX);

    switch (k->type) {
    case KEY_STRING: {
        if (len >= k->size)
            return fail(why, whylen, "'%.*s' is longer than %zu characters", QUOTE(p, len),
                        k->size - 1);
        int rc = check_text(k->text, p, len, why, whylen);
        if (rc < 0)
            return rc;
        memset(field, 0, k->size);
        memcpy(field, p, len);
        return 0;
    }
    case KEY_UINT: {
        uint32_t v;
        if ((k->flags & KEY_AUTO) && len == 4 && memcmp(p, "auto", 4) == 0) {
            v = 0;
        } else {
            int rc = parse_uint(p, len, &v);
            if (rc == -EINVAL)
                return fail(why, whylen, "'%.*s' is not a number%s", QUOTE(p, len),
                            (k->flags & KEY_AUTO) ? " or auto" : "");
            if (rc < 0 || v < k->min || v > k->max)
                return fail(why, whylen, "%.*s is out of range %u..%u", QUOTE(p, len),
                            (unsigned)k->min, (unsigned)k->max);
        }
        memcpy(field, &v, sizeof(v));
        return 0;
    }
    case KEY_ENUM: {
        for (int i = 0; k->names[i]; i++) {
            if (strlen(k->names[i]) == len && memcmp(k->names[i], p, len) == 0) {
                memcpy(field, &i, sizeof(i));
                return 0;
            }
        }
        struct msg m = {why, whylen, 0};
        msg_add(&m, "'%.*s' is not one of", QUOTE(p, len));
        for (int i = 0; k->names[i]; i++)
            msg_add(&m, "%s %s", i ? "," : "", k->names[i]);
        return -EINVAL;
    }
    case KEY_ADDR_PORT: {
        struct sockaddr_storage ss = {.ss_family = AF_UNSPEC};
        int rc = len == 0 ? 0 : parse_addr_port(p, len, k->min, k->max, &ss, why, whylen);
        if (rc == 0)
            memcpy(field, &ss, sizeof(ss));
        return rc;
    }
    case KEY_ADDR: {
        struct sockaddr_storage ss;
        if (parse_ip(p, len, &ss) < 0)
            return fail(why, whylen, "'%.*s' is not an IPv4 or IPv6 address", QUOTE(p, len));
        memcpy(field, &ss, sizeof(ss));
        return 0;
    }
    case KEY_PORT_RANGE: {
        struct agw_config_port_range r;
        int rc = parse_port_range(p, len, k->min, k->max, &r, why, whylen);
        if (rc == 0)
            memcpy(field, &r, sizeof(r));
        return rc;
    }
    case KEY_ADDR_PORT_LIST: {
        size_t max = k->size / sizeof(struct sockaddr_storage);
        unsigned *count = list_count(k, base);
        struct sockaddr_storage parsed[AGW_CONFIG_MAX_MGCS];
        size_t n = 0;
        _Static_assert(ARRAY_SIZE(parsed) >= AGW_CONFIG_MAX_MGCS, "list scratch too small");
        for (size_t at = 0, stop; at <= len; at = stop + 1) {
            const char *comma = find_char(p + at, len - at, ',');
            stop = comma ? (size_t)(comma - p) : len;
            const char *item = p + at;
            size_t item_len = stop - at;
            trim(&item, &item_len);
            if (item_len == 0)
                return fail(why, whylen, "empty address in the list");
            if (*count + n >= max || n >= ARRAY_SIZE(parsed))
                return fail(why, whylen, "more than %zu addresses", max);
            int rc = parse_addr_port(item, item_len, k->min, k->max, &parsed[n], why, whylen);
            if (rc < 0)
                return rc;
            n++;
        }
        memcpy(field + *count * sizeof(struct sockaddr_storage), parsed, n * sizeof(parsed[0]));
        *count += (unsigned)n;
        return 0;
    }
    }
    return fail(why, whylen, "unknown key type");
}

static int key_apply_default(const struct config_key *k, char *base)
{
    char why[WHY_MAX];
    int rc = key_apply(k, base, k->def, strlen(k->def), why, sizeof(why));
    if (rc < 0) {
        /* The table is ours: a default that does not parse is a bug, found by the first test. */
        fprintf(stderr, "ims-agw: bad embedded default of '%s': %s\n", k->name, why);
        abort();
    }
    return rc;
}

/* ---- sections and keys ---- */

struct key_target {
    const struct config_key *key;
    size_t index; /* in keys[] */
    int realm;    /* -1 for [global] */
    char *base;
};

static struct agw_config_realm *realm_find(const struct agw_config *cfg, const char *name,
                                           size_t len)
{
    for (unsigned i = 0; i < cfg->realm_count && i < AGW_CONFIG_MAX_REALMS; i++) {
        const struct agw_config_realm *r = &cfg->realms[i];
        if (strlen(r->name) == len && memcmp(r->name, name, len) == 0)
            return (struct agw_config_realm *)r;
    }
    return NULL;
}

static bool is_realm_section(const char *s, size_t len)
{
    return len > 5 && memcmp(s, "realm", 5) == 0 && is_blank(s[5]);
}

/* "global", or "realm NAME" (blanks around NAME allowed): the kind, and the realm's name. */
static int section_parse(const char *s, size_t len, enum key_section *kind, const char **name,
                         size_t *name_len, char *err, size_t errlen)
{
    if (len == 6 && memcmp(s, "global", 6) == 0) {
        *kind = IN_GLOBAL;
        return 0;
    }
    if (!is_realm_section(s, len))
        return fail(err, errlen, "unknown section [%.*s] (expected [global] or [realm NAME])",
                    QUOTE(s, len));
    *kind = IN_REALM;
    *name = s + 5;
    *name_len = len - 5;
    trim(name, name_len);
    if (!realm_name_ok(*name, *name_len))
        return fail(err, errlen,
                    "section [%.*s]: '%.*s' is not a realm name (1..%d characters of a-z, 0-9, _ "
                    "and -)",
                    QUOTE(s, len), QUOTE(*name, *name_len), AGW_CONFIG_REALM_NAME_MAX);
    return 0;
}

/* Finds the key named by section and name; a new realm is created with its defaults. */
static int key_resolve(struct agw_config *cfg, const char *section, const char *name,
                       struct key_target *t, char *err, size_t errlen)
{
    enum key_section kind;
    const char *realm_name = NULL;
    size_t realm_len = 0;
    int rc = section_parse(section, strnlen(section, VALUE_MAX), &kind, &realm_name, &realm_len,
                           err, errlen);
    if (rc < 0)
        return rc;

    t->key = NULL;
    for (size_t i = 0; i < KEY_COUNT; i++) {
        if (keys[i].section == kind && strcmp(keys[i].name, name) == 0) {
            t->key = &keys[i];
            t->index = i;
        }
    }
    if (t->key == NULL)
        return fail(err, errlen, "unknown key '%s' in [%s]", name, section);

    if (kind == IN_GLOBAL) {
        t->realm = -1;
        t->base = (char *)cfg;
        return 0;
    }
    struct agw_config_realm *r = realm_find(cfg, realm_name, realm_len);
    if (r == NULL) {
        if (cfg->realm_count >= AGW_CONFIG_MAX_REALMS)
            return fail(err, errlen, "section [%s]: more than %d realms", section,
                        AGW_CONFIG_MAX_REALMS);
        r = &cfg->realms[cfg->realm_count++];
        memset(r, 0, sizeof(*r));
        memcpy(r->name, realm_name, realm_len);
        for (size_t i = 0; i < KEY_COUNT; i++)
            if (keys[i].section == IN_REALM && keys[i].def)
                key_apply_default(&keys[i], (char *)r);
    }
    t->realm = (int)(r - cfg->realms);
    t->base = (char *)r;
    return 0;
}

int agw_config_set(struct agw_config *cfg, const char *section, const char *key, const char *value,
                   char *err, size_t errlen)
{
    struct key_target t;
    int rc = key_resolve(cfg, section, key, &t, err, errlen);
    if (rc < 0)
        return rc;
    char why[WHY_MAX];
    rc = key_apply(t.key, t.base, value, strnlen(value, VALUE_MAX + 1), why, sizeof(why));
    if (rc < 0)
        return fail(err, errlen, "key '%s' in [%s]: %s", key, section, why);
    return 0;
}

void agw_config_init_defaults(struct agw_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < KEY_COUNT; i++)
        if (keys[i].section == IN_GLOBAL)
            key_apply_default(&keys[i], (char *)cfg);
    for (size_t i = 0; i < ARRAY_SIZE(default_realms); i++) {
        char section[64], err[WHY_MAX];
        snprintf(section, sizeof(section), "realm %s", default_realms[i].name);
        if (agw_config_set(cfg, section, "address", default_realms[i].address, err, sizeof(err)) <
                0 ||
            agw_config_set(cfg, section, "ports", default_realms[i].ports, err, sizeof(err)) < 0) {
            fprintf(stderr, "ims-agw: bad embedded default realm: %s\n", err);
            abort();
        }
    }
}

/* ---- the file ---- */

/* Feeds inih one line at a time. Leading blanks are removed so that an indented key is a key,
 * never the continuation of the previous value (inih's multi-line values stay unused). Lines
 * inih would split (longer than its buffer), NUL bytes and unknown section headers (inih says
 * nothing of a section without keys) stop the parse with an error. */
struct line_reader {
    FILE *f;
    int line;
    bool failed;
    char why[2 * WHY_MAX];
};

static char *read_line(char *str, int num, void *stream)
{
    struct line_reader *r = stream;
    if (r->failed || num < 2)
        return NULL;
    size_t cap = (size_t)num - 1, len = 0;
    int c;
    bool any = false;
    while ((c = getc(r->f)) != EOF) {
        any = true;
        if (c == '\n')
            break;
        if (c == '\0' || len == cap) {
            r->line++;
            r->failed = true;
            if (c == '\0')
                fail(r->why, sizeof(r->why), "NUL byte in the line");
            else
                fail(r->why, sizeof(r->why), "line longer than %zu characters", cap);
            return NULL;
        }
        str[len++] = (char)c;
    }
    if (!any)
        return NULL;
    r->line++;
    size_t skip = 0;
    while (skip < len && is_blank(str[skip]))
        skip++;
    len -= skip;
    memmove(str, str + skip, len);
    str[len] = '\0';
    const char *close = str[0] == '[' ? find_char(str, len, ']') : NULL;
    if (close) {
        enum key_section kind;
        const char *name;
        size_t name_len;
        if (section_parse(str + 1, (size_t)(close - str - 1), &kind, &name, &name_len, r->why,
                          sizeof(r->why)) < 0) {
            r->failed = true;
            return NULL;
        }
    }
    return str;
}

struct file_load {
    struct agw_config *cfg;
    const char *path;
    char *err;
    size_t errlen;
    int err_line;         /* 0: no error so far */
    bool realms_replaced; /* the file's first [realm] dropped the realms it was loaded over */
    /* Line where each key was first set: [key][0] in [global], [key][1 + realm] in a realm. */
    int first_line[KEY_COUNT][1 + AGW_CONFIG_MAX_REALMS];
};

__attribute__((format(printf, 3, 4))) static int file_fail(struct file_load *fl, int line,
                                                           const char *fmt, ...)
{
    struct msg m = {fl->err, fl->errlen, 0};
    char text[2 * WHY_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    msg_add(&m, "%s:%d: %s", fl->path, line, text);
    fl->err_line = line;
    return 0; /* inih: this line failed */
}

static int file_key(void *user, const char *section, const char *name, const char *value, int line)
{
    struct file_load *fl = user;
    if (fl->err_line)
        return 1; /* only the first error is reported; inih reads on regardless */
    if (section[0] == '\0')
        return file_fail(fl, line, "key '%s' comes before any section ([global] or [realm NAME])",
                         name);
    if (is_realm_section(section, strlen(section)) && !fl->realms_replaced) {
        fl->realms_replaced = true;
        fl->cfg->realm_count = 0;
        memset(fl->cfg->realms, 0, sizeof(fl->cfg->realms));
    }
    struct key_target t;
    char why[WHY_MAX];
    if (key_resolve(fl->cfg, section, name, &t, why, sizeof(why)) < 0)
        return file_fail(fl, line, "%s", why);
    int *first = &fl->first_line[t.index][1 + t.realm];
    if (*first && t.key->type != KEY_ADDR_PORT_LIST)
        return file_fail(fl, line, "key '%s' in [%s]: duplicate key (first set on line %d)", name,
                         section, *first);
    if (*first == 0 && t.key->type == KEY_ADDR_PORT_LIST)
        list_clear(t.key, t.base); /* the file's list replaces the one it was loaded over */
    if (*first == 0)
        *first = line;
    if (key_apply(t.key, t.base, value, strnlen(value, VALUE_MAX + 1), why, sizeof(why)) < 0)
        return file_fail(fl, line, "key '%s' in [%s]: %s", name, section, why);
    return 1;
}

int agw_config_load_file(struct agw_config *cfg, const char *path, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        int e = errno;
        fail(err, errlen, "%s: cannot open: %s", path, strerror(e));
        return -e;
    }
    struct line_reader reader = {.f = f};
    struct file_load fl = {.cfg = cfg, .path = path, .err = err, .errlen = errlen};
    int rc = ini_parse_stream(read_line, &reader, file_key, &fl);
    bool read_error = ferror(f);
    fclose(f);

    if (rc > 0 && (fl.err_line == 0 || rc < fl.err_line))
        return fail(err, errlen,
                    "%s:%d: syntax error: expected [section], key = value or a comment", path, rc);
    if (fl.err_line)
        return -EINVAL;
    if (reader.failed)
        return fail(err, errlen, "%s:%d: %s", path, reader.line, reader.why);
    if (read_error) {
        fail(err, errlen, "%s: read error", path);
        return -EIO;
    }
    if (rc < 0) {
        fail(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    return 0;
}

/* ---- comparing and formatting ---- */

static bool addr_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
    return true;
}

static bool addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    return addr_same_host(a, b) && get_port(a) == get_port(b);
}

static bool addr_is_any(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (a->ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
    return false;
}

/* Binding one would collide with binding the other (a wildcard covers its whole family). */
static bool addr_overlap(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    return a->ss_family == b->ss_family &&
           (addr_is_any(a) || addr_is_any(b) || addr_same_host(a, b));
}

int agw_config_format_address(const struct sockaddr_storage *addr, bool with_port, char *buf,
                              size_t cap)
{
    char host[INET6_ADDRSTRLEN];
    const void *src;
    if (addr->ss_family == AF_INET)
        src = &((const struct sockaddr_in *)addr)->sin_addr;
    else if (addr->ss_family == AF_INET6)
        src = &((const struct sockaddr_in6 *)addr)->sin6_addr;
    else
        src = NULL;
    if (src == NULL || inet_ntop(addr->ss_family, src, host, sizeof(host)) == NULL)
        host[0] = '\0';
    int n;
    if (!with_port)
        n = snprintf(buf, cap, "%s", host);
    else if (addr->ss_family == AF_INET6)
        n = snprintf(buf, cap, "[%s]:%u", host, get_port(addr));
    else
        n = snprintf(buf, cap, "%s:%u", host, get_port(addr));
    return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}

static const struct sockaddr_storage *list_item(const struct config_key *k, const char *base,
                                                unsigned i)
{
    return (const struct sockaddr_storage *)(base + k->offset) + i;
}

static bool key_equal(const struct config_key *k, const char *a, const char *b)
{
    const char *fa = a + k->offset, *fb = b + k->offset;
    switch (k->type) {
    case KEY_STRING:
        return strncmp(fa, fb, k->size) == 0;
    case KEY_UINT:
    case KEY_ENUM:
    case KEY_PORT_RANGE:
        return memcmp(fa, fb, k->size) == 0;
    case KEY_ADDR_PORT:
    case KEY_ADDR:
        return addr_equal((const struct sockaddr_storage *)fa, (const struct sockaddr_storage *)fb);
    case KEY_ADDR_PORT_LIST: {
        unsigned na = *(const unsigned *)(a + k->count_offset);
        if (na != *(const unsigned *)(b + k->count_offset))
            return false;
        for (unsigned i = 0; i < na; i++)
            if (!addr_equal(list_item(k, a, i), list_item(k, b, i)))
                return false;
        return true;
    }
    }
    return false;
}

/* One value in the file format (a list: its item i). */
static void format_value(const struct config_key *k, const char *base, unsigned i, char *buf,
                         size_t cap)
{
    const char *field = base + k->offset;
    switch (k->type) {
    case KEY_STRING:
        snprintf(buf, cap, "%s", field);
        return;
    case KEY_UINT: {
        uint32_t v;
        memcpy(&v, field, sizeof(v));
        if (v == 0 && (k->flags & KEY_AUTO))
            snprintf(buf, cap, "auto");
        else
            snprintf(buf, cap, "%u", (unsigned)v);
        return;
    }
    case KEY_ENUM: {
        int v, n = 0;
        memcpy(&v, field, sizeof(v));
        while (k->names[n])
            n++;
        snprintf(buf, cap, "%s", v >= 0 && v < n ? k->names[v] : "?");
        return;
    }
    case KEY_ADDR_PORT:
    case KEY_ADDR:
        if (((const struct sockaddr_storage *)field)->ss_family == AF_UNSPEC && cap > 0)
            buf[0] = '\0'; /* an optional address left empty */
        else
            agw_config_format_address((const struct sockaddr_storage *)field,
                                      k->type == KEY_ADDR_PORT, buf, cap);
        return;
    case KEY_PORT_RANGE: {
        const struct agw_config_port_range *r = (const void *)field;
        snprintf(buf, cap, "%u-%u", r->low, r->high);
        return;
    }
    case KEY_ADDR_PORT_LIST:
        agw_config_format_address(list_item(k, base, i), true, buf, cap);
        return;
    }
}

static void print_key(const struct config_key *k, const char *base, FILE *out)
{
    fprintf(out, "; %s", k->help);
    if (k->type == KEY_UINT)
        fprintf(out, " (%s%u..%u)", (k->flags & KEY_AUTO) ? "auto, " : "", (unsigned)k->min,
                (unsigned)k->max);
    fprintf(out, " [%s]\n", (k->flags & KEY_RELOADABLE) ? "reloadable" : "restart");
    char value[WHY_MAX];
    unsigned n = k->type == KEY_ADDR_PORT_LIST ? *(const unsigned *)(base + k->count_offset) : 1;
    for (unsigned i = 0; i < n; i++) {
        format_value(k, base, i, value, sizeof(value));
        fprintf(out, "%s =%s%s\n", k->name, value[0] ? " " : "", value);
    }
}

void agw_config_print(const struct agw_config *cfg, FILE *out)
{
    fprintf(out, "; ims-agw configuration; [reloadable] keys change on SIGHUP\n[global]\n");
    for (size_t i = 0; i < KEY_COUNT; i++)
        if (keys[i].section == IN_GLOBAL)
            print_key(&keys[i], (const char *)cfg, out);
    for (unsigned r = 0; r < cfg->realm_count && r < AGW_CONFIG_MAX_REALMS; r++) {
        fprintf(out, "\n[realm %s]\n", cfg->realms[r].name);
        for (size_t i = 0; i < KEY_COUNT; i++)
            if (keys[i].section == IN_REALM)
                print_key(&keys[i], (const char *)&cfg->realms[r], out);
    }
}

bool agw_config_equal(const struct agw_config *a, const struct agw_config *b)
{
    for (size_t i = 0; i < KEY_COUNT; i++)
        if (keys[i].section == IN_GLOBAL && !key_equal(&keys[i], (const char *)a, (const char *)b))
            return false;
    if (a->realm_count != b->realm_count)
        return false;
    for (unsigned r = 0; r < a->realm_count && r < AGW_CONFIG_MAX_REALMS; r++) {
        const struct agw_config_realm *ra = &a->realms[r];
        const struct agw_config_realm *rb = realm_find(b, ra->name, strlen(ra->name));
        if (rb == NULL)
            return false;
        for (size_t i = 0; i < KEY_COUNT; i++)
            if (keys[i].section == IN_REALM &&
                !key_equal(&keys[i], (const char *)ra, (const char *)rb))
                return false;
    }
    return true;
}

int agw_config_reload_check(const struct agw_config *old_cfg, const struct agw_config *new_cfg,
                            char *err, size_t errlen)
{
    char list[1024];
    struct msg m = {list, sizeof(list), 0};
    list[0] = '\0';
    for (size_t i = 0; i < KEY_COUNT; i++)
        if (keys[i].section == IN_GLOBAL && !(keys[i].flags & KEY_RELOADABLE) &&
            !key_equal(&keys[i], (const char *)old_cfg, (const char *)new_cfg))
            msg_add(&m, "%s%s", m.len ? ", " : "", keys[i].name);
    for (unsigned r = 0; r < old_cfg->realm_count && r < AGW_CONFIG_MAX_REALMS; r++) {
        const struct agw_config_realm *ro = &old_cfg->realms[r];
        const struct agw_config_realm *rn = realm_find(new_cfg, ro->name, strlen(ro->name));
        if (rn == NULL) {
            msg_add(&m, "%s[realm %s] removed", m.len ? ", " : "", ro->name);
            continue;
        }
        for (size_t i = 0; i < KEY_COUNT; i++)
            if (keys[i].section == IN_REALM && !(keys[i].flags & KEY_RELOADABLE) &&
                !key_equal(&keys[i], (const char *)ro, (const char *)rn))
                msg_add(&m, "%s%s in [realm %s]", m.len ? ", " : "", keys[i].name, ro->name);
    }
    for (unsigned r = 0; r < new_cfg->realm_count && r < AGW_CONFIG_MAX_REALMS; r++) {
        const struct agw_config_realm *rn = &new_cfg->realms[r];
        if (realm_find(old_cfg, rn->name, strlen(rn->name)) == NULL)
            msg_add(&m, "%s[realm %s] added", m.len ? ", " : "", rn->name);
    }
    if (m.len == 0) {
        if (err && errlen)
            err[0] = '\0';
        return 0;
    }
    fail(err, errlen, "changes that need a restart: %s", list);
    return -EPERM;
}

void agw_config_take_reloadable(struct agw_config *cfg, const struct agw_config *fresh)
{
    for (size_t i = 0; i < KEY_COUNT; i++) {
        const struct config_key *k = &keys[i];
        if (k->section != IN_GLOBAL || !(k->flags & KEY_RELOADABLE))
            continue;
        memcpy((char *)cfg + k->offset, (const char *)fresh + k->offset, k->size);
        if (k->type == KEY_ADDR_PORT_LIST)
            memcpy((char *)cfg + k->count_offset, (const char *)fresh + k->count_offset,
                   sizeof(unsigned));
    }
}

/* ---- cross-field checks ---- */

int agw_config_validate(const struct agw_config *cfg, char *err, size_t errlen)
{
    char a[ADDR_TEXT], b[ADDR_TEXT];
    if (cfg->realm_count == 0)
        return fail(err, errlen, "no realm: at least one [realm NAME] is required");
    if (cfg->realm_count > AGW_CONFIG_MAX_REALMS || cfg->mgc_count > AGW_CONFIG_MAX_MGCS)
        return fail(err, errlen, "more realms or mgc addresses than the storage holds");

    for (size_t i = 0; i < KEY_COUNT; i++) {
        const struct config_key *k = &keys[i];
        if (k->section == IN_GLOBAL && k->type == KEY_ADDR_PORT_LIST &&
            *(const unsigned *)((const char *)cfg + k->count_offset) == 0)
            return fail(err, errlen, "key '%s' in [global]: at least one address is required",
                        k->name);
        if (k->section != IN_REALM || k->def)
            continue;
        for (unsigned r = 0; r < cfg->realm_count; r++) {
            const char *field = (const char *)&cfg->realms[r] + k->offset;
            bool set = k->type == KEY_ADDR
                           ? ((const struct sockaddr_storage *)field)->ss_family != AF_UNSPEC
                           : ((const struct agw_config_port_range *)field)->low != 0;
            if (!set)
                return fail(err, errlen, "key '%s' in [realm %s] is required", k->name,
                            cfg->realms[r].name);
        }
    }

    /* sun_path holds 108 bytes with the NUL. */
    if (strlen(cfg->control_socket) > 107)
        return fail(err, errlen, "control_socket is longer than 107 bytes (a Unix socket path)");

    if (realm_find(cfg, cfg->default_realm, strlen(cfg->default_realm)) == NULL)
        return fail(err, errlen, "default_realm '%s' is not a configured realm",
                    cfg->default_realm);

    for (unsigned i = 0; i < cfg->realm_count; i++) {
        const struct agw_config_realm *ri = &cfg->realms[i];
        if ((ri->certificate[0] == '\0') != (ri->private_key[0] == '\0'))
            return fail(err, errlen,
                        "[realm %s]: certificate and private_key go together (both set or both "
                        "empty)",
                        ri->name);
        uint16_t iq_port = get_port(&cfg->iq_listen);
        if (addr_overlap(&ri->address, &cfg->iq_listen) && iq_port >= ri->ports.low &&
            iq_port <= ri->ports.high) {
            agw_config_format_address(&cfg->iq_listen, true, a, sizeof(a));
            return fail(err, errlen, "iq_listen %s is inside ports %u-%u of [realm %s]", a,
                        ri->ports.low, ri->ports.high, ri->name);
        }
        /* TCP like the realm's listening terminations: the two would fight over the port. */
        uint16_t metrics_port = get_port(&cfg->metrics_listen);
        if (addr_overlap(&ri->address, &cfg->metrics_listen) && metrics_port >= ri->ports.low &&
            metrics_port <= ri->ports.high) {
            agw_config_format_address(&cfg->metrics_listen, true, a, sizeof(a));
            return fail(err, errlen, "metrics_listen %s is inside ports %u-%u of [realm %s]", a,
                        ri->ports.low, ri->ports.high, ri->name);
        }
        for (unsigned j = i + 1; j < cfg->realm_count; j++) {
            const struct agw_config_realm *rj = &cfg->realms[j];
            if (addr_overlap(&ri->address, &rj->address) && ri->ports.low <= rj->ports.high &&
                rj->ports.low <= ri->ports.high) {
                agw_config_format_address(&ri->address, false, a, sizeof(a));
                agw_config_format_address(&rj->address, false, b, sizeof(b));
                return fail(err, errlen,
                            "ports of [realm %s] (%s %u-%u) and [realm %s] (%s %u-%u) overlap",
                            ri->name, a, ri->ports.low, ri->ports.high, rj->name, b, rj->ports.low,
                            rj->ports.high);
            }
        }
    }

    for (unsigned i = 0; i < cfg->mgc_count; i++) {
        agw_config_format_address(&cfg->mgc[i], true, a, sizeof(a));
        if (cfg->mgc[i].ss_family != cfg->iq_listen.ss_family) {
            agw_config_format_address(&cfg->iq_listen, true, b, sizeof(b));
            return fail(err, errlen, "mgc %s and iq_listen %s are of different address families", a,
                        b);
        }
        for (unsigned j = i + 1; j < cfg->mgc_count; j++)
            if (addr_equal(&cfg->mgc[i], &cfg->mgc[j]))
                return fail(err, errlen, "mgc %s is listed twice", a);
    }

    if (cfg->mg_min_rto_ms > cfg->mg_initial_rto_ms || cfg->mg_initial_rto_ms > cfg->mg_max_rto_ms)
        return fail(err, errlen,
                    "retransmission timeouts must grow: mg_min_rto_ms %u <= mg_initial_rto_ms %u "
                    "<= mg_max_rto_ms %u",
                    (unsigned)cfg->mg_min_rto_ms, (unsigned)cfg->mg_initial_rto_ms,
                    (unsigned)cfg->mg_max_rto_ms);
    if (err && errlen)
        err[0] = '\0';
    return 0;
}

void agw_config_mid(const struct agw_config *cfg, char *buf, size_t cap)
{
    char host[INET6_ADDRSTRLEN];
    if (cfg->mid[0]) {
        snprintf(buf, cap, "%s", cfg->mid);
        return;
    }
    agw_config_format_address(&cfg->iq_listen, false, host, sizeof(host));
    snprintf(buf, cap, "[%s]:%u", host, get_port(&cfg->iq_listen));
}

/* ---- the command line ---- */

enum { OPT_REALM = 1000, OPT_KEY = 1100 };

struct cli_options {
    struct option opts[KEY_COUNT + 6];
    char names[KEY_COUNT][40];
};

/* The long options: the fixed ones, then every [global] key with '_' written '-'. */
static void cli_options_build(struct cli_options *o)
{
    size_t n = 0;
    o->opts[n++] = (struct option){"config", required_argument, NULL, 'c'};
    o->opts[n++] = (struct option){"test", no_argument, NULL, 't'};
    o->opts[n++] = (struct option){"version", no_argument, NULL, 'V'};
    o->opts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    o->opts[n++] = (struct option){"realm", required_argument, NULL, OPT_REALM};
    for (size_t i = 0; i < KEY_COUNT; i++) {
        if (keys[i].section != IN_GLOBAL)
            continue;
        char *name = o->names[i];
        snprintf(name, sizeof(o->names[i]), "%s", keys[i].name);
        for (char *c = name; *c; c++)
            if (*c == '_')
                *c = '-';
        o->opts[n++] = (struct option){name, required_argument, NULL, OPT_KEY + (int)i};
    }
    o->opts[n] = (struct option){NULL, 0, NULL, 0};
}

/* --realm NAME,ADDRESS,LOW-HIGH: a new realm, or new address and ports for an existing one. */
static int cli_realm(struct agw_config *cfg, const char *arg, char *err, size_t errlen)
{
    size_t len = strnlen(arg, VALUE_MAX + 1);
    const char *c1 = find_char(arg, len, ',');
    const char *c2 = c1 ? find_char(c1 + 1, len - (size_t)(c1 + 1 - arg), ',') : NULL;
    if (c2 == NULL || find_char(c2 + 1, len - (size_t)(c2 + 1 - arg), ','))
        return fail(err, errlen, "option --realm: '%.*s' is not NAME,ADDRESS,LOW-HIGH",
                    QUOTE(arg, len));
    size_t name_len = (size_t)(c1 - arg);
    if (!realm_name_ok(arg, name_len))
        return fail(err, errlen,
                    "option --realm: '%.*s' is not a realm name (1..%d characters of a-z, 0-9, _ "
                    "and -)",
                    QUOTE(arg, name_len), AGW_CONFIG_REALM_NAME_MAX);
    char section[8 + AGW_CONFIG_REALM_NAME_MAX];
    snprintf(section, sizeof(section), "realm %.*s", (int)name_len, arg);
    const char *value[2] = {c1 + 1, c2 + 1};
    size_t value_len[2] = {(size_t)(c2 - c1 - 1), len - (size_t)(c2 + 1 - arg)};
    const char *key[2] = {"address", "ports"};
    for (int i = 0; i < 2; i++) {
        struct key_target t;
        char why[WHY_MAX];
        if (key_resolve(cfg, section, key[i], &t, why, sizeof(why)) < 0)
            return fail(err, errlen, "option --realm: %s", why);
        if (key_apply(t.key, t.base, value[i], value_len[i], why, sizeof(why)) < 0)
            return fail(err, errlen, "option --realm: key '%s' in [%s]: %s", key[i], section, why);
    }
    return 0;
}

static int cli_error(int opt, char **argv, char *err, size_t errlen)
{
    const char *text = argv[optind - 1];
    if (opt == ':')
        return fail(err, errlen, "option '%s' needs a value", text);
    if (strncmp(text, "--", 2) == 0)
        return fail(err, errlen,
                    optopt ? "option '%s' takes no value" : "unknown or ambiguous option '%s'",
                    text);
    return fail(err, errlen, "unknown option '-%c'", optopt);
}

int agw_config_parse_args(struct agw_config *cfg, int argc, char **argv, struct agw_config_cli *cli,
                          char *err, size_t errlen)
{
    static const char short_opts[] = ":c:tVh"; /* ':' first: a missing value returns ':' */
    struct cli_options o;
    cli_options_build(&o);
    memset(cli, 0, sizeof(*cli));
    agw_config_init_defaults(cfg);
    if (err && errlen)
        err[0] = '\0';

    /* Pass 1: what to do, and which file; settings wait until the file is read. */
    int opt;
    opterr = 0;
    optind = 0; /* glibc: 0 starts a fresh scan, so parse_args can run again on reload */
    while ((opt = getopt_long(argc, argv, short_opts, o.opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            if (cli->config_path)
                return fail(err, errlen, "option -c given twice");
            cli->config_path = optarg;
            break;
        case 't':
            cli->check_only = true;
            break;
        case 'V':
            cli->version = true;
            break;
        case 'h':
            cli->help = true;
            break;
        case '?':
        case ':':
            return cli_error(opt, argv, err, errlen);
        default:
            break;
        }
    }
    if (optind < argc)
        return fail(err, errlen, "unexpected argument '%s'", argv[optind]);
    if (cli->help || cli->version)
        return 0;
    if (cli->config_path) {
        int rc = agw_config_load_file(cfg, cli->config_path, err, errlen);
        if (rc < 0)
            return rc;
    }

    /* Pass 2: the settings, in command-line order, over the file. */
    bool list_seen[KEY_COUNT] = {false};
    optind = 0;
    while ((opt = getopt_long(argc, argv, short_opts, o.opts, NULL)) != -1) {
        int rc = 0;
        if (opt == OPT_REALM) {
            rc = cli_realm(cfg, optarg, err, errlen);
        } else if (opt >= OPT_KEY && (size_t)(opt - OPT_KEY) < KEY_COUNT) {
            size_t i = (size_t)(opt - OPT_KEY);
            const struct config_key *k = &keys[i];
            if (k->type == KEY_ADDR_PORT_LIST && !list_seen[i])
                list_clear(k, (char *)cfg); /* the first one replaces the file's list */
            list_seen[i] = true;
            char why[WHY_MAX];
            if (key_apply(k, (char *)cfg, optarg, strnlen(optarg, VALUE_MAX + 1), why,
                          sizeof(why)) < 0)
                rc = fail(err, errlen, "option --%s: %s", o.names[i], why);
        }
        if (rc < 0)
            return rc;
    }
    return agw_config_validate(cfg, err, errlen);
}

static const char *metavar(const struct config_key *k)
{
    switch (k->type) {
    case KEY_UINT:
        return (k->flags & KEY_AUTO) ? "N|auto" : "N";
    case KEY_ENUM:
        return "LEVEL";
    case KEY_ADDR_PORT:
    case KEY_ADDR_PORT_LIST:
        return "ADDR:PORT";
    case KEY_ADDR:
        return "ADDR";
    case KEY_PORT_RANGE:
        return "LOW-HIGH";
    case KEY_STRING:
        return k->text == TEXT_REALM_NAME ? "NAME" : "TEXT";
    }
    return "VALUE";
}

const char *agw_config_usage(void)
{
    static char text[8192];
    struct msg m = {text, sizeof(text), 0};
    msg_add(&m,
            "usage: ims-agw [-c FILE] [-t] [--KEY VALUE]... [--realm NAME,ADDRESS,LOW-HIGH]...\n"
            "       ims-agw -V | -h\n"
            "  -c, --config FILE  read FILE first; the options below override it in any order\n"
            "  -t, --test         check the configuration, print it and exit\n"
            "  -V, --version      print the versions of ims-agw and its libraries\n"
            "  -h, --help         this text\n"
            "  --realm NAME,ADDRESS,LOW-HIGH\n"
            "      add a realm or replace its address and ports (IPv6 bare: "
            "access,::1,20000-20999)\n");
    for (size_t i = 0; i < KEY_COUNT; i++) {
        const struct config_key *k = &keys[i];
        if (k->section != IN_GLOBAL)
            continue;
        msg_add(&m, "  --");
        for (const char *c = k->name; *c; c++)
            msg_add(&m, "%c", *c == '_' ? '-' : *c);
        msg_add(&m, " %s%s\n      %s", metavar(k),
                k->type == KEY_ADDR_PORT_LIST ? " (repeatable)" : "", k->help);
        if (k->type == KEY_UINT)
            msg_add(&m, " (%u..%u)", (unsigned)k->min, (unsigned)k->max);
        msg_add(&m, "; default %s\n", k->def[0] ? k->def : "empty");
    }
    return text;
}
