/* sigv4.h: AWS Signature Version 4 for requests signed in the Authorization header (the form
 * Bedrock takes). The caller names the headers it signs; this module builds the canonical
 * request, the string to sign and the signature. Pure. */
#ifndef DP_SIGV4_H
#define DP_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "tg_buf.h"

#define DP_SIGV4_MAX_HEADERS 16

/* One signed header: a lower-case name and its value as sent. */
typedef struct dp_sigv4_header {
    const char *name;
    const char *value;
} dp_sigv4_header_t;

/* Everything a signature covers. All strings are borrowed for the call. */
typedef struct dp_sigv4_req {
    const char *method;               /* "POST" */
    const char *canonical_uri;        /* from dp_sigv4_canonical_uri */
    const char *canonical_query;      /* "" when the URL has no query */
    const dp_sigv4_header_t *headers; /* in any order; host and x-amz-date among them */
    size_t nheaders;
    const char *payload_hash; /* lowercase hex SHA-256 of the body */
    const char *amz_date;     /* YYYYMMDD'T'HHMMSS'Z', the x-amz-date value */
    const char *region;
    const char *service;
    const char *access_key_id;
    const char *secret_access_key;
} dp_sigv4_req_t;

/* Writes the x-amz-date form of unix time t (UTC) into out: 16 characters and a NUL. */
void dp_sigv4_amz_date(int64_t t, char out[17]);
/* Writes the lowercase hex SHA-256 of n bytes into out: 64 characters and a NUL. */
void dp_sigv4_sha256_hex(const void *p, size_t n, char out[65]);
/* Appends the canonical URI of a path as it is sent (already percent-encoded), for every service
 * but S3: each byte but the unreserved ones and '/' is percent-encoded once more, so a segment
 * sent as "v1%3A0" is signed as "v1%253A0" (botocore and the AWS SDKs do the same). An empty
 * path is "/". */
int dp_sigv4_canonical_uri(tg_buf_t *out, const char *path, size_t n) TG_WUR;
/* Appends the Authorization header value: "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
 * Signature=...". The derived keys are wiped before returning. TG_EINVAL on a malformed input. */
int dp_sigv4_authorization(const dp_sigv4_req_t *r, tg_buf_t *out) TG_WUR;
/* The same, and the canonical request and string to sign into the given buffers (for tests and
 * debugging; either may be NULL). */
int dp_sigv4_sign(const dp_sigv4_req_t *r, tg_buf_t *out, tg_buf_t *canonical_request,
                  tg_buf_t *string_to_sign) TG_WUR;

#endif
