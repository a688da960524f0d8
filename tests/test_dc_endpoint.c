/* Check suite for tools/dc_endpoint.c: two data-channel endpoints on loopback in one dc_net, in
   plain UDP/SCTP and over DTLS: set-up, DCEP both ways, message sizes and kinds, channel types,
   close by stream reset, refused OPENs, backpressure, fingerprints right and wrong. */
#include "sctp/dcep.h"
#include "tools/dc_endpoint.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WAIT_MS 5000

/* Each test runs in its own process (Check forks), so each starts and stops its own dc_net. */
static struct dc_net *net;

static void setup(void)
{
    ck_assert_int_eq(dc_net_start(&net), 0);
}

static void teardown(void)
{
    dc_net_stop(net);
    net = NULL;
}

static struct sockaddr_in loopback(uint16_t port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sin;
}

static void fill_pattern(uint8_t *b, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (uint8_t)x;
    }
}

/* The next event, which must be of `type`. */
static void expect(struct dc_endpoint *ep, enum dc_event_type type, struct dc_event *ev)
{
    ck_assert_int_eq(dc_endpoint_next_event(ep, ev, WAIT_MS), 0);
    ck_assert_msg(ev->type == type, "event %d (error %d), expected %d", ev->type, ev->error, type);
}

static void expect_nothing(struct dc_endpoint *ep, int ms)
{
    struct dc_event ev;
    int rc = dc_endpoint_next_event(ep, &ev, ms);
    ck_assert_msg(rc == -ETIMEDOUT, "unexpected event %d", rc == 0 ? (int)ev.type : rc);
}

/* ---- pairs ---- */

struct pair {
    struct dc_endpoint *c, *s; /* DTLS client (even stream ids), server (odd) */
    struct agw_tls_identity *cid, *sid;
};

static struct dc_endpoint *make(const struct dc_endpoint_config *cfg)
{
    struct dc_endpoint *ep = NULL;
    ck_assert_int_eq(dc_endpoint_new(net, cfg, &ep), 0);
    ck_assert_ptr_nonnull(ep);
    ck_assert_uint_ne(dc_endpoint_port(ep), 0);
    return ep;
}

static void connect_to(struct dc_endpoint *from, struct dc_endpoint *to)
{
    struct sockaddr_in sin = loopback(dc_endpoint_port(to));
    ck_assert_int_eq(dc_endpoint_connect(from, (struct sockaddr *)&sin, sizeof(sin)), 0);
}

/* Plain UDP/SCTP: the client connects, the server learns its remote from the first datagram. */
static void plain_pair(struct pair *p)
{
    memset(p, 0, sizeof(*p));
    struct dc_endpoint_config cc = {.role = AGW_TLS_CLIENT}, sc = {.role = AGW_TLS_SERVER};
    p->c = make(&cc);
    p->s = make(&sc);
    connect_to(p->c, p->s);
    ck_assert_int_eq(dc_endpoint_wait_up(p->c, WAIT_MS), 0);
    ck_assert_int_eq(dc_endpoint_wait_up(p->s, WAIT_MS), 0);
}

static void free_pair(struct pair *p)
{
    dc_endpoint_free(p->c);
    dc_endpoint_free(p->s);
    agw_tls_identity_unref(p->cid);
    agw_tls_identity_unref(p->sid);
    memset(p, 0, sizeof(*p));
}

/* Opens a channel from `from` and checks what `to` learns of it. */
static uint16_t open_checked(struct dc_endpoint *from, struct dc_endpoint *to,
                             const struct dc_channel_spec *spec)
{
    uint16_t stream = 0xffff;
    ck_assert_int_eq(dc_endpoint_open_channel(from, spec, &stream), 0);
    ck_assert_int_eq(dc_endpoint_wait_open(from, stream, WAIT_MS), 0);
    struct dc_event ev;
    expect(to, DC_EVENT_CHANNEL_OPEN, &ev);
    ck_assert_uint_eq(ev.stream, stream);
    ck_assert_str_eq(ev.label, spec->label);
    ck_assert_str_eq(ev.protocol, spec->protocol);
    ck_assert_uint_eq(ev.label_len, strlen(spec->label));
    ck_assert_uint_eq(ev.channel_type, spec->channel_type);
    ck_assert_uint_eq(ev.reliability, spec->reliability);
    ck_assert_uint_eq(ev.priority, spec->priority);
    dc_event_clear(&ev);
    ck_assert_ptr_null(ev.label);
    return stream;
}

/* Sends one message and checks that it arrives whole on the same stream with the right PPID. */
static void roundtrip(struct dc_endpoint *from, struct dc_endpoint *to, uint16_t stream,
                      bool binary, size_t len, uint32_t seed)
{
    uint8_t *msg = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(msg);
    fill_pattern(msg, len, seed);
    ck_assert_int_eq(dc_endpoint_send(from, stream, binary, msg, len, WAIT_MS), 0);
    struct dc_event ev;
    expect(to, DC_EVENT_MESSAGE, &ev);
    ck_assert_uint_eq(ev.stream, stream);
    ck_assert_uint_eq(ev.len, len);
    ck_assert(ev.binary == binary);
    uint32_t ppid = len == 0 ? (binary ? DCEP_PPID_BINARY_EMPTY : DCEP_PPID_STRING_EMPTY)
                             : (binary ? DCEP_PPID_BINARY : DCEP_PPID_STRING);
    ck_assert_uint_eq(ev.ppid, ppid);
    ck_assert_ptr_nonnull(ev.data);
    ck_assert_int_eq(memcmp(ev.data, msg, len), 0);
    dc_event_clear(&ev);
    free(msg);
}

static const size_t sizes[] = {0, 1, 16384, 65536};

static const struct dc_channel_spec chat = {
    .channel_type = DCEP_CHANNEL_RELIABLE, .priority = 256, .label = "chat", .protocol = "msrp"};
static const struct dc_channel_spec files = {
    .channel_type = DCEP_CHANNEL_RELIABLE, .label = "files", .protocol = ""};

/* Channels opened from both sides (ids of each side's parity), every message size both ways. */
static void exercise(struct pair *p)
{
    uint16_t a = open_checked(p->c, p->s, &chat);
    uint16_t b = open_checked(p->s, p->c, &files);
    ck_assert_uint_eq(a % 2, 0);
    ck_assert_uint_eq(b % 2, 1);
    uint32_t seed = 1;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        for (int binary = 0; binary < 2; binary++) {
            roundtrip(p->c, p->s, a, binary, sizes[i], seed++);
            roundtrip(p->s, p->c, a, binary, sizes[i], seed++);
            roundtrip(p->c, p->s, b, binary, sizes[i], seed++);
            roundtrip(p->s, p->c, b, binary, sizes[i], seed++);
        }
    }
    /* Above the peer's max-message-size (65536 when the SDP says nothing). */
    static uint8_t big[65537];
    ck_assert_int_eq(dc_endpoint_send(p->c, a, true, big, sizeof(big), WAIT_MS), -EMSGSIZE);
    struct dc_endpoint_stats st;
    ck_assert_int_eq(dc_endpoint_stats(p->c, &st), 0);
    ck_assert_uint_eq(st.messages_out, 16);
    ck_assert_uint_eq(st.messages_in, 16);
    ck_assert_uint_eq(st.bytes_out, 4 * (1 + 16384 + 65536));
    ck_assert_uint_eq(st.messages_dropped, 0);
    ck_assert_uint_eq(st.dcep_errors, 0);
    ck_assert_uint_gt(st.datagrams_in, 100);
}

/* ---- plain mode ---- */

START_TEST(plain_channels_and_messages)
{
    struct pair p;
    plain_pair(&p);
    exercise(&p);
    struct dc_endpoint_stats st;
    ck_assert_int_eq(dc_endpoint_stats(p.s, &st), 0);
    ck_assert_uint_eq(st.dtls_datagrams_in, 0);
    char text[64];
    ck_assert_int_eq(dc_endpoint_failure(p.c, text, sizeof(text)), 0);
    ck_assert_str_eq(text, "");
    free_pair(&p);
}
END_TEST

/* Unordered and partially reliable channel types travel in the OPEN and set the SCTP flags. */
START_TEST(plain_channel_types)
{
    struct pair p;
    plain_pair(&p);
    struct dc_channel_spec u = {
        .channel_type = DCEP_CHANNEL_RELIABLE_UNORDERED, .label = "unordered", .protocol = "x"};
    struct dc_channel_spec pr = {.channel_type = DCEP_CHANNEL_PARTIAL_RELIABLE_REXMIT_UNORDERED,
                                 .reliability = 3,
                                 .label = "pr",
                                 .protocol = ""};
    struct dc_channel_spec ttl = {.channel_type = DCEP_CHANNEL_PARTIAL_RELIABLE_TIMED,
                                  .reliability = 1500,
                                  .priority = 128,
                                  .label = "ttl",
                                  .protocol = "t"};
    uint16_t su = open_checked(p.c, p.s, &u);
    uint16_t spr = open_checked(p.s, p.c, &pr);
    uint16_t sttl = open_checked(p.c, p.s, &ttl);
    uint8_t msg[3000];
    fill_pattern(msg, sizeof(msg), 9);
    struct {
        struct dc_endpoint *from, *to;
        uint16_t stream;
        bool unordered;
    } cases[] = {
        {p.c, p.s, su, true}, {p.s, p.c, su, true}, {p.s, p.c, spr, true}, {p.c, p.s, sttl, false}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_int_eq(
            dc_endpoint_send(cases[i].from, cases[i].stream, true, msg, sizeof(msg), WAIT_MS), 0);
        struct dc_event ev;
        expect(cases[i].to, DC_EVENT_MESSAGE, &ev);
        ck_assert_uint_eq(ev.stream, cases[i].stream);
        ck_assert(ev.unordered == cases[i].unordered);
        ck_assert_uint_eq(ev.len, sizeof(msg));
        ck_assert_int_eq(memcmp(ev.data, msg, sizeof(msg)), 0);
        dc_event_clear(&ev);
    }
    free_pair(&p);
}
END_TEST

/* Closing resets the stream: the peer sees the close, answers with its own reset, and the closer
   sees that too; the channel takes no more messages, and the id can be used again. */
START_TEST(plain_close_by_reset)
{
    struct pair p;
    plain_pair(&p);
    uint16_t a = open_checked(p.c, p.s, &chat);
    roundtrip(p.c, p.s, a, false, 10, 1);
    ck_assert_int_eq(dc_endpoint_close_channel(p.c, a), 0);
    ck_assert_int_eq(dc_endpoint_send(p.c, a, false, "x", 1, WAIT_MS), -EPIPE);
    ck_assert_int_eq(dc_endpoint_close_channel(p.c, a), -EPIPE);
    struct dc_event ev;
    expect(p.s, DC_EVENT_CHANNEL_CLOSED, &ev);
    ck_assert_uint_eq(ev.stream, a);
    ck_assert(ev.by_peer);
    ck_assert_int_eq(ev.error, 0);
    expect(p.c, DC_EVENT_CHANNEL_CLOSED, &ev);
    ck_assert_uint_eq(ev.stream, a);
    ck_assert(!ev.by_peer);
    ck_assert_int_eq(dc_endpoint_send(p.s, a, false, "x", 1, WAIT_MS), -EPIPE);
    ck_assert_int_eq(dc_endpoint_wait_open(p.s, a, 0), -ECONNRESET);

    /* The server closes one of its own: the same from the other side. */
    uint16_t b = open_checked(p.s, p.c, &files);
    ck_assert_int_eq(dc_endpoint_close_channel(p.s, b), 0);
    expect(p.c, DC_EVENT_CHANNEL_CLOSED, &ev);
    ck_assert_uint_eq(ev.stream, b);
    ck_assert(ev.by_peer);
    expect(p.s, DC_EVENT_CHANNEL_CLOSED, &ev);
    ck_assert(!ev.by_peer);

    /* Ids come back once both directions are reset. */
    usleep(200 * 1000);
    uint16_t again = open_checked(p.c, p.s, &chat);
    ck_assert_uint_eq(again, a);
    roundtrip(p.s, p.c, again, true, 100, 2);
    free_pair(&p);
}
END_TEST

/* Channels agreed out of band (a=dcmap): no DCEP, no events, messages flow at once; a
   negotiated id may be declared before the association is up. */
START_TEST(plain_negotiated)
{
    struct pair p;
    memset(&p, 0, sizeof(p));
    struct dc_endpoint_config cc = {.role = AGW_TLS_CLIENT}, sc = {.role = AGW_TLS_SERVER};
    p.c = make(&cc);
    p.s = make(&sc);
    struct dc_channel_spec neg = {
        .channel_type = DCEP_CHANNEL_RELIABLE, .negotiated = true, .stream = 3};
    uint16_t sa = 0, sb = 0;
    ck_assert_int_eq(dc_endpoint_open_channel(p.c, &neg, &sa), 0);
    ck_assert_int_eq(dc_endpoint_open_channel(p.s, &neg, &sb), 0);
    ck_assert_uint_eq(sa, 3);
    ck_assert_int_eq(dc_endpoint_open_channel(p.c, &neg, &sa), -EADDRINUSE);
    ck_assert_int_eq(dc_endpoint_send(p.c, 3, false, "x", 1, WAIT_MS), -ENOTCONN);
    /* A DCEP channel needs the association. */
    ck_assert_int_eq(dc_endpoint_open_channel(p.c, &chat, &sa), -ENOTCONN);
    connect_to(p.c, p.s);
    connect_to(p.s, p.c); /* both ends may know the remote: both INITs cross */
    ck_assert_int_eq(dc_endpoint_wait_up(p.c, WAIT_MS), 0);
    ck_assert_int_eq(dc_endpoint_wait_up(p.s, WAIT_MS), 0);
    ck_assert_int_eq(dc_endpoint_wait_open(p.c, 3, 0), 0);
    roundtrip(p.c, p.s, 3, false, 1000, 3);
    roundtrip(p.s, p.c, 3, true, 0, 4);
    roundtrip(p.s, p.c, 3, true, 65536, 5);
    expect_nothing(p.c, 100);
    expect_nothing(p.s, 0);
    free_pair(&p);
}
END_TEST

/* An OPEN on a stream id of the wrong parity (both ends think they are the DTLS client) is
   refused by a reset: the refuser reports it, the opener sees its channel closed. */
START_TEST(plain_open_refused)
{
    struct pair p;
    memset(&p, 0, sizeof(p));
    struct dc_endpoint_config cc = {.role = AGW_TLS_CLIENT};
    p.c = make(&cc);
    p.s = make(&cc);
    connect_to(p.c, p.s);
    connect_to(p.s, p.c);
    ck_assert_int_eq(dc_endpoint_wait_up(p.c, WAIT_MS), 0);
    ck_assert_int_eq(dc_endpoint_wait_up(p.s, WAIT_MS), 0);
    uint16_t stream;
    ck_assert_int_eq(dc_endpoint_open_channel(p.c, &chat, &stream), 0);
    ck_assert_int_eq(dc_endpoint_wait_open(p.c, stream, WAIT_MS), -ECONNRESET);
    struct dc_event ev;
    expect(p.s, DC_EVENT_CHANNEL_CLOSED, &ev);
    ck_assert_uint_eq(ev.stream, stream);
    ck_assert_int_eq(ev.error, -EINVAL);
    expect(p.c, DC_EVENT_CHANNEL_CLOSED, &ev);
    ck_assert_uint_eq(ev.stream, stream);
    ck_assert(ev.by_peer);
    struct dc_endpoint_stats st;
    ck_assert_int_eq(dc_endpoint_stats(p.s, &st), 0);
    ck_assert_uint_eq(st.dcep_errors, 1);
    free_pair(&p);
}
END_TEST

/* RFC 8832 §6: messages may follow the OPEN before its ACK: sent ordered until the ACK came (on
   loopback it may come first: then unordered is fine too), never overtaking the OPEN. */
START_TEST(plain_send_before_ack)
{
    struct pair p;
    plain_pair(&p);
    struct dc_channel_spec u = {
        .channel_type = DCEP_CHANNEL_RELIABLE_UNORDERED, .label = "early", .protocol = ""};
    uint16_t stream;
    ck_assert_int_eq(dc_endpoint_open_channel(p.c, &u, &stream), 0);
    ck_assert_int_eq(dc_endpoint_send(p.c, stream, false, "first", 5, WAIT_MS), 0);
    struct dc_event ev;
    expect(p.s, DC_EVENT_CHANNEL_OPEN, &ev);
    ck_assert_str_eq(ev.label, "early");
    dc_event_clear(&ev);
    expect(p.s, DC_EVENT_MESSAGE, &ev);
    ck_assert_uint_eq(ev.len, 5);
    ck_assert_int_eq(memcmp(ev.data, "first", 5), 0);
    dc_event_clear(&ev);
    ck_assert_int_eq(dc_endpoint_wait_open(p.c, stream, WAIT_MS), 0);
    free_pair(&p);
}
END_TEST

/* Message sizes follow a=max-message-size: the peer's bounds what we send, ours what we take
   (a longer message is dropped and counted, the next one arrives). */
START_TEST(plain_message_size_limits)
{
    struct pair p;
    memset(&p, 0, sizeof(p));
    struct dc_endpoint_config cc = {.role = AGW_TLS_CLIENT, .peer_max_message_size = 262144};
    struct dc_endpoint_config sc = {
        .role = AGW_TLS_SERVER, .peer_max_message_size = 262144, .max_message_size = 100000};
    p.c = make(&cc);
    p.s = make(&sc);
    connect_to(p.c, p.s);
    ck_assert_int_eq(dc_endpoint_wait_up(p.c, WAIT_MS), 0);
    ck_assert_int_eq(dc_endpoint_wait_up(p.s, WAIT_MS), 0);
    uint16_t a = open_checked(p.c, p.s, &files);
    roundtrip(p.s, p.c, a, true, 262144, 21);
    static uint8_t big[262145];
    ck_assert_int_eq(dc_endpoint_send(p.s, a, true, big, sizeof(big), WAIT_MS), -EMSGSIZE);
    ck_assert_int_eq(dc_endpoint_send(p.c, a, true, big, 100001, WAIT_MS), 0);
    roundtrip(p.c, p.s, a, true, 100000, 22);
    struct dc_endpoint_stats st;
    ck_assert_int_eq(dc_endpoint_stats(p.s, &st), 0);
    ck_assert_uint_eq(st.messages_dropped, 1);
    ck_assert_uint_eq(st.messages_in, 1);
    free_pair(&p);
}
END_TEST

struct reader {
    struct dc_endpoint *ep;
    size_t want;
    size_t got;
    size_t msg_len;
    bool ok;
};

static void *read_all(void *arg)
{
    struct reader *r = arg;
    uint8_t *expect_buf = malloc(r->msg_len);
    r->ok = expect_buf != NULL;
    while (r->ok && r->got < r->want) {
        struct dc_event ev;
        if (dc_endpoint_next_event(r->ep, &ev, 20000) != 0 || ev.type != DC_EVENT_MESSAGE) {
            r->ok = false;
            break;
        }
        fill_pattern(expect_buf, r->msg_len, (uint32_t)r->got);
        r->ok = ev.len == r->msg_len && memcmp(ev.data, expect_buf, ev.len) == 0;
        r->got++;
        dc_event_clear(&ev);
    }
    free(expect_buf);
    return NULL;
}

/* A reader that stops reading fills its bounded queue, then usrsctp's buffers: the sender
   blocks (times out) instead of memory growing; once the reader drains, everything arrives in
   order and intact. */
START_TEST(plain_backpressure)
{
    struct pair p;
    memset(&p, 0, sizeof(p));
    struct dc_endpoint_config cc = {.role = AGW_TLS_CLIENT};
    struct dc_endpoint_config sc = {.role = AGW_TLS_SERVER, .event_queue_max = 256 * 1024};
    p.c = make(&cc);
    p.s = make(&sc);
    connect_to(p.c, p.s);
    ck_assert_int_eq(dc_endpoint_wait_up(p.c, WAIT_MS), 0);
    uint16_t stream = open_checked(p.c, p.s, &files);
    enum { LEN = 60000 };
    static uint8_t msg[LEN];
    size_t sent = 0;
    int rc = 0;
    while (rc == 0 && sent < 1000) {
        fill_pattern(msg, LEN, (uint32_t)sent);
        rc = dc_endpoint_send(p.c, stream, true, msg, LEN, 300);
        if (rc == 0)
            sent++;
    }
    ck_assert_int_eq(rc, -ETIMEDOUT);
    /* Bounded: the queue, usrsctp's receive window and both send buffers, a few MiB at most. */
    ck_assert_uint_gt(sent, 5);
    ck_assert_uint_lt(sent, 120);
    struct reader r = {.ep = p.s, .want = 400, .msg_len = LEN};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, read_all, &r), 0);
    for (; sent < r.want; sent++) {
        fill_pattern(msg, LEN, (uint32_t)sent);
        ck_assert_int_eq(dc_endpoint_send(p.c, stream, true, msg, LEN, 10000), 0);
    }
    pthread_join(t, NULL);
    ck_assert(r.ok);
    ck_assert_uint_eq(r.got, r.want);
    free_pair(&p);
}
END_TEST

/* Datagrams from anyone but the remote are dropped; the association does not notice. */
START_TEST(plain_stranger_dropped)
{
    struct pair p;
    plain_pair(&p);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in to = loopback(dc_endpoint_port(p.s));
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(sendto(fd, "junk", 4, 0, (struct sockaddr *)&to, sizeof(to)), 4);
    close(fd);
    uint16_t a = open_checked(p.c, p.s, &chat);
    roundtrip(p.c, p.s, a, false, 500, 7);
    struct dc_endpoint_stats st;
    ck_assert_int_eq(dc_endpoint_stats(p.s, &st), 0);
    ck_assert_uint_eq(st.datagrams_dropped, 5);
    free_pair(&p);
}
END_TEST

/* Freeing one end aborts the association: the other end goes down with ECONNRESET. */
START_TEST(plain_free_aborts)
{
    struct pair p;
    plain_pair(&p);
    dc_endpoint_free(p.c);
    p.c = NULL;
    struct dc_event ev;
    expect(p.s, DC_EVENT_DOWN, &ev);
    ck_assert_int_eq(ev.error, -ECONNRESET);
    ck_assert_int_eq(dc_endpoint_wait_up(p.s, 0), -ECONNRESET);
    char text[64];
    ck_assert_int_eq(dc_endpoint_failure(p.s, text, sizeof(text)), -ECONNRESET);
    ck_assert_str_eq(text, "sctp association aborted or lost");
    ck_assert_int_eq(dc_endpoint_send(p.s, 1, false, "x", 1, 0), -ECONNRESET);
    free_pair(&p);
}
END_TEST

START_TEST(bad_calls)
{
    struct dc_net *other;
    ck_assert_int_eq(dc_net_start(&other), -EBUSY);
    struct dc_endpoint_config cc = {.role = AGW_TLS_CLIENT};
    struct dc_endpoint *ep = make(&cc), *bad = NULL;
    struct agw_tls_fingerprint fp;
    ck_assert_int_eq(dc_endpoint_fingerprint(ep, &fp), -EINVAL);
    ck_assert_int_eq(dc_endpoint_set_peer_fingerprints(ep, &fp, 1), -EINVAL);
    ck_assert_int_eq(dc_endpoint_wait_up(ep, 50), -ETIMEDOUT);
    struct dc_event ev;
    ck_assert_int_eq(dc_endpoint_next_event(ep, &ev, 0), -ETIMEDOUT);
    struct sockaddr_in sin = loopback(9);
    ck_assert_int_eq(dc_endpoint_connect(ep, (struct sockaddr *)&sin, 3), -EINVAL);
    ck_assert_int_eq(dc_endpoint_connect(ep, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(dc_endpoint_connect(ep, (struct sockaddr *)&sin, sizeof(sin)), 0);
    sin.sin_port = htons(10);
    ck_assert_int_eq(dc_endpoint_connect(ep, (struct sockaddr *)&sin, sizeof(sin)), -EISCONN);
    struct dc_channel_spec spec = {.channel_type = 0x42, .negotiated = true, .stream = 1};
    uint16_t stream;
    ck_assert_int_eq(dc_endpoint_open_channel(ep, &spec, &stream), -EINVAL);
    spec.channel_type = DCEP_CHANNEL_RELIABLE;
    spec.stream = 5000;
    ck_assert_int_eq(dc_endpoint_open_channel(ep, &spec, &stream), -EINVAL);
    ck_assert_int_eq(dc_endpoint_send(ep, 7, false, "x", 1, 0), -ENOTCONN);
    ck_assert_int_eq(dc_endpoint_close_channel(ep, 7), -EPIPE);
    cc.role = 7;
    ck_assert_int_eq(dc_endpoint_new(net, &cc, &bad), -EINVAL);
    struct sockaddr_in used = loopback(dc_endpoint_port(ep));
    struct dc_endpoint_config clash = {.local = (struct sockaddr *)&used,
                                       .local_len = sizeof(used)};
    ck_assert_int_eq(dc_endpoint_new(net, &clash, &bad), -EADDRINUSE);
    ck_assert_ptr_null(bad);
    dc_endpoint_free(ep);
    dc_endpoint_free(NULL);
}
END_TEST

/* ---- DTLS ---- */

static void make_identities(struct pair *p)
{
    ck_assert_int_eq(agw_tls_identity_generate("ue", 1, &p->cid), 0);
    ck_assert_int_eq(agw_tls_identity_generate("core", 1, &p->sid), 0);
}

/* A DTLS pair; wrong_for_server/_client gives that side a fingerprint that does not match. */
static void dtls_pair(struct pair *p, bool server_connects, bool wrong_for_server,
                      bool wrong_for_client)
{
    memset(p, 0, sizeof(*p));
    make_identities(p);
    struct agw_tls_fingerprint cfp = *agw_tls_identity_fingerprint(p->cid);
    struct agw_tls_fingerprint sfp = *agw_tls_identity_fingerprint(p->sid);
    if (wrong_for_server)
        cfp.digest[5] ^= 1;
    if (wrong_for_client)
        sfp.digest[0] ^= 0x80;
    struct dc_endpoint_config cc = {.dtls = true,
                                    .role = AGW_TLS_CLIENT,
                                    .identity = p->cid,
                                    .peer_fps = &sfp,
                                    .n_peer_fps = 1};
    struct dc_endpoint_config sc = {.dtls = true,
                                    .role = AGW_TLS_SERVER,
                                    .identity = p->sid,
                                    .peer_fps = &cfp,
                                    .n_peer_fps = 1};
    p->c = make(&cc);
    p->s = make(&sc);
    if (server_connects)
        connect_to(p->s, p->c);
    connect_to(p->c, p->s);
}

START_TEST(dtls_channels_and_messages)
{
    struct pair p;
    dtls_pair(&p, false, false, false);
    ck_assert_int_eq(dc_endpoint_wait_up(p.c, WAIT_MS), 0);
    ck_assert_int_eq(dc_endpoint_wait_up(p.s, WAIT_MS), 0);
    exercise(&p);
    struct dc_endpoint_stats st;
    ck_assert_int_eq(dc_endpoint_stats(p.s, &st), 0);
    ck_assert_uint_gt(st.dtls_datagrams_in, 100);
    ck_assert_uint_gt(st.dtls_datagrams_out, 100);
    ck_assert_uint_eq(st.dtls_datagrams_dropped, 0);
    struct agw_tls_fingerprint fp;
    ck_assert_int_eq(dc_endpoint_fingerprint(p.s, &fp), 0);
    ck_assert_mem_eq(fp.digest, agw_tls_identity_fingerprint(p.sid)->digest, fp.len);
    free_pair(&p);
}
END_TEST

/* Both ends given the remote (the server does not learn it), and the server's fingerprints
   arrive late, as from a Modify: the handshake waits, then completes. */
START_TEST(dtls_server_connects_fingerprints_late)
{
    struct pair p;
    memset(&p, 0, sizeof(p));
    make_identities(&p);
    const struct agw_tls_fingerprint *sfp = agw_tls_identity_fingerprint(p.sid);
    struct dc_endpoint_config cc = {
        .dtls = true, .role = AGW_TLS_CLIENT, .identity = p.cid, .peer_fps = sfp, .n_peer_fps = 1};
    struct dc_endpoint_config sc = {.dtls = true, .role = AGW_TLS_SERVER, .identity = p.sid};
    p.c = make(&cc);
    p.s = make(&sc);
    connect_to(p.s, p.c);
    connect_to(p.c, p.s);
    ck_assert_int_eq(dc_endpoint_wait_up(p.c, 300), -ETIMEDOUT);
    ck_assert_int_eq(dc_endpoint_set_peer_fingerprints(p.s, agw_tls_identity_fingerprint(p.cid), 1),
                     0);
    ck_assert_int_eq(dc_endpoint_wait_up(p.c, WAIT_MS), 0);
    ck_assert_int_eq(dc_endpoint_wait_up(p.s, WAIT_MS), 0);
    uint16_t b = open_checked(p.s, p.c, &files);
    roundtrip(p.c, p.s, b, true, 65536, 11);
    roundtrip(p.s, p.c, b, false, 0, 12);
    free_pair(&p);
}
END_TEST

/* An endpoint without an identity makes one; its fingerprint is what the peer must expect. */
START_TEST(dtls_generated_identity)
{
    struct dc_endpoint_config sc = {.dtls = true, .role = AGW_TLS_SERVER};
    struct dc_endpoint *s = make(&sc);
    struct agw_tls_fingerprint sfp;
    ck_assert_int_eq(dc_endpoint_fingerprint(s, &sfp), 0);
    struct dc_endpoint_config cc = {
        .dtls = true, .role = AGW_TLS_CLIENT, .peer_fps = &sfp, .n_peer_fps = 1};
    struct dc_endpoint *c = make(&cc);
    struct agw_tls_fingerprint cfp;
    ck_assert_int_eq(dc_endpoint_fingerprint(c, &cfp), 0);
    ck_assert_int_eq(dc_endpoint_set_peer_fingerprints(s, &cfp, 1), 0);
    connect_to(c, s);
    ck_assert_int_eq(dc_endpoint_wait_up(c, WAIT_MS), 0);
    ck_assert_int_eq(dc_endpoint_wait_up(s, WAIT_MS), 0);
    uint16_t a = open_checked(c, s, &chat);
    roundtrip(s, c, a, false, 1, 13);
    dc_endpoint_free(c);
    dc_endpoint_free(s);
}
END_TEST

/* The server checks the client's certificate and refuses it: -EACCES there, the client hears the
   alert. */
START_TEST(dtls_wrong_fingerprint_server_checks)
{
    struct pair p;
    dtls_pair(&p, false, true, false);
    ck_assert_int_eq(dc_endpoint_wait_up(p.s, WAIT_MS), -EACCES);
    char text[64];
    ck_assert_int_eq(dc_endpoint_failure(p.s, text, sizeof(text)), -EACCES);
    ck_assert_str_eq(text, "fingerprint mismatch");
    ck_assert_int_eq(dc_endpoint_wait_up(p.c, WAIT_MS), -ECONNABORTED);
    struct dc_event ev;
    expect(p.s, DC_EVENT_DOWN, &ev);
    ck_assert_int_eq(ev.error, -EACCES);
    free_pair(&p);
}
END_TEST

START_TEST(dtls_wrong_fingerprint_client_checks)
{
    struct pair p;
    dtls_pair(&p, true, false, true);
    ck_assert_int_eq(dc_endpoint_wait_up(p.c, WAIT_MS), -EACCES);
    char text[64];
    ck_assert_int_eq(dc_endpoint_failure(p.c, text, sizeof(text)), -EACCES);
    ck_assert_str_eq(text, "fingerprint mismatch");
    ck_assert_int_eq(dc_endpoint_wait_up(p.s, WAIT_MS), -ECONNABORTED);
    free_pair(&p);
}
END_TEST

static Suite *dc_suite(void)
{
    Suite *s = suite_create("dc_endpoint");
    TCase *tc = tcase_create("plain");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, plain_channels_and_messages);
    tcase_add_test(tc, plain_channel_types);
    tcase_add_test(tc, plain_close_by_reset);
    tcase_add_test(tc, plain_negotiated);
    tcase_add_test(tc, plain_send_before_ack);
    tcase_add_test(tc, plain_message_size_limits);
    tcase_add_test(tc, plain_open_refused);
    tcase_add_test(tc, plain_backpressure);
    tcase_add_test(tc, plain_stranger_dropped);
    tcase_add_test(tc, plain_free_aborts);
    tcase_add_test(tc, bad_calls);
    suite_add_tcase(s, tc);

    tc = tcase_create("dtls");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, dtls_channels_and_messages);
    tcase_add_test(tc, dtls_server_connects_fingerprints_late);
    tcase_add_test(tc, dtls_generated_identity);
    tcase_add_test(tc, dtls_wrong_fingerprint_server_checks);
    tcase_add_test(tc, dtls_wrong_fingerprint_client_checks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(dc_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
