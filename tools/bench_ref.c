/* agw-bench's plain reference relay: one thread per direction moving bytes with splice(2). */
#define _GNU_SOURCE /* splice, pipe2, accept4, F_SETPIPE_SZ */
#include "tools/bench_ref.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Pipe capacity asked for: fewer, larger splices (the default pipe-max-size allows 1 MiB). */
#define PIPE_BYTES (1 << 20)

struct ref_pipe {
    int from, to;
    struct bench_ref_relay *relay;
    pthread_t thread;
    bool started;
};

struct ref_conn {
    int client, upstream;
    struct ref_pipe dir[2]; /* client -> upstream, upstream -> client */
};

struct bench_ref_relay {
    int listen_fd;
    struct sockaddr_storage upstream;
    socklen_t upstream_len;
    unsigned max_conns, n_conns; /* n_conns written by the acceptor, read after joining it */
    struct ref_conn *conns;
    pthread_t acceptor;
    atomic_bool stop;
    pthread_mutex_t lock;
    double cpu_s;
};

/* Plain copy through user space, for kernels or sockets where splice() is refused. */
static int pump_copy(int from, int to)
{
    static __thread char buf[256 * 1024];
    for (;;) {
        ssize_t n = read(from, buf, sizeof(buf));
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        for (ssize_t done = 0; done < n;) {
            ssize_t m = write(to, buf + done, (size_t)(n - done));
            if (m < 0) {
                if (errno == EINTR)
                    continue;
                return -errno;
            }
            done += m;
        }
    }
}

/* Socket -> pipe -> socket until EOF: the payload never enters user space. */
static int pump_splice(int from, int to)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    (void)fcntl(p[1], F_SETPIPE_SZ, PIPE_BYTES); /* best effort: the default 64 KiB also works */
    int rc = 0;
    bool moved = false;
    for (;;) {
        ssize_t n = splice(from, NULL, p[1], NULL, PIPE_BYTES, SPLICE_F_MOVE | SPLICE_F_MORE);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            if (rc == -EINVAL && !moved)
                rc = pump_copy(from, to);
            break;
        }
        moved = true;
        while (n > 0) {
            ssize_t m = splice(p[0], NULL, to, NULL, (size_t)n, SPLICE_F_MOVE | SPLICE_F_MORE);
            if (m < 0) {
                if (errno == EINTR)
                    continue;
                rc = -errno;
                goto out;
            }
            n -= m;
        }
    }
out:
    close(p[0]);
    close(p[1]);
    return rc;
}

static void *pump_thread(void *arg)
{
    struct ref_pipe *d = arg;
    (void)pump_splice(d->from, d->to);
    /* EOF or error on one side ends this direction only: the other may still be moving. */
    shutdown(d->to, SHUT_WR);
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    pthread_mutex_lock(&d->relay->lock);
    d->relay->cpu_s += (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    pthread_mutex_unlock(&d->relay->lock);
    return NULL;
}

static void *acceptor_thread(void *arg)
{
    struct bench_ref_relay *r = arg;
    while (!atomic_load(&r->stop) && r->n_conns < r->max_conns) {
        struct pollfd pfd = {.fd = r->listen_fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        int client = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (client < 0)
            continue;
        int upstream = socket(r->upstream.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (upstream < 0 ||
            connect(upstream, (const struct sockaddr *)&r->upstream, r->upstream_len) < 0) {
            if (upstream >= 0)
                close(upstream);
            close(client);
            continue;
        }
        struct ref_conn *c = &r->conns[r->n_conns];
        c->client = client;
        c->upstream = upstream;
        c->dir[0] = (struct ref_pipe){.from = client, .to = upstream, .relay = r};
        c->dir[1] = (struct ref_pipe){.from = upstream, .to = client, .relay = r};
        for (int i = 0; i < 2; i++)
            c->dir[i].started =
                pthread_create(&c->dir[i].thread, NULL, pump_thread, &c->dir[i]) == 0;
        r->n_conns++;
    }
    return NULL;
}

int bench_ref_relay_start(const struct sockaddr_storage *upstream, socklen_t upstream_len,
                          unsigned connections, uint16_t *port_out, struct bench_ref_relay **out)
{
    if (connections == 0 || upstream_len > sizeof(*upstream))
        return -EINVAL;
    struct bench_ref_relay *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->conns = calloc(connections, sizeof(*r->conns));
    if (r->conns == NULL) {
        free(r);
        return -ENOMEM;
    }
    memcpy(&r->upstream, upstream, upstream_len);
    r->upstream_len = upstream_len;
    r->max_conns = connections;
    pthread_mutex_init(&r->lock, NULL);
    int rc = 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    r->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (r->listen_fd < 0 || bind(r->listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(r->listen_fd, (int)connections + 16) < 0 ||
        getsockname(r->listen_fd, (struct sockaddr *)&a, &len) < 0) {
        rc = -errno;
        goto fail;
    }
    rc = -pthread_create(&r->acceptor, NULL, acceptor_thread, r);
    if (rc < 0)
        goto fail;
    *port_out = ntohs(a.sin_port);
    *out = r;
    return 0;
fail:
    if (r->listen_fd >= 0)
        close(r->listen_fd);
    pthread_mutex_destroy(&r->lock);
    free(r->conns);
    free(r);
    return rc;
}

void bench_ref_relay_stop(struct bench_ref_relay *r, double *cpu_s)
{
    if (r == NULL)
        return;
    atomic_store(&r->stop, true);
    pthread_join(r->acceptor, NULL);
    for (unsigned i = 0; i < r->n_conns; i++) {
        struct ref_conn *c = &r->conns[i];
        /* Wakes a pump still blocked on a side that never closed (a failed run). */
        shutdown(c->client, SHUT_RDWR);
        shutdown(c->upstream, SHUT_RDWR);
        for (int k = 0; k < 2; k++)
            if (c->dir[k].started)
                pthread_join(c->dir[k].thread, NULL);
        close(c->client);
        close(c->upstream);
    }
    close(r->listen_fd);
    if (cpu_s != NULL)
        *cpu_s = r->cpu_s;
    pthread_mutex_destroy(&r->lock);
    free(r->conns);
    free(r);
}
