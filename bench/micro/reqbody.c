/* bench/micro/reqbody.c: CPU per request body and per answer, the old way (jansson: parse, set,
 * dump; parse the answer) against the scanner (scan, splice; scan the answer). Prints a table;
 * asserts nothing. Build: cmake --build BUILD --target bench_reqbody; run BUILD/bin/bench_reqbody.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "reqbody.h"
#include "usage.h"

/* bench/run's chat_body: a system prompt, a multi-turn conversation, sampling parameters, user */
#define MSGS                                                                                       \
    "\"messages\":[{\"role\":\"system\",\"content\":\"You are a support assistant for Acme "       \
    "Cloud. Answer briefly and cite the relevant doc page when you can.\"},{\"role\":\"user\","    \
    "\"content\":\"My deploy fails with 'quota exceeded' since this morning. What changed?\"},"    \
    "{\"role\":\"assistant\",\"content\":\"Free-tier projects now get 3 concurrent builds. Do "    \
    "you run more than three at once?\"},{\"role\":\"user\",\"content\":\"Yes, four pipelines "    \
    "start together on every merge. Can I queue them instead of upgrading?\"}],"                   \
    "\"temperature\":0.3,\"top_p\":0.9,\"max_tokens\":400,\"presence_penalty\":0,"                 \
    "\"user\":\"user-7f3a9c21\""
static const char body_json[] = "{\"model\":\"bench-model\"," MSGS "}";
static const char body_stream[] = "{\"model\":\"bench-stream\"," MSGS ",\"stream\":true}";
/* a ~700-byte chat.completion */
static const char answer[] =
    "{\"id\":\"chatcmpl-bench0001\",\"object\":\"chat.completion\",\"created\":1733500000,"
    "\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
    "\"assistant\",\"content\":\"Yes. Set concurrency: 3 in your pipeline settings and the fourth "
    "build waits in the queue instead of failing; see docs/builds/concurrency. Queued builds start "
    "in the order they were triggered, and a cancelled merge frees its slot at once. If you need "
    "all four at the same time, the Team plan raises the limit to 10.\",\"refusal\":null},"
    "\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":118,"
    "\"completion_tokens\":71,\"total_tokens\":189,\"prompt_tokens_details\":{\"cached_tokens\":0,"
    "\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,"
    "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}},\"service_tier\":"
    "\"default\",\"system_fingerprint\":\"fp_0ba0d124f1\"}";

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static volatile size_t sink;

static void body_once(const char *b, size_t n, bool tree)
{
    dp_reqbody_t rb;
    tg_err_t err;
    tg_buf_t out = TG_BUF_INIT(1 << 20);
    int rc = tree ? dp_reqbody_parse_tree(&rb, DP_EP_CHAT, b, n, &err)
                  : dp_reqbody_parse(&rb, DP_EP_CHAT, b, n, &err);
    if (rc == 0 && dp_reqbody_build_upstream(&rb, "gpt-4o-mini-2024-07-18", &out, &err) == 0)
        sink += out.len;
    tg_buf_dispose(&out);
    dp_reqbody_dispose(&rb);
}

/* the answer side before the scanner: the last "usage" text, its object parsed by jansson */
static void old_usage_scan(dp_usage_t *u, const char *body, size_t n)
{
    const char *k = tg_memrmem(body, n, "\"usage\":", 8);
    json_t *o =
        k ? json_loadb(k + 8, (size_t)(body + n - k - 8), JSON_DISABLE_EOF_CHECK, NULL) : NULL;
    dp_usage_from_json(u, o);
    json_decref(o);
}

static void answer_once(bool tree)
{
    dp_usage_t u;
    if (tree) {
        old_usage_scan(&u, answer, sizeof(answer) - 1);
    } else {
        dp_usage_scan(&u, answer, sizeof(answer) - 1);
    }
    sink += (size_t)u.total;
}

static double per_op(int which, bool tree, long iters)
{
    double best = 1e30;
    for (int round = 0; round < 5; round++) {
        double t0 = now_ns();
        for (long i = 0; i < iters; i++) {
            if (which == 0)
                body_once(body_json, sizeof(body_json) - 1, tree);
            else if (which == 1)
                body_once(body_stream, sizeof(body_stream) - 1, tree);
            else
                answer_once(tree);
        }
        double ns = (now_ns() - t0) / (double)iters;
        best = ns < best ? ns : best;
    }
    return best;
}

int main(void)
{
    static const char *const names[] = {"request body, JSON", "request body, stream",
                                        "answer usage (JSON)"};
    static const size_t sizes[] = {sizeof(body_json) - 1, sizeof(body_stream) - 1,
                                   sizeof(answer) - 1};
    long iters = 200000;
    printf("| %-22s | bytes | jansson (ns) | scanner (ns) | ratio |\n", "what");
    printf("|---|---:|---:|---:|---:|\n");
    for (int w = 0; w < 3; w++) {
        double old = per_op(w, true, iters), neu = per_op(w, false, iters);
        printf("| %-22s | %5zu | %12.0f | %12.0f | %4.1fx |\n", names[w], sizes[w], old, neu,
               old / neu);
    }
    return sink == 0;
}
