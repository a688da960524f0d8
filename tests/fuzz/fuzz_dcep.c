/* libFuzzer harness for the DCEP codec: parse, and on success encode and compare with the input. */
#include "sctp/dcep.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct dcep_limits max_limits = {DCEP_STRING_MAX, DCEP_STRING_MAX};

static void fail(const char *what, size_t size)
{
    fprintf(stderr, "fuzz_dcep: %s (input of %zu bytes)\n", what, size);
    abort();
}

static void check_open_round_trip(const struct dcep_open *o, const uint8_t *data, size_t size)
{
    size_t need = 0, len = 0;
    if (dcep_encode_open(o, NULL, 0, &need) != -ENOSPC || need != size)
        fail("encode does not ask for the input's size", size);
    uint8_t *buf = malloc(need);
    if (buf == NULL)
        abort();
    if (dcep_encode_open(o, buf, need, &len) != 0 || len != need)
        fail("encode failed", size);
    /* The encoding is the input, except that a reliable channel's reliability goes out as 0. */
    if (memcmp(buf, data, 4) != 0 || memcmp(buf + 8, data + 8, size - 8) != 0)
        fail("encoding differs from input", size);
    if ((o->channel_type & 0x7F) != 0 && memcmp(buf + 4, data + 4, 4) != 0)
        fail("reliability differs", size);
    if ((o->channel_type & 0x7F) == 0 && (buf[4] | buf[5] | buf[6] | buf[7]) != 0)
        fail("reliable channel sent a reliability", size);

    struct dcep_message again;
    if (dcep_parse(buf, len, &max_limits, &again) != 0)
        fail("re-parse failed", size);
    if (again.open.channel_type != o->channel_type || again.open.priority != o->priority ||
        again.open.reliability != o->reliability || again.open.label_len != o->label_len ||
        again.open.protocol_len != o->protocol_len ||
        memcmp(again.open.label, o->label, o->label_len) != 0 ||
        memcmp(again.open.protocol, o->protocol, o->protocol_len) != 0)
        fail("re-parse differs", size);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dcep_message m;
    int rc = dcep_parse(data, size, &max_limits, &m);
    /* The default limits are tighter: they may refuse more, never accept more. */
    struct dcep_message d;
    int rc_default = dcep_parse(data, size, NULL, &d);
    if (rc_default == 0 && rc != 0)
        fail("default limits accept what max limits refuse", size);
    if (rc != 0 && rc_default != rc && rc_default != DCEP_ERR_TOO_LONG)
        fail("limits changed the error of a refused message", size);
    if (rc != 0) {
        if (rc != DCEP_ERR_MALFORMED && rc != DCEP_ERR_MESSAGE_TYPE &&
            rc != DCEP_ERR_CHANNEL_TYPE && rc != DCEP_ERR_UTF8)
            fail("unexpected error code", size);
        return 0;
    }
    if (rc_default != 0 && rc_default != DCEP_ERR_TOO_LONG)
        fail("default limits refused for another reason than length", size);

    if (m.type == DCEP_MSG_ACK) {
        uint8_t b[1];
        size_t len = 0;
        if (size != 1 || dcep_encode_ack(b, sizeof(b), &len) != 0 || len != 1 || b[0] != data[0])
            fail("ack round trip", size);
        return 0;
    }
    if (m.type != DCEP_MSG_OPEN)
        fail("unknown type accepted", size);
    if (m.open.label != (const char *)data + DCEP_OPEN_HEADER_LEN ||
        m.open.protocol != m.open.label + m.open.label_len)
        fail("label or protocol not where the input has them", size);
    check_open_round_trip(&m.open, data, size);
    return 0;
}
