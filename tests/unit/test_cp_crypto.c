/* test_cp_crypto.c: the control plane's crypto helpers: AES-256-GCM sealing of provider
 * credentials, argon2id passwords, and random tokens with their hashes. */
#include <criterion/criterion.h>
#include <string.h>

#include "cp.h"
#include "tg_hash.h"

static cp_opts_t test_opts;

static void with_key(void)
{
    memset(&test_opts, 0, sizeof(test_opts));
    for (int i = 0; i < 32; i++)
        test_opts.master_key[i] = (uint8_t)i;
    test_opts.have_master_key = true;
    cp_opts = &test_opts;
}

TestSuite(cp_crypto, .init = with_key);

Test(cp_crypto, seal_then_open_round_trips)
{
    tg_buf_t sealed = TG_BUF_INIT(4096), plain = TG_BUF_INIT(4096);
    const char *secret = "sk-live-0123456789";
    cr_assert_eq(cp_seal(secret, strlen(secret), &sealed), 0);
    cr_assert_eq(sealed.len, 12 + strlen(secret) + 16);
    cr_assert_null(tg_memmem(sealed.base, sealed.len, secret, strlen(secret)), "ciphertext shows it");
    cr_assert_eq(cp_open(sealed.base, sealed.len, &plain), 0);
    cr_assert(tg_mem_eq(plain.base, plain.len, secret, strlen(secret)));
    tg_buf_dispose(&sealed);
    tg_buf_dispose(&plain);
}

Test(cp_crypto, sealing_twice_uses_fresh_nonces)
{
    tg_buf_t a = TG_BUF_INIT(4096), b = TG_BUF_INIT(4096);
    cr_assert_eq(cp_seal("same", 4, &a), 0);
    cr_assert_eq(cp_seal("same", 4, &b), 0);
    cr_assert(!tg_mem_eq(a.base, a.len, b.base, b.len));
    tg_buf_dispose(&a);
    tg_buf_dispose(&b);
}

Test(cp_crypto, any_flipped_byte_is_detected)
{
    tg_buf_t sealed = TG_BUF_INIT(4096);
    cr_assert_eq(cp_seal("credential", 10, &sealed), 0);
    for (size_t i = 0; i < sealed.len; i++) {
        tg_buf_t out = TG_BUF_INIT(4096);
        sealed.base[i] ^= 0x01;
        cr_assert_neq(cp_open(sealed.base, sealed.len, &out), 0, "byte %zu tampered undetected", i);
        cr_assert_eq(out.len, 0, "nothing is returned from a tampered seal");
        sealed.base[i] ^= 0x01;
        tg_buf_dispose(&out);
    }
    tg_buf_dispose(&sealed);
}

Test(cp_crypto, another_master_key_cannot_open)
{
    tg_buf_t sealed = TG_BUF_INIT(4096), out = TG_BUF_INIT(4096);
    cr_assert_eq(cp_seal("credential", 10, &sealed), 0);
    test_opts.master_key[0] ^= 0xff;
    cr_assert_neq(cp_open(sealed.base, sealed.len, &out), 0);
    tg_buf_dispose(&sealed);
    tg_buf_dispose(&out);
}

Test(cp_crypto, truncated_input_is_refused)
{
    tg_buf_t out = TG_BUF_INIT(4096);
    cr_assert_neq(cp_open("short", 5, &out), 0);
    tg_buf_dispose(&out);
}

Test(cp_crypto, sealing_needs_a_master_key)
{
    tg_buf_t out = TG_BUF_INIT(4096);
    test_opts.have_master_key = false;
    cr_assert_neq(cp_seal("x", 1, &out), 0);
    tg_buf_dispose(&out);
}

Test(cp_crypto, argon2id_verifies_the_right_password_only)
{
    char enc[256];
    cr_assert_eq(cp_password_hash("correct horse battery", enc, sizeof(enc)), 0);
    cr_assert_eq(strncmp(enc, "$argon2id$", 10), 0);
    cr_assert(cp_password_verify(enc, "correct horse battery"));
    cr_assert_not(cp_password_verify(enc, "correct horse batterY"));
    cr_assert_not(cp_password_verify(enc, ""));
    char enc2[256];
    cr_assert_eq(cp_password_hash("correct horse battery", enc2, sizeof(enc2)), 0);
    cr_assert_str_neq(enc, enc2, "salted: the same password hashes differently");
}

Test(cp_crypto, tokens_are_prefixed_unique_and_hashed_whole)
{
    char a[128], b[128];
    uint8_t ha[32], hb[32], check[32];
    cr_assert_eq(cp_token_new("tg-", a, sizeof(a), ha), 0);
    cr_assert_eq(cp_token_new("tg-", b, sizeof(b), hb), 0);
    cr_assert_eq(strlen(a), 3 + 43);
    cr_assert_eq(strncmp(a, "tg-", 3), 0);
    for (const char *p = a + 3; *p; p++)
        cr_assert(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p));
    cr_assert_str_neq(a, b);
    tg_sha256(a, strlen(a), check);
    cr_assert_eq(memcmp(check, ha, 32), 0, "the stored hash covers the whole key");
    cr_assert_neq(cp_token_new("tg-", a, 20, ha), 0, "too small a buffer is refused");
}
