/* GET /metrics over HTTP: libmicrohttpd without threads of its own, in epoll mode, driven from the
 * control loop (a uv_poll on MHD's epoll descriptor and a timer for its timeouts), so that a
 * scrape reads the control loop's state without locks. */
#include "agw/agw.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONNECTIONS_MAX 32
#define CONNECTION_TIMEOUT_S 10
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct agw_metrics_http {
    struct MHD_Daemon *mhd;
    uv_poll_t poll;
    uv_timer_t timer;
    unsigned handles_open; /* h is freed after the last close callback */
    agw_metrics_render_cb render;
    void *arg;
    char where[64]; /* the address, for the logs */
};

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct agw_metrics_http *h = cls;
    char text[256];
    vsnprintf(text, sizeof(text), fmt, ap);
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        text[--n] = '\0';
    agw_log(AGW_LOG_WARN, "metrics %s: %s", h->where, text);
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *type,
                               char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (r == NULL) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    return respond(conn, status, "text/plain; charset=utf-8", (char *)text, strlen(text),
                   MHD_RESPMEM_PERSISTENT);
}

/* The whole answer is known from the request line: it goes out on the first call. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls)
{
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)req_cls;
    struct agw_metrics_http *h = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    if (strcmp(url, "/metrics") != 0)
        return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics\n");
    char *body = NULL;
    size_t len = 0;
    int rc = h->render(h->arg, &body, &len);
    if (rc < 0) {
        agw_log(AGW_LOG_ERROR, "metrics %s: cannot render: %s", h->where, strerror(-rc));
        return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render the metrics\n");
    }
    return respond(conn, MHD_HTTP_OK, CONTENT_TYPE, body, len, MHD_RESPMEM_MUST_FREE);
}

static void on_timer(uv_timer_t *timer);

/* Lets MHD work, then arms the timer for what it must do next without socket activity. */
static void drive(struct agw_metrics_http *h)
{
    MHD_run(h->mhd);
    MHD_UNSIGNED_LONG_LONG ms;
    if (MHD_get_timeout(h->mhd, &ms) == MHD_YES)
        uv_timer_start(&h->timer, on_timer, (uint64_t)ms, 0);
    else
        uv_timer_stop(&h->timer);
}

static void on_timer(uv_timer_t *timer)
{
    drive(timer->data);
}

static void on_poll(uv_poll_t *poll, int status, int events)
{
    (void)status;
    (void)events;
    drive(poll->data);
}

/* A listening TCP socket on addr: ours, so that a failure says why. */
static int listen_socket(const struct sockaddr_storage *addr, int *out)
{
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (addr->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    socklen_t len =
        addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, (const struct sockaddr *)addr, len) < 0 || listen(fd, CONNECTIONS_MAX) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    *out = fd;
    return 0;
}

int agw_metrics_http_start(struct agw_metrics_http **out, uv_loop_t *loop,
                           const struct sockaddr_storage *addr, agw_metrics_render_cb render,
                           void *arg)
{
    struct agw_metrics_http *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return -ENOMEM;
    h->render = render;
    h->arg = arg;
    agw_config_format_address(addr, true, h->where, sizeof(h->where));
    int fd = -1;
    int rc = listen_socket(addr, &fd);
    if (rc < 0) {
        agw_log(AGW_LOG_ERROR, "metrics: cannot listen on %s: %s", h->where, strerror(-rc));
        free(h);
        return rc;
    }
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (addr->ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* The logger first: MHD may log while it starts. */
    h->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTIONS_MAX,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S, MHD_OPTION_END);
    const union MHD_DaemonInfo *info =
        h->mhd != NULL ? MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (info == NULL) {
        agw_log(AGW_LOG_ERROR, "metrics: libmicrohttpd did not start on %s", h->where);
        if (h->mhd != NULL)
            MHD_stop_daemon(h->mhd); /* closes fd */
        else
            close(fd);
        free(h);
        return -EIO;
    }
    rc = uv_poll_init(loop, &h->poll, info->epoll_fd);
    if (rc < 0) {
        MHD_stop_daemon(h->mhd);
        free(h);
        return rc;
    }
    h->poll.data = h;
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    h->handles_open = 2;
    uv_poll_start(&h->poll, UV_READABLE, on_poll);
    drive(h);
    agw_log(AGW_LOG_INFO, "metrics: http://%s/metrics", h->where);
    *out = h;
    return 0;
}

static void on_closed(uv_handle_t *handle)
{
    struct agw_metrics_http *h = handle->data;
    if (--h->handles_open == 0)
        free(h);
}

void agw_metrics_http_stop(struct agw_metrics_http *h)
{
    if (h == NULL)
        return;
    /* The poll handle lets go of MHD's epoll descriptor before MHD closes it. */
    uv_close((uv_handle_t *)&h->poll, on_closed);
    uv_close((uv_handle_t *)&h->timer, on_closed);
    MHD_stop_daemon(h->mhd);
    h->mhd = NULL;
}
