/* RFC 8832 DCEP codec: strict parsing and encoding of DATA_CHANNEL_OPEN and DATA_CHANNEL_ACK. */
#include "dcep.h"

#include <errno.h>
#include <string.h>

const struct dcep_limits dcep_default_limits = {
    .max_label_len = 1024,
    .max_protocol_len = 1024,
};

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* RFC 3629 well-formedness: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t more;
        uint8_t lo = 0x80, hi = 0xBF; /* bounds of the first continuation byte */
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return false;
        }
        if (len - i - 1 < more)
            return false;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= more; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
        }
        i += more + 1;
    }
    return true;
}

bool dcep_channel_type_valid(uint8_t channel_type)
{
    switch (channel_type) {
    case DCEP_CHANNEL_RELIABLE:
    case DCEP_CHANNEL_RELIABLE_UNORDERED:
    case DCEP_CHANNEL_PARTIAL_RELIABLE_REXMIT:
    case DCEP_CHANNEL_PARTIAL_RELIABLE_REXMIT_UNORDERED:
    case DCEP_CHANNEL_PARTIAL_RELIABLE_TIMED:
    case DCEP_CHANNEL_PARTIAL_RELIABLE_TIMED_UNORDERED:
        return true;
    default:
        return false;
    }
}

bool dcep_channel_ordered(uint8_t channel_type)
{
    return (channel_type & 0x80) == 0;
}

static bool channel_reliable(uint8_t channel_type)
{
    return (channel_type & 0x7F) == 0;
}

bool dcep_stream_id_valid(uint16_t stream, enum dcep_dtls_role opener)
{
    if (stream > DCEP_STREAM_MAX)
        return false;
    return (stream % 2 == 0) == (opener == DCEP_DTLS_CLIENT);
}

static int parse_open(const uint8_t *data, size_t len, const struct dcep_limits *limits,
                      struct dcep_open *open)
{
    if (len < DCEP_OPEN_HEADER_LEN)
        return DCEP_ERR_MALFORMED;
    open->channel_type = data[1];
    if (!dcep_channel_type_valid(open->channel_type))
        return DCEP_ERR_CHANNEL_TYPE;
    open->priority = get16(data + 2);
    open->reliability = channel_reliable(open->channel_type) ? 0 : get32(data + 4);
    size_t label_len = get16(data + 8);
    size_t protocol_len = get16(data + 10);
    /* Both are at most 65535, so the sum cannot overflow; trailing bytes are refused too. */
    if (len - DCEP_OPEN_HEADER_LEN != label_len + protocol_len)
        return DCEP_ERR_MALFORMED;
    if (label_len > limits->max_label_len || protocol_len > limits->max_protocol_len)
        return DCEP_ERR_TOO_LONG;
    const uint8_t *label = data + DCEP_OPEN_HEADER_LEN;
    const uint8_t *protocol = label + label_len;
    if (!utf8_valid(label, label_len) || !utf8_valid(protocol, protocol_len))
        return DCEP_ERR_UTF8;
    open->label = (const char *)label;
    open->label_len = label_len;
    open->protocol = (const char *)protocol;
    open->protocol_len = protocol_len;
    return 0;
}

int dcep_parse(const uint8_t *data, size_t len, const struct dcep_limits *limits,
               struct dcep_message *out)
{
    if (out == NULL || (data == NULL && len > 0))
        return -EINVAL;
    if (limits == NULL)
        limits = &dcep_default_limits;
    memset(out, 0, sizeof(*out));
    if (len == 0)
        return DCEP_ERR_MALFORMED;
    switch (data[0]) {
    case DCEP_MSG_ACK:
        out->type = DCEP_MSG_ACK;
        return len == DCEP_ACK_LEN ? 0 : DCEP_ERR_MALFORMED;
    case DCEP_MSG_OPEN:
        out->type = DCEP_MSG_OPEN;
        return parse_open(data, len, limits, &out->open);
    default:
        return DCEP_ERR_MESSAGE_TYPE;
    }
}

int dcep_encode_open(const struct dcep_open *open, uint8_t *buf, size_t cap, size_t *len_out)
{
    if (open == NULL || len_out == NULL)
        return -EINVAL;
    if (!dcep_channel_type_valid(open->channel_type))
        return -EINVAL;
    if (channel_reliable(open->channel_type) && open->reliability != 0)
        return -EINVAL;
    if (open->label_len > DCEP_STRING_MAX || open->protocol_len > DCEP_STRING_MAX)
        return -EINVAL;
    if ((open->label == NULL && open->label_len > 0) ||
        (open->protocol == NULL && open->protocol_len > 0))
        return -EINVAL;
    /* Never emit what dcep_parse would refuse. */
    if (!utf8_valid((const uint8_t *)open->label, open->label_len) ||
        !utf8_valid((const uint8_t *)open->protocol, open->protocol_len))
        return -EINVAL;
    size_t need = DCEP_OPEN_HEADER_LEN + open->label_len + open->protocol_len;
    *len_out = need;
    if (buf == NULL || cap < need)
        return -ENOSPC;
    buf[0] = DCEP_MSG_OPEN;
    buf[1] = open->channel_type;
    put16(buf + 2, open->priority);
    put32(buf + 4, open->reliability);
    put16(buf + 8, (uint16_t)open->label_len);
    put16(buf + 10, (uint16_t)open->protocol_len);
    if (open->label_len > 0)
        memcpy(buf + DCEP_OPEN_HEADER_LEN, open->label, open->label_len);
    if (open->protocol_len > 0)
        memcpy(buf + DCEP_OPEN_HEADER_LEN + open->label_len, open->protocol, open->protocol_len);
    return 0;
}

int dcep_encode_ack(uint8_t *buf, size_t cap, size_t *len_out)
{
    if (len_out == NULL)
        return -EINVAL;
    *len_out = DCEP_ACK_LEN;
    if (buf == NULL || cap < DCEP_ACK_LEN)
        return -ENOSPC;
    buf[0] = DCEP_MSG_ACK;
    return 0;
}
