/* cp_api_check.h: an API handler called directly with a cp_req_t, for the unit tests of what a
 * create or put checks before the database (the handlers in api/). A test file names its handler,
 * method and caller in an api_target_t: `prep` sets who (and params) before each call. api_call
 * runs the handler on a body and parses the JSON error it answered; api_passes expects the 503 of
 * the missing database (every check passed), api_refused an exact status, code, field and message.
 * Header-only: each test file that needs it includes it once and runs its TestSuite with
 * .init = api_setup, .fini = api_teardown. */
#ifndef CP_API_CHECK_H
#define CP_API_CHECK_H

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cp.h"

typedef struct {
    void (*handler)(cp_req_t *r);
    const char *method;
    void (*prep)(cp_req_t *r); /* sets r->who and r->params: the caller and the path */
} api_target_t;

/* What a call answered: the status, with the error's code, field and message ("" if absent). */
typedef struct {
    int status;
    char code[64];
    char field[64];
    char message[512];
} api_answer_t;

static cp_req_t api_req;

static void api_setup(void)
{
    memset(&api_req, 0, sizeof(api_req));
    tg_buf_init(&api_req.out, 1u << 20);
}

static void api_teardown(void)
{
    tg_buf_dispose(&api_req.out);
}

/* Sends body to t's handler as a fresh caller from t->prep; fills a and returns the status. */
static int api_call(const api_target_t *t, const char *body, api_answer_t *a)
{
    tg_buf_reset(&api_req.out);
    api_req.status = 0;
    memset(&api_req.who, 0, sizeof(api_req.who));
    api_req.who.authenticated = true;
    t->prep(&api_req);
    api_req.method = t->method;
    api_req.body = body;
    api_req.body_len = strlen(body);
    t->handler(&api_req);
    json_t *v = json_loadb(api_req.out.base, api_req.out.len, 0, NULL);
    cr_assert_not_null(v, "%.*s", (int)api_req.out.len, api_req.out.base);
    json_t *e = json_object_get(v, "error");
    const char *c = json_string_value(json_object_get(e, "code"));
    const char *f = json_string_value(json_object_get(e, "field"));
    const char *m = json_string_value(json_object_get(e, "message"));
    snprintf(a->code, sizeof(a->code), "%s", c ? c : "");
    snprintf(a->field, sizeof(a->field), "%s", f ? f : "");
    snprintf(a->message, sizeof(a->message), "%s", m ? m : "");
    json_decref(v);
    a->status = api_req.status;
    return a->status;
}

/* The body passes every check: the answer is the missing database's. */
static void api_passes(const api_target_t *t, const char *body)
{
    api_answer_t a;
    int status = api_call(t, body, &a);
    cr_assert_eq(status, 503, "%s: %d %s %s", body, status, a.field, a.message);
    cr_assert_str_eq(a.code, "database_unavailable", "%s", body);
}

static void api_refused(const api_target_t *t, const char *body, int status, const char *code,
                        const char *field, const char *message)
{
    api_answer_t a;
    cr_assert_eq(api_call(t, body, &a), status, "%s: %s", body, a.message);
    cr_assert_str_eq(a.code, code, "%s", body);
    cr_assert_str_eq(a.field, field, "%s", body);
    cr_assert_str_eq(a.message, message, "%s", body);
}

#endif
