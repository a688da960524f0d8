/* Kernel TLS (kTLS): whether this host can take the TLS record layer of a TCP socket. */
#ifndef IMS_AGW_TLS_KTLS_H
#define IMS_AGW_TLS_KTLS_H

#include <stdbool.h>
#include <stddef.h>

/* True when OpenSSL was built with kTLS and the kernel offers the "tls" TCP upper-layer protocol
   (listed in /proc/sys/net/ipv4/tcp_available_ulp, or loaded on demand when a connected loopback
   socket asks for it). why (cap bytes, may be NULL) gets a NUL-terminated reason either way, for
   the start-up log. A true answer is a host property only: each session must still check that
   OpenSSL enabled kTLS for its cipher (BIO_get_ktls_send) and fall back when it did not. */
bool agw_tls_ktls_available(char *why, size_t cap);

#endif
