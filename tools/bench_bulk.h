/* agw-bench's modes beyond `setup`, and what they share with it. */
#ifndef IMS_AGW_TOOLS_BENCH_BULK_H
#define IMS_AGW_TOOLS_BENCH_BULK_H

#include <sys/types.h>

/* `agw-bench bulk ...`: argv[1] is "bulk". Returns the exit status. */
int bench_bulk_main(int argc, char **argv);

/* Starts bin as the gateway on iq with its MGC at mgc; the child's pid. */
pid_t bench_spawn_gateway(const char *bin, const char *iq, const char *mgc, const char *workers,
                          const char *max_contexts);

#endif
