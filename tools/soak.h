/* agw-soak: what its threads share: the sessions, the queues between them, the counters. */
#ifndef IMS_AGW_TOOLS_SOAK_H
#define IMS_AGW_TOOLS_SOAK_H

#include "tls/cert.h"
#include "tls/fingerprint.h"
#include "tools/iq_client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SOAK_ID_MAX 48
/* Each session's upstream starts with "AGWS", its slot and its generation (big endian): the
 * core sink, which accepts every gateway connection on one port, learns from it whose it is. */
#define SOAK_HEADER_LEN 12

enum soak_kind { SOAK_TLS, SOAK_PLAIN };

/* Faults injected on purpose; each has an expected outcome (agw-soak(1)). */
enum soak_fault {
    SOAK_FAULT_NONE,
    SOAK_FAULT_WRONG_CERT, /* the UE presents another certificate: refused, Notify */
    SOAK_FAULT_UE_RESET,   /* the UE resets mid-transfer: the core sees the end */
    SOAK_FAULT_ABRUPT,     /* Subtract mid-transfer: both peers see the end */
    SOAK_FAULTS
};

/* One slot: a session from its set-up to its release, then the next one (generation + 1). The
 * peers' thread owns a slot except while the Iq thread runs a job for it; the queue's lock
 * orders the hand-overs. */
struct soak_session {
    unsigned slot;
    uint32_t gen;
    enum soak_kind kind;
    bool terminating; /* TLS: the UE's fingerprint comes in a Modify, during the handshake */
    enum soak_fault fault;
    /* Written by the Iq thread before it reports the set-up; read-only until the release. */
    uint32_t ctx;
    char access_id[SOAK_ID_MAX], core_id[SOAK_ID_MAX];
    uint16_t access_port, core_port;
    struct agw_tls_fingerprint gateway_fp; /* the access termination's a=fingerprint */
    /* Written by the peers' thread before it asks for the release: the octets the Subtract
     * reply must report (check_figures false: bytes were cut on purpose, or on an error). */
    bool check_figures;
    uint64_t up_bytes, down_bytes;
};

/* A data-channel session: a DTLS+SCTP UE and a UDP/SCTP core peer (tools/dc_endpoint.h). */
struct soak_dc_session {
    uint32_t gen;
    uint16_t ue_port, core_port; /* our endpoints, set before SOAK_JOB_DC_SETUP */
    /* Written by the Iq thread before it reports the set-up. */
    uint32_t ctx;
    uint16_t gw_access_port, gw_core_port;
    struct agw_tls_fingerprint gw_fp;
};

enum soak_msg_kind {
    SOAK_JOB_SETUP, /* to the Iq thread */
    SOAK_JOB_MODIFY,
    SOAK_JOB_RELEASE,
    SOAK_JOB_DC_SETUP,
    SOAK_JOB_DC_RELEASE,
    SOAK_DONE_SETUP, /* to the peers' thread; status 0 or -1 with text */
    SOAK_DONE_MODIFY,
    SOAK_DONE_RELEASE,
    SOAK_NOTIFIED,      /* a Notify on the slot's access termination; text: its cause */
    SOAK_DONE_DC_SETUP, /* to the data-channel thread */
    SOAK_DONE_DC_RELEASE,
};

struct soak_msg {
    enum soak_msg_kind kind;
    unsigned slot;
    int status;
    char text[200];
};

/* A locked ring that grows; efd (an eventfd, -1 for none) is signalled on each push. */
struct soak_queue {
    pthread_mutex_t lock;
    struct soak_msg *ring;
    size_t cap, head, count;
    int efd;
};

int soak_queue_init(struct soak_queue *q, bool with_eventfd);
void soak_queue_fini(struct soak_queue *q);
/* Copies m in; -ENOMEM. */
int soak_queue_push(struct soak_queue *q, const struct soak_msg *m);
/* Copies the oldest message out; false when empty. */
bool soak_queue_pop(struct soak_queue *q, struct soak_msg *m);

struct soak_config {
    unsigned sessions;
    unsigned seconds;      /* of the run once every session is up */
    double churn_percent;  /* of the sessions released and set up again every 10 s */
    unsigned rate;         /* bytes a second each way per session */
    unsigned tls_percent;  /* sessions with a TLS access leg, the others plain TCP */
    unsigned fault_every;  /* seconds between injected faults, 0: none */
    unsigned ramp_seconds; /* time allowed for every session to come up */
    unsigned dc_sessions;  /* data-channel sessions besides */
};

/* Where the run is; the peers' thread moves it on, the data-channel thread follows. */
enum soak_phase { SOAK_RAMP, SOAK_RUN, SOAK_RELEASE, SOAK_DONE };

/* The figures of the run; atomics where both threads or the sampler read them. */
struct soak_stats {
    atomic_uint_least64_t setups, releases, setup_failures;
    atomic_uint_least64_t up_verified, down_verified; /* bytes checked at the far end */
    atomic_uint_least64_t errors;
    atomic_uint_least64_t faults_injected, faults_ok;
    atomic_uint_least64_t notifies, late_notifies;
    atomic_uint sessions_up; /* in the relaying state now */
    atomic_uint dc_up;       /* data-channel sessions with their channel open */
    atomic_uint_least64_t dc_setups, dc_messages, dc_bytes; /* dc_bytes: payload checked */
    uint64_t handshakes, held_handshakes, figures_checked;
};

struct soak_run {
    const struct soak_config *cfg;
    struct soak_session *sessions;
    struct soak_queue to_iq, to_peers, to_dc;
    struct soak_dc_session *dc;
    atomic_int phase;    /* enum soak_phase */
    atomic_bool dc_idle; /* the data-channel thread released all it had (phase SOAK_RELEASE) */
    atomic_bool abort;   /* the gateway died: stop at once */
    struct iq_client *iq;
    atomic_bool iq_stop;
    uint16_t sink_port;
    struct agw_tls_identity *ue, *intruder; /* the UEs' certificate; another for the fault */
    char ue_fingerprint[AGW_TLS_FINGERPRINT_TEXT_MAX];
    uint64_t t0_ms;
    struct soak_stats stats;
};

/* A monotonic clock in milliseconds. */
uint64_t soak_now_ms(void);

/* Counts an error and prints it (the first ones in full, then one in a hundred). Any thread. */
void soak_error(struct soak_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* soak_iq.c: the Iq thread (takes SOAK_JOB_* from to_iq, answers on to_peers). */
void *soak_iq_thread(void *arg);

/* soak_dc.c: the data-channel sessions' thread: keeps cfg->dc_sessions up with messages both
 * ways and churn until the phase is SOAK_RELEASE, then releases them and sets dc_idle. */
void *soak_dc_thread(void *arg);

/* soak_peers.c: the UEs and the core peers of every session, one epoll loop on the calling
 * thread: ramps up, runs cfg->seconds with churn and faults, releases everything. progress is
 * called every 10 s and once at the end of each phase (phase "ramp", "run", "release"). Returns
 * 0, or -1 when the loop could not run at all (errors of the run are counted in stats). */
typedef void (*soak_progress_cb)(struct soak_run *r, const char *phase, bool phase_end);
int soak_peers_run(struct soak_run *r, soak_progress_cb progress);

#endif
