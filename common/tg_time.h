/* tg_time.h: clocks. */
#ifndef TG_TIME_H
#define TG_TIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Monotonic time in microseconds. */
uint64_t tg_mono_us(void);
/* Wall-clock time in milliseconds since the epoch. */
int64_t tg_wall_ms(void);
/* Reads an RFC 3339 date-time, YYYY-MM-DDThh:mm:ss[.f](Z|+hh:mm|-hh:mm): 't' may stand for 'T',
 * and ' ' too with allow_space; a fraction has 1-9 digits. The calendar is checked (months,
 * days of the month in leap years and not, hours, minutes, seconds 0-59, offsets), so nothing
 * such as "now" or "2030-02-30" gets through to Postgres. On success *unix_s (if not NULL) holds
 * the time in unix seconds, the fraction dropped, and *frac (if not NULL) whether a non-zero
 * fraction followed. */
bool tg_rfc3339_parse(const char *s, size_t n, bool allow_space, int64_t *unix_s, bool *frac);
/* Days from 1970-01-01 to y-m-d, proleptic Gregorian (H. Hinnant's days_from_civil). */
int64_t tg_days_from_civil(int64_t y, int64_t m, int64_t d);
/* Formats ms since the epoch as RFC 3339 UTC with milliseconds into out (>= 25 bytes). */
void tg_rfc3339_ms(int64_t ms, char *out, size_t outlen);

#endif
