/* Check suite for sctp/assoc.c over usrsctp: two associations joined back to back in memory,
   driven by a fake clock: set-up, messages of every size and PPID, stream resets, size limits,
   loss, corruption, many associations, shutdown and abort, teardown of the usrsctp singleton. */
#include "sctp/assoc.h"
#include "sctp/crc32c.h"
#include "sctp/dcep.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* usrsctp is a process-wide singleton: each test (a forked child under Check's default mode)
   starts it and must leave it finished. */

/* usrsctp reads the wall clock (gettimeofday) besides the ticks agw_sctp_timers gives it: a T3
   expiry resends only chunks sent at least one RTO ago by the wall clock, and PR-SCTP lifetimes
   are wall-clock times. This executable defines gettimeofday (libusrsctp's calls resolve to it)
   as a clock that moves only with the fake one, so retransmissions happen in fake time. */
static uint64_t fake_ms;

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    (void)tz;
    tv->tv_sec = (time_t)(1700000000 + fake_ms / 1000);
    tv->tv_usec = (suseconds_t)(fake_ms % 1000 * 1000);
    return 0;
}

/* usrsctp's software CRC32c, which agw_sctp_init turns off (offload): this executable's
   definition takes the place of libusrsctp's, which calls it through its PLT (Debian's shared
   build), for every packet it would checksum or verify itself. Counted, never computed: any call
   is a failure. */
struct mbuf;
uint32_t sctp_calculate_cksum(struct mbuf *m, uint32_t offset);
static unsigned stack_crcs;

uint32_t sctp_calculate_cksum(struct mbuf *m, uint32_t offset)
{
    (void)m;
    (void)offset;
    stack_crcs++;
    return 0;
}

static void tick(void)
{
    fake_ms += AGW_SCTP_TICK_MS;
    agw_sctp_timers(AGW_SCTP_TICK_MS);
}

#define PORT 5000
#define MAX_EVENTS 8192

struct received {
    enum agw_sctp_event_type type;
    int error;
    uint16_t stream;
    uint32_t ppid;
    bool unordered;
    uint8_t *data;
    size_t len;
    uint16_t in_streams, out_streams;
};

struct side {
    struct agw_sctp_assoc *a;
    struct received ev[MAX_EVENTS];
    size_t n_ev;
    size_t packets_out;
    size_t max_packet;
};

struct pair {
    struct side s[2];
    uint64_t now_ms;
    unsigned loss; /* drop about 1 in `loss` packets from side 0 to side 1; 0 = none */
    uint32_t rng;  /* xorshift state: a fixed loss pattern that does not lock onto SCTP's */
    unsigned dropped;
    size_t corrupt_at; /* flip a byte of side 0's packet number corrupt_at (1-based); 0 = none */
    size_t corrupt_offset; /* which byte: corrupt_offset % the packet's length */
    unsigned corrupted;
};

static void start(void)
{
    ck_assert_int_eq(agw_sctp_init(), 0);
    ck_assert_int_eq(agw_sctp_init(), 0); /* idempotent */
}

/* usrsctp frees closed sockets from its timers: tick until it lets go. */
static void finish(void)
{
    int rc = -EBUSY;
    for (int i = 0; i < 1000 && rc == -EBUSY; i++) {
        rc = agw_sctp_finish();
        if (rc == -EBUSY)
            tick();
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(agw_sctp_next_timeout(), -1);
}

static void collect(struct side *side)
{
    struct agw_sctp_event ev;
    int rc;
    while ((rc = agw_sctp_assoc_next_event(side->a, &ev)) == 1) {
        ck_assert_msg(side->n_ev < MAX_EVENTS, "too many events");
        struct received *r = &side->ev[side->n_ev++];
        r->type = ev.type;
        r->error = ev.error;
        r->stream = ev.stream;
        r->ppid = ev.ppid;
        r->unordered = ev.unordered;
        r->len = ev.len;
        r->in_streams = ev.in_streams;
        r->out_streams = ev.out_streams;
        r->data = NULL;
        if (ev.type == AGW_SCTP_EVENT_MESSAGE) {
            ck_assert_ptr_nonnull(ev.data);
            r->data = malloc(ev.len);
            ck_assert_ptr_nonnull(r->data);
            memcpy(r->data, ev.data, ev.len);
        }
    }
    ck_assert_int_eq(rc, 0);
}

static void forget_events(struct side *side)
{
    for (size_t i = 0; i < side->n_ev; i++)
        free(side->ev[i].data);
    side->n_ev = 0;
}

static bool lose(struct pair *p)
{
    p->rng ^= p->rng << 13;
    p->rng ^= p->rng >> 17;
    p->rng ^= p->rng << 5;
    return p->rng % p->loss == 0;
}

/* Moves every pending packet across (both ways) until neither side has any; collects events.
   Returns the number of packets moved. */
static size_t pump(struct pair *p)
{
    size_t moved = 0, round;
    do {
        round = 0;
        for (int i = 0; i < 2; i++) {
            struct side *from = &p->s[i], *to = &p->s[1 - i];
            const uint8_t *pkt;
            size_t len;
            while (agw_sctp_assoc_pending_output(from->a, &pkt, &len) == 1) {
                round++;
                from->packets_out++;
                if (len > from->max_packet)
                    from->max_packet = len;
                /* usrsctp leaves the checksum to us: every packet must carry it. */
                ck_assert_msg(agw_sctp_checksum_ok(pkt, len), "side %d packet %zu: bad CRC32c", i,
                              from->packets_out);
                if (i == 0 && p->loss != 0 && lose(p)) {
                    p->dropped++;
                    continue;
                }
                uint8_t damaged[65536];
                if (i == 0 && from->packets_out == p->corrupt_at) {
                    memcpy(damaged, pkt, len);
                    damaged[p->corrupt_offset % len] ^= 0x01;
                    pkt = damaged;
                    p->corrupted++;
                }
                if (to->a != NULL)
                    ck_assert_int_eq(agw_sctp_assoc_input(to->a, pkt, len), 0);
            }
        }
        for (int i = 0; i < 2; i++) {
            if (p->s[i].a != NULL)
                collect(&p->s[i]);
        }
        moved += round;
    } while (round > 0);
    return moved;
}

/* Pumps, and when nothing moves advances the fake clock, until done(p) or limit_ms passed. */
static bool run_until(struct pair *p, bool (*done)(struct pair *), uint64_t limit_ms)
{
    uint64_t end = p->now_ms + limit_ms;
    for (;;) {
        size_t moved = pump(p);
        if (done(p))
            return true;
        if (moved == 0) {
            if (p->now_ms >= end)
                return false;
            ck_assert_int_eq(agw_sctp_next_timeout(), AGW_SCTP_TICK_MS);
            tick();
            p->now_ms += AGW_SCTP_TICK_MS;
        }
    }
}

static size_t count(const struct side *s, enum agw_sctp_event_type type)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_ev; i++)
        n += s->ev[i].type == type;
    return n;
}

static bool both_up(struct pair *p)
{
    return count(&p->s[0], AGW_SCTP_EVENT_UP) == 1 && count(&p->s[1], AGW_SCTP_EVENT_UP) == 1;
}

static void connect_pair(struct pair *p, const struct agw_sctp_limits *l0,
                         const struct agw_sctp_limits *l1)
{
    memset(p, 0, sizeof(*p));
    ck_assert_int_eq(agw_sctp_assoc_new(PORT, PORT, l0, &p->s[0].a), 0);
    ck_assert_int_eq(agw_sctp_assoc_new(PORT, PORT, l1, &p->s[1].a), 0);
    ck_assert_msg(run_until(p, both_up, 10000), "association did not come up");
}

static void free_pair(struct pair *p)
{
    for (int i = 0; i < 2; i++) {
        agw_sctp_assoc_free(p->s[i].a);
        p->s[i].a = NULL;
        forget_events(&p->s[i]);
    }
}

static struct pair *new_pair(void)
{
    struct pair *p = calloc(1, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    return p;
}

/* ---- expected traffic ---- */

struct sent {
    struct agw_sctp_sendinfo info;
    uint8_t *data;
    size_t len;
    bool seen;
};

struct traffic {
    struct sent *msgs;
    size_t n, cap;
    size_t matched;
};

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

/* Sends one message from side `from`, pumping while the send buffer is full. */
static void send_msg(struct pair *p, int from, struct traffic *t,
                     const struct agw_sctp_sendinfo *info, size_t len, uint32_t seed)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->msgs = realloc(t->msgs, t->cap * sizeof(*t->msgs));
        ck_assert_ptr_nonnull(t->msgs);
    }
    struct sent *m = &t->msgs[t->n++];
    m->info = *info;
    m->len = len;
    m->seen = false;
    m->data = malloc(len);
    ck_assert_ptr_nonnull(m->data);
    fill_pattern(m->data, len, seed);
    int rc;
    int spins = 0;
    while ((rc = agw_sctp_assoc_send(p->s[from].a, info, m->data, len)) == -EAGAIN) {
        ck_assert_int_lt(++spins, 100000);
        if (pump(p) == 0) {
            tick();
            p->now_ms += AGW_SCTP_TICK_MS;
        }
    }
    ck_assert_msg(rc == 0, "send of %zu bytes on stream %u gave %d", len, info->stream, rc);
}

/* Matches every received MESSAGE against what was sent: exact bytes, stream, PPID, flag; ordered
   messages of a stream in the order they were sent. */
static void verify(const struct side *rx, struct traffic *t)
{
    for (size_t i = 0; i < rx->n_ev; i++) {
        const struct received *r = &rx->ev[i];
        if (r->type != AGW_SCTP_EVENT_MESSAGE)
            continue;
        size_t j;
        for (j = 0; j < t->n; j++) {
            const struct sent *m = &t->msgs[j];
            if (!m->seen && m->info.stream == r->stream && m->info.ppid == r->ppid &&
                m->info.unordered == r->unordered && m->len == r->len &&
                memcmp(m->data, r->data, r->len) == 0)
                break;
        }
        ck_assert_msg(j < t->n, "message %zu (stream %u, ppid %u, %zu bytes) was never sent", i,
                      r->stream, r->ppid, r->len);
        if (!t->msgs[j].info.unordered) {
            for (size_t k = 0; k < j; k++) {
                const struct sent *m = &t->msgs[k];
                ck_assert_msg(m->seen || m->info.unordered || m->info.stream != r->stream,
                              "ordered message %zu overtook %zu on stream %u", j, k, r->stream);
            }
        }
        t->msgs[j].seen = true;
        t->matched++;
    }
}

static void free_traffic(struct traffic *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->msgs[i].data);
    free(t->msgs);
    memset(t, 0, sizeof(*t));
}

static size_t messages(const struct side *s)
{
    return count(s, AGW_SCTP_EVENT_MESSAGE);
}

static size_t waiting_for[2];

static bool all_delivered(struct pair *p)
{
    return messages(&p->s[0]) >= waiting_for[0] && messages(&p->s[1]) >= waiting_for[1];
}

/* ---- tests ---- */

START_TEST(connect_back_to_back)
{
    start();
    ck_assert_int_eq(agw_sctp_next_timeout(), -1);
    struct pair *p = new_pair();
    connect_pair(p, NULL, NULL);
    for (int i = 0; i < 2; i++) {
        const struct received *up = &p->s[i].ev[0];
        ck_assert_int_eq(up->type, AGW_SCTP_EVENT_UP);
        ck_assert_uint_eq(up->in_streams, 1024);
        ck_assert_uint_eq(up->out_streams, 1024);
        ck_assert_uint_eq(count(&p->s[i], AGW_SCTP_EVENT_DOWN), 0);
        ck_assert_uint_le(p->s[i].max_packet, 1200);
    }
    ck_assert_int_eq(agw_sctp_next_timeout(), AGW_SCTP_TICK_MS);
    free_pair(p);
    free(p);
    /* usrsctp may still be closing sockets: ticks for a while, then nothing to time. */
    ck_assert_int_eq(agw_sctp_next_timeout(), AGW_SCTP_TICK_MS);
    for (int i = 0; i < 2000 / AGW_SCTP_TICK_MS; i++)
        tick();
    ck_assert_int_eq(agw_sctp_next_timeout(), -1);
    finish();
}
END_TEST

/* Every PPID of RFC 8831/8832, sizes from 1 byte to 256 KiB, ordered and unordered, on several
   streams, both directions at once. */
START_TEST(messages_sizes_ppids)
{
    start();
    struct pair *p = new_pair();
    connect_pair(p, NULL, NULL);
    static const uint32_t ppids[] = {DCEP_PPID_CONTROL,        DCEP_PPID_STRING,
                                     DCEP_PPID_BINARY_PARTIAL, DCEP_PPID_BINARY,
                                     DCEP_PPID_STRING_PARTIAL, DCEP_PPID_STRING_EMPTY,
                                     DCEP_PPID_BINARY_EMPTY};
    static const size_t sizes[] = {1,     2,     100,   1000,  1150,   1200,   1201,  4096,
                                   16384, 65535, 65536, 65537, 100000, 262143, 262144};
    struct traffic t[2] = {{0}, {0}};
    uint32_t seed = 1;
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        for (size_t k = 0; k < sizeof(ppids) / sizeof(ppids[0]); k++) {
            bool empty = ppids[k] == DCEP_PPID_STRING_EMPTY || ppids[k] == DCEP_PPID_BINARY_EMPTY;
            if (empty && s > 0)
                continue; /* "empty" messages are one byte */
            for (int from = 0; from < 2; from++) {
                struct agw_sctp_sendinfo info = {
                    .stream = (uint16_t)((s + k) % 6 * 2 + (unsigned)from),
                    .ppid = ppids[k],
                    .unordered = (s + k + (size_t)from) % 2 == 1,
                };
                send_msg(p, from, &t[from], &info, sizes[s], seed++);
            }
        }
    }
    uint64_t errors = agw_sctp_checksum_errors();
    waiting_for[1] = t[0].n;
    waiting_for[0] = t[1].n;
    ck_assert(run_until(p, all_delivered, 60000));
    ck_assert_uint_eq(agw_sctp_checksum_errors(), errors);
    ck_assert_uint_eq(stack_crcs, 0);
    verify(&p->s[1], &t[0]);
    verify(&p->s[0], &t[1]);
    ck_assert_uint_eq(t[0].matched, t[0].n);
    ck_assert_uint_eq(t[1].matched, t[1].n);
    for (int i = 0; i < 2; i++) {
        /* Full-sized packets, never over the MTU (usrsctp needs 12 bytes taken off for that). */
        ck_assert_uint_eq(p->s[i].max_packet, 1200);
        ck_assert_uint_eq(count(&p->s[i], AGW_SCTP_EVENT_MESSAGE_DROPPED), 0);
        ck_assert_uint_eq(agw_sctp_assoc_buffered(p->s[i].a), 0);
    }
    free_traffic(&t[0]);
    free_traffic(&t[1]);
    free_pair(p);
    free(p);
    finish();
}
END_TEST

/* A smaller MTU (say, a DTLS path with more overhead) is honoured exactly. */
START_TEST(small_mtu)
{
    start();
    struct pair *p = new_pair();
    struct agw_sctp_limits l = agw_sctp_default_limits;
    l.mtu = 576;
    connect_pair(p, &l, &l);
    struct traffic t = {0};
    struct agw_sctp_sendinfo info = {.stream = 9, .ppid = DCEP_PPID_BINARY};
    send_msg(p, 0, &t, &info, 30000, 4);
    waiting_for[1] = 1;
    waiting_for[0] = 0;
    ck_assert(run_until(p, all_delivered, 10000));
    verify(&p->s[1], &t);
    ck_assert_uint_eq(t.matched, 1);
    ck_assert_uint_eq(p->s[0].max_packet, 576);
    free_traffic(&t);
    free_pair(p);
    free(p);
    finish();
}
END_TEST

START_TEST(thousand_messages)
{
    start();
    struct pair *p = new_pair();
    connect_pair(p, NULL, NULL);
    struct traffic t = {0};
    for (uint32_t i = 0; i < 1000; i++) {
        struct agw_sctp_sendinfo info = {
            .stream = (uint16_t)(i % 7),
            .ppid = i % 3 == 0 ? DCEP_PPID_STRING : DCEP_PPID_BINARY,
            .unordered = i % 5 == 0,
        };
        size_t len = 1 + (i * 7919u) % 20000;
        send_msg(p, 0, &t, &info, len, i + 100);
    }
    waiting_for[1] = 1000;
    waiting_for[0] = 0;
    ck_assert(run_until(p, all_delivered, 60000));
    verify(&p->s[1], &t);
    ck_assert_uint_eq(t.matched, 1000);
    free_traffic(&t);
    free_pair(p);
    free(p);
    finish();
}
END_TEST

static bool closed_both_ways(struct pair *p)
{
    return count(&p->s[0], AGW_SCTP_EVENT_STREAM_CLOSED) >= 1 &&
           count(&p->s[0], AGW_SCTP_EVENT_STREAM_RESET_DONE) >= 1 &&
           count(&p->s[1], AGW_SCTP_EVENT_STREAM_RESET_DONE) >= 1;
}

static bool b_saw_close(struct pair *p)
{
    return count(&p->s[1], AGW_SCTP_EVENT_STREAM_CLOSED) >= 1;
}

static const struct received *find_event(const struct side *s, enum agw_sctp_event_type type,
                                         size_t *index)
{
    for (size_t i = 0; i < s->n_ev; i++) {
        if (s->ev[i].type == type) {
            if (index != NULL)
                *index = i;
            return &s->ev[i];
        }
    }
    return NULL;
}

/* RFC 8831 §6.7: closing a channel resets the outgoing stream; the peer resets its own. Data sent
   before the reset arrives before the close, and the stream can be used again afterwards. */
START_TEST(stream_reset_closes_channel)
{
    start();
    struct pair *p = new_pair();
    connect_pair(p, NULL, NULL);
    struct traffic t = {0};
    struct agw_sctp_sendinfo info = {.stream = 3, .ppid = DCEP_PPID_BINARY};
    send_msg(p, 0, &t, &info, 200000, 7); /* still in flight when the reset is asked */
    ck_assert_int_eq(agw_sctp_assoc_reset_stream(p->s[0].a, 3), 0);
    ck_assert(run_until(p, b_saw_close, 20000));
    size_t msg_at = 0, close_at = 0;
    const struct received *closed = find_event(&p->s[1], AGW_SCTP_EVENT_STREAM_CLOSED, &close_at);
    ck_assert_ptr_nonnull(find_event(&p->s[1], AGW_SCTP_EVENT_MESSAGE, &msg_at));
    ck_assert_uint_eq(closed->stream, 3);
    ck_assert_uint_lt(msg_at, close_at);
    verify(&p->s[1], &t);
    ck_assert_uint_eq(t.matched, 1);

    /* B answers with its own reset, as a data channel peer does. */
    ck_assert_int_eq(agw_sctp_assoc_reset_stream(p->s[1].a, 3), 0);
    ck_assert(run_until(p, closed_both_ways, 20000));
    const struct received *done = find_event(&p->s[0], AGW_SCTP_EVENT_STREAM_RESET_DONE, NULL);
    ck_assert_uint_eq(done->stream, 3);
    ck_assert_int_eq(done->error, 0);
    ck_assert_uint_eq(find_event(&p->s[0], AGW_SCTP_EVENT_STREAM_CLOSED, NULL)->stream, 3);
    done = find_event(&p->s[1], AGW_SCTP_EVENT_STREAM_RESET_DONE, NULL);
    ck_assert_uint_eq(done->stream, 3);
    ck_assert_int_eq(done->error, 0);

    /* The stream id is free again: a new channel on it works. */
    forget_events(&p->s[1]);
    free_traffic(&t);
    send_msg(p, 0, &t, &info, 10, 8);
    waiting_for[1] = 1;
    waiting_for[0] = 0;
    ck_assert(run_until(p, all_delivered, 5000));
    verify(&p->s[1], &t);
    ck_assert_uint_eq(t.matched, 1);
    free_traffic(&t);
    free_pair(p);
    free(p);
    finish();
}
END_TEST

static bool five_closed(struct pair *p)
{
    return count(&p->s[1], AGW_SCTP_EVENT_STREAM_CLOSED) >= 5 &&
           count(&p->s[0], AGW_SCTP_EVENT_STREAM_RESET_DONE) >= 5;
}

/* Several resets asked at once: usrsctp allows one request outstanding; the rest wait. */
START_TEST(many_resets)
{
    start();
    struct pair *p = new_pair();
    connect_pair(p, NULL, NULL);
    static const uint16_t streams[] = {2, 4, 6, 8, 1000};
    for (size_t i = 0; i < 5; i++)
        ck_assert_int_eq(agw_sctp_assoc_reset_stream(p->s[0].a, streams[i]), 0);
    ck_assert(run_until(p, five_closed, 20000));
    bool seen[5] = {false};
    for (size_t i = 0; i < p->s[1].n_ev; i++) {
        if (p->s[1].ev[i].type != AGW_SCTP_EVENT_STREAM_CLOSED)
            continue;
        for (size_t k = 0; k < 5; k++)
            seen[k] |= p->s[1].ev[i].stream == streams[k];
    }
    for (size_t k = 0; k < 5; k++)
        ck_assert_msg(seen[k], "stream %u not closed", streams[k]);
    for (size_t i = 0; i < p->s[0].n_ev; i++) {
        if (p->s[0].ev[i].type == AGW_SCTP_EVENT_STREAM_RESET_DONE)
            ck_assert_int_eq(p->s[0].ev[i].error, 0);
    }
    ck_assert_int_eq(agw_sctp_assoc_reset_stream(p->s[0].a, 1024), -EINVAL);
    free_pair(p);
    free(p);
    finish();
}
END_TEST

static bool b_got_two(struct pair *p)
{
    return count(&p->s[1], AGW_SCTP_EVENT_MESSAGE) +
               count(&p->s[1], AGW_SCTP_EVENT_MESSAGE_DROPPED) >=
           2;
}

/* The peer's max-message-size is enforced on send, ours on receive. */
START_TEST(message_size_limits)
{
    start();
    struct pair *p = new_pair();
    struct agw_sctp_limits l0 = agw_sctp_default_limits;
    struct agw_sctp_limits l1 = agw_sctp_default_limits;
    l0.peer_max_message_size = 100000; /* B claims 100000 ... */
    l1.max_message_size = 65536;       /* ... but enforces 65536 */
    connect_pair(p, &l0, &l1);
    uint8_t *big = calloc(1, 262145);
    ck_assert_ptr_nonnull(big);
    struct agw_sctp_sendinfo info = {.stream = 0, .ppid = DCEP_PPID_BINARY};
    ck_assert_int_eq(agw_sctp_assoc_send(p->s[0].a, &info, big, 100001), -EMSGSIZE);
    ck_assert_int_eq(agw_sctp_assoc_send(p->s[0].a, &info, big, 0), -EINVAL);
    /* Default limits: 256 KiB both ways. */
    ck_assert_int_eq(agw_sctp_assoc_send(p->s[1].a, &info, big, 262145), -EMSGSIZE);
    ck_assert_int_eq(agw_sctp_assoc_buffered(p->s[0].a), 0);

    /* 100000 bytes pass A's check and are dropped by B, whole; the next message is intact. */
    ck_assert_int_eq(agw_sctp_assoc_send(p->s[0].a, &info, big, 100000), 0);
    struct traffic t = {0};
    send_msg(p, 0, &t, &info, 65536, 3);
    ck_assert(run_until(p, b_got_two, 20000));
    size_t drop_at = 0, msg_at = 0;
    const struct received *dropped = find_event(&p->s[1], AGW_SCTP_EVENT_MESSAGE_DROPPED, &drop_at);
    ck_assert_ptr_nonnull(dropped);
    ck_assert_uint_eq(dropped->len, 100000);
    ck_assert_int_eq(dropped->error, -EMSGSIZE);
    ck_assert_uint_eq(dropped->ppid, DCEP_PPID_BINARY);
    ck_assert_ptr_nonnull(find_event(&p->s[1], AGW_SCTP_EVENT_MESSAGE, &msg_at));
    ck_assert_uint_lt(drop_at, msg_at);
    verify(&p->s[1], &t);
    ck_assert_uint_eq(t.matched, 1);
    free_traffic(&t);
    free(big);
    free_pair(p);
    free(p);
    finish();
}
END_TEST

START_TEST(bad_calls)
{
    start();
    struct agw_sctp_assoc *a = NULL;
    struct agw_sctp_limits l = agw_sctp_default_limits;
    l.mtu = 100;
    ck_assert_int_eq(agw_sctp_assoc_new(PORT, PORT, &l, &a), -EINVAL);
    l = agw_sctp_default_limits;
    l.streams = 0;
    ck_assert_int_eq(agw_sctp_assoc_new(PORT, PORT, &l, &a), -EINVAL);
    ck_assert_int_eq(agw_sctp_assoc_new(0, PORT, NULL, &a), -EINVAL);
    ck_assert_ptr_null(a);

    ck_assert_int_eq(agw_sctp_assoc_new(PORT, PORT, NULL, &a), 0);
    /* Before UP nothing can be sent, reset or shut down. */
    struct agw_sctp_sendinfo info = {.stream = 0, .ppid = DCEP_PPID_STRING};
    ck_assert_int_eq(agw_sctp_assoc_send(a, &info, "x", 1), -ENOTCONN);
    ck_assert_int_eq(agw_sctp_assoc_reset_stream(a, 0), -ENOTCONN);
    ck_assert_int_eq(agw_sctp_assoc_shutdown(a), -ENOTCONN);
    ck_assert_int_eq(agw_sctp_assoc_input(a, "", 0), -EINVAL);
    /* The INIT waits to be sent, checksummed. Garbage in is dropped: by its checksum, or by
       usrsctp when the checksum is right. */
    const uint8_t *pkt;
    size_t len;
    ck_assert_int_eq(agw_sctp_assoc_pending_output(a, &pkt, &len), 1);
    ck_assert_uint_ge(len, 12 + 20);
    ck_assert_uint_eq(pkt[12], 1); /* chunk type INIT (RFC 9260 §3.3.2) */
    ck_assert_uint_eq((pkt[0] << 8) | pkt[1], PORT);
    ck_assert(agw_sctp_checksum_ok(pkt, len));
    uint8_t junk[300];
    uint64_t errors = agw_sctp_checksum_errors();
    for (unsigned i = 0; i < 200; i++) {
        fill_pattern(junk, sizeof(junk), i);
        ck_assert_int_eq(agw_sctp_assoc_input(a, junk, 1 + i % sizeof(junk)), 0);
    }
    ck_assert_uint_eq(agw_sctp_checksum_errors() - errors, 200);
    for (unsigned i = 0; i < 200; i++) {
        fill_pattern(junk, sizeof(junk), i);
        agw_sctp_checksum_set(junk, 1 + i % sizeof(junk));
        ck_assert_int_eq(agw_sctp_assoc_input(a, junk, 1 + i % sizeof(junk)), 0);
    }
    /* 11 of them are too short to carry a checksum at all. */
    ck_assert_uint_eq(agw_sctp_checksum_errors() - errors, 211);
    struct agw_sctp_event ev;
    ck_assert_int_eq(agw_sctp_assoc_next_event(a, &ev), 0);
    agw_sctp_assoc_free(a);
    agw_sctp_assoc_free(NULL);
    finish();
    /* Not initialised any more. */
    ck_assert_int_eq(agw_sctp_assoc_new(PORT, PORT, NULL, &a), -EINVAL);
}
END_TEST

static bool both_down(struct pair *p)
{
    return count(&p->s[0], AGW_SCTP_EVENT_DOWN) == 1 && count(&p->s[1], AGW_SCTP_EVENT_DOWN) == 1;
}

/* A graceful shutdown delivers what was queued first, then both ends see DOWN with error 0. */
START_TEST(graceful_shutdown)
{
    start();
    struct pair *p = new_pair();
    connect_pair(p, NULL, NULL);
    struct traffic t = {0};
    struct agw_sctp_sendinfo info = {.stream = 1, .ppid = DCEP_PPID_BINARY};
    for (uint32_t i = 0; i < 8; i++)
        send_msg(p, 0, &t, &info, 200000, i);
    ck_assert_int_eq(agw_sctp_assoc_shutdown(p->s[0].a), 0);
    ck_assert_int_eq(agw_sctp_assoc_send(p->s[0].a, &info, "x", 1), -ENOTCONN);
    ck_assert(run_until(p, both_down, 30000));
    verify(&p->s[1], &t);
    ck_assert_uint_eq(t.matched, 8);
    for (int i = 0; i < 2; i++) {
        const struct received *down = find_event(&p->s[i], AGW_SCTP_EVENT_DOWN, NULL);
        ck_assert_int_eq(down->error, 0);
        ck_assert_int_eq(agw_sctp_assoc_send(p->s[i].a, &info, "x", 1), -ENOTCONN);
    }
    free_traffic(&t);
    free_pair(p);
    free(p);
    finish();
}
END_TEST

START_TEST(abort_reaches_peer)
{
    start();
    struct pair *p = new_pair();
    connect_pair(p, NULL, NULL);
    ck_assert_int_eq(agw_sctp_assoc_abort(p->s[0].a), 0);
    ck_assert_int_eq(agw_sctp_assoc_abort(p->s[0].a), -ENOTCONN);
    ck_assert(run_until(p, both_down, 5000));
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(find_event(&p->s[i], AGW_SCTP_EVENT_DOWN, NULL)->error, -ECONNRESET);
    free_pair(p);
    free(p);
    finish();
}
END_TEST

/* Freeing one end mid-transfer: the other is unaffected in memory, and everything is released. */
START_TEST(free_mid_transfer)
{
    start();
    struct pair *p = new_pair();
    connect_pair(p, NULL, NULL);
    struct traffic t = {0};
    struct agw_sctp_sendinfo info = {.stream = 0, .ppid = DCEP_PPID_BINARY};
    send_msg(p, 0, &t, &info, 262144, 1);
    send_msg(p, 1, &t, &info, 262144, 2);
    agw_sctp_assoc_free(p->s[1].a);
    p->s[1].a = NULL;
    for (int i = 0; i < 300; i++) { /* A's packets now go nowhere; it retransmits */
        pump(p);
        tick();
    }
    ck_assert_uint_eq(count(&p->s[0], AGW_SCTP_EVENT_DOWN), 0);
    free_traffic(&t);
    free_pair(p);
    free(p);
    finish();
}
END_TEST

/* A quarter of the packets from A to B are lost: retransmissions (fast, and T3 from the timers
   on the fake clock) bring every message through. */
START_TEST(lossy_link)
{
    start();
    struct pair *p = new_pair();
    connect_pair(p, NULL, NULL);
    p->loss = 4;
    p->rng = 12345;
    struct traffic t = {0};
    for (uint32_t i = 0; i < 60; i++) {
        struct agw_sctp_sendinfo info = {.stream = (uint16_t)(i % 3), .ppid = DCEP_PPID_BINARY};
        send_msg(p, 0, &t, &info, 1 + (i * 4099u) % 30000, i);
    }
    waiting_for[1] = 60;
    waiting_for[0] = 0;
    ck_assert(run_until(p, all_delivered, 600000));
    verify(&p->s[1], &t);
    ck_assert_uint_eq(t.matched, 60);
    ck_assert_uint_gt(p->dropped, 100);
    ck_assert_uint_eq(count(&p->s[0], AGW_SCTP_EVENT_DOWN), 0);
    free_traffic(&t);
    free_pair(p);
    free(p);
    finish();
}
END_TEST

/* Partial reliability: with no retransmissions and a third of the packets lost, most messages
   of three packets are abandoned (FORWARD-TSN), what arrives is exact, and reliable traffic on
   another stream still flows. With a retransmission budget more get through. */
static size_t pr_delivered(enum agw_sctp_pr pr, uint32_t value)
{
    struct pair *p = new_pair();
    connect_pair(p, NULL, NULL);
    p->loss = 3;
    p->rng = 777;
    struct traffic t = {0};
    for (uint32_t i = 0; i < 40; i++) {
        struct agw_sctp_sendinfo info = {
            .stream = 2, .ppid = DCEP_PPID_BINARY, .unordered = true, .pr = pr, .pr_value = value};
        send_msg(p, 0, &t, &info, 3000, i);
    }
    struct agw_sctp_sendinfo rel = {.stream = 4, .ppid = DCEP_PPID_STRING};
    send_msg(p, 0, &t, &rel, 500, 99);
    waiting_for[0] = 0;
    waiting_for[1] = 41; /* not reached when messages are abandoned: run the full time */
    run_until(p, all_delivered, 300000);
    verify(&p->s[1], &t);
    ck_assert(t.msgs[40].seen);
    size_t n = t.matched - 1;
    free_traffic(&t);
    free_pair(p);
    free(p);
    return n;
}

START_TEST(partial_reliability)
{
    start();
    size_t none = pr_delivered(AGW_SCTP_PR_RTX, 0);
    size_t two = pr_delivered(AGW_SCTP_PR_RTX, 2);
    size_t reliable = pr_delivered(AGW_SCTP_PR_NONE, 0);
    ck_assert_uint_lt(none, 20);
    ck_assert_uint_gt(two, none);
    ck_assert_uint_eq(reliable, 40);
    struct pair *p = new_pair();
    connect_pair(p, NULL, NULL);
    struct agw_sctp_sendinfo bad = {.stream = 1, .ppid = 53, .pr = 7};
    ck_assert_int_eq(agw_sctp_assoc_send(p->s[0].a, &bad, "x", 1), -EINVAL);
    bad.pr = AGW_SCTP_PR_TTL;
    bad.pr_value = 100;
    ck_assert_int_eq(agw_sctp_assoc_send(p->s[0].a, &bad, "x", 1), 0);
    free_pair(p);
    free(p);
    finish();
}
END_TEST

/* Everything from A is lost for 5 s: only the retransmission timer (T3, with back-off) can
   bring the message through once the path heals. */
static bool b_got_one(struct pair *p)
{
    return messages(&p->s[1]) >= 1;
}

START_TEST(timer_retransmission)
{
    start();
    struct pair *p = new_pair();
    connect_pair(p, NULL, NULL);
    p->loss = 1;
    p->rng = 1;
    struct traffic t = {0};
    struct agw_sctp_sendinfo info = {.stream = 0, .ppid = DCEP_PPID_STRING};
    send_msg(p, 0, &t, &info, 100, 1);
    ck_assert(!run_until(p, b_got_one, 5000));
    ck_assert_uint_ge(p->dropped, 3); /* the first send and at least two timer retransmissions */
    p->loss = 0;
    ck_assert(run_until(p, b_got_one, 20000));
    verify(&p->s[1], &t);
    ck_assert_uint_eq(t.matched, 1);
    free_traffic(&t);
    free_pair(p);
    free(p);
    finish();
}
END_TEST

/* One byte flipped in flight, in the common header, the checksum itself, a chunk header or the
   user data: the packet is dropped before usrsctp (which, offloaded, would take it) and
   counted, and SCTP's retransmission brings the message through intact. */
START_TEST(corrupted_packet_dropped)
{
    start();
    struct pair *p = new_pair();
    connect_pair(p, NULL, NULL);
    static const size_t offsets[] = {0, 4, 8, 11, 12, 15, 16, 600, 1199};
    const size_t n = sizeof(offsets) / sizeof(offsets[0]);
    uint64_t errors = agw_sctp_checksum_errors();
    struct traffic t = {0};
    for (size_t k = 0; k < n; k++) {
        /* The second packet of a 20000-byte message: a full DATA packet with more behind it. */
        p->corrupt_at = p->s[0].packets_out + 2;
        p->corrupt_offset = offsets[k];
        struct agw_sctp_sendinfo info = {.stream = (uint16_t)k, .ppid = DCEP_PPID_BINARY};
        send_msg(p, 0, &t, &info, 20000, (uint32_t)k + 50);
        waiting_for[1] = k + 1;
        waiting_for[0] = 0;
        ck_assert_msg(run_until(p, all_delivered, 30000), "offset %zu: not delivered", offsets[k]);
        ck_assert_uint_eq(p->corrupted, k + 1);
        ck_assert_uint_eq(agw_sctp_checksum_errors() - errors, k + 1);
    }
    verify(&p->s[1], &t);
    ck_assert_uint_eq(t.matched, n);
    ck_assert_uint_eq(count(&p->s[0], AGW_SCTP_EVENT_DOWN), 0);
    ck_assert_uint_eq(count(&p->s[1], AGW_SCTP_EVENT_DOWN), 0);
    free_traffic(&t);
    free_pair(p);
    free(p);
    finish();
}
END_TEST

#define PAIRS 20

/* Many associations in one usrsctp: packets are routed by id to the right one. */
START_TEST(many_associations)
{
    start();
    struct pair *pairs = calloc(PAIRS, sizeof(*pairs));
    ck_assert_ptr_nonnull(pairs);
    for (int i = 0; i < PAIRS; i++)
        connect_pair(&pairs[i], NULL, NULL);
    struct traffic t[PAIRS];
    memset(t, 0, sizeof(t));
    for (int i = 0; i < PAIRS; i++) {
        struct agw_sctp_sendinfo info = {.stream = (uint16_t)i, .ppid = DCEP_PPID_BINARY};
        send_msg(&pairs[i], 0, &t[i], &info, 1000 + (size_t)i, (uint32_t)i);
    }
    for (int i = 0; i < PAIRS; i++) {
        waiting_for[1] = 1;
        waiting_for[0] = 0;
        ck_assert(run_until(&pairs[i], all_delivered, 5000));
        verify(&pairs[i].s[1], &t[i]);
        ck_assert_uint_eq(t[i].matched, 1);
        ck_assert_uint_eq(messages(&pairs[i].s[1]), 1);
    }
    for (int i = 0; i < PAIRS; i++) {
        free_traffic(&t[i]);
        free_pair(&pairs[i]);
    }
    free(pairs);
    finish();
}
END_TEST

/* A reader that does not drain its events stops reading; the sender sees -EAGAIN, then
   WRITABLE once the reader catches up, and nothing is lost. */
START_TEST(backpressure)
{
    start();
    struct pair *p = new_pair();
    struct agw_sctp_limits l0 = agw_sctp_default_limits, l1 = agw_sctp_default_limits;
    l0.send_buffer = 1000; /* smaller than one message: the queue takes one at a time */
    l1.recv_buffer = 100000;
    connect_pair(p, &l0, &l1);
    /* Fill without pumping B's events: push packets across but never call next_event on B. */
    uint8_t *msg = malloc(50000);
    ck_assert_ptr_nonnull(msg);
    fill_pattern(msg, 50000, 5);
    struct agw_sctp_sendinfo info = {.stream = 0, .ppid = DCEP_PPID_BINARY};
    size_t accepted = 0;
    int rc = 0;
    for (int round = 0; round < 2000 && rc != -EAGAIN; round++) {
        rc = agw_sctp_assoc_send(p->s[0].a, &info, msg, 50000);
        if (rc == 0)
            accepted++;
        for (int moved = 1; moved;) {
            moved = 0;
            const uint8_t *pkt;
            size_t len;
            for (int i = 0; i < 2; i++) {
                while (agw_sctp_assoc_pending_output(p->s[i].a, &pkt, &len) == 1) {
                    agw_sctp_assoc_input(p->s[1 - i].a, pkt, len);
                    moved = 1;
                }
            }
        }
        tick();
    }
    ck_assert_int_eq(rc, -EAGAIN);
    ck_assert_uint_gt(agw_sctp_assoc_buffered(p->s[0].a), 0);
    ck_assert_uint_le(agw_sctp_assoc_buffered(p->s[0].a), 50000);
    ck_assert_int_eq(agw_sctp_assoc_send(p->s[0].a, &info, msg, 1), -EAGAIN);
    /* usrsctp's own buffers hold some too, but not unboundedly many messages. */
    ck_assert_uint_gt(accepted, 2);
    ck_assert_uint_lt(accepted, 200);
    waiting_for[1] = accepted;
    waiting_for[0] = 0;
    ck_assert(run_until(p, all_delivered, 30000));
    ck_assert_uint_eq(messages(&p->s[1]), accepted);
    ck_assert_uint_eq(count(&p->s[0], AGW_SCTP_EVENT_WRITABLE), 1);
    for (size_t i = 0; i < p->s[1].n_ev; i++) {
        if (p->s[1].ev[i].type == AGW_SCTP_EVENT_MESSAGE)
            ck_assert_mem_eq(p->s[1].ev[i].data, msg, 50000);
    }
    free(msg);
    free_pair(p);
    free(p);
    finish();
}
END_TEST

/* The singleton can be started again after a finish (Check's no-fork mode relies on it). */
START_TEST(restart_singleton)
{
    for (int round = 0; round < 3; round++) {
        start();
        struct pair *p = new_pair();
        connect_pair(p, NULL, NULL);
        free_pair(p);
        free(p);
        finish();
    }
}
END_TEST

static Suite *assoc_suite(void)
{
    Suite *s = suite_create("sctp_assoc");
    TCase *tc = tcase_create("basic");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, connect_back_to_back);
    tcase_add_test(tc, bad_calls);
    tcase_add_test(tc, restart_singleton);
    suite_add_tcase(s, tc);

    tc = tcase_create("messages");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, messages_sizes_ppids);
    tcase_add_test(tc, small_mtu);
    tcase_add_test(tc, thousand_messages);
    tcase_add_test(tc, message_size_limits);
    tcase_add_test(tc, backpressure);
    tcase_add_test(tc, lossy_link);
    tcase_add_test(tc, partial_reliability);
    tcase_add_test(tc, timer_retransmission);
    tcase_add_test(tc, corrupted_packet_dropped);
    suite_add_tcase(s, tc);

    tc = tcase_create("lifecycle");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, stream_reset_closes_channel);
    tcase_add_test(tc, many_resets);
    tcase_add_test(tc, graceful_shutdown);
    tcase_add_test(tc, abort_reaches_peer);
    tcase_add_test(tc, free_mid_transfer);
    tcase_add_test(tc, many_associations);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(assoc_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
