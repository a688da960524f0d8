/* agw-bench dc: channel messages from DTLS+SCTP UEs through a running ims-agw (e2DCe sessions set
 * up over Iq) to a UDP/SCTP or UDP/DTLS/SCTP core peer, and back with --both; the receiver checks
 * every byte and the order of every message. */
#include "tools/bench_dc.h"
#include "h248/h248.h"
#include "sctp/dcep.h"
#include "tls/cert.h"
#include "tls/fingerprint.h"
#include "tools/dc_endpoint.h"
#include "tools/iq_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_MESSAGE 262144 /* what the gateway announces; the endpoints and the SDP say it too */
#define HEADER_LEN 16      /* "DCB", direction, session, sequence number: the smallest message */
#define MAX_SESSIONS 64
#define STALL_MS 30000    /* no message sent or received this long fails the run */
#define SETUP_MS 10000    /* handshake, association, channel */
#define IQ_WAIT_MS 5000   /* one Iq transaction */
#define REGISTER_MS 30000 /* the gateway's ServiceChange back-off reaches several seconds */
#define SEND_SLICE_MS 1000
#define DRAIN_BURST 256 /* events taken from one endpoint before the next gets a turn */

enum { UE_TO_CORE, CORE_TO_UE };

struct run;

/* One direction of one session: a sender thread, checked by the main thread. */
struct flow {
    struct run *run;
    unsigned session, dir;
    struct dc_endpoint *from, *to;
    uint16_t from_stream, to_stream;
    pthread_t thread;
    bool started;
    uint64_t received; /* main thread: messages checked, also the next sequence number */
};

struct session {
    unsigned ctx; /* 0: none on the gateway */
    struct dc_endpoint *ue, *core;
    uint16_t ue_stream, core_stream;
    struct flow flow[2];
};

struct run {
    size_t size;
    uint64_t messages;
    bool core_dtls, both;
    unsigned n_sessions;
    struct session *sessions;
    uint8_t *block; /* 2 * MAX_MESSAGE random bytes: any offset below MAX_MESSAGE holds a message */
    atomic_bool failed;
    pthread_mutex_t mu;
    char first_error[256]; /* mu */
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
}

/* Keeps the first failure's text (the others are its consequences) and stops every flow. */
static void fail(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct run *r, const char *fmt, ...)
{
    pthread_mutex_lock(&r->mu);
    if (!atomic_exchange(&r->failed, true)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->first_error, sizeof(r->first_error), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&r->mu);
}

/* Messages of different sessions, directions and sequence numbers start at different offsets of
 * the block: one delivered on the wrong channel, twice or out of order fails the check. */
static const uint8_t *payload_of(const struct run *r, unsigned session, unsigned dir, uint64_t seq)
{
    uint64_t off = ((uint64_t)session * 4099u + dir * 65537u + seq * 8191u) % MAX_MESSAGE;
    return r->block + off;
}

static void header_of(unsigned session, unsigned dir, uint64_t seq, uint8_t *h)
{
    h[0] = 'D';
    h[1] = 'C';
    h[2] = 'B';
    h[3] = (uint8_t)dir;
    for (int i = 0; i < 4; i++)
        h[4 + i] = (uint8_t)(session >> (24 - 8 * i));
    for (int i = 0; i < 8; i++)
        h[8 + i] = (uint8_t)(seq >> (56 - 8 * i));
}

/* The sender: messages 0..M-1 of its direction, each sent whole or the run fails. */
static void *sender_main(void *arg)
{
    struct flow *f = arg;
    struct run *r = f->run;
    uint8_t *msg = malloc(r->size);
    if (msg == NULL) {
        fail(r, "out of memory");
        return NULL;
    }
    for (uint64_t seq = 0; seq < r->messages && !atomic_load(&r->failed); seq++) {
        header_of(f->session, f->dir, seq, msg);
        memcpy(msg + HEADER_LEN, payload_of(r, f->session, f->dir, seq), r->size - HEADER_LEN);
        /* Slices, so that a failure elsewhere ends a sender held by backpressure: a send that
         * timed out queued nothing and is simply repeated. */
        int rc = -ETIMEDOUT;
        for (unsigned waited = 0; rc == -ETIMEDOUT && waited < STALL_MS && !atomic_load(&r->failed);
             waited += SEND_SLICE_MS)
            rc = dc_endpoint_send(f->from, f->from_stream, true, msg, r->size, SEND_SLICE_MS);
        if (rc < 0) {
            if (!atomic_load(&r->failed))
                fail(r, "session %u %s: message %llu not sent: %s", f->session,
                     f->dir == UE_TO_CORE ? "UE->core" : "core->UE", (unsigned long long)seq,
                     strerror(-rc));
            break;
        }
    }
    free(msg);
    return NULL;
}

/* Checks one event of a receiving endpoint: the next message of its flow, whole and in order. */
static void on_event(struct run *r, struct flow *f, const struct dc_event *ev)
{
    const char *dir = f->dir == UE_TO_CORE ? "UE->core" : "core->UE";
    if (ev->type != DC_EVENT_MESSAGE) {
        fail(r, "session %u %s: %s (%s) after %llu messages", f->session, dir,
             ev->type == DC_EVENT_DOWN ? "endpoint down" : "unexpected channel event",
             ev->error != 0 ? strerror(-ev->error) : "no error", (unsigned long long)f->received);
        return;
    }
    uint64_t seq = f->received;
    uint8_t h[HEADER_LEN];
    header_of(f->session, f->dir, seq, h);
    if (seq >= r->messages)
        fail(r, "session %u %s: a message more than was sent", f->session, dir);
    else if (ev->stream != f->to_stream || !ev->binary || ev->unordered)
        fail(r, "session %u %s: message %llu on stream %u, %s%s (expected binary on %u)",
             f->session, dir, (unsigned long long)seq, ev->stream, ev->binary ? "binary" : "text",
             ev->unordered ? " unordered" : "", f->to_stream);
    else if (ev->len != r->size)
        fail(r, "session %u %s: message %llu has %zu bytes, not %zu", f->session, dir,
             (unsigned long long)seq, ev->len, r->size);
    else if (memcmp(ev->data, h, HEADER_LEN) != 0)
        fail(r, "session %u %s: message %llu lost, repeated or out of order", f->session, dir,
             (unsigned long long)seq);
    else if (memcmp(ev->data + HEADER_LEN, payload_of(r, f->session, f->dir, seq),
                    r->size - HEADER_LEN) != 0)
        fail(r, "session %u %s: message %llu corrupted", f->session, dir, (unsigned long long)seq);
    else
        f->received++;
}

/* Takes one event of f within timeout_ms: 1 taken, 0 none, < 0 the endpoint's error. */
static int receive_one(struct run *r, struct flow *f, int timeout_ms)
{
    struct dc_event ev;
    int rc = dc_endpoint_next_event(f->to, &ev, timeout_ms);
    if (rc == -ETIMEDOUT)
        return 0;
    if (rc < 0) {
        fail(r, "session %u: cannot receive: %s", f->session, strerror(-rc));
        return rc;
    }
    on_event(r, f, &ev);
    dc_event_clear(&ev);
    return 1;
}

/* The main thread's part: every receiving endpoint drained in turn until each flow has all its
 * messages, or a failure, or a stall. Returns when the last message was checked. */
static uint64_t receive_all(struct run *r, struct flow **rx, unsigned n_rx)
{
    uint64_t last_progress = now_us();
    unsigned turn = 0;
    for (;;) {
        unsigned pending = 0;
        bool got = false;
        for (unsigned i = 0; i < n_rx && !atomic_load(&r->failed); i++) {
            struct flow *f = rx[i];
            for (unsigned k = 0; k < DRAIN_BURST && f->received < r->messages; k++) {
                int rc = receive_one(r, f, 0);
                if (rc <= 0)
                    break;
                got = true;
            }
            if (f->received < r->messages)
                pending++;
        }
        uint64_t now = now_us();
        if (atomic_load(&r->failed) || pending == 0)
            return now;
        if (got) {
            last_progress = now;
            continue;
        }
        if (now - last_progress > (uint64_t)STALL_MS * 1000) {
            for (unsigned i = 0; i < n_rx; i++)
                if (rx[i]->received < r->messages) {
                    fail(r, "session %u %s: stalled at message %llu of %llu", rx[i]->session,
                         rx[i]->dir == UE_TO_CORE ? "UE->core" : "core->UE",
                         (unsigned long long)rx[i]->received, (unsigned long long)r->messages);
                    break;
                }
            return now;
        }
        /* Nothing queued anywhere: sleep on one endpoint; briefly when others may fill first. */
        struct flow *f;
        do
            f = rx[turn++ % n_rx];
        while (f->received >= r->messages);
        if (receive_one(r, f, pending == 1 ? 100 : 1) > 0)
            last_progress = now_us();
    }
}

/* ---- Iq ---- */

/* One transaction; its reply, compact, in out. 0; the H.248 error code; < 0 no reply. */
static int request(struct iq_client *c, const char *text, char *out, size_t cap)
{
    struct iq_reply reply;
    struct h248_parse_error err;
    out[0] = '\0';
    int rc = iq_client_request_text(c, text, strlen(text), IQ_WAIT_MS, &reply, &err);
    if (rc < 0)
        return rc;
    if (reply.status != 0)
        return reply.status;
    size_t len = 0;
    if (h248_encode_message(reply.msg, H248_STYLE_COMPACT, out, cap - 1, &len) < 0)
        len = 0;
    out[len] = '\0';
    const struct h248_error_desc *e = iq_reply_error(&reply);
    rc = e != NULL ? (int)e->code : 0;
    iq_reply_release(&reply);
    return rc;
}

/* The gateway answers 505 until it registered: then its next ServiceChange is awaited (our
 * client answers it). A gateway registered with us already is used as it is. */
static int ensure_registered(struct iq_client *c)
{
    char out[4096];
    int rc = request(c, "C=-{AV=ROOT{AT{}}}", out, sizeof(out));
    if (rc == 505) {
        fprintf(stderr, "agw-bench: waiting for the gateway's registration\n");
        rc = iq_client_wait_registration(c, REGISTER_MS, NULL, NULL, NULL);
    }
    return rc;
}

/* The reply's Local SDP (SDP holds no braces): its start and length; NULL when absent. */
static const char *local_sdp(const char *reply, size_t *len)
{
    const char *p = strstr(reply, "L{");
    if (p == NULL)
        return NULL;
    p += 2;
    *len = strcspn(p, "}");
    return p;
}

static unsigned long number_after(const char *p, size_t len, const char *key)
{
    size_t k = strlen(key);
    for (size_t i = 0; i + k <= len; i++)
        if (memcmp(p + i, key, k) == 0)
            return strtoul(p + i + k, NULL, 10);
    return 0;
}

static int fingerprint_in(const char *p, size_t len, struct agw_tls_fingerprint *fp)
{
    static const char key[] = "a=fingerprint:";
    size_t k = sizeof(key) - 1;
    for (size_t i = 0; i + k <= len; i++)
        if (memcmp(p + i, key, k) == 0)
            return agw_tls_fingerprint_parse(p + i + k, strcspn(p + i + k, "\r\n}"), fp);
    return -ENOENT;
}

static void sockaddr_lo(uint16_t port, struct sockaddr_in *a)
{
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

struct identities {
    struct agw_tls_identity *ue, *core;
    char ue_fp[AGW_TLS_FINGERPRINT_TEXT_MAX], core_fp[AGW_TLS_FINGERPRINT_TEXT_MAX];
};

/* The core peer first (the gateway dials it: a=setup:passive, it is the DTLS server), then the
 * UE (a=setup:active: the DTLS client, even stream ids), each given the gateway's port and
 * fingerprint from the replies. Starts both endpoints; does not wait for them. */
static int session_setup(struct run *r, struct iq_client *c, struct dc_net *net,
                         const struct identities *ids, unsigned i)
{
    struct session *s = &r->sessions[i];
    char text[2048], out[8192], extra[512] = "";
    struct dc_endpoint_config cc = {.dtls = r->core_dtls,
                                    .role = AGW_TLS_SERVER,
                                    .identity = ids->core,
                                    .max_message_size = MAX_MESSAGE,
                                    .peer_max_message_size = MAX_MESSAGE};
    int rc = dc_endpoint_new(net, &cc, &s->core);
    if (rc < 0) {
        fprintf(stderr, "agw-bench: core endpoint: %s\n", strerror(-rc));
        return rc;
    }
    const char *proto = r->core_dtls ? "UDP/DTLS/SCTP" : "UDP/SCTP";
    if (r->core_dtls)
        snprintf(extra, sizeof(extra), "a=fingerprint:%s\r\na=tls-id:agwbenchcore%012u\r\n",
                 ids->core_fp, i);
    snprintf(text, sizeof(text),
             "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
             "%s webrtc-datachannel\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=application %u %s "
             "webrtc-datachannel\r\na=setup:passive\r\na=sctp-port:5000\r\n"
             "a=max-message-size:%u\r\n%s}}}}}",
             proto, dc_endpoint_port(s->core), proto, MAX_MESSAGE, extra);
    const char *ctx_at = NULL, *sdp;
    size_t sdp_len = 0;
    struct agw_tls_fingerprint gw;
    if ((rc = request(c, text, out, sizeof(out))) != 0 || (ctx_at = strstr(out, "C=")) == NULL ||
        (sdp = local_sdp(out, &sdp_len)) == NULL) {
        fprintf(stderr, "agw-bench: Add core failed (%d): %s\n", rc, out);
        return -EPROTO;
    }
    s->ctx = (unsigned)strtoul(ctx_at + 2, NULL, 10);
    struct sockaddr_in a;
    sockaddr_lo((uint16_t)number_after(sdp, sdp_len, "m=application "), &a);
    if ((r->core_dtls && fingerprint_in(sdp, sdp_len, &gw) < 0) || a.sin_port == 0) {
        fprintf(stderr, "agw-bench: Add core reply without port or fingerprint: %s\n", out);
        return -EPROTO;
    }
    if ((rc = dc_endpoint_connect(s->core, (struct sockaddr *)&a, sizeof(a))) < 0 ||
        (r->core_dtls && (rc = dc_endpoint_set_peer_fingerprints(s->core, &gw, 1)) < 0)) {
        fprintf(stderr, "agw-bench: core endpoint: %s\n", strerror(-rc));
        return rc;
    }

    struct dc_endpoint_config uc = {.dtls = true,
                                    .role = AGW_TLS_CLIENT,
                                    .identity = ids->ue,
                                    .max_message_size = MAX_MESSAGE,
                                    .peer_max_message_size = MAX_MESSAGE};
    if ((rc = dc_endpoint_new(net, &uc, &s->ue)) < 0) {
        fprintf(stderr, "agw-bench: UE endpoint: %s\n", strerror(-rc));
        return rc;
    }
    snprintf(text, sizeof(text),
             "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
             "UDP/DTLS/SCTP webrtc-datachannel\r\na=fingerprint:$\r\n},R{v=0\r\nc=IN IP4 "
             "127.0.0.1\r\nm=application %u UDP/DTLS/SCTP webrtc-datachannel\r\na=setup:active\r\n"
             "a=fingerprint:%s\r\na=tls-id:agwbenchue%014u\r\na=sctp-port:5000\r\n"
             "a=max-message-size:%u\r\n}}}}}",
             s->ctx, dc_endpoint_port(s->ue), ids->ue_fp, i, MAX_MESSAGE);
    if ((rc = request(c, text, out, sizeof(out))) != 0 ||
        (sdp = local_sdp(out, &sdp_len)) == NULL || fingerprint_in(sdp, sdp_len, &gw) < 0) {
        fprintf(stderr, "agw-bench: Add access failed (%d): %s\n", rc, out);
        return -EPROTO;
    }
    sockaddr_lo((uint16_t)number_after(sdp, sdp_len, "m=application "), &a);
    if (a.sin_port == 0 || (rc = dc_endpoint_set_peer_fingerprints(s->ue, &gw, 1)) < 0 ||
        (rc = dc_endpoint_connect(s->ue, (struct sockaddr *)&a, sizeof(a))) < 0) {
        fprintf(stderr, "agw-bench: UE endpoint: %s (%s)\n", strerror(-rc), out);
        return rc < 0 ? rc : -EPROTO;
    }
    return 0;
}

static int wait_endpoint_up(struct dc_endpoint *ep, const char *who, unsigned i)
{
    int rc = dc_endpoint_wait_up(ep, SETUP_MS);
    if (rc < 0) {
        char why[128] = "";
        dc_endpoint_failure(ep, why, sizeof(why));
        fprintf(stderr, "agw-bench: session %u: %s not up: %s%s%s\n", i, who, strerror(-rc),
                why[0] != '\0' ? ", " : "", why);
    }
    return rc;
}

/* Both ends up, then the UE opens the channel (DCEP, reliable, ordered) and the core sees it. */
static int session_open_channel(struct session *s, unsigned i)
{
    int rc;
    if ((rc = wait_endpoint_up(s->ue, "UE", i)) < 0 ||
        (rc = wait_endpoint_up(s->core, "core peer", i)) < 0)
        return rc;
    struct dc_channel_spec spec = {.channel_type = DCEP_CHANNEL_RELIABLE, .label = "bench"};
    if ((rc = dc_endpoint_open_channel(s->ue, &spec, &s->ue_stream)) < 0 ||
        (rc = dc_endpoint_wait_open(s->ue, s->ue_stream, SETUP_MS)) < 0) {
        fprintf(stderr, "agw-bench: session %u: channel not opened: %s\n", i, strerror(-rc));
        return rc;
    }
    struct dc_event ev;
    if ((rc = dc_endpoint_next_event(s->core, &ev, SETUP_MS)) < 0) {
        fprintf(stderr, "agw-bench: session %u: the channel did not reach the core: %s\n", i,
                strerror(-rc));
        return rc;
    }
    bool ok = ev.type == DC_EVENT_CHANNEL_OPEN && strcmp(ev.label, "bench") == 0 &&
              ev.channel_type == DCEP_CHANNEL_RELIABLE;
    s->core_stream = ev.stream;
    dc_event_clear(&ev);
    if (!ok) {
        fprintf(stderr, "agw-bench: session %u: the core saw another event than the OPEN\n", i);
        return -EPROTO;
    }
    return 0;
}

/* Subtracts every context (the gateway then frees its ports) and frees the endpoints. */
static void sessions_release(struct iq_client *c, struct run *r)
{
    char text[64], out[8192];
    for (unsigned i = 0; r->sessions != NULL && i < r->n_sessions; i++) {
        struct session *s = &r->sessions[i];
        if (s->ctx != 0 && c != NULL) {
            snprintf(text, sizeof(text), "C=%u{S=*}", s->ctx);
            int rc = request(c, text, out, sizeof(out));
            if (rc != 0)
                fprintf(stderr, "agw-bench: Subtract of context %u failed (%d): %s\n", s->ctx, rc,
                        out);
        }
        dc_endpoint_free(s->ue);
        dc_endpoint_free(s->core);
    }
}

/* ---- figures ---- */

/* CPU seconds (user + system, all threads) of a process so far; negative if unknown. */
static double proc_cpu_seconds(pid_t pid)
{
    char path[64], text[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    /* Fields count from after the command name's last ')': utime and stime are 14 and 15. */
    const char *p = strrchr(text, ')');
    unsigned long long utime, stime;
    if (p == NULL || sscanf(p + 1, " %*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", &utime,
                            &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* Busy time of all the host's CPUs so far (all but idle and iowait); negative if unknown. Less
 * ours and the relay's, it shows what else ran: on a busy host the figures mean less. */
static double host_busy_seconds(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return -1;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8)
        return -1;
    /* user nice system idle iowait irq softirq steal */
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return -1;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static size_t parse_size(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if ((*end == 'k' || *end == 'K') && end[1] == '\0')
        return v <= SIZE_MAX >> 10 ? (size_t)v << 10 : 0;
    return *end == '\0' && v <= SIZE_MAX ? (size_t)v : 0;
}

static void dc_usage(FILE *f)
{
    fprintf(f,
            "usage: agw-bench dc [options]\n"
            "  channel messages through a running ims-agw: e2DCe sessions set up over Iq, a\n"
            "  DTLS+SCTP UE (DTLS client) on the access leg, a UDP/SCTP or UDP/DTLS/SCTP core\n"
            "  peer; one reliable ordered channel (DCEP, label \"bench\") per session; every\n"
            "  message checked byte by byte and in order at the receiver. Starts no gateway.\n"
            "  --gateway ADDR:PORT the gateway's Iq address (default 127.0.0.1:2944)\n"
            "  --listen ADDR:PORT  our MGC address, the gateway's --mgc (default 127.0.0.1:2947)\n"
            "  --target-pid PID    the gateway's pid: its CPU time is reported as the relay's\n"
            "  --core plain|dtls   the core leg: UDP/SCTP (default) or UDP/DTLS/SCTP\n"
            "  --sessions N        sessions (association pairs) at once (default 1, max %d)\n"
            "  --messages N        messages per direction and session (default 20000)\n"
            "  --size N[K]         bytes per message, %d..%d (default 64K)\n"
            "  --both              core to UE as well, at the same time\n"
            "  --json              one JSON line instead of the table\n",
            MAX_SESSIONS, HEADER_LEN, MAX_MESSAGE);
}

struct options {
    const char *gateway, *listen;
    pid_t target_pid;
    bool json;
};

static int parse_options(int argc, char **argv, struct run *r, struct options *o)
{
    static const struct option options[] = {
        {"gateway", required_argument, NULL, 'g'},
        {"listen", required_argument, NULL, 'l'},
        {"target-pid", required_argument, NULL, 'T'},
        {"core", required_argument, NULL, 'c'},
        {"sessions", required_argument, NULL, 'n'},
        {"messages", required_argument, NULL, 'm'},
        {"size", required_argument, NULL, 's'},
        {"both", no_argument, NULL, 'b'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    optind = 2;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'g':
            o->gateway = optarg;
            break;
        case 'l':
            o->listen = optarg;
            break;
        case 'T':
            o->target_pid = (pid_t)strtol(optarg, NULL, 10);
            break;
        case 'c':
            if (strcmp(optarg, "plain") != 0 && strcmp(optarg, "dtls") != 0) {
                fprintf(stderr, "agw-bench: --core plain or dtls\n");
                return 2;
            }
            r->core_dtls = strcmp(optarg, "dtls") == 0;
            break;
        case 'n':
            r->n_sessions = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'm':
            r->messages = strtoull(optarg, NULL, 10);
            break;
        case 's':
            r->size = parse_size(optarg);
            break;
        case 'b':
            r->both = true;
            break;
        case 'j':
            o->json = true;
            break;
        case 'h':
            dc_usage(stdout);
            return 0;
        default:
            dc_usage(stderr);
            return 2;
        }
    }
    struct sockaddr_storage ss;
    socklen_t len;
    if (optind != argc || r->n_sessions == 0 || r->n_sessions > MAX_SESSIONS || r->messages == 0 ||
        r->size < HEADER_LEN || r->size > MAX_MESSAGE || iq_parse_addr(o->gateway, &ss, &len) < 0 ||
        iq_parse_addr(o->listen, &ss, &len) < 0) {
        fprintf(stderr,
                "agw-bench: --sessions 1..%d, --messages > 0, --size %d..%d, --gateway and "
                "--listen ADDR:PORT\n",
                MAX_SESSIONS, HEADER_LEN, MAX_MESSAGE);
        return 2;
    }
    return -1;
}

/* CPU seconds spent during the run: by the relay (negative: unknown), by us, by the rest of the
 * host (negative: unknown). */
struct cpu_use {
    double relay, bench, other;
};

static void report(const struct run *r, const struct options *o, double seconds,
                   const struct cpu_use *cpu_use, bool ok)
{
    uint64_t messages = 0;
    for (unsigned i = 0; i < r->n_sessions; i++)
        messages +=
            r->sessions[i].flow[UE_TO_CORE].received + r->sessions[i].flow[CORE_TO_UE].received;
    double bytes = (double)messages * (double)r->size;
    double rate = seconds > 0 ? (double)messages / seconds : 0;
    double mbps = seconds > 0 ? bytes / seconds / 1e6 : 0;
    char cpu[32] = "null", per_gb[32] = "null", other[32] = "null";
    if (cpu_use->relay >= 0) {
        snprintf(cpu, sizeof(cpu), "%.2f", cpu_use->relay);
        if (bytes > 0)
            snprintf(per_gb, sizeof(per_gb), "%.2f", cpu_use->relay / (bytes / 1e9));
    }
    if (cpu_use->other >= -0.5) /* clock ticks against exact times: clamp small negatives */
        snprintf(other, sizeof(other), "%.2f", cpu_use->other < 0 ? 0 : cpu_use->other);
    const char *core = r->core_dtls ? "dtls" : "plain";
    if (o->json) {
        printf(
            "{\"mode\":\"dc\",\"gateway\":\"%s\",\"core\":\"%s\",\"sessions\":%u,"
            "\"messages_per_direction\":%llu,\"size\":%zu,\"both\":%s,\"seconds\":%.3f,"
            "\"messages\":%llu,\"messages_per_s\":%.0f,\"MB_per_s\":%.1f,\"relay_cpu_s\":%s,"
            "\"relay_cpu_s_per_GB\":%s,\"bench_cpu_s\":%.2f,\"other_cpu_s\":%s,\"verified\":%s}\n",
            o->gateway, core, r->n_sessions, (unsigned long long)r->messages, r->size,
            r->both ? "true" : "false", seconds, (unsigned long long)messages, rate, mbps, cpu,
            per_gb, cpu_use->bench, other, ok ? "true" : "false");
        return;
    }
    printf("dc: ims-agw at %s, core %s: %u session(s) x %llu messages x %zu bytes, %s\n",
           o->gateway, r->core_dtls ? "UDP/DTLS/SCTP" : "UDP/SCTP", r->n_sessions,
           (unsigned long long)r->messages, r->size, r->both ? "both directions" : "UE -> core");
    printf("  %.0f messages/s, %.1f MB/s in %.2f s\n", rate, mbps, seconds);
    if (cpu_use->relay >= 0)
        printf("  CPU: relay %s s (%s s/GB), agw-bench %.2f s, other processes %s s\n", cpu, per_gb,
               cpu_use->bench, other);
    else
        printf("  CPU: agw-bench %.2f s (the relay's with --target-pid)\n", cpu_use->bench);
    printf("  verified at the receiver: %s\n",
           ok ? "every byte of every message, in order" : "FAILED");
}

int bench_dc_main(int argc, char **argv)
{
    static struct run r = {.size = 64 * 1024, .messages = 20000, .n_sessions = 1};
    struct options o = {.gateway = "127.0.0.1:2944", .listen = "127.0.0.1:2947"};
    int status = parse_options(argc, argv, &r, &o);
    if (status >= 0)
        return status;
    status = 1;
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&r.mu, NULL);
    struct iq_client *c = NULL;
    struct dc_net *net = NULL;
    struct identities ids = {0};
    r.sessions = calloc(r.n_sessions, sizeof(*r.sessions));
    r.block = malloc(2 * MAX_MESSAGE);
    FILE *rnd = fopen("/dev/urandom", "rb");
    if (r.sessions == NULL || r.block == NULL || rnd == NULL ||
        fread(r.block, 1, MAX_MESSAGE, rnd) != MAX_MESSAGE) {
        fprintf(stderr, "agw-bench: no memory or no /dev/urandom\n");
        if (rnd != NULL)
            fclose(rnd);
        goto out;
    }
    fclose(rnd);
    memcpy(r.block + MAX_MESSAGE, r.block, MAX_MESSAGE);

    int rc = iq_client_open(o.listen, o.gateway, NULL, NULL, &c);
    if (rc < 0) {
        fprintf(stderr, "agw-bench: cannot open %s: %s\n", o.listen, strerror(-rc));
        goto out;
    }
    if ((rc = ensure_registered(c)) != 0) {
        fprintf(stderr, "agw-bench: the gateway at %s is not usable: %s\n", o.gateway,
                rc < 0 ? strerror(-rc) : "error reply");
        goto out;
    }
    if (agw_tls_identity_generate("agw-bench-ue", 1, &ids.ue) < 0 ||
        agw_tls_fingerprint_format(agw_tls_identity_fingerprint(ids.ue), ids.ue_fp,
                                   sizeof(ids.ue_fp)) < 0 ||
        agw_tls_identity_generate("agw-bench-core", 1, &ids.core) < 0 ||
        agw_tls_fingerprint_format(agw_tls_identity_fingerprint(ids.core), ids.core_fp,
                                   sizeof(ids.core_fp)) < 0) {
        fprintf(stderr, "agw-bench: cannot make the endpoints' certificates\n");
        goto out;
    }
    if ((rc = dc_net_start(&net)) < 0) {
        fprintf(stderr, "agw-bench: cannot start the endpoints' thread: %s\n", strerror(-rc));
        goto out;
    }
    for (unsigned i = 0; i < r.n_sessions; i++)
        if (session_setup(&r, c, net, &ids, i) < 0)
            goto out;
    for (unsigned i = 0; i < r.n_sessions; i++)
        if (session_open_channel(&r.sessions[i], i) < 0)
            goto out;

    struct flow *rx[2 * MAX_SESSIONS];
    unsigned n_rx = 0;
    for (unsigned i = 0; i < r.n_sessions; i++) {
        struct session *s = &r.sessions[i];
        s->flow[UE_TO_CORE] = (struct flow){.run = &r,
                                            .session = i,
                                            .dir = UE_TO_CORE,
                                            .from = s->ue,
                                            .to = s->core,
                                            .from_stream = s->ue_stream,
                                            .to_stream = s->core_stream};
        s->flow[CORE_TO_UE] = (struct flow){.run = &r,
                                            .session = i,
                                            .dir = CORE_TO_UE,
                                            .from = s->core,
                                            .to = s->ue,
                                            .from_stream = s->core_stream,
                                            .to_stream = s->ue_stream};
        rx[n_rx++] = &s->flow[UE_TO_CORE];
        if (r.both)
            rx[n_rx++] = &s->flow[CORE_TO_UE];
    }
    double cpu_before = o.target_pid > 0 ? proc_cpu_seconds(o.target_pid) : -1;
    double self_before = self_cpu_seconds(), host_before = host_busy_seconds();
    uint64_t start = now_us();
    for (unsigned i = 0; i < n_rx; i++) {
        struct flow *f = rx[i];
        rc = pthread_create(&f->thread, NULL, sender_main, f);
        f->started = rc == 0;
        if (rc != 0)
            fail(&r, "cannot start a sender thread: %s", strerror(rc));
    }
    uint64_t end = receive_all(&r, rx, n_rx);
    for (unsigned i = 0; i < n_rx; i++)
        if (rx[i]->started)
            pthread_join(rx[i]->thread, NULL);
    /* Every message was sent and checked: anything still queued is one too many. */
    for (unsigned i = 0; i < n_rx && !atomic_load(&r.failed); i++)
        while (receive_one(&r, rx[i], 0) > 0)
            ;
    double cpu_after = o.target_pid > 0 ? proc_cpu_seconds(o.target_pid) : -1;
    double host_after = host_busy_seconds();
    struct cpu_use use = {.relay = cpu_before >= 0 && cpu_after >= 0 ? cpu_after - cpu_before : -1,
                          .bench = self_cpu_seconds() - self_before,
                          .other = -1};
    if (use.relay >= 0 && host_before >= 0 && host_after >= 0)
        use.other = host_after - host_before - use.relay - use.bench;
    bool ok = !atomic_load(&r.failed);
    report(&r, &o, (double)(end - start) / 1e6, &use, ok);
    if (!ok)
        fprintf(stderr, "agw-bench: %s\n", r.first_error);
    status = ok ? 0 : 1;
out:
    sessions_release(c, &r);
    dc_net_stop(net);
    iq_client_close(c);
    agw_tls_identity_unref(ids.ue);
    agw_tls_identity_unref(ids.core);
    free(r.sessions);
    free(r.block);
    pthread_mutex_destroy(&r.mu);
    return status;
}
