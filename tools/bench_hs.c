/* agw-bench handshake: whole sessions one after the other (Iq set-up, TCP, TLS 1.3 handshake with
 * the gateway's certificate checked against Iq, one exchange, close, Iq release); sessions per
 * second and the relay's CPU time per handshake. */
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
#include <unistd.h>

static const char hs_usage[] =
    "usage: agw-bench handshake [options]\n"
    "  new sessions, one after the other on each of --window threads: the ALG's Add core and\n"
    "  Add access over Iq, the UE's TCP connection and TLS 1.3 handshake (the gateway's\n"
    "  certificate checked against the fingerprint of the Add reply), one request and its\n"
    "  answer, the relay's close, Subtract. Sessions per second; the relay's CPU time per\n"
    "  session (for ims-agw also its control thread's share: Iq). With --target: TCP and TLS\n"
    "  to any terminator forwarding to --sink-port, one exchange, close (no Iq).\n"
    "  --seconds N         how long to measure (default 10)\n"
    "  --sessions N        measure N sessions instead of a time\n"
    "  --window N          sessions in flight, one thread each (default 4, max 256)\n"
    "  --warmup N          sessions before the measurement (default 50)\n"
    "  --size N            bytes of the request and of the answer (default 64)\n"
    "  --target ADDR:PORT, --sink-port P, --target-pid PID   a reference terminator\n"
    "  --cipher NAME, --group NAME  TLS 1.3 terms (default TLS_AES_128_GCM_SHA256, P-256)\n"
    "  --ue-cert FILE --ue-key FILE the UEs' certificate (for relays that verify it)\n"
    "  --spawn BIN, --config FILE, --workers N, --realm SPEC, --listen ADDR:PORT,\n"
    "  --long-timer-ms N   the spawned gateway (default build/ims-agw, workers 1)\n"
    "  --label NAME, --json as for the other modes\n";

struct hs_run {
    const struct bench_args *a;
    const struct bench_ue *ue;
    struct bench_gw *gw; /* NULL: --target */
    uint16_t sink_port;
    struct sockaddr_storage to;
    socklen_t to_len;
    atomic_uint next; /* session numbers handed out */
    unsigned limit;   /* sessions to run in this phase; 0: until stop */
    atomic_bool stop;
    pthread_mutex_t lock; /* what follows */
    uint64_t *hs_us;      /* TCP connect + TLS handshake, per completed session */
    size_t n_hs, cap_hs;
    unsigned completed, failed;
    char first_error[256];
    char tls[96];
};

static void record(struct hs_run *r, int rc, const char *why, uint64_t hs_us, const char *tls)
{
    pthread_mutex_lock(&r->lock);
    if (rc < 0) {
        if (r->failed++ == 0)
            snprintf(r->first_error, sizeof(r->first_error), "%s", why);
    } else {
        r->completed++;
        if (r->n_hs == r->cap_hs) {
            size_t cap = r->cap_hs ? r->cap_hs * 2 : 65536;
            uint64_t *grown = realloc(r->hs_us, cap * sizeof(*grown));
            if (grown != NULL) {
                r->hs_us = grown;
                r->cap_hs = cap;
            }
        }
        if (r->n_hs < r->cap_hs)
            r->hs_us[r->n_hs++] = hs_us;
        if (r->tls[0] == '\0' && tls[0] != '\0')
            snprintf(r->tls, sizeof(r->tls), "%s", tls);
    }
    pthread_mutex_unlock(&r->lock);
}

/* One whole session; 0 or negative with why filled. */
static int one_session(struct hs_run *r, uint32_t index, unsigned char *req, unsigned char *ans,
                       uint64_t *hs_us, char *tls, size_t tls_cap, char *why, size_t cap)
{
    const struct bench_args *a = r->a;
    struct bench_gw_session gs = {0};
    const struct sockaddr_storage *to = &r->to;
    socklen_t to_len = r->to_len;
    int rc;
    if (r->gw != NULL) {
        if ((rc = bench_gw_session_add(r->gw, r->sink_port, r->ue->fingerprint, &gs, why, cap)) < 0)
            return rc;
        to = &gs.access;
        to_len = gs.access_len;
    }
    int fd;
    SSL *ssl;
    uint64_t t0 = bench_now_us();
    rc = bench_ue_connect(r->ue, to, to_len, &fd, &ssl, why, cap);
    *hs_us = bench_now_us() - t0;
    if (rc == 0) {
        bench_tls_describe(ssl, tls, tls_cap);
        char fp[200];
        if (r->gw != NULL && (bench_tls_peer_fingerprint(ssl, fp, sizeof(fp)) < 0 ||
                              strcasecmp(fp, gs.fingerprint) != 0)) {
            snprintf(why, cap, "the certificate is not the one the Add reply announced");
            rc = -EACCES;
        }
        bench_msg_fill(req, a->size, BENCH_REQUEST, index, 0);
        if (rc == 0 && (rc = bench_ue_write_all(fd, ssl, req, a->size)) == 0 &&
            (rc = bench_ue_read_all(fd, ssl, ans, a->size)) == 0 &&
            !bench_msg_check(ans, a->size, BENCH_ANSWER, index, 0)) {
            snprintf(why, cap, "session %u: the answer is corrupt or another's", index);
            rc = -EBADMSG;
        } else if (rc < 0 && rc != -EACCES) {
            snprintf(why, cap, "session %u: exchange: %s", index, strerror(-rc));
        }
        if (rc == 0) {
            rc = bench_ue_finish(fd, ssl);
            if (rc < 0)
                snprintf(why, cap, "session %u: the relay did not end the session cleanly: %s",
                         index, strerror(-rc));
        } else {
            bench_ue_close(fd, ssl);
        }
    }
    if (r->gw != NULL) {
        int src = bench_gw_session_subtract(r->gw, gs.context);
        if (rc == 0 && src < 0) {
            snprintf(why, cap, "session %u: Subtract failed: %s", index, strerror(-src));
            rc = src;
        }
    }
    return rc;
}

static void *hs_thread(void *arg)
{
    struct hs_run *r = arg;
    unsigned char *req = malloc(r->a->size), *ans = malloc(r->a->size);
    while (req != NULL && ans != NULL && !atomic_load(&r->stop)) {
        unsigned index = atomic_fetch_add(&r->next, 1);
        if (r->limit != 0 && index >= r->limit)
            break;
        char why[256] = "", tls[96] = "";
        uint64_t hs_us = 0;
        int rc = one_session(r, index, req, ans, &hs_us, tls, sizeof(tls), why, sizeof(why));
        record(r, rc, why, hs_us, tls);
    }
    free(req);
    free(ans);
    return NULL;
}

/* Runs --window threads until r->limit sessions were handed out or, with limit 0, for seconds. */
static void run_phase(struct hs_run *r, unsigned limit, unsigned seconds)
{
    unsigned window = r->a->window;
    pthread_t th[256];
    unsigned started = 0;
    atomic_store(&r->next, 0);
    atomic_store(&r->stop, false);
    r->limit = limit;
    for (; started < window; started++)
        if (pthread_create(&th[started], NULL, hs_thread, r) != 0)
            break;
    if (limit == 0) {
        uint64_t end = bench_now_us() + (uint64_t)seconds * 1000000u;
        while (bench_now_us() < end)
            usleep(20000);
        atomic_store(&r->stop, true);
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
}

int bench_hs_main(int argc, char **argv)
{
    struct bench_args a;
    int prc = bench_args_parse(argc, argv, BENCH_HS, hs_usage, &a);
    if (prc != 0)
        return prc == 1 ? 0 : prc;
    signal(SIGPIPE, SIG_IGN);
    bench_raise_nofile();
    bench_msg_init();
    static struct hs_run r;
    r.a = &a;
    pthread_mutex_init(&r.lock, NULL);
    int status = 1;
    struct bench_ue ue;
    struct bench_sink *sink = NULL;
    if (bench_ue_init(&a, &ue) < 0)
        goto out;
    r.ue = &ue;
    int rc = bench_sink_start((uint16_t)a.sink_port, a.size, 1, &sink);
    if (rc < 0) {
        fprintf(stderr, "agw-bench handshake: the sink cannot listen on 127.0.0.1:%lu: %s\n",
                a.sink_port, strerror(-rc));
        goto out;
    }
    r.sink_port = bench_sink_port(sink);
    pid_t cpu_pid = a.target_pid;
    if (a.target != NULL) {
        if (iq_parse_addr(a.target, &r.to, &r.to_len) < 0) {
            fprintf(stderr, "agw-bench handshake: --target wants ADDR:PORT, not %s\n", a.target);
            goto out;
        }
    } else {
        if (bench_gw_start(&a, a.window * 2 + 16, &r.gw) < 0)
            goto out;
        cpu_pid = bench_gw_pid(r.gw);
    }
    if (a.warmup > 0) {
        run_phase(&r, a.warmup, 0);
        if (r.failed > 0) {
            fprintf(stderr,
                    "agw-bench handshake: %s: %u of %u warm-up sessions failed, first: %s\n",
                    a.label, r.failed, a.warmup, r.first_error);
            goto out;
        }
    }
    struct bench_sink_stats st0, st1;
    bench_sink_stats(sink, &st0);
    r.completed = r.failed = 0;
    r.n_hs = 0;
    double cpu0 = -1, main0 = -1, cpu1 = -1, main1 = -1;
    if (cpu_pid > 0)
        bench_proc_cpu(cpu_pid, &cpu0, &main0);
    double host0 = bench_host_busy_seconds(), self0 = bench_self_cpu_seconds();
    uint64_t start = bench_now_us();
    run_phase(&r, a.sessions, a.seconds);
    uint64_t end = bench_now_us();
    if (cpu_pid > 0)
        bench_proc_cpu(cpu_pid, &cpu1, &main1);
    double host1 = bench_host_busy_seconds(), self1 = bench_self_cpu_seconds();
    bench_sink_stats(sink, &st1);

    double window = (double)(end - start) / 1e6;
    double relay_cpu = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
    double control_cpu = r.gw != NULL && main0 >= 0 && main1 >= 0 ? main1 - main0 : -1;
    double bench_cpu = self1 - self0;
    double other =
        host0 >= 0 && host1 >= 0 && relay_cpu >= 0 ? host1 - host0 - bench_cpu - relay_cpu : -1;
    unsigned n = r.completed;
    bench_sort_u64(r.hs_us, r.n_hs);
    uint64_t p50 = bench_percentile(r.hs_us, r.n_hs, 0.50),
             p99 = bench_percentile(r.hs_us, r.n_hs, 0.99);
    double rate = window > 0 ? n / window : 0;
    char cpu_json[32] = "null", per_json[32] = "null", ctl_json[32] = "null",
         ctl_per_json[32] = "null", other_json[32] = "null";
    if (relay_cpu >= 0 && n > 0) {
        snprintf(cpu_json, sizeof(cpu_json), "%.2f", relay_cpu);
        snprintf(per_json, sizeof(per_json), "%.0f", relay_cpu * 1e6 / n);
    }
    if (control_cpu >= 0 && n > 0) {
        snprintf(ctl_json, sizeof(ctl_json), "%.2f", control_cpu);
        snprintf(ctl_per_json, sizeof(ctl_per_json), "%.0f", control_cpu * 1e6 / n);
    }
    if (other >= -0.5 && relay_cpu >= 0)
        snprintf(other_json, sizeof(other_json), "%.2f", other < 0 ? 0 : other);
    uint64_t answered = st1.answered - st0.answered;
    uint64_t sink_errors = st1.errors - st0.errors;
    if (sink_errors > 0)
        fprintf(stderr, "agw-bench handshake: the sink saw %llu error(s), first: %s\n",
                (unsigned long long)sink_errors, st1.first_error);
    if (r.failed > 0)
        fprintf(stderr, "agw-bench handshake: %s: %u session(s) failed, first: %s\n", a.label,
                r.failed, r.first_error);
    const char *tls = r.tls[0] != '\0' ? r.tls : "?";
    bool ok = r.failed == 0 && sink_errors == 0 && n > 0;
    if (a.json) {
        printf("{\"mode\":\"handshake\",\"target\":\"%s\",\"sessions\":%u,\"window\":%u,"
               "\"cipher\":\"%s\",\"group\":\"%s\",\"workers\":%s%s%s,\"seconds\":%.3f,"
               "\"sessions_per_s\":%.1f,\"handshake_us\":{\"p50\":%llu,\"p99\":%llu},"
               "\"relay_cpu_s\":%s,\"relay_cpu_us_per_session\":%s,\"control_cpu_s\":%s,"
               "\"control_cpu_us_per_session\":%s,\"bench_cpu_s\":%.2f,\"other_cpu_s\":%s,"
               "\"window_s\":%.3f,\"failed_sessions\":%u,\"sink_answers\":%llu,"
               "\"sink_errors\":%llu,\"client_cert\":%s,\"negotiated\":\"%s\"}\n",
               a.label, n, a.window, a.cipher, a.group, r.gw ? "\"" : "", r.gw ? a.workers : "null",
               r.gw ? "\"" : "", window, rate, (unsigned long long)p50, (unsigned long long)p99,
               cpu_json, per_json, ctl_json, ctl_per_json, bench_cpu, other_json, window, r.failed,
               (unsigned long long)answered, (unsigned long long)sink_errors,
               a.ue_cert != NULL ? "\"file\"" : "\"generated\"", tls);
    } else {
        printf("handshake: %s%s%s: %u sessions in %.2f s, %u in flight, TLS 1.3 %s %s\n", a.label,
               r.gw ? ", workers " : "", r.gw ? a.workers : "", n, window, a.window, a.cipher,
               a.group);
        printf("  %.1f sessions/s; TCP + TLS handshake at the UE: p50 %llu us, p99 %llu us\n", rate,
               (unsigned long long)p50, (unsigned long long)p99);
        if (relay_cpu >= 0)
            printf("  relay CPU: %.2f s, %s us per session%s%s%s\n", relay_cpu, per_json,
                   control_cpu >= 0 ? " (control thread, Iq: " : "",
                   control_cpu >= 0 ? ctl_per_json : "", control_cpu >= 0 ? " us)" : "");
        printf("  CPU: agw-bench %.2f s, other processes %s s\n", bench_cpu, other_json);
        printf("  negotiated: %s\n", tls);
        printf("  verified: %s\n",
               ok ? "certificate, request and answer of every session" : "FAILED");
    }
    status = ok ? 0 : 1;
out:
    bench_gw_stop(r.gw);
    bench_sink_stop(sink);
    bench_ue_fini(&ue);
    free(r.hs_us);
    pthread_mutex_destroy(&r.lock);
    return status;
}
