/* Chunked bump allocator behind every parsed or built message. */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 16u
#define MIN_CHUNK 4096u

struct chunk {
    struct chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

struct h248_arena {
    struct chunk *head;
};

static struct chunk *chunk_new(size_t size)
{
    struct chunk *c = malloc(sizeof(*c) + size);
    if (c == NULL)
        return NULL;
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

struct h248_arena *h248_arena_new(size_t first_chunk)
{
    struct h248_arena *a = malloc(sizeof(*a));
    if (a == NULL)
        return NULL;
    a->head = chunk_new(first_chunk < MIN_CHUNK ? MIN_CHUNK : first_chunk);
    if (a->head == NULL) {
        free(a);
        return NULL;
    }
    return a;
}

void *h248_arena_alloc(struct h248_arena *a, size_t size)
{
    if (size > SIZE_MAX / 2)
        return NULL;
    size_t need = (size + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    struct chunk *c = a->head;
    if (c->size - c->used < need) {
        size_t grow = c->size * 2;
        struct chunk *n = chunk_new(grow > need ? grow : need);
        if (n == NULL)
            return NULL;
        n->next = c;
        a->head = n;
        c = n;
    }
    void *p = c->data + c->used;
    c->used += need;
    memset(p, 0, size);
    return p;
}

void h248_arena_free(struct h248_arena *a)
{
    if (a == NULL)
        return;
    struct chunk *c = a->head;
    while (c != NULL) {
        struct chunk *next = c->next;
        free(c);
        c = next;
    }
    free(a);
}
