/* Output buffers, kept per thread between calls; the attribute names. */
#include "speedups.h"

int rqs_buf_grow(Buf *b, size_t n) {
    if (b->fixed) return NOMEM;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL) return NOMEM;
    b->data = d;
    b->cap = cap;
    return OK;
}

/* Each thread keeps its output buffer between calls: a fresh one per call cost page faults
 * and regrowth copies for every chunk. Anything larger than this is given back. */
#define KEEP_BYTES (16u << 20)
static _Thread_local Buf kept;

Buf rqs_buf_take(size_t want) {
    Buf b = kept;
    kept.data = NULL;
    kept.cap = 0;
    b.len = 0;
    /* Never NULL past here unless memory ran out: a failure leaves a buffer that grows. */
    if (b.cap < want || b.data == NULL) rqs_buf_grow(&b, want ? want : 1);
    return b;
}

void rqs_buf_give_back(Buf *b) {
    if (b->cap > KEEP_BYTES || kept.data != NULL) {
        free(b->data);
    } else {
        kept = *b;
    }
    b->data = NULL;
}


PyObject *s_payload, *s_type, *s_channel, *s_received_at, *s_ext_id, *s_occurred_at,
    *s_index, *s_campaign_id, *s_campaign_name, *s_riid, *s_customer_id, *s_recipient,
    *s_message;

int rqs_intern_names(void) {
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
        if ((*names[i].slot = PyUnicode_InternFromString(names[i].text)) == NULL) return -1;
    return 0;
}
