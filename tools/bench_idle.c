/* agw-bench idle: the relay's memory per idle TLS session: N sessions set up (one exchange each,
 * so that TLS is up and every buffer was used once), then held while its RSS and PSS are read. */
#include "tools/bench_modes.h"
#include "tools/iq_client.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Sessions set up before the gateway's descriptors per session are estimated. */
#define PROBE_SESSIONS 32
/* Descriptors left free in the relay for its own needs when the session count is capped. */
#define FD_MARGIN 64

static const char idle_usage[] =
    "usage: agw-bench idle [options]\n"
    "  memory per idle TLS session: N sessions set up (Iq for ims-agw, TCP, TLS 1.3, one request\n"
    "  and its answer each), then held; the relay's RSS and PSS (/proc/PID/smaps_rollup) before\n"
    "  and after, per session. Every held session then relays one more exchange before it is\n"
    "  closed and released. With --target the relay is any terminator (--target-pid needed).\n"
    "  --sessions N        sessions held (default 8000)\n"
    "  --window N          threads setting sessions up (default 4)\n"
    "  --warmup N          sessions set up and released before the first sample (default 100)\n"
    "  --settle-ms N       wait before the second sample (default 2000)\n"
    "  --size N            bytes of a request and of an answer (default 64)\n"
    "  --target ADDR:PORT, --sink-port P, --target-pid PID   a reference terminator\n"
    "  --cipher NAME, --group NAME, --ue-cert FILE, --ue-key FILE   as for handshake\n"
    "  --spawn BIN, --config FILE, --workers N, --listen ADDR:PORT   the spawned gateway\n"
    "  --realm SPEC        its realms; default access,127.0.0.66,1024-29999 and\n"
    "                      core,127.0.0.66,30000-32767 (room for 8000 sessions and more)\n"
    "  --long-timer-ms N   its LONG-TIMER (default: the gateway's, 30 s)\n"
    "  --label NAME, --json as for the other modes\n";

struct held {
    int fd;
    SSL *ssl;
    unsigned context; /* 0: no Iq session */
    bool up;          /* connected: fd and ssl are ours to close */
    bool live;        /* and its first exchange went through */
};

struct idle_run {
    const struct bench_args *a;
    const struct bench_ue *ue;
    struct bench_gw *gw;
    uint16_t sink_port;
    struct sockaddr_storage to;
    socklen_t to_len;
    struct held *held;
    atomic_uint next;
    unsigned limit;   /* the phase works on sessions up to limit-1 */
    atomic_bool stop; /* a set-up failed: no more */
    enum { PHASE_UP, PHASE_AGAIN, PHASE_DOWN } phase;
    pthread_mutex_t lock;
    unsigned failed;
    char first_error[256];
    char tls[96];
};

static void fail(struct idle_run *r, const char *why)
{
    pthread_mutex_lock(&r->lock);
    if (r->failed++ == 0)
        snprintf(r->first_error, sizeof(r->first_error), "%s", why);
    pthread_mutex_unlock(&r->lock);
}

/* Sends request seq of session index and checks the answer. */
static int exchange(struct idle_run *r, struct held *h, uint32_t index, uint64_t seq,
                    unsigned char *req, unsigned char *ans, char *why, size_t cap)
{
    size_t size = r->a->size;
    bench_msg_fill(req, size, BENCH_REQUEST, index, seq);
    int rc = bench_ue_write_all(h->fd, h->ssl, req, size);
    if (rc == 0)
        rc = bench_ue_read_all(h->fd, h->ssl, ans, size);
    if (rc < 0)
        snprintf(why, cap, "session %u, exchange %llu: %s", index, (unsigned long long)seq,
                 strerror(-rc));
    else if (!bench_msg_check(ans, size, BENCH_ANSWER, index, seq)) {
        snprintf(why, cap, "session %u: answer %llu corrupt or another's", index,
                 (unsigned long long)seq);
        rc = -EBADMSG;
    }
    return rc;
}

static int session_up(struct idle_run *r, uint32_t index, unsigned char *req, unsigned char *ans,
                      char *why, size_t cap)
{
    struct held *h = &r->held[index];
    struct bench_gw_session gs = {0};
    const struct sockaddr_storage *to = &r->to;
    socklen_t to_len = r->to_len;
    int rc;
    if (r->gw != NULL) {
        rc = bench_gw_session_add(r->gw, r->sink_port, r->ue->fingerprint, &gs, why, cap);
        if (rc < 0)
            return rc;
        h->context = gs.context;
        to = &gs.access;
        to_len = gs.access_len;
    }
    rc = bench_ue_connect(r->ue, to, to_len, &h->fd, &h->ssl, why, cap);
    if (rc < 0)
        return rc;
    h->up = true;
    char fp[200];
    if (r->gw != NULL && (bench_tls_peer_fingerprint(h->ssl, fp, sizeof(fp)) < 0 ||
                          strcasecmp(fp, gs.fingerprint) != 0)) {
        snprintf(why, cap, "session %u: the certificate is not the one Iq announced", index);
        return -EACCES;
    }
    if (r->tls[0] == '\0' && h->ssl != NULL) {
        char tls[96];
        bench_tls_describe(h->ssl, tls, sizeof(tls));
        pthread_mutex_lock(&r->lock);
        snprintf(r->tls, sizeof(r->tls), "%s", tls);
        pthread_mutex_unlock(&r->lock);
    }
    rc = exchange(r, h, index, 0, req, ans, why, cap);
    h->live = rc == 0;
    return rc;
}

static void session_down(struct idle_run *r, struct held *h)
{
    if (h->up)
        bench_ue_close(h->fd, h->ssl);
    h->up = h->live = false;
    h->ssl = NULL;
    if (h->context != 0 && bench_gw_session_subtract(r->gw, h->context) < 0)
        fail(r, "a Subtract failed");
    h->context = 0;
}

static void *idle_thread(void *arg)
{
    struct idle_run *r = arg;
    unsigned char *req = malloc(r->a->size), *ans = malloc(r->a->size);
    while (req != NULL && ans != NULL && !atomic_load(&r->stop)) {
        unsigned index = atomic_fetch_add(&r->next, 1);
        if (index >= r->limit)
            break;
        struct held *h = &r->held[index];
        char why[256] = "";
        int rc = 0;
        switch (r->phase) {
        case PHASE_UP:
            rc = session_up(r, index, req, ans, why, sizeof(why));
            break;
        case PHASE_AGAIN:
            rc = h->live ? exchange(r, h, index, 1, req, ans, why, sizeof(why)) : 0;
            break;
        case PHASE_DOWN:
            session_down(r, h);
            break;
        }
        if (rc < 0) {
            fail(r, why);
            if (r->phase == PHASE_UP)
                atomic_store(&r->stop, true); /* measure what is held; hold no more */
        }
    }
    free(req);
    free(ans);
    return NULL;
}

static void run_phase(struct idle_run *r, int phase, unsigned first, unsigned limit)
{
    pthread_t th[256];
    unsigned started = 0;
    r->phase = phase;
    r->limit = limit;
    atomic_store(&r->next, first);
    atomic_store(&r->stop, false);
    for (; started < r->a->window; started++)
        if (pthread_create(&th[started], NULL, idle_thread, r) != 0)
            break;
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static unsigned count_up(const struct idle_run *r, unsigned first, unsigned limit)
{
    unsigned n = 0;
    for (unsigned i = first; i < limit; i++)
        n += r->held[i].live;
    return n;
}

int bench_idle_main(int argc, char **argv)
{
    struct bench_args a;
    int prc = bench_args_parse(argc, argv, BENCH_IDLE, idle_usage, &a);
    if (prc != 0)
        return prc == 1 ? 0 : prc;
    if (a.target != NULL && a.target_pid == 0) {
        fprintf(stderr, "agw-bench idle: --target needs --target-pid (whose memory to read)\n");
        return 2;
    }
    if (a.target == NULL && a.n_realms == 0) {
        /* 127.0.0.66 is loopback too, and no test suite or other tool binds it: the whole port
         * space below the ephemeral range is ours, far more than 8000 sessions need. */
        a.realms[a.n_realms++] = "access,127.0.0.66,1024-29999";
        a.realms[a.n_realms++] = "core,127.0.0.66,30000-32767";
    }
    signal(SIGPIPE, SIG_IGN);
    long our_limit = bench_raise_nofile();
    /* Ours: a UE socket and a sink socket per session. */
    if (our_limit > 0 && (long)a.sessions * 2 + FD_MARGIN > our_limit) {
        fprintf(stderr, "agw-bench idle: %u sessions need %u descriptors here, the limit is %ld\n",
                a.sessions, a.sessions * 2 + FD_MARGIN, our_limit);
        return 2;
    }
    bench_msg_init();
    static struct idle_run r;
    r.a = &a;
    pthread_mutex_init(&r.lock, NULL);
    int status = 1;
    unsigned total = a.warmup + a.sessions;
    r.held = calloc(total, sizeof(*r.held));
    struct bench_ue ue;
    struct bench_sink *sink = NULL;
    if (bench_ue_init(&a, &ue) < 0 || r.held == NULL)
        goto out;
    r.ue = &ue;
    int rc = bench_sink_start((uint16_t)a.sink_port, a.size, 0, &sink);
    if (rc < 0) {
        fprintf(stderr, "agw-bench idle: the sink cannot listen on 127.0.0.1:%lu: %s\n",
                a.sink_port, strerror(-rc));
        goto out;
    }
    r.sink_port = bench_sink_port(sink);
    pid_t pid = a.target_pid;
    if (a.target != NULL) {
        if (iq_parse_addr(a.target, &r.to, &r.to_len) < 0) {
            fprintf(stderr, "agw-bench idle: --target wants ADDR:PORT, not %s\n", a.target);
            goto out;
        }
    } else {
        if (bench_gw_start(&a, total + 64, &r.gw) < 0)
            goto out;
        pid = bench_gw_pid(r.gw);
    }

    /* Warm-up: first-use costs (pools, OpenSSL's per-thread state, allocator arenas) land
     * before the first sample. */
    if (a.warmup > 0) {
        run_phase(&r, PHASE_UP, 0, a.warmup);
        run_phase(&r, PHASE_DOWN, 0, a.warmup);
        if (r.failed > 0) {
            fprintf(stderr, "agw-bench idle: %s: warm-up failed: %s\n", a.label, r.first_error);
            goto out;
        }
    }
    sleep_ms(500);
    uint64_t rss0 = 0, pss0 = 0, rss1 = 0, pss1 = 0;
    if (bench_proc_memory(pid, &rss0, &pss0) < 0) {
        fprintf(stderr, "agw-bench idle: cannot read /proc/%d/smaps_rollup\n", (int)pid);
        goto out;
    }
    int fds0 = bench_proc_fds(pid);
    long limit = bench_proc_nofile_limit(pid);

    /* A few sessions tell how many descriptors the relay spends on one: more sessions than its
     * limit allows would fail one by one, each after a stall; they are not attempted. */
    unsigned first = a.warmup, want = total, capped = 0;
    uint64_t t0 = bench_now_us();
    unsigned probe = a.sessions < PROBE_SESSIONS ? a.sessions : PROBE_SESSIONS;
    run_phase(&r, PHASE_UP, first, first + probe);
    int fds_probe = bench_proc_fds(pid);
    double per_fd =
        fds0 >= 0 && fds_probe >= 0 && probe > 0 ? (double)(fds_probe - fds0) / (double)probe : 0;
    if (r.failed == 0 && per_fd > 0 && limit > 0) {
        double room = (double)(limit - FD_MARGIN - fds0) / per_fd;
        if (room < (double)a.sessions) {
            capped = room > probe ? (unsigned)room : probe;
            want = first + capped;
            fprintf(stderr,
                    "agw-bench idle: %s holds %.1f descriptors per session and may open %ld: "
                    "%u sessions do not fit, %u are held\n",
                    a.label, per_fd, limit, a.sessions, capped);
        }
    }
    if (r.failed == 0)
        run_phase(&r, PHASE_UP, first + probe, want);
    double setup_s = (double)(bench_now_us() - t0) / 1e6;
    unsigned held = count_up(&r, first, total);
    sleep_ms(a.settle_ms);
    if (bench_proc_memory(pid, &rss1, &pss1) < 0) {
        fprintf(stderr, "agw-bench idle: %s (pid %d) is gone\n", a.label, (int)pid);
        r.failed++;
    }
    int fds1 = bench_proc_fds(pid);

    /* Still alive and relaying after the sample: a session that died idle would count as
     * memory saved. */
    unsigned failed_up = r.failed;
    run_phase(&r, PHASE_AGAIN, first, total);
    unsigned failed_again = r.failed - failed_up;
    run_phase(&r, PHASE_DOWN, first, total);
    struct bench_sink_stats st;
    bench_sink_stats(sink, &st);

    double rss_per = held ? ((double)rss1 - (double)rss0) / held : 0;
    double pss_per = held ? ((double)pss1 - (double)pss0) / held : 0;
    double fd_per = held && fds0 >= 0 && fds1 >= 0 ? (double)(fds1 - fds0) / held : 0;
    const char *tls = r.tls[0] != '\0' ? r.tls : "?";
    if (st.errors > 0)
        fprintf(stderr, "agw-bench idle: the sink saw %llu error(s), first: %s\n",
                (unsigned long long)st.errors, st.first_error);
    if (r.failed > 0)
        fprintf(stderr, "agw-bench idle: %s: %u failure(s), first: %s\n", a.label, r.failed,
                r.first_error);
    bool ok = r.failed == 0 && st.errors == 0 && held == a.sessions;
    char long_timer[16] = "null"; /* null: the gateway's default, or no gateway */
    if (r.gw != NULL && a.long_timer_ms != 0)
        snprintf(long_timer, sizeof(long_timer), "%u", a.long_timer_ms);
    if (a.json) {
        printf("{\"mode\":\"idle\",\"target\":\"%s\",\"sessions\":%u,\"held\":%u,\"size\":%u,"
               "\"cipher\":\"%s\",\"group\":\"%s\",\"workers\":%s%s%s,\"rss_kib\":{\"before\":"
               "%llu,\"after\":%llu},\"pss_kib\":{\"before\":%llu,\"after\":%llu},"
               "\"rss_kib_per_session\":%.2f,\"pss_kib_per_session\":%.2f,\"fds_per_session\":"
               "%.2f,\"fd_limit\":%ld,\"capped\":%s,\"setup_s\":%.2f,\"failed_sessions\":%u,"
               "\"failed_after_idle\":%u,\"sink_errors\":%llu,\"long_timer_ms\":%s,"
               "\"negotiated\":\"%s\"}\n",
               a.label, a.sessions, held, a.size, a.cipher, a.group, r.gw ? "\"" : "",
               r.gw ? a.workers : "null", r.gw ? "\"" : "", (unsigned long long)rss0,
               (unsigned long long)rss1, (unsigned long long)pss0, (unsigned long long)pss1,
               rss_per, pss_per, fd_per, limit, capped ? "true" : "false", setup_s, failed_up,
               failed_again, (unsigned long long)st.errors, long_timer, tls);
    } else {
        printf("idle: %s%s%s: %u of %u TLS 1.3 sessions held (%s %s), set up in %.1f s\n", a.label,
               r.gw ? ", workers " : "", r.gw ? a.workers : "", held, a.sessions, a.cipher, a.group,
               setup_s);
        printf("  RSS %llu -> %llu KiB: %.2f KiB per session\n", (unsigned long long)rss0,
               (unsigned long long)rss1, rss_per);
        printf("  PSS %llu -> %llu KiB: %.2f KiB per session\n", (unsigned long long)pss0,
               (unsigned long long)pss1, pss_per);
        printf("  descriptors: %.2f per session (limit %ld)%s\n", fd_per, limit,
               capped ? ", CAPPED: the requested sessions do not fit" : "");
        printf("  negotiated: %s\n", tls);
        printf("  verified: %s\n",
               ok ? "two exchanges per session (before and after idling)" : "FAILED");
    }
    status = ok ? 0 : 1;
out:
    bench_gw_stop(r.gw);
    bench_sink_stop(sink);
    bench_ue_fini(&ue);
    free(r.held);
    pthread_mutex_destroy(&r.lock);
    return status;
}
