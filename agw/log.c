/* Logging: one line per event to stderr, levels, and rate limits for hostile input. */
#include "agw/agw.h"

#include <stdio.h>
#include <unistd.h>

static _Atomic int current_level = AGW_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void agw_log_set_level(enum agw_log_level level)
{
    current_level = (int)level;
}

bool agw_log_enabled(enum agw_log_level level)
{
    return (int)level <= current_level;
}

void agw_log(enum agw_log_level level, const char *fmt, ...)
{
    if (!agw_log_enabled(level))
        return;
    char line[1024];
    int n = snprintf(line, sizeof(line), "ims-agw: %s: ", level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    /* One write per line: lines of different threads never interleave. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

bool agw_log_allow(struct agw_log_limit *limit, uint64_t now_ms, unsigned per_second)
{
    uint64_t second = now_ms / 1000;
    if (second != limit->second) {
        if (limit->suppressed > 0)
            agw_log(AGW_LOG_WARN, "%lu similar log lines suppressed", limit->suppressed);
        limit->second = second;
        limit->lines = 0;
        limit->suppressed = 0;
    }
    if (limit->lines >= per_second) {
        limit->suppressed++;
        return false;
    }
    limit->lines++;
    return true;
}
