/* What agw-bench's rr, handshake and idle modes share: options, the spawned gateway and its Iq
 * sessions, the UEs' TLS client, the answering core sink, message checks and /proc figures. */
#define _GNU_SOURCE /* accept4, SOCK_CLOEXEC */
#include "tools/bench_modes.h"
#include "tls/cert.h"
#include "tls/fingerprint.h"
#include "tools/iq_client.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A socket idle this long fails its session, so that a broken relay cannot hang a run. */
#define STALL_S 30

uint64_t bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void bench_sort_u64(uint64_t *v, size_t n)
{
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_u64);
}

uint64_t bench_percentile(const uint64_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

bool bench_json_safe(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == '"' || *s == '\\' || *s == 0x7f)
            return false;
    return true;
}

/* ---- Options ---- */

struct opt_info {
    struct option opt;
    unsigned modes; /* enum bench_mode bits that accept it */
};

#define ALL (BENCH_RR | BENCH_HS | BENCH_IDLE)

static const struct opt_info opt_table[] = {
    {{"sessions", required_argument, NULL, 'n'}, ALL},
    {{"exchanges", required_argument, NULL, 'x'}, BENCH_RR},
    {{"size", required_argument, NULL, 'z'}, ALL},
    {{"seconds", required_argument, NULL, 'S'}, BENCH_HS},
    {{"window", required_argument, NULL, 'w'}, BENCH_HS | BENCH_IDLE},
    {{"warmup", required_argument, NULL, 'u'}, BENCH_HS | BENCH_IDLE},
    {{"settle-ms", required_argument, NULL, 'e'}, BENCH_IDLE},
    {{"target", required_argument, NULL, 't'}, ALL},
    {{"sink-port", required_argument, NULL, 'P'}, ALL},
    {{"target-pid", required_argument, NULL, 'T'}, ALL},
    {{"label", required_argument, NULL, 'L'}, ALL},
    {{"config", required_argument, NULL, 'C'}, ALL},
    {{"listen", required_argument, NULL, 'l'}, ALL},
    {{"workers", required_argument, NULL, 'W'}, ALL},
    {{"spawn", required_argument, NULL, 's'}, ALL},
    {{"cipher", required_argument, NULL, 'c'}, ALL},
    {{"group", required_argument, NULL, 'g'}, ALL},
    {{"ue-cert", required_argument, NULL, 'U'}, ALL},
    {{"ue-key", required_argument, NULL, 'K'}, ALL},
    {{"realm", required_argument, NULL, 'R'}, ALL},
    {{"long-timer-ms", required_argument, NULL, 'M'}, ALL},
    {{"json", no_argument, NULL, 'j'}, ALL},
    {{"help", no_argument, NULL, 'h'}, ALL},
};
#define N_OPTS (sizeof(opt_table) / sizeof(opt_table[0]))

/* A whole decimal number within lo..hi, or false. */
static bool parse_uint(const char *text, unsigned long lo, unsigned long hi, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Options given numbers in the table below; bounds per option. */
struct num_opt {
    int letter;
    const char *name;
    unsigned long lo, hi;
};

static const struct num_opt num_opts[] = {
    {'n', "sessions", 1, 1000000},
    {'x', "exchanges", 1, 100000000},
    {'z', "size", BENCH_MSG_MIN, BENCH_MSG_MAX},
    {'S', "seconds", 1, 3600},
    {'w', "window", 1, 256},
    {'u', "warmup", 0, 100000},
    {'e', "settle-ms", 0, 600000},
    {'P', "sink-port", 1, 65535},
    {'T', "target-pid", 1, 4194304},
    {'M', "long-timer-ms", 1000, 600000},
};

static void defaults(enum bench_mode mode, struct bench_args *a)
{
    memset(a, 0, sizeof(*a));
    a->mode = mode;
    a->listen = "127.0.0.1:0";
    a->workers = "1";
    a->spawn = "build/ims-agw";
    a->cipher = "TLS_AES_128_GCM_SHA256";
    a->group = "P-256";
    switch (mode) {
    case BENCH_RR:
        a->sessions = 1;
        a->exchanges = 20000;
        a->size = 1024;
        break;
    case BENCH_HS:
        a->seconds = 10;
        a->size = 64;
        a->window = 4;
        a->warmup = 50;
        break;
    case BENCH_IDLE:
        a->sessions = 8000;
        a->size = 64;
        a->window = 4;
        a->warmup = 100;
        a->settle_ms = 2000;
        break;
    }
}

int bench_args_parse(int argc, char **argv, enum bench_mode mode, const char *usage,
                     struct bench_args *a)
{
    defaults(mode, a);
    struct option longopts[N_OPTS + 1];
    for (size_t i = 0; i < N_OPTS; i++)
        longopts[i] = opt_table[i].opt;
    memset(&longopts[N_OPTS], 0, sizeof(longopts[N_OPTS]));
    int opt, index = -1;
    optind = 2;
    while ((opt = getopt_long(argc, argv, "h", longopts, &index)) != -1) {
        if (opt == '?') {
            fputs(usage, stderr);
            return 2;
        }
        if (opt == 'h') {
            fputs(usage, stdout);
            return 1;
        }
        const struct opt_info *info = NULL;
        for (size_t i = 0; i < N_OPTS; i++)
            if (opt_table[i].opt.val == opt)
                info = &opt_table[i];
        if (info == NULL || !(info->modes & mode)) {
            fprintf(stderr, "agw-bench %s: --%s does not apply to this mode\n", argv[1],
                    info != NULL ? info->opt.name : "?");
            return 2;
        }
        unsigned long v = 0;
        for (size_t i = 0; i < sizeof(num_opts) / sizeof(num_opts[0]); i++) {
            if (num_opts[i].letter != opt)
                continue;
            if (!parse_uint(optarg, num_opts[i].lo, num_opts[i].hi, &v)) {
                fprintf(stderr, "agw-bench %s: --%s wants %lu..%lu, not %s\n", argv[1],
                        num_opts[i].name, num_opts[i].lo, num_opts[i].hi, optarg);
                return 2;
            }
        }
        switch (opt) {
        case 'n':
            a->sessions = (unsigned)v;
            break;
        case 'x':
            a->exchanges = (unsigned)v;
            break;
        case 'z':
            a->size = (unsigned)v;
            break;
        case 'S':
            a->seconds = (unsigned)v;
            break;
        case 'w':
            a->window = (unsigned)v;
            break;
        case 'u':
            a->warmup = (unsigned)v;
            break;
        case 'e':
            a->settle_ms = (unsigned)v;
            break;
        case 'P':
            a->sink_port = v;
            break;
        case 'T':
            a->target_pid = (pid_t)v;
            break;
        case 'M':
            a->long_timer_ms = (unsigned)v;
            break;
        case 't':
            a->target = optarg;
            break;
        case 'L':
            a->label = optarg;
            break;
        case 'C':
            a->config = optarg;
            break;
        case 'l':
            a->listen = optarg;
            break;
        case 'W':
            a->workers = optarg;
            break;
        case 's':
            a->spawn = optarg;
            break;
        case 'c':
            a->cipher = optarg;
            break;
        case 'g':
            a->group = optarg;
            break;
        case 'U':
            a->ue_cert = optarg;
            break;
        case 'K':
            a->ue_key = optarg;
            break;
        case 'R':
            if (a->n_realms == BENCH_MAX_REALMS) {
                fprintf(stderr, "agw-bench: at most %d --realm\n", BENCH_MAX_REALMS);
                return 2;
            }
            a->realms[a->n_realms++] = optarg;
            break;
        case 'j':
            a->json = true;
            break;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "agw-bench %s: unexpected argument %s\n", argv[1], argv[optind]);
        return 2;
    }
    if (a->target != NULL && a->sink_port == 0) {
        fprintf(stderr, "agw-bench %s: --target needs --sink-port (where it forwards to)\n",
                argv[1]);
        return 2;
    }
    if ((a->ue_cert == NULL) != (a->ue_key == NULL)) {
        fprintf(stderr, "agw-bench %s: --ue-cert and --ue-key go together\n", argv[1]);
        return 2;
    }
    if (a->label == NULL)
        a->label = a->target != NULL ? a->target : "ims-agw";
    if (!bench_json_safe(a->label) || !bench_json_safe(a->cipher) || !bench_json_safe(a->group) ||
        !bench_json_safe(a->workers)) {
        fprintf(stderr, "agw-bench: names must not hold quotes, backslashes or control bytes\n");
        return 2;
    }
    return 0;
}

/* ---- /proc ---- */

/* utime + stime of a /proc/.../stat line, in seconds; negative when unreadable. The command
 * name may hold blanks and parentheses: fields are counted after the last ')'. */
static double stat_cpu(const char *path)
{
    char text[1024];
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *p = strrchr(text, ')');
    unsigned long long utime, stime;
    if (p == NULL || sscanf(p + 1, " %*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", &utime,
                            &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

int bench_proc_cpu(pid_t pid, double *total_s, double *main_s)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    *total_s = stat_cpu(path);
    snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)pid);
    if (main_s != NULL)
        *main_s = stat_cpu(path);
    return *total_s < 0 ? -ENOENT : 0;
}

int bench_proc_memory(pid_t pid, uint64_t *rss_kib, uint64_t *pss_kib)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -errno;
    int found = 0;
    unsigned long long v;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "Rss: %llu kB", &v) == 1) {
            *rss_kib = v;
            found |= 1;
        } else if (sscanf(line, "Pss: %llu kB", &v) == 1) {
            *pss_kib = v;
            found |= 2;
        }
    }
    fclose(f);
    return found == 3 ? 0 : -EIO;
}

int bench_proc_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return -errno;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

long bench_proc_nofile_limit(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -errno;
    long soft = -ENOENT;
    while (fgets(line, sizeof(line), f) != NULL) {
        long v;
        if (sscanf(line, "Max open files %ld", &v) == 1)
            soft = v;
    }
    fclose(f);
    return soft;
}

/* All but idle and iowait; steal is time a hypervisor gave to someone else. */
double bench_host_busy_seconds(void)
{
    FILE *f = fopen("/proc/stat", "re");
    if (f == NULL)
        return -1;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8)
        return -1;
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

double bench_self_cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return -1;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

long bench_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -errno;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? 1L << 30 : (long)rl.rlim_cur;
}

/* ---- The spawned gateway ---- */

struct bench_gw {
    pid_t pid;
    struct iq_client *c;
    pthread_mutex_t lock; /* one Iq transaction at a time: the client is single-threaded */
};

pid_t bench_gw_pid(const struct bench_gw *g)
{
    return g->pid;
}

/* Whether port lies in one of the realms given on the command line ("name,address,low-high"). */
static bool in_given_realm(const struct bench_args *a, unsigned port)
{
    for (unsigned i = 0; i < a->n_realms; i++) {
        const char *range = strrchr(a->realms[i], ',');
        unsigned lo, hi;
        if (range != NULL && sscanf(range + 1, "%u-%u", &lo, &hi) == 2 && port >= lo && port <= hi)
            return true;
    }
    return false;
}

/* A UDP port on 127.0.0.1 that is free now, for the gateway's Iq: above the built-in realms
 * (20000-39999), which the gateway refuses to overlap, and outside the realms given. */
static int free_udp_port(const struct bench_args *a, char *out, size_t cap)
{
    int held[64], n = 0, rc = -EADDRINUSE;
    while (n < 64) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(in);
        if (fd < 0 || bind(fd, (struct sockaddr *)&in, sizeof(in)) < 0 ||
            getsockname(fd, (struct sockaddr *)&in, &len) < 0) {
            rc = -errno;
            if (fd >= 0)
                close(fd);
            break;
        }
        held[n++] = fd; /* kept until the end, so that the kernel offers another port */
        unsigned port = ntohs(in.sin_port);
        if (port >= 40000 && !in_given_realm(a, port)) {
            snprintf(out, cap, "127.0.0.1:%u", port);
            rc = 0;
            break;
        }
    }
    while (n > 0)
        close(held[--n]);
    return rc;
}

/* The gateway gets the TLS terms the other relays get; it dies with us. */
static pid_t spawn_gateway(const struct bench_args *a, const char *iq, const char *mgc,
                           unsigned max_contexts)
{
    char contexts[16], long_timer[16];
    snprintf(contexts, sizeof(contexts), "%u", max_contexts);
    snprintf(long_timer, sizeof(long_timer), "%u", a->long_timer_ms);
    const char *argv[64];
    int n = 0;
    argv[n++] = a->spawn;
    if (a->config != NULL) {
        argv[n++] = "-c";
        argv[n++] = a->config;
    }
    const char *fixed[] = {"--iq-listen",
                           iq,
                           "--mgc",
                           mgc,
                           "--workers",
                           a->workers,
                           "--log-level",
                           "warn",
                           "--max-contexts",
                           contexts,
                           "--tls-min-version",
                           "1.3",
                           "--tls-ciphersuites",
                           a->cipher,
                           "--tls-groups",
                           a->group,
                           "--control-socket",
                           ""};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        argv[n++] = fixed[i];
    if (a->long_timer_ms != 0) {
        argv[n++] = "--long-timer-ms";
        argv[n++] = long_timer;
    }
    for (unsigned i = 0; i < a->n_realms; i++) {
        argv[n++] = "--realm";
        argv[n++] = a->realms[i];
    }
    argv[n] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    execv(a->spawn, (char *const *)argv);
    perror(a->spawn);
    _exit(127);
}

int bench_gw_start(const struct bench_args *a, unsigned max_contexts, struct bench_gw **out)
{
    struct bench_gw *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return -ENOMEM;
    pthread_mutex_init(&g->lock, NULL);
    g->pid = -1;
    /* Under a full CPU a reply may be late: retransmit patiently rather than give up. */
    struct iq_client_options opts = {.retransmit_ms = 500, .max_tries = 8, .max_events = 64};
    char iq[64], mgc[64];
    struct sockaddr_storage local;
    int rc = iq_client_open(a->listen, NULL, NULL, &opts, &g->c);
    if (rc < 0) {
        fprintf(stderr, "agw-bench: cannot open the MGC side on %s: %s\n", a->listen,
                strerror(-rc));
        goto fail;
    }
    if ((rc = iq_client_local_addr(g->c, &local)) < 0 ||
        (rc = free_udp_port(a, iq, sizeof(iq))) < 0)
        goto fail;
    iq_format_addr(&local, mgc, sizeof(mgc));
    g->pid = spawn_gateway(a, iq, mgc, max_contexts);
    if (g->pid < 0) {
        rc = -errno;
        goto fail;
    }
    rc = iq_client_set_gateway(g->c, iq);
    /* In slices, so that a gateway that refused its arguments is noticed at once. */
    for (int slice = 0; rc == 0; slice++) {
        if (iq_client_wait_registration(g->c, 200, NULL, NULL, NULL) == 0)
            break;
        int status;
        if (waitpid(g->pid, &status, WNOHANG) == g->pid) {
            fprintf(stderr, "agw-bench: the gateway (%s) exited with status %d\n", a->spawn,
                    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
            g->pid = -1;
            rc = -ECHILD;
        } else if (slice == 50) {
            fprintf(stderr, "agw-bench: the gateway (%s) did not register\n", a->spawn);
            rc = -ETIMEDOUT;
        }
    }
    if (rc < 0)
        goto fail;
    *out = g;
    return 0;
fail:
    bench_gw_stop(g);
    return rc < 0 ? rc : -EIO;
}

void bench_gw_stop(struct bench_gw *g)
{
    if (g == NULL)
        return;
    if (g->pid > 0) {
        kill(g->pid, SIGTERM);
        uint64_t deadline = bench_now_us() + 5000000u;
        while (waitpid(g->pid, NULL, WNOHANG) == 0) {
            if (bench_now_us() > deadline) {
                kill(g->pid, SIGKILL);
                waitpid(g->pid, NULL, 0);
                break;
            }
            struct iq_event ev; /* its ServiceChange is answered while we wait */
            if (g->c != NULL && iq_client_recv(g->c, 50, &ev) == 0)
                iq_event_release(&ev);
            else if (g->c == NULL)
                usleep(50000);
        }
    }
    iq_client_close(g->c);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

/* One transaction; *reply is the caller's to release on 0. */
static int gw_request(struct bench_gw *g, const char *text, struct iq_reply *reply, char *why,
                      size_t cap)
{
    struct h248_parse_error err;
    pthread_mutex_lock(&g->lock);
    int rc = iq_client_request_text(g->c, text, strlen(text), 10000, reply, &err);
    pthread_mutex_unlock(&g->lock);
    if (rc < 0) {
        snprintf(why, cap, "Iq request failed: %s", strerror(-rc));
        return rc;
    }
    if (reply->status != 0) {
        snprintf(why, cap, "Iq transaction timed out");
        iq_reply_release(reply);
        return -ETIMEDOUT;
    }
    const struct h248_error_desc *e = iq_reply_error(reply);
    if (e != NULL) {
        snprintf(why, cap, "Iq error %u: %.*s", e->code, (int)e->text.len, e->text.ptr);
        iq_reply_release(reply);
        return -EPROTO;
    }
    if (reply->trans == NULL || reply->trans->actions == NULL) {
        snprintf(why, cap, "Iq reply without an action");
        iq_reply_release(reply);
        return -EPROTO;
    }
    return 0;
}

/* The Local SDP of the first command's first stream of a reply, or an empty string. */
static struct h248_str reply_local(const struct iq_reply *reply)
{
    struct h248_str none = {"", 0};
    const struct h248_command *cmd = reply->trans->actions->commands;
    const struct h248_descriptor *d = cmd != NULL ? cmd->descriptors : NULL;
    for (; d != NULL; d = d->next)
        if (d->kind == H248_DESC_MEDIA && d->u.media.streams != NULL &&
            d->u.media.streams->parms.has_local)
            return d->u.media.streams->parms.local;
    return none;
}

/* The rest of the SDP line that starts with prefix, copied to out (NUL-terminated). */
static bool sdp_line(struct h248_str sdp, const char *prefix, char *out, size_t cap)
{
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < sdp.len;) {
        size_t end = i;
        while (end < sdp.len && sdp.ptr[end] != '\r' && sdp.ptr[end] != '\n')
            end++;
        if (end - i >= plen && memcmp(sdp.ptr + i, prefix, plen) == 0) {
            size_t n = end - i - plen;
            if (n >= cap)
                return false;
            memcpy(out, sdp.ptr + i + plen, n);
            out[n] = '\0';
            return true;
        }
        i = end;
        while (i < sdp.len && (sdp.ptr[i] == '\r' || sdp.ptr[i] == '\n'))
            i++;
    }
    return false;
}

int bench_gw_session_add(struct bench_gw *g, uint16_t sink_port, const char *ue_fp,
                         struct bench_gw_session *s, char *why, size_t cap)
{
    char text[2048];
    struct iq_reply reply;
    snprintf(text, sizeof(text),
             "C=${A=${M{ST=1{O{ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=message $ TCP/MSRP *\r\n"
             "},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message %u TCP/MSRP *\r\na=setup:passive\r\n"
             "}}}}}",
             sink_port);
    int rc = gw_request(g, text, &reply, why, cap);
    if (rc < 0)
        return rc;
    s->context = reply.trans->actions->context.id;
    iq_reply_release(&reply);
    snprintf(text, sizeof(text),
             "C=%u{A=${M{ST=1{O{ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=message $ "
             "TCP/TLS/MSRP *\r\na=fingerprint:$\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\n"
             "m=message 9 TCP/TLS/MSRP *\r\na=setup:active\r\na=fingerprint:%s\r\n}}}}}",
             s->context, ue_fp);
    rc = gw_request(g, text, &reply, why, cap);
    if (rc < 0) {
        bench_gw_session_subtract(g, s->context);
        return rc;
    }
    struct h248_str local = reply_local(&reply);
    char addr[64], media[64];
    unsigned long port = 0;
    char *end = NULL;
    rc = -EPROTO;
    if (!sdp_line(local, "c=IN IP4 ", addr, sizeof(addr)) ||
        !sdp_line(local, "m=message ", media, sizeof(media)) ||
        !sdp_line(local, "a=fingerprint:", s->fingerprint, sizeof(s->fingerprint))) {
        snprintf(why, cap, "the Add access reply lacks c=, m= or a=fingerprint: %.*s",
                 (int)local.len, local.ptr);
    } else if ((port = strtoul(media, &end, 10)) == 0 || port > 65535 || *end != ' ') {
        snprintf(why, cap, "the Add access reply has no port: m=message %s", media);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&s->access;
        memset(&s->access, 0, sizeof(s->access));
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
            s->access_len = sizeof(*in);
            rc = 0;
        } else {
            snprintf(why, cap, "the Add access reply has c=IN IP4 %s", addr);
        }
    }
    iq_reply_release(&reply);
    if (rc < 0)
        bench_gw_session_subtract(g, s->context);
    return rc;
}

int bench_gw_session_subtract(struct bench_gw *g, unsigned context)
{
    char text[64], why[160];
    struct iq_reply reply;
    snprintf(text, sizeof(text), "C=%u{S=*}", context);
    int rc = gw_request(g, text, &reply, why, sizeof(why));
    if (rc == 0)
        iq_reply_release(&reply);
    return rc;
}

/* ---- The UEs ---- */

static int accept_any(int ok, X509_STORE_CTX *x)
{
    (void)ok;
    (void)x;
    return 1; /* the fingerprint is checked by who needs it, as the gateway does */
}

int bench_ue_init(const struct bench_args *a, struct bench_ue *ue)
{
    memset(ue, 0, sizeof(*ue));
    char err[256] = "";
    int rc = a->ue_cert != NULL
                 ? agw_tls_identity_load(a->ue_cert, a->ue_key, &ue->id, err, sizeof(err))
                 : agw_tls_identity_generate("agw-bench-ue", 2, &ue->id);
    if (rc < 0) {
        fprintf(stderr, "agw-bench: the UE's certificate: %s\n", err[0] ? err : strerror(-rc));
        return rc;
    }
    if (agw_tls_fingerprint_format(agw_tls_identity_fingerprint(ue->id), ue->fingerprint,
                                   sizeof(ue->fingerprint)) < 0)
        return -EINVAL;
    ue->ctx = SSL_CTX_new(TLS_client_method());
    if (ue->ctx == NULL || SSL_CTX_use_certificate(ue->ctx, agw_tls_identity_cert(ue->id)) != 1 ||
        SSL_CTX_use_PrivateKey(ue->ctx, agw_tls_identity_key(ue->id)) != 1 ||
        SSL_CTX_set_min_proto_version(ue->ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_ciphersuites(ue->ctx, a->cipher) != 1 ||
        SSL_CTX_set1_groups_list(ue->ctx, a->group) != 1) {
        fprintf(stderr, "agw-bench: TLS settings refused (cipher %s, group %s)\n", a->cipher,
                a->group);
        return -EINVAL;
    }
    /* Every handshake is a full one, as the gateway (which issues no tickets) always does. */
    SSL_CTX_set_session_cache_mode(ue->ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ue->ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_verify(ue->ctx, SSL_VERIFY_PEER, accept_any);
    return 0;
}

void bench_ue_fini(struct bench_ue *ue)
{
    SSL_CTX_free(ue->ctx);
    agw_tls_identity_unref(ue->id);
    memset(ue, 0, sizeof(*ue));
}

static void set_stall_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = STALL_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int bench_ue_connect(const struct bench_ue *ue, const struct sockaddr_storage *to, socklen_t to_len,
                     int *fd_out, SSL **ssl_out, char *why, size_t cap)
{
    *fd_out = -1;
    *ssl_out = NULL;
    int fd = socket(to->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int rc = -errno;
        snprintf(why, cap, "socket: %s", strerror(-rc));
        return rc;
    }
    set_stall_timeouts(fd);
    int one = 1;
    if (connect(fd, (const struct sockaddr *)to, to_len) < 0) {
        int rc = -errno;
        snprintf(why, cap, "connect: %s", strerror(-rc));
        close(fd);
        return rc;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (ue->ctx != NULL) {
        SSL *ssl = SSL_new(ue->ctx);
        int r = ssl != NULL && SSL_set_fd(ssl, fd) == 1 ? SSL_connect(ssl) : -1;
        if (r != 1) {
            int e = errno;
            unsigned long ossl = ERR_peek_last_error();
            char text[160];
            if (ossl != 0)
                ERR_error_string_n(ossl, text, sizeof(text));
            else if (ssl != NULL && SSL_get_error(ssl, r) == SSL_ERROR_SYSCALL)
                snprintf(text, sizeof(text), "%s",
                         r == 0 ? "the relay closed the connection" : strerror(e));
            else
                snprintf(text, sizeof(text), "failed");
            snprintf(why, cap, "TLS handshake: %s", text);
            ERR_clear_error();
            SSL_free(ssl);
            close(fd);
            return -EPROTO;
        }
        *ssl_out = ssl;
    }
    *fd_out = fd;
    return 0;
}

/* What a failed read or write (r <= 0) means; errno is read first, before OpenSSL runs. */
static int io_error(SSL *ssl, int r)
{
    int e = errno;
    if (ssl != NULL) {
        int kind = SSL_get_error(ssl, r);
        ERR_clear_error();
        if (kind == SSL_ERROR_ZERO_RETURN)
            return -EPIPE;
        if (kind != SSL_ERROR_SYSCALL)
            return -EIO;
        if (r == 0)
            return -EPIPE; /* EOF without close_notify */
    } else if (r == 0) {
        return -EPIPE;
    }
    if (e == EAGAIN || e == EWOULDBLOCK)
        return -ETIMEDOUT;
    return e == ECONNRESET ? -ECONNRESET : -EIO;
}

int bench_ue_write_all(int fd, SSL *ssl, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n > 0) {
        int w = ssl != NULL ? SSL_write(ssl, b, (int)n) : (int)write(fd, b, n);
        if (w <= 0) {
            if (ssl == NULL && w < 0 && errno == EINTR)
                continue;
            return io_error(ssl, w);
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int bench_ue_read_all(int fd, SSL *ssl, void *p, size_t n)
{
    unsigned char *b = p;
    while (n > 0) {
        int r = ssl != NULL ? SSL_read(ssl, b, (int)n) : (int)read(fd, b, n);
        if (r <= 0) {
            if (ssl == NULL && r < 0 && errno == EINTR)
                continue;
            return io_error(ssl, r);
        }
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

int bench_ue_finish(int fd, SSL *ssl)
{
    unsigned char b;
    int rc = bench_ue_read_all(fd, ssl, &b, 1);
    rc = rc == -EPIPE ? 0 : rc == 0 ? -EPROTO : rc;
    if (ssl != NULL) {
        SSL_shutdown(ssl); /* ours after theirs: sent, nothing to wait for */
        ERR_clear_error();
        SSL_free(ssl);
    }
    close(fd);
    return rc;
}

void bench_ue_close(int fd, SSL *ssl)
{
    if (ssl != NULL)
        SSL_shutdown(ssl);
    shutdown(fd, SHUT_WR);
    char drain[4096];
    while ((ssl != NULL ? SSL_read(ssl, drain, sizeof(drain))
                        : (int)read(fd, drain, sizeof(drain))) > 0)
        ;
    ERR_clear_error();
    SSL_free(ssl);
    close(fd);
}

void bench_tls_describe(SSL *ssl, char *out, size_t cap)
{
    int group = SSL_get_negotiated_group(ssl);
    const char *group_name = group > 0 ? OBJ_nid2sn(group) : NULL;
    X509 *peer = SSL_get0_peer_certificate(ssl);
    EVP_PKEY *key = peer != NULL ? X509_get0_pubkey(peer) : NULL;
    const char *key_type = key != NULL ? EVP_PKEY_get0_type_name(key) : NULL;
    unsigned char md[EVP_MAX_MD_SIZE] = {0};
    unsigned md_len = 0;
    if (peer == NULL || X509_digest(peer, EVP_sha256(), md, &md_len) != 1 || md_len < 4)
        memset(md, 0, 4);
    snprintf(out, cap, "%s %s %s %s-%d cert %02x%02x%02x%02x", SSL_get_version(ssl),
             SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)),
             group_name != NULL ? group_name : "?", key_type != NULL ? key_type : "?",
             key != NULL ? EVP_PKEY_get_bits(key) : 0, md[0], md[1], md[2], md[3]);
}

int bench_tls_peer_fingerprint(SSL *ssl, char *out, size_t cap)
{
    X509 *peer = SSL_get0_peer_certificate(ssl);
    struct agw_tls_fingerprint fp;
    if (peer == NULL)
        return -ENOENT;
    int rc = agw_tls_fingerprint_of(peer, AGW_TLS_HASH_SHA256, &fp);
    return rc < 0 ? rc : agw_tls_fingerprint_format(&fp, out, cap);
}

/* ---- Messages ---- */

#define MSG_BLOCK (2 * BENCH_MSG_MAX)
#define MSG_HEADER 24
static unsigned char msg_block[MSG_BLOCK]; /* random, filled once */
static const unsigned char msg_magic[2][4] = {{'A', 'G', 'W', 'Q'}, {'A', 'G', 'W', 'P'}};

void bench_msg_init(void)
{
    FILE *f = fopen("/dev/urandom", "rb");
    if (f == NULL || fread(msg_block, 1, sizeof(msg_block), f) != sizeof(msg_block)) {
        /* Not secret, only irregular: a fixed generator does as well. */
        uint64_t x = 0x9e3779b97f4a7c15ull;
        for (size_t i = 0; i < sizeof(msg_block); i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            msg_block[i] = (unsigned char)x;
        }
    }
    if (f != NULL)
        fclose(f);
}

static size_t msg_offset(size_t size, enum bench_dir dir, uint32_t session, uint64_t seq)
{
    uint64_t x = (uint64_t)session * 0x9e3779b97f4a7c15ull ^ (seq + 1) * 0xc2b2ae3d27d4eb4full ^
                 (uint64_t)dir * 0x165667b19e3779f9ull;
    x ^= x >> 29;
    return (size_t)(x % (MSG_BLOCK - size + 1));
}

static void put32(unsigned char *p, uint32_t v)
{
    v = htonl(v);
    memcpy(p, &v, 4);
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return ntohl(v);
}

static void msg_header(unsigned char *h, size_t size, enum bench_dir dir, uint32_t session,
                       uint64_t seq)
{
    memcpy(h, msg_magic[dir], 4);
    put32(h + 4, session);
    put32(h + 8, (uint32_t)(seq >> 32));
    put32(h + 12, (uint32_t)seq);
    put32(h + 16, (uint32_t)size);
    put32(h + 20, ~session ^ (uint32_t)seq);
}

void bench_msg_fill(unsigned char *buf, size_t size, enum bench_dir dir, uint32_t session,
                    uint64_t seq)
{
    msg_header(buf, size, dir, session, seq);
    memcpy(buf + MSG_HEADER, msg_block + msg_offset(size, dir, session, seq), size - MSG_HEADER);
}

bool bench_msg_check(const unsigned char *buf, size_t size, enum bench_dir dir, uint32_t session,
                     uint64_t seq)
{
    unsigned char h[MSG_HEADER];
    msg_header(h, size, dir, session, seq);
    return memcmp(buf, h, MSG_HEADER) == 0 &&
           memcmp(buf + MSG_HEADER, msg_block + msg_offset(size, dir, session, seq),
                  size - MSG_HEADER) == 0;
}

int64_t bench_msg_session(const unsigned char *buf, size_t size, enum bench_dir dir)
{
    if (size < MSG_HEADER || memcmp(buf, msg_magic[dir], 4) != 0 || get32(buf + 16) != size)
        return -1;
    return get32(buf + 4);
}

/* ---- The sink ---- */

struct sink_conn {
    struct sink_conn *prev, *next;
    int fd;
    int64_t session; /* -1 until its first request */
    uint64_t seq;
    size_t have, out_len, out_off;
    unsigned answered;
    bool want_out, fin;
    unsigned char *in, *out;
};

struct bench_sink {
    int listen_fd, epfd, wake_fd;
    size_t size;
    unsigned close_after;
    uint16_t port;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    struct sink_conn *conns;
    pthread_mutex_t lock; /* st */
    struct bench_sink_stats st;
};

static char sink_listen_marker, sink_wake_marker;

static void sink_error(struct bench_sink *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sink_error(struct bench_sink *s, const char *fmt, ...)
{
    pthread_mutex_lock(&s->lock);
    if (s->st.errors++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->st.first_error, sizeof(s->st.first_error), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&s->lock);
}

static void sink_count(struct bench_sink *s, uint64_t *field)
{
    pthread_mutex_lock(&s->lock);
    (*field)++;
    pthread_mutex_unlock(&s->lock);
}

static void sink_close(struct bench_sink *s, struct sink_conn *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    close(c->fd); /* leaves the epoll set with it */
    free(c->in);
    free(c->out);
    free(c);
    sink_count(s, &s->st.closed);
}

/* Writes what is left of the answer; -1 when the connection must go. */
static int sink_flush(struct bench_sink *s, struct sink_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0)
            return -1;
        c->out_off += (size_t)n;
    }
    bool pending = c->out_off < c->out_len;
    if (pending != c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | (pending ? EPOLLOUT : 0), .data.ptr = c};
        epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = pending;
    }
    if (!pending && s->close_after != 0 && c->answered == s->close_after && !c->fin) {
        /* We end first: the relay sees the end of its connection to us and passes it on. */
        shutdown(c->fd, SHUT_WR);
        c->fin = true;
    }
    return 0;
}

/* A whole request is in c->in: check it, queue the answer. -1 when the connection must go. */
static int sink_request(struct bench_sink *s, struct sink_conn *c)
{
    if (c->session < 0) {
        c->session = bench_msg_session(c->in, s->size, BENCH_REQUEST);
        if (c->session < 0) {
            sink_error(s, "a connection's first bytes are not one of our requests");
            return -1;
        }
    }
    if (!bench_msg_check(c->in, s->size, BENCH_REQUEST, (uint32_t)c->session, c->seq)) {
        sink_error(s, "session %lld: request %llu corrupt, misplaced or out of order",
                   (long long)c->session, (unsigned long long)c->seq);
        return -1;
    }
    bench_msg_fill(c->out, s->size, BENCH_ANSWER, (uint32_t)c->session, c->seq);
    c->out_len = s->size;
    c->out_off = 0;
    c->have = 0;
    c->seq++;
    c->answered++;
    sink_count(s, &s->st.answered);
    return sink_flush(s, c);
}

static void sink_event(struct bench_sink *s, struct sink_conn *c, uint32_t events)
{
    if ((events & EPOLLOUT) && sink_flush(s, c) < 0) {
        sink_close(s, c);
        return;
    }
    for (;;) {
        if (c->out_off < c->out_len)
            return; /* one answer at a time: the next request waits in the socket */
        ssize_t n = read(c->fd, c->in + c->have, s->size - c->have);
        if (n > 0) {
            if (c->fin) {
                sink_error(s, "session %lld: bytes after the last answer", (long long)c->session);
                sink_close(s, c);
                return;
            }
            c->have += (size_t)n;
            if (c->have == s->size && sink_request(s, c) < 0) {
                sink_close(s, c);
                return;
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n == 0 && c->have > 0)
            sink_error(s, "session %lld: the connection ended inside a request",
                       (long long)c->session);
        if (n < 0)
            sink_count(s, &s->st.resets);
        sink_close(s, c);
        return;
    }
}

static void sink_accept(struct bench_sink *s)
{
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                sink_error(s, "out of descriptors: a connection waits unaccepted");
            return;
        }
        struct sink_conn *c = calloc(1, sizeof(*c));
        if (c != NULL) {
            c->fd = fd;
            c->session = -1;
            c->in = malloc(s->size);
            c->out = malloc(s->size);
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (c == NULL || c->in == NULL || c->out == NULL ||
            epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            sink_error(s, "cannot take a connection: %s", strerror(errno));
            if (c != NULL) {
                free(c->in);
                free(c->out);
                free(c);
            }
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->next = s->conns;
        if (s->conns != NULL)
            s->conns->prev = c;
        s->conns = c;
        sink_count(s, &s->st.accepted);
    }
}

static void *sink_thread(void *arg)
{
    struct bench_sink *s = arg;
    struct epoll_event evs[64];
    while (!atomic_load(&s->stop)) {
        int n = epoll_wait(s->epfd, evs, 64, 200);
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &sink_listen_marker)
                sink_accept(s);
            else if (p != &sink_wake_marker)
                sink_event(s, p, evs[i].events);
        }
    }
    while (s->conns != NULL)
        sink_close(s, s->conns);
    return NULL;
}

int bench_sink_start(uint16_t port, size_t size, unsigned close_after, struct bench_sink **out)
{
    if (size < BENCH_MSG_MIN || size > BENCH_MSG_MAX)
        return -EINVAL;
    struct bench_sink *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->size = size;
    s->close_after = close_after;
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_init(&s->lock, NULL);
    int one = 1, rc;
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &sink_listen_marker};
    struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &sink_wake_marker};
    if (s->listen_fd < 0 || s->epfd < 0 || s->wake_fd < 0 ||
        setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(s->listen_fd, 4096) < 0 ||
        getsockname(s->listen_fd, (struct sockaddr *)&a, &len) < 0 ||
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listen_fd, &lev) < 0 ||
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wake_fd, &wev) < 0) {
        rc = -errno;
        goto fail;
    }
    s->port = ntohs(a.sin_port);
    rc = -pthread_create(&s->thread, NULL, sink_thread, s);
    if (rc < 0)
        goto fail;
    s->started = true;
    *out = s;
    return 0;
fail:
    bench_sink_stop(s);
    return rc;
}

uint16_t bench_sink_port(const struct bench_sink *s)
{
    return s->port;
}

void bench_sink_stats(struct bench_sink *s, struct bench_sink_stats *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->st;
    pthread_mutex_unlock(&s->lock);
}

void bench_sink_stop(struct bench_sink *s)
{
    if (s == NULL)
        return;
    if (s->started) {
        atomic_store(&s->stop, true);
        uint64_t one = 1;
        if (write(s->wake_fd, &one, sizeof(one)) < 0) {
            /* the 200 ms poll timeout ends the thread as well */
        }
        pthread_join(s->thread, NULL);
    }
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
