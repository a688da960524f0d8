/* Bump allocator: a message and all it points to are freed at once. */
#ifndef IMS_AGW_H248_ARENA_H
#define IMS_AGW_H248_ARENA_H

#include <stddef.h>

struct h248_arena;

/* A new arena whose first chunk holds at least first_chunk bytes; NULL on failure. */
struct h248_arena *h248_arena_new(size_t first_chunk);

/* Zeroed, 16-byte aligned memory owned by the arena; NULL on failure or overflow. */
void *h248_arena_alloc(struct h248_arena *arena, size_t size);

/* Frees every chunk. NULL is allowed. */
void h248_arena_free(struct h248_arena *arena);

#endif
