/* libFuzzer harness for the command layer: sequences of H.248 transactions executed against the
 * gateway's model (contexts, terminations, real loopback ports) with a simulated data plane. */
#include "agw/agw.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An input is a list of messages separated by NUL bytes; a message without its own header gets
 * HEADER in front. Port ranges sit below the ones the daemon suites use (12000 and up). */
#define SEPARATOR '\0'
#define HEADER "!/3 [192.0.2.10]:2944 "
#define MAX_MESSAGES 64
#define N_REALMS 2
#define PORT_BASE 11000
#define PORTS_PER_REALM 64
#define WORKERS 3
#define MAX_CONTEXTS 32
#define MAX_TERMS_PER_CONTEXT 4
#define MAX_LEGS 512
#define FD_SCAN 1024

static struct agw_realm realms[N_REALMS];
static struct agw_tls_ctx *tls_ctx;
static struct agw_model model;
static struct agw_root_state root;
static struct h248_message *mid_holder; /* owns the gateway's mId text */
static char *encoded, *again; /* one reply as the control loop would send it, and read back */
static bool fd_open_at_start[FD_SCAN]; /* sockets open before the first input */
static uint64_t now_ms;
static bool verbose; /* FUZZ_IQ_VERBOSE set: every reply to stderr, to see what a seed does */

/* The simulated workers: the legs each one holds and the socket it was handed. */
static struct fake_leg {
    bool used;
    unsigned worker;
    uint64_t key;
    int fd;
} legs[MAX_LEGS];

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz_iq_commands: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

/* Sockets only: libFuzzer and OpenSSL open files of their own along the way. */
static bool fd_is_socket(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    verbose = getenv("FUZZ_IQ_VERBOSE") != NULL;
    agw_log_set_level(verbose ? AGW_LOG_DEBUG : AGW_LOG_ERROR);
    static const char *const names[N_REALMS] = {"access", "core"};
    for (unsigned i = 0; i < N_REALMS; i++) {
        struct agw_config_realm conf;
        memset(&conf, 0, sizeof(conf));
        snprintf(conf.name, sizeof(conf.name), "%s", names[i]);
        struct sockaddr_in *sin = (struct sockaddr_in *)&conf.address;
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        conf.ports.low = (uint16_t)(PORT_BASE + i * PORTS_PER_REALM);
        conf.ports.high = (uint16_t)(conf.ports.low + PORTS_PER_REALM - 1);
        char err[256] = "";
        if (agw_realm_init(&realms[i], &conf, err, sizeof(err)) != 0)
            die("realm %s: %s", names[i], err);
    }
    struct agw_tls_ctx_config tls_cfg;
    memset(&tls_cfg, 0, sizeof(tls_cfg));
    char err[256] = "";
    if (agw_tls_ctx_new(&tls_cfg, &tls_ctx, err, sizeof(err)) != 0)
        die("TLS context: %s", err);
    static const char mid_text[] = "!/3 [127.0.0.1]:2944 PN=1{}";
    if (h248_parse_message(mid_text, sizeof(mid_text) - 1, NULL, &mid_holder, NULL) != 0)
        die("cannot parse the gateway's mId");
    encoded = malloc(AGW_DATAGRAM_MAX);
    again = malloc(AGW_DATAGRAM_MAX);
    if (encoded == NULL || again == NULL)
        die("out of memory");
    for (int fd = 0; fd < FD_SCAN; fd++)
        fd_open_at_start[fd] = fd_is_socket(fd);
    return 0;
}

static void model_start(void)
{
    if (agw_model_init(&model, realms, N_REALMS, 0, MAX_CONTEXTS, MAX_TERMS_PER_CONTEXT, WORKERS) !=
        0)
        die("model init");
    model.tls_ctx = tls_ctx;
    model.handshake_timeout_ms = 10000;
    model.buffer_bytes = 65536;
    memset(&root, 0, sizeof(root));
    /* Termination numbers and ports start over, so that seeds can name ip/access/1. */
    for (unsigned i = 0; i < N_REALMS; i++) {
        realms[i].next_term_number = 1;
        realms[i].port_hint = 0;
    }
    now_ms = 1000;
}

/* ---- The simulated data plane ---- */

static struct fake_leg *leg_find(unsigned worker, uint64_t key)
{
    for (size_t i = 0; i < MAX_LEGS; i++)
        if (legs[i].used && legs[i].worker == worker && legs[i].key == key)
            return &legs[i];
    return NULL;
}

/* What agw_relay does for a key it does not know yet: a new leg. */
static struct fake_leg *leg_get(unsigned worker, uint64_t key)
{
    struct fake_leg *l = leg_find(worker, key);
    if (l != NULL)
        return l;
    for (size_t i = 0; i < MAX_LEGS; i++) {
        if (!legs[i].used) {
            legs[i] = (struct fake_leg){.used = true, .worker = worker, .key = key, .fd = -1};
            return &legs[i];
        }
    }
    die("more than %d legs held by the workers", MAX_LEGS);
}

static void leg_drop(struct fake_leg *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->used = false;
}

static void run_op(unsigned worker, struct agw_op *op)
{
    static const struct agw_leg_figures figures = {.octets_sent = 3, .octets_received = 5};
    if (worker >= WORKERS)
        die("op for worker %u of %d", worker, WORKERS);
    if (op->key == 0)
        die("op %d without a key", op->kind);
    struct fake_leg *l;
    switch (op->kind) {
    case AGW_OP_ADOPT:
        if (op->fd < 0 || !fd_is_open(op->fd))
            die("ADOPT of fd %d, which is not open", op->fd);
        l = leg_get(worker, op->key);
        if (l->fd >= 0) /* the relay keeps the socket it has */
            close(op->fd);
        else
            l->fd = op->fd;
        return;
    case AGW_OP_CONFIGURE:
        if (op->conf == NULL || op->conf->key != op->key || op->conf->peer_key == op->key)
            die("CONFIGURE with a bad configuration");
        leg_get(worker, op->key);
        agw_leg_conf_free(op->conf);
        return;
    case AGW_OP_RELEASE:
        if (op->term != NULL)
            agw_term_set_figures(op->term, &figures);
        if ((l = leg_find(worker, op->key)) != NULL)
            leg_drop(l);
        return;
    case AGW_OP_FIGURES:
        if (op->term == NULL)
            die("FIGURES without a termination");
        agw_term_set_figures(op->term, &figures);
        return;
    case AGW_OP_DETACH:
        if (op->term == NULL)
            die("DETACH without a termination");
        l = leg_find(worker, op->key);
        op->term->fd = -1;
        if (l != NULL) {
            op->term->fd = l->fd;
            l->fd = -1;
            leg_drop(l);
        }
        return;
    case AGW_OP_BARRIER:
        die("the command layer queued a BARRIER");
    }
    die("unknown op %d", op->kind);
}

/* ---- Invariants ---- */

static struct agw_term *term_by_key(uint64_t key)
{
    for (size_t i = 0; i < model.term_cap; i++) {
        struct agw_term *t = model.term_slots[i];
        if (t != NULL && t != (void *)&model && t->key == key)
            return t;
    }
    return NULL;
}

static void check_model(void)
{
    unsigned contexts = 0, terms = 0, ports[N_REALMS] = {0};
    for (size_t i = 0; i < model.ctx_cap; i++) {
        struct agw_context *c = model.ctx_slots[i];
        if (c == NULL || c == (void *)&model)
            continue;
        contexts++;
        if (c->n_terms == 0 || c->n_terms > MAX_TERMS_PER_CONTEXT)
            die("context %u holds %u terminations", c->id, c->n_terms);
        if (agw_model_context(&model, c->id) != c)
            die("context %u is not found by its id", c->id);
        for (unsigned k = 0; k < c->n_terms; k++) {
            struct agw_term *t = c->terms[k];
            terms++;
            if (t->ctx != c || agw_model_term(&model, t->id, t->id_len) != t)
                die("termination %s is not linked both ways", t->id);
            if (t->port_reserved && t->port != 9) {
                uint32_t off = (uint32_t)t->port - t->realm->port_low;
                if (t->port < t->realm->port_low || t->port > t->realm->port_high ||
                    !((t->realm->ports_in_use[off / 8] >> (off % 8)) & 1))
                    die("termination %s holds port %u, not marked in its realm", t->id, t->port);
                ports[t->realm_index]++;
                /* Its socket is still with the command layer or with its context's worker. */
                struct fake_leg *l = leg_find(c->worker, t->key);
                if (t->fd < 0 && (l == NULL || l->fd < 0))
                    die("termination %s: port %u reserved, no socket anywhere", t->id, t->port);
            }
        }
    }
    if (contexts != model.n_contexts || terms != model.n_terms)
        die("model counts %u contexts, %u terms; found %u, %u", model.n_contexts, model.n_terms,
            contexts, terms);
    for (unsigned r = 0; r < N_REALMS; r++)
        if (ports[r] != realms[r].ports_used)
            die("realm %s: %u ports used, %u held by terminations", realms[r].name,
                realms[r].ports_used, ports[r]);
    /* A worker holds legs only of live terminations of its own contexts. */
    for (size_t i = 0; i < MAX_LEGS; i++) {
        if (!legs[i].used)
            continue;
        struct agw_term *t = term_by_key(legs[i].key);
        if (t == NULL)
            die("worker %u holds leg %llu of no live termination", legs[i].worker,
                (unsigned long long)legs[i].key);
        if (t->ctx->worker != legs[i].worker)
            die("worker %u holds leg %s of context %u, which lives on worker %u", legs[i].worker,
                t->id, t->ctx->id, t->ctx->worker);
    }
}

/* Drops the white space before each '}' (Annex B: RBRKT = LWSP "}"), so that a Local ending
 * in CRLF compares equal to the same Local read back without it. Returns the new length. */
static size_t normalise(char *text, size_t len)
{
    size_t w = 0;
    for (size_t r = 0; r < len; r++) {
        if (text[r] == '}')
            while (w > 0 && (text[w - 1] == ' ' || text[w - 1] == '\t' || text[w - 1] == '\r' ||
                             text[w - 1] == '\n'))
                w--;
        text[w++] = text[r];
    }
    return w;
}

/* The reply goes out as the control loop sends it: it must encode, and the MGC must read it
 * back as the same message. */
static void check_reply(const struct h248_transaction *req, struct agw_exec *x)
{
    struct h248_message *reply = x->reply;
    if (reply == NULL || reply->transactions != x->txn || x->txn->id != req->id ||
        x->txn->kind != H248_TRANS_REPLY)
        die("transaction %u: no reply transaction", req->id);
    const struct h248_action *a = req->actions, *ra = x->txn->actions;
    for (; a != NULL && ra != NULL; a = a->next, ra = ra->next)
        if (a->context.kind == H248_CTX_ID &&
            (ra->context.kind != H248_CTX_ID || ra->context.id != a->context.id))
            die("transaction %u: reply action for context %u names another", req->id,
                a->context.id);
    if (a != NULL || ra != NULL)
        die("transaction %u: not one reply action per request action", req->id);
    reply->version = 3;
    reply->mid = mid_holder->mid;
    size_t len = 0;
    int rc = h248_encode_message(reply, H248_STYLE_COMPACT, encoded, AGW_DATAGRAM_MAX, &len);
    if (rc == -ENOSPC)
        return; /* answered with 533 */
    if (rc != 0)
        die("transaction %u: the reply does not encode: %d", req->id, rc);
    if (verbose)
        fprintf(stderr, "%.*s\n", (int)len, encoded);
    struct h248_message *back = NULL;
    struct h248_parse_error err;
    if (h248_parse_message(encoded, len, NULL, &back, &err) != 0)
        die("transaction %u: the reply does not parse back: %u %s\n%.*s", req->id, err.code,
            err.text, (int)len, encoded);
    /* Parsed back, it must say the same: an empty Events may come back as the bare token, and
     * both are written "E", so the texts are compared. */
    size_t again_len = 0;
    if (h248_encode_message(back, H248_STYLE_COMPACT, again, AGW_DATAGRAM_MAX, &again_len) != 0)
        die("transaction %u: the reply read back does not encode", req->id);
    size_t n1 = normalise(encoded, len), n2 = normalise(again, again_len);
    if (n1 != n2 || memcmp(encoded, again, n1) != 0)
        die("transaction %u: the reply changes when read back\n%.*s\n%.*s", req->id, (int)n1,
            encoded, (int)n2, again);
    h248_message_free(back);
}

/* ---- Execution, as agw/control.c drives it ---- */

static void execute(const struct h248_message *msg, const struct h248_transaction *t)
{
    struct agw_exec x;
    if (agw_exec_transaction(&model, &root, msg, t, &x, now_ms) != 0)
        die("transaction %u: out of memory", t->id);
    /* Each worker runs its ops in order; the order between workers is free, take the list's. */
    for (size_t i = 0; i < x.n_ops; i++)
        run_op(x.ops[i].worker, &x.ops[i].op);
    agw_exec_finish(&model, &x, now_ms);
    for (size_t i = 0; i < x.n_released; i++) {
        struct agw_released *r = &x.released[i];
        if (!r->moved || r->term == NULL || r->term->fd < 0)
            continue;
        struct agw_op op = {.kind = AGW_OP_ADOPT,
                            .key = r->term->key,
                            .fd = r->term->fd,
                            .datagram = r->term->datagram,
                            .listening = !r->term->datagram};
        r->term->fd = -1;
        run_op(r->adopt_worker, &op);
    }
    check_reply(t, &x);
    agw_exec_fini(&x);
    check_model();
}

static void execute_text(const char *text, size_t len)
{
    struct h248_message *msg = NULL;
    if (h248_parse_message(text, len, NULL, &msg, NULL) != 0)
        return;
    for (const struct h248_transaction *t = msg->transactions; t != NULL; t = t->next)
        if (t->kind == H248_TRANS_REQUEST)
            execute(msg, t);
    h248_message_free(msg);
    now_ms += 1000;
}

static bool has_header(const char *p, size_t len)
{
    while (len > 0 && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
        p++;
        len--;
    }
    return len > 0 && (*p == '!' || *p == ';' || (len >= 6 && strncasecmp(p, "MEGACO", 6) == 0));
}

static void execute_piece(const char *p, size_t len)
{
    if (has_header(p, len)) {
        execute_text(p, len);
        return;
    }
    size_t hl = sizeof(HEADER) - 1;
    char *buf = malloc(hl + len);
    if (buf == NULL)
        die("out of memory");
    memcpy(buf, HEADER, hl);
    memcpy(buf + hl, p, len);
    execute_text(buf, hl + len);
    free(buf);
}

/* Subtracts every context the way an ALG releases them; afterwards nothing may be left. */
static void release_all(void)
{
    uint32_t ids[MAX_CONTEXTS];
    unsigned n = 0;
    for (size_t i = 0; i < model.ctx_cap && n < MAX_CONTEXTS; i++) {
        struct agw_context *c = model.ctx_slots[i];
        if (c != NULL && c != (void *)&model)
            ids[n++] = c->id;
    }
    for (unsigned i = 0; i < n; i++) {
        char text[96];
        int len = snprintf(text, sizeof(text), HEADER "T=%u{C=%u{S=*}}", 4000000000u + i, ids[i]);
        execute_text(text, (size_t)len);
    }
    if (model.n_contexts != 0 || model.n_terms != 0)
        die("after Subtract=* everywhere: %u contexts, %u terminations left", model.n_contexts,
            model.n_terms);
    for (unsigned r = 0; r < N_REALMS; r++)
        if (realms[r].ports_used != 0)
            die("after Subtract=* everywhere: realm %s still has %u ports", realms[r].name,
                realms[r].ports_used);
    for (size_t i = 0; i < MAX_LEGS; i++)
        if (legs[i].used)
            die("after Subtract=* everywhere: worker %u still holds leg %llu", legs[i].worker,
                (unsigned long long)legs[i].key);
    for (int fd = 0; fd < FD_SCAN; fd++)
        if (!fd_open_at_start[fd] && fd_is_socket(fd))
            die("after Subtract=* everywhere: socket %d is still open", fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    model_start();
    const char *p = (const char *)data, *end = p + size;
    for (unsigned n = 0; p < end && n < MAX_MESSAGES; n++) {
        const char *sep = memchr(p, SEPARATOR, (size_t)(end - p));
        size_t len = sep != NULL ? (size_t)(sep - p) : (size_t)(end - p);
        if (len > 0)
            execute_piece(p, len);
        p += len + 1;
    }
    release_all();
    agw_model_fini(&model);
    return 0;
}
