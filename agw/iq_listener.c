/* The Iq UDP endpoint before the control plane: parses each datagram, answers errors and 501. */
#include "agw.h"

#include "h248/h248.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_LINES_PER_SECOND 100
#define ERROR_TEXT_MAX 200
#define SUMMARY_TIDS_MAX 10 /* Annex D.1 allows 10 transactions per message; list at most that */

static const char *const command_names[] = {
    [H248_CMD_ADD] = "Add",
    [H248_CMD_MOVE] = "Move",
    [H248_CMD_MODIFY] = "Modify",
    [H248_CMD_SUBTRACT] = "Subtract",
    [H248_CMD_AUDIT_VALUE] = "AuditValue",
    [H248_CMD_AUDIT_CAPABILITIES] = "AuditCapabilities",
    [H248_CMD_NOTIFY] = "Notify",
    [H248_CMD_SERVICE_CHANGE] = "ServiceChange",
};

/* Replaces what a quotedString may not hold (DQUOTE) and what a log should not hold. */
static size_t sanitize(const char *text, size_t len, char *buf, size_t cap)
{
    size_t n = 0;
    if (cap == 0)
        return 0;
    for (size_t i = 0; i < len && n + 1 < cap; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"')
            c = '\'';
        else if (c == '\t' || c == '\r' || c == '\n')
            c = ' ';
        else if (c < 0x20 || c >= 0x7f)
            c = '?';
        buf[n++] = (char)c;
    }
    buf[n] = '\0';
    return n;
}

__attribute__((format(printf, 4, 5))) static void append(char *buf, size_t cap, size_t *pos,
                                                         const char *fmt, ...)
{
    if (*pos >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *pos, cap - *pos, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    *pos = (size_t)n < cap - *pos ? *pos + (size_t)n : cap;
}

static struct h248_message *reply_new(const struct agw_mid_conf *self, unsigned version)
{
    struct h248_message *m = h248_message_new();
    if (m == NULL)
        return NULL;
    m->version = version;
    m->mid.kind = self->ipv6 ? H248_MID_IPV6 : H248_MID_IPV4;
    m->mid.has_port = true;
    m->mid.port = self->port;
    if (h248_str_copy(m, &m->mid.text, self->ip, strlen(self->ip)) < 0) {
        h248_message_free(m);
        return NULL;
    }
    return m;
}

static struct h248_error_desc *error_new(struct h248_message *m, unsigned code, const char *text)
{
    char clean[ERROR_TEXT_MAX];
    size_t n = sanitize(text, strlen(text), clean, sizeof(clean));
    struct h248_error_desc *e = h248_alloc(m, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->code = (uint16_t)code;
    e->has_text = true;
    if (h248_str_copy(m, &e->text, clean, n) < 0)
        return NULL;
    return e;
}

/* Appends P=<tid>{ER=<code>{"text"}} to the reply; tail points at the last next pointer. */
static int reply_error(struct h248_message *m, struct h248_transaction ***tail, uint32_t tid,
                       unsigned code, const char *text)
{
    struct h248_transaction *t = h248_alloc(m, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->kind = H248_TRANS_REPLY;
    t->id = tid;
    t->error = error_new(m, code, text);
    if (t->error == NULL)
        return -ENOMEM;
    **tail = t;
    *tail = &t->next;
    return 0;
}

static const char *first_command(const struct h248_transaction *t)
{
    for (const struct h248_action *a = t->actions; a != NULL; a = a->next) {
        if (a->commands != NULL &&
            a->commands->kind < sizeof(command_names) / sizeof(*command_names))
            return command_names[a->commands->kind];
    }
    return "Transaction";
}

/* The reply to a message that did not parse: per transaction when the parser knew which. */
static struct h248_message *answer_parse_error(const struct agw_mid_conf *self,
                                               const struct h248_parse_error *err, char *summary,
                                               size_t summary_cap, size_t *pos)
{
    char text[sizeof(err->text)];
    sanitize(err->text, strnlen(err->text, sizeof(err->text)), text, sizeof(text));
    /* A code outside H.248's three-digit range would be our bug; answer a plain syntax error. */
    unsigned code = err->code >= 400 && err->code <= 599 ? err->code : H248_ERR_MESSAGE_SYNTAX;
    append(summary, summary_cap, pos, "error %u at offset %zu: %s -> ", code, err->offset, text);

    struct h248_message *m = reply_new(self, 3);
    if (m == NULL)
        return NULL;
    if (err->has_transaction_id) {
        struct h248_transaction **tail = &m->transactions;
        if (reply_error(m, &tail, err->transaction_id, code, text) < 0)
            goto fail;
        append(summary, summary_cap, pos, "P=%u ER=%u", (unsigned)err->transaction_id, code);
    } else {
        m->error = error_new(m, code, text);
        if (m->error == NULL)
            goto fail;
        append(summary, summary_cap, pos, "ER=%u", code);
    }
    return m;
fail:
    h248_message_free(m);
    return NULL;
}

/* Every request gets 501 until the control plane executes commands; replies, acks and pendings
 * are for transactions we never sent, so they are only logged. */
static struct h248_message *answer_requests(const struct agw_mid_conf *self,
                                            const struct h248_message *req, char *summary,
                                            size_t summary_cap, size_t *pos)
{
    unsigned version = req->version >= 1 && req->version <= 3 ? req->version : 3;
    struct h248_message *m = reply_new(self, version);
    if (m == NULL)
        return NULL;
    struct h248_transaction **tail = &m->transactions;
    unsigned listed = 0, replies = 0;
    if (req->error != NULL)
        append(summary, summary_cap, pos, "message error ER=%u ", (unsigned)req->error->code);
    for (const struct h248_transaction *t = req->transactions; t != NULL; t = t->next) {
        if (t->kind != H248_TRANS_REQUEST) {
            if (listed++ < SUMMARY_TIDS_MAX)
                append(summary, summary_cap, pos, "%s=%u ",
                       t->kind == H248_TRANS_REPLY     ? "P"
                       : t->kind == H248_TRANS_PENDING ? "PN"
                                                       : "K",
                       (unsigned)t->id);
            continue;
        }
        const char *cmd = first_command(t);
        char text[ERROR_TEXT_MAX];
        snprintf(text, sizeof(text), "%s not implemented yet: control plane pending", cmd);
        if (reply_error(m, &tail, t->id, 501, text) < 0) {
            h248_message_free(m);
            return NULL;
        }
        replies++;
        if (listed++ < SUMMARY_TIDS_MAX)
            append(summary, summary_cap, pos, "T=%u %s ", (unsigned)t->id, cmd);
    }
    if (replies == 0) {
        append(summary, summary_cap, pos, "-> no reply");
        h248_message_free(m);
        return NULL;
    }
    append(summary, summary_cap, pos, "-> ER=501 x%u", replies);
    return m;
}

int agw_iq_answer(const struct agw_mid_conf *self, const char *in, size_t len, char *out,
                  size_t cap, size_t *out_len, char *summary, size_t summary_cap)
{
    struct h248_message *req = NULL, *rep;
    struct h248_parse_error err;
    size_t pos = 0;
    memset(&err, 0, sizeof(err));
    *out_len = 0;
    if (summary_cap > 0)
        summary[0] = '\0';

    if (h248_parse_message(in, len, NULL, &req, &err) < 0) {
        rep = answer_parse_error(self, &err, summary, summary_cap, &pos);
    } else {
        rep = answer_requests(self, req, summary, summary_cap, &pos);
        h248_message_free(req);
        if (rep == NULL)
            return 0; /* nothing to answer, or out of memory: both leave the peer to retransmit */
    }
    if (rep == NULL)
        return -ENOMEM;
    int rc = h248_encode_message(rep, H248_STYLE_COMPACT, out, cap, out_len);
    h248_message_free(rep);
    if (rc < 0) {
        *out_len = 0;
        append(summary, summary_cap, &pos, " (encode failed: %s)", strerror(-rc));
    }
    return rc;
}

static void addr_format(const struct sockaddr *sa, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        port = ntohs(s6->sin6_port);
        snprintf(buf, cap, "[%s]:%u", ip, port);
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        port = ntohs(s4->sin_port);
        snprintf(buf, cap, "%s:%u", ip, port);
    }
}

/* "a.b.c.d:port" or "[v6]:port"; the port is decimal, 0 lets the kernel pick. */
static int addr_parse(const char *text, struct sockaddr_storage *out)
{
    char host[INET6_ADDRSTRLEN];
    const char *port_text;
    size_t host_len;
    bool v6 = text[0] == '[';
    if (v6) {
        const char *end = strchr(text, ']');
        if (end == NULL || end[1] != ':')
            return -EINVAL;
        host_len = (size_t)(end - text - 1);
        text++;
        port_text = end + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL || memchr(text, ':', (size_t)(colon - text)) != NULL)
            return -EINVAL;
        host_len = (size_t)(colon - text);
        port_text = colon + 1;
    }
    if (host_len == 0 || host_len >= sizeof(host))
        return -EINVAL;
    memcpy(host, text, host_len);
    host[host_len] = '\0';

    unsigned long port = 0;
    if (*port_text == '\0' || strlen(port_text) > 5)
        return -EINVAL;
    for (const char *p = port_text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port > 65535)
        return -EINVAL;

    memset(out, 0, sizeof(*out));
    if (v6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            return -EINVAL;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)out;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
            return -EINVAL;
    }
    return 0;
}

static bool log_allow(struct agw_log_limit *limit, uint64_t now_ms)
{
    uint64_t second = now_ms / 1000;
    if (second != limit->second) {
        if (limit->suppressed > 0)
            fprintf(stderr, "iq: %lu log lines suppressed\n", limit->suppressed);
        limit->second = second;
        limit->lines = 0;
        limit->suppressed = 0;
    }
    if (limit->lines >= LOG_LINES_PER_SECOND) {
        limit->suppressed++;
        return false;
    }
    limit->lines++;
    return true;
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct agw_iq_listener *l = handle->data;
    (void)suggested;
    /* One datagram per callback (no recvmmsg), handled before the next read: one buffer. */
    buf->base = l->rx;
    buf->len = sizeof(l->rx);
}

static void on_recv(uv_udp_t *udp, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                    unsigned flags)
{
    struct agw_iq_listener *l = udp->data;
    char peer[AGW_ADDR_TEXT_MAX];
    char summary[512];
    bool log = true;

    if (nread == 0 && from == NULL)
        return; /* the socket is drained */
    if (nread < 0) {
        if (log_allow(&l->log_limit, uv_now(udp->loop)))
            fprintf(stderr, "iq: receive failed: %s\n", uv_strerror((int)nread));
        return;
    }
    addr_format(from, peer, sizeof(peer));
    log = log_allow(&l->log_limit, uv_now(udp->loop));
    if (flags & UV_UDP_PARTIAL) {
        if (log)
            fprintf(stderr, "iq from %s: datagram over %zu bytes dropped\n", peer, sizeof(l->rx));
        return;
    }

    size_t out_len = 0;
    int rc = agw_iq_answer(&l->self, buf->base, (size_t)nread, l->tx, sizeof(l->tx), &out_len,
                           summary, sizeof(summary));
    if (rc < 0 && summary[0] == '\0')
        snprintf(summary, sizeof(summary), "no answer: %s", strerror(-rc));
    if (out_len > 0) {
        uv_buf_t reply = uv_buf_init(l->tx, (unsigned)out_len);
        int sent = uv_udp_try_send(udp, &reply, 1, from);
        if (sent < 0 && log)
            fprintf(stderr, "iq to %s: send failed: %s\n", peer, uv_strerror(sent));
    }
    if (log)
        fprintf(stderr, "iq from %s (%zd bytes): %s\n", peer, nread, summary);
}

int agw_iq_listener_start(struct agw_iq_listener *l, uv_loop_t *loop, const char *listen)
{
    struct sockaddr_storage addr;
    int rc = addr_parse(listen, &addr);
    if (rc < 0)
        return rc;

    rc = uv_udp_init(loop, &l->udp);
    if (rc < 0)
        return rc;
    l->udp.data = l;
    rc = uv_udp_bind(&l->udp, (const struct sockaddr *)&addr, 0);
    if (rc < 0)
        goto fail;

    /* The kernel's view: the real port when 0 was asked for. */
    struct sockaddr_storage bound;
    int bound_len = sizeof(bound);
    rc = uv_udp_getsockname(&l->udp, (struct sockaddr *)&bound, &bound_len);
    if (rc < 0)
        goto fail;
    addr_format((const struct sockaddr *)&bound, l->local_text, sizeof(l->local_text));
    l->self.ipv6 = bound.ss_family == AF_INET6;
    if (l->self.ipv6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&bound;
        inet_ntop(AF_INET6, &s6->sin6_addr, l->self.ip, sizeof(l->self.ip));
        l->self.port = ntohs(s6->sin6_port);
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&bound;
        inet_ntop(AF_INET, &s4->sin_addr, l->self.ip, sizeof(l->self.ip));
        l->self.port = ntohs(s4->sin_port);
    }

    rc = uv_udp_recv_start(&l->udp, on_alloc, on_recv);
    if (rc < 0)
        goto fail;
    return 0;
fail:
    uv_close((uv_handle_t *)&l->udp, NULL);
    return rc;
}

void agw_iq_listener_close(struct agw_iq_listener *l, uv_close_cb close_cb)
{
    if (uv_is_closing((uv_handle_t *)&l->udp))
        return;
    uv_udp_recv_stop(&l->udp);
    uv_close((uv_handle_t *)&l->udp, close_cb);
}
