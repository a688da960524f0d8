/* Check suite: SIGHUP on the real daemon with a rewritten configuration file (the MGC list, the
 * transaction timers, max_terminations_per_context) and the open-files limit at start; this test
 * plays the MGCs, a UE and a core peer. */
#include "h248/h248.h"
#include "tests/harness.h"
#include "tools/iq_client.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t child = -1;
static char log_path[64], conf_path[64];
static uint16_t iq_port, realm_base;
static char gw_addr[32], m1_addr[32], m2_addr[32];
static struct iq_client *m1, *m2;

/* Writes the file the daemon reads (and reads again on SIGHUP): the MGC list as given, the
 * realms, and extra [global] lines. */
static void write_conf(const char *mgcs, const char *extra)
{
    FILE *f = fopen(conf_path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "[global]\niq_listen = %s\nmgc = %s\nworkers = 1\nlog_level = debug\n"
            "control_socket =\n%s"
            "[realm access]\naddress = 127.0.0.1\nports = %u-%u\n"
            "[realm core]\naddress = 127.0.0.1\nports = %u-%u\n",
            gw_addr, mgcs, extra != NULL ? extra : "", realm_base, realm_base + 19, realm_base + 20,
            realm_base + 39);
    ck_assert_int_eq(fclose(f), 0);
}

/* Addresses for the gateway and two MGCs, each MGC's client open. */
static void setup(void)
{
    iq_port = harness_free_port(SOCK_DGRAM);
    /* Below the ephemeral range, apart from the other suites' realms. */
    realm_base = (uint16_t)(12000 + (getpid() % 100) * 40);
    snprintf(gw_addr, sizeof(gw_addr), "127.0.0.1:%u", iq_port);
    snprintf(m1_addr, sizeof(m1_addr), "127.0.0.1:%u", harness_free_port(SOCK_DGRAM));
    snprintf(m2_addr, sizeof(m2_addr), "127.0.0.1:%u", harness_free_port(SOCK_DGRAM));
    snprintf(log_path, sizeof(log_path), "/tmp/test_reload.%d.log", (int)getpid());
    snprintf(conf_path, sizeof(conf_path), "/tmp/test_reload.%d.conf", (int)getpid());
    ck_assert_int_eq(iq_client_open(m1_addr, gw_addr, NULL, NULL, &m1), 0);
    ck_assert_int_eq(iq_client_open(m2_addr, gw_addr, NULL, NULL, &m2), 0);
}

static void teardown(void)
{
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        child = -1;
    }
    iq_client_close(m1);
    iq_client_close(m2);
    m1 = m2 = NULL;
    unlink(log_path);
    unlink(conf_path);
}

/* Starts ims-agw -c conf_path. fd_soft > 0: the open-files limit it starts with (soft, hard). */
static void daemon_start(rlim_t fd_soft, rlim_t fd_hard)
{
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, STDERR_FILENO);
        if (fd_soft > 0) {
            struct rlimit rl = {.rlim_cur = fd_soft, .rlim_max = fd_hard};
            if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                _exit(126);
        }
        execl(harness_agw_bin(), harness_agw_bin(), "-c", conf_path, (char *)NULL);
        _exit(127);
    }
}

/* How many times needle occurs in the daemon's log (first 1 MiB). */
static unsigned log_count(const char *needle)
{
    static char buf[1 << 20];
    FILE *f = fopen(log_path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    unsigned count = 0;
    for (const char *p = strstr(buf, needle); p != NULL; p = strstr(p + 1, needle))
        count++;
    return count;
}

/* Waits until the log holds needle at least times times. */
static bool log_wait(const char *needle, unsigned times, int ms)
{
    int rounds = harness_ms(ms) / 10;
    for (int i = 0; i < rounds; i++) {
        if (log_count(needle) >= times)
            return true;
        harness_sleep_ms(10);
    }
    return log_count(needle) >= times;
}

/* SIGHUP, and back once the daemon says the reload is done. */
static void reload(void)
{
    unsigned before = log_count("configuration reloaded");
    ck_assert_int_eq(kill(child, SIGHUP), 0);
    ck_assert_msg(log_wait("configuration reloaded", before + 1, 5000), "no reload (see %s)",
                  log_path);
}

static void register_with(struct iq_client *mgc, const char *addr)
{
    struct iq_event ev;
    ck_assert_msg(iq_client_wait_registration(mgc, harness_ms(5000), NULL, NULL, &ev) == 0,
                  "no ServiceChange to %s (see %s)", addr, log_path);
    iq_event_release(&ev);
    char line[64];
    snprintf(line, sizeof(line), "registered with MGC %s", addr);
    ck_assert_msg(log_wait(line, 1, 2000), "no '%s' (see %s)", line, log_path);
}

/* SIGTERM: the Forced ServiceChange reaches mgc, and the daemon exits 0 (no leak under ASan). */
static void daemon_stop(struct iq_client *mgc)
{
    ck_assert_int_eq(kill(child, SIGTERM), 0);
    struct iq_event ev;
    ck_assert_int_eq(iq_client_recv(mgc, harness_ms(5000), &ev), 0);
    const struct h248_command *cmd = ev.msg->transactions->actions->commands;
    ck_assert_int_eq(cmd->kind, H248_CMD_SERVICE_CHANGE);
    ck_assert_int_eq(cmd->descriptors->u.service_change.method, H248_SC_FORCED);
    iq_event_release(&ev);
    int status = harness_wait_exit(child, 10000);
    ck_assert_msg(status != -1, "ims-agw did not stop on SIGTERM");
    child = -1;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d (see %s)", status,
                  log_path);
}

__attribute__((format(printf, 3, 4))) static const char *
request(struct iq_client *mgc, unsigned *code, const char *fmt, ...)
{
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    return harness_request(mgc, text, code);
}

/* ---- Plain TCP through the gateway ---- */

static int tcp_listen(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fd, 4), 0);
    socklen_t len = sizeof(a);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static int tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static int tcp_accept(int listen_fd, int ms)
{
    struct pollfd p = {.fd = listen_fd, .events = POLLIN};
    if (poll(&p, 1, harness_ms(ms)) <= 0)
        return -1;
    return accept(listen_fd, NULL, NULL);
}

/* Sends text on from; to must receive exactly it within 3 s. */
static void pass(int from, int to, const char *text)
{
    size_t len = strlen(text);
    ck_assert_int_eq(write(from, text, len), (ssize_t)len);
    char buf[256];
    size_t got = 0;
    while (got < len) {
        struct pollfd p = {.fd = to, .events = POLLIN};
        ck_assert_msg(poll(&p, 1, harness_ms(3000)) == 1, "'%s': %zu of %zu bytes arrived", text,
                      got, len);
        ssize_t n = read(to, buf + got, sizeof(buf) - got);
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
    }
    ck_assert_uint_eq(got, len);
    ck_assert(memcmp(buf, text, len) == 0);
}

/* A context of two plain TCP legs (the gateway connects to the core listener once the UE
 * connected); its id, and the UE's and the core's sockets. */
static unsigned plain_session(struct iq_client *mgc, int core_listen, uint16_t core_port,
                              int *ue_fd, int *core_fd)
{
    unsigned code;
    const char *r = request(mgc, &code,
                            "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\n"
                            "m=application $ TCP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\n"
                            "m=application %u TCP *\r\na=setup:passive\r\n}}}}}",
                            core_port);
    ck_assert_msg(code == 0, "%s", r);
    unsigned ctx = (unsigned)harness_number_after(r, "C=");
    r = request(mgc, &code,
                "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\n"
                "m=application $ TCP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=application 9 TCP "
                "*\r\na=setup:active\r\n}}}}}",
                ctx);
    ck_assert_msg(code == 0, "%s", r);
    uint16_t port = (uint16_t)harness_number_after(r, "m=application ");
    *ue_fd = tcp_connect(port);
    *core_fd = tcp_accept(core_listen, 3000);
    ck_assert_msg(*core_fd >= 0, "the gateway did not connect to the core (see %s)", log_path);
    return ctx;
}

/* ---- The MGC list ---- */

/* The MGC in use leaves the list: the first MGC of the new list gets the ServiceChange (as
 * after a failover: Disconnected, the contexts kept), the session's bytes keep flowing, and its
 * context is audited and released through the new MGC. The old one is no longer heard. */
START_TEST(mgc_replaced_takes_over_with_contexts)
{
    write_conf(m1_addr, NULL);
    daemon_start(0, 0);
    register_with(m1, m1_addr);
    uint16_t core_port;
    int core_listen = tcp_listen(&core_port);
    int ue_fd, core_fd;
    unsigned ctx = plain_session(m1, core_listen, core_port, &ue_fd, &core_fd);
    pass(ue_fd, core_fd, "before the reload, up");
    pass(core_fd, ue_fd, "before the reload, down");

    write_conf(m2_addr, NULL);
    ck_assert_int_eq(kill(child, SIGHUP), 0);
    struct iq_event ev;
    ck_assert_msg(iq_client_wait_registration(m2, harness_ms(5000), NULL, NULL, &ev) == 0,
                  "the new MGC got no ServiceChange (see %s)", log_path);
    const struct h248_transaction *t = ev.msg->transactions;
    ck_assert_int_eq(t->actions->context.kind, H248_CTX_NULL);
    const struct h248_command *cmd = t->actions->commands;
    ck_assert_int_eq(cmd->kind, H248_CMD_SERVICE_CHANGE);
    ck_assert(cmd->terminations->text.len == 4 &&
              memcmp(cmd->terminations->text.ptr, "ROOT", 4) == 0);
    const struct h248_service_change *sc = &cmd->descriptors->u.service_change;
    ck_assert_int_eq(sc->method, H248_SC_DISCONNECTED);
    ck_assert(sc->has_reason && sc->reason.text.len >= 3 &&
              memcmp(sc->reason.text.ptr, "900", 3) == 0);
    iq_event_release(&ev);
    char line[96];
    snprintf(line, sizeof(line), "registered with MGC %s", m2_addr);
    ck_assert_msg(log_wait(line, 1, 2000), "no '%s' (see %s)", line, log_path);
    snprintf(line, sizeof(line), "MGC %s is no longer in it", m1_addr);
    ck_assert_msg(log_count(line) == 1, "see %s", log_path);

    /* The media never stopped. */
    pass(ue_fd, core_fd, "after the reload, up");
    pass(core_fd, ue_fd, "after the reload, down");
    /* The new MGC sees the context, both terminations in it. */
    unsigned code;
    const char *r = request(m2, &code, "C=%u{AV=*{AT{}}}", ctx);
    ck_assert_msg(code == 0 && strstr(r, "ip/core/") != NULL && strstr(r, "ip/access/") != NULL,
                  "%s", r);
    /* The old MGC is not heard any more. */
    unsigned dropped = log_count("not a configured MGC");
    const char *av = "!/3 [127.0.0.1]:1 T=77{C=-{AV=ROOT{AT{}}}}";
    ck_assert_int_eq(iq_client_send_raw(m1, av, strlen(av)), 0);
    ck_assert_msg(log_wait("not a configured MGC", dropped + 1, 2000), "see %s", log_path);
    ck_assert_int_eq(iq_client_recv(m1, 300, &ev), -ETIMEDOUT);
    /* Released through the new MGC, with the bytes of both legs counted. */
    r = request(m2, &code, "C=%u{S=*}", ctx);
    ck_assert_msg(code == 0 && strstr(r, "nt/os=") != NULL, "%s", r);
    r = request(m2, &code, "C=%u{AV=*{AT{}}}", ctx);
    ck_assert_msg(code != 0, "the context is still there: %s", r);
    close(ue_fd);
    close(core_fd);
    close(core_listen);
    daemon_stop(m2);
}
END_TEST

/* The same list, or a list that still holds the MGC in use: no new ServiceChange anywhere. */
START_TEST(mgc_kept_means_no_registration)
{
    write_conf(m1_addr, NULL);
    daemon_start(0, 0);
    register_with(m1, m1_addr);
    unsigned code;
    const char *r = request(m1, &code, "C=-{AV=ROOT{AT{}}}");
    ck_assert_msg(code == 0, "%s", r);

    /* Unchanged list, another key changed. */
    write_conf(m1_addr, "max_contexts = 500\n");
    reload();
    struct iq_event ev;
    ck_assert_int_eq(iq_client_recv(m1, 1000, &ev), -ETIMEDOUT);
    ck_assert_uint_eq(log_count("MGC list reloaded"), 0);
    ck_assert_uint_eq(log_count("registering with MGC"), 1);
    r = request(m1, &code, "C=-{AV=ROOT{AT{}}}");
    ck_assert_msg(code == 0, "%s", r);

    /* A new first MGC, the one in use second: it stays in use. */
    char both[80];
    snprintf(both, sizeof(both), "%s, %s", m2_addr, m1_addr);
    write_conf(both, NULL);
    reload();
    ck_assert_int_eq(iq_client_recv(m1, 1000, &ev), -ETIMEDOUT);
    ck_assert_int_eq(iq_client_recv(m2, 10, &ev), -ETIMEDOUT);
    char line[96];
    snprintf(line, sizeof(line), "MGC %s kept", m1_addr);
    ck_assert_msg(log_count(line) == 1, "see %s", log_path);
    ck_assert_uint_eq(log_count("registering with MGC"), 1);
    r = request(m1, &code, "C=-{AV=ROOT{AT{}}}");
    ck_assert_msg(code == 0, "%s", r);
    daemon_stop(m1);
}
END_TEST

/* An MGC reached through MgcIdToTry was never in the list: a reload keeps it in use. */
START_TEST(redirected_mgc_kept)
{
    write_conf(m1_addr, NULL);
    daemon_start(0, 0);
    char to[40];
    snprintf(to, sizeof(to), "[127.0.0.1]:%s", strchr(m2_addr, ':') + 1);
    struct iq_register_reply redirect = {.redirect_mid = to};
    ck_assert_int_eq(iq_client_wait_registration(m1, harness_ms(5000), &redirect, NULL, NULL), 0);
    register_with(m2, m2_addr);
    /* The MGC that redirected leaves the list. */
    char other[32];
    snprintf(other, sizeof(other), "127.0.0.1:%u", harness_free_port(SOCK_DGRAM));
    write_conf(other, NULL);
    reload();
    struct iq_event ev;
    ck_assert_int_eq(iq_client_recv(m2, 1000, &ev), -ETIMEDOUT);
    char line[96];
    snprintf(line, sizeof(line), "MGC %s kept", m2_addr);
    ck_assert_msg(log_count(line) == 1, "see %s", log_path);
    unsigned code;
    const char *r = request(m2, &code, "C=-{AV=ROOT{AT{}}}");
    ck_assert_msg(code == 0, "%s", r);
    daemon_stop(m2);
}
END_TEST

/* ---- max_terminations_per_context ---- */

#define CORE_ADD                                                                                   \
    "A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=application $ TCP *\r\n}}}}"

/* The number of terminations an audit of context ctx lists. */
static unsigned terms_in(struct iq_client *mgc, unsigned ctx)
{
    unsigned code, n = 0;
    const char *r = request(mgc, &code, "C=%u{AV=*{AT{}}}", ctx);
    ck_assert_msg(code == 0, "%s", r);
    for (const char *p = strstr(r, "ip/core/"); p != NULL; p = strstr(p + 1, "ip/core/"))
        n++;
    return n;
}

START_TEST(max_terminations_lowered_applies_to_new_adds)
{
    write_conf(m1_addr, "max_terminations_per_context = 4\n");
    daemon_start(0, 0);
    register_with(m1, m1_addr);
    unsigned code;
    const char *r = request(m1, &code, "C=${" CORE_ADD "}");
    ck_assert_msg(code == 0, "%s", r);
    unsigned full = (unsigned)harness_number_after(r, "C=");
    for (int i = 0; i < 2; i++) {
        r = request(m1, &code, "C=%u{" CORE_ADD "}", full);
        ck_assert_msg(code == 0, "%s", r);
    }
    ck_assert_uint_eq(terms_in(m1, full), 3);

    write_conf(m1_addr, "max_terminations_per_context = 2\n");
    reload();
    /* The context above the new limit keeps its three; a fourth is refused as at the limit. */
    r = request(m1, &code, "C=%u{" CORE_ADD "}", full);
    ck_assert_msg(code == 434, "%s", r);
    ck_assert_uint_eq(terms_in(m1, full), 3);
    /* A new context holds two. */
    r = request(m1, &code, "C=${" CORE_ADD "}");
    ck_assert_msg(code == 0, "%s", r);
    unsigned fresh = (unsigned)harness_number_after(r, "C=");
    r = request(m1, &code, "C=%u{" CORE_ADD "}", fresh);
    ck_assert_msg(code == 0, "%s", r);
    r = request(m1, &code, "C=%u{" CORE_ADD "}", fresh);
    ck_assert_msg(code == 434, "%s", r);
    ck_assert_uint_eq(terms_in(m1, fresh), 2);

    /* Raised again: room again. */
    write_conf(m1_addr, "max_terminations_per_context = 3\n");
    reload();
    r = request(m1, &code, "C=%u{" CORE_ADD "}", fresh);
    ck_assert_msg(code == 0, "%s", r);
    ck_assert_uint_eq(terms_in(m1, fresh), 3);
    /* No re-registration for any of this. */
    ck_assert_uint_eq(log_count("registering with MGC"), 1);
    daemon_stop(m1);
}
END_TEST

/* A termination that takes no port: the gateway is TCP-active toward the core. */
#define ACTIVE_ADD                                                                                 \
    "A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=application $ TCP *\r\n},"       \
    "R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=application 9999 TCP *\r\na=setup:passive\r\n}}}}"

/* max_contexts goes up to what the context table made at start holds (twice the start value
 * rounded up to a power of two, 64 at least, at half load); beyond, it waits for a restart. */
START_TEST(max_contexts_raised_within_the_table)
{
    write_conf(m1_addr, "max_contexts = 20\n");
    daemon_start(0, 0);
    register_with(m1, m1_addr);
    write_conf(m1_addr, "max_contexts = 100\n");
    reload();
    ck_assert_msg(log_count("max_contexts 100 is more than the context table made at start "
                            "holds: 32 until a restart") == 1,
                  "see %s", log_path);
    unsigned code;
    for (int i = 0; i < 34; i++) {
        const char *r = request(m1, &code, "C=${" ACTIVE_ADD "}");
        ck_assert_msg(code == (i < 32 ? 0 : 510), "context %d: %s", i + 1, r);
    }
    daemon_stop(m1);
}
END_TEST

/* ---- Transaction timers ---- */

/* Sends the raw request and returns the reply in compact form (static). */
static const char *raw_exchange(struct iq_client *mgc, const char *msg)
{
    static char out[4096];
    ck_assert_int_eq(iq_client_send_raw(mgc, msg, strlen(msg)), 0);
    struct iq_event ev;
    ck_assert_int_eq(iq_client_recv(mgc, harness_ms(3000), &ev), 0);
    size_t len;
    ck_assert_int_eq(h248_encode_message(ev.msg, H248_STYLE_COMPACT, out, sizeof(out) - 1, &len),
                     0);
    out[len] = '\0';
    iq_event_release(&ev);
    return out;
}

/* New timers for new transactions: a repetition of a request answered before the reload is
 * still answered from the cache of its time (not executed again), and the gateway's own next
 * request (a ServiceChange toward a silent MGC) is given up on by the new timers. */
START_TEST(timers_apply_to_new_transactions)
{
    write_conf(m1_addr, NULL);
    daemon_start(0, 0);
    register_with(m1, m1_addr);
    char msg[512], first[4096];
    uint16_t m1_port = (uint16_t)atoi(strchr(m1_addr, ':') + 1);
    snprintf(msg, sizeof(msg), "!/3 [127.0.0.1]:%u T=4242{C=${%s}}", m1_port, CORE_ADD);
    snprintf(first, sizeof(first), "%s", raw_exchange(m1, msg));
    ck_assert_msg(strstr(first, "ip/core/1") != NULL, "%s", first);

    static const char timers[] = "long_timer_ms = 20000\nprovisional_timer_ms = 300\n"
                                 "mg_initial_rto_ms = 100\nmg_min_rto_ms = 50\n"
                                 "mg_max_rto_ms = 200\nmg_max_retransmissions = 1\n";
    write_conf(m1_addr, timers);
    reload();
    ck_assert_msg(log_count("transaction timers changed") == 1, "see %s", log_path);
    /* The repetition: the same reply, and still one termination. */
    ck_assert_str_eq(raw_exchange(m1, msg), first);
    unsigned ctx = (unsigned)harness_number_after(first, "C=");
    ck_assert_uint_eq(terms_in(m1, ctx), 1);
    /* A new transaction, and its own repetition. */
    snprintf(msg, sizeof(msg), "!/3 [127.0.0.1]:%u T=4243{C=${%s}}", m1_port, CORE_ADD);
    char second[4096];
    snprintf(second, sizeof(second), "%s", raw_exchange(m1, msg));
    ck_assert_msg(strstr(second, "ip/core/2") != NULL, "%s", second);
    ck_assert_str_eq(raw_exchange(m1, msg), second);
    /* Acknowledged, both: late copies are dropped, whichever table holds them. */
    snprintf(msg, sizeof(msg), "!/3 [127.0.0.1]:%u K{4242-4243}", m1_port);
    ck_assert_int_eq(iq_client_send_raw(m1, msg, strlen(msg)), 0);
    for (unsigned tid = 4242; tid <= 4243; tid++) {
        snprintf(msg, sizeof(msg), "!/3 [127.0.0.1]:%u T=%u{C=${%s}}", m1_port, tid, CORE_ADD);
        ck_assert_int_eq(iq_client_send_raw(m1, msg, strlen(msg)), 0);
    }
    struct iq_event ev;
    ck_assert_int_eq(iq_client_recv(m1, 500, &ev), -ETIMEDOUT);

    /* A silent MGC first: the old timers (500 ms doubling to 4 s, 7 retransmissions) would
     * keep trying it for about 25 s, the new ones (100 ms to 200 ms, 1) for well under 1 s. */
    char silent[32], list[80];
    snprintf(silent, sizeof(silent), "127.0.0.1:%u", harness_free_port(SOCK_DGRAM));
    snprintf(list, sizeof(list), "%s, %s", silent, m2_addr);
    write_conf(list, timers);
    reload();
    ck_assert_msg(iq_client_wait_registration(m2, harness_ms(3000), NULL, NULL, NULL) == 0,
                  "the second MGC got no ServiceChange in 3 s (see %s)", log_path);
    char line[96];
    snprintf(line, sizeof(line), "MGC %s lost (no reply)", silent);
    ck_assert_msg(log_count(line) == 1, "see %s", log_path);
    /* The contexts made before are there for the new MGC. */
    ck_assert_uint_eq(terms_in(m2, ctx), 1);
    daemon_stop(m2);
}
END_TEST

/* ---- Open files ---- */

/* The soft limit goes up to the hard one at start; a limit below what max_contexts needs
 * (4 a context + 64) is warned about, at start and when a reload raises max_contexts. */
START_TEST(fd_limit_raised_to_hard)
{
    write_conf(m1_addr, "max_contexts = 2000\n");
    daemon_start(256, 4096);
    register_with(m1, m1_addr);
    ck_assert_msg(log_count("open files: limit 4096 (raised from 256)") == 1, "see %s", log_path);
    char path[64], text[8192];
    snprintf(path, sizeof(path), "/proc/%d/limits", (int)child);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *line = strstr(text, "Max open files");
    ck_assert_ptr_nonnull(line);
    unsigned long soft = 0, hard = 0;
    ck_assert_int_eq(sscanf(line, "Max open files %lu %lu", &soft, &hard), 2);
    ck_assert_uint_eq(soft, 4096);
    ck_assert_uint_eq(hard, 4096);
    /* 2000 contexts may need 8064. */
    ck_assert_msg(log_count("the limit 4096 is below the 8064 that max_contexts 2000") == 1,
                  "see %s", log_path);
    /* 1000 fit (4064): no warning; 5000 do not. */
    write_conf(m1_addr, "max_contexts = 1000\n");
    reload();
    ck_assert_uint_eq(log_count("open files: the limit"), 1);
    write_conf(m1_addr, "max_contexts = 5000\n");
    reload();
    ck_assert_msg(log_count("the limit 4096 is below the 20064 that max_contexts 5000") == 1,
                  "see %s", log_path);
    daemon_stop(m1);
}
END_TEST

START_TEST(fd_limit_enough_no_warning)
{
    write_conf(m1_addr, "max_contexts = 50\n"); /* 264 needed */
    daemon_start(300, 300);
    register_with(m1, m1_addr);
    ck_assert_msg(log_count("open files: limit 300\n") == 1, "see %s", log_path);
    ck_assert_uint_eq(log_count("open files: the limit"), 0);
    daemon_stop(m1);
}
END_TEST

static Suite *reload_suite(void)
{
    Suite *s = suite_create("reload");
    TCase *tc = tcase_create("sighup");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, mgc_replaced_takes_over_with_contexts);
    tcase_add_test(tc, mgc_kept_means_no_registration);
    tcase_add_test(tc, redirected_mgc_kept);
    tcase_add_test(tc, max_terminations_lowered_applies_to_new_adds);
    tcase_add_test(tc, max_contexts_raised_within_the_table);
    tcase_add_test(tc, timers_apply_to_new_transactions);
    tcase_add_test(tc, fd_limit_raised_to_hard);
    tcase_add_test(tc, fd_limit_enough_no_warning);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(reload_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
