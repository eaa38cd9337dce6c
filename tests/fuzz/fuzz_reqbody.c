/* fuzz_reqbody.c: dp_reqbody_parse on arbitrary bodies for every endpoint, and the upstream body
 * built from each accepted one; the scanner path must agree with the tree path it replaced
 * (jansson's parse, set, dump): same verdict, same error, same fields, same upstream JSON. */
#include <string.h>

#include "fuzz.h"
#include "reqbody.h"
#include "reqbody_equiv.h"

static void one(int endpoint, const char *p, size_t n)
{
    dp_reqbody_t rb;
    tg_err_t err;
    tg_err_clear(&err);
    int rc = dp_reqbody_parse(&rb, endpoint, p, n, &err);
    if (rc != 0) {
        FUZZ_CHECK(rc == TG_EINVAL);
        FUZZ_CHECK(err.status == 400 && err.msg[0] != '\0');
        FUZZ_CHECK(rb.tree == NULL && rb.raw == NULL);
        return;
    }
    FUZZ_CHECK(rb.model && rb.model_len > 0 && rb.model_len <= 256);
    FUZZ_CHECK(rb.max_tokens == -1 || rb.max_tokens >= 1);
    FUZZ_CHECK(!(endpoint == DP_EP_EMBEDDINGS && rb.stream));
    bool stream = rb.stream;
    tg_buf_t out = TG_BUF_INIT(2 * n + 65536);
    rc = dp_reqbody_build_upstream(&rb, "upstream-model", &out, &err);
    if (rc == 0) {
        json_t *j = json_loadb(out.base, out.len, JSON_REJECT_DUPLICATES, NULL);
        FUZZ_CHECK(j != NULL);
        FUZZ_CHECK(strcmp(json_string_value(json_object_get(j, "model")), "upstream-model") == 0);
        if (stream)
            FUZZ_CHECK(json_is_true(
                json_object_get(json_object_get(j, "stream_options"), "include_usage")));
        json_decref(j);
    }
    tg_buf_dispose(&out);
    dp_reqbody_dispose(&rb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    one(DP_EP_CHAT, p, size);
    one(DP_EP_COMPLETIONS, p, size);
    one(DP_EP_EMBEDDINGS, p, size);
    one(DP_EP_MESSAGES, p, size);
    one(DP_EP_RESPONSES, p, size);
    static const int eps[] = {DP_EP_CHAT, DP_EP_COMPLETIONS, DP_EP_EMBEDDINGS, DP_EP_MESSAGES,
                              DP_EP_RESPONSES};
    for (size_t i = 0; i < sizeof(eps) / sizeof(eps[0]); i++)
        FUZZ_CHECK(reqbody_equiv(eps[i], p, size) == NULL);
    (void)dp_reqbody_estimate_prompt_tokens(size);
    return 0;
}
