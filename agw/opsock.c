/* The operator's control socket: a Unix stream socket on the control loop that answers one
 * command a connection (show registration, show contexts, drain) with lines of text. */
#define _GNU_SOURCE /* struct ucred */
#include "agw/agw.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define LINE_MAX_BYTES 256
#define BACKLOG 16
#define DRAIN_SECONDS_MAX 86400

struct client {
    struct client *prev, *next;
    struct agw_opsock *o;
    uv_pipe_t pipe;
    char line[LINE_MAX_BYTES];
    size_t len;
    bool answered; /* the command ran: what still comes in is ignored */
    bool draining; /* kept open for the drain's progress lines */
    bool closing;
};

struct agw_opsock {
    uv_loop_t *loop;
    uv_pipe_t listener;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    const struct agw_control *control;
    const struct agw_model *model;
    agw_opsock_drain_cb drain;
    void *arg;
    struct client clients; /* list head */
    unsigned handles_open; /* the listener and every client: o is freed after the last */
    bool closing;
    struct agw_log_limit refused_log;
};

/* One write: its bytes follow the request. */
struct write_req {
    uv_write_t req;
    struct client *cl;
    bool close_after;
    char data[];
};

static void handle_gone(struct agw_opsock *o)
{
    if (--o->handles_open == 0)
        free(o);
}

static void on_listener_closed(uv_handle_t *handle)
{
    handle_gone(handle->data);
}

static void on_client_closed(uv_handle_t *handle)
{
    struct client *cl = handle->data;
    struct agw_opsock *o = cl->o;
    free(cl);
    handle_gone(o);
}

static void client_close(struct client *cl)
{
    if (cl->closing)
        return;
    cl->closing = true;
    cl->prev->next = cl->next;
    cl->next->prev = cl->prev;
    uv_close((uv_handle_t *)&cl->pipe, on_client_closed);
}

/* Writes cancelled by a close come back before the close callback: cl is still there. */
static void on_written(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    if (status < 0 || w->close_after)
        client_close(w->cl);
    free(w);
}

/* Sends len bytes of text (copied); the connection closes after them when close_after. */
static void client_send(struct client *cl, const char *text, size_t len, bool close_after)
{
    if (cl->closing)
        return;
    struct write_req *w = malloc(sizeof(*w) + len);
    if (w == NULL) {
        client_close(cl);
        return;
    }
    memcpy(w->data, text, len);
    w->cl = cl;
    w->close_after = close_after;
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&cl->pipe, &buf, 1, on_written) < 0) {
        free(w);
        client_close(cl);
    }
}

/* ---- answers ---- */

/* A growing text for an answer; after a failed allocation it stays failed. */
struct text {
    char *buf;
    size_t len, cap;
    bool failed;
};

__attribute__((format(printf, 2, 3))) static void add(struct text *t, const char *fmt, ...)
{
    for (int round = 0; round < 2 && !t->failed; round++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf != NULL ? t->buf + t->len : NULL, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 > t->len + (size_t)n + 1 ? t->cap * 2 : t->len + (size_t)n + 1;
        char *grown = realloc(t->buf, cap);
        if (grown == NULL) {
            t->failed = true;
            return;
        }
        t->buf = grown;
        t->cap = cap;
    }
}

static void send_text(struct client *cl, struct text *t, bool close_after)
{
    if (t->failed)
        client_send(cl, "error: out of memory\n", 21, true);
    else
        client_send(cl, t->buf, t->len, close_after);
    free(t->buf);
}

static void show_registration(struct client *cl)
{
    struct agw_opsock *o = cl->o;
    struct agw_control_state st;
    agw_control_get_state(o->control, &st);
    char mgc[64];
    agw_config_format_address(&st.mgc, true, mgc, sizeof(mgc));
    struct text t = {0};
    add(&t, "state %s\nmgc %s\nversion %u\n", st.association, mgc, st.version);
    if (st.registered)
        add(&t, "registered_seconds %llu\n",
            (unsigned long long)((uv_now(o->loop) - st.registered_ms) / 1000));
    add(&t, "draining %s\ncontexts %u\nterminations %u\ntransactions_in_progress %u\n",
        st.draining ? "yes" : "no", o->model->n_contexts, o->model->n_terms,
        st.transactions_in_progress);
    send_text(cl, &t, true);
}

static const char *mode_name(enum h248_stream_mode mode)
{
    switch (mode) {
    case H248_MODE_SEND_ONLY:
        return "sendonly";
    case H248_MODE_RECV_ONLY:
        return "recvonly";
    case H248_MODE_SEND_RECV:
        return "sendrecv";
    case H248_MODE_INACTIVE:
        return "inactive";
    case H248_MODE_LOOPBACK:
        return "loopback";
    case H248_MODE_UNSET:
        break;
    }
    return "-";
}

static int by_id(const void *a, const void *b)
{
    uint32_t x = (*(const struct agw_context *const *)a)->id;
    uint32_t y = (*(const struct agw_context *const *)b)->id;
    return x < y ? -1 : x > y;
}

static void add_term(struct text *t, const struct agw_term *term)
{
    add(t, " %s %s", term->id, term->proto_text[0] != '\0' ? term->proto_text : "-");
    if (term->port != 0)
        add(t, " port %u", term->port);
    if (term->has_remote_addr) {
        char remote[64];
        struct sockaddr_storage ss = {0};
        memcpy(&ss, &term->remote_addr, sizeof(term->remote_addr));
        agw_config_format_address(&ss, true, remote, sizeof(remote));
        add(t, " remote %s", remote);
    }
    add(t, " %s", mode_name(term->mode));
    if (term->leg_state == AGW_LEG_STATE_FAILED)
        add(t, " failed(%s)", agw_control_cause_name((enum agw_leg_cause)term->leg_cause));
    else if (term->secure)
        add(t, " tls-%s", term->leg_state == AGW_LEG_STATE_UP ? "up" : "pending");
}

/* One line a context, by id: its terminations with protocol, ports, mode and leg state. */
static void show_contexts(struct client *cl)
{
    const struct agw_model *m = cl->o->model;
    const struct agw_context **list = calloc(m->n_contexts + 1, sizeof(*list));
    if (list == NULL) {
        client_send(cl, "error: out of memory\n", 21, true);
        return;
    }
    size_t n = 0;
    /* model.c marks deleted slots with the model's own address. */
    for (size_t i = 0; i < m->ctx_cap && n < m->n_contexts; i++)
        if (m->ctx_slots[i] != NULL && m->ctx_slots[i] != (const void *)m)
            list[n++] = m->ctx_slots[i];
    qsort(list, n, sizeof(*list), by_id);
    uint64_t now = uv_now(cl->o->loop);
    struct text t = {0};
    for (size_t i = 0; i < n; i++) {
        const struct agw_context *c = list[i];
        uint64_t added = now;
        for (unsigned k = 0; k < c->n_terms; k++)
            if (c->terms[k]->added_ms < added)
                added = c->terms[k]->added_ms;
        add(&t, "context %u worker %u age %llus terminations %u:", c->id, c->worker,
            (unsigned long long)((now - added) / 1000), c->n_terms);
        for (unsigned k = 0; k < c->n_terms; k++)
            add_term(&t, c->terms[k]);
        add(&t, "\n");
    }
    add(&t, "contexts %u terminations %u\n", m->n_contexts, m->n_terms);
    free(list);
    send_text(cl, &t, true);
}

static void drain(struct client *cl, const char *arg)
{
    unsigned long seconds = 0;
    if (arg != NULL) {
        char *end;
        errno = 0;
        seconds = strtoul(arg, &end, 10);
        if (arg[0] < '0' || arg[0] > '9' || *end != '\0' || errno != 0 || seconds == 0 ||
            seconds > DRAIN_SECONDS_MAX) {
            char text[128];
            int n = snprintf(text, sizeof(text), "error: drain takes seconds, 1..%d\n",
                             DRAIN_SECONDS_MAX);
            client_send(cl, text, (size_t)n, true);
            return;
        }
    }
    char msg[200], text[220];
    msg[0] = '\0';
    int rc = cl->o->drain(cl->o->arg, (unsigned)seconds, msg, sizeof(msg));
    int n = snprintf(text, sizeof(text), "%s%s\n", rc < 0 ? "error: " : "", msg);
    if (n < 0 || (size_t)n >= sizeof(text))
        n = (int)strlen(text);
    cl->draining = rc == 0;
    client_send(cl, text, (size_t)n, rc < 0);
}

static void run_command(struct client *cl, char *line)
{
    cl->answered = true;
    char *words[3] = {NULL, NULL, NULL};
    size_t n = 0;
    for (char *save = NULL, *w = strtok_r(line, " \t\r", &save); w != NULL;
         w = strtok_r(NULL, " \t\r", &save)) {
        if (n == 3) {
            n++;
            break;
        }
        words[n++] = w;
    }
    if (n == 2 && strcmp(words[0], "show") == 0 && strcmp(words[1], "registration") == 0) {
        show_registration(cl);
    } else if (n == 2 && strcmp(words[0], "show") == 0 && strcmp(words[1], "contexts") == 0) {
        show_contexts(cl);
    } else if ((n == 1 || n == 2) && strcmp(words[0], "drain") == 0) {
        drain(cl, words[1]);
    } else {
        static const char usage[] =
            "error: commands: show registration, show contexts, drain [SECONDS]\n";
        client_send(cl, usage, sizeof(usage) - 1, true);
    }
}

/* ---- connections ---- */

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct client *cl = handle->data;
    *buf = uv_buf_init(cl->line + cl->len, (unsigned)(sizeof(cl->line) - 1 - cl->len));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct client *cl = stream->data;
    if (nread == 0)
        return;
    if (cl->answered) {
        /* The command ran: more bytes are ignored; a drain client that leaves is closed, any
         * other one is once its answer is out. */
        if (nread < 0) {
            uv_read_stop(stream);
            if (cl->draining)
                client_close(cl);
        }
        return;
    }
    if (nread < 0) {
        /* EOF: a last line without its newline is still a command. */
        uv_read_stop(stream);
        cl->line[cl->len] = '\0';
        if (nread == UV_EOF && cl->len > 0)
            run_command(cl, cl->line);
        else
            client_close(cl);
        return;
    }
    size_t old = cl->len;
    cl->len += (size_t)nread;
    char *nl = memchr(cl->line + old, '\n', (size_t)nread);
    if (nl != NULL) {
        *nl = '\0';
        run_command(cl, cl->line);
        return;
    }
    if (cl->len >= sizeof(cl->line) - 1) {
        static const char text[] = "error: line too long\n";
        cl->answered = true;
        client_send(cl, text, sizeof(text) - 1, true);
    }
}

/* Only the daemon's own user and root may steer it, whatever the file's mode says. */
static bool peer_allowed(struct client *cl, uid_t *uid)
{
    uv_os_fd_t fd;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (uv_fileno((uv_handle_t *)&cl->pipe, &fd) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return false;
    *uid = cred.uid;
    return cred.uid == 0 || cred.uid == geteuid();
}

static void on_connection(uv_stream_t *server, int status)
{
    struct agw_opsock *o = server->data;
    if (status < 0 || o->closing)
        return;
    struct client *cl = calloc(1, sizeof(*cl));
    if (cl == NULL || uv_pipe_init(o->loop, &cl->pipe, 0) < 0) {
        free(cl);
        return;
    }
    cl->o = o;
    cl->pipe.data = cl;
    o->handles_open++;
    cl->next = o->clients.next;
    cl->prev = &o->clients;
    o->clients.next->prev = cl;
    o->clients.next = cl;
    if (uv_accept(server, (uv_stream_t *)&cl->pipe) < 0) {
        client_close(cl);
        return;
    }
    uid_t uid = (uid_t)-1;
    if (!peer_allowed(cl, &uid)) {
        if (agw_log_allow(&o->refused_log, uv_now(o->loop), 5))
            agw_log(AGW_LOG_WARN, "control socket: refused a client of uid %ld",
                    uid == (uid_t)-1 ? -1L : (long)uid);
        static const char text[] = "error: permission denied\n";
        cl->answered = true;
        client_send(cl, text, sizeof(text) - 1, true);
        return;
    }
    if (uv_read_start((uv_stream_t *)&cl->pipe, on_alloc, on_read) < 0)
        client_close(cl);
}

/* ---- life cycle ---- */

int agw_opsock_path(const char *setting, char *buf, size_t cap)
{
    int n;
    const char *dir;
    if (strcmp(setting, "auto") != 0) {
        n = snprintf(buf, cap, "%s", setting);
    } else if ((dir = getenv("RUNTIME_DIRECTORY")) != NULL && dir[0] != '\0') {
        /* systemd's RuntimeDirectory=; with several directories, the first. */
        n = snprintf(buf, cap, "%.*s/control.sock", (int)strcspn(dir, ":"), dir);
    } else if ((dir = getenv("XDG_RUNTIME_DIR")) != NULL && dir[0] != '\0') {
        n = snprintf(buf, cap, "%s/ims-agw.sock", dir);
    } else {
        n = snprintf(buf, cap, "/tmp/ims-agw-%lu.sock", (unsigned long)geteuid());
    }
    if (n < 0 || (size_t)n >= cap || (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        if (cap > 0)
            buf[0] = '\0';
        return -ENAMETOOLONG;
    }
    return 0;
}

/* What is at path already: nothing, or a stale socket of ours (removed); a live socket or any
 * other file is left alone. */
static int clear_path(const char *path, const struct sockaddr_un *sa)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode)) {
        agw_log(AGW_LOG_ERROR, "control socket: %s exists and is not a socket: left alone", path);
        return -EEXIST;
    }
    if (st.st_uid != geteuid()) {
        agw_log(AGW_LOG_ERROR, "control socket: %s belongs to uid %lu: left alone", path,
                (unsigned long)st.st_uid);
        return -EEXIST;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
    int e = errno;
    close(fd);
    if (rc == 0) {
        agw_log(AGW_LOG_ERROR, "control socket: %s is in use by a running ims-agw", path);
        return -EADDRINUSE;
    }
    if (e != ECONNREFUSED)
        return -e;
    return unlink(path) < 0 ? -errno : 0;
}

int agw_opsock_start(struct agw_opsock **out, uv_loop_t *loop, const char *path,
                     const struct agw_control *control, const struct agw_model *model,
                     agw_opsock_drain_cb drain_cb, void *arg)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path) || path[0] == '\0')
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int rc = clear_path(path, &sa);
    if (rc < 0) {
        if (rc != -EEXIST && rc != -EADDRINUSE)
            agw_log(AGW_LOG_ERROR, "control socket: %s: %s", path, strerror(-rc));
        return rc;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    /* Linux gives the new node the socket's own mode (less the umask): owner only from the
     * start, no window with a wider one. The chmod is for the systems that do not. */
    if (fchmod(fd, 0600) < 0 || bind(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        chmod(path, 0600) < 0) {
        rc = -errno;
        agw_log(AGW_LOG_ERROR, "control socket: cannot bind %s: %s", path, strerror(-rc));
        close(fd);
        return rc;
    }
    struct agw_opsock *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        close(fd);
        unlink(path);
        return -ENOMEM;
    }
    o->loop = loop;
    o->control = control;
    o->model = model;
    o->drain = drain_cb;
    o->arg = arg;
    memcpy(o->path, path, strlen(path) + 1);
    o->clients.next = o->clients.prev = &o->clients;
    uv_pipe_init(loop, &o->listener, 0);
    o->listener.data = o;
    o->handles_open = 1;
    rc = uv_pipe_open(&o->listener, fd);
    bool adopted = rc == 0; /* the handle closes fd from now on */
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&o->listener, BACKLOG, on_connection);
    if (rc < 0) {
        agw_log(AGW_LOG_ERROR, "control socket: cannot listen on %s: %s", path, uv_strerror(rc));
        if (!adopted)
            close(fd);
        unlink(path);
        o->closing = true;
        uv_close((uv_handle_t *)&o->listener, on_listener_closed);
        return rc;
    }
    agw_log(AGW_LOG_INFO, "control socket: %s", path);
    *out = o;
    return 0;
}

void agw_opsock_broadcast(struct agw_opsock *o, const char *line)
{
    if (o == NULL)
        return;
    size_t len = strlen(line);
    for (struct client *cl = o->clients.next; cl != &o->clients; cl = cl->next) {
        if (!cl->draining)
            continue;
        client_send(cl, line, len, false);
        client_send(cl, "\n", 1, false);
    }
}

void agw_opsock_close(struct agw_opsock *o)
{
    if (o == NULL || o->closing)
        return;
    o->closing = true;
    unlink(o->path);
    while (o->clients.next != &o->clients)
        client_close(o->clients.next);
    uv_close((uv_handle_t *)&o->listener, on_listener_closed);
}
