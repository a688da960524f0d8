/* STUN (RFC 8489) for the ICE-lite agent of data-channel legs: pure functions over buffers. */
#ifndef IMS_AGW_STUN_H
#define IMS_AGW_STUN_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define AGW_STUN_HEADER_LEN 20
#define AGW_STUN_TID_LEN 12
#define AGW_STUN_MAX_ATTRS 64     /* attributes read from one message, more is malformed */
#define AGW_STUN_MAX_UNKNOWN 8    /* unknown attribute types reported (and answered in a 420) */
#define AGW_STUN_USERNAME_MAX 513 /* bytes */
#define AGW_STUN_REASON_MAX 127   /* bytes of an ERROR-CODE reason phrase we send */
#define AGW_STUN_UFRAG_LEN 8      /* characters made by agw_stun_random_credentials */
#define AGW_STUN_PWD_LEN 24

/* Why a message is dropped without an answer (negative errno values, distinct for counters). */
#define AGW_STUN_ERR_NOT_STUN (-EPROTO)     /* first byte not 0..3, short, or no magic cookie */
#define AGW_STUN_ERR_NOT_EXPECTED (-ENOMSG) /* STUN, but not the Binding class looked for */
#define AGW_STUN_ERR_MALFORMED (-EBADMSG)   /* length field, attribute lengths or layout */
#define AGW_STUN_ERR_FINGERPRINT (-EILSEQ)  /* FINGERPRINT present and wrong */
#define AGW_STUN_ERR_INTEGRITY (-EACCES)    /* a response's MESSAGE-INTEGRITY missing or wrong */

/* STUN error codes a request may earn (answered, never dropped). */
#define AGW_STUN_BAD_REQUEST 400
#define AGW_STUN_UNAUTHORIZED 401
#define AGW_STUN_UNKNOWN_ATTRIBUTE 420
#define AGW_STUN_ROLE_CONFLICT 487

/* A Binding request as an ICE agent sends it. username points into the checked message (or, for
   agw_stun_build_request, into the caller's memory): borrowed, never NUL-terminated. */
struct agw_stun_request {
    uint8_t tid[AGW_STUN_TID_LEN];
    bool authenticated; /* USERNAME and MESSAGE-INTEGRITY verified: sign the answer */
    bool use_candidate;
    bool controlling;     /* ICE-CONTROLLING present */
    bool controlled;      /* ICE-CONTROLLED present */
    uint32_t priority;    /* 0 when PRIORITY is absent */
    uint64_t tie_breaker; /* of ICE-CONTROLLING or ICE-CONTROLLED, whichever came first */
    const char *username;
    size_t username_len;
};

/* RFC 7983 demultiplexing plus the magic cookie: true when p may be a STUN message. */
bool agw_stun_is_stun(const uint8_t *p, size_t len);

/* Checks a Binding request addressed to us (borrows p, which out->username then points into):
   USERNAME "<local_ufrag>:<remote_ufrag>" (any non-empty sender part when remote_ufrag is NULL),
   MESSAGE-INTEGRITY keyed with local_pwd, FINGERPRINT when present. Returns 0 (answer with
   agw_stun_build_success), an AGW_STUN_ERR_* to drop, or a STUN error code to answer with
   agw_stun_build_error: 400, 401, 420 with the types in unknown[], 487 for ICE-CONTROLLED (a lite
   agent is always controlled; a request with no role attribute is accepted). out->tid is set for
   every answer; out->authenticated tells whether the answer must carry MESSAGE-INTEGRITY, and
   whether the other fields of out can be trusted. *n_unknown is 0 unless 420. unknown
   (AGW_STUN_MAX_UNKNOWN entries) and n_unknown may be NULL. -EINVAL for empty local credentials,
   -ENOMEM when OpenSSL fails. */
int agw_stun_check_request(const uint8_t *p, size_t len, const char *local_ufrag,
                           const char *local_pwd, const char *remote_ufrag,
                           struct agw_stun_request *out, uint16_t *unknown, size_t *n_unknown);

/* Writes a Binding success response to from (AF_INET or AF_INET6; an IPv4-mapped IPv6 address is
   answered as IPv4) with XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY keyed with pwd, FINGERPRINT.
   0 and *len; -ENOSPC (with *len the size needed); -EAFNOSUPPORT; -EINVAL. */
int agw_stun_build_success(const uint8_t tid[AGW_STUN_TID_LEN], const struct sockaddr *from,
                           const char *pwd, uint8_t *buf, size_t cap, size_t *len);

/* Writes a Binding error response: ERROR-CODE (code 300..699, reason NULL for the standard phrase,
   at most AGW_STUN_REASON_MAX bytes), UNKNOWN-ATTRIBUTES when n_unknown > 0, MESSAGE-INTEGRITY
   when pwd is not NULL (only for authenticated requests), FINGERPRINT. 0; -ENOSPC; -EINVAL. */
int agw_stun_build_error(const uint8_t tid[AGW_STUN_TID_LEN], unsigned code, const char *reason,
                         const char *pwd, const uint16_t *unknown, size_t n_unknown, uint8_t *buf,
                         size_t cap, size_t *len);

/* Writes a Binding request as a full agent sends it (for tools and tests): USERNAME from req
   (omitted when empty), PRIORITY, USE-CANDIDATE, ICE-CONTROLLING and ICE-CONTROLLED as flagged,
   MESSAGE-INTEGRITY keyed with the receiver's pwd (omitted when NULL), FINGERPRINT.
   req->authenticated is ignored. 0; -ENOSPC (with *len the size needed); -EINVAL. */
int agw_stun_build_request(const struct agw_stun_request *req, const char *pwd, uint8_t *buf,
                           size_t cap, size_t *len);

/* Reads a Binding success response (borrows p): FINGERPRINT checked when present,
   MESSAGE-INTEGRITY required and checked when pwd is not NULL. Gives the transaction id and the
   XOR-MAPPED-ADDRESS. 0, an AGW_STUN_ERR_*, -ENOENT without XOR-MAPPED-ADDRESS. */
int agw_stun_parse_success(const uint8_t *p, size_t len, const char *pwd,
                           uint8_t tid[AGW_STUN_TID_LEN], struct sockaddr_storage *mapped);

/* Fresh ICE credentials from the ice-char set (ALPHA / DIGIT / "+" / "/"), NUL-terminated:
   AGW_STUN_UFRAG_LEN and AGW_STUN_PWD_LEN characters. 0, or -EIO when no randomness. */
int agw_stun_random_credentials(char ufrag[AGW_STUN_UFRAG_LEN + 1], char pwd[AGW_STUN_PWD_LEN + 1]);

#endif
