/* agw-bench bulk: bytes through e2ae sessions (UE over TLS -> gateway -> plain core sink),
 * every byte checked at the sink; MB/s of plaintext per run. */
#define _GNU_SOURCE
#include "tools/bench_bulk.h"
#include "tls/cert.h"
#include "tls/fingerprint.h"
#include "tools/iq_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BLOCK (64 * 1024)

static unsigned char block[BLOCK]; /* the repeating payload, random */

struct flow {
    uint64_t bytes;
    uint16_t gateway_port;
    int core_listen;
    SSL_CTX *ctx;
    /* results */
    uint64_t received;
    bool corrupt;
    uint64_t first_us, last_us;
    int sender_rc;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
}

static int accept_any(int ok, X509_STORE_CTX *x)
{
    (void)ok;
    (void)x;
    return 1;
}

static void *ue_send(void *arg)
{
    struct flow *f = arg;
    f->sender_rc = -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(f->gateway_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return NULL;
    }
    SSL *ssl = SSL_new(f->ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) == 1) {
        uint64_t sent = 0;
        while (sent < f->bytes) {
            size_t off = (size_t)(sent % BLOCK);
            size_t n = BLOCK - off;
            if (n > f->bytes - sent)
                n = (size_t)(f->bytes - sent);
            int w = SSL_write(ssl, block + off, (int)n);
            if (w <= 0)
                break;
            sent += (uint64_t)w;
        }
        if (sent == f->bytes) {
            f->sender_rc = 0;
            SSL_shutdown(ssl);
        }
    }
    SSL_free(ssl);
    close(fd);
    return NULL;
}

static void *core_sink(void *arg)
{
    struct flow *f = arg;
    struct pollfd pfd = {.fd = f->core_listen, .events = POLLIN};
    if (poll(&pfd, 1, 10000) != 1)
        return NULL;
    int fd = accept(f->core_listen, NULL, NULL);
    static __thread unsigned char buf[BLOCK];
    while (f->received < f->bytes) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        if (f->first_us == 0)
            f->first_us = now_us();
        /* Every byte against the payload at its offset. */
        size_t done = 0;
        while (done < (size_t)n) {
            size_t off = (size_t)((f->received + done) % BLOCK);
            size_t k = BLOCK - off < (size_t)n - done ? BLOCK - off : (size_t)n - done;
            if (memcmp(buf + done, block + off, k) != 0)
                f->corrupt = true;
            done += k;
        }
        f->received += (uint64_t)n;
    }
    f->last_us = now_us();
    close(fd);
    return NULL;
}

static int listen_any(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static int request(struct iq_client *c, const char *text, char *out, size_t cap)
{
    struct iq_reply reply;
    struct h248_parse_error err;
    int rc = iq_client_request_text(c, text, strlen(text), 5000, &reply, &err);
    if (rc < 0 || reply.status != 0)
        return rc < 0 ? rc : reply.status;
    size_t len = 0;
    h248_encode_message(reply.msg, H248_STYLE_COMPACT, out, cap - 1, &len);
    out[len] = '\0';
    rc = iq_reply_error(&reply) != NULL ? -EPROTO : 0;
    iq_reply_release(&reply);
    return rc;
}

static void bulk_usage(FILE *f)
{
    fputs("usage: agw-bench bulk [options]\n"
          "  bytes through e2ae sessions: UE (TLS client) -> gateway -> core sink (plain),\n"
          "  every byte compared at the sink; plaintext MB/s.\n"
          "  --bytes N[K|M|G]    bytes per session (default 1G)\n"
          "  --sessions N        sessions in parallel (default 1)\n"
          "  --cipher NAME       TLS 1.3 ciphersuite (default TLS_AES_128_GCM_SHA256)\n"
          "  --listen, --workers, --spawn, --json as for setup\n",
          f);
}

static uint64_t parse_size(const char *s)
{
    char *end;
    uint64_t v = strtoull(s, &end, 10);
    switch (*end) {
    case 'k':
    case 'K':
        return v << 10;
    case 'm':
    case 'M':
        return v << 20;
    case 'g':
    case 'G':
        return v << 30;
    default:
        return v;
    }
}

int bench_bulk_main(int argc, char **argv)
{
    static const struct option options[] = {
        {"bytes", required_argument, NULL, 'b'},
        {"sessions", required_argument, NULL, 'n'},
        {"cipher", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"workers", required_argument, NULL, 'W'},
        {"spawn", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t bytes = 1ull << 30;
    unsigned sessions = 1;
    const char *cipher = "TLS_AES_128_GCM_SHA256", *listen = "127.0.0.1:2947", *workers = "1",
               *spawn = "build/ims-agw";
    bool json = false;
    int opt;
    optind = 2;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'b':
            bytes = parse_size(optarg);
            break;
        case 'n':
            sessions = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'c':
            cipher = optarg;
            break;
        case 'l':
            listen = optarg;
            break;
        case 'W':
            workers = optarg;
            break;
        case 's':
            spawn = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            bulk_usage(stdout);
            return 0;
        default:
            bulk_usage(stderr);
            return 2;
        }
    }
    if (sessions == 0 || sessions > 256 || bytes == 0) {
        fprintf(stderr, "agw-bench: --sessions 1..256 and --bytes > 0\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    FILE *r = fopen("/dev/urandom", "rb");
    if (r == NULL || fread(block, 1, sizeof(block), r) != sizeof(block)) {
        fprintf(stderr, "agw-bench: no /dev/urandom\n");
        return 1;
    }
    fclose(r);
    char iq[32];
    snprintf(iq, sizeof(iq), "127.0.0.1:%u", 45000 + (unsigned)getpid() % 5000);
    pid_t child = bench_spawn_gateway(spawn, iq, listen, workers, "1024");
    struct iq_client *c;
    if (iq_client_open(listen, iq, NULL, NULL, &c) < 0 ||
        iq_client_wait_registration(c, 10000, NULL, NULL, NULL) < 0) {
        fprintf(stderr, "agw-bench: the gateway did not register\n");
        kill(child, SIGKILL);
        return 1;
    }
    struct agw_tls_identity *ue;
    char fp[AGW_TLS_FINGERPRINT_TEXT_MAX];
    agw_tls_identity_generate("agw-bench-ue", 1, &ue);
    agw_tls_fingerprint_format(agw_tls_identity_fingerprint(ue), fp, sizeof(fp));
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_use_certificate(ctx, agw_tls_identity_cert(ue));
    SSL_CTX_use_PrivateKey(ctx, agw_tls_identity_key(ue));
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any);
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_ciphersuites(ctx, cipher);
    struct flow *flows = calloc(sessions, sizeof(*flows));
    char text[2048], out[8192];
    for (unsigned i = 0; i < sessions; i++) {
        struct flow *f = &flows[i];
        uint16_t core_port = 0;
        f->bytes = bytes;
        f->ctx = ctx;
        f->core_listen = listen_any(&core_port);
        if (f->core_listen < 0) {
            fprintf(stderr, "agw-bench: cannot listen for the core sink\n");
            return 1;
        }
        snprintf(text, sizeof(text),
                 "C=${A=${M{ST=1{O{ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=message $ TCP/MSRP "
                 "*\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message %u TCP/MSRP *\r\n"
                 "a=setup:passive\r\n}}}}}",
                 core_port);
        if (request(c, text, out, sizeof(out)) < 0) {
            fprintf(stderr, "agw-bench: Add core failed: %s\n", out);
            return 1;
        }
        unsigned ctx_id = (unsigned)strtoul(strstr(out, "C=") + 2, NULL, 10);
        snprintf(text, sizeof(text),
                 "C=%u{A=${M{ST=1{O{ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=message $ "
                 "TCP/TLS/MSRP *\r\na=fingerprint:$\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\n"
                 "m=message 9 TCP/TLS/MSRP *\r\na=setup:active\r\na=fingerprint:%s\r\n}}}}}",
                 ctx_id, fp);
        if (request(c, text, out, sizeof(out)) < 0) {
            fprintf(stderr, "agw-bench: Add access failed: %s\n", out);
            return 1;
        }
        f->gateway_port = (uint16_t)strtoul(strstr(out, "m=message ") + 10, NULL, 10);
    }
    pthread_t *th = calloc(2 * sessions, sizeof(*th));
    uint64_t start = now_us();
    for (unsigned i = 0; i < sessions; i++) {
        pthread_create(&th[2 * i], NULL, core_sink, &flows[i]);
        pthread_create(&th[2 * i + 1], NULL, ue_send, &flows[i]);
    }
    for (unsigned i = 0; i < 2 * sessions; i++)
        pthread_join(th[i], NULL);
    uint64_t end = now_us();
    uint64_t total = 0;
    unsigned bad = 0;
    for (unsigned i = 0; i < sessions; i++) {
        total += flows[i].received;
        if (flows[i].corrupt || flows[i].received != bytes || flows[i].sender_rc != 0)
            bad++;
    }
    double seconds = (double)(end - start) / 1e6;
    double mbps = (double)total / seconds / 1e6;
    if (json)
        printf("{\"mode\":\"bulk\",\"sessions\":%u,\"bytes_per_session\":%llu,\"cipher\":\"%s\","
               "\"workers\":\"%s\",\"seconds\":%.3f,\"MB_per_s\":%.1f,\"failed_sessions\":%u}\n",
               sessions, (unsigned long long)bytes, cipher, workers, seconds, mbps, bad);
    else
        printf("bulk: %u session(s) x %llu bytes, UE -> core through TLS (%s), workers %s\n"
               "  %.1f MB/s (%.1f MiB/s) in %.2f s, connection set-up included\n"
               "  verified at the sink: %s\n",
               sessions, (unsigned long long)bytes, cipher, workers, mbps,
               (double)total / seconds / 1048576.0, seconds,
               bad ? "FAILED (lost or corrupt bytes)" : "every byte");
    iq_client_close(c);
    kill(child, SIGTERM);
    waitpid(child, NULL, 0);
    SSL_CTX_free(ctx);
    agw_tls_identity_unref(ue);
    free(flows);
    free(th);
    return bad ? 1 : 0;
}
