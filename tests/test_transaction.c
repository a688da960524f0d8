/* Check suite for the Annex D.1 transaction layer (h248/transaction.c), driven by a fake clock.
 */
#include "h248/h248.h"
#include "h248/transaction.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

#define PEER_A 0x1111u
#define PEER_B 0x2222u

static struct h248_txn_in *in_make(const struct h248_txn_in_config *cfg)
{
    struct h248_txn_in *in = NULL;
    ck_assert_int_eq(h248_txn_in_new(cfg, &in), 0);
    ck_assert_ptr_nonnull(in);
    return in;
}

static struct h248_txn_in_config in_cfg(void)
{
    struct h248_txn_in_config c = h248_txn_in_default_config;
    return c;
}

static enum h248_txn_in_verdict begin(struct h248_txn_in *in, uint64_t peer, uint32_t tid,
                                      uint64_t now)
{
    enum h248_txn_in_verdict v = (enum h248_txn_in_verdict) - 1;
    ck_assert_int_eq(h248_txn_in_begin(in, peer, tid, now, &v, NULL, NULL), 0);
    return v;
}

/* A reply whose bytes tell which transaction it answers. */
static size_t reply_for(uint32_t tid, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "!/3 [192.0.2.1]:2944 P=%u{C=-{AV=ROOT}}", tid);
    ck_assert(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

static void complete(struct h248_txn_in *in, uint64_t peer, uint32_t tid, uint64_t now)
{
    char buf[128];
    size_t len = reply_for(tid, buf, sizeof(buf));
    ck_assert_int_eq(h248_txn_in_complete(in, peer, tid, buf, len, now), 0);
}

static void expect_replied(struct h248_txn_in *in, uint64_t peer, uint32_t tid, uint64_t now)
{
    char want[128];
    size_t want_len = reply_for(tid, want, sizeof(want));
    enum h248_txn_in_verdict v;
    const void *reply = NULL;
    size_t len = 0;
    ck_assert_int_eq(h248_txn_in_begin(in, peer, tid, now, &v, &reply, &len), 0);
    ck_assert_int_eq(v, H248_TXN_REPLIED);
    ck_assert_uint_eq(len, want_len);
    ck_assert_mem_eq(reply, want, len);
}

static struct h248_txn_in_stats in_stats(const struct h248_txn_in *in)
{
    struct h248_txn_in_stats st;
    ck_assert_int_eq(h248_txn_in_get_stats(in, &st), 0);
    return st;
}

static uint64_t in_deadline(const struct h248_txn_in *in)
{
    uint64_t d = 0;
    ck_assert_int_eq(h248_txn_in_next_deadline(in, &d), 0);
    return d;
}

/* Deterministic schedule: no jitter, limits far away unless a test sets them. */
static struct h248_txn_out_config out_cfg(void)
{
    struct h248_txn_out_config c = h248_txn_out_default_config;
    c.initial_rto_ms = 200;
    c.min_rto_ms = 100;
    c.max_rto_ms = 4000;
    c.adev_factor = 4;
    c.max_retransmissions = 7;
    c.max_total_ms = 600000;
    c.jitter = false;
    return c;
}

static struct h248_txn_out *out_make(const struct h248_txn_out_config *cfg)
{
    struct h248_txn_out *out = NULL;
    ck_assert_int_eq(h248_txn_out_new(cfg, &out), 0);
    ck_assert_ptr_nonnull(out);
    return out;
}

static const char request_bytes[] = "!/3 [192.0.2.9]:2944 T=1{C=-{N=ROOT{OE=1{it/ito}}}}";

static void send_req(struct h248_txn_out *out, uint32_t tid, uint64_t now)
{
    ck_assert_int_eq(h248_txn_out_send(out, tid, request_bytes, sizeof(request_bytes) - 1, now), 0);
}

static uint64_t out_deadline(const struct h248_txn_out *out)
{
    uint64_t d = 0;
    ck_assert_int_eq(h248_txn_out_next_deadline(out, &d), 0);
    return d;
}

static struct h248_txn_out_stats out_stats(const struct h248_txn_out *out)
{
    struct h248_txn_out_stats st;
    ck_assert_int_eq(h248_txn_out_get_stats(out, &st), 0);
    return st;
}

static struct h248_txn_out_rtt out_rtt(const struct h248_txn_out *out)
{
    struct h248_txn_out_rtt r;
    ck_assert_int_eq(h248_txn_out_get_rtt(out, &r), 0);
    return r;
}

static void expect_retransmit(struct h248_txn_out *out, uint32_t tid, uint64_t now)
{
    struct h248_txn_out_event ev;
    ck_assert_int_eq(h248_txn_out_poll(out, now, &ev), 0);
    ck_assert_int_eq(ev.kind, H248_TXN_OUT_RETRANSMIT);
    ck_assert_uint_eq(ev.tid, tid);
    ck_assert_uint_eq(ev.len, sizeof(request_bytes) - 1);
    ck_assert_mem_eq(ev.bytes, request_bytes, ev.len);
}

static void expect_out_event(struct h248_txn_out *out, uint64_t now,
                             enum h248_txn_out_event_kind kind, uint32_t tid)
{
    struct h248_txn_out_event ev;
    ck_assert_int_eq(h248_txn_out_poll(out, now, &ev), 0);
    ck_assert_int_eq(ev.kind, kind);
    ck_assert_uint_eq(ev.tid, tid);
}

static void expect_out_quiet(struct h248_txn_out *out, uint64_t now)
{
    struct h248_txn_out_event ev;
    ck_assert_int_eq(h248_txn_out_poll(out, now, &ev), -EAGAIN);
}

/* Sends one request at now and answers it rtt later, without retransmission. */
static void measured_exchange(struct h248_txn_out *out, uint64_t now, uint64_t rtt)
{
    uint32_t tid = 0;
    ck_assert_int_eq(h248_txn_out_next_tid(out, &tid), 0);
    send_req(out, tid, now);
    ck_assert_uint_gt(out_deadline(out), now + rtt);
    bool ack = true;
    ck_assert_int_eq(h248_txn_out_reply_received(out, tid, false, now + rtt, &ack), 0);
    ck_assert(!ack);
}

/* ---- incoming: duplicates, reply cache, LONG-TIMER ---- */

START_TEST(in_duplicate_while_executing)
{
    struct h248_txn_in *in = in_make(NULL);
    ck_assert_int_eq(begin(in, PEER_A, 7, 1000), H248_TXN_NEW);
    ck_assert_int_eq(begin(in, PEER_A, 7, 1100), H248_TXN_EXECUTING);
    ck_assert_int_eq(begin(in, PEER_A, 7, 1200), H248_TXN_EXECUTING);
    /* The same id from another MGC is another transaction (D.1.2.1: id and mId). */
    ck_assert_int_eq(begin(in, PEER_B, 7, 1200), H248_TXN_NEW);
    struct h248_txn_in_stats st = in_stats(in);
    ck_assert_uint_eq(st.requests, 2);
    ck_assert_uint_eq(st.duplicates_running, 2);
    ck_assert_uint_eq(st.pendings, 2);
    ck_assert_uint_eq(st.entries, 2);
    h248_txn_in_free(in);
}
END_TEST

START_TEST(in_duplicate_after_reply_resends_same_bytes)
{
    struct h248_txn_in *in = in_make(NULL);
    ck_assert_int_eq(begin(in, PEER_A, 42, 0), H248_TXN_NEW);
    complete(in, PEER_A, 42, 10);
    ck_assert_int_eq(h248_txn_in_complete(in, PEER_A, 42, "x", 1, 20), -EALREADY);
    /* Every repetition within LONG-TIMER gets the stored bytes, never a second execution. */
    for (uint64_t t = 10; t < 10 + 30000; t += 997)
        expect_replied(in, PEER_A, 42, t);
    expect_replied(in, PEER_A, 42, 10 + 30000 - 1);
    struct h248_txn_in_stats st = in_stats(in);
    ck_assert_uint_eq(st.requests, 1);
    ck_assert_uint_eq(st.duplicates_replied, 32);
    char tmp[128];
    ck_assert_uint_eq(st.reply_bytes, reply_for(42, tmp, sizeof(tmp)));
    /* The caller's buffer was copied: changing it does not change what is resent. */
    char buf[64];
    size_t len = reply_for(43, buf, sizeof(buf));
    ck_assert_int_eq(begin(in, PEER_A, 43, 20), H248_TXN_NEW);
    ck_assert_int_eq(h248_txn_in_complete(in, PEER_A, 43, buf, len, 20), 0);
    memset(buf, 'z', sizeof(buf));
    expect_replied(in, PEER_A, 43, 30);
    h248_txn_in_free(in);
}
END_TEST

START_TEST(in_expiry_after_long_timer)
{
    struct h248_txn_in_config cfg = in_cfg();
    cfg.provisional_ms = 0;
    struct h248_txn_in *in = in_make(&cfg);
    ck_assert_int_eq(begin(in, PEER_A, 5, 100), H248_TXN_NEW);
    ck_assert_uint_eq(in_deadline(in), UINT64_MAX);
    complete(in, PEER_A, 5, 200);
    ck_assert_uint_eq(in_deadline(in), 200 + 30000);
    size_t freed = 99;
    ck_assert_int_eq(h248_txn_in_expire(in, 200 + 29999, &freed), 0);
    ck_assert_uint_eq(freed, 0);
    expect_replied(in, PEER_A, 5, 200 + 29999);
    ck_assert_int_eq(h248_txn_in_expire(in, 200 + 30000, &freed), 0);
    ck_assert_uint_eq(freed, 1);
    ck_assert_uint_eq(in_deadline(in), UINT64_MAX);
    /* A genuinely new request that reuses the id after LONG-TIMER is executed. */
    ck_assert_int_eq(begin(in, PEER_A, 5, 200 + 30001), H248_TXN_NEW);

    /* Without expire(), begin() itself sees that LONG-TIMER is over. */
    complete(in, PEER_A, 5, 40000);
    ck_assert_int_eq(begin(in, PEER_A, 5, 40000 + 29999), H248_TXN_REPLIED);
    ck_assert_int_eq(begin(in, PEER_A, 5, 40000 + 30000), H248_TXN_NEW);
    struct h248_txn_in_stats st = in_stats(in);
    ck_assert_uint_eq(st.expired, 2);
    ck_assert_uint_eq(st.entries, 1);
    ck_assert_uint_eq(st.reply_bytes, 0);
    h248_txn_in_free(in);
}
END_TEST

START_TEST(in_ack_ranges_free_replies)
{
    struct h248_txn_in *in = in_make(NULL);
    for (uint32_t tid = 10; tid < 20; tid++) {
        ck_assert_int_eq(begin(in, PEER_A, tid, 0), H248_TXN_NEW);
        complete(in, PEER_A, tid, 0);
        ck_assert_int_eq(begin(in, PEER_B, tid, 0), H248_TXN_NEW);
        complete(in, PEER_B, tid, 0);
    }
    ck_assert_int_eq(begin(in, PEER_A, 30, 0), H248_TXN_NEW); /* still executing */
    uint64_t bytes = in_stats(in).reply_bytes;

    ck_assert_int_eq(h248_txn_in_ack(in, PEER_A, 12, 15), 0);
    ck_assert_uint_eq(in_stats(in).acks, 4);
    char tmp[128];
    ck_assert_uint_eq(in_stats(in).reply_bytes, bytes - 4 * reply_for(12, tmp, sizeof(tmp)));
    /* Acknowledged: repetitions are silently discarded until LONG-TIMER (D.1.2.2, D.1.1). */
    for (uint32_t tid = 12; tid <= 15; tid++)
        ck_assert_int_eq(begin(in, PEER_A, tid, 100), H248_TXN_DISCARD);
    expect_replied(in, PEER_A, 11, 100);
    expect_replied(in, PEER_A, 16, 100);
    expect_replied(in, PEER_B, 12, 100); /* the other MGC's transactions are untouched */

    /* Single id, an id acknowledged twice, an executing id, an unknown id: only 19 counts. */
    ck_assert_int_eq(h248_txn_in_ack(in, PEER_A, 19, 19), 0);
    ck_assert_int_eq(h248_txn_in_ack(in, PEER_A, 19, 19), 0);
    ck_assert_int_eq(h248_txn_in_ack(in, PEER_A, 30, 30), 0);
    ck_assert_int_eq(h248_txn_in_ack(in, PEER_A, 1000, 1000), 0);
    ck_assert_uint_eq(in_stats(in).acks, 5);
    ck_assert_int_eq(begin(in, PEER_A, 30, 100), H248_TXN_EXECUTING);

    /* A reversed range is malformed: ignored and counted, nothing freed. */
    ck_assert_int_eq(h248_txn_in_ack(in, PEER_B, 19, 10), -EINVAL);
    ck_assert_uint_eq(in_stats(in).acks_invalid, 1);
    expect_replied(in, PEER_B, 10, 100);

    /* A range far wider than the table is handled by walking the stored replies. */
    ck_assert_int_eq(h248_txn_in_ack(in, PEER_B, 0, UINT32_MAX), 0);
    ck_assert_uint_eq(in_stats(in).acks, 15);
    for (uint32_t tid = 10; tid < 20; tid++)
        ck_assert_int_eq(begin(in, PEER_B, tid, 100), H248_TXN_DISCARD);

    /* Acknowledged ids are kept for LONG-TIMER after the reply, then forgotten. */
    size_t freed = 0;
    ck_assert_int_eq(h248_txn_in_expire(in, 30000, &freed), 0);
    ck_assert_uint_eq(freed, 20);
    ck_assert_int_eq(begin(in, PEER_A, 12, 30000), H248_TXN_NEW);
    ck_assert_uint_eq(in_stats(in).reply_bytes, 0);
    h248_txn_in_free(in);
}
END_TEST

START_TEST(in_byte_budget_evicts_oldest)
{
    struct h248_txn_in_config cfg = in_cfg();
    cfg.max_reply_bytes = 100;
    struct h248_txn_in *in = in_make(&cfg);
    char r[40];
    memset(r, 'r', sizeof(r));
    for (uint32_t tid = 1; tid <= 3; tid++) {
        ck_assert_int_eq(begin(in, PEER_A, tid, tid), H248_TXN_NEW);
        ck_assert_int_eq(h248_txn_in_complete(in, PEER_A, tid, r, sizeof(r), tid), 0);
    }
    /* 3 * 40 > 100: the oldest reply (tid 1) went; its id stays, so no second execution. */
    struct h248_txn_in_stats st = in_stats(in);
    ck_assert_uint_eq(st.evictions, 1);
    ck_assert_uint_eq(st.reply_bytes, 80);
    ck_assert_int_eq(begin(in, PEER_A, 1, 10), H248_TXN_DISCARD);
    ck_assert_int_eq(begin(in, PEER_A, 2, 10), H248_TXN_REPLIED);
    ck_assert_int_eq(begin(in, PEER_A, 3, 10), H248_TXN_REPLIED);

    /* A reply larger than the whole budget is not stored at all. */
    char big[101];
    memset(big, 'b', sizeof(big));
    ck_assert_int_eq(begin(in, PEER_A, 4, 10), H248_TXN_NEW);
    ck_assert_int_eq(h248_txn_in_complete(in, PEER_A, 4, big, sizeof(big), 10), 0);
    ck_assert_uint_eq(in_stats(in).evictions, 2);
    ck_assert_uint_eq(in_stats(in).reply_bytes, 80);
    ck_assert_int_eq(begin(in, PEER_A, 4, 20), H248_TXN_DISCARD);
    h248_txn_in_free(in);
}
END_TEST

START_TEST(in_entry_budget_evicts_completed_never_executing)
{
    struct h248_txn_in_config cfg = in_cfg();
    cfg.max_entries = 4;
    struct h248_txn_in *in = in_make(&cfg);
    for (uint32_t tid = 1; tid <= 4; tid++) {
        ck_assert_int_eq(begin(in, PEER_A, tid, tid), H248_TXN_NEW);
        complete(in, PEER_A, tid, tid);
    }
    ck_assert_int_eq(h248_txn_in_ack(in, PEER_A, 3, 3), 0);
    /* Full: an id-only entry (3) goes before the oldest reply (1). */
    ck_assert_int_eq(begin(in, PEER_A, 5, 10), H248_TXN_NEW);
    ck_assert_uint_eq(in_stats(in).evictions, 1);
    ck_assert_int_eq(begin(in, PEER_A, 1, 10), H248_TXN_REPLIED);
    ck_assert_int_eq(begin(in, PEER_A, 6, 10), H248_TXN_NEW); /* evicts reply 1 */
    ck_assert_int_eq(begin(in, PEER_A, 7, 10), H248_TXN_NEW); /* evicts reply 2 */
    ck_assert_int_eq(begin(in, PEER_A, 8, 10), H248_TXN_NEW); /* evicts reply 4 */
    ck_assert_uint_eq(in_stats(in).evictions, 4);
    /* Everything executes now: nothing may be dropped. */
    enum h248_txn_in_verdict v;
    ck_assert_int_eq(h248_txn_in_begin(in, PEER_A, 9, 10, &v, NULL, NULL), -ENOBUFS);
    ck_assert_uint_eq(in_stats(in).rejected, 1);
    for (uint32_t tid = 5; tid <= 8; tid++)
        ck_assert_int_eq(begin(in, PEER_A, tid, 11), H248_TXN_EXECUTING);
    /* Aborting one makes room again. */
    ck_assert_int_eq(h248_txn_in_abort(in, PEER_A, 8), 0);
    ck_assert_int_eq(h248_txn_in_abort(in, PEER_A, 8), -ENOENT);
    ck_assert_int_eq(begin(in, PEER_A, 9, 12), H248_TXN_NEW);
    ck_assert_uint_eq(in_stats(in).entries, 4);
    h248_txn_in_free(in);
}
END_TEST

/* ---- incoming: provisional responses ---- */

START_TEST(in_provisional_timer_fires_and_repeats)
{
    struct h248_txn_in *in = in_make(NULL); /* 500 ms */
    struct h248_txn_in_event ev;
    ck_assert_int_eq(begin(in, PEER_A, 77, 1000), H248_TXN_NEW);
    ck_assert_uint_eq(in_deadline(in), 1500);
    ck_assert_int_eq(h248_txn_in_poll(in, 1499, &ev), -EAGAIN);
    bool ia = true;
    ck_assert_int_eq(h248_txn_in_needs_imm_ack(in, PEER_A, 77, &ia), 0);
    ck_assert(!ia);
    for (uint64_t t = 1500; t <= 3000; t += 500) {
        ck_assert_int_eq(h248_txn_in_poll(in, t, &ev), 0);
        ck_assert_int_eq(ev.kind, H248_TXN_IN_SEND_PENDING);
        ck_assert_uint_eq(ev.peer, PEER_A);
        ck_assert_uint_eq(ev.tid, 77);
        ck_assert_int_eq(h248_txn_in_poll(in, t, &ev), -EAGAIN);
        ck_assert_uint_eq(in_deadline(in), t + 500);
    }
    ck_assert_uint_eq(in_stats(in).pendings, 4);
    /* A Pending was sent: the final reply must carry ImmAckRequired (D.1.4). */
    ck_assert_int_eq(h248_txn_in_needs_imm_ack(in, PEER_A, 77, &ia), 0);
    ck_assert(ia);
    complete(in, PEER_A, 77, 3200);
    ck_assert_int_eq(h248_txn_in_poll(in, 10000, &ev), -EAGAIN);
    ck_assert_uint_eq(in_deadline(in), 3200 + 30000);
    ck_assert_int_eq(h248_txn_in_needs_imm_ack(in, PEER_A, 77, &ia), -ENOENT);

    /* A Pending sent for a repetition restarts the period. */
    ck_assert_int_eq(begin(in, PEER_A, 78, 4000), H248_TXN_NEW);
    ck_assert_int_eq(begin(in, PEER_A, 78, 4300), H248_TXN_EXECUTING);
    ck_assert_uint_eq(in_deadline(in), 4800);
    ck_assert_int_eq(h248_txn_in_poll(in, 4500, &ev), -EAGAIN);
    ck_assert_int_eq(h248_txn_in_poll(in, 4800, &ev), 0);
    ck_assert_uint_eq(ev.tid, 78);

    /* Switched off by the MGC: no more timed Pendings. */
    ck_assert_int_eq(h248_txn_in_set_root(in, 0, 0), 0);
    ck_assert_int_eq(h248_txn_in_poll(in, 100000, &ev), -EAGAIN);
    h248_txn_in_free(in);
}
END_TEST

START_TEST(in_pending_limit_stops_transaction)
{
    struct h248_txn_in_config cfg = in_cfg();
    cfg.provisional_ms = 100;
    cfg.pending_limit = 2;
    struct h248_txn_in *in = in_make(&cfg);
    struct h248_txn_in_event ev;
    ck_assert_int_eq(begin(in, PEER_A, 1, 0), H248_TXN_NEW);
    ck_assert_int_eq(h248_txn_in_poll(in, 100, &ev), 0);
    ck_assert_int_eq(ev.kind, H248_TXN_IN_SEND_PENDING);
    ck_assert_int_eq(begin(in, PEER_A, 1, 150), H248_TXN_EXECUTING); /* second Pending */
    ck_assert_int_eq(h248_txn_in_poll(in, 250, &ev), 0);
    ck_assert_int_eq(ev.kind, H248_TXN_IN_PENDING_LIMIT);
    ck_assert_uint_eq(ev.tid, 1);
    ck_assert_int_eq(h248_txn_in_poll(in, 10000, &ev), -EAGAIN); /* reported once */
    ck_assert_int_eq(begin(in, PEER_A, 1, 300), H248_TXN_PENDING_LIMIT);
    struct h248_txn_in_stats st = in_stats(in);
    ck_assert_uint_eq(st.pendings, 2);
    ck_assert_uint_eq(st.pending_limits, 1);
    /* The caller answers with error 506; that reply is cached like any other. */
    complete(in, PEER_A, 1, 400);
    expect_replied(in, PEER_A, 1, 500);
    h248_txn_in_free(in);
}
END_TEST

/* ---- incoming: scale and index ---- */

START_TEST(in_ten_thousand_entries)
{
    struct h248_txn_in_config cfg = in_cfg();
    cfg.max_entries = 10000;
    cfg.max_reply_bytes = 10000 * 64;
    struct h248_txn_in *in = in_make(&cfg);
    for (int round = 0; round < 2; round++) {
        uint64_t t0 = (uint64_t)round * 100000;
        for (uint32_t k = 0; k < 10000; k++) {
            uint64_t peer = k % 4;
            uint32_t tid = k * 2654435761u; /* scattered ids */
            ck_assert_int_eq(begin(in, peer, tid, t0 + k / 10), H248_TXN_NEW);
        }
        struct h248_txn_in_event ev;
        size_t pendings = 0;
        while (h248_txn_in_poll(in, t0 + 500, &ev) == 0)
            pendings++;
        ck_assert_uint_eq(pendings, 10); /* begun at t0 + k / 10: only k < 10 are due */
        for (uint32_t k = 0; k < 10000; k++)
            complete(in, k % 4, k * 2654435761u, t0 + 1000 + k);
        ck_assert_uint_eq(in_stats(in).entries, 10000);
        for (uint32_t k = 0; k < 10000; k += 97)
            expect_replied(in, k % 4, k * 2654435761u, t0 + 20000);
        ck_assert_uint_eq(in_deadline(in), t0 + 1000 + 30000);
        size_t freed = 0;
        ck_assert_int_eq(h248_txn_in_expire(in, t0 + 1000 + 30000 + 4999, &freed), 0);
        ck_assert_uint_eq(freed, 5000);
        ck_assert_int_eq(h248_txn_in_expire(in, t0 + 1000 + 30000 + 9999, &freed), 0);
        ck_assert_uint_eq(freed, 5000);
        struct h248_txn_in_stats st = in_stats(in);
        ck_assert_uint_eq(st.entries, 0);
        ck_assert_uint_eq(st.reply_bytes, 0);
        ck_assert_uint_eq(in_deadline(in), UINT64_MAX);
    }
    ck_assert_uint_eq(in_stats(in).evictions, 0);
    h248_txn_in_free(in);
}
END_TEST

/* Random begin/abort against a model: exercises probing and backward-shift deletion. */
START_TEST(in_index_matches_model)
{
    enum { KEYS = 300, CAP = 256 };
    struct h248_txn_in_config cfg = in_cfg();
    cfg.max_entries = CAP;
    cfg.provisional_ms = 0;
    struct h248_txn_in *in = in_make(&cfg);
    static bool live[KEYS];
    memset(live, 0, sizeof(live));
    unsigned nlive = 0;
    uint64_t x = 88172645463325252ULL;
    for (int op = 0; op < 200000; op++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned k = (unsigned)(x % KEYS);
        uint64_t peer = k % 3;
        uint32_t tid = k / 3 * 0x10001u;
        if ((x >> 32) % 2 == 0) {
            enum h248_txn_in_verdict v;
            int rc = h248_txn_in_begin(in, peer, tid, 0, &v, NULL, NULL);
            if (live[k]) {
                ck_assert_int_eq(rc, 0);
                ck_assert_int_eq(v, H248_TXN_EXECUTING);
            } else if (nlive == CAP) {
                ck_assert_int_eq(rc, -ENOBUFS);
            } else {
                ck_assert_int_eq(rc, 0);
                ck_assert_int_eq(v, H248_TXN_NEW);
                live[k] = true;
                nlive++;
            }
        } else {
            ck_assert_int_eq(h248_txn_in_abort(in, peer, tid), live[k] ? 0 : -ENOENT);
            if (live[k]) {
                live[k] = false;
                nlive--;
            }
        }
    }
    ck_assert_uint_eq(in_stats(in).entries, nlive);
    h248_txn_in_free(in);
}
END_TEST

START_TEST(in_bad_arguments)
{
    struct h248_txn_in *in = NULL;
    struct h248_txn_in_config cfg = in_cfg();
    cfg.max_entries = 0;
    ck_assert_int_eq(h248_txn_in_new(&cfg, &in), -EINVAL);
    ck_assert_ptr_null(in);
    cfg = in_cfg();
    cfg.long_timer_ms = 0;
    ck_assert_int_eq(h248_txn_in_new(&cfg, &in), -EINVAL);
    cfg = in_cfg();
    cfg.max_entries = UINT32_MAX;
    ck_assert_int_eq(h248_txn_in_new(&cfg, &in), -EINVAL);
    in = in_make(NULL);
    enum h248_txn_in_verdict v;
    ck_assert_int_eq(h248_txn_in_begin(in, 1, 1, 0, NULL, NULL, NULL), -EINVAL);
    ck_assert_int_eq(h248_txn_in_begin(NULL, 1, 1, 0, &v, NULL, NULL), -EINVAL);
    ck_assert_int_eq(h248_txn_in_complete(in, 1, 1, "r", 1, 0), -ENOENT);
    ck_assert_int_eq(begin(in, 1, 1, 0), H248_TXN_NEW);
    ck_assert_int_eq(h248_txn_in_complete(in, 1, 1, "r", 0, 0), -EINVAL);
    ck_assert_int_eq(h248_txn_in_complete(in, 1, 1, NULL, 1, 0), -EINVAL);
    ck_assert_int_eq(h248_txn_in_abort(in, 1, 2), -ENOENT);
    h248_txn_in_free(in);
    h248_txn_in_free(NULL);
}
END_TEST

/* ---- outgoing: retransmission timers ---- */

START_TEST(out_backoff_schedule_exact)
{
    struct h248_txn_out_config cfg = out_cfg();
    struct h248_txn_out *out = out_make(&cfg);
    send_req(out, 1, 0);
    /* AAD 200 ms, ADEV 0, doubled after each retransmission, capped at 4 s (D.1.3). The first
     * five timers add up to 6.2 s: the "about 6 seconds" of D.1.5 for a 200 ms initial timer. */
    static const uint64_t when[] = {200, 600, 1400, 3000, 6200, 10200, 14200};
    for (size_t k = 0; k < sizeof(when) / sizeof(when[0]); k++) {
        ck_assert_uint_eq(out_deadline(out), when[k]);
        expect_out_quiet(out, when[k] - 1);
        expect_retransmit(out, 1, when[k]);
        expect_out_quiet(out, when[k]);
    }
    /* The seventh repetition had its full timer too; then the MGC is declared lost. */
    ck_assert_uint_eq(out_deadline(out), 18200);
    expect_out_quiet(out, 18199);
    expect_out_event(out, 18200, H248_TXN_OUT_GIVE_UP, 1);
    ck_assert_uint_eq(out_deadline(out), UINT64_MAX);
    struct h248_txn_out_stats st = out_stats(out);
    ck_assert_uint_eq(st.retransmissions, 7);
    ck_assert_uint_eq(st.give_ups, 1);
    ck_assert_uint_eq(st.outstanding, 0);
    ck_assert_int_eq(h248_txn_out_reply_received(out, 1, false, 18300, NULL), -ENOENT);
    h248_txn_out_free(out);
}
END_TEST

START_TEST(out_tmax_gives_up_before_retransmitting)
{
    struct h248_txn_out_config cfg = out_cfg();
    cfg.max_retransmissions = 100;
    cfg.max_total_ms = 5000;
    struct h248_txn_out *out = out_make(&cfg);
    send_req(out, 9, 1000);
    expect_retransmit(out, 9, 1200);
    expect_retransmit(out, 9, 1600);
    expect_retransmit(out, 9, 2400);
    expect_retransmit(out, 9, 4000);
    /* 6200 ms after the first sending > T-MAX: no fifth retransmission (D.1.5). */
    expect_out_event(out, 7200, H248_TXN_OUT_GIVE_UP, 9);
    ck_assert_uint_eq(out_stats(out).retransmissions, 4);
    h248_txn_out_free(out);
}
END_TEST

START_TEST(out_karn_retransmitted_reply_not_sampled)
{
    struct h248_txn_out_config cfg = out_cfg();
    struct h248_txn_out *out = out_make(&cfg);
    send_req(out, 1, 0);
    expect_retransmit(out, 1, 200);
    ck_assert_int_eq(h248_txn_out_reply_received(out, 1, false, 250, NULL), 0);
    struct h248_txn_out_rtt r = out_rtt(out);
    ck_assert(!r.measured);
    ck_assert_uint_eq(r.aad_ms, 200);
    ck_assert_uint_eq(r.adev_ms, 0);
    ck_assert_uint_eq(out_stats(out).rtt_samples, 0);
    /* The doubled timer is kept for the next request until a valid sample. */
    ck_assert_uint_eq(r.backoff, 1);
    ck_assert_uint_eq(r.rto_ms, 400);
    send_req(out, 2, 1000);
    ck_assert_uint_eq(out_deadline(out), 1400);
    ck_assert_int_eq(h248_txn_out_reply_received(out, 2, false, 1050, NULL), 0);
    r = out_rtt(out);
    ck_assert(r.measured);
    ck_assert_uint_eq(r.aad_ms, 50);
    ck_assert_uint_eq(r.adev_ms, 25);
    ck_assert_uint_eq(r.backoff, 0);
    ck_assert_uint_eq(r.rto_ms, 150); /* 50 + 4 * 25 */
    ck_assert_uint_eq(out_stats(out).rtt_samples, 1);
    /* Second sample 150: AAD += (150 - 50) / 8, ADEV += (|150 - 50| - 25) / 4. */
    send_req(out, 20, 1500);
    ck_assert_int_eq(h248_txn_out_reply_received(out, 20, false, 1650, NULL), 0);
    r = out_rtt(out);
    ck_assert_uint_eq(r.aad_ms, 63);  /* 62.5 */
    ck_assert_uint_eq(r.adev_ms, 44); /* 43.75 */
    ck_assert_uint_eq(r.rto_ms, 63 + 4 * 44);
    /* A reply that followed a Pending measures execution time: not sampled either. */
    send_req(out, 3, 2000);
    ck_assert_int_eq(h248_txn_out_pending_received(out, 3, 2010), 0);
    ck_assert_int_eq(h248_txn_out_reply_received(out, 3, false, 5000, NULL), 0);
    ck_assert_uint_eq(out_stats(out).rtt_samples, 2);
    ck_assert_uint_eq(out_rtt(out).aad_ms, 63);
    h248_txn_out_free(out);
}
END_TEST

START_TEST(out_estimate_converges)
{
    struct h248_txn_out_config cfg = out_cfg();
    struct h248_txn_out *out = out_make(&cfg);
    uint64_t now = 0;
    for (int i = 0; i < 20; i++, now += 1000)
        measured_exchange(out, now, 180);
    ck_assert_uint_eq(out_rtt(out).aad_ms, 180);
    for (int i = 0; i < 100; i++, now += 1000)
        measured_exchange(out, now, 120);
    struct h248_txn_out_rtt r = out_rtt(out);
    ck_assert_uint_ge(r.aad_ms, 119);
    ck_assert_uint_le(r.aad_ms, 121);
    ck_assert_uint_le(r.adev_ms, 2);
    ck_assert_uint_ge(r.rto_ms, 120);
    ck_assert_uint_le(r.rto_ms, 129);
    /* The next request gets exactly that timer. */
    send_req(out, 999, now);
    ck_assert_uint_eq(out_deadline(out), now + r.rto_ms);
    /* The floor holds on a fast network. */
    ck_assert_int_eq(h248_txn_out_cancel(out, 999), 0);
    for (int i = 0; i < 100; i++, now += 1000)
        measured_exchange(out, now, 2);
    ck_assert_uint_eq(out_rtt(out).rto_ms, 100);
    ck_assert_int_eq(h248_txn_out_reset_rtt(out), 0);
    ck_assert(!out_rtt(out).measured);
    ck_assert_uint_eq(out_rtt(out).rto_ms, 200);
    h248_txn_out_free(out);
}
END_TEST

START_TEST(out_jitter_stays_in_bounds)
{
    struct h248_txn_out_config cfg = out_cfg();
    cfg.jitter = true;
    cfg.max_retransmissions = 6;
    bool varied = false;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        cfg.seed = seed;
        struct h248_txn_out *out = out_make(&cfg);
        send_req(out, 1, 0);
        uint64_t now = out_deadline(out);
        ck_assert_uint_eq(now, 200); /* the first timer is not randomised */
        for (uint32_t k = 1; k <= 6; k++) {
            expect_retransmit(out, 1, now);
            uint64_t a = 200ull << k;
            if (a > 4000)
                a = 4000;
            uint64_t interval = out_deadline(out) - now;
            /* D.1.3: uniformly between AAD/2 and AAD, AAD doubled per retransmission. */
            ck_assert_uint_ge(interval, a / 2);
            ck_assert_uint_le(interval, a);
            varied = varied || interval != a;
            now += interval;
        }
        expect_out_event(out, now, H248_TXN_OUT_GIVE_UP, 1);
        h248_txn_out_free(out);
    }
    ck_assert(varied);
}
END_TEST

START_TEST(out_many_outstanding_raise_nothing_spurious)
{
    /* Retransmissions of several requests interleave in deadline order. */
    struct h248_txn_out_config cfg = out_cfg();
    struct h248_txn_out *out = out_make(&cfg);
    send_req(out, 1, 0);
    expect_retransmit(out, 1, 200);
    /* Sent after 1 backed off: they start from the doubled AAD, 400 ms (Karn). */
    send_req(out, 2, 250);
    send_req(out, 3, 300);
    expect_retransmit(out, 1, 600);
    expect_out_quiet(out, 649);
    expect_retransmit(out, 2, 650);
    expect_retransmit(out, 3, 700);
    /* Polled late, due events still come out earliest first: 1 at 1400, 2 at 1450, 3 at 1500. */
    expect_retransmit(out, 1, 10000);
    expect_retransmit(out, 2, 10000);
    expect_retransmit(out, 3, 10000);
    expect_out_quiet(out, 10000);
    h248_txn_out_free(out);
}
END_TEST

/* ---- outgoing: Pending, replies, ids ---- */

START_TEST(out_pending_switches_timer)
{
    struct h248_txn_out_config cfg = out_cfg();
    cfg.pending_interval_ms = 1000;
    cfg.pending_timeout_ms = 5000;
    struct h248_txn_out *out = out_make(&cfg);
    send_req(out, 4, 0);
    ck_assert_int_eq(h248_txn_out_pending_received(out, 4, 100), 0);
    /* No retransmission at 200: the pending timer replaced the normal one (D.1.4). */
    expect_out_quiet(out, 200);
    ck_assert_uint_eq(out_deadline(out), 1100);
    expect_retransmit(out, 4, 1100); /* slow repetition, in case the final reply was lost */
    ck_assert_uint_eq(out_deadline(out), 3100);
    expect_retransmit(out, 4, 3100);
    ck_assert_uint_eq(out_deadline(out), 5100); /* min(3100 + 4000, 100 + 5000) */
    /* Nothing since the Pending for pending_timeout: give up. */
    expect_out_event(out, 5100, H248_TXN_OUT_GIVE_UP, 4);

    /* Each Pending restarts the timer; the reply that follows asks for an immediate ack. */
    send_req(out, 5, 10000);
    ck_assert_int_eq(h248_txn_out_pending_received(out, 5, 10100), 0);
    ck_assert_int_eq(h248_txn_out_pending_received(out, 5, 10900), 0);
    ck_assert_uint_eq(out_deadline(out), 11900);
    bool ack = false;
    ck_assert_int_eq(h248_txn_out_reply_received(out, 5, false, 11500, &ack), 0);
    ck_assert(ack);
    /* D.1.4: a Pending after the reply is ignored. */
    ck_assert_int_eq(h248_txn_out_pending_received(out, 5, 11600), -ENOENT);
    struct h248_txn_out_stats st = out_stats(out);
    ck_assert_uint_eq(st.pendings, 3);
    ck_assert_uint_eq(st.unknown_pendings, 1);
    ck_assert_uint_eq(st.outstanding, 0);
    h248_txn_out_free(out);

    /* A pending timeout shorter than the interval ends the wait without a repetition. */
    cfg.pending_timeout_ms = 500;
    out = out_make(&cfg);
    send_req(out, 7, 0);
    ck_assert_int_eq(h248_txn_out_pending_received(out, 7, 100), 0);
    ck_assert_uint_eq(out_deadline(out), 600);
    expect_out_event(out, 600, H248_TXN_OUT_GIVE_UP, 7);
    ck_assert_uint_eq(out_stats(out).retransmissions, 0);
    h248_txn_out_free(out);
}
END_TEST

START_TEST(out_pending_limit)
{
    struct h248_txn_out_config cfg = out_cfg();
    cfg.pending_limit = 2;
    struct h248_txn_out *out = out_make(&cfg);
    send_req(out, 6, 0);
    ck_assert_int_eq(h248_txn_out_pending_received(out, 6, 100), 0);
    ck_assert_int_eq(h248_txn_out_pending_received(out, 6, 200), 0);
    expect_out_quiet(out, 300);
    ck_assert_int_eq(h248_txn_out_pending_received(out, 6, 300), 0);
    expect_out_event(out, 300, H248_TXN_OUT_PENDING_LIMIT, 6);
    struct h248_txn_out_stats st = out_stats(out);
    ck_assert_uint_eq(st.pending_limits, 1);
    ck_assert_uint_eq(st.give_ups, 0);
    ck_assert_uint_eq(st.outstanding, 0);
    h248_txn_out_free(out);
}
END_TEST

START_TEST(out_replies_and_imm_ack)
{
    struct h248_txn_out *out = out_make(NULL);
    send_req(out, 10, 0);
    send_req(out, 11, 0);
    bool ack = true;
    ck_assert_int_eq(h248_txn_out_reply_received(out, 10, false, 30, &ack), 0);
    ck_assert(!ack);
    ck_assert_int_eq(h248_txn_out_reply_received(out, 11, true, 30, &ack), 0);
    ck_assert(ack);
    /* Unknown (or already answered) replies are counted and ignored. */
    ack = true;
    ck_assert_int_eq(h248_txn_out_reply_received(out, 11, true, 40, &ack), -ENOENT);
    ck_assert(!ack);
    ck_assert_int_eq(h248_txn_out_reply_received(out, 12345, false, 40, NULL), -ENOENT);
    struct h248_txn_out_stats st = out_stats(out);
    ck_assert_uint_eq(st.replies, 2);
    ck_assert_uint_eq(st.unknown_replies, 2);
    ck_assert_uint_eq(st.requests, 2);
    h248_txn_out_free(out);
}
END_TEST

START_TEST(out_tid_wraparound)
{
    struct h248_txn_out_config cfg = out_cfg();
    cfg.first_tid = UINT32_MAX - 1;
    struct h248_txn_out *out = out_make(&cfg);
    uint32_t tid = 0;
    ck_assert_int_eq(h248_txn_out_next_tid(out, &tid), 0);
    ck_assert_uint_eq(tid, UINT32_MAX - 1);
    ck_assert_int_eq(h248_txn_out_next_tid(out, &tid), 0);
    ck_assert_uint_eq(tid, UINT32_MAX);
    send_req(out, UINT32_MAX, 0);
    send_req(out, 2, 0); /* taken by hand: the allocator must skip it */
    ck_assert_int_eq(h248_txn_out_next_tid(out, &tid), 0);
    ck_assert_uint_eq(tid, 1); /* 0 is never used */
    ck_assert_int_eq(h248_txn_out_next_tid(out, &tid), 0);
    ck_assert_uint_eq(tid, 3);
    ck_assert_int_eq(h248_txn_out_send(out, 0, "x", 1, 0), -EINVAL);
    ck_assert_int_eq(h248_txn_out_send(out, 2, "x", 1, 0), -EEXIST);
    h248_txn_out_free(out);

    cfg.first_tid = 0;
    out = out_make(&cfg);
    ck_assert_int_eq(h248_txn_out_next_tid(out, &tid), 0);
    ck_assert_uint_eq(tid, 1);
    h248_txn_out_free(out);
}
END_TEST

START_TEST(out_outstanding_bound)
{
    struct h248_txn_out_config cfg = out_cfg();
    cfg.max_outstanding = 3;
    struct h248_txn_out *out = out_make(&cfg);
    send_req(out, 1, 0);
    send_req(out, 2, 0);
    send_req(out, 3, 0);
    ck_assert_int_eq(h248_txn_out_send(out, 4, "x", 1, 0), -ENOBUFS);
    ck_assert_int_eq(h248_txn_out_reply_received(out, 2, false, 10, NULL), 0);
    send_req(out, 4, 10);
    ck_assert_int_eq(h248_txn_out_cancel(out, 1), 0);
    ck_assert_int_eq(h248_txn_out_cancel(out, 1), -ENOENT);
    ck_assert_uint_eq(out_stats(out).outstanding, 2);
    ck_assert_int_eq(h248_txn_out_cancel_all(out), 0);
    ck_assert_uint_eq(out_stats(out).outstanding, 0);
    ck_assert_uint_eq(out_deadline(out), UINT64_MAX);
    expect_out_quiet(out, 1000000);
    h248_txn_out_free(out);
}
END_TEST

START_TEST(out_ten_thousand_outstanding)
{
    struct h248_txn_out_config cfg = out_cfg();
    cfg.max_outstanding = 10000;
    cfg.max_retransmissions = 3;
    struct h248_txn_out *out = out_make(&cfg);
    for (uint32_t k = 0; k < 10000; k++) {
        uint32_t tid;
        ck_assert_int_eq(h248_txn_out_next_tid(out, &tid), 0);
        ck_assert_uint_eq(tid, k + 1);
        send_req(out, tid, k / 4);
    }
    ck_assert_int_eq(h248_txn_out_send(out, 20000, "x", 1, 0), -ENOBUFS);
    /* Half are answered at once; the rest retransmit three times and give up. */
    for (uint32_t tid = 2; tid <= 10000; tid += 2)
        ck_assert_int_eq(h248_txn_out_reply_received(out, tid, false, 2600, NULL), 0);
    size_t retx = 0, gone = 0;
    uint64_t last = 0;
    for (;;) {
        uint64_t d = out_deadline(out);
        if (d == UINT64_MAX)
            break;
        ck_assert_uint_ge(d, last); /* events come out in time order */
        last = d;
        struct h248_txn_out_event ev;
        ck_assert_int_eq(h248_txn_out_poll(out, d, &ev), 0);
        ck_assert_uint_eq(ev.tid % 2, 1);
        if (ev.kind == H248_TXN_OUT_RETRANSMIT)
            retx++;
        else if (ev.kind == H248_TXN_OUT_GIVE_UP)
            gone++;
    }
    ck_assert_uint_eq(retx, 5000 * 3);
    ck_assert_uint_eq(gone, 5000);
    ck_assert_uint_eq(out_stats(out).outstanding, 0);
    h248_txn_out_free(out);
}
END_TEST

START_TEST(out_bad_arguments)
{
    struct h248_txn_out *out = NULL;
    struct h248_txn_out_config cfg = out_cfg();
    cfg.min_rto_ms = 5000;
    ck_assert_int_eq(h248_txn_out_new(&cfg, &out), -EINVAL);
    ck_assert_ptr_null(out);
    cfg = out_cfg();
    cfg.max_outstanding = 0;
    ck_assert_int_eq(h248_txn_out_new(&cfg, &out), -EINVAL);
    out = out_make(NULL);
    ck_assert_int_eq(h248_txn_out_send(out, 1, NULL, 1, 0), -EINVAL);
    ck_assert_int_eq(h248_txn_out_send(out, 1, "x", 0, 0), -EINVAL);
    ck_assert_int_eq(h248_txn_out_poll(out, 0, NULL), -EINVAL);
    ck_assert_int_eq(h248_txn_out_set_root(out, 0, 0), -EINVAL);
    ck_assert_int_eq(h248_txn_out_set_root(out, 2000, 3), 0);
    h248_txn_out_free(out);
    h248_txn_out_free(NULL);
}
END_TEST

/* ---- the layer's own messages ---- */

static void check_parses_as(const char *buf, size_t len, enum h248_transaction_kind kind,
                            uint32_t id_or_first, uint32_t last)
{
    struct h248_message *msg = NULL;
    struct h248_parse_error err;
    int rc = h248_parse_message(buf, len, NULL, &msg, &err);
    ck_assert_msg(rc == 0, "parse failed: %s", err.text);
    ck_assert_ptr_nonnull(msg->transactions);
    ck_assert_ptr_null(msg->transactions->next);
    ck_assert_int_eq(msg->transactions->kind, kind);
    if (kind == H248_TRANS_PENDING) {
        ck_assert_uint_eq(msg->transactions->id, id_or_first);
    } else {
        ck_assert_ptr_nonnull(msg->transactions->acks);
        ck_assert_uint_eq(msg->transactions->acks->first, id_or_first);
        ck_assert_uint_eq(msg->transactions->acks->last, last);
    }
    h248_message_free(msg);
}

START_TEST(encode_pending_and_ack)
{
    struct h248_mid mid = {
        .kind = H248_MID_IPV4, .text = {"192.0.2.1", 9}, .has_port = true, .port = 2944};
    char buf[128];
    size_t len = 0;
    ck_assert_int_eq(h248_txn_encode_pending(3, &mid, 77, buf, sizeof(buf), &len), 0);
    buf[len] = '\0';
    ck_assert_str_eq(buf, "!/3 [192.0.2.1]:2944 PN=77{}");
    check_parses_as(buf, len, H248_TRANS_PENDING, 77, 0);

    ck_assert_int_eq(h248_txn_encode_ack(3, &mid, 5, 5, buf, sizeof(buf), &len), 0);
    buf[len] = '\0';
    ck_assert_str_eq(buf, "!/3 [192.0.2.1]:2944 K{5}");
    check_parses_as(buf, len, H248_TRANS_RESPONSE_ACK, 5, 5);
    ck_assert_int_eq(h248_txn_encode_ack(2, &mid, 5, 4000000000u, buf, sizeof(buf), &len), 0);
    buf[len] = '\0';
    ck_assert_str_eq(buf, "!/2 [192.0.2.1]:2944 K{5-4000000000}");
    check_parses_as(buf, len, H248_TRANS_RESPONSE_ACK, 5, 4000000000u);

    ck_assert_int_eq(h248_txn_encode_ack(3, &mid, 6, 5, buf, sizeof(buf), &len), -EINVAL);
    ck_assert_int_eq(h248_txn_encode_pending(3, &mid, 77, buf, 10, &len), -ENOSPC);
    ck_assert_uint_eq(len, 28);
    ck_assert_int_eq(h248_txn_encode_pending(3, NULL, 77, buf, sizeof(buf), &len), -EINVAL);
}
END_TEST

static Suite *transaction_suite(void)
{
    Suite *s = suite_create("transaction");
    TCase *tc = tcase_create("incoming");
    tcase_add_test(tc, in_duplicate_while_executing);
    tcase_add_test(tc, in_duplicate_after_reply_resends_same_bytes);
    tcase_add_test(tc, in_expiry_after_long_timer);
    tcase_add_test(tc, in_ack_ranges_free_replies);
    tcase_add_test(tc, in_byte_budget_evicts_oldest);
    tcase_add_test(tc, in_entry_budget_evicts_completed_never_executing);
    tcase_add_test(tc, in_provisional_timer_fires_and_repeats);
    tcase_add_test(tc, in_pending_limit_stops_transaction);
    tcase_add_test(tc, in_ten_thousand_entries);
    tcase_add_test(tc, in_index_matches_model);
    tcase_add_test(tc, in_bad_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("outgoing");
    tcase_add_test(tc, out_backoff_schedule_exact);
    tcase_add_test(tc, out_tmax_gives_up_before_retransmitting);
    tcase_add_test(tc, out_karn_retransmitted_reply_not_sampled);
    tcase_add_test(tc, out_estimate_converges);
    tcase_add_test(tc, out_jitter_stays_in_bounds);
    tcase_add_test(tc, out_many_outstanding_raise_nothing_spurious);
    tcase_add_test(tc, out_pending_switches_timer);
    tcase_add_test(tc, out_pending_limit);
    tcase_add_test(tc, out_replies_and_imm_ack);
    tcase_add_test(tc, out_tid_wraparound);
    tcase_add_test(tc, out_outstanding_bound);
    tcase_add_test(tc, out_ten_thousand_outstanding);
    tcase_add_test(tc, out_bad_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("messages");
    tcase_add_test(tc, encode_pending_and_ack);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(transaction_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
