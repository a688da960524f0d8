/* bench-codec: H.248 codec throughput on a typical Iq Add (single thread); a benchmark, not a test.
 */
#include "h248/h248.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RUN_SECONDS 2.0
#define BATCH 256

/* The ALG's Reserve and Configure toward the access (DESIGN.md §1, e2ae originating). */
static const char iq_add[] =
    "MEGACO/3 [192.0.2.10]:2944\n"
    "T=4711{C=${A=${M{ST=1{O{MO=SR,ipdc/realm=access},L{\n"
    "v=0\n"
    "c=IN IP4 $\n"
    "m=message $ TCP/TLS/MSRP *\n"
    "a=accept-types:message/cpim text/plain\n"
    "a=path:msrps://192.0.2.20:$/s111271;tcp\n"
    "a=setup:passive\n"
    "a=fingerprint:$\n"
    "},R{\n"
    "v=0\n"
    "o=- 2890844526 2890844527 IN IP4 198.51.100.7\n"
    "s=-\n"
    "c=IN IP4 198.51.100.7\n"
    "m=message 49152 TCP/TLS/MSRP *\n"
    "a=accept-types:message/cpim text/plain\n"
    "a=path:msrps://198.51.100.7:49152/kjhd37s2s20w2a;tcp\n"
    "a=setup:active\n"
    "a=connection:new\n"
    "a=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:3C:2B:"
    "3D:1E:0F:AA:B2:C3:D4:E5:F6:07\n"
    "}}}}}}\n";

struct result {
    uint64_t messages;
    double seconds;
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One message through the codec; false if the codec refused the text it accepted before. */
static bool once(bool encode, char *out, size_t cap)
{
    struct h248_message *msg = NULL;
    struct h248_parse_error err;
    if (h248_parse_message(iq_add, sizeof(iq_add) - 1, NULL, &msg, &err) < 0)
        return false;
    bool ok = true;
    if (encode) {
        size_t len = 0;
        ok = h248_encode_message(msg, H248_STYLE_COMPACT, out, cap, &len) == 0 && len > 0;
    }
    h248_message_free(msg);
    return ok;
}

static int run(bool encode, char *out, size_t cap, struct result *r)
{
    double start = now_seconds(), elapsed = 0;
    r->messages = 0;
    do {
        for (int i = 0; i < BATCH; i++) {
            if (!once(encode, out, cap))
                return -EINVAL;
        }
        r->messages += BATCH;
        elapsed = now_seconds() - start;
    } while (elapsed < RUN_SECONDS);
    r->seconds = elapsed;
    return 0;
}

int main(int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else {
            fprintf(argc > 1 && strcmp(argv[i], "-h") == 0 ? stdout : stderr,
                    "usage: bench-codec [--json]\n"
                    "  parses (and encodes, compact) a %zu-byte Iq Add for %.0f s each\n",
                    sizeof(iq_add) - 1, RUN_SECONDS);
            return strcmp(argv[i], "-h") == 0 ? 0 : 2;
        }
    }

    static char out[65536];
    struct h248_message *msg = NULL;
    struct h248_parse_error err;
    memset(&err, 0, sizeof(err));
    if (h248_parse_message(iq_add, sizeof(iq_add) - 1, NULL, &msg, &err) < 0) {
        fprintf(stderr, "bench-codec: the sample does not parse: error %u: %s\n", err.code,
                err.text);
        return 1;
    }
    size_t encoded = 0;
    int rc = h248_encode_message(msg, H248_STYLE_COMPACT, out, sizeof(out), &encoded);
    h248_message_free(msg);
    if (rc < 0) {
        fprintf(stderr, "bench-codec: the sample does not encode: %s\n", strerror(-rc));
        return 1;
    }

    struct result parse, both;
    if (run(false, out, sizeof(out), &parse) < 0 || run(true, out, sizeof(out), &both) < 0) {
        fprintf(stderr, "bench-codec: the codec failed during the run\n");
        return 1;
    }
    double parse_rate = (double)parse.messages / parse.seconds;
    double both_rate = (double)both.messages / both.seconds;
    if (json) {
        printf("{\"message_bytes\":%zu,\"encoded_bytes\":%zu,"
               "\"parse\":{\"messages\":%llu,\"seconds\":%.3f,\"msgs_per_s\":%.0f,"
               "\"ns_per_msg\":%.1f},"
               "\"parse_encode\":{\"messages\":%llu,\"seconds\":%.3f,\"msgs_per_s\":%.0f,"
               "\"ns_per_msg\":%.1f}}\n",
               sizeof(iq_add) - 1, encoded, (unsigned long long)parse.messages, parse.seconds,
               parse_rate, 1e9 / parse_rate, (unsigned long long)both.messages, both.seconds,
               both_rate, 1e9 / both_rate);
        return 0;
    }
    printf("message: Iq Add with SDP in Local and Remote, %zu bytes (%zu compact)\n",
           sizeof(iq_add) - 1, encoded);
    printf("parse:         %10.0f msg/s %8.1f ns/msg (%llu messages in %.2f s)\n", parse_rate,
           1e9 / parse_rate, (unsigned long long)parse.messages, parse.seconds);
    printf("parse+encode:  %10.0f msg/s %8.1f ns/msg (%llu messages in %.2f s)\n", both_rate,
           1e9 / both_rate, (unsigned long long)both.messages, both.seconds);
    return 0;
}
