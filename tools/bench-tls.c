/* Micro-benchmark of tls/session.c: bulk throughput (memory, engine over a socketpair, and bare
   OpenSSL with SSL_set_fd for comparison), full handshakes per second, idle memory per session.
   Usage: bench-tls [-m MiB] [-r runs] [throughput|handshakes|memory|all] (default all, 1024 MiB,
   best of 3 runs: the machine may be shared). */
#include "tls/cert.h"
#include "tls/fingerprint.h"
#include "tls/session.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define CHUNK (64 * 1024)
#define IDLE_PAIRS 1000

static struct agw_tls_identity *srv_id, *cli_id;
static int runs = 3;
static unsigned char plain_out[CHUNK], plain_in[CHUNK], wire[4 * CHUNK];

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench-tls: %s: %d\n", what, rc);
    exit(1);
}

static struct agw_tls_ctx *make_ctx(const char *suites, const char *groups, unsigned max)
{
    struct agw_tls_ctx_config cfg = {.ciphersuites = suites, .groups = groups, .max_version = max};
    struct agw_tls_ctx *ctx;
    char err[256];
    int rc = agw_tls_ctx_new(&cfg, &ctx, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "bench-tls: %s\n", err);
        exit(1);
    }
    return ctx;
}

/* Moves all of from's output into to; returns the bytes moved. */
static size_t move(struct agw_tls_session *from, struct agw_tls_session *to)
{
    size_t moved = 0;
    while (agw_tls_session_output_size(from) > 0) {
        const void *data;
        size_t len, used;
        agw_tls_session_pending_output(from, &data, &len);
        int rc = agw_tls_session_feed(to, data, len, &used);
        if (rc == -EAGAIN)
            break;
        if (rc < 0)
            die("feed", rc);
        agw_tls_session_consume_output(from, used);
        moved += used;
    }
    return moved;
}

static void handshake(struct agw_tls_session *cli, struct agw_tls_session *srv)
{
    for (int i = 0; i < 100; i++) {
        agw_tls_session_handshake(cli);
        agw_tls_session_handshake(srv);
        if (move(cli, srv) + move(srv, cli) == 0)
            break;
    }
    if (agw_tls_session_state(cli) != AGW_TLS_VERIFIED ||
        agw_tls_session_state(srv) != AGW_TLS_VERIFIED)
        die("handshake", agw_tls_session_handshake(srv));
}

static void pair_new(struct agw_tls_ctx *ctx, struct agw_tls_session **cli,
                     struct agw_tls_session **srv)
{
    if (agw_tls_session_new(ctx, cli_id, AGW_TLS_CLIENT, cli) < 0 ||
        agw_tls_session_new(ctx, srv_id, AGW_TLS_SERVER, srv) < 0)
        die("session_new", 0);
    agw_tls_session_set_fingerprints(*cli, agw_tls_identity_fingerprint(srv_id), 1);
    agw_tls_session_set_fingerprints(*srv, agw_tls_identity_fingerprint(cli_id), 1);
}

static void report(const char *mode, const char *cipher, size_t total, double secs)
{
    printf("%-18s %-30s %6zu MiB %6.2f s %8.1f MB/s\n", mode, cipher, total >> 20, secs,
           (double)total / secs / 1e6);
}

/* Drains the server's plaintext into plain_in; returns the bytes read. */
static size_t drain(struct agw_tls_session *srv)
{
    size_t total = 0, got;
    while (agw_tls_session_read(srv, plain_in, sizeof(plain_in), &got) == 0 && got > 0)
        total += got;
    return total;
}

/* Client to server through memory only: the engine's own cost. */
static double bulk_memory(const char *suite, size_t total)
{
    struct agw_tls_ctx *ctx = make_ctx(suite, NULL, 0);
    struct agw_tls_session *cli, *srv;
    pair_new(ctx, &cli, &srv);
    handshake(cli, srv);
    size_t sent = 0, received = 0;
    double t0 = now();
    while (received < total) {
        size_t taken;
        if (sent < total &&
            agw_tls_session_write(cli, plain_out, CHUNK < total - sent ? CHUNK : total - sent,
                                  &taken) == 0)
            sent += taken;
        move(cli, srv);
        received += drain(srv);
    }
    double secs = now() - t0;
    agw_tls_session_free(cli);
    agw_tls_session_free(srv);
    agw_tls_ctx_unref(ctx);
    return secs;
}

static void socketpair_nonblocking(int fds[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0)
        die("socketpair", -errno);
    for (int i = 0; i < 2; i++)
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
}

/* The engine with real socket I/O: what the relay will do (write(2) of pending_output, read(2)
   into a buffer then feed). */
static double bulk_engine_socket(const char *suite, size_t total, bool zero_copy)
{
    struct agw_tls_ctx *ctx = make_ctx(suite, NULL, 0);
    struct agw_tls_session *cli, *srv;
    pair_new(ctx, &cli, &srv);
    handshake(cli, srv);
    int fds[2];
    socketpair_nonblocking(fds);
    size_t sent = 0, received = 0, wire_len = 0, wire_off = 0;
    double t0 = now();
    while (received < total) {
        size_t taken;
        if (sent < total &&
            agw_tls_session_write(cli, plain_out, CHUNK < total - sent ? CHUNK : total - sent,
                                  &taken) == 0)
            sent += taken;
        while (agw_tls_session_output_size(cli) > 0) {
            const void *data;
            size_t len;
            agw_tls_session_pending_output(cli, &data, &len);
            ssize_t n = write(fds[0], data, len);
            if (n <= 0)
                break;
            agw_tls_session_consume_output(cli, (size_t)n);
        }
        for (;;) {
            if (zero_copy) {
                void *space;
                size_t cap;
                if (agw_tls_session_input_space(srv, &space, &cap) < 0)
                    break;
                ssize_t n = read(fds[1], space, cap);
                agw_tls_session_input_commit(srv, n > 0 ? (size_t)n : 0);
                if (n <= 0)
                    break;
            } else {
                if (wire_off == wire_len) {
                    ssize_t n = read(fds[1], wire, sizeof(wire));
                    if (n <= 0)
                        break;
                    wire_off = 0;
                    wire_len = (size_t)n;
                }
                size_t used;
                if (agw_tls_session_feed(srv, wire + wire_off, wire_len - wire_off, &used) < 0)
                    break;
                wire_off += used;
            }
            received += drain(srv);
        }
        received += drain(srv);
    }
    double secs = now() - t0;
    close(fds[0]);
    close(fds[1]);
    agw_tls_session_free(cli);
    agw_tls_session_free(srv);
    agw_tls_ctx_unref(ctx);
    return secs;
}

static SSL_CTX *bare_ctx(const char *suite, struct agw_tls_identity *id, bool read_ahead)
{
    SSL_CTX *c = SSL_CTX_new(TLS_method());
    SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
    SSL_CTX_set_ciphersuites(c, suite);
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_num_tickets(c, 0);
    SSL_CTX_set_read_ahead(c, read_ahead);
    SSL_CTX_use_certificate(c, agw_tls_identity_cert(id));
    SSL_CTX_use_PrivateKey(c, agw_tls_identity_key(id));
    return c;
}

/* Bare OpenSSL reading and writing the sockets itself (SSL_set_fd), for comparison. */
static double bulk_set_fd(const char *suite, size_t total, bool read_ahead)
{
    SSL_CTX *cc = bare_ctx(suite, cli_id, read_ahead), *sc = bare_ctx(suite, srv_id, read_ahead);
    SSL *cli = SSL_new(cc), *srv = SSL_new(sc);
    int fds[2];
    socketpair_nonblocking(fds);
    SSL_set_fd(cli, fds[0]);
    SSL_set_fd(srv, fds[1]);
    SSL_set_connect_state(cli);
    SSL_set_accept_state(srv);
    for (int i = 0; i < 100 && !(SSL_is_init_finished(cli) && SSL_is_init_finished(srv)); i++) {
        SSL_do_handshake(cli);
        SSL_do_handshake(srv);
    }
    if (!SSL_is_init_finished(cli) || !SSL_is_init_finished(srv))
        die("bare handshake", 0);
    size_t sent = 0, received = 0;
    double t0 = now();
    while (received < total) {
        size_t n;
        while (sent < total &&
               SSL_write_ex(cli, plain_out, CHUNK < total - sent ? CHUNK : total - sent, &n) == 1)
            sent += n;
        while (SSL_read_ex(srv, plain_in, sizeof(plain_in), &n) == 1)
            received += n;
    }
    double secs = now() - t0;
    SSL_free(cli);
    SSL_free(srv);
    SSL_CTX_free(cc);
    SSL_CTX_free(sc);
    close(fds[0]);
    close(fds[1]);
    ERR_clear_error();
    return secs;
}

enum bulk_mode { MEMORY, ENGINE_FEED, ENGINE_INPUT_SPACE, SET_FD, SET_FD_READ_AHEAD };

static double bulk(enum bulk_mode mode, const char *suite, size_t total)
{
    switch (mode) {
    case MEMORY:
        return bulk_memory(suite, total);
    case ENGINE_FEED:
        return bulk_engine_socket(suite, total, false);
    case ENGINE_INPUT_SPACE:
        return bulk_engine_socket(suite, total, true);
    case SET_FD:
        return bulk_set_fd(suite, total, false);
    default:
        return bulk_set_fd(suite, total, true);
    }
}

static void throughput(size_t total)
{
    static const char *const suites[] = {"TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"};
    static const char *const names[] = {"engine memory", "engine+sock feed", "engine+sock 0copy",
                                        "SSL_set_fd", "SSL_set_fd+rahead"};
    printf("# bulk client->server, TLS 1.3, %d KiB writes, encrypt and decrypt in one thread, "
           "best of %d\n",
           CHUNK / 1024, runs);
    for (size_t i = 0; i < 2; i++) {
        for (int mode = MEMORY; mode <= SET_FD_READ_AHEAD; mode++) {
            double best = 0;
            for (int r = 0; r < runs; r++) {
                double secs = bulk((enum bulk_mode)mode, suites[i], total);
                if (r == 0 || secs < best)
                    best = secs;
            }
            report(names[mode], suites[i], total, best);
        }
    }
}

/* Full handshakes, both ends in this thread: ECDHE on P-256, ECDSA P-256 certificates on both
   sides (the UE's too), fingerprint check on both sides. */
static void handshakes(void)
{
    printf("# full handshakes, client+server in one thread, P-256 ECDHE, ECDSA P-256 both "
           "sides\n");
    for (int v = 0; v < 2; v++) {
        unsigned max = v == 0 ? AGW_TLS_VERSION_1_2 : AGW_TLS_VERSION_1_3;
        struct agw_tls_ctx *ctx = make_ctx(NULL, "P-256", max);
        int n = 0;
        double t0 = now(), t;
        do {
            struct agw_tls_session *cli, *srv;
            pair_new(ctx, &cli, &srv);
            handshake(cli, srv);
            agw_tls_session_free(cli);
            agw_tls_session_free(srv);
            n++;
            t = now() - t0;
        } while (t < 3.0);
        printf("handshakes       %-30s %6d      %6.2f s %8.1f /s\n",
               v == 0 ? "TLSv1.2 ECDHE-ECDSA-AES128-GCM" : "TLSv1.3 TLS_AES_128_GCM", n, t, n / t);
        agw_tls_ctx_unref(ctx);
    }
}

static size_t heap_used(void)
{
    return mallinfo2().uordblks;
}

/* Heap held per session: fresh, then established and idle (nothing buffered). */
static void memory(void)
{
    static struct agw_tls_session *cli[IDLE_PAIRS], *srv[IDLE_PAIRS];
    struct agw_tls_ctx *ctx = make_ctx(NULL, NULL, 0);
    struct agw_tls_session *a, *b;
    pair_new(ctx, &a, &b); /* OpenSSL's lazily loaded tables, out of the measurement */
    handshake(a, b);
    agw_tls_session_free(a);
    agw_tls_session_free(b);

    size_t m0 = heap_used();
    for (int i = 0; i < IDLE_PAIRS; i++)
        pair_new(ctx, &cli[i], &srv[i]);
    size_t m1 = heap_used();
    for (int i = 0; i < IDLE_PAIRS; i++) {
        handshake(cli[i], srv[i]);
        size_t taken;
        agw_tls_session_write(cli[i], "hello", 5, &taken); /* one record each way, read */
        agw_tls_session_write(srv[i], "hello", 5, &taken);
        move(cli[i], srv[i]);
        move(srv[i], cli[i]);
        drain(srv[i]);
        drain(cli[i]);
        if (agw_tls_session_output_size(cli[i]) + agw_tls_session_output_size(srv[i]) != 0)
            die("idle session with output", 0);
    }
    size_t m2 = heap_used();
    printf("# heap per session (mallinfo2, %d client+server pairs, TLS 1.3, one record each "
           "way)\n",
           IDLE_PAIRS);
    printf("memory           fresh (before handshake)   %8.0f B/session\n",
           (double)(m1 - m0) / (2 * IDLE_PAIRS));
    printf("memory           established and idle       %8.0f B/session\n",
           (double)(m2 - m0) / (2 * IDLE_PAIRS));
    for (int i = 0; i < IDLE_PAIRS; i++) {
        agw_tls_session_free(cli[i]);
        agw_tls_session_free(srv[i]);
    }
    agw_tls_ctx_unref(ctx);
}

int main(int argc, char **argv)
{
    size_t mib = 1024;
    int opt;
    while ((opt = getopt(argc, argv, "m:r:")) != -1) {
        if (opt == 'm') {
            mib = strtoul(optarg, NULL, 10);
        } else if (opt == 'r') {
            runs = atoi(optarg) > 0 ? atoi(optarg) : 1;
        } else {
            fprintf(stderr, "usage: bench-tls [-m MiB] [-r runs] "
                            "[throughput|handshakes|memory|all]\n");
            return 2;
        }
    }
    const char *what = optind < argc ? argv[optind] : "all";
    if (agw_tls_identity_generate("bench-gateway", 1, &srv_id) < 0 ||
        agw_tls_identity_generate("bench-ue", 1, &cli_id) < 0)
        die("identity", 0);
    memset(plain_out, 0x5a, sizeof(plain_out));
    bool all = strcmp(what, "all") == 0;
    if (all || strcmp(what, "memory") == 0)
        memory();
    if (all || strcmp(what, "handshakes") == 0)
        handshakes();
    if (all || strcmp(what, "throughput") == 0)
        throughput(mib << 20);
    agw_tls_identity_unref(srv_id);
    agw_tls_identity_unref(cli_id);
    return 0;
}
