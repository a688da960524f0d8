/* Check suite: the real ims-agw on loopback answers Iq datagrams (501, 400, 403) and stops cleanly.
 */
#include "h248/h248.h"

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

#define WAIT_MS 5000
#define QUIET_MS 300

static const char *agw_bin(void)
{
    const char *bin = getenv("AGW_BIN");
    return bin != NULL && bin[0] != '\0' ? bin : "build/ims-agw";
}

static pid_t child = -1;
static int child_log = -1; /* read end of the daemon's stderr */
static int sock = -1;      /* our UDP socket, connected to the daemon */
static uint16_t agw_port;

/* A port nobody listens on right now: bind to 0 and let the kernel pick. */
static uint16_t free_udp_port(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Starts bin with args; its stdout or stderr (which_fd) goes to *out_fd. */
static pid_t spawn(char *const argv[], int which_fd, int *out_fd)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fcntl(p[0], F_SETFD, FD_CLOEXEC); /* dup2 leaves the child's copy of p[1] open */
    fcntl(p[1], F_SETFD, FD_CLOEXEC);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(p[1], which_fd);
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    *out_fd = p[0];
    return pid;
}

/* Reads from fd until needle shows up in what was read (returns true) or timeout/EOF. */
static bool read_until(int fd, const char *needle, char *buf, size_t cap)
{
    size_t len = 0;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    buf[0] = '\0';
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed >= WAIT_MS || len + 1 >= cap)
            return false;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(WAIT_MS - elapsed)) <= 0)
            return false;
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            return false;
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, needle) != NULL)
            return true;
    }
}

/* Waits for pid to exit; its wait status, or -1 after WAIT_MS. */
static int wait_exit(pid_t pid)
{
    for (int i = 0; i < WAIT_MS / 10; i++) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static void daemon_start(void)
{
    char addr[32], log[4096];
    agw_port = free_udp_port();
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", agw_port);
    char *argv[] = {(char *)agw_bin(), "--iq-listen", addr, NULL};
    child = spawn(argv, STDERR_FILENO, &child_log);
    ck_assert_msg(read_until(child_log, "listening for Iq on", log, sizeof(log)),
                  "%s did not start listening on %s: '%s'", agw_bin(), addr, log);
    ck_assert_msg(strstr(log, addr) != NULL, "listening line without %s: '%s'", addr, log);

    sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(sock, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(agw_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(sock, (struct sockaddr *)&a, sizeof(a)), 0);
}

static void daemon_stop(void)
{
    if (sock >= 0)
        close(sock);
    sock = -1;
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    child = -1;
    if (child_log >= 0)
        close(child_log);
    child_log = -1;
}

static void send_text(const char *data, size_t len)
{
    ck_assert_int_eq(send(sock, data, len, 0), (ssize_t)len);
}

/* The next datagram from the daemon, parsed; NULL when none came within ms. */
static struct h248_message *recv_reply(int ms)
{
    static char buf[65536];
    struct pollfd pfd = {.fd = sock, .events = POLLIN};
    if (poll(&pfd, 1, ms) <= 0)
        return NULL;
    ssize_t n = recv(sock, buf, sizeof(buf), 0);
    ck_assert_int_gt(n, 0);
    struct h248_message *msg = NULL;
    struct h248_parse_error err;
    int rc = h248_parse_message(buf, (size_t)n, NULL, &msg, &err);
    ck_assert_msg(rc == 0, "reply does not parse (%u: %s): %.*s", err.code, err.text, (int)n, buf);
    return msg;
}

static bool str_eq(const struct h248_str *s, const char *text)
{
    return s->len == strlen(text) && memcmp(s->ptr, text, s->len) == 0;
}

static bool str_contains(const struct h248_str *s, const char *text)
{
    size_t n = strlen(text);
    for (size_t i = 0; i + n <= s->len; i++) {
        if (memcmp(s->ptr + i, text, n) == 0)
            return true;
    }
    return false;
}

/* Checks that reply is P=tid{ER=code{...text...}} from our mId, and frees it. */
static void assert_transaction_error(struct h248_message *reply, uint32_t tid, unsigned code,
                                     const char *text)
{
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(reply->mid.kind, H248_MID_IPV4);
    ck_assert(str_eq(&reply->mid.text, "127.0.0.1"));
    ck_assert(reply->mid.has_port);
    ck_assert_uint_eq(reply->mid.port, agw_port);
    ck_assert_ptr_null(reply->error);
    const struct h248_transaction *t = reply->transactions;
    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_null(t->next);
    ck_assert_int_eq(t->kind, H248_TRANS_REPLY);
    ck_assert_uint_eq(t->id, tid);
    ck_assert_ptr_nonnull(t->error);
    ck_assert_uint_eq(t->error->code, code);
    ck_assert(t->error->has_text);
    ck_assert_msg(text == NULL || str_contains(&t->error->text, text), "error text '%.*s'",
                  (int)t->error->text.len, t->error->text.ptr);
    h248_message_free(reply);
}

static const char add_request[] = "MEGACO/3 [192.0.2.10]:2944\n"
                                  "T=4711{C=${A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{\n"
                                  "v=0\n"
                                  "c=IN IP4 $\n"
                                  "m=message $ TCP/TLS/MSRP *\n"
                                  "a=setup:passive\n"
                                  "a=fingerprint:$\n"
                                  "}}}}}}\n";

START_TEST(test_add_gets_501)
{
    send_text(add_request, sizeof(add_request) - 1);
    assert_transaction_error(recv_reply(WAIT_MS), 4711, 501, "Add not implemented yet");
}
END_TEST

START_TEST(test_each_request_of_a_message_answered)
{
    static const char two[] = "!/3 [192.0.2.10]:2944 T=1{C=-{SC=ROOT{SV{MT=RS,RE=901}}}}"
                              "T=2{C=1{MF=ip/access/1}}";
    send_text(two, sizeof(two) - 1);
    struct h248_message *reply = recv_reply(WAIT_MS);
    ck_assert_ptr_nonnull(reply);
    const struct h248_transaction *t = reply->transactions;
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->id, 1);
    ck_assert_uint_eq(t->error->code, 501);
    ck_assert(str_contains(&t->error->text, "ServiceChange"));
    t = t->next;
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->id, 2);
    ck_assert_uint_eq(t->error->code, 501);
    ck_assert(str_contains(&t->error->text, "Modify"));
    ck_assert_ptr_null(t->next);
    h248_message_free(reply);
}
END_TEST

START_TEST(test_garbage_gets_400)
{
    static const char garbage[] = "garbage \"quoted\" \x01\xff";
    send_text(garbage, sizeof(garbage) - 1);
    struct h248_message *reply = recv_reply(WAIT_MS);
    ck_assert_ptr_nonnull(reply);
    ck_assert_ptr_null(reply->transactions);
    ck_assert_ptr_nonnull(reply->error);
    ck_assert_uint_eq(reply->error->code, 400);
    ck_assert(reply->error->has_text);
    ck_assert_uint_gt(reply->error->text.len, 0);
    h248_message_free(reply);
}
END_TEST

START_TEST(test_broken_transaction_gets_403)
{
    static const char broken[] = "!/3 [192.0.2.10]:2944 T=4242{foo}";
    send_text(broken, sizeof(broken) - 1);
    assert_transaction_error(recv_reply(WAIT_MS), 4242, 403, NULL);
}
END_TEST

START_TEST(test_reply_from_peer_ignored)
{
    static const char reply[] = "!/3 [192.0.2.10]:2944 P=5{C=-{AV=ROOT}}";
    send_text(reply, sizeof(reply) - 1);
    ck_assert_ptr_null(recv_reply(QUIET_MS));
}
END_TEST

START_TEST(test_survives_bad_input_and_stops_on_sigterm)
{
    static char big[60000];
    memset(big, '{', sizeof(big));
    memcpy(big, "!/3 [192.0.2.10]:2944 T=9{C=1{", 30);
    send_text(big, sizeof(big));
    send_text("", 0);
    send_text("\0\0\0", 3);
    static const char overflow[] = "!/3 [192.0.2.10]:2944 T=4294967296{C=-{}}";
    send_text(overflow, sizeof(overflow) - 1);
    /* Drain whatever those got: each is answered or ignored, none may stop the daemon. */
    for (int i = 0; i < 4; i++) {
        struct h248_message *m = recv_reply(QUIET_MS);
        if (m == NULL)
            break;
        h248_message_free(m);
    }

    send_text(add_request, sizeof(add_request) - 1);
    assert_transaction_error(recv_reply(WAIT_MS), 4711, 501, "Add");

    ck_assert_int_eq(kill(child, SIGTERM), 0);
    int status = wait_exit(child);
    ck_assert_msg(status != -1, "no exit within %d ms of SIGTERM", WAIT_MS);
    child = -1;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "wait status 0x%x", status);
}
END_TEST

START_TEST(test_version)
{
    char out[4096];
    int fd;
    char *argv[] = {(char *)agw_bin(), "-V", NULL};
    pid_t pid = spawn(argv, STDOUT_FILENO, &fd);
    bool seen = read_until(fd, "libuv ", out, sizeof(out));
    close(fd);
    int status = wait_exit(pid);
    if (status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    ck_assert_msg(seen, "-V printed '%s'", out);
    ck_assert_msg(strncmp(out, "ims-agw ", 8) == 0, "-V printed '%s'", out);
    ck_assert(strstr(out, "OpenSSL ") != NULL);
    ck_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

static Suite *daemon_suite(void)
{
    Suite *s = suite_create("daemon");
    TCase *tc = tcase_create("iq");
    tcase_add_checked_fixture(tc, daemon_start, daemon_stop);
    tcase_add_test(tc, test_add_gets_501);
    tcase_add_test(tc, test_each_request_of_a_message_answered);
    tcase_add_test(tc, test_garbage_gets_400);
    tcase_add_test(tc, test_broken_transaction_gets_403);
    tcase_add_test(tc, test_reply_from_peer_ignored);
    tcase_add_test(tc, test_survives_bad_input_and_stops_on_sigterm);
    suite_add_tcase(s, tc);

    TCase *tv = tcase_create("options");
    tcase_add_test(tv, test_version);
    suite_add_tcase(s, tv);
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
