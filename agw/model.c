/* Contexts and terminations: the gateway's H.248 connection model, owned by the control loop. */
#include "agw/agw.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static size_t pow2_at_least(size_t n)
{
    size_t c = 64;
    while (c < n)
        c *= 2;
    return c;
}

int agw_model_init(struct agw_model *m, struct agw_realm *realms, unsigned n_realms,
                   unsigned default_realm, unsigned max_contexts, unsigned max_terms_per_context,
                   unsigned workers)
{
    memset(m, 0, sizeof(*m));
    m->realms = realms;
    m->n_realms = n_realms;
    m->default_realm = default_realm;
    m->max_contexts = max_contexts;
    m->max_terms_per_context = max_terms_per_context > AGW_MAX_TERMS_PER_CONTEXT
                                   ? AGW_MAX_TERMS_PER_CONTEXT
                                   : max_terms_per_context;
    m->workers = workers == 0 ? 1 : workers;
    m->next_context_id = 1;
    m->next_term_key = 1;
    /* Load factor at most 1/2 at the configured maxima. */
    m->ctx_cap = pow2_at_least((size_t)max_contexts * 2);
    m->term_cap = pow2_at_least((size_t)max_contexts * m->max_terms_per_context * 2);
    if (m->term_cap > (1u << 24))
        m->term_cap = 1u << 24;
    m->ctx_slots = calloc(m->ctx_cap, sizeof(*m->ctx_slots));
    m->term_slots = calloc(m->term_cap, sizeof(*m->term_slots));
    if (m->ctx_slots == NULL || m->term_slots == NULL) {
        free(m->ctx_slots);
        free(m->term_slots);
        return -ENOMEM;
    }
    return 0;
}

void agw_model_fini(struct agw_model *m)
{
    for (size_t i = 0; i < m->ctx_cap; i++) {
        struct agw_context *c = m->ctx_slots[i];
        if (c == NULL || c == (void *)m)
            continue;
        for (unsigned k = 0; k < c->n_terms; k++)
            agw_model_term_free(c->terms[k]);
        free(c);
    }
    free(m->ctx_slots);
    free(m->term_slots);
    memset(m, 0, sizeof(*m));
}

/* Deleted slots hold a tombstone: the model's own address, never a real entry. Tables are
 * rebuilt when live entries and tombstones fill three quarters of them. */
#define TOMBSTONE(m) ((void *)(m))

static void rebuild(struct agw_model *m, void **slots, size_t cap, size_t *tombs,
                    size_t (*slot_of)(struct agw_model *, void *))
{
    void **copy = malloc(cap * sizeof(*copy));
    if (copy == NULL)
        return; /* keep the tombstones: slower, still correct */
    memcpy(copy, slots, cap * sizeof(*copy));
    memset(slots, 0, cap * sizeof(*slots));
    for (size_t i = 0; i < cap; i++)
        if (copy[i] != NULL && copy[i] != TOMBSTONE(m))
            slots[slot_of(m, copy[i])] = copy[i];
    free(copy);
    *tombs = 0;
}

static inline uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static size_t ctx_find_slot(const struct agw_model *m, uint32_t id, bool for_insert)
{
    size_t mask = m->ctx_cap - 1, i = mix(id) & mask, tomb = SIZE_MAX;
    for (size_t n = 0; n < m->ctx_cap; n++, i = (i + 1) & mask) {
        struct agw_context *c = m->ctx_slots[i];
        if (c == NULL)
            return for_insert && tomb != SIZE_MAX ? tomb : i;
        if (c == TOMBSTONE(m)) {
            if (tomb == SIZE_MAX)
                tomb = i;
        } else if (c->id == id) {
            return i;
        }
    }
    return tomb;
}

static size_t ctx_slot_of(struct agw_model *m, void *p)
{
    return ctx_find_slot(m, ((struct agw_context *)p)->id, true);
}

struct agw_context *agw_model_context(struct agw_model *m, uint32_t id)
{
    size_t i = ctx_find_slot(m, id, false);
    if (i == SIZE_MAX)
        return NULL;
    struct agw_context *c = m->ctx_slots[i];
    return (c != NULL && c != TOMBSTONE(m) && c->id == id) ? c : NULL;
}

struct agw_context *agw_model_context_new(struct agw_model *m)
{
    /* The table is sized at start: a max_contexts raised by a reload cannot overfill it. */
    if (m->n_contexts >= m->max_contexts || (m->n_contexts + 1) * 4 >= m->ctx_cap * 3)
        return NULL;
    /* Ids are handed out in sequence (0 and the reserved 0xFFFFFFFE/F skipped) and never
     * collide with a live context. */
    for (unsigned tries = 0; tries < 1024; tries++) {
        uint32_t id = m->next_context_id++;
        if (id == 0 || id >= 0xFFFFFFFEu) {
            m->next_context_id = 2;
            id = 1;
        }
        if (agw_model_context(m, id) != NULL)
            continue;
        struct agw_context *c = calloc(1, sizeof(*c));
        if (c == NULL)
            return NULL;
        c->id = id;
        c->worker = m->next_worker;
        m->next_worker = (m->next_worker + 1) % m->workers;
        if ((m->n_contexts + m->ctx_tombs + 1) * 4 >= m->ctx_cap * 3)
            rebuild(m, (void **)m->ctx_slots, m->ctx_cap, &m->ctx_tombs, ctx_slot_of);
        size_t slot = ctx_find_slot(m, id, true);
        if (m->ctx_slots[slot] == TOMBSTONE(m))
            m->ctx_tombs--;
        m->ctx_slots[slot] = c;
        m->n_contexts++;
        return c;
    }
    return NULL;
}

void agw_model_context_delete(struct agw_model *m, struct agw_context *c)
{
    size_t i = ctx_find_slot(m, c->id, false);
    if (i != SIZE_MAX && m->ctx_slots[i] == c) {
        m->ctx_slots[i] = TOMBSTONE(m);
        m->ctx_tombs++;
        m->n_contexts--;
    }
    free(c);
}

static uint64_t term_hash_key(unsigned realm, uint32_t number)
{
    return ((uint64_t)realm << 32) | number;
}

static size_t term_find_slot(const struct agw_model *m, unsigned realm, uint32_t number,
                             bool for_insert)
{
    size_t mask = m->term_cap - 1, i = mix(term_hash_key(realm, number)) & mask, tomb = SIZE_MAX;
    for (size_t n = 0; n < m->term_cap; n++, i = (i + 1) & mask) {
        struct agw_term *t = m->term_slots[i];
        if (t == NULL)
            return for_insert && tomb != SIZE_MAX ? tomb : i;
        if (t == TOMBSTONE(m)) {
            if (tomb == SIZE_MAX)
                tomb = i;
        } else if (t->realm_index == realm && t->number == number) {
            return i;
        }
    }
    return tomb;
}

static size_t term_slot_of(struct agw_model *m, void *p)
{
    const struct agw_term *t = p;
    return term_find_slot(m, t->realm_index, t->number, true);
}

int agw_model_realm_index(const struct agw_model *m, const char *name, size_t len)
{
    for (unsigned i = 0; i < m->n_realms; i++)
        if (strlen(m->realms[i].name) == len && memcmp(m->realms[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

/* "ip/<realm>/<number>" into its parts; false for anything else. */
static bool split_term_id(const struct agw_model *m, const char *id, size_t len, unsigned *realm,
                          uint32_t *number)
{
    if (len < 6 || memcmp(id, "ip/", 3) != 0)
        return false;
    const char *name = id + 3, *end = id + len;
    const char *slash = memchr(name, '/', (size_t)(end - name));
    if (slash == NULL || slash + 1 >= end)
        return false;
    int r = agw_model_realm_index(m, name, (size_t)(slash - name));
    if (r < 0)
        return false;
    uint64_t v = 0;
    for (const char *p = slash + 1; p < end; p++) {
        if (*p < '0' || *p > '9' || p - slash > 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v == 0 || v > UINT32_MAX)
        return false;
    *realm = (unsigned)r;
    *number = (uint32_t)v;
    return true;
}

struct agw_term *agw_model_term(struct agw_model *m, const char *id, size_t len)
{
    unsigned realm;
    uint32_t number;
    if (!split_term_id(m, id, len, &realm, &number))
        return NULL;
    size_t i = term_find_slot(m, realm, number, false);
    if (i == SIZE_MAX)
        return NULL;
    struct agw_term *t = m->term_slots[i];
    return (t != NULL && t != TOMBSTONE(m) && t->realm_index == realm && t->number == number)
               ? t
               : NULL;
}

struct agw_term *agw_model_term_new(struct agw_model *m, struct agw_context *c, unsigned realm,
                                    unsigned *code)
{
    if (c->n_terms >= m->max_terms_per_context) {
        *code = 434;
        return NULL;
    }
    if ((size_t)m->n_terms * 2 >= m->term_cap) {
        *code = 432;
        return NULL;
    }
    struct agw_realm *r = &m->realms[realm];
    struct agw_term *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        *code = 510;
        return NULL;
    }
    /* Numbers wrap around but never name two live terminations. */
    for (;;) {
        uint32_t n = r->next_term_number++;
        if (n == 0)
            continue;
        size_t i = term_find_slot(m, realm, n, false);
        if (i != SIZE_MAX && m->term_slots[i] != NULL && m->term_slots[i] != TOMBSTONE(m))
            continue;
        t->number = n;
        break;
    }
    t->realm = r;
    t->realm_index = realm;
    t->key = m->next_term_key++;
    t->fd = -1;
    t->mode = H248_MODE_SEND_RECV;
    t->stream_id = 1;
    int len = snprintf(t->id, sizeof(t->id), "ip/%s/%u", r->name, t->number);
    t->id_len = (size_t)len;
    t->ctx = c;
    c->terms[c->n_terms++] = t;
    if ((m->n_terms + m->term_tombs + 1) * 4 >= m->term_cap * 3)
        rebuild(m, (void **)m->term_slots, m->term_cap, &m->term_tombs, term_slot_of);
    size_t slot = term_find_slot(m, realm, t->number, true);
    if (m->term_slots[slot] == TOMBSTONE(m))
        m->term_tombs--;
    m->term_slots[slot] = t;
    m->n_terms++;
    return t;
}

static void unlink_from_context(struct agw_term *t)
{
    struct agw_context *c = t->ctx;
    for (unsigned k = 0; k < c->n_terms; k++) {
        if (c->terms[k] == t) {
            c->terms[k] = c->terms[--c->n_terms];
            break;
        }
    }
    t->ctx = NULL;
}

void agw_model_term_remove(struct agw_model *m, struct agw_term *t)
{
    size_t i = term_find_slot(m, t->realm_index, t->number, false);
    if (i != SIZE_MAX && m->term_slots[i] == t) {
        m->term_slots[i] = TOMBSTONE(m);
        m->term_tombs++;
        m->n_terms--;
    }
    unlink_from_context(t);
}

void agw_term_set_figures(struct agw_term *t, const struct agw_leg_figures *f)
{
    t->octets_sent = f->octets_sent;
    t->octets_received = f->octets_received;
    t->messages_sent = f->messages_sent;
    t->messages_received = f->messages_received;
    t->channels = f->channels;
}

void agw_model_term_free(struct agw_term *t)
{
    if (t == NULL)
        return;
    if (t->fd >= 0)
        close(t->fd);
    free(t->local_sdp);
    free(t->remote_sdp);
    free(t->fingerprints);
    free(t->events);
    free(t->dc);
    agw_tls_identity_unref(t->identity);
    free(t);
}

int agw_model_term_move(struct agw_model *m, struct agw_term *t, struct agw_context *to)
{
    if (to->n_terms >= m->max_terms_per_context)
        return -ENOSPC;
    unlink_from_context(t);
    t->ctx = to;
    to->terms[to->n_terms++] = t;
    return 0;
}

bool agw_term_matches(const struct agw_term *t, const char *pattern, size_t len)
{
    if (len == 1 && pattern[0] == '*')
        return true;
    if (len >= 1 && pattern[len - 1] == '*') {
        /* A trailing star: every termination directly under that prefix. */
        size_t prefix = len - 1;
        return t->id_len > prefix && memcmp(t->id, pattern, prefix) == 0 &&
               memchr(t->id + prefix, '/', t->id_len - prefix) == NULL;
    }
    return t->id_len == len && memcmp(t->id, pattern, len) == 0;
}
