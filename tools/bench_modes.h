/* agw-bench rr, handshake and idle: their entry points and what they share (options, the spawned
 * gateway and its Iq sessions, the UEs' TLS, the answering core sink, /proc figures). */
#ifndef IMS_AGW_TOOLS_BENCH_MODES_H
#define IMS_AGW_TOOLS_BENCH_MODES_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* `agw-bench rr|handshake|idle ...`: argv[1] names the mode. Exit status 0, 1 failed, 2 usage. */
int bench_rr_main(int argc, char **argv);
int bench_hs_main(int argc, char **argv);
int bench_idle_main(int argc, char **argv);

enum bench_mode { BENCH_RR = 1, BENCH_HS = 2, BENCH_IDLE = 4 };

#define BENCH_MAX_REALMS 8
#define BENCH_MSG_MIN 24 /* a message's header and a little payload */
#define BENCH_MSG_MAX 65536

/* Everything the three modes read from the command line; 0/NULL: the mode's default. */
struct bench_args {
    enum bench_mode mode;
    unsigned sessions, exchanges, size, seconds, window, warmup, settle_ms;
    const char *target;      /* a TLS terminator to drive, no Iq */
    unsigned long sink_port; /* with --target: where it forwards to */
    pid_t target_pid;        /* whose CPU and memory are the relay's */
    const char *label, *config, *listen, *workers, *spawn, *cipher, *group, *ue_cert, *ue_key;
    const char *realms[BENCH_MAX_REALMS]; /* --realm, handed to the spawned gateway */
    unsigned n_realms;
    unsigned long_timer_ms;
    bool json;
};

/* Parses argv[2..] for mode into *a (defaults filled in). 0, or 2 after printing why (usage is
 * the mode's usage text, printed for -h with 1 returned). */
int bench_args_parse(int argc, char **argv, enum bench_mode mode, const char *usage,
                     struct bench_args *a);

/* The spawned gateway and our MGC side. Iq calls may come from any thread (serialised). */
struct bench_gw;

/* Starts the gateway a asks for (TLS 1.3, a's suite and group, room for max_contexts) and waits
 * for its registration. *out is the caller's (bench_gw_stop). */
int bench_gw_start(const struct bench_args *a, unsigned max_contexts, struct bench_gw **out);

/* SIGTERM (answering its ServiceChange meanwhile), SIGKILL if it lingers; frees g. NULL is ok. */
void bench_gw_stop(struct bench_gw *g);

pid_t bench_gw_pid(const struct bench_gw *g);

/* One e2ae session as the ALG sets it up (DESIGN.md §1). */
struct bench_gw_session {
    unsigned context;
    struct sockaddr_storage access; /* where the UE connects */
    socklen_t access_len;
    char fingerprint[128]; /* the gateway's a=fingerprint from the reply: "sha-256 AB:..." */
};

/* Add core (toward 127.0.0.1:sink_port, the gateway connects) and Add access (TLS, the UE's
 * fingerprint ue_fp, the UE connects). 0, or negative with why (cap bytes) filled. */
int bench_gw_session_add(struct bench_gw *g, uint16_t sink_port, const char *ue_fp,
                         struct bench_gw_session *s, char *why, size_t cap);

/* Subtract * in the session's context. 0 or negative. */
int bench_gw_session_subtract(struct bench_gw *g, unsigned context);

/* The UEs' side of TLS: one client context, one identity. */
struct bench_ue {
    SSL_CTX *ctx;
    struct agw_tls_identity *id; /* presented to the relay */
    char fingerprint[200];       /* the identity's sha-256 in SDP form */
};

/* Loads --ue-cert/--ue-key or generates a P-256 identity; TLS 1.3 only, a's suite and group. */
int bench_ue_init(const struct bench_args *a, struct bench_ue *ue);
void bench_ue_fini(struct bench_ue *ue);

/* Connects to `to`, TCP_NODELAY, stall timeouts, and the TLS handshake.
 * On 0 the caller owns *fd and *ssl. why names a failure. */
int bench_ue_connect(const struct bench_ue *ue, const struct sockaddr_storage *to, socklen_t to_len,
                     int *fd, SSL **ssl, char *why, size_t cap);

/* Whole writes and reads over TLS or plain TCP. 0, or -EIO / -ETIMEDOUT / -ECONNRESET;
 * bench_ue_read_all gives -EPIPE for an orderly end before n bytes. */
int bench_ue_write_all(int fd, SSL *ssl, const void *p, size_t n);
int bench_ue_read_all(int fd, SSL *ssl, void *p, size_t n);

/* After the last answer: waits for the relay's end (close_notify or FIN; 0, or -EPROTO when bytes
 * came instead), sends ours, closes fd and frees ssl. */
int bench_ue_finish(int fd, SSL *ssl);

/* Ends a session from our side first (close_notify, FIN), reads until the relay's end so that
 * nothing unread turns the close into a reset, closes fd and frees ssl. */
void bench_ue_close(int fd, SSL *ssl);

/* "TLSv1.3 TLS_AES_128_GCM_SHA256 prime256v1 EC-256 cert 1a2b3c4d": the terms a relay gave. */
void bench_tls_describe(SSL *ssl, char *out, size_t cap);

/* The server certificate's sha-256 in SDP form ("sha-256 AB:..."); 0 or negative. */
int bench_tls_peer_fingerprint(SSL *ssl, char *out, size_t cap);

/* Messages: a 24-byte header (magic, session, sequence, size) and payload taken from a random
 * block at an offset that depends on all three and on the direction, so that a byte delivered to
 * the wrong session, out of order or altered fails the check. */
enum bench_dir { BENCH_REQUEST, BENCH_ANSWER };
void bench_msg_init(void);
void bench_msg_fill(unsigned char *buf, size_t size, enum bench_dir dir, uint32_t session,
                    uint64_t seq);
bool bench_msg_check(const unsigned char *buf, size_t size, enum bench_dir dir, uint32_t session,
                     uint64_t seq);
/* The session a message claims to belong to, or -1 when its header is not one of ours. */
int64_t bench_msg_session(const unsigned char *buf, size_t size, enum bench_dir dir);

/* The core side: accepts on 127.0.0.1, answers every request of `size` bytes with an answer of
 * the same size, checking both ends; after close_after answers (0: never) it ends its side
 * first (FIN), so that TIME_WAIT stays with us and not with the relay. One epoll thread. */
struct bench_sink;
struct bench_sink_stats {
    uint64_t accepted, answered, closed, resets, errors;
    char first_error[160];
};
int bench_sink_start(uint16_t port, size_t size, unsigned close_after, struct bench_sink **out);
uint16_t bench_sink_port(const struct bench_sink *s);
void bench_sink_stats(struct bench_sink *s, struct bench_sink_stats *out);
/* Stops the thread, closes what is open, frees s. NULL is ok. */
void bench_sink_stop(struct bench_sink *s);

/* /proc figures; negative when unknown. main_s: the process's first thread (for ims-agw the
 * control loop, which runs Iq; the others are the workers). */
int bench_proc_cpu(pid_t pid, double *total_s, double *main_s);
int bench_proc_memory(pid_t pid, uint64_t *rss_kib, uint64_t *pss_kib);
int bench_proc_fds(pid_t pid);
long bench_proc_nofile_limit(pid_t pid);
/* Busy CPU seconds of the whole host, and of this process (all threads). */
double bench_host_busy_seconds(void);
double bench_self_cpu_seconds(void);

/* Raises our RLIMIT_NOFILE soft limit to the hard limit; the new soft limit. */
long bench_raise_nofile(void);

uint64_t bench_now_us(void);
void bench_sort_u64(uint64_t *v, size_t n);
uint64_t bench_percentile(const uint64_t *sorted, size_t n, double p);
/* Printable, quote- and backslash-free: safe inside a JSON string as it is. */
bool bench_json_safe(const char *s);

#endif
