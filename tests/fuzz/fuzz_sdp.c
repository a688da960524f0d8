/* libFuzzer harness for the SDP codec: parse, and on success encode, re-parse and compare. */
#include "h248/sdp.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What the daemon does to a Local before replying. A setter that refuses (a full level, say)
   leaves the session as it was, so the results are not needed here. */
static void fill_reply(struct sdp_session *s)
{
    static const uint8_t digest[32] = {0xAB, 0xCD};
    struct sdp_media *m = s->media;
    (void)sdp_fingerprint_fill(s, m, SDP_HASH_SHA256, digest, sizeof(digest));
    (void)sdp_connection_set(m != NULL ? &m->conn : &s->conn, SDP_VALUE_SET, "2001:db8::1");
    if (m != NULL)
        (void)sdp_media_set_port(m, SDP_VALUE_SET, 9);
}

static void round_trip(const struct sdp_session *s, const char *what)
{
    size_t need = 0, len = 0;
    if (sdp_encode(s, NULL, 0, &need) != -ENOSPC)
        abort();
    char *buf = malloc(need + 1);
    if (buf == NULL)
        abort();
    if (sdp_encode(s, buf, need + 1, &len) != 0 || len != need)
        abort();
    /* Encoding adds CRs and may grow a body past the input limit: re-parse without one. */
    struct sdp_limits lim = sdp_default_limits;
    lim.max_len = SIZE_MAX;
    struct sdp_session *t = NULL;
    struct sdp_error err;
    int rc = sdp_parse(buf, len, &lim, &t, &err);
    if (rc != 0) {
        fprintf(stderr, "%s: re-parse failed: %s\n%s\n", what, err.text, buf);
        abort();
    }
    if (!sdp_equal(s, t)) {
        fprintf(stderr, "%s: round trip differs\n%s\n", what, buf);
        abort();
    }
    sdp_free(t);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sdp_session *s = NULL;
    struct sdp_error err;
    int rc = sdp_parse((const char *)data, size, NULL, &s, &err);
    if (rc != 0) {
        if (s != NULL || (rc != -EINVAL && rc != -E2BIG) || err.text[0] == '\0' ||
            memchr(err.text, '\0', sizeof(err.text)) == NULL || err.offset > size)
            abort();
        return 0;
    }
    round_trip(s, "parse");
    /* The reply path: fill in CHOOSE values, then the result must still round-trip. */
    fill_reply(s);
    round_trip(s, "fill");
    sdp_free(s);
    return 0;
}
