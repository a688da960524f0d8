/* libFuzzer harness for agw/stun.c: each input is checked as a Binding request as it came and
 * again with its MESSAGE-INTEGRITY and FINGERPRINT made right (to reach what lies past
 * authentication), and read as a success response; what is accepted must answer and re-encode to
 * the same reading. */
#include "agw/stun.h"

#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* RFC 5769's credentials, so that its sample request is a seed. */
#define UFRAG "evtj"
#define PEER "h6vY"
#define PWD "VOkJxbRl1RmTxUk/WvJxBt"
#define FIX_MAX 4096 /* inputs re-signed; longer ones are only checked as they came */

static void fail(const char *what, int rc, size_t size)
{
    fprintf(stderr, "fuzz_stun: %s (rc %d, input of %zu bytes)\n", what, rc, size);
    abort();
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void wr16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void wr32(uint8_t *p, uint32_t v)
{
    wr16(p, v >> 16);
    wr16(p + 2, v & 0xFFFF);
}

static uint32_t crc32_bitwise(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

/* Makes the length field, the first MESSAGE-INTEGRITY and every FINGERPRINT right, walking the
   attributes as far as they go. */
static void fix_up(uint8_t *p, size_t size)
{
    static uint8_t scratch[FIX_MAX];
    wr16(p + 2, size - 20);
    bool signed_once = false;
    for (size_t off = 20; off + 4 <= size;) {
        uint16_t type = rd16(p + off), alen = rd16(p + off + 2);
        if (alen > size - off - 4)
            break;
        if (type == 0x0008 && alen == 20 && !signed_once) {
            memcpy(scratch, p, off);
            wr16(scratch + 2, off + 24 - 20);
            unsigned int n = 0;
            if (HMAC(EVP_sha1(), PWD, (int)strlen(PWD), scratch, off, p + off + 4, &n) == NULL)
                abort();
            signed_once = true;
        } else if (type == 0x8028 && alen == 4) {
            wr32(p + off + 4, crc32_bitwise(p, off) ^ 0x5354554Eu);
        }
        off += 4 + ((alen + 3u) & ~3u);
    }
}

static bool allowed(int rc)
{
    switch (rc) {
    case 0:
    case AGW_STUN_ERR_NOT_STUN:
    case AGW_STUN_ERR_NOT_EXPECTED:
    case AGW_STUN_ERR_MALFORMED:
    case AGW_STUN_ERR_FINGERPRINT:
    case AGW_STUN_BAD_REQUEST:
    case AGW_STUN_UNAUTHORIZED:
    case AGW_STUN_UNKNOWN_ATTRIBUTE:
    case AGW_STUN_ROLE_CONFLICT:
        return true;
    default:
        return false;
    }
}

static void same_request(const struct agw_stun_request *a, const struct agw_stun_request *b,
                         size_t size)
{
    if (memcmp(a->tid, b->tid, sizeof(a->tid)) != 0 || a->use_candidate != b->use_candidate ||
        a->controlling != b->controlling || a->controlled != b->controlled ||
        a->priority != b->priority || a->tie_breaker != b->tie_breaker ||
        a->username_len != b->username_len ||
        memcmp(a->username, b->username, a->username_len) != 0)
        fail("rebuilt request reads differently", 0, size);
}

/* A success answer to the request, read back: to an IPv6 address taken from the input's cookie
   and tid, or to the IPv4 address in its last four bytes, directly or IPv4-mapped. */
static void answer_success(const struct agw_stun_request *r, const uint8_t *data, size_t size)
{
    struct sockaddr_storage from, got;
    struct sockaddr_in *in = (struct sockaddr_in *)&from;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&from;
    uint8_t v4[4];
    memcpy(v4, data + 16, 4);
    uint16_t port = htons(r->priority & 0xFFFF);
    memset(&from, 0, sizeof(from));
    if (r->tid[0] % 3 == 0) {
        in->sin_family = AF_INET;
        in->sin_port = port;
        memcpy(&in->sin_addr, v4, 4);
    } else {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = port;
        memcpy(&in6->sin6_addr, data + 4, 16);
        if (r->tid[0] % 3 == 1) {
            memset(&in6->sin6_addr, 0, 10);
            memset(in6->sin6_addr.s6_addr + 10, 0xFF, 2);
        }
    }
    bool want_v4 = from.ss_family == AF_INET || IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr);

    uint8_t buf[128], tid[AGW_STUN_TID_LEN];
    size_t len = 0;
    int rc =
        agw_stun_build_success(r->tid, (const struct sockaddr *)&from, PWD, buf, sizeof(buf), &len);
    if (rc != 0)
        fail("success answer not built", rc, size);
    rc = agw_stun_parse_success(buf, len, PWD, tid, &got);
    if (rc != 0 || memcmp(tid, r->tid, sizeof(tid)) != 0)
        fail("success answer does not read back", rc, size);
    const struct sockaddr_in *got4 = (const struct sockaddr_in *)&got;
    const struct sockaddr_in6 *got6 = (const struct sockaddr_in6 *)&got;
    if (want_v4 ? got.ss_family != AF_INET || got4->sin_port != port ||
                      memcmp(&got4->sin_addr, v4, 4) != 0
                : got.ss_family != AF_INET6 || got6->sin6_port != port ||
                      memcmp(&got6->sin6_addr, &in6->sin6_addr, 16) != 0)
        fail("mapped address differs", 0, size);
}

static void check_one(const uint8_t *p, size_t size, const char *remote)
{
    struct agw_stun_request r;
    uint16_t unknown[AGW_STUN_MAX_UNKNOWN];
    size_t n = 0;
    int rc = agw_stun_check_request(p, size, UFRAG, PWD, remote, &r, unknown, &n);
    if (!allowed(rc))
        fail("unexpected result", rc, size);
    if (!agw_stun_is_stun(p, size) && rc != AGW_STUN_ERR_NOT_STUN)
        fail("not STUN, yet read", rc, size);
    if (rc < 0)
        return;
    if (memcmp(r.tid, p + 8, AGW_STUN_TID_LEN) != 0)
        fail("transaction id not given", rc, size);
    if ((rc == 0 || rc == AGW_STUN_UNKNOWN_ATTRIBUTE || rc == AGW_STUN_ROLE_CONFLICT) &&
        !r.authenticated)
        fail("accepted unauthenticated", rc, size);
    if ((rc == AGW_STUN_UNKNOWN_ATTRIBUTE) != (n > 0) || n > AGW_STUN_MAX_UNKNOWN)
        fail("unknown attributes and 420 disagree", rc, size);
    for (size_t i = 0; i < n; i++)
        if (unknown[i] >= 0x8000)
            fail("comprehension-optional attribute reported unknown", rc, size);
    if (r.username_len > 0 && ((const uint8_t *)r.username < p ||
                               (const uint8_t *)r.username + r.username_len > p + size))
        fail("username outside the message", rc, size);
    if (r.authenticated) {
        if (r.username_len < strlen(UFRAG) + 2 || memcmp(r.username, UFRAG ":", 5) != 0)
            fail("authenticated with another ufrag", rc, size);
        if (remote != NULL && (r.username_len != 9 || memcmp(r.username + 5, PEER, 4) != 0))
            fail("authenticated with another sender", rc, size);
    }

    if (rc > 0) {
        uint8_t buf[256];
        size_t len = 0;
        int brc = agw_stun_build_error(r.tid, (unsigned)rc, NULL, r.authenticated ? PWD : NULL,
                                       unknown, n, buf, sizeof(buf), &len);
        if (brc != 0 || !agw_stun_is_stun(buf, len))
            fail("error answer not built", brc, size);
    } else {
        answer_success(&r, p, size);
    }

    /* What was read, built again by the codec, reads the same. */
    if (r.authenticated) {
        uint8_t buf[1024];
        size_t len = 0;
        int brc = agw_stun_build_request(&r, PWD, buf, sizeof(buf), &len);
        if (brc != 0)
            fail("request not rebuilt", brc, size);
        struct agw_stun_request again;
        brc = agw_stun_check_request(buf, len, UFRAG, PWD, remote, &again, NULL, NULL);
        if (brc != (r.controlled ? AGW_STUN_ROLE_CONFLICT : 0))
            fail("rebuilt request refused", brc, size);
        same_request(&r, &again, size);
    }
}

static void read_response(const uint8_t *p, size_t size, const char *pwd)
{
    uint8_t tid[AGW_STUN_TID_LEN];
    struct sockaddr_storage ss;
    int rc = agw_stun_parse_success(p, size, pwd, tid, &ss);
    if (rc != 0)
        return;
    if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
        fail("mapped address of no family", rc, size);
    if (memcmp(tid, p + 8, sizeof(tid)) != 0)
        fail("transaction id not given", rc, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so that a read past the end is seen. */
    uint8_t *p = malloc(size > 0 ? size : 1);
    if (p == NULL)
        return 0;
    memcpy(p, data, size);
    check_one(p, size, NULL);
    read_response(p, size, PWD);
    read_response(p, size, NULL);
    if (size >= 20 && size <= FIX_MAX && size - 20 <= 0xFFFF) {
        fix_up(p, size);
        check_one(p, size, NULL);
        check_one(p, size, PEER);
        read_response(p, size, PWD);
    }
    free(p);
    return 0;
}
