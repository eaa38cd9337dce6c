/* eventstream.c: the AWS event-stream framing: CRC-32, message checking and reassembly, and an
 * encoder for tests. Runs on the request's loop thread; no I/O. */
#include "eventstream.h"

#include <string.h>

#include "tg_banned.h"

/* The reflected IEEE polynomial 0xEDB88320, one entry per byte value. */
static const uint32_t crc_table[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu, 0xe963a535u,
    0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u, 0x09b64c2bu, 0x7eb17cbdu,
    0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u, 0xf3b97148u, 0x84be41deu, 0x1adad47du,
    0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u, 0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu,
    0x14015c4fu, 0x63066cd9u, 0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u,
    0xa2677172u, 0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u, 0x26d930acu,
    0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u, 0xcfba9599u, 0xb8bda50fu,
    0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u, 0x2f6f7c87u, 0x58684c11u, 0xc1611dabu,
    0xb6662d3du, 0x76dc4190u, 0x01db7106u, 0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu,
    0x9fbfe4a5u, 0xe8b8d433u, 0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu,
    0x086d3d2du, 0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u, 0x8bbeb8eau,
    0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u, 0x4db26158u, 0x3ab551ceu,
    0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u, 0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au,
    0x346ed9fcu, 0xad678846u, 0xda60b8d0u, 0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u,
    0x5005713cu, 0x270241aau, 0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u,
    0xce61e49fu, 0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au, 0xead54739u,
    0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u, 0x0d6d6a3eu, 0x7a6a5aa8u,
    0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u, 0xf00f9344u, 0x8708a3d2u, 0x1e01f268u,
    0x6906c2feu, 0xf762575du, 0x806567cbu, 0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u,
    0x10da7a5au, 0x67dd4accu, 0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u,
    0xa1d1937eu, 0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u, 0x316e8eefu,
    0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u, 0xcc0c7795u, 0xbb0b4703u,
    0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u, 0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u,
    0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du, 0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au,
    0x9c0906a9u, 0xeb0e363fu, 0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu,
    0x0cb61b38u, 0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u, 0x88085ae6u,
    0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u, 0x616bffd3u, 0x166ccf45u,
    0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u, 0xa7672661u, 0xd06016f7u, 0x4969474du,
    0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu, 0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u,
    0x47b2cf7fu, 0x30b5ffe9u, 0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u,
    0xcdd70693u, 0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,
};

uint32_t dp_crc32(uint32_t crc, const void *p, size_t n)
{
    const unsigned char *b = p;
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = crc_table[(crc ^ b[i]) & 0xffu] ^ (crc >> 8);
    return ~crc;
}

static uint32_t get_u32(const char *p)
{
    const unsigned char *b = (const unsigned char *)p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

static uint16_t get_u16(const char *p)
{
    const unsigned char *b = (const unsigned char *)p;
    return (uint16_t)(b[0] << 8 | b[1]);
}

static void put_u32(char *p, uint32_t v)
{
    p[0] = (char)(unsigned char)(v >> 24);
    p[1] = (char)(unsigned char)(v >> 16);
    p[2] = (char)(unsigned char)(v >> 8);
    p[3] = (char)(unsigned char)v;
}

void dp_es_init(dp_es_t *es, size_t max_message)
{
    tg_buf_init(&es->partial, max_message);
    es->max = max_message;
}

void dp_es_dispose(dp_es_t *es)
{
    tg_buf_dispose(&es->partial);
}

/* The prelude of a message at p (12 bytes): its total length, checked against the limits and the
 * prelude's CRC before anything waits for that many bytes. */
static int prelude_check(const dp_es_t *es, const char *p, uint32_t *total)
{
    uint32_t t = get_u32(p);
    uint32_t h = get_u32(p + 4);
    if (dp_crc32(0, p, 8) != get_u32(p + 8))
        return TG_EINVAL;
    if (t < DP_ES_OVERHEAD || h > t - DP_ES_OVERHEAD)
        return TG_EINVAL;
    if (t > es->max)
        return TG_ETOOBIG;
    *total = t;
    return 0;
}

/* A string header the adapters want: its name decides the field of m. */
static void keep_header(dp_es_msg_t *m, const char *name, size_t nlen, const char *v, size_t vlen)
{
#define IS(lit) tg_mem_eq(name, nlen, lit, sizeof(lit) - 1)
    if (IS(":message-type")) {
        m->message_type = v;
        m->message_type_len = vlen;
    } else if (IS(":event-type")) {
        m->event_type = v;
        m->event_type_len = vlen;
    } else if (IS(":exception-type")) {
        m->exception_type = v;
        m->exception_type_len = vlen;
    } else if (IS(":error-code")) {
        m->error_code = v;
        m->error_code_len = vlen;
    } else if (IS(":error-message")) {
        m->error_message = v;
        m->error_message_len = vlen;
    }
#undef IS
}

/* The size of a fixed-width value of type t; -1 for variable (u16 length first) or unknown. */
static int fixed_size(int t)
{
    switch (t) {
    case DP_ES_TRUE:
    case DP_ES_FALSE:
        return 0;
    case DP_ES_BYTE:
        return 1;
    case DP_ES_SHORT:
        return 2;
    case DP_ES_INT:
        return 4;
    case DP_ES_LONG:
    case DP_ES_TIMESTAMP:
        return 8;
    case DP_ES_UUID:
        return 16;
    default:
        return -1;
    }
}

static int parse_headers(const char *p, size_t n, dp_es_msg_t *m)
{
    size_t i = 0;
    while (i < n) {
        size_t nlen = (unsigned char)p[i++];
        if (nlen == 0 || nlen > n - i)
            return TG_EINVAL;
        const char *name = p + i;
        i += nlen;
        if (i >= n)
            return TG_EINVAL;
        int type = (unsigned char)p[i++];
        int fixed = fixed_size(type);
        if (fixed >= 0) {
            if ((size_t)fixed > n - i)
                return TG_EINVAL;
            i += (size_t)fixed;
            continue;
        }
        if (type != DP_ES_BYTES && type != DP_ES_STRING)
            return TG_EINVAL; /* an unknown type has no size we could skip */
        if (n - i < 2)
            return TG_EINVAL;
        size_t vlen = get_u16(p + i);
        i += 2;
        if (vlen > n - i)
            return TG_EINVAL;
        if (type == DP_ES_STRING)
            keep_header(m, name, nlen, p + i, vlen);
        i += vlen;
    }
    return 0;
}

int dp_es_parse(const char *p, size_t n, dp_es_msg_t *m)
{
    memset(m, 0, sizeof(*m));
    if (n < DP_ES_OVERHEAD || get_u32(p) != n)
        return TG_EINVAL;
    uint32_t hlen = get_u32(p + 4);
    if (hlen > n - DP_ES_OVERHEAD || dp_crc32(0, p, 8) != get_u32(p + 8))
        return TG_EINVAL;
    if (dp_crc32(0, p, n - 4) != get_u32(p + n - 4))
        return TG_EINVAL;
    int rc = parse_headers(p + 12, hlen, m);
    if (rc != 0)
        return rc;
    m->payload = p + 12 + hlen;
    m->payload_len = n - DP_ES_OVERHEAD - hlen;
    return 0;
}

static int deliver(const char *p, size_t n, dp_es_msg_cb cb, void *ud)
{
    dp_es_msg_t m;
    int rc = dp_es_parse(p, n, &m);
    return rc != 0 ? rc : cb(ud, &m);
}

int dp_es_feed(dp_es_t *es, const char *p, size_t n, dp_es_msg_cb cb, void *ud)
{
    int rc;
    /* first complete the message held from earlier reads, copying only the bytes it lacks */
    while (es->partial.len > 0 && n > 0) {
        size_t have = es->partial.len;
        size_t want = 12;
        uint32_t total = 0;
        if (have >= 12) {
            rc = prelude_check(es, es->partial.base, &total);
            if (rc != 0)
                return rc;
            want = total;
        }
        size_t take = want - have < n ? want - have : n;
        rc = tg_buf_append(&es->partial, p, take);
        if (rc != 0)
            return rc;
        p += take;
        n -= take;
        if (es->partial.len < want)
            return 0; /* n is used up */
        if (want == 12) {
            /* the prelude is whole: check it now rather than wait for a length that lies */
            rc = prelude_check(es, es->partial.base, &total);
            if (rc != 0)
                return rc;
            continue;
        }
        rc = deliver(es->partial.base, es->partial.len, cb, ud);
        tg_buf_reset(&es->partial);
        if (rc != 0)
            return rc;
    }
    /* then the messages wholly inside p, in place */
    while (n >= 12) {
        uint32_t total;
        rc = prelude_check(es, p, &total);
        if (rc != 0)
            return rc;
        if (total > n)
            break;
        rc = deliver(p, total, cb, ud);
        if (rc != 0)
            return rc;
        p += total;
        n -= total;
    }
    return n > 0 ? tg_buf_append(&es->partial, p, n) : 0;
}

int dp_es_encode(tg_buf_t *out, const char *const *names, const char *const *values,
                 size_t nheaders, const char *payload, size_t payload_len)
{
    size_t hlen = 0;
    for (size_t i = 0; i < nheaders; i++) {
        size_t nl = strlen(names[i]);
        size_t vl = strlen(values[i]);
        if (nl == 0 || nl > 255 || vl > 65535)
            return TG_EINVAL;
        hlen += 1 + nl + 1 + 2 + vl;
    }
    if (hlen > UINT32_MAX - DP_ES_OVERHEAD || payload_len > UINT32_MAX - DP_ES_OVERHEAD - hlen)
        return TG_ETOOBIG;
    size_t total = DP_ES_OVERHEAD + hlen + payload_len;
    size_t mark = out->len;
    int rc = tg_buf_reserve(out, total);
    if (rc != 0)
        return rc;
    char pre[12];
    put_u32(pre, (uint32_t)total);
    put_u32(pre + 4, (uint32_t)hlen);
    put_u32(pre + 8, dp_crc32(0, pre, 8));
    rc = tg_buf_append(out, pre, 12);
    for (size_t i = 0; rc == 0 && i < nheaders; i++) {
        size_t nl = strlen(names[i]);
        size_t vl = strlen(values[i]);
        char h[4] = {(char)(unsigned char)nl, 0, 0, 0};
        rc = tg_buf_append(out, h, 1);
        if (rc == 0)
            rc = tg_buf_append(out, names[i], nl);
        h[0] = (char)DP_ES_STRING;
        h[1] = (char)(unsigned char)(vl >> 8);
        h[2] = (char)(unsigned char)vl;
        if (rc == 0)
            rc = tg_buf_append(out, h, 3);
        if (rc == 0)
            rc = tg_buf_append(out, values[i], vl);
    }
    if (rc == 0)
        rc = tg_buf_append(out, payload, payload_len);
    if (rc == 0) {
        char crc[4];
        put_u32(crc, dp_crc32(0, out->base + mark, total - 4));
        rc = tg_buf_append(out, crc, 4);
    }
    if (rc != 0)
        out->len = mark;
    return rc;
}
