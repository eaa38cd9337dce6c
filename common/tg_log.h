/* tg_log.h: one event per line, key=value, fixed keys first:
 *   ts=2026-11-25T10:00:00.123Z level=warn mod=dp_upstream event=upstream_timeout key=value ...
 * Never log keys, Authorization, prompts or completions. */
#ifndef TG_LOG_H
#define TG_LOG_H

enum { TG_LOG_DEBUG = 0, TG_LOG_INFO = 1, TG_LOG_WARN = 2, TG_LOG_ERROR = 3 };

/* Set before threads start. */
void tg_log_set_level(int level);
/* Parses "debug", "info", "warn", "error"; -1 if unknown. */
int tg_log_parse_level(const char *s);
int tg_log_enabled(int level);
/* fmt holds the free-form tail ("tenant=%s after_ms=%d"); one write(2) per line, so lines from
 * different threads never interleave. */
void tg_log(int level, const char *mod, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define tg_log_debug(mod, ev, ...)                                                                 \
    do {                                                                                           \
        if (tg_log_enabled(TG_LOG_DEBUG))                                                          \
            tg_log(TG_LOG_DEBUG, mod, ev, __VA_ARGS__);                                            \
    } while (0)

#endif
