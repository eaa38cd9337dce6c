/* tg_err.h: error codes and the error a client may see. */
#ifndef TG_ERR_H
#define TG_ERR_H

#include <stddef.h>

#define TG_WUR __attribute__((warn_unused_result))

enum {
    TG_OK = 0,
    TG_ENOMEM = -1,
    TG_ETOOBIG = -2,
    TG_EINVAL = -3,
    TG_EIO = -4,
    TG_EAUTH = -5,
    TG_EFORBIDDEN = -6,
    TG_ENOTFOUND = -7,
    TG_EUPSTREAM = -8,
    TG_ETIMEOUT = -9,
    TG_ECLOSED = -10,
    TG_ERATE = -11, /* a rate limit or budget said no */
};

/* A failure the client must see: an HTTP status, an OpenAI error `type` and `code`, a message
 * the client may read, and a detail for the log only. */
typedef struct tg_err {
    int code;          /* TG_E* */
    int status;        /* HTTP status */
    const char *type;  /* static string, OpenAI error type (tg_error_type unless overridden) */
    const char *ecode; /* static string or NULL, OpenAI error code */
    const char *param; /* static string or NULL, the request field at fault */
    char msg[384];
    char detail[256];
} tg_err_t;

/* Sets code, status and message (printf-style); type and ecode default from the status. */
void tg_err_set(tg_err_t *err, int code, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Sets the OpenAI error code string (static storage). */
void tg_err_code(tg_err_t *err, const char *ecode);
/* Sets the log-only detail. */
void tg_err_detail(tg_err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tg_err_clear(tg_err_t *err);
/* Short name of a TG_E* code for logs. */
const char *tg_strerror(int code);

#endif
