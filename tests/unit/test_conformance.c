/* test_conformance.c: the translation conformance suite (tests/golden/README.md). Every
 * tests/golden/<dir>/<name>.json transcript goes through xlate.h as the proxy drives it: the
 * request through dp_xlate_build, a JSON answer through dp_xlate_response, a stream through
 * dp_xlate_feed and dp_xlate_end, fed whole, byte by byte and split in two at every boundary.
 * A failing file is named with what differed, expected against actual. TG_GOLDEN_DIR names
 * another golden directory (one subdirectory per kind), e.g. a copy with broken files. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <sanitizer/common_interface_defs.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tg_snap.h"
#include "xlate.h"
#include "xresp.h"

#include "tg_banned.h"

#define DEFAULT_NOW_S 1764072000
#define DEFAULT_REQUEST_ID "req-1"
#define MAX_SHOW 6000 /* bytes of raw output shown in a failure */

/* ---- reporting ---- */

static void note(tg_buf_t *rep, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(tg_buf_t *rep, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    cr_assert_geq(n, 0);
    char *s = malloc((size_t)n + 1);
    cr_assert_not_null(s);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    cr_assert_eq(tg_buf_append(rep, s, (size_t)n), 0);
    free(s);
}

/* Compact JSON of v for a message (caller frees); "(nothing)" for NULL. */
static char *show(const json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("(nothing)");
    cr_assert_not_null(s);
    return s;
}

static void note_json(tg_buf_t *rep, const char *label, const json_t *v)
{
    char *s = show(v);
    note(rep, "      %s %s\n", label, s);
    free(s);
}

static void note_raw(tg_buf_t *rep, const char *label, const char *p, size_t n)
{
    int shown = n > MAX_SHOW ? MAX_SHOW : (int)n;
    note(rep, "      %s [%.*s]%s\n", label, shown, p ? p : "", n > MAX_SHOW ? " (cut)" : "");
}

/* ---- JSON comparison with "<any>" ---- */

typedef struct diff {
    char path[512];
    const char *why;
    const json_t *exp; /* the values where they differ */
    const json_t *act;
} diff_t;

static bool is_any(const json_t *v)
{
    return json_is_string(v) && strcmp(json_string_value(v), "<any>") == 0;
}

static size_t path_push(diff_t *d, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static size_t path_push(diff_t *d, size_t at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(d->path + at, sizeof(d->path) - at, fmt, ap);
    va_end(ap);
    size_t end = n < 0 ? at : at + (size_t)n;
    return end < sizeof(d->path) ? end : sizeof(d->path) - 1;
}

static bool differ(diff_t *d, const char *why, const json_t *exp, const json_t *act)
{
    d->why = why;
    d->exp = exp;
    d->act = act;
    return false;
}

/* json_equal, except that an expected "<any>" only needs the member to exist. */
static bool match_at(const json_t *exp, const json_t *act, diff_t *d, size_t at)
{
    d->path[at] = '\0';
    if (is_any(exp))
        return true;
    if (json_is_object(exp)) {
        if (!json_is_object(act))
            return differ(d, "not an object", exp, act);
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)exp, k, v)
        {
            size_t n = path_push(d, at, ".%s", k);
            json_t *av = json_object_get(act, k);
            if (!av)
                return differ(d, "member missing", v, NULL);
            if (!match_at(v, av, d, n))
                return false;
        }
        json_object_foreach((json_t *)act, k, v)
        {
            if (!json_object_get(exp, k)) {
                path_push(d, at, ".%s", k);
                return differ(d, "unexpected member", NULL, v);
            }
        }
        return true;
    }
    if (json_is_array(exp)) {
        if (!json_is_array(act))
            return differ(d, "not an array", exp, act);
        size_t i;
        json_t *v;
        json_array_foreach(exp, i, v)
        {
            size_t n = path_push(d, at, "[%zu]", i);
            json_t *av = json_array_get(act, i);
            if (!av)
                return differ(d, "array too short", v, NULL);
            if (!match_at(v, av, d, n))
                return false;
        }
        if (json_array_size(act) > json_array_size(exp)) {
            path_push(d, at, "[%zu]", json_array_size(exp));
            return differ(d, "array too long", NULL, json_array_get(act, json_array_size(exp)));
        }
        return true;
    }
    if (!json_equal((json_t *)exp, (json_t *)act))
        return differ(d, "value differs", exp, act);
    return true;
}

static bool match(const json_t *exp, const json_t *act, diff_t *d)
{
    memset(d, 0, sizeof(*d));
    d->path[0] = '$';
    if (!act)
        return differ(d, "missing", exp, NULL);
    return match_at(exp, act, d, 1);
}

/* Compares and, on a difference, notes where and both whole values. */
static bool check_json(tg_buf_t *rep, const char *what, const json_t *exp, const json_t *act)
{
    diff_t d;
    if (match(exp, act, &d))
        return true;
    if (d.path[0] == '\0')
        d.path[0] = '$';
    note(rep, "  %s: %s at %s\n", what, d.why, d.path);
    if (d.exp != exp || d.act != act) {
        note_json(rep, "expected here:", d.exp);
        note_json(rep, "actual here:  ", d.act);
    }
    note_json(rep, "expected:", exp);
    note_json(rep, "actual:  ", act);
    return false;
}

/* ---- the client's SSE events ---- */

typedef struct sse_event {
    char *name; /* NULL without an event line */
    tg_buf_t data;
    bool has_data;
} sse_event_t;

typedef struct sse_events {
    sse_event_t *ev;
    size_t n;
    size_t cap;
    bool unterminated; /* the bytes ended inside an event */
} sse_events_t;

static void events_free(sse_events_t *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free(e->ev[i].name);
        tg_buf_dispose(&e->ev[i].data);
    }
    free(e->ev);
    memset(e, 0, sizeof(*e));
}

static void events_push(sse_events_t *e, sse_event_t *cur)
{
    if (!cur->has_data && !cur->name)
        return; /* comments and blank lines alone are no event */
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 16;
        e->ev = realloc(e->ev, e->cap * sizeof(*e->ev));
        cr_assert_not_null(e->ev);
    }
    e->ev[e->n++] = *cur;
    memset(cur, 0, sizeof(*cur));
    tg_buf_init(&cur->data, 64u << 20);
}

/* Splits SSE bytes into events as a client does (LF, CRLF or CR line ends; data lines joined
 * with LF; comments, id and retry ignored). An unterminated last event still counts. */
static void events_parse(const char *p, size_t n, sse_events_t *e)
{
    sse_event_t cur;
    memset(e, 0, sizeof(*e));
    memset(&cur, 0, sizeof(cur));
    tg_buf_init(&cur.data, 64u << 20);
    size_t pos = 0;
    bool pending = false;
    while (pos < n) {
        size_t end = pos;
        while (end < n && p[end] != '\n' && p[end] != '\r')
            end++;
        const char *line = p + pos;
        size_t len = end - pos;
        if (end == n)
            pos = n;
        else if (p[end] == '\r' && end + 1 < n && p[end + 1] == '\n')
            pos = end + 2;
        else
            pos = end + 1;
        if (len == 0) {
            events_push(e, &cur);
            pending = false;
            continue;
        }
        pending = true;
        if (line[0] == ':')
            continue;
        const char *colon = memchr(line, ':', len);
        size_t nlen = colon ? (size_t)(colon - line) : len;
        const char *val = colon ? colon + 1 : line + len;
        size_t vlen = (size_t)(line + len - val);
        if (vlen > 0 && val[0] == ' ') {
            val++;
            vlen--;
        }
        if (tg_mem_eq(line, nlen, "data", 4)) {
            if (cur.has_data)
                cr_assert_eq(tg_buf_append(&cur.data, "\n", 1), 0);
            cr_assert_eq(tg_buf_append(&cur.data, val, vlen), 0);
            cur.has_data = true;
        } else if (tg_mem_eq(line, nlen, "event", 5)) {
            free(cur.name);
            cur.name = strndup(val, vlen);
            cr_assert_not_null(cur.name);
        }
    }
    if (pending && (cur.has_data || cur.name)) {
        e->unterminated = true;
        events_push(e, &cur);
    }
    free(cur.name);
    tg_buf_dispose(&cur.data);
}

static const char *ev_data(const sse_event_t *ev)
{
    return ev->data.base ? ev->data.base : "";
}

/* The data as JSON, or NULL when it is none. */
static json_t *ev_json(const sse_event_t *ev)
{
    if (!ev->has_data)
        return NULL;
    return json_loadb(ev_data(ev), ev->data.len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
}

/* An event written the way expect_events writes it, for messages. */
static json_t *ev_as_golden(const sse_event_t *ev)
{
    json_t *data = ev_json(ev);
    if (!json_is_object(data) && !json_is_array(data)) {
        json_decref(data);
        data = json_stringn(ev_data(ev), ev->data.len);
    }
    if (!ev->name)
        return data;
    return json_pack("{s:s,s:o}", "event", ev->name, "data", data ? data : json_null());
}

static void note_events(tg_buf_t *rep, const sse_events_t *e)
{
    note(rep, "      actual events (%zu)%s:\n", e->n,
         e->unterminated ? ", the last unterminated" : "");
    for (size_t i = 0; i < e->n; i++) {
        json_t *g = ev_as_golden(&e->ev[i]);
        char *s = show(g);
        note(rep, "        [%zu] %s\n", i, s);
        free(s);
        json_decref(g);
    }
}

static bool is_event_form(const json_t *exp)
{
    return json_is_object(exp) && json_object_size(exp) == 2 && json_object_get(exp, "event") &&
           json_object_get(exp, "data");
}

/* One expected event against the actual one; notes the difference. */
static bool event_matches(tg_buf_t *rep, size_t i, const json_t *exp, const sse_event_t *ev)
{
    char what[64];
    snprintf(what, sizeof(what), "expect_events[%zu]", i);
    if (is_event_form(exp)) {
        const json_t *name = json_object_get(exp, "event");
        if (!is_any(name) && (!ev->name || !json_is_string(name) ||
                              strcmp(ev->name, json_string_value(name)) != 0)) {
            note(rep, "  %s: event name differs: expected %s, got %s\n", what,
                 json_is_string(name) ? json_string_value(name) : "(not a string)",
                 ev->name ? ev->name : "(none)");
            return false;
        }
        exp = json_object_get(exp, "data");
    }
    if (is_any(exp))
        return true;
    if (json_is_string(exp)) {
        const char *s = json_string_value(exp);
        if (ev->has_data && tg_mem_eq(ev_data(ev), ev->data.len, s, json_string_length(exp)))
            return true;
        note(rep, "  %s: data differs: expected [%s], got [%.*s]\n", what, s,
             (int)(ev->data.len > MAX_SHOW ? MAX_SHOW : ev->data.len), ev_data(ev));
        return false;
    }
    json_t *act = ev_json(ev);
    if (!act) {
        note(rep, "  %s: data is not JSON: [%.*s]\n", what,
             (int)(ev->data.len > MAX_SHOW ? MAX_SHOW : ev->data.len), ev_data(ev));
        return false;
    }
    bool ok = check_json(rep, what, exp, act);
    json_decref(act);
    return ok;
}

static void check_events(tg_buf_t *rep, const json_t *exp, const sse_events_t *e)
{
    bool ok = true;
    size_t nexp = json_array_size(exp);
    for (size_t i = 0; ok && i < nexp && i < e->n; i++)
        ok = event_matches(rep, i, json_array_get(exp, i), &e->ev[i]);
    if (ok && nexp != e->n) {
        note(rep, "  expect_events: %zu events expected, %zu arrived\n", nexp, e->n);
        ok = false;
    }
    if (!ok)
        note_events(rep, e);
}

/* An OpenAI `{"error":...}` data or an Anthropic `event: error`. */
static bool has_error_event(const sse_events_t *e)
{
    for (size_t i = 0; i < e->n; i++) {
        if (e->ev[i].name &&
            (strcmp(e->ev[i].name, "error") == 0 || strcmp(e->ev[i].name, "response.failed") == 0))
            return true;
        json_t *j = ev_json(&e->ev[i]);
        bool err = json_is_object(j) && json_object_get(j, "error");
        json_decref(j);
        if (err)
            return true;
    }
    return false;
}

/* ---- golden files ---- */

enum { T_STR, T_INT, T_BOOL, T_OBJ, T_ARR, T_ANY, T_STRS, T_OBJ_OR_STR };

static const struct member {
    const char *name;
    int type;
} members[] = {
    {"name", T_STR},
    {"provider", T_OBJ},
    {"model", T_STR},
    {"endpoint", T_STR},
    {"request", T_OBJ_OR_STR},
    {"now_s", T_INT},
    {"request_id", T_STR},
    {"expect_url", T_STR},
    {"expect_headers", T_STRS},
    {"expect_no_headers", T_STRS},
    {"expect_body", T_ANY},
    {"expect_build_error", T_OBJ},
    {"status", T_INT},
    {"response", T_ANY},
    {"response_text", T_STR},
    {"stream", T_STR},
    {"stream_b64", T_STR},
    {"expect", T_ANY},
    {"expect_status_passthrough", T_BOOL},
    {"expect_events", T_ARR},
    {"expect_usage", T_OBJ},
    {"expect_stream_error", T_BOOL},
};

static const char *const type_names[] = {
    "a string", "an integer", "a boolean",           "an object",
    "an array", "",           "an array of strings", "an object or a string"};

static bool type_ok(const json_t *v, int type)
{
    switch (type) {
    case T_STR:
        return json_is_string(v);
    case T_INT:
        return json_is_integer(v);
    case T_BOOL:
        return json_is_boolean(v);
    case T_OBJ:
        return json_is_object(v);
    case T_ARR:
        return json_is_array(v);
    case T_STRS: {
        size_t i;
        json_t *s;
        if (!json_is_array(v))
            return false;
        json_array_foreach(v, i, s) if (!json_is_string(s)) return false;
        return true;
    }
    case T_OBJ_OR_STR:
        return json_is_object(v) || json_is_string(v);
    default:
        return true;
    }
}

static int endpoint_parse(const char *s)
{
    if (!s)
        return 0;
    if (strcmp(s, "chat") == 0)
        return DP_EP_CHAT;
    if (strcmp(s, "completions") == 0)
        return DP_EP_COMPLETIONS;
    if (strcmp(s, "embeddings") == 0)
        return DP_EP_EMBEDDINGS;
    if (strcmp(s, "messages") == 0)
        return DP_EP_MESSAGES;
    if (strcmp(s, "responses") == 0)
        return DP_EP_RESPONSES;
    return 0;
}

/* The format's rules, so that a typo fails instead of silently checking nothing. */
static void check_schema(const json_t *g, tg_buf_t *rep)
{
    const char *k;
    json_t *v;
    if (!json_is_object(g)) {
        note(rep, "  the file is not a JSON object\n");
        return;
    }
    json_object_foreach((json_t *)g, k, v)
    {
        size_t i;
        for (i = 0; i < sizeof(members) / sizeof(members[0]); i++)
            if (strcmp(k, members[i].name) == 0)
                break;
        if (i == sizeof(members) / sizeof(members[0])) {
            if (k[0] != '_' && strcmp(k, "comment") != 0)
                note(rep, "  unknown member \"%s\" (tests/golden/README.md lists them)\n", k);
        } else if (!type_ok(v, members[i].type)) {
            note(rep, "  \"%s\" must be %s\n", k, type_names[members[i].type]);
        }
    }
    static const char *const required[] = {"provider", "model", "endpoint", "request"};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
        if (!json_object_get(g, required[i]))
            note(rep, "  \"%s\" is required\n", required[i]);
    const json_t *ep = json_object_get(g, "endpoint");
    if (ep && endpoint_parse(json_string_value(ep)) == 0)
        note(rep, "  \"endpoint\" must be chat, completions, embeddings, messages or responses\n");
    int answers = !!json_object_get(g, "response") + !!json_object_get(g, "response_text") +
                  !!json_object_get(g, "stream") + !!json_object_get(g, "stream_b64");
    bool stream = json_object_get(g, "stream") || json_object_get(g, "stream_b64");
    if (answers > 1)
        note(rep, "  give one answer: response, response_text, stream or stream_b64\n");
    const json_t *be = json_object_get(g, "expect_build_error");
    if (be) {
        json_object_foreach((json_t *)be, k, v)
        {
            if (strcmp(k, "status") == 0 && !json_is_integer(v))
                note(rep, "  \"expect_build_error.status\" must be an integer\n");
            else if (strcmp(k, "contains") == 0 && !json_is_string(v))
                note(rep, "  \"expect_build_error.contains\" must be a string\n");
            else if (strcmp(k, "status") != 0 && strcmp(k, "contains") != 0)
                note(rep, "  unknown member \"expect_build_error.%s\"\n", k);
        }
        static const char *const unchecked[] = {"status",
                                                "response",
                                                "response_text",
                                                "stream",
                                                "stream_b64",
                                                "expect",
                                                "expect_status_passthrough",
                                                "expect_events",
                                                "expect_usage",
                                                "expect_stream_error",
                                                "expect_url",
                                                "expect_headers",
                                                "expect_no_headers",
                                                "expect_body"};
        for (size_t i = 0; i < sizeof(unchecked) / sizeof(unchecked[0]); i++)
            if (json_object_get(g, unchecked[i]))
                note(rep, "  \"%s\" is never checked with expect_build_error\n", unchecked[i]);
        return;
    }
    const json_t *us = json_object_get(g, "expect_usage");
    json_object_foreach((json_t *)us, k, v)
    {
        if (strcmp(k, "present") == 0) {
            if (!json_is_boolean(v))
                note(rep, "  \"expect_usage.present\" must be a boolean\n");
        } else if (strcmp(k, "prompt") == 0 || strcmp(k, "completion") == 0 ||
                   strcmp(k, "cached") == 0 || strcmp(k, "reasoning") == 0 ||
                   strcmp(k, "total") == 0) {
            if (!json_is_integer(v))
                note(rep, "  \"expect_usage.%s\" must be an integer\n", k);
        } else {
            note(rep, "  unknown member \"expect_usage.%s\"\n", k);
        }
    }
    if (json_object_get(g, "expect") && (answers == 0 || stream))
        note(rep, "  \"expect\" needs a JSON answer (response or response_text)\n");
    if (json_object_get(g, "expect_status_passthrough") && (answers == 0 || stream))
        note(rep, "  \"expect_status_passthrough\" needs a JSON answer\n");
    if ((json_object_get(g, "expect_events") || json_object_get(g, "expect_stream_error")) &&
        !stream)
        note(rep, "  \"expect_events\" and \"expect_stream_error\" need a stream answer\n");
    if (us && answers == 0)
        note(rep, "  \"expect_usage\" needs an answer\n");
    const json_t *st = json_object_get(g, "status");
    if (st && (answers == 0 || (stream && json_integer_value(st) != 200)))
        note(rep, "  \"status\" goes with response or response_text (a stream is a 200)\n");
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* Standard (or URL-safe) base64, padding optional, whitespace ignored. */
static bool b64_decode(const char *s, tg_buf_t *out)
{
    unsigned acc = 0;
    int bits = 0;
    for (; *s && *s != '='; s++) {
        if (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
            continue;
        int v = b64_value(*s);
        if (v < 0)
            return false;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            char c = (char)((acc >> bits) & 0xff);
            if (tg_buf_append(out, &c, 1) != 0)
                return false;
        }
    }
    for (; *s; s++)
        if (*s != '=' && *s != ' ' && *s != '\n' && *s != '\r' && *s != '\t')
            return false;
    return true;
}

/* One golden, ready to run. */
typedef struct golden {
    const json_t *root; /* borrowed */
    tg_snap_t *snap;    /* owned: the provider as the snapshot parser read it */
    const tg_provider_t *provider;
    const char *model;
    int endpoint;
    char *request; /* owned */
    size_t request_len;
    int64_t now_s;
    const char *request_id;
    int status;
    tg_buf_t answer;
    bool has_answer;
    bool stream;
} golden_t;

static void golden_dispose(golden_t *g)
{
    tg_snap_unref(g->snap);
    free(g->request);
    tg_buf_dispose(&g->answer);
}

/* Reads the members; false (with notes) when the file cannot run. */
static bool golden_init(golden_t *g, const json_t *root, tg_buf_t *rep)
{
    memset(g, 0, sizeof(*g));
    tg_buf_init(&g->answer, 64u << 20);
    g->root = root;
    size_t mark = rep->len;
    check_schema(root, rep);
    if (rep->len != mark)
        return false;
    json_t *doc = json_pack("{s:i,s:[O],s:[],s:[]}", "version", 1, "providers",
                            json_object_get(root, "provider"), "routes", "keys");
    cr_assert_not_null(doc);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    cr_assert_not_null(text);
    tg_err_t err;
    tg_err_clear(&err);
    int rc = tg_snap_parse(text, strlen(text), &g->snap, &err);
    free(text);
    if (rc != 0) {
        note(rep, "  provider: the snapshot parser refused it: %s\n", err.msg);
        return false;
    }
    g->provider = &g->snap->providers[0];
    g->model = json_string_value(json_object_get(root, "model"));
    g->endpoint = endpoint_parse(json_string_value(json_object_get(root, "endpoint")));
    const json_t *req = json_object_get(root, "request");
    if (json_is_string(req)) {
        g->request = strndup(json_string_value(req), json_string_length(req));
        g->request_len = json_string_length(req);
    } else {
        g->request = json_dumps(req, JSON_COMPACT);
        g->request_len = g->request ? strlen(g->request) : 0;
    }
    cr_assert_not_null(g->request);
    const json_t *v = json_object_get(root, "now_s");
    g->now_s = v ? json_integer_value(v) : DEFAULT_NOW_S;
    v = json_object_get(root, "request_id");
    g->request_id = v ? json_string_value(v) : DEFAULT_REQUEST_ID;
    v = json_object_get(root, "status");
    g->status = v ? (int)json_integer_value(v) : 200;
    if ((v = json_object_get(root, "response"))) {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        cr_assert_not_null(s);
        cr_assert_eq(tg_buf_append(&g->answer, s, strlen(s)), 0);
        free(s);
        g->has_answer = true;
    } else if ((v = json_object_get(root, "response_text")) ||
               (v = json_object_get(root, "stream"))) {
        cr_assert_eq(tg_buf_append(&g->answer, json_string_value(v), json_string_length(v)), 0);
        g->has_answer = true;
        g->stream = json_object_get(root, "stream") != NULL;
    } else if ((v = json_object_get(root, "stream_b64"))) {
        if (!b64_decode(json_string_value(v), &g->answer)) {
            note(rep, "  \"stream_b64\" is not base64\n");
            return false;
        }
        g->has_answer = true;
        g->stream = true;
    }
    return true;
}

/* ---- one attempt, as the proxy makes it ---- */

typedef struct hdrs {
    char **line;
    size_t n;
    size_t cap;
} hdrs_t;

static int hdr_add(void *ud, const char *line)
{
    hdrs_t *h = ud;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        char **l = realloc(h->line, cap * sizeof(*l));
        if (!l)
            return TG_ENOMEM;
        h->line = l;
        h->cap = cap;
    }
    h->line[h->n] = strdup(line);
    if (!h->line[h->n])
        return TG_ENOMEM;
    h->n++;
    return 0;
}

typedef struct attempt {
    dp_reqbody_t rb;
    bool have_rb;
    dp_xlate_t x;
    bool have_x;
    hdrs_t h;
    tg_buf_t url;
    tg_buf_t body;
    tg_err_t err;
} attempt_t;

static void attempt_dispose(attempt_t *a)
{
    if (a->have_x)
        dp_xlate_dispose(&a->x);
    if (a->have_rb)
        dp_reqbody_dispose(&a->rb);
    for (size_t i = 0; i < a->h.n; i++)
        free(a->h.line[i]);
    free(a->h.line);
    tg_buf_dispose(&a->url);
    tg_buf_dispose(&a->body);
}

/* Parses the request and builds the upstream call; false when either fails (a->err says). */
static bool attempt_start(attempt_t *a, const golden_t *g)
{
    memset(a, 0, sizeof(*a));
    tg_buf_init(&a->url, 64u << 10);
    tg_buf_init(&a->body, 64u << 20);
    tg_err_clear(&a->err);
    if (dp_reqbody_parse(&a->rb, g->endpoint, g->request, g->request_len, &a->err) != 0)
        return false;
    a->have_rb = true;
    dp_xlate_init(&a->x, g->endpoint, &a->rb, a->rb.include_usage);
    a->have_x = true;
    /* a Responses client: no worker (no store), a fixed response id */
    if (g->endpoint == DP_EP_RESPONSES &&
        dp_xresp_begin(&a->x, NULL, "t-golden", NULL, "resp_golden", &a->err) != 0)
        return false;
    return dp_xlate_build(&a->x, g->provider, g->model, g->request_id, g->now_s, hdr_add, &a->h,
                          &a->url, &a->body, &a->err) == 0;
}

static void check_build(const golden_t *g, attempt_t *a, bool built, tg_buf_t *rep)
{
    const json_t *be = json_object_get(g->root, "expect_build_error");
    if (be) {
        const json_t *st = json_object_get(be, "status");
        const char *contains = json_string_value(json_object_get(be, "contains"));
        if (built)
            note(rep, "  expect_build_error: the build succeeded (url [%.*s])\n", (int)a->url.len,
                 a->url.base ? a->url.base : "");
        else if (st && a->err.status != json_integer_value(st))
            note(rep, "  expect_build_error: status %d, expected %lld (message: %s)\n",
                 a->err.status, (long long)json_integer_value(st), a->err.msg);
        else if (contains && !strstr(a->err.msg, contains))
            note(rep, "  expect_build_error: message [%s] does not contain [%s]\n", a->err.msg,
                 contains);
        return;
    }
    if (!built) {
        note(rep, "  the build failed: status %d: %s\n", a->err.status, a->err.msg);
        return;
    }
    if (a->url.len == 0 || a->url.base[a->url.len - 1] != '\0') {
        note(rep, "  the URL is not NUL-terminated: [%.*s]\n", (int)a->url.len,
             a->url.base ? a->url.base : "");
        return;
    }
    const json_t *v = json_object_get(g->root, "expect_url");
    if (v && strcmp(json_string_value(v), a->url.base) != 0)
        note(rep, "  expect_url: expected [%s], got [%s]\n", json_string_value(v), a->url.base);
    size_t i;
    json_t *s;
    bool headers_ok = true;
    json_array_foreach(json_object_get(g->root, "expect_headers"), i, s)
    {
        size_t j;
        for (j = 0; j < a->h.n; j++)
            if (strcmp(a->h.line[j], json_string_value(s)) == 0)
                break;
        if (j == a->h.n) {
            note(rep, "  expect_headers: [%s] was not sent\n", json_string_value(s));
            headers_ok = false;
        }
    }
    json_array_foreach(json_object_get(g->root, "expect_no_headers"), i, s)
    {
        const char *name = json_string_value(s);
        size_t nlen = strlen(name);
        for (size_t j = 0; j < a->h.n; j++) {
            const char *l = a->h.line[j];
            if (strlen(l) > nlen && l[nlen] == ':' && tg_mem_caseeq(l, nlen, name, nlen)) {
                note(rep, "  expect_no_headers: [%s] was sent\n", l);
                headers_ok = false;
            }
        }
    }
    if (!headers_ok) {
        note(rep, "      headers sent:\n");
        for (size_t j = 0; j < a->h.n; j++)
            note(rep, "        %s\n", a->h.line[j]);
    }
    v = json_object_get(g->root, "expect_body");
    if (v) {
        json_error_t jerr;
        json_t *body = json_loadb(a->body.base ? a->body.base : "", a->body.len,
                                  JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
        if (!body) {
            note(rep, "  expect_body: the upstream body is not JSON (%s)\n", jerr.text);
            note_raw(rep, "body:", a->body.base, a->body.len);
        } else {
            check_json(rep, "expect_body", v, body);
        }
        json_decref(body);
    }
}

static void check_usage(const golden_t *g, const dp_usage_t *u, tg_buf_t *rep)
{
    const json_t *exp = json_object_get(g->root, "expect_usage");
    if (!exp)
        return;
    const struct {
        const char *name;
        int64_t v;
    } f[] = {{"prompt", u->prompt},
             {"completion", u->completion},
             {"cached", u->cached},
             {"reasoning", u->reasoning},
             {"total", u->total}};
    bool ok = true;
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        const json_t *v = json_object_get(exp, f[i].name);
        if (v && json_integer_value(v) != f[i].v)
            ok = false;
    }
    const json_t *pr = json_object_get(exp, "present");
    if (pr && json_is_true(pr) != u->present)
        ok = false;
    if (!ok) {
        char *s = show(exp);
        note(rep,
             "  expect_usage: expected %s, got {\"prompt\":%lld,\"completion\":%lld,"
             "\"cached\":%lld,\"reasoning\":%lld,\"total\":%lld,\"present\":%s}\n",
             s, (long long)u->prompt, (long long)u->completion, (long long)u->cached,
             (long long)u->reasoning, (long long)u->total, u->present ? "true" : "false");
        free(s);
    }
}

/* A JSON answer: what dp_xlate_response gives the client, with the proxy's 502 when the
 * adapter cannot read a 2xx. */
static void run_response(const golden_t *g, tg_buf_t *rep)
{
    attempt_t a;
    if (!attempt_start(&a, g)) {
        note(rep, "  the build failed: status %d: %s\n", a.err.status, a.err.msg);
        attempt_dispose(&a);
        return;
    }
    tg_buf_t out = TG_BUF_INIT(64u << 20);
    const char *client = NULL;
    size_t client_len = 0;
    int client_status = g->status;
    bool adapter_failed = false;
    int rc = dp_xlate_response(&a.x, g->status, g->answer.base ? g->answer.base : "", g->answer.len,
                               &out, &client, &client_len);
    if (rc < 0 && g->status >= 200 && g->status < 300) {
        tg_err_t err;
        tg_err_clear(&err);
        tg_err_set(&err, TG_EUPSTREAM, 502, "the answer of provider \"%s\" could not be read",
                   g->provider->id);
        tg_err_code(&err, "upstream_bad_response");
        tg_buf_reset(&out);
        cr_assert_eq(dp_xlate_error_body(g->endpoint, &err, &out), 0);
        client = out.base;
        client_len = out.len;
        client_status = 502;
        adapter_failed = true;
    } else if (rc < 0) {
        client = g->answer.base;
        client_len = g->answer.len;
    }
    const json_t *exp = json_object_get(g->root, "expect");
    json_error_t jerr;
    json_t *act = json_loadb(client ? client : "", client_len,
                             JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (adapter_failed && !(exp && json_object_get(exp, "error")))
        note(rep, "  dp_xlate_response failed (%d): the client would get a 502\n", rc);
    if (exp && !act) {
        note(rep, "  expect: the client's body is not JSON (%s)\n", jerr.text);
        note_raw(rep, "client body:", client, client_len);
    } else if (exp) {
        check_json(rep, "expect", exp, act);
    }
    const json_t *pt = json_object_get(g->root, "expect_status_passthrough");
    if (pt && json_is_true(pt) != (client_status == g->status))
        note(rep, "  expect_status_passthrough: the upstream's %d became %d for the client\n",
             g->status, client_status);
    check_usage(g, &a.x.st.usage, rep);
    json_decref(act);
    tg_buf_dispose(&out);
    attempt_dispose(&a);
}

typedef struct stream_result {
    tg_buf_t out;
    dp_usage_t usage;
    bool built;
    int feed_rc; /* the first failing dp_xlate_feed, else 0 */
    int end_rc;
} stream_result_t;

/* Feeds the stream in pieces ending at the offsets in cuts (the last is the length) and ends
 * it. A failing feed is handled as the proxy does: the end of a broken stream, then its error
 * event. */
static void stream_run(const golden_t *g, const size_t *cuts, size_t ncuts, stream_result_t *r)
{
    attempt_t a;
    memset(r, 0, sizeof(*r));
    tg_buf_init(&r->out, 64u << 20);
    r->built = attempt_start(&a, g);
    if (!r->built) {
        attempt_dispose(&a);
        return;
    }
    size_t at = 0;
    for (size_t i = 0; i < ncuts && r->feed_rc == 0; i++) {
        r->feed_rc = dp_xlate_feed(&a.x, g->answer.base + at, cuts[i] - at, &r->out);
        at = cuts[i];
    }
    size_t mark = r->out.len;
    r->end_rc = dp_xlate_end(&a.x, r->feed_rc == 0, &r->out);
    if (r->end_rc != 0)
        r->out.len = mark; /* the proxy drops what a failed end appended */
    if (r->feed_rc != 0) {
        tg_err_t err;
        tg_err_clear(&err);
        tg_err_set(&err, TG_EUPSTREAM, 502, "provider \"%s\" sent an answer that could not be read",
                   g->provider->id);
        tg_err_code(&err, "upstream_bad_response");
        cr_assert_eq(dp_xlate_fail_event(&a.x, &err, &r->out), 0);
    }
    r->usage = a.x.st.usage;
    attempt_dispose(&a);
}

static bool usage_eq(const dp_usage_t *a, const dp_usage_t *b)
{
    return a->prompt == b->prompt && a->completion == b->completion && a->cached == b->cached &&
           a->reasoning == b->reasoning && a->total == b->total && a->present == b->present;
}

/* The same output and usage as fed whole, or a note naming how it was fed. */
static bool same_as_whole(const stream_result_t *whole, const stream_result_t *r, const char *how,
                          tg_buf_t *rep)
{
    if (tg_mem_eq(whole->out.base, whole->out.len, r->out.base, r->out.len) &&
        usage_eq(&whole->usage, &r->usage) && whole->feed_rc == r->feed_rc &&
        whole->end_rc == r->end_rc)
        return true;
    size_t i = 0;
    while (i < whole->out.len && i < r->out.len && whole->out.base[i] == r->out.base[i])
        i++;
    note(rep,
         "  fed %s, the client got other bytes than fed whole (first difference at %zu of "
         "%zu/%zu; usage %s; feed rc %d/%d)\n",
         how, i, whole->out.len, r->out.len,
         usage_eq(&whole->usage, &r->usage) ? "same" : "differs", whole->feed_rc, r->feed_rc);
    note_raw(rep, "whole:", whole->out.base, whole->out.len);
    note_raw(rep, "split:", r->out.base, r->out.len);
    return false;
}

static void run_stream(const golden_t *g, tg_buf_t *rep)
{
    size_t n = g->answer.len;
    stream_result_t whole, r;
    stream_run(g, &n, 1, &whole);
    if (!whole.built) {
        attempt_t a;
        (void)attempt_start(&a, g);
        note(rep, "  the build failed: status %d: %s\n", a.err.status, a.err.msg);
        attempt_dispose(&a);
        tg_buf_dispose(&whole.out);
        return;
    }
    bool same = true;
    size_t *cuts = malloc((n ? n : 1) * sizeof(*cuts));
    cr_assert_not_null(cuts);
    for (size_t i = 0; i < n; i++)
        cuts[i] = i + 1;
    if (n > 1) {
        stream_run(g, cuts, n, &r);
        same = same_as_whole(&whole, &r, "byte by byte", rep);
        tg_buf_dispose(&r.out);
    }
    for (size_t k = 1; same && k < n; k++) {
        size_t two[2] = {k, n};
        char how[64];
        snprintf(how, sizeof(how), "split at byte %zu", k);
        stream_run(g, two, 2, &r);
        same = same_as_whole(&whole, &r, how, rep);
        tg_buf_dispose(&r.out);
    }
    free(cuts);

    sse_events_t ev;
    events_parse(whole.out.base, whole.out.len, &ev);
    const json_t *se = json_object_get(g->root, "expect_stream_error");
    bool want_error = se && json_is_true(se);
    if (whole.feed_rc != 0 && !want_error)
        note(rep, "  dp_xlate_feed failed (%d): the proxy would break the stream\n", whole.feed_rc);
    if (whole.end_rc != 0)
        note(rep, "  dp_xlate_end failed (%d): the proxy would drop what it appended\n",
             whole.end_rc);
    const json_t *exp = json_object_get(g->root, "expect_events");
    if (exp)
        check_events(rep, exp, &ev);
    if (se && want_error != has_error_event(&ev)) {
        note(rep, "  expect_stream_error: expected %s error event\n", want_error ? "an" : "no");
        if (!exp)
            note_events(rep, &ev);
    }
    check_usage(g, &whole.usage, rep);
    events_free(&ev);
    tg_buf_dispose(&whole.out);
}

/* Runs one transcript; notes every difference in rep. */
static void run_golden(const json_t *root, tg_buf_t *rep)
{
    golden_t g;
    if (golden_init(&g, root, rep)) {
        attempt_t a;
        bool built = attempt_start(&a, &g);
        check_build(&g, &a, built, rep);
        attempt_dispose(&a);
        /* the answer is checked even when the request differed: both differences show */
        if (!json_object_get(root, "expect_build_error") && built && g.has_answer) {
            if (g.stream)
                run_stream(&g, rep);
            else
                run_response(&g, rep);
        }
    }
    golden_dispose(&g);
}

/* ---- finding the files ---- */

static bool is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static bool is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Walks up from dir (modified) to a directory holding tests/golden/README.md. */
static bool walk_up(char *dir, char *out, size_t cap)
{
    for (;;) {
        snprintf(out, cap, "%s/tests/golden/README.md", dir);
        if (is_file(out)) {
            snprintf(out, cap, "%s/tests/golden", dir);
            return true;
        }
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir)
            return false;
        *slash = '\0';
    }
}

/* TG_GOLDEN_DIR, else up from the working directory, the executable, and this source file. */
static void golden_root(char *out, size_t cap)
{
    char dir[4096];
    const char *env = getenv("TG_GOLDEN_DIR");
    if (env && env[0]) {
        cr_assert(is_dir(env), "TG_GOLDEN_DIR=%s is not a directory", env);
        snprintf(out, cap, "%s", env);
        return;
    }
    if (getcwd(dir, sizeof(dir)) && walk_up(dir, out, cap))
        return;
    ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
    if (n > 0) {
        dir[n] = '\0';
        if (walk_up(dir, out, cap))
            return;
    }
    snprintf(dir, sizeof(dir), "%s", __FILE__);
    if (dir[0] == '/' && walk_up(dir, out, cap))
        return;
    cr_assert_fail("cannot find tests/golden/README.md above the working directory, the test "
                   "binary or %s; set TG_GOLDEN_DIR",
                   __FILE__);
}

typedef struct names {
    char **name;
    size_t n;
} names_t;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in dir: subdirectories (dirs) or regular *.json files. */
static void list(const char *dir, bool dirs, names_t *out)
{
    memset(out, 0, sizeof(*out));
    DIR *d = opendir(dir);
    if (!d)
        return;
    size_t cap = 0;
    struct dirent *de;
    char path[4096];
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (dirs ? !is_dir(path)
                 : (!is_file(path) || len < 6 || strcmp(de->d_name + len - 5, ".json") != 0))
            continue;
        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            out->name = realloc(out->name, cap * sizeof(*out->name));
            cr_assert_not_null(out->name);
        }
        out->name[out->n] = strdup(de->d_name);
        cr_assert_not_null(out->name[out->n]);
        out->n++;
    }
    closedir(d);
    if (out->n > 1)
        qsort(out->name, out->n, sizeof(*out->name), cmp_str);
}

static void names_free(names_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->name[i]);
    free(l->name);
}

/* The golden being run, named when the process dies in it (a crash in an adapter would
 * otherwise only say which kind's test crashed). */
static char current[8192];

static void say_current(void)
{
    static const char pre[] = "\nconformance: died while running golden ";
    size_t n = strnlen(current, sizeof(current));
    if (n == 0)
        return;
    ssize_t w = write(2, pre, sizeof(pre) - 1);
    w = write(2, current, n);
    w = write(2, "\n", 1);
    (void)w;
}

static void on_fatal_signal(int sig)
{
    say_current();
    raise(sig); /* SA_RESETHAND: the default action now */
}

/* Sanitizers call this before they exit; weak, so a build without them links too (the compiler's
 * header declares it). */
#pragma weak __sanitizer_set_death_callback

static void name_crashes(void)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_fatal_signal;
    sa.sa_flags = (int)SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, NULL);
    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback(say_current);
}

/* Runs every golden in <root>/<sub>; fails naming each failing file. Returns the file count. */
static size_t run_dir(const char *root, const char *sub, tg_buf_t *all, size_t *nfailed)
{
    char dir[4096], path[8192];
    names_t files;
    snprintf(dir, sizeof(dir), "%s/%s", root, sub);
    list(dir, false, &files);
    name_crashes();
    for (size_t i = 0; i < files.n; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files.name[i]);
        snprintf(current, sizeof(current), "%s", path);
        tg_buf_t rep = TG_BUF_INIT(64u << 20);
        json_error_t jerr;
        json_t *root_json = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (!root_json)
            note(&rep, "  not JSON: line %d: %s\n", jerr.line, jerr.text);
        else
            run_golden(root_json, &rep);
        json_decref(root_json);
        if (rep.len > 0) {
            (*nfailed)++;
            note(all, "FAIL %s/%s\n%.*s", sub, files.name[i], (int)rep.len, rep.base);
        } else {
            cr_log_info("ok %s/%s", sub, files.name[i]);
        }
        tg_buf_dispose(&rep);
    }
    current[0] = '\0';
    size_t n = files.n;
    names_free(&files);
    return n;
}

static void run_kind(const char *sub)
{
    char root[4096], dir[8192];
    golden_root(root, sizeof(root));
    snprintf(dir, sizeof(dir), "%s/%s", root, sub);
    /* a kind's goldens gone missing is a failure, not a skip: nothing would be checked */
    cr_assert(is_dir(dir), "no goldens in %s", dir);
    tg_buf_t all = TG_BUF_INIT(64u << 20);
    size_t nfailed = 0;
    size_t n = run_dir(root, sub, &all, &nfailed);
    /* cr_expect, not cr_assert: the test goes on to free what it holds */
    cr_expect_eq(nfailed, 0, "%zu of %zu goldens in %s failed:\n%.*s", nfailed, n, dir,
                 (int)all.len, all.base ? all.base : "");
    if (nfailed == 0)
        cr_log_info("%zu goldens in %s passed", n, dir);
    tg_buf_dispose(&all);
}

static const char *const known_dirs[] = {"openai",  "azure",    "anthropic", "gemini",
                                         "bedrock", "messages", "responses", "chat_via_responses"};

/* /v1/responses, one directory per provider kind (compat: an OpenAI-compatible server that
 * serves only chat completions) */
static const char *const responses_dirs[] = {"responses/openai", "responses/azure",
                                             "responses/compat", "responses/anthropic",
                                             "responses/gemini", "responses/bedrock"};

Test(conformance, responses_goldens)
{
    for (size_t i = 0; i < sizeof(responses_dirs) / sizeof(responses_dirs[0]); i++)
        run_kind(responses_dirs[i]);
}

/* the reverse path: chat completions and /v1/messages to a model that serves only the Responses
 * API (responses_api "responses"), OpenAI and Azure */
Test(conformance, chat_via_responses_goldens)
{
    run_kind("chat_via_responses");
}

Test(conformance, openai_goldens)
{
    run_kind("openai");
}

Test(conformance, azure_goldens)
{
    run_kind("azure");
}

Test(conformance, anthropic_goldens)
{
    run_kind("anthropic");
}

Test(conformance, gemini_goldens)
{
    run_kind("gemini");
}

Test(conformance, bedrock_goldens)
{
    run_kind("bedrock");
}

Test(conformance, messages_goldens)
{
    run_kind("messages");
}

Test(conformance, goldens_in_other_directories)
{
    char root[4096];
    golden_root(root, sizeof(root));
    names_t dirs;
    list(root, true, &dirs);
    tg_buf_t all = TG_BUF_INIT(64u << 20);
    size_t nfailed = 0, n = 0;
    for (size_t i = 0; i < dirs.n; i++) {
        size_t k;
        for (k = 0; k < sizeof(known_dirs) / sizeof(known_dirs[0]); k++)
            if (strcmp(dirs.name[i], known_dirs[k]) == 0)
                break;
        if (k == sizeof(known_dirs) / sizeof(known_dirs[0]))
            n += run_dir(root, dirs.name[i], &all, &nfailed);
    }
    names_free(&dirs);
    cr_expect_eq(nfailed, 0, "%zu of %zu goldens failed:\n%.*s", nfailed, n, (int)all.len,
                 all.base ? all.base : "");
    tg_buf_dispose(&all);
}

/* Every directory has goldens and every file is one: valid JSON of the format, a known
 * endpoint, a provider the snapshot parser accepts, the kind of its directory. */
Test(conformance, every_golden_is_well_formed)
{
    char root[4096], dir[8192], path[12288];
    golden_root(root, sizeof(root));
    names_t dirs;
    list(root, true, &dirs);
    cr_assert_gt(dirs.n, 0, "no golden directories in %s", root);
    tg_buf_t all = TG_BUF_INIT(64u << 20);
    size_t total = 0;
    /* responses/ holds a directory per kind instead of files */
    size_t nresp = sizeof(responses_dirs) / sizeof(responses_dirs[0]);
    for (size_t i = 0; i < dirs.n + nresp; i++) {
        names_t files;
        const char *sub = i < dirs.n ? dirs.name[i] : responses_dirs[i - dirs.n];
        if (i < dirs.n && strcmp(sub, "responses") == 0)
            continue;
        snprintf(dir, sizeof(dir), "%s/%s", root, sub);
        list(dir, false, &files);
        if (files.n == 0)
            note(&all, "%s: no *.json goldens\n", dir);
        const char *last = strrchr(sub, '/');
        int dir_kind = tg_provider_kind_parse(last ? last + 1 : sub);
        for (size_t j = 0; j < files.n; j++) {
            tg_buf_t rep = TG_BUF_INIT(1u << 20);
            json_error_t jerr;
            snprintf(path, sizeof(path), "%s/%s", dir, files.name[j]);
            json_t *g = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
            if (!g) {
                note(&rep, "  not JSON: line %d: %s\n", jerr.line, jerr.text);
            } else {
                golden_t gd;
                if (golden_init(&gd, g, &rep) && dir_kind != 0 && gd.provider->kind != dir_kind)
                    note(&rep, "  the provider's kind is \"%s\", the directory's \"%s\"\n",
                         tg_provider_kind_name(gd.provider->kind), sub);
                golden_dispose(&gd);
            }
            json_decref(g);
            if (rep.len > 0)
                note(&all, "%s/%s:\n%.*s", sub, files.name[j], (int)rep.len, rep.base);
            tg_buf_dispose(&rep);
            total++;
        }
        names_free(&files);
    }
    names_free(&dirs);
    cr_expect_eq(all.len, 0, "malformed goldens in %s:\n%.*s", root, (int)all.len,
                 all.base ? all.base : "");
    if (all.len == 0)
        cr_log_info("%zu goldens well formed", total);
    tg_buf_dispose(&all);
}

/* ---- the runner itself: a wrong expectation must fail ---- */

/* Runs a golden given as text; returns the notes (caller frees). */
static char *run_text(const char *text)
{
    json_error_t jerr;
    json_t *g = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    cr_assert_not_null(g, "self-test golden: %s", jerr.text);
    tg_buf_t rep = TG_BUF_INIT(1u << 20);
    run_golden(g, &rep);
    json_decref(g);
    cr_assert_eq(tg_buf_append(&rep, "", 1), 0);
    return rep.base;
}

#define SELF_HEAD                                                                                  \
    "{\"name\":\"self\",\"provider\":{\"id\":\"p1\",\"kind\":\"openai\",\"base_url\":"             \
    "\"http://upstream.test/v1\",\"api_key\":\"sk-test\"},\"model\":\"gpt-4o-mini\","              \
    "\"endpoint\":\"chat\","

#define SELF_CHAT                                                                                  \
    "\"request\":{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]},"

#define SELF_STREAM                                                                                \
    "\"request\":{\"model\":\"a\",\"stream\":true,\"messages\":[{\"role\":\"user\","               \
    "\"content\":\"Hi\"}]},\"stream\":\"data: {\\\"choices\\\":[{\\\"delta\\\":{\\\"content\\\":"  \
    "\\\"x\\\"}}]}\\n\\ndata: {\\\"choices\\\":[],\\\"usage\\\":{\\\"prompt_tokens\\\":3,"         \
    "\\\"completion_tokens\\\":1}}\\n\\ndata: [DONE]\\n\\n\","

static void expect_pass(const char *text)
{
    char *r = run_text(text);
    cr_expect_str_empty(r, "a right golden failed:\n%s", r);
    free(r);
}

static void expect_fail(const char *text, const char *contains)
{
    char *r = run_text(text);
    cr_expect(strstr(r, contains) != NULL, "expected a note containing [%s], got:\n%s", contains,
              r);
    free(r);
}

Test(conformance, runner_passes_right_and_fails_wrong_json_answers)
{
    expect_pass(SELF_HEAD SELF_CHAT
                "\"expect_url\":\"http://upstream.test/v1/chat/completions\","
                "\"expect_headers\":[\"Authorization: Bearer sk-test\"],"
                "\"expect_no_headers\":[\"api-key\"],"
                "\"expect_body\":{\"model\":\"gpt-4o-mini\",\"messages\":"
                "\"<any>\"},\"response\":{\"id\":\"c1\",\"usage\":"
                "{\"prompt_tokens\":2,\"completion_tokens\":1}},"
                "\"expect\":{\"id\":\"<any>\",\"usage\":\"<any>\"},"
                "\"expect_usage\":{\"prompt\":2,\"total\":3,\"present\":true}}");
    expect_fail(SELF_HEAD SELF_CHAT "\"expect_url\":\"http://upstream.test/v1/completions\"}",
                "expect_url");
    expect_fail(SELF_HEAD SELF_CHAT "\"expect_headers\":[\"Authorization: Bearer other\"]}",
                "[Authorization: Bearer other] was not sent");
    expect_fail(SELF_HEAD SELF_CHAT "\"expect_no_headers\":[\"authorization\"]}",
                "expect_no_headers");
    expect_fail(SELF_HEAD SELF_CHAT "\"expect_body\":{\"model\":\"alias\",\"messages\":\"<any>\"}}",
                "expect_body: value differs at $.model");
    expect_fail(SELF_HEAD SELF_CHAT "\"expect_body\":{\"model\":\"<any>\"}}",
                "unexpected member at $.messages");
    expect_fail(SELF_HEAD SELF_CHAT "\"response\":{\"id\":\"c1\"},\"expect\":{\"id\":\"c2\"}}",
                "expect: value differs at $.id");
    expect_fail(SELF_HEAD SELF_CHAT "\"response\":{\"id\":\"c1\"},\"expect\":{\"id\":\"c1\","
                                    "\"x\":\"<any>\"}}",
                "member missing at $.x");
    expect_fail(SELF_HEAD SELF_CHAT "\"response\":{\"usage\":{\"prompt_tokens\":2}},"
                                    "\"expect_usage\":{\"prompt\":3}}",
                "expect_usage");
    expect_fail(SELF_HEAD SELF_CHAT "\"status\":429,\"response\":{\"error\":{}},"
                                    "\"expect_status_passthrough\":false}",
                "expect_status_passthrough");
    expect_fail(SELF_HEAD SELF_CHAT "\"expect_build_error\":{\"status\":400}}",
                "the build succeeded");
}

Test(conformance, runner_passes_right_and_fails_wrong_streams)
{
    expect_pass(SELF_HEAD SELF_STREAM
                "\"expect_events\":[{\"choices\":[{\"delta\":{\"content\":\"x\"}}]},\"[DONE]\"],"
                "\"expect_usage\":{\"prompt\":3,\"completion\":1,\"total\":4},"
                "\"expect_stream_error\":false}");
    expect_fail(SELF_HEAD SELF_STREAM "\"expect_events\":[{\"choices\":[{\"delta\":{\"content\":"
                                      "\"y\"}}]},\"[DONE]\"]}",
                "expect_events[0]: value differs at $.choices[0].delta.content");
    expect_fail(SELF_HEAD SELF_STREAM "\"expect_events\":[\"[DONE]\"]}",
                "expect_events[0]: data differs: expected [[DONE]]");
    expect_fail(SELF_HEAD SELF_STREAM "\"expect_events\":[{\"choices\":\"<any>\"}]}",
                "1 events expected, 2 arrived");
    expect_fail(SELF_HEAD SELF_STREAM "\"expect_events\":[{\"event\":\"chunk\",\"data\":"
                                      "\"<any>\"},\"[DONE]\"]}",
                "event name differs");
    expect_fail(SELF_HEAD SELF_STREAM "\"expect_stream_error\":true}", "expect_stream_error");
    expect_fail(SELF_HEAD SELF_STREAM "\"expect_usage\":{\"present\":false}}", "expect_usage");
}

Test(conformance, runner_rejects_malformed_goldens)
{
    expect_fail(SELF_HEAD SELF_CHAT "\"expect_bdy\":{}}", "unknown member \"expect_bdy\"");
    expect_fail(SELF_HEAD SELF_CHAT "\"expect_events\":[]}", "need a stream answer");
    expect_fail(SELF_HEAD SELF_CHAT "\"expect_usage\":{\"prompts\":1},\"response\":{}}",
                "unknown member \"expect_usage.prompts\"");
    expect_fail("{\"provider\":{\"id\":\"p1\",\"kind\":\"openai\",\"base_url\":\"http://u\"},"
                "\"model\":\"m\",\"endpoint\":\"chats\",\"request\":{}}",
                "\"endpoint\" must be");
    expect_fail("{\"provider\":{\"id\":\"p1\",\"kind\":\"opnai\",\"base_url\":\"http://u\"},"
                "\"model\":\"m\",\"endpoint\":\"chat\",\"request\":{}}",
                "snapshot parser refused");
    expect_fail(SELF_HEAD SELF_CHAT "\"stream\":\"x\",\"response\":{}}", "give one answer");
}

Test(conformance, client_events_are_split_as_a_client_splits_them)
{
    const char s[] = ": comment\n\nevent: a\r\ndata: {\"x\":1}\r\n\r\ndata: l1\ndata: l2\n\n"
                     "id: 7\rdata: [DONE]\r\rdata: tail";
    sse_events_t e;
    events_parse(s, sizeof(s) - 1, &e);
    cr_assert_eq(e.n, 4);
    cr_assert_str_eq(e.ev[0].name, "a");
    cr_assert(tg_mem_eq(e.ev[0].data.base, e.ev[0].data.len, "{\"x\":1}", 7));
    cr_assert_null(e.ev[1].name);
    cr_assert(tg_mem_eq(e.ev[1].data.base, e.ev[1].data.len, "l1\nl2", 5));
    cr_assert(tg_mem_eq(e.ev[2].data.base, e.ev[2].data.len, "[DONE]", 6));
    cr_assert(tg_mem_eq(e.ev[3].data.base, e.ev[3].data.len, "tail", 4));
    cr_assert(e.unterminated);
    events_free(&e);
}

Test(conformance, base64_streams_decode)
{
    tg_buf_t b = TG_BUF_INIT(64);
    cr_assert(b64_decode("AAECAw==", &b));
    cr_assert(tg_mem_eq(b.base, b.len, "\x00\x01\x02\x03", 4));
    tg_buf_reset(&b);
    cr_assert_not(b64_decode("AA*E", &b));
    tg_buf_dispose(&b);
}

Test(conformance, runner_reports_output_that_depends_on_the_split)
{
    stream_result_t a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    tg_buf_init(&a.out, 1024);
    tg_buf_init(&b.out, 1024);
    tg_buf_t rep = TG_BUF_INIT(1u << 20);
    cr_assert_eq(tg_buf_append(&a.out, "data: {\"a\":1}\n\n", 15), 0);
    cr_assert_eq(tg_buf_append(&b.out, "data: {\"a\":1}\n\n", 15), 0);
    cr_assert(same_as_whole(&a, &b, "split at byte 3", &rep));
    b.usage.prompt = 1;
    cr_assert_not(same_as_whole(&a, &b, "split at byte 3", &rep));
    b.usage.prompt = 0;
    b.out.len = 10;
    cr_assert_not(same_as_whole(&a, &b, "byte by byte", &rep));
    cr_assert_eq(tg_buf_append(&rep, "", 1), 0);
    cr_expect(strstr(rep.base, "fed split at byte 3") != NULL, "%s", rep.base);
    cr_expect(strstr(rep.base, "fed byte by byte, the client got other bytes than fed whole "
                               "(first difference at 10 of 15/10") != NULL,
              "%s", rep.base);
    tg_buf_dispose(&a.out);
    tg_buf_dispose(&b.out);
    tg_buf_dispose(&rep);
}
