/* RFC 8832 Data Channel Establishment Protocol: OPEN/ACK codec, PPIDs, stream-id parity. */
#ifndef IMS_AGW_SCTP_DCEP_H
#define IMS_AGW_SCTP_DCEP_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* SCTP payload protocol identifiers of WebRTC data channels (RFC 8831 §8, RFC 8832 §8.1). An
   empty message travels as one byte with an "empty" PPID because SCTP cannot carry zero bytes. */
#define DCEP_PPID_CONTROL 50        /* DCEP messages */
#define DCEP_PPID_STRING 51         /* UTF-8 text */
#define DCEP_PPID_BINARY_PARTIAL 52 /* deprecated: part of a binary message */
#define DCEP_PPID_BINARY 53
#define DCEP_PPID_STRING_PARTIAL 54 /* deprecated: part of a text message */
#define DCEP_PPID_STRING_EMPTY 56
#define DCEP_PPID_BINARY_EMPTY 57

enum dcep_message_type {
    DCEP_MSG_ACK = 0x02,
    DCEP_MSG_OPEN = 0x03,
};

/* Bit 0x80 = unordered; the low bits give the partial-reliability policy. */
enum dcep_channel_type {
    DCEP_CHANNEL_RELIABLE = 0x00,
    DCEP_CHANNEL_RELIABLE_UNORDERED = 0x80,
    DCEP_CHANNEL_PARTIAL_RELIABLE_REXMIT = 0x01, /* reliability = max retransmissions */
    DCEP_CHANNEL_PARTIAL_RELIABLE_REXMIT_UNORDERED = 0x81,
    DCEP_CHANNEL_PARTIAL_RELIABLE_TIMED = 0x02, /* reliability = lifetime in ms */
    DCEP_CHANNEL_PARTIAL_RELIABLE_TIMED_UNORDERED = 0x82,
};

#define DCEP_OPEN_HEADER_LEN 12 /* bytes of an OPEN before its label */
#define DCEP_ACK_LEN 1
#define DCEP_STRING_MAX 65535 /* label or protocol bytes the 16-bit length fields allow */
#define DCEP_STREAM_MAX 65534 /* highest usable stream id: 65535 is reserved (RFC 8831 §6.5) */

/* Parse errors (negative errno values), distinct so that a caller can count them apart. */
#define DCEP_ERR_MALFORMED (-EBADMSG)            /* empty, truncated, or lengths not matching */
#define DCEP_ERR_MESSAGE_TYPE (-ENOMSG)          /* a message type other than OPEN or ACK */
#define DCEP_ERR_CHANNEL_TYPE (-EPROTONOSUPPORT) /* an OPEN with an unknown channel type */
#define DCEP_ERR_TOO_LONG (-E2BIG)               /* label or protocol longer than the limit */
#define DCEP_ERR_UTF8 (-EILSEQ)                  /* label or protocol not valid UTF-8 */

struct dcep_limits {
    size_t max_label_len;    /* bytes; at most DCEP_STRING_MAX is meaningful */
    size_t max_protocol_len; /* bytes */
};

/* The defaults used when a NULL limits pointer is passed: 1024 bytes each. */
extern const struct dcep_limits dcep_default_limits;

/* An OPEN. label and protocol are UTF-8, not NUL-terminated; after dcep_parse they point into the
   parsed buffer and are valid as long as it is. */
struct dcep_open {
    uint8_t channel_type; /* enum dcep_channel_type */
    uint16_t priority;
    uint32_t reliability; /* 0 for the reliable types (ignored on receive, RFC 8832 §5.1) */
    const char *label;
    size_t label_len;
    const char *protocol;
    size_t protocol_len;
};

struct dcep_message {
    enum dcep_message_type type;
    struct dcep_open open; /* DCEP_MSG_OPEN only; zeroed for an ACK */
};

/* Parses one DCEP message (the payload of a PPID 50 SCTP message) strictly: the lengths must add
   up to exactly len, label and protocol must be valid UTF-8 within limits (NULL = defaults).
   *out borrows data. 0; -EINVAL for NULL arguments; otherwise one of the DCEP_ERR_ codes, *out
   then undefined. */
int dcep_parse(const uint8_t *data, size_t len, const struct dcep_limits *limits,
               struct dcep_message *out);

/* Writes an OPEN into buf (cap bytes). *len_out = bytes written; on -ENOSPC the bytes needed.
   0; -ENOSPC; -EINVAL for an unknown channel type, a non-zero reliability on a reliable type, a
   label or protocol over DCEP_STRING_MAX or not UTF-8, or NULL where bytes are promised. */
int dcep_encode_open(const struct dcep_open *open, uint8_t *buf, size_t cap, size_t *len_out);

/* Writes an ACK (one byte) into buf; same return convention as dcep_encode_open. */
int dcep_encode_ack(uint8_t *buf, size_t cap, size_t *len_out);

/* True for the six channel types of RFC 8832 §5.1. */
bool dcep_channel_type_valid(uint8_t channel_type);

/* True when messages of this channel type are delivered in order. */
bool dcep_channel_ordered(uint8_t channel_type);

/* The DTLS role of the endpoint that opens a channel: RFC 8832 §6 gives the client the even
   stream ids and the server the odd ones, so that both can open channels without a collision. */
enum dcep_dtls_role {
    DCEP_DTLS_CLIENT,
    DCEP_DTLS_SERVER,
};

/* True when an endpoint of role `opener` may open a channel on `stream` (parity, not 65535).
   Used both to pick our ids and to refuse an OPEN the peer sent on one of ours. */
bool dcep_stream_id_valid(uint16_t stream, enum dcep_dtls_role opener);

#endif
