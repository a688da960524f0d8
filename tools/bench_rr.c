/* agw-bench rr: request/answer round trips of small messages (MSRP-sized chunks) from TLS UEs
 * through a relay to a core sink that answers each one; latency percentiles, every byte checked. */
#include "tools/bench_modes.h"
#include "tools/iq_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RR_MAX_SESSIONS 256

static const char rr_usage[] =
    "usage: agw-bench rr [options]\n"
    "  request/answer round trips: each UE (TLS 1.3 client) sends a request of --size bytes,\n"
    "  the core sink answers with as many, the UE waits for the answer before the next one.\n"
    "  Round-trip latency percentiles; both ends check every byte. The relay is a spawned\n"
    "  ims-agw (e2ae sessions over Iq), or with --target any TLS terminator forwarding to\n"
    "  --sink-port.\n"
    "  --sessions N        UEs in parallel, one connection pair each (default 1, max 256)\n"
    "  --exchanges N       round trips per session (default 20000)\n"
    "  --size N            bytes of a request and of an answer (default 1024, 24..65536)\n"
    "  --target ADDR:PORT  UEs connect there (no Iq); --sink-port P where it forwards to\n"
    "  --target-pid PID    that process's CPU time is the relay's\n"
    "  --cipher NAME, --group NAME  TLS 1.3 terms (default TLS_AES_128_GCM_SHA256, P-256)\n"
    "  --ue-cert FILE --ue-key FILE the UEs' certificate (default: a generated P-256 one)\n"
    "  --spawn BIN, --config FILE, --workers N, --realm SPEC, --listen ADDR:PORT,\n"
    "  --long-timer-ms N   the spawned gateway (default build/ims-agw, workers 1)\n"
    "  --label NAME        the relay's name in the output\n"
    "  --json              one JSON line instead of the table\n";

/* Every session waits for the others before its first exchange, so that round trips overlap. */
struct rr_start {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned ready;
    bool go;
};

struct rr_session {
    const struct bench_args *a;
    const struct bench_ue *ue;
    struct rr_start *start;
    uint32_t index;
    struct sockaddr_storage to;
    socklen_t to_len;
    char expect_fp[128]; /* the gateway's fingerprint from Iq; empty: not checked */
    uint64_t *latency_us;
    unsigned done;
    int rc;
    char why[200];
    char tls[96];
};

static void *rr_thread(void *arg)
{
    struct rr_session *s = arg;
    const struct bench_args *a = s->a;
    int fd = -1;
    SSL *ssl = NULL;
    unsigned char *req = malloc(a->size), *ans = malloc(a->size);
    s->rc = req != NULL && ans != NULL
                ? bench_ue_connect(s->ue, &s->to, s->to_len, &fd, &ssl, s->why, sizeof(s->why))
                : -ENOMEM;
    if (s->rc == 0 && ssl != NULL) {
        bench_tls_describe(ssl, s->tls, sizeof(s->tls));
        char fp[200];
        if (s->expect_fp[0] != '\0' && (bench_tls_peer_fingerprint(ssl, fp, sizeof(fp)) < 0 ||
                                        strcasecmp(fp, s->expect_fp) != 0)) {
            snprintf(s->why, sizeof(s->why), "the certificate is not the one Iq announced");
            s->rc = -EACCES;
        }
    }
    pthread_mutex_lock(&s->start->lock);
    s->start->ready++;
    pthread_cond_broadcast(&s->start->cond);
    while (!s->start->go)
        pthread_cond_wait(&s->start->cond, &s->start->lock);
    pthread_mutex_unlock(&s->start->lock);
    for (unsigned k = 0; s->rc == 0 && k < a->exchanges; k++) {
        bench_msg_fill(req, a->size, BENCH_REQUEST, s->index, k);
        uint64_t t0 = bench_now_us();
        int rc = bench_ue_write_all(fd, ssl, req, a->size);
        if (rc == 0)
            rc = bench_ue_read_all(fd, ssl, ans, a->size);
        uint64_t t1 = bench_now_us();
        if (rc < 0) {
            snprintf(s->why, sizeof(s->why), "exchange %u: %s", k, strerror(-rc));
            s->rc = rc;
        } else if (!bench_msg_check(ans, a->size, BENCH_ANSWER, s->index, k)) {
            snprintf(s->why, sizeof(s->why), "answer %u corrupt, misplaced or out of order", k);
            s->rc = -EBADMSG;
        } else {
            s->latency_us[k] = t1 - t0;
            s->done++;
        }
    }
    if (fd >= 0)
        bench_ue_close(fd, ssl);
    free(req);
    free(ans);
    return NULL;
}

int bench_rr_main(int argc, char **argv)
{
    struct bench_args a;
    int prc = bench_args_parse(argc, argv, BENCH_RR, rr_usage, &a);
    if (prc != 0)
        return prc == 1 ? 0 : prc;
    if (a.sessions > RR_MAX_SESSIONS) {
        fprintf(stderr, "agw-bench rr: --sessions 1..%d\n", RR_MAX_SESSIONS);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    bench_raise_nofile();
    bench_msg_init();
    bool gateway = a.target == NULL;
    int status = 1;
    struct bench_ue ue;
    struct bench_sink *sink = NULL;
    struct bench_gw *gw = NULL;
    struct rr_session *ss = calloc(a.sessions, sizeof(*ss));
    pthread_t *th = calloc(a.sessions, sizeof(*th));
    uint64_t *lat = calloc((size_t)a.sessions * a.exchanges, sizeof(*lat));
    static struct rr_start go = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false};
    if (ss == NULL || th == NULL || lat == NULL) {
        fprintf(stderr, "agw-bench rr: no memory for %u x %u latencies\n", a.sessions, a.exchanges);
        memset(&ue, 0, sizeof(ue));
        goto out;
    }
    if (bench_ue_init(&a, &ue) < 0)
        goto out;
    int rc = bench_sink_start((uint16_t)a.sink_port, a.size, 0, &sink);
    if (rc < 0) {
        fprintf(stderr, "agw-bench rr: the sink cannot listen on 127.0.0.1:%lu: %s\n", a.sink_port,
                strerror(-rc));
        goto out;
    }
    uint16_t sink_port = bench_sink_port(sink);
    for (unsigned i = 0; i < a.sessions; i++) {
        ss[i] = (struct rr_session){.a = &a, .ue = &ue, .start = &go, .index = i};
        ss[i].latency_us = lat + (size_t)i * a.exchanges;
    }
    pid_t cpu_pid = a.target_pid;
    struct sockaddr_storage to = {0};
    socklen_t to_len = 0;
    if (a.target != NULL) {
        if (iq_parse_addr(a.target, &to, &to_len) < 0) {
            fprintf(stderr, "agw-bench rr: --target wants ADDR:PORT, not %s\n", a.target);
            goto out;
        }
    } else {
        if (bench_gw_start(&a, a.sessions + 16, &gw) < 0)
            goto out;
        cpu_pid = bench_gw_pid(gw);
        for (unsigned i = 0; i < a.sessions; i++) {
            struct bench_gw_session gs;
            char why[256];
            if (bench_gw_session_add(gw, sink_port, ue.fingerprint, &gs, why, sizeof(why)) < 0) {
                fprintf(stderr, "agw-bench rr: session %u: %s\n", i, why);
                goto out;
            }
            ss[i].to = gs.access;
            ss[i].to_len = gs.access_len;
            snprintf(ss[i].expect_fp, sizeof(ss[i].expect_fp), "%s", gs.fingerprint);
        }
    }
    if (!gateway)
        for (unsigned i = 0; i < a.sessions; i++) {
            ss[i].to = to;
            ss[i].to_len = to_len;
        }
    unsigned started = 0;
    for (; started < a.sessions; started++)
        if (pthread_create(&th[started], NULL, rr_thread, &ss[started]) != 0)
            break;
    if (started < a.sessions) {
        fprintf(stderr, "agw-bench rr: cannot start %u threads\n", a.sessions);
        for (unsigned i = started; i < a.sessions; i++) {
            ss[i].rc = -EAGAIN;
            snprintf(ss[i].why, sizeof(ss[i].why), "no thread");
        }
    }
    pthread_mutex_lock(&go.lock);
    while (go.ready < started)
        pthread_cond_wait(&go.cond, &go.lock);
    go.go = true;
    pthread_cond_broadcast(&go.cond);
    pthread_mutex_unlock(&go.lock);
    double cpu0 = -1, main0 = -1, cpu1 = -1, main1 = -1;
    if (cpu_pid > 0)
        bench_proc_cpu(cpu_pid, &cpu0, &main0);
    double host0 = bench_host_busy_seconds(), self0 = bench_self_cpu_seconds();
    uint64_t start = bench_now_us();
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    uint64_t end = bench_now_us();
    if (cpu_pid > 0)
        bench_proc_cpu(cpu_pid, &cpu1, &main1);
    double host1 = bench_host_busy_seconds(), self1 = bench_self_cpu_seconds();
    double relay_cpu = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1;
    double bench_cpu = self1 - self0;
    double window = (double)(end - start) / 1e6;
    double other =
        host0 >= 0 && host1 >= 0 && relay_cpu >= 0 ? host1 - host0 - bench_cpu - relay_cpu : -1;

    size_t n = 0;
    unsigned failed = 0;
    const char *tls = "?";
    for (unsigned i = 0; i < a.sessions; i++) {
        struct rr_session *s = &ss[i];
        if (s->done > 0 && n != (size_t)i * a.exchanges)
            memmove(lat + n, s->latency_us, s->done * sizeof(*lat));
        n += s->done;
        if (s->tls[0] != '\0' && strcmp(tls, "?") == 0)
            tls = s->tls;
        if (s->rc != 0 && failed++ < 5)
            fprintf(stderr, "agw-bench rr: %s session %u failed after %u exchanges: %s\n", a.label,
                    i, s->done, s->why);
    }
    struct bench_sink_stats st;
    bench_sink_stats(sink, &st);
    if (st.errors > 0)
        fprintf(stderr, "agw-bench rr: the sink saw %llu error(s), first: %s\n",
                (unsigned long long)st.errors, st.first_error);
    bench_sort_u64(lat, n);
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += lat[i];
    double mean = n ? (double)sum / (double)n : 0;
    uint64_t p50 = bench_percentile(lat, n, 0.50), p99 = bench_percentile(lat, n, 0.99),
             p999 = bench_percentile(lat, n, 0.999), max = n ? lat[n - 1] : 0;
    double rate = window > 0 ? (double)n / window : 0;
    char cpu_json[32] = "null", per_json[32] = "null", other_json[32] = "null";
    if (relay_cpu >= 0 && n > 0) {
        snprintf(cpu_json, sizeof(cpu_json), "%.2f", relay_cpu);
        snprintf(per_json, sizeof(per_json), "%.1f", relay_cpu * 1e6 / (double)n);
    }
    if (other >= -0.5 && relay_cpu >= 0)
        snprintf(other_json, sizeof(other_json), "%.2f", other < 0 ? 0 : other);
    bool ok = failed == 0 && st.errors == 0 && n == (size_t)a.sessions * a.exchanges;
    if (a.json) {
        printf("{\"mode\":\"rr\",\"target\":\"%s\",\"sessions\":%u,\"exchanges\":%zu,\"size\":%u,"
               "\"cipher\":\"%s\",\"group\":\"%s\",\"workers\":%s%s%s,\"seconds\":%.3f,"
               "\"exchanges_per_s\":%.0f,\"latency_us\":{\"p50\":%llu,\"p99\":%llu,"
               "\"p999\":%llu,\"max\":%llu,\"mean\":%.1f},\"relay_cpu_s\":%s,"
               "\"relay_cpu_us_per_exchange\":%s,\"bench_cpu_s\":%.2f,\"other_cpu_s\":%s,"
               "\"window_s\":%.3f,\"failed_sessions\":%u,\"sink_errors\":%llu,"
               "\"negotiated\":\"%s\"}\n",
               a.label, a.sessions, n, a.size, a.cipher, a.group, gateway ? "\"" : "",
               gateway ? a.workers : "null", gateway ? "\"" : "", window, rate,
               (unsigned long long)p50, (unsigned long long)p99, (unsigned long long)p999,
               (unsigned long long)max, mean, cpu_json, per_json, bench_cpu, other_json, window,
               failed, (unsigned long long)st.errors, tls);
    } else {
        printf("rr: %s%s%s: %u session(s) x %u exchanges of %u bytes each way, TLS 1.3 %s %s\n",
               a.label, gateway ? ", workers " : "", gateway ? a.workers : "", a.sessions,
               a.exchanges, a.size, a.cipher, a.group);
        printf("  round trip: p50 %llu us, p99 %llu us, p99.9 %llu us, max %llu us, mean %.1f us\n",
               (unsigned long long)p50, (unsigned long long)p99, (unsigned long long)p999,
               (unsigned long long)max, mean);
        printf("  %.0f exchanges/s in %.2f s\n", rate, window);
        if (relay_cpu >= 0)
            printf("  CPU: relay %.2f s (%s us per exchange), agw-bench %.2f s, other processes "
                   "%s s\n",
                   relay_cpu, per_json, bench_cpu, other_json);
        printf("  negotiated: %s\n", tls);
        printf("  verified: %s\n",
               ok ? "every request at the sink, every answer at the UE" : "FAILED");
    }
    status = ok ? 0 : 1;
out:
    bench_gw_stop(gw);
    bench_sink_stop(sink);
    bench_ue_fini(&ue);
    free(ss);
    free(th);
    free(lat);
    return status;
}
