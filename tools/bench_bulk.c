/* agw-bench bulk: bytes from TLS UEs through a relay (ims-agw in e2ae sessions, any TLS
 * terminator at --target, or a plain splice relay) into a plain sink that checks every byte. */
#define _GNU_SOURCE /* accept4, SOCK_CLOEXEC */
#include "tools/bench_bulk.h"
#include "tls/cert.h"
#include "tls/fingerprint.h"
#include "tools/bench_ref.h"
#include "tools/iq_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BLOCK (64 * 1024)
#define SINK_READ (256 * 1024)
#define MAX_SESSIONS 256
/* A socket idle this long fails its flow, so that a broken relay cannot hang a run. */
#define STALL_S 30
/* After the last UE finished, how long a sink still waits for a connection that never came. */
#define ACCEPT_GRACE_US 3000000u

/* Each flow starts with "AGWB" and its index (big endian): the sink, which accepts every flow on
 * one port, learns from it which flow a connection carries. The payload follows. */
#define HEADER_LEN 8
static const unsigned char header_magic[4] = {'A', 'G', 'W', 'B'};

static unsigned char block[BLOCK]; /* the repeating payload, random */

struct run;

struct flow {
    struct run *run;
    unsigned index;
    struct sockaddr_storage to; /* where the UE connects */
    socklen_t to_len;
    /* results */
    int ue_rc;
    char tls[96];        /* what the handshake settled: version, suite, group, server key */
    atomic_bool claimed; /* a sink connection carried this flow's header */
    uint64_t received;
    bool corrupt, eof;
    uint64_t done_us; /* when the last payload byte reached the sink */
};

struct run {
    uint64_t bytes; /* payload per flow */
    SSL_CTX *ctx;   /* NULL: the UEs speak plain TCP */
    int sink_fd;
    unsigned sessions;
    struct flow *flows;
    atomic_bool ues_done;
    atomic_uint_least64_t ues_done_us;
    atomic_uint bad_headers;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
}

/* Flows start at different offsets of the payload: bytes of one flow delivered on another
 * connection fail the check. */
static size_t flow_shift(unsigned index)
{
    return (size_t)index * 4099u % BLOCK;
}

static void set_stall_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = STALL_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int accept_any(int ok, X509_STORE_CTX *x)
{
    (void)ok;
    (void)x;
    return 1;
}

/* "TLSv1.3 TLS_AES_128_GCM_SHA256 prime256v1 EC-256 cert 1a2b3c4d" (the start of the server
 * certificate's SHA-256): shows that every relay got the same terms and the same certificate. */
static void describe_tls(SSL *ssl, char *out, size_t cap)
{
    int group = SSL_get_negotiated_group(ssl);
    const char *group_name = group > 0 ? OBJ_nid2sn(group) : NULL;
    X509 *peer = SSL_get1_peer_certificate(ssl);
    EVP_PKEY *key = peer != NULL ? X509_get0_pubkey(peer) : NULL;
    const char *key_type = key != NULL ? EVP_PKEY_get0_type_name(key) : NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    if (peer == NULL || X509_digest(peer, EVP_sha256(), md, &md_len) != 1 || md_len < 4)
        memset(md, 0, 4);
    snprintf(out, cap, "%s %s %s %s-%d cert %02x%02x%02x%02x", SSL_get_version(ssl),
             SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)),
             group_name != NULL ? group_name : "?", key_type != NULL ? key_type : "?",
             key != NULL ? EVP_PKEY_get_bits(key) : 0, md[0], md[1], md[2], md[3]);
    X509_free(peer);
}

static int ue_write(int fd, SSL *ssl, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = ssl != NULL ? SSL_write(ssl, p, (int)n) : write(fd, p, n);
        if (w <= 0) {
            if (ssl == NULL && w < 0 && errno == EINTR)
                continue;
            return -EIO;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The UE: connects, speaks TLS unless plain, sends the header and the payload, closes. */
static void *ue_thread(void *arg)
{
    struct flow *f = arg;
    struct run *r = f->run;
    SSL *ssl = NULL;
    f->ue_rc = -ECONNREFUSED;
    int fd = socket(f->to.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    set_stall_timeouts(fd);
    if (connect(fd, (struct sockaddr *)&f->to, f->to_len) < 0)
        goto out;
    f->ue_rc = -EPROTO;
    if (r->ctx != NULL) {
        ssl = SSL_new(r->ctx);
        if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1)
            goto out;
        describe_tls(ssl, f->tls, sizeof(f->tls));
    }
    f->ue_rc = -EIO;
    unsigned char header[HEADER_LEN];
    memcpy(header, header_magic, 4);
    uint32_t be = htonl(f->index);
    memcpy(header + 4, &be, 4);
    if (ue_write(fd, ssl, header, sizeof(header)) < 0)
        goto out;
    size_t shift = flow_shift(f->index);
    for (uint64_t sent = 0; sent < r->bytes;) {
        size_t off = (size_t)((shift + sent) % BLOCK);
        size_t n = BLOCK - off;
        if (n > r->bytes - sent)
            n = (size_t)(r->bytes - sent);
        if (ue_write(fd, ssl, block + off, n) < 0)
            goto out;
        sent += n;
    }
    if (ssl != NULL && SSL_shutdown(ssl) < 0)
        goto out;
    shutdown(fd, SHUT_WR);
    /* Closing with unread bytes (session tickets, the peer's close_notify) would send a reset,
     * which may cut the tail of the stream inside the relay: read until the relay closes. */
    char drain[4096];
    while (read(fd, drain, sizeof(drain)) > 0)
        ;
    f->ue_rc = 0;
out:
    SSL_free(ssl);
    close(fd);
    return NULL;
}

static int sink_accept(struct run *r)
{
    for (;;) {
        struct pollfd pfd = {.fd = r->sink_fd, .events = POLLIN};
        if (poll(&pfd, 1, 200) > 0) {
            int fd = accept4(r->sink_fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0)
                return fd;
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                return -errno;
            continue;
        }
        if (atomic_load(&r->ues_done) && now_us() - atomic_load(&r->ues_done_us) > ACCEPT_GRACE_US)
            return -ETIMEDOUT;
    }
}

static int read_full(int fd, unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = read(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -EIO;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* The core side: takes one connection, finds its flow by the header, checks every byte against
 * the payload at its offset, and that the stream ends (EOF) right after the last one. */
static void *sink_thread(void *arg)
{
    struct run *r = arg;
    int fd = sink_accept(r);
    if (fd < 0)
        return NULL;
    set_stall_timeouts(fd);
    unsigned char header[HEADER_LEN];
    struct flow *f = NULL;
    if (read_full(fd, header, sizeof(header)) == 0 && memcmp(header, header_magic, 4) == 0) {
        uint32_t be;
        memcpy(&be, header + 4, 4);
        uint32_t index = ntohl(be);
        if (index < r->sessions && !atomic_exchange(&r->flows[index].claimed, true))
            f = &r->flows[index];
    }
    unsigned char *buf = f != NULL ? malloc(SINK_READ) : NULL;
    if (buf == NULL) {
        atomic_fetch_add(&r->bad_headers, 1);
        close(fd);
        return NULL;
    }
    size_t shift = flow_shift(f->index);
    for (;;) {
        ssize_t n = read(fd, buf, SINK_READ);
        if (n == 0) {
            f->eof = true;
            break;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if ((uint64_t)n > r->bytes - f->received) {
            f->corrupt = true; /* more than was sent */
            break;
        }
        for (size_t done = 0; done < (size_t)n;) {
            size_t off = (size_t)((shift + f->received + done) % BLOCK);
            size_t k = BLOCK - off < (size_t)n - done ? BLOCK - off : (size_t)n - done;
            if (memcmp(buf + done, block + off, k) != 0)
                f->corrupt = true;
            done += k;
        }
        f->received += (uint64_t)n;
        if (f->received == r->bytes)
            f->done_us = now_us();
    }
    free(buf);
    close(fd);
    return NULL;
}

static int sink_listen(uint16_t port, unsigned backlog, uint16_t *port_out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, (int)backlog) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    *port_out = ntohs(a.sin_port);
    return fd;
}

/* CPU seconds (user + system, all threads) of a process so far; negative if unknown. */
static double proc_cpu_seconds(pid_t pid)
{
    char path[64], text[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    /* The command name may hold blanks and parentheses: fields are counted after the last ')'.
     * Field 3 (state) follows it; utime and stime are fields 14 and 15. */
    const char *p = strrchr(text, ')');
    if (p == NULL)
        return -1;
    unsigned long long utime, stime;
    if (sscanf(p + 1, " %*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", &utime, &stime) !=
        2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* Busy time of all CPUs of the host so far (all but idle and iowait; steal is time a hypervisor
 * gave to someone else); negative if unknown. Less our own and the relay's time, it tells how
 * much else ran during a run. Interrupt time stays in: processes are charged for the interrupt
 * work done in their syscalls (loopback TCP), which /proc/stat may list as softirq. */
static double host_busy_seconds(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return -1;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8)
        return -1;
    /* user nice system idle iowait irq softirq steal */
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return -1;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Starts the gateway with the TLS settings the other relays get; it dies with us. */
static pid_t spawn_gateway(const char *bin, const char *config, const char *iq, const char *mgc,
                           const char *workers, const char *cipher, const char *group)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    const char *argv[32];
    int n = 0;
    argv[n++] = bin;
    if (config != NULL) {
        argv[n++] = "-c";
        argv[n++] = config;
    }
    const char *rest[] = {"--iq-listen",
                          iq,
                          "--mgc",
                          mgc,
                          "--workers",
                          workers,
                          "--log-level",
                          "warn",
                          "--max-contexts",
                          "1024",
                          "--tls-min-version",
                          "1.3",
                          "--tls-ciphersuites",
                          cipher,
                          "--tls-groups",
                          group,
                          NULL};
    for (const char **p = rest; *p != NULL; p++)
        argv[n++] = *p;
    argv[n] = NULL;
    execv(bin, (char *const *)argv);
    perror(bin);
    _exit(127);
}

/* SIGTERM, answering the gateway's ServiceChange meanwhile; SIGKILL if it lingers. */
static void stop_gateway(pid_t child, struct iq_client *c)
{
    kill(child, SIGTERM);
    uint64_t deadline = now_us() + 5000000u;
    while (waitpid(child, NULL, WNOHANG) == 0) {
        if (now_us() > deadline) {
            kill(child, SIGKILL);
            waitpid(child, NULL, 0);
            return;
        }
        struct iq_event ev;
        if (c != NULL && iq_client_recv(c, 50, &ev) == 0)
            iq_event_release(&ev);
        else if (c == NULL)
            usleep(50000);
    }
}

static int request(struct iq_client *c, const char *text, char *out, size_t cap)
{
    struct iq_reply reply;
    struct h248_parse_error err;
    out[0] = '\0';
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

/* One e2ae session per flow: core leg toward the sink, access leg whose port the UE dials. */
static int gateway_sessions(struct iq_client *c, struct run *r, uint16_t sink_port, const char *fp)
{
    char text[2048], out[8192];
    for (unsigned i = 0; i < r->sessions; i++) {
        snprintf(text, sizeof(text),
                 "C=${A=${M{ST=1{O{ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=message $ TCP/MSRP "
                 "*\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message %u TCP/MSRP *\r\n"
                 "a=setup:passive\r\n}}}}}",
                 sink_port);
        const char *ctx_at = NULL;
        if (request(c, text, out, sizeof(out)) < 0 || (ctx_at = strstr(out, "C=")) == NULL) {
            fprintf(stderr, "agw-bench: Add core failed: %s\n", out);
            return -EPROTO;
        }
        unsigned ctx_id = (unsigned)strtoul(ctx_at + 2, NULL, 10);
        snprintf(text, sizeof(text),
                 "C=%u{A=${M{ST=1{O{ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=message $ "
                 "TCP/TLS/MSRP *\r\na=fingerprint:$\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\n"
                 "m=message 9 TCP/TLS/MSRP *\r\na=setup:active\r\na=fingerprint:%s\r\n}}}}}",
                 ctx_id, fp);
        const char *m_at = NULL;
        if (request(c, text, out, sizeof(out)) < 0 || (m_at = strstr(out, "m=message ")) == NULL) {
            fprintf(stderr, "agw-bench: Add access failed: %s\n", out);
            return -EPROTO;
        }
        struct sockaddr_in *a = (struct sockaddr_in *)&r->flows[i].to;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)strtoul(m_at + 10, NULL, 10));
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        r->flows[i].to_len = sizeof(*a);
    }
    return 0;
}

static void bulk_usage(FILE *f)
{
    fputs("usage: agw-bench bulk [options]\n"
          "  bytes from UEs (TLS 1.3 clients) through a relay into a plain sink on 127.0.0.1\n"
          "  that checks every byte; plaintext MB/s, connection set-up included. The relay is\n"
          "  a spawned ims-agw (e2ae sessions set up over Iq), or with --target any TLS\n"
          "  terminator forwarding to --sink-port, or with --plain a splice() relay (no TLS).\n"
          "  --bytes N[K|M|G]    bytes per session (default 1G)\n"
          "  --sessions N        parallel flows, one connection pair each (default 1, max 256)\n"
          "  --cipher NAME       TLS 1.3 ciphersuite (default TLS_AES_128_GCM_SHA256)\n"
          "  --group NAME        key exchange group offered (default P-256)\n"
          "  --target ADDR:PORT  UEs connect there instead of to a spawned gateway\n"
          "  --sink-port P       the sink's port (required with --target; default: any)\n"
          "  --plain             plain TCP UEs; without --target through our splice relay\n"
          "  --target-pid PID    report that process's CPU time as the relay's\n"
          "  --label NAME        the relay's name in the output\n"
          "  --config FILE       the spawned gateway reads FILE first (-c)\n"
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

/* Labels and names land in JSON strings unescaped: keep them to printable, quote-free text. */
static bool json_safe(const char *s)
{
    for (; *s != '\0'; s++)
        if (*s < 0x20 || *s == '"' || *s == '\\' || *s == 0x7f)
            return false;
    return true;
}

int bench_bulk_main(int argc, char **argv)
{
    static const struct option options[] = {
        {"bytes", required_argument, NULL, 'b'},  {"sessions", required_argument, NULL, 'n'},
        {"cipher", required_argument, NULL, 'c'}, {"group", required_argument, NULL, 'g'},
        {"target", required_argument, NULL, 't'}, {"sink-port", required_argument, NULL, 'P'},
        {"plain", no_argument, NULL, 'p'},        {"target-pid", required_argument, NULL, 'T'},
        {"label", required_argument, NULL, 'L'},  {"config", required_argument, NULL, 'C'},
        {"listen", required_argument, NULL, 'l'}, {"workers", required_argument, NULL, 'W'},
        {"spawn", required_argument, NULL, 's'},  {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    uint64_t bytes = 1ull << 30;
    unsigned sessions = 1;
    unsigned long sink_port_arg = 0;
    const char *cipher = "TLS_AES_128_GCM_SHA256", *group = "P-256", *listen = "127.0.0.1:2947",
               *workers = "1", *spawn = "build/ims-agw", *target = NULL, *label = NULL,
               *config = NULL;
    bool json = false, plain = false;
    pid_t target_pid = 0;
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
        case 'g':
            group = optarg;
            break;
        case 't':
            target = optarg;
            break;
        case 'P':
            sink_port_arg = strtoul(optarg, NULL, 10);
            break;
        case 'p':
            plain = true;
            break;
        case 'T':
            target_pid = (pid_t)strtol(optarg, NULL, 10);
            break;
        case 'L':
            label = optarg;
            break;
        case 'C':
            config = optarg;
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
    if (optind != argc || sessions == 0 || sessions > MAX_SESSIONS || bytes == 0 ||
        sink_port_arg > 65535 || (target != NULL && sink_port_arg == 0)) {
        fprintf(stderr,
                "agw-bench: --sessions 1..%d, --bytes > 0, --sink-port 1..65535 (required "
                "with --target)\n",
                MAX_SESSIONS);
        return 2;
    }
    bool gateway = target == NULL && !plain;
    if (label == NULL)
        label = gateway ? "ims-agw" : target != NULL ? target : "splice-relay";
    if (!json_safe(label) || !json_safe(cipher) || !json_safe(group) || !json_safe(workers)) {
        fprintf(stderr, "agw-bench: names must not hold quotes, backslashes or control bytes\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    FILE *rnd = fopen("/dev/urandom", "rb");
    if (rnd == NULL || fread(block, 1, sizeof(block), rnd) != sizeof(block)) {
        fprintf(stderr, "agw-bench: no /dev/urandom\n");
        if (rnd != NULL)
            fclose(rnd);
        return 1;
    }
    fclose(rnd);

    int status = 1;
    pid_t child = -1;
    struct iq_client *c = NULL;
    struct agw_tls_identity *ue = NULL;
    struct bench_ref_relay *relay = NULL;
    pthread_t *th = NULL;
    static struct run r;
    r.bytes = bytes;
    r.sessions = sessions;
    r.sink_fd = -1;
    r.flows = calloc(sessions, sizeof(*r.flows));
    if (r.flows == NULL)
        return 1;
    for (unsigned i = 0; i < sessions; i++) {
        r.flows[i].run = &r;
        r.flows[i].index = i;
    }
    uint16_t sink_port = 0;
    r.sink_fd = sink_listen((uint16_t)sink_port_arg, sessions + 16, &sink_port);
    if (r.sink_fd < 0) {
        fprintf(stderr, "agw-bench: cannot listen on 127.0.0.1:%lu for the sink: %s\n",
                sink_port_arg, strerror(-r.sink_fd));
        goto out;
    }

    char fp[AGW_TLS_FINGERPRINT_TEXT_MAX];
    if (!plain) {
        if (agw_tls_identity_generate("agw-bench-ue", 1, &ue) < 0 ||
            agw_tls_fingerprint_format(agw_tls_identity_fingerprint(ue), fp, sizeof(fp)) < 0) {
            fprintf(stderr, "agw-bench: cannot make the UE's certificate\n");
            goto out;
        }
        r.ctx = SSL_CTX_new(TLS_client_method());
        if (r.ctx == NULL || SSL_CTX_use_certificate(r.ctx, agw_tls_identity_cert(ue)) != 1 ||
            SSL_CTX_use_PrivateKey(r.ctx, agw_tls_identity_key(ue)) != 1 ||
            SSL_CTX_set_min_proto_version(r.ctx, TLS1_3_VERSION) != 1 ||
            SSL_CTX_set_ciphersuites(r.ctx, cipher) != 1 ||
            SSL_CTX_set1_groups_list(r.ctx, group) != 1) {
            fprintf(stderr, "agw-bench: TLS settings refused (cipher %s, group %s)\n", cipher,
                    group);
            goto out;
        }
        SSL_CTX_set_verify(r.ctx, SSL_VERIFY_PEER, accept_any);
    }

    pid_t cpu_pid = target_pid;
    if (target != NULL) {
        struct sockaddr_storage to;
        socklen_t to_len;
        if (iq_parse_addr(target, &to, &to_len) < 0) {
            fprintf(stderr, "agw-bench: --target wants ADDR:PORT, not %s\n", target);
            goto out;
        }
        for (unsigned i = 0; i < sessions; i++) {
            r.flows[i].to = to;
            r.flows[i].to_len = to_len;
        }
    } else if (plain) {
        struct sockaddr_in up = {.sin_family = AF_INET,
                                 .sin_port = htons(sink_port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        struct sockaddr_storage upstream = {0};
        memcpy(&upstream, &up, sizeof(up));
        uint16_t relay_port;
        int rc = bench_ref_relay_start(&upstream, sizeof(up), sessions, &relay_port, &relay);
        if (rc < 0) {
            fprintf(stderr, "agw-bench: cannot start the splice relay: %s\n", strerror(-rc));
            goto out;
        }
        struct sockaddr_in to = up;
        to.sin_port = htons(relay_port);
        for (unsigned i = 0; i < sessions; i++) {
            memcpy(&r.flows[i].to, &to, sizeof(to));
            r.flows[i].to_len = sizeof(to);
        }
    } else {
        char iq[32];
        snprintf(iq, sizeof(iq), "127.0.0.1:%u", 45000 + (unsigned)getpid() % 5000);
        child = spawn_gateway(spawn, config, iq, listen, workers, cipher, group);
        if (child < 0) {
            perror("agw-bench: fork");
            goto out;
        }
        cpu_pid = child;
        if (iq_client_open(listen, iq, NULL, NULL, &c) < 0 ||
            iq_client_wait_registration(c, 10000, NULL, NULL, NULL) < 0) {
            fprintf(stderr, "agw-bench: the gateway did not register\n");
            goto out;
        }
        if (gateway_sessions(c, &r, sink_port, fp) < 0)
            goto out;
    }

    th = calloc(2 * sessions, sizeof(*th));
    if (th == NULL)
        goto out;
    double cpu_before = cpu_pid > 0 ? proc_cpu_seconds(cpu_pid) : -1;
    double host_before = host_busy_seconds(), self_before = self_cpu_seconds();
    unsigned started = 0;
    for (unsigned i = 0; i < sessions; i++)
        if (pthread_create(&th[started], NULL, sink_thread, &r) == 0)
            started++;
    unsigned sinks = started;
    uint64_t start = now_us();
    for (unsigned i = 0; i < sessions; i++)
        if (pthread_create(&th[started], NULL, ue_thread, &r.flows[i]) == 0)
            started++;
        else
            r.flows[i].ue_rc = -EAGAIN;
    for (unsigned i = sinks; i < started; i++)
        pthread_join(th[i], NULL);
    atomic_store(&r.ues_done_us, now_us());
    atomic_store(&r.ues_done, true);
    for (unsigned i = 0; i < sinks; i++)
        pthread_join(th[i], NULL);
    uint64_t end = start;
    uint64_t total = 0;
    unsigned bad = 0;
    for (unsigned i = 0; i < sessions; i++) {
        const struct flow *f = &r.flows[i];
        total += f->received;
        if (f->done_us > end)
            end = f->done_us;
        if (f->ue_rc == 0 && !f->corrupt && f->received == bytes && f->eof)
            continue;
        if (bad++ < 5)
            fprintf(stderr, "agw-bench: %s flow %u failed: %llu of %llu bytes%s%s%s, UE %s\n",
                    label, i, (unsigned long long)f->received, (unsigned long long)bytes,
                    f->corrupt ? ", corrupt" : "", atomic_load(&f->claimed) ? "" : ", never seen",
                    f->eof || !atomic_load(&f->claimed) ? "" : ", no EOF",
                    f->ue_rc == 0 ? "ok" : strerror(-f->ue_rc));
    }
    const char *tls = plain ? "none" : "?";
    for (unsigned i = 0; i < sessions && !plain; i++)
        if (r.flows[i].tls[0] != '\0') {
            tls = r.flows[i].tls;
            break;
        }
    for (unsigned i = 0; i < sessions && !plain; i++)
        if (r.flows[i].tls[0] != '\0' && strcmp(r.flows[i].tls, tls) != 0)
            fprintf(stderr, "agw-bench: flow %u negotiated %s, another %s\n", i, r.flows[i].tls,
                    tls);
    if (bad > 0)
        end = now_us(); /* a failed run's figure means nothing anyway; keep it finite */
    double cpu_after = cpu_pid > 0 ? proc_cpu_seconds(cpu_pid) : -1;
    double host_after = host_busy_seconds(), self_after = self_cpu_seconds();
    double window = (double)(now_us() - start) / 1e6;
    double relay_cpu = cpu_before >= 0 && cpu_after >= 0 ? cpu_after - cpu_before : -1;
    double bench_cpu = self_after - self_before;
    if (relay != NULL) {
        bench_ref_relay_stop(relay, &relay_cpu);
        relay = NULL;
        bench_cpu -= relay_cpu; /* the splice relay's threads are ours */
    }
    /* What ran besides the UEs, the sink and the relay: a busy host skews the figures. */
    double other_cpu = host_before >= 0 && host_after >= 0 && relay_cpu >= 0
                           ? host_after - host_before - bench_cpu - relay_cpu
                           : -1;
    double seconds = (double)(end - start) / 1e6;
    double mbps = seconds > 0 ? (double)total / seconds / 1e6 : 0;
    unsigned stray = atomic_load(&r.bad_headers);
    char cpu_json[32] = "null", other_json[32] = "null", workers_json[40] = "null";
    if (relay_cpu >= 0)
        snprintf(cpu_json, sizeof(cpu_json), "%.2f", relay_cpu);
    if (host_before >= 0 && host_after >= 0 && relay_cpu >= 0) /* ticks vs exact: clamp at 0 */
        snprintf(other_json, sizeof(other_json), "%.2f", other_cpu < 0 ? 0 : other_cpu);
    if (gateway)
        snprintf(workers_json, sizeof(workers_json), "\"%s\"", workers);
    if (json)
        printf("{\"mode\":\"bulk\",\"target\":\"%s\",\"sessions\":%u,\"bytes_per_session\":%llu,"
               "\"cipher\":\"%s\",\"group\":\"%s\",\"workers\":%s,\"seconds\":%.3f,"
               "\"MB_per_s\":%.1f,\"window_s\":%.3f,\"relay_cpu_s\":%s,\"bench_cpu_s\":%.2f,"
               "\"other_cpu_s\":%s,\"failed_sessions\":%u,\"negotiated\":\"%s\"}\n",
               label, sessions, (unsigned long long)bytes, plain ? "none" : cipher,
               plain ? "none" : group, workers_json, seconds, mbps, window, cpu_json, bench_cpu,
               other_json, bad, tls);
    else {
        printf("bulk: %s%s%s: %u session(s) x %llu bytes, %s%s%s%s\n", label,
               gateway ? ", workers " : "", gateway ? workers : "", sessions,
               (unsigned long long)bytes, plain ? "plain TCP" : "TLS 1.3 ", plain ? "" : cipher,
               plain ? "" : " ", plain ? "" : group);
        printf("  %.1f MB/s (%.1f MiB/s) in %.2f s, connection set-up included\n", mbps,
               seconds > 0 ? (double)total / seconds / 1048576.0 : 0, seconds);
        if (relay_cpu >= 0)
            printf("  CPU over %.2f s: relay %.2f s, agw-bench %.2f s, other processes %s s\n",
                   window, relay_cpu, bench_cpu, other_json);
        if (!plain)
            printf("  negotiated: %s\n", tls);
        printf("  verified at the sink: %s\n",
               bad ? "FAILED (lost, corrupt or unterminated flows)" : "every byte");
    }
    if (stray > 0)
        fprintf(stderr, "agw-bench: %u sink connection(s) without a valid flow header\n", stray);
    status = bad || stray ? 1 : 0;
out:
    bench_ref_relay_stop(relay, NULL);
    if (child > 0)
        stop_gateway(child, c);
    iq_client_close(c);
    if (r.sink_fd >= 0)
        close(r.sink_fd);
    SSL_CTX_free(r.ctx);
    agw_tls_identity_unref(ue);
    free(r.flows);
    free(th);
    return status;
}
