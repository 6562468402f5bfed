/*
 * Ingest's fast path: a JSON array, or NDJSON, of Responsys callback payloads, validated
 * and split in one pass over the bytes (without the GIL), then written as the msgpack of
 * the NewEvents they make (PackedEvents), with no Python object per event. For the batches
 * it accepts it gives the events rqs.domain.events.parse_batch gives (split_body, then
 * _fast_responsys or an item at a time), which took two msgspec passes over the body and
 * an object per field.
 *
 * It declines (None), and the Python path answers with its own result or errors, for
 * anything it cannot vouch for: invalid JSON, an empty batch, an item that is not an
 * object, escapes in an item's member names or in the fields it reads, lone surrogates
 * escaped anywhere, a field it reads that is neither a string nor null or that appears
 * twice, a failureType that is missing, empty, or starts or ends with a space or a
 * non-ASCII character (Python's strip() decides those), a native envelope's `type`, `id`,
 * `occurred_at` or `domain` that is a number or structured (the NDJSON path builds those),
 * nesting deeper than MAX_DEPTH, more items than allowed (Python counts and refuses them).
 * It is never less strict than the Python path: a body it accepts, Python accepts.
 */
#include "speedups.h"
#include "json.h"

/* The members an item's walk looks at: the fields it reads, then a native envelope's
 * members besides `data`. The NDJSON path decodes an item's `type`, `id`, `occurred_at`
 * and `domain` into Python objects even when it has a failureType, so a number there that
 * Python cannot hold (1e400, an integer past Python's digit limit) fails it; this walk
 * does not build numbers, so it declines any but plain scalars there. */
enum { F_TYPE, F_CHANNEL, F_CAMPAIGN_ID, F_CAMPAIGN_NAME, F_RIID, F_CUSTOMER_ID,
       F_RECIPIENT, F_MESSAGE, NFIELDS, E_TYPE = NFIELDS, E_ID, E_OCCURRED_AT, E_DOMAIN,
       NMEMBERS };

static const struct {
    const char *name;
    size_t len;
} MEMBERS[NMEMBERS] = {
    {"failureType", 11}, {"channelType", 11}, {"campaignId", 10}, {"campaignName", 12},
    {"riid", 4},         {"customerId", 10},  {"recipient", 9},   {"inboundMessage", 14},
    {"type", 4},         {"id", 2},           {"occurred_at", 11}, {"domain", 6},
};

typedef struct {
    const char *start; /* NULL: missing or null */
    size_t len;
} Slice;

typedef struct {
    Slice raw;             /* the item's bytes, as msgspec.Raw would give them */
    Slice field[NFIELDS];  /* the string fields' contents, between their quotes */
} Item;

typedef struct {
    const char *end;
    int depth;
} Walk;

/* p is at an opening quote; returns the closing quote, or NULL. *escaped is set when the
 * string holds an escape (a valid one: anything else is NULL). */
static const char *string_end(const Walk *w, const char *p, int *escaped) {
    const unsigned char *q = (const unsigned char *)p + 1;
    const unsigned char *end = (const unsigned char *)w->end;
    for (;;) {
        q = string_special(q, end);
        if (q >= end) return NULL;
        unsigned ch = *q;
        if (ch == '"') return (const char *)q;
        if (ch < 0x20) return NULL;
        if (ch == '\\') {
            *escaped = 1;
            if (end - q < 2) return NULL;
            switch (q[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                q += 2;
                continue;
            case 'u':
                break;
            default:
                return NULL;
            }
            if (end - q < 6) return NULL;
            unsigned v = 0;
            for (int i = 2; i < 6; i++) {
                unsigned h = q[i], d;
                if (h >= '0' && h <= '9') d = h - '0';
                else if (h >= 'a' && h <= 'f') d = h - 'a' + 10;
                else if (h >= 'A' && h <= 'F') d = h - 'A' + 10;
                else return NULL;
                v = v * 16 + d;
            }
            if (v >= 0xD800 && v <= 0xDFFF) return NULL; /* pairs and lone ones: Python's */
            q += 6;
            continue;
        }
        int n = utf8_len(q, end); /* string_special stopped here: non-ASCII */
        if (n == 0) return NULL;
        q += n;
    }
}

static const char *digits_end(const char *p, const char *end) {
    while (p < end && *p >= '0' && *p <= '9') p++;
    return p;
}

/* JSON's number grammar exactly; returns the end, or NULL. */
static const char *number_end(const Walk *w, const char *p) {
    if (*p == '-') p++;
    if (p >= w->end) return NULL;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        p = digits_end(p, w->end);
    } else {
        return NULL;
    }
    if (p < w->end && *p == '.') {
        const char *d = digits_end(p + 1, w->end);
        if (d == p + 1) return NULL;
        p = d;
    }
    if (p < w->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < w->end && (*p == '+' || *p == '-')) p++;
        const char *d = digits_end(p, w->end);
        if (d == p) return NULL;
        p = d;
    }
    return p;
}

static const char *literal_end(const Walk *w, const char *p, const char *word, size_t n) {
    return (size_t)(w->end - p) >= n && memcmp(p, word, n) == 0 ? p + n : NULL;
}

static const char *value_end(Walk *w, const char *p);

/* The member name at p (its closing quote in *close); NULL if it is not one. */
static const char *member_value(const Walk *w, const char *p, const char **close, int *escaped) {
    if (p >= w->end || *p != '"' || (*close = string_end(w, p, escaped)) == NULL) return NULL;
    p = skip_ws(*close + 1, w->end);
    if (p >= w->end || *p != ':') return NULL;
    p = skip_ws(p + 1, w->end);
    return p < w->end ? p : NULL;
}

/* An object (close '}') or array (close ']') at p; returns the byte after it, or NULL. */
static const char *container_end(Walk *w, const char *p, char close) {
    if (++w->depth > MAX_DEPTH) return NULL;
    p = skip_ws(p + 1, w->end);
    if (p < w->end && *p == close) {
        w->depth--;
        return p + 1;
    }
    for (;;) {
        const char *name_close;
        int escaped = 0;
        if (close == '}' && (p = member_value(w, p, &name_close, &escaped)) == NULL)
            return NULL;
        if ((p = value_end(w, p)) == NULL) return NULL;
        int more = next_item(&p, w->end, close);
        if (more < 0) return NULL;
        if (!more) break;
    }
    w->depth--;
    return p;
}

/* p is at a value's first byte (or the end); returns the byte after it, or NULL. */
static const char *value_end(Walk *w, const char *p) {
    int escaped = 0;
    if (p >= w->end) return NULL;
    switch (*p) {
    case '{': return container_end(w, p, '}');
    case '[': return container_end(w, p, ']');
    case '"': {
        const char *close = string_end(w, p, &escaped);
        return close ? close + 1 : NULL;
    }
    case 't': return literal_end(w, p, "true", 4);
    case 'f': return literal_end(w, p, "false", 5);
    case 'n': return literal_end(w, p, "null", 4);
    default: return number_end(w, p);
    }
}

/* The index of a member in MEMBERS, or -1. */
static int member_of(const char *name, size_t n) {
    for (int k = 0; k < NMEMBERS; k++)
        if (MEMBERS[k].len == n && memcmp(MEMBERS[k].name, name, n) == 0) return k;
    return -1;
}

/* Python's `not ft or ft != ft.strip()`, decided on the bytes or declined. */
static int plain_type(Slice ft) {
    if (ft.start == NULL || ft.len == 0) return 0;
    unsigned char first = (unsigned char)ft.start[0], last = (unsigned char)ft.start[ft.len - 1];
    return first != ' ' && last != ' ' && first < 0x80 && last < 0x80;
}

/* One array element: an object whose read fields are strings or null, with a plain
 * failureType (so a batch of native envelopes is declined at its first item). */
static const char *item_end(Walk *w, const char *p, Item *it) {
    memset(it, 0, sizeof *it);
    if (p >= w->end || *p != '{') return NULL;
    it->raw.start = p;
    unsigned seen = 0;
    w->depth = 1;
    p = skip_ws(p + 1, w->end);
    if (p < w->end && *p == '}') {
        p++;
    } else {
        for (;;) {
            const char *close, *key = p;
            int escaped = 0;
            if ((p = member_value(w, p, &close, &escaped)) == NULL || escaped) return NULL;
            const char *name = key + 1; /* member_value found the quote at key */
            int k = member_of(name, (size_t)(close - name));
            if (k < 0 || k >= NFIELDS) { /* not read: walked over (if plain, for E_*) */
                if (k >= NFIELDS && *p != '"' && *p != 't' && *p != 'f' && *p != 'n')
                    return NULL;
                if ((p = value_end(w, p)) == NULL) return NULL;
            } else {
                if (seen & (1u << k)) return NULL; /* msgspec keeps the last; decline */
                seen |= 1u << k;
                if (*p == '"') {
                    const char *vclose = string_end(w, p, &escaped);
                    if (vclose == NULL || escaped) return NULL;
                    it->field[k].start = p + 1;
                    it->field[k].len = (size_t)(vclose - p - 1);
                    p = vclose + 1;
                } else if ((p = literal_end(w, p, "null", 4)) == NULL) {
                    return NULL;
                }
            }
            int more = next_item(&p, w->end, '}');
            if (more < 0) return NULL;
            if (!more) break;
        }
    }
    it->raw.len = (size_t)(p - it->raw.start);
    return plain_type(it->field[F_TYPE]) ? p : NULL;
}

/* Room for one more item; 0, or -1 when memory ran out (the items are freed). */
static int room(Item **items, Py_ssize_t count, Py_ssize_t *cap) {
    if (count < *cap) return 0;
    *cap = *cap ? *cap * 2 : 256;
    Item *grown = realloc(*items, (size_t)*cap * sizeof **items);
    if (grown == NULL) {
        free(*items);
        *items = NULL;
        return -1;
    }
    *items = grown;
    return 0;
}

/* `[` items `]`, JSON whitespace around. Returns the item count (> 0, at most `most`) with
 * *out a malloc'd array, 0 to decline, -1 when memory ran out. */
static Py_ssize_t array_items(const char *body, size_t n, Py_ssize_t most, Item **out) {
    Walk w = {body + n, 0};
    const char *p = skip_ws(body, w.end);
    Py_ssize_t count = 0, cap = 0;
    Item *items = NULL;
    if (p >= w.end || *p != '[') return 0;
    p = skip_ws(p + 1, w.end);
    for (;;) {
        if (count == most) { /* over the limit: Python counts them and says so */
            p = NULL;
            break;
        }
        if (room(&items, count, &cap) < 0) return -1;
        if ((p = item_end(&w, p, &items[count])) == NULL) break;
        count++;
        int more = next_item(&p, w.end, ']');
        if (more < 0) {
            p = NULL;
            break;
        }
        if (!more) break;
    }
    if (p == NULL || skip_ws(p, w.end) != w.end) {
        free(items);
        return 0;
    }
    *out = items;
    return count;
}

/* What Python's bytes.strip() removes. */
static int py_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\x0b' || c == '\x0c';
}

/* NDJSON: an object on each line, blank lines skipped; an item's bytes are its line
 * stripped, as rqs.domain.events._split_ndjson takes them. Returns as array_items. */
static Py_ssize_t ndjson_items(const char *body, size_t n, Py_ssize_t most, Item **out) {
    const char *p = body, *end = body + n;
    Py_ssize_t count = 0, cap = 0;
    Item *items = NULL;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *a = p, *b = nl ? nl : end;
        p = nl ? nl + 1 : end;
        while (a < b && py_space(*a)) a++;
        while (b > a && py_space(b[-1])) b--;
        if (a == b) continue;
        if (count == most) {
            free(items);
            return 0;
        }
        if (room(&items, count, &cap) < 0) return -1;
        Walk w = {b, 0}; /* the object must end where its line does */
        if (item_end(&w, a, &items[count]) != b) {
            free(items);
            return 0;
        }
        count++;
    }
    *out = items; /* NULL when there was no item: it is allocated for one */
    return count;
}

static PyObject *text_of(Slice s) {
    if (s.start == NULL) Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s.start, (Py_ssize_t)s.len, NULL);
}

/* A batch's distinct failureTypes, resolved once: the canonical type and its channel. */
#define TYPE_CACHE 64

typedef struct {
    Slice name;
    PyObject *type, *channel;
} Known;

typedef struct {
    PyObject *aliases, *channels, *channel_of;
    Known known[TYPE_CACHE];
    int n;
} Types;

/* New references to the item's type and channel in *type and *channel; -1 on error. */
static int resolve(Types *t, const Item *it, PyObject **type, PyObject **channel) {
    Slice ft = it->field[F_TYPE];
    for (int i = 0; i < t->n; i++) {
        if (t->known[i].name.len == ft.len && memcmp(t->known[i].name.start, ft.start, ft.len) == 0) {
            *type = Py_NewRef(t->known[i].type);
            *channel = Py_NewRef(t->known[i].channel);
            return 0;
        }
    }
    PyObject *given = text_of(ft);
    if (given == NULL) return -1;
    PyObject *canonical = PyDict_GetItemWithError(t->aliases, given);
    if (canonical == NULL && PyErr_Occurred()) goto fail;
    *type = Py_NewRef(canonical ? canonical : given);
    Py_DECREF(given);
    PyObject *found = PyDict_GetItemWithError(t->channels, *type);
    if (found != NULL) {
        *channel = Py_NewRef(found);
        if (t->n < TYPE_CACHE) { /* only catalogued types: others depend on channelType */
            t->known[t->n++] = (Known){ft, Py_NewRef(*type), Py_NewRef(found)};
        }
        return 0;
    }
    if (PyErr_Occurred()) {
        Py_DECREF(*type);
        return -1;
    }
    PyObject *declared = text_of(it->field[F_CHANNEL]);
    if (declared == NULL) {
        Py_DECREF(*type);
        return -1;
    }
    *channel = PyObject_CallFunctionObjArgs(t->channel_of, *type, declared, NULL);
    Py_DECREF(declared);
    if (*channel != NULL && !PyUnicode_Check(*channel)) {
        PyErr_Format(PyExc_TypeError, "channel_of returned %.50s, not str",
                     Py_TYPE(*channel)->tp_name);
        Py_CLEAR(*channel);
    }
    if (*channel == NULL) {
        Py_DECREF(*type);
        return -1;
    }
    return 0;
fail:
    Py_DECREF(given);
    return -1;
}

/* --- the items as msgpack: each one NewEvent's array (type, channel, payload, ext_id,
 * occurred_at, campaign_id, campaign_name, riid, customer_id, recipient, message), the
 * bytes msgspec would encode a list of NewEvents to (tests/test_split_native.py) ------ */

static const int PACKED_FIELDS[] = {F_CAMPAIGN_ID, F_CAMPAIGN_NAME, F_RIID, F_CUSTOMER_ID,
                                    F_RECIPIENT, F_MESSAGE};

static size_t head_len(size_t n, size_t tiny) { /* str or bin header, smallest form */
    return n < tiny ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5;
}

static size_t str_len(size_t n) { return head_len(n, 32) + n; }

static size_t item_len(const Item *it, const Slice *type, const Slice *channel) {
    size_t n = 1 + str_len(type->len) + str_len(channel->len) + head_len(it->raw.len, 0) +
               it->raw.len + 2;
    for (int i = 0; i < 6; i++) {
        Slice f = it->field[PACKED_FIELDS[i]];
        n += f.start == NULL ? 1 : str_len(f.len);
    }
    return n;
}

static unsigned char *put_be(unsigned char *q, size_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; i--) *q++ = (unsigned char)(v >> (8 * i));
    return q;
}

/* A str (bin: 0) or bin (bin: 1) header and its bytes. */
static unsigned char *put_data(unsigned char *q, const char *s, size_t n, int bin) {
    if (!bin && n < 32) {
        *q++ = (unsigned char)(0xa0 | n);
    } else if (n < 256) {
        *q++ = bin ? 0xc4 : 0xd9;
        *q++ = (unsigned char)n;
    } else if (n < 65536) {
        *q++ = bin ? 0xc5 : 0xda;
        q = put_be(q, n, 2);
    } else {
        *q++ = bin ? 0xc6 : 0xdb;
        q = put_be(q, n, 4);
    }
    if (n) memcpy(q, s, n);
    return q + n;
}

static unsigned char *put_item(unsigned char *q, const Item *it, const Slice *type,
                               const Slice *channel) {
    *q++ = 0x90 | 11;
    q = put_data(q, type->start, type->len, 0);
    q = put_data(q, channel->start, channel->len, 0);
    q = put_data(q, it->raw.start, it->raw.len, 1);
    *q++ = 0xc0; /* ext_id */
    *q++ = 0xc0; /* occurred_at */
    for (int i = 0; i < 6; i++) {
        Slice f = it->field[PACKED_FIELDS[i]];
        if (f.start == NULL) {
            *q++ = 0xc0;
        } else {
            q = put_data(q, f.start, f.len, 0);
        }
    }
    return q;
}

static int utf8_slice(PyObject *text, Slice *out) {
    Py_ssize_t n;
    out->start = PyUnicode_AsUTF8AndSize(text, &n);
    out->len = (size_t)n;
    return out->start == NULL ? -1 : 0;
}

/* The msgpack of every item; the type and channel of each are resolved (with the GIL)
 * into types and channels (lists). */
static PyObject *pack_items(Types *t, const Item *items, Py_ssize_t count, PyObject *types,
                            PyObject *channels) {
    Slice *names = PyMem_Malloc(sizeof(Slice) * 2 * (size_t)count);
    if (names == NULL) return PyErr_NoMemory();
    PyObject *blob = NULL;
    size_t size = count < 16 ? 1 : count < 65536 ? 3 : 5;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *type, *channel;
        if (resolve(t, &items[i], &type, &channel) < 0) goto done;
        PyList_SET_ITEM(types, i, type);
        PyList_SET_ITEM(channels, i, channel);
        if (utf8_slice(type, &names[2 * i]) < 0 || utf8_slice(channel, &names[2 * i + 1]) < 0)
            goto done;
        size += item_len(&items[i], &names[2 * i], &names[2 * i + 1]);
    }
    if ((blob = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size)) == NULL) goto done;
    unsigned char *q = (unsigned char *)PyBytes_AS_STRING(blob);
    /* The names point into str objects the lists hold; the body is bytes (immutable). */
    Py_BEGIN_ALLOW_THREADS
    if (count < 16) {
        *q++ = (unsigned char)(0x90 | count);
    } else if (count < 65536) {
        *q++ = 0xdc;
        q = put_be(q, (size_t)count, 2);
    } else {
        *q++ = 0xdd;
        q = put_be(q, (size_t)count, 4);
    }
    for (Py_ssize_t i = 0; i < count; i++)
        q = put_item(q, &items[i], &names[2 * i], &names[2 * i + 1]);
    Py_END_ALLOW_THREADS
done:
    PyMem_Free(names);
    return blob;
}

const char rqs_pack_responsys_doc[] =
    "pack_responsys(body, ndjson, max_items, aliases, channels, channel_of, /)\n\n"
    "A JSON array (or NDJSON) of Responsys payloads as (packed, types, channels): packed\n"
    "is the msgpack of the list of NewEvent(type, channel, payload, None, None, campaignId,\n"
    "campaignName, riid, customerId, recipient, inboundMessage) they make, types and\n"
    "channels each event's type and channel. None to decline (also past max_items).\n"
    "aliases maps given to canonical type names, channels canonical names to channels;\n"
    "channel_of(type, channelType) gives the channel of an uncatalogued type.";

PyObject *rqs_pack_responsys(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *body; /* bytes, not any buffer: it is read without the GIL, and must not change */
    Types t = {.n = 0};
    int ndjson;
    Py_ssize_t most;
    if (!PyArg_ParseTuple(args, "SpnO!O!O", &body, &ndjson, &most, &PyDict_Type, &t.aliases,
                          &PyDict_Type, &t.channels, &t.channel_of))
        return NULL;
    const char *data = PyBytes_AS_STRING(body);
    size_t size = (size_t)PyBytes_GET_SIZE(body);
    Item *items = NULL;
    Py_ssize_t count;
    Py_BEGIN_ALLOW_THREADS
    count = ndjson ? ndjson_items(data, size, most, &items)
                   : array_items(data, size, most, &items);
    Py_END_ALLOW_THREADS
    PyObject *out = NULL, *types = NULL, *channels = NULL, *packed = NULL;
    if (count < 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (count == 0) {
        out = Py_NewRef(Py_None);
        goto done;
    }
    if ((types = PyList_New(count)) == NULL || (channels = PyList_New(count)) == NULL)
        goto done;
    if ((packed = pack_items(&t, items, count, types, channels)) == NULL) goto done;
    out = PyTuple_Pack(3, packed, types, channels);
done:
    Py_XDECREF(packed);
    Py_XDECREF(types);
    Py_XDECREF(channels);
    for (int i = 0; i < t.n; i++) {
        Py_DECREF(t.known[i].type);
        Py_DECREF(t.known[i].channel);
    }
    free(items);
    return out;
}
