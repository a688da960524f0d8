/* H.248.1 text codec: the message model, parser and encoder (Annex B, versions 1-3). */
#ifndef IMS_AGW_H248_H
#define IMS_AGW_H248_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Strings point into the owning message's arena; they are not NUL terminated. */
struct h248_str {
    const char *ptr;
    size_t len;
};

/* Bounds applied while parsing; every count and depth in a message is checked against them. */
struct h248_limits {
    size_t max_message_len;      /* bytes of input */
    unsigned max_depth;          /* brace/bracket nesting */
    unsigned max_transactions;   /* per message (Annex D.1: 10 on UDP) */
    unsigned max_actions;        /* per transaction */
    unsigned max_commands;       /* per action */
    unsigned max_terminations;   /* per termination id list */
    unsigned max_items;          /* descriptors, parameters, values in one list */
    size_t max_token_len;        /* names, values, quoted strings */
    size_t max_octet_string_len; /* Local/Remote bodies */
};

/* The defaults used when a NULL limits pointer is passed. */
extern const struct h248_limits h248_default_limits;

/* Error codes of H.248.1 §14 that the codec itself produces. */
enum {
    H248_ERR_MESSAGE_SYNTAX = 400,
    H248_ERR_TRANSACTION_SYNTAX = 403,
    H248_ERR_TOO_MANY_TRANSACTIONS = 413, /* more transactions in a message than allowed */
    H248_ERR_ACTION_SYNTAX = 422,
    H248_ERR_COMMAND_SYNTAX = 442,
    H248_ERR_RESOURCES = 510,
};

struct h248_parse_error {
    unsigned code;  /* H.248 error code to answer with */
    size_t offset;  /* byte offset in the input where parsing stopped */
    char text[160]; /* short, printable: what, where, offending token */
    bool has_transaction_id;
    uint32_t transaction_id; /* innermost transaction being parsed when it failed */
};

enum h248_mid_kind {
    H248_MID_IPV4,   /* [192.0.2.1]:2944 */
    H248_MID_IPV6,   /* [2001:db8::1]:2944 */
    H248_MID_DOMAIN, /* <mg.example.net>:2944 */
    H248_MID_DEVICE, /* pathNAME, no port */
    H248_MID_MTP,    /* MTP{hex} */
};

struct h248_mid {
    enum h248_mid_kind kind;
    struct h248_str text; /* address without [], domain without <>, device name, MTP hex */
    bool has_port;
    uint16_t port;
};

/* A VALUE: 1*SafeChar or a quoted string (quotes not included in text). */
struct h248_value {
    struct h248_value *next;
    struct h248_str text;
    bool quoted;
};

enum h248_relation { H248_REL_EQUAL, H248_REL_GREATER, H248_REL_LESS, H248_REL_NOT_EQUAL };

enum h248_value_shape {
    H248_SHAPE_SINGLE,       /* =v */
    H248_SHAPE_SUBLIST,      /* =[a,b] (all of) */
    H248_SHAPE_ALTERNATIVES, /* ={a,b} (one of) */
    H248_SHAPE_RANGE,        /* =[a:b] */
};

/* parmValue: a relation and one or more values. */
struct h248_parm_value {
    enum h248_relation relation;
    enum h248_value_shape shape;
    struct h248_value *values; /* 1 for SINGLE/relations, 2 for RANGE, >= 1 for lists */
};

/* A package property, statistic or event/signal parameter: name [parmValue]. */
struct h248_property {
    struct h248_property *next;
    struct h248_str name; /* pkgdName ("ipdc/realm") or parameter name */
    bool has_value;
    struct h248_parm_value value;
};

enum h248_stream_mode {
    H248_MODE_UNSET,
    H248_MODE_SEND_ONLY,
    H248_MODE_RECV_ONLY,
    H248_MODE_SEND_RECV,
    H248_MODE_INACTIVE,
    H248_MODE_LOOPBACK,
};

enum h248_tristate { H248_UNSET, H248_OFF, H248_ON };

struct h248_local_control {
    enum h248_stream_mode mode;
    enum h248_tristate reserved_value;
    enum h248_tristate reserved_group;
    struct h248_property *properties;
};

struct h248_statistics {
    struct h248_property *items;
};

/* The parameters of one stream (streamParm list). */
struct h248_stream_parms {
    struct h248_local_control *local_control;
    bool has_local, has_remote;
    struct h248_str local;  /* octetString, unescaped (SDP text) */
    struct h248_str remote; /* octetString, unescaped (SDP text) */
    struct h248_statistics *statistics;
};

struct h248_stream {
    struct h248_stream *next;
    uint16_t id;
    struct h248_stream_parms parms;
};

enum h248_service_state {
    H248_SERVICE_UNSET,
    H248_SERVICE_TEST,
    H248_SERVICE_OUT_OF_SVC,
    H248_SERVICE_IN_SVC
};
enum h248_buffer_control { H248_BUFFER_UNSET, H248_BUFFER_OFF, H248_BUFFER_LOCKSTEP };

struct h248_termination_state {
    enum h248_service_state service_state;
    enum h248_buffer_control buffer_control;
    struct h248_property *properties;
};

struct h248_media {
    struct h248_termination_state *termination_state;
    bool has_direct_parms; /* streamParm given without Stream= (single implied stream) */
    struct h248_stream_parms direct;
    struct h248_stream *streams;
};

struct h248_signals;
struct h248_events;

enum h248_event_parm_kind {
    H248_EVPARM_OTHER,       /* name parmValue */
    H248_EVPARM_STREAM,      /* Stream=n */
    H248_EVPARM_KEEP_ACTIVE, /* KeepActive */
    H248_EVPARM_EMBED,       /* Embed{[Signals{..}][,] [Events=id{..}]} */
    H248_EVPARM_DIGIT_MAP,   /* DigitMap=name or DigitMap{value} */
    H248_EVPARM_NOTIFY_IMMEDIATE,
    H248_EVPARM_NOTIFY_REGULATED, /* RegulatedNotify[{embedded events}] */
    H248_EVPARM_NOTIFY_NEVER,
    H248_EVPARM_RESET_EVENTS, /* ResetEventsDescriptor */
};

struct h248_event_parm {
    struct h248_event_parm *next;
    enum h248_event_parm_kind kind;
    struct h248_property other;         /* OTHER */
    uint16_t stream;                    /* STREAM */
    struct h248_signals *embed_signals; /* EMBED, may be NULL */
    struct h248_events *embed_events;   /* EMBED or NOTIFY_REGULATED, may be NULL */
    bool digit_map_is_value;            /* DIGIT_MAP: value in braces rather than a name */
    struct h248_str digit_map;          /* DIGIT_MAP: name or raw value */
};

struct h248_requested_event {
    struct h248_requested_event *next;
    struct h248_str name; /* pkgdName */
    struct h248_event_parm *parms;
};

struct h248_events {
    bool has_request_id; /* bare "Events" (no =id{...}) clears the descriptor */
    uint32_t request_id;
    struct h248_requested_event *events;
};

/* Buffered events of an EventBuffer descriptor share the requested-event shape. */
struct h248_event_buffer {
    struct h248_requested_event *events;
};

enum h248_signal_type {
    H248_SIGTYPE_UNSET,
    H248_SIGTYPE_ON_OFF,
    H248_SIGTYPE_TIMEOUT,
    H248_SIGTYPE_BRIEF
};
enum h248_signal_direction {
    H248_SIGDIR_UNSET,
    H248_SIGDIR_EXTERNAL,
    H248_SIGDIR_INTERNAL,
    H248_SIGDIR_BOTH
};

enum h248_notify_reason {
    H248_NC_TIMEOUT = 1 << 0,
    H248_NC_INTERRUPTED_BY_EVENT = 1 << 1,
    H248_NC_INTERRUPTED_BY_NEW_SIGNALS = 1 << 2,
    H248_NC_OTHER_REASON = 1 << 3,
    H248_NC_ITERATION = 1 << 4,
};

struct h248_signal_request {
    struct h248_signal_request *next;
    struct h248_str name; /* pkgdName */
    bool has_stream;
    uint16_t stream;
    enum h248_signal_type type;
    bool has_duration;
    uint16_t duration;
    unsigned notify_completion; /* bitmask of h248_notify_reason; 0 = absent */
    bool keep_active;
    enum h248_signal_direction direction;
    bool has_request_id;
    uint32_t request_id;
    bool has_intersignal_delay;
    uint16_t intersignal_delay;
    struct h248_property *others;
};

struct h248_signal_item {
    struct h248_signal_item *next;
    bool is_list; /* SignalList=id{...} */
    uint16_t list_id;
    struct h248_signal_request *signals; /* one for a request, several for a list */
};

struct h248_signals {
    struct h248_signal_item *items; /* empty Signals{} / bare Signals stops all signals */
};

struct h248_observed_event {
    struct h248_observed_event *next;
    bool has_timestamp;
    char date[9], time[9];         /* 8 digits each, NUL terminated */
    struct h248_str name;          /* pkgdName */
    struct h248_event_parm *parms; /* STREAM or OTHER only */
};

struct h248_observed_events {
    uint32_t request_id;
    struct h248_observed_event *events;
};

struct h248_digit_map {
    bool has_name;
    struct h248_str name;
    bool has_value;
    struct h248_str value; /* text between the braces, trimmed */
};

struct h248_package {
    struct h248_package *next;
    struct h248_str name;
    uint16_t version;
};

/* An item of an Audit{} descriptor, or of ContextAudit{}: a descriptor token, a
 * package/property name, or (v2+) an individual-audit descriptor kept as text. */
enum h248_audit_item_kind { H248_AUDIT_TOKEN, H248_AUDIT_NAME, H248_AUDIT_RAW };

struct h248_audit_item {
    struct h248_audit_item *next;
    enum h248_audit_item_kind kind;
    unsigned token;       /* enum h248_token, for TOKEN */
    struct h248_str text; /* NAME: pkgdName; RAW: balanced text as received */
};

struct h248_audit {
    struct h248_audit_item *items; /* empty Audit{} is legal */
};

struct h248_error_desc {
    uint16_t code;
    bool has_text;
    struct h248_str text;
};

enum h248_sc_method {
    H248_SC_UNSET,
    H248_SC_FAILOVER,
    H248_SC_FORCED,
    H248_SC_GRACEFUL,
    H248_SC_RESTART,
    H248_SC_DISCONNECTED,
    H248_SC_HANDOFF,
    H248_SC_EXTENSION, /* method_ext holds the name */
};

/* ServiceChange parameters; the request and the reply form share this shape. */
struct h248_service_change {
    enum h248_sc_method method;
    struct h248_str method_ext;
    bool has_reason;
    struct h248_value reason;
    bool has_delay;
    uint32_t delay;
    bool has_address;
    bool address_is_port;
    uint16_t address_port;
    struct h248_mid address;
    bool has_profile;
    struct h248_str profile_name;
    unsigned profile_version;
    bool has_version;
    unsigned version;
    bool has_mgc_id;
    struct h248_mid mgc_id;
    bool has_timestamp;
    char date[9], time[9];
    bool incomplete;
    struct h248_property *extensions; /* X-/X+ extension parameters */
    struct h248_audit_item *audit;    /* v3 auditItem in a request, kept in order */
};

enum h248_topology_direction {
    H248_TOPO_BOTHWAY,
    H248_TOPO_ISOLATE,
    H248_TOPO_ONEWAY,
    H248_TOPO_ONEWAY_EXTERNAL,
    H248_TOPO_ONEWAY_BOTH,
};

struct h248_topology_triple {
    struct h248_topology_triple *next;
    struct h248_str from, to; /* termination ids */
    enum h248_topology_direction direction;
    bool has_stream;
    uint16_t stream;
};

/* Descriptors that have no role in this gateway, kept intact as raw balanced text. */
struct h248_raw_descriptor {
    struct h248_str text; /* everything after the token, as received */
};

enum h248_descriptor_kind {
    H248_DESC_MEDIA,
    H248_DESC_EVENTS,
    H248_DESC_EVENT_BUFFER,
    H248_DESC_SIGNALS,
    H248_DESC_DIGIT_MAP,
    H248_DESC_AUDIT,
    H248_DESC_OBSERVED_EVENTS,
    H248_DESC_STATISTICS,
    H248_DESC_PACKAGES,
    H248_DESC_ERROR,
    H248_DESC_SERVICE_CHANGE, /* Services{...} */
    H248_DESC_MODEM,          /* raw */
    H248_DESC_MUX,            /* raw */
    H248_DESC_TOKEN,          /* auditReturnItem: a bare descriptor token in a reply */
};

struct h248_descriptor {
    struct h248_descriptor *next;
    enum h248_descriptor_kind kind;
    union {
        struct h248_media media;
        struct h248_events events;
        struct h248_event_buffer event_buffer;
        struct h248_signals signals;
        struct h248_digit_map digit_map;
        struct h248_audit audit;
        struct h248_observed_events observed;
        struct h248_statistics statistics;
        struct h248_package *packages;
        struct h248_error_desc error;
        struct h248_service_change service_change;
        struct h248_raw_descriptor raw;
        unsigned token; /* enum h248_token */
    } u;
};

enum h248_command_kind {
    H248_CMD_ADD,
    H248_CMD_MOVE,
    H248_CMD_MODIFY,
    H248_CMD_SUBTRACT,
    H248_CMD_AUDIT_VALUE,
    H248_CMD_AUDIT_CAPABILITIES,
    H248_CMD_NOTIFY,
    H248_CMD_SERVICE_CHANGE,
};

struct h248_termination_id {
    struct h248_termination_id *next;
    struct h248_str text; /* "ROOT", "$", "*", or a pathNAME such as "ip/access/7" */
};

/* A command request or a command reply. */
struct h248_command {
    struct h248_command *next;
    enum h248_command_kind kind;
    bool optional;       /* O- (requests) */
    bool wildcard_reply; /* W- */
    bool term_list;      /* ids written as a [a,b] list */
    struct h248_termination_id *terminations;
    struct h248_descriptor *descriptors; /* written in braces when there is at least one */
};

enum h248_context_kind { H248_CTX_ID, H248_CTX_CHOOSE, H248_CTX_ALL, H248_CTX_NULL };

struct h248_context_id {
    enum h248_context_kind kind;
    uint32_t id;
};

/* contextProperties of a request or reply, and ContextAudit. */
struct h248_context_props {
    bool has_priority;
    uint16_t priority;
    bool emergency;
    bool emergency_off;
    bool has_ieps;
    bool ieps;
    struct h248_topology_triple *topology;
    struct h248_property *attributes; /* ContextAttr{...} (v3) */
    bool has_audit;
    struct h248_audit_item *audit; /* ContextAudit{...} */
};

struct h248_action {
    struct h248_action *next;
    struct h248_context_id context;
    struct h248_context_props *props; /* NULL when none */
    struct h248_command *commands;
    struct h248_error_desc *error; /* replies only */
};

enum h248_transaction_kind {
    H248_TRANS_REQUEST,
    H248_TRANS_REPLY,
    H248_TRANS_PENDING,
    H248_TRANS_RESPONSE_ACK,
    H248_TRANS_SEGMENT_REPLY,
};

struct h248_ack_range {
    struct h248_ack_range *next;
    uint32_t first, last; /* first == last for a single id */
};

struct h248_transaction {
    struct h248_transaction *next;
    enum h248_transaction_kind kind;
    uint32_t id;
    bool has_segment;
    uint16_t segment_number;
    bool segmentation_complete;
    bool imm_ack_required;
    struct h248_error_desc *error; /* reply: transaction-level error instead of actions */
    struct h248_action *actions;
    struct h248_ack_range *acks; /* RESPONSE_ACK */
};

struct h248_arena;

struct h248_message {
    struct h248_arena *arena; /* owns the message and everything it points to */
    bool has_auth;
    uint32_t auth_spi, auth_seq;
    struct h248_str auth_data;
    unsigned version;
    struct h248_mid mid;
    struct h248_error_desc *error; /* message-level error instead of transactions */
    struct h248_transaction *transactions;
};

enum h248_style {
    H248_STYLE_COMPACT, /* short tokens, no optional whitespace */
    H248_STYLE_PRETTY,  /* long tokens, one item per line, indented */
};

/* Parses one message. On success *out is owned by the caller (h248_message_free). Returns 0,
 * or a negative errno value with err filled (err may be NULL). limits NULL = defaults. */
int h248_parse_message(const char *data, size_t len, const struct h248_limits *limits,
                       struct h248_message **out, struct h248_parse_error *err);

/* Frees a message and everything allocated in its arena. NULL is allowed. */
void h248_message_free(struct h248_message *msg);

/* Encodes into buf (not NUL terminated). 0 on success; -ENOSPC if cap is too small (*len_out
 * then holds the size needed); -EINVAL if the message holds something not encodable. */
int h248_encode_message(const struct h248_message *msg, enum h248_style style, char *buf,
                        size_t cap, size_t *len_out);

/* Structural equality, as used by the round-trip guarantee parse(encode(x)) == x. */
bool h248_message_equal(const struct h248_message *a, const struct h248_message *b);

/* Building messages (replies, requests): everything is allocated in the message's arena. */
struct h248_message *h248_message_new(void);             /* NULL on allocation failure */
void *h248_alloc(struct h248_message *msg, size_t size); /* zeroed; NULL on failure */
int h248_str_copy(struct h248_message *msg, struct h248_str *dst, const char *src, size_t len);

#endif
