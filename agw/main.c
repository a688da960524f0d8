/* ims-agw entry point: configuration, realms, the control loop and orderly shutdown. */
#include "agw/agw.h"
#include "tls/ktls.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define DRAIN_DEFAULT_S 300 /* agw-ctl drain without a time */
/* Descriptors a context may hold (access listener and connection, core listener or connection,
 * one spare for the accept hand-over), and those of the process itself (Iq, loops, metrics). */
#define FDS_PER_CONTEXT 4
#define FDS_BASE 64

static uv_signal_t sig_int, sig_term, sig_hup;
static struct agw_control *control;
static struct agw_metrics_http *metrics;
static struct agw_opsock *opsock;
static bool stopping;
static int exit_code;
static int saved_argc;
static char **saved_argv;
static struct agw_config cfg;
static struct agw_realm realms[AGW_CONFIG_MAX_REALMS];
static struct agw_model model;

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

static void on_stopped(void)
{
    control = NULL; /* freed */
    agw_metrics_http_stop(metrics);
    metrics = NULL;
    agw_opsock_close(opsock); /* drain clients see the end of the stream: the drain is over */
    opsock = NULL;
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_hup, NULL);
}

/* The open-files limit, and whether it covers max_contexts. */
static void check_fd_limit(uint32_t max_contexts)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    unsigned long long need = (unsigned long long)max_contexts * FDS_PER_CONTEXT + FDS_BASE;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        agw_log(AGW_LOG_WARN,
                "open files: the limit %llu is below the %llu that max_contexts %u may need "
                "(%d a context + %d): raise LimitNOFILE (ulimit -n)",
                (unsigned long long)rl.rlim_cur, need, (unsigned)max_contexts, FDS_PER_CONTEXT,
                FDS_BASE);
}

/* systemd and shells start us with a low soft limit (1024) under a high hard one: sessions
 * need descriptors, so the soft limit goes up to the hard one. */
static void raise_fd_limit(uint32_t max_contexts)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        agw_log(AGW_LOG_WARN, "open files: getrlimit: %s", strerror(errno));
        return;
    }
    rlim_t was = rl.rlim_cur;
    if (rl.rlim_cur != rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            agw_log(AGW_LOG_WARN, "open files: cannot raise the limit from %llu to %llu: %s",
                    (unsigned long long)was, (unsigned long long)rl.rlim_max, strerror(errno));
            rl.rlim_cur = was;
        }
    }
    if (rl.rlim_cur == was)
        agw_log(AGW_LOG_INFO, "open files: limit %llu", (unsigned long long)rl.rlim_cur);
    else
        agw_log(AGW_LOG_INFO, "open files: limit %llu (raised from %llu)",
                (unsigned long long)rl.rlim_cur, (unsigned long long)was);
    check_fd_limit(max_contexts);
}

static void log_identity(const struct agw_realm *r, const char *what)
{
    char fp[AGW_TLS_FINGERPRINT_TEXT_MAX];
    agw_tls_fingerprint_format(agw_tls_identity_fingerprint(r->identity), fp, sizeof(fp));
    agw_log(AGW_LOG_INFO, "realm %s: %s certificate %s", r->name, what, fp);
}

/* SIGHUP: the configuration is read again. What can change at run time does (log level,
 * limits, the timers of the data plane and of the transactions, the MGC list, default_realm,
 * certificates: new terminations get the new one, running ones keep the one whose fingerprint
 * the ALG was given); the rest is refused with a log line and keeps its value until a restart.
 * No session is dropped. */
static void reload(void)
{
    static struct agw_config fresh, next;
    struct agw_config_cli cli;
    char err[512];
    if (agw_config_parse_args(&fresh, saved_argc, saved_argv, &cli, err, sizeof(err)) < 0) {
        agw_log(AGW_LOG_ERROR, "reload refused: %s", err);
        return;
    }
    if (agw_config_reload_check(&cfg, &fresh, err, sizeof(err)) < 0)
        agw_log(AGW_LOG_WARN, "reload: %s: they keep their values until a restart", err);
    next = cfg;
    agw_config_take_reloadable(&next, &fresh);
    int realm = agw_model_realm_index(&model, next.default_realm, strlen(next.default_realm));
    if (realm < 0) {
        /* A realm of the new file only: realms change at a restart. */
        agw_log(AGW_LOG_WARN, "reload: default_realm %s is not a running realm: %s kept",
                next.default_realm, cfg.default_realm);
        snprintf(next.default_realm, sizeof(next.default_realm), "%s", cfg.default_realm);
        realm = (int)model.default_realm;
    }
    /* The new values against what keeps running (iq_listen's family for the MGCs...). */
    if (agw_config_validate(&next, err, sizeof(err)) < 0) {
        agw_log(AGW_LOG_ERROR, "reload refused: %s", err);
        return;
    }
    bool more_contexts = next.max_contexts > cfg.max_contexts;
    cfg = next;
    agw_log_set_level(cfg.log_level);
    /* The context table was sized at start, for max_contexts at half load: beyond that it
     * would fill up. */
    model.max_contexts = cfg.max_contexts;
    if (model.max_contexts > model.ctx_cap / 2) {
        model.max_contexts = (unsigned)(model.ctx_cap / 2);
        agw_log(AGW_LOG_WARN,
                "reload: max_contexts %u is more than the context table made at "
                "start holds: %u until a restart",
                (unsigned)cfg.max_contexts, model.max_contexts);
    }
    /* Existing contexts keep the terminations they have; new Adds and Moves see the limit. */
    model.max_terms_per_context = cfg.max_terminations_per_context > AGW_MAX_TERMS_PER_CONTEXT
                                      ? AGW_MAX_TERMS_PER_CONTEXT
                                      : cfg.max_terminations_per_context;
    model.default_realm = (unsigned)realm;
    model.buffer_bytes = cfg.relay_buffer_bytes;
    model.handshake_timeout_ms = cfg.handshake_timeout_ms;
    model.ice_consent_timeout_ms = cfg.ice_consent_timeout_ms;
    agw_control_reload(control);
    if (more_contexts)
        check_fd_limit(cfg.max_contexts);
    for (unsigned i = 0; i < cfg.realm_count; i++) {
        const struct agw_config_realm *now = NULL;
        for (unsigned k = 0; k < fresh.realm_count; k++)
            if (strcmp(fresh.realms[k].name, cfg.realms[i].name) == 0)
                now = &fresh.realms[k];
        if (now == NULL || now->certificate[0] == '\0')
            continue; /* generated at start: kept */
        struct agw_tls_identity *id;
        if (agw_tls_identity_load(now->certificate, now->private_key, &id, err, sizeof(err)) < 0) {
            agw_log(AGW_LOG_ERROR, "reload: realm %s keeps its certificate: %s", now->name, err);
            continue;
        }
        agw_tls_identity_unref(realms[i].identity);
        realms[i].identity = id;
        snprintf(cfg.realms[i].certificate, sizeof(cfg.realms[i].certificate), "%s",
                 now->certificate);
        snprintf(cfg.realms[i].private_key, sizeof(cfg.realms[i].private_key), "%s",
                 now->private_key);
        log_identity(&realms[i], "new terminations get");
    }
    agw_log(AGW_LOG_INFO, "configuration reloaded");
}

static void on_hup(uv_signal_t *sig, int signum)
{
    (void)sig;
    (void)signum;
    if (stopping)
        return;
    agw_systemd_reloading();
    reload();
    agw_systemd_ready();
}

/* Graceful ServiceChange, then everything closes and uv_run returns. */
/* Forced when sessions are cut (a signal); Graceful once a drain left none. */
static void shut_down(const char *why, bool forced)
{
    if (stopping)
        return;
    stopping = true;
    agw_log(AGW_LOG_INFO, "%s: shutting down", why);
    agw_systemd_stopping();
    agw_control_shutdown(control, forced, on_stopped);
}

static bool signal_draining;

static void on_drained(void *arg, unsigned contexts_left)
{
    (void)arg;
    bool forced = signal_draining || contexts_left > 0;
    char line[128];
    snprintf(line, sizeof(line),
             "drained: %u context(s) left; %s ServiceChange, then the gateway stops", contexts_left,
             forced ? "Forced" : "Graceful");
    agw_opsock_broadcast(opsock, line);
    shut_down("drain over", forced);
}

/* SIGTERM/SIGINT: with shutdown_drain_seconds, no new context and the running ones get that
 * long to be released; then (or at once) the sessions are closed (close_notify) and a Forced
 * ServiceChange tells the MGC. A second signal stops at once. */
static void on_signal(uv_signal_t *sig, int signum)
{
    (void)sig;
    if (stopping || signal_draining) {
        agw_log(AGW_LOG_WARN, "%s again: stopping now", strsignal(signum));
        if (stopping)
            exit(1);
        signal_draining = false;
        shut_down(strsignal(signum), true);
        return;
    }
    if (cfg.shutdown_drain_seconds > 0 && model.n_contexts > 0 &&
        agw_control_drain(control, cfg.shutdown_drain_seconds * 1000, on_drained, NULL) == 0) {
        signal_draining = true;
        agw_log(AGW_LOG_INFO, "%s: draining %u context(s) for up to %u s", strsignal(signum),
                model.n_contexts, cfg.shutdown_drain_seconds);
        return;
    }
    shut_down(strsignal(signum), true);
}

/* agw-ctl drain: no new context, then shut down once the contexts are gone or time is up. */
static int drain_request(void *arg, unsigned seconds, char *msg, size_t cap)
{
    (void)arg;
    if (seconds == 0)
        seconds = DRAIN_DEFAULT_S;
    int rc = stopping ? -ESHUTDOWN : agw_control_drain(control, seconds * 1000, on_drained, NULL);
    if (rc == -EALREADY)
        snprintf(msg, cap, "a drain is already running");
    else if (rc < 0)
        snprintf(msg, cap, "the gateway is stopping");
    else
        snprintf(msg, cap, "draining: no new context; %u context(s), waiting up to %u s",
                 model.n_contexts, seconds);
    return rc;
}

static int render_metrics(void *arg, char **out, size_t *len)
{
    (void)arg;
    return agw_metrics_render(control, &model, out, len);
}

/* The operator's ways in: /metrics and the control socket. A missing one stops the start
 * when configured explicitly; control_socket = auto only warns, since several gateways of
 * one user (tests, a second instance) share the automatic path. */
static int start_operations(uv_loop_t *loop)
{
    if (cfg.metrics_listen.ss_family != AF_UNSPEC) {
        if (agw_metrics_http_start(&metrics, loop, &cfg.metrics_listen, render_metrics, NULL) < 0)
            return -1;
        agw_control_probe_workers(control, 1000);
    }
    char path[AGW_CONFIG_PATH_MAX];
    if (agw_opsock_path(cfg.control_socket, path, sizeof(path)) < 0) {
        agw_log(AGW_LOG_ERROR, "control socket: the path for '%s' is too long", cfg.control_socket);
        return strcmp(cfg.control_socket, "auto") == 0 ? 0 : -1;
    }
    if (path[0] == '\0')
        return 0;
    int rc = agw_opsock_start(&opsock, loop, path, control, &model, drain_request, NULL);
    if (rc < 0 && strcmp(cfg.control_socket, "auto") == 0) {
        agw_log(AGW_LOG_WARN, "control socket: running without one (agw-ctl show and drain "
                              "need it; see control_socket in ims-agw.conf(5))");
        return 0;
    }
    return rc < 0 ? -1 : 0;
}

/* The watchdog runs on the control loop: its timer firing shows that loop turns. */
static bool loops_alive(void *arg, uint64_t max_age_ms)
{
    (void)arg;
    return agw_control_workers_alive(control, max_age_ms);
}

static void systemd_status(void *arg, char *buf, size_t cap)
{
    (void)arg;
    struct agw_control_state st;
    agw_control_get_state(control, &st);
    snprintf(buf, cap, "%s%s; contexts %u, terminations %u",
             st.draining ? "draining, no new context; " : "",
             st.registered ? "registered with the MGC" : "registering with the MGC",
             model.n_contexts, model.n_terms);
}

static unsigned worker_count(const struct agw_config *c)
{
    if (c->workers > 0)
        return c->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (unsigned)n;
}

int main(int argc, char **argv)
{
    struct agw_config_cli cli;
    char err[512];
    saved_argc = argc;
    saved_argv = argv;
    if (agw_config_parse_args(&cfg, argc, argv, &cli, err, sizeof(err)) < 0) {
        fprintf(stderr, "ims-agw: %s\n", err);
        return 2;
    }
    if (cli.help) {
        fputs(agw_config_usage(), stdout);
        return 0;
    }
    if (cli.version) {
        print_versions();
        return 0;
    }
    if (cli.check_only) {
        /* -t: the configuration is valid; show what would run. */
        agw_config_print(&cfg, stdout);
        return 0;
    }
    agw_log_set_level(cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(cfg.max_contexts);

    unsigned default_realm = 0;
    for (unsigned i = 0; i < cfg.realm_count; i++) {
        if (agw_realm_init(&realms[i], &cfg.realms[i], err, sizeof(err)) < 0) {
            agw_log(AGW_LOG_ERROR, "%s", err);
            return 1;
        }
        if (strcmp(cfg.realms[i].name, cfg.default_realm) == 0)
            default_realm = i;
        char fp[AGW_TLS_FINGERPRINT_TEXT_MAX];
        agw_tls_fingerprint_format(agw_tls_identity_fingerprint(realms[i].identity), fp,
                                   sizeof(fp));
        agw_log(AGW_LOG_INFO, "realm %s: %s ports %u-%u, certificate %s", realms[i].name,
                realms[i].addr_text, realms[i].port_low, realms[i].port_high, fp);
    }
    if (agw_model_init(&model, realms, cfg.realm_count, default_realm, cfg.max_contexts,
                       cfg.max_terminations_per_context, worker_count(&cfg)) < 0) {
        agw_log(AGW_LOG_ERROR, "out of memory for %u contexts", cfg.max_contexts);
        return 1;
    }
    struct agw_tls_ctx *tls_ctx;
    struct agw_tls_ctx_config tls_cfg = {
        .min_version =
            cfg.tls_min_version == AGW_CONFIG_TLS_1_3 ? AGW_TLS_VERSION_1_3 : AGW_TLS_VERSION_1_2,
        .ciphers = cfg.tls_ciphers[0] ? cfg.tls_ciphers : NULL,
        .ciphersuites = cfg.tls_ciphersuites[0] ? cfg.tls_ciphersuites : NULL,
        .groups = cfg.tls_groups[0] ? cfg.tls_groups : NULL,
        .input_max = cfg.relay_buffer_bytes,
        .output_max = cfg.relay_buffer_bytes,
    };
    if (agw_tls_ctx_new(&tls_cfg, &tls_ctx, err, sizeof(err)) < 0) {
        agw_log(AGW_LOG_ERROR, "TLS: %s", err);
        return 1;
    }
    model.tls_ctx = tls_ctx;
    model.handshake_timeout_ms = cfg.handshake_timeout_ms;
    model.ice_consent_timeout_ms = cfg.ice_consent_timeout_ms;
    model.buffer_bytes = cfg.relay_buffer_bytes;
    uv_loop_t *loop = uv_default_loop();
    const char *delay = getenv("AGW_DEBUG_WORKER_DELAY_MS"); /* test hook */
    unsigned delay_ms = delay != NULL ? (unsigned)strtoul(delay, NULL, 10) : 0;
    int rc = agw_control_start(&control, loop, &cfg, &model, delay_ms);
    if (rc < 0) {
        agw_log(AGW_LOG_ERROR, "cannot start: %s", uv_strerror(rc));
        return 1;
    }
    agw_log(AGW_LOG_INFO, "ims-agw %s started", AGW_VERSION);
    /* The TLS legs run OpenSSL in user space either way; kTLS would let the kernel carry the
     * records (not wired yet: this line says whether this host could). */
    char ktls_why[160];
    bool ktls = agw_tls_ktls_available(ktls_why, sizeof(ktls_why));
    agw_log(AGW_LOG_INFO, "kTLS: %s (%s); relay path: OpenSSL in user space",
            ktls ? "available" : "not available", ktls_why);
    uv_signal_init(loop, &sig_int);
    uv_signal_init(loop, &sig_term);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_init(loop, &sig_hup);
    uv_signal_start(&sig_hup, on_hup, SIGHUP);
    if (start_operations(loop) < 0) {
        /* Nothing is registered yet (the loop has not run): everything closes at once. */
        exit_code = 1;
        shut_down("cannot start", true);
    } else {
        /* Ready: Iq is bound, the workers run and the signals are handled. */
        rc = agw_systemd_start(loop, loops_alive, systemd_status, NULL);
        if (rc < 0) {
            agw_log(AGW_LOG_ERROR, "systemd: %s", uv_strerror(rc));
            return 1;
        }
        agw_systemd_ready();
    }
    uv_run(loop, UV_RUN_DEFAULT);
    agw_model_fini(&model);
    agw_tls_ctx_unref(tls_ctx);
    for (unsigned i = 0; i < cfg.realm_count; i++)
        agw_realm_fini(&realms[i]);
    uv_loop_close(loop);
    agw_log(AGW_LOG_INFO, "stopped");
    return exit_code;
}
