/* Helpers shared by the suites that drive the real daemon (see harness.h). */
#include "tests/harness.h"

#include <arpa/inet.h>
#include <check.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *harness_agw_bin(void)
{
    const char *bin = getenv("AGW_BIN");
    return bin != NULL && bin[0] != '\0' ? bin : "build/ims-agw";
}

uint16_t harness_free_port(int type)
{
    int fd = socket(AF_INET, type, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

void harness_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int harness_ms(int ms)
{
    static int factor;
    if (factor == 0) {
        const char *env = getenv("AGW_TEST_SLOW");
        long f = env != NULL ? strtol(env, NULL, 10) : 1;
        factor = f >= 1 && f <= 100 ? (int)f : 1;
    }
    return ms > INT_MAX / factor ? INT_MAX : ms * factor;
}

bool harness_log_contains(const char *path, const char *needle)
{
    static char buf[1 << 20];
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

int harness_wait_exit(pid_t pid, int ms)
{
    int rounds = harness_ms(ms) / 10;
    for (int i = 0; i < rounds; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        harness_sleep_ms(10);
    }
    return -1;
}

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int harness_stop_daemon(pid_t pid, struct iq_client *c, int timeout_ms)
{
    kill(pid, SIGTERM);
    int status = -1;
    uint64_t deadline = monotonic_ms() + (uint64_t)harness_ms(timeout_ms);
    while (waitpid(pid, &status, WNOHANG) != pid) {
        if (monotonic_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        struct iq_event ev;
        if (c != NULL && iq_client_recv(c, 20, &ev) == 0)
            iq_event_release(&ev);
    }
    return status;
}

const char *harness_wait_notify(struct iq_client *c, int timeout_ms)
{
    static char text[4096];
    uint64_t deadline = monotonic_ms() + (uint64_t)harness_ms(timeout_ms);
    while (monotonic_ms() < deadline) {
        struct iq_event ev;
        if (iq_client_recv(c, (int)(deadline - monotonic_ms()) + 1, &ev) != 0)
            break;
        size_t len = 0;
        if (ev.kind == IQ_EVENT_REQUEST)
            h248_encode_message(ev.msg, H248_STYLE_COMPACT, text, sizeof(text) - 1, &len);
        text[len] = '\0';
        iq_event_release(&ev);
        if (strstr(text, "N=") != NULL)
            return text;
    }
    text[0] = '\0';
    return text;
}

const char *harness_request(struct iq_client *c, const char *text, unsigned *code)
{
    static char out[16384];
    struct iq_reply reply;
    struct h248_parse_error err;
    ck_assert_int_eq(iq_client_request_text(c, text, strlen(text), harness_ms(3000), &reply, &err),
                     0);
    out[0] = '\0';
    size_t len = 0;
    if (reply.status == 0)
        h248_encode_message(reply.msg, H248_STYLE_COMPACT, out, sizeof(out) - 1, &len);
    out[len] = '\0';
    const struct h248_error_desc *e = reply.status == 0 ? iq_reply_error(&reply) : NULL;
    *code = e != NULL ? e->code : reply.status == 0 ? 0 : 999;
    iq_reply_release(&reply);
    return out;
}

unsigned long harness_number_after(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    ck_assert_msg(p != NULL, "no %s in %s", key, text);
    return strtoul(p + strlen(key), NULL, 10);
}
