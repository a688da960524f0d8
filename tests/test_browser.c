/* Check suite: headless Chromium as the UE of an MSRP data channel (RFC 8873) through the real
 * daemon; the test plays the ALG (offer/answer over Iq, ICE-lite), the web server and the core
 * MSRP peer over TCP: every SEND is checked at the core, every 200 OK at the page. */
#define _GNU_SOURCE /* unshare, CLONE_NEWNET, memmem */
#include "h248/h248.h"
#include "tests/harness.h"
#include "tls/cert.h"
#include "tls/fingerprint.h"
#include "tools/iq_client.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE_DIR "tests/browser"
#define BULK_COUNT 200      /* SEND requests after the first one */
#define BULK_SIZE 4096      /* bytes of each of their bodies */
#define FIRST_SIZE 32       /* body of the first SEND, the one the set-up time ends with */
#define OFFER_WAIT_MS 20000 /* Chromium's start, the fake microphone, ICE gathering */
#define PAGE_OPEN_MS 8000   /* the page gives up on the channel after this */
#define PAGE_BULK_MS 10000  /* and on missing answers after this */
#define RESULT_WAIT_MS (PAGE_OPEN_MS + 2 * PAGE_BULK_MS + 3000)
#define SDP_MAX 16384
#define SDP_LINE_MAX 1024
#define HTTP_HEAD_MAX 8192
#define HTTP_BODY_MAX 65536
#define HTTP_CONNS 8
#define MSRP_BUF (256 * 1024)
#define TO_PATH_FMT "msrp://127.0.0.1:%u/core0001;tcp"
#define FROM_PATH "msrp://ue.test:9/ue0001;dc"

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- What a failed case leaves behind ---- */

/* Check ends a failed case with _exit (no teardown): the runner's process reaps the browser's
 * process group and its profile from this page shared with the cases' processes. */
struct leftovers {
    pid_t browser_group;
    char profile[64];
};
static struct leftovers *leftover;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void reap_leftovers(void)
{
    if (leftover == NULL)
        return;
    if (leftover->browser_group > 0) {
        /* Chromium's helpers are in the group too; give them a moment to be gone. */
        kill(-leftover->browser_group, SIGKILL);
        for (int i = 0; i < 100 && kill(-leftover->browser_group, 0) == 0; i++)
            harness_sleep_ms(20);
        leftover->browser_group = 0;
    }
    if (leftover->profile[0] != '\0') {
        nftw(leftover->profile, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        leftover->profile[0] = '\0';
    }
}

/* ---- A network of our own ---- */

static int netns_error; /* -errno of entering it, 0 once in it */

static int write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, text, strlen(text));
    int rc = n == (ssize_t)strlen(text) ? 0 : -errno;
    close(fd);
    return rc;
}

/* A network namespace holding only lo: Chromium then gathers one host candidate, 127.0.0.1, and
 * nothing the test does leaves loopback. As root, else in a user namespace of our own. */
static int enter_private_net(void)
{
    if (unshare(CLONE_NEWNET) != 0) {
        char map[64];
        unsigned uid = (unsigned)getuid(), gid = (unsigned)getgid();
        if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0)
            return -errno;
        snprintf(map, sizeof(map), "0 %u 1", uid);
        int rc = write_text("/proc/self/setgroups", "deny");
        if (rc == 0 || rc == -ENOENT)
            rc = write_text("/proc/self/uid_map", map);
        snprintf(map, sizeof(map), "0 %u 1", gid);
        if (rc == 0)
            rc = write_text("/proc/self/gid_map", map);
        if (rc != 0)
            return rc;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, "lo", 3);
    int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP;
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    rc = rc == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

/* ---- The daemon ---- */

static pid_t daemon_pid = -1;
static char log_path[64];
static struct iq_client *mgc;

static void start_daemon(void)
{
    char iq[32], m1[32], access[64], core[64];
    uint16_t iq_port = harness_free_port(SOCK_DGRAM), mgc_port = harness_free_port(SOCK_DGRAM);
    /* Below the ephemeral range and apart from the other suites' realms (9000-9999). */
    uint16_t base = (uint16_t)(9000 + (getpid() % 20) * 40);
    snprintf(iq, sizeof(iq), "127.0.0.1:%u", iq_port);
    snprintf(m1, sizeof(m1), "127.0.0.1:%u", mgc_port);
    snprintf(access, sizeof(access), "access,127.0.0.1,%u-%u", base, base + 19);
    snprintf(core, sizeof(core), "core,127.0.0.1,%u-%u", base + 20, base + 39);
    snprintf(log_path, sizeof(log_path), "/tmp/test_browser.%d.log", (int)getpid());
    daemon_pid = fork();
    ck_assert_int_ge(daemon_pid, 0);
    if (daemon_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, STDERR_FILENO);
        execl(harness_agw_bin(), harness_agw_bin(), "--iq-listen", iq, "--mgc", m1, "--workers",
              "2", "--realm", access, "--realm", core, "--handshake-timeout-ms", "8000",
              "--control-socket", "", "--log-level", "debug", (char *)NULL);
        _exit(127);
    }
    ck_assert_int_eq(iq_client_open(m1, iq, NULL, NULL, &mgc), 0);
    ck_assert_msg(iq_client_wait_registration(mgc, 5000, NULL, NULL, NULL) == 0,
                  "no registration, see %s", log_path);
}

/* SIGTERM: the daemon must exit 0 (ASan: no leak). */
static void stop_daemon(void)
{
    if (daemon_pid <= 0)
        return;
    kill(daemon_pid, SIGTERM);
    int status = -1;
    uint64_t deadline = now_ms() + 10000;
    while (waitpid(daemon_pid, &status, WNOHANG) != daemon_pid) {
        if (now_ms() > deadline) {
            kill(daemon_pid, SIGKILL);
            waitpid(daemon_pid, &status, 0);
            break;
        }
        struct iq_event ev;
        if (iq_client_recv(mgc, 20, &ev) == 0)
            iq_event_release(&ev);
    }
    daemon_pid = -1;
    iq_client_close(mgc);
    mgc = NULL;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d, see %s", status,
                  log_path);
}

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

/* ---- SDP, both ways ---- */

/* What the ALG takes from the browser's offer. */
struct offer {
    char ufrag[257], pwd[257], setup[16], mid[33];
    char fingerprints[4][AGW_TLS_FINGERPRINT_TEXT_MAX];
    unsigned n_fingerprints, m_lines, sctp_port, max_message_size;
    char candidate[SDP_LINE_MAX]; /* the value of the loopback UDP host candidate */
    char address[INET_ADDRSTRLEN];
    uint16_t port;
    bool datachannel; /* the m= line is application ... UDP/DTLS/SCTP webrtc-datachannel */
};

static bool starts(const char *line, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && strncasecmp(line, prefix, n) == 0;
}

/* Copies the len bytes at p into out (cap bytes); false when they do not fit. */
static bool copy_value(const char *p, size_t len, char *out, size_t cap)
{
    if (len >= cap)
        return false;
    memcpy(out, p, len);
    out[len] = '\0';
    return true;
}

/* "<foundation> <component> <transport> <priority> <address> <port> typ <type> ...": the
 * loopback UDP host candidate of component 1, or false. */
static bool loopback_candidate(const char *v, size_t len, struct offer *o)
{
    char line[SDP_LINE_MAX], *save = NULL, *f[8];
    if (!copy_value(v, len, line, sizeof(line)))
        return false;
    unsigned n = 0;
    for (char *t = strtok_r(line, " ", &save); t != NULL && n < 8; t = strtok_r(NULL, " ", &save))
        f[n++] = t;
    if (n < 8 || strcmp(f[1], "1") != 0 || strcasecmp(f[2], "udp") != 0 ||
        strcmp(f[4], "127.0.0.1") != 0 || strcmp(f[6], "typ") != 0 || strcmp(f[7], "host") != 0)
        return false;
    char *end;
    unsigned long port = strtoul(f[5], &end, 10);
    if (*end != '\0' || port == 0 || port > 65535)
        return false;
    o->port = (uint16_t)port;
    snprintf(o->address, sizeof(o->address), "%s", f[4]);
    return copy_value(v, len, o->candidate, sizeof(o->candidate));
}

/* Reads the offer's lines (len bytes, CRLF or LF); 0, or -EPROTO with why. */
static int offer_parse(const char *sdp, size_t len, struct offer *o, char *why, size_t cap)
{
    memset(o, 0, sizeof(*o));
    size_t pos = 0;
    while (pos < len) {
        const char *line = sdp + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl != NULL ? (size_t)(nl - line) : len - pos;
        pos += n + (nl != NULL);
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (n > SDP_LINE_MAX) {
            snprintf(why, cap, "a line of %zu bytes", n);
            return -EPROTO;
        }
        const char *colon = memchr(line, ':', n);
        const char *v = colon != NULL ? colon + 1 : line + n;
        size_t vn = (size_t)(line + n - v);
        bool fits = true;
        if (starts(line, n, "m=")) {
            o->m_lines++;
            o->datachannel = starts(line, n, "m=application ") &&
                             memmem(line, n, " UDP/DTLS/SCTP webrtc-datachannel", 33) != NULL;
        } else if (starts(line, n, "a=ice-ufrag:")) {
            fits = copy_value(v, vn, o->ufrag, sizeof(o->ufrag));
        } else if (starts(line, n, "a=ice-pwd:")) {
            fits = copy_value(v, vn, o->pwd, sizeof(o->pwd));
        } else if (starts(line, n, "a=setup:")) {
            fits = copy_value(v, vn, o->setup, sizeof(o->setup));
        } else if (starts(line, n, "a=mid:")) {
            fits = copy_value(v, vn, o->mid, sizeof(o->mid));
        } else if (starts(line, n, "a=fingerprint:") && o->n_fingerprints < 4) {
            fits =
                copy_value(v, vn, o->fingerprints[o->n_fingerprints++], sizeof(o->fingerprints[0]));
        } else if (starts(line, n, "a=sctp-port:")) {
            o->sctp_port = (unsigned)strtoul(v, NULL, 10);
        } else if (starts(line, n, "a=max-message-size:")) {
            o->max_message_size = (unsigned)strtoul(v, NULL, 10);
        } else if (starts(line, n, "a=candidate:") && o->port == 0) {
            loopback_candidate(v, vn, o);
        }
        if (!fits) {
            snprintf(why, cap, "too long: %.*s", (int)(n > 60 ? 60 : n), line);
            return -EPROTO;
        }
    }
    const char *missing = o->m_lines != 1       ? "exactly one m= line"
                          : !o->datachannel     ? "m=application ... UDP/DTLS/SCTP"
                          : o->ufrag[0] == '\0' ? "a=ice-ufrag"
                          : o->pwd[0] == '\0'   ? "a=ice-pwd"
                          : !o->n_fingerprints  ? "a=fingerprint"
                          : o->mid[0] == '\0'   ? "a=mid"
                          : o->sctp_port == 0   ? "a=sctp-port"
                          : o->port == 0        ? "a 127.0.0.1 UDP host candidate"
                                                : NULL;
    if (missing != NULL) {
        snprintf(why, cap, "the offer has no %s", missing);
        return -EPROTO;
    }
    if (strcmp(o->setup, "actpass") != 0) {
        snprintf(why, cap, "the offer has a=setup:%s, not actpass", o->setup);
        return -EPROTO;
    }
    return 0;
}

/* The value of the first "<key>" line in text (a reply: lines end at CR, LF or '}'), or false. */
static bool sdp_value(const char *text, const char *key, char *out, size_t cap)
{
    const char *p = strstr(text, key);
    if (p == NULL)
        return false;
    p += strlen(key);
    return copy_value(p, strcspn(p, "\r\n}"), out, cap);
}

/* What the gateway put in the access termination's Local. */
struct local {
    char address[INET_ADDRSTRLEN], ufrag[257], pwd[257], fingerprint[AGW_TLS_FINGERPRINT_TEXT_MAX];
    char candidate[SDP_LINE_MAX], setup[16];
    unsigned port, sctp_port, max_message_size;
};

static void local_parse(const char *reply, struct local *l)
{
    char v[64];
    memset(l, 0, sizeof(*l));
    ck_assert_msg(sdp_value(reply, "c=IN IP4 ", l->address, sizeof(l->address)), "no c= in %s",
                  reply);
    ck_assert_msg(sdp_value(reply, "m=application ", v, sizeof(v)), "no m= in %s", reply);
    l->port = (unsigned)strtoul(v, NULL, 10);
    ck_assert_msg(sdp_value(reply, "a=fingerprint:", l->fingerprint, sizeof(l->fingerprint)),
                  "no a=fingerprint in %s", reply);
    sdp_value(reply, "a=setup:", l->setup, sizeof(l->setup));
    if (sdp_value(reply, "a=sctp-port:", v, sizeof(v)))
        l->sctp_port = (unsigned)strtoul(v, NULL, 10);
    if (sdp_value(reply, "a=max-message-size:", v, sizeof(v)))
        l->max_message_size = (unsigned)strtoul(v, NULL, 10);
    /* ICE-lite (DESIGN.md §6): the gateway's own credentials, asked for with "$", and its one
     * host candidate. */
    ck_assert_msg(sdp_value(reply, "a=ice-ufrag:", l->ufrag, sizeof(l->ufrag)) &&
                      strcmp(l->ufrag, "$") != 0 && strlen(l->ufrag) >= 4,
                  "no ICE-lite: the Local has no a=ice-ufrag of the gateway's (log %s): %s",
                  log_path, reply);
    ck_assert_msg(sdp_value(reply, "a=ice-pwd:", l->pwd, sizeof(l->pwd)) && strlen(l->pwd) >= 22,
                  "no a=ice-pwd of 22+ characters in %s", reply);
    ck_assert_msg(strstr(reply, "a=ice-lite") != NULL, "no a=ice-lite in %s", reply);
    ck_assert_msg(sdp_value(reply, "a=candidate:", l->candidate, sizeof(l->candidate)),
                  "no a=candidate in %s", reply);
    char expect[64];
    snprintf(expect, sizeof(expect), " %s %u typ host", l->address, l->port);
    ck_assert_msg(strstr(l->candidate, expect) != NULL, "candidate '%s' is not%s", l->candidate,
                  expect);
}

/* The SDP answer the ALG gives the browser: the gateway's Local as a full description, the
 * gateway as the ICE-lite, DTLS-server side. */
static void build_answer(const struct offer *o, const struct local *l, char *out, size_t cap)
{
    int n = snprintf(out, cap,
                     "v=0\r\no=- %u 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE %s\r\n"
                     "a=ice-lite\r\nm=application %u UDP/DTLS/SCTP webrtc-datachannel\r\n"
                     "c=IN IP4 %s\r\na=mid:%s\r\na=ice-ufrag:%s\r\na=ice-pwd:%s\r\n"
                     "a=fingerprint:%s\r\na=setup:passive\r\na=sctp-port:%u\r\n"
                     "a=max-message-size:%u\r\na=candidate:%s\r\na=end-of-candidates\r\n",
                     (unsigned)getpid(), o->mid, l->port, l->address, o->mid, l->ufrag, l->pwd,
                     l->fingerprint, l->sctp_port != 0 ? l->sctp_port : 5000,
                     l->max_message_size != 0 ? l->max_message_size : 65536, l->candidate);
    ck_assert(n > 0 && (size_t)n < cap);
}

/* ---- The web server: the page, POST /offer, POST /result ---- */

struct web {
    int listen_fd, stop_pipe[2];
    uint16_t port;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
    char offer[SDP_MAX];
    size_t offer_len;
    bool has_offer, has_answer;
    char answer[SDP_MAX];
    char result[HTTP_BODY_MAX + 1];
    bool has_result;
    unsigned requests;
};

struct http_conn {
    int fd;
    size_t len;
    char *buf; /* HTTP_HEAD_MAX + HTTP_BODY_MAX */
};

static void http_send(int fd, int status, const char *type, const char *body, size_t len)
{
    char head[256];
    const char *reason = status == 200   ? "OK"
                         : status == 404 ? "Not Found"
                         : status == 413 ? "Payload Too Large"
                         : status == 400 ? "Bad Request"
                                         : "Internal Server Error";
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                     status, reason, type, len);
    (void)!send(fd, head, (size_t)n, MSG_NOSIGNAL);
    for (size_t off = 0; off < len;) {
        ssize_t w = send(fd, body + off, len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

/* A page file, read whole (bounded). */
static void http_send_file(int fd, const char *name, const char *type)
{
    char path[128], *data = malloc(HTTP_BODY_MAX);
    snprintf(path, sizeof(path), PAGE_DIR "/%s", name);
    FILE *f = fopen(path, "rb");
    size_t n = f != NULL ? fread(data, 1, HTTP_BODY_MAX, f) : 0;
    if (f != NULL)
        fclose(f);
    if (n == 0 || n == HTTP_BODY_MAX)
        http_send(fd, 404, "text/plain", "no such page\n", 13);
    else
        http_send(fd, 200, type, data, n);
    free(data);
}

/* The offer goes to the test's thread, which answers within the page's patience or not at all. */
static void web_offer(struct web *w, int fd, const char *body, size_t len)
{
    pthread_mutex_lock(&w->lock);
    if (len >= sizeof(w->offer) || w->has_offer) {
        pthread_mutex_unlock(&w->lock);
        http_send(fd, 400, "text/plain", "one offer, smaller\n", 19);
        return;
    }
    memcpy(w->offer, body, len);
    w->offer[len] = '\0';
    w->offer_len = len;
    w->has_offer = true;
    pthread_cond_broadcast(&w->cond);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 15;
    while (!w->has_answer && !w->stopping)
        if (pthread_cond_timedwait(&w->cond, &w->lock, &until) == ETIMEDOUT)
            break;
    int status = w->has_answer ? 200 : 500;
    char *answer = strdup(w->has_answer ? w->answer : "the ALG did not answer\n");
    pthread_mutex_unlock(&w->lock);
    http_send(fd, status, "text/plain", answer, strlen(answer));
    free(answer);
}

static void web_handle(struct web *w, int fd, const char *method, const char *path,
                       const char *body, size_t len)
{
    w->requests++;
    if (strcmp(method, "GET") == 0 && strcmp(path, "/") == 0) {
        http_send_file(fd, "index.html", "text/html; charset=utf-8");
    } else if (strcmp(method, "GET") == 0 && strcmp(path, "/msrp.js") == 0) {
        http_send_file(fd, "msrp.js", "text/javascript; charset=utf-8");
    } else if (strcmp(method, "POST") == 0 && strcmp(path, "/offer") == 0) {
        web_offer(w, fd, body, len);
    } else if (strcmp(method, "POST") == 0 && strcmp(path, "/result") == 0) {
        pthread_mutex_lock(&w->lock);
        memcpy(w->result, body, len);
        w->result[len] = '\0';
        w->has_result = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
        http_send(fd, 200, "text/plain", "ok\n", 3);
    } else {
        http_send(fd, 404, "text/plain", "not here\n", 9);
    }
}

/* 1: a whole request was answered (close the connection), 0: more bytes needed, -1: refused. */
static int web_try_request(struct web *w, struct http_conn *c)
{
    const char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (end == NULL)
        return c->len >= HTTP_HEAD_MAX ? -1 : 0;
    size_t head_len = (size_t)(end - c->buf) + 4;
    char method[8], target[256];
    const char *sp1 = memchr(c->buf, ' ', head_len);
    const char *sp2 =
        sp1 != NULL ? memchr(sp1 + 1, ' ', head_len - (size_t)(sp1 + 1 - c->buf)) : NULL;
    if (sp2 == NULL || !copy_value(c->buf, (size_t)(sp1 - c->buf), method, sizeof(method)) ||
        !copy_value(sp1 + 1, (size_t)(sp2 - sp1 - 1), target, sizeof(target)))
        return -1;
    target[strcspn(target, "?")] = '\0';
    size_t body_len = 0;
    for (const char *p = c->buf; p < end;) {
        const char *eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
        if (starts(p, (size_t)(eol - p), "Content-Length:")) {
            unsigned long v = strtoul(p + 15, NULL, 10);
            if (v > HTTP_BODY_MAX)
                return -1;
            body_len = (size_t)v;
        } else if (starts(p, (size_t)(eol - p), "Transfer-Encoding:")) {
            return -1; /* fetch() sends a length for a string body */
        }
        p = eol + 2;
    }
    if (c->len < head_len + body_len)
        return 0;
    web_handle(w, c->fd, method, target, c->buf + head_len, body_len);
    return 1;
}

static void *web_main(void *arg)
{
    struct web *w = arg;
    struct http_conn conns[HTTP_CONNS];
    for (unsigned i = 0; i < HTTP_CONNS; i++)
        conns[i].fd = -1;
    for (;;) {
        struct pollfd fds[HTTP_CONNS + 2];
        unsigned map[HTTP_CONNS], n = 0, open_conns = 0;
        fds[n++] = (struct pollfd){.fd = w->stop_pipe[0], .events = POLLIN};
        for (unsigned i = 0; i < HTTP_CONNS; i++)
            if (conns[i].fd >= 0) {
                map[open_conns++] = i;
                fds[n++] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
            }
        bool room = open_conns < HTTP_CONNS;
        if (room)
            fds[n++] = (struct pollfd){.fd = w->listen_fd, .events = POLLIN};
        if (poll(fds, n, 1000) < 0 && errno != EINTR)
            break;
        if (fds[0].revents != 0)
            break;
        for (unsigned k = 0; k < open_conns; k++) {
            struct http_conn *c = &conns[map[k]];
            if (fds[1 + k].revents == 0)
                continue;
            ssize_t r = recv(c->fd, c->buf + c->len, HTTP_HEAD_MAX + HTTP_BODY_MAX - c->len, 0);
            int done = r <= 0 ? -1 : 0;
            if (r > 0) {
                c->len += (size_t)r;
                done = web_try_request(w, c);
                if (done < 0)
                    http_send(c->fd, 413, "text/plain", "refused\n", 8);
            }
            if (done != 0) {
                close(c->fd);
                free(c->buf);
                c->fd = -1;
            }
        }
        if (room && (fds[n - 1].revents & POLLIN)) {
            int fd = accept(w->listen_fd, NULL, NULL);
            for (unsigned i = 0; fd >= 0 && i < HTTP_CONNS; i++)
                if (conns[i].fd < 0) {
                    conns[i] =
                        (struct http_conn){.fd = fd, .buf = malloc(HTTP_HEAD_MAX + HTTP_BODY_MAX)};
                    break;
                }
        }
    }
    for (unsigned i = 0; i < HTTP_CONNS; i++)
        if (conns[i].fd >= 0) {
            close(conns[i].fd);
            free(conns[i].buf);
        }
    return NULL;
}

static int tcp_listen(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    socklen_t len = sizeof(a);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void web_start(struct web *w)
{
    memset(w, 0, sizeof(*w));
    w->listen_fd = tcp_listen(&w->port);
    ck_assert_int_eq(pipe2(w->stop_pipe, O_CLOEXEC), 0);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    ck_assert_int_eq(pthread_create(&w->thread, NULL, web_main, w), 0);
}

static void web_stop(struct web *w)
{
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    (void)!write(w->stop_pipe[1], "x", 1);
    pthread_join(w->thread, NULL);
    close(w->stop_pipe[0]);
    close(w->stop_pipe[1]);
    close(w->listen_fd);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
}

/* Waits until *flag (or *other, when not NULL) or ms; true when *flag was set. */
static bool web_wait(struct web *w, const bool *flag, const bool *other, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->lock);
    while (!*flag && (other == NULL || !*other))
        if (pthread_cond_timedwait(&w->cond, &w->lock, &until) == ETIMEDOUT)
            break;
    bool set = *flag;
    pthread_mutex_unlock(&w->lock);
    return set;
}

static void web_answer(struct web *w, const char *answer)
{
    pthread_mutex_lock(&w->lock);
    snprintf(w->answer, sizeof(w->answer), "%s", answer);
    w->has_answer = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* ---- The page's result (its JSON.stringify output) ---- */

static double json_number(const char *json, const char *key)
{
    char k[64];
    snprintf(k, sizeof(k), "\"%s\":", key);
    const char *p = strstr(json, k);
    ck_assert_msg(p != NULL, "no %s in the page's result %s", key, json);
    return strtod(p + strlen(k), NULL);
}

static void json_string(const char *json, const char *key, char *out, size_t cap)
{
    char k[64];
    snprintf(k, sizeof(k), "\"%s\":\"", key);
    const char *p = strstr(json, k);
    size_t n = 0;
    if (p != NULL) {
        for (p += strlen(k); p[0] != '\0' && p[0] != '"' && n + 1 < cap; p++) {
            if (p[0] == '\\' && p[1] != '\0')
                p++; /* an escaped character, kept as it is */
            out[n++] = p[0];
        }
    }
    out[n] = '\0';
}

/* ---- The core MSRP peer ---- */

struct core_peer {
    int listen_fd;
    uint16_t port;
    pthread_t thread;
    atomic_bool stop;
    char to_path[64]; /* its own URI, the page's To-Path */
    /* Read after the join. */
    bool connected;
    unsigned received, intact, answered;
    char error[256];
};

/* The body of SEND i: the generator of body() in tests/browser/msrp.js. */
static void body_pattern(unsigned i, char *out, size_t len)
{
    uint32_t x = (i + 1) * 2654435761u + 1u;
    for (size_t k = 0; k < len; k++) {
        x = x * 1103515245u + 12345u;
        out[k] = (char)('a' + (x >> 16) % 26);
    }
}

static bool header(const char *head, size_t len, const char *name, char *out, size_t cap)
{
    char key[64];
    snprintf(key, sizeof(key), "\r\n%s: ", name);
    const char *p = memmem(head, len, key, strlen(key));
    if (p == NULL)
        return false;
    p += strlen(key);
    const char *eol = memmem(p, (size_t)(head + len - p), "\r\n", 2);
    return eol != NULL && copy_value(p, (size_t)(eol - p), out, cap);
}

static void core_fail(struct core_peer *c, const char *why, unsigned i)
{
    if (c->error[0] == '\0')
        snprintf(c->error, sizeof(c->error), "SEND %u: %s", i, why);
}

/* Why one whole request frame (len bytes) is not SEND i as the page sent it, or NULL; from gets
 * its From-Path. */
static const char *core_check(const struct core_peer *c, unsigned i, const char *f, size_t len,
                              size_t line_len, const char *tid, char *from, size_t from_cap)
{
    char expect_tid[16], v[128], range[64], mid[16];
    snprintf(expect_tid, sizeof(expect_tid), "tx%06u", i);
    size_t tid_len = strlen(tid);
    if (strcmp(tid, expect_tid) != 0)
        return "out of order or unknown transaction id";
    if (line_len != 5 + tid_len + 7 || !starts(f + 5 + tid_len, 7, " SEND\r\n"))
        return "not a SEND";
    if (f[len - 3] != '$')
        return "not a whole message (continuation flag)";
    const char *blank = memmem(f, len, "\r\n\r\n", 4);
    size_t end_line = len - (9 + tid_len + 3); /* "\r\n-------" tid flag "\r\n" */
    if (blank == NULL || (size_t)(blank - f) + 4 > end_line)
        return "no body";
    size_t head_len = (size_t)(blank - f) + 2;
    const char *body = blank + 4;
    size_t body_len = end_line - (size_t)(body - f);
    size_t expect_len = i == 0 ? FIRST_SIZE : BULK_SIZE;
    if (!header(f, head_len, "To-Path", v, sizeof(v)) || strcmp(v, c->to_path) != 0)
        return "wrong To-Path";
    if (!header(f, head_len, "From-Path", from, from_cap) || strcmp(from, FROM_PATH) != 0)
        return "wrong From-Path";
    snprintf(range, sizeof(range), "1-%zu/%zu", expect_len, expect_len);
    if (!header(f, head_len, "Byte-Range", v, sizeof(v)) || strcmp(v, range) != 0)
        return "wrong Byte-Range";
    snprintf(mid, sizeof(mid), "msg%06u", i);
    if (!header(f, head_len, "Message-ID", v, sizeof(v)) || strcmp(v, mid) != 0)
        return "wrong Message-ID";
    if (body_len != expect_len)
        return "body of another length";
    char *expect = malloc(expect_len);
    body_pattern(i, expect, expect_len);
    bool same = memcmp(body, expect, expect_len) == 0;
    free(expect);
    return same ? NULL : "body corrupted";
}

/* Checks one whole request frame and answers it with a 200 OK. */
static void core_frame(struct core_peer *c, int fd, const char *f, size_t len, size_t line_len,
                       const char *tid)
{
    unsigned i = c->received++;
    char from[128] = "", answer[512];
    const char *why = core_check(c, i, f, len, line_len, tid, from, sizeof(from));
    if (why != NULL) {
        core_fail(c, why, i);
        return;
    }
    c->intact++;
    int n = snprintf(answer, sizeof(answer),
                     "MSRP %s 200 OK\r\nTo-Path: %s\r\nFrom-Path: %s\r\n-------%s$\r\n", tid, from,
                     c->to_path, tid);
    if (send(fd, answer, (size_t)n, MSG_NOSIGNAL) == n)
        c->answered++;
    else
        core_fail(c, "cannot answer", i);
}

/* Frames what buf holds: returns the bytes consumed, or SIZE_MAX when the stream is unusable. */
static size_t core_parse(struct core_peer *c, int fd, const char *buf, size_t len)
{
    size_t used = 0;
    while (used < len) {
        const char *f = buf + used;
        size_t left = len - used;
        const char *eol = memmem(f, left < 1024 ? left : 1024, "\r\n", 2);
        if (eol == NULL) {
            if (left >= 1024)
                break;
            return used;
        }
        size_t line_len = (size_t)(eol - f) + 2;
        char tid[40];
        if (!starts(f, line_len, "MSRP "))
            break;
        const char *sp = memchr(f + 5, ' ', line_len - 5);
        if (sp == NULL || !copy_value(f + 5, (size_t)(sp - f - 5), tid, sizeof(tid)) ||
            strlen(tid) < 4)
            break;
        char end[48];
        int n = snprintf(end, sizeof(end), "\r\n-------%s", tid);
        const char *e = memmem(eol, (size_t)(f + left - eol), end, (size_t)n);
        if (e == NULL || (size_t)(f + left - e) < (size_t)n + 3)
            return used;
        size_t frame_len = (size_t)(e - f) + (size_t)n + 3;
        if (f[frame_len - 2] != '\r' || f[frame_len - 1] != '\n')
            break;
        core_frame(c, fd, f, frame_len, line_len, tid);
        used += frame_len;
    }
    if (used == len)
        return used;
    core_fail(c, "a stream that is not MSRP", c->received);
    return SIZE_MAX;
}

static void *core_main(void *arg)
{
    struct core_peer *c = arg;
    int fd = -1;
    char *buf = malloc(MSRP_BUF);
    size_t len = 0;
    while (!atomic_load(&c->stop)) {
        struct pollfd p = {.fd = fd >= 0 ? fd : c->listen_fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        if (fd < 0) {
            fd = accept(c->listen_fd, NULL, NULL);
            c->connected = fd >= 0;
            int one = 1; /* each 200 OK leaves at once, as an MSRP relay's would */
            if (fd >= 0)
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            continue;
        }
        ssize_t r = recv(fd, buf + len, MSRP_BUF - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
        size_t used = core_parse(c, fd, buf, len);
        if (used == SIZE_MAX)
            break;
        memmove(buf, buf + used, len - used);
        len -= used;
        if (len == MSRP_BUF) {
            core_fail(c, "a frame larger than the buffer", c->received);
            break;
        }
    }
    if (fd >= 0)
        close(fd);
    free(buf);
    return NULL;
}

static void core_start(struct core_peer *c)
{
    memset(c, 0, sizeof(*c));
    c->listen_fd = tcp_listen(&c->port);
    snprintf(c->to_path, sizeof(c->to_path), TO_PATH_FMT, c->port);
    ck_assert_int_eq(pthread_create(&c->thread, NULL, core_main, c), 0);
}

static void core_stop(struct core_peer *c)
{
    atomic_store(&c->stop, true);
    pthread_join(c->thread, NULL);
    close(c->listen_fd);
}

/* ---- Chromium ---- */

static const char *chromium_bin(void)
{
    const char *bin = getenv("AGW_CHROMIUM");
    return bin != NULL && bin[0] != '\0' ? bin : "/usr/bin/chromium";
}

static char browser_log[64];
static pid_t browser_pid = -1;

/* Starts Chromium on url in its own process group, with a fresh profile (and home) that
 * browser_stop removes. */
static void browser_start(const char *url)
{
    char profile[64], flag[96];
    snprintf(profile, sizeof(profile), "/tmp/test_browser.%d.XXXXXX", (int)getpid());
    ck_assert_msg(mkdtemp(profile) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(leftover->profile, sizeof(leftover->profile), "%s", profile);
    snprintf(browser_log, sizeof(browser_log), "/tmp/test_browser.%d.chromium.log", (int)getpid());
    snprintf(flag, sizeof(flag), "--user-data-dir=%s", profile);
    browser_pid = fork();
    ck_assert_int_ge(browser_pid, 0);
    if (browser_pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(browser_log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        setenv("HOME", profile, 1);
        setenv("XDG_CONFIG_HOME", profile, 1);
        setenv("XDG_CACHE_HOME", profile, 1);
        /* The fake media flags grant the page's getUserMedia, which lets Chromium gather host
         * candidates on every interface; --allow-loopback-in-peer-connection adds lo to them. */
        execl(chromium_bin(), chromium_bin(), "--headless=new", "--no-sandbox", "--disable-gpu",
              flag, "--no-first-run", "--no-default-browser-check",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-extensions", "--allow-loopback-in-peer-connection",
              "--disable-features=WebRtcHideLocalIpsWithMdns", "--use-fake-ui-for-media-stream",
              "--use-fake-device-for-media-stream", "--enable-logging=stderr", url, (char *)NULL);
        _exit(127);
    }
    setpgid(browser_pid, browser_pid);
    leftover->browser_group = browser_pid;
}

static void browser_stop(void)
{
    if (browser_pid > 0) {
        kill(-browser_pid, SIGKILL);
        waitpid(browser_pid, NULL, 0);
        browser_pid = -1;
    }
    reap_leftovers();
}

/* ---- One run: the page, the ALG, the gateway, the core peer ---- */

static struct web web;

static void setup(void)
{
    reap_leftovers();
    ck_assert_msg(netns_error == 0,
                  "cannot make a network namespace of loopback only (unshare: %s); run as root "
                  "or allow unprivileged user namespaces, or set AGW_SKIP_BROWSER=1",
                  strerror(-netns_error));
    ck_assert_msg(access(chromium_bin(), X_OK) == 0,
                  "%s not found: tools/install-deps.sh installs Debian's chromium (CI does); "
                  "set AGW_SKIP_BROWSER=1 to skip this suite",
                  chromium_bin());
    start_daemon();
    web_start(&web);
}

static void teardown(void)
{
    browser_stop();
    web_stop(&web);
    stop_daemon();
}

struct run {
    struct core_peer core;
    struct offer offer;
    struct local local;
    unsigned ctx;
    char core_id[48], access_id[48];
    char result[HTTP_BODY_MAX + 1];
    uint64_t offer_at; /* when the test received the offer */
};

/* Starts the page and plays the ALG up to the answer; wrong_fingerprint names another
 * certificate than the browser's in the access Remote. */
static void run_open(struct run *r, bool wrong_fingerprint)
{
    memset(r, 0, sizeof(*r));
    core_start(&r->core);
    char url[512];
    snprintf(url, sizeof(url),
             "http://127.0.0.1:%u/?n=%u&size=%u&first=%u&open_ms=%u&bulk_ms=%u&to=%s&from=%s",
             web.port, BULK_COUNT, BULK_SIZE, FIRST_SIZE, PAGE_OPEN_MS, PAGE_BULK_MS,
             r->core.to_path, FROM_PATH);
    browser_start(url);
    bool offered = web_wait(&web, &web.has_offer, &web.has_result, OFFER_WAIT_MS);
    ck_assert_msg(offered,
                  "Chromium posted no offer (waited up to %d ms; %u requests served; page: %s; "
                  "log %s)",
                  OFFER_WAIT_MS, web.requests, web.has_result ? web.result : "-", browser_log);
    r->offer_at = now_ms();
    char why[160];
    int rc = offer_parse(web.offer, web.offer_len, &r->offer, why, sizeof(why));
    ck_assert_msg(rc == 0, "%s:\n%s", why, web.offer);

    /* Reserve AGW Connection Point toward the core: TCP/MSRP, the gateway connects. */
    char text[4096], reply[4096];
    snprintf(text, sizeof(text),
             "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=message $ "
             "TCP/MSRP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message %u TCP/MSRP *\r\n"
             "a=setup:passive\r\na=path:%s\r\n}}}}}",
             r->core.port, r->core.to_path);
    request_ok(text, reply, sizeof(reply));
    r->ctx = (unsigned)harness_number_after(reply, "C=");
    added_id(reply, r->core_id, sizeof(r->core_id));

    /* Reserve and Configure toward the access: the browser's media description as the Remote,
     * the gateway as DTLS server (the browser offered actpass, the ALG answers passive). */
    char fps[1024] = "";
    size_t off = 0;
    struct agw_tls_identity *other = NULL;
    if (wrong_fingerprint) {
        char fp[AGW_TLS_FINGERPRINT_TEXT_MAX];
        ck_assert_int_eq(agw_tls_identity_generate("other.test", 30, &other), 0);
        ck_assert_int_eq(
            agw_tls_fingerprint_format(agw_tls_identity_fingerprint(other), fp, sizeof(fp)), 0);
        snprintf(fps, sizeof(fps), "a=fingerprint:%s\r\n", fp);
        agw_tls_identity_unref(other);
    } else {
        for (unsigned i = 0; i < r->offer.n_fingerprints; i++)
            off += (size_t)snprintf(fps + off, sizeof(fps) - off, "a=fingerprint:%s\r\n",
                                    r->offer.fingerprints[i]);
    }
    snprintf(text, sizeof(text),
             "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
             "UDP/DTLS/SCTP webrtc-datachannel\r\na=fingerprint:$\r\na=ice-ufrag:$\r\n"
             "a=ice-pwd:$\r\n},R{v=0\r\nc=IN IP4 %s\r\nm=application %u UDP/DTLS/SCTP "
             "webrtc-datachannel\r\na=setup:active\r\n%sa=ice-ufrag:%s\r\na=ice-pwd:%s\r\n"
             "a=mid:%s\r\na=sctp-port:%u\r\na=max-message-size:%u\r\na=candidate:%s\r\n}}},"
             "E=5{tlsc/fail}}}",
             r->ctx, r->offer.address, r->offer.port, fps, r->offer.ufrag, r->offer.pwd,
             r->offer.mid, r->offer.sctp_port,
             r->offer.max_message_size != 0 ? r->offer.max_message_size : 65536,
             r->offer.candidate);
    unsigned code;
    const char *access_reply = harness_request(mgc, text, &code);
    ck_assert_msg(code == 0, "%s\n-> %s (log %s)", text, access_reply, log_path);
    snprintf(reply, sizeof(reply), "%s", access_reply);
    added_id(reply, r->access_id, sizeof(r->access_id));
    local_parse(reply, &r->local);
    ck_assert_msg(strcmp(r->local.setup, "passive") == 0, "a=setup:%s in %s", r->local.setup,
                  reply);

    char answer[SDP_MAX];
    build_answer(&r->offer, &r->local, answer, sizeof(answer));
    web_answer(&web, answer);
}

/* The page's JSON once it finished or gave up. */
static void run_result(struct run *r)
{
    ck_assert_msg(web_wait(&web, &web.has_result, NULL, RESULT_WAIT_MS),
                  "the page posted no result within %d ms (log %s, Chromium %s)", RESULT_WAIT_MS,
                  log_path, browser_log);
    pthread_mutex_lock(&web.lock);
    snprintf(r->result, sizeof(r->result), "%s", web.result);
    pthread_mutex_unlock(&web.lock);
}

/* Subtract = * in the context; reply gets the answer with both legs' statistics. */
static void run_close(struct run *r, char *reply, size_t cap)
{
    char text[256];
    snprintf(text, sizeof(text), "C=%u{S=*}", r->ctx);
    request_ok(text, reply, cap);
}

/* The UDP datagrams this network namespace dropped for a full receive buffer (the test's own
 * namespace: only its traffic), or -1 when unknown. SCTP recovers them by retransmission, at a
 * cost in throughput that the figures then show. */
static long udp_rcvbuf_errors(void)
{
    char names[512] = "", values[512] = "", line[512];
    FILE *f = fopen("/proc/self/net/snmp", "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "Udp: ", 5) == 0)
            snprintf(names[0] == '\0' ? names : values, sizeof(names), "%s", line + 5);
    fclose(f);
    char *save_n = NULL, *save_v = NULL;
    char *n = strtok_r(names, " \n", &save_n), *v = strtok_r(values, " \n", &save_v);
    for (; n != NULL && v != NULL;
         n = strtok_r(NULL, " \n", &save_n), v = strtok_r(NULL, " \n", &save_v))
        if (strcmp(n, "RcvbufErrors") == 0)
            return strtol(v, NULL, 10);
    return -1;
}

/* The drops counted on the UDP socket bound to 127.0.0.1:port (the gateway's access leg), or -1. */
static long udp_socket_drops(unsigned port)
{
    char line[512], local[32];
    long drops = -1;
    snprintf(local, sizeof(local), "0100007F:%04X", port);
    FILE *f = fopen("/proc/self/net/udp", "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *save = NULL, *field = strtok_r(line, " \n", &save), *last = NULL;
        bool match = false;
        for (unsigned i = 0; field != NULL; i++, field = strtok_r(NULL, " \n", &save)) {
            match = match || (i == 1 && strcmp(field, local) == 0);
            last = field;
        }
        if (match && last != NULL)
            drops = strtol(last, NULL, 10);
    }
    fclose(f);
    return drops;
}

/* ---- Cases ---- */

/* The browser's MSRP channel reaches the core peer over TCP: every SEND intact, every 200 OK
 * back at the page; the set-up time and the throughput are printed. */
START_TEST(test_msrp_channel)
{
    struct run r;
    run_open(&r, false);
    run_result(&r);
    uint64_t done_at = now_ms();
    char error[256], state[32];
    json_string(r.result, "error", error, sizeof(error));
    json_string(r.result, "pc_state", state, sizeof(state));
    /* Every 200 OK the page saw was sent before: the core peer is done once the page is. */
    core_stop(&r.core);
    ck_assert_msg(json_number(r.result, "opened") == 1,
                  "the channel did not open: %s (peer connection %s; log %s, Chromium %s)", error,
                  state, log_path, browser_log);
    char label[32], protocol[32];
    json_string(r.result, "label", label, sizeof(label));
    json_string(r.result, "protocol", protocol, sizeof(protocol));
    ck_assert_str_eq(label, "msrp");
    ck_assert_str_eq(protocol, "msrp");
    ck_assert_msg(r.core.connected, "the gateway never connected to the core peer (log %s): %s",
                  log_path, r.result);
    ck_assert_msg(r.core.error[0] == '\0', "core peer: %s (log %s): %s", r.core.error, log_path,
                  r.result);
    ck_assert_msg(r.core.intact == BULK_COUNT + 1 && r.core.answered == BULK_COUNT + 1,
                  "the core peer got %u SEND intact and answered %u of %u (log %s): %s",
                  r.core.intact, r.core.answered, BULK_COUNT + 1, log_path, r.result);
    ck_assert_msg(error[0] == '\0', "the page: %s (log %s): %s", error, log_path, r.result);
    ck_assert_uint_eq((unsigned)json_number(r.result, "sent"), BULK_COUNT + 1);
    ck_assert_uint_eq((unsigned)json_number(r.result, "responses"), BULK_COUNT + 1);
    ck_assert_uint_eq((unsigned)json_number(r.result, "bad"), 0);
    ck_assert_uint_eq((unsigned)json_number(r.result, "unexpected"), 0);

    double answer = json_number(r.result, "answer_ms"), open = json_number(r.result, "open_ms");
    double first = json_number(r.result, "first_ms"), bulk = json_number(r.result, "bulk_ms");
    double secs = bulk > 0 ? bulk / 1000 : 1e-3;
    printf("browser: set-up %.1f ms from the offer to the first 200 OK (answer %.1f ms, channel "
           "open %.1f ms); %u SEND of %u bytes answered in %.1f ms: %.0f msg/s, %.2f MB/s "
           "(test side: offer to result %llu ms; UDP receive-buffer drops %ld, %ld of them at the "
           "gateway)\n",
           first, answer, open, BULK_COUNT, BULK_SIZE, bulk, BULK_COUNT / secs,
           BULK_COUNT * (double)BULK_SIZE / secs / 1e6, (unsigned long long)(done_at - r.offer_at),
           udp_rcvbuf_errors(), udp_socket_drops(r.local.port));
    fflush(stdout);

    /* The core leg sent at least every body to the core peer. */
    char reply[4096], key[64];
    run_close(&r, reply, sizeof(reply));
    snprintf(key, sizeof(key), "S=%s{", r.core_id);
    const char *core = strstr(reply, key);
    ck_assert_msg(core != NULL, "no %s in %s", key, reply);
    ck_assert_uint_ge(harness_number_after(core, "nt/os="),
                      FIRST_SIZE + (unsigned long)BULK_COUNT * BULK_SIZE);
}
END_TEST

/* The Remote names another certificate than the browser's: the gateway refuses the handshake,
 * the page's channel never opens, the ALG gets tlsc/fail with the cause, the core sees nothing. */
START_TEST(test_wrong_fingerprint)
{
    struct run r;
    run_open(&r, true);
    run_result(&r);
    char error[256], state[32];
    json_string(r.result, "error", error, sizeof(error));
    json_string(r.result, "pc_state", state, sizeof(state));
    ck_assert_msg(json_number(r.result, "opened") == 0, "the channel opened (log %s)", log_path);
    ck_assert_uint_eq((unsigned)json_number(r.result, "responses"), 0);
    const char *n = harness_wait_notify(mgc, 5000);
    ck_assert_msg(strstr(n, "tlsc/fail{cause=\"fingerprint mismatch") != NULL,
                  "Notify '%s' (page: %s, peer connection %s; log %s)", n, error, state, log_path);
    core_stop(&r.core);
    ck_assert_uint_eq(r.core.received, 0);
    printf("browser: wrong fingerprint refused (page: %s, peer connection %s)\n", error, state);
    fflush(stdout);
    char reply[4096];
    run_close(&r, reply, sizeof(reply));
}
END_TEST

int main(void)
{
    const char *skip = getenv("AGW_SKIP_BROWSER");
    if (skip != NULL && strcmp(skip, "1") == 0) {
        printf("SKIP test_browser: AGW_SKIP_BROWSER=1 (the Chromium end-to-end suite did not "
               "run)\n");
        return EXIT_SUCCESS;
    }
    leftover =
        mmap(NULL, sizeof(*leftover), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (leftover == MAP_FAILED)
        return EXIT_FAILURE;
    memset(leftover, 0, sizeof(*leftover));
    netns_error = enter_private_net();

    Suite *suite = suite_create("browser");
    TCase *tc = tcase_create("chromium");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 42);
    tcase_add_test(tc, test_msrp_channel);
    tcase_add_test(tc, test_wrong_fingerprint);
    suite_add_tcase(suite, tc);
    SRunner *sr = srunner_create(suite);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    reap_leftovers();
    munmap(leftover, sizeof(*leftover));
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
