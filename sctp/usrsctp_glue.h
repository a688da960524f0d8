/* Internal to sctp/: what usrsctp_glue.c (owner of the usrsctp singleton) and assoc.c share. */
#ifndef IMS_AGW_SCTP_USRSCTP_GLUE_H
#define IMS_AGW_SCTP_USRSCTP_GLUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct agw_sctp_assoc;
struct socket;

/* True between agw_sctp_init and agw_sctp_finish. */
bool agw_sctp_glue_ready(void);

/* Gives a an id (never 0, never reused while usrsctp could still name the old one) and
   registers it with usrsctp as an AF_CONN address. 0; -ENOMEM. */
int agw_sctp_glue_attach(struct agw_sctp_assoc *a, uintptr_t *id_out);

/* Forgets id: usrsctp callbacks naming it are dropped from now on. */
void agw_sctp_glue_detach(uintptr_t id);

/* The upcall to install on an association's socket, with (void *)id as its argument. */
void agw_sctp_glue_upcall(struct socket *so, void *arg, int flags);

/* Serves every association that usrsctp flagged since the last call (reads, queued sends). Call
   after each entry into usrsctp. */
void agw_sctp_glue_service(void);

/* Provided by assoc.c, called by the glue: a packet usrsctp wants sent (copied), and a flagged
   association's turn to read and send. */
void agw_sctp_assoc_take_packet(struct agw_sctp_assoc *a, const void *data, size_t len);
void agw_sctp_assoc_serve(struct agw_sctp_assoc *a);

#endif
