/* gemini.c: placeholder until the Gemini adapter lands; every call is refused clearly. */
#include "provider.h"

#include "tg_banned.h"

static int gemini_build(const dp_call_t *c, dp_header_add_fn add, void *ud, tg_buf_t *url,
                        tg_buf_t *body, tg_err_t *err)
{
    (void)c;
    (void)add;
    (void)ud;
    (void)url;
    (void)body;
    tg_err_set(err, TG_EINVAL, 400, "providers of kind \"gemini\" are not supported yet");
    return TG_EINVAL;
}

const dp_provider_ops_t dp_provider_gemini = {
    .kind = "gemini",
    .stream_content_type = "text/event-stream",
    .build = gemini_build,
};
