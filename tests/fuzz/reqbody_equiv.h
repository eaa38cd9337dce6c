/* reqbody_equiv.h: the scanner path of dp_reqbody against the tree path it replaced (jansson's
 * parse, set, dump), for the unit tests and the fuzzer. Header-only: each includes it once. */
#ifndef TG_REQBODY_EQUIV_H
#define TG_REQBODY_EQUIV_H

#include <jansson.h>
#include <string.h>

#include "reqbody.h"
#include "tg_jscan.h"

/* The upstream body of rb for model, parsed back; NULL if it could not be built or parsed. */
static json_t *equiv_upstream(dp_reqbody_t *rb, const char *model)
{
    tg_buf_t out = TG_BUF_INIT(64u << 20);
    tg_err_t err;
    json_t *j = NULL;
    if (dp_reqbody_build_upstream(rb, model, &out, &err) == 0)
        j = json_loadb(out.base, out.len, JSON_REJECT_DUPLICATES, NULL);
    tg_buf_dispose(&out);
    return j;
}

static bool equiv_json(const json_t *a, const json_t *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && json_equal(a, b));
}

/* NULL when both paths agree on p[0..n) for endpoint, else what differs. */
static const char *reqbody_equiv(int endpoint, const char *p, size_t n)
{
    static const char model[] = "up/\"stream\"-\xc3\xa9\\x";
    /* the scanner alone must accept exactly what jansson accepts */
    int top;
    bool scan_ok = tg_jscan(p, n, &top, NULL, NULL) == 0;
    json_t *j = json_loadb(p, n, JSON_REJECT_DUPLICATES, NULL);
    bool tree_ok = j != NULL;
    json_decref(j);
    /* The one known difference: jansson skips a NUL byte right after a number or a literal
     * ([1\0,2] is [1,2]); the scanner refuses every NUL, and dp_reqbody serves such a body
     * through the tree path as before (checked below). */
    bool nul_quirk = !scan_ok && tree_ok && memchr(p, '\0', n) != NULL;
    if (scan_ok != tree_ok && !nul_quirk)
        return scan_ok ? "the scanner accepted what jansson refuses"
                       : "the scanner refused what jansson accepts";

    dp_reqbody_t a, b;
    tg_err_t ea, eb;
    tg_err_clear(&ea);
    tg_err_clear(&eb);
    int ra = dp_reqbody_parse(&a, endpoint, p, n, &ea);
    int rb = dp_reqbody_parse_tree(&b, endpoint, p, n, &eb);
    if (ra != rb)
        return ra == 0 ? "the scanner path accepted a body the tree path refuses"
                       : "the scanner path refused a body the tree path accepts";
    if (ra != 0) {
        if (ea.status != eb.status || strcmp(ea.msg, eb.msg) != 0 || ea.param != eb.param)
            return "the paths refuse with different errors";
        if (a.tree || a.raw || b.tree)
            return "a refused body left something behind";
        return NULL;
    }
    const char *why = NULL;
    json_t *ua = NULL, *ub = NULL, *fa = NULL, *fb = NULL;
    if (!tg_mem_eq(a.model, a.model_len, b.model, b.model_len))
        why = "model differs";
    else if (a.stream != b.stream || a.include_usage != b.include_usage)
        why = "stream or include_usage differs";
    else if (a.max_tokens != b.max_tokens)
        why = "max_tokens differs";
    else if (a.base64 != b.base64)
        why = "encoding_format differs";
    if (why)
        goto out;
    fa = dp_reqbody_fallback_models(&a);
    fb = dp_reqbody_fallback_models(&b);
    if (!equiv_json(fa, fb)) {
        why = "fallback_models differs";
        goto out;
    }
    ua = equiv_upstream(&a, model);
    if (!ua) {
        why = "the spliced upstream body is not JSON";
        goto out;
    }
    /* the quirk is served through the tree path, whose upstream build has set model in its tree:
     * only the upstream bodies compare */
    if (a.tree && !nul_quirk) {
        why = "the scanner path built a tree";
        goto out;
    }
    if (!nul_quirk && !equiv_json(dp_reqbody_json(&a), b.tree)) {
        why = "the lazily built tree differs";
        goto out;
    }
    ub = equiv_upstream(&b, model);
    if (!equiv_json(ua, ub))
        why = "the upstream bodies differ";
out:
    json_decref(ua);
    json_decref(ub);
    json_decref(fa);
    json_decref(fb);
    dp_reqbody_dispose(&a);
    dp_reqbody_dispose(&b);
    return why;
}

#endif
