/* SCTP associations over usrsctp AF_CONN for data channels: packets in, packets and events out. */
#ifndef IMS_AGW_SCTP_ASSOC_H
#define IMS_AGW_SCTP_ASSOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* usrsctp is a process-wide singleton with internal state shared by every association. Every
   agw_sctp_ function must be called from one thread (the worker that owns the data-channel
   contexts); none of them is thread-safe. Nothing here does I/O: the caller feeds decrypted DTLS
   payloads in, drains packets to encrypt, pops events and drives the timers. After any call that
   takes an association, drain that association's output and events. */

/* Starts usrsctp (no threads, no UDP encapsulation, no raw sockets; the CRC32c computed and
   checked here, not by usrsctp). 0; repeated calls are 0. */
int agw_sctp_init(void);

/* Stops usrsctp. 0; -EBUSY while associations exist or usrsctp is still closing sockets (run
   agw_sctp_timers and retry). */
int agw_sctp_finish(void);

/* Advances usrsctp's timers by elapsed_ms (retransmissions, delayed SACKs, heartbeats). Give
   it real elapsed time: usrsctp also reads the wall clock, and a retransmission timer resends
   only chunks that were sent at least one RTO ago by that clock. */
void agw_sctp_timers(uint32_t elapsed_ms);

/* Milliseconds until agw_sctp_timers should next be called; -1 when nothing needs time. usrsctp
   does not tell its next expiry, so this is a fixed tick while associations exist. */
int agw_sctp_next_timeout(void);

#define AGW_SCTP_TICK_MS 10
#define AGW_SCTP_UNLIMITED SIZE_MAX /* peer_max_message_size for a=max-message-size:0 */

struct agw_sctp_limits {
    size_t max_message_size;      /* ours: a longer received message is dropped (an event says) */
    size_t peer_max_message_size; /* the peer's a=max-message-size: longer sends are refused */
    size_t send_buffer;           /* bytes we hold for usrsctp before send says -EAGAIN */
    size_t recv_buffer;           /* bytes of undrained events before we stop reading (the
                                     peer's window then closes: backpressure) */
    size_t output_buffer;         /* bytes of undrained packets; beyond, packets are dropped
                                     and SCTP retransmits them */
    uint16_t streams;             /* inbound and outbound streams offered in INIT. RFC 8831
                                     asks for 65535, but usrsctp holds ~100 bytes per stream:
                                     an association costs ~110 KiB at 1024, ~6.5 MiB at 65535 */
    uint16_t mtu;                 /* largest SCTP packet: what fits a DTLS record in UDP */
};

/* 256 KiB messages both ways, 1 MiB buffers, 1024 streams, 1200-byte packets. */
extern const struct agw_sctp_limits agw_sctp_default_limits;

struct agw_sctp_assoc;

/* Opens an association on a=sctp-port local_port toward the peer's remote_port and starts it
   (both ends send INIT, as WebRTC endpoints do): the INIT is the first pending output. Call once
   DTLS is connected. limits NULL = defaults; copied. *out owned by the caller
   (agw_sctp_assoc_free). 0; -EINVAL (not initialised, port 0, a zero limit, mtu below 576);
   -ENOMEM; -EIO when usrsctp refuses a step. */
int agw_sctp_assoc_new(uint16_t local_port, uint16_t remote_port,
                       const struct agw_sctp_limits *limits, struct agw_sctp_assoc **out);

/* Aborts the association if it is still up (the ABORT chunk is not sent: say goodbye with
   agw_sctp_assoc_shutdown or _abort first) and frees it with everything it holds. NULL ok. */
void agw_sctp_assoc_free(struct agw_sctp_assoc *a);

/* One SCTP packet the DTLS layer decrypted; borrowed. 0; -EINVAL for an empty packet;
   -EMSGSIZE above 65535 bytes. A packet whose CRC32c does not match (or too short to carry one)
   is dropped and counted (agw_sctp_checksum_errors); other packets that are not valid SCTP for
   this association are dropped by usrsctp. */
int agw_sctp_assoc_input(struct agw_sctp_assoc *a, const void *packet, size_t len);

/* Packets agw_sctp_assoc_input dropped for their checksum, by every association since the
   process started. */
uint64_t agw_sctp_checksum_errors(void);

/* The next packet to hand to DTLS: 1 with *packet and *len set, the bytes valid until the next
   agw_sctp_assoc_pending_output or agw_sctp_assoc_free on a; 0 when there is none. */
int agw_sctp_assoc_pending_output(struct agw_sctp_assoc *a, const uint8_t **packet, size_t *len);

/* Partial reliability of one message (RFC 3758), from the channel type. */
enum agw_sctp_pr {
    AGW_SCTP_PR_NONE,
    AGW_SCTP_PR_RTX, /* value = retransmissions */
    AGW_SCTP_PR_TTL, /* value = lifetime in milliseconds */
};

struct agw_sctp_sendinfo {
    uint16_t stream;
    uint32_t ppid;
    bool unordered;
    enum agw_sctp_pr pr;
    uint32_t pr_value;
};

/* Queues one message (copied; SCTP cannot carry 0 bytes: send empty ones as one byte with PPID
   56/57). 0; -ENOTCONN before AGW_SCTP_EVENT_UP or after DOWN; -EINVAL for an empty message, a
   stream outside the negotiated ones or a bad pr; -EMSGSIZE beyond peer_max_message_size;
   -EAGAIN when send_buffer is full (AGW_SCTP_EVENT_WRITABLE follows); -ENOMEM. */
int agw_sctp_assoc_send(struct agw_sctp_assoc *a, const struct agw_sctp_sendinfo *info,
                        const void *data, size_t len);

/* Bytes accepted by agw_sctp_assoc_send and not yet taken by usrsctp. */
size_t agw_sctp_assoc_buffered(const struct agw_sctp_assoc *a);

/* Resets our outgoing stream (RFC 6525) once every message queued on it before is handed to
   SCTP: how a data channel is closed. The peer sees AGW_SCTP_EVENT_STREAM_CLOSED and answers
   with its own reset. 0; -ENOTCONN; -EINVAL for a stream outside the negotiated ones; -ENOMEM. */
int agw_sctp_assoc_reset_stream(struct agw_sctp_assoc *a, uint16_t stream);

/* Graceful SHUTDOWN once queued data is delivered; AGW_SCTP_EVENT_DOWN (error 0) follows.
   0; -ENOTCONN when not up. Sends are refused from now on. */
int agw_sctp_assoc_shutdown(struct agw_sctp_assoc *a);

/* Sends ABORT now (pending output) and drops everything queued; AGW_SCTP_EVENT_DOWN
   (-ECONNRESET) follows. 0; -ENOTCONN when already down. */
int agw_sctp_assoc_abort(struct agw_sctp_assoc *a);

enum agw_sctp_event_type {
    AGW_SCTP_EVENT_UP = 1,            /* established: in_streams/out_streams negotiated */
    AGW_SCTP_EVENT_DOWN,              /* over: error 0 (shutdown), -ECONNRESET (abort or lost),
                                         -ECONNREFUSED (could not start) */
    AGW_SCTP_EVENT_MESSAGE,           /* a whole message: stream, ppid, unordered, data, len */
    AGW_SCTP_EVENT_MESSAGE_DROPPED,   /* a message longer than max_message_size: stream, ppid, len
                                         (bytes received before it was dropped) */
    AGW_SCTP_EVENT_STREAM_CLOSED,     /* the peer reset its outgoing `stream`: a channel closes */
    AGW_SCTP_EVENT_STREAM_RESET_DONE, /* our reset of `stream` is done; error -EPERM if denied,
                                         -EIO if it failed */
    AGW_SCTP_EVENT_WRITABLE,          /* send_buffer drained after an -EAGAIN */
};

struct agw_sctp_event {
    enum agw_sctp_event_type type;
    int error;
    uint16_t stream;
    uint32_t ppid;
    bool unordered;
    const uint8_t *data; /* MESSAGE: valid until the next agw_sctp_assoc_next_event or free */
    size_t len;
    uint16_t in_streams, out_streams; /* UP */
};

/* The next event: 1 with *ev filled, 0 when there is none. Popping events may let usrsctp read
   more (and send a window update), so drain the output afterwards. */
int agw_sctp_assoc_next_event(struct agw_sctp_assoc *a, struct agw_sctp_event *ev);

#endif
