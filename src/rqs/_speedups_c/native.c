/* Native event pages (GET /v1/events): event objects with the payloads spliced as stored. */
#include "speedups.h"

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

const char rqs_render_native_doc[] =
"render_native(events, ndjson, id_prefix, quote, time, /)\n--\n\n"
"StoredEvents as the native API's event objects, payloads spliced as stored: joined by\n"
"commas (the inside of a JSON array) or one per line. A missing ext_id becomes id_prefix\n"
"+ index; quote(text) gives the JSON literal of a text that needs escaping; time(micros)\n"
"the JSON literal of a time.";

PyObject *rqs_render_native(PyObject *self, PyObject *args) {
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
    out = rqs_buf_take(total);
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
    rqs_buf_give_back(&out);
    PyMem_Free(items);
    return result;
}

