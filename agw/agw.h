/* The map of the ims-agw daemon: its modules and what they export to each other. */
#ifndef IMS_AGW_AGW_H
#define IMS_AGW_AGW_H

#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "agw/config.h"
#include "h248/h248.h"
#include "h248/sdp.h"
#include "tls/cert.h"
#include "tls/fingerprint.h"
#include "tls/session.h"

#ifndef AGW_VERSION
#define AGW_VERSION "0.0.0"
#endif

#define AGW_DATAGRAM_MAX 65507 /* largest UDP payload over IPv4 */
#define AGW_MAX_STREAMS 1      /* streams per termination in this profile */
#define AGW_MAX_FINGERPRINTS 8 /* a=fingerprint lines kept from a Remote */
#define AGW_MAX_EVENTS 8       /* requested events kept per termination */
#define AGW_TERM_ID_MAX 48     /* "ip/<realm>/<n>" */
#define AGW_MAX_DCMAPS 16      /* a=dcmap lines kept from a data-channel termination's SDP */
#define AGW_SCTP_PORT_DEFAULT 5000
#define AGW_DC_MAX_MESSAGE 262144 /* a=max-message-size the gateway announces */
#define AGW_TLS_ID_MAX 64
/* ICE credentials kept: ours are made short (agw/stun.h); a far end's ufrag longer than
 * AGW_ICE_REMOTE_UFRAG_MAX is not matched in USERNAME (MESSAGE-INTEGRITY still authenticates). */
#define AGW_ICE_UFRAG_MAX 32
#define AGW_ICE_PWD_MAX 64
#define AGW_ICE_REMOTE_UFRAG_MAX 64

/* An IPv4 or IPv6 socket address, without the padding of a sockaddr_storage (sa_family 0:
 * none). */
union agw_sockaddr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

/* An SDP-negotiated data channel (RFC 8864 a=dcmap): no DCEP on its stream. */
struct agw_dcmap {
    uint16_t stream;
    bool unordered;
    uint8_t pr;        /* 0 reliable, 1 max-retr, 2 max-time */
    uint32_t pr_value; /* retransmissions or milliseconds */
    bool msrp;         /* subprotocol "msrp" (RFC 8873) */
};

/* What only a data-channel termination has (SCTP, channels, ICE-lite): allocated for those
 * alone, so that TCP terminations and their legs do not carry it. */
struct agw_dc_params {
    /* The gateway's a=sctp-port, the far end's a=sctp-port and a=max-message-size (0: no
     * limit) and a=tls-id (a new tls-id bumps connection_generation: a new association). */
    uint16_t local_sctp_port, remote_sctp_port;
    uint64_t remote_max_message_size;
    char remote_tls_id[AGW_TLS_ID_MAX + 1];
    struct agw_dcmap dcmaps[AGW_MAX_DCMAPS];
    unsigned n_dcmaps;
    /* ICE-lite: the gateway's credentials, made when a Local asked with a=ice-ufrag:$, and the
     * far end's ufrag from the Remote (checked in the USERNAME of its binding requests); only
     * an address that passed a connectivity check may speak. */
    bool ice;
    char ice_ufrag[AGW_ICE_UFRAG_MAX + 1], ice_pwd[AGW_ICE_PWD_MAX + 1];
    char remote_ice_ufrag[AGW_ICE_REMOTE_UFRAG_MAX + 1];
};

/* log.c */

void agw_log_set_level(enum agw_log_level level);
bool agw_log_enabled(enum agw_log_level level);
/* One line to stderr, written with a single write() so that threads do not interleave. */
void agw_log(enum agw_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* At most `per_second` lines a second for one source of hostile input; counts what it drops. */
struct agw_log_limit {
    uint64_t second;
    unsigned lines;
    unsigned long suppressed;
};
bool agw_log_allow(struct agw_log_limit *limit, uint64_t now_ms, unsigned per_second);

/* realm.c */

/* An address realm (H.248.41 ipdc/realm): where terminations get their address and ports. */
struct agw_realm {
    char name[AGW_CONFIG_REALM_NAME_MAX + 1];
    struct sockaddr_storage addr; /* port 0 */
    socklen_t addrlen;
    char addr_text[INET6_ADDRSTRLEN];
    uint16_t port_low, port_high;
    uint32_t port_hint;    /* next port to try, as an offset from port_low */
    uint8_t *ports_in_use; /* bitmap over the range */
    unsigned ports_used;
    uint32_t next_term_number;
    struct agw_tls_identity *identity; /* the realm's certificate (one reference) */
};

/* Sets a realm up from its configuration: port bitmap, certificate loaded or generated. */
int agw_realm_init(struct agw_realm *realm, const struct agw_config_realm *conf, char *err,
                   size_t errlen);
void agw_realm_fini(struct agw_realm *realm);
/* Binds a socket on a free port of the realm (TCP: bound and listening when listen is set; UDP:
 * bound). *fd is owned by the caller. -ENOSPC when every port is taken. */
int agw_realm_reserve(struct agw_realm *realm, int socktype, bool listen, int *fd, uint16_t *port);
/* Gives the port back once its socket is closed. */
void agw_realm_release(struct agw_realm *realm, uint16_t port);
/* A socket bound to addr (TCP: with SO_REUSEADDR, so that a port whose connection is closing
 * can listen again; listening when listen is set). *fd is owned by the caller. 0 or -errno. */
int agw_socket_bind(const struct sockaddr *addr, socklen_t len, int socktype, bool listen, int *fd);

/* model.c */

enum agw_tcp_role { AGW_ROLE_NONE, AGW_ROLE_PASSIVE, AGW_ROLE_ACTIVE };

/* What the ALG configured for one termination, as the gateway understood it. */
struct agw_term {
    struct agw_context *ctx;
    struct agw_realm *realm;
    unsigned realm_index;
    uint32_t number;
    uint64_t key; /* unique for the process's life: names it to the workers */
    char id[AGW_TERM_ID_MAX];
    size_t id_len;
    enum sdp_proto proto;
    char proto_text[32];
    bool secure;   /* TLS or DTLS on this leg */
    bool datagram; /* UDP transport */
    enum agw_tcp_role tcp_role;
    uint16_t port; /* the gateway's port, 9 when TCP-active, 0 before Local */
    int fd;        /* reserved socket until handed to the worker, else -1 */
    bool port_reserved;
    uint16_t stream_id;
    enum h248_stream_mode mode;
    char *local_sdp; /* the gateway's Local as sent to the ALG (malloc) */
    size_t local_len;
    char *remote_sdp; /* the Remote as received (malloc) */
    size_t remote_len;
    struct agw_tls_fingerprint *fingerprints; /* n_fingerprints of them (malloc) */
    unsigned n_fingerprints;
    bool has_remote_addr; /* the far end's c= address and m= port, once a Remote gave them */
    union agw_sockaddr remote_addr;
    struct agw_tls_identity *identity; /* bound at Add: the fingerprint returned must stay true */
    bool has_events;
    uint32_t events_request_id;
    char (*events)[32]; /* n_events names (malloc) */
    unsigned n_events;
    bool establish_tls_signal;
    uint32_t inactivity_ms; /* adid/ipstop requested: report this long without bytes (0: no) */
    uint32_t connection_generation; /* bumped by a=connection:new: drop the current one */
    struct agw_dc_params *dc;       /* made by the first data-channel SDP (malloc), else NULL */
    uint64_t added_ms;
    /* Figures a worker wrote at release (or for an Audit): wire octets, and for data-channel
     * legs the channel messages relayed each way and the channels opened. */
    uint64_t octets_sent, octets_received;
    uint64_t messages_sent, messages_received;
    uint32_t channels;
    /* control.c: the leg's last report (enum agw_leg_state, enum agw_leg_cause when failed), for
     * agw-ctl show contexts and the handshake counters. */
    uint8_t leg_state, leg_cause;
};

#define AGW_MAX_TERMS_PER_CONTEXT 16
#define AGW_DATACHANNEL_WORKER                                                                     \
    0 /* the worker that runs usrsctp: data-channel contexts live there */

struct agw_context {
    uint32_t id;
    unsigned worker;
    bool has_priority;
    uint16_t priority;
    bool emergency;
    struct agw_term *terms[AGW_MAX_TERMS_PER_CONTEXT];
    unsigned n_terms;
};

struct agw_model {
    struct agw_realm *realms;
    unsigned n_realms, default_realm;
    unsigned max_contexts, max_terms_per_context;
    unsigned workers;
    struct agw_tls_ctx *tls_ctx;   /* borrowed: the TLS settings of every secure leg */
    uint32_t handshake_timeout_ms; /* for the legs' configuration */
    uint32_t ice_consent_timeout_ms;
    uint32_t buffer_bytes;
    unsigned n_contexts, n_terms;
    uint32_t next_context_id;
    uint64_t next_term_key;
    unsigned next_worker;
    /* Open addressing: contexts by id, terminations by (realm, number). */
    struct agw_context **ctx_slots;
    size_t ctx_cap, ctx_tombs;
    struct agw_term **term_slots;
    size_t term_cap, term_tombs;
};

int agw_model_init(struct agw_model *m, struct agw_realm *realms, unsigned n_realms,
                   unsigned default_realm, unsigned max_contexts, unsigned max_terms_per_context,
                   unsigned workers);
void agw_model_fini(struct agw_model *m);
struct agw_context *agw_model_context(struct agw_model *m, uint32_t id);
/* A new, empty context pinned to a worker; NULL when max_contexts is reached or no id is free. */
struct agw_context *agw_model_context_new(struct agw_model *m);
void agw_model_context_delete(struct agw_model *m, struct agw_context *c);
/* The termination named id (exact, no wildcard), or NULL. */
struct agw_term *agw_model_term(struct agw_model *m, const char *id, size_t len);
/* A new termination in realm, added to c; NULL (and *code set: 432, 434, 510) on failure. */
struct agw_term *agw_model_term_new(struct agw_model *m, struct agw_context *c, unsigned realm,
                                    unsigned *code);
struct agw_leg_figures;
/* Copies a worker's figures into t (the worker owns t's figure fields until its op is done). */
void agw_term_set_figures(struct agw_term *t, const struct agw_leg_figures *f);
/* Unlinks t from its context and the index; the caller frees it with agw_model_term_free. */
void agw_model_term_remove(struct agw_model *m, struct agw_term *t);
void agw_model_term_free(struct agw_term *t);
/* Moves t into context to. 434 when full. */
int agw_model_term_move(struct agw_model *m, struct agw_term *t, struct agw_context *to);
int agw_model_realm_index(const struct agw_model *m, const char *name, size_t len);
/* Does the termination id (pattern with '*' as the last path element, or "*") match t? */
bool agw_term_matches(const struct agw_term *t, const char *pattern, size_t len);

/* relay.c: a worker's data plane (connections, TLS, byte relay between the legs of a context) */

/* What a worker needs to run one termination's leg: a snapshot made by the control loop each
 * time the termination or its context changes. Owned by the worker once submitted. */
struct agw_leg_conf {
    uint64_t key, peer_key; /* peer: the context's other leg of the same stream (0: none) */
    /* RFC 8873 interworking: the MSRP channel of a data-channel leg and a TCP/MSRP leg name each
     * other here; the TCP leg then relays to that channel instead of a peer leg. */
    uint64_t bridge_key;
    uint32_t context_id;
    char term_id[AGW_TERM_ID_MAX];
    bool secure, datagram;
    bool tls_client; /* TCP-active side, or the "establish TLS" signal */
    bool has_remote;
    bool fingerprints_known;
    enum agw_tcp_role tcp_role;
    enum h248_stream_mode mode;
    union agw_sockaddr remote;         /* the far end, from Remote c= and m= */
    union agw_sockaddr local;          /* the realm address (port 0) to connect from */
    struct agw_tls_identity *identity; /* one reference, dropped with the conf */
    struct agw_tls_ctx *tls_ctx;       /* one reference, dropped with the conf */
    uint32_t handshake_timeout_ms;
    uint32_t ice_consent_timeout_ms; /* ICE-lite: no check for this long stops sending */
    uint32_t buffer_bytes;           /* per direction, bytes queued toward this leg's socket */
    uint32_t inactivity_ms;          /* report a connection without bytes either way (0: never) */
    uint32_t connection_generation;  /* a new value drops the current connection */
    struct agw_dc_params *dc; /* data-channel legs only (owned, defaults filled in), else NULL */
    unsigned n_fingerprints;
    struct agw_tls_fingerprint fingerprints[]; /* n_fingerprints of them */
};

/* A zeroed conf with room for n fingerprints (n_fingerprints set), or NULL; the caller owns it
 * and frees it with agw_leg_conf_free (which also frees conf->dc). */
struct agw_leg_conf *agw_leg_conf_new(unsigned n_fingerprints);
void agw_leg_conf_free(struct agw_leg_conf *conf);

/* Something a leg reports to the control loop. */
struct agw_leg_event {
    enum {
        AGW_LEG_FAILED,
        AGW_LEG_UP,
        AGW_LEG_REFUSED, /* a connection turned away */
        AGW_LEG_IDLE,    /* no byte either way for the requested inactivity time */
    } kind;
    uint64_t key;
    uint32_t context_id;
    char term_id[AGW_TERM_ID_MAX];
    char cause[96];
};

struct agw_relay;
typedef void (*agw_leg_event_cb)(void *arg, const struct agw_leg_event *ev);

/* Hands cb an event of kind for the leg key (conf, borrowed, names it; may be NULL) with the
 * cause formatted from fmt. */
void agw_leg_event_vpost(agw_leg_event_cb cb, void *arg, uint64_t key,
                         const struct agw_leg_conf *conf, int kind, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));

int agw_relay_new(struct agw_relay **out, uv_loop_t *loop, agw_leg_event_cb cb, void *arg);
/* Takes a reserved socket (listening TCP, or bound UDP) for key. */
void agw_relay_adopt(struct agw_relay *r, uint64_t key, int fd, bool datagram, bool listening);
/* Installs a new configuration for its leg (takes ownership of conf). */
void agw_relay_configure(struct agw_relay *r, struct agw_leg_conf *conf);
/* Closes the leg at once (close_notify first when TLS is up) and gives its wire figures. */
/* A leg's figures: wire octets each way; for data-channel legs also channel messages and the
 * channels opened. */
struct agw_leg_figures {
    uint64_t octets_sent, octets_received;
    uint64_t messages_sent, messages_received;
    uint32_t channels;
};
void agw_relay_release(struct agw_relay *r, uint64_t key, struct agw_leg_figures *out);
/* Hands the leg's listening socket back (a dup), closing the rest; -1 when there is none. */
int agw_relay_detach(struct agw_relay *r, uint64_t key);
/* The leg's wire figures so far (0 when unknown). */
void agw_relay_figures(struct agw_relay *r, uint64_t key, struct agw_leg_figures *out);
/* Closes every leg; the relay is freed once the loop ran the close callbacks. */
void agw_relay_close(struct agw_relay *r);
/* Bytes of the MSRP data channel toward the TCP leg key (borrowed); how many it took. */
size_t agw_relay_bridge_write(struct agw_relay *r, uint64_t key, const void *data, size_t len);
/* The data-channel side of the TCP leg key can take bytes again, or its channel opened. */
void agw_relay_bridge_resume(struct agw_relay *r, uint64_t key);

/* datachannel.c: a worker's data-channel legs (UDP, DTLS, SCTP, DCEP), reached through relay.c.
 * Only the worker AGW_DATACHANNEL_WORKER makes them: usrsctp is one instance per process. */

struct agw_dc;

int agw_dc_new(struct agw_dc **out, uv_loop_t *loop, struct agw_relay *relay, agw_leg_event_cb cb,
               void *arg);
/* Takes a bound UDP socket for key (the leg is made if it does not exist yet). */
void agw_dc_adopt(struct agw_dc *d, uint64_t key, int fd);
/* Installs a configuration (takes ownership of conf). */
void agw_dc_configure(struct agw_dc *d, struct agw_leg_conf *conf);
/* Whether key names a data-channel leg of d. */
bool agw_dc_has(struct agw_dc *d, uint64_t key);
/* Closes the leg (ABORT and close_notify first) and gives its wire figures. */
void agw_dc_release(struct agw_dc *d, uint64_t key, struct agw_leg_figures *out);
/* Hands the leg's UDP socket back (a dup), closing the rest; -1 when there is none. */
int agw_dc_detach(struct agw_dc *d, uint64_t key);
void agw_dc_figures(struct agw_dc *d, uint64_t key, struct agw_leg_figures *out);
/* Closes every leg; d is freed once the loop ran the close callbacks. */
void agw_dc_close(struct agw_dc *d);
/* RFC 8873 bridge, for relay.c: MSRP bytes from the TCP leg toward leg key's MSRP channel
 * (framed, re-chunked to the far end's a=max-message-size); how many were taken. */
size_t agw_dc_bridge_input(struct agw_dc *d, uint64_t key, const void *data, size_t len);
/* Whether leg key's MSRP channel is open (the TCP leg may connect). */
bool agw_dc_bridge_up(struct agw_dc *d, uint64_t key);
/* The TCP leg took bytes: messages held for it may go on. */
void agw_dc_bridge_resume(struct agw_dc *d, uint64_t key);

/* worker.c */

enum agw_op_kind {
    AGW_OP_ADOPT,     /* take ownership of a reserved socket */
    AGW_OP_CONFIGURE, /* a new agw_leg_conf for a leg */
    AGW_OP_RELEASE,   /* close its sockets, report its figures */
    AGW_OP_DETACH,    /* hand its socket back (Move to another worker) */
    AGW_OP_BARRIER,   /* everything before it is done: report back with the cookie */
    AGW_OP_FIGURES,   /* write the leg's figures so far into term (an Audit) */
};

struct agw_op {
    enum agw_op_kind kind;
    uint64_t key;
    int fd;
    bool datagram, listening;
    struct agw_term *term;     /* RELEASE/DETACH/FIGURES: the worker writes figures/fd here */
    struct agw_leg_conf *conf; /* CONFIGURE: ownership passes to the worker */
    uint64_t cookie;           /* BARRIER */
};

struct agw_workers;
typedef void (*agw_barrier_cb)(void *user, uint64_t cookie);

/* Starts n worker threads, each with its own loop; barrier reports and leg events arrive on
 * control_loop. */
int agw_workers_start(struct agw_workers **out, unsigned n, uv_loop_t *control_loop,
                      agw_barrier_cb on_barrier, agw_leg_event_cb on_leg_event, void *user,
                      unsigned debug_delay_ms);
/* Queues ops for worker w (copied); they run in order. */
int agw_workers_submit(struct agw_workers *ws, unsigned w, const struct agw_op *ops, size_t n);
/* Whether every worker loop turned within the last max_age_ms (for the watchdog). */
bool agw_workers_alive(struct agw_workers *ws, uint64_t max_age_ms);
/* Stops the threads (closing every socket they own) and frees ws. */
void agw_workers_stop(struct agw_workers *ws);

/* profile.c: the Iq SDP profile (DESIGN.md §5) and the packages we support */

/* The event a TLS leg's failure is reported with (name unconfirmed: see profile.c). */
#define AGW_TLS_FAILURE_EVENT "tlsc/fail"
/* The media-inactivity event (H.248.40 application data inactivity detection, ip flow stop). */
#define AGW_INACTIVITY_EVENT "adid/ipstop"

/* The package items the gateway knows: name "pkg/item" -> kind. */
enum agw_item_kind { AGW_ITEM_EVENT, AGW_ITEM_SIGNAL, AGW_ITEM_PROPERTY, AGW_ITEM_STATISTIC };
/* 0 if supported; else the H.248 error code (440 unknown package, 445/451/452/453 item). */
unsigned agw_profile_check_item(enum agw_item_kind kind, const char *name, size_t len);
/* The Packages descriptor list of the gateway (static). */
const struct agw_package_info {
    const char *name;
    unsigned version;
} * agw_profile_packages(size_t *n);

/* The outcome of a command: 0 or an H.248 code with a text. */
struct agw_status {
    unsigned code;
    char text[120];
};
int agw_status_set(struct agw_status *st, unsigned code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Applies a Local descriptor to t: classifies the protocol (515), reserves the port when the
 * gateway listens, fills every CHOOSE and the gateway's fingerprint; t->local_sdp gets the text
 * to return. Remote is applied first when the command carries both. */
int agw_profile_apply_local(struct agw_model *m, struct agw_term *t, const char *text, size_t len,
                            struct agw_status *st);
/* Applies a Remote descriptor: protocol, address, a=setup, fingerprints (449 on a bad one). */
int agw_profile_apply_remote(struct agw_term *t, const char *text, size_t len,
                             struct agw_status *st);

/* command.c */

struct agw_exec_op {
    unsigned worker;
    struct agw_op op;
};

/* What executing one transaction leaves behind for the control loop: the reply under
 * construction and the work the data plane must finish before it can be sent. */
struct agw_exec {
    struct h248_message *reply;   /* owned; holds the reply transaction */
    struct h248_transaction *txn; /* in reply */
    struct agw_exec_op *ops;      /* to submit, in order, grouped by worker when submitted */
    size_t n_ops, cap_ops;
    uint64_t workers_touched; /* bit per worker (first 64) that needs a barrier */
    struct agw_released {
        struct agw_term *term;
        struct h248_statistics *stats; /* NULL when the reply carries none */
        unsigned adopt_worker;         /* Move across workers: adopt here once detached */
        bool moved;
        bool audited; /* still alive: only its statistics wait for the worker's figures */
    } * released;
    size_t n_released, cap_released;
};

/* What the root termination was asked for (H.248.14 inactivity timer). */
struct agw_root_state {
    bool ito_armed;
    uint32_t ito_request_id;
    uint32_t ito_mit_ms;
};

/* Executes one transaction request against the model, building the reply transaction in a new
 * exec->reply. 0, or -ENOMEM (then nothing was changed and exec is empty). */
int agw_exec_transaction(struct agw_model *m, struct agw_root_state *root,
                         const struct h248_message *req_msg, const struct h248_transaction *req,
                         struct agw_exec *exec, uint64_t now_ms);
/* Once the workers ran exec's ops: fills the figures, gives ports back, frees what was
 * released, and lists the adoptions still to submit (moved terminations). */
void agw_exec_finish(struct agw_model *m, struct agw_exec *exec, uint64_t now_ms);
/* Frees exec's memory (not the reply if it was taken: set exec->reply NULL to keep it). */
void agw_exec_fini(struct agw_exec *exec);

/* control.c */

struct agw_control;

/* Command labels of the transaction counters besides enum h248_command_kind. */
enum {
    AGW_STATS_CMD_NONE = H248_CMD_SERVICE_CHANGE + 1, /* actions without a command */
    AGW_STATS_CMD_UNPARSED,                           /* the message did not parse */
    AGW_STATS_COMMANDS
};
#define AGW_STATS_CODES 600 /* H.248 error codes counted one by one: 0 (success) .. 599 */

/* Why a leg failed, from the cause its worker reported. */
enum agw_leg_cause {
    AGW_CAUSE_FINGERPRINT_MISMATCH,
    AGW_CAUSE_NO_PEER_CERTIFICATE,
    AGW_CAUSE_NO_SUPPORTED_FINGERPRINT,
    AGW_CAUSE_PEER_ALERT,
    AGW_CAUSE_PROTOCOL_ERROR,
    AGW_CAUSE_INTERNAL_ERROR,
    AGW_CAUSE_TIMEOUT,
    AGW_CAUSE_CONNECTION_RESET,
    AGW_CAUSE_CONNECT_FAILED,
    AGW_CAUSE_OTHER,
    AGW_LEG_CAUSES
};

enum agw_leg_state { AGW_LEG_STATE_NONE, AGW_LEG_STATE_UP, AGW_LEG_STATE_FAILED };

struct agw_control_stats {
    uint64_t datagrams_received, datagrams_sent, send_errors;
    uint64_t parse_errors, unknown_peer_drops, before_registration;
    uint64_t transactions, duplicates, pendings_sent, retransmissions, unknown_replies;
    uint64_t mgc_failovers, notifies_sent;
    uint64_t legs_up, legs_failed, fingerprint_mismatches, handshake_timeouts;
    uint64_t connections_refused, inactivity_reports;
    /* Breakdowns for the metrics (agw/metrics.c). Requests answered, by their first command
     * (enum h248_command_kind, or AGW_STATS_CMD_*) and the reply's first error code (0: none;
     * codes above AGW_STATS_CODES - 1 count there). Duplicates answered from the cache: not. */
    uint64_t h248_transactions[AGW_STATS_COMMANDS][AGW_STATS_CODES];
    uint64_t h248_commands[AGW_STATS_COMMANDS]; /* every command of the executed requests */
    uint64_t leg_failures[AGW_LEG_CAUSES];      /* every failed leg, by cause */
    uint64_t handshakes_failed[AGW_LEG_CAUSES]; /* those that failed before they were up */
    /* Wire bytes of released terminations, by realm index: [0] received, [1] sent. */
    uint64_t relayed_bytes[AGW_CONFIG_MAX_REALMS][2];
    uint64_t relayed_messages[AGW_CONFIG_MAX_REALMS][2]; /* data-channel messages */
    uint64_t drain_refusals; /* requests for a new context answered 510 while draining */
};

/* What the control loop tells of itself (agw-ctl show registration, metrics). */
struct agw_control_state {
    const char *association; /* "registering", "registered", "shutting down" or "down" */
    bool registered, draining;
    struct sockaddr_storage mgc; /* registered with, or being tried */
    unsigned version;            /* negotiated H.248 version */
    uint64_t registered_ms;      /* uv_now when the registration completed (0: not registered) */
    unsigned transactions_in_progress; /* executed, waiting for the workers */
};

/* One ObservedEvents parameter: name=value (quoted when the value is free text). */
struct agw_notify_param {
    const char *name, *value;
    bool quoted;
};

typedef void (*agw_control_stopped_cb)(void);

/* Binds the Iq socket, starts the workers and registers with the first MGC. cfg and model are
 * borrowed for the control's life. debug_worker_delay_ms > 0 slows every worker batch (tests). */
int agw_control_start(struct agw_control **out, uv_loop_t *loop, const struct agw_config *cfg,
                      struct agw_model *model, unsigned debug_worker_delay_ms);
/* The reloadable keys of cfg (borrowed at start) changed: transaction timers apply to new
 * transactions; the MGC list replaces the old one, and when the MGC in use left it the first
 * of the new list takes over (ServiceChange as after a failover, every context kept). */
void agw_control_reload(struct agw_control *c);
/* ServiceChange (Forced: the sessions go now; Graceful: none is left, after a drain), then
 * closes everything; done runs once all is closed (c is freed). */
void agw_control_shutdown(struct agw_control *c, bool forced, agw_control_stopped_cb done);
bool agw_control_registered(const struct agw_control *c);
/* Sends Notify=term_id{ObservedEvents=request_id{event{params}}} in context_id (0: the null
 * context), retransmitted until answered; the MGC is declared lost if it never is.
 * -ENOTCONN before registration. Strings are borrowed. */
int agw_control_notify(struct agw_control *c, uint32_t context_id, const char *term_id,
                       uint32_t request_id, const char *event,
                       const struct agw_notify_param *params, size_t n_params);
const struct agw_control_stats *agw_control_stats(const struct agw_control *c);
bool agw_control_workers_alive(const struct agw_control *c, uint64_t max_age_ms);
void agw_control_get_state(const struct agw_control *c, struct agw_control_state *out);
/* The metric label of a leg failure cause ("fingerprint_mismatch", "timeout", ...). */
const char *agw_control_cause_name(enum agw_leg_cause cause);

typedef void (*agw_control_drained_cb)(void *arg, unsigned contexts_left);
/* Takes no new context from now on (a request with an action on the CHOOSE context is answered
 * 510), then calls done once no context is left or after timeout_ms, whichever is first; done
 * does the rest (agw_control_shutdown). -EALREADY if a drain runs, -ESHUTDOWN when stopping. */
int agw_control_drain(struct agw_control *c, uint32_t timeout_ms, agw_control_drained_cb done,
                      void *arg);
/* Sends each worker a barrier every period_ms and times its way back (worker loop lag). */
void agw_control_probe_workers(struct agw_control *c, unsigned period_ms);
/* Worker w's last probe round trip in seconds, or the age of the probe still out when that is
 * longer; negative before the first probe came back. */
double agw_control_worker_lag(const struct agw_control *c, unsigned w);

/* metrics.c: the Prometheus text exposition of the control loop's counters and the model */

/* Writes the exposition (text format 0.0.4) into a malloc'd *out (owned by the caller). c and m
 * are read on the control loop. 0 or -ENOMEM. */
int agw_metrics_render(const struct agw_control *c, const struct agw_model *m, char **out,
                       size_t *len);

/* metrics_http.c: GET /metrics over HTTP (libmicrohttpd polled from the control loop) */

struct agw_metrics_http;
/* Produces the body of one scrape into a malloc'd *out (the server frees it). 0 or -errno. */
typedef int (*agw_metrics_render_cb)(void *arg, char **out, size_t *len);

/* Listens on addr (TCP) and answers GET /metrics with render's text, 404 on any other path.
 * render runs on loop; arg is borrowed until agw_metrics_http_stop. */
int agw_metrics_http_start(struct agw_metrics_http **out, uv_loop_t *loop,
                           const struct sockaddr_storage *addr, agw_metrics_render_cb render,
                           void *arg);
/* Closes the listener and every connection; h is freed once the loop ran the close callbacks. */
void agw_metrics_http_stop(struct agw_metrics_http *h);

/* opsock.c: the operator's control socket (agw-ctl show, drain): a Unix stream socket */

struct agw_opsock;
/* Starts a drain of seconds (0: the default); writes the line to answer into msg. 0 or -errno. */
typedef int (*agw_opsock_drain_cb)(void *arg, unsigned seconds, char *msg, size_t cap);

/* The socket path for the control_socket setting: "auto" resolved (ims-agw.conf(5)), "" none
 * (buf gets ""). 0, or -ENAMETOOLONG. */
int agw_opsock_path(const char *setting, char *buf, size_t cap);
/* Listens on path, mode 0600; a client whose uid is neither ours nor root's is turned away.
 * A stale socket of ours is replaced; a live one or any other file is left alone (-EADDRINUSE,
 * -EEXIST). control and model are borrowed until agw_opsock_close. */
int agw_opsock_start(struct agw_opsock **out, uv_loop_t *loop, const char *path,
                     const struct agw_control *control, const struct agw_model *model,
                     agw_opsock_drain_cb drain, void *arg);
/* Writes line to every client that asked for a drain (they stay connected until the close). */
void agw_opsock_broadcast(struct agw_opsock *o, const char *line);
/* Closes the listener and every client and removes the socket file; o is freed once the loop
 * ran the close callbacks. */
void agw_opsock_close(struct agw_opsock *o);

/* systemd.c: sd_notify; every call does nothing unless NOTIFY_SOCKET is set */

/* True if every loop besides the caller's turned within max_age_ms (half the watchdog). */
typedef bool (*agw_systemd_alive_cb)(void *arg, uint64_t max_age_ms);
/* Writes the one-line status (registration, session counts) into buf. */
typedef void (*agw_systemd_status_cb)(void *arg, char *buf, size_t cap);

/* Starts timers on loop: STATUS= each second when the text changed, WATCHDOG=1 every half of
 * WATCHDOG_USEC while alive() holds. Callbacks and arg are borrowed until agw_systemd_stopping. */
int agw_systemd_start(uv_loop_t *loop, agw_systemd_alive_cb alive, agw_systemd_status_cb status,
                      void *arg);
/* READY=1 with the status: at start once Iq is bound and the workers run, and after a reload. */
void agw_systemd_ready(void);
/* RELOADING=1: a reload begins; agw_systemd_ready says it is done. */
void agw_systemd_reloading(void);
/* STOPPING=1, and closes the timers (the callbacks are not called any more). */
void agw_systemd_stopping(void);

#endif
