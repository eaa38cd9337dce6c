/* cp_mhd.h: a control-plane function run inside a real libmicrohttpd request, for the unit tests
 * of code that reads the query string or headers through MHD (cp_query, the data-plane token, the
 * Origin check). The daemon listens on 127.0.0.1 port 0; mhd_call sends one request with libcurl,
 * runs `fn` on MHD's thread with a cp_req_t for it and returns what fn replied. Header-only: each
 * test file that needs it includes it once. */
#ifndef CP_MHD_H
#define CP_MHD_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "cp.h"

typedef void (*mhd_fn_t)(cp_req_t *r);

static struct MHD_Daemon *mhd_daemon;
static int mhd_port;
static mhd_fn_t mhd_fn;

/* What the last request answered: status, body (NUL-terminated). */
static int mhd_status;
static char mhd_body[4096];

static enum MHD_Result mhd_on_request(void *cls, struct MHD_Connection *c, const char *url,
                                      const char *method, const char *version, const char *upload,
                                      size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    tg_buf_t *body = *con_cls;
    if (!body) {
        body = calloc(1, sizeof(*body));
        tg_buf_init(body, 16u << 20);
        *con_cls = body;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (tg_buf_append(body, upload, *upload_size) != 0)
            return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    cp_req_t r;
    memset(&r, 0, sizeof(r));
    r.mhd = c;
    r.method = method;
    r.path = url;
    r.body = body->base;
    r.body_len = body->len;
    snprintf(r.ip, sizeof(r.ip), "127.0.0.1");
    tg_buf_init(&r.out, 1u << 20);
    r.status = 204;
    mhd_fn(&r);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r.out.len, r.out.base, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)r.status, resp);
    MHD_destroy_response(resp);
    tg_buf_dispose(&r.out);
    return ok;
}

static void mhd_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                             enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    tg_buf_t *body = *con_cls;
    if (body) {
        tg_buf_dispose(body);
        free(body);
        *con_cls = NULL;
    }
}

static void mhd_start(void)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    mhd_daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, mhd_on_request, NULL, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&a, MHD_OPTION_NOTIFY_COMPLETED, mhd_on_completed, NULL, MHD_OPTION_END);
    cr_assert_not_null(mhd_daemon);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(mhd_daemon, MHD_DAEMON_INFO_BIND_PORT);
    cr_assert_not_null(info);
    mhd_port = info->port;
}

static void mhd_stop(void)
{
    if (mhd_daemon)
        MHD_stop_daemon(mhd_daemon);
    mhd_daemon = NULL;
}

/* For a suite of the data planes' endpoints: the control plane's options with only its data-plane
 * token (MHD_DP_TOKEN) set, then mhd_start. A suite's .init. */
#define MHD_DP_TOKEN "dp-unit-token"
static cp_opts_t mhd_dp_opts;

__attribute__((unused)) static void mhd_start_dp(void)
{
    memset(&mhd_dp_opts, 0, sizeof(mhd_dp_opts));
    mhd_dp_opts.dp_token = MHD_DP_TOKEN;
    cp_opts = &mhd_dp_opts;
    mhd_start();
}

static size_t mhd_on_body(char *p, size_t size, size_t n, void *data)
{
    size_t *len = data, k = size * n;
    if (*len + k >= sizeof(mhd_body))
        return 0;
    memcpy(mhd_body + *len, p, k);
    *len += k;
    mhd_body[*len] = '\0';
    return k;
}

/* Sends method target (path and query) with the headers (NULL-terminated "Name: value" lines, or
 * NULL) and body (NULL: none) and runs fn on it; returns the status. */
static int mhd_call(mhd_fn_t fn, const char *method, const char *target, const char *const *headers,
                    const char *body, size_t body_len)
{
    char url[8192];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", mhd_port, target);
    mhd_fn = fn;
    mhd_body[0] = '\0';
    size_t len = 0;
    CURL *h = curl_easy_init();
    cr_assert_not_null(h);
    struct curl_slist *hl = NULL;
    for (const char *const *p = headers; p && *p; p++)
        hl = curl_slist_append(hl, *p);
    hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, mhd_on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &len);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    CURLcode rc = curl_easy_perform(h);
    cr_assert_eq(rc, CURLE_OK, "%s", curl_easy_strerror(rc));
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    mhd_status = (int)status;
    return mhd_status;
}

/* The reply's error code and message ("" when the body is no error). */
static void mhd_error(char *code, size_t codelen, char *message, size_t msglen)
{
    json_t *v = json_loads(mhd_body, 0, NULL);
    json_t *e = json_object_get(v, "error");
    const char *c = json_string_value(json_object_get(e, "code"));
    const char *m = json_string_value(json_object_get(e, "message"));
    snprintf(code, codelen, "%s", c ? c : "");
    snprintf(message, msglen, "%s", m ? m : "");
    json_decref(v);
}

#endif
