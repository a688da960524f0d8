/* Check suite for the SDP codec (h248/sdp.c): typed attributes, CHOOSE values, limits, round trips.
 */
#include "h248/sdp.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

/* Encodes s, parses the text again and checks that both describe the same thing, and that a
   second encode gives the same bytes. */
static void check_round_trip(const struct sdp_session *s)
{
    size_t need = 0, len = 0;
    ck_assert_int_eq(sdp_encode(s, NULL, 0, &need), -ENOSPC);
    char *buf = malloc(need + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(sdp_encode(s, buf, need + 1, &len), 0);
    ck_assert_uint_eq(len, need);
    ck_assert_uint_eq(strlen(buf), len);

    struct sdp_session *t = NULL;
    struct sdp_error err;
    int rc = sdp_parse(buf, len, NULL, &t, &err);
    ck_assert_msg(rc == 0, "re-parse failed (%d): %s\n%s", rc, err.text, buf);
    ck_assert_msg(sdp_equal(s, t), "round trip differs:\n%s", buf);
    ck_assert(sdp_equal(t, s));

    char *buf2 = malloc(need + 1);
    ck_assert_ptr_nonnull(buf2);
    size_t len2 = 0;
    ck_assert_int_eq(sdp_encode(t, buf2, need + 1, &len2), 0);
    ck_assert_uint_eq(len2, len);
    ck_assert_mem_eq(buf, buf2, len);
    sdp_free(t);
    free(buf);
    free(buf2);
}

static struct sdp_session *parse_len(const char *text, size_t len)
{
    struct sdp_session *s = NULL;
    struct sdp_error err;
    int rc = sdp_parse(text, len, NULL, &s, &err);
    ck_assert_msg(rc == 0, "parse failed (%d): %s [line %d, offset %zu]\n%.*s", rc, err.text,
                  err.line, err.offset, (int)len, text);
    ck_assert_ptr_nonnull(s);
    check_round_trip(s);
    return s;
}

/* Parses text that must be accepted; the round trip is checked on every positive case. */
static struct sdp_session *parse(const char *text)
{
    return parse_len(text, strlen(text));
}

/* Parses text that must be refused with rc and an error text containing what. */
static void refuse_len(const char *text, size_t len, const struct sdp_limits *lim, int rc,
                       const char *what)
{
    struct sdp_session *s = (struct sdp_session *)1;
    struct sdp_error err;
    memset(&err, 0x55, sizeof(err));
    int got = sdp_parse(text, len, lim, &s, &err);
    ck_assert_msg(got == rc, "expected %d, got %d (%s) for:\n%.*s", rc, got,
                  got < 0 ? err.text : "accepted", (int)(len > 200 ? 200 : len), text);
    ck_assert_ptr_null(s);
    ck_assert_msg(memchr(err.text, '\0', sizeof(err.text)) != NULL, "error text not terminated");
    ck_assert_msg(strstr(err.text, what) != NULL, "error '%s' does not mention '%s'", err.text,
                  what);
}

static void refuse(const char *text, const char *what)
{
    refuse_len(text, strlen(text), NULL, -EINVAL, what);
}

/* "AB:CD:..." of n bytes 0x00, 0x11, ... */
static char *hex_digest(size_t n, char sep)
{
    static char buf[3 * 80];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            buf[k++] = sep;
        k += (size_t)snprintf(buf + k, sizeof(buf) - k, "%02X", (unsigned)((i * 0x11) & 0xff));
    }
    buf[k] = '\0';
    return buf;
}

static const char *encode_str(const struct sdp_session *s)
{
    static char buf[8192];
    size_t len;
    ck_assert_int_eq(sdp_encode(s, buf, sizeof(buf), &len), 0);
    return buf;
}

#define SHA256_AB                                                                                  \
    "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:"   \
    "67:89"

/* Bodies the parser must accept: reused by the round-trip and truncation tests. */
static const char *const good_bodies[] = {
    /* e2ae: Reserve and Configure toward the access, Local asks the gateway for everything. */
    "c=IN IP4 $\nm=message $ TCP/TLS/MSRP *\na=fingerprint:$\na=setup:actpass\n",
    /* e2ae: the UE's offer as Remote. */
    "v=0\r\n"
    "o=- 2890844526 2890844527 IN IP4 192.0.2.33\r\n"
    "s= \r\n"
    "c=IN IP4 192.0.2.33\r\n"
    "t=0 0\r\n"
    "m=message 7394 TCP/TLS/MSRP *\r\n"
    "a=accept-types:message/cpim text/plain\r\n"
    "a=path:msrps://192.0.2.33:7394/9di4eae923wzd;tcp\r\n"
    "a=fingerprint:sha-256 " SHA256_AB "\r\n"
    "a=setup:active\r\n"
    "a=3ge2ae:requested\r\n",
    /* Reserve AGW Connection Point toward the core. */
    "c=IN IP4 $\r\nm=message $ TCP/MSRP *\r\na=setup:actpass\r\n",
    /* BFCP over TLS (RFC 8856 style). */
    "v=0\no=alice 1 1 IN IP6 2001:db8::10\ns=-\nc=IN IP6 2001:db8::10\nt=0 0\n"
    "m=application 50000 TCP/TLS/BFCP *\na=setup:passive\na=connection:new\n"
    "a=fingerprint:SHA-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB\n"
    "a=floorctrl:s-only\na=confid:4321\na=userid:1234\na=floorid:1 mstrm:10\n",
    /* RFC 8841 style data channel offer. */
    "v=0\no=- 1 2 IN IP4 198.51.100.1\ns=-\nt=0 0\na=ice-lite\n"
    "m=application 54111 UDP/DTLS/SCTP webrtc-datachannel\n"
    "c=IN IP4 198.51.100.1\na=sctp-port:5000\na=max-message-size:100000\n"
    "a=setup:actpass\na=tls-id:abc3de65cddef001be82fa\n"
    "a=fingerprint:sha-256 " SHA256_AB "\n"
    "a=ice-ufrag:Oyef7uvBlwafI3hT\na=ice-pwd:T0teqPLNQQOf+5W+ls+P2p16\n"
    "a=candidate:1 1 UDP 2113929471 198.51.100.1 54111 typ host\n",
    /* RFC 8864 style dcmap/dcsa for MSRP and BFCP over data channels. */
    "m=application 10001 UDP/DTLS/SCTP webrtc-datachannel\nc=IN IP4 $\n"
    "a=sctp-port:5000\n"
    "a=dcmap:0 subprotocol=\"bfcp\";label=\"bfcp\"\n"
    "a=dcmap:2 label=\"MSRP\";subprotocol=\"msrp\";ordered=true;priority=256\n"
    "a=dcmap:4 label=\"lossy%20chat\";ordered=false;max-retr=3\n"
    "a=dcmap:6 max-time=1000\n"
    "a=dcsa:2 accept-types:message/cpim text/plain\n"
    "a=dcsa:2 path:msrp://alice.example.com:10001/2s93i93idj;dc\n"
    "a=dcsa:0 floorctrl:c-s\n",
    /* Two alternatives in one Local. */
    "v=0\nc=IN IP4 $\nm=message $ TCP/TLS/MSRP *\nv=0\nc=IN IP6 $\nm=message $ TCP/TLS/MSRP *\n",
    /* Unspecified values, kept lines at both levels. */
    "v=0\ns=x\ni=info\nu=http://example.com/x\ne=a@example.com\np=+1 555\nc=IN IP4 -\n"
    "b=AS:64\nt=3034423619 3042462419\nr=7d 1h 0 25h\nz=2882844526 -1h\nk=prompt\n"
    "m=message - TCP/MSRP *\ni=media\nc=IN IP4 -\nb=AS:10\nk=clear:x\n",
    /* ICE candidates with extensions, IPv6 and mDNS names. */
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\n"
    "a=candidate:842163049 1 udp 1677729535 203.0.113.7 50000 typ srflx raddr 10.0.0.1 "
    "rport 50000 generation 0 network-cost 999\n"
    "a=candidate:2 1 TCP 2105524479 2001:db8::7 9 typ host tcptype active\n"
    "a=candidate:3 1 udp 2113937151 1f4712db-ea17-4bcf-a596-105139dfd8bf.local 54321 typ host\n"
    "a=candidate:4 1 udp 41885439 192.0.2.9 3478 typ relay raddr 203.0.113.7 rport 50000\n",
    /* Non-ASCII text where SDP allows it. */
    ("v=0\ns=Caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\n"
     "m=message 9 TCP/MSRP *\na=label:\xc3\xa9t\xc3\xa9\n"),
};

/* ---- e2ae bodies ---- */

START_TEST(e2ae_local_choose)
{
    struct sdp_session *s = parse(good_bodies[0]);
    ck_assert(!s->has_version && !s->has_origin && s->name == NULL && !s->has_timing);
    ck_assert(s->conn.present);
    ck_assert_int_eq(s->conn.kind, SDP_VALUE_CHOOSE);
    ck_assert_int_eq(s->conn.addrtype, SDP_ADDR_IP4);
    struct sdp_media *m = s->media;
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_null(m->next);
    ck_assert_str_eq(m->type, "message");
    ck_assert_int_eq(m->port_kind, SDP_VALUE_CHOOSE);
    ck_assert_str_eq(m->proto, "TCP/TLS/MSRP");
    ck_assert_int_eq(m->proto_id, SDP_PROTO_TCP_TLS_MSRP);
    ck_assert_str_eq(m->fmt, "*");
    const struct sdp_attr *a = m->attrs;
    ck_assert_int_eq(a->kind, SDP_ATTR_FINGERPRINT);
    ck_assert_int_eq(a->u.fingerprint.kind, SDP_VALUE_CHOOSE);
    ck_assert_str_eq(a->value, "$");
    a = a->next;
    ck_assert_int_eq(a->kind, SDP_ATTR_SETUP);
    ck_assert_int_eq(a->u.setup, SDP_SETUP_ACTPASS);
    ck_assert_ptr_null(a->next);
    ck_assert_str_eq(encode_str(s), "c=IN IP4 $\r\nm=message $ TCP/TLS/MSRP *\r\n"
                                    "a=fingerprint:$\r\na=setup:actpass\r\n");
    sdp_free(s);
}
END_TEST

/* "$" asks the gateway for its own tls-id and ICE credentials (a data-channel Local). */
START_TEST(datachannel_local_choose)
{
    struct sdp_session *s = parse("c=IN IP4 $\nm=application $ UDP/DTLS/SCTP webrtc-datachannel\n"
                                  "a=tls-id:$\na=ice-ufrag:$\na=ice-pwd:$\n");
    const struct sdp_media *m = s->media;
    const struct sdp_attr *id = sdp_attr_find(m->attrs, SDP_ATTR_TLS_ID);
    const struct sdp_attr *u = sdp_attr_find(m->attrs, SDP_ATTR_ICE_UFRAG);
    const struct sdp_attr *p = sdp_attr_find(m->attrs, SDP_ATTR_ICE_PWD);
    ck_assert(id != NULL && u != NULL && p != NULL);
    ck_assert_str_eq(id->value, "$");
    ck_assert_str_eq(u->value, "$");
    ck_assert_str_eq(p->value, "$");
    sdp_free(s);
    /* Anything else short is still refused. */
    struct sdp_error err;
    struct sdp_session *bad;
    const char *text = "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\na=tls-id:$$\n";
    ck_assert_int_lt(sdp_parse(text, strlen(text), NULL, &bad, &err), 0);
}
END_TEST

START_TEST(e2ae_remote_fingerprint)
{
    struct sdp_session *s = parse(good_bodies[1]);
    ck_assert(s->has_version && s->has_origin && s->has_timing);
    ck_assert_str_eq(s->origin.username, "-");
    ck_assert_str_eq(s->origin.sess_id, "2890844526");
    ck_assert_str_eq(s->origin.address, "192.0.2.33");
    ck_assert_str_eq(s->name, "");
    ck_assert_str_eq(s->conn.addr, "192.0.2.33");
    ck_assert_int_eq(s->conn.kind, SDP_VALUE_SET);
    struct sdp_media *m = s->media;
    ck_assert_int_eq(m->port_kind, SDP_VALUE_SET);
    ck_assert_uint_eq(m->port, 7394);
    const struct sdp_attr *fp = sdp_attr_find(m->attrs, SDP_ATTR_FINGERPRINT);
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fp->u.fingerprint.kind, SDP_VALUE_SET);
    ck_assert_int_eq(fp->u.fingerprint.hash, SDP_HASH_SHA256);
    ck_assert_uint_eq(fp->u.fingerprint.len, 32);
    static const uint8_t want[8] = {0xAB, 0xCD, 0xEF, 0x01, 0x23, 0x45, 0x67, 0x89};
    for (int i = 0; i < 32; i++)
        ck_assert_uint_eq(fp->u.fingerprint.digest[i], want[i % 8]);
    ck_assert_ptr_null(sdp_attr_find(fp->next, SDP_ATTR_FINGERPRINT));
    const struct sdp_attr *path = sdp_attr_find_name(m->attrs, "PATH");
    ck_assert_ptr_nonnull(path);
    ck_assert_int_eq(path->kind, SDP_ATTR_OTHER);
    ck_assert_str_eq(path->value, "msrps://192.0.2.33:7394/9di4eae923wzd;tcp");
    const struct sdp_attr *e2ae = sdp_attr_find_name(m->attrs, "3ge2ae");
    ck_assert_str_eq(e2ae->value, "requested");
    ck_assert_int_eq(sdp_attr_find(m->attrs, SDP_ATTR_SETUP)->u.setup, SDP_SETUP_ACTIVE);
    ck_assert_ptr_eq(sdp_media_connection(s, m), &s->conn);
    sdp_free(s);
}
END_TEST

START_TEST(msrp_offer_rfc4975_style)
{
    /* An RFC 4975 section 7.1-like offer, sent over TLS with a certificate fingerprint. */
    struct sdp_session *s = parse("v=0\r\n"
                                  "o=alice 2890844557 2890844559 IN IP4 alicepc.example.com\r\n"
                                  "s=-\r\n"
                                  "c=IN IP4 192.0.2.1\r\n"
                                  "t=0 0\r\n"
                                  "m=message 7654 TCP/TLS/MSRP *\r\n"
                                  "a=accept-types:text/plain message/cpim\r\n"
                                  "a=accept-wrapped-types:*\r\n"
                                  "a=max-size:65536\r\n"
                                  "a=path:msrps://alicepc.example.com:7654/jshA7weztas;tcp\r\n"
                                  "a=fingerprint:SHA-1 "
                                  "4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB\r\n"
                                  "a=msrp-cema\r\n"
                                  "a=sendrecv\r\n");
    ck_assert_str_eq(s->origin.address, "alicepc.example.com");
    const struct sdp_attr *fp = sdp_attr_find(s->media->attrs, SDP_ATTR_FINGERPRINT);
    ck_assert_int_eq(fp->u.fingerprint.hash, SDP_HASH_SHA1);
    ck_assert_uint_eq(fp->u.fingerprint.digest[0], 0x4A);
    ck_assert_uint_eq(fp->u.fingerprint.digest[19], 0xAB);
    const struct sdp_attr *cema = sdp_attr_find_name(s->media->attrs, "msrp-cema");
    ck_assert_ptr_nonnull(cema);
    ck_assert_ptr_null(cema->value);
    sdp_free(s);
}
END_TEST

/* ---- structure ---- */

START_TEST(full_session_encoded_exactly)
{
    struct sdp_session *s =
        parse("v=0\no=- 1 2 IN IP4 192.0.2.1\ns=call\nc=IN IP4 192.0.2.1\nt=0 0\na=tool:x\n"
              "m=message 9/2 TCP/MSRP *\na=setup:active\n");
    ck_assert_uint_eq(s->media->port, 9);
    ck_assert_uint_eq(s->media->port_count, 2);
    ck_assert_str_eq(encode_str(s), "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=call\r\n"
                                    "c=IN IP4 192.0.2.1\r\nt=0 0\r\na=tool:x\r\n"
                                    "m=message 9/2 TCP/MSRP *\r\na=setup:active\r\n");
    sdp_free(s);
}
END_TEST

START_TEST(unspecified_values)
{
    struct sdp_session *s = parse("c=IN IP4 -\nm=message - TCP/MSRP *\n");
    ck_assert_int_eq(s->conn.kind, SDP_VALUE_UNSPECIFIED);
    ck_assert_int_eq(s->media->port_kind, SDP_VALUE_UNSPECIFIED);
    ck_assert_str_eq(encode_str(s), "c=IN IP4 -\r\nm=message - TCP/MSRP *\r\n");
    sdp_free(s);
}
END_TEST

START_TEST(ipv6_and_address_validation)
{
    static const char *const good[] = {"::1", "2001:db8::1", "::ffff:192.0.2.1", "fe80::1:2:3:4",
                                       "2001:db8:0:0:1:0:0:1"};
    char body[128];
    for (unsigned i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(body, sizeof(body), "c=IN IP6 %s\nm=message 1 TCP/MSRP *\n", good[i]);
        struct sdp_session *s = parse(body);
        ck_assert_int_eq(s->conn.addrtype, SDP_ADDR_IP6);
        ck_assert_str_eq(s->conn.addr, good[i]);
        sdp_free(s);
    }
    struct sdp_session *s = parse("m=message 1 TCP/MSRP *\nc=IN IP6 $\n");
    ck_assert(!s->conn.present);
    ck_assert_int_eq(s->media->conn.kind, SDP_VALUE_CHOOSE);
    ck_assert_int_eq(s->media->conn.addrtype, SDP_ADDR_IP6);
    ck_assert_ptr_eq(sdp_media_connection(s, s->media), &s->media->conn);
    sdp_free(s);

    refuse("c=IN IP6 1.2.3.4\n", "not an IPv6 address");
    refuse("c=IN IP4 ::1\n", "not an IPv4 address");
    refuse("c=IN IP4 1.2.3.256\n", "not an IPv4 address");
    refuse("c=IN IP4 01.2.3.4\n", "not an IPv4 address");
    refuse("c=IN IP4 1.2.3\n", "not an IPv4 address");
    refuse("c=IN IP4 host.example.com\n", "not an IPv4 address");
    refuse("c=IN IP4 224.2.1.1/127\n", "not an IPv4 address");
    refuse("c=IN IP6 fe80::1%eth0\n", "not an IPv6 address");
    refuse("c=IN IP6 1:2:3:4:5:6:7:8:9\n", "not an IPv6 address");
    refuse("c=IN IP6 "
           "0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0001\n",
           "not an IPv6 address");
    refuse("c=IN IP4\n", "not an IPv4 address");
    refuse("c=IN IP4 1.2.3.4 extra\n", "unexpected text");
    refuse("c=ATM NSAP 1\n", "network type");
    refuse("c=IN IPX 1\n", "address type");
    refuse("c=IN ip4 1.2.3.4\n", "address type");
    refuse("c=IN IP4 $\nc=IN IP4 $\n", "duplicate c=");
}
END_TEST

START_TEST(line_ends_and_blanks)
{
    struct sdp_session *lf = parse("v=0\nc=IN IP4 192.0.2.1\nm=message 9 TCP/MSRP *\na=x:y\n");
    static const char *const variants[] = {
        "v=0\r\nc=IN IP4 192.0.2.1\r\nm=message 9 TCP/MSRP *\r\na=x:y\r\n",
        "v=0\nc=IN IP4 192.0.2.1\r\nm=message 9 TCP/MSRP *\na=x:y",
        "\n\r\n  v=0 \t\n\n c=IN IP4 192.0.2.1  \r\n\tm=message 9 TCP/MSRP *\n\na=x:y\r\n\n",
        "v=0\nc=IN  IP4\t192.0.2.1\nm=message   9 TCP/MSRP *\na=x:y \r \n",
    };
    for (unsigned i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        struct sdp_session *s = parse(variants[i]);
        ck_assert_msg(sdp_equal(lf, s), "variant %u differs", i);
        sdp_free(s);
    }
    sdp_free(lf);
    refuse("v=0\rc=IN IP4 $\r", "control character 0x0d");
    refuse("", "empty");
    refuse("\n\r\n \t\n", "empty");
    struct sdp_session *s = (struct sdp_session *)1;
    ck_assert_int_eq(sdp_parse(NULL, 0, NULL, &s, NULL), -EINVAL);
    ck_assert_ptr_null(s);
}
END_TEST

START_TEST(multiple_sessions)
{
    struct sdp_session *s = parse(good_bodies[6]);
    ck_assert_ptr_nonnull(s->next);
    ck_assert_ptr_null(s->next->next);
    ck_assert_int_eq(s->conn.addrtype, SDP_ADDR_IP4);
    ck_assert_int_eq(s->next->conn.addrtype, SDP_ADDR_IP6);
    ck_assert(s->next->has_version);
    sdp_free(s);

    /* The first one may lack v=; each later one starts at v=. */
    s = parse("c=IN IP4 $\nm=message $ TCP/MSRP *\nv=0\nm=message $ TCP/TLS/MSRP *\nv=0\nv=0\n");
    ck_assert(!s->has_version);
    ck_assert_int_eq(s->media->proto_id, SDP_PROTO_TCP_MSRP);
    ck_assert_int_eq(s->next->media->proto_id, SDP_PROTO_TCP_TLS_MSRP);
    ck_assert(!s->next->conn.present);
    ck_assert_ptr_nonnull(s->next->next->next);
    ck_assert_ptr_null(s->next->next->media);
    ck_assert_str_eq(encode_str(s), "c=IN IP4 $\r\nm=message $ TCP/MSRP *\r\nv=0\r\n"
                                    "m=message $ TCP/TLS/MSRP *\r\nv=0\r\nv=0\r\n");
    ck_assert(!sdp_equal(s, s->next));
    /* A later alternative is written with v= even if a caller cleared the flag. */
    s->next->has_version = false;
    ck_assert_str_eq(encode_str(s), "c=IN IP4 $\r\nm=message $ TCP/MSRP *\r\nv=0\r\n"
                                    "m=message $ TCP/TLS/MSRP *\r\nv=0\r\nv=0\r\n");
    sdp_free(s);

    struct sdp_limits lim = sdp_default_limits;
    lim.max_sessions = 2;
    const char *three = "v=0\nv=0\nv=0\n";
    refuse_len(three, strlen(three), &lim, -E2BIG, "more than 2 session");
    lim.max_sessions = 0;
    refuse_len("c=IN IP4 $\n", 11, &lim, -E2BIG, "more than 0 session");
}
END_TEST

START_TEST(media_protocols)
{
    static const struct {
        const char *proto;
        enum sdp_proto id;
    } cases[] = {
        {"TCP/TLS/MSRP", SDP_PROTO_TCP_TLS_MSRP},
        {"TCP/MSRP", SDP_PROTO_TCP_MSRP},
        {"TCP/TLS/BFCP", SDP_PROTO_TCP_TLS_BFCP},
        {"TCP/BFCP", SDP_PROTO_TCP_BFCP},
        {"TCP", SDP_PROTO_TCP},
        {"UDP/DTLS/SCTP", SDP_PROTO_UDP_DTLS_SCTP},
        {"TCP/DTLS/SCTP", SDP_PROTO_TCP_DTLS_SCTP},
        {"DTLS/SCTP", SDP_PROTO_DTLS_SCTP},
        {"UDP/SCTP", SDP_PROTO_UDP_SCTP},
        {"RTP/AVP", SDP_PROTO_OTHER},
        {"tcp/tls/msrp", SDP_PROTO_OTHER},
        {"TCP/TLS", SDP_PROTO_OTHER},
        {"TCP/TLS/MSRP/X", SDP_PROTO_OTHER},
    };
    char body[128];
    for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(body, sizeof(body), "m=application 5000 %s webrtc-datachannel\n", cases[i].proto);
        struct sdp_session *s = parse(body);
        ck_assert_int_eq(s->media->proto_id, cases[i].id);
        ck_assert_str_eq(s->media->proto, cases[i].proto);
        sdp_free(s);
    }
    struct sdp_session *s = parse("m=audio 49170 RTP/AVP 0 8  97\n");
    ck_assert_str_eq(s->media->fmt, "0 8  97");
    sdp_free(s);
    refuse("m=message $ TCP//MSRP *\n", "bad protocol");
    refuse("m=message $ /TCP *\n", "bad protocol");
    refuse("m=message $ TCP/ *\n", "bad protocol");
    refuse("m=message $ TCP/MS@RP *\n", "bad protocol");
    refuse("m=message $ TCP/MSRP\n", "missing format");
    refuse("m=message $ TCP/MSRP * a:b\n", "bad format");
    refuse("m=message 65536 TCP/MSRP *\n", "port must be");
    refuse("m=message 12a TCP/MSRP *\n", "port must be");
    refuse("m=message $/2 TCP/MSRP *\n", "port must be");
    refuse("m=message 9/0 TCP/MSRP *\n", "bad port count");
    refuse("m=message 9/ TCP/MSRP *\n", "bad port count");
    refuse("m=mess@ge 9 TCP/MSRP *\n", "bad media type");
    refuse("m=\n", "bad media type");
}
END_TEST

START_TEST(kept_lines_in_rfc_order)
{
    struct sdp_session *s = parse(good_bodies[7]);
    const char *want = "v=0\r\ns=x\r\ni=info\r\nu=http://example.com/x\r\ne=a@example.com\r\n"
                       "p=+1 555\r\nc=IN IP4 -\r\nb=AS:64\r\nt=3034423619 3042462419\r\n"
                       "r=7d 1h 0 25h\r\nz=2882844526 -1h\r\nk=prompt\r\n"
                       "m=message - TCP/MSRP *\r\ni=media\r\nc=IN IP4 -\r\nb=AS:10\r\n"
                       "k=clear:x\r\n";
    ck_assert_str_eq(encode_str(s), want);
    ck_assert_uint_eq(s->start_time, 3034423619u);
    sdp_free(s);

    /* Out of order input is put in order once, so that encode and parse agree. */
    s = parse("m=message 9 TCP/MSRP *\nb=AS:1\na=x\nk=y\ni=z\nc=IN IP4 $\nb=AS:2\n");
    ck_assert_str_eq(encode_str(s), "m=message 9 TCP/MSRP *\r\ni=z\r\nc=IN IP4 $\r\nb=AS:1\r\n"
                                    "b=AS:2\r\nk=y\r\na=x\r\n");
    sdp_free(s);
}
END_TEST

START_TEST(bad_lines)
{
    refuse("x=1\n", "unknown line type 'x='");
    refuse("A=1\n", "expected <type>=<value>");
    refuse("a\n", "expected <type>=<value>");
    refuse("=x\n", "expected <type>=<value>");
    refuse("a =x\n", "expected <type>=<value>");
    refuse("v=1\n", "only version 0");
    refuse("o=- 1 2 IN IP4\n", "needs 6 fields, got 5");
    refuse("o=- 1 2 IN IP4 1.2.3.4 x\n", "more than 6 fields");
    refuse("o=- 1 2 IN IP4 a\no=- 1 2 IN IP4 a\n", "duplicate o=");
    refuse("s=a\ns=b\n", "duplicate s=");
    refuse("t=0 0\nt=0 0\n", "only one t=");
    refuse("t=0\n", "expected <start> <stop>");
    refuse("t=a 0\n", "expected <start> <stop>");
    refuse("t=0 18446744073709551616\n", "expected <start> <stop>");
    refuse("m=message 9 TCP/MSRP *\ns=late\n", "s= is not allowed after m=");
    refuse("m=message 9 TCP/MSRP *\nu=x\n", "u= is not allowed after m=");
    refuse("m=message 9 TCP/MSRP *\no=- 1 1 IN IP4 a\n", "o= is not allowed after m=");
    refuse("a=\n", "bad attribute name");
    refuse("a=:x\n", "bad attribute name");
    refuse("a=foo bar\n", "bad attribute name");
    refuse("a=a/b:c\n", "bad attribute name");

    /* token-char is exactly RFC 8866's set. */
    struct sdp_session *t = parse("a=!#$%&'*+-.^_`{|}~09AZaz:v\n");
    ck_assert_str_eq(t->attrs->name, "!#$%&'*+-.^_`{|}~09AZaz");
    sdp_free(t);
    for (const char *x = "\"(),/;<=>?@[\\]"; *x != '\0'; x++) {
        char body[16];
        snprintf(body, sizeof(body), "a=a%cb\n", *x);
        refuse(body, "bad attribute name");
    }

    /* Positions are reported. */
    struct sdp_session *s;
    struct sdp_error err;
    const char *body = "v=0\nc=IN IP4 $\nm=message 9 TCP/MSRP *\na=setup:sideways\n";
    ck_assert_int_eq(sdp_parse(body, strlen(body), NULL, &s, &err), -EINVAL);
    ck_assert_int_eq(err.line, 4);
    ck_assert_uint_eq(err.offset, (size_t)(strstr(body, "sideways") - body));
    ck_assert_str_eq(err.text, "line 4: a=setup: unknown role 'sideways'");
}
END_TEST

/* ---- typed attributes ---- */

START_TEST(fingerprint_every_hash)
{
    static const struct {
        const char *name;
        enum sdp_hash hash;
        size_t len;
    } cases[] = {
        {"sha-1", SDP_HASH_SHA1, 20},     {"sha-224", SDP_HASH_SHA224, 28},
        {"sha-256", SDP_HASH_SHA256, 32}, {"SHA-384", SDP_HASH_SHA384, 48},
        {"Sha-512", SDP_HASH_SHA512, 64}, {"md5", SDP_HASH_MD5, 16},
        {"MD2", SDP_HASH_MD2, 16},
    };
    char body[512];
    for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(body, sizeof(body), "a=fingerprint:%s %s\n", cases[i].name,
                 hex_digest(cases[i].len, ':'));
        struct sdp_session *s = parse(body);
        const struct sdp_fingerprint *f = &s->attrs->u.fingerprint;
        ck_assert_int_eq(s->attrs->kind, SDP_ATTR_FINGERPRINT);
        ck_assert_int_eq(f->kind, SDP_VALUE_SET);
        ck_assert_int_eq(f->hash, cases[i].hash);
        ck_assert_uint_eq(f->len, cases[i].len);
        ck_assert_uint_eq(sdp_hash_len(cases[i].hash), cases[i].len);
        for (size_t k = 0; k < cases[i].len; k++)
            ck_assert_uint_eq(f->digest[k], (k * 0x11) & 0xff);
        sdp_free(s);

        /* One byte short and one byte long are both refused. */
        snprintf(body, sizeof(body), "a=fingerprint:%s %s\n", cases[i].name,
                 hex_digest(cases[i].len - 1, ':'));
        char want[64];
        snprintf(want, sizeof(want), "digest must be %zu bytes, got %zu", cases[i].len,
                 cases[i].len - 1);
        refuse(body, want);
        if (cases[i].len < 64) {
            snprintf(body, sizeof(body), "a=fingerprint:%s %s\n", cases[i].name,
                     hex_digest(cases[i].len + 1, ':'));
            refuse(body, "digest must be");
        }
    }
    ck_assert_str_eq(sdp_hash_name(SDP_HASH_SHA256), "sha-256");
    ck_assert_ptr_null(sdp_hash_name(SDP_HASH_OTHER));
    ck_assert_ptr_null(sdp_hash_name((enum sdp_hash)99));
}
END_TEST

START_TEST(fingerprint_forms)
{
    /* Lowercase hex, unknown hash functions kept, several fingerprints, session level. */
    struct sdp_session *s =
        parse("a=fingerprint:sha-256 ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:"
              "01:23:45:67:89:ab:cd:ef:01:23:45:67:89\n"
              "a=fingerprint:sha3-256 01:02:03\n"
              "m=message 9 TCP/TLS/MSRP *\na=fingerprint:$\na=fingerprint:$\n");
    ck_assert_uint_eq(s->attrs->u.fingerprint.digest[0], 0xab);
    const struct sdp_fingerprint *o = &s->attrs->next->u.fingerprint;
    ck_assert_int_eq(o->hash, SDP_HASH_OTHER);
    ck_assert_uint_eq(o->len, 3);
    ck_assert_uint_eq(o->digest[2], 3);
    sdp_free(s);

    char body[512];
    snprintf(body, sizeof(body), "a=fingerprint:x-hash %s\n", hex_digest(64, ':'));
    sdp_free(parse(body));
    snprintf(body, sizeof(body), "a=fingerprint:x-hash %s\n", hex_digest(65, ':'));
    refuse(body, "longer than 64 bytes");

    refuse("a=fingerprint:sha-256 " SHA256_AB ":\n", "bad hex at byte 33");
    refuse("a=fingerprint:sha-256 GG:" SHA256_AB "\n", "bad hex at byte 1");
    refuse("a=fingerprint:sha-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:A\n",
           "bad hex at byte 20");
    refuse("a=fingerprint:sha-1 4AAD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:CD\n",
           "expected ':' after byte 1");
    refuse("a=fingerprint:sha-1 4A AD\n", "expected ':' after byte 1");
    refuse("a=fingerprint:sha-1 4A::AD\n", "bad hex at byte 2");
    refuse("a=fingerprint:sha-256\n", "missing digest");
    refuse("a=fingerprint:sha-256 \n", "missing digest");
    refuse("a=fingerprint:\n", "bad hash function");
    refuse("a=fingerprint\n", "a=fingerprint needs a value");
    refuse("a=fingerprint:$$\n", "missing digest");
    refuse("a=fingerprint:sh@ AB\n", "bad hash function");
    refuse("a=fingerprint:sha-256 $\n", "bad hex at byte 1");
}
END_TEST

START_TEST(setup_and_connection)
{
    static const char *const roles[] = {"active", "passive", "actpass", "holdconn"};
    char body[64];
    for (unsigned i = 0; i < 4; i++) {
        snprintf(body, sizeof(body), "m=message 9 TCP/MSRP *\na=setup:%s\n", roles[i]);
        struct sdp_session *s = parse(body);
        ck_assert_int_eq(s->media->attrs->u.setup, (enum sdp_setup)i);
        sdp_free(s);
    }
    struct sdp_session *s = parse("a=setup:ACTIVE\na=connection:existing\n"
                                  "m=message 9 TCP/MSRP *\na=connection:New\na=setup:passive\n");
    ck_assert_int_eq(s->attrs->u.setup, SDP_SETUP_ACTIVE);
    ck_assert_int_eq(s->attrs->next->u.connection, SDP_CONNECTION_EXISTING);
    ck_assert_int_eq(s->media->attrs->u.connection, SDP_CONNECTION_NEW);
    sdp_free(s);
    refuse("a=setup:both\n", "unknown role 'both'");
    refuse("a=setup:\n", "unknown role ''");
    refuse("a=setup\n", "a=setup needs a value");
    refuse("a=setup: active\n", "unknown role");
    refuse("a=setup:active\na=setup:passive\n", "duplicate a=setup");
    refuse("a=Setup:active\na=SETUP:passive\n", "duplicate a=setup");
    refuse("a=connection:old\n", "must be new or existing");
    refuse("a=connection:new\na=connection:new\n", "duplicate a=connection");
}
END_TEST

START_TEST(tls_id)
{
    struct sdp_session *s = parse("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\n"
                                  "a=tls-id:abc3de65cddef001be82\n");
    const struct sdp_attr *a = sdp_attr_find(s->media->attrs, SDP_ATTR_TLS_ID);
    ck_assert_str_eq(a->value, "abc3de65cddef001be82");
    sdp_free(s);
    char body[300] = "a=tls-id:";
    memset(body + 9, 'A', 255);
    body[9 + 255] = '\0';
    sdp_free(parse(body));
    body[9 + 255] = 'A';
    body[9 + 256] = '\0';
    refuse(body, "a=tls-id: need 20 to 255");
    sdp_free(parse("a=tls-id:+/-_0123456789abcdefXYZ\n"));
    refuse("a=tls-id:abc3de65cddef001be8\n", "a=tls-id: need 20 to 255");
    refuse("a=tls-id:abc3de65cddef001be82!\n", "a=tls-id: need 20 to 255");
    refuse("a=tls-id:abc3de65cddef001be82\na=tls-id:abc3de65cddef001be83\n", "duplicate a=tls-id");
}
END_TEST

START_TEST(sctp_port_and_max_message_size)
{
    struct sdp_session *s = parse(good_bodies[4]);
    struct sdp_media *m = s->media;
    ck_assert(s->attrs->kind == SDP_ATTR_ICE_LITE && s->attrs->value == NULL);
    ck_assert_int_eq(m->proto_id, SDP_PROTO_UDP_DTLS_SCTP);
    ck_assert_str_eq(m->fmt, "webrtc-datachannel");
    ck_assert_uint_eq(sdp_attr_find(m->attrs, SDP_ATTR_SCTP_PORT)->u.sctp_port, 5000);
    ck_assert_uint_eq(sdp_media_max_message_size(m), 100000);
    ck_assert_str_eq(sdp_attr_find(m->attrs, SDP_ATTR_ICE_UFRAG)->value, "Oyef7uvBlwafI3hT");
    sdp_free(s);

    s = parse("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\na=sctp-port:65535\n");
    ck_assert_uint_eq(sdp_media_max_message_size(s->media), 65536);
    sdp_free(s);
    s = parse("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\n"
              "a=max-message-size:18446744073709551615\n");
    ck_assert_uint_eq(sdp_media_max_message_size(s->media), UINT64_MAX);
    sdp_free(s);
    s = parse("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\na=max-message-size:0\n");
    ck_assert_uint_eq(sdp_media_max_message_size(s->media), 0);
    sdp_free(s);

    const char *m_line = "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\n";
    char body[256];
    static const struct {
        const char *attr, *err;
    } bad[] = {
        {"a=sctp-port:0", "must be 1 to 65535"},
        {"a=sctp-port:65536", "must be 1 to 65535"},
        {"a=sctp-port:-1", "must be 1 to 65535"},
        {"a=sctp-port:50 00", "must be 1 to 65535"},
        {"a=sctp-port:5000\na=sctp-port:5001", "duplicate a=sctp-port"},
        {"a=max-message-size:18446744073709551616", "not a 64-bit decimal"},
        {"a=max-message-size:1k", "not a 64-bit decimal"},
        {"a=max-message-size:", "not a 64-bit decimal"},
        {"a=max-message-size:1\na=max-message-size:2", "duplicate a=max-message-size"},
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(body, sizeof(body), "%s%s\n", m_line, bad[i].attr);
        refuse(body, bad[i].err);
    }
    refuse("a=sctp-port:5000\n", "a=sctp-port is not allowed at session level");
    refuse("a=max-message-size:5000\n", "a=max-message-size is not allowed at session level");
}
END_TEST

START_TEST(dcmap_and_dcsa)
{
    struct sdp_session *s = parse(good_bodies[5]);
    const struct sdp_attr *a = sdp_attr_find(s->media->attrs, SDP_ATTR_DCMAP);
    const struct sdp_dcmap *d = &a->u.dcmap;
    ck_assert_uint_eq(d->stream_id, 0);
    ck_assert_str_eq(d->label, "bfcp");
    ck_assert_uint_eq(d->label_len, 4);
    ck_assert_str_eq(d->subprotocol, "bfcp");
    ck_assert(!d->has_ordered && !d->has_max_retr && !d->has_max_time && !d->has_priority);

    d = &(a = sdp_attr_find(a->next, SDP_ATTR_DCMAP))->u.dcmap;
    ck_assert_uint_eq(d->stream_id, 2);
    ck_assert_str_eq(d->label, "MSRP");
    ck_assert_str_eq(d->subprotocol, "msrp");
    ck_assert(d->has_ordered && d->ordered);
    ck_assert(d->has_priority);
    ck_assert_uint_eq(d->priority, 256);

    d = &(a = sdp_attr_find(a->next, SDP_ATTR_DCMAP))->u.dcmap;
    ck_assert_str_eq(d->label, "lossy chat");
    ck_assert_ptr_null(d->subprotocol);
    ck_assert(d->has_ordered && !d->ordered);
    ck_assert(d->has_max_retr && !d->has_max_time);
    ck_assert_uint_eq(d->max_retr, 3);

    a = sdp_attr_find(a->next, SDP_ATTR_DCMAP);
    ck_assert_ptr_nonnull(a);
    d = &a->u.dcmap;
    ck_assert_uint_eq(d->stream_id, 6);
    ck_assert(d->has_max_time && !d->has_max_retr);
    ck_assert_uint_eq(d->max_time, 1000);
    ck_assert_ptr_null(d->label);

    const struct sdp_attr *x = sdp_attr_find(s->media->attrs, SDP_ATTR_DCSA);
    ck_assert_uint_eq(x->u.dcsa.stream_id, 2);
    ck_assert_str_eq(x->u.dcsa.attribute, "accept-types:message/cpim text/plain");
    x = sdp_attr_find(x->next, SDP_ATTR_DCSA);
    ck_assert_str_eq(x->u.dcsa.attribute, "path:msrp://alice.example.com:10001/2s93i93idj;dc");
    x = sdp_attr_find(x->next, SDP_ATTR_DCSA);
    ck_assert_uint_eq(x->u.dcsa.stream_id, 0);
    sdp_free(s);

    /* Escapes may decode to any byte, NUL included; the length says where the label ends. */
    s = parse("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\n"
              "a=dcmap:65534 label=\"a%00b%22%25\" ; priority=0 ;x-ext=\"q\";y-ext=tok\n"
              "a=dcmap:1\na=dcmap:3 LABEL=\"\";Ordered=TRUE\n");
    d = &s->media->attrs->u.dcmap;
    ck_assert_uint_eq(d->stream_id, 65534);
    ck_assert_uint_eq(d->label_len, 5);
    ck_assert_mem_eq(d->label, "a\0b\"%", 6);
    ck_assert(d->has_priority && d->priority == 0);
    d = &s->media->attrs->next->next->u.dcmap;
    ck_assert_uint_eq(d->label_len, 0);
    ck_assert_str_eq(d->label, "");
    ck_assert(d->ordered);
    sdp_free(s);

    const char *m_line = "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\n";
    char body[256];
    static const struct {
        const char *attr, *err;
    } bad[] = {
        {"a=dcmap:65535", "stream id must be 0 to 65534"},
        {"a=dcmap:x label=\"a\"", "stream id must be 0 to 65534"},
        {"a=dcmap:", "stream id must be 0 to 65534"},
        {"a=dcmap:1 label=\"a\";label=\"b\"", "duplicate label"},
        {"a=dcmap:1 subprotocol=\"a\";subprotocol=\"b\"", "duplicate subprotocol"},
        {"a=dcmap:1 ordered=true;ordered=false", "duplicate ordered"},
        {"a=dcmap:1 priority=1;priority=2", "duplicate priority"},
        {"a=dcmap:1 max-retr=1;max-time=2", "only one of max-retr and max-time"},
        {"a=dcmap:1 max-retr=01", "max-retr must be a number"},
        {"a=dcmap:1 max-time=4294967296", "max-time must be a number"},
        {"a=dcmap:1 priority=65536", "priority must be a number"},
        {"a=dcmap:1 ordered=yes", "ordered must be true or false"},
        {"a=dcmap:1 label=abc", "label must be a quoted string"},
        {"a=dcmap:1 label=\"abc", "unterminated label"},
        {"a=dcmap:1 label=\"a%2\"", "bad % escape in label"},
        {"a=dcmap:1 label=\"a%zz\"", "bad % escape in label"},
        {"a=dcmap:1 label=\"\xc3\xa9\"", "must be escaped"},
        {"a=dcmap:1 label=\"a\"x", "expected ';' between options"},
        {"a=dcmap:1 label=\"a\";", "trailing ';'"},
        {"a=dcmap:1 label", "expected name=value option"},
        {"a=dcmap:1 ;label=\"a\"", "expected name=value option"},
        {"a=dcmap:1 x-ext=", "has no value"},
        {"a=dcmap:1\na=dcmap:1 label=\"again\"", "duplicate a=dcmap stream id 1"},
        {"a=dcsa:2", "expected an attribute"},
        {"a=dcsa:2 :x", "expected an attribute"},
        {"a=dcsa:99999 x", "stream id must be 0 to 65534"},
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(body, sizeof(body), "%s%s\n", m_line, bad[i].attr);
        refuse(body, bad[i].err);
    }
    refuse("a=dcmap:1\n", "a=dcmap is not allowed at session level");
    refuse("a=dcsa:1 x\n", "a=dcsa is not allowed at session level");
}
END_TEST

START_TEST(ice_attributes)
{
    struct sdp_session *s = parse("a=ice-lite\na=ice-ufrag:abcd\na=ice-pwd:0123456789abcdef+/ABCD\n"
                                  "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\n"
                                  "a=ice-ufrag:wxyz\n");
    ck_assert_int_eq(s->attrs->kind, SDP_ATTR_ICE_LITE);
    ck_assert_int_eq(s->attrs->next->kind, SDP_ATTR_ICE_UFRAG);
    ck_assert_int_eq(s->attrs->next->next->kind, SDP_ATTR_ICE_PWD);
    ck_assert_str_eq(s->media->attrs->value, "wxyz");
    sdp_free(s);
    refuse("a=ice-lite:yes\n", "a=ice-lite takes no value");
    refuse("a=ice-lite:\n", "a=ice-lite takes no value");
    refuse("a=ice-lite\na=ice-lite\n", "duplicate a=ice-lite");
    refuse("m=application 9 UDP/DTLS/SCTP x\na=ice-lite\n", "not allowed at media level");
    refuse("a=ice-ufrag:abc\n", "a=ice-ufrag: need 4 to 256");
    refuse("a=ice-ufrag:ab-cd\n", "a=ice-ufrag: need 4 to 256");
    refuse("a=ice-pwd:0123456789abcdef+/ABC\n", "a=ice-pwd: need 22 to 256");
    refuse("a=ice-ufrag:abcd\na=ice-ufrag:abce\n", "duplicate a=ice-ufrag");
    refuse("a=ice-pwd\n", "a=ice-pwd needs a value");
}
END_TEST

START_TEST(candidates)
{
    struct sdp_session *s = parse(good_bodies[8]);
    const struct sdp_candidate *c = &s->media->attrs->u.candidate;
    ck_assert_str_eq(c->foundation, "842163049");
    ck_assert_uint_eq(c->component, 1);
    ck_assert_str_eq(c->transport, "udp");
    ck_assert_uint_eq(c->priority, 1677729535u);
    ck_assert_str_eq(c->address, "203.0.113.7");
    ck_assert_int_eq(c->addrtype, SDP_ADDR_IP4);
    ck_assert_uint_eq(c->port, 50000);
    ck_assert_int_eq(c->type, SDP_CAND_SRFLX);
    ck_assert_str_eq(c->raddr, "10.0.0.1");
    ck_assert_int_eq(c->rport, 50000);
    ck_assert_uint_eq(c->ext_count, 2);
    ck_assert_str_eq(c->ext[0].name, "generation");
    ck_assert_str_eq(c->ext[0].value, "0");
    ck_assert_str_eq(c->ext[1].name, "network-cost");
    ck_assert_str_eq(c->ext[1].value, "999");

    c = &s->media->attrs->next->u.candidate;
    ck_assert_int_eq(c->addrtype, SDP_ADDR_IP6);
    ck_assert_int_eq(c->type, SDP_CAND_HOST);
    ck_assert_ptr_null(c->raddr);
    ck_assert_int_eq(c->rport, -1);
    ck_assert_uint_eq(c->ext_count, 1);
    ck_assert_str_eq(c->ext[0].value, "active");

    c = &s->media->attrs->next->next->u.candidate;
    ck_assert_int_eq(c->addrtype, SDP_ADDR_FQDN);
    c = &s->media->attrs->next->next->next->u.candidate;
    ck_assert_int_eq(c->type, SDP_CAND_RELAY);
    ck_assert_uint_eq(c->ext_count, 0);
    ck_assert_ptr_null(c->ext);
    sdp_free(s);

    s = parse("m=application 9 UDP/DTLS/SCTP x\na=candidate:a+/ 256 UDP 2147483647 a.b 0 TYP "
              "x-new rport 1\n");
    c = &s->media->attrs->u.candidate;
    ck_assert_int_eq(c->type, SDP_CAND_OTHER);
    ck_assert_str_eq(c->type_name, "x-new");
    ck_assert_ptr_null(c->raddr);
    ck_assert_int_eq(c->rport, 1);
    sdp_free(s);

    const char *m_line = "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\n";
    char body[300];
    static const struct {
        const char *attr, *err;
    } bad[] = {
        {"a=candidate:", "bad foundation"},
        {"a=candidate:f-1 1 UDP 1 1.2.3.4 9 typ host", "bad foundation"},
        {"a=candidate:012345678901234567890123456789012 1 UDP 1 1.2.3.4 9 typ host",
         "bad foundation"},
        {"a=candidate:1 0 UDP 1 1.2.3.4 9 typ host", "component id must be 1 to 256"},
        {"a=candidate:1 257 UDP 1 1.2.3.4 9 typ host", "component id must be 1 to 256"},
        {"a=candidate:1 1 U:DP 1 1.2.3.4 9 typ host", "bad transport"},
        {"a=candidate:1 1 UDP 0 1.2.3.4 9 typ host", "priority must be 1 to 2^31-1"},
        {"a=candidate:1 1 UDP 2147483648 1.2.3.4 9 typ host", "priority must be 1 to 2^31-1"},
        {"a=candidate:1 1 UDP 1 1.2.3.999 9 typ host", "bad address '1.2.3.999'"},
        {"a=candidate:1 1 UDP 1 ::g 9 typ host", "bad address"},
        {"a=candidate:1 1 UDP 1 a..b 9 typ host", "bad address"},
        {"a=candidate:1 1 UDP 1 a_b 9 typ host", "bad address"},
        {"a=candidate:1 1 UDP 1 "
         "a234567890123456789012345678901234567890123456789012345678901234.example 9 typ host",
         "bad address"},
        {"a=candidate:1 1 UDP 1 1.2.3.4 65536 typ host", "bad port"},
        {"a=candidate:1 1 UDP 1 1.2.3.4 9 type host", "expected 'typ'"},
        {"a=candidate:1 1 UDP 1 1.2.3.4 9", "expected 'typ'"},
        {"a=candidate:1 1 UDP 1 1.2.3.4 9 typ", "bad candidate type"},
        {"a=candidate:1 1 UDP 1 1.2.3.4 9 typ host raddr", "bad raddr"},
        {"a=candidate:1 1 UDP 1 1.2.3.4 9 typ host rport x", "bad rport"},
        {"a=candidate:1 1 UDP 1 1.2.3.4 9 typ host generation", "extension without a value"},
        {"a=candidate:1 1 UDP 1 1.2.3.4 9 typ host a 1 b", "extension without a value"},
        {"a=candidate:1 1 UDP 1 1.2.3.4 9 typ host a:b 1", "bad extension name"},
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(body, sizeof(body), "%s%s\n", m_line, bad[i].attr);
        refuse(body, bad[i].err);
    }
    refuse("a=candidate:1 1 UDP 1 1.2.3.4 9 typ host\n", "not allowed at session level");
}
END_TEST

START_TEST(opaque_attributes_kept_in_order)
{
    struct sdp_session *s = parse("m=message 9 TCP/MSRP *\na=z-last\na=accept-types:*\na=empty:\n"
                                  "a=Fingerprint:$\na=x:  spaced  value\na=3ge2ae:applied\n");
    const struct sdp_attr *a = s->media->attrs;
    ck_assert_str_eq(a->name, "z-last");
    ck_assert_ptr_null(a->value);
    a = a->next;
    ck_assert_str_eq(a->value, "*");
    a = a->next;
    ck_assert_str_eq(a->name, "empty");
    ck_assert_str_eq(a->value, "");
    a = a->next;
    ck_assert_int_eq(a->kind, SDP_ATTR_FINGERPRINT);
    ck_assert_str_eq(a->name, "Fingerprint");
    a = a->next;
    ck_assert_str_eq(a->value, "  spaced  value");
    ck_assert_str_eq(encode_str(s), "m=message 9 TCP/MSRP *\r\na=z-last\r\na=accept-types:*\r\n"
                                    "a=empty:\r\na=Fingerprint:$\r\na=x:  spaced  value\r\n"
                                    "a=3ge2ae:applied\r\n");
    ck_assert_ptr_null(sdp_attr_find_name(s->media->attrs, "nothere"));
    ck_assert_ptr_null(sdp_attr_find_name(s->media->attrs, "z-las"));
    sdp_free(s);
}
END_TEST

/* ---- hostile input ---- */

START_TEST(nul_and_bad_text)
{
    static const struct {
        const char *text;
        size_t len;
        const char *err;
    } bad[] = {
        {"a=x:a\0b\n", 8, "control character 0x00"},
        {"a=x\0:b\n", 7, "control character 0x00"},
        {"\0", 1, "control character 0x00"},
        {"v=0\n\0\n", 6, "control character 0x00"},
        {"s=a\x01\n", 5, "control character 0x01"},
        {"s=a\x7f\n", 5, "control character 0x7f"},
        {"s=a\x1b[0m\n", 8, "control character 0x1b"},
        {"s=\xc0\x80\n", 5, "invalid UTF-8 byte 0xc0"},
        {"s=\xed\xa0\x80\n", 6, "invalid UTF-8 byte 0xed"},
        {"s=\xe2\x82\n", 5, "invalid UTF-8 byte 0xe2"},
        {"s=\xe2\x82", 4, "invalid UTF-8 byte 0xe2"},
        {"s=\xf4\x90\x80\x80\n", 7, "invalid UTF-8 byte 0xf4"},
        {"s=\xf0\x80\x80\x80\n", 7, "invalid UTF-8 byte 0xf0"},
        {"s=\xff\n", 4, "invalid UTF-8 byte 0xff"},
        {"s=\x80\n", 4, "invalid UTF-8 byte 0x80"},
        {"a=x:\xe0\x9f\xbf\n", 8, "invalid UTF-8 byte 0xe0"},
        {"s=\xe2\x82\x41\n", 6, "invalid UTF-8 byte 0xe2"},
        {"s=\xf0\x9f\x98\x41\n", 7, "invalid UTF-8 byte 0xf0"},
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        refuse_len(bad[i].text, bad[i].len, NULL, -EINVAL, bad[i].err);

    struct sdp_session *s = parse(good_bodies[9]);
    ck_assert_str_eq(s->name, "Caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    sdp_free(s);
    s = parse("s=\xef\xbf\xbf\xf4\x8f\xbf\xbf\xed\x9f\xbf\ta\n");
    sdp_free(s);
}
END_TEST

/* Text is checked eight bytes at a time: a bad or multi-byte character anywhere is seen. */
START_TEST(text_check_every_position)
{
    static const unsigned char bad[] = {0x00, 0x01, 0x09 /* TAB is fine */, 0x0d, 0x1f, 0x7f, 0x80,
                                        0xc1, 0xff};
    char line[64];
    /* "s=" then x at 2..39, then "y\n": every tested position is inside the value. */
    for (size_t pos = 2; pos < 40; pos++) {
        for (unsigned i = 0; i < sizeof(bad); i++) {
            memset(line, 'x', sizeof(line));
            memcpy(line, "s=", 2);
            line[pos] = (char)bad[i];
            memcpy(line + 40, "y\n", 2);
            if (bad[i] == 0x09) {
                struct sdp_session *s = parse_len(line, 42);
                ck_assert_uint_eq(strlen(s->name), 39);
                sdp_free(s);
                continue;
            }
            struct sdp_session *s = NULL;
            struct sdp_error err;
            ck_assert_int_eq(sdp_parse(line, 42, NULL, &s, &err), -EINVAL);
            ck_assert_uint_eq(err.offset, pos);
        }
        /* A valid 3-byte character at pos. */
        memset(line, 'x', sizeof(line));
        memcpy(line, "s=", 2);
        memcpy(line + pos, "\xe2\x82\xac", 3);
        line[44] = '\n';
        struct sdp_session *s = parse_len(line, 45);
        ck_assert_uint_eq(strlen(s->name), 42);
        sdp_free(s);
    }
}
END_TEST

START_TEST(huge_line)
{
    size_t n = 1u << 20;
    char *body = malloc(n + 16);
    ck_assert_ptr_nonnull(body);
    memcpy(body, "a=x:", 4);
    memset(body + 4, 'y', n);
    body[n + 4] = '\n';
    refuse_len(body, n + 5, NULL, -E2BIG, "exceeds 65535");
    struct sdp_limits lim = sdp_default_limits;
    lim.max_len = 2u << 20;
    refuse_len(body, n + 5, &lim, -E2BIG, "line longer than 4096 bytes");
    lim.max_line_len = 2u << 20;
    struct sdp_session *s = NULL;
    ck_assert_int_eq(sdp_parse(body, n + 5, &lim, &s, NULL), 0);
    ck_assert_uint_eq(strlen(s->attrs->value), n);
    sdp_free(s);
    free(body);
}
END_TEST

/* n copies of line (which ends in \n) after head. */
static char *repeat(const char *head, const char *line, unsigned n, size_t *len)
{
    size_t hl = strlen(head), ll = strlen(line);
    char *b = malloc(hl + ll * n + 1);
    ck_assert_ptr_nonnull(b);
    memcpy(b, head, hl);
    for (unsigned i = 0; i < n; i++)
        memcpy(b + hl + ll * i, line, ll);
    *len = hl + ll * n;
    b[*len] = '\0';
    return b;
}

START_TEST(count_limits)
{
    size_t len;
    char *b;
    struct sdp_session *s;

    b = repeat("m=message 9 TCP/MSRP *\n", "a=x\n", 128, &len);
    s = parse_len(b, len);
    sdp_free(s);
    free(b);
    b = repeat("m=message 9 TCP/MSRP *\n", "a=x\n", 129, &len);
    refuse_len(b, len, NULL, -E2BIG, "line 130: more than 128 attributes");
    free(b);
    b = repeat("", "b=AS:1\n", 129, &len);
    refuse_len(b, len, NULL, -E2BIG, "more than 128 attributes");
    free(b);

    b = repeat("", "m=message 9 TCP/MSRP *\n", 32, &len);
    sdp_free(parse_len(b, len));
    free(b);
    b = repeat("", "m=message 9 TCP/MSRP *\n", 33, &len);
    refuse_len(b, len, NULL, -E2BIG, "more than 32 m= lines");
    free(b);

    b = repeat("", "\n", 1025, &len);
    refuse_len(b, len, NULL, -E2BIG, "more than 1024 lines");
    free(b);

    char line[320];
    snprintf(line, sizeof(line), "a=fingerprint:sha-256 %s\n", hex_digest(32, ':'));
    b = repeat("", line, 8, &len);
    sdp_free(parse_len(b, len));
    free(b);
    b = repeat("", line, 9, &len);
    refuse_len(b, len, NULL, -E2BIG, "more than 8 a=fingerprint");
    free(b);

    /* 65 distinct stream ids. */
    b = malloc(65 * 32 + 64);
    len = (size_t)sprintf(b, "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\n");
    for (int i = 0; i < 65; i++)
        len += (size_t)sprintf(b + len, "a=dcmap:%d\n", i);
    refuse_len(b, len, NULL, -E2BIG, "more than 64 a=dcmap");
    struct sdp_limits lim = sdp_default_limits;
    lim.max_dcmaps = 100;
    ck_assert_int_eq(sdp_parse(b, len, &lim, &s, NULL), 0);
    sdp_free(s);
    free(b);

    lim = sdp_default_limits;
    lim.max_attrs = 2;
    const char *three = "a=x\na=y\ni=z\n";
    refuse_len(three, strlen(three), &lim, -E2BIG, "more than 2 attributes");
}
END_TEST

/* Every prefix of every good body either parses (and round-trips) or fails cleanly. */
START_TEST(truncation_at_every_byte)
{
    for (unsigned i = 0; i < sizeof(good_bodies) / sizeof(good_bodies[0]); i++) {
        size_t n = strlen(good_bodies[i]);
        for (size_t k = 0; k <= n; k++) {
            /* A heap copy of exactly k bytes lets ASan catch any read past the end. */
            char *copy = malloc(k > 0 ? k : 1);
            ck_assert_ptr_nonnull(copy);
            memcpy(copy, good_bodies[i], k);
            struct sdp_session *s = NULL;
            struct sdp_error err;
            int rc = sdp_parse(copy, k, NULL, &s, &err);
            if (rc == 0) {
                check_round_trip(s);
                sdp_free(s);
            } else {
                ck_assert(rc == -EINVAL || rc == -E2BIG);
                ck_assert_ptr_null(s);
                ck_assert_msg(err.text[0] != '\0', "no error text at %u/%zu", i, k);
            }
            free(copy);
        }
    }
}
END_TEST

START_TEST(round_trip_every_good_body)
{
    for (unsigned i = 0; i < sizeof(good_bodies) / sizeof(good_bodies[0]); i++)
        sdp_free(parse(good_bodies[i]));
}
END_TEST

/* ---- encode, compare, build replies ---- */

START_TEST(encode_buffer_sizes)
{
    struct sdp_session *s = parse(good_bodies[0]);
    const char *want = "c=IN IP4 $\r\nm=message $ TCP/TLS/MSRP *\r\n"
                       "a=fingerprint:$\r\na=setup:actpass\r\n";
    size_t n = strlen(want), len = 0;
    char buf[128];
    memset(buf, '#', sizeof(buf));
    ck_assert_int_eq(sdp_encode(s, buf, n - 1, &len), -ENOSPC);
    ck_assert_uint_eq(len, n);
    ck_assert_int_eq(buf[n - 1], '#');
    memset(buf, '#', sizeof(buf));
    ck_assert_int_eq(sdp_encode(s, buf, n, &len), 0);
    ck_assert_mem_eq(buf, want, n);
    ck_assert_int_eq(buf[n], '#');
    ck_assert_int_eq(sdp_encode(s, buf, n + 1, NULL), 0);
    ck_assert_str_eq(buf, want);
    sdp_free(s);
}
END_TEST

START_TEST(equality_sees_differences)
{
    static const char *const pairs[][2] = {
        {"a=x:1\n", "a=x:2\n"},
        {"a=x\n", "a=x:\n"},
        {"a=x\na=y\n", "a=y\na=x\n"},
        {"a=x\n", "a=X\n"},
        {"m=message 9 TCP/MSRP *\n", "m=message 10 TCP/MSRP *\n"},
        {"m=message 9 TCP/MSRP *\n", "m=message 9/2 TCP/MSRP *\n"},
        {"m=message 9 TCP/MSRP *\n", "m=message $ TCP/MSRP *\n"},
        {"m=message 9 TCP/MSRP *\n", "m=message 9 TCP/TLS/MSRP *\n"},
        {"m=message 9 TCP/MSRP *\n", "m=message 9 TCP/MSRP * *\n"},
        {"m=message 9 TCP/MSRP *\n", "m=message 9 TCP/MSRP *\nm=message 9 TCP/MSRP *\n"},
        {"c=IN IP4 $\n", "c=IN IP6 $\n"},
        {"c=IN IP4 $\n", "c=IN IP4 -\n"},
        {"c=IN IP4 1.2.3.4\n", "c=IN IP4 1.2.3.5\n"},
        {"c=IN IP4 $\n", "v=0\nc=IN IP4 $\n"},
        {"v=0\n", "v=0\nv=0\n"},
        {"s=a\n", "s=b\n"},
        {"b=AS:1\n", "b=AS:2\n"},
        {"t=0 0\n", "t=0 1\n"},
        {"o=- 1 1 IN IP4 a\n", "o=- 1 2 IN IP4 a\n"},
        {"m=message 9 TCP/MSRP *\na=x\n", "m=message 9 TCP/MSRP *\nc=IN IP4 $\na=x\n"},
    };
    for (unsigned i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        struct sdp_session *a = parse(pairs[i][0]), *b = parse(pairs[i][1]);
        ck_assert_msg(!sdp_equal(a, b) && !sdp_equal(b, a), "pair %u compares equal", i);
        ck_assert(sdp_equal(a, a));
        sdp_free(a);
        sdp_free(b);
    }
    ck_assert(sdp_equal(NULL, NULL));
}
END_TEST

START_TEST(fill_reply_local)
{
    struct sdp_session *s = parse(good_bodies[0]);
    struct sdp_media *m = s->media;
    uint8_t digest[32];
    for (int i = 0; i < 32; i++)
        digest[i] = (uint8_t)(0xF0 + i);

    ck_assert_int_eq(sdp_connection_set(&s->conn, SDP_VALUE_SET, "192.0.2.10"), 0);
    ck_assert_int_eq(sdp_media_set_port(m, SDP_VALUE_SET, 40000), 0);
    ck_assert_int_eq(sdp_fingerprint_fill(s, m, SDP_HASH_SHA256, digest, 32), 0);
    const struct sdp_attr *tls = NULL;
    ck_assert_int_eq(sdp_attr_add(s, m, "tls-id", "0123456789abcdefghij", &tls), 0);
    ck_assert_int_eq(tls->kind, SDP_ATTR_TLS_ID);
    const char *want =
        "c=IN IP4 192.0.2.10\r\nm=message 40000 TCP/TLS/MSRP *\r\n"
        "a=fingerprint:sha-256 F0:F1:F2:F3:F4:F5:F6:F7:F8:F9:FA:FB:FC:FD:FE:FF:00:01:02:03:04:05:"
        "06:07:08:09:0A:0B:0C:0D:0E:0F\r\na=setup:actpass\r\na=tls-id:0123456789abcdefghij\r\n";
    ck_assert_str_eq(encode_str(s), want);
    const struct sdp_fingerprint *f = &m->attrs->u.fingerprint;
    ck_assert_int_eq(f->kind, SDP_VALUE_SET);
    ck_assert_uint_eq(f->len, 32);
    ck_assert_mem_eq(f->digest, digest, 32);
    check_round_trip(s);

    /* No fingerprint:$ to replace: one is added, at the end of the level. */
    ck_assert_int_eq(sdp_fingerprint_fill(s, NULL, SDP_HASH_SHA1, digest, 20), 0);
    ck_assert_int_eq(s->attrs->u.fingerprint.hash, SDP_HASH_SHA1);
    ck_assert_int_eq(sdp_fingerprint_fill(s, NULL, SDP_HASH_SHA1, digest, 19), -EINVAL);
    ck_assert_int_eq(sdp_fingerprint_fill(s, NULL, SDP_HASH_OTHER, digest, 0), -EINVAL);

    /* IPv6, CHOOSE and unspecified. */
    ck_assert_int_eq(sdp_connection_set(&m->conn, SDP_VALUE_SET, "2001:db8::5"), 0);
    ck_assert_int_eq(m->conn.addrtype, SDP_ADDR_IP6);
    ck_assert_int_eq(sdp_connection_set(&s->conn, SDP_VALUE_CHOOSE, NULL), 0);
    ck_assert_int_eq(sdp_media_set_port(m, SDP_VALUE_UNSPECIFIED, 0), 0);
    ck_assert_int_eq(sdp_connection_set(&s->conn, SDP_VALUE_SET, "192.0.2.300"), -EINVAL);
    ck_assert_int_eq(sdp_connection_set(&s->conn, SDP_VALUE_SET, NULL), -EINVAL);
    ck_assert_int_eq(sdp_connection_set(&s->conn, (enum sdp_value_kind)7, NULL), -EINVAL);
    ck_assert_int_eq(sdp_media_set_port(m, (enum sdp_value_kind)7, 0), -EINVAL);
    check_round_trip(s);
    ck_assert_str_eq(
        encode_str(s),
        "c=IN IP4 $\r\na=fingerprint:sha-1 F0:F1:F2:F3:F4:F5:F6:F7:F8:F9:FA:FB:FC:FD:FE:FF:00:"
        "01:02:03\r\nm=message - TCP/TLS/MSRP *\r\nc=IN IP6 2001:db8::5\r\n"
        "a=fingerprint:sha-256 F0:F1:F2:F3:F4:F5:F6:F7:F8:F9:FA:FB:FC:FD:FE:FF:00:01:02:03:04:05:"
        "06:07:08:09:0A:0B:0C:0D:0E:0F\r\na=setup:actpass\r\na=tls-id:0123456789abcdefghij\r\n");

    /* Adding runs the parser's checks. */
    ck_assert_int_eq(sdp_attr_add(s, m, "setup", "active", NULL), -EINVAL);      /* duplicate */
    ck_assert_int_eq(sdp_attr_add(s, m, "connection", "old", NULL), -EINVAL);    /* bad value */
    ck_assert_int_eq(sdp_attr_add(s, NULL, "sctp-port", "5000", NULL), -EINVAL); /* level */
    ck_assert_int_eq(sdp_attr_add(s, m, "bad name", NULL, NULL), -EINVAL);
    ck_assert_int_eq(sdp_attr_add(s, m, "x", "a\r\nm=evil", NULL), -EINVAL);
    ck_assert_int_eq(sdp_attr_add(s, m, "ice-lite", NULL, NULL), -EINVAL); /* session only */
    ck_assert_int_eq(sdp_attr_add(s, NULL, "ice-lite", NULL, NULL), 0);
    ck_assert_int_eq(sdp_attr_add(s, m, "3ge2ae", "applied", NULL), 0);

    /* Remove, then the slot is free again. */
    const struct sdp_attr *setup = sdp_attr_find(m->attrs, SDP_ATTR_SETUP);
    ck_assert_int_eq(sdp_attr_remove(s, m, setup), 0);
    ck_assert_int_eq(sdp_attr_remove(s, m, setup), -ENOENT);
    ck_assert_ptr_null(sdp_attr_find(m->attrs, SDP_ATTR_SETUP));
    ck_assert_int_eq(sdp_attr_add(s, m, "setup", "passive", NULL), 0);
    check_round_trip(s);

    ck_assert_int_eq(sdp_attr_add(NULL, m, "x", NULL, NULL), -EINVAL);
    ck_assert_int_eq(sdp_attr_add(s, m, NULL, NULL, NULL), -EINVAL);
    ck_assert_int_eq(sdp_attr_remove(NULL, m, setup), -EINVAL);
    ck_assert_int_eq(sdp_fingerprint_fill(NULL, m, SDP_HASH_SHA1, digest, 20), -EINVAL);
    ck_assert_int_eq(sdp_fingerprint_fill(s, m, SDP_HASH_SHA1, NULL, 20), -EINVAL);
    sdp_free(s);
}
END_TEST

/* Setters on levels that already hold kept lines count them against the limit too. */
START_TEST(add_to_level_with_kept_lines)
{
    size_t len;
    char *b = malloc(128 * 12 + 64);
    ck_assert_ptr_nonnull(b);
    len = (size_t)sprintf(b, "m=message 9 TCP/MSRP *\n");
    for (int i = 0; i < 64; i++)
        len += (size_t)sprintf(b + len, "b=AS:%d\n", i);
    for (int i = 0; i < 63; i++)
        len += (size_t)sprintf(b + len, "a=x%d\n", i);
    struct sdp_session *s = parse_len(b, len);
    ck_assert_ptr_null(sdp_media_connection(s, s->media));
    ck_assert_ptr_null(sdp_media_connection(NULL, NULL));
    ck_assert_int_eq(sdp_attr_add(s, s->media, "last", NULL, NULL), 0);
    ck_assert_int_eq(sdp_attr_add(s, s->media, "one-too-many", NULL, NULL), -E2BIG);
    check_round_trip(s);
    sdp_free(s);
    free(b);
}
END_TEST

START_TEST(fill_replaces_every_choose)
{
    struct sdp_session *s =
        parse("m=message $ TCP/TLS/MSRP *\na=fingerprint:$\na=x\na=fingerprint:$\na=y\n");
    uint8_t d[20] = {1};
    ck_assert_int_eq(sdp_fingerprint_fill(s, s->media, SDP_HASH_SHA1, d, 20), 0);
    ck_assert_str_eq(encode_str(s), "m=message $ TCP/TLS/MSRP *\r\n"
                                    "a=fingerprint:sha-1 01:00:00:00:00:00:00:00:00:00:00:00:00:"
                                    "00:00:00:00:00:00:00\r\na=x\r\na=y\r\n");
    check_round_trip(s);
    sdp_free(s);
}
END_TEST

/* Many edits: the arena grows past its first block without losing anything. */
START_TEST(arena_growth)
{
    struct sdp_session *s = parse("m=message 9 TCP/MSRP *\n");
    char value[600];
    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(sdp_attr_add(s, s->media, "x", value, NULL), 0);
        ck_assert_int_eq(sdp_attr_remove(s, s->media, s->media->attrs), 0);
    }
    ck_assert_int_eq(sdp_attr_add(s, s->media, "x", value, NULL), 0);
    ck_assert_str_eq(s->media->attrs->value, value);
    sdp_free(s);
    sdp_free(NULL);
}
END_TEST

static Suite *sdp_suite(void)
{
    Suite *su = suite_create("sdp");
    TCase *tc = tcase_create("e2ae");
    tcase_add_test(tc, e2ae_local_choose);
    tcase_add_test(tc, datachannel_local_choose);
    tcase_add_test(tc, e2ae_remote_fingerprint);
    tcase_add_test(tc, msrp_offer_rfc4975_style);
    suite_add_tcase(su, tc);

    tc = tcase_create("structure");
    tcase_add_test(tc, full_session_encoded_exactly);
    tcase_add_test(tc, unspecified_values);
    tcase_add_test(tc, ipv6_and_address_validation);
    tcase_add_test(tc, line_ends_and_blanks);
    tcase_add_test(tc, multiple_sessions);
    tcase_add_test(tc, media_protocols);
    tcase_add_test(tc, kept_lines_in_rfc_order);
    tcase_add_test(tc, bad_lines);
    suite_add_tcase(su, tc);

    tc = tcase_create("attributes");
    tcase_add_test(tc, fingerprint_every_hash);
    tcase_add_test(tc, fingerprint_forms);
    tcase_add_test(tc, setup_and_connection);
    tcase_add_test(tc, tls_id);
    tcase_add_test(tc, sctp_port_and_max_message_size);
    tcase_add_test(tc, dcmap_and_dcsa);
    tcase_add_test(tc, ice_attributes);
    tcase_add_test(tc, candidates);
    tcase_add_test(tc, opaque_attributes_kept_in_order);
    suite_add_tcase(su, tc);

    tc = tcase_create("hostile");
    tcase_add_test(tc, nul_and_bad_text);
    tcase_add_test(tc, text_check_every_position);
    tcase_add_test(tc, huge_line);
    tcase_add_test(tc, count_limits);
    tcase_add_test(tc, truncation_at_every_byte);
    tcase_add_test(tc, round_trip_every_good_body);
    suite_add_tcase(su, tc);

    tc = tcase_create("encode");
    tcase_add_test(tc, encode_buffer_sizes);
    tcase_add_test(tc, equality_sees_differences);
    tcase_add_test(tc, fill_reply_local);
    tcase_add_test(tc, fill_replaces_every_choose);
    tcase_add_test(tc, add_to_level_with_kept_lines);
    tcase_add_test(tc, arena_growth);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(sdp_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
