/* agw-ctl: command-line companion of ims-agw: H.248 decoder, IMS-ALG (MGC) simulator, and the
 * operator's commands over the daemon's control socket. */
#include "h248/h248.h"
#include "tools/iq_client.h"
#include "tools/scenario.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef AGW_VERSION
#define AGW_VERSION "0.0.0"
#endif

#define INPUT_MAX (1024 * 1024) /* one message; anything larger is refused, not truncated */
#define DEFAULT_LISTEN "127.0.0.1:2947"
#define DEFAULT_GATEWAY "127.0.0.1:2944"
#define REGISTRATION_WAIT_MS 30000

/* Exit codes of send and scenario. */
enum { EXIT_OK = 0, EXIT_TRANSPORT = 1, EXIT_CHECK = 2, EXIT_USAGE = 2 };

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: agw-ctl decode [--compact|--pretty]\n"
        "           read one H.248 text message on stdin, print it re-encoded (default compact)\n"
        "       agw-ctl mgc [NET] [--version N] [--redirect MID] [--once]\n"
        "           act as the MGC: answer the gateway's registration (Version=N, or\n"
        "           MgcIdToTry=MID), print every message received (pretty), answer Notify;\n"
        "           --once exits 0 after the registration\n"
        "       agw-ctl send [NET] [--timeout MS] [FILE]\n"
        "           send H.248 text from FILE or stdin (a message, transaction(s) or action(s):\n"
        "           header and Transaction wrapper are added), print the reply (pretty);\n"
        "           exit 0 if no error descriptor, 2 if one (\"error CODE: TEXT\" on stderr),\n"
        "           1 on timeout or transport error\n"
        "       agw-ctl scenario NAME [NET] [--timeout MS] [--ue-addr IP] [--core-addr IP]\n"
        "                [--access-realm NAME] [--core-realm NAME] [--tls-signal PKG/NAME]\n"
        "           run a checked e2ae flow without media: msrp-orig, msrp-term, bfcp-orig,\n"
        "           bfcp-term or all; one line per step; exit 0 ok, 2 on the first failed\n"
        "           check, 1 on timeout or transport error\n"
        "       agw-ctl show registration|contexts [--socket PATH]\n"
        "           ask the running ims-agw over its control socket: the association with the\n"
        "           MGC, or one line per context with its terminations\n"
        "       agw-ctl drain [SECONDS] [--socket PATH]\n"
        "           no new context from now on; once none is left (or after SECONDS, default\n"
        "           300) the gateway sends a Graceful ServiceChange and exits; prints its\n"
        "           progress until then. Exit 0, or 1 when refused or unreachable\n"
        "       agw-ctl -h | -V\n"
        "NET:   --listen ADDR:PORT   our (the MGC's) address, as the gateway is configured\n"
        "                            with [" DEFAULT_LISTEN "]; IPv6 as [::1]:2947\n"
        "       --gateway ADDR:PORT  the gateway [" DEFAULT_GATEWAY ", or the registration's\n"
        "                            sender with --wait-registration]\n"
        "       --wait-registration  first wait (up to 30 s) for the gateway's ServiceChange\n"
        "       --mid MID            our mId [[ADDR]:PORT of --listen]\n"
        "       -v                   print every datagram sent and received on stderr\n"
        "--socket PATH: the control socket [as ims-agw's control_socket = auto:\n"
        "       $RUNTIME_DIRECTORY/control.sock, /run/ims-agw/control.sock if it exists,\n"
        "       $XDG_RUNTIME_DIR/ims-agw.sock, /tmp/ims-agw-UID.sock]\n");
}

/* Reads all of f into a malloc'd buffer of at most INPUT_MAX bytes. */
static int read_all(FILE *f, char **out, size_t *len_out)
{
    char *buf = malloc(INPUT_MAX + 1);
    size_t len = 0;
    if (buf == NULL)
        return -ENOMEM;
    for (;;) {
        size_t n = fread(buf + len, 1, INPUT_MAX + 1 - len, f);
        len += n;
        if (n == 0 || len > INPUT_MAX)
            break;
    }
    if (ferror(f)) {
        free(buf);
        return -EIO;
    }
    if (len > INPUT_MAX) {
        free(buf);
        return -EFBIG;
    }
    *out = buf;
    *len_out = len;
    return 0;
}

static int print_message(FILE *f, const struct h248_message *msg, enum h248_style style)
{
    char *text = NULL;
    size_t len = 0;
    int rc = iq_format_message(msg, style, &text, &len);
    if (rc < 0) {
        fprintf(stderr, "agw-ctl: cannot encode: %s\n", strerror(-rc));
        return rc;
    }
    /* The pretty form ends with a newline, the compact one does not. */
    bool ok = fwrite(text, 1, len, f) == len &&
              (len > 0 && text[len - 1] == '\n' ? true : fputc('\n', f) != EOF);
    free(text);
    return ok ? 0 : -EIO;
}

static int decode(enum h248_style style)
{
    char *in = NULL;
    size_t in_len = 0;
    int rc = read_all(stdin, &in, &in_len);
    if (rc < 0) {
        fprintf(stderr, "agw-ctl: cannot read stdin: %s%s\n", strerror(-rc),
                rc == -EFBIG ? " (limit 1 MiB)" : "");
        return 1;
    }

    struct h248_message *msg = NULL;
    struct h248_parse_error err;
    memset(&err, 0, sizeof(err));
    rc = h248_parse_message(in, in_len, NULL, &msg, &err);
    free(in);
    if (rc < 0) {
        fprintf(stderr, "error %u: %.*s\n", err.code, (int)sizeof(err.text), err.text);
        return 1;
    }
    char *out = NULL;
    size_t need = 0;
    rc = iq_format_message(msg, style, &out, &need);
    h248_message_free(msg);
    if (rc < 0) {
        fprintf(stderr, "agw-ctl: cannot encode: %s\n", strerror(-rc));
        return 1;
    }
    int ok = fwrite(out, 1, need, stdout) == need && fputc('\n', stdout) != EOF;
    free(out);
    if (!ok || fflush(stdout) != 0) {
        fprintf(stderr, "agw-ctl: cannot write stdout\n");
        return 1;
    }
    return 0;
}

/* ---- the network commands ---- */

struct net_args {
    const char *listen, *gateway, *mid;
    bool wait_registration, verbose;
    int timeout_ms;
    /* mgc */
    unsigned version;
    const char *redirect;
    bool once;
    /* scenario */
    struct scenario_options scenario;
    const char *file; /* send */
    const char *name; /* scenario */
};

static void trace(void *arg, bool outbound, const char *data, size_t len,
                  const struct sockaddr *peer)
{
    (void)arg;
    char addr[80];
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, peer,
           peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    fprintf(stderr, "%s %s %zu bytes\n", outbound ? "->" : "<-",
            iq_format_addr(&ss, addr, sizeof(addr)), len);
    /* Printable bytes as they are, the rest escaped: datagrams may be hostile. */
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)data[i];
        if (ch == '\n' || ch == '\t' || (ch >= 0x20 && ch < 0x7f))
            fputc(ch, stderr);
        else if (ch != '\r')
            fprintf(stderr, "\\x%02x", ch);
    }
    fputc('\n', stderr);
}

/* A number in [lo, hi]; false when arg is not one. */
static bool parse_uint(const char *arg, unsigned long lo, unsigned long hi, unsigned long *out)
{
    char *end = NULL;
    if (arg == NULL || arg[0] < '0' || arg[0] > '9')
        return false;
    errno = 0;
    unsigned long v = strtoul(arg, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Parses the options of command cmd ("mgc", "send", "scenario") from argv[first]. */
static bool parse_net_args(const char *cmd, int argc, char **argv, int first, struct net_args *a)
{
    bool is_mgc = strcmp(cmd, "mgc") == 0, is_send = strcmp(cmd, "send") == 0;
    bool is_scenario = strcmp(cmd, "scenario") == 0;
    for (int i = first; i < argc; i++) {
        const char *opt = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long n = 0;
        bool takes = true; /* the option consumes val */
        if (strcmp(opt, "--listen") == 0 && val != NULL) {
            a->listen = val;
        } else if (strcmp(opt, "--gateway") == 0 && val != NULL && !is_mgc) {
            a->gateway = val;
        } else if (strcmp(opt, "--mid") == 0 && val != NULL) {
            a->mid = val;
        } else if (strcmp(opt, "--timeout") == 0 && !is_mgc && parse_uint(val, 1, 3600000, &n)) {
            a->timeout_ms = (int)n;
        } else if (strcmp(opt, "--version") == 0 && is_mgc && parse_uint(val, 1, 99, &n)) {
            a->version = (unsigned)n;
        } else if (strcmp(opt, "--redirect") == 0 && is_mgc && val != NULL) {
            a->redirect = val;
        } else if (strcmp(opt, "--ue-addr") == 0 && is_scenario && val != NULL) {
            a->scenario.ue_addr = val;
        } else if (strcmp(opt, "--core-addr") == 0 && is_scenario && val != NULL) {
            a->scenario.core_addr = val;
        } else if (strcmp(opt, "--access-realm") == 0 && is_scenario && val != NULL) {
            a->scenario.access_realm = val;
        } else if (strcmp(opt, "--core-realm") == 0 && is_scenario && val != NULL) {
            a->scenario.core_realm = val;
        } else if (strcmp(opt, "--tls-signal") == 0 && is_scenario && val != NULL) {
            a->scenario.tls_signal = val;
        } else {
            takes = false;
            if (strcmp(opt, "--once") == 0 && is_mgc) {
                a->once = true;
            } else if (strcmp(opt, "--wait-registration") == 0 && !is_mgc) {
                a->wait_registration = true;
            } else if (strcmp(opt, "-v") == 0 || strcmp(opt, "--verbose") == 0) {
                a->verbose = true;
            } else if (opt[0] != '-' && is_send && a->file == NULL) {
                a->file = opt;
            } else if (opt[0] != '-' && is_scenario && a->name == NULL) {
                a->name = opt;
            } else if (strcmp(opt, "-") == 0 && is_send && a->file == NULL) {
                a->file = opt;
            } else {
                fprintf(stderr, "agw-ctl %s: bad option or missing value: '%s'\n", cmd, opt);
                return false;
            }
        }
        if (takes)
            i++;
    }
    if (is_scenario && a->name == NULL) {
        fprintf(stderr, "agw-ctl scenario: which one?\n");
        return false;
    }
    return true;
}

/* mgc learns the gateway from the registration, as send and scenario do when they wait for it. */
static struct iq_client *open_client(const struct net_args *a, bool is_mgc)
{
    struct iq_client_options opts;
    memset(&opts, 0, sizeof(opts));
    if (a->verbose)
        opts.trace = trace;
    const char *gateway = a->gateway;
    if (gateway == NULL && !a->wait_registration && !is_mgc)
        gateway = DEFAULT_GATEWAY;
    const char *listen = a->listen != NULL ? a->listen : DEFAULT_LISTEN;
    struct iq_client *c = NULL;
    int rc = iq_client_open(listen, gateway, a->mid, &opts, &c);
    if (rc < 0) {
        fprintf(stderr, "agw-ctl: cannot open %s%s%s%s%s: %s\n", listen,
                gateway != NULL ? " toward " : "", gateway != NULL ? gateway : "",
                a->mid != NULL ? " as " : "", a->mid != NULL ? a->mid : "",
                rc == -EINVAL ? "bad address or mId" : strerror(-rc));
        return NULL;
    }
    return c;
}

static void print_event(const struct iq_event *ev, FILE *f)
{
    char addr[80];
    iq_format_addr(&ev->from, addr, sizeof(addr));
    if (ev->kind == IQ_EVENT_GARBAGE) {
        fprintf(f, "; from %s: %zu bytes that do not parse: error %u at offset %zu: %s\n", addr,
                ev->len, ev->error.code, ev->error.offset, ev->error.text);
        return;
    }
    fprintf(f, "; from %s%s\n", addr, ev->kind == IQ_EVENT_REQUEST ? " (answered)" : "");
    print_message(f, ev->msg, H248_STYLE_PRETTY);
}

/* Waits for the registration; 0, or 1 after saying why not. */
static int registration(struct iq_client *c, int timeout_ms)
{
    struct iq_event ev;
    struct sockaddr_storage gw;
    int rc = iq_client_wait_registration(c, timeout_ms, NULL, &gw, &ev);
    if (rc < 0) {
        fprintf(stderr, "agw-ctl: no registration from the gateway: %s\n",
                rc == -ETIMEDOUT ? "timed out" : strerror(-rc));
        return 1;
    }
    char addr[80];
    fprintf(stderr, "agw-ctl: gateway %s registered, version %u\n",
            iq_format_addr(&gw, addr, sizeof(addr)), iq_client_version(c));
    iq_event_release(&ev);
    return 0;
}

/* Prints everything, registrations included, even when the gateway registered before we ran. */
static int cmd_mgc(const struct net_args *a)
{
    struct iq_client *c = open_client(a, true);
    if (c == NULL)
        return EXIT_TRANSPORT;
    struct iq_register_reply how = {.version = a->version, .redirect_mid = a->redirect};
    int rc = iq_client_set_registration_reply(c, &how);
    if (rc < 0) {
        fprintf(stderr, "agw-ctl mgc: bad --redirect mId '%s'\n", a->redirect);
        iq_client_close(c);
        return EXIT_USAGE;
    }
    for (;;) {
        struct iq_event ev;
        rc = iq_client_recv(c, -1, &ev);
        if (rc < 0) {
            fprintf(stderr, "agw-ctl: receive: %s\n", strerror(-rc));
            rc = EXIT_TRANSPORT;
            break;
        }
        print_event(&ev, stdout);
        fflush(stdout);
        bool registered = ev.kind == IQ_EVENT_REQUEST && iq_is_registration(ev.msg);
        if (registered) {
            char addr[80];
            iq_format_addr(&ev.from, addr, sizeof(addr));
            if (a->redirect != NULL)
                fprintf(stderr, "agw-ctl: gateway %s redirected to %s\n", addr, a->redirect);
            else
                fprintf(stderr, "agw-ctl: gateway %s registered, version %u\n", addr,
                        iq_client_version(c));
        }
        iq_event_release(&ev);
        if (registered && a->once) {
            rc = EXIT_OK;
            break;
        }
    }
    iq_client_close(c);
    return rc;
}

/* What the gateway sent meanwhile goes to stderr: stdout holds the replies only. */
static void drain_events(struct iq_client *c)
{
    struct iq_event ev;
    while (iq_client_recv(c, 0, &ev) == 0) {
        print_event(&ev, stderr);
        iq_event_release(&ev);
    }
}

struct send_state {
    int exit_code;
};

static void print_reply(void *arg, const struct iq_reply *r)
{
    struct send_state *st = arg;
    if (r->status < 0) {
        fprintf(stderr, "agw-ctl: transaction %u: no reply (%s)\n", (unsigned)r->tid,
                r->status == -ETIMEDOUT ? "timed out" : strerror(-r->status));
        st->exit_code = EXIT_TRANSPORT;
        return;
    }
    if (r->trans != NULL) {
        /* Only this transaction's reply, even when the message carried several. */
        struct h248_message view = *r->msg;
        struct h248_transaction one = *r->trans;
        one.next = NULL;
        view.transactions = &one;
        print_message(stdout, &view, H248_STYLE_PRETTY);
    } else {
        print_message(stdout, r->msg, H248_STYLE_PRETTY);
    }
    const struct h248_error_desc *e = iq_reply_error(r);
    if (e != NULL) {
        fprintf(stderr, "error %u: %.*s\n", (unsigned)e->code, (int)e->text.len,
                e->has_text ? e->text.ptr : "");
        if (st->exit_code == EXIT_OK)
            st->exit_code = EXIT_CHECK;
    }
}

static int cmd_send(const struct net_args *a)
{
    FILE *f = stdin;
    if (a->file != NULL && strcmp(a->file, "-") != 0 && (f = fopen(a->file, "r")) == NULL) {
        fprintf(stderr, "agw-ctl: cannot open %s: %s\n", a->file, strerror(errno));
        return EXIT_TRANSPORT;
    }
    char *in = NULL;
    size_t in_len = 0;
    int rc = read_all(f, &in, &in_len);
    if (f != stdin)
        fclose(f);
    if (rc < 0) {
        fprintf(stderr, "agw-ctl: cannot read input: %s\n", strerror(-rc));
        return EXIT_TRANSPORT;
    }
    struct iq_client *c = open_client(a, false);
    if (c == NULL) {
        free(in);
        return EXIT_TRANSPORT;
    }
    struct send_state st = {EXIT_OK};
    struct h248_message *msg = NULL;
    if (a->wait_registration && registration(c, REGISTRATION_WAIT_MS) != 0) {
        st.exit_code = EXIT_TRANSPORT;
        goto out;
    }
    struct h248_parse_error err;
    rc = iq_client_parse_text(c, in, in_len, &msg, &err);
    if (rc < 0) {
        fprintf(stderr, "agw-ctl: input: error %u at offset %zu: %s\n", err.code, err.offset,
                err.text);
        st.exit_code = EXIT_TRANSPORT;
        goto out;
    }
    uint32_t tid = 0;
    rc = iq_client_send_request(c, msg, a->timeout_ms, &tid);
    if (rc < 0) {
        fprintf(stderr, "agw-ctl: cannot send: %s\n",
                rc == -EINVAL ? "the input holds something else than requests" : strerror(-rc));
        st.exit_code = EXIT_TRANSPORT;
        goto out;
    }
    while (iq_client_outstanding(c) > 0) {
        rc = iq_client_poll_replies(c, -1, print_reply, &st);
        if (rc < 0) {
            fprintf(stderr, "agw-ctl: receive: %s\n", strerror(-rc));
            st.exit_code = EXIT_TRANSPORT;
            break;
        }
    }
    drain_events(c);
out:
    fflush(stdout);
    h248_message_free(msg);
    iq_client_close(c);
    free(in);
    return st.exit_code;
}

static int cmd_scenario(struct net_args *a)
{
    bool known = strcmp(a->name, "all") == 0;
    for (const char *const *n = scenario_names; *n != NULL && !known; n++)
        known = strcmp(*n, a->name) == 0;
    if (!known) {
        fprintf(stderr, "agw-ctl scenario: unknown flow '%s'\n", a->name);
        usage(stderr);
        return EXIT_USAGE;
    }
    struct iq_client *c = open_client(a, false);
    if (c == NULL)
        return EXIT_TRANSPORT;
    int rc = EXIT_TRANSPORT;
    if (!a->wait_registration || registration(c, REGISTRATION_WAIT_MS) == 0) {
        a->scenario.timeout_ms = a->timeout_ms;
        rc = scenario_run(c, a->name, &a->scenario);
        if (rc == -EINVAL) {
            fprintf(stderr, "agw-ctl scenario: --ue-addr and --core-addr take IP addresses\n");
            rc = EXIT_USAGE;
        }
    }
    iq_client_close(c);
    return rc;
}

/* ---- the operator's commands (control socket) ---- */

/* The path ims-agw takes for control_socket = auto, seen from here; *shared_dir is set when it
 * lies in a directory anyone may write (then its owner is checked before it is trusted). */
static int default_socket(char *buf, size_t cap, bool *shared_dir)
{
    struct stat st;
    const char *dir = getenv("RUNTIME_DIRECTORY");
    int n;
    *shared_dir = false;
    if (dir != NULL && dir[0] != '\0') {
        n = snprintf(buf, cap, "%.*s/control.sock", (int)strcspn(dir, ":"), dir);
    } else if (stat("/run/ims-agw/control.sock", &st) == 0) {
        n = snprintf(buf, cap, "/run/ims-agw/control.sock"); /* the systemd unit's */
    } else if ((dir = getenv("XDG_RUNTIME_DIR")) != NULL && dir[0] != '\0') {
        n = snprintf(buf, cap, "%s/ims-agw.sock", dir);
    } else {
        n = snprintf(buf, cap, "/tmp/ims-agw-%lu.sock", (unsigned long)geteuid());
        *shared_dir = true;
    }
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int connect_socket(const char *path, bool shared_dir)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "agw-ctl: socket path too long: %s\n", path);
        return -1;
    }
    struct stat st;
    if (shared_dir && lstat(path, &st) == 0 && st.st_uid != geteuid() && st.st_uid != 0) {
        fprintf(stderr, "agw-ctl: %s belongs to uid %lu, not to us: not used\n", path,
                (unsigned long)st.st_uid);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "agw-ctl: cannot connect to %s: %s (is ims-agw running? see --socket)\n",
                path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Sends one command line and copies the answer to stdout as it comes (a drain streams its
 * progress until the gateway stops); an answer starting with "error: " goes to stderr. */
static int cmd_operator(int argc, char **argv)
{
    const char *path = NULL;
    char command[64] = "", fallback[128];
    bool is_drain = strcmp(argv[1], "drain") == 0;
    for (int i = 2; i < argc; i++) {
        unsigned long n;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return EXIT_OK;
        } else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (!is_drain && command[0] == '\0' &&
                   (strcmp(argv[i], "registration") == 0 || strcmp(argv[i], "contexts") == 0)) {
            snprintf(command, sizeof(command), "show %s", argv[i]);
        } else if (is_drain && command[0] == '\0' && parse_uint(argv[i], 1, 86400, &n)) {
            snprintf(command, sizeof(command), "drain %lu", n);
        } else {
            fprintf(stderr, "agw-ctl %s: bad argument: '%s'\n", argv[1], argv[i]);
            return EXIT_USAGE;
        }
    }
    if (is_drain && command[0] == '\0')
        snprintf(command, sizeof(command), "drain");
    if (command[0] == '\0') {
        fprintf(stderr, "agw-ctl show: registration or contexts?\n");
        return EXIT_USAGE;
    }
    bool shared_dir = false;
    if (path == NULL) {
        if (default_socket(fallback, sizeof(fallback), &shared_dir) < 0) {
            fprintf(stderr, "agw-ctl: the default socket path is too long: use --socket\n");
            return EXIT_USAGE;
        }
        path = fallback;
    }
    int fd = connect_socket(path, shared_dir);
    if (fd < 0)
        return EXIT_TRANSPORT;
    size_t len = strlen(command);
    command[len++] = '\n';
    if (write(fd, command, len) != (ssize_t)len) {
        fprintf(stderr, "agw-ctl: cannot send to %s: %s\n", path, strerror(errno));
        close(fd);
        return EXIT_TRANSPORT;
    }
    char buf[65536];
    size_t total = 0;
    bool error = false;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (total == 0)
            error = n >= 7 && memcmp(buf, "error: ", 7) == 0;
        fwrite(buf, 1, (size_t)n, error ? stderr : stdout);
        fflush(error ? stderr : stdout);
        total += (size_t)n;
    }
    close(fd);
    if (total == 0) {
        fprintf(stderr, "agw-ctl: %s closed without an answer\n", path);
        return EXIT_TRANSPORT;
    }
    return error ? EXIT_TRANSPORT : EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc >= 2 && (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0)) {
        printf("agw-ctl %s\n", AGW_VERSION);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "decode") == 0) {
        enum h248_style style = H248_STYLE_COMPACT;
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--compact") == 0) {
                style = H248_STYLE_COMPACT;
            } else if (strcmp(argv[i], "--pretty") == 0) {
                style = H248_STYLE_PRETTY;
            } else {
                fprintf(stderr, "agw-ctl: unknown option '%s'\n", argv[i]);
                usage(stderr);
                return EXIT_USAGE;
            }
        }
        return decode(style);
    }
    if (argc >= 2 && (strcmp(argv[1], "mgc") == 0 || strcmp(argv[1], "send") == 0 ||
                      strcmp(argv[1], "scenario") == 0)) {
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
                usage(stdout);
                return 0;
            }
        }
        struct net_args a;
        memset(&a, 0, sizeof(a));
        if (!parse_net_args(argv[1], argc, argv, 2, &a)) {
            usage(stderr);
            return EXIT_USAGE;
        }
        if (strcmp(argv[1], "mgc") == 0)
            return cmd_mgc(&a);
        if (strcmp(argv[1], "send") == 0)
            return cmd_send(&a);
        return cmd_scenario(&a);
    }
    if (argc >= 2 && (strcmp(argv[1], "show") == 0 || strcmp(argv[1], "drain") == 0))
        return cmd_operator(argc, argv);
    usage(stderr);
    return EXIT_USAGE;
}
