/* tg_err.c: error values shared by both planes; no I/O. */
#include "tg_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tg_errors.h"

#include "tg_banned.h"

void tg_err_set(tg_err_t *err, int code, int status, const char *fmt, ...)
{
    va_list ap;
    if (!err)
        return;
    err->code = code;
    err->status = status;
    err->type = tg_error_type(status);
    err->ecode = NULL;
    err->param = NULL;
    err->detail[0] = '\0';
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

void tg_err_code(tg_err_t *err, const char *ecode)
{
    if (err)
        err->ecode = ecode;
}

void tg_err_detail(tg_err_t *err, const char *fmt, ...)
{
    va_list ap;
    if (!err)
        return;
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
    va_end(ap);
}

void tg_err_clear(tg_err_t *err)
{
    /* every field a reader looks at, not the 640 bytes of text behind the first ones: this
     * runs several times on every request */
    err->code = 0;
    err->status = 0;
    err->type = NULL;
    err->ecode = NULL;
    err->param = NULL;
    err->msg[0] = '\0';
    err->detail[0] = '\0';
}

const char *tg_strerror(int code)
{
    switch (code) {
    case TG_OK:
        return "ok";
    case TG_ENOMEM:
        return "out of memory";
    case TG_ETOOBIG:
        return "too big";
    case TG_EINVAL:
        return "invalid";
    case TG_EIO:
        return "i/o error";
    case TG_EAUTH:
        return "unauthenticated";
    case TG_EFORBIDDEN:
        return "forbidden";
    case TG_ENOTFOUND:
        return "not found";
    case TG_EUPSTREAM:
        return "upstream error";
    case TG_ETIMEOUT:
        return "timeout";
    case TG_ECLOSED:
        return "closed";
    case TG_ERATE:
        return "limit reached";
    default:
        return "unknown error";
    }
}
