/* Check suite: operating the gateway: the metrics_listen and control_socket keys, /metrics
 * scraped over HTTP after known Iq traffic, the control socket (show, drain) and agw-ctl. */
#include "agw/agw.h"
#include "h248/h248.h"
#include "tests/harness.h"
#include "tools/iq_client.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t child = -1;
static char log_path[64], sock_path[64];
static uint16_t iq_port, mgc_port, metrics_port, realm_base;
static struct iq_client *mgc;

/* ---- the daemon ---- */

/* Starts the daemon with metrics on a free port and the control socket at sock_path; extra
 * options (NULL-terminated) follow the common ones. */
static pid_t start_daemon(const char *const *extra, const char *log)
{
    char iq[32], m1[32], access[64], core[64], metrics[32];
    snprintf(iq, sizeof(iq), "127.0.0.1:%u", iq_port);
    snprintf(m1, sizeof(m1), "127.0.0.1:%u", mgc_port);
    snprintf(metrics, sizeof(metrics), "127.0.0.1:%u", metrics_port);
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
                            "--metrics-listen",
                            metrics,
                            "--control-socket",
                            sock_path,
                            "--log-level",
                            "debug"};
    size_t n = 19;
    for (; extra != NULL && *extra != NULL && n < 38; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, STDERR_FILENO);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static void daemon_start(void)
{
    iq_port = harness_free_port(SOCK_DGRAM);
    mgc_port = harness_free_port(SOCK_DGRAM);
    metrics_port = harness_free_port(SOCK_STREAM);
    /* Below the ephemeral ports, apart from other suites' (test_daemon uses 20000 + 40k). */
    realm_base = (uint16_t)(24000 + (getpid() % 100) * 40);
    snprintf(log_path, sizeof(log_path), "/tmp/test_metrics.%d.log", (int)getpid());
    snprintf(sock_path, sizeof(sock_path), "/tmp/test_metrics.%d.sock", (int)getpid());
    child = start_daemon(NULL, log_path);
    char m1[32], gw[32];
    snprintf(m1, sizeof(m1), "127.0.0.1:%u", mgc_port);
    snprintf(gw, sizeof(gw), "127.0.0.1:%u", iq_port);
    ck_assert_int_eq(iq_client_open(m1, gw, NULL, NULL, &mgc), 0);
    struct iq_event ev;
    ck_assert_int_eq(iq_client_wait_registration(mgc, harness_ms(5000), NULL, NULL, &ev), 0);
    iq_event_release(&ev);
    for (int i = 0; i < harness_ms(300) && !harness_log_contains(log_path, "registered with MGC");
         i++)
        harness_sleep_ms(10);
    for (int i = 0; i < harness_ms(300) && !harness_log_contains(log_path, "control socket: /");
         i++)
        harness_sleep_ms(10);
}

/* Waits for the daemon to exit by itself or after SIGTERM; it must exit 0 (ASan: no leak). */
static void daemon_wait_exit(bool terminate)
{
    if (terminate)
        kill(child, SIGTERM);
    int status = harness_wait_exit(child, 15000);
    if (status == -1) {
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
        child = -1;
        ck_abort_msg("ims-agw did not stop (see %s)", log_path);
    }
    child = -1;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "ims-agw exit status %d (see %s)",
                  status, log_path);
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
    unlink(sock_path);
}

static const char *request(const char *text, unsigned *code)
{
    return harness_request(mgc, text, code);
}

#define ACCESS_TLS_ADD                                                                             \
    "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=message $ TCP/TLS/MSRP "   \
    "*\r\na=fingerprint:$\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message 49152 TCP/TLS/MSRP "       \
    "*\r\na=setup:active\r\na=fingerprint:sha-256 "                                                \
    "4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:3C:11:B5:34:22:B0:12:33:44:55:"   \
    "66:77\r\n}}}}}"

/* Two plaintext MSRP legs the far ends connect to (the gateway listens on both). */
#define PLAIN_PAIR_ADD                                                                             \
    "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=message $ TCP/MSRP "       \
    "*\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message 9 TCP/MSRP *\r\na=setup:active\r\n}}}},"      \
    "A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=message $ TCP/MSRP "             \
    "*\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message 9 TCP/MSRP *\r\na=setup:active\r\n}}}}}"

/* ---- HTTP and the control socket, with plain sockets ---- */

static int tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect %u: %s", port,
                  strerror(errno));
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Everything fd sends until EOF (or 5 s of silence), NUL-terminated, in a static buffer. */
static const char *read_all(int fd, size_t *len_out)
{
    static char buf[1 << 18];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    if (len_out != NULL)
        *len_out = len;
    return buf;
}

/* One HTTP/1.0 request; the status code, and the body (static) in *body. */
static int http(const char *method, const char *path, const char **body)
{
    int fd = tcp_connect(metrics_port);
    char req[256];
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", method, path);
    ck_assert_int_eq(write(fd, req, (size_t)n), n);
    const char *all = read_all(fd, NULL);
    close(fd);
    int status = 0;
    ck_assert_msg(sscanf(all, "HTTP/1.%*d %d", &status) == 1, "not HTTP: %.200s", all);
    const char *sep = strstr(all, "\r\n\r\n");
    ck_assert_ptr_nonnull(sep);
    *body = sep + 4;
    return status;
}

static const char *scrape(void)
{
    const char *body;
    ck_assert_int_eq(http("GET", "/metrics", &body), 200);
    return body;
}

/* The value of the sample named exactly series (name and labels) in text; -1 when absent. */
static double sample(const char *text, const char *series)
{
    size_t len = strlen(series);
    for (const char *p = text; p != NULL && *p != '\0';
         p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, len) == 0 && p[len] == ' ')
            return strtod(p + len + 1, NULL);
    return -1;
}

/* Scrapes until series has value (a leg event reaches the control loop asynchronously). */
static void wait_sample(const char *series, double value)
{
    double got = -1;
    for (int i = 0; i < 300; i++) {
        got = sample(scrape(), series);
        if (got == value)
            return;
        harness_sleep_ms(10);
    }
    ck_abort_msg("%s is %g, not %g", series, got, value);
}

static int unix_connect(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock_path);
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect %s: %s", sock_path,
                  strerror(errno));
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Sends one command line and returns the whole answer (static). */
static const char *ctl(const char *line)
{
    int fd = unix_connect();
    ck_assert_int_eq(write(fd, line, strlen(line)), (ssize_t)strlen(line));
    const char *answer = read_all(fd, NULL);
    close(fd);
    return answer;
}

/* Reads one line (without its newline) from fd into a static buffer. */
static const char *read_line(int fd)
{
    static char line[512];
    size_t len = 0;
    while (len < sizeof(line) - 1 && read(fd, line + len, 1) == 1 && line[len] != '\n')
        len++;
    line[len] = '\0';
    return line;
}

/* The agw-ctl of the daemon's variant (the Makefile builds it with this test). */
static const char *agw_ctl_bin(void)
{
    static char path[256];
    char dir[200];
    snprintf(dir, sizeof(dir), "%s", harness_agw_bin());
    snprintf(path, sizeof(path), "%s/agw-ctl", dirname(dir));
    return path;
}

/* ---- the configuration keys ---- */

START_TEST(config_keys)
{
    struct agw_config cfg;
    char err[512];
    agw_config_init_defaults(&cfg);
    ck_assert_int_eq(cfg.metrics_listen.ss_family, AF_UNSPEC);
    ck_assert_str_eq(cfg.control_socket, "auto");
    ck_assert_int_eq(agw_config_set(&cfg, "global", "metrics_listen", "[::1]:9464", err, 512), 0);
    ck_assert_int_eq(cfg.metrics_listen.ss_family, AF_INET6);
    ck_assert_int_eq(agw_config_set(&cfg, "global", "metrics_listen", "", err, 512), 0);
    ck_assert_int_eq(cfg.metrics_listen.ss_family, AF_UNSPEC);
    ck_assert_int_eq(agw_config_set(&cfg, "global", "metrics_listen", "9464", err, 512), -EINVAL);
    ck_assert_msg(strstr(err, "metrics_listen") != NULL, "%s", err);
    ck_assert_int_eq(agw_config_set(&cfg, "global", "metrics_listen", "127.0.0.1:0", err, 512),
                     -EINVAL);
    /* Printed empty and read back empty. */
    char *out = NULL;
    size_t out_len = 0;
    FILE *mem = open_memstream(&out, &out_len);
    agw_config_print(&cfg, mem);
    fclose(mem);
    ck_assert_msg(strstr(out, "\nmetrics_listen =\n") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "\ncontrol_socket = auto\n") != NULL, "%s", out);
    free(out);
    /* A realm's ports and the metrics port on one address collide; another address does not. */
    ck_assert_int_eq(agw_config_set(&cfg, "global", "metrics_listen", "127.0.0.1:20005", err, 512),
                     0);
    ck_assert_int_eq(agw_config_validate(&cfg, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "metrics_listen 127.0.0.1:20005 is inside ports 20000-29999 of [realm "
                          "access]");
    ck_assert_int_eq(agw_config_set(&cfg, "global", "metrics_listen", "127.0.0.2:20005", err, 512),
                     0);
    ck_assert_int_eq(agw_config_validate(&cfg, err, sizeof(err)), 0);
    char long_path[150];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[0] = '/';
    long_path[sizeof(long_path) - 1] = '\0';
    ck_assert_int_eq(agw_config_set(&cfg, "global", "control_socket", long_path, err, 512), 0);
    ck_assert_int_eq(agw_config_validate(&cfg, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, "control_socket") != NULL, "%s", err);
    /* Neither key changes on SIGHUP. */
    struct agw_config old_cfg;
    agw_config_init_defaults(&old_cfg);
    agw_config_init_defaults(&cfg);
    ck_assert_int_eq(agw_config_set(&cfg, "global", "metrics_listen", "127.0.0.1:9464", err, 512),
                     0);
    ck_assert_int_eq(agw_config_set(&cfg, "global", "control_socket", "", err, 512), 0);
    ck_assert_int_eq(agw_config_reload_check(&old_cfg, &cfg, err, sizeof(err)), -EPERM);
    ck_assert_str_eq(err, "changes that need a restart: metrics_listen, control_socket");
}
END_TEST

START_TEST(socket_path_resolution)
{
    char path[128];
    ck_assert_int_eq(agw_opsock_path("/run/x.sock", path, sizeof(path)), 0);
    ck_assert_str_eq(path, "/run/x.sock");
    ck_assert_int_eq(agw_opsock_path("", path, sizeof(path)), 0);
    ck_assert_str_eq(path, "");
    setenv("RUNTIME_DIRECTORY", "/run/ims-agw:/run/other", 1);
    setenv("XDG_RUNTIME_DIR", "/run/user/7", 1);
    ck_assert_int_eq(agw_opsock_path("auto", path, sizeof(path)), 0);
    ck_assert_str_eq(path, "/run/ims-agw/control.sock");
    unsetenv("RUNTIME_DIRECTORY");
    ck_assert_int_eq(agw_opsock_path("auto", path, sizeof(path)), 0);
    ck_assert_str_eq(path, "/run/user/7/ims-agw.sock");
    unsetenv("XDG_RUNTIME_DIR");
    ck_assert_int_eq(agw_opsock_path("auto", path, sizeof(path)), 0);
    char want[64];
    snprintf(want, sizeof(want), "/tmp/ims-agw-%lu.sock", (unsigned long)geteuid());
    ck_assert_str_eq(path, want);
    char deep[200];
    memset(deep, 'd', sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = '\0';
    setenv("XDG_RUNTIME_DIR", deep, 1);
    ck_assert_int_eq(agw_opsock_path("auto", path, sizeof(path)), -ENAMETOOLONG);
    unsetenv("XDG_RUNTIME_DIR");
}
END_TEST

/* ---- /metrics ---- */

START_TEST(scrape_after_known_traffic)
{
    daemon_start();
    const char *m = scrape();
    ck_assert_msg(strstr(m, "# TYPE ims_agw_contexts gauge\n") != NULL, "%s", m);
    ck_assert_msg(strstr(m, "# HELP ims_agw_h248_transactions_total ") != NULL, "%s", m);
    ck_assert_msg(strstr(m, "# TYPE ims_agw_h248_transactions_total counter\n") != NULL, "%s", m);
    const char *info = strstr(m, "\nims_agw_build_info{version=\"");
    ck_assert_ptr_nonnull(info);
    const char *brace = strchr(info, '}');
    ck_assert_msg(brace != NULL && strncmp(brace, "} 1\n", 4) == 0, "%.80s", info);
    ck_assert(sample(m, "ims_agw_registered") == 1);
    ck_assert(sample(m, "ims_agw_contexts") == 0);
    ck_assert(sample(m, "ims_agw_h248_transactions_total{command=\"add\",code=\"0\"}") == 0);
    ck_assert_msg(strstr(m, "# TYPE ims_agw_sctp_checksum_errors_total counter\n") != NULL, "%s",
                  m);
    ck_assert(sample(m, "ims_agw_sctp_checksum_errors_total") == 0);

    unsigned code;
    const char *r = request(ACCESS_TLS_ADD, &code);
    ck_assert_msg(code == 0, "%s", r);
    r = request("C=77{MF=ip/access/1}", &code);
    ck_assert_msg(code == 411, "%s", r);
    r = request("C=1{MF=ip/access/1{M{ST=1{O{MO=SR}}}}}", &code);
    ck_assert_msg(code == 0, "%s", r);
    char garbage[64];
    int n = snprintf(garbage, sizeof(garbage), "!/3 [127.0.0.1]:%u T=5{C=1{XX}}", mgc_port);
    ck_assert_int_eq(iq_client_send_raw(mgc, garbage, (size_t)n), 0);
    struct iq_event ev;
    ck_assert_int_eq(iq_client_recv(mgc, harness_ms(3000), &ev), 0);
    iq_event_release(&ev);

    m = scrape();
    ck_assert(sample(m, "ims_agw_contexts") == 1);
    ck_assert(sample(m, "ims_agw_terminations{realm=\"access\",proto=\"tcp_tls_msrp\"}") == 1);
    ck_assert(sample(m, "ims_agw_terminations{realm=\"core\",proto=\"tcp_tls_msrp\"}") == 0);
    ck_assert(sample(m, "ims_agw_h248_transactions_total{command=\"add\",code=\"0\"}") == 1);
    ck_assert(sample(m, "ims_agw_h248_transactions_total{command=\"modify\",code=\"411\"}") == 1);
    ck_assert(sample(m, "ims_agw_h248_transactions_total{command=\"modify\",code=\"0\"}") == 1);
    ck_assert_msg(sample(m, "ims_agw_h248_transactions_total{command=\"unparsed\",code=\"442\"}") ==
                      1,
                  "%s", m);
    ck_assert(sample(m, "ims_agw_h248_commands_total{command=\"add\"}") == 1);
    ck_assert(sample(m, "ims_agw_h248_commands_total{command=\"modify\"}") == 2);
    ck_assert(sample(m, "ims_agw_iq_malformed_total") == 1);
    ck_assert(sample(m, "ims_agw_h248_duplicates_total") == 0);

    /* The MGC sends T=40 twice: one execution, one duplicate answered from the cache. */
    n = snprintf(garbage, sizeof(garbage), "!/3 [127.0.0.1]:%u T=40{C=-{AV=ROOT{AT{}}}}", mgc_port);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(iq_client_send_raw(mgc, garbage, (size_t)n), 0);
        ck_assert_int_eq(iq_client_recv(mgc, harness_ms(3000), &ev), 0);
        iq_event_release(&ev);
    }
    m = scrape();
    ck_assert(sample(m, "ims_agw_h248_duplicates_total") == 1);
    ck_assert(sample(m, "ims_agw_h248_transactions_total{command=\"audit_value\",code=\"0\"}") ==
              1);

    /* A worker answered the probe (sent when the metrics started). */
    double lag = sample(m, "ims_agw_worker_loop_lag_seconds{worker=\"0\"}");
    ck_assert_msg(lag >= 0 && lag < 5, "lag %g", lag);

    const char *body;
    ck_assert_int_eq(http("GET", "/", &body), 404);
    ck_assert_int_eq(http("GET", "/metricsx", &body), 404);
    ck_assert_int_eq(http("POST", "/metrics", &body), 405);
    ck_assert_int_eq(http("HEAD", "/metrics", &body), 200);
    ck_assert_str_eq(body, "");
    daemon_wait_exit(true);
}
END_TEST

START_TEST(handshakes_and_relayed_bytes)
{
    daemon_start();
    unsigned code;
    /* A TLS leg that gets plaintext instead of a ClientHello: a failed handshake. */
    const char *r = request(ACCESS_TLS_ADD, &code);
    ck_assert_msg(code == 0, "%s", r);
    uint16_t tls_port = (uint16_t)harness_number_after(r, "m=message ");
    int fd = tcp_connect(tls_port);
    static const char junk[] = "GET / HTTP/1.0\r\n\r\n";
    ck_assert_int_eq(write(fd, junk, sizeof(junk) - 1), (ssize_t)sizeof(junk) - 1);
    wait_sample("ims_agw_handshakes_total{outcome=\"failed\",reason=\"protocol_error\"}", 1);
    close(fd);
    const char *m = scrape();
    ck_assert(sample(m, "ims_agw_leg_failures_total{reason=\"protocol_error\"}") == 1);
    ck_assert(sample(m, "ims_agw_handshakes_total{outcome=\"ok\"}") == 0);
    ck_assert(sample(m, "ims_agw_fingerprint_mismatches_total") == 0);
    const char *show = ctl("show contexts\n");
    ck_assert_msg(strstr(show, "ip/access/1 TCP/TLS/MSRP") != NULL, "%s", show);
    ck_assert_msg(strstr(show, "failed(protocol_error)") != NULL, "%s", show);

    /* Plaintext both ways: bytes through the relay, counted when the terminations go. */
    r = request(PLAIN_PAIR_ADD, &code);
    ck_assert_msg(code == 0, "%s", r);
    unsigned ctx = (unsigned)harness_number_after(r, "C=");
    const char *second = strstr(strstr(r, "m=message ") + 1, "m=message ");
    ck_assert_ptr_nonnull(second);
    uint16_t access_port = (uint16_t)harness_number_after(r, "m=message ");
    uint16_t core_port = (uint16_t)harness_number_after(second, "m=message ");
    int ue = tcp_connect(access_port);
    int peer = tcp_connect(core_port);
    char data[1000], got[1000];
    memset(data, 'x', sizeof(data));
    ck_assert_int_eq(write(ue, data, sizeof(data)), (ssize_t)sizeof(data));
    size_t have = 0;
    while (have < sizeof(got)) {
        ssize_t n = read(peer, got + have, sizeof(got) - have);
        ck_assert_int_gt(n, 0);
        have += (size_t)n;
    }
    ck_assert_int_eq(write(peer, "pong", 4), 4);
    ck_assert_int_eq(read(ue, got, 4), 4);
    char subtract[64];
    snprintf(subtract, sizeof(subtract), "C=%u{S=*}", ctx);
    r = request(subtract, &code);
    ck_assert_msg(code == 0, "%s", r);
    close(ue);
    close(peer);
    m = scrape();
    ck_assert(sample(m, "ims_agw_relayed_bytes_total{realm=\"access\",direction=\"received\"}") ==
              1000);
    ck_assert(sample(m, "ims_agw_relayed_bytes_total{realm=\"access\",direction=\"sent\"}") == 4);
    ck_assert(sample(m, "ims_agw_relayed_bytes_total{realm=\"core\",direction=\"sent\"}") == 1000);
    ck_assert(sample(m, "ims_agw_relayed_bytes_total{realm=\"core\",direction=\"received\"}") == 4);
    ck_assert(sample(m, "ims_agw_contexts") == 1);
    ck_assert(sample(m, "ims_agw_h248_transactions_total{command=\"subtract\",code=\"0\"}") == 1);
    daemon_wait_exit(true);
}
END_TEST

/* ---- the control socket ---- */

START_TEST(control_socket_show)
{
    daemon_start();
    struct stat st;
    ck_assert_int_eq(lstat(sock_path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 07777, 0600);
    ck_assert_uint_eq(st.st_uid, geteuid());

    const char *a = ctl("show registration\n");
    ck_assert_msg(strncmp(a, "state registered\n", 17) == 0, "%s", a);
    char want[64];
    snprintf(want, sizeof(want), "\nmgc 127.0.0.1:%u\n", mgc_port);
    ck_assert_msg(strstr(a, want) != NULL, "%s", a);
    ck_assert_msg(strstr(a, "\nversion 3\n") != NULL && strstr(a, "\ndraining no\n") != NULL, "%s",
                  a);
    ck_assert_msg(strstr(a, "\ncontexts 0\n") != NULL, "%s", a);

    a = ctl("show contexts\n");
    ck_assert_str_eq(a, "contexts 0 terminations 0\n");
    unsigned code;
    const char *r = request(ACCESS_TLS_ADD, &code);
    ck_assert_msg(code == 0, "%s", r);
    char line[160];
    snprintf(line, sizeof(line),
             "s terminations 1: ip/access/1 TCP/TLS/MSRP port %u remote 127.0.0.1:49152 sendrecv "
             "tls-pending\n",
             realm_base);
    a = ctl("show contexts\n");
    ck_assert_msg(strncmp(a, "context 1 worker 0 age ", 23) == 0, "%s", a);
    const char *after_age = a + 23 + strspn(a + 23, "0123456789");
    ck_assert_msg(strncmp(after_age, line, strlen(line)) == 0, "%s\nlacks\n%s", a, line);
    ck_assert_msg(strstr(a, "\ncontexts 1 terminations 1\n") != NULL, "%s", a);
    /* Without a newline, then EOF: still a command. */
    int fd = unix_connect();
    ck_assert_int_eq(write(fd, "show registration", 17), 17);
    shutdown(fd, SHUT_WR);
    a = read_all(fd, NULL);
    close(fd);
    ck_assert_msg(strstr(a, "\ncontexts 1\n") != NULL, "%s", a);

    a = ctl("reboot now\n");
    ck_assert_msg(strncmp(a, "error: ", 7) == 0, "%s", a);
    a = ctl("drain forever\n");
    ck_assert_msg(strncmp(a, "error: drain takes seconds", 26) == 0, "%s", a);
    char longline[400];
    memset(longline, 'z', sizeof(longline) - 1);
    longline[sizeof(longline) - 1] = '\0';
    a = ctl(longline);
    ck_assert_str_eq(a, "error: line too long\n");

    /* agw-ctl itself. */
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s show registration --socket %s", agw_ctl_bin(), sock_path);
    FILE *p = popen(cmd, "r");
    char out[256] = "";
    ck_assert_ptr_nonnull(fgets(out, sizeof(out), p));
    ck_assert_int_eq(pclose(p), 0);
    ck_assert_str_eq(out, "state registered\n");
    snprintf(cmd, sizeof(cmd), "%s show contexts --socket %s", agw_ctl_bin(), sock_path);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(fgets(out, sizeof(out), p));
    ck_assert_int_eq(pclose(p), 0);
    ck_assert_msg(strncmp(out, "context 1 ", 10) == 0, "%s", out);
    snprintf(cmd, sizeof(cmd), "%s show nothing --socket %s 2>/dev/null", agw_ctl_bin(), sock_path);
    ck_assert_int_eq(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof(cmd), "%s show registration --socket %s.none 2>/dev/null", agw_ctl_bin(),
             sock_path);
    ck_assert_int_eq(WEXITSTATUS(system(cmd)), 1);
    daemon_wait_exit(true);
    /* The socket file goes with the daemon. */
    ck_assert_int_eq(lstat(sock_path, &st), -1);
}
END_TEST

START_TEST(drain_refuses_new_contexts_then_exits)
{
    daemon_start();
    unsigned code;
    const char *r = request(ACCESS_TLS_ADD, &code);
    ck_assert_msg(code == 0, "%s", r);
    int fd = unix_connect();
    ck_assert_int_eq(write(fd, "drain 30\n", 9), 9);
    const char *line = read_line(fd);
    ck_assert_msg(strcmp(line, "draining: no new context; 1 context(s), waiting up to 30 s") == 0,
                  "%s", line);
    const char *again = ctl("drain\n");
    ck_assert_str_eq(again, "error: a drain is already running\n");
    const char *m = scrape();
    ck_assert(sample(m, "ims_agw_draining") == 1);
    const char *a = ctl("show registration\n");
    ck_assert_msg(strstr(a, "\ndraining yes\n") != NULL, "%s", a);

    /* A new context is refused; the existing one still takes commands. */
    r = request(ACCESS_TLS_ADD, &code);
    ck_assert_msg(code == 510 && strstr(r, "draining") != NULL, "%s", r);
    r = request("C=1{MF=ip/access/1{M{ST=1{O{MO=SR}}}}}", &code);
    ck_assert_msg(code == 0, "%s", r);
    m = scrape();
    ck_assert(sample(m, "ims_agw_h248_transactions_total{command=\"add\",code=\"510\"}") == 1);
    ck_assert(sample(m, "ims_agw_drain_refusals_total") == 1);
    ck_assert(sample(m, "ims_agw_contexts") == 1);

    /* The last context goes: Graceful ServiceChange, then the gateway exits 0. */
    r = request("C=1{S=*}", &code);
    ck_assert_msg(code == 0, "%s", r);
    struct iq_event ev;
    ck_assert_int_eq(iq_client_recv(mgc, harness_ms(5000), &ev), 0);
    const struct h248_command *cmd = ev.msg->transactions->actions->commands;
    ck_assert_int_eq(cmd->kind, H248_CMD_SERVICE_CHANGE);
    ck_assert_int_eq(cmd->descriptors->u.service_change.method, H248_SC_GRACEFUL);
    iq_event_release(&ev);
    line = read_line(fd);
    ck_assert_str_eq(line, "drained: 0 context(s) left; Graceful ServiceChange, then the gateway "
                           "stops");
    size_t rest;
    read_all(fd, &rest); /* EOF once the gateway closed its socket */
    ck_assert_uint_eq(rest, 0);
    close(fd);
    daemon_wait_exit(false);
    ck_assert(harness_log_contains(log_path, "drain: done, 0 context(s) left"));
}
END_TEST

START_TEST(drain_times_out)
{
    daemon_start();
    unsigned code;
    const char *r = request(ACCESS_TLS_ADD, &code);
    ck_assert_msg(code == 0, "%s", r);
    /* agw-ctl drain prints the progress and returns once the gateway is gone. */
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s drain 1 --socket %s", agw_ctl_bin(), sock_path);
    FILE *p = popen(cmd, "r");
    char out[512];
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    ck_assert_int_eq(pclose(p), 0);
    ck_assert_str_eq(out, "draining: no new context; 1 context(s), waiting up to 1 s\n"
                          "drained: 1 context(s) left; Forced ServiceChange, then the gateway "
                          "stops\n");
    struct iq_event ev;
    ck_assert_int_eq(iq_client_recv(mgc, harness_ms(5000), &ev), 0);
    iq_event_release(&ev);
    daemon_wait_exit(false);
    ck_assert(harness_log_contains(log_path, "drain: timed out, 1 context(s) left"));
}
END_TEST

/* Explicitly configured ways in that cannot be had stop the start (exit 1). */
START_TEST(taken_socket_or_port_stops_the_start)
{
    daemon_start();
    char other_log[80];
    snprintf(other_log, sizeof(other_log), "/tmp/test_metrics.%d.second.log", (int)getpid());
    uint16_t saved_iq = iq_port, saved_metrics = metrics_port;
    iq_port = harness_free_port(SOCK_DGRAM);
    realm_base = (uint16_t)(realm_base + 4000);
    /* Same control socket, live: refused, left alone. */
    metrics_port = harness_free_port(SOCK_STREAM);
    pid_t second = start_daemon(NULL, other_log);
    int status = harness_wait_exit(second, 10000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d", status);
    ck_assert(harness_log_contains(other_log, "is in use by a running ims-agw"));
    /* Same metrics port: refused. */
    metrics_port = saved_metrics;
    char sock2[80];
    snprintf(sock2, sizeof(sock2), "%s2", sock_path);
    const char *extra[] = {"--control-socket", sock2, NULL};
    second = start_daemon(extra, other_log);
    status = harness_wait_exit(second, 10000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d", status);
    ck_assert(harness_log_contains(other_log, "metrics: cannot listen on"));
    unlink(other_log);
    unlink(sock2);
    iq_port = saved_iq;
    /* The first one was not disturbed. */
    const char *a = ctl("show registration\n");
    ck_assert_msg(strncmp(a, "state registered\n", 17) == 0, "%s", a);
    ck_assert(sample(scrape(), "ims_agw_registered") == 1);
    daemon_wait_exit(true);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, config_keys);
    tcase_add_test(tc, socket_path_resolution);
    suite_add_tcase(s, tc);
    tc = tcase_create("daemon");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, scrape_after_known_traffic);
    tcase_add_test(tc, handshakes_and_relayed_bytes);
    tcase_add_test(tc, control_socket_show);
    tcase_add_test(tc, drain_refuses_new_contexts_then_exits);
    tcase_add_test(tc, drain_times_out);
    tcase_add_test(tc, taken_socket_or_port_stops_the_start);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(metrics_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
