/* The map of the ims-agw daemon: its modules and what they export to each other. */
#ifndef IMS_AGW_AGW_H
#define IMS_AGW_AGW_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#ifndef AGW_VERSION
#define AGW_VERSION "0.0.0"
#endif

#define AGW_IQ_DEFAULT_LISTEN "127.0.0.1:2944"   /* H.248.1 Annex D.1 text port */
#define AGW_DATAGRAM_MAX 65536                   /* largest UDP payload we read or write */
#define AGW_ADDR_TEXT_MAX (INET6_ADDRSTRLEN + 8) /* "[v6]:port" */

/* Our own H.248 identity: the mId we put in every message we send. */
struct agw_mid_conf {
    bool ipv6;
    char ip[INET6_ADDRSTRLEN];
    uint16_t port;
};

/* Log lines about one peer's input, capped per second so that a flood cannot flood the log. */
struct agw_log_limit {
    uint64_t second;
    unsigned lines;
    unsigned long suppressed;
};

/* The Iq endpoint until the control plane lands: parses every datagram and answers 501. */
struct agw_iq_listener {
    uv_udp_t udp;
    struct agw_mid_conf self;
    char local_text[AGW_ADDR_TEXT_MAX];
    struct agw_log_limit log_limit;
    char rx[AGW_DATAGRAM_MAX];
    char tx[AGW_DATAGRAM_MAX];
};

/* iq_listener.c */

/* Answers one datagram: the reply (len 0 = send nothing) goes to out, a one-line summary of what
 * came in and what went out to summary. Borrows everything; 0 or a negative errno. */
int agw_iq_answer(const struct agw_mid_conf *self, const char *in, size_t len, char *out,
                  size_t cap, size_t *out_len, char *summary, size_t summary_cap);

/* Binds the UDP socket to listen ("a.b.c.d:port" or "[v6]:port") and starts reading. The caller
 * owns l, which must stay valid until the close callback of agw_iq_listener_close has run.
 * 0 or a negative errno (-EINVAL for a malformed address). */
int agw_iq_listener_start(struct agw_iq_listener *l, uv_loop_t *loop, const char *listen);

/* Stops reading and closes the socket; l may be freed once close_cb has run (NULL allowed). */
void agw_iq_listener_close(struct agw_iq_listener *l, uv_close_cb close_cb);

#endif
