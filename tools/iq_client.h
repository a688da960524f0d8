/* The MGC side of Iq over UDP: registration, transactions, retransmission, pipelining. */
#ifndef IMS_AGW_IQ_CLIENT_H
#define IMS_AGW_IQ_CLIENT_H

#include "h248/h248.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct iq_client;
struct iq_rx; /* private: a received message shared by the replies and events it carries */

/* Zero fields take the default in brackets. */
struct iq_client_options {
    unsigned version;            /* highest H.248 version we speak [3] */
    unsigned retransmit_ms;      /* first retransmission timer, doubled each time [200] */
    unsigned retransmit_max_ms;  /* cap of the doubled timer [4000] */
    unsigned max_tries;          /* copies of a request sent in all [5] */
    unsigned pending_timeout_ms; /* wait after each Pending, without retransmitting [10000] */
    unsigned max_pendings;       /* Pendings accepted for one transaction [20] */
    unsigned max_outstanding;    /* transactions in flight, rounded up to a power of 2 [1024] */
    unsigned max_events;         /* queued events; the oldest is dropped beyond it [1024] */
    uint32_t first_tid;          /* first transaction id [random, so runs do not collide] */
    const struct h248_limits *limits; /* applied to every datagram received [codec defaults] */
    /* Sees every datagram sent (outbound) and received, before any check. May be NULL. */
    void (*trace)(void *arg, bool outbound, const char *data, size_t len,
                  const struct sockaddr *peer);
    void *trace_arg;
};

/* How the registration ServiceChange is answered (also used for later ServiceChanges on ROOT). */
struct iq_register_reply {
    unsigned version;         /* Version=N in the reply; 0: min(offered, ours) */
    const char *redirect_mid; /* MgcIdToTry=MID instead of a Version, e.g. "[192.0.2.7]:2944" */
    unsigned error_code;      /* non-zero: answer ER=code{"error_text"} instead */
    const char *error_text;
};

/* A transaction's outcome. msg and trans stay valid until iq_reply_release. */
struct iq_reply {
    uint32_t tid;
    int status;                           /* 0: a reply came; -ETIMEDOUT */
    const struct h248_message *msg;       /* the message that carried it (NULL unless status 0) */
    const struct h248_transaction *trans; /* the reply; NULL when msg holds a message error */
    unsigned sends;                       /* copies sent: 1 + retransmissions */
    unsigned pendings;                    /* Pendings received before the reply */
    uint64_t latency_us;                  /* first send to reply */
    struct iq_rx *rx;                     /* private */
};

enum iq_event_kind {
    IQ_EVENT_REQUEST, /* the gateway's request (Notify, ServiceChange...), already answered */
    IQ_EVENT_GARBAGE, /* a datagram that did not parse: error says why, msg is NULL */
    IQ_EVENT_OTHER,   /* a message no outstanding transaction took (late duplicate, ...) */
};

/* Something the gateway sent that no transaction consumed. msg valid until iq_event_release. */
struct iq_event {
    enum iq_event_kind kind;
    const struct h248_message *msg;
    struct h248_parse_error error; /* GARBAGE */
    size_t len;                    /* datagram size */
    struct sockaddr_storage from;
    struct iq_rx *rx; /* private */
};

struct iq_client_stats {
    uint64_t sent, received, retransmissions, pendings, acks_sent, requests_answered;
    uint64_t garbage, foreign, unmatched, timeouts, events_dropped;
};

/* Opens a socket bound to local ("ADDR:PORT", "[v6]:PORT"; port 0 picks one). gateway may be
 * NULL: it is then learnt from the registration. mid NULL: our address as "[ADDR]:PORT".
 * opts may be NULL. On success *out is owned by the caller (iq_client_close). */
int iq_client_open(const char *local, const char *gateway, const char *mid,
                   const struct iq_client_options *opts, struct iq_client **out);

/* Frees the client, its transactions in flight and its queued events. NULL is allowed. */
void iq_client_close(struct iq_client *c);

/* The bound address (useful after port 0), and the gateway address (-ENOTCONN if unknown). */
int iq_client_local_addr(const struct iq_client *c, struct sockaddr_storage *out);
int iq_client_gateway_addr(const struct iq_client *c, struct sockaddr_storage *out);
int iq_client_set_gateway(struct iq_client *c, const char *gateway);

/* The version used in messages we send: ours, then what the registration agreed. */
unsigned iq_client_version(const struct iq_client *c);

/* How ServiceChanges on ROOT that (re)start the association are answered from now on (NULL:
 * accept with min(offered, ours)). -EINVAL for a bad redirect mId or error code. */
int iq_client_set_registration_reply(struct iq_client *c, const struct iq_register_reply *how);

/* True when msg holds a ServiceChange on ROOT that (re)starts the association. */
bool iq_is_registration(const struct h248_message *msg);

/* Waits for a ServiceChange on ROOT from the gateway (from any address if none is set yet) and
 * answers it as how says (NULL: accept; later ServiceChanges on ROOT get the same answer). The
 * sender becomes the gateway. *request_out (may be NULL) receives the request as an event, to be
 * released with iq_event_release. timeout_ms < 0: forever. -ETIMEDOUT when none came. */
int iq_client_wait_registration(struct iq_client *c, int timeout_ms,
                                const struct iq_register_reply *how,
                                struct sockaddr_storage *gateway_out, struct iq_event *request_out);

/* Parses text as a whole message, as transaction(s) or as action(s), adding the header and a
 * Transaction wrapper when missing. *out is owned by the caller (h248_message_free). */
int iq_client_parse_text(const struct iq_client *c, const char *text, size_t len,
                         struct h248_message **out, struct h248_parse_error *err);

/* Sends msg, which must hold exactly one request transaction, and waits for its reply. Our mId,
 * version and a fresh transaction id are written into msg (borrowed). timeout_ms caps the wait
 * until a Pending arrives (0: the retransmission schedule alone). On 0, *reply holds a reply
 * (with or without error descriptors) that the caller releases with iq_reply_release. */
int iq_client_request(struct iq_client *c, struct h248_message *msg, int timeout_ms,
                      struct iq_reply *reply);

/* iq_client_request on text (see iq_client_parse_text); a parse failure fills err. */
int iq_client_request_text(struct iq_client *c, const char *text, size_t len, int timeout_ms,
                           struct iq_reply *reply, struct h248_parse_error *err);

/* Releases what a reply holds; the struct may be reused. */
void iq_reply_release(struct iq_reply *reply);

/* The first error descriptor of a reply (message, transaction, action or command level), or
 * NULL. Borrowed from the reply. */
const struct h248_error_desc *iq_reply_error(const struct iq_reply *reply);

/* Pipelining: stamps msg (borrowed) like iq_client_request, with consecutive ids from *tid_out,
 * sends it without waiting. -ENOBUFS when the table of transactions in flight is full. */
int iq_client_send_request(struct iq_client *c, struct h248_message *msg, int timeout_ms,
                           uint32_t *tid_out);

/* Called once per finished pipelined transaction; reply is borrowed for the call. cb may call
 * iq_client_send_request but none of the waiting functions. */
typedef void (*iq_reply_cb)(void *arg, const struct iq_reply *reply);

/* Receives and retransmits until at least one pipelined transaction finished or timeout_ms
 * passed; reports each finished one to cb. Returns how many were reported, or < 0. */
int iq_client_poll_replies(struct iq_client *c, int timeout_ms, iq_reply_cb cb, void *arg);

/* Transactions sent with iq_client_send_request and not yet reported. */
unsigned iq_client_outstanding(const struct iq_client *c);

/* Sends bytes as they are to the gateway (for malformed-input tests). */
int iq_client_send_raw(struct iq_client *c, const void *data, size_t len);

/* The next event (queued, or received within timeout_ms; < 0: forever). 0 and *ev filled, to be
 * released with iq_event_release; -ETIMEDOUT when nothing came. */
int iq_client_recv(struct iq_client *c, int timeout_ms, struct iq_event *ev);

void iq_event_release(struct iq_event *ev);

void iq_client_get_stats(const struct iq_client *c, struct iq_client_stats *out);

/* Encodes msg into a malloc'd, NUL terminated buffer the caller frees. */
int iq_format_message(const struct h248_message *msg, enum h248_style style, char **out,
                      size_t *len_out);

/* Parses "ADDR:PORT" or "[v6]:PORT" (numeric only). */
int iq_parse_addr(const char *text, struct sockaddr_storage *out, socklen_t *len_out);

/* "ADDR:PORT" / "[v6]:PORT" into buf (at least 64 bytes). */
const char *iq_format_addr(const struct sockaddr_storage *a, char *buf, size_t cap);

#endif
