/* libFuzzer harness for the H.248 text codec: parse; on success encode both styles, re-parse,
 * compare. */
#include "h248/h248.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define OUT_CAP (1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A message the parser accepted must encode, and the encoding must parse back to the same. */
static void round_trip(const struct h248_message *msg, enum h248_style style, char *out)
{
    size_t len = 0;
    int rc = h248_encode_message(msg, style, out, OUT_CAP, &len);
    if (rc != 0) {
        /* -ENOSPC too: an input under the parser's limits must fit in 1 MiB. */
        fprintf(stderr, "fuzz_h248: encode (style %d) of a parsed message failed: %d\n", style, rc);
        abort();
    }
    struct h248_message *again = NULL;
    struct h248_parse_error err;
    if (h248_parse_message(out, len, NULL, &again, &err) != 0) {
        fprintf(stderr, "fuzz_h248: re-parse (style %d) failed: %u %s\n%.*s\n", style, err.code,
                err.text, (int)len, out);
        abort();
    }
    if (!h248_message_equal(msg, again)) {
        fprintf(stderr, "fuzz_h248: round trip (style %d) changed the message:\n%.*s\n", style,
                (int)len, out);
        abort();
    }
    h248_message_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *out;
    if (out == NULL) {
        out = malloc(OUT_CAP);
        if (out == NULL)
            abort();
    }
    struct h248_message *msg = NULL;
    struct h248_parse_error err;
    if (h248_parse_message((const char *)data, size, NULL, &msg, &err) != 0)
        return 0;
    round_trip(msg, H248_STYLE_COMPACT, out);
    round_trip(msg, H248_STYLE_PRETTY, out);
    h248_message_free(msg);
    return 0;
}
