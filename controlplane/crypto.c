/* crypto.c: provider credentials at rest (AES-256-GCM under TOLLGATE_MASTER_KEY), the audit
 * checkpoints' signatures (HMAC-SHA-256 under a key derived from it), random tokens and password
 * hashes (argon2id). No database: unit tests link it alone. Any thread. */
#include <argon2.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "cp.h"
#include "tg_hash.h"

#include "tg_banned.h"

#define NONCE_LEN 12
#define TAG_LEN 16

int cp_seal(const void *plain, size_t n, tg_buf_t *out)
{
    uint8_t nonce[NONCE_LEN];
    int len = 0, rc = TG_EIO;
    if (!cp_opts->have_master_key || n > (64u << 20)) /* stored responses: up to 32 MiB */
        return TG_EINVAL;
    if (RAND_bytes(nonce, sizeof(nonce)) != 1)
        return TG_EIO;
    if (tg_buf_reserve(out, NONCE_LEN + n + TAG_LEN) != 0)
        return TG_ENOMEM;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return TG_ENOMEM;
    uint8_t *base = (uint8_t *)out->base + out->len;
    memcpy(base, nonce, NONCE_LEN);
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, cp_opts->master_key, nonce) == 1 &&
        EVP_EncryptUpdate(ctx, base + NONCE_LEN, &len, plain, (int)n) == 1 &&
        EVP_EncryptFinal_ex(ctx, base + NONCE_LEN + len, &len) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, base + NONCE_LEN + n) == 1) {
        out->len += NONCE_LEN + n + TAG_LEN;
        rc = 0;
    }
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int cp_open(const void *sealed, size_t n, tg_buf_t *out)
{
    const uint8_t *s = sealed;
    int len = 0, rc = TG_EINVAL;
    if (!cp_opts->have_master_key || n < NONCE_LEN + TAG_LEN)
        return TG_EINVAL;
    size_t clen = n - NONCE_LEN - TAG_LEN;
    if (tg_buf_reserve(out, clen + 1) != 0)
        return TG_ENOMEM;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return TG_ENOMEM;
    uint8_t *dst = (uint8_t *)out->base + out->len;
    uint8_t tag[TAG_LEN];
    memcpy(tag, s + NONCE_LEN + clen, TAG_LEN);
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, cp_opts->master_key, s) == 1 &&
        EVP_DecryptUpdate(ctx, dst, &len, s + NONCE_LEN, (int)clen) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1 &&
        EVP_DecryptFinal_ex(ctx, dst + len, &len) == 1) { /* fails when tampered */
        out->len += clen;
        rc = 0;
    }
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

/* 32 bytes as base64url without padding: 43 characters and a NUL */
static void b64url_32(const uint8_t in[32], char out[44])
{
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t raw[33];
    memcpy(raw, in, 32);
    raw[32] = 0;
    size_t j = 0;
    /* 32 bytes = 10 groups of 3 plus 2: 43 characters, no padding */
    for (size_t i = 0; i < 33; i += 3) {
        uint32_t v =
            (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | (i + 2 < 33 ? raw[i + 2] : 0);
        out[j++] = b64url[(v >> 18) & 63];
        out[j++] = b64url[(v >> 12) & 63];
        if (i + 1 < 32)
            out[j++] = b64url[(v >> 6) & 63];
        if (i + 2 < 32)
            out[j++] = b64url[v & 63];
    }
    out[j] = '\0';
    OPENSSL_cleanse(raw, sizeof(raw));
}

int cp_token_new(const char *prefix, char *out, size_t outlen, uint8_t hash[32])
{
    uint8_t raw[32];
    size_t plen = strlen(prefix);
    if (outlen < plen + 45)
        return TG_EINVAL;
    if (RAND_bytes(raw, 32) != 1)
        return TG_EIO;
    memcpy(out, prefix, plen);
    b64url_32(raw, out + plen);
    tg_sha256(out, strlen(out), hash);
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}

/* OWASP's argon2id minimum: 19 MiB, 2 passes, 1 lane. */
#define ARGON_T 2
#define ARGON_M 19456
#define ARGON_P 1

int cp_password_hash(const char *pw, char *out, size_t outlen)
{
    uint8_t salt[16];
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return TG_EIO;
    int rc = argon2id_hash_encoded(ARGON_T, ARGON_M, ARGON_P, pw, strlen(pw), salt, sizeof(salt),
                                   32, out, outlen);
    return rc == ARGON2_OK ? 0 : TG_EINVAL;
}

bool cp_password_verify(const char *encoded, const char *pw)
{
    return argon2id_verify(encoded, pw, strlen(pw)) == ARGON2_OK;
}

/* ---- audit checkpoints ---- */

/* The checkpoint key is a labelled HMAC of the master key, so that it is never the key that
 * seals credentials and a leak of one signature scheme's inputs says nothing of the other. */
#define AUDIT_KEY_LABEL "tollgate audit checkpoint key v1"
#define AUDIT_MSG_LABEL "tollgate-audit-checkpoint-v1"

static bool hmac_sha256_parts(const uint8_t key[32], const void *const *parts, const size_t *lens,
                              size_t nparts, uint8_t out[32])
{
    bool ok = false;
    size_t outlen = 0;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (!ctx || EVP_MAC_init(ctx, key, 32, params) != 1)
        goto out;
    for (size_t i = 0; i < nparts; i++)
        if (EVP_MAC_update(ctx, parts[i], lens[i]) != 1)
            goto out;
    ok = EVP_MAC_final(ctx, out, &outlen, 32) == 1 && outlen == 32;
out:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok;
}

/* The CSRF key is a labelled HMAC of TOLLGATE_JWT_SECRET (hashed to 32 bytes first): a page
 * can read the token it yields, never the key, and the JWT signing key is never used for it. */
#define CSRF_KEY_LABEL "tollgate csrf key v1"

bool cp_csrf_token(const char *jti, char out[44])
{
    uint8_t secret[32], key[32], mac[32];
    out[0] = '\0';
    tg_sha256(cp_opts->jwt_secret, cp_opts->jwt_secret_len, secret);
    const void *kp[1] = {CSRF_KEY_LABEL};
    size_t kl[1] = {sizeof(CSRF_KEY_LABEL) - 1};
    const void *mp[1] = {jti};
    size_t ml[1] = {strlen(jti)};
    bool ok = hmac_sha256_parts(secret, kp, kl, 1, key) && hmac_sha256_parts(key, mp, ml, 1, mac);
    if (ok)
        b64url_32(mac, out);
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(key, sizeof(key));
    return ok;
}

static bool audit_key(uint8_t key[32])
{
    if (!cp_opts->have_master_key)
        return false;
    const void *p[1] = {AUDIT_KEY_LABEL};
    size_t l[1] = {sizeof(AUDIT_KEY_LABEL) - 1};
    return hmac_sha256_parts(cp_opts->master_key, p, l, 1, key);
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

bool cp_audit_key_id(char out[17])
{
    uint8_t key[32], id[32];
    out[0] = '\0';
    if (!audit_key(key))
        return false;
    const void *p[1] = {"key id"};
    size_t l[1] = {6};
    bool ok = hmac_sha256_parts(key, p, l, 1, id);
    OPENSSL_cleanse(key, sizeof(key));
    if (ok)
        tg_hex_encode(id, 8, out);
    return ok;
}

bool cp_audit_ckpt_mac(int64_t ts_us, int64_t after_id, int64_t last_id, size_t n,
                       const int64_t *ids, const uint8_t *hashes, uint8_t mac[32])
{
    uint8_t key[32];
    if (!audit_key(key))
        return false;
    /* label, then four big-endian integers, then (id, hash) per row: no two checkpoints share
     * an encoding */
    uint8_t head[32];
    put_be64(head, (uint64_t)ts_us);
    put_be64(head + 8, (uint64_t)after_id);
    put_be64(head + 16, (uint64_t)last_id);
    put_be64(head + 24, (uint64_t)n);
    bool ok = false;
    size_t nparts = 2 + 2 * n;
    const void **parts = malloc(nparts * sizeof(*parts));
    size_t *lens = malloc(nparts * sizeof(*lens));
    uint8_t *idb = malloc(n ? n * 8 : 1);
    if (parts && lens && idb) {
        parts[0] = AUDIT_MSG_LABEL;
        lens[0] = sizeof(AUDIT_MSG_LABEL); /* with its NUL: a separator */
        parts[1] = head;
        lens[1] = sizeof(head);
        for (size_t i = 0; i < n; i++) {
            put_be64(idb + 8 * i, (uint64_t)ids[i]);
            parts[2 + 2 * i] = idb + 8 * i;
            lens[2 + 2 * i] = 8;
            parts[3 + 2 * i] = hashes + 32 * i;
            lens[3 + 2 * i] = 32;
        }
        ok = hmac_sha256_parts(key, parts, lens, nparts, mac);
    }
    free(parts);
    free(lens);
    free(idb);
    OPENSSL_cleanse(key, sizeof(key));
    return ok;
}
