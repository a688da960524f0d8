/* Check suite: the real ims-agw with its Iq link through a lossy proxy (loss, duplicates,
 * reordering, delay both ways), an MGC that restarts, and an MGC that falls silent. */
#include "h248/h248.h"
#include "tests/harness.h"
#include "tests/lossy_proxy.h"
#include "tools/iq_client.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define N_TRANSACTIONS 100
#define WINDOW 8

static pid_t child = -1;
static char log_path[64];
static uint16_t iq_port, mgc_port, mgc2_port, gw_side, mgc_side, realm_base;
static struct iq_client *mgc;
static struct lossy_proxy *proxy;

/* The MGC retransmits as a real one does, long enough to get through the proxy's losses. */
static const struct iq_client_options mgc_options = {
    .retransmit_ms = 100, .retransmit_max_ms = 400, .max_tries = 15, .pending_timeout_ms = 1000};

/* ---- What the proxy saw: every reply the gateway sent, per transaction id ---- */

#define SEEN_MAX 1024

static struct {
    pthread_mutex_t lock;
    struct {
        uint32_t tid;
        char *text;
    } replies[SEEN_MAX];
    unsigned n_replies;
    unsigned compared;   /* reply copies checked against the first one */
    unsigned mismatched; /* copies that differed */
    unsigned notifies;   /* Notify copies sent by the gateway */
} seen = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void seen_reset(void)
{
    pthread_mutex_lock(&seen.lock);
    for (unsigned i = 0; i < seen.n_replies; i++)
        free(seen.replies[i].text);
    seen.n_replies = seen.compared = seen.mismatched = seen.notifies = 0;
    pthread_mutex_unlock(&seen.lock);
}

/* Each reply transaction is encoded on its own: batching may put it with others. */
static void record_reply(struct h248_message *msg, struct h248_transaction *t)
{
    struct h248_transaction *next = t->next, *list = msg->transactions;
    t->next = NULL;
    msg->transactions = t;
    char *text = NULL;
    size_t len;
    int rc = iq_format_message(msg, H248_STYLE_COMPACT, &text, &len);
    msg->transactions = list;
    t->next = next;
    if (rc < 0)
        return;
    for (unsigned i = 0; i < seen.n_replies; i++) {
        if (seen.replies[i].tid != t->id)
            continue;
        seen.compared++;
        if (strcmp(seen.replies[i].text, text) != 0) {
            seen.mismatched++;
            fprintf(stderr, "reply %u changed:\n%s\n%s\n", t->id, seen.replies[i].text, text);
        }
        free(text);
        return;
    }
    if (seen.n_replies < SEEN_MAX) {
        seen.replies[seen.n_replies].tid = t->id;
        seen.replies[seen.n_replies++].text = text;
    } else {
        free(text);
    }
}

static void observe(void *arg, enum lossy_dir dir, const char *data, size_t len)
{
    (void)arg;
    struct h248_message *msg;
    if (dir != LOSSY_TO_MGC || h248_parse_message(data, len, NULL, &msg, NULL) != 0)
        return;
    pthread_mutex_lock(&seen.lock);
    for (struct h248_transaction *t = msg->transactions; t != NULL; t = t->next) {
        if (t->kind == H248_TRANS_REPLY)
            record_reply(msg, t);
        else if (t->kind == H248_TRANS_REQUEST && t->actions != NULL &&
                 t->actions->commands != NULL && t->actions->commands->kind == H248_CMD_NOTIFY)
            seen.notifies++;
    }
    pthread_mutex_unlock(&seen.lock);
    h248_message_free(msg);
}

/* ---- The daemon, its MGC(s) and the proxy between them ---- */

static uint16_t distinct_port(const uint16_t *taken, size_t n)
{
    for (;;) {
        uint16_t p = harness_free_port(SOCK_DGRAM);
        bool clash = false;
        for (size_t i = 0; i < n; i++)
            clash = clash || taken[i] == p;
        if (!clash)
            return p;
    }
}

/* The daemon's MGC list is the proxy, then (with second) an MGC it reaches directly. */
static void start(bool second, const char *const *extra)
{
    uint16_t ports[5];
    for (size_t i = 0; i < 5; i++)
        ports[i] = distinct_port(ports, i);
    iq_port = ports[0];
    mgc_port = ports[1];
    mgc2_port = ports[2];
    gw_side = ports[3];
    mgc_side = ports[4];
    /* Below the ranges of the other daemon suites (16000 and up), and apart per run. */
    realm_base = (uint16_t)(12000 + (getpid() % 30) * 130);
    seen_reset();
    ck_assert_int_eq(
        lossy_proxy_start(&proxy, gw_side, iq_port, mgc_side, mgc_port, 0x5eed1e55u, observe, NULL),
        0);
    char iq[32], m1[32], m2[32], access[64], core[64];
    snprintf(iq, sizeof(iq), "127.0.0.1:%u", iq_port);
    snprintf(m1, sizeof(m1), "127.0.0.1:%u", gw_side);
    snprintf(m2, sizeof(m2), "127.0.0.1:%u", mgc2_port);
    snprintf(access, sizeof(access), "access,127.0.0.1,%u-%u", realm_base, realm_base + 119);
    snprintf(core, sizeof(core), "core,127.0.0.1,%u-%u", realm_base + 120, realm_base + 129);
    const char *argv[40] = {harness_agw_bin(),
                            "--iq-listen",
                            iq,
                            "--mgc",
                            m1,
                            "--workers",
                            "2",
                            "--realm",
                            access,
                            "--realm",
                            core,
                            "--max-contexts",
                            "200",
                            "--mg-initial-rto-ms",
                            "100",
                            "--log-level",
                            "debug"};
    size_t n = 17;
    if (second) {
        argv[n++] = "--mgc";
        argv[n++] = m2;
    }
    for (; extra != NULL && *extra != NULL && n < 38; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    snprintf(log_path, sizeof(log_path), "/tmp/test_iq_faults.%d.log", (int)getpid());
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, STDERR_FILENO);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    char local[32], gw[32];
    snprintf(local, sizeof(local), "127.0.0.1:%u", mgc_port);
    snprintf(gw, sizeof(gw), "127.0.0.1:%u", mgc_side);
    ck_assert_int_eq(iq_client_open(local, gw, NULL, &mgc_options, &mgc), 0);
}

static void set_faults(const struct lossy_faults *f)
{
    lossy_proxy_set_faults(proxy, LOSSY_TO_MGC, f);
    lossy_proxy_set_faults(proxy, LOSSY_TO_GATEWAY, f);
}

/* The log, read whole (static buffer). */
static const char *read_log(void)
{
    static char buf[1 << 22];
    FILE *f = fopen(log_path, "r");
    size_t n = f != NULL ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f != NULL)
        fclose(f);
    buf[n] = '\0';
    return buf;
}

static unsigned count_in_log(const char *needle)
{
    unsigned n = 0;
    for (const char *p = read_log(); (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* Answers what c receives (a lost registration reply means a new ServiceChange to answer)
 * until the gateway logged its registration count times. */
static void wait_registered(struct iq_client *c, unsigned count)
{
    for (int i = 0; i < 500 && count_in_log("registered with MGC") < count; i++) {
        struct iq_event ev;
        if (iq_client_recv(c, 20, &ev) == 0)
            iq_event_release(&ev);
    }
    ck_assert_msg(count_in_log("registered with MGC") >= count, "not registered %u times (see %s)",
                  count, log_path);
}

static void check_service_change(const struct iq_event *ev, enum h248_sc_method method,
                                 const char *reason)
{
    const struct h248_descriptor *d = ev->msg->transactions->actions->commands->descriptors;
    ck_assert_int_eq(d->kind, H248_DESC_SERVICE_CHANGE);
    ck_assert_int_eq(d->u.service_change.method, method);
    ck_assert_msg(d->u.service_change.reason.text.len >= 3 &&
                      memcmp(d->u.service_change.reason.text.ptr, reason, 3) == 0,
                  "reason %.*s, not %s", (int)d->u.service_change.reason.text.len,
                  d->u.service_change.reason.text.ptr, reason);
}

/* Takes the registration ServiceChange, answers it, checks its method, and waits until the
 * gateway took an answer (the `registered`-th registration of its life). */
static void take_registration(struct iq_client *c, enum h248_sc_method method, const char *reason,
                              unsigned registered)
{
    struct iq_event ev;
    ck_assert_int_eq(iq_client_wait_registration(c, harness_ms(10000), NULL, NULL, &ev), 0);
    check_service_change(&ev, method, reason);
    iq_event_release(&ev);
    wait_registered(c, registered);
}

/* SIGTERM, exit status 0 (under ASan: no leak either), and the counters line of the log. */
static const char *stop(void)
{
    static char counters[512];
    counters[0] = '\0';
    if (child > 0) {
        kill(child, SIGTERM);
        /* The Forced ServiceChange crosses the proxy: keep answering it. */
        int status = -1;
        for (int i = 0; i < 200 && status == -1; i++) {
            struct iq_event ev;
            if (mgc != NULL && iq_client_recv(mgc, 50, &ev) == 0)
                iq_event_release(&ev);
            status = harness_wait_exit(child, 10);
        }
        if (status == -1) {
            kill(child, SIGKILL);
            waitpid(child, &status, 0);
            ck_abort_msg("ims-agw did not stop on SIGTERM");
        }
        child = -1;
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "ims-agw exit status %d (see %s)", status, log_path);
        const char *line = strstr(read_log(), "counters: ");
        if (line != NULL)
            snprintf(counters, sizeof(counters), "%.*s", (int)strcspn(line, "\n"), line);
    }
    iq_client_close(mgc);
    mgc = NULL;
    lossy_proxy_stop(proxy);
    proxy = NULL;
    return counters;
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
    lossy_proxy_stop(proxy);
    proxy = NULL;
    seen_reset();
    unlink(log_path);
}

/* ---- Pipelined transactions ---- */

#define ACCESS_ADD                                                                                 \
    "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=message $ TCP/TLS/MSRP "   \
    "*\r\na=fingerprint:$\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message 49152 TCP/TLS/MSRP "       \
    "*\r\na=setup:active\r\na=fingerprint:sha-256 "                                                \
    "4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:3C:11:B5:34:22:B0:12:33:44:55:"   \
    "66:77\r\n}}}}}"

struct outcome {
    unsigned done; /* replies taken, or given up on after a Pending (then in lost[]) */
    unsigned n;    /* replies recorded below, in order of arrival */
    uint32_t context[N_TRANSACTIONS];
    unsigned term_number[N_TRANSACTIONS]; /* n of ip/access/n */
    bool with_statistics[N_TRANSACTIONS];
    uint32_t sent_tid[N_TRANSACTIONS]; /* the id each text went out with */
    uint32_t lost[N_TRANSACTIONS];     /* final reply lost after a Pending */
    unsigned n_lost, recovered;
    char failure[256]; /* the first one */
};

static const struct h248_error_desc *first_error(const struct h248_transaction *t)
{
    if (t->error != NULL)
        return t->error;
    for (const struct h248_action *a = t->actions; a != NULL; a = a->next) {
        if (a->error != NULL)
            return a->error;
        for (const struct h248_command *c = a->commands; c != NULL; c = c->next)
            for (const struct h248_descriptor *d = c->descriptors; d != NULL; d = d->next)
                if (d->kind == H248_DESC_ERROR)
                    return &d->u.error;
    }
    return NULL;
}

/* Records a reply: its context, termination number and statistics, or why it failed. */
static void collect(struct outcome *o, const struct h248_transaction *t)
{
    const struct h248_error_desc *e = first_error(t);
    const struct h248_action *a = t->actions;
    if ((e != NULL || a == NULL || a->commands == NULL) && o->failure[0] == '\0')
        snprintf(o->failure, sizeof(o->failure), "transaction %u: error %u %.*s", t->id,
                 e != NULL ? e->code : 0, e != NULL ? (int)e->text.len : 0,
                 e != NULL ? e->text.ptr : "");
    if (o->n >= N_TRANSACTIONS || a == NULL || a->commands == NULL)
        return;
    struct h248_str id = a->commands->terminations->text;
    o->context[o->n] = a->context.id;
    if (id.len > 10 && memcmp(id.ptr, "ip/access/", 10) == 0)
        o->term_number[o->n] = (unsigned)strtoul(id.ptr + 10, NULL, 10);
    for (const struct h248_descriptor *d = a->commands->descriptors; d != NULL; d = d->next)
        if (d->kind == H248_DESC_STATISTICS)
            o->with_statistics[o->n] = true;
    o->n++;
}

static void on_reply(void *arg, const struct iq_reply *r)
{
    struct outcome *o = arg;
    o->done++;
    if (r->status == 0 && r->trans != NULL) {
        collect(o, r->trans);
    } else if (r->status == -ETIMEDOUT && r->pendings > 0) {
        /* The client stops retransmitting after a Pending: its final reply was lost. */
        o->lost[o->n_lost++] = r->tid;
    } else if (o->failure[0] == '\0') {
        snprintf(o->failure, sizeof(o->failure), "transaction %u: status %d after %u copies",
                 r->tid, r->status, r->sends);
    }
}

/* Sends the request again with its own id, as an MGC does once its pending timer ran out, until
 * the gateway's stored reply gets through. */
static void recover(struct outcome *o, uint32_t tid, const char *text)
{
    char raw[1024];
    int len = snprintf(raw, sizeof(raw), "!/3 [127.0.0.1]:%u T=%u{%s}", mgc_port, tid, text);
    for (int tries = 0; tries < 30; tries++) {
        ck_assert_int_eq(iq_client_send_raw(mgc, raw, (size_t)len), 0);
        struct iq_event ev;
        while (iq_client_recv(mgc, 200, &ev) == 0) {
            const struct h248_transaction *t = ev.msg != NULL ? ev.msg->transactions : NULL;
            for (; t != NULL; t = t->next) {
                if (t->kind == H248_TRANS_REPLY && t->id == tid) {
                    collect(o, t);
                    o->recovered++;
                    iq_event_release(&ev);
                    return;
                }
            }
            iq_event_release(&ev);
        }
    }
    ck_abort_msg("transaction %u: no reply to 30 more copies", tid);
}

/* Sends texts[i] for i < n with at most WINDOW in flight; every reply goes to o. */
static void run_pipelined(const char *const *texts, unsigned n, struct outcome *o)
{
    memset(o, 0, sizeof(*o));
    unsigned sent = 0;
    for (int rounds = 0; o->done < n && rounds < 10000; rounds++) {
        while (sent < n && sent - o->done < WINDOW) {
            struct h248_message *msg;
            struct h248_parse_error err;
            ck_assert_int_eq(
                iq_client_parse_text(mgc, texts[sent], strlen(texts[sent]), &msg, &err), 0);
            ck_assert_int_eq(iq_client_send_request(mgc, msg, 0, &o->sent_tid[sent]), 0);
            h248_message_free(msg);
            sent++;
        }
        ck_assert_int_ge(iq_client_poll_replies(mgc, 1000, on_reply, o), 0);
    }
    ck_assert_uint_eq(o->done, n);
    for (unsigned i = 0; i < o->n_lost; i++)
        for (unsigned k = 0; k < n; k++)
            if (o->sent_tid[k] == o->lost[i])
                recover(o, o->lost[i], texts[k]);
    ck_assert_uint_eq(o->n, n);
}

/* Values 1..n, each once. */
static void assert_permutation(const char *what, const unsigned *v, unsigned n)
{
    bool hit[N_TRANSACTIONS + 1] = {false};
    for (unsigned i = 0; i < n; i++) {
        ck_assert_msg(v[i] >= 1 && v[i] <= n, "%s %u outside 1..%u", what, v[i], n);
        ck_assert_msg(!hit[v[i]], "%s %u handed out twice", what, v[i]);
        hit[v[i]] = true;
    }
}

static const struct lossy_faults rough = {
    .loss_pct = 15, .dup_pct = 10, .reorder_pct = 10, .delay_max_ms = 20, .reorder_ms = 60};

START_TEST(lossy_link_executes_each_transaction_once)
{
    static const char *const extra[] = {"--mg-max-retransmissions", "10", NULL};
    start(false, extra);
    set_faults(&rough);
    take_registration(mgc, H248_SC_RESTART, "901", 1);

    static const char *adds[N_TRANSACTIONS];
    for (unsigned i = 0; i < N_TRANSACTIONS; i++)
        adds[i] = ACCESS_ADD;
    struct outcome o;
    run_pipelined(adds, N_TRANSACTIONS, &o);
    ck_assert_msg(o.failure[0] == '\0', "%s", o.failure);
    /* Run once each: contexts and terminations numbered 1..N without a gap or a repeat. */
    unsigned contexts[N_TRANSACTIONS];
    for (unsigned i = 0; i < N_TRANSACTIONS; i++)
        contexts[i] = o.context[i];
    assert_permutation("context", contexts, N_TRANSACTIONS);
    assert_permutation("ip/access/", o.term_number, N_TRANSACTIONS);

    static char subtract_text[N_TRANSACTIONS][48];
    static const char *subtracts[N_TRANSACTIONS];
    for (unsigned i = 0; i < N_TRANSACTIONS; i++) {
        snprintf(subtract_text[i], sizeof(subtract_text[i]), "C=%u{S=*}", contexts[i]);
        subtracts[i] = subtract_text[i];
    }
    run_pipelined(subtracts, N_TRANSACTIONS, &o);
    /* A second run of a Subtract would have answered 411 (unknown context). */
    ck_assert_msg(o.failure[0] == '\0', "%s", o.failure);
    for (unsigned i = 0; i < N_TRANSACTIONS; i++)
        ck_assert_msg(o.with_statistics[i], "Subtract reply %u without statistics", i);

    struct lossy_proxy_stats up, down;
    lossy_proxy_get_stats(proxy, LOSSY_TO_GATEWAY, &up);
    lossy_proxy_get_stats(proxy, LOSSY_TO_MGC, &down);
    ck_assert_msg(up.dropped > 0 && up.duplicated > 0 && up.reordered > 0 && down.dropped > 0 &&
                      down.duplicated > 0 && down.reordered > 0,
                  "the proxy did not disturb both ways");
    pthread_mutex_lock(&seen.lock);
    unsigned compared = seen.compared, mismatched = seen.mismatched;
    pthread_mutex_unlock(&seen.lock);
    ck_assert_uint_eq(mismatched, 0);
    ck_assert_msg(compared > 0, "no reply was sent twice: the test proved nothing");

    char want[64];
    snprintf(want, sizeof(want), "counters: transactions %u, ", 2 * N_TRANSACTIONS);
    const char *counters = stop();
    ck_assert_msg(strstr(counters, want) != NULL, "%s (want %s)", counters, want);
    ck_assert_msg(harness_number_after(counters, "duplicates ") > 0, "%s", counters);
}
END_TEST

START_TEST(notify_answered_over_lossy_link)
{
    static const char *const extra[] = {"--mg-max-retransmissions", "10", NULL};
    start(false, extra);
    set_faults(&rough);
    take_registration(mgc, H248_SC_RESTART, "901", 1);
    unsigned code;
    const char *r = harness_request(mgc, "C=-{MF=ROOT{E=9{it/ito{mit=15}}}}", &code);
    ck_assert_msg(code == 0, "%s", r);
    /* 150 ms without a word from us: a Notify, retransmitted until our answer gets through. */
    unsigned notifies = 0;
    for (int i = 0; i < 30; i++) {
        struct iq_event ev;
        if (iq_client_recv(mgc, 100, &ev) != 0)
            continue;
        if (ev.kind == IQ_EVENT_REQUEST &&
            ev.msg->transactions->actions->commands->kind == H248_CMD_NOTIFY) {
            ck_assert_uint_eq(
                ev.msg->transactions->actions->commands->descriptors->u.observed.request_id, 9);
            notifies++;
        }
        iq_event_release(&ev);
    }
    ck_assert_msg(notifies >= 5, "%u Notifies in 3 s", notifies);
    /* Every Notify got its answer: the gateway never gave up on us. */
    ck_assert_msg(!harness_log_contains(log_path, " lost ("), "see %s", log_path);
    const char *counters = stop();
    ck_assert_msg(harness_number_after(counters, "retransmissions ") > 0, "%s", counters);
}
END_TEST

/* ---- A relayed TCP session, to show the data plane does not depend on the MGC ---- */

static int tcp_listen(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fd, 4), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static int tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static int tcp_accept(int listen_fd, int timeout_ms)
{
    struct pollfd p = {.fd = listen_fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) != 1)
        return -1;
    return accept(listen_fd, NULL, NULL);
}

/* Writes len bytes of a pattern on from and checks they all arrive on to. */
static void relay_round(int from, int to, unsigned round)
{
    char out[1000], in[sizeof(out)];
    for (size_t i = 0; i < sizeof(out); i++)
        out[i] = (char)(round * 31 + i);
    ck_assert_int_eq(write(from, out, sizeof(out)), (ssize_t)sizeof(out));
    size_t got = 0;
    while (got < sizeof(in)) {
        struct pollfd p = {.fd = to, .events = POLLIN};
        ck_assert_msg(poll(&p, 1, 3000) == 1, "round %u: %zu of %zu bytes relayed", round, got,
                      sizeof(in));
        ssize_t n = read(to, in + got, sizeof(in) - got);
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
    }
    ck_assert_int_eq(memcmp(in, out, sizeof(in)), 0);
}

struct session {
    unsigned context;
    int core_listen, ue, core;
};

/* A plain TCP pass-through: the core leg connects out, the access leg listens for the UE. */
static void session_open(struct session *s)
{
    uint16_t core_port;
    s->core_listen = tcp_listen(&core_port);
    char text[512];
    unsigned code;
    snprintf(text, sizeof(text),
             "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
             "TCP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=application %u TCP *\r\n"
             "a=setup:passive\r\n}}}}}",
             core_port);
    const char *r = harness_request(mgc, text, &code);
    ck_assert_msg(code == 0, "%s", r);
    s->context = (unsigned)harness_number_after(r, "C=");
    snprintf(text, sizeof(text),
             "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
             "TCP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=application 9 TCP *\r\n"
             "a=setup:active\r\n}}}}}",
             s->context);
    r = harness_request(mgc, text, &code);
    ck_assert_msg(code == 0, "%s", r);
    uint16_t port = (uint16_t)harness_number_after(r, "m=application ");
    s->ue = tcp_connect(port);
    s->core = tcp_accept(s->core_listen, 3000);
    ck_assert_msg(s->core >= 0, "the gateway did not connect to the core (see %s)", log_path);
    relay_round(s->ue, s->core, 0);
    relay_round(s->core, s->ue, 1);
}

static void session_close(struct session *s)
{
    close(s->ue);
    close(s->core);
    close(s->core_listen);
}

/* Media both ways every 100 ms for ms, while the MGC does not answer. */
static void relay_for(struct session *s, int ms, unsigned *round)
{
    for (int t = 0; t < ms; t += 100) {
        relay_round(s->ue, s->core, (*round)++);
        relay_round(s->core, s->ue, (*round)++);
        harness_sleep_ms(100);
    }
}

START_TEST(mgc_restart_gateway_reregisters_media_flows)
{
    static const char *const extra[] = {"--mg-max-retransmissions", "2", "--mg-max-rto-ms", "200",
                                        NULL};
    start(false, extra);
    take_registration(mgc, H248_SC_RESTART, "901", 1);
    struct session s;
    session_open(&s);
    unsigned code;
    const char *r = harness_request(mgc, "C=-{MF=ROOT{E=9{it/ito{mit=20}}}}", &code);
    ck_assert_msg(code == 0, "%s", r);

    /* The MGC goes down: its port is closed; the gateway's Notify is never answered. */
    iq_client_close(mgc);
    mgc = NULL;
    unsigned round = 2;
    relay_for(&s, 2500, &round);
    ck_assert_msg(harness_log_contains(log_path, " lost (no reply)"), "see %s", log_path);
    ck_assert_msg(harness_log_contains(log_path, "(Disconnected)"), "see %s", log_path);

    /* It comes back on the same port, knowing nothing: the gateway registers again. */
    char local[32], gw[32];
    snprintf(local, sizeof(local), "127.0.0.1:%u", mgc_port);
    snprintf(gw, sizeof(gw), "127.0.0.1:%u", mgc_side);
    ck_assert_int_eq(iq_client_open(local, gw, NULL, &mgc_options, &mgc), 0);
    take_registration(mgc, H248_SC_DISCONNECTED, "900", 2);
    relay_round(s.ue, s.core, round++);

    /* The session outlived the outage, with every byte counted. */
    char text[64];
    snprintf(text, sizeof(text), "C=%u{AV=*{AT{}}}", s.context);
    r = harness_request(mgc, text, &code);
    ck_assert_msg(code == 0 && strstr(r, "ip/access/") != NULL && strstr(r, "ip/core/") != NULL,
                  "%s", r);
    snprintf(text, sizeof(text), "C=%u{S=*}", s.context);
    r = harness_request(mgc, text, &code);
    ck_assert_msg(code == 0, "%s", r);
    unsigned long octets = harness_number_after(strstr(r, "ip/access/"), "nt/or=");
    ck_assert_msg(octets >= 1000ul * (round / 2), "%lu octets from the UE: %s", octets, r);
    session_close(&s);
    stop();
}
END_TEST

START_TEST(silent_mgc_fails_over_to_the_next)
{
    static const char *const extra[] = {"--mg-max-retransmissions", "2", "--mg-max-rto-ms", "200",
                                        NULL};
    start(true, extra);
    struct iq_client *second;
    char local2[32];
    snprintf(local2, sizeof(local2), "127.0.0.1:%u", mgc2_port);
    ck_assert_int_eq(iq_client_open(local2, NULL, NULL, &mgc_options, &second), 0);
    take_registration(mgc, H248_SC_RESTART, "901", 1);
    struct session s;
    session_open(&s);
    unsigned code;
    const char *r = harness_request(mgc, "C=-{MF=ROOT{E=9{it/ito{mit=20}}}}", &code);
    ck_assert_msg(code == 0, "%s", r);

    /* The first MGC falls silent (its socket stays open): the gateway moves to the second. */
    struct lossy_faults silent = {.blackout = true};
    set_faults(&silent);
    unsigned round = 2;
    bool moved = false;
    for (int i = 0; i < 50 && !moved; i++) {
        relay_round(s.ue, s.core, round++);
        relay_round(s.core, s.ue, round++);
        struct iq_event ev;
        if (iq_client_recv(second, 100, &ev) != 0)
            continue;
        if (ev.kind == IQ_EVENT_REQUEST && iq_is_registration(ev.msg)) {
            check_service_change(&ev, H248_SC_DISCONNECTED, "900");
            moved = true;
        }
        iq_event_release(&ev);
    }
    ck_assert_msg(moved, "no ServiceChange reached the second MGC (see %s)", log_path);
    wait_registered(second, 2);
    relay_for(&s, 300, &round);
    pthread_mutex_lock(&seen.lock);
    unsigned notifies = seen.notifies;
    pthread_mutex_unlock(&seen.lock);
    ck_assert_msg(notifies >= 3, "%u copies of the Notify before giving up", notifies);

    /* The second MGC finds the session as it was. */
    char text[64];
    snprintf(text, sizeof(text), "C=%u{AV=*{AT{}}}", s.context);
    r = harness_request(second, text, &code);
    ck_assert_msg(code == 0 && strstr(r, "ip/access/") != NULL, "%s", r);
    snprintf(text, sizeof(text), "C=%u{S=*}", s.context);
    r = harness_request(second, text, &code);
    ck_assert_msg(code == 0, "%s", r);
    session_close(&s);
    /* The Forced ServiceChange goes to the second MGC: it answers while we wait. */
    iq_client_close(mgc);
    mgc = second;
    stop();
}
END_TEST

/* ---- Found by fuzz_iq_commands: a socket handed over twice in one transaction ---- */

/* Whether a socket of type may bind 127.0.0.1:port now (nothing else holds it). */
static bool bindable(int type, uint16_t port)
{
    int fd = socket(AF_INET, type, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static const char *request_ok(const char *text)
{
    unsigned code;
    const char *r = harness_request(mgc, text, &code);
    ck_assert_msg(code == 0, "%s: %s", text, r);
    return r;
}

#define CORE_MSRP_ADD                                                                              \
    "C=${A=${M{ST=1{O{ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=message $ TCP/MSRP *\r\n}}}}}"

/* A Move into a context on another worker, and in the same action the context is pinned to the
 * data-channel worker: two DETACHes of one termination, on two workers, both writing its fd. */
START_TEST(move_datachannel_term_across_workers_keeps_then_frees_its_port)
{
    start(false, NULL);
    take_registration(mgc, H248_SC_RESTART, "901", 1);
    const char *r = request_ok(
        "C=${A=${M{ST=1{O{ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
        "UDP/DTLS/SCTP webrtc-datachannel\r\na=sctp-port:5000\r\na=fingerprint:$\r\n}}}}}");
    uint16_t port = (uint16_t)harness_number_after(r, "m=application ");
    unsigned first = (unsigned)harness_number_after(r, "C=");
    r = request_ok(CORE_MSRP_ADD);
    unsigned second = (unsigned)harness_number_after(r, "C=");
    ck_assert_uint_ne(first, second);
    char text[96];
    snprintf(text, sizeof(text), "C=%u{MV=ip/access/1}", second);
    request_ok(text);
    harness_sleep_ms(200);
    /* Still the gateway's: the data channel's socket followed its termination. */
    ck_assert_msg(!bindable(SOCK_DGRAM, port), "UDP port %u was let go by the Move", port);
    snprintf(text, sizeof(text), "C=%u{S=*}", second);
    request_ok(text);
    harness_sleep_ms(200);
    ck_assert_msg(bindable(SOCK_DGRAM, port), "UDP port %u still bound after Subtract", port);
    stop();
}
END_TEST

/* Two Moves of one termination in one transaction, through three workers' contexts. */
START_TEST(two_moves_in_one_transaction_free_the_port)
{
    static const char *const extra[] = {"--workers", "3", NULL};
    start(false, extra);
    take_registration(mgc, H248_SC_RESTART, "901", 1);
    const char *r = request_ok(
        "C=${A=${M{ST=1{O{ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=message $ TCP/MSRP "
        "*\r\n}}}}}");
    uint16_t port = (uint16_t)harness_number_after(r, "m=message ");
    request_ok(CORE_MSRP_ADD);
    request_ok(CORE_MSRP_ADD);
    request_ok("C=2{MV=ip/access/1},C=3{MV=ip/access/1}");
    harness_sleep_ms(200);
    ck_assert_msg(!bindable(SOCK_STREAM, port), "TCP port %u was let go by the Moves", port);
    request_ok("C=3{S=*}");
    request_ok("C=2{S=*}");
    harness_sleep_ms(200);
    ck_assert_msg(bindable(SOCK_STREAM, port), "TCP port %u still bound after Subtract", port);
    stop();
}
END_TEST

/* ---- Found by the lossy-link test: a late copy of an executed request ---- */

/* Sends text from fd to the gateway's side of the proxy. */
static void raw_send(int fd, const char *text)
{
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons(mgc_side),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ssize_t n = sendto(fd, text, strlen(text), 0, (struct sockaddr *)&to, sizeof(to));
    ck_assert_int_eq(n, (ssize_t)strlen(text));
}

/* The next datagram on fd that holds needle, NUL-terminated in buf; false after ms. */
static bool raw_wait(int fd, const char *needle, char *buf, size_t cap, int ms)
{
    for (int waited = 0; waited < ms; waited += 50) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) != 1)
            continue;
        ssize_t n = recv(fd, buf, cap - 1, 0);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        if (strstr(buf, needle) != NULL)
            return true;
    }
    return false;
}

/* The MGC's reply to an Add was lost, the gateway lost the MGC meanwhile (its Notify went
 * unanswered) and registers again; the MGC's retransmission of the Add must get the stored
 * reply, not 505: on 505 the MGC takes the Add as failed while the context exists. */
START_TEST(duplicate_after_mgc_loss_gets_the_stored_reply)
{
    static const char *const extra[] = {"--mg-max-retransmissions", "2", "--mg-max-rto-ms", "200",
                                        NULL};
    start(false, extra);
    take_registration(mgc, H248_SC_RESTART, "901", 1);
    /* From here the MGC is a plain socket on its port: it answers nothing by itself. */
    iq_client_close(mgc);
    mgc = NULL;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(mgc_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    char text[1024], first[2048], again[2048];
    snprintf(text, sizeof(text), "!/3 [127.0.0.1]:%u T=776{C=-{MF=ROOT{E=9{it/ito{mit=20}}}}}",
             mgc_port);
    raw_send(fd, text);
    ck_assert(raw_wait(fd, "P=776", first, sizeof(first), 3000));
    snprintf(text, sizeof(text), "!/3 [127.0.0.1]:%u T=777{%s}", mgc_port, ACCESS_ADD);
    raw_send(fd, text);
    ck_assert(raw_wait(fd, "P=777", first, sizeof(first), 3000));
    ck_assert_msg(strstr(first, "ER=") == NULL, "%s", first);
    for (int i = 0; i < harness_ms(100) && !harness_log_contains(log_path, " lost (no reply)"); i++)
        harness_sleep_ms(50);
    ck_assert_msg(harness_log_contains(log_path, " lost (no reply)"), "see %s", log_path);
    raw_send(fd, text);
    ck_assert_msg(raw_wait(fd, "P=777", again, sizeof(again), 3000), "no answer to the copy");
    ck_assert_str_eq(again, first);
    close(fd);
}
END_TEST

static Suite *faults_suite(void)
{
    Suite *s = suite_create("iq_faults");
    TCase *tc = tcase_create("control_link");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, lossy_link_executes_each_transaction_once);
    tcase_add_test(tc, notify_answered_over_lossy_link);
    tcase_add_test(tc, mgc_restart_gateway_reregisters_media_flows);
    tcase_add_test(tc, silent_mgc_fails_over_to_the_next);
    suite_add_tcase(s, tc);
    TCase *found = tcase_create("fuzz_findings");
    tcase_add_checked_fixture(found, NULL, teardown);
    tcase_set_timeout(found, 60);
    tcase_add_test(found, move_datachannel_term_across_workers_keeps_then_frees_its_port);
    tcase_add_test(found, two_moves_in_one_transaction_free_the_port);
    tcase_add_test(found, duplicate_after_mgc_loss_gets_the_stored_reply);
    suite_add_tcase(s, found);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(faults_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
