/* ims-agw entry point: options, versions, the event loop and orderly shutdown on signals. */
#include "agw.h"

#include <getopt.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Static: the listener holds two 64 KiB datagram buffers. */
static struct agw_iq_listener iq;
static uv_signal_t sig_int, sig_term;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ims-agw [--iq-listen ADDR:PORT]\n"
            "       ims-agw -V | -h\n"
            "  --iq-listen ADDR:PORT  UDP address for Iq (H.248 text), default %s;\n"
            "                         IPv6 as [addr]:port\n"
            "  -V, --version          print the versions of ims-agw and its libraries\n"
            "  -h, --help             this text\n",
            AGW_IQ_DEFAULT_LISTEN);
}

static void print_versions(void)
{
    printf("ims-agw %s\n", AGW_VERSION);
    printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
    printf("libuv %s\n", uv_version_string());
#ifdef AGW_USRSCTP_VERSION
    /* usrsctp has no version call: this is the package the binary was built against. */
    printf("usrsctp %s\n", AGW_USRSCTP_VERSION);
#endif
}

static void on_signal(uv_signal_t *sig, int signum)
{
    (void)sig;
    fprintf(stderr, "ims-agw: %s, shutting down\n", strsignal(signum));
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
    agw_iq_listener_close(&iq, NULL);
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"iq-listen", required_argument, NULL, 'l'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *listen = AGW_IQ_DEFAULT_LISTEN;
    int opt;
    while ((opt = getopt_long(argc, argv, "Vh", options, NULL)) != -1) {
        switch (opt) {
        case 'l':
            listen = optarg;
            break;
        case 'V':
            print_versions();
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ims-agw: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    /* A peer closing a stream socket must not kill the daemon; errors come back as EPIPE. */
    signal(SIGPIPE, SIG_IGN);

    uv_loop_t loop;
    int rc = uv_loop_init(&loop);
    if (rc < 0) {
        fprintf(stderr, "ims-agw: cannot create the event loop: %s\n", uv_strerror(rc));
        return 1;
    }
    rc = agw_iq_listener_start(&iq, &loop, listen);
    if (rc < 0) {
        fprintf(stderr, "ims-agw: cannot listen for Iq on %s: %s\n", listen, uv_strerror(rc));
        uv_run(&loop, UV_RUN_DEFAULT); /* runs the close callback of a half-opened socket */
        uv_loop_close(&loop);
        return 1;
    }
    if (uv_signal_init(&loop, &sig_int) < 0 || uv_signal_init(&loop, &sig_term) < 0 ||
        uv_signal_start(&sig_int, on_signal, SIGINT) < 0 ||
        uv_signal_start(&sig_term, on_signal, SIGTERM) < 0) {
        fprintf(stderr, "ims-agw: cannot install signal handlers\n");
        return 1;
    }
    fprintf(stderr, "ims-agw %s listening for Iq on %s\n", AGW_VERSION, iq.local_text);

    uv_run(&loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&loop);
    if (rc < 0) {
        fprintf(stderr, "ims-agw: handles left open at exit: %s\n", uv_strerror(rc));
        return 1;
    }
    fprintf(stderr, "ims-agw: stopped\n");
    return 0;
}
