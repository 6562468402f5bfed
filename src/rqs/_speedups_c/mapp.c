/* Mapp async results: the payload pairs alone (render_pairs), or whole events
 * (render_events) with what is rare or per type formatted by Python callbacks. */
#include "speedups.h"

const char rqs_render_pairs_doc[] =
"render_pairs(payloads, xml, /)\n--\n\n"
"The Mapp outputs of each stored JSON payload, rendered: for each a bytes object with\n"
"its pairs in the JSON (`,{\"name\":..,\"value\":..}` each) or XML (`<output>..</output>`\n"
"each) form, or None where the payload needs the Python path.";

PyObject *rqs_render_pairs(PyObject *self, PyObject *args) {
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
    out = rqs_buf_take(total * (xml ? 3 : 2));
    c->out = &out;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) {
        size_t before = out.len;
        int rc = rqs_render_one(c, starts[i], (size_t)sizes[i]);
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
    rqs_buf_give_back(&out);
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
    int rc = rqs_render_one(c, PyBytes_AS_STRING(it->payload), (size_t)PyBytes_GET_SIZE(it->payload));
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

const char rqs_render_events_doc[] =
"render_events(events, xml, head_a, head_b, head_c, tail, head, fixed, pairs, /)\n--\n\n"
"Whole async results of StoredEvents: head_a + index + head_b + index + head_c, then\n"
"fixed(event) (called once per type, channel and received_at), the payload's pairs, tail.\n"
"Events with an ext_id or occurred_at take head(event) for all that precedes the pairs;\n"
"payloads the C walk declines take pairs(payload).";

PyObject *rqs_render_events(PyObject *self, PyObject *args) {
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
    out = rqs_buf_take(total * (xml ? 3 : 2) + (size_t)count * 256);
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
    rqs_buf_give_back(&out);
    PyMem_Free(items);
    PyMem_Free(c);
    PyMem_Free(cache);
    return result;
}

