/* A worker's data-channel legs: UDP sockets, DTLS, SCTP associations, DCEP, and the 1:1 relay of
 * channels and messages between the two legs of a context (DESIGN.md §6). */
#define _GNU_SOURCE /* sendmmsg */
#include "agw/agw.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agw/msrp_frame.h"
#include "agw/stun.h"
#include "sctp/assoc.h"
#include "sctp/dcep.h"
#include "tls/dtls.h"

#define DC_STREAMS 1024       /* streams offered in INIT: the channels an association can carry */
#define DC_RECV_BUFFER 65536  /* one UDP datagram (and one decrypted record) */
#define DC_MTU 1200           /* UDP payload bytes we emit */
#define DC_HOSTILE_LOG_RATE 5 /* lines a second about one leg's hostile input */
#define DC_PPID_CONTROL 50
#define DC_SOCKET_BUFFER (1 << 20) /* UDP receive buffer of a data-channel leg */
#define DC_BATCH 64                /* datagrams sent with one sendmmsg */
#define DC_DATAGRAM_SLOT 1500      /* the largest datagram a leg emits (DC_MTU and headers) */
#define DC_RECV_BATCH 16           /* datagrams received with one recvmmsg */

/* Datagrams on their way out of one leg: copied, because DTLS and SCTP lend theirs only until
 * their next call. */
struct dc_batch {
    struct mmsghdr msgs[DC_BATCH];
    struct iovec iov[DC_BATCH];
    uint8_t slots[DC_BATCH][DC_DATAGRAM_SLOT];
    unsigned n;
};
#define DC_CONSENT_MS 30000 /* RFC 7675: consent lasts 30 s after the last check */

struct dc_channel {
    uint16_t stream;     /* on this leg */
    int32_t peer_stream; /* the channel it is relayed to on the peer leg; -1 none yet */
    uint8_t type;        /* enum dcep_channel_type */
    uint32_t reliability;
    bool negotiated;  /* a=dcmap: no DCEP */
    bool bridged;     /* the MSRP channel relayed to the TCP/MSRP leg (RFC 8873) */
    bool may_reorder; /* unordered sends allowed: the ACK (or any message) came back */
    bool reset_sent;  /* our outgoing stream is reset */
    bool reset_seen;  /* the far end reset its outgoing stream */
    bool reset_done;  /* our reset completed: with reset_seen, the stream id is free again */
};

/* One message (or DCEP OPEN) that the peer leg could not take yet: the source stops reading. */
struct dc_held {
    bool present;
    uint16_t stream;
    uint32_t ppid;
    uint8_t *data;
    size_t len;
};

#define DC_MSRP_PIECES_KEPT 64 /* re-chunked pieces whose responses are mapped back */

/* A piece of a SEND the bridge split: its own transaction id, and the original one the TCP side
 * waits an answer for (RFC 4975 §5.1: each chunk is a transaction of its own). */
struct dc_msrp_piece {
    char tid[AGW_MSRP_TID_MAX], orig[AGW_MSRP_TID_MAX];
    uint8_t tid_len, orig_len;
    bool last;
};

/* The MSRP channel ⇄ TCP/MSRP bridge of a leg: TCP bytes framed into MSRP chunks, each re-chunked
 * to the far end's a=max-message-size and sent as one data-channel message. */
struct dc_bridge {
    int stream; /* the MSRP channel's stream, -1 until it opens */
    struct agw_msrp_framer framer;
    struct agw_msrp_rechunker rechunk;
    bool rechunking; /* pieces of the popped frame are still to go */
    uint8_t *piece;  /* the piece being sent (limit bytes) */
    size_t piece_len, limit;
    bool piece_pending; /* built, not yet taken by SCTP */
    size_t sent;        /* bytes of the held channel message the TCP leg took so far */
    uint8_t *out;       /* that message rewritten for TCP (a response to a piece), or NULL */
    size_t out_len;
    struct dc_msrp_piece pieces[DC_MSRP_PIECES_KEPT]; /* a ring, oldest overwritten */
    unsigned next_piece;
    bool broken; /* the core sent something that is not MSRP: its bytes are dropped */
};

struct dc_leg {
    struct agw_dc *d;
    uint64_t key;
    struct agw_leg_conf *conf; /* NULL until configured */
    struct dc_leg *peer;
    uv_udp_t udp;
    bool has_udp;
    int pending_fd; /* adopted before the leg could open it, or -1 */
    bool has_remote;
    struct sockaddr_storage remote;
    struct agw_dtls_session *dtls;
    struct agw_sctp_assoc *assoc;
    bool up;       /* SCTP association established */
    bool verified; /* DTLS peer verified (or a plain UDP/SCTP leg) */
    bool failed, released;
    uint64_t started_ms; /* when the current association attempt began */
    uint32_t generation; /* conf->connection_generation this association belongs to */
    struct dc_held held;
    struct dc_bridge bridge;
    struct dc_channel *channels[DC_STREAMS];
    uint64_t last_check_ms; /* ICE: the last connectivity check from the remote */
    bool consent_expired;   /* ICE: no check for DC_CONSENT_MS: we stop sending */
    bool nominated;         /* ICE: the remote is the address the peer nominated */
    uint64_t wire_in, wire_out, messages_in, messages_out, dropped;
    uint32_t channels_opened;
    struct agw_log_limit log_limit;
};

struct agw_dc {
    uv_loop_t *loop;
    struct agw_relay *relay; /* the TCP legs, for the MSRP bridge */
    agw_leg_event_cb cb;
    void *arg;
    struct dc_leg **legs;
    size_t n, cap;
    unsigned handles; /* open uv handles: timer and sockets */
    bool closing;
    uv_timer_t tick; /* usrsctp's timers and the DTLS retransmissions */
    bool has_tick, ticking;
    uint64_t last_tick_ns;
    bool sctp_started;
    unsigned pump_depth;
    struct agw_dtls_ctx *dtls_ctx;
    uint8_t *rbuf; /* DC_RECV_BATCH datagrams of up to 64 KiB each (recvmmsg), made on first use */
    uint8_t plain[DC_RECV_BUFFER];
    struct dc_batch batch;
};

static void service(struct dc_leg *l);
static void flush_packets(struct dc_leg *l);
static void pump_events(struct dc_leg *l);
static int bridge_translate(struct dc_bridge *b, const uint8_t *msg, size_t len);

/* ---- Bookkeeping ---- */

static struct dc_leg *find(struct agw_dc *d, uint64_t key)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->legs[i]->key == key)
            return d->legs[i];
    return NULL;
}

static struct dc_leg *leg_get(struct agw_dc *d, uint64_t key)
{
    struct dc_leg *l = find(d, key);
    if (l != NULL)
        return l;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        struct dc_leg **grown = realloc(d->legs, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        d->legs = grown;
        d->cap = cap;
    }
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->d = d;
    l->key = key;
    l->pending_fd = -1;
    l->bridge.stream = -1;
    agw_msrp_framer_init(&l->bridge.framer, 0);
    d->legs[d->n++] = l;
    return l;
}

static void forget(struct agw_dc *d, struct dc_leg *l)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->legs[i] == l) {
            d->legs[i] = d->legs[--d->n];
            return;
        }
}

static const char *leg_name(const struct dc_leg *l)
{
    return l->conf != NULL ? l->conf->term_id : "?";
}

static uint32_t leg_context(const struct dc_leg *l)
{
    return l->conf != NULL ? l->conf->context_id : 0;
}

static void post(struct dc_leg *l, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void post(struct dc_leg *l, int kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    agw_leg_event_vpost(l->d->cb, l->d->arg, l->key, l->conf, kind, fmt, ap);
    va_end(ap);
}

static bool hostile_log_allowed(struct dc_leg *l)
{
    return agw_log_allow(&l->log_limit, uv_now(l->d->loop), DC_HOSTILE_LOG_RATE);
}

static void maybe_free_dc(struct agw_dc *d)
{
    if (d->closing && d->handles == 0 && d->n == 0) {
        /* usrsctp frees its sockets on its own timers: give it the time it asks for. */
        for (int i = 0; d->sctp_started && i < 200 && agw_sctp_finish() == -EBUSY; i++)
            agw_sctp_timers(AGW_SCTP_TICK_MS);
        agw_dtls_ctx_unref(d->dtls_ctx);
        free(d->rbuf);
        free(d->legs);
        free(d);
    }
}

/* ---- Association state ---- */

static void clear_channels(struct dc_leg *l)
{
    for (unsigned s = 0; s < DC_STREAMS; s++) {
        free(l->channels[s]);
        l->channels[s] = NULL;
    }
}

static void drop_held(struct dc_leg *l)
{
    free(l->held.data);
    memset(&l->held, 0, sizeof(l->held));
}

static void reset_bridge(struct dc_leg *l)
{
    l->bridge.stream = -1;
    l->bridge.rechunking = false;
    l->bridge.piece_pending = false;
    l->bridge.sent = 0;
    free(l->bridge.out);
    l->bridge.out = NULL;
    memset(l->bridge.pieces, 0, sizeof(l->bridge.pieces));
    agw_msrp_framer_free(&l->bridge.framer);
    agw_msrp_framer_init(&l->bridge.framer, 0);
}

/* Ends the current association (the ABORT and close_notify go out first when asked). */
static void end_association(struct dc_leg *l, bool say_goodbye)
{
    if (say_goodbye && l->assoc != NULL && l->up) {
        agw_sctp_assoc_abort(l->assoc);
        service(l);
    }
    if (say_goodbye && l->dtls != NULL && l->verified) {
        agw_dtls_session_close(l->dtls);
        service(l);
    }
    agw_sctp_assoc_free(l->assoc);
    l->assoc = NULL;
    agw_dtls_session_free(l->dtls);
    l->dtls = NULL;
    l->up = false;
    l->verified = false;
    clear_channels(l);
    drop_held(l);
    reset_bridge(l);
}

/* The peer leg lost its association: its channels are closed on this one too. */
static void close_relayed_channels(struct dc_leg *l)
{
    for (unsigned s = 0; s < DC_STREAMS; s++) {
        struct dc_channel *ch = l->channels[s];
        if (ch == NULL || ch->peer_stream < 0)
            continue;
        ch->peer_stream = -1;
        if (l->up && !ch->reset_sent && agw_sctp_assoc_reset_stream(l->assoc, ch->stream) == 0)
            ch->reset_sent = true;
    }
    service(l);
}

static void fail(struct dc_leg *l, const char *cause)
{
    if (l->failed)
        return;
    l->failed = true;
    agw_log(AGW_LOG_WARN, "context %u term %s: %s: %s", leg_context(l), leg_name(l),
            l->verified ? "closed" : "refused", cause);
    post(l, AGW_LEG_FAILED, "%s", cause);
    service(l); /* the fatal alert, if DTLS queued one */
    bool was_up = l->up;
    end_association(l, false);
    if (was_up && l->peer != NULL)
        close_relayed_channels(l->peer);
}

/* ---- Datagrams out ---- */

/* Sends the batch with one sendmmsg. UDP: a datagram the socket cannot take now is lost, and
 * DTLS or SCTP sends it again. */
static void batch_send(struct dc_leg *l)
{
    struct dc_batch *b = &l->d->batch;
    uv_os_fd_t fd;
    unsigned sent = 0;
    if (b->n > 0 && uv_fileno((uv_handle_t *)&l->udp, &fd) == 0) {
        socklen_t alen = l->remote.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                         : sizeof(struct sockaddr_in);
        for (unsigned i = 0; i < b->n; i++) {
            b->msgs[i].msg_hdr = (struct msghdr){.msg_name = &l->remote,
                                                 .msg_namelen = alen,
                                                 .msg_iov = &b->iov[i],
                                                 .msg_iovlen = 1};
        }
        while (sent < b->n) {
            int n = sendmmsg(fd, b->msgs + sent, b->n - sent, MSG_DONTWAIT);
            if (n <= 0)
                break;
            for (int i = 0; i < n; i++)
                l->wire_out += b->iov[sent + (unsigned)i].iov_len;
            sent += (unsigned)n;
        }
    }
    l->dropped += b->n - sent;
    b->n = 0;
}

static void send_datagram(struct dc_leg *l, const uint8_t *data, size_t len)
{
    if (!l->has_udp || !l->has_remote || l->consent_expired)
        return;
    struct dc_batch *b = &l->d->batch;
    if (len > DC_DATAGRAM_SLOT) {
        l->dropped++; /* larger than anything DTLS or SCTP is set to emit */
        return;
    }
    if (b->n == DC_BATCH)
        batch_send(l);
    memcpy(b->slots[b->n], data, len);
    b->iov[b->n] = (struct iovec){.iov_base = b->slots[b->n], .iov_len = len};
    b->n++;
}

/* Moves everything SCTP and DTLS queued to the socket, batched into few system calls. */
static void flush(struct dc_leg *l)
{
    flush_packets(l);
    batch_send(l);
}

static void flush_packets(struct dc_leg *l)
{
    const uint8_t *pkt;
    size_t len;
    while (l->assoc != NULL && agw_sctp_assoc_pending_output(l->assoc, &pkt, &len) == 1) {
        if (l->dtls == NULL) {
            send_datagram(l, pkt, len);
        } else if (agw_dtls_session_write(l->dtls, pkt, len) < 0) {
            l->dropped++;
        }
        while (l->dtls != NULL && agw_dtls_session_pending_output(l->dtls, &pkt, &len) == 1)
            send_datagram(l, pkt, len);
    }
    while (l->dtls != NULL && agw_dtls_session_pending_output(l->dtls, &pkt, &len) == 1)
        send_datagram(l, pkt, len);
}

static void service(struct dc_leg *l)
{
    flush(l);
}

/* ---- Channels ---- */

static enum dcep_dtls_role our_role(const struct dc_leg *l)
{
    return l->conf != NULL && l->conf->tls_client ? DCEP_DTLS_CLIENT : DCEP_DTLS_SERVER;
}

static struct dc_channel *channel_new(struct dc_leg *l, uint16_t stream)
{
    if (stream >= DC_STREAMS || l->channels[stream] != NULL)
        return NULL;
    struct dc_channel *ch = calloc(1, sizeof(*ch));
    if (ch == NULL)
        return NULL;
    l->channels_opened++;
    ch->stream = stream;
    ch->peer_stream = -1;
    l->channels[stream] = ch;
    return ch;
}

static void channel_free(struct dc_leg *l, uint16_t stream)
{
    if (stream < DC_STREAMS) {
        free(l->channels[stream]);
        l->channels[stream] = NULL;
    }
}

/* A stream id of our parity on l for a channel relayed from `wanted` on the other leg: the same
 * id when it is ours and free, so that the relay is 1:1 whenever the roles allow. */
static int pick_stream(const struct dc_leg *l, uint16_t wanted)
{
    enum dcep_dtls_role role = our_role(l);
    if (wanted < DC_STREAMS && dcep_stream_id_valid(wanted, role) && l->channels[wanted] == NULL)
        return wanted;
    for (unsigned s = role == DCEP_DTLS_CLIENT ? 0 : 1; s < DC_STREAMS; s += 2)
        if (l->channels[s] == NULL)
            return (int)s;
    return -1;
}

static void sendinfo_for(const struct dc_channel *ch, uint32_t ppid, struct agw_sctp_sendinfo *si)
{
    memset(si, 0, sizeof(*si));
    si->stream = ch->stream;
    si->ppid = ppid;
    if (ppid == DC_PPID_CONTROL)
        return; /* DCEP goes ordered and reliable */
    si->unordered = ch->may_reorder && !dcep_channel_ordered(ch->type);
    switch (ch->type & 0x7f) {
    case DCEP_CHANNEL_PARTIAL_RELIABLE_REXMIT:
        si->pr = AGW_SCTP_PR_RTX;
        si->pr_value = ch->reliability;
        break;
    case DCEP_CHANNEL_PARTIAL_RELIABLE_TIMED:
        si->pr = AGW_SCTP_PR_TTL;
        si->pr_value = ch->reliability;
        break;
    default:
        break;
    }
}

static int send_dcep(struct dc_leg *l, struct dc_channel *ch, const uint8_t *msg, size_t len)
{
    struct agw_sctp_sendinfo si;
    sendinfo_for(ch, DC_PPID_CONTROL, &si);
    return agw_sctp_assoc_send(l->assoc, &si, msg, len);
}

/* Channels the SDP negotiated (a=dcmap) exist once the association is up, without DCEP. */
static void open_negotiated_channels(struct dc_leg *l)
{
    for (unsigned i = 0; i < l->conf->dc->n_dcmaps; i++) {
        const struct agw_dcmap *m = &l->conf->dc->dcmaps[i];
        struct dc_channel *ch = channel_new(l, m->stream);
        if (ch == NULL)
            continue;
        ch->negotiated = true;
        ch->may_reorder = true;
        ch->peer_stream = m->stream;
        ch->type = (uint8_t)((m->unordered ? 0x80 : 0) | m->pr);
        ch->reliability = m->pr_value;
        if (m->msrp && l->conf->bridge_key != 0 && l->bridge.stream < 0) {
            ch->bridged = true;
            ch->peer_stream = -1;
            l->bridge.stream = m->stream;
        }
    }
}

/* Why a message from the far end of l cannot go on now: 0 it can; -EAGAIN wait. */
static int peer_ready(const struct dc_leg *l)
{
    return l->peer != NULL && l->peer->up ? 0 : -EAGAIN;
}

/* An OPEN on l's stream: acknowledge it, then open the same channel on the peer leg. */
static int handle_open(struct dc_leg *l, uint16_t stream, const struct dcep_open *open)
{
    struct dc_channel *ch = stream < DC_STREAMS ? l->channels[stream] : NULL;
    if (ch == NULL) {
        if (dcep_stream_id_valid(stream, our_role(l)) || (ch = channel_new(l, stream)) == NULL) {
            if (hostile_log_allowed(l))
                agw_log(AGW_LOG_WARN, "context %u term %s: DCEP OPEN on stream %u refused",
                        leg_context(l), leg_name(l), stream);
            if (stream < DC_STREAMS && l->channels[stream] == NULL)
                agw_sctp_assoc_reset_stream(l->assoc, stream);
            return 0;
        }
        ch->type = open->channel_type;
        ch->reliability = open->reliability;
        ch->may_reorder = true; /* the OPEN came from the far end */
        ch->bridged = l->conf->bridge_key != 0 && l->bridge.stream < 0 && open->protocol_len == 4 &&
                      strncasecmp(open->protocol, "msrp", 4) == 0;
        uint8_t ack[DCEP_ACK_LEN];
        size_t n;
        if (dcep_encode_ack(ack, sizeof(ack), &n) == 0)
            send_dcep(l, ch, ack, n);
        agw_log(AGW_LOG_INFO, "context %u term %s: channel %u open '%.*s' (%.*s)", leg_context(l),
                leg_name(l), stream, (int)open->label_len, open->label, (int)open->protocol_len,
                open->protocol);
    }
    if (ch->bridged) {
        if (l->bridge.stream < 0) {
            l->bridge.stream = stream;
            agw_relay_bridge_resume(l->d->relay, l->conf->bridge_key);
        }
        return 0;
    }
    if (ch->peer_stream >= 0)
        return 0;
    if (peer_ready(l) < 0)
        return -EAGAIN;
    struct dc_leg *p = l->peer;
    int ps = pick_stream(p, stream);
    struct dc_channel *pch = ps >= 0 ? channel_new(p, (uint16_t)ps) : NULL;
    if (pch == NULL) {
        agw_log(AGW_LOG_WARN, "context %u term %s: no stream free to relay channel %u",
                leg_context(l), leg_name(p), stream);
        agw_sctp_assoc_reset_stream(l->assoc, stream);
        ch->reset_sent = true;
        return 0;
    }
    pch->type = ch->type;
    pch->reliability = ch->reliability;
    pch->peer_stream = stream;
    ch->peer_stream = ps;
    uint8_t buf[DCEP_OPEN_HEADER_LEN + 2 * 1024];
    size_t n;
    if (dcep_encode_open(open, buf, sizeof(buf), &n) < 0 || send_dcep(p, pch, buf, n) < 0) {
        agw_log(AGW_LOG_WARN, "context %u term %s: cannot open channel %d", leg_context(p),
                leg_name(p), ps);
        channel_free(p, (uint16_t)ps);
        ch->peer_stream = -1;
        agw_sctp_assoc_reset_stream(l->assoc, stream);
        ch->reset_sent = true;
    }
    service(p);
    return 0;
}

static void handle_dcep(struct dc_leg *l, uint16_t stream, const uint8_t *data, size_t len, int *rc)
{
    struct dcep_message msg;
    int prc = dcep_parse(data, len, NULL, &msg);
    if (prc < 0) {
        if (hostile_log_allowed(l))
            agw_log(AGW_LOG_WARN,
                    "context %u term %s: malformed DCEP on stream %u (%s): channel "
                    "refused",
                    leg_context(l), leg_name(l), stream, strerror(-prc));
        /* The channel is refused by resetting its stream; the association goes on. */
        if (stream < DC_STREAMS &&
            (l->channels[stream] == NULL || !l->channels[stream]->reset_sent))
            agw_sctp_assoc_reset_stream(l->assoc, stream);
        return;
    }
    if (msg.type == DCEP_MSG_OPEN) {
        *rc = handle_open(l, stream, &msg.open);
        return;
    }
    struct dc_channel *ch = stream < DC_STREAMS ? l->channels[stream] : NULL;
    if (ch != NULL)
        ch->may_reorder = true; /* ACK */
}

/* A message from l's far end on stream: on to the peer leg's channel. 0; -EAGAIN to hold it. */
static int relay_message(struct dc_leg *l, uint16_t stream, uint32_t ppid, const uint8_t *data,
                         size_t len)
{
    struct dc_channel *ch = stream < DC_STREAMS ? l->channels[stream] : NULL;
    if (ch == NULL || ch->reset_seen) {
        l->dropped++;
        if (hostile_log_allowed(l))
            agw_log(AGW_LOG_WARN,
                    "context %u term %s: message on stream %u, which has no channel: "
                    "dropped",
                    leg_context(l), leg_name(l), stream);
        return 0;
    }
    ch->may_reorder = true; /* anything from the far end counts as its ACK */
    if (ch->bridged) {
        /* Written to TCP intact (but for answers to the pieces of a SEND the bridge split);
         * what the TCP leg cannot take yet waits (held). */
        struct dc_bridge *b = &l->bridge;
        if (b->sent == 0 && b->out == NULL && bridge_translate(b, data, len) == 1) {
            l->messages_in++;
            return 0;
        }
        const uint8_t *src = b->out != NULL ? b->out : data;
        size_t src_len = b->out != NULL ? b->out_len : len;
        b->sent += agw_relay_bridge_write(l->d->relay, l->conf->bridge_key, src + b->sent,
                                          src_len - b->sent);
        if (b->sent < src_len)
            return -EAGAIN;
        b->sent = 0;
        free(b->out);
        b->out = NULL;
        l->messages_in++;
        return 0;
    }
    if (peer_ready(l) < 0)
        return -EAGAIN;
    struct dc_leg *p = l->peer;
    if (ch->peer_stream < 0) {
        l->dropped++; /* the relayed channel was refused or closed */
        return 0;
    }
    struct dc_channel *pch = p->channels[ch->peer_stream];
    if (pch == NULL) {
        l->dropped++;
        return 0;
    }
    struct agw_sctp_sendinfo si;
    sendinfo_for(pch, ppid, &si);
    int rc = agw_sctp_assoc_send(p->assoc, &si, data, len);
    if (rc == -EAGAIN)
        return -EAGAIN;
    if (rc < 0) {
        l->dropped++;
        agw_log(AGW_LOG_WARN,
                "context %u term %s: message of %zu bytes on channel %u not relayed: "
                "%s",
                leg_context(l), leg_name(p), len, pch->stream, strerror(-rc));
        return 0;
    }
    l->messages_in++;
    p->messages_out++;
    return 0;
}

/* The far end reset its outgoing stream: the channel closes here and on the peer leg. */
static void handle_stream_closed(struct dc_leg *l, uint16_t stream)
{
    struct dc_channel *ch = stream < DC_STREAMS ? l->channels[stream] : NULL;
    if (ch == NULL)
        return;
    ch->reset_seen = true;
    if (!ch->reset_sent && agw_sctp_assoc_reset_stream(l->assoc, stream) == 0)
        ch->reset_sent = true;
    if (ch->bridged && l->bridge.stream == stream)
        l->bridge.stream = -1;
    struct dc_leg *p = l->peer;
    if (ch->peer_stream >= 0 && p != NULL && p->up) {
        struct dc_channel *pch = p->channels[ch->peer_stream];
        if (pch != NULL && !pch->reset_sent &&
            agw_sctp_assoc_reset_stream(p->assoc, pch->stream) == 0)
            pch->reset_sent = true;
        /* The pair is over: neither side's later reset may touch a channel that reuses the
         * other's stream id. */
        if (pch != NULL)
            pch->peer_stream = -1;
        if (pch != NULL && pch->reset_seen && pch->reset_done)
            channel_free(p, pch->stream);
        service(p);
    }
    ch->peer_stream = -1;
    agw_log(AGW_LOG_INFO, "context %u term %s: channel %u closed", leg_context(l), leg_name(l),
            stream);
    if (ch->reset_done)
        channel_free(l, stream);
}

static void handle_reset_done(struct dc_leg *l, uint16_t stream)
{
    struct dc_channel *ch = stream < DC_STREAMS ? l->channels[stream] : NULL;
    if (ch == NULL)
        return;
    ch->reset_done = true;
    if (ch->reset_seen)
        channel_free(l, stream);
}

/* ---- The MSRP bridge (RFC 8873), TCP to channel ---- */

/* A SEND split in several pieces: the responses to its pieces are mapped back to it. */
static void remember_piece(struct dc_bridge *b)
{
    const struct agw_msrp_rechunker *rc = &b->rechunk;
    if (rc->pieces < 2 || rc->info.tid_len > AGW_MSRP_TID_MAX ||
        rc->piece_tid_len > AGW_MSRP_TID_MAX)
        return;
    struct dc_msrp_piece *p = &b->pieces[b->next_piece++ % DC_MSRP_PIECES_KEPT];
    memcpy(p->tid, rc->piece_tid, rc->piece_tid_len);
    p->tid_len = (uint8_t)rc->piece_tid_len;
    memcpy(p->orig, rc->info.tid, rc->info.tid_len);
    p->orig_len = (uint8_t)rc->info.tid_len;
    p->last = rc->index == rc->pieces;
}

static struct dc_msrp_piece *find_piece(struct dc_bridge *b, const uint8_t *tid, size_t len)
{
    for (unsigned i = 0; i < DC_MSRP_PIECES_KEPT; i++) {
        struct dc_msrp_piece *p = &b->pieces[i];
        if (p->tid_len != 0 && p->tid_len == len && memcmp(p->tid, tid, len) == 0)
            return p;
    }
    return NULL;
}

/* What goes to TCP for a message from the UE: 0 as it is; 1 nothing (a 200 to a piece other
 * than the last: the TCP side waits one answer for the whole SEND); 2 b->out holds it rewritten
 * to the original transaction (the last piece's answer, or the first failure). */
static int bridge_translate(struct dc_bridge *b, const uint8_t *msg, size_t len)
{
    struct agw_msrp_frame_info info;
    if (agw_msrp_frame_parse(msg, len, &info) != 0 || !info.response)
        return 0;
    struct dc_msrp_piece *p = find_piece(b, info.tid, info.tid_len);
    if (p == NULL)
        return 0;
    bool forward = p->last || info.status != 200;
    uint8_t orig[AGW_MSRP_TID_MAX];
    size_t orig_len = p->orig_len;
    memcpy(orig, p->orig, orig_len);
    p->tid_len = 0;
    if (!forward)
        return 1;
    /* One answer per original SEND: once forwarded, its other pieces' answers are dropped. */
    for (unsigned i = 0; i < DC_MSRP_PIECES_KEPT; i++)
        if (b->pieces[i].orig_len == orig_len && memcmp(b->pieces[i].orig, orig, orig_len) == 0)
            b->pieces[i].tid_len = 0;
    size_t cap = len + AGW_MSRP_TID_MAX * 2;
    if ((b->out = malloc(cap)) == NULL)
        return 0;
    if (agw_msrp_frame_retid(msg, len, orig, orig_len, b->out, cap, &b->out_len) != 0) {
        free(b->out);
        b->out = NULL;
        return 0;
    }
    return 2;
}

/* Sends the pending piece and builds the next ones; false while SCTP cannot take more. */
static bool bridge_flush(struct dc_leg *l)
{
    struct dc_bridge *b = &l->bridge;
    for (;;) {
        if (b->piece_pending) {
            struct dc_channel *ch = b->stream >= 0 ? l->channels[b->stream] : NULL;
            if (ch == NULL || l->assoc == NULL)
                return false;
            struct agw_sctp_sendinfo si;
            sendinfo_for(ch, DCEP_PPID_BINARY, &si);
            int rc = agw_sctp_assoc_send(l->assoc, &si, b->piece, b->piece_len);
            if (rc == -EAGAIN)
                return false;
            if (rc < 0 && hostile_log_allowed(l))
                agw_log(AGW_LOG_WARN, "context %u term %s: MSRP chunk of %zu bytes not sent: %s",
                        leg_context(l), leg_name(l), b->piece_len, strerror(-rc));
            if (rc == 0)
                l->messages_out++;
            b->piece_pending = false;
        }
        if (!b->rechunking)
            return true;
        int rc = agw_msrp_rechunk_next(&b->rechunk, b->piece, b->limit, &b->piece_len);
        if (rc == 1) {
            b->piece_pending = true;
            remember_piece(b);
            continue;
        }
        if (rc < 0)
            agw_log(AGW_LOG_WARN, "context %u term %s: MSRP chunk from the core dropped: %s",
                    leg_context(l), leg_name(l), strerror(-rc));
        b->rechunking = false;
        return true;
    }
}

/* Sends every complete frame the framer holds; false while SCTP cannot take more. */
static bool bridge_drain(struct dc_leg *l)
{
    struct dc_bridge *b = &l->bridge;
    while (bridge_flush(l)) {
        const uint8_t *frame;
        size_t len;
        int rc = agw_msrp_framer_pop(&b->framer, &frame, &len, NULL);
        if (rc == 0)
            return true;
        if (rc < 0) {
            agw_log(AGW_LOG_WARN,
                    "context %u term %s: the core's MSRP stream is broken (%s): "
                    "its bytes are dropped",
                    leg_context(l), leg_name(l), strerror(-rc));
            b->broken = true;
            return true;
        }
        if (agw_msrp_rechunk_init(&b->rechunk, frame, len, b->limit, NULL, NULL) < 0) {
            agw_log(AGW_LOG_WARN,
                    "context %u term %s: MSRP frame of %zu bytes does not fit "
                    "a=max-message-size %zu: dropped",
                    leg_context(l), leg_name(l), len, b->limit);
            continue;
        }
        b->rechunking = true;
    }
    return false;
}

size_t agw_dc_bridge_input(struct agw_dc *d, uint64_t key, const void *data, size_t len)
{
    struct dc_leg *l = find(d, key);
    if (l == NULL || !l->up || l->bridge.stream < 0)
        return 0;
    struct dc_bridge *b = &l->bridge;
    if (b->broken)
        return len;
    if (b->piece == NULL) {
        uint64_t peer_max = l->conf->dc->remote_max_message_size;
        b->limit = peer_max == 0 || peer_max > AGW_MSRP_FRAME_MAX_DEFAULT
                       ? AGW_MSRP_FRAME_MAX_DEFAULT
                       : (size_t)peer_max;
        if ((b->piece = malloc(b->limit)) == NULL)
            return 0;
    }
    size_t taken = 0;
    while (bridge_drain(l) && !b->broken && taken < len) {
        size_t used = 0;
        int rc =
            agw_msrp_framer_feed(&b->framer, (const uint8_t *)data + taken, len - taken, &used);
        taken += used;
        if (rc < 0 && rc != -ENOBUFS) {
            agw_log(AGW_LOG_WARN, "context %u term %s: the core's MSRP stream is broken (%s)",
                    leg_context(l), leg_name(l), strerror(-rc));
            b->broken = true;
        }
        if (used == 0 && rc != -ENOBUFS)
            break;
    }
    service(l);
    return b->broken ? len : taken;
}

bool agw_dc_bridge_up(struct agw_dc *d, uint64_t key)
{
    struct dc_leg *l = find(d, key);
    return l != NULL && l->up && l->bridge.stream >= 0;
}

void agw_dc_bridge_resume(struct agw_dc *d, uint64_t key)
{
    struct dc_leg *l = find(d, key);
    if (l != NULL)
        pump_events(l);
}

/* ---- SCTP events ---- */

static void on_up(struct dc_leg *l, const struct agw_sctp_event *ev)
{
    l->up = true;
    agw_log(AGW_LOG_INFO, "context %u term %s: SCTP association up (%u/%u streams)", leg_context(l),
            leg_name(l), ev->in_streams, ev->out_streams);
    post(l, AGW_LEG_UP, "%s", l->dtls != NULL ? "dtls" : "sctp");
    open_negotiated_channels(l);
    if (l->bridge.stream >= 0)
        agw_relay_bridge_resume(l->d->relay, l->conf->bridge_key);
    /* Whatever the other side held back for us may go now. */
    if (l->peer != NULL)
        pump_events(l->peer);
}

static void on_down(struct dc_leg *l, int error)
{
    bool was_up = l->up;
    l->up = false;
    if (!l->released && !l->failed) {
        char cause[64];
        snprintf(cause, sizeof(cause), "SCTP association %s",
                 error == 0               ? "shut down"
                 : error == -ECONNREFUSED ? "refused"
                                          : "aborted");
        if (was_up) {
            agw_log(AGW_LOG_INFO, "context %u term %s: %s", leg_context(l), leg_name(l), cause);
            post(l, AGW_LEG_FAILED, "%s", cause);
        } else {
            fail(l, cause);
        }
    }
    clear_channels(l);
    drop_held(l);
    if (was_up && l->peer != NULL)
        close_relayed_channels(l->peer);
}

/* One event; -EAGAIN when it must wait for the peer leg (the caller keeps it). */
static int handle_event(struct dc_leg *l, const struct agw_sctp_event *ev)
{
    int rc = 0;
    switch (ev->type) {
    case AGW_SCTP_EVENT_UP:
        on_up(l, ev);
        break;
    case AGW_SCTP_EVENT_DOWN:
        on_down(l, ev->error);
        break;
    case AGW_SCTP_EVENT_MESSAGE:
        if (ev->ppid == DC_PPID_CONTROL)
            handle_dcep(l, ev->stream, ev->data, ev->len, &rc);
        else
            rc = relay_message(l, ev->stream, ev->ppid, ev->data, ev->len);
        break;
    case AGW_SCTP_EVENT_MESSAGE_DROPPED:
        l->dropped++;
        if (hostile_log_allowed(l))
            agw_log(AGW_LOG_WARN,
                    "context %u term %s: message over a=max-message-size on stream "
                    "%u dropped",
                    leg_context(l), leg_name(l), ev->stream);
        break;
    case AGW_SCTP_EVENT_STREAM_CLOSED:
        handle_stream_closed(l, ev->stream);
        break;
    case AGW_SCTP_EVENT_STREAM_RESET_DONE:
        handle_reset_done(l, ev->stream);
        break;
    case AGW_SCTP_EVENT_WRITABLE:
        if (l->bridge.stream >= 0 && bridge_drain(l))
            agw_relay_bridge_resume(l->d->relay, l->conf->bridge_key);
        if (l->peer != NULL)
            pump_events(l->peer); /* the peer's held message may fit now */
        break;
    }
    return rc;
}

static int hold(struct dc_leg *l, const struct agw_sctp_event *ev)
{
    uint8_t *copy = malloc(ev->len ? ev->len : 1);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, ev->data, ev->len);
    l->held = (struct dc_held){
        .present = true, .stream = ev->stream, .ppid = ev->ppid, .data = copy, .len = ev->len};
    return 0;
}

/* Handles l's SCTP events until none is left or one must wait for the peer leg (backpressure:
 * usrsctp's receive buffer fills and the far end's window closes). */
static void pump_events(struct dc_leg *l)
{
    /* A WRITABLE or UP may pump the other leg, which may pump back: bounded. */
    unsigned *depth = &l->d->pump_depth;
    if (l->assoc == NULL || *depth > 2)
        return;
    (*depth)++;
    if (l->held.present) {
        struct agw_sctp_event ev = {.type = AGW_SCTP_EVENT_MESSAGE,
                                    .stream = l->held.stream,
                                    .ppid = l->held.ppid,
                                    .data = l->held.data,
                                    .len = l->held.len};
        if (handle_event(l, &ev) == -EAGAIN) {
            (*depth)--;
            return;
        }
        drop_held(l);
    }
    struct agw_sctp_event ev;
    for (unsigned n = 0; l->assoc != NULL && n < 4096 && agw_sctp_assoc_next_event(l->assoc, &ev);
         n++) {
        if (handle_event(l, &ev) == -EAGAIN) {
            if (hold(l, &ev) < 0)
                l->dropped++;
            break;
        }
    }
    service(l);
    if (l->peer != NULL)
        service(l->peer);
    (*depth)--;
}

/* ---- DTLS and the association's start ---- */

static void start_assoc(struct dc_leg *l)
{
    if (l->assoc != NULL || l->conf == NULL || !l->has_remote)
        return;
    struct agw_sctp_limits lim = agw_sctp_default_limits;
    lim.streams = DC_STREAMS;
    lim.max_message_size = AGW_DC_MAX_MESSAGE;
    lim.peer_max_message_size = l->conf->dc->remote_max_message_size == 0
                                    ? AGW_SCTP_UNLIMITED
                                    : l->conf->dc->remote_max_message_size;
    size_t payload = l->dtls != NULL ? agw_dtls_session_max_payload(l->dtls) : DC_MTU;
    /* usrsctp may exceed the MTU it is given by 12 bytes (see sctp/assoc.c). */
    lim.mtu = (uint16_t)(payload - 16);
    int rc = agw_sctp_assoc_new(l->conf->dc->local_sctp_port, l->conf->dc->remote_sctp_port, &lim,
                                &l->assoc);
    if (rc < 0) {
        fail(l, "cannot start the SCTP association");
        return;
    }
    service(l);
}

static void dtls_failed(struct dc_leg *l)
{
    const struct agw_tls_error *e = agw_dtls_session_error(l->dtls);
    const char *reason = e != NULL ? agw_tls_failure_name(e->reason) : "DTLS failure";
    char cause[96];
    if (e != NULL && e->text != NULL && strcmp(e->text, reason) != 0)
        snprintf(cause, sizeof(cause), "%s: %s", reason, e->text);
    else
        snprintf(cause, sizeof(cause), "%s", reason);
    fail(l, cause);
}

static void after_dtls_input(struct dc_leg *l)
{
    enum agw_tls_state st = agw_dtls_session_state(l->dtls);
    if (st == AGW_TLS_FAILED) {
        dtls_failed(l);
        return;
    }
    service(l);
    if (st == AGW_TLS_VERIFIED && !l->verified) {
        l->verified = true;
        agw_log(AGW_LOG_INFO, "context %u term %s: DTLS up (%s, %s), fingerprint verified",
                leg_context(l), leg_name(l), agw_dtls_session_version(l->dtls),
                agw_dtls_session_cipher(l->dtls));
        start_assoc(l);
    }
    if (!l->verified)
        return;
    size_t got;
    int rc;
    while ((rc = agw_dtls_session_read(l->dtls, l->d->plain, sizeof(l->d->plain), &got)) == 0) {
        if (l->assoc != NULL)
            agw_sctp_assoc_input(l->assoc, l->d->plain, got);
    }
    if (rc == -EPIPE && !l->failed) {
        agw_log(AGW_LOG_INFO, "context %u term %s: DTLS close_notify", leg_context(l), leg_name(l));
        post(l, AGW_LEG_FAILED, "DTLS closed by the peer");
        end_association(l, false);
        return;
    }
    if (agw_dtls_session_state(l->dtls) == AGW_TLS_FAILED) {
        dtls_failed(l);
        return;
    }
    pump_events(l);
}

/* Starts DTLS (or, for UDP/SCTP, the association) once the leg knows enough. */
static void start_session(struct dc_leg *l)
{
    if (l->conf == NULL || l->failed || l->released || !l->has_udp)
        return;
    if (l->dtls == NULL && l->assoc == NULL) {
        l->generation = l->conf->connection_generation;
        l->started_ms = uv_now(l->d->loop);
    }
    if (!l->conf->secure) {
        l->verified = true;
        start_assoc(l);
        return;
    }
    if (l->dtls != NULL)
        return;
    /* A client needs the far end's address; a server answers whoever the Remote names. */
    if (l->conf->tls_client && !l->has_remote)
        return;
    if (l->d->dtls_ctx == NULL) {
        char err[128];
        if (agw_dtls_ctx_new(NULL, &l->d->dtls_ctx, err, sizeof(err)) < 0) {
            fail(l, "DTLS context");
            return;
        }
    }
    int rc = agw_dtls_session_new(l->d->dtls_ctx, l->conf->identity,
                                  l->conf->tls_client ? AGW_TLS_CLIENT : AGW_TLS_SERVER, DC_MTU,
                                  &l->dtls);
    if (rc < 0) {
        fail(l, "cannot make a DTLS session");
        return;
    }
    if (l->conf->fingerprints_known)
        agw_dtls_session_set_fingerprints(l->dtls, l->conf->fingerprints, l->conf->n_fingerprints);
    service(l);
}

/* ---- Timers ---- */

static void on_tick(uv_timer_t *t);

static void update_tick(struct agw_dc *d)
{
    bool busy = false;
    for (size_t i = 0; i < d->n && !busy; i++)
        busy = d->legs[i]->dtls != NULL || d->legs[i]->assoc != NULL;
    if (busy && !d->ticking && d->has_tick) {
        d->last_tick_ns = uv_hrtime();
        uv_timer_start(&d->tick, on_tick, AGW_SCTP_TICK_MS, AGW_SCTP_TICK_MS);
        d->ticking = true;
    } else if (!busy && d->ticking) {
        uv_timer_stop(&d->tick);
        d->ticking = false;
    }
}

static void on_tick(uv_timer_t *t)
{
    struct agw_dc *d = t->data;
    uint64_t now_ns = uv_hrtime();
    uint32_t elapsed = (uint32_t)((now_ns - d->last_tick_ns) / 1000000);
    if (elapsed > 0) {
        d->last_tick_ns += (uint64_t)elapsed * 1000000;
        agw_sctp_timers(elapsed);
    }
    uint64_t now = uv_now(d->loop);
    for (size_t i = 0; i < d->n; i++) {
        struct dc_leg *l = d->legs[i];
        if (l->dtls != NULL && !l->verified && agw_dtls_session_timeout_ms(l->dtls) == 0) {
            agw_dtls_session_handle_timeout(l->dtls);
            if (agw_dtls_session_state(l->dtls) == AGW_TLS_FAILED) {
                dtls_failed(l);
                continue;
            }
        }
        if (l->conf != NULL && l->conf->dc->ice && l->has_remote && !l->consent_expired &&
            now - l->last_check_ms > (l->conf->ice_consent_timeout_ms
                                          ? l->conf->ice_consent_timeout_ms
                                          : DC_CONSENT_MS)) {
            l->consent_expired = true;
            agw_log(AGW_LOG_WARN, "context %u term %s: ICE consent expired: sending stopped",
                    leg_context(l), leg_name(l));
            post(l, AGW_LEG_FAILED, "ICE consent expired");
        }
        bool waiting = (l->dtls != NULL && !l->verified) || (l->assoc != NULL && !l->up);
        if (waiting && !l->failed && l->conf != NULL && l->conf->handshake_timeout_ms > 0 &&
            now - l->started_ms > l->conf->handshake_timeout_ms) {
            fail(l, "handshake timeout");
            continue;
        }
        if (l->assoc != NULL)
            pump_events(l);
        else
            service(l);
    }
    update_tick(d);
}

/* ---- The socket ---- */

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr *b)
{
    if (a->ss_family != b->sa_family)
        return false;
    if (b->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct dc_leg *l = h->data;
    /* libuv reads DC_RECV_BATCH datagrams per recvmmsg into a buffer this big; one buffer per
     * worker serves every leg, as each datagram is handled before the next read. */
    if (l->d->rbuf == NULL)
        l->d->rbuf = malloc((size_t)DC_RECV_BATCH * DC_RECV_BUFFER);
    *buf = uv_buf_init((char *)l->d->rbuf,
                       l->d->rbuf != NULL ? (unsigned)DC_RECV_BATCH * DC_RECV_BUFFER : 0);
}

static void set_remote(struct dc_leg *l, const struct sockaddr *from)
{
    memset(&l->remote, 0, sizeof(l->remote));
    memcpy(&l->remote, from,
           from->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    l->has_remote = true;
}

/* ICE-lite: answers a binding request; an address that passes the check may speak (the one the
 * peer nominates wins), and each check renews consent (RFC 7675). */
static void handle_stun(struct dc_leg *l, const uint8_t *p, size_t len, const struct sockaddr *from)
{
    struct agw_stun_request req;
    uint16_t unknown[AGW_STUN_MAX_UNKNOWN];
    size_t n_unknown = 0;
    const char *remote_ufrag =
        l->conf->dc->remote_ice_ufrag[0] ? l->conf->dc->remote_ice_ufrag : NULL;
    int rc = agw_stun_check_request(p, len, l->conf->dc->ice_ufrag, l->conf->dc->ice_pwd,
                                    remote_ufrag, &req, unknown, &n_unknown);
    uint8_t out[512];
    size_t out_len = 0;
    if (rc < 0) {
        l->dropped++;
        if (hostile_log_allowed(l))
            agw_log(AGW_LOG_WARN, "context %u term %s: STUN message dropped: %s", leg_context(l),
                    leg_name(l), strerror(-rc));
        return;
    }
    if (rc > 0) {
        if (hostile_log_allowed(l))
            agw_log(AGW_LOG_WARN, "context %u term %s: STUN binding request refused with %d",
                    leg_context(l), leg_name(l), rc);
        if (agw_stun_build_error(req.tid, (unsigned)rc, NULL,
                                 req.authenticated ? l->conf->dc->ice_pwd : NULL, unknown,
                                 n_unknown, out, sizeof(out), &out_len) < 0)
            return;
    } else if (agw_stun_build_success(req.tid, from, l->conf->dc->ice_pwd, out, sizeof(out),
                                      &out_len) < 0) {
        return;
    }
    uv_buf_t b = uv_buf_init((char *)out, (unsigned)out_len);
    if (uv_udp_try_send(&l->udp, &b, 1, from) >= 0)
        l->wire_out += out_len;
    if (rc != 0)
        return;
    bool same = l->has_remote && same_addr(&l->remote, from);
    if (!l->has_remote || (!same && req.use_candidate && !l->nominated)) {
        if (l->has_remote && (l->dtls != NULL || l->assoc != NULL))
            end_association(l, false); /* DTLS runs with the nominated address only */
        set_remote(l, from);
        agw_log(AGW_LOG_INFO, "context %u term %s: ICE check passed, remote selected",
                leg_context(l), leg_name(l));
        same = true;
    }
    if (!same)
        return;
    l->nominated |= req.use_candidate;
    l->last_check_ms = uv_now(l->d->loop);
    if (l->consent_expired) {
        agw_log(AGW_LOG_INFO, "context %u term %s: ICE consent renewed", leg_context(l),
                leg_name(l));
        l->consent_expired = false;
    }
    start_session(l);
    service(l);
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                    unsigned flags)
{
    (void)flags;
    struct dc_leg *l = h->data;
    if (nread <= 0 || from == NULL || l->released || l->conf == NULL || l->failed)
        return;
    if (l->conf->dc->ice && agw_stun_is_stun((const uint8_t *)buf->base, (size_t)nread)) {
        l->wire_in += (uint64_t)nread;
        handle_stun(l, (const uint8_t *)buf->base, (size_t)nread, from);
        update_tick(l->d);
        return;
    }
    /* Only the far end the Remote named may speak; before a Remote, the first to speak is it. */
    if (l->has_remote && !same_addr(&l->remote, from)) {
        l->dropped++;
        if (hostile_log_allowed(l))
            agw_log(AGW_LOG_WARN,
                    "context %u term %s: datagram from an address other than the "
                    "Remote's: dropped",
                    leg_context(l), leg_name(l));
        return;
    }
    if (!l->has_remote) {
        if (l->conf->dc->ice) {
            l->dropped++; /* with ICE, only an address that passed a check may speak */
            return;
        }
        set_remote(l, from);
        start_session(l);
    }
    l->wire_in += (uint64_t)nread;
    if (l->dtls != NULL) {
        agw_dtls_session_input(l->dtls, buf->base, (size_t)nread);
        after_dtls_input(l);
    } else if (l->assoc != NULL) {
        agw_sctp_assoc_input(l->assoc, buf->base, (size_t)nread);
        pump_events(l);
    }
    update_tick(l->d);
}

static void on_udp_closed(uv_handle_t *h)
{
    struct dc_leg *l = h->data;
    struct agw_dc *d = l->d;
    d->handles--;
    free(l);
    maybe_free_dc(d);
}

static void open_socket(struct dc_leg *l)
{
    if (l->has_udp || l->pending_fd < 0)
        return;
    if (!l->d->sctp_started) {
        if (agw_sctp_init() < 0) {
            fail(l, "cannot start usrsctp");
            return;
        }
        l->d->sctp_started = true;
    }
    if (uv_udp_init_ex(l->d->loop, &l->udp, AF_UNSPEC | UV_UDP_RECVMMSG) < 0)
        return;
    l->udp.data = l;
    l->d->handles++;
    l->has_udp = true;
    /* A browser's SCTP sends bursts of a whole window: the default ~208 KB receive buffer
     * drops datagrams that SCTP then has to resend (CAP_NET_ADMIN lifts the sysctl cap). */
    int rcvbuf = DC_SOCKET_BUFFER;
    if (setsockopt(l->pending_fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
        setsockopt(l->pending_fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    if (uv_udp_open(&l->udp, l->pending_fd) < 0 ||
        uv_udp_recv_start(&l->udp, on_alloc, on_recv) < 0) {
        agw_log(AGW_LOG_ERROR, "term %s: cannot use its UDP socket", leg_name(l));
        l->pending_fd = -1; /* owned by the handle now: closed with it */
        return;
    }
    /* uv_udp_open sets SO_REUSEADDR, with which another local socket could bind the same port
     * and take the datagrams: the reserved port stays ours alone. */
    int off = 0;
    setsockopt(l->pending_fd, SOL_SOCKET, SO_REUSEADDR, &off, sizeof(off));
    l->pending_fd = -1;
}

/* ---- Operations from the control loop ---- */

int agw_dc_new(struct agw_dc **out, uv_loop_t *loop, struct agw_relay *relay, agw_leg_event_cb cb,
               void *arg)
{
    struct agw_dc *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    d->loop = loop;
    d->relay = relay;
    d->cb = cb;
    d->arg = arg;
    if (uv_timer_init(loop, &d->tick) == 0) {
        d->tick.data = d;
        d->has_tick = true;
        d->handles++;
    }
    *out = d;
    return 0;
}

bool agw_dc_has(struct agw_dc *d, uint64_t key)
{
    return find(d, key) != NULL;
}

void agw_dc_adopt(struct agw_dc *d, uint64_t key, int fd)
{
    struct dc_leg *l = leg_get(d, key);
    if (l == NULL || l->has_udp || l->pending_fd >= 0) {
        close(fd);
        return;
    }
    l->pending_fd = fd;
    open_socket(l);
    start_session(l);
    update_tick(d);
}

void agw_dc_configure(struct agw_dc *d, struct agw_leg_conf *conf)
{
    /* The control loop gives every data-channel leg its conf->dc. */
    struct dc_leg *l = conf->dc != NULL ? leg_get(d, conf->key) : NULL;
    if (l == NULL) {
        agw_leg_conf_free(conf);
        return;
    }
    struct agw_leg_conf *old = l->conf;
    l->conf = conf;
    struct dc_leg *p = find(d, conf->peer_key);
    if (l->peer != p) {
        if (l->peer != NULL && l->peer->peer == l)
            l->peer->peer = NULL;
        l->peer = p;
    }
    if (p != NULL)
        p->peer = l;
    /* A new tls-id or a=connection:new: the association starts again. */
    if (old != NULL && old->connection_generation != conf->connection_generation &&
        (l->dtls != NULL || l->assoc != NULL)) {
        agw_log(AGW_LOG_INFO, "context %u term %s: new association asked for", conf->context_id,
                leg_name(l));
        bool was_up = l->up;
        end_association(l, true);
        l->failed = false;
        if (was_up && p != NULL)
            close_relayed_channels(p);
    }
    if (conf->has_remote && !conf->dc->ice) {
        if (l->has_remote && !same_addr(&l->remote, &conf->remote.sa) &&
            (l->dtls != NULL || l->assoc != NULL)) {
            /* Someone else spoke first: the Remote's address is the one to talk to. */
            end_association(l, false);
        }
        memset(&l->remote, 0, sizeof(l->remote));
        memcpy(&l->remote, &conf->remote, sizeof(conf->remote));
        l->has_remote = true;
    }
    if (l->dtls != NULL && conf->fingerprints_known && !l->verified)
        agw_dtls_session_set_fingerprints(l->dtls, conf->fingerprints, conf->n_fingerprints);
    agw_leg_conf_free(old);
    open_socket(l);
    start_session(l);
    if (l->dtls != NULL)
        after_dtls_input(l);
    /* A new peer may take what either side held back. */
    pump_events(l);
    if (p != NULL)
        pump_events(p);
    update_tick(d);
}

static void release_leg(struct agw_dc *d, struct dc_leg *l)
{
    forget(d, l);
    if (l->peer != NULL) {
        if (l->up)
            close_relayed_channels(l->peer);
        if (l->peer->peer == l)
            l->peer->peer = NULL;
    }
    l->peer = NULL;
    l->released = true;
    end_association(l, true);
    agw_msrp_framer_free(&l->bridge.framer);
    free(l->bridge.piece);
    l->bridge.piece = NULL;
    agw_leg_conf_free(l->conf);
    l->conf = NULL;
    if (l->pending_fd >= 0)
        close(l->pending_fd);
    /* d is not freed here: agw_dc_close (or a close callback after it) does that, so d stays
     * valid for update_tick and for the caller's loop. */
    if (l->has_udp)
        uv_close((uv_handle_t *)&l->udp, on_udp_closed);
    else
        free(l);
    update_tick(d);
}

void agw_dc_release(struct agw_dc *d, uint64_t key, struct agw_leg_figures *out)
{
    agw_dc_figures(d, key, out);
    struct dc_leg *l = find(d, key);
    if (l != NULL) {
        agw_log(AGW_LOG_DEBUG,
                "context %u term %s: released (messages in %llu out %llu, dropped "
                "%llu)",
                leg_context(l), leg_name(l), (unsigned long long)l->messages_in,
                (unsigned long long)l->messages_out, (unsigned long long)l->dropped);
        release_leg(d, l);
    }
}

int agw_dc_detach(struct agw_dc *d, uint64_t key)
{
    struct dc_leg *l = find(d, key);
    if (l == NULL)
        return -1;
    int fd = -1;
    if (l->pending_fd >= 0) {
        fd = l->pending_fd;
        l->pending_fd = -1;
    } else if (l->has_udp) {
        uv_os_fd_t ufd;
        if (uv_fileno((uv_handle_t *)&l->udp, &ufd) == 0)
            fd = dup(ufd);
    }
    release_leg(d, l);
    return fd;
}

void agw_dc_figures(struct agw_dc *d, uint64_t key, struct agw_leg_figures *out)
{
    struct dc_leg *l = find(d, key);
    memset(out, 0, sizeof(*out));
    if (l == NULL)
        return;
    out->octets_sent = l->wire_out;
    out->octets_received = l->wire_in;
    out->messages_sent = l->messages_out;
    out->messages_received = l->messages_in;
    out->channels = l->channels_opened;
}

static void on_tick_closed(uv_handle_t *h)
{
    struct agw_dc *d = h->data;
    d->handles--;
    maybe_free_dc(d);
}

void agw_dc_close(struct agw_dc *d)
{
    d->closing = true;
    while (d->n > 0)
        release_leg(d, d->legs[d->n - 1]);
    if (d->has_tick) {
        d->has_tick = false;
        uv_close((uv_handle_t *)&d->tick, on_tick_closed);
    }
    maybe_free_dc(d);
}
