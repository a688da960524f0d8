/* Owner of the usrsctp singleton: init/finish, timers, and the id table its callbacks go through.
 */
#include "usrsctp_glue.h"
#include "assoc.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include <usrsctp.h>

/* usrsctp callbacks carry an id, never a pointer: a packet or upcall naming an association that
   is gone finds no slot (or a slot of another generation) and is dropped. An id is the slot
   index + 1 in the low bits and a generation above, so a freed slot's old id never matches. */
#define SLOT_BITS 20
#define SLOT_MAX ((1u << SLOT_BITS) - 1)
#define NO_SLOT UINT32_MAX

/* Keep ticking this long after the last association went: usrsctp finishes freeing closed
   sockets from its timers. */
#define LINGER_MS 2000

struct slot {
    uintptr_t id; /* 0 when free */
    struct agw_sctp_assoc *assoc;
    uint32_t next; /* dirty list, or free list when free */
    bool dirty;
};

static struct {
    bool ready;
    struct slot *slots;
    uint32_t cap, used, live;
    uint32_t free_head;
    uint32_t dirty_head;
    uintptr_t generation;
    uint32_t linger_ms;
} g = {.free_head = NO_SLOT, .dirty_head = NO_SLOT};

static struct slot *slot_of(uintptr_t id)
{
    uint32_t index = (uint32_t)(id & SLOT_MAX);
    if (index == 0 || index > g.used)
        return NULL;
    struct slot *s = &g.slots[index - 1];
    return s->id == id ? s : NULL;
}

/* usrsctp's output callback: addr is the id registered for the association. Runs inside
   usrsctp (with its locks held), so it only copies. */
static int output_cb(void *addr, void *buffer, size_t length, uint8_t tos, uint8_t set_df)
{
    (void)tos;
    (void)set_df;
    struct slot *s = slot_of((uintptr_t)addr);
    if (s != NULL)
        agw_sctp_assoc_take_packet(s->assoc, buffer, length);
    return 0;
}

void agw_sctp_glue_upcall(struct socket *so, void *arg, int flags)
{
    (void)so;
    (void)flags;
    struct slot *s = slot_of((uintptr_t)arg);
    if (s == NULL || s->dirty)
        return;
    s->dirty = true;
    s->next = g.dirty_head;
    g.dirty_head = (uint32_t)(s - g.slots);
}

void agw_sctp_glue_service(void)
{
    /* Serving one association never flags another (their packets only meet through the
       caller), but it may flag itself again: the loop ends when the list stays empty. */
    while (g.dirty_head != NO_SLOT) {
        struct slot *s = &g.slots[g.dirty_head];
        g.dirty_head = s->next;
        s->next = NO_SLOT;
        s->dirty = false;
        agw_sctp_assoc_serve(s->assoc);
    }
}

bool agw_sctp_glue_ready(void)
{
    return g.ready;
}

int agw_sctp_glue_attach(struct agw_sctp_assoc *a, uintptr_t *id_out)
{
    uint32_t index;
    if (g.free_head != NO_SLOT) {
        index = g.free_head;
        g.free_head = g.slots[index].next;
    } else {
        if (g.used == SLOT_MAX)
            return -ENOMEM;
        if (g.used == g.cap) {
            uint32_t cap = g.cap ? g.cap * 2 : 64;
            if (cap > SLOT_MAX)
                cap = SLOT_MAX;
            struct slot *slots = realloc(g.slots, cap * sizeof(*slots));
            if (slots == NULL)
                return -ENOMEM;
            g.slots = slots;
            g.cap = cap;
        }
        index = g.used++;
    }
    g.generation++;
    struct slot *s = &g.slots[index];
    s->id = (g.generation << SLOT_BITS) | (index + 1);
    s->assoc = a;
    s->next = NO_SLOT;
    s->dirty = false;
    g.live++;
    usrsctp_register_address((void *)s->id);
    *id_out = s->id;
    return 0;
}

void agw_sctp_glue_detach(uintptr_t id)
{
    struct slot *s = slot_of(id);
    if (s == NULL)
        return;
    usrsctp_deregister_address((void *)id);
    if (s->dirty) {
        uint32_t index = (uint32_t)(s - g.slots);
        uint32_t *link = &g.dirty_head;
        while (*link != index)
            link = &g.slots[*link].next;
        *link = s->next;
    }
    s->id = 0;
    s->assoc = NULL;
    s->dirty = false;
    s->next = g.free_head;
    g.free_head = (uint32_t)(s - g.slots);
    g.live--;
    g.linger_ms = LINGER_MS;
}

int agw_sctp_init(void)
{
    if (g.ready)
        return 0;
    /* Even without threads usrsctp starts its iterator thread, which handles address changes:
       our addresses are ids that come and go, and announcing them to peers (ASCONF) would have
       that thread send packets. Off, so that every callback stays on the caller's thread. */
    usrsctp_init_nothreads(0, output_cb, NULL);
    /* usrsctp's own CRC32c (table look-ups, and Debian builds the library at -O0) was a fifth
       of the relay's CPU. With "offload" usrsctp neither computes the checksum of AF_CONN
       packets out nor verifies packets in: agw_sctp_assoc_take_packet and agw_sctp_assoc_input
       do both, with the crc32 instruction where there is one. Set after init, which clears it. */
    usrsctp_enable_crc32c_offload();
    usrsctp_sysctl_set_sctp_auto_asconf(0);
    usrsctp_sysctl_set_sctp_asconf_enable(0);
    g.ready = true;
    return 0;
}

int agw_sctp_finish(void)
{
    if (!g.ready)
        return 0;
    if (g.live > 0)
        return -EBUSY;
    if (usrsctp_finish() != 0)
        return -EBUSY;
    free(g.slots);
    g.slots = NULL;
    g.cap = g.used = 0;
    g.free_head = g.dirty_head = NO_SLOT;
    g.linger_ms = 0;
    g.ready = false;
    return 0;
}

void agw_sctp_timers(uint32_t elapsed_ms)
{
    if (!g.ready)
        return;
    usrsctp_handle_timers(elapsed_ms);
    g.linger_ms = elapsed_ms >= g.linger_ms ? 0 : g.linger_ms - elapsed_ms;
    agw_sctp_glue_service();
}

int agw_sctp_next_timeout(void)
{
    if (!g.ready || (g.live == 0 && g.linger_ms == 0))
        return -1;
    return AGW_SCTP_TICK_MS;
}
