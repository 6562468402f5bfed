/*
 * rqs._speedups: the C hot paths of rqs; every one has a Python twin that gives the same
 * bytes (rqs.speedups describes them; tests/test_speedups.py holds them equal).
 *
 * Mapp Engage outputs rendered straight from stored payload bytes (walk.c, mapp.c). A
 * Mapp poll returns every event as a flat list of name/value pairs, so each stored
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
 *
 * Native pages (native.c) splice the stored payloads between fields formatted in C; the
 * PostgreSQL store's binary COPY rows (copy.c) are encoded here as well, and ingest's
 * common batch, an array of Responsys payloads, is validated and split (split.c), and its
 * scans' rows become StoredEvents straight from libpq's results (pgrows.c).
 * Functions are exported with an rqs_ prefix and hidden (-fvisibility=hidden) but for the
 * init.
 */
#include "speedups.h"

static PyMethodDef methods[] = {
    {"render_pairs", rqs_render_pairs, METH_VARARGS, rqs_render_pairs_doc},
    {"render_events", rqs_render_events, METH_VARARGS, rqs_render_events_doc},
    {"render_native", rqs_render_native, METH_VARARGS, rqs_render_native_doc},
    {"copy_tails", rqs_copy_tails, METH_O, rqs_copy_tails_doc},
    {"copy_rows", rqs_copy_rows, METH_VARARGS, rqs_copy_rows_doc},
    {"pack_responsys", rqs_pack_responsys, METH_VARARGS, rqs_pack_responsys_doc},
    {"bind_libpq", rqs_bind_libpq, METH_O, rqs_bind_libpq_doc},
    {"pg_fetch", rqs_pg_fetch, METH_VARARGS, rqs_pg_fetch_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "rqs._speedups",
    "The C hot paths of rqs: Mapp and native page rendering, PostgreSQL COPY rows, "
    "splitting Responsys batches, StoredEvents from libpq results.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    if (rqs_intern_names() < 0) return NULL;
    return PyModule_Create(&module);
}
