/* eventstream.h: the AWS event-stream binary framing (application/vnd.amazon.eventstream), as
 * Bedrock's ConverseStream sends it. A message is a 12-byte prelude (total length and headers
 * length, both u32 big-endian, and the prelude's CRC32), typed headers, a payload and the CRC32
 * of everything before it. Messages are reassembled from bytes split at any point. Pure. */
#ifndef DP_EVENTSTREAM_H
#define DP_EVENTSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "tg_buf.h"

/* Prelude (12) plus message CRC (4): the smallest message. */
#define DP_ES_OVERHEAD 16u

/* The header value types of the format. */
enum dp_es_type {
    DP_ES_TRUE = 0,
    DP_ES_FALSE = 1,
    DP_ES_BYTE = 2,
    DP_ES_SHORT = 3,
    DP_ES_INT = 4,
    DP_ES_LONG = 5,
    DP_ES_BYTES = 6,
    DP_ES_STRING = 7,
    DP_ES_TIMESTAMP = 8,
    DP_ES_UUID = 9,
};

/* One message as the callback sees it: the string headers the adapters act on, and the
 * payload. Every pointer is borrowed from the feed (or the reassembly buffer) until the callback
 * returns; a header that is absent (or not a string) has NULL and 0. */
typedef struct dp_es_msg {
    const char *message_type; /* :message-type: "event", "exception" or "error" */
    size_t message_type_len;
    const char *event_type; /* :event-type, e.g. "contentBlockDelta" */
    size_t event_type_len;
    const char *exception_type; /* :exception-type, e.g. "throttlingException" */
    size_t exception_type_len;
    const char *error_code; /* :error-code and :error-message of "error" messages */
    size_t error_code_len;
    const char *error_message;
    size_t error_message_len;
    const char *payload;
    size_t payload_len;
} dp_es_msg_t;

/* Reassembles messages; holds at most one incomplete message. */
typedef struct dp_es {
    tg_buf_t partial; /* bytes of the message not yet complete; bounded by max at init */
    size_t max;       /* the largest message accepted */
} dp_es_t;

/* Called once per complete, checked message. A non-zero return stops the feed and is returned. */
typedef int (*dp_es_msg_cb)(void *ud, const dp_es_msg_t *m);

/* CRC-32 (IEEE 802.3, as zlib's crc32): crc is 0 to start, or the value of the bytes before. */
uint32_t dp_crc32(uint32_t crc, const void *p, size_t n);

void dp_es_init(dp_es_t *es, size_t max_message);
void dp_es_dispose(dp_es_t *es);
/* Feeds n bytes; calls cb for each message completed by them. Messages wholly inside p are passed
 * without copying. TG_ETOOBIG when a message announces more than the maximum, TG_EINVAL when a
 * CRC does not match or the framing is malformed; the reader is unusable afterwards. */
int dp_es_feed(dp_es_t *es, const char *p, size_t n, dp_es_msg_cb cb, void *ud);
/* Bytes held for a message not yet complete. */
static inline size_t dp_es_pending(const dp_es_t *es)
{
    return es->partial.len;
}
/* Checks and reads one whole message (n is exactly its total length). */
int dp_es_parse(const char *p, size_t n, dp_es_msg_t *m) TG_WUR;
/* Appends one message with string headers (names[i], values[i]) and the payload. */
int dp_es_encode(tg_buf_t *out, const char *const *names, const char *const *values,
                 size_t nheaders, const char *payload, size_t payload_len) TG_WUR;

#endif
