/* SDP codec for H.248 Local/Remote descriptors: parse, encode, compare, fill in CHOOSE values. */
#ifndef IMS_AGW_H248_SDP_H
#define IMS_AGW_H248_SDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds applied while parsing (counts are per session or per media level where so noted). */
struct sdp_limits {
    size_t max_len;            /* bytes of input */
    size_t max_line_len;       /* bytes of one line, without its line end */
    unsigned max_lines;        /* lines, blank ones included */
    unsigned max_sessions;     /* alternatives (each starting at v=) in one body */
    unsigned max_media;        /* m= sections per session */
    unsigned max_attrs;        /* a= and other kept lines per level */
    unsigned max_fingerprints; /* a=fingerprint per level */
    unsigned max_dcmaps;       /* a=dcmap per media */
};

/* The defaults used when a NULL limits pointer is passed. */
extern const struct sdp_limits sdp_default_limits;

struct sdp_error {
    int line;      /* 1-based line of the input, 0 when not tied to a line */
    size_t offset; /* byte offset in the input where the fault was seen */
    char text[128];
};

/* H.248 lets a value be a CHOOSE ($, the gateway fills it in) or unspecified (-). */
enum sdp_value_kind { SDP_VALUE_SET, SDP_VALUE_CHOOSE, SDP_VALUE_UNSPECIFIED };

enum sdp_addrtype { SDP_ADDR_IP4, SDP_ADDR_IP6, SDP_ADDR_FQDN /* candidates only */ };

/* Media protocols of the profile; matched case-sensitively on the exact spelling. */
enum sdp_proto {
    SDP_PROTO_OTHER, /* unknown: answer 515 naming sdp_media.proto */
    SDP_PROTO_TCP_TLS_MSRP,
    SDP_PROTO_TCP_MSRP,
    SDP_PROTO_TCP_TLS_BFCP,
    SDP_PROTO_TCP_BFCP,
    SDP_PROTO_TCP,
    SDP_PROTO_UDP_DTLS_SCTP,
    SDP_PROTO_TCP_DTLS_SCTP,
    SDP_PROTO_DTLS_SCTP, /* legacy spelling, accepted on input */
    SDP_PROTO_UDP_SCTP,
};

enum sdp_attr_kind {
    SDP_ATTR_OTHER, /* kept verbatim, no typed fields */
    SDP_ATTR_FINGERPRINT,
    SDP_ATTR_SETUP,
    SDP_ATTR_CONNECTION,
    SDP_ATTR_TLS_ID, /* value is the id */
    SDP_ATTR_SCTP_PORT,
    SDP_ATTR_MAX_MESSAGE_SIZE,
    SDP_ATTR_DCMAP,
    SDP_ATTR_DCSA,
    SDP_ATTR_ICE_UFRAG, /* value is the ufrag */
    SDP_ATTR_ICE_PWD,   /* value is the password */
    SDP_ATTR_ICE_LITE,
    SDP_ATTR_CANDIDATE,
};

enum sdp_hash {
    SDP_HASH_OTHER, /* a hash-func token we do not know: keep, never verify */
    SDP_HASH_SHA1,
    SDP_HASH_SHA224,
    SDP_HASH_SHA256,
    SDP_HASH_SHA384,
    SDP_HASH_SHA512,
    SDP_HASH_MD5,
    SDP_HASH_MD2,
};

enum sdp_setup { SDP_SETUP_ACTIVE, SDP_SETUP_PASSIVE, SDP_SETUP_ACTPASS, SDP_SETUP_HOLDCONN };
enum sdp_conn_mode { SDP_CONNECTION_NEW, SDP_CONNECTION_EXISTING };
enum sdp_cand_type {
    SDP_CAND_HOST,
    SDP_CAND_SRFLX,
    SDP_CAND_PRFLX,
    SDP_CAND_RELAY,
    SDP_CAND_OTHER
};

#define SDP_FINGERPRINT_MAX 64

struct sdp_fingerprint {
    enum sdp_value_kind kind; /* SET, or CHOOSE for a=fingerprint:$ */
    enum sdp_hash hash;
    uint8_t len; /* digest bytes; matches the hash unless SDP_HASH_OTHER */
    uint8_t digest[SDP_FINGERPRINT_MAX];
};

/* RFC 8864 a=dcmap. Label and subprotocol are %-decoded (so may hold any byte, length given). */
struct sdp_dcmap {
    uint16_t stream_id; /* 0..65534 */
    bool has_ordered, ordered;
    bool has_max_retr, has_max_time, has_priority;
    uint32_t max_retr, max_time;
    uint16_t priority;
    const char *label, *subprotocol; /* NULL when absent */
    size_t label_len, subprotocol_len;
};

struct sdp_dcsa {
    uint16_t stream_id;
    const char *attribute; /* the embedded attribute, "name" or "name:value", verbatim */
};

struct sdp_cand_ext {
    const char *name, *value;
};

/* RFC 8839 a=candidate. */
struct sdp_candidate {
    const char *foundation;
    uint16_t component; /* 1..256 */
    const char *transport;
    uint32_t priority;
    const char *address;
    enum sdp_addrtype addrtype;
    uint16_t port;
    enum sdp_cand_type type;
    const char *type_name; /* as written, for SDP_CAND_OTHER */
    const char *raddr;     /* NULL when absent */
    int32_t rport;         /* -1 when absent */
    const struct sdp_cand_ext *ext;
    unsigned ext_count;
};

/* One a= line. name/value are what encode writes; u is derived from them and is meaningful only
   for the member matching kind (nothing for SDP_ATTR_OTHER). Change attributes with the setters. */
struct sdp_attr {
    struct sdp_attr *next;
    enum sdp_attr_kind kind;
    const char *name;  /* as written (matched case-insensitively) */
    const char *value; /* after ':', NULL for a property attribute such as a=ice-lite */
    union {
        struct sdp_fingerprint fingerprint;
        enum sdp_setup setup;
        enum sdp_conn_mode connection;
        uint16_t sctp_port;
        uint64_t max_message_size; /* 0: no limit (RFC 8841) */
        struct sdp_dcmap dcmap;
        struct sdp_dcsa dcsa;
        struct sdp_candidate candidate;
    } u;
};

/* Lines kept verbatim: i= u= e= p= b= r= z= k=, encoded at their RFC 8866 place. */
struct sdp_line {
    struct sdp_line *next;
    char type;
    const char *value;
};

struct sdp_connection {
    bool present;
    enum sdp_value_kind kind;
    enum sdp_addrtype addrtype; /* IP4 or IP6 */
    char addr[46];              /* literal when kind is SET, else "" */
};

struct sdp_origin {
    const char *username, *sess_id, *sess_version, *nettype, *addrtype, *address;
};

struct sdp_media {
    struct sdp_media *next;
    const char *type; /* "message", "application", ... */
    enum sdp_value_kind port_kind;
    uint16_t port;
    uint16_t port_count; /* 0: no "/<count>" */
    const char *proto;   /* as written */
    enum sdp_proto proto_id;
    const char *fmt; /* format list as written, e.g. "*" */
    struct sdp_connection conn;
    struct sdp_line *lines;
    struct sdp_attr *attrs;
};

struct sdp_session {
    struct sdp_session *next; /* next alternative of the same descriptor */
    bool has_version;         /* v=0 */
    bool has_origin;
    struct sdp_origin origin;
    const char *name; /* s=, NULL when absent */
    bool has_timing;
    uint64_t start_time, stop_time;
    struct sdp_connection conn;
    struct sdp_line *lines;
    struct sdp_attr *attrs;
    struct sdp_media *media;
    struct sdp_arena *arena; /* private: owns every byte of the list */
};

/* Parses a body (LF or CRLF lines, not NUL terminated). On success *out is a list of sessions the
   caller owns (free with sdp_free); on failure returns -EINVAL (malformed), -E2BIG (a limit) or
   -ENOMEM, and err (may be NULL) says where and why. */
int sdp_parse(const char *data, size_t len, const struct sdp_limits *limits,
              struct sdp_session **out, struct sdp_error *err);

/* Frees the whole list s belongs to. NULL is allowed. */
void sdp_free(struct sdp_session *s);

/* Writes the list with CRLF line ends. 0 on success, -ENOSPC if cap is too small; *len_out is
   the length written or needed. A NUL follows the text when there is room (not counted). */
int sdp_encode(const struct sdp_session *s, char *buf, size_t cap, size_t *len_out);

/* True when both lists hold the same sessions, lines and attributes in the same order. */
bool sdp_equal(const struct sdp_session *a, const struct sdp_session *b);

/* Sets a c= value in place (&s->conn or &m->conn). SET takes an IPv4 or IPv6 literal and sets
   the address type from it; CHOOSE and UNSPECIFIED ignore addr and keep the address type. */
int sdp_connection_set(struct sdp_connection *c, enum sdp_value_kind kind, const char *addr);

/* Sets the m= port (drops any port count). */
int sdp_media_set_port(struct sdp_media *m, enum sdp_value_kind kind, uint16_t port);

/* Appends a= name[:value] to media m, or to session s when m is NULL, with the parser's checks.
   Copies the strings into s's arena; *out (may be NULL) borrows the new attribute. */
int sdp_attr_add(struct sdp_session *s, struct sdp_media *m, const char *name, const char *value,
                 const struct sdp_attr **out);

/* Unlinks a from the level (its memory stays in the arena). -ENOENT if a is not there. */
int sdp_attr_remove(struct sdp_session *s, struct sdp_media *m, const struct sdp_attr *a);

/* Puts the gateway's fingerprint at the level: replaces a=fingerprint:$ (dropping any further
   ones) or appends a new attribute when there is none. The digest is copied. */
int sdp_fingerprint_fill(struct sdp_session *s, struct sdp_media *m, enum sdp_hash hash,
                         const uint8_t *digest, size_t len);

/* First attribute of kind in list, or NULL; pass a->next to continue. Borrowed. */
const struct sdp_attr *sdp_attr_find(const struct sdp_attr *list, enum sdp_attr_kind kind);

/* First attribute named name (case-insensitive) in list, or NULL. Borrowed. */
const struct sdp_attr *sdp_attr_find_name(const struct sdp_attr *list, const char *name);

/* The c= that applies to m: its own, else the session's, else NULL. Borrowed. */
const struct sdp_connection *sdp_media_connection(const struct sdp_session *s,
                                                  const struct sdp_media *m);

/* a=max-message-size of m, or 65536 when absent (RFC 8841); 0 means no limit. */
uint64_t sdp_media_max_message_size(const struct sdp_media *m);

/* "sha-256" etc. (static string); NULL for SDP_HASH_OTHER. Digest length via sdp_hash_len. */
const char *sdp_hash_name(enum sdp_hash hash);
size_t sdp_hash_len(enum sdp_hash hash);

#endif
