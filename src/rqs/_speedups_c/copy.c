/* PostgreSQL binary COPY rows (rqs.storage.postgres.binary_copy), byte for byte. */
#include "speedups.h"


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

const char rqs_copy_tails_doc[] =
"copy_tails(events, /)\n--\n\n"
"Per NewEvent, its binary COPY columns after (domain_id, idx, received_at), or None where\n"
"Python must encode it (a text with NUL or a lone surrogate).";

PyObject *rqs_copy_tails(PyObject *self, PyObject *seq) {
    (void)self;
    PyObject *events = PySequence_Tuple(seq);
    if (events == NULL) return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(events);
    PyObject *result = PyList_New(count);
    Buf b = rqs_buf_take(4096);
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
    rqs_buf_give_back(&b);
    Py_DECREF(events);
    return result;
}

const char rqs_copy_rows_doc[] =
"copy_rows(tails, positions, offsets, domain_id, first_index, received_at, /)\n--\n\n"
"Whole binary COPY rows, in the order of positions: for the n-th, the head (domain_id,\n"
"first_index + offsets[n], received_at) and tails[positions[n]].";

PyObject *rqs_copy_rows(PyObject *self, PyObject *args) {
    PyObject *tails_seq, *positions_seq, *offsets_seq;
    int domain_id;
    long long first_index, received_at;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOiLL:copy_rows", &tails_seq, &positions_seq, &offsets_seq,
                          &domain_id, &first_index, &received_at))
        return NULL;
    if (first_index < 0) {
        PyErr_SetString(PyExc_ValueError, "copy_rows: first_index must not be negative");
        return NULL;
    }
    PyObject *tails = PySequence_Tuple(tails_seq);
    if (tails == NULL) return NULL;
    PyObject *positions = PySequence_Tuple(positions_seq);
    PyObject *offsets = positions == NULL ? NULL : PySequence_Tuple(offsets_seq);
    PyObject *result = NULL;
    long long *index = NULL;
    if (offsets == NULL) goto done;
    Py_ssize_t count = PyTuple_GET_SIZE(positions), ntails = PyTuple_GET_SIZE(tails);
    if (PyTuple_GET_SIZE(offsets) != count) {
        PyErr_SetString(PyExc_ValueError, "copy_rows: positions and offsets differ in length");
        goto done;
    }
    index = PyMem_Malloc(sizeof(long long) * (size_t)(count ? count : 1));
    if (index == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    size_t total = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t pos = PyLong_AsSsize_t(PyTuple_GET_ITEM(positions, i));
        if (pos == -1 && PyErr_Occurred()) goto done;
        if (pos < 0 || pos >= ntails || !PyBytes_Check(PyTuple_GET_ITEM(tails, pos))) {
            PyErr_Format(PyExc_ValueError, "position %zd names no bytes tail", pos);
            goto done;
        }
        long long offset = PyLong_AsLongLong(PyTuple_GET_ITEM(offsets, i));
        if (offset == -1 && PyErr_Occurred()) goto done;
        if (offset < 0 || offset > LLONG_MAX - first_index) {
            PyErr_Format(PyExc_ValueError, "offset %lld is out of range", offset);
            goto done;
        }
        index[i] = first_index + offset;
        total += 34 + (size_t)PyBytes_GET_SIZE(PyTuple_GET_ITEM(tails, pos));
    }
    result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (result == NULL) goto done;
    Buf b = {PyBytes_AS_STRING(result), 0, total, 1};
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *tail = PyTuple_GET_ITEM(tails, PyLong_AsSsize_t(PyTuple_GET_ITEM(positions, i)));
        unsigned char *w = (unsigned char *)b.data + b.len;
        w[0] = 0;
        w[1] = 14; /* fields in a row */
        b.len += 2;
        put_be32(&b, 4);
        put_be32(&b, (uint32_t)domain_id);
        put_be32(&b, 8);
        put_be64(&b, (uint64_t)index[i]);
        put_be32(&b, 8);
        put_be64(&b, (uint64_t)received_at);
        memcpy(b.data + b.len, PyBytes_AS_STRING(tail), (size_t)PyBytes_GET_SIZE(tail));
        b.len += (size_t)PyBytes_GET_SIZE(tail);
    }
done:
    PyMem_Free(index);
    Py_XDECREF(offsets);
    Py_XDECREF(positions);
    Py_DECREF(tails);
    return result;
}
