/* Address realms: the port pool of each realm and the sockets reserved from it. */
#include "agw/agw.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int agw_realm_init(struct agw_realm *realm, const struct agw_config_realm *conf, char *err,
                   size_t errlen)
{
    memset(realm, 0, sizeof(*realm));
    snprintf(realm->name, sizeof(realm->name), "%s", conf->name);
    realm->addr = conf->address;
    realm->addrlen = conf->address.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                         : sizeof(struct sockaddr_in);
    const void *raw = conf->address.ss_family == AF_INET6
                          ? (const void *)&((const struct sockaddr_in6 *)&conf->address)->sin6_addr
                          : (const void *)&((const struct sockaddr_in *)&conf->address)->sin_addr;
    inet_ntop(conf->address.ss_family, raw, realm->addr_text, sizeof(realm->addr_text));
    realm->port_low = conf->ports.low;
    realm->port_high = conf->ports.high;
    size_t range = (size_t)conf->ports.high - conf->ports.low + 1;
    realm->ports_in_use = calloc((range + 7) / 8, 1);
    if (realm->ports_in_use == NULL)
        return -ENOMEM;
    realm->next_term_number = 1;
    int rc;
    if (conf->certificate[0] != '\0') {
        rc = agw_tls_identity_load(conf->certificate, conf->private_key, &realm->identity, err,
                                   errlen);
    } else {
        char cn[AGW_TLS_CN_MAX];
        snprintf(cn, sizeof(cn), "ims-agw %s", conf->name);
        rc = agw_tls_identity_generate(cn, 3650, &realm->identity);
        if (rc < 0)
            snprintf(err, errlen, "realm %s: cannot generate a certificate: %s", conf->name,
                     strerror(-rc));
    }
    if (rc < 0) {
        free(realm->ports_in_use);
        realm->ports_in_use = NULL;
    }
    return rc;
}

void agw_realm_fini(struct agw_realm *realm)
{
    free(realm->ports_in_use);
    realm->ports_in_use = NULL;
    agw_tls_identity_unref(realm->identity);
    realm->identity = NULL;
}

static bool port_used(const struct agw_realm *r, uint32_t off)
{
    return (r->ports_in_use[off / 8] >> (off % 8)) & 1;
}

static void port_mark(struct agw_realm *r, uint32_t off, bool used)
{
    if (used)
        r->ports_in_use[off / 8] |= (uint8_t)(1u << (off % 8));
    else
        r->ports_in_use[off / 8] &= (uint8_t) ~(1u << (off % 8));
}

int agw_socket_bind(const struct sockaddr *addr, socklen_t len, int socktype, bool listen_too,
                    int *fd_out)
{
    int fd = socket(addr->sa_family, socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (socktype == SOCK_STREAM)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (addr->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, addr, len) < 0 || (listen_too && listen(fd, 16) < 0)) {
        int e = errno;
        close(fd);
        return -e;
    }
    *fd_out = fd;
    return 0;
}

static int bind_port(const struct agw_realm *r, int socktype, bool listen_too, uint16_t port,
                     int *fd_out)
{
    struct sockaddr_storage sa = r->addr;
    if (sa.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&sa)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)&sa)->sin_port = htons(port);
    return agw_socket_bind((struct sockaddr *)&sa, r->addrlen, socktype, listen_too, fd_out);
}

int agw_realm_reserve(struct agw_realm *realm, int socktype, bool listen_too, int *fd,
                      uint16_t *port)
{
    uint32_t range = (uint32_t)realm->port_high - realm->port_low + 1;
    for (uint32_t tried = 0; tried < range; tried++) {
        uint32_t off = (realm->port_hint + tried) % range;
        if (port_used(realm, off))
            continue;
        uint16_t p = (uint16_t)(realm->port_low + off);
        int rc = bind_port(realm, socktype, listen_too, p, fd);
        if (rc == -EADDRINUSE || rc == -EACCES)
            continue; /* taken by someone else on this host: try the next one */
        if (rc < 0)
            return rc;
        port_mark(realm, off, true);
        realm->ports_used++;
        realm->port_hint = (off + 1) % range;
        *port = p;
        return 0;
    }
    return -ENOSPC;
}

void agw_realm_release(struct agw_realm *realm, uint16_t port)
{
    if (port < realm->port_low || port > realm->port_high)
        return;
    uint32_t off = (uint32_t)port - realm->port_low;
    if (port_used(realm, off)) {
        port_mark(realm, off, false);
        realm->ports_used--;
    }
}
