/* The service manager's notify protocol (READY, STATUS, WATCHDOG, RELOADING, STOPPING) over
 * libsystemd's sd_notify; without NOTIFY_SOCKET in the environment every call does nothing. */
#include "agw/agw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#define STATUS_PERIOD_MS 1000

static struct {
    bool notify;  /* NOTIFY_SOCKET was set when started */
    bool started; /* the timers are initialised (and must be closed) */
    bool stopping;
    uv_timer_t status_timer, watchdog_timer;
    uint64_t watchdog_period_ms; /* 0: systemd asked for no watchdog */
    bool stalled;                /* the last check found a loop that did not turn */
    agw_systemd_alive_cb alive;
    agw_systemd_status_cb status;
    void *arg;
    char last_status[256]; /* as last sent: only changes are sent again */
    bool error_logged;
} sd;

static void notify(const char *text)
{
    if (!sd.notify)
        return;
    int rc = sd_notify(0, text);
    if (rc < 0 && !sd.error_logged) {
        /* Once: the manager is gone or the socket is wrong, repeating it says nothing new. */
        sd.error_logged = true;
        agw_log(AGW_LOG_WARN, "systemd: sd_notify failed: %s", strerror(-rc));
    }
}

/* The current status line from the callback, flattened to one line. */
static void current_status(char *buf, size_t cap)
{
    buf[0] = '\0';
    if (sd.status != NULL)
        sd.status(sd.arg, buf, cap);
    for (char *p = buf; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

/* Sends msg (assignments without STATUS) with the current status appended. */
static void notify_with_status(const char *msg)
{
    char status[sizeof(sd.last_status)];
    char text[sizeof(status) + 64];
    current_status(status, sizeof(status));
    snprintf(text, sizeof(text), "%s%sSTATUS=%s", msg, msg[0] != '\0' ? "\n" : "", status);
    notify(text);
    snprintf(sd.last_status, sizeof(sd.last_status), "%s", status);
}

static void on_status_timer(uv_timer_t *timer)
{
    (void)timer;
    char status[sizeof(sd.last_status)];
    current_status(status, sizeof(status));
    if (strcmp(status, sd.last_status) != 0)
        notify_with_status("");
}

static void on_watchdog_timer(uv_timer_t *timer)
{
    (void)timer;
    /* This runs on the control loop, so getting here shows it turns; alive() vouches for the
     * others. A loop stuck for longer than a period stops the pings and systemd steps in. */
    bool ok = sd.alive == NULL || sd.alive(sd.arg, sd.watchdog_period_ms);
    if (ok) {
        notify("WATCHDOG=1");
        if (sd.stalled)
            agw_log(AGW_LOG_INFO, "systemd: every loop turns again, watchdog pings resumed");
    } else if (!sd.stalled) {
        agw_log(AGW_LOG_ERROR, "systemd: a worker loop did not turn for %llu ms: no watchdog ping",
                (unsigned long long)sd.watchdog_period_ms);
    }
    sd.stalled = !ok;
}

int agw_systemd_start(uv_loop_t *loop, agw_systemd_alive_cb alive, agw_systemd_status_cb status,
                      void *arg)
{
    sd.notify = getenv("NOTIFY_SOCKET") != NULL;
    sd.alive = alive;
    sd.status = status;
    sd.arg = arg;
    if (!sd.notify)
        return 0;
    uint64_t usec = 0;
    int rc = sd_watchdog_enabled(0, &usec);
    if (rc < 0)
        agw_log(AGW_LOG_WARN, "systemd: ignoring the watchdog settings: %s", strerror(-rc));
    /* Half the interval: one late ping must not be the one systemd was waiting for. */
    sd.watchdog_period_ms = rc > 0 ? usec / 2000 : 0;
    if (rc > 0 && sd.watchdog_period_ms == 0)
        sd.watchdog_period_ms = 1;
    rc = uv_timer_init(loop, &sd.status_timer);
    if (rc < 0)
        return rc;
    rc = uv_timer_init(loop, &sd.watchdog_timer);
    if (rc < 0) {
        uv_close((uv_handle_t *)&sd.status_timer, NULL);
        return rc;
    }
    sd.started = true;
    uv_timer_start(&sd.status_timer, on_status_timer, STATUS_PERIOD_MS, STATUS_PERIOD_MS);
    if (sd.watchdog_period_ms > 0) {
        uv_timer_start(&sd.watchdog_timer, on_watchdog_timer, sd.watchdog_period_ms,
                       sd.watchdog_period_ms);
        agw_log(AGW_LOG_INFO, "systemd: watchdog ping every %llu ms",
                (unsigned long long)sd.watchdog_period_ms);
    }
    return 0;
}

void agw_systemd_ready(void)
{
    if (!sd.stopping)
        notify_with_status("READY=1");
}

void agw_systemd_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* MONOTONIC_USEC: what Type=notify-reload (systemd 253+) requires; older ones ignore it. */
    char text[96];
    snprintf(text, sizeof(text), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
    notify(text);
}

void agw_systemd_stopping(void)
{
    if (sd.stopping)
        return;
    sd.stopping = true;
    notify("STOPPING=1\nSTATUS=stopping: Graceful ServiceChange, then closing every session");
    if (sd.started) {
        /* systemd stops watching once STOPPING=1 came; the callbacks' objects are going away. */
        uv_close((uv_handle_t *)&sd.status_timer, NULL);
        uv_close((uv_handle_t *)&sd.watchdog_timer, NULL);
        sd.started = false;
    }
}
