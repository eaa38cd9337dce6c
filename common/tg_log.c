/* tg_log.c: the line logger; any thread. A line is formatted on the stack and written with one
 * write(2) to stderr; a line that does not fit is truncated, never split. */
#include "tg_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tg_banned.h"

static _Atomic int log_level = TG_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void tg_log_set_level(int level)
{
    atomic_store_explicit(&log_level, level, memory_order_relaxed);
}

int tg_log_parse_level(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

int tg_log_enabled(int level)
{
    return level >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void tg_log(int level, const char *mod, const char *event, const char *fmt, ...)
{
    if (!tg_log_enabled(level))
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line),
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s mod=%s event=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level & 3], mod, event);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    if (fmt && fmt[0] && len + 2 < sizeof(line)) {
        line[len++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
        va_end(ap);
        if (n > 0)
            len += (size_t)n < sizeof(line) - len ? (size_t)n : sizeof(line) - len - 1;
    }
    if (len >= sizeof(line) - 1)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; /* nowhere left to report a failed log write */
}
