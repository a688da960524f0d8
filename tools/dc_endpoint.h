/* A WebRTC data-channel endpoint over UDP (DTLS+SCTP, or SCTP in plain UDP) for tests and tools. */
#ifndef IMS_AGW_TOOLS_DC_ENDPOINT_H
#define IMS_AGW_TOOLS_DC_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tls/cert.h"
#include "tls/fingerprint.h"
#include "tls/session.h"

/* The thread that owns usrsctp for the whole process (one dc_net at a time) and every endpoint's
   socket, DTLS session and association. The other functions here may be called from any thread:
   they hand their work to that thread and wait for it. */
struct dc_net;

/* Starts the thread. *out owned by the caller (dc_net_stop). 0; -EBUSY when a dc_net already
   runs in this process; -ENOMEM; -errno from eventfd or pthread_create. */
int dc_net_start(struct dc_net **out);

/* Frees every endpoint still there (as dc_endpoint_free), stops usrsctp and the thread, and frees
   n. No other call on n or its endpoints may be running. NULL is ignored. */
void dc_net_stop(struct dc_net *n);

#define DC_SCTP_PORT 5000              /* a=sctp-port when none is given */
#define DC_MAX_MESSAGE_SIZE 262144     /* ours, when none is given */
#define DC_PEER_MAX_MESSAGE_SIZE 65536 /* RFC 8841 §6: what a=max-message-size absent means */
#define AGW_ICE_TEXT_MAX 256
#define DC_EVENT_QUEUE_MAX (64u << 20) /* message bytes queued before reading stops */

/* Zeroed fields take the defaults. Borrowed for the duration of dc_endpoint_new. */
struct dc_endpoint_config {
    bool dtls;              /* false: SCTP straight in UDP ("UDP/SCTP", trusted core) */
    enum agw_tls_role role; /* DTLS role; stream ids: CLIENT opens even ones, SERVER odd ones */
    struct agw_tls_identity *identity;          /* DTLS: NULL generates one; referenced */
    const struct agw_tls_fingerprint *peer_fps; /* DTLS: copied; none: the handshake waits */
    size_t n_peer_fps;                          /* for dc_endpoint_set_peer_fingerprints */
    const struct sockaddr *local;               /* NULL: 127.0.0.1, any port */
    socklen_t local_len;
    uint16_t sctp_port, peer_sctp_port; /* a=sctp-port, ours and the peer's */
    size_t max_message_size;            /* ours (a=max-message-size) */
    size_t peer_max_message_size;       /* theirs; SIZE_MAX for a=max-message-size:0 */
    size_t event_queue_max;             /* message bytes queued for next_event before reading stops
                                           (backpressure to the peer); 0: DC_EVENT_QUEUE_MAX */
    /* ICE toward an ICE-lite peer (the gateway): its a=ice-ufrag/a=ice-pwd (both set: ICE on;
       connect then sends binding requests, and DTLS starts once one succeeded) and our ufrag
       (NULL: "dcpeer"). Copied; at most AGW_ICE_TEXT_MAX characters each. */
    const char *ice_peer_ufrag, *ice_peer_pwd, *ice_ufrag;
};

struct dc_endpoint;

/* Binds the UDP socket and hands the endpoint to n's thread. A SERVER listens at once: with no
   remote set, the first datagram's source becomes the remote (the peer then is the DTLS client,
   or the plain-mode peer, and connect is not needed). *out owned by the caller
   (dc_endpoint_free). 0; -EINVAL; -ENOMEM; -errno from socket or bind; the DTLS set-up's code. */
int dc_endpoint_new(struct dc_net *n, const struct dc_endpoint_config *cfg,
                    struct dc_endpoint **out);

/* The bound UDP port. */
uint16_t dc_endpoint_port(const struct dc_endpoint *ep);

/* Our certificate's sha-256 fingerprint, for the peer (DTLS only). 0; -EINVAL in plain mode. */
int dc_endpoint_fingerprint(const struct dc_endpoint *ep, struct agw_tls_fingerprint *out);

/* Sets the remote (copied; datagrams from anyone else are dropped from now on) and starts: a DTLS
   client sends its ClientHello, a server waits for one; the SCTP association (both ends send
   INIT) starts once DTLS is verified, at once in plain mode. 0 (also when the remote was learned
   already and is this one); -EISCONN when another remote is set; -EINVAL. */
int dc_endpoint_connect(struct dc_endpoint *ep, const struct sockaddr *remote, socklen_t len);

/* The peer's allowed fingerprints (copied): resumes a handshake held for lack of them.
   0; -EINVAL in plain mode; the DTLS engine's code (-EALREADY once verified). */
int dc_endpoint_set_peer_fingerprints(struct dc_endpoint *ep, const struct agw_tls_fingerprint *fps,
                                      size_t n);

/* Waits until the association is up: 0; -ETIMEDOUT; or what ended the endpoint: -EACCES the
   peer's certificate was refused, -ECONNABORTED the peer sent a fatal alert, -EPROTO,
   -ECONNREFUSED SCTP could not start, -ECONNRESET aborted or lost, -EPIPE shut down or the
   peer's close_notify. timeout_ms < 0 waits for ever. */
int dc_endpoint_wait_up(struct dc_endpoint *ep, int timeout_ms);

/* The failure code (0 while none) and its text ("fingerprint mismatch", ...) copied into text
   (cap bytes, NUL-terminated; text may be NULL). */
int dc_endpoint_failure(struct dc_endpoint *ep, char *text, size_t cap);

/* A channel to open. label and protocol are NUL-terminated UTF-8 (NULL: empty), borrowed. */
struct dc_channel_spec {
    uint8_t channel_type; /* enum dcep_channel_type */
    uint32_t reliability; /* retransmissions or milliseconds for the partially reliable types */
    uint16_t priority;
    const char *label;
    const char *protocol;
    bool negotiated; /* agreed out of band (a=dcmap): no DCEP, the channel is open at once */
    uint16_t stream; /* negotiated only: the stream id, either parity */
};

/* Opens a channel: DATA_CHANNEL_OPEN on the next free stream id of our parity, open when the ACK
   (or any message from the peer on it) arrives; a negotiated one may be declared before the
   association is up. *stream = the id. 0; -ENOTCONN (DCEP before up); -EINVAL; -EADDRINUSE
   the negotiated id is taken; -ENOSPC no free id; -ENOMEM. */
int dc_endpoint_open_channel(struct dc_endpoint *ep, const struct dc_channel_spec *spec,
                             uint16_t *stream);

/* Waits until channel `stream` is open. 0; -ETIMEDOUT; -ECONNRESET when it is not (or no
   longer) opening nor open; the endpoint's failure. */
int dc_endpoint_wait_open(struct dc_endpoint *ep, uint16_t stream, int timeout_ms);

/* Sends one message (copied) on an open channel, ordering and reliability from its type; before
   the ACK it goes ordered (RFC 8832 §6). Waits while the association's send buffer is full.
   0; -ETIMEDOUT; -EPIPE channel not open; -ENOTCONN association not up; -EMSGSIZE over the
   peer's max-message-size; the endpoint's failure. */
int dc_endpoint_send(struct dc_endpoint *ep, uint16_t stream, bool binary, const void *data,
                     size_t len, int timeout_ms);

/* Sends len bytes (copied) with any PPID on any stream, channel or not: for tests that play a
   hostile peer (malformed DCEP, data on unopened streams). 0; -ENOTCONN; -EAGAIN; -EINVAL. */
int dc_endpoint_send_raw(struct dc_endpoint *ep, uint16_t stream, uint32_t ppid, const void *data,
                         size_t len);

/* Closes a channel by resetting our outgoing stream (RFC 8831 §6.7); DC_EVENT_CHANNEL_CLOSED
   follows when the peer reset its own. 0; -EPIPE when not open; -ENOTCONN. */
int dc_endpoint_close_channel(struct dc_endpoint *ep, uint16_t stream);

enum dc_event_type {
    DC_EVENT_MESSAGE = 1,    /* stream, ppid, binary, data, len (0 for an empty message) */
    DC_EVENT_CHANNEL_OPEN,   /* the peer opened: stream, label, protocol, type, reliability */
    DC_EVENT_CHANNEL_CLOSED, /* stream; by_peer; error < 0: a bad OPEN we refused (DCEP_ERR_) */
    DC_EVENT_DOWN,           /* the endpoint ended: error as dc_endpoint_wait_up's */
};

struct dc_event {
    enum dc_event_type type;
    uint16_t stream;
    uint32_t ppid;
    bool binary;
    bool unordered; /* MESSAGE: as SCTP delivered it */
    uint8_t *data;  /* MESSAGE: malloc'd, never NULL, owned by the caller */
    size_t len;
    char *label, *protocol; /* CHANNEL_OPEN: malloc'd, NUL-terminated, owned by the caller */
    size_t label_len, protocol_len;
    uint8_t channel_type;
    uint32_t reliability;
    uint16_t priority;
    bool by_peer;
    int error;
};

/* Takes the next event into *ev (the caller then owns its buffers). 0; -ETIMEDOUT; -EINVAL. */
int dc_endpoint_next_event(struct dc_endpoint *ep, struct dc_event *ev, int timeout_ms);

/* Frees the buffers of ev and zeroes it. */
void dc_event_clear(struct dc_event *ev);

struct dc_endpoint_stats {
    uint64_t messages_in, messages_out, bytes_in, bytes_out; /* channel messages and bytes */
    uint64_t messages_dropped; /* unknown stream or PPID, over our max-message-size */
    uint64_t dcep_errors;      /* OPENs refused, unexpected ACKs */
    uint64_t datagrams_in, datagrams_out, datagrams_dropped; /* dropped: stranger; unsent */
    uint64_t dtls_datagrams_in, dtls_datagrams_out, dtls_datagrams_dropped;
};

/* 0; -EINVAL. */
int dc_endpoint_stats(struct dc_endpoint *ep, struct dc_endpoint_stats *out);

/* Aborts the association (ABORT sent), sends close_notify, closes the socket and frees ep and
   its queued events. NULL is ignored. */
void dc_endpoint_free(struct dc_endpoint *ep);

#endif
