/* sse.h: reassembles server-sent events from bytes that arrive split at any point. Pure. */
#ifndef DP_SSE_H
#define DP_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "tg_buf.h"

typedef struct dp_sse {
    tg_buf_t partial; /* bytes of an event not yet terminated; bounded by max at init */
    size_t line_len;  /* bytes on the current line so far */
    bool prev_cr;     /* the last byte seen was CR (so a following LF ends nothing new) */
} dp_sse_t;

/* Called once per complete event with its raw bytes, blank-line terminator included. The bytes
 * are borrowed until the callback returns. A non-zero return stops the feed and is returned. */
typedef int (*dp_sse_event_cb)(void *ud, const char *ev, size_t n);

void dp_sse_init(dp_sse_t *s, size_t max_event);
void dp_sse_dispose(dp_sse_t *s);
/* Feeds n bytes; calls cb for each event completed by them. TG_ETOOBIG when an event exceeds the
 * maximum. Events wholly inside `p` are passed without copying. */
int dp_sse_feed(dp_sse_t *s, const char *p, size_t n, dp_sse_event_cb cb, void *ud);
/* Bytes held for an event not yet complete. */
static inline size_t dp_sse_pending(const dp_sse_t *s)
{
    return s->partial.len;
}
/* The event's data: the value of its `data` lines joined by "\n". Single-line events are returned
 * as a slice of ev without copying; otherwise the value is assembled in scratch. Returns false
 * when the event has no data line. */
bool dp_sse_data(const char *ev, size_t n, tg_buf_t *scratch, const char **data, size_t *len);

#endif
