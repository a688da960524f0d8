/* H.248.1 Annex D.1 transaction layer over UDP, sans-I/O: duplicate detection, reply cache,
 * Pending, retransmission. Time is the caller's monotonic clock in milliseconds. */
#ifndef IMS_AGW_H248_TRANSACTION_H
#define IMS_AGW_H248_TRANSACTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct h248_mid;

/* ---- Incoming requests (the MGC asks, the gateway answers) ---- */

struct h248_txn_in_config {
    uint32_t max_entries;    /* executing + remembered transactions (hash table, heaps) */
    size_t max_reply_bytes;  /* total size of the stored reply copies */
    uint32_t long_timer_ms;  /* D.1.1 LONG-TIMER: replies and ids kept this long */
    uint32_t provisional_ms; /* root/MGProvisionalResponseTimerValue (E.2); 0 = no timed Pending */
    uint32_t pending_limit;  /* root/MGOriginatedPendingLimit (8.2.3); 0 = no limit */
};

/* Used when a NULL config is passed: 4096 entries, 4 MiB, 30 s, 500 ms, no pending limit. */
extern const struct h248_txn_in_config h248_txn_in_default_config;

enum h248_txn_in_verdict {
    H248_TXN_NEW,           /* first sight: execute it, then h248_txn_in_complete() */
    H248_TXN_EXECUTING,     /* repetition of a running request: send PN=tid{} (D.1.4) */
    H248_TXN_REPLIED,       /* repetition after the reply: resend the stored bytes (D.1.1) */
    H248_TXN_DISCARD,       /* acknowledged, or its reply evicted: drop silently (D.1.2.2) */
    H248_TXN_PENDING_LIMIT, /* too many Pendings: stop it, reply error 506 (8.2.3) */
};

enum h248_txn_in_event_kind {
    H248_TXN_IN_SEND_PENDING,  /* send PN=tid{} to peer */
    H248_TXN_IN_PENDING_LIMIT, /* stop the transaction and reply error 506 */
};

struct h248_txn_in_event {
    enum h248_txn_in_event_kind kind;
    uint64_t peer;
    uint32_t tid;
};

struct h248_txn_in_stats {
    uint64_t requests;           /* NEW verdicts */
    uint64_t duplicates_replied; /* answered from the reply cache */
    uint64_t duplicates_running; /* repetitions of executing requests */
    uint64_t duplicates_dropped; /* DISCARD verdicts */
    uint64_t pendings;           /* Pendings the caller was told to send */
    uint64_t pending_limits;     /* transactions stopped by the pending limit */
    uint64_t acks;               /* replies released by TransactionResponseAck */
    uint64_t acks_invalid;       /* ack ranges with first > last (ignored) */
    uint64_t evictions;          /* replies dropped early for the entry or byte budget */
    uint64_t expired;            /* entries freed after LONG-TIMER */
    uint64_t rejected;           /* begin() refused: every entry executing */
    uint64_t entries;            /* gauge: entries in use */
    uint64_t reply_bytes;        /* gauge: bytes of stored replies */
};

struct h248_txn_in;

/* Creates a table; cfg is copied (NULL = defaults). *out is freed with h248_txn_in_free. */
int h248_txn_in_new(const struct h248_txn_in_config *cfg, struct h248_txn_in **out);
void h248_txn_in_free(struct h248_txn_in *in);

/* Classifies a request. For REPLIED, *reply and *reply_len give the stored copy, owned by the
 * table and valid until the next call that changes it. -ENOBUFS when every entry executes. */
int h248_txn_in_begin(struct h248_txn_in *in, uint64_t peer, uint32_t tid, uint64_t now,
                      enum h248_txn_in_verdict *verdict, const void **reply, size_t *reply_len);

/* Whether the reply being built must carry ImmAckRequired: a Pending was sent (D.1.4). */
int h248_txn_in_needs_imm_ack(const struct h248_txn_in *in, uint64_t peer, uint32_t tid,
                              bool *imm_ack);

/* Stores a copy of the encoded reply (borrowed) for LONG-TIMER. -ENOENT unknown, -EALREADY done.
 * On -ENOMEM the transaction still counts as answered; only its copy is lost. */
int h248_txn_in_complete(struct h248_txn_in *in, uint64_t peer, uint32_t tid, const void *reply,
                         size_t len, uint64_t now);

/* Forgets an executing transaction that will never be answered. -ENOENT if not executing. */
int h248_txn_in_abort(struct h248_txn_in *in, uint64_t peer, uint32_t tid);

/* TransactionResponseAck first..last from peer: stored replies in range are freed, their ids
 * kept until LONG-TIMER (D.1.1). first > last is ignored and counted: -EINVAL. */
int h248_txn_in_ack(struct h248_txn_in *in, uint64_t peer, uint32_t first, uint32_t last);

/* One due provisional-timer event per call: 0 with *ev filled, -EAGAIN when none is due. */
int h248_txn_in_poll(struct h248_txn_in *in, uint64_t now, struct h248_txn_in_event *ev);

/* Frees the entries whose LONG-TIMER ran out; *freed (may be NULL) gets their number. */
int h248_txn_in_expire(struct h248_txn_in *in, uint64_t now, size_t *freed);

/* Earliest time poll() or expire() has work; UINT64_MAX when none. */
int h248_txn_in_next_deadline(const struct h248_txn_in *in, uint64_t *deadline);

/* The MGC wrote root/MGProvisionalResponseTimerValue or MGOriginatedPendingLimit; used from
 * the next timer of each transaction. */
int h248_txn_in_set_root(struct h248_txn_in *in, uint32_t provisional_ms, uint32_t pending_limit);

int h248_txn_in_get_stats(const struct h248_txn_in *in, struct h248_txn_in_stats *stats);

/* ---- Outgoing requests (the gateway asks: ServiceChange, Notify) ---- */

struct h248_txn_out_config {
    uint32_t max_outstanding;     /* requests awaiting their reply */
    uint32_t first_tid;           /* first id handed out (0 = 1); randomise it per restart */
    uint32_t initial_rto_ms;      /* AAD before any measurement (D.1.5 example: 200 ms) */
    uint32_t min_rto_ms;          /* floor of every retransmission timer (>= 1) */
    uint32_t max_rto_ms;          /* ceiling of every retransmission timer (D.1.3: 4 s) */
    uint32_t adev_factor;         /* D.1.3 N: timer = AAD + N * ADEV */
    uint32_t max_retransmissions; /* D.1.5 disconnection threshold (typically 7 to 11) */
    uint32_t max_total_ms;        /* D.1.5 T-MAX, since the first sending or the last Pending */
    uint32_t pending_interval_ms; /* repetition timer after a Pending (D.1.4) */
    uint32_t pending_timeout_ms;  /* give up this long after the last Pending */
    uint32_t pending_limit;       /* root/MGCOriginatedPendingLimit (8.2.3); 0 = no limit */
    bool jitter;                  /* D.1.3 random timer in [AAD/2, AAD] after a retransmission */
    uint64_t seed;                /* jitter generator seed (no I/O here: the caller draws it) */
};

/* Used when a NULL config is passed: 1024 outstanding, 200/100/4000 ms, N = 4, 8 retransmissions,
 * T-MAX 29 s, Pending: repeat every 4 s, give up after 30 s, no limit, jitter on. */
extern const struct h248_txn_out_config h248_txn_out_default_config;

enum h248_txn_out_event_kind {
    H248_TXN_OUT_RETRANSMIT,    /* send bytes again */
    H248_TXN_OUT_GIVE_UP,       /* no answer: the transaction is gone, declare the MGC lost */
    H248_TXN_OUT_PENDING_LIMIT, /* MGC sent too many Pendings: transaction in error (8.2.3) */
};

struct h248_txn_out_event {
    enum h248_txn_out_event_kind kind;
    uint32_t tid;
    const void *bytes; /* RETRANSMIT only (else NULL): owned by the table, valid until the
                        * next call that changes it */
    size_t len;
};

/* The D.1.3 estimate: AAD, ADEV and the timer a new transaction would get now. */
struct h248_txn_out_rtt {
    bool measured; /* false: AAD is still initial_rto_ms */
    uint32_t aad_ms;
    uint32_t adev_ms;
    uint32_t rto_ms;
    unsigned backoff; /* doublings kept since the last valid sample (Karn) */
};

struct h248_txn_out_stats {
    uint64_t requests;         /* send() calls accepted */
    uint64_t retransmissions;  /* RETRANSMIT events */
    uint64_t give_ups;         /* GIVE_UP events */
    uint64_t pending_limits;   /* PENDING_LIMIT events */
    uint64_t replies;          /* replies matched to an outstanding request */
    uint64_t unknown_replies;  /* replies for no outstanding request (ignored) */
    uint64_t pendings;         /* Pendings matched to an outstanding request */
    uint64_t unknown_pendings; /* Pendings for no outstanding request (ignored, D.1.4) */
    uint64_t rtt_samples;      /* replies that updated the estimate */
    uint64_t outstanding;      /* gauge */
};

struct h248_txn_out;

/* Creates a table; cfg is copied (NULL = defaults). *out is freed with h248_txn_out_free. */
int h248_txn_out_new(const struct h248_txn_out_config *cfg, struct h248_txn_out **out);
void h248_txn_out_free(struct h248_txn_out *out);

/* Next transaction id: monotonic, never 0, wraps, skips ids still outstanding. */
int h248_txn_out_next_tid(struct h248_txn_out *out, uint32_t *tid);

/* The caller has just sent bytes (borrowed, copied) for tid: schedules retransmission.
 * -EEXIST tid outstanding, -ENOBUFS table full. */
int h248_txn_out_send(struct h248_txn_out *out, uint32_t tid, const void *bytes, size_t len,
                      uint64_t now);

/* A TransactionReply for tid arrived. *ack_now (may be NULL): send K{tid} at once (D.1.4).
 * -ENOENT (counted) when tid is not outstanding. */
int h248_txn_out_reply_received(struct h248_txn_out *out, uint32_t tid, bool imm_ack_required,
                                uint64_t now, bool *ack_now);

/* A TransactionPending for tid arrived: switch to the pending timer. -ENOENT (counted) if
 * tid is not outstanding. */
int h248_txn_out_pending_received(struct h248_txn_out *out, uint32_t tid, uint64_t now);

/* Forgets one outstanding request (-ENOENT if none), or all of them. */
int h248_txn_out_cancel(struct h248_txn_out *out, uint32_t tid);
int h248_txn_out_cancel_all(struct h248_txn_out *out);

/* One due event per call: 0 with *ev filled, -EAGAIN when none is due. */
int h248_txn_out_poll(struct h248_txn_out *out, uint64_t now, struct h248_txn_out_event *ev);

/* Earliest time poll() has work; UINT64_MAX when none. */
int h248_txn_out_next_deadline(const struct h248_txn_out *out, uint64_t *deadline);

int h248_txn_out_get_rtt(const struct h248_txn_out *out, struct h248_txn_out_rtt *rtt);

/* Back to initial_rto_ms, e.g. when a new MGC takes over. */
int h248_txn_out_reset_rtt(struct h248_txn_out *out);

/* The MGC wrote root/MGCProvisionalResponseTimerValue (used as the pending interval) or
 * MGCOriginatedPendingLimit. */
int h248_txn_out_set_root(struct h248_txn_out *out, uint32_t pending_interval_ms,
                          uint32_t pending_limit);

int h248_txn_out_get_stats(const struct h248_txn_out *out, struct h248_txn_out_stats *stats);

/* ---- Small messages of the layer, compact text encoding ---- */

/* "!/version mid PN=tid{}" into buf. -ENOSPC (with *len_out = size needed) if cap is short. */
int h248_txn_encode_pending(unsigned version, const struct h248_mid *mid, uint32_t tid, char *buf,
                            size_t cap, size_t *len_out);

/* "!/version mid K{first-last}" (K{first} when equal) into buf; first > last: -EINVAL. */
int h248_txn_encode_ack(unsigned version, const struct h248_mid *mid, uint32_t first, uint32_t last,
                        char *buf, size_t cap, size_t *len_out);

#endif
