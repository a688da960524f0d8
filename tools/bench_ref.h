/* agw-bench's plain reference relay: TCP in, TCP out, splice(2), no TLS (the ceiling). */
#ifndef IMS_AGW_TOOLS_BENCH_REF_H
#define IMS_AGW_TOOLS_BENCH_REF_H

#include <stdint.h>
#include <sys/socket.h>

struct bench_ref_relay;

/* Listens on 127.0.0.1 (port in *port_out) and relays each of up to `connections` connections
 * to upstream (borrowed), both ways, half-close passed on. *out is owned by the caller
 * (bench_ref_relay_stop). */
int bench_ref_relay_start(const struct sockaddr_storage *upstream, socklen_t upstream_len,
                          unsigned connections, uint16_t *port_out, struct bench_ref_relay **out);

/* Stops accepting, cuts what is still open, joins and frees r. *cpu_s (may be NULL): CPU time
 * the relay's threads used. */
void bench_ref_relay_stop(struct bench_ref_relay *r, double *cpu_s);

#endif
