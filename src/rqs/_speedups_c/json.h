/*
 * Byte-level JSON helpers shared by the walks over payloads (walk.c) and over ingest
 * bodies (split.c). Whatever they cannot vouch for, the callers decline.
 */
#ifndef RQS_JSON_H
#define RQS_JSON_H

#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static inline const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* After a member or an element: 1 and past the comma if another follows, 0 and past
 * `close` if not; -1 for anything else. */
static inline int next_item(const char **pp, const char *end, char close) {
    const char *p = skip_ws(*pp, end);
    if (p < end && *p == ',') {
        *pp = skip_ws(p + 1, end);
        return 1;
    }
    if (p < end && *p == close) {
        *pp = p + 1;
        return 0;
    }
    return -1;
}

/* Length of the valid UTF-8 sequence at p (no overlongs, no surrogates), 0 if invalid. */
static inline int utf8_len(const unsigned char *p, const unsigned char *end) {
    unsigned c = p[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;
    if (c < 0xE0) return (end - p >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c < 0xF0) {
        if (end - p < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0)) return 0;
        return 3;
    }
    if (c < 0xF5) {
        if (end - p < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 ||
            (p[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90)) return 0;
        return 4;
    }
    return 0;
}

/* The first byte from q that may end or complicate a string: a quote, a backslash, a
 * control character or non-ASCII; end if there is none. Sixteen bytes at a time where
 * SSE2 is there (every x86-64): JSON strings in payloads are mostly shorter than eight
 * bytes, and a word-at-a-time test spent more on the bit tricks than it skipped. */
static inline const unsigned char *string_special(const unsigned char *q,
                                                  const unsigned char *end) {
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'),
                  space = _mm_set1_epi8(0x20);
    while (end - q >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)q);
        /* signed: bytes of 0x80 and up compare below 0x20 too */
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                                _mm_cmpeq_epi8(v, backslash)),
                                   _mm_cmplt_epi8(v, space));
        int mask = _mm_movemask_epi8(hit);
        if (mask) return q + __builtin_ctz((unsigned)mask);
        q += 16;
    }
#endif
    while (q < end && *q != '"' && *q != '\\' && *q >= 0x20 && *q < 0x80) q++;
    return q;
}

#endif
