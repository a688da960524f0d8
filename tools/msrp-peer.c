/* msrp-peer: a core-side MSRP endpoint for demos and tests. It accepts TCP connections (or
 * connects) and answers every MSRP SEND request with 200 OK, printing what it got. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_REQUEST 65536

static int parse_addr(const char *text, struct sockaddr_in *out)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    if (colon == NULL || (size_t)(colon - text) >= sizeof(host))
        return -1;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

/* The value of a header line ("To-Path: x") in req, copied to out. */
static void header(const char *req, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    const char *p = strstr(req, name);
    if (p == NULL)
        return;
    p += strlen(name);
    while (*p == ' ')
        p++;
    size_t n = strcspn(p, "\r\n");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

/* Answers the complete requests at the start of buf; returns the bytes used. */
static size_t answer(int fd, char *buf, size_t len, bool quiet)
{
    size_t used = 0;
    for (;;) {
        char tid[64];
        buf[len] = '\0';
        char *start = buf + used;
        if (sscanf(start, "MSRP %63s", tid) != 1)
            return used;
        char end[80];
        snprintf(end, sizeof(end), "-------%s", tid);
        char *e = strstr(start, end);
        if (e == NULL)
            return used;
        char *line_end = strstr(e, "\r\n");
        if (line_end == NULL)
            return used;
        size_t req_len = (size_t)(line_end + 2 - start);
        char to[256], from[256];
        header(start, "To-Path:", to, sizeof(to));
        header(start, "From-Path:", from, sizeof(from));
        if (!quiet) {
            printf("msrp-peer: got %.*s", (int)strcspn(start, "\r\n"), start);
            printf(" (%zu bytes)\n", req_len);
            fflush(stdout);
        }
        if (strncmp(start + 5 + strlen(tid), " SEND", 5) == 0) {
            char resp[700];
            int n = snprintf(resp, sizeof(resp),
                             "MSRP %s 200 OK\r\nTo-Path: %s\r\nFrom-Path: %s\r\n-------%s$\r\n",
                             tid, from, to, tid);
            if (write(fd, resp, (size_t)n) != n)
                return len;
        }
        used += req_len;
    }
}

static void serve(int fd, bool quiet)
{
    static char buf[MAX_REQUEST + 1];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, MAX_REQUEST - len);
        if (n <= 0)
            return;
        len += (size_t)n;
        size_t used = answer(fd, buf, len, quiet);
        memmove(buf, buf + used, len - used);
        len -= used;
        if (len == MAX_REQUEST)
            len = 0; /* not MSRP: drop it */
    }
}

int main(int argc, char **argv)
{
    bool quiet = false, once = false;
    const char *listen_at = NULL, *connect_to = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen_at = argv[++i];
        else if (strcmp(argv[i], "--connect") == 0 && i + 1 < argc)
            connect_to = argv[++i];
        else if (strcmp(argv[i], "--once") == 0)
            once = true;
        else if (strcmp(argv[i], "--quiet") == 0)
            quiet = true;
        else {
            fprintf(stderr, "usage: msrp-peer (--listen ADDR:PORT [--once] | --connect "
                            "ADDR:PORT) [--quiet]\n");
            return 2;
        }
    }
    struct sockaddr_in a;
    const char *addr = listen_at != NULL ? listen_at : connect_to;
    if (addr == NULL || (listen_at != NULL && connect_to != NULL) || parse_addr(addr, &a) < 0) {
        fprintf(stderr, "msrp-peer: give one of --listen or --connect with ADDR:PORT\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        perror("msrp-peer: socket");
        return 1;
    }
    if (connect_to != NULL) {
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
            perror("msrp-peer: connect");
            return 1;
        }
        serve(fd, quiet);
        return 0;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 8) < 0) {
        perror("msrp-peer: listen");
        return 1;
    }
    for (;;) {
        int c = accept(fd, NULL, NULL);
        if (c < 0)
            return errno == EINTR ? 0 : 1;
        if (!quiet) {
            printf("msrp-peer: connection from the gateway\n");
            fflush(stdout);
        }
        serve(c, quiet);
        close(c);
        if (once)
            return 0;
    }
}
