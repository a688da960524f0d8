/* A UDP relay for tests that loses, duplicates, reorders and delays datagrams on loopback. */
#ifndef IMS_AGW_TESTS_LOSSY_PROXY_H
#define IMS_AGW_TESTS_LOSSY_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lossy_proxy;

/* The two directions: what the gateway sends toward the MGC, and the way back. */
enum lossy_dir { LOSSY_TO_MGC, LOSSY_TO_GATEWAY };

/* Applied to each datagram independently, from a PRNG seeded at start. */
struct lossy_faults {
    unsigned loss_pct;     /* dropped */
    unsigned dup_pct;      /* sent twice, each copy delayed on its own */
    unsigned reorder_pct;  /* held reorder_ms longer than the rest */
    unsigned delay_max_ms; /* every copy waits a uniform 0..delay_max_ms */
    unsigned reorder_ms;
    bool blackout; /* everything dropped */
};

struct lossy_proxy_stats {
    uint64_t received, forwarded, dropped, duplicated, reordered;
};

/* Sees every datagram as its sender sent it, on the proxy's thread, before any fault. */
typedef void (*lossy_observe_cb)(void *arg, enum lossy_dir dir, const char *data, size_t len);

/* Binds 127.0.0.1:gw_side (the gateway's MGC address) and 127.0.0.1:mgc_side (the MGC's gateway
 * address) and relays, in a thread: what reaches gw_side goes from mgc_side to mgc_port, what
 * reaches mgc_side goes from gw_side to gateway_port. No faults until set. cb may be NULL. On
 * success *out is owned by the caller (lossy_proxy_stop). */
int lossy_proxy_start(struct lossy_proxy **out, uint16_t gw_side, uint16_t gateway_port,
                      uint16_t mgc_side, uint16_t mgc_port, uint64_t seed, lossy_observe_cb cb,
                      void *arg);

/* Replaces the faults of one direction (f is copied); datagrams already queued keep theirs. */
void lossy_proxy_set_faults(struct lossy_proxy *p, enum lossy_dir dir,
                            const struct lossy_faults *f);

void lossy_proxy_get_stats(struct lossy_proxy *p, enum lossy_dir dir,
                           struct lossy_proxy_stats *out);

/* Stops the thread, drops what is still queued, closes the sockets and frees p. NULL is fine. */
void lossy_proxy_stop(struct lossy_proxy *p);

#endif
