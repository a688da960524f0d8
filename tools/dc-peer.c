/* dc-peer: a data-channel peer on the command line (UE or core side of the gateway, by hand). */
#include "tls/cert.h"
#include "tls/fingerprint.h"
#include "tools/dc_endpoint.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: dc-peer [options]\n"
    "  --dtls                 DTLS+SCTP (default: SCTP straight in UDP)\n"
    "  --server               DTLS server, odd stream ids (default: client, even ids)\n"
    "  --bind ADDR:PORT       local address (default 127.0.0.1:0)\n"
    "  --connect ADDR:PORT    the peer (a server without it takes the first one to speak)\n"
    "  --fingerprint 'sha-256 AB:..'  the peer's certificate (repeatable)\n"
    "  --cert FILE --key FILE  our DTLS identity (default: generated)\n"
    "  --sctp-port N, --peer-sctp-port N   a=sctp-port values (default 5000)\n"
    "  --open LABEL[/PROTOCOL]  open a channel once up; stdin lines are sent on it as text\n"
    "  --echo                 send every message received back on its channel\n"
    "  --timeout S            give up when not up after S seconds (default 10)\n"
    "Prints the bound port and (DTLS) its fingerprint, then one line per event.\n";

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* "1.2.3.4:5", "[::1]:5". */
static int parse_addr(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
    const char *colon = strrchr(text, ':');
    if (colon == NULL)
        return -EINVAL;
    char host[64];
    size_t hl = (size_t)(colon - text);
    if (hl >= 2 && text[0] == '[' && text[hl - 1] == ']') {
        text++;
        hl -= 2;
    }
    if (hl >= sizeof(host))
        return -EINVAL;
    memcpy(host, text, hl);
    host[hl] = '\0';
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || port > 65535)
        return -EINVAL;
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *len = sizeof(*sin);
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*sin6);
    } else {
        return -EINVAL;
    }
    return 0;
}

static void print_event(const struct dc_event *ev)
{
    switch (ev->type) {
    case DC_EVENT_MESSAGE:
        printf("message stream=%u ppid=%u len=%zu", ev->stream, ev->ppid, ev->len);
        if (!ev->binary)
            printf(" text=%.*s", (int)(ev->len > 200 ? 200 : ev->len), (const char *)ev->data);
        printf("\n");
        break;
    case DC_EVENT_CHANNEL_OPEN:
        printf("open stream=%u type=0x%02x reliability=%u label=%s protocol=%s\n", ev->stream,
               ev->channel_type, ev->reliability, ev->label, ev->protocol);
        break;
    case DC_EVENT_CHANNEL_CLOSED:
        printf("closed stream=%u by_peer=%d error=%d\n", ev->stream, ev->by_peer, ev->error);
        break;
    case DC_EVENT_DOWN:
        printf("down error=%d (%s)\n", ev->error, strerror(-ev->error));
        break;
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"dtls", no_argument, NULL, 'd'},
                                         {"server", no_argument, NULL, 's'},
                                         {"bind", required_argument, NULL, 'b'},
                                         {"connect", required_argument, NULL, 'c'},
                                         {"fingerprint", required_argument, NULL, 'f'},
                                         {"sctp-port", required_argument, NULL, 'p'},
                                         {"peer-sctp-port", required_argument, NULL, 'P'},
                                         {"open", required_argument, NULL, 'o'},
                                         {"echo", no_argument, NULL, 'e'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"cert", required_argument, NULL, 'C'},
                                         {"key", required_argument, NULL, 'K'},
                                         {NULL, 0, NULL, 0}};
    struct dc_endpoint_config cfg = {.role = AGW_TLS_CLIENT};
    struct agw_tls_fingerprint fps[AGW_TLS_FINGERPRINTS_MAX];
    struct sockaddr_storage local, remote;
    socklen_t local_len = 0, remote_len = 0;
    const char *open_label = NULL, *cert = NULL, *key = NULL;
    bool echo = false;
    int timeout_s = 10, opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'd':
            cfg.dtls = true;
            break;
        case 's':
            cfg.role = AGW_TLS_SERVER;
            break;
        case 'b':
        case 'c':
            if (parse_addr(optarg, opt == 'b' ? &local : &remote,
                           opt == 'b' ? &local_len : &remote_len) != 0) {
                fprintf(stderr, "dc-peer: bad address %s\n", optarg);
                return 2;
            }
            break;
        case 'f':
            if (cfg.n_peer_fps == AGW_TLS_FINGERPRINTS_MAX ||
                agw_tls_fingerprint_parse(optarg, strlen(optarg), &fps[cfg.n_peer_fps]) != 0) {
                fprintf(stderr, "dc-peer: bad fingerprint %s\n", optarg);
                return 2;
            }
            cfg.n_peer_fps++;
            break;
        case 'p':
        case 'P':
            *(opt == 'p' ? &cfg.sctp_port : &cfg.peer_sctp_port) = (uint16_t)atoi(optarg);
            break;
        case 'o':
            open_label = optarg;
            break;
        case 'e':
            echo = true;
            break;
        case 't':
            timeout_s = atoi(optarg);
            break;
        case 'C':
            cert = optarg;
            break;
        case 'K':
            key = optarg;
            break;
        default:
            fputs(usage, opt == 'h' ? stdout : stderr);
            return opt == 'h' ? 0 : 2;
        }
    }
    cfg.peer_fps = fps;
    if (local_len > 0) {
        cfg.local = (struct sockaddr *)&local;
        cfg.local_len = local_len;
    }
    char text[AGW_TLS_FINGERPRINT_TEXT_MAX + 256];
    if (cert != NULL || key != NULL) {
        int lrc = agw_tls_identity_load(cert ? cert : key, key ? key : cert, &cfg.identity, text,
                                        sizeof(text));
        if (lrc != 0) {
            fprintf(stderr, "dc-peer: %s\n", text);
            return 1;
        }
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);

    struct dc_net *net;
    struct dc_endpoint *ep;
    int rc = dc_net_start(&net);
    if (rc == 0 && (rc = dc_endpoint_new(net, &cfg, &ep)) != 0)
        dc_net_stop(net);
    agw_tls_identity_unref(cfg.identity); /* the endpoint holds its own reference */
    if (rc != 0) {
        fprintf(stderr, "dc-peer: %s\n", strerror(-rc));
        return 1;
    }
    printf("port %u\n", dc_endpoint_port(ep));
    struct agw_tls_fingerprint mine;
    if (cfg.dtls && dc_endpoint_fingerprint(ep, &mine) == 0 &&
        agw_tls_fingerprint_format(&mine, text, sizeof(text)) == 0)
        printf("fingerprint %s\n", text);
    fflush(stdout);
    if (remote_len > 0)
        rc = dc_endpoint_connect(ep, (struct sockaddr *)&remote, remote_len);
    if (rc == 0)
        rc = dc_endpoint_wait_up(ep, timeout_s * 1000);
    uint16_t stream = 0;
    if (rc == 0 && open_label != NULL) {
        char label[256];
        snprintf(label, sizeof(label), "%s", open_label);
        char *slash = strchr(label, '/');
        if (slash != NULL)
            *slash++ = '\0';
        struct dc_channel_spec spec = {.label = label, .protocol = slash};
        rc = dc_endpoint_open_channel(ep, &spec, &stream);
        if (rc == 0)
            rc = dc_endpoint_wait_open(ep, stream, timeout_s * 1000);
    }
    if (rc != 0) {
        dc_endpoint_failure(ep, text, sizeof(text));
        fprintf(stderr, "dc-peer: %s%s%s\n", strerror(-rc), text[0] ? ": " : "", text);
    } else {
        printf("up%s\n", open_label != NULL ? " (channel open)" : "");
        fflush(stdout);
    }
    bool stdin_open = open_label != NULL;
    while (rc == 0 && !stop) {
        struct dc_event ev;
        if (dc_endpoint_next_event(ep, &ev, 50) == 0) {
            print_event(&ev);
            if (ev.type == DC_EVENT_MESSAGE && echo)
                dc_endpoint_send(ep, ev.stream, ev.binary, ev.data, ev.len, 5000);
            if (ev.type == DC_EVENT_DOWN)
                rc = ev.error;
            dc_event_clear(&ev);
        }
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        char line[4096];
        if (stdin_open && poll(&pfd, 1, 0) == 1) {
            if (fgets(line, sizeof(line), stdin) == NULL) {
                stdin_open = false;
                continue;
            }
            line[strcspn(line, "\n")] = '\0';
            int src = dc_endpoint_send(ep, stream, false, line, strlen(line), 5000);
            if (src != 0)
                fprintf(stderr, "dc-peer: send: %s\n", strerror(-src));
        }
    }
    dc_endpoint_free(ep);
    dc_net_stop(net);
    return rc == 0 ? 0 : 1;
}
