/* agw-bench: capacity figures for ims-agw. Mode `setup`: Iq session set-ups per second,
 * pipelined, with reply latency percentiles; `bulk` (bench_bulk.c) and `dc` (bench_dc.c): relay
 * throughput; `rr`, `handshake` and `idle` (bench_rr.c, bench_hs.c, bench_idle.c): round-trip
 * latency, new sessions per second and memory per idle session. */
#define _GNU_SOURCE /* memmem */
#include "h248/h248.h"
#include "tools/bench_bulk.h"
#include "tools/bench_dc.h"
#include "tools/bench_modes.h"
#include "tools/iq_client.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum step { STEP_ADD_CORE, STEP_ADD_ACCESS, STEP_MODIFY_CORE, STEP_SUBTRACT, STEP_DONE };

struct session {
    enum step step;
    bool blocked; /* its request could not be sent yet: retried from the main loop */
    uint32_t context;
    char core_id[48];
};

struct bench {
    struct iq_client *client;
    struct session *sessions;
    unsigned total, started, completed, failures, window, blocked;
    uint32_t slot_session[65536]; /* tid % 65536 -> session index + 1 */
    uint64_t *latency_us;
    size_t n_latency, cap_latency;
    char first_error[256];
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
}

static const char ue_fingerprint[] = "sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:"
                                     "E5:7C:AB:3C:11:B5:34:22:B0:12:33:44:55:66:77";

static int send_step(struct bench *b, unsigned index)
{
    struct session *s = &b->sessions[index];
    char text[1536];
    int n = 0;
    switch (s->step) {
    case STEP_ADD_CORE:
        n = snprintf(text, sizeof(text),
                     "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\n"
                     "m=message $ TCP/MSRP *\r\na=accept-types:message/cpim\r\n}}}}}");
        break;
    case STEP_ADD_ACCESS:
        n = snprintf(text, sizeof(text),
                     "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\n"
                     "m=message $ TCP/TLS/MSRP *\r\na=accept-types:message/cpim\r\n"
                     "a=fingerprint:$\r\n},R{v=0\r\nc=IN IP4 192.0.2.10\r\nm=message 49152 "
                     "TCP/TLS/MSRP *\r\na=accept-types:message/cpim\r\na=path:msrps://"
                     "192.0.2.10:49152/s111271;tcp\r\na=setup:actpass\r\na=fingerprint:%s\r\n}}}}}",
                     s->context, ue_fingerprint);
        break;
    case STEP_MODIFY_CORE:
        n = snprintf(text, sizeof(text),
                     "C=%u{MF=%s{M{ST=1{R{v=0\r\nc=IN IP4 192.0.2.99\r\nm=message 7394 TCP/MSRP "
                     "*\r\na=setup:passive\r\na=path:msrp://192.0.2.99:7394/core9;tcp\r\n}}}}}",
                     s->context, s->core_id);
        break;
    case STEP_SUBTRACT:
        n = snprintf(text, sizeof(text), "C=%u{S=*}", s->context);
        break;
    case STEP_DONE:
        return 0;
    }
    struct h248_message *msg;
    struct h248_parse_error err;
    if (iq_client_parse_text(b->client, text, (size_t)n, &msg, &err) < 0) {
        fprintf(stderr, "agw-bench: cannot build a request: %s\n", err.text);
        return -EINVAL;
    }
    uint32_t tid;
    int rc = iq_client_send_request(b->client, msg, 0, &tid);
    h248_message_free(msg);
    if (rc == -ENOBUFS) {
        /* The client's table of transactions in flight is full: send it once replies came. */
        s->blocked = true;
        b->blocked++;
        return 0;
    }
    if (rc < 0)
        return rc;
    b->slot_session[tid % 65536] = index + 1;
    return 0;
}

static void record_latency(struct bench *b, uint64_t us)
{
    if (b->n_latency == b->cap_latency) {
        size_t cap = b->cap_latency ? b->cap_latency * 2 : 65536;
        uint64_t *grown = realloc(b->latency_us, cap * sizeof(*grown));
        if (grown == NULL)
            return;
        b->latency_us = grown;
        b->cap_latency = cap;
    }
    b->latency_us[b->n_latency++] = us;
}

static void fail(struct bench *b, const char *what)
{
    if (b->failures++ == 0)
        snprintf(b->first_error, sizeof(b->first_error), "%s", what);
}

/* Takes what the step needs from the reply and moves the session on. */
static void on_reply(void *arg, const struct iq_reply *reply)
{
    struct bench *b = arg;
    uint32_t slot = b->slot_session[reply->tid % 65536];
    if (slot == 0)
        return;
    unsigned index = slot - 1;
    struct session *s = &b->sessions[index];
    if (reply->status != 0) {
        fail(b, "a transaction timed out");
        s->step = STEP_DONE;
        return;
    }
    record_latency(b, reply->latency_us);
    const struct h248_error_desc *e = iq_reply_error(reply);
    if (e != NULL) {
        char what[200];
        snprintf(what, sizeof(what), "error %u: %.*s", e->code, (int)e->text.len, e->text.ptr);
        fail(b, what);
        s->step = STEP_DONE;
        return;
    }
    const struct h248_action *a = reply->trans->actions;
    switch (s->step) {
    case STEP_ADD_CORE:
        s->context = a->context.id;
        snprintf(s->core_id, sizeof(s->core_id), "%.*s", (int)a->commands->terminations->text.len,
                 a->commands->terminations->text.ptr);
        break;
    case STEP_ADD_ACCESS: {
        /* The ALG needs the gateway's certificate fingerprint: it must be in the Local. */
        const struct h248_descriptor *d = a->commands->descriptors;
        const struct h248_stream_parms *sp =
            d != NULL && d->kind == H248_DESC_MEDIA && d->u.media.streams != NULL
                ? &d->u.media.streams->parms
                : NULL;
        if (sp == NULL || !sp->has_local ||
            memmem(sp->local.ptr, sp->local.len, "a=fingerprint:sha-256 ", 22) == NULL) {
            fail(b, "Add reply without the gateway's fingerprint");
            s->step = STEP_DONE;
            return;
        }
        break;
    }
    case STEP_MODIFY_CORE:
        break;
    case STEP_SUBTRACT:
        b->completed++;
        s->step = STEP_DONE;
        return;
    case STEP_DONE:
        return;
    }
    s->step++;
    if (send_step(b, index) < 0) {
        fail(b, "cannot send a request");
        s->step = STEP_DONE;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t percentile(const uint64_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

pid_t bench_spawn_gateway(const char *bin, const char *iq, const char *mgc, const char *workers,
                          const char *max_contexts)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl(bin, bin, "--iq-listen", iq, "--mgc", mgc, "--workers", workers, "--log-level",
              "warn", "--max-contexts", max_contexts, (char *)NULL);
        perror(bin);
        _exit(127);
    }
    return pid;
}

static void usage(FILE *f)
{
    fputs("usage: agw-bench setup [options]   (agw-bench bulk -h: relay throughput,\n"
          "                                    agw-bench dc -h: data-channel throughput,\n"
          "                                    agw-bench rr -h: round-trip latency,\n"
          "                                    agw-bench handshake -h: sessions per second,\n"
          "                                    agw-bench idle -h: memory per idle session)\n"
          "  Iq session set-ups per second: Add core + Add access (fingerprint requested)\n"
          "  + Modify core + Subtract *, pipelined; reply latency percentiles.\n"
          "  --sessions N        sessions to set up and release (default 100000)\n"
          "  --window N          sessions in flight at once (default 64)\n"
          "  --gateway ADDR:PORT drive a running gateway (it must have --mgc at --listen)\n"
          "  --listen ADDR:PORT  our MGC address (default 127.0.0.1:2947)\n"
          "  --spawn BIN         start BIN as the gateway (default build/ims-agw when no\n"
          "                      --gateway is given), with --workers N (default 1)\n"
          "  --workers N         the spawned gateway's worker loops\n"
          "  --json              one JSON line instead of the table\n",
          f);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "bulk") == 0)
        return bench_bulk_main(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "dc") == 0)
        return bench_dc_main(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "rr") == 0)
        return bench_rr_main(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "handshake") == 0)
        return bench_hs_main(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "idle") == 0)
        return bench_idle_main(argc, argv);
    if (argc < 2 || strcmp(argv[1], "setup") != 0) {
        usage(argc > 1 && strcmp(argv[1], "-h") == 0 ? stdout : stderr);
        return argc > 1 && strcmp(argv[1], "-h") == 0 ? 0 : 2;
    }
    static const struct option options[] = {
        {"sessions", required_argument, NULL, 'n'},
        {"window", required_argument, NULL, 'w'},
        {"gateway", required_argument, NULL, 'g'},
        {"listen", required_argument, NULL, 'l'},
        {"spawn", required_argument, NULL, 's'},
        {"workers", required_argument, NULL, 'W'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    unsigned sessions = 100000, window = 64;
    const char *gateway = NULL, *listen = "127.0.0.1:2947", *spawn = NULL, *workers = "1";
    bool json = false;
    int opt;
    optind = 2;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'n':
            sessions = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'w':
            window = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'g':
            gateway = optarg;
            break;
        case 'l':
            listen = optarg;
            break;
        case 's':
            spawn = optarg;
            break;
        case 'W':
            workers = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (sessions == 0 || window == 0 || window > 4096) {
        fprintf(stderr, "agw-bench: --sessions > 0 and --window 1..4096\n");
        return 2;
    }
    pid_t child = -1;
    char iq[32] = "";
    if (gateway == NULL) {
        snprintf(iq, sizeof(iq), "127.0.0.1:%u", 45000 + (unsigned)getpid() % 5000);
        char max_contexts[16];
        snprintf(max_contexts, sizeof(max_contexts), "%u", window * 2 + 16);
        child = bench_spawn_gateway(spawn != NULL ? spawn : "build/ims-agw", iq, listen, workers,
                                    max_contexts);
        gateway = iq;
    }
    static struct bench b;
    struct iq_client_options copts = {.max_outstanding = 8192, .retransmit_ms = 1000};
    int rc = iq_client_open(listen, gateway, NULL, &copts, &b.client);
    if (rc < 0) {
        fprintf(stderr, "agw-bench: cannot open %s: %s\n", listen, strerror(-rc));
        return 1;
    }
    if (child > 0 && iq_client_wait_registration(b.client, 10000, NULL, NULL, NULL) < 0) {
        fprintf(stderr, "agw-bench: the gateway did not register\n");
        kill(child, SIGKILL);
        return 1;
    }
    b.sessions = calloc(sessions, sizeof(*b.sessions));
    b.total = sessions;
    uint64_t start = now_us(), last_progress = start;
    unsigned next = 0;
    while (b.completed + b.failures < sessions) {
        while (next < sessions && next - (b.completed + b.failures) < window) {
            if (send_step(&b, next) < 0) {
                fail(&b, "cannot send a request");
                b.sessions[next].step = STEP_DONE;
            }
            next++;
        }
        for (unsigned i = 0; b.blocked > 0 && i < next; i++) {
            if (!b.sessions[i].blocked)
                continue;
            b.sessions[i].blocked = false;
            b.blocked--;
            if (send_step(&b, i) < 0) {
                fail(&b, "cannot send a request");
                b.sessions[i].step = STEP_DONE;
            }
            if (b.sessions[i].blocked)
                break;
        }
        rc = iq_client_poll_replies(b.client, 1000, on_reply, &b);
        if (rc < 0 && rc != -ETIMEDOUT) {
            fprintf(stderr, "agw-bench: %s\n", strerror(-rc));
            break;
        }
        uint64_t t = now_us();
        if (!json && t - last_progress > 2000000) {
            fprintf(stderr, "  ... %u/%u sessions\n", b.completed, sessions);
            last_progress = t;
        }
    }
    double seconds = (double)(now_us() - start) / 1e6;
    qsort(b.latency_us, b.n_latency, sizeof(uint64_t), cmp_u64);
    uint64_t p50 = percentile(b.latency_us, b.n_latency, 0.50);
    uint64_t p99 = percentile(b.latency_us, b.n_latency, 0.99);
    uint64_t p999 = percentile(b.latency_us, b.n_latency, 0.999);
    double rate = b.completed / seconds;
    if (json)
        printf("{\"mode\":\"setup\",\"sessions\":%u,\"completed\":%u,\"failures\":%u,"
               "\"window\":%u,\"workers\":\"%s\",\"seconds\":%.3f,\"setups_per_s\":%.0f,"
               "\"transactions_per_s\":%.0f,\"latency_us\":{\"p50\":%llu,\"p99\":%llu,"
               "\"p999\":%llu}}\n",
               sessions, b.completed, b.failures, window, workers, seconds, rate, rate * 4,
               (unsigned long long)p50, (unsigned long long)p99, (unsigned long long)p999);
    else
        printf("setup: %u sessions (4 transactions each), window %u, workers %s\n"
               "  %.0f set-ups/s, %.0f transactions/s in %.2f s\n"
               "  reply latency: p50 %llu us, p99 %llu us, p99.9 %llu us\n"
               "  failures: %u%s%s\n",
               b.completed, window, workers, rate, rate * 4, seconds, (unsigned long long)p50,
               (unsigned long long)p99, (unsigned long long)p999, b.failures,
               b.failures ? ", first: " : "", b.first_error);
    iq_client_close(b.client);
    if (child > 0) {
        kill(child, SIGTERM);
        waitpid(child, NULL, 0);
    }
    free(b.sessions);
    free(b.latency_us);
    return b.failures == 0 ? 0 : 1;
}
