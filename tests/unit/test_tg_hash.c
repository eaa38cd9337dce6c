/* test_tg_hash.c: SHA-256, hex and constant-time comparison. */
#include <criterion/criterion.h>
#include <string.h>

#include "tg_hash.h"

Test(tg_hash, sha256_of_abc_matches_fips_vector)
{
    uint8_t h[TG_SHA256_LEN];
    char hex[2 * TG_SHA256_LEN + 1];
    tg_sha256("abc", 3, h);
    tg_hex_encode(h, sizeof(h), hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

Test(tg_hash, sha256_of_empty_input_matches_known_vector)
{
    uint8_t h[TG_SHA256_LEN];
    char hex[2 * TG_SHA256_LEN + 1];
    tg_sha256("", 0, h);
    tg_hex_encode(h, sizeof(h), hex);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

Test(tg_hash, hex_encode_is_lowercase_and_nul_terminated)
{
    const uint8_t in[] = {0x00, 0x0f, 0xab, 0xff};
    char out[9];
    memset(out, 'X', sizeof(out));
    tg_hex_encode(in, sizeof(in), out);
    cr_assert_str_eq(out, "000fabff");
}

Test(tg_hash, hex_decode_accepts_both_cases)
{
    uint8_t out[4];
    cr_assert_eq(tg_hex_decode("000fABff", 8, out, 4), 0);
    cr_assert_eq(out[0], 0x00);
    cr_assert_eq(out[1], 0x0f);
    cr_assert_eq(out[2], 0xab);
    cr_assert_eq(out[3], 0xff);
}

Test(tg_hash, hex_decode_round_trips_encode)
{
    uint8_t in[TG_SHA256_LEN], back[TG_SHA256_LEN];
    char hex[2 * TG_SHA256_LEN + 1];
    for (int i = 0; i < TG_SHA256_LEN; i++)
        in[i] = (uint8_t)(i * 37 + 5);
    tg_hex_encode(in, sizeof(in), hex);
    cr_assert_eq(tg_hex_decode(hex, strlen(hex), back, sizeof(back)), 0);
    cr_assert_eq(memcmp(in, back, sizeof(in)), 0);
}

Test(tg_hash, hex_decode_rejects_bad_chars)
{
    uint8_t out[2];
    cr_assert_eq(tg_hex_decode("0g00", 4, out, 2), -1);
    cr_assert_eq(tg_hex_decode("00 0", 4, out, 2), -1);
    cr_assert_eq(tg_hex_decode("000:", 4, out, 2), -1); /* ':' follows '9' */
    cr_assert_eq(tg_hex_decode("@000", 4, out, 2), -1); /* '@' precedes 'A' */
    cr_assert_eq(tg_hex_decode("00G0", 4, out, 2), -1);
    const char withnul[4] = {'0', '0', '\0', '0'};
    cr_assert_eq(tg_hex_decode(withnul, 4, out, 2), -1);
}

Test(tg_hash, hex_decode_rejects_odd_or_wrong_length)
{
    uint8_t out[2];
    cr_assert_eq(tg_hex_decode("000", 3, out, 2), -1);
    cr_assert_eq(tg_hex_decode("00000", 5, out, 2), -1);
    cr_assert_eq(tg_hex_decode("00", 2, out, 2), -1);
    cr_assert_eq(tg_hex_decode("000000", 6, out, 2), -1);
}

Test(tg_hash, ct_eq_compares_all_bytes)
{
    uint8_t a[TG_SHA256_LEN], b[TG_SHA256_LEN];
    memset(a, 0x5a, sizeof(a));
    memcpy(b, a, sizeof(b));
    cr_assert(tg_ct_eq(a, b, sizeof(a)));
    b[0] ^= 1;
    cr_assert_not(tg_ct_eq(a, b, sizeof(a)));
    b[0] ^= 1;
    b[TG_SHA256_LEN - 1] ^= 0x80;
    cr_assert_not(tg_ct_eq(a, b, sizeof(a)));
    cr_assert(tg_ct_eq(a, b, TG_SHA256_LEN - 1));
    cr_assert(tg_ct_eq(a, b, 0));
}

Test(tg_hash, fnv1a_matches_reference_values)
{
    /* reference FNV-1a 64-bit values */
    cr_assert_eq(tg_fnv1a("", 0), 0xcbf29ce484222325ULL);
    cr_assert_eq(tg_fnv1a("a", 1), 0xaf63dc4c8601ec8cULL);
    cr_assert_eq(tg_fnv1a("foobar", 6), 0x85944171f73967e8ULL);
}
