/* Check suite: the real ims-agw on loopback, driven as its MGC over Iq (registration,
 * commands, duplicates, Pending, errors, failover, inactivity, shutdown). */
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t child = -1;
static char log_path[64];
static uint16_t iq_port, mgc_port, mgc2_port, realm_base;
static struct iq_client *mgc;

/* Starts the daemon with the common options plus extra ones (NULL-terminated). */
static void daemon_start_with(const char *env, const char *const *extra)
{
    char iq[32], m1[32], access[64], core[64];
    iq_port = harness_free_port(SOCK_DGRAM);
    mgc_port = harness_free_port(SOCK_DGRAM);
    mgc2_port = harness_free_port(SOCK_DGRAM);
    /* Realm ports apart from other runs of the suite (plain and ASan may overlap in time). */
    /* Below the kernel's ephemeral ports (32768+), where free_udp_port finds the Iq ports. */
    realm_base = (uint16_t)(20000 + (getpid() % 100) * 40);
    snprintf(iq, sizeof(iq), "127.0.0.1:%u", iq_port);
    snprintf(m1, sizeof(m1), "127.0.0.1:%u", mgc_port);
    snprintf(access, sizeof(access), "access,127.0.0.1,%u-%u", realm_base, realm_base + 19);
    snprintf(core, sizeof(core), "core,127.0.0.1,%u-%u", realm_base + 20, realm_base + 39);
    const char *argv[40] = {harness_agw_bin(),
                            "--iq-listen",
                            iq,
                            "--mgc",
                            m1,
                            "--workers",
                            "1",
                            "--realm",
                            access,
                            "--realm",
                            core,
                            "--mg-initial-rto-ms",
                            "100",
                            "--log-level",
                            "debug"};
    size_t n = 15;
    for (; extra != NULL && *extra != NULL && n < 38; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    snprintf(log_path, sizeof(log_path), "/tmp/test_daemon.%d.log", (int)getpid());
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, STDERR_FILENO);
        if (env != NULL)
            putenv((char *)env);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    char gw[32];
    snprintf(gw, sizeof(gw), "127.0.0.1:%u", iq_port);
    ck_assert_int_eq(iq_client_open(m1, gw, NULL, NULL, &mgc), 0);
}

static void daemon_start(void)
{
    daemon_start_with(NULL, NULL);
}

static void register_gateway(void)
{
    struct iq_event ev;
    ck_assert_int_eq(iq_client_wait_registration(mgc, harness_ms(5000), NULL, NULL, &ev), 0);
    iq_event_release(&ev);
    /* The gateway logs once it took our reply. */
    for (int i = 0; i < harness_ms(200) && !harness_log_contains(log_path, "registered with MGC");
         i++)
        harness_sleep_ms(10);
}

/* Stops the daemon with SIGTERM and checks it exits 0 (under ASan: no leak either). */
static void daemon_stop(void)
{
    if (child > 0) {
        kill(child, SIGTERM);
        int status = harness_wait_exit(child, 10000);
        if (status == -1) {
            kill(child, SIGKILL);
            waitpid(child, &status, 0);
            ck_abort_msg("ims-agw did not stop on SIGTERM");
        }
        child = -1;
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "ims-agw exit status %d (see %s)", status, log_path);
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
    unlink(log_path);
}

/* Sends text as one transaction; the reply in compact form (static), "" on timeout. */
static const char *request(const char *text, unsigned *code)
{
    static char out[16384];
    struct iq_reply reply;
    struct h248_parse_error err;
    int rc = iq_client_request_text(mgc, text, strlen(text), harness_ms(3000), &reply, &err);
    ck_assert_msg(rc == 0, "request failed: %d %s", rc, err.text);
    out[0] = '\0';
    if (reply.status == 0) {
        size_t len;
        ck_assert_int_eq(
            h248_encode_message(reply.msg, H248_STYLE_COMPACT, out, sizeof(out) - 1, &len), 0);
        out[len] = '\0';
    }
    const struct h248_error_desc *e = reply.status == 0 ? iq_reply_error(&reply) : NULL;
    if (code != NULL)
        *code = e != NULL ? e->code : 0;
    iq_reply_release(&reply);
    return out;
}

#define ACCESS_ADD                                                                                 \
    "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=message $ TCP/TLS/MSRP "   \
    "*\r\na=fingerprint:$\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message 49152 TCP/TLS/MSRP "       \
    "*\r\na=setup:active\r\na=fingerprint:sha-256 "                                                \
    "4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:3C:11:B5:34:22:B0:12:33:44:55:"   \
    "66:77\r\n}}}}}"

START_TEST(version_and_config_check)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "%s -V", harness_agw_bin());
    FILE *p = popen(cmd, "r");
    char line[128] = "";
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), p));
    ck_assert_int_eq(pclose(p), 0);
    ck_assert_msg(strncmp(line, "ims-agw ", 8) == 0, "%s", line);
    snprintf(cmd, sizeof(cmd), "%s -t --max-contexts 0 2>&1", harness_agw_bin());
    p = popen(cmd, "r");
    line[0] = '\0';
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), p));
    ck_assert_int_ne(pclose(p), 0);
    ck_assert_msg(strstr(line, "max-contexts") != NULL, "%s", line);
}
END_TEST

START_TEST(registration_then_commands)
{
    daemon_start();
    struct iq_event ev;
    ck_assert_int_eq(iq_client_wait_registration(mgc, harness_ms(5000), NULL, NULL, &ev), 0);
    char text[512];
    size_t len;
    ck_assert_int_eq(h248_encode_message(ev.msg, H248_STYLE_COMPACT, text, sizeof(text) - 1, &len),
                     0);
    text[len] = '\0';
    iq_event_release(&ev);
    ck_assert_msg(strstr(text, "SC=ROOT{SV{MT=RS,RE=\"901") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "V=3") != NULL && strstr(text, "PF=threegiq/1") != NULL, "%s", text);
    for (int i = 0; i < harness_ms(200) && !harness_log_contains(log_path, "registered with MGC");
         i++)
        harness_sleep_ms(10);

    unsigned code;
    const char *r = request(ACCESS_ADD, &code);
    ck_assert_msg(code == 0, "%s", r);
    ck_assert_msg(strstr(r, "A=ip/access/1{M{ST=1{L{") != NULL, "%s", r);
    ck_assert_msg(strstr(r, "a=fingerprint:sha-256 ") != NULL, "%s", r);
    char want[64];
    snprintf(want, sizeof(want), "m=message %u TCP/TLS/MSRP", realm_base);
    ck_assert_msg(strstr(r, want) != NULL, "%s lacks %s", r, want);
    /* The port is really reserved: a TCP connection to it is accepted by the kernel. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(realm_base),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    close(fd);

    r = request("C=1{A=${M{ST=1{O{ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=message $ TCP/MSRP "
                "*\r\n}}}}}",
                &code);
    ck_assert_msg(code == 0 && strstr(r, "A=ip/core/1") != NULL, "%s", r);
    r = request("C=1{MF=ip/core/1{M{ST=1{R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message 7394 TCP/MSRP "
                "*\r\na=setup:passive\r\n}}}}}",
                &code);
    ck_assert_msg(code == 0 && strstr(r, "MF=ip/core/1") != NULL, "%s", r);
    r = request("C=1{AV=ip/access/1{AT{M}}}", &code);
    ck_assert_msg(code == 0 && strstr(r, "R{v=0") != NULL, "%s", r);
    r = request("C=1{S=*}", &code);
    /* The probe connection above got the gateway's alert: a few octets went out. */
    ck_assert_msg(code == 0 && strstr(r, "S=ip/access/1{SA{nt/os=") != NULL, "%s", r);
    ck_assert_msg(strstr(r, "S=ip/core/1{SA{") != NULL, "%s", r);
    r = request("C=1{S=*}", &code);
    ck_assert_msg(code == 411, "%s", r);
    r = request("C=-{AV=ROOT{AT{}}}", &code);
    ck_assert_msg(code == 0 && strstr(r, "AV=ROOT") != NULL, "%s", r);
    daemon_stop();
}
END_TEST

START_TEST(requests_before_registration_get_505)
{
    daemon_start();
    /* A plain socket on the MGC's address: it sees the ServiceChange and leaves it unanswered
     * (the Iq client would answer it), so the gateway is surely up and not yet registered. */
    iq_client_close(mgc);
    mgc = NULL;
    int raw = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(mgc_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(raw, (struct sockaddr *)&a, sizeof(a)), 0);
    struct pollfd pfd = {.fd = raw, .events = POLLIN};
    char buf[2048];
    ck_assert_int_eq(poll(&pfd, 1, harness_ms(5000)), 1);
    ck_assert_int_gt(recv(raw, buf, sizeof(buf), 0), 0);
    struct sockaddr_in gw = {.sin_family = AF_INET,
                             .sin_port = htons(iq_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int n = snprintf(buf, sizeof(buf), "!/3 [127.0.0.1]:%u T=31{C=-{AV=ROOT{AT{}}}}", mgc_port);
    ck_assert_int_eq(sendto(raw, buf, (size_t)n, 0, (struct sockaddr *)&gw, sizeof(gw)), n);
    /* The answer to T=31 (ServiceChange retransmissions may come first). */
    bool got_505 = false;
    for (int i = 0; i < 10 && !got_505; i++) {
        ck_assert_int_eq(poll(&pfd, 1, harness_ms(3000)), 1);
        ssize_t len = recv(raw, buf, sizeof(buf) - 1, 0);
        ck_assert_int_gt(len, 0);
        buf[len] = '\0';
        got_505 = strstr(buf, "P=31{") != NULL && strstr(buf, "ER=505") != NULL;
    }
    ck_assert_msg(got_505, "no 505 for a request before registration: %s", buf);
    close(raw);
    char m1[32], gwtext[32];
    snprintf(m1, sizeof(m1), "127.0.0.1:%u", mgc_port);
    snprintf(gwtext, sizeof(gwtext), "127.0.0.1:%u", iq_port);
    ck_assert_int_eq(iq_client_open(m1, gwtext, NULL, NULL, &mgc), 0);
    register_gateway();
    unsigned code;
    const char *r = request("C=-{AV=ROOT{AT{}}}", &code);
    ck_assert_msg(code == 0, "%s", r);
    daemon_stop();
}
END_TEST

START_TEST(lost_registration_reply_is_retransmitted)
{
    daemon_start();
    /* Swallow the first ServiceChange on a plain socket: the gateway must send it again. */
    iq_client_close(mgc);
    mgc = NULL;
    int raw = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(mgc_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(raw, (struct sockaddr *)&a, sizeof(a)), 0);
    struct pollfd pfd = {.fd = raw, .events = POLLIN};
    ck_assert_int_eq(poll(&pfd, 1, harness_ms(5000)), 1);
    char first_copy[2048];
    ssize_t n = recv(raw, first_copy, sizeof(first_copy) - 1, 0);
    ck_assert_int_gt(n, 0);
    first_copy[n] = '\0';
    close(raw);
    char m1[32], gw[32];
    snprintf(m1, sizeof(m1), "127.0.0.1:%u", mgc_port);
    snprintf(gw, sizeof(gw), "127.0.0.1:%u", iq_port);
    ck_assert_int_eq(iq_client_open(m1, gw, NULL, NULL, &mgc), 0);
    struct iq_event ev;
    ck_assert_int_eq(iq_client_wait_registration(mgc, harness_ms(5000), NULL, NULL, &ev), 0);
    char tid[32];
    snprintf(tid, sizeof(tid), "T=%u{", ev.msg->transactions->id);
    ck_assert_msg(strstr(first_copy, tid) != NULL, "%s is not a copy of %s", tid, first_copy);
    iq_event_release(&ev);
    for (int i = 0; i < harness_ms(200) && !harness_log_contains(log_path, "registered with MGC");
         i++)
        harness_sleep_ms(10);
    unsigned code;
    request("C=-{AV=ROOT{AT{}}}", &code);
    ck_assert_uint_eq(code, 0);
    daemon_stop();
}
END_TEST

START_TEST(redirect_with_mgc_id_to_try)
{
    daemon_start();
    char second[32], mid[32];
    snprintf(second, sizeof(second), "127.0.0.1:%u", mgc2_port);
    snprintf(mid, sizeof(mid), "[127.0.0.1]:%u", mgc2_port);
    struct iq_client *other;
    ck_assert_int_eq(iq_client_open(second, NULL, NULL, NULL, &other), 0);
    struct iq_register_reply redirect = {.redirect_mid = mid};
    ck_assert_int_eq(iq_client_wait_registration(mgc, harness_ms(5000), &redirect, NULL, NULL), 0);
    ck_assert_int_eq(iq_client_wait_registration(other, harness_ms(5000), NULL, NULL, NULL), 0);
    for (int i = 0;
         i < harness_ms(200) && !harness_log_contains(log_path, "registered with MGC 127.0.0.1");
         i++)
        harness_sleep_ms(10);
    struct iq_client *first = mgc;
    mgc = other;
    unsigned code;
    const char *r = request("C=-{AV=ROOT{AT{}}}", &code);
    ck_assert_msg(code == 0, "%s", r);
    mgc = first;
    iq_client_close(other);
    daemon_stop();
}
END_TEST

START_TEST(duplicates_executed_once_and_ack)
{
    daemon_start();
    register_gateway();
    char msg[1024];
    int n = snprintf(msg, sizeof(msg), "!/3 [127.0.0.1]:%u T=4242{%s}", mgc_port, ACCESS_ADD);
    struct iq_event ev;
    char replies[2][2048];
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(iq_client_send_raw(mgc, msg, (size_t)n), 0);
        ck_assert_int_eq(iq_client_recv(mgc, harness_ms(3000), &ev), 0);
        size_t len;
        ck_assert_int_eq(h248_encode_message(ev.msg, H248_STYLE_COMPACT, replies[i],
                                             sizeof(replies[i]) - 1, &len),
                         0);
        replies[i][len] = '\0';
        iq_event_release(&ev);
    }
    /* The same reply twice, and only one termination was created. */
    ck_assert_str_eq(replies[0], replies[1]);
    unsigned code;
    const char *r = request("C=1{AV=*{AT{}}}", &code);
    ck_assert_msg(code == 0 && strstr(r, "ip/access/2") == NULL, "%s", r);
    /* Once acknowledged, a late copy is dropped silently. */
    n = snprintf(msg, sizeof(msg), "!/3 [127.0.0.1]:%u K{4242}", mgc_port);
    ck_assert_int_eq(iq_client_send_raw(mgc, msg, (size_t)n), 0);
    n = snprintf(msg, sizeof(msg), "!/3 [127.0.0.1]:%u T=4242{%s}", mgc_port, ACCESS_ADD);
    ck_assert_int_eq(iq_client_send_raw(mgc, msg, (size_t)n), 0);
    ck_assert_int_eq(iq_client_recv(mgc, 500, &ev), -ETIMEDOUT);
    daemon_stop();
}
END_TEST

START_TEST(slow_workers_get_pending)
{
    /* Each worker batch takes 1.2 s: longer than the 300 ms provisional timer. */
    static const char *const extra[] = {"--provisional-timer-ms", "300", NULL};
    daemon_start_with("AGW_DEBUG_WORKER_DELAY_MS=1200", extra);
    register_gateway();
    struct iq_reply reply;
    struct h248_parse_error err;
    ck_assert_int_eq(
        iq_client_request_text(mgc, ACCESS_ADD, strlen(ACCESS_ADD), harness_ms(5000), &reply, &err),
        0);
    ck_assert_int_eq(reply.status, 0);
    ck_assert_uint_ge(reply.pendings, 1);
    /* A reply that followed a Pending asks for an immediate acknowledgement (D.1.4). */
    ck_assert(reply.trans->imm_ack_required);
    ck_assert_ptr_null(iq_reply_error(&reply));
    iq_reply_release(&reply);
    struct iq_client_stats st;
    iq_client_get_stats(mgc, &st);
    ck_assert_uint_ge(st.acks_sent, 1);
    daemon_stop();
}
END_TEST

START_TEST(garbage_and_strangers)
{
    daemon_start();
    register_gateway();
    struct iq_event ev;
    const char *junk[] = {"hello", "MEGACO/1 [1.2.3.4]:1 T=9{C=1{", "\x00\x01\x02\xff"};
    const unsigned codes[] = {400, 422, 400};
    for (int i = 0; i < 3; i++) {
        size_t len = i == 2 ? 4 : strlen(junk[i]);
        ck_assert_int_eq(iq_client_send_raw(mgc, junk[i], len), 0);
        ck_assert_int_eq(iq_client_recv(mgc, harness_ms(3000), &ev), 0);
        const struct h248_error_desc *e = ev.msg->error != NULL ? ev.msg->error
                                          : ev.msg->transactions != NULL
                                              ? ev.msg->transactions->error
                                              : NULL;
        ck_assert_ptr_nonnull(e);
        ck_assert_uint_eq(e->code, codes[i]);
        iq_event_release(&ev);
    }
    /* From an address that is not a configured MGC: nothing comes back. */
    struct iq_client *stranger;
    char gw[32];
    snprintf(gw, sizeof(gw), "127.0.0.1:%u", iq_port);
    ck_assert_int_eq(iq_client_open("127.0.0.1:0", gw, NULL, NULL, &stranger), 0);
    const char *text = "C=-{AV=ROOT{AT{}}}";
    struct iq_reply reply;
    struct h248_parse_error err;
    struct iq_client_options quick = {.max_tries = 1, .retransmit_ms = 300};
    iq_client_close(stranger);
    ck_assert_int_eq(iq_client_open("127.0.0.1:0", gw, NULL, &quick, &stranger), 0);
    int rc = iq_client_request_text(stranger, text, strlen(text), 0, &reply, &err);
    ck_assert(rc == -ETIMEDOUT || (rc == 0 && reply.status == -ETIMEDOUT));
    if (rc == 0)
        iq_reply_release(&reply);
    iq_client_close(stranger);
    ck_assert(harness_log_contains(log_path, "not a configured MGC"));
    unsigned code;
    request("C=-{AV=ROOT{AT{}}}", &code);
    ck_assert_uint_eq(code, 0);
    daemon_stop();
}
END_TEST

START_TEST(limits_ports_and_contexts)
{
    static const char *const extra[] = {"--max-contexts", "3", NULL};
    daemon_start_with(NULL, extra);
    register_gateway();
    unsigned code;
    for (int i = 0; i < 3; i++) {
        const char *r = request(ACCESS_ADD, &code);
        ck_assert_msg(code == 0, "%s", r);
    }
    const char *r = request(ACCESS_ADD, &code);
    ck_assert_msg(code == 510, "%s", r);
    daemon_stop();
}
END_TEST

START_TEST(inactivity_notify)
{
    daemon_start();
    register_gateway();
    unsigned code;
    const char *r = request("C=-{MF=ROOT{E=77{it/ito{mit=30}}}}", &code);
    ck_assert_msg(code == 0, "%s", r);
    /* 300 ms without a message from us: a Notify it/ito on ROOT, which the client answers. */
    struct iq_event ev;
    ck_assert_int_eq(iq_client_recv(mgc, harness_ms(3000), &ev), 0);
    ck_assert_int_eq(ev.kind, IQ_EVENT_REQUEST);
    const struct h248_command *cmd = ev.msg->transactions->actions->commands;
    ck_assert_int_eq(cmd->kind, H248_CMD_NOTIFY);
    ck_assert_uint_eq(cmd->descriptors->u.observed.request_id, 77);
    iq_event_release(&ev);
    daemon_stop();
}
END_TEST

START_TEST(failover_to_second_mgc)
{
    char second[32];
    mgc2_port = harness_free_port(SOCK_DGRAM);
    snprintf(second, sizeof(second), "127.0.0.1:%u", mgc2_port);
    /* The first MGC (ours, silent) is configured first; the second answers. */
    static char m2[32];
    snprintf(m2, sizeof(m2), "127.0.0.1:%u", mgc2_port);
    const char *extra[] = {"--mgc", m2,  "--mg-max-retransmissions", "2", "--mg-max-rto-ms",
                           "200",   NULL};
    daemon_start_with(NULL, extra);
    struct iq_client *other;
    ck_assert_int_eq(iq_client_open(m2, NULL, NULL, NULL, &other), 0);
    ck_assert_int_eq(iq_client_wait_registration(other, harness_ms(10000), NULL, NULL, NULL), 0);
    iq_client_close(other);
    ck_assert(harness_log_contains(log_path, "lost"));
    daemon_stop();
}
END_TEST

/* SIGTERM with shutdown_drain_seconds: no new context, the running one may still be released;
 * once it is, the Forced ServiceChange goes and the daemon exits 0. */
START_TEST(sigterm_drains_first)
{
    static const char *const extra[] = {"--shutdown-drain-seconds", "30", NULL};
    daemon_start_with(NULL, extra);
    register_gateway();
    unsigned code;
    const char *r = harness_request(
        mgc, "C=${A=${M{O{ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=message $ TCP/MSRP *\r\n}}}}",
        &code);
    ck_assert_msg(code == 0, "%s", r);
    unsigned ctx = (unsigned)harness_number_after(r, "C=");
    kill(child, SIGTERM);
    for (int i = 0; i < harness_ms(200) && !harness_log_contains(log_path, "draining 1 context(s)");
         i++)
        harness_sleep_ms(10);
    ck_assert(harness_log_contains(log_path, "draining 1 context(s) for up to 30 s"));
    r = harness_request(
        mgc, "C=${A=${M{O{ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=message $ TCP/MSRP *\r\n}}}}",
        &code);
    ck_assert_msg(code == 510 && strstr(r, "draining") != NULL, "%s", r);
    char text[64];
    snprintf(text, sizeof(text), "C=%u{S=*}", ctx);
    r = harness_request(mgc, text, &code);
    ck_assert_msg(code == 0, "%s", r);
    struct iq_event ev;
    ck_assert_int_eq(iq_client_recv(mgc, harness_ms(5000), &ev), 0);
    const struct h248_command *cmd = ev.msg->transactions->actions->commands;
    ck_assert_int_eq(cmd->kind, H248_CMD_SERVICE_CHANGE);
    ck_assert_int_eq(cmd->descriptors->u.service_change.method, H248_SC_FORCED);
    iq_event_release(&ev);
    int status = harness_wait_exit(child, 10000);
    child = -1;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
}
END_TEST

/* SIGTERM without a drain time: the sessions go at once, with a Forced ServiceChange. */
START_TEST(forced_service_change_on_sigterm)
{
    daemon_start();
    register_gateway();
    kill(child, SIGTERM);
    struct iq_event ev;
    ck_assert_int_eq(iq_client_recv(mgc, harness_ms(5000), &ev), 0);
    const struct h248_command *cmd = ev.msg->transactions->actions->commands;
    ck_assert_int_eq(cmd->kind, H248_CMD_SERVICE_CHANGE);
    ck_assert_int_eq(cmd->descriptors->u.service_change.method, H248_SC_FORCED);
    iq_event_release(&ev);
    int status = harness_wait_exit(child, 10000);
    child = -1;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
}
END_TEST

START_TEST(lowered_version_is_used)
{
    daemon_start();
    struct iq_register_reply v2 = {.version = 2};
    ck_assert_int_eq(iq_client_wait_registration(mgc, harness_ms(5000), &v2, NULL, NULL), 0);
    for (int i = 0; i < harness_ms(200) && !harness_log_contains(log_path, "version 2"); i++)
        harness_sleep_ms(10);
    char msg[128];
    int n = snprintf(msg, sizeof(msg), "!/2 [127.0.0.1]:%u T=99{C=-{AV=ROOT{AT{}}}}", mgc_port);
    ck_assert_int_eq(iq_client_send_raw(mgc, msg, (size_t)n), 0);
    struct iq_event ev;
    ck_assert_int_eq(iq_client_recv(mgc, harness_ms(3000), &ev), 0);
    ck_assert_uint_eq(ev.msg->version, 2);
    iq_event_release(&ev);
    daemon_stop();
}
END_TEST

START_TEST(four_workers_move_across_contexts)
{
    static const char *const extra[] = {"--workers", "4", NULL};
    daemon_start_with(NULL, extra);
    register_gateway();
    unsigned code;
    /* Four contexts land on four workers; moving terminations between them hands the socket
     * from one worker to another. */
    for (int i = 0; i < 4; i++) {
        const char *r = request(ACCESS_ADD, &code);
        ck_assert_msg(code == 0, "%s", r);
    }
    const char *r = request("C=2{MV=ip/access/1}", &code);
    ck_assert_msg(code == 0, "%s", r);
    r = request("C=2{MV=ip/access/3}", &code);
    ck_assert_msg(code == 0, "%s", r);
    r = request("C=2{AV=*{AT{}}}", &code);
    ck_assert_msg(code == 0 && strstr(r, "ip/access/1") && strstr(r, "ip/access/2") &&
                      strstr(r, "ip/access/3"),
                  "%s", r);
    r = request("C=1{AV=*{AT{}}}", &code);
    ck_assert_msg(code == 411, "%s", r);
    /* The moved socket still listens, now owned by context 2's worker. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(realm_base),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    close(fd);
    r = request("C=2{S=*}", &code);
    ck_assert_msg(code == 0 && strstr(r, "S=ip/access/3{SA") != NULL, "%s", r);
    r = request("C=4{S=*}", &code);
    ck_assert_msg(code == 0, "%s", r);
    daemon_stop();
}
END_TEST

START_TEST(ten_thousand_add_subtract)
{
    daemon_start();
    register_gateway();
    for (int i = 0; i < 10000; i++) {
        unsigned code;
        char body[64];
        const char *r = request(ACCESS_ADD, &code);
        ck_assert_msg(code == 0, "%d: %s", i, r);
        const char *c = strstr(r, "C=");
        ck_assert_ptr_nonnull(c);
        snprintf(body, sizeof(body), "C=%lu{S=*}", strtoul(c + 2, NULL, 10));
        r = request(body, &code);
        ck_assert_msg(code == 0, "%d: %s", i, r);
    }
    /* Exit status 0 under ASan means no leak either. */
    daemon_stop();
}
END_TEST

static Suite *daemon_suite(void)
{
    Suite *s = suite_create("daemon");
    TCase *tc = tcase_create("iq");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, version_and_config_check);
    tcase_add_test(tc, registration_then_commands);
    tcase_add_test(tc, requests_before_registration_get_505);
    tcase_add_test(tc, lost_registration_reply_is_retransmitted);
    tcase_add_test(tc, redirect_with_mgc_id_to_try);
    tcase_add_test(tc, duplicates_executed_once_and_ack);
    tcase_add_test(tc, slow_workers_get_pending);
    tcase_add_test(tc, garbage_and_strangers);
    tcase_add_test(tc, limits_ports_and_contexts);
    tcase_add_test(tc, inactivity_notify);
    tcase_add_test(tc, failover_to_second_mgc);
    tcase_add_test(tc, forced_service_change_on_sigterm);
    tcase_add_test(tc, sigterm_drains_first);
    tcase_add_test(tc, lowered_version_is_used);
    tcase_add_test(tc, four_workers_move_across_contexts);
    tcase_add_test(tc, ten_thousand_add_subtract);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(daemon_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
