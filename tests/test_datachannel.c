/* Check suite: e2DCe data channels end to end through the real daemon: a DTLS+SCTP UE on the
 * access side, a plaintext UDP/SCTP or a UDP/DTLS/SCTP core peer, channels opened both ways (DCEP
 * and a=dcmap), every message compared at the far end, closes, refusals and hostile input. */
#define _GNU_SOURCE /* memmem */
#include "agw/msrp_frame.h"
#include "agw/stun.h"
#include "h248/h248.h"
#include "sctp/dcep.h"
#include "tests/harness.h"
#include "tls/cert.h"
#include "tls/fingerprint.h"
#include "tools/dc_endpoint.h"
#include "tools/iq_client.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS harness_ms(10000) /* longer under valgrind (AGW_TEST_SLOW) */
#define MAX_MESSAGE 262144

static pid_t child = -1;
static char log_path[64];
static struct iq_client *mgc;
static struct dc_net *net;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- The daemon ---- */

static void start_daemon(unsigned ports_per_realm)
{
    char iq[32], m1[32], access[64], core[64];
    uint16_t iq_port = harness_free_port(SOCK_DGRAM), mgc_port = harness_free_port(SOCK_DGRAM);
    /* Below the ephemeral range, apart from the other suites (plain and ASan may overlap). */
    uint16_t base = (uint16_t)(4000 + (getpid() % 10) * 2 * ports_per_realm);
    snprintf(iq, sizeof(iq), "127.0.0.1:%u", iq_port);
    snprintf(m1, sizeof(m1), "127.0.0.1:%u", mgc_port);
    snprintf(access, sizeof(access), "access,127.0.0.1,%u-%u", base, base + ports_per_realm - 1);
    snprintf(core, sizeof(core), "core,127.0.0.1,%u-%u", base + ports_per_realm,
             base + 2 * ports_per_realm - 1);
    snprintf(log_path, sizeof(log_path), "/tmp/test_datachannel.%d.log", (int)getpid());
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, STDERR_FILENO);
        /* Two workers: data-channel contexts must still land on the one that runs usrsctp. */
        execl(harness_agw_bin(), harness_agw_bin(), "--iq-listen", iq, "--mgc", m1, "--workers",
              "2", "--realm", access, "--realm", core, "--handshake-timeout-ms", "8000",
              "--ice-consent-timeout-ms", "3000", "--log-level", "debug", (char *)NULL);
        _exit(127);
    }
    ck_assert_int_eq(iq_client_open(m1, iq, NULL, NULL, &mgc), 0);
    ck_assert_msg(iq_client_wait_registration(mgc, harness_ms(5000), NULL, NULL, NULL) == 0,
                  "no registration, see %s", log_path);
}

static void setup(void)
{
    start_daemon(210);
    ck_assert_int_eq(dc_net_start(&net), 0);
}

/* SIGTERM: the daemon must exit 0 (ASan: no leak). */
static void teardown(void)
{
    dc_net_stop(net);
    net = NULL;
    if (child > 0) {
        int status = harness_stop_daemon(child, mgc, 10000);
        child = -1;
        iq_client_close(mgc);
        mgc = NULL;
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d, see %s",
                      status, log_path);
    }
    iq_client_close(mgc);
    mgc = NULL;
}

/* ---- Iq ---- */

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

/* The gateway's a=fingerprint in a reply's Local. */
static void reply_fingerprint(const char *reply, struct agw_tls_fingerprint *fp)
{
    const char *p = strstr(reply, "a=fingerprint:");
    ck_assert_msg(p != NULL, "no fingerprint in %s", reply);
    p += strlen("a=fingerprint:");
    ck_assert_int_eq(agw_tls_fingerprint_parse(p, strcspn(p, "\r\n}"), fp), 0);
}

/* ---- A session: the UE, the gateway's two terminations, the core peer ---- */

struct dc_session {
    unsigned ctx;
    char access_id[48], core_id[48];
    char access_reply[4096], core_reply[4096];
    uint16_t access_port, core_port;
    struct dc_endpoint *ue, *core;
    struct agw_tls_identity *ue_id;
};

struct session_opts {
    bool core_dtls;         /* core leg UDP/DTLS/SCTP (else UDP/SCTP) */
    bool ue_server;         /* the UE is the DTLS server (a=setup:passive): the gateway dials */
    bool wrong_fingerprint; /* the Remote names another certificate than the UE's */
    const char *dcmap;      /* a=dcmap lines for both Remotes, or NULL */
    bool ice;               /* ICE-lite at the access leg: the UE checks before DTLS */
};

#define UE_ICE_UFRAG "ueFrag01"
#define UE_ICE_PWD "uePasswordUePassword0123"

/* The value of attribute name ("a=ice-pwd:") in a reply, copied into out. */
static void reply_attr(const char *reply, const char *name, char *out, size_t cap)
{
    const char *p = strstr(reply, name);
    ck_assert_msg(p != NULL, "no %s in %s", name, reply);
    p += strlen(name);
    size_t n = strcspn(p, "\r\n}");
    ck_assert_uint_lt(n, cap);
    memcpy(out, p, n);
    out[n] = '\0';
}

static void sockaddr_lo(uint16_t port, struct sockaddr_in *a)
{
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

static void fingerprint_text(const struct agw_tls_identity *id, char *out, size_t cap)
{
    ck_assert_int_eq(agw_tls_fingerprint_format(agw_tls_identity_fingerprint(id), out, cap), 0);
}

/* Sets a session up over Iq and starts both endpoints; does not wait for them. */
static void session_open(struct dc_session *s, const struct session_opts *o)
{
    memset(s, 0, sizeof(*s));
    char text[4096], fp[AGW_TLS_FINGERPRINT_TEXT_MAX], core_fp[AGW_TLS_FINGERPRINT_TEXT_MAX];
    const char *dcmap = o->dcmap != NULL ? o->dcmap : "";

    /* The core peer answers the gateway's INIT (and, with DTLS, its ClientHello): the gateway
     * mirrors the UE's role toward the core so that stream ids stay the same. */
    struct agw_tls_identity *core_id = NULL;
    if (o->core_dtls)
        ck_assert_int_eq(agw_tls_identity_generate("core.test", 30, &core_id), 0);
    struct dc_endpoint_config cc = {.dtls = o->core_dtls,
                                    .role = o->ue_server ? AGW_TLS_CLIENT : AGW_TLS_SERVER,
                                    .identity = core_id,
                                    .max_message_size = MAX_MESSAGE,
                                    .peer_max_message_size = MAX_MESSAGE};
    ck_assert_int_eq(dc_endpoint_new(net, &cc, &s->core), 0);
    uint16_t core_peer_port = dc_endpoint_port(s->core);
    if (o->core_dtls)
        fingerprint_text(core_id, core_fp, sizeof(core_fp));
    const char *proto = o->core_dtls ? "UDP/DTLS/SCTP" : "UDP/SCTP";
    char core_extra[256] = "";
    if (o->core_dtls)
        snprintf(core_extra, sizeof(core_extra),
                 "a=fingerprint:%s\r\na=tls-id:core0001core0001core0001\r\n", core_fp);
    snprintf(text, sizeof(text),
             "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
             "%s webrtc-datachannel\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=application %u %s "
             "webrtc-datachannel\r\na=setup:%s\r\na=sctp-port:5000\r\na=max-message-size:%u\r\n"
             "%s%s}}}}}",
             proto, core_peer_port, proto, o->ue_server ? "active" : "passive", MAX_MESSAGE,
             core_extra, dcmap);
    request_ok(text, s->core_reply, sizeof(s->core_reply));
    s->ctx = (unsigned)harness_number_after(s->core_reply, "C=");
    added_id(s->core_reply, s->core_id, sizeof(s->core_id));
    s->core_port = (uint16_t)harness_number_after(s->core_reply, "m=application ");
    struct sockaddr_in gw_core;
    sockaddr_lo(s->core_port, &gw_core);
    ck_assert_int_eq(dc_endpoint_connect(s->core, (struct sockaddr *)&gw_core, sizeof(gw_core)), 0);
    if (o->core_dtls) {
        struct agw_tls_fingerprint gw;
        reply_fingerprint(s->core_reply, &gw);
        ck_assert_int_eq(dc_endpoint_set_peer_fingerprints(s->core, &gw, 1), 0);
        agw_tls_identity_unref(core_id);
    }

    /* The UE: its certificate, or another one when the test wants the fingerprint wrong. */
    ck_assert_int_eq(agw_tls_identity_generate("ue.test", 30, &s->ue_id), 0);
    struct agw_tls_identity *named = s->ue_id;
    if (o->wrong_fingerprint)
        ck_assert_int_eq(agw_tls_identity_generate("other.test", 30, &named), 0);
    fingerprint_text(named, fp, sizeof(fp));
    if (named != s->ue_id)
        agw_tls_identity_unref(named);
    struct dc_endpoint_config uc = {.dtls = true,
                                    .role = o->ue_server ? AGW_TLS_SERVER : AGW_TLS_CLIENT,
                                    .identity = s->ue_id,
                                    .max_message_size = MAX_MESSAGE,
                                    .peer_max_message_size = MAX_MESSAGE};
    /* With ICE the Remote's address does not matter (the checks decide): the UE is made after
     * the reply, which carries the credentials it checks with. */
    if (!o->ice)
        ck_assert_int_eq(dc_endpoint_new(net, &uc, &s->ue), 0);
    snprintf(text, sizeof(text),
             "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
             "UDP/DTLS/SCTP webrtc-datachannel\r\na=fingerprint:$\r\n%s},R{v=0\r\nc=IN IP4 "
             "127.0.0.1\r\nm=application %u UDP/DTLS/SCTP webrtc-datachannel\r\na=setup:%s\r\n"
             "a=fingerprint:%s\r\na=tls-id:ue000001ue000001ue000001\r\na=sctp-port:5000\r\n"
             "a=max-message-size:%u\r\n%s%s}}},E=5{tlsc/fail}}}",
             s->ctx, o->ice ? "a=ice-ufrag:$\r\na=ice-pwd:$\r\n" : "",
             o->ice ? 9 : dc_endpoint_port(s->ue), o->ue_server ? "passive" : "active", fp,
             MAX_MESSAGE,
             o->ice ? "a=ice-ufrag:" UE_ICE_UFRAG "\r\na=ice-pwd:" UE_ICE_PWD "\r\n" : "", dcmap);
    request_ok(text, s->access_reply, sizeof(s->access_reply));
    if (o->ice) {
        char ufrag[64], pwd[64];
        reply_attr(s->access_reply, "a=ice-ufrag:", ufrag, sizeof(ufrag));
        reply_attr(s->access_reply, "a=ice-pwd:", pwd, sizeof(pwd));
        uc.ice_peer_ufrag = ufrag;
        uc.ice_peer_pwd = pwd;
        uc.ice_ufrag = UE_ICE_UFRAG;
        ck_assert_int_eq(dc_endpoint_new(net, &uc, &s->ue), 0);
    }
    added_id(s->access_reply, s->access_id, sizeof(s->access_id));
    s->access_port = (uint16_t)harness_number_after(s->access_reply, "m=application ");
    struct agw_tls_fingerprint gw;
    reply_fingerprint(s->access_reply, &gw);
    ck_assert_int_eq(dc_endpoint_set_peer_fingerprints(s->ue, &gw, 1), 0);
    if (!o->ue_server) {
        struct sockaddr_in a;
        sockaddr_lo(s->access_port, &a);
        ck_assert_int_eq(dc_endpoint_connect(s->ue, (struct sockaddr *)&a, sizeof(a)), 0);
    }
}

static void session_wait_up(struct dc_session *s)
{
    int rc = dc_endpoint_wait_up(s->ue, WAIT_MS);
    char why[128] = "";
    dc_endpoint_failure(s->ue, why, sizeof(why));
    ck_assert_msg(rc == 0, "UE not up: %d %s (log %s)", rc, why, log_path);
    rc = dc_endpoint_wait_up(s->core, WAIT_MS);
    dc_endpoint_failure(s->core, why, sizeof(why));
    ck_assert_msg(rc == 0, "core peer not up: %d %s (log %s)", rc, why, log_path);
}

static void session_close(struct dc_session *s)
{
    char text[128], reply[4096], key[64];
    snprintf(text, sizeof(text), "C=%u{S=*}", s->ctx);
    request_ok(text, reply, sizeof(reply));
    /* Both legs report the datagram bytes they carried. */
    snprintf(key, sizeof(key), "S=%s{", s->access_id);
    const char *access = strstr(reply, key);
    ck_assert_msg(access != NULL, "no %s in %s", key, reply);
    ck_assert_uint_gt(harness_number_after(access, "nt/or="), 0);
    ck_assert_uint_gt(harness_number_after(access, "nt/os="), 0);
    dc_endpoint_free(s->ue);
    dc_endpoint_free(s->core);
    agw_tls_identity_unref(s->ue_id);
}

/* The next event of one kind on ep (others are skipped), within WAIT_MS. */
static void next_event(struct dc_endpoint *ep, enum dc_event_type type, struct dc_event *ev)
{
    uint64_t deadline = now_ms() + WAIT_MS;
    while (now_ms() < deadline) {
        int rc = dc_endpoint_next_event(ep, ev, (int)(deadline - now_ms()) + 1);
        if (rc == -ETIMEDOUT)
            break;
        ck_assert_int_eq(rc, 0);
        if (ev->type == type)
            return;
        dc_event_clear(ev);
    }
    ck_abort_msg("no event %d within %d ms (log %s)", type, WAIT_MS, log_path);
}

/* Opens a channel from `from`, sees it open at `to` with the same label and protocol, and
 * returns the stream ids on both sides. */
static void open_channel(struct dc_endpoint *from, struct dc_endpoint *to, uint8_t type,
                         const char *label, const char *protocol, uint16_t *from_stream,
                         uint16_t *to_stream)
{
    struct dc_channel_spec spec = {.channel_type = type, .label = label, .protocol = protocol};
    ck_assert_int_eq(dc_endpoint_open_channel(from, &spec, from_stream), 0);
    ck_assert_msg(dc_endpoint_wait_open(from, *from_stream, WAIT_MS) == 0,
                  "channel %u not acknowledged (log %s)", *from_stream, log_path);
    struct dc_event ev;
    next_event(to, DC_EVENT_CHANNEL_OPEN, &ev);
    ck_assert_str_eq(ev.label, label);
    ck_assert_str_eq(ev.protocol, protocol);
    ck_assert_uint_eq(ev.channel_type, type);
    *to_stream = ev.stream;
    dc_event_clear(&ev);
}

static uint8_t *pattern(size_t len, unsigned seed, bool text)
{
    uint8_t *p = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(p);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = text ? (uint8_t)('a' + (x >> 16) % 26) : (uint8_t)(x >> 16);
    }
    return p;
}

/* Sends a message of len bytes and checks that it arrives intact, as one message, on to_stream
 * with the right PPID. */
static void send_and_check(struct dc_endpoint *from, uint16_t from_stream, struct dc_endpoint *to,
                           uint16_t to_stream, size_t len, bool binary, unsigned seed)
{
    uint8_t *msg = pattern(len, seed, !binary);
    ck_assert_int_eq(dc_endpoint_send(from, from_stream, binary, msg, len, WAIT_MS), 0);
    struct dc_event ev;
    next_event(to, DC_EVENT_MESSAGE, &ev);
    ck_assert_uint_eq(ev.stream, to_stream);
    ck_assert_uint_eq(ev.len, len);
    ck_assert(ev.binary == binary);
    uint32_t ppid = len == 0 ? (binary ? DCEP_PPID_BINARY_EMPTY : DCEP_PPID_STRING_EMPTY)
                             : (binary ? DCEP_PPID_BINARY : DCEP_PPID_STRING);
    ck_assert_uint_eq(ev.ppid, ppid);
    ck_assert_msg(len == 0 || memcmp(ev.data, msg, len) == 0, "message of %zu bytes corrupted",
                  len);
    dc_event_clear(&ev);
    free(msg);
}

static const size_t sizes[] = {0, 1, 16384, 65536, MAX_MESSAGE};

/* Messages of every size, text and binary, both ways over one channel pair. */
static void exchange_all(struct dc_session *s, uint16_t ue_stream, uint16_t core_stream)
{
    unsigned seed = 1;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        for (int binary = 0; binary < 2; binary++) {
            send_and_check(s->ue, ue_stream, s->core, core_stream, sizes[i], binary, seed++);
            send_and_check(s->core, core_stream, s->ue, ue_stream, sizes[i], binary, seed++);
        }
}

/* ---- Cases ---- */

/* e2DCe terminating flow, plaintext UDP/SCTP core: the Local carries what the P-CSCF needs, the
 * UE's channel opens on the core with its label and protocol, messages cross both ways intact. */
START_TEST(test_flow_plain_core)
{
    struct dc_session s;
    struct session_opts o = {0};
    session_open(&s, &o);
    ck_assert_msg(strstr(s.access_reply, "a=setup:passive") != NULL, "%s", s.access_reply);
    ck_assert_msg(strstr(s.access_reply, "a=tls-id:") != NULL, "%s", s.access_reply);
    ck_assert_msg(strstr(s.access_reply, "a=sctp-port:5000") != NULL, "%s", s.access_reply);
    ck_assert_msg(strstr(s.access_reply, "a=max-message-size:262144") != NULL, "%s",
                  s.access_reply);
    ck_assert_msg(strstr(s.core_reply, "a=tls-id:") == NULL, "%s", s.core_reply);
    session_wait_up(&s);
    uint16_t ue_stream, core_stream;
    open_channel(s.ue, s.core, DCEP_CHANNEL_RELIABLE, "chat", "msrp", &ue_stream, &core_stream);
    ck_assert_uint_eq(ue_stream % 2, 0);       /* the UE is the DTLS client: even ids */
    ck_assert_uint_eq(core_stream, ue_stream); /* relayed 1:1 */
    exchange_all(&s, ue_stream, core_stream);
    /* Audit gives the live figures: 10 messages each way on 1 channel, and the wire octets. */
    char text[128], reply[4096];
    snprintf(text, sizeof(text), "C=%u{AV=%s{AT{SA}}}", s.ctx, s.access_id);
    request_ok(text, reply, sizeof(reply));
    ck_assert_msg(harness_number_after(reply, "dc/ms=") == 10 &&
                      harness_number_after(reply, "dc/mr=") == 10 &&
                      harness_number_after(reply, "dc/ch=") == 1,
                  "%s", reply);
    ck_assert_uint_gt(harness_number_after(reply, "nt/or="), 2 * MAX_MESSAGE);
    session_close(&s);
}
END_TEST

/* A UDP/DTLS/SCTP core: the gateway is a second DTLS endpoint with its own fingerprint. Channels
 * open both ways, an unordered one included. */
START_TEST(test_flow_dtls_core)
{
    struct dc_session s;
    struct session_opts o = {.core_dtls = true};
    session_open(&s, &o);
    ck_assert_msg(strstr(s.core_reply, "a=tls-id:") != NULL, "%s", s.core_reply);
    session_wait_up(&s);
    uint16_t ue_stream, core_stream;
    open_channel(s.ue, s.core, DCEP_CHANNEL_RELIABLE, "file", "", &ue_stream, &core_stream);
    ck_assert_uint_eq(core_stream, ue_stream);
    exchange_all(&s, ue_stream, core_stream);
    /* From the core side now, unordered: the core peer is a DTLS server, odd ids. */
    uint16_t core2, ue2;
    open_channel(s.core, s.ue, DCEP_CHANNEL_RELIABLE_UNORDERED, "game", "x-game", &core2, &ue2);
    ck_assert_uint_eq(core2 % 2, 1);
    ck_assert_uint_eq(ue2, core2);
    for (unsigned i = 0; i < 3; i++)
        send_and_check(s.core, core2, s.ue, ue2, 1000, true, 100 + i);
    session_close(&s);
}
END_TEST

/* The UE as DTLS server (a=setup:passive in its SDP): the gateway dials it as the client. */
START_TEST(test_flow_gateway_dtls_client)
{
    struct dc_session s;
    struct session_opts o = {.ue_server = true};
    session_open(&s, &o);
    ck_assert_msg(strstr(s.access_reply, "a=setup:active") != NULL, "%s", s.access_reply);
    session_wait_up(&s);
    uint16_t ue_stream, core_stream;
    open_channel(s.ue, s.core, DCEP_CHANNEL_RELIABLE, "srv", "proto", &ue_stream, &core_stream);
    ck_assert_uint_eq(ue_stream % 2, 1);
    ck_assert_uint_eq(core_stream, ue_stream);
    send_and_check(s.ue, ue_stream, s.core, core_stream, 4096, false, 7);
    send_and_check(s.core, core_stream, s.ue, ue_stream, 4096, true, 8);
    session_close(&s);
}
END_TEST

/* A channel negotiated in SDP (a=dcmap, no DCEP) carries messages on its stream both ways. */
START_TEST(test_dcmap_channel)
{
    struct dc_session s;
    struct session_opts o = {.dcmap = "a=dcmap:10 label=\"neg\";ordered=true\r\n"};
    session_open(&s, &o);
    struct dc_channel_spec spec = {.negotiated = true, .stream = 10, .label = "neg"};
    uint16_t st;
    ck_assert_int_eq(dc_endpoint_open_channel(s.ue, &spec, &st), 0);
    ck_assert_int_eq(dc_endpoint_open_channel(s.core, &spec, &st), 0);
    session_wait_up(&s);
    send_and_check(s.ue, 10, s.core, 10, 5000, false, 11);
    send_and_check(s.core, 10, s.ue, 10, 70000, true, 12);
    session_close(&s);
}
END_TEST

/* Closing a channel (stream reset) on one side closes its relayed twin on the other. */
START_TEST(test_channel_close)
{
    struct dc_session s;
    struct session_opts o = {0};
    session_open(&s, &o);
    session_wait_up(&s);
    uint16_t ue_stream, core_stream;
    open_channel(s.ue, s.core, DCEP_CHANNEL_RELIABLE, "a", "", &ue_stream, &core_stream);
    send_and_check(s.ue, ue_stream, s.core, core_stream, 10, false, 1);
    ck_assert_int_eq(dc_endpoint_close_channel(s.ue, ue_stream), 0);
    struct dc_event ev;
    next_event(s.core, DC_EVENT_CHANNEL_CLOSED, &ev);
    ck_assert_uint_eq(ev.stream, core_stream);
    dc_event_clear(&ev);
    next_event(s.ue, DC_EVENT_CHANNEL_CLOSED, &ev);
    ck_assert_uint_eq(ev.stream, ue_stream);
    dc_event_clear(&ev);
    /* A new channel afterwards still works. */
    uint16_t ue2, core2;
    open_channel(s.ue, s.core, DCEP_CHANNEL_RELIABLE, "b", "", &ue2, &core2);
    send_and_check(s.core, core2, s.ue, ue2, 100, false, 2);
    session_close(&s);
}
END_TEST

/* The UE presents a certificate the Remote does not name: refused with an alert, a Notify with
 * the cause reaches the ALG, and nothing reaches the core. */
START_TEST(test_wrong_fingerprint)
{
    struct dc_session s;
    struct session_opts o = {.wrong_fingerprint = true};
    session_open(&s, &o);
    int rc = dc_endpoint_wait_up(s.ue, WAIT_MS);
    ck_assert_msg(rc == -ECONNABORTED || rc == -EPIPE || rc == -ECONNRESET, "UE: %d (log %s)", rc,
                  log_path);
    const char *n = harness_wait_notify(mgc, 3000);
    ck_assert_msg(strstr(n, "tlsc/fail{cause=\"fingerprint mismatch") != NULL, "Notify '%s' (%s)",
                  n, log_path);
    struct dc_event ev;
    for (;;) {
        rc = dc_endpoint_next_event(s.core, &ev, 500);
        if (rc == -ETIMEDOUT)
            break;
        ck_assert_msg(ev.type != DC_EVENT_MESSAGE && ev.type != DC_EVENT_CHANNEL_OPEN,
                      "something reached the core");
        dc_event_clear(&ev);
    }
    session_close(&s);
}
END_TEST

/* Datagrams from another address, garbage from it, and malformed DCEP from the UE: the session
 * keeps serving. */
START_TEST(test_hostile_input)
{
    struct dc_session s;
    struct session_opts o = {0};
    session_open(&s, &o);
    session_wait_up(&s);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a;
    sockaddr_lo(s.access_port, &a);
    uint8_t junk[1500];
    for (unsigned i = 0; i < 500; i++) {
        for (size_t k = 0; k < sizeof(junk); k++)
            junk[k] = (uint8_t)(i * 31 + k * 7);
        junk[0] = (uint8_t)(i % 3 == 0 ? 22 : i % 3 == 1 ? 23 : 0x55); /* DTLS-looking or not */
        sendto(fd, junk, 1 + i % sizeof(junk), 0, (struct sockaddr *)&a, sizeof(a));
    }
    close(fd);
    harness_sleep_ms(1100); /* hostile-input log lines are limited per second and leg */
    /* From the UE itself: malformed DCEP (truncated OPEN, unknown type, an OPEN on the gateway's
     * parity) and data on a stream with no channel. Each is refused; the association lives. */
    static const uint8_t truncated_open[] = {0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    static const uint8_t unknown_type[] = {0x07};
    static const uint8_t valid_open[] = {0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                         0x00, 0x00, 0x01, 0x00, 0x00, 'x'};
    ck_assert_int_eq(dc_endpoint_send_raw(s.ue, 20, 50, truncated_open, sizeof(truncated_open)), 0);
    ck_assert_int_eq(dc_endpoint_send_raw(s.ue, 22, 50, unknown_type, sizeof(unknown_type)), 0);
    ck_assert_int_eq(dc_endpoint_send_raw(s.ue, 21, 50, valid_open, sizeof(valid_open)), 0);
    ck_assert_int_eq(dc_endpoint_send_raw(s.ue, 24, 51, "orphan", 6), 0);
    uint16_t ue_stream, core_stream;
    open_channel(s.ue, s.core, DCEP_CHANNEL_RELIABLE, "after", "junk", &ue_stream, &core_stream);
    send_and_check(s.ue, ue_stream, s.core, core_stream, 30000, true, 3);
    send_and_check(s.core, core_stream, s.ue, ue_stream, 30000, true, 4);
    ck_assert(harness_log_contains(log_path, "other than the Remote's"));
    ck_assert(harness_log_contains(log_path, "malformed DCEP on stream 20"));
    ck_assert(harness_log_contains(log_path, "malformed DCEP on stream 22"));
    ck_assert(harness_log_contains(log_path, "DCEP OPEN on stream 21 refused"));
    ck_assert(harness_log_contains(log_path, "message on stream 24, which has no channel"));
    session_close(&s);
}
END_TEST

/* ICE-lite: the Local asks for the gateway's credentials with $; the reply carries them with
 * a=ice-lite and the host candidate; the UE's checks pass, DTLS follows from the checked address,
 * and data flows. Checks with a wrong password get 401; an unchecked address is not heard. */
START_TEST(test_ice_lite)
{
    struct dc_session s;
    struct session_opts o = {.ice = true};
    session_open(&s, &o);
    ck_assert_msg(strstr(s.access_reply, "a=ice-lite") != NULL, "%s", s.access_reply);
    char cand[128], expect[64];
    reply_attr(s.access_reply, "a=candidate:", cand, sizeof(cand));
    snprintf(expect, sizeof(expect), "127.0.0.1 %u typ host", s.access_port);
    ck_assert_msg(strstr(cand, expect) != NULL, "candidate '%s'", cand);
    char ufrag[64], pwd[64];
    reply_attr(s.access_reply, "a=ice-ufrag:", ufrag, sizeof(ufrag));
    reply_attr(s.access_reply, "a=ice-pwd:", pwd, sizeof(pwd));
    ck_assert_uint_ge(strlen(ufrag), 4);
    ck_assert_uint_ge(strlen(pwd), 22);
    session_wait_up(&s);
    uint16_t us, cs;
    open_channel(s.ue, s.core, DCEP_CHANNEL_RELIABLE, "ice", "", &us, &cs);
    send_and_check(s.ue, us, s.core, cs, 20000, true, 1);
    send_and_check(s.core, cs, s.ue, us, 20000, false, 2);

    /* Another address: a check with the wrong password is answered 401, one with the right
     * password succeeds (and reports that address) without taking the session over. */
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in gw, me;
    sockaddr_lo(s.access_port, &gw);
    sockaddr_lo(0, &me);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&me, sizeof(me)), 0);
    socklen_t me_len = sizeof(me);
    getsockname(fd, (struct sockaddr *)&me, &me_len);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char user[128];
    snprintf(user, sizeof(user), "%s:%s", ufrag, UE_ICE_UFRAG);
    struct agw_stun_request req = {
        .controlling = true, .priority = 1, .username = user, .username_len = strlen(user)};
    memcpy(req.tid, "tidtidtidtid", 12);
    uint8_t msg[512], answer[512];
    size_t len;
    ck_assert_int_eq(
        agw_stun_build_request(&req, "wrongPasswordWrongPassword", msg, sizeof(msg), &len), 0);
    sendto(fd, msg, len, 0, (struct sockaddr *)&gw, sizeof(gw));
    ssize_t n = recv(fd, answer, sizeof(answer), 0);
    ck_assert_int_ge(n, 20);
    ck_assert_uint_eq((answer[0] << 8) | answer[1], 0x0111); /* binding error response */
    ck_assert_msg(memmem(answer, (size_t)n, "\x00\x00\x04\x01", 4) != NULL, "no 401 in the error");
    ck_assert_int_eq(agw_stun_build_request(&req, pwd, msg, sizeof(msg), &len), 0);
    sendto(fd, msg, len, 0, (struct sockaddr *)&gw, sizeof(gw));
    n = recv(fd, answer, sizeof(answer), 0);
    ck_assert_int_ge(n, 20);
    uint8_t tid[12];
    struct sockaddr_storage mapped;
    ck_assert_int_eq(agw_stun_parse_success(answer, (size_t)n, pwd, tid, &mapped), 0);
    ck_assert_uint_eq(((struct sockaddr_in *)&mapped)->sin_port, me.sin_port);
    /* Media from that address is not heard; the UE's session goes on. */
    sendto(fd, "\x16\xfe\xfd junk", 8, 0, (struct sockaddr *)&gw, sizeof(gw));
    close(fd);
    send_and_check(s.ue, us, s.core, cs, 3000, true, 3);
    session_close(&s);
}
END_TEST

/* ICE consent (RFC 7675): an address that passed a check and then goes silent loses consent:
 * the gateway stops sending to it and tells the ALG. */
START_TEST(test_ice_consent_expiry)
{
    char text[4096], reply[4096];
    snprintf(text, sizeof(text),
             "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
             "UDP/SCTP webrtc-datachannel\r\n}}}}}");
    request_ok(text, reply, sizeof(reply));
    unsigned ctx = (unsigned)harness_number_after(reply, "C=");
    snprintf(text, sizeof(text),
             "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
             "UDP/DTLS/SCTP webrtc-datachannel\r\na=fingerprint:$\r\na=ice-ufrag:$\r\n"
             "a=ice-pwd:$\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=application 9 UDP/DTLS/SCTP "
             "webrtc-datachannel\r\na=setup:active\r\na=fingerprint:sha-256 "
             "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:"
             "CC:DD:EE:FF\r\na=ice-ufrag:" UE_ICE_UFRAG "\r\na=ice-pwd:" UE_ICE_PWD "\r\n}}},"
             "E=5{tlsc/fail}}}",
             ctx);
    request_ok(text, reply, sizeof(reply));
    char ufrag[64], pwd[64];
    reply_attr(reply, "a=ice-ufrag:", ufrag, sizeof(ufrag));
    reply_attr(reply, "a=ice-pwd:", pwd, sizeof(pwd));
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in gw;
    sockaddr_lo((uint16_t)harness_number_after(reply, "m=application "), &gw);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char user[128];
    snprintf(user, sizeof(user), "%s:%s", ufrag, UE_ICE_UFRAG);
    struct agw_stun_request req = {.controlling = true,
                                   .use_candidate = true,
                                   .priority = 1,
                                   .username = user,
                                   .username_len = strlen(user)};
    memcpy(req.tid, "consent00001", 12);
    uint8_t msg[512], answer[512];
    size_t len;
    ck_assert_int_eq(agw_stun_build_request(&req, pwd, msg, sizeof(msg), &len), 0);
    sendto(fd, msg, len, 0, (struct sockaddr *)&gw, sizeof(gw));
    ssize_t n = recv(fd, answer, sizeof(answer), 0);
    ck_assert_int_ge(n, 20);
    uint8_t tid[12];
    struct sockaddr_storage mapped;
    ck_assert_int_eq(agw_stun_parse_success(answer, (size_t)n, pwd, tid, &mapped), 0);
    /* The gateway, DTLS server, now waits for a ClientHello from here; none comes, and no
     * check either: consent ends after the configured 3 s. */
    const char *notify = harness_wait_notify(mgc, 8000);
    ck_assert_msg(strstr(notify, "tlsc/fail{cause=\"ICE consent expired") != NULL,
                  "Notify '%s' (log %s)", notify, log_path);
    ck_assert(harness_log_contains(log_path, "ICE consent expired: sending stopped"));
    /* A new check renews it. */
    memcpy(req.tid, "consent00002", 12);
    ck_assert_int_eq(agw_stun_build_request(&req, pwd, msg, sizeof(msg), &len), 0);
    sendto(fd, msg, len, 0, (struct sockaddr *)&gw, sizeof(gw));
    n = recv(fd, answer, sizeof(answer), 0);
    ck_assert_int_ge(n, 20);
    for (int i = 0; i < harness_ms(100) && !harness_log_contains(log_path, "ICE consent renewed");
         i++)
        harness_sleep_ms(10);
    ck_assert(harness_log_contains(log_path, "ICE consent renewed"));
    close(fd);
    snprintf(text, sizeof(text), "C=%u{S=*}", ctx);
    request_ok(text, reply, sizeof(reply));
}
END_TEST

/* A Modify whose Remote carries a new a=tls-id (RFC 8842) asks for a new association: the old
 * one ends, the UE's new endpoint handshakes again and channels flow. */
START_TEST(test_new_tls_id)
{
    struct dc_session s;
    struct session_opts o = {0};
    session_open(&s, &o);
    session_wait_up(&s);
    struct dc_endpoint *ue2;
    struct dc_endpoint_config uc = {.dtls = true,
                                    .role = AGW_TLS_CLIENT,
                                    .identity = s.ue_id,
                                    .max_message_size = MAX_MESSAGE,
                                    .peer_max_message_size = MAX_MESSAGE};
    ck_assert_int_eq(dc_endpoint_new(net, &uc, &ue2), 0);
    char fp[AGW_TLS_FINGERPRINT_TEXT_MAX], text[2048], reply[4096];
    fingerprint_text(s.ue_id, fp, sizeof(fp));
    snprintf(text, sizeof(text),
             "C=%u{MF=%s{M{R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=application %u UDP/DTLS/SCTP "
             "webrtc-datachannel\r\na=setup:active\r\na=fingerprint:%s\r\n"
             "a=tls-id:ue000002ue000002ue000002\r\na=sctp-port:5000\r\n"
             "a=max-message-size:%u\r\n}}}}",
             s.ctx, s.access_id, dc_endpoint_port(ue2), fp, MAX_MESSAGE);
    request_ok(text, reply, sizeof(reply));
    /* The old association is gone... */
    bool down = false;
    for (int i = 0; i < 100 && !down; i++) {
        struct dc_event ev;
        if (dc_endpoint_next_event(s.ue, &ev, 50) == 0) {
            down = ev.type == DC_EVENT_DOWN;
            dc_event_clear(&ev);
        }
    }
    ck_assert_msg(down, "the old association was not ended (log %s)", log_path);
    ck_assert(harness_log_contains(log_path, "new association asked for"));
    /* ...and the new one works. */
    struct agw_tls_fingerprint gw;
    reply_fingerprint(s.access_reply, &gw);
    ck_assert_int_eq(dc_endpoint_set_peer_fingerprints(ue2, &gw, 1), 0);
    struct sockaddr_in a;
    sockaddr_lo(s.access_port, &a);
    ck_assert_int_eq(dc_endpoint_connect(ue2, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_msg(dc_endpoint_wait_up(ue2, WAIT_MS) == 0, "new association not up (log %s)",
                  log_path);
    uint16_t us, cs;
    open_channel(ue2, s.core, DCEP_CHANNEL_RELIABLE, "again", "", &us, &cs);
    send_and_check(ue2, us, s.core, cs, 1234, false, 5);
    send_and_check(s.core, cs, ue2, us, 4321, true, 6);
    dc_endpoint_free(ue2);
    session_close(&s);
}
END_TEST

/* ---- MSRP over the data channel ⇄ TCP/MSRP core (RFC 8873 interworking) ---- */

static int tcp_listen_lo(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    sockaddr_lo(0, &a);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    ck_assert_int_eq(listen(fd, 4), 0);
    return fd;
}

/* Reads exactly len bytes from fd within a few seconds. */
static void read_exact(int fd, uint8_t *buf, size_t len)
{
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (size_t got = 0; got < len;) {
        ssize_t n = recv(fd, buf + got, len - got, 0);
        ck_assert_msg(n > 0, "core read: %zd after %zu of %zu bytes (log %s)", n, got, len,
                      log_path);
        got += (size_t)n;
    }
}

static size_t msrp_send_frame(char *out, size_t cap, const char *tid, const uint8_t *body,
                              size_t len)
{
    int n = snprintf(out, cap,
                     "MSRP %s SEND\r\nTo-Path: msrp://core.test:7777/s1;tcp\r\n"
                     "From-Path: msrp://ue.test:9/s2;dc\r\nMessage-ID: m-%s\r\n"
                     "Byte-Range: 1-%zu/%zu\r\nContent-Type: text/plain\r\n\r\n",
                     tid, tid, len, len);
    ck_assert(n > 0 && (size_t)n + len + 64 < cap);
    memcpy(out + n, body, len);
    int m = snprintf(out + n + len, cap - (size_t)n - len, "\r\n-------%s$\r\n", tid);
    return (size_t)n + len + (size_t)m;
}

START_TEST(test_msrp_bridge)
{
    enum { UE_MAX = 16384, BIG = 100000 };
    uint16_t core_port;
    int listen_fd = tcp_listen_lo(&core_port);
    char text[4096], core_reply[4096], access_reply[4096], fp[AGW_TLS_FINGERPRINT_TEXT_MAX];
    snprintf(text, sizeof(text),
             "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=message $ "
             "TCP/MSRP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message %u TCP/MSRP *\r\n"
             "a=setup:passive\r\n}}}}}",
             core_port);
    request_ok(text, core_reply, sizeof(core_reply));
    unsigned ctx = (unsigned)harness_number_after(core_reply, "C=");
    struct agw_tls_identity *ue_id;
    ck_assert_int_eq(agw_tls_identity_generate("ue.test", 30, &ue_id), 0);
    fingerprint_text(ue_id, fp, sizeof(fp));
    struct dc_endpoint_config uc = {.dtls = true,
                                    .role = AGW_TLS_CLIENT,
                                    .identity = ue_id,
                                    .max_message_size = UE_MAX,
                                    .peer_max_message_size = MAX_MESSAGE};
    struct dc_endpoint *ue;
    ck_assert_int_eq(dc_endpoint_new(net, &uc, &ue), 0);
    snprintf(text, sizeof(text),
             "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
             "UDP/DTLS/SCTP webrtc-datachannel\r\na=fingerprint:$\r\n},R{v=0\r\nc=IN IP4 "
             "127.0.0.1\r\nm=application %u UDP/DTLS/SCTP webrtc-datachannel\r\na=setup:active\r\n"
             "a=fingerprint:%s\r\na=tls-id:ue000001ue000001ue000001\r\na=sctp-port:5000\r\n"
             "a=max-message-size:%u\r\n}}}}}",
             ctx, dc_endpoint_port(ue), fp, UE_MAX);
    request_ok(text, access_reply, sizeof(access_reply));
    struct agw_tls_fingerprint gw;
    reply_fingerprint(access_reply, &gw);
    ck_assert_int_eq(dc_endpoint_set_peer_fingerprints(ue, &gw, 1), 0);
    struct sockaddr_in a;
    sockaddr_lo((uint16_t)harness_number_after(access_reply, "m=application "), &a);
    ck_assert_int_eq(dc_endpoint_connect(ue, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_msg(dc_endpoint_wait_up(ue, WAIT_MS) == 0, "UE not up (log %s)", log_path);
    struct dc_channel_spec spec = {
        .channel_type = DCEP_CHANNEL_RELIABLE, .label = "chat", .protocol = "msrp"};
    uint16_t stream;
    ck_assert_int_eq(dc_endpoint_open_channel(ue, &spec, &stream), 0);
    ck_assert_int_eq(dc_endpoint_wait_open(ue, stream, WAIT_MS), 0);
    /* The MSRP channel is open: the gateway dials the core. */
    struct pollfd pfd = {.fd = listen_fd, .events = POLLIN};
    ck_assert_msg(poll(&pfd, 1, 5000) == 1, "the gateway did not dial the core (log %s)", log_path);
    int core = accept(listen_fd, NULL, NULL);
    ck_assert_int_ge(core, 0);

    /* UE → core: each channel message reaches TCP intact. */
    static char frame[BIG + 1024];
    uint8_t *body = pattern(3000, 1, true);
    size_t len = msrp_send_frame(frame, sizeof(frame), "ue000001", body, 3000);
    ck_assert_int_eq(dc_endpoint_send(ue, stream, false, frame, len, WAIT_MS), 0);
    uint8_t *got = malloc(len);
    ck_assert_ptr_nonnull(got);
    read_exact(core, got, len);
    ck_assert(memcmp(got, frame, len) == 0);
    free(got);
    free(body);

    /* core → UE: a 100 kB SEND arrives re-chunked to the UE's a=max-message-size, each piece a
     * valid MSRP chunk, the bodies together the original, the last piece flagged '$'. */
    body = pattern(BIG, 2, true);
    len = msrp_send_frame(frame, sizeof(frame), "core0001", body, BIG);
    ck_assert_int_eq(send(core, frame, len, 0), (ssize_t)len);
    uint8_t *joined = malloc(BIG);
    size_t joined_len = 0;
    char piece_tids[64][40];
    char last_flag = 0;
    unsigned pieces = 0;
    while (joined_len < BIG) {
        struct dc_event ev;
        next_event(ue, DC_EVENT_MESSAGE, &ev);
        ck_assert_uint_le(ev.len, UE_MAX);
        struct agw_msrp_frame_info info;
        ck_assert_msg(agw_msrp_frame_parse(ev.data, ev.len, &info) == 0, "piece %u not MSRP",
                      pieces);
        ck_assert(info.has_range && info.range.start == joined_len + 1 && info.range.total == BIG);
        ck_assert_uint_le(joined_len + info.body_len, BIG);
        ck_assert_uint_lt(pieces, 64);
        snprintf(piece_tids[pieces], sizeof(piece_tids[pieces]), "%.*s", (int)info.tid_len,
                 (const char *)info.tid);
        memcpy(joined + joined_len, ev.data + info.body_off, info.body_len);
        joined_len += info.body_len;
        last_flag = info.flag;
        pieces++;
        dc_event_clear(&ev);
    }
    ck_assert_uint_ge(pieces, BIG / UE_MAX);
    ck_assert_int_eq(last_flag, '$');
    ck_assert(memcmp(joined, body, BIG) == 0);
    free(joined);
    free(body);

    /* The UE answers every piece; the core hears one 200 for its SEND, under its own id. */
    char answer[256];
    for (unsigned i = 0; i < pieces; i++) {
        int n = snprintf(answer, sizeof(answer),
                         "MSRP %s 200 OK\r\nTo-Path: msrp://core.test:7777/s1;tcp\r\n"
                         "From-Path: msrp://ue.test:9/s2;dc\r\n-------%s$\r\n",
                         piece_tids[i], piece_tids[i]);
        ck_assert_int_eq(dc_endpoint_send(ue, stream, false, answer, (size_t)n, WAIT_MS), 0);
    }
    int n = snprintf(answer, sizeof(answer),
                     "MSRP core0001 200 OK\r\nTo-Path: msrp://core.test:7777/s1;tcp\r\n"
                     "From-Path: msrp://ue.test:9/s2;dc\r\n-------core0001$\r\n");
    uint8_t heard[256];
    read_exact(core, heard, (size_t)n);
    ck_assert_msg(memcmp(heard, answer, (size_t)n) == 0, "core heard '%.*s'", n, heard);
    struct pollfd more = {.fd = core, .events = POLLIN};
    ck_assert_msg(poll(&more, 1, 300) == 0, "the core heard more than one answer");

    /* A response fits as it is. */
    const char *ok = "MSRP ue000001 200 OK\r\nTo-Path: msrp://ue.test:9/s2;dc\r\n"
                     "From-Path: msrp://core.test:7777/s1;tcp\r\n-------ue000001$\r\n";
    ck_assert_int_eq(send(core, ok, strlen(ok), 0), (ssize_t)strlen(ok));
    struct dc_event ev;
    next_event(ue, DC_EVENT_MESSAGE, &ev);
    ck_assert_uint_eq(ev.len, strlen(ok));
    ck_assert(memcmp(ev.data, ok, ev.len) == 0);
    dc_event_clear(&ev);

    snprintf(text, sizeof(text), "C=%u{S=*}", ctx);
    request_ok(text, core_reply, sizeof(core_reply));
    dc_endpoint_free(ue);
    agw_tls_identity_unref(ue_id);
    close(core);
    close(listen_fd);
}
END_TEST

static int accept_any_cert(int ok, X509_STORE_CTX *store)
{
    (void)ok;
    (void)store;
    return 1; /* self-signed: the fingerprint in the SDP is the check */
}

/* A TLS core (TCP/TLS/MSRP toward the core, "when asked"): the gateway dials it as TLS client,
 * checks its certificate against the core Remote's fingerprint, and the MSRP channel's
 * messages cross the TLS connection both ways. */
START_TEST(test_msrp_bridge_tls_core)
{
    uint16_t core_port;
    int listen_fd = tcp_listen_lo(&core_port);
    struct agw_tls_identity *core_id, *ue_id;
    ck_assert_int_eq(agw_tls_identity_generate("core.test", 30, &core_id), 0);
    ck_assert_int_eq(agw_tls_identity_generate("ue.test", 30, &ue_id), 0);
    char text[4096], reply[4096], access_reply[4096], core_fp[AGW_TLS_FINGERPRINT_TEXT_MAX],
        fp[AGW_TLS_FINGERPRINT_TEXT_MAX];
    fingerprint_text(core_id, core_fp, sizeof(core_fp));
    fingerprint_text(ue_id, fp, sizeof(fp));
    snprintf(text, sizeof(text),
             "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=message $ "
             "TCP/TLS/MSRP *\r\na=fingerprint:$\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message %u "
             "TCP/TLS/MSRP *\r\na=setup:passive\r\na=fingerprint:%s\r\n}}}}}",
             core_port, core_fp);
    request_ok(text, reply, sizeof(reply));
    unsigned ctx = (unsigned)harness_number_after(reply, "C=");
    struct agw_tls_fingerprint gw_core;
    reply_fingerprint(reply, &gw_core);
    struct dc_endpoint *ue;
    struct dc_endpoint_config uc = {.dtls = true,
                                    .role = AGW_TLS_CLIENT,
                                    .identity = ue_id,
                                    .max_message_size = MAX_MESSAGE,
                                    .peer_max_message_size = MAX_MESSAGE};
    ck_assert_int_eq(dc_endpoint_new(net, &uc, &ue), 0);
    snprintf(text, sizeof(text),
             "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
             "UDP/DTLS/SCTP webrtc-datachannel\r\na=fingerprint:$\r\n},R{v=0\r\nc=IN IP4 "
             "127.0.0.1\r\nm=application %u UDP/DTLS/SCTP webrtc-datachannel\r\na=setup:active\r\n"
             "a=fingerprint:%s\r\na=tls-id:ue000001ue000001ue000001\r\na=sctp-port:5000\r\n"
             "a=max-message-size:%u\r\n}}}}}",
             ctx, dc_endpoint_port(ue), fp, MAX_MESSAGE);
    request_ok(text, access_reply, sizeof(access_reply));
    struct agw_tls_fingerprint gw;
    reply_fingerprint(access_reply, &gw);
    ck_assert_int_eq(dc_endpoint_set_peer_fingerprints(ue, &gw, 1), 0);
    struct sockaddr_in a;
    sockaddr_lo((uint16_t)harness_number_after(access_reply, "m=application "), &a);
    ck_assert_int_eq(dc_endpoint_connect(ue, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_msg(dc_endpoint_wait_up(ue, WAIT_MS) == 0, "UE not up (log %s)", log_path);
    struct dc_channel_spec spec = {
        .channel_type = DCEP_CHANNEL_RELIABLE, .label = "msrp", .protocol = "msrp"};
    uint16_t ms;
    ck_assert_int_eq(dc_endpoint_open_channel(ue, &spec, &ms), 0);
    ck_assert_int_eq(dc_endpoint_wait_open(ue, ms, WAIT_MS), 0);
    /* A message sent now waits for the TLS core to be up. */
    static char frame[4096];
    uint8_t *body = pattern(2000, 5, true);
    size_t len = msrp_send_frame(frame, sizeof(frame), "tls00001", body, 2000);
    ck_assert_int_eq(dc_endpoint_send(ue, ms, false, frame, len, WAIT_MS), 0);

    struct pollfd pfd = {.fd = listen_fd, .events = POLLIN};
    ck_assert_msg(poll(&pfd, 1, 5000) == 1, "the gateway did not dial the core (log %s)", log_path);
    int tcp = accept(listen_fd, NULL, NULL);
    ck_assert_int_ge(tcp, 0);
    struct timeval tv = {5, 0};
    setsockopt(tcp, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(tcp, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    ck_assert_int_eq(SSL_CTX_use_certificate(sctx, agw_tls_identity_cert(core_id)), 1);
    ck_assert_int_eq(SSL_CTX_use_PrivateKey(sctx, agw_tls_identity_key(core_id)), 1);
    SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, accept_any_cert);
    SSL *ssl = SSL_new(sctx);
    SSL_set_fd(ssl, tcp);
    ck_assert_msg(SSL_accept(ssl) == 1, "TLS with the gateway failed (log %s)", log_path);
    /* The gateway presented the certificate its core Local named. */
    X509 *peer = SSL_get1_peer_certificate(ssl);
    ck_assert_ptr_nonnull(peer);
    ck_assert_int_eq(agw_tls_fingerprint_verify(peer, &gw_core, 1), 0);
    X509_free(peer);
    uint8_t got[4096];
    for (size_t n = 0; n < len;) {
        int r = SSL_read(ssl, got + n, (int)(len - n));
        ck_assert_msg(r > 0, "read from the gateway: %d (log %s)", r, log_path);
        n += (size_t)r;
    }
    ck_assert(memcmp(got, frame, len) == 0);
    free(body);
    /* And back: a response from the TLS core reaches the UE intact. */
    const char *ok = "MSRP tls00001 200 OK\r\nTo-Path: msrp://ue.test:9/s2;dc\r\n"
                     "From-Path: msrp://core.test:7777/s1;tcp\r\n-------tls00001$\r\n";
    ck_assert_int_eq(SSL_write(ssl, ok, (int)strlen(ok)), (int)strlen(ok));
    struct dc_event ev;
    next_event(ue, DC_EVENT_MESSAGE, &ev);
    ck_assert_uint_eq(ev.len, strlen(ok));
    ck_assert(memcmp(ev.data, ok, ev.len) == 0);
    dc_event_clear(&ev);

    snprintf(text, sizeof(text), "C=%u{S=*}", ctx);
    request_ok(text, reply, sizeof(reply));
    SSL_free(ssl);
    SSL_CTX_free(sctx);
    close(tcp);
    close(listen_fd);
    dc_endpoint_free(ue);
    agw_tls_identity_unref(ue_id);
    agw_tls_identity_unref(core_id);
}
END_TEST

/* One association, two core legs: the MSRP channel goes to the TCP/MSRP core, any other channel
 * to the data-channel core (RFC 8873 §4: the other channels keep their own path). */
START_TEST(test_msrp_and_other_channels)
{
    uint16_t msrp_port;
    int listen_fd = tcp_listen_lo(&msrp_port);
    char text[4096], reply[4096], access_reply[4096], fp[AGW_TLS_FINGERPRINT_TEXT_MAX];
    /* The data-channel core peer (plain UDP/SCTP) and the TCP/MSRP core, in one context. */
    struct dc_endpoint *core;
    struct dc_endpoint_config cc = {.role = AGW_TLS_SERVER,
                                    .max_message_size = MAX_MESSAGE,
                                    .peer_max_message_size = MAX_MESSAGE};
    ck_assert_int_eq(dc_endpoint_new(net, &cc, &core), 0);
    snprintf(
        text, sizeof(text),
        "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
        "UDP/SCTP webrtc-datachannel\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=application %u "
        "UDP/SCTP webrtc-datachannel\r\na=setup:passive\r\na=sctp-port:5000\r\n"
        "a=max-message-size:%u\r\n}}}},A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 "
        "$\r\nm=message $ TCP/MSRP *\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=message %u TCP/MSRP "
        "*\r\na=setup:passive\r\n}}}}}",
        dc_endpoint_port(core), MAX_MESSAGE, msrp_port);
    request_ok(text, reply, sizeof(reply));
    unsigned ctx = (unsigned)harness_number_after(reply, "C=");
    struct sockaddr_in a;
    sockaddr_lo((uint16_t)harness_number_after(reply, "m=application "), &a);
    ck_assert_int_eq(dc_endpoint_connect(core, (struct sockaddr *)&a, sizeof(a)), 0);
    struct agw_tls_identity *ue_id;
    ck_assert_int_eq(agw_tls_identity_generate("ue.test", 30, &ue_id), 0);
    fingerprint_text(ue_id, fp, sizeof(fp));
    struct dc_endpoint *ue;
    struct dc_endpoint_config uc = {.dtls = true,
                                    .role = AGW_TLS_CLIENT,
                                    .identity = ue_id,
                                    .max_message_size = MAX_MESSAGE,
                                    .peer_max_message_size = MAX_MESSAGE};
    ck_assert_int_eq(dc_endpoint_new(net, &uc, &ue), 0);
    snprintf(text, sizeof(text),
             "C=%u{A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
             "UDP/DTLS/SCTP webrtc-datachannel\r\na=fingerprint:$\r\n},R{v=0\r\nc=IN IP4 "
             "127.0.0.1\r\nm=application %u UDP/DTLS/SCTP webrtc-datachannel\r\na=setup:active\r\n"
             "a=fingerprint:%s\r\na=tls-id:ue000001ue000001ue000001\r\na=sctp-port:5000\r\n"
             "a=max-message-size:%u\r\n}}}}}",
             ctx, dc_endpoint_port(ue), fp, MAX_MESSAGE);
    request_ok(text, access_reply, sizeof(access_reply));
    struct agw_tls_fingerprint gw;
    reply_fingerprint(access_reply, &gw);
    ck_assert_int_eq(dc_endpoint_set_peer_fingerprints(ue, &gw, 1), 0);
    sockaddr_lo((uint16_t)harness_number_after(access_reply, "m=application "), &a);
    ck_assert_int_eq(dc_endpoint_connect(ue, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_msg(dc_endpoint_wait_up(ue, WAIT_MS) == 0, "UE not up (log %s)", log_path);
    ck_assert_msg(dc_endpoint_wait_up(core, WAIT_MS) == 0, "core not up (log %s)", log_path);

    /* A chat channel reaches the data-channel core... */
    uint16_t us, cs;
    open_channel(ue, core, DCEP_CHANNEL_RELIABLE, "chat", "", &us, &cs);
    send_and_check(ue, us, core, cs, 4000, false, 1);
    send_and_check(core, cs, ue, us, 5000, true, 2);
    /* ...the MSRP channel reaches the TCP core, and nothing of it the data-channel core. */
    struct dc_channel_spec spec = {
        .channel_type = DCEP_CHANNEL_RELIABLE, .label = "msrp", .protocol = "msrp"};
    uint16_t ms;
    ck_assert_int_eq(dc_endpoint_open_channel(ue, &spec, &ms), 0);
    ck_assert_int_eq(dc_endpoint_wait_open(ue, ms, WAIT_MS), 0);
    struct pollfd pfd = {.fd = listen_fd, .events = POLLIN};
    ck_assert_msg(poll(&pfd, 1, 5000) == 1, "the gateway did not dial the MSRP core (log %s)",
                  log_path);
    int tcp = accept(listen_fd, NULL, NULL);
    ck_assert_int_ge(tcp, 0);
    static char frame[4096];
    uint8_t *body = pattern(1000, 3, true);
    size_t len = msrp_send_frame(frame, sizeof(frame), "mix00001", body, 1000);
    ck_assert_int_eq(dc_endpoint_send(ue, ms, false, frame, len, WAIT_MS), 0);
    uint8_t got[4096];
    read_exact(tcp, got, len);
    ck_assert(memcmp(got, frame, len) == 0);
    free(body);
    struct dc_event ev;
    int rc;
    while ((rc = dc_endpoint_next_event(core, &ev, 300)) == 0) {
        ck_assert_msg(ev.type != DC_EVENT_CHANNEL_OPEN && ev.type != DC_EVENT_MESSAGE,
                      "the MSRP channel leaked to the data-channel core");
        dc_event_clear(&ev);
    }
    ck_assert_int_eq(rc, -ETIMEDOUT);
    /* And the chat channel still works alongside. */
    send_and_check(ue, us, core, cs, 700, true, 4);

    snprintf(text, sizeof(text), "C=%u{S=*}", ctx);
    request_ok(text, reply, sizeof(reply));
    dc_endpoint_free(ue);
    dc_endpoint_free(core);
    agw_tls_identity_unref(ue_id);
    close(tcp);
    close(listen_fd);
}
END_TEST

/* ---- SCTP INIT flood on a core leg ---- */

/* CRC32c (Castagnoli, reflected 0x82F63B78), as SCTP's checksum: its complement, little-endian. */
static uint32_t crc32c_bitwise(const uint8_t *p, size_t len)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* One SCTP packet holding an INIT chunk with initiate tag `tag`. */
static size_t sctp_init_packet(uint8_t *p, uint32_t tag)
{
    memset(p, 0, 32);
    p[0] = 5000 >> 8, p[1] = 5000 & 0xff, p[2] = 5000 >> 8, p[3] = 5000 & 0xff; /* ports */
    p[12] = 1;                                                                  /* INIT */
    p[15] = 20;                                                                 /* length */
    p[16] = (uint8_t)(tag >> 24), p[17] = (uint8_t)(tag >> 16);
    p[18] = (uint8_t)(tag >> 8), p[19] = (uint8_t)tag;
    p[21] = 0x01;                           /* a_rwnd 65536 */
    p[24] = 0x04, p[26] = 0x04;             /* 1024 streams each way */
    p[28] = (uint8_t)(tag >> 8), p[31] = 1; /* initial TSN */
    uint32_t crc = crc32c_bitwise(p, 32);
    p[8] = (uint8_t)crc, p[9] = (uint8_t)(crc >> 8), p[10] = (uint8_t)(crc >> 16);
    p[11] = (uint8_t)(crc >> 24);
    return 32;
}

/* 20,000 INITs from the address a core leg's Remote names reach usrsctp (it answers them with
 * INIT-ACKs, keeping no state), while another session's channel keeps carrying messages. */
START_TEST(test_sctp_init_flood)
{
    struct dc_session ok;
    struct session_opts o = {0};
    session_open(&ok, &o);
    session_wait_up(&ok);
    uint16_t us, cs;
    open_channel(ok.ue, ok.core, DCEP_CHANNEL_RELIABLE, "alive", "", &us, &cs);

    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in me;
    sockaddr_lo(0, &me);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&me, sizeof(me)), 0);
    socklen_t me_len = sizeof(me);
    getsockname(fd, (struct sockaddr *)&me, &me_len);
    char text[1024], reply[4096];
    snprintf(text, sizeof(text),
             "C=${A=${M{ST=1{O{MO=SR,ipdc/realm=core},L{v=0\r\nc=IN IP4 $\r\nm=application $ "
             "UDP/SCTP webrtc-datachannel\r\n},R{v=0\r\nc=IN IP4 127.0.0.1\r\nm=application %u "
             "UDP/SCTP webrtc-datachannel\r\na=setup:passive\r\na=sctp-port:5000\r\n}}}}}",
             ntohs(me.sin_port));
    request_ok(text, reply, sizeof(reply));
    unsigned ctx = (unsigned)harness_number_after(reply, "C=");
    struct sockaddr_in gw;
    sockaddr_lo((uint16_t)harness_number_after(reply, "m=application "), &gw);
    int one = 1;
    ioctl(fd, FIONBIO, &one);
    unsigned init_acks = 0;
    uint8_t pkt[64], in[2048];
    for (uint32_t i = 1; i <= 20000; i++) {
        size_t len = sctp_init_packet(pkt, 0x10000000u + i);
        sendto(fd, pkt, len, 0, (struct sockaddr *)&gw, sizeof(gw));
        ssize_t n;
        while ((n = recv(fd, in, sizeof(in), 0)) > 0)
            init_acks += n > 12 && in[12] == 2;
        if (i % 2000 == 0) /* the other session is served meanwhile */
            send_and_check(ok.ue, us, ok.core, cs, 5000, true, i);
    }
    for (int k = 0; k < 50; k++) {
        ssize_t n;
        while ((n = recv(fd, in, sizeof(in), 0)) > 0)
            init_acks += n > 12 && in[12] == 2;
        harness_sleep_ms(10);
    }
    close(fd);
    ck_assert_msg(init_acks > 0, "no INIT-ACK: the INITs did not reach SCTP (log %s)", log_path);
    send_and_check(ok.core, cs, ok.ue, us, 60000, false, 7);
    snprintf(text, sizeof(text), "C=%u{S=*}", ctx);
    request_ok(text, reply, sizeof(reply));
    session_close(&ok);
}
END_TEST

/* Many associations at once, each with a channel and traffic both ways. */
START_TEST(test_many_sessions)
{
    enum { N = 200 };
    struct dc_session *s = calloc(N, sizeof(*s));
    struct session_opts o = {0};
    for (unsigned i = 0; i < N; i++)
        session_open(&s[i], &o);
    for (unsigned i = 0; i < N; i++)
        session_wait_up(&s[i]);
    for (unsigned i = 0; i < N; i++) {
        uint16_t us, cs;
        open_channel(s[i].ue, s[i].core, DCEP_CHANNEL_RELIABLE, "m", "", &us, &cs);
        send_and_check(s[i].ue, us, s[i].core, cs, 2000 + i, true, i);
        send_and_check(s[i].core, cs, s[i].ue, us, 3000 + i, false, i);
    }
    for (unsigned i = 0; i < N; i++)
        session_close(&s[i]);
    free(s);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("datachannel");
    TCase *tc = tcase_create("e2dce");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_flow_plain_core);
    tcase_add_test(tc, test_flow_dtls_core);
    tcase_add_test(tc, test_flow_gateway_dtls_client);
    tcase_add_test(tc, test_dcmap_channel);
    tcase_add_test(tc, test_channel_close);
    tcase_add_test(tc, test_wrong_fingerprint);
    tcase_add_test(tc, test_hostile_input);
    tcase_add_test(tc, test_new_tls_id);
    tcase_add_test(tc, test_ice_lite);
    tcase_add_test(tc, test_ice_consent_expiry);
    tcase_add_test(tc, test_msrp_bridge);
    tcase_add_test(tc, test_msrp_and_other_channels);
    tcase_add_test(tc, test_msrp_bridge_tls_core);
    tcase_add_test(tc, test_sctp_init_flood);
    suite_add_tcase(suite, tc);
    TCase *many = tcase_create("many");
    tcase_add_checked_fixture(many, setup, teardown);
    tcase_set_timeout(many, 300);
    tcase_add_test(many, test_many_sessions);
    suite_add_tcase(suite, many);
    SRunner *sr = srunner_create(suite);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
