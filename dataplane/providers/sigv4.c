/* sigv4.c: AWS Signature Version 4 over OpenSSL's SHA-256 and HMAC. Any thread; no I/O. Every
 * buffer that held a secret (the derived keys, a canonical request with a session token in it)
 * is wiped before it is freed. */
#include "sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>
#include <time.h>

#include "tg_hash.h"

#include "tg_banned.h"

#define ALGORITHM "AWS4-HMAC-SHA256"

void dp_sigv4_amz_date(int64_t t, char out[17])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm))
        memset(&tm, 0, sizeof(tm));
    if (strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
        memcpy(out, "19700101T000000Z", 17);
}

void dp_sigv4_sha256_hex(const void *p, size_t n, char out[65])
{
    uint8_t md[TG_SHA256_LEN];
    tg_sha256(p, n, md);
    tg_hex_encode(md, sizeof(md), out);
}

static bool unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

int dp_sigv4_canonical_uri(tg_buf_t *out, const char *path, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    if (n == 0)
        return tg_buf_append(out, "/", 1);
    size_t mark = out->len;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        unsigned char c = (unsigned char)path[i];
        if (unreserved(c) || c == '/') {
            rc = tg_buf_append(out, &path[i], 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = tg_buf_append(out, e, 3);
        }
    }
    if (rc != 0)
        out->len = mark;
    return rc;
}

/* A header value in canonical form: no leading or trailing blanks, inner runs of blanks as one
 * space. */
static int append_trimmed(tg_buf_t *b, const char *v)
{
    size_t n = strlen(v);
    size_t i = 0;
    while (i < n && (v[i] == ' ' || v[i] == '\t'))
        i++;
    while (n > i && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    int rc = 0;
    bool blank = false;
    for (; rc == 0 && i < n; i++) {
        if (v[i] == ' ' || v[i] == '\t') {
            blank = true;
            continue;
        }
        if (blank)
            rc = tg_buf_append(b, " ", 1);
        blank = false;
        if (rc == 0)
            rc = tg_buf_append(b, &v[i], 1);
    }
    return rc;
}

static bool header_name_ok(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c >= 0x7f || c == ':' || (c >= 'A' && c <= 'Z'))
            return false;
    }
    return true;
}

/* The headers' indexes in name order; TG_EINVAL on a bad or repeated name. */
static int sort_headers(const dp_sigv4_req_t *r, size_t order[DP_SIGV4_MAX_HEADERS])
{
    if (r->nheaders == 0 || r->nheaders > DP_SIGV4_MAX_HEADERS)
        return TG_EINVAL;
    for (size_t i = 0; i < r->nheaders; i++) {
        if (!header_name_ok(r->headers[i].name) || !r->headers[i].value)
            return TG_EINVAL;
        size_t j = i;
        while (j > 0 && strcmp(r->headers[order[j - 1]].name, r->headers[i].name) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        if (j > 0 && strcmp(r->headers[order[j - 1]].name, r->headers[i].name) == 0)
            return TG_EINVAL;
        order[j] = i;
    }
    return 0;
}

static int canonical_request(const dp_sigv4_req_t *r, const size_t *order, tg_buf_t *cr,
                             tg_buf_t *signed_headers)
{
    int rc = tg_buf_appendf(cr, "%s\n%s\n%s\n", r->method, r->canonical_uri, r->canonical_query);
    for (size_t i = 0; rc == 0 && i < r->nheaders; i++) {
        const dp_sigv4_header_t *h = &r->headers[order[i]];
        rc = tg_buf_appendf(cr, "%s:", h->name);
        if (rc == 0)
            rc = append_trimmed(cr, h->value);
        if (rc == 0)
            rc = tg_buf_append(cr, "\n", 1);
        if (rc == 0 && i > 0)
            rc = tg_buf_append(signed_headers, ";", 1);
        if (rc == 0)
            rc = tg_buf_append(signed_headers, h->name, strlen(h->name));
    }
    if (rc == 0)
        rc = tg_buf_append(signed_headers, "", 1); /* NUL-terminated for the formats below */
    if (rc == 0)
        rc = tg_buf_appendf(cr, "\n%s\n%s", signed_headers->base, r->payload_hash);
    return rc;
}

static int hmac(const void *key, size_t klen, const void *msg, size_t n, uint8_t out[32])
{
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), key, (int)klen, msg, n, out, &len) || len != 32)
        return TG_ENOMEM;
    return 0;
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request"). */
static int signing_key(const dp_sigv4_req_t *r, uint8_t key[32])
{
    tg_buf_t k = TG_BUF_INIT(4096);
    size_t slen = strlen(r->secret_access_key);
    /* reserved whole first: a realloc would free a copy of the secret without wiping it */
    int rc = tg_buf_reserve(&k, 4 + slen);
    if (rc == 0)
        rc = tg_buf_append(&k, "AWS4", 4);
    if (rc == 0)
        rc = tg_buf_append(&k, r->secret_access_key, slen);
    uint8_t a[32], b[32];
    if (rc == 0)
        rc = hmac(k.base, k.len, r->amz_date, 8, a);
    if (rc == 0)
        rc = hmac(a, 32, r->region, strlen(r->region), b);
    if (rc == 0)
        rc = hmac(b, 32, r->service, strlen(r->service), a);
    if (rc == 0)
        rc = hmac(a, 32, "aws4_request", 12, key);
    if (k.base)
        OPENSSL_cleanse(k.base, k.cap);
    tg_buf_dispose(&k);
    OPENSSL_cleanse(a, sizeof(a));
    OPENSSL_cleanse(b, sizeof(b));
    return rc;
}

static bool token_ok(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f || *s == '/' || *s == ',')
            return false;
    return true;
}

static bool date_ok(const char *d)
{
    if (!d || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
        return false;
    for (int i = 0; i < 15; i++)
        if (i != 8 && (d[i] < '0' || d[i] > '9'))
            return false;
    return true;
}

static void wipe_dispose(tg_buf_t *b)
{
    if (b->base)
        OPENSSL_cleanse(b->base, b->cap);
    tg_buf_dispose(b);
}

int dp_sigv4_sign(const dp_sigv4_req_t *r, tg_buf_t *out, tg_buf_t *canonical_out,
                  tg_buf_t *sts_out)
{
    size_t order[DP_SIGV4_MAX_HEADERS];
    if (!r->method || !r->canonical_uri || !r->canonical_query || !r->payload_hash ||
        !r->secret_access_key || !token_ok(r->access_key_id) || !token_ok(r->region) ||
        !token_ok(r->service) || !date_ok(r->amz_date))
        return TG_EINVAL;
    int rc = sort_headers(r, order);
    if (rc != 0)
        return rc;
    tg_buf_t cr = TG_BUF_INIT(1u << 20);
    tg_buf_t sh = TG_BUF_INIT(4096);
    tg_buf_t sts = TG_BUF_INIT(4096);
    char cr_hash[65], sig[65];
    uint8_t key[32], mac[32];
    /* the canonical request may hold a session token: reserve it whole so that no realloc frees
     * a copy without wiping it */
    size_t need = strlen(r->method) + strlen(r->canonical_uri) + strlen(r->canonical_query) +
                  strlen(r->payload_hash) + 16;
    for (size_t i = 0; i < r->nheaders; i++)
        need += 2 * strlen(r->headers[i].name) + strlen(r->headers[i].value) + 3;
    rc = tg_buf_reserve(&cr, need);
    if (rc == 0)
        rc = canonical_request(r, order, &cr, &sh);
    if (rc == 0) {
        dp_sigv4_sha256_hex(cr.base, cr.len, cr_hash);
        rc = tg_buf_appendf(&sts, ALGORITHM "\n%s\n%.8s/%s/%s/aws4_request\n%s", r->amz_date,
                            r->amz_date, r->region, r->service, cr_hash);
    }
    if (rc == 0)
        rc = signing_key(r, key);
    if (rc == 0)
        rc = hmac(key, sizeof(key), sts.base, sts.len, mac);
    if (rc == 0) {
        tg_hex_encode(mac, sizeof(mac), sig);
        size_t mark = out->len;
        rc = tg_buf_appendf(out,
                            ALGORITHM " Credential=%s/%.8s/%s/%s/aws4_request, SignedHeaders=%s, "
                                      "Signature=%s",
                            r->access_key_id, r->amz_date, r->region, r->service, sh.base, sig);
        if (rc != 0)
            out->len = mark;
    }
    if (rc == 0 && canonical_out)
        rc = tg_buf_append(canonical_out, cr.base, cr.len);
    if (rc == 0 && sts_out)
        rc = tg_buf_append(sts_out, sts.base, sts.len);
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(mac, sizeof(mac));
    wipe_dispose(&cr); /* holds x-amz-security-token when there is one */
    tg_buf_dispose(&sh);
    tg_buf_dispose(&sts);
    return rc;
}

int dp_sigv4_authorization(const dp_sigv4_req_t *r, tg_buf_t *out)
{
    return dp_sigv4_sign(r, out, NULL, NULL);
}
