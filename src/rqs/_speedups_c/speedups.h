/*
 * Shared by the parts of rqs._speedups (see module.c for what the module is for): the
 * output buffer, the result codes, the flattening walk's state, the attribute names.
 */
#ifndef RQS_SPEEDUPS_H
#define RQS_SPEEDUPS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 64
#define MAX_MEMBERS 256 /* per object; the duplicate check is quadratic */

enum { OK = 0, DECLINE = 1, NOMEM = -1 };

/* --- output buffers (buf.c) ----------------------------------------------------------- */

typedef struct {
    char *data;
    size_t len, cap;
    int fixed; /* data is not the buffer's own (a bytes object's): it must not grow */
} Buf;

int rqs_buf_grow(Buf *b, size_t n);
/* A buffer with room for `want` bytes, reusing this thread's from its last call. */
Buf rqs_buf_take(size_t want);
void rqs_buf_give_back(Buf *b);

static inline int buf_reserve(Buf *b, size_t n) {
    return b->len + n <= b->cap ? OK : rqs_buf_grow(b, n);
}

static inline int buf_put(Buf *b, const char *s, size_t n) {
    if (n == 0) return OK; /* memcpy may not be given a NULL buffer, even for 0 bytes */
    if (buf_reserve(b, n) != OK) return NOMEM;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return OK;
}

#define PUT(b, lit) buf_put((b), (lit), sizeof(lit) - 1)
#define TRY(expr)                  \
    do {                           \
        int rc_ = (expr);          \
        if (rc_ != OK) return rc_; \
    } while (0)

/* Decimal digits of i into buf (at least 21 bytes); returns their count. */
static inline int digits_of(long i, char *buf) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + i % 10);
        i /= 10;
    } while (i > 0);
    for (int k = 0; k < n; k++) buf[k] = tmp[n - 1 - k];
    return n;
}

/* --- the flattening walk (walk.c) ----------------------------------------------------- */

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

/* Renders one payload's pairs onto c->out; on DECLINE the caller drops what was written. */
int rqs_render_one(Ctx *c, const char *payload, size_t n);

/* --- attribute names, interned once (buf.c): building them per access (GetAttrString)
 * cost as much as the rest of an event's head ----------------------------------------- */

extern PyObject *s_payload, *s_type, *s_channel, *s_received_at, *s_ext_id, *s_occurred_at,
    *s_index, *s_campaign_id, *s_campaign_name, *s_riid, *s_customer_id, *s_recipient,
    *s_message;
int rqs_intern_names(void);
#define attr PyObject_GetAttr

/* --- the module's functions and their docstrings (mapp.c, native.c, copy.c, split.c,
 * pgrows.c) ------------------------------------------------------------------------- */

PyObject *rqs_render_pairs(PyObject *self, PyObject *args);
PyObject *rqs_render_events(PyObject *self, PyObject *args);
PyObject *rqs_render_native(PyObject *self, PyObject *args);
PyObject *rqs_copy_tails(PyObject *self, PyObject *seq);
PyObject *rqs_copy_rows(PyObject *self, PyObject *args);
PyObject *rqs_pack_responsys(PyObject *self, PyObject *args);
PyObject *rqs_bind_libpq(PyObject *self, PyObject *seq);
PyObject *rqs_pg_fetch(PyObject *self, PyObject *args);
extern const char rqs_render_pairs_doc[], rqs_render_events_doc[], rqs_render_native_doc[],
    rqs_copy_tails_doc[], rqs_copy_rows_doc[], rqs_pack_responsys_doc[],
    rqs_bind_libpq_doc[], rqs_pg_fetch_doc[];

#endif
