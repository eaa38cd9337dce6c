/* provider.h: one table of functions per provider kind, like curl's struct Curl_cftype. The
 * proxy calls only these; nothing else knows a provider's wire format. Pure (no I/O). */
#ifndef DP_PROVIDER_H
#define DP_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>

#include "reqbody.h"
#include "sse.h"
#include "tg_buf.h"
#include "tg_err.h"
#include "tg_snap.h"
#include "usage.h"

/* What a streamed answer has shown so far; one per streaming request. */
typedef struct dp_stream_state {
    bool client_wants_usage; /* else the usage chunk we asked for is hidden from the client */
    dp_usage_t usage;
    int64_t content_events; /* events that carried choices: the estimate when usage never came */
    bool done;              /* the terminal event arrived */
    tg_buf_t scratch;       /* owned: rewritten events */
    tg_buf_t data_scratch;  /* owned: multi-line data fields */
} dp_stream_state_t;

/* What to do with an upstream event; REPLACE bytes are in *out. */
enum { DP_EV_FORWARD = 0, DP_EV_DROP = 1, DP_EV_REPLACE = 2 };

/* Called for each upstream header line, e.g. "Authorization: Bearer ...". Copies the line. */
typedef int (*dp_header_add_fn)(void *ud, const char *line);

typedef struct dp_provider_ops {
    const char *kind;
    /* Writes the NUL-terminated upstream URL for endpoint into url. */
    int (*build_url)(const tg_provider_t *p, int endpoint, const char *model, tg_buf_t *url);
    /* Adds every header the upstream needs: credentials, content type, the provider's extras. */
    int (*add_headers)(const tg_provider_t *p, bool stream, dp_header_add_fn add, void *ud,
                       tg_buf_t *scratch);
    /* Writes the upstream body for a parsed client body. */
    int (*build_body)(dp_reqbody_t *rb, const char *model, tg_buf_t *out, tg_err_t *err);
    /* Maps one upstream SSE event (raw bytes) to what the client receives. */
    int (*on_event)(dp_stream_state_t *st, const char *ev, size_t n, const char **out,
                    size_t *outn);
    /* Reads usage from a complete non-streamed answer. */
    bool (*parse_usage)(const char *body, size_t n, dp_usage_t *u);
} dp_provider_ops_t;

/* The table for a tg_provider_kind; NULL for an unknown kind. */
const dp_provider_ops_t *dp_provider_ops(int kind);

void dp_stream_state_init(dp_stream_state_t *st, bool client_wants_usage);
void dp_stream_state_dispose(dp_stream_state_t *st);

extern const dp_provider_ops_t dp_provider_openai;

#endif
