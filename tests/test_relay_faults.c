/* Check suite: the relay under bad input and load, end to end through the real daemon: broken
 * and stalled handshakes, refused certificates and connections, resets, slow readers, Subtract
 * mid-transfer and a thousand concurrent sessions. */
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
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t child = -1;
static char log_path[64];
static uint16_t realm_base;
static struct iq_client *mgc;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- The daemon ---- */

struct daemon_opts {
    unsigned workers;
    unsigned handshake_timeout_ms;
    unsigned access_ports; /* the realm's size; the core realm gets 20 */
    const char *log_level;
};

static const struct daemon_opts small = {1, 10000, 20, "debug"};

static void start_with(const struct daemon_opts *o)
{
    char iq[32], m1[32], access[64], core[64], workers[16], hs[16];
    uint16_t iq_port = harness_free_port(SOCK_DGRAM), mgc_port = harness_free_port(SOCK_DGRAM);
    /* Below the ephemeral range, apart from the other relay suites (plain and ASan may overlap). */
    realm_base = (uint16_t)(28000 + (getpid() % 3) * 1200);
    snprintf(iq, sizeof(iq), "127.0.0.1:%u", iq_port);
    snprintf(m1, sizeof(m1), "127.0.0.1:%u", mgc_port);
    snprintf(access, sizeof(access), "access,127.0.0.1,%u-%u", realm_base,
             realm_base + o->access_ports - 1);
    snprintf(core, sizeof(core), "core,127.0.0.1,%u-%u", realm_base + o->access_ports,
             realm_base + o->access_ports + 19);
    snprintf(workers, sizeof(workers), "%u", o->workers);
    snprintf(hs, sizeof(hs), "%u", o->handshake_timeout_ms);
    snprintf(log_path, sizeof(log_path), "/tmp/test_relay_faults.%d.log", (int)getpid());
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        /* A test killed on its timeout must not leave the daemon behind. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, STDERR_FILENO);
        execl(harness_agw_bin(), harness_agw_bin(), "--iq-listen", iq, "--mgc", m1, "--workers",
              workers, "--realm", access, "--realm", core, "--handshake-timeout-ms", hs,
              "--log-level", o->log_level, (char *)NULL);
        _exit(127);
    }
    ck_assert_int_eq(iq_client_open(m1, iq, NULL, NULL, &mgc), 0);
    ck_assert_msg(iq_client_wait_registration(mgc, harness_ms(5000), NULL, NULL, NULL) == 0,
                  "no registration, see %s", log_path);
    for (int i = 0; i < 200 && !harness_log_contains(log_path, "registered with MGC"); i++)
        harness_sleep_ms(10);
}

static void start(void)
{
    start_with(&small);
}

/* SIGTERM; the Forced ServiceChange is answered; the daemon must exit 0 (ASan: no leak). */
static void stop(void)
{
    if (child > 0) {
        int status = harness_stop_daemon(child, mgc, 15000);
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

/* The daemon's resident memory, KiB. */
static long daemon_rss_kib(void)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)child);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    long kib = -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    fclose(f);
    return kib;
}

/* ---- Iq ---- */

static void request_ok(const char *text, char *out, size_t cap)
{
    unsigned code;
    const char *r = harness_request(mgc, text, &code);
    ck_assert_msg(code == 0, "%s\n-> %s (log %s)", text, r, log_path);
    snprintf(out, cap, "%s", r);
}

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

/* A tlsc/fail Notify on an access termination, with the given cause (NULL: any non-empty). */
static void expect_failure_notify(const char *cause)
{
    const char *n = harness_wait_notify(mgc, 3000);
    ck_assert_msg(strstr(n, "N=ip/access/") != NULL, "no Notify (got '%s', log %s)", n, log_path);
    const char *c = strstr(n, "OE=5{tlsc/fail{cause=\"");
    ck_assert_msg(c != NULL, "%s", n);
    c += strlen("OE=5{tlsc/fail{cause=\"");
    ck_assert_msg(*c != '"', "empty cause in %s", n);
    if (cause != NULL)
        ck_assert_msg(strncmp(c, cause, strlen(cause)) == 0 && c[strlen(cause)] == '"',
                      "cause is not \"%s\": %s", cause, n);
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
    ck_assert_int_ge(fd, 0);
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

/* Connects from source (NULL: any loopback address) to 127.0.0.1:port. */
static int tcp_connect_from(const char *source, uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    if (source != NULL) {
        struct sockaddr_in s = {.sin_family = AF_INET};
        inet_pton(AF_INET, source, &s.sin_addr);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&s, sizeof(s)), 0);
    }
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    set_timeouts(fd, 10);
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect to %u: %s", port,
                  strerror(errno));
    return fd;
}

static int tcp_connect(uint16_t port)
{
    return tcp_connect_from(NULL, port);
}

/* Waits up to timeout_ms for the peer to end the connection (FIN or RST), reading and dropping
 * whatever comes first (a TLS alert). The time it took, or -1 when it stayed open. */
static long wait_closed(int fd, int timeout_ms, int *err)
{
    uint64_t t0 = now_ms(), deadline = t0 + (uint64_t)timeout_ms;
    char buf[4096];
    *err = 0;
    while (now_ms() < deadline) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(deadline - now_ms()) + 1) != 1)
            continue;
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            *err = n == 0 ? 0 : errno;
            return (long)(now_ms() - t0);
        }
    }
    return -1;
}

/* A reset: SO_LINGER 0 then close. */
static void tcp_reset(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

/* ---- The UE ---- */

struct ue {
    struct agw_tls_identity *id;
    char fingerprint[AGW_TLS_FINGERPRINT_TEXT_MAX];
};

static void ue_make(struct ue *ue)
{
    ck_assert_int_eq(agw_tls_identity_generate("ue.test", 30, &ue->id), 0);
    ck_assert_int_eq(agw_tls_fingerprint_format(agw_tls_identity_fingerprint(ue->id),
                                                ue->fingerprint, sizeof(ue->fingerprint)),
                     0);
}

static int accept_any(int ok, X509_STORE_CTX *ctx)
{
    (void)ok;
    (void)ctx;
    return 1;
}

/* The last fatal alert the UE received (-1 none), recorded by the info callback. */
static int alert_idx = -1;

static void on_alert(const SSL *ssl, int where, int ret)
{
    if ((where & SSL_CB_ALERT) && (where & SSL_CB_READ) && ((ret >> 8) & 0xff) == SSL3_AL_FATAL)
        SSL_set_ex_data((SSL *)ssl, alert_idx, (void *)(intptr_t)((ret & 0xff) + 1));
}

static int alert_received(const SSL *ssl)
{
    return (int)(intptr_t)SSL_get_ex_data(ssl, alert_idx) - 1;
}

static SSL_CTX *ue_ctx(const struct agw_tls_identity *id, int max_v)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(ctx);
    if (id != NULL) {
        ck_assert_int_eq(SSL_CTX_use_certificate(ctx, agw_tls_identity_cert(id)), 1);
        ck_assert_int_eq(SSL_CTX_use_PrivateKey(ctx, agw_tls_identity_key(id)), 1);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any);
    if (max_v != 0)
        SSL_CTX_set_max_proto_version(ctx, max_v);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_info_callback(ctx, on_alert);
    if (alert_idx < 0)
        alert_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    return ctx;
}

/* SSL_connect on a blocking socket; the SSL object is returned either way (*ok says). */
static SSL *ue_handshake(SSL_CTX *ctx, int fd, bool *ok)
{
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    *ok = SSL_connect(ssl) == 1;
    ERR_clear_error();
    return ssl;
}

/* ---- Sessions: core leg dialled by the gateway (or reached by the core peer), UE connects ---- */

struct session {
    unsigned ctx;
    char access_id[48], core_id[48];
    uint16_t access_port, core_port; /* core_port: the gateway's, when the core peer connects */
    int core_listen;
    uint16_t core_listen_port;
};

/* Core termination: the gateway dials the core peer (dial) or listens for it; access
 * termination: the UE connects, with the Remote's fingerprint lines fp (NULL: none yet). */
static void session_open(struct session *s, const char *fp, bool dial)
{
    char text[4096], reply[4096];
    memset(s, 0, sizeof(*s));
    s->core_listen = -1;
    if (dial) {
        s->core_listen = tcp_listen(&s->core_listen_port);
        snprintf(text, sizeof(text),
                 "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=message $ "
                 "TCP/MSRP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message %u TCP/MSRP *\r\n"
                 "a=setup:passive\r\n}}}}}",
                 s->core_listen_port);
    } else {
        snprintf(text, sizeof(text),
                 "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=message $ "
                 "TCP/MSRP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message 9 TCP/MSRP *\r\n"
                 "a=setup:active\r\n}}}}}");
    }
    request_ok(text, reply, sizeof(reply));
    s->ctx = (unsigned)harness_number_after(reply, "C=");
    added_id(reply, s->core_id, sizeof(s->core_id));
    s->core_port = (uint16_t)harness_number_after(reply, "m=message ");
    char remote[512] = "";
    if (fp != NULL)
        snprintf(remote, sizeof(remote),
                 ",R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message 9 TCP/TLS/MSRP *\r\na=setup:active\r\n"
                 "%s}",
                 fp);
    snprintf(text, sizeof(text),
             "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=message $ "
             "TCP/TLS/MSRP *\r\na=fingerprint:$\r\n}%s}},E=5{tlsc/fail}}}",
             s->ctx, remote);
    request_ok(text, reply, sizeof(reply));
    added_id(reply, s->access_id, sizeof(s->access_id));
    s->access_port = (uint16_t)harness_number_after(reply, "m=message ");
}

static const char *fp_line(const struct ue *ue)
{
    static char out[256];
    snprintf(out, sizeof(out), "a=fingerprint:%s\r\n", ue->fingerprint);
    return out;
}

/* ---- Byte streams ---- */

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

/* A blocking sender (TLS or plain) of the pattern; sent counts what was taken so far. */
struct sender {
    SSL *ssl;
    int fd;
    uint32_t seed;
    uint64_t bytes; /* UINT64_MAX: until an error */
    uint64_t sent;  /* atomic */
    int err;        /* errno of the failure, 0 when all was sent */
};

static void *send_thread(void *arg)
{
    struct sender *s = arg;
    unsigned char buf[16384];
    uint64_t done = 0;
    while (done < s->bytes) {
        size_t n = s->bytes - done < sizeof(buf) ? (size_t)(s->bytes - done) : sizeof(buf);
        pattern(buf, n, done, s->seed);
        errno = 0;
        int w = s->ssl != NULL ? SSL_write(s->ssl, buf, (int)n)
                               : (int)send(s->fd, buf, n, MSG_NOSIGNAL);
        if (w <= 0) {
            s->err = errno != 0 ? errno : EPROTO;
            ERR_clear_error();
            break;
        }
        done += (uint64_t)w;
        __atomic_store_n(&s->sent, done, __ATOMIC_RELAXED);
    }
    return NULL;
}

/* A blocking plain reader that checks the pattern by hash; stops at bytes, EOF or an error. */
struct receiver {
    int fd;
    uint32_t seed;
    uint64_t bytes;
    uint64_t got; /* atomic */
    int err;      /* 0: ended by EOF or reached bytes; else errno (EAGAIN: timed out) */
    bool eof;
    bool hash_ok;
};

static void *receive_thread(void *arg)
{
    struct receiver *r = arg;
    unsigned char buf[16384], want[16384];
    EVP_MD_CTX *g = EVP_MD_CTX_new(), *w = EVP_MD_CTX_new();
    EVP_DigestInit_ex(g, EVP_sha256(), NULL);
    EVP_DigestInit_ex(w, EVP_sha256(), NULL);
    uint64_t done = 0;
    while (done < r->bytes) {
        size_t cap = r->bytes - done < sizeof(buf) ? (size_t)(r->bytes - done) : sizeof(buf);
        ssize_t n = recv(r->fd, buf, cap, 0);
        if (n <= 0) {
            r->eof = n == 0;
            r->err = n == 0 ? 0 : errno;
            break;
        }
        pattern(want, (size_t)n, done, r->seed);
        EVP_DigestUpdate(g, buf, (size_t)n);
        EVP_DigestUpdate(w, want, (size_t)n);
        done += (uint64_t)n;
        __atomic_store_n(&r->got, done, __ATOMIC_RELAXED);
    }
    unsigned char a[32], b[32];
    EVP_DigestFinal_ex(g, a, NULL);
    EVP_DigestFinal_ex(w, b, NULL);
    EVP_MD_CTX_free(g);
    EVP_MD_CTX_free(w);
    r->hash_ok = memcmp(a, b, 32) == 0;
    return NULL;
}

/* A blocking TLS reader on the UE side; every byte is compared with the pattern. */
struct tls_receiver {
    SSL *ssl;
    uint32_t seed;
    uint64_t bytes, got;
    bool hash_ok;
};

static void *tls_receive_thread(void *arg)
{
    struct tls_receiver *r = arg;
    unsigned char buf[16384], want[16384];
    bool ok = true;
    while (r->got < r->bytes) {
        size_t cap = r->bytes - r->got < sizeof(buf) ? (size_t)(r->bytes - r->got) : sizeof(buf);
        int n = SSL_read(r->ssl, buf, (int)cap);
        if (n <= 0)
            break;
        pattern(want, (size_t)n, r->got, r->seed);
        ok &= memcmp(buf, want, (size_t)n) == 0;
        r->got += (uint64_t)n;
    }
    ERR_clear_error();
    r->hash_ok = ok && r->got == r->bytes;
    return NULL;
}

/* UE -> core, then core -> UE (one SSL object cannot serve a reading and a writing thread at
 * once), each checked by hash at the far end. */
static void transfer(SSL *ssl, int core_fd, uint64_t bytes)
{
    pthread_t a, b;
    struct sender up = {.ssl = ssl, .seed = 11, .bytes = bytes};
    struct receiver core_rx = {.fd = core_fd, .seed = 11, .bytes = bytes};
    pthread_create(&a, NULL, send_thread, &up);
    pthread_create(&b, NULL, receive_thread, &core_rx);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    ck_assert_msg(up.err == 0 && core_rx.got == bytes && core_rx.hash_ok,
                  "UE -> core: sent %llu (errno %d), got %llu (errno %d) (log %s)",
                  (unsigned long long)up.sent, up.err, (unsigned long long)core_rx.got, core_rx.err,
                  log_path);
    struct sender down = {.fd = core_fd, .seed = 12, .bytes = bytes};
    struct tls_receiver ue_rx = {.ssl = ssl, .seed = 12, .bytes = bytes};
    pthread_create(&a, NULL, send_thread, &down);
    pthread_create(&b, NULL, tls_receive_thread, &ue_rx);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    ck_assert_msg(down.err == 0 && ue_rx.hash_ok, "core -> UE: sent %llu, got %llu (log %s)",
                  (unsigned long long)down.sent, (unsigned long long)ue_rx.got, log_path);
}

/* A UE that completes TLS on s and the core connection the gateway then makes. */
struct peers {
    SSL_CTX *ctx;
    SSL *ssl;
    int ue_fd, core_fd;
};

static void peers_up(struct peers *p, const struct session *s, const struct ue *ue)
{
    p->ctx = ue_ctx(ue->id, 0);
    p->ue_fd = tcp_connect(s->access_port);
    bool ok;
    p->ssl = ue_handshake(p->ctx, p->ue_fd, &ok);
    ck_assert_msg(ok, "TLS refused (log %s)", log_path);
    p->core_fd = s->core_listen >= 0 ? tcp_accept(s->core_listen, 3000) : tcp_connect(s->core_port);
    ck_assert_msg(p->core_fd >= 0, "no core connection (log %s)", log_path);
}

static void peers_down(struct peers *p)
{
    SSL_free(p->ssl);
    SSL_CTX_free(p->ctx);
    if (p->ue_fd >= 0)
        close(p->ue_fd);
    if (p->core_fd >= 0)
        close(p->core_fd);
}

/* ---- Broken and stalled handshakes ---- */

START_TEST(garbage_instead_of_client_hello)
{
    start();
    struct ue ue;
    ue_make(&ue);
    struct session s;
    session_open(&s, fp_line(&ue), true);
    int fd = tcp_connect(s.access_port);
    static const char garbage[] = "GET / HTTP/1.1\r\nHost: ims-agw\r\n\r\n";
    ck_assert_int_eq(send(fd, garbage, sizeof(garbage) - 1, MSG_NOSIGNAL),
                     (ssize_t)sizeof(garbage) - 1);
    int err;
    ck_assert_msg(wait_closed(fd, 3000, &err) >= 0, "still open (log %s)", log_path);
    expect_failure_notify(NULL);
    ck_assert_msg(tcp_accept(s.core_listen, 300) < 0, "the core was connected");
    close(fd);
    close(s.core_listen);
    agw_tls_identity_unref(ue.id);
    stop();
}
END_TEST

enum stall { STALL_SILENT, STALL_HALF_HELLO, STALL_HELD };

/* The UE connects and sends nothing, half a ClientHello, or a whole one that the gateway holds
 * because the ALG never gives the fingerprint: the handshake timeout closes each. */
static void run_stall(enum stall how)
{
    struct daemon_opts o = small;
    o.handshake_timeout_ms = 1000;
    start_with(&o);
    struct ue ue;
    ue_make(&ue);
    struct session s;
    session_open(&s, how == STALL_HELD ? NULL : fp_line(&ue), true);
    uint64_t connected_at = now_ms(); /* the gateway's timer starts at its accept */
    int fd = tcp_connect(s.access_port);
    if (how != STALL_SILENT) {
        SSL_CTX *ctx = ue_ctx(ue.id, 0);
        SSL *c = SSL_new(ctx);
        BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
        SSL_set_bio(c, rb, wb);
        ck_assert_int_eq(SSL_connect(c), -1);
        char hello[4096];
        int len = BIO_read(wb, hello, sizeof(hello));
        ck_assert_int_gt(len, 100);
        int part = how == STALL_HALF_HELLO ? len / 2 : len;
        ck_assert_int_eq(send(fd, hello, (size_t)part, MSG_NOSIGNAL), part);
        SSL_free(c);
        SSL_CTX_free(ctx);
    }
    int err;
    uint64_t waiting_from = now_ms();
    long ms = wait_closed(fd, 5000, &err);
    ck_assert_msg(ms >= 0, "still open after 5 s (log %s)", log_path);
    ms += (long)(waiting_from - connected_at);
    ck_assert_msg(ms >= 800 && ms <= 3000, "closed after %ld ms, the timeout is 1000", ms);
    expect_failure_notify("handshake timeout");
    ck_assert_msg(tcp_accept(s.core_listen, 100) < 0, "the core was connected");
    close(fd);
    close(s.core_listen);
    agw_tls_identity_unref(ue.id);
    stop();
}

START_TEST(silent_ue_times_out)
{
    run_stall(STALL_SILENT);
}
END_TEST

START_TEST(half_client_hello_times_out)
{
    run_stall(STALL_HALF_HELLO);
}
END_TEST

START_TEST(held_handshake_times_out)
{
    run_stall(STALL_HELD);
}
END_TEST

/* ---- Refused certificates ---- */

START_TEST(wrong_certificate_tls12_gets_bad_certificate)
{
    start();
    struct ue ue, other;
    ue_make(&ue);
    ue_make(&other);
    struct session s;
    session_open(&s, fp_line(&ue), true);
    SSL_CTX *ctx = ue_ctx(other.id, TLS1_2_VERSION);
    int fd = tcp_connect(s.access_port);
    bool ok;
    SSL *ssl = ue_handshake(ctx, fd, &ok);
    /* TLS 1.2: the server judges the client's certificate before its Finished. */
    ck_assert_msg(!ok, "the wrong certificate was accepted");
    ck_assert_msg(alert_received(ssl) == SSL_AD_BAD_CERTIFICATE, "alert %d, expected %d",
                  alert_received(ssl), SSL_AD_BAD_CERTIFICATE);
    expect_failure_notify("fingerprint mismatch");
    ck_assert_msg(tcp_accept(s.core_listen, 300) < 0, "the core was connected");
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    close(s.core_listen);
    agw_tls_identity_unref(ue.id);
    agw_tls_identity_unref(other.id);
    stop();
}
END_TEST

/* A UE that presents no certificate: refused in TLS 1.3 (certificate_required, after the
 * client's side of the handshake) and in TLS 1.2 (handshake_failure). */
START_TEST(ue_without_certificate)
{
    start();
    struct ue ue;
    ue_make(&ue);
    static const struct {
        int max;
        int alert;
    } cases[] = {{0, 116 /* certificate_required */}, {TLS1_2_VERSION, SSL_AD_HANDSHAKE_FAILURE}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct session s;
        session_open(&s, fp_line(&ue), true);
        SSL_CTX *ctx = ue_ctx(NULL, cases[i].max);
        int fd = tcp_connect(s.access_port);
        bool ok;
        SSL *ssl = ue_handshake(ctx, fd, &ok);
        if (ok) {
            char b;
            ck_assert_int_le(SSL_read(ssl, &b, 1), 0);
            ERR_clear_error();
        }
        ck_assert_msg(alert_received(ssl) == cases[i].alert, "case %zu: alert %d, expected %d", i,
                      alert_received(ssl), cases[i].alert);
        expect_failure_notify("no peer certificate");
        ck_assert_msg(tcp_accept(s.core_listen, 200) < 0, "the core was connected");
        SSL_free(ssl);
        SSL_CTX_free(ctx);
        close(fd);
        close(s.core_listen);
    }
    agw_tls_identity_unref(ue.id);
    stop();
}
END_TEST

/* Terminating flow: the fingerprint that finally arrives in the Modify is not the UE's: the
 * held handshake is refused then, with a Notify, and the core is never dialled. */
START_TEST(held_handshake_refused_by_late_fingerprint)
{
    start();
    struct ue ue, other;
    ue_make(&ue);
    ue_make(&other);
    struct session s;
    session_open(&s, NULL, true);
    SSL_CTX *ctx = ue_ctx(ue.id, 0);
    int fd = tcp_connect(s.access_port);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    set_nonblocking(fd, true);
    ck_assert_int_eq(SSL_connect(ssl), -1); /* the ClientHello is out; the gateway holds */
    ck_assert_int_eq(SSL_get_error(ssl, -1), SSL_ERROR_WANT_READ);
    harness_sleep_ms(300);
    ck_assert_int_eq(SSL_connect(ssl), -1);
    ck_assert_int_eq(SSL_get_error(ssl, -1), SSL_ERROR_WANT_READ); /* no ServerHello yet */
    ERR_clear_error();
    char text[1024], reply[2048];
    snprintf(text, sizeof(text),
             "C=%u{MF=%s{M{ST=1{R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message 9 TCP/TLS/MSRP *\r\n"
             "a=setup:active\r\n%s}}}}}",
             s.ctx, s.access_id, fp_line(&other));
    request_ok(text, reply, sizeof(reply));
    set_nonblocking(fd, false);
    bool ok = SSL_connect(ssl) == 1;
    if (ok) {
        char b;
        ck_assert_int_le(SSL_read(ssl, &b, 1), 0);
    }
    ERR_clear_error();
    ck_assert_msg(alert_received(ssl) == SSL_AD_BAD_CERTIFICATE, "alert %d", alert_received(ssl));
    expect_failure_notify("fingerprint mismatch");
    ck_assert_msg(tcp_accept(s.core_listen, 300) < 0, "the core was connected");
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    close(s.core_listen);
    agw_tls_identity_unref(ue.id);
    agw_tls_identity_unref(other.id);
    stop();
}
END_TEST

/* BFCP terminating with the establish signal: the gateway is the TLS client on the connection UE
 * B opened, and holds at UE B's certificate until the Modify; a wrong fingerprint then refuses
 * UE B with bad_certificate, from the client side this time. */
START_TEST(establish_signal_refuses_wrong_ue)
{
    start();
    struct ue ue, other;
    ue_make(&ue);
    ue_make(&other);
    uint16_t core_port;
    int core_listen = tcp_listen(&core_port);
    char text[2048], reply[4096];
    request_ok("C=${A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\n"
               "m=application $ TCP/TLS/BFCP *\r\na=fingerprint:$\r\n}}},E=5{tlsc/fail},"
               "SG{tlsc/est}}}",
               reply, sizeof(reply));
    unsigned ctx = (unsigned)harness_number_after(reply, "C=");
    char access_id[48];
    added_id(reply, access_id, sizeof(access_id));
    uint16_t port = (uint16_t)harness_number_after(reply, "m=application ");
    snprintf(text, sizeof(text),
             "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
             "TCP/BFCP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=application %u TCP/BFCP *\r\n"
             "a=setup:passive\r\n}}}}}",
             ctx, core_port);
    request_ok(text, reply, sizeof(reply));

    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(sctx, agw_tls_identity_cert(ue.id));
    SSL_CTX_use_PrivateKey(sctx, agw_tls_identity_key(ue.id));
    SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, accept_any);
    SSL_CTX_set_info_callback(sctx, on_alert);
    if (alert_idx < 0)
        alert_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    int fd = tcp_connect(port);
    SSL *ssl = SSL_new(sctx);
    SSL_set_fd(ssl, fd);
    set_nonblocking(fd, true);
    /* UE B answers the gateway's ClientHello, then waits for the gateway's certificate. */
    uint64_t deadline = now_ms() + 2000;
    int rc;
    while ((rc = SSL_accept(ssl)) != 1 && SSL_get_error(ssl, rc) == SSL_ERROR_WANT_READ &&
           now_ms() < deadline) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        poll(&pfd, 1, 100);
    }
    ERR_clear_error();
    ck_assert_msg(rc != 1, "the gateway finished TLS before it knew UE B's fingerprint");
    ck_assert_msg(tcp_accept(core_listen, 200) < 0, "the core was connected during the hold");
    snprintf(text, sizeof(text),
             "C=%u{MF=%s{M{ST=1{R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=application 9 TCP/TLS/BFCP "
             "*\r\na=setup:active\r\n%s}}}}}",
             ctx, access_id, fp_line(&other));
    request_ok(text, reply, sizeof(reply));
    set_nonblocking(fd, false);
    ck_assert_int_ne(SSL_accept(ssl), 1);
    ERR_clear_error();
    ck_assert_msg(alert_received(ssl) == SSL_AD_BAD_CERTIFICATE, "alert %d", alert_received(ssl));
    expect_failure_notify("fingerprint mismatch");
    ck_assert_msg(tcp_accept(core_listen, 300) < 0, "the core was connected");
    SSL_free(ssl);
    SSL_CTX_free(sctx);
    close(fd);
    close(core_listen);
    agw_tls_identity_unref(ue.id);
    agw_tls_identity_unref(other.id);
    stop();
}
END_TEST

/* ---- Resets and truncation ---- */

START_TEST(ue_reset_mid_transfer_reaches_core)
{
    start();
    struct ue ue;
    ue_make(&ue);
    struct session s;
    session_open(&s, fp_line(&ue), true);
    struct peers p;
    peers_up(&p, &s, &ue);
    set_timeouts(p.core_fd, 5);
    pthread_t th;
    struct receiver rx = {.fd = p.core_fd, .seed = 11, .bytes = UINT64_MAX};
    pthread_create(&th, NULL, receive_thread, &rx);
    /* The UE sends 4 MiB of a larger transfer, then resets. */
    struct sender tx = {.ssl = p.ssl, .seed = 11, .bytes = 4 << 20};
    send_thread(&tx);
    ck_assert_int_eq(tx.err, 0);
    tcp_reset(p.ue_fd);
    p.ue_fd = -1;
    pthread_join(th, NULL);
    ck_assert_msg(rx.eof || rx.err == ECONNRESET,
                  "the core peer saw neither a reset nor an end: errno %d after %llu bytes "
                  "(EAGAIN: nothing for 5 s; log %s)",
                  rx.err, (unsigned long long)rx.got, log_path);
    ck_assert_msg(rx.got <= 4 << 20 && rx.hash_ok, "core got %llu bytes",
                  (unsigned long long)rx.got);
    peers_down(&p);
    close(s.core_listen);

    /* The daemon keeps serving: a second session carries bytes both ways. */
    session_open(&s, fp_line(&ue), true);
    peers_up(&p, &s, &ue);
    transfer(p.ssl, p.core_fd, 1 << 20);
    peers_down(&p);
    close(s.core_listen);
    agw_tls_identity_unref(ue.id);
    stop();
}
END_TEST

/* A UE that closes TCP without close_notify (a truncation): the core peer must not take the
 * partial stream for a complete one, so it sees a reset, not an end. */
START_TEST(ue_truncation_resets_core)
{
    start();
    struct ue ue;
    ue_make(&ue);
    struct session s;
    session_open(&s, fp_line(&ue), true);
    struct peers p;
    peers_up(&p, &s, &ue);
    set_timeouts(p.core_fd, 5);
    pthread_t th;
    struct receiver rx = {.fd = p.core_fd, .seed = 11, .bytes = UINT64_MAX};
    pthread_create(&th, NULL, receive_thread, &rx);
    struct sender tx = {.ssl = p.ssl, .seed = 11, .bytes = 1 << 20};
    send_thread(&tx);
    ck_assert_int_eq(tx.err, 0);
    shutdown(p.ue_fd, SHUT_WR); /* FIN without close_notify (close() could send a RST) */
    pthread_join(th, NULL);
    ck_assert_msg(rx.err == ECONNRESET,
                  "the core peer saw no reset: %s, errno %d after %llu bytes (EAGAIN: nothing "
                  "for 5 s; log %s)",
                  rx.eof ? "EOF" : "no EOF", rx.err, (unsigned long long)rx.got, log_path);
    ck_assert_msg(rx.hash_ok, "the core got wrong bytes before the reset");
    expect_failure_notify(NULL);
    peers_down(&p);
    close(s.core_listen);
    agw_tls_identity_unref(ue.id);
    stop();
}
END_TEST

/* The core peer cannot be reached (connection refused): the UE's verified connection is cut,
 * not left open and silent (regression test). */
START_TEST(core_unreachable_resets_ue)
{
    start();
    struct ue ue;
    ue_make(&ue);
    struct session s;
    session_open(&s, fp_line(&ue), true);
    close(s.core_listen); /* the core's port refuses connections from now on */
    SSL_CTX *ctx = ue_ctx(ue.id, 0);
    int fd = tcp_connect(s.access_port);
    bool ok;
    SSL *ssl = ue_handshake(ctx, fd, &ok);
    ck_assert_msg(ok, "TLS refused (log %s)", log_path);
    int err;
    ck_assert_msg(wait_closed(fd, 5000, &err) >= 0,
                  "the UE's connection is still open 5 s after the core refused (log %s)",
                  log_path);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    agw_tls_identity_unref(ue.id);
    stop();
}
END_TEST

/* The UE reconnects after a reset and is served again, with a fresh TLS session: nothing of the
 * first connection leaks or carries over (regression test; ASan checks the leak). */
START_TEST(ue_reconnects_after_reset)
{
    start();
    struct ue ue;
    ue_make(&ue);
    struct session s;
    session_open(&s, fp_line(&ue), true);
    struct peers p;
    peers_up(&p, &s, &ue);
    transfer(p.ssl, p.core_fd, 1 << 20);
    tcp_reset(p.ue_fd);
    p.ue_fd = -1;
    int err;
    ck_assert_msg(wait_closed(p.core_fd, 3000, &err) >= 0, "the reset did not reach the core");
    peers_down(&p);
    /* The same UE comes back to the same port: served afresh (or refused), never half. */
    int fd = tcp_connect(s.access_port);
    SSL_CTX *ctx = ue_ctx(ue.id, 0);
    bool ok;
    SSL *ssl = ue_handshake(ctx, fd, &ok);
    int core_fd = ok ? tcp_accept(s.core_listen, 3000) : -1;
    if (ok) {
        ck_assert_msg(core_fd >= 0, "served again, but the core was not dialled");
        transfer(ssl, core_fd, 1 << 20);
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    if (core_fd >= 0)
        close(core_fd);
    close(s.core_listen);
    agw_tls_identity_unref(ue.id);
    stop();
}
END_TEST

/* One refused handshake does not make the port useless: each later bad connection is refused
 * and closed in turn (regression test). */
START_TEST(retry_after_refused_handshake)
{
    start();
    struct ue ue;
    ue_make(&ue);
    struct session s;
    session_open(&s, fp_line(&ue), true);
    static const char garbage[] = "GET / HTTP/1.1\r\nHost: ims-agw\r\n\r\n";
    for (int i = 0; i < 3; i++) {
        int fd = tcp_connect(s.access_port);
        ck_assert_int_eq(send(fd, garbage, sizeof(garbage) - 1, MSG_NOSIGNAL),
                         (ssize_t)sizeof(garbage) - 1);
        int err;
        long ms = wait_closed(fd, 3000, &err);
        close(fd);
        ck_assert_msg(ms >= 0, "attempt %d: still open after 3 s (log %s)", i + 1, log_path);
    }
    ck_assert_msg(tcp_accept(s.core_listen, 100) < 0, "the core was connected");
    close(s.core_listen);
    agw_tls_identity_unref(ue.id);
    stop();
}
END_TEST

/* ---- Backpressure ---- */

START_TEST(slow_core_reader_bounds_memory)
{
    start();
    struct ue ue;
    ue_make(&ue);
    long rss0 = daemon_rss_kib();
    struct session s;
    session_open(&s, fp_line(&ue), true);
    struct peers p;
    peers_up(&p, &s, &ue);
    set_timeouts(p.ue_fd, 60);
    const uint64_t total = 200ull << 20;
    pthread_t th;
    struct sender tx = {.ssl = p.ssl, .seed = 11, .bytes = total};
    pthread_create(&th, NULL, send_thread, &tx);
    /* The core peer does not read: the UE must block once the buffers on the way are full. */
    uint64_t last = 0, t0 = now_ms();
    bool stalled = false;
    while (now_ms() - t0 < 20000 && !stalled) {
        harness_sleep_ms(500);
        uint64_t sent = __atomic_load_n(&tx.sent, __ATOMIC_RELAXED);
        stalled = sent == last && sent > 0;
        last = sent;
    }
    ck_assert_msg(stalled && last < total / 4, "the UE was not held back: %llu bytes taken",
                  (unsigned long long)last);
    long rss = daemon_rss_kib();
    ck_assert_msg(rss - rss0 < 64 * 1024, "daemon RSS grew by %ld KiB (from %ld KiB)", rss - rss0,
                  rss0);
    /* Now the core reads everything, and every byte is right. */
    struct receiver rx = {.fd = p.core_fd, .seed = 11, .bytes = total};
    receive_thread(&rx);
    pthread_join(th, NULL);
    ck_assert_msg(tx.err == 0 && rx.got == total && rx.hash_ok, "sent %llu (errno %d), got %llu",
                  (unsigned long long)tx.sent, tx.err, (unsigned long long)rx.got);
    fprintf(stderr, "slow reader: UE held at %llu bytes, daemon RSS %ld -> %ld KiB\n",
            (unsigned long long)last, rss0, rss);
    peers_down(&p);
    close(s.core_listen);
    agw_tls_identity_unref(ue.id);
    stop();
}
END_TEST

/* ---- Subtract mid-transfer ---- */

static bool port_bindable(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(fd, 1) == 0;
    close(fd);
    return ok;
}

START_TEST(subtract_during_transfer)
{
    start();
    struct ue ue;
    ue_make(&ue);
    struct session s;
    session_open(&s, fp_line(&ue), false); /* both gateway ports listen */
    struct peers p;
    peers_up(&p, &s, &ue);
    set_timeouts(p.ue_fd, 5);
    set_timeouts(p.core_fd, 5);
    pthread_t a, b;
    struct sender tx = {.ssl = p.ssl, .seed = 11, .bytes = UINT64_MAX};
    struct receiver rx = {.fd = p.core_fd, .seed = 11, .bytes = UINT64_MAX};
    pthread_create(&a, NULL, send_thread, &tx);
    pthread_create(&b, NULL, receive_thread, &rx);
    for (int i = 0; i < 300 && __atomic_load_n(&rx.got, __ATOMIC_RELAXED) < (8 << 20); i++)
        harness_sleep_ms(10);
    ck_assert_msg(__atomic_load_n(&rx.got, __ATOMIC_RELAXED) >= (8 << 20), "no transfer");
    char text[64], reply[4096];
    snprintf(text, sizeof(text), "C=%u{S=*}", s.ctx);
    uint64_t t0 = now_ms();
    request_ok(text, reply, sizeof(reply));
    ck_assert_msg(now_ms() - t0 < 2000, "Subtract took %llu ms",
                  (unsigned long long)(now_ms() - t0));
    /* The ports are free at once. */
    ck_assert_msg(port_bindable(s.access_port), "access port %u still taken", s.access_port);
    ck_assert_msg(port_bindable(s.core_port), "core port %u still taken", s.core_port);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    ck_assert_msg(tx.err != 0 && tx.err != EAGAIN, "the UE was not cut off: errno %d", tx.err);
    ck_assert_msg(rx.eof || rx.err == ECONNRESET, "the core peer was not cut off: errno %d",
                  rx.err);
    ck_assert_msg(rx.hash_ok, "the core got wrong bytes before the end");
    /* The context is gone. */
    unsigned code;
    snprintf(text, sizeof(text), "C=%u{AV=*{AT{}}}", s.ctx);
    harness_request(mgc, text, &code);
    ck_assert_uint_eq(code, 411);
    peers_down(&p);
    agw_tls_identity_unref(ue.id);
    stop();
}
END_TEST

/* Subtract while the gateway holds the UE's handshake (terminating flow, no fingerprint yet):
 * the UE's connection is closed, the port is free, nothing leaks (ASan at exit). */
START_TEST(subtract_during_held_handshake)
{
    start();
    struct ue ue;
    ue_make(&ue);
    struct session s;
    session_open(&s, NULL, true);
    SSL_CTX *ctx = ue_ctx(ue.id, 0);
    int fd = tcp_connect(s.access_port);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    set_nonblocking(fd, true);
    ck_assert_int_eq(SSL_connect(ssl), -1);
    ERR_clear_error();
    harness_sleep_ms(300);
    char text[64], reply[4096];
    snprintf(text, sizeof(text), "C=%u{S=*}", s.ctx);
    request_ok(text, reply, sizeof(reply));
    int err;
    ck_assert_msg(wait_closed(fd, 2000, &err) >= 0, "the held UE was not closed");
    ck_assert_msg(port_bindable(s.access_port), "access port %u still taken", s.access_port);
    ck_assert_msg(tcp_accept(s.core_listen, 100) < 0, "the core was connected");
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    close(s.core_listen);
    agw_tls_identity_unref(ue.id);
    stop();
}
END_TEST

/* ---- Refused connections ---- */

/* While a connection is held the port does not listen (an idle session costs two descriptors,
 * not three): a second connection is refused at once, by the kernel. */
START_TEST(second_connection_refused)
{
    start();
    struct ue ue;
    ue_make(&ue);
    struct session s;
    session_open(&s, fp_line(&ue), true);
    struct peers p;
    peers_up(&p, &s, &ue);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(s.access_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int err = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 ? 0 : errno;
    close(fd);
    ck_assert_msg(err == ECONNREFUSED, "a second connection: %s (log %s)",
                  err == 0 ? "accepted" : strerror(err), log_path);
    /* The first one is untouched. */
    transfer(p.ssl, p.core_fd, 1 << 20);
    peers_down(&p);
    close(s.core_listen);
    agw_tls_identity_unref(ue.id);
    stop();
}
END_TEST

START_TEST(connection_from_other_address_refused)
{
    start();
    struct ue ue;
    ue_make(&ue);
    struct session s;
    session_open(&s, fp_line(&ue), true); /* the Remote says 127.0.0.1 */
    int fd = tcp_connect_from("127.0.0.2", s.access_port);
    int err;
    ck_assert_msg(wait_closed(fd, 3000, &err) >= 0, "a connection from 127.0.0.2 stayed open");
    close(fd);
    ck_assert_msg(harness_log_contains(log_path, "not the Remote's"), "see %s", log_path);
    ck_assert_msg(tcp_accept(s.core_listen, 200) < 0, "the core was connected");
    /* The listener still waits for the right UE. */
    struct peers p;
    peers_up(&p, &s, &ue);
    transfer(p.ssl, p.core_fd, 1 << 20);
    peers_down(&p);
    close(s.core_listen);
    agw_tls_identity_unref(ue.id);
    stop();
}
END_TEST

/* ---- A thousand concurrent sessions, one poll loop ---- */

#define MANY 1000

enum many_state { M_CONNECTING, M_HANDSHAKE, M_UP, M_DONE };

struct many {
    struct session s;
    int ue_fd, core_fd;
    SSL *ssl;
    enum many_state state;
    uint64_t up_tx, up_rx, down_tx, down_rx;
    size_t wpend;
    bool ue_wants_out, core_wants_out;
    bool bad;
    char why[96];
};

static uint64_t many_bytes(void)
{
    const char *kib = getenv("AGW_RELAY_MANY_KIB");
    return (uint64_t)(kib != NULL && kib[0] != '\0' ? strtoul(kib, NULL, 10) : 256) << 10;
}

static void many_fail(struct many *m, const char *why)
{
    if (!m->bad)
        snprintf(m->why, sizeof(m->why), "%s (state %d, errno %d)", why, m->state, errno);
    m->bad = true;
}

static bool check_bytes(const unsigned char *buf, size_t n, uint64_t offset, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        if (buf[i] != pattern_byte(offset + i, seed))
            return false;
    return true;
}

/* One step of a session's UE side: connect, handshake, send up, receive down. */
static void many_ue(struct many *m, unsigned idx, uint64_t bytes, int revents)
{
    unsigned char buf[16384];
    if (m->state == M_CONNECTING) {
        if ((revents & (POLLOUT | POLLERR | POLLHUP)) == 0)
            return;
        int e = 0;
        socklen_t len = sizeof(e);
        getsockopt(m->ue_fd, SOL_SOCKET, SO_ERROR, &e, &len);
        if (e != 0) {
            errno = e;
            many_fail(m, "connect failed");
            return;
        }
        m->state = M_HANDSHAKE;
    }
    if (m->state == M_HANDSHAKE) {
        int r = SSL_do_handshake(m->ssl);
        if (r != 1) {
            int err = SSL_get_error(m->ssl, r);
            m->ue_wants_out = err == SSL_ERROR_WANT_WRITE;
            if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
                many_fail(m, "TLS handshake failed");
            ERR_clear_error();
            return;
        }
        m->state = M_UP;
    }
    m->ue_wants_out = false;
    while (m->up_tx < bytes) {
        size_t n =
            m->wpend ? m->wpend : (bytes - m->up_tx < sizeof(buf) ? bytes - m->up_tx : sizeof(buf));
        pattern(buf, n, m->up_tx, 2 * idx + 1);
        size_t w = 0;
        int r = SSL_write_ex(m->ssl, buf, n, &w);
        if (r == 1) {
            m->up_tx += w;
            m->wpend = 0;
            continue;
        }
        m->wpend = n;
        int err = SSL_get_error(m->ssl, r);
        m->ue_wants_out = err == SSL_ERROR_WANT_WRITE;
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
            many_fail(m, "UE write failed");
        ERR_clear_error();
        break;
    }
    while (m->down_rx < bytes && !m->bad) {
        size_t got = 0;
        int r = SSL_read_ex(m->ssl, buf, sizeof(buf), &got);
        if (r != 1) {
            int err = SSL_get_error(m->ssl, r);
            if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
                many_fail(m, "UE read failed");
            ERR_clear_error();
            break;
        }
        if (m->down_rx + got > bytes || !check_bytes(buf, got, m->down_rx, 2 * idx + 2))
            many_fail(m, "wrong bytes at the UE");
        m->down_rx += got;
    }
}

static void many_core(struct many *m, unsigned idx, uint64_t bytes)
{
    unsigned char buf[16384];
    m->core_wants_out = false;
    while (m->down_tx < bytes) {
        size_t n = bytes - m->down_tx < sizeof(buf) ? bytes - m->down_tx : sizeof(buf);
        pattern(buf, n, m->down_tx, 2 * idx + 2);
        ssize_t w = send(m->core_fd, buf, n, MSG_NOSIGNAL);
        if (w > 0) {
            m->down_tx += (uint64_t)w;
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            m->core_wants_out = true;
        else
            many_fail(m, "core write failed");
        break;
    }
    while (m->up_rx < bytes && !m->bad) {
        ssize_t n = recv(m->core_fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
                many_fail(m, "core read ended");
            break;
        }
        if (m->up_rx + (uint64_t)n > bytes || !check_bytes(buf, (size_t)n, m->up_rx, 2 * idx + 1))
            many_fail(m, "wrong bytes at the core");
        m->up_rx += (uint64_t)n;
    }
}

START_TEST(thousand_concurrent_sessions)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    ck_assert_msg(rl.rlim_cur >= 4 * MANY + 100, "RLIMIT_NOFILE hard limit %llu is too low",
                  (unsigned long long)rl.rlim_max);
    struct daemon_opts o = {2, 60000, MANY + 50, "info"};
    start_with(&o);
    struct ue ue;
    ue_make(&ue);
    const uint64_t bytes = many_bytes();
    struct many *ms = calloc(MANY, sizeof(*ms));
    ck_assert_ptr_nonnull(ms);
    uint64_t t0 = now_ms();
    for (unsigned i = 0; i < MANY; i++) {
        session_open(&ms[i].s, fp_line(&ue), true);
        set_nonblocking(ms[i].s.core_listen, true);
        ms[i].core_fd = -1;
    }
    uint64_t t_setup = now_ms() - t0;
    SSL_CTX *ctx = ue_ctx(ue.id, 0);
    for (unsigned i = 0; i < MANY; i++) {
        struct many *m = &ms[i];
        m->ue_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        ck_assert_int_ge(m->ue_fd, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons(m->s.access_port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int rc = connect(m->ue_fd, (struct sockaddr *)&a, sizeof(a));
        ck_assert_msg(rc == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
        m->ssl = SSL_new(ctx);
        SSL_set_fd(m->ssl, m->ue_fd);
        SSL_set_connect_state(m->ssl);
        m->state = M_CONNECTING;
    }
    struct pollfd *pfd = calloc(2 * MANY, sizeof(*pfd));
    unsigned *owner = calloc(2 * MANY, sizeof(*owner));
    ck_assert(pfd != NULL && owner != NULL);
    uint64_t deadline = now_ms() + 100000;
    unsigned done = 0, bad = 0;
    while (done + bad < MANY && now_ms() < deadline) {
        nfds_t n = 0;
        for (unsigned i = 0; i < MANY; i++) {
            struct many *m = &ms[i];
            if (m->state == M_DONE || m->bad)
                continue;
            short ue_ev = POLLOUT;
            if (m->state != M_CONNECTING)
                ue_ev = (short)((m->state == M_HANDSHAKE || m->down_rx < bytes ? POLLIN : 0) |
                                (m->ue_wants_out ? POLLOUT : 0));
            pfd[n] = (struct pollfd){.fd = m->ue_fd, .events = ue_ev};
            owner[n++] = 2 * i;
            if (m->core_fd >= 0 || m->state == M_UP) {
                int fd = m->core_fd >= 0 ? m->core_fd : m->s.core_listen;
                short ev = m->core_fd >= 0 ? (short)((m->up_rx < bytes ? POLLIN : 0) |
                                                     (m->core_wants_out ? POLLOUT : 0))
                                           : POLLIN;
                pfd[n] = (struct pollfd){.fd = fd, .events = ev};
                owner[n++] = 2 * i + 1;
            }
        }
        if (poll(pfd, n, 200) < 0)
            break;
        for (nfds_t k = 0; k < n; k++) {
            if (pfd[k].revents == 0)
                continue;
            struct many *m = &ms[owner[k] / 2];
            unsigned idx = owner[k] / 2;
            if (owner[k] % 2 == 0) {
                many_ue(m, idx, bytes, pfd[k].revents);
            } else if (m->core_fd < 0) {
                m->core_fd = accept(m->s.core_listen, NULL, NULL);
                if (m->core_fd >= 0) {
                    set_nonblocking(m->core_fd, true);
                    many_core(m, idx, bytes);
                }
            } else {
                many_core(m, idx, bytes);
            }
            if (m->state == M_UP && !m->bad && m->up_tx == bytes && m->up_rx == bytes &&
                m->down_tx == bytes && m->down_rx == bytes) {
                m->state = M_DONE;
                done++;
            } else if (m->bad && m->state != M_DONE) {
                m->state = M_DONE;
                bad++;
            }
        }
    }
    uint64_t t_relay = now_ms() - t0 - t_setup;
    unsigned first_bad = MANY;
    for (unsigned i = 0; i < MANY && first_bad == MANY; i++)
        if (ms[i].bad || ms[i].state != M_DONE)
            first_bad = i;
    fprintf(stderr, "%u sessions: Iq set-up %llu ms, TLS and %llu KiB each way %llu ms\n", MANY,
            (unsigned long long)t_setup, (unsigned long long)(bytes >> 10),
            (unsigned long long)t_relay);
    if (first_bad < MANY) {
        struct many *m = &ms[first_bad];
        ck_abort_msg("%u of %u sessions complete; session %u: %s, up %llu/%llu, down %llu/%llu "
                     "(log %s)",
                     done, MANY, first_bad, m->bad ? m->why : "timed out",
                     (unsigned long long)m->up_rx, (unsigned long long)m->up_tx,
                     (unsigned long long)m->down_rx, (unsigned long long)m->down_tx, log_path);
    }
    for (unsigned i = 0; i < MANY; i++) {
        SSL_free(ms[i].ssl);
        close(ms[i].ue_fd);
        if (ms[i].core_fd >= 0)
            close(ms[i].core_fd);
        close(ms[i].s.core_listen);
    }
    free(pfd);
    free(owner);
    free(ms);
    SSL_CTX_free(ctx);
    agw_tls_identity_unref(ue.id);
    stop();
}
END_TEST

static Suite *faults_suite(void)
{
    Suite *s = suite_create("relay_faults");
    TCase *tc = tcase_create("handshake");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, garbage_instead_of_client_hello);
    tcase_add_test(tc, silent_ue_times_out);
    tcase_add_test(tc, half_client_hello_times_out);
    tcase_add_test(tc, held_handshake_times_out);
    tcase_add_test(tc, wrong_certificate_tls12_gets_bad_certificate);
    tcase_add_test(tc, ue_without_certificate);
    tcase_add_test(tc, held_handshake_refused_by_late_fingerprint);
    tcase_add_test(tc, establish_signal_refuses_wrong_ue);
    suite_add_tcase(s, tc);

    tc = tcase_create("connections");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, ue_reset_mid_transfer_reaches_core);
    tcase_add_test(tc, ue_truncation_resets_core);
    tcase_add_test(tc, ue_reconnects_after_reset);
    tcase_add_test(tc, retry_after_refused_handshake);
    tcase_add_test(tc, core_unreachable_resets_ue);
    tcase_add_test(tc, slow_core_reader_bounds_memory);
    tcase_add_test(tc, subtract_during_transfer);
    tcase_add_test(tc, subtract_during_held_handshake);
    tcase_add_test(tc, second_connection_refused);
    tcase_add_test(tc, connection_from_other_address_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("load");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 150);
    tcase_add_test(tc, thousand_concurrent_sessions);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(faults_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
