/* Helpers shared by the suites that drive the real daemon: ports, waits, its log, Iq requests. */
#ifndef IMS_AGW_TESTS_HARNESS_H
#define IMS_AGW_TESTS_HARNESS_H

#include "tools/iq_client.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The daemon under test: $AGW_BIN, else build/ims-agw. */
const char *harness_agw_bin(void);

/* A loopback port of the given socket type that is free right now. */
uint16_t harness_free_port(int type);

void harness_sleep_ms(long ms);

/* ms times $AGW_TEST_SLOW (an integer 1-100, default 1): the waits on the daemon, longer for runs
 * under valgrind. Only how long a test waits changes, never what it asserts. */
int harness_ms(int ms);

/* Whether the file at path (the daemon's log, first 1 MiB) contains needle. */
bool harness_log_contains(const char *path, const char *needle);

/* pid's wait status once it exited, or -1 after harness_ms(ms). */
int harness_wait_exit(pid_t pid, int ms);

/* SIGTERM to the daemon pid, reading (and so answering) what the MGC c gets meanwhile (c may be
 * NULL); its wait status, or its status after SIGKILL when it did not exit within
 * harness_ms(timeout_ms). */
int harness_stop_daemon(pid_t pid, struct iq_client *c, int timeout_ms);

/* The first Notify the gateway sends c within harness_ms(timeout_ms), compact (static buffer), ""
 * if none. */
const char *harness_wait_notify(struct iq_client *c, int timeout_ms);

/* Sends text over c and returns the reply in compact form (static buffer, "" when none came
 * within harness_ms(3000));
 * *code gets the reply's first error code, 0 without one, 999 on timeout. */
const char *harness_request(struct iq_client *c, const char *text, unsigned *code);

/* The number that follows key in text (the test fails when key is absent). */
unsigned long harness_number_after(const char *text, const char *key);

#endif
