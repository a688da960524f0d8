/* Building messages by hand: a message lives in its own arena, which also holds the message. */
#include "arena.h"
#include "h248.h"

#include <errno.h>
#include <string.h>

struct h248_message *h248_message_new(void)
{
    struct h248_arena *arena = h248_arena_new(0);
    if (arena == NULL)
        return NULL;
    struct h248_message *msg = h248_arena_alloc(arena, sizeof(*msg));
    if (msg == NULL) {
        h248_arena_free(arena);
        return NULL;
    }
    msg->arena = arena;
    return msg;
}

void h248_message_free(struct h248_message *msg)
{
    /* The arena owns the message struct itself: nothing of msg may be touched afterwards. */
    if (msg != NULL)
        h248_arena_free(msg->arena);
}

void *h248_alloc(struct h248_message *msg, size_t size)
{
    return h248_arena_alloc(msg->arena, size);
}

int h248_str_copy(struct h248_message *msg, struct h248_str *dst, const char *src, size_t len)
{
    if (src == NULL && len != 0)
        return -EINVAL;
    /* Never a NULL ptr, even for "", so that users may pass it to memcpy/memcmp freely. */
    char *p = h248_arena_alloc(msg->arena, len != 0 ? len : 1);
    if (p == NULL)
        return -ENOMEM;
    if (len != 0)
        memcpy(p, src, len);
    dst->ptr = p;
    dst->len = len;
    return 0;
}
