/* crypto.c: provider credentials at rest (AES-256-GCM under TOLLGATE_MASTER_KEY), random
 * tokens and password hashes (argon2id). No database: unit tests link it alone. Any thread. */
#include <argon2.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
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
    if (!cp_opts->have_master_key || n > (1u << 20))
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

int cp_token_new(const char *prefix, char *out, size_t outlen, uint8_t hash[32])
{
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t raw[33];
    size_t plen = strlen(prefix);
    if (outlen < plen + 45)
        return TG_EINVAL;
    if (RAND_bytes(raw, 32) != 1)
        return TG_EIO;
    raw[32] = 0;
    memcpy(out, prefix, plen);
    size_t j = plen;
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
    tg_sha256(out, j, hash);
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
