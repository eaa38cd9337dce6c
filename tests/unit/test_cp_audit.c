/* test_cp_audit.c: the audit chain's signed checkpoints (docs/operations.md): the key, its
 * fingerprint and the MAC of a checkpoint, computed here from the documented encoding with
 * OpenSSL's HMAC so that an operator's own verifier agrees with the control plane's. */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "cp.h"
#include "tg_hash.h"

static cp_opts_t test_opts;

static void with_key(void)
{
    memset(&test_opts, 0, sizeof(test_opts));
    for (int i = 0; i < 32; i++)
        test_opts.master_key[i] = (uint8_t)(0xa0 + i);
    test_opts.have_master_key = true;
    cp_opts = &test_opts;
}

TestSuite(cp_audit, .init = with_key);

static void hmac(const uint8_t key[32], const void *msg, size_t n, uint8_t out[32])
{
    unsigned int len = 0;
    cr_assert_not_null(HMAC(EVP_sha256(), key, 32, msg, n, out, &len));
    cr_assert_eq(len, 32);
}

/* HMAC-SHA-256(master key, "tollgate audit checkpoint key v1") */
static void checkpoint_key(uint8_t key[32])
{
    const char *label = "tollgate audit checkpoint key v1";
    hmac(test_opts.master_key, label, strlen(label), key);
}

static size_t be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
    return 8;
}

/* The documented message: "tollgate-audit-checkpoint-v1\0" || be64(ts_us) || be64(after_id) ||
 * be64(last_id) || be64(n) || (be64(id_i) || hash_i)... */
static void expected_mac(int64_t ts, int64_t after, int64_t last, size_t n, const int64_t *ids,
                         const uint8_t *hashes, uint8_t mac[32])
{
    static uint8_t msg[64 + 40 * 8];
    size_t k = 0;
    memcpy(msg, "tollgate-audit-checkpoint-v1", 29); /* with its NUL */
    k = 29;
    k += be64(msg + k, (uint64_t)ts);
    k += be64(msg + k, (uint64_t)after);
    k += be64(msg + k, (uint64_t)last);
    k += be64(msg + k, (uint64_t)n);
    for (size_t i = 0; i < n; i++) {
        k += be64(msg + k, (uint64_t)ids[i]);
        memcpy(msg + k, hashes + 32 * i, 32);
        k += 32;
    }
    uint8_t key[32];
    checkpoint_key(key);
    hmac(key, msg, k, mac);
}

Test(cp_audit, the_key_id_is_the_first_8_bytes_of_the_keys_hmac_of_key_id_in_hex)
{
    uint8_t key[32], id[32];
    checkpoint_key(key);
    hmac(key, "key id", 6, id);
    char want[17], got[17];
    tg_hex_encode(id, 8, want);
    cr_assert(cp_audit_key_id(got));
    cr_assert_eq(strlen(got), 16);
    cr_assert_str_eq(got, want);
}

Test(cp_audit, a_checkpoints_mac_is_the_documented_encoding)
{
    int64_t ids[3] = {11, 12, 4294967307LL};
    uint8_t hashes[3 * 32], want[32], got[32];
    for (size_t i = 0; i < sizeof(hashes); i++)
        hashes[i] = (uint8_t)(i * 7 + 3);
    int64_t ts = 1796000000123456LL;
    expected_mac(ts, 10, 4294967307LL, 3, ids, hashes, want);
    cr_assert(cp_audit_ckpt_mac(ts, 10, 4294967307LL, 3, ids, hashes, got));
    cr_assert_eq(memcmp(got, want, 32), 0);
    /* no rows: the header alone */
    expected_mac(ts, 10, 10, 0, NULL, NULL, want);
    cr_assert(cp_audit_ckpt_mac(ts, 10, 10, 0, NULL, NULL, got));
    cr_assert_eq(memcmp(got, want, 32), 0);
}

Test(cp_audit, every_field_and_row_changes_the_mac)
{
    int64_t ids[2] = {5, 6}, ids2[2] = {5, 7};
    uint8_t hashes[64], h2[64], base[32], m[32];
    memset(hashes, 0x11, sizeof(hashes));
    memcpy(h2, hashes, sizeof(h2));
    h2[63] ^= 1;
    cr_assert(cp_audit_ckpt_mac(100, 4, 6, 2, ids, hashes, base));
    cr_assert(cp_audit_ckpt_mac(101, 4, 6, 2, ids, hashes, m));
    cr_assert_neq(memcmp(m, base, 32), 0, "time");
    cr_assert(cp_audit_ckpt_mac(100, 3, 6, 2, ids, hashes, m));
    cr_assert_neq(memcmp(m, base, 32), 0, "after_id");
    cr_assert(cp_audit_ckpt_mac(100, 4, 7, 2, ids, hashes, m));
    cr_assert_neq(memcmp(m, base, 32), 0, "last_id");
    cr_assert(cp_audit_ckpt_mac(100, 4, 6, 1, ids, hashes, m));
    cr_assert_neq(memcmp(m, base, 32), 0, "n");
    cr_assert(cp_audit_ckpt_mac(100, 4, 6, 2, ids2, hashes, m));
    cr_assert_neq(memcmp(m, base, 32), 0, "an id");
    cr_assert(cp_audit_ckpt_mac(100, 4, 6, 2, ids, h2, m));
    cr_assert_neq(memcmp(m, base, 32), 0, "a row hash");
    cr_assert(cp_audit_ckpt_mac(100, 4, 6, 2, ids, hashes, m));
    cr_assert_eq(memcmp(m, base, 32), 0, "the same checkpoint");
}

Test(cp_audit, another_master_key_signs_differently)
{
    int64_t ids[1] = {1};
    uint8_t hashes[32] = {0}, a[32], b[32];
    char ka[17], kb[17];
    cr_assert(cp_audit_ckpt_mac(1, 0, 1, 1, ids, hashes, a));
    cr_assert(cp_audit_key_id(ka));
    test_opts.master_key[31] ^= 1;
    cr_assert(cp_audit_ckpt_mac(1, 0, 1, 1, ids, hashes, b));
    cr_assert(cp_audit_key_id(kb));
    cr_assert_neq(memcmp(a, b, 32), 0);
    cr_assert_str_neq(ka, kb);
}

Test(cp_audit, without_a_master_key_nothing_is_signed)
{
    test_opts.have_master_key = false;
    int64_t ids[1] = {1};
    uint8_t hashes[32] = {0}, mac[32];
    char id[17] = "x";
    cr_assert_not(cp_audit_ckpt_mac(1, 0, 1, 1, ids, hashes, mac));
    cr_assert_not(cp_audit_key_id(id));
    cr_assert_str_eq(id, "");
}
