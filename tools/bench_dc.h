/* agw-bench dc: data-channel message throughput through a running ims-agw (e2DCe sessions). */
#ifndef IMS_AGW_TOOLS_BENCH_DC_H
#define IMS_AGW_TOOLS_BENCH_DC_H

/* `agw-bench dc ...`: argv[1] is "dc". Returns the exit status (0, 1 failed, 2 usage). */
int bench_dc_main(int argc, char **argv);

#endif
