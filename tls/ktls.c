/* Kernel TLS detection: OpenSSL's build, the kernel's list of TCP ULPs, and a probe socket. */
#include "ktls.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/opensslconf.h>

#define ULP_LIST "/proc/sys/net/ipv4/tcp_available_ulp"
/* Linux's socket option number (include/uapi/linux/tcp.h, stable ABI): <netinet/tcp.h> is not
   among the headers tls/ may include (make check-deps). */
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

__attribute__((format(printf, 3, 4))) static void say(char *why, size_t cap, const char *fmt, ...)
{
    if (why == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
}

/* The kernel's ULP names, blank separated ("mptcp tls"); empty when the file cannot be read
   (no /proc, or a kernel that predates the list). */
static void read_ulps(char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen(ULP_LIST, "re");
    if (f == NULL)
        return;
    if (fgets(out, (int)cap, f) == NULL)
        out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\n")] = '\0';
}

static bool has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; *p != '\0';) {
        p += strspn(p, " \t");
        size_t len = strcspn(p, " \t");
        if (len == n && memcmp(p, word, n) == 0)
            return true;
        p += len;
    }
    return false;
}

/* Asks for "tls" on a connected loopback socket: a kernel built with the ULP as a module loads it
   here, which the list above would not show beforehand. 0 or a negative errno. */
static int probe_ulp(void)
{
    int rc;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (lfd < 0 || cfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(lfd, 1) < 0 || getsockname(lfd, (struct sockaddr *)&a, &len) < 0 ||
        connect(cfd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        rc = -errno;
        goto out;
    }
    /* The connection is established once connect() returns; it waits in the backlog, never
       accepted: the ULP only needs an established socket. */
    rc = setsockopt(cfd, IPPROTO_TCP, TCP_ULP, "tls", 3) == 0 ? 0 : -errno;
out:
    if (cfd >= 0)
        close(cfd);
    if (lfd >= 0)
        close(lfd);
    return rc;
}

bool agw_tls_ktls_available(char *why, size_t cap)
{
#ifdef OPENSSL_NO_KTLS
    say(why, cap, "OpenSSL was built without kTLS");
    return false;
#else
    char ulps[256];
    read_ulps(ulps, sizeof(ulps));
    if (has_word(ulps, "tls")) {
        say(why, cap, "the kernel offers the tls ULP (%s: %s)", ULP_LIST, ulps);
        return true;
    }
    int rc = probe_ulp();
    if (rc == 0) {
        say(why, cap, "the kernel loaded the tls ULP on demand");
        return true;
    }
    if (rc == -ENOENT)
        say(why, cap, "the kernel has no tls ULP (%s: \"%s\"; setsockopt TCP_ULP \"tls\": %s)",
            ULP_LIST, ulps, strerror(-rc));
    else
        say(why, cap, "cannot probe the kernel's tls ULP: %s", strerror(-rc));
    return false;
#endif
}
