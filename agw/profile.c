/* The Iq SDP profile (DESIGN.md §5) applied to terminations, and the packages we support. */
#include "agw/agw.h"
#include "agw/stun.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int agw_status_set(struct agw_status *st, unsigned code, const char *fmt, ...)
{
    st->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->text, sizeof(st->text), fmt, ap);
    va_end(ap);
    /* The text travels in an H.248 quotedString. */
    for (char *p = st->text; *p != '\0'; p++)
        if (*p == '"' || (unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '\'';
    return -1;
}

/* Package items the gateway implements. Names marked unconfirmed come from no published text we
 * could check (DESIGN.md §4): they live here only, to be corrected in one place. */
static const struct {
    const char *name;
    enum agw_item_kind kind;
} items[] = {
    {"ipdc/realm", AGW_ITEM_PROPERTY}, /* H.248.41 */
    {"nt/os", AGW_ITEM_STATISTIC},     /* H.248.1 Annex E.11 */
    {"nt/or", AGW_ITEM_STATISTIC},
    {"nt/dur", AGW_ITEM_STATISTIC},
    {"nt/netfail", AGW_ITEM_EVENT},
    {"it/ito", AGW_ITEM_EVENT},      /* H.248.14 */
    {"tlsc/est", AGW_ITEM_SIGNAL},   /* TLS session control: establish (unconfirmed name) */
    {"tlsc/fail", AGW_ITEM_EVENT},   /* TLS session control: failure (unconfirmed name) */
    {"adid/ipstop", AGW_ITEM_EVENT}, /* H.248.40 ip flow stop detection (dt, seconds) */
    /* Data-channel statistics: messages sent, received, channels opened (gateway-defined) */
    {"dc/ms", AGW_ITEM_STATISTIC},
    {"dc/mr", AGW_ITEM_STATISTIC},
    {"dc/ch", AGW_ITEM_STATISTIC},
};

static const struct agw_package_info packages[] = {
    {"ipdc", 1}, {"nt", 1}, {"it", 1}, {"tlsc", 1}, {"adid", 1}, {"dc", 1},
};

const struct agw_package_info *agw_profile_packages(size_t *n)
{
    *n = sizeof(packages) / sizeof(packages[0]);
    return packages;
}

unsigned agw_profile_check_item(enum agw_item_kind kind, const char *name, size_t len)
{
    const char *slash = memchr(name, '/', len);
    size_t pkg_len = slash != NULL ? (size_t)(slash - name) : len;
    bool package_known = false;
    for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++) {
        const char *n = items[i].name;
        if (strncmp(n, name, pkg_len) == 0 && n[pkg_len] == '/')
            package_known = true;
        if (strlen(n) == len && memcmp(n, name, len) == 0 && items[i].kind == kind)
            return 0;
    }
    if (!package_known)
        return 440;
    switch (kind) {
    case AGW_ITEM_EVENT:
        return 451;
    case AGW_ITEM_SIGNAL:
        return 452;
    case AGW_ITEM_STATISTIC:
        return 453;
    case AGW_ITEM_PROPERTY:
        break;
    }
    return 445;
}

static bool proto_secure(enum sdp_proto p)
{
    return p == SDP_PROTO_TCP_TLS_MSRP || p == SDP_PROTO_TCP_TLS_BFCP ||
           p == SDP_PROTO_UDP_DTLS_SCTP || p == SDP_PROTO_TCP_DTLS_SCTP || p == SDP_PROTO_DTLS_SCTP;
}

static bool proto_datagram(enum sdp_proto p)
{
    return p == SDP_PROTO_UDP_DTLS_SCTP || p == SDP_PROTO_DTLS_SCTP || p == SDP_PROTO_UDP_SCTP;
}

/* Parses an SDP body that must describe exactly one stream. */
static int parse_one_media(const char *what, const char *text, size_t len, struct sdp_session **out,
                           struct sdp_media **media, struct agw_status *st)
{
    struct sdp_error err;
    int rc = sdp_parse(text, len, NULL, out, &err);
    if (rc < 0)
        return agw_status_set(st, rc == -E2BIG ? 510 : 442, "%s SDP line %d: %s", what, err.line,
                              err.text);
    if ((*out)->next != NULL || (*out)->media == NULL || (*out)->media->next != NULL) {
        sdp_free(*out);
        *out = NULL;
        return agw_status_set(st, 449, "%s SDP must describe one stream (one m= line)", what);
    }
    *media = (*out)->media;
    if ((*media)->proto_id == SDP_PROTO_OTHER) {
        char proto[64];
        snprintf(proto, sizeof(proto), "%s", (*media)->proto);
        sdp_free(*out);
        *out = NULL;
        return agw_status_set(st, 515, "unsupported media protocol %s", proto);
    }
    return 0;
}

static int check_proto(struct agw_term *t, const struct sdp_media *media, struct agw_status *st)
{
    enum sdp_proto p =
        media->proto_id == SDP_PROTO_DTLS_SCTP ? SDP_PROTO_UDP_DTLS_SCTP : media->proto_id;
    if (p == SDP_PROTO_TCP_DTLS_SCTP)
        return agw_status_set(st, 515, "TCP/DTLS/SCTP is not supported: use UDP/DTLS/SCTP");
    if (t->proto != SDP_PROTO_OTHER && t->proto != p)
        return agw_status_set(st, 449, "protocol %s differs from the termination's %s",
                              media->proto, t->proto_text);
    if (t->proto == SDP_PROTO_OTHER) {
        t->proto = p;
        snprintf(t->proto_text, sizeof(t->proto_text), "%s", media->proto);
        t->secure = proto_secure(p);
        t->datagram = proto_datagram(p);
    }
    return 0;
}

static const enum agw_tls_hash hash_map[] = {
    [SDP_HASH_SHA1] = AGW_TLS_HASH_SHA1,     [SDP_HASH_SHA224] = AGW_TLS_HASH_SHA224,
    [SDP_HASH_SHA256] = AGW_TLS_HASH_SHA256, [SDP_HASH_SHA384] = AGW_TLS_HASH_SHA384,
    [SDP_HASH_SHA512] = AGW_TLS_HASH_SHA512,
};

static int take_fingerprints(struct agw_term *t, const struct sdp_media *media,
                             const struct sdp_session *s, struct agw_status *st)
{
    struct agw_tls_fingerprint fps[AGW_MAX_FINGERPRINTS];
    memset(fps, 0, sizeof(fps)); /* copied and compared whole later: no stray bytes */
    unsigned n = 0, seen = 0;
    const struct sdp_attr *lists[2] = {media->attrs, s->attrs};
    for (int level = 0; level < 2; level++) {
        for (const struct sdp_attr *a = sdp_attr_find(lists[level], SDP_ATTR_FINGERPRINT);
             a != NULL; a = sdp_attr_find(a->next, SDP_ATTR_FINGERPRINT)) {
            const struct sdp_fingerprint *f = &a->u.fingerprint;
            seen++;
            if (f->kind != SDP_VALUE_SET)
                return agw_status_set(st, 449, "a=fingerprint:$ is not allowed in Remote");
            if (f->hash < SDP_HASH_SHA1 || f->hash > SDP_HASH_SHA512)
                continue; /* md5, md2 and unknown hashes: never used to verify */
            if (n == AGW_MAX_FINGERPRINTS)
                return agw_status_set(st, 510, "more than %d fingerprints", AGW_MAX_FINGERPRINTS);
            fps[n].hash = hash_map[f->hash];
            fps[n].len = f->len;
            memcpy(fps[n].digest, f->digest, f->len);
            n++;
        }
        if (seen > 0)
            break; /* media-level fingerprints override session-level ones */
    }
    if (seen > 0 && n == 0)
        return agw_status_set(st, 449,
                              "no supported fingerprint hash (sha-1, sha-224, sha-256, "
                              "sha-384 or sha-512 required)");
    if (seen > 0) {
        struct agw_tls_fingerprint *copy = malloc(n * sizeof(fps[0]));
        if (copy == NULL)
            return agw_status_set(st, 510, "out of memory");
        memcpy(copy, fps, n * sizeof(fps[0]));
        free(t->fingerprints);
        t->fingerprints = copy;
        t->n_fingerprints = n;
    }
    return 0;
}

static enum agw_tcp_role role_against(enum sdp_setup remote)
{
    switch (remote) {
    case SDP_SETUP_ACTIVE:
        return AGW_ROLE_PASSIVE;
    case SDP_SETUP_PASSIVE:
        return AGW_ROLE_ACTIVE;
    case SDP_SETUP_ACTPASS:
        return AGW_ROLE_ACTIVE; /* the gateway picks: it connects */
    case SDP_SETUP_HOLDCONN:
        break;
    }
    return AGW_ROLE_NONE;
}

static int store_text(char **dst, size_t *dst_len, const char *text, size_t len)
{
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, text, len);
    copy[len] = '\0';
    free(*dst);
    *dst = copy;
    *dst_len = len;
    return 0;
}

/* The data-channel part of t, made on first use; NULL (and st set) when out of memory. */
static struct agw_dc_params *term_dc(struct agw_term *t, struct agw_status *st)
{
    if (t->dc == NULL && (t->dc = calloc(1, sizeof(*t->dc))) == NULL)
        agw_status_set(st, 510, "out of memory");
    return t->dc;
}

/* The dcmap channels of a media (RFC 8864): replaced by each SDP that lists any. */
static void take_dcmaps(struct agw_dc_params *dc, const struct sdp_media *media)
{
    unsigned n = 0;
    for (const struct sdp_attr *a = sdp_attr_find(media->attrs, SDP_ATTR_DCMAP);
         a != NULL && n < AGW_MAX_DCMAPS; a = sdp_attr_find(a->next, SDP_ATTR_DCMAP)) {
        const struct sdp_dcmap *d = &a->u.dcmap;
        struct agw_dcmap *m = &dc->dcmaps[n++];
        memset(m, 0, sizeof(*m));
        m->stream = d->stream_id;
        m->unordered = d->has_ordered && !d->ordered;
        if (d->has_max_retr) {
            m->pr = 1;
            m->pr_value = d->max_retr;
        } else if (d->has_max_time) {
            m->pr = 2;
            m->pr_value = d->max_time;
        }
        m->msrp = d->subprotocol != NULL && d->subprotocol_len == 4 &&
                  strncasecmp(d->subprotocol, "msrp", 4) == 0;
    }
    if (n > 0)
        dc->n_dcmaps = n;
}

/* a=sctp-port, a=max-message-size, a=tls-id, a=dcmap and a=ice-ufrag of the far end's
 * data-channel SDP. */
static int take_datachannel_attrs(struct agw_term *t, const struct sdp_session *s,
                                  const struct sdp_media *media, struct agw_status *st)
{
    struct agw_dc_params *dc = term_dc(t, st);
    if (dc == NULL)
        return -1;
    const struct sdp_attr *ufrag = sdp_attr_find(media->attrs, SDP_ATTR_ICE_UFRAG);
    if (ufrag == NULL)
        ufrag = sdp_attr_find(s->attrs, SDP_ATTR_ICE_UFRAG);
    dc->remote_ice_ufrag[0] = '\0';
    if (ufrag != NULL && ufrag->value != NULL &&
        strlen(ufrag->value) < sizeof(dc->remote_ice_ufrag))
        snprintf(dc->remote_ice_ufrag, sizeof(dc->remote_ice_ufrag), "%s", ufrag->value);
    const struct sdp_attr *port = sdp_attr_find(media->attrs, SDP_ATTR_SCTP_PORT);
    dc->remote_sctp_port = port != NULL ? port->u.sctp_port : AGW_SCTP_PORT_DEFAULT;
    dc->remote_max_message_size = sdp_media_max_message_size(media);
    const struct sdp_attr *id = sdp_attr_find(media->attrs, SDP_ATTR_TLS_ID);
    if (id != NULL && id->value != NULL) {
        /* RFC 8842: a new tls-id is a new DTLS association. */
        if (dc->remote_tls_id[0] != '\0' && strncmp(dc->remote_tls_id, id->value, AGW_TLS_ID_MAX))
            t->connection_generation++;
        snprintf(dc->remote_tls_id, sizeof(dc->remote_tls_id), "%s", id->value);
    }
    take_dcmaps(dc, media);
    return 0;
}

int agw_profile_apply_remote(struct agw_term *t, const char *text, size_t len,
                             struct agw_status *st)
{
    struct sdp_session *s;
    struct sdp_media *media;
    if (parse_one_media("Remote", text, len, &s, &media, st) < 0)
        return -1;
    int rc = check_proto(t, media, st);
    if (rc == 0)
        rc = take_fingerprints(t, media, s, st);
    if (rc == 0) {
        const struct sdp_attr *setup = sdp_attr_find(media->attrs, SDP_ATTR_SETUP);
        if (setup == NULL)
            setup = sdp_attr_find(s->attrs, SDP_ATTR_SETUP);
        if (setup != NULL && setup->u.setup != SDP_SETUP_HOLDCONN)
            t->tcp_role = role_against(setup->u.setup);
        /* RFC 4145: a=connection:new in a later Remote asks for a fresh connection. */
        const struct sdp_attr *conn = sdp_attr_find(media->attrs, SDP_ATTR_CONNECTION);
        if (conn != NULL && conn->u.connection == SDP_CONNECTION_NEW && t->remote_sdp != NULL)
            t->connection_generation++;
        const struct sdp_connection *c = sdp_media_connection(s, media);
        if (c != NULL && c->kind == SDP_VALUE_SET && media->port_kind == SDP_VALUE_SET &&
            media->port != 0) {
            union agw_sockaddr ss = {0};
            int ok = c->addrtype == SDP_ADDR_IP6 ? uv_ip6_addr(c->addr, media->port, &ss.in6)
                                                 : uv_ip4_addr(c->addr, media->port, &ss.in);
            if (ok == 0) {
                t->remote_addr = ss;
                t->has_remote_addr = true;
            }
        }
        if (t->datagram && take_datachannel_attrs(t, s, media, st) < 0)
            rc = -1;
        if (rc == 0 && store_text(&t->remote_sdp, &t->remote_len, text, len) < 0)
            rc = agw_status_set(st, 510, "out of memory");
    }
    sdp_free(s);
    return rc;
}

static void random_hex(char *out, size_t bytes)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t buf[32];
    if (bytes > sizeof(buf))
        bytes = sizeof(buf);
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = f != NULL ? fread(buf, 1, bytes, f) : 0;
    if (f != NULL)
        fclose(f);
    for (size_t i = got; i < bytes; i++)
        buf[i] = (uint8_t)rand();
    for (size_t i = 0; i < bytes; i++) {
        out[2 * i] = hex[buf[i] >> 4];
        out[2 * i + 1] = hex[buf[i] & 15];
    }
    out[2 * bytes] = '\0';
}

/* The gateway's address on the c= line: the realm's, whatever the ALG asked. */
static int fill_connection(struct agw_term *t, struct sdp_session *s, struct sdp_media *media,
                           struct agw_status *st)
{
    struct sdp_connection *c = media->conn.present ? &media->conn : &s->conn;
    if (c->present && c->kind == SDP_VALUE_SET && strcmp(c->addr, t->realm->addr_text) != 0)
        return agw_status_set(st, 449, "address %s is not realm %s's %s", c->addr, t->realm->name,
                              t->realm->addr_text);
    if (sdp_connection_set(c, SDP_VALUE_SET, t->realm->addr_text) < 0)
        return agw_status_set(st, 500, "cannot set the c= address");
    return 0;
}

static int fill_port(struct agw_model *m, struct agw_term *t, struct sdp_media *media,
                     struct agw_status *st)
{
    (void)m;
    bool choose = media->port_kind != SDP_VALUE_SET;
    if (!choose && media->port != t->port && !(t->tcp_role == AGW_ROLE_ACTIVE && media->port == 9))
        return agw_status_set(st, 449, "port %u was not chosen by the gateway", media->port);
    if (!t->port_reserved) {
        if (!t->datagram && t->tcp_role == AGW_ROLE_ACTIVE) {
            t->port = 9; /* RFC 4145: the active side's port is the discard port */
        } else {
            int fd = -1;
            uint16_t port;
            int rc = agw_realm_reserve(t->realm, t->datagram ? SOCK_DGRAM : SOCK_STREAM,
                                       !t->datagram, &fd, &port);
            if (rc == -ENOSPC)
                return agw_status_set(st, 510, "no free port in realm %s", t->realm->name);
            if (rc < 0)
                return agw_status_set(st, 510, "cannot bind a port in realm %s: %s", t->realm->name,
                                      strerror(-rc));
            t->fd = fd;
            t->port = port;
            t->port_reserved = true;
        }
    }
    sdp_media_set_port(media, SDP_VALUE_SET, t->port);
    return 0;
}

static const char *setup_word(const struct agw_term *t)
{
    switch (t->tcp_role) {
    case AGW_ROLE_ACTIVE:
        return "active";
    case AGW_ROLE_PASSIVE:
        return t->remote_sdp != NULL ? "passive" : "actpass";
    case AGW_ROLE_NONE:
        break;
    }
    return "actpass";
}

/* ICE-lite (RFC 8445 §2.5): a=ice-ufrag:$ / a=ice-pwd:$ in a Local ask for the gateway's
 * credentials; the reply then carries them, a=ice-lite and the host candidate. The credentials
 * are made once per termination: later Locals return the same ones. */
static int fill_ice(struct sdp_session *s, struct sdp_media *media, struct agw_term *t,
                    struct agw_dc_params *dc, struct agw_status *st)
{
    const struct sdp_attr *ufrag = sdp_attr_find(media->attrs, SDP_ATTR_ICE_UFRAG);
    const struct sdp_attr *pwd = sdp_attr_find(media->attrs, SDP_ATTR_ICE_PWD);
    bool choose = (ufrag != NULL && ufrag->value != NULL && strcmp(ufrag->value, "$") == 0) ||
                  (pwd != NULL && pwd->value != NULL && strcmp(pwd->value, "$") == 0);
    if (!choose && !dc->ice)
        return 0;
    if (!dc->ice) {
        char u[AGW_STUN_UFRAG_LEN + 1], p[AGW_STUN_PWD_LEN + 1];
        if (agw_stun_random_credentials(u, p) < 0)
            return agw_status_set(st, 510, "no randomness for ICE credentials");
        snprintf(dc->ice_ufrag, sizeof(dc->ice_ufrag), "%s", u);
        snprintf(dc->ice_pwd, sizeof(dc->ice_pwd), "%s", p);
        dc->ice = true;
    }
    if (ufrag != NULL)
        sdp_attr_remove(s, media, ufrag);
    if (pwd != NULL)
        sdp_attr_remove(s, media, pwd);
    char candidate[128];
    snprintf(candidate, sizeof(candidate), "1 1 UDP 2130706431 %s %u typ host", t->realm->addr_text,
             t->port);
    if ((sdp_attr_find(s->attrs, SDP_ATTR_ICE_LITE) == NULL &&
         sdp_attr_add(s, NULL, "ice-lite", NULL, NULL) < 0) ||
        sdp_attr_add(s, media, "ice-ufrag", dc->ice_ufrag, NULL) < 0 ||
        sdp_attr_add(s, media, "ice-pwd", dc->ice_pwd, NULL) < 0 ||
        sdp_attr_add(s, media, "candidate", candidate, NULL) < 0)
        return agw_status_set(st, 500, "cannot add the ICE attributes");
    return 0;
}

/* The gateway's a=sctp-port and a=max-message-size (RFC 8841) unless the ALG set them. */
static int fill_datachannel_attrs(struct sdp_session *s, struct sdp_media *media,
                                  struct agw_term *t, struct agw_status *st)
{
    char value[24];
    struct agw_dc_params *dc = term_dc(t, st);
    if (dc == NULL)
        return -1;
    const struct sdp_attr *port = sdp_attr_find(media->attrs, SDP_ATTR_SCTP_PORT);
    dc->local_sctp_port = port != NULL ? port->u.sctp_port : AGW_SCTP_PORT_DEFAULT;
    if (port == NULL) {
        snprintf(value, sizeof(value), "%u", AGW_SCTP_PORT_DEFAULT);
        if (sdp_attr_add(s, media, "sctp-port", value, NULL) < 0)
            return agw_status_set(st, 500, "cannot add a=sctp-port");
    }
    if (sdp_attr_find(media->attrs, SDP_ATTR_MAX_MESSAGE_SIZE) == NULL) {
        snprintf(value, sizeof(value), "%u", AGW_DC_MAX_MESSAGE);
        if (sdp_attr_add(s, media, "max-message-size", value, NULL) < 0)
            return agw_status_set(st, 500, "cannot add a=max-message-size");
    }
    if (t->remote_sdp == NULL)
        take_dcmaps(dc, media);
    return fill_ice(s, media, t, dc, st);
}

int agw_profile_apply_local(struct agw_model *m, struct agw_term *t, const char *text, size_t len,
                            struct agw_status *st)
{
    struct sdp_session *s;
    struct sdp_media *media;
    if (parse_one_media("Local", text, len, &s, &media, st) < 0)
        return -1;
    int rc = check_proto(t, media, st);
    const struct sdp_attr *setup = sdp_attr_find(media->attrs, SDP_ATTR_SETUP);
    if (rc == 0 && setup != NULL && t->remote_sdp == NULL && setup->u.setup != SDP_SETUP_HOLDCONN)
        t->tcp_role = setup->u.setup == SDP_SETUP_ACTIVE ? AGW_ROLE_ACTIVE : AGW_ROLE_PASSIVE;
    if (rc == 0 && t->tcp_role == AGW_ROLE_NONE)
        t->tcp_role = AGW_ROLE_PASSIVE; /* listen until the far end's a=setup says otherwise */
    if (rc == 0)
        rc = fill_connection(t, s, media, st);
    if (rc == 0)
        rc = fill_port(m, t, media, st);
    if (rc == 0 && t->secure) {
        if (t->identity == NULL)
            t->identity = agw_tls_identity_ref(t->realm->identity);
        const struct agw_tls_fingerprint *fp = agw_tls_identity_fingerprint(t->identity);
        if (sdp_fingerprint_fill(s, media, SDP_HASH_SHA256, fp->digest, fp->len) < 0)
            rc = agw_status_set(st, 500, "cannot add the fingerprint");
        if (rc == 0 && setup == NULL && sdp_attr_add(s, media, "setup", setup_word(t), NULL) < 0)
            rc = agw_status_set(st, 500, "cannot add a=setup");
        const struct sdp_attr *tls_id = sdp_attr_find(media->attrs, SDP_ATTR_TLS_ID);
        if (tls_id != NULL && tls_id->value != NULL && strcmp(tls_id->value, "$") == 0) {
            sdp_attr_remove(s, media, tls_id); /* a=tls-id:$ asks for the gateway's own */
            tls_id = NULL;
        }
        if (rc == 0 && t->datagram && t->proto != SDP_PROTO_UDP_SCTP && tls_id == NULL) {
            char id[33];
            random_hex(id, 16);
            if (sdp_attr_add(s, media, "tls-id", id, NULL) < 0)
                rc = agw_status_set(st, 500, "cannot add a=tls-id");
        }
    } else if (rc == 0) {
        const struct sdp_attr *fp = sdp_attr_find(media->attrs, SDP_ATTR_FINGERPRINT);
        if (fp != NULL)
            rc = agw_status_set(st, 449, "a=fingerprint on %s, which has no TLS", media->proto);
        else if (setup == NULL && !t->datagram &&
                 sdp_attr_add(s, media, "setup", setup_word(t), NULL) < 0)
            rc = agw_status_set(st, 500, "cannot add a=setup");
    }
    if (rc == 0 && t->datagram)
        rc = fill_datachannel_attrs(s, media, t, st);
    if (rc == 0) {
        char buf[8192];
        size_t out_len;
        if (sdp_encode(s, buf, sizeof(buf), &out_len) < 0)
            rc = agw_status_set(st, 510, "Local SDP too long");
        else if (store_text(&t->local_sdp, &t->local_len, buf, out_len) < 0)
            rc = agw_status_set(st, 510, "out of memory");
    }
    sdp_free(s);
    return rc;
}
