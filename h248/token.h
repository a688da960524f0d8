/* H.248.1 Annex B text tokens: long and short spellings, case-insensitive lookup. */
#ifndef IMS_AGW_H248_TOKEN_H
#define IMS_AGW_H248_TOKEN_H

#include <stddef.h>

#define H248_TOKENS(X)                                                                             \
    X(ADD, "Add", "A")                                                                             \
    X(AUDIT, "Audit", "AT")                                                                        \
    X(AUDIT_CAP, "AuditCapability", "AC")                                                          \
    X(AUDIT_VALUE, "AuditValue", "AV")                                                             \
    X(AUTH, "Authentication", "AU")                                                                \
    X(BOTH, "Both", "B")                                                                           \
    X(BOTHWAY, "Bothway", "BW")                                                                    \
    X(BRIEF, "Brief", "BR")                                                                        \
    X(BUFFER, "Buffer", "BF")                                                                      \
    X(CONTEXT, "Context", "C")                                                                     \
    X(CONTEXT_AUDIT, "ContextAudit", "CA")                                                         \
    X(CONTEXT_ATTR, "ContextAttr", "CT")                                                           \
    X(DIGIT_MAP, "DigitMap", "DM")                                                                 \
    X(DIRECTION, "SPADirection", "SPADI")                                                          \
    X(DISCONNECTED, "Disconnected", "DC")                                                          \
    X(DELAY, "Delay", "DL")                                                                        \
    X(DURATION, "Duration", "DR")                                                                  \
    X(EMBED, "Embed", "EM")                                                                        \
    X(EMERGENCY, "Emergency", "EG")                                                                \
    X(EMERGENCY_OFF, "EmergencyOff", "EGO")                                                        \
    X(ERROR, "Error", "ER")                                                                        \
    X(EVENT_BUFFER, "EventBuffer", "EB")                                                           \
    X(EVENTS, "Events", "E")                                                                       \
    X(EXTERNAL, "External", "EX")                                                                  \
    X(FAILOVER, "Failover", "FL")                                                                  \
    X(FORCED, "Forced", "FO")                                                                      \
    X(GRACEFUL, "Graceful", "GR")                                                                  \
    X(HANDOFF, "HandOff", "HO")                                                                    \
    X(IEPS, "IEPSCall", "IEPS")                                                                    \
    X(IMM_ACK_REQUIRED, "ImmAckRequired", "IA")                                                    \
    X(INACTIVE, "Inactive", "IN")                                                                  \
    X(INTERNAL, "Internal", "IT")                                                                  \
    X(INTERSIGNAL, "Intersignal", "SPAIS")                                                         \
    X(INT_BY_EVENT, "IntByEvent", "IBE")                                                           \
    X(INT_BY_SIG_DESCR, "IntBySigDescr", "IBS")                                                    \
    X(ISOLATE, "Isolate", "IS")                                                                    \
    X(IN_SVC, "InService", "IV")                                                                   \
    X(ITERATION, "Iteration", "IR")                                                                \
    X(KEEP_ACTIVE, "KeepActive", "KA")                                                             \
    X(LOCAL, "Local", "L")                                                                         \
    X(LOCAL_CONTROL, "LocalControl", "O")                                                          \
    X(LOCKSTEP, "LockStep", "SP")                                                                  \
    X(LOOPBACK, "Loopback", "LB")                                                                  \
    X(MEDIA, "Media", "M")                                                                         \
    X(MEGACO, "MEGACO", "!")                                                                       \
    X(SEGMENT, "Segment", "SM")                                                                    \
    X(METHOD, "Method", "MT")                                                                      \
    X(MGC_ID, "MgcIdToTry", "MG")                                                                  \
    X(MODE, "Mode", "MO")                                                                          \
    X(MODIFY, "Modify", "MF")                                                                      \
    X(MODEM, "Modem", "MD")                                                                        \
    X(MOVE, "Move", "MV")                                                                          \
    X(MTP, "MTP", "MTP")                                                                           \
    X(MUX, "Mux", "MX")                                                                            \
    X(NEVER_NOTIFY, "NeverNotify", "NBNN")                                                         \
    X(NOTIFY, "Notify", "N")                                                                       \
    X(NOTIFY_COMPLETION, "NotifyCompletion", "NC")                                                 \
    X(IMMEDIATE_NOTIFY, "ImmediateNotify", "NBIN")                                                 \
    X(REGULATED_NOTIFY, "RegulatedNotify", "NBRN")                                                 \
    X(OBSERVED_EVENTS, "ObservedEvents", "OE")                                                     \
    X(OFF, "OFF", "OFF")                                                                           \
    X(ONEWAY, "Oneway", "OW")                                                                      \
    X(ONEWAY_BOTH, "OnewayBoth", "OWB")                                                            \
    X(ONEWAY_EXTERNAL, "OnewayExternal", "OWE")                                                    \
    X(ON_OFF, "OnOff", "OO")                                                                       \
    X(ON, "ON", "ON")                                                                              \
    X(OTHER_REASON, "OtherReason", "OR")                                                           \
    X(OUT_OF_SVC, "OutOfService", "OS")                                                            \
    X(PACKAGES, "Packages", "PG")                                                                  \
    X(PENDING, "Pending", "PN")                                                                    \
    X(PRIORITY, "Priority", "PR")                                                                  \
    X(PROFILE, "Profile", "PF")                                                                    \
    X(REASON, "Reason", "RE")                                                                      \
    X(RECV_ONLY, "ReceiveOnly", "RC")                                                              \
    X(REPLY, "Reply", "P")                                                                         \
    X(RESET_EVENTS, "ResetEventsDescriptor", "RSE")                                                \
    X(RESTART, "Restart", "RS")                                                                    \
    X(REMOTE, "Remote", "R")                                                                       \
    X(REQUEST_ID, "SPARequestID", "SPARQ")                                                         \
    X(RESERVED_GROUP, "ReservedGroup", "RG")                                                       \
    X(RESERVED_VALUE, "ReservedValue", "RV")                                                       \
    X(SEGMENTATION_COMPLETE, "END", "&")                                                           \
    X(SEND_ONLY, "SendOnly", "SO")                                                                 \
    X(SEND_RECV, "SendReceive", "SR")                                                              \
    X(SERVICES, "Services", "SV")                                                                  \
    X(SERVICE_STATES, "ServiceStates", "SI")                                                       \
    X(SERVICE_CHANGE, "ServiceChange", "SC")                                                       \
    X(SERVICE_CHANGE_ADDRESS, "ServiceChangeAddress", "AD")                                        \
    X(SERVICE_CHANGE_INC, "ServiceChangeInc", "SIC")                                               \
    X(SIGNAL_LIST, "SignalList", "SL")                                                             \
    X(SIGNALS, "Signals", "SG")                                                                    \
    X(SIGNAL_TYPE, "SignalType", "SY")                                                             \
    X(STATISTICS, "Statistics", "SA")                                                              \
    X(STREAM, "Stream", "ST")                                                                      \
    X(SUBTRACT, "Subtract", "S")                                                                   \
    X(TERMINATION_STATE, "TerminationState", "TS")                                                 \
    X(TEST, "Test", "TE")                                                                          \
    X(TIMEOUT, "TimeOut", "TO")                                                                    \
    X(TOPOLOGY, "Topology", "TP")                                                                  \
    X(TRANSACTION, "Transaction", "T")                                                             \
    X(RESPONSE_ACK, "TransactionResponseAck", "K")                                                 \
    X(VERSION, "Version", "V")

enum h248_token {
    H248_TOK_NONE = 0,
#define H248_TOKEN_ENUM(id, long_name, short_name) H248_TOK_##id,
    H248_TOKENS(H248_TOKEN_ENUM)
#undef H248_TOKEN_ENUM
        H248_TOK_COUNT
};

/* The token spelled by name[0..len) in either form, any case (older aliases included);
 * H248_TOK_NONE if it is not a token. */
enum h248_token h248_token_lookup(const char *name, size_t len);

/* The long or the short spelling of a token (static storage). */
const char *h248_token_long(enum h248_token tok);
const char *h248_token_short(enum h248_token tok);

#endif
