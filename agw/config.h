/* The ims-agw configuration: typed settings, read from an INI file and the command line. */
#ifndef IMS_AGW_CONFIG_H
#define IMS_AGW_CONFIG_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#define AGW_CONFIG_MAX_MGCS 8
#define AGW_CONFIG_MAX_REALMS 8
#define AGW_CONFIG_REALM_NAME_MAX 31 /* characters of [a-z0-9_-] */
#define AGW_CONFIG_TEXT_MAX 64       /* mid, profile: bytes with the NUL */
#define AGW_CONFIG_PATH_MAX 176      /* inih reads lines of at most 199 characters */

enum agw_log_level { AGW_LOG_ERROR, AGW_LOG_WARN, AGW_LOG_INFO, AGW_LOG_DEBUG };

struct agw_config_port_range {
    uint16_t low, high; /* inclusive; low == 0: not set */
};

struct agw_config_realm {
    char name[AGW_CONFIG_REALM_NAME_MAX + 1];
    struct sockaddr_storage address; /* port 0; ss_family AF_UNSPEC: not set */
    struct agw_config_port_range ports;
    char certificate[AGW_CONFIG_PATH_MAX]; /* "" with private_key "": generated at start */
    char private_key[AGW_CONFIG_PATH_MAX];
};

/* Fixed-size storage, no pointers: copy with `=`, compare with agw_config_equal. */
struct agw_config {
    struct sockaddr_storage iq_listen;
    struct sockaddr_storage mgc[AGW_CONFIG_MAX_MGCS]; /* failover order */
    unsigned mgc_count;
    char mid[AGW_CONFIG_TEXT_MAX]; /* "" = derived from iq_listen: see agw_config_mid */
    char profile[AGW_CONFIG_TEXT_MAX];
    uint32_t workers; /* 0 = auto: one per CPU */
    enum agw_log_level log_level;
    uint32_t max_contexts;
    uint32_t max_terminations_per_context;
    char default_realm[AGW_CONFIG_REALM_NAME_MAX + 1];
    uint32_t long_timer_ms;
    uint32_t provisional_timer_ms;
    uint32_t mg_initial_rto_ms;
    uint32_t mg_min_rto_ms;
    uint32_t mg_max_rto_ms;
    uint32_t mg_max_retransmissions;
    uint32_t relay_buffer_bytes;
    uint32_t handshake_timeout_ms;
    uint32_t ice_consent_timeout_ms;
    uint32_t shutdown_drain_seconds;
    enum agw_config_tls_version { AGW_CONFIG_TLS_1_2, AGW_CONFIG_TLS_1_3 } tls_min_version;
    char tls_ciphers[AGW_CONFIG_TEXT_MAX * 4];
    char tls_ciphersuites[AGW_CONFIG_TEXT_MAX * 2];
    char tls_groups[AGW_CONFIG_TEXT_MAX];
    struct sockaddr_storage metrics_listen;   /* ss_family AF_UNSPEC: no metrics endpoint */
    char control_socket[AGW_CONFIG_PATH_MAX]; /* "auto", a path, or "": none */
    struct agw_config_realm realms[AGW_CONFIG_MAX_REALMS];
    unsigned realm_count;
};

/* What the command line asked for besides settings; strings point into the caller's argv. */
struct agw_config_cli {
    const char *config_path; /* -c FILE, NULL if absent */
    bool check_only;         /* -t */
    bool version;            /* -V */
    bool help;               /* -h */
};

/* Fills cfg with the embedded default (loopback Iq, realms access and core). */
void agw_config_init_defaults(struct agw_config *cfg);

/* Applies the file at path on top of cfg: its keys override, its first mgc replaces the mgc list,
 * its [realm] sections replace the realm list. No cross-field checks (agw_config_validate).
 * 0, -EINVAL with "path:line: ..." in err, or -errno if the file cannot be read. */
int agw_config_load_file(struct agw_config *cfg, const char *path, char *err, size_t errlen);

/* Sets one key; section is "global" or "realm NAME" (the realm is created if new). A list key
 * (mgc) appends. All strings borrowed. 0 or -EINVAL with the section, key and reason in err. */
int agw_config_set(struct agw_config *cfg, const char *section, const char *key, const char *value,
                   char *err, size_t errlen);

/* Defaults, then -c FILE, then the other options in order, then agw_config_validate. argv may
 * be permuted (getopt); call again with the same argv to reload. After -h or -V, returns 0 at
 * once with the defaults in cfg. 0 or a negative code with the reason in err. */
int agw_config_parse_args(struct agw_config *cfg, int argc, char **argv, struct agw_config_cli *cli,
                          char *err, size_t errlen);

/* Cross-field checks (realms, default_realm, port overlaps, timers). 0 or -EINVAL with err. */
int agw_config_validate(const struct agw_config *cfg, char *err, size_t errlen);

/* Writes cfg in the file format, with each key's help as a comment; loads back equal. */
void agw_config_print(const struct agw_config *cfg, FILE *out);

/* 0 if new differs from old only in reloadable keys; else -EPERM and err names each key. */
int agw_config_reload_check(const struct agw_config *old_cfg, const struct agw_config *new_cfg,
                            char *err, size_t errlen);

/* Copies the [global] keys marked reloadable from fresh into cfg. Realm keys stay: the caller
 * takes a realm's certificate only once it loaded. */
void agw_config_take_reloadable(struct agw_config *cfg, const struct agw_config *fresh);

/* True if every key of a and b holds the same value (realms matched by name). */
bool agw_config_equal(const struct agw_config *a, const struct agw_config *b);

/* The mId to send: mid, or "[address]:port" of iq_listen when mid is empty. */
void agw_config_mid(const struct agw_config *cfg, char *buf, size_t cap);

/* "a.b.c.d" / "v6" (with_port false) or "a.b.c.d:port" / "[v6]:port" (true). 0 or -ENOSPC. */
int agw_config_format_address(const struct sockaddr_storage *addr, bool with_port, char *buf,
                              size_t cap);

/* The command-line help, generated from the key table; static storage. */
const char *agw_config_usage(void);

#endif
