/* H.248.1 Annex B text parser: message, transactions, actions and commands. */
#include "arena.h"
#include "h248.h"
#include "lex.h"
#include "parse_internal.h"
#include "token.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

const struct h248_limits h248_default_limits = {
    .max_message_len = 1u << 20,
    .max_depth = 32,
    .max_transactions = 10,
    .max_actions = 64,
    .max_commands = 64,
    .max_terminations = 64,
    .max_items = 256,
    .max_token_len = 1024,
    .max_octet_string_len = 65536,
};

void *h248_parser_alloc(struct h248_parser *ps, size_t size)
{
    void *p = h248_arena_alloc(ps->msg->arena, size);
    if (p == NULL) {
        ps->lx.code = H248_ERR_RESOURCES;
        h248_lex_fail(&ps->lx, "out of memory");
    }
    return p;
}

static bool is_alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

bool h248_is_name(struct h248_str s)
{
    /* NAME = ALPHA *63(ALPHA / DIGIT / "_") */
    if (s.len == 0 || s.len > 64 || !is_alpha(s.ptr[0]))
        return false;
    for (size_t i = 1; i < s.len; i++)
        if (!is_alpha(s.ptr[i]) && !is_digit(s.ptr[i]) && s.ptr[i] != '_')
            return false;
    return true;
}

bool h248_is_pkgd_name(struct h248_str s)
{
    /* pkgdName = (PackageName SLASH ItemID) / (PackageName SLASH "*") / ("*" SLASH "*") */
    const char *slash = memchr(s.ptr, '/', s.len);
    if (slash == NULL)
        return false;
    struct h248_str pkg = {s.ptr, (size_t)(slash - s.ptr)};
    struct h248_str item = {slash + 1, s.len - pkg.len - 1};
    bool pkg_star = pkg.len == 1 && pkg.ptr[0] == '*';
    bool item_star = item.len == 1 && item.ptr[0] == '*';
    if (pkg_star)
        return item_star;
    return h248_is_name(pkg) && (item_star || h248_is_name(item));
}

static bool is_path_name(struct h248_str s)
{
    /* pathNAME = ["*"] NAME *("/" / "*" / ALPHA / DIGIT / "_" / "$") ["@" pathDomainName] */
    size_t i = 0;
    if (i < s.len && s.ptr[i] == '*')
        i++;
    if (i >= s.len || !is_alpha(s.ptr[i]))
        return false;
    for (i++; i < s.len && s.ptr[i] != '@'; i++) {
        char c = s.ptr[i];
        if (!is_alpha(c) && !is_digit(c) && c != '/' && c != '*' && c != '_' && c != '$')
            return false;
    }
    if (i == s.len)
        return true;
    /* pathDomainName = (ALPHA / DIGIT / "*") *63(ALPHA / DIGIT / "-" / "*" / ".") */
    i++;
    if (i >= s.len || s.len - i > 64)
        return false;
    if (!is_alpha(s.ptr[i]) && !is_digit(s.ptr[i]) && s.ptr[i] != '*')
        return false;
    for (i++; i < s.len; i++) {
        char c = s.ptr[i];
        if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '*' && c != '.')
            return false;
    }
    return true;
}

int h248_parse_termination_id(struct h248_parser *ps, struct h248_str *id)
{
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_word(lx, id, "termination id") < 0)
        return -1;
    if (id->len == 1 && (id->ptr[0] == '$' || id->ptr[0] == '*'))
        return 0;
    if (!is_path_name(*id)) {
        lx->pos -= id->len;
        return h248_lex_fail(lx, "invalid termination id");
    }
    return 0;
}

/* IPv4address = V4hex "." V4hex "." V4hex "." V4hex; V4hex = 1*3(DIGIT): leading zeros are
 * legal here, unlike for inet_pton. */
static bool is_ipv4_address(const char *s)
{
    for (int part = 0; part < 4; part++) {
        unsigned value = 0, digits = 0;
        while (is_digit(*s) && digits < 4) {
            value = value * 10 + (unsigned)(*s++ - '0');
            digits++;
        }
        if (digits == 0 || digits > 3 || value > 255)
            return false;
        if (part < 3 && *s++ != '.')
            return false;
    }
    return *s == '\0';
}

static int parse_port(struct h248_parser *ps, struct h248_mid *mid)
{
    /* [":" portNumber] follows the address with no white space. */
    struct h248_lex *lx = &ps->lx;
    if (lx->pos < lx->end && *lx->pos == ':') {
        lx->pos++;
        if (lx->pos >= lx->end || !is_digit(*lx->pos))
            return h248_lex_fail(lx, "expected port number after ':'");
        uint64_t port;
        if (h248_lex_uint(lx, 65535, 5, false, false, &port, "port number") < 0)
            return -1;
        mid->has_port = true;
        mid->port = (uint16_t)port;
    }
    return 0;
}

int h248_parse_mid(struct h248_parser *ps, struct h248_mid *mid, const char *what)
{
    struct h248_lex *lx = &ps->lx;
    int c = h248_lex_peek(lx);
    memset(mid, 0, sizeof(*mid));
    if (c == '[') {
        char *start = ++lx->pos, *p = start;
        while (p < lx->end && *p != ']' && p - start < 64)
            p++;
        if (p >= lx->end || *p != ']')
            return h248_lex_fail(lx, "unterminated address in %s", what);
        char buf[65];
        size_t n = (size_t)(p - start);
        for (size_t i = 0; i < n; i++) {
            char h = start[i];
            if (!is_digit(h) && !((h | 0x20) >= 'a' && (h | 0x20) <= 'f') && h != '.' && h != ':') {
                lx->pos = start + i;
                return h248_lex_fail(lx, "invalid character in the address of %s", what);
            }
        }
        memcpy(buf, start, n);
        buf[n] = '\0';
        unsigned char addr[16];
        if (is_ipv4_address(buf))
            mid->kind = H248_MID_IPV4;
        else if (inet_pton(AF_INET6, buf, addr) == 1)
            mid->kind = H248_MID_IPV6;
        else
            return h248_lex_fail(lx, "invalid IP address in %s", what);
        mid->text.ptr = start;
        mid->text.len = n;
        lx->pos = p + 1;
        return parse_port(ps, mid);
    }
    if (c == '<') {
        /* domainName = "<" (ALPHA / DIGIT) *63(ALPHA / DIGIT / "-" / ".") ">" */
        char *start = ++lx->pos, *p = start;
        if (p >= lx->end || !(is_alpha(*p) || is_digit(*p)))
            return h248_lex_fail(lx, "invalid domain name in %s", what);
        p++;
        while (p < lx->end && (is_alpha(*p) || is_digit(*p) || *p == '-' || *p == '.') &&
               p - start < 64)
            p++;
        if (p >= lx->end || *p != '>') {
            lx->pos = p;
            return h248_lex_fail(lx, "invalid domain name in %s", what);
        }
        mid->kind = H248_MID_DOMAIN;
        mid->text.ptr = start;
        mid->text.len = (size_t)(p - start);
        lx->pos = p + 1;
        return parse_port(ps, mid);
    }
    struct h248_str word;
    if (h248_lex_word(lx, &word, what) < 0)
        return -1;
    if (h248_str_ieq(word, "MTP") && h248_lex_peek(lx) == '{') {
        /* mtpAddress = MTPToken LBRKT 4*8 (HEXDIG) RBRKT */
        lx->pos++;
        struct h248_str hex;
        if (h248_lex_word(lx, &hex, "MTP address") < 0)
            return -1;
        if (hex.len < 4 || hex.len > 8)
            return h248_lex_fail(lx, "MTP address must have 4 to 8 hex digits");
        for (size_t i = 0; i < hex.len; i++) {
            char h = hex.ptr[i];
            if (!is_digit(h) && !((h | 0x20) >= 'a' && (h | 0x20) <= 'f'))
                return h248_lex_fail(lx, "MTP address is not hexadecimal");
        }
        if (h248_lex_expect(lx, '}', "after MTP address") < 0)
            return -1;
        mid->kind = H248_MID_MTP;
        mid->text = hex;
        return 0;
    }
    if (!is_path_name(word)) {
        lx->pos -= word.len;
        return h248_lex_fail(lx, "invalid %s", what);
    }
    mid->kind = H248_MID_DEVICE;
    mid->text = word;
    return 0;
}

/* TimeStamp = Date "T" Time; Date = 8(DIGIT); Time = 8(DIGIT) */
bool h248_split_timestamp(struct h248_str word, char date[9], char time[9])
{
    if (word.len != 17 || (word.ptr[8] != 'T' && word.ptr[8] != 't'))
        return false;
    for (size_t i = 0; i < 17; i++)
        if (i != 8 && !is_digit(word.ptr[i]))
            return false;
    memcpy(date, word.ptr, 8);
    date[8] = '\0';
    memcpy(time, word.ptr + 9, 8);
    time[8] = '\0';
    return true;
}

static int parse_context_id(struct h248_parser *ps, struct h248_context_id *ctx)
{
    struct h248_lex *lx = &ps->lx;
    int c = h248_lex_peek(lx);
    if (c == '$' || c == '*' || c == '-') {
        lx->pos++;
        if (lx->pos < lx->end && h248_is_safe_char((unsigned char)*lx->pos))
            return h248_lex_fail(lx, "invalid context id");
        ctx->kind = c == '$' ? H248_CTX_CHOOSE : c == '*' ? H248_CTX_ALL : H248_CTX_NULL;
        return 0;
    }
    uint64_t id;
    if (h248_lex_uint(lx, UINT32_MAX, 10, false, false, &id, "context id") < 0)
        return -1;
    ctx->kind = H248_CTX_ID;
    ctx->id = (uint32_t)id;
    return 0;
}

static struct h248_context_props *context_props(struct h248_parser *ps, struct h248_action *a)
{
    if (a->props == NULL)
        a->props = h248_parser_alloc(ps, sizeof(*a->props));
    return a->props;
}

static int parse_topology(struct h248_parser *ps, struct h248_context_props *props)
{
    /* topologyTriple = terminationA COMMA terminationB COMMA topologyDirection
     *                  [COMMA eventStream] */
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_enter(lx, '{', "after Topology") < 0)
        return -1;
    struct h248_topology_triple **tail = &props->topology;
    while (*tail != NULL)
        tail = &(*tail)->next;
    unsigned count = 0;
    for (;;) {
        if (++count > lx->limits->max_items)
            return h248_lex_fail(lx, "too many topology triples");
        struct h248_topology_triple *t = h248_parser_alloc(ps, sizeof(*t));
        if (t == NULL || h248_parse_termination_id(ps, &t->from) < 0 ||
            h248_lex_expect(lx, ',', "in topology triple") < 0 ||
            h248_parse_termination_id(ps, &t->to) < 0 ||
            h248_lex_expect(lx, ',', "in topology triple") < 0)
            return -1;
        struct h248_str word;
        enum h248_token tok;
        if (h248_lex_token(lx, &word, &tok, "topology direction") < 0)
            return -1;
        switch (tok) {
        case H248_TOK_BOTHWAY:
            t->direction = H248_TOPO_BOTHWAY;
            break;
        case H248_TOK_ISOLATE:
            t->direction = H248_TOPO_ISOLATE;
            break;
        case H248_TOK_ONEWAY:
            t->direction = H248_TOPO_ONEWAY;
            break;
        case H248_TOK_ONEWAY_EXTERNAL:
            t->direction = H248_TOPO_ONEWAY_EXTERNAL;
            break;
        case H248_TOK_ONEWAY_BOTH:
            t->direction = H248_TOPO_ONEWAY_BOTH;
            break;
        default:
            lx->pos -= word.len;
            return h248_lex_fail(lx, "invalid topology direction");
        }
        *tail = t;
        tail = &t->next;
        if (!h248_lex_accept(lx, ','))
            break;
        char *save = lx->pos;
        if (h248_lex_token(lx, &word, &tok, "termination id or Stream") < 0)
            return -1;
        if (tok == H248_TOK_STREAM && h248_lex_peek(lx) == '=') {
            lx->pos++;
            uint64_t sid;
            if (h248_lex_uint(lx, UINT16_MAX, 5, false, false, &sid, "stream id") < 0)
                return -1;
            t->has_stream = true;
            t->stream = (uint16_t)sid;
            if (!h248_lex_accept(lx, ','))
                break;
        } else {
            lx->pos = save;
        }
    }
    return h248_lex_leave(lx, '}', "to close Topology");
}

static int parse_context_audit(struct h248_parser *ps, struct h248_context_props *props)
{
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_enter(lx, '{', "after ContextAudit") < 0)
        return -1;
    props->has_audit = true;
    struct h248_audit_item **tail = &props->audit;
    unsigned count = 0;
    do {
        if (++count > lx->limits->max_items)
            return h248_lex_fail(lx, "too many ContextAudit items");
        struct h248_audit_item *item = h248_parser_alloc(ps, sizeof(*item));
        struct h248_str word;
        enum h248_token tok;
        if (item == NULL || h248_lex_token(lx, &word, &tok, "ContextAudit item") < 0)
            return -1;
        if (tok == H248_TOK_TOPOLOGY || tok == H248_TOK_EMERGENCY || tok == H248_TOK_PRIORITY ||
            tok == H248_TOK_IEPS) {
            item->kind = H248_AUDIT_TOKEN;
            item->token = tok;
        } else if (h248_is_pkgd_name(word)) {
            item->kind = H248_AUDIT_NAME;
            item->text = word;
        } else {
            lx->pos -= word.len;
            return h248_lex_fail(lx, "unsupported ContextAudit item");
        }
        *tail = item;
        tail = &item->next;
    } while (h248_lex_accept(lx, ','));
    return h248_lex_leave(lx, '}', "to close ContextAudit");
}

/* Parses a context property whose token was read; 1 if tok is not a context property. */
static int parse_context_property(struct h248_parser *ps, struct h248_action *a,
                                  enum h248_token tok)
{
    struct h248_lex *lx = &ps->lx;
    struct h248_context_props *props;
    uint64_t v;
    switch (tok) {
    case H248_TOK_PRIORITY:
        if ((props = context_props(ps, a)) == NULL ||
            h248_lex_expect(lx, '=', "after Priority") < 0 ||
            h248_lex_uint(lx, UINT16_MAX, 5, false, false, &v, "priority") < 0)
            return -1;
        props->has_priority = true;
        props->priority = (uint16_t)v;
        return 0;
    case H248_TOK_EMERGENCY:
        if ((props = context_props(ps, a)) == NULL)
            return -1;
        props->emergency = true;
        return 0;
    case H248_TOK_EMERGENCY_OFF:
        if ((props = context_props(ps, a)) == NULL)
            return -1;
        props->emergency_off = true;
        return 0;
    case H248_TOK_IEPS: {
        struct h248_str word;
        enum h248_token onoff;
        if ((props = context_props(ps, a)) == NULL ||
            h248_lex_expect(lx, '=', "after IEPSCall") < 0 ||
            h248_lex_token(lx, &word, &onoff, "ON or OFF") < 0)
            return -1;
        if (onoff != H248_TOK_ON && onoff != H248_TOK_OFF) {
            lx->pos -= word.len;
            return h248_lex_fail(lx, "IEPSCall must be ON or OFF");
        }
        props->has_ieps = true;
        props->ieps = onoff == H248_TOK_ON;
        return 0;
    }
    case H248_TOK_TOPOLOGY:
        if ((props = context_props(ps, a)) == NULL)
            return -1;
        return parse_topology(ps, props);
    case H248_TOK_CONTEXT_ATTR:
        if ((props = context_props(ps, a)) == NULL)
            return -1;
        return h248_parse_property_list(ps, &props->attributes, true, "ContextAttr");
    case H248_TOK_CONTEXT_AUDIT:
        if ((props = context_props(ps, a)) == NULL)
            return -1;
        if (props->has_audit)
            return h248_lex_fail(lx, "duplicate ContextAudit");
        return parse_context_audit(ps, props);
    default:
        return 1;
    }
}

static int command_kind(enum h248_token tok, enum h248_command_kind *kind)
{
    switch (tok) {
    case H248_TOK_ADD:
        *kind = H248_CMD_ADD;
        return 0;
    case H248_TOK_MOVE:
        *kind = H248_CMD_MOVE;
        return 0;
    case H248_TOK_MODIFY:
        *kind = H248_CMD_MODIFY;
        return 0;
    case H248_TOK_SUBTRACT:
        *kind = H248_CMD_SUBTRACT;
        return 0;
    case H248_TOK_AUDIT_VALUE:
        *kind = H248_CMD_AUDIT_VALUE;
        return 0;
    case H248_TOK_AUDIT_CAP:
        *kind = H248_CMD_AUDIT_CAPABILITIES;
        return 0;
    case H248_TOK_NOTIFY:
        *kind = H248_CMD_NOTIFY;
        return 0;
    case H248_TOK_SERVICE_CHANGE:
        *kind = H248_CMD_SERVICE_CHANGE;
        return 0;
    default:
        return -1;
    }
}

static int parse_termination_list(struct h248_parser *ps, struct h248_command *cmd)
{
    struct h248_lex *lx = &ps->lx;
    struct h248_termination_id **tail = &cmd->terminations;
    if (h248_lex_peek(lx) != '[') {
        struct h248_termination_id *t = h248_parser_alloc(ps, sizeof(*t));
        if (t == NULL || h248_parse_termination_id(ps, &t->text) < 0)
            return -1;
        *tail = t;
        return 0;
    }
    if (h248_lex_enter(lx, '[', "termination list") < 0)
        return -1;
    cmd->term_list = true;
    unsigned count = 0;
    do {
        if (++count > lx->limits->max_terminations)
            return h248_lex_fail(lx, "more than %u termination ids", lx->limits->max_terminations);
        struct h248_termination_id *t = h248_parser_alloc(ps, sizeof(*t));
        if (t == NULL || h248_parse_termination_id(ps, &t->text) < 0)
            return -1;
        *tail = t;
        tail = &t->next;
    } while (h248_lex_accept(lx, ','));
    return h248_lex_leave(lx, ']', "to close termination list");
}

/* Parses one command whose first word (with O-/W- prefixes) was read. */
static int parse_command(struct h248_parser *ps, struct h248_command *cmd, struct h248_str word,
                         bool reply)
{
    struct h248_lex *lx = &ps->lx;
    lx->code = H248_ERR_COMMAND_SYNTAX;
    for (;;) {
        if (word.len > 2 && word.ptr[1] == '-' && (word.ptr[0] == 'O' || word.ptr[0] == 'o') &&
            !reply && !cmd->optional && !cmd->wildcard_reply) {
            cmd->optional = true;
        } else if (word.len > 2 && word.ptr[1] == '-' &&
                   (word.ptr[0] == 'W' || word.ptr[0] == 'w') && !cmd->wildcard_reply) {
            cmd->wildcard_reply = true;
        } else {
            break;
        }
        word.ptr += 2;
        word.len -= 2;
    }
    enum h248_token tok = h248_token_lookup(word.ptr, word.len);
    if (command_kind(tok, &cmd->kind) < 0) {
        lx->pos -= word.len;
        return h248_lex_fail(lx, "unknown command");
    }
    if (h248_lex_expect(lx, '=', "after command") < 0 || parse_termination_list(ps, cmd) < 0)
        return -1;
    if (h248_lex_peek(lx) == '{') {
        if (h248_parse_command_body(ps, cmd, reply) < 0)
            return -1;
    } else if (!reply &&
               (cmd->kind == H248_CMD_AUDIT_VALUE || cmd->kind == H248_CMD_AUDIT_CAPABILITIES ||
                cmd->kind == H248_CMD_NOTIFY || cmd->kind == H248_CMD_SERVICE_CHANGE)) {
        return h248_lex_fail(lx, "expected '{' with the command's descriptor");
    }
    return 0;
}

static int parse_action(struct h248_parser *ps, struct h248_action *a, bool reply)
{
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_expect(lx, '=', "after Context") < 0 || parse_context_id(ps, &a->context) < 0)
        return -1;
    /* v3 actionReply = CtxToken EQUAL ContextID [LBRKT (...) RBRKT]: braces, when present,
     * hold something, as they always do in a request. */
    if (reply && h248_lex_peek(lx) != '{')
        return lx->failed ? -1 : 0;
    if (h248_lex_enter(lx, '{', "after context id") < 0)
        return -1;
    if (h248_lex_peek(lx) == '}')
        return h248_lex_fail(lx, "empty action");
    struct h248_command **tail = &a->commands;
    unsigned commands = 0, items = 0;
    do {
        lx->code = H248_ERR_ACTION_SYNTAX;
        if (++items > lx->limits->max_items + lx->limits->max_commands)
            return h248_lex_fail(lx, "too many items in action");
        if (a->error != NULL)
            return h248_lex_fail(lx, "nothing may follow the action's error descriptor");
        struct h248_str word;
        enum h248_token tok;
        if (h248_lex_token(lx, &word, &tok, "command or context property") < 0)
            return -1;
        if (tok == H248_TOK_ERROR && reply) {
            a->error = h248_parser_alloc(ps, sizeof(*a->error));
            if (a->error == NULL || h248_parse_error_descriptor(ps, a->error) < 0)
                return -1;
            continue;
        }
        int r = parse_context_property(ps, a, tok);
        if (r < 0)
            return -1;
        if (r == 0) {
            if (a->commands != NULL)
                return h248_lex_fail(lx, "context properties must precede commands");
            continue;
        }
        if (++commands > lx->limits->max_commands)
            return h248_lex_fail(lx, "more than %u commands in action", lx->limits->max_commands);
        struct h248_command *cmd = h248_parser_alloc(ps, sizeof(*cmd));
        if (cmd == NULL || parse_command(ps, cmd, word, reply) < 0)
            return -1;
        *tail = cmd;
        tail = &cmd->next;
    } while (h248_lex_accept(lx, ','));
    lx->code = H248_ERR_ACTION_SYNTAX;
    return h248_lex_leave(lx, '}', "to close the action");
}

static int parse_actions(struct h248_parser *ps, struct h248_transaction *t, bool reply)
{
    struct h248_lex *lx = &ps->lx;
    struct h248_action **tail = &t->actions;
    unsigned count = 0;
    do {
        lx->code = H248_ERR_TRANSACTION_SYNTAX;
        if (++count > lx->limits->max_actions)
            return h248_lex_fail(lx, "more than %u actions in transaction",
                                 lx->limits->max_actions);
        struct h248_str word;
        enum h248_token tok;
        if (h248_lex_token(lx, &word, &tok, "Context") < 0)
            return -1;
        if (tok != H248_TOK_CONTEXT) {
            lx->pos -= word.len;
            return h248_lex_fail(lx, "expected Context");
        }
        struct h248_action *a = h248_parser_alloc(ps, sizeof(*a));
        if (a == NULL)
            return -1;
        lx->code = H248_ERR_ACTION_SYNTAX;
        if (parse_action(ps, a, reply) < 0)
            return -1;
        *tail = a;
        tail = &a->next;
    } while (h248_lex_accept(lx, ','));
    lx->code = H248_ERR_TRANSACTION_SYNTAX;
    return 0;
}

static int parse_transaction_id(struct h248_parser *ps, struct h248_transaction *t,
                                bool allow_slash)
{
    uint64_t id;
    if (h248_lex_expect(&ps->lx, '=', "after the transaction token") < 0 ||
        h248_lex_uint(&ps->lx, UINT32_MAX, 10, allow_slash, false, &id, "transaction id") < 0)
        return -1;
    t->id = (uint32_t)id;
    ps->lx.has_tid = true;
    ps->lx.tid = t->id;
    return 0;
}

/* [SLASH SegmentNumber [SLASH SegmentationCompleteToken]] directly after a transaction id. */
static int parse_segment(struct h248_parser *ps, struct h248_transaction *t)
{
    struct h248_lex *lx = &ps->lx;
    if (lx->pos >= lx->end || *lx->pos != '/')
        return 0;
    lx->pos++;
    uint64_t seg;
    if (h248_lex_uint(lx, UINT16_MAX, 5, true, false, &seg, "segment number") < 0)
        return -1;
    t->has_segment = true;
    t->segment_number = (uint16_t)seg;
    if (lx->pos < lx->end && *lx->pos == '/') {
        lx->pos++;
        struct h248_str word;
        if (h248_lex_word(lx, &word, "END") < 0)
            return -1;
        if (h248_token_lookup(word.ptr, word.len) != H248_TOK_SEGMENTATION_COMPLETE) {
            lx->pos -= word.len;
            return h248_lex_fail(lx, "expected END after segment number");
        }
        t->segmentation_complete = true;
    }
    return 0;
}

static int parse_reply(struct h248_parser *ps, struct h248_transaction *t)
{
    struct h248_lex *lx = &ps->lx;
    if (parse_transaction_id(ps, t, true) < 0 || parse_segment(ps, t) < 0 ||
        h248_lex_enter(lx, '{', "after the transaction id") < 0)
        return -1;
    char *save = lx->pos;
    struct h248_str word;
    enum h248_token tok;
    if (h248_lex_token(lx, &word, &tok, "reply content") < 0)
        return -1;
    if (tok == H248_TOK_IMM_ACK_REQUIRED) {
        t->imm_ack_required = true;
        if (h248_lex_expect(lx, ',', "after ImmAckRequired") < 0)
            return -1;
        save = lx->pos;
        if (h248_lex_token(lx, &word, &tok, "reply content") < 0)
            return -1;
    }
    if (tok == H248_TOK_ERROR) {
        t->error = h248_parser_alloc(ps, sizeof(*t->error));
        if (t->error == NULL || h248_parse_error_descriptor(ps, t->error) < 0)
            return -1;
    } else {
        lx->pos = save;
        if (parse_actions(ps, t, true) < 0)
            return -1;
    }
    return h248_lex_leave(lx, '}', "to close the transaction");
}

static int parse_response_ack(struct h248_parser *ps, struct h248_transaction *t)
{
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_enter(lx, '{', "after TransactionResponseAck") < 0)
        return -1;
    struct h248_ack_range **tail = &t->acks;
    unsigned count = 0;
    do {
        if (++count > lx->limits->max_items)
            return h248_lex_fail(lx, "too many acknowledged transactions");
        struct h248_ack_range *r = h248_parser_alloc(ps, sizeof(*r));
        uint64_t first, last;
        if (r == NULL ||
            h248_lex_uint(lx, UINT32_MAX, 10, false, true, &first, "transaction id") < 0)
            return -1;
        last = first;
        if (lx->pos < lx->end && *lx->pos == '-') {
            lx->pos++;
            if (h248_lex_uint(lx, UINT32_MAX, 10, false, false, &last, "transaction id") < 0)
                return -1;
        }
        r->first = (uint32_t)first;
        r->last = (uint32_t)last;
        *tail = r;
        tail = &r->next;
    } while (h248_lex_accept(lx, ','));
    return h248_lex_leave(lx, '}', "to close TransactionResponseAck");
}

static int parse_transaction(struct h248_parser *ps, struct h248_transaction *t,
                             enum h248_token tok)
{
    struct h248_lex *lx = &ps->lx;
    lx->code = H248_ERR_TRANSACTION_SYNTAX;
    switch (tok) {
    case H248_TOK_TRANSACTION:
        t->kind = H248_TRANS_REQUEST;
        if (parse_transaction_id(ps, t, false) < 0 ||
            h248_lex_enter(lx, '{', "after the transaction id") < 0 ||
            parse_actions(ps, t, false) < 0)
            return -1;
        return h248_lex_leave(lx, '}', "to close the transaction");
    case H248_TOK_REPLY:
        t->kind = H248_TRANS_REPLY;
        return parse_reply(ps, t);
    case H248_TOK_PENDING:
        t->kind = H248_TRANS_PENDING;
        if (parse_transaction_id(ps, t, false) < 0 ||
            h248_lex_enter(lx, '{', "after the transaction id") < 0)
            return -1;
        return h248_lex_leave(lx, '}', "to close Pending");
    case H248_TOK_RESPONSE_ACK:
        t->kind = H248_TRANS_RESPONSE_ACK;
        return parse_response_ack(ps, t);
    case H248_TOK_SEGMENT:
        t->kind = H248_TRANS_SEGMENT_REPLY;
        if (parse_transaction_id(ps, t, true) < 0)
            return -1;
        if (lx->pos >= lx->end || *lx->pos != '/')
            return h248_lex_fail(lx, "expected '/' and a segment number");
        return parse_segment(ps, t);
    default:
        return -1;
    }
}

static int parse_hex32(struct h248_lex *lx, uint32_t *out, const char *what)
{
    /* "0x" 8(HEXDIG) */
    struct h248_str w;
    if (h248_lex_word(lx, &w, what) < 0)
        return -1;
    if (w.len != 10 || w.ptr[0] != '0' || (w.ptr[1] | 0x20) != 'x') {
        lx->pos -= w.len;
        return h248_lex_fail(lx, "%s must be 0x and 8 hex digits", what);
    }
    uint32_t v = 0;
    for (size_t i = 2; i < 10; i++) {
        char c = w.ptr[i];
        unsigned d;
        if (is_digit(c))
            d = (unsigned)(c - '0');
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (unsigned)((c | 0x20) - 'a' + 10);
        else
            return h248_lex_fail(lx, "%s is not hexadecimal", what);
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static int parse_auth(struct h248_parser *ps)
{
    /* AuthToken EQUAL SecurityParmIndex COLON SequenceNum COLON AuthData */
    struct h248_lex *lx = &ps->lx;
    struct h248_message *m = ps->msg;
    struct h248_str data;
    if (h248_lex_expect(lx, '=', "after Authentication") < 0 ||
        parse_hex32(lx, &m->auth_spi, "security parameter index") < 0 ||
        h248_lex_expect(lx, ':', "after security parameter index") < 0 ||
        parse_hex32(lx, &m->auth_seq, "sequence number") < 0 ||
        h248_lex_expect(lx, ':', "after sequence number") < 0 ||
        h248_lex_word(lx, &data, "authentication data") < 0)
        return -1;
    if (data.len < 26 || data.len > 66 || data.ptr[0] != '0' || (data.ptr[1] | 0x20) != 'x')
        return h248_lex_fail(lx, "authentication data must be 0x and 24 to 64 hex digits");
    for (size_t i = 2; i < data.len; i++) {
        char c = data.ptr[i];
        if (!is_digit(c) && !((c | 0x20) >= 'a' && (c | 0x20) <= 'f'))
            return h248_lex_fail(lx, "authentication data is not hexadecimal");
    }
    m->has_auth = true;
    m->auth_data.ptr = data.ptr + 2;
    m->auth_data.len = data.len - 2;
    return 0;
}

/* SEP = (WSP / EOL / COMMENT) LWSP */
static int expect_sep(struct h248_lex *lx, const char *what)
{
    if (lx->pos >= lx->end || (*lx->pos != ' ' && *lx->pos != '\t' && *lx->pos != '\r' &&
                               *lx->pos != '\n' && *lx->pos != ';'))
        return h248_lex_fail(lx, "expected white space %s", what);
    return h248_lex_skip(lx);
}

static int parse_header(struct h248_parser *ps)
{
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_skip(lx) < 0)
        return -1;
    /* The MEGACO token is followed by '/', which is a SafeChar: match it by hand. */
    if (lx->end - lx->pos >= 14 && h248_str_ieq((struct h248_str){lx->pos, 14}, "Authentication")) {
        lx->pos += 14;
        if (parse_auth(ps) < 0 || expect_sep(lx, "after the authentication header") < 0)
            return -1;
    } else if (lx->end - lx->pos >= 2 && h248_str_ieq((struct h248_str){lx->pos, 2}, "AU") &&
               (lx->end - lx->pos == 2 || !h248_is_safe_char((unsigned char)lx->pos[2]))) {
        lx->pos += 2;
        if (parse_auth(ps) < 0 || expect_sep(lx, "after the authentication header") < 0)
            return -1;
    }
    if (lx->end - lx->pos >= 6 && h248_str_ieq((struct h248_str){lx->pos, 6}, "MEGACO"))
        lx->pos += 6;
    else if (lx->pos < lx->end && *lx->pos == '!')
        lx->pos += 1;
    else
        return h248_lex_fail(lx, "expected MEGACO or '!'");
    if (lx->pos >= lx->end || *lx->pos != '/')
        return h248_lex_fail(lx, "expected '/' and the version");
    lx->pos++;
    uint64_t version;
    if (lx->pos >= lx->end || !is_digit(*lx->pos))
        return h248_lex_fail(lx, "expected the protocol version");
    if (h248_lex_uint(lx, 99, 2, false, false, &version, "protocol version") < 0)
        return -1;
    ps->msg->version = (unsigned)version;
    if (expect_sep(lx, "after the version") < 0 || h248_parse_mid(ps, &ps->msg->mid, "mId") < 0)
        return -1;
    return expect_sep(lx, "after the mId");
}

static int parse_body(struct h248_parser *ps)
{
    struct h248_lex *lx = &ps->lx;
    struct h248_transaction **tail = &ps->msg->transactions;
    unsigned count = 0;
    for (;;) {
        lx->code = H248_ERR_MESSAGE_SYNTAX;
        lx->has_tid = false;
        if (h248_lex_peek(lx) < 0) {
            if (lx->failed)
                return -1;
            break;
        }
        struct h248_str word;
        enum h248_token tok;
        if (h248_lex_token(lx, &word, &tok, "transaction") < 0)
            return -1;
        if (tok == H248_TOK_ERROR && count == 0 && ps->msg->error == NULL) {
            ps->msg->error = h248_parser_alloc(ps, sizeof(*ps->msg->error));
            if (ps->msg->error == NULL || h248_parse_error_descriptor(ps, ps->msg->error) < 0)
                return -1;
            if (h248_lex_peek(lx) >= 0)
                return h248_lex_fail(lx, "nothing may follow a message error descriptor");
            return lx->failed ? -1 : 0;
        }
        if (tok != H248_TOK_TRANSACTION && tok != H248_TOK_REPLY && tok != H248_TOK_PENDING &&
            tok != H248_TOK_RESPONSE_ACK && tok != H248_TOK_SEGMENT) {
            lx->pos -= word.len;
            return h248_lex_fail(lx, "expected a transaction");
        }
        if (++count > lx->limits->max_transactions) {
            lx->pos -= word.len;
            lx->code = H248_ERR_TOO_MANY_TRANSACTIONS;
            return h248_lex_fail(lx, "more than %u transactions in one message",
                                 lx->limits->max_transactions);
        }
        struct h248_transaction *t = h248_parser_alloc(ps, sizeof(*t));
        if (t == NULL || parse_transaction(ps, t, tok) < 0)
            return -1;
        *tail = t;
        tail = &t->next;
    }
    if (count == 0)
        return h248_lex_fail(lx, "expected a transaction or an error descriptor");
    return 0;
}

int h248_parse_message(const char *data, size_t len, const struct h248_limits *limits,
                       struct h248_message **out, struct h248_parse_error *err)
{
    if (limits == NULL)
        limits = &h248_default_limits;
    *out = NULL;
    if (err != NULL)
        memset(err, 0, sizeof(*err));
    if (len > limits->max_message_len) {
        if (err != NULL) {
            err->code = H248_ERR_MESSAGE_SYNTAX;
            snprintf(err->text, sizeof(err->text), "message of %zu bytes exceeds %zu", len,
                     limits->max_message_len);
        }
        return -EMSGSIZE;
    }
    struct h248_arena *arena = h248_arena_new(2 * len + 2048);
    char *copy = arena != NULL ? h248_arena_alloc(arena, len + 1) : NULL;
    struct h248_message *msg = copy != NULL ? h248_arena_alloc(arena, sizeof(*msg)) : NULL;
    if (msg == NULL) {
        h248_arena_free(arena);
        if (err != NULL) {
            err->code = H248_ERR_RESOURCES;
            snprintf(err->text, sizeof(err->text), "out of memory");
        }
        return -ENOMEM;
    }
    if (len > 0)
        memcpy(copy, data, len);
    msg->arena = arena;
    struct h248_parser ps = {
        .lx = {.base = copy,
               .pos = copy,
               .end = copy + len,
               .limits = limits,
               .err = err,
               .code = H248_ERR_MESSAGE_SYNTAX},
        .msg = msg,
    };
    if (parse_header(&ps) < 0 || parse_body(&ps) < 0) {
        h248_arena_free(arena);
        return ps.lx.code == H248_ERR_RESOURCES ? -ENOMEM : -EBADMSG;
    }
    *out = msg;
    return 0;
}
