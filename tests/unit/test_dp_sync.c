/* test_dp_sync.c: the data plane's identity file in its state dir: made once, kept across
 * restarts, and a bad one refused with a message rather than replaced. */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dp.h"
#include "sync.h"
#include "tg_hash.h"
#include "tg_snap.h"

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/tg-test-sync-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/dataplane-id", dir);
    unlink(p);
    rmdir(dir);
}

static void write_id(const char *text)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/dataplane-id", dir);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

TestSuite(dp_sync, .init = make_dir, .fini = remove_dir);

/* dp_sync_init_id on the test's state dir; err gets its message. */
static int init_id(tg_err_t *err)
{
    dp_opts_t o;
    memset(&o, 0, sizeof(o));
    o.state_dir = dir;
    memset(err, 0, sizeof(*err));
    return dp_sync_init_id(&o, err);
}

Test(dp_sync, an_id_is_made_once_and_kept_across_restarts)
{
    tg_err_t err;
    cr_assert_eq(init_id(&err), 0);
    char first[64];
    snprintf(first, sizeof(first), "%s", dp_sync_id());
    cr_assert_gt(strlen(first), 0);
    cr_assert_eq(init_id(&err), 0);
    cr_assert_str_eq(dp_sync_id(), first);
}

Test(dp_sync, an_id_in_the_file_is_the_one_used)
{
    write_id("edge-7\n");
    tg_err_t err;
    cr_assert_eq(init_id(&err), 0);
    cr_assert_str_eq(dp_sync_id(), "edge-7");
}

Test(dp_sync, a_malformed_id_file_is_refused_not_replaced)
{
    write_id("no spaces allowed\n");
    tg_err_t err;
    cr_assert_lt(init_id(&err), 0);
    cr_assert_not_null(strstr(err.msg, "delete the file"), "%s", err.msg);
}

static void write_state(const char *doc, const char *token, bool tamper)
{
    char p[128], hex[65];
    uint8_t md[32];
    unsigned int len = sizeof(md);
    HMAC(EVP_sha256(), token, (int)strlen(token), (const unsigned char *)doc, strlen(doc), md,
         &len);
    tg_hex_encode(md, 32, hex);
    snprintf(p, sizeof(p), "%s/snapshot.json", dir);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(doc, f);
    if (tamper)
        fputs(" ", f);
    fclose(f);
    snprintf(p, sizeof(p), "%s/snapshot.json.hmac", dir);
    f = fopen(p, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s\n", hex);
    fclose(f);
}

static void remove_state(void)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/snapshot.json", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/snapshot.json.hmac", dir);
    unlink(p);
}

#define STATE_DOC                                                                                  \
    "{\"version\":7,\"tenants\":[],\"providers\":[],\"routes\":[],\"prices\":[],\"keys\":[]}"

/* Writes a state snapshot signed under sign_token, loads it as a data plane holding t0ken. */
static tg_snap_t *load(const char *sign_token, bool tamper)
{
    dp_opts_t o;
    memset(&o, 0, sizeof(o));
    o.state_dir = dir;
    setenv("TOLLGATE_DP_TOKEN", "t0ken", 1);
    write_state(STATE_DOC, sign_token, tamper);
    tg_snap_t *s = dp_sync_load_state(&o);
    remove_state();
    return s;
}

Test(dp_sync, without_a_state_snapshot_nothing_is_loaded)
{
    dp_opts_t o;
    memset(&o, 0, sizeof(o));
    o.state_dir = dir;
    cr_assert_null(dp_sync_load_state(&o));
}

Test(dp_sync, a_state_snapshot_with_its_hmac_is_loaded)
{
    tg_snap_t *s = load("t0ken", false);
    cr_assert_not_null(s);
    cr_assert_eq(s->version, 7);
    tg_snap_unref(s);
}

Test(dp_sync, a_state_snapshot_changed_after_it_was_written_is_refused)
{
    cr_assert_null(load("t0ken", true));
}

Test(dp_sync, a_state_snapshot_under_another_token_is_refused)
{
    cr_assert_null(load("other", false));
}
