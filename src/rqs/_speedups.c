/*
 * rqs._speedups: Mapp Engage outputs rendered straight from stored payload bytes.
 *
 * A Mapp poll returns every event as a flat list of name/value pairs, so each stored
 * JSON payload has to be flattened. In Python that costs ~6-9 us per event (decoding
 * alone creates ~30 objects), which puts a 100,000-event poll at ~1 s. This module walks
 * the payload bytes once and writes the rendered pairs, with no Python object per field,
 * and with the GIL released so that reader threads render in parallel.
 *
 * It implements exactly the rules of rqs.domain.flatten and the quoting of
 * rqs.web.mapp_render for the payloads it accepts, and declines (None) everything else:
 * strings with escapes or control characters, invalid UTF-8, floats, exponents, integers
 * of more than 18 digits, "-0", duplicate member names, nesting deeper than MAX_DEPTH, and
 * in XML U+FFFE/U+FFFF (which XML forbids). The Python path renders those, so a declined
 * payload costs speed, never correctness; tests/test_speedups.py checks that both paths
 * give identical bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 64
#define MAX_MEMBERS 256 /* per object; the duplicate check is quadratic */

enum { OK = 0, DECLINE = 1, NOMEM = -1 };

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

static int buf_grow(Buf *b, size_t n) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL) return NOMEM;
    b->data = d;
    b->cap = cap;
    return OK;
}

static inline int buf_reserve(Buf *b, size_t n) {
    return b->len + n <= b->cap ? OK : buf_grow(b, n);
}

static inline int buf_put(Buf *b, const char *s, size_t n) {
    if (n == 0) return OK; /* memcpy may not be given a NULL buffer, even for 0 bytes */
    if (buf_reserve(b, n) != OK) return NOMEM;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return OK;
}

/* Each thread keeps its output buffer between calls: a fresh one per call cost page faults
 * and regrowth copies for every chunk. Anything larger than this is given back. */
#define KEEP_BYTES (16u << 20)
static _Thread_local Buf kept;

static Buf buf_take(size_t want) {
    Buf b = kept;
    kept.data = NULL;
    kept.cap = 0;
    b.len = 0;
    /* Never NULL past here unless memory ran out: a failure leaves a buffer that grows. */
    if (b.cap < want || b.data == NULL) buf_grow(&b, want ? want : 1);
    return b;
}

static void buf_give_back(Buf *b) {
    if (b->cap > KEEP_BYTES || kept.data != NULL) {
        free(b->data);
    } else {
        kept = *b;
    }
    b->data = NULL;
}

#define PUT(b, lit) buf_put((b), (lit), sizeof(lit) - 1)
#define TRY(expr)                  \
    do {                           \
        int rc_ = (expr);          \
        if (rc_ != OK) return rc_; \
    } while (0)

typedef struct {
    const char *start; /* a key's bytes, between its quotes */
    size_t len;
} Span;

typedef struct {
    const char *end; /* end of the payload */
    int xml;
    int dry;         /* > 0: walk and validate only, emit nothing */
    int depth;
    Buf *out;
    Buf name;        /* the dotted name of the value being walked starts at name_at; */
    size_t name_at;  /* explicit names go after the current one, which stays intact */
    Span keys[MAX_MEMBERS * 4];
    int nkeys;       /* keys of the objects being walked, innermost last */
} Ctx;

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* Length of the valid UTF-8 sequence at p (no overlongs, no surrogates), 0 if invalid. */
static int utf8_len(const unsigned char *p, const unsigned char *end) {
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

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Whether any of 8 bytes may be a quote, a backslash, a control character or non-ASCII.
 * (The zero-byte trick can report a byte after a real hit; the byte loop sorts that out.) */
static inline int special8(uint64_t x) {
    uint64_t quote = x ^ (ONES * '"'), backslash = x ^ (ONES * '\\');
    return (((x - ONES * 0x20) & ~x) | ((quote - ONES) & ~quote) |
            ((backslash - ONES) & ~backslash) | x) & HIGHS ? 1 : 0;
}

/* p is at an opening quote; returns the closing quote, or NULL to decline. */
static const char *scan_string(const Ctx *c, const char *p) {
    const unsigned char *q = (const unsigned char *)p + 1;
    const unsigned char *end = (const unsigned char *)c->end;
    for (;;) {
        while (end - q >= 8) {
            uint64_t x;
            memcpy(&x, q, 8);
            if (special8(x)) break;
            q += 8;
        }
        if (q >= end) return NULL;
        unsigned ch = *q;
        if (ch == '"') return (const char *)q;
        if (ch == '\\' || ch < 0x20) return NULL;
        if (ch < 0x80) {
            q++;
            continue;
        }
        int n = utf8_len(q, end);
        if (n == 0) return NULL;
        if (c->xml && n == 3 && ch == 0xEF && q[1] == 0xBF && q[2] >= 0xBE) return NULL;
        q += n;
    }
}

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

/* Decimal digits of i into buf (at least 21 bytes); returns their count. */
static int digits_of(long i, char *buf) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + i % 10);
        i /= 10;
    } while (i > 0);
    for (int k = 0; k < n; k++) buf[k] = tmp[n - 1 - k];
    return n;
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

/* After an item of an object or array: 1 (and past the comma) if another follows, 0 (and
 * past the closing bracket) if not, -1 for anything else. */
static int after_item(const Ctx *c, const char **pp, char close) {
    const char *p = skip_ws(*pp, c->end);
    if (p < c->end && *p == ',') {
        *pp = skip_ws(p + 1, c->end);
        return 1;
    }
    if (p < c->end && *p == close) {
        *pp = p + 1;
        return 0;
    }
    return -1;
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
            int more = after_item(c, &p, '}');
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
            int more = after_item(c, &p, ']');
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
        int more = after_item(c, &p, ']');
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
static int render_one(Ctx *c, const char *payload, size_t n) {
    const char *p = skip_ws(payload, payload + n);
    c->end = payload + n;
    c->dry = c->depth = c->nkeys = 0;
    c->name.len = c->name_at = 0;
    if (p >= c->end || *p != '{') return DECLINE; /* ingest stores objects only */
    TRY(members(c, &p, top_member, NULL));
    return skip_ws(p, c->end) == c->end ? OK : DECLINE;
}

/* --- the module ----------------------------------------------------------------------- */

PyDoc_STRVAR(render_pairs_doc,
"render_pairs(payloads, xml, /)\n--\n\n"
"The Mapp outputs of each stored JSON payload, rendered: for each a bytes object with\n"
"its pairs in the JSON (`,{\"name\":..,\"value\":..}` each) or XML (`<output>..</output>`\n"
"each) form, or None where the payload needs the Python path.");

static PyObject *render_pairs(PyObject *self, PyObject *args) {
    PyObject *seq;
    int xml;
    (void)self;
    if (!PyArg_ParseTuple(args, "Op:render_pairs", &seq, &xml)) return NULL;
    /* A tuple of our own: the payloads cannot change while the GIL is released. */
    PyObject *items = PySequence_Tuple(seq);
    if (items == NULL) return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(items);
    const char **starts = PyMem_Malloc(sizeof(char *) * (size_t)(count + 1));
    Py_ssize_t *sizes = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(count + 1));
    Py_ssize_t *ends = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(count + 1));
    Ctx *c = PyMem_Calloc(1, sizeof(Ctx));
    Buf out = {NULL, 0, 0};
    PyObject *result = NULL;
    int failed = 0;
    size_t total = 0;
    if (!starts || !sizes || !ends || !c) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyTuple_GET_ITEM(items, i);
        if (!PyBytes_Check(item)) {
            PyErr_Format(PyExc_TypeError, "payload %zd is %.50s, not bytes", i,
                         Py_TYPE(item)->tp_name);
            goto done;
        }
        starts[i] = PyBytes_AS_STRING(item);
        sizes[i] = PyBytes_GET_SIZE(item);
        total += (size_t)sizes[i];
    }
    c->xml = xml;
    out = buf_take(total * (xml ? 3 : 2));
    c->out = &out;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) {
        size_t before = out.len;
        int rc = render_one(c, starts[i], (size_t)sizes[i]);
        if (rc == NOMEM) {
            failed = 1;
            break;
        }
        if (rc == DECLINE) out.len = before;
        ends[i] = rc == OK ? (Py_ssize_t)out.len : -1;
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyList_New(count);
    if (result == NULL) goto done;
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *rendered;
        if (ends[i] < 0) {
            rendered = Py_NewRef(Py_None);
        } else {
            rendered = PyBytes_FromStringAndSize(out.data + at, ends[i] - at);
            if (rendered == NULL) {
                Py_CLEAR(result);
                goto done;
            }
            at = ends[i];
        }
        PyList_SET_ITEM(result, i, rendered);
    }
done:
    Py_DECREF(items);
    if (c != NULL) free(c->name.data);
    buf_give_back(&out);
    PyMem_Free(c);
    PyMem_Free(starts);
    PyMem_Free(sizes);
    PyMem_Free(ends);
    return result;
}

/* --- whole events ----------------------------------------------------------------------- */

typedef struct {
    PyObject *type, *channel; /* borrowed from an event of the call */
    long long received_at;
    PyObject *fixed;          /* owned bytes */
} FixedEntry;

#define MAX_FIXED 64

typedef struct {
    FixedEntry entries[MAX_FIXED];
    int count;
    long long received_at;
} FixedCache;

static int same_text(PyObject *a, PyObject *b) {
    if (a == b) return 1;
    Py_ssize_t na, nb;
    const char *sa = PyUnicode_AsUTF8AndSize(a, &na), *sb;
    if (sa == NULL) return -1;
    if ((sb = PyUnicode_AsUTF8AndSize(b, &nb)) == NULL) return -1;
    return na == nb && memcmp(sa, sb, (size_t)na) == 0;
}

static void fixed_clear(FixedCache *cache) {
    for (int i = 0; i < cache->count; i++) Py_DECREF(cache->entries[i].fixed);
    cache->count = 0;
}

/* The event's fixed outputs (type, channel, received_at): from the cache, or from the
 * Python callback once per type, channel and commit. Borrowed; NULL with an exception. */
static PyObject *fixed_for(FixedCache *cache, PyObject *event, PyObject *type,
                           PyObject *channel, long long received_at, PyObject *callback) {
    if (received_at != cache->received_at) {
        fixed_clear(cache);
        cache->received_at = received_at;
    }
    for (int i = 0; i < cache->count; i++) {
        FixedEntry *e = &cache->entries[i];
        int same = same_text(e->type, type);
        if (same > 0) same = same_text(e->channel, channel);
        if (same < 0) return NULL;
        if (same) return e->fixed;
    }
    PyObject *fixed = PyObject_CallOneArg(callback, event);
    if (fixed == NULL) return NULL;
    if (!PyBytes_Check(fixed)) {
        Py_DECREF(fixed);
        PyErr_SetString(PyExc_TypeError, "fixed() must return bytes");
        return NULL;
    }
    if (cache->count == MAX_FIXED) fixed_clear(cache);
    FixedEntry *e = &cache->entries[cache->count++];
    e->type = type;
    e->channel = channel;
    e->received_at = received_at;
    e->fixed = fixed;
    return fixed;
}

typedef struct {
    PyObject *event;           /* owned, keeps the attributes below alive */
    PyObject *payload, *type, *channel; /* owned */
    PyObject *head;            /* owned bytes from the callback, or NULL: the plain head */
    PyObject *fixed;           /* owned: the cache may drop its reference first */
    long long index;
    Py_ssize_t declined_at;    /* where Python's pairs go in the output, or -1 */
} Item;

/* Attribute names, interned once: building them per access (GetAttrString) cost as much
 * as the rest of an event's head. */
static PyObject *s_payload, *s_type, *s_channel, *s_received_at, *s_ext_id, *s_occurred_at,
    *s_index;

#define attr PyObject_GetAttr

static int gather(Item *it, PyObject *event, FixedCache *cache, PyObject *head_cb,
                  PyObject *fixed_cb) {
    PyObject *received = NULL, *ext_id = NULL, *occurred = NULL, *index = NULL;
    int rc = -1;
    it->event = Py_NewRef(event);
    if (!(it->payload = attr(event, s_payload)) || !(it->type = attr(event, s_type)) ||
        !(it->channel = attr(event, s_channel)) || !(received = attr(event, s_received_at)) ||
        !(ext_id = attr(event, s_ext_id)) || !(occurred = attr(event, s_occurred_at)) ||
        !(index = attr(event, s_index)))
        goto done;
    if (!PyBytes_Check(it->payload) || !PyUnicode_Check(it->type) ||
        !PyUnicode_Check(it->channel)) {
        PyErr_SetString(PyExc_TypeError, "events must be StoredEvent");
        goto done;
    }
    it->index = PyLong_AsLongLong(index);
    long long received_at = PyLong_AsLongLong(received);
    if (PyErr_Occurred()) goto done;
    if (ext_id != Py_None || occurred != Py_None) {
        /* Rare: the sender's id needs quoting, occurred_at formatting; Python does both. */
        it->head = PyObject_CallOneArg(head_cb, event);
        if (it->head == NULL) goto done;
        if (!PyBytes_Check(it->head)) {
            PyErr_SetString(PyExc_TypeError, "head() must return bytes");
            goto done;
        }
    } else {
        it->fixed = fixed_for(cache, event, it->type, it->channel, received_at, fixed_cb);
        if (it->fixed == NULL) goto done;
        Py_INCREF(it->fixed);
    }
    rc = 0;
done:
    Py_XDECREF(received);
    Py_XDECREF(ext_id);
    Py_XDECREF(occurred);
    Py_XDECREF(index);
    return rc;
}

static void release(Item *items, Py_ssize_t count) {
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_XDECREF(items[i].event);
        Py_XDECREF(items[i].payload);
        Py_XDECREF(items[i].type);
        Py_XDECREF(items[i].channel);
        Py_XDECREF(items[i].head);
        Py_XDECREF(items[i].fixed);
    }
}

typedef struct {
    const char *a, *b, *c, *tail; /* head = a + index + b + index + c; then fixed, pairs, tail */
    Py_ssize_t na, nb, nc, ntail;
} Pieces;

static int write_event(Ctx *c, const Pieces *k, Item *it) {
    Buf *out = c->out;
    if (it->head != NULL) {
        TRY(buf_put(out, PyBytes_AS_STRING(it->head), (size_t)PyBytes_GET_SIZE(it->head)));
    } else {
        char digits[24];
        int nd = digits_of(it->index < 0 ? 0 : (long)it->index, digits);
        TRY(buf_put(out, k->a, (size_t)k->na));
        TRY(buf_put(out, digits, (size_t)nd));
        TRY(buf_put(out, k->b, (size_t)k->nb));
        TRY(buf_put(out, digits, (size_t)nd));
        TRY(buf_put(out, k->c, (size_t)k->nc));
        TRY(buf_put(out, PyBytes_AS_STRING(it->fixed), (size_t)PyBytes_GET_SIZE(it->fixed)));
    }
    size_t before = out->len;
    int rc = render_one(c, PyBytes_AS_STRING(it->payload), (size_t)PyBytes_GET_SIZE(it->payload));
    if (rc == NOMEM) return NOMEM;
    if (rc == DECLINE) {
        out->len = before;
        it->declined_at = (Py_ssize_t)before;
    }
    return buf_put(out, k->tail, (size_t)k->ntail);
}

/* The output with Python's pairs spliced in where the C walk declined. */
static PyObject *assemble(const Buf *out, Item *items, Py_ssize_t count, PyObject *pairs_cb) {
    PyObject *spliced = PyList_New(0), *result = NULL;
    size_t total = out->len;
    if (spliced == NULL) return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (items[i].declined_at < 0) continue;
        PyObject *pairs = PyObject_CallOneArg(pairs_cb, items[i].payload);
        if (pairs == NULL) goto done;
        int bad = !PyBytes_Check(pairs) || PyList_Append(spliced, pairs) < 0;
        if (!PyBytes_Check(pairs)) PyErr_SetString(PyExc_TypeError, "pairs() must return bytes");
        Py_DECREF(pairs);
        if (bad) goto done;
        total += (size_t)PyBytes_GET_SIZE(PyList_GET_ITEM(spliced, PyList_GET_SIZE(spliced) - 1));
    }
    result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (result == NULL) goto done;
    char *w = PyBytes_AS_STRING(result);
    size_t at = 0;
    Py_ssize_t next = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (items[i].declined_at < 0) continue;
        size_t upto = (size_t)items[i].declined_at;
        memcpy(w, out->data + at, upto - at);
        w += upto - at;
        at = upto;
        PyObject *pairs = PyList_GET_ITEM(spliced, next++);
        memcpy(w, PyBytes_AS_STRING(pairs), (size_t)PyBytes_GET_SIZE(pairs));
        w += PyBytes_GET_SIZE(pairs);
    }
    if (out->len > at) memcpy(w, out->data + at, out->len - at);
done:
    Py_DECREF(spliced);
    return result;
}

PyDoc_STRVAR(render_events_doc,
"render_events(events, xml, head_a, head_b, head_c, tail, head, fixed, pairs, /)\n--\n\n"
"Whole async results of StoredEvents: head_a + index + head_b + index + head_c, then\n"
"fixed(event) (called once per type, channel and received_at), the payload's pairs, tail.\n"
"Events with an ext_id or occurred_at take head(event) for all that precedes the pairs;\n"
"payloads the C walk declines take pairs(payload).");

static PyObject *render_events(PyObject *self, PyObject *args) {
    PyObject *seq, *head_cb, *fixed_cb, *pairs_cb;
    Pieces k;
    int xml;
    (void)self;
    if (!PyArg_ParseTuple(args, "Opy#y#y#y#OOO:render_events", &seq, &xml, &k.a, &k.na, &k.b,
                          &k.nb, &k.c, &k.nc, &k.tail, &k.ntail, &head_cb, &fixed_cb, &pairs_cb))
        return NULL;
    PyObject *events = PySequence_Tuple(seq);
    if (events == NULL) return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(events);
    Item *items = PyMem_Calloc((size_t)count + 1, sizeof(Item));
    Ctx *c = PyMem_Calloc(1, sizeof(Ctx));
    FixedCache *cache = PyMem_Calloc(1, sizeof(FixedCache));
    Buf out = {NULL, 0, 0};
    PyObject *result = NULL;
    int rc = OK;
    Py_ssize_t gathered = 0;
    if (!items || !c || !cache) {
        PyErr_NoMemory();
        goto done;
    }
    cache->received_at = -1;
    for (; gathered < count; gathered++) {
        items[gathered].declined_at = -1;
        if (gather(&items[gathered], PyTuple_GET_ITEM(events, gathered), cache, head_cb,
                   fixed_cb) < 0) {
            gathered++;
            goto done;
        }
    }
    size_t total = 0;
    for (Py_ssize_t i = 0; i < count; i++) total += (size_t)PyBytes_GET_SIZE(items[i].payload);
    c->xml = xml;
    out = buf_take(total * (xml ? 3 : 2) + (size_t)count * 256);
    c->out = &out;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count && rc == OK; i++) rc = write_event(c, &k, &items[i]);
    Py_END_ALLOW_THREADS
    if (rc != OK) {
        PyErr_NoMemory();
        goto done;
    }
    result = assemble(&out, items, count, pairs_cb);
done:
    if (items != NULL) release(items, gathered);
    if (cache != NULL) fixed_clear(cache);
    Py_DECREF(events);
    if (c != NULL) free(c->name.data);
    buf_give_back(&out);
    PyMem_Free(items);
    PyMem_Free(c);
    PyMem_Free(cache);
    return result;
}

/* --- native event pages (GET /v1/events) ----------------------------------------------- */

typedef struct {
    const char *s; /* the text, or a whole JSON string literal when quoted */
    Py_ssize_t n;
    int quoted;
    PyObject *owner; /* owned: the str whose UTF-8 s points into, or the callback's bytes */
} Piece;

/* A literal from a Python callback (which must give bytes), taken over by the piece. */
static int bytes_piece(PyObject *lit, const char *what, Piece *out) {
    if (!PyBytes_Check(lit)) {
        Py_DECREF(lit);
        PyErr_Format(PyExc_TypeError, "%s() must return bytes", what);
        return -1;
    }
    out->s = PyBytes_AS_STRING(lit);
    out->n = PyBytes_GET_SIZE(lit);
    out->quoted = 1;
    out->owner = lit;
    return 0;
}

/* A str as a JSON string: its UTF-8 as it is when nothing needs escaping (the quotes are
 * the writer's), else the Python callback's literal (msgspec's escaping, exactly). */
static int text_piece(PyObject *text, PyObject *quote_cb, Piece *out) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(text, &n);
    if (s == NULL) return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == '"' || ch == '\\') {
            PyObject *lit = PyObject_CallOneArg(quote_cb, text);
            return lit == NULL ? -1 : bytes_piece(lit, "quote", out);
        }
    }
    out->s = s;
    out->n = n;
    out->quoted = 0;
    out->owner = Py_NewRef(text);
    return 0;
}

typedef struct {
    PyObject *payload; /* owned */
    long long index;
    Piece id, type, channel, received, occurred; /* id.owner NULL: the derived id */
} NativeItem;

static void native_release(NativeItem *items, Py_ssize_t count) {
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_XDECREF(items[i].payload);
        Py_XDECREF(items[i].id.owner);
        Py_XDECREF(items[i].type.owner);
        Py_XDECREF(items[i].channel.owner);
        Py_XDECREF(items[i].received.owner);
        Py_XDECREF(items[i].occurred.owner);
    }
}

typedef struct {
    long long micros;
    PyObject *literal; /* owned */
} TimeMemo;

/* The JSON literal of a time, from the callback once per distinct value in a row (events
 * of one commit share received_at). A new reference. */
static PyObject *time_literal(TimeMemo *memo, PyObject *value, PyObject *time_cb) {
    long long micros = PyLong_AsLongLong(value);
    if (micros == -1 && PyErr_Occurred()) return NULL;
    if (memo->literal == NULL || memo->micros != micros) {
        PyObject *lit = PyObject_CallOneArg(time_cb, value);
        if (lit == NULL) return NULL;
        Py_XSETREF(memo->literal, lit);
        memo->micros = micros;
    }
    return Py_NewRef(memo->literal);
}

static int native_gather(NativeItem *it, PyObject *event, PyObject *quote_cb,
                         PyObject *time_cb, TimeMemo *memo) {
    PyObject *index = NULL, *ext_id = NULL, *type = NULL, *channel = NULL, *received = NULL,
             *occurred = NULL, *lit;
    int rc = -1;
    if (!(it->payload = attr(event, s_payload)) || !(index = attr(event, s_index)) ||
        !(ext_id = attr(event, s_ext_id)) || !(type = attr(event, s_type)) ||
        !(channel = attr(event, s_channel)) || !(received = attr(event, s_received_at)) ||
        !(occurred = attr(event, s_occurred_at)))
        goto done;
    if (!PyBytes_Check(it->payload) || !PyUnicode_Check(type) || !PyUnicode_Check(channel) ||
        (ext_id != Py_None && !PyUnicode_Check(ext_id))) {
        PyErr_SetString(PyExc_TypeError, "events must be StoredEvent");
        goto done;
    }
    it->index = PyLong_AsLongLong(index);
    if (it->index == -1 && PyErr_Occurred()) goto done;
    if (ext_id != Py_None && text_piece(ext_id, quote_cb, &it->id) < 0) goto done;
    if (text_piece(type, quote_cb, &it->type) < 0) goto done;
    if (text_piece(channel, quote_cb, &it->channel) < 0) goto done;
    if ((lit = time_literal(memo, received, time_cb)) == NULL) goto done;
    if (bytes_piece(lit, "time", &it->received) < 0) goto done;
    if (occurred != Py_None) {
        TimeMemo once = {0, NULL};
        if ((lit = time_literal(&once, occurred, time_cb)) == NULL) goto done;
        Py_DECREF(once.literal);
        if (bytes_piece(lit, "time", &it->occurred) < 0) goto done;
    }
    rc = 0;
done:
    Py_XDECREF(index);
    Py_XDECREF(ext_id);
    Py_XDECREF(type);
    Py_XDECREF(channel);
    Py_XDECREF(received);
    Py_XDECREF(occurred);
    return rc;
}

static int put_piece(Buf *out, const Piece *p) {
    if (p->quoted) return buf_put(out, p->s, (size_t)p->n);
    TRY(PUT(out, "\""));
    TRY(buf_put(out, p->s, (size_t)p->n));
    return PUT(out, "\"");
}

static int native_write(Buf *out, const NativeItem *it, const char *prefix, size_t nprefix,
                        int ndjson, int first) {
    char digits[24];
    int nd = digits_of(it->index < 0 ? 0 : (long)it->index, digits);
    if (!ndjson && !first) TRY(PUT(out, ","));
    TRY(PUT(out, "{\"index\":"));
    TRY(buf_put(out, digits, (size_t)nd));
    TRY(PUT(out, ",\"id\":"));
    if (it->id.owner != NULL) {
        TRY(put_piece(out, &it->id));
    } else {
        TRY(PUT(out, "\""));
        TRY(buf_put(out, prefix, nprefix));
        TRY(buf_put(out, digits, (size_t)nd));
        TRY(PUT(out, "\""));
    }
    TRY(PUT(out, ",\"type\":"));
    TRY(put_piece(out, &it->type));
    TRY(PUT(out, ",\"channel\":"));
    TRY(put_piece(out, &it->channel));
    TRY(PUT(out, ",\"received_at\":"));
    TRY(put_piece(out, &it->received));
    TRY(PUT(out, ",\"occurred_at\":"));
    if (it->occurred.owner != NULL) {
        TRY(put_piece(out, &it->occurred));
    } else {
        TRY(PUT(out, "null"));
    }
    TRY(PUT(out, ",\"payload\":"));
    TRY(buf_put(out, PyBytes_AS_STRING(it->payload), (size_t)PyBytes_GET_SIZE(it->payload)));
    return ndjson ? PUT(out, "}\n") : PUT(out, "}");
}

PyDoc_STRVAR(render_native_doc,
"render_native(events, ndjson, id_prefix, quote, time, /)\n--\n\n"
"StoredEvents as the native API's event objects, payloads spliced as stored: joined by\n"
"commas (the inside of a JSON array) or one per line. A missing ext_id becomes id_prefix\n"
"+ index; quote(text) gives the JSON literal of a text that needs escaping; time(micros)\n"
"the JSON literal of a time.");

static PyObject *render_native(PyObject *self, PyObject *args) {
    PyObject *seq, *quote_cb, *time_cb;
    const char *prefix;
    Py_ssize_t nprefix;
    int ndjson;
    (void)self;
    if (!PyArg_ParseTuple(args, "Opy#OO:render_native", &seq, &ndjson, &prefix, &nprefix,
                          &quote_cb, &time_cb))
        return NULL;
    PyObject *events = PySequence_Tuple(seq);
    if (events == NULL) return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(events), gathered = 0;
    NativeItem *items = PyMem_Calloc((size_t)count + 1, sizeof(NativeItem));
    TimeMemo memo = {0, NULL};
    Buf out = {NULL, 0, 0};
    PyObject *result = NULL;
    int rc = OK;
    size_t total = 0;
    if (items == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; gathered < count; gathered++) {
        if (native_gather(&items[gathered], PyTuple_GET_ITEM(events, gathered), quote_cb,
                          time_cb, &memo) < 0) {
            gathered++;
            goto done;
        }
        total += (size_t)PyBytes_GET_SIZE(items[gathered].payload) + 256;
    }
    out = buf_take(total);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count && rc == OK; i++)
        rc = native_write(&out, &items[i], prefix, (size_t)nprefix, ndjson, i == 0);
    Py_END_ALLOW_THREADS
    if (rc != OK) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyBytes_FromStringAndSize(out.data, (Py_ssize_t)out.len);
done:
    if (items != NULL) native_release(items, gathered);
    Py_XDECREF(memo.literal);
    Py_DECREF(events);
    buf_give_back(&out);
    PyMem_Free(items);
    return result;
}

/* --- PostgreSQL binary COPY rows (rqs.storage.postgres.binary_copy) ------------------- */

static PyObject *s_campaign_id, *s_campaign_name, *s_riid, *s_customer_id, *s_recipient,
    *s_message;

static inline void put_be32(Buf *b, uint32_t v) {
    unsigned char *w = (unsigned char *)b->data + b->len;
    w[0] = (unsigned char)(v >> 24);
    w[1] = (unsigned char)(v >> 16);
    w[2] = (unsigned char)(v >> 8);
    w[3] = (unsigned char)v;
    b->len += 4;
}

static inline void put_be64(Buf *b, uint64_t v) {
    put_be32(b, (uint32_t)(v >> 32));
    put_be32(b, (uint32_t)v);
}

/* A column's length, then its bytes. */
static int put_sized(Buf *b, const char *s, size_t n) {
    TRY(buf_reserve(b, 4 + n));
    put_be32(b, (uint32_t)n);
    if (n > 0) memcpy(b->data + b->len, s, n);
    b->len += n;
    return OK;
}

/* A text column: length and UTF-8, or -1 for None. DECLINE where Python's encoding differs
 * from the UTF-8 as it is: lone surrogates ("replace") and NUL (stored as U+FFFD). */
static int copy_text(Buf *b, PyObject *value) {
    if (value == Py_None) {
        TRY(buf_reserve(b, 4));
        put_be32(b, 0xFFFFFFFFu);
        return OK;
    }
    if (!PyUnicode_Check(value)) return DECLINE;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(value, &n);
    if (s == NULL) {
        PyErr_Clear();
        return DECLINE;
    }
    if (n > INT32_MAX || memchr(s, 0, (size_t)n) != NULL) return DECLINE;
    return put_sized(b, s, (size_t)n);
}

/* One event's columns after (domain_id, idx, received_at), as binary_copy.event_tail. */
static int copy_tail(Buf *b, PyObject *event) {
    PyObject *names[] = {s_type, s_channel, s_occurred_at, s_ext_id, s_campaign_id,
                         s_campaign_name, s_riid, s_customer_id, s_recipient, s_message,
                         s_payload};
    PyObject *values[11] = {NULL};
    int rc = NOMEM;
    for (int i = 0; i < 11; i++)
        if ((values[i] = attr(event, names[i])) == NULL) goto done;
    if ((rc = copy_text(b, values[0])) != OK || (rc = copy_text(b, values[1])) != OK) goto done;
    rc = NOMEM;
    if (buf_reserve(b, 12) != OK) goto done;
    if (values[2] == Py_None) {
        put_be32(b, 0xFFFFFFFFu);
    } else {
        long long at = PyLong_AsLongLong(values[2]);
        if (at == -1 && PyErr_Occurred()) goto done;
        put_be32(b, 8);
        put_be64(b, (uint64_t)at);
    }
    for (int i = 3; i < 10; i++)
        if ((rc = copy_text(b, values[i])) != OK) goto done;
    rc = DECLINE;
    if (!PyBytes_Check(values[10]) || PyBytes_GET_SIZE(values[10]) > INT32_MAX) goto done;
    rc = put_sized(b, PyBytes_AS_STRING(values[10]), (size_t)PyBytes_GET_SIZE(values[10]));
done:
    for (int i = 0; i < 11; i++) Py_XDECREF(values[i]);
    return rc;
}

PyDoc_STRVAR(copy_tails_doc,
"copy_tails(events, /)\n--\n\n"
"Per NewEvent, its binary COPY columns after (domain_id, idx, received_at), or None where\n"
"Python must encode it (a text with NUL or a lone surrogate).");

static PyObject *copy_tails(PyObject *self, PyObject *seq) {
    (void)self;
    PyObject *events = PySequence_Tuple(seq);
    if (events == NULL) return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(events);
    PyObject *result = PyList_New(count);
    Buf b = buf_take(4096);
    for (Py_ssize_t i = 0; result != NULL && i < count; i++) {
        b.len = 0;
        int rc = copy_tail(&b, PyTuple_GET_ITEM(events, i));
        PyObject *tail = NULL;
        if (rc == OK) {
            tail = PyBytes_FromStringAndSize(b.data, (Py_ssize_t)b.len);
        } else if (rc == DECLINE && !PyErr_Occurred()) {
            tail = Py_NewRef(Py_None);
        } else if (!PyErr_Occurred()) {
            PyErr_NoMemory();
        }
        if (tail == NULL) {
            Py_CLEAR(result);
            break;
        }
        PyList_SET_ITEM(result, i, tail);
    }
    buf_give_back(&b);
    Py_DECREF(events);
    return result;
}

PyDoc_STRVAR(copy_rows_doc,
"copy_rows(tails, positions, domain_id, first_index, received_at, /)\n--\n\n"
"Whole binary COPY rows: for the n-th position, the head (domain_id, first_index + n,\n"
"received_at) and tails[position].");

static PyObject *copy_rows(PyObject *self, PyObject *args) {
    PyObject *tails_seq, *positions_seq;
    int domain_id;
    long long first_index, received_at;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOiLL:copy_rows", &tails_seq, &positions_seq, &domain_id,
                          &first_index, &received_at))
        return NULL;
    PyObject *tails = PySequence_Tuple(tails_seq);
    if (tails == NULL) return NULL;
    PyObject *positions = PySequence_Tuple(positions_seq);
    PyObject *result = NULL;
    if (positions == NULL) goto done;
    Py_ssize_t count = PyTuple_GET_SIZE(positions), ntails = PyTuple_GET_SIZE(tails);
    size_t total = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t pos = PyLong_AsSsize_t(PyTuple_GET_ITEM(positions, i));
        if (pos == -1 && PyErr_Occurred()) goto done;
        if (pos < 0 || pos >= ntails || !PyBytes_Check(PyTuple_GET_ITEM(tails, pos))) {
            PyErr_Format(PyExc_ValueError, "position %zd names no bytes tail", pos);
            goto done;
        }
        total += 34 + (size_t)PyBytes_GET_SIZE(PyTuple_GET_ITEM(tails, pos));
    }
    result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (result == NULL) goto done;
    Buf b = {PyBytes_AS_STRING(result), 0, total};
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *tail = PyTuple_GET_ITEM(tails, PyLong_AsSsize_t(PyTuple_GET_ITEM(positions, i)));
        unsigned char *w = (unsigned char *)b.data + b.len;
        w[0] = 0;
        w[1] = 14; /* fields in a row */
        b.len += 2;
        put_be32(&b, 4);
        put_be32(&b, (uint32_t)domain_id);
        put_be32(&b, 8);
        put_be64(&b, (uint64_t)(first_index + i));
        put_be32(&b, 8);
        put_be64(&b, (uint64_t)received_at);
        memcpy(b.data + b.len, PyBytes_AS_STRING(tail), (size_t)PyBytes_GET_SIZE(tail));
        b.len += (size_t)PyBytes_GET_SIZE(tail);
    }
done:
    Py_XDECREF(positions);
    Py_DECREF(tails);
    return result;
}

static PyMethodDef methods[] = {
    {"render_pairs", render_pairs, METH_VARARGS, render_pairs_doc},
    {"render_events", render_events, METH_VARARGS, render_events_doc},
    {"render_native", render_native, METH_VARARGS, render_native_doc},
    {"copy_tails", copy_tails, METH_O, copy_tails_doc},
    {"copy_rows", copy_rows, METH_VARARGS, copy_rows_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "rqs._speedups",
    "C renderer of Mapp Engage outputs (see rqs.web.mapp_render).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {{&s_payload, "payload"},     {&s_type, "type"},
                 {&s_channel, "channel"},     {&s_received_at, "received_at"},
                 {&s_ext_id, "ext_id"},       {&s_occurred_at, "occurred_at"},
                 {&s_index, "index"},         {&s_campaign_id, "campaign_id"},
                 {&s_campaign_name, "campaign_name"}, {&s_riid, "riid"},
                 {&s_customer_id, "customer_id"},     {&s_recipient, "recipient"},
                 {&s_message, "message"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((*names[i].slot = PyUnicode_InternFromString(names[i].text)) == NULL) return NULL;
    return PyModule_Create(&module);
}
