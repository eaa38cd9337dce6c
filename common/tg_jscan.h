/* tg_jscan.h: a validating JSON scanner that keeps positions, not values. It accepts exactly the
 * documents jansson's json_loadb(JSON_REJECT_DUPLICATES) accepts (RFC 8259 plus jansson's limits:
 * an object or array at the top, depth at most JSON_PARSER_MAX_DEPTH, no duplicate key at any
 * level, no \u0000, no lone surrogate, integers within int64, reals that do not overflow) and
 * reports the members of the top-level object, so the hot path reads the few fields it acts on
 * and splices bytes instead of building a tree and dumping it. One difference: jansson skips a
 * NUL byte right after a number or a literal ([1\0,2] is [1,2]); the scanner refuses every NUL
 * (dp_reqbody then serves the body through jansson, as before). Pure; no allocation unless an
 * object has more keys than fit on the stack (then one buffer, grown geometrically). */
#ifndef TG_JSCAN_H
#define TG_JSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tg_err.h"

/* Value types, named by the byte that starts them (numbers all 'n'; false 'f'; null 'z'). */
enum {
    TG_JOBJECT = '{',
    TG_JARRAY = '[',
    TG_JSTRING = '"',
    TG_JNUMBER = 'n',
    TG_JTRUE = 't',
    TG_JFALSE = 'f',
    TG_JNULL = 'z',
};

/* One member of an object, as spans of the scanned bytes (borrowed from them). */
typedef struct tg_jmember {
    const char *key; /* between the quotes, still escaped */
    size_t key_len;
    bool key_escaped; /* the key holds a backslash: compare with tg_jstr_eq */
    size_t start;     /* offset of the key's opening quote */
    const char *val;  /* the value's bytes; for a string, with its quotes */
    size_t val_len;
    int type;     /* TG_J* */
    bool integer; /* a number without fraction or exponent (fits int64) */
} tg_jmember_t;

/* Called for each member of the top-level object in order; non-zero stops the scan with it. */
typedef int (*tg_jscan_member_fn)(void *ud, const tg_jmember_t *m);

/* Scans p[0..n) as one document; calls on_member (may be NULL) for the top-level object's
 * members. 0, TG_EINVAL when jansson would refuse the document, TG_ENOMEM, or on_member's
 * result. *top gets the top-level type ('{' or '['). */
int tg_jscan(const char *p, size_t n, int *top, tg_jscan_member_fn on_member, void *ud) TG_WUR;
/* Flags of tg_jscan_ex. */
enum {
    /* accept duplicate keys (jansson without JSON_REJECT_DUPLICATES; the last one wins): for
     * answers from upstreams, which are not ours to refuse */
    TG_JSCAN_ANY_DUPLICATES = 1,
};
/* tg_jscan with flags. */
int tg_jscan_ex(const char *p, size_t n, int flags, int *top, tg_jscan_member_fn on_member,
                void *ud) TG_WUR;
/* Same for a value already scanned (an object span from a member): its members only; trusts
 * that the span is valid. */
int tg_jscan_members(const char *p, size_t n, tg_jscan_member_fn on_member, void *ud) TG_WUR;

/* Whether the JSON string contents s (escaped, without quotes) decode to lit[0..n). */
bool tg_jstr_eq(const char *s, size_t slen, bool escaped, const char *lit, size_t n);
/* Decodes the string contents s into out (at most cap bytes); the decoded length, or
 * (size_t)-1 when it needs more than cap. s must have been scanned (valid escapes). */
size_t tg_jstr_decode(const char *s, size_t slen, char *out, size_t cap);
/* Reads an integer member (m->integer). */
int64_t tg_jint(const tg_jmember_t *m);
/* Whether an array or object span holds no element. */
bool tg_jempty(const char *val, size_t n);

/* The JSON text primitives the usage-event reader shares: the value of four hex digits (as after
 * "\u"), or -1; the length of the valid UTF-8 sequence at p (p[0] >= 0x80, avail bytes there), or
 * 0: no overlong forms, no surrogates, nothing past U+10FFFF (jansson's rules, and Postgres'). */
long tg_hex4(const char *p);
size_t tg_utf8_len(const unsigned char *p, size_t avail);

#endif
