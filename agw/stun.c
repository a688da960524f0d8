/* STUN Binding for an ICE-lite agent: requests checked and answered, responses read (RFC 8489,
   RFC 8445 §7.3, RFC 7675). No sockets and no loop: the data-channel legs move the bytes. */
#include "agw/stun.h"

#include <netinet/in.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>

#define MAGIC_COOKIE 0x2112A442u
#define FINGERPRINT_XOR 0x5354554Eu
#define MI_LEN 20 /* HMAC-SHA1 */

enum {
    TYPE_BINDING_REQUEST = 0x0001,
    TYPE_BINDING_SUCCESS = 0x0101,
    TYPE_BINDING_ERROR = 0x0111,
};

enum {
    ATTR_MAPPED_ADDRESS = 0x0001,
    ATTR_USERNAME = 0x0006,
    ATTR_MESSAGE_INTEGRITY = 0x0008,
    ATTR_ERROR_CODE = 0x0009,
    ATTR_UNKNOWN_ATTRIBUTES = 0x000A,
    ATTR_REALM = 0x0014,
    ATTR_NONCE = 0x0015,
    ATTR_XOR_MAPPED_ADDRESS = 0x0020,
    ATTR_PRIORITY = 0x0024,
    ATTR_USE_CANDIDATE = 0x0025,
    ATTR_FINGERPRINT = 0x8028,
    ATTR_ICE_CONTROLLED = 0x8029,
    ATTR_ICE_CONTROLLING = 0x802A,
};

struct stun_attr {
    uint16_t type;
    uint16_t len;
    size_t off; /* of the value */
};

/* A message whose layout has been checked: the attributes before MESSAGE-INTEGRITY (those after
   it are ignored, RFC 8489 §14.5), and where MESSAGE-INTEGRITY and FINGERPRINT start. */
struct stun_msg {
    const uint8_t *p;
    size_t len;
    uint16_t type;
    size_t n_attrs;
    struct stun_attr attrs[AGW_STUN_MAX_ATTRS];
    size_t mi_off; /* of the attribute header; 0 when absent */
    uint16_t mi_len;
    size_t fp_off; /* likewise */
};

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
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
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

static size_t pad4(size_t n)
{
    return (n + 3) & ~(size_t)3;
}

/* CRC-32 of IEEE 802.3 (zlib's crc32), four bits at a time: a 16-entry table needs no set-up,
   and messages are a few hundred bytes. */
static uint32_t crc32_ieee(const uint8_t *p, size_t n)
{
    static const uint32_t nibble[16] = {
        0x00000000, 0x1DB71064, 0x3B6E20C8, 0x26D930AC, 0x76DC4190, 0x6B6B51F4,
        0x4DB26158, 0x5005713C, 0xEDB88320, 0xF00F9344, 0xD6D6A3E8, 0xCB61B38C,
        0x9B64C2B0, 0x86D3D2D4, 0xA00AE278, 0xBDBDF21C,
    };
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ nibble[crc & 0x0F];
        crc = (crc >> 4) ^ nibble[crc & 0x0F];
    }
    return crc ^ 0xFFFFFFFFu;
}

/* OpenSSL 3 spends more on looking HMAC up than on a short MAC: looked up once per process,
   shared by the threads (an EVP_MAC is read-only once fetched). */
static EVP_MAC *hmac_alg;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_fetch(void)
{
    hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

/* HMAC-SHA1 of hdr (the header, its length field already adjusted) followed by body. */
static int hmac_sha1(const char *key, const uint8_t hdr[AGW_STUN_HEADER_LEN], const uint8_t *body,
                     size_t body_len, uint8_t mac[MI_LEN])
{
    char digest[] = "SHA1";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    int rc = -ENOMEM;
    size_t n = 0;
    pthread_once(&hmac_once, hmac_fetch);
    EVP_MAC_CTX *ctx = hmac_alg != NULL ? EVP_MAC_CTX_new(hmac_alg) : NULL;
    if (ctx == NULL)
        return rc;
    if (EVP_MAC_init(ctx, (const unsigned char *)key, strlen(key), params) == 1 &&
        EVP_MAC_update(ctx, hdr, AGW_STUN_HEADER_LEN) == 1 &&
        EVP_MAC_update(ctx, body, body_len) == 1 && EVP_MAC_final(ctx, mac, &n, MI_LEN) == 1 &&
        n == MI_LEN)
        rc = 0;
    EVP_MAC_CTX_free(ctx);
    return rc;
}

/* The MAC a MESSAGE-INTEGRITY at mi_off must hold: over the bytes before it, with the length
   field counting up to the end of MESSAGE-INTEGRITY (RFC 8489 §14.5). */
static int integrity_of(const uint8_t *p, size_t mi_off, const char *key, uint8_t mac[MI_LEN])
{
    uint8_t hdr[AGW_STUN_HEADER_LEN];
    memcpy(hdr, p, sizeof(hdr));
    put16(hdr + 2, (uint16_t)(mi_off + 4 + MI_LEN - AGW_STUN_HEADER_LEN));
    return hmac_sha1(key, hdr, p + AGW_STUN_HEADER_LEN, mi_off - AGW_STUN_HEADER_LEN, mac);
}

/* 0 when the message's MESSAGE-INTEGRITY verifies with key, 1 when it does not, or -ENOMEM. */
static int integrity_check(const struct stun_msg *m, const char *key)
{
    uint8_t mac[MI_LEN];
    int rc = integrity_of(m->p, m->mi_off, key, mac);
    if (rc < 0)
        return rc;
    return CRYPTO_memcmp(mac, m->p + m->mi_off + 4, MI_LEN) == 0 ? 0 : 1;
}

/* FINGERPRINT is last, so the length field already counts it (RFC 8489 §14.7). */
static bool fingerprint_ok(const struct stun_msg *m)
{
    return (crc32_ieee(m->p, m->fp_off) ^ FINGERPRINT_XOR) == get32(m->p + m->fp_off + 4);
}

bool agw_stun_is_stun(const uint8_t *p, size_t len)
{
    return p != NULL && len >= AGW_STUN_HEADER_LEN && p[0] <= 3 && get32(p + 4) == MAGIC_COOKIE;
}

/* Checks the framing of one datagram and indexes its attributes; reads nothing past len. */
static int stun_walk(const uint8_t *p, size_t len, struct stun_msg *m)
{
    if (!agw_stun_is_stun(p, len))
        return AGW_STUN_ERR_NOT_STUN;
    size_t body = get16(p + 2);
    if (body % 4 != 0 || body != len - AGW_STUN_HEADER_LEN)
        return AGW_STUN_ERR_MALFORMED;
    m->p = p;
    m->len = len;
    m->type = get16(p);
    m->n_attrs = 0;
    m->mi_off = 0;
    m->mi_len = 0;
    m->fp_off = 0;
    size_t count = 0;
    for (size_t off = AGW_STUN_HEADER_LEN; off < len;) {
        if (++count > AGW_STUN_MAX_ATTRS || len - off < 4 || m->fp_off != 0)
            return AGW_STUN_ERR_MALFORMED;
        uint16_t type = get16(p + off), alen = get16(p + off + 2);
        if (len - off - 4 < pad4(alen))
            return AGW_STUN_ERR_MALFORMED;
        if (type == ATTR_FINGERPRINT) {
            if (alen != 4)
                return AGW_STUN_ERR_MALFORMED;
            m->fp_off = off;
        } else if (m->mi_off == 0) {
            if (type == ATTR_MESSAGE_INTEGRITY) {
                m->mi_off = off;
                m->mi_len = alen;
            } else {
                m->attrs[m->n_attrs++] = (struct stun_attr){type, alen, off + 4};
            }
        }
        off += 4 + pad4(alen);
    }
    return 0;
}

/* Comprehension-required types that are known but have no business in a Binding request: ignored
   (RFC 8489 §6.3). Any other unhandled type below 0x8000 earns a 420. */
static bool attr_ignored(uint16_t type)
{
    switch (type) {
    case ATTR_MAPPED_ADDRESS:
    case ATTR_ERROR_CODE:
    case ATTR_UNKNOWN_ATTRIBUTES:
    case ATTR_REALM:
    case ATTR_NONCE:
    case ATTR_XOR_MAPPED_ADDRESS:
        return true;
    default:
        return type >= 0x8000;
    }
}

static bool username_matches(const struct agw_stun_request *r, const char *local_ufrag,
                             const char *remote_ufrag)
{
    size_t l = strlen(local_ufrag);
    const char *u = r->username;
    if (r->username_len < l + 2 || memcmp(u, local_ufrag, l) != 0 || u[l] != ':')
        return false;
    if (remote_ufrag == NULL)
        return true;
    size_t rl = strlen(remote_ufrag);
    return r->username_len == l + 1 + rl && memcmp(u + l + 1, remote_ufrag, rl) == 0;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

/* Fills out from the attributes; true when a known attribute has a value of the wrong size. */
static bool read_request_attrs(const struct stun_msg *m, struct agw_stun_request *out,
                               const struct stun_attr **user, uint16_t *unknown, size_t *n_unknown)
{
    bool bad = false, seen_priority = false, seen_role = false;
    for (size_t i = 0; i < m->n_attrs; i++) {
        const struct stun_attr *a = &m->attrs[i];
        const uint8_t *v = m->p + a->off;
        switch (a->type) {
        case ATTR_USERNAME:
            if (*user == NULL)
                *user = a;
            break;
        case ATTR_PRIORITY:
            if (a->len != 4)
                bad = true;
            else if (!seen_priority)
                out->priority = get32(v);
            seen_priority = true;
            break;
        case ATTR_USE_CANDIDATE:
            bad |= a->len != 0;
            out->use_candidate = true;
            break;
        case ATTR_ICE_CONTROLLED:
        case ATTR_ICE_CONTROLLING:
            if (a->len != 8) {
                bad = true;
                break;
            }
            if (a->type == ATTR_ICE_CONTROLLED)
                out->controlled = true;
            else
                out->controlling = true;
            if (!seen_role)
                out->tie_breaker = get64(v);
            seen_role = true;
            break;
        default:
            if (attr_ignored(a->type))
                break;
            size_t j = 0;
            while (j < *n_unknown && unknown[j] != a->type)
                j++;
            if (j == *n_unknown && j < AGW_STUN_MAX_UNKNOWN)
                unknown[(*n_unknown)++] = a->type;
            break;
        }
    }
    return bad;
}

int agw_stun_check_request(const uint8_t *p, size_t len, const char *local_ufrag,
                           const char *local_pwd, const char *remote_ufrag,
                           struct agw_stun_request *out, uint16_t *unknown, size_t *n_unknown)
{
    uint16_t unknown_local[AGW_STUN_MAX_UNKNOWN];
    size_t n_found = 0;
    if (unknown == NULL)
        unknown = unknown_local;
    if (n_unknown != NULL)
        *n_unknown = 0;
    memset(out, 0, sizeof(*out));
    if (local_ufrag == NULL || local_ufrag[0] == '\0' || local_pwd == NULL || local_pwd[0] == '\0')
        return -EINVAL;

    struct stun_msg m;
    int rc = stun_walk(p, len, &m);
    if (rc < 0)
        return rc;
    if (m.type != TYPE_BINDING_REQUEST)
        return AGW_STUN_ERR_NOT_EXPECTED;
    if (m.fp_off != 0 && !fingerprint_ok(&m))
        return AGW_STUN_ERR_FINGERPRINT;
    memcpy(out->tid, p + 8, AGW_STUN_TID_LEN);

    const struct stun_attr *user = NULL;
    bool bad_value = read_request_attrs(&m, out, &user, unknown, &n_found);
    /* RFC 8489 §9.1.3: no credentials is a bad request, wrong ones are unauthorized. */
    if (user == NULL || m.mi_off == 0 || user->len > AGW_STUN_USERNAME_MAX || m.mi_len != MI_LEN)
        return AGW_STUN_BAD_REQUEST;
    out->username = (const char *)p + user->off;
    out->username_len = user->len;
    if (!username_matches(out, local_ufrag, remote_ufrag))
        return AGW_STUN_UNAUTHORIZED;
    rc = integrity_check(&m, local_pwd);
    if (rc < 0)
        return rc;
    if (rc > 0)
        return AGW_STUN_UNAUTHORIZED;
    out->authenticated = true;

    /* Authenticated from here on: the answers are signed. RFC 8489 §6.3 looks for unknown
       attributes once the authentication checks are done. */
    if (n_found > 0) {
        if (n_unknown != NULL)
            *n_unknown = n_found;
        return AGW_STUN_UNKNOWN_ATTRIBUTE;
    }
    if (bad_value)
        return AGW_STUN_BAD_REQUEST;
    /* RFC 8445 §7.3.1.1: a lite agent cannot take the controlling role, so the peer must. */
    if (out->controlled)
        return AGW_STUN_ROLE_CONFLICT;
    return 0;
}

/* Appends one attribute header and value (zero padding) at *off; the caller checked the room. */
static void put_attr(uint8_t *buf, size_t *off, uint16_t type, const void *value, size_t n)
{
    put16(buf + *off, type);
    put16(buf + *off + 2, (uint16_t)n);
    if (n > 0)
        memcpy(buf + *off + 4, value, n);
    memset(buf + *off + 4 + n, 0, pad4(n) - n);
    *off += 4 + pad4(n);
}

static void put_header(uint8_t *buf, uint16_t type, const uint8_t tid[AGW_STUN_TID_LEN])
{
    put16(buf, type);
    put16(buf + 2, 0);
    put32(buf + 4, MAGIC_COOKIE);
    memcpy(buf + 8, tid, AGW_STUN_TID_LEN);
}

/* Appends MESSAGE-INTEGRITY (when pwd is set) and FINGERPRINT, each computed with the length
   field counting up to itself. The caller reserved 24 + 8 bytes. */
static int put_trailer(uint8_t *buf, size_t *off, const char *pwd)
{
    if (pwd != NULL) {
        uint8_t mac[MI_LEN];
        int rc = integrity_of(buf, *off, pwd, mac);
        if (rc < 0)
            return rc;
        put_attr(buf, off, ATTR_MESSAGE_INTEGRITY, mac, sizeof(mac));
    }
    put16(buf + 2, (uint16_t)(*off + 8 - AGW_STUN_HEADER_LEN));
    uint8_t fp[4];
    put32(fp, crc32_ieee(buf, *off) ^ FINGERPRINT_XOR);
    put_attr(buf, off, ATTR_FINGERPRINT, fp, sizeof(fp));
    return 0;
}

static size_t trailer_len(const char *pwd)
{
    return (pwd != NULL ? 4 + MI_LEN : 0) + 8;
}

/* XOR-MAPPED-ADDRESS value for sa (RFC 8489 §14.2); its length, or 0 for another family. */
static size_t xor_address(const struct sockaddr *sa, const uint8_t tid[AGW_STUN_TID_LEN],
                          uint8_t v[20])
{
    uint8_t mask[16];
    put32(mask, MAGIC_COOKIE);
    memcpy(mask + 4, tid, AGW_STUN_TID_LEN);
    const uint8_t *addr;
    size_t n;
    uint16_t port;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        addr = (const uint8_t *)&in->sin_addr;
        n = 4;
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        addr = in6->sin6_addr.s6_addr;
        n = 16;
        port = ntohs(in6->sin6_port);
        /* A dual-stack socket sees IPv4 peers as ::ffff:a.b.c.d; they know themselves as IPv4. */
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            addr += 12;
            n = 4;
        }
    } else {
        return 0;
    }
    v[0] = 0;
    v[1] = n == 4 ? 1 : 2;
    put16(v + 2, port ^ (uint16_t)(MAGIC_COOKIE >> 16));
    for (size_t i = 0; i < n; i++)
        v[4 + i] = addr[i] ^ mask[i];
    return 4 + n;
}

int agw_stun_build_success(const uint8_t tid[AGW_STUN_TID_LEN], const struct sockaddr *from,
                           const char *pwd, uint8_t *buf, size_t cap, size_t *len)
{
    if (tid == NULL || from == NULL || pwd == NULL || pwd[0] == '\0' || len == NULL)
        return -EINVAL;
    uint8_t xma[20];
    size_t xma_len = xor_address(from, tid, xma);
    if (xma_len == 0)
        return -EAFNOSUPPORT;
    size_t need = AGW_STUN_HEADER_LEN + 4 + xma_len + trailer_len(pwd);
    *len = need;
    if (buf == NULL || cap < need)
        return -ENOSPC;
    size_t off = AGW_STUN_HEADER_LEN;
    put_header(buf, TYPE_BINDING_SUCCESS, tid);
    put_attr(buf, &off, ATTR_XOR_MAPPED_ADDRESS, xma, xma_len);
    return put_trailer(buf, &off, pwd);
}

static const char *reason_phrase(unsigned code)
{
    switch (code) {
    case AGW_STUN_BAD_REQUEST:
        return "Bad Request";
    case AGW_STUN_UNAUTHORIZED:
        return "Unauthorized";
    case AGW_STUN_UNKNOWN_ATTRIBUTE:
        return "Unknown Attribute";
    case AGW_STUN_ROLE_CONFLICT:
        return "Role Conflict";
    case 500:
        return "Server Error";
    default:
        return "";
    }
}

int agw_stun_build_error(const uint8_t tid[AGW_STUN_TID_LEN], unsigned code, const char *reason,
                         const char *pwd, const uint16_t *unknown, size_t n_unknown, uint8_t *buf,
                         size_t cap, size_t *len)
{
    if (tid == NULL || len == NULL || code < 300 || code > 699 ||
        (n_unknown > 0 && unknown == NULL) || n_unknown > AGW_STUN_MAX_ATTRS ||
        (pwd != NULL && pwd[0] == '\0'))
        return -EINVAL;
    if (reason == NULL)
        reason = reason_phrase(code);
    size_t reason_len = strlen(reason);
    if (reason_len > AGW_STUN_REASON_MAX)
        return -EINVAL;
    size_t need = AGW_STUN_HEADER_LEN + 4 + pad4(4 + reason_len) + trailer_len(pwd);
    if (n_unknown > 0)
        need += 4 + pad4(2 * n_unknown);
    *len = need;
    if (buf == NULL || cap < need)
        return -ENOSPC;

    uint8_t v[4 + AGW_STUN_REASON_MAX];
    v[0] = 0;
    v[1] = 0;
    v[2] = (uint8_t)(code / 100);
    v[3] = (uint8_t)(code % 100);
    memcpy(v + 4, reason, reason_len);
    size_t off = AGW_STUN_HEADER_LEN;
    put_header(buf, TYPE_BINDING_ERROR, tid);
    put_attr(buf, &off, ATTR_ERROR_CODE, v, 4 + reason_len);
    if (n_unknown > 0) {
        uint8_t types[2 * AGW_STUN_MAX_ATTRS];
        for (size_t i = 0; i < n_unknown; i++)
            put16(types + 2 * i, unknown[i]);
        put_attr(buf, &off, ATTR_UNKNOWN_ATTRIBUTES, types, 2 * n_unknown);
    }
    return put_trailer(buf, &off, pwd);
}

int agw_stun_build_request(const struct agw_stun_request *req, const char *pwd, uint8_t *buf,
                           size_t cap, size_t *len)
{
    if (req == NULL || len == NULL || req->username_len > AGW_STUN_USERNAME_MAX ||
        (req->username_len > 0 && req->username == NULL) || (pwd != NULL && pwd[0] == '\0'))
        return -EINVAL;
    size_t need = AGW_STUN_HEADER_LEN + 8 + trailer_len(pwd);
    if (req->username_len > 0)
        need += 4 + pad4(req->username_len);
    need += req->use_candidate ? 4 : 0;
    need += req->controlling ? 12 : 0;
    need += req->controlled ? 12 : 0;
    *len = need;
    if (buf == NULL || cap < need)
        return -ENOSPC;

    size_t off = AGW_STUN_HEADER_LEN;
    uint8_t v[8];
    put_header(buf, TYPE_BINDING_REQUEST, req->tid);
    if (req->username_len > 0)
        put_attr(buf, &off, ATTR_USERNAME, req->username, req->username_len);
    put32(v, req->priority);
    put_attr(buf, &off, ATTR_PRIORITY, v, 4);
    if (req->use_candidate)
        put_attr(buf, &off, ATTR_USE_CANDIDATE, NULL, 0);
    put32(v, (uint32_t)(req->tie_breaker >> 32));
    put32(v + 4, (uint32_t)req->tie_breaker);
    if (req->controlling)
        put_attr(buf, &off, ATTR_ICE_CONTROLLING, v, 8);
    if (req->controlled)
        put_attr(buf, &off, ATTR_ICE_CONTROLLED, v, 8);
    return put_trailer(buf, &off, pwd);
}

/* Reads an XOR-MAPPED-ADDRESS value into out; false when malformed. */
static bool read_xor_address(const uint8_t *v, size_t n, const uint8_t *tid,
                             struct sockaddr_storage *out)
{
    /* The first byte is reserved and ignored (RFC 8489 §14.1). */
    if (n < 4)
        return false;
    uint8_t mask[16];
    put32(mask, MAGIC_COOKIE);
    memcpy(mask + 4, tid, AGW_STUN_TID_LEN);
    uint16_t port = get16(v + 2) ^ (uint16_t)(MAGIC_COOKIE >> 16);
    memset(out, 0, sizeof(*out));
    if (v[1] == 1 && n == 8) {
        struct sockaddr_in *in = (struct sockaddr_in *)out;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        uint8_t *a = (uint8_t *)&in->sin_addr;
        for (size_t i = 0; i < 4; i++)
            a[i] = v[4 + i] ^ mask[i];
        return true;
    }
    if (v[1] == 2 && n == 20) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        for (size_t i = 0; i < 16; i++)
            in6->sin6_addr.s6_addr[i] = v[4 + i] ^ mask[i];
        return true;
    }
    return false;
}

int agw_stun_parse_success(const uint8_t *p, size_t len, const char *pwd,
                           uint8_t tid[AGW_STUN_TID_LEN], struct sockaddr_storage *mapped)
{
    if (tid == NULL || mapped == NULL || (pwd != NULL && pwd[0] == '\0'))
        return -EINVAL;
    struct stun_msg m;
    int rc = stun_walk(p, len, &m);
    if (rc < 0)
        return rc;
    if (m.type != TYPE_BINDING_SUCCESS)
        return AGW_STUN_ERR_NOT_EXPECTED;
    if (m.fp_off != 0 && !fingerprint_ok(&m))
        return AGW_STUN_ERR_FINGERPRINT;
    if (pwd != NULL) {
        if (m.mi_off == 0 || m.mi_len != MI_LEN)
            return AGW_STUN_ERR_INTEGRITY;
        rc = integrity_check(&m, pwd);
        if (rc < 0)
            return rc;
        if (rc > 0)
            return AGW_STUN_ERR_INTEGRITY;
    }
    memcpy(tid, p + 8, AGW_STUN_TID_LEN);
    for (size_t i = 0; i < m.n_attrs; i++) {
        const struct stun_attr *a = &m.attrs[i];
        if (a->type == ATTR_XOR_MAPPED_ADDRESS)
            return read_xor_address(p + a->off, a->len, p + 8, mapped) ? 0 : AGW_STUN_ERR_MALFORMED;
    }
    return -ENOENT;
}

int agw_stun_random_credentials(char ufrag[AGW_STUN_UFRAG_LEN + 1], char pwd[AGW_STUN_PWD_LEN + 1])
{
    /* 64 ice-chars: six random bits pick one without bias. */
    static const char ice_chars[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint8_t r[AGW_STUN_UFRAG_LEN + AGW_STUN_PWD_LEN];
    if (RAND_bytes(r, sizeof(r)) != 1)
        return -EIO;
    for (size_t i = 0; i < AGW_STUN_UFRAG_LEN; i++)
        ufrag[i] = ice_chars[r[i] & 63];
    for (size_t i = 0; i < AGW_STUN_PWD_LEN; i++)
        pwd[i] = ice_chars[r[AGW_STUN_UFRAG_LEN + i] & 63];
    ufrag[AGW_STUN_UFRAG_LEN] = '\0';
    pwd[AGW_STUN_PWD_LEN] = '\0';
    OPENSSL_cleanse(r, sizeof(r));
    return 0;
}
