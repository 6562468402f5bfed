/*
 * StoredEvents straight from a libpq result (the PostgreSQL store's scans).
 *
 * psycopg turns every value of a row into a Python object and the row into a tuple, and
 * the store then turned the tuple into a StoredEvent: over HTTP, a one-type read spent a
 * quarter of the rqs process's GIL time there (py-spy --gil). Here each row becomes its
 * StoredEvent directly, and the type and channel strings, which repeat, are made once.
 *
 * The wait for each chunk and libpq's parsing of it run without the GIL. libpq may call
 * the connection's notice receiver meanwhile; psycopg's takes the GIL itself (`with gil`).
 *
 * libpq is not linked: the store passes the addresses of the functions below, taken
 * from the libpq that psycopg itself loaded (a PGresult may only be read by the library
 * that made it). Without them the store reads rows through psycopg as before.
 */
#include "speedups.h"

#include <errno.h>
#include <poll.h>

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;
typedef unsigned int Oid;

static int (*pq_ntuples)(const PGresult *);
static int (*pq_nfields)(const PGresult *);
static Oid (*pq_ftype)(const PGresult *, int);
static int (*pq_fformat)(const PGresult *, int);
static char *(*pq_getvalue)(const PGresult *, int, int);
static int (*pq_getlength)(const PGresult *, int, int);
static int (*pq_getisnull)(const PGresult *, int, int);
static int (*pq_consume_input)(PGconn *);
static int (*pq_is_busy)(PGconn *);
static PGresult *(*pq_get_result)(PGconn *);
static void (*pq_clear)(PGresult *);
static int (*pq_result_status)(const PGresult *);
static char *(*pq_result_error_field)(const PGresult *, int);
static char *(*pq_result_error_message)(const PGresult *);
static char *(*pq_error_message)(const PGconn *);
static int (*pq_socket)(const PGconn *);

#define NFUNCTIONS 16
/* ExecStatusType values and the SQLSTATE field code (libpq-fe.h, postgres_ext.h) */
enum { PGRES_TUPLES_OK = 2, PGRES_FATAL_ERROR = 7, PGRES_SINGLE_TUPLE = 9,
       PGRES_TUPLES_CHUNK = 12 };
#define PG_DIAG_SQLSTATE 'C'
#define PG_DIAG_MESSAGE_PRIMARY 'M'

enum { INT8OID = 20, TEXTOID = 25, BYTEAOID = 17, VARCHAROID = 1043 };
enum { C_INDEX, C_TYPE, C_CHANNEL, C_RECEIVED, C_PAYLOAD, C_EXT_ID, C_OCCURRED, NCOLS };

/* The scans' column list (storage/postgres/sql.py EVENT_COLUMNS), read in binary. */
static const Oid expected[NCOLS] = {INT8OID, TEXTOID, TEXTOID, INT8OID,
                                    BYTEAOID, TEXTOID, INT8OID};

const char rqs_bind_libpq_doc[] =
"bind_libpq(addresses, /)\n--\n\n"
"The addresses of PQntuples, PQnfields, PQftype, PQfformat, PQgetvalue, PQgetlength,\n"
"PQgetisnull, PQconsumeInput, PQisBusy, PQgetResult, PQclear, PQresultStatus,\n"
"PQresultErrorField, PQresultErrorMessage, PQerrorMessage and PQsocket, in that order, from\n"
"the libpq that made the connections given to pg_fetch.";

PyObject *rqs_bind_libpq(PyObject *self, PyObject *seq) {
    (void)self;
    void *found[NFUNCTIONS];
    PyObject *items = PySequence_Tuple(seq);
    if (items == NULL) return NULL;
    if (PyTuple_GET_SIZE(items) != NFUNCTIONS) {
        Py_DECREF(items);
        PyErr_Format(PyExc_ValueError, "bind_libpq needs %d addresses", NFUNCTIONS);
        return NULL;
    }
    for (int i = 0; i < NFUNCTIONS; i++) {
        found[i] = PyLong_AsVoidPtr(PyTuple_GET_ITEM(items, i));
        if (found[i] == NULL) {
            Py_DECREF(items);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a NULL address");
            return NULL;
        }
    }
    Py_DECREF(items);
    pq_ntuples = (int (*)(const PGresult *))found[0];
    pq_nfields = (int (*)(const PGresult *))found[1];
    pq_ftype = (Oid (*)(const PGresult *, int))found[2];
    pq_fformat = (int (*)(const PGresult *, int))found[3];
    pq_getvalue = (char *(*)(const PGresult *, int, int))found[4];
    pq_getlength = (int (*)(const PGresult *, int, int))found[5];
    pq_getisnull = (int (*)(const PGresult *, int, int))found[6];
    pq_consume_input = (int (*)(PGconn *))found[7];
    pq_is_busy = (int (*)(PGconn *))found[8];
    pq_get_result = (PGresult * (*)(PGconn *)) found[9];
    pq_clear = (void (*)(PGresult *))found[10];
    pq_result_status = (int (*)(const PGresult *))found[11];
    pq_result_error_field = (char *(*)(const PGresult *, int))found[12];
    pq_result_error_message = (char *(*)(const PGresult *))found[13];
    pq_error_message = (char *(*)(const PGconn *))found[14];
    pq_socket = (int (*)(const PGconn *))found[15];
    Py_RETURN_NONE;
}

static int64_t int8_at(const PGresult *r, int row, int col) {
    const unsigned char *p = (const unsigned char *)pq_getvalue(r, row, col);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return (int64_t)v;
}

/* A short memo of the strings made for a column: types and channels repeat. */
#define MEMO 32
typedef struct {
    int used;
    int len[MEMO];
    const char *utf8[MEMO]; /* points into the str, which the memo holds */
    PyObject *str[MEMO];
} Memo;

static PyObject *memo_text(Memo *m, const char *s, int n) {
    for (int i = 0; i < m->used; i++)
        if (m->len[i] == n && memcmp(m->utf8[i], s, (size_t)n) == 0)
            return Py_NewRef(m->str[i]);
    PyObject *str = PyUnicode_DecodeUTF8(s, n, "strict");
    if (str == NULL || m->used == MEMO) return str;
    Py_ssize_t len;
    const char *utf8 = PyUnicode_AsUTF8AndSize(str, &len);
    if (utf8 == NULL) {
        Py_DECREF(str);
        return NULL;
    }
    m->len[m->used] = n;
    m->utf8[m->used] = utf8;
    m->str[m->used++] = Py_NewRef(str);
    return str;
}

static void memo_clear(Memo *m) {
    for (int i = 0; i < m->used; i++) Py_DECREF(m->str[i]);
    m->used = 0;
}

static int check_columns(const PGresult *r) {
    if (pq_nfields(r) != NCOLS) {
        PyErr_Format(PyExc_ValueError, "pg_fetch: %d columns, expected %d", pq_nfields(r),
                     NCOLS);
        return -1;
    }
    for (int c = 0; c < NCOLS; c++) {
        Oid t = pq_ftype(r, c);
        int text = expected[c] == TEXTOID && t == VARCHAROID;
        if ((t != expected[c] && !text) || pq_fformat(r, c) != 1) {
            PyErr_Format(PyExc_ValueError, "pg_fetch: column %d is type %u format %d", c,
                         t, pq_fformat(r, c));
            return -1;
        }
    }
    return 0;
}

/* One row's StoredEvent; NULL with an exception set. */
static PyObject *row_event(const PGresult *r, int row, PyObject *cls, PyObject *domain,
                           Memo *types, Memo *channels) {
    PyObject *args[8] = {domain, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    PyObject *event = NULL;
    for (int c = 0; c < NCOLS; c++) {
        if (pq_getisnull(r, row, c)) {
            if (c == C_EXT_ID || c == C_OCCURRED) continue;
            PyErr_Format(PyExc_ValueError, "pg_fetch: column %d is NULL", c);
            goto done;
        }
        if (expected[c] == INT8OID && pq_getlength(r, row, c) != 8) {
            PyErr_Format(PyExc_ValueError, "pg_fetch: column %d is not an int8", c);
            goto done;
        }
    }
    const char *v;
    int n;
    if (!(args[1 + C_INDEX] = PyLong_FromLongLong(int8_at(r, row, C_INDEX)))) goto done;
    v = pq_getvalue(r, row, C_TYPE);
    if (!(args[1 + C_TYPE] = memo_text(types, v, pq_getlength(r, row, C_TYPE)))) goto done;
    v = pq_getvalue(r, row, C_CHANNEL);
    n = pq_getlength(r, row, C_CHANNEL);
    if (!(args[1 + C_CHANNEL] = memo_text(channels, v, n))) goto done;
    if (!(args[1 + C_RECEIVED] = PyLong_FromLongLong(int8_at(r, row, C_RECEIVED)))) goto done;
    v = pq_getvalue(r, row, C_PAYLOAD);
    n = pq_getlength(r, row, C_PAYLOAD);
    if (!(args[1 + C_PAYLOAD] = PyBytes_FromStringAndSize(v, n))) goto done;
    if (pq_getisnull(r, row, C_EXT_ID)) {
        args[1 + C_EXT_ID] = Py_NewRef(Py_None);
    } else {
        v = pq_getvalue(r, row, C_EXT_ID);
        n = pq_getlength(r, row, C_EXT_ID);
        if (!(args[1 + C_EXT_ID] = PyUnicode_DecodeUTF8(v, n, "strict"))) goto done;
    }
    if (pq_getisnull(r, row, C_OCCURRED)) {
        args[1 + C_OCCURRED] = Py_NewRef(Py_None);
    } else if (!(args[1 + C_OCCURRED] = PyLong_FromLongLong(int8_at(r, row, C_OCCURRED)))) {
        goto done;
    }
    event = PyObject_Vectorcall(cls, args, 8, NULL);
done:
    for (int i = 1; i < 8; i++) Py_XDECREF(args[i]);
    return event;
}

/* The rows of r as a list of cls(...). */
static PyObject *events_of(const PGresult *r, PyObject *domain, PyObject *cls) {
    int rows = pq_ntuples(r);
    if (rows == 0) return PyList_New(0);
    if (check_columns(r) < 0) return NULL;
    PyObject *out = PyList_New(rows);
    if (out == NULL) return NULL;
    Memo types = {0}, channels = {0};
    for (int i = 0; i < rows; i++) {
        PyObject *event = row_event(r, i, cls, domain, &types, &channels);
        if (event == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, event);
    }
    memo_clear(&types);
    memo_clear(&channels);
    return out;
}

/* Waits for and reads the connection's next result, without the GIL. NULL with *broken
 * set when the connection failed; NULL alone when the query has no more results. */
static PGresult *next_result(PGconn *conn, int *broken) {
    PGresult *r = NULL;
    *broken = 0;
    Py_BEGIN_ALLOW_THREADS
    if (!pq_consume_input(conn)) {
        *broken = 1;
    } else {
        while (pq_is_busy(conn)) {
            struct pollfd fd = {pq_socket(conn), POLLIN, 0};
            if (fd.fd < 0 || (poll(&fd, 1, -1) < 0 && errno != EINTR) ||
                !pq_consume_input(conn)) {
                *broken = 1;
                break;
            }
        }
        if (!*broken) r = pq_get_result(conn);
    }
    Py_END_ALLOW_THREADS
    return r;
}

const char rqs_pg_fetch_doc[] =
"pg_fetch(pgconn, domain, cls, /)\n--\n\n"
"The next result of the query sent on a PGconn (its address, psycopg's\n"
"PGconn.pgconn_ptr), waited for and read without the GIL: its rows as a list of\n"
"cls(domain, index, type, channel, received_at, payload, ext_id, occurred_at) (the scan\n"
"columns, in binary); None once the query has no more results; (sqlstate, message) as\n"
"bytes when the result is an error, the connection failed (sqlstate b'08006'), or the\n"
"result is neither rows nor an error (sqlstate None). bind_libpq must have been called.";

PyObject *rqs_pg_fetch(PyObject *self, PyObject *args) {
    PyObject *ptr, *domain, *cls;
    (void)self;
    if (!PyArg_ParseTuple(args, "OUO:pg_fetch", &ptr, &domain, &cls)) return NULL;
    if (pq_socket == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "pg_fetch: bind_libpq was not called");
        return NULL;
    }
    PGconn *conn = (PGconn *)PyLong_AsVoidPtr(ptr);
    if (conn == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "pg_fetch: a NULL PGconn");
        return NULL;
    }
    int broken;
    PGresult *r = next_result(conn, &broken);
    if (broken) return Py_BuildValue("(yy)", "08006", pq_error_message(conn));
    if (r == NULL) Py_RETURN_NONE;
    PyObject *out;
    int status = pq_result_status(r);
    if (status == PGRES_TUPLES_CHUNK || status == PGRES_TUPLES_OK ||
        status == PGRES_SINGLE_TUPLE) {
        out = events_of(r, domain, cls);
    } else if (status == PGRES_FATAL_ERROR) {
        const char *state = pq_result_error_field(r, PG_DIAG_SQLSTATE);
        const char *primary = pq_result_error_field(r, PG_DIAG_MESSAGE_PRIMARY);
        out = Py_BuildValue("(yy)", state, primary ? primary : pq_result_error_message(r));
    } else { /* not rows, not an error: nothing a scan sends can give that */
        out = Py_BuildValue("(yN)", NULL, PyBytes_FromFormat("unexpected result status %d",
                                                               status));
    }
    pq_clear(r);
    return out;
}
