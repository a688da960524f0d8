/* Check suite for tls/dtls.c: two DTLS sessions shuttling datagrams in memory, with loss,
   duplication and reordering: handshakes, data, the fingerprint hold, timers, hostile input. */
#include "tls/cert.h"
#include "tls/dtls.h"
#include "tls/fingerprint.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <openssl/x509.h>

#define FLIGHT_MAX 128 /* datagrams one move() carries */
#define DATAGRAM_MAX 4096

/* For hot loops: a passing ck_assert costs Check a message to the runner, this costs nothing. */
#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

static struct agw_tls_identity *gw_id;    /* the gateway */
static struct agw_tls_identity *ue_id;    /* the UE */
static struct agw_tls_identity *other_id; /* someone else: its fingerprint never matches */
static struct agw_dtls_ctx *ctx;

/* ---- the clock OpenSSL's DTLS timer reads ---- */

static int64_t skew_us;
static int64_t frozen_us; /* not 0: OpenSSL's clock stands there (plus skew_us) */

/* OpenSSL 3.0 reads its DTLS timer with gettimeofday(). This definition, in the executable,
   comes first in symbol lookup: tests move OpenSSL's clock forward instead of sleeping. */
int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    (void)tz;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t us =
        (frozen_us != 0 ? frozen_us : (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000) + skew_us;
    tv->tv_sec = (time_t)(us / 1000000);
    tv->tv_usec = (suseconds_t)(us % 1000000);
    return 0;
}

/* OpenSSL's clock then moves only with pass_time(ms, false): however slow the run (valgrind),
   no timer expires while the test moves a flight. The timers tcase's teardown thaws it. */
static void freeze_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    frozen_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void thaw_clock(void)
{
    frozen_us = 0;
}

static void pass_time(int ms, bool real)
{
    if (real) {
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
    } else {
        skew_us += (int64_t)ms * 1000;
    }
}

/* ---- helpers ---- */

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rnd() >> 56);
}

static enum agw_tls_role other_role(enum agw_tls_role r)
{
    return r == AGW_TLS_SERVER ? AGW_TLS_CLIENT : AGW_TLS_SERVER;
}

static struct agw_dtls_session *session_new(struct agw_tls_identity *id, enum agw_tls_role role,
                                            uint16_t mtu)
{
    struct agw_dtls_session *s = NULL;
    ck_assert_int_eq(agw_dtls_session_new(ctx, id, role, mtu, &s), 0);
    ck_assert_ptr_nonnull(s);
    return s;
}

static void set_fp(struct agw_dtls_session *s, const struct agw_tls_identity *expected)
{
    ck_assert_int_eq(
        agw_dtls_session_set_fingerprints(s, agw_tls_identity_fingerprint(expected), 1), 0);
}

/* One direction of the network. */
struct link {
    unsigned drop_flights; /* the next non-empty flights are lost whole */
    unsigned loss_pct;     /* then each datagram is lost with this probability */
    unsigned dup_pct;      /* or delivered twice */
    bool reverse;          /* a flight's datagrams arrive last first */
    size_t mtu;            /* every datagram must fit */
    unsigned datagrams;    /* sent, lost included */
    unsigned lost;
};

/* Moves everything from has queued (one flight) into to through l; returns the datagrams. */
static unsigned move(struct agw_dtls_session *from, struct agw_dtls_session *to, struct link *l)
{
    static uint8_t buf[FLIGHT_MAX][DATAGRAM_MAX];
    size_t lens[FLIGHT_MAX];
    unsigned n = 0;
    const uint8_t *d;
    size_t len;
    while (agw_dtls_session_pending_output(from, &d, &len) == 1) {
        REQUIRE(len > 0 && len <= l->mtu, "datagram of %zu bytes, mtu %zu", len, l->mtu);
        REQUIRE(n < FLIGHT_MAX, "flight of more than %d datagrams", FLIGHT_MAX);
        memcpy(buf[n], d, len);
        lens[n++] = len;
    }
    l->datagrams += n;
    if (n > 0 && l->drop_flights > 0) {
        l->drop_flights--;
        l->lost += n;
        return n;
    }
    for (unsigned i = 0; i < n; i++) {
        unsigned k = l->reverse ? n - 1 - i : i;
        if (rnd() % 100 < l->loss_pct) {
            l->lost++;
            continue;
        }
        agw_dtls_session_input(to, buf[k], lens[k]);
        if (rnd() % 100 < l->dup_pct)
            agw_dtls_session_input(to, buf[k], lens[k]);
    }
    return n;
}

struct pair {
    struct agw_dtls_session *gw; /* the gateway, presenting gw_id */
    struct agw_dtls_session *ue; /* the UE, presenting ue_id */
    struct link to_ue, to_gw;
    uint16_t mtu;
};

static void pair_new(struct pair *p, enum agw_tls_role gw_role, uint16_t mtu, bool gw_knows,
                     bool ue_knows)
{
    memset(p, 0, sizeof(*p));
    p->mtu = mtu;
    p->to_ue.mtu = p->to_gw.mtu = mtu;
    p->gw = session_new(gw_id, gw_role, mtu);
    p->ue = session_new(ue_id, other_role(gw_role), mtu);
    if (gw_knows)
        set_fp(p->gw, ue_id);
    if (ue_knows)
        set_fp(p->ue, gw_id);
}

static void pair_free(struct pair *p)
{
    agw_dtls_session_free(p->gw);
    agw_dtls_session_free(p->ue);
}

/* Moves datagrams both ways until neither side sends any; returns how many moved. */
static unsigned pump(struct pair *p)
{
    unsigned total = 0;
    for (int round = 0; round < 1000; round++) {
        unsigned n = move(p->gw, p->ue, &p->to_ue) + move(p->ue, p->gw, &p->to_gw);
        if (n == 0)
            return total;
        total += n;
    }
    ck_abort_msg("the sessions never stop talking");
    return total;
}

static bool settled(const struct pair *p)
{
    enum agw_tls_state g = agw_dtls_session_state(p->gw), u = agw_dtls_session_state(p->ue);
    return (g == AGW_TLS_VERIFIED && u == AGW_TLS_VERIFIED) || g == AGW_TLS_FAILED ||
           u == AGW_TLS_FAILED;
}

static int min_timeout(const struct pair *p)
{
    int a = agw_dtls_session_timeout_ms(p->gw), b = agw_dtls_session_timeout_ms(p->ue);
    return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

static void expire_timers(struct pair *p)
{
    if (agw_dtls_session_timeout_ms(p->gw) == 0)
        agw_dtls_session_handle_timeout(p->gw);
    if (agw_dtls_session_timeout_ms(p->ue) == 0)
        agw_dtls_session_handle_timeout(p->ue);
}

/* Pumps, and runs the retransmission timers as they expire, until both ends are verified or one
   failed; time passes for real or on OpenSSL's clock only. Returns the milliseconds waited. */
static int run(struct pair *p, bool real_time, int max_ms)
{
    int waited = 0;
    for (;;) {
        pump(p);
        if (settled(p))
            return waited;
        int t = min_timeout(p);
        REQUIRE(t >= 0, "stalled: states %d %d", agw_dtls_session_state(p->gw),
                agw_dtls_session_state(p->ue));
        REQUIRE(waited + t <= max_ms, "not settled after %d ms", waited + t);
        pass_time(t, real_time);
        waited += t;
        expire_timers(p);
    }
}

static void assert_verified(const struct pair *p)
{
    ck_assert_int_eq(agw_dtls_session_state(p->gw), AGW_TLS_VERIFIED);
    ck_assert_int_eq(agw_dtls_session_state(p->ue), AGW_TLS_VERIFIED);
    ck_assert_ptr_null(agw_dtls_session_error(p->gw));
    ck_assert_ptr_null(agw_dtls_session_error(p->ue));
}

static void assert_failed(struct agw_dtls_session *s, enum agw_tls_failure reason, int code)
{
    const struct agw_tls_error *e = agw_dtls_session_error(s);
    ck_assert_msg(e != NULL, "not failed: state %d", agw_dtls_session_state(s));
    ck_assert_msg(e->reason == reason, "reason %d (%s) instead of %d", e->reason, e->text, reason);
    ck_assert_ptr_nonnull(e->text);
    ck_assert_int_eq(agw_dtls_session_state(s), AGW_TLS_FAILED);
    ck_assert_int_eq(agw_dtls_session_input(s, "\x17\xfe\xfd", 3), code);
    ck_assert_int_eq(agw_dtls_session_write(s, "x", 1), code);
    uint8_t buf[16];
    size_t n = 99;
    ck_assert_int_eq(agw_dtls_session_read(s, buf, sizeof(buf), &n), code);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(agw_dtls_session_handle_timeout(s), code);
    ck_assert_int_eq(agw_dtls_session_timeout_ms(s), -1);
}

/* from writes len random bytes as one record: exactly one datagram, read back identical by to. */
static void send_record(struct agw_dtls_session *from, struct agw_dtls_session *to, size_t len,
                        size_t mtu)
{
    uint8_t *msg = malloc(len + 1), *got = malloc(16384);
    ck_assert_ptr_nonnull(msg);
    ck_assert_ptr_nonnull(got);
    fill_random(msg, len);
    ck_assert_int_eq(agw_dtls_session_write(from, msg, len), 0);
    const uint8_t *d;
    size_t dl, n = 0;
    ck_assert_int_eq(agw_dtls_session_pending_output(from, &d, &dl), 1);
    ck_assert_uint_le(dl, mtu);
    if (len == agw_dtls_session_max_payload(from))
        ck_assert_uint_eq(dl, mtu); /* the largest payload fills the datagram */
    ck_assert_int_eq(agw_dtls_session_input(to, d, dl), 0);
    ck_assert_int_eq(agw_dtls_session_pending_output(from, &d, &dl), 0);
    ck_assert_int_eq(agw_dtls_session_read(to, got, 16384, &n), 0);
    ck_assert_uint_eq(n, len);
    ck_assert_mem_eq(got, msg, len);
    ck_assert_int_eq(agw_dtls_session_read(to, got, 16384, &n), -EAGAIN);
    free(msg);
    free(got);
}

static void exchange(struct pair *p)
{
    send_record(p->gw, p->ue, 5, p->mtu);
    send_record(p->ue, p->gw, 7, p->mtu);
}

static void handshake(struct pair *p)
{
    run(p, false, 1);
    assert_verified(p);
}

/* ---- context and arguments ---- */

START_TEST(test_arguments)
{
    struct agw_dtls_ctx *c = NULL;
    char err[256] = "";
    struct agw_tls_ctx_config bad = {.ciphers = "NO-SUCH-CIPHER"};
    ck_assert_int_eq(agw_dtls_ctx_new(&bad, &c, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err, "NO-SUCH-CIPHER") != NULL, "%s", err);
    bad = (struct agw_tls_ctx_config){.groups = "no-such-group"};
    ck_assert_int_eq(agw_dtls_ctx_new(&bad, &c, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, "no-such-group") != NULL, "%s", err);
    ck_assert_int_eq(agw_dtls_ctx_new(NULL, NULL, NULL, 0), -EINVAL);
    ck_assert_ptr_eq(agw_dtls_ctx_ref(NULL), NULL);
    agw_dtls_ctx_unref(NULL);

    struct agw_dtls_session *s = (void *)1;
    ck_assert_int_eq(agw_dtls_session_new(NULL, gw_id, AGW_TLS_SERVER, 0, &s), -EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(agw_dtls_session_new(ctx, NULL, AGW_TLS_SERVER, 0, &s), -EINVAL);
    ck_assert_int_eq(agw_dtls_session_new(ctx, gw_id, AGW_TLS_SERVER, 255, &s), -EINVAL);
    ck_assert_int_eq(agw_dtls_session_new(ctx, gw_id, AGW_TLS_SERVER, 4097, &s), -EINVAL);
    ck_assert_int_eq(agw_dtls_session_new(ctx, gw_id, (enum agw_tls_role)7, 0, &s), -EINVAL);
    agw_dtls_session_free(NULL);

    /* A server waits for the ClientHello: no output, no timer, nothing to read or write. */
    s = session_new(gw_id, AGW_TLS_SERVER, 0);
    const uint8_t *d;
    size_t len;
    ck_assert_int_eq(agw_dtls_session_pending_output(s, &d, &len), 0);
    ck_assert_int_eq(agw_dtls_session_timeout_ms(s), -1);
    ck_assert_uint_eq(agw_dtls_session_max_payload(s),
                      AGW_DTLS_DEFAULT_MTU - AGW_DTLS_RECORD_OVERHEAD);
    ck_assert_int_eq(agw_dtls_session_write(s, "x", 1), -EAGAIN);
    uint8_t buf[8];
    ck_assert_int_eq(agw_dtls_session_read(s, buf, sizeof(buf), &len), -EAGAIN);
    ck_assert_int_eq(agw_dtls_session_close(s), -ENOTCONN);
    ck_assert_ptr_null(agw_dtls_session_version(s));
    ck_assert_ptr_null(agw_dtls_session_cipher(s));
    ck_assert_ptr_null(agw_dtls_session_peer_cert(s));
    ck_assert_ptr_null(agw_dtls_session_error(s));
    static uint8_t huge[65536];
    ck_assert_int_eq(agw_dtls_session_input(s, huge, sizeof(huge)), -EMSGSIZE);
    ck_assert_int_eq(agw_dtls_session_input(s, NULL, 1), -EINVAL);
    agw_dtls_session_free(s);

    /* A client queues its ClientHello at once and runs its first timer (400 ms). */
    s = session_new(ue_id, AGW_TLS_CLIENT, 0);
    ck_assert_int_eq(agw_dtls_session_pending_output(s, &d, &len), 1);
    ck_assert_uint_gt(len, 13);
    ck_assert_uint_eq(d[0], 22); /* handshake */
    ck_assert_uint_eq(d[13], 1); /* client_hello */
    ck_assert_int_eq(agw_dtls_session_pending_output(s, &d, &len), 0);
    int t = agw_dtls_session_timeout_ms(s);
    ck_assert_msg(t > 300 && t <= 400, "first timer %d ms", t);
    struct agw_dtls_stats st;
    agw_dtls_session_stats(s, &st);
    ck_assert_uint_eq(st.datagrams_out, 1);
    agw_dtls_session_free(s);
}
END_TEST

/* ---- handshake and data ---- */

/* _i: bit 0 the gateway's role, bits 1-2 the MTU. */
START_TEST(test_handshake_and_data)
{
    enum agw_tls_role role = (_i & 1) ? AGW_TLS_CLIENT : AGW_TLS_SERVER;
    static const uint16_t mtus[] = {1200, 576, 256, 4096};
    uint16_t mtu = mtus[_i >> 1];
    struct pair p;
    pair_new(&p, role, mtu, true, true);
    handshake(&p);
    ck_assert_str_eq(agw_dtls_session_version(p.gw), "DTLSv1.2");
    ck_assert_str_eq(agw_dtls_session_version(p.ue), "DTLSv1.2");
    ck_assert_str_eq(agw_dtls_session_cipher(p.gw), "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
    /* The certificates made the verdict and are released with it. */
    ck_assert_ptr_null(agw_dtls_session_peer_cert(p.gw));
    ck_assert_ptr_null(agw_dtls_session_peer_cert(p.ue));
    ck_assert_int_eq(agw_dtls_session_timeout_ms(p.gw), -1);
    ck_assert_int_eq(agw_dtls_session_timeout_ms(p.ue), -1);
    ck_assert_int_eq(agw_dtls_session_handle_timeout(p.gw), 0);
    ck_assert_int_eq(
        agw_dtls_session_set_fingerprints(p.gw, agw_tls_identity_fingerprint(ue_id), 1), -EALREADY);

    size_t max = agw_dtls_session_max_payload(p.gw);
    ck_assert_uint_eq(max, mtu - 37); /* AES-GCM: header 13, explicit nonce 8, tag 16 */
    ck_assert_uint_eq(agw_dtls_session_max_payload(p.ue), max);
    size_t sizes[] = {1, 1000, max};
    for (unsigned i = 0; i < 3; i++) {
        if (sizes[i] > max)
            continue;
        send_record(p.gw, p.ue, sizes[i], mtu);
        send_record(p.ue, p.gw, sizes[i], mtu);
    }
    static uint8_t big[4097];
    ck_assert_int_eq(agw_dtls_session_write(p.gw, big, max + 1), -EMSGSIZE);
    ck_assert_int_eq(agw_dtls_session_write(p.ue, big, max + 1), -EMSGSIZE);
    if (mtu < 1000)
        ck_assert_int_eq(agw_dtls_session_write(p.gw, big, 1000), -EMSGSIZE);
    /* An empty write sends nothing. */
    ck_assert_int_eq(agw_dtls_session_write(p.gw, big, 0), 0);
    const uint8_t *d;
    size_t len;
    ck_assert_int_eq(agw_dtls_session_pending_output(p.gw, &d, &len), 0);

    /* A buffer too small drops that record, not the next. */
    ck_assert_int_eq(agw_dtls_session_write(p.gw, "hello", 5), 0);
    ck_assert_int_eq(agw_dtls_session_write(p.gw, "world", 5), 0);
    pump(&p);
    uint8_t buf[8];
    ck_assert_int_eq(agw_dtls_session_read(p.ue, buf, 4, &len), -EMSGSIZE);
    ck_assert_int_eq(agw_dtls_session_read(p.ue, buf, 5, &len), 0);
    ck_assert_mem_eq(buf, "world", 5);

    /* Nothing lost: each side's output is the other's input. */
    struct agw_dtls_stats g, u;
    agw_dtls_session_stats(p.gw, &g);
    agw_dtls_session_stats(p.ue, &u);
    ck_assert_uint_eq(g.datagrams_out, u.datagrams_in);
    ck_assert_uint_eq(g.cipher_out, u.cipher_in);
    ck_assert_uint_eq(u.datagrams_out, g.datagrams_in);
    ck_assert_uint_eq(u.cipher_out, g.cipher_in);
    ck_assert_uint_eq(g.datagrams_dropped + u.datagrams_dropped, 0);
    size_t both = 1 + max + (max >= 1000 ? 1000 : 0);
    ck_assert_uint_eq(g.records_out, (max >= 1000 ? 3 : 2) + 2);
    ck_assert_uint_eq(g.plain_out, both + 10);
    ck_assert_uint_eq(u.records_in, (max >= 1000 ? 3 : 2) + 1);
    ck_assert_uint_eq(u.plain_in, both + 5);
    ck_assert_uint_eq(g.plain_in, both);
    ck_assert_uint_eq(u.plain_out, both);
    pair_free(&p);
}
END_TEST

START_TEST(test_chacha20_max_payload)
{
    struct agw_tls_ctx_config cfg = {.ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305"};
    struct agw_dtls_ctx *c = NULL;
    ck_assert_int_eq(agw_dtls_ctx_new(&cfg, &c, NULL, 0), 0);
    struct pair p = {.mtu = 1200, .to_ue.mtu = 1200, .to_gw.mtu = 1200};
    ck_assert_int_eq(agw_dtls_session_new(c, gw_id, AGW_TLS_SERVER, 1200, &p.gw), 0);
    agw_dtls_ctx_unref(c); /* the session keeps its reference */
    p.ue = session_new(ue_id, AGW_TLS_CLIENT, 1200);
    set_fp(p.gw, ue_id);
    set_fp(p.ue, gw_id);
    handshake(&p);
    ck_assert_str_eq(agw_dtls_session_cipher(p.gw),
                     "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256");
    ck_assert_uint_eq(agw_dtls_session_max_payload(p.gw), 1200 - 29); /* no explicit nonce */
    send_record(p.gw, p.ue, 1200 - 29, 1200);
    send_record(p.ue, p.gw, 1200 - 29, 1200);
    pair_free(&p);
}
END_TEST

/* ---- fingerprints ---- */

/* _i: bit 0 the gateway's role; bit 1: the UE, not the gateway, is given a wrong fingerprint. */
START_TEST(test_fingerprint_mismatch)
{
    enum agw_tls_role role = (_i & 1) ? AGW_TLS_CLIENT : AGW_TLS_SERVER;
    bool ue_refuses = (_i & 2) != 0;
    struct pair p;
    pair_new(&p, role, 1200, ue_refuses, !ue_refuses);
    struct agw_dtls_session *refuser = ue_refuses ? p.ue : p.gw;
    struct agw_dtls_session *refused = ue_refuses ? p.gw : p.ue;
    set_fp(refuser, other_id);
    run(&p, false, 1);
    assert_failed(refuser, AGW_TLS_FAIL_FINGERPRINT_MISMATCH, -EACCES);
    ck_assert_int_eq(agw_dtls_session_error(refuser)->alert_sent, 42);
    assert_failed(refused, AGW_TLS_FAIL_PEER_ALERT, -ECONNABORTED);
    ck_assert_int_eq(agw_dtls_session_error(refused)->alert_received, 42);
    /* The refused certificate is kept for the log. */
    ck_assert_ptr_nonnull(agw_dtls_session_peer_cert(refuser));
    ck_assert_int_eq(agw_dtls_session_set_fingerprints(refuser, NULL, 0), -EALREADY);
    ck_assert_int_eq(agw_dtls_session_close(refuser), -EACCES);
    pair_free(&p);
}
END_TEST

/* _i: sha-1, sha-384, sha-512, each listed after a wrong sha-256. */
START_TEST(test_fingerprint_other_hashes)
{
    static const enum agw_tls_hash hashes[] = {AGW_TLS_HASH_SHA1, AGW_TLS_HASH_SHA384,
                                               AGW_TLS_HASH_SHA512};
    struct agw_tls_fingerprint list[2];
    list[0] = *agw_tls_identity_fingerprint(other_id);
    ck_assert_int_eq(agw_tls_fingerprint_of(agw_tls_identity_cert(ue_id), hashes[_i], &list[1]), 0);
    struct pair p;
    pair_new(&p, AGW_TLS_SERVER, 1200, false, true);
    ck_assert_int_eq(agw_dtls_session_set_fingerprints(p.gw, list, 2), 0);
    handshake(&p);
    exchange(&p);
    pair_free(&p);
}
END_TEST

/* _i: the gateway's role. No usable fingerprint (none, or MD5 only) refuses the peer. */
START_TEST(test_no_supported_fingerprint)
{
    enum agw_tls_role role = _i ? AGW_TLS_CLIENT : AGW_TLS_SERVER;
    for (int md5 = 0; md5 < 2; md5++) {
        struct pair p;
        pair_new(&p, role, 1200, false, true);
        struct agw_tls_fingerprint fp = {.hash = AGW_TLS_HASH_MD5, .len = 16};
        ck_assert_int_eq(agw_dtls_session_set_fingerprints(p.gw, &fp, (size_t)md5), 0);
        run(&p, false, 1);
        assert_failed(p.gw, AGW_TLS_FAIL_NO_SUPPORTED_FINGERPRINT, -EACCES);
        ck_assert_int_eq(agw_dtls_session_error(p.gw)->alert_sent, 42);
        assert_failed(p.ue, AGW_TLS_FAIL_PEER_ALERT, -ECONNABORTED);
        ck_assert_int_eq(agw_dtls_session_error(p.ue)->alert_received, 42);
        pair_free(&p);
    }
}
END_TEST

START_TEST(test_set_fingerprints_arguments)
{
    struct agw_dtls_session *s = session_new(gw_id, AGW_TLS_SERVER, 0);
    struct agw_tls_fingerprint many[AGW_TLS_FINGERPRINTS_MAX + 1] = {0};
    ck_assert_int_eq(agw_dtls_session_set_fingerprints(s, many, AGW_TLS_FINGERPRINTS_MAX + 1),
                     -E2BIG);
    ck_assert_int_eq(agw_dtls_session_set_fingerprints(s, NULL, 1), -EINVAL);
    ck_assert_int_eq(agw_dtls_session_set_fingerprints(NULL, many, 1), -EINVAL);
    /* A later call replaces an earlier one until the peer is verified. */
    set_fp(s, other_id);
    set_fp(s, ue_id);
    struct pair p = {.gw = s, .mtu = 1200, .to_ue.mtu = 1200, .to_gw.mtu = 1200};
    p.ue = session_new(ue_id, AGW_TLS_CLIENT, 1200);
    set_fp(p.ue, gw_id);
    handshake(&p);
    pair_free(&p);
}
END_TEST

/* ---- the hold ---- */

/* _i: 0 the fingerprints come 300 ms after the first ClientHello, for real; 1: 5 s later on
   OpenSSL's clock, the UE retransmitting its ClientHello meanwhile. */
START_TEST(test_hold_server)
{
    bool real = _i == 0;
    int hold_ms = real ? 300 : 5000;
    struct pair p;
    pair_new(&p, AGW_TLS_SERVER, 1200, false, true);
    pump(&p);
    ck_assert_int_eq(agw_dtls_session_state(p.gw), AGW_TLS_HELD);
    ck_assert_int_eq(agw_dtls_session_timeout_ms(p.gw), -1);
    ck_assert_int_eq(agw_dtls_session_handle_timeout(p.gw), 0);
    for (int waited = 0; waited < hold_ms;) {
        int t = agw_dtls_session_timeout_ms(p.ue);
        ck_assert_int_ge(t, 0);
        if (t > hold_ms - waited)
            t = hold_ms - waited;
        pass_time(t, real);
        waited += t;
        expire_timers(&p);
        pump(&p);
        ck_assert_int_eq(agw_dtls_session_state(p.gw), AGW_TLS_HELD);
        ck_assert_int_eq(agw_dtls_session_state(p.ue), AGW_TLS_HANDSHAKING);
    }
    if (!real)
        ck_assert_uint_ge(p.to_gw.datagrams, 4); /* ClientHello retransmissions were held */
    set_fp(p.gw, ue_id);
    ck_assert_int_eq(agw_dtls_session_state(p.gw), AGW_TLS_HANDSHAKING);
    run(&p, real, 3000);
    assert_verified(&p);
    exchange(&p);
    pair_free(&p);
}
END_TEST

/* The gateway is the client; with a 576-byte MTU the server's flight spans datagrams, and the
   ones after the certificate arrive while the client holds. _i: hold of 300 ms or 3 s. */
START_TEST(test_hold_client)
{
    struct pair p;
    pair_new(&p, AGW_TLS_CLIENT, 576, false, true);
    ck_assert_uint_eq(move(p.gw, p.ue, &p.to_ue), 1); /* ClientHello */
    ck_assert_uint_eq(move(p.ue, p.gw, &p.to_gw), 2); /* the server's flight */
    ck_assert_int_eq(agw_dtls_session_state(p.gw), AGW_TLS_HELD);
    ck_assert_int_eq(agw_dtls_session_timeout_ms(p.gw), -1);
    ck_assert_uint_eq(move(p.gw, p.ue, &p.to_ue), 0);
    for (int waited = 0, hold = _i ? 3000 : 300; waited < hold;) {
        int t = agw_dtls_session_timeout_ms(p.ue);
        t = t < 0 || t > hold - waited ? hold - waited : t;
        pass_time(t, false);
        waited += t;
        expire_timers(&p);
        pump(&p);
        ck_assert_int_eq(agw_dtls_session_state(p.gw), AGW_TLS_HELD);
    }
    set_fp(p.gw, ue_id);
    /* The kept datagrams complete the flight: no retransmission needed. */
    pump(&p);
    assert_verified(&p);
    struct agw_dtls_stats st;
    agw_dtls_session_stats(p.gw, &st);
    if (_i == 0)
        ck_assert_uint_eq(st.datagrams_dropped, 0);
    exchange(&p);
    pair_free(&p);
}
END_TEST

START_TEST(test_hold_then_mismatch)
{
    struct pair p;
    pair_new(&p, AGW_TLS_CLIENT, 1200, false, true);
    pump(&p);
    ck_assert_int_eq(agw_dtls_session_state(p.gw), AGW_TLS_HELD);
    ck_assert_int_eq(
        agw_dtls_session_set_fingerprints(p.gw, agw_tls_identity_fingerprint(other_id), 1), 0);
    pump(&p);
    assert_failed(p.gw, AGW_TLS_FAIL_FINGERPRINT_MISMATCH, -EACCES);
    assert_failed(p.ue, AGW_TLS_FAIL_PEER_ALERT, -ECONNABORTED);
    pair_free(&p);
}
END_TEST

/* ---- loss and timers ---- */

/* _i: the gateway's role. The first two flights are lost; the timers run for real. */
START_TEST(test_loss_first_flights)
{
    struct pair p;
    pair_new(&p, _i ? AGW_TLS_CLIENT : AGW_TLS_SERVER, 1200, true, true);
    struct link *first = _i ? &p.to_ue : &p.to_gw; /* toward the server */
    struct link *second = _i ? &p.to_gw : &p.to_ue;
    first->drop_flights = 1;
    second->drop_flights = 1;
    int waited = run(&p, true, 4000);
    assert_verified(&p);
    ck_assert_int_ge(waited, 700); /* two 400 ms timers, less the processing time */
    ck_assert_uint_ge(p.to_ue.lost + p.to_gw.lost, 2);
    exchange(&p);
    pair_free(&p);
}
END_TEST

/* _i: the gateway's role. The server's last flight (ChangeCipherSpec, Finished) is lost: the
   client retransmits its own, and the server, done already, answers with its last flight. */
START_TEST(test_loss_last_flight)
{
    struct pair p;
    freeze_clock();
    pair_new(&p, _i ? AGW_TLS_CLIENT : AGW_TLS_SERVER, 1200, true, true);
    struct agw_dtls_session *srv = _i ? p.ue : p.gw, *cli = _i ? p.gw : p.ue;
    struct link *to_srv = _i ? &p.to_ue : &p.to_gw, *to_cli = _i ? &p.to_gw : &p.to_ue;
    ck_assert_uint_eq(move(cli, srv, to_srv), 1);
    ck_assert_uint_ge(move(srv, cli, to_cli), 1);
    ck_assert_uint_ge(move(cli, srv, to_srv), 1);
    ck_assert_int_eq(agw_dtls_session_state(srv), AGW_TLS_VERIFIED);
    to_cli->drop_flights = 1;
    run(&p, false, 1000);
    assert_verified(&p);
    ck_assert_uint_eq(to_cli->lost, 1);
    exchange(&p);
    pair_free(&p);
}
END_TEST

/* _i: seed. Random loss, duplication and reordering, timers on OpenSSL's clock. */
START_TEST(test_lossy_network)
{
    rng_state = 0x9e3779b97f4a7c15ULL * (uint64_t)(_i + 1);
    struct pair p;
    pair_new(&p, (_i & 1) ? AGW_TLS_CLIENT : AGW_TLS_SERVER, 576, true, true);
    p.to_ue = (struct link){.loss_pct = 20, .dup_pct = 20, .reverse = true, .mtu = 576};
    p.to_gw = (struct link){.loss_pct = 20, .dup_pct = 20, .reverse = (_i & 2) != 0, .mtu = 576};
    run(&p, false, 12000);
    assert_verified(&p);
    exchange(&p);
    pair_free(&p);
}
END_TEST

/* A client nobody answers gives up after about 12 s and 7 retransmissions. */
START_TEST(test_handshake_timeout)
{
    struct agw_dtls_session *s = session_new(gw_id, AGW_TLS_CLIENT, 0);
    set_fp(s, ue_id);
    const uint8_t *d;
    size_t len;
    int waited = 0, retransmissions = -1;
    while (agw_dtls_session_state(s) == AGW_TLS_HANDSHAKING) {
        while (agw_dtls_session_pending_output(s, &d, &len) == 1) {
            ck_assert_uint_eq(d[13], 1); /* the ClientHello again */
            retransmissions++;
        }
        int t = agw_dtls_session_timeout_ms(s);
        ck_assert_int_ge(t, 0);
        ck_assert_int_le(t, 2000);
        pass_time(t, false);
        waited += t;
        ck_assert_int_le(waited, 20000);
        agw_dtls_session_handle_timeout(s);
    }
    ck_assert_int_eq(retransmissions, 7);
    ck_assert_msg(waited >= 12000 && waited <= 13000, "gave up after %d ms", waited);
    assert_failed(s, AGW_TLS_FAIL_PROTOCOL, -EPROTO);
    ck_assert_str_eq(agw_dtls_session_error(s)->text, "handshake timeout");
    ck_assert_int_eq(agw_dtls_session_pending_output(s, &d, &len), 0);
    agw_dtls_session_free(s);
}
END_TEST

/* ---- hostile input ---- */

static size_t take_one(struct agw_dtls_session *s, uint8_t *buf)
{
    const uint8_t *d;
    size_t len;
    ck_assert_int_eq(agw_dtls_session_pending_output(s, &d, &len), 1);
    memcpy(buf, d, len);
    return len;
}

static uint64_t dropped(const struct agw_dtls_session *s)
{
    struct agw_dtls_stats st;
    agw_dtls_session_stats(s, &st);
    return st.datagrams_dropped;
}

/* Gives s the datagram: accepted, dropped, nothing to read, the session still up. */
static void assert_dropped(struct agw_dtls_session *s, const uint8_t *d, size_t len)
{
    uint64_t before = dropped(s);
    ck_assert_int_eq(agw_dtls_session_input(s, d, len), 0);
    ck_assert_uint_eq(dropped(s), before + 1);
    uint8_t buf[64];
    size_t n;
    ck_assert_int_eq(agw_dtls_session_read(s, buf, sizeof(buf), &n), -EAGAIN);
    ck_assert_int_eq(agw_dtls_session_state(s), AGW_TLS_VERIFIED);
    const uint8_t *out;
    ck_assert_int_eq(agw_dtls_session_pending_output(s, &out, &n), 0);
}

START_TEST(test_garbage_after_handshake)
{
    struct pair p;
    pair_new(&p, AGW_TLS_SERVER, 1200, true, true);
    handshake(&p);
    uint8_t rec[1200], bad[1200];
    ck_assert_int_eq(agw_dtls_session_write(p.ue, "hello", 5), 0);
    size_t len = take_one(p.ue, rec);
    ck_assert_uint_eq(len, 13 + 8 + 5 + 16);
    ck_assert_int_eq(agw_dtls_session_input(p.gw, rec, len), 0);
    uint8_t buf[64];
    size_t n;
    ck_assert_int_eq(agw_dtls_session_read(p.gw, buf, sizeof(buf), &n), 0);

    assert_dropped(p.gw, rec, len); /* replayed */

    ck_assert_int_eq(agw_dtls_session_write(p.ue, "again", 5), 0);
    len = take_one(p.ue, rec);
    memcpy(bad, rec, len);
    bad[len - 1] ^= 0x40; /* the tag */
    assert_dropped(p.gw, bad, len);
    memcpy(bad, rec, len);
    bad[20] ^= 0x01; /* the explicit nonce */
    assert_dropped(p.gw, bad, len);
    assert_dropped(p.gw, rec, len / 2); /* truncated */
    memcpy(bad, rec, len);
    bad[2] = 0xff; /* DTLS 1.0 */
    assert_dropped(p.gw, bad, len);
    memcpy(bad, rec, len);
    bad[3] = 2; /* an epoch not yet in use */
    assert_dropped(p.gw, bad, len);
    fill_random(bad, 300);
    bad[0] = 23;
    assert_dropped(p.gw, bad, 300);
    bad[0] = 22;
    assert_dropped(p.gw, bad, 300);
    bad[0] = 0x80; /* RTP */
    assert_dropped(p.gw, bad, 300);
    bad[0] = 0x00; /* STUN */
    assert_dropped(p.gw, bad, 300);
    assert_dropped(p.gw, bad, 0);
    ck_assert_uint_eq(dropped(p.gw), 11);

    /* The genuine record still gets through, after all that, and data flows both ways. */
    ck_assert_int_eq(agw_dtls_session_input(p.gw, rec, len), 0);
    ck_assert_int_eq(agw_dtls_session_read(p.gw, buf, sizeof(buf), &n), 0);
    ck_assert_uint_eq(n, 5);
    ck_assert_mem_eq(buf, "again", 5);
    exchange(&p);
    ck_assert_uint_eq(dropped(p.gw), 11);
    pair_free(&p);
}
END_TEST

/* Before and during the handshake: what is not DTLS never reaches OpenSSL. */
START_TEST(test_garbage_during_handshake)
{
    struct pair p;
    pair_new(&p, AGW_TLS_SERVER, 1200, true, true);
    uint8_t junk[200];
    fill_random(junk, sizeof(junk));
    for (unsigned first = 0; first < 256; first += 17) {
        junk[0] = (uint8_t)first;
        if (first < 20 || first > 63)
            ck_assert_int_eq(agw_dtls_session_input(p.gw, junk, sizeof(junk)), 0);
    }
    ck_assert_int_eq(agw_dtls_session_input(p.gw, junk, 0), 0);
    ck_assert_uint_eq(dropped(p.gw), 15);
    move(p.ue, p.gw, &p.to_gw); /* ClientHello */
    junk[0] = 0x01;
    ck_assert_int_eq(agw_dtls_session_input(p.ue, junk, sizeof(junk)), 0);
    ck_assert_int_eq(agw_dtls_session_input(p.gw, junk, sizeof(junk)), 0);
    handshake(&p);
    ck_assert_uint_eq(dropped(p.gw), 16);
    ck_assert_uint_eq(dropped(p.ue), 1);
    exchange(&p);
    pair_free(&p);
}
END_TEST

/* Output nobody drains, and records nobody reads, are bounded: the excess is dropped. */
START_TEST(test_queues_bounded)
{
    struct pair p;
    pair_new(&p, AGW_TLS_SERVER, 1200, true, true);
    handshake(&p);
    static uint8_t msg[1200];
    size_t max = agw_dtls_session_max_payload(p.gw);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(agw_dtls_session_write(p.gw, msg, max), 0);
    ck_assert_uint_eq(dropped(p.gw), 36);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(agw_dtls_session_write(p.ue, msg, 10), 0);
    ck_assert_uint_eq(dropped(p.ue), 36);
    ck_assert_uint_eq(move(p.ue, p.gw, &p.to_gw), 64);
    ck_assert_uint_eq(move(p.gw, p.ue, &p.to_ue), 64);
    size_t n;
    unsigned got = 0;
    while (agw_dtls_session_read(p.gw, msg, sizeof(msg), &n) == 0)
        got++;
    ck_assert_uint_eq(got, 64);
    ck_assert_uint_eq(dropped(p.gw), 36);
    got = 0;
    while (agw_dtls_session_read(p.ue, msg, sizeof(msg), &n) == 0)
        got++;
    ck_assert_uint_eq(got, (64 * 1024) / (max + 2)); /* 64 KiB of records at most */
    ck_assert_uint_eq(dropped(p.ue), 36 + 64 - got);
    exchange(&p);
    pair_free(&p);
}
END_TEST

/* ---- close ---- */

/* _i: the gateway's role. */
START_TEST(test_close_notify)
{
    struct pair p;
    pair_new(&p, _i ? AGW_TLS_CLIENT : AGW_TLS_SERVER, 1200, true, true);
    handshake(&p);
    ck_assert_int_eq(agw_dtls_session_write(p.gw, "bye", 3), 0);
    ck_assert_int_eq(agw_dtls_session_close(p.gw), 0);
    ck_assert_int_eq(agw_dtls_session_close(p.gw), 0);
    ck_assert_int_eq(agw_dtls_session_write(p.gw, "more", 4), -EPIPE);
    ck_assert_uint_eq(move(p.gw, p.ue, &p.to_ue), 2);
    uint8_t buf[16];
    size_t n;
    ck_assert(!agw_dtls_session_peer_closed(p.gw));
    ck_assert(agw_dtls_session_peer_closed(p.ue));
    ck_assert_int_eq(agw_dtls_session_read(p.ue, buf, sizeof(buf), &n), 0);
    ck_assert_mem_eq(buf, "bye", 3);
    ck_assert_int_eq(agw_dtls_session_read(p.ue, buf, sizeof(buf), &n), -EPIPE);
    ck_assert_int_eq(agw_dtls_session_read(p.ue, buf, sizeof(buf), &n), -EPIPE);
    ck_assert_int_eq(agw_dtls_session_write(p.ue, "late", 4), -EPIPE);
    ck_assert_int_eq(agw_dtls_session_state(p.ue), AGW_TLS_VERIFIED);
    ck_assert_ptr_null(agw_dtls_session_error(p.ue));
    /* The UE answers with its own close_notify. */
    ck_assert_int_eq(agw_dtls_session_close(p.ue), 0);
    ck_assert_uint_eq(move(p.ue, p.gw, &p.to_gw), 1);
    ck_assert(agw_dtls_session_peer_closed(p.gw));
    ck_assert_int_eq(agw_dtls_session_read(p.gw, buf, sizeof(buf), &n), -EPIPE);
    pair_free(&p);
}
END_TEST

/* ---- many at once ---- */

START_TEST(test_hundred_sessions)
{
    enum { N = 100 };
    struct pair *p = calloc(N, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    for (int i = 0; i < N; i++)
        pair_new(&p[i], (i & 1) ? AGW_TLS_CLIENT : AGW_TLS_SERVER, 1200, true, true);
    for (int round = 0; round < 20; round++) {
        unsigned moved = 0;
        for (int i = 0; i < N; i++)
            moved += move(p[i].gw, p[i].ue, &p[i].to_ue) + move(p[i].ue, p[i].gw, &p[i].to_gw);
        if (moved == 0)
            break;
    }
    for (int i = 0; i < N; i++) {
        assert_verified(&p[i]);
        exchange(&p[i]);
    }
    for (int i = 0; i < N; i++)
        pair_free(&p[i]);
    free(p);
}
END_TEST

static Suite *dtls_suite(void)
{
    Suite *s = suite_create("dtls");
    TCase *tc = tcase_create("basics");
    tcase_set_timeout(tc, 30); /* ASan builds */
    tcase_add_test(tc, test_arguments);
    tcase_add_loop_test(tc, test_handshake_and_data, 0, 8);
    tcase_add_test(tc, test_chacha20_max_payload);
    tcase_add_test(tc, test_queues_bounded);
    tcase_add_loop_test(tc, test_close_notify, 0, 2);
    tcase_add_test(tc, test_hundred_sessions);
    suite_add_tcase(s, tc);

    tc = tcase_create("fingerprints");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_fingerprint_mismatch, 0, 4);
    tcase_add_loop_test(tc, test_fingerprint_other_hashes, 0, 3);
    tcase_add_loop_test(tc, test_no_supported_fingerprint, 0, 2);
    tcase_add_test(tc, test_set_fingerprints_arguments);
    tcase_add_loop_test(tc, test_hold_server, 0, 2);
    tcase_add_loop_test(tc, test_hold_client, 0, 2);
    tcase_add_test(tc, test_hold_then_mismatch);
    suite_add_tcase(s, tc);

    tc = tcase_create("timers");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, NULL, thaw_clock);
    tcase_add_loop_test(tc, test_loss_first_flights, 0, 2);
    tcase_add_loop_test(tc, test_loss_last_flight, 0, 2);
    tcase_add_loop_test(tc, test_lossy_network, 0, 16);
    tcase_add_test(tc, test_handshake_timeout);
    suite_add_tcase(s, tc);

    tc = tcase_create("hostile");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_garbage_after_handshake);
    tcase_add_test(tc, test_garbage_during_handshake);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    char err[256] = "";
    if (agw_tls_identity_generate("ims-agw.test", 30, &gw_id) != 0 ||
        agw_tls_identity_generate("ue.test", 30, &ue_id) != 0 ||
        agw_tls_identity_generate("other.test", 30, &other_id) != 0 ||
        agw_dtls_ctx_new(NULL, &ctx, err, sizeof(err)) != 0) {
        fprintf(stderr, "cannot make identities or the DTLS context: %s\n", err);
        return 1;
    }
    SRunner *sr = srunner_create(dtls_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    agw_dtls_ctx_unref(ctx);
    agw_tls_identity_unref(gw_id);
    agw_tls_identity_unref(ue_id);
    agw_tls_identity_unref(other_id);
    return failed == 0 ? 0 : 1;
}
