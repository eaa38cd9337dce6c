/* tg_time.h: clocks. */
#ifndef TG_TIME_H
#define TG_TIME_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic time in microseconds. */
uint64_t tg_mono_us(void);
/* Wall-clock time in milliseconds since the epoch. */
int64_t tg_wall_ms(void);
/* Formats ms since the epoch as RFC 3339 UTC with milliseconds into out (>= 25 bytes). */
void tg_rfc3339_ms(int64_t ms, char *out, size_t outlen);

#endif
