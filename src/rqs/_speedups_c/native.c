/* Native event pages (GET /v1/events): event objects with the payloads spliced as stored. */
#include "speedups.h"

#ifndef Py_T_OBJECT_EX /* named so from 3.12 on */
#include <structmember.h>
#endif
#ifndef Py_T_OBJECT_EX
#define Py_T_OBJECT_EX T_OBJECT_EX
#endif

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
    char digits[24];   /* the index */
    int nd;
    int comma;         /* a comma before it: not the first of a JSON page, or continued */
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

/* Where a type keeps the fields read here, when they are plain object slots (member
 * descriptors, as msgspec Structs have): read from the object directly. Looking each one
 * up by name (PyObject_GetAttr) was a fifth of the rendering thread's time (perf). */
enum { F_PAYLOAD, F_INDEX, F_EXT_ID, F_TYPE, F_CHANNEL, F_RECEIVED, F_OCCURRED, NFIELDS };

typedef struct {
    PyTypeObject *type; /* owned; NULL: none known */
    Py_ssize_t offset[NFIELDS];
} Slots;

static Slots known; /* the last type seen (StoredEvent); only touched holding the GIL */

/* Into *out, the slots of tp, if every field is a plain slot of tp's own layout and tp
 * looks attributes up the ordinary way (no __getattribute__ or __getattr__ to bypass).
 * A copy: Python code run later in the same call (a fallback getattr) may replace the
 * cached type. */
static int slots_of(PyTypeObject *tp, Slots *out) {
    if (tp->tp_getattro != PyObject_GenericGetAttr) return 0;
    if (known.type == tp) {
        *out = known;
        return 1;
    }
    PyObject *names[NFIELDS] = {s_payload, s_index, s_ext_id, s_type, s_channel,
                                s_received_at, s_occurred_at};
    Py_ssize_t offset[NFIELDS];
    for (int i = 0; i < NFIELDS; i++) {
        PyObject *d = PyObject_GetAttr((PyObject *)tp, names[i]);
        if (d == NULL) {
            PyErr_Clear();
            return 0;
        }
        /* A descriptor of tp or a base: another class's would give another layout's
         * offsets (getattr refuses those with a TypeError). */
        int plain = Py_IS_TYPE(d, &PyMemberDescr_Type) &&
                    PyType_IsSubtype(tp, PyDescr_TYPE(d)) &&
                    ((PyMemberDescrObject *)d)->d_member->type == Py_T_OBJECT_EX;
        if (plain) offset[i] = ((PyMemberDescrObject *)d)->d_member->offset;
        Py_DECREF(d);
        if (!plain) return 0;
    }
    Py_XSETREF(known.type, (PyTypeObject *)Py_NewRef(tp));
    memcpy(known.offset, offset, sizeof offset);
    *out = known;
    return 1;
}

/* A field's value (a new reference): from its slot when the type is known, else by name
 * (which also raises the AttributeError of an unset slot). */
static PyObject *field(PyObject *event, const Slots *slots, int i, PyObject *name) {
    if (slots != NULL) {
        PyObject *v = *(PyObject **)((char *)event + slots->offset[i]);
        if (v != NULL) return Py_NewRef(v);
    }
    return attr(event, name);
}

static int native_gather(NativeItem *it, PyObject *event, PyObject *quote_cb,
                         PyObject *time_cb, TimeMemo *memo) {
    PyObject *index = NULL, *ext_id = NULL, *type = NULL, *channel = NULL, *received = NULL,
             *occurred = NULL, *lit;
    int rc = -1;
    Slots found;
    const Slots *sl = slots_of(Py_TYPE(event), &found) ? &found : NULL;
    if (!(it->payload = field(event, sl, F_PAYLOAD, s_payload)) ||
        !(index = field(event, sl, F_INDEX, s_index)) ||
        !(ext_id = field(event, sl, F_EXT_ID, s_ext_id)) ||
        !(type = field(event, sl, F_TYPE, s_type)) ||
        !(channel = field(event, sl, F_CHANNEL, s_channel)) ||
        !(received = field(event, sl, F_RECEIVED, s_received_at)) ||
        !(occurred = field(event, sl, F_OCCURRED, s_occurred_at)))
        goto done;
    if (!PyBytes_Check(it->payload) || !PyUnicode_Check(type) || !PyUnicode_Check(channel) ||
        (ext_id != Py_None && !PyUnicode_Check(ext_id))) {
        PyErr_SetString(PyExc_TypeError, "events must be StoredEvent");
        goto done;
    }
    long long i = PyLong_AsLongLong(index);
    if (i == -1 && PyErr_Occurred()) goto done;
    it->nd = digits_of(i < 0 ? 0 : (long)i, it->digits);
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

#define LIT(s) (sizeof(s) - 1)
#define K_INDEX "{\"index\":"
#define K_ID ",\"id\":"
#define K_TYPE ",\"type\":"
#define K_CHANNEL ",\"channel\":"
#define K_RECEIVED ",\"received_at\":"
#define K_OCCURRED ",\"occurred_at\":"
#define K_PAYLOAD ",\"payload\":"

static size_t piece_size(const Piece *p) { return (size_t)p->n + (p->quoted ? 0 : 2); }

/* What native_write writes for the item, exactly: the page is written straight into a bytes
 * object of the sum. */
static size_t native_size(const NativeItem *it, size_t nprefix, int ndjson) {
    size_t nd = (size_t)it->nd;
    return (size_t)it->comma + LIT(K_INDEX) + nd + LIT(K_ID) +
           (it->id.owner != NULL ? piece_size(&it->id) : nprefix + nd + 2) + LIT(K_TYPE) +
           piece_size(&it->type) + LIT(K_CHANNEL) + piece_size(&it->channel) +
           LIT(K_RECEIVED) + piece_size(&it->received) + LIT(K_OCCURRED) +
           (it->occurred.owner != NULL ? piece_size(&it->occurred) : LIT("null")) +
           LIT(K_PAYLOAD) + (size_t)PyBytes_GET_SIZE(it->payload) + (ndjson ? 2 : 1);
}

static int native_write(Buf *out, const NativeItem *it, const char *prefix, size_t nprefix,
                        int ndjson) {
    if (it->comma) TRY(PUT(out, ","));
    TRY(PUT(out, K_INDEX));
    TRY(buf_put(out, it->digits, (size_t)it->nd));
    TRY(PUT(out, K_ID));
    if (it->id.owner != NULL) {
        TRY(put_piece(out, &it->id));
    } else {
        TRY(PUT(out, "\""));
        TRY(buf_put(out, prefix, nprefix));
        TRY(buf_put(out, it->digits, (size_t)it->nd));
        TRY(PUT(out, "\""));
    }
    TRY(PUT(out, K_TYPE));
    TRY(put_piece(out, &it->type));
    TRY(PUT(out, K_CHANNEL));
    TRY(put_piece(out, &it->channel));
    TRY(PUT(out, K_RECEIVED));
    TRY(put_piece(out, &it->received));
    TRY(PUT(out, K_OCCURRED));
    if (it->occurred.owner != NULL) {
        TRY(put_piece(out, &it->occurred));
    } else {
        TRY(PUT(out, "null"));
    }
    TRY(PUT(out, K_PAYLOAD));
    TRY(buf_put(out, PyBytes_AS_STRING(it->payload), (size_t)PyBytes_GET_SIZE(it->payload)));
    return ndjson ? PUT(out, "}\n") : PUT(out, "}");
}

const char rqs_render_native_doc[] =
"render_native(events, ndjson, id_prefix, quote, time, continued, /)\n--\n\n"
"StoredEvents as the native API's event objects, payloads spliced as stored: joined by\n"
"commas (the inside of a JSON array; continued: a comma before the first too, as this\n"
"page follows others) or one per line. A missing ext_id becomes id_prefix + index;\n"
"quote(text) gives the JSON literal of a text that needs escaping; time(micros) the JSON\n"
"literal of a time.";

PyObject *rqs_render_native(PyObject *self, PyObject *args) {
    PyObject *seq, *quote_cb, *time_cb;
    const char *prefix;
    Py_ssize_t nprefix;
    int ndjson, continued;
    (void)self;
    if (!PyArg_ParseTuple(args, "Opy#OOp:render_native", &seq, &ndjson, &prefix, &nprefix,
                          &quote_cb, &time_cb, &continued))
        return NULL;
    PyObject *events = PySequence_Tuple(seq);
    if (events == NULL) return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(events), gathered = 0;
    NativeItem *items = PyMem_Calloc((size_t)count + 1, sizeof(NativeItem));
    TimeMemo memo = {0, NULL};
    PyObject *result = NULL;
    int rc = OK;
    size_t total = 0;
    if (items == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; gathered < count; gathered++) {
        NativeItem *it = &items[gathered];
        if (native_gather(it, PyTuple_GET_ITEM(events, gathered), quote_cb, time_cb,
                          &memo) < 0) {
            gathered++;
            goto done;
        }
        it->comma = !ndjson && (gathered > 0 || continued);
        total += native_size(it, (size_t)nprefix, ndjson);
    }
    result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (result == NULL) goto done;
    /* Written in place: no copy of the page, and its first touch of fresh memory (page
     * faults) happens here, without the GIL. */
    Buf out = {PyBytes_AS_STRING(result), 0, total, 1};
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count && rc == OK; i++)
        rc = native_write(&out, &items[i], prefix, (size_t)nprefix, ndjson);
    Py_END_ALLOW_THREADS
    if (rc != OK || out.len != total) {
        Py_CLEAR(result);
        PyErr_SetString(PyExc_SystemError, "render_native: the page's size was miscounted");
    }
done:
    if (items != NULL) native_release(items, gathered);
    Py_XDECREF(memo.literal);
    Py_DECREF(events);
    PyMem_Free(items);
    return result;
}
