/* Check suite for agw/stun.c: RFC 5769 vectors, ICE-lite request checks and their answers,
   framing attacks (every truncation, lying lengths), address round trips, ICE credentials. */
#include "agw/stun.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

/* RFC 5769 §2.1-2.3, laid out by attribute. The padding of SOFTWARE and USERNAME is 0x20 in the
   RFC, which the MAC and the CRC cover. */
static const uint8_t rfc_request[] = {
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, /* Binding request, 88, cookie */
    0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, /* tid */
    0x80, 0x22, 0x00, 0x10, 'S',  'T',  'U',  'N',  ' ',  't',  'e',  's',
    't',  ' ',  'c',  'l',  'i',  'e',  'n',  't',                          /* SOFTWARE */
    0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,                         /* PRIORITY */
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, /* ICE-CONTROLLED */
    0x00, 0x06, 0x00, 0x09, 'e',  'v',  't',  'j',  ':',  'h',  '6',  'v',
    'Y',  0x20, 0x20, 0x20, /* USERNAME */
    0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56,
    0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2, /* MESSAGE-INTEGRITY */
    0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,                         /* FINGERPRINT */
};
static const uint8_t rfc_response_v4[] = {
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01,
    0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b,
    't',  'e',  's',  't',  ' ',  'v',  'e',  'c',  't',  'o',  'r',  0x20, /* SOFTWARE */
    0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43, /* XOR-MAPPED */
    0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3,
    0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, /* MESSAGE-INTEGRITY */
    0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,                         /* FINGERPRINT */
};
static const uint8_t rfc_response_v6[] = {
    0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 't',  'e',  's',  't',  ' ',  'v',  'e',  'c',
    't',  'o',  'r',  0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa,
    0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9, /* XOR-MAPPED-ADDRESS */
    0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c,
    0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41, /* MESSAGE-INTEGRITY */
    0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c, /* FINGERPRINT */
};
static const char rfc_pwd[] = "VOkJxbRl1RmTxUk/WvJxBt";
static const uint8_t rfc_tid[12] = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                                    0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};
static const uint8_t rfc_xma_v4[] = {0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43};
static const uint8_t rfc_xma_v6[] = {0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3,
                                     0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9};

/* The gateway's credentials in the ICE tests, and the browser's. */
#define OUR_UFRAG "Gw7x"
#define OUR_PWD "gatewayPasswordOf24chars"
#define PEER_UFRAG "br0w"

/* An encoder of the test's own, bit by bit and with OpenSSL's one-shot HMAC, so that the codec is
   checked against code it does not share. */
struct msg {
    uint8_t b[2048];
    size_t n;
};

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

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)rd16(p) << 16 | rd16(p + 2);
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

static void msg_start(struct msg *m, uint16_t type, const uint8_t tid[12])
{
    memset(m, 0, sizeof(*m));
    wr16(m->b, type);
    wr32(m->b + 4, 0x2112A442);
    memcpy(m->b + 8, tid, 12);
    m->n = 20;
}

static void msg_attr(struct msg *m, uint16_t type, const void *v, size_t len)
{
    ck_assert_uint_le(m->n + 4 + len + 3, sizeof(m->b));
    wr16(m->b + m->n, type);
    wr16(m->b + m->n + 2, len);
    if (len > 0)
        memcpy(m->b + m->n + 4, v, len);
    m->n += 4 + ((len + 3) & ~(size_t)3);
    wr16(m->b + 2, m->n - 20);
}

static void msg_attr32(struct msg *m, uint16_t type, uint32_t v)
{
    uint8_t b[4];
    wr32(b, v);
    msg_attr(m, type, b, 4);
}

static void msg_attr64(struct msg *m, uint16_t type, uint64_t v)
{
    uint8_t b[8];
    wr32(b, (uint32_t)(v >> 32));
    wr32(b + 4, (uint32_t)v);
    msg_attr(m, type, b, 8);
}

static void mac_of(const uint8_t *p, size_t mi_off, const char *pwd, uint8_t mac[20])
{
    uint8_t copy[2048];
    memcpy(copy, p, mi_off);
    wr16(copy + 2, mi_off + 24 - 20);
    unsigned int n = 0;
    ck_assert_ptr_nonnull(HMAC(EVP_sha1(), pwd, (int)strlen(pwd), copy, mi_off, mac, &n));
    ck_assert_uint_eq(n, 20);
}

static void msg_integrity(struct msg *m, const char *pwd)
{
    uint8_t mac[20];
    mac_of(m->b, m->n, pwd, mac);
    msg_attr(m, 0x0008, mac, 20);
}

static void msg_fingerprint(struct msg *m)
{
    wr16(m->b + 2, m->n + 8 - 20);
    msg_attr32(m, 0x8028, crc32_bitwise(m->b, m->n) ^ 0x5354554Eu);
}

/* A request as a browser sends it to the gateway (RFC 8445 §7.1.2), with extra attributes
   before MESSAGE-INTEGRITY when extra is set. */
static void browser_request(struct msg *m, const char *username, const char *pwd,
                            void (*extra)(struct msg *))
{
    static const uint8_t tid[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    msg_start(m, 0x0001, tid);
    msg_attr(m, 0x0006, username, strlen(username));
    msg_attr32(m, 0x0024, 0x6E7F1EFF);
    msg_attr64(m, 0x802A, 0x0123456789ABCDEFull);
    if (extra != NULL)
        extra(m);
    msg_integrity(m, pwd);
    msg_fingerprint(m);
}

/* What a response carries, read and verified by the test's own code. */
struct verdict {
    uint16_t type;
    bool has_mi, mi_ok, has_fp, fp_ok;
    unsigned code;
    char reason[200];
    size_t n_unknown;
    uint16_t unknown[64];
    bool has_xma;
    uint8_t xma[20];
    size_t xma_len;
};

static struct verdict inspect(const uint8_t *p, size_t len, const char *pwd)
{
    struct verdict v;
    memset(&v, 0, sizeof(v));
    ck_assert_uint_ge(len, 20);
    ck_assert_uint_eq(rd16(p + 2), len - 20);
    ck_assert_uint_eq(rd32(p + 4), 0x2112A442);
    v.type = rd16(p);
    for (size_t off = 20; off < len;) {
        ck_assert_uint_le(off + 4, len);
        uint16_t type = rd16(p + off), alen = rd16(p + off + 2);
        const uint8_t *val = p + off + 4;
        ck_assert_uint_le(off + 4 + alen, len);
        ck_assert_msg(!v.has_fp, "attribute after FINGERPRINT");
        if (type == 0x0008) {
            ck_assert_uint_eq(alen, 20);
            v.has_mi = true;
            if (pwd != NULL) {
                uint8_t mac[20];
                mac_of(p, off, pwd, mac);
                v.mi_ok = memcmp(mac, val, 20) == 0;
            }
        } else if (type == 0x8028) {
            ck_assert_uint_eq(alen, 4);
            ck_assert_uint_eq(off + 8, len);
            v.has_fp = true;
            v.fp_ok = (crc32_bitwise(p, off) ^ 0x5354554Eu) == rd32(val);
        } else if (type == 0x0009) {
            ck_assert_uint_ge(alen, 4);
            ck_assert_uint_lt(alen - 4, sizeof(v.reason));
            ck_assert_uint_eq(val[0] | val[1], 0);
            v.code = val[2] * 100u + val[3];
            memcpy(v.reason, val + 4, alen - 4u);
        } else if (type == 0x000A) {
            ck_assert_uint_eq(alen % 2, 0);
            for (size_t i = 0; i < alen / 2u; i++)
                v.unknown[v.n_unknown++] = rd16(val + 2 * i);
        } else if (type == 0x0020) {
            ck_assert_uint_le(alen, sizeof(v.xma));
            v.has_xma = true;
            v.xma_len = alen;
            memcpy(v.xma, val, alen);
        }
        off += 4 + ((alen + 3u) & ~3u);
    }
    return v;
}

static int check(const uint8_t *p, size_t len, const char *remote, struct agw_stun_request *r)
{
    uint16_t unknown[AGW_STUN_MAX_UNKNOWN];
    size_t n = 0;
    return agw_stun_check_request(p, len, OUR_UFRAG, OUR_PWD, remote, r, unknown, &n);
}

/* The codec reads exactly len bytes: a heap copy of that size lets ASan see any overread. */
static int check_exact(const uint8_t *p, size_t len)
{
    uint8_t *copy = malloc(len > 0 ? len : 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, p, len);
    struct agw_stun_request r;
    int rc = check(copy, len, NULL, &r);
    struct sockaddr_storage ss;
    uint8_t tid[12];
    (void)agw_stun_parse_success(copy, len, OUR_PWD, tid, &ss);
    free(copy);
    return rc;
}

static struct sockaddr_in sin4(const char *addr, uint16_t port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    ck_assert_int_eq(inet_pton(AF_INET, addr, &sa.sin_addr), 1);
    return sa;
}

static struct sockaddr_in6 sin6(const char *addr, uint16_t port)
{
    struct sockaddr_in6 sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(port);
    ck_assert_int_eq(inet_pton(AF_INET6, addr, &sa.sin6_addr), 1);
    return sa;
}

/* RFC 5769 §2.1 ------------------------------------------------------------------------------ */

START_TEST(rfc5769_request_vector)
{
    /* The test's own verifier agrees with the RFC, so it can judge the codec's output below. */
    struct verdict v = inspect(rfc_request, sizeof(rfc_request), rfc_pwd);
    ck_assert(v.mi_ok && v.fp_ok);

    struct agw_stun_request r;
    uint16_t unknown[AGW_STUN_MAX_UNKNOWN];
    size_t n = 99;
    /* MI and FINGERPRINT verify; the sample comes from a controlled agent, a role conflict for a
       lite agent. */
    int rc = agw_stun_check_request(rfc_request, sizeof(rfc_request), "evtj", rfc_pwd, "h6vY", &r,
                                    unknown, &n);
    ck_assert_int_eq(rc, AGW_STUN_ROLE_CONFLICT);
    ck_assert_uint_eq(n, 0);
    ck_assert(r.authenticated);
    ck_assert_mem_eq(r.tid, rfc_tid, 12);
    ck_assert_uint_eq(r.username_len, 9);
    ck_assert_mem_eq(r.username, "evtj:h6vY", 9);
    ck_assert_uint_eq(r.priority, 0x6e0001ff);
    ck_assert(r.controlled && !r.controlling && !r.use_candidate);
    ck_assert_uint_eq(r.tie_breaker, 0x932ff9b151263b36ull);

    rc = agw_stun_check_request(rfc_request, sizeof(rfc_request), "evtj", rfc_pwd, NULL, &r, NULL,
                                NULL);
    ck_assert_int_eq(rc, AGW_STUN_ROLE_CONFLICT);
}
END_TEST

START_TEST(rfc5769_request_tampered)
{
    struct agw_stun_request r;
    int rc = agw_stun_check_request(rfc_request, sizeof(rfc_request), "evtj",
                                    "VOkJxbRl1RmTxUk/WvJxBu", NULL, &r, NULL, NULL);
    ck_assert_int_eq(rc, AGW_STUN_UNAUTHORIZED);
    ck_assert(!r.authenticated);
    ck_assert_mem_eq(r.tid, rfc_tid, 12);

    rc = agw_stun_check_request(rfc_request, sizeof(rfc_request), "evtx", rfc_pwd, NULL, &r, NULL,
                                NULL);
    ck_assert_int_eq(rc, AGW_STUN_UNAUTHORIZED);
    rc = agw_stun_check_request(rfc_request, sizeof(rfc_request), "evtj", rfc_pwd, "h6vZ", &r, NULL,
                                NULL);
    ck_assert_int_eq(rc, AGW_STUN_UNAUTHORIZED);

    uint8_t copy[sizeof(rfc_request)];
    for (size_t i = sizeof(copy) - 4; i < sizeof(copy); i++) {
        memcpy(copy, rfc_request, sizeof(copy));
        copy[i] ^= 0x01;
        rc = agw_stun_check_request(copy, sizeof(copy), "evtj", rfc_pwd, NULL, &r, NULL, NULL);
        ck_assert_int_eq(rc, AGW_STUN_ERR_FINGERPRINT);
    }
    /* A changed SOFTWARE byte with a FINGERPRINT made to match: MESSAGE-INTEGRITY catches it. */
    memcpy(copy, rfc_request, sizeof(copy));
    copy[30] ^= 0x20;
    wr32(copy + sizeof(copy) - 4, crc32_bitwise(copy, sizeof(copy) - 8) ^ 0x5354554Eu);
    rc = agw_stun_check_request(copy, sizeof(copy), "evtj", rfc_pwd, NULL, &r, NULL, NULL);
    ck_assert_int_eq(rc, AGW_STUN_UNAUTHORIZED);
    /* A changed MAC byte likewise. */
    memcpy(copy, rfc_request, sizeof(copy));
    copy[sizeof(copy) - 9] ^= 0x80;
    wr32(copy + sizeof(copy) - 4, crc32_bitwise(copy, sizeof(copy) - 8) ^ 0x5354554Eu);
    rc = agw_stun_check_request(copy, sizeof(copy), "evtj", rfc_pwd, NULL, &r, NULL, NULL);
    ck_assert_int_eq(rc, AGW_STUN_UNAUTHORIZED);
}
END_TEST

/* RFC 5769 §2.2 and §2.3 --------------------------------------------------------------------- */

START_TEST(rfc5769_response_v4)
{
    uint8_t tid[12];
    struct sockaddr_storage ss;
    ck_assert_int_eq(
        agw_stun_parse_success(rfc_response_v4, sizeof(rfc_response_v4), rfc_pwd, tid, &ss), 0);
    ck_assert_mem_eq(tid, rfc_tid, 12);
    const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
    ck_assert_int_eq(in->sin_family, AF_INET);
    ck_assert_uint_eq(ntohs(in->sin_port), 32853);
    ck_assert_uint_eq(ntohl(in->sin_addr.s_addr), 0xC0000201); /* 192.0.2.1 */

    ck_assert_int_eq(
        agw_stun_parse_success(rfc_response_v4, sizeof(rfc_response_v4), "wrong", tid, &ss),
        AGW_STUN_ERR_INTEGRITY);
    ck_assert_int_eq(
        agw_stun_parse_success(rfc_response_v4, sizeof(rfc_response_v4), NULL, tid, &ss), 0);

    /* Our answer to the same transaction from the same address: same XOR-MAPPED-ADDRESS. */
    struct sockaddr_in from = sin4("192.0.2.1", 32853);
    uint8_t buf[128];
    size_t len = 0;
    ck_assert_int_eq(agw_stun_build_success(rfc_tid, (const struct sockaddr *)&from, rfc_pwd, buf,
                                            sizeof(buf), &len),
                     0);
    ck_assert_uint_eq(len, 20 + 12 + 24 + 8);
    struct verdict v = inspect(buf, len, rfc_pwd);
    ck_assert_uint_eq(v.type, 0x0101);
    ck_assert_mem_eq(buf + 8, rfc_tid, 12);
    ck_assert(v.has_xma && v.has_mi && v.mi_ok && v.has_fp && v.fp_ok);
    ck_assert_uint_eq(v.xma_len, sizeof(rfc_xma_v4));
    ck_assert_mem_eq(v.xma, rfc_xma_v4, sizeof(rfc_xma_v4));
    memset(&ss, 0, sizeof(ss));
    ck_assert_int_eq(agw_stun_parse_success(buf, len, rfc_pwd, tid, &ss), 0);
    ck_assert_uint_eq(ntohs(in->sin_port), 32853);
    ck_assert_uint_eq(ntohl(in->sin_addr.s_addr), 0xC0000201);
}
END_TEST

START_TEST(rfc5769_response_v6)
{
    uint8_t tid[12];
    struct sockaddr_storage ss;
    ck_assert_int_eq(
        agw_stun_parse_success(rfc_response_v6, sizeof(rfc_response_v6), rfc_pwd, tid, &ss), 0);
    ck_assert_mem_eq(tid, rfc_tid, 12);
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
    struct sockaddr_in6 want = sin6("2001:db8:1234:5678:11:2233:4455:6677", 32853);
    ck_assert_int_eq(in6->sin6_family, AF_INET6);
    ck_assert_uint_eq(in6->sin6_port, want.sin6_port);
    ck_assert_mem_eq(&in6->sin6_addr, &want.sin6_addr, 16);

    uint8_t bad[sizeof(rfc_response_v6)];
    memcpy(bad, rfc_response_v6, sizeof(bad));
    bad[sizeof(bad) - 1] ^= 0xFF;
    ck_assert_int_eq(agw_stun_parse_success(bad, sizeof(bad), rfc_pwd, tid, &ss),
                     AGW_STUN_ERR_FINGERPRINT);

    uint8_t buf[128];
    size_t len = 0;
    ck_assert_int_eq(agw_stun_build_success(rfc_tid, (const struct sockaddr *)&want, rfc_pwd, buf,
                                            sizeof(buf), &len),
                     0);
    ck_assert_uint_eq(len, 20 + 24 + 24 + 8);
    struct verdict v = inspect(buf, len, rfc_pwd);
    ck_assert(v.has_xma && v.mi_ok && v.fp_ok);
    ck_assert_uint_eq(v.xma_len, sizeof(rfc_xma_v6));
    ck_assert_mem_eq(v.xma, rfc_xma_v6, sizeof(rfc_xma_v6));
    memset(&ss, 0, sizeof(ss));
    ck_assert_int_eq(agw_stun_parse_success(buf, len, rfc_pwd, tid, &ss), 0);
    ck_assert_int_eq(in6->sin6_family, AF_INET6);
    ck_assert_uint_eq(in6->sin6_port, want.sin6_port);
    ck_assert_mem_eq(&in6->sin6_addr, &want.sin6_addr, 16);
}
END_TEST

START_TEST(address_round_trips)
{
    static const char *const v6[] = {"::", "::1", "fe80::1:2:3:4", "2001:db8::ffff:0:1",
                                     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"};
    static const uint16_t ports[] = {0, 1, 9, 0x2112, 32853, 65535};
    uint8_t tid[12], got_tid[12], buf[128];
    size_t len;
    struct sockaddr_storage ss;
    for (size_t i = 0; i < sizeof(v6) / sizeof(v6[0]); i++) {
        for (size_t k = 0; k < sizeof(ports) / sizeof(ports[0]); k++) {
            memset(tid, (int)(i * 16 + k), sizeof(tid));
            tid[11] = 0xA5;
            struct sockaddr_in6 a = sin6(v6[i], ports[k]);
            ck_assert_int_eq(agw_stun_build_success(tid, (const struct sockaddr *)&a, OUR_PWD, buf,
                                                    sizeof(buf), &len),
                             0);
            ck_assert_int_eq(agw_stun_parse_success(buf, len, OUR_PWD, got_tid, &ss), 0);
            const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)&ss;
            ck_assert_mem_eq(got_tid, tid, 12);
            ck_assert_int_eq(b->sin6_family, AF_INET6);
            ck_assert_uint_eq(b->sin6_port, a.sin6_port);
            ck_assert_mem_eq(&b->sin6_addr, &a.sin6_addr, 16);
        }
    }
    /* An IPv4 peer seen through a dual-stack socket is told its IPv4 address. */
    struct sockaddr_in6 mapped = sin6("::ffff:198.51.100.7", 55432);
    ck_assert_int_eq(agw_stun_build_success(rfc_tid, (const struct sockaddr *)&mapped, OUR_PWD, buf,
                                            sizeof(buf), &len),
                     0);
    ck_assert_uint_eq(len, 64);
    ck_assert_int_eq(agw_stun_parse_success(buf, len, OUR_PWD, got_tid, &ss), 0);
    const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
    ck_assert_int_eq(in->sin_family, AF_INET);
    ck_assert_uint_eq(ntohs(in->sin_port), 55432);
    ck_assert_uint_eq(ntohl(in->sin_addr.s_addr), 0xC6336407);

    struct sockaddr unix_like = {.sa_family = AF_UNIX};
    ck_assert_int_eq(agw_stun_build_success(rfc_tid, &unix_like, OUR_PWD, buf, sizeof(buf), &len),
                     -EAFNOSUPPORT);
}
END_TEST

/* ICE checks --------------------------------------------------------------------------------- */

START_TEST(request_round_trip)
{
    struct agw_stun_request in = {
        .tid = {0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 4, 5, 6, 7},
        .use_candidate = true,
        .controlling = true,
        .priority = 0x7EFFFFFF,
        .tie_breaker = 0xFEDCBA9876543210ull,
        .username = OUR_UFRAG ":" PEER_UFRAG,
        .username_len = strlen(OUR_UFRAG ":" PEER_UFRAG),
    };
    uint8_t buf[256];
    size_t len = 0;
    ck_assert_int_eq(agw_stun_build_request(&in, OUR_PWD, buf, sizeof(buf), &len), 0);
    /* USERNAME 4+12, PRIORITY 8, USE-CANDIDATE 4, ICE-CONTROLLING 12, MI 24, FINGERPRINT 8. */
    ck_assert_uint_eq(len, 20 + 16 + 8 + 4 + 12 + 24 + 8);
    ck_assert_uint_eq(rd16(buf), 0x0001);
    struct verdict v = inspect(buf, len, OUR_PWD);
    ck_assert(v.mi_ok && v.fp_ok);

    struct agw_stun_request out;
    ck_assert_int_eq(check(buf, len, PEER_UFRAG, &out), 0);
    ck_assert(out.authenticated && out.use_candidate && out.controlling && !out.controlled);
    ck_assert_mem_eq(out.tid, in.tid, 12);
    ck_assert_uint_eq(out.priority, in.priority);
    ck_assert_uint_eq(out.tie_breaker, in.tie_breaker);
    ck_assert_uint_eq(out.username_len, in.username_len);
    ck_assert_mem_eq(out.username, in.username, in.username_len);
    ck_assert_ptr_eq(out.username, (const char *)buf + 24); /* borrowed from the message */
    ck_assert_int_eq(check(buf, len, NULL, &out), 0);

    /* Without FINGERPRINT (it is optional in a request). */
    struct msg m;
    browser_request(&m, OUR_UFRAG ":" PEER_UFRAG, OUR_PWD, NULL);
    m.n -= 8;
    wr16(m.b + 2, m.n - 20);
    ck_assert_int_eq(check(m.b, m.n, PEER_UFRAG, &out), 0);
    ck_assert(out.controlling && !out.use_candidate);
    ck_assert_uint_eq(out.priority, 0x6E7F1EFF);
    ck_assert_uint_eq(out.tie_breaker, 0x0123456789ABCDEFull);
}
END_TEST

START_TEST(wrong_credentials)
{
    struct msg m;
    struct agw_stun_request r;
    browser_request(&m, OUR_UFRAG ":" PEER_UFRAG, "notTheGatewayPassword!!!", NULL);
    ck_assert_int_eq(check(m.b, m.n, NULL, &r), AGW_STUN_UNAUTHORIZED);
    ck_assert(!r.authenticated);
    ck_assert_mem_eq(r.tid, m.b + 8, 12);

    static const char *const names[] = {
        "Gw7y:" PEER_UFRAG,       /* another gateway ufrag */
        PEER_UFRAG ":" OUR_UFRAG, /* the two parts swapped */
        "Gw7x",                   /* no sender part */
        "Gw7x:",                  /* an empty sender part */
        "Gw7:x" PEER_UFRAG,       /* a prefix of ours */
        "Gw7xx:" PEER_UFRAG,      /* ours as a prefix */
        "",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        browser_request(&m, names[i], OUR_PWD, NULL);
        ck_assert_msg(check(m.b, m.n, NULL, &r) == AGW_STUN_UNAUTHORIZED, "username \"%s\"",
                      names[i]);
    }
    /* The sender part is checked when the remote ufrag is known. */
    browser_request(&m, OUR_UFRAG ":someone", OUR_PWD, NULL);
    ck_assert_int_eq(check(m.b, m.n, NULL, &r), 0);
    ck_assert_int_eq(check(m.b, m.n, PEER_UFRAG, &r), AGW_STUN_UNAUTHORIZED);
    ck_assert_int_eq(check(m.b, m.n, "someon", &r), AGW_STUN_UNAUTHORIZED);
    ck_assert_int_eq(check(m.b, m.n, "someone", &r), 0);

    /* The 401 answer has no MESSAGE-INTEGRITY (RFC 8489 §9.1.3). */
    uint8_t buf[128];
    size_t len;
    ck_assert_int_eq(agw_stun_build_error(r.tid, AGW_STUN_UNAUTHORIZED, NULL, NULL, NULL, 0, buf,
                                          sizeof(buf), &len),
                     0);
    struct verdict v = inspect(buf, len, NULL);
    ck_assert_uint_eq(v.type, 0x0111);
    ck_assert_uint_eq(v.code, 401);
    ck_assert_str_eq(v.reason, "Unauthorized");
    ck_assert(!v.has_mi && v.has_fp && v.fp_ok);
}
END_TEST

START_TEST(missing_credentials)
{
    struct agw_stun_request in = {.tid = {9}, .controlling = true, .priority = 1}, out;
    in.username = OUR_UFRAG ":" PEER_UFRAG;
    in.username_len = strlen(in.username);
    uint8_t buf[256];
    size_t len;
    /* No MESSAGE-INTEGRITY. */
    ck_assert_int_eq(agw_stun_build_request(&in, NULL, buf, sizeof(buf), &len), 0);
    ck_assert(!inspect(buf, len, NULL).has_mi);
    ck_assert_int_eq(check(buf, len, NULL, &out), AGW_STUN_BAD_REQUEST);
    ck_assert(!out.authenticated);
    ck_assert_uint_eq(out.tid[0], 9);
    /* No USERNAME. */
    in.username_len = 0;
    ck_assert_int_eq(agw_stun_build_request(&in, OUR_PWD, buf, sizeof(buf), &len), 0);
    ck_assert_int_eq(check(buf, len, NULL, &out), AGW_STUN_BAD_REQUEST);
    ck_assert(!out.authenticated);

    /* A USERNAME after MESSAGE-INTEGRITY does not count (RFC 8489 §14.5). */
    struct msg m;
    msg_start(&m, 0x0001, in.tid);
    msg_integrity(&m, OUR_PWD);
    msg_attr(&m, 0x0006, OUR_UFRAG ":" PEER_UFRAG, 9);
    msg_fingerprint(&m);
    ck_assert_int_eq(check(m.b, m.n, NULL, &out), AGW_STUN_BAD_REQUEST);

    /* A MESSAGE-INTEGRITY of the wrong size, and a USERNAME over 513 bytes. */
    msg_start(&m, 0x0001, in.tid);
    msg_attr(&m, 0x0006, OUR_UFRAG ":" PEER_UFRAG, 9);
    msg_attr(&m, 0x0008, "0123456789abcdef", 16);
    msg_fingerprint(&m);
    ck_assert_int_eq(check(m.b, m.n, NULL, &out), AGW_STUN_BAD_REQUEST);
    char user[600];
    memset(user, 'u', sizeof(user));
    memcpy(user, OUR_UFRAG ":", 5);
    user[514] = '\0';
    browser_request(&m, user, OUR_PWD, NULL);
    ck_assert_int_eq(check(m.b, m.n, NULL, &out), AGW_STUN_BAD_REQUEST);
    user[513] = '\0';
    browser_request(&m, user, OUR_PWD, NULL);
    ck_assert_int_eq(check(m.b, m.n, NULL, &out), 0);
}
END_TEST

static void add_unknowns(struct msg *m)
{
    msg_attr32(m, 0x7777, 1);
    msg_attr(m, 0x8055, "opt", 3);      /* comprehension-optional: ignored */
    msg_attr(m, 0x0003, "\0\0\0\0", 4); /* CHANGE-REQUEST (RFC 5780): not ours */
    msg_attr32(m, 0x7777, 2);           /* listed once */
}

/* Comprehension-required, known, out of place in a request: ignored. */
static void add_misplaced(struct msg *m)
{
    msg_attr(m, 0x0001, rfc_xma_v4, sizeof(rfc_xma_v4)); /* MAPPED-ADDRESS */
    msg_attr(m, 0x0009, "\0\0\4\0", 4);                  /* ERROR-CODE */
    msg_attr(m, 0x000A, "\0\3", 2);                      /* UNKNOWN-ATTRIBUTES */
    msg_attr(m, 0x0014, "realm", 5);
    msg_attr(m, 0x0015, "nonce", 5);
    msg_attr(m, 0x0020, rfc_xma_v4, sizeof(rfc_xma_v4)); /* XOR-MAPPED-ADDRESS */
}

static void add_many_unknowns(struct msg *m)
{
    for (uint16_t t = 0x4000; t < 0x4000 + 12; t++)
        msg_attr(m, t, NULL, 0);
}

START_TEST(unknown_attributes)
{
    struct msg m;
    struct agw_stun_request r;
    uint16_t unknown[AGW_STUN_MAX_UNKNOWN];
    size_t n = 0;
    browser_request(&m, OUR_UFRAG ":" PEER_UFRAG, OUR_PWD, add_unknowns);
    int rc = agw_stun_check_request(m.b, m.n, OUR_UFRAG, OUR_PWD, NULL, &r, unknown, &n);
    ck_assert_int_eq(rc, AGW_STUN_UNKNOWN_ATTRIBUTE);
    ck_assert(r.authenticated);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(unknown[0], 0x7777);
    ck_assert_uint_eq(unknown[1], 0x0003);

    /* The 420 answer lists them and is signed: the request was authenticated. */
    uint8_t buf[256];
    size_t len;
    ck_assert_int_eq(agw_stun_build_error(r.tid, (unsigned)rc, NULL, OUR_PWD, unknown, n, buf,
                                          sizeof(buf), &len),
                     0);
    struct verdict v = inspect(buf, len, OUR_PWD);
    ck_assert_uint_eq(v.code, 420);
    ck_assert_str_eq(v.reason, "Unknown Attribute");
    ck_assert_uint_eq(v.n_unknown, 2);
    ck_assert_uint_eq(v.unknown[0], 0x7777);
    ck_assert_uint_eq(v.unknown[1], 0x0003);
    ck_assert(v.has_mi && v.mi_ok && v.fp_ok);
    ck_assert_mem_eq(buf + 8, m.b + 8, 12);

    browser_request(&m, OUR_UFRAG ":" PEER_UFRAG, OUR_PWD, add_misplaced);
    rc = agw_stun_check_request(m.b, m.n, OUR_UFRAG, OUR_PWD, NULL, &r, unknown, &n);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(n, 0);

    /* Twelve of them: the first AGW_STUN_MAX_UNKNOWN are listed. */
    browser_request(&m, OUR_UFRAG ":" PEER_UFRAG, OUR_PWD, add_many_unknowns);
    rc = agw_stun_check_request(m.b, m.n, OUR_UFRAG, OUR_PWD, NULL, &r, unknown, &n);
    ck_assert_int_eq(rc, AGW_STUN_UNKNOWN_ATTRIBUTE);
    ck_assert_uint_eq(n, AGW_STUN_MAX_UNKNOWN);
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(unknown[i], 0x4000 + i);
    rc = agw_stun_check_request(m.b, m.n, OUR_UFRAG, OUR_PWD, NULL, &r, NULL, NULL);
    ck_assert_int_eq(rc, AGW_STUN_UNKNOWN_ATTRIBUTE);

    /* Unknown and unauthenticated: 401 first, and nothing listed for its answer. */
    browser_request(&m, OUR_UFRAG ":" PEER_UFRAG, "wrong", add_unknowns);
    n = 99;
    rc = agw_stun_check_request(m.b, m.n, OUR_UFRAG, OUR_PWD, NULL, &r, unknown, &n);
    ck_assert_int_eq(rc, AGW_STUN_UNAUTHORIZED);
    ck_assert_uint_eq(n, 0);

    /* After MESSAGE-INTEGRITY, attributes other than FINGERPRINT are ignored. */
    browser_request(&m, OUR_UFRAG ":" PEER_UFRAG, OUR_PWD, NULL);
    m.n -= 8; /* take the FINGERPRINT off, add an unknown, put one back */
    msg_attr32(&m, 0x7777, 3);
    msg_fingerprint(&m);
    rc = agw_stun_check_request(m.b, m.n, OUR_UFRAG, OUR_PWD, NULL, &r, unknown, &n);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(n, 0);
}
END_TEST

static void add_controlled(struct msg *m)
{
    msg_attr64(m, 0x8029, 42);
}

static void add_bad_priority(struct msg *m)
{
    msg_attr(m, 0x0024, "12345678", 8);
}

static void add_bad_use_candidate(struct msg *m)
{
    msg_attr(m, 0x0025, "x", 1);
}

static void add_bad_controlled(struct msg *m)
{
    msg_attr(m, 0x8029, "1234", 4);
}

START_TEST(role_conflict)
{
    struct msg m;
    struct agw_stun_request r;
    browser_request(&m, OUR_UFRAG ":" PEER_UFRAG, OUR_PWD, add_controlled);
    int rc = check(m.b, m.n, PEER_UFRAG, &r);
    ck_assert_int_eq(rc, AGW_STUN_ROLE_CONFLICT);
    ck_assert(r.authenticated && r.controlled && r.controlling);

    uint8_t buf[128];
    size_t len;
    ck_assert_int_eq(
        agw_stun_build_error(r.tid, (unsigned)rc, NULL, OUR_PWD, NULL, 0, buf, sizeof(buf), &len),
        0);
    struct verdict v = inspect(buf, len, OUR_PWD);
    ck_assert_uint_eq(v.type, 0x0111);
    ck_assert_uint_eq(v.code, 487);
    ck_assert_str_eq(v.reason, "Role Conflict");
    ck_assert_uint_eq(v.n_unknown, 0);
    ck_assert(v.mi_ok && v.fp_ok);

    /* Known attributes of the wrong size: a bad request, answered signed. */
    browser_request(&m, OUR_UFRAG ":" PEER_UFRAG, OUR_PWD, add_bad_priority);
    ck_assert_int_eq(check(m.b, m.n, PEER_UFRAG, &r), AGW_STUN_BAD_REQUEST);
    ck_assert(r.authenticated);
    ck_assert_uint_eq(r.priority, 0x6E7F1EFF); /* the first PRIORITY */
    browser_request(&m, OUR_UFRAG ":" PEER_UFRAG, OUR_PWD, add_bad_use_candidate);
    ck_assert_int_eq(check(m.b, m.n, PEER_UFRAG, &r), AGW_STUN_BAD_REQUEST);
    browser_request(&m, OUR_UFRAG ":" PEER_UFRAG, OUR_PWD, add_bad_controlled);
    ck_assert_int_eq(check(m.b, m.n, PEER_UFRAG, &r), AGW_STUN_BAD_REQUEST);
    ck_assert(!r.controlled);

    /* The codec's own request from a controlled agent, as a peer tool would make it. */
    struct agw_stun_request in = {.tid = {3}, .controlled = true, .tie_breaker = 7};
    in.username = OUR_UFRAG ":" PEER_UFRAG;
    in.username_len = 9;
    ck_assert_int_eq(agw_stun_build_request(&in, OUR_PWD, buf, sizeof(buf), &len), 0);
    ck_assert_int_eq(check(buf, len, PEER_UFRAG, &r), AGW_STUN_ROLE_CONFLICT);
    ck_assert(r.controlled && !r.controlling);
    ck_assert_uint_eq(r.tie_breaker, 7);
}
END_TEST

/* Framing ------------------------------------------------------------------------------------ */

START_TEST(every_truncation)
{
    struct msg m;
    browser_request(&m, OUR_UFRAG ":" PEER_UFRAG, OUR_PWD, add_unknowns);
    ck_assert_int_eq(check_exact(m.b, m.n), AGW_STUN_UNKNOWN_ATTRIBUTE);
    browser_request(&m, OUR_UFRAG ":" PEER_UFRAG, OUR_PWD, NULL);
    ck_assert_int_eq(check_exact(m.b, m.n), 0);
    for (size_t n = 0; n < m.n; n++) {
        /* As cut, then with the length field made to agree with the cut. */
        int rc = check_exact(m.b, n);
        ck_assert_msg(rc < 0, "cut at %zu: %d", n, rc);
        if (n >= 20) {
            struct msg t = m;
            wr16(t.b + 2, n - 20);
            rc = check_exact(t.b, n);
            /* Only the cut that takes exactly the (optional) FINGERPRINT off leaves a request. */
            if (n == m.n - 8)
                ck_assert_int_eq(rc, 0);
            else
                ck_assert_msg(rc != 0, "cut at %zu with its length", n);
        }
    }
    ck_assert_int_eq(check_exact(rfc_request, sizeof(rfc_request) - 1), AGW_STUN_ERR_MALFORMED);
}
END_TEST

START_TEST(lying_lengths)
{
    struct msg m;
    browser_request(&m, OUR_UFRAG ":" PEER_UFRAG, OUR_PWD, NULL);
    size_t body = m.n - 20;
    static const int deltas[] = {-8, -4, -1, 1, 3, 4, 8, 400};
    for (size_t i = 0; i < sizeof(deltas) / sizeof(deltas[0]); i++) {
        struct msg t = m;
        wr16(t.b + 2, (size_t)((int)body + deltas[i]));
        ck_assert_int_eq(check_exact(t.b, t.n), AGW_STUN_ERR_MALFORMED);
    }
    /* Padding bytes added past the message. */
    ck_assert_int_eq(check_exact(m.b, m.n + 4), AGW_STUN_ERR_MALFORMED);

    /* An attribute whose length runs past the end. */
    struct msg t = m;
    wr16(t.b + 20 + 2, 0xFFFC);
    ck_assert_int_eq(check_exact(t.b, t.n), AGW_STUN_ERR_MALFORMED);
    t = m;
    wr16(t.b + m.n - 8 + 2, 5); /* FINGERPRINT of 5 bytes, padded past the end */
    ck_assert_int_eq(check_exact(t.b, t.n), AGW_STUN_ERR_MALFORMED);
    /* An unpadded final attribute: the length field is no multiple of 4. */
    struct msg u;
    msg_start(&u, 0x0001, rfc_tid);
    msg_attr(&u, 0x8022, "abc", 3);
    wr16(u.b + 2, 7);
    ck_assert_int_eq(check_exact(u.b, 27), AGW_STUN_ERR_MALFORMED);
}
END_TEST

START_TEST(layout_rules)
{
    struct msg m;
    struct agw_stun_request r;
    /* Something after FINGERPRINT. */
    browser_request(&m, OUR_UFRAG ":" PEER_UFRAG, OUR_PWD, NULL);
    msg_attr(&m, 0x8022, "late", 4);
    ck_assert_int_eq(check(m.b, m.n, NULL, &r), AGW_STUN_ERR_MALFORMED);
    /* A FINGERPRINT of the wrong size. */
    browser_request(&m, OUR_UFRAG ":" PEER_UFRAG, OUR_PWD, NULL);
    m.n -= 8;
    msg_attr(&m, 0x8028, "12345678", 8);
    ck_assert_int_eq(check(m.b, m.n, NULL, &r), AGW_STUN_ERR_MALFORMED);

    /* 64 attributes are read; a 65th makes the message malformed. */
    msg_start(&m, 0x0001, rfc_tid);
    msg_attr(&m, 0x0006, OUR_UFRAG ":" PEER_UFRAG, 9);
    for (int i = 0; i < 61; i++)
        msg_attr(&m, 0x8022, "s", 1);
    msg_integrity(&m, OUR_PWD);
    msg_fingerprint(&m);
    ck_assert_int_eq(check(m.b, m.n, NULL, &r), 0);
    msg_start(&m, 0x0001, rfc_tid);
    msg_attr(&m, 0x0006, OUR_UFRAG ":" PEER_UFRAG, 9);
    for (int i = 0; i < 62; i++)
        msg_attr(&m, 0x8022, "s", 1);
    msg_integrity(&m, OUR_PWD);
    msg_fingerprint(&m);
    ck_assert_int_eq(check(m.b, m.n, NULL, &r), AGW_STUN_ERR_MALFORMED);
}
END_TEST

START_TEST(not_for_us)
{
    struct msg m;
    struct agw_stun_request r;
    browser_request(&m, OUR_UFRAG ":" PEER_UFRAG, OUR_PWD, NULL);
    ck_assert(agw_stun_is_stun(m.b, m.n));
    ck_assert(agw_stun_is_stun(m.b, 20));
    ck_assert(!agw_stun_is_stun(m.b, 19));
    ck_assert(!agw_stun_is_stun(NULL, 0));

    /* RFC 7983: 20..63 is DTLS, 128..191 RTP; a bad cookie is no STUN of RFC 5389 or later. */
    static const uint8_t first[] = {4, 20, 22, 63, 128, 191, 255};
    for (size_t i = 0; i < sizeof(first); i++) {
        struct msg t = m;
        t.b[0] = first[i];
        ck_assert(!agw_stun_is_stun(t.b, t.n));
        ck_assert_int_eq(check(t.b, t.n, NULL, &r), AGW_STUN_ERR_NOT_STUN);
    }
    struct msg t = m;
    t.b[7] ^= 1;
    ck_assert(!agw_stun_is_stun(t.b, t.n));
    ck_assert_int_eq(check(t.b, t.n, NULL, &r), AGW_STUN_ERR_NOT_STUN);

    /* Indications (keepalives, RFC 8445 §11), responses, other methods: not answered. */
    static const uint16_t types[] = {0x0011, 0x0101, 0x0111, 0x0003, 0x0201};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        msg_start(&t, types[i], rfc_tid);
        msg_attr(&t, 0x0006, OUR_UFRAG ":" PEER_UFRAG, 9);
        msg_integrity(&t, OUR_PWD);
        msg_fingerprint(&t);
        ck_assert_int_eq(check(t.b, t.n, NULL, &r), AGW_STUN_ERR_NOT_EXPECTED);
    }
    /* A request is no success response. */
    uint8_t tid[12];
    struct sockaddr_storage ss;
    ck_assert_int_eq(agw_stun_parse_success(m.b, m.n, OUR_PWD, tid, &ss),
                     AGW_STUN_ERR_NOT_EXPECTED);

    ck_assert_int_eq(agw_stun_check_request(m.b, m.n, "", OUR_PWD, NULL, &r, NULL, NULL), -EINVAL);
    ck_assert_int_eq(agw_stun_check_request(m.b, m.n, OUR_UFRAG, NULL, NULL, &r, NULL, NULL),
                     -EINVAL);
}
END_TEST

START_TEST(success_responses)
{
    struct sockaddr_storage ss;
    uint8_t tid[12];
    struct msg m;
    /* No XOR-MAPPED-ADDRESS. */
    msg_start(&m, 0x0101, rfc_tid);
    msg_integrity(&m, OUR_PWD);
    msg_fingerprint(&m);
    ck_assert_int_eq(agw_stun_parse_success(m.b, m.n, OUR_PWD, tid, &ss), -ENOENT);
    /* Unsigned, when a signature is wanted. */
    msg_start(&m, 0x0101, rfc_tid);
    msg_attr(&m, 0x0020, rfc_xma_v4, sizeof(rfc_xma_v4));
    msg_fingerprint(&m);
    ck_assert_int_eq(agw_stun_parse_success(m.b, m.n, OUR_PWD, tid, &ss), AGW_STUN_ERR_INTEGRITY);
    ck_assert_int_eq(agw_stun_parse_success(m.b, m.n, NULL, tid, &ss), 0);
    ck_assert_uint_eq(ntohs(((struct sockaddr_in *)&ss)->sin_port), 32853);
    /* The reserved first byte is ignored. */
    static const uint8_t reserved_set[] = {0xff, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43};
    msg_start(&m, 0x0101, rfc_tid);
    msg_attr(&m, 0x0020, reserved_set, sizeof(reserved_set));
    ck_assert_int_eq(agw_stun_parse_success(m.b, m.n, NULL, tid, &ss), 0);
    ck_assert_uint_eq(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), 0xC0000201);
    /* A malformed address: family 3, or IPv4 with an IPv6 length. */
    static const uint8_t fam3[] = {0x00, 0x03, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43};
    msg_start(&m, 0x0101, rfc_tid);
    msg_attr(&m, 0x0020, fam3, sizeof(fam3));
    ck_assert_int_eq(agw_stun_parse_success(m.b, m.n, NULL, tid, &ss), AGW_STUN_ERR_MALFORMED);
    msg_start(&m, 0x0101, rfc_tid);
    msg_attr(&m, 0x0020, fam3, 2);
    ck_assert_int_eq(agw_stun_parse_success(m.b, m.n, NULL, tid, &ss), AGW_STUN_ERR_MALFORMED);
    uint8_t v4long[20] = {0x00, 0x01};
    msg_start(&m, 0x0101, rfc_tid);
    msg_attr(&m, 0x0020, v4long, sizeof(v4long));
    ck_assert_int_eq(agw_stun_parse_success(m.b, m.n, NULL, tid, &ss), AGW_STUN_ERR_MALFORMED);
}
END_TEST

/* Encoders ----------------------------------------------------------------------------------- */

START_TEST(error_responses)
{
    uint8_t buf[512];
    size_t len;
    ck_assert_int_eq(
        agw_stun_build_error(rfc_tid, 400, NULL, NULL, NULL, 0, buf, sizeof(buf), &len), 0);
    struct verdict v = inspect(buf, len, NULL);
    ck_assert_uint_eq(v.code, 400);
    ck_assert_str_eq(v.reason, "Bad Request");
    ck_assert(!v.has_mi && v.fp_ok);
    ck_assert_uint_eq(len, 20 + 4 + 16 + 8); /* ERROR-CODE 4 + "Bad Request" 11, padded */
    ck_assert_uint_eq(buf[20 + 4 + 4 + 11], 0);

    ck_assert_int_eq(
        agw_stun_build_error(rfc_tid, 599, "Odd one", OUR_PWD, NULL, 0, buf, sizeof(buf), &len), 0);
    v = inspect(buf, len, OUR_PWD);
    ck_assert_uint_eq(v.code, 599);
    ck_assert_uint_eq(buf[20 + 4 + 2], 5);
    ck_assert_uint_eq(buf[20 + 4 + 3], 99);
    ck_assert_str_eq(v.reason, "Odd one");
    ck_assert(v.mi_ok && v.fp_ok);

    uint16_t three[] = {0x0003, 0x7777, 0x1234};
    ck_assert_int_eq(
        agw_stun_build_error(rfc_tid, 420, NULL, NULL, three, 3, buf, sizeof(buf), &len), 0);
    v = inspect(buf, len, NULL);
    ck_assert_uint_eq(v.n_unknown, 3);
    ck_assert_uint_eq(v.unknown[2], 0x1234);
    ck_assert(v.fp_ok);

    char reason[AGW_STUN_REASON_MAX + 2];
    memset(reason, 'r', sizeof(reason) - 1);
    reason[sizeof(reason) - 1] = '\0';
    ck_assert_int_eq(
        agw_stun_build_error(rfc_tid, 500, reason, NULL, NULL, 0, buf, sizeof(buf), &len), -EINVAL);
    reason[AGW_STUN_REASON_MAX] = '\0';
    ck_assert_int_eq(
        agw_stun_build_error(rfc_tid, 500, reason, NULL, NULL, 0, buf, sizeof(buf), &len), 0);
    v = inspect(buf, len, NULL);
    ck_assert_uint_eq(v.code, 500);
    ck_assert_uint_eq(strlen(v.reason), AGW_STUN_REASON_MAX);
    ck_assert_int_eq(
        agw_stun_build_error(rfc_tid, 500, NULL, NULL, NULL, 0, buf, sizeof(buf), &len), 0);
    ck_assert_str_eq(inspect(buf, len, NULL).reason, "Server Error");
    /* A code without a standard phrase goes out with an empty reason. */
    ck_assert_int_eq(
        agw_stun_build_error(rfc_tid, 300, NULL, NULL, NULL, 0, buf, sizeof(buf), &len), 0);
    ck_assert_uint_eq(len, 20 + 8 + 8);
    ck_assert_uint_eq(inspect(buf, len, NULL).code, 300);
    ck_assert_int_eq(
        agw_stun_build_error(rfc_tid, 299, NULL, NULL, NULL, 0, buf, sizeof(buf), &len), -EINVAL);
    ck_assert_int_eq(
        agw_stun_build_error(rfc_tid, 700, NULL, NULL, NULL, 0, buf, sizeof(buf), &len), -EINVAL);
    ck_assert_int_eq(
        agw_stun_build_error(rfc_tid, 420, NULL, NULL, NULL, 2, buf, sizeof(buf), &len), -EINVAL);
}
END_TEST

/* Every capacity below the need is refused with the need reported, and nothing written past. */
START_TEST(no_space)
{
    struct sockaddr_in6 a = sin6("2001:db8::1", 5000);
    struct agw_stun_request req = {.controlling = true, .use_candidate = true};
    req.username = OUR_UFRAG ":" PEER_UFRAG;
    req.username_len = 9;
    uint16_t unk[] = {0x7777};
    for (int which = 0; which < 3; which++) {
        size_t need = 0, len = 0;
        int rc;
        if (which == 0)
            rc = agw_stun_build_success(rfc_tid, (const struct sockaddr *)&a, OUR_PWD, NULL, 0,
                                        &need);
        else if (which == 1)
            rc = agw_stun_build_error(rfc_tid, 420, NULL, OUR_PWD, unk, 1, NULL, 0, &need);
        else
            rc = agw_stun_build_request(&req, OUR_PWD, NULL, 0, &need);
        ck_assert_int_eq(rc, -ENOSPC);
        ck_assert_uint_gt(need, 20);
        for (size_t cap = 0; cap <= need; cap++) {
            uint8_t *buf = malloc(cap > 0 ? cap : 1);
            ck_assert_ptr_nonnull(buf);
            if (which == 0)
                rc = agw_stun_build_success(rfc_tid, (const struct sockaddr *)&a, OUR_PWD, buf, cap,
                                            &len);
            else if (which == 1)
                rc = agw_stun_build_error(rfc_tid, 420, NULL, OUR_PWD, unk, 1, buf, cap, &len);
            else
                rc = agw_stun_build_request(&req, OUR_PWD, buf, cap, &len);
            ck_assert_int_eq(rc, cap < need ? -ENOSPC : 0);
            ck_assert_uint_eq(len, need);
            free(buf);
        }
    }
    size_t len;
    uint8_t buf[64];
    req.username_len = AGW_STUN_USERNAME_MAX + 1;
    ck_assert_int_eq(agw_stun_build_request(&req, OUR_PWD, buf, sizeof(buf), &len), -EINVAL);
    ck_assert_int_eq(
        agw_stun_build_success(rfc_tid, (const struct sockaddr *)&a, NULL, buf, sizeof(buf), &len),
        -EINVAL);
}
END_TEST

START_TEST(random_credentials)
{
    static const char ice_chars[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char ufrag[AGW_STUN_UFRAG_LEN + 1], pwd[AGW_STUN_PWD_LEN + 1];
    char prev_ufrag[sizeof(ufrag)] = "", prev_pwd[sizeof(pwd)] = "";
    bool seen[64] = {false};
    /* RFC 8839 §5.4: ufrag 4..256 ice-chars, pwd 22..256. */
    ck_assert_int_ge(AGW_STUN_UFRAG_LEN, 4);
    ck_assert_int_ge(AGW_STUN_PWD_LEN, 22);
    for (int i = 0; i < 200; i++) {
        memset(ufrag, 0x55, sizeof(ufrag));
        memset(pwd, 0x55, sizeof(pwd));
        ck_assert_int_eq(agw_stun_random_credentials(ufrag, pwd), 0);
        ck_assert_uint_eq(strlen(ufrag), AGW_STUN_UFRAG_LEN);
        ck_assert_uint_eq(strlen(pwd), AGW_STUN_PWD_LEN);
        ck_assert_uint_eq(strspn(ufrag, ice_chars), AGW_STUN_UFRAG_LEN);
        ck_assert_uint_eq(strspn(pwd, ice_chars), AGW_STUN_PWD_LEN);
        ck_assert_str_ne(ufrag, prev_ufrag);
        ck_assert_str_ne(pwd, prev_pwd);
        memcpy(prev_ufrag, ufrag, sizeof(ufrag));
        memcpy(prev_pwd, pwd, sizeof(pwd));
        for (size_t k = 0; k < AGW_STUN_PWD_LEN; k++)
            seen[strchr(ice_chars, pwd[k]) - ice_chars] = true;
    }
    /* 4800 draws reach all 64 characters (a miss has odds below 1e-30). */
    for (size_t k = 0; k < 64; k++)
        ck_assert_msg(seen[k], "never drew '%c'", ice_chars[k]);

    /* Credentials made here work end to end. */
    struct agw_stun_request in = {.tid = {7}, .controlling = true}, out;
    char user[AGW_STUN_UFRAG_LEN * 2 + 2];
    char peer[AGW_STUN_UFRAG_LEN + 1], peer_pwd[AGW_STUN_PWD_LEN + 1];
    ck_assert_int_eq(agw_stun_random_credentials(peer, peer_pwd), 0);
    memcpy(user, ufrag, AGW_STUN_UFRAG_LEN);
    user[AGW_STUN_UFRAG_LEN] = ':';
    memcpy(user + AGW_STUN_UFRAG_LEN + 1, peer, AGW_STUN_UFRAG_LEN + 1);
    in.username = user;
    in.username_len = strlen(user);
    uint8_t buf[256];
    size_t len;
    ck_assert_int_eq(agw_stun_build_request(&in, pwd, buf, sizeof(buf), &len), 0);
    ck_assert_int_eq(agw_stun_check_request(buf, len, ufrag, pwd, peer, &out, NULL, NULL), 0);
    ck_assert_int_eq(agw_stun_check_request(buf, len, ufrag, peer_pwd, peer, &out, NULL, NULL),
                     AGW_STUN_UNAUTHORIZED);
}
END_TEST

static Suite *stun_suite(void)
{
    Suite *s = suite_create("stun");
    TCase *tc = tcase_create("rfc5769");
    tcase_add_test(tc, rfc5769_request_vector);
    tcase_add_test(tc, rfc5769_request_tampered);
    tcase_add_test(tc, rfc5769_response_v4);
    tcase_add_test(tc, rfc5769_response_v6);
    tcase_add_test(tc, address_round_trips);
    suite_add_tcase(s, tc);

    tc = tcase_create("ice");
    tcase_add_test(tc, request_round_trip);
    tcase_add_test(tc, wrong_credentials);
    tcase_add_test(tc, missing_credentials);
    tcase_add_test(tc, unknown_attributes);
    tcase_add_test(tc, role_conflict);
    suite_add_tcase(s, tc);

    tc = tcase_create("framing");
    tcase_add_test(tc, every_truncation);
    tcase_add_test(tc, lying_lengths);
    tcase_add_test(tc, layout_rules);
    tcase_add_test(tc, not_for_us);
    tcase_add_test(tc, success_responses);
    suite_add_tcase(s, tc);

    tc = tcase_create("encoders");
    tcase_add_test(tc, error_responses);
    tcase_add_test(tc, no_space);
    tcase_add_test(tc, random_credentials);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(stun_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
