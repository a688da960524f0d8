/* H.248.1 Annex B text parser: descriptors and their parameters. */
#include "parse_internal.h"
#include "token.h"

#include <string.h>

#define KIND_BIT(k) (1u << (k))

/* alternativeValue / INEQUAL VALUE after a name; *present = false when neither follows. */
static int parse_parm_value(struct h248_parser *ps, struct h248_parm_value *pv, bool *present)
{
    struct h248_lex *lx = &ps->lx;
    int c = h248_lex_peek(lx);
    *present = true;
    pv->shape = H248_SHAPE_SINGLE;
    pv->relation = H248_REL_EQUAL;
    if (c == '>' || c == '<' || c == '#') {
        lx->pos++;
        pv->relation = c == '>' ? H248_REL_GREATER : c == '<' ? H248_REL_LESS : H248_REL_NOT_EQUAL;
        pv->values = h248_parser_alloc(ps, sizeof(*pv->values));
        if (pv->values == NULL)
            return -1;
        return h248_lex_value(lx, pv->values, "value");
    }
    if (c != '=') {
        *present = false;
        return 0;
    }
    lx->pos++;
    c = h248_lex_peek(lx);
    if (c != '[' && c != '{') {
        pv->values = h248_parser_alloc(ps, sizeof(*pv->values));
        if (pv->values == NULL)
            return -1;
        return h248_lex_value(lx, pv->values, "value");
    }
    char close = c == '[' ? ']' : '}';
    if (h248_lex_enter(lx, (char)c, "value list") < 0)
        return -1;
    pv->shape = c == '[' ? H248_SHAPE_SUBLIST : H248_SHAPE_ALTERNATIVES;
    struct h248_value **tail = &pv->values;
    unsigned count = 0;
    for (;;) {
        if (++count > lx->limits->max_items)
            return h248_lex_fail(lx, "too many values in list");
        struct h248_value *v = h248_parser_alloc(ps, sizeof(*v));
        if (v == NULL || h248_lex_value(lx, v, "value") < 0)
            return -1;
        *tail = v;
        tail = &v->next;
        if (count == 1 && c == '[' && h248_lex_accept(lx, ':')) {
            pv->shape = H248_SHAPE_RANGE;
            v = h248_parser_alloc(ps, sizeof(*v));
            if (v == NULL || h248_lex_value(lx, v, "range end") < 0)
                return -1;
            *tail = v;
            break;
        }
        if (!h248_lex_accept(lx, ','))
            break;
    }
    return h248_lex_leave(lx, close, "to close the value list");
}

/* The name was read; checks it and parses the value that follows. */
static int parse_property_rest(struct h248_parser *ps, struct h248_property *p, bool pkgd,
                               bool value_required)
{
    struct h248_lex *lx = &ps->lx;
    if (pkgd ? !h248_is_pkgd_name(p->name) : !h248_is_name(p->name)) {
        lx->pos -= p->name.len;
        return h248_lex_fail(lx, pkgd ? "invalid package item name" : "invalid parameter name");
    }
    if (parse_parm_value(ps, &p->value, &p->has_value) < 0)
        return -1;
    if (value_required && !p->has_value)
        return h248_lex_fail(lx, "expected '=' and a value after %.*s", (int)p->name.len,
                             p->name.ptr);
    return 0;
}

static struct h248_property *new_property(struct h248_parser *ps, struct h248_str name)
{
    struct h248_property *p = h248_parser_alloc(ps, sizeof(*p));
    if (p != NULL)
        p->name = name;
    return p;
}

static void append_property(struct h248_property **list, struct h248_property *p)
{
    while (*list != NULL)
        list = &(*list)->next;
    *list = p;
}

int h248_parse_property_list(struct h248_parser *ps, struct h248_property **list,
                             bool value_required, const char *what)
{
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_enter(lx, '{', what) < 0)
        return -1;
    unsigned count = 0;
    do {
        if (++count > lx->limits->max_items)
            return h248_lex_fail(lx, "too many items in %s", what);
        struct h248_str name;
        struct h248_property *p;
        if (h248_lex_word(lx, &name, "property name") < 0 || (p = new_property(ps, name)) == NULL ||
            parse_property_rest(ps, p, true, value_required) < 0)
            return -1;
        append_property(list, p);
    } while (h248_lex_accept(lx, ','));
    return h248_lex_leave(lx, '}', what);
}

static int parse_on_off(struct h248_parser *ps, enum h248_tristate *out, const char *what)
{
    struct h248_lex *lx = &ps->lx;
    struct h248_str word;
    enum h248_token tok;
    if (*out != H248_UNSET)
        return h248_lex_fail(lx, "duplicate %s", what);
    if (h248_lex_expect(lx, '=', what) < 0 || h248_lex_token(lx, &word, &tok, "ON or OFF") < 0)
        return -1;
    if (tok != H248_TOK_ON && tok != H248_TOK_OFF) {
        lx->pos -= word.len;
        return h248_lex_fail(lx, "%s must be ON or OFF", what);
    }
    *out = tok == H248_TOK_ON ? H248_ON : H248_OFF;
    return 0;
}

static int parse_local_control(struct h248_parser *ps, struct h248_local_control *lc)
{
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_enter(lx, '{', "after LocalControl") < 0)
        return -1;
    unsigned count = 0;
    do {
        if (++count > lx->limits->max_items)
            return h248_lex_fail(lx, "too many LocalControl items");
        struct h248_str word;
        enum h248_token tok;
        if (h248_lex_token(lx, &word, &tok, "LocalControl item") < 0)
            return -1;
        if (tok == H248_TOK_MODE) {
            if (lc->mode != H248_MODE_UNSET)
                return h248_lex_fail(lx, "duplicate Mode");
            if (h248_lex_expect(lx, '=', "after Mode") < 0 ||
                h248_lex_token(lx, &word, &tok, "stream mode") < 0)
                return -1;
            switch (tok) {
            case H248_TOK_SEND_ONLY:
                lc->mode = H248_MODE_SEND_ONLY;
                break;
            case H248_TOK_RECV_ONLY:
                lc->mode = H248_MODE_RECV_ONLY;
                break;
            case H248_TOK_SEND_RECV:
                lc->mode = H248_MODE_SEND_RECV;
                break;
            case H248_TOK_INACTIVE:
                lc->mode = H248_MODE_INACTIVE;
                break;
            case H248_TOK_LOOPBACK:
                lc->mode = H248_MODE_LOOPBACK;
                break;
            default:
                lx->pos -= word.len;
                return h248_lex_fail(lx, "invalid stream mode");
            }
        } else if (tok == H248_TOK_RESERVED_VALUE) {
            if (parse_on_off(ps, &lc->reserved_value, "ReservedValue") < 0)
                return -1;
        } else if (tok == H248_TOK_RESERVED_GROUP) {
            if (parse_on_off(ps, &lc->reserved_group, "ReservedGroup") < 0)
                return -1;
        } else {
            struct h248_property *p = new_property(ps, word);
            if (p == NULL || parse_property_rest(ps, p, true, true) < 0)
                return -1;
            append_property(&lc->properties, p);
        }
    } while (h248_lex_accept(lx, ','));
    return h248_lex_leave(lx, '}', "to close LocalControl");
}

static int parse_statistics(struct h248_parser *ps, struct h248_statistics *st)
{
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_enter(lx, '{', "after Statistics") < 0)
        return -1;
    unsigned count = 0;
    do {
        if (++count > lx->limits->max_items)
            return h248_lex_fail(lx, "too many statistics");
        struct h248_str name;
        struct h248_property *p;
        if (h248_lex_word(lx, &name, "statistic name") < 0 ||
            (p = new_property(ps, name)) == NULL || parse_property_rest(ps, p, true, false) < 0)
            return -1;
        append_property(&st->items, p);
    } while (h248_lex_accept(lx, ','));
    return h248_lex_leave(lx, '}', "to close Statistics");
}

static int parse_octets(struct h248_parser *ps, bool *has, struct h248_str *text, const char *what)
{
    struct h248_lex *lx = &ps->lx;
    if (*has)
        return h248_lex_fail(lx, "duplicate %s", what);
    if (h248_lex_enter(lx, '{', what) < 0 || h248_lex_octets(lx, text, what) < 0 ||
        h248_lex_leave(lx, '}', what) < 0)
        return -1;
    *has = true;
    return 0;
}

/* A streamParm whose token was read; 1 if tok does not start one. */
static int parse_stream_parm(struct h248_parser *ps, struct h248_stream_parms *sp,
                             enum h248_token tok)
{
    struct h248_lex *lx = &ps->lx;
    switch (tok) {
    case H248_TOK_LOCAL_CONTROL:
        if (sp->local_control != NULL)
            return h248_lex_fail(lx, "duplicate LocalControl");
        sp->local_control = h248_parser_alloc(ps, sizeof(*sp->local_control));
        if (sp->local_control == NULL)
            return -1;
        return parse_local_control(ps, sp->local_control);
    case H248_TOK_LOCAL:
        return parse_octets(ps, &sp->has_local, &sp->local, "Local descriptor");
    case H248_TOK_REMOTE:
        return parse_octets(ps, &sp->has_remote, &sp->remote, "Remote descriptor");
    case H248_TOK_STATISTICS:
        if (sp->statistics != NULL)
            return h248_lex_fail(lx, "duplicate Statistics");
        sp->statistics = h248_parser_alloc(ps, sizeof(*sp->statistics));
        if (sp->statistics == NULL)
            return -1;
        return parse_statistics(ps, sp->statistics);
    default:
        return 1;
    }
}

static int parse_termination_state(struct h248_parser *ps, struct h248_termination_state *ts)
{
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_enter(lx, '{', "after TerminationState") < 0)
        return -1;
    unsigned count = 0;
    do {
        if (++count > lx->limits->max_items)
            return h248_lex_fail(lx, "too many TerminationState items");
        struct h248_str word, value;
        enum h248_token tok, vtok;
        if (h248_lex_token(lx, &word, &tok, "TerminationState item") < 0)
            return -1;
        if (tok == H248_TOK_SERVICE_STATES) {
            if (ts->service_state != H248_SERVICE_UNSET)
                return h248_lex_fail(lx, "duplicate ServiceStates");
            if (h248_lex_expect(lx, '=', "after ServiceStates") < 0 ||
                h248_lex_token(lx, &value, &vtok, "service state") < 0)
                return -1;
            if (vtok == H248_TOK_TEST)
                ts->service_state = H248_SERVICE_TEST;
            else if (vtok == H248_TOK_OUT_OF_SVC)
                ts->service_state = H248_SERVICE_OUT_OF_SVC;
            else if (vtok == H248_TOK_IN_SVC)
                ts->service_state = H248_SERVICE_IN_SVC;
            else {
                lx->pos -= value.len;
                return h248_lex_fail(lx, "invalid service state");
            }
        } else if (tok == H248_TOK_BUFFER) {
            if (ts->buffer_control != H248_BUFFER_UNSET)
                return h248_lex_fail(lx, "duplicate Buffer");
            if (h248_lex_expect(lx, '=', "after Buffer") < 0 ||
                h248_lex_token(lx, &value, &vtok, "buffer control") < 0)
                return -1;
            if (vtok == H248_TOK_OFF)
                ts->buffer_control = H248_BUFFER_OFF;
            else if (vtok == H248_TOK_LOCKSTEP)
                ts->buffer_control = H248_BUFFER_LOCKSTEP;
            else {
                lx->pos -= value.len;
                return h248_lex_fail(lx, "invalid buffer control");
            }
        } else {
            struct h248_property *p = new_property(ps, word);
            if (p == NULL || parse_property_rest(ps, p, true, true) < 0)
                return -1;
            append_property(&ts->properties, p);
        }
    } while (h248_lex_accept(lx, ','));
    return h248_lex_leave(lx, '}', "to close TerminationState");
}

static int parse_stream(struct h248_parser *ps, struct h248_stream *s)
{
    struct h248_lex *lx = &ps->lx;
    uint64_t id;
    if (h248_lex_expect(lx, '=', "after Stream") < 0 ||
        h248_lex_uint(lx, UINT16_MAX, 5, false, false, &id, "stream id") < 0 ||
        h248_lex_enter(lx, '{', "after stream id") < 0)
        return -1;
    s->id = (uint16_t)id;
    unsigned count = 0;
    do {
        if (++count > lx->limits->max_items)
            return h248_lex_fail(lx, "too many stream parameters");
        struct h248_str word;
        enum h248_token tok;
        if (h248_lex_token(lx, &word, &tok, "stream parameter") < 0)
            return -1;
        int r = parse_stream_parm(ps, &s->parms, tok);
        if (r < 0)
            return -1;
        if (r > 0) {
            lx->pos -= word.len;
            return h248_lex_fail(lx, "unexpected item in Stream");
        }
    } while (h248_lex_accept(lx, ','));
    return h248_lex_leave(lx, '}', "to close Stream");
}

static int parse_media(struct h248_parser *ps, struct h248_media *m)
{
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_enter(lx, '{', "after Media") < 0)
        return -1;
    struct h248_stream **tail = &m->streams;
    unsigned count = 0;
    do {
        if (++count > lx->limits->max_items)
            return h248_lex_fail(lx, "too many Media items");
        struct h248_str word;
        enum h248_token tok;
        if (h248_lex_token(lx, &word, &tok, "Media item") < 0)
            return -1;
        if (tok == H248_TOK_TERMINATION_STATE) {
            if (m->termination_state != NULL)
                return h248_lex_fail(lx, "duplicate TerminationState");
            m->termination_state = h248_parser_alloc(ps, sizeof(*m->termination_state));
            if (m->termination_state == NULL ||
                parse_termination_state(ps, m->termination_state) < 0)
                return -1;
        } else if (tok == H248_TOK_STREAM) {
            struct h248_stream *s = h248_parser_alloc(ps, sizeof(*s));
            if (s == NULL || parse_stream(ps, s) < 0)
                return -1;
            for (struct h248_stream *o = m->streams; o != NULL; o = o->next)
                if (o->id == s->id)
                    return h248_lex_fail(lx, "duplicate Stream %u", s->id);
            *tail = s;
            tail = &s->next;
        } else {
            int r = parse_stream_parm(ps, &m->direct, tok);
            if (r < 0)
                return -1;
            if (r > 0) {
                lx->pos -= word.len;
                return h248_lex_fail(lx, "unexpected item in Media");
            }
            m->has_direct_parms = true;
        }
    } while (h248_lex_accept(lx, ','));
    return h248_lex_leave(lx, '}', "to close Media");
}

/* digitMapValue between braces, kept as text: timers, digit strings, alternatives. */
static int parse_digit_map_value(struct h248_parser *ps, struct h248_str *value)
{
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_enter(lx, '{', "digit map") < 0)
        return -1;
    char *p = lx->pos;
    while (p < lx->end && *p != '}') {
        unsigned char c = (unsigned char)*p;
        bool ok = h248_is_safe_char(c) || c == ' ' || c == '\t' || c == '\r' || c == '\n' ||
                  c == '[' || c == ']' || c == ':' || c == ',';
        if (!ok) {
            lx->pos = p;
            return h248_lex_fail(lx, "invalid character in digit map");
        }
        p++;
    }
    if (p >= lx->end)
        return h248_lex_fail(lx, "unterminated digit map");
    char *start = lx->pos, *stop = p;
    while (start < stop && (*start == ' ' || *start == '\t' || *start == '\r' || *start == '\n'))
        start++;
    while (stop > start &&
           (stop[-1] == ' ' || stop[-1] == '\t' || stop[-1] == '\r' || stop[-1] == '\n'))
        stop--;
    if (stop == start)
        return h248_lex_fail(lx, "empty digit map");
    if ((size_t)(stop - start) > lx->limits->max_token_len)
        return h248_lex_fail(lx, "digit map longer than %zu bytes", lx->limits->max_token_len);
    value->ptr = start;
    value->len = (size_t)(stop - start);
    lx->pos = p;
    return h248_lex_leave(lx, '}', "to close the digit map");
}

static int parse_digit_map(struct h248_parser *ps, struct h248_digit_map *dm)
{
    /* DigitMapToken EQUAL ((LBRKT digitMapValue RBRKT) / (digitMapName [LBRKT ... RBRKT])) */
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_expect(lx, '=', "after DigitMap") < 0)
        return -1;
    if (h248_lex_peek(lx) != '{') {
        if (h248_lex_word(lx, &dm->name, "digit map name") < 0)
            return -1;
        if (!h248_is_name(dm->name)) {
            lx->pos -= dm->name.len;
            return h248_lex_fail(lx, "invalid digit map name");
        }
        dm->has_name = true;
        if (h248_lex_peek(lx) != '{')
            return 0;
    }
    dm->has_value = true;
    return parse_digit_map_value(ps, &dm->value);
}

static int parse_events(struct h248_parser *ps, struct h248_events *ev, bool nested);
static int parse_signals(struct h248_parser *ps, struct h248_signals *sg);

/* Embed{signalsDescriptor [COMMA embedFirst]} or Embed{embedFirst}; nested embeds carry
 * signals only. */
static int parse_embed(struct h248_parser *ps, struct h248_event_parm *ep, bool nested)
{
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_enter(lx, '{', "after Embed") < 0)
        return -1;
    struct h248_str word;
    enum h248_token tok;
    if (h248_lex_token(lx, &word, &tok, "Signals or Events") < 0)
        return -1;
    if (tok == H248_TOK_SIGNALS) {
        ep->embed_signals = h248_parser_alloc(ps, sizeof(*ep->embed_signals));
        if (ep->embed_signals == NULL || parse_signals(ps, ep->embed_signals) < 0)
            return -1;
        if (nested || !h248_lex_accept(lx, ','))
            return h248_lex_leave(lx, '}', "to close Embed");
        if (h248_lex_token(lx, &word, &tok, "Events") < 0)
            return -1;
    }
    if (tok != H248_TOK_EVENTS || nested) {
        lx->pos -= word.len;
        return h248_lex_fail(lx, nested ? "expected Signals in nested Embed"
                                        : "expected Signals or Events in Embed");
    }
    ep->embed_events = h248_parser_alloc(ps, sizeof(*ep->embed_events));
    if (ep->embed_events == NULL || parse_events(ps, ep->embed_events, true) < 0)
        return -1;
    return h248_lex_leave(lx, '}', "to close Embed");
}

static int parse_event_parm(struct h248_parser *ps, struct h248_event_parm *ep, bool nested,
                            bool observed)
{
    struct h248_lex *lx = &ps->lx;
    struct h248_str word;
    enum h248_token tok;
    uint64_t v;
    if (h248_lex_token(lx, &word, &tok, "event parameter") < 0)
        return -1;
    if (tok == H248_TOK_STREAM) {
        ep->kind = H248_EVPARM_STREAM;
        if (h248_lex_expect(lx, '=', "after Stream") < 0 ||
            h248_lex_uint(lx, UINT16_MAX, 5, false, false, &v, "stream id") < 0)
            return -1;
        ep->stream = (uint16_t)v;
        return 0;
    }
    if (!observed) {
        switch (tok) {
        case H248_TOK_KEEP_ACTIVE:
            ep->kind = H248_EVPARM_KEEP_ACTIVE;
            return 0;
        case H248_TOK_IMMEDIATE_NOTIFY:
            ep->kind = H248_EVPARM_NOTIFY_IMMEDIATE;
            return 0;
        case H248_TOK_NEVER_NOTIFY:
            ep->kind = H248_EVPARM_NOTIFY_NEVER;
            return 0;
        case H248_TOK_RESET_EVENTS:
            ep->kind = H248_EVPARM_RESET_EVENTS;
            return 0;
        case H248_TOK_EMBED:
            ep->kind = H248_EVPARM_EMBED;
            return parse_embed(ps, ep, nested);
        case H248_TOK_REGULATED_NOTIFY:
            ep->kind = H248_EVPARM_NOTIFY_REGULATED;
            if (h248_lex_peek(lx) != '{')
                return 0;
            if (h248_lex_enter(lx, '{', "after RegulatedNotify") < 0 ||
                h248_lex_token(lx, &word, &tok, "Embed") < 0)
                return -1;
            if (tok != H248_TOK_EMBED) {
                lx->pos -= word.len;
                return h248_lex_fail(lx, "expected Embed in RegulatedNotify");
            }
            if (parse_embed(ps, ep, nested) < 0)
                return -1;
            return h248_lex_leave(lx, '}', "to close RegulatedNotify");
        case H248_TOK_DIGIT_MAP:
            /* eventDM = DigitMapToken EQUAL (digitMapName / (LBRKT digitMapValue RBRKT));
             * RFC 3525's earlier "DM{...}" without EQUAL is accepted too. */
            ep->kind = H248_EVPARM_DIGIT_MAP;
            h248_lex_accept(lx, '=');
            if (h248_lex_peek(lx) == '{') {
                ep->digit_map_is_value = true;
                return parse_digit_map_value(ps, &ep->digit_map);
            }
            if (h248_lex_word(lx, &ep->digit_map, "digit map name") < 0)
                return -1;
            if (!h248_is_name(ep->digit_map)) {
                lx->pos -= ep->digit_map.len;
                return h248_lex_fail(lx, "invalid digit map name");
            }
            return 0;
        default:
            break;
        }
    }
    ep->kind = H248_EVPARM_OTHER;
    ep->other.name = word;
    return parse_property_rest(ps, &ep->other, false, true);
}

static int parse_event_parms(struct h248_parser *ps, struct h248_event_parm **list, bool nested,
                             bool observed)
{
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_enter(lx, '{', "event parameters") < 0)
        return -1;
    unsigned count = 0;
    do {
        if (++count > lx->limits->max_items)
            return h248_lex_fail(lx, "too many event parameters");
        struct h248_event_parm *ep = h248_parser_alloc(ps, sizeof(*ep));
        if (ep == NULL || parse_event_parm(ps, ep, nested, observed) < 0)
            return -1;
        *list = ep;
        list = &ep->next;
    } while (h248_lex_accept(lx, ','));
    return h248_lex_leave(lx, '}', "to close event parameters");
}

static int parse_event_name(struct h248_parser *ps, struct h248_str *name)
{
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_word(lx, name, "event name") < 0)
        return -1;
    if (!h248_is_pkgd_name(*name)) {
        lx->pos -= name->len;
        return h248_lex_fail(lx, "invalid event name");
    }
    return 0;
}

static int parse_requested_events(struct h248_parser *ps, struct h248_requested_event **list,
                                  bool nested, const char *what)
{
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_enter(lx, '{', what) < 0)
        return -1;
    unsigned count = 0;
    do {
        if (++count > lx->limits->max_items)
            return h248_lex_fail(lx, "too many events in %s", what);
        struct h248_requested_event *re = h248_parser_alloc(ps, sizeof(*re));
        if (re == NULL || parse_event_name(ps, &re->name) < 0)
            return -1;
        if (h248_lex_peek(lx) == '{' && parse_event_parms(ps, &re->parms, nested, false) < 0)
            return -1;
        *list = re;
        list = &re->next;
    } while (h248_lex_accept(lx, ','));
    return h248_lex_leave(lx, '}', what);
}

static int parse_request_id(struct h248_parser *ps, uint32_t *id)
{
    uint64_t v;
    if (h248_lex_uint(&ps->lx, UINT32_MAX, 10, false, false, &v, "request id") < 0)
        return -1;
    *id = (uint32_t)v;
    return 0;
}

/* After the Events token: [EQUAL RequestID LBRKT requestedEvent *(COMMA ...) RBRKT] */
static int parse_events(struct h248_parser *ps, struct h248_events *ev, bool nested)
{
    if (h248_lex_peek(&ps->lx) != '=')
        return ps->lx.failed ? -1 : 0;
    ps->lx.pos++;
    ev->has_request_id = true;
    if (parse_request_id(ps, &ev->request_id) < 0)
        return -1;
    return parse_requested_events(ps, &ev->events, nested, "Events");
}

static int parse_signal_request(struct h248_parser *ps, struct h248_signal_request *sr)
{
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_word(lx, &sr->name, "signal name") < 0)
        return -1;
    if (!h248_is_pkgd_name(sr->name)) {
        lx->pos -= sr->name.len;
        return h248_lex_fail(lx, "invalid signal name");
    }
    if (h248_lex_peek(lx) != '{')
        return lx->failed ? -1 : 0;
    if (h248_lex_enter(lx, '{', "signal parameters") < 0)
        return -1;
    unsigned count = 0;
    do {
        if (++count > lx->limits->max_items)
            return h248_lex_fail(lx, "too many signal parameters");
        struct h248_str word, value;
        enum h248_token tok, vtok;
        uint64_t v;
        if (h248_lex_token(lx, &word, &tok, "signal parameter") < 0)
            return -1;
        switch (tok) {
        case H248_TOK_STREAM:
            if (h248_lex_expect(lx, '=', "after Stream") < 0 ||
                h248_lex_uint(lx, UINT16_MAX, 5, false, false, &v, "stream id") < 0)
                return -1;
            sr->has_stream = true;
            sr->stream = (uint16_t)v;
            break;
        case H248_TOK_SIGNAL_TYPE:
            if (h248_lex_expect(lx, '=', "after SignalType") < 0 ||
                h248_lex_token(lx, &value, &vtok, "signal type") < 0)
                return -1;
            if (vtok == H248_TOK_ON_OFF)
                sr->type = H248_SIGTYPE_ON_OFF;
            else if (vtok == H248_TOK_TIMEOUT)
                sr->type = H248_SIGTYPE_TIMEOUT;
            else if (vtok == H248_TOK_BRIEF)
                sr->type = H248_SIGTYPE_BRIEF;
            else {
                lx->pos -= value.len;
                return h248_lex_fail(lx, "invalid signal type");
            }
            break;
        case H248_TOK_DURATION:
            if (h248_lex_expect(lx, '=', "after Duration") < 0 ||
                h248_lex_uint(lx, UINT16_MAX, 5, false, false, &v, "duration") < 0)
                return -1;
            sr->has_duration = true;
            sr->duration = (uint16_t)v;
            break;
        case H248_TOK_NOTIFY_COMPLETION:
            if (h248_lex_expect(lx, '=', "after NotifyCompletion") < 0 ||
                h248_lex_enter(lx, '{', "notification reasons") < 0)
                return -1;
            do {
                if (h248_lex_token(lx, &value, &vtok, "notification reason") < 0)
                    return -1;
                unsigned bit = vtok == H248_TOK_TIMEOUT        ? H248_NC_TIMEOUT
                               : vtok == H248_TOK_INT_BY_EVENT ? H248_NC_INTERRUPTED_BY_EVENT
                               : vtok == H248_TOK_INT_BY_SIG_DESCR
                                   ? H248_NC_INTERRUPTED_BY_NEW_SIGNALS
                               : vtok == H248_TOK_OTHER_REASON ? H248_NC_OTHER_REASON
                               : vtok == H248_TOK_ITERATION    ? H248_NC_ITERATION
                                                               : 0;
                if (bit == 0) {
                    lx->pos -= value.len;
                    return h248_lex_fail(lx, "invalid notification reason");
                }
                sr->notify_completion |= bit;
            } while (h248_lex_accept(lx, ','));
            if (h248_lex_leave(lx, '}', "to close NotifyCompletion") < 0)
                return -1;
            break;
        case H248_TOK_KEEP_ACTIVE:
            sr->keep_active = true;
            break;
        case H248_TOK_DIRECTION:
            if (h248_lex_expect(lx, '=', "after SPADirection") < 0 ||
                h248_lex_token(lx, &value, &vtok, "signal direction") < 0)
                return -1;
            if (vtok == H248_TOK_EXTERNAL)
                sr->direction = H248_SIGDIR_EXTERNAL;
            else if (vtok == H248_TOK_INTERNAL)
                sr->direction = H248_SIGDIR_INTERNAL;
            else if (vtok == H248_TOK_BOTH)
                sr->direction = H248_SIGDIR_BOTH;
            else {
                lx->pos -= value.len;
                return h248_lex_fail(lx, "invalid signal direction");
            }
            break;
        case H248_TOK_REQUEST_ID:
            if (h248_lex_expect(lx, '=', "after SPARequestID") < 0 ||
                parse_request_id(ps, &sr->request_id) < 0)
                return -1;
            sr->has_request_id = true;
            break;
        case H248_TOK_INTERSIGNAL:
            if (h248_lex_expect(lx, '=', "after Intersignal") < 0 ||
                h248_lex_uint(lx, UINT16_MAX, 5, false, false, &v, "intersignal delay") < 0)
                return -1;
            sr->has_intersignal_delay = true;
            sr->intersignal_delay = (uint16_t)v;
            break;
        default: {
            struct h248_property *p = new_property(ps, word);
            if (p == NULL || parse_property_rest(ps, p, false, true) < 0)
                return -1;
            append_property(&sr->others, p);
        }
        }
    } while (h248_lex_accept(lx, ','));
    return h248_lex_leave(lx, '}', "to close signal parameters");
}

/* After the Signals token: [LBRKT [signalParm *(COMMA signalParm)] RBRKT] */
static int parse_signals(struct h248_parser *ps, struct h248_signals *sg)
{
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_peek(lx) != '{')
        return lx->failed ? -1 : 0;
    if (h248_lex_enter(lx, '{', "after Signals") < 0)
        return -1;
    if (h248_lex_peek(lx) == '}')
        return h248_lex_leave(lx, '}', "to close Signals");
    struct h248_signal_item **tail = &sg->items;
    unsigned count = 0;
    do {
        if (++count > lx->limits->max_items)
            return h248_lex_fail(lx, "too many signals");
        struct h248_signal_item *item = h248_parser_alloc(ps, sizeof(*item));
        if (item == NULL)
            return -1;
        char *save = lx->pos;
        struct h248_str word;
        enum h248_token tok;
        if (h248_lex_token(lx, &word, &tok, "signal") < 0)
            return -1;
        if (tok == H248_TOK_SIGNAL_LIST && h248_lex_peek(lx) == '=') {
            uint64_t id;
            lx->pos++;
            if (h248_lex_uint(lx, UINT16_MAX, 5, false, false, &id, "signal list id") < 0 ||
                h248_lex_enter(lx, '{', "after signal list id") < 0)
                return -1;
            item->is_list = true;
            item->list_id = (uint16_t)id;
            struct h248_signal_request **st = &item->signals;
            unsigned n = 0;
            do {
                if (++n > lx->limits->max_items)
                    return h248_lex_fail(lx, "too many signals in list");
                struct h248_signal_request *sr = h248_parser_alloc(ps, sizeof(*sr));
                if (sr == NULL || parse_signal_request(ps, sr) < 0)
                    return -1;
                *st = sr;
                st = &sr->next;
            } while (h248_lex_accept(lx, ','));
            if (h248_lex_leave(lx, '}', "to close SignalList") < 0)
                return -1;
        } else {
            lx->pos = save;
            item->signals = h248_parser_alloc(ps, sizeof(*item->signals));
            if (item->signals == NULL || parse_signal_request(ps, item->signals) < 0)
                return -1;
        }
        *tail = item;
        tail = &item->next;
    } while (h248_lex_accept(lx, ','));
    return h248_lex_leave(lx, '}', "to close Signals");
}

static int parse_observed(struct h248_parser *ps, struct h248_observed_events *oe)
{
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_expect(lx, '=', "after ObservedEvents") < 0 ||
        parse_request_id(ps, &oe->request_id) < 0 ||
        h248_lex_enter(lx, '{', "after request id") < 0)
        return -1;
    struct h248_observed_event **tail = &oe->events;
    unsigned count = 0;
    do {
        if (++count > lx->limits->max_items)
            return h248_lex_fail(lx, "too many observed events");
        struct h248_observed_event *e = h248_parser_alloc(ps, sizeof(*e));
        if (e == NULL || h248_lex_word(lx, &e->name, "observed event") < 0)
            return -1;
        if (h248_lex_peek(lx) == ':') {
            if (!h248_split_timestamp(e->name, e->date, e->time)) {
                lx->pos -= e->name.len;
                return h248_lex_fail(lx, "invalid time stamp");
            }
            lx->pos++;
            e->has_timestamp = true;
            if (h248_lex_word(lx, &e->name, "event name") < 0)
                return -1;
        }
        if (!h248_is_pkgd_name(e->name)) {
            lx->pos -= e->name.len;
            return h248_lex_fail(lx, "invalid event name");
        }
        if (h248_lex_peek(lx) == '{' && parse_event_parms(ps, &e->parms, false, true) < 0)
            return -1;
        *tail = e;
        tail = &e->next;
    } while (h248_lex_accept(lx, ','));
    return h248_lex_leave(lx, '}', "to close ObservedEvents");
}

static int parse_packages(struct h248_parser *ps, struct h248_package **list)
{
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_enter(lx, '{', "after Packages") < 0)
        return -1;
    unsigned count = 0;
    do {
        if (++count > lx->limits->max_items)
            return h248_lex_fail(lx, "too many packages");
        struct h248_package *pkg = h248_parser_alloc(ps, sizeof(*pkg));
        struct h248_str word;
        if (pkg == NULL || h248_lex_word(lx, &word, "package") < 0)
            return -1;
        /* packagesItem = NAME "-" UINT16 */
        size_t dash = word.len;
        while (dash > 0 && word.ptr[dash - 1] != '-')
            dash--;
        pkg->name = (struct h248_str){word.ptr, dash > 0 ? dash - 1 : 0};
        uint32_t version = 0;
        size_t digits = word.len - dash;
        bool ok = dash > 0 && h248_is_name(pkg->name) && digits > 0 && digits <= 5;
        for (size_t i = dash; ok && i < word.len; i++) {
            ok = word.ptr[i] >= '0' && word.ptr[i] <= '9';
            version = version * 10 + (uint32_t)(word.ptr[i] - '0');
        }
        if (!ok || version > UINT16_MAX) {
            lx->pos -= word.len;
            return h248_lex_fail(lx, "package must be name-version");
        }
        pkg->version = (uint16_t)version;
        *list = pkg;
        list = &pkg->next;
    } while (h248_lex_accept(lx, ','));
    return h248_lex_leave(lx, '}', "to close Packages");
}

int h248_parse_error_descriptor(struct h248_parser *ps, struct h248_error_desc *err)
{
    struct h248_lex *lx = &ps->lx;
    uint64_t code;
    if (h248_lex_expect(lx, '=', "after Error") < 0 ||
        h248_lex_uint(lx, 9999, 4, false, false, &code, "error code") < 0 ||
        h248_lex_enter(lx, '{', "after error code") < 0)
        return -1;
    err->code = (uint16_t)code;
    if (h248_lex_peek(lx) == '"') {
        if (h248_lex_quoted(lx, &err->text, "error text") < 0)
            return -1;
        err->has_text = true;
    }
    return h248_lex_leave(lx, '}', "to close Error");
}

static bool is_descriptor_token(enum h248_token tok)
{
    switch (tok) {
    case H248_TOK_MEDIA:
    case H248_TOK_MODEM:
    case H248_TOK_MUX:
    case H248_TOK_EVENTS:
    case H248_TOK_EVENT_BUFFER:
    case H248_TOK_SIGNALS:
    case H248_TOK_DIGIT_MAP:
    case H248_TOK_STATISTICS:
    case H248_TOK_OBSERVED_EVENTS:
    case H248_TOK_PACKAGES:
        return true;
    default:
        return false;
    }
}

static int parse_audit(struct h248_parser *ps, struct h248_audit *au)
{
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_enter(lx, '{', "after Audit") < 0)
        return -1;
    if (h248_lex_peek(lx) == '}')
        return h248_lex_leave(lx, '}', "to close Audit");
    struct h248_audit_item **tail = &au->items;
    unsigned count = 0;
    do {
        if (++count > lx->limits->max_items)
            return h248_lex_fail(lx, "too many audit items");
        struct h248_audit_item *item = h248_parser_alloc(ps, sizeof(*item));
        struct h248_str word;
        enum h248_token tok;
        if (item == NULL || h248_lex_token(lx, &word, &tok, "audit item") < 0)
            return -1;
        int next = h248_lex_peek(lx);
        if (next == '{' || next == '=' || next == '[') {
            /* Individual audit descriptors (v2+) are kept as text. */
            lx->pos = (char *)word.ptr;
            item->kind = H248_AUDIT_RAW;
            if (h248_lex_balanced(lx, &item->text, "audit item") < 0)
                return -1;
        } else if (is_descriptor_token(tok)) {
            item->kind = H248_AUDIT_TOKEN;
            item->token = tok;
        } else if (h248_is_pkgd_name(word)) {
            item->kind = H248_AUDIT_NAME;
            item->text = word;
        } else {
            lx->pos -= word.len;
            return h248_lex_fail(lx, "invalid audit item");
        }
        *tail = item;
        tail = &item->next;
    } while (h248_lex_accept(lx, ','));
    return h248_lex_leave(lx, '}', "to close Audit");
}

static int parse_version_number(struct h248_parser *ps, unsigned *version, bool allow_slash)
{
    uint64_t v;
    if (h248_lex_uint(&ps->lx, 99, 2, allow_slash, false, &v, "version") < 0)
        return -1;
    *version = (unsigned)v;
    return 0;
}

static int parse_sc_param(struct h248_parser *ps, struct h248_service_change *sc, bool reply)
{
    struct h248_lex *lx = &ps->lx;
    struct h248_str word, value;
    enum h248_token tok, vtok;
    uint64_t v;
    if (h248_lex_token(lx, &word, &tok, "ServiceChange parameter") < 0)
        return -1;
    bool reply_ok = tok == H248_TOK_SERVICE_CHANGE_ADDRESS || tok == H248_TOK_MGC_ID ||
                    tok == H248_TOK_PROFILE || tok == H248_TOK_VERSION || tok == H248_TOK_NONE;
    if (reply && !reply_ok) {
        lx->pos -= word.len;
        return h248_lex_fail(lx, "parameter not allowed in a ServiceChange reply");
    }
    switch (tok) {
    case H248_TOK_METHOD:
        if (sc->method != H248_SC_UNSET)
            return h248_lex_fail(lx, "duplicate Method");
        if (h248_lex_expect(lx, '=', "after Method") < 0 ||
            h248_lex_token(lx, &value, &vtok, "method") < 0)
            return -1;
        switch (vtok) {
        case H248_TOK_FAILOVER:
            sc->method = H248_SC_FAILOVER;
            return 0;
        case H248_TOK_FORCED:
            sc->method = H248_SC_FORCED;
            return 0;
        case H248_TOK_GRACEFUL:
            sc->method = H248_SC_GRACEFUL;
            return 0;
        case H248_TOK_RESTART:
            sc->method = H248_SC_RESTART;
            return 0;
        case H248_TOK_DISCONNECTED:
            sc->method = H248_SC_DISCONNECTED;
            return 0;
        case H248_TOK_HANDOFF:
            sc->method = H248_SC_HANDOFF;
            return 0;
        default:
            if (value.len >= 3 && (value.ptr[0] == 'X' || value.ptr[0] == 'x') &&
                (value.ptr[1] == '-' || value.ptr[1] == '+') && value.len <= 8) {
                sc->method = H248_SC_EXTENSION;
                sc->method_ext = value;
                return 0;
            }
            lx->pos -= value.len;
            return h248_lex_fail(lx, "invalid ServiceChange method");
        }
    case H248_TOK_REASON:
        if (sc->has_reason)
            return h248_lex_fail(lx, "duplicate Reason");
        sc->has_reason = true;
        if (h248_lex_expect(lx, '=', "after Reason") < 0)
            return -1;
        return h248_lex_value(lx, &sc->reason, "reason");
    case H248_TOK_DELAY:
        if (sc->has_delay)
            return h248_lex_fail(lx, "duplicate Delay");
        if (h248_lex_expect(lx, '=', "after Delay") < 0 ||
            h248_lex_uint(lx, UINT32_MAX, 10, false, false, &v, "delay") < 0)
            return -1;
        sc->has_delay = true;
        sc->delay = (uint32_t)v;
        return 0;
    case H248_TOK_SERVICE_CHANGE_ADDRESS:
        if (sc->has_address)
            return h248_lex_fail(lx, "duplicate ServiceChangeAddress");
        if (h248_lex_expect(lx, '=', "after ServiceChangeAddress") < 0)
            return -1;
        sc->has_address = true;
        if (h248_lex_peek(lx) >= '0' && h248_lex_peek(lx) <= '9') {
            if (h248_lex_uint(lx, 65535, 5, false, false, &v, "port") < 0)
                return -1;
            sc->address_is_port = true;
            sc->address_port = (uint16_t)v;
            return 0;
        }
        return h248_parse_mid(ps, &sc->address, "ServiceChangeAddress");
    case H248_TOK_PROFILE:
        if (sc->has_profile)
            return h248_lex_fail(lx, "duplicate Profile");
        if (h248_lex_expect(lx, '=', "after Profile") < 0 ||
            h248_lex_word(lx, &value, "profile") < 0)
            return -1;
        {
            /* NAME SLASH Version: the word holds both, split at the last slash. */
            size_t slash = value.len;
            while (slash > 0 && value.ptr[slash - 1] != '/')
                slash--;
            sc->profile_name = (struct h248_str){value.ptr, slash > 0 ? slash - 1 : 0};
            size_t digits = value.len - slash;
            unsigned version = 0;
            bool ok = slash > 0 && h248_is_name(sc->profile_name) && digits >= 1 && digits <= 2;
            for (size_t i = slash; ok && i < value.len; i++) {
                ok = value.ptr[i] >= '0' && value.ptr[i] <= '9';
                version = version * 10 + (unsigned)(value.ptr[i] - '0');
            }
            if (!ok) {
                lx->pos -= value.len;
                return h248_lex_fail(lx, "profile must be name/version");
            }
            sc->has_profile = true;
            sc->profile_version = version;
        }
        return 0;
    case H248_TOK_VERSION:
        if (sc->has_version)
            return h248_lex_fail(lx, "duplicate Version");
        if (h248_lex_expect(lx, '=', "after Version") < 0 ||
            parse_version_number(ps, &sc->version, false) < 0)
            return -1;
        sc->has_version = true;
        return 0;
    case H248_TOK_MGC_ID:
        if (sc->has_mgc_id)
            return h248_lex_fail(lx, "duplicate MgcIdToTry");
        if (h248_lex_expect(lx, '=', "after MgcIdToTry") < 0 ||
            h248_parse_mid(ps, &sc->mgc_id, "MgcIdToTry") < 0)
            return -1;
        sc->has_mgc_id = true;
        return 0;
    case H248_TOK_SERVICE_CHANGE_INC:
        sc->incomplete = true;
        return 0;
    default:
        break;
    }
    if (h248_split_timestamp(word, sc->date, sc->time)) {
        if (sc->has_timestamp)
            return h248_lex_fail(lx, "duplicate time stamp");
        sc->has_timestamp = true;
        return 0;
    }
    /* extensionParameter = "X" ("-" / "+") 1*6(ALPHA / DIGIT) */
    bool ext = word.len >= 3 && word.len <= 8 && (word.ptr[0] == 'X' || word.ptr[0] == 'x') &&
               (word.ptr[1] == '-' || word.ptr[1] == '+');
    for (size_t i = 2; ext && i < word.len; i++) {
        char c = word.ptr[i];
        ext = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
    }
    if (!ext || reply) {
        lx->pos -= word.len;
        return h248_lex_fail(lx, "unknown ServiceChange parameter");
    }
    struct h248_property *p = new_property(ps, word);
    bool present;
    if (p == NULL || parse_parm_value(ps, &p->value, &present) < 0)
        return -1;
    if (!present)
        return h248_lex_fail(lx, "expected a value after the extension parameter");
    p->has_value = true;
    append_property(&sc->extensions, p);
    return 0;
}

static int parse_service_change(struct h248_parser *ps, struct h248_service_change *sc, bool reply)
{
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_enter(lx, '{', "after Services") < 0)
        return -1;
    unsigned count = 0;
    do {
        if (++count > lx->limits->max_items)
            return h248_lex_fail(lx, "too many ServiceChange parameters");
        if (parse_sc_param(ps, sc, reply) < 0)
            return -1;
    } while (h248_lex_accept(lx, ','));
    if (!reply && sc->method == H248_SC_UNSET)
        return h248_lex_fail(lx, "ServiceChange without Method");
    return h248_lex_leave(lx, '}', "to close Services");
}

static unsigned allowed_descriptors(enum h248_command_kind kind, bool reply)
{
    const unsigned amm = KIND_BIT(H248_DESC_MEDIA) | KIND_BIT(H248_DESC_MODEM) |
                         KIND_BIT(H248_DESC_MUX) | KIND_BIT(H248_DESC_EVENTS) |
                         KIND_BIT(H248_DESC_EVENT_BUFFER) | KIND_BIT(H248_DESC_SIGNALS) |
                         KIND_BIT(H248_DESC_DIGIT_MAP) | KIND_BIT(H248_DESC_AUDIT) |
                         KIND_BIT(H248_DESC_STATISTICS);
    const unsigned audit_return =
        KIND_BIT(H248_DESC_MEDIA) | KIND_BIT(H248_DESC_MODEM) | KIND_BIT(H248_DESC_MUX) |
        KIND_BIT(H248_DESC_EVENTS) | KIND_BIT(H248_DESC_EVENT_BUFFER) |
        KIND_BIT(H248_DESC_SIGNALS) | KIND_BIT(H248_DESC_DIGIT_MAP) |
        KIND_BIT(H248_DESC_OBSERVED_EVENTS) | KIND_BIT(H248_DESC_STATISTICS) |
        KIND_BIT(H248_DESC_PACKAGES) | KIND_BIT(H248_DESC_ERROR) | KIND_BIT(H248_DESC_TOKEN);
    switch (kind) {
    case H248_CMD_ADD:
    case H248_CMD_MOVE:
    case H248_CMD_MODIFY:
        return reply ? audit_return : amm;
    case H248_CMD_SUBTRACT:
    case H248_CMD_AUDIT_VALUE:
    case H248_CMD_AUDIT_CAPABILITIES:
        return reply ? audit_return : KIND_BIT(H248_DESC_AUDIT);
    case H248_CMD_NOTIFY:
        return reply ? KIND_BIT(H248_DESC_ERROR)
                     : KIND_BIT(H248_DESC_OBSERVED_EVENTS) | KIND_BIT(H248_DESC_ERROR);
    case H248_CMD_SERVICE_CHANGE:
        return reply ? KIND_BIT(H248_DESC_ERROR) | KIND_BIT(H248_DESC_SERVICE_CHANGE)
                     : KIND_BIT(H248_DESC_SERVICE_CHANGE);
    }
    return 0;
}

static int descriptor_kind(enum h248_token tok, enum h248_descriptor_kind *kind)
{
    switch (tok) {
    case H248_TOK_MEDIA:
        *kind = H248_DESC_MEDIA;
        return 0;
    case H248_TOK_EVENTS:
        *kind = H248_DESC_EVENTS;
        return 0;
    case H248_TOK_EVENT_BUFFER:
        *kind = H248_DESC_EVENT_BUFFER;
        return 0;
    case H248_TOK_SIGNALS:
        *kind = H248_DESC_SIGNALS;
        return 0;
    case H248_TOK_DIGIT_MAP:
        *kind = H248_DESC_DIGIT_MAP;
        return 0;
    case H248_TOK_AUDIT:
        *kind = H248_DESC_AUDIT;
        return 0;
    case H248_TOK_OBSERVED_EVENTS:
        *kind = H248_DESC_OBSERVED_EVENTS;
        return 0;
    case H248_TOK_STATISTICS:
        *kind = H248_DESC_STATISTICS;
        return 0;
    case H248_TOK_PACKAGES:
        *kind = H248_DESC_PACKAGES;
        return 0;
    case H248_TOK_ERROR:
        *kind = H248_DESC_ERROR;
        return 0;
    case H248_TOK_SERVICES:
        *kind = H248_DESC_SERVICE_CHANGE;
        return 0;
    case H248_TOK_MODEM:
        *kind = H248_DESC_MODEM;
        return 0;
    case H248_TOK_MUX:
        *kind = H248_DESC_MUX;
        return 0;
    default:
        return -1;
    }
}

static int parse_descriptor(struct h248_parser *ps, struct h248_descriptor *d, enum h248_token tok,
                            bool reply)
{
    struct h248_lex *lx = &ps->lx;
    int next = h248_lex_peek(lx);
    if (reply && is_descriptor_token(tok) && (next == ',' || next == '}')) {
        d->kind = H248_DESC_TOKEN;
        d->u.token = tok;
        return 0;
    }
    switch (d->kind) {
    case H248_DESC_MEDIA:
        return parse_media(ps, &d->u.media);
    case H248_DESC_EVENTS:
        return parse_events(ps, &d->u.events, false);
    case H248_DESC_EVENT_BUFFER:
        if (next != '{')
            return 0;
        return parse_requested_events(ps, &d->u.event_buffer.events, false, "EventBuffer");
    case H248_DESC_SIGNALS:
        return parse_signals(ps, &d->u.signals);
    case H248_DESC_DIGIT_MAP:
        return parse_digit_map(ps, &d->u.digit_map);
    case H248_DESC_AUDIT:
        return parse_audit(ps, &d->u.audit);
    case H248_DESC_OBSERVED_EVENTS:
        return parse_observed(ps, &d->u.observed);
    case H248_DESC_STATISTICS:
        return parse_statistics(ps, &d->u.statistics);
    case H248_DESC_PACKAGES:
        return parse_packages(ps, &d->u.packages);
    case H248_DESC_ERROR:
        return h248_parse_error_descriptor(ps, &d->u.error);
    case H248_DESC_SERVICE_CHANGE:
        return parse_service_change(ps, &d->u.service_change, reply);
    case H248_DESC_MODEM:
    case H248_DESC_MUX:
        /* MuxToken EQUAL ...; ModemToken ((EQUAL modemType) / (LSBRKT modemType ...)) */
        if (next != '=' && !(next == '[' && d->kind == H248_DESC_MODEM))
            return h248_lex_fail(lx, "expected '=' after Mux or Modem");
        return h248_lex_balanced(lx, &d->u.raw.text, "descriptor");
    case H248_DESC_TOKEN:
        break;
    }
    return h248_lex_fail(lx, "unexpected descriptor");
}

int h248_parse_command_body(struct h248_parser *ps, struct h248_command *cmd, bool reply)
{
    struct h248_lex *lx = &ps->lx;
    if (h248_lex_enter(lx, '{', "command body") < 0)
        return -1;
    if (h248_lex_peek(lx) == '}')
        return h248_lex_fail(lx, "empty command body");
    unsigned allowed = allowed_descriptors(cmd->kind, reply), seen = 0, count = 0;
    struct h248_descriptor **tail = &cmd->descriptors;
    do {
        if (++count > lx->limits->max_items)
            return h248_lex_fail(lx, "too many descriptors");
        struct h248_descriptor *d = h248_parser_alloc(ps, sizeof(*d));
        struct h248_str word;
        enum h248_token tok;
        if (d == NULL || h248_lex_token(lx, &word, &tok, "descriptor") < 0)
            return -1;
        if (descriptor_kind(tok, &d->kind) < 0) {
            lx->pos -= word.len;
            return h248_lex_fail(lx, "unknown descriptor");
        }
        if (parse_descriptor(ps, d, tok, reply) < 0)
            return -1;
        if (!(allowed & KIND_BIT(d->kind))) {
            lx->pos = (char *)word.ptr;
            return h248_lex_fail(lx, "descriptor not allowed in this command");
        }
        if (d->kind != H248_DESC_TOKEN && (seen & KIND_BIT(d->kind))) {
            lx->pos = (char *)word.ptr;
            return h248_lex_fail(lx, "duplicate descriptor");
        }
        seen |= KIND_BIT(d->kind);
        *tail = d;
        tail = &d->next;
    } while (h248_lex_accept(lx, ','));
    if (!reply && (cmd->kind == H248_CMD_AUDIT_VALUE || cmd->kind == H248_CMD_AUDIT_CAPABILITIES) &&
        !(seen & KIND_BIT(H248_DESC_AUDIT)))
        return h248_lex_fail(lx, "audit command without Audit descriptor");
    if (!reply && cmd->kind == H248_CMD_NOTIFY && !(seen & KIND_BIT(H248_DESC_OBSERVED_EVENTS)))
        return h248_lex_fail(lx, "Notify without ObservedEvents");
    return h248_lex_leave(lx, '}', "to close the command");
}
