/* Check suite: the Iq client (MGC side) against a fake gateway thread on loopback. */
#include "h248/h248.h"
#include "tools/iq_client.h"
#include "tools/scenario.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TEXT_MAX 1024
#define HOLD_MAX 10
#define SEEN_MAX 256
#define PENDING_DELAY_MS 300
#define GREETING_EVERY_MS 100

enum fake_mode {
    FAKE_ECHO,          /* answer each request at once */
    FAKE_ECHO_REVERSED, /* hold up to HOLD_MAX requests, answer them last first */
    FAKE_DROP_FIRST,    /* ignore the first copy of each request */
    FAKE_PENDING,       /* Pending at once, the reply PENDING_DELAY_MS later */
    FAKE_IMM_ACK,       /* replies ask for an immediate ack */
    FAKE_GARBAGE,       /* a datagram that is not H.248, then the reply */
    FAKE_MESSAGE_ERROR, /* a message-level error descriptor instead of a reply */
    FAKE_SILENT,        /* never answers */
    FAKE_MG,            /* a minimal MG: Add, Modify, Subtract=* with canned SDP */
};

/* A gateway in a thread. Counters are atomics; texts are read after fake_stop (pthread_join). */
struct fake {
    int fd;
    uint16_t port;
    struct sockaddr_in client;
    enum fake_mode mode;
    const char *greeting;  /* a request sent at start, again every 100 ms until answered */
    unsigned greeting_min; /* copies of the greeting sent at least */
    pthread_t thread;
    atomic_bool stop;
    atomic_uint request_copies; /* request datagrams received */
    atomic_uint replies;        /* replies received (to the greeting) */
    atomic_uint acks;           /* TransactionResponseAcks received */
    char reply_text[TEXT_MAX];  /* the last reply received, raw */
    char ack_text[TEXT_MAX];    /* the last ack received, raw */
    /* private to the thread */
    uint32_t seen[SEEN_MAX];
    unsigned n_seen;
    uint32_t held_tid[HOLD_MAX];
    char held_term[HOLD_MAX][64];
    unsigned held;
    uint64_t delayed_at;
    uint32_t delayed_tid;
    /* FAKE_MG */
    bool omit_fingerprint; /* TLS Locals without a=fingerprint: a scenario check must fail */
    unsigned terms;        /* terminations made so far, all in context 7 */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void fake_send(struct fake *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fake_send(struct fake *f, const char *fmt, ...)
{
    char buf[TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof(buf))
        sendto(f->fd, buf, (size_t)n, 0, (struct sockaddr *)&f->client, sizeof(f->client));
}

static void fake_reply(struct fake *f, uint32_t tid, const char *term)
{
    fake_send(f, "!/3 [127.0.0.1]:%u P=%u{%sC=-{AV=%s}}", (unsigned)f->port, (unsigned)tid,
              f->mode == FAKE_IMM_ACK ? "IA," : "", term);
}

static bool fake_seen_before(struct fake *f, uint32_t tid)
{
    for (unsigned i = 0; i < f->n_seen; i++) {
        if (f->seen[i] == tid)
            return true;
    }
    if (f->n_seen < SEEN_MAX)
        f->seen[f->n_seen++] = tid;
    return false;
}

static void fake_flush_held(struct fake *f)
{
    while (f->held > 0) {
        f->held--;
        fake_reply(f, f->held_tid[f->held], f->held_term[f->held]);
    }
}

/* The m= protocol of the request's Local (stream 1), "?" when there is none. */
static void request_proto(const struct h248_command *cmd, char *out, size_t cap)
{
    snprintf(out, cap, "?");
    for (const struct h248_descriptor *d = cmd->descriptors; d != NULL; d = d->next) {
        if (d->kind != H248_DESC_MEDIA || d->u.media.streams == NULL ||
            !d->u.media.streams->parms.has_local)
            continue;
        const struct h248_str *l = &d->u.media.streams->parms.local;
        for (size_t i = 0; i + 2 < l->len; i++) {
            if ((i == 0 || l->ptr[i - 1] == '\n') && l->ptr[i] == 'm' && l->ptr[i + 1] == '=') {
                char line[128];
                size_t n = 0;
                while (i + n < l->len && l->ptr[i + n] != '\n' && n + 1 < sizeof(line)) {
                    line[n] = l->ptr[i + n];
                    n++;
                }
                line[n] = '\0';
                char media[32], port[16], proto[64];
                if (sscanf(line, "m=%31s %15s %63s", media, port, proto) == 3)
                    snprintf(out, cap, "%s %s", media, proto);
                return;
            }
        }
    }
}

static void fake_mg(struct fake *f, const struct h248_transaction *t)
{
    const struct h248_command *cmd = t->actions->commands;
    const struct h248_str *id = &cmd->terminations->text;
    if (cmd->kind == H248_CMD_ADD) {
        char media_proto[100], media[32], proto[64];
        request_proto(cmd, media_proto, sizeof(media_proto));
        if (sscanf(media_proto, "%31s %63s", media, proto) != 2)
            return;
        unsigned n = ++f->terms;
        bool tls = strstr(proto, "TLS") != NULL;
        fake_send(f,
                  "!/3 [127.0.0.1]:%u P=%u{C=7{A=ip/fake/%u{M{ST=1{L{\nv=0\nc=IN IP4 "
                  "127.0.0.1\nm=%s %u %s *\n%s%s}}}}}}",
                  (unsigned)f->port, (unsigned)t->id, n, media, 4000 + n, proto,
                  tls ? "a=setup:passive\n" : "",
                  tls && !f->omit_fingerprint
                      ? "a=fingerprint:sha-256 18:1D:9B:4D:3B:A5:0E:8C:B0:C6:69:93:31:D6:7E:"
                        "57:E3:D6:3F:A7:DD:5E:10:69:27:64:3F:53:9C:D5:70:39\n"
                      : "");
    } else if (cmd->kind == H248_CMD_MODIFY) {
        fake_send(f, "!/3 [127.0.0.1]:%u P=%u{C=7{MF=%.*s}}", (unsigned)f->port, (unsigned)t->id,
                  (int)id->len, id->ptr);
    } else if (cmd->kind == H248_CMD_SUBTRACT) {
        char list[512] = "";
        for (unsigned i = f->terms > 1 ? f->terms - 1 : 1; i <= f->terms; i++)
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%sS=ip/fake/%u",
                     list[0] != '\0' ? "," : "", i);
        fake_send(f, "!/3 [127.0.0.1]:%u P=%u{C=7{%s}}", (unsigned)f->port, (unsigned)t->id, list);
    }
}

static void fake_request(struct fake *f, const struct h248_transaction *t)
{
    char term[64] = "ROOT";
    const struct h248_action *a = t->actions;
    if (a != NULL && a->commands != NULL && a->commands->terminations != NULL) {
        const struct h248_str *s = &a->commands->terminations->text;
        snprintf(term, sizeof(term), "%.*s", (int)s->len, s->ptr);
    }
    switch (f->mode) {
    case FAKE_ECHO:
    case FAKE_IMM_ACK:
        fake_reply(f, t->id, term);
        break;
    case FAKE_ECHO_REVERSED:
        f->held_tid[f->held] = t->id;
        snprintf(f->held_term[f->held], sizeof(f->held_term[0]), "%s", term);
        if (++f->held == HOLD_MAX)
            fake_flush_held(f);
        break;
    case FAKE_DROP_FIRST:
        if (fake_seen_before(f, t->id))
            fake_reply(f, t->id, term);
        break;
    case FAKE_PENDING:
        if (!fake_seen_before(f, t->id)) {
            fake_send(f, "!/3 [127.0.0.1]:%u PN=%u{}", (unsigned)f->port, (unsigned)t->id);
            f->delayed_tid = t->id;
            f->delayed_at = now_ms() + PENDING_DELAY_MS;
        }
        break;
    case FAKE_GARBAGE:
        fake_send(f, "this is not H.248 \x01\x02");
        fake_reply(f, t->id, term);
        break;
    case FAKE_MESSAGE_ERROR:
        fake_send(f, "!/3 [127.0.0.1]:%u ER=400{\"message syntax\"}", (unsigned)f->port);
        break;
    case FAKE_SILENT:
        break;
    case FAKE_MG:
        fake_mg(f, t);
        break;
    }
}

static void fake_datagram(struct fake *f, const char *data, size_t len)
{
    struct h248_message *m = NULL;
    if (h248_parse_message(data, len, NULL, &m, NULL) < 0)
        return;
    bool has_request = false;
    for (const struct h248_transaction *t = m->transactions; t != NULL; t = t->next) {
        if (t->kind == H248_TRANS_REQUEST) {
            has_request = true;
            fake_request(f, t);
        } else if (t->kind == H248_TRANS_REPLY) {
            snprintf(f->reply_text, sizeof(f->reply_text), "%.*s", (int)len, data);
            atomic_fetch_add(&f->replies, 1);
        } else if (t->kind == H248_TRANS_RESPONSE_ACK) {
            snprintf(f->ack_text, sizeof(f->ack_text), "%.*s", (int)len, data);
            atomic_fetch_add(&f->acks, 1);
        }
    }
    if (has_request)
        atomic_fetch_add(&f->request_copies, 1);
    h248_message_free(m);
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    char buf[65536];
    unsigned greetings = 0;
    uint64_t next_greeting = now_ms(), idle_since = now_ms();
    while (!atomic_load(&f->stop)) {
        uint64_t now = now_ms();
        if (f->greeting != NULL && now >= next_greeting &&
            (greetings < f->greeting_min || atomic_load(&f->replies) == 0)) {
            fake_send(f, "%s", f->greeting);
            greetings++;
            next_greeting = now + GREETING_EVERY_MS;
        }
        if (f->delayed_at != 0 && now >= f->delayed_at) {
            f->delayed_at = 0;
            fake_reply(f, f->delayed_tid, "ROOT");
        }
        if (f->held > 0 && now - idle_since >= 20)
            fake_flush_held(f);
        struct pollfd pfd = {.fd = f->fd, .events = POLLIN};
        if (poll(&pfd, 1, 10) <= 0)
            continue;
        ssize_t n = recv(f->fd, buf, sizeof(buf), 0);
        if (n > 0) {
            idle_since = now_ms();
            fake_datagram(f, buf, (size_t)n);
        }
    }
    return NULL;
}

/* A client on a free loopback port and a fake gateway that knows it. */
static struct fake *fake_start(enum fake_mode mode, const char *greeting,
                               const struct iq_client_options *opts, bool client_knows_gateway,
                               struct iq_client **client)
{
    struct fake *f = calloc(1, sizeof(*f));
    ck_assert_ptr_nonnull(f);
    f->mode = mode;
    f->greeting = greeting;
    f->greeting_min = 1;
    f->fd = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_ge(f->fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(f->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t alen = sizeof(a);
    ck_assert_int_eq(getsockname(f->fd, (struct sockaddr *)&a, &alen), 0);
    f->port = ntohs(a.sin_port);

    char gw[32];
    snprintf(gw, sizeof(gw), "127.0.0.1:%u", (unsigned)f->port);
    ck_assert_int_eq(
        iq_client_open("127.0.0.1:0", client_knows_gateway ? gw : NULL, NULL, opts, client), 0);
    struct sockaddr_storage local;
    ck_assert_int_eq(iq_client_local_addr(*client, &local), 0);
    memcpy(&f->client, &local, sizeof(f->client));
    return f;
}

static void fake_run(struct fake *f)
{
    ck_assert_int_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    close(f->fd);
}

static unsigned client_port(struct iq_client *c)
{
    struct sockaddr_storage local;
    iq_client_local_addr(c, &local);
    return ntohs(((struct sockaddr_in *)&local)->sin_port);
}

/* Waits up to 2 s for *counter to reach at least n. */
static bool wait_for(atomic_uint *counter, unsigned n)
{
    for (int i = 0; i < 200; i++) {
        if (atomic_load(counter) >= n)
            return true;
        usleep(10000);
    }
    return false;
}

static const char registration[] =
    "!/3 [127.0.0.1]:2944 T=77{C=-{SC=ROOT{SV{MT=RS,RE=\"901\",V=3,PF=threegiq/1}}}}";

/* Registers a fake with how; returns the bytes of our answer as the fake received them. */
static void register_with(const struct iq_register_reply *how, char *answer, size_t cap,
                          unsigned *version_after, unsigned *client_port_out)
{
    struct iq_client *c = NULL;
    struct fake *f = fake_start(FAKE_ECHO, registration, NULL, false, &c);
    fake_run(f);
    struct iq_event ev;
    struct sockaddr_storage gw;
    ck_assert_int_eq(iq_client_wait_registration(c, 3000, how, &gw, &ev), 0);
    ck_assert_int_eq(ev.kind, IQ_EVENT_REQUEST);
    ck_assert_ptr_nonnull(ev.msg);
    ck_assert_uint_eq(ev.msg->transactions->id, 77);
    ck_assert_int_eq(ntohs(((struct sockaddr_in *)&gw)->sin_port), f->port);
    iq_event_release(&ev);
    ck_assert(wait_for(&f->replies, 1));
    fake_stop(f);
    snprintf(answer, cap, "%s", f->reply_text);
    *version_after = iq_client_version(c);
    *client_port_out = client_port(c);
    iq_client_close(c);
    free(f);
}

START_TEST(registration_answered)
{
    char got[TEXT_MAX], want[TEXT_MAX];
    unsigned version = 0, port = 0;
    register_with(NULL, got, sizeof(got), &version, &port);
    snprintf(want, sizeof(want), "!/3 [127.0.0.1]:%u P=77{C=-{SC=ROOT{SV{V=3}}}}", port);
    ck_assert_str_eq(got, want);
    ck_assert_uint_eq(version, 3);
}
END_TEST

START_TEST(registration_lowered_version)
{
    struct iq_register_reply how = {.version = 2};
    char got[TEXT_MAX], want[TEXT_MAX];
    unsigned version = 0, port = 0;
    register_with(&how, got, sizeof(got), &version, &port);
    snprintf(want, sizeof(want), "!/3 [127.0.0.1]:%u P=77{C=-{SC=ROOT{SV{V=2}}}}", port);
    ck_assert_str_eq(got, want);
    ck_assert_uint_eq(version, 2);
}
END_TEST

START_TEST(registration_redirect)
{
    struct iq_register_reply how = {.redirect_mid = "[192.0.2.7]:2944"};
    char got[TEXT_MAX], want[TEXT_MAX];
    unsigned version = 0, port = 0;
    register_with(&how, got, sizeof(got), &version, &port);
    snprintf(want, sizeof(want), "!/3 [127.0.0.1]:%u P=77{C=-{SC=ROOT{SV{MG=[192.0.2.7]:2944}}}}",
             port);
    ck_assert_str_eq(got, want);
}
END_TEST

START_TEST(registration_error)
{
    struct iq_register_reply how = {.error_code = 403, .error_text = "not \"you\""};
    char got[TEXT_MAX], want[TEXT_MAX];
    unsigned version = 0, port = 0;
    register_with(&how, got, sizeof(got), &version, &port);
    snprintf(want, sizeof(want), "!/3 [127.0.0.1]:%u P=77{C=-{SC=ROOT{ER=403{\"not 'you'\"}}}}",
             port);
    ck_assert_str_eq(got, want);
}
END_TEST

START_TEST(registration_times_out)
{
    struct iq_client *c = NULL;
    struct fake *f = fake_start(FAKE_SILENT, NULL, NULL, false, &c);
    fake_run(f);
    uint64_t start = now_ms();
    ck_assert_int_eq(iq_client_wait_registration(c, 200, NULL, NULL, NULL), -ETIMEDOUT);
    ck_assert_uint_ge(now_ms() - start, 190);
    fake_stop(f);
    iq_client_close(c);
    free(f);
}
END_TEST

static const struct iq_client_options fast = {.retransmit_ms = 100, .max_tries = 5};

START_TEST(retransmitted_after_loss)
{
    struct iq_client *c = NULL;
    struct fake *f = fake_start(FAKE_DROP_FIRST, NULL, &fast, true, &c);
    fake_run(f);
    struct iq_reply r;
    const char text[] = "C=-{AV=ROOT{AT{}}}";
    ck_assert_int_eq(iq_client_request_text(c, text, strlen(text), 0, &r, NULL), 0);
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(r.trans);
    ck_assert_int_eq(r.trans->kind, H248_TRANS_REPLY);
    ck_assert_uint_eq(r.trans->id, r.tid);
    ck_assert_uint_eq(r.sends, 2);
    ck_assert_ptr_null(iq_reply_error(&r));
    iq_reply_release(&r);
    struct iq_client_stats st;
    iq_client_get_stats(c, &st);
    ck_assert_uint_eq(st.retransmissions, 1);
    fake_stop(f);
    ck_assert_uint_eq(atomic_load(&f->request_copies), 2);
    iq_client_close(c);
    free(f);
}
END_TEST

START_TEST(timeout_after_schedule)
{
    struct iq_client_options o = {.retransmit_ms = 20, .max_tries = 3};
    struct iq_client *c = NULL;
    struct fake *f = fake_start(FAKE_SILENT, NULL, &o, true, &c);
    fake_run(f);
    struct iq_reply r;
    const char text[] = "C=-{AV=ROOT{AT{}}}";
    uint64_t start = now_ms();
    ck_assert_int_eq(iq_client_request_text(c, text, strlen(text), 0, &r, NULL), -ETIMEDOUT);
    uint64_t took = now_ms() - start;
    /* 20 + 40 + 80 ms: three copies, then the last timer runs out. */
    ck_assert_uint_ge(took, 130);
    ck_assert_uint_lt(took, 1000);
    ck_assert_ptr_null(r.msg);
    fake_stop(f);
    ck_assert_uint_eq(atomic_load(&f->request_copies), 3);
    iq_client_close(c);
    free(f);
}
END_TEST

START_TEST(pending_then_reply)
{
    struct iq_client *c = NULL;
    struct fake *f = fake_start(FAKE_PENDING, NULL, &fast, true, &c);
    fake_run(f);
    struct iq_reply r;
    const char text[] = "T=1{C=-{AV=ROOT{AT{}}}}";
    uint64_t start = now_ms();
    /* The caller's 100 ms would have expired: a Pending extends the wait. */
    ck_assert_int_eq(iq_client_request_text(c, text, strlen(text), 100, &r, NULL), 0);
    ck_assert_uint_ge(now_ms() - start, PENDING_DELAY_MS - 10);
    ck_assert_uint_eq(r.pendings, 1);
    ck_assert_uint_eq(r.sends, 1); /* no retransmission after the Pending */
    ck_assert_ptr_nonnull(r.trans);
    ck_assert_uint_eq(r.trans->id, r.tid);
    iq_reply_release(&r);
    fake_stop(f);
    ck_assert_uint_eq(atomic_load(&f->request_copies), 1);
    iq_client_close(c);
    free(f);
}
END_TEST

START_TEST(pending_then_silence)
{
    struct iq_client_options o = {.retransmit_ms = 200, .pending_timeout_ms = 100};
    struct iq_client *c = NULL;
    struct fake *f = fake_start(FAKE_SILENT, NULL, &o, true, &c);
    fake_run(f);
    struct h248_message *msg = NULL;
    const char text[] = "C=-{AV=ROOT{AT{}}}";
    ck_assert_int_eq(iq_client_parse_text(c, text, strlen(text), &msg, NULL), 0);
    uint32_t tid = 0;
    ck_assert_int_eq(iq_client_send_request(c, msg, 0, &tid), 0);
    /* A Pending, then silence: the wait ends pending_timeout_ms later. */
    char pn[128];
    int n =
        snprintf(pn, sizeof(pn), "!/3 [127.0.0.1]:%u PN=%u{}", (unsigned)f->port, (unsigned)tid);
    sendto(f->fd, pn, (size_t)n, 0, (struct sockaddr *)&f->client, sizeof(f->client));
    uint64_t start = now_ms();
    int status = 1;
    while (iq_client_outstanding(c) > 0 && now_ms() - start < 3000) {
        if (iq_client_poll_replies(c, 100, NULL, NULL) > 0)
            status = -ETIMEDOUT;
    }
    ck_assert_int_eq(status, -ETIMEDOUT);
    ck_assert_uint_eq(iq_client_outstanding(c), 0);
    struct iq_client_stats st;
    iq_client_get_stats(c, &st);
    ck_assert_uint_eq(st.pendings, 1);
    ck_assert_uint_eq(st.timeouts, 1);
    ck_assert_uint_eq(st.retransmissions, 0);
    h248_message_free(msg);
    fake_stop(f);
    iq_client_close(c);
    free(f);
}
END_TEST

START_TEST(imm_ack_answered)
{
    struct iq_client *c = NULL;
    struct fake *f = fake_start(FAKE_IMM_ACK, NULL, &fast, true, &c);
    fake_run(f);
    struct iq_reply r;
    const char text[] = "C=-{AV=ROOT{AT{}}}";
    ck_assert_int_eq(iq_client_request_text(c, text, strlen(text), 0, &r, NULL), 0);
    ck_assert(r.trans->imm_ack_required);
    uint32_t tid = r.tid;
    iq_reply_release(&r);
    ck_assert(wait_for(&f->acks, 1));
    fake_stop(f);
    char want[TEXT_MAX];
    snprintf(want, sizeof(want), "!/3 [127.0.0.1]:%u K{%u}", client_port(c), (unsigned)tid);
    ck_assert_str_eq(f->ack_text, want);
    iq_client_close(c);
    free(f);
}
END_TEST

START_TEST(garbage_reported)
{
    struct iq_client *c = NULL;
    struct fake *f = fake_start(FAKE_GARBAGE, NULL, &fast, true, &c);
    fake_run(f);
    struct iq_reply r;
    const char text[] = "C=-{AV=ROOT{AT{}}}";
    ck_assert_int_eq(iq_client_request_text(c, text, strlen(text), 0, &r, NULL), 0);
    ck_assert_ptr_null(iq_reply_error(&r));
    ck_assert_uint_eq(r.sends, 1);
    iq_reply_release(&r);
    struct iq_event ev;
    ck_assert_int_eq(iq_client_recv(c, 0, &ev), 0);
    ck_assert_int_eq(ev.kind, IQ_EVENT_GARBAGE);
    ck_assert_ptr_null(ev.msg);
    ck_assert_uint_eq(ev.error.code, 400);
    ck_assert_uint_eq(ev.len, strlen("this is not H.248 \x01\x02"));
    iq_event_release(&ev);
    ck_assert_int_eq(iq_client_recv(c, 0, &ev), -ETIMEDOUT);
    struct iq_client_stats st;
    iq_client_get_stats(c, &st);
    ck_assert_uint_eq(st.garbage, 1);
    /* and the client goes on */
    ck_assert_int_eq(iq_client_request_text(c, text, strlen(text), 0, &r, NULL), 0);
    iq_reply_release(&r);
    fake_stop(f);
    iq_client_close(c);
    free(f);
}
END_TEST

START_TEST(message_error_is_the_reply)
{
    struct iq_client *c = NULL;
    struct fake *f = fake_start(FAKE_MESSAGE_ERROR, NULL, &fast, true, &c);
    fake_run(f);
    struct iq_reply r;
    const char text[] = "C=-{AV=ROOT{AT{}}}";
    ck_assert_int_eq(iq_client_request_text(c, text, strlen(text), 0, &r, NULL), 0);
    ck_assert_ptr_null(r.trans);
    const struct h248_error_desc *e = iq_reply_error(&r);
    ck_assert_ptr_nonnull(e);
    ck_assert_uint_eq(e->code, 400);
    ck_assert_int_eq((int)e->text.len, 14);
    ck_assert(memcmp(e->text.ptr, "message syntax", 14) == 0);
    iq_reply_release(&r);
    fake_stop(f);
    iq_client_close(c);
    free(f);
}
END_TEST

struct pipeline {
    uint32_t first_tid;
    unsigned replies, bad;
    bool seen[100];
};

static void pipeline_reply(void *arg, const struct iq_reply *r)
{
    struct pipeline *p = arg;
    p->replies++;
    uint32_t i = r->tid - p->first_tid;
    char want[32];
    snprintf(want, sizeof(want), "ip/test/%u", (unsigned)i);
    const struct h248_termination_id *t = r->status == 0 && r->trans != NULL &&
                                                  r->trans->actions != NULL &&
                                                  r->trans->actions->commands != NULL
                                              ? r->trans->actions->commands->terminations
                                              : NULL;
    if (i >= 100 || p->seen[i] || t == NULL || r->trans->id != r->tid ||
        t->text.len != strlen(want) || memcmp(t->text.ptr, want, t->text.len) != 0) {
        p->bad++;
        return;
    }
    p->seen[i] = true;
}

START_TEST(pipelined_hundred)
{
    struct iq_client *c = NULL;
    struct fake *f = fake_start(FAKE_ECHO_REVERSED, NULL, NULL, true, &c);
    fake_run(f);
    struct pipeline p;
    memset(&p, 0, sizeof(p));
    for (unsigned i = 0; i < 100; i++) {
        char text[64];
        int n = snprintf(text, sizeof(text), "C=-{AV=ip/test/%u{AT{}}}", i);
        struct h248_message *msg = NULL;
        ck_assert_int_eq(iq_client_parse_text(c, text, (size_t)n, &msg, NULL), 0);
        uint32_t tid = 0;
        ck_assert_int_eq(iq_client_send_request(c, msg, 0, &tid), 0);
        if (i == 0)
            p.first_tid = tid;
        ck_assert_uint_eq(tid, p.first_tid + i); /* consecutive: the mapping above relies on it */
        h248_message_free(msg);
    }
    ck_assert_uint_eq(iq_client_outstanding(c), 100);
    uint64_t start = now_ms();
    while (iq_client_outstanding(c) > 0 && now_ms() - start < 5000)
        ck_assert_int_ge(iq_client_poll_replies(c, 100, pipeline_reply, &p), 0);
    ck_assert_uint_eq(p.replies, 100);
    ck_assert_uint_eq(p.bad, 0);
    fake_stop(f);
    ck_assert_uint_eq(atomic_load(&f->request_copies), 100);
    iq_client_close(c);
    free(f);
}
END_TEST

START_TEST(table_full)
{
    struct iq_client_options o = {.max_outstanding = 4};
    struct iq_client *c = NULL;
    struct fake *f = fake_start(FAKE_SILENT, NULL, &o, true, &c);
    fake_run(f);
    const char text[] = "C=-{AV=ROOT{AT{}}}";
    struct h248_message *msg = NULL;
    ck_assert_int_eq(iq_client_parse_text(c, text, strlen(text), &msg, NULL), 0);
    uint32_t tid;
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(iq_client_send_request(c, msg, 0, &tid), 0);
    ck_assert_int_eq(iq_client_send_request(c, msg, 0, &tid), -ENOBUFS);
    h248_message_free(msg);
    fake_stop(f);
    iq_client_close(c); /* frees the four in flight */
    free(f);
}
END_TEST

static const char notify[] = "!/3 [127.0.0.1]:2944 T=5001{C=4{N=ip/access/5{OE=401{"
                             "20240612T09153012:nt/netfail{cs=\"TLS fingerprint mismatch\"}}}}}";

START_TEST(notify_answered_and_queued_once)
{
    struct iq_client *c = NULL;
    struct fake *f = fake_start(FAKE_ECHO, notify, NULL, true, &c);
    f->greeting_min = 2; /* the second copy is a retransmission */
    fake_run(f);
    struct iq_event ev;
    ck_assert_int_eq(iq_client_recv(c, 2000, &ev), 0);
    ck_assert_int_eq(ev.kind, IQ_EVENT_REQUEST);
    ck_assert_int_eq(ev.msg->transactions->actions->commands->kind, H248_CMD_NOTIFY);
    iq_event_release(&ev);
    /* The client answers only while it waits: the retransmission comes during this wait. */
    ck_assert_int_eq(iq_client_recv(c, 400, &ev), -ETIMEDOUT);
    ck_assert(wait_for(&f->replies, 2));
    fake_stop(f);
    char want[TEXT_MAX];
    snprintf(want, sizeof(want), "!/3 [127.0.0.1]:%u P=5001{C=4{N=ip/access/5}}", client_port(c));
    ck_assert_str_eq(f->reply_text, want);
    struct iq_client_stats st;
    iq_client_get_stats(c, &st);
    ck_assert_uint_eq(st.requests_answered, 2);
    iq_client_close(c);
    free(f);
}
END_TEST

START_TEST(foreign_sender_ignored)
{
    struct iq_client *c = NULL;
    struct fake *f = fake_start(FAKE_ECHO, NULL, NULL, true, &c);
    /* Another socket, not the gateway, sends a Notify: neither answered nor queued. */
    int other = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_ge(other, 0);
    sendto(other, notify, strlen(notify), 0, (struct sockaddr *)&f->client, sizeof(f->client));
    struct iq_event ev;
    ck_assert_int_eq(iq_client_recv(c, 200, &ev), -ETIMEDOUT);
    struct iq_client_stats st;
    iq_client_get_stats(c, &st);
    ck_assert_uint_eq(st.foreign, 1);
    ck_assert_uint_eq(st.requests_answered, 0);
    close(other);
    close(f->fd);
    iq_client_close(c);
    free(f);
}
END_TEST

START_TEST(text_shapes)
{
    struct iq_client *c = NULL;
    ck_assert_int_eq(
        iq_client_open("127.0.0.1:0", "127.0.0.1:9", "<mgc.example.net>:2947", NULL, &c), 0);
    struct h248_message *m = NULL;
    struct h248_parse_error err;
    /* actions only: wrapped in one transaction */
    const char actions[] = "; a comment\nContext = $ {Add = $}, C=-{AV=ROOT{AT{}}}";
    ck_assert_int_eq(iq_client_parse_text(c, actions, strlen(actions), &m, &err), 0);
    ck_assert_int_eq(m->transactions->kind, H248_TRANS_REQUEST);
    ck_assert_ptr_null(m->transactions->next);
    ck_assert_ptr_nonnull(m->transactions->actions->next);
    ck_assert_int_eq(m->mid.kind, H248_MID_DOMAIN);
    h248_message_free(m);
    /* transactions: the header is added */
    const char trans[] = "T=5{C=-{AV=ROOT{AT{}}}} T=6{C=-{AV=ROOT{AT{}}}}";
    ck_assert_int_eq(iq_client_parse_text(c, trans, strlen(trans), &m, &err), 0);
    ck_assert_ptr_nonnull(m->transactions->next);
    h248_message_free(m);
    /* a whole message is taken as it is */
    ck_assert_int_eq(iq_client_parse_text(c, notify, strlen(notify), &m, &err), 0);
    ck_assert_int_eq(m->mid.kind, H248_MID_IPV4);
    h248_message_free(m);
    /* an error points into what the caller wrote */
    const char bad[] = "C=-{AV=ROOT";
    ck_assert_int_lt(iq_client_parse_text(c, bad, strlen(bad), &m, &err), 0);
    ck_assert_ptr_null(m);
    ck_assert_uint_ne(err.code, 0);
    ck_assert_uint_le(err.offset, strlen(bad) + 1);
    /* a reply cannot be sent as a request */
    struct iq_reply r;
    const char reply[] = "P=5{C=-{AV=ROOT}}";
    ck_assert_int_eq(iq_client_request_text(c, reply, strlen(reply), 0, &r, &err), -EINVAL);
    iq_client_close(c);
}
END_TEST

START_TEST(bad_arguments)
{
    struct iq_client *c = NULL;
    ck_assert_int_eq(iq_client_open("127.0.0.1", NULL, NULL, NULL, &c), -EINVAL);
    ck_assert_int_eq(iq_client_open("::1:2947", NULL, NULL, NULL, &c), -EINVAL);
    ck_assert_int_eq(iq_client_open("127.0.0.1:65536", NULL, NULL, NULL, &c), -EINVAL);
    ck_assert_int_eq(iq_client_open("127.0.0.1:0", NULL, "not a mid{", NULL, &c), -EINVAL);
    ck_assert_int_eq(iq_client_open("127.0.0.1:0", "[::1]:2944", NULL, NULL, &c), -EAFNOSUPPORT);
    struct sockaddr_storage a;
    socklen_t len;
    ck_assert_int_eq(iq_parse_addr("[::1]:2944", &a, &len), 0);
    ck_assert_int_eq(a.ss_family, AF_INET6);
    char buf[64];
    ck_assert_str_eq(iq_format_addr(&a, buf, sizeof(buf)), "[::1]:2944");
}
END_TEST

START_TEST(ipv6_loopback)
{
    struct iq_client *c = NULL;
    int rc = iq_client_open("[::1]:0", NULL, NULL, NULL, &c);
    if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT)
        return; /* no IPv6 on this host */
    ck_assert_int_eq(rc, 0);
    struct sockaddr_storage local;
    iq_client_local_addr(c, &local);
    int fd = socket(AF_INET6, SOCK_DGRAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in6 me = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&me, sizeof(me)), 0);
    sendto(fd, registration, strlen(registration), 0, (struct sockaddr *)&local,
           sizeof(struct sockaddr_in6));
    ck_assert_int_eq(iq_client_wait_registration(c, 2000, NULL, NULL, NULL), 0);
    char buf[512];
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    ck_assert_int_eq(poll(&pfd, 1, 2000), 1);
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    char want[128];
    snprintf(want, sizeof(want), "!/3 [::1]:%u P=77{C=-{SC=ROOT{SV{V=3}}}}",
             (unsigned)ntohs(((struct sockaddr_in6 *)&local)->sin6_port));
    ck_assert_str_eq(buf, want);
    close(fd);
    iq_client_close(c);
}
END_TEST

/* Runs flow against a fake MG; returns scenario_run's result and its output. */
static int run_scenario(const char *flow, bool omit_fingerprint, char *out, size_t cap)
{
    struct iq_client *c = NULL;
    struct fake *f = fake_start(FAKE_MG, NULL, &fast, true, &c);
    f->omit_fingerprint = omit_fingerprint;
    fake_run(f);
    FILE *mem = fmemopen(out, cap, "w");
    ck_assert_ptr_nonnull(mem);
    struct scenario_options o = {.out = mem};
    int rc = scenario_run(c, flow, &o);
    fclose(mem);
    fake_stop(f);
    iq_client_close(c);
    free(f);
    return rc;
}

START_TEST(scenario_passes)
{
    char out[4096];
    ck_assert_int_eq(run_scenario("msrp-orig", false, out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "msrp-orig 1/5 reserve core: ok"));
    ck_assert_ptr_nonnull(strstr(out, "context 7, ip/fake/2 at 127.0.0.1 port 4002 setup:passive"));
    ck_assert_ptr_nonnull(strstr(out, "msrp-orig 5/5 release: ok"));
    ck_assert_ptr_null(strstr(out, "FAILED"));
}
END_TEST

START_TEST(scenario_names_failed_check)
{
    char out[4096];
    ck_assert_int_eq(run_scenario("bfcp-term", true, out, sizeof(out)), 2);
    ck_assert_ptr_nonnull(strstr(out, "bfcp-term 1/4 reserve access: FAILED: Local has no "
                                      "a=fingerprint:sha-256"));
    ck_assert_ptr_nonnull(strstr(out, "bfcp-term cleanup: released context 7"));
    ck_assert_ptr_null(strstr(out, "2/4"));
    ck_assert_int_eq(run_scenario("no-such-flow", false, out, sizeof(out)), -EINVAL);
}
END_TEST

static Suite *iq_client_suite(void)
{
    Suite *s = suite_create("iq_client");
    TCase *reg = tcase_create("registration");
    tcase_add_test(reg, registration_answered);
    tcase_add_test(reg, registration_lowered_version);
    tcase_add_test(reg, registration_redirect);
    tcase_add_test(reg, registration_error);
    tcase_add_test(reg, registration_times_out);
    tcase_add_test(reg, ipv6_loopback);
    suite_add_tcase(s, reg);

    TCase *tr = tcase_create("transactions");
    tcase_add_test(tr, retransmitted_after_loss);
    tcase_add_test(tr, timeout_after_schedule);
    tcase_add_test(tr, pending_then_reply);
    tcase_add_test(tr, pending_then_silence);
    tcase_add_test(tr, imm_ack_answered);
    tcase_add_test(tr, garbage_reported);
    tcase_add_test(tr, message_error_is_the_reply);
    tcase_add_test(tr, pipelined_hundred);
    tcase_add_test(tr, table_full);
    suite_add_tcase(s, tr);

    TCase *in = tcase_create("inbound");
    tcase_add_test(in, notify_answered_and_queued_once);
    tcase_add_test(in, foreign_sender_ignored);
    tcase_add_test(in, text_shapes);
    tcase_add_test(in, bad_arguments);
    suite_add_tcase(s, in);

    TCase *sc = tcase_create("scenario");
    tcase_add_test(sc, scenario_passes);
    tcase_add_test(sc, scenario_names_failed_check);
    suite_add_tcase(s, sc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(iq_client_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
