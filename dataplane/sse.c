/* sse.c: SSE event reassembly (WHATWG "event stream" rules: lines end in CRLF, LF or CR; a blank
 * line ends an event). Owned by one upstream exchange, so loop thread only. */
#include "sse.h"

#include <string.h>

#include "tg_banned.h"

void dp_sse_init(dp_sse_t *s, size_t max_event)
{
    tg_buf_init(&s->partial, max_event);
    s->line_len = 0;
    s->prev_cr = false;
}

void dp_sse_dispose(dp_sse_t *s)
{
    tg_buf_dispose(&s->partial);
}

static const char *next_eol(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p == '\n' || *p == '\r')
            return p;
    return NULL;
}

int dp_sse_feed(dp_sse_t *s, const char *p, size_t n, dp_sse_event_cb cb, void *ud)
{
    const char *end = p + n;
    const char *ev_start = p; /* start of the not-yet-emitted part of this chunk */
    const char *q = p;
    int rc;
    while (q < end) {
        const char *eol = next_eol(q, end);
        if (!eol) {
            s->line_len += (size_t)(end - q);
            s->prev_cr = false;
            break;
        }
        s->line_len += (size_t)(eol - q);
        if (*eol == '\n' && s->prev_cr && eol == q) {
            /* the LF of a CRLF whose CR ended the previous line (possibly in an earlier read) */
            s->prev_cr = false;
            q = eol + 1;
            /* if that CR ended an event already passed on, the LF belongs to it: drop it rather
             * than start the next event with a blank line (or leave it pending at the end) */
            if (ev_start == eol && s->partial.len == 0)
                ev_start = q;
            continue;
        }
        s->prev_cr = *eol == '\r';
        q = eol + 1;
        if (s->line_len > 0) {
            s->line_len = 0;
            continue;
        }
        /* a blank line: the event ends here; swallow the LF of a CRLF terminator too */
        if (s->prev_cr && q < end && *q == '\n') {
            q++;
            s->prev_cr = false;
        }
        if (s->partial.len == 0) {
            if (q - ev_start > 2 ||
                (q - ev_start > 0 && ev_start[0] != '\n' && ev_start[0] != '\r'))
                rc = cb(ud, ev_start, (size_t)(q - ev_start));
            else
                rc = 0; /* a stray blank line between events carries nothing */
        } else {
            rc = tg_buf_append(&s->partial, ev_start, (size_t)(q - ev_start));
            if (rc == 0)
                rc = cb(ud, s->partial.base, s->partial.len);
            tg_buf_reset(&s->partial);
        }
        if (rc != 0)
            return rc;
        ev_start = q;
    }
    if (ev_start < end)
        return tg_buf_append(&s->partial, ev_start, (size_t)(end - ev_start));
    return 0;
}

bool dp_sse_data(const char *ev, size_t n, tg_buf_t *scratch, const char **data, size_t *len)
{
    const char *p = ev;
    const char *end = ev + n;
    int found = 0;
    const char *first = NULL;
    size_t first_len = 0;
    while (p < end) {
        const char *eol = next_eol(p, end);
        const char *line_end = eol ? eol : end;
        size_t ll = (size_t)(line_end - p);
        if (ll >= 5 && memcmp(p, "data", 4) == 0 && (p[4] == ':')) {
            const char *v = p + 5;
            if (v < line_end && *v == ' ')
                v++;
            size_t vl = (size_t)(line_end - v);
            if (found == 0) {
                first = v;
                first_len = vl;
            } else {
                if (found == 1) {
                    tg_buf_reset(scratch);
                    if (tg_buf_append(scratch, first, first_len) != 0)
                        return false;
                }
                if (tg_buf_append(scratch, "\n", 1) != 0 || tg_buf_append(scratch, v, vl) != 0)
                    return false;
            }
            found++;
        } else if (ll == 4 && memcmp(p, "data", 4) == 0) {
            /* "data" with no colon is a data line with an empty value */
            if (found == 0) {
                first = line_end;
                first_len = 0;
            } else {
                if (found == 1) {
                    tg_buf_reset(scratch);
                    if (tg_buf_append(scratch, first, first_len) != 0)
                        return false;
                }
                if (tg_buf_append(scratch, "\n", 1) != 0)
                    return false;
            }
            found++;
        }
        if (!eol)
            break;
        p = eol + 1;
        if (*eol == '\r' && p < end && *p == '\n')
            p++;
    }
    if (found == 0)
        return false;
    if (found == 1) {
        *data = first;
        *len = first_len;
    } else {
        *data = scratch->base;
        *len = scratch->len;
    }
    return true;
}
