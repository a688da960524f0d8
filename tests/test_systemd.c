/* Check suite: ims-agw under systemd's notify protocol (READY, STATUS, WATCHDOG, RELOADING,
 * STOPPING) with this test as the service manager and the MGC; the unit file verified offline,
 * and run for real when systemd is PID 1. */
#include "h248/h248.h"
#include "tests/harness.h"
#include "tools/iq_client.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include <time.h>
#include <unistd.h>

static pid_t child = -1;
static char log_path[64], notify_path[64];
static int notify_fd = -1;
static uint16_t iq_port, mgc_port, realm_base;
static struct iq_client *mgc;

/* Every datagram the daemon sent to the notify socket, with its arrival time. */
struct note {
    uint64_t at_ms;
    char text[512];
};
static struct note notes[2048];
static unsigned n_notes;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The socket systemd would pass in NOTIFY_SOCKET. */
static void notify_open(void)
{
    snprintf(notify_path, sizeof(notify_path), "/tmp/test_systemd.%d.notify", (int)getpid());
    unlink(notify_path);
    notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(notify_fd, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", notify_path);
    ck_assert_int_eq(bind(notify_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    n_notes = 0;
}

/* Receives one datagram within timeout_ms; its index in notes, or -1. */
static int next_note(int timeout_ms)
{
    struct pollfd p = {.fd = notify_fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
        return -1;
    ck_assert_uint_lt(n_notes, sizeof(notes) / sizeof(notes[0]));
    struct note *n = &notes[n_notes];
    ssize_t len = recv(notify_fd, n->text, sizeof(n->text) - 1, 0);
    if (len < 0)
        return -1;
    n->text[len] = '\0';
    n->at_ms = now_ms();
    return (int)n_notes++;
}

/* The value after prefix of the first line of note i starting with it, or NULL. */
static const char *note_line(unsigned i, const char *prefix)
{
    size_t plen = strlen(prefix);
    for (const char *line = notes[i].text; line != NULL && *line != '\0';) {
        if (strncmp(line, prefix, plen) == 0)
            return line + plen;
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return NULL;
}

/* Receives until a datagram holds a line starting with prefix; its index, or -1 on timeout. */
static int wait_note(const char *prefix, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t now = now_ms();
        if (now >= end)
            return -1;
        int i = next_note((int)(end - now));
        if (i >= 0 && note_line((unsigned)i, prefix) != NULL)
            return i;
    }
}

/* Receives until a STATUS= line contains every one of the two strings; its index, or -1. */
static int wait_status(const char *a, const char *b, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int i = wait_note("STATUS=", (int)(end > now_ms() ? end - now_ms() : 0));
        if (i < 0)
            return -1;
        const char *s = note_line((unsigned)i, "STATUS=");
        if (strstr(s, a) != NULL && strstr(s, b) != NULL)
            return i;
    }
}

/* How many datagrams from index first on hold the line WATCHDOG=1 and arrived in [from, to). */
static unsigned pings_between(unsigned first, uint64_t from, uint64_t to)
{
    unsigned count = 0;
    for (unsigned i = first; i < n_notes; i++)
        if (notes[i].at_ms >= from && notes[i].at_ms < to && note_line(i, "WATCHDOG=1") != NULL)
            count++;
    return count;
}

/* The longest time without a ping in [from, to), counting from from and up to to. */
static uint64_t longest_silence(uint64_t from, uint64_t to)
{
    uint64_t last = from, longest = 0;
    for (unsigned i = 0; i < n_notes; i++) {
        if (notes[i].at_ms < from || notes[i].at_ms >= to || note_line(i, "WATCHDOG=1") == NULL)
            continue;
        if (notes[i].at_ms - last > longest)
            longest = notes[i].at_ms - last;
        last = notes[i].at_ms;
    }
    return to - last > longest ? to - last : longest;
}

/* Starts the daemon with NOTIFY_SOCKET set. watchdog_usec 0: no WATCHDOG_USEC; watchdog_pid:
 * "self" for the daemon's own pid, NULL for none, or a literal. extra_env may be NULL. */
static void daemon_start(unsigned long watchdog_usec, const char *watchdog_pid,
                         const char *extra_env)
{
    char iq[32], m1[32], access[64], core[64];
    iq_port = harness_free_port(SOCK_DGRAM);
    mgc_port = harness_free_port(SOCK_DGRAM);
    /* Below the ephemeral range, apart from other runs of the suite. */
    realm_base = (uint16_t)(10000 + (getpid() % 240) * 40);
    snprintf(iq, sizeof(iq), "127.0.0.1:%u", iq_port);
    snprintf(m1, sizeof(m1), "127.0.0.1:%u", mgc_port);
    snprintf(access, sizeof(access), "access,127.0.0.1,%u-%u", realm_base, realm_base + 19);
    snprintf(core, sizeof(core), "core,127.0.0.1,%u-%u", realm_base + 20, realm_base + 39);
    const char *argv[] = {harness_agw_bin(),
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
                          "--log-level",
                          "debug",
                          NULL};
    snprintf(log_path, sizeof(log_path), "/tmp/test_systemd.%d.log", (int)getpid());
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, STDERR_FILENO);
        setenv("NOTIFY_SOCKET", notify_path, 1);
        unsetenv("WATCHDOG_USEC");
        unsetenv("WATCHDOG_PID");
        char value[32];
        if (watchdog_usec > 0) {
            snprintf(value, sizeof(value), "%lu", watchdog_usec);
            setenv("WATCHDOG_USEC", value, 1);
        }
        if (watchdog_pid != NULL && strcmp(watchdog_pid, "self") == 0) {
            snprintf(value, sizeof(value), "%d", (int)getpid()); /* exec keeps the pid */
            setenv("WATCHDOG_PID", value, 1);
        } else if (watchdog_pid != NULL) {
            setenv("WATCHDOG_PID", watchdog_pid, 1);
        }
        if (extra_env != NULL)
            putenv((char *)extra_env);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    char gw[32];
    snprintf(gw, sizeof(gw), "127.0.0.1:%u", iq_port);
    ck_assert_int_eq(iq_client_open(m1, gw, NULL, NULL, &mgc), 0);
}

static void register_gateway(void)
{
    struct iq_event ev;
    ck_assert_int_eq(iq_client_wait_registration(mgc, 5000, NULL, NULL, &ev), 0);
    iq_event_release(&ev);
    for (int i = 0; i < 200 && !harness_log_contains(log_path, "registered with MGC"); i++)
        harness_sleep_ms(10);
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
    if (notify_fd >= 0)
        close(notify_fd);
    notify_fd = -1;
    unlink(notify_path);
    unlink(log_path);
}

#define ACCESS_ADD                                                                                 \
    "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=message $ TCP/TLS/MSRP "   \
    "*\r\na=fingerprint:$\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message 49152 TCP/TLS/MSRP "       \
    "*\r\na=setup:active\r\na=fingerprint:sha-256 "                                                \
    "4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:3C:11:B5:34:22:B0:12:33:44:55:"   \
    "66:77\r\n}}}}}"

/* The H.248 error code of a reply (0: none). */
static unsigned request_code(const char *text)
{
    struct iq_reply reply;
    struct h248_parse_error err;
    int rc = iq_client_request_text(mgc, text, strlen(text), 3000, &reply, &err);
    ck_assert_msg(rc == 0, "request failed: %d %s", rc, err.text);
    ck_assert_msg(reply.status == 0, "no reply (see %s)", log_path);
    const struct h248_error_desc *e = iq_reply_error(&reply);
    unsigned code = e != NULL ? e->code : 0;
    iq_reply_release(&reply);
    return code;
}

START_TEST(ready_only_once_iq_is_bound)
{
    notify_open();
    daemon_start(0, NULL, NULL);
    int ready = wait_note("READY=1", 10000);
    ck_assert_msg(ready >= 0, "no READY=1 (see %s)", log_path);
    /* At READY the Iq port is taken... */
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(iq_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    errno = 0;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), -1);
    ck_assert_int_eq(errno, EADDRINUSE);
    close(fd);
    /* ...and READY carries the first status: the MGC has not answered yet. */
    const char *status = note_line((unsigned)ready, "STATUS=");
    ck_assert_ptr_nonnull(status);
    ck_assert_msg(strstr(status, "registering") != NULL && strstr(status, "contexts 0") != NULL,
                  "%s", status);
    /* Iq answers: a request before registration gets 505, as DESIGN.md says. */
    ck_assert_uint_eq(request_code("C=-{AV=ROOT{AT{}}}"), 505);
    register_gateway();
    ck_assert_msg(wait_status("registered with", "contexts 0", 3000) >= 0, "no registered status");
    ck_assert_uint_eq(request_code(ACCESS_ADD), 0);
    /* STATUS= follows the session counts within its period (1 s). */
    ck_assert_msg(wait_status("contexts 1,", "terminations 1", 3000) >= 0, "no status with counts");
    /* Nothing asked for a watchdog: none came. */
    for (unsigned i = 0; i < n_notes; i++)
        ck_assert_msg(note_line(i, "WATCHDOG=") == NULL, "%s", notes[i].text);
}
END_TEST

START_TEST(no_ready_when_iq_cannot_bind)
{
    notify_open();
    /* The test holds the port the daemon is told to bind. */
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char iq[32];
    snprintf(iq, sizeof(iq), "127.0.0.1:%u", ntohs(a.sin_port));
    char cmd[512];
    /* Realms apart from the ephemeral range the port came from; an early exit need not free
     * everything: LeakSanitizer is not the point here. */
    unsigned base = 10000 + (unsigned)(getpid() % 240) * 40;
    snprintf(cmd, sizeof(cmd),
             "NOTIFY_SOCKET=%s ASAN_OPTIONS=detect_leaks=0 %s --iq-listen %s --workers 1 "
             "--realm access,127.0.0.1,%u-%u --realm core,127.0.0.1,%u-%u 2>/dev/null",
             notify_path, harness_agw_bin(), iq, base, base + 19, base + 20, base + 39);
    int status = system(cmd);
    close(fd);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d", status);
    while (next_note(0) >= 0)
        ;
    for (unsigned i = 0; i < n_notes; i++)
        ck_assert_msg(note_line(i, "READY=1") == NULL, "READY despite no Iq socket");
}
END_TEST

START_TEST(watchdog_pings_at_half_the_interval)
{
    notify_open();
    daemon_start(1000000, "self", NULL);
    int ready = wait_note("READY=1", 10000);
    ck_assert_msg(ready >= 0, "no READY=1 (see %s)", log_path);
    register_gateway();
    uint64_t from = now_ms();
    while (now_ms() < from + 3000)
        next_note(100);
    /* Every 500 ms: about 6 in 3 s. */
    unsigned pings = pings_between(0, from, from + 3000);
    ck_assert_msg(pings >= 4 && pings <= 8, "%u pings in 3 s", pings);
    ck_assert_msg(longest_silence(from, from + 3000) < 900, "a gap of %llu ms",
                  (unsigned long long)longest_silence(from, from + 3000));
}
END_TEST

START_TEST(watchdog_for_another_pid_is_ignored)
{
    notify_open();
    daemon_start(1000000, "1", NULL);
    ck_assert_msg(wait_note("READY=1", 10000) >= 0, "no READY=1 (see %s)", log_path);
    register_gateway();
    uint64_t from = now_ms();
    while (now_ms() < from + 1500)
        next_note(100);
    ck_assert_uint_eq(pings_between(0, 0, UINT64_MAX), 0);
}
END_TEST

static void count_reply(void *arg, const struct iq_reply *reply)
{
    *(int *)arg = reply->status == 0 && iq_reply_error(reply) == NULL ? 1 : -1;
}

START_TEST(stuck_worker_stops_the_pings)
{
    notify_open();
    /* Every worker batch then sleeps 2.5 s: the worker loop does not turn meanwhile. */
    daemon_start(1000000, "self", "AGW_DEBUG_WORKER_DELAY_MS=2500");
    ck_assert_msg(wait_note("READY=1", 10000) >= 0, "no READY=1 (see %s)", log_path);
    register_gateway();
    uint64_t start = now_ms();
    while (now_ms() < start + 1500)
        next_note(50);
    ck_assert_msg(longest_silence(start, start + 1500) < 900, "pings irregular before the Add");

    struct h248_message *msg;
    struct h248_parse_error err;
    ck_assert_int_eq(iq_client_parse_text(mgc, ACCESS_ADD, strlen(ACCESS_ADD), &msg, &err), 0);
    uint32_t tid;
    uint64_t sent = now_ms();
    ck_assert_int_eq(iq_client_send_request(mgc, msg, 10000, &tid), 0);
    int answered = 0;
    uint64_t replied = 0;
    while (now_ms() < sent + (uint64_t)harness_ms(5000)) {
        if (answered == 0 && iq_client_poll_replies(mgc, 20, count_reply, &answered) > 0)
            replied = now_ms();
        if (answered != 0)
            harness_sleep_ms(20);
        while (next_note(0) >= 0)
            ;
    }
    h248_message_free(msg);
    ck_assert_msg(answered == 1, "the Add was not answered (see %s)", log_path);
    ck_assert_msg(replied >= sent + 2400, "answered after %llu ms only",
                  (unsigned long long)(replied - sent));
    /* Stuck from just after sent until about sent + 2500: more than the 500 ms allowed. */
    uint64_t silence = longest_silence(sent, sent + 2400);
    ck_assert_msg(silence >= 1400, "pings went on while the worker was stuck (gap %llu ms)",
                  (unsigned long long)silence);
    ck_assert_msg(harness_log_contains(log_path, "no watchdog ping"), "see %s", log_path);
    /* Once it turns again, so do the pings. */
    ck_assert_uint_ge(pings_between(0, replied, sent + (uint64_t)harness_ms(5000)), 2);
    ck_assert_msg(harness_log_contains(log_path, "watchdog pings resumed"), "see %s", log_path);
}
END_TEST

START_TEST(reload_then_ready_and_stopping)
{
    notify_open();
    daemon_start(1000000, "self", NULL);
    ck_assert_msg(wait_note("READY=1", 10000) >= 0, "no READY=1 (see %s)", log_path);
    register_gateway();

    uint64_t before = now_ms();
    unsigned first = n_notes;
    ck_assert_int_eq(kill(child, SIGHUP), 0);
    int reloading = wait_note("RELOADING=1", 3000);
    ck_assert_msg(reloading >= 0, "no RELOADING=1 (see %s)", log_path);
    /* MONOTONIC_USEC is the daemon's CLOCK_MONOTONIC at the reload, the same clock as ours. */
    const char *usec = note_line((unsigned)reloading, "MONOTONIC_USEC=");
    ck_assert_ptr_nonnull(usec);
    unsigned long long at = strtoull(usec, NULL, 10) / 1000;
    ck_assert_msg(at >= before && at <= notes[reloading].at_ms, "%llu not in [%llu, %llu]", at,
                  (unsigned long long)before, (unsigned long long)notes[reloading].at_ms);
    int ready = wait_note("READY=1", 3000);
    ck_assert_msg(ready > reloading, "no READY=1 after RELOADING=1");
    for (unsigned i = first; i < (unsigned)reloading; i++)
        ck_assert_msg(note_line(i, "READY=1") == NULL, "READY before RELOADING");
    ck_assert_msg(harness_log_contains(log_path, "configuration reloaded"), "see %s", log_path);

    /* Still pinging after the reload. */
    uint64_t from = now_ms();
    while (now_ms() < from + 1200)
        next_note(100);
    ck_assert_uint_ge(pings_between(0, from, from + 1200), 1);

    ck_assert_int_eq(kill(child, SIGTERM), 0);
    int stopping = wait_note("STOPPING=1", 3000);
    ck_assert_msg(stopping >= 0, "no STOPPING=1 (see %s)", log_path);
    /* The Forced ServiceChange reaches the MGC, which answers it. */
    struct iq_event ev;
    ck_assert_int_eq(iq_client_recv(mgc, 3000, &ev), 0);
    const struct h248_command *cmd = ev.msg->transactions->actions->commands;
    ck_assert_int_eq(cmd->kind, H248_CMD_SERVICE_CHANGE);
    ck_assert_int_eq(cmd->descriptors->u.service_change.method, H248_SC_FORCED);
    iq_event_release(&ev);
    int status = harness_wait_exit(child, 10000);
    ck_assert_msg(status != -1, "ims-agw did not stop on SIGTERM");
    child = -1;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d (see %s)", status,
                  log_path);
    /* Nothing claims life after STOPPING=1. */
    while (next_note(0) >= 0)
        ;
    for (unsigned i = (unsigned)stopping + 1; i < n_notes; i++)
        ck_assert_msg(note_line(i, "WATCHDOG=1") == NULL && note_line(i, "READY=1") == NULL,
                      "after STOPPING: %s", notes[i].text);
}
END_TEST

/* The unit as `make install` writes it, with the daemon's real path (systemd-analyze verify
 * checks that ExecStart exists). 0, or -1 when something failed. */
static int write_unit(const char *path, const char *sbindir, const char *sysconfdir)
{
    FILE *in = fopen("dist/ims-agw.service.in", "r");
    FILE *out = fopen(path, "w");
    if (in == NULL || out == NULL) {
        if (in != NULL)
            fclose(in);
        if (out != NULL)
            fclose(out);
        return -1;
    }
    char line[512];
    while (fgets(line, sizeof(line), in) != NULL) {
        for (const char *p = line; *p != '\0';) {
            if (strncmp(p, "@SBINDIR@", 9) == 0) {
                fputs(sbindir, out);
                p += 9;
            } else if (strncmp(p, "@SYSCONFDIR@", 12) == 0) {
                fputs(sysconfdir, out);
                p += 12;
            } else {
                fputc(*p++, out);
            }
        }
    }
    fclose(in);
    return fclose(out) == 0 ? 0 : -1;
}

static bool in_path(const char *name)
{
    const char *path = getenv("PATH");
    char dir[PATH_MAX];
    while (path != NULL && *path != '\0') {
        size_t n = strcspn(path, ":");
        snprintf(dir, sizeof(dir), "%.*s/%s", (int)n, path, name);
        if (access(dir, X_OK) == 0)
            return true;
        path += n + (path[n] == ':');
    }
    return false;
}

/* Runs cmd through the shell; its exit status, output (up to cap) in out. */
static int run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(unit_file_verifies)
{
    if (!in_path("systemd-analyze")) {
        printf("test_systemd: systemd-analyze not found (Debian package systemd): unit file not "
               "verified\n");
        return;
    }
    static char out[1 << 16];
    char bin[PATH_MAX], dir[64], unit[96], cmd[PATH_MAX + 128];
    ck_assert_ptr_nonnull(realpath(harness_agw_bin(), bin));
    *strrchr(bin, '/') = '\0';
    snprintf(dir, sizeof(dir), "/tmp/test_systemd.%d.unit", (int)getpid());
    mkdir(dir, 0700);
    snprintf(unit, sizeof(unit), "%s/ims-agw.service", dir);
    ck_assert_int_eq(write_unit(unit, bin, "/etc"), 0);

    /* Man pages are checked by this suite's man_pages test, not through man(1). */
    snprintf(cmd, sizeof(cmd), "systemd-analyze verify --man=no %s 2>&1", unit);
    int rc = run(cmd, out, sizeof(out));
    ck_assert_msg(rc == 0 && out[0] == '\0', "verify: exit %d: %.3000s", rc, out);
    /* The hardening keeps the exposure at 2.0 ("OK") or below. */
    snprintf(cmd, sizeof(cmd), "systemd-analyze security --offline=yes --threshold=20 %s 2>&1",
             unit);
    rc = run(cmd, out, sizeof(out));
    ck_assert_msg(rc == 0, "security: exit %d: %.3000s", rc, out);
    const char *level = strstr(out, "Overall exposure level");
    ck_assert_ptr_nonnull(level);
    printf("test_systemd: %.*s\n", (int)strcspn(level, "\n"), level);
    unlink(unit);
    rmdir(dir);
}
END_TEST

START_TEST(man_pages_exist)
{
    const char *pages[] = {"man/ims-agw.8", "man/ims-agw.conf.5", "man/agw-ctl.1",
                           "man/agw-bench.1"};
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
        FILE *f = fopen(pages[i], "r");
        ck_assert_msg(f != NULL, "%s missing", pages[i]);
        char line[256] = "";
        ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
        /* A comment line, then .TH with the name and section of the file. */
        while (strncmp(line, ".\\\"", 3) == 0 && fgets(line, sizeof(line), f) != NULL)
            ;
        fclose(f);
        const char *base = strrchr(pages[i], '/') + 1;
        const char *dot = strrchr(base, '.');
        char th[96];
        snprintf(th, sizeof(th), ".TH %.*s %s ", (int)(dot - base), base, dot + 1);
        for (char *p = th + 4; *p != ' '; p++)
            *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
        ck_assert_msg(strncmp(line, th, strlen(th)) == 0, "%s: %s", pages[i], line);
    }
}
END_TEST

/* With systemd as PID 1 (and root): the unit started, reloaded and stopped for real. */
static char live_unit[96], live_dir[96];

static void live_cleanup(void)
{
    char cmd[512];
    if (live_unit[0] == '\0')
        return;
    snprintf(cmd, sizeof(cmd),
             "systemctl stop %s >/dev/null 2>&1; rm -rf /run/systemd/system/%s "
             "/run/systemd/system/%s.d %s; systemctl daemon-reload",
             live_unit, live_unit, live_unit, live_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "test_systemd: cleanup of %s failed\n", live_unit);
    live_unit[0] = '\0';
}

static void live_teardown(void)
{
    live_cleanup();
    teardown();
}

START_TEST(unit_runs_under_systemd)
{
    struct stat st;
    if (lstat("/run/systemd/system", &st) != 0 || !S_ISDIR(st.st_mode)) {
        printf("test_systemd: systemd is not PID 1 here: the unit was verified offline only\n");
        return;
    }
    if (geteuid() != 0 || !in_path("systemctl")) {
        printf("test_systemd: not root (or no systemctl): the unit is not run under systemd\n");
        return;
    }
    if (strstr(harness_agw_bin(), "asan") != NULL) {
        printf("test_systemd: the sanitizer build is not run under the unit's seccomp filter\n");
        return;
    }
    /* The daemon and its configuration where the dynamic user can read them. */
    snprintf(live_unit, sizeof(live_unit), "ims-agw-check-%d.service", (int)getpid());
    snprintf(live_dir, sizeof(live_dir), "/run/ims-agw-check-%d", (int)getpid());
    char path[256], etc[128], cmd[1024], out[4096];
    ck_assert_int_eq(mkdir(live_dir, 0755), 0);
    snprintf(etc, sizeof(etc), "%s/etc", live_dir);
    ck_assert_int_eq(mkdir(etc, 0755), 0);
    snprintf(path, sizeof(path), "%s/ims-agw", etc);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(cmd, sizeof(cmd), "cp %s %s/ims-agw && chmod 0755 %s/ims-agw", harness_agw_bin(),
             live_dir, live_dir);
    ck_assert_int_eq(system(cmd), 0);
    mgc_port = harness_free_port(SOCK_DGRAM);
    iq_port = harness_free_port(SOCK_DGRAM);
    realm_base = (uint16_t)(10000 + (getpid() % 240) * 40);
    snprintf(path, sizeof(path), "%s/ims-agw/ims-agw.conf", etc);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "[global]\niq_listen = 127.0.0.1:%u\nmgc = 127.0.0.1:%u\nworkers = 1\n"
            "[realm access]\naddress = 127.0.0.1\nports = %u-%u\n"
            "[realm core]\naddress = 127.0.0.1\nports = %u-%u\n",
            iq_port, mgc_port, realm_base, realm_base + 19, realm_base + 20, realm_base + 39);
    ck_assert_int_eq(fclose(f), 0);
    chmod(path, 0644);
    /* The installed unit, pointing at these files; a short watchdog so that it is exercised. */
    snprintf(path, sizeof(path), "/run/systemd/system/%s", live_unit);
    ck_assert_int_eq(write_unit(path, live_dir, etc), 0);
    snprintf(path, sizeof(path), "/run/systemd/system/%s.d", live_unit);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "/run/systemd/system/%s.d/test.conf", live_unit);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("[Service]\nWatchdogSec=2s\nRestart=no\n", f);
    ck_assert_int_eq(fclose(f), 0);

    char m1[32], gw[32];
    snprintf(m1, sizeof(m1), "127.0.0.1:%u", mgc_port);
    snprintf(gw, sizeof(gw), "127.0.0.1:%u", iq_port);
    ck_assert_int_eq(iq_client_open(m1, gw, NULL, NULL, &mgc), 0);
    ck_assert_int_eq(system("systemctl daemon-reload"), 0);
    /* Type=notify: start returns once READY=1 came. */
    snprintf(cmd, sizeof(cmd), "systemctl start %s 2>&1", live_unit);
    ck_assert_msg(run(cmd, out, sizeof(out)) == 0, "start: %s", out);
    struct iq_event ev;
    ck_assert_int_eq(iq_client_wait_registration(mgc, 5000, NULL, NULL, &ev), 0);
    iq_event_release(&ev);
    harness_sleep_ms(3000); /* longer than WatchdogSec: only the pings keep it alive */
    snprintf(cmd, sizeof(cmd),
             "systemctl show -p ActiveState -p SubState -p NRestarts -p StatusText %s", live_unit);
    ck_assert_int_eq(run(cmd, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "ActiveState=active") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "SubState=running") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "StatusText=registered with") != NULL, "%s", out);
    snprintf(cmd, sizeof(cmd), "systemctl reload %s 2>&1", live_unit);
    ck_assert_msg(run(cmd, out, sizeof(out)) == 0, "reload: %s", out);
    snprintf(cmd, sizeof(cmd), "systemctl stop %s 2>&1", live_unit);
    ck_assert_msg(run(cmd, out, sizeof(out)) == 0, "stop: %s", out);
    snprintf(cmd, sizeof(cmd), "systemctl show -p Result -p ExecMainStatus %s", live_unit);
    ck_assert_int_eq(run(cmd, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "Result=success") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "ExecMainStatus=0") != NULL, "%s", out);
    live_cleanup();
}
END_TEST

static Suite *systemd_suite(void)
{
    Suite *s = suite_create("systemd");
    TCase *tc = tcase_create("notify");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, ready_only_once_iq_is_bound);
    tcase_add_test(tc, no_ready_when_iq_cannot_bind);
    tcase_add_test(tc, watchdog_pings_at_half_the_interval);
    tcase_add_test(tc, watchdog_for_another_pid_is_ignored);
    tcase_add_test(tc, stuck_worker_stops_the_pings);
    tcase_add_test(tc, reload_then_ready_and_stopping);
    suite_add_tcase(s, tc);
    tc = tcase_create("unit");
    tcase_add_checked_fixture(tc, NULL, live_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, unit_file_verifies);
    tcase_add_test(tc, man_pages_exist);
    tcase_add_test(tc, unit_runs_under_systemd);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(systemd_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
