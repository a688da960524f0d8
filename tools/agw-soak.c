/* agw-soak: holds thousands of sessions through a spawned ims-agw for a long time, with traffic,
 * churn and injected faults; checks every byte and watches the gateway's descriptors and RSS. */
#define _GNU_SOURCE
#include "tools/soak.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ERRORS_SHOWN 30
#define FD_SETTLE_MS 15000

/* ---- Shared by the threads (tools/soak.h) ---- */

uint64_t soak_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void soak_error(struct soak_run *r, const char *fmt, ...)
{
    uint64_t n = atomic_fetch_add(&r->stats.errors, 1) + 1;
    if (n > ERRORS_SHOWN && n % 100 != 0)
        return;
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    fprintf(stderr, "agw-soak: ERROR %llu at %.1f s: %s\n", (unsigned long long)n,
            (double)(soak_now_ms() - r->t0_ms) / 1000.0, text);
}

int soak_queue_init(struct soak_queue *q, bool with_eventfd)
{
    memset(q, 0, sizeof(*q));
    q->efd = -1;
    if (pthread_mutex_init(&q->lock, NULL) != 0)
        return -ENOMEM;
    if (with_eventfd) {
        q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (q->efd < 0)
            return -errno;
    }
    return 0;
}

void soak_queue_fini(struct soak_queue *q)
{
    pthread_mutex_destroy(&q->lock);
    if (q->efd >= 0)
        close(q->efd);
    free(q->ring);
}

int soak_queue_push(struct soak_queue *q, const struct soak_msg *m)
{
    pthread_mutex_lock(&q->lock);
    if (q->count == q->cap) {
        size_t cap = q->cap == 0 ? 256 : q->cap * 2;
        struct soak_msg *ring = malloc(cap * sizeof(*ring));
        if (ring == NULL) {
            pthread_mutex_unlock(&q->lock);
            return -ENOMEM;
        }
        for (size_t i = 0; i < q->count; i++)
            ring[i] = q->ring[(q->head + i) % q->cap];
        free(q->ring);
        q->ring = ring;
        q->cap = cap;
        q->head = 0;
    }
    q->ring[(q->head + q->count) % q->cap] = *m;
    q->count++;
    pthread_mutex_unlock(&q->lock);
    if (q->efd >= 0) {
        uint64_t one = 1;
        ssize_t w = write(q->efd, &one, sizeof(one));
        (void)w; /* a full counter still wakes the reader */
    }
    return 0;
}

bool soak_queue_pop(struct soak_queue *q, struct soak_msg *m)
{
    pthread_mutex_lock(&q->lock);
    bool any = q->count > 0;
    if (any) {
        *m = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
    pthread_mutex_unlock(&q->lock);
    return any;
}

/* ---- The gateway's process ---- */

static pid_t gateway_pid = -1;
static bool gateway_exited; /* reaped early: gateway_status holds its wait status */
static int gateway_status = -1;

/* Whether the gateway still runs (it is reaped when it does not). */
static bool gateway_alive(void)
{
    if (!gateway_exited && waitpid(gateway_pid, &gateway_status, WNOHANG) == gateway_pid)
        gateway_exited = true;
    return !gateway_exited;
}

static long proc_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    fclose(f);
    return kib;
}

static int proc_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* What each descriptor of pid points at ("socket:[123]", "/dev/null"), by number. */
#define FD_NAMES 64
struct fd_names {
    unsigned n;
    int fd[FD_NAMES];
    char target[FD_NAMES][64];
};

static void proc_fd_names(pid_t pid, struct fd_names *out)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    out->n = 0;
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    for (struct dirent *e; (e = readdir(d)) != NULL && out->n < FD_NAMES;) {
        if (e->d_name[0] == '.')
            continue;
        char link[64 + 256];
        snprintf(link, sizeof(link), "%s/%.200s", path, e->d_name);
        ssize_t len = readlink(link, out->target[out->n], sizeof(out->target[0]) - 1);
        out->target[out->n][len > 0 ? len : 0] = '\0';
        out->fd[out->n++] = atoi(e->d_name);
    }
    closedir(d);
}

/* Descriptors of now that were not open in before: how many point at /dev/null (libuv opens
 * one per loop at its first listen, a reserve for running out of descriptors), the others are
 * printed when print is set. */
static unsigned new_fds(const struct fd_names *before, const struct fd_names *now, bool print,
                        unsigned *reserves)
{
    unsigned added = 0;
    *reserves = 0;
    for (unsigned i = 0; i < now->n; i++) {
        bool old = false;
        for (unsigned k = 0; k < before->n && !old; k++)
            old = before->fd[k] == now->fd[i] && strcmp(before->target[k], now->target[i]) == 0;
        if (old)
            continue;
        added++;
        if (strcmp(now->target[i], "/dev/null") == 0)
            ++*reserves;
        else if (print)
            fprintf(stderr, "agw-soak: gateway descriptor %d -> %s was not open at the start\n",
                    now->fd[i], now->target[i]);
    }
    return added;
}

/* CPU seconds (user + system, every thread) of pid so far; negative if unknown. */
static double proc_cpu_s(pid_t pid)
{
    char path[64], text[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *p = strrchr(text, ')'); /* fields are counted after the name's last ')' */
    unsigned long long ut, st;
    if (p == NULL ||
        sscanf(p + 1, " %*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Starts bin on loopback with realms for the run; its stderr goes to log. It dies with us. */
static pid_t spawn_gateway(const char *bin, const char *log, const char *const *args)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
        _exit(126);
    execv(bin, (char *const *)args);
    perror(bin);
    _exit(127);
}

/* SIGTERM, answering the Graceful ServiceChange meanwhile; SIGKILL after 20 s. The status. */
static int stop_gateway(struct iq_client *c)
{
    if (!gateway_alive())
        return gateway_status;
    int status = -1;
    kill(gateway_pid, SIGTERM);
    uint64_t deadline = soak_now_ms() + 20000;
    while (waitpid(gateway_pid, &status, WNOHANG) == 0) {
        if (soak_now_ms() > deadline) {
            kill(gateway_pid, SIGKILL);
            waitpid(gateway_pid, &status, 0);
            break;
        }
        struct iq_event ev;
        if (c != NULL && iq_client_recv(c, 50, &ev) == 0)
            iq_event_release(&ev);
    }
    gateway_exited = true;
    gateway_status = status;
    return status;
}

static uint16_t free_udp_port(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- Realm ports ---- */

struct range {
    unsigned lo, hi;
};

/* Ports the realms may use: 1024-65535 less the kernel's ephemeral range (where connect() and
 * the free Iq ports come from: a realm port taken there would fail binds at random) and less
 * 4000-29999 (the realms of the test suites, so that `make check` may run beside a soak).
 * Highest first: above the ephemeral range, then 30000-32767, then 1024-3999. */
static unsigned free_windows(struct range *out, unsigned cap)
{
    unsigned eph_lo = 32768, eph_hi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f != NULL) {
        if (fscanf(f, "%u %u", &eph_lo, &eph_hi) != 2)
            eph_lo = 32768, eph_hi = 60999;
        fclose(f);
    }
#define BANNED(p) ((p) < 1024 || ((p) >= 4000 && (p) <= 29999) || ((p) >= eph_lo && (p) <= eph_hi))
    unsigned n = 0, port = 65535;
    while (port >= 1024 && n < cap) {
        if (BANNED(port)) {
            port--;
            continue;
        }
        unsigned hi = port;
        while (port >= 1024 && !BANNED(port))
            port--;
        out[n++] = (struct range){port + 1, hi};
    }
#undef BANNED
    return n;
}

/* Whether port can be bound on 127.0.0.1 right now, TCP and UDP (another gateway, another
 * soak or any server may hold ports of the window). */
static bool port_free(unsigned port)
{
    static const int types[] = {SOCK_STREAM, SOCK_DGRAM};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        int fd = socket(AF_INET, types[i] | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return false;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* as the gateway does */
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(fd);
        if (!ok)
            return false;
    }
    return true;
}

/* Takes need ports that are free now, consecutive, from the first window (in the preference
 * order) that has them; the window keeps what lies above. */
static bool carve(struct range *w, unsigned n, unsigned need, struct range *out)
{
    for (unsigned i = 0; i < n; i++) {
        unsigned start = w[i].lo;
        for (unsigned port = w[i].lo; port <= w[i].hi; port++) {
            if (!port_free(port)) {
                start = port + 1;
                continue;
            }
            if (port - start + 1 == need) {
                *out = (struct range){start, port};
                w[i].lo = port + 1;
                return true;
            }
        }
    }
    return false;
}

static bool parse_range(const char *s, struct range *out)
{
    char *end;
    unsigned long lo = strtoul(s, &end, 10);
    if (*end != '-')
        return false;
    unsigned long hi = strtoul(end + 1, &end, 10);
    if (*end != '\0' || lo < 1 || hi > 65535 || lo > hi)
        return false;
    *out = (struct range){(unsigned)lo, (unsigned)hi};
    return true;
}

/* ---- Progress and the report ---- */

struct sample {
    bool have;
    long rss_kib;
    int fds;
};

struct watch {
    uint64_t last_ms;
    double last_cpu, last_self;
    long rss_peak;
    struct sample idle_start, ramp_end, load_start, load_end, idle_end;
    double run_cpu0, run_self0, run_cpu, run_self;
    uint64_t run_t0, run_ms;
};
static struct watch watch;

static struct sample take_sample(void)
{
    struct sample s = {true, proc_rss_kib(gateway_pid), proc_fds(gateway_pid)};
    if (s.rss_kib > watch.rss_peak)
        watch.rss_peak = s.rss_kib;
    return s;
}

static void progress(struct soak_run *r, const char *phase, bool phase_end)
{
    struct soak_stats *st = &r->stats;
    uint64_t now = soak_now_ms();
    if (!gateway_alive() && !atomic_exchange(&r->abort, true))
        soak_error(r, "the gateway exited (wait status %d): the run stops here", gateway_status);
    struct sample s = take_sample();
    double cpu = proc_cpu_s(gateway_pid), self = self_cpu_s();
    double dt = (double)(now - watch.last_ms) / 1000.0;
    fprintf(stderr,
            "agw-soak: [%s %5.0f s] up %u/%u, set-ups %llu, releases %llu, verified %.1f MB up "
            "%.1f MB down, data channels %u/%u %llu messages, errors %llu, faults %llu/%llu, "
            "gateway RSS %.1f MiB, fds %d, CPU %.0f%% (agw-soak %.0f%%)\n",
            phase, (double)(now - r->t0_ms) / 1000.0, atomic_load(&st->sessions_up),
            r->cfg->sessions, (unsigned long long)atomic_load(&st->setups),
            (unsigned long long)atomic_load(&st->releases),
            (double)atomic_load(&st->up_verified) / 1e6,
            (double)atomic_load(&st->down_verified) / 1e6, atomic_load(&st->dc_up),
            r->cfg->dc_sessions, (unsigned long long)atomic_load(&st->dc_messages),
            (unsigned long long)atomic_load(&st->errors),
            (unsigned long long)atomic_load(&st->faults_ok),
            (unsigned long long)atomic_load(&st->faults_injected), (double)s.rss_kib / 1024.0,
            s.fds, dt > 0 ? (cpu - watch.last_cpu) / dt * 100 : 0,
            dt > 0 ? (self - watch.last_self) / dt * 100 : 0);
    watch.last_ms = now;
    watch.last_cpu = cpu;
    watch.last_self = self;
    bool run = strcmp(phase, "run") == 0;
    if (strcmp(phase, "ramp") == 0 && phase_end) {
        watch.ramp_end = s;
        watch.run_t0 = now;
        watch.run_cpu0 = cpu;
        watch.run_self0 = self;
    } else if (run && !watch.load_start.have) {
        watch.load_start = s; /* the first sample with every session up after the ramp */
    }
    if (run && phase_end) {
        watch.load_end = s;
        watch.run_ms = now - watch.run_t0;
        watch.run_cpu = cpu - watch.run_cpu0;
        watch.run_self = self - watch.run_self0;
    }
}

/* Lines of the gateway's log by level; the first error lines are shown. */
static void log_summary(const char *path, unsigned *errors, unsigned *warnings)
{
    *errors = *warnings = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[1024];
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "ims-agw: error:", 15) == 0) {
            if (++*errors <= 5)
                fprintf(stderr, "agw-soak: gateway log: %s", line);
        } else if (strncmp(line, "ims-agw: warn:", 14) == 0) {
            ++*warnings;
        }
    }
    fclose(f);
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fputs("usage: agw-soak [options]\n"
          "  holds --sessions sessions through a spawned ims-agw for --seconds, with traffic both\n"
          "  ways, churn and injected faults; every byte is checked, the gateway's descriptors\n"
          "  and RSS are sampled every 10 s. Exit 0 only when nothing went wrong.\n"
          "  --sessions N        sessions held (default 2000)\n"
          "  --seconds N         length of the run once all are up (default 600)\n"
          "  --churn PCT         percent of the sessions released and set up again every 10 s\n"
          "                      (default 5)\n"
          "  --rate BYTES        bytes a second each way per session, on average (default 2048)\n"
          "  --tls-percent PCT   sessions with a TLS access leg; the rest plain TCP (default 50)\n"
          "  --fault-every N     seconds between injected faults, 0: none (default 20)\n"
          "  --dc N              data-channel sessions besides, replaced every 20-60 s\n"
          "                      (default 20)\n"
          "  --ramp-seconds N    time allowed for every session to come up (default 180)\n"
          "  --rss-growth PCT    allowed RSS growth under load, start to end of the run\n"
          "                      (default 20)\n"
          "  --workers N|auto    the gateway's data-plane threads (default auto)\n"
          "  --agw-bin PATH      the gateway (default build/ims-agw)\n"
          "  --log FILE          the gateway's log (default /tmp/agw-soak.PID.log)\n"
          "  --log-level LEVEL   the gateway's log level (default warn)\n"
          "  --linger N          keep the idle gateway N s after the release (to inspect it,\n"
          "                      pid and log printed), then sample its RSS again\n"
          "  --access-ports LOW-HIGH, --core-ports LOW-HIGH\n"
          "                      the realms' ports (default: chosen outside the ephemeral range)\n",
          f);
}

static bool parse_unsigned(const char *s, unsigned long max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v > max)
        return false;
    *out = (unsigned)v;
    return true;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"sessions", required_argument, NULL, 'n'},
        {"seconds", required_argument, NULL, 's'},
        {"churn", required_argument, NULL, 'c'},
        {"rate", required_argument, NULL, 'r'},
        {"tls-percent", required_argument, NULL, 't'},
        {"fault-every", required_argument, NULL, 'f'},
        {"ramp-seconds", required_argument, NULL, 'R'},
        {"rss-growth", required_argument, NULL, 'g'},
        {"workers", required_argument, NULL, 'w'},
        {"agw-bin", required_argument, NULL, 'b'},
        {"log", required_argument, NULL, 'l'},
        {"log-level", required_argument, NULL, 'L'},
        {"access-ports", required_argument, NULL, 'A'},
        {"core-ports", required_argument, NULL, 'C'},
        {"linger", required_argument, NULL, 'i'},
        {"dc", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static struct soak_config cfg = {.sessions = 2000,
                                     .seconds = 600,
                                     .churn_percent = 5,
                                     .rate = 2048,
                                     .tls_percent = 50,
                                     .fault_every = 20,
                                     .ramp_seconds = 180,
                                     .dc_sessions = 20};
    unsigned rss_growth = 20, linger = 0;
    const char *workers = "auto", *bin = "build/ims-agw", *log_level = "warn";
    char log_path[256];
    snprintf(log_path, sizeof(log_path), "/tmp/agw-soak.%d.log", (int)getpid());
    struct range access = {0, 0}, core = {0, 0};
    int opt;
    bool ok = true;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'n':
            ok &= parse_unsigned(optarg, 100000, &cfg.sessions) && cfg.sessions > 0;
            break;
        case 's':
            ok &= parse_unsigned(optarg, 30 * 86400, &cfg.seconds);
            break;
        case 'c': {
            char *end;
            cfg.churn_percent = strtod(optarg, &end);
            ok &= *end == '\0' && cfg.churn_percent >= 0 && cfg.churn_percent <= 100;
            break;
        }
        case 'r':
            ok &= parse_unsigned(optarg, 1 << 24, &cfg.rate);
            break;
        case 't':
            ok &= parse_unsigned(optarg, 100, &cfg.tls_percent);
            break;
        case 'f':
            ok &= parse_unsigned(optarg, 86400, &cfg.fault_every);
            break;
        case 'R':
            ok &= parse_unsigned(optarg, 86400, &cfg.ramp_seconds) && cfg.ramp_seconds > 0;
            break;
        case 'g':
            ok &= parse_unsigned(optarg, 1000, &rss_growth);
            break;
        case 'w':
            workers = optarg;
            break;
        case 'b':
            bin = optarg;
            break;
        case 'l':
            snprintf(log_path, sizeof(log_path), "%s", optarg);
            break;
        case 'L':
            log_level = optarg;
            break;
        case 'A':
            ok &= parse_range(optarg, &access);
            break;
        case 'C':
            ok &= parse_range(optarg, &core);
            break;
        case 'i':
            ok &= parse_unsigned(optarg, 86400, &linger);
            break;
        case 'd':
            ok &= parse_unsigned(optarg, 1000, &cfg.dc_sessions);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!ok || optind != argc) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    unsigned n = cfg.sessions;
    unsigned plain = n - n * cfg.tls_percent / 100;

    /* Realms: a port per access leg, and per plain session's core leg (the TLS sessions' core
     * legs dial out from port 9), a UDP port on each leg of a data channel; a tenth more for the
     * ports still closing during churn. */
    unsigned dc = cfg.dc_sessions;
    unsigned need_access = n + 2 * dc + n / 10 + 16, need_core = plain + 2 * dc + n / 10 + 16;
    struct range windows[8];
    unsigned nw = free_windows(windows, 8);
    if ((access.lo == 0 && !carve(windows, nw, need_access, &access)) ||
        (core.lo == 0 && !carve(windows, nw, need_core, &core))) {
        fprintf(stderr,
                "agw-soak: no room for %u access and %u core ports outside the ephemeral range and "
                "4000-29999: give --access-ports and --core-ports, or fewer --sessions\n",
                need_access, need_core);
        return 2;
    }

    /* Descriptors: the gateway needs up to 4 a session, we 2; it inherits our hard limit. */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t need = (rlim_t)(n + dc) * 4 + 1024;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
        rl.rlim_max = need; /* works as root */
    }
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        getrlimit(RLIMIT_NOFILE, &rl);
        fprintf(stderr, "agw-soak: RLIMIT_NOFILE %llu/%llu, %llu needed: raise the hard limit\n",
                (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
                (unsigned long long)need);
        return 2;
    }

    static struct soak_run run;
    struct soak_run *r = &run;
    r->cfg = &cfg;
    r->t0_ms = soak_now_ms();
    r->sessions = calloc(n, sizeof(*r->sessions));
    r->dc = calloc(dc + 1, sizeof(*r->dc));
    if (r->sessions == NULL || r->dc == NULL || soak_queue_init(&r->to_iq, false) < 0 ||
        soak_queue_init(&r->to_peers, true) < 0 || soak_queue_init(&r->to_dc, false) < 0 ||
        agw_tls_identity_generate("agw-soak-ue", 2, &r->ue) < 0 ||
        agw_tls_identity_generate("agw-soak-intruder", 2, &r->intruder) < 0 ||
        agw_tls_fingerprint_format(agw_tls_identity_fingerprint(r->ue), r->ue_fingerprint,
                                   sizeof(r->ue_fingerprint)) < 0) {
        fprintf(stderr, "agw-soak: out of memory, or no certificate\n");
        return 1;
    }

    char iq[32], mgc[32], access_arg[64], core_arg[64], max_contexts[16];
    snprintf(iq, sizeof(iq), "127.0.0.1:%u", free_udp_port());
    snprintf(mgc, sizeof(mgc), "127.0.0.1:%u", free_udp_port());
    snprintf(access_arg, sizeof(access_arg), "access,127.0.0.1,%u-%u", access.lo, access.hi);
    snprintf(core_arg, sizeof(core_arg), "core,127.0.0.1,%u-%u", core.lo, core.hi);
    snprintf(max_contexts, sizeof(max_contexts), "%u", n + dc + 64);
    const char *args[] = {bin,          "--iq-listen", iq,        "--mgc",
                          mgc,          "--workers",   workers,   "--realm",
                          access_arg,   "--realm",     core_arg,  "--max-contexts",
                          max_contexts, "--log-level", log_level, "--control-socket",
                          "",           NULL};
    gateway_pid = spawn_gateway(bin, log_path, args);
    if (gateway_pid < 0) {
        perror("agw-soak: fork");
        return 1;
    }
    fprintf(stderr,
            "agw-soak: %u sessions (%u TLS, %u plain TCP) and %u data channels for %u s, churn "
            "%.1f%% every 10 s, %u B/s each way, a fault every %u s\n"
            "agw-soak: gateway %s (pid %d), workers %s, realms access %u-%u core %u-%u, log %s\n",
            n, n - plain, plain, dc, cfg.seconds, cfg.churn_percent, cfg.rate, cfg.fault_every, bin,
            (int)gateway_pid, workers, access.lo, access.hi, core.lo, core.hi, log_path);
    if (iq_client_open(mgc, iq, NULL, NULL, &r->iq) < 0 ||
        iq_client_wait_registration(r->iq, 10000, NULL, NULL, NULL) < 0) {
        fprintf(stderr, "agw-soak: the gateway did not register (log %s)\n", log_path);
        stop_gateway(r->iq);
        iq_client_close(r->iq);
        return 1;
    }
    usleep(500000);
    static struct fd_names fds_before, fds_after;
    proc_fd_names(gateway_pid, &fds_before);
    watch.idle_start = take_sample();
    watch.last_ms = soak_now_ms();
    watch.last_cpu = proc_cpu_s(gateway_pid);
    watch.last_self = self_cpu_s();

    pthread_t iq_thread, dc_thread;
    atomic_store(&r->dc_idle, dc == 0);
    if (pthread_create(&iq_thread, NULL, soak_iq_thread, r) != 0 ||
        (dc > 0 && pthread_create(&dc_thread, NULL, soak_dc_thread, r) != 0)) {
        fprintf(stderr, "agw-soak: cannot start the threads\n");
        stop_gateway(r->iq);
        return 1;
    }
    int rc = soak_peers_run(r, progress);
    if (dc > 0)
        pthread_join(dc_thread, NULL);
    atomic_store(&r->iq_stop, true);
    pthread_join(iq_thread, NULL);

    /* Every session is gone: the descriptors must come back to where they were, but for one
     * libuv reserve per worker loop. */
    unsigned loops = strcmp(workers, "auto") == 0 ? (unsigned)sysconf(_SC_NPROCESSORS_ONLN)
                                                  : (unsigned)strtoul(workers, NULL, 10);
    uint64_t deadline = soak_now_ms() + FD_SETTLE_MS;
    unsigned reserves = 0;
    bool fds_ok = false;
    for (;;) {
        watch.idle_end = take_sample();
        proc_fd_names(gateway_pid, &fds_after);
        unsigned added = new_fds(&fds_before, &fds_after, false, &reserves);
        fds_ok = watch.idle_end.fds == watch.idle_start.fds + (int)reserves && added == reserves &&
                 reserves <= loops && watch.idle_end.fds <= FD_NAMES;
        if (fds_ok || soak_now_ms() > deadline || !gateway_alive())
            break;
        usleep(200000);
    }
    if (!fds_ok)
        new_fds(&fds_before, &fds_after, true, &reserves);
    struct sample lingered = {0};
    if (linger > 0) {
        fprintf(stderr, "agw-soak: the gateway (pid %d) stays idle for %u s\n", (int)gateway_pid,
                linger);
        sleep(linger);
        lingered = take_sample();
    }
    bool alive = gateway_alive();
    int status = stop_gateway(r->iq);
    unsigned log_errors, log_warnings;
    log_summary(log_path, &log_errors, &log_warnings);

    struct soak_stats *st = &r->stats;
    uint64_t errors = atomic_load(&st->errors);
    uint64_t faults = atomic_load(&st->faults_injected), faults_ok = atomic_load(&st->faults_ok);
    double growth = watch.load_start.rss_kib > 0
                        ? (double)(watch.load_end.rss_kib - watch.load_start.rss_kib) * 100.0 /
                              (double)watch.load_start.rss_kib
                        : 0;
    bool rss_ok = !watch.load_start.have || growth <= rss_growth;
    bool exit_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    double run_s = (double)watch.run_ms / 1000.0;
    printf("agw-soak: %u sessions (%u TLS, %u plain), %.0f s run, churn %.1f%%/10 s, %u B/s "
           "each way\n",
           n, n - plain, plain, run_s, cfg.churn_percent, cfg.rate);
    printf("  set-ups %llu (failed %llu), releases %llu, TLS handshakes %llu (%llu held for a "
           "Modify), Subtract figures checked %llu\n",
           (unsigned long long)atomic_load(&st->setups),
           (unsigned long long)atomic_load(&st->setup_failures),
           (unsigned long long)atomic_load(&st->releases), (unsigned long long)st->handshakes,
           (unsigned long long)st->held_handshakes, (unsigned long long)st->figures_checked);
    printf("  bytes verified: %llu up, %llu down\n",
           (unsigned long long)atomic_load(&st->up_verified),
           (unsigned long long)atomic_load(&st->down_verified));
    printf("  data channels: %u, set-ups %llu, messages verified %llu (%llu bytes)\n", dc,
           (unsigned long long)atomic_load(&st->dc_setups),
           (unsigned long long)atomic_load(&st->dc_messages),
           (unsigned long long)atomic_load(&st->dc_bytes));
    printf("  faults injected %llu, with the expected outcome %llu; Notifies %llu (%llu after "
           "their Subtract)\n",
           (unsigned long long)faults, (unsigned long long)faults_ok,
           (unsigned long long)atomic_load(&st->notifies),
           (unsigned long long)atomic_load(&st->late_notifies));
    printf("  errors: %llu\n", (unsigned long long)errors);
    printf("  gateway RSS: idle %.1f MiB, every session up %.1f MiB, run start %.1f MiB, run end "
           "%.1f MiB (%+.1f%%), peak %.1f MiB, idle after release %.1f MiB\n",
           (double)watch.idle_start.rss_kib / 1024, (double)watch.ramp_end.rss_kib / 1024,
           (double)watch.load_start.rss_kib / 1024, (double)watch.load_end.rss_kib / 1024, growth,
           (double)watch.rss_peak / 1024, (double)watch.idle_end.rss_kib / 1024);
    if (lingered.have)
        printf("  gateway RSS %u s later: %.1f MiB, fds %d\n", linger,
               (double)lingered.rss_kib / 1024, lingered.fds);
    printf("  gateway fds: idle %d, under load %d, after release %d (%u of them libuv's "
           "/dev/null reserve, one per worker loop)\n",
           watch.idle_start.fds, watch.load_end.fds, watch.idle_end.fds, reserves);
    if (run_s > 0)
        printf("  CPU over the run: gateway %.1f s (%.0f%% of a core), agw-soak %.1f s (%.0f%%)\n",
               watch.run_cpu, watch.run_cpu / run_s * 100, watch.run_self,
               watch.run_self / run_s * 100);
    printf("  gateway log: %u error lines, %u warnings (%s); %s %d\n", log_errors, log_warnings,
           log_path, WIFSIGNALED(status) ? "killed by signal" : "exit status",
           WIFSIGNALED(status) ? WTERMSIG(status)
           : WIFEXITED(status) ? WEXITSTATUS(status)
                               : -1);
    bool pass = rc == 0 && errors == 0 && faults_ok == faults && rss_ok && fds_ok && alive &&
                exit_ok && log_errors == 0;
    printf("agw-soak: %s%s%s%s%s%s%s\n", pass ? "PASS" : "FAIL", errors ? " (errors)" : "",
           log_errors ? " (error lines in the gateway's log)" : "",
           faults_ok != faults ? " (faults without their outcome)" : "",
           rss_ok ? "" : " (RSS grew)", fds_ok ? "" : " (descriptors not back)",
           alive && exit_ok ? "" : " (the gateway died or did not exit 0)");
    iq_client_close(r->iq);
    soak_queue_fini(&r->to_iq);
    soak_queue_fini(&r->to_peers);
    soak_queue_fini(&r->to_dc);
    free(r->dc);
    agw_tls_identity_unref(r->ue);
    agw_tls_identity_unref(r->intruder);
    free(r->sessions);
    return pass ? 0 : 1;
}
