/* Check suite: e2ae end to end on loopback — the real daemon driven over Iq, a UE that speaks
 * TLS with its own certificate, a plain core peer; bytes checked by hash at the far end. */
#include "h248/h248.h"
#include "tests/harness.h"
#include "tls/cert.h"
#include "tls/fingerprint.h"
#include "tools/iq_client.h"

#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
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
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t child = -1;
static char log_path[64];
static uint16_t iq_port, mgc_port, realm_base;
static struct iq_client *mgc;
static const char *workers = "1"; /* --workers of the next start */

static size_t transfer_bytes(void)
{
    const char *mib = getenv("AGW_RELAY_TEST_MIB");
    return (size_t)(mib != NULL ? strtoul(mib, NULL, 10) : 100) << 20;
}

/* Starts the daemon; conf (may be NULL) is given with -c before the common options. */
static void start_conf(const char *conf)
{
    char iq[32], m1[32], access[64], core[64];
    iq_port = harness_free_port(SOCK_DGRAM);
    mgc_port = harness_free_port(SOCK_DGRAM);
    /* Below the kernel's ephemeral ports (32768+), where free_port finds the Iq ports. */
    realm_base = (uint16_t)(16000 + (getpid() % 100) * 40);
    snprintf(iq, sizeof(iq), "127.0.0.1:%u", iq_port);
    snprintf(m1, sizeof(m1), "127.0.0.1:%u", mgc_port);
    snprintf(access, sizeof(access), "access,127.0.0.1,%u-%u", realm_base, realm_base + 19);
    snprintf(core, sizeof(core), "core,127.0.0.1,%u-%u", realm_base + 20, realm_base + 39);
    snprintf(log_path, sizeof(log_path), "/tmp/test_relay.%d.log", (int)getpid());
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, STDERR_FILENO);
        if (conf != NULL)
            execl(harness_agw_bin(), harness_agw_bin(), "-c", conf, "--iq-listen", iq, "--mgc", m1,
                  "--workers", workers, "--handshake-timeout-ms", "1500", "--log-level", "debug",
                  (char *)NULL);
        else
            execl(harness_agw_bin(), harness_agw_bin(), "--iq-listen", iq, "--mgc", m1, "--workers",
                  workers, "--realm", access, "--realm", core, "--handshake-timeout-ms", "1500",
                  "--log-level", "debug", (char *)NULL);
        _exit(127);
    }
    ck_assert_int_eq(iq_client_open(m1, iq, NULL, NULL, &mgc), 0);
    ck_assert_int_eq(iq_client_wait_registration(mgc, 5000, NULL, NULL, NULL), 0);
    for (int i = 0; i < 200 && !harness_log_contains(log_path, "registered with MGC"); i++)
        harness_sleep_ms(10);
}

static void start(void)
{
    start_conf(NULL);
}

static void stop(void)
{
    if (child > 0) {
        kill(child, SIGTERM);
        int status = -1;
        for (int i = 0; i < 1000 && waitpid(child, &status, WNOHANG) != child; i++)
            harness_sleep_ms(10);
        if (!WIFEXITED(status)) {
            kill(child, SIGKILL);
            waitpid(child, &status, 0);
        }
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

/* The reply to text, compact (static buffer); *code gets the first error code or 0. */
/* ---- The UE: a TLS client with its own certificate ---- */

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
    return 1; /* self-signed on both sides: the fingerprints are the check */
}

/* Connects to the gateway and completes a TLS handshake; NULL when it is refused. */
static SSL *ue_connect(struct ue *ue, uint16_t port, int max_version, int *fd_out)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_use_certificate(ctx, agw_tls_identity_cert(ue->id));
    SSL_CTX_use_PrivateKey(ctx, agw_tls_identity_key(ue->id));
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any);
    if (max_version != 0)
        SSL_CTX_set_max_proto_version(ctx, max_version);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
        SSL_free(ssl);
        close(fd);
        return NULL;
    }
    *fd_out = fd;
    return ssl;
}

struct ue_job {
    struct ue *ue;
    uint16_t port;
    SSL *ssl;
    int fd;
};

static void *ue_connect_job(void *arg)
{
    struct ue_job *job = arg;
    job->ssl = ue_connect(job->ue, job->port, 0, &job->fd);
    return NULL;
}

/* The gateway's certificate as the UE saw it must be the one whose fingerprint the Add reply
 * carried. */
static void ue_check_gateway(SSL *ssl, const char *add_reply)
{
    X509 *cert = SSL_get1_peer_certificate(ssl);
    ck_assert_ptr_nonnull(cert);
    struct agw_tls_fingerprint fp;
    char text[AGW_TLS_FINGERPRINT_TEXT_MAX], want[AGW_TLS_FINGERPRINT_TEXT_MAX + 16];
    ck_assert_int_eq(agw_tls_fingerprint_of(cert, AGW_TLS_HASH_SHA256, &fp), 0);
    agw_tls_fingerprint_format(&fp, text, sizeof(text));
    snprintf(want, sizeof(want), "a=fingerprint:%s", text);
    ck_assert_msg(strstr(add_reply, want) != NULL, "%s not in %s", want, add_reply);
    X509_free(cert);
}

/* ---- The core peer: a plain TCP listener that hashes what it reads and can send ---- */

struct core_peer {
    int listen_fd, fd;
    uint16_t port;
};

static void core_listen(struct core_peer *p)
{
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(p->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(p->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    getsockname(p->listen_fd, (struct sockaddr *)&a, &len);
    p->port = ntohs(a.sin_port);
    ck_assert_int_eq(listen(p->listen_fd, 4), 0);
    p->fd = -1;
}

static bool core_accept(struct core_peer *p, int timeout_ms)
{
    struct pollfd pfd = {.fd = p->listen_fd, .events = POLLIN};
    if (poll(&pfd, 1, timeout_ms) != 1)
        return false;
    p->fd = accept(p->listen_fd, NULL, NULL);
    struct timeval tv = {10, 0};
    setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return p->fd >= 0;
}

static void pattern(unsigned char *buf, size_t len, size_t offset)
{
    for (size_t i = 0; i < len; i++) {
        size_t k = offset + i;
        buf[i] = (unsigned char)((k * 2654435761u) >> 13);
    }
}

struct sender {
    SSL *ssl; /* NULL: plain fd */
    int fd;
    size_t bytes;
    int result;
};

static void *send_all(void *arg)
{
    struct sender *s = arg;
    unsigned char buf[16384];
    size_t done = 0;
    s->result = 0;
    while (done < s->bytes) {
        size_t n = s->bytes - done < sizeof(buf) ? s->bytes - done : sizeof(buf);
        pattern(buf, n, done);
        int w = s->ssl != NULL ? SSL_write(s->ssl, buf, (int)n) : (int)write(s->fd, buf, n);
        if (w <= 0) {
            s->result = -1;
            break;
        }
        done += (size_t)w;
    }
    return NULL;
}

/* Reads exactly bytes and checks them against the pattern (the hash of the far end). */
static bool receive_all(SSL *ssl, int fd, size_t bytes)
{
    unsigned char buf[16384], want[16384];
    size_t done = 0;
    EVP_MD_CTX *got_md = EVP_MD_CTX_new(), *want_md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(got_md, EVP_sha256(), NULL);
    EVP_DigestInit_ex(want_md, EVP_sha256(), NULL);
    while (done < bytes) {
        size_t cap = bytes - done < sizeof(buf) ? bytes - done : sizeof(buf);
        int r = ssl != NULL ? SSL_read(ssl, buf, (int)cap) : (int)read(fd, buf, cap);
        if (r <= 0)
            break;
        pattern(want, (size_t)r, done);
        EVP_DigestUpdate(got_md, buf, (size_t)r);
        EVP_DigestUpdate(want_md, want, (size_t)r);
        done += (size_t)r;
    }
    unsigned char a[32], b[32];
    EVP_DigestFinal_ex(got_md, a, NULL);
    EVP_DigestFinal_ex(want_md, b, NULL);
    EVP_MD_CTX_free(got_md);
    EVP_MD_CTX_free(want_md);
    return done == bytes && memcmp(a, b, 32) == 0;
}

/* Both directions, one after the other: UE -> core, then core -> UE. */
static void transfer_both_ways(SSL *ssl, int ue_fd, struct core_peer *core)
{
    size_t bytes = transfer_bytes();
    pthread_t th;
    struct sender up = {.ssl = ssl, .fd = ue_fd, .bytes = bytes};
    pthread_create(&th, NULL, send_all, &up);
    ck_assert_msg(receive_all(NULL, core->fd, bytes), "UE -> core bytes differ");
    pthread_join(th, NULL);
    ck_assert_int_eq(up.result, 0);
    struct sender down = {.ssl = NULL, .fd = core->fd, .bytes = bytes};
    pthread_create(&th, NULL, send_all, &down);
    ck_assert_msg(receive_all(ssl, ue_fd, bytes), "core -> UE bytes differ");
    pthread_join(th, NULL);
    ck_assert_int_eq(down.result, 0);
}

#define UE_REMOTE(setup, fp)                                                                       \
    "R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message 9 TCP/TLS/MSRP *\r\na=setup:" setup                  \
    "\r\na=fingerprint:%s\r\n}"

/* Core termination (gateway TCP-active toward the core peer) and access termination (UE
 * connects: gateway TCP-passive and TLS server). Returns the access Add reply. */
static const char *setup_session(struct core_peer *core, const char *ue_fp, unsigned *ctx,
                                 uint16_t *access_port, bool fingerprint_now)
{
    char text[2048];
    unsigned code;
    snprintf(text, sizeof(text),
             "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=message $ "
             "TCP/MSRP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message %u TCP/MSRP *\r\n"
             "a=setup:passive\r\n}}}}}",
             core->port);
    const char *r = harness_request(mgc, text, &code);
    ck_assert_msg(code == 0, "%s", r);
    *ctx = harness_number_after(r, "C=");
    if (fingerprint_now)
        snprintf(text, sizeof(text),
                 "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\n"
                 "m=message $ TCP/TLS/MSRP *\r\na=fingerprint:$\r\n}," UE_REMOTE(
                     "active", "") "}},E=5{tlsc/fail}}}",
                 *ctx, ue_fp);
    else
        snprintf(text, sizeof(text),
                 "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\n"
                 "m=message $ TCP/TLS/MSRP *\r\na=fingerprint:$\r\na=setup:passive\r\n}}},"
                 "E=5{tlsc/fail}}}",
                 *ctx);
    r = harness_request(mgc, text, &code);
    ck_assert_msg(code == 0, "%s", r);
    *access_port = (uint16_t)harness_number_after(r, "m=message ");
    return r;
}

START_TEST(originating_msrp_bytes_both_ways)
{
    start();
    struct ue ue;
    ue_make(&ue);
    struct core_peer core;
    core_listen(&core);
    unsigned ctx;
    uint16_t port;
    char reply[4096];
    snprintf(reply, sizeof(reply), "%s", setup_session(&core, ue.fingerprint, &ctx, &port, true));
    int fd;
    SSL *ssl = ue_connect(&ue, port, 0, &fd);
    ck_assert_msg(ssl != NULL, "TLS refused, see %s", log_path);
    ue_check_gateway(ssl, reply);
    /* Incoming triggers outgoing: the gateway dials the core peer. */
    ck_assert_msg(core_accept(&core, 3000), "the gateway did not connect to the core");
    transfer_both_ways(ssl, fd, &core);
    unsigned code;
    char text[64];
    snprintf(text, sizeof(text), "C=%u{S=*}", ctx);
    const char *r = harness_request(mgc, text, &code);
    ck_assert_msg(code == 0, "%s", r);
    /* The octets went through: each leg reports at least the transfer size both ways. */
    ck_assert_msg(harness_number_after(r, "nt/or=") >= transfer_bytes(), "%s", r);
    SSL_free(ssl);
    close(fd);
    close(core.fd);
    close(core.listen_fd);
    agw_tls_identity_unref(ue.id);
    stop();
}
END_TEST

START_TEST(fingerprint_after_handshake_is_held_then_verified)
{
    start();
    struct ue ue;
    ue_make(&ue);
    struct core_peer core;
    core_listen(&core);
    unsigned ctx;
    uint16_t port;
    char reply[4096];
    snprintf(reply, sizeof(reply), "%s", setup_session(&core, ue.fingerprint, &ctx, &port, false));
    /* The UE connects and starts TLS before the ALG knows its fingerprint: the gateway holds
     * the handshake (the UE waits for the ServerHello) and connects nothing to the core. */
    struct ue_job job = {.ue = &ue, .port = port};
    pthread_t th;
    pthread_create(&th, NULL, ue_connect_job, &job);
    ck_assert(!core_accept(&core, 500));
    char text[1024];
    unsigned code;
    snprintf(text, sizeof(text), "C=%u{MF=ip/access/1{M{ST=1{" UE_REMOTE("active", "") "}}}}", ctx,
             ue.fingerprint);
    const char *r = harness_request(mgc, text, &code);
    ck_assert_msg(code == 0, "%s", r);
    pthread_join(th, NULL);
    SSL *ssl = job.ssl;
    int fd = job.fd;
    ck_assert_msg(ssl != NULL, "TLS refused, see %s", log_path);
    ue_check_gateway(ssl, reply);
    static const char hello[] =
        "MSRP a786hjs2 SEND\r\nTo-Path: msrp://core\r\n-------a786hjs2$\r\n";
    ck_assert_int_eq(SSL_write(ssl, hello, sizeof(hello) - 1), (int)sizeof(hello) - 1);
    ck_assert(core_accept(&core, 3000));
    char got[sizeof(hello)] = "";
    size_t n = 0;
    while (n < sizeof(hello) - 1) {
        ssize_t k = read(core.fd, got + n, sizeof(hello) - 1 - n);
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    ck_assert_str_eq(got, hello);
    SSL_free(ssl);
    close(fd);
    close(core.fd);
    close(core.listen_fd);
    agw_tls_identity_unref(ue.id);
    stop();
}
END_TEST

START_TEST(wrong_certificate_is_refused_and_notified)
{
    start();
    struct ue ue, other;
    ue_make(&ue);
    ue_make(&other);
    struct core_peer core;
    core_listen(&core);
    unsigned ctx;
    uint16_t port;
    /* The Remote carries the first UE's fingerprint; the second one connects. */
    setup_session(&core, ue.fingerprint, &ctx, &port, true);
    int fd = -1;
    SSL *ssl = ue_connect(&other, port, 0, &fd);
    if (ssl != NULL) {
        /* TLS 1.3: the client finishes before the server's verdict; the alert comes next. */
        char b;
        ck_assert_int_le(SSL_read(ssl, &b, 1), 0);
        SSL_free(ssl);
        close(fd);
    }
    /* No connection, hence no plaintext byte, reached the core. */
    ck_assert(!core_accept(&core, 300));
    struct iq_event ev;
    ck_assert_int_eq(iq_client_recv(mgc, 3000, &ev), 0);
    ck_assert_int_eq(ev.kind, IQ_EVENT_REQUEST);
    char text[1024];
    size_t len;
    h248_encode_message(ev.msg, H248_STYLE_COMPACT, text, sizeof(text) - 1, &len);
    text[len] = '\0';
    iq_event_release(&ev);
    ck_assert_msg(strstr(text, "N=ip/access/") != NULL &&
                      strstr(text, "OE=5{tlsc/fail{cause=\"fingerprint mismatch\"}}") != NULL,
                  "%s", text);
    close(core.listen_fd);
    agw_tls_identity_unref(ue.id);
    agw_tls_identity_unref(other.id);
    stop();
}
END_TEST

START_TEST(inactivity_and_connection_new)
{
    start();
    struct ue ue;
    ue_make(&ue);
    struct core_peer core;
    core_listen(&core);
    unsigned ctx;
    uint16_t port;
    setup_session(&core, ue.fingerprint, &ctx, &port, true);
    int fd;
    SSL *ssl = ue_connect(&ue, port, 0, &fd);
    ck_assert_msg(ssl != NULL, "TLS refused, see %s", log_path);
    ck_assert(core_accept(&core, 3000));
    /* The ALG asks for media-inactivity detection (H.248.40 ip flow stop, dt in seconds). */
    char text[1024];
    unsigned code;
    snprintf(text, sizeof(text), "C=%u{MF=ip/access/1{E=6{adid/ipstop{dt=1}}}}", ctx);
    const char *r = harness_request(mgc, text, &code);
    ck_assert_msg(code == 0, "%s", r);
    struct iq_event ev;
    ck_assert_int_eq(iq_client_recv(mgc, 4000, &ev), 0);
    size_t len;
    h248_encode_message(ev.msg, H248_STYLE_COMPACT, text, sizeof(text) - 1, &len);
    text[len] = '\0';
    iq_event_release(&ev);
    ck_assert_msg(strstr(text, "N=ip/access/1{OE=6{adid/ipstop}}") != NULL, "%s", text);
    /* a=connection:new in a new Remote: the gateway drops the connection, a new one is served. */
    snprintf(text, sizeof(text),
             "C=%u{MF=ip/access/1{M{ST=1{R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message 9 "
             "TCP/TLS/MSRP *\r\na=setup:active\r\na=connection:new\r\na=fingerprint:%s\r\n}}}}}",
             ctx, ue.fingerprint);
    r = harness_request(mgc, text, &code);
    ck_assert_msg(code == 0, "%s", r);
    char b;
    ck_assert_int_le(SSL_read(ssl, &b, 1), 0);
    SSL_free(ssl);
    close(fd);
    ssl = ue_connect(&ue, port, 0, &fd);
    ck_assert_msg(ssl != NULL, "the new connection was refused, see %s", log_path);
    ck_assert_int_eq(SSL_write(ssl, "x", 1), 1);
    SSL_free(ssl);
    close(fd);
    close(core.fd);
    close(core.listen_fd);
    agw_tls_identity_unref(ue.id);
    stop();
}
END_TEST

/* The errno of a plain TCP connect to the gateway's port (0: it was accepted). */
static int connect_error(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int err = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 ? 0 : errno;
    close(fd);
    return err;
}

/* The daemon's open descriptors. */
static unsigned daemon_fds(void)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)child);
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    unsigned n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* An established session holds its two connections and no listening socket: a second
 * connection to the access port is refused, and a=connection:new opens the port again for the
 * UE's new connection, over which bytes flow both ways. */
START_TEST(port_listens_only_while_no_connection_is_held)
{
    start();
    struct ue ue;
    ue_make(&ue);
    struct core_peer core;
    core_listen(&core);
    unsigned ctx;
    uint16_t port;
    setup_session(&core, ue.fingerprint, &ctx, &port, true);
    /* Counted once the access port listens (libuv's first listener also keeps a spare fd). */
    unsigned fds0 = daemon_fds();
    int fd;
    SSL *ssl = ue_connect(&ue, port, 0, &fd);
    ck_assert_msg(ssl != NULL, "TLS refused, see %s", log_path);
    ck_assert(core_accept(&core, 3000));
    transfer_both_ways(ssl, fd, &core);
    unsigned fds = daemon_fds();
    ck_assert_msg(fds == fds0 + 1,
                  "%u descriptors for one session (want 2: the listener gives way)",
                  fds + 1 - fds0);
    int err = connect_error(port);
    ck_assert_msg(err == ECONNREFUSED, "a second connection to port %u: %s", port,
                  err == 0 ? "accepted" : strerror(err));
    char text[1024];
    unsigned code;
    snprintf(text, sizeof(text),
             "C=%u{MF=ip/access/1{M{ST=1{R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message 9 "
             "TCP/TLS/MSRP *\r\na=setup:active\r\na=connection:new\r\na=fingerprint:%s\r\n}}}}}",
             ctx, ue.fingerprint);
    const char *r = harness_request(mgc, text, &code);
    ck_assert_msg(code == 0, "%s", r);
    char b;
    ck_assert_int_le(SSL_read(ssl, &b, 1), 0);
    SSL_free(ssl);
    close(fd);
    ssl = ue_connect(&ue, port, 0, &fd);
    ck_assert_msg(ssl != NULL, "the new connection was refused, see %s", log_path);
    transfer_both_ways(ssl, fd, &core);
    err = connect_error(port);
    ck_assert_msg(err == ECONNREFUSED, "a second connection after the new one: %s",
                  err == 0 ? "accepted" : strerror(err));
    SSL_free(ssl);
    close(fd);
    close(core.fd);
    close(core.listen_fd);
    agw_tls_identity_unref(ue.id);
    stop();
}
END_TEST

/* Move of a connected TCP-passive termination to a context of another worker: its connection
 * goes, and its port, which held no listening socket while connected, listens again there. */
START_TEST(move_of_connected_termination_listens_on_new_worker)
{
    workers = "2";
    start();
    struct ue ue;
    ue_make(&ue);
    struct core_peer core;
    core_listen(&core);
    unsigned ctx;
    uint16_t port;
    setup_session(&core, ue.fingerprint, &ctx, &port, true);
    int fd;
    SSL *ssl = ue_connect(&ue, port, 0, &fd);
    ck_assert_msg(ssl != NULL, "TLS refused, see %s", log_path);
    ck_assert(core_accept(&core, 3000));
    ck_assert_int_eq(connect_error(port), ECONNREFUSED);
    /* Contexts go to the workers in turn: the next one is on the other worker. */
    char text[512];
    unsigned code;
    snprintf(text, sizeof(text),
             "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=message $ "
             "TCP/MSRP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message %u TCP/MSRP *\r\n"
             "a=setup:passive\r\n}}}}}",
             core.port);
    const char *r = harness_request(mgc, text, &code);
    ck_assert_msg(code == 0, "%s", r);
    unsigned ctx2 = (unsigned)harness_number_after(r, "C=");
    snprintf(text, sizeof(text), "C=%u{MV=ip/access/1}", ctx2);
    r = harness_request(mgc, text, &code);
    ck_assert_msg(code == 0, "%s", r);
    char b;
    ck_assert_int_le(SSL_read(ssl, &b, 1), 0);
    SSL_free(ssl);
    close(fd);
    /* The socket handed over listens from the hand-over on, before the reply was sent. */
    int err = connect_error(port);
    ck_assert_msg(err == 0, "port %u after the Move: %s (log %s)", port, strerror(err), log_path);
    if (core.fd >= 0)
        close(core.fd);
    close(core.listen_fd);
    agw_tls_identity_unref(ue.id);
    stop();
}
END_TEST

/* Writes a fresh P-256 certificate and key to cert and key. */
static void write_identity(const char *cert, const char *key, struct agw_tls_identity **out)
{
    ck_assert_int_eq(agw_tls_identity_generate("gateway.test", 30, out), 0);
    FILE *f = fopen(cert, "w");
    ck_assert(PEM_write_X509(f, agw_tls_identity_cert(*out)));
    fclose(f);
    f = fopen(key, "w");
    ck_assert(PEM_write_PrivateKey(f, agw_tls_identity_key(*out), NULL, NULL, 0, NULL, NULL));
    fclose(f);
}

/* A reload that rotates the realm's certificate: new terminations get the new one, the one
 * added before keeps presenting the certificate whose fingerprint its Add reply carried. */
START_TEST(certificate_rotation_keeps_bound_fingerprint)
{
    char dir[] = "/tmp/agw-rotate-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char cert[96], key[96], conf[96];
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(conf, sizeof(conf), "%s/agw.conf", dir);
    struct agw_tls_identity *first, *second;
    write_identity(cert, key, &first);
    uint16_t base = (uint16_t)(16000 + (getpid() % 100) * 40);
    FILE *f = fopen(conf, "w");
    fprintf(f,
            "[realm access]\naddress = 127.0.0.1\nports = %u-%u\ncertificate = %s\n"
            "private_key = %s\n[realm core]\naddress = 127.0.0.1\nports = %u-%u\n",
            base, base + 19, cert, key, base + 20, base + 39);
    fclose(f);
    start_conf(conf);
    struct ue ue;
    ue_make(&ue);
    struct core_peer core;
    core_listen(&core);
    unsigned ctx;
    uint16_t port;
    char before[4096];
    snprintf(before, sizeof(before), "%s", setup_session(&core, ue.fingerprint, &ctx, &port, true));
    char fp1[AGW_TLS_FINGERPRINT_TEXT_MAX];
    agw_tls_fingerprint_format(agw_tls_identity_fingerprint(first), fp1, sizeof(fp1));
    ck_assert_msg(strstr(before, fp1) != NULL, "%s lacks %s", before, fp1);
    /* Rotate: new files, SIGHUP. */
    write_identity(cert, key, &second);
    kill(child, SIGHUP);
    for (int i = 0; i < 200 && !harness_log_contains(log_path, "configuration reloaded"); i++)
        harness_sleep_ms(10);
    ck_assert(harness_log_contains(log_path, "configuration reloaded"));
    struct core_peer core2;
    core_listen(&core2);
    unsigned ctx2;
    uint16_t port2;
    const char *after = setup_session(&core2, ue.fingerprint, &ctx2, &port2, true);
    char fp2[AGW_TLS_FINGERPRINT_TEXT_MAX];
    agw_tls_fingerprint_format(agw_tls_identity_fingerprint(second), fp2, sizeof(fp2));
    ck_assert_msg(strstr(after, fp2) != NULL, "%s lacks %s", after, fp2);
    /* The first termination still presents the first certificate. */
    int fd;
    SSL *ssl = ue_connect(&ue, port, 0, &fd);
    ck_assert_msg(ssl != NULL, "TLS refused, see %s", log_path);
    ue_check_gateway(ssl, before);
    SSL_free(ssl);
    close(fd);
    close(core.listen_fd);
    close(core2.listen_fd);
    agw_tls_identity_unref(first);
    agw_tls_identity_unref(second);
    agw_tls_identity_unref(ue.id);
    stop();
    unlink(cert);
    unlink(key);
    unlink(conf);
    rmdir(dir);
}
END_TEST

static Suite *relay_suite(void)
{
    Suite *s = suite_create("relay");
    TCase *tc = tcase_create("e2ae");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, originating_msrp_bytes_both_ways);
    tcase_add_test(tc, wrong_certificate_is_refused_and_notified);
    tcase_add_test(tc, fingerprint_after_handshake_is_held_then_verified);
    tcase_add_test(tc, inactivity_and_connection_new);
    tcase_add_test(tc, port_listens_only_while_no_connection_is_held);
    tcase_add_test(tc, move_of_connected_termination_listens_on_new_worker);
    tcase_add_test(tc, certificate_rotation_keeps_bound_fingerprint);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(relay_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
