/* A UDP relay for tests that loses, duplicates, reorders and delays datagrams (lossy_proxy.h). */
#include "tests/lossy_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_MAX 1024
#define DATAGRAM_MAX 65536

struct queued {
    uint64_t due_ms, seq; /* sent in (due, arrival) order */
    enum lossy_dir dir;
    size_t len;
    char *data; /* NULL: free slot */
};

struct lossy_proxy {
    int fd[2];   /* [LOSSY_TO_MGC]: sends toward the MGC (mgc_side); the other: gw_side */
    int wake[2]; /* a pipe: stop */
    struct sockaddr_in dst[2]; /* the MGC, the gateway */
    pthread_t thread;
    pthread_mutex_t lock; /* faults, stats and stop: the rest belongs to the thread */
    struct lossy_faults faults[2];
    struct lossy_proxy_stats stats[2];
    bool stop;
    uint64_t rng, seq;
    lossy_observe_cb cb;
    void *cb_arg;
    struct queued queue[QUEUE_MAX];
    char buf[DATAGRAM_MAX];
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* splitmix64: a fixed seed gives the same fault decisions for the same traffic. */
static uint64_t next_random(struct lossy_proxy *p)
{
    uint64_t z = (p->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static bool chance(struct lossy_proxy *p, unsigned pct)
{
    return next_random(p) % 100 < pct;
}

static int bind_loopback(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static void enqueue(struct lossy_proxy *p, enum lossy_dir dir, const char *data, size_t len,
                    uint64_t due)
{
    for (size_t i = 0; i < QUEUE_MAX; i++) {
        struct queued *q = &p->queue[i];
        if (q->data != NULL)
            continue;
        q->data = malloc(len > 0 ? len : 1);
        if (q->data == NULL)
            return;
        memcpy(q->data, data, len);
        q->len = len;
        q->dir = dir;
        q->due_ms = due;
        q->seq = p->seq++;
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->stats[dir].dropped++; /* a full queue loses like a full router */
    pthread_mutex_unlock(&p->lock);
}

/* One datagram in: the observer sees it, then the faults of its direction decide its fate. */
static void take(struct lossy_proxy *p, enum lossy_dir dir, size_t len)
{
    if (p->cb != NULL)
        p->cb(p->cb_arg, dir, p->buf, len);
    pthread_mutex_lock(&p->lock);
    struct lossy_faults f = p->faults[dir];
    struct lossy_proxy_stats *st = &p->stats[dir];
    st->received++;
    if (f.blackout || chance(p, f.loss_pct)) {
        st->dropped++;
        pthread_mutex_unlock(&p->lock);
        return;
    }
    unsigned copies = chance(p, f.dup_pct) ? 2 : 1;
    uint64_t due[2];
    for (unsigned i = 0; i < copies; i++) {
        due[i] = now_ms() + (f.delay_max_ms > 0 ? next_random(p) % (f.delay_max_ms + 1) : 0);
        if (chance(p, f.reorder_pct)) {
            due[i] += f.reorder_ms;
            st->reordered++;
        }
    }
    if (copies == 2)
        st->duplicated++;
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < copies; i++)
        enqueue(p, dir, p->buf, len, due[i]);
}

/* Sends what is due, oldest first; returns the wait until the next one (-1: nothing queued). */
static int deliver(struct lossy_proxy *p)
{
    uint64_t now = now_ms();
    for (;;) {
        struct queued *q = NULL;
        uint64_t next = UINT64_MAX;
        for (size_t i = 0; i < QUEUE_MAX; i++) {
            struct queued *c = &p->queue[i];
            if (c->data == NULL)
                continue;
            if (c->due_ms > now) {
                if (c->due_ms < next)
                    next = c->due_ms;
            } else if (q == NULL || c->due_ms < q->due_ms ||
                       (c->due_ms == q->due_ms && c->seq < q->seq)) {
                q = c;
            }
        }
        if (q == NULL)
            return next == UINT64_MAX ? -1 : (int)(next - now);
        /* Toward the MGC it leaves from mgc_side, toward the gateway from gw_side. */
        ssize_t n = sendto(p->fd[q->dir], q->data, q->len, 0,
                           (const struct sockaddr *)&p->dst[q->dir], sizeof(p->dst[q->dir]));
        pthread_mutex_lock(&p->lock);
        if (n == (ssize_t)q->len)
            p->stats[q->dir].forwarded++;
        else
            p->stats[q->dir].dropped++; /* a closed MGC port (ECONNREFUSED) loses it too */
        pthread_mutex_unlock(&p->lock);
        free(q->data);
        q->data = NULL;
    }
}

static void *run(void *arg)
{
    struct lossy_proxy *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        bool stop = p->stop;
        pthread_mutex_unlock(&p->lock);
        if (stop)
            break;
        int wait_ms = deliver(p);
        /* fd[LOSSY_TO_GATEWAY] is gw_side: the gateway's datagrams arrive there. */
        struct pollfd pfd[3] = {{.fd = p->fd[LOSSY_TO_GATEWAY], .events = POLLIN},
                                {.fd = p->fd[LOSSY_TO_MGC], .events = POLLIN},
                                {.fd = p->wake[0], .events = POLLIN}};
        if (poll(pfd, 3, wait_ms) <= 0)
            continue;
        for (int side = 0; side < 2; side++) {
            /* POLLERR too: the recv clears a pending ECONNREFUSED. */
            if (!(pfd[side].revents & (POLLIN | POLLERR)))
                continue;
            enum lossy_dir dir = side == 0 ? LOSSY_TO_MGC : LOSSY_TO_GATEWAY;
            for (;;) {
                ssize_t n = recv(pfd[side].fd, p->buf, sizeof(p->buf), 0);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n < 0)
                    break; /* EAGAIN, or ECONNREFUSED from an earlier send: nothing to take */
                take(p, dir, (size_t)n);
            }
        }
    }
    return NULL;
}

int lossy_proxy_start(struct lossy_proxy **out, uint16_t gw_side, uint16_t gateway_port,
                      uint16_t mgc_side, uint16_t mgc_port, uint64_t seed, lossy_observe_cb cb,
                      void *arg)
{
    struct lossy_proxy *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->fd[0] = p->fd[1] = p->wake[0] = p->wake[1] = -1;
    p->rng = seed;
    p->cb = cb;
    p->cb_arg = arg;
    uint16_t dst_port[2] = {[LOSSY_TO_MGC] = mgc_port, [LOSSY_TO_GATEWAY] = gateway_port};
    for (int d = 0; d < 2; d++) {
        p->dst[d].sin_family = AF_INET;
        p->dst[d].sin_port = htons(dst_port[d]);
        p->dst[d].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    int rc = 0;
    p->fd[LOSSY_TO_MGC] = bind_loopback(mgc_side);
    p->fd[LOSSY_TO_GATEWAY] = bind_loopback(gw_side);
    if (p->fd[LOSSY_TO_MGC] < 0 || p->fd[LOSSY_TO_GATEWAY] < 0)
        rc = p->fd[LOSSY_TO_MGC] < 0 ? p->fd[LOSSY_TO_MGC] : p->fd[LOSSY_TO_GATEWAY];
    if (rc == 0 && pipe(p->wake) < 0)
        rc = -errno;
    if (rc == 0 && (rc = -pthread_mutex_init(&p->lock, NULL)) == 0 &&
        (rc = -pthread_create(&p->thread, NULL, run, p)) != 0)
        pthread_mutex_destroy(&p->lock);
    if (rc != 0) {
        for (int i = 0; i < 2; i++) {
            if (p->fd[i] >= 0)
                close(p->fd[i]);
            if (p->wake[i] >= 0)
                close(p->wake[i]);
        }
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void lossy_proxy_set_faults(struct lossy_proxy *p, enum lossy_dir dir, const struct lossy_faults *f)
{
    pthread_mutex_lock(&p->lock);
    p->faults[dir] = *f;
    pthread_mutex_unlock(&p->lock);
}

void lossy_proxy_get_stats(struct lossy_proxy *p, enum lossy_dir dir, struct lossy_proxy_stats *out)
{
    pthread_mutex_lock(&p->lock);
    *out = p->stats[dir];
    pthread_mutex_unlock(&p->lock);
}

void lossy_proxy_stop(struct lossy_proxy *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_mutex_unlock(&p->lock);
    ssize_t n = write(p->wake[1], "x", 1);
    (void)n;
    pthread_join(p->thread, NULL);
    pthread_mutex_destroy(&p->lock);
    for (size_t i = 0; i < QUEUE_MAX; i++)
        free(p->queue[i].data);
    for (int i = 0; i < 2; i++) {
        close(p->fd[i]);
        close(p->wake[i]);
    }
    free(p);
}
