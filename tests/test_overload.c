/* Check suite: the real daemon at its limits: max_contexts, out of file descriptors, a flood of
 * refused connections and a flood of hostile Iq datagrams; it answers, keeps serving and its
 * logs stay bounded. */
#include "h248/h248.h"
#include "tests/harness.h"
#include "tools/iq_client.h"

#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
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
static uint16_t iq_port;
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
    unsigned max_contexts;
    unsigned nofile; /* RLIMIT_NOFILE (soft = hard) set in the child before exec; 0: inherited */
};

static void start_with(const struct daemon_opts *o)
{
    char iq[32], m1[32], access[64], core[64], workers[16], max_contexts[16];
    iq_port = harness_free_port(SOCK_DGRAM);
    uint16_t mgc_port = harness_free_port(SOCK_DGRAM);
    /* 1024-3999: no other suite's realms; plain and ASan runs apart by pid. */
    uint16_t base = (uint16_t)(2000 + (getpid() % 8) * 200);
    snprintf(iq, sizeof(iq), "127.0.0.1:%u", iq_port);
    snprintf(m1, sizeof(m1), "127.0.0.1:%u", mgc_port);
    snprintf(access, sizeof(access), "access,127.0.0.1,%u-%u", base, base + 149);
    snprintf(core, sizeof(core), "core,127.0.0.1,%u-%u", base + 150, base + 199);
    snprintf(workers, sizeof(workers), "%u", o->workers);
    snprintf(max_contexts, sizeof(max_contexts), "%u", o->max_contexts);
    snprintf(log_path, sizeof(log_path), "/tmp/test_overload.%d.log", (int)getpid());
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        /* A test killed on its timeout must not leave the daemon behind. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, STDERR_FILENO);
        close(fd);
        if (o->nofile > 0) {
            struct rlimit rl = {o->nofile, o->nofile};
            if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                _exit(126);
        }
        execl(harness_agw_bin(), harness_agw_bin(), "--iq-listen", iq, "--mgc", m1, "--workers",
              workers, "--realm", access, "--realm", core, "--max-contexts", max_contexts,
              "--control-socket", "", "--log-level", "info", (char *)NULL);
        _exit(127);
    }
    ck_assert_int_eq(iq_client_open(m1, iq, NULL, NULL, &mgc), 0);
    ck_assert_msg(iq_client_wait_registration(mgc, harness_ms(5000), NULL, NULL, NULL) == 0,
                  "no registration, see %s", log_path);
    for (int i = 0; i < harness_ms(200) && !harness_log_contains(log_path, "registered with MGC");
         i++)
        harness_sleep_ms(10);
}

/* SIGTERM; the Graceful ServiceChange is answered; the daemon must exit 0 (ASan: no leak). */
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

/* The daemon's open descriptors, counted in /proc. */
static int daemon_fds(void)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)child);
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Waits up to ms for the daemon's descriptor count to come back to want; the last count. */
static int daemon_fds_settle(int want, int ms)
{
    int n = daemon_fds();
    for (uint64_t deadline = now_ms() + (uint64_t)ms; n != want && now_ms() < deadline;) {
        harness_sleep_ms(50);
        n = daemon_fds();
    }
    return n;
}

/* CPU seconds (user + system) the daemon used so far. */
static double daemon_cpu_s(void)
{
    char path[64], text[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)child);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *p = strrchr(text, ')'); /* the name may hold blanks: fields after the last ')' */
    ck_assert_ptr_nonnull(p);
    unsigned long long ut, st;
    ck_assert_int_eq(
        sscanf(p + 1, " %*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", &ut, &st), 2);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Lines of the daemon's log that hold needle; *sum (may be NULL) adds up the number each such
 * line starts its message with ("ims-agw: warn: 123 similar log lines suppressed"). */
static unsigned log_lines(const char *needle, unsigned long *sum)
{
    FILE *f = fopen(log_path, "r");
    ck_assert_ptr_nonnull(f);
    char line[2048];
    unsigned n = 0;
    if (sum != NULL)
        *sum = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strstr(line, needle) == NULL)
            continue;
        n++;
        const char *p = strstr(line, ": ");
        p = p != NULL ? strstr(p + 2, ": ") : NULL;
        if (sum != NULL && p != NULL)
            *sum += strtoul(p + 2, NULL, 10);
    }
    fclose(f);
    return n;
}

/* ---- Iq ---- */

static const char *request(const char *text, unsigned *code)
{
    return harness_request(mgc, text, code);
}

static void request_ok(const char *text, char *out, size_t cap)
{
    unsigned code;
    const char *r = request(text, &code);
    ck_assert_msg(code == 0, "%s\n-> %s (log %s)", text, r, log_path);
    snprintf(out, cap, "%s", r);
}

static void subtract(unsigned ctx)
{
    char text[64], reply[4096];
    snprintf(text, sizeof(text), "C=%u{S=*}", ctx);
    request_ok(text, reply, sizeof(reply));
}

/* Drops whatever the gateway sent that no transaction took (answers to junk, ...). */
static void drain_events(void)
{
    struct iq_event ev;
    while (iq_client_recv(mgc, 5, &ev) == 0) /* 0 would not read the socket at all */
        iq_event_release(&ev);
}

/* A context with one TLS access termination that listens (one descriptor in the daemon).
 * 0 and *ctx, *port; or the error code, with the reply in reply. */
static unsigned add_tls_leg(unsigned *ctx, uint16_t *port, char *reply, size_t cap)
{
    unsigned code;
    const char *r =
        request("C=${A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=message $ "
                "TCP/TLS/MSRP *\r\na=fingerprint:$\r\n}}},E=5{tlsc/fail}}}",
                &code);
    snprintf(reply, cap, "%s", r);
    if (code == 0) {
        *ctx = (unsigned)harness_number_after(r, "C=");
        *port = (uint16_t)harness_number_after(r, "m=message ");
    }
    return code;
}

/* ---- Sockets ---- */

static void set_timeouts(int fd, int seconds)
{
    struct timeval tv = {seconds, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Connects from source (NULL: any loopback address) to 127.0.0.1:port, blocking. */
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
    set_timeouts(fd, 5);
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect to %u: %s", port,
                  strerror(errno));
    return fd;
}

/* Waits up to timeout_ms for the peer to end the connection (FIN or RST); false if it did not. */
static bool wait_closed(int fd, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    char buf[4096];
    while (now_ms() < deadline) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(deadline - now_ms()) + 1) != 1)
            continue;
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            return true;
    }
    return false;
}

/* ---- A plain TCP session (both legs listen), its bytes checked both ways ---- */

struct plain {
    unsigned ctx;
    uint16_t access_port, core_port;
    int ue_fd, core_fd;
    unsigned round;
};

/* Byte k of the stream named seed: a full mix of both, so that streams of different seeds
 * differ everywhere and no stream repeats. */
static unsigned char pattern_byte(uint64_t k, uint32_t seed)
{
    uint64_t x = k * 0x9E3779B97F4A7C15ull + (uint64_t)seed * 0xD1B54A32D192ED03ull;
    x ^= x >> 32;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return (unsigned char)(x >> 56);
}

static void plain_open(struct plain *p)
{
    char reply[4096];
    memset(p, 0, sizeof(*p));
    p->ue_fd = p->core_fd = -1;
    request_ok("C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
               "TCP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=application 9 TCP *\r\n"
               "a=setup:active\r\n}}}}}",
               reply, sizeof(reply));
    p->ctx = (unsigned)harness_number_after(reply, "C=");
    p->core_port = (uint16_t)harness_number_after(reply, "m=application ");
    char text[1024];
    snprintf(text, sizeof(text),
             "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
             "TCP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=application 9 TCP *\r\n"
             "a=setup:active\r\n}}}}}",
             p->ctx);
    request_ok(text, reply, sizeof(reply));
    p->access_port = (uint16_t)harness_number_after(reply, "m=application ");
}

static void plain_connect(struct plain *p)
{
    p->ue_fd = tcp_connect_from("127.0.0.1", p->access_port);
    p->core_fd = tcp_connect_from("127.0.0.1", p->core_port);
}

static void send_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        ck_assert_msg(w > 0, "send: %s (log %s)", strerror(errno), log_path);
        p += w;
        n -= (size_t)w;
    }
}

static void recv_all(int fd, unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        ck_assert_msg(r > 0, "recv: %s (log %s)", r == 0 ? "end of stream" : strerror(errno),
                      log_path);
        p += r;
        n -= (size_t)r;
    }
}

/* 64 KiB each way through the session, compared byte by byte. */
static void plain_exchange(struct plain *p)
{
    enum { BYTES = 64 * 1024 };
    static unsigned char out[BYTES], in[BYTES];
    for (int dir = 0; dir < 2; dir++) {
        uint32_t seed = p->ctx * 1000 + p->round * 2 + (uint32_t)dir;
        for (size_t i = 0; i < BYTES; i++)
            out[i] = pattern_byte(i, seed);
        send_all(dir == 0 ? p->ue_fd : p->core_fd, out, BYTES);
        recv_all(dir == 0 ? p->core_fd : p->ue_fd, in, BYTES);
        ck_assert_msg(memcmp(in, out, BYTES) == 0, "context %u: wrong bytes %s", p->ctx,
                      dir == 0 ? "at the core" : "at the UE");
    }
    p->round++;
}

static void plain_close(struct plain *p)
{
    if (p->ue_fd >= 0)
        close(p->ue_fd);
    if (p->core_fd >= 0)
        close(p->core_fd);
    p->ue_fd = p->core_fd = -1;
}

/* ---- max_contexts ---- */

START_TEST(max_contexts_answers_510)
{
    const struct daemon_opts o = {1, 20, 0};
    start_with(&o);
    struct plain p;
    plain_open(&p);
    plain_connect(&p);
    plain_exchange(&p);
    unsigned ctxs[19];
    char reply[4096];
    for (unsigned i = 0; i < 19; i++) {
        uint16_t port;
        unsigned code = add_tls_leg(&ctxs[i], &port, reply, sizeof(reply));
        ck_assert_msg(code == 0, "context %u of 20: %s", i + 2, reply);
    }
    /* The 21st and later: 510, with a text that names the limit; nothing else changes. */
    for (unsigned i = 0; i < 5; i++) {
        unsigned ctx;
        uint16_t port;
        unsigned code = add_tls_leg(&ctx, &port, reply, sizeof(reply));
        ck_assert_msg(code == 510, "Add beyond max_contexts: %u %s", code, reply);
        ck_assert_msg(strstr(reply, "max_contexts 20") != NULL, "no text naming the limit: %s",
                      reply);
    }
    plain_exchange(&p);
    /* One context released: exactly one more fits. */
    subtract(ctxs[7]);
    uint16_t port;
    ck_assert_uint_eq(add_tls_leg(&ctxs[7], &port, reply, sizeof(reply)), 0);
    unsigned extra;
    ck_assert_uint_eq(add_tls_leg(&extra, &port, reply, sizeof(reply)), 510);
    plain_exchange(&p);
    plain_close(&p);
    stop();
}
END_TEST

/* ---- Out of file descriptors ---- */

START_TEST(out_of_descriptors_refused_cleanly)
{
    const struct daemon_opts o = {1, 1000, 128};
    start_with(&o);
    ck_assert_msg(harness_log_contains(log_path, "open files: the limit 128 is below"),
                  "no warning about the low limit (log %s)", log_path);
    struct plain p;
    plain_open(&p);
    plain_connect(&p);
    plain_exchange(&p);

    /* Each Add takes one listening socket, until socket() fails: 510 with the reason. */
    enum { MAX_ADDS = 200 };
    unsigned ctxs[MAX_ADDS], n = 0, code = 0;
    uint16_t ports[MAX_ADDS];
    char reply[4096];
    while (n < MAX_ADDS && (code = add_tls_leg(&ctxs[n], &ports[n], reply, sizeof(reply))) == 0)
        n++;
    ck_assert_msg(code == 510, "after %u Adds: %u %s (log %s)", n, code, reply, log_path);
    ck_assert_msg(strstr(reply, "cannot bind a port") != NULL &&
                      strstr(reply, strerror(EMFILE)) != NULL,
                  "510 without the reason: %s", reply);
    ck_assert_uint_ge(n, 20);
    fprintf(stderr, "out of descriptors after %u listening terminations: %s\n", n, reply);
    /* Again: the same answer, no crash, and the control loop answers. */
    unsigned ctx;
    uint16_t port;
    ck_assert_uint_eq(add_tls_leg(&ctx, &port, reply, sizeof(reply)), 510);
    unsigned av;
    request("C=-{AV=ROOT{AT{}}}", &av);
    ck_assert_uint_eq(av, 0);

    /* UEs at the limit: their connections cannot be taken and are closed (libuv's reserve
     * descriptor, or the termination stops listening), without a busy loop on accept. */
    double cpu0 = daemon_cpu_s();
    for (unsigned i = 0; i < 3; i++) {
        int fd = tcp_connect_from("127.0.0.1", ports[n - 1 - i]);
        ck_assert_msg(wait_closed(fd, 3000), "UE %u stayed connected (log %s)", i, log_path);
        close(fd);
    }
    harness_sleep_ms(1000);
    double cpu = daemon_cpu_s() - cpu0;
    ck_assert_msg(cpu < 0.5, "the daemon used %.2f s of CPU in 1.x s at the limit", cpu);
    const char *notify = harness_wait_notify(mgc, 500);
    fprintf(stderr, "UEs at the limit: closed, daemon CPU %.2f s, Notify '%s'\n", cpu, notify);
    /* Established connections do not need descriptors: the first session still relays. */
    plain_exchange(&p);

    /* Descriptors freed by Subtract: new sessions work again. */
    for (unsigned i = n - 10; i < n; i++)
        subtract(ctxs[i]);
    n -= 10;
    ck_assert_uint_eq(add_tls_leg(&ctxs[n], &ports[n], reply, sizeof(reply)), 0);
    n++;
    struct plain q;
    plain_open(&q);
    plain_connect(&q);
    plain_exchange(&q);
    plain_exchange(&p);
    plain_close(&q);
    plain_close(&p);
    drain_events();
    stop();
}
END_TEST

/* ---- Refused connections ---- */

/* Connections in flight at once: the termination's listen backlog is 16 and the kernel drops
 * SYNs beyond it (retried after 1, 3, 7 s), which would measure the kernel, not the daemon. */
enum { FLOOD = 1000, FLOOD_WINDOW = 8 };

/* What the flood's connections send once connected: nothing, or junk instead of a
 * ClientHello. */
static const char *flood_payload;

static int flood_connect(uint16_t port, const char *source)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in s = {.sin_family = AF_INET};
    inet_pton(AF_INET, source, &s.sin_addr);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&s, sizeof(s)), 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    ck_assert_msg(rc == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
    return fd;
}

/* Opens count connections from source to port, FLOOD_WINDOW at a time, each one as soon as
 * the daemon closed an earlier one; busy (may be NULL) relays halfway through. Returns how many
 * the daemon closed; one left open for 5 s ends the flood. */
static unsigned flood_connections(uint16_t port, const char *source, unsigned count,
                                  struct plain *busy)
{
    bool sent[FLOOD_WINDOW] = {false};
    struct pollfd pfd[FLOOD_WINDOW];
    uint64_t opened_ms[FLOOD_WINDOW];
    unsigned opened = 0, closed = 0, live = 0;
    for (unsigned i = 0; i < FLOOD_WINDOW; i++)
        pfd[i] = (struct pollfd){.fd = -1, .events = POLLIN};
    bool stuck = false;
    while (closed < count && !stuck) {
        for (unsigned i = 0; i < FLOOD_WINDOW && opened < count; i++) {
            if (pfd[i].fd >= 0)
                continue;
            pfd[i].fd = flood_connect(port, source);
            pfd[i].events = flood_payload != NULL ? POLLIN | POLLOUT : POLLIN;
            sent[i] = false;
            opened_ms[i] = now_ms();
            opened++;
            live++;
            if (busy != NULL && opened == count / 2)
                plain_exchange(busy);
        }
        if (poll(pfd, FLOOD_WINDOW, 100) < 0)
            break;
        for (unsigned i = 0; i < FLOOD_WINDOW; i++) {
            if (pfd[i].fd < 0)
                continue;
            if (pfd[i].revents == 0) {
                stuck |= now_ms() - opened_ms[i] > 5000;
                continue;
            }
            if ((pfd[i].revents & POLLOUT) && !sent[i]) {
                sent[i] = true;
                pfd[i].events = POLLIN;
                send(pfd[i].fd, flood_payload, strlen(flood_payload), MSG_NOSIGNAL);
                if ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
                    continue;
            }
            char b[64];
            ssize_t r = recv(pfd[i].fd, b, sizeof(b), 0);
            if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)))
                continue;
            close(pfd[i].fd);
            pfd[i].fd = -1;
            live--;
            closed++;
        }
    }
    for (unsigned i = 0; i < FLOOD_WINDOW; i++)
        if (pfd[i].fd >= 0)
            close(pfd[i].fd);
    return closed;
}

/* Only the Remote's address may connect: a thousand connections from 127.0.0.2 are each closed,
 * another session relays meanwhile, the descriptors come back, and the right UE still gets in. */
START_TEST(refused_connection_flood_keeps_serving)
{
    const struct daemon_opts o = {2, 1000, 0};
    start_with(&o);
    struct plain target, busy;
    plain_open(&target);
    plain_open(&busy);
    plain_connect(&busy);
    plain_exchange(&busy);
    int fds0 = daemon_fds();
    uint64_t t0 = now_ms();
    unsigned closed = flood_connections(target.access_port, "127.0.0.2", FLOOD, &busy);
    ck_assert_msg(closed == FLOOD, "%u of %u connections from 127.0.0.2 left open (log %s)",
                  FLOOD - closed, FLOOD, log_path);
    fprintf(stderr, "%u refused connections in %llu ms\n", FLOOD,
            (unsigned long long)(now_ms() - t0));
    plain_exchange(&busy);
    int fds = daemon_fds_settle(fds0, 5000);
    ck_assert_msg(fds == fds0, "the daemon holds %d descriptors, %d before the flood", fds, fds0);
    plain_connect(&target);
    plain_exchange(&target);
    plain_close(&target);
    plain_close(&busy);
    stop();
}
END_TEST

/* Hostile-input logs are rate-limited (DESIGN.md §7): a flood of refused connections must not
 * write a line each. */
START_TEST(refused_connection_flood_log_is_bounded)
{
    const struct daemon_opts o = {2, 1000, 0};
    start_with(&o);
    struct plain target;
    plain_open(&target);
    uint64_t t0 = now_ms();
    ck_assert_uint_eq(flood_connections(target.access_port, "127.0.0.2", FLOOD, NULL), FLOOD);
    unsigned seconds = (unsigned)((now_ms() - t0) / 1000) + 2;
    unsigned lines = log_lines("refused a connection from an address", NULL);
    ck_assert_msg(lines <= 10 * seconds,
                  "%u log lines for %u refused connections in %u s: hostile-input logs are not "
                  "rate-limited (log %s)",
                  lines, FLOOD, seconds - 2, log_path);
    stop();
}
END_TEST

/* The Remote's own address sending junk instead of a ClientHello, connection after connection:
 * each one is refused, the listener stays, and the log does not grow a line each. */
START_TEST(garbage_handshake_flood_log_is_bounded)
{
    const struct daemon_opts o = {2, 1000, 0};
    start_with(&o);
    char reply[4096];
    request_ok("C=${A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=message $ "
               "TCP/TLS/MSRP *\r\na=fingerprint:$\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\n"
               "m=message 9 TCP/TLS/MSRP *\r\na=setup:active\r\na=fingerprint:sha-256 "
               "00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:"
               "1B:1C:1D:1E:1F\r\n}}},E=5{tlsc/fail}}}",
               reply, sizeof(reply));
    uint16_t port = (uint16_t)harness_number_after(reply, "m=message ");
    enum { JUNK_CONNECTIONS = 300 };
    flood_payload = "GET / HTTP/1.1\r\nHost: ims-agw\r\n\r\n";
    uint64_t t0 = now_ms();
    unsigned closed = flood_connections(port, "127.0.0.1", JUNK_CONNECTIONS, NULL);
    flood_payload = NULL;
    ck_assert_msg(closed == JUNK_CONNECTIONS, "%u of %u junk connections left open (log %s)",
                  JUNK_CONNECTIONS - closed, JUNK_CONNECTIONS, log_path);
    uint64_t elapsed = now_ms() - t0;
    unsigned seconds = (unsigned)(elapsed / 1000) + 2;
    unsigned notifies = 0;
    for (struct iq_event ev; iq_client_recv(mgc, 300, &ev) == 0; iq_event_release(&ev))
        notifies += ev.kind == IQ_EVENT_REQUEST;
    /* Junk handshakes ("refused: protocol error"). While one is being refused the port does not
       listen, so the kernel refuses the window's other connections: they log nothing. */
    unsigned lines = log_lines("refused", NULL);
    fprintf(stderr, "%u junk handshakes in %llu ms: %u log lines, %u Notifies\n", JUNK_CONNECTIONS,
            (unsigned long long)(now_ms() - t0), lines, notifies);
    ck_assert_msg(lines <= 10 * seconds,
                  "%u log lines for %u junk handshakes in %u s: hostile-input logs are not "
                  "rate-limited (log %s)",
                  lines, JUNK_CONNECTIONS, seconds - 2, log_path);
    stop();
}
END_TEST

/* ---- Hostile Iq datagrams ---- */

/* 5,000 junk datagrams from an address that is no MGC, and 2,000 malformed ones from the MGC:
 * the daemon sees them (their lines plus the suppressed counts add up), logs a bounded number
 * of lines, and answers its MGC all along. */
START_TEST(iq_flood_log_is_bounded)
{
    const struct daemon_opts o = {1, 1000, 0};
    start_with(&o);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in src = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.2", &src.sin_addr);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&src, sizeof(src)), 0);
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons(iq_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    uint64_t t0 = now_ms();
    enum { JUNK = 5000, MALFORMED = 2000, BURST = 50 };
    char junk[64];
    for (unsigned i = 0; i < JUNK; i++) {
        int len = snprintf(junk, sizeof(junk), "junk %u \x01\xff not H.248", i);
        ck_assert_int_eq(sendto(fd, junk, (size_t)len, 0, (struct sockaddr *)&to, sizeof(to)), len);
        if (i % BURST == BURST - 1)
            harness_sleep_ms(10); /* stay within the socket's receive buffer */
    }
    for (unsigned i = 0; i < MALFORMED; i++) {
        int len = snprintf(junk, sizeof(junk), "!/3 [127.0.0.1]:1 T=%u{C=%u{", i + 1, i);
        ck_assert_int_eq(iq_client_send_raw(mgc, junk, (size_t)len), 0);
        if (i % BURST == BURST - 1) {
            harness_sleep_ms(10);
            drain_events();
        }
    }
    /* After a second, one more of each flushes the suppressed counts into the log. */
    harness_sleep_ms(1100);
    ck_assert_int_eq(sendto(fd, "x", 1, 0, (struct sockaddr *)&to, sizeof(to)), 1);
    ck_assert_int_eq(iq_client_send_raw(mgc, "x", 1), 0);
    harness_sleep_ms(200);
    drain_events();
    unsigned seconds = (unsigned)((now_ms() - t0) / 1000) + 2;
    unsigned long suppressed;
    unsigned dropped = log_lines("not a configured MGC", NULL);
    unsigned malformed = log_lines("iq: malformed message", NULL);
    unsigned notes = log_lines("similar log lines suppressed", &suppressed);
    fprintf(stderr,
            "Iq flood over %u s: %u 'not a configured MGC' + %u 'malformed' lines, %u notes of "
            "%lu suppressed\n",
            seconds - 2, dropped, malformed, notes, suppressed);
    ck_assert_msg(dropped + malformed <= 10 * seconds && notes <= seconds,
                  "%u + %u lines in %u s (log %s)", dropped, malformed, seconds - 2, log_path);
    /* Most datagrams reached the daemon: the limit, not the kernel, kept the log short. */
    ck_assert_msg(dropped + malformed + suppressed >= (JUNK + MALFORMED) / 2,
                  "only %lu of %u datagrams accounted for", dropped + malformed + suppressed,
                  JUNK + MALFORMED + 2);
    close(fd);
    unsigned code;
    request("C=-{AV=ROOT{AT{}}}", &code);
    ck_assert_uint_eq(code, 0);
    struct plain p;
    plain_open(&p);
    plain_connect(&p);
    plain_exchange(&p);
    plain_close(&p);
    stop();
}
END_TEST

static Suite *overload_suite(void)
{
    Suite *s = suite_create("overload");
    TCase *tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 40);
    tcase_add_test(tc, max_contexts_answers_510);
    tcase_add_test(tc, out_of_descriptors_refused_cleanly);
    tcase_add_test(tc, refused_connection_flood_keeps_serving);
    tcase_add_test(tc, refused_connection_flood_log_is_bounded);
    tcase_add_test(tc, garbage_handshake_flood_log_is_bounded);
    tcase_add_test(tc, iq_flood_log_is_bounded);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(overload_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
