/* Check suite: the e2ae flows of TR 29.828 (MSRP and BFCP, originating and terminating) end to
 * end through the real daemon, TLS variants, gnutls-cli as the UE, mode gating, half-close and
 * plain TCP pass-through; every byte checked by hash at the far end. */
#include "h248/h248.h"
#include "tests/harness.h"
#include "tls/cert.h"
#include "tls/fingerprint.h"
#include "tools/iq_client.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t child = -1;
static char log_path[64];
static uint16_t realm_base;
static struct iq_client *mgc;

/* Bytes each way in the four flows of the seeds document. */
static uint64_t flow_bytes(void)
{
    const char *mib = getenv("AGW_RELAY_TEST_MIB");
    return (uint64_t)(mib != NULL && mib[0] != '\0' ? strtoul(mib, NULL, 10) : 100) << 20;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- The daemon ---- */

static void start(void)
{
    char iq[32], m1[32], access[64], core[64];
    uint16_t iq_port = harness_free_port(SOCK_DGRAM), mgc_port = harness_free_port(SOCK_DGRAM);
    /* Below the ephemeral range, apart from the other relay suites (plain and ASan may overlap). */
    realm_base = (uint16_t)(24000 + (getpid() % 100) * 40);
    snprintf(iq, sizeof(iq), "127.0.0.1:%u", iq_port);
    snprintf(m1, sizeof(m1), "127.0.0.1:%u", mgc_port);
    snprintf(access, sizeof(access), "access,127.0.0.1,%u-%u", realm_base, realm_base + 19);
    snprintf(core, sizeof(core), "core,127.0.0.1,%u-%u", realm_base + 20, realm_base + 39);
    snprintf(log_path, sizeof(log_path), "/tmp/test_relay_flows.%d.log", (int)getpid());
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        /* A test killed on its timeout must not leave the daemon behind. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, STDERR_FILENO);
        execl(harness_agw_bin(), harness_agw_bin(), "--iq-listen", iq, "--mgc", m1, "--workers",
              "1", "--realm", access, "--realm", core, "--handshake-timeout-ms", "10000",
              "--log-level", "debug", (char *)NULL);
        _exit(127);
    }
    ck_assert_int_eq(iq_client_open(m1, iq, NULL, NULL, &mgc), 0);
    ck_assert_msg(iq_client_wait_registration(mgc, harness_ms(5000), NULL, NULL, NULL) == 0,
                  "no registration, see %s", log_path);
    for (int i = 0; i < harness_ms(200) && !harness_log_contains(log_path, "registered with MGC");
         i++)
        harness_sleep_ms(10);
}

/* SIGTERM; the Forced ServiceChange is answered; the daemon must exit 0 (ASan: no leak). */
static void stop(void)
{
    if (child > 0) {
        int status = harness_stop_daemon(child, mgc, 10000);
        child = -1;
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d, see %s",
                      status, log_path);
    }
    iq_client_close(mgc);
    mgc = NULL;
}

static void teardown(void)
{
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        child = -1;
    }
    iq_client_close(mgc);
    mgc = NULL;
}

/* ---- Iq ---- */

/* The reply to text, compact (static buffer); *code gets the first error code or 0. */
/* harness_request(mgc, ) that must succeed; the reply is copied to out. */
static void request_ok(const char *text, char *out, size_t cap)
{
    unsigned code;
    const char *r = harness_request(mgc, text, &code);
    ck_assert_msg(code == 0, "%s\n-> %s (log %s)", text, r, log_path);
    snprintf(out, cap, "%s", r);
}

/* The termination id the reply's Add names ("ip/access/3"). */
static void added_id(const char *reply, char *id, size_t cap)
{
    const char *p = strstr(reply, "A=ip/");
    ck_assert_msg(p != NULL, "no Add in %s", reply);
    p += 2;
    size_t n = strcspn(p, "{,}");
    ck_assert_uint_lt(n, cap);
    memcpy(id, p, n);
    id[n] = '\0';
}

/* The media port of the reply's Local ("m=<media> PORT"). */
static uint16_t local_port(const char *reply, const char *media)
{
    char key[32];
    snprintf(key, sizeof(key), "m=%s ", media);
    return (uint16_t)harness_number_after(reply, key);
}

/* Subtract=* in ctx; checks that the core leg's octet counts equal what crossed it. */
static void release_context(unsigned ctx, const char *core_id, uint64_t up, uint64_t down)
{
    char text[128], reply[8192], key[64];
    snprintf(text, sizeof(text), "C=%u{S=*}", ctx);
    request_ok(text, reply, sizeof(reply));
    snprintf(key, sizeof(key), "S=%s{", core_id);
    const char *core = strstr(reply, key);
    ck_assert_msg(core != NULL, "no %s in %s", key, reply);
    ck_assert_msg(harness_number_after(core, "nt/os=") == up &&
                      harness_number_after(core, "nt/or=") == down,
                  "core statistics %s, expected os=%llu or=%llu", core, (unsigned long long)up,
                  (unsigned long long)down);
}

/* ---- Sockets ---- */

static void set_timeouts(int fd, int seconds)
{
    struct timeval tv = {seconds, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void set_nonblocking(int fd, bool on)
{
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

static int tcp_listen(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    ck_assert_int_eq(listen(fd, 4), 0);
    return fd;
}

/* The next connection on a listening socket within timeout_ms, or -1. */
static int tcp_accept(int listen_fd, int timeout_ms)
{
    struct pollfd pfd = {.fd = listen_fd, .events = POLLIN};
    if (poll(&pfd, 1, timeout_ms) != 1)
        return -1;
    int fd = accept(listen_fd, NULL, NULL);
    if (fd >= 0)
        set_timeouts(fd, 10);
    return fd;
}

static int tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    set_timeouts(fd, 10);
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect to %u: %s", port,
                  strerror(errno));
    return fd;
}

/* ---- TLS endpoints (the UE, and the core's own TLS in the pass-through test) ---- */

struct ue {
    struct agw_tls_identity *id;
    char fingerprint[AGW_TLS_FINGERPRINT_TEXT_MAX]; /* sha-256 */
};

static void ue_make(struct ue *ue)
{
    ck_assert_int_eq(agw_tls_identity_generate("ue.test", 30, &ue->id), 0);
    ck_assert_int_eq(agw_tls_fingerprint_format(agw_tls_identity_fingerprint(ue->id),
                                                ue->fingerprint, sizeof(ue->fingerprint)),
                     0);
}

static void ue_fingerprint(const struct ue *ue, enum agw_tls_hash hash, char *out, size_t cap)
{
    struct agw_tls_fingerprint fp;
    ck_assert_int_eq(agw_tls_fingerprint_of(agw_tls_identity_cert(ue->id), hash, &fp), 0);
    ck_assert_int_eq(agw_tls_fingerprint_format(&fp, out, cap), 0);
}

static int accept_any(int ok, X509_STORE_CTX *ctx)
{
    (void)ok;
    (void)ctx;
    return 1; /* self-signed on both sides: the fingerprints are the check */
}

/* A TLS context presenting id (NULL: no certificate), asking for the peer's certificate. */
static SSL_CTX *tls_ctx(const struct agw_tls_identity *id, bool server, int min_v, int max_v)
{
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    ck_assert_ptr_nonnull(ctx);
    if (id != NULL) {
        ck_assert_int_eq(SSL_CTX_use_certificate(ctx, agw_tls_identity_cert(id)), 1);
        ck_assert_int_eq(SSL_CTX_use_PrivateKey(ctx, agw_tls_identity_key(id)), 1);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                       accept_any);
    if (min_v != 0)
        SSL_CTX_set_min_proto_version(ctx, min_v);
    if (max_v != 0)
        SSL_CTX_set_max_proto_version(ctx, max_v);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ctx;
}

/* Runs the handshake on a blocking socket (with timeouts); NULL when it fails. */
static SSL *tls_handshake(SSL_CTX *ctx, int fd, bool server)
{
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    int rc = server ? SSL_accept(ssl) : SSL_connect(ssl);
    if (rc != 1) {
        ERR_clear_error();
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

struct hs_job {
    SSL_CTX *ctx;
    int fd;
    bool server;
    SSL *ssl;
};

static void *hs_thread(void *arg)
{
    struct hs_job *job = arg;
    job->ssl = tls_handshake(job->ctx, job->fd, job->server);
    return NULL;
}

/* The certificate the peer presented must be the one of fingerprint text "sha-256 AB:..." found
 * in where (an Add reply's Local, or a plain fingerprint). */
static void check_peer_fingerprint(SSL *ssl, const char *where)
{
    X509 *cert = SSL_get1_peer_certificate(ssl);
    ck_assert_ptr_nonnull(cert);
    struct agw_tls_fingerprint fp;
    char text[AGW_TLS_FINGERPRINT_TEXT_MAX];
    ck_assert_int_eq(agw_tls_fingerprint_of(cert, AGW_TLS_HASH_SHA256, &fp), 0);
    agw_tls_fingerprint_format(&fp, text, sizeof(text));
    ck_assert_msg(strstr(where, text) != NULL, "peer certificate %s not in %s", text, where);
    X509_free(cert);
}

/* ---- Byte streams checked at the far end ---- */

static unsigned char pattern_byte(uint64_t k, uint32_t seed)
{
    uint64_t x = (k ^ ((uint64_t)seed << 40)) * 0x9E3779B97F4A7C15ull;
    return (unsigned char)(x >> 56);
}

static void pattern(unsigned char *buf, size_t len, uint64_t offset, uint32_t seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = pattern_byte(offset + i, seed);
}

enum rx_end { RX_OPEN, RX_EOF, RX_TRUNCATED, RX_ERROR };

/* One end of a relayed stream: what it has to send (pattern tx_seed) and what it has to
 * receive (pattern rx_seed, hashed against the expected bytes). Goals may grow between runs. */
struct end {
    const char *name;
    SSL *ssl; /* NULL: plain TCP */
    int fd;
    uint32_t tx_seed, rx_seed;
    uint64_t tx_goal, tx_done, rx_goal, rx_done;
    size_t wpend;        /* an SSL_write to repeat with the same length */
    bool close_after_tx; /* close_notify (TLS) or SHUT_WR (TCP) once tx_goal is reached */
    bool closed;
    bool expect_eof; /* after rx_goal, the stream must end (and carry nothing more) */
    enum rx_end rx_end;
    int rx_errno, tx_errno;
    bool extra_bytes;
    bool want_in, want_out; /* what the last attempt waits for */
    EVP_MD_CTX *got, *want;
};

static void end_init(struct end *e, const char *name, SSL *ssl, int fd, uint32_t tx_seed,
                     uint32_t rx_seed)
{
    memset(e, 0, sizeof(*e));
    e->name = name;
    e->ssl = ssl;
    e->fd = fd;
    e->tx_seed = tx_seed;
    e->rx_seed = rx_seed;
    e->got = EVP_MD_CTX_new();
    e->want = EVP_MD_CTX_new();
    EVP_DigestInit_ex(e->got, EVP_sha256(), NULL);
    EVP_DigestInit_ex(e->want, EVP_sha256(), NULL);
    set_nonblocking(fd, true);
}

/* The hash of everything received equals the hash of the expected pattern. */
static bool end_hash_ok(struct end *e)
{
    unsigned char a[32], b[32];
    EVP_MD_CTX *g = EVP_MD_CTX_new(), *w = EVP_MD_CTX_new();
    EVP_MD_CTX_copy_ex(g, e->got);
    EVP_MD_CTX_copy_ex(w, e->want);
    EVP_DigestFinal_ex(g, a, NULL);
    EVP_DigestFinal_ex(w, b, NULL);
    EVP_MD_CTX_free(g);
    EVP_MD_CTX_free(w);
    return memcmp(a, b, 32) == 0;
}

static void end_fini(struct end *e)
{
    EVP_MD_CTX_free(e->got);
    EVP_MD_CTX_free(e->want);
    e->got = e->want = NULL;
}

static const char *end_describe(const struct end *e)
{
    static char buf[4][256];
    static int which;
    char *b = buf[which++ % 4];
    static const char *ends[] = {"open", "eof", "truncated", "error"};
    snprintf(b, sizeof(buf[0]),
             "%s: sent %llu/%llu (errno %d), received %llu/%llu, end %s (errno %d)%s", e->name,
             (unsigned long long)e->tx_done, (unsigned long long)e->tx_goal, e->tx_errno,
             (unsigned long long)e->rx_done, (unsigned long long)e->rx_goal, ends[e->rx_end],
             e->rx_errno, e->extra_bytes ? ", bytes after the expected end" : "");
    return b;
}

static void end_write(struct end *e)
{
    unsigned char buf[16384];
    e->want_out = false;
    while (e->tx_done < e->tx_goal && e->tx_errno == 0) {
        size_t n = e->wpend;
        if (n == 0)
            n = e->tx_goal - e->tx_done < sizeof(buf) ? (size_t)(e->tx_goal - e->tx_done)
                                                      : sizeof(buf);
        pattern(buf, n, e->tx_done, e->tx_seed);
        if (e->ssl != NULL) {
            size_t w = 0;
            int r = SSL_write_ex(e->ssl, buf, n, &w);
            if (r == 1) {
                e->tx_done += w;
                e->wpend = 0;
                continue;
            }
            int err = SSL_get_error(e->ssl, r);
            e->wpend = n;
            if (err == SSL_ERROR_WANT_WRITE)
                e->want_out = true;
            else if (err == SSL_ERROR_WANT_READ)
                e->want_in = true;
            else
                e->tx_errno = errno != 0 ? errno : EPROTO;
            ERR_clear_error();
            return;
        }
        ssize_t w = send(e->fd, buf, n, MSG_NOSIGNAL);
        if (w > 0) {
            e->tx_done += (uint64_t)w;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            e->want_out = true;
            return;
        } else {
            e->tx_errno = errno;
            return;
        }
    }
    if (e->tx_done == e->tx_goal && e->close_after_tx && !e->closed) {
        if (e->ssl == NULL) {
            shutdown(e->fd, SHUT_WR);
            e->closed = true;
            return;
        }
        int r = SSL_shutdown(e->ssl);
        if (r >= 0)
            e->closed = true;
        else if (SSL_get_error(e->ssl, r) == SSL_ERROR_WANT_WRITE)
            e->want_out = true;
        else
            e->tx_errno = EPROTO;
        ERR_clear_error();
    }
}

static void end_take(struct end *e, const unsigned char *buf, size_t n)
{
    unsigned char want[16384];
    if (e->rx_done + n > e->rx_goal) {
        e->extra_bytes = true;
        n = (size_t)(e->rx_goal - e->rx_done);
    }
    pattern(want, n, e->rx_done, e->rx_seed);
    EVP_DigestUpdate(e->got, buf, n);
    EVP_DigestUpdate(e->want, want, n);
    e->rx_done += n;
}

static void end_read(struct end *e)
{
    unsigned char buf[16384];
    e->want_in = false;
    while (e->rx_end == RX_OPEN && (e->rx_done < e->rx_goal || e->expect_eof) && !e->extra_bytes) {
        size_t cap = sizeof(buf);
        if (e->rx_done < e->rx_goal && e->rx_goal - e->rx_done < cap)
            cap = (size_t)(e->rx_goal - e->rx_done);
        if (e->ssl != NULL) {
            size_t n = 0;
            errno = 0;
            int r = SSL_read_ex(e->ssl, buf, cap, &n);
            if (r == 1) {
                end_take(e, buf, n);
                continue;
            }
            int err = SSL_get_error(e->ssl, r);
            if (err == SSL_ERROR_WANT_READ) {
                e->want_in = true;
            } else if (err == SSL_ERROR_WANT_WRITE) {
                e->want_out = true;
            } else if (err == SSL_ERROR_ZERO_RETURN) {
                e->rx_end = RX_EOF;
            } else {
                unsigned long le = ERR_peek_error();
                e->rx_end = ERR_GET_REASON(le) == SSL_R_UNEXPECTED_EOF_WHILE_READING ? RX_TRUNCATED
                                                                                     : RX_ERROR;
                e->rx_errno = errno;
            }
            ERR_clear_error();
            return;
        }
        ssize_t n = recv(e->fd, buf, cap, 0);
        if (n > 0) {
            end_take(e, buf, (size_t)n);
        } else if (n == 0) {
            e->rx_end = RX_EOF;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            e->want_in = true;
            return;
        } else {
            e->rx_end = RX_ERROR;
            e->rx_errno = errno;
        }
    }
}

static bool end_done(const struct end *e)
{
    return e->tx_done == e->tx_goal && (!e->close_after_tx || e->closed) &&
           e->rx_done == e->rx_goal && (!e->expect_eof || e->rx_end != RX_OPEN);
}

static bool end_broken(const struct end *e)
{
    return e->tx_errno != 0 || e->extra_bytes ||
           (e->rx_end != RX_OPEN && (e->rx_done < e->rx_goal || e->rx_end != RX_EOF));
}

/* Moves bytes at every end until each reached its goals (true), one broke, or timeout_ms. */
static bool run_ends(struct end **ends, size_t n, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        bool all = true;
        struct pollfd pfd[8];
        for (size_t i = 0; i < n; i++) {
            struct end *e = ends[i];
            end_read(e);
            end_write(e);
            if (end_broken(e))
                return false;
            all &= end_done(e);
            pfd[i].fd = e->fd;
            pfd[i].events = (short)((e->want_in || e->rx_done < e->rx_goal ? POLLIN : 0) |
                                    (e->want_out ? POLLOUT : 0));
            pfd[i].revents = 0;
        }
        if (all)
            return true;
        uint64_t now = now_ms();
        if (now >= deadline)
            return false;
        poll(pfd, (nfds_t)n, deadline - now < 100 ? (int)(deadline - now) : 100);
    }
}

/* Nothing readable arrives at e for ms milliseconds. */
static bool end_quiet(struct end *e, int ms)
{
    uint64_t deadline = now_ms() + (uint64_t)ms;
    uint64_t before = e->rx_done;
    uint64_t goal = e->rx_goal;
    e->rx_goal = UINT64_MAX; /* read anything that comes */
    while (now_ms() < deadline) {
        struct pollfd pfd = {.fd = e->fd, .events = POLLIN};
        poll(&pfd, 1, 50);
        end_read(e);
        if (e->rx_done != before || e->rx_end != RX_OPEN)
            break;
    }
    e->rx_goal = goal;
    return e->rx_done == before && e->rx_end == RX_OPEN;
}

/* Both directions at once, bytes each way; hashes compared at both far ends. */
static void duplex(struct end *ue, struct end *core, uint64_t bytes, int timeout_ms)
{
    ue->tx_goal += bytes;
    ue->rx_goal += bytes;
    core->tx_goal += bytes;
    core->rx_goal += bytes;
    struct end *ends[] = {ue, core};
    uint64_t t0 = now_ms();
    bool ok = run_ends(ends, 2, timeout_ms);
    ck_assert_msg(ok, "transfer stopped after %llu ms: %s; %s (log %s)",
                  (unsigned long long)(now_ms() - t0), end_describe(ue), end_describe(core),
                  log_path);
    ck_assert_msg(end_hash_ok(core), "UE -> core bytes differ");
    ck_assert_msg(end_hash_ok(ue), "core -> UE bytes differ");
}

/* ---- The flows (TR 29.828 5.2.1.2 and 5.2.1.3) ---- */

struct flow {
    const char *media;       /* m= media */
    const char *tls_proto;   /* toward the UE */
    const char *plain_proto; /* toward the core */
    const char *ue_attrs;    /* the UE's own attributes, which the gateway keeps and ignores */
};

static const struct flow msrp = {
    "message", "TCP/TLS/MSRP", "TCP/MSRP",
    "a=accept-types:message/cpim text/plain\r\na=path:msrps://ue.test:9/s11a;tcp\r\n"
    "a=3ge2ae:requested\r\n"};
static const struct flow bfcp = {
    "application", "TCP/TLS/BFCP", "TCP/BFCP",
    "a=floorctrl:c-s\r\na=confid:4321\r\na=userid:1234\r\na=floorid:1 mstrm:10\r\n"
    "a=3ge2ae:requested\r\n"};

struct session {
    unsigned ctx;
    char core_id[48], access_id[48];
    char access_reply[4096];
    uint16_t core_port, access_port;
};

/* Originating (UE A offers actpass with its fingerprint, the far end answers active). */
static void run_originating(const struct flow *f)
{
    start();
    struct ue ue;
    ue_make(&ue);
    uint16_t ue_port;
    int ue_listen = tcp_listen(&ue_port); /* UE A offered actpass: it listens too */
    struct session s;
    char text[2048], reply[4096];

    /* 2.-4. Reserve AGW Connection Point toward the core. */
    snprintf(text, sizeof(text),
             "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=%s $ %s *\r\n}}}}}",
             f->media, f->plain_proto);
    request_ok(text, reply, sizeof(reply));
    s.ctx = (unsigned)harness_number_after(reply, "C=");
    added_id(reply, s.core_id, sizeof(s.core_id));
    s.core_port = local_port(reply, f->media);
    ck_assert_msg(s.core_port >= realm_base + 20 && s.core_port <= realm_base + 39, "%s", reply);

    /* 5.-7. Reserve and Configure toward the access: the UE's address, actpass, fingerprint. */
    snprintf(text, sizeof(text),
             "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=%s $ %s *\r\n"
             "a=fingerprint:$\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=%s %u %s *\r\n"
             "a=setup:actpass\r\na=fingerprint:%s\r\n%s}}},E=5{tlsc/fail}}}",
             s.ctx, f->media, f->tls_proto, f->media, ue_port, f->tls_proto, ue.fingerprint,
             f->ue_attrs);
    request_ok(text, s.access_reply, sizeof(s.access_reply));
    added_id(s.access_reply, s.access_id, sizeof(s.access_id));
    /* actpass: the gateway picks active toward the access, its port is the discard port. */
    ck_assert_msg(local_port(s.access_reply, f->media) == 9, "%s", s.access_reply);
    ck_assert_msg(strstr(s.access_reply, "a=setup:active") != NULL, "%s", s.access_reply);
    ck_assert_msg(strstr(s.access_reply, "a=fingerprint:sha-256 ") != NULL, "%s", s.access_reply);

    /* Nothing reaches UE A before the far end connects: incoming triggers outgoing. */
    ck_assert_msg(tcp_accept(ue_listen, 300) < 0, "the gateway connected to the UE too early");

    /* 10. The far end chooses active and connects to the gateway's core port; it speaks first,
     * before UE A is verified: those bytes must wait, not be lost nor reach an unverified UE. */
    int core_fd = tcp_connect(s.core_port);
    const uint64_t early = 64 << 10;
    unsigned char early_bytes[64 << 10];
    pattern(early_bytes, sizeof(early_bytes), 0, 2);
    ck_assert_int_eq(send(core_fd, early_bytes, sizeof(early_bytes), 0),
                     (ssize_t)sizeof(early_bytes));
    /* 11. The gateway connects to UE A. */
    int ue_fd = tcp_accept(ue_listen, 3000);
    ck_assert_msg(ue_fd >= 0, "the gateway did not connect to the UE (log %s)", log_path);

    /* 13.-15. Configure the core termination with the answer (a=setup:active). */
    snprintf(text, sizeof(text),
             "C=%u{MF=%s{M{ST=1{R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=%s 9 %s *\r\n"
             "a=setup:active\r\n}}}}}",
             s.ctx, s.core_id, f->media, f->plain_proto);
    request_ok(text, reply, sizeof(reply));
    /* 16.-18. Configure the access termination with the TLS setup direction. */
    snprintf(text, sizeof(text),
             "C=%u{MF=%s{M{ST=1{L{v=0\r\nc=IN IP4 127.0.0.1\r\nm=%s 9 %s *\r\n"
             "a=setup:active\r\n}}}}}",
             s.ctx, s.access_id, f->media, f->tls_proto);
    request_ok(text, reply, sizeof(reply));
    ck_assert_msg(strstr(reply, "a=setup:active") != NULL, "%s", reply);
    const char *fp_at = strstr(s.access_reply, "a=fingerprint:sha-256 ");
    ck_assert_msg(strncmp(strstr(reply, "a=fingerprint:") ? strstr(reply, "a=fingerprint:") : "",
                          fp_at, strcspn(fp_at, "\r\n")) == 0,
                  "the gateway's fingerprint changed: %s", reply);

    /* 20.-21. UE A completes TLS: the gateway is TCP-active, hence the TLS client. */
    SSL_CTX *ctx = tls_ctx(ue.id, true, 0, 0);
    SSL *ssl = tls_handshake(ctx, ue_fd, true);
    ck_assert_msg(ssl != NULL, "TLS with the gateway failed (log %s)", log_path);
    check_peer_fingerprint(ssl, s.access_reply);

    struct end ue_end, core_end;
    end_init(&ue_end, "UE", ssl, ue_fd, 1, 2);
    end_init(&core_end, "core", NULL, core_fd, 2, 1);
    core_end.tx_goal = core_end.tx_done = early;
    ue_end.rx_goal = early;
    uint64_t bytes = flow_bytes();
    duplex(&ue_end, &core_end, bytes, 100000);
    release_context(s.ctx, s.core_id, bytes, bytes + early);

    end_fini(&ue_end);
    end_fini(&core_end);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(ue_fd);
    close(core_fd);
    close(ue_listen);
    agw_tls_identity_unref(ue.id);
    stop();
}

/* Terminating (the core offers plain, UE B answers active; its fingerprint comes later). With
 * establish, the ALG asks the gateway to start TLS although UE B opens the TCP connection. */
static void run_terminating(const struct flow *f, bool establish)
{
    start();
    struct ue ue;
    ue_make(&ue);
    uint16_t core_listen_port;
    int core_listen = tcp_listen(&core_listen_port);
    struct session s;
    char text[2048], reply[4096];

    /* 2.-4. Reserve AGW Connection Point toward the access: TLS, the gateway's fingerprint. */
    snprintf(text, sizeof(text),
             "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=%s $ %s *\r\n"
             "a=fingerprint:$\r\n}}},E=5{tlsc/fail}%s}}",
             f->media, f->tls_proto, establish ? ",SG{tlsc/est}" : "");
    request_ok(text, s.access_reply, sizeof(s.access_reply));
    s.ctx = (unsigned)harness_number_after(s.access_reply, "C=");
    added_id(s.access_reply, s.access_id, sizeof(s.access_id));
    s.access_port = local_port(s.access_reply, f->media);
    ck_assert_msg(s.access_port >= realm_base && s.access_port <= realm_base + 19, "%s",
                  s.access_reply);
    ck_assert_msg(strstr(s.access_reply, "a=fingerprint:sha-256 ") != NULL, "%s", s.access_reply);

    /* 5.-7. Reserve and Configure toward the core with its offer (passive: the gateway dials). */
    snprintf(text, sizeof(text),
             "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=%s $ %s *\r\n},"
             "R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=%s %u %s *\r\na=setup:passive\r\n}}}}}",
             s.ctx, f->media, f->plain_proto, f->media, core_listen_port, f->plain_proto);
    request_ok(text, reply, sizeof(reply));
    added_id(reply, s.core_id, sizeof(s.core_id));
    ck_assert_msg(local_port(reply, f->media) == 9, "%s", reply);

    /* 10. UE B connects; 12. TLS starts before the ALG knows UE B's fingerprint. Without the
     * signal UE B is the TLS client; with it the gateway is, and UE B answers as the server. */
    int ue_fd = tcp_connect(s.access_port);
    SSL_CTX *ctx = tls_ctx(ue.id, establish, 0, 0);
    struct hs_job job = {.ctx = ctx, .fd = ue_fd, .server = establish};
    pthread_t th;
    pthread_create(&th, NULL, hs_thread, &job);
    /* The hold: no decision, no connection toward the core until the fingerprint is known. */
    int core_fd = tcp_accept(core_listen, 700);
    ck_assert_msg(core_fd < 0, "the gateway reached the core before verifying the UE");

    /* 14.-16. Configure AGW Connection Point toward UE B: its address and fingerprint. */
    snprintf(text, sizeof(text),
             "C=%u{MF=%s{M{ST=1{R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=%s 9 %s *\r\na=setup:active\r\n"
             "a=fingerprint:%s\r\n%s}}}}}",
             s.ctx, s.access_id, f->media, f->tls_proto, ue.fingerprint, f->ue_attrs);
    request_ok(text, reply, sizeof(reply));
    pthread_join(th, NULL);
    SSL *ssl = job.ssl;
    ck_assert_msg(ssl != NULL, "TLS with the gateway failed (log %s)", log_path);
    check_peer_fingerprint(ssl, s.access_reply);
    /* 11. The gateway connects to the core once UE B is verified. */
    core_fd = tcp_accept(core_listen, 3000);
    ck_assert_msg(core_fd >= 0, "the gateway did not connect to the core (log %s)", log_path);

    struct end ue_end, core_end;
    end_init(&ue_end, "UE", ssl, ue_fd, 1, 2);
    end_init(&core_end, "core", NULL, core_fd, 2, 1);
    uint64_t bytes = flow_bytes();
    duplex(&ue_end, &core_end, bytes, 100000);
    release_context(s.ctx, s.core_id, bytes, bytes);

    end_fini(&ue_end);
    end_fini(&core_end);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(ue_fd);
    close(core_fd);
    close(core_listen);
    agw_tls_identity_unref(ue.id);
    stop();
}

START_TEST(msrp_originating)
{
    run_originating(&msrp);
}
END_TEST

START_TEST(msrp_terminating_fingerprint_after_tls_start)
{
    run_terminating(&msrp, false);
}
END_TEST

START_TEST(bfcp_originating)
{
    run_originating(&bfcp);
}
END_TEST

START_TEST(bfcp_terminating_gateway_establishes_tls)
{
    run_terminating(&bfcp, true);
}
END_TEST

/* ---- One session with the UE known at Add (UE connects, gateway dials the core) ---- */

struct live {
    struct session s;
    int core_listen, ue_fd, core_fd;
    SSL_CTX *ctx;
    SSL *ssl;
    struct end ue, core;
};

/* Sets the session up with the Remote's fingerprint lines fp_lines; returns false when the UE's
 * handshake is refused. */
static bool live_open(struct live *l, const struct agw_tls_identity *id, const char *fp_lines,
                      int min_v, int max_v)
{
    char text[4096], reply[4096];
    uint16_t core_port;
    memset(l, 0, sizeof(*l));
    l->core_listen = tcp_listen(&core_port);
    l->core_fd = -1;
    snprintf(text, sizeof(text),
             "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=message $ "
             "TCP/MSRP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message %u TCP/MSRP *\r\n"
             "a=setup:passive\r\n}}}}}",
             core_port);
    request_ok(text, reply, sizeof(reply));
    l->s.ctx = (unsigned)harness_number_after(reply, "C=");
    added_id(reply, l->s.core_id, sizeof(l->s.core_id));
    snprintf(text, sizeof(text),
             "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=message $ "
             "TCP/TLS/MSRP *\r\na=fingerprint:$\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message 9 "
             "TCP/TLS/MSRP *\r\na=setup:active\r\n%s}}},E=5{tlsc/fail}}}",
             l->s.ctx, fp_lines);
    request_ok(text, l->s.access_reply, sizeof(l->s.access_reply));
    added_id(l->s.access_reply, l->s.access_id, sizeof(l->s.access_id));
    l->s.access_port = local_port(l->s.access_reply, "message");
    l->ue_fd = tcp_connect(l->s.access_port);
    l->ctx = tls_ctx(id, false, min_v, max_v);
    l->ssl = tls_handshake(l->ctx, l->ue_fd, false);
    if (l->ssl == NULL)
        return false;
    check_peer_fingerprint(l->ssl, l->s.access_reply);
    l->core_fd = tcp_accept(l->core_listen, 3000);
    ck_assert_msg(l->core_fd >= 0, "the gateway did not connect to the core (log %s)", log_path);
    end_init(&l->ue, "UE", l->ssl, l->ue_fd, 1, 2);
    end_init(&l->core, "core", NULL, l->core_fd, 2, 1);
    return true;
}

static void live_close(struct live *l)
{
    if (l->ssl != NULL) {
        end_fini(&l->ue);
        end_fini(&l->core);
        SSL_free(l->ssl);
    }
    SSL_CTX_free(l->ctx);
    close(l->ue_fd);
    if (l->core_fd >= 0)
        close(l->core_fd);
    close(l->core_listen);
}

/* A session with max_v (or min_v) forced on the UE: that version is negotiated, bytes flow. */
static void run_version(int min_v, int max_v, int expect)
{
    start();
    struct ue ue;
    ue_make(&ue);
    char fp[256];
    snprintf(fp, sizeof(fp), "a=fingerprint:%s\r\n", ue.fingerprint);
    struct live l;
    ck_assert_msg(live_open(&l, ue.id, fp, min_v, max_v), "TLS refused (log %s)", log_path);
    ck_assert_int_eq(SSL_version(l.ssl), expect);
    duplex(&l.ue, &l.core, 4 << 20, 30000);
    char line[64];
    snprintf(line, sizeof(line), "TLS up (%s,", expect == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2");
    ck_assert_msg(harness_log_contains(log_path, line), "no '%s' in %s", line, log_path);
    live_close(&l);
    agw_tls_identity_unref(ue.id);
    stop();
}

START_TEST(tls_1_2)
{
    run_version(0, TLS1_2_VERSION, TLS1_2_VERSION);
}
END_TEST

START_TEST(tls_1_3)
{
    run_version(TLS1_3_VERSION, 0, TLS1_3_VERSION);
}
END_TEST

/* The Remote's fingerprint lines decide; the UE is accepted and bytes flow. */
static void run_fingerprints(const char *(*lines)(const struct ue *ue, const struct ue *other))
{
    start();
    struct ue ue, other;
    ue_make(&ue);
    ue_make(&other);
    struct live l;
    ck_assert_msg(live_open(&l, ue.id, lines(&ue, &other), 0, 0), "TLS refused (log %s)", log_path);
    duplex(&l.ue, &l.core, 1 << 20, 30000);
    live_close(&l);
    agw_tls_identity_unref(ue.id);
    agw_tls_identity_unref(other.id);
    stop();
}

static const char *second_of_three_matches(const struct ue *ue, const struct ue *other)
{
    static char out[1024];
    char a[256], b[256];
    ue_fingerprint(other, AGW_TLS_HASH_SHA256, a, sizeof(a));
    ue_fingerprint(other, AGW_TLS_HASH_SHA1, b, sizeof(b));
    snprintf(out, sizeof(out), "a=fingerprint:%s\r\na=fingerprint:%s\r\na=fingerprint:%s\r\n", a,
             ue->fingerprint, b);
    return out;
}

static const char *sha1_only(const struct ue *ue, const struct ue *other)
{
    (void)other;
    static char out[512];
    char a[256];
    ue_fingerprint(ue, AGW_TLS_HASH_SHA1, a, sizeof(a));
    snprintf(out, sizeof(out), "a=fingerprint:%s\r\n", a);
    return out;
}

static const char *sha512_only(const struct ue *ue, const struct ue *other)
{
    (void)other;
    static char out[512];
    char a[256];
    ue_fingerprint(ue, AGW_TLS_HASH_SHA512, a, sizeof(a));
    snprintf(out, sizeof(out), "a=fingerprint:%s\r\n", a);
    return out;
}

START_TEST(several_fingerprints_second_matches)
{
    run_fingerprints(second_of_three_matches);
}
END_TEST

START_TEST(sha1_fingerprint_only)
{
    run_fingerprints(sha1_only);
}
END_TEST

START_TEST(sha512_fingerprint_only)
{
    run_fingerprints(sha512_only);
}
END_TEST

/* ---- gnutls-cli as the UE: an independent TLS stack ---- */

static bool find_program(const char *name, char *path, size_t cap)
{
    const char *env = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof(dirs), "%s", env != NULL ? env : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d != NULL;
         d = strtok_r(NULL, ":", &save)) {
        snprintf(path, cap, "%s/%s", d, name);
        if (access(path, X_OK) == 0)
            return true;
    }
    return false;
}

static void write_pem(const struct ue *ue, const char *cert_path, const char *key_path)
{
    FILE *f = fopen(cert_path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_X509(f, agw_tls_identity_cert(ue->id)), 1);
    fclose(f);
    f = fopen(key_path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(
        PEM_write_PrivateKey(f, agw_tls_identity_key(ue->id), NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
}

/* Reads fd until needle was seen or timeout_ms passed; what came is kept in buf. */
static bool read_until(int fd, const char *needle, char *buf, size_t cap, int timeout_ms)
{
    size_t len = 0;
    buf[0] = '\0';
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    while (strstr(buf, needle) == NULL && len + 1 < cap) {
        uint64_t now = now_ms();
        if (now >= deadline)
            return false;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(deadline - now)) != 1)
            continue;
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            return false;
        len += (size_t)n;
        buf[len] = '\0';
    }
    return strstr(buf, needle) != NULL;
}

/* _i == 1: gnutls-cli also updates its keys mid-stream (^rekey^ asks for ours too, ^rekey1^
 * does not): the gateway's TLS 1.3 record layer must follow GnuTLS's KeyUpdates both ways. */
START_TEST(gnutls_cli_as_ue)
{
    bool rekey = _i == 1;
    char cli[512];
    if (!find_program("gnutls-cli", cli, sizeof(cli))) {
        fprintf(stderr, "SKIP gnutls_cli_as_ue: gnutls-cli not found (Debian package gnutls-bin, "
                        "tools/install-deps.sh installs it)\n");
        return;
    }
    start();
    struct ue ue;
    ue_make(&ue);
    char cert[64], key[64], cli_log[64], fp[256], text[2048], reply[4096];
    snprintf(cert, sizeof(cert), "/tmp/test_relay_flows.%d.cert.pem", (int)getpid());
    snprintf(key, sizeof(key), "/tmp/test_relay_flows.%d.key.pem", (int)getpid());
    snprintf(cli_log, sizeof(cli_log), "/tmp/test_relay_flows.%d.gnutls.log", (int)getpid());
    write_pem(&ue, cert, key);
    snprintf(fp, sizeof(fp), "a=fingerprint:%s\r\n", ue.fingerprint);

    uint16_t core_port;
    int core_listen = tcp_listen(&core_port);
    snprintf(text, sizeof(text),
             "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=message $ "
             "TCP/MSRP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message %u TCP/MSRP *\r\n"
             "a=setup:passive\r\n}}}}}",
             core_port);
    request_ok(text, reply, sizeof(reply));
    unsigned ctx = (unsigned)harness_number_after(reply, "C=");
    snprintf(text, sizeof(text),
             "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=message $ "
             "TCP/TLS/MSRP *\r\na=fingerprint:$\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message 9 "
             "TCP/TLS/MSRP *\r\na=setup:active\r\n%s}}},E=5{tlsc/fail}}}",
             ctx, fp);
    request_ok(text, reply, sizeof(reply));
    char port[16];
    snprintf(port, sizeof(port), "%u", (unsigned)local_port(reply, "message"));

    int in[2], out[2];
    ck_assert_int_eq(pipe(in), 0);
    ck_assert_int_eq(pipe(out), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        int err = open(cli_log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(err, STDERR_FILENO);
        close(in[1]);
        close(out[0]);
        execl(cli, cli, "--no-ca-verification", "--x509certfile", cert, "--x509keyfile", key,
              "--logfile", cli_log, "-p", port, rekey ? "--inline-commands" : "--", "127.0.0.1",
              (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    /* gnutls-cli presented the certificate whose fingerprint the ALG gave: the gateway dials. */
    int core_fd = tcp_accept(core_listen, 5000);
    ck_assert_msg(core_fd >= 0, "TLS with gnutls-cli failed (logs %s, %s)", log_path, cli_log);
    static const char line[] = "MSRP gnutls1 SEND\n";
    ck_assert_int_eq(write(in[1], line, sizeof(line) - 1), (ssize_t)sizeof(line) - 1);
    char got[4096];
    ck_assert_msg(read_until(core_fd, line, got, sizeof(got), 5000), "core got '%s'", got);
    static const char answer[] = "MSRP gnutls1 200 OK\n";
    ck_assert_int_eq(write(core_fd, answer, sizeof(answer) - 1), (ssize_t)sizeof(answer) - 1);
    ck_assert_msg(read_until(out[0], answer, got, sizeof(got), 5000), "gnutls-cli printed '%s'",
                  got);
    if (rekey) {
        /* Each round: gnutls-cli updates its keys, sends under the new ones, and reads the
           core's answer, which the gateway sends under its own keys (new ones after ^rekey^). */
        static const char *const commands[] = {"^rekey^\n", "^rekey1^\n", "^rekey^\n"};
        for (int round = 0; round < 3; round++) {
            char send[64], ok[64];
            ck_assert_int_eq(write(in[1], commands[round], strlen(commands[round])),
                             (ssize_t)strlen(commands[round]));
            snprintf(send, sizeof(send), "MSRP rekey%d SEND\n", round);
            snprintf(ok, sizeof(ok), "MSRP rekey%d 200 OK\n", round);
            ck_assert_int_eq(write(in[1], send, strlen(send)), (ssize_t)strlen(send));
            ck_assert_msg(read_until(core_fd, send, got, sizeof(got), 5000),
                          "core got '%s' (logs %s, %s)", got, log_path, cli_log);
            ck_assert_int_eq(write(core_fd, ok, strlen(ok)), (ssize_t)strlen(ok));
            ck_assert_msg(read_until(out[0], ok, got, sizeof(got), 5000),
                          "gnutls-cli printed '%s' (logs %s, %s)", got, log_path, cli_log);
        }
    }
    /* End of input: gnutls-cli says goodbye (close_notify), which reaches the core as a FIN. */
    close(in[1]);
    char b;
    struct pollfd pfd = {.fd = core_fd, .events = POLLIN};
    ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
    ck_assert_int_eq(read(core_fd, &b, 1), 0);
    int status = -1;
    for (int i = 0; i < 500 && waitpid(pid, &status, WNOHANG) != pid; i++)
        harness_sleep_ms(10);
    if (status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    ck_assert_msg(harness_log_contains(log_path, "fingerprint verified"), "see %s", log_path);
    close(out[0]);
    close(core_fd);
    close(core_listen);
    unlink(cert);
    unlink(key);
    unlink(cli_log);
    agw_tls_identity_unref(ue.id);
    stop();
}
END_TEST

/* ---- Mode gating ---- */

static void set_mode(const struct live *l, const char *term, const char *mode)
{
    char text[256], reply[2048];
    snprintf(text, sizeof(text), "C=%u{MF=%s{M{ST=1{O{MO=%s}}}}}", l->s.ctx, term, mode);
    request_ok(text, reply, sizeof(reply));
}

/* Sends bytes from e alone (the other side does not read meanwhile). */
static void send_only(struct end *e, uint64_t bytes)
{
    e->tx_goal += bytes;
    struct end *ends[] = {e};
    uint64_t rx = e->rx_goal;
    e->rx_goal = e->rx_done; /* nothing expected meanwhile */
    ck_assert_msg(run_ends(ends, 1, 10000), "%s", end_describe(e));
    e->rx_goal = rx;
}

static void receive_only(struct end *e, uint64_t bytes)
{
    e->rx_goal += bytes;
    struct end *ends[] = {e};
    uint64_t tx = e->tx_goal;
    e->tx_goal = e->tx_done;
    ck_assert_msg(run_ends(ends, 1, 10000), "%s", end_describe(e));
    e->tx_goal = tx;
    ck_assert_msg(end_hash_ok(e), "%s: bytes differ", e->name);
}

/* LocalControl Mode on one termination, seen from it: SendOnly sends only toward its own network,
 * RecvOnly only receives from it. Held bytes are delivered, in order, once SendReceive is back. */
static void run_modes(bool on_core)
{
    start();
    struct ue ue;
    ue_make(&ue);
    char fp[256];
    snprintf(fp, sizeof(fp), "a=fingerprint:%s\r\n", ue.fingerprint);
    struct live l;
    ck_assert_msg(live_open(&l, ue.id, fp, 0, 0), "TLS refused (log %s)", log_path);
    const char *term = on_core ? l.s.core_id : l.s.access_id;
    struct end *net = on_core ? &l.core : &l.ue; /* the gated termination's own network */
    struct end *other = on_core ? &l.ue : &l.core;
    const uint64_t k = 256 << 10;
    duplex(&l.ue, &l.core, k, 10000);

    set_mode(&l, term, "SO");
    send_only(net, k);
    ck_assert_msg(end_quiet(other, 500), "SendOnly let bytes in: %s", end_describe(other));
    send_only(other, k);
    receive_only(net, k);
    set_mode(&l, term, "SR");
    receive_only(other, k); /* held, not lost */

    set_mode(&l, term, "RC");
    send_only(other, k);
    ck_assert_msg(end_quiet(net, 500), "RecvOnly let bytes out: %s", end_describe(net));
    send_only(net, k);
    receive_only(other, k);
    set_mode(&l, term, "SR");
    receive_only(net, k);

    set_mode(&l, term, "IN");
    send_only(net, k);
    send_only(other, k);
    ck_assert_msg(end_quiet(other, 400), "Inactive let bytes in: %s", end_describe(other));
    ck_assert_msg(end_quiet(net, 400), "Inactive let bytes out: %s", end_describe(net));
    set_mode(&l, term, "SR");
    receive_only(other, k);
    receive_only(net, k);

    /* Still a full-duplex relay afterwards. */
    duplex(&l.ue, &l.core, 4 << 20, 30000);
    live_close(&l);
    agw_tls_identity_unref(ue.id);
    stop();
}

START_TEST(mode_gates_access_termination)
{
    run_modes(false);
}
END_TEST

START_TEST(mode_gates_core_termination)
{
    run_modes(true);
}
END_TEST

/* ---- Half-close ---- */

/* One direction ends: `from` sends bytes then its end (close_notify or FIN); `to` must get every
 * byte, then the end in its own form (FIN or close_notify). */
static void half_close(struct end *from, struct end *to, uint64_t bytes)
{
    from->tx_goal += bytes;
    from->close_after_tx = true;
    to->rx_goal += bytes;
    to->expect_eof = true;
    struct end *ends[] = {from, to};
    ck_assert_msg(run_ends(ends, 2, 30000), "%s; %s (log %s)", end_describe(from), end_describe(to),
                  log_path);
    ck_assert_msg(to->rx_end == RX_EOF, "%s", end_describe(to));
    ck_assert_msg(end_hash_ok(to), "%s: bytes differ", to->name);
}

static void run_half_close(bool ue_first, bool then_other_way)
{
    start();
    struct ue ue;
    ue_make(&ue);
    char fp[256];
    snprintf(fp, sizeof(fp), "a=fingerprint:%s\r\n", ue.fingerprint);
    struct live l;
    ck_assert_msg(live_open(&l, ue.id, fp, 0, 0), "TLS refused (log %s)", log_path);
    duplex(&l.ue, &l.core, 1 << 20, 10000);
    if (ue_first)
        half_close(&l.ue, &l.core, 8 << 20);
    else
        half_close(&l.core, &l.ue, 8 << 20);
    /* TLS 1.3 and TCP both allow the other direction to go on after one side's end. */
    if (then_other_way && ue_first)
        half_close(&l.core, &l.ue, 8 << 20);
    else if (then_other_way)
        half_close(&l.ue, &l.core, 8 << 20);
    live_close(&l);
    agw_tls_identity_unref(ue.id);
    stop();
}

START_TEST(ue_close_notify_reaches_core_as_fin_after_every_byte)
{
    run_half_close(true, false);
}
END_TEST

START_TEST(core_fin_reaches_ue_as_close_notify_after_every_byte)
{
    run_half_close(false, false);
}
END_TEST

/* After the UE's close_notify the other direction goes on: every byte from the core still
 * reaches the UE (a half-close is not a close; regression test for a relay that stopped it). */
START_TEST(half_close_ue_first_core_still_sends)
{
    run_half_close(true, true);
}
END_TEST

/* As above, the other way round: after the core's FIN the UE's bytes still reach the core. */
START_TEST(half_close_core_first_ue_still_sends)
{
    run_half_close(false, true);
}
END_TEST

/* ---- Plain TCP on both legs: end-to-end TLS crosses the gateway untouched ---- */

START_TEST(plain_tcp_passes_end_to_end_tls)
{
    start();
    struct ue ue, far;
    ue_make(&ue);
    ue_make(&far);
    uint16_t core_port;
    int core_listen = tcp_listen(&core_port);
    char text[2048], reply[4096];
    snprintf(text, sizeof(text),
             "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
             "TCP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=application %u TCP *\r\n"
             "a=setup:passive\r\n}}}}}",
             core_port);
    request_ok(text, reply, sizeof(reply));
    unsigned ctx = (unsigned)harness_number_after(reply, "C=");
    char core_id[48];
    added_id(reply, core_id, sizeof(core_id));
    snprintf(text, sizeof(text),
             "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
             "TCP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=application 9 TCP *\r\n"
             "a=setup:active\r\n}}}}}",
             ctx);
    request_ok(text, reply, sizeof(reply));
    ck_assert_msg(strstr(reply, "a=fingerprint") == NULL, "a TCP leg has no TLS: %s", reply);
    uint16_t port = local_port(reply, "application");

    /* The UE and the far end run their own TLS; the gateway only relays bytes. */
    int ue_fd = tcp_connect(port);
    int core_fd = tcp_accept(core_listen, 3000);
    ck_assert_msg(core_fd >= 0, "the gateway did not connect to the core (log %s)", log_path);
    SSL_CTX *ue_ctx = tls_ctx(ue.id, false, 0, 0), *far_ctx = tls_ctx(far.id, true, 0, 0);
    struct hs_job job = {.ctx = ue_ctx, .fd = ue_fd, .server = false};
    pthread_t th;
    pthread_create(&th, NULL, hs_thread, &job);
    SSL *far_ssl = tls_handshake(far_ctx, core_fd, true);
    pthread_join(th, NULL);
    ck_assert_ptr_nonnull(far_ssl);
    ck_assert_ptr_nonnull(job.ssl);
    check_peer_fingerprint(job.ssl, far.fingerprint);
    check_peer_fingerprint(far_ssl, ue.fingerprint);

    struct end ue_end, core_end;
    end_init(&ue_end, "UE", job.ssl, ue_fd, 1, 2);
    end_init(&core_end, "far end", far_ssl, core_fd, 2, 1);
    duplex(&ue_end, &core_end, 16 << 20, 60000);
    ck_assert_msg(harness_log_contains(log_path, "TLS up") == false,
                  "the gateway ran TLS on a TCP leg");

    end_fini(&ue_end);
    end_fini(&core_end);
    SSL_free(job.ssl);
    SSL_free(far_ssl);
    SSL_CTX_free(ue_ctx);
    SSL_CTX_free(far_ctx);
    close(ue_fd);
    close(core_fd);
    close(core_listen);
    agw_tls_identity_unref(ue.id);
    agw_tls_identity_unref(far.id);
    stop();
}
END_TEST

static Suite *flows_suite(void)
{
    Suite *s = suite_create("relay_flows");
    TCase *tc = tcase_create("seeds");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 150);
    tcase_add_test(tc, msrp_originating);
    tcase_add_test(tc, msrp_terminating_fingerprint_after_tls_start);
    tcase_add_test(tc, bfcp_originating);
    tcase_add_test(tc, bfcp_terminating_gateway_establishes_tls);
    suite_add_tcase(s, tc);

    tc = tcase_create("tls");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, tls_1_2);
    tcase_add_test(tc, tls_1_3);
    tcase_add_test(tc, several_fingerprints_second_matches);
    tcase_add_test(tc, sha1_fingerprint_only);
    tcase_add_test(tc, sha512_fingerprint_only);
    tcase_add_loop_test(tc, gnutls_cli_as_ue, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("relay");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, mode_gates_access_termination);
    tcase_add_test(tc, mode_gates_core_termination);
    tcase_add_test(tc, ue_close_notify_reaches_core_as_fin_after_every_byte);
    tcase_add_test(tc, core_fin_reaches_ue_as_close_notify_after_every_byte);
    tcase_add_test(tc, half_close_ue_first_core_still_sends);
    tcase_add_test(tc, half_close_core_first_ue_still_sends);
    tcase_add_test(tc, plain_tcp_passes_end_to_end_tls);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(flows_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
