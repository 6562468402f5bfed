/*
 * The flattening walk: one stored JSON payload to its Mapp name/value outputs, from the
 * bytes, with no Python object per field. The rules are rqs.domain.flatten's; what this
 * walk cannot render byte-identically to the Python path it declines (see module.c).
 */
#include "speedups.h"
#include "json.h"

/* p is at an opening quote; returns the closing quote, or NULL to decline. */
static const char *scan_string(const Ctx *c, const char *p) {
    const unsigned char *q = (const unsigned char *)p + 1;
    const unsigned char *end = (const unsigned char *)c->end;
    for (;;) {
        q = string_special(q, end);
        if (q >= end) return NULL;
        unsigned ch = *q;
        if (ch == '"') return (const char *)q;
        if (ch == '\\' || ch < 0x20) return NULL;
        int n = utf8_len(q, end); /* string_special stopped here: non-ASCII */
        if (n == 0) return NULL;
        if (c->xml && n == 3 && ch == 0xEF && q[1] == 0xBF && q[2] >= 0xBE) return NULL;
        q += n;
    }
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Whether any of 8 bytes may be & < or > (false hits are sorted out byte by byte). */
static inline int xml_special8(uint64_t x) {
    uint64_t amp = x ^ (ONES * '&'), lt = x ^ (ONES * '<'), gt = x ^ (ONES * '>');
    return (((amp - ONES) & ~amp) | ((lt - ONES) & ~lt) | ((gt - ONES) & ~gt)) & HIGHS ? 1 : 0;
}

/* Copies text into XML content at w, escaping & < > (nothing else special gets this far:
 * scan_string refused it); w must have room for 5 bytes per input byte. */
static char *xml_copy(char *w, const char *s, size_t n) {
    const char *end = s + n;
    while (s < end) {
        while (end - s >= 8) {
            uint64_t x;
            memcpy(&x, s, 8);
            if (xml_special8(x)) break;
            memcpy(w, s, 8);
            w += 8;
            s += 8;
        }
        if (s >= end) break;
        char ch = *s++;
        if (ch == '&') {
            memcpy(w, "&amp;", 5);
            w += 5;
        } else if (ch == '<' || ch == '>') {
            memcpy(w, ch == '<' ? "&lt;" : "&gt;", 4);
            w += 4;
        } else {
            *w++ = ch;
        }
    }
    return w;
}

#define COPY(w, lit) (memcpy((w), (lit), sizeof(lit) - 1), (w) + sizeof(lit) - 1)

/* One name/value output: a reservation for the worst case, then plain copies. */
static int pair(Ctx *c, const char *value, size_t n) {
    if (c->dry) return OK;
    const char *name = c->name.data + c->name_at;
    size_t name_len = c->name.len - c->name_at;
    TRY(buf_reserve(c->out, 64 + 5 * (name_len + n)));
    char *w = c->out->data + c->out->len;
    if (c->xml) {
        w = COPY(w, "<output><name>");
        w = xml_copy(w, name, name_len);
        w = COPY(w, "</name><value>");
        w = xml_copy(w, value, n);
        w = COPY(w, "</value></output>");
    } else { /* JSON needs no escaping: scan_string refused all it would escape */
        w = COPY(w, ",{\"name\":\"");
        if (name_len > 0) memcpy(w, name, name_len); /* an empty name may have no buffer */
        w = COPY(w + name_len, "\",\"value\":\"");
        memcpy(w, value, n);
        w = COPY(w + n, "\"}");
    }
    c->out->len = (size_t)(w - c->out->data);
    return OK;
}

/* The name becomes `<name>.<suffix>`; returns the old length. (Top-level members are
 * named by named_value instead: a nested empty key still gives a dot, as in Python.) */
static size_t name_push(Ctx *c, const char *suffix, size_t n, int *rc) {
    size_t old = c->name.len;
    *rc = PUT(&c->name, ".");
    if (*rc == OK) *rc = buf_put(&c->name, suffix, n);
    return old;
}

static int value(Ctx *c, const char **pp);

/* Records a member name of the innermost object; declines on a duplicate, as a decoded
 * dict would keep one member where a walk over the bytes sees two. */
static int member_key(Ctx *c, int base, const char *key, size_t n) {
    if (c->nkeys - base >= MAX_MEMBERS || c->nkeys >= MAX_MEMBERS * 4) return DECLINE;
    for (int i = base; i < c->nkeys; i++)
        if (c->keys[i].len == n && memcmp(c->keys[i].start, key, n) == 0) return DECLINE;
    c->keys[c->nkeys].start = key;
    c->keys[c->nkeys].len = n;
    c->nkeys++;
    return OK;
}

/* Members of the object at *pp, each handed to `each` with its key; leaves *pp after it. */
typedef int (*MemberFn)(Ctx *c, const char *key, size_t n, const char **pp, void *arg);

static int members(Ctx *c, const char **pp, MemberFn each, void *arg) {
    const char *p = skip_ws(*pp + 1, c->end);
    int base = c->nkeys, rc = OK;
    if (++c->depth > MAX_DEPTH) return DECLINE;
    if (p < c->end && *p == '}') {
        p++;
    } else {
        for (;;) {
            if (p >= c->end || *p != '"') return DECLINE;
            const char *close = scan_string(c, p);
            if (close == NULL) return DECLINE;
            const char *key = p + 1;
            size_t n = (size_t)(close - key);
            TRY(member_key(c, base, key, n));
            p = skip_ws(close + 1, c->end);
            if (p >= c->end || *p != ':') return DECLINE;
            p = skip_ws(p + 1, c->end);
            if (p >= c->end) return DECLINE; /* callbacks may look at the value's first byte */
            TRY(each(c, key, n, &p, arg));
            int more = next_item(&p, c->end, '}');
            if (more < 0) return DECLINE;
            if (!more) break;
        }
    }
    c->nkeys = base;
    c->depth--;
    *pp = p;
    return rc;
}

/* The general rule: a member's pairs are named `<object's name>.<key>`. */
static int dotted_member(Ctx *c, const char *key, size_t n, const char **pp, void *arg) {
    (void)arg;
    int rc;
    size_t old = name_push(c, key, n, &rc);
    TRY(rc);
    TRY(value(c, pp));
    c->name.len = old;
    return OK;
}

static int array(Ctx *c, const char **pp) {
    const char *p = skip_ws(*pp + 1, c->end);
    if (++c->depth > MAX_DEPTH) return DECLINE;
    if (p < c->end && *p == ']') {
        p++;
    } else {
        for (long i = 0;; i++) {
            char digits[24];
            int rc, len = digits_of(i, digits);
            size_t old = name_push(c, digits, (size_t)len, &rc);
            TRY(rc);
            TRY(value(c, &p));
            c->name.len = old;
            int more = next_item(&p, c->end, ']');
            if (more < 0) return DECLINE;
            if (!more) break;
        }
    }
    c->depth--;
    *pp = p;
    return OK;
}

static int literal(Ctx *c, const char **pp, const char *word, size_t n, int emit) {
    if ((size_t)(c->end - *pp) < n || memcmp(*pp, word, n) != 0) return DECLINE;
    *pp += n;
    return emit ? pair(c, word, n) : OK;
}

/* Integers as Python's str(int) writes them; anything else is declined. */
static int number(Ctx *c, const char **pp) {
    const char *p = *pp, *start = p;
    if (p < c->end && *p == '-') p++;
    const char *digits = p;
    while (p < c->end && *p >= '0' && *p <= '9') p++;
    size_t n = (size_t)(p - digits);
    if (n == 0 || n > 18 || (n > 1 && digits[0] == '0')) return DECLINE;
    if (digits != start && n == 1 && digits[0] == '0') return DECLINE; /* -0 */
    if (p < c->end && (*p == '.' || *p == 'e' || *p == 'E')) return DECLINE;
    *pp = p;
    return pair(c, start, (size_t)(p - start));
}

/* Any value, by the general rules, under the current name. */
static int value(Ctx *c, const char **pp) {
    const char *p = *pp;
    if (p >= c->end) return DECLINE;
    switch (*p) {
        case '"': {
            const char *close = scan_string(c, p);
            if (close == NULL) return DECLINE;
            *pp = close + 1;
            return pair(c, p + 1, (size_t)(close - p - 1));
        }
        case '{':
            return members(c, pp, dotted_member, NULL);
        case '[':
            return array(c, pp);
        case 't':
            return literal(c, pp, "true", 4, 1);
        case 'f':
            return literal(c, pp, "false", 5, 1);
        case 'n':
            return literal(c, pp, "null", 4, 0); /* null is omitted */
        default:
            return number(c, pp);
    }
}

typedef struct {
    size_t len, at;
} SavedName;

/* Names what follows `name`, keeping the current name to come back to. */
static int name_set(Ctx *c, const char *name, size_t n, SavedName *saved) {
    saved->len = c->name.len;
    saved->at = c->name_at;
    c->name_at = c->name.len;
    return buf_put(&c->name, name, n);
}

static void name_restore(Ctx *c, const SavedName *saved) {
    c->name.len = saved->len;
    c->name_at = saved->at;
}

/* A value under an explicit name, restoring the current one afterwards. */
static int named_value(Ctx *c, const char *name, size_t n, const char **pp) {
    SavedName saved;
    TRY(name_set(c, name, n, &saved));
    TRY(value(c, pp));
    name_restore(c, &saved);
    return OK;
}

static int skip(Ctx *c, const char **pp) {
    c->dry++;
    int rc = value(c, pp);
    c->dry--;
    return rc;
}

/* --- Responsys custom columns: optionalData.props.prop ------------------------------- */

typedef struct {
    const char *name; /* the string "name" member's text, or NULL */
    size_t name_len;
    const char *value; /* where the "value" member's value starts, or NULL */
} PropScan;

static int prop_scan_member(Ctx *c, const char *key, size_t n, const char **pp, void *arg) {
    PropScan *s = arg;
    if (n == 4 && memcmp(key, "name", 4) == 0 && **pp == '"') {
        const char *close = scan_string(c, *pp);
        if (close == NULL) return DECLINE;
        s->name = *pp + 1;
        s->name_len = (size_t)(close - *pp - 1);
    } else if (n == 5 && memcmp(key, "value", 5) == 0) {
        s->value = *pp;
    }
    return skip(c, pp);
}

static int prop_extra_member(Ctx *c, const char *key, size_t n, const char **pp, void *arg) {
    (void)arg;
    if ((n == 4 && memcmp(key, "name", 4) == 0) || (n == 5 && memcmp(key, "value", 5) == 0))
        return skip(c, pp);
    return dotted_member(c, key, n, pp, NULL);
}

/* Matches the literal `word` (with its quotes) at p, then a colon; returns what follows. */
static const char *key_colon(const Ctx *c, const char *p, const char *word, size_t n) {
    p = skip_ws(p, c->end);
    if ((size_t)(c->end - p) < n || memcmp(p, word, n) != 0) return NULL;
    p = skip_ws(p + n, c->end);
    return p < c->end && *p == ':' ? skip_ws(p + 1, c->end) : NULL;
}

/* The shape Responsys sends, {"name": "N", "value": "V"}, in one walk: sets *handled and
 * emits the pair, or leaves everything to the general walk. */
static int prop_simple(Ctx *c, const char **pp, int *handled) {
    const char *name, *name_end, *val, *val_end, *p;
    *handled = 0;
    if ((p = key_colon(c, *pp + 1, "\"name\"", 6)) == NULL || p >= c->end || *p != '"')
        return OK;
    if ((name_end = scan_string(c, p)) == NULL) return OK;
    name = p + 1;
    p = skip_ws(name_end + 1, c->end);
    if (p >= c->end || *p != ',') return OK;
    if ((p = key_colon(c, p + 1, "\"value\"", 7)) == NULL || p >= c->end || *p != '"')
        return OK;
    if ((val_end = scan_string(c, p)) == NULL) return OK;
    val = p + 1;
    p = skip_ws(val_end + 1, c->end);
    if (p >= c->end || *p != '}') return OK;
    SavedName saved;
    TRY(name_set(c, name, (size_t)(name_end - name), &saved));
    TRY(pair(c, val, (size_t)(val_end - val)));
    name_restore(c, &saved);
    *pp = p + 1;
    *handled = 1;
    return OK;
}

/* One column: its value under its name, then its other members as `<name>.<member>`.
 * An item without a string name falls back to the general rule under `where`. */
static int prop_item(Ctx *c, const char **pp, const char *where, size_t where_len) {
    if (*pp >= c->end) return DECLINE;
    if (**pp != '{') return named_value(c, where, where_len, pp);
    int handled;
    TRY(prop_simple(c, pp, &handled));
    if (handled) return OK;
    PropScan s = {NULL, 0, NULL};
    const char *start = *pp;
    TRY(members(c, pp, prop_scan_member, &s));
    if (s.name == NULL) {
        const char *again = start;
        return named_value(c, where, where_len, &again);
    }
    if (s.value != NULL) {
        const char *v = s.value;
        TRY(named_value(c, s.name, s.name_len, &v));
    }
    SavedName saved;
    TRY(name_set(c, s.name, s.name_len, &saved));
    const char *again = start;
    TRY(members(c, &again, prop_extra_member, NULL));
    name_restore(c, &saved);
    return OK;
}

static const char PROP[] = "optionalData.props.prop";

static int props_prop(Ctx *c, const char **pp) {
    if (**pp != '[') return prop_item(c, pp, PROP, sizeof PROP - 1);
    const char *p = skip_ws(*pp + 1, c->end);
    if (p < c->end && *p == ']') {
        *pp = p + 1;
        return OK;
    }
    for (long i = 0;; i++) {
        char where[sizeof PROP + 24];
        memcpy(where, PROP, sizeof PROP - 1);
        where[sizeof PROP - 1] = '.';
        int len = (int)sizeof PROP + digits_of(i, where + sizeof PROP);
        TRY(prop_item(c, &p, where, (size_t)len));
        int more = next_item(&p, c->end, ']');
        if (more < 0) return DECLINE;
        if (!more) {
            *pp = p;
            return OK;
        }
    }
}

static int props_member(Ctx *c, const char *key, size_t n, const char **pp, void *arg) {
    (void)arg;
    if (n == 4 && memcmp(key, "prop", 4) == 0) return props_prop(c, pp);
    return dotted_member(c, key, n, pp, NULL);
}

static int optional_member(Ctx *c, const char *key, size_t n, const char **pp, void *arg) {
    (void)arg;
    if (n == 5 && memcmp(key, "props", 5) == 0 && **pp == '{') {
        size_t old = c->name.len;
        TRY(PUT(&c->name, ".props"));
        TRY(members(c, pp, props_member, NULL));
        c->name.len = old;
        return OK;
    }
    return dotted_member(c, key, n, pp, NULL);
}

static int top_member(Ctx *c, const char *key, size_t n, const char **pp, void *arg) {
    (void)arg;
    if (n == 12 && memcmp(key, "optionalData", 12) == 0 && **pp == '{') {
        SavedName saved;
        TRY(name_set(c, key, n, &saved));
        TRY(members(c, pp, optional_member, NULL));
        name_restore(c, &saved);
        return OK;
    }
    return named_value(c, key, n, pp);
}

/* Renders one payload's pairs onto c->out; on DECLINE the caller drops what was written. */
int rqs_render_one(Ctx *c, const char *payload, size_t n) {
    const char *p = skip_ws(payload, payload + n);
    c->end = payload + n;
    c->dry = c->depth = c->nkeys = 0;
    c->name.len = c->name_at = 0;
    if (p >= c->end || *p != '{') return DECLINE; /* ingest stores objects only */
    TRY(members(c, &p, top_member, NULL));
    return skip_ws(p, c->end) == c->end ? OK : DECLINE;
}

