/* Built-in e2ae Iq flows (MSRP, BFCP; originating, terminating) run against a gateway, checked. */
#ifndef IMS_AGW_SCENARIO_H
#define IMS_AGW_SCENARIO_H

#include "tools/iq_client.h"

#include <stdio.h>

/* Zero or NULL fields take the default in brackets. */
struct scenario_options {
    const char *ue_addr;      /* the UE's address in Remote SDP [127.0.0.1] */
    const char *core_addr;    /* the core peer's address in Remote SDP [127.0.0.1] */
    const char *access_realm; /* ipdc/realm of access terminations [access] */
    const char *core_realm;   /* ipdc/realm of core terminations [core] */
    const char *tls_signal;   /* signal put on the bfcp-term access Add, e.g. a package's
                                 "establish TLS" [none] */
    int timeout_ms;           /* per request; 0: the client's retransmission schedule */
    FILE *out;                /* one line per step [stdout] */
};

/* The flows, NULL terminated ("all" runs each in turn). */
extern const char *const scenario_names[];

/* Runs flow name against the gateway c talks to; ids come from the replies. Returns 0 when every
 * check passed, 1 on a transport failure or timeout, 2 on the first failed check (named on out),
 * -EINVAL for an unknown name. A failed flow's context is released best effort. */
int scenario_run(struct iq_client *c, const char *name, const struct scenario_options *opts);

#endif
